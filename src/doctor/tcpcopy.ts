/**
 * `tcpcopy --doctor`: checks a deployment from the online server, on the real path, in a few
 * seconds: permissions, the capture, the raw send, every intercept, and an active probe of each
 * target (one SYN and one RST). Changes nothing on the machine.
 */
import * as net from 'node:net';
import * as os from 'node:os';
import pino from 'pino';
import { InterceptLinks } from '../tcpcopy/links';
import type { ReplyConsumer } from '../tcpcopy/links';
import { resolveNeighbours } from '../tcpcopy/tcpcopy';
import type { TcpcopyOptions } from '../tcpcopy/tcpcopy';
import { RawIpSender, RawTcpCapture } from '../io/raw-socket';
import type { PacketSender } from '../io/raw-socket';
import { deviceMac, LinkLayerSender, MacPair, neighbourMac, unknownMacMessage } from '../io/link-sender';
import { MmsgSender } from '../io/mmsg-sender';
import { PcapLiveSource } from '../io/pcap-live';
import { RingCapture } from '../io/ring';
import { IoError } from '../io/types';
import { Capability } from '../control/records';
import { ipOffset, ipv4Offset } from '../wire/link';
import { PcapFileReader } from '../wire/pcap';
import { ipToString } from '../wire/ipv4';
import { ipv6ToString, parseIpv6 } from '../wire/ipv6';
import { Tcp6Packet } from '../wire/packet';
import { WireReason } from '../wire/errors';
import { TcpFlag } from '../wire/tcp';
import { buildProbePacket, buildProbePacket6, ProbeSlot, ProbeSlot6, type ProbeState } from './probe';
import { Report } from './report';
import {
  CAP_NET_ADMIN, CAP_NET_RAW, effectiveCaps, hasCap, iptablesOutputDrops, nftOutputDrops, readSysctl, runCommand,
} from './system';

export interface TcpcopyDoctorOptions {
  /** How long the capture listens for client packets (ms). */
  listenMs: number;
  /** How long the probe waits for the answer after each SYN (ms); the SYN is sent twice. */
  probeWaitMs: number;
}

export const DEFAULT_TCPCOPY_DOCTOR: TcpcopyDoctorOptions = { listenMs: 3000, probeWaitMs: 1500 };

const SETCAP_FIX = 'run as root (sudo), or grant the capabilities to node: setcap cap_net_raw,cap_net_admin+ep $(readlink -f $(command -v node))';

type ConnectResult = { kind: 'connected'; local: string } | { kind: 'refused' } | { kind: 'timeout' } | { kind: 'error'; message: string };

/** A plain TCP connect (closed with a RST at once, so the peer keeps nothing). */
export function plainConnect(host: string, port: number, timeoutMs: number): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let done = false;
    const finish = (r: ConnectResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (r.kind === 'connected') s.resetAndDestroy(); else s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
    s.once('connect', () => finish({ kind: 'connected', local: s.localAddress ?? '' }));
    s.once('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNREFUSED' ? { kind: 'refused' } : { kind: 'error', message: e.message }));
  });
}

function localAddresses(): Set<number> {
  const out = new Set<number>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4') out.add(a.address.split('.').reduce((acc, o) => acc * 256 + Number(o), 0));
    }
  }
  return out;
}

/** This host's IPv6 addresses, in RFC 5952 text. */
function localAddresses6(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      const b = a.family === 'IPv6' ? parseIpv6(a.address.split('%')[0]) : null;
      if (b) out.add(ipv6ToString(b));
    }
  }
  return out;
}

/**
 * The IPv6 probe's source address: the first IPv6 `-c` address, otherwise the IPv6 client
 * address with the most packets in the capture (not loopback or link-local, not a target, not
 * this host's own); null when none.
 */
export function chooseProbeAddress6(clientAddrs6: readonly Buffer[], seen: ReadonlyMap<string, number>, targets: ReadonlySet<string>,
  locals: ReadonlySet<string>, where: string): { addr: Buffer | null; from: string } {
  if (clientAddrs6.length > 0) return { addr: clientAddrs6[0], from: 'an IPv6 -c address' };
  let best = 0;
  let addr: string | null = null;
  for (const [ip, n] of seen) {
    if (ip === '::1' || /^fe[89ab]/i.test(ip) || targets.has(ip) || locals.has(ip)) continue;
    if (n > best) { best = n; addr = ip; }
  }
  return addr ? { addr: parseIpv6(addr), from: `an IPv6 client address seen in the ${where}, ${best} packet(s)` } : { addr: null, from: '' };
}

/**
 * The probe's source address: the first `-c` address, otherwise the client address with the
 * most packets in the capture (not loopback, not a target, not this host's own); 0 when none.
 */
