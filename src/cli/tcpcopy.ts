import * as fs from 'node:fs';
import { Command } from 'commander';
import { DEFAULT_CONTROL_PORT } from '../control/records';
import { parseIp } from '../wire/ipv4';
import { DEFAULT_ENGINE_OPTIONS, EngineOptions } from '../tcpcopy/engine';
import { CaptureMode, resolveNeighbours, Tcpcopy, TcpcopyOptions } from '../tcpcopy/tcpcopy';
import { TransferTable } from '../tcpcopy/transfer';
import { hostPortText, parseClientAddressSet, parseInterceptList, parseTransfer } from './addresses';
import { describeError, UsageError } from '../errors';
import { loadModule } from './module-conf-file';
import { chooseCapture, chooseSend, EngineChoice, RAW_CAPTURE_NO_IPV6 } from '../io/engines';
import { tcpcopyDoctor } from '../doctor/tcpcopy';
import { addDaemonOptions, baseProgram, DaemonOptions, fail, intOption, printReport, runDaemon, withCode } from './common';

export function tcpcopyProgram(): Command {
  const p = baseProgram('tcpcopy',
    'Copies live TCP traffic arriving at this (online) server to a target server, as valid TCP sessions.\n' +
    'Typical use: tcpcopy -x 80-10.0.0.2:8080 -s 10.0.0.3 -d -P /run/tcpcopy.pid\n' +
    'Capture: a TPACKET_V3 ring with a kernel filter built from -x (every interface, or -i <devices>); offline when -i\n' +
    'names a pcap/pcapng file. Sending: sendmmsg batches. --capture-engine / --send-engine choose the older engines.');
  p.option('-x, --transfer <rules>', 'what to copy where: [onlineIP:]onlinePort-targetIP:targetPort[,...] (required); with -o add @MAC to both sides')
    .option('-s, --intercept <addrs>', 'intercept address(es): ip[:port][,...] (required); port defaults to -p')
    .option('-p, --port <port>', 'default intercept control port', intOption('-p', 1, 65535), DEFAULT_CONTROL_PORT)
    .option('-C, --conns <n>', 'control connections per intercept, 1..11', intOption('-C', 1, 11), 2)
    .option('-c, --client-ip <ips>', 'source addresses for the replayed clients: ip[,ip...] or a.b.c.x for .1-.254')
    .option('-H, --localhost-ip <ip>', 'replace the client address 127.0.0.1 with this one (target not local)')
    .option('-i, --input <devices|file>', 'libpcap capture devices (comma separated, "any"), or a pcap/pcapng file to replay offline')
    .option('-F, --filter <filter>', 'pcap filter for -i devices (default: built from -x)')
    .option('-B, --buffer <MB>', 'capture buffer in MiB: the ring (per device), or libpcap\'s kernel buffer', intOption('-B', 1, 1024), 24)
    .option('-S, --snaplen <bytes>', 'bytes captured per packet (ring or libpcap)', intOption('-S', 128, 65535), 65535)
    .option('-o, --output <device>', 'send Ethernet frames on this device (libpcap) instead of the raw IP socket')
    .option('-a, --accel <n>', 'offline: replay n times faster than recorded', intOption('-a', 1, 100000), 1)
    .option('-I, --idle-cut <ms>', 'offline: cut idle gaps longer than this (ms) to this length; 0 keeps them', intOption('-I', 0, 86400000), 0)
    .option('-T, --passes <n>', 'offline: replay the file n times', intOption('-T', 1, 1000000), 1)
    .option('-n, --copies <n>', 'replay each session n times (distinct source ports)', intOption('-n', 1, 1023), 1)
    .option('-f, --port-shift <n>', 'port shift factor, to keep several tcpcopy instances apart (0..1023)', intOption('-f', 0, 1023), 0)
    .option('-m, --memory <MB>', 'memory limit: shed new sessions near it, exit if shedding cannot hold it (0: none)', intOption('-m', 0, 1 << 20), 0)
    .option('-M, --mtu <bytes>', 'larger captured packets (GRO/TSO) are split to this size', intOption('-M', 576, 65535), 1500)
    .option('-D, --mss <bytes>', 'MSS in crafted SYNs', intOption('-D', 88, 65495), 1460)
    .option('-t, --timeout <seconds>', 'drop a session when neither the target nor the client has sent anything for this long', intOption('-t', 1, 86400), 60)
    .option('-k, --keepalive-timeout <seconds>', 'same for idle keep-alive sessions with nothing to send (default: -t + 120)', intOption('-k', 1, 86400))
    .option('-r, --percentage <n>', 'replay this percentage of sessions, chosen per session (1..100)', intOption('-r', 1, 100), 100)
    .option('-g, --gradual', 'ramp the percentage up from 1 % to 100 % over about 100 s')
    .option('-O, --only-full', 'only sessions whose SYN was captured')
    .option('-W, --no-wait', 'send the next request without waiting for the response to the last one')
    .option('-L, --lonely', 'keep running when no intercept is connected (reconnect in the background)')
    .option('-R, --rtt <ms>', 'accepted for compatibility; pacing follows the target\'s replies here', intOption('-R', 0, 60000))
    .option('-U, --pool <KiB>', 'accepted for compatibility; no memory pools here', intOption('-U', 0, 63))
    .option('--quiet <ms>', 'a response is complete after this much silence from the target', intOption('--quiet', 1, 60000), DEFAULT_ENGINE_OPTIONS.quietMs)
    .option('--response-timeout <ms>', 'the next request waits at most this long after the previous one was sent, even without a complete response', intOption('--response-timeout', 1, 600000), DEFAULT_ENGINE_OPTIONS.responseTimeoutMs)
    .option('--backlog-limit <MB>', 'memory for captured packets waiting to be replayed, all sessions together (MiB); beyond it the sessions furthest behind skip their queued requests (or end and resume later) and new sessions wait (0: no limit)', intOption('--backlog-limit', 0, 1 << 20), DEFAULT_ENGINE_OPTIONS.backlogLimitBytes >> 20)
    .option('--payload', '192-byte reply records (pairs with intercept --payload / the original\'s --with-resp-payload)')
    .option('--module <name>', 'protocol module: plain (default: TCP replay) or mysql (MySQL/MariaDB logins answered for the target; needs --payload and --module-conf)')
    .option('--module-conf <file>', 'the module\'s configuration, the original\'s plugin.conf syntax: user name@password,...; (the target\'s passwords; mode 600)')
    .option('--no-combined', 'reply records without batching (pairs with intercept --no-combined / --disable-combined)')
    .option('--secret <secret>', 'answer intercept\'s challenge with this shared secret (intercept --secret); env TCPCOPY_SECRET also works')
    .option('--capture-engine <engine>', 'ring (default: TPACKET_V3 ring, kernel filter), raw (raw socket, without -i), pcap (libpcap, with -i), legacy (raw or pcap as the mode used before); env TCPCOPY_CAPTURE_ENGINE')
    .option('--send-engine <engine>', 'mmsg (default: sendmmsg batches, raw IP or with -o AF_PACKET), raw (one sendto per packet, without -o), pcap (libpcap, with -o), legacy; env TCPCOPY_SEND_ENGINE')
    .option('--ring-timeout <ms>', 'ring capture: a block that is not full goes to tcpcopy after this long (the latency added at low rates)', intOption('--ring-timeout', 1, 1000), 1)
    .option('--offline-tail <seconds>', 'offline: how long sessions may finish after the file ends', intOption('--offline-tail', 0, 3600), 10)
    .option('--doctor', 'check this deployment instead of running (permissions, capture, raw send, intercepts, a probe of each target through intercept) and exit: 0 when every check passed, 1 otherwise')
    .option('--json', 'with --doctor: print the report as one JSON object');
  addDaemonOptions(p);
  return p;
}

