/**
 * IPv6 on the wire: the IPv6 view and its extension-header walk, TCP over IPv6 (pseudo-header
 * checksum, full and incremental), the IPv6 representation, link-layer offsets for both
 * families, IPv6 packets through pcap and pcapng files, and the address text forms. Random
 * packets are checked against an independent reference checksum (BigInt sum of a pseudo-header
 * built byte by byte), and every truncation of every packet is tried.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  csumReplace, csumUpdate16, csumUpdate32, fillTcpChecksum, fold, pseudoHeaderSum, pseudoHeaderSum6, tcpChecksum,
  tcpChecksumIsPartial, tcpChecksumValid,
} from '../../src/wire/checksum';
import { Ipv6Packet, IPV6_HEADER, ipv6ToString, parseIpv6 } from '../../src/wire/ipv6';
import { Tcp6Packet, TcpPacket } from '../../src/wire/packet';
import { TcpIpv6Repr, TcpIpv4Repr } from '../../src/wire/tcp-repr';
import { TcpFlag } from '../../src/wire/tcp';
import { ETHERTYPE_IPV6, ipOffset, ipv4Offset, LinkType, linkTypeName, linkTypeSupported, writeEthernetHeader } from '../../src/wire/link';
import { WireError, WireReason, WIRE_ERRORS, WIRE_REASON_NAMES } from '../../src/wire/errors';
import { PcapFileReader, PcapFileWriter } from '../../src/wire/pcap';
import { mulberry32 } from './prng';

const R = mulberry32(0x6666);
const randInt = (lo: number, hi: number): number => lo + Math.floor(R() * (hi - lo + 1));
function randBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = randInt(0, 255);
  return b;
}

// ---------------------------------------------------------------- reference checksum

function refChecksum(bytes: Uint8Array): number {
  let s = 0n;
  for (let i = 0; i < bytes.length; i += 2) s += (BigInt(bytes[i]) << 8n) | BigInt(i + 1 < bytes.length ? bytes[i + 1] : 0);
  while (s > 0xffffn) s = (s & 0xffffn) + (s >> 16n);
  return ~Number(s) & 0xffff;
}
/** RFC 8200 8.1 pseudo-header, built byte by byte: src, dst, 32-bit length, 3 zeros, next header 6. */
function refPseudo6(src: Buffer, dst: Buffer, len: number): Buffer {
  const p = Buffer.alloc(40);
  src.copy(p, 0); dst.copy(p, 16);
  p[32] = (len >>> 24) & 0xff; p[33] = (len >>> 16) & 0xff; p[34] = (len >>> 8) & 0xff; p[35] = len & 0xff;
  p[39] = 6;
  return p;
}
function refTcp6Checksum(src: Buffer, dst: Buffer, seg: Buffer): number {
  const s = Buffer.from(seg);
  s[16] = 0; s[17] = 0;
  return refChecksum(Buffer.concat([refPseudo6(src, dst, seg.length), s]));
}

// ---------------------------------------------------------------- packet builder

interface Ext { type: number; len: number; segLeft?: number }
interface Spec6 {
  src?: Buffer; dst?: Buffer; exts?: Ext[]; last?: number; tcpOpts?: Buffer; payload?: Buffer;
  sport?: number; dport?: number; seq?: number; ack?: number; flags?: number; lead?: number; version?: number;
}
interface Built6 { buf: Buffer; ipOff: number; extLen: number; tcpOff: number; tcpHl: number; tot: number; src: Buffer; dst: Buffer }

/** A SYN emitted by TcpIpv4Repr before the TCP writer was shared with IPv6 (captured from that code). */
const V4_SYN_HEX = '4500003c000340004006ad91c6120001c612010204d200500000000700000000a002ffffb8ab0000020405b4010303070101080a0000000500000000';

const SRC = parseIpv6('2001:2::10')!;
const DST = parseIpv6('2001:2:0:1::2')!;

