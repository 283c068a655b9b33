import { tcpChecksumIsPartial } from '../wire/checksum';
import { copyToSpan } from '../wire/copy';
import { Ip } from '../wire/ipv4';
import { Ip6, IPV6_HEADER } from '../wire/ipv6';
import type { Tcp6Packet, TcpPacket } from '../wire/packet';
import { Tcp, TcpFlag } from '../wire/tcp';
import type { BacklogGovernor } from './backlog';
import { SEG_OVERHEAD } from './engine-options';
import { Seg, Session, seqGt, seqLe, seqLt } from './session';
import type { SegPool } from './seg-pool';
import type { TcpcopyStats } from './stats';
import { put16, put32 } from '../wire/bytes';

/**
 * A session's kept packets (`s.segs`): captured packets copied in sequence order, held until
 * the target acknowledges them, each charged to the backlog while held.
 */

/**
 * Keeps a copy of a captured payload/FIN/RST packet, split into MTU-sized segments (headers
 * and options copied into each, FIN/PSH on the last) when GRO/TSO made it larger.
 */
export function keepCopy(s: Session, pkt: TcpPacket | Tcp6Packet, mtu: number, backlog: BacklogGovernor, stats: TcpcopyStats, pool: SegPool): void {
  const ip = pkt.ip;
  const tcp = pkt.tcp;
  const seq = tcp.seq;
  const plen = pkt.payloadLen;
  const flags = tcp.flags;
  const ipHl = ip.headerLen;
  const tcpHl = tcp.headerLen;
  const tot = ip.totalLen;
  const csumOk = !tcpChecksumIsPartial(ip.buf, ip.off, tcp.off, tot - ipHl);
  if (tot <= mtu || plen === 0) {
    const g = pool.take(tot);
    copyToSpan(ip.buf, ip.off, g, 0, tot);
    insert(s, g.init(tot, seq, plen, flags, tcp.ack, ipHl, tcpHl, csumOk), backlog, stats, pool);
    return;
  }
  stats.splitPackets++;
  const hdr = ipHl + tcpHl;
  const per = Math.max(8, mtu - hdr);
  for (let done = 0; done < plen; done += per) {
    const n = Math.min(per, plen - done);
    const last = done + n >= plen;
    const g = pool.take(hdr + n);
    const b = g.buf;
    ip.buf.copy(b, 0, ip.off, ip.off + hdr);
    ip.buf.copy(b, hdr, ip.off + hdr + done, ip.off + hdr + done + n);
    writeLength(b, hdr + n, s.v6);
    const f = last ? flags : flags & ~(TcpFlag.FIN | TcpFlag.PSH);
    b[ipHl + Tcp.Flags] = f;
    const sq = (seq + done) >>> 0;
    put32(b, ipHl + Tcp.Seq, sq);
    insert(s, g.init(hdr + n, sq, n, f, tcp.ack, ipHl, tcpHl, false), backlog, stats, pool);
  }
}

/** Inserts by seq into the unsent part (captures mostly arrive in order: search from the end). */
function insert(s: Session, seg: Seg, backlog: BacklogGovernor, stats: TcpcopyStats, pool: SegPool): void {
  const segs = s.segs;
  let i = segs.length;
  while (i > s.nextIdx && seqGt(segs[i - 1].seq, seg.seq)) i--;
  if (i > s.nextIdx) {
    const prev = segs[i - 1];
    if (prev.seq === seg.seq && prev.len === seg.len && prev.flags === seg.flags) {
      stats.clientRetransmissions++;
      pool.give(seg);
      return;
    }
  }
  if (i === segs.length) segs.push(seg);
  else segs.splice(i, 0, seg);
  backlog.charge(s, seg.size + SEG_OVERHEAD);
}

/** Drops the first `n` payload bytes of a kept packet (they were sent in an earlier one), in place. */
export function trimSent(s: Session, seg: Seg, n: number, backlog: BacklogGovernor): void {
  backlog.charge(s, -n);
  const hdr = seg.ipHdrLen + seg.tcpHdrLen;
  const b = seg.buf;
  b.copy(b, hdr, hdr + n, seg.size); // overlapping: copy moves like memmove
  seg.size -= n;
  writeLength(b, seg.size, s.v6);
  seg.seq = (seg.seq + n) >>> 0;
  seg.len -= n;
  put32(b, seg.ipHdrLen + Tcp.Seq, seg.seq);
  seg.csumOk = false;
}

/** The IP length field of a kept packet of `tot` bytes: IPv4 total length, or IPv6 payload length. */
function writeLength(b: Buffer, tot: number, v6: boolean): void {
  if (v6) put16(b, Ip6.PayloadLen, tot - IPV6_HEADER); else put16(b, Ip.TotLen, tot);
}

/** Placeholder for segments already acknowledged (below a session's `head`). */
const DEAD = new Seg(Buffer.alloc(0));
DEAD.free = true; // never goes to a pool

/** Frees kept packets the target acknowledged in full. */
export function dropAcked(s: Session, backlog: BacklogGovernor, pool: SegPool): void {
  const segs = s.segs;
  // The last request stays until the target starts answering it: a server that closes
  // with it unread (keep-alive limit, idle timeout race) acked it but never served it.
  const keepFrom = s.requests > 0 && !s.reqAnswered && seqLt(s.reqStartSeq, s.sndUna) ? s.reqStartSeq : s.sndUna;
  let h = s.head;
  while (h < s.nextIdx) {
    const g = segs[h];
    const end = (g.seq + g.len + ((g.flags & TcpFlag.FIN) !== 0 ? 1 : 0)) >>> 0;
    if (!seqLe(end, keepFrom)) break;
    backlog.release(s, g.size);
    segs[h] = DEAD;
    pool.give(g);
    h++;
  }
  s.head = h;
  // Acknowledged segments leave by moving the head; the array is compacted only when the
  // dead part dominates, so a deep backlog costs O(1) per ack, not a splice of the whole list.
  if (h > 32 && h * 2 > segs.length) {
    segs.splice(0, h);
    s.nextIdx -= h;
    s.head = 0;
  }
}
