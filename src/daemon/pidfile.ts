import * as fs from 'node:fs';
import { DaemonError } from '../errors';
import { checkParentDir } from './paths';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Writes our PID to `path`. Refuses when the file names another live process; a stale file
 * (its process is gone) is replaced. Returns a function that removes the file if it is still ours.
 */
export function writePidfile(path: string): () => void {
  checkParentDir(path, '-P', 'pidfile');
  let existing = '';
  try { existing = fs.readFileSync(path, 'utf8').trim(); } catch { /* none */ }
  const other = Number(existing);
  if (existing && Number.isInteger(other) && other > 0 && other !== process.pid && alive(other)) {
    throw new DaemonError('pidfile', `pid file ${path} belongs to running process ${other}: stop it first, or choose another -P path`);
  }
  try {
    fs.writeFileSync(path, `${process.pid}\n`, { mode: 0o644 });
  } catch (e) {
    throw new DaemonError('pidfile', `cannot write pid file ${path}: ${(e as Error).message}; choose another -P path`);
  }
  return () => {
    try {
      if (fs.readFileSync(path, 'utf8').trim() === String(process.pid)) fs.unlinkSync(path);
    } catch { /* already gone */ }
  };
}
