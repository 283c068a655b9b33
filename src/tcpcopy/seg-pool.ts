import { Seg } from './session';

/**
 * Size classes of pooled packet buffers: a request or an ACK fits in the small one, a full
 * Ethernet-MTU segment in the large one; bigger packets (GRO, jumbo frames) get a buffer of
 * their own that is not pooled.
 */
export const SMALL_SEG = 256;
export const LARGE_SEG = 2048;
/** Free buffers kept per class (4 MiB each); beyond that, given-back ones go to the GC. */
const MAX_FREE_SMALL = 16384;
const MAX_FREE_LARGE = 2048;

/**
 * Kept packets without garbage: a session holds its captured packets until the target acks
 * them, milliseconds to seconds, long enough for V8 to promote them out of the young
 * generation and collect them in the old one, over and over at high rates. The pool hands out
 * Segs with their buffers and takes them back when a packet is dropped, so the steady state
 * allocates nothing per packet. Each pooled buffer is its own allocation (`allocUnsafeSlow`,
 * not a slice of a shared slab), so the ones the pool does not keep are freed one by one.
 */
export class SegPool {
  private readonly small: Seg[] = [];
  private readonly large: Seg[] = [];
  /** Buffers allocated, and packets served from the free lists. */
  created = 0;
  reused = 0;

  /** A Seg whose `buf` holds at least `size` bytes; the caller copies the packet in and calls `init`. */
  take(size: number): Seg {
    let g: Seg | undefined;
    if (size <= SMALL_SEG) g = this.small.pop();
    else if (size <= LARGE_SEG) g = this.large.pop();
    if (g !== undefined) { this.reused++; return g; }
    this.created++;
    return new Seg(Buffer.allocUnsafeSlow(size <= SMALL_SEG ? SMALL_SEG : size <= LARGE_SEG ? LARGE_SEG : size));
  }

  /** Takes a Seg back; it must not be used by its session any more. */
  give(g: Seg): void {
    if (g.free) return;
    g.free = true;
    const cap = g.buf.length;
    if (cap === SMALL_SEG) { if (this.small.length < MAX_FREE_SMALL) this.small.push(g); } else if (cap === LARGE_SEG && this.large.length < MAX_FREE_LARGE) this.large.push(g);
  }

  /** Gives back `segs[from, to)`. */
  giveRange(segs: Seg[], from: number, to: number): void {
    for (let i = from; i < to; i++) this.give(segs[i]);
  }

  get freeCount(): number { return this.small.length + this.large.length; }
}
