/**
 * `npm run demo`: TCPCopy replicating real traffic, on one machine, in about a minute.
 *
 * Builds the namespace test bed (clients, online, target, assistant; 198.18.0.0/15 only),
 * starts an HTTP server on the online host (:80) and on the target (:8080), starts intercept
 * on the assistant and tcpcopy on the online host exactly as a user would on three machines
 * (and prints those command lines), drives a bounded mixed load (short and keep-alive
 * connections at once), shows live progress, waits for replication to settle, prints a
 * report and tears everything down (also on Ctrl-C).
 *
 *   node dist/demo/demo.js [--duration S] [--rate R] [--copies N] [--keep] [--json] [-h]
 *
 * Exit status: 0 when at most 0.1 % of the expected requests are missing at the target,
 * 1 otherwise (or on any error), 2 on bad arguments, 130 when interrupted.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  Testbed, ONLINE_IP, TARGET_IP, ASSISTANT_IP, CLIENT_NET,
  type HttpServerHandle, type HttpServerStats, type LoadResult,
} from '../lab/testbed';
import { startDaemon, num, type DaemonHandle } from '../lab/daemons';

// ---- options -------------------------------------------------------------------------------

interface Options {
  durationS: number;
  rate: number;
  copies: number;
  keep: boolean;
  json: boolean;
  help: boolean;
}

const USAGE = `usage: npm run demo -- [options]      (or: node dist/demo/demo.js [options], as root)

Builds four "machines" in network namespaces (clients, online server, target server,
assistant server), runs intercept and tcpcopy on them as you would on real machines,
sends live HTTP traffic to the online server and shows how much of it the target received.

options:
  --duration <s>   how long the load runs, in seconds (default 20)
  --rate <req/s>   total request rate, split between short and keep-alive connections (default 400)
  --copies <n>     replay every session n times (tcpcopy -n); the target then gets n x online
  --keep           leave the namespaces, servers and daemons running and print how to explore
                   them and how to tear them down
  --json           print the final report as one JSON line on stdout (the rest goes to stderr)
  -h, --help       print this help

exit status: 0 when at most 0.1 % of the requests were lost, 1 otherwise, 130 on Ctrl-C.
`;

function usageError(msg: string): never {
  process.stderr.write(`demo: ${msg}\n(run 'npm run demo -- --help' for every option)\n`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { durationS: 20, rate: 400, copies: 1, keep: false, json: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let inline: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) usageError(`${arg} needs a value`);
      return v;
    };
    const number = (v: string, min: number, max: number, integer: boolean): number => {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
        usageError(`${arg} takes ${integer ? 'a whole number' : 'a number'} from ${min} to ${max} (got "${v}")`);
      }
      return n;
    };
    const flag = (): void => {
      if (inline !== undefined) usageError(`${arg} takes no value`);
    };
    switch (arg) {
      case '--duration': o.durationS = number(value(), 1, 3600, false); break;
      case '--rate': o.rate = number(value(), 1, 100_000, true); break;
      case '--copies': case '-n': o.copies = number(value(), 1, 1023, true); break;
      case '--keep': flag(); o.keep = true; break;
      case '--json': flag(); o.json = true; break;
      case '-h': case '--help': o.help = true; break;
      default: usageError(`unknown argument "${argv[i]}"`);
    }
  }
  return o;
}

// ---- small helpers ---------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Shell-quotes an argument for display. */
function q(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function pct(x: number): string {
  return `${x.toFixed(2)} %`;
}

interface Count { requests: number; bytes: number }

/** Requests and request bytes (headers + bodies) from the client addresses 198.18.1.x. */
function count(s: HttpServerStats): Count {
  const c: Count = { requests: 0, bytes: 0 };
  for (const [ip, v] of Object.entries(s.perClient)) {
    if (!ip.startsWith('198.18.1.')) continue;
    c.requests += v.requests;
    c.bytes += v.headerBytes + v.bodyBytes;
  }
  return c;
}

function lossPercent(expected: number, got: number): number {
  return expected > 0 ? (Math.max(0, expected - got) / expected) * 100 : 0;
}

let clkTck = 0;
function clockTicks(): number {
  if (clkTck) return clkTck;
  try {
    clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim()) || 100;
  } catch {
    clkTck = 100;
  }
  return clkTck;
}

interface ProcUsage { pid: number; cpuSeconds: number; peakMemMB: number; alive: boolean }

