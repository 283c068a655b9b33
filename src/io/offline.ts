import { PcapFileReader, PcapError } from '../wire/pcap';
import { ipOffset, ipv4Offset, linkTypeName, linkTypeSupported } from '../wire/link';
import { WireReason } from '../wire/errors';
import { IoError } from './types';

/** Receives each packet of the file: the IPv4 packet at `buf[ipOff]`, `avail` bytes. */
export interface OfflineSink {
  onIpPacket(buf: Buffer, ipOff: number, avail: number, tsUs: number): void;
  /** A record that is not an IPv4 packet we can read (unsupported link type, not IPv4, ...). */
  onRejected(reason: WireReason): void;
}

export interface OfflineOptions {
  path: string;
  /** `-a`: replay this many times faster than recorded. */
  accel: number;
  /** `-I`: idle gaps longer than this (ms) are cut to this length; 0 keeps them. */
  idleCutMs: number;
  /** `-T`: passes over the file. */
  passes: number;
  /** IPv6 packets are handed over too (IPv6 rules); otherwise they are rejected as not IPv4. */
  ipv6?: boolean;
  /**
   * `-T`: true once the sessions of the pass that ended are over, so that the next pass may
   * start (it sends the same connections again: same addresses, ports and sequence numbers,
   * which a session still open would take for retransmissions). Without it the next pass
   * starts at once.
   */
  passIdle?: () => boolean;
}

/** The longest wait for a pass's sessions to end before the next pass (the original waits 120 s). */
export const PASS_WAIT_MS = 120_000;
const PASS_POLL_MS = 20;

export interface OfflineProgress {
  pass: number;
  /** Time spent between passes waiting for the last pass's sessions to end. */
  passWaitMs: number;
  packets: number;
  /** Position in the file's own timeline (ms since its first packet, idle cuts removed). */
  fileMs: number;
  elapsedMs: number;
  done: boolean;
}

/**
 * Replays a pcap/pcapng file on the original timeline (scaled by `-a`, idle gaps cut by
 * `-I`): packets are read while the file's clock is not ahead of the replay clock. Each idle
 * gap is cut once (the original re-added the same gap on every check and ran ahead).
 */
export class OfflineSource {
  private reader: PcapFileReader | null = null;
  private pass = 0;
  private startMs = 0;
  private firstTsMs = -1;
  private lastTsMs = -1;
  private cutMs = 0;
  private pending = false;
  private timer: NodeJS.Timeout | null = null;
  packets = 0;
  truncated = 0;
  skipped = 0;
  /** Packets read in every pass (the file's own count). */
  totalPackets = 0;
  error: PcapError | null = null;
  finished = false;
  private resolveDone!: (r: { packets: number; error: PcapError | null }) => void;
  readonly done: Promise<{ packets: number; error: PcapError | null }>;
  private readonly step = (): void => this.run();
  private passWaitSince = 0;
  /** Time spent between passes waiting for the sessions of the last one to end. */
  passWaitMs = 0;
  private readonly nextPass = (): void => {
    this.timer = null;
    const now = Date.now();
    const idle = this.opts.passIdle === undefined || this.opts.passIdle();
    if (!idle && now - this.passWaitSince < PASS_WAIT_MS) { this.timer = setTimeout(this.nextPass, PASS_POLL_MS); return; }
    this.passWaitMs += now - this.passWaitSince;
    try {
      this.openPass();
    } catch (e) {
      this.error = new PcapError('open-failed', (e as Error).message);
      this.finished = true;
      this.resolveDone({ packets: this.packets, error: this.error });
      return;
    }
    this.timer = setTimeout(this.step, 0);
  };

  constructor(private readonly opts: OfflineOptions, private readonly sink: OfflineSink) {
    this.done = new Promise((r) => { this.resolveDone = r; });
  }

