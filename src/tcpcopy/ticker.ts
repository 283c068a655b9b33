import type { Engine } from './engine';

/**
 * The engine's clock and timers in a live run: one timer for the engine's earliest deadline
 * (none while it has none), and the sweep about once a second. Each tick reads the clock
 * once and passes the time in; the engine itself never reads a clock.
 */
export class EngineTicker {
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAtMs = Infinity;
  private stopped = false;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly onWake = (): void => {
    this.wakeTimer = null;
    this.wakeAtMs = Infinity;
    this.engine.poll(Date.now());
    const next = this.engine.nextPollMs();
    if (next !== Infinity) this.wakeAt(next);
  };

  constructor(private readonly engine: Engine) {
    engine.onPollAt = (at) => this.wakeAt(at);
    this.sweepTimer = setInterval(() => engine.sweep(Date.now()), 1000);
  }

  private wakeAt(atMs: number): void {
    if (this.stopped || atMs >= this.wakeAtMs) return;
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer);
    this.wakeAtMs = atMs;
    this.wakeTimer = setTimeout(this.onWake, Math.max(0, atMs - Date.now()));
  }

  stop(): void {
    this.stopped = true;
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    clearInterval(this.sweepTimer);
  }
}
