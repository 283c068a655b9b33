import * as fs from 'node:fs';
import { IoError } from './types';
import { explainNativeError, loadNative, NativeRing } from './native';

/** Receives the IPv4 packets of a ring, one call each, then one call per batch. */
export interface RingPacketSink {
  /**
   * `buf[ipOff .. ipOff + capLen)` holds an IPv4 packet (valid only during the call; the ring's
   * memory goes back to the kernel after the batch); `wireLen` is its length on the wire
   * (larger than capLen when the snap length cut it); `tsUs` the kernel's capture time.
   */
  onRingPacket(buf: Buffer, ipOff: number, capLen: number, wireLen: number, tsUs: number): void;
  /** false: the sink has no use for `tsUs`, which is then 0 (not computed: a double per packet). */
  readonly wantsTime?: boolean;
  /** After every packet of one wakeup. */
  onRingBatchEnd?(): void;
  /** The capture fell behind (the kernel dropped packets, or most of the ring was full) or caught up. */
  onCaptureBehind?(behind: boolean): void;
}

/** What a walk of blocks counted (kept by the caller, added to). */
export class RingCounters {
  /** Packets handed to the sink. */
  packets = 0;
  /** Of those, cut by the snap length (capLen < wireLen). */
  truncated = 0;
  /** Blocks whose header or packet chain did not fit the block: the rest of the block is skipped. */
  badBlocks = 0;
  blocks = 0;
  wakeups = 0;
  /** Most blocks ready in one wakeup (a full ring means the capture is behind). */
  maxBlocksPerWakeup = 0;
}

// tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1.
const BLK_STATUS = 8;
const TP_STATUS_KERNEL = 0;
const BLK_NUM_PKTS = 12;
const BLK_FIRST = 16;
const BLK_LEN = 20;
const BLK_HDR = 48;
// tpacket3_hdr
const PKT_NEXT = 0;
const PKT_SEC = 4;
const PKT_NSEC = 8;
const PKT_SNAPLEN = 12;
const PKT_LEN = 16;
const PKT_NET = 26;
const PKT_HDR = 48;

/**
 * Walks `count` blocks from `first` (mod blockCount) of a TPACKET_V3 ring held in `buf`
 * (`u32` a Uint32Array over the same memory), handing every packet to the sink. Each block is
 * checked against its own length and the block size before anything in it is read: a block
 * holding garbage is counted in `c.badBlocks` and the rest of it skipped, never read outside.
 * Each block goes back to the kernel as soon as it is walked (the addon releases any the walk
 * did not reach, after a throw).
 */
export function walkBlocks(buf: Buffer, u32: Uint32Array, blockSize: number, blockCount: number,
  first: number, count: number, sink: RingPacketSink, c: RingCounters): void {
  let b = first;
  const time = sink.wantsTime !== false;
  for (let k = 0; k < count; k++) {
    const base = b * blockSize;
    b = b + 1 === blockCount ? 0 : b + 1;
    walkBlock(buf, u32, base, blockSize, sink, c, time);
    // Back to the kernel at once, not after the whole batch: while a long batch is handled
    // (a burst, a cold start) the kernel can fill the blocks already done instead of dropping.
    // A sequentially consistent store (the kernel reads the status, then the block).
    Atomics.store(u32, (base + BLK_STATUS) >>> 2, TP_STATUS_KERNEL);
  }
}

/** One block of a walk (see walkBlocks). */
function walkBlock(buf: Buffer, u32: Uint32Array, base: number, blockSize: number, sink: RingPacketSink, c: RingCounters, time: boolean): void {
  c.blocks++;
  const blkLen = u32[(base + BLK_LEN) >>> 2];
  const n = u32[(base + BLK_NUM_PKTS) >>> 2];
  let p = base + u32[(base + BLK_FIRST) >>> 2];
  const end = base + blkLen;
  if (blkLen > blockSize || blkLen < BLK_HDR) { if (n !== 0 || blkLen !== 0) c.badBlocks++; return; }
  for (let i = 0; i < n; i++) {
    if ((p & 3) !== 0 || p < base + BLK_HDR || p + PKT_HDR > end) { c.badBlocks++; break; }
    const w = p >>> 2;
    const snap = u32[w + (PKT_SNAPLEN >>> 2)];
    const net = buf[p + PKT_NET] | (buf[p + PKT_NET + 1] << 8);
    if (net < PKT_HDR || p + net + snap > end) { c.badBlocks++; break; }
    const wire = u32[w + (PKT_LEN >>> 2)];
    if (snap < wire) c.truncated++;
    c.packets++;
    sink.onRingPacket(buf, p + net, snap, wire, time ? u32[w + (PKT_SEC >>> 2)] * 1e6 + ((u32[w + (PKT_NSEC >>> 2)] / 1000) | 0) : 0);
    if (i + 1 < n) {
      const next = u32[w + (PKT_NEXT >>> 2)];
      if (next < PKT_HDR) { c.badBlocks++; break; }
      p += next;
    }
  }
}

