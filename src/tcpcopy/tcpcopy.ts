import * as v8 from 'node:v8';
import type { Logger } from 'pino';
import pidusage from 'pidusage';
import { Capability, ChannelFormat } from '../control/records';
import { WireReason, WIRE_REASON_NAMES } from '../wire/errors';
import { ipOffset, ipv4Offset } from '../wire/link';
import { Tcp6Packet, TcpPacket } from '../wire/packet';
import { PcapLiveSource } from '../io/pcap-live';
import { IpPacketSink, PacketSender, RawIpSender, RawTcpCapture } from '../io/raw-socket';
import { RAW_CAPTURE_NO_IPV6 } from '../io/engines';
import { LinkLayerSender, MacPair, deviceMac, neighbourMac, unknownMacMessage } from '../io/link-sender';
import { OfflineSource } from '../io/offline';
import { FrameSink, IoError } from '../io/types';
import { RingCapture, RingPacketSink } from '../io/ring';
import { MmsgSender } from '../io/mmsg-sender';
import type { EngineChoice } from '../io/engines';
import { Engine, EngineOptions } from './engine';
import type { ProtocolModule } from './modules/module';
import { EngineTicker } from './ticker';
import { InterceptAddress, InterceptLink, InterceptLinks, ReplyConsumer } from './links';
import { TransferTable } from './transfer';

export type CaptureMode =
  /** Every interface: the ring (IPv4, inbound, once per packet) or the raw socket. `filter` applies to the ring. */
  | { kind: 'raw'; filter?: string; bufferBytes?: number; snaplen?: number }
  | { kind: 'pcap'; devices: string[]; filter: string; bufferBytes: number; snaplen: number }
  | { kind: 'offline'; path: string; accel: number; idleCutMs: number; passes: number };

export interface TcpcopyOptions {
  transfer: TransferTable;
  engine: EngineOptions;
  capture: CaptureMode;
  /** `-o`: send Ethernet frames on this device instead of the raw IP socket. */
  outputDevice: string;
  intercepts: InterceptAddress[];
  connectionsPerIntercept: number;
  format: ChannelFormat;
  /** `-L`: keep running when no intercept is connected. */
  lonely: boolean;
  /** `-m`: memory limit in bytes (0 = none). */
  memoryLimitBytes: number;
  /** Offline: how long sessions may finish after the file ends. */
  offlineTailMs: number;
  /** Without -L: how long tcpcopy waits for a lost intercept before it gives up. */
  noInterceptGraceMs: number;
  /** Shared secret for the control channel ('' = off, the original's protocol). */
  secret: string;
  /** `--module`: the protocol module (null: plain TCP replay). */
  module?: ProtocolModule | null;
  /** `-o`: next-hop MACs learnt before start (see resolveNeighbours). */
  resolvedMacs?: Map<string, Buffer>;
  /** `--capture-engine`: the ring (default) or the mode's older engine; explicit = no fallback. */
  captureEngine?: EngineChoice;
  /** `--send-engine`: sendmmsg (default) or the mode's older engine. */
  sendEngine?: EngineChoice;
  /** `--ring-timeout`: a ring block that is not full goes to user space after this long (ms). */
  ringTimeoutMs?: number;
}

/**
 * `-o` without MACs in -x: the kernel's neighbour table usually knows the target; when it
 * does not, a datagram to the target's discard port makes the kernel resolve it (ARP).
 */
export async function resolveNeighbours(opts: TcpcopyOptions): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  if (!opts.outputDevice) return out;
  const dgram = await import('node:dgram');
  for (const r of opts.transfer.rules) {
    if (r.dstMac) continue;
    let mac = neighbourMac(r.targetIpText, opts.outputDevice);
    for (let i = 0; !mac && i < 20; i++) {
      if (i % 5 === 0) {
        const sock = dgram.createSocket(r.family === 6 ? 'udp6' : 'udp4');
        await new Promise<void>((res) => sock.send(Buffer.alloc(1), 9, r.targetIpText, () => { sock.close(); res(); }));
      }
      await new Promise((res) => setTimeout(res, 100));
      mac = neighbourMac(r.targetIpText, opts.outputDevice);
    }
    if (mac) out.set(r.targetIpText, mac);
  }
  return out;
}

