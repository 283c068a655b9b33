/**
 * The ring's JavaScript side and the engine choice, without root: the block walker on blocks
 * laid out as the kernel does (and on garbage), libpcap's verdict on filters, and the flags.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RingCounters, RingPacketSink, walkBlocks } from '../../src/io/ring';
import { loadNative, nativeAvailable } from '../../src/io/native';
import { chooseCapture, chooseSend } from '../../src/io/engines';

const BS = 1 << 16;

interface Pkt { len: number; snap?: number; fill: number }

/** Writes a TPACKET_V3 block as the kernel lays it out: block header, then 16-aligned frames. */
function writeBlock(buf: Buffer, block: number, pkts: Pkt[]): void {
  const base = block * BS;
  let p = 48;
  const starts: number[] = [];
  for (const k of pkts) {
    const snap = k.snap ?? k.len;
    const net = 48 + 32; // tpacket3_hdr, sockaddr_ll, padding
    starts.push(p);
    buf.writeUInt32LE(1700000000, base + p + 4);
    buf.writeUInt32LE(5000, base + p + 8);
    buf.writeUInt32LE(snap, base + p + 12);
    buf.writeUInt32LE(k.len, base + p + 16);
    buf.writeUInt16LE(net, base + p + 26);
    buf.fill(k.fill, base + p + net, base + p + net + snap);
    p = (p + net + snap + 15) & ~15;
  }
  for (let i = 0; i + 1 < starts.length; i++) buf.writeUInt32LE(starts[i + 1] - starts[i], base + starts[i]);
  buf.writeUInt32LE(pkts.length, base + 12);
  buf.writeUInt32LE(48, base + 16);
  buf.writeUInt32LE(p, base + 20);
}

class Collect implements RingPacketSink {
  got: { fill: number; cap: number; wire: number; ts: number }[] = [];
  constructor(private readonly buf: Buffer) {}
  onRingPacket(buf: Buffer, off: number, cap: number, wire: number, ts: number): void {
    assert.equal(buf, this.buf);
    // Every byte handed over is the packet's own (never the next frame's or outside the block).
    for (let i = 0; i < cap; i++) assert.equal(buf[off + i], buf[off]);
    this.got.push({ fill: buf[off], cap, wire, ts });
  }
}

function ring(blocks: number): { buf: Buffer; u32: Uint32Array } {
  const ab = new ArrayBuffer(BS * blocks);
  return { buf: Buffer.from(ab), u32: new Uint32Array(ab) };
}

describe('ring block walker', () => {
  test('walks every packet of every ready block, wrapping around the ring', () => {
    const { buf, u32 } = ring(4);
    writeBlock(buf, 3, [{ len: 60, fill: 1 }, { len: 1500, fill: 2 }]);
    writeBlock(buf, 0, [{ len: 40, fill: 3 }]);
    const s = new Collect(buf);
    const c = new RingCounters();
    walkBlocks(buf, u32, BS, 4, 3, 2, s, c);
    assert.deepEqual(s.got.map((g) => g.fill), [1, 2, 3]);
    assert.deepEqual(s.got.map((g) => g.cap), [60, 1500, 40]);
    assert.equal(s.got[0].ts, 1700000000 * 1e6 + 5);
    assert.equal(c.packets, 3);
    assert.equal(c.blocks, 2);
    assert.equal(c.badBlocks, 0);
  });

  test('frames cut by the snap length are counted and handed over as captured', () => {
    const { buf, u32 } = ring(2);
    writeBlock(buf, 0, [{ len: 9000, snap: 288, fill: 7 }, { len: 100, fill: 8 }]);
    const s = new Collect(buf);
    const c = new RingCounters();
    walkBlocks(buf, u32, BS, 2, 0, 1, s, c);
    assert.deepEqual(s.got.map((g) => [g.cap, g.wire]), [[288, 9000], [100, 100]]);
    assert.equal(c.truncated, 1);
  });

  test('garbage in a block: counted, the rest of the block skipped, nothing read outside it', () => {
    const cases: [string, (b: Buffer) => void, number][] = [
      ['block length beyond the block', (b) => b.writeUInt32LE(BS + 1, 20), 0],
      ['first packet outside the block', (b) => b.writeUInt32LE(BS - 8, 16), 0],
      ['packet data running past the block', (b) => b.writeUInt32LE(BS, 48 + 12), 0],
      ['network offset inside the frame header', (b) => b.writeUInt16LE(4, 48 + 26), 0],
      ['next-packet offset of zero', (b) => b.writeUInt32LE(0, 48), 1],
      ['unaligned next-packet offset', (b) => b.writeUInt32LE(101, 48), 1],
      ['more packets claimed than the block holds', (b) => b.writeUInt32LE(1000, 12), 3],
    ];
    for (const [name, spoil, expectGood] of cases) {
      const { buf, u32 } = ring(2);
      writeBlock(buf, 0, [{ len: 60, fill: 1 }, { len: 70, fill: 2 }, { len: 80, fill: 3 }]);
      writeBlock(buf, 1, [{ len: 90, fill: 4 }]);
      spoil(buf);
      const s = new Collect(buf);
      const c = new RingCounters();
      walkBlocks(buf, u32, BS, 2, 0, 2, s, c);
      assert.equal(c.badBlocks, 1, name);
      assert.equal(s.got.length, expectGood + 1, `${name}: good packets before the garbage, then the next block`);
      assert.equal(s.got[s.got.length - 1].fill, 4, `${name}: the next block is still read`);
    }
  });

  test('an all-zero block (retired empty) is neither a packet nor garbage', () => {
    const { buf, u32 } = ring(2);
    const c = new RingCounters();
    walkBlocks(buf, u32, BS, 2, 0, 2, new Collect(buf), c);
    assert.equal(c.packets, 0);
    assert.equal(c.badBlocks, 0);
  });
});

