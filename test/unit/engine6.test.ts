import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Ipv6AddrTable } from '../../src/wire/addr6-table';
import { parseIpv6 } from '../../src/wire/ipv6';
import { findTcpOption, TcpOpt } from '../../src/wire/tcp';
import { ClientConn, F, ONLINE_IP, Rng, TARGET_IP, TARGET_PORT, countFullTcpChecksums, ip, makeRule, noProblems, routeKey, u32 } from './engine-sim';
import { Harness6, map6, routeKey6, TARGET6, toV6 } from './engine6-sim';

const CLIENT_IP = ip('10.6.1.1');
const CLIENT6 = map6(CLIENT_IP);
const R = new Rng(0x6e6e);

// ============================================================================ address table

test('Ipv6AddrTable: keys are negative, found again, refcounted, reused once free, and survive growth', () => {
  const t = new Ipv6AddrTable(256);
  const addrs: Buffer[] = [];
  for (let i = 0; i < 1000; i++) { const a = parseIpv6('2001:2::')!; a.writeUInt32BE(i * 7919, 12); addrs.push(a); }
  const keys = addrs.map((a) => { const k = t.intern(a, 0); t.acquire(k); return k; });
  assert.equal(t.size, 1000);
  assert.equal(new Set(keys).size, 1000, 'distinct keys');
  for (const k of keys) assert.ok(k < 0 && Number.isInteger(k));
  for (let i = 0; i < 1000; i++) {
    assert.equal(t.find(addrs[i], 0), keys[i], 'found after the table grew');
    assert.ok(t.equals(keys[i], addrs[i], 0));
    const out = Buffer.alloc(16);
    t.copyTo(keys[i], out, 0);
    assert.deepEqual(out, addrs[i]);
  }
  // An address inside a larger buffer, at an offset.
  const wide = Buffer.concat([Buffer.alloc(5), addrs[3], Buffer.alloc(3)]);
  assert.equal(t.find(wide, 5), keys[3]);
  t.acquire(keys[3]);
  t.release(keys[3]);
  assert.equal(t.find(addrs[3], 0), keys[3], 'one reference left: still there');
  t.release(keys[3]);
  assert.equal(t.find(addrs[3], 0), 0, 'no reference left: gone');
  assert.equal(t.size, 999);
  const fresh = parseIpv6('2001:2::dead:beef')!;
  const k = t.intern(fresh, 0);
  assert.equal(k, keys[3], 'the free entry is reused');
  t.dropIfUnused(k);
  assert.equal(t.find(fresh, 0), 0, 'an interned address nobody acquired is given back');
  assert.equal(t.size, 999);
});

// ============================================================================ sessions

test('IPv6: captured SYN, one request, FIN: CLIENT_ADD6 first, addresses rewritten, stream intact, closed', () => {
  const h = new Harness6({}, { onRequest: () => ({ kind: 'respond', bytes: 700 }) });
  try {
    const c = new ClientConn(CLIENT_IP, 40000, ONLINE_IP, 80, 1000, 5000, { ts: true, ws: 7 });
    const req = R.bytes(300);
    h.feed(c.syn(), c.hsAck(), c.request(req, 700), c.fin());
    assert.equal(h.sender6.all.length, 1, 'the SYN went out through the IPv6 sender');
    assert.equal(h.sender.all.length, 0, 'nothing through the IPv4 one');
    assert.equal(h.reg.adds.length, 1);
    assert.equal(h.reg.adds[0].key, routeKey6(CLIENT6, 40000, TARGET6, TARGET_PORT));
    h.run();
    noProblems(h);
    const b = h.sender6.all[1].buf;
    assert.equal(b[0] >>> 4, 6);
    assert.deepEqual(b.subarray(24, 40), TARGET6, 'destination: the IPv6 target');
    assert.deepEqual(b.subarray(8, 24), CLIENT6, 'source: the client');
    const conn = h.sim.history[0];
    assert.deepEqual(conn.stream, req);
    assert.ok(conn.finRcvd && conn.finSent);
    const st = h.engine.stats;
    assert.equal(st.handshakes, 1);
    assert.equal(st.sessionsClosed, 1);
    assert.equal(st.requestsSent, 1);
    assert.equal(st.noIpv6Sender, 0);
    // Timestamps negotiated over IPv6 too: TSecr is the target's.
    const sent = h.sent6();
    const d = sent.find((p) => p.payload.length > 0)!;
    const o = findTcpOption(d.buf, 20, d.tcpHl, TcpOpt.Timestamp, 10);
    assert.ok(o >= 0 && d.buf.readUInt32BE(o + 6) !== 5000, 'TSecr rewritten');
  } finally { h.close(); }
});

