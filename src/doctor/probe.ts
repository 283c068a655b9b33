/**
 * The active probe of the whole path: a crafted SYN to a target from a probe address, whose
 * answer the target must route to the assistant, where intercept hands it back over the control
 * channel like any reply; then a RST with the next sequence number, so the target keeps no
 * half-open connection.
 */
import { fillIpv4Checksum, fillTcpChecksum } from '../wire/checksum';
import { TcpFlag } from '../wire/tcp';
import { Rec6, ReplyRecord, ReplyRecord6 } from '../control/records';

const IP_HDR = 20;
const TCP_HDR_SYN = 24; // with the MSS option
const TCP_HDR = 20;

/**
 * The probe's TCP header at `buf[t]` (with an MSS option on a SYN) and its full checksum over
 * the pseudo-header of the IP header at `buf[0]`, which must be written first; returns its length.
 */
function writeProbeTcp(buf: Buffer, t: number, sport: number, dport: number, seq: number, flags: number, mss: number): number {
  const withMss = (flags & TcpFlag.SYN) !== 0;
  const tcpLen = withMss ? TCP_HDR_SYN : TCP_HDR;
  buf.writeUInt16BE(sport, t);
  buf.writeUInt16BE(dport, t + 2);
  buf.writeUInt32BE(seq >>> 0, t + 4);
  buf[t + 12] = (tcpLen / 4) << 4;
  buf[t + 13] = flags;
  buf.writeUInt16BE(withMss ? 65535 : 0, t + 14);
  if (withMss) {
    buf[t + 20] = 2;
    buf[t + 21] = 4;
    buf.writeUInt16BE(mss, t + 22);
  }
  fillTcpChecksum(buf, 0, t, tcpLen);
  return tcpLen;
}

const tcpLenOf = (flags: number): number => ((flags & TcpFlag.SYN) !== 0 ? TCP_HDR_SYN : TCP_HDR);

/** Writes an IPv4/TCP packet with no payload at `buf[0]`; returns its length. */
export function buildProbePacket(buf: Buffer, src: number, sport: number, dst: number, dport: number,
  seq: number, flags: number, ipId: number, mss = 1460): number {
  const len = IP_HDR + tcpLenOf(flags);
  buf.fill(0, 0, len);
  buf[0] = 0x45;
  buf.writeUInt16BE(len, 2);
  buf.writeUInt16BE(ipId & 0xffff, 4);
  buf.writeUInt16BE(0x4000, 6); // DF
  buf[8] = 64;
  buf[9] = 6;
  buf.writeUInt32BE(src >>> 0, 12);
  buf.writeUInt32BE(dst >>> 0, 16);
  writeProbeTcp(buf, IP_HDR, sport, dport, seq, flags, mss);
  fillIpv4Checksum(buf, 0, IP_HDR);
  return len;
}

const IP6_HDR = 40;

/** Writes an IPv6/TCP packet with no payload at `buf[0]` (addresses: 16 bytes each); returns its length. */
export function buildProbePacket6(buf: Buffer, src: Buffer, sport: number, dst: Buffer, dport: number,
  seq: number, flags: number, mss = 1440): number {
  const tcpLen = tcpLenOf(flags);
  buf.fill(0, 0, IP6_HDR + tcpLen);
  buf.writeUInt32BE(0x60000000, 0);
  buf.writeUInt16BE(tcpLen, 4);
  buf[6] = 6;
  buf[7] = 64;
  src.copy(buf, 8, 0, 16);
  dst.copy(buf, 24, 0, 16);
  writeProbeTcp(buf, IP6_HDR, sport, dport, seq, flags, mss);
  return IP6_HDR + tcpLen;
}

export type ProbeAnswer = 'syn-ack' | 'rst' | 'none';

/** What came back for one probe in flight, whatever its family. */
export abstract class ProbeState {
  answer: ProbeAnswer = 'none';
  /** Which intercept handed the answer over (its `-s` name). */
  via = '';
  /** The real client answered the target with RST (seen by the capture, when it can see it). */
  clientReset = false;
  answeredAtMs = 0;
  /** Our closing RST has been sent. */
  rstSent = false;
  private resolveAnswer: (() => void) | null = null;
  readonly answered: Promise<void>;

  constructor(readonly probePort: number, readonly targetPort: number, readonly isn: number) {
    this.answered = new Promise((r) => { this.resolveAnswer = r; });
  }

