/**
 * `npm run bench`: measures our tcpcopy and intercept with real nginx servers and wrk (or the
 * Node load client) in a network-namespace test bed, and writes
 *   bench/results/<ISO date>.json   every run, every figure, machine information
 *   docs/benchmarks.md              tables per scenario next to the original C tcpcopy's figures
 *   docs/benchmarks.svg             a chart (loss %, tcpcopy CPU per 1,000 requests)
 *
 *   node dist/bench/bench.js [--seconds N] [--runs R] [--scenarios 1,4] [--profile] [--render FILE] [-h]
 *
 * Root only (network namespaces). Everything it starts lives in the bed's namespaces and is
 * stopped by PID; the bed is destroyed on exit, on failure and on SIGINT/SIGTERM.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SourceMap } from 'node:module';
import { createHash } from 'node:crypto';
import { Testbed, ONLINE_IP, TARGET_IP, ASSISTANT_IP, type IpHost, type LoadResult } from '../lab/testbed';
import { startDaemon, BIN, ROOT, waitFor, type DaemonHandle } from '../lab/daemons';

// ---------------------------------------------------------------------------------- options

interface Options {
  seconds: number;
  runs: number;
  scenarios: number[];
  profile: boolean;
  /** The scenario the profiled run repeats (default 4, keep-alive at maximum rate). */
  profileScenario: number;
  /** Run the daemons from a copy of dist/ taken at the start (default true). */
  snapshot: boolean;
  /** Wait before each run until other processes use less than this % of the CPUs … */
  quietPct: number;
  /** … for at most this many seconds. */
  quietWait: number;
  /** Only regenerate docs/benchmarks.{md,svg} from this results file (no runs, no root needed). */
  render?: string;
  /** Extra tcpcopy arguments for every run (`{dev}` = the online host's veth). */
  tcpcopyArgs?: string[];
}

const USAGE = `usage: node dist/bench/bench.js [options]   (as root; npm run bench does the set-up first)

Benchmarks tcpcopy + intercept in a network-namespace test bed with nginx and wrk, and writes
bench/results/<date>.json, docs/benchmarks.md and docs/benchmarks.svg.

options:
  --seconds N       load duration of each run (default 10)
  --runs R          runs per scenario; the tables show the median and min–max (default 3)
  --scenarios LIST  which scenarios, e.g. 1,4 (default all: 1,2,3,4,5)
  --profile         afterwards, one extra run of scenario 4 (keep-alive) with tcpcopy under
                    node --cpu-prof; its hottest functions go into the JSON and the markdown
  --profile-scenario N  the same with scenario N
  --quiet-wait S    before each run, wait up to S s (default 20) while processes outside the
                    bench (other test beds, builds) use more than --quiet-pct % of the CPUs
  --quiet-pct P     (default 5); at most 90 s of waiting in all; the CPU other processes
                    used during each load is recorded either way
  --no-snapshot     run the daemons straight from dist/ (default: from a copy of dist/src and
                    bin taken at the start, so a rebuild during the bench changes nothing)
  --tcpcopy-args "A B"  extra tcpcopy arguments for every run ({dev} = the online veth), e.g.
                    --tcpcopy-args "-i {dev}" to measure libpcap capture instead of the raw socket
  --render FILE     only regenerate docs/benchmarks.md and .svg from a results file
  -h, --help        this text

scenarios:
`;

function usageText(): string {
  return USAGE + SCENARIOS.map((s) => `  ${s.id}  ${s.title}`).join('\n') + '\n';
}

function die(msg: string, code = 2): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(code);
}

function parseArgs(argv: string[]): Options {
  const o: Options = { seconds: 10, runs: 3, scenarios: SCENARIOS.map((s) => s.id), profile: false, profileScenario: 4, snapshot: true, quietPct: 5, quietWait: 20 };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) { value = arg.slice(eq + 1); arg = arg.slice(0, eq); }
    const next = (): string => {
      if (value !== undefined) return value;
      const v = argv[++i];
      if (v === undefined) die(`${arg} needs a value\n${usageText()}`);
      return v;
    };
    const int = (v: string, min: number, max: number): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) die(`${arg} must be an integer in [${min}, ${max}], got "${v}"`);
      return n;
    };
    switch (arg) {
      case '-h': case '--help': process.stdout.write(usageText()); process.exit(0);
      case '--seconds': o.seconds = int(next(), 1, 600); break;
      case '--runs': o.runs = int(next(), 1, 50); break;
      case '--scenarios': {
        const ids = next().split(',').map((s) => s.trim()).filter(Boolean).map((s) => int(s, 1, SCENARIOS.length));
        if (!ids.length) die('--scenarios needs at least one number, e.g. --scenarios 1,4');
        o.scenarios = [...new Set(ids)].sort((a, b) => a - b);
        break;
      }
      case '--profile': o.profile = true; break;
      case '--no-snapshot': o.snapshot = false; break;
      case '--render': o.render = next(); break;
      case '--profile-scenario': o.profile = true; o.profileScenario = int(next(), 1, SCENARIOS.length); break;
      case '--quiet-wait': o.quietWait = int(next(), 0, 3600); break;
      case '--quiet-pct': o.quietPct = int(next(), 1, 100); break;
      case '--tcpcopy-args': o.tcpcopyArgs = next().split(' ').filter(Boolean); break;
      default: die(`unknown argument "${argv[i]}"\n${usageText()}`);
    }
  }
  return o;
}

// -------------------------------------------------------------------------------- scenarios

interface Original {
  /** Online req/s the original's figures were taken at ('' when not published). */
  rps: string;
  /** Loss % range of the original ([lo, hi]); null when no figure is published. */
  loss: [number, number] | null;
  /** tcpcopy CPU ms per 1,000 requests; null when not published. */
  tcpcopyCpu: number | null;
  interceptCpu: number | null;
}

interface Scenario {
  id: number;
  key: string;
  title: string;
  tool: 'wrk' | 'node';
  keepalive: boolean;
  copies: number;
  /** wrk: threads and connections. Node client: concurrency, addresses, rate (0: unlimited). */
  threads?: number;
  conns: number;
  addrs?: number;
  rate?: number;
  original: Original;
}

const SCENARIOS: readonly Scenario[] = [
  {
    id: 1, key: 'short-1k', title: 'Short connections, ~1,000 req/s, 16 client addresses',
    tool: 'node', keepalive: false, copies: 1, conns: 32, addrs: 16, rate: 1000,
    original: { rps: '~1,000', loss: [0, 0], tcpcopyCpu: 120, interceptCpu: 75 },
  },
  {
    id: 2, key: 'short-max-1ip', title: 'Short connections, maximum rate, one client address',
    tool: 'wrk', keepalive: false, copies: 1, threads: 2, conns: 64,
    original: { rps: 'max', loss: [12, 30], tcpcopyCpu: 90, interceptCpu: 75 },
  },
  {
    id: 3, key: 'short-max-16ip', title: 'Short connections, maximum rate, 16 client addresses',
    tool: 'node', keepalive: false, copies: 1, conns: 128, addrs: 16,
    original: { rps: 'max', loss: [0, 2], tcpcopyCpu: 100, interceptCpu: 75 },
  },
  {
    id: 4, key: 'keepalive-max', title: 'Keep-alive, maximum rate',
    tool: 'wrk', keepalive: true, copies: 1, threads: 2, conns: 64,
    original: { rps: '~30,000', loss: [0, 0], tcpcopyCpu: 12, interceptCpu: 7 },
  },
  {
    id: 5, key: 'keepalive-n2', title: 'Keep-alive, maximum rate, two copies (-n 2)',
    tool: 'wrk', keepalive: true, copies: 2, threads: 2, conns: 64,
    original: { rps: '', loss: null, tcpcopyCpu: null, interceptCpu: null },
  },
];

const TARGETS = { lossPct: 0.1, rssMB: 100 };

function loadCommand(s: Scenario, seconds: number, ips: readonly string[]): string {
  if (s.tool === 'wrk') {
    return `wrk -t${s.threads} -c${s.conns} -d${seconds}s --timeout 2s${s.keepalive ? '' : " -H 'Connection: close'"} http://${ONLINE_IP}/`;
  }
  const addrs = ips.slice(0, s.addrs ?? 1);
  return `load-client --concurrency ${s.conns}${s.rate ? ` --rate ${s.rate}` : ''} --local-addrs ${addrs[0]}…${addrs[addrs.length - 1]} ` +
    `(${addrs.length} addresses) --duration-ms ${seconds * 1000}${s.rate ? ' (+3 s to finish)' : ''} --timeout-ms 2000`;
}

// ----------------------------------------------------------------------------- measurement

const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; }
})();

