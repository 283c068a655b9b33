/**
 * The two pairs of daemons a scenario runs with: ours (bin/tcpcopy, bin/intercept) and the
 * original C programs (see peers.ts), started the same way in the same bed with the same flags,
 * so that their figures can be divided one by the other.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { IpHost, Testbed } from '../lab/testbed';
import { startDaemon, waitFor } from '../lab/daemons';
import type { PeerBuild } from './peers';
import type { BaselineBuild } from './baseline';
import { startProfiledTcpcopy } from './profile';

/**
 * `legacy`: our daemons with their older engines (raw socket or libpcap capture, one sendto per
 * packet). `baseline`: an earlier build of ours (`--baseline <rev>`, baseline.ts).
 */
export type PairName = 'ours' | 'original' | 'legacy' | 'baseline';

/** A started daemon of either pair. */
export interface Proc {
  child: ChildProcess;
  logFile: string;
  /** SIGTERM, wait; the end-of-run counters (ours: the summary line; the original: its last log lines). */
  stop(): Promise<Record<string, unknown> | undefined>;
}

export interface Pair {
  name: PairName;
  label: string;
  startIntercept(tb: Testbed): Promise<Proc>;
  /** `args` are tcpcopy's -x/-s/-n, the same for both pairs. */
  startTcpcopy(tb: Testbed, args: string[], profDir?: string): Promise<Proc>;
}

export const INTERCEPT_ARGS = (tb: Testbed): string[] => ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080'];

/** The older engines' flags (the paths that came before the ring and sendmmsg). */
export const LEGACY_TCPCOPY_ARGS = ['--capture-engine', 'legacy', '--send-engine', 'legacy'];
export const LEGACY_INTERCEPT_ARGS = ['--capture-engine', 'legacy'];

/**
 * Our pair; `extraTcpcopyArgs` ({dev} = the online veth) are for ours only, `nodeArgs` flags
 * for node in front of both daemons (`--node-args`). `legacy`: the same
 * daemons with their older engines, as a third pair measured in the same run.
 */
export function oursPair(extraTcpcopyArgs: readonly string[] = [], legacy = false, nodeArgs: readonly string[] = []): Pair {
  return {
    name: legacy ? 'legacy' : 'ours',
    label: legacy ? 'ours, older engines' : 'ours (TypeScript)',
    startIntercept: (tb) => startDaemon(tb, 'assistant', 'intercept', [...INTERCEPT_ARGS(tb), ...(legacy ? LEGACY_INTERCEPT_ARGS : [])],
      { statsInterval: 2, nodeArgs }),
    startTcpcopy: (tb, args, profDir) => {
      const all = [...args, ...(legacy ? LEGACY_TCPCOPY_ARGS : []), ...extraTcpcopyArgs.map((a) => a.replace('{dev}', tb.dev('online')))];
      return profDir ? startProfiledTcpcopy(tb, all, profDir) : startDaemon(tb, 'online', 'tcpcopy', all, { statsInterval: 2, nodeArgs });
    },
  };
}

/** An earlier build of ours with the default engines and the same flags (`--baseline`). */
export function baselinePair(b: BaselineBuild, extraTcpcopyArgs: readonly string[] = [], nodeArgs: readonly string[] = []): Pair {
  return {
    name: 'baseline',
    label: `ours at ${b.commit.slice(0, 12)}`,
    startIntercept: (tb) => startDaemon(tb, 'assistant', 'intercept', INTERCEPT_ARGS(tb), { statsInterval: 2, bin: b.bin.intercept, nodeArgs }),
    startTcpcopy: (tb, args) => startDaemon(tb, 'online', 'tcpcopy', [...args, ...extraTcpcopyArgs.map((a) => a.replace('{dev}', tb.dev('online')))],
      { statsInterval: 2, bin: b.bin.tcpcopy, nodeArgs }),
  };
}

/**
 * The original's end-of-run log lines ("conns:500,resp:2000,c-resp:500", "send syn:500, fin:121")
 * as counters, keyed as printed ("conns", "send syn", …); later lines win.
 */
export function parseOriginalLog(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const lines = text.split('\n');
  let from = 0;
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i].includes('sig 15 received')) { from = i; break; }
  for (const line of lines.slice(from)) {
    const m = /\[(?:notice|info|warn)\]\s+(.*)$/.exec(line);
    // Lines that print sizes or file descriptors, not counts.
    if (!m || /epoll|session table|space \(bytes\)/.test(m[1])) continue;
    for (const part of m[1].split(',')) {
      const kv = /^\s*([A-Za-z][A-Za-z -]*?)\s*:\s*(\d+)\s*$/.exec(part);
      if (kv) out[kv[1]] = Number(kv[2]);
    }
  }
  return out;
}

let seq = 0;

async function startOriginal(tb: Testbed, host: IpHost, bin: string, args: string[], ready: (log: string) => boolean,
  what: string): Promise<Proc> {
  const logFile = path.join(tb.workDir, `original-${path.basename(bin)}-${++seq}.log`);
  const child = tb.spawn(host, bin, [...args, '-l', logFile], { logFile: `${logFile}.out` });
  const read = (): string => { try { return fs.readFileSync(logFile, 'utf8'); } catch { return ''; } };
  const up = await waitFor(() => child.exitCode !== null || child.signalCode !== null || ready(read()), 15_000, 50);
  if (!up || child.exitCode !== null || child.signalCode !== null) {
    if (child.exitCode === null && child.signalCode === null) await tb.stop(child, 'SIGKILL', 2000);
    let out = '';
    try { out = fs.readFileSync(`${logFile}.out`, 'utf8'); } catch { /* none */ }
    throw new Error(`the original ${what} did not start (${child.exitCode ?? child.signalCode ?? 'not ready in 15 s'}): ${(read() + out).slice(-1500)}`);
  }
  return {
    child, logFile,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) await tb.stop(child, 'SIGTERM', 8000);
      return parseOriginalLog(read());
    },
  };
}

/** The original C pair, same flags as ours (its control port is 36524 too). */
export function originalPair(build: PeerBuild): Pair {
  return {
    name: 'original',
    label: 'original C',
    startIntercept: (tb) => startOriginal(tb, 'assistant', build.intercept, INTERCEPT_ARGS(tb), () => {
      // Ready when its control port listens.
      try { return tb.execSync('assistant', 'ss', ['-Hltn', 'sport = :36524']).includes('36524'); } catch { return false; }
    }, 'intercept'),
    startTcpcopy: (tb, args) => startOriginal(tb, 'online', build.tcpcopy, args,
      (log) => log.includes('connect to remote server'), 'tcpcopy'),
  };
}
