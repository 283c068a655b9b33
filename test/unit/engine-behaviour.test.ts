/**
 * The session engine's timing and admission rules, on the simulated engine, driven through its
 * public interface with the clock passed in (Harness.now, advance/poll, sweep): SYN and data
 * retransmission, -k / -t, the challenge ACK in SYN-SENT, late and out-of-window replies,
 * -f / -n ports and no-free-port, -H and localhost, -g, capture-behind shedding, -c.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Session } from '../../src/tcpcopy/session';
import { SessionTable, TableKey } from '../../src/tcpcopy/session-table';
import { ClientConn, F, Harness, ONLINE_IP, Parsed, Rng, TARGET_IP, buildPacket, ip, makeRule, parse, u32 } from './engine-sim';

const CLIENT_IP = ip('10.1.1.1');
const R = new Rng(0xbe7a);

/** Clock times (relative to `t0`) at which sent packets matching `pick` went out. */
class SendTimes {
  readonly at: number[] = [];
  constructor(h: Harness, pick: (p: Parsed) => boolean) {
    const before = h.sender.onSend;
    h.sender.onSend = (p) => {
      before?.(p);
      if (pick(parse(p.buf))) this.at.push(h.now);
    };
  }
}

function relative(times: number[], t0: number): number[] { return times.map((t) => t - t0); }

/** Each `got[i]` is within [want[i], want[i] + slack] (timers fire at the next poll after their deadline). */
function assertTimes(got: number[], want: number[], slack: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} sent at ${got.join(', ')}, want ${want.join(', ')}`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(got[i] >= want[i] && got[i] <= want[i] + slack, `${what} #${i}: at ${got[i]} ms, want ${want[i]} ms (+${slack})`);
  }
}

test('SYN retransmission: after 1, 2 and 4 s (4 SYNs), then the session is given up', () => {
  const h = new Harness({}, { auto: false });
  try {
    // The target never answers: the simulated target is not run at all.
    const syns = new SendTimes(h, (p) => (p.flags & F.SYN) !== 0);
    const t0 = h.now;
    const c = new ClientConn(CLIENT_IP, 40100, ONLINE_IP, 80, 5000, 9000, {});
    h.feed(c.syn());
    h.advanceBy(20_000, 10);
    assertTimes(relative(syns.at, t0), [0, 1000, 3000, 7000], 12, 'SYN');
    assert.equal(h.engine.stats.synRetransmissions, 3);
    assert.equal(h.engine.stats.synTimeouts, 1, 'given up after the 4th SYN went unanswered for 8 s');
    assert.equal(h.engine.activeSessions, 0);
    // A fake SYN (session from a data packet) follows the same schedule.
    const h2 = new Harness({}, { auto: false });
    try {
      const fake = new SendTimes(h2, (p) => (p.flags & F.SYN) !== 0);
      const t1 = h2.now;
      const d = new ClientConn(CLIENT_IP, 40101, ONLINE_IP, 80, 6000, 9000, {});
      h2.feed(d.request(R.bytes(50), 10));
      h2.advanceBy(20_000, 10);
      assertTimes(relative(fake.at, t1), [0, 1000, 3000, 7000], 12, 'fake SYN');
      assert.equal(h2.engine.stats.synTimeouts, 1);
    } finally { h2.close(); }
  } finally { h.close(); }
});

