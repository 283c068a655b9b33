import { WIRE_REASON_NAMES } from '../wire/errors';

/** tcpcopy's counters: plain number fields, bumped on the hot path, read for logs. */
export class TcpcopyStats {
  /** Packets handed over by the capture source. */
  captured = 0;
  /** Packets rejected by the wire checks, by reason (index: WireReason). */
  readonly malformed: number[] = new Array(WIRE_REASON_NAMES.length).fill(0);
  /** TCP packets for no `-x` rule. */
  notMatched = 0;
  /** Packets from 127.0.0.1 without -H (or from elsewhere to a 127.0.0.1 target). */
  localhostDropped = 0;
  /** Client packets accepted for replay. */
  clientPackets = 0;
  clientPayloadPackets = 0;
  clientPayloadBytes = 0;
  /** Pure ACKs from clients (tcpcopy makes its own). */
  clientPureAcks = 0;
  /** Client retransmissions already sent once. */
  clientRetransmissions = 0;
  clientSyns = 0;
  /** Oversized (GRO/TSO) packets split into MTU-sized segments. */
  splitPackets = 0;
  notSampled = 0;
  /** New sessions refused because the memory limit was near. */
  shed = 0;
  /** New sessions refused because no intercept was connected. */
  noIntercept = 0;
  /** IPv6 sessions refused because no connected intercept accepted the IPv6 capability (the original's). */
  ipv6Refused = 0;
  /** IPv6 packets not sent because there is no IPv6 sender. */
  noIpv6Sender = 0;
  /** Sessions refused by -O (no captured SYN). */
  noSynRefused = 0;

  sessionsCreated = 0;
  sessionsFromSyn = 0;
  /** Sessions started without a captured SYN (fake SYN). */
  sessionsFaked = 0;
  /** Handshakes completed with the target (SYN-ACK received), reconnects included. */
  handshakes = 0;
  /** Sessions whose first handshake with the target completed (replicationRatio = this / sessionsCreated). */
  sessionsEstablished = 0;
  sessionsClosed = 0;
  sessionsTimedOut = 0;
  sessionsResetByTarget = 0;
  sessionsAborted = 0;
  /**
   * Sessions ended by tcpcopy, by reason: timeout, capture-gap, too-many-packets, retries,
   * reconnects, backlog, shutdown (each with a RST to the target when connected), no-free-port.
   */
  readonly abortsByReason: Record<string, number> = {};
  synTimeouts = 0;
  /** A client reused its port for a new connection while the old session was alive. */
  portReuses = 0;
  /** New target connections after the target closed with client data left. */
  reconnects = 0;
  /** Captured packets that never came (capture loss): requests skipped to go on with the next. */
  captureGapsSkipped = 0;
  captureGapBytes = 0;
  /** New sessions refused while the capture was behind the traffic. */
  shedCaptureBehind = 0;
  /** Sessions refused because the backlog was at its limit (--backlog-limit). */
  backlogShed = 0;
  /** Client packets of sessions ended for the backlog limit, dropped. */
  backlogDroppedPackets = 0;
  /** Sessions the protocol module could not replay, skipped whole, by reason (--module). */
  readonly sessionsSkippedByReason: Record<string, number> = {};
  sessionsSkipped = 0;
  /** Client packets of skipped sessions, dropped. */
  skippedSessionPackets = 0;
  /** Connections whose session was ended for the backlog limit that resumed at a later request. */
  backlogResumed = 0;
  /** Requests (and their bytes) dropped from sessions far behind, which went on with their last one. */
  backlogSkippedRequests = 0;
  backlogSkippedBytes = 0;
  /** Highest backlog (bytes of kept packets, with overhead) seen. */
  backlogPeakBytes = 0;

  /** Packets sent to the target (captured and fake). */
  packetsSent = 0;
  payloadPacketsSent = 0;
  payloadBytesSent = 0;
  requestsSent = 0;
  /** Requests sent again on a new connection because the target closed without answering them. */
  requestsReplayed = 0;
  synsSent = 0;
  acksSent = 0;
  finsSent = 0;
  rstsSent = 0;
  retransmissions = 0;
  fastRetransmissions = 0;
  synRetransmissions = 0;

  /** Reply records from intercept. */
  replies = 0;
  repliesWithData = 0;
  replyPayloadBytes = 0;
  repliesNoSession = 0;
  repliesFin = 0;
  repliesRst = 0;
  /** Replies whose sequence number belongs to an earlier connection on the same 4-tuple. */
  repliesOutOfWindow = 0;
  badRecords = 0;
}
