import { test } from 'node:test';
import assert from 'node:assert/strict';

import { RouteTable, HeldReplies, RouteOwner, RouteTableOptions, clientHash } from '../../src/intercept/route-table';

class Owner implements RouteOwner {
  closed = false;
  constructor(readonly id: number) {}
}

const C1 = 0x0a000005; // 10.0.0.5
const C2 = 0x0a000006;
const T1 = 0xc0a80002; // 192.168.0.2
const T2 = 0xc0a80003;

function table(o: Partial<RouteTableOptions> = {}): RouteTable<Owner> {
  return new RouteTable<Owner>({ maxRoutes: 1000, idleTimeoutMs: 60_000, ignoreTargetIp: false, ...o });
}

test('clients whose hashes collide keep their own routes', () => {
  // Find two client addresses filed under the same hash (birthday search over 2^31 values).
  const seen = new Map<number, [number, number]>();
  let pair: [[number, number], [number, number]] | null = null;
  for (let i = 0; pair === null && i < 1_000_000; i++) {
    const cip = (0xc6120000 + (i >>> 8)) >>> 0; // 198.18.x.y
    const cport = 1024 + ((i * 7919) & 0xffff) % 64512;
    const h = clientHash(cip, cport);
    assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 31, 'a 31-bit hash');
    const other = seen.get(h);
    if (other !== undefined && (other[0] !== cip || other[1] !== cport)) pair = [other, [cip, cport]];
    else seen.set(h, [cip, cport]);
  }
  assert.ok(pair !== null, 'a colliding pair exists');
  const [[ip1, p1], [ip2, p2]] = pair;
  const rt = table();
  const a = new Owner(1), b = new Owner(2);
  rt.add(ip1, p1, T1, 8080, a, 0);
  assert.equal(rt.lookup(ip2, p2, T1, 8080, 1), null, 'the other client has no route yet');
  rt.add(ip2, p2, T1, 8080, b, 0);
  assert.equal(rt.size, 2);
  assert.equal(rt.lookup(ip1, p1, T1, 8080, 1), a);
  assert.equal(rt.lookup(ip2, p2, T1, 8080, 1), b);
  // One of them goes: the other stays.
  a.closed = true;
  assert.equal(rt.lookup(ip1, p1, T1, 8080, 2), null);
  assert.equal(rt.lookup(ip2, p2, T1, 8080, 2), b);
  assert.equal(rt.size, 1);
});

test('20,000 clients: each reply finds its own route, and none of another client', () => {
  const rt = table({ maxRoutes: 100_000 });
  const owners = Array.from({ length: 7 }, (_, i) => new Owner(i));
  const n = 20_000;
  for (let i = 0; i < n; i++) rt.add((0xc6120000 + (i % 97)) >>> 0, 1024 + i, T1, 80, owners[i % 7], 0);
  assert.equal(rt.size, n);
  for (let i = 0; i < n; i++) {
    assert.equal(rt.lookup((0xc6120000 + (i % 97)) >>> 0, 1024 + i, T1, 80, 1), owners[i % 7]);
    assert.equal(rt.lookup((0xc6120000 + ((i + 1) % 97)) >>> 0, 1024 + i, T1, 80, 1), null);
  }
});

test('add/lookup on exact 4-tuples; two targets of one client are distinct routes', () => {
  const rt = table();
  const a = new Owner(1), b = new Owner(2);
  rt.add(C1, 40000, T1, 8080, a, 0);
  rt.add(C1, 40000, T2, 8080, b, 0);
  assert.equal(rt.size, 2);
  assert.equal(rt.lookup(C1, 40000, T1, 8080, 1), a);
  assert.equal(rt.lookup(C1, 40000, T2, 8080, 1), b);
  assert.equal(rt.lookup(C1, 40000, T1, 8081, 1), null, 'other target port');
  assert.equal(rt.lookup(C1, 40001, T1, 8080, 1), null, 'other client port');
  assert.equal(rt.lookup(C2, 40000, T1, 8080, 1), null, 'other client ip');
  assert.equal(rt.lookup(C1, 40000, 0xc0a80004, 8080, 1), null, 'other target ip');
  assert.equal(rt.hits, 2);
  assert.equal(rt.misses, 4);
  assert.equal(rt.added, 2);
  // Same target port on two client ports.
  rt.add(C1, 40001, T1, 8080, b, 0);
  assert.equal(rt.lookup(C1, 40001, T1, 8080, 2), b);
  assert.equal(rt.lookup(C1, 40000, T1, 8080, 2), a);
  assert.equal(rt.size, 3);
  // Extreme values.
  rt.add(0xffffffff, 65535, 0xffffffff, 65535, a, 0);
  rt.add(0, 0, 0, 0, b, 0);
  assert.equal(rt.lookup(0xffffffff, 65535, 0xffffffff, 65535, 3), a);
  assert.equal(rt.lookup(0, 0, 0, 0, 3), b);
});

