import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  writeClientRecord, writeVersionRecord, buildReplyRecord, ReplyRecord, MsgType, CLIENT_RECORD_SIZE,
  REPLY_RECORD_SIZE, REPLY_RECORD_PAYLOAD_SIZE, COMB_MAX_NUM, COMB_MAX_NUM_PAYLOAD, INTERNAL_VERSION,
  ChannelFormat, recordSize, batchMax, DEFAULT_FORMAT,
} from '../../src/control/records';
import { ReplyStreamDecoder, ClientRecordDecoder, ReplyBatcher, ControlError } from '../../src/control/codec';
import { parseIp } from '../../src/wire/ipv4';
import { mulberry32 } from './prng';

const rng = mulberry32;
const R = rng(0x5eed1);
const randInt = (lo: number, hi: number): number => lo + Math.floor(R() * (hi - lo + 1));
function randBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = randInt(0, 255);
  return b;
}
const hex = (b: Buffer): string => b.toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1 ');

const COMBINED: ChannelFormat = { combined: true, payload: false };
const COMBINED_PAYLOAD: ChannelFormat = { combined: true, payload: true };
const BARE: ChannelFormat = { combined: false, payload: false };
const BARE_PAYLOAD: ChannelFormat = { combined: false, payload: true };

// ---------------------------------------------------------------------------------------------
// Client records.
// ---------------------------------------------------------------------------------------------

test('CLIENT_ADD and version records have the original byte layout', () => {
  const b = Buffer.alloc(CLIENT_RECORD_SIZE, 0xee);
  writeClientRecord(b, 0, MsgType.ClientAdd, parseIp('10.0.0.5'), 40000, parseIp('192.168.0.2'), 8080);
  assert.equal(hex(b), '0A 00 00 05 9C 40 00 01 C0 A8 00 02 1F 90');

  const v = Buffer.alloc(CLIENT_RECORD_SIZE + 4, 0xee);
  writeVersionRecord(v, 2);
  assert.equal(hex(v.subarray(2, 16)), '00 00 00 00 00 00 00 06 00 00 00 00 00 00');
  assert.equal(v[0], 0xee);
  assert.equal(v[1], 0xee);
  assert.equal(v[16], 0xee);
  assert.equal(v[17], 0xee);
  assert.equal(INTERNAL_VERSION, 6);

  // Offsets and the top of the ranges.
  const w = Buffer.alloc(20, 0xee);
  writeClientRecord(w, 3, MsgType.ClientDel, 0xffffffff, 65535, 0x01020304, 1);
  assert.equal(hex(w.subarray(3, 17)), 'FF FF FF FF FF FF 00 02 01 02 03 04 00 01');
  assert.equal(w[2], 0xee);
  assert.equal(w[17], 0xee);
});

// ---------------------------------------------------------------------------------------------
// Reply records.
// ---------------------------------------------------------------------------------------------

interface Pkt { buf: Buffer; ipHl: number; tcpHl: number; totLen: number }

/** An IPv4/TCP reply: IP options of `ipOpt` bytes, TCP header `tcpHl`, payload bytes. */
function reply(ipOpt: number, tcpHl: number, payload: Buffer, lead = 0): Pkt {
  const ipHl = 20 + ipOpt;
  const totLen = ipHl + tcpHl + payload.length;
  const buf = Buffer.alloc(lead + totLen);
  const o = lead;
  buf[o] = 0x40 | (ipHl >> 2);
  buf.writeUInt16BE(totLen, o + 2);
  buf.writeUInt16BE(0x4242, o + 4);
  buf.writeUInt16BE(0x4000, o + 6);
  buf[o + 8] = 64;
  buf[o + 9] = 6;
  buf.writeUInt16BE(0xabcd, o + 10);
  buf.writeUInt32BE(0xc0a80002, o + 12); // from the target 192.168.0.2
  buf.writeUInt32BE(0x0a000005, o + 16); // to the client 10.0.0.5
  for (let i = 0; i < ipOpt; i++) buf[o + 20 + i] = 0xd0 + i; // recognisable IP options
  const t = o + ipHl;
  buf.writeUInt16BE(8080, t);
  buf.writeUInt16BE(40000, t + 2);
  buf.writeUInt32BE(0x01020304, t + 4);
  buf.writeUInt32BE(0xa0b0c0d0, t + 8);
  buf[t + 12] = (tcpHl >> 2) << 4;
  buf[t + 13] = 0x12;
  buf.writeUInt16BE(65160, t + 14);
  buf.writeUInt16BE(0x7777, t + 16);
  // Options: MSS, SACK-perm, TS, NOP, WS, then recognisable filler up to tcpHl.
  const opts = [2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7];
  for (let i = 20; i < tcpHl; i++) buf[t + i] = i - 20 < opts.length ? opts[i - 20] : 0x60 + i;
  payload.copy(buf, t + tcpHl);
  return { buf, ipHl, tcpHl, totLen };
}

