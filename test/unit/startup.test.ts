/**
 * Start-up failures of both programs, as a user meets them: one line on stderr (no stack
 * trace), the same failure in the log file with -l, local errors before any intercept is
 * contacted, bad values named before anything starts. Nothing here sends a packet: the only
 * sockets are connects to 127.0.0.1 port 1 (refused) and a listen on 127.0.0.1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { setcapCommand } from '../../src/io/types';

const ROOT_DIR = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT_DIR, 'bin');
const IS_ROOT = process.getuid?.() === 0;
const NEEDS_ROOT = IS_ROOT ? false : 'needs root (tcpcopy opens its raw send socket first)';
/** An intercept nobody runs: connects are refused at once, on loopback. */
const NO_INTERCEPT = ['-s', '127.0.0.1', '-p', '1'];
const X = ['-x', '80-198.18.0.30:8080'];

function run(name: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [path.join(BIN, name), ...args], {
    encoding: 'utf8', timeout: 20_000, env: { ...process.env, TCPCOPY_LOG_LEVEL: '', ...env },
  });
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-startup-'));
}

/** One line on stderr that names the program, and nothing that looks like a stack trace. */
function assertOneLine(stderr: string, name: string, want: RegExp): void {
  const lines = stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `exactly one line on stderr, got:\n${stderr}`);
  assert.ok(lines[0].startsWith(`${name}: `), lines[0]);
  assert.match(lines[0], want);
  assert.doesNotMatch(stderr, /\n\s+at |sonic boom|Error:/, 'no stack trace');
}

