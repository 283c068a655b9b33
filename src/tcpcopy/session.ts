import type { TransferRule } from './transfer';
import type { TimerOwner } from './timer-wheel';

/** Where a replayed connection is. Numbers: the engine compares them. */
export const enum SessState {
  /** Created; no SYN sent yet (or reset for a reconnect). */
  Closed = 0,
  SynSent = 1,
  Established = 2,
  /** Over: kept briefly (linger) so late replies are absorbed, then removed. */
  Done = 3,
}

/**
 * One captured client packet kept by a session until the target acknowledges it. Segs and
 * their buffers come from the engine's SegPool and go back to it when the packet is dropped:
 * `buf` is the pooled buffer (its length is the pool's size class), `size` the packet's bytes.
 */
export class Seg {
  /** The whole IPv4 or IPv6 packet (a private copy) in `buf[0, size)`, rewritten in place when first sent. */
  size = 0;
  seq = 0;
  /** Payload bytes. */
  len = 0;
  /** TCP flags as captured. */
  flags = 0;
  /** The captured ack number: the online server's sequence space (request boundaries). */
  onlineAck = 0;
  ipHdrLen = 20;
  tcpHdrLen = 20;
  /** The checksum in `buf` is correct, so field changes can update it incrementally. */
  csumOk = false;
  rewritten = false;
  sends = 0;
  /** In the pool (given back): a second give is ignored. */
  free = false;

  /**
   * `buf` as a WordSpan: its pool slab seen as 32-bit words (null for a buffer of its own), where
   * `buf` starts in it and how long it is, so that copies in and out need none of `buf`'s
   * typed-array accessors (see wire/copy.ts).
   */
  readonly words: Int32Array | null;
  readonly base: number;
  readonly cap: number;

  constructor(public buf: Buffer, words: Int32Array | null = null, base = 0) {
    this.words = words;
    this.base = base;
    this.cap = buf.length;
  }

  /** Sets every field for a new packet of `size` bytes (already copied into `buf`). */
  init(size: number, seq: number, len: number, flags: number, onlineAck: number, ipHdrLen: number, tcpHdrLen: number,
    csumOk: boolean): this {
    this.size = size;
    this.seq = seq;
    this.len = len;
    this.flags = flags;
    this.onlineAck = onlineAck;
    this.ipHdrLen = ipHdrLen;
    this.tcpHdrLen = tcpHdrLen;
    this.csumOk = csumOk;
    this.rewritten = false;
    this.sends = 0;
    this.free = false;
    return this;
  }
}

/**
 * All per-session state in one object, found in the engine's session tables by the client
 * address as sent (for replies) and by the captured client address (for client packets).
 */
export class Session implements TimerOwner {
  state = SessState.Closed;
  /**
   * Client address and port as sent to the target (after -c, -n, -f). IPv6 sessions hold keys
   * of the engine's Ipv6AddrTable here and in `ingressIp` (negative numbers, never an IPv4
   * address), so that both families are compared as numbers.
   */
  clientIp: number;
  clientPort: number;
  /** Replica number (0 = the original session). */
  readonly copy: number;
  /** The captured client's address and port (after -H): its key in the engine's ingress table. */
  readonly ingressIp: number;
  readonly ingressPort: number;
  readonly rule: TransferRule;
  readonly createdMs: number;
  /** An IPv6 session (its addresses are Ipv6AddrTable keys). */
  readonly v6: boolean;

  /** The captured SYN, for retransmission (null: the SYN sent is a fake one). */
  synSeg: Seg | null = null;
  /**
   * The handshake with the target is a fake one: the session started from a data packet (no
   * captured SYN), or reconnected. Its packets then advertise a window of 65535.
   */
  fakeSyn = false;
  isn = 0;
  /** Next sequence number we send (client space). */
  sndNxt = 0;
  /** Highest ack from the target. */
  sndUna = 0;
  /** Target's next sequence number: the ack we put in every packet. */
  rcvNxt = 0;
  targetIsn = 0;
  /** Target's advertised window, scaled. */
  peerWindow = 65535;
  wscale = 0;
  /** Our SYN offered window scaling / timestamps. */
  synWs = false;
  synTs = false;
  /** Timestamps in use (both SYNs carried them). */
  tsOk = false;
  /** Last TSval from the target (our TSecr). */
  tsRecent = 0;
  /** Highest TSval we sent (kept monotonic). */
  tsValMax = 0;
  ipId = 0;

