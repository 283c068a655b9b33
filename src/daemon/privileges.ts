import { execFileSync } from 'node:child_process';

/**
 * `--user`: after the raw sockets, captures and listening sockets are open, switch to an
 * unprivileged user. Open descriptors keep working; nothing new needing root is opened later.
 */
export function dropPrivileges(user: string): void {
  if (typeof process.setuid !== 'function' || typeof process.setgid !== 'function') {
    throw new Error('--user is not supported on this platform');
  }
  if (process.getuid && process.getuid() !== 0) {
    throw new Error(`--user ${user} needs to start as root; without root, grant capabilities instead (see docs/usage.md)`);
  }
  let gid: number;
  try {
    gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  } catch {
    throw new Error(`--user: no such user '${user}'; create it (useradd -r ${user}) or name an existing one`);
  }
  process.setgroups?.([gid]);
  process.setgid(gid);
  process.setuid(user);
}
