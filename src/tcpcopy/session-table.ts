import { addrPortHash as bucketOf } from '../wire/addr-hash';
import type { Session } from './session';

/** Which address of a session a table is keyed by. */
export const enum TableKey {
  /** The client address and port as sent to the target (replies find sessions by it). */
  Reply = 0,
  /** The captured client address and port (client packets find sessions by it). */
  Ingress = 1,
}

const MIN_BUCKETS = 1024;

/**
 * Sessions by an (IPv4 address, port) pair, without a Map: a key of `ip * 65536 + port` is
 * above 2^31 and is boxed as a heap number on every Map access. Here the pair is hashed into a
 * 31-bit bucket index (a small integer), and the sessions of a bucket are chained through a
 * field of the session itself, so a look-up allocates nothing. The table doubles when it holds
 * more sessions than buckets. The reply table also keeps its sessions in insertion order (for
 * the sweep and the backlog trim, which visit every session).
 */
export class SessionTable {
  private buckets: (Session | null)[];
  private mask: number;
  size = 0;
  /** Insertion order (reply table only). */
  first: Session | null = null;
  private last: Session | null = null;

  constructor(private readonly key: TableKey) {
    this.buckets = new Array<Session | null>(MIN_BUCKETS).fill(null);
    this.mask = MIN_BUCKETS - 1;
  }

  get(ip: number, port: number): Session | undefined {
    let s = this.buckets[bucketOf(ip, port) & this.mask];
    if (this.key === TableKey.Reply) {
      while (s !== null) {
        if (s.clientPort === port && s.clientIp === ip) return s;
        s = s.nextByReply;
      }
    } else {
      while (s !== null) {
        if (s.ingressPort === port && s.ingressIp === ip) return s;
        s = s.nextByIngress;
      }
    }
    return undefined;
  }

  holds(ip: number, port: number): boolean { return this.get(ip, port) !== undefined; }

  /** Files `s` under its key, replacing the session filed there before (if any). */
  add(s: Session): void {
    const ip = this.key === TableKey.Reply ? s.clientIp : s.ingressIp;
    const port = this.key === TableKey.Reply ? s.clientPort : s.ingressPort;
    const old = this.get(ip, port);
    if (old === s) return;
    if (old !== undefined) this.remove(old);
    if (this.size >= this.buckets.length) this.grow();
    const i = bucketOf(ip, port) & this.mask;
    if (this.key === TableKey.Reply) {
      s.nextByReply = this.buckets[i];
      s.prevInOrder = this.last;
      s.nextInOrder = null;
      if (this.last !== null) this.last.nextInOrder = s; else this.first = s;
      this.last = s;
    } else {
      s.nextByIngress = this.buckets[i];
    }
    this.buckets[i] = s;
    this.size++;
  }

  /** Removes the session filed under (ip, port), if any. */
  delete(ip: number, port: number): void {
    const s = this.get(ip, port);
    if (s !== undefined) this.remove(s);
  }

  /** Removes `s` if it is filed here. Its `nextInOrder` stays valid for a running iteration. */
  remove(s: Session): void {
    const reply = this.key === TableKey.Reply;
    const i = bucketOf(reply ? s.clientIp : s.ingressIp, reply ? s.clientPort : s.ingressPort) & this.mask;
    let p = this.buckets[i];
    let prev: Session | null = null;
    while (p !== null && p !== s) { prev = p; p = reply ? p.nextByReply : p.nextByIngress; }
    if (p === null) return;
    const next = reply ? s.nextByReply : s.nextByIngress;
    if (prev === null) this.buckets[i] = next;
    else if (reply) prev.nextByReply = next; else prev.nextByIngress = next;
    if (reply) {
      s.nextByReply = null;
      if (s.prevInOrder !== null) s.prevInOrder.nextInOrder = s.nextInOrder; else this.first = s.nextInOrder;
      if (s.nextInOrder !== null) s.nextInOrder.prevInOrder = s.prevInOrder; else this.last = s.prevInOrder;
      s.prevInOrder = null;
    } else {
      s.nextByIngress = null;
    }
    this.size--;
  }

  /** The sessions in insertion order (reply table; not for the packet path: it allocates). */
  *values(): IterableIterator<Session> {
    for (let s = this.first; s !== null;) {
      const next = s.nextInOrder;
      yield s;
      s = next;
    }
  }

  private grow(): void {
    const old = this.buckets;
    const n = old.length * 2;
    this.buckets = new Array<Session | null>(n).fill(null);
    this.mask = n - 1;
    const reply = this.key === TableKey.Reply;
    for (let i = 0; i < old.length; i++) {
      for (let s = old[i]; s !== null;) {
        const next = reply ? s.nextByReply : s.nextByIngress;
        const j = bucketOf(reply ? s.clientIp : s.ingressIp, reply ? s.clientPort : s.ingressPort) & this.mask;
        if (reply) s.nextByReply = this.buckets[j]; else s.nextByIngress = this.buckets[j];
        this.buckets[j] = s;
        s = next;
      }
    }
  }
}