test('RTO: doubling from 200 ms up to 4 s, reset by an ack; after 8 retransmissions the session is reset', () => {
  const h = new Harness({}, { auto: false });
  try {
    const c = new ClientConn(CLIENT_IP, 40110, ONLINE_IP, 80, 7000, 9000, {});
    h.feed(c.syn(), c.hsAck());
    h.run(); // SYN-ACK (the target answers handshakes even with auto off), nothing else
    const req = R.bytes(120);
    const data = new SendTimes(h, (p) => p.payload.length > 0);
    const t0 = h.now;
    h.feed(c.request(req, 10));
    h.advanceBy(30_000, 10);
    const rel = relative(data.at, t0);
    // First send at 0, then retransmissions 200, 400, 800, 1600, 3200, 4000, 4000, 4000 ms apart.
    assertTimes(rel, [0, 200, 600, 1400, 3000, 6200, 10200, 14200, 18200], 24, 'data');
    const st = h.engine.stats;
    assert.equal(st.retransmissions, 8);
    assert.equal(st.abortsByReason.retries, 1, 'the 9th timeout ends the session');
    const last = h.sentParsed().at(-1)!;
    assert.equal(last.flags & F.RST, F.RST, 'a RST goes to the target');
    assert.equal(last.seq, u32(7000 + 1 + req.length));
  } finally { h.close(); }

  // An ack of the data resets the backoff: the next request's first timeout is 200 ms again.
  const h2 = new Harness({}, { auto: false });
  try {
    const c = new ClientConn(CLIENT_IP, 40111, ONLINE_IP, 80, 8000, 9000, {});
    h2.feed(c.syn(), c.hsAck());
    h2.run();
    const conn = h2.sim.history[0];
    const r1 = R.bytes(60);
    h2.feed(c.request(r1, 5));
    h2.advanceBy(700, 10); // timeouts at 200 and 600 ms: backoff 2
    assert.equal(h2.engine.stats.retransmissions, 2);
    conn.rcvNxt = u32(conn.rcvNxt + r1.length);
    h2.reply(h2.sim.ack(conn), ...h2.sim.respond(conn, 5));
    const data = new SendTimes(h2, (p) => p.payload.length > 0);
    const t1 = h2.now;
    h2.feed(c.request(R.bytes(70), 5));
    h2.advanceBy(250, 5);
    assertTimes(relative(data.at, t1), [0, 200], 12, 'after an ack');
  } finally { h2.close(); }
});

test('-t and -k: an idle keep-alive session may stay quiet for -k; others for -t; client packets count as activity', () => {
  const opts = { sessionTimeoutMs: 5000, keepaliveTimeoutMs: 20_000 };
  // Keep-alive: the request was answered, nothing is left to send.
  const ka = new Harness(opts, { onRequest: () => ({ kind: 'respond', bytes: 40 }) });
  // Waiting: the target acknowledged nothing (auto off), the request is unacknowledged.
  const waiting = new Harness(opts, { auto: false });
  try {
    for (const h of [ka, waiting]) {
      const c = new ClientConn(CLIENT_IP, 40120, ONLINE_IP, 80, 100, 200, {});
      h.feed(c.syn(), c.hsAck(), c.request(R.bytes(30), 40));
      h.run();
    }
    assert.equal(ka.engine.stats.replyPayloadBytes, 40);
    for (const h of [ka, waiting]) { h.now += 6000; h.sweep(); }
    assert.equal(waiting.engine.stats.sessionsTimedOut, 1, '-t: 6 s without a word from the target');
    assert.equal(waiting.engine.stats.abortsByReason.timeout, 1);
    assert.equal(ka.engine.stats.sessionsTimedOut, 0, '-k applies to the idle keep-alive session');
    ka.now += 13_000; ka.sweep(); // 19 s idle
    assert.equal(ka.engine.stats.sessionsTimedOut, 0);
    ka.now += 2000; ka.sweep(); // 21 s
    assert.equal(ka.engine.stats.sessionsTimedOut, 1, '-k: 21 s idle');
  } finally { ka.close(); waiting.close(); }

  // A client packet is activity too: a pure ACK at 4 s keeps the waiting session past 6 s.
  const h = new Harness(opts, { auto: false });
  try {
    const c = new ClientConn(CLIENT_IP, 40121, ONLINE_IP, 80, 100, 200, {});
    h.feed(c.syn(), c.hsAck(), c.request(R.bytes(30), 40));
    h.run();
    h.now += 4000;
    h.feed(c.pureAck());
    h.now += 2000; h.sweep();
    assert.equal(h.engine.stats.sessionsTimedOut, 0, 'the client spoke 2 s ago');
    h.now += 3500; h.sweep();
    assert.equal(h.engine.stats.sessionsTimedOut, 1);
  } finally { h.close(); }
});

test('challenge ACK in SYN-SENT: a RST at its ack number (no ACK flag), then the SYN again within ~20 ms', () => {
  const h = new Harness({}, { auto: false });
  try {
    const c = new ClientConn(CLIENT_IP, 40130, ONLINE_IP, 80, 3000, 9000, {});
    h.feed(c.syn());
    assert.equal(h.sender.all.length, 1);
    // The target still holds an older connection on this 4-tuple: it answers the SYN with an ACK.
    const oldAck = 0x12345678;
    const rec = buildChallenge(oldAck, 40130);
    h.reply(rec);
    const rst = h.sentParsed().at(-1)!;
    assert.equal(rst.flags, F.RST, 'a bare RST');
    assert.equal(rst.seq, oldAck, 'at the challenge ACK\'s ack number');
    h.advanceBy(30, 2);
    const syns = h.sentParsed().filter((p) => p.flags === F.SYN);
    assert.equal(syns.length, 2, 'the SYN goes again at once, not after 1 s');
    assert.equal(syns[1].seq, 3000);
    assert.equal(h.engine.stats.synRetransmissions, 1);
  } finally { h.close(); }
});

