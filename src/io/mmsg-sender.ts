import type { PacketSender } from './raw-socket';
import type { MacPair } from './link-sender';
import { explainNativeError, loadNative, NativeSender, SendCtl, SendStat } from './native';
import { interfaceIndex } from './ring';
import { copyBytes, copyFromSpan, type WordSpan } from '../wire/copy';

/** The arena's size and slots: packets waiting for the next flush (at most one event-loop turn, or until the socket takes them). */
const ARENA_BYTES = 4 << 20;
const SLOTS = 4096;
/** The largest message: an IPv4 packet of 65,535 bytes plus an Ethernet header. */
const MAX_MESSAGE = 65535 + 14;

/**
 * Batched sending: `send` copies each packet into one arena (with its Ethernet header in link
 * mode) and appends its place to an index shared with the addon, which sends the arena with
 * sendmmsg at the end of the event-loop phase that queued it (after the poll phase's callbacks,
 * before the loop blocks), with no JavaScript call and no setImmediate; or at once when the
 * arena is full. The destination is the packet's own (the IP header's): no address strings.
 * When the socket is full (EAGAIN) the unsent packets stay in the arena, counted in `queued`,
 * and go when it is writable again (ENOBUFS: 1 ms later); packets that do not fit in the
 * arena meanwhile are counted in `dropped`. Packets the kernel refuses for good (too long,
 * unreachable, a firewall) are counted in `errors` with the last reason in `lastError`.
 */
export class MmsgSender implements PacketSender {
  private readonly sock: NativeSender;
  private readonly arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
  private readonly meta = new Uint32Array(new ArrayBuffer(SLOTS * 8));
  /** Shared with the addon: messages in the arena, the first not yet sent, bytes used, blocked, counted (SendCtl). */
  private readonly ctl = new Int32Array(new ArrayBuffer(SendCtl.Length * 4));
  /** The addon's counters (SendStat). */
  private readonly st = new Float64Array(new ArrayBuffer(SendStat.Length * 8));
  /** Failures seen here (too long, no MAC address, the socket closed), beside the addon's. */
  private ownErrors = 0;
  private ownTooBig = 0;
  private ownLastError = '';
  /** The addon's error count when `ownLastError` was set: a later addon error is the last one. */
  private ownErrorAt = 0;
  private closed = false;
  /** Packets that waited in the arena for a full socket, counted here (the addon counts the others). */
  private ownQueued = 0;
  /** Packets not sent because the arena was full while the socket was. */
  dropped = 0;
  private readonly prefix: number;

  /**
   * `ip`: the raw IP socket (IPPROTO_RAW, our own headers). `ip6`: the same for IPv6 (an
   * AF_INET6 raw socket; each packet goes to its own IPv6 destination). `link`: an AF_PACKET socket bound
   * to `device`, sending whole Ethernet frames whose MAC addresses come from `macs` (keyed by
   * the target address text, as the engine gives it). `sndbuf`: the socket's send buffer (bytes).
   */
  constructor(readonly kind: 'ip' | 'ip6' | 'link', readonly device = '', private readonly macs: Map<string, MacPair> | null = null, sndbuf = 8 << 20) {
    const n = loadNative();
    this.prefix = kind === 'link' ? 14 : 0;
    try {
      this.sock = new n.Sender({ kind, ifindex: kind === 'link' ? interfaceIndex(device) : 0, sndbuf, qdiscBypass: false });
    } catch (e) {
      if ((e as { name?: string }).name === 'IoError') throw e;
      throw explainNativeError(e, kind === 'link' ? `-o ${device}: sending socket` : kind === 'ip6' ? 'raw IPv6 sending socket' : 'raw IP sending socket');
    }
    this.sock.attach(this.arena, this.meta, this.ctl, this.st);
  }

  send(buf: Buffer, off: number, len: number, dst: string): void {
    const at = this.reserve(len, (buf[off] >> 4) === 6, dst);
    if (at >= 0) copyBytes(buf, off, this.arena, at, len);
  }

  /** `send` of a kept packet, `span.buf[0, len)`: copied by words without its Buffer's accessors (wire/copy.ts). */
  sendSpan(span: WordSpan, len: number, dst: string): void {
    const at = this.reserve(len, (span.buf[0] >> 4) === 6, dst);
    if (at >= 0) copyFromSpan(span, 0, this.arena, at, len);
  }

