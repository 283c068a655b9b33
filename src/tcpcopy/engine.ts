/**
 * The session engine: captured client packets in, rewritten packets to the target out, the
 * target's reply headers (from intercept) in. One Session object per replayed connection,
 * found in two session tables by small-integer hashes; no per-packet closures.
 *
 * Why this file is over 600 lines (~870, a quarter of them comments): it is the state machine
 * of a replayed connection (client side, handshake, sending and pacing, replies by what
 * arrives, reconnects, capture gaps, timers, ending), whose parts call each other in both
 * directions; it is kept in one file so that it reads as one. What does not need the state
 * machine lives beside it: engine-options (settings), backlog (the backlog policy), ports
 * (source ports), output (packets to the target), kept-packets (a session's packet list),
 * session and session-table (state and look-up), ticker (the caller's clock).
 *
 * Time is passed in: every entry point takes the caller's `nowMs` (one clock read per batch
 * of captured packets, per batch of replies, per timer tick); the engine never reads a clock
 * and owns no timer. The caller runs `poll(nowMs)` when `nextPollMs()` is due (it is told of
 * earlier deadlines through `onPollAt`) and `sweep(nowMs)` about once a second.
 */
import { copyToSpan } from '../wire/copy';
import { tcpChecksumIsPartial } from '../wire/checksum';
import { Ip } from '../wire/ipv4';
import { ReplyRecord, ReplyRecord6, MAX_OPTION_LEN, REPLY_RECORD_PAYLOAD_SIZE, REPLY_RECORD_SIZE, Rec, Rec6 } from '../control/records';
import { Ipv6AddrTable } from '../wire/addr6-table';
import { findTcpOption, Tcp, TcpFlag, TcpOpt, TsOpt } from '../wire/tcp';
import type { Tcp6Packet, TcpPacket } from '../wire/packet';
import type { PacketSender } from '../io/raw-socket';
import { BacklogGovernor, lastQueuedRequest, unsentRequests } from './backlog';
import { EngineOptions, RouteRegistrar, SEG_OVERHEAD } from './engine-options';
import { dropAcked, keepCopy, trimSent } from './kept-packets';
import { SessionOutput } from './output';
import { PortAllocator } from './ports';
import { SegPool } from './seg-pool';
import { Seg, Session, SessState, seqGe, seqGt, seqLe, seqLt } from './session';
import { SessionTable, TableKey } from './session-table';
import { TimerWheel } from './timer-wheel';
import { TcpcopyStats } from './stats';
import { HOLD, ProtocolModule, SEND } from './modules/module';
import { mix32, TransferRule } from './transfer';
import { get16, get32, put32 } from '../wire/bytes';

export { DEFAULT_ENGINE_OPTIONS, SEG_OVERHEAD } from './engine-options';
export type { EngineOptions, RouteRegistrar } from './engine-options';

/** First SYN retransmission after 1 s, then 2 s and 4 s: four SYNs in all. */
const SYN_RTO_MS = 1000;
const SYN_TRIES = 4;
/** After a challenge ACK in SYN-SENT, the SYN goes again this soon. */
const CHALLENGE_RETRY_MS = 20;
const MIN_RTO_MS = 200;
const MAX_RTO_MS = 4000;
const MAX_RETRIES = 8;
/** Reconnects in a row without any response data in between before a session is given up. */
const MAX_BARREN_RECONNECTS = 5;
const LOCALHOST = 0x7f000001;
/**
 * An IPv6 reply record is handled by the IPv4 record code with its offset moved by this much:
 * the TCP header (and every TCP field) is then where an IPv4 record has it (Rec.Tcp).
 */
const REC6_SHIFT = Rec6.Tcp - Rec.Tcp;

/** A captured client packet of either family (the engine reads the fields both views have). */
export type ClientPacket = TcpPacket | Tcp6Packet;

export class Engine {
  readonly stats = new TcpcopyStats();
  /** Sessions by the client address as sent: replies find them here. */
  readonly byReply = new SessionTable(TableKey.Reply);
  /** Sessions by the captured client address, one table per copy. */
  readonly byIngress: SessionTable[];
  /** IPv6 addresses of the sessions (and the -c ones), by key: see Session.clientIp. */
  readonly addr6 = new Ipv6AddrTable();
  /** Keys of the IPv6 -c addresses (held for the engine's life). */
  private readonly clientKeys6: number[];
  private readonly addrScratch = Buffer.alloc(16);
  private readonly wheel: TimerWheel<Session>;
  private readonly backlog: BacklogGovernor;
  private readonly ports: PortAllocator;
  private readonly out: SessionOutput;
  private readonly dirty: Session[] = [];
  /** Kept packets' Segs and buffers, reused. */
  readonly segPool = new SegPool();
  private firstPacketMs = 0;
  /** New sessions are refused while true (memory limit near). */
  shedding = false;
  /**
   * The capture is behind the traffic (the kernel is about to drop packets): new sessions are
   * refused until it catches up, so the ones already started keep every packet.
   */
  captureBehind = false;
  private readonly onSessionTimer = (s: Session, now: number): void => this.onTimer(s, now);
  /** Told when a timer deadline earlier than any before is set (the caller polls then). */
  onPollAt: ((atMs: number) => void) | null = null;
  /** Told when sessions gave way to the backlog limit (for a log line). */
  onBacklogTrimmed: ((ended: number, backlogBytes: number) => void) | null = null;

  /**
   * Told each time an IPv6 session is refused because no connected intercept accepted the
   * IPv6 capability (the caller warns once).
   */
  onIpv6Refused: ((s: Session) => void) | null = null;

  /** Told each time a session is skipped by the protocol module (the caller logs once per reason). */
  onSessionSkipped: ((reason: string, s: Session) => void) | null = null;

  constructor(readonly opts: EngineOptions, sender: PacketSender, private readonly links: RouteRegistrar, nowMs: number,
    /** The protocol module (--module); null: plain replay, and no hook is ever called. */
    readonly module: ProtocolModule | null = null) {
    this.byIngress = Array.from({ length: Math.max(1, opts.copies) }, () => new SessionTable(TableKey.Ingress));
    this.wheel = new TimerWheel<Session>(2, 4096, nowMs, (at) => this.onPollAt?.(at));
    this.backlog = new BacklogGovernor(opts.backlogLimitBytes, this.stats);
    this.ports = new PortAllocator(opts.portShift, opts.copies, this.byReply);
    this.out = new SessionOutput(sender, this.stats, opts.mss, this.addr6);
    this.clientKeys6 = (opts.clientAddrs6 ?? []).map((a) => {
      const k = this.addr6.intern(a, 0);
      this.addr6.acquire(k);
      return k;
    });
  }

