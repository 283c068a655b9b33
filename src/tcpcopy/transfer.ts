import { ipToString, parseIp } from '../wire/ipv4';
import { parseMac } from '../wire/link';

/** One `-x` item: traffic to [onlineIp:]onlinePort is replayed to targetIp:targetPort. */
export class TransferRule {
  /** Cached dotted quad of the target, handed to the raw socket on every send. */
  readonly targetIpText: string;
  constructor(
    readonly index: number,
    /** 0 = any local address. */
    readonly onlineIp: number,
    readonly onlinePort: number,
    readonly targetIp: number,
    readonly targetPort: number,
    readonly srcMac: Buffer | null,
    readonly dstMac: Buffer | null,
  ) {
    this.targetIpText = ipToString(targetIp);
  }

  toString(): string {
    return `${this.onlineIp ? ipToString(this.onlineIp) + ':' : ''}${this.onlinePort}-${this.targetIpText}:${this.targetPort}`;
  }
}

export class TransferSyntaxError extends Error {
  constructor(readonly position: number, readonly item: string, reason: string) {
    super(`-x: ${reason} in '${item}' (item ${position}); write items like 80-10.0.0.2:8080 or 10.0.0.1:80-10.0.0.2:8080, comma separated`);
    this.name = 'TransferSyntaxError';
  }
}

function parsePort(s: string, what: string, pos: number, item: string): number {
  if (!/^\d{1,5}$/.test(s)) throw new TransferSyntaxError(pos, item, `${what} '${s}' is not a port number`);
  const n = Number(s);
  if (n < 1 || n > 65535) throw new TransferSyntaxError(pos, item, `${what} ${n} is outside 1..65535`);
  return n;
}

function splitMac(s: string, pos: number, item: string): [string, Buffer | null] {
  const at = s.indexOf('@');
  if (at < 0) return [s, null];
  const mac = parseMac(s.slice(at + 1));
  if (!mac) throw new TransferSyntaxError(pos, item, `'${s.slice(at + 1)}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return [s.slice(0, at), mac];
}

/** Parses `-x` exactly in the original's syntax: `[srcIP:]srcPort[@MAC]-dstIP:dstPort[@MAC],...`. */
export function parseTransfer(spec: string): TransferRule[] {
  const rules: TransferRule[] = [];
  const items = spec.split(',');
  items.forEach((raw, i) => {
    const pos = i + 1;
    const item = raw.trim();
    if (!item) throw new TransferSyntaxError(pos, raw, 'empty item');
    const dash = item.indexOf('-');
    if (dash < 0) throw new TransferSyntaxError(pos, item, "missing '-' between the online side and the target");
    const [src, srcMac] = splitMac(item.slice(0, dash), pos, item);
    const [dst, dstMac] = splitMac(item.slice(dash + 1), pos, item);
    let onlineIp = 0;
    let onlinePortText = src;
    const sc = src.lastIndexOf(':');
    if (sc >= 0) {
      onlineIp = parseIp(src.slice(0, sc));
      if (onlineIp < 0) throw new TransferSyntaxError(pos, item, `'${src.slice(0, sc)}' is not an IPv4 address`);
      onlinePortText = src.slice(sc + 1);
    }
    const onlinePort = parsePort(onlinePortText, 'online port', pos, item);
    const dc = dst.lastIndexOf(':');
    if (dc < 0) throw new TransferSyntaxError(pos, item, "the target needs an address and a port, 'ip:port'");
    const targetIp = parseIp(dst.slice(0, dc));
    if (targetIp < 0) throw new TransferSyntaxError(pos, item, `'${dst.slice(0, dc)}' is not an IPv4 address`);
    const targetPort = parsePort(dst.slice(dc + 1), 'target port', pos, item);
    if ((srcMac === null) !== (dstMac === null)) throw new TransferSyntaxError(pos, item, 'give a MAC address on both sides or on neither');
    rules.push(new TransferRule(i, onlineIp, onlinePort, targetIp, targetPort, srcMac, dstMac));
  });
  return rules;
}

/** Finds the rule for a captured packet's destination: first match in `-x` order. */
export class TransferTable {
  private readonly byPort = new Map<number, TransferRule[]>();
  readonly targetLocalhost: boolean;

  constructor(readonly rules: TransferRule[]) {
    for (const r of rules) {
      const l = this.byPort.get(r.onlinePort);
      if (l) l.push(r); else this.byPort.set(r.onlinePort, [r]);
    }
    this.targetLocalhost = rules.some((r) => r.targetIp === 0x7f000001);
  }

  match(dstIp: number, dstPort: number): TransferRule | null {
    const l = this.byPort.get(dstPort);
    if (l === undefined) return null;
    for (let i = 0; i < l.length; i++) {
      const r = l[i];
      if (r.onlineIp === 0 || r.onlineIp === dstIp) return r;
    }
    return null;
  }

  /** The BPF filter tcpcopy uses for pcap capture when `-F` is not given. */
  pcapFilter(): string {
    const parts = this.rules.map((r) => r.onlineIp ? `(dst port ${r.onlinePort} and dst host ${ipToString(r.onlineIp)})` : `(dst port ${r.onlinePort})`);
    return `tcp and (${parts.join(' or ')})`;
  }
}

/**
 * `-c`: addresses the replayed clients get. Items are addresses, or `a.b.c.x` for .1–.254.
 * Addresses equal to a target are left out (the target would talk to itself).
 */
export function parseClientAddresses(spec: string, rules: TransferRule[]): number[] {
  const out: number[] = [];
  const targets = new Set(rules.map((r) => r.targetIp));
  spec.split(',').forEach((raw, i) => {
    const item = raw.trim();
    if (!item) return;
    if (item.endsWith('*')) throw new Error(`-c: '${item}' (item ${i + 1}): use 'x' for a range, e.g. 62.135.200.x`);
    if (/\.x$/i.test(item)) {
      const base = parseIp(item.replace(/x$/i, '0'));
      if (base < 0) throw new Error(`-c: '${item}' (item ${i + 1}) is not an address range like 62.135.200.x`);
      for (let h = 1; h <= 254; h++) if (!targets.has(base + h)) out.push(base + h);
      return;
    }
    const ip = parseIp(item);
    if (ip < 0) throw new Error(`-c: '${item}' (item ${i + 1}) is not an IPv4 address; write e.g. -c 10.0.1.5,10.0.1.6 or -c 10.0.1.x`);
    if (!targets.has(ip)) out.push(ip);
  });
  if (out.length > 4096) throw new Error(`-c: ${out.length} addresses; at most 4096`);
  if (spec.trim() && out.length === 0) throw new Error('-c: no usable address (every one equals a target address)');
  return out;
}

/** A stable 32-bit mix of two numbers (for address mapping and sampling). */
export function mix32(a: number, b: number): number {
  let h = Math.imul((a ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}
