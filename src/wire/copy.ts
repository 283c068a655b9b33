/**
 * Copying packet bytes on the hot path without garbage. `Buffer.prototype.copy` of a range makes
 * a typed-array view of the source on every call (node:buffer `_copyActual`): about a third of
 * what tcpcopy allocated per replicated request at keep-alive rates. (intercept's reply records
 * go into small batch Buffers, which VIEWS_FROM leaves to Buffer.copy.) Most copies here are a
 * few hundred bytes or less, where a loop over 32-bit words is also faster (measured: 150 bytes in 56 ns against 200 ns). Longer
 * copies, and unaligned ones, still go through `Buffer.copy` (memmove).
 */

/** Beyond this many bytes memmove wins over the word loop. */
const WORDS_UP_TO = 320;
/**
 * Word views are made only over backing stores at least this large (the rings, the send arena,
 * the packet pool's slabs): views made per small Buffer (Node's 8 KiB pool turns over every few
 * allocations: intercept's reply batches) were garbage of their own, kept in the WeakMap until
 * a full collection, and raised intercept's peak RSS from 66 to 95 MB at keep-alive rates.
 * Carving the batches out of 64 KiB slabs instead kept more memory (124 MB): small stores copy
 * with Buffer.copy.
 */
const VIEWS_FROM = 64 * 1024;

/** One Int32Array over the whole of each backing store, made once per store. */
const views = new WeakMap<ArrayBufferLike, Int32Array>();
/** The two stores used last (a copy has a source and a destination). */
let ab0: ArrayBufferLike | null = null;
let v0: Int32Array | null = null;
let ab1: ArrayBufferLike | null = null;
let v1: Int32Array | null = null;

function wordsOf(ab: ArrayBufferLike): Int32Array {
  if (ab === ab0) return v0!;
  if (ab === ab1) { const v = v1!; ab1 = ab0; v1 = v0; ab0 = ab; v0 = v; return v; }
  let v = views.get(ab);
  if (v === undefined) { v = new Int32Array(ab, 0, ab.byteLength >>> 2); views.set(ab, v); }
  ab1 = ab0; v1 = v0; ab0 = ab; v0 = v;
  return v;
}

/**
 * The large Buffers themselves (a ring, the send arena: one object each, on one side of most
 * copies), remembered by identity with their words, offset and length. A typed array's
 * `length`, `byteOffset` and `buffer` are calls from optimised code in Node 20 (its V8 does not
 * inline them: 20–50 ns for the three, the last one into C++): four of them per copy were 3 % of
 * tcpcopy's CPU at keep-alive rates. Small Buffers (a new view for each packet) are never
 * remembered, so they evict nothing; a kept packet comes as a WordSpan instead.
 */
let b0: Uint8Array | null = null;
let bw0: Int32Array | null = null;
let bo0 = 0;
let bl0 = 0;
let b1: Uint8Array | null = null;
let bw1: Int32Array | null = null;
let bo1 = 0;
let bl1 = 0;
/** What `locate` found: the words over a Buffer's store (null: copy with Buffer.copy), its offset there and its length. */
let foundWords: Int32Array | null = null;
let foundOffset = 0;
let foundLength = 0;

function locate(b: Uint8Array): void {
  if (b === b0) { foundWords = bw0; foundOffset = bo0; foundLength = bl0; return; }
  if (b === b1) { foundWords = bw1; foundOffset = bo1; foundLength = bl1; return; }
  const ab = b.buffer;
  const words = ab.byteLength < VIEWS_FROM ? null : wordsOf(ab);
  const off = b.byteOffset;
  const len = b.length;
  foundWords = words; foundOffset = off; foundLength = len;
  if (len >= VIEWS_FROM) { b1 = b0; bw1 = bw0; bo1 = bo0; bl1 = bl0; b0 = b; bw0 = words; bo0 = off; bl0 = len; }
}

/**
 * A Buffer that knows where it lies as 32-bit words: a kept packet (`Seg`), whose pool slab
 * has one Int32Array. `words` null: copies go through Buffer.copy.
 */
export interface WordSpan {
  readonly buf: Buffer;
  readonly words: Int32Array | null;
  /** Where `buf` starts in `words`, in bytes. */
  readonly base: number;
  /** `buf.length`. */
  readonly cap: number;
}

/** `n` bytes from word index `si` of `sw` to `dw` at `di`, then the last 0–3 bytes from `src[from]`. */
function words(sw: Int32Array, si: number, dw: Int32Array, di: number, n: number, src: Uint8Array, from: number, dst: Uint8Array, at: number): void {
  const w = n >>> 2;
  for (let i = 0; i < w; i++) dw[di + i] = sw[si + i];
  for (let i = w << 2; i < n; i++) dst[at + i] = src[from + i];
}

/**
 * Copies `n` bytes from `src[from]` to `dst[at]` (the ranges must not overlap): by 32-bit words
 * when both ends are 4-aligned, else with Buffer.copy. A range that runs past either Buffer goes
 * to `Buffer.copy`, which clips it (or throws as it does): the loop never touches the bytes
 * around a Buffer that shares its backing store.
 */
export function copyBytes(src: Buffer, from: number, dst: Buffer, at: number, n: number): void {
  if (n <= WORDS_UP_TO && from >= 0 && at >= 0) {
    locate(src);
    const sw = foundWords;
    const s = foundOffset + from;
    if (sw !== null && from + n <= foundLength) {
      locate(dst);
      const dw = foundWords;
      const d = foundOffset + at;
      if (dw !== null && at + n <= foundLength && ((s | d) & 3) === 0) {
        words(sw, s >>> 2, dw, d >>> 2, n, src, from, dst, at);
        return;
      }
    }
  }
  src.copy(dst, at, from, from + n);
}

/** `copyBytes` into a WordSpan: a captured packet into a kept one. */
export function copyToSpan(src: Buffer, from: number, dst: WordSpan, at: number, n: number): void {
  const dw = dst.words;
  if (n <= WORDS_UP_TO && from >= 0 && at >= 0 && dw !== null && at + n <= dst.cap) {
    locate(src);
    const sw = foundWords;
    const s = foundOffset + from;
    const d = dst.base + at;
    if (sw !== null && from + n <= foundLength && ((s | d) & 3) === 0) {
      words(sw, s >>> 2, dw, d >>> 2, n, src, from, dst.buf, at);
      return;
    }
  }
  src.copy(dst.buf, at, from, from + n);
}

/** `copyBytes` out of a WordSpan: a kept packet into the send arena. */
export function copyFromSpan(src: WordSpan, from: number, dst: Buffer, at: number, n: number): void {
  const sw = src.words;
  if (n <= WORDS_UP_TO && from >= 0 && at >= 0 && sw !== null && from + n <= src.cap) {
    locate(dst);
    const dw = foundWords;
    const s = src.base + from;
    const d = foundOffset + at;
    if (dw !== null && at + n <= foundLength && ((s | d) & 3) === 0) {
      words(sw, s >>> 2, dw, d >>> 2, n, src.buf, from, dst, at);
      return;
    }
  }
  src.buf.copy(dst, at, from, from + n);
}
