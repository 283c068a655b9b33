import { fillIpv4Checksum, fillTcpChecksum } from './checksum';
import { IPPROTO_TCP, IPV4_MIN_HEADER, Ip } from './ipv4';
import { Ip6, IPV6_HEADER } from './ipv6';
import { Tcp, TCP_MIN_HEADER, TcpFlag, TcpOpt, TsOpt } from './tcp';
import { put16, put32 } from './bytes';

/** IPv4 flags-and-fragment-offset word with Don't Fragment set. */
const IP_DF = 0x4000;

/**
 * The TCP fields and options both representations share (the IP fields are each one's own).
 * Options: a SYN carries MSS (`mss` > 0) and window scale (`wscale` ≥ 0); any packet may carry
 * a timestamp (`tsVal`/`tsEcr`, when `timestamps` is set).
 */
export abstract class TcpReprFields {
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  /** Written only when `flags` has ACK; zero otherwise. */
  ack = 0;
  flags = 0;
  window = 65535;
  /** MSS option value; 0 = no MSS option. */
  mss = 0;
  /** Window-scale option shift; -1 = no window-scale option. */
  wscale = -1;
  timestamps = false;
  tsVal = 0;
  tsEcr = 0;

  /** Clears the options (the fixed fields stay as set). */
  noOptions(): this {
    this.mss = 0;
    this.wscale = -1;
    this.timestamps = false;
    return this;
  }

  /** TCP header length with the options set. */
  get tcpHeaderLen(): number {
    let n = TCP_MIN_HEADER;
    if (this.mss > 0) n += 4;
    if (this.wscale >= 0) n += 4;
    if (this.timestamps) n += 12;
    return n;
  }
}

/**
 * A small representation of an IPv4+TCP packet without payload, for the packets tcpcopy
 * makes itself (SYN, ACK, RST): set the fields, then `emit` writes the headers, options and
 * both checksums at named offsets into a buffer. One instance is reused; emitting allocates
 * nothing. IPv4 has no options, DF set.
 */
export class TcpIpv4Repr extends TcpReprFields {
  srcIp = 0;
  dstIp = 0;
  ipId = 0;
  ttl = 64;

  /** Total length of the packet `emit` writes. */
  get totalLen(): number { return IPV4_MIN_HEADER + this.tcpHeaderLen; }

  /** Writes the packet at `buf[off]` (room for `totalLen` bytes needed); returns its length. */
  emit(buf: Buffer, off: number): number {
    const tcpHl = this.tcpHeaderLen;
    const tot = IPV4_MIN_HEADER + tcpHl;
    buf[off + Ip.VerIhl] = 0x40 | (IPV4_MIN_HEADER >>> 2);
    buf[off + Ip.Tos] = 0;
    put16(buf, off + Ip.TotLen, tot);
    put16(buf, off + Ip.Id, this.ipId & 0xffff);
    put16(buf, off + Ip.FragOff, IP_DF);
    buf[off + Ip.Ttl] = this.ttl;
    buf[off + Ip.Protocol] = IPPROTO_TCP;
    put32(buf, off + Ip.Src, this.srcIp >>> 0);
    put32(buf, off + Ip.Dst, this.dstIp >>> 0);
    const t = off + IPV4_MIN_HEADER;
    writeTcpHeader(this, buf, t, tcpHl);
    fillTcpChecksum(buf, off, t, tcpHl);
    fillIpv4Checksum(buf, off, IPV4_MIN_HEADER);
    return tot;
  }
}

/** Writes the TCP header and options of `r` at `buf[t]` (checksum left to the caller). */
function writeTcpHeader(r: TcpReprFields, buf: Buffer, t: number, tcpHl: number): void {
  put16(buf, t + Tcp.SrcPort, r.srcPort & 0xffff);
  put16(buf, t + Tcp.DstPort, r.dstPort & 0xffff);
  put32(buf, t + Tcp.Seq, r.seq >>> 0);
  put32(buf, t + Tcp.Ack, (r.flags & TcpFlag.ACK) !== 0 ? r.ack >>> 0 : 0);
  buf[t + Tcp.DataOff] = (tcpHl >>> 2) << 4;
  buf[t + Tcp.Flags] = r.flags;
  put16(buf, t + Tcp.Window, r.window & 0xffff);
  put16(buf, t + Tcp.Urgent, 0);
  let o = t + Tcp.Options;
  if (r.mss > 0) {
    buf[o] = TcpOpt.Mss; buf[o + 1] = 4; put16(buf, o + 2, r.mss & 0xffff);
    o += 4;
  }
  if (r.wscale >= 0) {
    buf[o] = TcpOpt.Nop; buf[o + 1] = TcpOpt.WindowScale; buf[o + 2] = 3; buf[o + 3] = r.wscale;
    o += 4;
  }
  if (r.timestamps) {
    buf[o] = TcpOpt.Nop; buf[o + 1] = TcpOpt.Nop; buf[o + 2] = TcpOpt.Timestamp; buf[o + 3] = 10;
    put32(buf, o + 2 + TsOpt.Val, r.tsVal >>> 0);
    put32(buf, o + 2 + TsOpt.Ecr, r.tsEcr >>> 0);
  }
}

/**
 * The IPv6 counterpart of `TcpIpv4Repr`: the same TCP fields and options, behind a 40-byte
 * IPv6 header without extension headers (traffic class and flow label 0). Addresses are
 * 16-byte Buffers, copied at emit time.
 */
export class TcpIpv6Repr extends TcpReprFields {
  readonly srcIp = Buffer.alloc(16);
  readonly dstIp = Buffer.alloc(16);
  hopLimit = 64;

  get totalLen(): number { return IPV6_HEADER + this.tcpHeaderLen; }

  /** Writes the packet at `buf[off]` (room for `totalLen` bytes needed); returns its length. */
  emit(buf: Buffer, off: number): number {
    const tcpHl = this.tcpHeaderLen;
    put32(buf, off + Ip6.VerTcFlow, 0x60000000);
    put16(buf, off + Ip6.PayloadLen, tcpHl);
    buf[off + Ip6.NextHeader] = IPPROTO_TCP;
    buf[off + Ip6.HopLimit] = this.hopLimit;
    this.srcIp.copy(buf, off + Ip6.Src, 0, 16);
    this.dstIp.copy(buf, off + Ip6.Dst, 0, 16);
    const t = off + IPV6_HEADER;
    writeTcpHeader(this, buf, t, tcpHl);
    fillTcpChecksum(buf, off, t, tcpHl);
    return IPV6_HEADER + tcpHl;
  }
}