  /** Makes room for a packet of `len` bytes in the arena and indexes it: where its IP header goes, or -1 (counted). */
  private reserve(len: number, v6: boolean, dst: string): number {
    const total = len + this.prefix;
    if (total > MAX_MESSAGE) { this.ownError('packet longer than 65,535 bytes'); this.ownTooBig++; return -1; }
    if (this.closed) { this.ownError('sender is closed'); return -1; } // nothing would send it
    const c = this.ctl;
    const need = total + 4; // with the alignment
    if (c[SendCtl.Used] + need > ARENA_BYTES || c[SendCtl.Count] === SLOTS) {
      if (c[SendCtl.Blocked] === 0) this.sock.flushNow();
      if (c[SendCtl.Used] + need > ARENA_BYTES || c[SendCtl.Count] === SLOTS) this.compact();
      if (c[SendCtl.Used] + need > ARENA_BYTES || c[SendCtl.Count] === SLOTS) { this.dropped++; return -1; }
    }
    const a = this.arena;
    // Each message starts 4-aligned (with -o its IP header: the frame starts 2 bytes in), so that
    // small packets are copied by words (copyBytes).
    const used = c[SendCtl.Used];
    let at = used + (this.prefix ? 2 : 0);
    const start = at;
    if (this.prefix) {
      const m = this.macs!.get(dst);
      if (m === undefined) { this.ownError(`no MAC address for ${dst}`); return -1; }
      const md = m.dst, ms = m.src;
      for (let i = 0; i < 6; i++) { a[at + i] = md[i]; a[at + 6 + i] = ms[i]; }
      a[at + 12] = v6 ? 0x86 : 0x08; // EtherType 0x86DD for IPv6, 0x0800 for IPv4
      a[at + 13] = v6 ? 0xdd : 0x00;
      at += 14;
    }
    const n = c[SendCtl.Count];
    this.meta[n << 1] = start;
    this.meta[(n << 1) + 1] = total;
    c[SendCtl.Count] = n + 1;
    c[SendCtl.Used] = (start + total + 3) & ~3;
    if (c[SendCtl.Blocked] !== 0) { this.ownQueued++; c[SendCtl.Counted] = n + 1; }
    return at;
  }

  private ownError(msg: string): void {
    this.ownErrors++;
    this.ownLastError = msg;
    this.ownErrorAt = this.st[SendStat.Errors];
  }

  /** Sends what the arena holds now, as far as the socket takes it (the addon does it by itself at each turn's end). */
  flush(): void {
    if (!this.closed) this.sock.flushNow();
  }

  /** Moves the unsent messages to the front of the arena. */
  private compact(): void {
    const c = this.ctl;
    const head = c[SendCtl.Head];
    if (head === 0) return;
    const m = this.meta;
    const used = c[SendCtl.Used];
    const from = m[head << 1] & ~3; // keeps the messages' alignment
    this.arena.copy(this.arena, 0, from, used);
    const n = c[SendCtl.Count] - head;
    for (let i = 0; i < n; i++) {
      m[i << 1] = m[(i + head) << 1] - from;
      m[(i << 1) + 1] = m[((i + head) << 1) + 1];
    }
    c[SendCtl.Count] = n;
    c[SendCtl.Counted] = Math.max(0, c[SendCtl.Counted] - head);
    c[SendCtl.Head] = 0;
    c[SendCtl.Used] = used - from;
  }

  get sent(): number { return this.st[SendStat.Sent]; }
  get errors(): number { return this.st[SendStat.Errors] + this.ownErrors; }
  get tooBig(): number { return this.st[SendStat.TooBig] + this.ownTooBig; }
  get queued(): number { return this.st[SendStat.Queued] + this.ownQueued; }
  get flushes(): number { return this.st[SendStat.Flushes]; }
  get syscalls(): number { return this.st[SendStat.Calls]; }
  get eagain(): number { return this.st[SendStat.Eagain]; }
  get enobufs(): number { return this.st[SendStat.Enobufs]; }
  /** The reason of the last failure, here or in the kernel. */
  get lastError(): string {
    return this.st[SendStat.Errors] > this.ownErrorAt ? loadNative().strerror(this.st[SendStat.LastErrno]) : this.ownLastError;
  }

  /** Packets waiting in the arena now. */
  get waiting(): number { return this.ctl[SendCtl.Count] - this.ctl[SendCtl.Head]; }

  snapshot(): Record<string, number> {
    return { sent: this.sent, errors: this.errors, tooBig: this.tooBig, queued: this.queued, dropped: this.dropped, waiting: this.waiting,
      flushes: this.flushes, sendmmsgCalls: this.syscalls, eagain: this.eagain, enobufs: this.enobufs };
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    // What still waits for the socket is lost with it: counted.
    this.ownErrors += this.waiting;
    this.sock.close();
  }
}
