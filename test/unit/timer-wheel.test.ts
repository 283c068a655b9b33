import { test } from 'node:test';
import assert from 'node:assert/strict';

import { TimerWheel, TimerOwner } from '../../src/tcpcopy/timer-wheel';
import { mulberry32 } from './prng';

const rng = mulberry32;
const R = rng(0x71e3e);
const randInt = (lo: number, hi: number): number => lo + Math.floor(R() * (hi - lo + 1));

const RES = 2;
const SLOTS = 4096;
const SPAN = RES * SLOTS; // 8192 ms
const T0 = 1_000_000;

/** A fake session: records when it fired; `model` is the deadline the test expects. */
class Owner implements TimerOwner {
  timerDue = 0;
  timerFiled = 0;
  fired: number[] = [];
  model = 0;
  onFire: ((now: number) => void) | null = null;
  constructor(readonly id: number) {}
  onTimer(nowMs: number): void {
    assert.ok(this.model !== 0, `owner ${this.id} fired at ${nowMs} with no deadline pending`);
    assert.ok(this.model <= nowMs, `owner ${this.id} fired at ${nowMs} before its deadline ${this.model}`);
    assert.equal(this.timerDue, 0, 'no deadline pending while firing');
    this.model = 0;
    this.fired.push(nowMs);
    if (this.onFire) this.onFire(nowMs);
  }
}

function wheel(now = T0): TimerWheel<Owner> {
  return new TimerWheel<Owner>(RES, SLOTS, now);
}
function arm(w: TimerWheel<Owner>, o: Owner, due: number): void {
  o.model = due;
  w.arm(o, due);
}

test('owners fire once at or after their deadline, never before (1 ms steps)', () => {
  const w = wheel();
  const owners: Owner[] = [];
  for (let i = 0; i < 500; i++) {
    const o = new Owner(i);
    const due = T0 + randInt(1, 6000);
    arm(w, o, due);
    owners.push(o);
  }
  const dues = owners.map((o) => o.model);
  for (let now = T0; now <= T0 + 6100; now++) w.advance(now);
  owners.forEach((o, i) => {
    assert.equal(o.fired.length, 1, `owner ${i} fired once`);
    const t = o.fired[0];
    assert.ok(t >= dues[i], `owner ${i}: fired ${t} >= due ${dues[i]}`);
    assert.ok(t <= dues[i] + RES, `owner ${i}: fired ${t} within the resolution of ${dues[i]}`);
  });
});

test('random step sizes: fire by the first advance a resolution past the deadline', () => {
  const w = wheel();
  const owners: Owner[] = [];
  for (let i = 0; i < 300; i++) { const o = new Owner(i); arm(w, o, T0 + randInt(0, 20_000)); owners.push(o); }
  const dues = owners.map((o) => o.model);
  const times: number[] = [];
  for (let now = T0; now <= T0 + 21_000; now += randInt(RES, 40)) { w.advance(now); times.push(now); }
  owners.forEach((o, i) => {
    assert.equal(o.fired.length, 1, `owner ${i}`);
    const latest = times.find((t) => t >= dues[i] + RES);
    assert.ok(latest !== undefined);
    assert.ok(o.fired[0] >= dues[i] && o.fired[0] <= latest, `owner ${i}: fired ${o.fired[0]}, due ${dues[i]}, latest ${latest}`);
  });
});

test('re-arm earlier and later', () => {
  const w = wheel();
  const a = new Owner(1), b = new Owner(2), c = new Owner(3), d = new Owner(4);
  arm(w, a, T0 + 1000); arm(w, a, T0 + 500); // earlier
  arm(w, b, T0 + 500); arm(w, b, T0 + 3000); // later
  arm(w, c, T0 + 500); arm(w, c, T0 + 20_000); // later, beyond the wheel span
  arm(w, d, T0 + 20_000); arm(w, d, T0 + 700); arm(w, d, T0 + 300); arm(w, d, T0 + 900); // back and forth
  for (let now = T0; now <= T0 + 30_000; now += 1) w.advance(now);
  assert.deepEqual(a.fired, [T0 + 500]);
  assert.deepEqual(b.fired, [T0 + 3000]);
  assert.deepEqual(c.fired, [T0 + 20_000]);
  assert.deepEqual(d.fired, [T0 + 900]);
});