test('IPv6 keep-alive: four requests on one connection, in order, each after the previous response', () => {
  const resp = [1000, 2500, 10, 3000];
  const h = new Harness6({}, { onRequest: (_c, i) => ({ kind: 'respond', bytes: resp[i] }), respSeg: 1000 });
  try {
    const c = new ClientConn(CLIENT_IP, 40001, ONLINE_IP, 80, 0xfffffe00, 77, { ts: false, ws: 2 });
    const reqs = [R.bytes(200), R.bytes(3100), R.bytes(150), R.bytes(90)];
    const hs = [c.syn(), c.hsAck()];
    const pk: Buffer[][] = [];
    for (let i = 0; i < reqs.length; i++) pk.push(c.request(reqs[i], resp[i], 1448));
    h.feed(hs, ...pk);
    h.run();
    noProblems(h);
    assert.equal(h.sim.history.length, 1);
    assert.deepEqual(h.sim.history[0].stream, Buffer.concat(reqs), 'the stream crosses the 2^32 wrap intact');
    assert.equal(h.sim.history[0].requests, 4);
    assert.equal(h.engine.stats.requestsSent, 4);
  } finally { h.close(); }
});

test('IPv6 without a captured SYN: a fake SYN with MSS, over IPv6', () => {
  const h = new Harness6({ mss: 1400 }, { onRequest: () => ({ kind: 'respond', bytes: 50 }) });
  try {
    const c = new ClientConn(CLIENT_IP, 40002, ONLINE_IP, 80, 123456, 9, { ts: true });
    const r1 = R.bytes(500), r2 = R.bytes(20);
    h.feed(c.request(r1, 50, 300), c.request(r2, 50));
    const syn = h.sent6()[0];
    assert.equal(syn.flags, F.SYN);
    assert.equal(syn.seq, 123456);
    const m = findTcpOption(syn.buf, 20, syn.tcpHl, TcpOpt.Mss, 4);
    assert.ok(m >= 0);
    assert.equal(syn.buf.readUInt16BE(m + 2), 1400);
    h.run();
    noProblems(h);
    assert.deepEqual(h.sim.history[0].stream, Buffer.concat([r1, r2]));
    assert.equal(h.engine.stats.sessionsFaked, 1);
  } finally { h.close(); }
});

test('IPv6 -n 2 -f 1: two sessions on distinct shifted ports, each announced with CLIENT_ADD6, same payloads', () => {
  const h = new Harness6({ copies: 2, portShift: 1 }, { onRequest: () => ({ kind: 'respond', bytes: 400 }) });
  try {
    const c = new ClientConn(CLIENT_IP, 40003, ONLINE_IP, 80, 555, 666, { ts: true, ws: 7 });
    const r1 = R.bytes(1000), r2 = R.bytes(64);
    h.feed(c.syn(), c.hsAck(), c.request(r1, 400, 600), c.request(r2, 400), c.fin());
    h.run();
    noProblems(h);
    assert.equal(h.sim.history.length, 2);
    const [a, b] = h.sim.history;
    assert.notEqual(a.clientPort, b.clientPort);
    assert.ok(!([a.clientPort, b.clientPort].includes(40003)), '-f shifts copy 0 too');
    for (const x of [a, b]) {
      assert.deepEqual(x.stream, Buffer.concat([r1, r2]));
      assert.ok(x.finRcvd);
    }
    const ports = new Set(h.reg.adds.map((x) => x.key));
    assert.equal(ports.size, 2);
    for (const k of ports) assert.ok(k.startsWith(`[2001:2:ff::a06:101]:`), k);
    assert.equal(h.engine.stats.handshakes, 2);
  } finally { h.close(); }
});

