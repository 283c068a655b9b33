/**
 * tcpcopy's CLIENT_ADD registrations over `-C` connections: round robin in stripes of STRIPE
 * (sessions that start together share a connection, so intercept's reply batches go out in
 * one write), and a connection that is down is passed over. A fake intercept on 127.0.0.1
 * keeps the client ports it received, per connection, in order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import pino from 'pino';
import { waitFor } from '../../lab/daemons';
import { CLIENT_RECORD_SIZE, MsgType } from '../../src/control/records';
import { InterceptLinks, ReplyConsumer, STRIPE } from '../../src/tcpcopy/links';

/** Polls every 5 ms for up to 3 s. */
const until = (fn: () => boolean) => waitFor(fn, 3000, 5);

function fakeIntercept() {
  const conns: { sock: net.Socket; ports: number[]; types: number[] }[] = [];
  const server = net.createServer((sock) => {
    const c = { sock, ports: [] as number[], types: [] as number[] };
    conns.push(c);
    let have = Buffer.alloc(0);
    let skipped = false;
    sock.on('data', (d) => {
      have = Buffer.concat([have, d]);
      if (!skipped) {
        if (have.length < CLIENT_RECORD_SIZE) return;
        have = have.subarray(CLIENT_RECORD_SIZE); // the version record
        skipped = true;
      }
      while (have.length >= CLIENT_RECORD_SIZE) {
        c.ports.push(have.readUInt16BE(4));
        c.types.push(have.readUInt16BE(6));
        have = have.subarray(CLIENT_RECORD_SIZE);
      }
    });
    sock.on('error', () => { /* closed by the test */ });
  });
  return { server, conns };
}

test('CLIENT_ADD goes round robin in stripes over the connections up, and passes over one that is down', async () => {
  const { server, conns } = fakeIntercept();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const consumer: ReplyConsumer = { onReply: () => {}, afterReplies: () => {}, onLinkUp: () => {} };
  const links = new InterceptLinks([{ host: '127.0.0.1', port }], 2, { combined: true, payload: false }, consumer, pino({ level: 'silent' }), () => {});
  links.awaitCapabilities = false;
  const total = () => conns.reduce((a, c) => a + c.ports.length, 0);
  try {
    assert.equal(await links.connect(), 1, 'one intercept up');
    assert.ok(await until(() => conns.length === 2 && links.links[0].upCount === 2), 'both connections up');
    const n = 3 * STRIPE + 10;
    for (let i = 0; i < n; i++) assert.equal(links.clientAdd(0xc6120110, 1000 + i, 0xc612001e, 8080), true);
    assert.ok(await until(() => total() === n), `received ${total()} of ${n}`);
    for (const c of conns) assert.ok(c.types.every((t) => t === MsgType.ClientAdd));
    // Stripe k (ports 1000 + k*STRIPE ...) went whole, in order, on one connection, and the
    // stripes alternate between the two.
    const first = conns.findIndex((c) => c.ports[0] === 1000);
    assert.ok(first >= 0, 'the first registration arrived first on one connection');
    assert.deepEqual(conns[first].ports.slice(0, 10), Array.from({ length: 10 }, (_, i) => 1000 + i), 'ten registrations in a row share a connection');
    const expect: number[][] = [[], []];
    for (let i = 0; i < n; i++) expect[Math.floor(i / STRIPE) % 2].push(1000 + i);
    assert.deepEqual(conns[first].ports, expect[0]);
    assert.deepEqual(conns[1 - first].ports, expect[1]);

    // The connection that takes registrations now goes down: the other takes them all.
    const now = conns[1 - first]; // stripe 3 (n = 3 stripes + 10) is on the second connection
    now.sock.destroy();
    assert.ok(await until(() => links.links[0].upCount === 1), 'tcpcopy saw the connection close');
    const before = conns[first].ports.length;
    for (let i = 0; i < 20; i++) assert.equal(links.clientAdd(0xc6120110, 5000 + i, 0xc612001e, 8080), true);
    assert.ok(await until(() => conns[first].ports.length === before + 20), 'the connection still up took the 20');
    assert.deepEqual(conns[first].ports.slice(before), Array.from({ length: 20 }, (_, i) => 5000 + i));
  } finally {
    links.close();
    for (const c of conns) c.sock.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
