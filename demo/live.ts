/**
 * The demo's load and what the user watches meanwhile: two load clients at once (short and
 * keep-alive connections), a live progress line, then the settling until the target has every
 * request or stops moving (bounded).
 */
import type { HttpServerHandle, LoadResult, Testbed } from '../lab/testbed';
import { num, type DaemonHandle } from '../lab/daemons';
import { count, lossPercent, procUsage, type Count, type ProcUsage } from './measure';
import type { Options } from './options';
import { fmtInt, pct, type Out } from './output';

export interface Sample { at: number; online: Count; target: Count; tc: Record<string, unknown> | undefined }

/** The running lab of the demo. */
export interface Lab {
  bed: Testbed;
  online: HttpServerHandle;
  target: HttpServerHandle;
  tc: DaemonHandle;
  icpt: DaemonHandle;
}

export interface Drive {
  results: LoadResult[];
  final: Sample;
  loadSeconds: number;
  settleSeconds: number;
  /** CPU and peak memory as last seen, so a daemon that dies mid-run still has figures. */
  usage: { tc: ProcUsage; ic: ProcUsage };
}

/** Interruption state the signal handler shares with the run. */
export interface RunState { interrupted: boolean; progressTimer?: NodeJS.Timeout }

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Prints what the load will be. */
export function describeLoad(out: Out, opts: Options): void {
  const { shortRate, keepRate, shortReqs, keepReqs } = loadPlan(opts);
  out.say(out.bold(`Load: ${fmtInt(opts.rate)} req/s for ${opts.durationS} s from 8 client addresses, two clients at once:`));
  out.say(`  short connections      ${fmtInt(shortReqs)} GETs, one per connection, ${fmtInt(shortRate)}/s`);
  if (keepReqs > 0) out.say(`  keep-alive connections ${fmtInt(keepReqs)} POSTs of 1 KiB, 100 per connection, ${fmtInt(keepRate)}/s`);
  if (opts.copies > 1) out.say(`  tcpcopy -n ${opts.copies}: the target should get ${opts.copies} x what the online server gets`);
  out.say();
}

function loadPlan(opts: Options) {
  const shortRate = Math.ceil(opts.rate / 2);
  const keepRate = opts.rate - shortRate;
  return {
    shortRate, keepRate,
    shortReqs: Math.max(1, Math.round(shortRate * opts.durationS)),
    keepReqs: Math.round(keepRate * opts.durationS),
    hardStopMs: Math.round(opts.durationS * 1000 * 1.5 + 5000),
  };
}

/**
 * Runs the load with a live progress line, then settles. Resolves undefined when interrupted
 * (the signal handler then exits).
 */
export async function drive(out: Out, lab: Lab, opts: Options, state: RunState): Promise<Drive | undefined> {
  const { bed, online, target, tc, icpt } = lab;
  const copies = opts.copies;
  const { shortRate, keepRate, shortReqs, keepReqs, hardStopMs } = loadPlan(opts);

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
      if (state.interrupted) return;
      if (out.tty || s.at - lastPrinted >= 1900) {
        lastPrinted = s.at;
        out.progress(render(s, phase()));
      }
    } catch {
      /* a server busy for a moment; next tick */
    }
  };
  const phase = () => (loadDone ? 'settling' : 'load    ');
  state.progressTimer = setInterval(() => void tick(phase), out.tty ? 300 : 2000);
  void tick(phase);

  const results = await loadAll;
  if (state.progressTimer) clearInterval(state.progressTimer);
  const loadSeconds = (loadEnded - tLoad) / 1000;

  // Settle: until the target has everything or stops moving (bounded).
  const settleStart = Date.now();
  const settleLimitMs = 20_000;
  let last = await sample();
  let lastChange = Date.now();
  for (;;) {
    if (state.interrupted) return undefined;
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

  const final = await sample();
  readUsage();
  return { results, final, loadSeconds, settleSeconds, usage };
}
