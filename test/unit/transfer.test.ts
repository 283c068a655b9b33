import { test } from 'node:test';
import assert from 'node:assert/strict';

import { TransferTable, TransferRule, mix32 } from '../../src/tcpcopy/transfer';
import { parseTransfer, TransferSyntaxError, parseClientAddresses } from '../../src/cli/addresses';
import { parseIp } from '../../src/wire/ipv4';

const ip = (s: string): number => {
  const v = parseIp(s);
  assert.ok(v >= 0, s);
  return v;
};

function syntaxError(spec: string): TransferSyntaxError {
  try {
    parseTransfer(spec);
  } catch (e) {
    assert.ok(e instanceof TransferSyntaxError, `${spec}: a TransferSyntaxError, got ${String(e)}`);
    assert.ok(e instanceof Error);
    return e;
  }
  assert.fail(`'${spec}' was accepted`);
}

test('parseTransfer: the original\'s examples', () => {
  const [r] = parseTransfer('80-192.168.0.2:8080');
  assert.equal(r.index, 0);
  assert.equal(r.onlineIp, 0);
  assert.equal(r.onlinePort, 80);
  assert.equal(r.targetIp, ip('192.168.0.2'));
  assert.equal(r.targetPort, 8080);
  assert.equal(r.targetIpText, '192.168.0.2');
  assert.equal(r.srcMac, null);
  assert.equal(r.dstMac, null);
  assert.equal(r.toString(), '80-192.168.0.2:8080');

  const rs = parseTransfer('10.0.0.1:80-192.168.0.2:8080,8443-192.168.0.3:443');
  assert.equal(rs.length, 2);
  assert.deepEqual(rs.map((x) => [x.index, x.onlineIp, x.onlinePort, x.targetIp, x.targetPort]), [
    [0, ip('10.0.0.1'), 80, ip('192.168.0.2'), 8080],
    [1, 0, 8443, ip('192.168.0.3'), 443],
  ]);
  assert.equal(rs[0].toString(), '10.0.0.1:80-192.168.0.2:8080');
  assert.equal(rs[1].toString(), '8443-192.168.0.3:443');

  const [m] = parseTransfer('80@00:13:21:B2:5E:42-121.55.111.148:18080@00:0F:1F:03:F2:E6');
  assert.equal(m.onlinePort, 80);
  assert.equal(m.onlineIp, 0);
  assert.equal(m.targetIp, ip('121.55.111.148'));
  assert.equal(m.targetPort, 18080);
  assert.deepEqual(m.srcMac, Buffer.from([0x00, 0x13, 0x21, 0xb2, 0x5e, 0x42]));
  assert.deepEqual(m.dstMac, Buffer.from([0x00, 0x0f, 0x1f, 0x03, 0xf2, 0xe6]));

  // Spaces around items, and an address with a MAC on both sides.
  const sp = parseTransfer(' 80-10.0.0.2:80 , 10.0.0.1:81@aa:bb:cc:dd:ee:ff-10.0.0.3:82@11:22:33:44:55:66');
  assert.equal(sp.length, 2);
  assert.equal(sp[1].onlineIp, ip('10.0.0.1'));
  assert.equal(sp[1].onlinePort, 81);
  assert.equal(sp[1].targetPort, 82);
  assert.deepEqual(sp[1].dstMac, Buffer.from([0x11, 0x22, 0x33, 0x44, 0x55, 0x66]));
  // Port bounds.
  assert.equal(parseTransfer('1-1.2.3.4:65535')[0].targetPort, 65535);
});