test('IPv6 -c: the source comes from the IPv6 list, IPv4 -c addresses are not used for it', () => {
  const list6 = [parseIpv6('2001:2:c::7')!, parseIpv6('2001:2:c::8')!];
  const h = new Harness6({ clientAddrs: [ip('172.16.0.7')], clientAddrs6: list6 }, { onRequest: () => ({ kind: 'respond', bytes: 10 }) });
  try {
    const c = new ClientConn(CLIENT_IP, 40004, ONLINE_IP, 80, 42, 43, {});
    const r = R.bytes(77);
    h.feed(c.syn(), c.hsAck(), c.request(r, 10), c.fin());
    h.run();
    noProblems(h);
    const src = h.sender6.all[0].buf.subarray(8, 24);
    assert.ok(list6.some((a) => a.equals(src)), 'an address of the IPv6 list');
    for (const p of h.sender6.all) assert.deepEqual(p.buf.subarray(8, 24), src, 'every packet of the session from it');
    assert.equal(h.reg.adds[0].key, routeKey6(src, 40004, TARGET6, TARGET_PORT));
    assert.deepEqual(h.sim.history[0].stream, r);
  } finally { h.close(); }
});

test('IPv6: an oversized captured packet is split for the MTU with the 40-byte header counted', () => {
  for (const ts of [false, true]) {
    const h = new Harness6({ mtu: 1500 }, { onRequest: () => ({ kind: 'respond', bytes: 10 }) });
    try {
      const c = new ClientConn(CLIENT_IP, 40013, ONLINE_IP, 80, 0xfffff000, 1, { ts, ws: 7 });
      const req = R.bytes(4000);
      const hs = [c.syn(), c.hsAck()];
      const pk = c.request(req, 10, 4000);
      assert.equal(pk.length, 1);
      h.feed(hs, pk, c.fin());
      h.run();
      noProblems(h);
      const d = h.sender6.all.filter((p) => p.buf.length > 40 + ((p.buf[52] >>> 4) << 2));
      assert.ok(d.length >= 3);
      const tcpHl = ts ? 32 : 20;
      for (const p of d.slice(0, -1)) assert.equal(p.buf.length, 1500, 'full pieces fill the MTU exactly');
      assert.equal(d.reduce((n, p) => n + p.buf.length - 40 - tcpHl, 0), 4000);
      assert.deepEqual(h.sim.history[0].stream, req);
      assert.ok(h.engine.stats.splitPackets >= 1);
    } finally { h.close(); }
  }
});

test('IPv6 checksums: correct captured ones are updated incrementally (pseudo-header addresses too), partial ones recomputed', () => {
  for (const mode of ['full', 'partial'] as const) {
    const h = new Harness6({ clientAddrs6: [parseIpv6('2001:2:c::99')!], copies: 2 }, { onRequest: () => ({ kind: 'respond', bytes: 30 }) });
    try {
      const c = new ClientConn(CLIENT_IP, 40020, ONLINE_IP, 80, 9000, 9100, { ts: true, ws: 7 });
      const pk = [c.syn(), c.hsAck(), c.request(R.bytes(600), 30), c.request(R.bytes(80), 30), c.fin()].flat();
      const full = countFullTcpChecksums(() => {
        for (const x of pk) h.feed6(toV6(x, mode));
        h.run();
      });
      noProblems(h); // every sent packet's checksum verified independently
      assert.equal(h.sim.history.length, 2);
      if (mode === 'full') assert.equal(full, 0, 'no full checksum over a payload: incremental updates only');
      else assert.ok(full >= 4, `partial checksums are computed in full (${full})`);
    } finally { h.close(); }
  }
});

