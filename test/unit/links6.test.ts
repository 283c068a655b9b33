/**
 * tcpcopy's control links and IPv6 after a reconnect: the link is up before intercept's
 * capability answer comes, so CLIENT_ADD6 cannot go yet; live IPv6 sessions are registered
 * again once the answer arrives (onLinkCapabilities), IPv4 ones when the link is up. A fake
 * intercept on 127.0.0.1 answers each connection's announcement late, as a loaded one may.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import pino from 'pino';
import { waitFor } from '../../lab/daemons';
import {
  CAPABILITY_ANSWER_SIZE, CLIENT_ADD6_SIZE, CLIENT_RECORD_SIZE, Capability, ClientRec, MsgType, versionCapabilities, writeCapabilityAnswer,
} from '../../src/control/records';
import { InterceptLink, InterceptLinks, ReplyConsumer } from '../../src/tcpcopy/links';
import { parseIpv6 } from '../../src/wire/ipv6';

/** Polls every 5 ms for up to 3 s. */
const until = (fn: () => boolean) => waitFor(fn, 3000, 5);

/** A fake intercept: answers each announcement after `delayMs`; keeps what each connection sent after its version record. */
function fakeIntercept(delayMs: number) {
  const conns: { sock: net.Socket; data: Buffer[] }[] = [];
  const server = net.createServer((sock) => {
    const c = { sock, data: [] as Buffer[] };
    conns.push(c);
    let have = Buffer.alloc(0);
    let answered = false;
    sock.on('data', (d) => {
      if (answered) { c.data.push(d); return; }
      have = Buffer.concat([have, d]);
      if (have.length < CLIENT_RECORD_SIZE) return;
      answered = true;
      const caps = versionCapabilities(have, 0);
      if (have.length > CLIENT_RECORD_SIZE) c.data.push(have.subarray(CLIENT_RECORD_SIZE));
      setTimeout(() => {
        const a = Buffer.alloc(CAPABILITY_ANSWER_SIZE);
        writeCapabilityAnswer(a, 0, caps & Capability.Ipv6);
        if (!sock.destroyed) sock.write(a);
      }, delayMs);
    });
    sock.on('error', () => { /* closed by the test */ });
  });
  return { server, conns };
}

test('after a reconnect: IPv4 routes go when the link is up, IPv6 ones (CLIENT_ADD6) once the capability answer came', async () => {
  const { server, conns } = fakeIntercept(80);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const events: string[] = [];
  const c6 = parseIpv6('2001:2:0:1::10')!, t6 = parseIpv6('2001:2::30')!;
  let links!: InterceptLinks;
  let add6AtUp: boolean | null = null;
  let add6AtAnswer: boolean | null = null;
  const consumer: ReplyConsumer = {
    onReply: () => {},
    afterReplies: () => {},
    onLinkUp: (_l: InterceptLink, again: boolean) => {
      events.push(`up ${again}`);
      // What re-announcing here would do: CLIENT_ADD6 cannot go before the answer.
      if (again) add6AtUp = links.clientAdd6(c6, 40000, t6, 8080);
      if (again) links.clientAdd(0xc6120110, 40001, 0xc612001e, 8080);
    },
    onLinkCapabilities: (_l: InterceptLink, again: boolean, caps: number) => {
      events.push(`caps ${again} ${caps}`);
      if (again) add6AtAnswer = links.clientAdd6(c6, 40000, t6, 8080);
    },
  };
  links = new InterceptLinks([{ host: '127.0.0.1', port }], 1, { combined: true, payload: false }, consumer, pino({ level: 'silent' }), () => {});
  links.awaitCapabilities = true;
  try {
    assert.equal(await links.connect(), 1);
    assert.deepEqual(events, ['up false', `caps false ${Capability.Ipv6}`], 'connect waited for the answer');
    // intercept drops the connection (restart); tcpcopy reconnects after its back-off.
    conns[0].sock.destroy();
    assert.ok(await until(() => events.length === 4), events.join(', '));
    assert.deepEqual(events.slice(2), ['up true', `caps true ${Capability.Ipv6}`]);
    assert.equal(add6AtUp, false, 'at link-up the answer has not come: CLIENT_ADD6 is refused');
    assert.equal(add6AtAnswer, true, 'once it came, CLIENT_ADD6 goes');
    assert.ok(await until(() => Buffer.concat(conns[1]?.data ?? []).length >= CLIENT_RECORD_SIZE + CLIENT_ADD6_SIZE));
    const got = Buffer.concat(conns[1].data);
    assert.equal(got.length, CLIENT_RECORD_SIZE + CLIENT_ADD6_SIZE, 'one CLIENT_ADD, one CLIENT_ADD6, in that order');
    assert.equal(got.readUInt16BE(ClientRec.Type), MsgType.ClientAdd);
    assert.equal(got.readUInt16BE(CLIENT_RECORD_SIZE + ClientRec.Type), MsgType.ClientAdd6);
    assert.ok(got.subarray(CLIENT_RECORD_SIZE).includes(c6) && got.subarray(CLIENT_RECORD_SIZE).includes(t6), 'the CLIENT_ADD6 carries both addresses');
  } finally {
    links.close();
    for (const c of conns) c.sock.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