  /** The sender of IPv6 packets (a raw IPv6 socket); without one, IPv6 packets are counted in noIpv6Sender. */
  set sender6(s: PacketSender | null) { this.out.sender6 = s; }
  get sender6(): PacketSender | null { return this.out.sender6; }

  /** Bytes of kept packets of all sessions (SEG_OVERHEAD each included). */
  get backlogBytes(): number { return this.backlog.bytes; }
  /** The backlog went over its limit and has not been down to half of it since. */
  get backlogFull(): boolean { return this.backlog.full; }

  /** Fires the session timers due by `nowMs` (SYN retransmission, RTO, pacing). */
  poll(nowMs: number): void { this.wheel.advance(nowMs); }

  /** When `poll` is next needed (a candidate: it may find nothing due), Infinity for never. */
  nextPollMs(): number { return this.wheel.nextWakeMs(); }

  /** Sessions not yet over (ended sessions still lingering for late replies are not counted). */
  get activeSessions(): number {
    let n = 0;
    for (let s = this.byReply.first; s !== null; s = s.nextInOrder) if (s.state !== SessState.Done) n++;
    return n;
  }

  // ---------------------------------------------------------------- client side

  /**
   * One captured client packet, already validated (`pkt` views it) and matched to `rule`.
   * Called synchronously by the capture; the packet bytes are copied if kept.
   */
  onClientPacket(pkt: TcpPacket, rule: TransferRule, nowMs: number): void {
    const st = this.stats;
    let srcIp = pkt.ip.src;
    if (rule.targetIp === LOCALHOST) {
      // A local target only makes sense for local clients (the original's rule).
      if (srcIp !== LOCALHOST) { st.localhostDropped++; return; }
    } else if (srcIp === LOCALHOST) {
      // The target cannot answer 127.0.0.1 of another host: -H gives those clients an address.
      if (this.opts.localhostReplacement === 0) { st.localhostDropped++; return; }
      srcIp = this.opts.localhostReplacement;
    }
    this.clientPacket(pkt, srcIp, rule, nowMs);
  }

  /**
   * The IPv6 counterpart of `onClientPacket` (an IPv6 rule matched). The client address is
   * interned into a key for the look-ups; a packet that started no session gives it back.
   */
  onClientPacket6(pkt: Tcp6Packet, rule: TransferRule, nowMs: number): void {
    const key = this.addr6.intern(pkt.ip.buf, pkt.ip.srcOffset);
    this.clientPacket(pkt, key, rule, nowMs);
    this.addr6.dropIfUnused(key);
  }