function logLines(file: string): Array<Record<string, unknown>> {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A free TCP port on 127.0.0.1 (for intercept's control listener). */
function freePort(): number {
  const r = spawnSync(process.execPath, ['-e',
    "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

test('a start-up failure with -l: one line on stderr, the same line with its code in the log file (intercept, bad -F)', () => {
  const dir = tmpDir();
  const log = path.join(dir, 'intercept.log');
  const r = run('intercept', ['-i', 'lo', '-F', 'tcp and and', '-b', '127.0.0.1', '-p', String(freePort()), '-l', log]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, 'intercept', IS_ROOT ? /libpcap rejects the filter .*\[bad-filter\]$/ : /\[(no-permission|bad-filter)\]$/);
  const fatal = logLines(log).filter((l) => l.msg === 'start-up failed');
  assert.equal(fatal.length, 1, `one start-up failed line in ${log}`);
  assert.equal(fatal[0].code, IS_ROOT ? 'bad-filter' : fatal[0].code);
  assert.ok(r.stderr.includes(String(fatal[0].err)), 'the log says what stderr says');
});

test('a start-up failure with -l (tcpcopy, no intercept): logged with its code, no stack trace', { skip: NEEDS_ROOT }, () => {
  const dir = tmpDir();
  const log = path.join(dir, 'tcpcopy.log');
  const r = run('tcpcopy', [...X, ...NO_INTERCEPT, '-l', log]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, 'tcpcopy', /cannot connect to any intercept \(127\.0\.0\.1:1\).*\[no-intercept\]$/);
  const fatal = logLines(log).filter((l) => l.msg === 'start-up failed');
  assert.equal(fatal.length, 1);
  assert.equal(fatal[0].code, 'no-intercept');
});

test('--log-level and $TCPCOPY_LOG_LEVEL are validated and the levels listed', () => {
  for (const name of ['tcpcopy', 'intercept']) {
    const r = run(name, ['--log-level', 'loud']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /'loud' is not a log level; use one of fatal, error, warn, info, debug, trace/);
    assert.doesNotMatch(r.stderr, /undefined|custom levels/);
  }
  const e = run('intercept', ['-i', 'lo', '-F', 'tcp'], { TCPCOPY_LOG_LEVEL: 'verbose' });
  assert.equal(e.status, 1);
  assertOneLine(e.stderr, 'intercept', /TCPCOPY_LOG_LEVEL 'verbose' is not a log level/);
});

test('--user with an unknown user is refused before anything starts', { skip: IS_ROOT ? false : 'needs root' }, () => {
  const r = run('intercept', ['-i', 'lo', '-F', 'tcp', '-b', '127.0.0.1', '-p', String(freePort()), '--user', 'no-such-user-x']);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, 'intercept', /--user: no such user 'no-such-user-x'; create it .*\[no-such-user\]$/);
  assert.doesNotMatch(r.stdout + r.stderr, /intercept running|id: /);
});

test('-l and -P in a directory that does not exist: refused with the mkdir hint, nothing created', () => {
  const dir = tmpDir();
  const missing = path.join(dir, 'no', 'such');
  for (const [flag, file, code] of [['-l', path.join(missing, 'x.log'), 'log-file'], ['-P', path.join(missing, 'x.pid'), 'pidfile']]) {
    const r = run('intercept', ['-i', 'lo', '-F', 'tcp', '-b', '127.0.0.1', '-p', String(freePort()), flag, file]);
    assert.equal(r.status, 1, `${flag}: ${r.stderr}`);
    assertOneLine(r.stderr, 'intercept', new RegExp(`${flag} .*: the directory .*no/such does not exist; create it \\(mkdir -p .*\\).*\\[${code}\\]$`));
    assert.equal(fs.existsSync(path.join(dir, 'no')), false, `${flag} created no directory`);
  }
});

test('-i naming a directory says so', () => {
  const dir = tmpDir();
  const r = run('tcpcopy', [...X, ...NO_INTERCEPT, '-i', dir]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, 'tcpcopy', /-i .* is a directory; give a pcap\/pcapng file in it/);
});

test('local capture errors come before the intercepts: missing device, empty capture file', { skip: NEEDS_ROOT }, () => {
  const dir = tmpDir();
  const dev = run('tcpcopy', [...X, ...NO_INTERCEPT, '-i', 'nosuchdev0', '-F', 'tcp']);
  assert.equal(dev.status, 1);
  assertOneLine(dev.stderr, 'tcpcopy', /device 'nosuchdev0' does not exist.*\[no-device\]$/);
  const empty = path.join(dir, 'empty.pcap');
  fs.writeFileSync(empty, '');
  const e = run('tcpcopy', [...X, ...NO_INTERCEPT, '-i', empty]);
  assert.equal(e.status, 1);
  assertOneLine(e.stderr, 'tcpcopy', /cannot replay .*empty\.pcap: .*\[bad-capture-file\]$/);
  assert.doesNotMatch(e.stderr, /intercept/);
});

/** A classic little-endian pcap file of link type `lt` with one 40-byte record. */
function pcapOf(lt: number): Buffer {
  const h = Buffer.alloc(24 + 16 + 40);
  h.writeUInt32LE(0xa1b2c3d4, 0); h.writeUInt16LE(2, 4); h.writeUInt16LE(4, 6);
  h.writeUInt32LE(65535, 16); h.writeUInt32LE(lt, 20);
  h.writeUInt32LE(1, 24); h.writeUInt32LE(40, 32); h.writeUInt32LE(40, 36);
  return h;
}

/** A pcapng file: one section, one interface of link type `lt`, one 40-byte packet. */
function pcapngOf(lt: number): Buffer {
  const shb = Buffer.alloc(28);
  shb.writeUInt32LE(0x0a0d0d0a, 0); shb.writeUInt32LE(28, 4); shb.writeUInt32LE(0x1a2b3c4d, 8);
  shb.writeUInt16LE(1, 12); shb.writeUInt16LE(0, 14); shb.writeInt32LE(-1, 16); shb.writeInt32LE(-1, 20); shb.writeUInt32LE(28, 24);
  const idb = Buffer.alloc(20);
  idb.writeUInt32LE(1, 0); idb.writeUInt32LE(20, 4); idb.writeUInt16LE(lt, 8); idb.writeUInt32LE(65535, 12); idb.writeUInt32LE(20, 16);
  const epb = Buffer.alloc(32 + 40);
  epb.writeUInt32LE(6, 0); epb.writeUInt32LE(72, 4); epb.writeUInt32LE(0, 8); epb.writeUInt32LE(40, 20); epb.writeUInt32LE(40, 24);
  epb.writeUInt32LE(72, 68);
  return Buffer.concat([shb, idb, epb]);
}

test('a capture file of an unsupported link type: refused at start-up (pcap), counted and said (pcapng)', { skip: NEEDS_ROOT }, () => {
  const dir = tmpDir();
  const pcap = path.join(dir, 'user0.pcap');
  fs.writeFileSync(pcap, pcapOf(147));
  const r = run('tcpcopy', [...X, ...NO_INTERCEPT, '-i', pcap]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, 'tcpcopy', /cannot replay .*user0\.pcap: its link type DLT 147 is not supported .*\[link-type\]$/);

  // pcapng: interfaces may differ, so the records are counted as they come.
  const ng = path.join(dir, 'user0.pcapng');
  fs.writeFileSync(ng, pcapngOf(147));
  const log = path.join(dir, 'ng.log');
  const n = run('tcpcopy', [...X, ...NO_INTERCEPT, '-L', '-i', ng, '-l', log]);
  assert.equal(n.status, 0, n.stderr);
  const lines = logLines(log);
  assert.ok(lines.some((l) => /1 of 1 packets are of an unsupported link type/.test(String(l.msg))), 'the reason is said');
  const summary = lines.find((l) => l.msg === 'summary')?.summary as { malformed: Record<string, number>; captured: number };
  assert.deepEqual(summary.malformed, { 'unsupported-link-type': 1 });
  assert.equal(summary.captured, 1);
});

test('warnings are said once on stderr (and go to the log with -l): -F ignored, -g over -r', { skip: NEEDS_ROOT }, () => {
  const dir = tmpDir();
  // -F is ignored only by the raw socket (the ring, the default, applies it).
  const r = run('tcpcopy', [...X, ...NO_INTERCEPT, '--capture-engine', 'raw', '-F', 'tcp', '-g', '-r', '50']);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.split('-F applies to the ring and to libpcap capture').length - 1, 1, r.stderr);
  assert.equal(r.stderr.split('-r 50 is ignored').length - 1, 1, r.stderr);
  const log = path.join(dir, 't.log');
  run('tcpcopy', [...X, ...NO_INTERCEPT, '--capture-engine', 'raw', '-F', 'tcp', '-l', log]);
  assert.ok(logLines(log).some((l) => l.level === 40 && /-F applies to the ring and to libpcap capture/.test(String(l.msg))));
});

test('the setcap hint names the real node binary, also when node is started through a symlink', () => {
  const dir = tmpDir();
  const link = path.join(dir, 'node');
  fs.symlinkSync(process.execPath, link);
  const real = fs.realpathSync(process.execPath);
  const r = spawnSync(link, ['-e', `console.log(require(${JSON.stringify(path.join(ROOT_DIR, 'dist/src/io/types.js'))}).setcapCommand())`], { encoding: 'utf8' });
  assert.equal(r.stdout.trim(), `setcap cap_net_raw,cap_net_admin+ep ${real}`);
  assert.ok(!setcapCommand().includes('$('), 'no shell substitution to go wrong');
});

test('setup refuses a Node older than 20 with what to do', () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'node'), '#!/bin/sh\necho 18\n', { mode: 0o755 });
  const r = spawnSync('bash', [path.join(ROOT_DIR, 'scripts/setup.sh')], {
    encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, timeout: 20_000,
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /setup: Node\.js .* is too old; tcpcopy needs Node\.js 20 or newer \(Debian 12's nodejs package is 18/);
});

test('--user NAME that cannot read the program: a warning with the fix; a readable copy: no warning', { skip: IS_ROOT ? false : 'needs root' }, () => {
  const dir = tmpDir(); // mkdtemp: mode 0700, as a private home directory
  fs.chmodSync(dir, 0o700);
  const prog = path.join(dir, 'prog');
  fs.mkdirSync(prog);
  for (const part of ['bin', 'dist', 'node_modules', 'package.json']) {
    fs.cpSync(path.join(ROOT_DIR, part), path.join(prog, part), { recursive: true, verbatimSymlinks: true });
  }
  // The filter is bad on purpose: start-up gets past the --user check, then stops at libpcap.
  const args = [path.join(prog, 'bin', 'intercept'), '-i', 'lo', '-F', 'tcp and and', '-b', '127.0.0.1', '-p', String(freePort()), '--user', 'nobody'];
  const closed = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 20_000 });
  assert.match(closed.stderr, new RegExp(`intercept: warning: --user nobody cannot read ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b.*e\\.g\\. /opt/tcpcopy`));
  assert.match(closed.stderr, /\[bad-filter\]/);
  fs.chmodSync(dir, 0o755);
  const open = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 20_000 });
  assert.doesNotMatch(open.stderr, /warning/);
  assert.match(open.stderr, /\[bad-filter\]/);
  fs.rmSync(dir, { recursive: true, force: true });
});
