import { fillIpv4Checksum, fillTcpChecksum } from './checksum';
import { IPPROTO_TCP, IPV4_MIN_HEADER, Ip } from './ipv4';
import { Ip6, IPV6_HEADER } from './ipv6';
import { Tcp, TCP_MIN_HEADER, TcpFlag, TcpOpt, TsOpt } from './tcp';

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
    buf.writeUInt16BE(tot, off + Ip.TotLen);
    buf.writeUInt16BE(this.ipId & 0xffff, off + Ip.Id);
    buf.writeUInt16BE(IP_DF, off + Ip.FragOff);
    buf[off + Ip.Ttl] = this.ttl;
    buf[off + Ip.Protocol] = IPPROTO_TCP;
    buf.writeUInt32BE(this.srcIp >>> 0, off + Ip.Src);
    buf.writeUInt32BE(this.dstIp >>> 0, off + Ip.Dst);
    const t = off + IPV4_MIN_HEADER;
    writeTcpHeader(this, buf, t, tcpHl);
    fillTcpChecksum(buf, off, t, tcpHl);
    fillIpv4Checksum(buf, off, IPV4_MIN_HEADER);
    return tot;
  }
}

/** Writes the TCP header and options of `r` at `buf[t]` (checksum left to the caller). */
function writeTcpHeader(r: TcpReprFields, buf: Buffer, t: number, tcpHl: number): void {
  buf.writeUInt16BE(r.srcPort & 0xffff, t + Tcp.SrcPort);
  buf.writeUInt16BE(r.dstPort & 0xffff, t + Tcp.DstPort);
  buf.writeUInt32BE(r.seq >>> 0, t + Tcp.Seq);
  buf.writeUInt32BE((r.flags & TcpFlag.ACK) !== 0 ? r.ack >>> 0 : 0, t + Tcp.Ack);
  buf[t + Tcp.DataOff] = (tcpHl >>> 2) << 4;
  buf[t + Tcp.Flags] = r.flags;
  buf.writeUInt16BE(r.window & 0xffff, t + Tcp.Window);
  buf.writeUInt16BE(0, t + Tcp.Urgent);
  let o = t + Tcp.Options;
  if (r.mss > 0) {
    buf[o] = TcpOpt.Mss; buf[o + 1] = 4; buf.writeUInt16BE(r.mss & 0xffff, o + 2);
    o += 4;
  }
  if (r.wscale >= 0) {
    buf[o] = TcpOpt.Nop; buf[o + 1] = TcpOpt.WindowScale; buf[o + 2] = 3; buf[o + 3] = r.wscale;
    o += 4;
  }
  if (r.timestamps) {
    buf[o] = TcpOpt.Nop; buf[o + 1] = TcpOpt.Nop; buf[o + 2] = TcpOpt.Timestamp; buf[o + 3] = 10;
    buf.writeUInt32BE(r.tsVal >>> 0, o + 2 + TsOpt.Val);
    buf.writeUInt32BE(r.tsEcr >>> 0, o + 2 + TsOpt.Ecr);
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
    buf.writeUInt32BE(0x60000000, off + Ip6.VerTcFlow);
    buf.writeUInt16BE(tcpHl, off + Ip6.PayloadLen);
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
