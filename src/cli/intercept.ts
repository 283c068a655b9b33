import { Command } from 'commander';
import { DEFAULT_INTERCEPT_OPTIONS, Intercept, InterceptOptions, peerText } from '../intercept/intercept';
import { PcapLiveSource } from '../io/pcap-live';
import { RingCapture } from '../io/ring';
import { chooseCapture } from '../io/engines';
import type { IoError } from '../io/types';
import { parseIp } from '../wire/ipv4';
import { ipv6ToString, parseIpv6 } from '../wire/ipv6';
import { COMB_MAX_NUM, COMB_MAX_NUM_PAYLOAD, DEFAULT_CONTROL_PORT } from '../control/records';
import { describeError } from '../errors';
import { interceptDoctor } from '../doctor/intercept';
import { readSysctl } from '../doctor/system';
import { addDaemonOptions, baseProgram, DaemonOptions, fail, intOption, printReport, runDaemon, withCode } from './common';

/** Frame bytes copied out of libpcap: link header (≤ 22) + IP (≤ 60) + TCP (≤ 60) + 128 payload. */
const FRAME_BYTES = 288;

export function interceptProgram(): Command {
  const p = baseProgram('intercept',
    'Captures the target server\'s replies and streams their headers to the tcpcopy that owns each session.\n' +
    'Typical use (on the assistant server): intercept -i eth0 -F \'tcp and src port 8080\' -d -P /run/intercept.pid');
  p.option('-i, --device <devices>', 'capture on these devices, comma separated; "any" for all', 'any')
    .option('-F, --filter <filter>', 'pcap filter for the target\'s replies (required), e.g. \'tcp and src port 8080\'')
    .option('-p, --port <port>', 'control port tcpcopy connects to', intOption('-p', 1, 65535), DEFAULT_CONTROL_PORT)
    .option('-b, --bind <ip>', 'control listen address, IPv4 or IPv6 (default: 0.0.0.0, every IPv4 address; -b :: listens on both families)')
    .option('-x, --passlist <ips>', 'accept control connections only from these tcpcopy addresses (IPv4 or IPv6), comma separated')
    .option('-n, --batch <n>', `records per batch that force a flush, 1..${COMB_MAX_NUM - 1}; 0 = the maximum (16, or 6 with --payload)`, intOption('-n', 0, COMB_MAX_NUM - 1), 0)
    .option('-s, --routes <n>', 'route table capacity; the least recently added route is evicted beyond it', intOption('-s', 1024, 1 << 24), DEFAULT_INTERCEPT_OPTIONS.maxRoutes)
    .option('-t, --route-timeout <seconds>', 'a route unused for this long expires', intOption('-t', 1, 86400), DEFAULT_INTERCEPT_OPTIONS.routeIdleMs / 1000)
    .option('-D, --docker <A-B>', 'replies to address A are handed over as replies to address B')
    .option('-B, --buffer <MB>', 'libpcap kernel buffer in MiB (mapped into the process: counts in its memory)', intOption('-B', 1, 1024), 4)
    .option('--hold <seconds>', 'how long a SYN-ACK/RST reply waits for its CLIENT_ADD', intOption('--hold', 0, 300), 30)
    .option('--payload', '192-byte records with up to 128 reply payload bytes (pairs with the original\'s --with-resp-payload build)')
    .option('--no-combined', 'one record per write, no count prefix (pairs with the original\'s --disable-combined build)')
    .option('--dnat', 'routes ignore the target address (replies may come from another address than tcpcopy registered)')
    .option('--max-conns <n>', 'most tcpcopy control connections at once', intOption('--max-conns', 1, 4096), DEFAULT_INTERCEPT_OPTIONS.maxTunnels)
    .option('--secret <secret>', 'require tcpcopy to prove this shared secret (HMAC challenge) on every control connection; off by default, as in the original (env TCPCOPY_SECRET also works)')
    .option('--max-backlog <KiB>', 'per-connection bound on records waiting for a slow tcpcopy', intOption('--max-backlog', 16, 1 << 20), 4096)
    .option('--capture-engine <engine>', 'ring (default: TPACKET_V3 ring with the -F filter in the kernel) or pcap (libpcap; also: legacy); env TCPCOPY_CAPTURE_ENGINE')
    .option('--ring-timeout <ms>', 'ring capture: a block that is not full goes to intercept after this long (the latency added at low rates)', intOption('--ring-timeout', 1, 1000), 1)
    .option('--doctor', 'check this assistant instead of running (ip_forward, devices, filter, replies arriving, control port) and exit: 0 when every check passed, 1 otherwise')
    .option('--json', 'with --doctor: print the report as one JSON object');
  addDaemonOptions(p);
  return p;
}