function record(p: Pkt, size: number, opts: { dstOff?: number; capEnd?: number; lead?: number } = {}): { dst: Buffer; rec: Buffer } {
  const dstOff = opts.dstOff ?? 5;
  const lead = opts.lead ?? 0;
  const dst = Buffer.alloc(dstOff + size + 7, 0xaa); // dirty around and inside the record
  buildReplyRecord(dst, dstOff, size, p.buf, lead, p.ipHl, p.tcpHl, p.totLen, opts.capEnd ?? p.buf.length);
  assert.ok(dst.subarray(0, dstOff).every((x) => x === 0xaa), 'nothing written before the record');
  assert.ok(dst.subarray(dstOff + size).every((x) => x === 0xaa), 'nothing written after the record');
  return { dst, rec: dst.subarray(dstOff, dstOff + size) };
}

const isZero = (b: Buffer): boolean => b.every((x) => x === 0);

test('reply record from a SYN-ACK with options: IP 20 + TCP 40, zero padded to 64', () => {
  const p = reply(0, 40, Buffer.alloc(0));
  const { dst, rec } = record(p, REPLY_RECORD_SIZE);
  assert.equal(rec.length, 64);
  assert.deepEqual(rec.subarray(0, 60), p.buf.subarray(0, 60));
  assert.ok(isZero(rec.subarray(60)));
  // Accessors.
  const off = 5;
  assert.equal(ReplyRecord.ipHeaderLen(dst, off), 20);
  assert.equal(ReplyRecord.totalLen(dst, off), 60);
  assert.equal(ReplyRecord.srcIp(dst, off), 0xc0a80002);
  assert.equal(ReplyRecord.dstIp(dst, off), 0x0a000005);
  assert.equal(ReplyRecord.srcPort(dst, off), 8080);
  assert.equal(ReplyRecord.dstPort(dst, off), 40000);
  assert.equal(ReplyRecord.seq(dst, off), 0x01020304);
  assert.equal(ReplyRecord.ack(dst, off), 0xa0b0c0d0);
  assert.equal(ReplyRecord.tcpHeaderLen(dst, off), 40);
  assert.equal(ReplyRecord.flags(dst, off), 0x12);
  assert.equal(ReplyRecord.window(dst, off), 65160);
  assert.equal(ReplyRecord.payloadLen(dst, off), 0);
  assert.equal(ReplyRecord.tcpHeaderBytesInRecord(dst, off), 40);
  // The options are where a reader expects them: MSS right after the fixed header.
  assert.equal(dst.readUInt16BE(off + 42), 1460);
});

test('reply record from a packet with IP options: options squeezed out, IHL left as captured', () => {
  const payload = Buffer.from('0123456789');
  const p = reply(8, 32, payload, 3);
  const { dst, rec } = record(p, REPLY_RECORD_SIZE, { lead: 3 });
  assert.deepEqual(rec.subarray(0, 20), p.buf.subarray(3, 23), 'first 20 IP bytes unchanged (checksum too)');
  assert.equal(rec[0], 0x47, 'IHL still says 28 bytes');
  assert.deepEqual(rec.subarray(20, 52), p.buf.subarray(3 + 28, 3 + 28 + 32), 'TCP header at +20');
  assert.ok(isZero(rec.subarray(52)), 'no payload in a 64-byte record');
  assert.equal(rec.indexOf(Buffer.from([0xd0, 0xd1, 0xd2, 0xd3])), -1, 'IP option bytes are not copied');
  assert.equal(ReplyRecord.ipHeaderLen(dst, 5), 28);
  assert.equal(ReplyRecord.srcPort(dst, 5), 8080);
  assert.equal(ReplyRecord.dstPort(dst, 5), 40000);
  assert.equal(ReplyRecord.tcpHeaderLen(dst, 5), 32);
  assert.equal(ReplyRecord.payloadLen(dst, 5), 10);

  // Payload variant: the payload follows the TCP header.
  const big = record(p, REPLY_RECORD_PAYLOAD_SIZE, { lead: 3 });
  assert.deepEqual(big.rec.subarray(0, 52), rec.subarray(0, 52));
  assert.deepEqual(big.rec.subarray(52, 62), payload);
  assert.ok(isZero(big.rec.subarray(62)));
});

