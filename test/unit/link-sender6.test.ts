/**
 * `-o` over IPv6, the parts that need no device: the IPv6 neighbour table read from
 * `ip -6 neigh show` output, and the message when a target's MAC is unknown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNeigh6, unknownMacMessage } from '../../src/io/link-sender';

const TABLE = [
  'fe80::1 lladdr 02:00:00:00:00:01 router STALE',
  '2001:2::31 FAILED',
  '2001:2::32 INCOMPLETE',
  '2001:2::30 lladdr 6a:1f:2b:3c:4d:5e REACHABLE',
  '2001:2::33 lladdr 00:00:00:00:00:00 NOARP',
  '2001:2::34 lladdr 02:aa:bb:cc:dd:ee FAILED',
  '',
].join('\n');

test('the IPv6 neighbour table: the lladdr of the address asked for, in any text form; none while resolving or failed', () => {
  assert.deepEqual(parseNeigh6(TABLE, '2001:2::30'), Buffer.from([0x6a, 0x1f, 0x2b, 0x3c, 0x4d, 0x5e]));
  assert.deepEqual(parseNeigh6(TABLE, '2001:0002:0000:0000:0000:0000:0000:0030'), Buffer.from('6a1f2b3c4d5e', 'hex'), 'compared as bytes');
  assert.deepEqual(parseNeigh6(TABLE, 'FE80::1'), Buffer.from('020000000001', 'hex'), 'a router entry too');
  assert.equal(parseNeigh6(TABLE, '2001:2::31'), null, 'FAILED: no lladdr');
  assert.equal(parseNeigh6(TABLE, '2001:2::32'), null, 'INCOMPLETE: still resolving');
  assert.equal(parseNeigh6(TABLE, '2001:2::33'), null, 'an all-zero MAC is no MAC');
  assert.equal(parseNeigh6(TABLE, '2001:2::34'), null, 'a failed entry keeps an old lladdr: not used');
  assert.equal(parseNeigh6(TABLE, '2001:2::3'), null, 'no prefix match');
  assert.equal(parseNeigh6(TABLE, 'not-an-address'), null);
  assert.equal(parseNeigh6('', '2001:2::30'), null);
});

test('an unknown MAC: the -x form with MACs and how to make the kernel learn it, per family', () => {
  const m6 = unknownMacMessage('eth1', '2001:db8::2', '80@aa:bb:cc:dd:ee:01-[2001:db8::2]:8080@aa:bb:cc:dd:ee:ff');
  assert.match(m6, /^-o eth1: the MAC address of 2001:db8::2 is unknown; give it in -x \(80@aa:bb:cc:dd:ee:01-\[2001:db8::2\]:8080@aa:bb:cc:dd:ee:ff\)/);
  assert.match(m6, /ping -6 -c 1 2001:db8::2/);
  assert.doesNotMatch(m6, /\n/);
  const m4 = unknownMacMessage('eth1', '10.0.0.2', '80@aa:bb:cc:dd:ee:01-10.0.0.2:8080@aa:bb:cc:dd:ee:ff');
  assert.match(m4, /\(ping 10\.0\.0\.2\)$/);
  assert.doesNotMatch(m4, /-6/);
});
