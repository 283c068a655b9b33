/**
 * copyBytes against Buffer.copy: random lengths and offsets (aligned and not, short and long),
 * Buffers that share one backing store (pool slabs), ranges that run past a Buffer (clipped, or refused, as
 * Buffer.copy does); the bytes around the destination never change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyBytes, copyFromSpan, copyToSpan, type WordSpan } from '../../src/wire/copy';
import { Rng } from './engine-sim';

test('copyBytes writes what Buffer.copy writes, and nothing else, on random ranges', () => {
  const rng = new Rng(20261201);
  const slab = Buffer.allocUnsafeSlow(1 << 16);
  const other = Buffer.allocUnsafeSlow(1 << 16);
  for (let round = 0; round < 4000; round++) {
    for (let i = 0; i < slab.length; i += 4) slab.writeUInt32LE(rng.u32(), i);
    for (let i = 0; i < other.length; i += 4) other.writeUInt32LE(rng.u32(), i);
    // Source and destination: views of two backing stores, or two views of one (disjoint).
    const same = rng.chance(0.3);
    const srcStart = rng.int(0, 4096), srcLen = rng.int(0, 2048);
    const src = other.subarray(srcStart, srcStart + srcLen);
    const dstStart = same ? rng.int(8192, 16384) : rng.int(0, 4096);
    const dstLen = rng.int(0, 2048);
    const dstBase = same ? other : slab;
    const dst = dstBase.subarray(dstStart, dstStart + dstLen);
    const from = rng.chance(0.9) ? rng.int(0, Math.max(0, srcLen - 1)) : rng.int(0, srcLen + 8);
    const at = rng.chance(0.9) ? rng.int(0, Math.max(0, dstLen - 1)) : rng.int(0, dstLen + 8);
    const n = rng.chance(0.7) ? rng.int(0, 400) : rng.int(0, 2000);
    const expectBase = Buffer.from(dstBase);
    const expectDst = expectBase.subarray(dstStart, dstStart + dstLen);
    const srcCopy = Buffer.from(src);
    let threw = false;
    try { srcCopy.copy(expectDst, at, from, from + n); } catch { threw = true; }
    if (threw) { assert.throws(() => copyBytes(src, from, dst, at, n), RangeError, 'out of range as Buffer.copy'); continue; }
    copyBytes(src, from, dst, at, n);
    assert.ok(dstBase.equals(expectBase), `round ${round}: src ${srcStart}+${srcLen} from ${from}, dst ${dstStart}+${dstLen} at ${at}, n ${n}`);
  }
});

test('copyBytes between large Buffers that share one store, taken in turns, copies from each one\'s own offset', () => {
  // A ring or the send arena is remembered by identity with its offset in its store: three large
  // Buffers over one store, at different offsets, used in turns (more than are remembered), and
  // small views of each.
  const rng = new Rng(7);
  const store = new ArrayBuffer(1 << 20);
  const big = [Buffer.from(store, 0, 256 << 10), Buffer.from(store, 4096, 256 << 10), Buffer.from(store, 8192 + 4, 256 << 10)];
  const whole = Buffer.from(store);
  const dst = Buffer.alloc(1 << 17);
  let words = 0;
  for (let round = 0; round < 3000; round++) {
    for (let i = 0; i < 4096; i++) whole[rng.int(0, whole.length - 1)] = rng.int(0, 255);
    const k = rng.int(0, 2);
    const src = rng.chance(0.8) ? big[k] : big[k].subarray(rng.int(0, 64) * 4, 128 << 10);
    const from = rng.int(0, 4000) * 4;
    const n = rng.int(1, 320);
    const at = rng.int(0, 4000) * 4;
    if (((src.byteOffset + from) & 3) === 0) words++;
    copyBytes(src, from, dst, at, n);
    assert.ok(dst.subarray(at, at + n).equals(src.subarray(from, from + n)), `round ${round}: Buffer ${k} at ${src.byteOffset} from ${from}, n ${n}`);
  }
  assert.ok(words > 1000, `most copies took the word loop (${words})`);
});

test('copyToSpan and copyFromSpan write what Buffer.copy writes, into and out of pool-slab spans, and nothing else', () => {
  // A kept packet is a WordSpan: a view of a 64 KiB slab with the slab's words and its place in
  // it. Copies go between spans and a large Buffer (a ring, the arena) or a small one.
  const rng = new Rng(99);
  const slabBuf = Buffer.allocUnsafeSlow(1 << 16);
  const slabWords = new Int32Array(slabBuf.buffer, slabBuf.byteOffset, slabBuf.length >>> 2);
  const big = Buffer.allocUnsafeSlow(1 << 17);
  let viaWords = 0;
  for (let round = 0; round < 4000; round++) {
    for (let i = 0; i < slabBuf.length; i += 4) slabBuf.writeUInt32LE(rng.u32(), i);
    for (let i = 0; i < 8192; i += 4) big.writeUInt32LE(rng.u32(), i);
    const base = rng.chance(0.8) ? rng.int(0, 255) * 128 : rng.int(0, 32000);
    const cap = rng.pick([128, 256, 512, 2048]);
    const span: WordSpan = { buf: slabBuf.subarray(base, base + cap), words: rng.chance(0.9) ? slabWords : null, base, cap };
    const other = rng.chance(0.8) ? big : Buffer.from(big.subarray(0, 4096));
    const off = rng.chance(0.8) ? rng.int(0, 1000) * 4 : rng.int(0, 4000);
    const n = rng.chance(0.9) ? rng.int(0, cap) : rng.int(0, 3000);
    const into = rng.chance(0.5);
    const at = rng.chance(0.9) ? (rng.chance(0.7) ? 0 : rng.int(0, cap - 1)) : rng.int(0, cap + 8);
    const expectSlab = Buffer.from(slabBuf);
    const expectOther = Buffer.from(other);
    let threw = false;
    try {
      if (into) expectOther.copy(expectSlab.subarray(base, base + cap), at, off, off + n);
      else expectSlab.subarray(base, base + cap).copy(expectOther, off, at, at + n);
    } catch { threw = true; }
    const run = (): void => { if (into) copyToSpan(other, off, span, at, n); else copyFromSpan(span, at, other, off, n); };
    if (threw) { assert.throws(run, RangeError, `round ${round}: out of range as Buffer.copy`); continue; }
    run();
    if (span.words !== null && n <= 320 && ((base + at) & 3) === 0 && ((other.byteOffset + off) & 3) === 0) viaWords++;
    assert.ok(slabBuf.equals(expectSlab), `round ${round}: slab, ${into ? 'into' : 'out of'} span ${base}+${cap} at ${at}, other at ${off}, n ${n}`);
    assert.ok(other.equals(expectOther), `round ${round}: other, ${into ? 'into' : 'out of'} span ${base}+${cap} at ${at}, other at ${off}, n ${n}`);
  }
  assert.ok(viaWords > 1000, `many copies could take the word loop (${viaWords})`);
});
