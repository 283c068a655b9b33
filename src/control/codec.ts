import { ControlErrorCode, TcpcopyError } from '../errors';
import {
  CAPABILITY_ANSWER_MARK, CAPABILITY_ANSWER_SIZE, CAPABILITY_MAGIC, CLIENT_ADD6_SIZE, CLIENT_RECORD_SIZE, ClientRec,
  COMB_HEADER_SIZE, ChannelFormat, LEGACY_HEAD_SIZE, MsgType, batchMax, recordSize, versionCapabilities,
} from './records';
import { get16, get32, put16 } from '../wire/bytes';

/** A typed control-channel error: the connection that produced it is dropped, alone. */
export class ControlError extends TcpcopyError {
  declare readonly code: ControlErrorCode;
  constructor(code: ControlErrorCode, message: string) { super(code, message); }
}

/** Receives decoded reply records; the record is contiguous at `buf[off .. off+size)`. */
export interface ReplySink {
  onReply(buf: Buffer, off: number): void;
}

/**
 * Decodes intercept → tcpcopy bytes: count-prefixed batches (combined) or bare records.
 * Survives any split of the stream; a record split across chunks is reassembled in one
 * small carry buffer. Whole records inside a chunk are handed over in place (no copy).
 *
 * The capability extension (docs/control-channel.md): with `onAnswer`, the stream may open
 * with intercept's 8-byte capability answer (0xFFFF, magic, bits), handed to `onAnswer`; any
 * other first bytes are the original's stream. Once `ipv6` is set (the answer accepted
 * IPv6), a record whose first byte has IP version 6 takes two slots (and counts two in a batch).
 */
export class ReplyStreamDecoder {
  readonly size: number;
  readonly max: number;
  readonly combined: boolean;
  private readonly carry: Buffer;
  private carried = 0;
  /** Bytes of the record being carried (one slot, or two for an IPv6 record). */
  private need = 0;
  /** Records left in the current batch (combined), 0 when the next bytes are a count. */
  private left = 0;
  private countHi = -1;
  /** Bytes of the capability answer collected (-1: not looked for any more). */
  private answerHave: number;
  private readonly answer = Buffer.alloc(CAPABILITY_ANSWER_SIZE);
  /** Two-slot IPv6 records may come (the capability was accepted). */
  ipv6 = false;
  error: ControlError | null = null;
  records = 0;
  batches = 0;

  constructor(format: ChannelFormat, private readonly sink: ReplySink, private readonly onAnswer: ((caps: number) => void) | null = null) {
    this.size = recordSize(format);
    this.max = batchMax(format);
    this.combined = format.combined;
    this.carry = Buffer.alloc(2 * this.size);
    this.answerHave = onAnswer !== null ? 0 : -1;
  }

  /**
   * Feeds the first `n` bytes of a chunk (the chunk may be a reused read buffer: nothing
   * refers to it after the call); returns the error that ends this stream, or null.
   */
  push(chunk: Buffer, n = chunk.length): ControlError | null {
    if (this.error) return this.error;
    const size = this.size;
    let i = 0;
    while (i < n && this.answerHave >= 0) {
      // The first two bytes decide: the answer's mark, or the original's stream.
      if (this.answerHave === 0 && chunk[i] !== CAPABILITY_ANSWER_MARK >>> 8) { this.answerHave = -1; break; }
      if (this.answerHave === 1 && chunk[i] !== (CAPABILITY_ANSWER_MARK & 0xff)) {
        // 0xFF then something else: neither a count (at most 16) nor an IPv4 record. Bad data.
        this.error = new ControlError('bad-count', `stream opens with 0xff 0x${chunk[i].toString(16)}: neither a batch nor a capability answer`);
        return this.error;
      }
      this.answer[this.answerHave++] = chunk[i++];
      if (this.answerHave === CAPABILITY_ANSWER_SIZE) {
        this.answerHave = -1;
        if (get32(this.answer, 2) !== CAPABILITY_MAGIC) {
          this.error = new ControlError('bad-count', 'capability answer with a wrong magic');
          return this.error;
        }
        this.onAnswer!(get16(this.answer, 6));
      }
    }
    while (i < n) {
      if (this.combined && this.left === 0) {
        // Count: 2 bytes big-endian, possibly split.
        if (this.countHi < 0) {
          if (i + 1 < n) {
            const c = (chunk[i] << 8) | chunk[i + 1];
            i += 2;
            if (!this.setCount(c)) return this.error;
          } else {
            this.countHi = chunk[i++];
          }
        } else {
          const c = (this.countHi << 8) | chunk[i++];
          this.countHi = -1;
          if (!this.setCount(c)) return this.error;
        }
        continue;
      }
      if (this.carried > 0) {
        const take = Math.min(this.need - this.carried, n - i);
        chunk.copy(this.carry, this.carried, i, i + take);
        this.carried += take;
        i += take;
        if (this.carried === this.need) {
          this.carried = 0;
          this.deliver(this.carry, 0, this.need);
        }
        continue;
      }
      const need = this.ipv6 && (chunk[i] >>> 4) === 6 ? 2 * size : size;
      if (this.combined && need > size && this.left < 2) {
        this.error = new ControlError('bad-count', 'an IPv6 record (two slots) in the last slot of a batch');
        return this.error;
      }
      if (n - i >= need) {
        this.deliver(chunk, i, need);
        i += need;
      } else {
        chunk.copy(this.carry, 0, i, n);
        this.carried = n - i;
        this.need = need;
        i = n;
      }
    }
    return null;
  }