test('a 60-byte TCP header is cut to 44 bytes (doff intact)', () => {
  const p = reply(0, 60, Buffer.alloc(0));
  const { dst, rec } = record(p, REPLY_RECORD_SIZE);
  assert.deepEqual(rec.subarray(0, 64), p.buf.subarray(0, 64));
  assert.equal(ReplyRecord.tcpHeaderLen(dst, 5), 60);
  assert.equal(ReplyRecord.tcpHeaderBytesInRecord(dst, 5), 44);
  assert.equal(ReplyRecord.payloadLen(dst, 5), 0);
});

test('payload variant: 1..128 payload bytes copied after the TCP header, >128 not, never beyond 192', () => {
  for (const tcpHl of [20, 32, 40, 60]) {
    for (const plen of [1, 2, 17, 100, 127, 128, 129, 200, 1400]) {
      const payload = randBytes(plen);
      const p = reply(0, tcpHl, payload);
      const { dst, rec } = record(p, REPLY_RECORD_PAYLOAD_SIZE);
      const hdrCopied = Math.min(tcpHl, 44);
      assert.deepEqual(rec.subarray(0, 20 + hdrCopied), p.buf.subarray(0, 20 + hdrCopied), `hdr ${tcpHl}/${plen}`);
      assert.ok(isZero(rec.subarray(20 + hdrCopied, 20 + tcpHl)), 'gap after a cut header stays zero');
      const at = 20 + tcpHl;
      if (plen <= 128) {
        const n = Math.min(plen, 192 - at);
        assert.deepEqual(rec.subarray(at, at + n), payload.subarray(0, n), `payload ${tcpHl}/${plen}`);
        assert.ok(isZero(rec.subarray(at + n)), 'zero padded');
      } else {
        assert.ok(isZero(rec.subarray(at)), `payload ${plen} > 128 not copied`);
      }
      assert.equal(ReplyRecord.totalLen(dst, 5), p.totLen & 0xffff, 'tot_len kept');
      assert.equal(ReplyRecord.payloadLen(dst, 5), plen);
      // The 64-byte variant never carries payload.
      const small = record(p, REPLY_RECORD_SIZE);
      assert.ok(isZero(small.rec.subarray(20 + hdrCopied)));
    }
  }
});

test('header-only captures: payload not captured is not copied, header cut at the capture end', () => {
  const payload = randBytes(50);
  const p = reply(0, 32, payload);
  // Only the headers were captured.
  const { dst, rec } = record(p, REPLY_RECORD_PAYLOAD_SIZE, { capEnd: 52 });
  assert.deepEqual(rec.subarray(0, 52), p.buf.subarray(0, 52));
  assert.ok(isZero(rec.subarray(52)));
  assert.equal(ReplyRecord.payloadLen(dst, 5), 50, 'payload length still from tot_len');
  // Part of the payload captured: only that part is copied.
  const part = record(p, REPLY_RECORD_PAYLOAD_SIZE, { capEnd: 60 });
  assert.deepEqual(part.rec.subarray(52, 60), payload.subarray(0, 8));
  assert.ok(isZero(part.rec.subarray(60)));
  // Capture ends inside the TCP header.
  const cut = record(p, REPLY_RECORD_SIZE, { capEnd: 30 });
  assert.deepEqual(cut.rec.subarray(0, 30), p.buf.subarray(0, 30));
  assert.ok(isZero(cut.rec.subarray(30)));
});

