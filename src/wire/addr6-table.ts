import { get32, put32 } from './bytes';
/**
 * IPv6 addresses interned into small integer keys, so that the tables keyed by a client
 * address (the session tables, the port allocator) compare numbers for both families.
 *
 * A key is negative (-1, -2, ...): an IPv4 address is a non-negative number (0..2^32-1), so the
 * two never compare equal and IPv4 code paths need no family test. The 16 bytes of each
 * address are kept as 4 big-endian 32-bit words in one Uint32Array; a key's entry is found
 * by hashing those words into chained buckets (Int32Arrays). Entries are reference counted
 * (by the sessions that use them) and reused once free. Nothing allocates per look-up.
 */

const MIN_CAPACITY = 256;

export class Ipv6AddrTable {
  /** 4 words per entry. */
  private words: Uint32Array;
  private refs: Int32Array;
  /** Next entry in the bucket chain (or in the free list), -1 for none. */
  private next: Int32Array;
  /** First entry of each bucket, -1 for none. */
  private buckets: Int32Array;
  private mask: number;
  private free = -1;
  /** Entries ever handed out (the high-water mark of the arrays). */
  private used = 0;
  /** Entries in use. */
  size = 0;

  constructor(capacity = MIN_CAPACITY) {
    const cap = Math.max(MIN_CAPACITY, 1 << Math.ceil(Math.log2(capacity)));
    this.words = new Uint32Array(cap * 4);
    this.refs = new Int32Array(cap);
    this.next = new Int32Array(cap).fill(-1);
    this.buckets = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
  }

  /** The key of the 16 bytes at `buf[off]`, or 0 when they are not in the table. */
  find(buf: Buffer, off: number): number {
    const a = get32(buf, off), b = get32(buf, off + 4), c = get32(buf, off + 8), d = get32(buf, off + 12);
    const i = this.lookup(a, b, c, d);
    return i < 0 ? 0 : -1 - i;
  }

  /**
   * The key of the 16 bytes at `buf[off]`, added (with no reference) when new. An entry
   * nobody acquires should be given back with `dropIfUnused`.
   */
  intern(buf: Buffer, off: number): number {
    const a = get32(buf, off), b = get32(buf, off + 4), c = get32(buf, off + 8), d = get32(buf, off + 12);
    let i = this.lookup(a, b, c, d);
    if (i >= 0) return -1 - i;
    if (this.free < 0 && this.used === this.refs.length) this.grow();
    if (this.free >= 0) { i = this.free; this.free = this.next[i]; } else i = this.used++;
    const w = this.words;
    w[i * 4] = a; w[i * 4 + 1] = b; w[i * 4 + 2] = c; w[i * 4 + 3] = d;
    this.refs[i] = 0;
    const h = hash4(a, b, c, d) & this.mask;
    this.next[i] = this.buckets[h];
    this.buckets[h] = i;
    this.size++;
    return -1 - i;
  }

  /** One more user of `key` (a session). */
  acquire(key: number): void { this.refs[-1 - key]++; }

  /** One user less; the entry is freed when none is left. */
  release(key: number): void {
    const i = -1 - key;
    if (--this.refs[i] <= 0) this.remove(i);
  }

  /** Frees the entry of `key` if nobody acquired it (after `intern` for a packet that started nothing). */
  dropIfUnused(key: number): void {
    const i = -1 - key;
    if (this.refs[i] <= 0) this.remove(i);
  }

  /** References held on `key` (tests and statistics). */
  refsOf(key: number): number { return this.refs[-1 - key]; }

  /** Writes the 16 bytes of `key` at `buf[off]`. */
  copyTo(key: number, buf: Buffer, off: number): void {
    const i = (-1 - key) * 4;
    const w = this.words;
    put32(buf, off, w[i]); put32(buf, off + 4, w[i + 1]);
    put32(buf, off + 8, w[i + 2]); put32(buf, off + 12, w[i + 3]);
  }

  /** Word `n` (0..3, big-endian 32 bits) of `key`'s address. */
  word(key: number, n: number): number { return this.words[(-1 - key) * 4 + n]; }

  /** True when `key` is the address of the 16 bytes at `buf[off]`. */
  equals(key: number, buf: Buffer, off: number): boolean {
    const i = (-1 - key) * 4;
    const w = this.words;
    return w[i] === get32(buf, off) && w[i + 1] === get32(buf, off + 4) &&
      w[i + 2] === get32(buf, off + 8) && w[i + 3] === get32(buf, off + 12);
  }

  private lookup(a: number, b: number, c: number, d: number): number {
    const w = this.words;
    for (let i = this.buckets[hash4(a, b, c, d) & this.mask]; i >= 0; i = this.next[i]) {
      const j = i * 4;
      if (w[j + 3] === d && w[j + 2] === c && w[j + 1] === b && w[j] === a) return i;
    }
    return -1;
  }

  private remove(i: number): void {
    const j = i * 4;
    const w = this.words;
    const h = hash4(w[j], w[j + 1], w[j + 2], w[j + 3]) & this.mask;
    let p = this.buckets[h];
    let prev = -1;
    while (p >= 0 && p !== i) { prev = p; p = this.next[p]; }
    if (p < 0) return; // not filed (already free)
    if (prev < 0) this.buckets[h] = this.next[i]; else this.next[prev] = this.next[i];
    this.refs[i] = 0;
    this.next[i] = this.free;
    this.free = i;
    this.size--;
  }

  private grow(): void {
    const cap = this.refs.length * 2;
    const words = new Uint32Array(cap * 4);
    words.set(this.words);
    const refs = new Int32Array(cap);
    refs.set(this.refs);
    this.words = words;
    this.refs = refs;
    this.next = new Int32Array(cap).fill(-1);
    this.buckets = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
    // Every entry below `used` is in use here (the free list is empty when the table grows).
    for (let i = 0; i < this.used; i++) {
      const h = hash4(words[i * 4], words[i * 4 + 1], words[i * 4 + 2], words[i * 4 + 3]) & this.mask;
      this.next[i] = this.buckets[h];
      this.buckets[h] = i;
    }
  }
}

function hash4(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ b ^ (h >>> 15), 0xc2b2ae35);
  h = Math.imul(h ^ c ^ (h >>> 13), 0x27d4eb2f);
  h = Math.imul(h ^ d ^ (h >>> 16), 0x165667b1);
  h ^= h >>> 15;
  return h & 0x7fffffff;
}
