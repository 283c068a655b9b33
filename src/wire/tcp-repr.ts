import { fillIpv4Checksum, fillTcpChecksum } from './checksum';
import { IPPROTO_TCP, IPV4_MIN_HEADER, Ip } from './ipv4';
import { Tcp, TCP_MIN_HEADER, TcpFlag, TcpOpt, TsOpt } from './tcp';

/** IPv4 flags-and-fragment-offset word with Don't Fragment set. */
const IP_DF = 0x4000;

/**
 * A small representation of an IPv4+TCP packet without payload, for the packets tcpcopy
 * makes itself (SYN, ACK, RST): set the fields, then `emit` writes the headers, options and
 * both checksums at named offsets into a buffer. One instance is reused; emitting allocates
 * nothing.
 *
 * Options: a SYN carries MSS (`mss` > 0) and window scale (`wscale` ≥ 0); any packet may carry
 * a timestamp (`tsVal`/`tsEcr`, when `timestamps` is set). IPv4 has no options, DF set.
 */
export class TcpIpv4Repr {
  srcIp = 0;
  dstIp = 0;
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  /** Written only when `flags` has ACK; zero otherwise. */
  ack = 0;
  flags = 0;
  window = 65535;
  ipId = 0;
  ttl = 64;
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
    buf.writeUInt16BE(this.srcPort & 0xffff, t + Tcp.SrcPort);
    buf.writeUInt16BE(this.dstPort & 0xffff, t + Tcp.DstPort);
    buf.writeUInt32BE(this.seq >>> 0, t + Tcp.Seq);
    buf.writeUInt32BE((this.flags & TcpFlag.ACK) !== 0 ? this.ack >>> 0 : 0, t + Tcp.Ack);
    buf[t + Tcp.DataOff] = (tcpHl >>> 2) << 4;
    buf[t + Tcp.Flags] = this.flags;
    buf.writeUInt16BE(this.window & 0xffff, t + Tcp.Window);
    buf.writeUInt16BE(0, t + Tcp.Urgent);
    let o = t + Tcp.Options;
    if (this.mss > 0) {
      buf[o] = TcpOpt.Mss; buf[o + 1] = 4; buf.writeUInt16BE(this.mss & 0xffff, o + 2);
      o += 4;
    }
    if (this.wscale >= 0) {
      buf[o] = TcpOpt.Nop; buf[o + 1] = TcpOpt.WindowScale; buf[o + 2] = 3; buf[o + 3] = this.wscale;
      o += 4;
    }
    if (this.timestamps) {
      buf[o] = TcpOpt.Nop; buf[o + 1] = TcpOpt.Nop; buf[o + 2] = TcpOpt.Timestamp; buf[o + 3] = 10;
      buf.writeUInt32BE(this.tsVal >>> 0, o + 2 + TsOpt.Val);
      buf.writeUInt32BE(this.tsEcr >>> 0, o + 2 + TsOpt.Ecr);
    }
    fillTcpChecksum(buf, off, t, tcpHl);
    fillIpv4Checksum(buf, off, IPV4_MIN_HEADER);
    return tot;
  }
}