interface InterceptCli extends DaemonOptions {
  device: string;
  filter?: string;
  port: number;
  bind?: string;
  passlist?: string;
  batch: number;
  routes: number;
  routeTimeout: number;
  docker?: string;
  buffer: number;
  hold: number;
  payload?: boolean;
  combined: boolean;
  dnat?: boolean;
  maxConns: number;
  maxBacklog: number;
  secret?: string;
  captureEngine?: string;
  ringTimeout: number;
  doctor?: boolean;
  json?: boolean;
}

export function interceptOptionsFrom(o: InterceptCli): InterceptOptions {
  const name = 'intercept';
  if (!o.filter) fail(name, "missing -F: give the pcap filter that matches the target's replies, e.g. -F 'tcp and src port 8080'");
  let bind = o.bind?.trim();
  if (bind !== undefined) {
    // An IPv6 address may come in brackets; '::' listens on both families (dual stack).
    const bare = /^\[.*\]$/.test(bind) ? bind.slice(1, -1) : bind;
    const v6 = parseIpv6(bare);
    if (parseIp(bare) < 0 && v6 === null) fail(name, `-b ${o.bind} is not an IPv4 or IPv6 address; write e.g. -b 10.0.0.3, -b 2001:db8::3 or -b :: (both families)`);
    bind = v6 !== null ? ipv6ToString(v6) : bare;
  }
  const passlist: string[] = [];
  for (const raw of o.passlist ? o.passlist.split(',') : []) {
    const a = raw.trim();
    if (!a) continue;
    const v6 = parseIpv6(/^\[.*\]$/.test(a) ? a.slice(1, -1) : a);
    if (parseIp(a) < 0 && v6 === null) fail(name, `-x: '${a}' is not an IPv4 or IPv6 address; write e.g. -x 10.0.0.1,10.0.0.2 or -x 2001:db8::1`);
    // Kept in the form intercept compares with: dotted quads, IPv6 in RFC 5952 text (an
    // IPv4-mapped one as its dotted quad, as a dual-stack listener reports IPv4 peers).
    passlist.push(v6 === null ? a : peerText(ipv6ToString(v6)));
  }
  let dockerFrom = '', dockerTo = '';
  if (o.docker) {
    const m = /^([\d.]+)-([\d.]+)$/.exec(o.docker);
    if (!m || parseIp(m[1]) < 0 || parseIp(m[2]) < 0) fail(name, `-D ${o.docker}: write two IPv4 addresses as A-B, e.g. -D 172.17.0.2-10.0.0.5`);
    dockerFrom = m[1];
    dockerTo = m[2];
  }
  const format = { combined: o.combined, payload: !!o.payload };
  const max = format.payload ? COMB_MAX_NUM_PAYLOAD : COMB_MAX_NUM;
  return {
    ...DEFAULT_INTERCEPT_OPTIONS,
    port: o.port,
    bindAddress: bind ?? '',
    passlist,
    format,
    batchThreshold: o.batch > 0 && o.batch < max ? o.batch : 0,
    maxRoutes: o.routes,
    routeIdleMs: o.routeTimeout * 1000,
    holdMs: o.hold * 1000,
    dnat: !!o.dnat,
    dockerFrom,
    dockerTo,
    maxTunnels: o.maxConns,
    maxBacklogBytes: o.maxBacklog * 1024,
    secret: o.secret ?? process.env.TCPCOPY_SECRET ?? '',
  };
}

