import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

import { buildProbePacket, ProbeSlot } from '../../src/doctor/probe';
import { chooseProbeAddress } from '../../src/doctor/tcpcopy';
import { formatReport, Report } from '../../src/doctor/report';
import {
  CAP_NET_ADMIN, CAP_NET_RAW, effectiveCaps, hasCap, iptablesOutputDrops, listeningInodes, nftOutputDrops,
} from '../../src/doctor/system';
import { buildReplyRecord, REPLY_RECORD_SIZE } from '../../src/control/records';
import { ipv4HeaderChecksum, tcpChecksumValid } from '../../src/wire/checksum';
import { parseIp } from '../../src/wire/ipv4';
import { TcpPacket } from '../../src/wire/packet';
import { WireReason } from '../../src/wire/errors';
import { TcpFlag } from '../../src/wire/tcp';

const PROBE = parseIp('198.18.2.1');
const TARGET = parseIp('198.18.0.30');

test('probe SYN: a valid IPv4/TCP packet with MSS, correct checksums', () => {
  const buf = Buffer.alloc(64);
  const len = buildProbePacket(buf, PROBE, 40001, TARGET, 8080, 0xfffffff0, TcpFlag.SYN, 0x1234, 1400);
  assert.equal(len, 44);
  const p = new TcpPacket();
  assert.equal(p.check(buf, 0, len), WireReason.Ok);
  assert.equal(p.ip.src, PROBE);
  assert.equal(p.ip.dst, TARGET);
  assert.equal(p.tcp.srcPort, 40001);
  assert.equal(p.tcp.dstPort, 8080);
  assert.equal(p.tcp.seq, 0xfffffff0);
  assert.equal(p.tcp.flags, TcpFlag.SYN);
  assert.equal(p.tcp.headerLen, 24);
  assert.equal(buf.readUInt16BE(20 + 22), 1400, 'MSS option');
  assert.equal(ipv4HeaderChecksum(buf, 0, 20), buf.readUInt16BE(10));
  assert.ok(tcpChecksumValid(buf, 0, 20, len - 20));
});

test('probe RST: no options, sequence number wraps, checksums valid', () => {
  const buf = Buffer.alloc(64, 0xff);
  const len = buildProbePacket(buf, PROBE, 40001, TARGET, 8080, 0xffffffff + 1, TcpFlag.RST, 7);
  assert.equal(len, 40);
  const p = new TcpPacket();
  assert.equal(p.check(buf, 0, len), WireReason.Ok);
  assert.equal(p.tcp.seq, 0);
  assert.equal(p.tcp.flags, TcpFlag.RST);
  assert.equal(p.tcp.window, 0);
  assert.ok(tcpChecksumValid(buf, 0, 20, 20));
});

/** A reply record for a packet from the target to (dst, dport) with these flags and ack. */
function record(dst: number, dport: number, sport: number, flags: number, ack: number): Buffer {
  const pkt = Buffer.alloc(64);
  const len = buildProbePacket(pkt, TARGET, sport, dst, dport, 1000, flags & TcpFlag.SYN ? TcpFlag.SYN : TcpFlag.RST, 1);
  pkt[20 + 13] = flags;
  pkt.writeUInt32BE(ack >>> 0, 20 + 8);
  const rec = Buffer.alloc(REPLY_RECORD_SIZE);
  buildReplyRecord(rec, 0, REPLY_RECORD_SIZE, pkt, 0, 20, (pkt[32] >>> 4) << 2, len, len);
  return rec;
}

