/**
 * The control channel's capability extension (docs/control-channel.md): the announcement in
 * the version record's ignored bytes, intercept's answer at the head of its stream, the
 * CLIENT_ADD6 record and the two-slot IPv6 reply record, decoded at every split of the
 * stream; and on real loopback sockets, that our intercept answers our tcpcopy's announcement
 * (after the shared secret's confirmation when there is one) and never answers a peer that
 * announces nothing, as the original tcpcopy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import pino from 'pino';

import {
  AUTH_NONCE_SIZE, CAPABILITY_ANSWER_SIZE, CAPABILITY_MAGIC, CLIENT_ADD6_SIZE, CLIENT_RECORD_SIZE, Capability, MsgType,
  OUR_CAPABILITIES, REPLY_RECORD_PAYLOAD_SIZE, REPLY_RECORD_SIZE, Rec6, ReplyRecord6, authProof, buildReplyRecord6,
  replyRecord6Size, versionCapabilities, writeAuthRecord, writeCapabilityAnswer, writeClientAdd6Record, writeClientRecord,
  writeVersionRecord,
} from '../../src/control/records';
import { ClientRecordDecoder, ClientRecordSink, ReplyBatcher, ReplyStreamDecoder } from '../../src/control/codec';
import { DEFAULT_INTERCEPT_OPTIONS, Intercept } from '../../src/intercept/intercept';
import { Tcp6Packet } from '../../src/wire/packet';
import { parseIpv6 } from '../../src/wire/ipv6';
import { WireReason } from '../../src/wire/errors';
import { mulberry32 } from './prng';

const R = mulberry32(0xc6);
const hex = (b: Buffer): string => b.toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1 ');

test('the announcement sits in the version record bytes the original ignores; the original record announces nothing', () => {
  const v = Buffer.alloc(CLIENT_RECORD_SIZE);
  writeVersionRecord(v, 0, 6, Capability.Ipv6);
  assert.equal(hex(v), '00 00 00 00 00 00 00 06 54 43 36 58 00 01');
  assert.equal(versionCapabilities(v, 0), Capability.Ipv6);
  writeVersionRecord(v, 0, 6, 0);
  assert.equal(hex(v), '00 00 00 00 00 00 00 06 54 43 36 58 00 00', 'the extension with no capability');
  assert.equal(versionCapabilities(v, 0), 0);
  // The original's version message (reference spec 3.2), and ours without an announcement.
  const orig = Buffer.from('0000000000000006000000000000', 'hex');
  assert.equal(versionCapabilities(orig, 0), -1);
  writeVersionRecord(v, 0);
  assert.ok(v.equals(orig));
  // The legacy head (bytes 0-7) is the original's in every case: address and port zero.
  writeVersionRecord(v, 0, 6, 0xffff);
  assert.equal(v.readUInt32BE(0), 0);
  assert.equal(v.readUInt16BE(4), 0);
  const a = Buffer.alloc(CAPABILITY_ANSWER_SIZE);
  writeCapabilityAnswer(a, 0, Capability.Ipv6);
  assert.equal(hex(a), 'FF FF 54 43 36 58 00 01');
  assert.equal(CAPABILITY_MAGIC, 0x54433658);
  assert.equal(OUR_CAPABILITIES & Capability.Ipv6, Capability.Ipv6, 'IPv6 is announced and accepted: both daemons replay it');
});

class Sink implements ClientRecordSink {
  versions: [number, number][] = [];
  msgs: string[] = [];
  onVersion(version: number, caps: number): void { this.versions.push([version, caps]); }
  onClientRecord(type: number, clientIp: number, clientPort: number, targetIp: number, targetPort: number): void {
    this.msgs.push(`v4 ${type} ${clientIp}:${clientPort} ${targetIp}:${targetPort}`);
  }
  onClientAdd6(buf: Buffer, clientOff: number, clientPort: number, targetOff: number, targetPort: number): void {
    this.msgs.push(`v6 ${buf.toString('hex', clientOff, clientOff + 16)}:${clientPort} ${buf.toString('hex', targetOff, targetOff + 16)}:${targetPort}`);
  }
}

test('CLIENT_ADD6: 46-byte layout; decoded among 14-byte records at every split', () => {
  const c6 = parseIpv6('2001:2:0:1::10')!, t6 = parseIpv6('2001:2::30')!;
  const one = Buffer.alloc(CLIENT_ADD6_SIZE + 2);
  writeClientAdd6Record(one, 1, c6, 0, 40000, t6, 0, 8080);
  assert.equal(hex(one.subarray(1, 15)), '00 00 00 00 9C 40 00 7C 00 00 00 00 1F 90');
  assert.ok(one.subarray(15, 31).equals(c6));
  assert.ok(one.subarray(31, 47).equals(t6));
  assert.equal(CLIENT_ADD6_SIZE, 46);

  const parts: Buffer[] = [];
  const want: string[] = [];
  const v = Buffer.alloc(CLIENT_RECORD_SIZE);
  writeVersionRecord(v, 0, 6, Capability.Ipv6);
  parts.push(v);
  for (let i = 0; i < 10; i++) {
    if (i % 3 === 1) {
      const b = Buffer.alloc(CLIENT_RECORD_SIZE);
      const ip = (R() * 2 ** 32) >>> 0;
      writeClientRecord(b, 0, MsgType.ClientAdd, ip, 1000 + i, 0xc612001e, 8080);
      parts.push(b);
      want.push(`v4 1 ${ip}:${1000 + i} ${0xc612001e}:8080`);
    } else {
      const b = Buffer.alloc(CLIENT_ADD6_SIZE);
      const c = Buffer.from(Array.from({ length: 16 }, () => Math.floor(R() * 256)));
      writeClientAdd6Record(b, 0, c, 0, 2000 + i, t6, 0, 8081);
      parts.push(b);
      want.push(`v6 ${c.toString('hex')}:${2000 + i} ${t6.toString('hex')}:8081`);
    }
  }
  const stream = Buffer.concat(parts);
  for (let s = 0; s <= stream.length; s++) {
    for (const t of [s, s + 1, s + 14, s + 33, s + 46]) {
      const sink = new Sink();
      const dec = new ClientRecordDecoder(sink);
      for (const c of [stream.subarray(0, s), stream.subarray(s, Math.min(t, stream.length)), stream.subarray(Math.min(t, stream.length))]) {
        assert.equal(dec.push(c), null);
      }
      assert.deepEqual(sink.versions, [[6, Capability.Ipv6]]);
      assert.deepEqual(sink.msgs, want, `splits ${s}, ${t}`);
      assert.equal(dec.atBoundary, true);
    }
  }
  // Byte by byte.
  const sink = new Sink();
  const dec = new ClientRecordDecoder(sink);
  for (let i = 0; i < stream.length; i++) assert.equal(dec.push(stream.subarray(i, i + 1)), null);
  assert.deepEqual(sink.msgs, want);
});

/** An IPv6/TCP reply with a hop-by-hop header, a TCP header of `tcpHl` and a payload. */
function reply6(tcpHl: number, payload: number, seed: number): { buf: Buffer; pk: Tcp6Packet } {
  const tot = 40 + 8 + tcpHl + payload;
  const b = Buffer.alloc(tot);
  b[0] = 0x60; b.writeUInt16BE(tot - 40, 4); b[6] = 0; b[7] = 64;
  parseIpv6('2001:2::30')!.copy(b, 8);
  parseIpv6('2001:2:0:1::10')!.copy(b, 24);
  b[40] = 6; b[41] = 0;
  const t = 48;
  b.writeUInt16BE(8080, t); b.writeUInt16BE(40000 + seed, t + 2); b.writeUInt32BE(seed * 7919, t + 4); b.writeUInt32BE(seed * 104729, t + 8);
  b[t + 12] = (tcpHl / 4) << 4; b[t + 13] = 0x12; b.writeUInt16BE(1000 + seed, t + 14);
  for (let i = t + 20; i < tot; i++) b[i] = (i * 13 + seed) & 0xff;
  const pk = new Tcp6Packet();
  assert.equal(pk.check(b, 0, b.length), WireReason.Ok);
  return { buf: b, pk };
}

