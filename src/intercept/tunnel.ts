import type { Socket } from 'node:net';
import { type BatchOut, ClientRecordDecoder, ClientRecordSink, ControlError, ReplyBatcher } from '../control/codec';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  AUTH_NONCE_SIZE, CAPABILITY_ANSWER_SIZE, ChannelFormat, MsgType, OUR_CAPABILITIES, authConfirmation, authProof, formatCapabilities, writeCapabilityAnswer,
} from '../control/records';
import type { RouteOwner } from './route-table';
import { writeDirect } from '../io/direct-write';
import { put16, put32 } from '../wire/bytes';

/** What a tunnel reports to its intercept. */
export interface TunnelEvents {
  onClientRecord(t: Tunnel, type: number, clientIp: number, clientPort: number, targetIp: number, targetPort: number): void;
  onVersion(t: Tunnel, version: number, caps: number): void;
  onClientAdd6(t: Tunnel, buf: Buffer, clientOff: number, clientPort: number, targetOff: number, targetPort: number): void;
  onTunnelClosed(t: Tunnel, reason: string, error: ControlError | Error | null): void;
}

/**
 * One tcpcopy control connection as intercept sees it: decodes client records, batches reply
 * records, and bounds what it buffers for a slow reader (the oldest batches are dropped and
 * counted, never unbounded buffering).
 */
export class Tunnel implements RouteOwner, ClientRecordSink {
  closed = false;
  readonly decoder: ClientRecordDecoder;
  readonly batcher: ReplyBatcher;
  /** Batches waiting for the socket to drain. */
  private readonly backlog: Buffer[] = [];
  private backlogBytes = 0;
  /** True while this tunnel is on its intercept's to-flush list. */
  dirty = false;
  recordsSent = 0;
  batchesSent = 0;
  recordsDropped = 0;
  clientAdds = 0;
  version = -1;
  /** With a shared secret: the challenge sent, and whether the peer answered it. */
  private nonce: Buffer | null = null;
  authed = false;
  /** Capability bits the peer announced (-1: none, the original tcpcopy) and those we accepted. */
  peerCapabilities = -1;
  capabilities = 0;
  /** The capability answer, held until the shared-secret confirmation has gone first. */
  private answer: Buffer | null = null;
  readonly out: BatchOut;

  constructor(
    readonly id: number,
    readonly socket: Socket,
    readonly remote: string,
    private readonly format: ChannelFormat,
    threshold: number,
    private readonly maxBacklogBytes: number,
    private readonly events: TunnelEvents,
    private readonly secret = '',
    /** Reads come through onBytes from one reused buffer (adoptSocket), not as 'data' events. */
    readonly adopted = false,
  ) {
    this.decoder = new ClientRecordDecoder(this);
    this.batcher = new ReplyBatcher(format, threshold);
    this.out = (batch: Buffer) => this.write(batch);
    socket.setNoDelay(true);
    if (secret) {
      this.nonce = randomBytes(AUTH_NONCE_SIZE);
      socket.write(this.nonce);
      // A peer that does not answer the challenge (an original tcpcopy, a scanner) is dropped.
      const t = setTimeout(() => {
        if (!this.authed) this.close('auth-failed', new ControlError('auth-failed', 'no answer to the shared-secret challenge within 3 s: start tcpcopy with the same --secret'));
      }, 3000);
      t.unref();
      socket.once('close', () => clearTimeout(t));
    }
    // A socket adopted with `onread` (adoptSocket) hands its bytes to onBytes itself.
    if (!this.adopted) socket.on('data', (chunk: Buffer) => this.onBytes(chunk, chunk.length));
    socket.on('drain', () => this.drain());
    socket.on('error', (e) => this.close('socket-error', e));
    socket.on('close', () => this.close(this.decoder.atBoundary ? 'peer-closed' : 'peer-closed-mid-record', null));
  }

  /** Bytes read from tcpcopy: the first `n` of `buf`. */
  onBytes(buf: Buffer, n: number): void {
    if (this.closed) return;
    const err = this.decoder.push(buf, n);
    if (err) this.close(err.code, err);
  }

  onVersion(version: number, caps: number): void {
    this.version = version;
    this.peerCapabilities = caps;
    if (caps >= 0) {
      // Our tcpcopy announced the extension: answer first, before any reply record (after the
      // secret's confirmation when there is a secret). The original tcpcopy announces nothing.
      this.capabilities = caps & OUR_CAPABILITIES;
      const a = Buffer.alloc(CAPABILITY_ANSWER_SIZE);
      // The accepted bits, and our own channel format (not negotiated: tcpcopy names a mismatch).
      writeCapabilityAnswer(a, 0, this.capabilities | formatCapabilities(this.format));
      if (this.nonce !== null && !this.authed) this.answer = a; else this.socket.write(a);
    }
    this.events.onVersion(this, version, caps);
  }

