/**
 * Our addon (native/) on real traffic, in a private network namespace of its own (`unshare -n`,
 * loopback only, gone with the probe process even when it fails): the ring's kernel filter,
 * its direction and protocol choices, the snap length, PACKET_STATISTICS drops, and sendmmsg.
 * The daemons on these engines are covered by the other e2e files (the default engine).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { nativeAvailable } from '../../src/io/native';
import { installedCopy } from '../../lab/install-copy';

const isRoot = process.getuid?.() === 0;
const PROBE = path.join(__dirname, 'native-probe.js');
const ROOT = path.resolve(__dirname, '../../..');

/**
 * Runs the probe in a private namespace; as nobody, from a copy every user can read (the
 * checkout itself may live where nobody cannot, e.g. in a 0700 directory).
 */
function probe(mode: string, asNobody = false): Record<string, any> {
  let copyDir = '';
  let script = PROBE;
  if (asNobody) {
    copyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-native-'));
    fs.chmodSync(copyDir, 0o755);
    script = path.join(installedCopy(copyDir, ['dist/test/e2e/native-probe.js']), 'dist/test/e2e/native-probe.js');
  }
  const cmd = asNobody
    ? ['unshare', '-n', 'setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', process.execPath, script, mode]
    : ['unshare', '-n', process.execPath, PROBE, mode];
  try {
    return runProbe(cmd, mode);
  } finally {
    if (copyDir) fs.rmSync(copyDir, { recursive: true, force: true });
  }
}

function runProbe(cmd: string[], mode: string): Record<string, any> {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `probe ${mode} exited ${r.status}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, any>;
}

describe('native addon: ring capture and sendmmsg in a private namespace', { skip: (!isRoot && 'needs root') || (!nativeAvailable() && 'addon not built') }, () => {
  const r = isRoot && nativeAvailable() ? probe('all') : {};

  test('the ring sees each inbound packet once, filtered in the kernel', () => {
    assert.equal(r.error, undefined);
    // One SYN per connection: unbound, IPv4 only, inbound only.
    assert.equal(r.inbound.syn, r.conns);
    assert.equal(r.inbound.synAck, 0, 'outgoing replies are not captured, the filter keeps dst port 7001 only');
    assert.equal(r.inbound.wrongPort, 0);
    assert.equal(r.inbound.ring.kernelDrops, 0);
    assert.equal(r.inbound.ring.kernelPackets, r.inbound.packets, 'the kernel counted what JavaScript received');
    assert.ok(r.inbound.ring.wakeups <= r.inbound.packets / 2, `packets batch per wakeup (${r.inbound.ring.wakeups} wakeups for ${r.inbound.packets} packets)`);
  });

  test('intercept-style ring: both directions on the device, snap length counted', () => {
    // On loopback a packet passes twice (out, then in): both are captured when direction is not filtered.
    assert.equal(r.replies.synAck, 2 * r.conns);
    assert.equal(r.replies.syn, 0);
    assert.equal(r.replies.wrongPort, 0);
    // The 300-byte echoes are cut by the 64-byte snap length, the header-only packets are not.
    assert.equal(r.replies.truncated, 2 * r.conns);
    assert.equal(r.replies.ring.truncated, r.replies.truncated);
  });

  test('sendmmsg: every datagram arrives, in one system call per batch', () => {
    assert.equal(r.udp.received, r.udp.sent);
    assert.equal(r.udp.sender.sent, r.udp.sent);
    assert.equal(r.udp.sender.errors, 0);
    assert.ok(r.udp.sender.sendmmsgCalls <= 8, `system calls: ${r.udp.sender.sendmmsgCalls}`);
  });

  test('a full ring: kernel drops are counted, delivered + dropped = accepted', () => {
    const b = r.burst;
    assert.ok(b.ring.kernelDrops > 0, 'a burst into a four-block ring that is not read drops');
    assert.equal(b.ring.kernelPackets, b.sent, 'the kernel saw every datagram of the burst');
    assert.equal(b.delivered + b.ring.kernelDrops, b.ring.kernelPackets);
    assert.equal(b.ring.fellBehind, 1, 'the drops made the capture report itself behind');
  });

  test('the daemons: engines in the start-up line, one warning and the old path without the addon, a clear exit on a rejected filter', () => {
    const run = (env: string, daemon: string, args: string): { rc: number | null; out: string } => {
      const script = `ip link set lo up; ${env} timeout -s TERM 3 ${process.execPath} ${path.join(ROOT, 'bin', daemon)} ${args}`;
      const r = spawnSync('unshare', ['-n', 'sh', '-c', script], { encoding: 'utf8', timeout: 20_000 });
      return { rc: r.status, out: r.stdout + r.stderr };
    };
    const lines = (out: string) => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const tc = '-x 80-127.0.0.2:8080 -s 127.0.0.1 -L --stats-interval 1';

    const fast = lines(run('', 'tcpcopy', tc).out);
    const up = fast.find((l) => l.msg === 'tcpcopy running');
    assert.equal(up?.captureEngine, 'ring');
    assert.equal(up?.sendEngine, 'mmsg');
    const st = fast.find((l) => l.msg === 'summary')?.summary as Record<string, unknown>;
    assert.equal(st.captureEngine, 'ring');
    assert.equal(typeof (st.ringCapture as Record<string, unknown>).kernelDrops, 'number');

    const old = lines(run('TCPCOPY_NO_NATIVE=1', 'tcpcopy', tc).out);
    assert.equal(old.find((l) => l.msg === 'tcpcopy running')?.captureEngine, 'raw');
    const warnings = old.filter((l) => l.level === 40 && /addon|ring|sendmmsg/.test(String(l.msg)));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));

    const icpt = lines(run('TCPCOPY_NO_NATIVE=1', 'intercept', "-F 'tcp and src port 8080' -p 36590 --stats-interval 1").out);
    assert.equal(icpt.find((l) => l.msg === 'intercept running')?.captureEngine, 'pcap');

    for (const [daemon, args] of [['tcpcopy', `${tc} -F 'ether host 02:00:00:00:00:01'`], ['intercept', "-F 'tcp and' -p 36591"]]) {
      const bad = run('', daemon, args);
      assert.equal(bad.rc, 1, bad.out);
      assert.match(bad.out, /libpcap rejects the filter/);
      assert.doesNotMatch(bad.out, /\n\s+at /, 'no stack trace');
    }
  });

  test('without CAP_NET_RAW: a coded error, no crash', () => {
    const n = probe('nopriv', true);
    assert.deepEqual(n, { ring: 'no-permission', sender: 'no-permission' });
  });
});
