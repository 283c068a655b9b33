/**
 * `npm run bench`: measures our tcpcopy and intercept, and the original C pair built from its
 * public source, with real nginx servers and wrk (or the Node load client) in the
 * network-namespace lab, and writes
 *   bench/results/<ISO date>.json   every run of both pairs, every figure, machine information
 *   docs/benchmarks.md              tables per scenario and the ratios ours ÷ original
 *   docs/benchmarks.svg             a chart (loss %, tcpcopy CPU per 1,000 replicated requests)
 *
 *   node dist/bench/bench.js [--duration S] [--runs R] [--scenarios 1,4] [--peers DIR | --no-peers] [-h]
 *
 * Root only (network namespaces). Everything it starts lives in the bed's namespaces and is
 * stopped by PID; the bed is destroyed on exit, on failure and on SIGINT/SIGTERM. The parts:
 * options.ts (command line), scenarios.ts, peers.ts (building the originals), pairs.ts (starting
 * either pair), nginx.ts, load.ts, run.ts (one measured run), sampler.ts (/proc), code.ts
 * (snapshot of dist/, machine), figures.ts, report.ts and svg.ts (docs), profile.ts.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Testbed } from '../lab/testbed';
import { BIN, ROOT } from '../lab/daemons';
import { machineInfo, snapshot, snapshotCode } from './code';
import { counterMedians, figures } from './figures';
import { killNginxSync, startNginx } from './nginx';
import { parseOptions, type Options } from './options';
import { baselinePair, originalPair, oursPair, type Pair } from './pairs';
import { buildBaseline, removeBaseline, type BaselineBuild } from './baseline';
import { buildPeers } from './peers';
import { summariseProfile, type ProfileSummary } from './profile';
import { scenarioReports, writeDocs, type PeersInfo, type ResultsDoc } from './report';
import { oneRun, type RunResult } from './run';
import { SCENARIOS, TARGETS, loadCommand, scenarioGroups } from './scenarios';
import { clientIpsOf } from './load';
import { die, fmt, progress, sleep } from './util';

/** A failed run is retried once (e.g. a daemon that did not start while dist/ was being rebuilt). */
async function runWithRetry(tb: Testbed, ng: Parameters<typeof oneRun>[1], s: (typeof SCENARIOS)[number], o: Options,
  r: number, pair: Pair): Promise<RunResult> {
  try {
    return await oneRun(tb, ng, s, o, r, pair);
  } catch (e) {
    progress(`  run failed (${(e as Error).message.split('\n')[0].slice(0, 200)}); retrying once`);
    await sleep(3000);
    return oneRun(tb, ng, s, o, r, pair);
  }
}

function runLine(res: RunResult): string {
  return `  ${res.pair}: online ${fmt(res.onlineRps, 0)} req/s, replicated ${fmt(res.replicatedRps, 0)} req/s, ` +
    `loss ${fmt(res.lossPct, 3)} % (${res.online.requests * res.copies - res.target.requests} of ${res.online.requests * res.copies}), ` +
    `tcpcopy ${fmt(res.tcpcopy.cpuMsPer1kReplicated, 1)} ms/1k replicated ${fmt(res.tcpcopy.peakRssMB, 0)} MB, ` +
    `intercept ${fmt(res.intercept.cpuMsPer1kReplicated, 1)} ms/1k replicated ${fmt(res.intercept.peakRssMB, 0)} MB, ` +
    `machine ${fmt(res.machineBusyPct, 0)} % busy (others ${fmt(res.foreignCpuPct, 0)} %), client errors ${res.load.errors}, ` +
    `raw drops ${res.rawSocketDrops}, drain ${fmt(res.drainMs / 1000, 1)} s`;
}

function render(o: Options): void {
  const file = path.resolve(o.render!);
  let doc: ResultsDoc;
  try { doc = JSON.parse(fs.readFileSync(file, 'utf8')) as ResultsDoc; } catch (e) { die(`cannot read ${file}: ${(e as Error).message}`, 1); }
  writeDocs(doc, path.relative(ROOT, file), o.out);
}

function preflight(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    die('needs root: the bench builds network namespaces (run it as root, e.g. sudo npm run bench)', 1);
  }
  for (const f of [BIN.tcpcopy, BIN.intercept, path.join(ROOT, 'dist/lab/fixtures/load-client.js')]) {
    if (!fs.existsSync(f)) die(`${f} is missing: build first (npm run bench runs the set-up and the build)`, 1);
  }
  for (const c of ['nginx', 'wrk', 'ss']) {
    try { execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }); } catch { die(`${c} is not installed (bash scripts/setup.sh installs it)`, 1); }
  }
}

