import { createHash } from 'node:crypto';

/**
 * The parts of the MySQL / MariaDB client-server protocol that session replay needs: the
 * server's greeting (Protocol::HandshakeV10), the client's handshake response
 * (HandshakeResponse41), the server's answer to it (OK, ERR, auth switch, more data), and the
 * mysql_native_password token. Pure functions over a Buffer range; every length is checked
 * before it is used, and bad input is a reason string, never an exception.
 *
 * A packet is a 3-byte little-endian payload length, a 1-byte sequence id, the payload.
 */

export const PACKET_HEADER = 4;
export const SCRAMBLE_LEN = 20;
export const NATIVE_PASSWORD = 'mysql_native_password';

/** Capability flags (the ones replay looks at). */
export const enum Cap {
  /** MySQL's meaning; a MariaDB server leaves it clear, and its clients then use the filler. */
  LongPassword = 0x1,
  ConnectWithDb = 0x8,
  Protocol41 = 0x200,
  Ssl = 0x800,
  SecureConnection = 0x8000,
  PluginAuth = 0x80000,
  ConnectAttrs = 0x100000,
  PluginAuthLenencData = 0x200000,
}

/** What a handshake response or greeting check can find wrong (the skip reasons). */
export type HandshakeProblem =
  | 'bad-greeting' | 'target-error' | 'old-protocol' | 'bad-handshake-response' | 'tls'
  | 'plugin' | 'unknown-user' | 'auth-length' | 'split-packet';

export interface Greeting {
  protocolVersion: number;
  serverVersion: string;
  /** The 20-byte scramble (part 1 and the first 12 bytes of part 2). */
  scramble: Buffer;
  capabilities: number;
  /** The server's default plugin ('' when the greeting names none). */
  plugin: string;
}

/** Length and sequence id of the packet at `off`, or -1 when fewer than 4 bytes are there. */
export function packetLength(b: Buffer, off: number, end: number): number {
  if (end - off < PACKET_HEADER) return -1;
  return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16);
}

/** Offset of the NUL ending a string that starts at `from`, or -1 if none before `end`. */
function nul(b: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) if (b[i] === 0) return i;
  return -1;
}

/**
 * Parses the server's greeting from `b[off, end)` (the start of the target's first response
 * data). A reason string when it is not a whole HandshakeV10 with a 20-byte scramble.
 */
export function parseGreeting(b: Buffer, off: number, end: number): Greeting | HandshakeProblem {
  const len = packetLength(b, off, end);
  if (len < 0) return 'bad-greeting';
  const p = off + PACKET_HEADER;
  const pend = p + len;
  if (pend > end) return 'split-packet';
  if (len >= 1 && b[p] === 0xff) return 'target-error'; // ERR instead of a greeting (host blocked, too many connections)
  if (len < 1 || b[p] !== 10) return 'bad-greeting';
  const vEnd = nul(b, p + 1, pend);
  if (vEnd < 0) return 'bad-greeting';
  let q = vEnd + 1;
  // connection id (4), scramble part 1 (8), filler (1), capabilities low (2)
  if (pend - q < 4 + 8 + 1 + 2) return 'bad-greeting';
  const part1 = b.subarray(q + 4, q + 12);
  q += 13;
  let caps = b.readUInt16LE(q);
  q += 2;
  // charset (1), status (2), capabilities high (2), scramble length (1), reserved (10)
  if (pend - q < 1 + 2 + 2 + 1 + 10) return 'bad-greeting';
  caps = (caps | (b.readUInt16LE(q + 3) << 16)) >>> 0;
  const dataLen = b[q + 5];
  q += 16;
  if ((caps & Cap.SecureConnection) === 0) return 'bad-greeting'; // pre-4.1 scramble: not replayable
  // Part 2 is max(13, dataLen - 8) bytes, the last a NUL: 12 scramble bytes are needed.
  const part2Len = Math.max(13, dataLen - 8);
  if (pend - q < 12) return 'bad-greeting';
  const scramble = Buffer.alloc(SCRAMBLE_LEN);
  part1.copy(scramble, 0);
  b.copy(scramble, 8, q, q + 12);
  q += Math.min(part2Len, pend - q);
  let plugin = '';
  if ((caps & Cap.PluginAuth) !== 0 && q < pend) {
    const e = nul(b, q, pend);
    plugin = b.toString('latin1', q, e < 0 ? pend : e);
  }
  return { protocolVersion: 10, serverVersion: b.toString('latin1', p + 1, vEnd), scramble, capabilities: caps, plugin };
}

/** Where the parts of a client's handshake response are (offsets into the buffer given). */
export interface HandshakeResponse {
  sequenceId: number;
  capabilities: number;
  user: string;
  /** The auth response bytes: `authOff` .. `authOff + authLen`. */
  authOff: number;
  authLen: number;
  /** The plugin the client answered for (mysql_native_password when the client names none). */
  plugin: string;
  /** End of the packet. */
  end: number;
}

