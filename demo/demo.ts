/**
 * `npm run demo`: TCPCopy replicating real traffic, on one machine, in about a minute.
 *
 * Builds the namespace lab (clients, online, target, assistant; 198.18.0.0/15 only), starts an
 * HTTP server on the online host (:80) and on the target (:8080), starts intercept on the
 * assistant and tcpcopy on the online host exactly as a user would on three machines (and
 * prints those command lines), drives a bounded mixed load (short and keep-alive connections
 * at once), shows live progress, waits for replication to settle, prints a report and tears
 * everything down (also on Ctrl-C).
 *
 *   node dist/demo/demo.js [--duration S] [--rate R] [--copies N] [--keep] [--json] [-h]
 *
 * Exit status: 0 when at most 0.1 % of the expected requests are missing at the target,
 * 1 otherwise (or on any error), 2 on bad arguments, 130 when interrupted.
 *
 * The parts: options.ts (command line), output.ts, measure.ts, live.ts (load, progress,
 * settling), report.ts; this file sets the lab up, runs the parts in order and tears down.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Testbed, ONLINE_IP, TARGET_IP, ASSISTANT_IP, CLIENT_NET, type HttpServerHandle } from '../lab/testbed';
import { startDaemon, type DaemonHandle } from '../lab/daemons';
import { describeLoad, drive, type Lab, type RunState } from './live';
import { parseOptions, type Options } from './options';
import { Out, q } from './output';
import { buildReport, printKeep, printReport, printVerdict } from './report';

// ---- state shared with the signal handlers ---------------------------------------------------

let tb: Testbed | undefined;
const daemons: DaemonHandle[] = [];
const servers: HttpServerHandle[] = [];
let out: Out;
const state: RunState = { interrupted: false };
let teardown: Promise<void> | undefined;

/** Stops the daemons (tcpcopy first), the servers and the bed. Idempotent. */
function cleanup(): Promise<void> {
  if (state.progressTimer) clearInterval(state.progressTimer);
  teardown ??= (async () => {
    for (const d of [...daemons].reverse()) await d.stop().catch(() => undefined);
    await Promise.allSettled(servers.map((s) => s.stop()));
    if (tb) await tb.destroy();
  })();
  return teardown;
}

function onSignal(sig: NodeJS.Signals): void {
  if (state.interrupted) {
    // Second Ctrl-C: no more waiting.
    try { tb?.destroySync(); } catch { /* best effort */ }
    process.exit(130);
  }
  state.interrupted = true;
  if (state.progressTimer) clearInterval(state.progressTimer);
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

/** Never resolves: used once a signal arrived (its handler exits). */
const forever = (): Promise<never> => new Promise<never>(() => undefined);

// ---- the parts -------------------------------------------------------------------------------

function intro(): void {
  const say = out.say.bind(out);
  say(out.bold('TCPCopy demo: live HTTP traffic copied to a test server, on one machine'));
  say('Four "machines" are network namespaces joined by a bridge; only 198.18.0.0/15 is used.');
  say();
  say('  clients ───── HTTP ─────▶ online :80 ══ copies ══▶ target :8080');
  say('  198.18.1.10-17            198.18.0.20              198.18.0.30');
  say('                            tcpcopy    ▲                  │ replies to 198.18.1.0/24');
  say('                                       │ reply headers    ▼ are routed to the assistant');
  say('                                       └─────────── assistant 198.18.0.40');
  say('                                                    intercept; drops the replies');
  say();
}

/**
 * Creates the bed. It installs its own SIGINT/SIGTERM hooks (delete and exit at once); ours stop
 * the daemons first and exit 130, so the bed's are dropped. Its exit hooks stay as a safety net,
 * except with --keep: they are returned so that --keep can remove them.
 */
async function createBed(t00: number): Promise<{ bed: Testbed; bedExitHooks: ((...a: unknown[]) => void)[] }> {
  const sigBefore = new Set([...process.listeners('SIGINT'), ...process.listeners('SIGTERM')]);
  const exitBefore = new Set(process.listeners('exit'));
  tb = await Testbed.create({ clientAddrs: 8 });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    for (const l of process.listeners(sig)) if (!sigBefore.has(l)) process.off(sig, l);
  }
  const bedExitHooks = process.listeners('exit').filter((l) => !exitBefore.has(l)) as ((...a: unknown[]) => void)[];
  if (state.interrupted) return forever();
  out.say(out.dim(`namespaces ${tb.prefix}{br,client,online,target,assistant} ready in ${((Date.now() - t00) / 1000).toFixed(1)} s`));
  return { bed: tb, bedExitHooks };
}

/** The two HTTP servers and the two daemons, with the command lines a user would type. */
async function startLab(bed: Testbed, copies: number): Promise<Lab> {
  const { say, dim, bold, cyan } = { say: out.say.bind(out), dim: out.dim.bind(out), bold: out.bold.bind(out), cyan: out.cyan.bind(out) };
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
  return { bed, online, target, tc, icpt };
}

/** The bed's directory goes with it: keep the daemons' logs of a failed run for a look. */
function saveLogs(lab: Lab): string[] {
  const saved: string[] = [];
  try {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-demo-'));
    for (const d of [lab.tc, lab.icpt]) {
      const to = path.join(dir, path.basename(d.logFile));
      fs.copyFileSync(d.logFile, to);
      saved.push(to);
    }
  } catch {
    /* nothing to keep */
  }
  return saved;
}

// ---- the run ---------------------------------------------------------------------------------

async function main(opts: Options): Promise<number> {
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
  const t00 = Date.now();

  intro();
  const { bed, bedExitHooks } = await createBed(t00);
  const lab = await startLab(bed, opts.copies);
  describeLoad(out, opts);
  const d = await drive(out, lab, opts, state);
  if (!d) return forever();

  // With --keep the daemons run on: their last statistics stand in for the summaries.
  const tcSummary = opts.keep ? undefined : await lab.tc.stop();
  const icSummary = opts.keep ? undefined : await lab.icpt.stop();
  const report = buildReport(lab, opts, d, {
    tc: tcSummary ?? lab.tc.lastStats() ?? {},
    ic: icSummary ?? lab.icpt.lastStats() ?? {},
  });
  printReport(out, report, opts, d);

  let logs: string[] = [];
  if (opts.keep) {
    // Leave everything up: the bed must not delete itself when this process exits.
    for (const l of bedExitHooks) process.off('exit', l);
    printKeep(out, lab);
    logs = [lab.tc.logFile, lab.icpt.logFile];
  } else {
    if (!report.pass) logs = saveLogs(lab);
    await cleanup();
  }
  printVerdict(out, report, opts, logs);
  out.say(out.dim(`total ${((Date.now() - t00) / 1000).toFixed(1)} s`));
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  return report.pass ? 0 : 1;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

main(parseOptions(process.argv.slice(2))).then(
  (code) => {
    if (state.interrupted) return; // the signal handler exits
    process.exitCode = code;
    // Child pipes (kept servers) must not hold the process.
    setImmediate(() => process.exit(code));
  },
  async (err: Error) => {
    // A Ctrl-C also hits the commands the bed runs; let our handler see the signal first.
    await sleep(200);
    if (state.interrupted) return;
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
