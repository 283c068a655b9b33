import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  onesSum, fold, finish, ipv4HeaderChecksum, fillIpv4Checksum, pseudoHeaderSum, tcpChecksum, fillTcpChecksum,
  tcpChecksumValid, tcpChecksumIsPartial, csumUpdate16, csumUpdate32,
} from '../../src/wire/checksum';
import { Ipv4Packet, IPPROTO_TCP, ipToString, parseIp } from '../../src/wire/ipv4';
import { TcpSegment, findTcpOption, TcpFlag, TcpOpt } from '../../src/wire/tcp';
import { ipv4Offset, parseMac, macToString, LinkType, linkTypeSupported, linkTypeName, writeEthernetHeader } from '../../src/wire/link';
import { TcpPacket } from '../../src/wire/packet';
import { TcpIpv4Repr } from '../../src/wire/tcp-repr';
import { WireError, WireReason, WIRE_REASON_NAMES, WIRE_ERRORS, wireError } from '../../src/wire/errors';
import { mulberry32 } from './prng';

// ---------------------------------------------------------------------------------------------
// Helpers: a seeded PRNG, an independent reference checksum and a hand-made packet builder.
// ---------------------------------------------------------------------------------------------

const rng = mulberry32;
const R = rng(0xc0ffee);
const randInt = (lo: number, hi: number): number => lo + Math.floor(R() * (hi - lo + 1)); // inclusive
const randU32 = (): number => Math.floor(R() * 4294967296) >>> 0;
const randU16 = (): number => randInt(0, 0xffff);
function randBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = randInt(0, 255);
  return b;
}

/** Reference RFC 1071 checksum: BigInt sum of big-endian words (odd tail padded), folded, inverted. */
function refSum(bytes: Uint8Array): bigint {
  let s = 0n;
  for (let i = 0; i < bytes.length; i += 2) {
    const hi = BigInt(bytes[i]);
    const lo = i + 1 < bytes.length ? BigInt(bytes[i + 1]) : 0n;
    s += (hi << 8n) | lo;
  }
  return s;
}
function refFold(s: bigint): number {
  while (s > 0xffffn) s = (s & 0xffffn) + (s >> 16n);
  return Number(s);
}
function refChecksum(bytes: Uint8Array): number {
  return ~refFold(refSum(bytes)) & 0xffff;
}
/** Reference IPv4 header checksum (field treated as zero). */
function refIpChecksum(pkt: Buffer, ipOff: number): number {
  const hl = (pkt[ipOff] & 0x0f) * 4;
  const h = Buffer.from(pkt.subarray(ipOff, ipOff + hl));
  h[10] = 0; h[11] = 0;
  return refChecksum(h);
}
/** Reference TCP checksum over pseudo-header + segment (field treated as zero). */
function refTcpChecksum(pkt: Buffer, ipOff: number, tcpOff: number, tcpLen: number): number {
  const pseudo = Buffer.alloc(12);
  pkt.copy(pseudo, 0, ipOff + 12, ipOff + 20);
  pseudo[8] = 0; pseudo[9] = 6;
  pseudo.writeUInt16BE(tcpLen, 10);
  const seg = Buffer.from(pkt.subarray(tcpOff, tcpOff + tcpLen));
  seg[16] = 0; seg[17] = 0;
  return refChecksum(Buffer.concat([pseudo, seg]));
}
/** The folded (not inverted) pseudo-header sum, as CHECKSUM_PARTIAL leaves it. */
function refPseudoFolded(pkt: Buffer, ipOff: number, tcpLen: number): number {
  const pseudo = Buffer.alloc(12);
  pkt.copy(pseudo, 0, ipOff + 12, ipOff + 20);
  pseudo[9] = 6;
  pseudo.writeUInt16BE(tcpLen, 10);
  return refFold(refSum(pseudo));
}

interface PktSpec {
  ipOpts?: Buffer; // multiple of 4, ≤ 40
  tcpOpts?: Buffer; // multiple of 4, ≤ 40
  payload?: Buffer;
  src?: number; dst?: number; sport?: number; dport?: number;
  seq?: number; ack?: number; flags?: number; window?: number; urgent?: number;
  id?: number; ttl?: number; tos?: number; frag?: number; protocol?: number; version?: number;
  lead?: number; // bytes before the IP header
}
interface Built { buf: Buffer; ipOff: number; ipHl: number; tcpOff: number; tcpHl: number; totLen: number }

/** Builds an IPv4/TCP packet byte by byte, with reference checksums. */
function build(s: PktSpec = {}): Built {
  const ipOpts = s.ipOpts ?? Buffer.alloc(0);
  const tcpOpts = s.tcpOpts ?? Buffer.alloc(0);
  const payload = s.payload ?? Buffer.alloc(0);
  assert.equal(ipOpts.length % 4, 0);
  assert.equal(tcpOpts.length % 4, 0);
  const lead = s.lead ?? 0;
  const ipHl = 20 + ipOpts.length;
  const tcpHl = 20 + tcpOpts.length;
  const totLen = ipHl + tcpHl + payload.length;
  const buf = Buffer.alloc(lead + totLen);
  const o = lead;
  buf[o] = ((s.version ?? 4) << 4) | (ipHl / 4);
  buf[o + 1] = s.tos ?? 0;
  buf[o + 2] = totLen >> 8; buf[o + 3] = totLen & 0xff;
  buf[o + 4] = (s.id ?? 0x1234) >> 8; buf[o + 5] = (s.id ?? 0x1234) & 0xff;
  const frag = s.frag ?? 0x4000;
  buf[o + 6] = frag >> 8; buf[o + 7] = frag & 0xff;
  buf[o + 8] = s.ttl ?? 64;
  buf[o + 9] = s.protocol ?? 6;
  const src = s.src ?? 0x0a000005, dst = s.dst ?? 0xc0a80002;
  for (let i = 0; i < 4; i++) { buf[o + 12 + i] = (src >>> (24 - 8 * i)) & 0xff; buf[o + 16 + i] = (dst >>> (24 - 8 * i)) & 0xff; }
  ipOpts.copy(buf, o + 20);
  const t = o + ipHl;
  const sport = s.sport ?? 40000, dport = s.dport ?? 8080;
  buf[t] = sport >> 8; buf[t + 1] = sport & 0xff; buf[t + 2] = dport >> 8; buf[t + 3] = dport & 0xff;
  const seq = (s.seq ?? 1000) >>> 0, ack = (s.ack ?? 2000) >>> 0;
  for (let i = 0; i < 4; i++) { buf[t + 4 + i] = (seq >>> (24 - 8 * i)) & 0xff; buf[t + 8 + i] = (ack >>> (24 - 8 * i)) & 0xff; }
  buf[t + 12] = (tcpHl / 4) << 4;
  buf[t + 13] = s.flags ?? TcpFlag.ACK;
  const win = s.window ?? 65535;
  buf[t + 14] = win >> 8; buf[t + 15] = win & 0xff;
  const urg = s.urgent ?? 0;
  buf[t + 18] = urg >> 8; buf[t + 19] = urg & 0xff;
  tcpOpts.copy(buf, t + 20);
  payload.copy(buf, t + tcpHl);
  const ic = refIpChecksum(buf, o);
  buf[o + 10] = ic >> 8; buf[o + 11] = ic & 0xff;
  const tc = refTcpChecksum(buf, o, t, tcpHl + payload.length);
  buf[t + 16] = tc >> 8; buf[t + 17] = tc & 0xff;
  return { buf, ipOff: o, ipHl, tcpOff: t, tcpHl, totLen };
}

