import { spawn } from 'node:child_process';

const CHILD_ENV = 'TCPCOPY_DAEMON_CHILD';

/** True in the detached child that `-d` started. */
export function isDaemonChild(): boolean {
  return process.env[CHILD_ENV] === '1';
}

/**
 * `-d`: Node cannot fork, so the parent re-spawns this program detached (new session, stdio
 * to /dev/null, an IPC channel to hear back), waits until the child says it is running (or
 * failed, with its message), then exits with the matching status.
 */
export function daemonize(programName: string, timeoutMs = 30000): Promise<never> {
  return new Promise(() => {
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      env: { ...process.env, [CHILD_ENV]: '1' },
    });
    const timer = setTimeout(() => {
      process.stderr.write(`${programName}: the daemon did not report readiness within ${timeoutMs / 1000} s\n`);
      process.exit(1);
    }, timeoutMs);
    child.on('message', (m: unknown) => {
      const msg = m as { ready?: boolean; error?: string };
      clearTimeout(timer);
      if (msg.ready) {
        process.stdout.write(`${programName}: running in the background, pid ${child.pid}\n`);
        process.exit(0);
      }
      process.stderr.write(`${programName}: ${msg.error ?? 'daemon failed to start'}\n`);
      process.exit(1);
    });
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      process.stderr.write(`${programName}: the daemon exited during start-up (${sig ?? `code ${code}`})\n`);
      process.exit(1);
    });
  });
}

/** In the daemon child: tell the waiting parent how start-up went, then drop the channel. */
export function reportToParent(result: { ready: true } | { error: string }): void {
  if (!isDaemonChild() || !process.send) return;
  process.send(result, () => {
    try { process.disconnect(); } catch { /* gone */ }
  });
}
