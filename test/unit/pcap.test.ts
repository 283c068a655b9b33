import { test, after, mock } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';

import { PcapError, PcapFileReader, PcapFileWriter } from '../../src/wire/pcap';
import { LinkType, ipv4Offset } from '../../src/wire/link';
import { Ipv4Packet, IPPROTO_TCP } from '../../src/wire/ipv4';
import { TcpSegment } from '../../src/wire/tcp';
import { WireReason } from '../../src/wire/errors';
import { OfflineSource, PASS_WAIT_MS } from '../../src/io/offline';
import { mulberry32 } from './prng';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pcap-test-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let fileSeq = 0;
const tmp = (name: string): string => path.join(dir, `${fileSeq++}-${name}`);

const KNOWN_CODES = new Set(['truncated-header', 'bad-magic', 'bad-version', 'truncated-record', 'bad-record-length', 'bad-block', 'bad-interface']);

interface Rec {
  caplen: number; origLen: number; tsSec: number; tsNsec: number; tsUs: number;
  linkType: number; interfaceId: number; recordIndex: number; fileOffset: number; bytes: Buffer;
}

/** Reads every packet (copying its bytes) and returns them with the stop reason. */
function readAll(file: string, chunk?: number): { recs: Rec[]; error: PcapError | null; reader: PcapFileReader } {
  const r = PcapFileReader.open(file, chunk);
  const recs: Rec[] = [];
  let guard = 0;
  while (r.next()) {
    assert.ok(r.offset >= 0 && r.offset + r.caplen <= r.data.length, 'packet lies inside data');
    recs.push({
      caplen: r.caplen, origLen: r.origLen, tsSec: r.tsSec, tsNsec: r.tsNsec, tsUs: r.tsUs,
      linkType: r.linkType, interfaceId: r.interfaceId, recordIndex: r.recordIndex, fileOffset: r.fileOffset,
      bytes: Buffer.from(r.data.subarray(r.offset, r.offset + r.caplen)),
    });
    assert.ok(++guard < 1e6, 'reader terminates');
  }
  assert.equal(r.next(), false, 'next() stays false once done');
  r.close();
  return { recs, error: r.error, reader: r };
}

function openError(file: string): PcapError {
  try {
    PcapFileReader.open(file).close();
  } catch (e) {
    assert.ok(e instanceof PcapError, `open threw a PcapError, got ${String(e)}`);
    return e;
  }
  assert.fail('open should have thrown');
}

const prng = mulberry32;