/** A typical Linux SYN-ACK option block: MSS 1460, SACK-perm, TS, NOP, WS 7 (20 bytes). */
function synOptions(tsval = 0x11223344, tsecr = 0x55667788, ws = 7): Buffer {
  const b = Buffer.from([2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, ws]);
  b.writeUInt32BE(tsval, 8);
  b.writeUInt32BE(tsecr, 12);
  return b;
}

function randomPacket(): Built {
  const ipOptLen = R() < 0.3 ? 4 * randInt(1, 10) : 0;
  const tcpOptLen = R() < 0.6 ? 4 * randInt(1, 10) : 0;
  const payloadLen = R() < 0.2 ? 0 : randInt(0, R() < 0.8 ? 200 : 1460);
  return build({
    ipOpts: randBytes(ipOptLen), tcpOpts: randBytes(tcpOptLen), payload: randBytes(payloadLen),
    src: randU32(), dst: randU32(), sport: randU16(), dport: randU16(), seq: randU32(), ack: randU32(),
    flags: randInt(0, 255), window: randU16(), urgent: randU16(), id: randU16(), ttl: randInt(0, 255), tos: randInt(0, 255),
    lead: randInt(0, 17),
  });
}

function isWireError(x: unknown): x is WireError {
  return x instanceof WireError;
}

// ---------------------------------------------------------------------------------------------
// Getters and setters on hand-built packets.
// ---------------------------------------------------------------------------------------------

test('Ipv4Packet and TcpSegment getters on a hand-built SYN-ACK with IP and TCP options', () => {
  const ipOpts = Buffer.from([0x94, 0x04, 0x00, 0x00]); // Router Alert
  const payload = Buffer.from('hello');
  const p = build({
    ipOpts, tcpOpts: synOptions(), payload, tos: 0x10, id: 0xbeef, frag: 0x4000, ttl: 63,
    src: 0x0a000005, dst: 0xc0a80002, sport: 40000, dport: 8080, seq: 0xfffffff0, ack: 0x80000001,
    flags: TcpFlag.SYN | TcpFlag.ACK, window: 65160, urgent: 7, lead: 3,
  });
  const ip = Ipv4Packet.checkedFrom(p.buf, 3);
  assert.ok(ip instanceof Ipv4Packet);
  assert.equal(ip.version, 4);
  assert.equal(ip.headerLen, 24);
  assert.equal(ip.tos, 0x10);
  assert.equal(ip.totalLen, 24 + 40 + 5);
  assert.equal(ip.len, 69);
  assert.equal(ip.off, 3);
  assert.equal(ip.id, 0xbeef);
  assert.equal(ip.fragField, 0x4000);
  assert.equal(ip.dontFragment, true);
  assert.equal(ip.moreFragments, false);
  assert.equal(ip.fragOffset, 0);
  assert.equal(ip.ttl, 63);
  assert.equal(ip.protocol, IPPROTO_TCP);
  assert.equal(ip.src, 0x0a000005);
  assert.equal(ip.dst, 0xc0a80002);
  assert.equal(ipToString(ip.src), '10.0.0.5');
  assert.equal(ipToString(ip.dst), '192.168.0.2');
  assert.equal(ip.payloadOffset, 3 + 24);
  assert.equal(ip.payloadLen, 45);
  assert.equal(ip.checksum, refIpChecksum(p.buf, 3));
  assert.equal(ip.computeChecksum(), ip.checksum);
  assert.equal(ip.checksumValid(), true);

  const tcp = TcpSegment.checkedFrom(p.buf, ip.payloadOffset, ip.payloadLen);
  assert.ok(tcp instanceof TcpSegment);
  assert.equal(tcp.srcPort, 40000);
  assert.equal(tcp.dstPort, 8080);
  assert.equal(tcp.seq, 0xfffffff0);
  assert.equal(tcp.ack, 0x80000001);
  assert.equal(tcp.headerLen, 40);
  assert.equal(tcp.flags, 0x12);
  assert.equal(tcp.syn, true);
  assert.equal(tcp.ackFlag, true);
  assert.equal(tcp.fin, false);
  assert.equal(tcp.rst, false);
  assert.equal(tcp.psh, false);
  assert.equal(tcp.window, 65160);
  assert.equal(tcp.urgent, 7);
  assert.equal(tcp.checksum, refTcpChecksum(p.buf, 3, p.tcpOff, 45));
  assert.equal(tcp.payloadOffset, 3 + 24 + 40);
  assert.equal(tcp.payloadLen, 5);
  assert.equal(p.buf.subarray(tcp.payloadOffset, tcp.payloadOffset + tcp.payloadLen).toString(), 'hello');
  assert.equal(tcp.mss(), 1460);
  assert.equal(tcp.windowScale(), 7);
  assert.equal(tcp.sackPermitted(), true);
  const ts = tcp.timestampOffset();
  assert.equal(ts, p.tcpOff + 20 + 6);
  assert.equal(p.buf.readUInt32BE(ts + 2), 0x11223344);
  assert.equal(p.buf.readUInt32BE(ts + 6), 0x55667788);
  assert.equal(tcp.findOption(TcpOpt.Sack), -1);
  assert.equal(tcp.computeChecksum(3), tcp.checksum);
  assert.equal(tcp.checksumValid(3), true);

  const pk = new TcpPacket();
  assert.equal(pk.check(p.buf, 3, p.buf.length - 3), WireReason.Ok);
  assert.equal(pk.ip.headerLen, 24);
  assert.equal(pk.tcp.off, 3 + 24);
  assert.equal(pk.tcp.len, 45);
  assert.equal(pk.payloadLen, 5);
});

test('flag getters each follow their own bit', () => {
  const p = build({ flags: 0 });
  const tcp = TcpSegment.checkedFrom(p.buf, p.tcpOff) as TcpSegment;
  assert.ok(tcp instanceof TcpSegment);
  const cases: Array<[number, keyof TcpSegment]> = [
    [TcpFlag.FIN, 'fin'], [TcpFlag.SYN, 'syn'], [TcpFlag.RST, 'rst'], [TcpFlag.PSH, 'psh'], [TcpFlag.ACK, 'ackFlag'],
  ];
  for (const [bit, name] of cases) {
    tcp.flags = bit;
    assert.equal(p.buf[p.tcpOff + 13], bit);
    for (const [, other] of cases) assert.equal(tcp[other], other === name, `${String(other)} with flags ${bit}`);
  }
  tcp.flags = 0xff;
  for (const [, other] of cases) assert.equal(tcp[other], true);
});