/** An IPv6 packet with the given extension headers (each `len` bytes, a multiple of 8) before TCP. */
function build6(s: Spec6 = {}): Built6 {
  const exts = s.exts ?? [];
  const tcpOpts = s.tcpOpts ?? Buffer.alloc(0);
  const payload = s.payload ?? Buffer.alloc(0);
  const lead = s.lead ?? 0;
  const extLen = exts.reduce((a, e) => a + e.len, 0);
  const tcpHl = 20 + tcpOpts.length;
  const tot = 40 + extLen + tcpHl + payload.length;
  const buf = Buffer.alloc(lead + tot);
  const o = lead;
  const src = s.src ?? SRC, dst = s.dst ?? DST;
  buf[o] = (s.version ?? 6) << 4 | 0x0; buf[o + 1] = 0x0a; buf[o + 2] = 0xbc; buf[o + 3] = 0xde; // tc 0, flow 0xabcde
  buf[o + 4] = ((tot - 40) >> 8) & 0xff; buf[o + 5] = (tot - 40) & 0xff;
  buf[o + 6] = exts.length ? exts[0].type : (s.last ?? 6);
  buf[o + 7] = 64;
  src.copy(buf, o + 8); dst.copy(buf, o + 24);
  let p = o + 40;
  exts.forEach((e, i) => {
    buf[p] = i + 1 < exts.length ? exts[i + 1].type : (s.last ?? 6);
    buf[p + 1] = e.len / 8 - 1;
    if (e.type === 43) { buf[p + 2] = 4; buf[p + 3] = e.segLeft ?? 0; }
    for (let k = 4; k < e.len; k++) buf[p + k] = (k * 7) & 0xff;
    p += e.len;
  });
  const t = p;
  buf.writeUInt16BE(s.sport ?? 40000, t); buf.writeUInt16BE(s.dport ?? 8080, t + 2);
  buf.writeUInt32BE((s.seq ?? 1000) >>> 0, t + 4); buf.writeUInt32BE((s.ack ?? 2000) >>> 0, t + 8);
  buf[t + 12] = (tcpHl / 4) << 4; buf[t + 13] = s.flags ?? TcpFlag.ACK; buf.writeUInt16BE(65535, t + 14);
  tcpOpts.copy(buf, t + 20);
  payload.copy(buf, t + tcpHl);
  const c = refTcp6Checksum(src, dst, buf.subarray(t, o + tot));
  buf.writeUInt16BE(c, t + 16);
  return { buf, ipOff: o, extLen, tcpOff: t, tcpHl, tot, src, dst };
}

function randomExts(): Ext[] {
  const n = R() < 0.5 ? 0 : randInt(1, 4);
  const exts: Ext[] = [];
  for (let i = 0; i < n; i++) exts.push({ type: [0, 43, 60][randInt(0, 2)], len: 8 * randInt(1, 4) });
  return exts;
}
function random6(): Built6 {
  return build6({
    src: randBytes(16), dst: randBytes(16), exts: randomExts(),
    tcpOpts: R() < 0.5 ? randBytes(4 * randInt(1, 10)) : undefined,
    payload: randBytes(R() < 0.2 ? 0 : randInt(0, 1500)), lead: randInt(0, 7),
    sport: randInt(1, 65535), dport: randInt(1, 65535), seq: randInt(0, 2 ** 32 - 1), ack: randInt(0, 2 ** 32 - 1),
  });
}

// ---------------------------------------------------------------- addresses

test('parseIpv6 / ipv6ToString: RFC 4291 forms in, RFC 5952 text out', () => {
  const cases: [string, string][] = [
    ['2001:db8::1', '2001:db8::1'],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run
    ['::ffff:198.18.0.1', '::ffff:198.18.0.1'],
    ['::ffff:c612:1', '::ffff:198.18.0.1'],
    ['64:ff9b::198.18.0.1', '64:ff9b::c612:1'],
    ['2001:2::', '2001:2::'],
    ['fe80:1:2:3:4:5:6:7', 'fe80:1:2:3:4:5:6:7'],
  ];
  for (const [text, canon] of cases) {
    const b = parseIpv6(text);
    assert.ok(b, text);
    assert.equal(ipv6ToString(b!), canon, text);
    assert.deepEqual(parseIpv6(canon), b);
  }
  assert.deepEqual([...parseIpv6('2001:db8::1')!], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  for (const bad of ['', ':', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7::8:9',
    '::1.2.3', '::256.1.1.1', '1.2.3.4::', '[::1]', '::1%eth0', '::1/64', '198.18.0.1', ':::', '1:::2', '1:2:3:4:5:6:7:8::']) {
    assert.equal(parseIpv6(bad), null, bad);
  }
});

test('ipv6ToString agrees with the WHATWG URL serializer on random addresses (an independent reference)', () => {
  for (let n = 0; n < 3000; n++) {
    const b = randBytes(16);
    // Runs of zero groups of every length, anywhere.
    const z0 = randInt(0, 7), z1 = randInt(z0, 8);
    if (R() < 0.7) for (let i = z0 * 2; i < z1 * 2; i++) b[i] = 0;
    if (b.readUInt32BE(0) === 0 && b.readUInt32BE(4) === 0 && b.readUInt16BE(8) === 0 && b.readUInt16BE(10) === 0xffff) b[0] = 1;
    const text = ipv6ToString(b);
    assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname, text);
    assert.deepEqual(parseIpv6(text), b);
  }
});

