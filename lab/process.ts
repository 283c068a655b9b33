/** Commands and processes for the lab: synchronous runs with clear errors, PID checks, namespaces. */
import { spawnSync } from 'node:child_process';

export interface ExecOptions {
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string;
}

/** Thrown when a command fails; the message carries the command line and its stderr. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly status: number | null,
    readonly signal: string | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    const how = signal ? `killed by ${signal}` : `exit status ${status}`;
    const err = stderr.trim() || stdout.trim();
    super(`command failed (${how}): ${argv.map(quote).join(' ')}${err ? `\n${err}` : ''}`);
    this.name = 'CommandError';
  }
}

export function quote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs a command synchronously; returns stdout; throws CommandError on failure. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): string {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
    killSignal: 'SIGKILL',
    input: opts.input,
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (r.error) {
    throw new CommandError([cmd, ...args], null, null, r.stdout ?? '', `${r.stderr ?? ''}${r.error.message}`);
  }
  if (r.status !== 0) throw new CommandError([cmd, ...args], r.status, r.signal, r.stdout, r.stderr);
  return r.stdout;
}

/** True while a process with this PID exists (EPERM counts: it exists, owned by another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Lists network namespaces (names only). */
export function listNetns(): string[] {
  return run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n) => n.length > 0);
}

