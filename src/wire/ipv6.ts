import { WireError, WireReason, wireError } from './errors';
import { get32, lengthOf, put16 } from './bytes';

export const IPV6_HEADER = 40;
/** Bytes of an IPv6 address. */
export const IPV6_ADDR_LEN = 16;

/** IPv6 fixed-header field offsets, relative to the start of the header (RFC 8200 section 3). */
export const enum Ip6 {
  VerTcFlow = 0,
  PayloadLen = 4,
  NextHeader = 6,
  HopLimit = 7,
  Src = 8,
  Dst = 24,
}

/** Next Header values the view knows (IANA "Assigned Internet Protocol Numbers"). */
export const enum Ip6Next {
  HopByHop = 0,
  Tcp = 6,
  Routing = 43,
  Fragment = 44,
  Esp = 50,
  Ah = 51,
  NoNextHeader = 59,
  DestOpts = 60,
  Mobility = 135,
  Hip = 139,
  Shim6 = 140,
  Experimental1 = 253,
  Experimental2 = 254,
}

/** Offsets in a routing header (RFC 8200 section 4.4) from its start. */
export const enum Ip6Routing {
  NextHeader = 0,
  HdrExtLen = 1,
  Type = 2,
  SegmentsLeft = 3,
}

/** At most this many extension headers are walked before the packet is refused. */
export const MAX_IPV6_EXTENSIONS = 8;

/**
 * A view of an IPv6 packet over a Buffer, in the style of `Ipv4Packet`: `checkedFrom` for
 * untrusted bytes, `check` to re-point a long-lived view without allocation. The check walks
 * the extension headers that may precede TCP at the final destination (hop-by-hop options,
 * routing with no segments left, destination options) and stops at the first upper-layer
 * header: `protocol` is its Next Header value and `headerLen` covers the fixed header and
 * every extension header walked, so that `payloadOffset` is where TCP starts, as with IPv4.
 * Fragments, and the extension headers not walked (ESP, AH, mobility, ...), are refused with
 * a named reason.
 */
export class Ipv6Packet {
  buf: Buffer;
  off: number;
  /** Bytes of the packet that are present: min(40 + payload length, captured bytes). */
  len: number;
  /** Fixed header plus extension headers walked. */
  headerLen = IPV6_HEADER;
  /** Next Header value of the first upper-layer header (6 for TCP). */
  protocol = Ip6Next.NoNextHeader as number;

  constructor(buf: Buffer = Buffer.alloc(0), off = 0, len = 0) {
    this.buf = buf;
    this.off = off;
    this.len = len;
  }

  /** Validates `avail` bytes at `off` and returns a view, or the reason they are not a packet. */
  static checkedFrom(buf: Buffer, off = 0, avail = buf.length - off): Ipv6Packet | WireError {
    const v = new Ipv6Packet();
    const r = v.check(buf, off, avail);
    return r === WireReason.Ok ? v : wireError(r);
  }

  /** Whole packets: version 6, 40 + payload length within the bytes (trailing padding ignored). */
  check(buf: Buffer, off: number, avail: number): WireReason {
    return this.checkAt(buf, off, avail, false);
  }

  /**
   * Header-only captures (a short snap length): the fixed header and the extension headers
   * must be present, the payload length may exceed the captured bytes.
   */
  checkHeader(buf: Buffer, off: number, avail: number): WireReason {
    return this.checkAt(buf, off, avail, true);
  }

  private checkAt(buf: Buffer, off: number, avail: number, headersOnly: boolean): WireReason {
    if (off < 0 || avail < IPV6_HEADER || off + avail > lengthOf(buf)) return WireReason.Truncated;
    if (buf[off] >>> 4 !== 6) return WireReason.NotIpv6;
    const tot = IPV6_HEADER + ((buf[off + Ip6.PayloadLen] << 8) | buf[off + Ip6.PayloadLen + 1]);
    if (tot > avail && !headersOnly) return WireReason.Ipv6BadPayloadLength;
    const present = tot < avail ? tot : avail;
    let next = buf[off + Ip6.NextHeader];
    let p = IPV6_HEADER;
    for (let n = 0; ; n++) {
      if (next === Ip6Next.HopByHop || next === Ip6Next.DestOpts || next === Ip6Next.Routing) {
        if (n === MAX_IPV6_EXTENSIONS || p + 8 > present) return WireReason.Ipv6BadExtension;
        const el = (buf[off + p + 1] + 1) << 3;
        if (p + el > present) return WireReason.Ipv6BadExtension;
        if (next === Ip6Next.Routing && buf[off + p + Ip6Routing.SegmentsLeft] !== 0) return WireReason.Ipv6RoutingInTransit;
        next = buf[off + p];
        p += el;
        continue;
      }
      if (next === Ip6Next.Fragment) return WireReason.Ipv6Fragment;
      if (next === Ip6Next.Esp || next === Ip6Next.Ah || next === Ip6Next.Mobility || next === Ip6Next.Hip ||
        next === Ip6Next.Shim6 || next === Ip6Next.Experimental1 || next === Ip6Next.Experimental2) {
        return WireReason.Ipv6UnknownExtension;
      }
      break;
    }
    this.buf = buf;
    this.off = off;
    this.len = present;
    this.headerLen = p;
    this.protocol = next;
    return WireReason.Ok;
  }