test('IPv6 and IPv4 sessions in one engine at once: both replayed, each through its own sender', () => {
  const rule4 = makeRule(1, 80);
  const h = new Harness6({ copies: 2 }, { onRequest: () => ({ kind: 'respond', bytes: 120 }) }, 3, undefined, rule4);
  try {
    // Same port and the same last 32 bits: only the family tells the sessions apart.
    const c6 = new ClientConn(CLIENT_IP, 41000, ONLINE_IP, 80, 100, 200, { ts: true, ws: 7 });
    const c4 = new ClientConn(CLIENT_IP, 41000, ONLINE_IP, 80, 7100, 7200, { ts: true, ws: 7 });
    const r6 = R.bytes(900), r4 = R.bytes(500);
    const p6 = [c6.syn(), c6.hsAck(), c6.request(r6, 120), c6.fin()].flat();
    const p4 = [c4.syn(), c4.hsAck(), c4.request(r4, 120), c4.fin()].flat();
    h.feed(p6[0]); h.feed4(p4[0]);
    h.run();
    h.feed(p6.slice(1)); h.feed4(p4.slice(1));
    h.run();
    noProblems(h);
    assert.equal(h.engine.stats.handshakes, 4);
    assert.equal(h.engine.stats.sessionsClosed, 4);
    assert.ok(h.sender.all.length > 0 && h.sender6.all.length > 0);
    const adds = h.reg.adds.map((a) => a.key);
    assert.equal(adds.filter((k) => k.startsWith('[')).length, 2, 'two CLIENT_ADD6');
    assert.equal(adds.filter((k) => k.startsWith(`${'10.6.1.1'}:`)).length, 2, 'two CLIENT_ADD');
    assert.ok(adds.includes(routeKey(CLIENT_IP, 41000, TARGET_IP, TARGET_PORT)));
    // The target saw four connections; the streams went to the right ones.
    const streams = h.sim.history.map((x) => x.stream.toString('hex')).sort();
    assert.deepEqual(streams, [r6, r6, r4, r4].map((b) => b.toString('hex')).sort());
  } finally { h.close(); }
});

test('IPv6 sessions give their interned addresses back after the linger; IPv4 sessions intern nothing', () => {
  const h = new Harness6({ copies: 2, lingerMs: 1000 }, { onRequest: () => ({ kind: 'respond', bytes: 10 }) }, 1, undefined, makeRule(1, 80));
  try {
    for (let i = 0; i < 20; i++) {
      const c = new ClientConn(ip(`10.6.2.${i + 1}`), 42000 + i, ONLINE_IP, 80, 1000 * i, 5, {});
      h.feed(c.syn(), c.hsAck(), c.request(R.bytes(40), 10), c.fin());
      const c4 = new ClientConn(ip(`10.4.2.${i + 1}`), 42000 + i, ONLINE_IP, 80, 1000 * i, 5, {});
      h.feed4(c4.syn(), c4.hsAck(), c4.request(R.bytes(40), 10), c4.fin());
    }
    // A pure ACK of a connection nobody replays interns nothing that stays.
    const stray = new ClientConn(ip('10.6.9.9'), 43000, ONLINE_IP, 80, 1, 1, {});
    stray.syn();
    h.feed(stray.hsAck());
    h.run();
    noProblems(h);
    assert.equal(h.engine.stats.sessionsClosed, 80);
    assert.equal(h.engine.addr6.size, 20, 'one entry per IPv6 client while sessions linger');
    h.advance(1500);
    h.sweep();
    assert.equal(h.engine.byReply.size, 0);
    assert.equal(h.engine.addr6.size, 0, 'every entry given back');
  } finally { h.close(); }
});

test('IPv6 sessions with intercepts that lack the IPv6 capability are refused and counted; IPv4 goes on', () => {
  const h = new Harness6({}, { onRequest: () => ({ kind: 'respond', bytes: 10 }) }, 1, undefined, makeRule(1, 80));
  h.reg.ipv6 = false;
  const refused: number[] = [];
  h.engine.onIpv6Refused = (s) => refused.push(s.clientPort);
  try {
    const c = new ClientConn(CLIENT_IP, 44000, ONLINE_IP, 80, 1, 2, {});
    h.feed(c.syn(), c.hsAck(), c.request(R.bytes(50), 10), c.fin());
    const c4 = new ClientConn(CLIENT_IP, 44001, ONLINE_IP, 80, 1, 2, {});
    h.feed4(c4.syn(), c4.hsAck(), c4.request(R.bytes(50), 10), c4.fin());
    h.run();
    noProblems(h);
    assert.equal(h.sender6.all.length, 0, 'nothing sent for the IPv6 session');
    assert.equal(h.engine.stats.ipv6Refused, 1, 'once for the connection');
    assert.equal(h.engine.stats.skippedSessionPackets, 1, 'its request dropped, not tried again');
    assert.equal(h.engine.stats.noIntercept, 0);
    assert.deepEqual(refused, [44000]);
    assert.equal(h.engine.stats.sessionsClosed, 1, 'the IPv4 session is replayed');
  } finally { h.close(); }
});