test('ReplyRecord.payloadLen: -1 for impossible lengths', () => {
  const r = Buffer.alloc(64);
  r[0] = 0x45; r[32] = 0x50;
  r.writeUInt16BE(40, 2);
  assert.equal(ReplyRecord.payloadLen(r, 0), 0);
  r.writeUInt16BE(1500, 2);
  assert.equal(ReplyRecord.payloadLen(r, 0), 1460);
  r.writeUInt16BE(39, 2);
  assert.equal(ReplyRecord.payloadLen(r, 0), -1, 'tot_len below the headers');
  r.writeUInt16BE(100, 2);
  r[0] = 0x44;
  assert.equal(ReplyRecord.payloadLen(r, 0), -1, 'IHL 4');
  r[0] = 0x40;
  assert.equal(ReplyRecord.payloadLen(r, 0), -1, 'IHL 0');
  r[0] = 0x45; r[32] = 0x40;
  assert.equal(ReplyRecord.payloadLen(r, 0), -1, 'doff 4');
  r[32] = 0xf0;
  assert.equal(ReplyRecord.payloadLen(r, 0), 100 - 20 - 60);
  assert.equal(ReplyRecord.tcpHeaderBytesInRecord(r, 0), 44);
  r.writeUInt16BE(79, 2);
  assert.equal(ReplyRecord.payloadLen(r, 0), -1);
  r[0] = 0x4f; r[32] = 0x50;
  r.writeUInt16BE(80, 2);
  assert.equal(ReplyRecord.payloadLen(r, 0), 0, 'IHL 60 + doff 20');
});

test('format helpers', () => {
  assert.equal(recordSize(COMBINED), 64);
  assert.equal(recordSize(COMBINED_PAYLOAD), 192);
  assert.equal(batchMax(COMBINED), 16);
  assert.equal(batchMax(BARE_PAYLOAD), 6);
  assert.equal(COMB_MAX_NUM, 16);
  assert.equal(COMB_MAX_NUM_PAYLOAD, 6);
  assert.deepEqual(DEFAULT_FORMAT, { combined: true, payload: false });
});

// ---------------------------------------------------------------------------------------------
// ReplyStreamDecoder.
// ---------------------------------------------------------------------------------------------

class Collect {
  recs: Buffer[] = [];
  constructor(readonly size: number) {}
  onReply(buf: Buffer, off: number): void {
    assert.ok(off >= 0 && off + this.size <= buf.length, 'record lies inside the handed buffer');
    this.recs.push(Buffer.from(buf.subarray(off, off + this.size)));
  }
}

/** Random records framed as the intercept would: batches with a count, or bare. */
function makeStream(f: ChannelFormat, batches: number): { stream: Buffer; recs: Buffer[] } {
  const size = recordSize(f);
  const max = batchMax(f);
  const recs: Buffer[] = [];
  const parts: Buffer[] = [];
  for (let b = 0; b < batches; b++) {
    const c = randInt(1, max);
    if (f.combined) { const h = Buffer.alloc(2); h.writeUInt16BE(c); parts.push(h); }
    for (let i = 0; i < c; i++) { const r = randBytes(size); recs.push(r); parts.push(r); }
  }
  return { stream: Buffer.concat(parts), recs };
}

function decodeChunks(f: ChannelFormat, chunks: Buffer[]): { sink: Collect; dec: ReplyStreamDecoder } {
  const sink = new Collect(recordSize(f));
  const dec = new ReplyStreamDecoder(f, sink);
  for (const c of chunks) assert.equal(dec.push(c), null);
  return { sink, dec };
}

function assertSameRecords(got: Buffer[], want: Buffer[], what: string): void {
  assert.equal(got.length, want.length, `${what}: record count`);
  for (let i = 0; i < want.length; i++) if (!got[i].equals(want[i])) assert.fail(`${what}: record ${i} differs`);
}