/** The pairs of this bench: ours, and the original when its source is there and builds. */
function choosePairs(o: Options, baseline: BaselineBuild | null): { pairs: Pair[]; peers: PeersInfo } {
  // Ours first (the profiled run uses pairs[0]); with the older engines as a third pair unless
  // --no-legacy, or an earlier build of ours instead with --baseline.
  const third = baseline ? [baselinePair(baseline, o.tcpcopyArgs, o.nodeArgs)] : o.legacy ? [oursPair(o.tcpcopyArgs, true, o.nodeArgs)] : [];
  const ours = [oursPair(o.tcpcopyArgs, false, o.nodeArgs), ...third];
  if (o.peers === false) return { pairs: ours, peers: { source: '', missing: '--no-peers: our pair ran alone' } };
  const got = buildPeers(o.peers, o.peersBuildDir, progress);
  if (!got.ok) {
    progress(`the original C programs will not run: ${got.reason}; measuring ours alone (the comparison is missing)`);
    return { pairs: ours, peers: { source: o.peers, missing: got.reason } };
  }
  const b = got.build;
  progress(`original C pair: ${b.versions.tcpcopy}, ${b.versions.intercept} (${b.fresh ? `built in ${fmt(b.buildSeconds, 0)} s` : 'cached build'}, ${b.dir})`);
  return {
    pairs: [...ours, originalPair(b)],
    peers: { source: b.source, build: { sourceHash: b.sourceHash, dir: b.dir, versions: b.versions } },
  };
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.render) { render(o); return; }
  preflight();

  let tb: Testbed | undefined;
  let baseline: BaselineBuild | null = null;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    progress(`${sig}: stopping everything and removing the test bed`);
    killNginxSync();
    try { tb?.destroySync(); } catch (e) { process.stderr.write(`${(e as Error).message}\n`); }
    if (baseline) removeBaseline(baseline);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  if (o.baseline) {
    const got = buildBaseline(o.baseline, progress);
    if (!got.ok) die(got.reason, 1);
    baseline = got.build;
  }
  const { pairs, peers } = choosePairs(o, baseline);
  const machine = machineInfo();
  const started = new Date();
  const stamp = started.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const resultsDir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const resultsFile = path.join(resultsDir, `${stamp}.json`);

  const stale = Testbed.cleanupStale();
  if (stale.length) progress(`removed ${stale.length} stale namespaces of dead runs`);
  const chosen = SCENARIOS.filter((s) => o.scenarios.includes(s.id));
  progress(`${chosen.length} scenarios × ${o.runs} runs × ${pairs.length} pairs × ${o.seconds} s on ${machine.nproc} × ${machine.cpuModel}, ` +
    `Node ${machine.node}, Linux ${machine.kernel}`);

  const all: RunResult[] = [];
  let profile: ProfileSummary | null = null;
  let profileRun: RunResult | null = null;
  let failure: Error | null = null;
  try {
    // IPv6 addresses (2001:2::/48) only when an IPv6 scenario runs: the IPv4 ones run on the bed they always had.
    tb = await Testbed.create({ clientAddrs: 16, ipv6: chosen.some((s) => s.ipv6) });
    progress(`test bed ${tb.prefix}* up (work dir ${tb.workDir})`);
    if (o.snapshot) {
      snapshot.info = await snapshotCode(tb.workDir);
      Object.assign(machine, { code: { ...machineInfo().code, snapshot: { hash: snapshot.info.hash, builtAt: snapshot.info.builtAt } } });
      progress(`our daemons run from a copy of dist/ (build ${snapshot.info.hash}, ${snapshot.info.builtAt}; commit ${machine.code.commit}` +
        `${machine.code.srcChanges ? `, ${machine.code.srcChanges} uncommitted changes under src/` : ''})`);
    }
    // Accept queues as long as nginx asks for (backlog=4096).
    for (const h of ['online', 'target'] as const) {
      tb.execSync(h, 'sysctl', ['-q', '-w', 'net.core.somaxconn=4096', 'net.ipv4.tcp_max_syn_backlog=4096']);
    }
    const ng = { online: await startNginx(tb, 'online', 80), target: await startNginx(tb, 'target', 8080) };
    progress('nginx up on online:80 and target:8080');

    for (const group of scenarioGroups(chosen)) {
      for (let r = 1; r <= o.runs; r++) {
        // An IPv4 scenario and its IPv6 twin run back to back in every repetition, the order
        // alternating, as the two pairs do: noise on the machine hits both families alike.
        for (const s of r % 2 === 1 ? group : [...group].reverse()) {
          progress(`scenario ${s.id} (${s.key}) run ${r}/${o.runs}: ${loadCommand(s, o.seconds, clientIpsOf(tb, s))}`);
          // Every pair in every repetition, the order alternating, so that noise hits them alike.
          // The original has no IPv6: an IPv6 scenario runs ours only (the default engines).
          const runnable = s.ipv6 ? pairs.filter((p) => p.name === 'ours') : pairs;
          const order = r % 2 === 1 ? runnable : [...runnable].reverse();
          for (const pair of order) {
            const res = await runWithRetry(tb, ng, s, o, r, pair);
            all.push(res);
            progress(runLine(res));
            await sleep(1500); // let the last FINs and RSTs of this run die down
          }
        }
      }
    }

    if (o.profile) {
      const s = SCENARIOS.find((x) => x.id === o.profileScenario)!;
      const profDir = path.join(tb.workDir, 'cpuprof');
      fs.mkdirSync(profDir, { recursive: true });
      progress(`profile: scenario ${s.id} (${s.key}) once with our tcpcopy under node --cpu-prof`);
      profileRun = await oneRun(tb, ng, s, o, 1, pairs[0], profDir);
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
    if (baseline) removeBaseline(baseline);
  }

  if (!all.length) {
    die(`no run completed${failure ? `: ${failure.stack ?? failure.message}` : ''}`, 1);
  }
  const engines = { capture: process.env.TCPCOPY_CAPTURE_ENGINE || 'ring', send: process.env.TCPCOPY_SEND_ENGINE || 'mmsg' };
  const base: ResultsDoc = { options: o, machine, runs: all, profileRun, profile, peers, engines,
    ...(baseline ? { baseline: { rev: baseline.rev, commit: baseline.commit, subject: baseline.subject } } : {}) };
  const reports = scenarioReports(base);
  const summaryOf = (f: ReturnType<typeof figures>) => ({
    median: {
      onlineRps: f.onlineRps.median, replicatedRps: f.replicatedRps.median, lossPct: f.loss.median,
      tcpcopyCpuMsPer1k: f.tcCpu.median, interceptCpuMsPer1k: f.icCpu.median,
      tcpcopyCpuMsPer1kReplicated: f.tcCpuRep.median, interceptCpuMsPer1kReplicated: f.icCpuRep.median,
      tcpcopyPeakRssMB: f.tcRss.median, interceptPeakRssMB: f.icRss.median,
    },
    stats: { onlineRps: f.onlineRps, replicatedRps: f.replicatedRps, lossPct: f.loss, tcpcopyCpuMsPer1k: f.tcCpu,
      interceptCpuMsPer1k: f.icCpu, tcpcopyCpuMsPer1kReplicated: f.tcCpuRep, interceptCpuMsPer1kReplicated: f.icCpuRep,
      tcpcopyPeakRssMB: f.tcRss, interceptPeakRssMB: f.icRss, machineBusyPct: f.busy },
    counters: { tcpcopy: counterMedians(f.runs, 'tcpcopy'), intercept: counterMedians(f.runs, 'intercept') },
  });
  const doc = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    ...base,
    complete: !failure,
    error: failure ? failure.message : undefined,
    comparison: reports.some((r) => r.comparison) ? 'ours ÷ original, same run' : `missing: ${peers.missing ?? 'the original did not run'}`,
    scenarios: reports.map((r) => ({
      id: r.ours.s.id, key: r.ours.s.key, title: r.ours.s.title, copies: r.ours.s.copies,
      ours: summaryOf(r.ours),
      original: r.original ? summaryOf(r.original) : null,
      /** Ours ÷ original: CPU per replicated request, loss, peak RSS (null without the original). */
      ratios: r.comparison,
      /** Our daemons with their older engines (null with --no-legacy), and those ÷ original. */
      legacy: r.legacy ? summaryOf(r.legacy) : null,
      legacyRatios: r.legacyComparison,
      /** Ours (default engines) ÷ ours with the older engines. */
      oursToLegacy: r.oursToLegacy,
      /** With --baseline: the earlier build's figures, and this build ÷ that one. */
      ...(r.baseline ? { baseline: summaryOf(r.baseline), oursToBaseline: r.oursToBaseline } : {}),
      /** An IPv6 scenario: IPv6 ÷ IPv4 (our IPv4 twin of the same run in the `original` fields), null when the twin did not run. */
      ...(r.ours.s.ipv6 ? { v4Twin: r.ours.s.v4Twin, vsIpv4: r.vsIpv4 ?? null } : {}),
    })),
    targets: TARGETS,
  };
  fs.writeFileSync(resultsFile, JSON.stringify(doc, null, 2) + '\n');
  const rel = path.relative(ROOT, resultsFile);
  progress(`wrote ${rel}`);
  writeDocs(doc, rel, o.out);
  if (failure) die(`stopped early: ${failure.stack ?? failure.message}`, 1);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error)?.message ?? String(e)}\n`);
  process.exit(1);
});
