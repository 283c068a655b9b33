/**
 * Big- and little-endian fields of packet and record bytes, read and written by index.
 *
 * `Buffer.prototype.readUInt32BE` and its kin are JavaScript methods on Buffer's prototype,
 * and V8's optimising compiler (Node 20) does not inline them there: optimised code calls the
 * generic load IC to find the method, then calls it, and the method checks its argument (a
 * read and a write of a 32-bit field: 30–40 ns, against 4–9 ns by index, measured on the bench
 * machine). On the packet path that was the largest share of V8's own work (`Builtins_LoadIC`:
 * 4 % of tcpcopy's CPU at keep-alive rates, in perf).
 *
 * These take the bounds as given: the wire views check a packet's lengths before anything is
 * read, so an index past the end would be a bug, not hostile input (it reads 0 here, where the
 * Buffer methods threw). Writes keep the low bits of the value, as a C store would.
 */

export function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

export function get32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

export function get16le(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}

export function get32le(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

export function put16le(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

export function put32le(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

let lengthBuf: Uint8Array | null = null;
let lengthVal = 0;

/**
 * `b.length`, remembered for the last Buffer asked about (a typed array's length is a call from
 * optimised code in Node 20; the wire views check every captured packet against the same ring
 * Buffer). A Buffer's length never changes.
 */
export function lengthOf(b: Uint8Array): number {
  if (b === lengthBuf) return lengthVal;
  lengthVal = b.length;
  lengthBuf = b;
  return lengthVal;
}
