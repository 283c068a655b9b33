/**
 * One measured run: a scenario's load against one pair of daemons (ours or the original), and
 * every figure of it (requests online and replicated, loss, drain, CPU, RSS, counters).
 */
import * as os from 'node:os';
import { ASSISTANT_IP, TARGET_IP, TARGET_IP6, type Testbed } from '../lab/testbed';
import { waitFor } from '../lab/daemons';
import { distMtime, snapshot } from './code';
import type { LoadOutcome } from './load';
import { runNodeClient, runWrk } from './load';
import type { Nginx } from './nginx';
import type { Pair, PairName, Proc } from './pairs';
import {
  LogCounter, allProcessCpu, childPids, cpuMs, foreignCpuMs, machineCpu, nstatDelta, peakRssMB, quietBudget, rawDrops,
  userMs, waitQuiet,
} from './sampler';
import type { Scenario } from './scenarios';
import { fromClients, sleep } from './util';

/** tcpcopy's flags in a scenario, the same for both pairs (an IPv6 scenario: the target's IPv6 address; control over IPv4). */
export function tcpcopyArgs(s: Scenario): string[] {
  return ['-x', s.ipv6 ? `80-[${TARGET_IP6}]:8080` : `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, ...(s.copies > 1 ? ['-n', String(s.copies)] : [])];
}

export interface DaemonFigures {
  pid: number | undefined;
  cpuMs: number;
  /** The same split into user and system time (system: the syscalls, and on veth the receiver's kernel work). */
  userMs: number;
  sysMs: number;
  cpuMsPer1k: number;
  /** CPU ms per 1,000 requests the target served (per replicated request): the figure compared with the original. */
  cpuMsPer1kReplicated: number;
  peakRssMB: number;
  /** CPU ms per second while idle, measured for 1 s before the load. */
  idleMsPerS: number;
  summary: Record<string, unknown> | undefined;
}

export interface RunResult {
  scenario: number;
  /** Which pair of daemons ran: ours or the original C programs. */
  pair: PairName;
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

/**
 * How long the target may keep receiving after the load (tcpcopy replays a keep-alive backlog
 * at the target's pace); the count must also stop moving for 3 s.
 */
export const DRAIN_BOUND_MS = 45_000;


/** What a run needs of the options. */
export interface RunOptions { seconds: number; warmup: number; quietPct: number; quietWait: number }

/**
 * The scenario's load for `seconds`, not measured, then the wait until the target stops
 * receiving (bounded): both pairs start the measured load with their code and caches warm,
 * so the figures are those of a daemon that has been running, not of its first seconds
 * (for ours, V8 compiles the packet path while the first few tens of thousands of packets go).
 */
async function warmUp(tb: Testbed, ng: { online: Nginx; target: Nginx }, s: Scenario, seconds: number): Promise<void> {
  const targetLog = new LogCounter(ng.target.accessLog, fromClients);
  if (s.tool === 'wrk') await runWrk(tb, s, seconds); else await runNodeClient(tb, s, seconds);
  let last = -1;
  let stableSince = Date.now();
  await waitFor(() => {
    targetLog.poll();
    if (targetLog.requests !== last) { last = targetLog.requests; stableSince = Date.now(); }
    return Date.now() - stableSince > 1500;
  }, DRAIN_BOUND_MS, 200);
}

/**
 * One run of a scenario with one pair: start intercept and tcpcopy, measure their idle cost,
 * run the load, wait for the drain, read CPU, RSS, counts and counters, stop both daemons.
 */
export async function oneRun(tb: Testbed, ng: { online: Nginx; target: Nginx }, s: Scenario, o: RunOptions, run: number,
  pair: Pair, profDir?: string): Promise<RunResult> {
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
  const distBuiltAt = snapshot.info?.builtAt ?? distMtime();
  const icpt = await pair.startIntercept(tb);
  let tc: Proc | undefined;
  try {
    tc = await pair.startTcpcopy(tb, tcpcopyArgs(s), profDir);
    const tcPid = tc.child.pid;
    const icPid = icpt.child.pid;
    await sleep(500); // both control connections up
    if (o.warmup > 0) await warmUp(tb, ng, s, o.warmup);

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
    const perRep1k = (ms: number): number => (targetLog.requests > 0 ? (ms * 1000) / targetLog.requests : NaN);
    const cores = os.cpus().length || 1;
    const res: RunResult = {
      scenario: s.id,
      pair: pair.name,
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
      tcpcopy: { pid: tcPid, cpuMs: cpuAt.tc - tc0, userMs: cpuAt.tcU - tcU0, sysMs: (cpuAt.tc - tc0) - (cpuAt.tcU - tcU0), cpuMsPer1k: per1k(cpuAt.tc - tc0), cpuMsPer1kReplicated: perRep1k(cpuAt.tc - tc0), peakRssMB: tcRss, idleMsPerS: idle.tcpcopyMsPerS, summary: tcSummary },
      intercept: { pid: icPid, cpuMs: cpuAt.ic - ic0, userMs: cpuAt.icU - icU0, sysMs: (cpuAt.ic - ic0) - (cpuAt.icU - icU0), cpuMsPer1k: per1k(cpuAt.ic - ic0), cpuMsPer1kReplicated: perRep1k(cpuAt.ic - ic0), peakRssMB: icRss, idleMsPerS: idle.interceptMsPerS, summary: icSummary },
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