for (const [name, f, nb] of [['combined 64', COMBINED, 3], ['combined payload 192', COMBINED_PAYLOAD, 3],
  ['non-combined 64', BARE, 2], ['non-combined 192', BARE_PAYLOAD, 1]] as Array<[string, ChannelFormat, number]>) {
  test(`ReplyStreamDecoder (${name}): split at every byte boundary, byte by byte, random chunks`, () => {
    const { stream, recs } = makeStream(f, nb);
    const nbatches = f.combined ? nb : 0;
    // Whole.
    let r = decodeChunks(f, [stream]);
    assertSameRecords(r.sink.recs, recs, 'whole');
    assert.equal(r.dec.records, recs.length);
    assert.equal(r.dec.batches, nbatches);
    assert.equal(r.dec.atBoundary, true);
    // One split at every position (including empty chunks at both ends).
    for (let s = 0; s <= stream.length; s++) {
      r = decodeChunks(f, [stream.subarray(0, s), stream.subarray(s)]);
      assertSameRecords(r.sink.recs, recs, `split at ${s}`);
      assert.equal(r.dec.atBoundary, true);
    }
    // Two splits around every record boundary region.
    for (let s = 0; s < stream.length; s += 7) {
      const t = Math.min(stream.length, s + randInt(1, 300));
      r = decodeChunks(f, [stream.subarray(0, s), stream.subarray(s, t), stream.subarray(t)]);
      assertSameRecords(r.sink.recs, recs, `splits at ${s}, ${t}`);
    }
    // One byte at a time; track the boundary state.
    const sink = new Collect(recordSize(f));
    const dec = new ReplyStreamDecoder(f, sink);
    for (let i = 0; i < stream.length; i++) {
      assert.equal(dec.push(stream.subarray(i, i + 1)), null);
      if (i < stream.length - 1 && sink.recs.length === recs.length) assert.fail('records delivered early');
    }
    assertSameRecords(sink.recs, recs, 'byte by byte');
    assert.equal(dec.atBoundary, true);
    // Random chunk sizes, several streams back to back.
    for (let n = 0; n < 30; n++) {
      const { stream: s2, recs: r2 } = makeStream(f, randInt(1, 8));
      const chunks: Buffer[] = [];
      for (let i = 0; i < s2.length;) { const k = randInt(0, 400); chunks.push(s2.subarray(i, i + k)); i += k; }
      const rr = decodeChunks(f, chunks);
      assertSameRecords(rr.sink.recs, r2, `random chunks ${n}`);
    }
  });
}

test('ReplyStreamDecoder: atBoundary false inside a count, a batch or a record', () => {
  const { stream } = makeStream(COMBINED, 1);
  const c = stream.readUInt16BE(0);
  const dec = new ReplyStreamDecoder(COMBINED, new Collect(64));
  assert.equal(dec.atBoundary, true);
  dec.push(stream.subarray(0, 1));
  assert.equal(dec.atBoundary, false, 'half a count');
  dec.push(stream.subarray(1, 2));
  assert.equal(dec.atBoundary, false, 'count read, records pending');
  dec.push(stream.subarray(2, 2 + 10));
  assert.equal(dec.atBoundary, false, 'partial record');
  dec.push(stream.subarray(12, 2 + 64));
  assert.equal(dec.atBoundary, c === 1, 'one record of the batch');
  dec.push(stream.subarray(66));
  assert.equal(dec.atBoundary, true);

  const bare = new ReplyStreamDecoder(BARE, new Collect(64));
  bare.push(Buffer.alloc(63));
  assert.equal(bare.atBoundary, false);
  bare.push(Buffer.alloc(1));
  assert.equal(bare.atBoundary, true);
  assert.equal(bare.records, 1);
});

test('ReplyStreamDecoder: bad counts are returned (not thrown) and stick', () => {
  const cases: Array<[ChannelFormat, number]> = [[COMBINED, 0], [COMBINED, 17], [COMBINED, 0xffff],
    [COMBINED_PAYLOAD, 0], [COMBINED_PAYLOAD, 7], [COMBINED_PAYLOAD, 16]];
  for (const [f, count] of cases) {
    for (const split of [false, true]) {
      // A valid batch first, then the bad count.
      const { stream, recs } = makeStream(f, 1);
      const bad = Buffer.alloc(2); bad.writeUInt16BE(count);
      const sink = new Collect(recordSize(f));
      const dec = new ReplyStreamDecoder(f, sink);
      assert.equal(dec.push(stream), null);
      let err: ControlError | null;
      if (split) {
        assert.equal(dec.push(bad.subarray(0, 1)), null);
        err = dec.push(Buffer.concat([bad.subarray(1), randBytes(recordSize(f))]));
      } else {
        err = dec.push(Buffer.concat([bad, randBytes(recordSize(f))]));
      }
      assert.ok(err instanceof ControlError, `count ${count}`);
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'bad-count');
      assert.equal(dec.error, err);
      assertSameRecords(sink.recs, recs, 'records before the bad count were delivered');
      // Later pushes keep returning the error and deliver nothing.
      const again = dec.push(Buffer.from([0, 1, ...randBytes(recordSize(f))]));
      assert.equal(again, err);
      assert.equal(dec.push(Buffer.alloc(0)), err);
      assert.equal(sink.recs.length, recs.length);
    }
  }
  // The largest legal counts are fine.
  for (const f of [COMBINED, COMBINED_PAYLOAD]) {
    const max = batchMax(f);
    const b = Buffer.alloc(2 + max * recordSize(f));
    b.writeUInt16BE(max);
    const { sink, dec } = decodeChunks(f, [b]);
    assert.equal(sink.recs.length, max);
    assert.equal(dec.error, null);
  }
});

