/**
 * The installable package: `npm pack` makes a tarball that `npm install -g` installs into a
 * fresh prefix (building the cap and raw-socket addons), with tcpcopy and intercept on its
 * PATH and their man pages in share/man; the installed intercept captures and serves metrics.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import { ROOT } from '../../lab/daemons';

const isRoot = process.getuid?.() === 0;
const has = (cmd: string, arg = '--version') => spawnSync(cmd, [arg], { encoding: 'utf8' }).status === 0;

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60000, maxBuffer: 32 << 20 });
  if (r.error) throw r.error;
  return r;
}

describe('npm pack and npm install -g', () => {
  let tmp: string;
  let tarball: string;
  let prefix: string;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-pkg-'));
    prefix = path.join(tmp, 'prefix');
  });
  after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

  test('npm pack: the built code, launchers, man pages and units, not the sources or tests', () => {
    // The suite has built dist/ already; the prepack script (build + man pages) is skipped here
    // so that the running tests' files are not rewritten under them: only the pages are written.
    const m = run(process.execPath, [path.join(ROOT, 'scripts', 'man.js')], { cwd: ROOT });
    assert.equal(m.status, 0, m.stderr);
    const r = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT, timeoutMs: 120000 });
    assert.equal(r.status, 0, r.stderr);
    const info = (JSON.parse(r.stdout) as { filename: string; files: { path: string }[] }[])[0];
    tarball = path.join(tmp, info.filename);
    assert.ok(fs.existsSync(tarball));
    const files = info.files.map((f) => f.path);
    for (const f of ['bin/tcpcopy', 'bin/intercept', 'dist/src/cli/tcpcopy.js', 'dist/src/daemon/metrics.js', 'man/tcpcopy.1', 'man/intercept.1',
      'packaging/systemd/tcpcopy.service', 'packaging/systemd/intercept.service', 'package.json', 'README.md', 'LICENSE']) {
      assert.ok(files.includes(f), `the package has ${f}`);
    }
    assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('src/') || f.startsWith('test/')), 'no sources or tests');
    if (fs.existsSync(path.join(ROOT, 'binding.gyp'))) assert.ok(files.includes('binding.gyp'), 'the native addon\'s build file');
  });

  test('npm install -g into a fresh prefix: both commands on the PATH, with man pages', { timeout: 600000 }, () => {
    assert.ok(tarball, 'packed');
    const r = run('npm', ['install', '-g', tarball, '--prefix', prefix, '--allow-scripts=cap,raw-socket', '--prefer-offline', '--no-audit', '--no-fund'],
      { cwd: tmp, timeoutMs: 540000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const env = { ...process.env, PATH: `${path.join(prefix, 'bin')}:${process.env.PATH}` };
    const v = run('tcpcopy', ['-v'], { env });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), 'tcpcopy 0.1.0 (control protocol version 6)');
    assert.equal(run('which', ['tcpcopy'], { env }).stdout.trim(), path.join(prefix, 'bin', 'tcpcopy'));
    const h = run('tcpcopy', ['--help'], { env });
    assert.equal(h.status, 0);
    assert.match(h.stdout, /--metrics <\[host:\]port>/);
    const iv = run('intercept', ['-v'], { env });
    assert.equal(iv.stdout.trim(), 'intercept 0.1.0 (control protocol version 6)');
    assert.match(run('intercept', ['--help'], { env }).stdout, /-F, --filter <filter>/);
    for (const name of ['tcpcopy', 'intercept']) {
      const page = path.join(prefix, 'share', 'man', 'man1', `${name}.1`);
      assert.ok(fs.existsSync(page), `${page} installed`);
      if (has('man')) {
        const m = run('man', ['-M', path.join(prefix, 'share', 'man'), name], { env: { ...env, MANWIDTH: '100', PAGER: 'cat' } });
        assert.equal(m.status, 0, m.stderr);
        assert.match(m.stdout.replace(/.\x08/g, ''), new RegExp(`^${name.toUpperCase()}\\(1\\)`));
      }
    }
    // The addons were built: they load from the installed tree.
    const mods = path.join(prefix, 'lib', 'node_modules', 'tcpcopy', 'node_modules');
    const load = run(process.execPath, ['-e', `require(${JSON.stringify(path.join(mods, 'cap'))}); require(${JSON.stringify(path.join(mods, 'raw-socket'))})`]);
    assert.equal(load.status, 0, load.stderr);
  });

  test('the installed units pass systemd-analyze verify, man: links included', { skip: !has('systemd-analyze') && 'systemd-analyze not installed' }, () => {
    assert.ok(fs.existsSync(path.join(prefix, 'bin', 'tcpcopy')), 'installed');
    const dir = path.join(prefix, 'lib', 'node_modules', 'tcpcopy', 'packaging', 'systemd');
    const r = run('systemd-analyze', ['verify', path.join(dir, 'tcpcopy.service'), path.join(dir, 'intercept.service')],
      { env: { ...process.env, MANPATH: path.join(prefix, 'share', 'man'), PATH: `${path.join(prefix, 'bin')}:${process.env.PATH}` } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no warnings');
  });

  test('the installed intercept captures and serves /metrics (in a namespace of its own)', { skip: (!isRoot || !has('unshare')) && 'needs root and unshare' }, () => {
    const bin = path.join(prefix, 'bin', 'intercept');
    assert.ok(fs.existsSync(bin), 'installed');
    const fetch = 'fetch("http://127.0.0.1:9100/metrics").then(async (r) => process.stdout.write(await r.text()), () => process.exit(1))';
    // A fresh network namespace with only loopback; the intercept is stopped by its pid.
    const script = [
      'set -e', 'ip link set lo up',
      `${JSON.stringify(bin)} -i lo -F 'tcp and src port 9' --metrics 9100 --log-format json 2>"$LOG" & P=$!`,
      `for i in $(seq 1 100); do ${JSON.stringify(process.execPath)} -e ${JSON.stringify(fetch).replace(/\$/g, '\\$')} >"$OUT" 2>/dev/null && break; sleep 0.1; done`,
      'kill -TERM $P; wait $P || true',
    ].join('\n');
    const env = { ...process.env, LOG: path.join(tmp, 'icpt.log'), OUT: path.join(tmp, 'scrape.txt') };
    const r = run('timeout', ['60', 'unshare', '-n', 'bash', '-c', script], { env, timeoutMs: 70000 });
    assert.equal(r.status, 0, `${r.stderr}\n${fs.existsSync(env.LOG) ? fs.readFileSync(env.LOG, 'utf8') : ''}`);
    const text = fs.readFileSync(env.OUT, 'utf8');
    assert.match(text, /^intercept_captured_packets_total \d+$/m);
    assert.match(text, /^intercept_build_info\{version="0\.1\.0",nodejs="v\d+\.\d+\.\d+"\} 1$/m);
    assert.ok(fs.readFileSync(env.LOG, 'utf8').includes('"msg":"summary"'), 'stopped cleanly');
  });
});
