/**
 * Test helpers for the session engine: a seeded PRNG, an IPv4/TCP packet builder, a captured
 * client connection (the packets tcpcopy would capture), a recording PacketSender and
 * RouteRegistrar, and a small simulated target that answers the packets the engine sends with
 * header-only reply records, as intercept would deliver them.
 */
import assert from 'node:assert/strict';
import * as checksumModule from '../../src/wire/checksum';
import { fillIpv4Checksum, fillTcpChecksum, fold, pseudoHeaderSum } from '../../src/wire/checksum';
import { TcpPacket } from '../../src/wire/packet';
import { TcpFlag, TcpOpt } from '../../src/wire/tcp';
import { ipToString, parseIp } from '../../src/wire/ipv4';
import { buildReplyRecord, REPLY_RECORD_SIZE } from '../../src/control/records';
import type { PacketSender } from '../../src/io/raw-socket';
import { DEFAULT_ENGINE_OPTIONS, Engine, EngineOptions, RouteRegistrar } from '../../src/tcpcopy/engine';
import { TransferRule } from '../../src/tcpcopy/transfer';

// ------------------------------------------------------------------------------------ basics

export const F = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export function ip(s: string): number {
  const v = parseIp(s);
  if (v < 0) throw new Error(`bad ip ${s}`);
  return v;
}

export const u32 = (n: number): number => n >>> 0;
export const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
export const seqLe = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
export const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;

/** mulberry32: small seeded PRNG. */
export class Rng {
  private a: number;
  constructor(seed: number) { this.a = seed >>> 0; }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  u32(): number { return Math.floor(this.next() * 4294967296) >>> 0; }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(a: readonly T[]): T { return a[Math.floor(this.next() * a.length)]; }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
}

// ------------------------------------------------------------------------------------ packets

export type CsumMode = 'full' | 'partial' | 'partial-inverted';

export interface PacketSpec {
  srcIp: number; dstIp: number; srcPort: number; dstPort: number;
  seq: number; ack?: number; flags: number; window?: number;
  /** TCP options, a multiple of 4 bytes. */
  options?: Buffer;
  payload?: Buffer;
  /** Header-only packet: tot_len claims this many payload bytes that are not in the buffer. */
  claimedPayload?: number;
  id?: number;
  csum?: CsumMode;
  /** IPv4 options (a multiple of 4 bytes): IHL > 5. */
  ipOptions?: Buffer;
}

/** Builds an IPv4/TCP packet (IHL 5, DF) with a correct IP checksum and the TCP checksum as asked. */
export function buildPacket(p: PacketSpec): Buffer {
  const opt = p.options ?? Buffer.alloc(0);
  if (opt.length % 4 !== 0 || opt.length > 40) throw new Error('options must be a multiple of 4, at most 40');
  const ipo = p.ipOptions ?? Buffer.alloc(0);
  if (ipo.length % 4 !== 0 || ipo.length > 40) throw new Error('IP options must be a multiple of 4, at most 40');
  const ipHl = 20 + ipo.length;
  const pay = p.payload ?? Buffer.alloc(0);
  const tcpHl = 20 + opt.length;
  const present = ipHl + tcpHl + pay.length;
  const tot = ipHl + tcpHl + (p.claimedPayload ?? pay.length);
  const b = Buffer.alloc(present);
  b[0] = 0x40 | (ipHl >>> 2); b[1] = 0;
  b.writeUInt16BE(tot, 2);
  b.writeUInt16BE((p.id ?? 0x1234) & 0xffff, 4);
  b[6] = 0x40; b[7] = 0;
  b[8] = 64; b[9] = 6;
  b.writeUInt32BE(u32(p.srcIp), 12);
  b.writeUInt32BE(u32(p.dstIp), 16);
  ipo.copy(b, 20);
  const t = ipHl;
  b.writeUInt16BE(p.srcPort, t);
  b.writeUInt16BE(p.dstPort, t + 2);
  b.writeUInt32BE(u32(p.seq), t + 4);
  b.writeUInt32BE(u32(p.ack ?? 0), t + 8);
  b[t + 12] = (tcpHl >>> 2) << 4;
  b[t + 13] = p.flags;
  b.writeUInt16BE((p.window ?? 65535) & 0xffff, t + 14);
  opt.copy(b, t + 20);
  pay.copy(b, t + tcpHl);
  fillIpv4Checksum(b, 0, ipHl);
  const tcpLen = tcpHl + pay.length;
  const mode = p.csum ?? 'full';
  if (p.claimedPayload === undefined) {
    if (mode === 'full') fillTcpChecksum(b, 0, t, tcpLen);
    else {
      const ps = fold(pseudoHeaderSum(b, 0, 6, tcpLen));
      b.writeUInt16BE(mode === 'partial' ? ps : (~ps & 0xffff), t + 16);
    }
  }
  return b;
}