test('re-arm while pending, after partial progress', () => {
  const w = wheel();
  const a = new Owner(1), b = new Owner(2);
  arm(w, a, T0 + 1000);
  arm(w, b, T0 + 1000);
  for (let now = T0; now <= T0 + 400; now++) w.advance(now);
  arm(w, a, T0 + 450); // earlier than first planned, still in the future
  arm(w, b, T0 + 5000);
  for (let now = T0 + 401; now <= T0 + 6000; now++) w.advance(now);
  assert.deepEqual(a.fired, [T0 + 450]);
  assert.deepEqual(b.fired, [T0 + 5000]);
  // A deadline already past fires on the next advance that reaches a new tick.
  arm(w, a, T0 + 10);
  w.advance(T0 + 6002);
  assert.deepEqual(a.fired, [T0 + 450, T0 + 6002]);
});

test('cancel with 0', () => {
  const w = wheel();
  const a = new Owner(1), b = new Owner(2), c = new Owner(3);
  arm(w, a, T0 + 100); arm(w, a, 0);
  arm(w, b, T0 + 100); arm(w, b, 0); arm(w, b, T0 + 300); // cancelled, then re-armed later
  arm(w, c, T0 + 300); arm(w, c, 0); arm(w, c, T0 + 50); // cancelled, then re-armed earlier
  assert.equal(a.timerDue, 0);
  for (let now = T0; now <= T0 + 20_000; now += 1) w.advance(now);
  assert.deepEqual(a.fired, []);
  assert.deepEqual(b.fired, [T0 + 300]);
  assert.deepEqual(c.fired, [T0 + 50]);
  // Cancel after partial progress, beyond the span.
  const d = new Owner(4);
  arm(w, d, T0 + 40_000);
  for (let now = T0 + 20_001; now <= T0 + 30_000; now += 3) w.advance(now);
  arm(w, d, 0);
  for (let now = T0 + 30_001; now <= T0 + 50_000; now += 3) w.advance(now);
  assert.deepEqual(d.fired, []);
});

test('deadlines beyond the wheel span fire at the right time, not a rotation early or late', () => {
  const w = wheel();
  const offsets = [SPAN - 2, SPAN, SPAN + 1, SPAN + 2, SPAN + 3, Math.floor(SPAN * 1.5), 2 * SPAN, 3 * SPAN + 5, 5 * SPAN - 1, 7 * SPAN + 123];
  const owners = offsets.map((off, i) => { const o = new Owner(i); arm(w, o, T0 + off); return o; });
  for (let now = T0; now <= T0 + 8 * SPAN; now += 1) {
    w.advance(now);
  }
  owners.forEach((o, i) => {
    const due = T0 + offsets[i];
    assert.equal(o.fired.length, 1, `offset ${offsets[i]}`);
    assert.ok(o.fired[0] >= due && o.fired[0] <= due + RES, `offset ${offsets[i]}: fired ${o.fired[0] - T0}`);
  });
  // The same with coarse steps (each below the span).
  const w2 = wheel();
  const o2 = offsets.map((off, i) => { const o = new Owner(i); arm(w2, o, T0 + off); return o; });
  const step = 997;
  for (let now = T0; now <= T0 + 8 * SPAN + step; now += step) w2.advance(now);
  o2.forEach((o, i) => {
    const due = T0 + offsets[i];
    assert.equal(o.fired.length, 1);
    assert.ok(o.fired[0] >= due && o.fired[0] < due + RES + step, `coarse, offset ${offsets[i]}: fired ${o.fired[0] - T0}`);
  });
});

test('a stall (advance far ahead) fires everything due, and only that', () => {
  const w = wheel();
  const owners: Owner[] = [];
  for (let i = 0; i < 2000; i++) { const o = new Owner(i); arm(w, o, T0 + randInt(1, 5 * SPAN)); owners.push(o); }
  const dues = owners.map((o) => o.model);
  const stallTo = T0 + Math.floor(2.5 * SPAN); // even: a whole tick
  w.advance(T0 + 10);
  w.advance(stallTo);
  owners.forEach((o, i) => {
    if (dues[i] <= T0 + 10) return;
    if (dues[i] <= stallTo) assert.deepEqual(o.fired, [stallTo], `owner ${i} due ${dues[i] - T0} fired in the stall`);
    else assert.deepEqual(o.fired, [], `owner ${i} due ${dues[i] - T0} not yet`);
  });
  // Then normal progress: the rest fire on time.
  for (let now = stallTo + 1; now <= T0 + 5 * SPAN + 10; now++) w.advance(now);
  owners.forEach((o, i) => {
    assert.equal(o.fired.length, 1, `owner ${i}`);
    if (dues[i] > stallTo) assert.ok(o.fired[0] >= dues[i] && o.fired[0] <= dues[i] + RES);
  });
  // A second, longer stall with nothing but far deadlines.
  const far = new Owner(9999);
  const now0 = T0 + 5 * SPAN + 10;
  arm(w, far, now0 + 10 * SPAN);
  w.advance(now0 + 9 * SPAN);
  assert.deepEqual(far.fired, []);
  w.advance(now0 + 11 * SPAN);
  assert.deepEqual(far.fired, [now0 + 11 * SPAN]);
});

