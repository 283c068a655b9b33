/**
 * writeDirect: control-channel writes with one write(2) while the socket's queue is empty, and
 * through socket.write otherwise. Over loopback: the bytes arrive whole and in order when the
 * peer stops reading and the kernel's buffers fill (EAGAIN, partial writes), a caller's reused
 * buffer changed after a queued write does not change what arrives, and a write to a
 * connection the peer reset is reported on the socket, never thrown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { writeCounts, writeDirect } from '../../src/io/direct-write';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pair(): Promise<{ client: net.Socket; peer: net.Socket; server: net.Server }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const got = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  const peer = await got;
  return { client, peer, server };
}

/** Block i: 1,000 bytes, each (i * 7 + j) & 0xff. */
function block(i: number): Buffer {
  const b = Buffer.alloc(1000);
  for (let j = 0; j < b.length; j++) b[j] = (i * 7 + j) & 0xff;
  return b;
}

test('writeDirect delivers every byte in order, directly while nothing is queued and through the stream under backpressure', async () => {
  const { client, peer, server } = await pair();
  client.setNoDelay(true);
  peer.pause(); // nothing is read: the kernel's buffers fill
  const before = { ...writeCounts };
  const N = 20000; // 20 MB: far beyond loopback's socket buffers
  const scratch = Buffer.alloc(1000);
  let direct = 0;
  for (let i = 0; i < N; i++) {
    // Every other block from a reused buffer (as tcpcopy's CLIENT_ADD records): changed right after the call.
    if (i % 2 === 0) {
      block(i).copy(scratch);
      if (writeDirect(client, scratch, true)) direct++;
      scratch.fill(0xee);
    } else if (writeDirect(client, block(i), false)) direct++;
  }
  const stream = writeCounts.stream - before.stream;
  assert.ok(direct > 0, 'the first writes went directly');
  assert.ok(stream > 0, 'once the kernel was full, writes went to the stream');
  assert.equal(writeCounts.direct - before.direct, direct, 'writeDirect returns true exactly for direct writes');
  const chunks: Buffer[] = [];
  let total = 0;
  peer.on('data', (c: Buffer) => { chunks.push(c); total += c.length; });
  peer.resume();
  for (let t = 0; t < 20000 && total < N * 1000; t += 20) await wait(20);
  const all = Buffer.concat(chunks);
  assert.equal(all.length, N * 1000, 'every byte arrived');
  for (let i = 0; i < N; i++) {
    const want = block(i);
    if (!all.subarray(i * 1000, (i + 1) * 1000).equals(want)) assert.fail(`block ${i} differs (direct ${direct}, stream ${stream})`);
  }
  client.destroy(); peer.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

test('a write to a connection the peer reset is reported on the socket, not thrown', async () => {
  const { client, peer, server } = await pair();
  const errors: string[] = [];
  client.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
  peer.resetAndDestroy();
  await wait(100);
  for (let i = 0; i < 50 && errors.length === 0 && !client.destroyed; i++) {
    assert.doesNotThrow(() => writeDirect(client, block(i), false));
    await wait(10);
  }
  assert.ok(errors.length > 0 || client.destroyed, `the socket reported the broken connection (${errors.join(',')})`);
  assert.doesNotThrow(() => writeDirect(client, block(0), false), 'nor after it was destroyed');
  client.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});