export const opt = {
  mss(v: number): Buffer { const b = Buffer.alloc(4); b[0] = TcpOpt.Mss; b[1] = 4; b.writeUInt16BE(v, 2); return b; },
  ws(shift: number): Buffer { return Buffer.from([TcpOpt.Nop, TcpOpt.WindowScale, 3, shift]); },
  sackOk(): Buffer { return Buffer.from([TcpOpt.Nop, TcpOpt.Nop, TcpOpt.SackPermitted, 2]); },
  ts(val: number, ecr: number): Buffer {
    const b = Buffer.alloc(12);
    b[0] = TcpOpt.Nop; b[1] = TcpOpt.Nop; b[2] = TcpOpt.Timestamp; b[3] = 10;
    b.writeUInt32BE(u32(val), 4); b.writeUInt32BE(u32(ecr), 8);
    return b;
  },
};

/** Timestamp option (TSval, TSecr) of a parsed packet, or null. */
export function tsOf(buf: Buffer): [number, number] | null {
  const p = new TcpPacket();
  if (p.check(buf, 0, buf.length) !== 0) return null;
  const o = p.tcp.timestampOffset();
  return o < 0 ? null : [buf.readUInt32BE(o + 2), buf.readUInt32BE(o + 6)];
}

/** A 64-byte reply record (header only; ip.tot_len carries the payload length), as intercept sends. */
export function replyRecord(p: PacketSpec & { payloadLen?: number }): Buffer {
  const hdr = buildPacket({ ...p, payload: undefined, claimedPayload: p.payloadLen ?? 0 });
  const tcpHl = (hdr[32] >>> 4) << 2;
  const rec = Buffer.alloc(REPLY_RECORD_SIZE);
  buildReplyRecord(rec, 0, REPLY_RECORD_SIZE, hdr, 0, 20, tcpHl, hdr.readUInt16BE(2), hdr.length);
  return rec;
}

/** A parsed sent packet. */
export interface Parsed {
  buf: Buffer;
  srcIp: number; dstIp: number; srcPort: number; dstPort: number;
  seq: number; ack: number; flags: number; window: number;
  payload: Buffer;
  tcpHl: number;
}

export function parse(buf: Buffer): Parsed {
  const p = new TcpPacket();
  const r = p.check(buf, 0, buf.length);
  if (r !== 0) throw new Error(`sent packet does not parse (reason ${r}): ${buf.toString('hex')}`);
  const off = p.tcp.off + p.tcp.headerLen;
  return {
    buf,
    srcIp: p.ip.src, dstIp: p.ip.dst, srcPort: p.tcp.srcPort, dstPort: p.tcp.dstPort,
    seq: p.tcp.seq, ack: p.tcp.ack, flags: p.tcp.flags, window: p.tcp.window,
    payload: Buffer.from(buf.subarray(off, p.ip.off + p.ip.totalLen)),
    tcpHl: p.tcp.headerLen,
  };
}

// ------------------------------------------------------------------------------------ client

export interface ClientOpts {
  ts?: boolean;
  ws?: number | null;
  csum?: CsumMode;
  /** TCP options carried on non-SYN packets besides the timestamp (raw, multiple of 4). */
  extraOpts?: Buffer;
  /** IPv4 options on every packet. */
  ipOptions?: Buffer;
}

