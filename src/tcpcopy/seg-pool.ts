import { Seg } from './session';

/**
 * Size classes of pooled packet buffers: a SYN or a small request fits in the smallest, a full
 * Ethernet-MTU segment in the largest; bigger packets (GRO, jumbo frames) get a buffer of their
 * own that is not pooled.
 */
const CLASSES = [128, 256, 512, 2048];
/** Free buffers kept per class (2 MiB of the smallest … 8 MiB of the largest); beyond that, given-back ones go to the GC. */
const MAX_FREE = [16384, 16384, 8192, 4096];
/** New pooled buffers are carved out of slabs of this size (one allocation for many buffers). */
const SLAB_BYTES = 64 << 10;

/** The class of a size, or -1 when it is bigger than every class. */
function classOf(size: number): number {
  return size <= 128 ? 0 : size <= 256 ? 1 : size <= 512 ? 2 : size <= 2048 ? 3 : -1;
}

/**
 * Kept packets without garbage: a session holds its captured packets until the target acks
 * them, milliseconds to seconds, long enough for V8 to promote them out of the young
 * generation and collect them in the old one, over and over at high rates. The pool hands out
 * Segs with their buffers and takes them back when a packet is dropped, so the steady state
 * allocates nothing per packet. New buffers are views into 64 KiB slabs, one slab per class at
 * a time (as Node's own small-Buffer pool does): a buffer costs its class's bytes and a view.
 */
export class SegPool {
  private readonly free: Seg[][] = CLASSES.map(() => []);
  private readonly slabs: (Buffer | null)[] = CLASSES.map(() => null);
  /** Each current slab as 32-bit words (its Segs copy through these: wire/copy.ts). */
  private readonly slabWords: (Int32Array | null)[] = CLASSES.map(() => null);
  private readonly slabUsed: number[] = CLASSES.map(() => 0);
  /** Buffers allocated, and packets served from the free lists. */
  created = 0;
  reused = 0;

  /** A Seg whose `buf` holds at least `size` bytes; the caller copies the packet in and calls `init`. */
  take(size: number): Seg {
    const c = classOf(size);
    if (c < 0) {
      this.created++;
      return new Seg(Buffer.allocUnsafeSlow(size));
    }
    const g = this.free[c].pop();
    if (g !== undefined) { this.reused++; return g; }
    this.created++;
    const cap = CLASSES[c];
    let slab = this.slabs[c];
    if (slab === null || this.slabUsed[c] + cap > SLAB_BYTES) {
      slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.slabs[c] = slab;
      this.slabWords[c] = new Int32Array(slab.buffer, slab.byteOffset, SLAB_BYTES >>> 2);
      this.slabUsed[c] = 0;
    }
    const at = this.slabUsed[c];
    this.slabUsed[c] = at + cap;
    return new Seg(slab.subarray(at, at + cap), this.slabWords[c], at);
  }

  /** Takes a Seg back; it must not be used by its session any more. */
  give(g: Seg): void {
    if (g.free) return;
    g.free = true;
    const cap = g.cap;
    const c = classOf(cap);
    if (c >= 0 && CLASSES[c] === cap && this.free[c].length < MAX_FREE[c]) this.free[c].push(g);
  }

  /** Gives back `segs[from, to)`. */
  giveRange(segs: Seg[], from: number, to: number): void {
    for (let i = from; i < to; i++) this.give(segs[i]);
  }

  get freeCount(): number {
    let n = 0;
    for (const f of this.free) n += f.length;
    return n;
  }
}
