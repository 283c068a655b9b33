import * as v8 from 'node:v8';
import { Command, InvalidArgumentError } from 'commander';
import { createLog, LOG_LEVELS, LogHandle, resolveLogLevel } from '../daemon/log';
import { writePidfile } from '../daemon/pidfile';
import { daemonize, isDaemonChild, reportToParent } from '../daemon/daemonize';
import { checkProgramReadable, dropPrivileges, resolveUser, UserIds } from '../daemon/privileges';
import { describeError } from '../errors';
import { MetricsAddress, MetricsServer, parseMetricsAddress, startMetricsServer } from '../daemon/metrics';
import { formatReport, Report } from '../doctor/report';

export const VERSION = '0.1.0';

/** An integer option within [min, max]; the message says what to write instead. */
export function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} takes a whole number from ${min} to ${max}, e.g. ${name} ${Math.max(min, Math.min(max, 1))}`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be from ${min} to ${max} (got ${n})`);
    return n;
  };
}

/** Commander set-up shared by both programs: -h, -v, clear errors with suggestions. */
export function baseProgram(name: string, description: string): Command {
  const p = new Command(name);
  p.description(description)
    .version(`${name} ${VERSION} (control protocol version 6)`, '-v, --version', 'print the version and exit')
    .helpOption('-h, --help', 'print this help and exit')
    .showSuggestionAfterError(true)
    .showHelpAfterError(`(run '${name} -h' for every option)`)
    .allowExcessArguments(false)
    .configureOutput({ outputError: (str, write) => write(`${name}: ${str.replace(/^error: /, '')}`) });
  return p;
}

function logLevelOption(value: string): string {
  try {
    return resolveLogLevel(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^--log-level /, ''));
  }
}

/** Options every daemon takes. */
export function addDaemonOptions(p: Command): Command {
  return p
    .option('-d, --daemon', 'run in the background (a detached copy; the command returns once it runs)')
    .option('-P, --pidfile <file>', 'write the process id to this file (refused if a live process holds it)')
    .option('-l, --log <file>', 'log file (JSON lines); stderr when absent, /var/log/<name>.log with -d')
    .option('--log-level <level>', `${LOG_LEVELS.join(', ')} (default: $TCPCOPY_LOG_LEVEL or info)`, logLevelOption)
    .option('--stats-interval <seconds>', 'seconds between statistics lines', intOption('--stats-interval', 1, 86400), 30)
    .option('--user <name>', 'after opening sockets and captures, drop root to this user')
    .option('--log-format <format>', 'json or pretty (default: pretty on a terminal, json in files and pipes)', logFormatOption)
    .option('--metrics <[host:]port>', 'serve GET /metrics (Prometheus) and GET /stats (JSON) on this address; host defaults to 127.0.0.1', metricsOption);
}

function logFormatOption(value: string): 'json' | 'pretty' {
  if (value === 'json' || value === 'pretty') return value;
  throw new InvalidArgumentError(`--log-format takes json or pretty (got '${value}')`);
}

function metricsOption(value: string): MetricsAddress {
  try { return parseMetricsAddress(value); } catch (e) { throw new InvalidArgumentError((e as Error).message); }
}

export interface DaemonOptions {
  daemon?: boolean;
  pidfile?: string;
  log?: string;
  logLevel?: string;
  statsInterval: number;
  user?: string;
  logFormat?: 'json' | 'pretty';
  metrics?: MetricsAddress;
}

export interface RunningService {
  /** Counters for the periodic line and the summary. */
  snapshot(): Record<string, unknown>;
  /** Stops everything; resolves when done. */
  stop(reason: string): Promise<void>;
  /** Resolves when the service ends by itself (offline replay done, no intercept left...). */
  done?: Promise<{ code: number; reason: string }>;
}

/**
 * Runs a daemon: daemonize (-d), pid file (-P), pino log (-l), privilege drop (--user),
 * periodic statistics, SIGTERM/SIGINT stop, SIGHUP reopens the log, a summary at exit.
 * Everything that can be checked before the service starts is checked first (log level,
 * --user, the log file); `start` opens sockets and captures and throws a TcpcopyError with a
 * one-line message on failure, which goes to stderr and, with -l, to the log file too.
 */
