/** Where captured frames go: called synchronously for each frame, with a shared buffer. */
export interface FrameSink {
  /**
   * `buf[0 .. len)` holds the frame (valid only during the call), of libpcap `linkType`;
   * `tsUs` is its capture time in microseconds (Date.now()-based for live sources).
   */
  onFrame(buf: Buffer, len: number, linkType: number, tsUs: number): void;
}

/** A typed start-up failure of a capture source or send sink: the message says what to do. */
export class IoError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'IoError';
    this.code = code;
  }
}