/** utime+stime of a process (all its threads), in ms; NaN when it is gone. */
function cpuMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ", field 3 (state) is f[0]; utime is field 14 → f[11], stime f[12].
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** utime alone (ms): the daemon's own code, without system calls. */
function userMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[11]) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Peak resident set size (VmHWM) in MB; NaN when unknown. */
function peakRssMB(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Busy and total jiffies of the whole machine (/proc/stat "cpu" line). */
function machineCpu(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Child PIDs of a process (nginx master → worker). */
function childPids(pid: number | undefined): number[] {
  if (!pid) return [];
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** utime+stime (ms) of every process on the machine; kernel threads flagged. */
function allProcessCpu(): Map<number, { ms: number; kernel: boolean }> {
  const out = new Map<number, { ms: number; kernel: boolean }>();
  let names: string[] = [];
  try { names = fs.readdirSync('/proc'); } catch { return out; }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${n}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pid = Number(n);
      out.set(pid, { ms: ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK, kernel: pid === 2 || f[1] === '2' });
    } catch { /* gone */ }
  }
  return out;
}

/**
 * CPU (ms) that processes outside this bench used between two scans: everything but our own
 * PIDs and kernel threads (other test beds, builds, … on a shared machine).
 */
function foreignCpuMs(a: Map<number, { ms: number; kernel: boolean }>, b: Map<number, { ms: number; kernel: boolean }>,
  ours: Set<number>): { ms: number; top: { pid: number; ms: number; cmd: string }[] } {
  let ms = 0;
  const per: { pid: number; ms: number }[] = [];
  for (const [pid, v] of b) {
    if (v.kernel || ours.has(pid)) continue;
    const d = v.ms - (a.get(pid)?.ms ?? 0);
    if (d > 0) { ms += d; per.push({ pid, ms: d }); }
  }
  per.sort((x, y) => y.ms - x.ms);
  const top = per.slice(0, 3).map((p) => {
    let cmd = '';
    try { cmd = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim().slice(0, 120); } catch { /* gone */ }
    return { ...p, cmd };
  });
  return { ms, top };
}

/** Namespaces of other test beds (other processes' tcb* namespaces) on this machine. */
function otherBeds(tb: Testbed): number {
  try {
    const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.trim().split(/\s+/)[0]);
    return new Set(names.filter((n) => /^tcb\d+x\d+-/.test(n) && !n.startsWith(tb.prefix)).map((n) => n.replace(/-[a-z]+$/, ''))).size;
  } catch {
    return 0;
  }
}

/**
 * Counts nginx access-log lines (`$remote_addr $request_length`) from the client addresses,
 * reading only what was appended since the counter was made.
 */
class LogCounter {
  requests = 0;
  bytes = 0;
  readonly byIp: Record<string, number> = {};
  private pos: number;
  private partial = '';

  constructor(private readonly file: string, private readonly accept: (ip: string) => boolean) {
    this.pos = fileSize(file);
  }

  poll(): this {
    let fd: number;
    try { fd = fs.openSync(this.file, 'r'); } catch { return this; }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < this.pos) this.pos = 0; // truncated
      while (this.pos < size) {
        const buf = Buffer.allocUnsafe(Math.min(size - this.pos, 4 << 20));
        const n = fs.readSync(fd, buf, 0, buf.length, this.pos);
        if (n <= 0) break;
        this.pos += n;
        const text = this.partial + buf.toString('latin1', 0, n);
        const lines = text.split('\n');
        this.partial = lines.pop() ?? '';
        for (const l of lines) {
          const sp = l.indexOf(' ');
          if (sp <= 0) continue;
          const ip = l.slice(0, sp);
          if (!this.accept(ip)) continue;
          this.requests++;
          this.bytes += Number(l.slice(sp + 1)) || 0;
          this.byIp[ip] = (this.byIp[ip] ?? 0) + 1;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    return this;
  }
}

/** Newest modification time (ms) of any file under a directory. */
function newestMtime(dir: string): number {
  let newest = 0;
  let entries: fs.Dirent[] = [];
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return 0; }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else { try { newest = Math.max(newest, fs.statSync(p).mtimeMs); } catch { /* gone */ } }
  }
  return newest;
}

/**
 * Copies the daemons' compiled code (dist/src, bin) into the work directory and points the
 * harness's BIN at the copy, so that every run measures the same build even if dist/ is
 * rebuilt while the bench runs. Waits (bounded) until dist/src has not changed for 3 s.
 * Returns a short hash of the copied JavaScript.
 */
async function snapshotCode(workDir: string): Promise<{ hash: string; builtAt: string; dir: string }> {
  const src = path.join(ROOT, 'dist', 'src');
  await waitFor(() => Date.now() - newestMtime(src) > 3000, 60_000, 500);
  const snap = path.join(workDir, 'code');
  const builtAt = new Date(newestMtime(src)).toISOString();
  fs.cpSync(src, path.join(snap, 'dist', 'src'), { recursive: true, preserveTimestamps: true });
  fs.cpSync(path.join(ROOT, 'bin'), path.join(snap, 'bin'), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(snap, 'node_modules'), 'dir');
  const h = createHash('sha1');
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) h.update(e.name).update(fs.readFileSync(p));
    }
  };
  walk(path.join(snap, 'dist', 'src'));
  BIN.tcpcopy = path.join(snap, 'bin', 'tcpcopy');
  BIN.intercept = path.join(snap, 'bin', 'intercept');
  return { hash: h.digest('hex').slice(0, 12), builtAt, dir: snap };
}

/** Set when the daemons run from a snapshot of dist/. */
let snapshotInfo: { hash: string; builtAt: string; dir: string } | undefined;

function distMtime(): string {
  try { return fs.statSync(path.join(ROOT, 'dist/src/tcpcopy/engine.js')).mtime.toISOString(); } catch { return ''; }
}

function fileSize(file: string): number {
  try { return fs.statSync(file).size; } catch { return 0; }
}

const fromClients = (ip: string): boolean => ip.startsWith('198.18.1.');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ----------------------------------------------------------------------------------- nginx

interface Nginx {
  host: IpHost;
  port: number;
  child: ChildProcess;
  accessLog: string;
  errorLog: string;
}

/** nginx PIDs (masters and workers) this bench started, to stop the workers too when it is interrupted. */
const nginxProcs: { pid: number; start: string }[] = [];

