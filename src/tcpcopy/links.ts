import * as net from 'node:net';
import type { Logger } from 'pino';
import { ReplySink, ReplyStreamDecoder } from '../control/codec';
import {
  AUTH_NONCE_SIZE, CLIENT_ADD6_SIZE, CLIENT_RECORD_SIZE, Capability, ChannelFormat, MsgType, OUR_CAPABILITIES, authConfirmation, authProof,
  formatCapabilities, formatMismatch, negotiatedCapabilities, writeAuthRecord, writeClientAdd6Record, writeClientRecord, writeVersionRecord,
} from '../control/records';
import { writeDirect } from '../io/direct-write';
import type { RouteRegistrar } from './engine';

export interface InterceptAddress {
  host: string;
  port: number;
}

/** Receives reply records and is told when a chunk of them has been handed over. */
export interface ReplyConsumer extends ReplySink {
  /** Called after each chunk from a control connection (ACKs are flushed there). */
  afterReplies(): void;
  /** A link (re)connected: routes of live sessions may need re-registering. */
  onLinkUp(link: InterceptLink, reconnected: boolean): void;
  /**
   * A connection's capability answer arrived (after it was up): with IPv6 accepted, the routes
   * of live IPv6 sessions can be registered on it (CLIENT_ADD6 needs the answer).
   */
  onLinkCapabilities?(link: InterceptLink, reconnected: boolean, capabilities: number): void;
}

/** How long `connect` waits for capability answers (see InterceptLinks.awaitCapabilities). */
const CAPABILITY_WAIT_MS = 300;

/** One control connection to one intercept. */
class ControlConnection {
  socket: net.Socket | null = null;
  up = false;
  private decoder: ReplyStreamDecoder;
  /** CLIENT_ADD records waiting for the end of this event-loop turn. */
  private pending: Buffer;
  private pendingLen = 0;
  private flushQueued = false;
  private readonly flush = (): void => this.flushPending();
  /** While the owner's batch is open its end writes (InterceptLinks.endBatch), not a nextTick. */
  private readonly batch: { open: boolean };
  everUp = false;
  attempts = 0;
  /** The read buffer that this connection's sockets reuse (`onread`). */
  private readonly readBuffer = Buffer.allocUnsafe(64 << 10);
  retryTimer: NodeJS.Timeout | null = null;
  /**
   * Capability bits intercept accepted on this connection; -1 until it answered (the original
   * intercept never does: it ignores our announcement).
   */
  capabilities = -1;
  /** The current connection is a reconnect (an earlier one was up). */
  private reconnected = false;
  private readonly onAnswer = (answered: number): void => {
    // intercept says its channel format too: a different one would decode as garbage.
    const why = formatMismatch(this.format, answered, 'intercept');
    if (why !== null) {
      this.link.formatMismatch(this, why);
      this.socket?.destroy();
      return;
    }
    const caps = negotiatedCapabilities(answered);
    this.link.formatError = '';
    this.capabilities = caps;
    // Two-slot IPv6 reply records may come from now on.
    this.decoder.ipv6 = (caps & Capability.Ipv6) !== 0;
    this.link.log.info({ intercept: this.link.name, conn: this.index, capabilities: caps }, 'intercept speaks the capability extension');
    this.link.onCapabilities(this, this.reconnected, caps);
  };

  constructor(readonly link: InterceptLink, readonly index: number, private readonly format: ChannelFormat, private readonly consumer: ReplyConsumer) {
    this.decoder = new ReplyStreamDecoder(format, consumer);
    this.batch = link.batch;
    this.pending = Buffer.allocUnsafe(CLIENT_RECORD_SIZE * 256);
  }

