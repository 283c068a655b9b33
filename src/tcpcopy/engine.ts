import { csumUpdate16, csumUpdate32, fillIpv4Checksum, fillTcpChecksum, tcpChecksumIsPartial } from '../wire/checksum';
import { ReplyRecord, MAX_OPTION_LEN } from '../control/records';
import { findTcpOption, TcpFlag, TcpOpt } from '../wire/tcp';
import type { TcpPacket } from '../wire/packet';
import type { PacketSender } from '../io/raw-socket';
import { Seg, Session, SessState, seqGe, seqGt, seqLe, seqLt } from './session';
import { TimerWheel } from './timer-wheel';
import { TcpcopyStats } from './stats';
import { mix32, TransferRule } from './transfer';

/** What the engine needs from the intercept links. */
export interface RouteRegistrar {
  /** True while at least one intercept is connected. */
  readonly ready: boolean;
  /** Sends CLIENT_ADD to every connected intercept; false when none took it. */
  clientAdd(clientIp: number, clientPort: number, targetIp: number, targetPort: number): boolean;
}

export interface EngineOptions {
  /** `-n`: sessions per captured session. */
  copies: number;
  /** `-f`: port shift factor, to keep several tcpcopy instances apart. */
  portShift: number;
  /** `-c` addresses (empty: keep the client's). */
  clientAddrs: number[];
  /** `-H`: replaces a 127.0.0.1 client source when the target is not local. */
  localhostReplacement: number;
  /** `-r`: percentage of sessions replayed (100 = all). */
  percentage: number;
  /** `-g`: ramp the percentage up from 1 % over ~100 s. */
  gradual: boolean;
  /** `-O`: only sessions whose SYN was captured. */
  onlyFullSessions: boolean;
  /** `-W`: do not wait for a response before the next request. */
  noWait: boolean;
  /** `-M`: larger captured packets are split. */
  mtu: number;
  /** `-D`: MSS in crafted SYNs. */
  mss: number;
  /** `-t`: a session with no activity (nothing from the target) for this long is dropped. */
  sessionTimeoutMs: number;
  /** `-k`: same, for idle keep-alive sessions that have nothing left to send. */
  keepaliveTimeoutMs: number;
  /** A response is taken as complete after this much silence from the target. */
  quietMs: number;
  /** ... or after this long without any response data. */
  responseTimeoutMs: number;
  /** Buffered packets per session before it is dropped. */
  maxSegsPerSession: number;
  /** How long an ended session stays to absorb late replies. */
  lingerMs: number;
  /** How long a session waits for a captured packet that was missed. */
  gapTimeoutMs: number;
  /**
   * Memory for captured packets not yet acknowledged by the target, all sessions together
   * (bytes, with SEG_OVERHEAD per packet); 0 = no limit. Beyond it the sessions furthest
   * behind are ended and new ones refused until the backlog is down to 3/4 of it.
   */
  backlogLimitBytes: number;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  copies: 1,
  portShift: 0,
  clientAddrs: [],
  localhostReplacement: 0,
  percentage: 100,
  gradual: false,
  onlyFullSessions: false,
  noWait: false,
  mtu: 1500,
  mss: 1460,
  sessionTimeoutMs: 60_000,
  keepaliveTimeoutMs: 180_000,
  quietMs: 20,
  responseTimeoutMs: 2000,
  maxSegsPerSession: 32768,
  lingerMs: 2000,
  gapTimeoutMs: 500,
  backlogLimitBytes: 1024 << 20,
};

/**
 * What a kept packet costs beyond its bytes: its Seg and Buffer objects and the garbage
 * collector's headroom. Measured: a backlog of ~115,000 keep-alive requests of 92 bytes took
 * ~88 MB of RSS, ~770 bytes each (with a larger backlog the share falls: 665 MB counted were
 * ~300 MB of RSS with -n 2, so the count errs on the high side).
 */
export const SEG_OVERHEAD = 640;

const SYN_RTO_MS = 1000;
const SYN_TRIES = 4;
const MIN_RTO_MS = 200;
const MAX_RTO_MS = 4000;
const MAX_RETRIES = 8;
/** Reconnects in a row without any response data in between before a session is given up. */
const MAX_BARREN_RECONNECTS = 5;
const FAKE_WSCALE = 7;
const LOCALHOST = 0x7f000001;

/**
 * The session engine: captured client packets in, rewritten packets to the target out,
 * target reply headers (from intercept) in. One Session object per replayed connection,
 * found by number keys; no per-packet closures.
 */
export class Engine {
  readonly stats = new TcpcopyStats();
  /** Sessions by the client address as sent (ip * 65536 + port): replies find them here. */
  readonly byReply = new Map<number, Session>();
  /** Sessions by the captured client address, one map per copy. */
  readonly byIngress: Map<number, Session>[];
  private readonly wheel = new TimerWheel<Session>(2, 4096, Date.now(), (at) => this.scheduleWake(at));
  /** One timer for the whole wheel, set for its earliest deadline (none while it is empty). */
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAtMs = Infinity;
  private readonly onWake = (): void => {
    this.wakeTimer = null;
    this.wakeAtMs = Infinity;
    this.wheel.advance(Date.now());
    const next = this.wheel.nextWakeMs();
    if (next !== Infinity) this.scheduleWake(next);
  };
  private readonly scratch = Buffer.alloc(128);
  private readonly dirty: Session[] = [];
  private readonly portJitter: number;
  private firstPacketMs = 0;
  /** New sessions are refused while true (memory limit near). */
  shedding = false;
  /**
   * The capture is behind the traffic (the kernel is about to drop packets): new sessions are
   * refused until it catches up, so the ones already started keep every packet.
   */
  captureBehind = false;
  /** Bytes of kept packets of all sessions (SEG_OVERHEAD each included). */
  backlogBytes = 0;
  private readonly onSessionTimer = (s: Session, now: number): void => this.timerFired(s, now);
  private readonly gcTimer: NodeJS.Timeout;

