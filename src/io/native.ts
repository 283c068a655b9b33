import * as fs from 'node:fs';
import * as path from 'node:path';
import { IoError } from './types';

/**
 * Our own addon (native/): a TPACKET_V3 receive ring with a kernel BPF filter, and sendmmsg
 * batched sending. Loaded lazily; when it cannot load, the daemons fall back to the `cap` and
 * `raw-socket` engines (one warning line).
 */
export interface RingOptions {
  /** Interface index to bind to; 0 for every interface. */
  ifindex: number;
  /** Bind to every protocol (ETH_P_ALL, both directions, as libpcap does); else ETH_P_IP. */
  allProtocols: boolean;
  /** With allProtocols: IPv6 packets pass as well as IPv4 ones; without: bind to IPv6 instead of IPv4. */
  ipv6?: boolean;
  /** Drop outgoing packets in the kernel (tcpcopy: its own output must not come back). */
  ignoreOutgoing: boolean;
  /** pcap filter over the IPv4 packet; '' accepts every IPv4 packet. */
  filter: string;
  /** Bytes kept of each packet (from the IP header). */
  snaplen: number;
  blockSize: number;
  blockCount: number;
  /** A block that is not full goes to user space after this long (ms). */
  timeoutMs: number;
}

export interface NativeRing {
  /** The whole ring, mapped: block i starts at i * blockSize. */
  readonly buffer: ArrayBuffer;
  readonly blockSize: number;
  readonly blockCount: number;
  /** cb(first, count): blocks first .. first+count-1 (mod blockCount) are ready; they go back to the kernel when cb returns. */
  start(cb: (first: number, count: number) => void): void;
  /** [packets accepted by the filter, dropped for want of room, queue freezes], since opened. */
  stats(): [number, number, number];
  close(): void;
}

export interface SenderOptions {
  kind: 'ip' | 'ip6' | 'link';
  ifindex: number;
  sndbuf: number;
  qdiscBypass: boolean;
}

export interface NativeSender {
  /** Sends messages first .. first+count-1 of meta (offset, length pairs in arena); returns how many were processed. */
  flush(arena: Buffer, meta: Uint32Array, first: number, count: number, out: Int32Array): number;
  /**
   * From now on the addon sends what JavaScript appends to `arena` / `meta` (offset, length
   * pairs) and records in `ctl` (SendCtl), at the end of each event-loop phase that can queue
   * packets, with no JavaScript call; it counts into `stats` (SendStat).
   */
  attach(arena: Buffer, meta: Uint32Array, ctl: Int32Array, stats: Float64Array): void;
  /** After attach: sends what waits now, even while a wait for writability is armed. */
  flushNow(): void;
  close(): void;
}

/** The slots of the `ctl` array shared with an attached Sender (native/src/addon.cc, enum Ctl). */
export const enum SendCtl { Count = 0, Head, Used, Blocked, Counted, Length }
/** The slots of its `stats` array (enum Stat). */
export const enum SendStat { Sent = 0, Errors, TooBig, Calls, Flushes, Eagain, Enobufs, LastErrno, Queued, Length }

export interface NativeAddon {
  Ring: new (o: RingOptions) => NativeRing;
  Sender: new (o: SenderOptions) => NativeSender;
  /** null when libpcap accepts the filter (for raw IPv4), else its message. */
  compileFilter(filter: string, snaplen: number): string | null;
  strerror(errno: number): string;
  /** Bytes of a tpacket3_hdr, aligned: where the sockaddr_ll of each frame starts. */
  TPACKET_V3_HDR: number;
}

/** Where `npm ci` builds the addon (dist/src/io → the repository root is three levels up). */
export const ADDON_PATH = path.resolve(__dirname, '../../../native/build/Release/tcpcopy_native.node');

/**
 * Where to look: beside dist/, then beside the node_modules that dist/ uses (the bench runs a
 * copy of dist/ elsewhere, with a link to the checkout's node_modules).
 */
function addonCandidates(): string[] {
  const out = [ADDON_PATH];
  try {
    const nm = fs.realpathSync(path.resolve(__dirname, '../../../node_modules'));
    const p = path.join(path.dirname(nm), 'native/build/Release/tcpcopy_native.node');
    if (p !== ADDON_PATH) out.push(p);
  } catch { /* no node_modules there */ }
  return out;
}

let addon: NativeAddon | null = null;
let loadError: string | null = null;

/** The addon, or an IoError that says why it cannot load. */
export function loadNative(): NativeAddon {
  if (addon) return addon;
  if (loadError === null) {
    if (process.env.TCPCOPY_NO_NATIVE === '1') {
      loadError = 'TCPCOPY_NO_NATIVE=1 is set';
    } else {
      for (const p of addonCandidates()) {
        if (!fs.existsSync(p)) { loadError ??= `${ADDON_PATH} is missing`; continue; }
        try {
          addon = require(p) as NativeAddon;
          return addon;
        } catch (e) {
          loadError = (e as Error).message.split('\n')[0];
        }
      }
    }
  }
  throw new IoError('no-native', `our packet addon cannot load (${loadError}); run 'npm run setup' to build it`);
}

/** True when the addon loads (the fast engines are available). */
export function nativeAvailable(): boolean {
  try { loadNative(); return true; } catch { return false; }
}

/** Turns an addon error (with its `code`) into an IoError whose message says what to do. */
export function explainNativeError(e: unknown, what: string, filter = ''): IoError {
  const err = e as Error & { code?: string };
  const code = err.code ?? 'native';
  const msg = err.message;
  switch (code) {
    case 'no-permission':
      return new IoError('no-permission', `${what}: ${msg}: run as root, or grant CAP_NET_RAW and CAP_NET_ADMIN (setcap cap_net_raw,cap_net_admin+ep $(readlink -f $(command -v node)))`);
    case 'no-tpacket-v3':
      return new IoError('no-tpacket-v3', `${what}: this kernel has no TPACKET_V3 receive ring (${msg})`);
    case 'bad-filter':
      return new IoError('bad-filter', `${what}: libpcap rejects the filter '${filter}': ${msg}; the ring filters IPv4 packets (no link-layer header): write it on IP and TCP fields (e.g. 'tcp and port 8080'), or choose --capture-engine pcap`);
    case 'no-device':
      return new IoError('no-device', `${what}: ${msg}`);
    default:
      return new IoError('native-io', `${what}: ${msg}`);
  }
}
