/** What the demo counts: requests and bytes at a server, loss, a process's CPU and peak memory. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { HttpServerStats } from '../lab/testbed';

export interface Count { requests: number; bytes: number }

/** Requests and request bytes (headers + bodies) from the client addresses 198.18.1.x. */
export function count(s: HttpServerStats): Count {
  const c: Count = { requests: 0, bytes: 0 };
  for (const [ip, v] of Object.entries(s.perClient)) {
    if (!ip.startsWith('198.18.1.')) continue;
    c.requests += v.requests;
    c.bytes += v.headerBytes + v.bodyBytes;
  }
  return c;
}

export function lossPercent(expected: number, got: number): number {
  return expected > 0 ? (Math.max(0, expected - got) / expected) * 100 : 0;
}

let clkTck = 0;
function clockTicks(): number {
  if (clkTck) return clkTck;
  try {
    clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim()) || 100;
  } catch {
    clkTck = 100;
  }
  return clkTck;
}

export interface ProcUsage { pid: number; cpuSeconds: number; peakMemMB: number; alive: boolean }

/** CPU seconds (utime + stime) and peak resident memory (VmHWM) of a live process. */
export function procUsage(pid: number | undefined): ProcUsage {
  const u: ProcUsage = { pid: pid ?? 0, cpuSeconds: 0, peakMemMB: 0, alive: false };
  if (!pid) return u;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3,
    // utime field 14, stime field 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    u.cpuSeconds = Math.round(((Number(rest[11]) + Number(rest[12])) / clockTicks()) * 100) / 100;
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    if (m) u.peakMemMB = Math.round((Number(m[1]) / 1024) * 10) / 10;
    u.alive = true;
  } catch {
    /* gone */
  }
  return u;
}
