/**
 * copyBytes against Buffer.copy: random lengths and offsets (aligned and not, short and long),
 * Buffers that share one backing store (pool slabs), ranges that run past a Buffer (clipped, or refused, as
 * Buffer.copy does); the bytes around the destination never change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyBytes } from '../../src/wire/copy';
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
