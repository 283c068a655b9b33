/**
 * The IPv6 twin of engine-sim's Harness. It reuses the IPv4 client builder (ClientConn) and the
 * simulated target (SimTarget) through a translation at the edges: each captured IPv4 packet
 * becomes the same TCP segment behind an IPv6 header (its addresses mapped into 2001:2:ff::/96,
 * the IPv4 address in the last 32 bits), each IPv6 packet the engine sends is checked as IPv6
 * (lengths, the pseudo-header checksum computed independently, announced with CLIENT_ADD6
 * before, MTU) and then handed to the target translated back, and each reply record of the
 * target becomes a two-slot IPv6 reply record (docs/control-channel.md). IPv4 traffic may run
 * in the same engine at once (mixed runs): it goes to the same target untranslated.
 */
import { fold, pseudoHeaderSum } from '../../src/wire/checksum';
import { Tcp6Packet, TcpPacket } from '../../src/wire/packet';
import { ipv6ToString, parseIpv6 } from '../../src/wire/ipv6';
import { ipToString } from '../../src/wire/ipv4';
import { REPLY_RECORD_SIZE } from '../../src/control/records';
import { DEFAULT_ENGINE_OPTIONS, Engine, EngineOptions, RouteRegistrar } from '../../src/tcpcopy/engine';
import { TransferRule } from '../../src/tcpcopy/transfer';
import {
  CaptureSender, CsumMode, Parsed, parse, Rng, routeKey, SentPacket, SimOpts, SimRecord, SimTarget, SIM_START_MS,
  TARGET_IP, TARGET_PORT, validateSent,
} from './engine-sim';

/** 2001:2:ff::/96 with an IPv4 address in its last 32 bits. */
export function map6(v4: number): Buffer {
  const b = parseIpv6('2001:2:ff::')!;
  b.writeUInt32BE(v4 >>> 0, 12);
  return b;
}
export function unmap6(b: Buffer, off: number): number { return b.readUInt32BE(off + 12); }

export const TARGET6 = map6(TARGET_IP);

export function makeRule6(index = 0, onlinePort = 80, target6 = TARGET6, targetPort = TARGET_PORT): TransferRule {
  return new TransferRule(index, 0, onlinePort, 0, targetPort, null, null, null, target6);
}

/**
 * The IPv6 packet of an IPv4 one (no IP options): the same TCP segment, addresses mapped, and
 * the TCP checksum computed for the IPv6 pseudo-header ('partial': the pseudo-header sum only,
 * as a checksum-offloading NIC leaves it).
 */
export function toV6(v4: Buffer, csum: CsumMode = 'full'): Buffer {
  const ihl = (v4[0] & 0x0f) << 2;
  const tot = v4.readUInt16BE(2);
  const seg = v4.subarray(ihl);
  const b = Buffer.alloc(40 + seg.length);
  b.writeUInt32BE(0x60000000, 0);
  b.writeUInt16BE(tot - ihl, 4);
  b[6] = 6; b[7] = 64;
  map6(v4.readUInt32BE(12)).copy(b, 8);
  map6(v4.readUInt32BE(16)).copy(b, 24);
  seg.copy(b, 40);
  b.writeUInt16BE(0, 40 + 16);
  const l4 = tot - ihl;
  if (csum === 'full') {
    b.writeUInt16BE(refSum6(b, 0) ^ 0xffff, 40 + 16);
  } else {
    const ps = fold(pseudoHeaderSum(b, 0, 6, l4));
    b.writeUInt16BE(csum === 'partial' ? ps : (~ps & 0xffff), 40 + 16);
  }
  return b;
}

/**
 * An IPv4 packet of an IPv6 one the engine sent (for the simulated target): addresses unmapped,
 * or the source given as `src` (the harness gives each IPv6 client address an IPv4 alias).
 */