/**
 * tcpcopy's running parts: a capture source, the pre-filter (wire checks and `-x` rules),
 * the session engine, the send sink and the intercept links.
 */
export class Tcpcopy implements IpPacketSink, FrameSink, RingPacketSink, ReplyConsumer {
  readonly engine: Engine;
  private readonly ticker: EngineTicker;
  readonly links: InterceptLinks;
  readonly sender: PacketSender;
  private readonly pkt = new TcpPacket();
  /** IPv6 rules: IPv6 packets are captured, checked with `pkt6` and sent through an IPv6 sender. */
  private readonly v6: boolean;
  private readonly pkt6 = new Tcp6Packet();
  private ipv6RefusalSaid = false;
  private raw: RawTcpCapture | null = null;
  private ring: RingCapture | null = null;
  /** Which engines run (for the start-up line and the statistics). */
  captureEngineName = '';
  private nativeMissing = false;
  sendEngineName = '';
  private pcap: PcapLiveSource | null = null;
  offline: OfflineSource | null = null;
  private memTimer: NodeJS.Timeout | null = null;
  private limitTimer: NodeJS.Timeout | null = null;
  private youngTimer: NodeJS.Timeout | null = null;
  private youngGrows = false;

  /**
   * The daemons start with a young generation that does not grow (runDaemon: ~12 MB less
   * resident memory at moderate rates). With a large backlog that costs dearly: packets that
   * wait are promoted early and the old generation is collected over and over (measured with
   * -n 2 at the maximum rate: 50-65 % loss instead of 1-3 %). So the young generation may grow
   * while the backlog is above 32 MiB, and stops growing again below 8 MiB.
   */
  private adaptYoungGeneration(): void {
    const b = this.engine.backlogBytes;
    if (!this.youngGrows && b > 32 << 20) {
      this.youngGrows = true;
      v8.setFlagsFromString('--semi-space-growth-factor=2');
    } else if (this.youngGrows && b < 8 << 20) {
      this.youngGrows = false;
      v8.setFlagsFromString('--semi-space-growth-factor=1');
    }
  }
  private cpu = { cpuPercent: 0, rssBytes: 0 };
  private overLimitChecks = 0;
  private resolveDone!: (r: { code: number; reason: string }) => void;
  readonly done: Promise<{ code: number; reason: string }>;
  private downTimer: NodeJS.Timeout | null = null;

  constructor(readonly opts: TcpcopyOptions, private readonly log: Logger) {
    this.done = new Promise((r) => { this.resolveDone = r; });
    this.sender = this.makeSender();
    this.links = new InterceptLinks(opts.intercepts, opts.connectionsPerIntercept, opts.format, this, log, () => this.allInterceptsDown(), opts.secret);
    this.engine = new Engine(opts.engine, this.sender, this.links, Date.now(), opts.module ?? null);
    this.engine.onSessionSkipped = (reason) => this.sessionSkipped(reason);
    this.v6 = opts.transfer.hasIpv6;
    if (this.v6) this.openIpv6Sender();
    this.ticker = new EngineTicker(this.engine);
    this.engine.onBacklogTrimmed = (ended, bytes) => {
      this.trimmedSinceLog += ended;
      const now = Date.now();
      if (now - this.trimLoggedMs < 10_000) return;
      this.trimLoggedMs = now;
      this.log.warn({ sessionsEnded: this.trimmedSinceLog, backlogMB: Math.round(bytes / 1048576), limitMB: opts.engine.backlogLimitBytes / 1048576 },
        'replay is behind the capture and its backlog reached --backlog-limit: the sessions furthest behind skipped their queued requests (backlogSkippedRequests) or were ended, and new ones wait');
      this.trimmedSinceLog = 0;
    };
  }
  private trimmedSinceLog = 0;
  private trimLoggedMs = 0;

