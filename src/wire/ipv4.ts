import { WireError, WireReason, wireError } from './errors';
import { fillIpv4Checksum, ipv4HeaderChecksum } from './checksum';
import { get16, get32, lengthOf, put16, put32 } from './bytes';

export const IPV4_MIN_HEADER = 20;
export const IPPROTO_TCP = 6;

/** IPv4 header field offsets, relative to the start of the header. */
export const enum Ip {
  VerIhl = 0,
  Tos = 1,
  TotLen = 2,
  Id = 4,
  FragOff = 6,
  Ttl = 8,
  Protocol = 9,
  Checksum = 10,
  Src = 12,
  Dst = 16,
}

/**
 * A view of an IPv4 packet over a Buffer: fixed offsets, no copy. Build it with
 * `checkedFrom` for untrusted bytes, or re-point a long-lived view with `check` (the hot
 * path's way: no allocation). After a successful check no accessor can read out of bounds.
 */
export class Ipv4Packet {
  buf: Buffer;
  off: number;
  /** Bytes of the packet that are present: min(total length, captured bytes). */
  len: number;

  constructor(buf: Buffer = Buffer.alloc(0), off = 0, len = 0) {
    this.buf = buf;
    this.off = off;
    this.len = len;
  }

  /** Validates `avail` bytes at `off` and returns a view, or the reason they are not a packet. */
  static checkedFrom(buf: Buffer, off = 0, avail = buf.length - off): Ipv4Packet | WireError {
    const v = new Ipv4Packet();
    const r = v.check(buf, off, avail);
    return r === WireReason.Ok ? v : wireError(r);
  }

  /**
   * Re-points the view and validates: version 4, IHL ≥ 5 and within the bytes, total length
   * ≥ IHL and not beyond the bytes (trailing link-layer padding is ignored).
   */
  check(buf: Buffer, off: number, avail: number): WireReason {
    if (off < 0 || avail < IPV4_MIN_HEADER || off + avail > lengthOf(buf)) return WireReason.Truncated;
    const vi = buf[off + Ip.VerIhl];
    if (vi >>> 4 !== 4) return WireReason.NotIpv4;
    const hl = (vi & 0x0f) << 2;
    if (hl < IPV4_MIN_HEADER || hl > avail) return WireReason.BadIhl;
    const tot = (buf[off + Ip.TotLen] << 8) | buf[off + Ip.TotLen + 1];
    if (tot < hl || tot > avail) return WireReason.BadTotalLength;
    this.buf = buf;
    this.off = off;
    this.len = tot;
    return WireReason.Ok;
  }

  /**
   * Like `check`, for captures truncated on purpose (a short snap length): the header must be
   * present, the total length may exceed the captured bytes. `len` is then the captured part.
   */
  checkHeader(buf: Buffer, off: number, avail: number): WireReason {
    if (off < 0 || avail < IPV4_MIN_HEADER || off + avail > lengthOf(buf)) return WireReason.Truncated;
    const vi = buf[off + Ip.VerIhl];
    if (vi >>> 4 !== 4) return WireReason.NotIpv4;
    const hl = (vi & 0x0f) << 2;
    if (hl < IPV4_MIN_HEADER || hl > avail) return WireReason.BadIhl;
    const tot = (buf[off + Ip.TotLen] << 8) | buf[off + Ip.TotLen + 1];
    if (tot < hl) return WireReason.BadTotalLength;
    this.buf = buf;
    this.off = off;
    this.len = tot < avail ? tot : avail;
    return WireReason.Ok;
  }

  get version(): number { return this.buf[this.off + Ip.VerIhl] >>> 4; }
  get headerLen(): number { return (this.buf[this.off + Ip.VerIhl] & 0x0f) << 2; }
  get tos(): number { return this.buf[this.off + Ip.Tos]; }
  get totalLen(): number { return get16(this.buf, this.off + Ip.TotLen); }
  set totalLen(v: number) { put16(this.buf, this.off + Ip.TotLen, v); }
  get id(): number { return get16(this.buf, this.off + Ip.Id); }
  set id(v: number) { put16(this.buf, this.off + Ip.Id, v & 0xffff); }
  get fragField(): number { return get16(this.buf, this.off + Ip.FragOff); }
  get dontFragment(): boolean { return (this.buf[this.off + Ip.FragOff] & 0x40) !== 0; }
  get moreFragments(): boolean { return (this.buf[this.off + Ip.FragOff] & 0x20) !== 0; }
  /** Fragment offset in bytes. */
  get fragOffset(): number { return (this.fragField & 0x1fff) << 3; }
  get ttl(): number { return this.buf[this.off + Ip.Ttl]; }
  set ttl(v: number) { this.buf[this.off + Ip.Ttl] = v; }
  get protocol(): number { return this.buf[this.off + Ip.Protocol]; }
  get checksum(): number { return get16(this.buf, this.off + Ip.Checksum); }
  /** Source address as an unsigned 32-bit number (network order value). */
  get src(): number { return get32(this.buf, this.off + Ip.Src); }
  set src(v: number) { put32(this.buf, this.off + Ip.Src, v >>> 0); }
  get dst(): number { return get32(this.buf, this.off + Ip.Dst); }
  set dst(v: number) { put32(this.buf, this.off + Ip.Dst, v >>> 0); }
  /** Offset (in buf) of the transport header. */
  get payloadOffset(): number { return this.off + this.headerLen; }
  get payloadLen(): number { return this.len - this.headerLen; }

  /** The header checksum this header should carry. */
  computeChecksum(): number { return ipv4HeaderChecksum(this.buf, this.off, this.headerLen); }
  checksumValid(): boolean { return this.computeChecksum() === this.checksum; }
  fillChecksum(): void { fillIpv4Checksum(this.buf, this.off, this.headerLen); }
}

/** Dotted quad of a 32-bit address (for logs and addresses handed to sockets; not hot). */
export function ipToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** Parses a dotted quad into a 32-bit number, or returns -1. */
export function parseIp(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m) return -1;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return -1;
    v = v * 256 + o;
  }
  return v;
}
