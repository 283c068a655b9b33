/**
 * Starts our two daemons inside test-bed namespaces exactly as a user would run them, waits
 * until they say they are running, and reads their JSON logs (statistics and summary).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Testbed, IpHost } from './testbed';

export const ROOT = path.resolve(__dirname, '../..');
export const BIN = { tcpcopy: path.join(ROOT, 'bin/tcpcopy'), intercept: path.join(ROOT, 'bin/intercept') };

export interface DaemonHandle {
  name: 'tcpcopy' | 'intercept';
  child: ChildProcess;
  logFile: string;
  /** Every JSON line logged so far. */
  lines(): Record<string, unknown>[];
  /** The last `statistics` or `summary` counters. */
  lastStats(): Record<string, unknown> | undefined;
  /** Waits (bounded) for a statistics line logged after now, and returns it. */
  freshStats(timeoutMs?: number): Promise<Record<string, unknown> | undefined>;
  /** SIGTERM, wait, and return the summary line's fields. */
  stop(): Promise<Record<string, unknown> | undefined>;
}

function readLines(file: string): Record<string, unknown>[] {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { return []; }
  const out: Record<string, unknown>[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try { out.push(JSON.parse(l) as Record<string, unknown>); } catch { /* partial line */ }
  }
  return out;
}

let counter = 0;

/** Spawns a daemon (stderr log to a file), waits for its "running" line (bounded). `bin`: another build's script; `nodeArgs`: flags for node itself. */
export async function startDaemon(tb: Testbed, host: IpHost, name: 'tcpcopy' | 'intercept', args: string[],
  opts: { readyTimeoutMs?: number; statsInterval?: number; bin?: string; nodeArgs?: readonly string[] } = {}): Promise<DaemonHandle> {
  const logFile = path.join(tb.workDir, `${name}-${++counter}.log`);
  const full = [...(opts.nodeArgs ?? []), opts.bin ?? BIN[name], ...args, '--stats-interval', String(opts.statsInterval ?? 1)];
  const child = tb.spawn(host, process.execPath, full, { logFile });
  const h: DaemonHandle = {
    name,
    child,
    logFile,
    lines: () => readLines(logFile),
    lastStats: () => {
      const ls = readLines(logFile);
      for (let i = ls.length - 1; i >= 0; i--) {
        const l = ls[i];
        if (l.msg === 'summary') return l.summary as Record<string, unknown>;
        if (l.msg === 'statistics') return l.stats as Record<string, unknown>;
      }
      return undefined;
    },
    freshStats: async (timeoutMs = 5000) => {
      const since = Date.now();
      let found: Record<string, unknown> | undefined;
      await waitFor(() => {
        const ls = readLines(logFile);
        for (let i = ls.length - 1; i >= 0; i--) {
          const l = ls[i];
          if (l.msg !== 'statistics') continue;
          if (Date.parse(String(l.time)) > since) { found = l.stats as Record<string, unknown>; return true; }
          break;
        }
        return false;
      }, timeoutMs, 100);
      return found;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) await tb.stop(child, 'SIGTERM', 8000);
      const s = readLines(logFile).find((l) => l.msg === 'summary');
      return s?.summary as Record<string, unknown> | undefined;
    },
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15000);
  const want = `${name} running`;
  while (Date.now() < deadline) {
    if (h.lines().some((l) => l.msg === want)) return h;
    if (child.exitCode !== null || child.signalCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  let text = '';
  try { text = fs.readFileSync(logFile, 'utf8'); } catch { /* none */ }
  if (child.exitCode === null) await tb.stop(child, 'SIGKILL', 2000);
  throw new Error(`${name} did not start (exit ${child.exitCode}): ${text.slice(-2000)}`);
}

/** Polls until `fn` returns true or the time is up; returns the last value. */
export async function waitFor(fn: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 200): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export function num(x: unknown): number {
  return typeof x === 'number' ? x : 0;
}
