/**
 * The bench's pure parts: its command line, the comparison ours ÷ original, reading the
 * original tcpcopy's exit counters, the reasons the originals cannot be built, and the IPv6
 * scenarios with their IPv6 ÷ IPv4 report.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { parseOptions } from '../../bench/options';
import { buildBaseline } from '../../bench/baseline';
import { DEFAULT_PEERS_DIR, buildPeers } from '../../bench/peers';
import { parseOriginalLog } from '../../bench/pairs';
import { compare, figures } from '../../bench/figures';
import { SCENARIOS, loadCommand, scenarioGroups, withTwins } from '../../bench/scenarios';
import { tcpcopyArgs, type RunResult } from '../../bench/run';
import { scenarioReports, writeDocs, type ResultsDoc } from '../../bench/report';
import { fromClients } from '../../bench/util';
import { ROOT } from '../../lab/daemons';

test('bench options: bounded defaults, the peers at ../shared/peers, --no-peers, TCPCOPY_PEERS', () => {
  const saved = process.env.TCPCOPY_PEERS;
  delete process.env.TCPCOPY_PEERS;
  try {
    const d = parseOptions([]);
    assert.equal(d.seconds, 10);
    assert.equal(d.runs, 3);
    assert.deepEqual(d.scenarios, SCENARIOS.map((s) => s.id));
    assert.equal(d.peers, DEFAULT_PEERS_DIR);
    assert.equal(DEFAULT_PEERS_DIR, path.resolve(ROOT, '../shared/peers'));
    const q = parseOptions(['--scenarios', '4,1,4', '--runs', '1', '--duration', '5', '--no-peers']);
    assert.deepEqual(q.scenarios, [1, 4]);
    assert.equal(q.runs, 1);
    assert.equal(q.seconds, 5);
    assert.equal(q.peers, false);
    assert.equal(d.legacy, true, 'the older engines run as a third pair by default');
    assert.equal(parseOptions(['--no-legacy']).legacy, false);
    assert.equal(parseOptions(['--seconds', '7']).seconds, 7, '--seconds is kept as the old name of --duration');
    process.env.TCPCOPY_PEERS = '/somewhere/peers';
    assert.equal(parseOptions([]).peers, '/somewhere/peers');
    assert.equal(parseOptions(['--peers', '/else']).peers, '/else', 'the flag wins over the environment');
  } finally {
    if (saved === undefined) delete process.env.TCPCOPY_PEERS; else process.env.TCPCOPY_PEERS = saved;
  }
});

test("the original tcpcopy's exit lines become counters; sizes and descriptors do not", () => {
  const log = [
    '2026/12/01 09:18:57 +732 [info] connect to remote server(198.18.0.40:36524)',
    '2026/12/01 09:19:02 +103 [notice] conns:1,resp:2',
    '2026/12/01 09:19:02 +103 [warn] sig 15 received',
    '2026/12/01 09:19:02 +103 [notice] active:488,rel:12,obs del:0,tw:488',
    '2026/12/01 09:19:02 +103 [notice] conns:500,resp:2000,c-resp:500',
    '2026/12/01 09:19:02 +103 [notice] send syn:500, fin:121,reset:382',
    '2026/12/01 09:19:02 +103 [info] session table, size:65536, total:488',
    '2026/12/01 09:19:02 +103 [notice] tc_epoll_destroy, close fd:5',
    '2026/12/01 09:19:02 +103 [notice] max memory size:5796',
    '2026/12/01 09:19:02 +103 [notice] Total allocated space (bytes): 8512',
  ].join('\n');
  const c = parseOriginalLog(log);
  assert.equal(c.conns, 500, 'the counters after the SIGTERM line, not earlier ones');
  assert.equal(c['c-resp'], 500);
  assert.equal(c['send syn'], 500);
  assert.equal(c.reset, 382);
  assert.equal(c['obs del'], 0);
  assert.equal(c['max memory size'], 5796);
  assert.equal(c.size, undefined);
  assert.equal(c['close fd'], undefined);
  assert.equal(Object.keys(c).some((k) => /space/.test(k)), false);
  assert.deepEqual(parseOriginalLog(''), {});
});

function run(pair: 'ours' | 'original' | 'legacy' | 'baseline', rep: number, tcCpuMs: number, icCpuMs: number, target: number, online: number,
  tcRss: number): RunResult {
  const d = (cpu: number, rss: number) => ({ pid: 1, cpuMs: cpu, userMs: cpu, sysMs: 0, cpuMsPer1k: (cpu * 1000) / online,
    cpuMsPer1kReplicated: (cpu * 1000) / target, peakRssMB: rss, idleMsPerS: 0, summary: undefined });
  return {
    scenario: 1, pair, run: rep, startedAt: '', distBuiltAt: '', copies: 1,
    load: { tool: 'wrk', command: '', seconds: 1, completed: online, errors: 0, details: {} },
    online: { requests: online, bytes: 0, addresses: 1 }, target: { requests: target, bytes: 0, addresses: 1 },
    expected: online, onlineRps: online, replicatedRps: target, lossPct: ((online - target) / online) * 100, bytesLossPct: 0,
    drainMs: 0, complete: target >= online, cpuWindowMs: 1000, tcpcopy: d(tcCpuMs, tcRss), intercept: d(icCpuMs, 50),
    nginx: { onlineCpuMsPer1k: 0, targetCpuMsPer1k: 0 }, machineBusyPct: 50, foreignCpuPct: 0, foreignTop: [],
    quietBefore: { pct: 0, waitedS: 0 }, rawSocketDrops: 0, nstat: {},
  };
}

test('ours ÷ original: CPU per replicated request, loss and RSS, as medians and per repetition', () => {
  const s = SCENARIOS[0];
  const ours = [run('ours', 1, 400, 200, 1000, 1000, 60), run('ours', 2, 600, 200, 1000, 1000, 70)];
  // The original lost half the requests in repetition 2: per replicated request it is dearer there.
  const orig = [run('original', 1, 200, 100, 1000, 1000, 10), run('original', 2, 200, 100, 500, 1000, 14)];
  const c = compare(figures(s, ours), figures(s, orig));
  assert.ok(c);
  assert.equal(c.repetitions, 2);
  // Ours: 400 and 600 ms per 1k replicated (median 500); original: 200 and 400 (median 300).
  assert.equal(c.tcpcopyCpu.ours, 500);
  assert.equal(c.tcpcopyCpu.original, 300);
  assert.ok(Math.abs(c.tcpcopyCpu.ratio - 5 / 3) < 1e-9);
  assert.deepEqual([c.tcpcopyCpu.perRepetition.min, c.tcpcopyCpu.perRepetition.max], [1.5, 2]);
  assert.equal(c.interceptCpu.ratio, 200 / 150);
  assert.equal(c.loss.ours, 0);
  assert.equal(c.loss.original, 25);
  assert.equal(c.loss.ratio, 0);
  assert.equal(c.tcpcopyPeakRss.ratio, 65 / 12);
  assert.equal(compare(figures(s, ours), undefined), null, 'no comparison without the original');
  // A zero on the original's side gives no ratio rather than Infinity.
  const zero = compare(figures(s, ours), figures(s, [run('original', 1, 0, 0, 1000, 1000, 0)]));
  assert.ok(zero && Number.isNaN(zero.tcpcopyCpu.ratio) && Number.isNaN(zero.tcpcopyPeakRss.ratio));
});

test('the originals: a missing source is a reason, never a throw, and nothing is built inside the project', () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-peers-test-'));
  try {
    const r = buildPeers(empty);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.reason : '', /no original source at .*tcpcopy/);
    // A source that looks complete, with the build directory asked for inside the project.
    for (const p of ['tcpcopy', 'intercept']) {
      fs.mkdirSync(path.join(empty, p));
      fs.writeFileSync(path.join(empty, p, 'configure'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    }
    const inside = buildPeers(empty, path.join(ROOT, 'dist'));
    assert.equal(inside.ok, false);
    assert.match(!inside.ok ? inside.reason : '', /inside the project|not installed|libpcap/);
    // A configure that fails: the reason names the program, and no half build is left as the cache.
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-peers-cache-'));
    try {
      const failed = buildPeers(empty, cache);
      assert.equal(failed.ok, false);
      if (!failed.ok && !/not installed|libpcap/.test(failed.reason)) {
        assert.match(failed.reason, /the original tcpcopy did not build/);
        assert.deepEqual(fs.readdirSync(cache), [], 'the temporary build directory is removed');
      }
    } finally {
      fs.rmSync(cache, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});

test('the third pair: the older engines ÷ original and ours ÷ older engines, per scenario', () => {
  const runs = [
    run('ours', 1, 300, 100, 1000, 1000, 90), run('legacy', 1, 450, 200, 1000, 1000, 70), run('original', 1, 250, 125, 1000, 1000, 15),
  ];
  const doc = { options: { seconds: 1, runs: 1, scenarios: [1] }, runs } as unknown as Parameters<typeof scenarioReports>[0];
  const [r] = scenarioReports(doc);
  assert.ok(r.legacy && r.legacyComparison && r.oursToLegacy && r.comparison);
  assert.equal(r.comparison.tcpcopyCpu.ratio, 300 / 250);
  assert.equal(r.legacyComparison.tcpcopyCpu.ratio, 450 / 250);
  assert.equal(r.oursToLegacy.tcpcopyCpu.ratio, 300 / 450);
  assert.equal(r.oursToLegacy.interceptCpu.ratio, 0.5);
  assert.equal(r.legacy.runs.length, 1, 'legacy runs are not mixed into ours');
  assert.equal(r.ours.runs.length, 1);
  // Without the third pair there is nothing to compare it with.
  const [r2] = scenarioReports({ ...doc, runs: runs.filter((x) => x.pair !== 'legacy') });
  assert.equal(r2.legacy, undefined);
  assert.equal(r2.legacyComparison, null);
});

test('IPv6 scenarios: each mirrors an IPv4 one of the same load, brings it along, and loads the IPv6 addresses', () => {
  const v6 = SCENARIOS.filter((s) => s.ipv6);
  assert.ok(v6.length >= 1, 'at least one IPv6 scenario');
  for (const s of v6) {
    const twin = SCENARIOS.find((x) => x.id === s.v4Twin);
    assert.ok(twin && !twin.ipv6, `scenario ${s.id} has an IPv4 twin`);
    for (const k of ['tool', 'keepalive', 'copies', 'threads', 'conns', 'addrs', 'rate'] as const) {
      assert.equal(s[k], twin[k], `scenario ${s.id} ${k} as its twin's`);
    }
    assert.deepEqual(parseOptions(['--scenarios', String(s.id)]).scenarios, [twin.id, s.id].sort((a, b) => a - b));
    assert.match(loadCommand(s, 8, ['2001:2:0:1::10', '2001:2:0:1::11']), /\[2001:2::20\]/);
    assert.doesNotMatch(loadCommand(twin, 8, ['198.18.1.10']), /2001:/);
    assert.deepEqual(tcpcopyArgs(s).slice(0, 2), ['-x', '80-[2001:2::30]:8080']);
    assert.equal(tcpcopyArgs(twin)[1], '80-198.18.0.30:8080');
  }
  assert.deepEqual(withTwins([4, 7, 6]), [1, 4, 6, 7]);
  // Each IPv6 scenario runs back to back with its twin; the others alone, in order.
  const ids = (g: ReturnType<typeof scenarioGroups>) => g.map((x) => x.map((y) => y.id));
  assert.deepEqual(ids(scenarioGroups(SCENARIOS)), [[1, 6], [2], [3], [4, 7], [5]]);
  assert.deepEqual(ids(scenarioGroups(SCENARIOS.filter((x) => x.id === 7))), [[7]], 'a twin not chosen: alone');
  assert.equal(fromClients('2001:2:0:1::1a'), true);
  assert.equal(fromClients('198.18.1.12'), true);
  assert.equal(fromClients('2001:2::20'), false, 'the online host is not a client');
  assert.equal(fromClients('198.18.0.20'), false);
});

test('the report: IPv6 figures beside our IPv4 twin of the same run (IPv6 ÷ IPv4), and the original has no IPv6', () => {
  const v6 = SCENARIOS.find((s) => s.ipv6 && s.v4Twin === 1)!;
  const at = (r: RunResult, id: number): RunResult => ({ ...r, scenario: id });
  const runs = [
    at(run('ours', 1, 400, 200, 1000, 1000, 60), 1), at(run('original', 1, 200, 100, 1000, 1000, 10), 1),
    at(run('ours', 1, 600, 300, 1000, 1000, 66), v6.id),
  ];
  const doc: ResultsDoc = {
    options: { seconds: 8, runs: 1, scenarios: [1, v6.id] },
    machine: { nproc: 2, cpuModel: 'cpu', memoryGB: 4, os: 'os', kernel: 'k', node: 'v20', nginx: 'n', wrk: 'w',
      code: { commit: 'abc', srcChanges: 0, distBuiltAt: new Date(0).toISOString() } } as unknown as ResultsDoc['machine'],
    runs, profileRun: null, profile: null,
  };
  const reps = scenarioReports(doc);
  const r6 = reps.find((r) => r.ours.s.id === v6.id)!;
  assert.equal(r6.comparison, null, 'no ours ÷ original over IPv6');
  assert.ok(r6.vsIpv4);
  assert.equal(r6.vsIpv4.tcpcopyCpu.ratio, 1.5);
  assert.equal(r6.vsIpv4.interceptCpu.ratio, 1.5);
  assert.equal(r6.vsIpv4.tcpcopyPeakRss.ratio, 1.1);
  assert.equal(r6.ipv4?.runs.every((r) => r.pair === 'ours'), true, "the twin's figures are ours, not the original's");
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-report-test-'));
  try {
    writeDocs(doc, 'bench/results/x.json', out);
    const md = fs.readFileSync(path.join(out, 'benchmarks.md'), 'utf8');
    assert.match(md, /## IPv6 ÷ IPv4 \(ours, same run\)/);
    assert.match(md, /original C tcpcopy and intercept have no IPv6/);
    assert.match(md, new RegExp(`\\| ${v6.id} \\| ${v6.title.replace(/[(),~]/g, '.')} \\| 1 \\| 1 \\| 1\\.50× \\| 1\\.50× \\| 0\\.000 / 0\\.000 \\| 1\\.10× \\|`));
    assert.match(md, /-x 80-\[2001:2::30\]:8080/);
    assert.match(md, /ours over IPv4 \(scenario 1\)/);
    // Without the twin the row says so instead of dividing by nothing.
    writeDocs({ ...doc, options: { ...doc.options, scenarios: [v6.id] }, runs: [runs[2]] }, 'x.json', out);
    assert.match(fs.readFileSync(path.join(out, 'benchmarks.md'), 'utf8'), /\| 1 \(did not run\) \|/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('--baseline: an earlier build replaces the older engines as the third pair; this build ÷ that one, per scenario, in the report', () => {
  const o = parseOptions(['--baseline', 'HEAD~3']);
  assert.equal(o.baseline, 'HEAD~3');
  assert.equal(o.legacy, false, 'the older engines make way for the baseline');
  assert.equal(parseOptions([]).baseline, undefined);
  assert.deepEqual(parseOptions(['--node-args', '--trace-gc  --max-semi-space-size=4']).nodeArgs, ['--trace-gc', '--max-semi-space-size=4']);
  assert.equal(parseOptions([]).nodeArgs, undefined);
  const before = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('tcpcopy-baseline-')).length;
  const bad = buildBaseline('no-such-revision-of-this-repo', () => {});
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.reason, /not a revision of this repository/);
  assert.equal(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('tcpcopy-baseline-')).length, before, 'nothing left behind');
  const runs = [
    run('ours', 1, 300, 100, 1000, 1000, 90), run('baseline', 1, 400, 125, 1000, 1000, 100), run('original', 1, 250, 125, 1000, 1000, 15),
    run('ours', 2, 330, 110, 1000, 1000, 92), run('baseline', 2, 360, 100, 1000, 1000, 96), run('original', 2, 260, 120, 1000, 1000, 15),
  ];
  const doc: ResultsDoc = {
    options: { seconds: 8, runs: 2, scenarios: [1] },
    machine: { nproc: 2, cpuModel: 'cpu', memoryGB: 4, os: 'os', kernel: 'k', node: 'v20', nginx: 'n', wrk: 'w',
      code: { commit: 'abc', srcChanges: 0, distBuiltAt: new Date(0).toISOString() } } as unknown as ResultsDoc['machine'],
    runs, profileRun: null, profile: null,
    baseline: { rev: 'HEAD~3', commit: '0123456789abcdef0123', subject: 'an earlier change' },
  };
  const [r] = scenarioReports(doc);
  assert.ok(r.baseline && r.oursToBaseline && r.comparison);
  assert.equal(r.ours.runs.length, 2, 'baseline runs are not mixed into ours');
  // Medians: ours 315, baseline 380 ms per 1k replicated; per repetition 0.75 and 330/360.
  assert.equal(r.oursToBaseline.tcpcopyCpu.ratio, 315 / 380);
  assert.deepEqual([r.oursToBaseline.tcpcopyCpu.perRepetition.min, r.oursToBaseline.tcpcopyCpu.perRepetition.max], [0.75, 330 / 360]);
  assert.equal(r.comparison.tcpcopyCpu.ratio, 315 / 255, 'ours ÷ original unchanged by the third pair');
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-report-test-'));
  try {
    writeDocs(doc, 'bench/results/x.json', out);
    const md = fs.readFileSync(path.join(out, 'benchmarks.md'), 'utf8');
    assert.match(md, /## Against an earlier build \(same run\)/);
    assert.match(md, /`0123456789ab` \("an earlier change", `--baseline HEAD~3`\)/);
    assert.match(md, new RegExp(`\\| 1 \\| ${SCENARIOS[0].title.replace(/[(),~]/g, '.')} \\| 2 \\| 0\\.83× \\(0\\.75×–0\\.92×\\) \\|`));
    writeDocs({ ...doc, baseline: undefined, runs: runs.filter((x) => x.pair !== 'baseline') }, 'x.json', out);
    assert.doesNotMatch(fs.readFileSync(path.join(out, 'benchmarks.md'), 'utf8'), /earlier build/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