// ---------------------------------------------------------------- the view

test('Ipv6Packet: fixed header fields, extension headers walked, TCP found behind them', () => {
  const p = build6({ exts: [{ type: 0, len: 8 }, { type: 43, len: 24 }, { type: 60, len: 16 }], payload: Buffer.from('hello'), lead: 3 });
  const v = Ipv6Packet.checkedFrom(p.buf, 3);
  assert.ok(v instanceof Ipv6Packet);
  assert.equal(v.version, 6);
  assert.equal(v.trafficClass, 0);
  assert.equal(v.flowLabel, 0xabcde);
  assert.equal(v.nextHeader, 0);
  assert.equal(v.hopLimit, 64);
  assert.equal(v.headerLen, 40 + 48);
  assert.equal(v.protocol, 6);
  assert.equal(v.payloadOffset, p.tcpOff);
  assert.equal(v.totalLen, p.tot);
  assert.equal(v.len, p.tot);
  assert.equal(v.payloadLen, 20 + 5);
  assert.equal(v.srcWord(0), 0x20010002);
  assert.equal(v.dstWord(2), 0);
  assert.equal(v.dstWord(3), 2);
  assert.equal(ipv6ToString(p.buf, v.srcOffset), '2001:2::10');
  assert.equal(ipv6ToString(p.buf, v.dstOffset), '2001:2:0:1::2');
  const tp = new Tcp6Packet();
  assert.equal(tp.check(p.buf, 3, p.buf.length - 3), WireReason.Ok);
  assert.equal(tp.tcp.off, p.tcpOff);
  assert.equal(tp.tcp.srcPort, 40000);
  assert.equal(tp.payloadLen, 5);
  assert.ok(tcpChecksumValid(p.buf, 3, tp.tcp.off, tp.tcp.len));
  // Setters write the fields.
  v.setSrc(DST); v.setDst(SRC); v.hopLimit = 7;
  assert.equal(ipv6ToString(p.buf, v.srcOffset), '2001:2:0:1::2');
  assert.equal(ipv6ToString(p.buf, v.dstOffset), '2001:2::10');
  assert.equal(p.buf[3 + 7], 7);
  // Trailing link-layer padding is ignored.
  const padded = Buffer.concat([p.buf, Buffer.alloc(6)]);
  assert.equal(tp.check(padded, 3, padded.length - 3), WireReason.Ok);
  assert.equal(tp.ip.len, p.tot);
});

test('Ipv6Packet refuses with named reasons: fragments, unknown extensions, routing in transit, version, lengths', () => {
  const reason = (p: Built6, avail = p.buf.length - p.ipOff): WireReason => new Tcp6Packet().check(p.buf, p.ipOff, avail);
  assert.equal(reason(build6({ exts: [{ type: 44, len: 8 }] })), WireReason.Ipv6Fragment);
  assert.equal(reason(build6({ exts: [{ type: 0, len: 8 }, { type: 44, len: 8 }] })), WireReason.Ipv6Fragment);
  for (const t of [50, 51, 135, 139, 140, 253, 254]) assert.equal(reason(build6({ exts: [{ type: t, len: 8 }] })), WireReason.Ipv6UnknownExtension, `next header ${t}`);
  assert.equal(reason(build6({ exts: [{ type: 43, len: 24, segLeft: 1 }] })), WireReason.Ipv6RoutingInTransit);
  assert.equal(reason(build6({ exts: [{ type: 43, len: 24, segLeft: 0 }] })), WireReason.Ok);
  assert.equal(reason(build6({ last: 17 })), WireReason.NotTcp);
  assert.equal(reason(build6({ last: 59 })), WireReason.NotTcp);
  assert.equal(reason(build6({ version: 4 })), WireReason.NotIpv6);
  const nine = build6({ exts: Array.from({ length: 9 }, () => ({ type: 60, len: 8 })) });
  assert.equal(reason(nine), WireReason.Ipv6BadExtension);
  assert.equal(reason(build6({ exts: Array.from({ length: 8 }, () => ({ type: 60, len: 8 })) })), WireReason.Ok);
  const long = build6({ payload: Buffer.alloc(10) });
  long.buf.writeUInt16BE(long.tot - 40 + 1, 4);
  assert.equal(reason(long), WireReason.Ipv6BadPayloadLength);
  // Header-only captures accept a payload length beyond the bytes, as for IPv4.
  assert.equal(new Tcp6Packet().checkHeaders(long.buf, 0, long.buf.length), WireReason.Ok);
  // An extension header whose length runs past the payload.
  const ext = build6({ exts: [{ type: 60, len: 8 }] });
  ext.buf[41] = 200;
  assert.equal(reason(ext), WireReason.Ipv6BadExtension);
  // Every reason has a name and a description.
  assert.equal(WIRE_REASON_NAMES.length, WIRE_ERRORS.length);
  for (const r of [WireReason.NotIpv6, WireReason.Ipv6Fragment, WireReason.Ipv6UnknownExtension, WireReason.Ipv6BadExtension,
    WireReason.Ipv6RoutingInTransit, WireReason.Ipv6BadPayloadLength, WireReason.NotIpEtherType, WireReason.NotIp]) {
    assert.ok(WIRE_REASON_NAMES[r].length > 3 && WIRE_ERRORS[r].message.length > 10);
    assert.equal(WIRE_ERRORS[r].code, WIRE_REASON_NAMES[r]);
  }
  const e = Ipv6Packet.checkedFrom(build6({ exts: [{ type: 44, len: 8 }] }).buf);
  assert.ok(e instanceof WireError);
  assert.equal(e.code, 'ipv6-fragment');
  assert.equal((Ipv6Packet.checkedFrom(Buffer.alloc(39)) as WireError).code, 'truncated');
});

