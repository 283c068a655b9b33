/**
 * Self-test of the namespace test bed and its fixtures (HTTP server, load client).
 * Needs root (network namespaces); skipped otherwise. Runs in well under a minute.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  pidAlive,
  CLIENT_IPS,
  ONLINE_IP,
  TARGET_IP,
  Testbed,
  listNetns,
  type HttpServerStats,
} from '../../lab/testbed';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'e2e tests need root to create network namespaces (run as root)';


/** True while the process exists and is not a zombie. */
function pidRunning(pid: number): boolean {
  if (!pidAlive(pid)) return false;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** PIDs of `pids` still running after waiting up to `ms` for them to go. */
async function survivors(pids: readonly number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const alive = pids.filter(pidRunning);
    if (alive.length === 0 || Date.now() > deadline) return alive;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Destroys the bed and checks that nothing of it is left. */
async function destroyAndCheck(tb: Testbed): Promise<void> {
  await tb.destroy();
  await tb.destroy(); // idempotent
  const left = listNetns().filter((n) => n.startsWith(tb.prefix));
  assert.deepEqual(left, [], `namespaces left after destroy(): ${left.join(', ')}`);
  const alive = tb.pids.filter(pidAlive);
  assert.deepEqual(alive, [], `tracked PIDs still alive after destroy(): ${alive.join(', ')}`);
  assert.equal(fs.existsSync(tb.workDir), process.env.TESTBED_KEEP === '1');
}

/** Unicast IPv4 packets delivered to a namespace (multicast/broadcast such as IGMP excluded). */
function unicastIn(c: Record<string, number>): number {
  return (c.IpInReceives ?? 0) - (c.IpExtInMcastPkts ?? 0) - (c.IpExtInBcastPkts ?? 0);
}

function clientOnly(stats: HttpServerStats, ip: string): number {
  return stats.perClient[ip]?.requests ?? 0;
}

before(() => {
  if (isRoot) Testbed.cleanupStale();
});

test('one client address: topology, exact request counts, black hole at the assistant', { skip, timeout: 40_000 }, async () => {
  const tb = await Testbed.create();
  try {
    assert.equal(tb.ns('online'), `${tb.prefix}online`);
    assert.deepEqual(tb.clientIps, [CLIENT_IPS[0]]);

    // Topology as specified.
    const targetRoutes = tb.execSync('target', 'ip', ['route', 'show']);
    assert.match(targetRoutes, /198\.18\.1\.0\/24 via 198\.18\.0\.40/);
    assert.match(targetRoutes, /198\.18\.2\.0\/24 via 198\.18\.0\.40/);
    assert.match(tb.execSync('online', 'ip', ['route', 'show']), /198\.18\.1\.0\/24 dev v-online scope link/);
    assert.equal(tb.execSync('assistant', 'sysctl', ['-n', 'net.ipv4.ip_forward']).trim(), '0');
    assert.equal(tb.execSync('br', 'sysctl', ['-n', 'net.bridge.bridge-nf-call-iptables']).trim(), '0');
    for (const host of ['client', 'online', 'target', 'assistant'] as const) {
      for (const conf of ['all', 'default', tb.dev(host)]) {
        assert.equal(tb.execSync(host, 'sysctl', ['-n', `net.ipv4.conf.${conf}.rp_filter`]).trim(), '0', `${host} ${conf}`);
      }
    }
    const features = tb.execSync('online', 'ethtool', ['-k', tb.dev('online')]);
    assert.match(features, /^tcp-segmentation-offload: off/m);
    assert.match(features, /^generic-receive-offload: off/m);
    assert.match(tb.execSync('br', 'ethtool', ['-k', tb.bridgePort('online')]), /^tx-checksumming: off/m);

    const online = await tb.startHttpServer('online', 80, { body: 100 });
    const target = await tb.startHttpServer('target', 8080, { body: 10 });

    // Bounded load from the client to the online server: short connections, then keep-alive POSTs.
    const short = await tb.runLoad({ requests: 200, concurrency: 10, durationMs: 15_000 });
    assert.equal(short.ok, 200, `short load: ${JSON.stringify(short)}`);
    assert.equal(short.errors, 0);
    assert.equal(short.connections, 200);
    const keep = await tb.runLoad({ requests: 200, concurrency: 4, keepalive: true, perConn: 20, body: 64, durationMs: 15_000 });
    assert.equal(keep.ok, 200, `keep-alive load: ${JSON.stringify(keep)}`);
    assert.ok(keep.connections >= 10 && keep.connections <= 16, `keep-alive connections: ${keep.connections}`);
    assert.equal(keep.bodyBytesSent, 200 * 64);

    const s = await online.stats();
    assert.equal(s.requests, short.ok + keep.ok);
    assert.equal(s.connections, short.connections + keep.connections);
    assert.deepEqual(Object.keys(s.perClient), [CLIENT_IPS[0]]);
    assert.equal(clientOnly(s, CLIENT_IPS[0]), 400);
    assert.equal(s.bodyBytes, keep.bodyBytesSent);
    assert.ok(s.headerBytes > 400 * 40, `headerBytes ${s.headerBytes}`);
    assert.equal(s.requestBytes, s.headerBytes + s.bodyBytes);
    assert.equal(s.responseBodyBytes, 400 * 100);
    assert.equal(s.abortedRequests, 0);
    // A second snapshot has a newer seq and the same counts.
    const s2 = await online.stats();
    assert.ok(s2.seq > s.seq);
    assert.equal(s2.requests, 400);

    // The target answers hosts on its own segment (positive control) ...
    const fromOnline = await tb.runLoad({ host: 'online', url: `http://${TARGET_IP}:8080/`, requests: 20, concurrency: 4, durationMs: 10_000 });
    assert.equal(fromOnline.ok, 20);

    // ... but its packets to client addresses go to the assistant and die there.
    // Everything IPv4 that reaches the client namespace (any interface, lo included), with the
    // link-layer packet type (In = unicast to this host, B = broadcast, M = multicast), so a
    // failure says exactly which packet it was.
    const cap = await tb.startCapture('client', ['-i', 'any', '-e', '-Q', 'in', 'ip']);
    const a0 = tb.nstat('assistant');
    const c0 = tb.nstat('client');
    const probe = tb.execSync('target', process.execPath, [
      '-e',
      `const s = require('net').connect(9, '${CLIENT_IPS[0]}');
       const t = setTimeout(() => { console.log('timeout'); s.destroy(); }, 1200);
       s.on('connect', () => { console.log('connected'); clearTimeout(t); s.destroy(); });
       s.on('error', (e) => { console.log(e.code); clearTimeout(t); });`,
    ]);
    assert.equal(probe.trim(), 'timeout', 'a SYN from the target to a client address must vanish (no RST, no answer)');
    // A client request to the target: the SYN arrives, the SYN-ACK is black-holed.
    const toTarget = await tb.runLoad({ url: `http://${TARGET_IP}:8080/`, requests: 1, timeoutMs: 1200, durationMs: 5000 });
    assert.equal(toTarget.ok, 0);
    assert.deepEqual(toTarget.errorKinds, { timeout: 1 });
    const a1 = tb.nstat('assistant');
    const c1 = tb.nstat('client');
    const windowEnd = Date.now() / 1000;
    // Control: a packet that does reach the client (a SYN from the online server to port 9,
    // answered by the client's RST) shows up in the capture as unicast, after the window.
    const control = tb.execSync('online', process.execPath, ['-e',
      `const s = require('net').connect(9, '${CLIENT_IPS[0]}');
       const t = setTimeout(() => { console.log('timeout'); s.destroy(); }, 2000);
       s.on('connect', () => { console.log('connected'); clearTimeout(t); s.destroy(); });
       s.on('error', (e) => { console.log(e.code); clearTimeout(t); });`]).trim();
    assert.equal(control, 'ECONNREFUSED', 'the client answers the online server directly');
    await new Promise((r) => setTimeout(r, 300));
    const all = await cap.stop();
    // tcpdump -tt prints the kernel's receive time in seconds since the epoch, as Date.now().
    const seen = all.filter((l) => Number(l.split(' ')[0]) <= windowEnd);
    const after = all.filter((l) => Number(l.split(' ')[0]) > windowEnd);
    const unicast = (lines: string[]) => lines.filter((l) => / In /.test(l));
    assert.ok(unicast(after).some((l) => l.includes(`${ONLINE_IP}.`) && l.includes(`${CLIENT_IPS[0]}.9:`)),
      `the capture sees packets that do reach the client (control): ${after.join('\n') || '(none)'}`);
    const shown = `counters: IpInReceives +${(c1.IpInReceives ?? 0) - (c0.IpInReceives ?? 0)}, ` +
      `IpExtInMcastPkts +${(c1.IpExtInMcastPkts ?? 0) - (c0.IpExtInMcastPkts ?? 0)}, ` +
      `IpExtInBcastPkts +${(c1.IpExtInBcastPkts ?? 0) - (c0.IpExtInBcastPkts ?? 0)}, ` +
      `IpInAddrErrors +${(c1.IpInAddrErrors ?? 0) - (c0.IpInAddrErrors ?? 0)}, TcpInSegs +${(c1.TcpInSegs ?? 0) - (c0.TcpInSegs ?? 0)}; ` +
      `packets captured in the client namespace during the window:\n${seen.join('\n') || '(none)'}`;
    assert.ok(a1.IpInAddrErrors - a0.IpInAddrErrors >= 2, `assistant IpInAddrErrors +${a1.IpInAddrErrors - a0.IpInAddrErrors}`);
    assert.equal(a1.IpForwDatagrams, a0.IpForwDatagrams, 'the assistant must not forward');
    if (seen.length || unicastIn(c1) - unicastIn(c0) !== 0) console.log(`# black-hole window: ${shown}`);
    // Judged by the packets themselves, not by the namespace's counters: a counter snapshot
    // (nstat) is not atomic across its lines, and IpInReceives also counts packets that are
    // neither unicast nor counted as multicast/broadcast (a multicast to a group the host has
    // not joined). The counters are shown in the message.
    assert.deepEqual(seen.filter((l) => l.includes(`${TARGET_IP}.`)), [], `the client must not receive any packet from the target; ${shown}`);
    assert.deepEqual(unicast(seen), [], `the client must not receive any unicast IP packet; ${shown}`);
    assert.ok(c1.TcpActiveOpens - c0.TcpActiveOpens >= 1);

    const ts = await target.stats();
    assert.equal(clientOnly(ts, ONLINE_IP), 20);
    assert.equal(clientOnly(ts, CLIENT_IPS[0]), 0);
    assert.equal(ts.perClient[CLIENT_IPS[0]], undefined, 'no connection from the client may complete on the target');

    // stop() resolves with the exit status; the server writes final stats on SIGTERM.
    const final = await online.stop();
    assert.equal(final?.requests, 400);
    assert.equal(online.child.exitCode, 0);
  } finally {
    await destroyAndCheck(tb);
  }
});

test('four client addresses, offloads on: load spread per client IP', { skip, timeout: 30_000 }, async () => {
  const tb = await Testbed.create({ clientAddrs: 4, offloads: true, extraRoutesViaAssistant: ['198.18.2.0/24', '198.18.3.0/24'] });
  try {
    assert.deepEqual(tb.clientIps, CLIENT_IPS.slice(0, 4));
    const addrs = tb.execSync('client', 'ip', ['-4', '-br', 'addr', 'show', 'dev', tb.dev('client')]);
    for (const ip of tb.clientIps) assert.ok(addrs.includes(`${ip}/24`), `client address ${ip} missing: ${addrs}`);
    assert.match(tb.execSync('target', 'ip', ['route', 'show']), /198\.18\.3\.0\/24 via 198\.18\.0\.40/);
    assert.match(tb.execSync('online', 'ethtool', ['-k', tb.dev('online')]), /^tcp-segmentation-offload: on/m);

    const online = await tb.startHttpServer('online', 80);
    const short = await tb.runLoad({ requests: 200, concurrency: 8, localAddrs: tb.clientIps, durationMs: 15_000 });
    assert.equal(short.ok, 200, JSON.stringify(short));
    for (const ip of tb.clientIps) assert.equal(short.okByLocalAddr[ip], 50, `short load from ${ip}`);
    const keep = await tb.runLoad({
      requests: 100, concurrency: 4, keepalive: true, perConn: 10, localAddrs: tb.clientIps, durationMs: 15_000,
    });
    assert.equal(keep.ok, 100, JSON.stringify(keep));

    const s = await online.stats();
    assert.equal(s.requests, 300);
    assert.deepEqual(Object.keys(s.perClient).sort(), [...tb.clientIps].sort());
    for (const ip of tb.clientIps) {
      const expected = (short.okByLocalAddr[ip] ?? 0) + (keep.okByLocalAddr[ip] ?? 0);
      assert.equal(clientOnly(s, ip), expected, `requests from ${ip}`);
      assert.ok(expected >= 50, `${ip} served ${expected}`);
    }
  } finally {
    await destroyAndCheck(tb);
  }
});

test('bad options are refused before anything is created', { skip }, async () => {
  const before = listNetns();
  await assert.rejects(Testbed.create({ clientAddrs: 33 }), /clientAddrs/);
  await assert.rejects(Testbed.create({ extraRoutesViaAssistant: ['10.0.0.0/8'] }), /outside 198\.18\.0\.0\/15/);
  await assert.rejects(Testbed.create({ extraRoutesViaAssistant: ['198.18.0.0/16'] }), /overlaps the server segment/);
  assert.deepEqual(listNetns(), before);
});

test('cleanupStale() deletes namespaces of dead processes only', { skip }, () => {
  const dead = spawnSync('true').pid;
  assert.ok(dead && !pidAlive(dead));
  const stale = `tcb${dead}x1-stale`;
  const mine = `tcb${process.pid}x999-mine`;
  spawnSync('ip', ['netns', 'add', stale]);
  spawnSync('ip', ['netns', 'add', mine]);
  try {
    const deleted = Testbed.cleanupStale();
    assert.ok(deleted.includes(stale), `deleted: ${deleted.join(', ')}`);
    const names = listNetns();
    assert.ok(!names.includes(stale));
    assert.ok(names.includes(mine), 'a live process’s namespace must survive');
  } finally {
    for (const ns of [stale, mine]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
});

test('SIGTERM to a process holding a bed removes its namespaces and children', { skip, timeout: 20_000 }, async () => {
  const script = `
    const { Testbed } = require(${JSON.stringify(path.join(__dirname, '../../lab/testbed.js'))});
    (async () => {
      const tb = await Testbed.create();
      const srv = await tb.startHttpServer('online', 80);
      console.log(JSON.stringify({ prefix: tb.prefix, pids: tb.pids }));
      setTimeout(() => {}, 30000);
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const info = await new Promise<{ prefix: string; pids: number[] }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no bed within 10 s; stderr: ${err}`)), 10_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { prefix: string; pids: number[] });
      }
    });
    child.once('exit', (code) => reject(new Error(`bed process exited early (${code}): ${err}`)));
  }).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  assert.equal(listNetns().filter((n) => n.startsWith(info.prefix)).length, 5);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  let hung: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited, new Promise<'hung'>((r) => (hung = setTimeout(() => r('hung'), 10_000)))]);
  clearTimeout(hung);
  if (code === 'hung') child.kill('SIGKILL');
  assert.equal(code, 143);
  try {
    assert.deepEqual(listNetns().filter((n) => n.startsWith(info.prefix)), []);
    // The exit hook SIGKILLs children by PID; orphaned, they are reaped by init a little later.
    assert.deepEqual(await survivors(info.pids, 3000), [], 'children of the SIGTERMed bed still running');
  } finally {
    for (const ns of listNetns().filter((n) => n.startsWith(info.prefix))) spawnSync('ip', ['netns', 'del', ns]);
  }
});

after(() => {
  if (!isRoot) return;
  // Nothing of this process may survive the file.
  const mine = listNetns().filter((n) => n.startsWith(`tcb${process.pid}x`));
  assert.deepEqual(mine, []);
});
