/**
 * Which tcpcopy connection owns the replies to a client address: filled by CLIENT_ADD, read
 * for every captured reply. Matched on the exact 4-tuple (the original's lossy 32-bit key let
 * sessions steal each other's replies), bounded in size, and idle entries expire.
 *
 * The Map is keyed by a 31-bit hash of the client address and port (a small integer: a key of
 * `ip * 65536 + port` is above 2^31 and boxed as a heap number on every access); the routes
 * of one hash are chained, each compared on its whole 4-tuple.
 */

import { addrPortHash } from '../wire/addr-hash';

/** What a route points at: a tcpcopy control connection. */
export interface RouteOwner {
  readonly id: number;
  readonly closed: boolean;
}

export class Route<T extends RouteOwner> {
  constructor(
    /** The hash this route is filed under. */
    public bucket: number,
    public clientIp: number,
    public clientPort: number,
    public targetIp: number,
    public targetPort: number,
    public owner: T,
    public lastUsedMs: number,
    /** Other routes of the same hash (other targets, or other clients hashing alike). */
    public next: Route<T> | null,
  ) {}
  /** Neighbours in the table's add order (least recently added first). */
  older: Route<T> | null = null;
  newer: Route<T> | null = null;
}

export interface RouteTableOptions {
  /** Most routes kept; the least recently added is evicted beyond it. */
  maxRoutes: number;
  /** A route unused (no add, no reply) for this long is removed. */
  idleTimeoutMs: number;
  /** `--dnat`: ignore the target address (replies may come from another address). */
  ignoreTargetIp: boolean;
}

/**
 * Holders of address keys (IPv6 routes: keys of an Ipv6AddrTable, see src/wire/addr6-table):
 * a route holds its client and target keys while it is in the table.
 */
export interface AddressKeys {
  acquire(key: number): void;
  release(key: number): void;
}

/** The hash routes are filed under: of the client address and port. */
export const clientHash = addrPortHash;

export class RouteTable<T extends RouteOwner> {
  private readonly map = new Map<number, Route<T>>();
  private count = 0;
  added = 0;
  refreshed = 0;
  evicted = 0;
  expired = 0;
  hits = 0;
  misses = 0;

  /** `keys`: for a table of IPv6 routes, whose addresses are interned keys (null: IPv4 addresses). */
  constructor(readonly opts: RouteTableOptions, private readonly keys: AddressKeys | null = null) {}

  get size(): number { return this.count; }

  private matches(r: Route<T>, clientIp: number, clientPort: number, targetIp: number, targetPort: number): boolean {
    return r.clientPort === clientPort && r.targetPort === targetPort && r.clientIp === clientIp &&
      (this.opts.ignoreTargetIp || r.targetIp === targetIp);
  }

  /** Least and most recently added routes (eviction takes the least recent). */
  private oldest: Route<T> | null = null;
  private newest: Route<T> | null = null;

  private lruRemove(r: Route<T>): void {
    if (r.older) r.older.newer = r.newer; else this.oldest = r.newer;
    if (r.newer) r.newer.older = r.older; else this.newest = r.older;
    r.older = r.newer = null;
  }

  private lruAppend(r: Route<T>): void {
    r.older = this.newest;
    r.newer = null;
    if (this.newest) this.newest.newer = r; else this.oldest = r;
    this.newest = r;
  }

  /** CLIENT_ADD: insert or re-point the route. */
  add(clientIp: number, clientPort: number, targetIp: number, targetPort: number, owner: T, nowMs: number): void {
    const k = this.keys;
    const key = clientHash(clientIp, clientPort);
    const head = this.map.get(key);
    for (let r: Route<T> | null = head ?? null; r; r = r.next) {
      if (this.matches(r, clientIp, clientPort, targetIp, targetPort)) {
        r.owner = owner;
        if (k !== null && r.targetIp !== targetIp) { k.acquire(targetIp); k.release(r.targetIp); }
        r.targetIp = targetIp;
        r.lastUsedMs = nowMs;
        this.refreshed++;
        this.lruRemove(r);
        this.lruAppend(r);
        return;
      }
    }
    const r = new Route(key, clientIp, clientPort, targetIp, targetPort, owner, nowMs, head ?? null);
    if (k !== null) { k.acquire(clientIp); k.acquire(targetIp); }
    this.map.set(key, r);
    this.lruAppend(r);
    this.count++;
    this.added++;
    while (this.count > this.opts.maxRoutes) this.evictOldest();
  }

  /** The owner for a reply from target to client, or null. Refreshes the route's idle clock. */
  lookup(clientIp: number, clientPort: number, targetIp: number, targetPort: number, nowMs: number): T | null {
    const key = clientHash(clientIp, clientPort);
    let prev: Route<T> | null = null;
    for (let r = this.map.get(key) ?? null; r; prev = r, r = r.next) {
      if (!this.matches(r, clientIp, clientPort, targetIp, targetPort)) continue;
      if (r.owner.closed) {
        // Its tcpcopy connection is gone: the route dies with it (the original kept routes
        // to closed descriptors, which later pointed at unrelated connections).
        this.unlink(key, prev, r);
        break;
      }
      r.lastUsedMs = nowMs;
      this.hits++;
      return r.owner;
    }
    this.misses++;
    return null;
  }

