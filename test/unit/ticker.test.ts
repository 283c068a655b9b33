import { test, mock } from 'node:test';
import assert from 'node:assert/strict';

import type { Engine } from '../../src/tcpcopy/engine';
import { EngineTicker } from '../../src/tcpcopy/ticker';

/**
 * A stand-in for the engine's timer side: a sorted list of deadlines. `poll` runs (removes) the
 * due ones and records when it ran each.
 */
class FakeEngine {
  onPollAt: ((atMs: number) => void) | null = null;
  deadlines: number[] = [];
  ran: { due: number; at: number }[] = [];
  polls = 0;
  sweeps = 0;
  add(due: number): void {
    this.deadlines.push(due);
    this.deadlines.sort((a, b) => a - b);
    if (this.deadlines[0] === due) this.onPollAt?.(due);
  }
  poll(nowMs: number): void {
    this.polls++;
    while (this.deadlines.length && this.deadlines[0] <= nowMs) this.ran.push({ due: this.deadlines.shift()!, at: nowMs });
  }
  nextPollMs(): number { return this.deadlines.length ? this.deadlines[0] : Infinity; }
  sweep(): void { this.sweeps++; }
}

function setup(): { eng: FakeEngine; ticker: EngineTicker; done: () => void } {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
  const eng = new FakeEngine();
  const ticker = new EngineTicker(eng as unknown as Engine);
  return { eng, ticker, done: () => { ticker.stop(); mock.timers.reset(); } };
}

test('idle: the timer fires at each deadline, not before', () => {
  const { eng, ticker, done } = setup();
  try {
    const t0 = Date.now();
    eng.add(t0 + 30);
    eng.add(t0 + 45);
    mock.timers.tick(29);
    assert.equal(eng.ran.length, 0);
    mock.timers.tick(1);
    assert.deepEqual(eng.ran, [{ due: t0 + 30, at: t0 + 30 }]);
    mock.timers.tick(15);
    assert.deepEqual(eng.ran.map((r) => r.at - r.due), [0, 0]);
    assert.equal(ticker.timerWakeups, 2);
  } finally { done(); }
});

test('while batches flow, they run the deadlines and the timer fires at most every 10 ms', () => {
  const { eng, ticker, done } = setup();
  try {
    const t0 = Date.now();
    // One batch a millisecond for 200 ms, each filing a deadline 2 ms ahead (a busy engine).
    for (let ms = 0; ms < 200; ms++) {
      ticker.pollIfDue(Date.now());
      eng.add(Date.now() + 2);
      mock.timers.tick(1);
    }
    // Every deadline ran, none more than 1 ms late (the next batch ran it).
    assert.ok(eng.ran.length >= 197, `ran ${eng.ran.length}`);
    for (const r of eng.ran) assert.ok(r.at - r.due <= 1, `deadline ${r.due - t0} ran at ${r.at - t0}`);
    // The timer woke the process at most once per 10 ms, not once per deadline.
    assert.ok(ticker.timerWakeups <= 21, `timer wake-ups ${ticker.timerWakeups}`);
  } finally { done(); }
});

test('when the batches stop, a pending deadline runs within the 10 ms backstop', () => {
  const { eng, ticker, done } = setup();
  try {
    const t0 = Date.now();
    ticker.pollIfDue(t0);
    eng.add(t0 + 3);
    mock.timers.tick(9);
    assert.equal(eng.ran.length, 0, 'the backstop waits for a batch first');
    mock.timers.tick(1);
    assert.deepEqual(eng.ran, [{ due: t0 + 3, at: t0 + 10 }]);
    // Idle from now on: the next deadline is exact.
    mock.timers.tick(30);
    eng.add(Date.now() + 5);
    mock.timers.tick(5);
    assert.equal(eng.ran.length, 2);
    assert.equal(eng.ran[1].at, eng.ran[1].due);
  } finally { done(); }
});

test('a later deadline does not move an armed timer; an early fire re-arms for the deadline', () => {
  const { eng, ticker, done } = setup();
  try {
    const t0 = Date.now();
    eng.add(t0 + 20);
    // The deadline moves later (the engine ran nothing and now wants t0 + 50).
    eng.deadlines = [t0 + 50];
    mock.timers.tick(20);
    assert.equal(eng.ran.length, 0);
    assert.equal(ticker.timerWakeups, 1);
    mock.timers.tick(30);
    assert.deepEqual(eng.ran, [{ due: t0 + 50, at: t0 + 50 }]);
  } finally { done(); }
});
