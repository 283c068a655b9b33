/**
 * A hashed timer wheel for many sessions: each owner has at most one pending deadline
 * (`timerDue`, ms); re-arming only writes the field and, if earlier, files the owner in
 * another slot. Stale slot entries are skipped when visited. No allocation per arm or per
 * visit beyond the slot arrays' growth (a visited slot's array is swapped with a spare one),
 * no closure per timer. The wheel reads no clock: the owner passes the time in.
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
  /** An empty array that replaces a slot's while that slot is visited. */
  private spare: T[] = [];
  private readonly mask: number;
  private cursor: number; // next tick (ms / resolution) to visit
  /** The earliest slot time the owner of the wheel has been asked to wake for. */
  private wakeAtMs = Infinity;

  /**
   * `wake(ms)` is called when a deadline earlier than any pending wake-up is filed, so the
   * owner can run `advance` then (one timer for the whole wheel, none while it is empty).
   */
  constructor(private readonly resolutionMs: number, slotsPow2: number, nowMs: number,
    private readonly wake: (atMs: number) => void = () => {}) {
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
    const at = tick * this.resolutionMs;
    if (at < this.wakeAtMs) {
      this.wakeAtMs = at;
      this.wake(at);
    }
  }

  /**
   * The time of the first non-empty slot from now on (a wake-up candidate; its entries may be
   * stale or of a later round), or Infinity when the wheel is empty. Also records it as the
   * pending wake-up.
   */
  nextWakeMs(): number {
    for (let tick = this.cursor, end = this.cursor + this.mask; tick <= end; tick++) {
      if (this.slots[tick & this.mask].length !== 0) {
        this.wakeAtMs = tick * this.resolutionMs;
        return this.wakeAtMs;
      }
    }
    this.wakeAtMs = Infinity;
    return Infinity;
  }

  /** Visits every slot up to now and fires due owners. */
  advance(nowMs: number): void {
    const end = Math.floor(nowMs / this.resolutionMs);
    if (end < this.cursor) return;
    this.wakeAtMs = Infinity; // arms made while visiting ask for a new wake-up
    // Every tick is visited, even after a stall longer than the wheel: an owner armed from
    // a callback for a tick whose slot was passed already is then still reached in this pass.
    for (let tick = this.cursor; tick <= end; tick++) {
      this.cursor = tick + 1; // arms made while visiting land on later ticks
      const idx = tick & this.mask;
      const slot = this.slots[idx];
      if (slot.length === 0) continue;
      // The slot gets the spare array: owners filed while visiting (a later round, or armed
      // from a callback) go there, and the visited array becomes the next spare.
      const items = slot;
      this.slots[idx] = this.spare;
      this.spare = items;
      for (let i = 0; i < items.length; i++) {
        const o = items[i];
        const f = o.timerFiled;
        if (f === 0 || (f & this.mask) !== idx) continue; // stale: filed elsewhere since
        if (f > end) { this.slots[idx].push(o); continue; } // a later round of this slot
        o.timerFiled = 0;
        if (o.timerDue === 0) continue;
        if (o.timerDue <= nowMs) {
          o.timerDue = 0;
          o.onTimer(nowMs);
        } else {
          this.arm(o, o.timerDue);
        }
      }
      items.length = 0;
    }
    this.cursor = end + 1;
  }
}