  private unlink(key: number, prev: Route<T> | null, r: Route<T>): void {
    this.lruRemove(r);
    if (prev) prev.next = r.next;
    else if (r.next) this.map.set(key, r.next);
    else this.map.delete(key);
    this.count--;
    if (this.keys !== null) { this.keys.release(r.clientIp); this.keys.release(r.targetIp); }
  }

  private evictOldest(): void {
    const victim = this.oldest;
    if (victim === null) return;
    let prev: Route<T> | null = null;
    for (let r = this.map.get(victim.bucket) ?? null; r && r !== victim; r = r.next) prev = r;
    this.unlink(victim.bucket, prev, victim);
    this.evicted++;
  }

  /** Removes idle routes and routes of closed connections. Returns how many went. */
  sweep(nowMs: number): number {
    const limit = nowMs - this.opts.idleTimeoutMs;
    let removed = 0;
    for (const [key, head] of this.map) {
      let prev: Route<T> | null = null;
      for (let r: Route<T> | null = head; r;) {
        const next: Route<T> | null = r.next;
        if (r.lastUsedMs < limit || r.owner.closed) {
          this.unlink(key, prev, r);
          removed++;
        } else {
          prev = r;
        }
        r = next;
      }
    }
    this.expired += removed;
    return removed;
  }

  /** Removes every route of one owner (its connection closed). */
  dropOwner(owner: T): number {
    let removed = 0;
    for (const [key, head] of this.map) {
      let prev: Route<T> | null = null;
      for (let r: Route<T> | null = head; r;) {
        const next: Route<T> | null = r.next;
        if (r.owner === owner) { this.unlink(key, prev, r); removed++; } else prev = r;
        r = next;
      }
    }
    return removed;
  }

  /** Owners of every route, for tests and statistics. */
  *routes(): IterableIterator<Route<T>> {
    for (const head of this.map.values()) for (let r: Route<T> | null = head; r; r = r.next) yield r;
  }
}

/**
 * Replies that arrive before their CLIENT_ADD (a SYN-ACK racing the add, or an RST): held
 * for a short time and delivered, in order, when the add arrives. Bounded in records.
 * IPv6 replies (before their CLIENT_ADD6) share the table and its bounds: their addresses are
 * keys of an Ipv6AddrTable (negative, so never equal to an IPv4 address), and with `keys` set
 * an entry holds its client and target keys until it is taken or expires.
 */
export class HeldReplies {
  // Keyed by the exact client address (ip * 65536 + port): one entry per client, on the rare
  // path of replies that came before their CLIENT_ADD.
  private readonly map = new Map<number, { records: Buffer[]; targetIp: number; targetPort: number; sinceMs: number }>();
  private total = 0;
  held = 0;
  delivered = 0;
  dropped = 0;
  expired = 0;

  constructor(readonly holdMs: number, readonly maxRecords: number, readonly perClientMax = 8,
    private readonly keys: AddressKeys | null = null) {}

  get size(): number { return this.total; }

  /** Copies the record and keeps it; false when a bound made it drop the record. */
  hold(clientIp: number, clientPort: number, targetIp: number, targetPort: number, rec: Buffer, off: number, size: number, nowMs: number): boolean {
    if (this.total >= this.maxRecords) { this.dropped++; return false; }
    const key = clientIp * 65536 + clientPort;
    let e = this.map.get(key);
    if (!e) {
      e = { records: [], targetIp, targetPort, sinceMs: nowMs };
      this.map.set(key, e);
      if (clientIp < 0 && this.keys !== null) { this.keys.acquire(clientIp); this.keys.acquire(targetIp); }
    }
    if (e.records.length >= this.perClientMax) { this.dropped++; return false; }
    e.records.push(Buffer.from(rec.subarray(off, off + size)));
    this.total++;
    this.held++;
    return true;
  }

  /** Takes the records held for this client (in arrival order), or null. */
  take(clientIp: number, clientPort: number, targetIp: number, targetPort: number, ignoreTargetIp: boolean): Buffer[] | null {
    const key = clientIp * 65536 + clientPort;
    const e = this.map.get(key);
    if (!e) return null;
    if (e.targetPort !== targetPort || (!ignoreTargetIp && e.targetIp !== targetIp)) return null;
    this.map.delete(key);
    this.releaseKeys(clientIp, e.targetIp);
    this.total -= e.records.length;
    this.delivered += e.records.length;
    return e.records;
  }

  sweep(nowMs: number): number {
    let n = 0;
    for (const [key, e] of this.map) {
      if (nowMs - e.sinceMs >= this.holdMs) {
        this.map.delete(key);
        if (key < 0) this.releaseKeys(Math.floor(key / 65536), e.targetIp);
        this.total -= e.records.length;
        n += e.records.length;
      }
    }
    this.expired += n;
    return n;
  }

  private releaseKeys(clientIp: number, targetIp: number): void {
    if (clientIp < 0 && this.keys !== null) { this.keys.release(clientIp); this.keys.release(targetIp); }
  }
}