test('truncation at every offset: each cut of each random IPv6 packet is refused by name, never thrown', () => {
  const pk = new Tcp6Packet();
  for (let n = 0; n < 60; n++) {
    const p = random6();
    const avail = p.buf.length - p.ipOff;
    assert.equal(pk.check(p.buf, p.ipOff, avail), WireReason.Ok);
    for (let cut = 0; cut < avail; cut++) {
      const r = pk.check(p.buf, p.ipOff, cut);
      if (cut < IPV6_HEADER) assert.equal(r, WireReason.Truncated, `cut ${cut}`);
      else assert.equal(r, WireReason.Ipv6BadPayloadLength, `cut ${cut}`);
      // A header-only capture is fine once the extension headers and the TCP header are in.
      const h = pk.checkHeaders(p.buf, p.ipOff, cut);
      const need = 40 + p.extLen;
      if (cut < IPV6_HEADER) assert.equal(h, WireReason.Truncated);
      else if (cut < need) assert.equal(h, WireReason.Ipv6BadExtension, `cut ${cut} of ${need}`);
      else if (cut < need + p.tcpHl) assert.ok(h === WireReason.Truncated || h === WireReason.BadDataOffset, `cut ${cut}`);
      else {
        assert.equal(h, WireReason.Ok, `cut ${cut}`);
        assert.equal(pk.payloadLen, p.tot - 40 - p.extLen - p.tcpHl);
      }
    }
  }
});

test('random bytes never throw and successful IPv6 views stay within the buffer', () => {
  const pk = new Tcp6Packet();
  const seen = new Set<number>();
  for (let n = 0; n < 20000; n++) {
    const b = randBytes(randInt(0, 120));
    if (b.length > 0) b[0] = (b[0] & 0x0f) | (R() < 0.9 ? 0x60 : b[0] & 0xf0);
    if (b.length > 6 && R() < 0.7) b[6] = [0, 6, 43, 44, 60, 51][randInt(0, 5)];
    if (b.length > 5 && R() < 0.5) b.writeUInt16BE(Math.max(0, b.length - 40 - randInt(0, 3)), 4);
    const r = pk.check(b, 0, b.length);
    seen.add(r);
    if (r === WireReason.Ok) {
      assert.ok(pk.tcp.off + pk.tcp.len <= b.length);
      assert.ok(pk.ip.payloadOffset + pk.ip.payloadLen <= b.length);
    }
  }
  for (const r of [WireReason.Ok, WireReason.Truncated, WireReason.NotIpv6, WireReason.Ipv6BadPayloadLength, WireReason.Ipv6Fragment]) assert.ok(seen.has(r), WIRE_REASON_NAMES[r]);
});

// ---------------------------------------------------------------- checksums