  /** Captured payload/FIN/RST packets not yet acknowledged by the target, in seq order. */
  segs: Seg[] = [];
  /** Index of the first seg not yet sent. Segs from `head` to it are sent and unacknowledged. */
  nextIdx = 0;
  /** Index of the first seg still held: those before it were acknowledged (dead entries). */
  head = 0;

  /** Online-space ack of the last request sent; -1 until known. */
  lastReqAck = -1;
  /** Response bytes received since the last request was sent. */
  respBytes = 0;
  lastDataMs = 0;
  reqSentMs = 0;
  requests = 0;
  /** First sequence number of the last request sent, and whether its response has begun. */
  reqStartSeq = 0;
  reqAnswered = false;
  /** reqStartSeq of the request last replayed after a reconnect (-1: none). */
  replayedReqSeq = -1;

  finSent = false;
  targetClosed = false;
  /** Our ACK is owed to the target (sent at the end of the current batch of replies). */
  needAck = false;
  dirty = false;
  dupAcks = 0;
  /** Retransmitting after a loss, until everything sent before it (recoverSeq) is acked. */
  recovering = false;
  recoverSeq = 0;
  rtoBackoff = 0;
  retries = 0;
  synTries = 0;
  reconnects = 0;
  everEstablished = false;
  /** Reconnects since the target last sent response data. */
  barrenReconnects = 0;
  gapSinceMs = 0;
  lastClientMs: number;
  lastReplyMs: number;
  lingerUntilMs = 0;
  /** Bytes of this session's kept packets (with a fixed overhead each): its share of the backlog. */
  keptBytes = 0;
  /**
   * Ended to keep the backlog within its limit: stays in the client map (while its connection
   * goes on) so that the rest of that connection is dropped, not replayed from the middle.
   */
  discarded = false;
  /** Skipped by the protocol module: (with `discarded`) the rest of its connection is dropped. */
  skipped = false;
  /**
   * The protocol module's state for this session; null for plain replay (no module, or the
   * module is done with the session). The engine's hook sites test only this field.
   */
  proto: object | null = null;

  /** Deadlines (ms, 0 = none): SYN retransmission, RTO, pacing recheck. */
  synDue = 0;
  rtoDue = 0;
  paceDue = 0;
  timerDue = 0;
  timerFiled = 0;
  onTimer: (nowMs: number) => void;

  /** Links of the engine's session tables (hash chains, and the reply table's order). */
  nextByReply: Session | null = null;
  nextByIngress: Session | null = null;
  prevInOrder: Session | null = null;
  nextInOrder: Session | null = null;

  constructor(rule: TransferRule, copy: number, ingressIp: number, ingressPort: number, clientIp: number, clientPort: number,
    nowMs: number, onTimer: (s: Session, nowMs: number) => void) {
    this.rule = rule;
    this.copy = copy;
    this.ingressIp = ingressIp;
    this.ingressPort = ingressPort;
    this.clientIp = clientIp;
    this.clientPort = clientPort;
    this.v6 = ingressIp < 0;
    this.createdMs = nowMs;
    this.lastClientMs = nowMs;
    this.lastReplyMs = nowMs;
    // One bound method per session (not per packet).
    this.onTimer = (now: number) => onTimer(this, now);
  }

  /** Bytes sent and not yet acknowledged. */
  get inFlight(): number { return (this.sndNxt - this.sndUna) >>> 0; }

  /** True when captured payload remains that the target has not been sent. */
  get hasUnsentData(): boolean {
    for (let i = this.nextIdx; i < this.segs.length; i++) if (this.segs[i].len > 0) return true;
    return false;
  }
}

/** Sequence-space comparisons (mod 2^32). */
export function seqLt(a: number, b: number): boolean { return ((a - b) | 0) < 0; }
export function seqLe(a: number, b: number): boolean { return ((a - b) | 0) <= 0; }
export function seqGt(a: number, b: number): boolean { return ((a - b) | 0) > 0; }
export function seqGe(a: number, b: number): boolean { return ((a - b) | 0) >= 0; }