/**
 * One captured client connection to the online server: produces the packets the capture would
 * see. `ack` follows the online server's sequence space: it grows by each response's length.
 */
export class ClientConn {
  seq: number;
  ack: number;
  tsVal = 1000;
  /** Every payload byte the client sent, in order (offset 0 = isn + 1). */
  stream = Buffer.alloc(0);
  finSeq = -1;
  id = 100;
  constructor(
    readonly ip: number, readonly port: number, readonly serverIp: number, readonly serverPort: number,
    readonly isn: number, readonly serverIsn: number, readonly o: ClientOpts = {},
  ) {
    this.seq = u32(isn + 1);
    this.ack = u32(serverIsn + 1);
  }

  private pkt(seq: number, ack: number, flags: number, payload?: Buffer, synOpts?: Buffer, csum?: CsumMode): Buffer {
    let options: Buffer | undefined = synOpts;
    if (options === undefined) {
      const parts: Buffer[] = [];
      if (this.o.ts) parts.push(opt.ts(this.tsVal++, 5000));
      if (this.o.extraOpts) parts.push(this.o.extraOpts);
      options = Buffer.concat(parts);
    }
    return buildPacket({
      srcIp: this.ip, dstIp: this.serverIp, srcPort: this.port, dstPort: this.serverPort,
      seq, ack, flags, window: 502, options, payload, id: this.id++, csum: csum ?? this.o.csum ?? 'full', ipOptions: this.o.ipOptions,
    });
  }

  syn(csum?: CsumMode): Buffer {
    const parts = [opt.mss(1460)];
    if (this.o.ws !== undefined && this.o.ws !== null) parts.push(opt.ws(this.o.ws));
    if (this.o.ts) parts.push(opt.ts(this.tsVal++, 0));
    parts.push(opt.sackOk());
    return this.pkt(this.isn, 0, F.SYN, undefined, Buffer.concat(parts), csum);
  }

  hsAck(): Buffer { return this.pkt(this.seq, this.ack, F.ACK); }
  pureAck(): Buffer { return this.pkt(this.seq, this.ack, F.ACK); }

  /** A request of `data`, split in segments of at most `segSize`, PSH on the last; then the online response of `respLen` bytes. */
  request(data: Buffer, respLen: number, segSize = 1448, csum?: CsumMode): Buffer[] {
    const out: Buffer[] = [];
    for (let done = 0; done < data.length; done += segSize) {
      const chunk = data.subarray(done, Math.min(data.length, done + segSize));
      const last = done + chunk.length >= data.length;
      out.push(this.pkt(this.seq, this.ack, F.ACK | (last ? F.PSH : 0), chunk, undefined, csum));
      this.seq = u32(this.seq + chunk.length);
    }
    this.stream = Buffer.concat([this.stream, data]);
    this.ack = u32(this.ack + respLen);
    return out;
  }

  /** A packet re-sending stream bytes [from, to) (client retransmission, possibly coalesced). */
  retransmit(from: number, to: number, flags = F.ACK | F.PSH): Buffer {
    return this.pkt(u32(this.isn + 1 + from), this.ack, flags, this.stream.subarray(from, to));
  }

  fin(): Buffer {
    const b = this.pkt(this.seq, this.ack, F.FIN | F.ACK);
    this.finSeq = this.seq;
    this.seq = u32(this.seq + 1);
    return b;
  }

  rst(): Buffer { return this.pkt(this.seq, this.ack, F.RST | F.ACK); }
}

// ------------------------------------------------------------------------------------ engine io

export interface SentPacket { buf: Buffer; dst: string; n: number }

/** Records every packet the engine sends (a copy: the engine reuses its scratch buffer). */
export class CaptureSender implements PacketSender {
  sent = 0;
  errors = 0;
  readonly all: SentPacket[] = [];
  /** Not yet consumed by the simulated target. */
  readonly queue: SentPacket[] = [];
  onSend: ((p: SentPacket) => void) | null = null;
  constructor(private readonly clock: { n: number }) {}
  send(buf: Buffer, off: number, len: number, dst: string): void {
    const p = { buf: Buffer.from(buf.subarray(off, off + len)), dst, n: this.clock.n++ };
    this.sent++;
    this.all.push(p);
    this.queue.push(p);
    if (this.onSend) this.onSend(p);
  }
  close(): void { /* nothing */ }
}