test('probe verdict: a SYN-ACK acknowledging the ISN is the answer', async () => {
  const s = new ProbeSlot(PROBE, 40001, TARGET, 8080, 0xffffffff);
  assert.equal(s.onReplyRecord(record(PROBE, 40002, 8080, TcpFlag.SYN | TcpFlag.ACK, 0), 0, 'a'), false, 'another port');
  assert.equal(s.onReplyRecord(record(PROBE, 40001, 8081, TcpFlag.SYN | TcpFlag.ACK, 0), 0, 'a'), false, 'another target port');
  assert.equal(s.answer, 'none');
  // A SYN-ACK for another ISN (a stale connection on the same tuple) is not the answer.
  assert.equal(s.onReplyRecord(record(PROBE, 40001, 8080, TcpFlag.SYN | TcpFlag.ACK, 5), 0, 'a'), true);
  assert.equal(s.answer, 'none');
  assert.equal(s.onReplyRecord(record(PROBE, 40001, 8080, TcpFlag.SYN | TcpFlag.ACK, 0), 0, 'icpt-1'), true);
  assert.equal(s.answer, 'syn-ack');
  assert.equal(s.via, 'icpt-1');
  await s.answered;
  // The first answer stays.
  s.onReplyRecord(record(PROBE, 40001, 8080, TcpFlag.RST | TcpFlag.ACK, 0), 0, 'icpt-2');
  assert.equal(s.answer, 'syn-ack');
  assert.equal(s.via, 'icpt-1');
});

test('probe verdict: a RST from the target means nothing listens', () => {
  const s = new ProbeSlot(PROBE, 40001, TARGET, 8080, 41);
  s.onReplyRecord(record(PROBE, 40001, 8080, TcpFlag.RST | TcpFlag.ACK, 42), 0, 'x');
  assert.equal(s.answer, 'rst');
});

test('probe: a captured RST from the probe address before ours is the real client resetting the answer', () => {
  const s = new ProbeSlot(PROBE, 40001, TARGET, 8080, 41);
  const pkt = Buffer.alloc(64);
  const syn = buildProbePacket(pkt, PROBE, 40001, TARGET, 8080, 41, TcpFlag.SYN, 1);
  s.onCapturedPacket(pkt, 0, syn);
  assert.equal(s.clientReset, false, 'our own SYN');
  const otherPort = buildProbePacket(pkt, PROBE, 40009, TARGET, 8080, 42, TcpFlag.RST, 1);
  s.onCapturedPacket(pkt, 0, otherPort);
  assert.equal(s.clientReset, false, 'another connection');
  const rst = buildProbePacket(pkt, PROBE, 40001, TARGET, 8080, 42, TcpFlag.RST, 1);
  s.rstSent = true;
  s.onCapturedPacket(pkt, 0, rst);
  assert.equal(s.clientReset, false, 'our own closing RST');
  s.rstSent = false;
  s.onCapturedPacket(pkt, 0, rst);
  assert.equal(s.clientReset, true);
});

test('capabilities from /proc/self/status', () => {
  const root = effectiveCaps('Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n');
  assert.ok(hasCap(root, CAP_NET_RAW));
  assert.ok(hasCap(root, CAP_NET_ADMIN));
  const dropped = effectiveCaps('CapEff:\t000001ffffffdfff\n');
  assert.equal(hasCap(dropped, CAP_NET_RAW), false);
  assert.ok(hasCap(dropped, CAP_NET_ADMIN));
  assert.equal(effectiveCaps('no such line'), 0n);
});

test('nftables: drop and reject rules on output hooks, not on input', () => {
  const ruleset = `table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		tcp dport 22 accept
		drop
	}
	chain output {
		type filter hook output priority filter; policy accept;
		ip daddr 10.0.0.2 tcp dport 8080 drop
		counter accept
	}
}
table ip strict {
	chain out {
		type filter hook output priority 0; policy drop;
	}
	chain helper {
		reject
	}
}
`;
  const drops = nftOutputDrops(ruleset);
  assert.deepEqual(drops, [
    'inet filter chain output: ip daddr 10.0.0.2 tcp dport 8080 drop',
    'ip strict chain out: policy drop',
  ]);
  assert.deepEqual(nftOutputDrops('table ip t {\n chain o {\n  type filter hook output priority 0; policy accept;\n  accept\n }\n}\n'), []);
});

test('iptables: DROP/REJECT targets and a DROP policy on OUTPUT', () => {
  assert.deepEqual(iptablesOutputDrops('-P OUTPUT ACCEPT\n-A OUTPUT -d 10.0.0.2/32 -p tcp -j DROP\n-A OUTPUT -j ACCEPT\n'),
    ['-A OUTPUT -d 10.0.0.2/32 -p tcp -j DROP']);
  assert.deepEqual(iptablesOutputDrops('-P OUTPUT DROP\n'), ['-P OUTPUT DROP']);
  assert.deepEqual(iptablesOutputDrops('-P OUTPUT ACCEPT\n'), []);
});

