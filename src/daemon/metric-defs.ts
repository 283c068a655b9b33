/**
 * What each daemon exposes on `--metrics`: Prometheus names, help texts and where each value
 * comes from in the daemon's statistics snapshot (the same object the `statistics` log line and
 * `GET /stats` show). Values are read at scrape time only; nothing here runs on the packet path.
 */

export type Snapshot = Record<string, unknown>;

export interface MetricDef {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  /** Label names, when the metric has several series. */
  labels?: string[];
  /**
   * The value(s) from a snapshot: a number, a list of [label values, value], or undefined when
   * this run does not have the figure (e.g. kernel drops with a capture that cannot tell).
   */
  value(s: Snapshot): number | Array<[string[], number]> | undefined;
}

/** A number at `path` in the snapshot, or undefined. */
function at(s: Snapshot, ...path: string[]): number | undefined {
  let v: unknown = s;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** `snapshot.key` as a number, 0 when absent (a counter that has not moved). */
const n = (key: string) => (s: Snapshot): number => at(s, key) ?? 0;

/** A { reason: count } object as labelled series, reason names in snake_case. */
function byReason(s: Snapshot, key: string): Array<[string[], number]> {
  const o = s[key];
  if (!o || typeof o !== 'object') return [];
  const out: Array<[string[], number]> = [];
  for (const [k, v] of Object.entries(o as Record<string, unknown>)) if (typeof v === 'number') out.push([[snake(k)], v]);
  return out;
}

export function snake(k: string): string {
  return k.replace(/[-\s]+/g, '_').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

export const TCPCOPY_METRICS: readonly MetricDef[] = [
  { name: 'tcpcopy_captured_packets_total', type: 'counter', help: 'Packets handed over by the capture source (raw socket, libpcap or file).', value: n('captured') },
  { name: 'tcpcopy_capture_drops_total', type: 'counter', help: 'Packets the kernel dropped before the capture read them (ring or raw socket; absent with libpcap or file capture, which do not report it).',
    value: (s) => at(s, 'kernelDrops') },
  { name: 'tcpcopy_malformed_packets_total', type: 'counter', labels: ['reason'], help: 'Captured packets rejected by the IPv4/TCP checks, by reason.', value: (s) => byReason(s, 'malformed') },
  { name: 'tcpcopy_unmatched_packets_total', type: 'counter', help: 'Captured TCP packets that match no -x rule.', value: n('notMatched') },
  { name: 'tcpcopy_client_packets_total', type: 'counter', help: 'Client packets accepted for replay.', value: n('clientPackets') },
  { name: 'tcpcopy_sent_packets_total', type: 'counter', help: 'Packets sent to the target (captured ones and fake ones tcpcopy makes itself).', value: n('packetsSent') },
  { name: 'tcpcopy_sent_payload_bytes_total', type: 'counter', help: 'TCP payload bytes sent to the target.', value: n('payloadBytesSent') },
  { name: 'tcpcopy_send_errors_total', type: 'counter', help: 'Packets the send socket refused.', value: n('sendErrors') },
  { name: 'tcpcopy_requests_sent_total', type: 'counter', help: 'Requests (client payload bursts) sent to the target.', value: n('requestsSent') },
  { name: 'tcpcopy_retransmissions_total', type: 'counter', help: 'Packets tcpcopy sent again because the target did not acknowledge them.', value: n('retransmissions') },
  { name: 'tcpcopy_sessions_created_total', type: 'counter', help: 'Sessions started (from a captured SYN or with a fake handshake).', value: n('sessionsCreated') },
  { name: 'tcpcopy_sessions_established_total', type: 'counter', help: 'Sessions whose first handshake with the target completed.', value: n('sessionsEstablished') },
  { name: 'tcpcopy_sessions_total', type: 'counter', labels: ['result'], help: 'Sessions ended, by result: closed (FIN), timed_out, reset_by_target, aborted (RST by tcpcopy).',
    value: (s) => [[['closed'], n('sessionsClosed')(s)], [['timed_out'], n('sessionsTimedOut')(s)],
      [['reset_by_target'], n('sessionsResetByTarget')(s)], [['aborted'], n('sessionsAborted')(s)]] },
  { name: 'tcpcopy_session_starts_refused_total', type: 'counter', labels: ['reason'],
    help: 'Packets that would have started a session and were refused, by reason: not_sampled (-r), memory (-m), capture_behind, backlog (--backlog-limit), no_intercept, no_ipv6_intercept (no intercept accepted IPv6), no_syn (-O).',
    value: (s) => [[['not_sampled'], n('notSampled')(s)], [['memory'], n('shed')(s)], [['capture_behind'], n('shedCaptureBehind')(s)],
      [['backlog'], n('backlogShed')(s)], [['no_intercept'], n('noIntercept')(s)], [['no_ipv6_intercept'], n('ipv6Refused')(s)], [['no_syn'], n('noSynRefused')(s)]] },
  { name: 'tcpcopy_sessions_skipped_total', type: 'counter', labels: ['reason'],
    help: 'Sessions the protocol module (--module) could not replay, skipped whole, by reason (unknown_user, auth_failed, no_handshake, ...).',
    value: (s) => byReason(s, 'sessionsSkippedByReason') },
  { name: 'tcpcopy_sessions_active', type: 'gauge', help: 'Sessions being replayed now.', value: n('sessionsActive') },
  { name: 'tcpcopy_backlog_bytes', type: 'gauge', help: 'Memory held by captured packets waiting to be replayed, all sessions together.', value: n('backlogBytes') },
  { name: 'tcpcopy_replies_total', type: 'counter', help: 'Reply records received from intercept.', value: n('replies') },
  { name: 'tcpcopy_intercept_connections', type: 'gauge', labels: ['intercept'], help: 'Control connections to each intercept that are up now.',
    value: (s) => {
      const o = s.intercepts;
      if (!o || typeof o !== 'object') return [];
      return Object.entries(o as Record<string, unknown>).map(([k, v]) => [[k], at(v as Snapshot, 'up') ?? 0] as [string[], number]);
    } },
];

export const INTERCEPT_METRICS: readonly MetricDef[] = [
  { name: 'intercept_captured_packets_total', type: 'counter', help: 'Frames handed over by the libpcap capture.', value: n('captured') },
  { name: 'intercept_capture_drops_total', type: 'counter', help: 'Frames the kernel dropped before the capture read them (the ring; absent with libpcap, which cannot report it here).',
    value: (s) => at(s, 'kernelDrops') },
  { name: 'intercept_skipped_packets_total', type: 'counter', labels: ['reason'], help: 'Captured frames that are not usable IPv4/TCP, by reason.', value: (s) => byReason(s, 'skipped') },
  { name: 'intercept_replies_forwarded_total', type: 'counter', help: 'Reply records forwarded to a tcpcopy.', value: n('forwarded') },
  { name: 'intercept_replies_dropped_total', type: 'counter', labels: ['reason'],
    help: 'Replies not forwarded, by reason: no_route (no tcpcopy registered the client), hold_expired and hold_full (a SYN-ACK/RST waiting for its CLIENT_ADD), slow_reader.',
    value: (s) => [[['no_route'], n('noRoute')(s)], [['hold_expired'], n('heldExpired')(s)], [['hold_full'], n('heldDropped')(s)],
      [['slow_reader'], n('recordsDroppedSlowReader')(s)]] },
  { name: 'intercept_replies_held', type: 'gauge', help: 'SYN-ACK/RST replies waiting for their CLIENT_ADD now.', value: n('heldNow') },
  { name: 'intercept_client_adds_total', type: 'counter', help: 'CLIENT_ADD records received from tcpcopy.', value: n('clientAdds') },
  { name: 'intercept_routes', type: 'gauge', help: 'Entries in the route table now.', value: n('routes') },
  { name: 'intercept_routes_removed_total', type: 'counter', labels: ['reason'], help: 'Routes removed, by reason: expired (-t) or evicted (-s).',
    value: (s) => [[['expired'], n('routesExpired')(s)], [['evicted'], n('routesEvicted')(s)]] },
  { name: 'intercept_tcpcopy_connections', type: 'gauge', help: 'tcpcopy control connections open now.', value: n('tunnels') },
  { name: 'intercept_tcpcopy_connections_total', type: 'counter', labels: ['result'], help: 'tcpcopy control connections, by result: accepted, refused, dropped.',
    value: (s) => [[['accepted'], n('tunnelsAccepted')(s)], [['refused'], n('tunnelsRefused')(s)], [['dropped'], n('tunnelsDropped')(s)]] },
  { name: 'intercept_backlog_bytes', type: 'gauge', help: 'Reply records waiting for slow tcpcopy connections, in bytes.', value: n('backlogBytes') },
];

/** Metrics both daemons have (values from the process, not the snapshot). */
export const PROCESS_METRICS = ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds'] as const;

export function metricDefsFor(daemon: string): readonly MetricDef[] {
  return daemon === 'intercept' ? INTERCEPT_METRICS : TCPCOPY_METRICS;
}

/** Every metric name a daemon exposes (for the docs check). */
export function metricNamesFor(daemon: string): string[] {
  return [...metricDefsFor(daemon).map((d) => d.name), ...PROCESS_METRICS, `${daemon}_build_info`];
}