/** CPU seconds (utime + stime) and peak resident memory (VmHWM) of a live process. */
function procUsage(pid: number | undefined): ProcUsage {
  const u: ProcUsage = { pid: pid ?? 0, cpuSeconds: 0, peakMemMB: 0, alive: false };
  if (!pid) return u;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3,
    // utime field 14, stime field 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    u.cpuSeconds = Math.round(((Number(rest[11]) + Number(rest[12])) / clockTicks()) * 100) / 100;
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    if (m) u.peakMemMB = Math.round((Number(m[1]) / 1024) * 10) / 10;
    u.alive = true;
  } catch {
    /* gone */
  }
  return u;
}

// ---- output ----------------------------------------------------------------------------------

class Out {
  readonly human: NodeJS.WriteStream;
  private readonly color: boolean;
  private progressShown = false;
  readonly tty: boolean;

  constructor(json: boolean) {
    // With --json, stdout carries exactly one JSON line; everything for people goes to stderr.
    this.human = json ? process.stderr : process.stdout;
    this.tty = !!process.stderr.isTTY;
    this.color = !!this.human.isTTY && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
  }

  private paint(code: string, s: string): string {
    return this.color ? `\x1b[${code}m${s}\x1b[0m` : s;
  }
  bold(s: string): string { return this.paint('1', s); }
  dim(s: string): string { return this.paint('2', s); }
  green(s: string): string { return this.paint('32', s); }
  red(s: string): string { return this.paint('31', s); }
  cyan(s: string): string { return this.paint('36', s); }

  say(line = ''): void {
    this.endProgress();
    this.human.write(`${line}\n`);
  }

