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
  test('each block walked goes back to the kernel (status 0), the others stay with the user', () => {
    const { buf, u32 } = ring(4);
    writeBlock(buf, 1, [{ len: 60, fill: 1 }]);
    writeBlock(buf, 2, [{ len: 60, fill: 2 }]);
    for (let b = 0; b < 4; b++) u32[(b * BS + 8) >>> 2] = 1; // TP_STATUS_USER
    let statusSeen = -1;
    const s = new Collect(buf);
    const sink = { onRingPacket: (b: Buffer, off: number, cap: number, wire: number, ts: number) => {
      // While the second block's packet is handled, the first one is back with the kernel already.
      if (b[off] === 2) statusSeen = u32[(1 * BS + 8) >>> 2];
      s.onRingPacket(b, off, cap, wire, ts);
    } };
    walkBlocks(buf, u32, BS, 4, 1, 2, sink, new RingCounters());
    assert.deepEqual(s.got.map((g) => g.fill), [1, 2]);
    assert.equal(statusSeen, 0, 'block 1 released before block 2 was walked');
    assert.deepEqual([0, 1, 2, 3].map((b) => u32[(b * BS + 8) >>> 2]), [1, 0, 0, 1]);
  });

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

/**
 * The IPv6 raw sender (kind 'ip6'), run in a network namespace of its own (`unshare -n`: only a
 * loopback, gone with the child) as root: a UDP datagram built by hand behind an IPv6 header is
 * handed to the sender, and a UDP socket on the destination receives it with the source
 * address and port we wrote (the header is ours, the destination comes from the packet).
 */
const IP6_CHILD = `
const { execFileSync } = require('node:child_process');
const dgram = require('node:dgram');
const { MmsgSender } = require(${JSON.stringify(require.resolve('../../src/io/mmsg-sender'))});
execFileSync('ip', ['link', 'set', 'lo', 'up']);
execFileSync('ip', ['-6', 'addr', 'add', '2001:2::1/128', 'dev', 'lo', 'nodad']);
execFileSync('ip', ['-6', 'addr', 'add', '2001:2::2/128', 'dev', 'lo', 'nodad']);
const rx = dgram.createSocket('udp6');
rx.bind(4242, '2001:2::1', () => {
  const payload = Buffer.from('tcpcopy ip6 sender');
  const b = Buffer.alloc(48 + payload.length);
  b.writeUInt32BE(0x60000000, 0); b.writeUInt16BE(8 + payload.length, 4); b[6] = 17; b[7] = 64;
  Buffer.from('20010002000000000000000000000002', 'hex').copy(b, 8);
  Buffer.from('20010002000000000000000000000001', 'hex').copy(b, 24);
  b.writeUInt16BE(5555, 40); b.writeUInt16BE(4242, 42); b.writeUInt16BE(8 + payload.length, 44);
  payload.copy(b, 48);
  // The UDP checksum over the IPv6 pseudo-header: the TCP one with next header 17.
  let s = 17 + 8 + payload.length;
  for (let i = 8; i < 40; i += 2) s += b.readUInt16BE(i);
  for (let i = 40; i < b.length; i += 2) s += i + 1 < b.length ? b.readUInt16BE(i) : b[i] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  b.writeUInt16BE((~s & 0xffff) || 0xffff, 46);
  const tx = new MmsgSender('ip6');
  const timer = setTimeout(() => { console.log(JSON.stringify({ error: 'nothing received', snap: tx.snapshot(), lastError: tx.lastError })); process.exit(0); }, 3000);
  rx.on('message', (m, r) => {
    clearTimeout(timer);
    console.log(JSON.stringify({ msg: m.toString(), address: r.address, port: r.port, snap: tx.snapshot() }));
    tx.close(); rx.close();
  });
  tx.send(b, 0, b.length, '2001:2::1');
  tx.flush();
});
`;

/** Tests that need the addon and root. */
const ROOT_NATIVE = { skip: (!nativeAvailable() && 'addon not built') || (process.getuid?.() !== 0 && 'needs root') || false };

