/** Small helpers every part of the bench uses: messages, formatting, sleeping. */
import * as fs from 'node:fs';

/** One clear line on stderr and exit (2: bad usage, 1: cannot run). */
export function die(msg: string, code = 2): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(code);
}

export function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function fmt(x: number, digits: number): string {
  if (!Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fileSize(file: string): number {
  try { return fs.statSync(file).size; } catch { return 0; }
}

/** Requests from the bed's client addresses (198.18.1.0/24, and 2001:2:0:1::/64 over IPv6) are the ones counted. */
export const fromClients = (ip: string): boolean => ip.startsWith('198.18.1.') || ip.startsWith('2001:2:0:1:');
