/**
 * Profiling: one extra run with our tcpcopy under `node --cpu-prof`, and the summary of its
 * profile (self time of the hottest functions and files, mapped to the TypeScript sources).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SourceMap } from 'node:module';
import type { Testbed } from '../lab/testbed';
import { BIN, ROOT, waitFor, type DaemonHandle } from '../lab/daemons';
import { snapshot } from './code';

/** Starts tcpcopy under `node --cpu-prof` (startDaemon cannot pass node flags). */
export async function startProfiledTcpcopy(tb: Testbed, args: string[], profDir: string): Promise<DaemonHandle> {
  const logFile = path.join(tb.workDir, 'tcpcopy-profiled.log');
  const child = tb.spawn('online', process.execPath,
    ['--cpu-prof', '--cpu-prof-dir', profDir, BIN.tcpcopy, ...args, '--stats-interval', '2'], { logFile });
  const lines = (): Record<string, unknown>[] => {
    let text = '';
    try { text = fs.readFileSync(logFile, 'utf8'); } catch { return []; }
    const out: Record<string, unknown>[] = [];
    for (const l of text.split('\n')) {
      if (!l.startsWith('{')) continue;
      try { out.push(JSON.parse(l) as Record<string, unknown>); } catch { /* partial */ }
    }
    return out;
  };
  const up = await waitFor(() => lines().some((l) => l.msg === 'tcpcopy running') || child.exitCode !== null, 15_000, 50);
  if (!up || child.exitCode !== null) {
    if (child.exitCode === null) await tb.stop(child, 'SIGKILL', 2000);
    throw new Error(`profiled tcpcopy did not start: ${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : ''}`);
  }
  return {
    name: 'tcpcopy', child, logFile, lines,
    lastStats: () => undefined,
    freshStats: async () => undefined,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) await tb.stop(child, 'SIGTERM', 15_000);
      const s = lines().find((l) => l.msg === 'summary');
      return s?.summary as Record<string, unknown> | undefined;
    },
  };
}


export interface ProfileEntry { fn: string; where: string; selfMs: number; pct: number }
export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Sampled time outside (idle). */
  busyMs: number;
  top: ProfileEntry[];
  byFile: { where: string; selfMs: number; pct: number }[];
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; hitCount?: number }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const sourceMaps = new Map<string, SourceMap | null>();

/** Maps a dist/…js frame back to its .ts source through the emitted source map. */
function mapFrame(url: string, line: number, col: number): string {
  let file = url.startsWith('file://') ? url.slice(7) : url;
  if (!file) return '';
  let loc = `${file}:${line + 1}`;
  const base = snapshot.info && file.startsWith(snapshot.info.dir + '/') ? snapshot.info.dir : ROOT;
  if (file.startsWith(base + '/') && file.endsWith('.js') && !file.includes('/node_modules/')) {
    let sm = sourceMaps.get(file);
    if (sm === undefined) {
      try { sm = new SourceMap(JSON.parse(fs.readFileSync(file + '.map', 'utf8'))); } catch { sm = null; }
      sourceMaps.set(file, sm);
    }
    const e = sm?.findEntry(line, col) as { originalSource?: string; originalLine?: number } | undefined;
    if (e && e.originalSource !== undefined && e.originalLine !== undefined) {
      const src = e.originalSource.startsWith('file://') ? e.originalSource.slice(7) : path.resolve(path.dirname(file), e.originalSource);
      file = src;
      loc = `${src}:${e.originalLine + 1}`;
    }
  }
  return path.isAbsolute(file) && file.startsWith(base + '/') ? path.relative(base, loc) : loc;
}

export function summariseProfile(file: string): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const d = prof.timeDeltas[i + 1] ?? 0; // the time until the next sample belongs to this one
    selfUs.set(prof.samples[i], (selfUs.get(prof.samples[i]) ?? 0) + Math.max(0, d));
  }
  const agg = new Map<string, { fn: string; where: string; us: number }>();
  const files = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    total += us;
    const cf = n.callFrame;
    const fn = cf.functionName || '(anonymous)';
    if (fn === '(idle)') { idle += us; continue; }
    const where = cf.url ? mapFrame(cf.url, cf.lineNumber, cf.columnNumber) : '';
    const key = `${fn}@${where}`;
    const a = agg.get(key) ?? { fn, where, us: 0 };
    a.us += us;
    agg.set(key, a);
    const f = where ? where.replace(/:\d+$/, '') : fn.startsWith('(') ? fn : '(native / builtin)';
    files.set(f, (files.get(f) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number): number => (busy > 0 ? (us / busy) * 100 : 0);
  return {
    file: path.relative(ROOT, file),
    totalMs: total / 1000,
    busyMs: busy / 1000,
    top: [...agg.values()].sort((a, b) => b.us - a.us).slice(0, 30).map((a) => ({ fn: a.fn, where: a.where, selfMs: a.us / 1000, pct: pct(a.us) })),
    byFile: [...files.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([where, us]) => ({ where, selfMs: us / 1000, pct: pct(us) })),
  };
}
