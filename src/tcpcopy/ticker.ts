import type { Engine } from './engine';

/**
 * The engine's clock and timers in a live run: one timer for the engine's earliest deadline
 * (none while it has none), and the sweep about once a second. Each tick reads the clock
 * once and passes the time in; the engine itself never reads a clock.
 *
 * While traffic flows, deadlines ride on its wake-ups: the end of each batch of captured
 * packets or of replies calls `pollIfDue` with the time already read for the batch, and the
 * timer fires only when no batch came first (an idle process). Without that, thousands of
 * sessions' deadlines wake the process hundreds of times a second on their own.
 */
export class EngineTicker {
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAtMs = Infinity;
  private stopped = false;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly onWake = (): void => {
    this.wakeTimer = null;
    this.run(Date.now());
  };

  constructor(private readonly engine: Engine) {
    engine.onPollAt = (at) => this.wakeAt(at);
    this.sweepTimer = setInterval(() => engine.sweep(Date.now()), 1000);
  }

  /** Runs the engine's due deadlines if the earliest is due by `nowMs` (a batch's time). */
  pollIfDue(nowMs: number): void {
    if (nowMs < this.wakeAtMs || this.stopped) return;
    if (this.wakeTimer !== null) { clearTimeout(this.wakeTimer); this.wakeTimer = null; }
    this.run(nowMs);
  }

  private run(nowMs: number): void {
    this.wakeAtMs = Infinity;
    this.engine.poll(nowMs);
    const next = this.engine.nextPollMs();
    if (next !== Infinity) this.wakeAt(next, nowMs);
  }

  private wakeAt(atMs: number, nowMs = Date.now()): void {
    if (this.stopped || atMs >= this.wakeAtMs) return;
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer);
    this.wakeAtMs = atMs;
    this.wakeTimer = setTimeout(this.onWake, Math.max(0, atMs - nowMs));
  }

  stop(): void {
    this.stopped = true;
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    clearInterval(this.sweepTimer);
  }
}
