/**
 * Daemon behaviour of both programs: -d (detached, the command returns once it runs), -P
 * (written, refused while its process lives, removed on exit), -l (JSON log), SIGHUP
 * (reopens the log file after rotation), SIGTERM (summary, clean exit).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Testbed, TARGET_IP, ASSISTANT_IP, pidAlive } from '../../lab/testbed';
import { BIN, waitFor } from '../../lab/daemons';

const isRoot = process.getuid?.() === 0;

const alive = pidAlive;

function lines(file: string): Record<string, unknown>[] {
  let t = '';
  try { t = fs.readFileSync(file, 'utf8'); } catch { return []; }
  return t.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('daemon mode', { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  let tb: Testbed;
  const started: number[] = [];

  before(async () => { tb = await Testbed.create(); });
  after(async () => {
    for (const pid of started) if (alive(pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    if (tb) await tb.destroy();
  });

  /** Runs a program with -d inside a namespace; returns its exit status and output. */
  function runDetached(host: 'assistant' | 'online', name: 'intercept' | 'tcpcopy', args: string[]) {
    return spawnSync('ip', ['netns', 'exec', tb.ns(host), process.execPath, BIN[name], ...args, '-d'], { encoding: 'utf8', timeout: 30000 });
  }

  for (const name of ['intercept', 'tcpcopy'] as const) {
    test(`${name}: -d, -P, -l, SIGHUP and SIGTERM`, async () => {
      const host = name === 'intercept' ? 'assistant' : 'online';
      const pidfile = path.join(tb.workDir, `${name}.pid`);
      const log = path.join(tb.workDir, `${name}.log`);
      const args = name === 'intercept'
        ? ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080', '-p', '36540', '-P', pidfile, '-l', log, '--stats-interval', '1']
        : ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:36540`, '-L', '-P', pidfile, '-l', log, '--stats-interval', '1'];
      const t0 = Date.now();
      const r = runDetached(host, name, args);
      assert.equal(r.status, 0, `${name} -d: ${r.stderr}`);
      assert.match(r.stdout, /running in the background, pid \d+/);
      assert.ok(Date.now() - t0 < 15000, 'the command returned once the daemon ran');
      const pid = Number(fs.readFileSync(pidfile, 'utf8').trim());
      started.push(pid);
      assert.ok(pid > 0 && alive(pid), 'the pid file names the live daemon');
      assert.match(r.stdout, new RegExp(`pid ${pid}\\b`));
      assert.ok(lines(log).some((l) => l.msg === `${name} running`), 'the log file has the start line');

      // A second instance with the same pid file is refused, and says why.
      const again = runDetached(host, name, args.map((a) => (a === '36540' ? '36541' : a)));
      assert.notEqual(again.status, 0);
      assert.match(again.stderr, new RegExp(`pid file .* belongs to running process ${pid}`));
      assert.ok(alive(pid), 'the first one keeps running');

      // logrotate: move the file, SIGHUP, the daemon writes a new one.
      fs.renameSync(log, `${log}.1`);
      process.kill(pid, 'SIGHUP');
      assert.ok(await waitFor(() => lines(log).some((l) => l.msg === 'log file reopened' || l.msg === 'statistics'), 5000, 100), 'a new log file after SIGHUP');

      process.kill(pid, 'SIGTERM');
      assert.ok(await waitFor(() => !alive(pid), 10000, 100), 'SIGTERM stops it');
      assert.ok(!fs.existsSync(pidfile), 'the pid file is removed on exit');
      const summary = lines(log).find((l) => l.msg === 'summary');
      assert.ok(summary, 'a summary line at exit');
      assert.equal((summary.summary as Record<string, unknown>).reason, 'SIGTERM');
    });
  }

  test('a stale pid file (its process is gone) is replaced', async () => {
    const pidfile = path.join(tb.workDir, 'stale.pid');
    fs.writeFileSync(pidfile, '999999\n');
    const log = path.join(tb.workDir, 'stale.log');
    const r = runDetached('assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp', '-p', '36542', '-P', pidfile, '-l', log]);
    assert.equal(r.status, 0, r.stderr);
    const pid = Number(fs.readFileSync(pidfile, 'utf8').trim());
    started.push(pid);
    assert.notEqual(pid, 999999);
    process.kill(pid, 'SIGTERM');
    assert.ok(await waitFor(() => !alive(pid), 10000, 100));
  });

  test('-d reports a start-up failure and exits non-zero', () => {
    const r = runDetached('assistant', 'intercept', ['-i', 'nosuchdev0', '-F', 'tcp', '-p', '36543', '-l', path.join(tb.workDir, 'fail.log')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /nosuchdev0/);
  });
});