/** A process's start time (field 22 of /proc/<pid>/stat): with the PID, it names one process. */
function startTime(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/** Kills what is left of our nginx servers (by PID): the bed's teardown only knows the masters. */
function killNginxSync(): void {
  for (const n of nginxProcs) {
    // Only if the PID still names the process we started (not a reused PID).
    if (!n.start || startTime(n.pid) !== n.start) continue;
    try { process.kill(n.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

async function startNginx(tb: Testbed, host: IpHost, port: number): Promise<Nginx> {
  const dir = path.join(tb.workDir, `nginx-${host}`);
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const accessLog = path.join(dir, 'access.log');
  const errorLog = path.join(dir, 'error.log');
  const pidFile = path.join(dir, 'nginx.pid');
  const conf = path.join(dir, 'nginx.conf');
  const tmp = (what: string): string => path.join(dir, 'tmp', what);
  fs.writeFileSync(conf, `# generated by bench/bench.ts for the ${host} host
daemon off;
master_process on;
user root;
worker_processes 1;
# the hard limit on open files here is 20,000: stay well below it
worker_rlimit_nofile 10240;
pid ${pidFile};
error_log ${errorLog} warn;
events {
    worker_connections 4096;
}
http {
    log_format bench '$remote_addr $request_length';
    access_log ${accessLog} bench;
    client_body_temp_path ${tmp('body')};
    proxy_temp_path ${tmp('proxy')};
    fastcgi_temp_path ${tmp('fastcgi')};
    uwsgi_temp_path ${tmp('uwsgi')};
    scgi_temp_path ${tmp('scgi')};
    keepalive_requests 100000;
    keepalive_timeout 65s;
    server_tokens off;
    default_type text/plain;
    server {
        listen ${port} backlog=4096;
        location / {
            return 200 "ok\\n";
        }
    }
}
`);
  const child = tb.spawn(host, 'nginx', ['-c', conf, '-p', dir + '/'], { logFile: path.join(dir, 'stderr.log') });
  const ok = await waitFor(() => fs.existsSync(pidFile) || child.exitCode !== null || child.signalCode !== null, 10_000, 50);
  if (!ok || child.exitCode !== null || child.signalCode !== null) {
    let why = '';
    for (const f of [path.join(dir, 'stderr.log'), errorLog]) { try { why += fs.readFileSync(f, 'utf8'); } catch { /* none */ } }
    throw new Error(`nginx on ${host}:${port} did not start (${child.exitCode ?? child.signalCode ?? 'timeout'}): ${why.trim().slice(-2000)}`);
  }
  await waitFor(() => childPids(child.pid).length > 0, 3000, 50);
  for (const pid of [child.pid ?? 0, ...childPids(child.pid)]) if (pid) nginxProcs.push({ pid, start: startTime(pid) });
  return { host, port, child, accessLog, errorLog };
}

// ------------------------------------------------------------------------------------- load

interface LoadOutcome {
  tool: 'wrk' | 'node-load-client';
  command: string;
  /** Load duration in seconds as the tool measured it. */
  seconds: number;
  /** Responses the client counted as complete. */
  completed: number;
  errors: number;
  details: Record<string, unknown>;
}

function parseWrkDuration(s: string, unit: string): number {
  const v = Number(s);
  return unit === 'ms' ? v / 1000 : unit === 'm' ? v * 60 : unit === 'us' ? v / 1e6 : v;
}

async function runWrk(tb: Testbed, s: Scenario, seconds: number): Promise<LoadOutcome> {
  const args = [`-t${s.threads}`, `-c${s.conns}`, `-d${seconds}s`, '--timeout', '2s'];
  if (!s.keepalive) args.push('-H', 'Connection: close');
  args.push(`http://${ONLINE_IP}/`);
  const child = tb.spawn('client', 'wrk', args);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  const killer = setTimeout(() => void tb.stop(child, 'SIGKILL'), (seconds + 20) * 1000);
  const status = await new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(killer);
  await sleep(50);
  const m = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  if (status.code !== 0 || !m) throw new Error(`wrk ${args.join(' ')} failed (${status.signal ?? `status ${status.code}`}):\n${out.trim()}`);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socketErrors = se ? { connect: +se[1], read: +se[2], write: +se[3], timeout: +se[4] } : { connect: 0, read: 0, write: 0, timeout: 0 };
  const errors = socketErrors.connect + socketErrors.read + socketErrors.write + socketErrors.timeout + (non2xx ? +non2xx[1] : 0);
  return {
    tool: 'wrk',
    command: `wrk ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`,
    seconds: parseWrkDuration(m[2], m[3]),
    completed: Number(m[1]),
    errors,
    details: { socketErrors, non2xx: non2xx ? +non2xx[1] : 0, output: out.trim().split('\n') },
  };
}

async function runNodeClient(tb: Testbed, s: Scenario, seconds: number): Promise<LoadOutcome> {
  const rate = s.rate ?? 0;
  const localAddrs = tb.clientIps.slice(0, s.addrs ?? 1);
  const res: LoadResult = await tb.runLoad({
    requests: rate ? Math.round(rate * seconds) : 10_000_000,
    concurrency: s.conns,
    rate: rate || undefined,
    durationMs: seconds * 1000 + (rate ? 3000 : 0),
    localAddrs,
    timeoutMs: 2000,
    logFile: path.join(tb.workDir, 'load-client.log'),
  });
  return {
    tool: 'node-load-client',
    command: loadCommand(s, seconds, tb.clientIps),
    seconds: res.durationMs / 1000,
    completed: res.ok,
    errors: res.errors - (res.errorKinds.deadline ?? 0),
    details: res as unknown as Record<string, unknown>,
  };
}

// ------------------------------------------------------------------------------------ runs

interface DaemonFigures {
  pid: number | undefined;
  cpuMs: number;
  /** The same split into user and system time (system: the syscalls, and on veth the receiver's kernel work). */
  userMs: number;
  sysMs: number;
  cpuMsPer1k: number;
  peakRssMB: number;
  /** CPU ms per second while idle, measured for 1 s before the load. */
  idleMsPerS: number;
  summary: Record<string, unknown> | undefined;
}

interface RunResult {
  scenario: number;
  run: number;
  profiled?: boolean;
  startedAt: string;
  /** When dist/ (the daemons' code) was built, read as this run started (others may rebuild it). */
  distBuiltAt: string;
  load: LoadOutcome;
  copies: number;
  online: { requests: number; bytes: number; addresses: number };
  target: { requests: number; bytes: number; addresses: number };
  expected: number;
  onlineRps: number;
  /** Requests the target served ÷ (load + drain) seconds: the replay's own throughput. */
  replicatedRps: number;
  lossPct: number;
  bytesLossPct: number;
  /** From the end of the load to the target's last new request (ms), and whether it reached online × copies. */
  drainMs: number;
  complete: boolean;
  /** The daemons' CPU is measured over this window: load + drain (ms). */
  cpuWindowMs: number;
  tcpcopy: DaemonFigures;
  intercept: DaemonFigures;
  nginx: { onlineCpuMsPer1k: number; targetCpuMsPer1k: number };
  /** Whole machine CPU busy during the load, % of all cores. */
  machineBusyPct: number;
  /** CPU used by processes outside this bench during the load, % of all cores (a shared machine). */
  foreignCpuPct: number;
  foreignTop: { pid: number; ms: number; cmd: string }[];
  quietBefore: { pct: number; waitedS: number };
  /** Drops on tcpcopy's raw sockets (/proc/net/raw in the online namespace) at the end of the run. */
  rawSocketDrops: number;
  /** Non-zero SNMP counter deltas over the run, per namespace. */
  nstat: Record<string, Record<string, number>>;
}

function nstatDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) {
    const d = v - (a[k] ?? 0);
    if (d !== 0 && !/^(Ip6|Icmp6|Udp6|UdpLite)/.test(k)) out[k] = d;
  }
  return out;
}

function rawDrops(tb: Testbed): number {
  try {
    const text = tb.execSync('online', 'cat', ['/proc/net/raw']);
    let drops = 0;
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 13) drops += Number(f[f.length - 1]) || 0;
    }
    return drops;
  } catch {
    return NaN;
  }
}

/** Starts tcpcopy under `node --cpu-prof` (startDaemon cannot pass node flags). */
async function startProfiledTcpcopy(tb: Testbed, args: string[], profDir: string): Promise<DaemonHandle> {
  const logFile = path.join(tb.workDir, 'tcpcopy-profiled.log');
  const child = tb.spawn('online', process.execPath,
    ['--cpu-prof', '--cpu-prof-dir', profDir, BIN.tcpcopy, ...args, '--stats-interval', '2'], { logFile });
  const lines = (): Record<string, unknown>[] => {
    let text = '';
    try { text = fs.readFileSync(logFile, 'utf8'); } catch { return []; }
    const out: Record<string, unknown>[] = [];
    for (const l of text.split('\n')) {
      if (!l.startsWith('{')) continue;
      try { out.push(JSON.parse(l) as Record<string, unknown>); } catch { /* partial */ }
    }
    return out;
  };
  const up = await waitFor(() => lines().some((l) => l.msg === 'tcpcopy running') || child.exitCode !== null, 15_000, 50);
  if (!up || child.exitCode !== null) {
    if (child.exitCode === null) await tb.stop(child, 'SIGKILL', 2000);
    throw new Error(`profiled tcpcopy did not start: ${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : ''}`);
  }
  return {
    name: 'tcpcopy', child, logFile, lines,
    lastStats: () => undefined,
    freshStats: async () => undefined,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) await tb.stop(child, 'SIGTERM', 15_000);
      const s = lines().find((l) => l.msg === 'summary');
      return s?.summary as Record<string, unknown> | undefined;
    },
  };
}

/**
 * How long the target may keep receiving after the load (tcpcopy replays a keep-alive backlog
 * at the target's pace); the count must also stop moving for 3 s.
 */
const DRAIN_BOUND_MS = 45_000;

/** Waiting for quiet is bounded per run and, so that a busy machine cannot stretch the bench, in total. */
const quietBudget = { left: 90 };

/**
 * Waits (bounded) until processes outside this bench use less than `maxPct` % of the machine
 * over a 1 s sample. Returns the last sample (% of all cores) and how long it waited.
 */
async function waitQuiet(tb: Testbed, ours: () => Set<number>, maxPct: number, boundS: number): Promise<{ pct: number; waitedS: number }> {
  const t0 = Date.now();
  const cores = os.cpus().length || 1;
  let said = false;
  for (;;) {
    const a = allProcessCpu();
    await sleep(1000);
    const f = foreignCpuMs(a, allProcessCpu(), ours());
    const pct = f.ms / (10 * cores);
    const waitedS = (Date.now() - t0) / 1000;
    if (pct < maxPct || waitedS >= boundS) {
      if (said || pct >= maxPct) progress(`  other load on the machine: ${fmt(pct, 0)} % of the CPUs${pct >= maxPct ? ` — still busy after ${fmt(waitedS, 0)} s, measuring anyway` : ''}`);
      return { pct, waitedS };
    }
    if (!said) {
      said = true;
      const beds = otherBeds(tb);
      progress(`  other processes use ${fmt(pct, 0)} % of the CPUs${beds ? ` (${beds} other test beds)` : ''}` +
        `${f.top[0] ? `, e.g. ${f.top[0].cmd.slice(0, 80)}` : ''}; waiting up to ${boundS} s for quiet`);
    }
  }
}