test('parseTransfer: errors name the item position', () => {
  const cases: Array<[string, number, RegExp?]> = [
    ['80-192.168.0.2', 1],
    ['80:8080', 1],
    ['x-1.2.3.4:80', 1, /x/],
    ['80-1.2.3.4:70000', 1, /70000/],
    ['80-1.2.3.4:0', 1],
    ['0-1.2.3.4:80', 1],
    ['80-1.2.3.4:', 1],
    ['80-1.2.3:80', 1, /1\.2\.3/],
    ['80-256.1.1.1:80', 1],
    ['1.2.3.400:80-1.2.3.4:80', 1],
    ['80@00:13:21:B2:5E:42-121.55.111.148:18080', 1, /MAC/],
    ['80-121.55.111.148:18080@00:0F:1F:03:F2:E6', 1, /MAC/],
    ['80@00:13:21:B2:5E-121.55.111.148:18080@00:0F:1F:03:F2:E6', 1],
    ['', 1, /empty/],
    ['80-1.2.3.4:80,', 2, /empty/],
    [',80-1.2.3.4:80', 1, /empty/],
    ['80-1.2.3.4:80,,81-1.2.3.4:81', 2, /empty/],
    ['80-1.2.3.4:80,81-1.2.3.4:81,82-1.2.3.4', 3],
    ['80-1.2.3.4:80,81-1.2.3.4:81,82:83', 3],
    ['80-1.2.3.4:80,x-1.2.3.4:80', 2, /x/],
    ['80-1.2.3.4:80,81-1.2.3.4:99999', 2],
    ['80-1.2.3.4:80,81-1.2.3.4:8a', 2],
  ];
  for (const [spec, pos, re] of cases) {
    const e = syntaxError(spec);
    assert.equal(e.position, pos, `'${spec}' position`);
    assert.equal(e.name, 'TransferSyntaxError');
    assert.match(e.message, new RegExp(`item ${pos}\\b`), `'${spec}': ${e.message}`);
    if (re) assert.match(e.message, re, `'${spec}': ${e.message}`);
  }
  assert.equal(syntaxError('80-1.2.3.4:80,81-1.2.3.4:99999').item, '81-1.2.3.4:99999');
});

/** A rule built directly: the table must cope with any list, shadowed items included. */
function rule(i: number, online: string, port: number, target: string, tport: number): TransferRule {
  return new TransferRule(i, online ? ip(online) : 0, port, ip(target), tport, null, null);
}

test('TransferTable.match: first match in -x order, IP-specific and any', () => {
  const rules = [rule(0, '10.0.0.1', 80, '192.168.0.2', 8080), rule(1, '', 80, '192.168.0.3', 8080),
    rule(2, '10.0.0.2', 80, '192.168.0.4', 8080), rule(3, '', 443, '192.168.0.5', 443)];
  const t = new TransferTable(rules);
  assert.equal(t.match(ip('10.0.0.1'), 80), rules[0], 'specific address first');
  assert.equal(t.match(ip('10.0.0.2'), 80), rules[1], 'the catch-all comes before the later specific rule');
  assert.equal(t.match(ip('10.9.9.9'), 80), rules[1]);
  assert.equal(t.match(ip('10.0.0.1'), 443), rules[3]);
  assert.equal(t.match(ip('10.0.0.1'), 8080), null, 'target ports are not online ports');
  assert.equal(t.match(ip('10.0.0.1'), 81), null);
  assert.equal(t.targetLocalhost, false);

  // Only specific rules: other addresses do not match.
  const only = new TransferTable(parseTransfer('10.0.0.1:80-192.168.0.2:8080,10.0.0.2:80-192.168.0.3:8080'));
  assert.equal(only.match(ip('10.0.0.2'), 80)?.targetIp, ip('192.168.0.3'));
  assert.equal(only.match(ip('10.0.0.3'), 80), null);
  // Two catch-alls on one port: the first wins.
  const two = new TransferTable([rule(0, '', 80, '1.1.1.1', 1), rule(1, '', 80, '2.2.2.2', 2)]);
  assert.equal(two.match(ip('5.5.5.5'), 80)?.targetIp, ip('1.1.1.1'));
  assert.equal(new TransferTable(parseTransfer('80-127.0.0.1:8080')).targetLocalhost, true);
});

test('parseTransfer refuses an item that an earlier one shadows (it could never match)', () => {
  for (const [spec, item, by] of [
    ['80-1.1.1.1:1,80-2.2.2.2:2', 2, 1],
    ['10.0.0.1:80-192.168.0.2:8080,80-192.168.0.3:8080,10.0.0.2:80-192.168.0.4:8080', 3, 2],
    ['10.0.0.1:80-1.1.1.1:1,10.0.0.1:80-2.2.2.2:2', 2, 1],
  ] as const) {
    assert.throws(() => parseTransfer(spec), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, new RegExp(`item ${item} .*can never match: item ${by} `));
      assert.equal((e as { code?: string }).code, 'bad-flag');
      return true;
    }, spec);
  }
  // A specific address before the catch-all of the same port is not shadowed: both can match.
  assert.equal(parseTransfer('10.0.0.1:80-1.1.1.1:1,80-2.2.2.2:2').length, 2);
  assert.equal(parseTransfer('10.0.0.1:80-1.1.1.1:1,10.0.0.2:80-2.2.2.2:2').length, 2);
});

