/**
 * `intercept --doctor`: checks the assistant server: ip_forward off (the black hole), the
 * capture devices, the filter, replies arriving, the control port. Changes nothing.
 */
import * as net from 'node:net';
import type { InterceptOptions } from '../intercept/intercept';
import { PcapLiveSource } from '../io/pcap-live';
import { IoError } from '../io/types';
import { Report } from './report';
import { CAP_NET_ADMIN, CAP_NET_RAW, deviceNames, deviceState, effectiveCaps, hasCap, listeningInodes, readSysctl, socketOwner } from './system';

export interface InterceptDoctorInput {
  opts: InterceptOptions;
  devices: string[];
  filter: string;
  bufferBytes: number;
  /** How long the capture listens for replies (ms). */
  listenMs: number;
}

const SETCAP_FIX = 'run as root (sudo), or grant the capabilities to node: setcap cap_net_raw,cap_net_admin+ep $(readlink -f $(command -v node))';

type PortResult = { kind: 'free' } | { kind: 'in-use' } | { kind: 'error'; code: string; message: string };

function tryListen(port: number, host: string): Promise<PortResult> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EADDRINUSE' ? { kind: 'in-use' } : { kind: 'error', code: e.code ?? '', message: e.message }));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve({ kind: 'free' })));
  });
}

