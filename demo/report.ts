/**
 * The demo's end: the report (as an object for --json and as a table for people), the
 * instructions to explore a kept lab, and the verdict.
 */
import { ONLINE_IP } from '../lab/testbed';
import { num } from '../lab/daemons';
import { lossPercent } from './measure';
import type { Drive, Lab } from './live';
import type { Options } from './options';
import { fmtInt, pct, type Out } from './output';

/** Counters the daemons ended with (their summary, or their last statistics with --keep). */
export interface Counters { tc: Record<string, unknown>; ic: Record<string, unknown> }

export function buildReport(lab: Lab, opts: Options, d: Drive, counters: Counters) {
  const { bed, tc, icpt } = lab;
  const { final, results } = d;
  const copies = opts.copies;
  const expected = copies * final.online.requests;
  const loss = lossPercent(expected, final.target.requests);
  const exited = [tc, icpt].filter((x) => x.child.exitCode !== null || x.child.signalCode !== null)
    .map((x) => `${x.name} exited early (${x.child.signalCode ?? `status ${x.child.exitCode}`})`);
  const okLoad = results.reduce((a, r) => a + r.ok, 0);
  const errLoad = results.reduce((a, r) => a + r.errors, 0);
  const tcCounters = counters.tc;
  const icCounters = counters.ic;
  return {
    pass: final.online.requests > 0 && loss <= 0.1,
    prefix: bed.prefix,
    namespaces: bed.namespaces(),
    durationS: opts.durationS,
    rate: opts.rate,
    copies,
    loadSeconds: Math.round(d.loadSeconds * 10) / 10,
    settleSeconds: Math.round(d.settleSeconds * 10) / 10,
    clientRequestsOk: okLoad,
    clientErrors: errLoad,
    latencyMsP50: Math.max(...results.map((r) => r.latencyMsP50)),
    latencyMsP99: Math.max(...results.map((r) => r.latencyMsP99)),
    requestsOnline: final.online.requests,
    requestsTarget: final.target.requests,
    requestsExpected: expected,
    requestsLost: Math.max(0, expected - final.target.requests),
    requestsExtra: Math.max(0, final.target.requests - expected),
    lossPercent: Math.round(loss * 10000) / 10000,
    bytesOnline: final.online.bytes,
    bytesTarget: final.target.bytes,
    bytesExpected: copies * final.online.bytes,
    daemonsExited: exited,
    tcpcopy: { pid: d.usage.tc.pid, cpuSeconds: d.usage.tc.cpuSeconds, peakMemMB: d.usage.tc.peakMemMB, log: tc.logFile },
    intercept: { pid: d.usage.ic.pid, cpuSeconds: d.usage.ic.cpuSeconds, peakMemMB: d.usage.ic.peakMemMB, log: icpt.logFile },
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
}

export type Report = ReturnType<typeof buildReport>;

export function printReport(out: Out, report: Report, opts: Options, d: Drive): void {
  const { say, dim } = { say: out.say.bind(out), dim: out.dim.bind(out) };
  const copies = opts.copies;
  const okLoad = report.clientRequestsOk;
  const c1 = 24, c2 = 12, c3 = 12;
  const row = (label: string, a: string, b: string, note = '') =>
    say(`  ${label.padEnd(c1)}${a.padStart(c2)}${b.padStart(c3)}${note ? `   ${note}` : ''}`);
  say();
  say(out.bold(`Report  (load ${d.loadSeconds.toFixed(1)} s at ${fmtInt(okLoad / Math.max(d.loadSeconds, 0.001))} req/s, ` +
    `settled in ${d.settleSeconds.toFixed(1)} s)`));
  row('', 'online', 'target');
  row('requests', fmtInt(report.requestsOnline), fmtInt(report.requestsTarget),
    copies > 1 ? dim(`expected ${fmtInt(report.requestsExpected)} = ${copies} x online`) : '');
  row('request bytes', fmtInt(report.bytesOnline), fmtInt(report.bytesTarget),
    report.bytesTarget === report.bytesExpected ? dim(copies > 1 ? `exactly ${copies} x online` : 'identical') : out.red(`expected ${fmtInt(report.bytesExpected)}`));
  row('loss', '', pct(lossPercent(report.requestsExpected, report.requestsTarget)),
    report.requestsExtra > 0 ? out.red(`${fmtInt(report.requestsExtra)} more than expected`) : dim(`${fmtInt(report.requestsLost)} missing`));
  row('clients', `${fmtInt(okLoad)} ok`, `${fmtInt(report.clientErrors)} err`,
    dim(`latency p50 ${report.latencyMsP50.toFixed(1)} ms, p99 ${report.latencyMsP99.toFixed(1)} ms`));
  const achieved = okLoad / Math.max(d.loadSeconds, 0.001);
  if (achieved < 0.9 * opts.rate) {
    say(dim(`  (the clients reached ${fmtInt(achieved)} of the ${fmtInt(opts.rate)} req/s asked: this machine is the limit` +
      `${d.results.some((r) => r.hitDeadline) ? '; the load was cut at its hard stop' : ''})`));
  }
  say();
  row('', 'CPU s', 'peak mem');
  row(`tcpcopy (pid ${report.tcpcopy.pid})`, report.tcpcopy.cpuSeconds.toFixed(2), `${report.tcpcopy.peakMemMB.toFixed(1)} MB`);
  row(`intercept (pid ${report.intercept.pid})`, report.intercept.cpuSeconds.toFixed(2), `${report.intercept.peakMemMB.toFixed(1)} MB`);
  for (const e of report.daemonsExited) say(out.red(`  ${e}: its figures are as last seen`));
  say(`  sessions: created ${fmtInt(report.sessions.created)}, faked ${fmtInt(report.sessions.faked)}, ` +
    `closed ${fmtInt(report.sessions.closed)}` +
    (report.sessions.timedOut ? `, timed out ${fmtInt(report.sessions.timedOut)}` : '') +
    (report.sessions.resetByTarget ? `, reset by target ${fmtInt(report.sessions.resetByTarget)}` : '') +
    (opts.keep ? dim(' (so far; tcpcopy still runs)') : ''));
  say();
}

/** With --keep: how to look around the running lab and how to tear it down. */
export function printKeep(out: Out, lab: Lab): void {
  const { bed, tc, icpt, online, target } = lab;
  const { say, dim, bold } = { say: out.say.bind(out), dim: out.dim.bind(out), bold: out.bold.bind(out) };
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
}

/** PASS or FAIL, and where the logs are when it failed. */
export function printVerdict(out: Out, report: Report, opts: Options, logs: string[]): void {
  const copies = opts.copies;
  const loss = lossPercent(report.requestsExpected, report.requestsTarget);
  if (report.pass) {
    out.say(out.green(out.bold(`PASS: ${pct(loss)} of the requests lost (limit 0.10 %)`)) +
      (copies > 1 ? out.green(`, every session replayed ${copies} times`) : ''));
  } else if (report.requestsOnline === 0) {
    out.say(out.red(out.bold('FAIL: the online server served no requests from the clients')));
  } else {
    out.say(out.red(out.bold(`FAIL: ${pct(loss)} of the requests lost (limit 0.10 %): ` +
      `${fmtInt(report.requestsLost)} of ${fmtInt(report.requestsExpected)} never reached the target`)));
    if (logs.length) out.say(out.dim(`  logs: ${logs.join(' ')}`));
  }
}