  /** True when the stream stopped at a record (or batch) boundary. */
  get atBoundary(): boolean {
    return this.carried === 0 && this.left === 0 && this.countHi < 0 && this.answerHave <= 0;
  }

  private setCount(c: number): boolean {
    if (c === 0 || c > this.max) {
      this.error = new ControlError('bad-count', `batch count ${c} outside 1..${this.max}`);
      return false;
    }
    this.left = c;
    this.batches++;
    return true;
  }

  private deliver(buf: Buffer, off: number, len: number): void {
    if (this.combined) this.left -= len === this.size ? 1 : 2;
    this.records++;
    this.sink.onReply(buf, off);
  }
}

/** Receives decoded tcpcopy → intercept messages. Addresses and ports are host-order numbers. */
export interface ClientRecordSink {
  /** The version record; `caps` are the Capability bits it announces, -1 for none (the original). */
  onVersion(version: number, caps: number): void;
  onClientRecord(type: number, clientIp: number, clientPort: number, targetIp: number, targetPort: number): void;
  /**
   * A CLIENT_ADD6 (only sent after intercept accepted the IPv6 capability): the client's and
   * the target's addresses are the 16 bytes at `buf[clientOff]` and `buf[targetOff]`, valid
   * during the call only.
   */
  onClientAdd6?(buf: Buffer, clientOff: number, clientPort: number, targetOff: number, targetPort: number): void;
}

/**
 * Decodes tcpcopy → intercept bytes: first the version record (read as the legacy 8-byte
 * head whose address and port must be zero, then 6 more bytes), then 14-byte records, and
 * 46-byte CLIENT_ADD6 records (a 14-byte head of that type, then 32 bytes of addresses).
 */
export class ClientRecordDecoder {
  private readonly buf = Buffer.alloc(CLIENT_ADD6_SIZE);
  private have = 0;
  /** Bytes of the record being read: 14, or 46 once its head says CLIENT_ADD6. */
  private need = CLIENT_RECORD_SIZE;
  private versionSeen = false;
  error: ControlError | null = null;
  records = 0;

  constructor(private readonly sink: ClientRecordSink) {}

  /** The first `n` bytes of `chunk` (a reused read buffer: what is kept is copied). */
  push(chunk: Buffer, n = chunk.length): ControlError | null {
    if (this.error) return this.error;
    let i = 0;
    while (i < n) {
      if (this.have === 0 && this.versionSeen && n - i >= CLIENT_RECORD_SIZE) {
        const len = get16(chunk, i + ClientRec.Type) === MsgType.ClientAdd6 ? CLIENT_ADD6_SIZE : CLIENT_RECORD_SIZE;
        if (n - i >= len) {
          this.record(chunk, i);
          i += len;
          continue;
        }
      }
      const take = Math.min(this.need - this.have, n - i);
      chunk.copy(this.buf, this.have, i, i + take);
      const before = this.have;
      this.have += take;
      i += take;
      if (!this.versionSeen && before < LEGACY_HEAD_SIZE && this.have >= LEGACY_HEAD_SIZE) {
        // The legacy head decides early, as the original does, before the last 6 bytes arrive.
        if (get32(this.buf, 0) !== 0 || get16(this.buf, 4) !== 0) {
          this.error = new ControlError('client-too-old',
            'first record carries an address: the peer speaks a pre-version protocol (client too old)');
          return this.error;
        }
      }
      if (this.have === CLIENT_RECORD_SIZE && this.need === CLIENT_RECORD_SIZE && this.versionSeen &&
        get16(this.buf, ClientRec.Type) === MsgType.ClientAdd6) {
        this.need = CLIENT_ADD6_SIZE;
        continue;
      }
      if (this.have === this.need) {
        this.have = 0;
        this.need = CLIENT_RECORD_SIZE;
        this.record(this.buf, 0);
      }
    }
    return null;
  }