function patterned(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

// ------------------------------------------------------------------ pcapng builder

function pad4(b: Buffer): Buffer {
  const p = (4 - (b.length & 3)) & 3;
  return p ? Buffer.concat([b, Buffer.alloc(p)]) : b;
}
function u32(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(4);
  if (le) b.writeUInt32LE(v >>> 0); else b.writeUInt32BE(v >>> 0);
  return b;
}
function u16(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(2);
  if (le) b.writeUInt16LE(v); else b.writeUInt16BE(v);
  return b;
}
function block(type: number, body: Buffer, le: boolean): Buffer {
  const b = pad4(body);
  const len = 12 + b.length;
  return Buffer.concat([u32(type, le), u32(len, le), b, u32(len, le)]);
}
function option(code: number, value: Buffer, le: boolean): Buffer {
  return Buffer.concat([u16(code, le), u16(value.length, le), pad4(value)]);
}
const endOpt = (le: boolean): Buffer => Buffer.concat([u16(0, le), u16(0, le)]);
function shb(le: boolean): Buffer {
  const sectionLen = Buffer.alloc(8, 0xff); // -1: unknown
  return block(0x0a0d0d0a, Buffer.concat([u32(0x1a2b3c4d, le), u16(1, le), u16(0, le), sectionLen]), le);
}
function idb(linkType: number, snaplen: number, le: boolean, opts: Buffer[] = []): Buffer {
  const o = opts.length ? Buffer.concat([...opts, endOpt(le)]) : Buffer.alloc(0);
  return block(1, Buffer.concat([u16(linkType, le), u16(0, le), u32(snaplen, le), o]), le);
}
function epb(ifId: number, ts: bigint, data: Buffer, le: boolean, origLen = data.length): Buffer {
  const hi = Number(ts >> 32n), lo = Number(ts & 0xffffffffn);
  return block(6, Buffer.concat([u32(ifId, le), u32(hi, le), u32(lo, le), u32(data.length, le), u32(origLen, le), data]), le);
}
function spb(data: Buffer, le: boolean, origLen = data.length): Buffer {
  return block(3, Buffer.concat([u32(origLen, le), data]), le);
}

/** A classic pcap file header. */
function pcapHeader(le: boolean, magic: number, snaplen: number, linkType: number): Buffer {
  return Buffer.concat([u32(magic, le), u16(2, le), u16(4, le), u32(0, le), u32(0, le), u32(snaplen, le), u32(linkType, le)]);
}
function pcapRecord(le: boolean, sec: number, frac: number, data: Buffer, incl = data.length, orig = data.length): Buffer {
  return Buffer.concat([u32(sec, le), u32(frac, le), u32(incl, le), u32(orig, le), data]);
}

/**
 * Packet count as tcpdump (or tshark) sees it: one summary line per packet, which starts
 * with the epoch timestamp (tcpdump -tt) or the frame number (tshark); continuation lines of
 * multi-line decodes are indented and not counted.
 */
function toolCount(tool: 'tcpdump' | 'tshark', file: string): number {
  const args = tool === 'tcpdump' ? ['-r', file, '-nn', '-tt'] : ['-n', '-r', file];
  const r = spawnSync(tool, args, { encoding: 'utf8', timeout: 20000, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `${tool} -r failed: ${r.stderr}`);
  const re = tool === 'tcpdump' ? /^\d+\.\d+ / : /^\s*\d+ /;
  return r.stdout.split('\n').filter((l) => re.test(l)).length;
}
const have = (tool: string): boolean => spawnSync(tool, ['--version'], { timeout: 10000 }).status === 0;
const haveTcpdump = have('tcpdump');
const haveTshark = have('tshark');

// ------------------------------------------------------------------ round trips

test('round trip: our writer, our reader (µs, small chunks, records larger than the chunk)', () => {
  const file = tmp('rt-us.pcap');
  const w = PcapFileWriter.create(file, LinkType.Raw, 65535, false, 4096);
  const rnd = prng(1);
  const sent: { len: number; orig: number; sec: number; us: number; seed: number }[] = [];
  const lens = [0, 1, 20, 60, 1500, 9000, 65535, 70000];
  for (let i = 0; i < 3000; i++) {
    const len = i < lens.length ? lens[i] : Math.floor(rnd() * 1600);
    const sec = 1700000000 + i, us = Math.floor(rnd() * 1e6);
    const b = patterned(len, i);
    w.write(b, 0, len, sec, us);
    sent.push({ len: Math.min(len, 65535), orig: len, sec, us, seed: i });
  }
  // A record written from the middle of a bigger buffer, with an explicit original length.
  const big = patterned(100, 99);
  w.write(big, 10, 50, 1, 999999, 1234);
  w.close();
  assert.equal(w.packets, 3001);

  for (const chunk of [64, 4096, undefined]) {
    const { recs, error, reader } = readAll(file, chunk);
    assert.equal(error, null);
    assert.equal(recs.length, 3001);
    assert.equal(reader.packets, 3001);
    assert.equal(reader.bytesRead, fs.statSync(file).size, 'each byte read once');
    assert.equal(reader.format, 'pcap');
    let off = 24;
    for (let i = 0; i < 3000; i++) {
      const s = sent[i], r = recs[i];
      assert.equal(r.caplen, s.len);
      assert.equal(r.origLen, s.orig);
      assert.equal(r.tsSec, s.sec);
      assert.equal(r.tsNsec, s.us * 1000);
      assert.equal(r.tsUs, s.sec * 1e6 + s.us);
      assert.equal(r.linkType, LinkType.Raw);
      assert.equal(r.recordIndex, i);
      assert.equal(r.fileOffset, off);
      assert.ok(r.bytes.equals(patterned(s.orig, s.seed).subarray(0, s.len)), `bytes of packet ${i}`);
      off += 16 + s.len;
    }
    const last = recs[3000];
    assert.deepEqual([last.caplen, last.origLen, last.tsSec, last.tsNsec], [50, 1234, 1, 999999000]);
    assert.ok(last.bytes.equals(big.subarray(10, 60)));
  }
});

test('round trip: nanosecond pcap; tcpdump reads our files', () => {
  const file = tmp('rt-ns.pcap');
  const w = PcapFileWriter.create(file, LinkType.Ethernet, 262144, true);
  for (let i = 0; i < 50; i++) w.write(patterned(60 + i, i), 0, 60 + i, 1700000000 + i, 999999999 - i);
  w.close();
  const { recs, error } = readAll(file);
  assert.equal(error, null);
  assert.equal(recs.length, 50);
  for (let i = 0; i < 50; i++) {
    assert.equal(recs[i].tsSec, 1700000000 + i);
    assert.equal(recs[i].tsNsec, 999999999 - i);
    assert.equal(recs[i].tsUs, (1700000000 + i) * 1e6 + Math.floor((999999999 - i) / 1000));
    assert.equal(recs[i].linkType, LinkType.Ethernet);
    assert.ok(recs[i].bytes.equals(patterned(60 + i, i)));
  }
  if (haveTcpdump) {
    assert.equal(toolCount('tcpdump', file), 50);
    const r = spawnSync('tcpdump', ['-r', file, '-nn', '--time-stamp-precision=nano', '-tt', '-c', '1'], { encoding: 'utf8', timeout: 10000 });
    assert.match(r.stdout, /^1700000000\.999999999 /, 'tcpdump sees our nanosecond timestamp');
  }
});

test('classic pcap: big-endian, nanosecond, Kuznetzov variant, FCS bits, other link types pass through', () => {
  const data = patterned(40, 3);
  const be = tmp('be.pcap');
  fs.writeFileSync(be, Buffer.concat([pcapHeader(false, 0xa1b23c4d, 100, 147), pcapRecord(false, 5, 123456789, data, 40, 80)]));
  let { recs, error, reader } = readAll(be);
  assert.equal(error, null);
  assert.equal(recs.length, 1);
  assert.deepEqual([recs[0].tsSec, recs[0].tsNsec, recs[0].caplen, recs[0].origLen, recs[0].linkType], [5, 123456789, 40, 80, 147]);
  assert.ok(recs[0].bytes.equals(data));
  assert.equal(reader.nanosecond, true);
  assert.equal(reader.snaplen, 100);

  // LINKTYPE_LINUX_SLL with FCS-length bits set in the header's link-type field.
  const fcs = tmp('fcs.pcap');
  fs.writeFileSync(fcs, Buffer.concat([pcapHeader(true, 0xa1b2c3d4, 65535, 113 | 0x10000000 | 0x04000000), pcapRecord(true, 7, 250000, data)]));
  ({ recs, error } = readAll(fcs));
  assert.equal(error, null);
  assert.deepEqual([recs[0].linkType, recs[0].tsUs], [LinkType.LinuxSll, 7250000]);

  // Modified (Kuznetzov) pcap: 24-byte record headers.
  const kz = tmp('kz.pcap');
  const rec = Buffer.concat([u32(9, true), u32(1, true), u32(40, true), u32(40, true), Buffer.alloc(8, 0xee), data]);
  fs.writeFileSync(kz, Buffer.concat([pcapHeader(true, 0xa1b2cd34, 65535, 1), rec, rec]));
  ({ recs, error } = readAll(kz));
  assert.equal(error, null);
  assert.equal(recs.length, 2);
  assert.ok(recs[1].bytes.equals(data));
  assert.equal(recs[1].fileOffset, 24 + rec.length);
});

// ------------------------------------------------------------------ pcapng by hand

test('pcapng: two interfaces (Ethernet µs, raw IP ns), SPB, skipped blocks, a big-endian second section', () => {
  const le = true;
  const eth = patterned(74, 1), raw = patterned(52, 2), spbData = patterned(96, 3), big = patterned(120, 4);
  const nrb = block(4, Buffer.concat([u16(1, le), u16(8, le), Buffer.from([127, 0, 0, 1]), Buffer.from('lo\0\0'), u32(0, le)]), le);
  const isb = block(5, Buffer.concat([u32(0, le), u32(0, le), u32(0, le), endOpt(le)]), le);
  const custom = block(0x80000001, Buffer.alloc(37, 0x5a), le); // local-use block type
  const file = Buffer.concat([
    shb(le),
    idb(LinkType.Ethernet, 96, le, [option(2, Buffer.from('eth0'), le)]), // if_name, default µs
    idb(LinkType.Raw, 64, le, [option(9, Buffer.from([9]), le), option(14, Buffer.from([100, 0, 0, 0, 0, 0, 0, 0]), le)]), // ns, +100 s
    epb(0, 1700000000n * 1000000n + 654321n, eth, le, 1514),
    nrb,
    epb(1, 1700000001n * 1000000000n + 123456789n, raw, le),
    custom,
    spb(spbData, le, 200), // SPBs carry no caplen: min(original length, snaplen 96)
    isb,
    // Second section, big endian: interface 0 raw IP with 2^-20 s units; interface 1 with 10^-12 s.
    shb(false),
    idb(LinkType.Ipv4, 65535, false, [option(9, Buffer.from([0x80 | 20]), false)]),
    idb(LinkType.LinuxSll2, 65535, false, [option(9, Buffer.from([12]), false)]),
    epb(0, (1234n << 20n) | (1n << 19n), big, false),
    epb(1, 1000n * 1000000000000n + 123456789012n, raw, false),
    spb(spbData.subarray(0, 22), false), // 22 bytes + 2 padding: captured length 22
  ]);
  const f = tmp('two-if.pcapng');
  fs.writeFileSync(f, file);
  for (const chunk of [64, 100, undefined]) {
    const { recs, error, reader } = readAll(f, chunk);
    assert.equal(error, null);
    assert.equal(reader.format, 'pcapng');
    // Skipped blocks are stepped over, not read, when they reach beyond the buffer.
    if (chunk === undefined) assert.equal(reader.bytesRead, file.length);
    else assert.ok(reader.bytesRead <= file.length && reader.bytesRead > file.length - 64);
    assert.equal(recs.length, 6);
    assert.deepEqual(recs.map((r) => [r.interfaceId, r.linkType, r.tsSec, r.tsNsec, r.caplen, r.origLen]), [
      [0, LinkType.Ethernet, 1700000000, 654321000, 74, 1514],
      [1, LinkType.Raw, 1700000101, 123456789, 52, 52],
      [0, LinkType.Ethernet, 0, 0, 96, 200],
      [0, LinkType.Ipv4, 1234, 500000000, 120, 120],
      [1, LinkType.LinuxSll2, 1000, 123456789, 52, 52],
      [0, LinkType.Ipv4, 0, 0, 22, 22],
    ]);
    assert.deepEqual(recs.map((r) => r.recordIndex), [0, 1, 2, 3, 4, 5]);
    assert.ok(recs[0].bytes.equals(eth));
    assert.ok(recs[1].bytes.equals(raw));
    assert.ok(recs[2].bytes.equals(spbData));
    assert.ok(recs[3].bytes.equals(big));
    assert.ok(recs[4].bytes.equals(raw));
    assert.ok(recs[5].bytes.equals(spbData.subarray(0, 22)));
    assert.equal(recs[1].fileOffset, file.indexOf(epb(1, 1700000001n * 1000000000n + 123456789n, raw, le)));
  }
  // libpcap refuses files mixing link types; Wireshark reads them.
  if (haveTshark) assert.equal(toolCount('tshark', f), 6, 'tshark agrees with the hand-built file');
});

// ------------------------------------------------------------------ bad input

/** Iterates a reader opened on `file`, or returns the PcapError `open` threw (nothing else may escape). */
function tryRead(file: string, chunk?: number): { openErr: PcapError | null; count: number; error: PcapError | null } {
  let r: PcapFileReader;
  try {
    r = PcapFileReader.open(file, chunk);
  } catch (e) {
    assert.ok(e instanceof PcapError, `open may only throw PcapError, got ${String(e)}`);
    assert.ok(KNOWN_CODES.has(e.code), `open error code ${e.code}`);
    return { openErr: e, count: 0, error: null };
  }
  let count = 0;
  while (r.next()) {
    assert.ok(r.offset >= 0 && r.caplen >= 0 && r.offset + r.caplen <= r.data.length, 'packet inside data');
    assert.equal(r.recordIndex, count);
    assert.ok(++count < 1e6);
  }
  assert.equal(r.packets, count);
  if (r.error !== null) {
    assert.ok(r.error instanceof PcapError);
    assert.ok(KNOWN_CODES.has(r.error.code), `next error code ${r.error.code}`);
    assert.equal(r.error.recordIndex, count);
  }
  r.close();
  return { openErr: null, count, error: r.error };
}

/** Cuts `file` at every byte offset and checks the outcome against the known record ends. */
function checkTruncations(name: string, file: Buffer, headerEnd: number, recordEnds: number[], packetEnds: Set<number>): void {
  const f = tmp(name);
  for (let cut = 0; cut <= file.length; cut++) {
    fs.writeFileSync(f, file.subarray(0, cut));
    for (const chunk of [64, undefined]) {
      const res = tryRead(f, chunk);
      const where = `${name} cut at ${cut} (chunk ${chunk ?? 'default'})`;
      if (cut < headerEnd) {
        assert.ok(res.openErr !== null, `${where}: open must fail`);
        assert.equal(res.openErr.code, 'truncated-header', where);
        continue;
      }
      assert.equal(res.openErr, null, `${where}: open must succeed`);
      const expectPackets = recordEnds.filter((e) => e <= cut && packetEnds.has(e)).length;
      assert.equal(res.count, expectPackets, `${where}: packets`);
      const atBoundary = cut === headerEnd || recordEnds.includes(cut);
      if (atBoundary) {
        assert.equal(res.error, null, `${where}: clean EOF`);
      } else {
        assert.ok(res.error !== null, `${where}: must report an error`);
        assert.equal(res.error.code, 'truncated-record', where);
        const start = [headerEnd, ...recordEnds].filter((e) => e <= cut).pop();
        assert.equal(res.error.fileOffset, start, `${where}: error offset`);
      }
    }
  }
}

test('truncation at every byte offset: classic pcap and pcapng', () => {
  for (const le of [true, false]) {
    const recs = [pcapRecord(le, 1, 2, patterned(10, 1)), pcapRecord(le, 3, 4, Buffer.alloc(0)), pcapRecord(le, 5, 6, patterned(33, 2))];
    const file = Buffer.concat([pcapHeader(le, 0xa1b2c3d4, 65535, 1), ...recs]);
    const ends: number[] = [];
    let o = 24;
    for (const r of recs) ends.push((o += r.length));
    checkTruncations(`cut-${le ? 'le' : 'be'}.pcap`, file, 24, ends, new Set(ends));
  }
  for (const le of [true, false]) {
    const blocks = [
      idb(LinkType.Ethernet, 0, le, [option(9, Buffer.from([6]), le)]),
      epb(0, 1700000000000000n, patterned(14, 1), le),
      block(4, Buffer.concat([u16(0, le), u16(0, le)]), le), // NRB (skipped)
      spb(patterned(9, 2), le),
      idb(LinkType.Raw, 0, le),
      epb(1, 5n, patterned(21, 3), le),
    ];
    const head = shb(le);
    const file = Buffer.concat([head, ...blocks]);
    const ends: number[] = [];
    const packetEnds = new Set<number>();
    let o = head.length;
    for (const b of blocks) {
      ends.push((o += b.length));
      const type = le ? b.readUInt32LE(0) : b.readUInt32BE(0);
      if (type === 6 || type === 3) packetEnds.add(o);
    }
    checkTruncations(`cut-${le ? 'le' : 'be'}.pcapng`, file, head.length, ends, packetEnds);
  }
});

test('random bytes and random corruption never escape as exceptions', () => {
  const rnd = prng(42);
  const f = tmp('fuzz.bin');
  const rbytes = (n: number): Buffer => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
    return b;
  };
  const validPcap = Buffer.concat([pcapHeader(true, 0xa1b2c3d4, 65535, 1), pcapRecord(true, 1, 2, patterned(40, 1)), pcapRecord(true, 3, 4, patterned(60, 2))]);
  const validNg = Buffer.concat([shb(true), idb(1, 0, true, [option(9, Buffer.from([0x80 | 10]), true)]), epb(0, 99n, patterned(40, 1), true),
    spb(patterned(17, 2), true), shb(false), idb(101, 0, false), epb(0, 5n, patterned(20, 3), false)]);
  let errors = 0, openErrors = 0;
  for (let i = 0; i < 3000; i++) {
    let file: Buffer;
    const kind = i % 4;
    if (kind === 0) file = rbytes(Math.floor(rnd() * 600));
    else if (kind === 1) file = Buffer.concat([validPcap.subarray(0, 24), rbytes(Math.floor(rnd() * 600))]);
    else if (kind === 2) file = Buffer.concat([validNg.subarray(0, 28), rbytes(Math.floor(rnd() * 600))]);
    else {
      file = Buffer.from(i % 8 === 3 ? validPcap : validNg);
      for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) file[Math.floor(rnd() * file.length)] = Math.floor(rnd() * 256);
    }
    fs.writeFileSync(f, file);
    const res = tryRead(f, i % 2 === 0 ? 64 : undefined);
    if (res.openErr) openErrors++;
    if (res.error) errors++;
  }
  // Sanity: the fuzz actually reached both failure paths.
  assert.ok(openErrors > 100, `open rejected ${openErrors} inputs`);
  assert.ok(errors > 100, `next stopped with an error ${errors} times`);
});

