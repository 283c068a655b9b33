/**
 * The doctor's IPv6 probe without a network: the SYN it builds (a valid IPv6/TCP packet with
 * its pseudo-header checksum), how it recognises the target's answer in two-slot IPv6 reply
 * records, and how it picks its source address.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProbePacket6, ProbeSlot, ProbeSlot6 } from '../../src/doctor/probe';
import { chooseProbeAddress6 } from '../../src/doctor/tcpcopy';
import { Rec6 } from '../../src/control/records';
import { tcpChecksum } from '../../src/wire/checksum';
import { parseIpv6 } from '../../src/wire/ipv6';
import { Tcp6Packet } from '../../src/wire/packet';
import { TcpFlag } from '../../src/wire/tcp';

const P = parseIpv6('2001:2:0:2::5')!;
const T = parseIpv6('2001:2::30')!;

test('buildProbePacket6: an IPv6 SYN with MSS that the wire checks accept, checksum over the IPv6 pseudo-header; a RST without options', () => {
  const b = Buffer.alloc(80, 0xee);
  const len = buildProbePacket6(b, P, 41000, T, 8081, 0x01020304, TcpFlag.SYN);
  assert.equal(len, 64);
  const v = new Tcp6Packet();
  assert.equal(v.check(b, 0, len), 0);
  assert.equal(v.tcp.srcPort, 41000);
  assert.equal(v.tcp.dstPort, 8081);
  assert.equal(v.tcp.flags, TcpFlag.SYN);
  assert.equal(v.tcp.seq, 0x01020304);
  assert.deepEqual(b.subarray(8, 24), P);
  assert.deepEqual(b.subarray(24, 40), T);
  assert.equal(b[7], 64, 'hop limit');
  assert.equal(b.readUInt16BE(40 + 22), 1440, 'MSS for a 1500-byte MTU over IPv6');
  assert.equal(tcpChecksum(b, 0, 40, 24), b.readUInt16BE(40 + 16), 'the stored checksum is the full one');
  const r = buildProbePacket6(b, P, 41000, T, 8081, 0x01020305, TcpFlag.RST);
  assert.equal(r, 60);
  assert.equal(new Tcp6Packet().check(b, 0, r), 0);
});

function record6(dst: Buffer, dport: number, sport: number, flags: number, ack: number): Buffer {
  const b = Buffer.alloc(128);
  b.writeUInt32BE(0x60000000, 0); b[6] = 6;
  T.copy(b, Rec6.SrcIp); dst.copy(b, Rec6.DstIp);
  b.writeUInt16BE(sport, Rec6.SrcPort); b.writeUInt16BE(dport, Rec6.DstPort);
  b.writeUInt32BE(ack, Rec6.Ack); b[Rec6.DataOff] = 5 << 4; b[Rec6.Flags] = flags;
  return b;
}

test('ProbeSlot6: the SYN-ACK acknowledging its ISN, or an RST, in an IPv6 record; other records and IPv4 slots are not fooled', async () => {
  const s = new ProbeSlot6(P, 41000, T, 8081, 1000);
  assert.equal(s.onReplyRecord(record6(parseIpv6('2001:2:0:2::6')!, 41000, 8081, 0x12, 1001), 0, 'a'), false, 'another client');
  assert.equal(s.onReplyRecord(record6(P, 41001, 8081, 0x12, 1001), 0, 'a'), false, 'another port');
  assert.equal(s.onReplyRecord(record6(P, 41000, 8081, 0x12, 5), 0, 'a'), true, 'ours, but a stale SYN-ACK');
  assert.equal(s.answer, 'none');
  // An IPv4 slot never matches an IPv6 record (bytes 16..19 of it are not an IPv4 destination).
  const ok = record6(P, 41000, 8081, 0x12, 1001);
  const v4 = new ProbeSlot(ok.readUInt32BE(16), 41000, 0, 8081, 1000);
  assert.equal(v4.onReplyRecord(ok, 0, 'a'), false);
  assert.equal(s.onReplyRecord(ok, 0, 'icpt'), true);
  await s.answered;
  assert.equal(s.answer, 'syn-ack');
  assert.equal(s.via, 'icpt');
  const r = new ProbeSlot6(P, 41000, T, 8081, 1000);
  r.onReplyRecord(record6(P, 41000, 8081, 0x14, 1001), 0, 'b');
  assert.equal(r.answer, 'rst');
  // The real client's RST seen by the capture before ours: the answer went to the client.
  const pkt = Buffer.alloc(80);
  const len = buildProbePacket6(pkt, P, 41000, T, 8081, 1001, TcpFlag.RST);
  r.onCapturedPacket(pkt, 0, len);
  assert.equal(r.clientReset, true);
  const later = new ProbeSlot6(P, 41000, T, 8081, 1000);
  later.rstSent = true;
  later.onCapturedPacket(pkt, 0, len);
  assert.equal(later.clientReset, false, 'our own RST is not the client');
});

test('chooseProbeAddress6: an IPv6 -c address first, else the busiest IPv6 client that is not loopback, link-local, a target or ours', () => {
  const seen = new Map([['::1', 90], ['fe80::1', 80], ['2001:2::30', 70], ['2001:2:0:1::10', 5], ['2001:2:0:1::11', 9], ['2001:2::20', 50]]);
  const c = chooseProbeAddress6([P], seen, new Set(['2001:2::30']), new Set(['2001:2::20']), 'capture');
  assert.deepEqual(c.addr, P);
  assert.match(c.from, /-c/);
  const s = chooseProbeAddress6([], seen, new Set(['2001:2::30']), new Set(['2001:2::20']), 'capture');
  assert.deepEqual(s.addr, parseIpv6('2001:2:0:1::11'));
  assert.match(s.from, /seen in the capture, 9 packet/);
  assert.equal(chooseProbeAddress6([], new Map([['::1', 3]]), new Set(), new Set(), 'file').addr, null);
});
