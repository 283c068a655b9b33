import * as fs from 'node:fs';
import type { WordSpan } from '../wire/copy';
import { IoError, setcapCommand } from './types';

/**
 * Raw IPv4 sockets through the native part of `raw-socket`, bypassing its JavaScript
 * wrapper: that wrapper reads one packet per wakeup (its queue overflows under load) and
 * queues every send behind a request object (measured costs: native/README.md, docs/architecture.md).
 */
interface NativeSocketWrap {
  recv(buf: Buffer, cb: (buf: Buffer, bytes: number, source: string) => void): void;
  send(buf: Buffer, offset: number, length: number, address: string, cb: (bytes: number) => void): void;
  setOption(level: number, option: number, value: number): void;
  pause(recvPaused: boolean, sendPaused: boolean): void;
  close(): void;
  on(ev: 'recvReady' | 'sendReady' | 'error' | 'close', fn: (...a: unknown[]) => void): void;
}
interface RawModule {
  SocketLevel: { SOL_SOCKET: number; IPPROTO_IP: number };
  SocketOption: { SO_RCVBUF: number; SO_SNDBUF: number; IP_HDRINCL: number };
}
interface RawNativeModule {
  SocketWrap: new (protocol: number, family: number) => NativeSocketWrap;
}

let mod: RawModule | null = null;
let native: RawNativeModule | null = null;
function load(): { mod: RawModule; native: RawNativeModule } {
  if (!mod || !native) {
    try {
      mod = require('raw-socket') as RawModule;
      native = require('raw-socket/build/Release/raw.node') as RawNativeModule;
      // The wrapper's module copies EventEmitter methods onto SocketWrap; loading it first does that.
    } catch (e) {
      throw new IoError('no-raw-socket', `cannot load the raw-socket addon: ${(e as Error).message}; run 'npm run setup'`);
    }
  }
  return { mod, native };
}

function openRaw(protocol: number, family: 4 | 6 = 4): NativeSocketWrap {
  const { native: n } = load();
  try {
    return new n.SocketWrap(protocol, family === 6 ? 2 : 1);
  } catch (e) {
    const msg = (e as Error).message;
    if (/permitted|permission/i.test(msg)) {
      throw new IoError('no-permission', `cannot open a raw socket (${msg}): run as root, or grant CAP_NET_RAW (${setcapCommand()})`);
    }
    throw new IoError('raw-socket', `cannot open a raw socket: ${msg}`);
  }
}

const IPPROTO_TCP = 6;
const IPPROTO_RAW = 255;
/** A readiness event this soon after a full burst means packets were left queued. */
const BACKLOG_GAP_MS = 0.05;
/** … this many times in a row. */
const GROW_AFTER = 3;
const MAX_BURST = 256;
/** How often the kernel queue is read, and the queue sizes that mean behind / caught up. */
const MONITOR_MS = 100;
const BEHIND_QUEUE = 6 << 20;
const CAUGHT_UP_QUEUE = 256 << 10;

/** Receives every IPv4 TCP packet that reaches this host's IP layer, whole (from the IP header). */
export interface IpPacketSink {
  onIpPacket(buf: Buffer, len: number, tsUs: number): void;
  /**
   * The capture fell behind (packets are queueing in the kernel, which drops them once the
   * socket buffer is full) or caught up.
   */
  onCaptureBehind?(behind: boolean): void;
}

/** Inodes of this process's open sockets (from /proc/self/fd). */
function socketInodes(): Set<number> {
  const out = new Set<number>();
  try {
    for (const fd of fs.readdirSync('/proc/self/fd')) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
        if (m) out.add(Number(m[1]));
      } catch { /* closed meanwhile */ }
    }
  } catch { /* no /proc */ }
  return out;
}

/** The kernel's view of one raw socket: bytes queued for reading, packets dropped. */
export interface RawSocketQueue { rxQueueBytes: number; drops: number }

/** Reads /proc/net/raw for the socket with this inode; null when not found. */
export function readRawSocketQueue(inode: number, text?: string): RawSocketQueue | null {
  let t = text;
  if (t === undefined) {
    try { t = fs.readFileSync('/proc/net/raw', 'latin1'); } catch { return null; }
  }
  const lines = t.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i].trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    if (f.length < 13 || Number(f[9]) !== inode) continue;
    const q = f[4].split(':');
    return { rxQueueBytes: parseInt(q[1], 16) || 0, drops: Number(f[12]) || 0 };
  }
  return null;
}

