import { test, after } from 'node:test';
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

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
  const eth = patterned(74, 1), raw = patterned(52, 2), spbData = patterned(32, 3), big = patterned(120, 4);
  const nrb = block(4, Buffer.concat([u16(1, le), u16(8, le), Buffer.from([127, 0, 0, 1]), Buffer.from('lo\0\0'), u32(0, le)]), le);
  const isb = block(5, Buffer.concat([u32(0, le), u32(0, le), u32(0, le), endOpt(le)]), le);
  const custom = block(0x00000bad, Buffer.alloc(37, 0x5a), le);
  const file = Buffer.concat([
    shb(le),
    idb(LinkType.Ethernet, 0, le, [option(2, Buffer.from('eth0'), le)]), // if_name, default µs
    idb(LinkType.Raw, 64, le, [option(9, Buffer.from([9]), le), option(14, Buffer.from([100, 0, 0, 0, 0, 0, 0, 0]), le)]), // ns, +100 s
    epb(0, 1700000000n * 1000000n + 654321n, eth, le, 1514),
    nrb,
    epb(1, 1700000001n * 1000000000n + 123456789n, raw, le),
    custom,
    spb(spbData, le, 200), // interface 0 snaplen 0: captured length = block data (32; SPBs carry no caplen)
    isb,
    // Second section, big endian: interface 0 raw IP with 2^-20 s units; interface 1 with 10^-12 s.
    shb(false),
    idb(LinkType.Ipv4, 65535, false, [option(9, Buffer.from([0x80 | 20]), false)]),
    idb(LinkType.LinuxSll2, 65535, false, [option(9, Buffer.from([12]), false)]),
    epb(0, (1234n << 20n) | (1n << 19n), big, false),
    epb(1, 1000n * 1000000000000n + 123456789012n, raw, false),
    spb(spbData, false, 20), // original length 20 < data: captured length 20
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
      [0, LinkType.Ethernet, 0, 0, 32, 200],
      [0, LinkType.Ipv4, 1234, 500000000, 120, 120],
      [1, LinkType.LinuxSll2, 1000, 123456789, 52, 52],
      [0, LinkType.Ipv4, 0, 0, 20, 20],
    ]);
    assert.deepEqual(recs.map((r) => r.recordIndex), [0, 1, 2, 3, 4, 5]);
    assert.ok(recs[0].bytes.equals(eth));
    assert.ok(recs[1].bytes.equals(raw));
    assert.ok(recs[2].bytes.equals(spbData));
    assert.ok(recs[3].bytes.equals(big));
    assert.ok(recs[4].bytes.equals(raw));
    assert.ok(recs[5].bytes.equals(spbData.subarray(0, 20)));
    assert.equal(recs[1].fileOffset, file.indexOf(epb(1, 1700000001n * 1000000000n + 123456789n, raw, le)));
  }
  // libpcap refuses files mixing link types; Wireshark reads them.
  if (haveTshark) assert.equal(toolCount('tshark', f), 6, 'tshark agrees with the hand-built file');
});
