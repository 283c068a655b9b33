/** Request digests of the lab's HTTP server: which requests a target got that the online server served. */
import type { HttpServerStats } from './fixtures/protocol';

/** Requests per digest that `b` has more than `a` (two snapshots of one server's stats). */
export function digestDelta(a: HttpServerStats, b: HttpServerStats): Map<string, number> {
  if (!b.digests) throw new Error('testbed: the HTTP server was started without digests: true');
  const out = new Map<string, number>();
  for (const [d, n] of Object.entries(b.digests)) {
    const k = n - (a.digests?.[d] ?? 0);
    if (k > 0) out.set(d, k);
  }
  return out;
}

/**
 * Compares the requests a target received with those the online server served, by content:
 * `extra` counts requests at the target beyond `copies` times what the online server got with
 * the same bytes (a corrupted, invented or duplicated request), `missing` those it lacks.
 */
export function compareDigests(online: Map<string, number>, target: Map<string, number>, copies = 1):
  { missing: number; extra: number; extraSample: string[]; distinct: number } {
  let missing = 0;
  let extra = 0;
  const extraSample: string[] = [];
  for (const [d, n] of online) missing += Math.max(0, n * copies - (target.get(d) ?? 0));
  for (const [d, n] of target) {
    const over = n - (online.get(d) ?? 0) * copies;
    if (over > 0) {
      extra += over;
      if (extraSample.length < 5) extraSample.push(`${d}×${over}`);
    }
  }
  return { missing, extra, extraSample, distinct: online.size };
}