test('open errors: missing, empty, short, foreign, bad versions, directory', () => {
  assert.equal(openError(path.join(dir, 'does-not-exist.pcap')).code, 'open-failed');
  const f = tmp('open.bin');
  const cases: [Buffer, string][] = [
    [Buffer.alloc(0), 'truncated-header'],
    [Buffer.from([0xd4, 0xc3, 0xb2]), 'truncated-header'],
    [Buffer.from('hello, this is not a capture file at all'), 'bad-magic'],
    [pcapHeader(true, 0xa1b2c3d4, 65535, 1).subarray(0, 20), 'truncated-header'],
    [Buffer.concat([u32(0xa1b2c3d4, true), u16(3, true), Buffer.alloc(18)]), 'bad-version'],
    [Buffer.concat([u32(0x0a0d0d0a, true), u32(28, true), u32(0x12345678, true), Buffer.alloc(16)]), 'bad-magic'],
    [Buffer.concat([u32(0x0a0d0d0a, true), u32(30, true), u32(0x1a2b3c4d, true), Buffer.alloc(18)]), 'bad-block'],
    [block(0x0a0d0d0a, Buffer.concat([u32(0x1a2b3c4d, true), u16(2, true), u16(0, true), Buffer.alloc(8)]), true), 'bad-version'],
    [shb(true).subarray(0, 27), 'truncated-header'],
  ];
  for (const [bytes, code] of cases) {
    fs.writeFileSync(f, bytes);
    const e = openError(f);
    assert.equal(e.code, code, `${bytes.toString('hex').slice(0, 32)}: ${e.message}`);
    assert.ok(e.message.length > 0);
  }
  assert.equal(openError(dir).code, 'read-failed');
});