test('pcapFilter', () => {
  assert.equal(new TransferTable(parseTransfer('80-192.168.0.2:8080')).pcapFilter(), 'tcp and ((dst port 80))');
  assert.equal(new TransferTable(parseTransfer('10.0.0.1:80-192.168.0.2:8080,8443-192.168.0.3:443')).pcapFilter(),
    'tcp and ((dst port 80 and dst host 10.0.0.1) or (dst port 8443))');
});

test('parseClientAddresses: ranges, lists, exclusion of targets, rejects', () => {
  const rules = parseTransfer('80-62.135.200.7:8080,81-10.0.0.9:80');
  const all = parseClientAddresses('62.135.200.x', []);
  assert.equal(all.length, 254);
  assert.equal(all[0], ip('62.135.200.1'));
  assert.equal(all[253], ip('62.135.200.254'));
  assert.equal(new Set(all).size, 254);
  assert.ok(!all.includes(ip('62.135.200.0')) && !all.includes(ip('62.135.200.255')));
  assert.equal(parseClientAddresses('62.135.200.X', []).length, 254);

  const ex = parseClientAddresses('62.135.200.x', rules);
  assert.equal(ex.length, 253);
  assert.ok(!ex.includes(ip('62.135.200.7')), 'the target address is left out');

  assert.deepEqual(parseClientAddresses('10.0.0.5, 10.0.0.9,10.0.0.6', rules), [ip('10.0.0.5'), ip('10.0.0.6')]);
  assert.deepEqual(parseClientAddresses('', rules), []);
  assert.equal(parseClientAddresses('10.0.1.x,10.0.2.1', []).length, 255);

  assert.throws(() => parseClientAddresses('62.135.200.*', []), (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, /'x'|\.x\b/);
    return true;
  });
  assert.throws(() => parseClientAddresses('10.0.0.9', rules), /no usable address/);
  assert.throws(() => parseClientAddresses('10.0.0.5,bogus', []), /bogus.*item 2/);
  assert.throws(() => parseClientAddresses('300.1.1.x', []), /300\.1\.1\.x/);
  // More than 4096 addresses.
  const many = Array.from({ length: 17 }, (_, i) => `10.0.${i}.x`).join(',');
  assert.throws(() => parseClientAddresses(many, []), /4096/);
  assert.equal(parseClientAddresses(Array.from({ length: 16 }, (_, i) => `10.0.${i}.x`).join(','), []).length, 4064);
});

test('mix32 is deterministic, 32-bit, and spreads', () => {
  assert.equal(mix32(1, 2), mix32(1, 2));
  assert.notEqual(mix32(1, 2), mix32(2, 1));
  const buckets = new Array<number>(100).fill(0);
  const seen = new Set<number>();
  for (let i = 0; i < 10000; i++) {
    const h = mix32(0x0a000000 + i, 40000);
    assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff);
    assert.equal(h, mix32(0x0a000000 + i, 40000));
    buckets[h % 100]++;
    seen.add(h);
  }
  assert.ok(buckets.every((b) => b > 0), 'every bucket non-empty');
  assert.ok(Math.max(...buckets) < 200 && Math.min(...buckets) > 40, `roughly even: ${Math.min(...buckets)}..${Math.max(...buckets)}`);
  assert.ok(seen.size > 9990, 'almost no collisions');
  // Varying only the second argument spreads too.
  const b2 = new Array<number>(100).fill(0);
  for (let p = 0; p < 10000; p++) b2[mix32(0x0a000005, p) % 100]++;
  assert.ok(b2.every((b) => b > 0));
});

test('a parsed rule prints as its -x item (round trip) and knows its position in -x', () => {
  const spec = '80-10.1.2.3:8080,10.0.0.1:443-10.1.2.4:8443,8080-10.1.2.5:80';
  const rules = parseTransfer(spec);
  assert.deepEqual(rules.map((r) => r.index), [0, 1, 2]);
  assert.equal(rules.map(String).join(','), spec);
  // What a rule prints parses back into the same rule.
  assert.deepEqual(parseTransfer(rules.map(String).join(',')), rules);
  // The rule a packet matches is the one at that position of -x.
  const table = new TransferTable(rules);
  assert.equal(table.match(ip('10.0.0.1'), 443)?.index, 1);
  assert.equal(table.match(ip('10.0.0.1'), 443)?.targetIpText, '10.1.2.4');
});