async function oneRun(tb: Testbed, ng: { online: Nginx; target: Nginx }, s: Scenario, o: Options, run: number,
  profDir?: string): Promise<RunResult> {
  const seconds = o.seconds;
  const nginxPids = {
    online: [ng.online.child.pid, ...childPids(ng.online.child.pid)],
    target: [ng.target.child.pid, ...childPids(ng.target.child.pid)],
  };
  const ours = (): Set<number> => new Set<number>([process.pid, ...tb.pids, ...nginxPids.online, ...nginxPids.target]
    .filter((p): p is number => typeof p === 'number'));
  const quiet = await waitQuiet(tb, ours, o.quietPct, Math.min(o.quietWait, quietBudget.left));
  quietBudget.left = Math.max(0, quietBudget.left - quiet.waitedS);

  const startedAt = new Date().toISOString();
  const distBuiltAt = snapshotInfo?.builtAt ?? distMtime();
  const icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080'],
    { statsInterval: 2 });
  let tc: DaemonHandle | undefined;
  try {
    const tcArgs = ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, ...(s.copies > 1 ? ['-n', String(s.copies)] : []),
      ...(o.tcpcopyArgs ?? []).map((a) => a.replace("{dev}", tb.dev("online")))];
    tc = profDir ? await startProfiledTcpcopy(tb, tcArgs, profDir) : await startDaemon(tb, 'online', 'tcpcopy', tcArgs, { statsInterval: 2 });
    const tcPid = tc.child.pid;
    const icPid = icpt.child.pid;
    await sleep(500); // both control connections up

    // Idle cost of the daemons (timers, statistics) over one second before the load.
    const idle0 = { tc: cpuMs(tcPid), ic: cpuMs(icPid) };
    await sleep(1000);
    const idle = { tcpcopyMsPerS: cpuMs(tcPid) - idle0.tc, interceptMsPerS: cpuMs(icPid) - idle0.ic };

    const onlineLog = new LogCounter(ng.online.accessLog, fromClients);
    const targetLog = new LogCounter(ng.target.accessLog, fromClients);
    const nginxCpu = (pids: (number | undefined)[]): number => pids.reduce<number>((a, p) => a + (cpuMs(p) || 0), 0);
    const ns0 = { online: tb.nstat('online'), target: tb.nstat('target'), assistant: tb.nstat('assistant') };
    const all0 = allProcessCpu();
    const tc0 = cpuMs(tcPid);
    const ic0 = cpuMs(icPid);
    const tcU0 = userMs(tcPid);
    const icU0 = userMs(icPid);
    const ngo0 = nginxCpu(nginxPids.online);
    const ngt0 = nginxCpu(nginxPids.target);
    const m0 = machineCpu();
    const loadStart = Date.now();

    const load = s.tool === 'wrk' ? await runWrk(tb, s, seconds) : await runNodeClient(tb, s, seconds);
    const m1 = machineCpu();
    const all1 = allProcessCpu();
    const loadEnd = Date.now();
    const foreign = foreignCpuMs(all0, all1, ours());

    // Drain: the target's count reaches online × copies, or stops moving for 3 s (bounded).
    // The daemons' CPU is read at the last change, so it covers the load and the drain only.
    await sleep(300);
    onlineLog.poll();
    const expected = onlineLog.requests * s.copies;
    let last = -1;
    let stableSince = Date.now();
    const snap = () => ({ tc: cpuMs(tcPid), ic: cpuMs(icPid), tcU: userMs(tcPid), icU: userMs(icPid), ngo: nginxCpu(nginxPids.online), ngt: nginxCpu(nginxPids.target), t: Date.now() });
    let cpuAt = snap();
    await waitFor(() => {
      targetLog.poll();
      if (targetLog.requests !== last) {
        last = targetLog.requests;
        stableSince = Date.now();
        cpuAt = snap();
      }
      return targetLog.requests >= expected || Date.now() - stableSince > 3000;
    }, DRAIN_BOUND_MS, 200);
    await sleep(300);
    targetLog.poll();
    onlineLog.poll();
    const drainMs = cpuAt.t - loadEnd;

    const tcRss = peakRssMB(tcPid);
    const icRss = peakRssMB(icPid);
    const drops = rawDrops(tb);
    const ns1 = { online: tb.nstat('online'), target: tb.nstat('target'), assistant: tb.nstat('assistant') };

    const tcSummary = await tc.stop();
    tc = undefined;
    const icSummary = await icpt.stop();

    const online = onlineLog.requests;
    const exp = online * s.copies;
    const per1k = (ms: number): number => (online > 0 ? (ms * 1000) / online : NaN);
    const cores = os.cpus().length || 1;
    const res: RunResult = {
      scenario: s.id,
      run,
      ...(profDir ? { profiled: true } : {}),
      startedAt,
      distBuiltAt,
      load,
      copies: s.copies,
      online: { requests: online, bytes: onlineLog.bytes, addresses: Object.keys(onlineLog.byIp).length },
      target: { requests: targetLog.requests, bytes: targetLog.bytes, addresses: Object.keys(targetLog.byIp).length },
      expected: exp,
      onlineRps: online / load.seconds,
      replicatedRps: targetLog.requests / ((cpuAt.t - loadStart) / 1000),
      lossPct: exp > 0 ? ((exp - targetLog.requests) / exp) * 100 : NaN,
      bytesLossPct: onlineLog.bytes > 0 ? ((onlineLog.bytes * s.copies - targetLog.bytes) / (onlineLog.bytes * s.copies)) * 100 : NaN,
      drainMs,
      complete: targetLog.requests >= exp,
      cpuWindowMs: cpuAt.t - loadStart,
      tcpcopy: { pid: tcPid, cpuMs: cpuAt.tc - tc0, userMs: cpuAt.tcU - tcU0, sysMs: (cpuAt.tc - tc0) - (cpuAt.tcU - tcU0), cpuMsPer1k: per1k(cpuAt.tc - tc0), peakRssMB: tcRss, idleMsPerS: idle.tcpcopyMsPerS, summary: tcSummary },
      intercept: { pid: icPid, cpuMs: cpuAt.ic - ic0, userMs: cpuAt.icU - icU0, sysMs: (cpuAt.ic - ic0) - (cpuAt.icU - icU0), cpuMsPer1k: per1k(cpuAt.ic - ic0), peakRssMB: icRss, idleMsPerS: idle.interceptMsPerS, summary: icSummary },
      nginx: { onlineCpuMsPer1k: per1k(cpuAt.ngo - ngo0), targetCpuMsPer1k: per1k(cpuAt.ngt - ngt0) },
      machineBusyPct: m1.total > m0.total ? ((m1.busy - m0.busy) / (m1.total - m0.total)) * 100 : NaN,
      foreignCpuPct: foreign.ms / ((loadEnd - loadStart) * cores) * 100,
      foreignTop: foreign.top,
      quietBefore: quiet,
      rawSocketDrops: drops,
      nstat: {
        online: nstatDelta(ns0.online, ns1.online),
        target: nstatDelta(ns0.target, ns1.target),
        assistant: nstatDelta(ns0.assistant, ns1.assistant),
      },
    };
    return res;
  } finally {
    if (tc) await tc.stop();
    if (icpt.child.exitCode === null && icpt.child.signalCode === null) await icpt.stop();
  }
}

// -------------------------------------------------------------------------------- profiles

interface ProfileEntry { fn: string; where: string; selfMs: number; pct: number }
interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Sampled time outside (idle). */
  busyMs: number;
  top: ProfileEntry[];
  byFile: { where: string; selfMs: number; pct: number }[];
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; hitCount?: number }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const sourceMaps = new Map<string, SourceMap | null>();

/** Maps a dist/…js frame back to its .ts source through the emitted source map. */
function mapFrame(url: string, line: number, col: number): string {
  let file = url.startsWith('file://') ? url.slice(7) : url;
  if (!file) return '';
  let loc = `${file}:${line + 1}`;
  const base = snapshotInfo && file.startsWith(snapshotInfo.dir + '/') ? snapshotInfo.dir : ROOT;
  if (file.startsWith(base + '/') && file.endsWith('.js') && !file.includes('/node_modules/')) {
    let sm = sourceMaps.get(file);
    if (sm === undefined) {
      try { sm = new SourceMap(JSON.parse(fs.readFileSync(file + '.map', 'utf8'))); } catch { sm = null; }
      sourceMaps.set(file, sm);
    }
    const e = sm?.findEntry(line, col) as { originalSource?: string; originalLine?: number } | undefined;
    if (e && e.originalSource !== undefined && e.originalLine !== undefined) {
      const src = e.originalSource.startsWith('file://') ? e.originalSource.slice(7) : path.resolve(path.dirname(file), e.originalSource);
      file = src;
      loc = `${src}:${e.originalLine + 1}`;
    }
  }
  return path.isAbsolute(file) && file.startsWith(base + '/') ? path.relative(base, loc) : loc;
}

function summariseProfile(file: string): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const d = prof.timeDeltas[i + 1] ?? 0; // the time until the next sample belongs to this one
    selfUs.set(prof.samples[i], (selfUs.get(prof.samples[i]) ?? 0) + Math.max(0, d));
  }
  const agg = new Map<string, { fn: string; where: string; us: number }>();
  const files = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    total += us;
    const cf = n.callFrame;
    const fn = cf.functionName || '(anonymous)';
    if (fn === '(idle)') { idle += us; continue; }
    const where = cf.url ? mapFrame(cf.url, cf.lineNumber, cf.columnNumber) : '';
    const key = `${fn}@${where}`;
    const a = agg.get(key) ?? { fn, where, us: 0 };
    a.us += us;
    agg.set(key, a);
    const f = where ? where.replace(/:\d+$/, '') : fn.startsWith('(') ? fn : '(native / builtin)';
    files.set(f, (files.get(f) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number): number => (busy > 0 ? (us / busy) * 100 : 0);
  return {
    file: path.relative(ROOT, file),
    totalMs: total / 1000,
    busyMs: busy / 1000,
    top: [...agg.values()].sort((a, b) => b.us - a.us).slice(0, 30).map((a) => ({ fn: a.fn, where: a.where, selfMs: a.us / 1000, pct: pct(a.us) })),
    byFile: [...files.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([where, us]) => ({ where, selfMs: us / 1000, pct: pct(us) })),
  };
}

// ---------------------------------------------------------------------------------- report

interface Stat { median: number; min: number; max: number }

function stat(xs: number[]): Stat {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return { median: NaN, min: NaN, max: NaN };
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1] };
}