export const routeKey = (cip: number, cport: number, tip: number, tport: number): string =>
  `${ipToString(cip)}:${cport}>${ipToString(tip)}:${tport}`;

export class Registrar implements RouteRegistrar {
  ready = true;
  readonly adds: { key: string; n: number }[] = [];
  /** First announcement of each 4-tuple (its clock tick). */
  readonly first = new Map<string, number>();
  constructor(private readonly clock: { n: number }) {}
  clientAdd(clientIp: number, clientPort: number, targetIp: number, targetPort: number): boolean {
    const key = routeKey(clientIp, clientPort, targetIp, targetPort);
    const n = this.clock.n++;
    this.adds.push({ key, n });
    if (!this.first.has(key)) this.first.set(key, n);
    return true;
  }
}


// ------------------------------------------------------------------------------------ target

export type RequestAction =
  /** fin: a separate FIN record after the response; 'merged': FIN on the last response record. */
  | { kind: 'respond'; bytes: number; fin?: boolean | 'merged' }
  | { kind: 'rst' }
  | { kind: 'ack-only' };

export interface SimOpts {
  /** Window in bytes (advertised shifted by `wscale` when negotiated). */
  window: number;
  /** Window-scale shift offered in SYN-ACK (when the SYN offered scaling), null for none. */
  wscale: number | null;
  timestamps: boolean;
  /** What to do when a request (a segment with PSH) is complete. */
  onRequest: (c: SimConn, index: number) => RequestAction;
  /** Response segment size. */
  respSeg: number;
  /** Acknowledge and answer data (false: the test drives replies itself). */
  auto: boolean;
  /**
   * Data arriving after the target closed (sent its FIN) is answered with a RST, as Linux does
   * for a socket the application closed (tcp_rcv_state_process, LINUX_MIB_TCPABORTONDATA).
   */
  rstDataAfterFin: boolean;
  rng: Rng;
}

export class SimConn {
  state: 'synrcvd' | 'est' | 'closed' = 'synrcvd';
  isn: number;
  sndNxt: number;
  rcvNxt: number;
  wsShift = 0;
  tsOn = false;
  tsRecent = 0;
  tsVal = 70000;
  stream = Buffer.alloc(0);
  requests = 0;
  finRcvd = false;
  finSent = false;
  constructor(readonly id: number, readonly clientIp: number, readonly clientPort: number, readonly targetIp: number,
    readonly targetPort: number, readonly clientIsn: number, isn: number) {
    this.isn = isn;
    this.sndNxt = u32(isn + 1);
    this.rcvNxt = u32(clientIsn + 1);
  }
}

/** A reply record with the simulated connection it came from (for tests that reorder replies). */
export interface SimRecord { rec: Buffer; conn: number; dataLen: number; flags: number }

/** A minimal TCP responder: one connection per 4-tuple, in-order receive, no retransmission. */
export class SimTarget {
  readonly conns = new Map<string, SimConn>();
  readonly history: SimConn[] = [];
  readonly log: string[] = [];
  private nextId = 1;
  constructor(readonly o: SimOpts) {}

  static defaults(rng: Rng, over: Partial<SimOpts> = {}): SimOpts {
    return {
      window: 65535, wscale: 7, timestamps: true, respSeg: 1448, auto: true, rstDataAfterFin: true, rng,
      onRequest: () => ({ kind: 'respond', bytes: 100 }), ...over,
    };
  }

  connFor(clientIp: number, clientPort: number): SimConn | undefined {
    for (const c of this.conns.values()) if (c.clientIp === clientIp && c.clientPort === clientPort) return c;
    return undefined;
  }