test('ignoreTargetIp: any target address with the same port matches', () => {
  const rt = table({ ignoreTargetIp: true });
  const a = new Owner(1), b = new Owner(2);
  rt.add(C1, 40000, T1, 8080, a, 0);
  assert.equal(rt.lookup(C1, 40000, T1, 8080, 1), a);
  assert.equal(rt.lookup(C1, 40000, T2, 8080, 1), a);
  assert.equal(rt.lookup(C1, 40000, 0x01010101, 8080, 1), a);
  assert.equal(rt.lookup(C1, 40000, T1, 8443, 1), null, 'port still matters');
  // A second add for another address but the same port re-points the same route.
  rt.add(C1, 40000, T2, 8080, b, 2);
  assert.equal(rt.size, 1);
  assert.equal(rt.lookup(C1, 40000, T1, 8080, 3), b);
  // Another port is another route.
  rt.add(C1, 40000, T1, 8443, a, 4);
  assert.equal(rt.size, 2);
  assert.equal(rt.lookup(C1, 40000, T2, 8443, 5), a);
  assert.equal(rt.lookup(C1, 40000, T2, 8080, 5), b);
});

test('re-adding a route re-points it to the new owner', () => {
  const rt = table();
  const a = new Owner(1), b = new Owner(2);
  rt.add(C1, 40000, T1, 8080, a, 0);
  rt.add(C1, 40000, T1, 8080, b, 10);
  assert.equal(rt.size, 1);
  assert.equal(rt.refreshed, 1);
  assert.equal(rt.added, 1);
  assert.equal(rt.lookup(C1, 40000, T1, 8080, 11), b);
  // Re-pointing the second route of a chain leaves the first alone.
  rt.add(C1, 40000, T2, 8080, a, 12);
  rt.add(C1, 40000, T1, 8080, a, 13);
  rt.add(C1, 40000, T2, 8080, b, 14);
  assert.equal(rt.lookup(C1, 40000, T1, 8080, 15), a);
  assert.equal(rt.lookup(C1, 40000, T2, 8080, 15), b);
  assert.equal(rt.size, 2);
});

test('lookup of a route whose owner is closed returns null and removes it', () => {
  const rt = table();
  const a = new Owner(1), b = new Owner(2);
  rt.add(C1, 40000, T1, 8080, a, 0);
  rt.add(C1, 40000, T2, 8080, b, 0);
  rt.add(C2, 40000, T1, 8080, a, 0);
  a.closed = true;
  assert.equal(rt.lookup(C1, 40000, T1, 8080, 1), null);
  assert.equal(rt.size, 2);
  a.closed = false; // even if the flag flipped back, the route is gone
  assert.equal(rt.lookup(C1, 40000, T1, 8080, 2), null);
  assert.equal(rt.lookup(C1, 40000, T2, 8080, 2), b, 'the sibling route survives');
  assert.equal(rt.lookup(C2, 40000, T1, 8080, 2), a);
  // Closed owner as the older route of a chain (not the head).
  const rt2 = table();
  rt2.add(C1, 1, T1, 80, a, 0);
  rt2.add(C1, 1, T2, 80, b, 0);
  b.closed = true;
  assert.equal(rt2.lookup(C1, 1, T2, 80, 1), null);
  assert.equal(rt2.size, 1);
  assert.equal(rt2.lookup(C1, 1, T1, 80, 1), a);
  // A new add for the same tuple works again.
  const c = new Owner(3);
  rt2.add(C1, 1, T2, 80, c, 2);
  assert.equal(rt2.lookup(C1, 1, T2, 80, 3), c);
  assert.equal(rt2.size, 2);
});