/** A reply record from the target to the client port: ACK only, as a challenge ACK. */
function buildChallenge(ack: number, port: number): Buffer {
  const hdr = buildPacket({ srcIp: TARGET_IP, dstIp: CLIENT_IP, srcPort: 8080, dstPort: port, seq: 777, ack, flags: F.ACK, claimedPayload: 0 });
  const rec = Buffer.alloc(64);
  hdr.copy(rec, 0, 0, 40);
  return rec;
}

test('late replies to an ended session: data gets a RST, a FIN gets an ACK, a RST nothing', () => {
  const h = new Harness({}, { onRequest: () => ({ kind: 'respond', bytes: 100, fin: true }) });
  try {
    const c = new ClientConn(CLIENT_IP, 40140, ONLINE_IP, 80, 100, 200, {});
    h.feed(c.syn(), c.hsAck(), c.request(R.bytes(30), 100), c.fin());
    h.run();
    assert.equal(h.engine.stats.sessionsClosed, 1);
    assert.equal(h.engine.activeSessions, 0);
    const conn = h.sim.history[0];
    const n = h.sender.all.length;
    // Late data (a retransmission the engine had not seen): reset it.
    h.reply(h.sim.record(conn, F.ACK | F.PSH, conn.sndNxt, 50, { ack: 4242 }));
    let p = h.sentParsed().at(-1)!;
    assert.equal(h.sender.all.length, n + 1);
    assert.equal(p.flags, F.RST | F.ACK);
    assert.equal(p.seq, 4242, 'seq = the reply\'s ack');
    assert.equal(p.ack, u32(conn.sndNxt + 50), 'ack = the end of the late data');
    // A late FIN: acknowledged.
    h.reply(h.sim.record(conn, F.FIN | F.ACK, conn.sndNxt));
    p = h.sentParsed().at(-1)!;
    assert.equal(p.flags, F.ACK);
    assert.equal(p.ack, u32(conn.sndNxt + 1));
    // A late RST: no answer.
    h.reply(h.sim.record(conn, F.RST | F.ACK, conn.sndNxt));
    assert.equal(h.sender.all.length, n + 2);
    // After the linger the session is gone: no answer at all.
    h.now += 3000; h.sweep();
    h.reply(h.sim.record(conn, F.ACK | F.PSH, conn.sndNxt, 50));
    assert.equal(h.sender.all.length, n + 2);
    assert.equal(h.engine.stats.repliesNoSession, 1);
  } finally { h.close(); }
});

test('replies far outside the expected sequence space are counted (repliesOutOfWindow) and ignored', () => {
  const h = new Harness({}, { auto: false });
  try {
    const c = new ClientConn(CLIENT_IP, 40150, ONLINE_IP, 80, 100, 200, {});
    h.feed(c.syn(), c.hsAck());
    h.run();
    const conn = h.sim.history[0];
    const far = u32(conn.sndNxt + (1 << 25));
    const n = h.sender.all.length;
    h.reply(h.sim.record(conn, F.RST | F.ACK, far));
    assert.equal(h.engine.stats.repliesOutOfWindow, 1);
    assert.equal(h.engine.activeSessions, 1, 'an old connection\'s RST does not end this one');
    h.reply(h.sim.record(conn, F.ACK | F.PSH, far, 300));
    assert.equal(h.engine.stats.repliesOutOfWindow, 2);
    assert.equal(h.sender.all.length, n, 'not acknowledged');
    // In window: the same data is heard and acknowledged.
    h.reply(h.sim.record(conn, F.ACK | F.PSH, conn.sndNxt, 300));
    assert.equal(h.sentParsed().at(-1)!.ack, u32(conn.sndNxt + 300));
    // A RST in window ends it.
    h.reply(h.sim.record(conn, F.RST | F.ACK, u32(conn.sndNxt + 300)));
    assert.equal(h.engine.activeSessions, 0);
    assert.equal(h.engine.stats.sessionsResetByTarget, 1);
  } finally { h.close(); }
});