  /** A record from connection `c` to its client. */
  record(c: SimConn, flags: number, seq: number, payloadLen = 0, extra: { window?: number; ack?: number; options?: Buffer } = {}): SimRecord {
    let options = extra.options;
    if (options === undefined && c.tsOn) options = opt.ts(c.tsVal++, c.tsRecent);
    const win = extra.window ?? (c.state === 'synrcvd' && (flags & F.SYN) ? Math.min(this.o.window, 65535) : this.o.window >>> c.wsShift);
    const rec = replyRecord({
      srcIp: c.targetIp, dstIp: c.clientIp, srcPort: c.targetPort, dstPort: c.clientPort,
      seq, ack: extra.ack ?? c.rcvNxt, flags, window: Math.min(win, 65535), options, payloadLen,
    });
    return { rec, conn: c.id, dataLen: payloadLen, flags };
  }

  /** Pure ACK with the connection's current state. */
  ack(c: SimConn, extra: { window?: number; ack?: number } = {}): SimRecord {
    return this.record(c, F.ACK, c.sndNxt, 0, extra);
  }

  /** Response data from connection `c`: `n` bytes in `respSeg`-sized records. */
  respond(c: SimConn, n: number): SimRecord[] {
    const out: SimRecord[] = [];
    for (let done = 0; done < n; done += this.o.respSeg) {
      const len = Math.min(this.o.respSeg, n - done);
      const last = done + len >= n;
      out.push(this.record(c, F.ACK | (last ? F.PSH : 0), c.sndNxt, len));
      c.sndNxt = u32(c.sndNxt + len);
    }
    return out;
  }

  finRec(c: SimConn): SimRecord {
    const r = this.record(c, F.FIN | F.ACK, c.sndNxt);
    c.sndNxt = u32(c.sndNxt + 1);
    c.finSent = true;
    return r;
  }

  private synAck(c: SimConn, synOpts: { ws: number; ts: [number, number] | null }): SimRecord {
    const parts = [opt.mss(1460)];
    if (this.o.wscale !== null && synOpts.ws >= 0) { parts.push(opt.ws(this.o.wscale)); c.wsShift = this.o.wscale; }
    if (this.o.timestamps && synOpts.ts) { c.tsOn = true; c.tsRecent = synOpts.ts[0]; parts.push(opt.ts(c.tsVal++, c.tsRecent)); }
    return this.record(c, F.SYN | F.ACK, c.isn, 0, { options: Buffer.concat(parts), window: Math.min(this.o.window, 65535) });
  }