export async function interceptDoctor(input: InterceptDoctorInput): Promise<Report> {
  const { opts, devices, filter } = input;
  const report = new Report();

  // ip_forward must be 0: otherwise the replies go on to the real clients, which reset them.
  const fwd = readSysctl('net.ipv4.ip_forward');
  if (fwd === '0') {
    report.add('ip-forward', 'ok', 'net.ipv4.ip_forward = 0: the target\'s replies end here');
  } else if (fwd === null) {
    report.add('ip-forward', 'warn', 'cannot read net.ipv4.ip_forward (/proc/sys not mounted?)', 'sysctl net.ipv4.ip_forward must print 0');
  } else {
    report.add('ip-forward', 'fail', `net.ipv4.ip_forward = ${fwd}: this host forwards the target's replies to the real clients, which reset the replayed sessions`,
      'sysctl -w net.ipv4.ip_forward=0   (and net.ipv4.ip_forward = 0 in /etc/sysctl.conf for reboots)');
  }
  // The same for IPv6 replay: with forwarding on, the target's IPv6 replies go on to the real
  // clients. Only a warning: an IPv4-only deployment does not care (no line without IPv6).
  const fwd6 = readSysctl('net.ipv6.conf.all.forwarding');
  if (fwd6 === '0') {
    report.add('ip6-forward', 'ok', 'net.ipv6.conf.all.forwarding = 0: IPv6 replies end here too');
  } else if (fwd6 !== null) {
    report.add('ip6-forward', 'warn', `net.ipv6.conf.all.forwarding = ${fwd6}: this host forwards the target's IPv6 replies to the real clients, which reset replayed IPv6 sessions (IPv4 replay is not affected)`,
      'sysctl -w net.ipv6.conf.all.forwarding=0   (and in /etc/sysctl.conf for reboots)');
  }

  const caps = effectiveCaps();
  const raw = hasCap(caps, CAP_NET_RAW);
  const admin = hasCap(caps, CAP_NET_ADMIN);
  if (!raw) report.add('permissions', 'fail', 'CAP_NET_RAW is missing: libpcap cannot capture', SETCAP_FIX);
  else if (!admin) report.add('permissions', 'warn', 'CAP_NET_RAW is effective, CAP_NET_ADMIN is missing: libpcap may refuse the device', SETCAP_FIX);
  else report.add('permissions', 'ok', `${process.getuid?.() === 0 ? 'root; ' : ''}CAP_NET_RAW and CAP_NET_ADMIN effective`);

  // Devices.
  const bad: string[] = [];
  const seen: string[] = [];
  for (const dev of devices) {
    if (dev === 'any') { seen.push('any (every device)'); continue; }
    const st = deviceState(dev);
    if (!st.exists) bad.push(`'${dev}' does not exist (devices here: ${deviceNames().join(', ')})`);
    else if (!st.up) bad.push(`${dev} is down`);
    else if (!st.running || st.operstate === 'down' || st.operstate === 'lowerlayerdown') bad.push(`${dev} is up but has no carrier (operstate ${st.operstate})`);
    else seen.push(`${dev} up`);
  }
  if (bad.length) {
    const downDev = devices.find((d) => d !== 'any' && deviceState(d).exists && !deviceState(d).up);
    report.add('devices', 'fail', bad.join('; '), downDev ? `ip link set ${downDev} up` : 'fix -i: capture on the device the target\'s replies arrive on (ip route get <target> shows it)');
  } else {
    report.add('devices', 'ok', seen.join(', '));
  }

  // Filter and capture.
  let packets = 0;
  let capture: PcapLiveSource | null = null;
  if (!raw) {
    report.add('filter', 'warn', 'not checked: needs CAP_NET_RAW (see permissions)');
  } else if (bad.length) {
    report.add('filter', 'warn', 'not checked: a capture device is missing or down (see devices)');
  } else {
    capture = new PcapLiveSource({ devices, filter, bufferBytes: Math.min(input.bufferBytes, 1 << 20), frameBytes: 128 }, {
      onFrame: () => { packets++; },
    });
    try {
      capture.open();
      report.add('filter', 'ok', `libpcap compiles '${filter}' on ${devices.join(',')}`);
    } catch (e) {
      capture = null;
      const code = e instanceof IoError ? e.code : '';
      const msg = (e as Error).message;
      if (code === 'bad-filter') report.add('filter', 'fail', msg, 'fix -F: it must match the target\'s replies, e.g. -F \'tcp and src port 8080\' (man pcap-filter)');
      else report.add('filter', 'fail', `cannot capture: ${msg}`, code === 'no-permission' ? SETCAP_FIX : 'check -i (ip link)');
    }
  }

  // Control port: free, or held by an intercept.
  const where = `${opts.bindAddress || '0.0.0.0'}:${opts.port}`;
  const port = await tryListen(opts.port, opts.bindAddress || '0.0.0.0');
  if (port.kind === 'free') {
    report.add('control-port', 'ok', `${where} is free: intercept can listen there (no intercept runs on it now)`);
  } else if (port.kind === 'in-use') {
    let owner: { pid: number; cmdline: string } | null = null;
    for (const inode of listeningInodes(opts.port)) { owner = socketOwner(inode); if (owner) break; }
    if (owner && /\bintercept\b/.test(owner.cmdline)) {
      report.add('control-port', 'ok', `${where} is held by intercept (pid ${owner.pid})`);
    } else if (owner) {
      report.add('control-port', 'fail', `${where} is held by another program (pid ${owner.pid}: ${owner.cmdline.slice(0, 120)})`,
        `stop it, or run intercept and tcpcopy with another port: intercept -p <port>, tcpcopy -s <assistant>:<port>`);
    } else {
      report.add('control-port', 'warn', `${where} is in use by a process this doctor cannot see (another user or namespace)`, `ss -ltnp '( sport = :${opts.port} )'`);
    }
  } else {
    report.add('control-port', 'fail', `cannot listen on ${where}: ${port.message}`,
      port.code === 'EADDRNOTAVAIL' ? 'fix -b: give an address of this host (ip -4 addr)' : `ss -ltnp '( sport = :${opts.port} )'`);
  }

  if (capture) {
    const started = Date.now();
    await new Promise((r) => setTimeout(r, input.listenMs));
    capture.close();
    const s = ((Date.now() - started) / 1000).toFixed(1);
    if (packets === 0) {
      report.add('replies', 'warn', `no packet matching '${filter}' arrived on ${devices.join(',')} in ${s} s: no replay runs now, the target does not route its replies here, or the filter does not match them`,
        'on the target: ip route get <client address> must say via this host; the filter must match packets *from* the target\'s port (src port, not dst)');
    } else {
      report.add('replies', 'ok', `${packets} packet(s) matching '${filter}' in ${s} s`);
    }
  }
  return report;
}