/** The interface index of a device (sysfs); 'any' is 0. Throws an IoError naming the devices here. */
export function interfaceIndex(device: string): number {
  if (device === 'any') return 0;
  try {
    const n = Number(fs.readFileSync(`/sys/class/net/${device}/ifindex`, 'utf8').trim());
    if (Number.isInteger(n) && n > 0) return n;
  } catch { /* below */ }
  let here: string[] = [];
  try { here = fs.readdirSync('/sys/class/net'); } catch { /* none */ }
  throw new IoError('no-device', `device '${device}' does not exist; devices here: ${here.join(', ')}`);
}

export interface RingCaptureOptions {
  /** Devices to bind to; [] or ['any'] = every interface. */
  devices: string[];
  /**
   * Without devices: false binds to IPv4 only, which the kernel delivers once per packet, at the
   * device where IP receives it (after bridge, bond and VLAN devices), inbound only. true (and
   * always with devices) binds to every protocol, as libpcap does.
   */
  allProtocols: boolean;
  /**
   * Capture IPv6 as well: rings bound to every protocol let IPv6 pass too; without devices and
   * without allProtocols, a second ring bound to IPv6 opens beside the IPv4 one.
   */
  ipv6?: boolean;
  /**
   * With `ipv6`, without devices and without allProtocols: false when there is no IPv4 to
   * capture (tcpcopy with IPv6 rules only), so that only the IPv6 ring opens.
   */
  ipv4?: boolean;
  ignoreOutgoing: boolean;
  filter: string;
  snaplen: number;
  /** Bytes of ring per device (rounded to blocks). */
  ringBytes: number;
  timeoutMs: number;
}

/**
 * The block size for a snap length: the smallest power of two that holds one whole packet (a
 * GRO packet of 64 KiB for tcpcopy: 128 KiB blocks; intercept's 288 bytes: 4 KiB). Small
 * blocks matter: at low rates the kernel hands a block over after the retire timeout with a
 * few packets in it, so the ring absorbs a stall of the process (a GC pause, a busy CPU) of
 * about blocks × timeout; 4 MiB of 4 KiB blocks is a second at 1 ms.
 */
export function ringBlockSize(snaplen: number): number {
  let b = 4096;
  while (b < snaplen + 256) b <<= 1;
  return b;
}
export const MIN_BLOCKS = 8;
export const MAX_BLOCKS = 65536;
/** How often the kernel's drop counter is read. */
const STATS_MS = 100;

/** Capture through one TPACKET_V3 ring per device (or one for every interface). */
export class RingCapture {
  private readonly rings: NativeRing[] = [];
  /** Rings opened (kept after close, for the summary). */
  ringCount = 0;
  readonly counters = new RingCounters();
  kernelPackets = 0;
  kernelDrops = 0;
  freezes = 0;
  behind = false;
  behindEvents = 0;
  private maxSinceCheck = 0;
  private timer: NodeJS.Timeout | null = null;
  readonly blockCount: number;
  readonly blockSize: number;

  constructor(readonly opts: RingCaptureOptions, private readonly sink: RingPacketSink) {
    this.blockSize = ringBlockSize(opts.snaplen);
    this.blockCount = Math.min(MAX_BLOCKS, Math.max(MIN_BLOCKS, Math.floor(opts.ringBytes / this.blockSize)));
  }