test('maxRoutes evicts the least recently added; re-adding refreshes the order', () => {
  const rt = table({ maxRoutes: 3 });
  const o = new Owner(1);
  rt.add(C1, 1, T1, 80, o, 0);
  rt.add(C1, 2, T1, 80, o, 1);
  rt.add(C1, 3, T1, 80, o, 2);
  rt.add(C1, 4, T1, 80, o, 3);
  assert.equal(rt.size, 3);
  assert.equal(rt.evicted, 1);
  assert.equal(rt.lookup(C1, 1, T1, 80, 4), null, 'oldest evicted');
  for (const p of [2, 3, 4]) assert.equal(rt.lookup(C1, p, T1, 80, 4), o);
  // Re-add 2: now 3 is the oldest.
  rt.add(C1, 2, T1, 80, o, 5);
  rt.add(C1, 5, T1, 80, o, 6);
  assert.equal(rt.lookup(C1, 3, T1, 80, 7), null);
  for (const p of [2, 4, 5]) assert.equal(rt.lookup(C1, p, T1, 80, 7), o, `port ${p}`);
  // Lookups do not refresh the eviction order (it is by add).
  rt.lookup(C1, 4, T1, 80, 8);
  rt.add(C1, 6, T1, 80, o, 9);
  assert.equal(rt.lookup(C1, 4, T1, 80, 10), null);
  assert.equal(rt.size, 3);
  assert.equal(rt.evicted, 3);
  // Many adds never exceed the bound.
  for (let p = 100; p < 400; p++) { rt.add(C2, p, T1, 80, o, p); assert.ok(rt.size <= 3); }
  for (let p = 397; p < 400; p++) assert.equal(rt.lookup(C2, p, T1, 80, 500), o);
});

test('maxRoutes eviction is by route: the older target of a multi-target client goes first', () => {
  const a = new Owner(1);
  // The least recently added route is the older target of a client whose newer target
  //     was added after another client's route.
  const rt = table({ maxRoutes: 2 });
  rt.add(C1, 1, T1, 80, a, 0); // oldest
  rt.add(C2, 1, T1, 80, a, 1);
  rt.add(C1, 1, T2, 80, a, 2); // third route: the oldest (C1→T1) must go
  assert.equal(rt.size, 2);
  assert.equal(rt.lookup(C1, 1, T2, 80, 3), a, 'newest kept');
  assert.equal(rt.lookup(C2, 1, T1, 80, 3), a, 'second newest kept');
  assert.equal(rt.lookup(C1, 1, T1, 80, 3), null, 'oldest evicted');
});

test('maxRoutes eviction is by route: re-adding one target of a client makes its sibling older', () => {
  const a = new Owner(1);
  // Re-adding the older target of a chain makes its sibling the oldest.
  const rt2 = table({ maxRoutes: 2 });
  rt2.add(C1, 1, T1, 80, a, 0);
  rt2.add(C1, 1, T2, 80, a, 1);
  rt2.add(C1, 1, T1, 80, a, 2); // refresh: C1→T2 is now the least recently added
  rt2.add(C2, 1, T1, 80, a, 3);
  assert.equal(rt2.size, 2);
  assert.equal(rt2.lookup(C2, 1, T1, 80, 4), a);
  assert.equal(rt2.lookup(C1, 1, T1, 80, 4), a, 'the refreshed route is kept');
  assert.equal(rt2.lookup(C1, 1, T2, 80, 4), null, 'its stale sibling is evicted');
});

