import type { Seg, Session } from '../session';

/**
 * A protocol module: what the session engine asks at the few points where a protocol must
 * deviate from plain TCP replay (the original's `--set-protocol-module`, chosen here at run
 * time with `--module`). Plain replay is no module at all (`null`): the engine then never calls
 * one, and the hook sites cost one null check of `Session.proto` on paths where a hook could
 * apply.
 *
 * A module keeps its per-session state in `Session.proto` and sets it back to null when it has
 * nothing more to do for the session (the MySQL module: once the session has authenticated),
 * so the rest of that session is plain replay.
 */
export interface ProtocolModule {
  readonly name: string;
  /**
   * Only sessions whose start was captured can be replayed (the login must be seen): no
   * session from a packet without SYN (one already running when tcpcopy started), and a
   * session the target closes with requests left is not renewed on a new connection.
   */
  readonly wholeSessionsOnly: boolean;
  /** A session started from a captured SYN: set `s.proto` (or leave it null: plain replay). */
  sessionStarted(s: Session): void;
  /**
   * New response data from the target while `s.proto` is set, starting at `b[off]`, `end`
   * the end of what the reply record holds of it (at most 128 bytes). Returns SEND to go on, or
   * a skip reason.
   */
  onResponse(s: Session, b: Buffer, off: number, end: number): string;
  /**
   * A kept payload packet is about to be sent for the first time while `s.proto` is set. The
   * module may rewrite its payload in place (same length; it then clears `seg.csumOk`).
   * Returns SEND, HOLD (wait for the target: the engine tries again when a reply arrives), or
   * a skip reason (the session is ended and the rest of its connection dropped).
   */
  beforeSend(s: Session, seg: Seg): string;
  /** The module's own counters, for the summary. */
  counters(): Record<string, number>;
}

export const SEND = '';
export const HOLD = 'hold';