test('TCP over IPv6: full checksum vs the reference on random packets; fill, verify, partial', () => {
  for (let n = 0; n < 400; n++) {
    const p = random6();
    const len = p.tot - 40 - p.extLen;
    const ref = refTcp6Checksum(p.src, p.dst, p.buf.subarray(p.tcpOff, p.ipOff + p.tot));
    assert.equal(tcpChecksum(p.buf, p.ipOff, p.tcpOff, len), ref);
    assert.ok(tcpChecksumValid(p.buf, p.ipOff, p.tcpOff, len));
    assert.equal(fold(pseudoHeaderSum(p.buf, p.ipOff, 6, len)), fold(pseudoHeaderSum6(p.buf, p.ipOff, 6, len)));
    // A corrupted byte is detected.
    const k = p.tcpOff + randInt(0, len - 1);
    p.buf[k] ^= 0x40;
    assert.equal(tcpChecksumValid(p.buf, p.ipOff, p.tcpOff, len), false);
    p.buf[k] ^= 0x40;
    // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum only.
    const pseudoFolded = (~refChecksum(refPseudo6(p.src, p.dst, len))) & 0xffff;
    p.buf.writeUInt16BE(pseudoFolded, p.tcpOff + 16);
    assert.ok(tcpChecksumIsPartial(p.buf, p.ipOff, p.tcpOff, len));
    fillTcpChecksum(p.buf, p.ipOff, p.tcpOff, len);
    assert.equal(p.buf.readUInt16BE(p.tcpOff + 16), ref);
    if (ref !== pseudoFolded && ref !== (~pseudoFolded & 0xffff)) assert.equal(tcpChecksumIsPartial(p.buf, p.ipOff, p.tcpOff, len), false);
  }
});

test('TCP over IPv6: incremental updates (address, port, sequence) equal a full recomputation', () => {
  for (let n = 0; n < 400; n++) {
    const p = random6();
    const len = p.tot - 40 - p.extLen;
    const t = p.tcpOff;
    let c = p.buf.readUInt16BE(t + 16);
    // -c: a new client (source) address; the destination too (the target).
    const newSrc = randBytes(16);
    c = csumReplace(c, p.buf, p.ipOff + 8, newSrc, 0, 16);
    newSrc.copy(p.buf, p.ipOff + 8);
    const newDst = randBytes(16);
    c = csumReplace(c, p.buf, p.ipOff + 24, newDst, 0, 16);
    newDst.copy(p.buf, p.ipOff + 24);
    // -n/-f: a new source port; a shifted sequence number.
    const port = randInt(1024, 65535);
    c = csumUpdate16(c, p.buf.readUInt16BE(t), port);
    p.buf.writeUInt16BE(port, t);
    const seq = randInt(0, 2 ** 32 - 1) >>> 0;
    c = csumUpdate32(c, p.buf.readUInt32BE(t + 4), seq);
    p.buf.writeUInt32BE(seq, t + 4);
    p.buf.writeUInt16BE(c, t + 16);
    const ref = refTcp6Checksum(newSrc, newDst, p.buf.subarray(t, p.ipOff + p.tot));
    // Ones-complement arithmetic has two zeros: 0x0000 and 0xffff verify alike.
    assert.ok(c === ref || (c ^ ref) === 0xffff && (c === 0 || c === 0xffff), `got ${c}, want ${ref}`);
    assert.ok(tcpChecksumValid(p.buf, p.ipOff, t, len));
  }
});