// ---------------------------------------------------------------------------------------------
// ClientRecordDecoder.
// ---------------------------------------------------------------------------------------------

interface ClientMsg { type: number; clientIp: number; clientPort: number; targetIp: number; targetPort: number }
class ClientSink {
  versions: number[] = [];
  msgs: ClientMsg[] = [];
  onVersion(v: number): void { this.versions.push(v); }
  onClientRecord(type: number, clientIp: number, clientPort: number, targetIp: number, targetPort: number): void {
    this.msgs.push({ type, clientIp, clientPort, targetIp, targetPort });
  }
}

function clientStream(n: number, version = 6): { stream: Buffer; msgs: ClientMsg[] } {
  const b = Buffer.alloc(CLIENT_RECORD_SIZE * (n + 1));
  writeVersionRecord(b, 0, version);
  const msgs: ClientMsg[] = [];
  for (let i = 0; i < n; i++) {
    const m = {
      type: i % 5 === 4 ? MsgType.ClientDel : MsgType.ClientAdd, clientIp: (R() * 2 ** 32) >>> 0, clientPort: randInt(0, 65535),
      targetIp: (R() * 2 ** 32) >>> 0, targetPort: randInt(0, 65535),
    };
    msgs.push(m);
    writeClientRecord(b, CLIENT_RECORD_SIZE * (i + 1), m.type, m.clientIp, m.clientPort, m.targetIp, m.targetPort);
  }
  return { stream: b, msgs };
}

test('ClientRecordDecoder: version then CLIENT_ADD records, split at every byte', () => {
  const { stream, msgs } = clientStream(12);
  const run = (chunks: Buffer[]): { sink: ClientSink; dec: ClientRecordDecoder } => {
    const sink = new ClientSink();
    const dec = new ClientRecordDecoder(sink);
    for (const c of chunks) assert.equal(dec.push(c), null);
    return { sink, dec };
  };
  for (let s = 0; s <= stream.length; s++) {
    const { sink, dec } = run([stream.subarray(0, s), stream.subarray(s)]);
    assert.deepEqual(sink.versions, [6], `split ${s}`);
    assert.deepEqual(sink.msgs, msgs, `split ${s}`);
    assert.equal(dec.records, msgs.length);
    assert.equal(dec.atBoundary, true);
    assert.equal(dec.handshakeDone, true);
  }
  for (let s = 0; s < stream.length; s++) {
    for (const t of [s + 1, s + 13, s + 14, s + 15, s + 29]) {
      const { sink } = run([stream.subarray(0, s), stream.subarray(s, t), stream.subarray(t)]);
      assert.deepEqual(sink.msgs, msgs, `splits ${s}, ${t}`);
    }
  }
  // Byte by byte, with the handshake state observed.
  const sink = new ClientSink();
  const dec = new ClientRecordDecoder(sink);
  for (let i = 0; i < stream.length; i++) {
    assert.equal(dec.handshakeDone, i >= CLIENT_RECORD_SIZE, `handshake at byte ${i}`);
    assert.equal(dec.atBoundary, i % CLIENT_RECORD_SIZE === 0);
    assert.equal(dec.push(stream.subarray(i, i + 1)), null);
  }
  assert.deepEqual(sink.versions, [6]);
  assert.deepEqual(sink.msgs, msgs);
  // Another version number is reported, and decoding continues.
  const other = clientStream(2, 5);
  const r = run([other.stream]);
  assert.deepEqual(r.sink.versions, [5]);
  assert.deepEqual(r.sink.msgs, other.msgs);
});