/**
 * Parses the client's handshake response in `b[off, end)`. The 23-byte filler is not
 * checked: a MariaDB client talking to a MariaDB server (CLIENT_MYSQL clear) puts its
 * extended capabilities in its last 4 bytes.
 */
export function parseHandshakeResponse(b: Buffer, off: number, end: number): HandshakeResponse | HandshakeProblem {
  const len = packetLength(b, off, end);
  if (len < 0) return 'bad-handshake-response';
  const p = off + PACKET_HEADER;
  const pend = p + len;
  if (pend > end) return 'split-packet';
  if (len < 4) return 'bad-handshake-response';
  const caps = b.readUInt32LE(p);
  if ((caps & Cap.Protocol41) === 0) return 'old-protocol';
  if (len < 32) return 'bad-handshake-response';
  // An SSL request is the 32 bytes of caps, max packet, charset and filler, and nothing else.
  if ((caps & Cap.Ssl) !== 0) return 'tls';
  let q = p + 32;
  const uEnd = nul(b, q, pend);
  if (uEnd < 0) return 'bad-handshake-response';
  const user = b.toString('utf8', q, uEnd);
  q = uEnd + 1;
  let authLen: number;
  if ((caps & Cap.PluginAuthLenencData) !== 0) {
    if (q >= pend) return 'bad-handshake-response';
    const first = b[q];
    if (first < 0xfb) { authLen = first; q += 1; }
    else if (first === 0xfc && pend - q >= 3) { authLen = b.readUInt16LE(q + 1); q += 3; }
    else return 'bad-handshake-response'; // 0xfb (NULL) and longer encodings make no sense here
  } else if ((caps & Cap.SecureConnection) !== 0) {
    if (q >= pend) return 'bad-handshake-response';
    authLen = b[q];
    q += 1;
  } else {
    const e = nul(b, q, pend);
    if (e < 0) return 'bad-handshake-response';
    authLen = e - q;
  }
  const authOff = q;
  if (authOff + authLen > pend) return 'bad-handshake-response';
  q = authOff + authLen;
  if ((caps & Cap.SecureConnection) === 0 && (caps & Cap.PluginAuthLenencData) === 0) q++; // its NUL
  if ((caps & Cap.ConnectWithDb) !== 0 && q < pend) {
    const e = nul(b, q, pend);
    if (e < 0) return 'bad-handshake-response';
    q = e + 1;
  }
  let plugin = NATIVE_PASSWORD;
  if ((caps & Cap.PluginAuth) !== 0 && q < pend) {
    const e = nul(b, q, pend);
    plugin = b.toString('latin1', q, e < 0 ? pend : e);
  }
  return { sequenceId: b[off + 3], capabilities: caps, user, authOff, authLen, plugin, end: pend };
}

/** What the server answered to an authentication packet. */
export const enum AuthReply { Ok = 0, Error = 1, Switch = 2, MoreData = 3, Bad = 4 }

/** Kind of the packet at `off` (the server's answer to a handshake response or auth-switch response). */
export function authReplyKind(b: Buffer, off: number, end: number): AuthReply {
  const len = packetLength(b, off, end);
  if (len < 1) return AuthReply.Bad;
  switch (b[off + PACKET_HEADER]) {
    case 0x00: return AuthReply.Ok;
    case 0xff: return AuthReply.Error;
    case 0xfe: return AuthReply.Switch;
    case 0x01: return AuthReply.MoreData;
    default: return AuthReply.Bad;
  }
}

/** An auth switch request: the plugin asked for and its data (a new scramble). */
export interface AuthSwitch { plugin: string; scramble: Buffer }

export function parseAuthSwitch(b: Buffer, off: number, end: number): AuthSwitch | HandshakeProblem {
  const len = packetLength(b, off, end);
  if (len < 1) return 'bad-greeting';
  const p = off + PACKET_HEADER;
  const pend = p + len;
  if (pend > end) return 'split-packet';
  if (b[p] !== 0xfe) return 'bad-greeting';
  const e = nul(b, p + 1, pend);
  if (e < 0) return 'bad-greeting';
  const plugin = b.toString('latin1', p + 1, e);
  // The data is the 20-byte scramble, followed by a NUL (MySQL and MariaDB both send it).
  let dEnd = pend;
  if (dEnd > e + 1 && b[dEnd - 1] === 0) dEnd--;
  return { plugin, scramble: Buffer.from(b.subarray(e + 1, dEnd)) };
}

/**
 * The mysql_native_password answer: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))),
 * 20 bytes; empty for an empty password (what clients send).
 */
export function nativePasswordToken(password: string, scramble: Buffer): Buffer {
  if (password.length === 0) return Buffer.alloc(0);
  const h1 = createHash('sha1').update(password, 'utf8').digest();
  const h2 = createHash('sha1').update(h1).digest();
  const h3 = createHash('sha1').update(scramble.subarray(0, SCRAMBLE_LEN)).update(h2).digest();
  for (let i = 0; i < h3.length; i++) h3[i] ^= h1[i];
  return h3;
}