/**
 * Capture with an AF_INET/SOCK_RAW/IPPROTO_TCP socket (tcpcopy's default). Reads a burst of
 * packets per readiness event (see `drain`). Ten times a second it reads the socket's kernel
 * queue and drop counter from /proc/net/raw: a queue over 6 MiB or new drops mean the capture
 * is behind the traffic (the sink is told, and reads go at the largest burst) until the queue is
 * under 256 KiB again.
 */
export class RawTcpCapture {
  private readonly sock: NativeSocketWrap;
  /** 64 KiB: GRO merges segments into packets this large before a raw socket sees them. */
  private readonly buffer = Buffer.allocUnsafe(65536);
  private lastLen = 0;
  packets = 0;
  wakeups = 0;
  errors = 0;
  /** Packets the kernel dropped on this socket (queue full), and its queue now (bytes). */
  kernelDrops = 0;
  queueBytes = 0;
  private dropsAtStart = -1;
  private readonly inode: number;
  private readonly monitor: NodeJS.Timeout | null = null;
  private readonly onRecv = (_b: Buffer, bytes: number): void => { this.lastLen = bytes; };

  constructor(private readonly sink: IpPacketSink, receiveBufferBytes = 64 << 20) {
    const before = socketInodes();
    this.sock = openRaw(IPPROTO_TCP);
    const { mod: m } = load();
    try { this.sock.setOption(m.SocketLevel.SOL_SOCKET, m.SocketOption.SO_RCVBUF, receiveBufferBytes); } catch { /* capped by the kernel */ }
    this.sock.on('recvReady', () => this.drain());
    this.sock.on('error', () => { this.errors++; });
    let inode = -1;
    for (const i of socketInodes()) if (!before.has(i)) { inode = i; break; }
    this.inode = inode;
    if (inode >= 0 && readRawSocketQueue(inode) !== null) {
      this.monitor = setInterval(() => this.checkQueue(), MONITOR_MS);
      this.monitor.unref();
    }
  }

  /** Polls the kernel queue of the socket (see the class comment). */
  checkQueue(): void {
    const q = readRawSocketQueue(this.inode);
    if (q === null) return;
    if (this.dropsAtStart < 0) this.dropsAtStart = q.drops;
    const drops = q.drops - this.dropsAtStart;
    const newDrops = drops > this.kernelDrops;
    this.kernelDrops = drops;
    this.queueBytes = q.rxQueueBytes;
    if (!this.behind && (newDrops || q.rxQueueBytes > BEHIND_QUEUE)) {
      this.behind = true;
      this.behindEvents++;
      this.burst = MAX_BURST;
      this.sink.onCaptureBehind?.(true);
    } else if (this.behind && !newDrops && q.rxQueueBytes < CAUGHT_UP_QUEUE) {
      this.behind = false;
      this.sink.onCaptureBehind?.(false);
    }
  }

  /**
   * Reads up to `burst` packets per readiness event. The socket is level-triggered, so what
   * is left fires another event at once; reading until EAGAIN costs an exception thrown by
   * the addon (strerror, sprintf, an Error). The burst doubles only after a few wakeups in a
   * row came back to back with the last one full (a backlog, not two packets arriving close
   * together), and halves on EAGAIN: a quiet socket reads one packet per wakeup and never
   * throws, a busy one reads up to 256 per wakeup. Stack traces are off around `recv`, which
   * makes the exception that does happen cheaper.
   */
  private drain(): void {
    this.wakeups++;
    const buf = this.buffer;
    const sink = this.sink;
    const now = performance.now();
    let burst = this.burst;
    if (this.lastFull && now - this.lastEnd < BACKLOG_GAP_MS) {
      if (++this.streak >= GROW_AFTER && burst < MAX_BURST) { this.burst = burst = burst << 1; this.streak = 0; }
    } else {
      this.streak = 0;
    }
    this.lastFull = false;
    const E = Error as { stackTraceLimit: number };
    const limit = E.stackTraceLimit;
    const tsUs = Date.now() * 1000;
    let i = 0;
    for (; i < burst; i++) {
      this.lastLen = -1;
      E.stackTraceLimit = 0;
      try {
        this.sock.recv(buf, this.onRecv);
      } catch {
        E.stackTraceLimit = limit;
        this.eagain++;
        if (burst > 1 && !this.behind) this.burst = burst >> 1; // drained
        break;
      }
      E.stackTraceLimit = limit;
      if (this.lastLen <= 0) break;
      this.packets++;
      sink.onIpPacket(buf, this.lastLen, tsUs);
    }
    if (i === burst) this.lastFull = true;
    this.lastEnd = performance.now();
  }
  private burst = 1;
  private lastFull = false;
  private lastEnd = 0;
  /** Consecutive full, back-to-back wakeups at the current burst. */
  private streak = 0;
  /** The kernel queue says the capture is behind (see the class comment). */
  behind = false;
  /** Times the capture fell behind. */
  behindEvents = 0;
  /** Wakeups that ended on EAGAIN (each one an exception in the addon). */
  eagain = 0;

