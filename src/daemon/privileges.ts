import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { DaemonError } from '../errors';

export interface UserIds {
  name: string;
  uid: number;
  gid: number;
}

/** The project's root (…/dist/src/daemon → …): what a running daemon may still load. */
const PROGRAM_ROOT = path.resolve(__dirname, '../../..');

/**
 * `--user NAME`, checked before anything starts: the user must exist, we must be root, and
 * the user must be able to read the program (a later module load, a SIGHUP reopen, the
 * re-spawn of `-d` would fail otherwise, long after start-up).
 */
export function resolveUser(user: string): UserIds {
  if (typeof process.setuid !== 'function' || typeof process.setgid !== 'function') {
    throw new DaemonError('user', '--user is not supported on this platform');
  }
  if (process.getuid && process.getuid() !== 0) {
    throw new DaemonError('user', `--user ${user} needs to start as root; without root, grant capabilities instead (see docs/usage.md)`);
  }
  const id = (flag: string): number => Number(execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  let uid: number, gid: number;
  try {
    uid = id('-u');
    gid = id('-g');
  } catch {
    throw new DaemonError('no-such-user', `--user: no such user '${user}'; create it (useradd -r ${user}) or name an existing one`);
  }
  return { name: user, uid, gid };
}

/**
 * Runs a tiny node as the user and checks that it can traverse and read what the daemon is
 * made of: node itself, the launcher, the compiled program and its packages. Returns null, or
 * one line with the first path it cannot reach and the fix. (A warning, not a refusal: what
 * is loaded at start-up keeps working; a later load, a re-exec, a reload would not.)
 */
export function checkProgramReadable(u: UserIds, mainScript = process.argv[1] ?? ''): string | null {
  const paths = [mainScript, path.join(PROGRAM_ROOT, 'package.json'), __filename,
    path.join(PROGRAM_ROOT, 'node_modules', 'pino', 'package.json')].filter((p) => p && fs.existsSync(p));
  const script = `const fs=require('fs'),p=require('path');for(const f of process.argv.slice(1)){let d=p.dirname(f);const up=[];` +
    `while(true){up.unshift(d);const n=p.dirname(d);if(n===d)break;d=n;}` +
    `for(const x of up){try{fs.accessSync(x,fs.constants.X_OK)}catch{console.log(x);process.exit(3)}}` +
    `try{fs.accessSync(f,fs.constants.R_OK)}catch{console.log(f);process.exit(3)}}`;
  const r = spawnSync(process.execPath, ['-e', script, ...paths], { uid: u.uid, gid: u.gid, encoding: 'utf8', timeout: 10_000, cwd: '/' });
  const where = `install the program where ${u.name} can read it (e.g. /opt/tcpcopy, as in the README's quick start), or run without --user`;
  if (r.error) return `--user ${u.name} cannot run ${process.execPath} (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}): ${where}`;
  if (r.status === 3) return `--user ${u.name} cannot read ${r.stdout.trim()}: files loaded after start-up, a restart with -d and a log reopen would fail; ${where}`;
  if (r.status !== 0) return `--user ${u.name} cannot run node (${(r.stderr || `exit ${r.status}`).trim().split('\n')[0]}): ${where}`;
  return null;
}

/**
 * After the raw sockets, captures and listening sockets are open, switch to the unprivileged
 * user. Open descriptors keep working; nothing new needing root is opened later. The log
 * file is handed to the user first, so that SIGHUP can reopen it.
 */
export function dropPrivileges(u: UserIds, logFile?: string): void {
  if (logFile) {
    try { fs.chownSync(logFile, u.uid, u.gid); } catch { /* not ours to change: reopen may fail later, said then */ }
  }
  process.setgroups?.([u.gid]);
  process.setgid!(u.gid);
  process.setuid!(u.uid);
}