test('-f and -n: source ports shifted by 2048 per -f step and 32 per copy (+ one jitter < 512), wrapping into 1024..65535', () => {
  const cases: { opts: { portShift?: number; copies?: number }; port: number; want: [number, number][] }[] = [
    { opts: {}, port: 40000, want: [[40000, 40000]] },
    { opts: { portShift: 1 }, port: 40000, want: [[42048, 42559]] },
    { opts: { portShift: 3 }, port: 40000, want: [[46144, 46655]] },
    { opts: { copies: 2 }, port: 40000, want: [[40000, 40000], [40032, 40543]] },
    { opts: { copies: 3 }, port: 40000, want: [[40000, 40000], [40032, 40543], [40096, 40607]] },
    // 65000 + 2048 + j wraps to 1024 + (67048 + j - 65536).
    { opts: { portShift: 1 }, port: 65000, want: [[2536, 3047]] },
  ];
  for (const k of cases) {
    const h = new Harness(k.opts, { onRequest: () => ({ kind: 'respond', bytes: 10 }) });
    try {
      const c = new ClientConn(CLIENT_IP, k.port, ONLINE_IP, 80, 100, 200, {});
      h.feed(c.syn(), c.hsAck(), c.request(R.bytes(20), 10));
      h.run();
      const ports = h.sim.history.map((x) => x.clientPort).sort((a, b) => a - b);
      assert.equal(ports.length, k.want.length, JSON.stringify(k.opts));
      const jitters = new Set<number>();
      ports.forEach((p, i) => {
        const [lo, hi] = k.want[i];
        assert.ok(p >= lo && p <= hi, `${JSON.stringify(k.opts)} port ${k.port}: copy ${i} sent from ${p}, want ${lo}..${hi}`);
        if (lo !== hi) jitters.add(p - lo);
      });
      assert.ok(jitters.size <= 1, 'one jitter for every shifted port of an instance');
    } finally { h.close(); }
  }
});

test('no-free-port: when all of 1024..65535 of a source address are held, the new session is refused and counted', () => {
  const one = ip('172.16.0.9');
  const h = new Harness({ clientAddrs: [one] }, { auto: false });
  try {
    const rule = makeRule();
    for (let port = 1024; port <= 65535; port++) {
      h.feedRaw(buildPacket({ srcIp: CLIENT_IP, dstIp: ONLINE_IP, srcPort: port, dstPort: 80, seq: port * 3, flags: F.SYN }), rule);
    }
    assert.equal(h.engine.stats.sessionsCreated, 64512);
    assert.equal(h.engine.stats.abortsByReason['no-free-port'], undefined);
    // Another client whose sessions also leave from `one`: its port 5000 is held, and every other one too.
    h.feedRaw(buildPacket({ srcIp: ip('10.1.1.2'), dstIp: ONLINE_IP, srcPort: 5000, dstPort: 80, seq: 1, flags: F.SYN }), rule);
    assert.equal(h.engine.stats.sessionsCreated, 64512);
    assert.equal(h.engine.stats.abortsByReason['no-free-port'], 1);
    assert.equal(h.engine.stats.sessionsAborted, 1);
  } finally { h.close(); }
});

test('a held preferred port: the next free one is used, and ports are not handed out twice', () => {
  const one = ip('172.16.0.9');
  const h = new Harness({ clientAddrs: [one] }, { auto: false });
  try {
    const rule = makeRule();
    const clients = [ip('10.1.1.2'), ip('10.1.1.3'), ip('10.1.1.4'), ip('10.1.1.5')];
    for (const cip of clients) for (let port = 3000; port < 3100; port++) {
      h.feedRaw(buildPacket({ srcIp: cip, dstIp: ONLINE_IP, srcPort: port, dstPort: 80, seq: port, flags: F.SYN }), rule);
    }
    const sent = h.reg.adds.map((a) => a.key);
    assert.equal(sent.length, 400);
    assert.equal(new Set(sent).size, 400, 'each session its own source port');
    const first = h.sentParsed().filter((p) => p.flags === F.SYN).slice(0, 100);
    assert.deepEqual(first.map((p) => p.srcPort), Array.from({ length: 100 }, (_, i) => 3000 + i), 'the first client keeps its ports');
  } finally { h.close(); }
});