test('lying lengths stop with named errors at the right record', () => {
  const f = tmp('lie.bin');
  const run = (bytes: Buffer): ReturnType<typeof readAll> => {
    fs.writeFileSync(f, bytes);
    return readAll(f);
  };
  const hdr = pcapHeader(true, 0xa1b2c3d4, 65535, 1);
  const good = pcapRecord(true, 1, 2, patterned(10, 1));
  const at = 24 + good.length;
  const lie = (incl: number, body: number): Buffer => Buffer.concat([hdr, good, pcapRecord(true, 1, 2, patterned(body, 2), incl, incl)]);

  let r = run(lie(0x7fffffff, 10));
  assert.equal(r.recs.length, 1);
  assert.deepEqual([r.error?.code, r.error?.fileOffset, r.error?.recordIndex], ['bad-record-length', at, 1]);
  r = run(lie(262145, 10)); // beyond max(snaplen 65535, 262144)
  assert.equal(r.error?.code, 'bad-record-length');
  r = run(lie(200000, 10)); // within the slack, but beyond the end of the file
  assert.deepEqual([r.error?.code, r.error?.fileOffset, r.recs.length], ['truncated-record', at, 1]);
  assert.ok(r.reader.data.length <= 1024 * 1024, 'no buffer growth for a length past the end of file');
  // Slack above a small snaplen is accepted.
  r = run(Buffer.concat([pcapHeader(true, 0xa1b2c3d4, 100, 1), pcapRecord(true, 1, 2, patterned(1000, 3))]));
  assert.deepEqual([r.error, r.recs.length, r.recs[0]?.caplen], [null, 1, 1000]);
  // A snaplen above 262144 raises the limit.
  r = run(Buffer.concat([pcapHeader(true, 0xa1b2c3d4, 300000, 1), pcapRecord(true, 1, 2, patterned(300000, 4))]));
  assert.deepEqual([r.error, r.recs.length, r.recs[0]?.caplen], [null, 1, 300000]);
  assert.ok(r.recs[0].bytes.equals(patterned(300000, 4)));

  // pcapng
  const le = true;
  const head = Buffer.concat([shb(le), idb(1, 0, le)]);
  const ok = epb(0, 1n, patterned(12, 1), le);
  const ngAt = head.length + ok.length;
  const ng = (...rest: Buffer[]): ReturnType<typeof readAll> => run(Buffer.concat([head, ok, ...rest]));
  const raw = (type: number, len: number, body: Buffer, trail = len): Buffer => Buffer.concat([u32(type, le), u32(len, le), body, u32(trail, le)]);
  const expectNg = (res: ReturnType<typeof readAll>, code: string): void => {
    assert.equal(res.recs.length, 1, code);
    assert.deepEqual([res.error?.code, res.error?.fileOffset, res.error?.recordIndex], [code, ngAt, 1]);
  };
  expectNg(ng(raw(6, 30, Buffer.alloc(24))), 'bad-block'); // not a multiple of 4
  expectNg(ng(raw(6, 8, Buffer.alloc(0))), 'bad-block'); // smaller than 12
  expectNg(ng(raw(4, 8, Buffer.alloc(0))), 'bad-block'); // same for a skipped block type
  expectNg(ng(raw(6, 48, Buffer.alloc(40), 44)), 'bad-block'); // trailing length mismatch
  expectNg(ng(raw(5, 16, Buffer.alloc(4), 20)), 'bad-block'); // mismatch in a skipped block
  expectNg(ng(raw(6, 28, Buffer.alloc(20))), 'bad-block'); // EPB smaller than its fixed part
  const epbBody = (ifId: number, cap: number, dataLen: number): Buffer =>
    Buffer.concat([u32(ifId, le), u32(0, le), u32(0, le), u32(cap, le), u32(cap, le), Buffer.alloc(dataLen)]);
  expectNg(ng(raw(6, 32 + 16, epbBody(0, 17, 16))), 'bad-block'); // caplen beyond the block
  expectNg(ng(raw(6, 32 + 16, epbBody(3, 16, 16))), 'bad-interface'); // undeclared interface
  expectNg(ng(raw(0x0a0d0d0a, 28, Buffer.concat([u32(0xdeadbeef, le), Buffer.alloc(16)]))), 'bad-block'); // SHB without BOM
  expectNg(ng(raw(5, 0xfffffff0, Buffer.alloc(64))), 'truncated-record'); // skipped block past EOF
  const big = ng(raw(6, 0x00fffff0, epbBody(0, 100, 100))); // packet block past EOF, under the cap
  expectNg(big, 'truncated-record');
  assert.ok(big.reader.data.length <= 1024 * 1024, 'no buffer growth for a block past the end of file');
  expectNg(ng(raw(6, 0x7ffffff0, epbBody(0, 100, 100))), 'bad-block'); // beyond the 16 MiB cap
  // SPB before any interface.
  r = run(Buffer.concat([shb(le), spb(patterned(8, 1), le)]));
  assert.deepEqual([r.error?.code, r.recs.length], ['bad-interface', 0]);
  // A new section forgets the old interfaces.
  r = run(Buffer.concat([head, ok, shb(false), epb(0, 1n, patterned(12, 1), false)]));
  assert.deepEqual([r.error?.code, r.recs.length], ['bad-interface', 1]);
});

