/**
 * --metrics: the address parser, what each metric reads from the daemons' real counter
 * objects, the exposition format (promtool when installed), and the HTTP endpoint on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import pino from 'pino';
import { parseMetricsAddress, buildRegistry, startMetricsServer } from '../../src/daemon/metrics';
import { metricDefsFor, metricNamesFor } from '../../src/daemon/metric-defs';
import { TcpcopyStats } from '../../src/tcpcopy/stats';
import { DEFAULT_INTERCEPT_OPTIONS, Intercept } from '../../src/intercept/intercept';
import { WireReason } from '../../src/wire/errors';

const hasPromtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;

/** `name{labels} value` lines of an exposition, as a map from `name{labels}` to the value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** A tcpcopy statistics snapshot as Tcpcopy.snapshot() builds it, from a real TcpcopyStats. */
function tcpcopySnapshot(withRaw: boolean): Record<string, unknown> {
  const st = new TcpcopyStats();
  st.captured = 1001; st.packetsSent = 1002; st.requestsSent = 4321; st.payloadBytesSent = 99999;
  st.sessionsCreated = 50; st.sessionsEstablished = 49; st.sessionsClosed = 40; st.sessionsTimedOut = 7;
  st.sessionsResetByTarget = 2; st.sessionsAborted = 1; st.notSampled = 11; st.shed = 12; st.noIntercept = 13;
  st.backlogShed = 14; st.shedCaptureBehind = 15; st.noSynRefused = 16; st.replies = 777; st.notMatched = 5;
  st.malformed[WireReason.Truncated] = 3;
  const malformed: Record<string, number> = { truncated: 3 };
  const snap: Record<string, unknown> = {
    ...st, malformed, sessionsActive: 9, backlogBytes: 65536, sendErrors: 4,
    intercepts: { '198.18.0.40:36524': { up: 2, of: 2, clientAdds: 50 }, '198.18.0.41:36524': { up: 0, of: 2, clientAdds: 0 } },
  };
  if (withRaw) snap.rawCapture = { wakeups: 1, packets: 1001, drainedToEagain: 1, kernelDrops: 6, queueKB: 0, behind: 0, fellBehind: 0 };
  return snap;
}

test('--metrics address: port alone, host:port, [IPv6]:port, and clear refusals', () => {
  assert.deepEqual(parseMetricsAddress('9100'), { host: '127.0.0.1', port: 9100 });
  assert.deepEqual(parseMetricsAddress('0.0.0.0:9100'), { host: '0.0.0.0', port: 9100 });
  assert.deepEqual(parseMetricsAddress('[::1]:9101'), { host: '::1', port: 9101 });
  assert.deepEqual(parseMetricsAddress('localhost:80'), { host: 'localhost', port: 80 });
  assert.throws(() => parseMetricsAddress('abc'), /port must be a number from 1 to 65535; e\.g\. --metrics 9100/);
  assert.throws(() => parseMetricsAddress('70000'), /from 1 to 65535 \(got 70000\)/);
  assert.throws(() => parseMetricsAddress('0'), /from 1 to 65535 \(got 0\)/);
  assert.throws(() => parseMetricsAddress('1.2.3:9100'), /'1\.2\.3' is not an IPv4 address/);
  assert.throws(() => parseMetricsAddress(':9100'), /is not an IPv4 address/);
  assert.throws(() => parseMetricsAddress('[zz]:1'), /is not an IPv6 address/);
});

test('tcpcopy metrics read the statistics fields at scrape time', async () => {
  let snap = tcpcopySnapshot(true);
  const reg = buildRegistry({ daemon: 'tcpcopy', version: '9.9.9', snapshot: () => snap });
  const s = samples(await reg.scrape());
  const want: Record<string, number> = {
    tcpcopy_captured_packets_total: 1001, tcpcopy_sent_packets_total: 1002, tcpcopy_requests_sent_total: 4321,
    tcpcopy_sent_payload_bytes_total: 99999, tcpcopy_sessions_created_total: 50, tcpcopy_sessions_established_total: 49,
    'tcpcopy_sessions_total{result="closed"}': 40, 'tcpcopy_sessions_total{result="timed_out"}': 7,
    'tcpcopy_sessions_total{result="reset_by_target"}': 2, 'tcpcopy_sessions_total{result="aborted"}': 1,
    'tcpcopy_session_starts_refused_total{reason="not_sampled"}': 11, 'tcpcopy_session_starts_refused_total{reason="memory"}': 12,
    'tcpcopy_session_starts_refused_total{reason="no_intercept"}': 13, 'tcpcopy_session_starts_refused_total{reason="backlog"}': 14,
    'tcpcopy_session_starts_refused_total{reason="capture_behind"}': 15, 'tcpcopy_session_starts_refused_total{reason="no_syn"}': 16,
    tcpcopy_sessions_active: 9, tcpcopy_backlog_bytes: 65536, tcpcopy_capture_drops_total: 6, tcpcopy_replies_total: 777,
    tcpcopy_send_errors_total: 4, tcpcopy_unmatched_packets_total: 5, 'tcpcopy_malformed_packets_total{reason="truncated"}': 3,
    'tcpcopy_intercept_connections{intercept="198.18.0.40:36524"}': 2, 'tcpcopy_intercept_connections{intercept="198.18.0.41:36524"}': 0,
    [`tcpcopy_build_info{version="9.9.9",nodejs="${process.version}"}`]: 1,
  };
  for (const [k, v] of Object.entries(want)) assert.equal(s.get(k), v, k);
  assert.ok((s.get('process_resident_memory_bytes') ?? 0) > 1 << 20);
  assert.ok((s.get('process_cpu_seconds_total') ?? 0) > 0);
  // The next scrape reads the counters again (no caching), and counters may only have grown.
  snap = { ...snap, requestsSent: 5000 };
  assert.equal(samples(await reg.scrape()).get('tcpcopy_requests_sent_total'), 5000);
});

