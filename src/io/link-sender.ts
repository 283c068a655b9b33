import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { PcapSendHandle } from './pcap-live';
import type { PacketSender } from './raw-socket';
import { IoError } from './types';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, parseMac, writeEthernetHeader } from '../wire/link';
import { parseIpv6 } from '../wire/ipv6';

/** MAC addresses for one target: our device's address and the next hop's. */
export interface MacPair {
  src: Buffer;
  dst: Buffer;
}

/** The device's own MAC (from sysfs). */
export function deviceMac(device: string): Buffer {
  let text = '';
  try { text = fs.readFileSync(`/sys/class/net/${device}/address`, 'utf8').trim(); } catch {
    throw new IoError('no-device', `-o ${device}: no such network device`);
  }
  const mac = parseMac(text);
  if (!mac) throw new IoError('no-mac', `-o ${device}: the device has no Ethernet address`);
  return mac;
}

/**
 * The neighbour table's MAC for an address (the kernel learnt it), or null: ARP's
 * (/proc/net/arp) for IPv4, the IPv6 neighbour table (`ip -6 neigh show dev <device>`) for IPv6.
 */
export function neighbourMac(ip: string, device: string): Buffer | null {
  if (ip.includes(':')) return neighbourMac6(ip, device);
  let table = '';
  try { table = fs.readFileSync('/proc/net/arp', 'utf8'); } catch { return null; }
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 6 && f[0] === ip && f[5] === device && f[3] !== '00:00:00:00:00:00') return parseMac(f[3]);
  }
  return null;
}

/**
 * The MAC of an IPv6 neighbour from `ip -6 neigh show` output: lines `ADDR lladdr MAC STATE`
 * (a neighbour still resolving, or failed, has no lladdr). Addresses are compared as bytes,
 * so any text form matches.
 */
export function parseNeigh6(text: string, ip: string): Buffer | null {
  const want = parseIpv6(ip);
  if (want === null) return null;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    const at = f.indexOf('lladdr');
    if (at < 1 || at + 1 >= f.length || f.includes('FAILED')) continue;
    const addr = parseIpv6(f[0]);
    if (addr === null || !addr.equals(want)) continue;
    const mac = parseMac(f[at + 1]);
    if (mac && !mac.equals(ZERO_MAC)) return mac;
  }
  return null;
}

const ZERO_MAC = Buffer.alloc(6);

function neighbourMac6(ip: string, device: string): Buffer | null {
  let text = '';
  try {
    text = execFileSync('ip', ['-6', 'neigh', 'show', 'dev', device], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 3000 });
  } catch {
    return null; // no iproute2 or no such device: the caller says how to give the MAC
  }
  return parseNeigh6(text, ip);
}

/** What to tell the user when the MAC of a target is unknown (`-o` without @MAC). */
export function unknownMacMessage(device: string, targetIpText: string, ruleExample: string): string {
  const v6 = targetIpText.includes(':');
  return `-o ${device}: the MAC address of ${targetIpText} is unknown; give it in -x (${ruleExample}) or let the kernel learn it first ` +
    `(${v6 ? `ping -6 -c 1 ${targetIpText}` : `ping ${targetIpText}`}${v6 ? ', then ip -6 neigh shows it' : ''})`;
}

/**
 * `-o`: sends whole Ethernet frames through libpcap, bypassing the online server's IP stack
 * (its iptables and conntrack). The IP checksum is ours (the engine always fills it). The
 * EtherType follows each packet's version nibble (0x0800 or 0x86DD).
 */
export class LinkLayerSender implements PacketSender {
  private readonly handle: PcapSendHandle;
  private readonly frame = Buffer.allocUnsafe(14 + 65536);
  sent = 0;
  errors = 0;
  lastError = '';

  constructor(readonly device: string, private readonly macs: Map<string, MacPair>) {
    this.handle = new PcapSendHandle(device);
  }

  send(buf: Buffer, off: number, len: number, dst: string): void {
    const m = this.macs.get(dst);
    if (m === undefined) { this.errors++; return; }
    writeEthernetHeader(this.frame, 0, m.dst, m.src, (buf[off] >> 4) === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
    buf.copy(this.frame, 14, off, off + len);
    try {
      this.handle.send(this.frame, len + 14);
      this.sent++;
    } catch (e) {
      this.errors++;
      this.lastError = (e as Error).message;
    }
  }

  close(): void { this.handle.close(); }
}
