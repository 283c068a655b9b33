/**
 * Live replication end to end: real HTTP servers on the online and target hosts, our
 * intercept on the assistant, our tcpcopy on the online host, bounded loads from the clients.
 * Every test compares what the online server served with what the target served.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Testbed, TARGET_IP, ASSISTANT_IP, ONLINE_IP, HttpServerHandle, HttpServerStats, compareDigests, digestDelta } from '../../lab/testbed';
import { DaemonHandle, ROOT, num, startDaemon, waitFor } from '../../lab/daemons';

const isRoot = process.getuid?.() === 0;

interface Count { requests: number; bytes: number; body: number; byIp: Record<string, number> }

function count(s: HttpServerStats, ipFilter?: (ip: string) => boolean): Count {
  const c: Count = { requests: 0, bytes: 0, body: 0, byIp: {} };
  for (const [ip, v] of Object.entries(s.perClient)) {
    if (ipFilter && !ipFilter(ip)) continue;
    c.requests += v.requests;
    c.bytes += v.headerBytes + v.bodyBytes;
    c.body += v.bodyBytes;
    c.byIp[ip] = v.requests;
  }
  return c;
}

function delta(a: Count, b: Count): Count {
  const byIp: Record<string, number> = {};
  for (const ip of new Set([...Object.keys(a.byIp), ...Object.keys(b.byIp)])) byIp[ip] = (b.byIp[ip] ?? 0) - (a.byIp[ip] ?? 0);
  return { requests: b.requests - a.requests, bytes: b.bytes - a.bytes, body: b.body - a.body, byIp };
}

const fromClients = (ip: string) => ip.startsWith('198.18.1.') || ip.startsWith('198.18.2.');

/** Waits until the target's count stops moving (or reaches `want`), bounded. */
async function settle(target: HttpServerHandle, want: number, base: Count, timeoutMs = 20000): Promise<Count> {
  let last = -1;
  let stableSince = Date.now();
  let cur = base;
  await waitFor(async () => {
    cur = delta(base, count(await target.stats(), fromClients));
    if (cur.requests !== last) { last = cur.requests; stableSince = Date.now(); }
    return cur.requests >= want || Date.now() - stableSince > 2500;
  }, timeoutMs, 300);
  return cur;
}

