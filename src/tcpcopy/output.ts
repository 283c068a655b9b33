import { csumUpdate16, csumUpdate32, fillIpv4Checksum, fillTcpChecksum } from '../wire/checksum';
import { Ip } from '../wire/ipv4';
import { findTcpOption, Tcp, TCP_MIN_HEADER, TcpFlag, TcpOpt, TsOpt } from '../wire/tcp';
import { TcpIpv4Repr, TcpIpv6Repr, type TcpReprFields } from '../wire/tcp-repr';
import { Ip6 } from '../wire/ipv6';
import type { Ipv6AddrTable } from '../wire/addr6-table';
import type { PacketSender } from '../io/raw-socket';
import { Seg, Session, seqGt } from './session';
import type { TcpcopyStats } from './stats';
import { get16, get32, put16, put32 } from '../wire/bytes';

/** Window-scale shift offered in fake SYNs. */
const FAKE_WSCALE = 7;
/** Window advertised in fake packets (and in captured ones of a fake handshake). */
const FAKE_WINDOW = 65535;

/**
 * What the engine sends to the target: kept client packets rewritten for the target (address,
 * ports, ack, timestamps; checksums updated incrementally when the captured one was right),
 * and fake packets (SYN, ACK, RST) that tcpcopy makes itself, emitted from one reused
 * TcpIpv4Repr into one scratch buffer.
 */
export class SessionOutput {
  private readonly repr = new TcpIpv4Repr();
  private readonly repr6 = new TcpIpv6Repr();
  private readonly scratch = Buffer.alloc(128);
  /** IPv6 packets go here (a raw IPv6 socket); null: they are counted in noIpv6Sender. */
  sender6: PacketSender | null = null;

  constructor(private readonly sender: PacketSender, private readonly stats: TcpcopyStats, private readonly mss: number,
    private readonly addr6: Ipv6AddrTable) {}

  /** Rewrites a kept packet for the target and sends it. */
  sendSeg(s: Session, seg: Seg): void {
    const b = seg.buf;
    const t = seg.ipHdrLen;
    const cs = t + Tcp.Checksum;
    let ok = seg.csumOk;
    if (!seg.rewritten && s.v6) {
      this.rewrite6(s, b, t, ok);
      seg.rewritten = true;
    } else if (!seg.rewritten) {
      if (ok) {
        patch32(b, Ip.Src, s.clientIp, cs);
        patch32(b, Ip.Dst, s.rule.targetIp, cs);
        patch16(b, t + Tcp.SrcPort, s.clientPort, cs);
        patch16(b, t + Tcp.DstPort, s.rule.targetPort, cs);
      } else {
        put32(b, Ip.Src, s.clientIp >>> 0);
        put32(b, Ip.Dst, s.rule.targetIp >>> 0);
        put16(b, t + Tcp.SrcPort, s.clientPort);
        put16(b, t + Tcp.DstPort, s.rule.targetPort);
      }
      seg.rewritten = true;
    }
    if ((b[t + Tcp.Flags] & TcpFlag.ACK) !== 0) {
      if (ok) patch32(b, t + Tcp.Ack, s.rcvNxt, cs); else put32(b, t + Tcp.Ack, s.rcvNxt >>> 0);
      s.needAck = false;
    }
    if (s.fakeSyn) {
      if (ok) patch16(b, t + Tcp.Window, FAKE_WINDOW, cs); else put16(b, t + Tcp.Window, FAKE_WINDOW);
    }
    if (s.tsOk && seg.tcpHdrLen > TCP_MIN_HEADER) {
      const o = findTcpOption(b, t, seg.tcpHdrLen, TcpOpt.Timestamp, 10);
      if (o >= 0) {
        const v = get32(b, o + TsOpt.Val);
        if (seqGt(v, s.tsValMax) || s.tsValMax === 0) s.tsValMax = v;
        else if (ok) patch32(b, o + TsOpt.Val, s.tsValMax, cs); else put32(b, o + TsOpt.Val, s.tsValMax >>> 0);
        if (ok) patch32(b, o + TsOpt.Ecr, s.tsRecent, cs); else put32(b, o + TsOpt.Ecr, s.tsRecent >>> 0);
      }
    }
    if (!ok) {
      fillTcpChecksum(b, 0, t, seg.size - t);
      seg.csumOk = ok = true;
    }
    seg.sends++;
    if (s.v6) { this.sendSeg6(seg, s); return; }
    fillIpv4Checksum(b, 0, t);
    const out = this.sender;
    if (out.sendSpan !== undefined) out.sendSpan(seg, seg.size, s.rule.targetIpText); else out.send(b, 0, seg.size, s.rule.targetIpText);
    this.stats.packetsSent++;
  }

