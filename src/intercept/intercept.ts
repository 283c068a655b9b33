import * as net from 'node:net';
import type { Logger } from 'pino';
import { ControlError } from '../control/codec';
import { Capability, ChannelFormat, MsgType, INTERNAL_VERSION, Rec, buildReplyRecord, buildReplyRecord6, formatMismatch, recordSize } from '../control/records';
import { Ipv6AddrTable } from '../wire/addr6-table';
import { WireReason, WIRE_REASON_NAMES } from '../wire/errors';
import { parseIp } from '../wire/ipv4';
import { ipv6ToString, parseIpv6 } from '../wire/ipv6';
import { ipOffset } from '../wire/link';
import { Tcp6Packet, TcpPacket } from '../wire/packet';
import { TcpFlag } from '../wire/tcp';
import { FrameSink, IoError } from '../io/types';
import { HeldReplies, RouteTable } from './route-table';
import { adoptSocket, Tunnel, TunnelEvents } from './tunnel';
import { put32 } from '../wire/bytes';

export interface InterceptOptions {
  /** Control listen port (`-p`). */
  port: number;
  /** Control listen address (`-b`), '' for all. */
  bindAddress: string;
  /** Allowed tcpcopy addresses (`-x`); empty allows all. */
  passlist: string[];
  format: ChannelFormat;
  /** Initial batch threshold (`-n`), 0 for the maximum. */
  batchThreshold: number;
  maxRoutes: number;
  routeIdleMs: number;
  holdMs: number;
  maxHeld: number;
  /** `--dnat`: routes ignore the target address. */
  dnat: boolean;
  /** `-D A-B`: replies to A are handed over as replies to B. */
  dockerFrom: string;
  dockerTo: string;
  maxTunnels: number;
  /** Per-connection bound on batches waiting for a slow tcpcopy. */
  maxBacklogBytes: number;
  /** Shared secret (`--secret`): tcpcopy must prove it knows it; '' = off (the original's protocol). */
  secret: string;
}

export const DEFAULT_INTERCEPT_OPTIONS: InterceptOptions = {
  port: 36524,
  bindAddress: '',
  passlist: [],
  format: { combined: true, payload: false },
  batchThreshold: 0,
  maxRoutes: 1 << 20,
  routeIdleMs: 120_000,
  holdMs: 30_000,
  maxHeld: 65_536,
  dnat: false,
  dockerFrom: '',
  dockerTo: '',
  maxTunnels: 128,
  maxBacklogBytes: 4 << 20,
  secret: '',
};

/** Counters kept by intercept; logged every 30 s and at exit. */
export class InterceptStats {
  /** Frames handed over by the capture. */
  captured = 0;
  /** IPv4 TCP packets among them. */
  tcpPackets = 0;
  /** Reply records forwarded to a tcpcopy. */
  forwarded = 0;
  /** Replies with no route (dropped). */
  noRoute = 0;
  /** Replies held for a CLIENT_ADD that had not arrived yet. */
  held = 0;
  /** Held replies delivered on their CLIENT_ADD. */
  heldDelivered = 0;
  clientAdds = 0;
  /** CLIENT_ADD6 records (IPv6 routes) from tcpcopys that negotiated IPv6. */
  clientAdds6 = 0;
  /** IPv6 reply records forwarded (also counted in forwarded). */
  forwarded6 = 0;
  clientDels = 0;
  unknownRecords = 0;
  tunnelsAccepted = 0;
  tunnelsRefused = 0;
  /** Control connections whose tcpcopy announced the capability extension (ours, not the original). */
  extensionPeers = 0;
  tunnelsDropped = 0;
  /** Records dropped for slow readers, of connections already closed. */
  recordsDroppedSlowReader = 0;
  /** Skipped frames by reason (index: WireReason). */
  readonly skipped: number[] = new Array(WIRE_REASON_NAMES.length).fill(0);
}

/**
 * The assistant-server daemon's core: captured replies in, reply records out to the tcpcopy
 * that registered each client address.
 */
/** Queued records that make the flush happen at the end of the turn rather than within 1 ms. */
const FLUSH_NOW_RECORDS = 8;