  /** sendmmsg by default; the older sender when asked, or (one warning) when the addon cannot serve. */
  private makeSender(): PacketSender {
    const choice = this.opts.sendEngine ?? { fast: true, explicit: false };
    const dev = this.opts.outputDevice;
    if (choice.fast) {
      try {
        const s = dev ? new MmsgSender('link', dev, this.linkMacs()) : new MmsgSender('ip');
        this.sendEngineName = dev ? 'mmsg-link' : 'mmsg';
        return s;
      } catch (e) {
        const err = e as IoError;
        if (choice.explicit || err.code === 'no-neighbour' || err.code === 'no-device' || err.code === 'no-mac') throw e;
        this.log.warn({ err: err.message }, err.code === 'no-native'
          ? `packet addon unavailable; capturing and sending with the older engines (${dev ? 'libpcap' : 'raw-socket'})`
          : `sendmmsg engine unavailable; sending with ${dev ? 'libpcap' : 'raw-socket'}`);
        this.nativeMissing = err.code === 'no-native';
      }
    }
    this.sendEngineName = dev ? 'pcap' : 'raw';
    return dev ? new LinkLayerSender(dev, this.linkMacs()) : new RawIpSender();
  }

  /**
   * IPv6 rules: the raw IPv6 sender (our addon), or with -o the link-layer sender IPv4 uses (its
   * frames take their EtherType from the packet); one warning when an intercept cannot take IPv6.
   */
  private openIpv6Sender(): void {
    this.engine.sender6 = this.opts.outputDevice ? this.sender : this.makeSender6();
    this.engine.onIpv6Refused = () => {
      if (this.ipv6RefusalSaid) return;
      this.ipv6RefusalSaid = true;
      this.log.warn({}, 'an IPv6 session is refused: no connected intercept accepted the IPv6 capability (the original C intercept replays IPv4 only); IPv6 sessions are counted in ipv6Refused, not logged again');
    };
  }

  /** Without -o: sendmmsg through our addon's raw IPv6 socket, or raw-socket's (--send-engine raw/legacy, or no addon). */
  private makeSender6(): PacketSender {
    const choice = this.opts.sendEngine ?? { fast: true, explicit: false };
    if (choice.fast) {
      try {
        return new MmsgSender('ip6');
      } catch (e) {
        if (choice.explicit) throw e;
        this.log.warn({ err: (e as Error).message }, 'sendmmsg engine unavailable for IPv6; sending IPv6 with raw-socket');
      }
    }
    return new RawIpSender(16 << 20, 6);
  }

  private linkMacs(): Map<string, MacPair> {
    const dev = this.opts.outputDevice;
    const own = deviceMac(dev);
    const macs = new Map<string, MacPair>();
    for (const r of this.opts.transfer.rules) {
      const dst = r.dstMac ?? this.opts.resolvedMacs?.get(r.targetIpText) ?? neighbourMac(r.targetIpText, dev);
      if (!dst) {
        const target = r.family === 6 ? `[${r.targetIpText}]` : r.targetIpText;
        throw new IoError('no-neighbour', unknownMacMessage(dev, r.targetIpText, `${r.onlinePort}@aa:bb:cc:dd:ee:01-${target}:${r.targetPort}@aa:bb:cc:dd:ee:ff`));
      }
      macs.set(r.targetIpText, { src: r.srcMac ?? own, dst });
    }
    return macs;
  }

  /**
   * The ring for live capture (default), or null when the older engine should run: asked for,
   * or (one warning line) the ring cannot open here. A filter libpcap rejects, a missing
   * device or an explicit choice throws instead.
   */
  private openRing(devices: string[], filter: string, bufferBytes: number, snaplen: number): RingCapture | null {
    const choice = this.opts.captureEngine ?? { fast: true, explicit: false };
    if (!choice.fast) return null;
    const ring = new RingCapture({
      devices, allProtocols: false, ipv6: this.v6, ipv4: this.opts.transfer.hasIpv4, ignoreOutgoing: true, filter, snaplen, ringBytes: bufferBytes,
      timeoutMs: this.opts.ringTimeoutMs ?? 1,
    }, this);
    try {
      ring.open();
      return ring;
    } catch (e) {
      const err = e as IoError;
      if (choice.explicit || err.code === 'bad-filter' || err.code === 'no-device') throw e;
      // The addon missing was said once already (by the sender).
      if (!(this.nativeMissing && err.code === 'no-native')) {
        this.log.warn({ err: err.message }, `capture ring unavailable; capturing with ${devices.length ? 'libpcap' : 'the raw socket'}`);
      }
      return null;
    }
  }