test('IPv6 reply records: two slots, extension headers squeezed out, whole TCP header, payload variant', () => {
  const { buf, pk } = reply6(40, 50, 3);
  const size = replyRecord6Size(REPLY_RECORD_SIZE);
  assert.equal(size, 128);
  const rec = Buffer.alloc(size + 4, 0xee);
  buildReplyRecord6(rec, 2, size, false, buf, 0, pk.ip.headerLen, pk.tcp.headerLen, pk.ip.totalLen, buf.length);
  assert.equal(rec[2] >>> 4, 6);
  assert.equal(rec[2 + Rec6.NextHeader], 6, 'next header: TCP (hop-by-hop squeezed out)');
  assert.equal(rec.readUInt16BE(2 + Rec6.PayloadLen), 40 + 50);
  assert.ok(rec.subarray(2 + Rec6.SrcIp, 2 + Rec6.SrcIp + 16).equals(parseIpv6('2001:2::30')!));
  assert.equal(rec.compare(parseIpv6('2001:2:0:1::10')!, 0, 16, ReplyRecord6.dstIpOffset(2), ReplyRecord6.dstIpOffset(2) + 16), 0);
  assert.ok(rec.subarray(2 + Rec6.Tcp, 2 + Rec6.Tcp + 40).equals(buf.subarray(48, 88)), 'the whole TCP header');
  assert.equal(ReplyRecord6.srcPort(rec, 2), 8080);
  assert.equal(ReplyRecord6.dstPort(rec, 2), 40003);
  assert.equal(ReplyRecord6.seq(rec, 2), 3 * 7919);
  assert.equal(ReplyRecord6.ack(rec, 2), 3 * 104729);
  assert.equal(ReplyRecord6.flags(rec, 2), 0x12);
  assert.equal(ReplyRecord6.window(rec, 2), 1003);
  assert.equal(ReplyRecord6.tcpHeaderLen(rec, 2), 40);
  assert.equal(ReplyRecord6.payloadLen(rec, 2), 50);
  assert.ok(rec.subarray(2 + 80, 2 + 128).equals(Buffer.alloc(48)), 'no payload in the plain variant');
  assert.equal(rec[0], 0xee); assert.equal(rec[size + 2], 0xee);
  // Payload variant: 384 bytes, payload after the TCP header.
  const psize = replyRecord6Size(REPLY_RECORD_PAYLOAD_SIZE);
  const prec = Buffer.alloc(psize);
  buildReplyRecord6(prec, 0, psize, true, buf, 0, pk.ip.headerLen, pk.tcp.headerLen, pk.ip.totalLen, buf.length);
  assert.ok(prec.subarray(80, 130).equals(buf.subarray(88, 138)));
  // A payload over 128 bytes is not copied; an impossible TCP header length reads as -1.
  const big = reply6(20, 200, 4);
  buildReplyRecord6(prec, 0, psize, true, big.buf, 0, big.pk.ip.headerLen, 20, big.pk.ip.totalLen, big.buf.length);
  assert.ok(prec.subarray(60, psize).equals(Buffer.alloc(psize - 60)));
  prec[Rec6.DataOff] = 0x40;
  assert.equal(ReplyRecord6.payloadLen(prec, 0), -1);
});