test('a figure this run does not have is absent, not 0 (kernel drops without the raw socket)', async () => {
  const reg = buildRegistry({ daemon: 'tcpcopy', version: '1', snapshot: () => tcpcopySnapshot(false) });
  const text = await reg.scrape();
  assert.ok(!text.includes('tcpcopy_capture_drops_total'), 'no drops metric without a source for it');
  assert.ok(text.includes('tcpcopy_requests_sent_total 4321'));
});

test('intercept metrics read a real Intercept snapshot', async () => {
  const icpt = new Intercept(DEFAULT_INTERCEPT_OPTIONS, pino({ level: 'silent' }));
  icpt.stats.captured = 300; icpt.stats.forwarded = 280; icpt.stats.noRoute = 12; icpt.stats.clientAdds = 30;
  icpt.stats.tunnelsAccepted = 2; icpt.stats.skipped[WireReason.NotTcp] = 8;
  const reg = buildRegistry({ daemon: 'intercept', version: '1', snapshot: () => icpt.snapshot() });
  const s = samples(await reg.scrape());
  assert.equal(s.get('intercept_captured_packets_total'), 300);
  assert.equal(s.get('intercept_replies_forwarded_total'), 280);
  assert.equal(s.get('intercept_replies_dropped_total{reason="no_route"}'), 12);
  assert.equal(s.get('intercept_client_adds_total'), 30);
  assert.equal(s.get('intercept_tcpcopy_connections_total{result="accepted"}'), 2);
  assert.equal(s.get('intercept_skipped_packets_total{reason="not_tcp"}'), 8);
  assert.equal(s.get('intercept_routes'), 0);
  assert.equal(s.get('intercept_tcpcopy_connections'), 0);
  assert.ok(!s.has('intercept_capture_drops_total'), 'libpcap via cap reports no drops: absent');
});

for (const daemon of ['tcpcopy', 'intercept']) {
  test(`${daemon}: every metric has HELP and TYPE, and the exposition passes promtool`, { skip: !hasPromtool && 'promtool not installed (Debian package prometheus; scripts/setup.sh installs it)' }, async () => {
    const snap = daemon === 'tcpcopy' ? tcpcopySnapshot(true) : new Intercept(DEFAULT_INTERCEPT_OPTIONS, pino({ level: 'silent' })).snapshot();
    const text = await buildRegistry({ daemon, version: '0.1.0', snapshot: () => snap }).scrape();
    for (const name of metricNamesFor(daemon)) {
      if (name === 'intercept_capture_drops_total') continue;
      assert.ok(text.includes(`# HELP ${name} `), `HELP for ${name}`);
      assert.ok(text.includes(`# TYPE ${name} `), `TYPE for ${name}`);
    }
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
    // The check is real: a broken exposition fails it.
    const bad = spawnSync('promtool', ['check', 'metrics'], { input: `${text}tcpcopy_bad{x="1" 2\n`, encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
  });
}

test('metric names follow the conventions: daemon prefix, _total on counters only', () => {
  for (const daemon of ['tcpcopy', 'intercept']) {
    for (const d of metricDefsFor(daemon)) {
      assert.ok(d.name.startsWith(`${daemon}_`), d.name);
      assert.match(d.name, /^[a-z_][a-z0-9_]*$/);
      assert.equal(d.name.endsWith('_total'), d.type === 'counter', `${d.name} is a ${d.type}`);
      for (const l of d.labels ?? []) assert.ok(!/ip|port|client|addr/.test(l), `no client address label (${l})`);
    }
  }
});

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the endpoint serves /metrics and /stats; a port in use is refused with one line', async () => {
  const snap = tcpcopySnapshot(true);
  const srv = await startMetricsServer({ host: '127.0.0.1', port: 0 } as never, { daemon: 'tcpcopy', version: '1', snapshot: () => snap });
  try {
    assert.ok(srv.port > 0);
    const m = await get(srv.port, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.type, /^text\/plain; version=0\.0\.4/);
    assert.ok(m.body.includes('tcpcopy_requests_sent_total 4321'));
    const s = await get(srv.port, '/stats');
    assert.equal(s.status, 200);
    assert.equal(s.type, 'application/json');
    assert.deepEqual(JSON.parse(s.body), JSON.parse(JSON.stringify(snap)));
    assert.equal((await get(srv.port, '/nothing')).status, 404);
    assert.equal((await get(srv.port, '/metrics', 'POST')).status, 405);
    await assert.rejects(startMetricsServer({ host: '127.0.0.1', port: srv.port }, { daemon: 'tcpcopy', version: '1', snapshot: () => snap }),
      (e: Error & { code?: string }) => e.message === `--metrics 127.0.0.1:${srv.port}: cannot listen: the port is in use (another process listens there); choose another port` && e.code === 'port-in-use');
  } finally {
    await srv.close();
  }
});

test('a bad --metrics value is refused at parse time with one line and exit 1', () => {
  const bin = path.resolve(__dirname, '../../../bin');
  for (const name of ['tcpcopy', 'intercept']) {
    const r = spawnSync(process.execPath, [path.join(bin, name), '--metrics', 'localhost:http'], { encoding: 'utf8', timeout: 15000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^${name}: option '--metrics <\\[host:\\]port>' argument 'localhost:http' is invalid\\. 'localhost:http': the port must be a number from 1 to 65535`));
  }
});
