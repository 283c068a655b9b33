/**
 * What the bench reads from /proc and from the servers' logs: a process's CPU and peak RSS, the
 * machine's load (and how much of it is not ours), nginx access-log counts, SNMP counters, raw
 * socket drops. No state beyond the LogCounter's file position.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Testbed } from '../lab/testbed';
import { fileSize, fmt, progress, sleep } from './util';

export const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; }
})();

/** utime+stime of a process (all its threads), in ms; NaN when it is gone. */
export function cpuMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ", field 3 (state) is f[0]; utime is field 14 → f[11], stime f[12].
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** utime alone (ms): the daemon's own code, without system calls. */
export function userMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[11]) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Peak resident set size (VmHWM) in MB; NaN when unknown. */
export function peakRssMB(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Busy and total jiffies of the whole machine (/proc/stat "cpu" line). */
export function machineCpu(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Child PIDs of a process (nginx master → worker). */
export function childPids(pid: number | undefined): number[] {
  if (!pid) return [];
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** utime+stime (ms) of every process on the machine; kernel threads flagged. */
export function allProcessCpu(): Map<number, { ms: number; kernel: boolean }> {
  const out = new Map<number, { ms: number; kernel: boolean }>();
  let names: string[] = [];
  try { names = fs.readdirSync('/proc'); } catch { return out; }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${n}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pid = Number(n);
      out.set(pid, { ms: ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK, kernel: pid === 2 || f[1] === '2' });
    } catch { /* gone */ }
  }
  return out;
}

/**
 * CPU (ms) that processes outside this bench used between two scans: everything but our own
 * PIDs and kernel threads (other test beds, builds, … on a shared machine).
 */
export function foreignCpuMs(a: Map<number, { ms: number; kernel: boolean }>, b: Map<number, { ms: number; kernel: boolean }>,
  ours: Set<number>): { ms: number; top: { pid: number; ms: number; cmd: string }[] } {
  let ms = 0;
  const per: { pid: number; ms: number }[] = [];
  for (const [pid, v] of b) {
    if (v.kernel || ours.has(pid)) continue;
    const d = v.ms - (a.get(pid)?.ms ?? 0);
    if (d > 0) { ms += d; per.push({ pid, ms: d }); }
  }
  per.sort((x, y) => y.ms - x.ms);
  const top = per.slice(0, 3).map((p) => {
    let cmd = '';
    try { cmd = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim().slice(0, 120); } catch { /* gone */ }
    return { ...p, cmd };
  });
  return { ms, top };
}

/** Namespaces of other test beds (other processes' tcb* namespaces) on this machine. */
export function otherBeds(tb: Testbed): number {
  try {
    const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.trim().split(/\s+/)[0]);
    return new Set(names.filter((n) => /^tcb\d+x\d+-/.test(n) && !n.startsWith(tb.prefix)).map((n) => n.replace(/-[a-z]+$/, ''))).size;
  } catch {
    return 0;
  }
}

/**
 * Counts nginx access-log lines (`$remote_addr $request_length`) from the client addresses,
 * reading only what was appended since the counter was made.
 */
export class LogCounter {
  requests = 0;
  bytes = 0;
  readonly byIp: Record<string, number> = {};
  private pos: number;
  private partial = '';

  constructor(private readonly file: string, private readonly accept: (ip: string) => boolean) {
    this.pos = fileSize(file);
  }

  poll(): this {
    let fd: number;
    try { fd = fs.openSync(this.file, 'r'); } catch { return this; }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < this.pos) this.pos = 0; // truncated
      while (this.pos < size) {
        const buf = Buffer.allocUnsafe(Math.min(size - this.pos, 4 << 20));
        const n = fs.readSync(fd, buf, 0, buf.length, this.pos);
        if (n <= 0) break;
        this.pos += n;
        const text = this.partial + buf.toString('latin1', 0, n);
        const lines = text.split('\n');
        this.partial = lines.pop() ?? '';
        for (const l of lines) {
          const sp = l.indexOf(' ');
          if (sp <= 0) continue;
          const ip = l.slice(0, sp);
          if (!this.accept(ip)) continue;
          this.requests++;
          this.bytes += Number(l.slice(sp + 1)) || 0;
          this.byIp[ip] = (this.byIp[ip] ?? 0) + 1;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    return this;
  }
}


/** A process's start time (field 22 of /proc/<pid>/stat): with the PID, it names one process. */
export function startTime(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}


export function nstatDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) {
    const d = v - (a[k] ?? 0);
    if (d !== 0 && !/^(Ip6|Icmp6|Udp6|UdpLite)/.test(k)) out[k] = d;
  }
  return out;
}

export function rawDrops(tb: Testbed): number {
  try {
    const text = tb.execSync('online', 'cat', ['/proc/net/raw']);
    let drops = 0;
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 13) drops += Number(f[f.length - 1]) || 0;
    }
    return drops;
  } catch {
    return NaN;
  }
}



/** Waiting for quiet is bounded per run and, so that a busy machine cannot stretch the bench, in total. */
export const quietBudget = { left: 90 };

/**
 * Waits (bounded) until processes outside this bench use less than `maxPct` % of the machine
 * over a 1 s sample. Returns the last sample (% of all cores) and how long it waited.
 */
export async function waitQuiet(tb: Testbed, ours: () => Set<number>, maxPct: number, boundS: number): Promise<{ pct: number; waitedS: number }> {
  const t0 = Date.now();
  const cores = os.cpus().length || 1;
  let said = false;
  for (;;) {
    const a = allProcessCpu();
    await sleep(1000);
    const f = foreignCpuMs(a, allProcessCpu(), ours());
    const pct = f.ms / (10 * cores);
    const waitedS = (Date.now() - t0) / 1000;
    if (pct < maxPct || waitedS >= boundS) {
      if (said || pct >= maxPct) progress(`  other load on the machine: ${fmt(pct, 0)} % of the CPUs${pct >= maxPct ? ` — still busy after ${fmt(waitedS, 0)} s, measuring anyway` : ''}`);
      return { pct, waitedS };
    }
    if (!said) {
      said = true;
      const beds = otherBeds(tb);
      progress(`  other processes use ${fmt(pct, 0)} % of the CPUs${beds ? ` (${beds} other test beds)` : ''}` +
        `${f.top[0] ? `, e.g. ${f.top[0].cmd.slice(0, 80)}` : ''}; waiting up to ${boundS} s for quiet`);
    }
  }
}