describe('live replication in network namespaces', { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  let tb: Testbed;
  let online: HttpServerHandle;
  let target: HttpServerHandle;
  let icpt: DaemonHandle;
  let tc: DaemonHandle | null = null;

  const interceptArgs = () => ['-i', tb.dev('assistant'), '-F', 'tcp and (src port 8080 or src port 8081)'];
  let tcFlags = '';
  /** Runs tcpcopy with these extra flags (restarting it only when they change). */
  async function tcpcopy(extra: string[] = []): Promise<DaemonHandle> {
    if (tc && tcFlags === extra.join(' ') && tc.child.exitCode === null) return tc;
    if (tc) await tc.stop();
    tcFlags = extra.join(' ');
    tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, ...extra]);
    return tc;
  }
  /**
   * Runs a load; returns the online and target deltas and `same`: the target's requests
   * compared with the online server's by content (digest multisets, times `factor`, at least once).
   */
  async function measure(run: () => Promise<unknown>, factor = 1, ipFilter = fromClients) {
    const os0 = await online.stats();
    const ts0 = await target.stats();
    const o0 = count(os0, (ip) => ip.startsWith('198.18.1.'));
    const t0 = count(ts0, ipFilter);
    const load = await run();
    const os1 = await online.stats();
    const o = delta(o0, count(os1, (ip) => ip.startsWith('198.18.1.')));
    const t = await settle(target, o.requests * factor, t0);
    const same = compareDigests(digestDelta(os0, os1), digestDelta(ts0, await target.stats()), Math.max(1, Math.round(factor)));
    return { o, t, load, same };
  }
  /** The target got exactly the online server's requests, byte for byte (`factor` times each). */
  function assertSameRequests(same: ReturnType<typeof compareDigests>, what = 'the target'): void {
    assert.ok(same.distinct > 0, 'the online server recorded request digests');
    assert.equal(same.extra, 0, `${what} got ${same.extra} requests the online server never served (e.g. ${same.extraSample.join(', ')})`);
    assert.equal(same.missing, 0, `${what} lacks ${same.missing} of the online server's requests`);
  }

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 16 });
    online = await tb.startHttpServer('online', 80, { body: 300, digests: true });
    target = await tb.startHttpServer('target', 8080, { body: 300, digests: true });
    icpt = await startDaemon(tb, 'assistant', 'intercept', interceptArgs());
  });

  after(async () => {
    if (tc) await tc.stop();
    if (icpt) await icpt.stop();
    if (tb) await tb.destroy();
  });

  test('short connections at a modest rate: every request, same bytes', async () => {
    await tcpcopy();
    const { o, t, load, same } = await measure(() => tb.runLoad({ requests: 600, concurrency: 10, rate: 300 }));
    assert.equal((load as { errors: number }).errors, 0);
    assert.equal(o.requests, 600);
    assert.equal(t.requests, o.requests, `target ${t.requests} of ${o.requests}`);
    assert.equal(t.bytes, o.bytes);
    assert.equal(same.distinct, 600, 'every request is distinct');
    assertSameRequests(same);
  });

  test('keep-alive connections with many requests each', async () => {
    await tcpcopy();
    const { o, t, same } = await measure(() => tb.runLoad({ requests: 4000, concurrency: 8, keepalive: true }));
    assert.equal(o.requests, 4000);
    assert.equal(t.requests, o.requests, `target ${t.requests} of ${o.requests}`);
    assert.equal(t.bytes, o.bytes);
    assertSameRequests(same);
  });

  test('large POST bodies spanning many segments', async () => {
    await tcpcopy();
    const { o, t, same } = await measure(() => tb.runLoad({ requests: 120, concurrency: 4, keepalive: true, body: 60000, perConn: 10 }));
    assert.equal(o.requests, 120);
    assert.equal(o.body, 120 * 60000);
    assert.equal(t.requests, o.requests);
    assert.equal(t.body, o.body, 'the target got every body byte');
    assert.equal(same.distinct, 120, 'every body is distinct');
    assertSameRequests(same, 'the target (bodies of 60,000 bytes over many segments)');
  });

  test('short connections at the highest rate from one client address (port reuse)', async () => {
    await tcpcopy();
    const one = tb.clientIps[0];
    const { o, t, load, same } = await measure(() => tb.runLoad({ requests: 6000, concurrency: 64, localAddrs: [one], durationMs: 60000 }),
      1, (ip) => ip === one);
    const l = load as { ok: number; durationMs: number };
    assert.ok(o.requests >= 5990, `online served ${o.requests}`);
    const lost = o.requests - t.requests;
    const rate = Math.round((l.ok / l.durationMs) * 1000);
    console.log(`# one client address: ${o.requests} online at ${rate} req/s, ${t.requests} replicated, port reuses ${num((await tc!.freshStats())?.portReuses)}`);
    assert.ok(lost <= Math.ceil(o.requests * 0.001), `lost ${lost} of ${o.requests} at ${rate} req/s`);
    assert.equal(same.extra, 0, `requests at the target the online server never served: ${same.extraSample.join(', ')}`);
    assert.equal(same.missing, lost, 'the requests missing by content are the ones missing by count');
    const s = await tc!.freshStats();
    assert.ok(num(s?.clientSyns) >= 5990);
  });

  test('short connections at the highest rate over 16 client addresses', async () => {
    await tcpcopy();
    const { o, t, same } = await measure(() => tb.runLoad({ requests: 6000, concurrency: 64, localAddrs: tb.clientIps, durationMs: 60000 }));
    const lost = o.requests - t.requests;
    assert.ok(lost <= Math.ceil(o.requests * 0.001), `lost ${lost} of ${o.requests}`);
    assert.equal(same.extra, 0, `requests at the target the online server never served: ${same.extraSample.join(', ')}`);
    assert.equal(same.missing, lost, 'the requests missing by content are the ones missing by count');
    for (const ip of tb.clientIps) assert.equal(t.byIp[ip], o.byIp[ip], `per-address count for ${ip}`);
  });

  test('connections opened before tcpcopy started are replayed (faked handshake)', async () => {
    if (tc) { await tc.stop(); tc = null; tcFlags = ''; }
    const t0 = count(await target.stats(), fromClients);
    const client = tb.spawn('client', process.execPath, [path.join(ROOT, 'dist/lab/fixtures/preopen-client.js'),
      '--url', `http://${ONLINE_IP}:80/`, '--conns', '12', '--rounds', '5', '--pause-ms', '3000']);
    let out = '';
    client.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    await new Promise((r) => setTimeout(r, 800));
    await tcpcopy();
    await new Promise<void>((r) => client.once('exit', () => r()));
    const res = JSON.parse(out.trim()) as { ok: number; errors: number };
    assert.equal(res.ok, 12 * 6);
    const t = await settle(target, 12 * 5, t0);
    assert.equal(t.requests, 12 * 5, 'the 5 rounds after tcpcopy started, on 12 pre-existing connections');
    assert.ok(num((await tc!.freshStats())?.sessionsFaked) >= 12);
  });

  test('-n 2 doubles what the target receives', async () => {
    await tcpcopy(['-n', '2']);
    const { o, t, same } = await measure(() => tb.runLoad({ requests: 400, concurrency: 8, rate: 400, localAddrs: tb.clientIps }), 2);
    assert.equal(t.requests, 2 * o.requests, `target ${t.requests} for ${o.requests} online`);
    assert.equal(t.bytes, 2 * o.bytes);
    assertSameRequests(same, 'the target (two copies of each)');
  });

  test('-r 50 replays about half of the sessions', async () => {
    await tcpcopy(['-r', '50']);
    const { o, t, same } = await measure(() => tb.runLoad({ requests: 1000, concurrency: 8, rate: 500, localAddrs: tb.clientIps }), 0.5);
    const share = t.requests / o.requests;
    assert.ok(share >= 0.4 && share <= 0.6, `share ${share}`);
    assert.equal(same.extra, 0, `replayed requests the online server never served: ${same.extraSample.join(', ')}`);
    assert.equal(same.missing, o.requests - t.requests, 'the target got whole requests of the online server\'s, no others');
  });

  test('-c changes the source address the target sees', async () => {
    await tcpcopy(['-c', '198.18.2.x']);
    const t0 = count(await target.stats(), fromClients);
    const { o, t, same } = await measure(() => tb.runLoad({ requests: 300, concurrency: 6, rate: 300 }));
    const t1 = delta(t0, count(await target.stats(), fromClients));
    assert.equal(t.requests, o.requests);
    assertSameRequests(same);
    const from2 = Object.entries(t1.byIp).filter(([ip, n]) => ip.startsWith('198.18.2.') && n > 0).reduce((a, [, n]) => a + n, 0);
    assert.equal(from2, o.requests, 'every replayed request came from a -c address');
  });

  test('online clients see no errors and no added latency', async () => {
    if (tc) { await tc.stop(); tc = null; tcFlags = ''; }
    const base = await tb.runLoad({ requests: 1500, concurrency: 4, keepalive: true, rate: 500 });
    await tcpcopy();
    const withCopy = await tb.runLoad({ requests: 1500, concurrency: 4, keepalive: true, rate: 500 });
    assert.equal(base.errors, 0);
    assert.equal(withCopy.errors, 0);
    assert.ok(withCopy.latencyMsP50 <= base.latencyMsP50 + 2, `p50 ${base.latencyMsP50} → ${withCopy.latencyMsP50} ms`);
  });

  test('a target that closes keep-alive connections after 7 requests: the rest goes on new connections', async () => {
    await tcpcopy();
    const limited = await tb.startHttpServer('target', 8081, { body: 300, maxPerSocket: 7, digests: true });
    const tc2 = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8081`, '-s', ASSISTANT_IP, '-c', '198.18.2.x']);
    try {
      const ls0 = await limited.stats();
      const os0 = await online.stats();
      const base = count(ls0, fromClients);
      const o0 = count(os0, (ip) => ip.startsWith('198.18.1.'));
      await tb.runLoad({ requests: 400, concurrency: 4, keepalive: true, rate: 400, localAddrs: tb.clientIps });
      const os1 = await online.stats();
      const o = delta(o0, count(os1, (ip) => ip.startsWith('198.18.1.')));
      const t = await settle(limited, o.requests, base);
      assertSameRequests(compareDigests(digestDelta(os0, os1), digestDelta(ls0, await limited.stats())), 'the limited target');
      const st = await tc2.freshStats();
      assert.equal(o.requests, 400);
      assert.equal(t.requests, o.requests, `the limited target got ${t.requests} of ${o.requests}: ${JSON.stringify(st)}`);
      assert.equal(t.bytes, o.bytes);
      assert.ok(num((await tc2.freshStats())?.reconnects) >= 40, 'sessions reconnected after each server-side close');
    } finally {
      await tc2.stop();
      await limited.stop();
    }
  });

  test('intercept killed and restarted: tcpcopy reconnects and replication resumes', async () => {
    await tcpcopy(['-L']);
    const o0 = count(await online.stats(), (ip) => ip.startsWith('198.18.1.'));
    const t0 = count(await target.stats(), fromClients);
    const loadP = tb.runLoad({ requests: 1500, concurrency: 4, keepalive: true, rate: 300 });
    await new Promise((r) => setTimeout(r, 1500));
    await icpt.stop();
    await new Promise((r) => setTimeout(r, 1000));
    icpt = await startDaemon(tb, 'assistant', 'intercept', interceptArgs());
    await loadP;
    assert.ok(await waitFor(() => {
      const s = tc!.lastStats()?.intercepts as Record<string, { up: number }> | undefined;
      return !!s && Object.values(s).every((x) => x.up === 2);
    }, 20000), 'both control connections are up again');
    // Requests held up during the outage still drain now, so the window after the restart may
    // see more than its own requests: every one of its own, and never more than were sent.
    const { o, t } = await measure(() => tb.runLoad({ requests: 500, concurrency: 4, rate: 300, localAddrs: tb.clientIps }));
    assert.ok(t.requests >= o.requests, `requests after the restart are all replicated (${t.requests} for ${o.requests})`);
    const oAll = delta(o0, count(await online.stats(), (ip) => ip.startsWith('198.18.1.')));
    const tAll = await settle(target, oAll.requests, t0);
    assert.ok(tAll.requests <= oAll.requests, `no request replayed twice (${tAll.requests} of ${oAll.requests})`);
    assert.ok(tAll.requests >= oAll.requests * 0.9, `most of the outage's requests were replayed too (${tAll.requests} of ${oAll.requests})`);
    assert.equal(tc!.child.exitCode, null, 'tcpcopy kept running');
  });
});
