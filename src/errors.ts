/**
 * The one error type of the project (undici's style): every failure that reaches a user is a
 * `TcpcopyError` with a stable, typed `code` and a one-line `message` that says what to do.
 * The CLI prints both (`tcpcopy: <message> [<code>]`) and logs both; nothing else is shown.
 *
 * This is a leaf module: it imports nothing, so `wire/` and `control/` may use it and still
 * import nothing else of the project. The families below are the subclasses' codes.
 */

/** A flag or its value is wrong (parsing and validation in cli/). */
export type UsageErrorCode = 'bad-flag' | 'missing-flag';

/** Capture sources, send sinks and sockets (io/, and the daemons that open them). */
export type IoErrorCode =
  | 'bad-bind' | 'bad-capture-file' | 'bad-filter' | 'channel-format' | 'link-type' | 'listen' | 'no-device' | 'no-intercept'
  | 'no-libpcap' | 'no-mac' | 'no-neighbour' | 'no-permission' | 'no-raw-socket' | 'pcap-open' | 'port-in-use'
  | 'raw-socket' | 'no-native' | 'no-tpacket-v3' | 'native-io' | 'no-ipv6-capture';

/** Pid file, log file, user switch and other process matters (daemon/). */
export type DaemonErrorCode = 'pidfile' | 'log-file' | 'no-such-user' | 'user';

/** The control channel (control/): a connection that produced one is dropped, alone. */
export type ControlErrorCode = 'bad-count' | 'client-too-old' | 'bad-record' | 'stream-ended-mid-record' | 'auth-failed';

/** Capture files (wire/pcap.ts). */
export type PcapErrorCode =
  | 'open-failed' | 'bad-block' | 'bad-interface' | 'bad-magic' | 'bad-record-length' | 'bad-version'
  | 'read-failed' | 'truncated-header' | 'truncated-record';

export type ErrorCode = UsageErrorCode | IoErrorCode | DaemonErrorCode | ControlErrorCode | PcapErrorCode;

export class TcpcopyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A wrong flag: the message names the flag and shows the right form. */
export class UsageError extends TcpcopyError {
  declare readonly code: UsageErrorCode;
  constructor(message: string, code: UsageErrorCode = 'bad-flag') { super(code, message); }
}

/** A process matter: pid file, log file, --user. */
export class DaemonError extends TcpcopyError {
  declare readonly code: DaemonErrorCode;
  constructor(code: DaemonErrorCode, message: string) { super(code, message); }
}

/** The message of any thrown value, and its code when it is one of ours. */
export function describeError(e: unknown): { message: string; code: ErrorCode | undefined } {
  if (e instanceof TcpcopyError) return { message: e.message, code: e.code };
  if (e instanceof Error) return { message: e.message, code: undefined };
  return { message: String(e), code: undefined };
}