/** A reply stream: [answer] then batches of IPv4 (one slot) and IPv6 (two slots) records. */
function replyStream(answer: boolean, combined: boolean): { stream: Buffer; recs: Buffer[] } {
  const parts: Buffer[] = [];
  if (answer) { const a = Buffer.alloc(8); writeCapabilityAnswer(a, 0, Capability.Ipv6); parts.push(a); }
  const recs: Buffer[] = [];
  const slot = REPLY_RECORD_SIZE;
  const batches = [[4, 6, 4], [6, 6], [4], [6, 4, 4, 6, 6, 6, 6, 6, 6]];
  for (const b of batches) {
    const slots = b.reduce((n, f) => n + (f === 6 ? 2 : 1), 0);
    if (combined) { const c = Buffer.alloc(2); c.writeUInt16BE(slots); parts.push(c); }
    for (const f of b) {
      const r = Buffer.alloc(f === 6 ? 2 * slot : slot);
      for (let i = 0; i < r.length; i++) r[i] = Math.floor(R() * 256);
      r[0] = f === 6 ? 0x60 : 0x45;
      recs.push(r);
      parts.push(r);
    }
  }
  return { stream: Buffer.concat(parts), recs };
}

test('ReplyStreamDecoder: the answer, then one- and two-slot records, at every split; the original stream without one', () => {
  for (const combined of [true, false]) {
    for (const answer of [true, false]) {
      const { stream, recs } = replyStream(answer, combined);
      for (let s = 0; s <= stream.length; s += 1) {
        const got: Buffer[] = [];
        const caps: number[] = [];
        let dec: ReplyStreamDecoder;
        // The owner turns IPv6 on when the answer accepted it (as tcpcopy's link does).
        dec = new ReplyStreamDecoder({ combined, payload: false }, { onReply: (b, o) => { got.push(Buffer.from(b.subarray(o, o + ((b[o] >>> 4) === 6 ? 128 : 64)))); } },
          (c) => { caps.push(c); dec.ipv6 = (c & Capability.Ipv6) !== 0; });
        if (!answer) dec.ipv6 = true; // decoding two-slot records needs the flag only
        for (const c of [stream.subarray(0, s), stream.subarray(s)]) assert.equal(dec.push(c), null, `split ${s}`);
        assert.deepEqual(caps, answer ? [Capability.Ipv6] : [], `split ${s}`);
        assert.equal(got.length, recs.length, `combined ${combined} answer ${answer} split ${s}`);
        for (let i = 0; i < recs.length; i++) assert.ok(got[i].equals(recs[i]), `record ${i} split ${s}`);
        assert.equal(dec.atBoundary, true);
      }
    }
  }
  // An original intercept's stream: a count first, never the answer's mark.
  const orig = Buffer.alloc(2 + 64);
  orig.writeUInt16BE(1, 0); orig[2] = 0x45;
  let called = false, n = 0;
  const d = new ReplyStreamDecoder({ combined: true, payload: false }, { onReply: () => { n++; } }, () => { called = true; });
  assert.equal(d.push(orig), null);
  assert.equal(called, false);
  assert.equal(n, 1);
  // 0xFF then not 0xFF; a wrong magic; a two-slot record in a batch's last slot: named errors.
  for (const bad of [Buffer.from([0xff, 0x01, 0, 0]), Buffer.from('ffff0000000000010001', 'hex'),
    Buffer.concat([Buffer.from('ffff544336580001', 'hex'), Buffer.from([0, 1, 0x60]), Buffer.alloc(127)])]) {
    const e = new ReplyStreamDecoder({ combined: true, payload: false }, { onReply: () => {} }, (c) => { e.ipv6 = c === 1; });
    const err = e.push(bad);
    assert.ok(err !== null, hex(bad.subarray(0, 10)));
    assert.equal(err!.code, 'bad-count');
    assert.equal(e.push(Buffer.alloc(4)), err, 'the error sticks');
  }
});

