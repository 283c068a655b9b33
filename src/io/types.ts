import * as fs from 'node:fs';
import { IoErrorCode, TcpcopyError } from '../errors';

/** Where captured frames go: called synchronously for each frame, with a shared buffer. */
export interface FrameSink {
  /**
   * `buf[0 .. len)` holds the frame (valid only during the call), of libpcap `linkType`;
   * `tsUs` is its capture time in microseconds (Date.now()-based for live sources).
   */
  onFrame(buf: Buffer, len: number, linkType: number, tsUs: number): void;
}

/** A typed start-up failure of a capture source or send sink: the message says what to do. */
export class IoError extends TcpcopyError {
  declare readonly code: IoErrorCode;
  constructor(code: IoErrorCode, message: string) { super(code, message); }
}

/**
 * The command that grants this node binary the capture capabilities. The path is resolved
 * (setcap refuses a symlink, and `command -v node` may name one or another node).
 */
export function setcapCommand(): string {
  let bin = process.execPath;
  try { bin = fs.realpathSync(bin); } catch { /* keep the path we have */ }
  return `setcap cap_net_raw,cap_net_admin+ep ${bin}`;
}