test('listening sockets on a port from /proc/net/tcp', () => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:8EAC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:8EAC 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
`;
  assert.deepEqual(listeningInodes(36524, [tcp]), [4242], 'only the LISTEN socket on 36524');
  assert.deepEqual(listeningInodes(80, [tcp]), [4444]);
  assert.deepEqual(listeningInodes(81, [tcp]), []);
});

test('report: exit 1 only when a check failed; lines carry the fix; JSON shape', () => {
  const r = new Report();
  r.add('permissions', 'ok', 'root');
  r.add('capture', 'warn', 'nothing arrived', 'check while clients are active');
  assert.equal(r.ok, true);
  assert.equal(r.exitCode, 0);
  r.add('probe@10.0.0.2:8080', 'fail', 'no answer', 'ip route get 192.168.1.10\nip route add 192.168.1.0/24 via 10.0.0.3');
  assert.equal(r.ok, false);
  assert.equal(r.exitCode, 1);
  const text = formatReport(r);
  const lines = text.trimEnd().split('\n');
  assert.match(lines[0], /^ok\s+permissions\s+root$/);
  assert.match(lines[1], /^warn\s+capture\s+nothing arrived$/);
  assert.match(lines[2], /^\s+fix: check while clients are active$/);
  assert.match(lines[3], /^FAIL\s+probe@10\.0\.0\.2:8080\s+no answer$/);
  assert.match(lines[4], /^\s+fix: ip route get 192\.168\.1\.10$/);
  assert.match(lines[5], /^\s+ip route add 192\.168\.1\.0\/24 via 10\.0\.0\.3$/);
  assert.match(lines[6], /1 check\(s\) failed, 1 warning\(s\)/);
  const j = JSON.parse(JSON.stringify(r.toJSON())) as { ok: boolean; checks: Record<string, string>[] };
  assert.equal(j.ok, false);
  assert.deepEqual(Object.keys(j.checks[0]).sort(), ['detail', 'fix', 'id', 'status']);
  assert.equal(j.checks[2].status, 'fail');
});

test('probe address: the first -c address, else the busiest real client of the capture', () => {
  const seen = new Map<number, number>([
    [parseIp('127.0.0.1'), 900], [parseIp('10.0.0.2'), 800], [parseIp('10.0.0.1'), 700],
    [parseIp('192.168.1.7'), 5], [parseIp('192.168.1.9'), 40],
  ]);
  const targets = new Set([parseIp('10.0.0.2')]);
  const locals = new Set([parseIp('10.0.0.1')]);
  const c = chooseProbeAddress([parseIp('10.9.0.1'), parseIp('10.9.0.2')], seen, targets, locals, 'capture');
  assert.equal(c.addr, parseIp('10.9.0.1'));
  assert.equal(c.from, 'a -c address');
  const fromCapture = chooseProbeAddress([], seen, targets, locals, 'capture');
  assert.equal(fromCapture.addr, parseIp('192.168.1.9'), 'loopback, the target and this host are left out');
  assert.equal(fromCapture.from, 'a client address seen in the capture, 40 packet(s)');
  const none = chooseProbeAddress([], new Map([[parseIp('127.0.0.1'), 3]]), targets, locals, 'file');
  assert.equal(none.addr, 0);
  assert.equal(none.from, '');
});

test('--doctor with wrong flags: the same one-line refusal as a normal run, before any check', () => {
  const bin = path.resolve(__dirname, '../../../bin');
  const tc = spawnSync(process.execPath, [path.join(bin, 'tcpcopy'), '--doctor', '--json', '-s', '198.18.0.40'], { encoding: 'utf8', timeout: 15000 });
  assert.equal(tc.status, 1);
  assert.equal(tc.stdout, '', 'no report');
  assert.match(tc.stderr, /^tcpcopy: missing -x: /);
  assert.equal(tc.stderr.trim().split('\n').length, 1, tc.stderr);
  const ic = spawnSync(process.execPath, [path.join(bin, 'intercept'), '--doctor'], { encoding: 'utf8', timeout: 15000 });
  assert.equal(ic.status, 1);
  assert.match(ic.stderr, /^intercept: missing -F: /);
});