test('setters write the right bytes and mask out-of-range values', () => {
  const p = build({ tcpOpts: synOptions(), payload: Buffer.from('xyz') });
  const before = Buffer.from(p.buf);
  const ip = Ipv4Packet.checkedFrom(p.buf) as Ipv4Packet;
  const tcp = TcpSegment.checkedFrom(p.buf, ip.payloadOffset, ip.payloadLen) as TcpSegment;

  ip.src = 0x01020304;
  assert.deepEqual([...p.buf.subarray(12, 16)], [1, 2, 3, 4]);
  ip.dst = -1; // wraps to 255.255.255.255
  assert.equal(ip.dst, 0xffffffff);
  assert.deepEqual([...p.buf.subarray(16, 20)], [255, 255, 255, 255]);
  ip.dst = 0xc0a80102;
  assert.equal(ipToString(ip.dst), '192.168.1.2');
  ip.id = 0x1abcd;
  assert.equal(ip.id, 0xabcd);
  ip.ttl = 5;
  assert.equal(p.buf[8], 5);
  ip.totalLen = 1234;
  assert.equal(p.buf.readUInt16BE(2), 1234);
  ip.totalLen = p.totLen;

  tcp.srcPort = 0x1ffff;
  assert.equal(tcp.srcPort, 0xffff);
  tcp.srcPort = 1;
  assert.deepEqual([...p.buf.subarray(20, 22)], [0, 1]);
  tcp.dstPort = 443;
  assert.deepEqual([...p.buf.subarray(22, 24)], [1, 187]);
  tcp.seq = 2 ** 32 + 5;
  assert.equal(tcp.seq, 5);
  tcp.seq = -1;
  assert.equal(tcp.seq, 0xffffffff);
  tcp.ack = 0xdeadbeef;
  assert.deepEqual([...p.buf.subarray(28, 32)], [0xde, 0xad, 0xbe, 0xef]);
  tcp.window = 0x12345;
  assert.equal(tcp.window, 0x2345);
  tcp.checksum = 0xabcd;
  assert.deepEqual([...p.buf.subarray(36, 38)], [0xab, 0xcd]);
  // Untouched regions stay as built: version/IHL, tos, options, payload.
  assert.equal(p.buf[0], before[0]);
  assert.equal(p.buf[1], before[1]);
  assert.deepEqual(p.buf.subarray(32, 34), before.subarray(32, 34));
  assert.deepEqual(p.buf.subarray(40), before.subarray(40));

  ip.fillChecksum();
  assert.equal(ip.checksum, refIpChecksum(p.buf, 0));
  assert.equal(ip.checksumValid(), true);
  tcp.fillChecksum(0);
  assert.equal(tcp.checksum, refTcpChecksum(p.buf, 0, 20, tcp.len));
  assert.equal(tcp.checksumValid(0), true);
});

test('window scale is capped at 14; options absent give -1/false', () => {
  const p = build({ tcpOpts: synOptions(1, 2, 15) });
  const tcp = TcpSegment.checkedFrom(p.buf, p.tcpOff) as TcpSegment;
  assert.equal(tcp.windowScale(), 14);
  const q = build({});
  const t2 = TcpSegment.checkedFrom(q.buf, q.tcpOff) as TcpSegment;
  assert.equal(t2.mss(), -1);
  assert.equal(t2.windowScale(), -1);
  assert.equal(t2.sackPermitted(), false);
  assert.equal(t2.timestampOffset(), -1);
  // A timestamp option with a short length is not a timestamp.
  const bad = build({ tcpOpts: Buffer.from([8, 6, 0, 0, 0, 0, 1, 1]) });
  const t3 = TcpSegment.checkedFrom(bad.buf, bad.tcpOff) as TcpSegment;
  assert.equal(t3.timestampOffset(), -1);
  // An MSS option of length 3 is not usable.
  const badMss = build({ tcpOpts: Buffer.from([2, 3, 5, 1]) });
  assert.equal((TcpSegment.checkedFrom(badMss.buf, badMss.tcpOff) as TcpSegment).mss(), -1);
});

// ---------------------------------------------------------------------------------------------
// Full checksums against the reference.
// ---------------------------------------------------------------------------------------------

test('onesSum/fold/finish match the reference on random buffers, offsets and odd lengths', () => {
  for (let n = 0; n < 1500; n++) {
    const len = randInt(0, 1600);
    const off = randInt(0, 7);
    const buf = randBytes(off + len + randInt(0, 5));
    const region = buf.subarray(off, off + len);
    const s = onesSum(buf, off, len);
    assert.equal(fold(s), refFold(refSum(region)), `len ${len} off ${off}`);
    assert.equal(finish(s), refChecksum(region), `len ${len} off ${off}`);
    const init = randInt(0, 0xfffff);
    assert.equal(fold(onesSum(buf, off, len, init)), refFold(refSum(region) + BigInt(init)));
  }
  // Large input: sums above 2^32 fold correctly.
  const big = Buffer.alloc(200001, 0xff);
  assert.equal(fold(onesSum(big, 0, big.length)), refFold(refSum(big)));
  assert.equal(finish(onesSum(big, 0, big.length)), refChecksum(big));
  assert.equal(finish(0), 0xffff);
});

test('IPv4 and TCP full checksums match the reference on 1500 random packets of random lengths', () => {
  let oddSegments = 0;
  for (let n = 0; n < 1500; n++) {
    const p = randomPacket();
    const tcpLen = p.totLen - p.ipHl;
    if (tcpLen & 1) oddSegments++;
    const refIp = refIpChecksum(p.buf, p.ipOff);
    const refTcp = refTcpChecksum(p.buf, p.ipOff, p.tcpOff, tcpLen);
    // Garble the stored fields: computations must treat them as zero.
    p.buf.writeUInt16BE(randU16(), p.ipOff + 10);
    p.buf.writeUInt16BE(randU16(), p.tcpOff + 16);
    assert.equal(ipv4HeaderChecksum(p.buf, p.ipOff, p.ipHl), refIp);
    assert.equal(tcpChecksum(p.buf, p.ipOff, p.tcpOff, tcpLen), refTcp);
    fillIpv4Checksum(p.buf, p.ipOff, p.ipHl);
    fillTcpChecksum(p.buf, p.ipOff, p.tcpOff, tcpLen);
    assert.equal(p.buf.readUInt16BE(p.ipOff + 10), refIp);
    assert.equal(p.buf.readUInt16BE(p.tcpOff + 16), refTcp);
    assert.equal(tcpChecksumValid(p.buf, p.ipOff, p.tcpOff, tcpLen), true);
    // Via the views.
    const pk = new TcpPacket();
    assert.equal(pk.check(p.buf, p.ipOff, p.buf.length - p.ipOff), WireReason.Ok);
    assert.equal(pk.ip.checksumValid(), true);
    assert.equal(pk.tcp.computeChecksum(p.ipOff), refTcp);
    assert.equal(pk.tcp.checksumValid(p.ipOff), true);
    // Pseudo-header sum.
    const ps = pseudoHeaderSum(p.buf, p.ipOff, 6, tcpLen);
    const pseudo = Buffer.alloc(12);
    p.buf.copy(pseudo, 0, p.ipOff + 12, p.ipOff + 20);
    pseudo[9] = 6;
    pseudo.writeUInt16BE(tcpLen, 10);
    assert.equal(fold(ps), refFold(refSum(pseudo)));
    // Any single-byte corruption of the segment is detected.
    const at = p.tcpOff + randInt(0, tcpLen - 1);
    p.buf[at] ^= randInt(1, 255);
    assert.equal(tcpChecksumValid(p.buf, p.ipOff, p.tcpOff, tcpLen), false, `corruption at ${at - p.tcpOff}`);
  }
  assert.ok(oddSegments > 100, 'odd lengths were exercised');
});

