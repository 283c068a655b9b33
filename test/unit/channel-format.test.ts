/**
 * The channel format in the capability exchange: each side says its own (--payload,
 * --no-combined), which is not negotiated, so that a mismatch is named instead of decoded as
 * garbage. A fake intercept on 127.0.0.1 answers with a format of the test's choosing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import pino from 'pino';
import {
  CAPABILITY_ANSWER_SIZE, CLIENT_RECORD_SIZE, Capability, ChannelFormat, formatCapabilities, formatMismatch, negotiatedCapabilities,
  versionCapabilities, writeCapabilityAnswer,
} from '../../src/control/records';
import { InterceptLinks, ReplyConsumer } from '../../src/tcpcopy/links';

const DEFAULT: ChannelFormat = { combined: true, payload: false };

test('format bits: each format has its own, a difference names the flag, an earlier build or the original says nothing', () => {
  const all: ChannelFormat[] = [DEFAULT, { combined: true, payload: true }, { combined: false, payload: false }, { combined: false, payload: true }];
  const bits = all.map(formatCapabilities);
  assert.equal(new Set(bits).size, 4);
  for (let i = 0; i < all.length; i++) {
    for (let j = 0; j < all.length; j++) {
      const m = formatMismatch(all[i], bits[j] | Capability.Ipv6, 'intercept');
      assert.equal(m === null, i === j, `${JSON.stringify(all[i])} against ${JSON.stringify(all[j])}: ${m}`);
    }
  }
  assert.match(formatMismatch(DEFAULT, formatCapabilities({ combined: true, payload: true }), 'intercept')!,
    /intercept runs with --payload and this tcpcopy without it.*same --payload and --no-combined/);
  assert.match(formatMismatch({ combined: false, payload: false }, formatCapabilities(DEFAULT), 'tcpcopy')!,
    /tcpcopy runs without --no-combined and this intercept with it/);
  // No FormatKnown (an earlier build of ours), or no answer at all (the original): no verdict.
  assert.equal(formatMismatch({ combined: false, payload: true }, Capability.Ipv6, 'intercept'), null);
  assert.equal(formatMismatch({ combined: false, payload: true }, -1, 'tcpcopy'), null);
  assert.equal(negotiatedCapabilities(formatCapabilities({ combined: false, payload: true }) | Capability.Ipv6), Capability.Ipv6);
  assert.equal(negotiatedCapabilities(-1), -1);
});

/** A fake intercept that answers every announcement with `format`'s bits (and IPv6 when announced). */
async function fakeIntercept(format: ChannelFormat) {
  const socks: net.Socket[] = [];
  const announced: number[] = [];
  const server = net.createServer((sock) => {
    socks.push(sock);
    let have = Buffer.alloc(0);
    sock.on('data', (d) => {
      if (have.length >= CLIENT_RECORD_SIZE) return;
      have = Buffer.concat([have, d]);
      if (have.length < CLIENT_RECORD_SIZE) return;
      const caps = versionCapabilities(have, 0);
      announced.push(caps);
      const a = Buffer.alloc(CAPABILITY_ANSWER_SIZE);
      writeCapabilityAnswer(a, 0, (caps & Capability.Ipv6) | formatCapabilities(format));
      sock.write(a);
    });
    sock.on('error', () => { /* closed by the test */ });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, socks, announced, port: (server.address() as net.AddressInfo).port };
}

const consumer: ReplyConsumer = { onReply: () => {}, afterReplies: () => {}, onLinkUp: () => {} };

test('tcpcopy announces its format, and drops an intercept whose answer says another one', async () => {
  for (const [theirs, ok] of [[DEFAULT, true], [{ combined: true, payload: true }, false], [{ combined: false, payload: false }, false]] as const) {
    const f = await fakeIntercept(theirs);
    const errors: string[] = [];
    const log = pino({ level: 'error' }, { write: (line: string) => { errors.push(String(JSON.parse(line).msg)); } });
    const links = new InterceptLinks([{ host: '127.0.0.1', port: f.port }], 2, DEFAULT, consumer, log, () => {});
    try {
      const up = await links.connect();
      assert.deepEqual(f.announced.map((c) => c & ~Capability.Ipv6), [formatCapabilities(DEFAULT), formatCapabilities(DEFAULT)],
        'each connection announces our format');
      assert.equal(up, ok ? 1 : 0, `against ${JSON.stringify(theirs)}`);
      assert.equal(links.links[0].formatError === '', ok);
      if (!ok) {
        assert.equal(errors.length, 1, `said once for the intercept, not per connection: ${errors.join(' | ')}`);
        assert.match(errors[0], /record format differs: intercept runs (with --payload|with --no-combined)/);
      } else {
        assert.deepEqual(errors, []);
      }
    } finally {
      links.close();
      for (const s of f.socks) s.destroy();
      await new Promise<void>((r) => f.server.close(() => r()));
    }
  }
});