test('-H and localhost: 127.0.0.1 clients need -H for a remote target; a local target takes only local clients', () => {
  const LOCAL = 0x7f000001;
  const syn = (src: number, port: number): Buffer => buildPacket({ srcIp: src, dstIp: LOCAL, srcPort: port, dstPort: 80, seq: 1, flags: F.SYN });
  // Remote target, no -H: dropped.
  let h = new Harness({}, { auto: false });
  try {
    h.feedRaw(syn(LOCAL, 40000), makeRule());
    assert.equal(h.engine.stats.localhostDropped, 1);
    assert.equal(h.sender.all.length, 0);
    h.feedRaw(syn(CLIENT_IP, 40001), makeRule());
    assert.equal(h.sender.all.length, 1, 'other clients go on');
  } finally { h.close(); }
  // Remote target with -H: the session leaves from the -H address.
  const H = ip('10.9.9.9');
  h = new Harness({ localhostReplacement: H }, { auto: false });
  try {
    h.feedRaw(syn(LOCAL, 40000), makeRule());
    assert.equal(h.engine.stats.localhostDropped, 0);
    const p = h.sentParsed()[0];
    assert.equal(p.srcIp, H);
    assert.equal(p.srcPort, 40000);
  } finally { h.close(); }
  // A local target (127.0.0.1): local clients are replayed as they are, others dropped.
  const localRule = makeRule(0, 80, LOCAL, 8080);
  h = new Harness({ localhostReplacement: H }, { auto: false }, 1, localRule);
  try {
    h.feedRaw(syn(LOCAL, 40000), localRule);
    assert.equal(h.sentParsed()[0].srcIp, LOCAL, '-H is not applied for a local target');
    h.feedRaw(syn(CLIENT_IP, 40001), localRule);
    assert.equal(h.engine.stats.localhostDropped, 1);
    assert.equal(h.sender.all.length, 1);
  } finally { h.close(); }
});

test('-g: the share of new sessions replayed rises from 1 % to 100 % over ~100 s of traffic', () => {
  const h = new Harness({ gradual: true }, { auto: false });
  try {
    const rule = makeRule();
    let port = 1024;
    const burst = (n: number): number => {
      const before = h.engine.stats.sessionsCreated;
      for (let i = 0; i < n; i++) {
        const src = u32(ip('10.2.0.0') + (port % 4000));
        h.feedRaw(buildPacket({ srcIp: src, dstIp: ONLINE_IP, srcPort: port, dstPort: 80, seq: port, flags: F.SYN }), rule);
        port++;
      }
      return h.engine.stats.sessionsCreated - before;
    };
    const at0 = burst(2000); // 1 %
    h.now += 49_500;
    const at50 = burst(2000); // 50 %
    h.now += 51_000;
    const at100 = burst(2000); // 100 %
    assert.ok(at0 <= 60, `at the start ~1 % of 2000: ${at0}`);
    assert.ok(at50 >= 850 && at50 <= 1150, `after 49.5 s ~50 %: ${at50}`);
    assert.equal(at100, 2000, 'after 100 s everything');
    assert.equal(h.engine.stats.notSampled, 4000 - at0 - at50);
  } finally { h.close(); }
});

test('capture behind: new sessions are refused while the capture catches up, started ones keep every packet', () => {
  const h = new Harness({}, { onRequest: () => ({ kind: 'respond', bytes: 10 }) });
  try {
    const a = new ClientConn(CLIENT_IP, 40160, ONLINE_IP, 80, 100, 200, {});
    h.feed(a.syn(), a.hsAck(), a.request(R.bytes(20), 10));
    h.run();
    h.engine.captureBehind = true;
    const b = new ClientConn(CLIENT_IP, 40161, ONLINE_IP, 80, 100, 200, {});
    h.feed(b.syn(), b.hsAck(), b.request(R.bytes(20), 10));
    const r2 = R.bytes(33);
    h.feed(a.request(r2, 10));
    h.run();
    assert.equal(h.engine.stats.shedCaptureBehind, 2, 'the new SYN refused, and its request (which would start a fake session) too');
    assert.equal(h.sim.history.length, 1);
    assert.equal(h.sim.history[0].stream.length, 20 + 33, 'the started session got its next request');
    h.engine.captureBehind = false;
    const c = new ClientConn(CLIENT_IP, 40162, ONLINE_IP, 80, 100, 200, {});
    h.feed(c.syn(), c.hsAck(), c.request(R.bytes(20), 10));
    h.run();
    assert.equal(h.sim.history.length, 2, 'accepted again once caught up');
  } finally { h.close(); }
});

