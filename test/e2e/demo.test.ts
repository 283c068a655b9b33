/**
 * `npm run demo` end to end: runs the compiled demo as a child process with --json, checks its
 * report (every request replicated, same bytes, CPU and memory measured), its exit status, and
 * that it deleted its namespaces on the way out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { NS_PREFIX, listNetns } from '../../lab/testbed';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (network namespaces)';
const DEMO_JS = path.resolve(__dirname, '../../demo/demo.js');

interface Usage { pid: number; cpuSeconds: number; peakMemMB: number }
interface Report {
  pass: boolean;
  prefix: string;
  copies: number;
  requestsOnline: number;
  requestsTarget: number;
  requestsExpected: number;
  lossPercent: number;
  bytesOnline: number;
  bytesTarget: number;
  clientErrors: number;
  tcpcopy: Usage;
  intercept: Usage;
  sessions: { created: number; faked: number; closed: number };
}

interface DemoRun { code: number | null; signal: NodeJS.Signals | null; pid: number; stdout: string; stderr: string; report?: Report }

/** Runs the demo, bounded: SIGINT at timeoutMs (the demo then cleans up), SIGKILL 20 s later. */
function runDemo(args: string[], timeoutMs = 90_000): Promise<DemoRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DEMO_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    let killer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    }, timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
      let report: Report | undefined;
      try { report = line ? (JSON.parse(line) as Report) : undefined; } catch { /* reported below */ }
      resolve({ code, signal, pid: child.pid ?? -1, stdout, stderr, report });
    });
  });
}

/** Namespaces of that run still present; deletes them so a failed run leaves nothing behind. */
function leftovers(run: DemoRun): string[] {
  const prefixes = [`${NS_PREFIX}${run.pid}x`, ...(run.report ? [run.report.prefix] : [])];
  const left = listNetns().filter((n) => prefixes.some((p) => n.startsWith(p)));
  for (const n of left) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore', timeout: 10_000 });
  return left;
}

/**
 * What was replicated matches what was served, lost requests or not: the target never got
 * more requests or bytes than `copies` times the online server's, and the bytes it lacks are
 * those of the requests it lacks. The demo's requests are GETs and 1 KiB POSTs whose size is
 * fixed within each load (the load client numbers its requests with fixed-width ids): between
 * MIN_REQUEST and MAX_REQUEST bytes each.
 */
const MIN_REQUEST = 50;
const MAX_REQUEST = 1024 + 300;
function assertBytesMatch(r: Report, copies: number): void {
  const want = copies * r.requestsOnline;
  const lost = want - r.requestsTarget;
  const lostBytes = copies * r.bytesOnline - r.bytesTarget;
  assert.ok(lost >= 0, `the target got ${-lost} requests more than ${copies} x the online server's`);
  assert.ok(r.bytesOnline >= r.requestsOnline * MIN_REQUEST && r.bytesOnline <= r.requestsOnline * MAX_REQUEST,
    `online: ${r.bytesOnline} bytes for ${r.requestsOnline} requests`);
  if (lost === 0) assert.equal(r.bytesTarget, copies * r.bytesOnline, 'request bytes equal');
  else {
    assert.ok(lostBytes >= lost * MIN_REQUEST && lostBytes <= lost * MAX_REQUEST,
      `${lost} requests lost, ${lostBytes} bytes lacking: not the bytes of whole requests`);
  }
}

function describeRun(run: DemoRun): string {
  return `exit ${run.signal ?? run.code}\n--- stderr (tail)\n${run.stderr.slice(-3000)}\n--- stdout\n${run.stdout.slice(-2000)}`;
}

test('npm run demo: every request replicated, same bytes, resources measured, nothing left behind', { skip, timeout: 120_000 }, async () => {
  const run = await runDemo(['--duration', '6', '--rate', '300', '--json']);
  const left = leftovers(run);
  const r = run.report;
  assert.ok(r, `no JSON report\n${describeRun(run)}`);
  assert.ok(r.prefix.startsWith(`${NS_PREFIX}${run.pid}x`), `prefix ${r.prefix} for pid ${run.pid}`);
  assert.ok(r.requestsOnline > 0, 'the online server served requests');
  assert.ok(r.requestsOnline >= 1700, `online served ${r.requestsOnline} of 1800`);
  assert.ok(r.requestsTarget === r.requestsOnline || r.lossPercent <= 0.1,
    `target ${r.requestsTarget} of ${r.requestsOnline} (loss ${r.lossPercent} %)`);
  assertBytesMatch(r, 1);
  assert.equal(r.pass, true);
  assert.equal(run.code, 0, describeRun(run));
  for (const d of [r.tcpcopy, r.intercept]) {
    assert.ok(d.pid > 0);
    assert.ok(d.cpuSeconds > 0, `CPU seconds ${d.cpuSeconds}`);
    assert.ok(d.peakMemMB > 0, `peak memory ${d.peakMemMB}`);
  }
  assert.ok(r.sessions.created > 0 && r.sessions.closed > 0, JSON.stringify(r.sessions));
  assert.match(run.stderr, /intercept -i v-assistant -F 'tcp and src port 8080'/, 'prints the intercept command line');
  assert.match(run.stderr, /tcpcopy -x 80-198\.18\.0\.30:8080 -s 198\.18\.0\.40/, 'prints the tcpcopy command line');
  assert.deepEqual(left, [], 'the demo deleted its namespaces');
});

test('npm run demo -- --copies 2: the target gets twice what the online server gets', { skip, timeout: 120_000 }, async () => {
  const run = await runDemo(['--duration', '3', '--rate', '200', '--copies', '2', '--json']);
  const left = leftovers(run);
  const r = run.report;
  assert.ok(r, `no JSON report\n${describeRun(run)}`);
  assert.equal(r.copies, 2);
  assert.ok(r.requestsOnline > 0);
  assert.equal(r.requestsExpected, 2 * r.requestsOnline);
  assert.equal(r.requestsTarget, 2 * r.requestsOnline, `target ${r.requestsTarget} for ${r.requestsOnline} online`);
  assert.equal(r.bytesTarget, 2 * r.bytesOnline);
  assertBytesMatch(r, 2);
  assert.equal(run.code, 0, describeRun(run));
  assert.deepEqual(left, [], 'the demo deleted its namespaces');
});