  constructor(
    readonly opts: EngineOptions,
    private readonly sender: PacketSender,
    private readonly links: RouteRegistrar,
  ) {
    this.byIngress = Array.from({ length: Math.max(1, opts.copies) }, () => new Map<number, Session>());
    this.portJitter = opts.portShift > 0 || opts.copies > 1 ? Math.floor(Math.random() * 512) : 0;
    this.gcTimer = setInterval(() => this.sweep(Date.now()), 1000);
  }

  private scheduleWake(atMs: number): void {
    if (atMs >= this.wakeAtMs) return;
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer);
    this.wakeAtMs = atMs;
    this.wakeTimer = setTimeout(this.onWake, Math.max(0, atMs - Date.now()));
  }

  close(): void {
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    this.wakeAtMs = 0; // no new wake-ups after close
    clearInterval(this.gcTimer);
  }

  /** Sessions not yet over (ended sessions still lingering for late replies are not counted). */
  get activeSessions(): number {
    let n = 0;
    for (const s of this.byReply.values()) if (s.state !== SessState.Done) n++;
    return n;
  }

  // ---------------------------------------------------------------- client side

  /**
   * One captured client packet, already validated (`pkt` views it) and matched to `rule`.
   * Called synchronously by the capture; the packet bytes are copied if kept.
   */
  onClientPacket(pkt: TcpPacket, rule: TransferRule, nowMs: number): void {
    const st = this.stats;
    const ip = pkt.ip;
    const tcp = pkt.tcp;
    let srcIp = ip.src;
    if (rule.targetIp === LOCALHOST) {
      // A local target only makes sense for local clients (the original's rule).
      if (srcIp !== LOCALHOST) { this.stats.localhostDropped++; return; }
    } else if (srcIp === LOCALHOST) {
      // The target cannot answer 127.0.0.1 of another host: -H gives those clients an address.
      if (this.opts.localhostReplacement === 0) { this.stats.localhostDropped++; return; }
      srcIp = this.opts.localhostReplacement;
    }
    const srcPort = tcp.srcPort;
    const flags = tcp.flags;
    const plen = pkt.payloadLen;
    st.clientPackets++;
    if (this.firstPacketMs === 0) this.firstPacketMs = nowMs;
    if (plen > 0) { st.clientPayloadPackets++; st.clientPayloadBytes += plen; }
    const ingressKey = srcIp * 65536 + srcPort;
    const syn = (flags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN;
    if (syn) st.clientSyns++;
    if ((flags & TcpFlag.SYN) !== 0 && !syn) return; // SYN-ACK from a "client": not client-initiated
    const copies = this.byIngress.length;
    for (let c = 0; c < copies; c++) {
      const map = this.byIngress[c];
      let s: Session | null | undefined = map.get(ingressKey);
      if (s !== undefined && s.discarded) {
        // Ended for the backlog limit: its connection's packets are dropped until the backlog
        // is down to half and a new request begins (its captured ack differs from the last
        // dropped one's: the online server answered in between). That request then starts a
        // new session (crafted SYN), so a long connection loses the requests of the overload,
        // not the rest of its life. A new SYN on the port is a new connection.
        if (!syn) {
          const ack = tcp.ack;
          if (plen > 0 && s.lastReqAck !== -1 && !this.backlogWaiting() && ack !== s.lastReqAck && !this.opts.onlyFullSessions) {
            map.delete(ingressKey);
            st.backlogResumed++;
            s = undefined;
          } else {
            s.lingerUntilMs = nowMs + this.opts.lingerMs;
            if (plen > 0) { st.backlogDroppedPackets++; s.lastReqAck = ack; }
            if ((flags & (TcpFlag.FIN | TcpFlag.RST)) !== 0) map.delete(ingressKey);
            continue;
          }
        } else {
          map.delete(ingressKey);
          s = undefined;
        }
      }
      if (syn) {
        if (s !== undefined) {
          if (s.synSeg !== null && !s.fake && s.isn === tcp.seq) continue; // client retransmitted its SYN
          // The client reuses the port for a new connection. The old session already holds
          // every packet of its connection (they were captured before this SYN): let it
          // finish on its own, out of the client map, while the new one gets a free port.
          st.portReuses++;
          map.delete(ingressKey);
        }
        if (!this.admit(srcIp, srcPort, nowMs)) return;
        s = this.newSession(rule, c, ingressKey, srcIp, srcPort, nowMs);
        if (s === null) continue;
        st.sessionsFromSyn++;
        this.startWithSyn(s, pkt, nowMs);
        continue;
      }
      if (s === undefined) {
        if (plen === 0) continue; // pure ACK, FIN or RST of a connection we do not replay
        if (this.opts.onlyFullSessions) { if (c === 0) st.noSynRefused++; continue; }
        if (!this.admit(srcIp, srcPort, nowMs)) return;
        s = this.newSession(rule, c, ingressKey, srcIp, srcPort, nowMs);
        if (s === null) continue;
        s.fake = true;
        st.sessionsFaked++;
        s.lastClientMs = nowMs;
        if (!this.keep(s, pkt)) continue;
        this.connect(s, nowMs);
        continue;
      }
      s.lastClientMs = nowMs;
      if (plen === 0 && (flags & (TcpFlag.FIN | TcpFlag.RST)) === 0) {
        // Pure ACK: tcpcopy acknowledges the target itself. Before the first request its ack
        // is the online server's next sequence number: the baseline for greeting detection.
        if (c === 0) st.clientPureAcks++;
        if (s.lastReqAck === -1 && s.requests === 0 && !s.fake) s.lastReqAck = tcp.ack;
        continue;
      }
      if (!this.keep(s, pkt)) continue;
      if (s.state === SessState.Established) this.pump(s, nowMs);
    }
    if (this.overLimit) this.trimBacklog(nowMs);
  }

  /** `-r` / `-g` sampling, memory shedding. */
  private admit(srcIp: number, srcPort: number, nowMs: number): boolean {
    let pct = this.opts.percentage;
    if (this.opts.gradual) pct = Math.min(100, Math.floor((nowMs - this.firstPacketMs) / 1000) + 1);
    if (pct < 100 && mix32(srcIp, srcPort) % 100 >= pct) { this.stats.notSampled++; return false; }
    if (this.shedding) { this.stats.shed++; return false; }
    if (this.captureBehind) { this.stats.shedCaptureBehind++; return false; }
    // Since the backlog last went over its limit, new sessions wait until it is down to half
    // of it: the sessions it holds finish instead of being cut for newcomers.
    if (this.backlogWaiting()) { this.stats.backlogShed++; return false; }
    // No intercept: the session could not learn the target's replies. Refuse it here rather
    // than start it (and fake handshakes for its later packets) only to drop it.
    if (!this.links.ready) { this.stats.noIntercept++; return false; }
    return true;
  }

  private newSession(rule: TransferRule, copy: number, ingressKey: number, srcIp: number, srcPort: number, nowMs: number): Session | null {
    const o = this.opts;
    const sentIp = o.clientAddrs.length ? o.clientAddrs[mix32(srcIp, copy) % o.clientAddrs.length] : srcIp;
    let preferred = srcPort;
    if (o.portShift > 0) preferred += o.portShift * 2048 + this.portJitter;
    if (copy > 0) preferred += (2 * copy - 1) * 32 + this.portJitter;
    const port = this.allocPort(sentIp, preferred);
    if (port < 0) {
      this.stats.sessionsAborted++;
      this.countAbort('no-free-port');
      return null;
    }
    const s = new Session(rule, copy, ingressKey, sentIp, port, nowMs, this.onSessionTimer);
    this.byIngress[copy].set(ingressKey, s);
    this.byReply.set(s.replyKey, s);
    this.stats.sessionsCreated++;
    return s;
  }

  /**
   * A source port for a new session that no live or lingering session of that address holds:
   * the preferred one when free (the captured port, shifted by -f / -n), else the next free
   * one after where the last search for that address (or one hashing alike) ended. Ports are
   * then handed out in a circle and freed in about the same order, so with one busy client
   * address (thousands of short connections a second, each port held for the linger time) a
   * search takes a few probes instead of walking the run of held ports after the preferred one.
   */
  private allocPort(ip: number, preferred: number): number {
    const base = ip * 65536;
    let p = wrapPort(preferred);
    if (!this.byReply.has(base + p)) return p;
    const h = mix32(ip, 0) & (PORT_CURSORS - 1);
    const cursor = this.portCursor[h];
    if (cursor !== 0) p = cursor;
    for (let i = 0; i < 64512; i++, p++) {
      if (p > 65535) p = 1024;
      if (!this.byReply.has(base + p)) {
        this.portCursor[h] = p === 65535 ? 1024 : p + 1;
        return p;
      }
    }
    return -1;
  }
  private readonly portCursor = new Uint16Array(PORT_CURSORS);

  /**
   * Keeps a copy of a captured payload/FIN/RST packet in the session's seq-ordered buffer,
   * split into MTU-sized segments when GRO/TSO made it larger. False when it was dropped.
   */
  private keep(s: Session, pkt: TcpPacket): boolean {
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
      this.abort(s, Date.now(), 'too-many-packets');
      return false;
    }
    const ipHl = ip.headerLen;
    const tcpHl = tcp.headerLen;
    const tot = ip.totalLen;
    const csumOk = !tcpChecksumIsPartial(ip.buf, ip.off, tcp.off, tot - ipHl);
    if (tot <= this.opts.mtu || plen === 0) {
      const b = Buffer.allocUnsafe(tot);
      ip.buf.copy(b, 0, ip.off, ip.off + tot);
      this.insert(s, new Seg(b, seq, plen, flags, tcp.ack, ipHl, tcpHl, csumOk));
      return true;
    }
    // Oversized: MTU-sized segments, headers (with options) copied into each, FIN/PSH on the last.
    this.stats.splitPackets++;
    const hdr = ipHl + tcpHl;
    const per = Math.max(8, this.opts.mtu - hdr);
    for (let done = 0; done < plen; done += per) {
      const n = Math.min(per, plen - done);
      const last = done + n >= plen;
      const b = Buffer.allocUnsafe(hdr + n);
      ip.buf.copy(b, 0, ip.off, ip.off + hdr);
      ip.buf.copy(b, hdr, ip.off + hdr + done, ip.off + hdr + done + n);
      b.writeUInt16BE(hdr + n, 2);
      const f = last ? flags : flags & ~(TcpFlag.FIN | TcpFlag.PSH);
      b[ipHl + 13] = f;
      const sq = (seq + done) >>> 0;
      b.writeUInt32BE(sq, ipHl + 4);
      this.insert(s, new Seg(b, sq, n, f, tcp.ack, ipHl, tcpHl, false));
    }
    return true;
  }

  /** Inserts by seq into the unsent part (captures mostly arrive in order: search from the end). */
  private insert(s: Session, seg: Seg): void {
    const segs = s.segs;
    let i = segs.length;
    while (i > s.nextIdx && seqGt(segs[i - 1].seq, seg.seq)) i--;
    if (i > s.nextIdx) {
      const prev = segs[i - 1];
      if (prev.seq === seg.seq && prev.len === seg.len && prev.flags === seg.flags) {
        this.stats.clientRetransmissions++;
        return;
      }
    }
    if (i === segs.length) segs.push(seg);
    else segs.splice(i, 0, seg);
    this.charge(s, seg.buf.length + SEG_OVERHEAD);
  }

  /** Adds (or with a negative amount, releases) backlog bytes of a session. */
  private charge(s: Session, bytes: number): void {
    s.keptBytes += bytes;
    const b = (this.backlogBytes += bytes);
    if (bytes > 0) {
      if (b > this.stats.backlogPeakBytes) this.stats.backlogPeakBytes = b;
      const limit = this.opts.backlogLimitBytes;
      if (limit > 0 && b > limit) this.overLimit = true;
    }
  }
  /** The backlog went over its limit during this packet: trimmed at the end of it. */
  private overLimit = false;
  /** The backlog went over its limit and has not been down to half of it since. */
  backlogFull = false;
  private backlogWaiting(): boolean {
    if (this.backlogFull && this.backlogBytes * 2 <= this.opts.backlogLimitBytes) this.backlogFull = false;
    return this.backlogFull;
  }

  /**
   * The backlog is over its limit: the sessions with the most kept bytes (furthest behind the
   * online server) give way until it is down to 3/4 of the limit — each skips to its last
   * queued request (skipBacklog) or, with less than two queued, is ended and its connection's
   * later packets dropped until it can resume at a new request — and new sessions wait until
   * it is down to half. Whole requests are lost, never part of one; the scan runs once per
   * quarter of the limit of growth, not per packet.
   */
  private trimBacklog(nowMs: number): void {
    this.overLimit = false;
    const limit = this.opts.backlogLimitBytes;
    if (limit <= 0 || this.backlogBytes <= limit) return;
    this.backlogFull = true;
    const target = limit - (limit >> 2);
    const victims: Session[] = [];
    for (const s of this.byReply.values()) if (s.keptBytes > 0 && s.state !== SessState.Done) victims.push(s);
    victims.sort((a, b) => b.keptBytes - a.keptBytes);
    let ended = 0;
    for (let i = 0; i < victims.length && this.backlogBytes > target; i++) {
      const s = victims[i];
      if (this.skipBacklog(s, nowMs)) continue;
      this.abort(s, nowMs, 'backlog');
      s.discarded = true;
      s.lastReqAck = -1; // from now on: the captured ack of the last packet dropped
      s.lingerUntilMs = nowMs + this.opts.lingerMs;
      this.byIngress[s.copy].set(s.ingressKey, s);
      ended++;
    }
    this.onBacklogTrimmed?.(ended, this.backlogBytes);
  }
  /**
   * An established session far behind: drop the requests queued before its last one and go on
   * with that one on a new connection (RST, crafted SYN continuing the client's sequence
   * space there), as after a capture gap. The session keeps its place, so the replay keeps its
   * parallelism; what is lost is the skipped requests. False when fewer than two requests are
   * queued, or the session is not connecting or connected (then it is ended instead).
   */
  private skipBacklog(s: Session, nowMs: number): boolean {
    if (s.state !== SessState.Established && s.state !== SessState.SynSent) return false;
    const segs = s.segs;
    const from = s.nextIdx;
    // The first packet of the last request queued: data whose captured ack differs from the
    // packet before it (the online server answered in between).
    let j = segs.length - 1;
    while (j > from && !(segs[j].len > 0 && segs[j].onlineAck !== segs[j - 1].onlineAck)) j--;
    if (j <= from) return false;
    // Counted: the requests never sent (after a reconnect, packets below sndNxt went out on
    // the connection before and would be dropped by the pump anyway).
    let requests = 0;
    let bytes = 0;
    let prevAck = -1;
    for (let k = from; k < j; k++) {
      const g = segs[k];
      if (seqGe(g.seq, s.sndNxt)) {
        if (g.len > 0 && (requests === 0 || g.onlineAck !== prevAck)) requests++;
        prevAck = g.onlineAck;
        bytes += g.len;
      }
      this.charge(s, -(g.buf.length + SEG_OVERHEAD));
    }
    segs.splice(from, j - from);
    this.stats.backlogSkippedRequests += requests;
    this.stats.backlogSkippedBytes += bytes;
    // Not a reconnect forced by the target: it does not count towards giving the session up.
    s.barrenReconnects--;
    this.reconnect(s, nowMs, false, segs[s.nextIdx].seq);
    return true;
  }

  /** Told when sessions were ended for the backlog limit (for a log line). */
  onBacklogTrimmed: ((ended: number, backlogBytes: number) => void) | null = null;

  // ---------------------------------------------------------------- handshake

  private startWithSyn(s: Session, pkt: TcpPacket, nowMs: number): void {
    const ip = pkt.ip;
    const tcp = pkt.tcp;
    const tot = ip.totalLen;
    const b = Buffer.allocUnsafe(tot);
    ip.buf.copy(b, 0, ip.off, ip.off + tot);
    const csumOk = !tcpChecksumIsPartial(ip.buf, ip.off, tcp.off, tot - ip.headerLen);
    const seg = new Seg(b, tcp.seq, 0, tcp.flags, 0, ip.headerLen, tcp.headerLen, csumOk);
    s.synSeg = seg;
    s.isn = tcp.seq;
    s.ipId = ip.id;
    s.synWs = tcp.windowScale() >= 0;
    const ts = tcp.timestampOffset();
    s.synTs = ts >= 0;
    if (ts >= 0) s.tsValMax = ip.buf.readUInt32BE(ts + 2);
    this.sendSyn(s, nowMs);
  }

  /** A session without a captured SYN: craft one just before the first kept packet. */
  private connect(s: Session, nowMs: number, resumeAt = -1): void {
    const first = s.segs[s.nextIdx];
    if (first === undefined) return;
    s.isn = ((resumeAt === -1 ? first.seq : resumeAt) - 1) >>> 0;
    s.synSeg = null;
    s.synWs = true;
    s.synTs = false;
    s.ipId = (first.buf.readUInt16BE(4) - 2) & 0xffff;
    this.sendSyn(s, nowMs);
  }

  private sendSyn(s: Session, nowMs: number): void {
    if (!this.links.clientAdd(s.clientIp, s.clientPort, s.rule.targetIp, s.rule.targetPort)) {
      this.stats.noIntercept++;
      this.finish(s, nowMs, false);
      return;
    }
    s.state = SessState.SynSent;
    s.sndNxt = (s.isn + 1) >>> 0;
    s.sndUna = s.isn;
    s.synTries = 1;
    if (s.synSeg !== null) this.sendSeg(s, s.synSeg);
    else this.craft(s, TcpFlag.SYN, s.isn, 0, true);
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
    if (s.synSeg !== null) this.sendSeg(s, s.synSeg);
    else this.craft(s, TcpFlag.SYN, s.isn, 0, true);
    this.stats.synRetransmissions++;
    s.synDue = nowMs + SYN_RTO_MS * (1 << (s.synTries - 1));
    this.rearm(s);
  }

  // ---------------------------------------------------------------- sending

  /**
   * Sends captured packets in seq order as far as the rules allow: no gap, the target's
   * window, and request pacing (a new request waits until the target answered the last).
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
          this.charge(s, -(seg.buf.length + SEG_OVERHEAD));
          this.stats.clientRetransmissions++;
          continue;
        }
        this.trim(s, seg, (s.sndNxt - seg.seq) >>> 0);
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
      s.paceDue = 0;
      if (rst) {
        seg.buf.writeUInt32BE(s.sndNxt, seg.ipHdrLen + 4);
        seg.csumOk = false;
        this.sendSeg(s, seg);
        this.stats.rstsSent++;
        this.finish(s, nowMs, true);
        return;
      }
      this.sendSeg(s, seg);
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
      if (s.rtoDue === 0) { s.rtoDue = nowMs + this.rto(s); this.rearm(s); }
    }
  }

  private rto(s: Session): number {
    return Math.min(MAX_RTO_MS, MIN_RTO_MS << s.rtoBackoff);
  }

  /** Drops the first `n` payload bytes of a kept packet (they were sent in an earlier one). */
  private trim(s: Session, seg: Seg, n: number): void {
    this.charge(s, -n);
    const hdr = seg.ipHdrLen + seg.tcpHdrLen;
    const nb = Buffer.allocUnsafe(seg.buf.length - n);
    seg.buf.copy(nb, 0, 0, hdr);
    seg.buf.copy(nb, hdr, hdr + n);
    nb.writeUInt16BE(nb.length, 2);
    seg.buf = nb;
    seg.seq = (seg.seq + n) >>> 0;
    seg.len -= n;
    nb.writeUInt32BE(seg.seq, seg.ipHdrLen + 4);
    seg.csumOk = false;
  }

  /**
   * Rewrites a kept packet for the target (addresses, ports, ack, timestamps) and sends it.
   * Checksums are updated incrementally when the captured one was right, else recomputed.
   */
  private sendSeg(s: Session, seg: Seg): void {
    const b = seg.buf;
    const t = seg.ipHdrLen;
    const cs = t + 16;
    let ok = seg.csumOk;
    if (!seg.rewritten) {
      if (ok) {
        patch32(b, 12, s.clientIp, cs);
        patch32(b, 16, s.rule.targetIp, cs);
        patch16(b, t, s.clientPort, cs);
        patch16(b, t + 2, s.rule.targetPort, cs);
      } else {
        b.writeUInt32BE(s.clientIp >>> 0, 12);
        b.writeUInt32BE(s.rule.targetIp >>> 0, 16);
        b.writeUInt16BE(s.clientPort, t);
        b.writeUInt16BE(s.rule.targetPort, t + 2);
      }
      seg.rewritten = true;
    }
    if ((b[t + 13] & TcpFlag.ACK) !== 0) {
      if (ok) patch32(b, t + 8, s.rcvNxt, cs); else b.writeUInt32BE(s.rcvNxt >>> 0, t + 8);
      s.needAck = false;
    }
    if (s.fake) {
      if (ok) patch16(b, t + 14, 65535, cs); else b.writeUInt16BE(65535, t + 14);
    }
    if (s.tsOk && seg.tcpHdrLen > 20) {
      const o = findTcpOption(b, t, seg.tcpHdrLen, TcpOpt.Timestamp, 10);
      if (o >= 0) {
        const v = b.readUInt32BE(o + 2);
        if (seqGt(v, s.tsValMax) || s.tsValMax === 0) s.tsValMax = v;
        else if (ok) patch32(b, o + 2, s.tsValMax, cs); else b.writeUInt32BE(s.tsValMax >>> 0, o + 2);
        if (ok) patch32(b, o + 6, s.tsRecent, cs); else b.writeUInt32BE(s.tsRecent >>> 0, o + 6);
      }
    }
    if (!ok) {
      fillTcpChecksum(b, 0, t, b.length - t);
      seg.csumOk = ok = true;
    }
    fillIpv4Checksum(b, 0, t);
    seg.sends++;
    this.sender.send(b, 0, b.length, s.rule.targetIpText);
    this.stats.packetsSent++;
  }

  /**
   * Sends a crafted packet: SYN (with MSS and window scale), ACK or RST, with a timestamp
   * option when the session negotiated timestamps.
   */
  private craft(s: Session, flags: number, seq: number, ack: number, syn = false): void {
    const b = this.scratch;
    let opt = 0;
    if (syn) {
      b[40] = TcpOpt.Mss; b[41] = 4; b.writeUInt16BE(this.opts.mss, 42);
      b[44] = TcpOpt.Nop; b[45] = TcpOpt.WindowScale; b[46] = 3; b[47] = FAKE_WSCALE;
      opt = 8;
    } else if (s.tsOk) {
      b[40] = TcpOpt.Nop; b[41] = TcpOpt.Nop; b[42] = TcpOpt.Timestamp; b[43] = 10;
      b.writeUInt32BE(s.tsValMax >>> 0, 44);
      b.writeUInt32BE(s.tsRecent >>> 0, 48);
      opt = 12;
    }
    const tcpLen = 20 + opt;
    const tot = 20 + tcpLen;
    b[0] = 0x45; b[1] = 0;
    b.writeUInt16BE(tot, 2);
    s.ipId = (s.ipId + 1) & 0xffff;
    b.writeUInt16BE(s.ipId, 4);
    b[6] = 0x40; b[7] = 0; // DF
    b[8] = 64; b[9] = 6;
    b.writeUInt32BE(s.clientIp >>> 0, 12);
    b.writeUInt32BE(s.rule.targetIp >>> 0, 16);
    b.writeUInt16BE(s.clientPort, 20);
    b.writeUInt16BE(s.rule.targetPort, 22);
    b.writeUInt32BE(seq >>> 0, 24);
    b.writeUInt32BE((flags & TcpFlag.ACK) !== 0 ? ack >>> 0 : 0, 28);
    b[32] = (tcpLen >>> 2) << 4;
    b[33] = flags;
    b.writeUInt16BE(65535, 34);
    b.writeUInt16BE(0, 38);
    fillTcpChecksum(b, 0, 20, tcpLen);
    fillIpv4Checksum(b, 0, 20);
    this.sender.send(b, 0, tot, s.rule.targetIpText);
    this.stats.packetsSent++;
    if ((flags & TcpFlag.ACK) !== 0) s.needAck = false;
    if (flags === TcpFlag.ACK) this.stats.acksSent++;
  }

  private sendAck(s: Session): void {
    this.craft(s, TcpFlag.ACK, s.sndNxt, s.rcvNxt);
  }

  private sendRst(s: Session, seq: number): void {
    this.craft(s, TcpFlag.RST | TcpFlag.ACK, seq, s.rcvNxt);
    this.stats.rstsSent++;
  }

  // ---------------------------------------------------------------- target side

  /** One reply record from intercept (64 or 192 bytes at `rec[off]`). */
  onReply(rec: Buffer, off: number): void {
    const st = this.stats;
    st.replies++;
    const s = this.byReply.get(ReplyRecord.dstIp(rec, off) * 65536 + ReplyRecord.dstPort(rec, off));
    if (s === undefined) { st.repliesNoSession++; return; }
    const plen = ReplyRecord.payloadLen(rec, off);
    if (plen < 0) { st.badRecords++; return; }
    const nowMs = Date.now();
    const flags = ReplyRecord.flags(rec, off);
    const seq = ReplyRecord.seq(rec, off);
    const ack = ReplyRecord.ack(rec, off);
    s.lastReplyMs = nowMs;
    if (plen > 0) { st.repliesWithData++; st.replyPayloadBytes += plen; }
    if ((flags & TcpFlag.FIN) !== 0) st.repliesFin++;

    if (s.state === SessState.Done) {
      // Late replies to an ended session: the target still has data or a FIN for us.
      if ((flags & TcpFlag.RST) !== 0) return;
      if (plen > 0) this.craft(s, TcpFlag.RST | TcpFlag.ACK, ack, (seq + plen) >>> 0);
      else if ((flags & TcpFlag.FIN) !== 0) this.craft(s, TcpFlag.ACK, s.sndNxt, (seq + 1) >>> 0);
      return;
    }

    if ((flags & TcpFlag.RST) !== 0) {
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
      return;
    }

    if (s.state === SessState.SynSent) {
      if ((flags & (TcpFlag.SYN | TcpFlag.ACK)) === (TcpFlag.SYN | TcpFlag.ACK) && ack === ((s.isn + 1) >>> 0)) {
        this.established(s, rec, off, seq, nowMs);
        return;
      }
      if ((flags & TcpFlag.ACK) !== 0) {
        // A challenge ACK: the target still holds an older connection on this 4-tuple.
        // Reset it (seq = its ack is in window) and try the SYN again shortly.
        this.craft(s, TcpFlag.RST, ack, 0);
        this.stats.rstsSent++;
        s.synDue = nowMs + 20;
        this.rearm(s);
      }
      return;
    }
    if (s.state !== SessState.Established) return;

    if ((flags & TcpFlag.SYN) !== 0) {
      // A retransmitted SYN-ACK: our handshake ACK was lost.
      this.sendAck(s);
      return;
    }
    // Data, FIN or ACK far outside the target's sequence space: an earlier connection's.
    if (!inWindow(seq, s.rcvNxt)) { st.repliesOutOfWindow++; return; }
    const win = ReplyRecord.window(rec, off) << s.wscale;
    if (s.tsOk) {
      const o = findTcpOption(rec, off + 20, Math.min(ReplyRecord.tcpHeaderLen(rec, off), 20 + MAX_OPTION_LEN), TcpOpt.Timestamp, 10);
      if (o >= 0) s.tsRecent = rec.readUInt32BE(o + 2);
    }
    // Acknowledgement of our data.
    if ((flags & TcpFlag.ACK) !== 0) {
      if (seqGt(ack, s.sndUna) && seqLe(ack, s.sndNxt)) {
        s.sndUna = ack;
        s.dupAcks = 0;
        s.rtoBackoff = 0;
        s.retries = 0;
        this.dropAcked(s);
        s.rtoDue = s.sndUna === s.sndNxt ? 0 : nowMs + this.rto(s);
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
    // Response data.
    if (plen > 0) {
      const end = (seq + plen) >>> 0;
      if (seqGt(end, s.rcvNxt)) {
        // Bytes before this segment that intercept never handed over count as heard too.
        const fresh = (end - s.rcvNxt) >>> 0;
        s.respBytes += fresh;
        s.barrenReconnects = 0;
        if (!s.reqAnswered) {
          s.reqAnswered = true;
          // The request kept until its response began can go now.
          if (s.head < s.nextIdx) this.dropAcked(s);
        }
        s.rcvNxt = end;
        s.lastDataMs = nowMs;
      }
      this.owe(s);
    }
    if ((flags & TcpFlag.FIN) !== 0) {
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
        return;
      }
    }
    if (s.finSent && s.targetClosed && s.sndUna === s.sndNxt) {
      if (s.needAck) this.sendAck(s);
      this.finish(s, nowMs, true);
      return;
    }
    this.pump(s, nowMs);
    this.rearm(s);
  }

  /** The SYN-ACK arrived: complete the handshake and send what is waiting. */
  private established(s: Session, rec: Buffer, off: number, seq: number, nowMs: number): void {
    const st = this.stats;
    st.handshakes++;
    if (!s.everEstablished) { s.everEstablished = true; st.sessionsEstablished++; }
    s.targetIsn = seq;
    s.rcvNxt = (seq + 1) >>> 0;
    s.sndUna = (s.isn + 1) >>> 0;
    s.synDue = 0;
    const hl = Math.min(ReplyRecord.tcpHeaderLen(rec, off), 20 + MAX_OPTION_LEN);
    const ws = findTcpOption(rec, off + 20, hl, TcpOpt.WindowScale, 3);
    s.wscale = s.synWs && ws >= 0 ? Math.min(rec[ws + 2], 14) : 0;
    s.peerWindow = ReplyRecord.window(rec, off); // never scaled in a SYN
    const ts = findTcpOption(rec, off + 20, hl, TcpOpt.Timestamp, 10);
    s.tsOk = s.synTs && ts >= 0;
    if (s.tsOk) s.tsRecent = rec.readUInt32BE(ts + 2);
    s.state = SessState.Established;
    s.reqSentMs = nowMs;
    s.respBytes = 0;
    // The first captured packet (data or FIN, with ACK) completes the handshake itself; a
    // separate ACK goes only when nothing can be sent yet. One packet less per connection.
    s.needAck = true;
    this.pump(s, nowMs);
    if (s.needAck && s.state === SessState.Established) this.sendAck(s);
    this.rearm(s);
  }

  /** Frees kept packets the target acknowledged in full. */
  private dropAcked(s: Session): void {
    const segs = s.segs;
    // The last request stays until the target starts answering it: a server that closes
    // with it unread (keep-alive limit, idle timeout race) acked it but never served it.
    const keepFrom = s.requests > 0 && !s.reqAnswered && seqLt(s.reqStartSeq, s.sndUna) ? s.reqStartSeq : s.sndUna;
    let h = s.head;
    while (h < s.nextIdx) {
      const g = segs[h];
      const end = (g.seq + g.len + ((g.flags & TcpFlag.FIN) !== 0 ? 1 : 0)) >>> 0;
      if (!seqLe(end, keepFrom)) break;
      this.charge(s, -(g.buf.length + SEG_OVERHEAD));
      segs[h] = DEAD; // let the buffer go now
      h++;
    }
    s.head = h;
    // Acknowledged segments leave by moving the head; the array is compacted only when the
    // dead part dominates, so a deep backlog costs O(1) per ack, not a splice of the whole list.
    if (h > 32 && h * 2 > segs.length) {
      segs.splice(0, h);
      s.nextIdx -= h;
      s.head = 0;
    }
  }

  /** Retransmits the first unacknowledged packet (RTO or three duplicate ACKs). */
  private retransmit(s: Session, nowMs: number, fast: boolean): void {
    const segs = s.segs;
    if (!s.recovering) { s.recovering = true; s.recoverSeq = s.sndNxt; }
    for (let i = s.head; i < s.nextIdx; i++) {
      const g = segs[i];
      const end = (g.seq + g.len + ((g.flags & TcpFlag.FIN) !== 0 ? 1 : 0)) >>> 0;
      if (seqGt(end, s.sndUna)) {
        this.sendSeg(s, g);
        if (fast) this.stats.fastRetransmissions++; else this.stats.retransmissions++;
        break;
      }
    }
    s.rtoDue = nowMs + this.rto(s);
    this.rearm(s);
  }

  /** An ACK is owed: sent once the current batch of replies is processed. */
  private owe(s: Session): void {
    s.needAck = true;
    if (!s.dirty) { s.dirty = true; this.dirty.push(s); }
  }

  /** After a chunk of reply records: send the ACKs that no data packet carried. */
  flushAcks(): void {
    const d = this.dirty;
    for (let i = 0; i < d.length; i++) {
      const s = d[i];
      s.dirty = false;
      if (s.needAck && s.state === SessState.Established) this.sendAck(s);
    }
    d.length = 0;
  }

  /**
   * The target ended the connection while captured requests remain: reset it and replay the
   * rest on a new connection (fake handshake continuing the client's sequence space).
   */
  private reconnect(s: Session, nowMs: number, targetFin: boolean, resumeFrom = -1): void {
    if (++s.barrenReconnects > MAX_BARREN_RECONNECTS) {
      // The target closes every new connection before answering anything: stop trying.
      this.abort(s, nowMs, 'reconnects');
      return;
    }
    if (targetFin && s.needAck) this.sendAck(s);
    this.sendRst(s, s.sndNxt);
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
    s.fake = true;
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
    this.connect(s, nowMs, resumeAt);
  }

  // ---------------------------------------------------------------- ending

  /** Ends a session with a RST to the target (timeout, overflow, port reuse, shutdown). */
  abort(s: Session, nowMs: number, reason: string): void {
    if (s.state === SessState.Done) return;
    if (s.state === SessState.Established) {
      this.sendRst(s, s.sndNxt);
    } else if (s.state === SessState.SynSent) {
      // No ACK flag: the target's half-open connection accepts a RST at our ISN + 1.
      this.craft(s, TcpFlag.RST, (s.isn + 1) >>> 0, 0);
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

  /** The session is over: it leaves the client map now and the reply map after the linger. */
  private finish(s: Session, nowMs: number, graceful: boolean): void {
    if (s.state === SessState.Done) return;
    s.state = SessState.Done;
    if (graceful) this.stats.sessionsClosed++;
    s.lingerUntilMs = nowMs + this.opts.lingerMs;
    s.synDue = 0; s.rtoDue = 0; s.paceDue = 0;
    this.wheel.arm(s, 0);
    this.charge(s, -s.keptBytes);
    s.segs = [];
    s.nextIdx = 0;
    s.head = 0;
    s.synSeg = null;
    const m = this.byIngress[s.copy];
    if (m.get(s.ingressKey) === s) m.delete(s.ingressKey);
  }

  private timerFired(s: Session, nowMs: number): void {
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

  /** Every second: remove lingering sessions, time out idle ones, give up on capture gaps. */
  sweep(nowMs: number): void {
    const o = this.opts;
    for (const s of this.byReply.values()) {
      if (s.state === SessState.Done) {
        if (s.lingerUntilMs <= nowMs) {
          this.byReply.delete(s.replyKey);
          if (s.discarded) {
            const m = this.byIngress[s.copy];
            if (m.get(s.ingressKey) === s) m.delete(s.ingressKey);
          }
        }
        continue;
      }
      if (s.gapSinceMs !== 0 && nowMs - s.gapSinceMs > o.gapTimeoutMs) { this.skipGap(s, nowMs); continue; }
      const idle = nowMs - Math.max(s.lastReplyMs, s.lastClientMs);
      const pending = s.segs.length > s.head;
      // An idle keep-alive connection (requests done, nothing to send, not closing) may stay
      // quiet for -k; anything else that hears nothing from the target for -t is dropped.
      const keepalive = !pending && s.requests > 0 && !s.finSent && !s.targetClosed;
      const limit = keepalive ? o.keepaliveTimeoutMs : o.sessionTimeoutMs;
      if (idle > limit) this.abort(s, nowMs, 'timeout');
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
    let skipped = (segs[j].seq - s.sndNxt) >>> 0;
    if (skipped > 0x7fffffff) skipped = 0;
    for (let k = s.nextIdx; k < j; k++) this.charge(s, -(segs[k].buf.length + SEG_OVERHEAD));
    segs.splice(s.nextIdx, j - s.nextIdx);
    this.stats.captureGapsSkipped++;
    this.stats.captureGapBytes += skipped;
    this.reconnect(s, nowMs, false, segs[s.nextIdx].seq);
  }

  /** Re-registers every live session with the intercepts (after a control link came back). */
  reannounce(): number {
    let n = 0;
    for (const s of this.byReply.values()) {
      if (s.state === SessState.Done) continue;
      this.links.clientAdd(s.clientIp, s.clientPort, s.rule.targetIp, s.rule.targetPort);
      n++;
    }
    return n;
  }

  /** Ends every session with a RST (shutdown). */
  shutdown(): void {
    const now = Date.now();
    for (const s of this.byReply.values()) this.abort(s, now, 'shutdown');
    this.close();
  }

  snapshot(): Record<string, number> {
    const active = this.activeSessions;
    const st = this.stats;
    return { sessionsActive: active, sessionsLingering: this.byReply.size - active, shedding: this.shedding ? 1 : 0, backlogBytes: this.backlogBytes, backlogFull: this.backlogWaiting() ? 1 : 0, replicationRatio: st.sessionsCreated ? Math.round((st.sessionsEstablished / st.sessionsCreated) * 10000) / 10000 : 0 };
  }
}

/** Slots of the port-search cursors (a hint per client address, shared on hash collisions). */
const PORT_CURSORS = 1024;

/** A port number shifted past 65535 wraps into 1024..65535. */
function wrapPort(p: number): number {
  return p > 65535 ? 1024 + ((p - 65536) % 64512) : p;
}

/** Placeholder for segments already acknowledged (below a session's `head`). */
const DEAD = new Seg(Buffer.alloc(0), 0, 0, 0, 0, 20, 20, true);

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

function patch32(b: Buffer, off: number, v: number, csOff: number): void {
  const old = b.readUInt32BE(off);
  v >>>= 0;
  if (old === v) return;
  b.writeUInt32BE(v, off);
  b.writeUInt16BE(csumUpdate32(b.readUInt16BE(csOff), old, v), csOff);
}

function patch16(b: Buffer, off: number, v: number, csOff: number): void {
  const old = b.readUInt16BE(off);
  v &= 0xffff;
  if (old === v) return;
  b.writeUInt16BE(v, off);
  b.writeUInt16BE(csumUpdate16(b.readUInt16BE(csOff), old, v), csOff);
}