test('-c: every packet of a session leaves from one list address, a client keeps its address, and clients spread over the list', () => {
  const list = [ip('172.16.0.7'), ip('172.16.0.8'), ip('172.16.0.9')];
  const h = new Harness({ clientAddrs: list }, { onRequest: () => ({ kind: 'respond', bytes: 10 }) });
  try {
    const bySrc = new Map<number, Set<number>>();
    for (let i = 0; i < 60; i++) {
      for (let k = 0; k < 2; k++) {
        const cip = u32(ip('10.3.0.1') + i);
        const c = new ClientConn(cip, 41000 + k, ONLINE_IP, 80, 100, 200, {});
        h.feed(c.syn(), c.hsAck(), c.request(R.bytes(15), 10), c.fin());
      }
    }
    h.run();
    const used = new Set<number>();
    for (const conn of h.sim.history) {
      assert.ok(list.includes(conn.clientIp), 'from the -c list');
      used.add(conn.clientIp);
    }
    for (const p of h.sentParsed()) {
      assert.ok(list.includes(p.srcIp));
    }
    // Which captured client each target connection came from: by its ISN and order of creation.
    h.sim.history.forEach((conn, idx) => {
      const client = Math.floor(idx / 2);
      const set = bySrc.get(client) ?? new Set<number>();
      set.add(conn.clientIp);
      bySrc.set(client, set);
    });
    for (const [client, set] of bySrc) assert.equal(set.size, 1, `client ${client}'s two connections leave from one address`);
    assert.equal(used.size, list.length, 'every list address is used');
    assert.equal(h.sim.history.length, 120);
  } finally { h.close(); }
});

test('SessionTable: get/add/remove by (address, port) through growth, replacing, and removal while iterating in order', () => {
  const t = new SessionTable(TableKey.Reply);
  const ing = new SessionTable(TableKey.Ingress);
  const rule = makeRule();
  const all: Session[] = [];
  for (let i = 0; i < 70_000; i++) {
    const cip = u32(0xc6120000 + (i % 300)), cport = 1024 + Math.floor(i / 300);
    const s = new Session(rule, 0, u32(0x0a000000 + i), 2000 + (i % 60000), cip, cport, 0, () => {});
    t.add(s);
    ing.add(s);
    all.push(s);
  }
  assert.equal(t.size, 70_000);
  assert.equal(ing.size, 70_000);
  for (let i = 0; i < all.length; i += 7) {
    const s = all[i];
    assert.equal(t.get(s.clientIp, s.clientPort), s);
    assert.equal(ing.get(s.ingressIp, s.ingressPort), s);
    assert.equal(t.get(s.clientIp, s.clientPort + 60000), undefined, "no session on a port never added");
  }
  // Removal while iterating: every third session goes; the iteration still visits all, in order.
  let visited = 0;
  for (let s = t.first, i = 0; s !== null; i++) {
    const next = s.nextInOrder;
    assert.equal(s, all[i], 'insertion order');
    if (i % 3 === 0) t.remove(s);
    visited++;
    s = next;
  }
  assert.equal(visited, 70_000);
  assert.equal(t.size, 70_000 - Math.ceil(70_000 / 3));
  assert.equal(t.get(all[0].clientIp, all[0].clientPort), undefined);
  assert.equal(t.get(all[1].clientIp, all[1].clientPort), all[1]);
  assert.deepEqual([...t.values()].slice(0, 3), [all[1], all[2], all[4]]);
  // Adding under a key that is held replaces the session there.
  const twin = new Session(rule, 0, 1, 1, all[1].clientIp, all[1].clientPort, 0, () => {});
  t.add(twin);
  assert.equal(t.get(all[1].clientIp, all[1].clientPort), twin);
  assert.equal(t.size, 70_000 - Math.ceil(70_000 / 3));
  assert.equal([...t.values()].at(-1), twin);
  t.remove(twin);
  t.remove(twin); // not filed any more: nothing happens
  assert.equal(t.get(all[1].clientIp, all[1].clientPort), undefined);
});