interface TcpcopyCli extends DaemonOptions {
  transfer?: string;
  intercept?: string;
  port: number;
  conns: number;
  clientIp?: string;
  localhostIp?: string;
  input?: string;
  filter?: string;
  buffer: number;
  snaplen: number;
  output?: string;
  accel: number;
  idleCut: number;
  passes: number;
  copies: number;
  portShift: number;
  memory: number;
  mtu: number;
  mss: number;
  timeout: number;
  keepaliveTimeout?: number;
  percentage: number;
  gradual?: boolean;
  onlyFull?: boolean;
  wait: boolean;
  lonely?: boolean;
  rtt?: number;
  pool?: number;
  quiet: number;
  responseTimeout: number;
  backlogLimit: number;
  payload?: boolean;
  module?: string;
  moduleConf?: string;
  combined: boolean;
  offlineTail: number;
  secret?: string;
  captureEngine?: string;
  sendEngine?: string;
  ringTimeout: number;
  doctor?: boolean;
  json?: boolean;
}

/** 'file' for a capture file, 'dir' for a directory, 'none' when nothing is there. */
function inputKind(p: string): 'file' | 'dir' | 'none' {
  try {
    const st = fs.statSync(p);
    return st.isDirectory() ? 'dir' : 'file';
  } catch {
    return 'none';
  }
}

