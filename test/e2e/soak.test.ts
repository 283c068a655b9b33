/**
 * Soak: a moderate mixed load for a long time (TCPCOPY_SOAK=1; TCPCOPY_SOAK_SECONDS, default
 * 600). tcpcopy's and intercept's memory and tcpcopy's session count must stay flat, every
 * request must be replicated, and once the load stops every session is reaped within -t.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Testbed, TARGET_IP, ASSISTANT_IP, HttpServerHandle, HttpServerStats } from '../../lab/testbed';
import { DaemonHandle, num, startDaemon, waitFor } from '../../lab/daemons';

const enabled = process.env.TCPCOPY_SOAK === '1' && process.getuid?.() === 0;
const seconds = Number(process.env.TCPCOPY_SOAK_SECONDS ?? 600);

function fromClients(s: HttpServerStats): number {
  let n = 0;
  for (const [ip, v] of Object.entries(s.perClient)) if (ip.startsWith('198.18.1.')) n += v.requests;
  return n;
}

function rssMB(tb: Testbed, host: 'online' | 'assistant', pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(tb.execSync(host, 'cat', [`/proc/${pid}/status`]))![1]) / 1024;
}

describe('soak', { skip: !enabled && 'set TCPCOPY_SOAK=1 (as root) to run the long soak' }, () => {
  let tb: Testbed;
  let online: HttpServerHandle;
  let target: HttpServerHandle;
  let icpt: DaemonHandle;
  let tc: DaemonHandle;

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 16 });
    online = await tb.startHttpServer('online', 80, { body: 1000 });
    target = await tb.startHttpServer('target', 8080, { body: 1000 });
    icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080']);
    tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, '-t', '10', '-k', '20']);
  });

  after(async () => {
    if (tc) await tc.stop();
    if (icpt) await icpt.stop();
    if (tb) await tb.destroy();
  });

  test(`${seconds} s of mixed load: flat memory and sessions, no loss, sessions reaped`, { timeout: (seconds + 180) * 1000 }, async () => {
    const rate = 150;
    const samples: { t: number; tcRss: number; icRss: number; sessions: number }[] = [];
    const start = Date.now();
    const sampler = setInterval(() => {
      void tc.freshStats(3000).then((s) => {
        samples.push({ t: Math.round((Date.now() - start) / 1000), tcRss: rssMB(tb, 'online', tc.child.pid!),
          icRss: rssMB(tb, 'assistant', icpt.child.pid!), sessions: num(s?.sessionsActive) });
      });
    }, 30000);
    const o0 = fromClients(await online.stats());
    const t0 = fromClients(await target.stats());
    try {
      await Promise.all([
        tb.runLoad({ requests: rate * seconds, concurrency: 8, rate, localAddrs: tb.clientIps, durationMs: (seconds + 30) * 1000 }),
        tb.runLoad({ requests: rate * seconds, concurrency: 8, keepalive: true, perConn: 50, rate, localAddrs: tb.clientIps, durationMs: (seconds + 30) * 1000 }),
      ]);
    } finally {
      clearInterval(sampler);
    }
    const o = fromClients(await online.stats()) - o0;
    let t = 0;
    await waitFor(async () => { t = fromClients(await target.stats()) - t0; return t >= o; }, 20000, 500);
    console.log(`# soak: ${o} online, ${t} replicated; samples ${JSON.stringify(samples)}`);
    assert.ok(t >= o - Math.ceil(o * 0.001), `replicated ${t} of ${o}`);
    const third = Math.max(1, Math.floor(samples.length / 3));
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const early = samples.slice(0, third), late = samples.slice(-third);
    assert.ok(avg(late.map((x) => x.tcRss)) <= avg(early.map((x) => x.tcRss)) * 1.25 + 5, 'tcpcopy RSS flat');
    assert.ok(avg(late.map((x) => x.icRss)) <= avg(early.map((x) => x.icRss)) * 1.25 + 5, 'intercept RSS flat');
    assert.ok(Math.max(...samples.map((x) => x.sessions)) < 2000, 'sessions bounded');
    // After the load: everything reaped within the keep-alive timeout (+ linger and sweep).
    assert.ok(await waitFor(async () => {
      const s = await tc.freshStats(3000);
      return num(s?.sessionsActive) === 0 && num(s?.sessionsLingering) === 0;
    }, 40000, 1000), 'every session reaped after the load stopped');
  });
});