test('ClientRecordDecoder: an address in the first record is a client too old', () => {
  const mk = (mutate: (b: Buffer) => void): Buffer => {
    const { stream } = clientStream(2);
    mutate(stream);
    return stream;
  };
  const variants: Array<[string, Buffer]> = [
    ['ip', mk((b) => { b[0] = 10; })],
    ['ip low byte', mk((b) => { b[3] = 1; })],
    ['port', mk((b) => { b[5] = 1; })],
    ['a CLIENT_ADD first', (() => { const b = Buffer.alloc(14); writeClientRecord(b, 0, 1, 0x0a000005, 40000, 0xc0a80002, 8080); return b; })()],
  ];
  for (const [name, stream] of variants) {
    // Whole, and byte by byte: decided as soon as the 8-byte legacy head is in.
    const sink = new ClientSink();
    const dec = new ClientRecordDecoder(sink);
    const e = dec.push(stream);
    assert.ok(e instanceof ControlError, name);
    assert.equal(e.code, 'client-too-old');
    assert.equal(dec.push(Buffer.alloc(14)), e, 'sticks');
    assert.equal(sink.versions.length, 0);
    assert.equal(sink.msgs.length, 0);

    const dec2 = new ClientRecordDecoder(new ClientSink());
    let got: ControlError | null = null;
    let at = -1;
    for (let i = 0; i < stream.length && !got; i++) { got = dec2.push(stream.subarray(i, i + 1)); at = i; }
    assert.ok(got instanceof ControlError);
    assert.equal(got.code, 'client-too-old');
    assert.equal(at, 7, `${name}: detected at the 8th byte`);
  }
  // Non-zero type and target bytes in the first record are fine (that is the version).
  const ok = Buffer.alloc(14);
  ok.writeUInt16BE(6, 6);
  ok.writeUInt32BE(0x01020304, 8);
  const sink = new ClientSink();
  assert.equal(new ClientRecordDecoder(sink).push(ok), null);
  assert.deepEqual(sink.versions, [6]);
});

