import { WireError, WireReason, wireError } from './errors';
import { fillTcpChecksum, tcpChecksum, tcpChecksumValid } from './checksum';
import { get16, get32, lengthOf, put16, put32 } from './bytes';

export const TCP_MIN_HEADER = 20;

/** TCP header field offsets, relative to the start of the header. */
export const enum Tcp {
  SrcPort = 0,
  DstPort = 2,
  Seq = 4,
  Ack = 8,
  DataOff = 12,
  Flags = 13,
  Window = 14,
  Checksum = 16,
  Urgent = 18,
  Options = 20,
}

export const enum TcpFlag {
  FIN = 0x01,
  SYN = 0x02,
  RST = 0x04,
  PSH = 0x08,
  ACK = 0x10,
  URG = 0x20,
  ECE = 0x40,
  CWR = 0x80,
}

/** Offsets in the timestamp option (kind 8, length 10) from its start. */
export const enum TsOpt {
  Val = 2,
  Ecr = 6,
}

export const enum TcpOpt {
  End = 0,
  Nop = 1,
  Mss = 2,
  WindowScale = 3,
  SackPermitted = 4,
  Sack = 5,
  Timestamp = 8,
}

/**
 * A view of a TCP segment (header, options, payload) over a Buffer. `len` is the segment
 * length: the IP payload length, not the captured length.
 */
export class TcpSegment {
  buf: Buffer;
  off: number;
  len: number;

  constructor(buf: Buffer = Buffer.alloc(0), off = 0, len = 0) {
    this.buf = buf;
    this.off = off;
    this.len = len;
  }

  static checkedFrom(buf: Buffer, off = 0, len = buf.length - off): TcpSegment | WireError {
    const v = new TcpSegment();
    const r = v.check(buf, off, len);
    return r === WireReason.Ok ? v : wireError(r);
  }

  /** Re-points the view: the header must fit, and the data offset must be ≥ 5 and within `len`. */
  check(buf: Buffer, off: number, len: number): WireReason {
    if (off < 0 || len < TCP_MIN_HEADER || off + len > lengthOf(buf)) return WireReason.Truncated;
    const doff = (buf[off + Tcp.DataOff] >>> 4) << 2;
    if (doff < TCP_MIN_HEADER || doff > len) return WireReason.BadDataOffset;
    this.buf = buf;
    this.off = off;
    this.len = len;
    return WireReason.Ok;
  }

  get srcPort(): number { return (this.buf[this.off + Tcp.SrcPort] << 8) | this.buf[this.off + Tcp.SrcPort + 1]; }
  set srcPort(v: number) { put16(this.buf, this.off + Tcp.SrcPort, v & 0xffff); }
  get dstPort(): number { return (this.buf[this.off + Tcp.DstPort] << 8) | this.buf[this.off + Tcp.DstPort + 1]; }
  set dstPort(v: number) { put16(this.buf, this.off + Tcp.DstPort, v & 0xffff); }
  get seq(): number { return get32(this.buf, this.off + Tcp.Seq); }
  set seq(v: number) { put32(this.buf, this.off + Tcp.Seq, v >>> 0); }
  get ack(): number { return get32(this.buf, this.off + Tcp.Ack); }
  set ack(v: number) { put32(this.buf, this.off + Tcp.Ack, v >>> 0); }
  get headerLen(): number { return (this.buf[this.off + Tcp.DataOff] >>> 4) << 2; }
  get flags(): number { return this.buf[this.off + Tcp.Flags]; }
  set flags(v: number) { this.buf[this.off + Tcp.Flags] = v; }
  get fin(): boolean { return (this.flags & TcpFlag.FIN) !== 0; }
  get syn(): boolean { return (this.flags & TcpFlag.SYN) !== 0; }
  get rst(): boolean { return (this.flags & TcpFlag.RST) !== 0; }
  get psh(): boolean { return (this.flags & TcpFlag.PSH) !== 0; }
  get ackFlag(): boolean { return (this.flags & TcpFlag.ACK) !== 0; }
  get window(): number { return get16(this.buf, this.off + Tcp.Window); }
  set window(v: number) { put16(this.buf, this.off + Tcp.Window, v & 0xffff); }
  get checksum(): number { return get16(this.buf, this.off + Tcp.Checksum); }
  set checksum(v: number) { put16(this.buf, this.off + Tcp.Checksum, v & 0xffff); }
  get urgent(): number { return get16(this.buf, this.off + Tcp.Urgent); }
  get payloadOffset(): number { return this.off + this.headerLen; }
  get payloadLen(): number { return this.len - this.headerLen; }

  /** Offset (in buf) of the option of `kind` whose length is `minLen` or more, or -1. */
  findOption(kind: number, minLen = 2): number {
    return findTcpOption(this.buf, this.off, this.headerLen, kind, minLen);
  }
  /** MSS option value, or -1. */
  mss(): number {
    const o = this.findOption(TcpOpt.Mss, 4);
    return o < 0 ? -1 : get16(this.buf, o + 2);
  }
  /** Window-scale shift (capped at 14 as RFC 7323 says), or -1. */
  windowScale(): number {
    const o = this.findOption(TcpOpt.WindowScale, 3);
    return o < 0 ? -1 : Math.min(this.buf[o + 2], 14);
  }
  sackPermitted(): boolean { return this.findOption(TcpOpt.SackPermitted, 2) >= 0; }
  /** Offset of the timestamp option (kind 8, length 10), or -1. TSval at +2, TSecr at +6. */
  timestampOffset(): number { return this.findOption(TcpOpt.Timestamp, 10); }

  computeChecksum(ipOff: number): number { return tcpChecksum(this.buf, ipOff, this.off, this.len); }
  checksumValid(ipOff: number): boolean { return tcpChecksumValid(this.buf, ipOff, this.off, this.len); }
  fillChecksum(ipOff: number): void { fillTcpChecksum(this.buf, ipOff, this.off, this.len); }
}

/**
 * Walks the options of the TCP header at `tcpOff` (header length `hdrLen`) and returns the
 * offset of the first option of `kind` whose length byte is at least `minLen` and fits, or -1.
 * Malformed option lists end the walk; they never read beyond the header.
 */
export function findTcpOption(buf: Buffer, tcpOff: number, hdrLen: number, kind: number, minLen: number): number {
  let i = tcpOff + TCP_MIN_HEADER;
  const end = tcpOff + hdrLen;
  while (i < end) {
    const k = buf[i];
    if (k === TcpOpt.End) return -1;
    if (k === TcpOpt.Nop) { i++; continue; }
    if (i + 1 >= end) return -1;
    const l = buf[i + 1];
    if (l < 2 || i + l > end) return -1;
    if (k === kind) return l >= minLen ? i : -1;
    i += l;
  }
  return -1;
}
