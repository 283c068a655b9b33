/**
 * The code being measured and the machine it runs on: a snapshot of dist/ (so that a rebuild
 * during the bench changes nothing), git commit, versions of Node, nginx, wrk and the kernel.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BIN, ROOT, waitFor } from '../lab/daemons';
import { CLK_TCK } from './sampler';
/** Newest modification time (ms) of any file under a directory. */
function newestMtime(dir: string): number {
  let newest = 0;
  let entries: fs.Dirent[] = [];
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return 0; }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else { try { newest = Math.max(newest, fs.statSync(p).mtimeMs); } catch { /* gone */ } }
  }
  return newest;
}

/**
 * Copies the daemons' compiled code (dist/src, bin) into the work directory and points the
 * harness's BIN at the copy, so that every run measures the same build even if dist/ is
 * rebuilt while the bench runs. Waits (bounded) until dist/src has not changed for 3 s.
 * Returns a short hash of the copied JavaScript.
 */
export async function snapshotCode(workDir: string): Promise<SnapshotInfo> {
  const src = path.join(ROOT, 'dist', 'src');
  await waitFor(() => Date.now() - newestMtime(src) > 3000, 60_000, 500);
  const snap = path.join(workDir, 'code');
  const builtAt = new Date(newestMtime(src)).toISOString();
  fs.cpSync(src, path.join(snap, 'dist', 'src'), { recursive: true, preserveTimestamps: true });
  fs.cpSync(path.join(ROOT, 'bin'), path.join(snap, 'bin'), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(snap, 'node_modules'), 'dir');
  const h = createHash('sha1');
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) h.update(e.name).update(fs.readFileSync(p));
    }
  };
  walk(path.join(snap, 'dist', 'src'));
  BIN.tcpcopy = path.join(snap, 'bin', 'tcpcopy');
  BIN.intercept = path.join(snap, 'bin', 'intercept');
  return { hash: h.digest('hex').slice(0, 12), builtAt, dir: snap };
}

export interface SnapshotInfo { hash: string; builtAt: string; dir: string }

/** Set when the daemons run from a snapshot of dist/. */
export const snapshot: { info?: SnapshotInfo } = {};

export function distMtime(): string {
  try { return fs.statSync(path.join(ROOT, 'dist/src/tcpcopy/engine.js')).mtime.toISOString(); } catch { return ''; }
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  memoryGB: number;
  node: string;
  kernel: string;
  os: string;
  nginx: string;
  wrk: string;
  clockTicks: number;
  /** The code measured: git HEAD, uncommitted changes under src/, when dist/ was built. */
  code: { commit: string; srcChanges: number; distBuiltAt: string; snapshot?: { hash: string; builtAt: string } };
}

export function machineInfo(): Machine {
  const cmd = (c: string, a: string[]): string => {
    try { return execFileSync(c, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(); } catch (e) {
      const err = e as { stderr?: string; stdout?: string };
      return `${err.stdout ?? ''}${err.stderr ?? ''}`.trim();
    }
  };
  let osName = os.type();
  try { osName = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName; } catch { /* keep */ }
  return {
    nproc: Number(cmd('nproc', [])) || os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '',
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: os.release(),
    os: osName,
    nginx: cmd('sh', ['-c', 'nginx -v 2>&1']).replace(/^nginx version:\s*/, ''),
    wrk: (cmd('wrk', ['--version']).split('\n')[0] ?? '').replace(/\s+Copyright.*$/, ''),
    clockTicks: CLK_TCK,
    code: {
      commit: cmd('git', ['-C', ROOT, 'rev-parse', '--short=12', 'HEAD']),
      srcChanges: cmd('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length,
      distBuiltAt: distMtime(),
    },
  };
}