function listen(icpt: Intercept): Promise<number> {
  return icpt.listen().then((a) => a.port);
}

/** Connects like a tcpcopy, sends `hello`, and collects what intercept sends within `ms`. */
function peer(port: number, hello: (nonce: Buffer | null) => Buffer, withNonce: boolean, ms = 400): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port }, () => { if (!withNonce) s.write(hello(null)); });
    let sent = false;
    s.on('data', (d) => {
      got.push(d);
      const all = Buffer.concat(got);
      if (withNonce && !sent && all.length >= AUTH_NONCE_SIZE) { sent = true; s.write(hello(all.subarray(0, AUTH_NONCE_SIZE))); }
    });
    s.on('error', reject);
    setTimeout(() => { s.destroy(); resolve(Buffer.concat(got)); }, ms);
  });
}

test('our intercept answers an announcement first (after the secret\'s confirmation), and never the original\'s version record', async () => {
  const log = pino({ level: 'silent' });
  const icpt = new Intercept({ ...DEFAULT_INTERCEPT_OPTIONS, port: 0, bindAddress: '127.0.0.1' }, log);
  const port = await listen(icpt);
  try {
    const announce = (): Buffer => { const v = Buffer.alloc(CLIENT_RECORD_SIZE); writeVersionRecord(v, 0, 6, Capability.Ipv6); return v; };
    const ours = await peer(port, announce, false);
    assert.equal(hex(ours), 'FF FF 54 43 36 58 20 01', 'answered first; IPv6 accepted, and our format (FormatKnown, the default format)');
    const original = await peer(port, () => { const v = Buffer.alloc(CLIENT_RECORD_SIZE); writeVersionRecord(v, 0); return v; }, false);
    assert.equal(original.length, 0, 'nothing is sent to a peer that announced nothing');
    assert.equal(icpt.snapshot().extensionPeers, 1);
  } finally {
    await icpt.close();
  }
  // With a shared secret: nonce, confirmation, then the answer.
  const sec = new Intercept({ ...DEFAULT_INTERCEPT_OPTIONS, port: 0, bindAddress: '127.0.0.1', secret: 's3' }, log);
  const sport = await listen(sec);
  try {
    const got = await peer(sport, (nonce) => {
      const b = Buffer.alloc(2 * CLIENT_RECORD_SIZE);
      writeVersionRecord(b, 0, 6, 0);
      writeAuthRecord(b, CLIENT_RECORD_SIZE, authProof('s3', nonce!));
      return b;
    }, true);
    assert.equal(got.length, 2 * AUTH_NONCE_SIZE + CAPABILITY_ANSWER_SIZE, hex(got));
    assert.equal(hex(got.subarray(2 * AUTH_NONCE_SIZE)), 'FF FF 54 43 36 58 20 00', 'nothing accepted (nothing announced); our format said');
  } finally {
    await sec.close();
  }
});

