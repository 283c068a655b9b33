import type { PacketSender } from './raw-socket';
import type { MacPair } from './link-sender';
import { explainNativeError, loadNative, NativeSender } from './native';
import { interfaceIndex } from './ring';

/** The arena's size and slots: packets waiting for the next flush (at most one event-loop turn, or until the socket takes them). */
const ARENA_BYTES = 4 << 20;
const SLOTS = 4096;
/** The largest message: an IPv4 packet of 65,535 bytes plus an Ethernet header. */
const MAX_MESSAGE = 65535 + 14;

/**
 * Batched sending: `send` copies each packet into one arena (with its Ethernet header in link
 * mode), and the arena goes out with sendmmsg once per event-loop turn (setImmediate), or when
 * it is full. The destination is the packet's own (the IP header's): no address strings.
 * When the socket is full (EAGAIN) the unsent packets stay in the arena, counted in `queued`,
 * and go when it is writable again (ENOBUFS: 1 ms later); packets that do not fit in the
 * arena meanwhile are counted in `dropped`. Packets the kernel refuses for good (too long,
 * unreachable, a firewall) are counted in `errors` with the last reason in `lastError`.
 */
export class MmsgSender implements PacketSender {
  private readonly sock: NativeSender;
  private readonly arena = Buffer.allocUnsafe(ARENA_BYTES);
  private readonly meta = new Uint32Array(SLOTS * 2);
  private readonly out = new Int32Array(6);
  /** Messages in the arena, the first one not yet sent, and bytes used. */
  private count = 0;
  private head = 0;
  private used = 0;
  private scheduled = false;
  /** Messages below this index are already counted in `queued`. */
  private counted = 0;
  private blocked = false;
  sent = 0;
  errors = 0;
  tooBig = 0;
  /** Packets that waited in the arena for a full socket (EAGAIN or ENOBUFS). */
  queued = 0;
  /** Packets not sent because the arena was full while the socket was. */
  dropped = 0;
  flushes = 0;
  syscalls = 0;
  eagain = 0;
  enobufs = 0;
  lastError = '';
  private readonly prefix: number;
  private readonly onTurnEnd = (): void => { this.scheduled = false; if (!this.blocked) this.flush(); };
  private readonly onWritable = (): void => { this.blocked = false; this.flush(); };

  /**
   * `ip`: the raw IP socket (IPPROTO_RAW, our own headers). `ip6`: the same for IPv6 (an
   * AF_INET6 raw socket; each packet goes to its own IPv6 destination). `link`: an AF_PACKET socket bound
   * to `device`, sending whole Ethernet frames whose MAC addresses come from `macs` (keyed by
   * the target address text, as the engine gives it).
   */
  constructor(readonly kind: 'ip' | 'ip6' | 'link', readonly device = '', private readonly macs: Map<string, MacPair> | null = null) {
    const n = loadNative();
    this.prefix = kind === 'link' ? 14 : 0;
    try {
      this.sock = new n.Sender({ kind, ifindex: kind === 'link' ? interfaceIndex(device) : 0, sndbuf: 8 << 20, qdiscBypass: false });
    } catch (e) {
      if ((e as { name?: string }).name === 'IoError') throw e;
      throw explainNativeError(e, kind === 'link' ? `-o ${device}: sending socket` : kind === 'ip6' ? 'raw IPv6 sending socket' : 'raw IP sending socket');
    }
  }

  send(buf: Buffer, off: number, len: number, dst: string): void {
    const total = len + this.prefix;
    if (total > MAX_MESSAGE) { this.errors++; this.tooBig++; this.lastError = 'packet longer than 65,535 bytes'; return; }
    if (this.used + total > ARENA_BYTES || this.count === SLOTS) {
      if (!this.blocked) this.flush();
      if (this.used + total > ARENA_BYTES || this.count === SLOTS) this.compact();
      if (this.used + total > ARENA_BYTES || this.count === SLOTS) { this.dropped++; return; }
    }
    const a = this.arena;
    let at = this.used;
    if (this.prefix) {
      const m = this.macs!.get(dst);
      if (m === undefined) { this.errors++; this.lastError = `no MAC address for ${dst}`; return; }
      m.dst.copy(a, at, 0, 6);
      m.src.copy(a, at + 6, 0, 6);
      const v6 = (buf[off] >> 4) === 6; // EtherType 0x86DD for IPv6, 0x0800 for IPv4
      a[at + 12] = v6 ? 0x86 : 0x08;
      a[at + 13] = v6 ? 0xdd : 0x00;
      at += 14;
    }
    buf.copy(a, at, off, off + len);
    const s = this.count << 1;
    this.meta[s] = this.used;
    this.meta[s + 1] = total;
    this.count++;
    this.used += total;
    if (this.blocked) { this.queued++; this.counted = this.count; return; }
    if (!this.scheduled) { this.scheduled = true; setImmediate(this.onTurnEnd); }
  }

  /** Sends what the arena holds, as far as the socket takes it. */
  flush(): void {
    const pending = this.count - this.head;
    if (pending === 0) return;
    const o = this.out;
    this.flushes++;
    let done: number;
    try {
      done = this.sock.flush(this.arena, this.meta, this.head, pending, o);
    } catch (e) {
      // Closed under us: nothing more can go.
      this.errors += pending;
      this.lastError = (e as Error).message;
      this.count = this.head = this.used = this.counted = 0;
      return;
    }
    this.syscalls += o[5];
    this.sent += o[0];
    if (o[1] !== 0) {
      this.errors += o[1];
      this.tooBig += o[4];
      this.lastError = loadNative().strerror(o[2]);
    }
    this.head += done;
    if (this.head === this.count) { this.count = this.head = this.used = this.counted = 0; return; }
    // The socket is full: the rest waits (each packet counted once).
    this.queued += this.count - Math.max(this.head, this.counted);
    this.counted = this.count;
    this.blocked = true;
    if (o[3] === 1) { this.eagain++; this.sock.onWritable(this.onWritable); } else { this.enobufs++; setTimeout(this.onWritable, 1); }
  }

  /** Moves the unsent messages to the front of the arena. */
  private compact(): void {
    if (this.head === 0) return;
    const m = this.meta;
    const from = m[this.head << 1];
    this.arena.copy(this.arena, 0, from, this.used);
    const n = this.count - this.head;
    for (let i = 0; i < n; i++) {
      m[i << 1] = m[(i + this.head) << 1] - from;
      m[(i << 1) + 1] = m[((i + this.head) << 1) + 1];
    }
    this.count = n;
    this.counted = Math.max(0, this.counted - this.head);
    this.head = 0;
    this.used -= from;
  }

  /** Packets waiting in the arena now. */
  get waiting(): number { return this.count - this.head; }

  snapshot(): Record<string, number> {
    return { sent: this.sent, errors: this.errors, tooBig: this.tooBig, queued: this.queued, dropped: this.dropped, waiting: this.waiting,
      flushes: this.flushes, sendmmsgCalls: this.syscalls, eagain: this.eagain, enobufs: this.enobufs };
  }

  close(): void {
    this.flush();
    this.sock.close();
  }
}
