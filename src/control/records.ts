import { createHmac } from 'node:crypto';
import { get16, get32, put16, put32 } from '../wire/bytes';

/**
 * The control channel between tcpcopy and intercept, laid out exactly as the original C
 * programs do (INTERNAL_VERSION 6): 14-byte client records from tcpcopy, 64-byte (or
 * 192-byte, payload build) reply records from intercept, in count-prefixed batches by default.
 */

export const INTERNAL_VERSION = 6;
export const DEFAULT_CONTROL_PORT = 36524;

export const CLIENT_RECORD_SIZE = 14;
/** The legacy record (clt_ip, clt_port, type) that intercept reads first on a new connection. */
export const LEGACY_HEAD_SIZE = 8;

export const enum MsgType {
  ClientAdd = 1,
  ClientDel = 2,
  /** Our extension, only with a shared secret (`--secret`) on both sides. */
  Auth = 0x7e,
  /**
   * Our extension, only after intercept accepted the IPv6 capability: a 14-byte head of this
   * type followed by the two 16-byte addresses (CLIENT_ADD6_SIZE bytes in all).
   */
  ClientAdd6 = 0x7c,
}

// ---- the capability extension (docs/control-channel.md) ------------------------------------

/**
 * The version record's last 6 bytes (the original's `target_ip` and `target_port`, which the
 * original intercept reads and ignores, and the original tcpcopy sends as zero) carry our
 * capability announcement: this magic ('TC6X'), then a 16-bit set of Capability bits.
 */
export const CAPABILITY_MAGIC = 0x54433658;
export const enum Capability {
  /** IPv6 sessions: CLIENT_ADD6 records one way, two-slot IPv6 reply records the other. */
  Ipv6 = 0x0001,
  /**
   * Not negotiated: the sender's own channel format, so that a mismatch is named instead of
   * decoded as garbage. FormatKnown says the two bits after it are meaningful (earlier builds
   * send none of the three).
   */
  FormatKnown = 0x2000,
  /** Bare reply records (`--no-combined`), not count-prefixed batches. */
  FormatBare = 0x4000,
  /** 192-byte reply records with payload (`--payload`). */
  FormatPayload = 0x8000,
}
const FORMAT_BITS = Capability.FormatKnown | Capability.FormatBare | Capability.FormatPayload;
/**
 * The capabilities this build announces (tcpcopy) and accepts (intercept): IPv6 sessions. The
 * original programs neither announce nor answer, and then only the original's records flow.
 */
export const OUR_CAPABILITIES: number = Capability.Ipv6;
/**
 * intercept's answer to an announcement, the first bytes it sends after the version record
 * (after the shared-secret preamble when there is one): 0xFFFF (never a batch count, never the
 * first byte of an IPv4 record), the magic, the accepted Capability bits.
 */
export const CAPABILITY_ANSWER_SIZE = 8;
export const CAPABILITY_ANSWER_MARK = 0xffff;
export const CLIENT_ADD6_SIZE = CLIENT_RECORD_SIZE + 32;

/**
 * Capability bits announced in a version record at `off` (possibly 0), or -1 when it carries no
 * announcement (the original tcpcopy: all zero there).
 */
export function versionCapabilities(buf: Buffer, off: number): number {
  return get32(buf, off + ClientRec.TargetIp) === CAPABILITY_MAGIC ? get16(buf, off + ClientRec.TargetPort) : -1;
}

/** The format bits of a side's capabilities for its channel format. */
export function formatCapabilities(f: ChannelFormat): number {
  return Capability.FormatKnown | (f.combined ? 0 : Capability.FormatBare) | (f.payload ? Capability.FormatPayload : 0);
}

/**
 * When the peer's capabilities say its channel format and it is not `own`: one line that says
 * what differs and what to do (`peer` names the other daemon). null when they agree or the
 * peer did not say (an earlier build; the original never announces or answers).
 */