  /** Consumes one packet from the engine; returns the reply records it causes. */
  handle(buf: Buffer): SimRecord[] {
    const p = new TcpPacket();
    if (p.check(buf, 0, buf.length) !== 0) return [];
    const t = p.tcp;
    const key = routeKey(p.ip.src, t.srcPort, p.ip.dst, t.dstPort);
    const flags = t.flags;
    const plen = p.payloadLen;
    const payload = buf.subarray(t.off + t.headerLen, p.ip.off + p.ip.totalLen);
    let c = this.conns.get(key);
    const tso = t.timestampOffset();
    if (c && c.tsOn && tso >= 0) c.tsRecent = buf.readUInt32BE(tso + 2);

    if (flags & F.RST) {
      if (c) {
        // Acceptable when in the receive window (RFC 5961 would want an exact match; keep it simple).
        const d = u32(t.seq - c.rcvNxt);
        if (d < Math.max(this.o.window, 1)) {
          this.log.push(`rst-in c${c.id}`);
          c.state = 'closed';
          this.conns.delete(key);
        }
      }
      return [];
    }
    if ((flags & (F.SYN | F.ACK)) === F.SYN) {
      if (c && c.state === 'synrcvd' && c.clientIsn === t.seq) {
        return [this.synAck(c, { ws: t.windowScale(), ts: tso >= 0 ? [buf.readUInt32BE(tso + 2), 0] : null })];
      }
      if (c && c.state === 'est') {
        // A SYN on an established connection: challenge ACK (RFC 5961), as Linux does.
        this.log.push(`challenge c${c.id}`);
        return [this.ack(c)];
      }
      c = new SimConn(this.nextId++, p.ip.src, t.srcPort, p.ip.dst, t.dstPort, t.seq, this.o.rng.u32());
      this.conns.set(key, c);
      this.history.push(c);
      this.log.push(`syn c${c.id} isn=${t.seq}`);
      return [this.synAck(c, { ws: t.windowScale(), ts: tso >= 0 ? [buf.readUInt32BE(tso + 2), 0] : null })];
    }
    if (!c) {
      // No connection: answer with a RST, as a real stack does.
      if (flags & F.ACK) {
        return [{ rec: replyRecord({ srcIp: p.ip.dst, dstIp: p.ip.src, srcPort: t.dstPort, dstPort: t.srcPort, seq: t.ack, ack: 0, flags: F.RST }), conn: 0, dataLen: 0, flags: F.RST }];
      }
      return [];
    }
    if (flags & F.SYN) return [];
    if (c.state === 'synrcvd') {
      if ((flags & F.ACK) && t.ack === c.sndNxt) { c.state = 'est'; this.log.push(`est c${c.id}`); }
      else return [];
    }
    if (plen === 0 && !(flags & F.FIN)) return [];
    const out: SimRecord[] = [];
    let request = false;
    if (plen > 0 && c.finSent && this.o.rstDataAfterFin && seqGt(u32(t.seq + plen), c.rcvNxt)) {
      // Closed by the application: new data aborts the connection; the RST (no ACK flag) has seq = the segment's ack.
      this.log.push(`rst-out-closed c${c.id}`);
      this.conns.delete(key);
      c.state = 'closed';
      return [{ rec: replyRecord({ srcIp: c.targetIp, dstIp: c.clientIp, srcPort: c.targetPort, dstPort: c.clientPort, seq: t.ack, ack: 0, flags: F.RST }), conn: c.id, dataLen: 0, flags: F.RST }];
    }
    if (plen > 0) {
      const d = u32(c.rcvNxt - t.seq); // bytes of this segment already received
      if (seqGt(t.seq, c.rcvNxt)) {
        // Out of order: no queue, a duplicate ACK.
        this.log.push(`ooo c${c.id} seq=${t.seq}`);
        if (this.o.auto) out.push(this.ack(c));
        return out;
      }
      if (d < plen) {
        const fresh = payload.subarray(d);
        c.stream = Buffer.concat([c.stream, fresh]);
        c.rcvNxt = u32(c.rcvNxt + fresh.length);
        if (flags & F.PSH) request = true;
      } else {
        this.log.push(`dup c${c.id} seq=${t.seq}`);
      }
    }
    let fin = false;
    if ((flags & F.FIN) && !c.finRcvd && u32(t.seq + plen) === c.rcvNxt) {
      c.finRcvd = true;
      c.rcvNxt = u32(c.rcvNxt + 1);
      fin = true;
      this.log.push(`fin-in c${c.id}`);
    }
    if (!this.o.auto) return out;
    let closeAfter = false;
    if (request) {
      const idx = c.requests++;
      this.log.push(`req c${c.id} #${idx} total=${c.stream.length}`);
      const a = c.finSent ? { kind: 'ack-only' as const } : this.o.onRequest(c, idx);
      if (a.kind === 'rst') {
        out.push(this.ack(c));
        out.push({ rec: this.record(c, F.RST | F.ACK, c.sndNxt).rec, conn: c.id, dataLen: 0, flags: F.RST | F.ACK });
        this.log.push(`rst-out c${c.id}`);
        this.conns.delete(key);
        c.state = 'closed';
        return out;
      }
      if (a.kind === 'respond' && a.bytes > 0) {
        this.log.push(`resp c${c.id} #${idx} ${a.bytes}`);
        const recs = this.respond(c, a.bytes);
        if (a.fin === 'merged') {
          const last = recs[recs.length - 1];
          last.rec[33] |= F.FIN;
          last.flags |= F.FIN;
          c.sndNxt = u32(c.sndNxt + 1);
          c.finSent = true;
          this.log.push(`fin-out c${c.id}`);
        }
        out.push(...recs);
      } else out.push(this.ack(c));
      if (a.kind === 'respond' && a.fin) closeAfter = true;
    } else if (!fin) {
      out.push(this.ack(c));
    }
    if (fin) {
      if (!c.finSent) out.push(this.finRec(c));
      else out.push(this.ack(c));
      this.log.push(`fin-out c${c.id}`);
    } else if (closeAfter && !c.finSent) {
      out.push(this.finRec(c));
      this.log.push(`fin-out c${c.id}`);
    }
    return out;
  }
}