  get atBoundary(): boolean { return this.have === 0; }
  get handshakeDone(): boolean { return this.versionSeen; }

  private record(b: Buffer, off: number): void {
    if (!this.versionSeen) {
      this.versionSeen = true;
      this.sink.onVersion(get16(b, off + ClientRec.Type), versionCapabilities(b, off));
      return;
    }
    this.records++;
    const type = get16(b, off + ClientRec.Type);
    if (type === MsgType.ClientAdd6) {
      this.sink.onClientAdd6?.(b, off + CLIENT_RECORD_SIZE, get16(b, off + ClientRec.ClientPort),
        off + CLIENT_RECORD_SIZE + 16, get16(b, off + ClientRec.TargetPort));
      return;
    }
    this.sink.onClientRecord(type, get32(b, off + ClientRec.ClientIp),
      get16(b, off + ClientRec.ClientPort), get32(b, off + ClientRec.TargetIp), get16(b, off + ClientRec.TargetPort));
  }
}

/** Where a batch goes: true when the bytes were taken at once (the batcher keeps its buffer), anything else when `batch` is kept. */
export type BatchOut = (batch: Buffer) => unknown;

/**
 * Frames reply records for one tcpcopy connection: records are appended to a batch buffer
 * that is handed to `flush` when full; the owner flushes the rest at the end of each
 * event-loop turn. Non-combined framing flushes bare records.
 */
export class ReplyBatcher {
  readonly size: number;
  readonly max: number;
  readonly combined: boolean;
  private buf: Buffer;
  private count = 0;
  threshold: number;

  constructor(format: ChannelFormat, threshold = 0) {
    this.size = recordSize(format);
    this.max = batchMax(format);
    this.combined = format.combined;
    this.threshold = threshold > 0 && threshold < this.max ? threshold : this.max;
    this.buf = Buffer.allocUnsafe(this.capacity());
  }

  private capacity(): number {
    return (this.combined ? COMB_HEADER_SIZE : 0) + this.max * this.size;
  }

  get pending(): number { return this.count; }

  /** How many records a batch handed to `out` holds. */
  recordsIn(batch: Buffer): number {
    return this.combined ? get16(batch, 0) : batch.length / this.size;
  }

  /** The buffer that `reserve` offsets point into (a new one after a flush whose batch `out` kept). */
  get buffer(): Buffer { return this.buf; }

  /**
   * Returns the offset in `buffer` where the next record goes (write `size` bytes there),
   * after handing a full batch to `out` first if needed. `out` should be bound once.
   */
  reserve(out: BatchOut): number {
    if (this.count >= this.threshold) this.flush(out);
    const off = (this.combined ? COMB_HEADER_SIZE : 0) + this.count * this.size;
    this.count++;
    return off;
  }

  /**
   * `reserve` for an IPv6 record: two consecutive slots of one batch (they count two in its
   * record count, docs/control-channel.md). Write `2 * size` bytes at the offset returned.
   */
  reserve2(out: BatchOut): number {
    if (this.count >= this.threshold || this.count + 2 > this.max) this.flush(out);
    const off = (this.combined ? COMB_HEADER_SIZE : 0) + this.count * this.size;
    this.count += 2;
    return off;
  }

  /**
   * Hands the pending records, framed, to `out`, which takes ownership of the Buffer unless it
   * returns true (it wrote the bytes at once: the buffer is used again for the next batch).
   */
  flush(out: BatchOut): number {
    const c = this.count;
    if (c === 0) return 0;
    let len = c * this.size;
    if (this.combined) {
      put16(this.buf, 0, c);
      len += COMB_HEADER_SIZE;
    }
    const batch = len === this.buf.length ? this.buf : this.buf.subarray(0, len);
    this.count = 0;
    if (out(batch) !== true) this.buf = Buffer.allocUnsafe(this.capacity());
    return c;
  }
}