/** Runs a script in a network namespace of its own (`unshare -n`); its last line of output, parsed. */
async function inOwnNamespace(script: string): Promise<{ out: string; r: Record<string, any> }> {
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync('unshare', ['-n', process.execPath, '-e', script], { encoding: 'utf8', timeout: 10_000 });
  return { out, r: JSON.parse(out.trim().split('\n').pop()!) };
}

describe('the IPv6 raw sender (root, in a namespace of its own)', ROOT_NATIVE, () => {
  test("kind 'ip6' sends our IPv6 header to the packet's own destination", async () => {
    const { out, r } = await inOwnNamespace(IP6_CHILD);
    assert.equal(r.error, undefined, out);
    assert.equal(r.msg, 'tcpcopy ip6 sender');
    assert.equal(r.address, '2001:2::2', 'the source address is the one in our header');
    assert.equal(r.port, 5555);
    assert.equal(r.snap.sent, 1);
    assert.equal(r.snap.errors, 0);
  });
});

/**
 * The link sender (kind 'link', `-o`) on the loopback device of a namespace of its own: it sends
 * IPv4 and IPv6 frames, and it never receives (an AF_PACKET socket bound to a protocol gets a
 * copy of every inbound packet of that protocol: /proc/net/packet shows it hooked, `R` 1).
 */
const LINK_CHILD = `
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const { loadNative } = require(${JSON.stringify(require.resolve('../../src/io/native'))});
execFileSync('ip', ['link', 'set', 'lo', 'up']);
const ifindex = Number(fs.readFileSync('/sys/class/net/lo/ifindex', 'utf8'));
const n = loadNative();
const tx = new n.Sender({ kind: 'link', ifindex, sndbuf: 0, qdiscBypass: false });
const table = fs.readFileSync('/proc/net/packet', 'utf8').trim().split('\\n').slice(1).map((l) => l.trim().split(/\\s+/));
const frame = (type) => { const f = Buffer.alloc(14 + 40); f.writeUInt16BE(type, 12); f[14] = type === 0x86dd ? 0x60 : 0x45; return f; };
const arena = Buffer.concat([frame(0x0800), frame(0x86dd)]);
const meta = new Uint32Array([0, 54, 54, 54]);
const out = new Int32Array(6);
const done = tx.flush(arena, meta, 0, 2, out);
console.log(JSON.stringify({ ifindex, sockets: table.map((f) => ({ proto: f[3], iface: Number(f[4]), running: f[5] })), done, sent: out[0], failed: out[1], errno: out[2] }));
tx.close();
`;

describe('the link sender (root, in a namespace of its own)', ROOT_NATIVE, () => {
  test("kind 'link' sends IPv4 and IPv6 frames and is bound to no protocol (it receives nothing)", async () => {
    const { out, r } = await inOwnNamespace(LINK_CHILD);
    assert.equal(r.done, 2, out);
    assert.equal(r.sent, 2, `both frames sent (failed ${r.failed}, errno ${r.errno})`);
    const mine = r.sockets.filter((s: { iface: number }) => s.iface === r.ifindex);
    assert.equal(mine.length, 1, `one packet socket on lo: ${JSON.stringify(r.sockets)}`);
    assert.equal(mine[0].proto, '0000', 'bound to no protocol');
    assert.equal(mine[0].running, '0', 'not hooked into the receive path');
  });
});

/**
 * The batched sender on its own (no flush() call: the addon sends at the end of the turn) into
 * a socket that fills: a veth device behind a slow token bucket holds the packets, each
 * charged to the sender's small send buffer until it leaves, so sendmmsg stops at EAGAIN. The
 * rest must wait in the arena and go when the socket is writable again: every packet leaves the
 * device, none is dropped.
 */