  connect(): Promise<boolean> {
    this.attempts++;
    return new Promise((resolve) => {
      // Bytes arrive in one reused buffer (`onread`: no Buffer and no stream events per read),
      // handed to this socket's own handler (a late read of a replaced socket goes nowhere).
      let onBytes: (chunk: Buffer, n: number) => void = () => {};
      const s = net.connect({ host: this.link.addr.host, port: this.link.addr.port, noDelay: true,
        onread: { buffer: this.readBuffer, callback: (n: number, buf: Buffer) => { onBytes(buf, n); return true; } } });
      this.socket = s;
      this.capabilities = -1;
      this.decoder = new ReplyStreamDecoder(this.format, this.consumer, this.onAnswer);
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        if (this.link.secret) this.link.log.warn({ intercept: this.link.name }, 'no challenge or confirmation from intercept within 3 s: is the same --secret set on both sides?');
        s.destroy();
        resolve(false);
      }, 3000);
      const secret = this.link.secret;
      // Handshake: the version record (and, with a shared secret, the answer to intercept's
      // challenge) — then the connection is up. With a secret the stream starts with a
      // preamble: intercept's nonce, then (after our proof) its confirmation, 16 bytes each.
      const pre = Buffer.alloc(secret ? 2 * AUTH_NONCE_SIZE : 0);
      const nonce = pre.subarray(0, AUTH_NONCE_SIZE);
      let preHave = 0;
      const sendHello = () => {
        const v = Buffer.alloc(CLIENT_RECORD_SIZE * (secret ? 2 : 1));
        // The version record announces our capabilities in bytes the original intercept ignores.
        writeVersionRecord(v, 0, undefined, OUR_CAPABILITIES | formatCapabilities(this.format));
        if (secret) writeAuthRecord(v, CLIENT_RECORD_SIZE, authProof(secret, nonce));
        s.write(v);
      };
      const handshake = () => {
        clearTimeout(timer);
        settled = true;
        const again = this.everUp;
        this.reconnected = again;
        this.up = true;
        this.everUp = true;
        this.attempts = 0;
        this.link.onConnectionUp(this, again);
        resolve(true);
      };
      s.once('connect', () => {
        if (!secret) { sendHello(); handshake(); }
      });
      onBytes = (chunk: Buffer, n: number): void => {
        if (this.socket !== s) return;
        let i = 0;
        if (preHave < pre.length) {
          const take = Math.min(pre.length - preHave, n);
          chunk.copy(pre, preHave, 0, take);
          const before = preHave;
          preHave += take;
          i = take;
          if (before < AUTH_NONCE_SIZE && preHave >= AUTH_NONCE_SIZE) sendHello();
          if (preHave === pre.length) {
            if (!pre.subarray(AUTH_NONCE_SIZE).equals(authConfirmation(secret, nonce))) {
              this.link.log.error({ intercept: this.link.name }, 'intercept did not confirm our shared secret');
              s.destroy();
              return;
            }
            handshake();
          }
          if (i === n) return;
        }
        const err = i === 0 ? this.decoder.push(chunk, n) : this.decoder.push(chunk.subarray(i, n));
        this.consumer.afterReplies();
        if (err) {
          this.link.log.warn({ intercept: this.link.name, conn: this.index, err: err.message, code: err.code }, 'bad data from intercept; reconnecting');
          s.destroy();
        }
      };
      s.on('error', (e) => {
        if (!settled) { settled = true; clearTimeout(timer); resolve(false); }
        this.link.log.debug({ intercept: this.link.name, err: e.message }, 'control connection error');
      });
      s.on('close', () => {
        if (!settled) { settled = true; clearTimeout(timer); resolve(false); }
        if (this.socket !== s) return;
        const wasUp = this.up;
        this.up = false;
        this.socket = null;
        this.pendingLen = 0;
        if (wasUp) this.link.onConnectionDown(this);
      });
    });
  }

  /** Queues a 14-byte record; written at the end of this turn with the others. */
  send(type: number, clientIp: number, clientPort: number, targetIp: number, targetPort: number): boolean {
    if (!this.up || this.socket === null) return false;
    if (this.pendingLen + CLIENT_RECORD_SIZE > this.pending.length) this.flushPending();
    writeClientRecord(this.pending, this.pendingLen, type, clientIp, clientPort, targetIp, targetPort);
    this.pendingLen += CLIENT_RECORD_SIZE;
    if (!this.flushQueued && !this.batch.open) { this.flushQueued = true; process.nextTick(this.flush); }
    return true;
  }

  /** Queues a CLIENT_ADD6 (46 bytes) when intercept accepted IPv6 on this connection. */
  send6(clientIp6: Buffer, clientPort: number, targetIp6: Buffer, targetPort: number): boolean {
    if (!this.up || this.socket === null || this.capabilities < 0 || (this.capabilities & Capability.Ipv6) === 0) return false;
    if (this.pendingLen + CLIENT_ADD6_SIZE > this.pending.length) this.flushPending();
    writeClientAdd6Record(this.pending, this.pendingLen, clientIp6, 0, clientPort, targetIp6, 0, targetPort);
    this.pendingLen += CLIENT_ADD6_SIZE;
    if (!this.flushQueued && !this.batch.open) { this.flushQueued = true; process.nextTick(this.flush); }
    return true;
  }

  /** Writes what waits (the end of the owner's batch). */
  flushIfPending(): void {
    if (this.pendingLen !== 0) this.flushPending();
  }

  private flushPending(): void {
    this.flushQueued = false;
    if (this.pendingLen === 0 || this.socket === null) return;
    const n = this.pendingLen;
    this.pendingLen = 0;
    writeDirect(this.socket, this.pending.subarray(0, n), true);
  }

  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.flushPending();
    const s = this.socket;
    this.socket = null;
    this.up = false;
    s?.end();
    s?.destroy();
  }
}