  /**
   * The IPv6 addresses and the ports of a kept packet, for the target: the 8 address words that
   * change update the TCP checksum one by one (the pseudo-header covers the addresses).
   */
  private rewrite6(s: Session, b: Buffer, t: number, ok: boolean): void {
    const cs = t + Tcp.Checksum;
    const a6 = this.addr6;
    const dst = s.rule.targetIp6!;
    for (let w = 0; w < 4; w++) {
      const src = a6.word(s.clientIp, w);
      const at = Ip6.Src + 4 * w;
      if (ok) patch32(b, at, src, cs); else put32(b, at, src);
      const d = get32(dst, 4 * w);
      if (ok) patch32(b, Ip6.Dst + 4 * w, d, cs); else put32(b, Ip6.Dst + 4 * w, d);
    }
    if (ok) {
      patch16(b, t + Tcp.SrcPort, s.clientPort, cs);
      patch16(b, t + Tcp.DstPort, s.rule.targetPort, cs);
    } else {
      put16(b, t + Tcp.SrcPort, s.clientPort);
      put16(b, t + Tcp.DstPort, s.rule.targetPort);
    }
  }

  private sendSeg6(seg: Seg, s: Session): void {
    const out = this.sender6;
    if (out === null) { this.stats.noIpv6Sender++; return; }
    if (out.sendSpan !== undefined) out.sendSpan(seg, seg.size, s.rule.targetIpText); else out.send(seg.buf, 0, seg.size, s.rule.targetIpText);
    this.stats.packetsSent++;
  }

  private send6(b: Buffer, len: number, s: Session): void {
    const out = this.sender6;
    if (out === null) { this.stats.noIpv6Sender++; return; }
    out.send(b, 0, len, s.rule.targetIpText);
    this.stats.packetsSent++;
  }

  /**
   * Sends a fake packet of the session: a SYN (with MSS and window scale), an ACK or a RST,
   * with a timestamp option when the session negotiated timestamps (never on a SYN).
   */
  sendFake(s: Session, flags: number, seq: number, ack: number, syn = false): void {
    if (s.v6) { this.sendFake6(s, flags, seq, ack, syn); return; }
    const r = this.repr.noOptions();
    this.fakeTcp(r, s, flags, seq, ack, syn);
    s.ipId = (s.ipId + 1) & 0xffff;
    r.ipId = s.ipId;
    r.srcIp = s.clientIp;
    r.dstIp = s.rule.targetIp;
    const len = r.emit(this.scratch, 0);
    this.sender.send(this.scratch, 0, len, s.rule.targetIpText);
    this.stats.packetsSent++;
    this.afterFake(s, flags);
  }

  /** `sendFake` for an IPv6 session (no IP id; the addresses are copied from the key and the rule). */
  private sendFake6(s: Session, flags: number, seq: number, ack: number, syn: boolean): void {
    const r = this.repr6.noOptions();
    this.fakeTcp(r, s, flags, seq, ack, syn);
    this.addr6.copyTo(s.clientIp, r.srcIp, 0);
    s.rule.targetIp6!.copy(r.dstIp, 0, 0, 16);
    const len = r.emit(this.scratch, 0);
    this.send6(this.scratch, len, s);
    this.afterFake(s, flags);
  }

  /**
   * The TCP part of a fake packet, the same for both families: a SYN carries MSS and window
   * scale, anything else the session's timestamps when it negotiated them.
   */
  private fakeTcp(r: TcpReprFields, s: Session, flags: number, seq: number, ack: number, syn: boolean): void {
    if (syn) {
      r.mss = this.mss;
      r.wscale = FAKE_WSCALE;
    } else if (s.tsOk) {
      r.timestamps = true;
      r.tsVal = s.tsValMax;
      r.tsEcr = s.tsRecent;
    }
    r.srcPort = s.clientPort;
    r.dstPort = s.rule.targetPort;
    r.seq = seq;
    r.ack = ack;
    r.flags = flags;
    r.window = FAKE_WINDOW;
  }

  private afterFake(s: Session, flags: number): void {
    if ((flags & TcpFlag.ACK) !== 0) s.needAck = false;
    if (flags === TcpFlag.ACK) this.stats.acksSent++;
  }

  sendAck(s: Session): void {
    this.sendFake(s, TcpFlag.ACK, s.sndNxt, s.rcvNxt);
  }

  sendRst(s: Session, seq: number): void {
    this.sendFake(s, TcpFlag.RST | TcpFlag.ACK, seq, s.rcvNxt);
    this.stats.rstsSent++;
  }
}

/** Writes a 32-bit field and updates the checksum at `csOff` for the change (RFC 1624). */
function patch32(b: Buffer, off: number, v: number, csOff: number): void {
  const old = get32(b, off);
  v >>>= 0;
  if (old === v) return;
  put32(b, off, v);
  put16(b, csOff, csumUpdate32(b.readUInt16BE(csOff), old, v));
}

/** The same for a 16-bit field. */
function patch16(b: Buffer, off: number, v: number, csOff: number): void {
  const old = get16(b, off);
  v &= 0xffff;
  if (old === v) return;
  put16(b, off, v);
  put16(b, csOff, csumUpdate16(b.readUInt16BE(csOff), old, v));
}