  /** A reply to this probe's 4-tuple: the SYN-ACK acknowledging the ISN, or an RST, settles it. */
  protected settle(flags: number, ack: number, via: string): void {
    if (this.answer !== 'none') return;
    if ((flags & (TcpFlag.SYN | TcpFlag.ACK)) === (TcpFlag.SYN | TcpFlag.ACK) && ack === ((this.isn + 1) >>> 0)) {
      this.answer = 'syn-ack';
    } else if (flags & TcpFlag.RST) {
      this.answer = 'rst';
    } else {
      return;
    }
    this.via = via;
    this.answeredAtMs = Date.now();
    this.resolveAnswer?.();
  }

  /**
   * The captured TCP header at `buf[t]` of a packet from the probe address to the target. Our
   * own RST goes only after the wait: a RST before it is the real client's answer to the
   * target's SYN-ACK (the capture sees it when it sees that client's traffic to the target).
   */
  protected seenFromProbe(buf: Buffer, t: number): void {
    if (((buf[t] << 8) | buf[t + 1]) !== this.probePort || ((buf[t + 2] << 8) | buf[t + 3]) !== this.targetPort) return;
    if ((buf[t + 13] & TcpFlag.RST) && !this.rstSent) this.clientReset = true;
  }
}

/** One IPv4 probe in flight: the 4-tuple it uses and what came back. */
export class ProbeSlot extends ProbeState {
  constructor(readonly probeIp: number, probePort: number, readonly targetIp: number, targetPort: number, isn: number) {
    super(probePort, targetPort, isn);
  }

  /** A reply record from an intercept: is it the target's answer to this probe? */
  onReplyRecord(buf: Buffer, off: number, via: string): boolean {
    if ((buf[off] >>> 4) !== 4) return false;
    if (ReplyRecord.dstIp(buf, off) !== this.probeIp >>> 0 || ReplyRecord.dstPort(buf, off) !== this.probePort) return false;
    if (ReplyRecord.srcPort(buf, off) !== this.targetPort) return false;
    this.settle(ReplyRecord.flags(buf, off), ReplyRecord.ack(buf, off), via);
    return true;
  }

  /** A captured packet (IPv4 at `ipOff`): a RST from the probe address to the target. */
  onCapturedPacket(buf: Buffer, ipOff: number, len: number): void {
    if (len < 40 || (buf[ipOff] >>> 4) !== 4) return;
    const t = ipOff + ((buf[ipOff] & 0x0f) << 2);
    if (buf[ipOff + 9] !== 6 || t + 20 > ipOff + len) return;
    if (buf.readUInt32BE(ipOff + 12) !== this.probeIp >>> 0 || buf.readUInt32BE(ipOff + 16) !== this.targetIp >>> 0) return;
    this.seenFromProbe(buf, t);
  }
}

/** One IPv6 probe in flight: matched on two-slot IPv6 reply records and IPv6 packets. */
export class ProbeSlot6 extends ProbeState {
  constructor(readonly probeIp: Buffer, probePort: number, readonly targetIp: Buffer, targetPort: number, isn: number) {
    super(probePort, targetPort, isn);
  }

  onReplyRecord(buf: Buffer, off: number, via: string): boolean {
    if ((buf[off] >>> 4) !== 6 || off + Rec6.Window > buf.length) return false;
    if (buf.compare(this.probeIp, 0, 16, off + Rec6.DstIp, off + Rec6.DstIp + 16) !== 0) return false;
    if (ReplyRecord6.dstPort(buf, off) !== this.probePort || ReplyRecord6.srcPort(buf, off) !== this.targetPort) return false;
    this.settle(ReplyRecord6.flags(buf, off), ReplyRecord6.ack(buf, off), via);
    return true;
  }

  /** A captured IPv6 packet (no extension headers): a RST from the probe address to the target, before ours. */
  onCapturedPacket(buf: Buffer, ipOff: number, len: number): void {
    if (len < 60 || (buf[ipOff] >>> 4) !== 6 || buf[ipOff + 6] !== 6) return;
    if (buf.compare(this.probeIp, 0, 16, ipOff + 8, ipOff + 24) !== 0 || buf.compare(this.targetIp, 0, 16, ipOff + 24, ipOff + 40) !== 0) return;
    this.seenFromProbe(buf, ipOff + IP6_HDR);
  }
}