/** Turns parsed flags into options, or exits with a message that says what to write. */
export function tcpcopyOptionsFrom(o: TcpcopyCli, warn: (m: string) => void): TcpcopyOptions {
  const name = 'tcpcopy';
  if (!o.transfer) fail(name, 'missing -x: say what to copy where, e.g. -x 80-10.0.0.2:8080');
  if (!o.intercept) fail(name, 'missing -s: give the intercept address, e.g. -s 10.0.0.3');
  let table: TransferTable;
  let clientAddrs: number[] = [];
  let clientAddrs6: Buffer[] = [];
  let intercepts;
  try {
    table = new TransferTable(parseTransfer(o.transfer));
    // IPv4 and IPv6 rules may stand side by side; -c addresses of each family serve the
    // sessions of that family. The control connection (-s) may be of either family.
    if (o.clientIp) ({ v4: clientAddrs, v6: clientAddrs6 } = parseClientAddressSet(o.clientIp, table.rules));
    intercepts = parseInterceptList(o.intercept, o.port);
  } catch (e) {
    const { message, code } = describeError(e);
    fail(name, withCode(message, code));
  }
  let localhost = 0;
  if (o.localhostIp) {
    localhost = parseIp(o.localhostIp);
    if (localhost < 0) fail(name, `-H ${o.localhostIp} is not an IPv4 address; write e.g. -H 10.0.0.5`);
  }
  const live = !o.input || inputKind(o.input) !== 'file';
  const devices = !!o.input && live;
  const cap = chooseCapture(o.captureEngine, process.env.TCPCOPY_CAPTURE_ENGINE, devices, true);
  if (typeof cap === 'string') fail(name, cap);
  const snd = chooseSend(o.sendEngine, process.env.TCPCOPY_SEND_ENGINE, !!o.output);
  if (typeof snd === 'string') fail(name, snd);
  const captureEngine: EngineChoice = cap;
  // The raw-socket capture (live without -i, with --capture-engine raw or legacy) sees IPv4 only.
  const v6rule = table.rules.find((r) => r.family === 6);
  if (v6rule && !o.input && !captureEngine.fast) {
    fail(name, `${o.captureEngine !== undefined ? `--capture-engine ${o.captureEngine}` : `TCPCOPY_CAPTURE_ENGINE ${process.env.TCPCOPY_CAPTURE_ENGINE}`}: ` +
      `item ${v6rule.index + 1} '${v6rule}' replays IPv6, which the raw-socket capture cannot see (${RAW_CAPTURE_NO_IPV6}); ` +
      'capture with the ring (--capture-engine ring, the default) or with libpcap (-i <device>)');
  }
  let capture: CaptureMode = { kind: 'raw', filter: o.filter ?? table.pcapFilter(), bufferBytes: o.buffer << 20, snaplen: o.snaplen };
  if (o.input) {
    const kind = inputKind(o.input);
    if (kind === 'dir') {
      fail(name, `-i ${o.input} is a directory; give a pcap/pcapng file in it (e.g. -i ${o.input.replace(/\/$/, '')}/online.pcap), or device names (e.g. -i eth0)`);
    } else if (kind === 'file') {
      capture = { kind: 'offline', path: o.input, accel: o.accel, idleCutMs: o.idleCut, passes: o.passes };
      if (o.filter) warn('-F applies to live libpcap capture; a capture file is replayed through the -x rules only');
    } else if (o.input.includes('/') || /\.(pcap|pcapng|cap)$/i.test(o.input)) {
      fail(name, `-i ${o.input}: no such capture file; give a readable pcap/pcapng file, or device names (e.g. -i eth0)`);
    } else {
      const devices = o.input.split(',').map((s) => s.trim()).filter(Boolean);
      const filter = o.filter ?? table.pcapFilter();
      if (!o.filter && table.rules.some((r) => r.onlineIp === 0 && r.onlinePort === r.targetPort)) {
        fail(name, '-x has an item without an online address whose online and target ports are equal: tcpcopy would capture its own output; give -F, e.g. -F \'tcp and dst port 80 and dst host 10.0.0.1\'');
      }
      capture = { kind: 'pcap', devices, filter, bufferBytes: o.buffer << 20, snaplen: o.snaplen };
    }
  } else if (o.filter && !captureEngine.fast) {
    warn('-F applies to the ring and to libpcap capture (-i devices); ignored with the raw socket');
  }
  if (o.gradual && o.percentage !== 100) warn(`-g ramps the replayed share of sessions from 1 % to 100 % over about 100 s; -r ${o.percentage} is ignored`);
  if (o.rtt !== undefined) warn('-R is accepted for compatibility and has no effect: pacing follows the target\'s replies (see --quiet)');
  if (o.pool !== undefined) warn('-U is accepted for compatibility and has no effect (no memory pools in this implementation)');
  let module = null;
  try {
    module = loadModule(o.module, o.moduleConf, !!o.payload);
  } catch (e) {
    const { message, code } = describeError(e);
    fail(name, withCode(message, code));
  }
  if (module !== null && o.onlyFull) warn(`-O is implied by --module ${module.name}: only sessions whose login was captured can be replayed`);
  const engine: EngineOptions = {
    ...DEFAULT_ENGINE_OPTIONS,
    copies: o.copies,
    portShift: o.portShift,
    clientAddrs,
    clientAddrs6,
    localhostReplacement: localhost,
    percentage: o.percentage,
    gradual: !!o.gradual,
    onlyFullSessions: !!o.onlyFull,
    noWait: !o.wait,
    mtu: o.mtu,
    mss: o.mss,
    sessionTimeoutMs: o.timeout * 1000,
    keepaliveTimeoutMs: (o.keepaliveTimeout ?? o.timeout + 120) * 1000,
    quietMs: o.quiet,
    responseTimeoutMs: o.responseTimeout,
    backlogLimitBytes: o.backlogLimit * 1048576,
  };
  return {
    transfer: table,
    engine,
    capture,
    outputDevice: o.output ?? '',
    intercepts,
    connectionsPerIntercept: o.conns,
    format: { combined: o.combined, payload: !!o.payload },
    lonely: !!o.lonely,
    memoryLimitBytes: o.memory * 1048576,
    offlineTailMs: o.offlineTail * 1000,
    noInterceptGraceMs: 5000,
    secret: o.secret ?? process.env.TCPCOPY_SECRET ?? '',
    captureEngine,
    sendEngine: snd,
    ringTimeoutMs: o.ringTimeout,
    module,
  };
}