export class Intercept implements FrameSink, TunnelEvents {
  readonly stats = new InterceptStats();
  readonly routes: RouteTable<Tunnel>;
  /** IPv6 client and target addresses of the IPv6 routes, as keys (held by the routes). */
  readonly addr6 = new Ipv6AddrTable();
  /** IPv6 routes (CLIENT_ADD6), keyed by the addresses' keys in `addr6`. */
  readonly routes6: RouteTable<Tunnel>;
  readonly heldReplies: HeldReplies;
  readonly tunnels = new Set<Tunnel>();
  private server: net.Server | null = null;
  private readonly pkt = new TcpPacket();
  private readonly pkt6 = new Tcp6Packet();
  private readonly recordSize: number;
  private readonly dockerFrom: number;
  private readonly dockerTo: number;
  private readonly passlist: Set<string>;
  private nextTunnelId = 1;
  private readonly dirty: Tunnel[] = [];
  private timers: NodeJS.Timeout[] = [];
  private readonly flushAll = (): void => {
    this.queuedRecords = 0;
    const d = this.dirty;
    for (let i = 0; i < d.length; i++) d[i].flush();
    d.length = 0;
  };

  constructor(readonly opts: InterceptOptions, private readonly log: Logger) {
    this.routes = new RouteTable<Tunnel>({ maxRoutes: opts.maxRoutes, idleTimeoutMs: opts.routeIdleMs, ignoreTargetIp: opts.dnat });
    this.routes6 = new RouteTable<Tunnel>({ maxRoutes: opts.maxRoutes, idleTimeoutMs: opts.routeIdleMs, ignoreTargetIp: opts.dnat }, this.addr6);
    this.heldReplies = new HeldReplies(opts.holdMs, opts.maxHeld, 8, this.addr6);
    this.recordSize = recordSize(opts.format);
    this.dockerFrom = opts.dockerFrom ? parseIp(opts.dockerFrom) : -1;
    this.dockerTo = opts.dockerTo ? parseIp(opts.dockerTo) : -1;
    this.passlist = new Set(opts.passlist);
  }

