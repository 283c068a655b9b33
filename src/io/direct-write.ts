import * as fs from 'node:fs';
import type { Socket } from 'node:net';

/**
 * One write(2) on a control connection when nothing waits in the socket's queue.
 *
 * `socket.write` of a small record batch, the common case on both control channels (a
 * CLIENT_ADD per new session, a batch of reply records per ring wake-up), goes through the
 * Writable stream, a WriteWrap request object and a callback on the next tick: 6 % of
 * intercept's CPU at 1,000 short connections a second (perf), for a write the kernel takes at
 * once. When the socket's queue is empty the bytes go with `fs.writeSync` on its descriptor
 * instead: nothing can be reordered, since nothing is queued. What the kernel does not take
 * (a partial write, EAGAIN) and every error go to `socket.write`, which queues, waits for
 * `drain` and reports errors on the socket as before; `reused`: `buf` is the caller's to reuse,
 * so what is queued is a copy. Returns true when the kernel took every byte at once.
 */
export function writeDirect(socket: Socket, buf: Buffer, reused: boolean): boolean {
  const h = (socket as unknown as { _handle: { fd?: number } | null })._handle;
  const fd = h !== null && h !== undefined && typeof h.fd === 'number' ? h.fd : -1;
  if (fd >= 0 && socket.writable && socket.writableLength === 0 && !socket.connecting) {
    let n = 0;
    try {
      n = fs.writeSync(fd, buf, 0, buf.length);
    } catch {
      n = 0; // EAGAIN, or an error that socket.write will meet and report
    }
    if (n === buf.length) { writeCounts.direct++; return true; }
    buf = buf.subarray(n);
  }
  writeCounts.stream++;
  socket.write(reused ? Buffer.from(buf) : buf);
  return false;
}

/** Writes that went whole with write(2), and those (or their rest) that went to socket.write: process-wide, for tests. */
export const writeCounts = { direct: 0, stream: 0 };