/** Registrations in a row on one control connection before the next takes over (InterceptLink.send). */
export const STRIPE = 64;

/** One intercept (`-s` item) with its `-C` parallel control connections. */
export class InterceptLink {
  readonly conns: ControlConnection[];
  /** The connection that takes registrations now, and how many it took in this stripe. */
  private rr = 0;
  private inStripe = 0;
  readonly name: string;
  closed = false;
  clientAdds = 0;
  readonly batch: { open: boolean };

  constructor(readonly addr: InterceptAddress, connections: number, format: ChannelFormat,
    private readonly owner: InterceptLinks, readonly log: Logger, readonly secret = '') {
    this.batch = owner.batch;
    // An IPv6 host goes in brackets: [2001:db8::3]:36524.
    this.name = addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
    this.conns = Array.from({ length: connections }, (_, i) => new ControlConnection(this, i, format, owner.consumer));
  }

  get upCount(): number { return this.conns.reduce((a, c) => a + (c.up ? 1 : 0), 0); }

  /**
   * Round robin over the connections that are up, in stripes of STRIPE registrations: intercept
   * sends each session's replies on the connection its CLIENT_ADD came by, so sessions that
   * start close together share a connection, and each side writes one batch to one socket
   * where per-record round robin made it two (one write(2) and one read(2) each, on both
   * sides, per batch). Over a stripe's length the connections share the load as before.
   */
  send(type: number, clientIp: number, clientPort: number, targetIp: number, targetPort: number): boolean {
    const n = this.conns.length;
    for (let i = 0; i < n; i++) {
      const c = this.conns[(this.rr + i) % n];
      if (c.up && c.send(type, clientIp, clientPort, targetIp, targetPort)) {
        this.took(i, n);
        return true;
      }
    }
    return false;
  }

  /** CLIENT_ADD6, the same way over the connections up that accepted IPv6. */
  send6(clientIp6: Buffer, clientPort: number, targetIp6: Buffer, targetPort: number): boolean {
    const n = this.conns.length;
    for (let i = 0; i < n; i++) {
      const c = this.conns[(this.rr + i) % n];
      if (c.up && c.send6(clientIp6, clientPort, targetIp6, targetPort)) {
        this.took(i, n);
        return true;
      }
    }
    return false;
  }

  /** Connection rr + i took a registration (i > 0: the ones before it could not). */
  private took(i: number, n: number): void {
    this.clientAdds++;
    if (i !== 0) { this.rr = (this.rr + i) % n; this.inStripe = 0; }
    if (++this.inStripe >= STRIPE) { this.inStripe = 0; this.rr = (this.rr + 1) % n; }
  }

  onConnectionUp(c: ControlConnection, again: boolean): void {
    this.log.info({ intercept: this.name, conn: c.index, reconnected: again }, 'connected to intercept');
    this.owner.consumer.onLinkUp(this, again);
  }

  /** Set when intercept answered with another channel format (the reason, said once per change). */
  formatError = '';

  formatMismatch(c: ControlConnection, why: string): void {
    if (why === this.formatError) return;
    this.formatError = why;
    this.log.error({ intercept: this.name, conn: c.index }, why);
  }

  onCapabilities(_c: ControlConnection, again: boolean, caps: number): void {
    this.owner.consumer.onLinkCapabilities?.(this, again, caps);
  }