test('IPv6 reply records: unknown addresses, truncated records and garbage never throw', () => {
  const h = new Harness6({}, { onRequest: () => ({ kind: 'respond', bytes: 10 }) });
  try {
    const c = new ClientConn(CLIENT_IP, 45000, ONLINE_IP, 80, 1, 2, {});
    h.feed(c.syn());
    const st = h.engine.stats;
    const short = Buffer.alloc(64); short[0] = 0x60;
    h.engine.onReply(short, 0, h.now);
    assert.equal(st.badRecords, 1, 'an IPv6 record needs two slots');
    const unknown = Buffer.alloc(128); unknown[0] = 0x60; parseIpv6('2001:2:ee::1')!.copy(unknown, 24);
    h.engine.onReply(unknown, 0, h.now);
    assert.equal(st.repliesNoSession, 1);
    const rng = new Rng(7);
    for (let i = 0; i < 2000; i++) {
      const r = rng.bytes(128);
      r[0] = 0x60 | (r[0] & 0x0f);
      if (i % 2 === 0) { CLIENT6.copy(r, 24); r.writeUInt16BE(45000, 42); }
      h.engine.onReply(r, 0, h.now);
    }
    h.engine.flushAcks();
    for (const p of h.sender6.all) assert.equal(p.buf[0] >>> 4, 6);
    assert.equal(h.sender.all.length, 0);
    assert.equal(u32(st.replies), 2002);
  } finally { h.close(); }
});

test('IPv6 packets without an IPv6 sender are counted, not sent through the IPv4 one', () => {
  const h = new Harness6({}, { onRequest: () => ({ kind: 'respond', bytes: 10 }) });
  h.engine.sender6 = null;
  try {
    const c = new ClientConn(CLIENT_IP, 46000, ONLINE_IP, 80, 1, 2, {});
    h.feed(c.syn());
    assert.equal(h.engine.stats.noIpv6Sender, 1);
    assert.equal(h.sender.all.length, 0);
  } finally { h.close(); }
});


test('reannounce by family: IPv4 sessions when a link is back, IPv6 ones (CLIENT_ADD6) once its capability answer came', () => {
  const rule4 = makeRule(1, 80);
  const h = new Harness6({}, { onRequest: () => ({ kind: 'respond', bytes: 120 }) }, 5, undefined, rule4);
  try {
    const c6 = new ClientConn(CLIENT_IP, 42000, ONLINE_IP, 80, 100, 200, { ts: true, ws: 7 });
    const c4 = new ClientConn(CLIENT_IP, 42001, ONLINE_IP, 80, 7100, 7200, { ts: true, ws: 7 });
    // Both sessions live (handshake done, no FIN).
    h.feed(c6.syn()); h.feed4(c4.syn());
    h.run();
    h.feed(c6.hsAck()); h.feed4(c4.hsAck());
    h.run();
    noProblems(h);
    const mark = h.reg.adds.length;
    const keys = () => h.reg.adds.slice(mark).map((a) => a.key);
    assert.equal(h.engine.reannounce(4), 1);
    assert.deepEqual(keys(), [routeKey(CLIENT_IP, 42001, TARGET_IP, TARGET_PORT)], 'only the IPv4 session');
    assert.equal(h.engine.reannounce(6), 1);
    assert.equal(keys().length, 2);
    assert.ok(keys()[1].startsWith('[2001:2:ff::'), `then only the IPv6 one: ${keys()[1]}`);
    assert.equal(h.engine.reannounce(), 2, 'both without a family');
  } finally { h.close(); }
});