export async function main(argv: string[]): Promise<void> {
  const p = tcpcopyProgram();
  p.parse(argv);
  const o = p.opts<TcpcopyCli>();
  const warnings: string[] = [];
  const opts = tcpcopyOptionsFrom(o, (m) => { warnings.push(m); process.stderr.write(`tcpcopy: warning: ${m}\n`); });
  if (o.doctor) {
    let report;
    try {
      report = await tcpcopyDoctor(opts);
    } catch (e) {
      const { message, code } = describeError(e);
      fail('tcpcopy', withCode(`--doctor could not finish: ${message}`, code));
    }
    printReport(report, !!o.json);
    return;
  }
  await runDaemon('tcpcopy', o, async (log) => {
    // On stderr the plain lines above said it already; a log file gets them too.
    if (log.file) for (const w of warnings) log.logger.warn(w);
    if (opts.outputDevice) opts.resolvedMacs = await resolveNeighbours(opts);
    const tc = new Tcpcopy(opts, log.logger);
    await tc.start();
    log.logger.info({
      rules: opts.transfer.rules.map(String), capture: opts.capture.kind, captureEngine: tc.captureEngineName, sendEngine: tc.sendEngineName, intercepts: opts.intercepts.map((a) => hostPortText(a.host, a.port)),
      copies: opts.engine.copies, clientAddrs: opts.engine.clientAddrs.length, percentage: opts.engine.percentage,
      module: opts.module?.name ?? 'plain',
    }, 'tcpcopy running');
    const bar = tc.offline && process.stderr.isTTY && !o.daemon ? progressBar(tc) : null;
    return {
      snapshot: () => tc.snapshot(),
      stop: async () => { if (bar) { clearInterval(bar); process.stderr.write('\n'); } await tc.stop(); },
      done: tc.done,
    };
  });
}

/** Offline replay progress on one terminal line: packets, sessions, elapsed vs file time. */
function progressBar(tc: Tcpcopy): NodeJS.Timeout {
  const t = setInterval(() => {
    const p = tc.offline!.progress;
    const st = tc.engine.stats;
    const line = `replay pass ${p.pass}: ${p.packets} packets, ${st.sessionsCreated} sessions (${tc.engine.activeSessions} open), ` +
      `${st.requestsSent} requests sent | ${(p.elapsedMs / 1000).toFixed(1)} s elapsed for ${(p.fileMs / 1000).toFixed(1)} s of capture` +
      (p.done ? ' | file done, sessions finishing' : '');
    process.stderr.write(`\r\x1b[K${line}`);
  }, 250);
  t.unref();
  return t;
}