export function formatMismatch(own: ChannelFormat, peerCaps: number, peer: 'intercept' | 'tcpcopy'): string | null {
  if (peerCaps < 0 || (peerCaps & Capability.FormatKnown) === 0) return null;
  const payload = (peerCaps & Capability.FormatPayload) !== 0;
  const combined = (peerCaps & Capability.FormatBare) === 0;
  if (payload === own.payload && combined === own.combined) return null;
  const diff: string[] = [];
  if (payload !== own.payload) diff.push(`${peer} runs ${payload ? 'with' : 'without'} --payload and this ${peer === 'intercept' ? 'tcpcopy' : 'intercept'} ${own.payload ? 'with' : 'without'} it`);
  if (combined !== own.combined) diff.push(`${peer} runs ${combined ? 'without' : 'with'} --no-combined and this ${peer === 'intercept' ? 'tcpcopy' : 'intercept'} ${own.combined ? 'without' : 'with'} it`);
  return `the control channel's record format differs: ${diff.join('; ')}; start tcpcopy and intercept with the same --payload and --no-combined flags`;
}

/** The capability bits that are negotiated (the format bits removed). */
export function negotiatedCapabilities(caps: number): number {
  return caps < 0 ? caps : caps & ~FORMAT_BITS;
}

/** Writes intercept's 8-byte capability answer. */
export function writeCapabilityAnswer(buf: Buffer, off: number, caps: number): void {
  put16(buf, off, CAPABILITY_ANSWER_MARK);
  put32(buf, off + 2, CAPABILITY_MAGIC);
  put16(buf, off + 6, caps & 0xffff);
}

/**
 * Writes a CLIENT_ADD6 record (46 bytes): a client-record head with zero addresses, the ports
 * and type ClientAdd6, then the client's and the target's 16-byte addresses.
 */
export function writeClientAdd6Record(buf: Buffer, off: number, clientIp6: Buffer, clientIp6Off: number, clientPort: number,
  targetIp6: Buffer, targetIp6Off: number, targetPort: number): void {
  writeClientRecord(buf, off, MsgType.ClientAdd6, 0, clientPort, 0, targetPort);
  clientIp6.copy(buf, off + CLIENT_RECORD_SIZE, clientIp6Off, clientIp6Off + 16);
  targetIp6.copy(buf, off + CLIENT_RECORD_SIZE + 16, targetIp6Off, targetIp6Off + 16);
}

/**
 * Field offsets in an IPv6 reply record, which takes two consecutive record slots (128 bytes,
 * or 384 in the payload variant): the 40-byte IPv6 fixed header (extension headers squeezed
 * out: Next Header 6, Payload Length without them), then the whole TCP header, then (payload
 * variant) up to 128 payload bytes.
 */
export const enum Rec6 {
  PayloadLen = 4,
  NextHeader = 6,
  SrcIp = 8,
  DstIp = 24,
  Tcp = 40,
  SrcPort = Tcp + 0,
  DstPort = Tcp + 2,
  Seq = Tcp + 4,
  Ack = Tcp + 8,
  DataOff = Tcp + 12,
  Flags = Tcp + 13,
  Window = Tcp + 14,
}

/** Bytes of an IPv6 reply record in a stream of `slot`-byte records: two slots. */
export function replyRecord6Size(slot: number): number {
  return 2 * slot;
}

/**
 * Builds an IPv6 reply record (two slots, `size` bytes in all) at `dst[dstOff]` from the
 * IPv6/TCP packet at `pkt[ipOff]` whose extension headers end at `ipOff + ipHdrLen`: the fixed
 * header with the extension headers squeezed out, the TCP header, and in the payload variant
 * (`payload`) a payload of 1..128 captured bytes right after the TCP header.
 */