export function toV4(v6: Buffer, src = unmap6(v6, 8)): Buffer {
  const seg = v6.subarray(40);
  const b = Buffer.alloc(20 + seg.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b[6] = 0x40; b[8] = 64; b[9] = 6;
  b.writeUInt32BE(src >>> 0, 12);
  b.writeUInt32BE(unmap6(v6, 24), 16);
  seg.copy(b, 20);
  return b;
}

/**
 * The two-slot IPv6 reply record of an IPv4 one (64 bytes: 20 of IP header, then TCP); `dst`:
 * the IPv6 destination (default: the IPv4 one mapped).
 */
export function toRecord6(rec4: Buffer, dst = map6(rec4.readUInt32BE(16))): Buffer {
  const r = Buffer.alloc(2 * REPLY_RECORD_SIZE);
  const ihl = (rec4[0] & 0x0f) << 2;
  r.writeUInt32BE(0x60000000, 0);
  r.writeUInt16BE(rec4.readUInt16BE(2) - ihl, 4);
  r[6] = 6; r[7] = 64;
  map6(rec4.readUInt32BE(12)).copy(r, 8);
  dst.copy(r, 24);
  rec4.copy(r, 40, 20, REPLY_RECORD_SIZE);
  return r;
}

/**
 * Ones-complement sum (folded) over the IPv6 pseudo-header and the TCP segment of the packet at
 * `off`, written independently of src/wire: 0xffff when the stored checksum is right.
 */
export function refSum6(b: Buffer, off: number): number {
  const l4 = b.readUInt16BE(off + 4);
  let s = 6 + l4;
  for (let i = off + 8; i < off + 40; i += 2) s += b.readUInt16BE(i);
  const end = off + 40 + l4;
  for (let i = off + 40; i < end; i += 2) s += i + 1 < end ? b.readUInt16BE(i) : b[i] << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}

export const routeKey6 = (c: Buffer, cport: number, t: Buffer, tport: number): string =>
  `[${ipv6ToString(c)}]:${cport}>[${ipv6ToString(t)}]:${tport}`;

/** Records CLIENT_ADD and CLIENT_ADD6; `ipv6` false plays an intercept without the capability. */
export class Registrar6 implements RouteRegistrar {
  ready = true;
  ipv6 = true;
  readonly adds: { key: string; n: number }[] = [];
  readonly first = new Map<string, number>();
  constructor(private readonly clock: { n: number }) {}
  private note(key: string): void {
    const n = this.clock.n++;
    this.adds.push({ key, n });
    if (!this.first.has(key)) this.first.set(key, n);
  }
  clientAdd(clientIp: number, clientPort: number, targetIp: number, targetPort: number): boolean {
    this.note(routeKey(clientIp, clientPort, targetIp, targetPort));
    return true;
  }
  clientAdd6(clientIp6: Buffer, clientPort: number, targetIp6: Buffer, targetPort: number): boolean {
    if (clientIp6.length !== 16 || targetIp6.length !== 16) throw new Error('CLIENT_ADD6 addresses must be 16 bytes');
    if (!this.ipv6) return false;
    this.note(routeKey6(clientIp6, clientPort, targetIp6, targetPort));
    return true;
  }
}

/** Checks one IPv6 packet the engine sent; a description of the problem, or null. */
export function validateSent6(p: SentPacket, reg: Registrar6, rules: TransferRule[], mtu: number): string | null {
  const v = new Tcp6Packet();
  const b = p.buf;
  const r = v.check(b, 0, b.length);
  if (r !== 0) return `packet #${p.n} does not parse as IPv6 (reason ${r}): ${b.toString('hex')}`;
  if (v.ip.totalLen !== b.length) return `packet #${p.n}: 40 + payload length ${v.ip.totalLen} != sent length ${b.length}`;
  if (refSum6(b, 0) !== 0xffff) return `packet #${p.n}: bad TCP checksum (IPv6 pseudo-header) ${b.toString('hex')}`;
  const dst = b.subarray(24, 40);
  const rule = rules.find((x) => x.targetIp6 !== null && x.targetIp6.equals(dst) && x.targetPort === v.tcp.dstPort);
  if (!rule) return `packet #${p.n}: destination [${ipv6ToString(dst)}]:${v.tcp.dstPort} is no target`;
  if (p.dst !== rule.targetIpText) return `packet #${p.n}: handed to the socket for ${p.dst}, header says ${rule.targetIpText}`;
  const key = routeKey6(b.subarray(8, 24), v.tcp.srcPort, dst, v.tcp.dstPort);
  const add = reg.first.get(key);
  if (add === undefined || add > p.n) return `packet #${p.n}: ${key} not announced with CLIENT_ADD6 before`;
  if (b.length > mtu) return `packet #${p.n}: ${b.length} bytes > MTU ${mtu}`;
  return null;
}

/** An engine with IPv6 and IPv4 recording senders, a registrar, and the simulated target. */
export class Harness6 {
  readonly clock = { n: 0 };
  readonly sender = new CaptureSender(this.clock);
  readonly sender6 = new CaptureSender(this.clock);
  readonly reg = new Registrar6(this.clock);
  readonly engine: Engine;
  readonly sim: SimTarget;
  readonly problems: string[] = [];
  /** What the target gets, in order: IPv4 packets, IPv6 ones translated (and which family). */
  private readonly toTarget: { buf: Buffer; v6: boolean }[] = [];
  /**
   * The target sees each IPv6 client address as an IPv4 alias from 100.64.0.0/10, so that an
   * IPv4 client and an IPv6 one are distinct connections there whatever their addresses.
   */
  private readonly alias = new Map<string, number>();
  private readonly unalias = new Map<number, Buffer>();
  private readonly view6 = new Tcp6Packet();
  private readonly view4 = new TcpPacket();
  now = SIM_START_MS;

  constructor(opts: Partial<EngineOptions> = {}, sim: Partial<SimOpts> = {}, seed = 1,
    readonly rule6 = makeRule6(), readonly rule4: TransferRule | null = null) {
    this.engine = new Engine({ ...DEFAULT_ENGINE_OPTIONS, ...opts }, this.sender, this.reg, this.now);
    this.engine.sender6 = this.sender6;
    this.sim = new SimTarget(SimTarget.defaults(new Rng(seed), sim));
    this.sender6.onSend = (p) => {
      const why = validateSent6(p, this.reg, [this.rule6], this.engine.opts.mtu);
      if (why) this.problems.push(why);
      const hex = p.buf.toString('hex', 8, 24);
      let a = this.alias.get(hex);
      if (a === undefined) {
        a = (0x64400000 + this.alias.size + 1) >>> 0;
        this.alias.set(hex, a);
        this.unalias.set(a, Buffer.from(p.buf.subarray(8, 24)));
      }
      this.toTarget.push({ buf: toV4(p.buf, a), v6: true });
    };
    this.sender.onSend = (p) => {
      if (this.rule4 === null) { this.problems.push(`packet #${p.n}: IPv4 sent in an IPv6-only run`); return; }
      // The IPv4 checker wants CLIENT_ADD keys in a Registrar's `first`: ours has the same shape.
      const why = validateSent(p, this.reg as never, [this.rule4], this.engine.opts.mtu);
      if (why) this.problems.push(why);
      this.toTarget.push({ buf: p.buf, v6: false });
    };
  }

  /** Feeds captured client packets (built as IPv4 by ClientConn) as IPv6 packets. */
  feed(...pkts: (Buffer | Buffer[])[]): void {
    for (const x of pkts.flat()) this.feed6(toV6(x));
  }

  /** Feeds one IPv6 packet as captured. */
  feed6(b: Buffer): void {
    const r = this.view6.check(b, 0, b.length);
    if (r !== 0) throw new Error(`test built a bad IPv6 packet (${r})`);
    this.engine.onClientPacket6(this.view6, this.rule6, this.now);
  }

  /** Feeds IPv4 packets (mixed runs) matched to `rule4`. */
  feed4(...pkts: (Buffer | Buffer[])[]): void {
    for (const x of pkts.flat()) {
      const r = this.view4.check(x, 0, x.length);
      if (r !== 0) throw new Error(`test built a bad packet (${r})`);
      this.engine.onClientPacket(this.view4, this.rule4!, this.now);
    }
  }

  run(maxSteps = 100_000): void {
    for (let i = 0; i < maxSteps; i++) {
      const p = this.toTarget.shift();
      if (!p) return;
      const recs = this.sim.handle(p.buf);
      if (recs.length) this.reply(p.v6, ...recs);
    }
    throw new Error('harness: no quiescence');
  }

  reply(v6: boolean, ...recs: (SimRecord | Buffer)[]): void {
    for (const r of recs) {
      const rec = Buffer.isBuffer(r) ? r : r.rec;
      this.engine.onReply(v6 ? toRecord6(rec, this.unalias.get(rec.readUInt32BE(16)) ?? map6(rec.readUInt32BE(16))) : rec, 0, this.now);
    }
    this.engine.flushAcks();
  }

  advance(ms: number): void {
    this.now += ms;
    this.engine.poll(this.now);
  }

  sweep(): void { this.engine.sweep(this.now); }

  /** The IPv6 packets sent, parsed as IPv4 (addresses unmapped) for the helpers of engine-sim. */
  sent6(): Parsed[] { return this.sender6.all.map((p) => parse(toV4(p.buf))); }

  close(): void { this.engine.shutdown(this.now); }
}

export { ipToString };
