import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readRawSocketQueue } from '../../src/io/raw-socket';

// /proc/net/raw as the kernel writes it (two raw sockets: protocol 6 and 255).
const SAMPLE = [
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
  ' 6: 00000000:0006 00000000:0000 07 00000000:0004B0C8 00:00000000 00000000     0        0 13123456 2 0000000000000000 3921',
  '255: 00000000:00FF 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 13123457 2 0000000000000000 0',
  '',
].join('\n');

test('/proc/net/raw: the queue (hex) and the drops of the socket with our inode', () => {
  assert.deepEqual(readRawSocketQueue(13123456, SAMPLE), { rxQueueBytes: 0x4b0c8, drops: 3921 });
  assert.deepEqual(readRawSocketQueue(13123457, SAMPLE), { rxQueueBytes: 0, drops: 0 });
  assert.equal(readRawSocketQueue(999, SAMPLE), null, 'another inode: not found');
  assert.equal(readRawSocketQueue(13123456, 'garbage\nmore garbage 1 2'), null);
  assert.equal(readRawSocketQueue(13123456, ''), null);
});
