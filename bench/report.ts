/**
 * docs/benchmarks.md from a results document: how it is measured, the machine, the summary, the
 * ours ÷ original table, one table per scenario, the reasons for missed targets, the profile.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ASSISTANT_IP, TARGET_IP, TARGET_IP6 } from '../lab/testbed';
import { ROOT } from '../lab/daemons';
import type { Machine } from './code';
import {
  compare, counterMedians, figures, fmtRatio, fmtStat, lossDigits, stat, type Comparison, type Ratio, type ScenarioFigures,
  type Stat,
} from './figures';
import type { ProfileSummary } from './profile';
import { DRAIN_BOUND_MS, type RunResult } from './run';
import { SCENARIOS, TARGETS, loadCommand, type Scenario } from './scenarios';
import { svgChart } from './svg';
import { fmt, progress } from './util';

/** Plain-language reasons for missed targets, read off the figures and counters. */
export function observations(figs: ScenarioFigures[]): string[] {
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


/** The comparison part of a results file: where the originals came from, or why they are missing. */
export interface PeersInfo {
  source: string;
  /** Set when the originals ran. */
  build?: { sourceHash: string; dir: string; versions: { tcpcopy: string; intercept: string } };
  /** Why the comparison is missing. */
  missing?: string;
}

/** Which engines our daemons ran with, in words. Files from before the choice existed ran the raw socket. */
function engineText(e: ResultsDoc['engines']): string {
  if (!e) return 'raw-socket capture and raw send';
  const capture = e.capture === 'ring' ? 'TPACKET_V3 ring capture' : `capture engine ${e.capture}`;
  const send = e.send === 'mmsg' ? 'sendmmsg send' : `send engine ${e.send}`;
  return `${capture} and ${send}`;
}

/** What a results file holds (and what --render reads back). */
export interface ResultsDoc {
  options: { seconds: number; runs: number; scenarios: number[]; warmup?: number };
  machine: Machine;
  runs: RunResult[];
  profileRun: RunResult | null;
  profile: ProfileSummary | null;
  /** Absent in results files written before the originals ran beside ours. */
  peers?: PeersInfo;
  /** Our capture and send engines (TCPCOPY_CAPTURE_ENGINE / TCPCOPY_SEND_ENGINE, else the defaults); absent in older files. */
  engines?: { capture: string; send: string };
  /** With --baseline: the earlier build that ran as the third pair. */
  baseline?: { rev: string; commit: string; subject: string };
}

/** Per scenario: our figures, the original's (when it ran) and the comparison. */
export interface ScenarioReport {
  ours: ScenarioFigures;
  original?: ScenarioFigures;
  comparison: Comparison | null;
  /** Our daemons with their older engines (the third pair), when it ran. */
  legacy?: ScenarioFigures;
  /** Older engines ÷ original, and ours ÷ older engines. */
  legacyComparison: Comparison | null;
  oursToLegacy: Comparison | null;
  /** With --baseline: the earlier build of ours, and this build ÷ that one. */
  baseline?: ScenarioFigures;
  oursToBaseline?: Comparison | null;
  /** An IPv6 scenario: our figures of its IPv4 twin in the same run … */
  ipv4?: ScenarioFigures;
  /** … and IPv6 ÷ IPv4 (the `original` side of the comparison is the IPv4 twin), or null when the twin did not run. */
  vsIpv4?: Comparison | null;
}

export function scenarioReports(doc: ResultsDoc): ScenarioReport[] {
  const out: ScenarioReport[] = [];
  for (const s of SCENARIOS.filter((x) => doc.options.scenarios.includes(x.id))) {
    const runs = doc.runs.filter((r) => r.scenario === s.id);
    const ours = figures(s, runs.filter((r) => (r.pair ?? 'ours') === 'ours'));
    const origRuns = runs.filter((r) => r.pair === 'original');
    const original = origRuns.length ? figures(s, origRuns) : undefined;
    if (!ours.runs.length && !original) continue;
    const legRuns = runs.filter((r) => r.pair === 'legacy');
    const legacy = legRuns.length ? figures(s, legRuns) : undefined;
    const rep: ScenarioReport = { ours, original, comparison: compare(ours, original), legacy,
      legacyComparison: compare(legacy, original), oursToLegacy: compare(ours, legacy) };
    const baseRuns = runs.filter((r) => r.pair === 'baseline');
    if (baseRuns.length) {
      rep.baseline = figures(s, baseRuns);
      rep.oursToBaseline = compare(ours, rep.baseline);
    }
    const twin = s.v4Twin !== undefined ? SCENARIOS.find((x) => x.id === s.v4Twin) : undefined;
    if (twin) {
      const v4 = figures(twin, doc.runs.filter((r) => r.scenario === twin.id && (r.pair ?? 'ours') === 'ours'));
      rep.ipv4 = v4.runs.length ? v4 : undefined;
      rep.vsIpv4 = compare(ours, rep.ipv4);
    }
    out.push(rep);
  }
  return out;
}

/** tcpcopy's flags as a scenario ran them. */
function tcpcopyFlags(s: Scenario): string {
  return `-x 80-${s.ipv6 ? `[${TARGET_IP6}]` : TARGET_IP}:8080 -s ${ASSISTANT_IP}${s.copies > 1 ? ` -n ${s.copies}` : ''}`;
}

/** One row of a ratio table: a scenario's comparison, each ratio with its per-repetition range. */
function comparisonRow(r: ScenarioReport, c: Comparison): string {
  const cell = (x: Ratio): string => `${fmtRatio(x.ratio)}${c.repetitions > 1 && Number.isFinite(x.perRepetition.min)
    ? ` (${fmtRatio(x.perRepetition.min)}–${fmtRatio(x.perRepetition.max)})` : ''}`;
  return `| ${r.ours.s.id} | ${r.ours.s.title} | ${c.repetitions} | ${cell(c.tcpcopyCpu)} | ${cell(c.interceptCpu)} | ` +
    `${fmt(c.loss.ours, 3)} / ${fmt(c.loss.original, 3)} | ${cell(c.tcpcopyPeakRss)} | ${cell(c.interceptPeakRss)} |`;
}

function markdown(doc: ResultsDoc, resultsFile: string): string {
  const reports = scenarioReports(doc);
  const figs = reports.map((r) => r.ours).filter((f) => f.runs.length > 0);
  const m = doc.machine;
  const o = doc.options;
  const { profile, profileRun } = doc;
  const peers = doc.peers;
  const compared = reports.some((r) => r.comparison);
  const L: string[] = [];
  const date = new Date().toISOString().slice(0, 10);
  L.push('# Benchmarks');
  L.push('');
  L.push('<!-- Generated by bench/bench.ts (`npm run bench`); edit the generator, not this file. -->');
  L.push('');
  L.push('How fast this TypeScript tcpcopy copies live traffic, what it loses, and what it costs in CPU and memory, ' +
    (compared ? 'next to the original C tcpcopy and intercept, measured in the same run on the same machine.'
      : 'measured alone: **the comparison with the original C programs is missing** in this run' +
        `${peers?.missing ? ` (${peers.missing})` : ''}.`));
  L.push('');
  L.push('**How it is measured.** Everything runs on one machine in a network-namespace test bed ' +
    '(`lab/testbed.ts`; hosts *client*, *online*, *target*, *assistant* on a bridge, addresses in 198.18.0.0/15, ' +
    'veth offloads off). Debian\'s nginx (one worker, `return 200 "ok\\n"`, keep-alive up to 100,000 requests) serves on ' +
    `the online host (port 80) and on the target host (port 8080). Our \`intercept -i v-assistant -F 'tcp and src port 8080'\` ` +
    `runs on the assistant, our \`tcpcopy -x 80-${TARGET_IP}:8080 -s ${ASSISTANT_IP}\` (${engineText(doc.engines)}, plus \`-n 2\` in ` +
    'scenario 5) on the online host. ' +
    (compared ? 'The original C pair (`objs/intercept` and `objs/tcpcopy`, built from the public ' +
      'source by the bench in a temporary directory) runs with the same flags in the same bed: in every repetition of a ' +
      'scenario the pairs run back to back, ours first in odd repetitions and the original first in even ones, so that ' +
      'the machine\'s noise hits them alike. ' : '') +
    (reports.some((r) => r.legacy) ? 'A third pair, our daemons with their older engines (`--capture-engine legacy ' +
      '--send-engine legacy`), runs in every repetition too (see "The older engines in the same run"). ' : '') +
    'Both daemons are restarted for every run, so a peak RSS is that of one run. ' +
    'Load comes from `wrk` in the client namespace, or from our Node load client ' +
    '(`lab/fixtures/load-client.ts`) where requests must be spread over 16 source addresses or rate-limited, ' +
    'which wrk cannot do; the Node client is much slower than wrk, so scenario 3 is "maximum rate" for that client, ' +
    'not for the servers.' +
    (reports.some((r) => r.ours.s.ipv6)
      ? ' **IPv6 scenarios** run the same load over IPv6: the bed\'s hosts also have addresses in 2001:2::/48 (RFC 5180), ' +
        `clients 2001:2:0:1::10 and up, nginx listens on \`[::]\` too, and tcpcopy runs with \`-x 80-[${TARGET_IP6}]:8080\` ` +
        '(the control channel stays on IPv4). The original C tcpcopy has no IPv6, so these scenarios run ours only; ' +
        'they are compared with our own IPv4 twin scenario of the same run (IPv6 ÷ IPv4): in every repetition the twin and ' +
        'the IPv6 scenario run back to back, the order alternating, as the two pairs do.'
      : ''));
  L.push('');
  L.push('- **Requests** are counted in the nginx access logs (`$remote_addr $request_length`), only lines from the client ' +
    'addresses (198.18.1.0/24, and 2001:2:0:1::/64 over IPv6): *online req/s* = requests the online server served during the load ÷ load seconds; ' +
    '*replicated req/s* = requests the target served for the same clients ÷ (load + drain) seconds, where the *drain* ' +
    `runs from the end of the load to the target's last replicated request (the count reaches online × copies, or stops ` +
    `moving for 3 s; at most ${DRAIN_BOUND_MS / 1000} s). A long drain means tcpcopy fell behind and replayed a backlog.`);
  L.push('- **Loss %** = (online × copies − target) ÷ (online × copies).');
  L.push('- **CPU ms / 1k** = the daemon\'s utime + stime (`/proc/<pid>/stat`, all threads) from the start of the load until ' +
    'the target served its last replicated request (load + drain), per 1,000 requests the online server served (with ' +
    '`-n 2`, per online request, not per copy). It includes the daemon\'s idle cost (timers, statistics) over that window; ' +
    'the idle cost alone, measured for one second before the load, is in the notes. **CPU ms / 1k replicated** divides ' +
    'the same CPU by the requests the target served instead: the figure compared with the original (a pair that loses ' +
    'requests is not made cheaper by them).');
  L.push('- CPU accounting caveat: this kernel has no IRQ time accounting, so network softirq work that runs while a ' +
    'process is on the CPU is charged to that process as system time. On veth a sent packet is delivered synchronously, so ' +
    'tcpcopy\'s system time includes part of the bridge\'s and the target\'s kernel work for the packets it sends (and ' +
    'the load generator\'s includes the capture path). The notes give each daemon\'s system-time share.');
  L.push('- **Peak RSS** = `VmHWM` from `/proc/<pid>/status` at the end of the run.');
  L.push(`- Each scenario runs ${o.runs} time${o.runs > 1 ? 's' : ''} for ${o.seconds} s per pair; figures are the median and, in ` +
    'brackets, the min–max over the runs. Targets are judged on the median. A ratio is ours ÷ original of the medians; ' +
    'in brackets, the range of the same ratio taken per repetition.');
  if (o.warmup) {
    L.push(`- **Warm-up.** Each run begins with ${o.warmup} s of the same load that is not measured (both pairs alike), then ` +
      'waits until the target stops receiving: the figures are those of daemons that have been running, as in production, ' +
      'not of their first seconds: V8 compiles our daemons\' packet path while the first tens of thousands of packets go, and ' +
      'at 1,000 requests a second it was still optimising functions 13 s into the load (`--trace-opt` after a 3 s warm-up: ' +
      '16, 7, 10, 7, 3 and 1 optimisations in successive 2 s windows; its compiler thread was 10 % of tcpcopy\'s CPU then). ' +
      'Peak RSS includes the warm-up.');
  } else {
    L.push('- No warm-up: each measured load starts right after the daemons (ours then include V8 compiling the packet path).');
  }
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
  if (peers?.build) {
    L.push(`**Original C programs**: ${peers.build.versions.tcpcopy || 'tcpcopy'} and ${peers.build.versions.intercept || 'intercept'}, ` +
      `built from \`${peers.source}\` (source hash \`${peers.build.sourceHash}\`) with \`./configure && make\`: raw-socket capture ` +
      'and raw send for tcpcopy, libpcap capture for intercept. ');
  } else {
    L.push(`**Original C programs**: not run${peers?.missing ? ` — ${peers.missing}` : ''}. The comparison is missing; ` +
      '`npm run bench` builds them when their source is at `../shared/peers` (or `--peers DIR`, `TCPCOPY_PEERS`).');
  }
  L.push(`**Targets** for this implementation: loss ≤ ${TARGETS.lossPct} % everywhere, CPU per replicated request ≤ ` +
    `${TARGETS.cpuRatio}× the original's, peak RSS ≤ ${TARGETS.rssMB} MB.`);
  L.push('');
  const builds = [...new Set(figs.flatMap((f) => f.runs.map((r) => r.distBuiltAt)))].filter(Boolean);
  if (builds.length > 1) {
    L.push(`**Note:** dist/ was rebuilt while the bench ran (${builds.length} builds); each run's \`distBuiltAt\` is in the ` +
      'raw results. Figures from different builds are mixed here.');
    L.push('');
  }
  L.push('![Loss and tcpcopy CPU per scenario](benchmarks.svg)');
  L.push('');
  L.push('## Summary: ours (medians)');
  L.push('');
  L.push('| # | scenario | online req/s | replicated req/s | drain s | loss % | tcpcopy CPU ms/1k | intercept CPU ms/1k | tcpcopy RSS MB | intercept RSS MB |');
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const f of figs) {
    L.push(`| ${f.s.id} | ${f.s.title} | ${fmt(f.onlineRps.median, 0)} | ${fmt(f.replicatedRps.median, 0)} | ${fmt(f.drain.median, 1)} | ` +
      `${fmt(f.loss.median, lossDigits(f.loss))} | ${fmt(f.tcCpu.median, 1)} | ${fmt(f.icCpu.median, 1)} | ` +
      `${fmt(f.tcRss.median, 0)} | ${fmt(f.icRss.median, 0)} |`);
  }
  L.push('');
  if (compared) {
    L.push('## Ours ÷ original (same run)');
    L.push('');
    L.push('Each figure as a ratio ours ÷ original C (medians; in brackets, the range of the per-repetition ratio). CPU is per ' +
      `replicated request; below 1× ours costs less. Target for CPU: ≤ ${TARGETS.cpuRatio}×.`);
    L.push('');
    L.push('| # | scenario | reps | tcpcopy CPU | intercept CPU | loss %, ours / original | tcpcopy peak RSS | intercept peak RSS |');
    L.push('|---|---|---:|---:|---:|---|---:|---:|');
    for (const r of reports) if (r.comparison) L.push(comparisonRow(r, r.comparison));
    L.push('');
  }
  if (reports.some((r) => r.legacy)) {
    L.push('## The older engines in the same run');
    L.push('');
    L.push('The same daemons with `--capture-engine legacy --send-engine legacy` (tcpcopy: a raw socket, or libpcap with `-i`, and one ' +
      '`sendto` per packet; intercept: libpcap), run as a third pair in every repetition. CPU per replicated request as ratios of ' +
      'the medians; loss in %; peak RSS in MB.');
    L.push('');
    L.push('| # | scenario | tcpcopy CPU: ours ÷ original | older ÷ original | ours ÷ older | intercept CPU: ours ÷ original | older ÷ original | ' +
      'ours ÷ older | loss %: ours / older / original | tcpcopy RSS: ours / older / original |');
    L.push('|---|---|---:|---:|---:|---:|---:|---:|---|---|');
    for (const r of reports) {
      if (!r.legacy) continue;
      const c = r.comparison;
      const l = r.legacyComparison;
      const x = r.oursToLegacy;
      const q = (v: Ratio | undefined): string => fmtRatio(v?.ratio ?? NaN);
      const rss = (f: ScenarioFigures | undefined): string => (f ? fmt(f.tcRss.median, 0) : '—');
      const loss = (f: ScenarioFigures | undefined): string => (f ? fmt(f.loss.median, 3) : '—');
      L.push(`| ${r.ours.s.id} | ${r.ours.s.title} | ${q(c?.tcpcopyCpu)} | ${q(l?.tcpcopyCpu)} | ${q(x?.tcpcopyCpu)} | ` +
        `${q(c?.interceptCpu)} | ${q(l?.interceptCpu)} | ${q(x?.interceptCpu)} | ` +
        `${loss(r.ours)} / ${loss(r.legacy)} / ${loss(r.original)} | ${rss(r.ours)} / ${rss(r.legacy)} / ${rss(r.original)} |`);
    }
    L.push('');
  }
  const bl = doc.baseline;
  if (bl && reports.some((r) => r.baseline)) {
    L.push('## Against an earlier build (same run)');
    L.push('');
    L.push(`This build beside \`${bl.commit.slice(0, 12)}\` ("${bl.subject}", \`--baseline ${bl.rev}\`), built by the bench in a ` +
      'temporary worktree and run as a third pair with the same flags and the default engines in every repetition. Each figure ' +
      'as a ratio this build ÷ that one of the medians (in brackets, the range of the per-repetition ratio); below 1× this build ' +
      'costs less.');
    L.push('');
    L.push('| # | scenario | reps | tcpcopy CPU | intercept CPU | loss %, this / earlier | tcpcopy peak RSS | intercept peak RSS |');
    L.push('|---|---|---:|---:|---:|---|---:|---:|');
    for (const r of reports) if (r.oursToBaseline) L.push(comparisonRow(r, r.oursToBaseline));
    L.push('');
  }
  const v6 = reports.filter((r) => r.ours.s.ipv6 && r.ours.runs.length);
  if (v6.length) {
    L.push('## IPv6 ÷ IPv4 (ours, same run)');
    L.push('');
    L.push('The original C tcpcopy and intercept have no IPv6 (its users have asked for it since 2012), so there is no ' +
      'ours ÷ original for these scenarios. Each IPv6 scenario is measured beside its IPv4 twin (the same load over ' +
      'IPv4) in the same run: each figure as a ratio IPv6 ÷ IPv4 of our medians (in brackets, the range of the ' +
      'per-repetition ratio). CPU is per replicated request; 1× means IPv6 costs the same.');
    L.push('');
    L.push('| # | scenario | IPv4 twin | reps | tcpcopy CPU | intercept CPU | loss %, IPv6 / IPv4 | tcpcopy peak RSS | intercept peak RSS |');
    L.push('|---|---|---|---:|---:|---:|---|---:|---:|');
    for (const r of v6) {
      const c = r.vsIpv4;
      const twin = `${r.ours.s.v4Twin}`;
      if (!c) {
        L.push(`| ${r.ours.s.id} | ${r.ours.s.title} | ${twin} (did not run) | — | — | — | ${fmt(r.ours.loss.median, 3)} / — | — | — |`);
        continue;
      }
      const ratioCell = (x: Ratio): string => `${fmtRatio(x.ratio)}${c.repetitions > 1 && Number.isFinite(x.perRepetition.min)
        ? ` (${fmtRatio(x.perRepetition.min)}–${fmtRatio(x.perRepetition.max)})` : ''}`;
      L.push(`| ${r.ours.s.id} | ${r.ours.s.title} | ${twin} | ${c.repetitions} | ${ratioCell(c.tcpcopyCpu)} | ${ratioCell(c.interceptCpu)} | ` +
        `${fmt(c.loss.ours, 3)} / ${fmt(c.loss.original, 3)} | ${ratioCell(c.tcpcopyPeakRss)} | ${ratioCell(c.interceptPeakRss)} |`);
    }
    L.push('');
  }

  for (const f of figs) {
    const s = f.s;
    const rep = reports.find((r) => r.ours === f);
    const n = f.runs.length;
    L.push(`## ${s.id}. ${s.title}`);
    L.push('');
    L.push(`Load: \`${f.runs[0]?.load.command ?? loadCommand(s, o.seconds, [])}\`` +
      (s.tool === 'node' ? ' (Node load client: wrk cannot choose source addresses or a rate)' : '') +
      `. tcpcopy \`${tcpcopyFlags(s)}\`.` +
      (s.ipv6 ? ` Over IPv6; the original has no IPv6, so the middle column is our IPv4 twin, scenario ${s.v4Twin}, of the same run.` : ''));
    L.push('');
    // An IPv6 scenario: the IPv4 twin stands where the original would.
    const g = s.ipv6 ? rep?.ipv4 : rep?.original;
    const c = (s.ipv6 ? rep?.vsIpv4 : rep?.comparison) ?? null;
    const on = g?.runs.length ?? 0;
    const col = (get: (x: ScenarioFigures) => Stat, digits: number): string => (g ? fmtStat(get(g), digits, on) : '—');
    const rat = (x: Ratio | undefined): string => (x ? fmtRatio(x.ratio) : '—');
    // The CPU target is a ratio to the original: none for IPv6 (the ratio there is to our IPv4).
    const cpuOk = (x: Ratio | undefined): boolean | null => (!s.ipv6 && x && Number.isFinite(x.ratio) ? x.ratio <= TARGETS.cpuRatio : null);
    const cpuTarget = s.ipv6 ? '—' : `≤ ${TARGETS.cpuRatio}×`;
    const rssOk = (v: number): boolean | null => (Number.isFinite(v) ? v <= TARGETS.rssMB : null);
    L.push(s.ipv6 ? `| | ours over IPv6: median (min–max) | ours over IPv4 (scenario ${s.v4Twin}) | IPv6 ÷ IPv4 | target | met |`
      : '| | ours: median (min–max) | original C | ours ÷ original | target | met |');
    L.push('|---|---:|---:|---:|---:|:---:|');
    L.push(`| online req/s | ${fmtStat(f.onlineRps, 0, n)} | ${col((x) => x.onlineRps, 0)} | — | — | — |`);
    L.push(`| replicated req/s | ${fmtStat(f.replicatedRps, 0, n)} | ${col((x) => x.replicatedRps, 0)} | — | — | — |`);
    L.push(`| drain after the load, s | ${fmtStat(f.drain, 1, n)} | ${col((x) => x.drain, 1)} | — | — | — |`);
    L.push(`| loss % | ${fmtStat(f.loss, lossDigits(f.loss), n)} | ${g ? fmtStat(g.loss, lossDigits(g.loss), on) : '—'} | ${rat(c?.loss)} | ≤ ${TARGETS.lossPct} % | ${verdict(Number.isFinite(f.loss.median) ? f.loss.median <= TARGETS.lossPct : null)} |`);
    L.push(`| tcpcopy CPU ms / 1k requests | ${fmtStat(f.tcCpu, 1, n)} | ${col((x) => x.tcCpu, 1)} | — | — | — |`);
    L.push(`| tcpcopy CPU ms / 1k replicated | ${fmtStat(f.tcCpuRep, 1, n)} | ${col((x) => x.tcCpuRep, 1)} | ${rat(c?.tcpcopyCpu)} | ${cpuTarget} | ${verdict(cpuOk(c?.tcpcopyCpu))} |`);
    L.push(`| intercept CPU ms / 1k requests | ${fmtStat(f.icCpu, 1, n)} | ${col((x) => x.icCpu, 1)} | — | — | — |`);
    L.push(`| intercept CPU ms / 1k replicated | ${fmtStat(f.icCpuRep, 1, n)} | ${col((x) => x.icCpuRep, 1)} | ${rat(c?.interceptCpu)} | ${cpuTarget} | ${verdict(cpuOk(c?.interceptCpu))} |`);
    L.push(`| tcpcopy peak RSS MB | ${fmtStat(f.tcRss, 1, n)} | ${col((x) => x.tcRss, 1)} | ${rat(c?.tcpcopyPeakRss)} | ≤ ${TARGETS.rssMB} | ${verdict(rssOk(f.tcRss.median))} |`);
    L.push(`| intercept peak RSS MB | ${fmtStat(f.icRss, 1, n)} | ${col((x) => x.icRss, 1)} | ${rat(c?.interceptPeakRss)} | ≤ ${TARGETS.rssMB} | ${verdict(rssOk(f.icRss.median))} |`);
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
    if (rep?.original) {
      const oc = counterMedians(rep.original.runs, 'tcpcopy');
      L.push('');
      L.push(`The original's tcpcopy at exit (median, as its log prints them): ${Object.entries(oc).map(([k, v]) => `${k} ${fmt(v, 0)}`).join(', ') || 'none'}; ` +
        `machine CPU busy ${fmtStat(rep.original.busy, 0, rep.original.runs.length)} %.`);
    }
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
/** Writes docs/benchmarks.md and docs/benchmarks.svg (or into `outDir`) from a results document. */
export function writeDocs(doc: ResultsDoc, resultsRel: string, outDir = path.join(ROOT, 'docs')): void {
  const reports = scenarioReports(doc);
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'benchmarks.md'), markdown(doc, resultsRel) + '\n');
  fs.writeFileSync(path.join(outDir, 'benchmarks.svg'), svgChart(reports));
  const rel = path.relative(ROOT, outDir);
  progress(`wrote ${rel.startsWith('..') ? outDir : rel}/benchmarks.md and benchmarks.svg`);
}