  /** Starts the control server; resolves once listening. Throws IoError with a clear message. */
  async listen(): Promise<net.AddressInfo> {
    // Not read until accept() has adopted the connection (adoptSocket: reads into one reused buffer).
    const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        const host = this.opts.bindAddress || '0.0.0.0';
        const where = host.includes(':') ? `[${host}]:${this.opts.port}` : `${host}:${this.opts.port}`;
        if (e.code === 'EADDRINUSE') reject(new IoError('port-in-use', `control port ${where} is in use (another intercept?): stop it or choose another with -p`));
        else if (e.code === 'EADDRNOTAVAIL') reject(new IoError('bad-bind', `cannot listen on ${where}: that address is not on this host; fix -b`));
        else if (e.code === 'EACCES') reject(new IoError('no-permission', `no permission to listen on ${where}`));
        else reject(new IoError('listen', `cannot listen on ${where}: ${e.message}`));
      });
      server.listen({ port: this.opts.port, host: this.opts.bindAddress || '0.0.0.0', backlog: 64 }, () => resolve());
    });
    server.on('error', (e) => this.log.error({ err: e.message }, 'control server error'));
    this.timers.push(setInterval(() => this.sweep(), Math.min(Math.max(this.opts.routeIdleMs / 4, 1000), 30_000)).unref());
    this.timers.push(setInterval(() => this.sweepHeld(), 1000).unref());
    return server.address() as net.AddressInfo;
  }

  private accept(s: net.Socket): void {
    const remote = peerText(s.remoteAddress ?? '');
    if (this.passlist.size && !this.passlist.has(remote)) {
      this.stats.tunnelsRefused++;
      this.log.warn({ remote }, 'control connection refused: address not in the -x passlist');
      s.destroy();
      return;
    }
    if (this.tunnels.size >= this.opts.maxTunnels) {
      this.stats.tunnelsRefused++;
      this.log.warn({ remote, max: this.opts.maxTunnels }, 'control connection refused: too many connections');
      s.destroy();
      return;
    }
    const name = remote.includes(':') ? `[${remote}]:${s.remotePort}` : `${remote}:${s.remotePort}`;
    let tunnel: Tunnel | null = null;
    const lean = adoptSocket(s, (buf, n) => tunnel?.onBytes(buf, n));
    if (lean === null) s.resume();
    const t = new Tunnel(this.nextTunnelId++, lean ?? s, name, this.opts.format,
      this.opts.batchThreshold, this.opts.maxBacklogBytes, this, this.opts.secret, lean !== null);
    tunnel = t;
    this.tunnels.add(t);
    this.stats.tunnelsAccepted++;
    this.log.info({ tunnel: t.id, remote: t.remote, tunnels: this.tunnels.size }, 'tcpcopy connected');
  }

  /** tcpcopy hosts already told that their channel format differs from ours. */
  private readonly formatWarned = new Set<string>();

  onVersion(t: Tunnel, version: number, caps: number): void {
    if (version !== INTERNAL_VERSION) {
      this.log.warn({ tunnel: t.id, remote: t.remote, version, ours: INTERNAL_VERSION }, 'tcpcopy speaks another protocol version; continuing');
    }
    if (caps >= 0) {
      this.stats.extensionPeers++;
      this.log.info({ tunnel: t.id, remote: t.remote, announced: caps, accepted: t.capabilities }, 'tcpcopy speaks the capability extension');
      // tcpcopy hears our format in the answer and drops the connection itself; say it here too,
      // once per tcpcopy host (it retries).
      const why = formatMismatch(this.opts.format, caps, 'tcpcopy');
      const host = t.remote.replace(/:\d+$/, '');
      if (why !== null && !this.formatWarned.has(host)) {
        this.formatWarned.add(host);
        this.log.error({ tunnel: t.id, remote: t.remote }, why);
      }
    }
  }

  onClientAdd6(t: Tunnel, buf: Buffer, clientOff: number, clientPort: number, targetOff: number, targetPort: number): void {
    if ((t.capabilities & Capability.Ipv6) === 0) {
      // Only after the IPv6 capability was accepted: a peer that sends one anyway is counted
      // and ignored, like an unknown record.
      this.stats.unknownRecords++;
      if (this.stats.unknownRecords <= 10) this.log.warn({ tunnel: t.id, type: 'CLIENT_ADD6' }, 'CLIENT_ADD6 without the IPv6 capability; ignored');
      return;
    }
    this.stats.clientAdds6++;
    t.clientAdds++;
    const a = this.addr6;
    const c = a.intern(buf, clientOff);
    const g = a.intern(buf, targetOff);
    this.routes6.add(c, clientPort, g, targetPort, t, Date.now());
    // Replies that came first (held under the same keys) go out now, in order.
    const held = this.heldReplies.take(c, clientPort, g, targetPort, this.opts.dnat);
    if (held) this.deliverHeld6(t, held);
    // A new route acquired both keys; a refreshed one holds them already.
    a.dropIfUnused(c);
    a.dropIfUnused(g);
  }

  /** Held IPv6 replies (two-slot records) to the connection whose CLIENT_ADD6 they waited for. */
  private deliverHeld6(t: Tunnel, held: Buffer[]): void {
    const size = 2 * this.recordSize;
    for (const rec of held) {
      const b = t.batcher;
      const off = b.reserve2(t.out);
      rec.copy(b.buffer, off, 0, size);
      this.markDirty(t);
    }
    this.stats.heldDelivered += held.length;
    this.stats.forwarded += held.length;
    this.stats.forwarded6 += held.length;
  }

  onClientRecord(t: Tunnel, type: number, clientIp: number, clientPort: number, targetIp: number, targetPort: number): void {
    if (type === MsgType.ClientAdd) {
      const now = Date.now();
      this.stats.clientAdds++;
      t.clientAdds++;
      this.routes.add(clientIp, clientPort, targetIp, targetPort, t, now);
      const held = this.heldReplies.take(clientIp, clientPort, targetIp, targetPort, this.opts.dnat);
      if (held) {
        for (const rec of held) {
          const b = t.batcher;
          const off = b.reserve(t.out);
          rec.copy(b.buffer, off, 0, this.recordSize);
          this.markDirty(t);
        }
        this.stats.heldDelivered += held.length;
        this.stats.forwarded += held.length;
      }
    } else if (type === MsgType.ClientDel) {
      this.stats.clientDels++;
    } else {
      this.stats.unknownRecords++;
      if (this.stats.unknownRecords <= 10) this.log.warn({ tunnel: t.id, type }, 'unknown control record type; ignored');
    }
  }

  onTunnelClosed(t: Tunnel, reason: string, error: ControlError | Error | null): void {
    this.tunnels.delete(t);
    this.stats.recordsDroppedSlowReader += t.recordsDropped;
    const routes = this.routes.dropOwner(t) + this.routes6.dropOwner(t);
    if (error) this.stats.tunnelsDropped++;
    const fields = { tunnel: t.id, remote: t.remote, reason, routes, recordsSent: t.recordsSent, recordsDropped: t.recordsDropped, tunnels: this.tunnels.size };
    if (error) this.log.warn({ ...fields, err: error.message }, 'tcpcopy connection dropped');
    else this.log.info(fields, 'tcpcopy disconnected');
  }

  /**
   * A record was queued on `t`. Records go out within 1 ms (a full batch at once): at low
   * rates that merges the segments of one response into one write. Once a few records wait,
   * they go at the end of this event-loop turn instead, without waiting for the timer: under
   * load every turn has records to send, and the millisecond would only add latency to the
   * replay (whose next request waits for this response).
   */
  private markDirty(t: Tunnel): void {
    if (!t.dirty) {
      t.dirty = true;
      this.dirty.push(t);
    }
    if (this.batchNowMs !== 0) return; // a ring batch: flushed at its end
    if (!this.flushTimerPending) {
      this.flushTimerPending = true;
      setTimeout(this.onFlushTimer, 1);
    }
    if (++this.queuedRecords >= FLUSH_NOW_RECORDS && !this.flushImmediatePending) {
      this.flushImmediatePending = true;
      setImmediate(this.onFlushImmediate);
    }
  }
  private queuedRecords = 0;
  private flushTimerPending = false;
  private flushImmediatePending = false;
  private readonly onFlushTimer = (): void => { this.flushTimerPending = false; this.flushAll(); };
  private readonly onFlushImmediate = (): void => { this.flushImmediatePending = false; this.flushAll(); };

  /** The hot path: one captured reply frame. */
  onFrame(buf: Buffer, len: number, linkType: number, _tsUs: number): void {
    const ipOff = ipOffset(linkType, buf, 0, len);
    if (ipOff < 0) { this.stats.captured++; this.stats.skipped[-ipOff]++; return; }
    this.onIpPacket(buf, ipOff, len - ipOff);
  }

  /**
   * The capture ring's packets: the clock is read once per wakeup, and the records go out at
   * the wakeup's end (`onRingBatchEnd`): the ring has batched them already (its block timeout),
   * so no timer is needed to merge a response's segments into one write.
   */
  onRingPacket(buf: Buffer, ipOff: number, avail: number): void {
    if (this.batchNowMs === 0) this.batchNowMs = Date.now();
    this.onIpPacket(buf, ipOff, avail);
  }

  onRingBatchEnd(): void {
    this.batchNowMs = 0;
    if (this.dirty.length !== 0) this.flushAll();
  }
  /** The time of the ring batch being handled, 0 outside one. */
  private batchNowMs = 0;

  /** The hot path (every capture engine): `buf[ipOff .. ipOff + avail)` holds an IPv4 or IPv6 packet. */
  onIpPacket(buf: Buffer, ipOff: number, avail: number): void {
    const st = this.stats;
    st.captured++;
    if (avail > 0 && (buf[ipOff] >>> 4) === 6) { this.onIpv6Packet(buf, ipOff, avail); return; }
    const pkt = this.pkt;
    const r = pkt.checkHeaders(buf, ipOff, avail);
    if (r !== WireReason.Ok) { st.skipped[r]++; return; }
    st.tcpPackets++;
    const ip = pkt.ip;
    const tcp = pkt.tcp;
    let clientIp = ip.dst;
    const rewrite = this.dockerFrom >= 0 && clientIp === this.dockerFrom;
    if (rewrite) clientIp = this.dockerTo;
    const clientPort = tcp.dstPort;
    const targetIp = ip.src;
    const targetPort = tcp.srcPort;
    const now = this.batchNowMs !== 0 ? this.batchNowMs : Date.now();
    const t = this.routes.lookup(clientIp, clientPort, targetIp, targetPort, now);
    if (t !== null) {
      const b = t.batcher;
      const off = b.reserve(t.out);
      const rb = b.buffer;
      buildReplyRecord(rb, off, this.recordSize, buf, ipOff, ip.headerLen, tcp.headerLen, ip.totalLen, ipOff + ip.len);
      if (rewrite) put32(rb, off + Rec.DstIp, clientIp);
      this.markDirty(t);
      st.forwarded++;
      return;
    }
    if ((tcp.flags & (TcpFlag.SYN | TcpFlag.RST)) !== 0) {
      const tmp = this.holdBuf;
      buildReplyRecord(tmp, 0, this.recordSize, buf, ipOff, ip.headerLen, tcp.headerLen, ip.totalLen, ipOff + ip.len);
      if (rewrite) put32(tmp, 16, clientIp);
      if (this.heldReplies.hold(clientIp, clientPort, targetIp, targetPort, tmp, 0, this.recordSize, now)) st.held++;
      return;
    }
    st.noRoute++;
  }
  private readonly holdBuf = Buffer.alloc(256);

  /**
   * A captured IPv6 reply: routed by the keys of its addresses (an address no route holds has
   * no key: no route), sent as a two-slot IPv6 reply record. A SYN-ACK or RST that comes
   * before its CLIENT_ADD6 is held as IPv4 ones are (its addresses interned for the hold).
   */
  private onIpv6Packet(buf: Buffer, ipOff: number, avail: number): void {
    const st = this.stats;
    const pkt = this.pkt6;
    const r = pkt.checkHeaders(buf, ipOff, avail);
    if (r !== WireReason.Ok) { st.skipped[r]++; return; }
    st.tcpPackets++;
    const ip = pkt.ip;
    const tcp = pkt.tcp;
    const c = this.addr6.find(buf, ip.dstOffset);
    const g = this.opts.dnat ? 0 : this.addr6.find(buf, ip.srcOffset);
    const now = this.batchNowMs !== 0 ? this.batchNowMs : Date.now();
    const t = c === 0 || (g === 0 && !this.opts.dnat) ? null : this.routes6.lookup(c, tcp.dstPort, g, tcp.srcPort, now);
    if (t === null) {
      if ((tcp.flags & (TcpFlag.SYN | TcpFlag.RST)) !== 0) { this.hold6(buf, ipOff, now); return; }
      st.noRoute++;
      return;
    }
    if ((t.capabilities & Capability.Ipv6) === 0) { st.noRoute++; return; }
    const b = t.batcher;
    const off = b.reserve2(t.out);
    buildReplyRecord6(b.buffer, off, 2 * this.recordSize, this.recordSize > 64, buf, ipOff, ip.headerLen, tcp.headerLen, ip.totalLen, ipOff + ip.len);
    this.markDirty(t);
    st.forwarded++;
    st.forwarded6++;
  }

  /** Holds an IPv6 SYN-ACK or RST without a route (the rare path): its record, under its interned addresses. */
  private hold6(buf: Buffer, ipOff: number, now: number): void {
    const ip = this.pkt6.ip;
    const tcp = this.pkt6.tcp;
    const size = 2 * this.recordSize;
    const tmp = this.holdBuf6;
    buildReplyRecord6(tmp, 0, size, this.recordSize > 64, buf, ipOff, ip.headerLen, tcp.headerLen, ip.totalLen, ipOff + ip.len);
    const a = this.addr6;
    const c = a.intern(buf, ip.dstOffset);
    const g = a.intern(buf, ip.srcOffset);
    if (this.heldReplies.hold(c, tcp.dstPort, g, tcp.srcPort, tmp, 0, size, now)) this.stats.held++;
    // A new held entry acquired both keys; otherwise nothing holds them on its account.
    a.dropIfUnused(c);
    a.dropIfUnused(g);
  }
  private readonly holdBuf6 = Buffer.alloc(512);

  private sweep(): void {
    const n = this.routes.sweep(Date.now()) + this.routes6.sweep(Date.now());
    if (n) this.log.debug({ expired: n, routes: this.routes.size }, 'idle routes expired');
  }

  private sweepHeld(): void {
    this.heldReplies.sweep(Date.now());
  }

  /** A plain snapshot of the counters for logs. */
  snapshot(): Record<string, unknown> {
    const s = this.stats;
    const skipped: Record<string, number> = {};
    s.skipped.forEach((v, i) => { if (v) skipped[WIRE_REASON_NAMES[i]] = v; });
    let backlog = 0, dropped = s.recordsDroppedSlowReader;
    for (const t of this.tunnels) { backlog += t.backlogSize; dropped += t.recordsDropped; }
    return {
      captured: s.captured, tcpPackets: s.tcpPackets, forwarded: s.forwarded, noRoute: s.noRoute,
      held: s.held, heldDelivered: s.heldDelivered, heldNow: this.heldReplies.size, heldExpired: this.heldReplies.expired,
      heldDropped: this.heldReplies.dropped, clientAdds: s.clientAdds, clientAdds6: s.clientAdds6, forwarded6: s.forwarded6, routes: this.routes.size + this.routes6.size,
      routesExpired: this.routes.expired, routesEvicted: this.routes.evicted, tunnels: this.tunnels.size,
      tunnelsAccepted: s.tunnelsAccepted, tunnelsRefused: s.tunnelsRefused, tunnelsDropped: s.tunnelsDropped, extensionPeers: s.extensionPeers,
      backlogBytes: backlog, recordsDroppedSlowReader: dropped, skipped,
    };
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.flushAll();
    for (const t of [...this.tunnels]) t.close('shutdown', null);
    if (this.server) {
      const s = this.server;
      this.server = null;
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}

/**
 * A control peer's address as the passlist holds it: IPv4 as a dotted quad (also when a
 * dual-stack listener reports it as `::ffff:a.b.c.d`), IPv6 in RFC 5952 text.
 */
export function peerText(addr: string): string {
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(addr)) return addr.slice(7);
  if (!addr.includes(':')) return addr;
  const v6 = parseIpv6(addr);
  return v6 !== null ? ipv6ToString(v6) : addr;
}
