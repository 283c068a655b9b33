/**
 * IPv6 in the lab (issue #18): the bed with IPv6 addresses from 2001:2::/48 beside the IPv4
 * ones, and what this build does over IPv6 so far: the control channel. tcpcopy reaches
 * intercept at an IPv6 address (`-s [2001:2::40]:36524`), intercept listens on IPv6 (`-b`) and
 * admits tcpcopy by its IPv6 address (`-x` passlist), while the replayed traffic is IPv4; and
 * a dual-stack intercept (`-b ::`) admits an IPv4 tcpcopy listed by its IPv4 address. Requests
 * and request bytes at the target equal the online server's.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Testbed, TARGET_IP, ASSISTANT_IP6, ONLINE_IP6, TARGET_IP6, HttpServerHandle, HttpServerStats, CLIENT_NET6, EXTRA_NET6, compareDigests, digestDelta } from '../../lab/testbed';
import { BIN, DaemonHandle, num, startDaemon, waitFor } from '../../lab/daemons';
import { buildPeers, DEFAULT_PEERS_DIR } from '../../bench/peers';
import { originalPair } from '../../bench/pairs';

const isRoot = process.getuid?.() === 0;

interface Count { requests: number; bytes: number }
const delta = (a: Count, b: Count): Count => ({ requests: b.requests - a.requests, bytes: b.bytes - a.bytes });
function bodyOf(s: HttpServerStats): number {
  let n = 0;
  for (const [ip, v] of Object.entries(s.perClient)) if (fromClients6(ip)) n += v.bodyBytes;
  return n;
}
function count(s: HttpServerStats, keep: (ip: string) => boolean): Count {
  const c: Count = { requests: 0, bytes: 0 };
  for (const [ip, v] of Object.entries(s.perClient)) {
    if (!keep(ip)) continue;
    c.requests += v.requests;
    c.bytes += v.headerBytes + v.bodyBytes;
  }
  return c;
}
const fromClients = (ip: string): boolean => ip.startsWith('198.18.1.');
const fromClients6 = (ip: string): boolean => ip.startsWith('2001:2:0:1::');

describe('IPv6 in network namespaces', { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  let tb: Testbed;
  let online: HttpServerHandle;
  let target: HttpServerHandle;
  const daemons: DaemonHandle[] = [];

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 4, ipv6: true });
    online = await tb.startHttpServer('online', 80, { body: 300 });
    target = await tb.startHttpServer('target', 8080, { body: 300 });
  });

  after(async () => {
    for (const d of daemons) await d.stop();
    if (tb) await tb.destroy();
  });

  /** Replays `run` and returns what the online server and the target served meanwhile. */
  async function measure(run: () => Promise<unknown>): Promise<{ o: Count; t: Count }> {
    const o0 = count(await online.stats(), fromClients);
    const t0 = count(await target.stats(), fromClients);
    await run();
    const o1 = count(await online.stats(), fromClients);
    const o = { requests: o1.requests - o0.requests, bytes: o1.bytes - o0.bytes };
    let t = { requests: 0, bytes: 0 };
    let last = -1, stable = Date.now();
    await waitFor(async () => {
      const t1 = count(await target.stats(), fromClients);
      t = { requests: t1.requests - t0.requests, bytes: t1.bytes - t0.bytes };
      if (t.requests !== last) { last = t.requests; stable = Date.now(); }
      return t.requests >= o.requests || Date.now() - stable > 2500;
    }, 20000, 300);
    return { o, t };
  }

  test('the bed: IPv6 addresses from 2001:2::/48 (nodad: not tentative), routes via the assistant, forwarding 0 there', async () => {
    for (const host of ['client', 'online', 'target', 'assistant'] as const) {
      const out = tb.execSync(host, 'ip', ['-6', 'addr', 'show', 'dev', tb.dev(host), 'scope', 'global']);
      const addrs = [...out.matchAll(/inet6 ([0-9a-f:]+)\/64/g)].map((m) => m[1]);
      assert.ok(addrs.includes(tb.ip6(host)), `${host}: ${out}`);
      for (const a of addrs) assert.ok(a.startsWith('2001:2:'), `${host} has ${a}`);
      assert.doesNotMatch(out, /tentative/, `${host}: DAD is off`);
    }
    assert.deepEqual(tb.clientIps6, ['2001:2:0:1::10', '2001:2:0:1::11', '2001:2:0:1::12', '2001:2:0:1::13']);
    assert.match(tb.execSync('target', 'ip', ['-6', 'route', 'get', tb.clientIps6[2]]), new RegExp(`via ${ASSISTANT_IP6} `));
    assert.match(tb.execSync('target', 'ip', ['-6', 'route', 'show', CLIENT_NET6]), new RegExp(`via ${ASSISTANT_IP6}`));
    assert.equal(tb.execSync('assistant', 'sysctl', ['-n', 'net.ipv6.conf.all.forwarding']).trim(), '0');
    // Real IPv6 traffic: a server on the online host's IPv6 address, loaded from IPv6 clients.
    const v6srv = await tb.startHttpServer('online', 81, { body: 200, listenHost: ONLINE_IP6 });
    try {
      const load = await tb.runLoad({ url: `http://[${ONLINE_IP6}]:81/`, requests: 200, concurrency: 4, localAddrs: tb.clientIps6 });
      assert.equal(load.errors, 0);
      assert.equal(load.ok, 200);
      const s = await v6srv.stats();
      assert.deepEqual(Object.keys(s.perClient).sort(), [...tb.clientIps6].sort(), 'requests came from the IPv6 client addresses');
      assert.equal(Object.values(s.perClient).reduce((a, v) => a + v.requests, 0), 200);
    } finally {
      await v6srv.stop();
    }
  });

  test('IPv4 replay with the control channel over IPv6: -s [v6]:port, intercept -b v6 and an IPv6 -x passlist', async () => {
    const icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080',
      '-b', `[${ASSISTANT_IP6}]`, '-p', '36524', '-x', `198.18.0.99,${ONLINE_IP6}`]);
    daemons.push(icpt);
    const running = icpt.lines().find((l) => l.msg === 'intercept running');
    assert.equal(running?.control, `[${ASSISTANT_IP6}]:36524`);
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `[${ASSISTANT_IP6}]:36524`]);
    daemons.push(tc);
    const short = await measure(() => tb.runLoad({ requests: 300, concurrency: 8, rate: 300, localAddrs: tb.clientIps }));
    assert.equal(short.o.requests, 300);
    assert.equal(short.t.requests, short.o.requests, `short: target ${short.t.requests} of ${short.o.requests}`);
    assert.equal(short.t.bytes, short.o.bytes);
    const ka = await measure(() => tb.runLoad({ requests: 1000, concurrency: 4, keepalive: true, localAddrs: tb.clientIps }));
    assert.equal(ka.o.requests, 1000);
    assert.equal(ka.t.requests, ka.o.requests, `keep-alive: target ${ka.t.requests} of ${ka.o.requests}`);
    assert.equal(ka.t.bytes, ka.o.bytes);
    const connected = icpt.lines().filter((l) => l.msg === 'tcpcopy connected').map((l) => String(l.remote));
    assert.ok(connected.length >= 1 && connected.every((r) => r.startsWith(`[${ONLINE_IP6}]:`)), `tunnels from ${connected.join(', ')}`);
    const st = await icpt.freshStats();
    assert.equal(num(st?.tunnelsRefused), 0);
    const tcs = await tc.stop();
    await icpt.stop();
    assert.ok(num(tcs?.sessionsCreated) >= 300 + 4, `sessions ${num(tcs?.sessionsCreated)}`);
  });

  test('a dual-stack intercept (-b ::) admits an IPv4 tcpcopy listed by its IPv4 address and refuses an unlisted one', async () => {
    const icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080',
      '-b', '::', '-p', '36525', '-x', '198.18.0.20']);
    daemons.push(icpt);
    assert.equal(icpt.lines().find((l) => l.msg === 'intercept running')?.control, '[::]:36525');
    // Listed by its IPv4 address, connecting over IPv4: seen as ::ffff:198.18.0.20, admitted.
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', '198.18.0.40:36525']);
    daemons.push(tc);
    const r = await measure(() => tb.runLoad({ requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps }));
    assert.equal(r.t.requests, r.o.requests, `target ${r.t.requests} of ${r.o.requests}`);
    assert.equal(r.t.bytes, r.o.bytes);
    assert.ok(icpt.lines().some((l) => l.msg === 'tcpcopy connected' && String(l.remote).startsWith('198.18.0.20:')));
    await tc.stop();
    // The same tcpcopy host over IPv6 is another address: not in the passlist, refused (the
    // connection is closed at once after it is accepted; tcpcopy keeps trying).
    const refused = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `[${ASSISTANT_IP6}]:36525`, '-L']);
    daemons.push(refused);
    assert.ok(await waitFor(() => icpt.lines().some((l) => l.msg === 'control connection refused: address not in the -x passlist' && l.remote === ONLINE_IP6), 8000),
      'intercept refused the IPv6 peer by its address');
    await refused.stop();
    const st = await icpt.freshStats();
    assert.ok(num(st?.tunnelsRefused) >= 1);
    await icpt.stop();
  });

  test('the capability extension in mixed deployments: our tcpcopy with the original intercept, the original tcpcopy with ours', async (t) => {
    const peers = buildPeers(process.env.TCPCOPY_PEERS ?? DEFAULT_PEERS_DIR);
    if (!peers.ok) { t.skip(`no original build: ${peers.reason}`); return; }
    const orig = originalPair(peers.build);
    // Our tcpcopy announces the extension in bytes the original intercept ignores: replay as usual.
    const oi = await orig.startIntercept(tb);
    try {
      const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', '198.18.0.40']);
      daemons.push(tc);
      const r = await measure(() => tb.runLoad({ requests: 300, concurrency: 6, rate: 300, localAddrs: tb.clientIps }));
      assert.equal(r.o.requests, 300);
      assert.equal(r.t.requests, r.o.requests, `our tcpcopy + original intercept: target ${r.t.requests} of ${r.o.requests}`);
      assert.equal(r.t.bytes, r.o.bytes);
      assert.ok(!tc.lines().some((l) => l.msg === 'intercept speaks the capability extension'), 'the original intercept never answers');
      await tc.stop();
    } finally {
      await oi.stop();
    }
    // The original tcpcopy announces nothing: our intercept answers nothing and replays as usual.
    const icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080']);
    daemons.push(icpt);
    const ot = await orig.startTcpcopy(tb, ['-x', `80-${TARGET_IP}:8080`, '-s', '198.18.0.40']);
    try {
      const r = await measure(() => tb.runLoad({ requests: 300, concurrency: 6, rate: 300, localAddrs: tb.clientIps }));
      assert.equal(r.t.requests, r.o.requests, `original tcpcopy + our intercept: target ${r.t.requests} of ${r.o.requests}`);
      assert.equal(r.t.bytes, r.o.bytes);
    } finally {
      await ot.stop();
    }
    const st = await icpt.stop();
    assert.equal(num(st?.extensionPeers), 0, 'the original tcpcopy announced nothing');
    assert.ok(num(st?.tunnelsAccepted) >= 1);
    // And our pair speaks it: the announcement answered on every connection.
    const icpt2 = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080']);
    daemons.push(icpt2);
    const tc2 = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', '198.18.0.40', '-C', '2']);
    daemons.push(tc2);
    assert.ok(await waitFor(() => tc2.lines().filter((l) => l.msg === 'intercept speaks the capability extension' && l.capabilities === 1).length === 2, 5000));
    await tc2.stop();
    const st2 = await icpt2.stop();
    assert.equal(num(st2?.extensionPeers), 2);
  });
  // ---------------------------------------------------------------- IPv6 replay

  /** Servers on the IPv6 addresses (digests: the target got the online server's requests, byte for byte). */
  let online6: HttpServerHandle | null = null;
  let target6: HttpServerHandle | null = null;
  async function servers6(): Promise<{ on: HttpServerHandle; tg: HttpServerHandle }> {
    if (!online6) online6 = await tb.startHttpServer('online', 81, { body: 300, listenHost: ONLINE_IP6, digests: true });
    if (!target6) target6 = await tb.startHttpServer('target', 8081, { body: 300, listenHost: TARGET_IP6, digests: true });
    return { on: online6, tg: target6 };
  }

  /** `measure` for the IPv6 servers, with the request digests compared (`copies` at the target per online request). */
  async function measure6(run: () => Promise<unknown>, copies = 1) {
    const { on, tg } = await servers6();
    const os0 = await on.stats(), ts0 = await tg.stats();
    await run();
    const os1 = await on.stats();
    const o = delta(count(os0, fromClients6), count(os1, fromClients6));
    let t = { requests: 0, bytes: 0 };
    let last = -1, stable = Date.now();
    let ts1 = ts0;
    await waitFor(async () => {
      ts1 = await tg.stats();
      t = delta(count(ts0, fromClients6), count(ts1, fromClients6));
      if (t.requests !== last) { last = t.requests; stable = Date.now(); }
      return t.requests >= copies * o.requests || Date.now() - stable > 2500;
    }, 30000, 300);
    const same = compareDigests(digestDelta(os0, os1), digestDelta(ts0, ts1), copies);
    return { o, t, same, body: { o: bodyOf(os1) - bodyOf(os0), t: bodyOf(ts1) - bodyOf(ts0) } };
  }

  async function pair6(extra: string[] = [], rules = `81-[${TARGET_IP6}]:8081`): Promise<{ icpt: DaemonHandle; tc: DaemonHandle }> {
    const icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and (src port 8081 or src port 8080)']);
    daemons.push(icpt);
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', rules, '-s', '198.18.0.40', ...extra]);
    daemons.push(tc);
    assert.ok(await waitFor(() => tc.lines().some((l) => l.msg === 'intercept speaks the capability extension' && l.capabilities === 1), 5000),
      'intercept accepted IPv6');
    return { icpt, tc };
  }

  test('IPv6 replay: short connections, keep-alive and POSTs larger than the MTU reach the IPv6 target as the online server got them', async () => {
    const { icpt, tc } = await pair6();
    const url = `http://[${ONLINE_IP6}]:81/`;
    const short = await measure6(() => tb.runLoad({ url, requests: 300, concurrency: 8, rate: 300, localAddrs: tb.clientIps6 }));
    assert.equal(short.o.requests, 300);
    assert.equal(short.t.requests, short.o.requests, `short: target ${short.t.requests} of ${short.o.requests}`);
    assert.equal(short.t.bytes, short.o.bytes);
    assert.equal(short.same.missing + short.same.extra, 0, `digests: ${JSON.stringify(short.same)}`);
    const ka = await measure6(() => tb.runLoad({ url, requests: 1000, concurrency: 4, keepalive: true, localAddrs: tb.clientIps6 }));
    assert.equal(ka.o.requests, 1000);
    assert.equal(ka.t.requests, ka.o.requests, `keep-alive: target ${ka.t.requests} of ${ka.o.requests}`);
    assert.equal(ka.t.bytes, ka.o.bytes);
    assert.equal(ka.same.missing + ka.same.extra, 0);
    const post = await measure6(() => tb.runLoad({ url, requests: 60, concurrency: 3, keepalive: true, body: 20000, perConn: 10, localAddrs: tb.clientIps6 }));
    assert.equal(post.o.requests, 60);
    assert.equal(post.body.o, 60 * 20000);
    assert.equal(post.t.requests, post.o.requests);
    assert.equal(post.body.t, post.body.o, 'every body byte');
    assert.equal(post.same.missing + post.same.extra, 0, 'bodies of 20,000 bytes over many IPv6 segments, byte for byte');
    const tcs = await tc.stop();
    const ist = await icpt.stop();
    assert.ok(num(tcs?.sessionsCreated) >= 300 + 4 + 6, `sessions ${num(tcs?.sessionsCreated)}`);
    assert.equal(num(tcs?.ipv6Refused), 0);
    assert.ok(num(ist?.clientAdds6) >= num(tcs?.sessionsCreated), `CLIENT_ADD6 ${num(ist?.clientAdds6)}`);
    assert.ok(num(ist?.forwarded6) > 0);
  });

  test('IPv6 -n 2: the IPv6 target gets every request twice', async () => {
    const { icpt, tc } = await pair6(['-n', '2']);
    const r = await measure6(() => tb.runLoad({ url: `http://[${ONLINE_IP6}]:81/`, requests: 300, concurrency: 6, rate: 300, localAddrs: tb.clientIps6 }), 2);
    assert.equal(r.o.requests, 300);
    assert.equal(r.t.requests, 2 * r.o.requests, `target ${r.t.requests} for ${r.o.requests}`);
    assert.equal(r.t.bytes, 2 * r.o.bytes);
    assert.equal(r.same.missing + r.same.extra, 0);
    await tc.stop();
    await icpt.stop();
  });

  test('a mixed run: IPv4 and IPv6 clients at once, through one tcpcopy and one intercept', async () => {
    const { icpt, tc } = await pair6([], `80-${TARGET_IP}:8080,81-[${TARGET_IP6}]:8081`);
    const o4a = count(await online.stats(), fromClients), t4a = count(await target.stats(), fromClients);
    const r6 = await measure6(() => Promise.all([
      tb.runLoad({ url: `http://[${ONLINE_IP6}]:81/`, requests: 400, concurrency: 6, rate: 300, localAddrs: tb.clientIps6 }),
      tb.runLoad({ requests: 400, concurrency: 6, rate: 300, localAddrs: tb.clientIps }),
    ]));
    assert.equal(r6.o.requests, 400);
    assert.equal(r6.t.requests, r6.o.requests, `IPv6: target ${r6.t.requests} of ${r6.o.requests}`);
    assert.equal(r6.t.bytes, r6.o.bytes);
    assert.equal(r6.same.missing + r6.same.extra, 0);
    const o4 = delta(o4a, count(await online.stats(), fromClients));
    let t4 = { requests: 0, bytes: 0 };
    await waitFor(async () => { t4 = delta(t4a, count(await target.stats(), fromClients)); return t4.requests >= o4.requests; }, 10000, 300);
    assert.equal(o4.requests, 400);
    assert.equal(t4.requests, o4.requests, `IPv4: target ${t4.requests} of ${o4.requests}`);
    assert.equal(t4.bytes, o4.bytes);
    await tc.stop();
    await icpt.stop();
  });

  test('an IPv6 session with the original intercept (no IPv6 capability) is refused once with a warning and counted; IPv4 goes on', async (t) => {
    const peers = buildPeers(process.env.TCPCOPY_PEERS ?? DEFAULT_PEERS_DIR);
    if (!peers.ok) { t.skip(`no original build: ${peers.reason}`); return; }
    const oi = await originalPair(peers.build).startIntercept(tb);
    try {
      const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080,81-[${TARGET_IP6}]:8081`, '-s', '198.18.0.40']);
      daemons.push(tc);
      const r6 = await measure6(() => tb.runLoad({ url: `http://[${ONLINE_IP6}]:81/`, requests: 50, concurrency: 2, rate: 100, localAddrs: tb.clientIps6 }));
      assert.equal(r6.o.requests, 50);
      assert.equal(r6.t.requests, 0, 'nothing replayed over IPv6');
      const r4 = await measure(() => tb.runLoad({ requests: 100, concurrency: 4, rate: 200, localAddrs: tb.clientIps }));
      assert.equal(r4.t.requests, r4.o.requests, `IPv4: target ${r4.t.requests} of ${r4.o.requests}`);
      const st = await tc.stop();
      assert.equal(num(st?.ipv6Refused), 50, 'one per IPv6 connection');
      assert.equal(tc.lines().filter((l) => String(l.msg).startsWith('an IPv6 session is refused')).length, 1, 'one warning');
    } finally {
      await oi.stop();
    }
  });
  // ---------------------------------------------------------------- -o over IPv6

  /**
   * Runs `body` with an nftables rule in the online namespace that drops every packet its IPv6
   * stack sends to the IPv6 target's port 8081: what the online host's own stack (and a raw
   * IPv6 socket) sends there dies, frames sent at the link layer pass by. Checks first that the
   * rule drops the stack's packets; returns how many packets it dropped during `body`.
   */
  async function withStack6Blocked<T>(body: () => Promise<T>): Promise<{ result: T; dropped: number }> {
    tb.execSync('online', 'nft', ['-f', '-'], { input: `table ip6 stackguard6 {
  chain out {
    type filter hook output priority 0;
    ip6 daddr ${TARGET_IP6} tcp dport 8081 counter drop
  }
}
` });
    const counted = () => Number(/packets (\d+)/.exec(tb.execSync('online', 'nft', ['list', 'table', 'ip6', 'stackguard6']))?.[1] ?? -1);
    try {
      const probe = tb.execSync('online', process.execPath, ['-e',
        `const s = require('net').connect(8081, '${TARGET_IP6}');
         const t = setTimeout(() => { console.log('blocked'); s.destroy(); }, 1200);
         s.on('connect', () => { console.log('connected'); clearTimeout(t); s.destroy(); });
         s.on('error', (e) => { console.log(e.code); clearTimeout(t); });`]).trim();
      assert.equal(probe, 'blocked', "the rule drops what the online stack sends to the target's IPv6 port");
      const before = counted();
      assert.ok(before >= 1, `the rule counted the probe's SYN (${before})`);
      const result = await body();
      return { result, dropped: counted() - before };
    } finally {
      try { tb.execSync('online', 'nft', ['delete', 'table', 'ip6', 'stackguard6']); } catch { /* gone */ }
    }
  }

  const macOf = (host: 'online' | 'target'): string => tb.execSync(host, 'cat', [`/sys/class/net/${tb.dev(host)}/address`]).trim();

  test('-o over IPv6: Ethernet frames of EtherType 0x86DD, the MAC learnt through the IPv6 neighbour table, past the online IPv6 stack', async () => {
    await servers6();
    // Nothing known about the target: tcpcopy must make the kernel resolve it (NDP) and read `ip -6 neigh`.
    tb.execSync('online', 'ip', ['-6', 'neigh', 'flush', 'dev', tb.dev('online')]);
    assert.doesNotMatch(tb.execSync('online', 'ip', ['-6', 'neigh', 'show', TARGET_IP6, 'dev', tb.dev('online')]), /lladdr/);
    const cap = await tb.startCapture('target', ['-i', tb.dev('target'), '-e', '-Q', 'in',
      `ether src ${macOf('online')} and ether dst ${macOf('target')} and ip6 and tcp dst port 8081`]);
    let frames: string[] = [];
    const { result: r, dropped } = await withStack6Blocked(async () => {
      try {
        const { icpt, tc } = await pair6(['-o', tb.dev('online')]);
        assert.equal(tc.lines().find((l) => l.msg === 'tcpcopy running')?.sendEngine, 'mmsg-link');
        const url = `http://[${ONLINE_IP6}]:81/`;
        const short = await measure6(() => tb.runLoad({ url, requests: 300, concurrency: 6, rate: 300, localAddrs: tb.clientIps6 }));
        const ka = await measure6(() => tb.runLoad({ url, requests: 500, concurrency: 4, keepalive: true, localAddrs: tb.clientIps6 }));
        const tcs = await tc.stop();
        await icpt.stop();
        return { short, ka, tcs };
      } finally {
        frames = await cap.stop();
      }
    });
    for (const [what, m] of [['short', r.short], ['keep-alive', r.ka]] as const) {
      assert.ok(m.o.requests > 0);
      assert.equal(m.t.requests, m.o.requests, `${what}: target ${m.t.requests} of ${m.o.requests}`);
      assert.equal(m.t.bytes, m.o.bytes);
      assert.equal(m.same.missing + m.same.extra, 0, `${what} digests: ${JSON.stringify(m.same)}`);
    }
    assert.equal(dropped, 0, 'nothing tcpcopy sent went through the online IPv6 stack');
    assert.equal(num(r.tcs?.sendErrors), 0);
    assert.ok(frames.length >= 3 * 300, `IPv6 frames from the online MAC at the target: ${frames.length}`);
    assert.ok(frames.every((f) => /ethertype IPv6 \(0x86dd\)/.test(f)), frames.find((f) => !/0x86dd/.test(f)));
    assert.match(tb.execSync('online', 'ip', ['-6', 'neigh', 'show', TARGET_IP6, 'dev', tb.dev('online')]), /lladdr/, 'the kernel resolved the target');
  });

  test('-o over IPv6 with MACs in -x (the target sees the configured source MAC); an unknown IPv6 neighbour is refused naming ping -6', async () => {
    await servers6();
    const fakeSrc = '02:00:5e:10:20:36';
    const cap = await tb.startCapture('target', ['-i', tb.dev('target'), '-e', '-Q', 'in',
      `ether src ${fakeSrc} and ether dst ${macOf('target')} and ip6 and tcp dst port 8081`]);
    let frames: string[] = [];
    const { result: r, dropped } = await withStack6Blocked(async () => {
      try {
        const { icpt, tc } = await pair6(['-o', tb.dev('online')], `81@${fakeSrc}-[${TARGET_IP6}]:8081@${macOf('target')}`);
        const m = await measure6(() => tb.runLoad({ url: `http://[${ONLINE_IP6}]:81/`, requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps6 }));
        await tc.stop();
        await icpt.stop();
        return m;
      } finally {
        frames = await cap.stop();
      }
    });
    assert.equal(r.o.requests, 200);
    assert.equal(r.t.requests, r.o.requests, `target ${r.t.requests} of ${r.o.requests}`);
    assert.equal(r.t.bytes, r.o.bytes);
    assert.equal(dropped, 0);
    assert.ok(frames.length >= 3 * 200, `frames from ${fakeSrc} at the target: ${frames.length}`);
    // No host has 2001:2::99: nothing answers the neighbour solicitation, and tcpcopy says how to go on.
    await assert.rejects(startDaemon(tb, 'online', 'tcpcopy', ['-x', '81-[2001:2::99]:8081', '-s', '198.18.0.40', '-o', tb.dev('online')]),
      (e: Error) => {
        assert.match(e.message, /-o [\w-]+: the MAC address of 2001:2::99 is unknown; give it in -x \(81@aa:bb:cc:dd:ee:01-\[2001:2::99\]:8081@aa:bb:cc:dd:ee:ff\) .*ping -6 -c 1 2001:2::99/);
        assert.doesNotMatch(e.message, /\n\s+at /, 'one line, no stack trace');
        return true;
      });
  });

  test('intercept restarted under live IPv6 keep-alive sessions: they are registered again with CLIENT_ADD6 once the answer came, and go on', async () => {
    await servers6();
    const icptArgs = ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8081'];
    const first = await startDaemon(tb, 'assistant', 'intercept', icptArgs);
    daemons.push(first);
    // One control connection: each connection that comes back registers every live session again
    // (-C 2 would do it twice, harmlessly), so the counts below are exact.
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `81-[${TARGET_IP6}]:8081`, '-s', '198.18.0.40', '-C', '1']);
    daemons.push(tc);
    let second: DaemonHandle | undefined;
    const r = await measure6(async () => {
      // Four keep-alive connections, no new ones after the first second: every CLIENT_ADD6 the
      // second intercept gets is a re-registration of a live session.
      const load = tb.runLoad({ url: `http://[${ONLINE_IP6}]:81/`, requests: 480, concurrency: 4, keepalive: true, rate: 40, localAddrs: tb.clientIps6 });
      await new Promise((res) => setTimeout(res, 3000));
      const st1 = await first.stop();
      assert.equal(num(st1?.clientAdds6), 4, 'the four sessions were registered once');
      second = await startDaemon(tb, 'assistant', 'intercept', icptArgs);
      daemons.push(second);
      await load;
    });
    assert.ok(second);
    const again = tc.lines().filter((l) => l.msg === 'routes of live IPv6 sessions registered again (CLIENT_ADD6)');
    assert.equal(again.length, 1, 'once, after the answer of the new connection');
    assert.equal(again[0].sessions, 4);
    const st2 = await second.freshStats();
    assert.equal(num(st2?.clientAdds6), 4, 'the new intercept learnt the four live sessions');
    assert.ok(num(st2?.forwarded6) > 0, 'and routed their replies');
    assert.equal(r.o.requests, 480);
    assert.equal(r.t.requests, r.o.requests, `target ${r.t.requests} of ${r.o.requests}`);
    assert.equal(r.t.bytes, r.o.bytes);
    const tcs = await tc.stop();
    await second.stop();
    assert.equal(num(tcs?.ipv6Refused), 0);
  });

  // ---------------------------------------------------------------- the older engines

  test('the older engines over IPv6: libpcap capture (cap) with raw-socket send, and with libpcap link-layer send', async () => {
    const url = `http://[${ONLINE_IP6}]:81/`;
    for (const extra of [
      ['-i', tb.dev('online'), '--capture-engine', 'pcap', '--send-engine', 'raw'],
      ['-i', tb.dev('online'), '--capture-engine', 'pcap', '-o', tb.dev('online'), '--send-engine', 'pcap'],
    ]) {
      const { icpt, tc } = await pair6(extra);
      const running = tc.lines().find((l) => l.msg === 'tcpcopy running');
      assert.equal(running?.captureEngine, 'pcap');
      assert.equal(running?.sendEngine, extra.includes('-o') ? 'pcap' : 'raw');
      const short = await measure6(() => tb.runLoad({ url, requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps6 }));
      const ka = await measure6(() => tb.runLoad({ url, requests: 300, concurrency: 3, keepalive: true, localAddrs: tb.clientIps6 }));
      const tcs = await tc.stop();
      await icpt.stop();
      for (const [what, m] of [['short', short], ['keep-alive', ka]] as const) {
        assert.ok(m.o.requests > 0);
        assert.equal(m.t.requests, m.o.requests, `${extra.join(' ')}: ${what}: target ${m.t.requests} of ${m.o.requests}`);
        assert.equal(m.t.bytes, m.o.bytes);
        assert.equal(m.same.missing + m.same.extra, 0);
      }
      assert.equal(num(tcs?.sendErrors), 0);
      assert.equal(num(tcs?.ipv6Refused), 0);
    }
  });

  // ---------------------------------------------------------------- --doctor over IPv6

  interface Check6 { id: string; status: 'ok' | 'warn' | 'fail'; detail: string; fix: string }

  /** `tcpcopy --doctor --json` in the online namespace (bounded); its checks. */
  function doctor6(args: string[], host: 'online' | 'assistant' = 'online', name: 'tcpcopy' | 'intercept' = 'tcpcopy'): Promise<{ code: number | null; checks: Check6[]; out: string }> {
    const child = tb.spawn(host, process.execPath, [BIN[name], '--doctor', '--json', ...args]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`tcpcopy --doctor ran over 20 s: ${out}`)); }, 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        try { resolve({ code, checks: (JSON.parse(out) as { checks: Check6[] }).checks, out }); } catch { reject(new Error(`no JSON (exit ${code}): ${out}`)); }
      });
    });
  }
  const check6 = (r: { checks: Check6[]; out: string }, prefix: string): Check6 => {
    const c = r.checks.find((x) => x.id.startsWith(prefix));
    assert.ok(c, `a check ${prefix} in ${r.out}`);
    return c;
  };

  test('--doctor with IPv6 rules: CLIENT_ADD6, an IPv6 SYN through the raw IPv6 socket and -o, the SYN-ACK back through intercept; a probe address from the capture', async () => {
    await servers6();
    const icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and (src port 8081 or src port 8080)']);
    daemons.push(icpt);
    const rules = `81-[${TARGET_IP6}]:8081`;
    try {
      // A -c address of the extra IPv6 network (routed via the assistant on the target).
      const r = await doctor6(['-x', rules, '-s', '198.18.0.40', '-c', '2001:2:0:2::5']);
      assert.equal(r.code, 0, r.out);
      for (const id of ['permissions', 'capture', 'raw-send', 'intercept@']) assert.notEqual(check6(r, id).status, 'fail', `${id}: ${r.out}`);
      assert.match(check6(r, 'intercept@').detail, /IPv6 capability accepted/);
      const p = check6(r, `probe@[${TARGET_IP6}]:8081`);
      assert.equal(p.status, 'ok', r.out);
      assert.match(p.detail, /SYN \[2001:2:0:2::5\]:\d+ -> \[2001:2::30\]:8081 .*an IPv6 -c address.*SYN-ACK came back through intercept/);
      // The same through Ethernet frames (-o).
      const o = await doctor6(['-x', rules, '-s', '198.18.0.40', '-c', '2001:2:0:2::6', '-o', tb.dev('online')]);
      assert.equal(o.code, 0, o.out);
      assert.equal(check6(o, 'probe@').status, 'ok', o.out);
      assert.match(check6(o, 'raw-send').detail, /Ethernet frames/);
      // No -c: the probe borrows an IPv6 client address the capture ring saw (IPv6 clients active meanwhile).
      const load = tb.runLoad({ url: `http://[${ONLINE_IP6}]:81/`, requests: 80, concurrency: 2, rate: 20, durationMs: 4800, localAddrs: tb.clientIps6.slice(0, 1) });
      const c = await doctor6(['-x', rules, '-s', '198.18.0.40']);
      await load;
      assert.equal(c.code, 0, c.out);
      assert.match(check6(c, 'capture').detail, /capture ring \(IPv4 and IPv6\): \d+ packet\(s\) for port\(s\) 81 from 1 client address/);
      assert.match(check6(c, 'probe@').detail, new RegExp(`SYN \\[${tb.clientIps6[0]}\\]:\\d+ .*an IPv6 client address seen in the capture.*SYN-ACK came back`));
      // The probes left nothing half-open on the target.
      await waitFor(() => !/SYN-RECV/.test(tb.execSync('target', 'ss', ['-tan', 'sport = :8081'])), 3000);
      assert.doesNotMatch(tb.execSync('target', 'ss', ['-tan', 'sport = :8081']), /SYN-RECV/);
    } finally {
      await icpt.stop();
    }
  });

  test('intercept --doctor: ip6-forward is ok with IPv6 forwarding off, a warning (not a failure) with it on', async () => {
    const args = ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8081', '-p', '36530'];
    const off = await doctor6(args, 'assistant', 'intercept');
    assert.equal(check6(off, 'ip6-forward').status, 'ok', off.out);
    tb.execSync('assistant', 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    try {
      const on = await doctor6(args, 'assistant', 'intercept');
      const c = check6(on, 'ip6-forward');
      assert.equal(c.status, 'warn', on.out);
      assert.match(c.detail, /forwarding = 1: .*IPv6 replies to the real clients/);
      assert.match(c.fix, /sysctl -w net\.ipv6\.conf\.all\.forwarding=0/);
      assert.equal(check6(on, 'ip-forward').status, 'ok', 'IPv4 forwarding is still off');
    } finally {
      tb.execSync('assistant', 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=0', `net.ipv6.conf.${tb.dev('assistant')}.forwarding=0`]);
    }
    assert.equal(tb.execSync('assistant', 'sysctl', ['-n', 'net.ipv6.conf.all.forwarding']).trim(), '0');
  });

  test('--doctor with IPv6 rules: the target routes the IPv6 probe network elsewhere: the probe fails with the ip -6 route fix', async () => {
    await servers6();
    const icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8081']);
    daemons.push(icpt);
    // Answers for 2001:2:0:2::/64 go out on the target's own segment instead of via the assistant.
    tb.execSync('target', 'ip', ['-6', 'route', 'replace', EXTRA_NET6, 'dev', tb.dev('target')]);
    try {
      const r = await doctor6(['-x', `81-[${TARGET_IP6}]:8081`, '-s', '198.18.0.40', '-c', '2001:2:0:2::7']);
      assert.equal(r.code, 1, r.out);
      const p = check6(r, 'probe@');
      assert.equal(p.status, 'fail');
      assert.match(p.detail, /no answer came back through intercept .*2 SYNs, then a RST.*a plain connect from this host .* works/);
      assert.match(p.fix, /ip -6 route get 2001:2:0:2::7 .*\n.*ip -6 route add 2001:2:0:2::\/64 via/);
    } finally {
      tb.execSync('target', 'ip', ['-6', 'route', 'replace', EXTRA_NET6, 'via', ASSISTANT_IP6, 'dev', tb.dev('target')]);
      await icpt.stop();
    }
  });

  test('offline replay of an IPv6 capture made by tcpdump: every recorded request reaches the IPv6 target, from the -c prefix', async () => {
    const { on, tg } = await servers6();
    const file = path.join(tb.workDir, 'online6.pcap');
    const dump = tb.spawn('online', 'tcpdump', ['-i', tb.dev('online'), '-U', '-w', file, '-s', '0', 'ip6 and tcp and dst port 81']);
    let recorded = 0;
    try {
      await waitFor(() => fs.existsSync(file), 5000, 50);
      await new Promise((r) => setTimeout(r, 1500)); // tcpdump may still be setting up its capture
      const o0 = count(await on.stats(), fromClients6);
      const url = `http://[${ONLINE_IP6}]:81/`;
      await Promise.all([
        tb.runLoad({ url, requests: 100, concurrency: 4, rate: 100, localAddrs: tb.clientIps6 }),
        tb.runLoad({ url, requests: 100, concurrency: 2, keepalive: true, rate: 100, localAddrs: tb.clientIps6 }),
      ]);
      recorded = count(await on.stats(), fromClients6).requests - o0.requests;
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      await tb.stop(dump, 'SIGINT', 5000);
    }
    assert.equal(recorded, 200);
    // Requests in the file (one packet each): the replay is held to these.
    const inFile = tb.execSync('online', 'tcpdump', ['-r', file, '-nn', 'ip6 and tcp dst port 81 and (ip6[4:2] - ((ip6[52]&0xf0)>>2)) != 0'])
      .split('\n').filter((l) => l.trim()).length;
    assert.ok(inFile >= recorded * 0.9, `tcpdump recorded ${inFile} of ${recorded} requests`);
    const icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8081']);
    daemons.push(icpt);
    const fromExtra = (ip: string): boolean => ip.startsWith('2001:2:0:2::');
    const t0 = count(await tg.stats(), fromExtra);
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-i', file, '-x', `81-[${TARGET_IP6}]:8081`, '-s', '198.18.0.40',
      '-c', '2001:2:0:2::/120', '--offline-tail', '10']);
    daemons.push(tc);
    await new Promise<void>((r) => { if (tc.child.exitCode !== null) r(); else tc.child.once('exit', () => r()); });
    let t = delta(t0, count(await tg.stats(), fromExtra));
    await waitFor(async () => { const n = delta(t0, count(await tg.stats(), fromExtra)); const moved = n.requests !== t.requests; t = n; return !moved; }, 3000, 300);
    console.log(`# offline IPv6 replay: ${t.requests} of ${inFile} recorded requests at the target`);
    if (t.requests !== inFile) console.log(`# ${JSON.stringify(tc.lines().filter((l) => l.msg === 'summary' || l.msg === 'statistics').slice(-1))}`);
    assert.equal(tc.child.exitCode, 0);
    assert.equal(t.requests, inFile, 'every recorded request replayed');
    const summary = tc.lines().find((l) => l.msg === 'summary')?.summary as Record<string, unknown> | undefined;
    assert.equal(String(summary?.reason), 'offline replay is complete');
    await icpt.stop();
  });
});
