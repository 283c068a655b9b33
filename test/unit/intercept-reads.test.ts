/**
 * intercept's reads of control connections: each accepted connection moves to a socket that
 * reads into one reused buffer (adoptSocket). Records cut anywhere across reads, from several
 * connections at once, are all decoded; garbage still closes its connection with the decoder's
 * reason; and the server still counts its connections right (close() resolves).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import pino from 'pino';
import { CLIENT_RECORD_SIZE, MsgType, writeClientRecord, writeVersionRecord } from '../../src/control/records';
import { DEFAULT_INTERCEPT_OPTIONS, Intercept } from '../../src/intercept/intercept';
import { parseIp } from '../../src/wire/ipv4';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TARGET = parseIp('198.18.0.30');

async function until(what: () => boolean, ms = 3000): Promise<boolean> {
  for (let t = 0; t < ms && !what(); t += 10) await wait(10);
  return what();
}

/** The version record and `n` CLIENT_ADD records of client 198.18.1.`host`, ports from 20000. */
function stream(host: number, n: number): Buffer {
  const b = Buffer.alloc(CLIENT_RECORD_SIZE * (n + 1));
  writeVersionRecord(b, 0);
  for (let i = 0; i < n; i++) writeClientRecord(b, CLIENT_RECORD_SIZE * (i + 1), MsgType.ClientAdd, parseIp(`198.18.1.${host}`), 20000 + i, TARGET, 8080);
  return b;
}

test('control reads: records cut at every length across reads, from three connections, all decoded; garbage closes only its connection', async () => {
  const icpt = new Intercept({ ...DEFAULT_INTERCEPT_OPTIONS, port: 0, bindAddress: '127.0.0.1' }, pino({ level: 'silent' }));
  const { port } = await icpt.listen();
  const socks: net.Socket[] = [];
  try {
    const open = async () => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.setNoDelay(true);
      s.on('error', () => {});
      await new Promise<void>((r) => s.once('connect', () => r()));
      socks.push(s);
      return s;
    };
    const [a, b, c] = [await open(), await open(), await open()];
    assert.ok(await until(() => icpt.tunnels.size === 3), 'three tunnels');
    for (const t of icpt.tunnels) assert.equal(t.adopted, true, 'each connection reads into the shared buffer');
    // a: pieces of 1..13 bytes, each its own write (and read); b: one write; c: pieces of 29 bytes.
    const sa = stream(10, 60), sb = stream(11, 60), sc = stream(12, 60);
    b.write(sb);
    for (let i = 0, j = 0, k = 1; i < sa.length || j < sc.length; k = (k % 13) + 1) {
      if (i < sa.length) a.write(sa.subarray(i, i + k));
      if (j < sc.length) c.write(sc.subarray(j, j + 29));
      i += k;
      j += 29;
      await wait(1);
    }
    assert.ok(await until(() => icpt.routes.size === 180), `routes: ${icpt.routes.size} of 180`);
    const st = icpt.snapshot() as Record<string, number>;
    assert.equal(st.clientAdds, 180);
    // Garbage on one connection (a version record with an address: a pre-version peer) closes it, not the others.
    const d = await open();
    assert.ok(await until(() => icpt.tunnels.size === 4));
    const bad = Buffer.alloc(CLIENT_RECORD_SIZE);
    writeClientRecord(bad, 0, MsgType.ClientAdd, parseIp('198.18.1.99'), 1, TARGET, 8080);
    d.write(bad);
    assert.ok(await until(() => icpt.tunnels.size === 3), 'the garbled connection is closed');
    a.write(Buffer.from(stream(10, 61).subarray(CLIENT_RECORD_SIZE * 61)));
    assert.ok(await until(() => icpt.routes.size === 181), 'the others still read');
  } finally {
    for (const s of socks) s.destroy();
    // Resolves only when the server counts no connection left (the accepted sockets' handles moved).
    const closed = await Promise.race([icpt.close().then(() => true), wait(5000).then(() => false)]);
    assert.equal(closed, true, 'close() resolved');
  }
});
