/**
 * Options between the two daemons end to end, each test with its own intercept and tcpcopy:
 * the control channel's record formats (--payload, --no-combined, both) and intercept -D
 * (replies addressed to another address than the one tcpcopy registered, as behind Docker's
 * NAT). Every test compares the target's requests with the online server's by content.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Testbed, TARGET_IP, ASSISTANT_IP, HttpServerHandle, HttpServerStats, compareDigests, digestDelta,
} from '../../lab/testbed';
import { num, startDaemon, waitFor } from '../../lab/daemons';

const isRoot = process.getuid?.() === 0;

function fromNet(s: HttpServerStats, prefix: string): number {
  let n = 0;
  for (const [ip, v] of Object.entries(s.perClient)) if (ip.startsWith(prefix)) n += v.requests;
  return n;
}

describe('control-channel formats and intercept -D', { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  let tb: Testbed;
  let online: HttpServerHandle;
  let target: HttpServerHandle;
  let port = 36800;

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 4, extraRoutesViaAssistant: ['198.18.2.0/24', '198.18.3.0/24'] });
    online = await tb.startHttpServer('online', 80, { body: 700, digests: true });
    target = await tb.startHttpServer('target', 8080, { body: 700, digests: true });
  });

  after(async () => {
    if (tb) await tb.destroy();
  });

  /**
   * Starts intercept (own port) and tcpcopy with these flags, runs short connections and
   * keep-alive POSTs from the clients, waits for the target, and stops both daemons. `net` is
   * the prefix of the addresses the target sees.
   */
  async function replicate(icArgs: string[], tcArgs: string[], net = '198.18.1.') {
    const p = ++port;
    const ic = await startDaemon(tb, 'assistant', 'intercept', ['-p', String(p), '-i', tb.dev('assistant'), '-F', 'tcp and src port 8080', ...icArgs]);
    try {
      const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:${p}`, ...tcArgs]);
      try {
        const os0 = await online.stats();
        const ts0 = await target.stats();
        await Promise.all([
          tb.runLoad({ requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps }),
          tb.runLoad({ requests: 300, concurrency: 3, keepalive: true, body: 3000, rate: 300, localAddrs: tb.clientIps }),
        ]);
        const os1 = await online.stats();
        const o = fromNet(os1, '198.18.1.') - fromNet(os0, '198.18.1.');
        let t = 0;
        let last = -1;
        let since = Date.now();
        await waitFor(async () => {
          t = fromNet(await target.stats(), net) - fromNet(ts0, net);
          if (t !== last) { last = t; since = Date.now(); }
          return t >= o || Date.now() - since > 3000;
        }, 20_000, 300);
        const same = compareDigests(digestDelta(os0, os1), digestDelta(ts0, await target.stats()));
        const tcStats = await tc.freshStats();
        const icStats = await ic.freshStats();
        return { o, t, same, tcStats, icStats, tcLines: tc.lines(), icLines: ic.lines() };
      } finally {
        await tc.stop();
      }
    } finally {
      await ic.stop();
    }
  }

  function assertAllReplicated(r: Awaited<ReturnType<typeof replicate>>, what: string): void {
    assert.equal(r.o, 500, `${what}: the online server served the load`);
    assert.equal(r.t, r.o, `${what}: target ${r.t} of ${r.o}; tcpcopy ${JSON.stringify(r.tcStats)}`);
    assert.equal(r.same.extra, 0, `${what}: requests the online server never served: ${r.same.extraSample.join(', ')}`);
    assert.equal(r.same.missing, 0, `${what}: requests missing by content`);
    const bad = r.tcLines.filter((l) => num(l.level) >= 50);
    assert.deepEqual(bad, [], `${what}: tcpcopy logged errors`);
    assert.ok(num(r.icStats?.forwarded) >= 200, `${what}: intercept forwarded ${num(r.icStats?.forwarded)} replies`);
  }

  test('--payload on both sides: 192-byte records, every request replicated', async () => {
    const r = await replicate(['--payload'], ['--payload']);
    assertAllReplicated(r, '--payload');
  });

  test('--no-combined on both sides: bare records, every request replicated', async () => {
    const r = await replicate(['--no-combined'], ['--no-combined']);
    assertAllReplicated(r, '--no-combined');
  });

  test('--payload on one side only: tcpcopy refuses to start with one line naming the flag, intercept says so too', async () => {
    const p = ++port;
    const ic = await startDaemon(tb, 'assistant', 'intercept', ['-p', String(p), '-i', tb.dev('assistant'), '-F', 'tcp and src port 8080']);
    try {
      await assert.rejects(startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:${p}`, '--payload']),
        (e: Error) => /did not start \(exit 1\)/.test(e.message) && /record format differs: intercept runs without --payload and this tcpcopy with it/.test(e.message));
      assert.ok(await waitFor(() => ic.lines().some((l) => num(l.level) >= 50 && /tcpcopy runs with --payload and this intercept without it/.test(String(l.msg))), 3000),
        'intercept logged the mismatch');
      // With -L tcpcopy runs on, keeps retrying, and says it once.
      const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:${p}`, '--no-combined', '-L']);
      try {
        await new Promise((r) => setTimeout(r, 2500));
        const said = tc.lines().filter((l) => /record format differs/.test(String(l.msg)));
        assert.equal(said.length, 1, 'said once, not at every retry');
        assert.match(String(said[0].msg), /intercept runs without --no-combined and this tcpcopy with it/);
      } finally {
        await tc.stop();
      }
    } finally {
      await ic.stop();
    }
  });

  test('--payload and --no-combined together on both sides', async () => {
    const r = await replicate(['--payload', '--no-combined'], ['--payload', '--no-combined']);
    assertAllReplicated(r, '--payload --no-combined');
  });

  test('intercept -D A-B: replies addressed to A are handed on as replies to B; without -D they are not', async () => {
    // tcpcopy gives every replayed client the address B; the target's replies to B leave it
    // rewritten to A (stateless, nftables on its output path), as a NAT in front of the target
    // would deliver them. They still route to the assistant.
    // The control run uses addresses of its own (A0, B0), so that its half-open connections at
    // the target cannot meet the sessions of the run with -D.
    const A = '198.18.3.50';
    const B = '198.18.2.50';
    const A0 = '198.18.3.60';
    const B0 = '198.18.2.60';
    tb.execSync('target', 'nft', ['-f', '-'], { input: `table ip docker {
  chain out {
    type filter hook output priority 0;
    ip daddr ${B} tcp sport 8080 counter ip daddr set ${A}
    ip daddr ${B0} tcp sport 8080 counter ip daddr set ${A0}
  }
}
` });
    try {
      const rewritten = (i: number) => Number([...tb.execSync('target', 'nft', ['list', 'table', 'ip', 'docker']).matchAll(/packets (\d+)/g)][i]?.[1] ?? -1);
      // Control: without -D intercept has no route for A0, so no session gets its SYN-ACK.
      const without = await replicate([], ['-c', B0, '-t', '3'], B0);
      assert.ok(rewritten(1) > 0, 'the target\'s replies to B0 were rewritten to A0');
      assert.equal(without.o, 500);
      assert.equal(without.t, 0, `without -D nothing is replayed (${without.t} of ${without.o})`);
      // With -D the same replies reach tcpcopy, as replies to B.
      const withD = await replicate(['-D', `${A}-${B}`], ['-c', B], B);
      assertAllReplicated(withD, '-D');
      assert.ok(rewritten(0) >= withD.t, `the replies to B were rewritten to A (${rewritten(0)})`);
      const s = await target.stats();
      assert.ok((s.perClient[B]?.requests ?? 0) >= withD.t, `the target served B: ${JSON.stringify(s.perClient[B])}`);
    } finally {
      try { tb.execSync('target', 'nft', ['delete', 'table', 'ip', 'docker']); } catch { /* gone */ }
    }
  });
});
