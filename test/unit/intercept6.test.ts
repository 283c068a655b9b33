/**
 * intercept and IPv6 replies that come before their CLIENT_ADD6: a SYN-ACK or RST is held
 * (its addresses interned for as long as it is held) and delivered, in order, as a two-slot
 * record when the CLIENT_ADD6 arrives; other replies have no route; held replies expire and
 * give their address keys back; the bounds are shared with IPv4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import pino from 'pino';
import {
  CAPABILITY_ANSWER_SIZE, CLIENT_ADD6_SIZE, CLIENT_RECORD_SIZE, Capability, ReplyRecord6, writeClientAdd6Record, writeVersionRecord,
} from '../../src/control/records';
import { ReplyStreamDecoder } from '../../src/control/codec';
import { DEFAULT_INTERCEPT_OPTIONS, Intercept } from '../../src/intercept/intercept';
import { parseIpv6 } from '../../src/wire/ipv6';

const TARGET = '2001:2::30';
const C1 = '2001:2:0:1::10';
const C2 = '2001:2:0:1::11';

/** An IPv6/TCP reply from the target (header only, `claimed` payload bytes). */
function reply6(dst: string, dport: number, flags: number, seq: number, claimed = 0): Buffer {
  const b = Buffer.alloc(60);
  b.writeUInt32BE(0x60000000, 0); b.writeUInt16BE(20 + claimed, 4); b[6] = 6; b[7] = 64;
  parseIpv6(TARGET)!.copy(b, 8); parseIpv6(dst)!.copy(b, 24);
  b.writeUInt16BE(8080, 40); b.writeUInt16BE(dport, 42); b.writeUInt32BE(seq, 44); b.writeUInt32BE(9, 48);
  b[52] = 5 << 4; b[53] = flags; b.writeUInt16BE(1000, 54);
  return b;
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connected(icpt: Intercept): Promise<{ s: net.Socket; got: Buffer[] }> {
  const { port } = await icpt.listen();
  const got: Buffer[] = [];
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('data', (d) => got.push(d));
  await new Promise<void>((r) => s.once('connect', () => r()));
  const v = Buffer.alloc(CLIENT_RECORD_SIZE);
  writeVersionRecord(v, 0, 6, Capability.Ipv6);
  s.write(v);
  for (let i = 0; i < 100 && Buffer.concat(got).length < CAPABILITY_ANSWER_SIZE; i++) await wait(10);
  assert.equal(Buffer.concat(got).length, CAPABILITY_ANSWER_SIZE, 'the capability answer');
  return { s, got };
}

function add6(s: net.Socket, client: string, port: number): void {
  const rec = Buffer.alloc(CLIENT_ADD6_SIZE);
  writeClientAdd6Record(rec, 0, parseIpv6(client)!, 0, port, parseIpv6(TARGET)!, 0, 8080);
  s.write(rec);
}

function records(got: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  const dec = new ReplyStreamDecoder({ combined: true, payload: false }, { onReply: (b, off) => { out.push(Buffer.from(b.subarray(off, off + 128))); } });
  dec.ipv6 = true;
  assert.equal(dec.push(Buffer.concat(got).subarray(CAPABILITY_ANSWER_SIZE)), null);
  return out;
}

test('IPv6 replies before their CLIENT_ADD6: SYN-ACK and RST held and delivered in order as two-slot records; others have no route', async () => {
  const icpt = new Intercept({ ...DEFAULT_INTERCEPT_OPTIONS, port: 0, bindAddress: '127.0.0.1' }, pino({ level: 'silent' }));
  try {
    const { s, got } = await connected(icpt);
    // Before any route: a SYN-ACK and a retransmitted SYN-ACK for C1, an RST for C2, an ACK for C1.
    for (const p of [reply6(C1, 40000, 0x12, 100), reply6(C1, 40000, 0x12, 100), reply6(C2, 40001, 0x04, 500), reply6(C1, 40000, 0x10, 101)]) {
      icpt.onIpPacket(p, 0, p.length);
    }
    let st = icpt.snapshot() as Record<string, number>;
    assert.equal(st.held, 3);
    assert.equal(st.heldNow, 3);
    assert.equal(st.noRoute, 1, 'the ACK is not held');
    assert.equal(icpt.addr6.size, 3, 'C1, C2 and the target interned for the held replies');
    assert.equal(icpt.routes6.size, 0);
    add6(s, C1, 40000);
    for (let i = 0; i < 100 && icpt.routes6.size === 0; i++) await wait(10);
    await wait(50);
    const recs = records(got);
    assert.equal(recs.length, 2, "C1's two held SYN-ACKs");
    for (const r of recs) {
      assert.equal(ReplyRecord6.dstPort(r, 0), 40000);
      assert.equal(ReplyRecord6.flags(r, 0), 0x12);
    }
    st = icpt.snapshot() as Record<string, number>;
    assert.equal(st.heldDelivered, 2);
    assert.equal(st.forwarded6, 2);
    assert.equal(st.heldNow, 1, "C2's RST still waits");
    // A reply after the route goes straight through.
    const data = reply6(C1, 40000, 0x18, 101, 300);
    icpt.onIpPacket(data, 0, data.length);
    await wait(50);
    assert.equal(records(got).length, 3);
    // C2's CLIENT_ADD6 never comes: the RST expires and gives C2's key back (the target's is the route's too).
    assert.equal(icpt.heldReplies.sweep(Date.now() + DEFAULT_INTERCEPT_OPTIONS.holdMs + 1), 1);
    assert.equal(icpt.addr6.size, 2, 'C1 and the target, held by the route only');
    s.destroy();
    for (let i = 0; i < 100 && icpt.tunnels.size > 0; i++) await wait(10);
    assert.equal(icpt.addr6.size, 0, 'every key given back');
  } finally {
    await icpt.close();
  }
});

test('held IPv6 replies share the bound with IPv4 ones, and a reply dropped by it interns nothing', async () => {
  const icpt = new Intercept({ ...DEFAULT_INTERCEPT_OPTIONS, port: 0, bindAddress: '127.0.0.1', maxHeld: 2 }, pino({ level: 'silent' }));
  try {
    // One IPv4 SYN-ACK held first.
    const v4 = Buffer.alloc(40);
    v4[0] = 0x45; v4.writeUInt16BE(40, 2); v4[8] = 64; v4[9] = 6;
    Buffer.from([198, 18, 0, 30]).copy(v4, 12); Buffer.from([198, 18, 1, 10]).copy(v4, 16);
    v4.writeUInt16BE(8080, 20); v4.writeUInt16BE(40000, 22); v4[32] = 5 << 4; v4[33] = 0x12;
    icpt.onIpPacket(v4, 0, v4.length);
    const a = reply6(C1, 40000, 0x12, 1);
    const b = reply6(C2, 40001, 0x12, 1);
    icpt.onIpPacket(a, 0, a.length);
    icpt.onIpPacket(b, 0, b.length);
    const st = icpt.snapshot() as Record<string, number>;
    assert.equal(st.held, 2);
    assert.equal(st.heldDropped, 1);
    assert.equal(icpt.addr6.size, 2, "C1 and the target; C2's reply was dropped and left no key");
    icpt.heldReplies.sweep(Date.now() + DEFAULT_INTERCEPT_OPTIONS.holdMs + 1);
    assert.equal(icpt.addr6.size, 0);
  } finally {
    await icpt.close();
  }
});
