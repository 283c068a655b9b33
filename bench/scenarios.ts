/**
 * The bench's scenarios: which load, how many copies, and the targets every figure is judged
 * against. Each IPv4 scenario runs with our pair of daemons and, when the originals are built,
 * with the original C pair in the same run. The IPv6 scenarios run ours only (the original has
 * no IPv6) and are compared with their IPv4 twin of the same run.
 */
import { ONLINE_IP, ONLINE_IP6 } from '../lab/testbed';

export interface Scenario {
  id: number;
  key: string;
  title: string;
  tool: 'wrk' | 'node';
  keepalive: boolean;
  copies: number;
  /** wrk: threads and connections. Node client: concurrency, addresses, rate (0: unlimited). */
  threads?: number;
  conns: number;
  addrs?: number;
  rate?: number;
  /** Over IPv6 (2001:2::/48): ours only, judged beside the IPv4 scenario `v4Twin` of the same run. */
  ipv6?: boolean;
  /** The IPv4 scenario with the same load, for an IPv6 one (it always runs with it). */
  v4Twin?: number;
}

export const SCENARIOS: readonly Scenario[] = [
  {
    id: 1, key: 'short-1k', title: 'Short connections, ~1,000 req/s, 16 client addresses',
    tool: 'node', keepalive: false, copies: 1, conns: 32, addrs: 16, rate: 1000,
  },
  {
    id: 2, key: 'short-max-1ip', title: 'Short connections, maximum rate, one client address',
    tool: 'wrk', keepalive: false, copies: 1, threads: 2, conns: 64,
  },
  {
    id: 3, key: 'short-max-16ip', title: 'Short connections, maximum rate, 16 client addresses',
    tool: 'node', keepalive: false, copies: 1, conns: 128, addrs: 16,
  },
  {
    id: 4, key: 'keepalive-max', title: 'Keep-alive, maximum rate',
    tool: 'wrk', keepalive: true, copies: 1, threads: 2, conns: 64,
  },
  {
    id: 5, key: 'keepalive-n2', title: 'Keep-alive, maximum rate, two copies (-n 2)',
    tool: 'wrk', keepalive: true, copies: 2, threads: 2, conns: 64,
  },
  {
    id: 6, key: 'short-1k-ipv6', title: 'Short connections, ~1,000 req/s, 16 client addresses, IPv6',
    tool: 'node', keepalive: false, copies: 1, conns: 32, addrs: 16, rate: 1000, ipv6: true, v4Twin: 1,
  },
  {
    id: 7, key: 'keepalive-max-ipv6', title: 'Keep-alive, maximum rate, IPv6',
    tool: 'wrk', keepalive: true, copies: 1, threads: 2, conns: 64, ipv6: true, v4Twin: 4,
  },
];

/** The online server's URL a scenario loads. */
export function onlineUrl(s: Scenario): string {
  return s.ipv6 ? `http://[${ONLINE_IP6}]/` : `http://${ONLINE_IP}/`;
}

/**
 * The chosen scenarios in the order they run: each IPv4 one alone, or with the IPv6 scenarios
 * whose twin it is (run back to back with it in every repetition); an IPv6 scenario whose twin
 * was not chosen stands alone.
 */
export function scenarioGroups(chosen: readonly Scenario[]): Scenario[][] {
  const ids = new Set(chosen.map((s) => s.id));
  const out: Scenario[][] = [];
  for (const s of chosen) {
    if (s.ipv6 && s.v4Twin !== undefined && ids.has(s.v4Twin)) continue;
    out.push([s, ...chosen.filter((t) => t.ipv6 && t.v4Twin === s.id)]);
  }
  return out;
}

/** The scenarios to run for a list of ids: each IPv6 one brings its IPv4 twin (sorted, no repeats). */
export function withTwins(ids: readonly number[]): number[] {
  const out = new Set(ids);
  for (const id of ids) {
    const t = SCENARIOS.find((s) => s.id === id)?.v4Twin;
    if (t !== undefined) out.add(t);
  }
  return [...out].sort((a, b) => a - b);
}

/** Targets (issue #12): loss, peak RSS per daemon, and CPU per replicated request as a ratio to the original. */
export const TARGETS = { lossPct: 0.1, rssMB: 100, cpuRatio: 1.0 };

export function loadCommand(s: Scenario, seconds: number, ips: readonly string[]): string {
  if (s.tool === 'wrk') {
    return `wrk -t${s.threads} -c${s.conns} -d${seconds}s --timeout 2s${s.keepalive ? '' : " -H 'Connection: close'"} ${onlineUrl(s)}`;
  }
  const addrs = ips.slice(0, s.addrs ?? 1);
  return `load-client${s.ipv6 ? ` --url ${onlineUrl(s)}` : ''} --concurrency ${s.conns}${s.rate ? ` --rate ${s.rate}` : ''} --local-addrs ${addrs[0]}…${addrs[addrs.length - 1]} ` +
    `(${addrs.length} addresses) --duration-ms ${seconds * 1000}${s.rate ? ' (+3 s to finish)' : ''} --timeout-ms 2000`;
}
