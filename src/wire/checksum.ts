/**
 * Internet checksums (RFC 1071) over Buffers, full and incremental (RFC 1624).
 *
 * All functions work on a Buffer and offsets; none allocates.
 */
import { Ip } from './ipv4';
import { Ip6 } from './ipv6';
import { Tcp } from './tcp';

const IPPROTO_TCP = 6;

/** Ones-complement sum of `len` bytes at `off`, added to `initial`; not folded. */
export function onesSum(buf: Buffer, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + (len & ~1);
  let i = off;
  // Unrolled by 4 words: sums stay far below 2^53, folding happens once at the end.
  for (; i + 8 <= end; i += 8) {
    sum += ((buf[i] << 8) | buf[i + 1]) + ((buf[i + 2] << 8) | buf[i + 3]) +
      ((buf[i + 4] << 8) | buf[i + 5]) + ((buf[i + 6] << 8) | buf[i + 7]);
  }
  for (; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (len & 1) sum += buf[off + len - 1] << 8;
  return sum;
}

/** Folds a ones-complement sum into 16 bits (not inverted). */
export function fold(sum: number): number {
  // Sums may exceed 32 bits for large inputs: reduce with arithmetic, then with shifts.
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The final checksum value (folded and inverted) of a sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** IPv4 header checksum for the header at `ipOff` of `hdrLen` bytes, computed with the field as zero. */
export function ipv4HeaderChecksum(buf: Buffer, ipOff: number, hdrLen: number): number {
  const stored = (buf[ipOff + Ip.Checksum] << 8) | buf[ipOff + Ip.Checksum + 1];
  return finish(onesSum(buf, ipOff, hdrLen) - stored);
}

/** Writes the IPv4 header checksum in place. */
export function fillIpv4Checksum(buf: Buffer, ipOff: number, hdrLen: number): void {
  buf[ipOff + Ip.Checksum] = 0;
  buf[ipOff + Ip.Checksum + 1] = 0;
  const c = finish(onesSum(buf, ipOff, hdrLen));
  buf[ipOff + Ip.Checksum] = c >>> 8;
  buf[ipOff + Ip.Checksum + 1] = c & 0xff;
}

/** Sum of the IPv4 TCP/UDP pseudo-header (source, destination, protocol, length). */
export function pseudoHeaderSum4(buf: Buffer, ipOff: number, protocol: number, l4Len: number): number {
  const src = ipOff + Ip.Src;
  const dst = ipOff + Ip.Dst;
  return ((buf[src] << 8) | buf[src + 1]) + ((buf[src + 2] << 8) | buf[src + 3]) +
    ((buf[dst] << 8) | buf[dst + 1]) + ((buf[dst + 2] << 8) | buf[dst + 3]) +
    protocol + l4Len;
}

/**
 * Sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source and destination addresses
 * (16 bytes each, at the fixed header's offsets 8 and 24), the 32-bit upper-layer length and
 * the next header value. The destination is the header's: a routing header with segments
 * left (whose final destination would count instead) is refused by the IPv6 view.
 */
export function pseudoHeaderSum6(buf: Buffer, ipOff: number, protocol: number, l4Len: number): number {
  const a = ipOff + Ip6.Src;
  let sum = protocol + (l4Len >>> 16) + (l4Len & 0xffff);
  for (let i = a; i < a + 32; i += 8) {
    sum += ((buf[i] << 8) | buf[i + 1]) + ((buf[i + 2] << 8) | buf[i + 3]) +
      ((buf[i + 4] << 8) | buf[i + 5]) + ((buf[i + 6] << 8) | buf[i + 7]);
  }
  return sum;
}

/** The pseudo-header sum of the IPv4 or IPv6 packet at `ipOff` (by its version nibble). */
export function pseudoHeaderSum(buf: Buffer, ipOff: number, protocol: number, l4Len: number): number {
  return (buf[ipOff] >>> 4) === 6 ? pseudoHeaderSum6(buf, ipOff, protocol, l4Len) : pseudoHeaderSum4(buf, ipOff, protocol, l4Len);
}

/**
 * Full TCP checksum of the segment at `tcpOff` (`tcpLen` bytes: header and payload) of the
 * IPv4 or IPv6 packet at `ipOff` (the pseudo-header follows its version), computed as if the checksum field were zero.
 */
export function tcpChecksum(buf: Buffer, ipOff: number, tcpOff: number, tcpLen: number): number {
  const stored = (buf[tcpOff + Tcp.Checksum] << 8) | buf[tcpOff + Tcp.Checksum + 1];
  return finish(pseudoHeaderSum(buf, ipOff, IPPROTO_TCP, tcpLen) + onesSum(buf, tcpOff, tcpLen) - stored);
}

/** Writes the full TCP checksum in place. */
export function fillTcpChecksum(buf: Buffer, ipOff: number, tcpOff: number, tcpLen: number): void {
  buf[tcpOff + Tcp.Checksum] = 0;
  buf[tcpOff + Tcp.Checksum + 1] = 0;
  const c = finish(pseudoHeaderSum(buf, ipOff, IPPROTO_TCP, tcpLen) + onesSum(buf, tcpOff, tcpLen));
  buf[tcpOff + Tcp.Checksum] = c >>> 8;
  buf[tcpOff + Tcp.Checksum + 1] = c & 0xff;
}

/** True when the TCP checksum of the segment verifies (sums to 0xffff). */
export function tcpChecksumValid(buf: Buffer, ipOff: number, tcpOff: number, tcpLen: number): boolean {
  return fold(pseudoHeaderSum(buf, ipOff, IPPROTO_TCP, tcpLen) + onesSum(buf, tcpOff, tcpLen)) === 0xffff;
}

/**
 * True when the TCP checksum field holds only the folded pseudo-header sum, as Linux leaves
 * it on locally generated packets with checksum offload (CHECKSUM_PARTIAL): such a packet
 * captured on a veth or loopback needs a full checksum, not an incremental update.
 */
export function tcpChecksumIsPartial(buf: Buffer, ipOff: number, tcpOff: number, tcpLen: number): boolean {
  const stored = (buf[tcpOff + Tcp.Checksum] << 8) | buf[tcpOff + Tcp.Checksum + 1];
  const p = fold(pseudoHeaderSum(buf, ipOff, IPPROTO_TCP, tcpLen));
  return stored === p || stored === (~p & 0xffff);
}

/**
 * RFC 1624 equation 3: the new checksum after a 16-bit word of the covered data changed
 * from `oldWord` to `newWord`. `csum` is the checksum as stored in the header.
 */
export function csumUpdate16(csum: number, oldWord: number, newWord: number): number {
  const sum = (~csum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~fold(sum) & 0xffff;
}

/** The same for a 32-bit field (two words). */
export function csumUpdate32(csum: number, oldValue: number, newValue: number): number {
  const sum = (~csum & 0xffff) + (~(oldValue >>> 16) & 0xffff) + (~oldValue & 0xffff) +
    ((newValue >>> 16) & 0xffff) + (newValue & 0xffff);
  return ~fold(sum) & 0xffff;
}

/**
 * The checksum after a field of `len` bytes (even) changed from `oldBuf[oldOff]` to
 * `newBuf[newOff]` (RFC 1624 equation 3 over every word): an IPv6 address is 16 bytes.
 */
export function csumReplace(csum: number, oldBuf: Buffer, oldOff: number, newBuf: Buffer, newOff: number, len: number): number {
  let sum = ~csum & 0xffff;
  for (let i = 0; i < len; i += 2) {
    sum += (~((oldBuf[oldOff + i] << 8) | oldBuf[oldOff + i + 1]) & 0xffff) + ((newBuf[newOff + i] << 8) | newBuf[newOff + i + 1]);
  }
  return ~fold(sum) & 0xffff;
}
