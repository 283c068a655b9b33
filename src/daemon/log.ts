import pino from 'pino';
import type { Logger } from 'pino';
import { DaemonError, UsageError } from '../errors';
import { checkParentDir } from './paths';
import { prettyStream } from './log-pretty';

export type { Logger };

/** pino's levels, in the order --log-level lists them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The level to use: --log-level, else $TCPCOPY_LOG_LEVEL, else info; a bad value is named. */
export function resolveLogLevel(flag: string | undefined): string {
  const level = flag ?? (process.env.TCPCOPY_LOG_LEVEL || 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    const from = flag !== undefined ? '--log-level' : 'TCPCOPY_LOG_LEVEL';
    throw new UsageError(`${from} '${level}' is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
  }
  return level;
}

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
  /** The log file, or undefined when the log goes to stderr. */
  readonly file: string | undefined;
  /** Re-opens the log file (SIGHUP, for logrotate). */
  reopen(): void;
  /** Writes out what is buffered; call before exit. */
  flush(): void;
}

/**
 * pino JSON logs to a file or to stderr. The file destination is asynchronous (sonic-boom),
 * so logging never blocks the packet path; `flush` is called on exit. The file is open when
 * this resolves (a start-up failure right after can still be written to it), and its
 * directory must exist: a mistyped -l path is refused, not created.
 */
export async function createLog(opts: LogOptions): Promise<LogHandle> {
  const level = resolveLogLevel(opts.level);
  if (opts.file) checkParentDir(opts.file, '-l', 'log-file');
  const dest = pino.destination({ dest: opts.file ?? 2, sync: !opts.file });
  if (opts.file) {
    await new Promise<void>((resolve, reject) => {
      dest.once('ready', () => resolve());
      dest.once('error', (e: Error) => reject(new DaemonError('log-file', `cannot open log file ${opts.file}: ${e.message}; choose another with -l`)));
    });
  }
  const logger = pino({
    name: opts.name,
    level,
    base: { name: opts.name, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, opts.format === 'pretty' ? prettyStream(dest, !!opts.color) : dest);
  return {
    logger,
    file: opts.file,
    reopen: () => { if (opts.file) dest.reopen(); },
    flush: () => { try { dest.flushSync(); } catch { /* closed */ } },
  };
}