test('TcpIpv6Repr emits what Tcp6Packet reads back, with a reference checksum; TcpIpv4Repr is unchanged', () => {
  const r = new TcpIpv6Repr();
  for (let n = 0; n < 200; n++) {
    randBytes(16).copy(r.srcIp); randBytes(16).copy(r.dstIp);
    r.srcPort = randInt(1, 65535); r.dstPort = randInt(1, 65535);
    r.seq = randInt(0, 2 ** 32 - 1); r.ack = randInt(0, 2 ** 32 - 1);
    r.flags = [TcpFlag.SYN, TcpFlag.ACK, TcpFlag.RST | TcpFlag.ACK, TcpFlag.RST][randInt(0, 3)];
    r.window = randInt(0, 65535); r.hopLimit = randInt(1, 255);
    r.mss = R() < 0.5 ? randInt(536, 9000) : 0; r.wscale = R() < 0.5 ? randInt(0, 14) : -1;
    r.timestamps = R() < 0.5; r.tsVal = randInt(0, 2 ** 32 - 1); r.tsEcr = randInt(0, 2 ** 32 - 1);
    const buf = Buffer.alloc(r.totalLen + 4);
    const len = r.emit(buf, 2);
    assert.equal(len, r.totalLen);
    const pk = new Tcp6Packet();
    assert.equal(pk.check(buf, 2, len), WireReason.Ok);
    assert.equal(pk.ip.hopLimit, r.hopLimit);
    assert.deepEqual(buf.subarray(2 + 8, 2 + 24), r.srcIp);
    assert.deepEqual(buf.subarray(2 + 24, 2 + 40), r.dstIp);
    assert.equal(pk.tcp.srcPort, r.srcPort);
    assert.equal(pk.tcp.dstPort, r.dstPort);
    assert.equal(pk.tcp.seq, r.seq >>> 0);
    assert.equal(pk.tcp.ack, (r.flags & TcpFlag.ACK) ? r.ack >>> 0 : 0);
    assert.equal(pk.tcp.flags, r.flags);
    assert.equal(pk.tcp.window, r.window);
    assert.equal(pk.tcp.mss(), r.mss > 0 ? r.mss : -1);
    assert.equal(pk.tcp.windowScale(), r.wscale);
    assert.equal(pk.tcp.timestampOffset() >= 0, r.timestamps);
    assert.equal(pk.payloadLen, 0);
    assert.equal(pk.tcp.checksum, refTcp6Checksum(r.srcIp, r.dstIp, buf.subarray(2 + 40, 2 + len)));
  }
  // The shared TCP writer left the IPv4 repr's bytes as they were (a SYN written by the code before IPv6).
  const v4 = new TcpIpv4Repr();
  Object.assign(v4, { srcIp: 0xc6120001, dstIp: 0xc6120102, srcPort: 1234, dstPort: 80, seq: 7, ack: 9, flags: TcpFlag.SYN, mss: 1460, wscale: 7, timestamps: true, tsVal: 5, tsEcr: 0, ipId: 3 });
  const b4 = Buffer.alloc(v4.totalLen);
  v4.emit(b4, 0);
  assert.equal(b4.toString('hex'), V4_SYN_HEX);
  const p4 = new TcpPacket();
  assert.equal(p4.check(b4, 0, b4.length), WireReason.Ok);
  assert.ok(p4.ip.checksumValid());
  assert.ok(tcpChecksumValid(b4, 0, 20, b4.length - 20));
});

// ---------------------------------------------------------------- link layer

function eth(payload: Buffer, type: number, vlans = 0): Buffer {
  const h = Buffer.alloc(12 + 4 * vlans + 2);
  for (let i = 0; i < vlans; i++) h.writeUInt16BE([0x8100, 0x88a8, 0x9100][i % 3], 12 + 4 * i);
  h.writeUInt16BE(type, 12 + 4 * vlans);
  return Buffer.concat([h, payload]);
}