// ------------------------------------------------------------------------------------ harness

export const ONLINE_IP = ip('10.0.0.1');
export const TARGET_IP = ip('192.168.1.2');
export const TARGET_PORT = 8080;
/** Where simulated clocks start (ms): any fixed time. */
export const SIM_START_MS = 1_700_000_000_000;

export function makeRule(index = 0, onlinePort = 80, targetIp = TARGET_IP, targetPort = TARGET_PORT): TransferRule {
  return new TransferRule(index, 0, onlinePort, targetIp, targetPort, null, null);
}

/** One engine with a recording sender, registrar and simulated target. */
export class Harness {
  readonly clock = { n: 0 };
  readonly sender = new CaptureSender(this.clock);
  readonly reg = new Registrar(this.clock);
  readonly engine: Engine;
  readonly sim: SimTarget;
  readonly rule: TransferRule;
  /** Ordered events: 'out <port> <seq> <len>' for payload sent, 'in <port> <len>' for reply data delivered. */
  readonly events: string[] = [];
  /** Validation failures of sent packets. */
  readonly problems: string[] = [];
  private readonly view = new TcpPacket();
  /** The simulated clock (ms): the time every call into the engine passes; `advance` moves it. */
  now = SIM_START_MS;

  constructor(opts: Partial<EngineOptions> = {}, sim: Partial<SimOpts> = {}, seed = 1, rule = makeRule()) {
    this.rule = rule;
    this.engine = new Engine({ ...DEFAULT_ENGINE_OPTIONS, ...opts }, this.sender, this.reg, this.now);
    this.sim = new SimTarget(SimTarget.defaults(new Rng(seed), sim));
    this.sender.onSend = (p) => {
      const why = validateSent(p, this.reg, [this.rule], this.engine.opts.mtu);
      if (why) this.problems.push(why);
      const q = parse(p.buf);
      if (q.payload.length > 0) this.events.push(`out ${q.srcPort} ${q.seq} ${q.payload.length}`);
    };
  }

  /** Feeds captured client packets. */
  feed(...pkts: (Buffer | Buffer[])[]): void {
    for (const x of pkts.flat()) {
      const r = this.view.check(x, 0, x.length);
      if (r !== 0) throw new Error(`test built a bad packet (${r})`);
      this.engine.onClientPacket(this.view, this.rule, this.now);
    }
  }

  /** Feeds one captured packet matched to `rule` (any addresses). */
  feedRaw(buf: Buffer, rule: TransferRule): void {
    const r = this.view.check(buf, 0, buf.length);
    if (r !== 0) throw new Error(`test built a bad packet (${r})`);
    this.engine.onClientPacket(this.view, rule, this.now);
  }

  /** Delivers reply records (one batch), then flushAcks. */
  reply(...recs: (SimRecord | Buffer)[]): void {
    for (const r of recs) {
      const rec = Buffer.isBuffer(r) ? r : r.rec;
      if (rec.readUInt16BE(2) - 20 - ((rec[32] >>> 4) << 2) > 0) this.events.push(`in ${rec.readUInt16BE(22)} ${rec.readUInt16BE(2) - 20 - ((rec[32] >>> 4) << 2)}`);
      this.engine.onReply(rec, 0, this.now);
    }
    this.engine.flushAcks();
  }

  /** Lets the simulated target consume what the engine sent and the engine consume the replies, until quiet. */
  run(maxSteps = 100_000): void {
    for (let i = 0; i < maxSteps; i++) {
      const p = this.sender.queue.shift();
      if (!p) return;
      const recs = this.sim.handle(p.buf);
      if (recs.length) this.reply(...recs);
    }
    throw new Error('harness: no quiescence');
  }

