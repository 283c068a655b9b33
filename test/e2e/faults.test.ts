/**
 * Reliability end to end: the target misbehaving, an impaired network, daemons killed,
 * hostile packets at the online port, and what the online server's clients receive.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Testbed, TARGET_IP, ASSISTANT_IP, ONLINE_IP, HttpServerHandle, HttpServerStats } from '../../lab/testbed';
import { DaemonHandle, ROOT, num, startDaemon, waitFor } from '../../lab/daemons';
import { installedCopy } from '../../lab/install-copy';

const isRoot = process.getuid?.() === 0;

function fromClients(s: HttpServerStats, prefix = '198.18.1.'): number {
  let n = 0;
  for (const [ip, v] of Object.entries(s.perClient)) if (ip.startsWith(prefix)) n += v.requests;
  return n;
}

function rssMB(tb: Testbed, pid: number): number {
  const status = tb.execSync('online', 'cat', [`/proc/${pid}/status`]);
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : -1;
}

describe('faults, hostile input and safety', { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  let tb: Testbed;
  let online: HttpServerHandle;
  let target: HttpServerHandle;
  let icpt: DaemonHandle;

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 8, extraRoutesViaAssistant: ['198.18.2.0/24'] });
    online = await tb.startHttpServer('online', 80, { body: 200 });
    target = await tb.startHttpServer('target', 8080, { body: 200 });
    icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080']);
  });

  after(async () => {
    if (icpt) await icpt.stop();
    if (tb) await tb.destroy();
  });

  /** Runs `load`, then waits for the target to catch up; returns online and target deltas. */
  async function run(load: () => Promise<unknown>, prefixTarget = '198.18.1.', factor = 1) {
    const o0 = fromClients(await online.stats());
    const t0 = fromClients(await target.stats(), prefixTarget);
    await load();
    const o = fromClients(await online.stats()) - o0;
    let t = 0;
    let last = -1, since = Date.now();
    await waitFor(async () => {
      t = fromClients(await target.stats(), prefixTarget) - t0;
      if (t !== last) { last = t; since = Date.now(); }
      return t >= o * factor || Date.now() - since > 3000;
    }, 30000, 300);
    return { o, t };
  }

  test('target stops, then answers with RST, then comes back: replication resumes', async () => {
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, '-t', '3']);
    try {
      // The target process stops reading (SIGSTOP): the kernel accepts, nobody answers.
      target.child.kill('SIGSTOP');
      try {
        await tb.runLoad({ requests: 150, concurrency: 6, rate: 150, localAddrs: tb.clientIps });
        assert.ok(await waitFor(async () => num((await tc.freshStats())?.sessionsTimedOut) > 0, 15000, 100),
          'sessions with an unanswering target time out (-t 3)');
        assert.ok(rssMB(tb, tc.child.pid!) < 200, 'tcpcopy memory stays bounded');
      } finally {
        target.child.kill('SIGCONT');
      }
      await new Promise((r) => setTimeout(r, 1000));
      // The target's port is closed: SYNs are answered with RST.
      const stopped = await target.stop();
      assert.ok(stopped);
      await tb.runLoad({ requests: 100, concurrency: 4, rate: 200, localAddrs: tb.clientIps });
      const reset = await tc.freshStats();
      assert.ok(num(reset?.sessionsResetByTarget) >= 50, `target RSTs end sessions (${reset?.sessionsResetByTarget})`);
      // Back again.
      target = await tb.startHttpServer('target', 8080, { body: 200 });
      const { o, t } = await run(() => tb.runLoad({ requests: 300, concurrency: 6, rate: 300, localAddrs: tb.clientIps }));
      assert.equal(t, o, `after the target came back: ${t} of ${o}`);
      assert.equal(tc.child.exitCode, null);
    } finally {
      await tc.stop();
    }
  });

  test('impaired network (1% of frames to the target and to the assistant lost): ≥ 99% replicated', async () => {
    // This kernel has no netem (CONFIG_NET_SCH_NETEM is off): loss is made with nftables on
    // the bridge instead; delay and reordering cannot be emulated here.
    const nft = (...a: string[]) => tb.execSync('br', 'nft', a);
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP]);
    try {
      tb.execSync('br', 'nft', ['-f', '-'], { input: `table bridge impair {
  chain lossy {
    type filter hook forward priority 0;
    oifname "${tb.bridgePort('target')}" numgen random mod 100 < 1 counter drop
    oifname "${tb.bridgePort('assistant')}" numgen random mod 100 < 1 counter drop
  }
}
` });
      const { o, t } = await run(() => Promise.all([
        tb.runLoad({ requests: 400, concurrency: 6, rate: 100, localAddrs: tb.clientIps, durationMs: 30000 }),
        tb.runLoad({ requests: 400, concurrency: 4, keepalive: true, rate: 100, localAddrs: tb.clientIps, durationMs: 30000 }),
      ]));
      const dropped = [...nft('list', 'table', 'bridge', 'impair').matchAll(/packets (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
      const s = await tc.freshStats();
      console.log(`# 1% loss: ${t} of ${o} replicated, ${dropped} frames dropped, retransmissions ${num(s?.retransmissions)} + fast ${num(s?.fastRetransmissions)} + SYN ${num(s?.synRetransmissions)}`);
      assert.equal(o, 800);
      assert.ok(dropped > 0, 'the bridge dropped frames');
      assert.ok(t <= o, `no request reached the target twice (${t} for ${o})`);
      assert.ok(t >= Math.floor(o * 0.99), `replicated ${t} of ${o} with ${dropped} frames dropped (retransmissions ${num(s?.retransmissions)} + ${num(s?.fastRetransmissions)}, SYN ${num(s?.synRetransmissions)})`);
      assert.ok(num(s?.retransmissions) + num(s?.fastRetransmissions) + num(s?.synRetransmissions) > 0, 'losses were repaired by retransmission');
    } finally {
      try { nft('delete', 'table', 'bridge', 'impair'); } catch { /* none */ }
      await tc.stop();
    }
  });

  test('a killed tcpcopy loses its routes at intercept; another tcpcopy keeps its own', async () => {
    const a = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, '-c', '198.18.2.x']);
    const b = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP]);
    try {
      const r1 = await run(() => tb.runLoad({ requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps }));
      assert.equal(r1.t, r1.o, 'tcpcopy b replicates');
      await tb.stop(a.child, 'SIGKILL');
      assert.ok(await waitFor(() => icpt.lines().filter((l) => l.msg === 'tcpcopy disconnected' || l.msg === 'tcpcopy connection dropped').length >= 2, 5000), 'intercept saw both control connections of a go');
      const r2 = await run(() => tb.runLoad({ requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps }));
      assert.equal(r2.t, r2.o, 'tcpcopy b still gets its replies');
      const s = await icpt.freshStats();
      assert.equal(num(s?.tunnels), 2, 'only b\'s two connections remain');
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test('one of two intercepts gone for good: replication goes on through the other', async () => {
    const second = await startDaemon(tb, 'assistant', 'intercept', ['-p', '36525', '-i', tb.dev('assistant'), '-F', 'tcp and src port 8080']);
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP},${ASSISTANT_IP}:36525`]);
    try {
      await tb.stop(second.child, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 500));
      const { o, t } = await run(() => tb.runLoad({ requests: 300, concurrency: 6, rate: 300, localAddrs: tb.clientIps }));
      assert.equal(t, o);
      assert.equal(tc.child.exitCode, null, 'tcpcopy runs on');
    } finally {
      await tc.stop();
      await second.stop();
    }
  });

  test('hostile packets at the online port are counted by reason; real sessions are unaffected', async () => {
    // -F lets every IPv4 packet to the online port in (the filter built from -x would keep the
    // injected UDP datagrams out in the kernel), so that tcpcopy itself must sort them out.
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-i', tb.dev('online'), '-F', `ip and dst host ${ONLINE_IP} and dst port 80`,
      '-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP]);
    try {
      const inject = () => new Promise<{ sent: number; byKind: Record<string, number> }>((resolve) => {
        const c = tb.spawn('client', process.execPath, [path.join(ROOT, 'dist/lab/fixtures/inject.js'), '--dst', ONLINE_IP,
          '--port', '80', '--src', tb.clientIps[7], '--count', '6000']);
        let out = '';
        c.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
        c.once('exit', () => resolve(JSON.parse(out.trim() || '{"sent":0,"byKind":{}}') as { sent: number; byKind: Record<string, number> }));
      });
      const [{ o, t }, inj] = await Promise.all([
        run(() => tb.runLoad({ requests: 400, concurrency: 6, rate: 200, localAddrs: tb.clientIps.slice(0, 7) })),
        inject(),
      ]);
      console.log(`# hostile: ${inj.sent} packets injected; ${t} of ${o} real requests replicated`);
      assert.ok(inj.sent >= 5000, `injected ${inj.sent}`);
      assert.equal(t, o, 'every real request replicated during the attack');
      const s = await tc.freshStats();
      const bad = s?.malformed as Record<string, number>;
      assert.ok(bad['bad-data-offset'] > 0, `bad data offsets counted: ${JSON.stringify(bad)}`);
      assert.ok(bad.fragment > 0, 'fragments counted');
      // Every UDP datagram to the port passes the filter and is counted as not TCP: no more
      // (nothing else non-TCP passes this filter), and no fewer than libpcap delivered.
      const udp = inj.byKind.udp ?? 0;
      assert.ok(udp >= 400, `UDP datagrams injected: ${udp}`);
      assert.ok((bad['not-tcp'] ?? 0) <= udp && (bad['not-tcp'] ?? 0) >= udp * 0.95,
        `non-TCP counted: ${bad['not-tcp'] ?? 0} of ${udp} UDP datagrams (${JSON.stringify(bad)})`);
      assert.equal(tc.child.exitCode, null, 'tcpcopy survived');
    } finally {
      await tc.stop();
    }
  });

  test('-m: a flood of new sessions is shed near the memory limit, and tcpcopy stays under it', async () => {
    const limitMB = 140;
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, '-m', String(limitMB), '-t', '20']);
    try {
      const floodOnce = () => new Promise<{ sent: number }>((resolve) => {
        const c = tb.spawn('client', process.execPath, [path.join(ROOT, 'dist/lab/fixtures/inject.js'), '--dst', ONLINE_IP,
          '--port', '80', '--syn-flood', '250000', '--pps', '25000', '--src-net', '198.18.2.']);
        let out = '';
        c.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
        c.once('exit', () => resolve(JSON.parse(out.trim() || '{"sent":0}') as { sent: number }));
      });
      // On a busy machine tcpcopy may capture only a part of a 10 s flood (~10 % was seen with
      // two cores shared by many processes), too few sessions to reach the limit: flood again,
      // up to three times in all (each SYN a new session that lives -t 20 s), until it sheds.
      const flood = { sent: 0 };
      let s: Record<string, unknown> | undefined;
      for (let round = 0; round < 3; round++) {
        flood.sent += (await floodOnce()).sent;
        s = await tc.freshStats();
        if (num(s?.shed) > 0 || tc.child.exitCode !== null) break;
      }
      assert.ok(flood.sent > 200000, `flood of ${flood.sent} SYNs`);
      const status = tb.execSync('online', 'cat', [`/proc/${tc.child.pid}/status`]);
      const hwmMB = Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
      console.log(`# -m ${limitMB}: ${flood.sent} SYNs, sessions created ${num(s?.sessionsCreated)}, shed ${num(s?.shed)}, peak RSS ${hwmMB.toFixed(1)} MB`);
      assert.ok(tc.lines().some((l) => String(l.msg).includes('new sessions are shed')), 'shedding was logged');
      assert.ok(num(s?.shed) > 0, `sessions shed: ${s?.shed}, created ${s?.sessionsCreated}`);
      assert.ok(hwmMB <= limitMB, `peak RSS ${hwmMB.toFixed(1)} MB within the -m ${limitMB} MB limit`);
      assert.equal(tc.child.exitCode, null, 'shedding held: tcpcopy did not exit');
    } finally {
      await tc.stop();
    }
  });

  test('--secret: only a tcpcopy that knows the shared secret is served', async () => {
    const guarded = await startDaemon(tb, 'assistant', 'intercept', ['-p', '36527', '-i', tb.dev('assistant'), '-F', 'tcp and src port 8080', '--secret', 's3cret-1']);
    try {
      const good = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:36527`, '--secret', 's3cret-1']);
      try {
        const { o, t } = await run(() => tb.runLoad({ requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps }));
        assert.equal(t, o, 'replicated through the guarded intercept');
      } finally {
        await good.stop();
      }
      await assert.rejects(startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:36527`, '--secret', 'wrong']),
        /did not start/);
      // A tcpcopy without the secret speaks the original protocol: it connects, is dropped,
      // and replays nothing.
      const plain = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:36527`, '-L']);
      try {
        await new Promise((r) => setTimeout(r, 3500));
        const { t } = await run(() => tb.runLoad({ requests: 50, concurrency: 2, rate: 100, localAddrs: tb.clientIps }));
        assert.equal(t, 0, 'nothing replayed without the secret');
      } finally {
        await plain.stop();
      }
      assert.ok(await waitFor(() => guarded.lines().some((l) => l.reason === 'auth-failed'), 5000), 'intercept logged the failed authentication');
    } finally {
      await guarded.stop();
    }
  });

  test('--max-conns: control connections beyond the limit are refused, the others served', async () => {
    const ic = await startDaemon(tb, 'assistant', 'intercept', ['-p', '36529', '-i', tb.dev('assistant'), '-F', 'tcp and src port 8080', '--max-conns', '2']);
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:36529`, '-C', '3']);
    try {
      assert.ok(await waitFor(() => ic.lines().some((l) => l.msg === 'control connection refused: too many connections'), 5000, 100), 'the third connection was refused');
      const { o, t } = await run(() => tb.runLoad({ requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps }));
      assert.equal(t, o, 'the two accepted connections carry the replication');
      const s = await ic.freshStats();
      assert.equal(num(s?.tunnels), 2);
      assert.ok(num(s?.tunnelsRefused) >= 1);
    } finally {
      await tc.stop();
      await ic.stop();
    }
  });

  test('without root: a node binary with CAP_NET_RAW and CAP_NET_ADMIN runs both daemons as nobody', async () => {
    // A private copy of node gets the file capabilities, so the system's node is untouched.
    const node = path.join(tb.workDir, 'node-caps');
    require('node:fs').copyFileSync(process.execPath, node);
    require('node:fs').chmodSync(node, 0o755);
    require('node:fs').chmodSync(tb.workDir, 0o755);
    // The checkout may live where nobody cannot go (under /root, in a 0700 directory): nobody
    // runs a copy of the built program, in a directory of the bed's (world-readable) work
    // directory, as it would be installed (e.g. /opt/tcpcopy).
    const app = installedCopy(tb.workDir);
    tb.execSync('online', 'setcap', ['cap_net_raw,cap_net_admin+ep', node]);
    const asNobody = (host: 'online' | 'assistant', args: string[], log: string) =>
      tb.spawn(host, 'setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', node, ...args], { logFile: log });
    const icLog = path.join(tb.workDir, 'caps-intercept.log');
    const tcLog = path.join(tb.workDir, 'caps-tcpcopy.log');
    require('node:fs').writeFileSync(icLog, ''); require('node:fs').chmodSync(icLog, 0o666);
    require('node:fs').writeFileSync(tcLog, ''); require('node:fs').chmodSync(tcLog, 0o666);
    const ic = asNobody('assistant', [path.join(app, 'bin/intercept'), '-p', '36531', '-i', tb.dev('assistant'), '-F', 'tcp and src port 8080'], icLog);
    const started = (file: string, name: string) => waitFor(() => (require('node:fs').readFileSync(file, 'utf8') as string).includes(`"${name} running"`), 15000, 100);
    try {
      assert.ok(await started(icLog, 'intercept'), `intercept as nobody: ${require('node:fs').readFileSync(icLog, 'utf8')}`);
      const tc = asNobody('online', [path.join(app, 'bin/tcpcopy'), '-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:36531`], tcLog);
      try {
        assert.ok(await started(tcLog, 'tcpcopy'), `tcpcopy as nobody: ${require('node:fs').readFileSync(tcLog, 'utf8')}`);
        const uid = Number(/Uid:\s+(\d+)/.exec(tb.execSync('online', 'cat', [`/proc/${tc.pid}/status`]))![1]);
        assert.equal(uid, 65534, 'tcpcopy never had root');
        const { o, t } = await run(() => tb.runLoad({ requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps }));
        assert.equal(t, o, 'replication works with capabilities only');
      } finally {
        await tb.stop(tc);
      }
    } finally {
      await tb.stop(ic);
    }
  });

  test('--user: both daemons drop root after opening their sockets and keep working', async () => {
    const uid = (h: 'online' | 'assistant', pid: number) => Number(/Uid:\s+(\d+)/.exec(tb.execSync(h, 'cat', [`/proc/${pid}/status`]))![1]);
    const ic = await startDaemon(tb, 'assistant', 'intercept', ['-p', '36528', '-i', tb.dev('assistant'), '-F', 'tcp and src port 8080', '--user', 'nobody']);
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:36528`, '--user', 'nobody']);
    try {
      // "running" is logged once the sockets are open, the switch to the user follows it: wait for it (bounded).
      await waitFor(() => uid('assistant', ic.child.pid!) === 65534 && uid('online', tc.child.pid!) === 65534, 5000, 50);
      assert.equal(uid('assistant', ic.child.pid!), 65534, 'intercept runs as nobody');
      assert.equal(uid('online', tc.child.pid!), 65534, 'tcpcopy runs as nobody');
      const { o, t } = await run(() => tb.runLoad({ requests: 200, concurrency: 4, rate: 200, localAddrs: tb.clientIps }));
      assert.equal(t, o, 'replication works unprivileged');
    } finally {
      await tc.stop();
      await ic.stop();
    }
  });

  test('the online server\'s clients receive nothing from tcpcopy', async () => {
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, '-n', '2']);
    const file = path.join(tb.workDir, 'client-in.txt');
    const dump = tb.spawn('client', 'tcpdump', ['-l', '-nn', '-Q', 'in', '-i', tb.dev('client'),
      // ICMP is left out: the online kernel's own ICMP (e.g. reassembly timeouts for the
      // fragments of the hostile-input test) is not tcpcopy's; tcpcopy only sends TCP.
      `ip and not igmp and not icmp and not (src host ${ONLINE_IP} and tcp src port 80)`], { logFile: file });
    try {
      await new Promise((r) => setTimeout(r, 800));
      const { o, t } = await run(() => Promise.all([
        tb.runLoad({ requests: 300, concurrency: 6, rate: 300, localAddrs: tb.clientIps }),
        tb.runLoad({ requests: 300, concurrency: 4, keepalive: true, rate: 300, localAddrs: tb.clientIps }),
      ]), '198.18.1.', 2);
      assert.equal(t, 2 * o);
      await new Promise((r) => setTimeout(r, 500));
      await tb.stop(dump, 'SIGINT');
      const text = require('node:fs').readFileSync(file, 'utf8') as string;
      const packets = text.split('\n').filter((l) => /^\d\d:\d\d/.test(l));
      assert.deepEqual(packets, [], 'clients received only the online server\'s own replies');
    } finally {
      await tc.stop();
    }
  });
});
