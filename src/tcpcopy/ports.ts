import { mix32 } from './transfer';

/** Slots of the port-search cursors (a hint per client address, shared on hash collisions). */
const PORT_CURSORS = 1024;
/** Source ports handed out: 1024..65535. */
const FIRST_PORT = 1024;
const PORT_RANGE = 65536 - FIRST_PORT;

/** Tells whether a source address and port is held by a live or lingering session. */
export interface PortHolders {
  holds(ip: number, port: number): boolean;
}

/**
 * Source ports for new sessions. The preferred port is the captured one, shifted by `-f`
 * (instances apart: 2048 per step) and by the copy number of `-n` (copies apart: 32 per
 * copy), plus a random jitter of 0..511 drawn once when either is used; a shifted port past
 * 65535 wraps into 1024..65535.
 *
 * When the preferred port is held, the next free one after where the last search for that
 * address (or one hashing alike) ended is taken. Ports are then handed out in a circle and
 * freed in about the same order, so with one busy client address (thousands of short
 * connections a second, each port held for the linger time) a search takes a few probes
 * instead of walking the run of held ports after the preferred one.
 */
export class PortAllocator {
  private readonly cursors = new Uint16Array(PORT_CURSORS);
  readonly jitter: number;

  constructor(private readonly portShift: number, copies: number, private readonly holders: PortHolders,
    random: () => number = Math.random) {
    this.jitter = portShift > 0 || copies > 1 ? Math.floor(random() * 512) : 0;
  }

  /** The port a session of captured port `srcPort`, copy `copy`, asks for first. */
  preferred(srcPort: number, copy: number): number {
    let p = srcPort;
    if (this.portShift > 0) p += this.portShift * 2048 + this.jitter;
    if (copy > 0) p += (2 * copy - 1) * 32 + this.jitter;
    return wrapPort(p);
  }

  /** A free port for `ip`, `preferred` when free; -1 when all of 1024..65535 are held. */
  allocate(ip: number, preferred: number): number {
    let p = preferred;
    if (!this.holders.holds(ip, p)) return p;
    const h = mix32(ip, 0) & (PORT_CURSORS - 1);
    const cursor = this.cursors[h];
    if (cursor !== 0) p = cursor;
    for (let i = 0; i < PORT_RANGE; i++, p++) {
      if (p > 65535) p = FIRST_PORT;
      if (!this.holders.holds(ip, p)) {
        this.cursors[h] = p === 65535 ? FIRST_PORT : p + 1;
        return p;
      }
    }
    return -1;
  }
}

/** A port number shifted past 65535 wraps into 1024..65535. */
export function wrapPort(p: number): number {
  return p > 65535 ? FIRST_PORT + ((p - 65536) % PORT_RANGE) : p;
}
