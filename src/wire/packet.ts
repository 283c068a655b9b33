import { WireReason } from './errors';
import { IPPROTO_TCP, Ipv4Packet } from './ipv4';
import { Ipv6Packet } from './ipv6';
import { TcpSegment } from './tcp';

/**
 * A reusable IPv4+TCP view pair: `check` validates untrusted bytes once (IPv4, TCP, lengths,
 * not a fragment), after which `ip` and `tcp` accessors cannot fail. One instance lives as
 * long as its owner; re-pointing it allocates nothing.
 */
export class TcpPacket {
  readonly ip = new Ipv4Packet();
  readonly tcp = new TcpSegment();

  /** Whole packets: the total length must be within `avail`. */
  check(buf: Buffer, off: number, avail: number): WireReason {
    const r = this.ip.check(buf, off, avail);
    if (r !== WireReason.Ok) return r;
    return this.checkTcp();
  }

  /** Header-only captures (intercept): the IP total length may exceed the captured bytes. */
  checkHeaders(buf: Buffer, off: number, avail: number): WireReason {
    const r = this.ip.checkHeader(buf, off, avail);
    if (r !== WireReason.Ok) return r;
    return this.checkTcp();
  }

  private checkTcp(): WireReason {
    const ip = this.ip;
    if (ip.protocol !== IPPROTO_TCP) return WireReason.NotTcp;
    const ff = ip.fragField;
    // Any fragment (MF set or non-zero offset) is refused: a TCP segment must be whole.
    if ((ff & 0x3fff) !== 0) return WireReason.Fragment;
    const hl = ip.headerLen;
    return this.tcp.check(ip.buf, ip.off + hl, ip.len - hl);
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
    const r = this.ip.check(buf, off, avail);
    if (r !== WireReason.Ok) return r;
    return this.checkTcp();
  }

  /** Header-only captures: the payload length may exceed the captured bytes. */
  checkHeaders(buf: Buffer, off: number, avail: number): WireReason {
    const r = this.ip.checkHeader(buf, off, avail);
    if (r !== WireReason.Ok) return r;
    return this.checkTcp();
  }

  private checkTcp(): WireReason {
    const ip = this.ip;
    if (ip.protocol !== IPPROTO_TCP) return WireReason.NotTcp;
    return this.tcp.check(ip.buf, ip.payloadOffset, ip.payloadLen);
  }

  /** TCP payload length from the IPv6 payload length (valid for header-only captures too). */
  get payloadLen(): number {
    return this.ip.totalLen - this.ip.headerLen - this.tcp.headerLen;
  }
}