test('incremental updates (csumUpdate16/32) equal full recomputation on 1500 random field changes', () => {
  const fields = ['src', 'dst', 'sport', 'dport', 'seq', 'ack', 'window'] as const;
  const seen = new Set<string>();
  const pk = new TcpPacket();
  for (let n = 0; n < 1500; n++) {
    const p = randomPacket();
    assert.equal(pk.check(p.buf, p.ipOff, p.buf.length - p.ipOff), WireReason.Ok);
    const { ip, tcp } = pk;
    const tcpLen = tcp.len;
    const changes = randInt(1, 3);
    for (let c = 0; c < changes; c++) {
      const f = fields[randInt(0, fields.length - 1)];
      seen.add(f);
      switch (f) {
        case 'src': case 'dst': {
          const old = ip[f];
          const nv = R() < 0.05 ? old : randU32();
          ip[f] = nv;
          p.buf.writeUInt16BE(csumUpdate32(ip.checksum, old, nv), ip.off + 10);
          tcp.checksum = csumUpdate32(tcp.checksum, old, nv);
          break;
        }
        case 'seq': case 'ack': {
          const old = tcp[f];
          const nv = randU32();
          tcp[f] = nv;
          tcp.checksum = csumUpdate32(tcp.checksum, old, nv);
          break;
        }
        case 'sport': {
          const old = tcp.srcPort; const nv = randU16();
          tcp.srcPort = nv;
          tcp.checksum = csumUpdate16(tcp.checksum, old, nv);
          break;
        }
        case 'dport': {
          const old = tcp.dstPort; const nv = randU16();
          tcp.dstPort = nv;
          tcp.checksum = csumUpdate16(tcp.checksum, old, nv);
          break;
        }
        case 'window': {
          const old = tcp.window; const nv = randU16();
          tcp.window = nv;
          tcp.checksum = csumUpdate16(tcp.checksum, old, nv);
          break;
        }
      }
    }
    assert.equal(ip.checksum, refIpChecksum(p.buf, p.ipOff), `ip checksum after changes (packet ${n})`);
    assert.equal(tcp.checksum, refTcpChecksum(p.buf, p.ipOff, p.tcpOff, tcpLen), `tcp checksum after changes (packet ${n})`);
    assert.equal(tcp.checksumValid(p.ipOff), true);
  }
  assert.equal(seen.size, fields.length);
});

test('incremental update edge values (all-zero and all-ones words)', () => {
  for (const [a, b] of [[0, 0xffff], [0xffff, 0], [0, 0], [0xffff, 0xffff], [0x8000, 0x7fff]]) {
    const p = build({ window: a, payload: Buffer.from([0xff]) });
    const tcp = TcpSegment.checkedFrom(p.buf, p.tcpOff) as TcpSegment;
    tcp.window = b;
    tcp.checksum = csumUpdate16(tcp.checksum, a, b);
    assert.equal(tcp.checksum, refTcpChecksum(p.buf, 0, p.tcpOff, tcp.len), `window ${a} -> ${b}`);
  }
  for (const [a, b] of [[0, 0xffffffff], [0xffffffff, 0], [0x0000ffff, 0xffff0000]]) {
    const p = build({ seq: a });
    const tcp = TcpSegment.checkedFrom(p.buf, p.tcpOff) as TcpSegment;
    tcp.seq = b;
    tcp.checksum = csumUpdate32(tcp.checksum, a, b);
    assert.equal(tcp.checksum, refTcpChecksum(p.buf, 0, p.tcpOff, tcp.len), `seq ${a} -> ${b}`);
  }
});

test('tcpChecksumIsPartial: true for the folded pseudo-header sum, false for a full checksum', () => {
  let checked = 0;
  for (let n = 0; n < 300; n++) {
    const p = randomPacket();
    const tcpLen = p.totLen - p.ipHl;
    const pf = refPseudoFolded(p.buf, p.ipOff, tcpLen);
    const full = refTcpChecksum(p.buf, p.ipOff, p.tcpOff, tcpLen);
    assert.equal(p.buf.readUInt16BE(p.tcpOff + 16), full);
    if (full === pf || full === (~pf & 0xffff)) continue; // coincidence: ambiguous by construction
    checked++;
    assert.equal(tcpChecksumIsPartial(p.buf, p.ipOff, p.tcpOff, tcpLen), false);
    p.buf.writeUInt16BE(pf, p.tcpOff + 16);
    assert.equal(tcpChecksumIsPartial(p.buf, p.ipOff, p.tcpOff, tcpLen), true);
    assert.equal(tcpChecksumValid(p.buf, p.ipOff, p.tcpOff, tcpLen), false);
    // A full recomputation repairs it.
    fillTcpChecksum(p.buf, p.ipOff, p.tcpOff, tcpLen);
    assert.equal(p.buf.readUInt16BE(p.tcpOff + 16), full);
  }
  assert.ok(checked > 290);
});

// ---------------------------------------------------------------------------------------------
// Checked constructors on untrusted bytes.
// ---------------------------------------------------------------------------------------------