test('sweep expires idle routes by time; lookups and re-adds keep them alive', () => {
  const rt = table({ idleTimeoutMs: 1000 });
  const a = new Owner(1), b = new Owner(2);
  rt.add(C1, 1, T1, 80, a, 10_000);
  rt.add(C1, 2, T1, 80, a, 10_000);
  rt.add(C1, 3, T1, 80, b, 10_000);
  rt.add(C1, 3, T2, 80, b, 10_000);
  assert.equal(rt.sweep(10_999), 0, 'nothing idle yet');
  assert.equal(rt.size, 4);
  assert.equal(rt.lookup(C1, 2, T1, 80, 10_500), a); // used at 10_500
  rt.add(C1, 3, T2, 80, b, 10_700); // re-added at 10_700
  assert.equal(rt.lookup(C1, 9, T1, 80, 10_800), null); // a miss refreshes nothing
  assert.equal(rt.sweep(11_001), 2, 'two routes idle for more than 1000 ms');
  assert.equal(rt.expired, 2);
  assert.equal(rt.size, 2);
  assert.equal(rt.lookup(C1, 1, T1, 80, 11_002), null);
  assert.equal(rt.lookup(C1, 3, T1, 80, 11_002), null);
  assert.equal(rt.sweep(11_499), 0);
  assert.equal(rt.lookup(C1, 3, T2, 80, 11_499), b);
  assert.equal(rt.sweep(11_600), 1, 'C1:2 (used at 10_500) expires');
  assert.equal(rt.lookup(C1, 2, T1, 80, 11_601), null);
  assert.equal(rt.lookup(C1, 3, T2, 80, 11_601), b);
  assert.equal(rt.sweep(100_000), 1);
  assert.equal(rt.size, 0);
  assert.equal([...rt.routes()].length, 0);
});

test('sweep also removes routes of closed owners', () => {
  const rt = table({ idleTimeoutMs: 1000 });
  const a = new Owner(1), b = new Owner(2);
  rt.add(C1, 1, T1, 80, a, 0);
  rt.add(C1, 1, T2, 80, b, 0);
  rt.add(C1, 2, T1, 80, a, 0);
  a.closed = true;
  assert.equal(rt.sweep(1), 2);
  assert.equal(rt.size, 1);
  assert.deepEqual([...rt.routes()].map((r) => r.owner.id), [2]);
  assert.equal(rt.lookup(C1, 1, T2, 80, 2), b);
});

test('dropOwner removes only that owner\'s routes; owners coexist', () => {
  const rt = table({ maxRoutes: 100_000 });
  const owners = [new Owner(1), new Owner(2), new Owner(3)];
  const expect = new Map<string, Owner>();
  let port = 1000;
  for (let i = 0; i < 300; i++) {
    const o = owners[i % 3];
    // Every third client port gets a second target owned by another owner.
    const p = port++;
    rt.add(C1, p, T1, 8080, o, i);
    expect.set(`${p}/${T1}`, o);
    if (i % 3 === 0) {
      const o2 = owners[(i + 1) % 3];
      rt.add(C1, p, T2, 8080, o2, i);
      expect.set(`${p}/${T2}`, o2);
    }
  }
  assert.equal(rt.size, expect.size);
  for (const [k, o] of expect) {
    const [p, t] = k.split('/').map(Number);
    assert.equal(rt.lookup(C1, p, t, 8080, 1000), o, k);
  }
  const owned = (o: Owner): number => [...expect.values()].filter((x) => x === o).length;
  const n2 = owned(owners[1]);
  assert.equal(rt.dropOwner(owners[1]), n2);
  assert.equal(rt.size, expect.size - n2);
  for (const [k, o] of expect) {
    const [p, t] = k.split('/').map(Number);
    assert.equal(rt.lookup(C1, p, t, 8080, 1001), o === owners[1] ? null : o, k);
  }
  assert.ok([...rt.routes()].every((r) => r.owner !== owners[1]));
  assert.equal(rt.dropOwner(owners[1]), 0);
  assert.equal(rt.dropOwner(new Owner(9)), 0);
  assert.equal(rt.dropOwner(owners[0]), owned(owners[0]));
  assert.equal(rt.size, owned(owners[2]));
  assert.ok([...rt.routes()].every((r) => r.owner === owners[2]));
});

// ---------------------------------------------------------------------------------------------
// HeldReplies.
// ---------------------------------------------------------------------------------------------

