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
 * Copies `n` bytes from `src[from]` to `dst[at]` (the ranges must not overlap): by 32-bit words
 * when both ends are 4-aligned, else with Buffer.copy. A range that runs past either Buffer goes
 * to `Buffer.copy`, which clips it (or throws as it does): the loop never touches the bytes
 * around a Buffer that shares its backing store.
 */
export function copyBytes(src: Buffer, from: number, dst: Buffer, at: number, n: number): void {
  const s = src.byteOffset + from;
  const d = dst.byteOffset + at;
  if (n > WORDS_UP_TO || ((s | d) & 3) !== 0 || from + n > src.length || at + n > dst.length || from < 0 || at < 0 ||
    src.buffer.byteLength < VIEWS_FROM || dst.buffer.byteLength < VIEWS_FROM) {
    src.copy(dst, at, from, from + n);
    return;
  }
  const sw = wordsOf(src.buffer);
  const dw = wordsOf(dst.buffer);
  const w = n >>> 2, si = s >>> 2, di = d >>> 2;
  for (let i = 0; i < w; i++) dw[di + i] = sw[si + i];
  for (let i = w << 2; i < n; i++) dst[at + i] = src[from + i];
}