  onClientAdd6(buf: Buffer, clientOff: number, clientPort: number, targetOff: number, targetPort: number): void {
    if (this.nonce !== null && !this.authed) {
      this.close('auth-failed', new ControlError('auth-failed', 'no authentication record: this intercept requires --secret on tcpcopy too'));
      return;
    }
    this.events.onClientAdd6(this, buf, clientOff, clientPort, targetOff, targetPort);
  }

  onClientRecord(type: number, clientIp: number, clientPort: number, targetIp: number, targetPort: number): void {
    if (this.nonce !== null && !this.authed) {
      const proof = Buffer.alloc(12);
      put32(proof, 0, clientIp >>> 0);
      put16(proof, 4, clientPort);
      put32(proof, 6, targetIp >>> 0);
      put16(proof, 10, targetPort);
      if (type === MsgType.Auth && timingSafeEqual(proof, authProof(this.secret, this.nonce))) {
        this.authed = true;
        this.socket.write(authConfirmation(this.secret, this.nonce));
        if (this.answer !== null) { this.socket.write(this.answer); this.answer = null; }
        return;
      }
      this.close('auth-failed', new ControlError('auth-failed', type === MsgType.Auth
        ? 'wrong shared secret (--secret differs between tcpcopy and intercept)'
        : 'no authentication record: this intercept requires --secret on tcpcopy too'));
      return;
    }
    this.events.onClientRecord(this, type, clientIp, clientPort, targetIp, targetPort);
  }

  /** A batch from the batcher: true when it went at once (write(2)), so the batcher may reuse the buffer. */
  private write(batch: Buffer): boolean {
    if (this.closed) return false;
    const records = this.batcher.recordsIn(batch);
    if (this.backlog.length === 0 && !this.socket.writableNeedDrain) {
      this.recordsSent += records;
      this.batchesSent++;
      return writeDirect(this.socket, batch, false);
    }
    this.backlog.push(batch);
    this.backlogBytes += batch.length;
    while (this.backlogBytes > this.maxBacklogBytes && this.backlog.length > 1) {
      const old = this.backlog.shift()!;
      this.backlogBytes -= old.length;
      this.recordsDropped += this.batcher.recordsIn(old);
    }
    return false;
  }

  private drain(): void {
    while (this.backlog.length && !this.socket.writableNeedDrain && !this.closed) {
      const b = this.backlog.shift()!;
      this.backlogBytes -= b.length;
      writeDirect(this.socket, b, false);
      this.recordsSent += this.batcher.recordsIn(b);
      this.batchesSent++;
    }
  }

  /** Sends what is batched. */
  flush(): void {
    this.dirty = false;
    if (!this.closed) this.batcher.flush(this.out);
  }

  get backlogSize(): number { return this.backlogBytes; }

  close(reason: string, error: ControlError | Error | null): void {
    if (this.closed) return;
    this.closed = true;
    // Batches still waiting for the socket are lost with it: count them.
    for (const b of this.backlog) this.recordsDropped += this.batcher.recordsIn(b);
    this.backlog.length = 0;
    this.backlogBytes = 0;
    this.socket.destroy();
    this.events.onTunnelClosed(this, reason, error);
  }
}

/** The buffer that every adopted control connection reads into (one event loop: each read is decoded before the next). */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

/**
 * Moves an accepted control connection (`pauseOnConnect`, not read yet) to a socket that reads
 * into one reused buffer (`onread`): no Buffer, stream events or nextTick per chunk, the cost
 * that dominated intercept's reads of CLIENT_ADD records at ordinary rates. net.Server cannot
 * give its sockets `onread`, so the accepted handle goes to a socket made with it (the `handle`
 * option that Node's own net module uses), and the accepted socket, without its handle, is
 * destroyed (the server's connection count goes down; nothing is closed). `onBytes` receives
 * each read. Null when that is not possible here: the caller keeps the accepted socket.
 */
export function adoptSocket(accepted: Socket, onBytes: (buf: Buffer, n: number) => void): Socket | null {
  const s0 = accepted as Socket & { _handle: unknown };
  const handle = s0._handle;
  if (handle === null || handle === undefined) return null;
  let s: Socket;
  try {
    s0._handle = null;
    s = new (s0.constructor as typeof Socket)({
      handle, readable: true, writable: true,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => { onBytes(buf as Buffer, n); return true; } },
    } as ConstructorParameters<typeof Socket>[0] & { handle: unknown });
  } catch {
    s0._handle = handle;
    return null;
  }
  if ((s as Socket & { _handle: unknown })._handle !== handle) { s0._handle = handle; return null; }
  s0.destroy();
  return s;
}