function fmt(x: number, digits: number): string {
  if (!Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function fmtStat(s: Stat, digits: number, runs: number): string {
  if (!Number.isFinite(s.median)) return '—';
  if (runs < 2) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** Loss needs more digits when small. */
function lossDigits(s: Stat): number {
  return Math.max(Math.abs(s.median), Math.abs(s.max)) >= 1 ? 2 : 3;
}

interface ScenarioFigures {
  s: Scenario;
  runs: RunResult[];
  onlineRps: Stat;
  replicatedRps: Stat;
  loss: Stat;
  tcCpu: Stat;
  icCpu: Stat;
  tcRss: Stat;
  icRss: Stat;
  busy: Stat;
  drain: Stat;
}

function figures(s: Scenario, runs: RunResult[]): ScenarioFigures {
  return {
    s, runs,
    onlineRps: stat(runs.map((r) => r.onlineRps)),
    replicatedRps: stat(runs.map((r) => r.replicatedRps)),
    loss: stat(runs.map((r) => r.lossPct)),
    tcCpu: stat(runs.map((r) => r.tcpcopy.cpuMsPer1k)),
    icCpu: stat(runs.map((r) => r.intercept.cpuMsPer1k)),
    tcRss: stat(runs.map((r) => r.tcpcopy.peakRssMB)),
    icRss: stat(runs.map((r) => r.intercept.peakRssMB)),
    busy: stat(runs.map((r) => r.machineBusyPct)),
    drain: stat(runs.map((r) => r.drainMs / 1000)),
  };
}

const TC_COUNTERS = ['clientSyns', 'clientPayloadPackets', 'requestsSent', 'sessionsCreated', 'handshakes', 'synTimeouts', 'synRetransmissions', 'sessionsAborted',
  'sessionsTimedOut', 'sessionsResetByTarget', 'portReuses', 'reconnects', 'retransmissions', 'fastRetransmissions',
  'repliesNoSession', 'shed', 'noIntercept', 'sendErrors', 'captureGapsSkipped', 'shedCaptureBehind', 'backlogShed',
  'backlogDroppedPackets', 'backlogResumed'];
const IC_COUNTERS = ['captured', 'forwarded', 'noRoute', 'held', 'heldDelivered', 'heldExpired', 'heldDropped',
  'recordsDroppedSlowReader', 'tunnelsDropped'];

/** Median of each counter over the runs (non-zero ones only). */
function counterMedians(runs: RunResult[], which: 'tcpcopy' | 'intercept'): Record<string, number> {
  const keys = which === 'tcpcopy' ? TC_COUNTERS : IC_COUNTERS;
  const out: Record<string, number> = {};
  for (const k of keys) {
    const v = stat(runs.map((r) => Number(r[which].summary?.[k] ?? NaN))).median;
    if (Number.isFinite(v) && v !== 0) out[k] = v;
  }
  return out;
}

/** Plain-language reasons for missed targets, read off the figures and counters. */
function observations(figs: ScenarioFigures[]): string[] {
  const out: string[] = [];
  const c = (r: RunResult, w: 'tcpcopy' | 'intercept', k: string): number => Number(r[w].summary?.[k] ?? 0) || 0;
  for (const f of figs) {
    const why: string[] = [];
    if (f.loss.max > TARGETS.lossPct) {
      const lossy = f.runs.filter((r) => r.lossPct > TARGETS.lossPct);
      const withDrops = lossy.filter((r) => r.rawSocketDrops > 0).length;
      const clean = f.runs.filter((r) => r.lossPct <= TARGETS.lossPct);
      if (withDrops) {
        why.push(`${withDrops} of ${lossy.length} had drops on tcpcopy's raw capture socket ` +
          `(${fmt(stat(lossy.map((r) => r.rawSocketDrops)).median, 0)} packets)` +
          (clean.length && clean.every((r) => r.rawSocketDrops === 0) ? ', and the runs without drops lost nothing' : ''));
      }
      // Counters of the lossy runs only (medians).
      const lm = (get: (r: RunResult) => number): number => stat(lossy.map(get)).median;
      const aborted = lm((r) => c(r, 'tcpcopy', 'sessionsAborted'));
      const created = lm((r) => c(r, 'tcpcopy', 'sessionsCreated'));
      if (aborted) {
        why.push(`tcpcopy aborted ${fmt(aborted, 0)} of ${fmt(created, 0)} sessions with data still queued` +
          (f.s.keepalive ? ' (a keep-alive session whose capture has a hole waits for the missing packet, then is dropped with every request queued behind it)' : ''));
      }
      const behind = lm((r) => c(r, 'tcpcopy', 'shedCaptureBehind'));
      if (behind) {
        why.push(`tcpcopy's capture fell behind the traffic (its socket queue near full) and ${fmt(behind, 0)} packets that ` +
          'would have started sessions were refused, so that the sessions already started kept every packet');
      }
      const backlogEnded = stat(lossy.map((r) => Number((r.tcpcopy.summary?.abortsByReason as Record<string, number> | undefined)?.backlog ?? 0))).median;
      if (backlogEnded) {
        why.push(`the replay's backlog reached --backlog-limit: ${fmt(backlogEnded, 0)} sessions ended, ` +
          `${fmt(lm((r) => c(r, 'tcpcopy', 'backlogDroppedPackets')), 0)} of their packets dropped, ` +
          `${fmt(lm((r) => c(r, 'tcpcopy', 'backlogResumed')), 0)} connections resumed later`);
      }
      const reuse = lm((r) => c(r, 'tcpcopy', 'portReuses'));
      const synRe = lm((r) => c(r, 'tcpcopy', 'synRetransmissions'));
      if (reuse > 0) why.push(`clients reused ports of live sessions ${fmt(reuse, 0)} times`);
      if (synRe > 100) why.push(`${fmt(synRe, 0)} SYN retransmissions to the target`);
      const noRoute = lm((r) => c(r, 'intercept', 'noRoute'));
      if (noRoute > 10) why.push(`intercept had no route for ${fmt(noRoute, 0)} replies`);
      const slow = lm((r) => c(r, 'intercept', 'recordsDroppedSlowReader'));
      if (slow) why.push(`intercept dropped ${fmt(slow, 0)} records for a slow reader`);
      const send = lm((r) => c(r, 'tcpcopy', 'sendErrors'));
      if (send) why.push(`tcpcopy send errors ${fmt(send, 0)}`);
      if (clean.length && lossy.length) {
        why.push(`CPU per 1,000 requests understates the cost in lossy runs (requests never replayed cost little): ` +
          `the loss-free runs used ${fmt(stat(clean.map((r) => r.tcpcopy.cpuMsPer1k)).median, 1)} ms (tcpcopy) and ` +
          `${fmt(stat(clean.map((r) => r.intercept.cpuMsPer1k)).median, 1)} ms (intercept)`);
      }
      out.push(`**${f.s.id}. ${f.s.title}: loss ${fmtStat(f.loss, lossDigits(f.loss), f.runs.length)} %.** ` +
        (why.length ? `In the lossy runs (medians): ${why.join('; ')}.` : 'No counter explains it.'));
    }
    if (f.drain.median > 5 || f.tcRss.median > TARGETS.rssMB) {
      out.push(`**${f.s.id}. ${f.s.title}: tcpcopy peak RSS ${fmt(f.tcRss.median, 0)} MB, drain ${fmt(f.drain.median, 1)} s.** ` +
        (f.drain.median > 5
          ? `The replay (${fmt(f.replicatedRps.median, 0)} req/s) ran slower than the online traffic (${fmt(f.onlineRps.median, 0)} req/s): ` +
            'tcpcopy held the backlog of captured requests in memory and replayed it after the load ended.'
          : 'Sessions and captured packets held at the peak of the load.'));
    }
  }
  return out;
}

function verdict(ok: boolean | null): string {
  return ok === null ? '—' : ok ? 'yes' : '**no**';
}

interface Machine {
  nproc: number;
  cpuModel: string;
  memoryGB: number;
  node: string;
  kernel: string;
  os: string;
  nginx: string;
  wrk: string;
  clockTicks: number;
  /** The code measured: git HEAD, uncommitted changes under src/, when dist/ was built. */
  code: { commit: string; srcChanges: number; distBuiltAt: string; snapshot?: { hash: string; builtAt: string } };
}

function machineInfo(): Machine {
  const cmd = (c: string, a: string[]): string => {
    try { return execFileSync(c, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(); } catch (e) {
      const err = e as { stderr?: string; stdout?: string };
      return `${err.stdout ?? ''}${err.stderr ?? ''}`.trim();
    }
  };
  let osName = os.type();
  try { osName = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName; } catch { /* keep */ }
  return {
    nproc: Number(cmd('nproc', [])) || os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '',
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: os.release(),
    os: osName,
    nginx: cmd('sh', ['-c', 'nginx -v 2>&1']).replace(/^nginx version:\s*/, ''),
    wrk: (cmd('wrk', ['--version']).split('\n')[0] ?? '').replace(/\s+Copyright.*$/, ''),
    clockTicks: CLK_TCK,
    code: {
      commit: cmd('git', ['-C', ROOT, 'rev-parse', '--short=12', 'HEAD']),
      srcChanges: cmd('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length,
      distBuiltAt: distMtime(),
    },
  };
}

function markdown(figs: ScenarioFigures[], m: Machine, o: Options, resultsFile: string, profile: ProfileSummary | null,
  profileRun: RunResult | null): string {
  const L: string[] = [];
  const date = new Date().toISOString().slice(0, 10);
  L.push('# Benchmarks');
  L.push('');
  L.push('<!-- Generated by bench/bench.ts (`npm run bench`); edit the generator, not this file. -->');
  L.push('');
  L.push('How fast this TypeScript tcpcopy copies live traffic, what it loses, and what it costs in CPU and memory, ' +
    'next to the figures of the original C TCPCopy on the same kind of machine.');
  L.push('');
  L.push('**How it is measured.** Everything runs on one machine in a network-namespace test bed ' +
    '(`test/e2e/testbed.ts`; hosts *client*, *online*, *target*, *assistant* on a bridge, addresses in 198.18.0.0/15, ' +
    'veth offloads off). Debian\'s nginx (one worker, `return 200 "ok\\n"`, keep-alive up to 100,000 requests) serves on ' +
    `the online host (port 80) and on the target host (port 8080). Our \`intercept -i v-assistant -F 'tcp and src port 8080'\` ` +
    `runs on the assistant, our \`tcpcopy -x 80-${TARGET_IP}:8080 -s ${ASSISTANT_IP}\` (raw-socket capture, plus \`-n 2\` in ` +
    'scenario 5) on the online host. Both daemons are restarted for every run, so a peak RSS is that of one run. ' +
    'Load comes from `wrk` in the client namespace, or from our Node load client ' +
    '(`test/e2e/fixtures/load-client.ts`) where requests must be spread over 16 source addresses or rate-limited, ' +
    'which wrk cannot do; the Node client is much slower than wrk, so scenario 3 is "maximum rate" for that client, ' +
    'not for the servers.');
  L.push('');
  L.push('- **Requests** are counted in the nginx access logs (`$remote_addr $request_length`), only lines from the client ' +
    'addresses (198.18.1.0/24): *online req/s* = requests the online server served during the load ÷ load seconds; ' +
    '*replicated req/s* = requests the target served for the same clients ÷ (load + drain) seconds, where the *drain* ' +
    `runs from the end of the load to the target's last replicated request (the count reaches online × copies, or stops ` +
    `moving for 3 s; at most ${DRAIN_BOUND_MS / 1000} s). A long drain means tcpcopy fell behind and replayed a backlog.`);
  L.push('- **Loss %** = (online × copies − target) ÷ (online × copies).');
  L.push('- **CPU ms / 1k** = the daemon\'s utime + stime (`/proc/<pid>/stat`, all threads) from the start of the load until ' +
    'the target served its last replicated request (load + drain), per 1,000 requests the online server served (with ' +
    '`-n 2`, per online request, not per copy). It includes the daemon\'s idle cost (timers, statistics) over that window; ' +
    'the idle cost alone, measured for one second before the load, is in the notes.');
  L.push('- CPU accounting caveat: this kernel has no IRQ time accounting, so network softirq work that runs while a ' +
    'process is on the CPU is charged to that process as system time. On veth a sent packet is delivered synchronously, so ' +
    'tcpcopy\'s system time includes part of the bridge\'s and the target\'s kernel work for the packets it sends (and ' +
    'the load generator\'s includes the capture path). The notes give each daemon\'s system-time share.');
  L.push('- **Peak RSS** = `VmHWM` from `/proc/<pid>/status` at the end of the run.');
  L.push(`- Each scenario runs ${o.runs} time${o.runs > 1 ? 's' : ''} for ${o.seconds} s; figures are the median and, in ` +
    'brackets, the min–max over the runs. Targets are judged on the median.');
  L.push('- The whole bed shares the machine\'s cores: load generator, both nginx, tcpcopy and intercept compete for CPU, ' +
    'so maximum-rate figures are bounded by the machine, not by tcpcopy alone.');
  L.push('- The machine may be shared (other test beds, builds): before each run the bench waits, bounded, until other ' +
    'processes are quiet, and it records the CPU they used during each load (*other load* in the notes). Per-process CPU ' +
    'times are not inflated by such load, but rates and losses at maximum rate are.');
  L.push('');
  L.push(`**Machine** (${date}): ${m.nproc} × ${m.cpuModel}, ${m.memoryGB} GB RAM, ${m.os}, Linux ${m.kernel}, ` +
    `Node ${m.node}, nginx ${m.nginx}, ${m.wrk}. Code: commit \`${m.code.commit}\`` +
    `${m.code.srcChanges ? ` with ${m.code.srcChanges} uncommitted change${m.code.srcChanges > 1 ? 's' : ''} under src/` : ''}` +
    (m.code.snapshot
      ? ` (daemons run from a copy of dist/ taken at the start: build \`${m.code.snapshot.hash}\`, compiled ${m.code.snapshot.builtAt.slice(0, 16).replace('T', ' ')} UTC)`
      : ` (dist built ${m.code.distBuiltAt.slice(0, 16).replace('T', ' ')} UTC)`) + `. Raw results: \`${resultsFile}\`.`);
  L.push('');
  L.push('**Original C TCPCopy** figures are those measured with nginx and wrk on this kind of machine ' +
    '(2 cores): short connections at ~1,000 req/s 0 % loss and ~120 ms CPU per 1,000 requests; short connections at ' +
    'maximum rate from one client address 12–30 % loss, ~90 ms; from 16 addresses 0–2 %, ~100 ms; keep-alive at maximum ' +
    'rate (~30,000 req/s) 0 %, ~12 ms; intercept ~75 ms per 1,000 short requests and ~7 ms keep-alive. ' +
    `**Targets** for this implementation: loss ≤ ${TARGETS.lossPct} % everywhere, CPU at or below the original, ` +
    `peak RSS ≤ ${TARGETS.rssMB} MB.`);
  L.push('');
  const builds = [...new Set(figs.flatMap((f) => f.runs.map((r) => r.distBuiltAt)))].filter(Boolean);
  if (builds.length > 1) {
    L.push(`**Note:** dist/ was rebuilt while the bench ran (${builds.length} builds); each run's \`distBuiltAt\` is in the ` +
      'raw results. Figures from different builds are mixed here.');
    L.push('');
  }
  L.push('![Loss and tcpcopy CPU per scenario](benchmarks.svg)');
  L.push('');
  L.push('## Summary (medians)');
  L.push('');
  L.push('| # | scenario | online req/s | replicated req/s | drain s | loss % | tcpcopy CPU ms/1k | intercept CPU ms/1k | tcpcopy RSS MB | intercept RSS MB |');
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const f of figs) {
    L.push(`| ${f.s.id} | ${f.s.title} | ${fmt(f.onlineRps.median, 0)} | ${fmt(f.replicatedRps.median, 0)} | ${fmt(f.drain.median, 1)} | ` +
      `${fmt(f.loss.median, lossDigits(f.loss))} | ${fmt(f.tcCpu.median, 1)} | ${fmt(f.icCpu.median, 1)} | ` +
      `${fmt(f.tcRss.median, 0)} | ${fmt(f.icRss.median, 0)} |`);
  }
  L.push('');

  for (const f of figs) {
    const s = f.s;
    const orig = s.original;
    const n = f.runs.length;
    L.push(`## ${s.id}. ${s.title}`);
    L.push('');
    L.push(`Load: \`${f.runs[0]?.load.command ?? loadCommand(s, o.seconds, [])}\`` +
      (s.tool === 'node' ? ' (Node load client: wrk cannot choose source addresses or a rate)' : '') +
      `. tcpcopy \`-x 80-${TARGET_IP}:8080 -s ${ASSISTANT_IP}${s.copies > 1 ? ` -n ${s.copies}` : ''}\`.`);
    L.push('');
    L.push('| | this implementation: median (min–max) | original C TCPCopy | target | met |');
    L.push('|---|---:|---:|---:|:---:|');
    const lossOrig = orig.loss === null ? '—' : orig.loss[0] === orig.loss[1] ? `${orig.loss[0]} %` : `${orig.loss[0]}–${orig.loss[1]} %`;
    const cpuOk = (v: number, ref: number | null): boolean | null => (ref === null || !Number.isFinite(v) ? null : v <= ref);
    L.push(`| online req/s | ${fmtStat(f.onlineRps, 0, n)} | ${orig.rps || '—'} | — | — |`);
    L.push(`| replicated req/s | ${fmtStat(f.replicatedRps, 0, n)} | — | — | — |`);
    L.push(`| drain after the load, s | ${fmtStat(f.drain, 1, n)} | — | — | — |`);
    L.push(`| loss % | ${fmtStat(f.loss, lossDigits(f.loss), n)} | ${lossOrig} | ≤ ${TARGETS.lossPct} % | ${verdict(Number.isFinite(f.loss.median) ? f.loss.median <= TARGETS.lossPct : null)} |`);
    L.push(`| tcpcopy CPU ms / 1k requests | ${fmtStat(f.tcCpu, 1, n)} | ${orig.tcpcopyCpu === null ? '—' : `~${orig.tcpcopyCpu}`} | ${orig.tcpcopyCpu === null ? '—' : `≤ ${orig.tcpcopyCpu}`} | ${verdict(cpuOk(f.tcCpu.median, orig.tcpcopyCpu))} |`);
    L.push(`| intercept CPU ms / 1k requests | ${fmtStat(f.icCpu, 1, n)} | ${orig.interceptCpu === null ? '—' : `~${orig.interceptCpu}`} | ${orig.interceptCpu === null ? '—' : `≤ ${orig.interceptCpu}`} | ${verdict(cpuOk(f.icCpu.median, orig.interceptCpu))} |`);
    L.push(`| tcpcopy peak RSS MB | ${fmtStat(f.tcRss, 1, n)} | — | ≤ ${TARGETS.rssMB} | ${verdict(Number.isFinite(f.tcRss.median) ? f.tcRss.median <= TARGETS.rssMB : null)} |`);
    L.push(`| intercept peak RSS MB | ${fmtStat(f.icRss, 1, n)} | — | ≤ ${TARGETS.rssMB} | ${verdict(Number.isFinite(f.icRss.median) ? f.icRss.median <= TARGETS.rssMB : null)} |`);
    L.push('');
    const extra: string[] = [];
    extra.push(`machine CPU busy during the load ${fmtStat(f.busy, 0, n)} %`);
    extra.push(`other processes' load ${fmtStat(stat(f.runs.map((r) => r.foreignCpuPct)), 0, n)} % of the CPUs`);
    const sysShare = (w: 'tcpcopy' | 'intercept'): string =>
      fmt(stat(f.runs.map((r) => (r[w].cpuMs > 0 ? (r[w].sysMs / r[w].cpuMs) * 100 : NaN))).median, 0);
    extra.push(`system time share of the CPU: tcpcopy ${sysShare('tcpcopy')} %, intercept ${sysShare('intercept')} %`);
    extra.push(`idle CPU tcpcopy ${fmtStat(stat(f.runs.map((r) => r.tcpcopy.idleMsPerS)), 0, n)} ms/s, intercept ` +
      `${fmtStat(stat(f.runs.map((r) => r.intercept.idleMsPerS)), 0, n)} ms/s`);
    const errs = stat(f.runs.map((r) => r.load.errors)).median;
    if (errs) extra.push(`client errors (median) ${fmt(errs, 0)}`);
    const incomplete = f.runs.filter((r) => !r.complete).length;
    if (incomplete) extra.push(`${incomplete} of ${n} runs short of online × copies when the target count settled`);
    const drops = stat(f.runs.map((r) => r.rawSocketDrops)).median;
    if (drops) extra.push(`tcpcopy raw-socket drops (median) ${fmt(drops, 0)}`);
    const tcc = counterMedians(f.runs, 'tcpcopy');
    const icc = counterMedians(f.runs, 'intercept');
    L.push(`Notes: ${extra.join('; ')}. tcpcopy counters (median): ${Object.entries(tcc).map(([k, v]) => `${k} ${fmt(v, 0)}`).join(', ') || 'none'}. ` +
      `intercept counters (median): ${Object.entries(icc).map(([k, v]) => `${k} ${fmt(v, 0)}`).join(', ') || 'none'}.`);
    L.push('');
  }

  const obs = observations(figs);
  if (obs.length) {
    L.push('## Where the targets are missed (derived from the counters)');
    L.push('');
    for (const x of obs) L.push(`- ${x}`);
    L.push('');
  }

  if (profile && profileRun) {
    const ps = SCENARIOS.find((x) => x.id === profileRun.scenario)!;
    L.push(`## Where tcpcopy spends its CPU (${ps.title.replace(/^./, (c) => c.toLowerCase())})`);
    L.push('');
    L.push(`One extra run of scenario ${ps.id} with tcpcopy under \`node --cpu-prof\` (not part of the tables; the profiler adds ` +
      `overhead): ${fmt(profileRun.onlineRps, 0)} online req/s, loss ${fmt(profileRun.lossPct, 3)} %, tcpcopy ` +
      `${fmt(profileRun.tcpcopy.cpuMsPer1k, 1)} ms / 1k. Self time of the ${profile.top.length > 20 ? 20 : profile.top.length} hottest ` +
      `functions, as a share of the sampled non-idle time (${fmt(profile.busyMs, 0)} ms); locations are mapped to the TypeScript ` +
      `sources through the source maps. Profile: \`${profile.file}\`.`);
    L.push('');
    L.push('| self ms | share | function | location |');
    L.push('|---:|---:|---|---|');
    for (const e of profile.top.slice(0, 20)) L.push(`| ${fmt(e.selfMs, 0)} | ${fmt(e.pct, 1)} % | \`${e.fn}\` | ${e.where ? `\`${e.where}\`` : ''} |`);
    L.push('');
    L.push('By file:');
    L.push('');
    L.push('| self ms | share | file |');
    L.push('|---:|---:|---|');
    for (const e of profile.byFile.slice(0, 10)) L.push(`| ${fmt(e.selfMs, 0)} | ${fmt(e.pct, 1)} % | \`${e.where}\` |`);
    L.push('');
  }
  return L.join('\n');
}

// ------------------------------------------------------------------------------------- svg

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function svgChart(figs: ScenarioFigures[]): string {
  const W = 1010, H = 440;
  const panelW = 420, panelH = 270, top = 84, left1 = 64, left2 = 570;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">tcpcopy (TypeScript) vs original C TCPCopy, per scenario</text>`);
  out.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#555">bars: this implementation, median with min–max whiskers · grey: original C figure (range where published) · red dashed: target</text>`);

  const panel = (x0: number, title: string, vals: { ours: Stat; orig: [number, number] | null }[], target: number | null,
    unit: string, digits: number): void => {
    const maxV = niceMax(Math.max(...vals.flatMap((v) => [v.ours.max, v.ours.median, ...(v.orig ?? [])]).filter(Number.isFinite), target ?? 0, 0.001));
    const y = (v: number): number => top + panelH - (Math.max(0, v) / maxV) * panelH;
    out.push(`<text x="${x0 + panelW / 2}" y="${top - 10}" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
    for (let i = 0; i <= 5; i++) {
      const v = (maxV * i) / 5;
      const yy = y(v);
      out.push(`<line x1="${x0}" y1="${yy.toFixed(1)}" x2="${x0 + panelW}" y2="${yy.toFixed(1)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${x0 - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end" fill="#555">${esc(fmt(v, maxV < 1 ? 2 : maxV < 10 ? 1 : 0))}</text>`);
    }
    out.push(`<line x1="${x0}" y1="${top}" x2="${x0}" y2="${top + panelH}" stroke="#333"/>`);
    out.push(`<line x1="${x0}" y1="${top + panelH}" x2="${x0 + panelW}" y2="${top + panelH}" stroke="#333"/>`);
    out.push(`<text x="${x0 - 44}" y="${top + panelH / 2}" transform="rotate(-90 ${x0 - 44} ${top + panelH / 2})" text-anchor="middle" fill="#333">${esc(unit)}</text>`);
    const slot = panelW / Math.max(1, vals.length);
    vals.forEach((v, i) => {
      const cx = x0 + slot * i + slot / 2;
      const bw = Math.min(28, slot / 3.2);
      // original (grey), left
      if (v.orig) {
        const [lo, hi] = v.orig;
        const ox = cx - bw - 2;
        if (hi > lo) {
          out.push(`<rect x="${ox.toFixed(1)}" y="${y(hi).toFixed(1)}" width="${bw.toFixed(1)}" height="${(y(lo) - y(hi)).toFixed(1)}" fill="#bbbbbb" opacity="0.8"/>`);
        } else {
          out.push(`<rect x="${ox.toFixed(1)}" y="${y(hi).toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(1, top + panelH - y(hi)).toFixed(1)}" fill="#bbbbbb"/>`);
        }
        out.push(`<text x="${(ox + bw / 2).toFixed(1)}" y="${(y(hi) - 4).toFixed(1)}" text-anchor="middle" fill="#777" font-size="10">${esc(hi > lo ? `${lo}–${hi}` : fmt(hi, hi < 10 && hi !== Math.round(hi) ? 1 : 0))}</text>`);
      } else {
        out.push(`<text x="${(cx - bw / 2 - 2).toFixed(1)}" y="${(top + panelH - 4).toFixed(1)}" text-anchor="middle" fill="#999" font-size="10">n/a</text>`);
      }
      // ours (blue), right
      const m = v.ours.median;
      if (Number.isFinite(m)) {
        const bx = cx + 2;
        out.push(`<rect x="${bx.toFixed(1)}" y="${y(m).toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(1, top + panelH - y(m)).toFixed(1)}" fill="#2b6cb0"/>`);
        const wx = bx + bw / 2;
        if (v.ours.max > v.ours.min) {
          out.push(`<line x1="${wx.toFixed(1)}" y1="${y(v.ours.min).toFixed(1)}" x2="${wx.toFixed(1)}" y2="${y(v.ours.max).toFixed(1)}" stroke="#1a365d" stroke-width="1.5"/>`);
          for (const e of [v.ours.min, v.ours.max]) out.push(`<line x1="${(wx - 5).toFixed(1)}" y1="${y(e).toFixed(1)}" x2="${(wx + 5).toFixed(1)}" y2="${y(e).toFixed(1)}" stroke="#1a365d" stroke-width="1.5"/>`);
        }
        out.push(`<text x="${wx.toFixed(1)}" y="${(Math.min(y(m), y(v.ours.max)) - 5).toFixed(1)}" text-anchor="middle" fill="#1a365d" font-size="10" font-weight="bold">${esc(fmt(m, digits))}</text>`);
      }
      out.push(`<text x="${cx.toFixed(1)}" y="${top + panelH + 16}" text-anchor="middle" fill="#333">${esc(`#${figs[i].s.id}`)}</text>`);
      out.push(`<text x="${cx.toFixed(1)}" y="${top + panelH + 30}" text-anchor="middle" fill="#555" font-size="10">${esc(figs[i].s.key)}</text>`);
    });
    if (target !== null && target <= maxV) {
      out.push(`<line x1="${x0}" y1="${y(target).toFixed(1)}" x2="${x0 + panelW}" y2="${y(target).toFixed(1)}" stroke="#c53030" stroke-dasharray="5,4"/>`);
      out.push(`<text x="${x0 + panelW + 4}" y="${(y(target) + 3).toFixed(1)}" text-anchor="start" fill="#c53030" font-size="10">≤ ${target}</text>`);
    }
  };

  panel(left1, 'Replay loss %', figs.map((f) => ({ ours: f.loss, orig: f.s.original.loss })), TARGETS.lossPct, 'loss %',
    Math.max(...figs.map((f) => f.loss.median)) >= 1 ? 1 : 2);
  panel(left2, 'tcpcopy CPU ms per 1,000 requests', figs.map((f) => ({
    ours: f.tcCpu,
    orig: f.s.original.tcpcopyCpu === null ? null : [f.s.original.tcpcopyCpu, f.s.original.tcpcopyCpu] as [number, number],
  })), null, 'CPU ms / 1k requests', 0);
  const legendY = H - 28;
  out.push(`<rect x="${W / 2 - 230}" y="${legendY - 10}" width="12" height="12" fill="#2b6cb0"/><text x="${W / 2 - 212}" y="${legendY}">this implementation (median, min–max)</text>`);
  out.push(`<rect x="${W / 2 + 40}" y="${legendY - 10}" width="12" height="12" fill="#bbbbbb"/><text x="${W / 2 + 58}" y="${legendY}">original C TCPCopy</text>`);
  out.push(`<line x1="${W / 2 + 180}" y1="${legendY - 4}" x2="${W / 2 + 200}" y2="${legendY - 4}" stroke="#c53030" stroke-dasharray="5,4"/><text x="${W / 2 + 206}" y="${legendY}">target</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------- main

interface ResultsDoc {
  options: Options;
  machine: Machine;
  runs: RunResult[];
  profileRun: RunResult | null;
  profile: ProfileSummary | null;
}

function writeDocs(doc: ResultsDoc, resultsRel: string): void {
  const figs = SCENARIOS.filter((s) => doc.options.scenarios.includes(s.id))
    .map((s) => figures(s, doc.runs.filter((r) => r.scenario === s.id)))
    .filter((f) => f.runs.length > 0);
  fs.mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'docs', 'benchmarks.md'),
    markdown(figs, doc.machine, doc.options, resultsRel, doc.profile, doc.profileRun) + '\n');
  fs.writeFileSync(path.join(ROOT, 'docs', 'benchmarks.svg'), svgChart(figs));
  progress('wrote docs/benchmarks.md and docs/benchmarks.svg');
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.render) {
    const file = path.resolve(o.render);
    let doc: ResultsDoc;
    try { doc = JSON.parse(fs.readFileSync(file, 'utf8')) as ResultsDoc; } catch (e) { die(`cannot read ${file}: ${(e as Error).message}`, 1); }
    writeDocs(doc, path.relative(ROOT, file));
    return;
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    die('needs root: the bench builds network namespaces (run it as root, e.g. sudo npm run bench)', 1);
  }
  for (const f of [BIN.tcpcopy, BIN.intercept, path.join(ROOT, 'dist/lab/fixtures/load-client.js')]) {
    if (!fs.existsSync(f)) die(`${f} is missing: build first (npm run bench runs the set-up and the build)`, 1);
  }
  for (const c of ['nginx', 'wrk']) {
    try { execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }); } catch { die(`${c} is not installed (bash scripts/setup.sh installs it)`, 1); }
  }

  let tb: Testbed | undefined;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    progress(`${sig}: stopping everything and removing the test bed`);
    killNginxSync();
    try { tb?.destroySync(); } catch (e) { process.stderr.write(`${(e as Error).message}\n`); }
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const machine = machineInfo();
  const started = new Date();
  const stamp = started.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const resultsDir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const resultsFile = path.join(resultsDir, `${stamp}.json`);

  const stale = Testbed.cleanupStale();
  if (stale.length) progress(`removed ${stale.length} stale namespaces of dead runs`);
  const chosen = SCENARIOS.filter((s) => o.scenarios.includes(s.id));
  progress(`${chosen.length} scenarios × ${o.runs} runs × ${o.seconds} s on ${machine.nproc} × ${machine.cpuModel}, Node ${machine.node}, Linux ${machine.kernel}`);

  const all: RunResult[] = [];
  let profile: ProfileSummary | null = null;
  let profileRun: RunResult | null = null;
  let failure: Error | null = null;
  try {
    tb = await Testbed.create({ clientAddrs: 16 });
    progress(`test bed ${tb.prefix}* up (work dir ${tb.workDir})`);
    if (o.snapshot) {
      snapshotInfo = await snapshotCode(tb.workDir);
      Object.assign(machine, { code: { ...machineInfo().code, snapshot: { hash: snapshotInfo.hash, builtAt: snapshotInfo.builtAt } } });
      progress(`daemons run from a copy of dist/ (build ${snapshotInfo.hash}, ${snapshotInfo.builtAt}; commit ${machine.code.commit}` +
        `${machine.code.srcChanges ? `, ${machine.code.srcChanges} uncommitted changes under src/` : ''})`);
    }
    // Accept queues as long as nginx asks for (backlog=4096).
    for (const h of ['online', 'target'] as const) {
      tb.execSync(h, 'sysctl', ['-q', '-w', 'net.core.somaxconn=4096', 'net.ipv4.tcp_max_syn_backlog=4096']);
    }
    const ng = { online: await startNginx(tb, 'online', 80), target: await startNginx(tb, 'target', 8080) };
    progress('nginx up on online:80 and target:8080');

    for (const s of chosen) {
      for (let r = 1; r <= o.runs; r++) {
        progress(`scenario ${s.id} (${s.key}) run ${r}/${o.runs}: ${loadCommand(s, o.seconds, tb.clientIps)}`);
        let res: RunResult;
        try {
          res = await oneRun(tb, ng, s, o, r);
        } catch (e) {
          // e.g. a daemon that did not start while dist/ was being rebuilt: one more try.
          progress(`  run failed (${(e as Error).message.split('\n')[0].slice(0, 200)}); retrying once`);
          await sleep(3000);
          res = await oneRun(tb, ng, s, o, r);
        }
        all.push(res);
        progress(`  online ${fmt(res.onlineRps, 0)} req/s, replicated ${fmt(res.replicatedRps, 0)} req/s, ` +
          `loss ${fmt(res.lossPct, 3)} % (${res.online.requests * res.copies - res.target.requests} of ${res.online.requests * res.copies}), ` +
          `tcpcopy ${fmt(res.tcpcopy.cpuMsPer1k, 1)} ms/1k ${fmt(res.tcpcopy.peakRssMB, 0)} MB, ` +
          `intercept ${fmt(res.intercept.cpuMsPer1k, 1)} ms/1k ${fmt(res.intercept.peakRssMB, 0)} MB, ` +
          `machine ${fmt(res.machineBusyPct, 0)} % busy (others ${fmt(res.foreignCpuPct, 0)} %), client errors ${res.load.errors}, ` +
          `raw drops ${res.rawSocketDrops}, drain ${fmt(res.drainMs / 1000, 1)} s`);
        await sleep(1500); // let the last FINs and RSTs of this run die down
      }
    }

    if (o.profile) {
      const s = SCENARIOS.find((x) => x.id === o.profileScenario)!;
      const profDir = path.join(tb.workDir, 'cpuprof');
      fs.mkdirSync(profDir, { recursive: true });
      progress(`profile: scenario ${s.id} (${s.key}) once with tcpcopy under node --cpu-prof`);
      profileRun = await oneRun(tb, ng, s, o, 1, profDir);
      progress(`  online ${fmt(profileRun.onlineRps, 0)} req/s, loss ${fmt(profileRun.lossPct, 3)} %, tcpcopy ${fmt(profileRun.tcpcopy.cpuMsPer1k, 1)} ms/1k (profiled)`);
      const prof = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
      if (prof.length) {
        const keep = path.join(resultsDir, `${stamp}-tcpcopy-${s.key}.cpuprofile`);
        fs.copyFileSync(path.join(profDir, prof[0]), keep);
        fs.chmodSync(keep, 0o644);
        profile = summariseProfile(keep);
        progress(`  profile: ${path.relative(ROOT, keep)}; hottest: ${profile.top.slice(0, 5).map((e) => `${e.fn} ${fmt(e.pct, 1)} %`).join(', ')}`);
      } else {
        progress('  profile: tcpcopy wrote no .cpuprofile');
      }
    }
  } catch (e) {
    failure = e as Error;
  } finally {
    if (tb) {
      progress('removing the test bed');
      try { await tb.destroy(); } catch (e) { process.stderr.write(`${(e as Error).message}\n`); }
      killNginxSync(); // normally already gone: the masters stop their workers on SIGTERM
    }
  }

  if (!all.length) {
    die(`no run completed${failure ? `: ${failure.stack ?? failure.message}` : ''}`, 1);
  }
  const figs = chosen.map((s) => figures(s, all.filter((r) => r.scenario === s.id))).filter((f) => f.runs.length > 0);
  const doc = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    options: o,
    machine,
    complete: !failure,
    error: failure ? failure.message : undefined,
    scenarios: figs.map((f) => ({
      id: f.s.id, key: f.s.key, title: f.s.title, copies: f.s.copies, original: f.s.original,
      median: {
        onlineRps: f.onlineRps.median, replicatedRps: f.replicatedRps.median, lossPct: f.loss.median,
        tcpcopyCpuMsPer1k: f.tcCpu.median, interceptCpuMsPer1k: f.icCpu.median,
        tcpcopyPeakRssMB: f.tcRss.median, interceptPeakRssMB: f.icRss.median,
      },
      stats: { onlineRps: f.onlineRps, replicatedRps: f.replicatedRps, lossPct: f.loss, tcpcopyCpuMsPer1k: f.tcCpu,
        interceptCpuMsPer1k: f.icCpu, tcpcopyPeakRssMB: f.tcRss, interceptPeakRssMB: f.icRss, machineBusyPct: f.busy },
      counters: { tcpcopy: counterMedians(f.runs, 'tcpcopy'), intercept: counterMedians(f.runs, 'intercept') },
    })),
    targets: TARGETS,
    runs: all,
    profileRun,
    profile,
  };
  fs.writeFileSync(resultsFile, JSON.stringify(doc, null, 2) + '\n');
  const rel = path.relative(ROOT, resultsFile);
  progress(`wrote ${rel}`);
  writeDocs(doc, rel);
  if (failure) die(`stopped early: ${failure.stack ?? failure.message}`, 1);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