export function buildReplyRecord6(dst: Buffer, dstOff: number, size: number, payload: boolean, pkt: Buffer, ipOff: number,
  ipHdrLen: number, tcpHdrLen: number, totLen: number, capEnd: number): void {
  dst.fill(0, dstOff, dstOff + size);
  pkt.copy(dst, dstOff, ipOff, ipOff + 40);
  dst[dstOff + Rec6.NextHeader] = 6;
  put16(dst, dstOff + Rec6.PayloadLen, (totLen - ipHdrLen) & 0xffff);
  const tcpOff = ipOff + ipHdrLen;
  const tcpCopy = Math.min(tcpHdrLen, size - Rec6.Tcp, capEnd - tcpOff);
  if (tcpCopy > 0) pkt.copy(dst, dstOff + Rec6.Tcp, tcpOff, tcpOff + tcpCopy);
  if (payload) {
    const plen = totLen - ipHdrLen - tcpHdrLen;
    if (plen > 0 && plen <= MAX_PAYLOAD_LEN) {
      const from = tcpOff + tcpHdrLen;
      const n = Math.min(plen, size - Rec6.Tcp - tcpHdrLen, capEnd - from);
      if (n > 0) pkt.copy(dst, dstOff + Rec6.Tcp + tcpHdrLen, from, from + n);
    }
  }
}

/** IPv6 reply-record field access (the record is at `off`, TCP header at +40). */
export const ReplyRecord6 = {
  /** Addresses stay in the record: offsets for comparison without copies. */
  srcIpOffset(off: number): number { return off + Rec6.SrcIp; },
  dstIpOffset(off: number): number { return off + Rec6.DstIp; },
  srcPort(buf: Buffer, off: number): number { return (buf[off + Rec6.SrcPort] << 8) | buf[off + Rec6.SrcPort + 1]; },
  dstPort(buf: Buffer, off: number): number { return (buf[off + Rec6.DstPort] << 8) | buf[off + Rec6.DstPort + 1]; },
  seq(buf: Buffer, off: number): number { return get32(buf, off + Rec6.Seq); },
  ack(buf: Buffer, off: number): number { return get32(buf, off + Rec6.Ack); },
  tcpHeaderLen(buf: Buffer, off: number): number { return (buf[off + Rec6.DataOff] >>> 4) << 2; },
  flags(buf: Buffer, off: number): number { return buf[off + Rec6.Flags]; },
  window(buf: Buffer, off: number): number { return (buf[off + Rec6.Window] << 8) | buf[off + Rec6.Window + 1]; },
  /** Reply payload length from the payload length field, or -1 when the TCP header is impossible. */
  payloadLen(buf: Buffer, off: number): number {
    const doff = ReplyRecord6.tcpHeaderLen(buf, off);
    if (doff < TCP_MIN_HEADER) return -1;
    const p = get16(buf, off + Rec6.PayloadLen) - doff;
    return p < 0 ? -1 : p;
  },
};

/** With `--secret`: intercept opens each connection with this many random bytes. */
export const AUTH_NONCE_SIZE = 16;

/**
 * The 12-byte proof tcpcopy returns for intercept's nonce: HMAC-SHA256(secret, nonce), cut.
 * It travels in an Auth record in place of the addresses and ports (bytes 0-5 and 8-13).
 */
export function authProof(secret: string, nonce: Buffer): Buffer {
  return createHmac('sha256', secret).update(nonce).digest().subarray(0, 12);
}

/** What intercept answers to a valid proof (16 bytes), so tcpcopy knows it was accepted. */
export function authConfirmation(secret: string, nonce: Buffer): Buffer {
  return createHmac('sha256', secret).update(nonce).update('accepted').digest().subarray(0, AUTH_NONCE_SIZE);
}

export function writeAuthRecord(buf: Buffer, off: number, proof: Buffer): void {
  proof.copy(buf, off, 0, 6);
  put16(buf, off + ClientRec.Type, MsgType.Auth);
  proof.copy(buf, off + ClientRec.TargetIp, 6, 12);
}

export const REPLY_RECORD_SIZE = 64;
export const REPLY_RECORD_PAYLOAD_SIZE = 192;
export const MAX_OPTION_LEN = 24;
export const MAX_PAYLOAD_LEN = 128;
/** Records per batch in the combined framing: 16, or 6 with payload records. */
export const COMB_MAX_NUM = 16;
export const COMB_MAX_NUM_PAYLOAD = 6;
export const COMB_HEADER_SIZE = 2;
/**
 * Field offsets in a reply record: an IPv4 header of 20 bytes (options squeezed out, IHL as
 * captured), then the TCP header. (The same offsets as src/wire's Ip and Tcp enums; the
 * control channel imports nothing of the project, so it names them itself.)
 */