  get version(): number { return this.buf[this.off] >>> 4; }
  get trafficClass(): number { return ((this.buf[this.off] & 0x0f) << 4) | (this.buf[this.off + 1] >>> 4); }
  get flowLabel(): number { return ((this.buf[this.off + 1] & 0x0f) << 16) | (this.buf[this.off + 2] << 8) | this.buf[this.off + 3]; }
  /** The Payload Length field: bytes after the fixed header, extension headers included. */
  get payloadLenField(): number { return (this.buf[this.off + Ip6.PayloadLen] << 8) | this.buf[this.off + Ip6.PayloadLen + 1]; }
  set payloadLenField(v: number) { put16(this.buf, this.off + Ip6.PayloadLen, v & 0xffff); }
  /** 40 + payload length: the counterpart of IPv4's total length. */
  get totalLen(): number { return IPV6_HEADER + this.payloadLenField; }
  set totalLen(v: number) { this.payloadLenField = v - IPV6_HEADER; }
  get nextHeader(): number { return this.buf[this.off + Ip6.NextHeader]; }
  get hopLimit(): number { return this.buf[this.off + Ip6.HopLimit]; }
  set hopLimit(v: number) { this.buf[this.off + Ip6.HopLimit] = v; }
  /** Offset (in buf) of the source address (16 bytes). */
  get srcOffset(): number { return this.off + Ip6.Src; }
  get dstOffset(): number { return this.off + Ip6.Dst; }
  /** Word `i` (0..3, big-endian) of the source address: addresses without allocation. */
  srcWord(i: number): number { return get32(this.buf, this.off + Ip6.Src + (i << 2)); }
  dstWord(i: number): number { return get32(this.buf, this.off + Ip6.Dst + (i << 2)); }
  /** Copies a 16-byte address from `from[at]` into the source field. */
  setSrc(from: Buffer, at = 0): void { from.copy(this.buf, this.off + Ip6.Src, at, at + IPV6_ADDR_LEN); }
  setDst(from: Buffer, at = 0): void { from.copy(this.buf, this.off + Ip6.Dst, at, at + IPV6_ADDR_LEN); }
  /** Offset (in buf) of the upper-layer header. */
  get payloadOffset(): number { return this.off + this.headerLen; }
  /** Upper-layer bytes present (after the extension headers). */
  get payloadLen(): number { return this.len - this.headerLen; }
}

/**
 * Parses an IPv6 address in the text forms of RFC 4291 section 2.2 (hex groups, one `::`,
 * an embedded dotted quad at the end) into 16 bytes, or returns null. No zone (`%eth0`), no
 * brackets, no prefix length: callers strip those. Not for the hot path.
 */
export function parseIpv6(s: string): Buffer | null {
  const t = s.trim();
  if (t.length < 2 || t.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(t)) return null;
  const words: number[] = [];
  let gap = -1;
  const halves = t.split('::');
  if (halves.length > 2) return null;
  const parsePart = (part: string, allowDotted: boolean): number[] | null => {
    if (part === '') return [];
    const groups = part.split(':');
    const out: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (g.includes('.')) {
        if (!allowDotted || i !== groups.length - 1) return null;
        const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(g);
        if (!m) return null;
        const o = [m[1], m[2], m[3], m[4]].map(Number);
        if (o.some((x) => x > 255)) return null;
        out.push((o[0] << 8) | o[1], (o[2] << 8) | o[3]);
        continue;
      }
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  if (halves.length === 2) {
    const a = parsePart(halves[0], false);
    const b = parsePart(halves[1], true);
    if (a === null || b === null || a.length + b.length > 7) return null;
    words.push(...a);
    gap = words.length;
    words.push(...b);
  } else {
    const a = parsePart(t, true);
    if (a === null || a.length !== 8) return null;
    words.push(...a);
  }
  const out = Buffer.alloc(IPV6_ADDR_LEN);
  const fill = 8 - words.length;
  let w = 0;
  for (let i = 0; i < words.length; i++) {
    if (i === gap) w += fill;
    put16(out, (w++) << 1, words[i]);
  }
  return out;
}

/**
 * The RFC 5952 text of the 16-byte address at `buf[off]`: lower case, leading zeros dropped,
 * the longest run (the first of equals) of two or more zero groups as `::`. IPv4-mapped
 * addresses end in a dotted quad. For logs and socket calls; not hot.
 */
export function ipv6ToString(buf: Buffer, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + 2 * i] << 8) | buf[off + 2 * i + 1]);
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
  }
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
