/**
 * From runs to figures: medians and ranges per scenario and pair, counter medians, and the
 * comparison of our pair with the original's (ratios ours ÷ original).
 */
import type { RunResult } from './run';
import type { Scenario } from './scenarios';
import { fmt } from './util';

/**
 * CPU ms per 1,000 replicated requests of a run; computed from CPU and the target's count for
 * results files written before the run recorded it.
 */
export function cpuPerReplicated(r: RunResult, which: 'tcpcopy' | 'intercept'): number {
  const v = r[which].cpuMsPer1kReplicated;
  if (typeof v === 'number') return v;
  return r.target.requests > 0 ? (r[which].cpuMs * 1000) / r.target.requests : NaN;
}

export interface Stat { median: number; min: number; max: number }

export function stat(xs: number[]): Stat {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return { median: NaN, min: NaN, max: NaN };
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1] };
}

export function fmtStat(s: Stat, digits: number, runs: number): string {
  if (!Number.isFinite(s.median)) return '—';
  if (runs < 2) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** Loss needs more digits when small. */
export function lossDigits(s: Stat): number {
  return Math.max(Math.abs(s.median), Math.abs(s.max)) >= 1 ? 2 : 3;
}

export interface ScenarioFigures {
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
  /** CPU per 1,000 replicated requests (what the target served). */
  tcCpuRep: Stat;
  icCpuRep: Stat;
}

export function figures(s: Scenario, runs: RunResult[]): ScenarioFigures {
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
    tcCpuRep: stat(runs.map((r) => cpuPerReplicated(r, 'tcpcopy'))),
    icCpuRep: stat(runs.map((r) => cpuPerReplicated(r, 'intercept'))),
  };
}

export const TC_COUNTERS = ['clientSyns', 'clientPayloadPackets', 'requestsSent', 'sessionsCreated', 'handshakes', 'synTimeouts', 'synRetransmissions', 'sessionsAborted',
  'sessionsTimedOut', 'sessionsResetByTarget', 'portReuses', 'reconnects', 'retransmissions', 'fastRetransmissions',
  'repliesNoSession', 'shed', 'noIntercept', 'sendErrors', 'captureGapsSkipped', 'shedCaptureBehind', 'backlogShed',
  'backlogDroppedPackets', 'backlogResumed'];
export const IC_COUNTERS = ['captured', 'forwarded', 'noRoute', 'held', 'heldDelivered', 'heldExpired', 'heldDropped',
  'recordsDroppedSlowReader', 'tunnelsDropped'];

/** Median of each counter over the runs (non-zero ones only). */
export function counterMedians(runs: RunResult[], which: 'tcpcopy' | 'intercept'): Record<string, number> {
  // The original's counters are named as its log prints them: take whatever it printed.
  const keys = runs[0]?.pair === 'original'
    ? [...new Set(runs.flatMap((r) => Object.keys(r[which].summary ?? {})))]
    : which === 'tcpcopy' ? TC_COUNTERS : IC_COUNTERS;
  const out: Record<string, number> = {};
  for (const k of keys) {
    const v = stat(runs.map((r) => Number(r[which].summary?.[k] ?? NaN))).median;
    if (Number.isFinite(v) && v !== 0) out[k] = v;
  }
  return out;
}


/** A figure of both pairs (medians) and ours ÷ original; NaN where the original's is 0 or missing. */
export interface Ratio {
  ours: number;
  original: number;
  ratio: number;
  /** The same ratio per repetition (both pairs ran back to back in it): its median and range. */
  perRepetition: Stat;
}

export interface Comparison {
  scenario: number;
  repetitions: number;
  /** CPU ms per 1,000 replicated requests. */
  tcpcopyCpu: Ratio;
  interceptCpu: Ratio;
  /** Loss %. */
  loss: Ratio;
  tcpcopyPeakRss: Ratio;
  interceptPeakRss: Ratio;
}

const div = (a: number, b: number): number => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);

function ratio(ours: RunResult[], orig: RunResult[], get: (r: RunResult) => number): Ratio {
  const o = stat(ours.map(get)).median;
  const c = stat(orig.map(get)).median;
  const per: number[] = [];
  for (const r of ours) {
    const peer = orig.find((x) => x.run === r.run);
    if (peer) per.push(div(get(r), get(peer)));
  }
  return { ours: o, original: c, ratio: div(o, c), perRepetition: stat(per) };
}

/** Ours ÷ original for one scenario, or null when the original did not run in it. */
export function compare(ours: ScenarioFigures | undefined, orig: ScenarioFigures | undefined): Comparison | null {
  if (!ours || !orig || !ours.runs.length || !orig.runs.length) return null;
  const a = ours.runs;
  const b = orig.runs;
  return {
    scenario: ours.s.id,
    repetitions: Math.min(a.length, b.length),
    tcpcopyCpu: ratio(a, b, (r) => cpuPerReplicated(r, 'tcpcopy')),
    interceptCpu: ratio(a, b, (r) => cpuPerReplicated(r, 'intercept')),
    loss: ratio(a, b, (r) => r.lossPct),
    tcpcopyPeakRss: ratio(a, b, (r) => r.tcpcopy.peakRssMB),
    interceptPeakRss: ratio(a, b, (r) => r.intercept.peakRssMB),
  };
}

/** "1.23×", or "—" when there is no ratio. */
export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${fmt(x, 2)}×` : '—';
}
