/**
 * Wrong flags: both programs exit non-zero at once with a message that says what to write
 * instead. None of these gets as far as opening a socket.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

const BIN = path.resolve(__dirname, '../../../bin');

function run(name: string, args: string[]) {
  return spawnSync(process.execPath, [path.join(BIN, name), ...args], { encoding: 'utf8', timeout: 15000 });
}

const cases: [string, string[], RegExp][] = [
  ['no -x', ['-s', '198.18.0.40'], /missing -x: .*e\.g\. -x 80-10\.0\.0\.2:8080/],
  ['no -s', ['-x', '80-198.18.0.30:8080'], /missing -s: .*-s 10\.0\.0\.3/],
  ['-x without target port', ['-x', '80-198.18.0.30', '-s', '198.18.0.40'], /-x: .*'ip:port' .*item 1/],
  ['-x bad second item', ['-x', '80-198.18.0.30:8080,81:198.18.0.30:8080', '-s', '198.18.0.40'], /item 2/],
  ['-x port out of range', ['-x', '80-198.18.0.30:70000', '-s', '198.18.0.40'], /outside 1\.\.65535/],
  ['-c with *', ['-x', '80-198.18.0.30:8080', '-s', '198.18.0.40', '-c', '198.18.2.*'], /use 'x' for a range/],
  ['-c not an address', ['-x', '80-198.18.0.30:8080', '-s', '198.18.0.40', '-c', 'nohost'], /not an IPv4 or IPv6 address/],
  ['-s not an address', ['-x', '80-198.18.0.30:8080', '-s', 'intercept.local'], /-s: .*not an IPv4 or IPv6 address/],
  ['-x IPv6 without brackets', ['-x', '80-2001:2::30:8080', '-s', '198.18.0.40'], /IPv6 target goes in brackets .*\[2001:db8::2\]:8080/],
  ['-x of two families in one item', ['-x', '[2001:2::1]:80-198.18.0.30:8080', '-s', '198.18.0.40'], /online address is IPv6 and the target IPv4/],
  ['-x IPv6 with the raw-socket capture', ['-x', '80-198.18.0.30:8080,81-[2001:2::30]:8081', '-s', '198.18.0.40', '--capture-engine', 'raw'],
    /--capture-engine raw: item 2 '81-\[2001:2::30\]:8081' replays IPv6, which the raw-socket capture cannot see \(an AF_INET6 raw socket does not deliver the IPv6 header on receive\); capture with the ring \(--capture-engine ring, the default\) or with libpcap \(-i <device>\)/],
  ['-x IPv6 with the legacy capture and no -i', ['-x', '81-[2001:2::30]:8081', '-s', '198.18.0.40', '--capture-engine', 'legacy'], /--capture-engine legacy: item 1 .*replays IPv6, which the raw-socket capture cannot see/],
  ['-x IPv6 with -o and a MAC on one side only', ['-x', '80-[2001:2::30]:8080@aa:bb:cc:dd:ee:ff', '-s', '198.18.0.40', '-o', 'lo'], /MAC address on both sides or on neither in '80-\[2001:2::30\]:8080@aa:bb:cc:dd:ee:ff' \(item 1\)/],
  ['-c IPv6 prefix too short', ['-x', '80-198.18.0.30:8080', '-s', '198.18.0.40', '-c', '2001:2::/64'], /IPv6 prefix of length 116 to 128/],
  ['-s IPv6 with a bad port', ['-x', '80-198.18.0.30:8080', '-s', '[2001:2::40]:0'], /-s: .*bad port; write ip:port or \[ipv6\]:port/],
  ['-r 0', ['-x', '80-198.18.0.30:8080', '-s', '198.18.0.40', '-r', '0'], /-r must be from 1 to 100/],
  ['-n not a number', ['-x', '80-198.18.0.30:8080', '-s', '198.18.0.40', '-n', 'two'], /-n takes a whole number/],
  ['-C 12', ['-x', '80-198.18.0.30:8080', '-s', '198.18.0.40', '-C', '12'], /-C must be from 1 to 11/],
  ['unknown option', ['-x', '80-198.18.0.30:8080', '-s', '198.18.0.40', '--copys', '2'], /unknown option '--copys'[\s\S]*Did you mean .*--copies/],
  ['missing capture file', ['-x', '80-198.18.0.30:8080', '-s', '198.18.0.40', '-i', '/nonexistent/x.pcap'], /no such capture file/],
  ['-H not an address', ['-x', '80-198.18.0.30:8080', '-s', '198.18.0.40', '-H', 'local'], /-H local is not an IPv4 address/],
  ['pcap capture that would see its own output', ['-x', '8080-198.18.0.30:8080', '-s', '198.18.0.40', '-i', 'lo'], /give -F/],
];

for (const [what, args, want] of cases) {
  test(`tcpcopy refuses ${what}`, () => {
    const r = run('tcpcopy', args);
    assert.notEqual(r.status, 0, `exit status for ${what}`);
    assert.match(r.stderr, want);
    assert.ok(r.stderr.startsWith('tcpcopy: '), `message names the program: ${r.stderr}`);
  });
}

test('intercept refuses a missing -F and a bad -D', () => {
  const r1 = run('intercept', ['-i', 'lo']);
  assert.notEqual(r1.status, 0);
  assert.match(r1.stderr, /missing -F: .*-F 'tcp and src port 8080'/);
  const r2 = run('intercept', ['-F', 'tcp', '-D', '1.2.3.4']);
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /-D 1\.2\.3\.4: write two IPv4 addresses as A-B/);
});

test('intercept refuses a bad -b and a bad -x passlist item, naming the IPv6 forms', () => {
  const r1 = run('intercept', ['-F', 'tcp', '-b', '2001:2::zz']);
  assert.notEqual(r1.status, 0);
  assert.match(r1.stderr, /-b 2001:2::zz is not an IPv4 or IPv6 address; .*-b :: \(both families\)/);
  const r2 = run('intercept', ['-F', 'tcp', '-x', '198.18.0.1,[2001:2::1],2001:2::1:80:90:1:1:1:1']);
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /-x: '2001:2::1:80:90:1:1:1:1' is not an IPv4 or IPv6 address/);
});

test('-h and -v exit 0', () => {
  for (const name of ['tcpcopy', 'intercept']) {
    const h = run(name, ['-h']);
    assert.equal(h.status, 0);
    assert.match(h.stdout, /Usage: /);
    const v = run(name, ['-v']);
    assert.equal(v.status, 0);
    assert.match(v.stdout, new RegExp(`${name} \\d+\\.\\d+\\.\\d+`));
  }
});
