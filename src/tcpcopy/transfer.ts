import { ipToString } from '../wire/ipv4';

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

/** A stable 32-bit mix of two numbers (for address mapping and sampling). */
export function mix32(a: number, b: number): number {
  let h = Math.imul((a ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}
