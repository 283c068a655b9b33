/**
 * MySQL / MariaDB session replay end to end: Debian's mariadbd on the online host and on the
 * target (each its own datadir and socket, started and stopped by PID; same users and
 * privileges, different passwords), our intercept (--payload) on the assistant, our tcpcopy on
 * the online host, load from the client host with Debian's mariadb-slap (short sessions) and
 * the mariadb CLI running a script (one session, many statements). The target's Com_* and
 * Questions deltas must equal the online server's; without the module the same load is refused
 * at the target; bad input is skipped, counted, and tcpcopy keeps running.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { Testbed, TARGET_IP, ASSISTANT_IP, ONLINE_IP, IpHost } from '../../lab/testbed';
import { DaemonHandle, num, startDaemon, waitFor } from '../../lab/daemons';

const isRoot = process.getuid?.() === 0;
const haveMariadb = spawnSync('sh', ['-c', 'command -v mariadbd && command -v mariadb-install-db && command -v mariadb-slap'], { stdio: 'ignore' }).status === 0;
const skip = !isRoot ? 'needs root (network namespaces)' : !haveMariadb ? 'needs mariadb-server and mariadb-client (scripts/setup.sh installs them)' : false;

const PORT = 3306;
/** A port where fake servers send a malformed greeting. */
const BAD_PORT = 3307;
const STATUS = ['Com_select', 'Com_insert', 'Com_update', 'Questions', 'Aborted_connects', 'Access_denied_errors', 'Connections'];
type Status = Record<string, number>;

interface Db {
  host: IpHost; ip: string; sock: string; child: ChildProcess;
  /** Status queries made; what one costs in Questions and Connections (measured in before()). */
  calls: number; questionsPerCall: number; connectionsPerCall: number;
}

