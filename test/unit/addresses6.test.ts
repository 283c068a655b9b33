/**
 * IPv6 in the address flags: `-x` items with bracketed IPv6 beside IPv4 ones, `-c` IPv6
 * addresses and prefixes, `-s` IPv6 intercepts, intercept's `-b` and `-x` passlist, and the
 * errors that name the item and show the right form.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  hostPortText, parseAnyIp, parseClientAddresses, parseClientAddressSet, parseInterceptList, parseTransfer, TransferSyntaxError,
} from '../../src/cli/addresses';
import { interceptOptionsFrom } from '../../src/cli/intercept';
import { peerText } from '../../src/intercept/intercept';
import { TransferTable } from '../../src/tcpcopy/transfer';
import { ipv6ToString, parseIpv6 } from '../../src/wire/ipv6';
import { parseIp } from '../../src/wire/ipv4';
import { UsageError } from '../../src/errors';

const v6 = (s: string): Buffer => {
  const b = parseIpv6(s);
  assert.ok(b, s);
  return b!;
};

test('-x: IPv6 items in brackets, beside IPv4 items', () => {
  const [a] = parseTransfer('80-[2001:db8::2]:8080');
  assert.equal(a.family, 6);
  assert.equal(a.onlineIp6, null);
  assert.equal(a.hasOnlineIp, false);
  assert.deepEqual(a.targetIp6, v6('2001:db8::2'));
  assert.equal(a.targetIpText, '2001:db8::2');
  assert.equal(a.targetIp, 0);
  assert.equal(a.targetPort, 8080);
  assert.equal(String(a), '80-[2001:db8::2]:8080');

  const [b] = parseTransfer('[2001:DB8:0:0::1]:80-[2001:db8:0::2]:8080');
  assert.deepEqual(b.onlineIp6, v6('2001:db8::1'));
  assert.equal(b.onlineIpText, '2001:db8::1');
  assert.equal(String(b), '[2001:db8::1]:80-[2001:db8::2]:8080', 'canonical text');

  // One IPv4 and one IPv6 item for the same port: each takes its own family's packets.
  const rs = parseTransfer('80-198.18.0.30:8080, 80-[2001:2::30]:8080,[2001:2::1]:443-[2001:2::31]:443');
  assert.deepEqual(rs.map((r) => r.family), [4, 6, 6]);
  const t = new TransferTable(rs);
  assert.equal(t.hasIpv6, true);
  assert.equal(t.match(parseIp('198.18.0.1'), 80), rs[0]);
  assert.equal(t.match(parseIp('198.18.0.1'), 443), null, 'an IPv6 rule never matches an IPv4 packet');
  const pkt = Buffer.concat([Buffer.alloc(3), v6('2001:2::1')]);
  assert.equal(t.match6(pkt, 3, 80), rs[1]);
  assert.equal(t.match6(pkt, 3, 443), rs[2]);
  assert.equal(t.match6(Buffer.concat([Buffer.alloc(3), v6('2001:2::2')]), 3, 443), null, 'another online address');
  assert.equal(t.match6(pkt, 3, 8080), null);
  assert.equal(new TransferTable(parseTransfer('80-198.18.0.30:8080')).match6(pkt, 3, 80), null, 'an IPv4 rule never matches an IPv6 packet');
  assert.equal(new TransferTable(parseTransfer('80-198.18.0.30:8080')).hasIpv6, false);
  assert.equal(t.pcapFilter(), 'tcp and ((dst port 80) or (dst port 80) or (dst port 443 and dst host 2001:2::1))');

  // MACs on both sides of an IPv6 item (-o link-layer output).
  const [m] = parseTransfer('[2001:2::1]:80@aa:bb:cc:dd:ee:ff-[2001:2::30]:8080@11:22:33:44:55:66');
  assert.deepEqual(m.srcMac, Buffer.from([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
  assert.deepEqual(m.dstMac, Buffer.from([0x11, 0x22, 0x33, 0x44, 0x55, 0x66]));
  assert.deepEqual(m.targetIp6, v6('2001:2::30'));

  // IPv4 items parse exactly as before.
  const [o] = parseTransfer('10.0.0.1:80-192.168.0.2:8080');
  assert.equal(o.family, 4);
  assert.equal(o.onlineIp, parseIp('10.0.0.1'));
  assert.equal(o.targetIpText, '192.168.0.2');
  assert.equal(o.onlineIp6, null);
  assert.equal(o.targetIp6, null);
  assert.equal(String(o), '10.0.0.1:80-192.168.0.2:8080');
});

test('-x: IPv6 errors name the item and show the bracketed form', () => {
  const cases: [string, number, RegExp][] = [
    ['80-2001:db8::2:8080', 1, /IPv6 target goes in brackets before its port, e\.g\. \[2001:db8::2\]:8080/],
    ['80-[2001:db8::2]', 1, /needs an address and a port/],
    ['80-[2001:db8::2]:', 1, /needs an address and a port/],
    ['80-[2001:db8::2:8080', 1, /'\[' without its '\]'/],
    ['80-[2001:db8::2]8080', 1, /'8080' after '\]'/],
    ['80-[10.0.0.2]:8080', 1, /brackets are for IPv6/],
    ['80-[2001:db8::zz]:8080', 1, /'2001:db8::zz' is not an IPv6 address/],
    ['80-[2001:db8::2]:70000', 1, /outside 1\.\.65535/],
    ['[2001:db8::1]:80-10.0.0.2:8080', 1, /online address is IPv6 and the target IPv4/],
    ['10.0.0.1:80-[2001:db8::2]:8080', 1, /online address is IPv4 and the target IPv6/],
    ['2001:db8::1:80-[2001:db8::2]:8080', 1, /IPv6 online address goes in brackets before its port, e\.g\. \[2001:db8::1\]:80/],
    ['[2001:db8::1]-[2001:db8::2]:8080', 1, /online port '' is not a port number/],
    ['[10.0.0.1]:80-[2001:db8::2]:8080', 1, /brackets are for IPv6/],
    ['80-10.0.0.2:8080,81-[2001:db8::2]:0', 2, /outside 1\.\.65535/],
  ];
  for (const [spec, pos, re] of cases) {
    assert.throws(() => parseTransfer(spec), (e: unknown) => {
      assert.ok(e instanceof TransferSyntaxError, `${spec}: ${String(e)}`);
      assert.equal(e.position, pos, spec);
      assert.match(e.message, new RegExp(`item ${pos}\\b`), spec);
      assert.match(e.message, re, `${spec}: ${e.message}`);
      assert.match(e.message, /80-\[2001:db8::2\]:8080/, 'the message shows the IPv6 form');
      return true;
    });
  }
});

test('-x: shadowed IPv6 items are refused, within a family only', () => {
  const shadowed = [
    '80-[2001:db8::2]:8080,80-[2001:db8::3]:8080',
    '80-[2001:db8::2]:8080,[2001:db8::1]:80-[2001:db8::3]:8080',
    '[2001:db8::1]:80-[2001:db8::2]:8080,[2001:db8:0::1]:80-[2001:db8::3]:8080',
  ];
  for (const spec of shadowed) {
    assert.throws(() => parseTransfer(spec), (e: unknown) => e instanceof UsageError && /can never match/.test(e.message) && /\[2001:db8::1\]:80-/.test(e.message), spec);
  }
  assert.equal(parseTransfer('[2001:db8::1]:80-[2001:db8::2]:1,80-[2001:db8::3]:2').length, 2);
  assert.equal(parseTransfer('[2001:db8::1]:80-[2001:db8::2]:1,[2001:db8::4]:80-[2001:db8::3]:2').length, 2);
  assert.equal(parseTransfer('80-10.0.0.2:1,80-[2001:db8::3]:2').length, 2);
  assert.equal(parseTransfer('80-[2001:db8::3]:2,80-10.0.0.2:1').length, 2);
});

test('-c: IPv6 addresses and prefixes beside IPv4 ones; targets left out', () => {
  const rules = parseTransfer('80-198.18.0.30:8080,81-[2001:2::30]:8080');
  const s = parseClientAddressSet('198.18.2.1, 2001:2:0:2::5,2001:2::30', rules);
  assert.deepEqual(s.v4, [parseIp('198.18.2.1')]);
  assert.deepEqual(s.v6.map((b) => ipv6ToString(b)), ['2001:2:0:2::5'], 'the target address is left out');
  const p120 = parseClientAddressSet('2001:2:0:2::/120', rules).v6;
  assert.equal(p120.length, 255, '/120 without its all-zeros address');
  assert.equal(ipv6ToString(p120[0]), '2001:2:0:2::1');
  assert.equal(ipv6ToString(p120[254]), '2001:2:0:2::ff');
  assert.equal(new Set(p120.map((b) => b.toString('hex'))).size, 255);
  const p116 = parseClientAddressSet('2001:2:0:2::1000/116', rules).v6;
  assert.equal(p116.length, 4095);
  assert.equal(ipv6ToString(p116[0]), '2001:2:0:2::1001');
  assert.equal(ipv6ToString(p116[4094]), '2001:2:0:2::1fff');
  assert.deepEqual(parseClientAddressSet('2001:2::7/126', rules).v6.map((b) => ipv6ToString(b)), ['2001:2::5', '2001:2::6', '2001:2::7']);
  assert.deepEqual(parseClientAddressSet('2001:2::7/127', rules).v6.map((b) => ipv6ToString(b)), ['2001:2::6', '2001:2::7']);
  assert.deepEqual(parseClientAddressSet('2001:2::7/128', rules).v6.map((b) => ipv6ToString(b)), ['2001:2::7']);
  assert.deepEqual(parseClientAddressSet('2001:2::/126', rules).v6.map((b) => ipv6ToString(b)), ['2001:2::1', '2001:2::2', '2001:2::3']);
  // The IPv4 forms are as before.
  assert.equal(parseClientAddressSet('198.18.3.x', rules).v4.length, 254);
  for (const [spec, re] of [
    ['2001:2::/64', /prefix of length 116 to 128; write e\.g\. -c 2001:db8::\/120/],
    ['2001:2::/129', /prefix of length 116/],
    ['2001:2::/x', /prefix of length 116/],
    ['198.18.0.0/24', /not an IPv6 prefix/],
    ['2001:2::zz', /not an IPv4 or IPv6 address; .*-c 2001:db8::5/],
    ['2001:2::/120,2001:2:0:1::/116,2001:2:0:2::/116', /at most 4096/],
    ['2001:2::30', /no usable address/],
  ] as [string, RegExp][]) {
    assert.throws(() => parseClientAddressSet(spec, rules), (e: unknown) => e instanceof UsageError && re.test(e.message), spec);
  }
  // The IPv4-only entry point says why it refuses IPv6 items.
  assert.deepEqual(parseClientAddresses('198.18.2.1', rules), [parseIp('198.18.2.1')]);
  assert.deepEqual(parseClientAddresses('198.18.2.1,2001:2::5', rules), [parseIp('198.18.2.1')], 'the IPv4 part (IPv6 ones go to clientAddrs6)');
});

test('-s: IPv6 intercepts, bracketed with a port, bare without', () => {
  const l = parseInterceptList('198.18.0.40, [2001:2::40]:36525,2001:2:0:0::41,[2001:2::42],2001:2::', 36524);
  assert.deepEqual(l, [
    { host: '198.18.0.40', port: 36524 },
    { host: '2001:2::40', port: 36525 },
    { host: '2001:2::41', port: 36524 },
    { host: '2001:2::42', port: 36524 },
    { host: '2001:2::', port: 36524 },
  ]);
  assert.equal(hostPortText('2001:2::40', 36525), '[2001:2::40]:36525');
  assert.equal(hostPortText('198.18.0.40', 36524), '198.18.0.40:36524');
  for (const [spec, re] of [
    ['[2001:2::40]:0', /bad port/],
    ['[2001:2::40]:', /bad port/],
    ['198.18.0.40:', /bad port/],
    ['[2001:2::40]:x', /bad port/],
    ['[198.18.0.40]:1', /brackets are for IPv6/],
    ['[2001:2::40', /without its/],
    ['2001:2::zz', /not an IPv4 or IPv6 address; write e\.g\. .*-s \[2001:db8::3\]:36524/],
    ['198.18.0.40,host', /'host' \(item 2\)/],
  ] as [string, RegExp][]) {
    assert.throws(() => parseInterceptList(spec, 36524), (e: unknown) => e instanceof UsageError && re.test(e.message), `${spec}`);
  }
});

test('intercept -b and -x take IPv6; the passlist compares canonical text; IPv4-mapped peers are IPv4', () => {
  const base = { filter: 'tcp', device: 'any', port: 36524, batch: 0, routes: 65536, routeTimeout: 120, buffer: 4, hold: 30, combined: true, maxConns: 64, maxBacklog: 4096 };
  const o = interceptOptionsFrom({ ...base, bind: '[2001:2:0:0::40]', passlist: '198.18.0.10, 2001:2:0::10,::ffff:198.18.0.11' } as never);
  assert.equal(o.bindAddress, '2001:2::40');
  assert.deepEqual(o.passlist, ['198.18.0.10', '2001:2::10', '198.18.0.11']);
  assert.equal(interceptOptionsFrom({ ...base, bind: '::' } as never).bindAddress, '::');
  assert.equal(interceptOptionsFrom({ ...base, bind: '198.18.0.40' } as never).bindAddress, '198.18.0.40');
  assert.equal(peerText('::ffff:198.18.0.10'), '198.18.0.10');
  assert.equal(peerText('2001:2:0:0:0:0:0:10'), '2001:2::10');
  assert.equal(peerText('198.18.0.10'), '198.18.0.10');
  assert.deepEqual(parseAnyIp('2001:2::1'), { family: 6, v4: 0, v6: v6('2001:2::1') });
  assert.deepEqual(parseAnyIp('198.18.0.1'), { family: 4, v4: parseIp('198.18.0.1'), v6: null });
  assert.equal(parseAnyIp('nohost'), null);
});
