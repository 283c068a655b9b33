import { SEG_OVERHEAD } from './engine-options';
import { Session, SessState, seqGe } from './session';
import type { TcpcopyStats } from './stats';

/**
 * The backlog policy: how much memory the packets waiting to be replayed may take, all
 * sessions together, and what gives way when they take more. The engine charges every kept
 * packet here (its bytes and SEG_OVERHEAD) and asks:
 *
 * - after a captured packet, `trimTarget()`: when the backlog went over `--backlog-limit`, the
 *   sessions with the most kept bytes (the furthest behind the online server, `victims`) give
 *   way until it is down to 3/4 of the limit. Each first skips to its last queued request
 *   (`lastQueuedRequest`: the requests before it are lost, the session goes on); one with
 *   fewer than two queued requests is ended, and its connection's later packets are dropped
 *   until it can resume at a new request. Whole requests are lost, never part of one. The
 *   scan runs when the limit is crossed, not per packet.
 * - before a new session, `holdsNewSessions()`: from the time the backlog went over the limit
 *   until it is down to half of it, new sessions are refused, so that the sessions it holds
 *   finish instead of being cut for newcomers.
 */
export class BacklogGovernor {
  /** Bytes of kept packets of all sessions (SEG_OVERHEAD each included). */
  bytes = 0;
  /** The backlog went over its limit and has not been down to half of it since. */
  full = false;
  /** The backlog went over its limit during the current packet: trimmed at its end. */
  private overLimit = false;

  constructor(readonly limitBytes: number, private readonly stats: TcpcopyStats) {}

  /** Adds (or with a negative amount, releases) backlog bytes of a session. */
  charge(s: Session, bytes: number): void {
    s.keptBytes += bytes;
    const b = (this.bytes += bytes);
    if (bytes > 0) {
      if (b > this.stats.backlogPeakBytes) this.stats.backlogPeakBytes = b;
      if (this.limitBytes > 0 && b > this.limitBytes) this.overLimit = true;
    }
  }

  /** Releases what one kept packet of `len` bytes was charged. */
  release(s: Session, len: number): void {
    this.charge(s, -(len + SEG_OVERHEAD));
  }

  /**
   * True while new sessions are held back. Ends the hold (a state change) once the backlog is
   * down to half of the limit.
   */
  holdsNewSessions(): boolean {
    if (this.full && this.bytes * 2 <= this.limitBytes) this.full = false;
    return this.full;
  }

  /** True when the backlog went over the limit during the current packet. */
  get trimDue(): boolean { return this.overLimit; }

  /**
   * Starts a trim: the byte count to trim down to, or -1 when none is needed (any more).
   * From here new sessions are held until the backlog is down to half.
   */
  trimTarget(): number {
    this.overLimit = false;
    const limit = this.limitBytes;
    if (limit <= 0 || this.bytes <= limit) return -1;
    this.full = true;
    return limit - (limit >> 2);
  }

  /** The sessions that give way first: live ones with kept packets, most kept bytes first. */
  victims(sessions: Iterable<Session>): Session[] {
    const v: Session[] = [];
    for (const s of sessions) if (s.keptBytes > 0 && s.state !== SessState.Done) v.push(s);
    v.sort((a, b) => b.keptBytes - a.keptBytes);
    return v;
  }
}

/**
 * Index in `s.segs` of the first packet of the last request queued (data whose captured ack
 * differs from the packet before it: the online server answered in between), or -1 when
 * fewer than two requests are queued (nothing can be skipped).
 */
export function lastQueuedRequest(s: Session): number {
  const segs = s.segs;
  const from = s.nextIdx;
  let j = segs.length - 1;
  while (j > from && !(segs[j].len > 0 && segs[j].onlineAck !== segs[j - 1].onlineAck)) j--;
  return j <= from ? -1 : j;
}

/** Requests and payload bytes never sent among `s.segs[from, to)` (what a skip loses). */
export function unsentRequests(s: Session, from: number, to: number): { requests: number; bytes: number } {
  let requests = 0;
  let bytes = 0;
  let prevAck = -1;
  for (let k = from; k < to; k++) {
    const g = s.segs[k];
    // After a reconnect, packets below sndNxt went out on the connection before.
    if (!seqGe(g.seq, s.sndNxt)) continue;
    if (g.len > 0 && (requests === 0 || g.onlineAck !== prevAck)) requests++;
    prevAck = g.onlineAck;
    bytes += g.len;
  }
  return { requests, bytes };
}