export async function runDaemon(name: string, o: DaemonOptions,
  start: (log: LogHandle) => Promise<RunningService>): Promise<void> {
  if (o.daemon && !isDaemonChild()) {
    await daemonize(name);
    return;
  }
  const failEarly = (e: unknown): never => {
    const { message, code } = describeError(e);
    reportToParent({ error: withCode(message, code) });
    return fail(name, withCode(message, code));
  };
  // The young generation stays at its first size (2 MiB) instead of growing to 32 MiB under
  // a high allocation rate: ~12 MB less resident memory at moderate rates, same CPU (the
  // packet path's garbage dies young). Read by V8 at each growth decision, so setting it now
  // takes effect; tcpcopy lets it grow again while its backlog is large (Tcpcopy).
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  const logFile = o.log ?? (o.daemon ? `/var/log/${name}.log` : undefined);
  let user: UserIds | null = null;
  let unreadable: string | null = null;
  let log: LogHandle;
  try {
    if (o.user) {
      user = resolveUser(o.user);
      unreadable = checkProgramReadable(user);
    }
    const tty = !logFile && !!process.stderr.isTTY;
    log = await createLog({ name, file: logFile, level: o.logLevel, format: o.logFormat ?? (tty ? 'pretty' : 'json'), color: tty });
  } catch (e) {
    return failEarly(e);
  }
  if (unreadable) {
    process.stderr.write(`${name}: warning: ${unreadable}\n`);
    if (log.file) log.logger.warn(unreadable);
  }
  let removePid: (() => void) | null = null;
  let svc: RunningService;
  let metrics: MetricsServer | null = null;
  try {
    if (o.pidfile) removePid = writePidfile(o.pidfile);
    svc = await start(log);
    if (o.metrics) {
      const s = svc;
      metrics = await startMetricsServer(o.metrics, { daemon: name, version: VERSION, snapshot: () => s.snapshot() });
      log.logger.info({ metrics: `http://${metrics.address}/metrics`, stats: `http://${metrics.address}/stats` }, 'metrics endpoint listening');
    }
    if (user) dropPrivileges(user, logFile);
  } catch (e) {
    removePid?.();
    const { message, code } = describeError(e);
    // Logged as JSON only when the log is a file: on stderr the plain line below says it.
    if (logFile) { log.logger.fatal({ err: message, code }, 'start-up failed'); log.flush(); }
    reportToParent({ error: withCode(message, code) });
    fail(name, withCode(message, code));
  }
  reportToParent({ ready: true });
  const started = Date.now();
  const statsTimer = setInterval(() => log.logger.info({ stats: svc.snapshot() }, 'statistics'), o.statsInterval * 1000);
  statsTimer.unref();

  let stopping = false;
  const stop = async (reason: string, code: number) => {
    if (stopping) return;
    stopping = true;
    clearInterval(statsTimer);
    await metrics?.close();
    try {
      await svc.stop(reason);
    } catch (e) {
      log.logger.error({ err: (e as Error).message }, 'error while stopping');
    }
    const summary = { reason, runSeconds: Math.round((Date.now() - started) / 100) / 10, ...svc.snapshot() };
    log.logger.info({ summary }, 'summary');
    log.flush();
    removePid?.();
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop('SIGTERM', 0));
  process.on('SIGINT', () => void stop('SIGINT', 0));
  process.on('SIGHUP', () => { log.reopen(); log.logger.info('log file reopened'); });
  process.on('SIGPIPE', () => { /* a write to a reset socket is an error on that socket, not the end */ });
  process.on('uncaughtException', (e) => {
    log.logger.fatal({ err: e.message, stack: e.stack }, 'uncaught exception');
    void stop('uncaught exception', 70);
  });
  if (svc.done) {
    void svc.done.then(({ code, reason }) => stop(reason, code));
  }
}

/** Prints a doctor's report (lines, or one JSON object) and exits with its status. */
export function printReport(report: Report, json: boolean): void {
  const text = json ? `${JSON.stringify(report.toJSON())}\n` : formatReport(report);
  process.stdout.write(text, () => process.exit(report.exitCode));
}

/** `message [code]`: the line a user sees for one of our errors. */
export function withCode(message: string, code: string | undefined): string {
  return code ? `${message} [${code}]` : message;
}

export function fail(name: string, msg: string, code = 1): never {
  process.stderr.write(`${name}: ${msg}\n`);
  process.exit(code);
}
