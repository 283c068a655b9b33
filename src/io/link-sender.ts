import * as fs from 'node:fs';
import { PcapSendHandle } from './pcap-live';
import type { PacketSender } from './raw-socket';
import { IoError } from './types';
import { parseMac, writeEthernetHeader } from '../wire/link';

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

/** The neighbour table's MAC for an address (the kernel learnt it), or null. */
export function neighbourMac(ip: string, device: string): Buffer | null {
  let table = '';
  try { table = fs.readFileSync('/proc/net/arp', 'utf8'); } catch { return null; }
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 6 && f[0] === ip && f[5] === device && f[3] !== '00:00:00:00:00:00') return parseMac(f[3]);
  }
  return null;
}

/**
 * `-o`: sends whole Ethernet frames through libpcap, bypassing the online server's IP stack
 * (its iptables and conntrack). The IP checksum is ours (the engine always fills it).
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
    writeEthernetHeader(this.frame, 0, m.dst, m.src);
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