describe('native addon without root', { skip: !nativeAvailable() && 'addon not built' }, () => {
  test('libpcap accepts IPv4 filters and rejects bad ones with its message', () => {
    const n = loadNative();
    assert.equal(n.compileFilter('tcp and (dst port 80 or dst port 8080) and dst host 198.18.0.1', 65535), null);
    assert.match(String(n.compileFilter('tcp and port', 65535)), /syntax error/);
    // The ring filters from the IP header: link-layer primitives cannot apply.
    assert.match(String(n.compileFilter('ether host 02:00:00:00:00:01', 65535)), /ethernet addresses/);
  });

  test('a rejected filter is a coded error before any socket is opened', () => {
    const n = loadNative();
    assert.throws(() => new n.Ring({ ifindex: 0, allProtocols: false, ignoreOutgoing: true, filter: 'tcp and nonsense', snaplen: 65535, blockSize: 1 << 18, blockCount: 4, timeoutMs: 1 }),
      (e: Error & { code?: string }) => e.code === 'bad-filter' && /syntax error/.test(e.message));
    assert.throws(() => new n.Ring({ ifindex: 0, allProtocols: false, ignoreOutgoing: true, filter: '', snaplen: 65535, blockSize: 1000, blockCount: 4, timeoutMs: 1 }),
      (e: Error & { code?: string }) => e.code === 'ring-options');
  });
});

describe('engine choice', () => {
  test('the fast engines are the default, not explicit', () => {
    assert.deepEqual(chooseCapture(undefined, undefined, false, true), { fast: true, explicit: false });
    assert.deepEqual(chooseSend(undefined, '', true), { fast: true, explicit: false });
  });
  test('the flag wins over the environment', () => {
    assert.deepEqual(chooseCapture('ring', 'legacy', true, true), { fast: true, explicit: true });
    assert.deepEqual(chooseCapture(undefined, 'legacy', true, true), { fast: false, explicit: true });
    assert.deepEqual(chooseSend(undefined, 'legacy', false), { fast: false, explicit: true });
  });
  test('an engine the mode cannot run is a clear line', () => {
    assert.match(String(chooseCapture('raw', undefined, true, true)), /--capture-engine raw captures on every interface: drop -i/);
    assert.match(String(chooseCapture('pcap', undefined, false, true)), /needs -i devices/);
    assert.match(String(chooseCapture('raw', undefined, true, false)), /intercept captures with ring or pcap/);
    assert.match(String(chooseCapture(undefined, 'fast', false, true)), /TCPCOPY_CAPTURE_ENGINE fast: choose one of ring, raw, pcap, legacy/);
    assert.match(String(chooseSend('raw', undefined, true)), /drop -o/);
    assert.match(String(chooseSend('pcap', undefined, false)), /needs -o/);
    assert.deepEqual(chooseCapture('pcap', undefined, true, false), { fast: false, explicit: true });
  });
});