export async function main(argv: string[]): Promise<void> {
  const p = interceptProgram();
  p.parse(argv);
  const o = p.opts<InterceptCli>();
  const opts = interceptOptionsFrom(o);
  const devices = o.device.split(',').map((s) => s.trim()).filter(Boolean);
  const choice = chooseCapture(o.captureEngine, process.env.TCPCOPY_CAPTURE_ENGINE, true, false);
  if (typeof choice === 'string') fail('intercept', choice);
  if (o.doctor) {
    let report;
    try {
      report = await interceptDoctor({ opts, devices, filter: o.filter!, bufferBytes: o.buffer << 20, listenMs: 3000 });
    } catch (e) {
      const { message, code } = describeError(e);
      fail('intercept', withCode(`--doctor could not finish: ${message}`, code));
    }
    printReport(report, !!o.json);
    return;
  }
  const forwarding = readSysctl('net.ipv4.ip_forward');
  const forwardWarning = forwarding === '1'
    ? 'net.ipv4.ip_forward is 1: this host forwards the target\'s replies to the real clients, which reset the replayed sessions; run sysctl -w net.ipv4.ip_forward=0'
    : '';
  if (forwardWarning) process.stderr.write(`intercept: warning: ${forwardWarning}\n`);
  await runDaemon('intercept', o, async (log) => {
    // On stderr the plain line above said it already; a log file gets it too.
    if (forwardWarning && log.file) log.logger.warn(forwardWarning);
    const icpt = new Intercept(opts, log.logger);
    const addr = await icpt.listen();
    // The ring: both directions (replies may be this host's own output when intercept runs
    // on the target), every protocol on the devices, filtered in the kernel by -F.
    let ring: RingCapture | null = null;
    let pcap: PcapLiveSource | null = null;
    try {
      if (choice.fast) {
        const r = new RingCapture({ devices, allProtocols: true, ipv6: true, ignoreOutgoing: false, filter: o.filter!, snaplen: FRAME_BYTES,
          ringBytes: o.buffer << 20, timeoutMs: o.ringTimeout }, { onRingPacket: (b, off, len) => icpt.onRingPacket(b, off, len), onRingBatchEnd: () => icpt.onRingBatchEnd(), wantsTime: false });
        try {
          r.open();
          ring = r;
        } catch (e) {
          const err = e as IoError;
          if (choice.explicit || err.code === 'bad-filter' || err.code === 'no-device') throw e;
          log.logger.warn({ err: err.message }, 'capture ring unavailable; capturing with libpcap');
        }
      }
      if (!ring) {
        pcap = new PcapLiveSource({ devices, filter: o.filter!, bufferBytes: o.buffer << 20, frameBytes: FRAME_BYTES }, icpt);
        pcap.open();
      }
    } catch (e) {
      await icpt.close();
      throw e;
    }
    const captureEngine = ring ? 'ring' : 'pcap';
    log.logger.info({ control: addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`, devices, filter: o.filter, captureEngine, format: opts.format,
      routes: opts.maxRoutes, routeTimeoutS: opts.routeIdleMs / 1000 }, 'intercept running');
    return {
      snapshot: () => {
        const out: Record<string, unknown> = { ...icpt.snapshot(), captureEngine };
        if (pcap) out.capturedByLibpcap = pcap.packets;
        if (ring) { const r = ring.snapshot(); out.ringCapture = r; out.kernelDrops = r.kernelDrops; }
        return out;
      },
      stop: async () => { ring?.close(); pcap?.close(); await icpt.close(); },
    };
  });
}