test('ipOffset: IPv6 and IPv4 on every link type; ipv4Offset still refuses IPv6', () => {
  const v6 = build6({ payload: Buffer.from('x') }).buf;
  const v4 = Buffer.alloc(40); v4[0] = 0x45;
  for (let vl = 0; vl <= 3; vl++) {
    assert.equal(ipOffset(LinkType.Ethernet, eth(v6, 0x86dd, vl), 0, 14 + 4 * vl + v6.length), 14 + 4 * vl);
    assert.equal(ipOffset(LinkType.Ethernet, eth(v4, 0x0800, vl), 0, 14 + 4 * vl + 40), 14 + 4 * vl);
    assert.equal(ipv4Offset(LinkType.Ethernet, eth(v6, 0x86dd, vl), 0, 14 + 4 * vl + v6.length), -WireReason.NotIpv4EtherType);
  }
  assert.equal(ipOffset(LinkType.Ethernet, eth(v6, 0x0806), 0, 14 + v6.length), -WireReason.NotIpEtherType);
  const sll = Buffer.concat([Buffer.alloc(14), Buffer.from([0x86, 0xdd]), v6]);
  assert.equal(ipOffset(LinkType.LinuxSll, sll, 0, sll.length), 16);
  sll.writeUInt16BE(0x0800, 14);
  assert.equal(ipOffset(LinkType.LinuxSll, sll, 0, sll.length), 16);
  sll.writeUInt16BE(0x0806, 14);
  assert.equal(ipOffset(LinkType.LinuxSll, sll, 0, sll.length), -WireReason.NotIpEtherType);
  const sll2 = Buffer.concat([Buffer.from([0x86, 0xdd]), Buffer.alloc(18), v6]);
  assert.equal(ipOffset(LinkType.LinuxSll2, sll2, 0, sll2.length), 20);
  sll2.writeUInt16BE(0x88cc, 0);
  assert.equal(ipOffset(LinkType.LinuxSll2, sll2, 0, sll2.length), -WireReason.NotIpEtherType);
  for (const t of [LinkType.Raw, LinkType.RawDlt12, LinkType.RawDlt14]) {
    assert.equal(ipOffset(t, v6, 0, v6.length), 0);
    assert.equal(ipOffset(t, v4, 0, v4.length), 0);
    assert.equal(ipOffset(t, Buffer.from([0x50]), 0, 1), -WireReason.NotIp);
    assert.equal(ipOffset(t, v6, 0, 0), -WireReason.Truncated);
  }
  assert.equal(ipOffset(LinkType.Ipv6, v6, 0, v6.length), 0);
  assert.equal(ipOffset(LinkType.Ipv6, v4, 0, v4.length), -WireReason.NotIpv6);
  assert.equal(ipOffset(LinkType.Ipv4, v6, 0, v6.length), -WireReason.NotIpv4);
  assert.equal(ipv4Offset(LinkType.Ipv6, v6, 0, v6.length), -WireReason.NotIpv4);
  for (const fam of [10, 24, 28, 30, 2]) {
    for (const le of [true, false]) {
      const h = Buffer.alloc(4);
      if (le) h.writeUInt32LE(fam); else h.writeUInt32BE(fam);
      assert.equal(ipOffset(LinkType.Null, Buffer.concat([h, v6]), 0, 4 + v6.length), 4, `AF ${fam}`);
    }
  }
  assert.equal(ipOffset(LinkType.Null, Buffer.concat([Buffer.from([7, 0, 0, 0]), v6]), 0, 44), -WireReason.NotIp);
  // Truncated link headers.
  const e6 = eth(v6, 0x86dd, 1);
  for (let k = 0; k < 18; k++) assert.equal(ipOffset(LinkType.Ethernet, e6, 0, k), -WireReason.Truncated, `eth ${k}`);
  for (let k = 0; k < 16; k++) assert.equal(ipOffset(LinkType.LinuxSll, sll, 0, k), -WireReason.Truncated);
  for (let k = 0; k < 20; k++) assert.equal(ipOffset(LinkType.LinuxSll2, sll2, 0, k), -WireReason.Truncated);
  for (let k = 0; k < 4; k++) assert.equal(ipOffset(LinkType.Null, v6, 0, k), -WireReason.Truncated);
  assert.equal(ipOffset(999, v6, 0, v6.length), -WireReason.UnsupportedLinkType);
  assert.equal(linkTypeSupported(229), true);
  assert.equal(linkTypeName(229), 'IPV6');
  // An Ethernet header for IPv6 frames.
  const f = Buffer.alloc(14);
  writeEthernetHeader(f, 0, Buffer.from([1, 2, 3, 4, 5, 6]), Buffer.from([7, 8, 9, 10, 11, 12]), ETHERTYPE_IPV6);
  assert.equal(f.toString('hex'), '0102030405060708090a0b0c86dd');
  writeEthernetHeader(f, 0, Buffer.from([1, 2, 3, 4, 5, 6]), Buffer.from([7, 8, 9, 10, 11, 12]));
  assert.equal(f.readUInt16BE(12), 0x0800);
});

test('ipOffset on random frames never throws and stays in range', () => {
  for (let n = 0; n < 5000; n++) {
    const len = randInt(0, 40);
    const buf = randBytes(len + 4);
    for (let i = 12; i + 1 < len; i += 4) if (R() < 0.5) buf.writeUInt16BE([0x8100, 0x88a8, 0x86dd, 0x0800][randInt(0, 3)], i);
    const t = [0, 1, 12, 14, 101, 113, 228, 229, 276, 999][randInt(0, 9)];
    const r = ipOffset(t, buf, 0, len);
    if (r >= 0) assert.ok(r <= len);
    else assert.ok(-r > 0 && -r < WIRE_REASON_NAMES.length);
  }
});

