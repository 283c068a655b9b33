/**
 * The load of a run: wrk in the client namespace, or our Node load client where requests must be
 * spread over several source addresses or rate-limited (wrk can do neither).
 */
import * as path from 'node:path';
import type { LoadResult, Testbed } from '../lab/testbed';
import { loadCommand, onlineUrl, type Scenario } from './scenarios';
import { sleep } from './util';

export interface LoadOutcome {
  tool: 'wrk' | 'node-load-client';
  command: string;
  /** Load duration in seconds as the tool measured it. */
  seconds: number;
  /** Responses the client counted as complete. */
  completed: number;
  errors: number;
  details: Record<string, unknown>;
}

function parseWrkDuration(s: string, unit: string): number {
  const v = Number(s);
  return unit === 'ms' ? v / 1000 : unit === 'm' ? v * 60 : unit === 'us' ? v / 1e6 : v;
}

/** The bed's client addresses of the scenario's family. */
export function clientIpsOf(tb: Testbed, s: Scenario): readonly string[] {
  return s.ipv6 ? tb.clientIps6 : tb.clientIps;
}

export async function runWrk(tb: Testbed, s: Scenario, seconds: number): Promise<LoadOutcome> {
  const args = [`-t${s.threads}`, `-c${s.conns}`, `-d${seconds}s`, '--timeout', '2s'];
  if (!s.keepalive) args.push('-H', 'Connection: close');
  args.push(onlineUrl(s));
  const child = tb.spawn('client', 'wrk', args);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  const killer = setTimeout(() => void tb.stop(child, 'SIGKILL'), (seconds + 20) * 1000);
  const status = await new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(killer);
  await sleep(50);
  const m = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  if (status.code !== 0 || !m) throw new Error(`wrk ${args.join(' ')} failed (${status.signal ?? `status ${status.code}`}):\n${out.trim()}`);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socketErrors = se ? { connect: +se[1], read: +se[2], write: +se[3], timeout: +se[4] } : { connect: 0, read: 0, write: 0, timeout: 0 };
  const errors = socketErrors.connect + socketErrors.read + socketErrors.write + socketErrors.timeout + (non2xx ? +non2xx[1] : 0);
  return {
    tool: 'wrk',
    command: `wrk ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`,
    seconds: parseWrkDuration(m[2], m[3]),
    completed: Number(m[1]),
    errors,
    details: { socketErrors, non2xx: non2xx ? +non2xx[1] : 0, output: out.trim().split('\n') },
  };
}

export async function runNodeClient(tb: Testbed, s: Scenario, seconds: number): Promise<LoadOutcome> {
  const rate = s.rate ?? 0;
  const ips = clientIpsOf(tb, s);
  const localAddrs = ips.slice(0, s.addrs ?? 1);
  const res: LoadResult = await tb.runLoad({
    url: onlineUrl(s),
    requests: rate ? Math.round(rate * seconds) : 10_000_000,
    concurrency: s.conns,
    rate: rate || undefined,
    durationMs: seconds * 1000 + (rate ? 3000 : 0),
    localAddrs,
    timeoutMs: 2000,
    logFile: path.join(tb.workDir, 'load-client.log'),
  });
  return {
    tool: 'node-load-client',
    command: loadCommand(s, seconds, ips),
    seconds: res.durationMs / 1000,
    completed: res.ok,
    errors: res.errors - (res.errorKinds.deadline ?? 0),
    details: res as unknown as Record<string, unknown>,
  };
}
