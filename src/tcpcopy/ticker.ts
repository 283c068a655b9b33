import type { Engine } from './engine';

/** Batches within this long mean traffic flows (they serve deadlines themselves). */
const BUSY_MS = 20;
/** While traffic flows, the timer only backs the batches up: it fires at most this often. */
const BACKSTOP_MS = 10;

/**
 * The engine's clock and timers in a live run: one timer for the engine's earliest deadline
 * (none while it has none), and the sweep about once a second. Each tick reads the clock
 * once and passes the time in; the engine itself never reads a clock.
 *
 * While traffic flows, deadlines ride on its wake-ups: the end of each batch of captured
 * packets or of replies calls `pollIfDue` with the time already read for the batch. The timer
 * is then a backstop for when the batches stop: it is set no sooner than BACKSTOP_MS ahead and
 * never cleared for a later deadline (a timer that fires early re-arms). Idle, it fires at the
 * deadline. Without that, thousands of sessions' deadlines would set, clear and fire a timer
 * hundreds of times a second.
 */
export class EngineTicker {
  private wakeTimer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (Infinity: none armed). */
  private timerAtMs = Infinity;
  /** The engine's earliest deadline that is known (Infinity: none). */
  private wakeAtMs = Infinity;
  /** The time of the last batch. */
  private lastBatchMs = -Infinity;
  private stopped = false;
  private readonly sweepTimer: NodeJS.Timeout;
  /** Timer wake-ups (for the statistics). */
  timerWakeups = 0;
  private readonly onWake = (): void => {
    this.wakeTimer = null;
    this.timerAtMs = Infinity;
    this.timerWakeups++;
    const now = Date.now();
    if (now >= this.wakeAtMs) this.run(now);
    else if (this.wakeAtMs !== Infinity) this.wakeAt(this.wakeAtMs, now);
  };

  constructor(private readonly engine: Engine) {
    engine.onPollAt = (at) => this.wakeAt(at);
    this.sweepTimer = setInterval(() => engine.sweep(Date.now()), 1000);
  }

  /** Runs the engine's due deadlines if the earliest is due by `nowMs` (a batch's time). */
  pollIfDue(nowMs: number): void {
    this.lastBatchMs = nowMs;
    if (nowMs < this.wakeAtMs || this.stopped) return;
    this.run(nowMs);
  }

  private run(nowMs: number): void {
    this.wakeAtMs = Infinity;
    this.engine.poll(nowMs);
    const next = this.engine.nextPollMs();
    if (next !== Infinity) this.wakeAt(next, nowMs);
  }

  private wakeAt(atMs: number, nowMs = Date.now()): void {
    if (this.stopped) return;
    if (atMs < this.wakeAtMs) this.wakeAtMs = atMs;
    const fireAt = nowMs - this.lastBatchMs < BUSY_MS ? Math.max(atMs, nowMs + BACKSTOP_MS) : atMs;
    if (fireAt >= this.timerAtMs) return;
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer);
    this.timerAtMs = fireAt;
    this.wakeTimer = setTimeout(this.onWake, Math.max(0, fireAt - nowMs));
  }

  stop(): void {
    this.stopped = true;
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    clearInterval(this.sweepTimer);
  }
}