export function chooseProbeAddress(clientAddrs: readonly number[], seen: ReadonlyMap<number, number>, targets: ReadonlySet<number>,
  locals: ReadonlySet<number>, where: string): { addr: number; from: string } {
  if (clientAddrs.length > 0) return { addr: clientAddrs[0], from: 'a -c address' };
  let best = 0;
  let addr = 0;
  for (const [ip, n] of seen) {
    if ((ip >>> 24) === 127 || targets.has(ip) || locals.has(ip)) continue;
    if (n > best) { best = n; addr = ip; }
  }
  return { addr, from: addr ? `a client address seen in the ${where}, ${best} packet(s)` : '' };
}

/** `-o`: the sender a run would use, with the target MACs learnt as a run learns them. */
async function linkLayerSender(opts: TcpcopyOptions): Promise<LinkLayerSender> {
  const dev = opts.outputDevice;
  const resolved = await resolveNeighbours(opts);
  const own = deviceMac(dev);
  const macs = new Map<string, MacPair>();
  for (const r of opts.transfer.rules) {
    const dst = r.dstMac ?? resolved.get(r.targetIpText) ?? neighbourMac(r.targetIpText, dev);
    if (!dst) {
      const target = r.family === 6 ? `[${r.targetIpText}]` : r.targetIpText;
      throw new Error(unknownMacMessage(dev, r.targetIpText, `${r.onlinePort}@aa:bb:cc:dd:ee:01-${target}:${r.targetPort}@aa:bb:cc:dd:ee:ff`).replace(/^-o \S+: /, ''));
    }
    macs.set(r.targetIpText, { src: r.srcMac ?? own, dst });
  }
  return new LinkLayerSender(dev, macs);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the listening capture saw: packets for the `-x` ports, by client address. */
class CaptureTally {
  matched = 0;
  readonly clients = new Map<number, number>();
  /** IPv6 client addresses (RFC 5952 text): the doctor is no packet path. */
  readonly clients6 = new Map<string, number>();
  probes: ProbeSlot[] = [];
  probes6: ProbeSlot6[] = [];
  private readonly pkt6 = new Tcp6Packet();

  constructor(private readonly opts: TcpcopyOptions) {}

  get clientCount(): number { return this.clients.size + this.clients6.size; }

  onIp(buf: Buffer, off: number, len: number): void {
    if (len > 0 && (buf[off] >>> 4) === 6) { this.onIp6(buf, off, len); return; }
    if (len < 40 || (buf[off] >>> 4) !== 4 || buf[off + 9] !== 6) return;
    const ihl = (buf[off] & 0x0f) << 2;
    if (ihl < 20 || ihl + 4 > len || off + ihl + 4 > buf.length) return;
    const dst = buf.readUInt32BE(off + 16);
    const dport = (buf[off + ihl + 2] << 8) | buf[off + ihl + 3];
    for (let i = 0; i < this.probes.length; i++) this.probes[i].onCapturedPacket(buf, off, len);
    if (this.opts.transfer.match(dst, dport) === null) return;
    this.matched++;
    const src = buf.readUInt32BE(off + 12);
    if (this.clients.size < 256 || this.clients.has(src)) this.clients.set(src, (this.clients.get(src) ?? 0) + 1);
  }

  private onIp6(buf: Buffer, off: number, len: number): void {
    const p = this.pkt6;
    if (p.checkHeaders(buf, off, len) !== WireReason.Ok) return;
    for (let i = 0; i < this.probes6.length; i++) this.probes6[i].onCapturedPacket(buf, off, len);
    if (this.opts.transfer.match6(buf, p.ip.dstOffset, p.tcp.dstPort) === null) return;
    this.matched++;
    const src = ipv6ToString(buf, p.ip.srcOffset);
    if (this.clients6.size < 256 || this.clients6.has(src)) this.clients6.set(src, (this.clients6.get(src) ?? 0) + 1);
  }
}

interface LinkProbe {
  name: string;
  host: string;
  links: InterceptLinks;
  up: boolean;
  /** A connection up whose capability answer accepted IPv6 (CLIENT_ADD6 can go). */
  ipv6: boolean;
}

export async function tcpcopyDoctor(opts: TcpcopyOptions, d: TcpcopyDoctorOptions = DEFAULT_TCPCOPY_DOCTOR): Promise<Report> {
  const report = new Report();
  const rulePorts = [...new Set(opts.transfer.rules.map((r) => r.onlinePort))].join(', ');

  // 1. Permissions.
  const caps = effectiveCaps();
  const raw = hasCap(caps, CAP_NET_RAW);
  const admin = hasCap(caps, CAP_NET_ADMIN);
  let sender: RawIpSender | null = null;
  let senderError = '';
  try {
    sender = new RawIpSender();
  } catch (e) {
    senderError = (e as Error).message;
  }
  const needsAdmin = opts.capture.kind === 'pcap' || !!opts.outputDevice;
  if (!raw || !sender) {
    report.add('permissions', 'fail',
      `${raw ? 'CAP_NET_RAW is effective, but' : 'CAP_NET_RAW is missing:'} tcpcopy cannot open a raw socket` +
      `${senderError ? ` (${senderError.replace(/: run as root.*$/, '')})` : ''}; it needs CAP_NET_RAW to capture and to send` +
      `${needsAdmin && !admin ? ', and CAP_NET_ADMIN for libpcap' : ''}`, SETCAP_FIX);
  } else if (needsAdmin && !admin) {
    report.add('permissions', 'warn', 'CAP_NET_RAW is effective, CAP_NET_ADMIN is missing: libpcap may refuse to open the device (-i/-o)', SETCAP_FIX);
  } else {
    report.add('permissions', 'ok', `${process.getuid?.() === 0 ? 'root; ' : ''}CAP_NET_RAW${admin ? ' and CAP_NET_ADMIN' : ''} effective; raw socket opened`);
  }

  // The probe leaves the way the copies do: the raw IP socket, or Ethernet frames with -o.
  let probeSender: (PacketSender & { lastError: string }) | null = sender;
  let linkError = '';
  if (opts.outputDevice && sender) {
    try {
      probeSender = await linkLayerSender(opts);
    } catch (e) {
      probeSender = null;
      linkError = (e as Error).message;
    }
  }

  // 2. Capture (listening window), with the intercept connections made meanwhile.
  const tally = new CaptureTally(opts);
  const v6 = opts.transfer.hasIpv6;
  // With IPv6 rules, link layers are read for either family (ipOffset), as a run does.
  const ipAt = v6 ? ipOffset : ipv4Offset;
  let closeCapture = (): void => {};
  let captureWhat = '';
  let captureError = '';
  let fileNote = '';
  if (opts.capture.kind === 'offline') {
    captureWhat = 'offline';
    // Read the start of the file (bounded in packets and time) for its client addresses.
    try {
      const reader = PcapFileReader.open(opts.capture.path);
      const until = Date.now() + 1000;
      let n = 0;
      while (n < 200_000 && reader.next()) {
        n++;
        const off = ipAt(reader.linkType, reader.data, reader.offset, reader.caplen);
        if (off >= 0) tally.onIp(reader.data, reader.offset + off, reader.caplen - off);
        if ((n & 1023) === 0 && Date.now() > until) break;
      }
      fileNote = `${n} packet(s) read${reader.error ? ` (then: ${reader.error.message})` : ''}`;
      reader.close();
    } catch (e) {
      captureError = `cannot read ${opts.capture.path}: ${(e as Error).message}`;
    }
  } else if (!raw) {
    captureError = 'not run: needs CAP_NET_RAW (see permissions)';
  } else if (opts.capture.kind === 'raw' && v6) {
    // The raw IPv4 socket cannot see IPv6: the capture ring a run uses, bound to IPv4 and IPv6.
    captureWhat = 'the capture ring (IPv4 and IPv6)';
    const ring = new RingCapture({ devices: [], allProtocols: false, ipv6: true, ignoreOutgoing: true, filter: opts.capture.filter ?? opts.transfer.pcapFilter(),
      snaplen: 256, ringBytes: 1 << 20, timeoutMs: 10 }, { onRingPacket: (buf, ipOff, capLen) => tally.onIp(buf, ipOff, capLen) });
    try {
      ring.open();
      closeCapture = () => ring.close();
    } catch (e) {
      captureError = (e as Error).message;
    }
  } else if (opts.capture.kind === 'raw') {
    captureWhat = 'the raw socket';
    try {
      const c = new RawTcpCapture({ onIpPacket: (buf, len) => tally.onIp(buf, 0, len) }, 4 << 20);
      closeCapture = () => c.close();
    } catch (e) {
      captureError = (e as Error).message;
    }
  } else {
    const cap = opts.capture;
    captureWhat = `libpcap on ${cap.devices.join(',')} (filter '${cap.filter}')`;
    const src = new PcapLiveSource({ devices: cap.devices, filter: cap.filter, bufferBytes: 1 << 20, frameBytes: Math.min(cap.snaplen, 256) }, {
      onFrame: (buf, len, linkType) => {
        const off = ipAt(linkType, buf, 0, len);
        if (off >= 0) tally.onIp(buf, off, len - off);
      },
    });
    try {
      src.open();
      closeCapture = () => src.close();
    } catch (e) {
      captureError = e instanceof IoError ? e.message : `cannot capture: ${(e as Error).message}`;
    }
  }
  const listenStart = Date.now();

  const silent = pino({ level: 'silent' });
  const noop = (): void => {};
  const linkProbes: LinkProbe[] = [];
  const interceptChecks = Promise.all(opts.intercepts.map(async (addr) => {
    const name = `${addr.host}:${addr.port}`;
    const plain = await plainConnect(addr.host, addr.port, 2000);
    if (plain.kind !== 'connected') return { name, plain, up: false };
    const lp: LinkProbe = { name, host: addr.host, links: null as unknown as InterceptLinks, up: false, ipv6: false };
    const consumer: ReplyConsumer = {
      onReply: (buf, off) => {
        for (const p of tally.probes) if (p.onReplyRecord(buf, off, name)) return;
        for (const p of tally.probes6) if (p.onReplyRecord(buf, off, name)) return;
      },
      afterReplies: noop,
      onLinkUp: noop,
    };
    lp.links = new InterceptLinks([addr], 1, opts.format, consumer, silent, noop, opts.secret);
    // IPv6 rules: wait (bounded) for the capability answer, as a run does.
    lp.links.awaitCapabilities = v6;
    linkProbes.push(lp);
    await lp.links.connect();
    // A refused connection (passlist, --max-conns, a secret we do not answer) is closed at once.
    await sleep(400);
    lp.up = lp.links.ready;
    lp.ipv6 = lp.links.links.some((l) => l.conns.some((c) => c.up && c.capabilities >= 0 && (c.capabilities & Capability.Ipv6) !== 0));
    return { name, plain, up: lp.up, ipv6: lp.ipv6 };
  }));

  const results = await interceptChecks;
  const left = d.listenMs - (Date.now() - listenStart);
  if (left > 0) await sleep(left);
  const listenedS = ((Date.now() - listenStart) / 1000).toFixed(1);

  if (opts.capture.kind === 'offline' && !captureError) {
    if (tally.matched === 0) {
      report.add('capture', 'fail', `offline file ${opts.capture.path}: ${fileNote}, none for the -x port(s) ${rulePorts}`,
        'the -x rules match the destination port (and address) of the recorded client packets: tcpdump -nn -r <file> -c 20 shows them');
    } else {
      report.add('capture', 'ok', `offline file ${opts.capture.path}: ${fileNote}, ${tally.matched} for port(s) ${rulePorts} from ${tally.clientCount} client address(es)`);
    }
  } else if (!raw && opts.capture.kind !== 'offline') {
    report.add('capture', 'warn', 'not run: capturing needs CAP_NET_RAW (see permissions)');
  } else if (captureError) {
    report.add('capture', 'fail', opts.capture.kind === 'offline' ? captureError : `cannot capture with ${captureWhat}: ${captureError}`,
      opts.capture.kind === 'pcap' ? 'check the device (ip link) and the filter (-F); see docs/troubleshooting.md step 3'
        : opts.capture.kind === 'offline' ? 'give a readable pcap/pcapng file with -i' : SETCAP_FIX);
  } else if (tally.matched === 0) {
    report.add('capture', 'warn', `listened ${listenedS} s with ${captureWhat}: no packet for the -x port(s) ${rulePorts} arrived` +
      ' (no client active now, or this capture cannot see the traffic: a mirror port, a container, a host that forwards)',
    opts.capture.kind === 'raw'
      ? `check while clients are active; if ss -tn '( sport = :${opts.transfer.rules[0].onlinePort} )' lists connections, capture with libpcap: -i <device> (docs/troubleshooting.md step 2)`
      : `tcpdump -ni ${opts.capture.kind === 'pcap' ? opts.capture.devices[0] : 'eth0'} -c 20 'tcp and dst port ${opts.transfer.rules[0].onlinePort}' (docs/troubleshooting.md step 3)`);
  } else {
    report.add('capture', 'ok', `listened ${listenedS} s with ${captureWhat}: ${tally.matched} packet(s) for port(s) ${rulePorts} from ${tally.clientCount} client address(es)`);
  }

  for (const r of results) {
    const secretNote = opts.secret ? '; shared secret accepted' : '';
    if (r.plain.kind === 'refused') {
      report.add(`intercept@${r.name}`, 'fail', `nothing listens on ${r.name} (connection refused): intercept is not running there, or listens on another port (-p) or address (-b)`,
        `on the assistant: start intercept (intercept -i <device> -F 'tcp and src port ${opts.transfer.rules[0].targetPort}'), then check: ss -ltn '( sport = :${r.name.split(':')[1]} )'`);
    } else if (r.plain.kind === 'timeout') {
      report.add(`intercept@${r.name}`, 'fail', `no answer from ${r.name} within 2 s: a firewall drops the control connection, or the address is wrong`,
        `allow TCP port ${r.name.split(':')[1]} from this host to the assistant; check -s`);
    } else if (r.plain.kind === 'error') {
      report.add(`intercept@${r.name}`, 'fail', `cannot connect to ${r.name}: ${r.plain.message}`, 'check -s and the route to the assistant (ip route get)');
    } else if (!r.up) {
      report.add(`intercept@${r.name}`, 'fail', opts.secret
        ? `intercept at ${r.name} accepted the connection but not our shared secret (or it runs without --secret, or refuses this address with -x)`
        : `intercept at ${r.name} closed the control connection at once: this host is not in its -x passlist, it has --max-conns connections, or it requires --secret`,
      opts.secret ? 'start both daemons with the same --secret (or TCPCOPY_SECRET)' : 'on the assistant: add this host\'s address to intercept -x, or give tcpcopy the --secret intercept uses');
    } else if (v6 && !r.ipv6) {
      report.add(`intercept@${r.name}`, 'warn', `control connection up (protocol 6)${secretNote}, but intercept did not accept the IPv6 capability ` +
        '(the original C intercept, or an older one): the IPv6 -x items would be refused (ipv6Refused); IPv4 ones work',
      'run this implementation\'s intercept on the assistant for IPv6 replay');
    } else {
      report.add(`intercept@${r.name}`, 'ok', `control connection up (protocol 6)${v6 ? '; IPv6 capability accepted' : ''}${secretNote}`);
    }
  }

  // 3. The probe, once per target.
  const upLinks = linkProbes.filter((l) => l.up);
  const locals = localAddresses();
  const targets = new Map<string, { ip: number; port: number; text: string }>();
  for (const r of opts.transfer.rules) {
    if (r.family === 4) targets.set(`${r.targetIp}:${r.targetPort}`, { ip: r.targetIp, port: r.targetPort, text: `${r.targetIpText}:${r.targetPort}` });
  }
  const targets6 = new Map<string, Target6>();
  for (const r of opts.transfer.rules) {
    if (r.family === 6) targets6.set(`[${r.targetIpText}]:${r.targetPort}`, { ip: r.targetIp6!, ipText: r.targetIpText, port: r.targetPort, text: `[${r.targetIpText}]:${r.targetPort}` });
  }
  const targetIps = new Set([...targets.values()].map((t) => t.ip));
  const { addr: probeAddr, from: probeFrom } = chooseProbeAddress(opts.engine.clientAddrs, tally.clients, targetIps, locals,
    opts.capture.kind === 'offline' ? 'file' : 'capture');
  const probeText = ipToString(probeAddr);
  const assistant = opts.intercepts[0].host;
  const sends: { ok: number; errors: string[] } = { ok: 0, errors: [] };

  const probeTarget = async (t: { ip: number; port: number; text: string }, index: number): Promise<void> => {
    const id = `probe@${t.text}`;
    if (!sender) { report.add(id, 'warn', 'not run: no raw socket (see permissions)'); return; }
    if (!probeSender) { report.add(id, 'warn', `not run: cannot send with -o ${opts.outputDevice} (see raw-send)`); return; }
    if (upLinks.length === 0) { report.add(id, 'warn', 'not run: no intercept is connected (see intercept)'); return; }
    if (!probeAddr) {
      report.add(id, 'warn', `not run: no probe address: no -c was given and no client packet for port(s) ${rulePorts} arrived in ${listenedS} s`,
        'run the doctor again while clients are active, or give -c with the addresses tcpcopy should use');
      return;
    }
    const port = 40000 + ((Math.random() * 20000) | 0) + index;
    const isn = (Math.random() * 0x100000000) >>> 0;
    const slot = new ProbeSlot(probeAddr, port, t.ip, t.port, isn);
    tally.probes.push(slot);
    for (const l of upLinks) l.links.clientAdd(probeAddr, port, t.ip, t.port);
    await sleep(50); // the CLIENT_ADD leaves at the end of this turn; let intercept read it first
    const pkt = Buffer.alloc(64);
    const sendOne = (flags: number, seq: number): boolean => {
      const len = buildProbePacket(pkt, probeAddr, port, t.ip, t.port, seq, flags, (Math.random() * 65536) | 0);
      const ps = probeSender!;
      const before = ps.errors;
      ps.send(pkt, 0, len, ipToString(t.ip));
      if (ps.errors > before) { sends.errors.push(ps.lastError || 'no MAC address for the target'); return false; }
      sends.ok++;
      return true;
    };
    const net24 = `${probeText.split('.').slice(0, 3).join('.')}.0/24`;
    await runProbe({
      report, id, waitMs: d.probeWaitMs, slot, sendOne, sends,
      probe: `SYN ${probeText}:${port} -> ${t.text} (probe address ${probeText}: ${probeFrom})`,
      probeText, target: { host: ipToString(t.ip), port: t.port, text: t.text },
      sendFix: 'nft list ruleset / iptables -L OUTPUT -v -n: remove the rule that drops it, or send with -o <device>',
      noAnswer: (clientReset) => ({
        causes: clientReset
          ? `the answer reached the real client ${probeText}, which reset it (the capture saw its RST): the target's route for ${probeText} does not go via the assistant`
          : `on the target, one of: the route for ${probeText} does not go via the assistant ${assistant} (the answer then reaches the real client, which resets it), ` +
            `reverse-path filtering drops packets from ${probeText}, a firewall drops them; or the assistant does not capture the answer (run intercept --doctor there)`,
        fix: [`on the target: ip route get ${probeText}    (must say: via ${assistant})`,
          `ip route add ${net24} via ${assistant}    (the client network, or the -c addresses)`,
          `sysctl net.ipv4.conf.all.rp_filter    (0 or 2; the interface's value too)`,
          `nft list ruleset    (a rule dropping packets from ${probeText} to port ${t.port})`].join('\n'),
      }),
    });
  };
  // IPv6 targets: the same probe over IPv6 (CLIENT_ADD6, the raw IPv6 socket or -o frames).
  let sender6: (PacketSender & { lastError: string; flush?: () => void }) | null = null;
  let sender6Error = '';
  if (targets6.size > 0) {
    if (opts.outputDevice) sender6 = probeSender;
    else if (sender) {
      try { sender6 = new MmsgSender('ip6'); } catch (e) { sender6Error = (e as Error).message; }
    }
  }
  const ctx6: Probe6Context = {
    report, d, opts, tally, sends, rulePorts, listenedS: () => listenedS, sender6, sender6Error,
    upLinks: upLinks.filter((l) => l.ipv6), anyUp: upLinks.length > 0,
    probe: chooseProbeAddress6(opts.engine.clientAddrs6 ?? [], tally.clients6, new Set([...targets6.values()].map((t) => t.ipText)),
      localAddresses6(), opts.capture.kind === 'offline' ? 'file' : 'capture'),
  };
  try {
    await Promise.all([
      ...[...targets.values()].map((t, i) => probeTarget(t, i)),
      ...[...targets6.values()].map((t, i) => probeTarget6(ctx6, t, targets.size + i)),
    ]);
  } finally {
    closeCapture();
    for (const l of linkProbes) l.links.close();
  }

  // 4. The raw send: firewall rules on OUTPUT, connection tracking.
  const drops: string[] = [];
  const nft = runCommand('nft', ['list', 'ruleset']);
  if (nft.ok) drops.push(...nftOutputDrops(nft.stdout).map((r) => `nftables ${r}`));
  const ipt = runCommand('iptables', ['-S', 'OUTPUT']);
  if (ipt.ok) drops.push(...iptablesOutputDrops(ipt.stdout).map((r) => `iptables ${r}`));
  if (v6) {
    const ip6t = runCommand('ip6tables', ['-S', 'OUTPUT']);
    if (ip6t.ok) drops.push(...iptablesOutputDrops(ip6t.stdout).map((r) => `ip6tables ${r}`));
  }
  const ctCount = Number(readSysctl('net.netfilter.nf_conntrack_count') ?? NaN);
  const ctMax = Number(readSysctl('net.netfilter.nf_conntrack_max') ?? NaN);
  const ct = Number.isFinite(ctCount) && Number.isFinite(ctMax) && ctMax > 0 ? `conntrack ${ctCount} of ${ctMax}` : 'no connection tracking';
  const ctFull = Number.isFinite(ctCount) && ctMax > 0 && ctCount >= ctMax;
  const ctHigh = Number.isFinite(ctCount) && ctMax > 0 && ctCount >= 0.9 * ctMax;
  const rules = drops.length ? `${drops.length} drop/reject rule(s) on OUTPUT (${drops.slice(0, 2).join('; ')})` : 'no drop rule on OUTPUT';
  const ctFix = 'exempt the copies from tracking: nft add rule ... notrack, or iptables -t raw -A OUTPUT -p tcp -d <target> --dport <port> -j NOTRACK; or raise net.netfilter.nf_conntrack_max';
  const via = opts.outputDevice ? `Ethernet frames on ${opts.outputDevice} (-o: the host's OUTPUT rules and conntrack do not apply)` : 'the raw IP socket';
  if (!sender) {
    report.add('raw-send', 'fail', `not possible: no raw socket (see permissions); ${rules}; ${ct}`, SETCAP_FIX);
  } else if (linkError) {
    report.add('raw-send', 'fail', `cannot send with -o ${opts.outputDevice}: ${linkError}`, `check -o (ip link), and the target's MAC (ip neigh show ${opts.transfer.rules[0].targetIpText})`);
  } else if (opts.outputDevice && sends.errors.length === 0) {
    report.add('raw-send', 'ok', `${sends.ok ? `${sends.ok} probe packet(s) sent as ${via}` : `sending as ${via} is set up, no probe sent`}`);
  } else if (targets6.size > 0 && !opts.outputDevice && !sender6) {
    report.add('raw-send', 'fail', `the raw IPv6 socket (for the IPv6 -x items) cannot open: ${sender6Error}; ${rules}; ${ct}`,
      'the IPv6 sender is our addon (npm run setup builds it); IPv6 items need it');
  } else if (sends.errors.length > 0) {
    report.add('raw-send', 'fail', `the kernel refused the raw send: ${sends.errors[0]}; ${rules}; ${ct}`,
      ctFull ? ctFix : 'nft list ruleset / iptables -L OUTPUT -v -n: remove the rule that drops the copies, or send at link layer with -o <device>');
  } else if (ctFull) {
    report.add('raw-send', 'fail', `the nf_conntrack table is full (${ct}): the kernel drops new connections' packets`, ctFix);
  } else if (ctHigh || (drops.length && !report.checks.some((c) => c.id.startsWith('probe@') && c.status === 'ok'))) {
    report.add('raw-send', 'warn', `${sends.ok} probe packet(s) sent; ${rules}; ${ct}${ctHigh ? ' (nearly full)' : ''}`,
      ctHigh ? ctFix : 'nft list ruleset / iptables -L OUTPUT -v -n: check that no rule drops packets from the client addresses to the target');
  } else {
    report.add('raw-send', 'ok', `${sends.ok ? `${sends.ok} probe packet(s) sent through the raw IP socket${targets6.size ? 's (IPv4 and IPv6)' : ''}` : 'raw IP socket open, no probe sent'}; ${rules}; ${ct}`);
  }
  if (sender6 !== probeSender) sender6?.close();
  sender?.close();
  if (probeSender !== sender) probeSender?.close();
  const order = ['permissions', 'capture', 'raw-send', 'intercept@', 'probe@'];
  const rank = (id: string): number => order.findIndex((o) => id === o || (o.endsWith('@') && id.startsWith(o)));
  report.checks.sort((a, b) => rank(a.id) - rank(b.id));
  return report;
}

interface Target6 { ip: Buffer; ipText: string; port: number; text: string }

/** What the IPv6 probe needs of the doctor's run. */
interface Probe6Context {
  report: Report;
  d: TcpcopyDoctorOptions;
  opts: TcpcopyOptions;
  tally: CaptureTally;
  sends: { ok: number; errors: string[] };
  rulePorts: string;
  listenedS: () => string;
  sender6: (PacketSender & { lastError: string; flush?: () => void }) | null;
  sender6Error: string;
  /** Intercepts up that accepted IPv6. */
  upLinks: LinkProbe[];
  anyUp: boolean;
  probe: { addr: Buffer | null; from: string };
}

/**
 * The probe of one IPv6 target: what the IPv4 probe does, over IPv6 — CLIENT_ADD6 to every
 * intercept that accepted IPv6, a SYN from the probe address (twice, then a RST) through the
 * sender a run uses, the SYN-ACK or RST matched in the two-slot reply records, and a plain
 * connect from this host to tell the causes apart.
 */
async function probeTarget6(c: Probe6Context, t: Target6, index: number): Promise<void> {
  const { report, d, opts, tally, sends } = c;
  const id = `probe@${t.text}`;
  if (!c.sender6) {
    report.add(id, 'warn', `not run: ${opts.outputDevice ? `cannot send with -o ${opts.outputDevice}` : `no raw IPv6 socket${c.sender6Error ? ` (${c.sender6Error})` : ''}`} (see raw-send)`);
    return;
  }
  if (!c.anyUp) { report.add(id, 'warn', 'not run: no intercept is connected (see intercept)'); return; }
  if (c.upLinks.length === 0) {
    report.add(id, 'fail', 'not run: no connected intercept accepted the IPv6 capability, so no IPv6 reply can come back (the original C intercept replays IPv4 only)',
      'run this implementation\'s intercept on the assistant');
    return;
  }
  const probeAddr = c.probe.addr;
  if (!probeAddr) {
    report.add(id, 'warn', `not run: no IPv6 probe address: no IPv6 -c was given and no IPv6 client packet for port(s) ${c.rulePorts} arrived in ${c.listenedS()} s`,
      'run the doctor again while IPv6 clients are active, or give -c with IPv6 addresses tcpcopy should use (e.g. -c 2001:db8:2::/120)');
    return;
  }
  const probeText = ipv6ToString(probeAddr);
  const port = 40000 + ((Math.random() * 20000) | 0) + index;
  const isn = (Math.random() * 0x100000000) >>> 0;
  const slot = new ProbeSlot6(probeAddr, port, t.ip, t.port, isn);
  tally.probes6.push(slot);
  for (const l of c.upLinks) l.links.clientAdd6(probeAddr, port, t.ip, t.port);
  await sleep(50);
  const pkt = Buffer.alloc(80);
  const ps = c.sender6;
  const sendOne = (flags: number, seq: number): boolean => {
    const len = buildProbePacket6(pkt, probeAddr, port, t.ip, t.port, seq, flags);
    const before = ps.errors;
    ps.send(pkt, 0, len, t.ipText);
    ps.flush?.(); // the batched sender: out now, so that a refusal is seen here
    if (ps.errors > before) { sends.errors.push(ps.lastError || 'no MAC address for the target'); return false; }
    sends.ok++;
    return true;
  };
  const assistant = opts.intercepts[0].host.includes(':') ? opts.intercepts[0].host : "<the assistant's IPv6 address>";
  const net64 = `${ipv6ToString(Buffer.concat([probeAddr.subarray(0, 8), Buffer.alloc(8)]))}/64`;
  await runProbe({
    report, id, waitMs: d.probeWaitMs, slot, sendOne, sends,
    probe: `SYN [${probeText}]:${port} -> ${t.text} (probe address ${probeText}: ${c.probe.from})`,
    probeText, target: { host: t.ipText, port: t.port, text: t.text },
    sendFix: 'nft list ruleset / ip6tables -L OUTPUT -v -n: remove the rule that drops it, or send with -o <device>',
    noAnswer: (clientReset) => ({
      causes: clientReset
        ? `the answer reached the real client ${probeText}, which reset it (the capture saw its RST): the target's IPv6 route for ${probeText} does not go via the assistant`
        : `on the target, one of: the IPv6 route for ${probeText} does not go via the assistant (the answer then reaches the real client, which resets it), ` +
          `reverse-path filtering (a netfilter fib or rpfilter rule: IPv6 has no rp_filter sysctl) drops packets from ${probeText}, a firewall drops them; ` +
          'or the assistant does not capture the answer (run intercept --doctor there)',
      fix: [`on the target: ip -6 route get ${probeText}    (must say: via ${assistant})`,
        `ip -6 route add ${net64} via ${assistant}    (the client network, or the IPv6 -c addresses)`,
        'nft list ruleset; ip6tables -t raw -S; ip6tables -t mangle -S    (a fib saddr / rpfilter rule, or a drop of the probe)',
        `nft list ruleset    (a rule dropping packets from ${probeText} to port ${t.port})`].join('\n'),
    }),
  });
}

/** One probe's exchange and its verdict, either family. */
interface ProbeRun {
  report: Report;
  id: string;
  waitMs: number;
  slot: ProbeState;
  /** Sends one probe packet (SYN or RST); false when the sender refused it. */
  sendOne: (flags: number, seq: number) => boolean;
  sends: { ok: number; errors: string[] };
  /** "SYN src -> target (probe address …)". */
  probe: string;
  probeText: string;
  target: { host: string; port: number; text: string };
  sendFix: string;
  /** The causes and fix lines when nothing came back (they depend on whether the real client reset the answer). */
  noAnswer: (clientReset: boolean) => { causes: string; fix: string };
}

/**
 * The SYN (again after the wait when nothing came), then a RST whatever came back (a SYN-ACK
 * sent elsewhere left a half-open connection too); then the verdict, with a plain connect from
 * this host's own address to rule out what it can.
 */
async function runProbe(r: ProbeRun): Promise<void> {
  const { report, id, slot, sends, probe, probeText, target: t } = r;
  const started = Date.now();
  let sent = r.sendOne(TcpFlag.SYN, slot.isn);
  let syns = 1;
  const answeredOrTimeout = (): Promise<void> => Promise.race([slot.answered, sleep(r.waitMs)]);
  if (sent) {
    await answeredOrTimeout();
    if (slot.answer === 'none') { sent = r.sendOne(TcpFlag.SYN, slot.isn) || sent; syns++; await answeredOrTimeout(); }
  }
  slot.rstSent = true;
  if (sent) r.sendOne(TcpFlag.RST, slot.isn + 1);
  const ms = (slot.answeredAtMs || Date.now()) - started;
  if (!sent) {
    report.add(id, 'fail', `${probe} could not be sent: ${sends.errors[sends.errors.length - 1] ?? 'send error'} (see raw-send)`, r.sendFix);
    return;
  }
  if (slot.answer === 'syn-ack') {
    report.add(id, 'ok', `${probe}: the SYN-ACK came back through intercept ${slot.via} in ${ms} ms; closed with a RST`);
    return;
  }
  const own = await plainConnect(t.host, t.port, 1500);
  const ownText = own.kind === 'connected'
    ? `a plain connect from this host (${own.local}) to ${t.text} works, so the service listens and accepts this host`
    : own.kind === 'refused' ? `a plain connect from this host to ${t.text} is refused too: nothing listens on port ${t.port}`
      : own.kind === 'timeout' ? `a plain connect from this host to ${t.text} times out too: the target is down or a firewall drops port ${t.port}`
        : `a plain connect from this host to ${t.text} fails: ${own.message}`;
  if (slot.answer === 'rst') {
    report.add(id, 'fail', `${probe}: the target answered with RST (through intercept ${slot.via}): nothing listens on port ${t.port}` +
      `${own.kind === 'connected' ? `, yet ${ownText}: a firewall on the target rejects packets from ${probeText}` : ` (${ownText})`}; the path back through the assistant works`,
    own.kind === 'connected' ? `on the target: nft list ruleset (a reject rule for ${probeText})` : `on the target: start the service on port ${t.port} (ss -ltn '( sport = :${t.port} )'), or fix the target port in -x`);
    return;
  }
  const { causes, fix } = r.noAnswer(slot.clientReset);
  report.add(id, 'fail', `${probe}: no answer came back through intercept in ${(ms / 1000).toFixed(1)} s (${syns} SYNs, then a RST); ${ownText}; ${causes}`, fix);
}