export const enum Rec {
  VerIhl = 0,
  TotLen = 2,
  SrcIp = 12,
  DstIp = 16,
  /** The TCP header. */
  Tcp = 20,
  SrcPort = Tcp + 0,
  DstPort = Tcp + 2,
  Seq = Tcp + 4,
  Ack = Tcp + 8,
  DataOff = Tcp + 12,
  Flags = Tcp + 13,
  Window = Tcp + 14,
}
const IP_HEADER = Rec.Tcp;
const TCP_MIN_HEADER = 20;
/** IP header (20, options squeezed out) + TCP header up to 44 bytes. */
const RECORD_HEADERS_MAX = IP_HEADER + TCP_MIN_HEADER + MAX_OPTION_LEN;

/** Record geometry agreed by both sides (there is no negotiation on the wire). */
export interface ChannelFormat {
  /** Count-prefixed batches (the original's default build) or bare records. */
  combined: boolean;
  /** 192-byte records carrying up to 128 payload bytes (`--with-resp-payload`). */
  payload: boolean;
}

export const DEFAULT_FORMAT: ChannelFormat = { combined: true, payload: false };

export function recordSize(f: ChannelFormat): number {
  return f.payload ? REPLY_RECORD_PAYLOAD_SIZE : REPLY_RECORD_SIZE;
}

export function batchMax(f: ChannelFormat): number {
  return f.payload ? COMB_MAX_NUM_PAYLOAD : COMB_MAX_NUM;
}

/** Field offsets in a 14-byte client record (and in the version and auth records of that size). */
export const enum ClientRec {
  ClientIp = 0,
  ClientPort = 4,
  /** MsgType, or the version in the first record of a connection. */
  Type = 6,
  TargetIp = 8,
  TargetPort = 12,
}

/**
 * Writes a 14-byte client record. Addresses and ports are numbers in host order; they go
 * on the wire big-endian, which is the C code's "raw network order" copy.
 */
export function writeClientRecord(buf: Buffer, off: number, type: number, clientIp: number, clientPort: number,
  targetIp: number, targetPort: number): void {
  put32(buf, off, clientIp >>> 0);
  put16(buf, off + ClientRec.ClientPort, clientPort & 0xffff);
  put16(buf, off + ClientRec.Type, type & 0xffff);
  put32(buf, off + ClientRec.TargetIp, targetIp >>> 0);
  put16(buf, off + ClientRec.TargetPort, targetPort & 0xffff);
}

/**
 * The version record tcpcopy sends first on every connection: all zero but type = 6 (the
 * original's), and with `caps` our capability announcement in its last 6 bytes (magic and
 * Capability bits), which the original intercept reads and ignores.
 */
export function writeVersionRecord(buf: Buffer, off: number, version = INTERNAL_VERSION, caps = -1): void {
  buf.fill(0, off, off + CLIENT_RECORD_SIZE);
  put16(buf, off + ClientRec.Type, version);
  if (caps >= 0) {
    put32(buf, off + ClientRec.TargetIp, CAPABILITY_MAGIC);
    put16(buf, off + ClientRec.TargetPort, caps & 0xffff);
  }
}

/**
 * Builds a reply record at `dst[dstOff]` from the IPv4/TCP packet at `pkt[ipOff]`, as the
 * original intercept does: the first 20 bytes of the IP header (options squeezed out, IHL
 * left as captured), then the TCP header up to 44 bytes, zero padded. In the payload variant
 * a payload of 1..128 bytes that was captured is copied right after the TCP header, as far
 * as it fits in the record (the C writer could overflow here).
 *
 * `capEnd` is the end (in pkt) of the captured bytes.
 */