  /**
   * Opens the capture (a missing device, a bad filter, no permission, an unreadable file are
   * said before any intercept is contacted), connects to the intercepts, then starts the
   * replay of a file. Live packets captured before an intercept is up are counted
   * (`noIntercept`) and not replayed. Throws an Error with a clear line.
   */
  async start(): Promise<void> {
    const c = this.opts.capture;
    try {
      if (c.kind === 'raw') {
        this.ring = this.openRing([], c.filter ?? this.opts.transfer.pcapFilter(), c.bufferBytes ?? 16 << 20, c.snaplen ?? 65535);
        if (!this.ring) {
          if (this.v6) {
            throw new IoError('no-ipv6-capture', `the capture ring is unavailable here and the raw-socket capture cannot see IPv6 (${RAW_CAPTURE_NO_IPV6}), ` +
              'which the IPv6 -x items need: build the packet addon (npm run setup), or capture with libpcap (-i <device>)');
          }
          this.raw = new RawTcpCapture(this);
        }
        this.captureEngineName = this.ring ? 'ring' : 'raw';
      } else if (c.kind === 'pcap') {
        this.ring = this.openRing(c.devices, c.filter, c.bufferBytes, c.snaplen);
        if (!this.ring) {
          this.pcap = new PcapLiveSource({ devices: c.devices, filter: c.filter, bufferBytes: c.bufferBytes, frameBytes: c.snaplen }, this);
          this.pcap.open();
        }
        this.captureEngineName = this.ring ? 'ring' : 'pcap';
      } else {
        this.captureEngineName = 'offline';
        // -T: the next pass waits for the last one's sessions (it sends the same connections again).
        this.offline = new OfflineSource({ path: c.path, accel: c.accel, idleCutMs: c.idleCutMs, passes: c.passes, ipv6: this.v6,
          passIdle: () => this.engine.activeSessions === 0 }, {
          // The file's timestamps pace the replay (OfflineSource); the engine runs on the clock.
          onIpPacket: (buf, ipOff, avail) => this.onPacket(buf, ipOff, avail, Date.now()),
          onRejected: (reason) => { this.engine.stats.captured++; this.engine.stats.malformed[reason]++; },
        });
        this.offline.open();
      }
    } catch (e) {
      this.closeCapture();
      this.ticker.stop();
      throw e;
    }
    const up = await this.links.connect();
    if (up === 0 && !this.opts.lonely) {
      this.links.close();
      this.closeCapture();
      this.ticker.stop();
      if (this.downTimer) { clearTimeout(this.downTimer); this.downTimer = null; }
      const wrong = this.links.links.find((l) => l.formatError !== '');
      if (wrong) throw new IoError('channel-format', `intercept ${wrong.name}: ${wrong.formatError}`);
      throw new IoError('no-intercept', `cannot connect to any intercept (${this.opts.intercepts.map((a) => a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`).join(', ')}): start intercept there first, check -s / -p${this.opts.secret ? ' and that --secret matches intercept\'s' : ''}, or pass -L to start anyway`);
    }
    if (up < this.opts.intercepts.length) {
      this.log.warn({ up, of: this.opts.intercepts.length }, 'some intercepts are not reachable; retrying in the background');
    }
    if (this.offline) {
      this.offline.start();
      void this.offline.done.then((r) => this.offlineEnded(r.packets, r.error?.message ?? null));
    }
    // -m: resident memory read every 100 ms (process.memoryUsage.rss(): one read of
    // /proc/self/statm), so that a flood of new sessions is shed before it overshoots the limit;
    // CPU and memory for the statistics every 10 s either way.
    if (this.opts.memoryLimitBytes > 0) {
      this.limitTimer = setInterval(() => this.checkMemory(), 100);
      this.limitTimer.unref();
    }
    this.memTimer = setInterval(() => this.sampleUsage(), 10_000);
    this.memTimer.unref();
    this.youngTimer = setInterval(() => this.adaptYoungGeneration(), 1000);
    this.youngTimer.unref();
  }

  private closeCapture(): void {
    this.raw?.close();
    this.ring?.close();
    this.pcap?.close();
    this.offline?.stop();
  }

  // ------------------------------------------------------------- capture → engine

  /** Live captures: `tsUs` is the clock read once per batch of packets (the engine's time). */
  onIpPacket(buf: Buffer, len: number, tsUs: number): void {
    this.onPacket(buf, 0, len, tsUs / 1000);
  }

  /** The ring's per-packet times are not used (the clock is read once per wakeup): not computed. */
  readonly wantsTime = false;

  /** The ring: the clock is read once per wakeup (the kernel's per-packet times may lag it after a stall). */
  onRingPacket(buf: Buffer, ipOff: number, capLen: number, _wireLen: number, _tsUs: number): void {
    if (this.ringNowMs === 0) { this.ringNowMs = Date.now(); this.beginOutputBatch(); }
    this.onPacket(buf, ipOff, capLen, this.ringNowMs);
  }

  onRingBatchEnd(): void {
    if (this.ringNowMs === 0) return;
    this.ticker.pollIfDue(this.ringNowMs);
    this.ringNowMs = 0;
    this.endOutputBatch();
  }

  /**
   * The CLIENT_ADD records of one batch (a ring wake-up, a chunk of replies) go at its end, in
   * one write per connection, with no nextTick of their own. Packets still go at the end of the
   * event-loop turn (the addon's check handle): a ring wake-up and a control-channel read ready in the same
   * turn then share one sendmmsg (flushing at each batch's end made 30 % more system calls at
   * 1,000 short connections a second).
   */
  private beginOutputBatch(): void {
    this.links.batch.open = true;
  }

  private endOutputBatch(): void {
    this.links.endBatch();
  }
  private ringNowMs = 0;

  onCaptureBehind(behind: boolean): void {
    this.engine.captureBehind = behind;
  }

  onFrame(buf: Buffer, len: number, linkType: number, tsUs: number): void {
    const off = this.v6 ? ipOffset(linkType, buf, 0, len) : ipv4Offset(linkType, buf, 0, len);
    if (off < 0) { this.engine.stats.captured++; this.engine.stats.malformed[-off]++; return; }
    this.onPacket(buf, off, len - off, tsUs / 1000);
  }

  /** The pre-filter: wire checks, then the `-x` rules, then the engine. */
  private onPacket(buf: Buffer, ipOff: number, avail: number, nowMs: number): void {
    const st = this.engine.stats;
    st.captured++;
    if (this.v6 && avail > 0 && (buf[ipOff] >>> 4) === 6) { this.onPacket6(buf, ipOff, avail, nowMs); return; }
    const pkt = this.pkt;
    const r = pkt.check(buf, ipOff, avail);
    if (r !== WireReason.Ok) { st.malformed[r]++; return; }
    const rule = this.opts.transfer.match(pkt.ip.dst, pkt.tcp.dstPort);
    if (rule === null) { st.notMatched++; return; }
    this.engine.onClientPacket(pkt, rule, nowMs);
  }

  private onPacket6(buf: Buffer, ipOff: number, avail: number, nowMs: number): void {
    const st = this.engine.stats;
    const pkt = this.pkt6;
    const r = pkt.check(buf, ipOff, avail);
    if (r !== WireReason.Ok) { st.malformed[r]++; return; }
    const rule = this.opts.transfer.match6(buf, pkt.ip.dstOffset, pkt.tcp.dstPort);
    if (rule === null) { st.notMatched++; return; }
    this.engine.onClientPacket6(pkt, rule, nowMs);
  }

  // ------------------------------------------------------------- replies

  /** One clock read per batch of replies (a chunk from a control connection). */
  private replyNowMs = 0;

  onReply(buf: Buffer, off: number): void {
    if (this.replyNowMs === 0) { this.replyNowMs = Date.now(); this.beginOutputBatch(); }
    this.engine.onReply(buf, off, this.replyNowMs);
  }

  afterReplies(): void {
    const now = this.replyNowMs;
    this.replyNowMs = 0;
    this.engine.flushAcks();
    if (now === 0) return;
    this.ticker.pollIfDue(now);
    this.endOutputBatch();
  }

  onLinkUp(link: InterceptLink, reconnected: boolean): void {
    if (this.downTimer) { clearTimeout(this.downTimer); this.downTimer = null; }
    if (reconnected) {
      // The intercept forgot our routes when the connection dropped: register live sessions
      // again. IPv4 ones now; IPv6 ones need the capability answer (onLinkCapabilities).
      const n = this.engine.reannounce(this.v6 ? 4 : 0);
      this.log.info({ intercept: link.name, sessions: n }, 'routes of live sessions registered again');
    }
  }

  onLinkCapabilities(link: InterceptLink, reconnected: boolean, capabilities: number): void {
    if (!reconnected || !this.v6 || (capabilities & Capability.Ipv6) === 0) return;
    const n = this.engine.reannounce(6);
    this.log.info({ intercept: link.name, sessions: n }, 'routes of live IPv6 sessions registered again (CLIENT_ADD6)');
  }

  private allInterceptsDown(): void {
    if (this.opts.lonely || this.downTimer) {
      this.log.warn('no intercept connected; replication paused until one comes back (-L)');
      return;
    }
    this.log.warn({ graceMs: this.opts.noInterceptGraceMs }, 'no intercept connected; waiting for one to come back');
    this.downTimer = setTimeout(() => {
      if (this.links.upIntercepts === 0) {
        this.resolveDone({ code: 1, reason: 'no intercept left: every control connection is gone (restart intercept, or run tcpcopy with -L to keep going)' });
      }
    }, this.opts.noInterceptGraceMs);
  }

  private offlineEnded(packets: number, error: string | null): void {
    const st = this.engine.stats;
    const e = this.offline?.error;
    if (error) this.log.warn({ err: error, code: e?.code, fileOffset: e?.fileOffset, record: e?.recordIndex, packets }, `capture file ends early at byte ${e?.fileOffset} (record ${e?.recordIndex}): replayed what could be read`);
    if (packets === 0) { this.resolveDone({ code: 1, reason: `nothing could be read from the capture file${error ? `: ${error}` : ''}` }); return; }
    if (st.clientPackets === 0) {
      const unsupported = st.malformed[WireReason.UnsupportedLinkType];
      if (unsupported > 0) this.log.warn({ unsupported, packets }, `no packet in the file could be replayed: ${unsupported} of ${packets} packets are of an unsupported link type (Ethernet, Linux cooked v1/v2, raw IP and loopback are read)`);
      else this.log.warn({ rules: this.opts.transfer.rules.map(String), malformed: st.malformed.reduce((a, b) => a + b, 0) }, 'no packet in the file matches -x');
    }
    this.log.info({ packets, sessions: st.sessionsCreated }, 'end of capture file; letting sessions finish');
    const start = Date.now();
    const wait = setInterval(() => {
      if (this.engine.activeSessions === 0 || Date.now() - start > this.opts.offlineTailMs) {
        clearInterval(wait);
        this.resolveDone({ code: 0, reason: st.clientPackets === 0 ? 'offline replay is complete: no packet matched -x' : 'offline replay is complete' });
      }
    }, 100);
  }

  // ------------------------------------------------------------- memory

  private sampleUsage(): void {
    pidusage(process.pid, (err, s) => {
      if (!err && s) this.cpu = { cpuPercent: Math.round(s.cpu * 10) / 10, rssBytes: s.memory };
    });
  }

  /** `-m`: shed new sessions above 80 % of the limit; exit only if that cannot hold it. */
  private checkMemory(): void {
    const rss = process.memoryUsage.rss();
    this.cpu.rssBytes = rss;
    const limit = this.opts.memoryLimitBytes;
    const e = this.engine;
    if (rss > 0.8 * limit && !e.shedding) {
      e.shedding = true;
      this.log.warn({ rssMB: Math.round(rss / 1048576), limitMB: Math.round(limit / 1048576) }, 'memory near the -m limit: new sessions are shed');
    } else if (rss < 0.7 * limit && e.shedding) {
      e.shedding = false;
      this.log.info({ rssMB: Math.round(rss / 1048576) }, 'memory back under the limit: accepting new sessions');
    }
    if (rss <= limit) {
      this.overLimitChecks = 0;
    } else if (++this.overLimitChecks >= 100) { // 10 s of checks
      this.resolveDone({ code: 1, reason: `memory ${Math.round(rss / 1048576)} MB stays above the -m limit of ${Math.round(limit / 1048576)} MB although new sessions are shed` });
    }
  }

  /** Reasons a protocol module skipped sessions for, each logged once. */
  private readonly skipReasonsLogged = new Set<string>();

  private sessionSkipped(reason: string): void {
    if (this.skipReasonsLogged.has(reason)) return;
    this.skipReasonsLogged.add(reason);
    const hint = SKIP_HINTS[reason] ?? '';
    this.log.warn({ module: this.opts.module?.name, reason }, `${this.opts.module?.name ?? 'module'}: a session cannot be replayed (${reason})${hint ? `: ${hint}` : ''}; it is skipped whole; sessions skipped for this reason are counted in sessionsSkippedByReason, not logged again`);
  }

  snapshot(): Record<string, unknown> {
    const st = this.engine.stats;
    const malformed: Record<string, number> = {};
    st.malformed.forEach((v, i) => { if (v) malformed[WIRE_REASON_NAMES[i]] = v; });
    const counters: Record<string, unknown> = { ...st };
    counters.malformed = malformed;
    const out: Record<string, unknown> = {
      ...counters,
      ...this.engine.snapshot(),
      captureEngine: this.captureEngineName,
      sendEngine: this.sendEngineName,
      ...(this.opts.module ? this.opts.module.counters() : {}),
      sendErrors: this.sender.errors,
      timerWakeups: this.ticker.timerWakeups,
      intercepts: this.links.snapshot(),
      cpuPercent: this.cpu.cpuPercent,
      rssMB: Math.round((this.cpu.rssBytes || process.memoryUsage.rss()) / 1048576),
      heapMB: memoryFigures(),
    };
    if (this.raw) {
      const r = this.raw;
      out.rawCapture = { wakeups: r.wakeups, packets: r.packets, drainedToEagain: r.eagain, kernelDrops: r.kernelDrops, queueKB: Math.round(r.queueBytes / 1024), behind: r.behind ? 1 : 0, fellBehind: r.behindEvents };
    }
    if (this.ring) {
      const r = this.ring.snapshot();
      out.ringCapture = r;
      out.kernelDrops = r.kernelDrops;
    }
    if (this.raw) out.kernelDrops = this.raw.kernelDrops;
    if (this.sender instanceof MmsgSender) out.mmsgSend = this.sender.snapshot();
    if (this.offline) out.offline = this.offline.progress;
    return out;
  }

  async stop(): Promise<void> {
    if (this.downTimer) clearTimeout(this.downTimer);
    if (this.memTimer) clearInterval(this.memTimer);
    if (this.limitTimer) clearInterval(this.limitTimer);
    if (this.youngTimer) clearInterval(this.youngTimer);
    this.closeCapture();
    this.engine.shutdown(Date.now());
    this.ticker.stop();
    // Let the RSTs and the last control records go out.
    await new Promise((r) => setTimeout(r, 20));
    this.links.close();
    this.sender.close();
    if (this.engine.sender6 !== this.sender) this.engine.sender6?.close();
  }
}

/** JavaScript heap in use / reserved, and Buffer memory (MiB, one decimal), for the statistics. */
function memoryFigures(): { used: number; total: number; buffers: number } {
  const m = process.memoryUsage();
  const mb = (n: number): number => Math.round(n / 104857.6) / 10;
  return { used: mb(m.heapUsed), total: mb(m.heapTotal), buffers: mb(m.arrayBuffers) };
}

/** What a skip reason means, for its one log line. */
const SKIP_HINTS: Record<string, string> = {
  'no-handshake': 'its start was not captured (it was running when tcpcopy started): its login is unknown',
  'renew': 'the target closed the connection with requests left, and a new connection would need a new login',
  'bad-greeting': 'the target\'s greeting could not be read; does intercept run with --payload (the original: --with-resp-payload), and tcpcopy with --payload?',
  'split-packet': 'a login packet did not fit in one TCP segment (or in the 128 payload bytes of a reply record)',
  'target-error': 'the target refused the connection with an error instead of a greeting (too many connections? host blocked?)',
  'old-protocol': 'the client speaks the pre-4.1 protocol',
  'bad-handshake-response': 'the client\'s login packet is malformed',
  'tls': 'the client asked for TLS: its login cannot be read',
  'plugin': 'the login uses an authentication plugin other than mysql_native_password (e.g. caching_sha2_password)',
  'unknown-user': 'the user has no password in --module-conf',
  'auth-length': 'the target\'s password gives an answer of another length than the captured one (an empty password on one side only)',
  'auth-failed': 'the target refused the login: is the user\'s password in --module-conf the target\'s?',
  'auth-mismatch': 'the online server and the target disagree on the login exchange (an auth switch on one side only)',
  'bad-auth-switch': 'the target\'s auth switch request is malformed',
  'bad-auth-reply': 'the target\'s answer to the login is not OK, ERR or an auth switch',
};