test('arming from inside onTimer: periodic self re-arm and arming others', () => {
  const w = wheel();
  const p = new Owner(1);
  p.onFire = (now) => { if (p.fired.length < 10) arm(w, p, now + 100); };
  arm(w, p, T0 + 100);
  const other = new Owner(2);
  const trigger = new Owner(3);
  trigger.onFire = (now) => arm(w, other, now + 50);
  arm(w, trigger, T0 + 333);
  for (let now = T0; now <= T0 + 2000; now++) w.advance(now);
  assert.equal(p.fired.length, 10);
  for (let i = 0; i < 10; i++) assert.equal(p.fired[i], T0 + 100 * (i + 1));
  assert.deepEqual(trigger.fired, [T0 + 334]);
  assert.deepEqual(other.fired, [T0 + 384]);
});

test('arming from inside onTimer for "now" does not loop and fires again later', () => {
  const w = wheel();
  const a = new Owner(1);
  let calls = 0;
  a.onFire = (now) => { calls++; if (calls < 5) arm(w, a, now); };
  arm(w, a, T0 + 10);
  w.advance(T0 + 10);
  assert.ok(calls >= 1 && calls <= 2, `fired ${calls} time(s) in one advance`);
  for (let now = T0 + 12; now <= T0 + 40; now += RES) w.advance(now);
  assert.equal(calls, 5);
});

test('arming from inside onTimer during a stall: a deadline already due fires by the next advance', () => {
  const w = wheel();
  const a = new Owner(1);
  const late = new Owner(2);
  const future = new Owner(3);
  const stallTo = T0 + 5 * SPAN / 2; // 20480 ms of stall
  // a fires in the middle of the stall pass and arms `late` for a deadline that is
  // already past (e.g. computed from an old timestamp), and `future` after the stall.
  a.onFire = (now) => {
    arm(w, late, now - 1000);
    arm(w, future, now + 50);
  };
  arm(w, a, T0 + 6000);
  w.advance(stallTo);
  assert.deepEqual(a.fired, [stallTo]);
  assert.deepEqual(future.fired, []);
  // `late` is overdue: it must fire now or on the next tick, not a wheel rotation later.
  w.advance(stallTo + RES);
  assert.equal(late.fired.length, 1, 'overdue timer armed in a stall fired by the next advance');
  for (let now = stallTo + RES; now <= stallTo + 100; now++) w.advance(now);
  assert.deepEqual(future.fired, [stallTo + 50]);
});

test('random arms, re-arms, cancels and stalls against a model', () => {
  const w = wheel();
  const owners = Array.from({ length: 400 }, (_, i) => new Owner(i));
  let now = T0;
  let fires = 0;
  for (const o of owners) {
    o.onFire = (t) => {
      fires++;
      // Re-arm from inside onTimer, sometimes, always for the future.
      if (R() < 0.3) arm(w, o, t + randInt(1, 3 * SPAN));
      if (R() < 0.1) { const x = owners[randInt(0, owners.length - 1)]; arm(w, x, t + randInt(1, 2 * SPAN)); }
    };
  }
  for (let step = 0; step < 3000; step++) {
    // Mutations from outside the wheel.
    for (let k = randInt(0, 5); k > 0; k--) {
      const o = owners[randInt(0, owners.length - 1)];
      const r = R();
      if (r < 0.1) arm(w, o, 0);
      else if (r < 0.2) arm(w, o, now - randInt(0, 100)); // already due
      else if (r < 0.8) arm(w, o, now + randInt(1, 2000));
      else arm(w, o, now + randInt(1, 4 * SPAN));
    }
    now += R() < 0.005 ? randInt(SPAN, 3 * SPAN) : randInt(RES, 60);
    w.advance(now);
    for (const o of owners) {
      if (o.model !== 0) assert.ok(o.model > now - RES, `step ${step}: owner ${o.id} overdue (due ${o.model - T0}, now ${now - T0})`);
      assert.equal(o.timerDue, o.model, 'wheel and model agree on the deadline');
    }
  }
  assert.ok(fires > 1000, `timers fired: ${fires}`);
});
