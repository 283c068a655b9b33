import { ipToString } from '../wire/ipv4';
import { ipv6ToString } from '../wire/ipv6';

/**
 * One `-x` item: traffic to [onlineIp:]onlinePort is replayed to targetIp:targetPort. An IPv6
 * rule has its addresses in `onlineIp6` / `targetIp6` (16 bytes; `onlineIp6` null = any) and
 * 0 in the IPv4 fields; a rule without an online address matches packets of its target's
 * family only (no translation between families).
 */
export class TransferRule {
  /** Cached text of the target address (dotted quad, or RFC 5952), handed to the sender. */
  readonly targetIpText: string;
  /** 4 or 6: the family of the target (and of the online address, when given). */
  readonly family: 4 | 6;
  constructor(
    readonly index: number,
    /** 0 = any local address. */
    readonly onlineIp: number,
    readonly onlinePort: number,
    readonly targetIp: number,
    readonly targetPort: number,
    readonly srcMac: Buffer | null,
    readonly dstMac: Buffer | null,
    /** IPv6 rules: the online address (null = any local address). */
    readonly onlineIp6: Buffer | null = null,
    /** IPv6 rules: the target address; null for an IPv4 rule. */
    readonly targetIp6: Buffer | null = null,
  ) {
    this.family = targetIp6 !== null ? 6 : 4;
    this.targetIpText = targetIp6 !== null ? ipv6ToString(targetIp6) : ipToString(targetIp);
  }

  /** True when this rule names an online address (of either family). */
  get hasOnlineIp(): boolean { return this.family === 6 ? this.onlineIp6 !== null : this.onlineIp !== 0; }

  /** The online address as text ('' = any). */
  get onlineIpText(): string {
    if (this.family === 6) return this.onlineIp6 !== null ? ipv6ToString(this.onlineIp6) : '';
    return this.onlineIp ? ipToString(this.onlineIp) : '';
  }

  toString(): string {
    if (this.family === 6) {
      return `${this.onlineIp6 ? `[${this.onlineIpText}]:` : ''}${this.onlinePort}-[${this.targetIpText}]:${this.targetPort}`;
    }
    return `${this.onlineIp ? ipToString(this.onlineIp) + ':' : ''}${this.onlinePort}-${this.targetIpText}:${this.targetPort}`;
  }
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

  /** True when some rule replays IPv6. */
  get hasIpv6(): boolean { return this.rules.some((r) => r.family === 6); }
  get hasIpv4(): boolean { return this.rules.some((r) => r.family !== 6); }

  /** The rule for an IPv4 packet to dstIp:dstPort (IPv6 rules never match). */
  match(dstIp: number, dstPort: number): TransferRule | null {
    const l = this.byPort.get(dstPort);
    if (l === undefined) return null;
    for (let i = 0; i < l.length; i++) {
      const r = l[i];
      if (r.family === 4 && (r.onlineIp === 0 || r.onlineIp === dstIp)) return r;
    }
    return null;
  }

  /** The rule for an IPv6 packet whose destination address is the 16 bytes at `buf[off]`. */
  match6(buf: Buffer, off: number, dstPort: number): TransferRule | null {
    const l = this.byPort.get(dstPort);
    if (l === undefined) return null;
    for (let i = 0; i < l.length; i++) {
      const r = l[i];
      if (r.family !== 6) continue;
      const a = r.onlineIp6;
      if (a === null || a.compare(buf, off, off + 16) === 0) return r;
    }
    return null;
  }

  /** The BPF filter tcpcopy uses for pcap capture when `-F` is not given. */
  pcapFilter(): string {
    const parts = this.rules.map((r) => r.hasOnlineIp ? `(dst port ${r.onlinePort} and dst host ${r.onlineIpText})` : `(dst port ${r.onlinePort})`);
    return `tcp and (${parts.join(' or ')})`;
  }
}

/** A stable 32-bit mix of two numbers (for address mapping and sampling). */
export function mix32(a: number, b: number): number {
  let h = Math.imul((a ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}