  onConnectionDown(c: ControlConnection): void {
    this.log.warn({ intercept: this.name, conn: c.index, up: this.upCount }, 'control connection to intercept lost');
    this.owner.onConnectionDown(this);
    this.scheduleRetry(c);
  }

  scheduleRetry(c: ControlConnection): void {
    if (this.closed || c.retryTimer) return;
    // Backoff: 0.25 s, 0.5 s, 1 s ... capped at 12 s (the original's retry period).
    const delay = Math.min(12_000, 250 * 2 ** Math.min(c.attempts, 6));
    c.retryTimer = setTimeout(() => {
      c.retryTimer = null;
      if (this.closed) return;
      void c.connect().then((ok) => { if (!ok) this.scheduleRetry(c); });
    }, delay);
  }

  close(): void {
    this.closed = true;
    for (const c of this.conns) c.close();
  }
}

/**
 * tcpcopy's side of the control channel: every `-s` intercept, `-C` connections each.
 * CLIENT_ADD goes to every intercept that is up (one connection each, round robin in stripes).
 */
export class InterceptLinks implements RouteRegistrar {
  readonly links: InterceptLink[];
  noneUpSinceMs = 0;
  /**
   * `connect` waits (at most CAPABILITY_WAIT_MS) for the capability answers, which come after
   * the connection is up: the first IPv6 sessions are then not refused for want of one, and an
   * intercept whose channel format differs is known (and dropped) before tcpcopy says it runs.
   * The original intercept never answers: then the wait is the whole bound.
   */
  awaitCapabilities = true;
  /**
   * Open while the owner handles a batch (a ring wake-up, a chunk of replies): CLIENT_ADD
   * records then wait for `endBatch` instead of a nextTick each.
   */
  readonly batch = { open: false };

  constructor(addrs: InterceptAddress[], connections: number, format: ChannelFormat,
    readonly consumer: ReplyConsumer, log: Logger,
    private readonly onAllDown: () => void, secret = '') {
    this.links = addrs.map((a) => new InterceptLink(a, connections, format, this, log, secret));
  }

  /** Connects everything once; resolves with how many intercepts have at least one connection. */
  async connect(): Promise<number> {
    await Promise.all(this.links.flatMap((l) => l.conns.map((c) => c.connect())));
    for (const l of this.links) for (const c of l.conns) if (!c.up) l.scheduleRetry(c);
    const until = Date.now() + CAPABILITY_WAIT_MS;
    while (this.awaitCapabilities && Date.now() < until && this.links.some((l) => l.conns.some((c) => c.up && c.capabilities < 0))) {
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.upIntercepts;
  }

  /** The end of the owner's batch: every connection writes what waits, one write each. */
  endBatch(): void {
    this.batch.open = false;
    for (let i = 0; i < this.links.length; i++) {
      const cs = this.links[i].conns;
      for (let j = 0; j < cs.length; j++) cs[j].flushIfPending();
    }
  }

  get ready(): boolean {
    for (let i = 0; i < this.links.length; i++) if (this.links[i].upCount > 0) return true;
    return false;
  }

  get upIntercepts(): number { return this.links.reduce((a, l) => a + (l.upCount > 0 ? 1 : 0), 0); }

  clientAdd(clientIp: number, clientPort: number, targetIp: number, targetPort: number): boolean {
    let any = false;
    for (let i = 0; i < this.links.length; i++) {
      if (this.links[i].send(MsgType.ClientAdd, clientIp, clientPort, targetIp, targetPort)) any = true;
    }
    return any;
  }

  /** CLIENT_ADD6 to every intercept up that accepted IPv6; false when none did. */
  clientAdd6(clientIp6: Buffer, clientPort: number, targetIp6: Buffer, targetPort: number): boolean {
    let any = false;
    for (let i = 0; i < this.links.length; i++) {
      if (this.links[i].send6(clientIp6, clientPort, targetIp6, targetPort)) any = true;
    }
    return any;
  }

  onConnectionDown(_l: InterceptLink): void {
    if (this.upIntercepts === 0) {
      this.noneUpSinceMs = Date.now();
      this.onAllDown();
    }
  }

  snapshot(): Record<string, unknown> {
    return Object.fromEntries(this.links.map((l) => [l.name, { up: l.upCount, of: l.conns.length, clientAdds: l.clientAdds }]));
  }

  close(): void {
    for (const l of this.links) l.close();
  }
}
