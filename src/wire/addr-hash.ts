/**
 * A 31-bit hash of an IPv4 address and a port: non-negative, so a small integer in V8 (a key
 * of `ip * 65536 + port` is above 2^31 and is boxed as a heap number on every Map access).
 * For hash tables keyed by a client address: the session tables and intercept's route table.
 */
export function addrPortHash(ip: number, port: number): number {
  let h = Math.imul(ip | 0, 0x9e3779b1) ^ Math.imul(port, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 13;
  return h & 0x7fffffff;
}