describe('MySQL/MariaDB replay through the mysql module', { skip }, () => {
  let tb: Testbed;
  let online: Db;
  let target: Db;
  let icpt: DaemonHandle;
  let tc: DaemonHandle | null = null;
  let confGood: string;
  const fakes: ChildProcess[] = [];

  function sql(db: Db, statements: string): string {
    return tb.execSync(db.host, 'mariadb', ['--no-defaults', '-S', db.sock, '-uroot', '-N', '-B', '-e', statements], { timeoutMs: 20000 });
  }
  /** The counters; `calls` is how many status queries this test made on that server (each one connection, one question). */
  function status(db: Db): Status {
    db.calls++;
    const out = sql(db, `SHOW GLOBAL STATUS WHERE Variable_name IN (${STATUS.map((s) => `'${s}'`).join(',')})`);
    const st: Status = {};
    for (const line of out.trim().split('\n')) {
      const [k, v] = line.split('\t');
      st[k] = Number(v);
    }
    st.calls = db.calls;
    st.questionsPerCall = db.questionsPerCall;
    st.connectionsPerCall = db.connectionsPerCall;
    return st;
  }
  /** Deltas, the test's own status queries taken out of Questions and Connections. */
  const diff = (a: Status, b: Status): Status => {
    const d: Status = Object.fromEntries(STATUS.map((k) => [k, b[k] - a[k]]));
    d.Questions -= (b.calls - a.calls) * b.questionsPerCall;
    d.Connections -= (b.calls - a.calls) * b.connectionsPerCall;
    return d;
  };

  async function startDb(host: IpHost, ip: string, dataDir: string): Promise<Db> {
    const sock = path.join(tb.workDir, `${host}.sock`);
    const child = tb.spawn(host, 'mariadbd', ['--no-defaults', `--datadir=${dataDir}`, `--socket=${sock}`, `--bind-address=${ip}`,
      `--port=${PORT}`, '--user=root', `--pid-file=${path.join(tb.workDir, `${host}.pid`)}`, `--log-error=${path.join(tb.workDir, `${host}-mariadb.err`)}`,
      '--skip-name-resolve', '--max-connections=300', '--max-connect-errors=1000000', '--innodb-buffer-pool-size=16M',
      '--skip-log-bin', '--performance-schema=0'], { logFile: path.join(tb.workDir, `${host}-mariadb.out`) });
    const db = { host, ip, sock, child, calls: 0, questionsPerCall: 0, connectionsPerCall: 0 };
    const up = await waitFor(() => {
      if (child.exitCode !== null) return true;
      try { sql(db, 'SELECT 1'); return true; } catch { return false; }
    }, 30000, 200);
    assert.ok(up && child.exitCode === null, `mariadbd on ${host} started: ${fs.readFileSync(path.join(tb.workDir, `${host}-mariadb.err`), 'utf8').slice(-1500)}`);
    return db;
  }

  /** Users on both servers: the same names and privileges, other passwords on the target. */
  function users(db: Db, pw: Record<string, string>): void {
    sql(db, [
      'CREATE DATABASE bench',
      'CREATE TABLE bench.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, c VARCHAR(32))',
      ...Object.entries(pw).flatMap(([u, p]) => [
        `CREATE USER '${u}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${p}')`,
        `GRANT ALL ON bench.* TO '${u}'@'%'`,
      ]),
    ].join(';'));
  }

  async function tcpcopy(extra: string[]): Promise<DaemonHandle> {
    if (tc) await tc.stop();
    tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `${ONLINE_IP}:${PORT}-${TARGET_IP}:${PORT},${ONLINE_IP}:${BAD_PORT}-${TARGET_IP}:${BAD_PORT}`,
      '-s', ASSISTANT_IP, '--payload', ...extra]);
    return tc;
  }

  function client(cmd: string, args: string[], input?: string): string {
    return tb.execSync('client', cmd, ['--no-defaults', ...args], { timeoutMs: 60000, input });
  }
  /** mariadb-slap: short sessions (each client of each iteration connects, runs its queries, quits). */
  function slap(user: string, pw: string): void {
    client('mariadb-slap', ['-h', ONLINE_IP, `-u${user}`, `-p${pw}`, '--create-schema=bench', '--concurrency=4', '--iterations=6',
      '--query=SELECT COUNT(*) FROM t;INSERT INTO t (v, c) VALUES (1, \'slap\');UPDATE t SET v = v + 1 WHERE id = 1;SELECT v FROM t WHERE id = 1',
      '--delimiter=;']);
  }
  /** The mariadb CLI running a script: one connection, many statements. */
  function longSession(user: string, pw: string, statements = 120): void {
    const lines: string[] = [];
    for (let i = 0; i < statements; i++) {
      if (i % 3 === 0) lines.push(`INSERT INTO t (v, c) VALUES (${i}, 'cli-${i}');`);
      else if (i % 3 === 1) lines.push(`UPDATE t SET v = v + 1 WHERE c = 'cli-${i - 1}';`);
      else lines.push(`SELECT COUNT(*), SUM(v) FROM t WHERE c LIKE 'cli-%';`);
    }
    client('mariadb', ['-h', ONLINE_IP, `-u${user}`, `-p${pw}`, 'bench'], lines.join('\n') + '\n');
  }

  /** Waits until the target's counters stop moving (or reach the online deltas), bounded. */
  async function settle(base: Status, want: Status): Promise<Status> {
    let last = '';
    let stableSince = Date.now();
    let d = diff(base, status(target));
    await waitFor(() => {
      d = diff(base, status(target));
      const key = JSON.stringify(d);
      if (key !== last) { last = key; stableSince = Date.now(); }
      // The status query itself is one of the target's Questions.
      return (d.Com_select >= want.Com_select && d.Com_insert >= want.Com_insert && d.Com_update >= want.Com_update) || Date.now() - stableSince > 3000;
    }, 30000, 300);
    return d;
  }

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 1 });
    const dataOnline = path.join(tb.workDir, 'online-db');
    const dataTarget = path.join(tb.workDir, 'target-db');
    tb.execSync('online', 'mariadb-install-db', ['--no-defaults', `--datadir=${dataOnline}`, '--user=root',
      '--auth-root-authentication-method=normal', '--skip-test-db'], { timeoutMs: 120000 });
    spawnSync('cp', ['-a', dataOnline, dataTarget]);
    [online, target] = await Promise.all([startDb('online', ONLINE_IP, dataOnline), startDb('target', TARGET_IP, dataTarget)]);
    for (const db of [online, target]) {
      // What one status query costs, so that deltas can leave the test's own queries out.
      const a = status(db);
      const b = status(db);
      db.questionsPerCall = b.Questions - a.Questions;
      db.connectionsPerCall = b.Connections - a.Connections;
      assert.ok(db.questionsPerCall >= 1 && db.connectionsPerCall === 1, `a status query: ${db.questionsPerCall} questions, ${db.connectionsPerCall} connections`);
    }
    users(online, { app: 'online-pw', ghost: 'ghost-pw', wrong: 'w-online' });
    users(target, { app: 'target-pw', ghost: 'ghost-target', wrong: 'w-target' });
    confGood = path.join(tb.workDir, 'plugin.conf');
    fs.writeFileSync(confGood, '# the target\'s passwords\nuser app@target-pw, wrong@not-the-target-password;\n', { mode: 0o600 });
    icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', `tcp and (src port ${PORT} or src port ${BAD_PORT})`, '--payload']);
  });

  after(async () => {
    if (tc) await tc.stop();
    if (icpt) await icpt.stop();
    for (const f of fakes) await tb.stop(f);
    // mariadbd flushes and exits on SIGTERM; destroy() would SIGKILL it after 5 s.
    if (online) await tb.stop(online.child, 'SIGTERM', 20000);
    if (target) await tb.stop(target.child, 'SIGTERM', 20000);
    await tb?.destroy();
  });

  test('with --module mysql: the target executes what the online server executed, no aborted connects', async () => {
    const t = await tcpcopy(['--module', 'mysql', '--module-conf', confGood]);
    const o0 = status(online);
    const t0 = status(target);
    slap('app', 'online-pw');
    longSession('app', 'online-pw');
    const o = diff(o0, status(online));
    const d = await settle(t0, o);
    const st = (await t.freshStats()) ?? {};
    console.log(`mysql replay: online ${JSON.stringify(o)} target ${JSON.stringify(d)} tcpcopy auth ${num(st.mysqlAuthenticated)} skipped ${JSON.stringify(st.sessionsSkippedByReason)}`);
    assert.ok(o.Com_select > 60 && o.Com_insert > 40 && o.Com_update > 40, `the load ran online: ${JSON.stringify(o)}`);
    for (const k of ['Com_select', 'Com_insert', 'Com_update', 'Questions', 'Connections']) {
      assert.equal(d[k], o[k], `${k}: target ${d[k]} = online ${o[k]}`);
    }
    assert.equal(d.Aborted_connects, 0, 'no aborted connects at the target');
    assert.equal(d.Access_denied_errors, 0);
    assert.equal(num(st.mysqlAuthenticated), o.Connections, 'every session logged in at the target');
    assert.equal(num(st.sessionsSkipped), 0);
    // Same rows on both sides.
    assert.equal(sql(target, 'SELECT COUNT(*), SUM(v) FROM bench.t'), sql(online, 'SELECT COUNT(*), SUM(v) FROM bench.t'));
  });

  test('bad input: unknown user, wrong password in the file, malformed login, malformed greeting, a session already running: skipped, counted, tcpcopy goes on', async () => {
    if (tc) { await tc.stop(); tc = null; }
    // A session that logs in before tcpcopy starts and runs its next statement after.
    const running = tb.spawn('client', 'mariadb', ['--no-defaults', '-h', ONLINE_IP, '-uapp', '-ponline-pw', '-N', '-e', 'SELECT SLEEP(4); SELECT 44']);
    await new Promise((r) => setTimeout(r, 500));
    const t = await tcpcopy(['--module', 'mysql', '--module-conf', confGood]);
    // Fake servers on BAD_PORT: the online one sends nothing, the target's a malformed greeting.
    const fake = (greeting: string) => `require('net').createServer((s) => { s.on('error', () => {}); ${greeting} }).listen(${BAD_PORT}, process.argv[1])`;
    fakes.push(tb.spawn('online', process.execPath, ['-e', fake(''), ONLINE_IP]));
    fakes.push(tb.spawn('target', process.execPath, ['-e', fake('s.write(Buffer.from("050000000a352e35ff", "hex"));'), TARGET_IP]));
    await new Promise((r) => setTimeout(r, 800));
    const t0 = status(target);
    for (let i = 0; i < 2; i++) {
      assert.match(client('mariadb', ['-h', ONLINE_IP, '-ughost', '-pghost-pw', '-N', '-e', 'SELECT 42']), /42/);
      assert.match(client('mariadb', ['-h', ONLINE_IP, '-uwrong', '-pw-online', '-N', '-e', 'SELECT 43']), /43/);
    }
    // A login packet too short to be one: the online server says "Bad handshake".
    const rawLogin = `const s = require('net').connect(${PORT}, '${ONLINE_IP}'); s.once('data', () => s.write(Buffer.from('0400000100020000', 'hex'))); s.on('data', () => {}); s.on('close', () => process.exit(0)); setTimeout(() => process.exit(0), 3000);`;
    tb.execSync('client', process.execPath, ['-e', rawLogin], { timeoutMs: 10000 });
    // A session to the fake pair: the target's greeting is malformed.
    const rawBad = `const s = require('net').connect(${BAD_PORT}, '${ONLINE_IP}'); s.on('connect', () => s.write('hello')); s.on('error', () => {}); setTimeout(() => { s.destroy(); process.exit(0); }, 800);`;
    tb.execSync('client', process.execPath, ['-e', rawBad], { timeoutMs: 10000 });
    let by: Record<string, number> = {};
    await waitFor(async () => {
      const st = await t.freshStats();
      by = (st?.sessionsSkippedByReason ?? {}) as Record<string, number>;
      return num(by['unknown-user']) >= 2 && num(by['auth-failed']) >= 2 && num(by['bad-handshake-response']) >= 1 && num(by['bad-greeting']) >= 1 &&
        num(by['no-handshake']) >= 1;
    }, 15000, 300);
    console.log(`bad input skipped: ${JSON.stringify(by)}`);
    assert.equal(num(by['unknown-user']), 2, 'unknown user: both sessions skipped');
    assert.equal(num(by['auth-failed']), 2, 'wrong password in the file: the target refused, the session was skipped');
    assert.equal(num(by['bad-handshake-response']), 1, 'malformed login packet');
    assert.equal(num(by['bad-greeting']), 1, 'malformed greeting');
    assert.equal(num(by['no-handshake']), 1, 'the session running when tcpcopy started');
    await waitFor(() => running.exitCode !== null, 10000, 100);
    assert.equal(running.exitCode, 0, 'the running session ended normally online');
    const warnings = t.lines().filter((l) => typeof l.msg === 'string' && (l.msg as string).includes('cannot be replayed (unknown-user)'));
    assert.equal(warnings.length, 1, 'logged once per reason');
    assert.equal(t.child.exitCode, null, 'tcpcopy keeps running');
    const d1 = diff(t0, status(target));
    assert.equal(d1.Com_select, 0, 'nothing of the skipped sessions ran at the target');
    // And a good session after all that is replayed.
    const o0 = status(online);
    const t1 = status(target);
    longSession('app', 'online-pw', 30);
    const o = diff(o0, status(online));
    const d = await settle(t1, o);
    assert.equal(d.Com_select, o.Com_select);
    assert.equal(d.Com_insert, o.Com_insert);
    assert.equal(d.Aborted_connects, 0);
  });

  test('without the module the same load is refused at the target (the module does the work)', async () => {
    const t = await tcpcopy([]);
    const o0 = status(online);
    const t0 = status(target);
    slap('app', 'online-pw');
    longSession('app', 'online-pw', 30);
    const o = diff(o0, status(online));
    let d = diff(t0, status(target));
    // Every replayed session ends in "access denied" at the target (and is retried by plain replay).
    await waitFor(() => { d = diff(t0, status(target)); return d.Access_denied_errors >= o.Connections; }, 20000, 300);
    await new Promise((r) => setTimeout(r, 1500));
    d = diff(t0, status(target));
    console.log(`plain replay: online ${JSON.stringify(o)} target ${JSON.stringify(d)}`);
    assert.ok(o.Com_select > 50, 'the load ran online');
    assert.equal(d.Com_select, 0, 'no statement ran at the target');
    assert.equal(d.Com_insert, 0);
    assert.ok(d.Access_denied_errors >= o.Connections, `every session refused: ${d.Access_denied_errors} access denied for ${o.Connections} sessions`);
    assert.ok(d.Aborted_connects > 0);
    assert.equal(t.child.exitCode, null);
  });
});