  /** Moves the clock on by `ms` and lets the engine fire the timers due by then (pacing, RTO, SYN retransmission). */
  advance(ms: number): void {
    this.now += ms;
    this.engine.poll(this.now);
  }

  /** Moves the clock on by `ms` in steps of `stepMs`, polling at each (timers fire close to their deadlines). */
  advanceBy(ms: number, stepMs = 10): void {
    const end = this.now + ms;
    while (this.now < end) this.advance(Math.min(stepMs, end - this.now));
  }

  /** Runs the engine's once-a-second sweep at the current time (timeouts, linger, capture gaps). */
  sweep(): void { this.engine.sweep(this.now); }

  sentParsed(): Parsed[] { return this.sender.all.map((p) => parse(p.buf)); }

  close(): void { this.engine.shutdown(this.now); }
}

/**
 * Checks one sent packet: parses, IPv4 and TCP checksums right, not a fragment, destination is a
 * rule's target (also the address handed to the socket), the 4-tuple was announced with
 * CLIENT_ADD before, and within the MTU. Returns a description of the problem, or null.
 */
export function validateSent(p: SentPacket, reg: Registrar, rules: TransferRule[], mtu: number): string | null {
  const v = new TcpPacket();
  const b = p.buf;
  const r = v.check(b, 0, b.length);
  if (r !== 0) return `packet #${p.n} does not parse (reason ${r}): ${b.toString('hex')}`;
  if (v.ip.totalLen !== b.length) return `packet #${p.n}: tot_len ${v.ip.totalLen} != sent length ${b.length}`;
  const hl = v.ip.headerLen;
  if (!v.ip.checksumValid()) return `packet #${p.n}: bad IPv4 checksum`;
  if (!refTcpOk(b, hl)) return `packet #${p.n}: bad TCP checksum ${b.toString('hex')}`;
  const rule = rules.find((x) => x.targetIp === v.ip.dst && x.targetPort === v.tcp.dstPort);
  if (!rule) return `packet #${p.n}: destination ${ipToString(v.ip.dst)}:${v.tcp.dstPort} is no target`;
  if (p.dst !== rule.targetIpText) return `packet #${p.n}: handed to the socket for ${p.dst}, header says ${rule.targetIpText}`;
  const key = routeKey(v.ip.src, v.tcp.srcPort, v.ip.dst, v.tcp.dstPort);
  const add = reg.first.get(key);
  if (add === undefined || add > p.n) return `packet #${p.n}: ${key} not announced with CLIENT_ADD before`;
  if (b.length > mtu) return `packet #${p.n}: ${b.length} bytes > MTU ${mtu}`;
  return null;
}

/** Independent TCP checksum verification (plain word sum with BigInt-free folding). */
export function refTcpOk(b: Buffer, ipHl: number): boolean {
  const tot = b.readUInt16BE(2);
  const tcpLen = tot - ipHl;
  let s = 0;
  for (let i = 12; i < 20; i += 2) s += b.readUInt16BE(i);
  s += 6 + tcpLen;
  for (let i = ipHl; i < tot; i += 2) s += i + 1 < tot ? b.readUInt16BE(i) : b[i] << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s === 0xffff;
}

export { TcpFlag };

/** Every packet a harness (IPv4 or IPv6) sent passed its checks. */
export function noProblems(h: { problems: string[] }): void {
  assert.deepEqual(h.problems, [], 'every sent packet valid');
}

/**
 * Runs `fn` and counts full TCP checksum computations over packets that carry payload (the
 * module's export is replaced meanwhile, so every caller through it is counted).
 */
export function countFullTcpChecksums(fn: () => void): number {
  const mod = checksumModule as { fillTcpChecksum: typeof checksumModule.fillTcpChecksum };
  const orig = mod.fillTcpChecksum;
  let n = 0;
  mod.fillTcpChecksum = (buf, ipOff, tcpOff, tcpLen) => {
    if (tcpLen > ((buf[tcpOff + 12] >>> 4) << 2)) n++;
    orig(buf, ipOff, tcpOff, tcpLen);
  };
  try { fn(); } finally { mod.fillTcpChecksum = orig; }
  return n;
}