test('ClientRecordDecoder: random garbage never throws', () => {
  for (let n = 0; n < 3000; n++) {
    const sink = new ClientSink();
    const dec = new ClientRecordDecoder(sink);
    const zeroHead = R() < 0.5;
    let first = true;
    for (let k = randInt(1, 6); k > 0; k--) {
      const c = randBytes(randInt(0, 60));
      if (first && zeroHead) c.fill(0, 0, Math.min(6, c.length));
      first = false;
      const r = dec.push(c);
      assert.ok(r === null || (r instanceof ControlError && r.code === 'client-too-old'));
    }
    if (dec.error === null) {
      assert.ok(sink.versions.length <= 1);
      assert.equal(sink.msgs.length, dec.records);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// ReplyBatcher.
// ---------------------------------------------------------------------------------------------

test('ReplyBatcher: combined batches are count-prefixed (big-endian) and flushed when full', () => {
  const out: Buffer[] = [];
  const sink = (b: Buffer): void => { out.push(b); };
  const b = new ReplyBatcher(COMBINED, 4);
  assert.equal(b.threshold, 4);
  assert.equal(b.flush(sink), 0, 'empty flush is a no-op');
  assert.equal(out.length, 0);
  const recs: Buffer[] = [];
  for (let i = 0; i < 4; i++) {
    const off = b.reserve(sink);
    assert.equal(off, 2 + i * 64);
    const r = randBytes(64); recs.push(r);
    r.copy(b.buffer, off);
  }
  assert.equal(out.length, 0, 'not flushed until the next record needs room');
  assert.equal(b.pending, 4);
  // The fifth record: the full batch goes first.
  const off5 = b.reserve(sink);
  assert.equal(out.length, 1);
  assert.equal(off5, 2);
  assert.equal(b.pending, 1);
  const first = out[0];
  assert.equal(first.length, 2 + 4 * 64);
  assert.equal(first.readUInt16BE(0), 4);
  for (let i = 0; i < 4; i++) assert.deepEqual(first.subarray(2 + i * 64, 2 + (i + 1) * 64), recs[i]);
  const r5 = randBytes(64);
  r5.copy(b.buffer, off5);
  // The flushed batch is not overwritten by later records.
  for (let i = 0; i < 4; i++) assert.deepEqual(first.subarray(2 + i * 64, 2 + (i + 1) * 64), recs[i]);
  assert.equal(b.flush(sink), 1);
  assert.equal(out.length, 2);
  assert.equal(hex(out[1].subarray(0, 2)), '00 01');
  assert.equal(out[1].length, 66);
  assert.deepEqual(out[1].subarray(2), r5);
  assert.equal(b.flush(sink), 0);
  assert.equal(out.length, 2);
});

test('ReplyBatcher: thresholds default and clamp to the batch maximum', () => {
  assert.equal(new ReplyBatcher(COMBINED).threshold, 16);
  assert.equal(new ReplyBatcher(COMBINED, 100).threshold, 16);
  assert.equal(new ReplyBatcher(COMBINED_PAYLOAD).threshold, 6);
  assert.equal(new ReplyBatcher(COMBINED_PAYLOAD, 7).threshold, 6);
  assert.equal(new ReplyBatcher(COMBINED_PAYLOAD, 3).threshold, 3);
  // Full batches at the maximum: 1026 and 1154 bytes.
  for (const [f, total] of [[COMBINED, 1026], [COMBINED_PAYLOAD, 1154]] as Array<[ChannelFormat, number]>) {
    const out: Buffer[] = [];
    const b = new ReplyBatcher(f);
    for (let i = 0; i <= batchMax(f); i++) b.reserve((x) => out.push(x));
    assert.equal(out.length, 1);
    assert.equal(out[0].length, total);
    assert.equal(out[0].readUInt16BE(0), batchMax(f));
  }
});

test('ReplyBatcher: non-combined framing hands over bare records', () => {
  const out: Buffer[] = [];
  const b = new ReplyBatcher(BARE, 3);
  const recs: Buffer[] = [];
  for (let i = 0; i < 5; i++) {
    const off = b.reserve((x) => out.push(x));
    assert.equal(off, (i % 3) * 64);
    const r = randBytes(64); recs.push(r); r.copy(b.buffer, off);
  }
  b.flush((x) => out.push(x));
  assert.equal(out.length, 2);
  assert.equal(out[0].length, 3 * 64);
  assert.equal(out[1].length, 2 * 64);
  assert.deepEqual(Buffer.concat(out), Buffer.concat(recs));
});

test('ReplyBatcher → ReplyStreamDecoder round trip gives back identical records', () => {
  for (const f of [COMBINED, COMBINED_PAYLOAD, BARE, BARE_PAYLOAD]) {
    for (let n = 0; n < 40; n++) {
      const size = recordSize(f);
      const out: Buffer[] = [];
      const sinkFn = (x: Buffer): void => { out.push(x); };
      const b = new ReplyBatcher(f, randInt(0, batchMax(f) + 2));
      const recs: Buffer[] = [];
      const total = randInt(0, 80);
      for (let i = 0; i < total; i++) {
        const off = b.reserve(sinkFn);
        const r = randBytes(size); recs.push(r);
        r.copy(b.buffer, off);
        if (R() < 0.15) b.flush(sinkFn); // end of an event-loop turn
      }
      b.flush(sinkFn);
      assert.equal(b.pending, 0);
      for (const batch of out) {
        if (f.combined) {
          const c = batch.readUInt16BE(0);
          assert.ok(c >= 1 && c <= b.threshold, `count ${c} within 1..${b.threshold}`);
          assert.equal(batch.length, 2 + c * size);
        } else {
          assert.ok(batch.length > 0 && batch.length % size === 0);
        }
      }
      const stream = Buffer.concat(out);
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length;) { const k = randInt(1, 500); chunks.push(stream.subarray(i, i + k)); i += k; }
      const { sink, dec } = decodeChunks(f, chunks);
      assertSameRecords(sink.recs, recs, `round trip ${JSON.stringify(f)} #${n}`);
      assert.equal(dec.atBoundary, true);
      if (f.combined) assert.equal(dec.batches, out.length);
    }
  }
});
