import pino from 'pino';
import type { Logger } from 'pino';
import { prettyStream } from './log-pretty';

export type { Logger };

export interface LogOptions {
  /** The program name, in every line as `name`. */
  name: string;
  /** Log file (`-l`); stderr when absent. */
  file?: string;
  level?: string;
  /** 'json' (pino's lines, the default) or 'pretty' (one readable line per record, see log-pretty). */
  format?: 'json' | 'pretty';
  /** With 'pretty': colour the level (a terminal). */
  color?: boolean;
}

export interface LogHandle {
  logger: Logger;
  /** Re-opens the log file (SIGHUP, for logrotate). */
  reopen(): void;
  /** Writes out what is buffered; call before exit. */
  flush(): void;
}

/**
 * pino JSON logs to a file or to stderr. The file destination is asynchronous (sonic-boom),
 * so logging never blocks the packet path; `flush` is called on exit.
 */
export function createLog(opts: LogOptions): LogHandle {
  const dest = pino.destination({ dest: opts.file ?? 2, sync: !opts.file, mkdir: !!opts.file });
  const logger = pino({
    name: opts.name,
    level: opts.level ?? process.env.TCPCOPY_LOG_LEVEL ?? 'info',
    base: { name: opts.name, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, opts.format === 'pretty' ? prettyStream(dest, !!opts.color) : dest);
  return {
    logger,
    reopen: () => { if (opts.file) dest.reopen(); },
    flush: () => { try { dest.flushSync(); } catch { /* not ready yet or closed */ } },
  };
}