// ---------------------------------------------------------------- files

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wire6-test-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Reads a file back: per packet, the family found and whether the TCP view and checksum hold. */
function readBack(file: string): { link: number; ok: boolean; v: number; sport: number }[] {
  const rd = PcapFileReader.open(file);
  const out: { link: number; ok: boolean; v: number; sport: number }[] = [];
  const p6 = new Tcp6Packet(), p4 = new TcpPacket();
  while (rd.next()) {
    const off = ipOffset(rd.linkType, rd.data, rd.offset, rd.caplen);
    assert.ok(off >= 0, `ipOffset ${off}`);
    const at = rd.offset + off, avail = rd.caplen - off;
    const v = rd.data[at] >>> 4;
    const pk = v === 6 ? p6 : p4;
    const ok = pk.check(rd.data, at, avail) === WireReason.Ok && tcpChecksumValid(rd.data, at, pk.tcp.off, pk.tcp.len);
    out.push({ link: rd.linkType, ok, v, sport: pk.tcp.srcPort });
  }
  assert.equal(rd.error, null);
  rd.close();
  return out;
}

test('pcap: IPv6 packets (Ethernet, raw, LINKTYPE_IPV6, SLL2) written and read back, mixed with IPv4', () => {
  const v4 = Buffer.alloc(40);
  v4[0] = 0x45; v4.writeUInt16BE(40, 2); v4[9] = 6; v4.writeUInt32BE(0xc6120001, 12); v4.writeUInt32BE(0xc6120102, 16);
  v4.writeUInt16BE(4444, 20); v4[32] = 0x50;
  fillTcpChecksum(v4, 0, 20, 20);
  const frames: Record<number, (b: Buffer, v: number) => Buffer> = {
    [LinkType.Ethernet]: (b, v) => eth(b, v === 6 ? 0x86dd : 0x0800, v === 6 ? 1 : 0),
    [LinkType.Raw]: (b) => b,
    [LinkType.Ipv6]: (b) => b,
    [LinkType.LinuxSll2]: (b, v) => Buffer.concat([Buffer.from([v === 6 ? 0x86 : 0x08, v === 6 ? 0xdd : 0x00]), Buffer.alloc(18), b]),
  };
  for (const [lt, frame] of Object.entries(frames)) {
    const file = path.join(dir, `v6-${lt}.pcap`);
    const w = PcapFileWriter.create(file, Number(lt));
    const want: { v: number; sport: number }[] = [];
    for (let i = 0; i < 50; i++) {
      if (Number(lt) !== LinkType.Ipv6 && i % 5 === 4) { const f = frame(v4, 4); w.write(f, 0, f.length, 1000 + i, 0); want.push({ v: 4, sport: 4444 }); continue; }
      const p = build6({ exts: randomExts(), payload: randBytes(randInt(0, 1400)), sport: 10000 + i });
      const f = frame(p.buf, 6);
      w.write(f, 0, f.length, 1000 + i, i);
      want.push({ v: 6, sport: 10000 + i });
    }
    w.close();
    const got = readBack(file);
    assert.deepEqual(got.map((g) => ({ v: g.v, sport: g.sport })), want, `link ${lt}`);
    assert.ok(got.every((g) => g.ok && g.link === Number(lt)));
  }
});

test('pcapng: an Ethernet interface and a raw interface carrying IPv6', () => {
  const u16 = (v: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
  const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; };
  const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const block = (type: number, body: Buffer): Buffer => {
    const len = 12 + body.length;
    return Buffer.concat([u32(type), u32(len), body, u32(len)]);
  };
  const shb = block(0x0a0d0d0a, Buffer.concat([u32(0x1a2b3c4d), u16(1), u16(0), u32(0xffffffff), u32(0xffffffff)]));
  const idb = (lt: number): Buffer => block(1, Buffer.concat([u16(lt), u16(0), u32(65535)]));
  const epb = (ifId: number, data: Buffer): Buffer => block(6, Buffer.concat([u32(ifId), u32(0), u32(1), u32(data.length), u32(data.length), pad4(data)]));
  const parts = [shb, idb(LinkType.Ethernet), idb(LinkType.Raw)];
  const want: number[] = [];
  for (let i = 0; i < 30; i++) {
    const p = build6({ exts: randomExts(), payload: randBytes(randInt(0, 600)), sport: 20000 + i });
    parts.push(i % 2 ? epb(1, p.buf) : epb(0, eth(p.buf, 0x86dd)));
    want.push(20000 + i);
  }
  const file = path.join(dir, 'v6.pcapng');
  fs.writeFileSync(file, Buffer.concat(parts));
  const got = readBack(file);
  assert.deepEqual(got.map((g) => g.sport), want);
  assert.ok(got.every((g, i) => g.ok && g.v === 6 && g.link === (i % 2 ? LinkType.Raw : LinkType.Ethernet)));
});