test('ReplyBatcher.reserve2: an IPv6 record takes two slots of one batch and counts two', () => {
  for (const payload of [false, true]) {
    const b = new ReplyBatcher({ combined: true, payload });
    const size = b.size;
    const batches: Buffer[] = [];
    const out = (x: Buffer): void => { batches.push(x); };
    // 1 + 2 + 1 + 2 ... slots: a two-slot record never straddles a batch.
    for (let i = 0; i < 20; i++) {
      if (i % 2 === 0) { const o = b.reserve(out); b.buffer.fill(0x45, o, o + size); }
      else { const o = b.reserve2(out); b.buffer.fill(0x60, o, o + 2 * size); }
    }
    b.flush(out);
    let v6 = 0, v4 = 0;
    for (const x of batches) {
      const n = x.readUInt16BE(0);
      assert.ok(n <= b.max, `batch of ${n} slots`);
      assert.equal(x.length, 2 + n * size);
      for (let at = 2; at < x.length;) {
        if (x[at] === 0x60) { assert.equal(x[at + 2 * size - 1], 0x60, 'both slots in this batch'); v6++; at += 2 * size; }
        else { assert.equal(x[at], 0x45); v4++; at += size; }
      }
    }
    assert.equal(v4, 10);
    assert.equal(v6, 10);
    // The decoder (IPv6 accepted) reads the same stream back as 20 records.
    const recs: number[] = [];
    const dec = new ReplyStreamDecoder({ combined: true, payload }, { onReply: (buf, off) => { recs.push(buf[off]); } });
    dec.ipv6 = true;
    for (const x of batches) assert.equal(dec.push(x), null);
    assert.equal(recs.length, 20);
    assert.deepEqual(recs.filter((r) => r === 0x60).length, 10);
  }
});