const FULL_CHILD = `
const { execFileSync } = require('node:child_process');
const { MmsgSender } = require(${JSON.stringify(require.resolve('../../src/io/mmsg-sender'))});
const sh = (...a) => execFileSync('ip', a);
sh('link', 'set', 'lo', 'up');
// No IPv6 on the new devices: their own neighbour and router solicitations would count on d0.
execFileSync('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
sh('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1');
sh('link', 'set', 'd0', 'up');
sh('link', 'set', 'd1', 'up');
sh('addr', 'add', '198.18.5.1/24', 'dev', 'd0');
sh('neigh', 'add', '198.18.5.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'd0');
execFileSync('tc', ['qdisc', 'add', 'dev', 'd0', 'root', 'tbf', 'rate', '4mbit', 'burst', '4000', 'limit', '2000000']);
// (/sys shows the host's devices: unshare -n does not mount a sysfs of its own.)
const txPackets = () => JSON.parse(execFileSync('ip', ['-j', '-s', 'link', 'show', 'd0'], { encoding: 'utf8' }))[0].stats64.tx.packets;
const before = txPackets();
const N = 200, LEN = 1000;
const p = Buffer.alloc(LEN);
p[0] = 0x45; p.writeUInt16BE(LEN, 2); p[8] = 64; p[9] = 17;
Buffer.from([198, 18, 5, 1]).copy(p, 12); Buffer.from([198, 18, 5, 2]).copy(p, 16);
p.writeUInt16BE(5555, 20); p.writeUInt16BE(4242, 22); p.writeUInt16BE(LEN - 20, 24);
const tx = new MmsgSender('ip', '', null, 16384);
for (let i = 0; i < N; i++) tx.send(p, 0, LEN, '198.18.5.2');
const waitingAtFirst = tx.waiting;
const t0 = Date.now();
const check = setInterval(() => {
  const s = tx.snapshot();
  if ((s.sent === N && txPackets() - before >= N) || Date.now() - t0 > 8000) {
    clearInterval(check);
    console.log(JSON.stringify({ waitingAtFirst, snap: s, onDevice: txPackets() - before, ms: Date.now() - t0, lastError: tx.lastError }));
    tx.close();
  }
}, 20);
`;

describe('the batched sender on its own (root, in a namespace of its own)', ROOT_NATIVE, () => {
  test('sends at the end of the turn without a flush() call, waits out a full socket (EAGAIN), loses nothing', async () => {
    const { out, r } = await inOwnNamespace(FULL_CHILD);
    assert.equal(r.waitingAtFirst, 200, 'nothing goes before the turn ends');
    assert.equal(r.snap.sent, 200, out);
    assert.equal(r.onDevice, 200, 'every packet left the device');
    assert.ok(r.snap.eagain >= 1, `the socket filled: ${JSON.stringify(r.snap)}`);
    assert.ok(r.snap.queued > 0 && r.snap.queued < 200, `some packets waited for it: ${JSON.stringify(r.snap)}`);
    assert.equal(r.snap.dropped, 0);
    assert.equal(r.snap.errors, 0, r.lastError);
    assert.equal(r.snap.waiting, 0);
    assert.ok(r.snap.sendmmsgCalls >= 2, 'more than one system call: it went on after EAGAIN');
  });
});

describe('capture rings per family (root)', ROOT_NATIVE, () => {
  test('IPv6 rules only: one ring, bound to IPv6; IPv4 and IPv6 rules: two', async () => {
    const { RingCapture } = await import('../../src/io/ring');
    const sink: RingPacketSink = { onRingPacket: () => {} };
    const base = { devices: [], allProtocols: false, ipv6: true, ignoreOutgoing: true, filter: 'tcp and dst port 1', snaplen: 65535, ringBytes: 1 << 20, timeoutMs: 1 };
    for (const [ipv4, rings] of [[false, 1], [true, 2], [undefined, 2]] as const) {
      const c = new RingCapture({ ...base, ipv4 }, sink);
      c.open();
      try {
        assert.equal(c.ringCount, rings, `ipv4 ${ipv4}`);
      } finally {
        c.close();
      }
    }
  });
});
