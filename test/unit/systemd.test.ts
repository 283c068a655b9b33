/**
 * The systemd units in packaging/systemd: the settings the issue asks for, and
 * `systemd-analyze verify` accepts them without a warning (when systemd-analyze is there).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

const DIR = path.resolve(__dirname, '../../../packaging/systemd');
const hasAnalyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0;

function verify(file: string): { status: number | null; out: string } {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8', timeout: 30000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

for (const name of ['tcpcopy', 'intercept']) {
  const file = path.join(DIR, `${name}.service`);
  test(`${name}.service: foreground, restarted on failure, capabilities for a non-root user`, () => {
    const text = fs.readFileSync(file, 'utf8');
    const set = (k: string) => text.split('\n').filter((l) => l.startsWith(`${k}=`)).map((l) => l.slice(k.length + 1));
    assert.equal(set('Type')[0], 'simple');
    // $X_ARGS is split at spaces by systemd; the intercept's filter (spaces) is one argument: ${X}.
    assert.match(set('ExecStart')[0], name === 'intercept' ? /\bintercept -F \$\{INTERCEPT_FILTER\} \$INTERCEPT_ARGS$/ : /\btcpcopy \$TCPCOPY_ARGS$/);
    assert.ok(!/ -d\b|--daemon/.test(set('ExecStart')[0]), 'no -d under systemd');
    assert.equal(set('Restart')[0], 'on-failure');
    assert.equal(set('User')[0], name);
    assert.equal(set('AmbientCapabilities')[0], 'CAP_NET_RAW CAP_NET_ADMIN');
    assert.equal(set('Documentation')[0], `man:${name}(1)`);
  });

  test(`systemd-analyze verify accepts ${name}.service`, { skip: !hasAnalyze && 'systemd-analyze not installed' }, () => {
    const r = verify(file);
    assert.equal(r.status, 0, r.out);
    assert.equal(r.out, '', 'no warnings');
  });
}

test('systemd-analyze verify does complain about a broken unit (the check is real)', { skip: !hasAnalyze && 'systemd-analyze not installed' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-unit-'));
  try {
    const bad = path.join(dir, 'tcpcopy.service');
    fs.writeFileSync(bad, fs.readFileSync(path.join(DIR, 'tcpcopy.service'), 'utf8').replace('Restart=on-failure', 'Restart=sometimes'));
    assert.notEqual(verify(bad).out, '');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