export function buildReplyRecord(dst: Buffer, dstOff: number, size: number, pkt: Buffer, ipOff: number,
  ipHdrLen: number, tcpHdrLen: number, totLen: number, capEnd: number): void {
  // Byte loops: a record is 64 bytes, and Buffer.copy / fill of a few dozen bytes cost more in
  // their argument checks and typed-array views than the bytes themselves (intercept copies
  // every reply it forwards).
  const tcpOff = ipOff + ipHdrLen;
  const tcpCopy = Math.min(tcpHdrLen, RECORD_HEADERS_MAX - IP_HEADER, capEnd - tcpOff);
  for (let i = 0; i < IP_HEADER; i++) dst[dstOff + i] = pkt[ipOff + i];
  let at = IP_HEADER;
  for (let i = 0; i < tcpCopy; i++) dst[dstOff + IP_HEADER + i] = pkt[tcpOff + i];
  if (tcpCopy > 0) at += tcpCopy;
  if (size > REPLY_RECORD_SIZE) {
    const plen = totLen - ipHdrLen - tcpHdrLen;
    if (plen > 0 && plen <= MAX_PAYLOAD_LEN) {
      const from = tcpOff + tcpHdrLen;
      const room = size - IP_HEADER - tcpHdrLen;
      const n = Math.min(plen, room, capEnd - from);
      if (n > 0) {
        const to = dstOff + Rec.Tcp + tcpHdrLen;
        for (let i = at; i < Rec.Tcp + tcpHdrLen; i++) dst[dstOff + i] = 0; // a TCP header cut short by the capture
        for (let i = 0; i < n; i++) dst[to + i] = pkt[from + i];
        at = Rec.Tcp + tcpHdrLen + n;
      }
    }
  }
  for (let i = at; i < size; i++) dst[dstOff + i] = 0;
}

/** Reply-record field access (the record is at `off` in `buf`, TCP header at +20). */
export const ReplyRecord = {
  ipHeaderLen(buf: Buffer, off: number): number { return (buf[off + Rec.VerIhl] & 0x0f) << 2; },
  totalLen(buf: Buffer, off: number): number { return (buf[off + Rec.TotLen] << 8) | buf[off + Rec.TotLen + 1]; },
  srcIp(buf: Buffer, off: number): number { return get32(buf, off + Rec.SrcIp); },
  dstIp(buf: Buffer, off: number): number { return get32(buf, off + Rec.DstIp); },
  srcPort(buf: Buffer, off: number): number { return (buf[off + Rec.SrcPort] << 8) | buf[off + Rec.SrcPort + 1]; },
  dstPort(buf: Buffer, off: number): number { return (buf[off + Rec.DstPort] << 8) | buf[off + Rec.DstPort + 1]; },
  seq(buf: Buffer, off: number): number { return get32(buf, off + Rec.Seq); },
  ack(buf: Buffer, off: number): number { return get32(buf, off + Rec.Ack); },
  tcpHeaderLen(buf: Buffer, off: number): number { return (buf[off + Rec.DataOff] >>> 4) << 2; },
  flags(buf: Buffer, off: number): number { return buf[off + Rec.Flags]; },
  window(buf: Buffer, off: number): number { return (buf[off + Rec.Window] << 8) | buf[off + Rec.Window + 1]; },
  /**
   * Reply payload length from the IP total length, or -1 when the header lengths are
   * impossible. Replies carrying IP options are handled (the TCP header is always at +20).
   */
  payloadLen(buf: Buffer, off: number): number {
    const ihl = ReplyRecord.ipHeaderLen(buf, off);
    const doff = ReplyRecord.tcpHeaderLen(buf, off);
    if (ihl < IP_HEADER || doff < TCP_MIN_HEADER) return -1;
    const p = ReplyRecord.totalLen(buf, off) - ihl - doff;
    return p < 0 ? -1 : p;
  },
  /** How many bytes of TCP header the record holds (options beyond 24 bytes were cut). */
  tcpHeaderBytesInRecord(buf: Buffer, off: number): number {
    return Math.min(ReplyRecord.tcpHeaderLen(buf, off), RECORD_HEADERS_MAX - IP_HEADER);
  },
};