  /**
   * Opens the file and reads its header: throws IoError with the reason (unreadable, not a
   * capture file, a classic pcap file of a link type we cannot read). Nothing is replayed yet.
   */
  open(): void {
    this.openPass();
    const r = this.reader!;
    if (r.format === 'pcap' && !linkTypeSupported(r.fileLinkType)) {
      r.close();
      this.reader = null;
      throw new IoError('link-type', `cannot replay ${this.opts.path}: its link type ${linkTypeName(r.fileLinkType)} is not supported ` +
        '(Ethernet, Linux cooked v1/v2, raw IP, loopback); record on another interface, or with tcpdump -i any');
    }
  }

  /** Starts the replay (opens the file first unless `open` was called). */
  start(): void {
    if (this.reader === null) this.openPass();
    this.timer = setTimeout(this.step, 0);
  }

  private openPass(): void {
    try {
      this.reader = PcapFileReader.open(this.opts.path);
    } catch (e) {
      const msg = (e as PcapError).message;
      const own = `${this.opts.path}: `;
      throw new IoError('bad-capture-file', `cannot replay ${this.opts.path}: ${msg.startsWith(own) ? msg.slice(own.length) : msg}`);
    }
    this.pass++;
    this.startMs = Date.now();
    this.firstTsMs = -1;
    this.lastTsMs = -1;
    this.cutMs = 0;
    this.pending = false;
  }

  get progress(): OfflineProgress {
    return {
      pass: this.pass, packets: this.packets, passWaitMs: this.passWaitMs,
      fileMs: this.lastTsMs < 0 ? 0 : this.lastTsMs - this.firstTsMs - this.cutMs,
      elapsedMs: Date.now() - this.startMs, done: this.finished,
    };
  }

  private run(): void {
    this.timer = null;
    const r = this.reader;
    if (r === null) return;
    const accel = this.opts.accel;
    const cut = this.opts.idleCutMs;
    let budget = 20000; // packets per turn, so timers and the control channel keep up
    for (;;) {
      if (!this.pending) {
        if (!r.next()) { this.endPass(r); return; }
        this.pending = true;
        const ts = r.tsUs / 1000;
        if (this.firstTsMs < 0) { this.firstTsMs = ts; this.lastTsMs = ts; }
        const gap = ts - this.lastTsMs;
        if (cut > 0 && gap > cut) this.cutMs += gap - cut;
        if (ts > this.lastTsMs) this.lastTsMs = ts;
      }
      const fileMs = this.lastTsMs - this.firstTsMs - this.cutMs;
      const clockMs = (Date.now() - this.startMs) * accel;
      if (fileMs > clockMs) {
        const wait = Math.max(1, Math.min(10, Math.ceil((fileMs - clockMs) / accel)));
        this.timer = setTimeout(this.step, wait);
        return;
      }
      this.pending = false;
      this.deliver(r);
      if (--budget === 0) { this.timer = setTimeout(this.step, 0); return; }
    }
  }

  private deliver(r: PcapFileReader): void {
    this.packets++;
    if (!linkTypeSupported(r.linkType)) { this.skipped++; this.sink.onRejected(WireReason.UnsupportedLinkType); return; }
    if (r.caplen < r.origLen) { this.truncated++; return; }
    const off = this.opts.ipv6 ? ipOffset(r.linkType, r.data, r.offset, r.caplen) : ipv4Offset(r.linkType, r.data, r.offset, r.caplen);
    if (off < 0) { this.skipped++; this.sink.onRejected(-off as WireReason); return; }
    this.sink.onIpPacket(r.data, r.offset + off, r.caplen - off, r.tsUs);
  }

  private endPass(r: PcapFileReader): void {
    if (r.error) this.error = r.error;
    this.totalPackets += r.packets;
    r.close();
    this.reader = null;
    if (r.error === null && this.pass < this.opts.passes && r.packets > 0) {
      this.passWaitSince = Date.now();
      this.timer = setTimeout(this.nextPass, 0);
      return;
    }
    this.finished = true;
    this.resolveDone({ packets: this.packets, error: this.error });
  }

  /** What the file's link type is, for messages. */
  static describe(path: string): string {
    const r = PcapFileReader.open(path);
    try { return `${r.format}, link type ${linkTypeName(r.fileLinkType)}`; } finally { r.close(); }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.reader?.close();
    this.reader = null;
  }
}