function rec(tag: number, size = 64): Buffer {
  const b = Buffer.alloc(size + 8, 0xee);
  b.fill(tag, 4, 4 + size);
  return b;
}

test('HeldReplies: hold/take keep order and copy the records', () => {
  const h = new HeldReplies(30_000, 100);
  const srcs = [rec(1), rec(2), rec(3)];
  for (const s of srcs) h.hold(C1, 40000, T1, 8080, s, 4, 64, 0);
  assert.equal(h.size, 3);
  srcs[0].fill(0x99); // the held copy is independent of the capture buffer
  const got = h.take(C1, 40000, T1, 8080, false);
  assert.ok(got);
  assert.equal(got.length, 3);
  got.forEach((b, i) => {
    assert.equal(b.length, 64);
    assert.ok(b.every((x) => x === i + 1), `record ${i} intact and in order`);
  });
  assert.equal(h.size, 0);
  assert.equal(h.held, 3);
  assert.equal(h.delivered, 3);
  assert.equal(h.take(C1, 40000, T1, 8080, false), null, 'taken once');
  assert.equal(h.take(C2, 1, T1, 1, false), null);
});

test('HeldReplies: the target must match unless ignoreTargetIp', () => {
  const h = new HeldReplies(30_000, 100);
  h.hold(C1, 40000, T1, 8080, rec(1), 4, 64, 0);
  assert.equal(h.take(C1, 40000, T2, 8080, false), null, 'other target ip');
  assert.equal(h.take(C1, 40000, T1, 8081, false), null, 'other target port');
  assert.equal(h.take(C1, 40000, T2, 8081, true), null, 'port matters with ignoreTargetIp');
  assert.equal(h.take(C1, 40001, T1, 8080, false), null, 'other client port');
  assert.equal(h.size, 1, 'failed takes keep the records');
  const got = h.take(C1, 40000, T2, 8080, true);
  assert.ok(got);
  assert.equal(got.length, 1);
  assert.equal(h.size, 0);
});

test('HeldReplies: per-client and total bounds count drops', () => {
  const h = new HeldReplies(30_000, 5, 2);
  for (let i = 0; i < 4; i++) h.hold(C1, 1, T1, 80, rec(i), 4, 64, 0);
  assert.equal(h.size, 2);
  assert.equal(h.dropped, 2);
  const got = h.take(C1, 1, T1, 80, false);
  assert.ok(got);
  assert.deepEqual(got.map((b) => b[0]), [0, 1], 'the first two kept');
  // Total bound across clients.
  for (let p = 0; p < 7; p++) h.hold(C2, p, T1, 80, rec(p), 4, 64, 0);
  assert.equal(h.size, 5);
  assert.equal(h.dropped, 4);
  assert.equal(h.take(C2, 5, T1, 80, false), null, 'dropped clients have nothing');
  assert.equal(h.take(C2, 6, T1, 80, false), null);
  assert.equal(h.take(C2, 4, T1, 80, false)?.length, 1);
  // Room again after a take.
  h.hold(C2, 6, T1, 80, rec(6), 4, 64, 0);
  assert.equal(h.size, 5);
  assert.equal(h.take(C2, 6, T1, 80, false)?.[0][0], 6);
});

test('HeldReplies: sweep expires entries after holdMs', () => {
  const h = new HeldReplies(1000, 100);
  h.hold(C1, 1, T1, 80, rec(1), 4, 64, 5000);
  h.hold(C1, 1, T1, 80, rec(2), 4, 64, 5500); // same entry: its clock started at 5000
  h.hold(C1, 2, T1, 80, rec(3), 4, 64, 5800);
  assert.equal(h.sweep(5999), 0);
  assert.equal(h.size, 3);
  assert.equal(h.sweep(6001), 2);
  assert.equal(h.expired, 2);
  assert.equal(h.size, 1);
  assert.equal(h.take(C1, 1, T1, 80, false), null);
  assert.equal(h.sweep(6799), 0);
  assert.equal(h.sweep(6801), 1);
  assert.equal(h.take(C1, 2, T1, 80, false), null);
  assert.equal(h.size, 0);
  assert.equal(h.expired, 3);
  assert.equal(h.delivered, 0);
});