  /** One updating line on a TTY; a plain line otherwise (the caller paces those). */
  progress(line: string): void {
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      this.progressShown = true;
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  endProgress(): void {
    if (this.progressShown) {
      process.stderr.write('\n');
      this.progressShown = false;
    }
  }
}

// ---- state shared with the signal handlers ---------------------------------------------------

let tb: Testbed | undefined;
const daemons: DaemonHandle[] = [];
const servers: HttpServerHandle[] = [];
let out: Out;
let interrupted = false;
let teardown: Promise<void> | undefined;
let progressTimer: NodeJS.Timeout | undefined;

/** Stops the daemons (tcpcopy first), the servers and the bed. Idempotent. */
function cleanup(): Promise<void> {
  if (progressTimer) clearInterval(progressTimer);
  teardown ??= (async () => {
    for (const d of [...daemons].reverse()) await d.stop().catch(() => undefined);
    await Promise.allSettled(servers.map((s) => s.stop()));
    if (tb) await tb.destroy();
  })();
  return teardown;
}

function onSignal(sig: NodeJS.Signals): void {
  if (interrupted) {
    // Second Ctrl-C: no more waiting.
    try { tb?.destroySync(); } catch { /* best effort */ }
    process.exit(130);
  }
  interrupted = true;
  if (progressTimer) clearInterval(progressTimer);
  out?.endProgress();
  process.stderr.write(`\ndemo: ${sig}: stopping the daemons and deleting the namespaces...\n`);
  const hard = setTimeout(() => {
    try { tb?.destroySync(); } catch { /* best effort */ }
    process.exit(130);
  }, 20_000);
  void cleanup()
    .catch((e: Error) => { process.stderr.write(`demo: teardown: ${e.message}\n`); })
    .finally(() => {
      clearTimeout(hard);
      process.exit(130);
    });
}

// ---- the run ---------------------------------------------------------------------------------

interface Sample { at: number; online: Count; target: Count; tc: Record<string, unknown> | undefined }

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    process.stderr.write(
      'demo: this needs root: it creates network namespaces, virtual links and a bridge ' +
      '(all inside namespaces; nothing is changed in the host\'s own network).\n' +
      'run it as: sudo npm run demo\n');
    return 1;
  }
  out = new Out(opts.json);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const { say, bold, dim, cyan } = {
    say: out.say.bind(out), bold: out.bold.bind(out), dim: out.dim.bind(out), cyan: out.cyan.bind(out),
  };
  const copies = opts.copies;
  const t00 = Date.now();

  say(bold('TCPCopy demo: live HTTP traffic copied to a test server, on one machine'));
  say('Four "machines" are network namespaces joined by a bridge; only 198.18.0.0/15 is used.');
  say();
  say('  clients ───── HTTP ─────▶ online :80 ══ copies ══▶ target :8080');
  say('  198.18.1.10-17            198.18.0.20              198.18.0.30');
  say('                            tcpcopy    ▲                  │ replies to 198.18.1.0/24');
  say('                                       │ reply headers    ▼ are routed to the assistant');
  say('                                       └─────────── assistant 198.18.0.40');
  say('                                                    intercept; drops the replies');
  say();

  // The bed installs its own SIGINT/SIGTERM hooks (delete and exit at once); ours stop the
  // daemons first and exit 130, so drop the bed's after creating it. Its exit hook stays as
  // a safety net, except with --keep.
  const sigBefore = new Set([...process.listeners('SIGINT'), ...process.listeners('SIGTERM')]);
  const exitBefore = new Set(process.listeners('exit'));
  tb = await Testbed.create({ clientAddrs: 8 });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    for (const l of process.listeners(sig)) if (!sigBefore.has(l)) process.off(sig, l);
  }
  const bedExitHooks = process.listeners('exit').filter((l) => !exitBefore.has(l));
  if (interrupted) return new Promise<number>(() => undefined); // the signal handler exits
  const bed = tb;
  say(dim(`namespaces ${bed.prefix}{br,client,online,target,assistant} ready in ${((Date.now() - t00) / 1000).toFixed(1)} s`));

  const online = await bed.startHttpServer('online', 80, { body: 300 });
  servers.push(online);
  const target = await bed.startHttpServer('target', 8080, { body: 300 });
  servers.push(target);
  say(dim(`HTTP servers: online ${ONLINE_IP}:80 (pid ${online.child.pid}), target ${TARGET_IP}:8080 (pid ${target.child.pid})`));
  say();

  const interceptArgs = ['-i', bed.dev('assistant'), '-F', 'tcp and src port 8080'];
  const tcpcopyArgs = ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, ...(copies > 1 ? ['-n', String(copies)] : [])];
  say(bold('What runs where (as you would type it on three machines):'));
  say(`  on the target    (${TARGET_IP}):  ${cyan(`ip route add ${CLIENT_NET} via ${ASSISTANT_IP}`)}  ${dim('(set up by the bed)')}`);
  say(`  on the assistant (${ASSISTANT_IP}):  ${cyan(`intercept ${interceptArgs.map(q).join(' ')}`)}`);
  say(`  on the online    (${ONLINE_IP}):  ${cyan(`tcpcopy ${tcpcopyArgs.map(q).join(' ')}`)}`);
  say(dim('  (the demo adds --stats-interval 1 to both daemons, for the live counters)'));

  const icpt = await startDaemon(bed, 'assistant', 'intercept', interceptArgs);
  daemons.push(icpt);
  const tc = await startDaemon(bed, 'online', 'tcpcopy', tcpcopyArgs);
  daemons.push(tc);
  say(dim(`intercept pid ${icpt.child.pid}, tcpcopy pid ${tc.child.pid}; logs in ${bed.workDir}`));
  say();

  // ---- load ----
  const shortRate = Math.ceil(opts.rate / 2);
  const keepRate = opts.rate - shortRate;
  const shortReqs = Math.max(1, Math.round(shortRate * opts.durationS));
  const keepReqs = Math.round(keepRate * opts.durationS);
  const hardStopMs = Math.round(opts.durationS * 1000 * 1.5 + 5000);
  say(bold(`Load: ${fmtInt(opts.rate)} req/s for ${opts.durationS} s from 8 client addresses, two clients at once:`));
  say(`  short connections      ${fmtInt(shortReqs)} GETs, one per connection, ${fmtInt(shortRate)}/s`);
  if (keepReqs > 0) say(`  keep-alive connections ${fmtInt(keepReqs)} POSTs of 1 KiB, 100 per connection, ${fmtInt(keepRate)}/s`);
  if (copies > 1) say(`  tcpcopy -n ${copies}: the target should get ${copies} x what the online server gets`);
  say();

  const tLoad = Date.now();
  const loads: Promise<LoadResult>[] = [
    bed.runLoad({ requests: shortReqs, concurrency: 8, rate: shortRate, localAddrs: bed.clientIps, durationMs: hardStopMs }),
  ];
  if (keepReqs > 0) {
    loads.push(bed.runLoad({
      requests: keepReqs, concurrency: 4, keepalive: true, perConn: 100, body: 1024, rate: keepRate,
      localAddrs: bed.clientIps, durationMs: hardStopMs,
    }));
  }
  let loadDone = false;
  let loadEnded = 0;
  const loadAll = Promise.all(loads).finally(() => { loadDone = true; loadEnded = Date.now(); });

  // ---- live progress ----
  // CPU and peak memory as last seen, so a daemon that dies mid-run still has figures.
  const usage = { tc: procUsage(tc.child.pid), ic: procUsage(icpt.child.pid) };
  const readUsage = (): void => {
    const t = procUsage(tc.child.pid);
    const i = procUsage(icpt.child.pid);
    if (t.alive) usage.tc = t;
    if (i.alive) usage.ic = i;
  };
  let sampling: Promise<Sample> | undefined;
  const sample = (): Promise<Sample> => {
    sampling ??= (async () => {
      const [o, t] = await Promise.all([online.stats(), target.stats()]);
      readUsage();
      return { at: Date.now(), online: count(o), target: count(t), tc: tc.lastStats() };
    })().finally(() => { sampling = undefined; });
    return sampling;
  };
  const barWidth = 20;
  const render = (s: Sample, phase: string): string => {
    const el = (s.at - tLoad) / 1000;
    const frac = Math.min(1, el / opts.durationS);
    const filled = Math.round(frac * barWidth);
    const bar = loadDone ? '' : `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] `;
    const expected = copies * s.online.requests;
    const sessions = s.tc ? `${fmtInt(num(s.tc.sessionsActive))}/${fmtInt(num(s.tc.sessionsCreated))}` : '-/-';
    return `${phase} ${bar}${el.toFixed(1).padStart(5)} s  online ${fmtInt(s.online.requests).padStart(6)}  ` +
      `replicated ${fmtInt(s.target.requests).padStart(6)}${copies > 1 ? ` of ${fmtInt(expected)}` : ''}  ` +
      `sessions ${sessions}  loss ${pct(lossPercent(expected, s.target.requests))}`;
  };
  let lastPrinted = 0;
  const tick = async (phase: () => string): Promise<void> => {
    try {
      const s = await sample();
      if (interrupted) return;
      if (out.tty || s.at - lastPrinted >= 1900) {
        lastPrinted = s.at;
        out.progress(render(s, phase()));
      }
    } catch {
      /* a server busy for a moment; next tick */
    }
  };
  const phase = () => (loadDone ? 'settling' : 'load    ');
  progressTimer = setInterval(() => void tick(phase), out.tty ? 300 : 2000);
  void tick(phase);

  const results = await loadAll;
  if (progressTimer) clearInterval(progressTimer);
  const loadSeconds = (loadEnded - tLoad) / 1000;

  // ---- settle: until the target has everything or stops moving (bounded) ----
  const settleStart = Date.now();
  const settleLimitMs = 20_000;
  let last = await sample();
  let lastChange = Date.now();
  for (;;) {
    if (interrupted) return new Promise<number>(() => undefined);
    if (out.tty || Date.now() - lastPrinted >= 1900) { lastPrinted = Date.now(); out.progress(render(last, 'settling')); }
    const expected = copies * last.online.requests;
    if (last.target.requests >= expected && num(last.tc?.sessionsActive) === 0) break;
    if (Date.now() - lastChange > 3000 || Date.now() - settleStart > settleLimitMs) break;
    await sleep(300);
    const s = await sample();
    if (s.target.requests !== last.target.requests || s.online.requests !== last.online.requests) lastChange = Date.now();
    last = s;
  }
  out.progress(render(last, 'done    '));
  out.endProgress();
  const settleSeconds = (Date.now() - settleStart) / 1000;

  // ---- measure ----
  const final = await sample();
  readUsage();
  const tcUse = usage.tc;
  const icUse = usage.ic;
  const exited = [tc, icpt].filter((d) => d.child.exitCode !== null || d.child.signalCode !== null)
    .map((d) => `${d.name} exited early (${d.child.signalCode ?? `status ${d.child.exitCode}`})`);
  const savedLogs: string[] = [];
  let tcSummary: Record<string, unknown> | undefined;
  let icSummary: Record<string, unknown> | undefined;
  if (!opts.keep) {
    tcSummary = await tc.stop();
    icSummary = await icpt.stop();
  }
  const tcCounters = tcSummary ?? tc.lastStats() ?? {};
  const icCounters = icSummary ?? icpt.lastStats() ?? {};

  const expected = copies * final.online.requests;
  const loss = lossPercent(expected, final.target.requests);
  const extra = Math.max(0, final.target.requests - expected);
  const okLoad = results.reduce((a, r) => a + r.ok, 0);
  const errLoad = results.reduce((a, r) => a + r.errors, 0);
  const pass = final.online.requests > 0 && loss <= 0.1;
  const report = {
    pass,
    prefix: bed.prefix,
    namespaces: bed.namespaces(),
    durationS: opts.durationS,
    rate: opts.rate,
    copies,
    loadSeconds: Math.round(loadSeconds * 10) / 10,
    settleSeconds: Math.round(settleSeconds * 10) / 10,
    clientRequestsOk: okLoad,
    clientErrors: errLoad,
    latencyMsP50: Math.max(...results.map((r) => r.latencyMsP50)),
    latencyMsP99: Math.max(...results.map((r) => r.latencyMsP99)),
    requestsOnline: final.online.requests,
    requestsTarget: final.target.requests,
    requestsExpected: expected,
    requestsLost: Math.max(0, expected - final.target.requests),
    requestsExtra: extra,
    lossPercent: Math.round(loss * 10000) / 10000,
    bytesOnline: final.online.bytes,
    bytesTarget: final.target.bytes,
    bytesExpected: copies * final.online.bytes,
    daemonsExited: exited,
    tcpcopy: { pid: tcUse.pid, cpuSeconds: tcUse.cpuSeconds, peakMemMB: tcUse.peakMemMB, log: tc.logFile },
    intercept: { pid: icUse.pid, cpuSeconds: icUse.cpuSeconds, peakMemMB: icUse.peakMemMB, log: icpt.logFile },
    sessions: {
      created: num(tcCounters.sessionsCreated),
      faked: num(tcCounters.sessionsFaked),
      closed: num(tcCounters.sessionsClosed),
      timedOut: num(tcCounters.sessionsTimedOut),
      resetByTarget: num(tcCounters.sessionsResetByTarget),
      active: num(tcCounters.sessionsActive),
    },
    interceptPackets: { captured: num(icCounters.captured), forwarded: num(icCounters.forwarded), noRoute: num(icCounters.noRoute) },
    kept: opts.keep,
  };

  // ---- report ----
  const c1 = 24, c2 = 12, c3 = 12;
  const row = (label: string, a: string, b: string, note = '') =>
    say(`  ${label.padEnd(c1)}${a.padStart(c2)}${b.padStart(c3)}${note ? `   ${note}` : ''}`);
  say();
  say(bold(`Report  (load ${loadSeconds.toFixed(1)} s at ${fmtInt(okLoad / Math.max(loadSeconds, 0.001))} req/s, ` +
    `settled in ${settleSeconds.toFixed(1)} s)`));
  row('', 'online', 'target');
  row('requests', fmtInt(report.requestsOnline), fmtInt(report.requestsTarget),
    copies > 1 ? dim(`expected ${fmtInt(expected)} = ${copies} x online`) : '');
  row('request bytes', fmtInt(report.bytesOnline), fmtInt(report.bytesTarget),
    report.bytesTarget === report.bytesExpected ? dim(copies > 1 ? `exactly ${copies} x online` : 'identical') : out.red(`expected ${fmtInt(report.bytesExpected)}`));
  row('loss', '', pct(loss),
    extra > 0 ? out.red(`${fmtInt(extra)} more than expected`) : dim(`${fmtInt(report.requestsLost)} missing`));
  row('clients', `${fmtInt(okLoad)} ok`, `${fmtInt(errLoad)} err`,
    dim(`latency p50 ${report.latencyMsP50.toFixed(1)} ms, p99 ${report.latencyMsP99.toFixed(1)} ms`));
  const achieved = okLoad / Math.max(loadSeconds, 0.001);
  if (achieved < 0.9 * opts.rate) {
    say(dim(`  (the clients reached ${fmtInt(achieved)} of the ${fmtInt(opts.rate)} req/s asked: this machine is the limit` +
      `${results.some((r) => r.hitDeadline) ? '; the load was cut at its hard stop' : ''})`));
  }
  say();
  row('', 'CPU s', 'peak mem');
  row(`tcpcopy (pid ${tcUse.pid})`, tcUse.cpuSeconds.toFixed(2), `${tcUse.peakMemMB.toFixed(1)} MB`);
  row(`intercept (pid ${icUse.pid})`, icUse.cpuSeconds.toFixed(2), `${icUse.peakMemMB.toFixed(1)} MB`);
  for (const e of exited) say(out.red(`  ${e}: its figures are as last seen`));
  say(`  sessions: created ${fmtInt(report.sessions.created)}, faked ${fmtInt(report.sessions.faked)}, ` +
    `closed ${fmtInt(report.sessions.closed)}` +
    (report.sessions.timedOut ? `, timed out ${fmtInt(report.sessions.timedOut)}` : '') +
    (report.sessions.resetByTarget ? `, reset by target ${fmtInt(report.sessions.resetByTarget)}` : '') +
    (opts.keep ? dim(' (so far; tcpcopy still runs)') : ''));
  say();

  if (opts.keep) {
    // Leave everything up: the bed must not delete itself when this process exits.
    for (const l of bedExitHooks) process.off('exit', l as () => void);
    const ns = (h: 'client' | 'online' | 'target' | 'assistant' | 'br') => bed.ns(h);
    const pids = [tc.child.pid, icpt.child.pid, online.child.pid, target.child.pid].filter((p) => p !== undefined);
    say(bold('Kept running. Explore:'));
    say(`  ip netns exec ${ns('client')} curl -s -o /dev/null -w '%{http_code}\\n' http://${ONLINE_IP}/`);
    say(`  ip netns exec ${ns('online')} tcpdump -ni ${bed.dev('online')} tcp port 80`);
    say(`  ip netns exec ${ns('target')} tcpdump -ni ${bed.dev('target')} tcp port 8080`);
    say(`  ip netns exec ${ns('assistant')} nstat -az IpInAddrErrors   ${dim('# target replies dropped here')}`);
    say(`  ip netns exec ${ns('target')} ss -tn state time-wait | wc -l`);
    say(`  tail -f ${tc.logFile}   ${dim('# tcpcopy, JSON lines')}`);
    say(`  tail -f ${icpt.logFile}   ${dim('# intercept')}`);
    say(`  kill -USR2 ${target.child.pid}; cat ${target.statsFile}   ${dim('# target server counters')}`);
    say(bold('Tear down:'));
    say(`  kill ${pids.join(' ')}`);
    say(`  for ns in ${bed.namespaces().join(' ')}; do ip netns del $ns; done`);
    say(`  rm -rf ${bed.workDir}`);
    say(dim('  (npm test also deletes namespaces left by exited runs: Testbed.cleanupStale)'));
    say();
  } else {
    if (!pass) {
      // The bed's directory goes with it; keep the daemons' logs for a look.
      try {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-demo-'));
        for (const d of [tc, icpt]) {
          const to = path.join(dir, path.basename(d.logFile));
          fs.copyFileSync(d.logFile, to);
          savedLogs.push(to);
        }
      } catch {
        /* nothing to keep */
      }
    }
    await cleanup();
  }

  if (pass) {
    say(out.green(bold(`PASS: ${pct(loss)} of the requests lost (limit 0.10 %)`)) +
      (copies > 1 ? out.green(`, every session replayed ${copies} times`) : ''));
  } else if (final.online.requests === 0) {
    say(out.red(bold('FAIL: the online server served no requests from the clients')));
  } else {
    say(out.red(bold(`FAIL: ${pct(loss)} of the requests lost (limit 0.10 %): ` +
      `${fmtInt(report.requestsLost)} of ${fmtInt(expected)} never reached the target`)));
    const logs = opts.keep ? [tc.logFile, icpt.logFile] : savedLogs;
    if (logs.length) say(dim(`  logs: ${logs.join(' ')}`));
  }
  say(dim(`total ${((Date.now() - t00) / 1000).toFixed(1)} s`));
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  return pass ? 0 : 1;
}

main().then(
  (code) => {
    if (interrupted) return; // the signal handler exits
    process.exitCode = code;
    // Child pipes (kept servers) must not hold the process.
    setImmediate(() => process.exit(code));
  },
  async (err: Error) => {
    // A Ctrl-C also hits the commands the bed runs; let our handler see the signal first.
    await sleep(200);
    if (interrupted) return;
    out?.endProgress();
    process.stderr.write(`demo: ${err.message}\n`);
    try {
      await cleanup();
    } catch (e) {
      process.stderr.write(`demo: teardown: ${(e as Error).message}\n`);
    }
    process.exit(1);
  },
);