  /** Opens every ring; on failure closes what was opened and throws an IoError. */
  open(): void {
    const n = loadNative();
    const devs = this.opts.devices.filter((d) => d !== 'any');
    const targets = devs.length ? devs.map((d) => ({ name: d, ifindex: interfaceIndex(d), v6only: false })) : [{ name: 'any', ifindex: 0, v6only: false }];
    if (this.opts.ipv6 && !devs.length && !this.opts.allProtocols) {
      // IPv6 only (no IPv4 to capture): the IPv6 ring alone, not an idle IPv4 one of the same size.
      if (this.opts.ipv4 === false) targets.length = 0;
      targets.push({ name: 'any', ifindex: 0, v6only: true });
    }
    try {
      for (const t of targets) {
        let ring: NativeRing;
        try {
          ring = new n.Ring({
            ifindex: t.ifindex, allProtocols: this.opts.allProtocols || t.ifindex !== 0, ignoreOutgoing: this.opts.ignoreOutgoing,
            ipv6: t.v6only || (this.opts.ipv6 === true && (this.opts.allProtocols || t.ifindex !== 0)),
            filter: this.opts.filter, snaplen: this.opts.snaplen, blockSize: this.blockSize, blockCount: this.blockCount,
            timeoutMs: this.opts.timeoutMs,
          });
        } catch (e) {
          throw explainNativeError(e, `capture ring on ${t.name === 'any' ? 'every interface' : `'${t.name}'`}`, this.opts.filter);
        }
        this.rings.push(ring);
      }
      for (const r of this.rings) this.startRing(r);
      this.ringCount = this.rings.length;
    } catch (e) {
      this.close();
      throw e;
    }
    this.timer = setInterval(() => this.checkStats(), STATS_MS);
    this.timer.unref();
  }

  private startRing(r: NativeRing): void {
    const buf = Buffer.from(r.buffer);
    const u32 = new Uint32Array(r.buffer);
    const bs = r.blockSize;
    const bc = r.blockCount;
    const sink = this.sink;
    const c = this.counters;
    r.start((first, count) => {
      c.wakeups++;
      if (count > c.maxBlocksPerWakeup) c.maxBlocksPerWakeup = count;
      if (count > this.maxSinceCheck) this.maxSinceCheck = count;
      walkBlocks(buf, u32, bs, bc, first, count, sink, c);
      sink.onRingBatchEnd?.();
    });
  }

  /** Reads the kernel's counters; new drops or a ring three quarters full mean behind. */
  checkStats(): void {
    let packets = 0, drops = 0, freezes = 0;
    for (const r of this.rings) {
      const s = r.stats();
      packets += s[0]; drops += s[1]; freezes += s[2];
    }
    const newDrops = drops > this.kernelDrops;
    this.kernelPackets = packets;
    this.kernelDrops = drops;
    this.freezes = freezes;
    const full = this.maxSinceCheck * 4 >= this.blockCount * 3;
    const calm = this.maxSinceCheck * 4 <= this.blockCount;
    this.maxSinceCheck = 0;
    if (!this.behind && (newDrops || full)) {
      this.behind = true;
      this.behindEvents++;
      this.sink.onCaptureBehind?.(true);
    } else if (this.behind && !newDrops && calm) {
      this.behind = false;
      this.sink.onCaptureBehind?.(false);
    }
  }

  snapshot(): Record<string, number> {
    if (this.rings.length) this.checkStats();
    const c = this.counters;
    return {
      rings: this.ringCount, blocksPerRing: this.blockCount, blockKB: this.blockSize >> 10, timeoutMs: this.opts.timeoutMs,
      wakeups: c.wakeups, blocks: c.blocks, packets: c.packets, truncated: c.truncated, badBlocks: c.badBlocks,
      maxBlocksPerWakeup: c.maxBlocksPerWakeup, kernelPackets: this.kernelPackets, kernelDrops: this.kernelDrops,
      freezes: this.freezes, behind: this.behind ? 1 : 0, fellBehind: this.behindEvents,
    };
  }

  close(): void {
    if (this.timer) { clearInterval(this.timer); this.timer = null; }
    if (this.rings.length) { try { this.checkStats(); } catch { /* closed */ } }
    for (const r of this.rings.splice(0)) { try { r.close(); } catch { /* closed */ } }
  }
}