// ------------------------------------------------------------------ real tools

const LOCALHOST = 0x7f000001;

async function echoServer(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((s) => {
    s.on('data', (d) => s.end(d));
    s.on('error', () => undefined);
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  const a = server.address();
  assert.ok(a !== null && typeof a === 'object');
  return { server, port: a.port };
}

/** One short request/response connection to 127.0.0.1:port, bounded by a timeout. */
function oneConnection(port: number): Promise<void> {
  return new Promise<void>((res) => {
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => s.destroy(), 2000);
    s.on('connect', () => s.write('ping'));
    s.on('data', () => s.end());
    s.on('error', () => undefined);
    s.on('close', () => { clearTimeout(timer); res(); });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs a capture tool that stops by itself after `count` packets, drives connections to
 * `port` until it has, and always kills it (by PID) if it is still running at the end.
 */
async function captureTraffic(cmd: string, args: string[], ready: RegExp, port: number): Promise<{ t0: number; t1: number }> {
  const t0 = Date.now();
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exitCode: number | null = null;
  let exited = false;
  const exitP = new Promise<void>((res) => child.on('exit', (code) => { exited = true; exitCode = code; res(); }));
  child.on('error', (e) => { stderr += String(e); });
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  try {
    const readyBy = Date.now() + 15000;
    while (!exited && !ready.test(stderr)) {
      assert.ok(Date.now() < readyBy, `${cmd} did not start capturing: ${stderr}`);
      await sleep(20);
    }
    assert.ok(!exited, `${cmd} exited early: ${stderr}`);
    const doneBy = Date.now() + 15000;
    while (!exited) {
      assert.ok(Date.now() < doneBy, `${cmd} did not finish its packet count: ${stderr}`);
      await oneConnection(port);
      await Promise.race([exitP, sleep(30)]);
    }
    await exitP;
    assert.equal(exitCode, 0, `${cmd} failed: ${stderr}`);
    return { t0, t1: Date.now() };
  } finally {
    if (!exited && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exitP, sleep(2000)]);
      if (!exited) process.kill(child.pid, 'SIGKILL');
    }
  }
}

/** Checks a capture of loopback TCP traffic on `port`. */
function verifyCapture(file: string, tool: 'tcpdump' | 'tshark', format: 'pcap' | 'pcapng', linkType: number,
  count: number, port: number, t0: number, t1: number, nano: boolean): void {
  const { recs, error, reader } = readAll(file);
  assert.equal(error, null, `read error: ${error?.message}`);
  assert.equal(reader.format, format);
  assert.equal(recs.length, count, 'the tool wrote the packets it was asked for');
  assert.equal(toolCount(tool, file), count, `${tool} -r counts the same packets`);
  const ip = new Ipv4Packet();
  const tcp = new TcpSegment();
  let prev = -Infinity;
  let subMicro = 0;
  for (const r of recs) {
    assert.equal(r.linkType, linkType);
    const l3 = ipv4Offset(r.linkType, r.bytes, 0, r.caplen);
    assert.ok(l3 >= 0, `ipv4Offset: ${l3}`);
    assert.equal(ip.check(r.bytes, l3, r.caplen - l3), WireReason.Ok);
    assert.equal(ip.protocol, IPPROTO_TCP);
    assert.equal(ip.src, LOCALHOST);
    assert.equal(ip.dst, LOCALHOST);
    assert.equal(tcp.check(r.bytes, ip.payloadOffset, ip.len - ip.headerLen), WireReason.Ok);
    assert.ok(tcp.srcPort === port || tcp.dstPort === port, `ports ${tcp.srcPort} → ${tcp.dstPort}`);
    const ns = r.tsSec * 1e9 + r.tsNsec;
    assert.ok(ns >= prev, 'timestamps do not go backwards');
    prev = ns;
    assert.ok(r.tsUs >= (t0 - 2000) * 1000 && r.tsUs <= (t1 + 2000) * 1000, `timestamp ${r.tsUs} near now`);
    assert.ok(r.tsNsec >= 0 && r.tsNsec < 1e9);
    if (r.tsNsec % 1000 !== 0) subMicro++;
  }
  if (nano) assert.ok(subMicro > 0, 'nanosecond capture carries sub-microsecond digits');
  else assert.equal(subMicro, 0, 'microsecond capture');
}

const N = 20;
const captures: { name: string; tool: 'tcpdump' | 'tshark'; args: (f: string, p: number) => string[]; format: 'pcap' | 'pcapng'; link: number; nano: boolean }[] = [
  { name: 'tcpdump -i lo (µs pcap)', tool: 'tcpdump', format: 'pcap', link: LinkType.Ethernet, nano: false,
    args: (f, p) => ['-i', 'lo', '-U', '--immediate-mode', '-w', f, '-c', String(N), `tcp port ${p}`] },
  { name: 'tcpdump -i lo --time-stamp-precision=nano', tool: 'tcpdump', format: 'pcap', link: LinkType.Ethernet, nano: true,
    args: (f, p) => ['-i', 'lo', '-U', '--immediate-mode', '--time-stamp-precision=nano', '-w', f, '-c', String(N), `tcp port ${p}`] },
  { name: 'tcpdump -i any -y LINUX_SLL', tool: 'tcpdump', format: 'pcap', link: LinkType.LinuxSll, nano: false,
    args: (f, p) => ['-i', 'any', '-y', 'LINUX_SLL', '-U', '--immediate-mode', '-w', f, '-c', String(N), `tcp port ${p}`] },
  { name: 'tcpdump -i any -y LINUX_SLL2', tool: 'tcpdump', format: 'pcap', link: LinkType.LinuxSll2, nano: false,
    args: (f, p) => ['-i', 'any', '-y', 'LINUX_SLL2', '-U', '--immediate-mode', '-w', f, '-c', String(N), `tcp port ${p}`] },
  { name: 'tshark -F pcapng', tool: 'tshark', format: 'pcapng', link: LinkType.Ethernet, nano: true,
    args: (f, p) => ['-i', 'lo', '-F', 'pcapng', '-w', f, '-c', String(N), '-f', `tcp port ${p}`] },
  { name: 'tshark -F pcap', tool: 'tshark', format: 'pcap', link: LinkType.Ethernet, nano: false,
    args: (f, p) => ['-i', 'lo', '-F', 'pcap', '-w', f, '-c', String(N), '-f', `tcp port ${p}`] },
];

// Capturing (even on lo) needs root or CAP_NET_RAW; without them the tool fails, so the test
// would fail for a reason that is not ours.
const captureRoot = typeof process.getuid === 'function' && process.getuid() === 0;
for (const c of captures) {
  const missing = c.tool === 'tcpdump' ? !haveTcpdump : !haveTshark;
  const skip = missing ? `${c.tool} not installed` : !captureRoot ? `${c.tool} needs root to capture on lo (run as root)` : false;
  test(`real capture: ${c.name}`, { skip, timeout: 30000 }, async () => {
    const { server, port } = await echoServer();
    try {
      const file = tmp(`cap.${c.format}`);
      const ready = c.tool === 'tcpdump' ? /listening on/ : /Capturing on/;
      const { t0, t1 } = await captureTraffic(c.tool, c.args(file, port), ready, port);
      verifyCapture(file, c.tool, c.format, c.link, N, port, t0, t1, c.nano);
    } finally {
      server.close();
    }
  });
}

test('-T: the next pass starts once the last pass\'s sessions are over, or after PASS_WAIT_MS at most', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offline-passes-'));
  const file = path.join(dir, 'three.pcap');
  const ip = Buffer.alloc(40);
  ip[0] = 0x45; ip.writeUInt16BE(40, 2); ip[9] = IPPROTO_TCP; ip[32] = 0x50;
  fs.writeFileSync(file, Buffer.concat([pcapHeader(true, 0xa1b2c3d4, 65535, LinkType.Raw),
    pcapRecord(true, 10, 0, ip), pcapRecord(true, 10, 1000, ip), pcapRecord(true, 10, 2000, ip)]));
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 5_000_000 });
  try {
    for (const neverIdle of [false, true]) {
      let idle = false;
      let packets = 0;
      const src = new OfflineSource({ path: file, accel: 1, idleCutMs: 0, passes: 2, passIdle: () => !neverIdle && idle },
        { onIpPacket: () => { packets++; }, onRejected: () => assert.fail('a valid packet rejected') });
      src.start();
      for (let i = 0; i < 10; i++) mock.timers.tick(10);
      assert.equal(packets, 3, 'the first pass');
      for (let i = 0; i < 50; i++) mock.timers.tick(20);
      assert.equal(packets, 3, 'the second pass waits while sessions of the first are open');
      if (!neverIdle) {
        idle = true;
        for (let i = 0; i < 10; i++) mock.timers.tick(10);
        assert.equal(packets, 6, 'then it runs');
        assert.ok(src.progress.passWaitMs >= 1000 && src.progress.passWaitMs < 1200, `waited ${src.progress.passWaitMs} ms`);
      } else {
        for (let t = 0; t < PASS_WAIT_MS; t += 1000) mock.timers.tick(1000);
        for (let i = 0; i < 10; i++) mock.timers.tick(10);
        assert.equal(packets, 6, 'sessions that never end hold the next pass back for PASS_WAIT_MS at most');
      }
      assert.equal(src.finished, true);
      src.stop();
    }
  } finally {
    mock.timers.reset();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