/** An IPv6/TCP reply packet from the target to the client, header only (payload length claimed). */
function ipv6Reply(src: string, sport: number, dst: string, dport: number, flags: number, claimed: number): Buffer {
  const b = Buffer.alloc(60);
  b.writeUInt32BE(0x60000000, 0); b.writeUInt16BE(20 + claimed, 4); b[6] = 6; b[7] = 64;
  parseIpv6(src)!.copy(b, 8); parseIpv6(dst)!.copy(b, 24);
  b.writeUInt16BE(sport, 40); b.writeUInt16BE(dport, 42); b.writeUInt32BE(7, 44); b.writeUInt32BE(9, 48);
  b[52] = 5 << 4; b[53] = flags; b.writeUInt16BE(1000, 54);
  return b;
}

test('intercept: CLIENT_ADD6 routes IPv6 replies to its tcpcopy as two-slot records; other addresses have no route; routes give their keys back', async () => {
  const log = pino({ level: 'silent' });
  const icpt = new Intercept({ ...DEFAULT_INTERCEPT_OPTIONS, port: 0, bindAddress: '127.0.0.1' }, log);
  const port = await listen(icpt);
  try {
    const got: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('data', (d) => got.push(d));
    await new Promise<void>((r) => s.once('connect', () => r()));
    const hello = Buffer.alloc(CLIENT_RECORD_SIZE + CLIENT_ADD6_SIZE);
    writeVersionRecord(hello, 0, 6, Capability.Ipv6);
    writeClientAdd6Record(hello, CLIENT_RECORD_SIZE, parseIpv6('2001:2:0:1::10')!, 0, 40000, parseIpv6('2001:2:0:2::30')!, 0, 8080);
    s.write(hello);
    for (let i = 0; i < 50 && icpt.routes6.size === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(icpt.routes6.size, 1);
    assert.equal(icpt.addr6.size, 2, 'the client and target addresses interned');
    const ok = ipv6Reply('2001:2:0:2::30', 8080, '2001:2:0:1::10', 40000, 0x12, 0);
    icpt.onIpPacket(ok, 0, ok.length);
    // An ACK (a SYN-ACK or RST would be held for its CLIENT_ADD6: test/unit/intercept6.test.ts).
    const other = ipv6Reply('2001:2:0:2::30', 8080, '2001:2:0:1::11', 40000, 0x10, 0);
    icpt.onIpPacket(other, 0, other.length);
    const data = ipv6Reply('2001:2:0:2::30', 8080, '2001:2:0:1::10', 40000, 0x18, 700);
    icpt.onIpPacket(data, 0, data.length);
    await new Promise((r) => setTimeout(r, 100));
    const all = Buffer.concat(got);
    assert.equal(hex(all.subarray(0, CAPABILITY_ANSWER_SIZE)), 'FF FF 54 43 36 58 20 01');
    const recs: Buffer[] = [];
    const dec = new ReplyStreamDecoder({ combined: true, payload: false }, { onReply: (b, off) => { recs.push(Buffer.from(b.subarray(off, off + 128))); } });
    dec.ipv6 = true;
    assert.equal(dec.push(all.subarray(CAPABILITY_ANSWER_SIZE)), null);
    assert.equal(recs.length, 2, 'the two replies to the routed client');
    assert.equal(ReplyRecord6.dstPort(recs[0], 0), 40000);
    assert.equal(ReplyRecord6.flags(recs[0], 0), 0x12);
    assert.equal(ReplyRecord6.payloadLen(recs[1], 0), 700);
    assert.equal(recs[1].compare(parseIpv6('2001:2:0:1::10')!, 0, 16, Rec6.DstIp, Rec6.DstIp + 16), 0);
    const st = icpt.snapshot() as Record<string, number>;
    assert.equal(st.clientAdds6, 1);
    assert.equal(st.forwarded6, 2);
    assert.equal(st.noRoute, 1);
    s.destroy();
    for (let i = 0; i < 50 && icpt.tunnels.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(icpt.routes6.size, 0, 'the routes went with their connection');
    assert.equal(icpt.addr6.size, 0, 'and gave their address keys back');
  } finally {
    await icpt.close();
  }
});