test('each rejection carries the reason code that the statistics and docs/usage.md name', () => {
  const usage = require('node:fs').readFileSync(require('node:path').resolve(__dirname, '../../../docs/usage.md'), 'utf8') as string;
  const row = usage.split('\n').find((l) => l.startsWith('| `malformed`'));
  assert.ok(row, 'docs/usage.md has a `malformed` row');
  const documented = new Set([...row.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]).filter((c) => c !== 'malformed'));
  const good = () => Buffer.from(build({ payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') }).buf);
  const pk = new TcpPacket();
  const seen = new Map<string, string>(); // code → message
  const reject = (what: string, r: WireReason | WireError | Ipv4Packet | TcpSegment, want: string) => {
    const e = typeof r === 'number' ? wireError(r) : r;
    assert.ok(e instanceof WireError, `${what}: rejected (got ${String(e)})`);
    assert.equal(e.code, want, `${what}: code`);
    assert.ok(documented.has(e.code), `${what}: '${e.code}' is listed in docs/usage.md`);
    assert.ok(e.message.length > 10 && e.message !== e.code, `${what}: a human reason, not the code: ${e.message}`);
    assert.equal(typeof r === 'number' ? wireError(r) : e, e, 'one shared instance per reason: rejections allocate nothing');
    seen.set(e.code, e.message);
  };
  reject('10 bytes', Ipv4Packet.checkedFrom(good(), 0, 10), 'truncated');
  const v6 = good(); v6[0] = 0x65;
  reject('IP version 6', Ipv4Packet.checkedFrom(v6, 0, v6.length), 'not-ipv4');
  const ihl = good(); ihl[0] = 0x44;
  reject('IHL 4', Ipv4Packet.checkedFrom(ihl, 0, ihl.length), 'bad-ihl');
  const tot = good(); tot.writeUInt16BE(tot.length + 1, 2);
  reject('total length beyond the bytes', Ipv4Packet.checkedFrom(tot, 0, tot.length), 'bad-total-length');
  const udp = good(); udp[9] = 17;
  reject('UDP', pk.check(udp, 0, udp.length), 'not-tcp');
  const doff = good(); doff[32] = 0x40;
  reject('data offset 4', pk.check(doff, 0, doff.length), 'bad-data-offset');
  const frag = good(); frag.writeUInt16BE(0x0008, 6);
  reject('a non-first fragment', pk.check(frag, 0, frag.length), 'fragment');
  const eth = Buffer.concat([Buffer.alloc(12), Buffer.from([0x86, 0xdd]), good()]);
  reject('an IPv6 Ethernet frame', -ipv4Offset(LinkType.Ethernet, eth, 0, eth.length) as WireReason, 'not-ipv4-ethertype');
  reject('link type 9999', -ipv4Offset(9999, good(), 0, 60) as WireReason, 'unsupported-link-type');
  // The same packet unharmed passes every one of these checks.
  const ok = good();
  assert.equal(pk.check(ok, 0, ok.length), WireReason.Ok);
  assert.ok(Ipv4Packet.checkedFrom(ok, 0, ok.length) instanceof Ipv4Packet);
  // Every documented reason was produced by a real check, each with its own message.
  assert.deepEqual([...seen.keys()].sort(), [...documented].sort());
  assert.equal(new Set(seen.values()).size, seen.size, 'distinct messages');
});

test('truncation at every offset of a valid packet gives the right reason', () => {
  const p = build({ ipOpts: Buffer.from([1, 1, 1, 0, 0x94, 4, 0, 0]), tcpOpts: synOptions(), payload: randBytes(33) });
  const { ipHl, tcpHl, totLen } = p;
  const pk = new TcpPacket();
  const pkh = new TcpPacket();
  for (let k = 0; k <= totLen; k++) {
    const cut = Buffer.from(p.buf.subarray(0, k)); // exactly k bytes: nothing beyond to read
    let expIp: WireReason;
    if (k < 20) expIp = WireReason.Truncated;
    else if (k < ipHl) expIp = WireReason.BadIhl;
    else if (k < totLen) expIp = WireReason.BadTotalLength;
    else expIp = WireReason.Ok;
    const v = Ipv4Packet.checkedFrom(cut);
    if (expIp === WireReason.Ok) assert.ok(v instanceof Ipv4Packet, `k=${k}`);
    else { assert.ok(isWireError(v), `k=${k}`); assert.equal(v.reason, expIp, `k=${k}: ${v.code}`); }
    assert.equal(pk.check(cut, 0, k), expIp, `TcpPacket.check k=${k}`);

    // Header-only captures: only the headers must be present.
    let expH: WireReason;
    if (k < 20) expH = WireReason.Truncated;
    else if (k < ipHl) expH = WireReason.BadIhl;
    else if (k < ipHl + 20) expH = WireReason.Truncated;
    else if (k < ipHl + tcpHl) expH = WireReason.BadDataOffset;
    else expH = WireReason.Ok;
    assert.equal(pkh.checkHeaders(cut, 0, k), expH, `checkHeaders k=${k}`);
    if (expH === WireReason.Ok) {
      assert.equal(pkh.ip.len, k);
      assert.equal(pkh.tcp.len, k - ipHl);
      assert.equal(pkh.payloadLen, 33, 'payload length from the total length');
      assert.equal(pkh.tcp.mss(), 1460);
    }

    // The TCP segment alone, cut at k bytes.
    if (k >= ipHl) {
      const segLen = k - ipHl;
      const s = TcpSegment.checkedFrom(cut, ipHl, segLen);
      const expT = segLen < 20 ? WireReason.Truncated : segLen < tcpHl ? WireReason.BadDataOffset : WireReason.Ok;
      if (expT === WireReason.Ok) assert.ok(s instanceof TcpSegment);
      else { assert.ok(isWireError(s)); assert.equal(s.reason, expT, `segment cut at ${segLen}`); }
    }
  }
});

test('lying header fields give named reasons', () => {
  const base = (): Built => build({ tcpOpts: synOptions(), payload: Buffer.from('0123456789') });
  const pk = new TcpPacket();
  // [name, mutation, reason for check, reason for checkHeaders when it differs]
  const cases: Array<[string, (b: Buffer, p: Built) => void, WireReason, WireReason?]> = [
    ['IHL 4', (b) => { b[0] = 0x44; }, WireReason.BadIhl],
    ['IHL 0', (b) => { b[0] = 0x40; }, WireReason.BadIhl],
    ['total length < IHL', (b) => { b.writeUInt16BE(19, 2); }, WireReason.BadTotalLength],
    ['total length 0', (b) => { b.writeUInt16BE(0, 2); }, WireReason.BadTotalLength],
    ['total length beyond buffer', (b, p) => { b.writeUInt16BE(p.totLen + 1, 2); }, WireReason.BadTotalLength, WireReason.Ok],
    ['version 6', (b) => { b[0] = 0x65; }, WireReason.NotIpv4],
    ['version 0', (b) => { b[0] = 0x05; }, WireReason.NotIpv4],
    ['protocol UDP', (b) => { b[9] = 17; }, WireReason.NotTcp],
    ['protocol ICMP', (b) => { b[9] = 1; }, WireReason.NotTcp],
    ['more fragments', (b) => { b.writeUInt16BE(0x2000, 6); }, WireReason.Fragment],
    ['non-zero fragment offset', (b) => { b.writeUInt16BE(0x0001, 6); }, WireReason.Fragment],
    ['last fragment with DF', (b) => { b.writeUInt16BE(0x4000 | 0x00b9, 6); }, WireReason.Fragment],
    ['data offset 4', (b, p) => { b[p.tcpOff + 12] = 0x40; }, WireReason.BadDataOffset],
    ['data offset 0', (b, p) => { b[p.tcpOff + 12] = 0x00; }, WireReason.BadDataOffset],
    ['data offset beyond segment', (b, p) => { b.writeUInt16BE(p.ipHl + 24, 2); }, WireReason.BadDataOffset],
    ['total length leaves < 20 TCP bytes', (b, p) => { b.writeUInt16BE(p.ipHl + 19, 2); }, WireReason.Truncated],
    ['DF only is fine', (b) => { b.writeUInt16BE(0x4000, 6); }, WireReason.Ok],
    ['reserved bit only is fine', (b) => { b.writeUInt16BE(0x8000, 6); }, WireReason.Ok],
    ['trailing padding ignored', (b, p) => { b.writeUInt16BE(p.totLen - 4, 2); }, WireReason.Ok],
  ];
  for (const [name, mutate, want, wantHeaders] of cases) {
    const p = base();
    mutate(p.buf, p);
    assert.equal(pk.check(p.buf, 0, p.buf.length), want, name);
    assert.equal(pk.checkHeaders(p.buf, 0, p.buf.length), wantHeaders ?? want, `${name} (headers)`);
  }
  // IHL beyond buffer in checkedFrom: the name says so.
  const p = base();
  p.buf[0] = 0x4f;
  const short = p.buf.subarray(0, 40);
  const e = Ipv4Packet.checkedFrom(short);
  assert.ok(isWireError(e));
  assert.equal(e.code, 'bad-ihl');
  // Version 6 via checkedFrom.
  const q = base();
  q.buf[0] = 0x60;
  const e6 = Ipv4Packet.checkedFrom(q.buf);
  assert.ok(isWireError(e6));
  assert.equal(e6.code, 'not-ipv4');
  // Bad offsets/avail.
  const ok = base();
  assert.equal((Ipv4Packet.checkedFrom(ok.buf, 0, ok.buf.length + 1) as WireError).code, 'truncated');
  assert.equal((Ipv4Packet.checkedFrom(ok.buf, -1) as WireError).code, 'truncated');
  assert.equal((Ipv4Packet.checkedFrom(ok.buf, 1, ok.buf.length) as WireError).code, 'truncated');
  assert.equal((TcpSegment.checkedFrom(ok.buf, ok.tcpOff, ok.buf.length) as WireError).code, 'truncated');
  // A total length beyond the capture is fine for checkHeaders (snap length), not for check.
  const snap = base();
  const cap = snap.ipHl + snap.tcpHl + 2;
  assert.equal(pk.check(snap.buf, 0, cap), WireReason.BadTotalLength);
  assert.equal(pk.checkHeaders(snap.buf, 0, cap), WireReason.Ok);
  assert.equal(pk.payloadLen, 10);
  assert.equal(pk.ip.len, cap);
});

test('random bytes never throw and successful views stay within the buffer', () => {
  const names = new Set(WIRE_REASON_NAMES);
  const pk = new TcpPacket();
  const counts = new Map<number, number>();
  for (let n = 0; n < 20000; n++) {
    const len = randInt(0, 120);
    const buf = randBytes(len);
    // Bias towards plausible headers so the deeper checks are reached.
    if (len > 0 && R() < 0.7) buf[0] = 0x40 | (R() < 0.8 ? randInt(5, 8) : randInt(0, 15));
    if (len > 9 && R() < 0.7) buf[9] = 6;
    if (len > 7 && R() < 0.7) { buf[6] &= 0x40; buf[7] = 0; }
    if (len > 3 && R() < 0.5) buf.writeUInt16BE(randInt(0, len + 4), 2);
    const off = randInt(0, 3);
    const avail = randInt(-2, len + 2);
    const ip = Ipv4Packet.checkedFrom(buf, off, avail);
    if (ip instanceof Ipv4Packet) {
      assert.ok(ip.off + ip.len <= buf.length && ip.headerLen >= 20 && ip.headerLen <= ip.len);
    } else {
      assert.ok(isWireError(ip) && names.has(ip.code));
    }
    const seg = TcpSegment.checkedFrom(buf, off, avail);
    if (seg instanceof TcpSegment) assert.ok(seg.off + seg.len <= buf.length && seg.headerLen >= 20 && seg.headerLen <= seg.len);
    else assert.ok(isWireError(seg) && names.has(seg.code));
    for (const headersOnly of [false, true]) {
      const r = headersOnly ? pk.checkHeaders(buf, off, avail) : pk.check(buf, off, avail);
      counts.set(r, (counts.get(r) ?? 0) + 1);
      assert.ok(r >= 0 && r < WIRE_REASON_NAMES.length);
      if (r === WireReason.Ok) {
        assert.ok(pk.ip.off + pk.ip.len <= buf.length);
        assert.ok(pk.tcp.off + pk.tcp.len <= buf.length);
        assert.ok(pk.tcp.off + pk.tcp.headerLen <= buf.length);
        assert.equal(pk.tcp.off, pk.ip.off + pk.ip.headerLen);
        // Option lookups and getters cannot throw on a checked view.
        pk.tcp.mss(); pk.tcp.windowScale(); pk.tcp.sackPermitted(); pk.tcp.timestampOffset();
        void pk.tcp.seq; void pk.tcp.ack; void pk.ip.src; void pk.ip.dst;
      }
    }
  }
  // Every TcpPacket reason was reached at least once.
  for (const r of [WireReason.Ok, WireReason.Truncated, WireReason.NotIpv4, WireReason.BadIhl, WireReason.BadTotalLength,
    WireReason.NotTcp, WireReason.BadDataOffset, WireReason.Fragment]) {
    assert.ok((counts.get(r) ?? 0) > 0, `reason ${WIRE_REASON_NAMES[r]} reached`);
  }
});

// ---------------------------------------------------------------------------------------------
// TCP option walking on malformed lists.
// ---------------------------------------------------------------------------------------------

/** Wraps a Buffer so that every indexed read is recorded. */
function tracked(buf: Buffer): { view: Buffer; reads: number[] } {
  const reads: number[] = [];
  const view = new Proxy(buf, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && /^\d+$/.test(prop)) reads.push(Number(prop));
      const v = Reflect.get(target, prop, target);
      void receiver;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { view, reads };
}

test('findTcpOption on malformed option lists never reads beyond the header', () => {
  const tcpOff = 6;
  // [options (the header is 20 + options.length), kind sought, expected result relative to tcpOff or -1]
  const cases: Array<[number[], number, number]> = [
    [[2, 0, 5, 0xb4], TcpOpt.Mss, -1], // length 0
    [[2, 1, 5, 0xb4], TcpOpt.Mss, -1], // length 1
    [[1, 1, 1, 2], TcpOpt.Mss, -1], // kind in the last byte, no length byte
    [[2, 8, 5, 0xb4], TcpOpt.Mss, -1], // runs past the header
    [[1, 3, 7, 7], TcpOpt.Mss, -1], // WS runs past the header
    [[3, 4, 7, 1, 2, 4, 5, 0xb4], TcpOpt.Mss, 24], // walks over WS (length 4) to a valid MSS
    [[3, 7, 7, 1, 2, 4, 5, 0xb4], TcpOpt.Mss, -1], // WS length 7 lands on the last byte, which has no length
    [[1, 1, 3, 3, 7, 0, 0, 0], TcpOpt.WindowScale, 22], // valid
    [[0, 2, 4, 5, 0xb4, 0, 0, 0], TcpOpt.Mss, -1], // End before the option
    [[1, 1, 1, 1, 1, 1, 1, 1], TcpOpt.Mss, -1], // all NOP
    [[8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1], TcpOpt.Timestamp, 20],
    [[8, 10, 1, 2, 3, 4, 5, 6], TcpOpt.Timestamp, -1], // TS cut by the header end
    [[4, 2, 2, 4, 5, 0xb4, 1, 1], TcpOpt.Mss, 22],
    [[5, 255, 0, 0], TcpOpt.Sack, -1],
  ];
  for (const [opts, kind, want] of cases) {
    const hdrLen = 20 + opts.length;
    const buf = Buffer.alloc(tcpOff + hdrLen + 16);
    buf[tcpOff + 12] = (hdrLen / 4) << 4;
    Buffer.from(opts).copy(buf, tcpOff + 20);
    // Beyond the header: a perfectly valid option of every kind, to catch over-reads.
    Buffer.from([2, 4, 5, 0xb4, 3, 3, 7, 8, 10, 0, 0, 0, 0, 0, 0, 0]).copy(buf, tcpOff + hdrLen);
    const { view, reads } = tracked(buf);
    const minLen = kind === TcpOpt.Mss ? 4 : kind === TcpOpt.WindowScale ? 3 : kind === TcpOpt.Timestamp ? 10 : 2;
    const got = findTcpOption(view, tcpOff, hdrLen, kind, minLen);
    assert.equal(got, want < 0 ? -1 : tcpOff + want, `options ${opts.join(',')}`);
    assert.ok(reads.length > 0, 'reads are observed');
    for (const r of reads) {
      assert.ok(r >= tcpOff + 20 && r < tcpOff + hdrLen, `read at ${r - tcpOff} outside options of ${opts.join(',')}`);
    }
  }
});

test('findTcpOption on random option bytes: no over-read, results are well-formed', () => {
  const tcpOff = 3;
  for (let n = 0; n < 3000; n++) {
    const optLen = 4 * randInt(0, 10);
    const hdrLen = 20 + optLen;
    const buf = randBytes(tcpOff + hdrLen + 8);
    // Bias the option kinds towards the interesting ones.
    for (let i = tcpOff + 20; i < tcpOff + hdrLen; i++) if (R() < 0.3) buf[i] = [1, 2, 3, 4, 8][randInt(0, 4)];
    const { view, reads } = tracked(buf);
    const kind = [2, 3, 4, 5, 8][randInt(0, 4)];
    const minLen = randInt(2, 10);
    const o = findTcpOption(view, tcpOff, hdrLen, kind, minLen);
    for (const r of reads) assert.ok(r >= tcpOff + 20 && r < tcpOff + hdrLen, `over-read at ${r}`);
    if (o >= 0) {
      assert.equal(buf[o], kind);
      assert.ok(buf[o + 1] >= minLen && o + buf[o + 1] <= tcpOff + hdrLen);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Link layer.
// ---------------------------------------------------------------------------------------------

test('ipv4Offset for every supported link type, unsupported types and truncated frames', () => {
  const ipPkt = build({}).buf;
  const eth = (types: number[]): Buffer => {
    const b = Buffer.alloc(12 + (types.length - 1) * 4 + 2 + ipPkt.length);
    let p = 12;
    for (let i = 0; i < types.length; i++) {
      b.writeUInt16BE(types[i], p);
      p += i < types.length - 1 ? 4 : 2;
    }
    ipPkt.copy(b, p);
    return b;
  };
  const e0 = eth([0x0800]);
  assert.equal(ipv4Offset(LinkType.Ethernet, e0, 0, e0.length), 14);
  assert.equal(e0[14] >> 4, 4);
  const e1 = eth([0x8100, 0x0800]);
  assert.equal(ipv4Offset(LinkType.Ethernet, e1, 0, e1.length), 18);
  assert.equal(e1[18], 0x45);
  const e2 = eth([0x88a8, 0x8100, 0x0800]);
  assert.equal(ipv4Offset(LinkType.Ethernet, e2, 0, e2.length), 22);
  assert.equal(e2[22], 0x45);
  const e3 = eth([0x9100, 0x8100, 0x0800]);
  assert.equal(ipv4Offset(LinkType.Ethernet, e3, 0, e3.length), 22);
  const v6 = eth([0x86dd]);
  assert.equal(ipv4Offset(LinkType.Ethernet, v6, 0, v6.length), -WireReason.NotIpv4EtherType);
  const arp = eth([0x8100, 0x0806]);
  assert.equal(ipv4Offset(LinkType.Ethernet, arp, 0, arp.length), -WireReason.NotIpv4EtherType);
  // Truncated Ethernet frames: at every length below the EtherType.
  for (let k = 0; k < 14; k++) assert.equal(ipv4Offset(LinkType.Ethernet, e0, 0, k), -WireReason.Truncated, `eth len ${k}`);
  for (let k = 14; k < 18; k++) assert.equal(ipv4Offset(LinkType.Ethernet, e1, 0, k), -WireReason.Truncated, `vlan len ${k}`);
  for (let k = 18; k < 22; k++) assert.equal(ipv4Offset(LinkType.Ethernet, e2, 0, k), -WireReason.Truncated, `qinq len ${k}`);
  // A frame at an offset inside a larger buffer.
  const shifted = Buffer.concat([Buffer.alloc(7, 0xee), e1]);
  assert.equal(ipv4Offset(LinkType.Ethernet, shifted, 7, e1.length), 18);

  // Linux cooked v1: 16-byte header, protocol at 14.
  const sll = Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00]), ipPkt]);
  assert.equal(ipv4Offset(LinkType.LinuxSll, sll, 0, sll.length), 16);
  for (let k = 0; k < 16; k++) assert.equal(ipv4Offset(LinkType.LinuxSll, sll, 0, k), -WireReason.Truncated);
  const sll6 = Buffer.from(sll); sll6.writeUInt16BE(0x86dd, 14);
  assert.equal(ipv4Offset(LinkType.LinuxSll, sll6, 0, sll6.length), -WireReason.NotIpv4EtherType);

  // Linux cooked v2: 20-byte header, protocol at 0.
  const sll2 = Buffer.concat([Buffer.from([0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]), ipPkt]);
  assert.equal(ipv4Offset(LinkType.LinuxSll2, sll2, 0, sll2.length), 20);
  for (let k = 0; k < 20; k++) assert.equal(ipv4Offset(LinkType.LinuxSll2, sll2, 0, k), -WireReason.Truncated);
  const sll26 = Buffer.from(sll2); sll26.writeUInt16BE(0x86dd, 0);
  assert.equal(ipv4Offset(LinkType.LinuxSll2, sll26, 0, sll26.length), -WireReason.NotIpv4EtherType);

  // Raw IP under every raw DLT.
  for (const t of [LinkType.Raw, LinkType.RawDlt12, LinkType.RawDlt14, LinkType.Ipv4]) {
    assert.equal(ipv4Offset(t, ipPkt, 0, ipPkt.length), 0, `raw ${t}`);
    assert.equal(ipv4Offset(t, ipPkt, 0, 0), -WireReason.Truncated);
    const six = Buffer.from(ipPkt); six[0] = 0x60;
    assert.equal(ipv4Offset(t, six, 0, six.length), -WireReason.NotIpv4);
  }

  // BSD loopback: family 2 in either byte order.
  const nullLe = Buffer.concat([Buffer.from([2, 0, 0, 0]), ipPkt]);
  const nullBe = Buffer.concat([Buffer.from([0, 0, 0, 2]), ipPkt]);
  assert.equal(ipv4Offset(LinkType.Null, nullLe, 0, nullLe.length), 4);
  assert.equal(ipv4Offset(LinkType.Null, nullBe, 0, nullBe.length), 4);
  const null6 = Buffer.concat([Buffer.from([24, 0, 0, 0]), ipPkt]);
  assert.equal(ipv4Offset(LinkType.Null, null6, 0, null6.length), -WireReason.NotIpv4);
  for (let k = 0; k < 4; k++) assert.equal(ipv4Offset(LinkType.Null, nullLe, 0, k), -WireReason.Truncated);

  // Unsupported link types.
  for (const t of [2, 6, 105, 127, 0x7fff]) {
    assert.equal(ipv4Offset(t, e0, 0, e0.length), -WireReason.UnsupportedLinkType, `dlt ${t}`);
    assert.equal(linkTypeSupported(t), false);
  }
  for (const t of [0, 1, 12, 14, 101, 113, 228, 276]) assert.equal(linkTypeSupported(t), true);
  assert.equal(linkTypeName(1), 'EN10MB');
  assert.equal(linkTypeName(276), 'LINUX_SLL2');
  assert.equal(linkTypeName(999), 'DLT 999');
});

test('ipv4Offset on random frames never throws and stays in range', () => {
  for (let n = 0; n < 5000; n++) {
    const len = randInt(0, 40);
    const buf = randBytes(len + 4);
    for (let i = 12; i + 1 < len; i += 4) if (R() < 0.5) buf.writeUInt16BE([0x8100, 0x88a8, 0x0800][randInt(0, 2)], i);
    const t = [0, 1, 12, 14, 101, 113, 228, 276, 999][randInt(0, 8)];
    const r = ipv4Offset(t, buf, 0, len);
    assert.ok(Number.isInteger(r));
    if (r >= 0) assert.ok(r <= len, `offset ${r} within ${len}`);
    else assert.ok(-r > 0 && -r < WIRE_REASON_NAMES.length);
  }
});

test('writeEthernetHeader, parseMac, macToString', () => {
  const mac = parseMac('00:13:21:B2:5E:42');
  assert.ok(mac);
  assert.deepEqual([...mac], [0x00, 0x13, 0x21, 0xb2, 0x5e, 0x42]);
  assert.equal(macToString(mac), '00:13:21:b2:5e:42');
  assert.deepEqual(parseMac('aa-bb-cc-dd-ee-ff'), Buffer.from([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
  assert.deepEqual(parseMac(' 00:0F:1F:03:F2:E6 '), Buffer.from([0x00, 0x0f, 0x1f, 0x03, 0xf2, 0xe6]));
  for (const bad of ['', '00:13:21:B2:5E', '00:13:21:B2:5E:42:11', '0:13:21:B2:5E:42', '00:13:21:B2:5E:4G', '001321B25E42', '00.13.21.B2.5E.42']) {
    assert.equal(parseMac(bad), null, bad);
  }
  const frame = Buffer.alloc(20, 0x77);
  writeEthernetHeader(frame, 2, Buffer.from([1, 2, 3, 4, 5, 6]), Buffer.from([7, 8, 9, 10, 11, 12]));
  assert.deepEqual([...frame.subarray(0, 18)], [0x77, 0x77, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x77, 0x77]);
  assert.equal(ipv4Offset(LinkType.Ethernet, frame, 2, 18), 14);
});

test('parseIp / ipToString round trip and rejects', () => {
  for (let n = 0; n < 2000; n++) {
    const ip = randU32();
    const s = ipToString(ip);
    assert.match(s, /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/);
    assert.equal(parseIp(s), ip);
  }
  assert.equal(parseIp('0.0.0.0'), 0);
  assert.equal(parseIp('255.255.255.255'), 0xffffffff);
  assert.equal(parseIp('10.0.0.5'), 0x0a000005);
  assert.equal(parseIp(' 192.168.0.2 '), 0xc0a80002);
  assert.equal(ipToString(0xc0a80002), '192.168.0.2');
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.999', 'a.b.c.d', '1.2.3.-4', '1..2.3', '1.2.3.4:80', '1234.1.1.1']) {
    assert.equal(parseIp(bad), -1, bad);
  }
});

test('TcpIpv4Repr.emit: a SYN with MSS and window scale, an ACK with timestamps, a bare RST; each parses back with valid checksums', () => {
  const r = new TcpIpv4Repr();
  const buf = Buffer.alloc(128, 0xee); // dirty: emit must write every byte it claims
  const cases = [
    { set: () => { r.noOptions(); r.mss = 1400; r.wscale = 7; r.flags = TcpFlag.SYN; }, len: 48, mss: 1400, ws: 7, ts: null as [number, number] | null },
    { set: () => { r.noOptions(); r.timestamps = true; r.tsVal = 0xfedcba98; r.tsEcr = 77; r.flags = TcpFlag.ACK; }, len: 52, mss: -1, ws: -1, ts: [0xfedcba98, 77] as [number, number] },
    { set: () => { r.noOptions(); r.flags = TcpFlag.RST; r.ack = 999; }, len: 40, mss: -1, ws: -1, ts: null },
  ];
  for (const k of cases) {
    r.srcIp = 0xc6120001; r.dstIp = 0xc6130002; r.srcPort = 40000; r.dstPort = 8080;
    r.seq = 0xffffff00; r.ack = 0x01020304; r.window = 65535; r.ipId = 0xabcd;
    k.set();
    buf.fill(0xee);
    const n = r.emit(buf, 8);
    assert.equal(n, k.len);
    assert.equal(r.totalLen, k.len);
    const p = new TcpPacket();
    assert.equal(p.check(buf, 8, n), WireReason.Ok);
    assert.equal(p.ip.totalLen, n);
    assert.equal(p.ip.headerLen, 20);
    assert.ok(p.ip.checksumValid(), 'IPv4 checksum');
    assert.ok(p.tcp.checksumValid(8), 'TCP checksum');
    assert.ok(p.ip.dontFragment);
    assert.equal(p.ip.ttl, 64);
    assert.equal(p.ip.id, 0xabcd);
    assert.equal(p.ip.src, 0xc6120001);
    assert.equal(p.ip.dst, 0xc6130002);
    assert.equal(p.tcp.srcPort, 40000);
    assert.equal(p.tcp.dstPort, 8080);
    assert.equal(p.tcp.seq, 0xffffff00);
    assert.equal(p.tcp.flags, r.flags);
    assert.equal(p.tcp.ack, (r.flags & TcpFlag.ACK) !== 0 ? r.ack : 0, 'ack only with the ACK flag');
    assert.equal(p.tcp.window, 65535);
    assert.equal(p.tcp.urgent, 0);
    assert.equal(p.payloadLen, 0);
    assert.equal(p.tcp.mss(), k.mss);
    assert.equal(p.tcp.windowScale(), k.ws);
    const o = p.tcp.timestampOffset();
    if (k.ts === null) assert.equal(o, -1);
    else assert.deepEqual([buf.readUInt32BE(o + 2), buf.readUInt32BE(o + 6)], k.ts);
    assert.equal(buf[7], 0xee, 'nothing written before the offset');
    assert.equal(buf[8 + n], 0xee, 'nothing written after the packet');
  }
});
