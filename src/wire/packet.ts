import { WireReason } from './errors';
import { IPPROTO_TCP, Ipv4Packet } from './ipv4';
import { Ipv6Packet } from './ipv6';
import { TcpSegment } from './tcp';

/**
 * The TCP part of both views' checks, once the IP header is valid: TCP, and a TCP header that
 * fits in `len` bytes at `off` (one function, called with the one TcpSegment class).
 */
function checkTcpIn(tcp: TcpSegment, protocol: number, buf: Buffer, off: number, len: number): WireReason {
  if (protocol !== IPPROTO_TCP) return WireReason.NotTcp;
  return tcp.check(buf, off, len);
}

/**
 * A reusable IPv4+TCP view pair: `check` validates untrusted bytes once (IPv4, TCP, lengths,
 * not a fragment), after which `ip` and `tcp` accessors cannot fail. One instance lives as
 * long as its owner; re-pointing it allocates nothing. The IP part stays in each class (its
 * view is of one class there), the TCP part is `checkTcpIn`.
 */
export class TcpPacket {
  readonly ip = new Ipv4Packet();
  readonly tcp = new TcpSegment();

  /** Whole packets: the total length must be within `avail`. */
  check(buf: Buffer, off: number, avail: number): WireReason {
    return this.afterIp(this.ip.check(buf, off, avail));
  }

  /** Header-only captures (intercept): the IP total length may exceed the captured bytes. */
  checkHeaders(buf: Buffer, off: number, avail: number): WireReason {
    return this.afterIp(this.ip.checkHeader(buf, off, avail));
  }

  private afterIp(r: WireReason): WireReason {
    if (r !== WireReason.Ok) return r;
    const ip = this.ip;
    // Any fragment (MF set or non-zero offset) is refused: a TCP segment must be whole.
    if ((ip.fragField & 0x3fff) !== 0 && ip.protocol === IPPROTO_TCP) return WireReason.Fragment;
    const hl = ip.headerLen;
    return checkTcpIn(this.tcp, ip.protocol, ip.buf, ip.off + hl, ip.len - hl);
  }

  /** TCP payload length from the IP total length (valid for header-only captures too). */
  get payloadLen(): number {
    return this.ip.totalLen - this.ip.headerLen - this.tcp.headerLen;
  }
}

/**
 * The IPv6 counterpart of `TcpPacket`: `check` validates untrusted bytes once (IPv6, the
 * extension headers before TCP, lengths, no fragment), after which `ip` and `tcp` cannot fail.
 */
export class Tcp6Packet {
  readonly ip = new Ipv6Packet();
  readonly tcp = new TcpSegment();

  /** Whole packets: 40 + payload length must be within `avail`. */
  check(buf: Buffer, off: number, avail: number): WireReason {
    return this.afterIp(this.ip.check(buf, off, avail));
  }

  /** Header-only captures: the payload length may exceed the captured bytes. */
  checkHeaders(buf: Buffer, off: number, avail: number): WireReason {
    return this.afterIp(this.ip.checkHeader(buf, off, avail));
  }

  private afterIp(r: WireReason): WireReason {
    if (r !== WireReason.Ok) return r;
    const ip = this.ip;
    return checkTcpIn(this.tcp, ip.protocol, ip.buf, ip.payloadOffset, ip.payloadLen);
  }

  /** TCP payload length from the IPv6 payload length (valid for header-only captures too). */
  get payloadLen(): number {
    return this.ip.totalLen - this.ip.headerLen - this.tcp.headerLen;
  }
}