  /** A client packet of either family; `srcIp` is its address (IPv6: its key). */
  private clientPacket(pkt: ClientPacket, srcIp: number, rule: TransferRule, nowMs: number): void {
    const st = this.stats;
    const tcp = pkt.tcp;
    const srcPort = tcp.srcPort;
    const flags = tcp.flags;
    const plen = pkt.payloadLen;
    st.clientPackets++;
    if (this.firstPacketMs === 0) this.firstPacketMs = nowMs;
    if (plen > 0) { st.clientPayloadPackets++; st.clientPayloadBytes += plen; }
    const syn = (flags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN;
    if (syn) st.clientSyns++;
    if ((flags & TcpFlag.SYN) !== 0 && !syn) return; // SYN-ACK from a "client": not client-initiated
    const copies = this.byIngress.length;
    for (let c = 0; c < copies; c++) {
      const table = this.byIngress[c];
      let s: Session | undefined = table.get(srcIp, srcPort);
      if (s !== undefined && s.discarded) {
        // Ended for the backlog limit: its connection's packets are dropped until the backlog
        // is down to half and a new request begins (its captured ack differs from the last
        // dropped one's: the online server answered in between). That request then starts a
        // new session (fake SYN), so a long connection loses the requests of the overload,
        // not the rest of its life. A new SYN on the port is a new connection.
        if (!syn) {
          const ack = tcp.ack;
          if (plen > 0 && s.lastReqAck !== -1 && !s.skipped && !this.backlog.holdsNewSessions() && ack !== s.lastReqAck && !this.opts.onlyFullSessions && this.module === null) {
            table.remove(s);
            st.backlogResumed++;
            s = undefined;
          } else {
            s.lingerUntilMs = nowMs + this.opts.lingerMs;
            if (plen > 0) {
              if (s.skipped) st.skippedSessionPackets++; else st.backlogDroppedPackets++;
              s.lastReqAck = ack;
            }
            if ((flags & (TcpFlag.FIN | TcpFlag.RST)) !== 0) table.remove(s);
            continue;
          }
        } else {
          table.remove(s);
          s = undefined;
        }
      }
      if (syn) {
        if (s !== undefined) {
          if (s.synSeg !== null && !s.fakeSyn && s.isn === tcp.seq) continue; // client retransmitted its SYN
          // The client reuses the port for a new connection. The old session already holds
          // every packet of its connection (they were captured before this SYN): let it
          // finish on its own, out of the client table, while the new one gets a free port.
          st.portReuses++;
          table.remove(s);
        }
        if (!this.admit(srcIp, srcPort, nowMs)) return;
        s = this.newSession(rule, c, srcIp, srcPort, nowMs);
        if (s === undefined) continue;
        st.sessionsFromSyn++;
        if (this.module !== null) this.module.sessionStarted(s);
        this.startWithCapturedSyn(s, pkt, nowMs);
        continue;
      }
      if (s === undefined) {
        if (plen === 0) continue; // pure ACK, FIN or RST of a connection we do not replay
        if (this.opts.onlyFullSessions) { if (c === 0) st.noSynRefused++; continue; }
        if (!this.admit(srcIp, srcPort, nowMs)) return;
        s = this.newSession(rule, c, srcIp, srcPort, nowMs);
        if (s === undefined) continue;
        s.fakeSyn = true;
        if (this.module !== null && this.module.wholeSessionsOnly) {
          // Already running when tcpcopy started (or its SYN was lost): its login is not known.
          this.skipSession(s, nowMs, 'no-handshake');
          if (plen > 0) st.skippedSessionPackets++;
          continue;
        }
        st.sessionsFaked++;
        s.lastClientMs = nowMs;
        if (!this.keep(s, pkt, nowMs)) continue;
        this.sendFakeSyn(s, nowMs);
        continue;
      }
      s.lastClientMs = nowMs;
      if (plen === 0 && (flags & (TcpFlag.FIN | TcpFlag.RST)) === 0) {
        // Pure ACK: tcpcopy acknowledges the target itself. Before the first request its ack
        // is the online server's next sequence number: the baseline for greeting detection.
        if (c === 0) st.clientPureAcks++;
        if (s.lastReqAck === -1 && s.requests === 0 && !s.fakeSyn) s.lastReqAck = tcp.ack;
        continue;
      }
      if (!this.keep(s, pkt, nowMs)) continue;
      if (s.state === SessState.Established) this.pump(s, nowMs);
    }
    if (this.backlog.trimDue) this.trimBacklog(nowMs);
  }

  /** `-r` / `-g` sampling, memory shedding, the backlog's hold, no intercept. */
  private admit(srcIp: number, srcPort: number, nowMs: number): boolean {
    let pct = this.opts.percentage;
    if (this.opts.gradual) pct = Math.min(100, Math.floor((nowMs - this.firstPacketMs) / 1000) + 1);
    if (pct < 100 && mix32(srcIp, srcPort) % 100 >= pct) { this.stats.notSampled++; return false; }
    if (this.shedding) { this.stats.shed++; return false; }
    if (this.captureBehind) { this.stats.shedCaptureBehind++; return false; }
    if (this.backlog.holdsNewSessions()) { this.stats.backlogShed++; return false; }
    // No intercept: the session could not learn the target's replies. Refuse it here rather
    // than start it (and fake handshakes for its later packets) only to drop it.
    if (!this.links.ready) { this.stats.noIntercept++; return false; }
    return true;
  }

  private newSession(rule: TransferRule, copy: number, srcIp: number, srcPort: number, nowMs: number): Session | undefined {
    const o = this.opts;
    const list = srcIp < 0 ? this.clientKeys6 : o.clientAddrs;
    const sentIp = list.length ? list[mix32(srcIp, copy) % list.length] : srcIp;
    const port = this.ports.allocate(sentIp, this.ports.preferred(srcPort, copy));
    if (port < 0) {
      this.stats.sessionsAborted++;
      this.countAbort('no-free-port');
      return undefined;
    }
    const s = new Session(rule, copy, srcIp, srcPort, sentIp, port, nowMs, this.onSessionTimer);
    if (srcIp < 0) { this.addr6.acquire(srcIp); this.addr6.acquire(sentIp); }
    this.byIngress[copy].add(s);
    this.byReply.add(s);
    this.stats.sessionsCreated++;
    return s;
  }

  /**
   * Keeps a copy of a captured payload/FIN/RST packet in the session's seq-ordered list,
   * split into MTU-sized segments when GRO/TSO made it larger. False when it was dropped.
   */
  private keep(s: Session, pkt: ClientPacket, nowMs: number): boolean {
    const ip = pkt.ip;
    const tcp = pkt.tcp;
    const seq = tcp.seq;
    const plen = pkt.payloadLen;
    const flags = tcp.flags;
    const fin = (flags & TcpFlag.FIN) !== 0 ? 1 : 0;
    if ((s.state === SessState.Established || s.state === SessState.SynSent) && (flags & TcpFlag.RST) === 0 &&
      seqLe((seq + plen + fin) >>> 0, s.sndNxt)) {
      // Entirely before what was sent already: a client retransmission.
      this.stats.clientRetransmissions++;
      return false;
    }
    if (s.segs.length - s.nextIdx >= this.opts.maxSegsPerSession) {
      this.abort(s, nowMs, 'too-many-packets');
      return false;
    }
    keepCopy(s, pkt, this.opts.mtu, this.backlog, this.stats, this.segPool);
    return true;
  }

  /** The backlog went over its limit: the sessions furthest behind give way (see BacklogGovernor). */
  private trimBacklog(nowMs: number): void {
    const target = this.backlog.trimTarget();
    if (target < 0) return;
    const victims = this.backlog.victims(this.byReply.values());
    let ended = 0;
    for (let i = 0; i < victims.length && this.backlog.bytes > target; i++) {
      const s = victims[i];
      if (this.skipBacklog(s, nowMs)) continue;
      this.abort(s, nowMs, 'backlog');
      s.discarded = true;
      s.lastReqAck = -1; // from now on: the captured ack of the last packet dropped
      s.lingerUntilMs = nowMs + this.opts.lingerMs;
      this.byIngress[s.copy].add(s);
      ended++;
    }
    this.onBacklogTrimmed?.(ended, this.backlog.bytes);
  }

  /**
   * A session far behind: drop the requests queued before its last one and go on with that one
   * on a new connection (RST, fake SYN continuing the client's sequence space there), as after
   * a capture gap. The session keeps its place, so the replay keeps its parallelism. False
   * when fewer than two requests are queued, or the session is neither connecting nor
   * connected (then it is ended instead).
   */
  private skipBacklog(s: Session, nowMs: number): boolean {
    if (s.state !== SessState.Established && s.state !== SessState.SynSent) return false;
    const j = lastQueuedRequest(s);
    if (j < 0) return false;
    const from = s.nextIdx;
    const lost = unsentRequests(s, from, j);
    for (let k = from; k < j; k++) this.backlog.release(s, s.segs[k].size);
    this.segPool.giveRange(s.segs, from, j);
    s.segs.splice(from, j - from);
    this.stats.backlogSkippedRequests += lost.requests;
    this.stats.backlogSkippedBytes += lost.bytes;
    // Not a reconnect forced by the target: it does not count towards giving the session up.
    s.barrenReconnects--;
    this.reconnect(s, nowMs, false, s.segs[s.nextIdx].seq);
    return true;
  }

  // ---------------------------------------------------------------- handshake

  private startWithCapturedSyn(s: Session, pkt: ClientPacket, nowMs: number): void {
    const ip = pkt.ip;
    const tcp = pkt.tcp;
    const tot = ip.totalLen;
    const g = this.segPool.take(tot);
    copyToSpan(ip.buf, ip.off, g, 0, tot);
    const csumOk = !tcpChecksumIsPartial(ip.buf, ip.off, tcp.off, tot - ip.headerLen);
    if (s.synSeg !== null) this.segPool.give(s.synSeg);
    s.synSeg = g.init(tot, tcp.seq, 0, tcp.flags, 0, ip.headerLen, tcp.headerLen, csumOk);
    s.isn = tcp.seq;
    s.ipId = s.v6 ? 0 : (pkt as TcpPacket).ip.id;
    s.synWs = tcp.windowScale() >= 0;
    const ts = tcp.timestampOffset();
    s.synTs = ts >= 0;
    if (ts >= 0) s.tsValMax = get32(ip.buf, ts + TsOpt.Val);
    this.sendSyn(s, nowMs);
  }

  /** No captured SYN (or a reconnect): a fake SYN just before the first kept packet (or `resumeAt`). */
  private sendFakeSyn(s: Session, nowMs: number, resumeAt = -1): void {
    const first = s.segs[s.nextIdx];
    if (first === undefined) return;
    s.isn = ((resumeAt === -1 ? first.seq : resumeAt) - 1) >>> 0;
    if (s.synSeg !== null) { this.segPool.give(s.synSeg); s.synSeg = null; }
    s.synWs = true;
    s.synTs = false;
    s.ipId = s.v6 ? 0 : (get16(first.buf, Ip.Id) - 2) & 0xffff;
    this.sendSyn(s, nowMs);
  }

  private sendSyn(s: Session, nowMs: number): void {
    if (!this.announce(s)) {
      if (s.v6 && this.links.ready) {
        // Intercepts are there, none of them replays IPv6 (the original C intercept). The
        // rest of the connection is dropped (as for a skipped session), not tried per packet.
        this.stats.ipv6Refused++;
        this.onIpv6Refused?.(s);
        this.finish(s, nowMs, false);
        s.discarded = true;
        s.skipped = true;
        s.lastReqAck = -1;
        s.lingerUntilMs = nowMs + this.opts.lingerMs;
        this.byIngress[s.copy].add(s);
        return;
      }
      this.stats.noIntercept++;
      this.finish(s, nowMs, false);
      return;
    }
    s.state = SessState.SynSent;
    s.sndNxt = (s.isn + 1) >>> 0;
    s.sndUna = s.isn;
    s.synTries = 1;
    this.emitSyn(s);
    this.stats.synsSent++;
    s.synDue = nowMs + SYN_RTO_MS;
    this.rearm(s);
  }

  private resendSyn(s: Session, nowMs: number): void {
    if (s.synTries >= SYN_TRIES) {
      this.stats.synTimeouts++;
      this.finish(s, nowMs, false);
      return;
    }
    s.synTries++;
    this.emitSyn(s);
    this.stats.synRetransmissions++;
    s.synDue = nowMs + SYN_RTO_MS * (1 << (s.synTries - 1));
    this.rearm(s);
  }

  private emitSyn(s: Session): void {
    if (s.synSeg !== null) this.out.sendSeg(s, s.synSeg);
    else this.out.sendFake(s, TcpFlag.SYN, s.isn, 0, true);
  }

  // ---------------------------------------------------------------- sending

  /**
   * Sends kept packets in seq order as far as the rules allow: no gap, the target's window,
   * and request pacing (a new request waits until the target answered the last).
   */
  private pump(s: Session, nowMs: number): void {
    const segs = s.segs;
    while (s.nextIdx < segs.length && s.state === SessState.Established) {
      const seg = segs[s.nextIdx];
      const fin = (seg.flags & TcpFlag.FIN) !== 0 ? 1 : 0;
      const rst = (seg.flags & TcpFlag.RST) !== 0;
      if (seqLt(seg.seq, s.sndNxt) && !rst) {
        const end = (seg.seq + seg.len + fin) >>> 0;
        if (seqLe(end, s.sndNxt)) {
          // Already sent (a client retransmission captured after the original).
          segs.splice(s.nextIdx, 1);
          this.backlog.release(s, seg.size);
          this.segPool.give(seg);
          this.stats.clientRetransmissions++;
          continue;
        }
        trimSent(s, seg, (s.sndNxt - seg.seq) >>> 0, this.backlog);
      }
      if (seqGt(seg.seq, s.sndNxt) && !rst) {
        // A captured packet is missing: wait for it (it may still come, out of order), but
        // not long: a packet the capture dropped never comes, and the session would stall.
        if (s.gapSinceMs === 0) s.gapSinceMs = nowMs;
        if (nowMs - s.gapSinceMs >= this.opts.gapTimeoutMs) { this.skipGap(s, nowMs); return; }
        s.paceDue = s.gapSinceMs + this.opts.gapTimeoutMs;
        this.rearm(s);
        return;
      }
      s.gapSinceMs = 0;
      const ackFlag = (seg.flags & TcpFlag.ACK) !== 0;
      if (s.targetClosed && !s.finSent && seg.len > 0) {
        // The target closed this connection (a server-side keep-alive limit) and the client
        // goes on: its next request needs a new connection to be answered.
        this.reconnect(s, nowMs, false);
        return;
      }
      const newRequest = ackFlag && s.lastReqAck !== -1 && seg.onlineAck !== s.lastReqAck;
      if (newRequest && !this.opts.noWait && !s.targetClosed) {
        let expected = (seg.onlineAck - s.lastReqAck) >>> 0;
        if (expected > 0x7fffffff) expected = 0;
        if (!(expected > 0 && s.respBytes >= expected)) {
          const quietAt = s.respBytes > 0 ? s.lastDataMs + this.opts.quietMs : Infinity;
          const giveUpAt = s.reqSentMs + this.opts.responseTimeoutMs;
          const at = Math.min(quietAt, giveUpAt);
          if (nowMs < at) {
            s.paceDue = at;
            this.rearm(s);
            return;
          }
        }
      }
      if (seg.len > 0 && s.inFlight > 0 && s.inFlight + seg.len > s.peerWindow) return; // window full
      if (s.proto !== null && seg.len > 0 && !seg.rewritten) {
        // The protocol module sees (and may rewrite) each packet before its first sending.
        const v = this.module!.beforeSend(s, seg);
        if (v !== SEND) {
          if (v !== HOLD) this.skipSession(s, nowMs, v);
          return; // HOLD: a reply from the target pumps again
        }
      }
      s.paceDue = 0;
      if (rst) {
        put32(seg.buf, seg.ipHdrLen + Tcp.Seq, s.sndNxt);
        seg.csumOk = false;
        this.out.sendSeg(s, seg);
        this.stats.rstsSent++;
        this.finish(s, nowMs, true);
        return;
      }
      this.out.sendSeg(s, seg);
      s.nextIdx++;
      s.sndNxt = (seg.seq + seg.len + fin) >>> 0;
      if (seg.len > 0) {
        this.stats.payloadPacketsSent++;
        this.stats.payloadBytesSent += seg.len;
      }
      if (fin) { s.finSent = true; this.stats.finsSent++; }
      if (newRequest || s.lastReqAck === -1 || s.requests === 0) {
        if (ackFlag) s.lastReqAck = seg.onlineAck;
        if (seg.len > 0) {
          s.requests++;
          this.stats.requestsSent++;
          s.reqStartSeq = seg.seq;
          s.reqAnswered = false;
        }
        s.respBytes = 0;
        s.reqSentMs = nowMs;
      }
      if (s.rtoDue === 0) { s.rtoDue = nowMs + rto(s); this.rearm(s); }
    }
  }

  // ---------------------------------------------------------------- replies

  /**
   * One reply record from intercept (64 or 192 bytes at `rec[off]`), handled by what it is,
   * as the original's reply processing splits it: to an ended session, RST, in SYN-SENT
   * (SYN-ACK or challenge ACK), a retransmitted SYN-ACK, then ACK, data and FIN together.
   */
  onReply(rec: Buffer, off: number, nowMs: number): void {
    if ((rec[off] >>> 4) === 6) { this.onReply6(rec, off, nowMs); return; }
    const st = this.stats;
    st.replies++;
    const s = this.byReply.get(ReplyRecord.dstIp(rec, off), ReplyRecord.dstPort(rec, off));
    if (s === undefined) { st.repliesNoSession++; return; }
    this.reply(s, rec, off, ReplyRecord.payloadLen(rec, off), nowMs);
  }

  /**
   * An IPv6 reply record (two slots, our extension): found by the key of its destination
   * address, then handled as an IPv4 record whose offset is moved so that its TCP header is at
   * Rec.Tcp (REC6_SHIFT).
   */
  private onReply6(rec: Buffer, off: number, nowMs: number): void {
    const st = this.stats;
    st.replies++;
    if (off + 2 * REPLY_RECORD_SIZE > rec.length) { st.badRecords++; return; }
    const key = this.addr6.find(rec, off + Rec6.DstIp);
    const s = key === 0 ? undefined : this.byReply.get(key, ReplyRecord6.dstPort(rec, off));
    if (s === undefined || !s.v6) { st.repliesNoSession++; return; }
    this.reply(s, rec, off + REC6_SHIFT, ReplyRecord6.payloadLen(rec, off), nowMs);
  }

  /** A reply record of `s` (its TCP header at `off + Rec.Tcp`) with `plen` payload bytes (-1: bad). */
  private reply(s: Session, rec: Buffer, off: number, plen: number, nowMs: number): void {
    const st = this.stats;
    if (plen < 0) { st.badRecords++; return; }
    const flags = ReplyRecord.flags(rec, off);
    const seq = ReplyRecord.seq(rec, off);
    const ack = ReplyRecord.ack(rec, off);
    s.lastReplyMs = nowMs;
    if (plen > 0) { st.repliesWithData++; st.replyPayloadBytes += plen; }
    if ((flags & TcpFlag.FIN) !== 0) st.repliesFin++;

    if (s.state === SessState.Done) { this.replyToEnded(s, flags, seq, ack, plen); return; }
    if ((flags & TcpFlag.RST) !== 0) { this.onRst(s, flags, seq, ack, nowMs); return; }
    if (s.state === SessState.SynSent) { this.onReplyInSynSent(s, rec, off, flags, seq, ack, nowMs); return; }
    if (s.state !== SessState.Established) return;
    if ((flags & TcpFlag.SYN) !== 0) {
      // A retransmitted SYN-ACK: our handshake ACK was lost.
      this.out.sendAck(s);
      return;
    }
    // Data, FIN or ACK far outside the target's sequence space: an earlier connection's.
    if (!inWindow(seq, s.rcvNxt)) { st.repliesOutOfWindow++; return; }
    if (s.tsOk) {
      const o = findTcpOption(rec, off + Rec.Tcp, recordTcpHeaderLen(rec, off), TcpOpt.Timestamp, 10);
      if (o >= 0) s.tsRecent = get32(rec, o + TsOpt.Val);
    }
    if ((flags & TcpFlag.ACK) !== 0) this.onAck(s, ack, plen, flags, ReplyRecord.window(rec, off) << s.wscale, nowMs);
    if (s.proto !== null && plen > 0 && seq === s.rcvNxt && this.moduleResponse(s, rec, off, plen, nowMs)) return;
    if (plen > 0) this.onData(s, seq, plen, nowMs);
    if ((flags & TcpFlag.FIN) !== 0 && this.onFin(s, seq, plen, nowMs)) return;
    if (s.finSent && s.targetClosed && s.sndUna === s.sndNxt) {
      if (s.needAck) this.out.sendAck(s);
      this.finish(s, nowMs, true);
      return;
    }
    this.pump(s, nowMs);
    this.rearm(s);
  }

  /**
   * New response data for the protocol module: the payload as far as the (192-byte) reply
   * record holds it. True when the module skipped the session.
   */
  private moduleResponse(s: Session, rec: Buffer, off: number, plen: number, nowMs: number): boolean {
    const tcpHl = ReplyRecord.tcpHeaderLen(rec, off);
    const from = off + Rec.Tcp + tcpHl;
    const end = Math.min(from + plen, off + REPLY_RECORD_PAYLOAD_SIZE, rec.length);
    const v = from < end ? this.module!.onResponse(s, rec, from, end) : 'bad-greeting';
    if (v === SEND) return false;
    this.skipSession(s, nowMs, v);
    return true;
  }

  /**
   * The protocol module cannot replay this session: it is ended (RST to the target if a
   * connection is open), counted by reason, and the rest of its connection's packets dropped.
   */
  private skipSession(s: Session, nowMs: number, reason: string): void {
    const st = this.stats;
    st.sessionsSkipped++;
    st.sessionsSkippedByReason[reason] = (st.sessionsSkippedByReason[reason] ?? 0) + 1;
    s.proto = null;
    this.onSessionSkipped?.(reason, s);
    this.abort(s, nowMs, 'skipped');
    s.discarded = true;
    s.skipped = true;
    s.lastReqAck = -1;
    s.lingerUntilMs = nowMs + this.opts.lingerMs;
    this.byIngress[s.copy].add(s);
  }

  /** Late replies to an ended session: the target still has data or a FIN for us. */
  private replyToEnded(s: Session, flags: number, seq: number, ack: number, plen: number): void {
    if ((flags & TcpFlag.RST) !== 0) return;
    if (plen > 0) this.out.sendFake(s, TcpFlag.RST | TcpFlag.ACK, ack, (seq + plen) >>> 0);
    else if ((flags & TcpFlag.FIN) !== 0) this.out.sendFake(s, TcpFlag.ACK, s.sndNxt, (seq + 1) >>> 0);
  }

  private onRst(s: Session, flags: number, seq: number, ack: number, nowMs: number): void {
    const st = this.stats;
    st.repliesRst++;
    if (s.state === SessState.SynSent) {
      // RFC 793: in SYN-SENT only a RST acknowledging our SYN counts; others concern an
      // older connection on this 4-tuple.
      if ((flags & TcpFlag.ACK) === 0 || ack !== ((s.isn + 1) >>> 0)) return;
      st.sessionsResetByTarget++;
      this.finish(s, nowMs, false);
      return;
    }
    // A RST far from the sequence number we expect belongs to an earlier connection on
    // this 4-tuple (one that a reconnect replaced): it must not end this one (RFC 5961).
    if (!inWindow(seq, s.rcvNxt)) { st.repliesOutOfWindow++; return; }
    // A RST beyond what we heard: the target sent response bytes that were not seen.
    if (seqGt(seq, s.rcvNxt)) s.reqAnswered = true;
    // Requests the target has not acknowledged (sent into a closed socket, or not sent
    // yet) go on a new connection.
    if (s.hasUnsentData || s.sndUna !== s.sndNxt || unanswered(s)) { this.reconnect(s, nowMs, false); return; }
    st.sessionsResetByTarget++;
    this.finish(s, nowMs, false);
  }

  private onReplyInSynSent(s: Session, rec: Buffer, off: number, flags: number, seq: number, ack: number, nowMs: number): void {
    if ((flags & (TcpFlag.SYN | TcpFlag.ACK)) === (TcpFlag.SYN | TcpFlag.ACK) && ack === ((s.isn + 1) >>> 0)) {
      this.onSynAck(s, rec, off, seq, nowMs);
      return;
    }
    if ((flags & TcpFlag.ACK) !== 0) {
      // A challenge ACK: the target still holds an older connection on this 4-tuple.
      // Reset it (seq = its ack is in window) and try the SYN again shortly.
      this.out.sendFake(s, TcpFlag.RST, ack, 0);
      this.stats.rstsSent++;
      s.synDue = nowMs + CHALLENGE_RETRY_MS;
      this.rearm(s);
    }
  }

  /** The SYN-ACK arrived: complete the handshake and send what is waiting. */
  private onSynAck(s: Session, rec: Buffer, off: number, seq: number, nowMs: number): void {
    const st = this.stats;
    st.handshakes++;
    if (!s.everEstablished) { s.everEstablished = true; st.sessionsEstablished++; }
    s.targetIsn = seq;
    s.rcvNxt = (seq + 1) >>> 0;
    s.sndUna = (s.isn + 1) >>> 0;
    s.synDue = 0;
    const tcpAt = off + Rec.Tcp;
    const hl = recordTcpHeaderLen(rec, off);
    const ws = findTcpOption(rec, tcpAt, hl, TcpOpt.WindowScale, 3);
    s.wscale = s.synWs && ws >= 0 ? Math.min(rec[ws + 2], 14) : 0;
    s.peerWindow = ReplyRecord.window(rec, off); // never scaled in a SYN
    const ts = findTcpOption(rec, tcpAt, hl, TcpOpt.Timestamp, 10);
    s.tsOk = s.synTs && ts >= 0;
    if (s.tsOk) s.tsRecent = get32(rec, ts + TsOpt.Val);
    s.state = SessState.Established;
    s.reqSentMs = nowMs;
    s.respBytes = 0;
    // The first captured packet (data or FIN, with ACK) completes the handshake itself; a
    // separate ACK goes only when nothing can be sent yet. One packet less per connection.
    s.needAck = true;
    this.pump(s, nowMs);
    if (s.needAck && s.state === SessState.Established) this.out.sendAck(s);
    this.rearm(s);
  }

  /** The target acknowledged (some of) our data, or repeats its ack (fast retransmission). */
  private onAck(s: Session, ack: number, plen: number, flags: number, win: number, nowMs: number): void {
    if (seqGt(ack, s.sndUna) && seqLe(ack, s.sndNxt)) {
      s.sndUna = ack;
      s.dupAcks = 0;
      s.rtoBackoff = 0;
      s.retries = 0;
      dropAcked(s, this.backlog, this.segPool);
      s.rtoDue = s.sndUna === s.sndNxt ? 0 : nowMs + rto(s);
      // A partial ack after a retransmission: the next hole is lost too (NewReno).
      if (s.recovering) {
        if (s.sndUna === s.sndNxt || seqGe(s.sndUna, s.recoverSeq)) s.recovering = false;
        else this.retransmit(s, nowMs, true);
      }
    } else if (ack === s.sndUna && plen === 0 && (flags & TcpFlag.FIN) === 0 && s.sndUna !== s.sndNxt && win === s.peerWindow) {
      if (++s.dupAcks === 3) this.retransmit(s, nowMs, true);
    }
    s.peerWindow = win;
  }

  /** Response data: counted as heard (with bytes before it that intercept never handed over). */
  private onData(s: Session, seq: number, plen: number, nowMs: number): void {
    const end = (seq + plen) >>> 0;
    if (seqGt(end, s.rcvNxt)) {
      s.respBytes += (end - s.rcvNxt) >>> 0;
      s.barrenReconnects = 0;
      if (!s.reqAnswered) {
        s.reqAnswered = true;
        // The request kept until its response began can go now.
        if (s.head < s.nextIdx) dropAcked(s, this.backlog, this.segPool);
      }
      s.rcvNxt = end;
      s.lastDataMs = nowMs;
    }
    this.owe(s);
  }

  /** The target closed its side. True when the session reconnected (the reply is handled). */
  private onFin(s: Session, seq: number, plen: number, nowMs: number): boolean {
    const finSeq = (seq + plen) >>> 0;
    if (seqGe(finSeq, s.rcvNxt) || !s.targetClosed) {
      if (seqGt(finSeq, s.rcvNxt)) {
        // Reply segments intercept missed: the target did answer (no replay on its close).
        s.respBytes += (finSeq - s.rcvNxt) >>> 0;
        s.reqAnswered = true;
        s.rcvNxt = finSeq;
      }
      if (!s.targetClosed) s.rcvNxt = (s.rcvNxt + 1) >>> 0;
      s.targetClosed = true;
    }
    this.owe(s);
    if ((s.hasUnsentData || unanswered(s)) && !s.finSent) {
      this.reconnect(s, nowMs, true);
      return true;
    }
    return false;
  }

  /** Retransmits the first unacknowledged packet (RTO or three duplicate ACKs). */
  private retransmit(s: Session, nowMs: number, fast: boolean): void {
    const segs = s.segs;
    if (!s.recovering) { s.recovering = true; s.recoverSeq = s.sndNxt; }
    for (let i = s.head; i < s.nextIdx; i++) {
      const g = segs[i];
      const end = (g.seq + g.len + ((g.flags & TcpFlag.FIN) !== 0 ? 1 : 0)) >>> 0;
      if (seqGt(end, s.sndUna)) {
        this.out.sendSeg(s, g);
        if (fast) this.stats.fastRetransmissions++; else this.stats.retransmissions++;
        break;
      }
    }
    s.rtoDue = nowMs + rto(s);
    this.rearm(s);
  }

  /** An ACK is owed: sent once the current batch of replies is processed. */
  private owe(s: Session): void {
    s.needAck = true;
    if (!s.dirty) { s.dirty = true; this.dirty.push(s); }
  }

  /** After a batch of reply records: send the ACKs that no data packet carried. */
  flushAcks(): void {
    const d = this.dirty;
    for (let i = 0; i < d.length; i++) {
      const s = d[i];
      s.dirty = false;
      if (s.needAck && s.state === SessState.Established) this.out.sendAck(s);
    }
    d.length = 0;
  }

  /**
   * Resets the target connection and replays the rest on a new one (fake handshake continuing
   * the client's sequence space). Callers: the target closed (FIN, RST) with captured
   * requests left or unanswered, the target closed and the client sends a new request, a
   * capture gap skipped (`resumeFrom`), a backlog skip (`resumeFrom`).
   */
  private reconnect(s: Session, nowMs: number, targetFin: boolean, resumeFrom = -1): void {
    if (this.module !== null && this.module.wholeSessionsOnly) {
      // A new connection would need a new login: the session is not renewed. With nothing
      // left to send (a last request the target closed on, such as a quit) it is just over.
      if (targetFin && s.needAck) this.out.sendAck(s);
      if (s.hasUnsentData) { this.skipSession(s, nowMs, 'renew'); return; }
      this.out.sendRst(s, s.sndNxt);
      this.finish(s, nowMs, true);
      return;
    }
    if (++s.barrenReconnects > MAX_BARREN_RECONNECTS) {
      // The target closes every new connection before answering anything: stop trying.
      this.abort(s, nowMs, 'reconnects');
      return;
    }
    if (targetFin && s.needAck) this.out.sendAck(s);
    this.out.sendRst(s, s.sndNxt);
    // Everything the target did not acknowledge (and a request it acknowledged but never
    // answered) is replayed on the new connection, which continues the client's sequence
    // space from there. A captured packet still missing is then waited for as usual.
    // A request is replayed at most once this way: a target that resets on that request
    // itself would otherwise be fed it again and again.
    let resumeAt = s.sndUna;
    if (resumeFrom !== -1) {
      resumeAt = resumeFrom;
    } else if (unanswered(s) && s.reqStartSeq !== s.replayedReqSeq) {
      resumeAt = s.reqStartSeq;
      s.replayedReqSeq = s.reqStartSeq;
      this.stats.requestsReplayed++;
    }
    s.nextIdx = s.head;
    s.reconnects++;
    this.stats.reconnects++;
    s.state = SessState.Closed;
    s.fakeSyn = true;
    s.finSent = false;
    s.targetClosed = false;
    s.needAck = false;
    s.tsOk = false;
    s.wscale = 0;
    s.dupAcks = 0;
    s.recovering = false;
    s.rtoDue = 0;
    s.paceDue = 0;
    s.rtoBackoff = 0;
    s.respBytes = 0;
    // The response to the last request came on the old connection: the next one goes at once.
    s.lastReqAck = -1;
    this.sendFakeSyn(s, nowMs, resumeAt);
  }

  // ---------------------------------------------------------------- ending and timers

  /** Ends a session with a RST to the target (timeout, backlog, too many packets, shutdown, ...). */
  abort(s: Session, nowMs: number, reason: string): void {
    if (s.state === SessState.Done) return;
    if (s.state === SessState.Established) {
      this.out.sendRst(s, s.sndNxt);
    } else if (s.state === SessState.SynSent) {
      // No ACK flag: the target's half-open connection accepts a RST at our ISN + 1.
      this.out.sendFake(s, TcpFlag.RST, (s.isn + 1) >>> 0, 0);
      this.stats.rstsSent++;
    }
    if (reason === 'timeout') this.stats.sessionsTimedOut++;
    else this.stats.sessionsAborted++;
    this.countAbort(reason);
    this.finish(s, nowMs, false);
  }

  private countAbort(reason: string): void {
    const by = this.stats.abortsByReason;
    by[reason] = (by[reason] ?? 0) + 1;
  }

  /** The session is over: it leaves the client table now and the reply table after the linger. */
  private finish(s: Session, nowMs: number, graceful: boolean): void {
    if (s.state === SessState.Done) return;
    s.state = SessState.Done;
    if (graceful) this.stats.sessionsClosed++;
    s.lingerUntilMs = nowMs + this.opts.lingerMs;
    s.synDue = 0; s.rtoDue = 0; s.paceDue = 0;
    this.wheel.arm(s, 0);
    this.backlog.charge(s, -s.keptBytes);
    this.segPool.giveRange(s.segs, s.head, s.segs.length);
    s.segs.length = 0;
    s.nextIdx = 0;
    s.head = 0;
    if (s.synSeg !== null) { this.segPool.give(s.synSeg); s.synSeg = null; }
    this.byIngress[s.copy].remove(s);
  }

  private onTimer(s: Session, nowMs: number): void {
    if (s.state === SessState.Done) return;
    if (s.synDue !== 0 && s.synDue <= nowMs) {
      s.synDue = 0;
      if (s.state === SessState.SynSent) { this.resendSyn(s, nowMs); return; }
    }
    if (s.rtoDue !== 0 && s.rtoDue <= nowMs) {
      s.rtoDue = 0;
      if (s.state === SessState.Established && s.sndUna !== s.sndNxt) {
        if (++s.retries > MAX_RETRIES) { this.abort(s, nowMs, 'retries'); return; }
        s.rtoBackoff = Math.min(s.rtoBackoff + 1, 5);
        this.retransmit(s, nowMs, false);
      }
    }
    if (s.paceDue !== 0 && s.paceDue <= nowMs) {
      s.paceDue = 0;
      this.pump(s, nowMs);
    }
    this.rearm(s);
  }

  private rearm(s: Session): void {
    let due = 0;
    if (s.synDue !== 0) due = s.synDue;
    if (s.rtoDue !== 0 && (due === 0 || s.rtoDue < due)) due = s.rtoDue;
    if (s.paceDue !== 0 && (due === 0 || s.paceDue < due)) due = s.paceDue;
    if (due !== s.timerDue) this.wheel.arm(s, due);
  }

  /** About every second: remove lingering sessions, time out idle ones, give up on capture gaps. */
  sweep(nowMs: number): void {
    const o = this.opts;
    for (let s = this.byReply.first; s !== null;) {
      const next = s.nextInOrder;
      if (s.state === SessState.Done) {
        if (s.lingerUntilMs <= nowMs) {
          this.byReply.remove(s);
          if (s.discarded) this.byIngress[s.copy].remove(s);
          if (s.v6) { this.addr6.release(s.ingressIp); this.addr6.release(s.clientIp); }
        }
      } else if (s.gapSinceMs !== 0 && nowMs - s.gapSinceMs > o.gapTimeoutMs) {
        this.skipGap(s, nowMs);
      } else {
        // Silence from both sides: the last reply from the target and the last packet of the
        // client count alike. An idle keep-alive connection (requests done, nothing to send,
        // not closing) may stay quiet for -k; anything else for -t.
        const idle = nowMs - Math.max(s.lastReplyMs, s.lastClientMs);
        const pending = s.segs.length > s.head;
        const keepalive = !pending && s.requests > 0 && !s.finSent && !s.targetClosed;
        if (idle > (keepalive ? o.keepaliveTimeoutMs : o.sessionTimeoutMs)) this.abort(s, nowMs, 'timeout');
      }
      s = next;
    }
  }

  /**
   * A captured packet never came (the capture dropped it): the request it belonged to cannot
   * be replayed, but the ones after it can. Skip to the next request that is whole and replay
   * from there on a new connection; without one, give the session up.
   */
  private skipGap(s: Session, nowMs: number): void {
    s.gapSinceMs = 0;
    const segs = s.segs;
    const first = segs[s.nextIdx];
    if (first === undefined || s.state !== SessState.Established) { this.abort(s, nowMs, 'capture-gap'); return; }
    // The packets after the hole start a new request when their captured ack differs from the
    // last request sent; otherwise the hole is inside a request: skip to the next one.
    let j = s.nextIdx;
    if (s.lastReqAck !== -1 && first.onlineAck === s.lastReqAck) {
      while (j < segs.length && segs[j].onlineAck === first.onlineAck && (segs[j].flags & (TcpFlag.FIN | TcpFlag.RST)) === 0) j++;
    }
    if (j >= segs.length || segs[j].len === 0) { this.abort(s, nowMs, 'capture-gap'); return; }
    // A real hole is at most a window wide (2^30 with scaling); a longer jump is a sequence
    // number no client sends (hostile or corrupt input), not bytes the capture lost.
    let skipped = (segs[j].seq - s.sndNxt) >>> 0;
    if (skipped > MAX_GAP_BYTES) skipped = 0;
    for (let k = s.nextIdx; k < j; k++) this.backlog.release(s, segs[k].size);
    this.segPool.giveRange(segs, s.nextIdx, j);
    segs.splice(s.nextIdx, j - s.nextIdx);
    this.stats.captureGapsSkipped++;
    this.stats.captureGapBytes += skipped;
    this.reconnect(s, nowMs, false, segs[s.nextIdx].seq);
  }

  /**
   * Re-registers every live session with the intercepts (after a control link came back), or
   * only those of one family: IPv4 when the link is up, IPv6 once its capability answer came.
   */
  reannounce(family: 0 | 4 | 6 = 0): number {
    let n = 0;
    for (let s = this.byReply.first; s !== null; s = s.nextInOrder) {
      if (s.state === SessState.Done) continue;
      if (family !== 0 && s.v6 !== (family === 6)) continue;
      this.announce(s);
      n++;
    }
    return n;
  }

  /** CLIENT_ADD (IPv4) or CLIENT_ADD6 to the intercepts; false when none took it. */
  private announce(s: Session): boolean {
    if (!s.v6) return this.links.clientAdd(s.clientIp, s.clientPort, s.rule.targetIp, s.rule.targetPort);
    this.addr6.copyTo(s.clientIp, this.addrScratch, 0);
    return this.links.clientAdd6 !== undefined && this.links.clientAdd6(this.addrScratch, s.clientPort, s.rule.targetIp6!, s.rule.targetPort);
  }

  /** Ends every session with a RST (shutdown). */
  shutdown(nowMs: number): void {
    for (let s = this.byReply.first; s !== null; s = s.nextInOrder) this.abort(s, nowMs, 'shutdown');
  }

  snapshot(): Record<string, number> {
    const active = this.activeSessions;
    const st = this.stats;
    return { sessionsActive: active, sessionsLingering: this.byReply.size - active, shedding: this.shedding ? 1 : 0, backlogBytes: this.backlog.bytes, backlogFull: this.backlog.holdsNewSessions() ? 1 : 0, replicationRatio: st.sessionsCreated ? Math.round((st.sessionsEstablished / st.sessionsCreated) * 10000) / 10000 : 0 };
  }
}

/** The largest TCP window (2^30 with window scaling): no hole in a client's stream is longer. */
const MAX_GAP_BYTES = 1 << 30;

function rto(s: Session): number {
  return Math.min(MAX_RTO_MS, MIN_RTO_MS << s.rtoBackoff);
}

/** TCP header length of a reply record, capped to what the record holds. */
function recordTcpHeaderLen(rec: Buffer, off: number): number {
  return Math.min(ReplyRecord.tcpHeaderLen(rec, off), Tcp.Options + MAX_OPTION_LEN);
}

/** A request went out and the target has not sent a byte of its response yet. */
function unanswered(s: Session): boolean {
  return s.requests > 0 && !s.reqAnswered && seqLt(s.reqStartSeq, s.sndNxt);
}

/** Sequence numbers this far from the expected one belong to another connection. */
const SEQ_WINDOW = 1 << 24;
function inWindow(seq: number, expected: number): boolean {
  const d = (seq - expected) | 0;
  return d > -SEQ_WINDOW && d < SEQ_WINDOW;
}
