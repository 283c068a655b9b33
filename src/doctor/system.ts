/**
 * What the doctor reads about the machine: capabilities, sysctls, devices, firewall rules and
 * socket owners, from /proc, /sys and the `nft`/`iptables` commands. Read-only: nothing here
 * changes the machine.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

export const CAP_NET_ADMIN = 12;
export const CAP_NET_RAW = 13;

/** The effective capability set of this process, from /proc/self/status (CapEff, hex). */
export function effectiveCaps(statusText?: string): bigint {
  let t = statusText;
  if (t === undefined) {
    try { t = fs.readFileSync('/proc/self/status', 'latin1'); } catch { return 0n; }
  }
  const m = /^CapEff:\s*([0-9a-fA-F]+)/m.exec(t);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function hasCap(caps: bigint, cap: number): boolean {
  return ((caps >> BigInt(cap)) & 1n) === 1n;
}

/** A sysctl's value under /proc/sys (`net.ipv4.ip_forward`), or null when it does not exist. */
export function readSysctl(name: string): string | null {
  try {
    return fs.readFileSync(`/proc/sys/${name.replace(/\./g, '/')}`, 'latin1').trim();
  } catch {
    return null;
  }
}

export interface CommandResult { ok: boolean; missing: boolean; stdout: string; stderr: string }

/** Runs a read-only command with a time bound; `missing` when it is not installed. */
export function runCommand(cmd: string, args: string[], timeoutMs = 2000): CommandResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    return { ok: false, missing, stdout: '', stderr: r.error.message };
  }
  return { ok: r.status === 0, missing: false, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * Rules of an nftables ruleset (`nft list ruleset` text) that can drop packets in chains on the
 * `output` hook: `drop`/`reject` verdicts and `policy drop`. Each entry names table and chain.
 */
export function nftOutputDrops(ruleset: string): string[] {
  const out: string[] = [];
  let table = '';
  let chain = '';
  let isOutput = false;
  for (const raw of ruleset.split('\n')) {
    const line = raw.trim();
    let m = /^table\s+(\S+)\s+(\S+)\s*\{/.exec(line);
    if (m) { table = `${m[1]} ${m[2]}`; continue; }
    m = /^chain\s+(\S+)\s*\{/.exec(line);
    if (m) { chain = m[1]; isOutput = false; continue; }
    if (/\bhook\s+output\b/.test(line)) {
      isOutput = true;
      if (/\bpolicy\s+drop\b/.test(line)) out.push(`${table} chain ${chain}: policy drop`);
      continue;
    }
    if (isOutput && /(^|\s)(drop|reject)(\s|$|;)/.test(line)) out.push(`${table} chain ${chain}: ${line}`);
  }
  return out;
}

/** Lines of `iptables -S OUTPUT` that drop or reject, and a DROP policy. */
export function iptablesOutputDrops(rules: string): string[] {
  return rules.split('\n').map((l) => l.trim()).filter((l) => /^-P OUTPUT DROP/.test(l) || /-j (DROP|REJECT)\b/.test(l));
}

export interface DeviceState { exists: boolean; up: boolean; running: boolean; operstate: string }

/** A network device's state from /sys/class/net (IFF_UP, IFF_RUNNING, operstate). */
export function deviceState(dev: string): DeviceState {
  const base = `/sys/class/net/${dev}`;
  if (dev.includes('/') || !fs.existsSync(base)) return { exists: false, up: false, running: false, operstate: '' };
  let flags = 0;
  let operstate = '';
  let carrier = '';
  try { flags = parseInt(fs.readFileSync(`${base}/flags`, 'latin1').trim(), 16); } catch { /* unreadable */ }
  try { operstate = fs.readFileSync(`${base}/operstate`, 'latin1').trim(); } catch { /* unreadable */ }
  // `carrier` cannot be read while the device is down (EINVAL); sysfs flags carry IFF_UP only.
  try { carrier = fs.readFileSync(`${base}/carrier`, 'latin1').trim(); } catch { /* down */ }
  const up = (flags & 0x1) !== 0;
  return { exists: true, up, running: up && (carrier === '1' || operstate === 'up' || operstate === 'unknown'), operstate };
}

export function deviceNames(): string[] {
  try { return fs.readdirSync('/sys/class/net').sort(); } catch { return []; }
}

/** Inodes of the TCP sockets listening on `port` (from /proc/net/tcp and tcp6). */
export function listeningInodes(port: number, texts?: string[]): number[] {
  const out: number[] = [];
  const sources = texts ?? ['/proc/net/tcp', '/proc/net/tcp6'].map((f) => { try { return fs.readFileSync(f, 'latin1'); } catch { return ''; } });
  for (const t of sources) {
    for (const line of t.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      const local = f[1].split(':');
      if (parseInt(local[local.length - 1], 16) === port) out.push(Number(f[9]));
    }
  }
  return out;
}

/** The process holding a socket inode: its pid and command line, or null when not found. */
export function socketOwner(inode: number): { pid: number; cmdline: string } | null {
  const want = `socket:[${inode}]`;
  let pids: string[] = [];
  try { pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)); } catch { return null; }
  for (const pid of pids) {
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      let link = '';
      try { link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
      if (link === want) {
        let cmdline = '';
        try { cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' '); } catch { /* gone */ }
        return { pid: Number(pid), cmdline };
      }
    }
  }
  return null;
}
