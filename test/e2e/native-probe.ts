/**
 * Run by native.test.ts inside a private network namespace (`unshare -n`: only a loopback
 * device, gone with the process): exercises the addon's ring and sender on real traffic and
 * prints one JSON line of figures. Not a test file itself.
 */
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { loadNative } from '../../src/io/native';
import { RingCapture, RingPacketSink } from '../../src/io/ring';
import { MmsgSender } from '../../src/io/mmsg-sender';

const CONNS = 40;
const UDP_PACKETS = 400;

/** Counts TCP packets by flags and ports. */
class Tally implements RingPacketSink {
  packets = 0; syn = 0; synAck = 0; wrongPort = 0; truncated = 0;
  constructor(private readonly port: number, private readonly dir: 'dst' | 'src') {}
  onRingPacket(buf: Buffer, off: number, cap: number, wire: number): void {
    this.packets++;
    if (cap < wire) this.truncated++;
    const ihl = (buf[off] & 15) * 4;
    const sport = buf.readUInt16BE(off + ihl), dport = buf.readUInt16BE(off + ihl + 2);
    if ((this.dir === 'dst' ? dport : sport) !== this.port) this.wrongPort++;
    const flags = buf[off + ihl + 13];
    if ((flags & 0x12) === 0x02) this.syn++;
    if ((flags & 0x12) === 0x12) this.synAck++;
  }
}

function udpPacket(i: number, dport: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b[0] = 0x45; b.writeUInt16BE(size, 2); b.writeUInt16BE(i & 0xffff, 4); b[8] = 64; b[9] = 17;
  b.writeUInt32BE(0x7f000001, 12); b.writeUInt32BE(0x7f000001, 16); // kernel fills the IP checksum
  b.writeUInt16BE(40000, 20); b.writeUInt16BE(dport, 22); b.writeUInt16BE(size - 20, 24); // UDP checksum 0: none
  b.writeUInt32BE(i, 28);
  return b;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const mode = process.argv[2];
  const n = loadNative();
  if (mode === 'nopriv') {
    const out: Record<string, string> = {};
    try { new n.Ring({ ifindex: 0, allProtocols: false, ignoreOutgoing: true, filter: 'tcp', snaplen: 65535, blockSize: 1 << 18, blockCount: 4, timeoutMs: 1 }); out.ring = 'opened'; } catch (e) { out.ring = (e as { code: string }).code; }
    try { new n.Sender({ kind: 'ip', ifindex: 0, sndbuf: 0, qdiscBypass: false }); out.sender = 'opened'; } catch (e) { out.sender = (e as { code: string }).code; }
    process.stdout.write(JSON.stringify(out) + '\n');
    return;
  }
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  // tcpcopy's ring: every interface, IPv4 only, inbound only, filter on the destination port.
  const inbound = new Tally(7001, 'dst');
  const ringA = new RingCapture({ devices: [], allProtocols: false, ignoreOutgoing: true, filter: 'tcp and dst port 7001', snaplen: 65535, ringBytes: 4 << 20, timeoutMs: 1 }, inbound);
  ringA.open();
  // intercept's ring: bound to lo, every protocol, both directions, a short snap length.
  const replies = new Tally(7001, 'src');
  const ringB = new RingCapture({ devices: ['lo'], allProtocols: true, ignoreOutgoing: false, filter: 'tcp and src port 7001', snaplen: 64, ringBytes: 4 << 20, timeoutMs: 1 }, replies);
  ringB.open();

  const server = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('end', () => s.end()); });
  await new Promise<void>((r) => server.listen(7001, '127.0.0.1', () => r()));
  for (let i = 0; i < CONNS; i++) {
    await new Promise<void>((resolve, reject) => {
      const c = net.connect(7001, '127.0.0.1', () => c.end(Buffer.alloc(300, 65)));
      c.on('data', () => {}); c.on('close', () => resolve()); c.on('error', reject);
    });
  }
  await sleep(100);
  server.close();

  // The sender: UDP datagrams through sendmmsg, counted by a UDP socket.
  const rx = dgram.createSocket('udp4');
  let received = 0;
  rx.on('message', () => { received++; });
  await new Promise<void>((r) => rx.bind(7002, '127.0.0.1', () => r()));
  const tx = new MmsgSender('ip');
  for (let k = 0; k < UDP_PACKETS / 100; k++) {
    for (let i = 0; i < 100; i++) { const p = udpPacket(k * 100 + i, 7002, 200); tx.send(p, 0, p.length, '127.0.0.1'); }
    await sleep(30);
  }
  await sleep(100);
  rx.close();
  const sent = tx.snapshot();

  // Drops: a two-block ring that is not read while a burst arrives (one synchronous flush).
  const burst = new Tally(0, 'dst');
  const ringC = new RingCapture({ devices: [], allProtocols: false, ignoreOutgoing: true, filter: 'udp and dst port 7003', snaplen: 65535, ringBytes: 2 << 18, timeoutMs: 1 }, burst);
  ringC.open();
  const big = udpPacket(0, 7003, 1400);
  for (let i = 0; i < 2000; i++) tx.send(big, 0, big.length, '127.0.0.1');
  tx.flush();
  await sleep(200);
  const cStats = ringC.snapshot();
  tx.close();

  const a = ringA.snapshot(), b = ringB.snapshot();
  ringA.close(); ringB.close(); ringC.close();
  process.stdout.write(JSON.stringify({
    conns: CONNS,
    inbound: { ...inbound, ring: a },
    replies: { ...replies, ring: b },
    udp: { sent: UDP_PACKETS, received, sender: sent },
    burst: { sent: 2000, delivered: burst.packets, ring: cStats },
  }) + '\n');
}

main().catch((e) => { process.stdout.write(JSON.stringify({ error: String((e as Error).stack ?? e) }) + '\n'); process.exitCode = 1; });
