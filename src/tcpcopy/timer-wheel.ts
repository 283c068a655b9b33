/**
 * A hashed timer wheel for many sessions: each owner has at most one pending deadline
 * (`timerDue`, ms); re-arming only writes the field and, if earlier, files the owner in
 * another slot. Stale slot entries are skipped when visited. No allocation per arm beyond
 * the slot arrays' growth, no closure per timer.
 */
export interface TimerOwner {
  /** Absolute deadline in ms, 0 when none. */
  timerDue: number;
  /** Slot time the owner is currently filed under, 0 when not filed. */
  timerFiled: number;
  onTimer(nowMs: number): void;
}

export class TimerWheel<T extends TimerOwner> {
  private readonly slots: T[][];
  private readonly mask: number;
  private cursor: number; // next tick (ms / resolution) to visit
  constructor(private readonly resolutionMs = 2, slotsPow2 = 4096, nowMs = Date.now()) {
    this.slots = Array.from({ length: slotsPow2 }, () => [] as T[]);
    this.mask = slotsPow2 - 1;
    this.cursor = Math.floor(nowMs / resolutionMs);
  }

  /** Sets the owner's deadline (earlier or later); 0 cancels. */
  arm(o: T, dueMs: number): void {
    o.timerDue = dueMs;
    if (dueMs === 0) return;
    const tick = Math.max(Math.ceil(dueMs / this.resolutionMs), this.cursor);
    // Already filed at or before this tick: the visit re-files it if the deadline moved later.
    if (o.timerFiled !== 0 && o.timerFiled <= tick) return;
    o.timerFiled = tick;
    this.slots[tick & this.mask].push(o);
  }

  /** Visits every slot up to now and fires due owners. */
  advance(nowMs: number): void {
    const end = Math.floor(nowMs / this.resolutionMs);
    if (end < this.cursor) return;
    // Every tick is visited, even after a stall longer than the wheel: an owner armed from
    // a callback for a tick whose slot was passed already is then still reached in this pass.
    for (let tick = this.cursor; tick <= end; tick++) {
      this.cursor = tick + 1; // arms made while visiting land on later ticks
      const idx = tick & this.mask;
      const slot = this.slots[idx];
      if (slot.length === 0) continue;
      const items = slot.splice(0, slot.length);
      for (let i = 0; i < items.length; i++) {
        const o = items[i];
        const f = o.timerFiled;
        if (f === 0 || (f & this.mask) !== idx) continue; // stale: filed elsewhere since
        if (f > end) { slot.push(o); continue; } // a later round of this slot
        o.timerFiled = 0;
        if (o.timerDue === 0) continue;
        if (o.timerDue <= nowMs) {
          o.timerDue = 0;
          o.onTimer(nowMs);
        } else {
          this.arm(o, o.timerDue);
        }
      }
    }
    this.cursor = end + 1;
  }
}