  close(): void {
    if (this.monitor) clearInterval(this.monitor);
    try { this.sock.close(); } catch { /* closed */ }
  }
}

/** Sends whole IPv4 packets (our own header: IPPROTO_RAW implies IP_HDRINCL). */
export interface PacketSender {
  /** Sends `len` bytes at `buf[off]`, an IPv4 packet to `dst` (dotted quad, cached by caller). */
  send(buf: Buffer, off: number, len: number, dst: string): void;
  /** `send(span.buf, 0, len, dst)` for a kept packet, where the sender copies it by words (MmsgSender). */
  sendSpan?(span: WordSpan, len: number, dst: string): void;
  readonly sent: number;
  readonly errors: number;
  close(): void;
}

export class RawIpSender implements PacketSender {
  private readonly sock: NativeSocketWrap;
  private readonly queue: { buf: Buffer; dst: string }[] = [];
  private queuedBytes = 0;
  sent = 0;
  errors = 0;
  queued = 0;
  dropped = 0;
  tooBig = 0;
  lastError = '';
  private writable = true;
  private readonly noop = (): void => {};

  /**
   * `family` 6: an AF_INET6 raw socket of protocol IPPROTO_RAW, which Linux treats as header
   * included (our IPv6 header goes as built); each packet goes to its `dst` text.
   */
  constructor(private readonly maxQueueBytes = 16 << 20, readonly family: 4 | 6 = 4) {
    this.sock = openRaw(IPPROTO_RAW, family);
    const { mod: m } = load();
    try { this.sock.setOption(m.SocketLevel.SOL_SOCKET, m.SocketOption.SO_SNDBUF, 8 << 20); } catch { /* capped */ }
    this.sock.pause(true, true);
    this.sock.on('sendReady', () => this.flushQueue());
    this.sock.on('error', () => { this.errors++; });
  }

  send(buf: Buffer, off: number, len: number, dst: string): void {
    if (!this.writable) { this.enqueue(buf, off, len, dst); return; }
    try {
      this.sock.send(buf, off, len, dst, this.noop);
      this.sent++;
    } catch (e) {
      const msg = (e as Error).message;
      if (/temporarily unavailable|no buffer space/i.test(msg)) {
        this.writable = false;
        this.sock.pause(true, false);
        this.enqueue(buf, off, len, dst);
      } else {
        this.errors++;
        if (/too long/i.test(msg)) this.tooBig++;
        this.lastError = msg;
      }
    }
  }

  private enqueue(buf: Buffer, off: number, len: number, dst: string): void {
    if (this.queuedBytes + len > this.maxQueueBytes) { this.dropped++; return; }
    this.queue.push({ buf: Buffer.from(buf.subarray(off, off + len)), dst });
    this.queuedBytes += len;
    this.queued++;
  }

  private flushQueue(): void {
    let i = 0;
    const q = this.queue;
    for (; i < q.length; i++) {
      try {
        this.sock.send(q[i].buf, 0, q[i].buf.length, q[i].dst, this.noop);
        this.sent++;
        this.queuedBytes -= q[i].buf.length;
      } catch (e) {
        if (/temporarily unavailable|no buffer space/i.test((e as Error).message)) break;
        this.errors++;
        this.queuedBytes -= q[i].buf.length;
      }
    }
    q.splice(0, i);
    if (q.length === 0) {
      this.writable = true;
      this.sock.pause(true, true);
    }
  }

  close(): void {
    try { this.sock.close(); } catch { /* closed */ }
  }
}
