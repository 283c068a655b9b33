/**
 * --metrics end to end: both daemons serve /metrics and /stats inside their namespaces during
 * a real replication; the counters move while it runs, match what the target received (within
 * 1 %), agree between the two daemons, and every scrape passes `promtool check metrics`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Testbed, TARGET_IP, ASSISTANT_IP, HttpServerHandle, HttpServerStats, IpHost } from '../../lab/testbed';
import { DaemonHandle, ROOT, startDaemon, waitFor } from '../../lab/daemons';

const isRoot = process.getuid?.() === 0;
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
const hasPromtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;

const TC_PORT = 9100;
const ICPT_PORT = 9101;
/** A tiny HTTP GET run inside a namespace (curl is not part of the test set-up). */
const FETCH = 'fetch(process.argv[1]).then(async (r) => { if (r.status !== 200) { console.error("HTTP " + r.status); process.exit(1); } process.stdout.write(await r.text()); }, (e) => { console.error(String(e.cause ?? e)); process.exit(1); })';

type Samples = Map<string, number>;

function samples(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

function served(s: HttpServerStats, prefix: string): number {
  let n = 0;
  for (const [ip, v] of Object.entries(s.perClient)) if (ip.startsWith(prefix)) n += v.requests;
  return n;
}

function within1pct(got: number, want: number, what: string): void {
  assert.ok(want > 0, `${what}: something to compare (${want})`);
  assert.ok(Math.abs(got - want) <= Math.ceil(want * 0.01), `${what}: ${got} vs ${want} (more than 1 % apart)`);
}

describe('metrics endpoints during a replication', { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  let tb: Testbed;
  let online: HttpServerHandle;
  let target: HttpServerHandle;
  let icpt: DaemonHandle;
  let tc: DaemonHandle;
  /** Every exposition scraped, for the format check. */
  const scraped: { who: string; text: string }[] = [];

  function get(host: IpHost, port: number, p: string): string {
    return tb.execSync(host, process.execPath, ['-e', FETCH, `http://127.0.0.1:${port}${p}`], { timeoutMs: 15000 });
  }
  function scrape(who: 'tcpcopy' | 'intercept'): Samples {
    const text = who === 'tcpcopy' ? get('online', TC_PORT, '/metrics') : get('assistant', ICPT_PORT, '/metrics');
    scraped.push({ who, text });
    return samples(text);
  }
  const listening = (d: DaemonHandle) => waitFor(() => d.lines().some((l) => l.msg === 'metrics endpoint listening'), 10000, 50);

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 4 });
    online = await tb.startHttpServer('online', 80, { body: 200 });
    target = await tb.startHttpServer('target', 8080, { body: 200 });
    icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080', '--metrics', String(ICPT_PORT)]);
    tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, '--metrics', String(TC_PORT)]);
    assert.ok(await listening(icpt), 'intercept logged its metrics address');
    assert.ok(await listening(tc), 'tcpcopy logged its metrics address');
  });

  after(async () => {
    if (tc) await tc.stop();
    if (icpt) await icpt.stop();
    if (tb) await tb.destroy();
  });

  test('counters move during the load and match the replicated requests within 1 %', async () => {
    // Both control connections are up before the load (tcpcopy refuses sessions without them).
    assert.ok(await waitFor(() => scrape('tcpcopy').get(`tcpcopy_intercept_connections{intercept="${ASSISTANT_IP}:36524"}`) === 2, 10000, 200),
      'tcpcopy reports its 2 control connections');
    assert.equal(scrape('intercept').get('intercept_tcpcopy_connections'), 2);
    const t0 = scrape('tcpcopy');
    const i0 = scrape('intercept');
    const online0 = served(await online.stats(), '198.18.1.');
    const target0 = served(await target.stats(), '198.18.1.');

    const REQUESTS = 1500;
    let loadDone = false;
    const load = tb.runLoad({ requests: REQUESTS, concurrency: 8, rate: 300, localAddrs: tb.clientIps }).finally(() => { loadDone = true; });
    // Scrape while the load runs, until the counters have moved.
    let during: Samples | undefined;
    while (!loadDone) {
      await new Promise((r) => setTimeout(r, 200));
      const s = scrape('tcpcopy');
      if ((s.get('tcpcopy_requests_sent_total') ?? 0) > (t0.get('tcpcopy_requests_sent_total') ?? 0)) { during = s; break; }
    }
    const res = await load;
    assert.equal(res.errors, 0, JSON.stringify(res.errorKinds));
    assert.ok(during, 'a scrape during the load saw tcpcopy_requests_sent_total move');
    const iDuring = scrape('intercept');
    assert.ok((iDuring.get('intercept_replies_forwarded_total') ?? 0) > (i0.get('intercept_replies_forwarded_total') ?? 0), 'intercept forwarded replies');

    // Let the replay finish: the target's count and tcpcopy's counters stop moving, and every
    // session has ended (bounded).
    let last = -1;
    let stableSince = Date.now();
    await waitFor(async () => {
      const s = scrape('tcpcopy');
      const n = served(await target.stats(), '198.18.1.') + (s.get('tcpcopy_replies_total') ?? 0);
      if (n !== last) { last = n; stableSince = Date.now(); }
      return Date.now() - stableSince > 2500 && s.get('tcpcopy_sessions_active') === 0;
    }, 30000, 300);

    const onlineN = served(await online.stats(), '198.18.1.') - online0;
    const targetN = served(await target.stats(), '198.18.1.') - target0;
    const t1 = scrape('tcpcopy');
    const i1 = scrape('intercept');
    const d = (a: Samples, b: Samples, k: string) => (b.get(k) ?? NaN) - (a.get(k) ?? 0);
    console.log(`# online ${onlineN}, target ${targetN}; tcpcopy requests_sent +${d(t0, t1, 'tcpcopy_requests_sent_total')}, sessions_created +${d(t0, t1, 'tcpcopy_sessions_created_total')}, ` +
      `replies +${d(t0, t1, 'tcpcopy_replies_total')}; intercept forwarded +${d(i0, i1, 'intercept_replies_forwarded_total')}, client_adds +${d(i0, i1, 'intercept_client_adds_total')}`);
    assert.equal(onlineN, REQUESTS);
    within1pct(targetN, onlineN, 'target vs online');
    within1pct(d(t0, t1, 'tcpcopy_requests_sent_total'), targetN, 'tcpcopy_requests_sent_total vs requests the target served');
    within1pct(d(t0, t1, 'tcpcopy_sessions_created_total'), onlineN, 'tcpcopy_sessions_created_total vs connections (one request each)');
    within1pct(d(t0, t1, 'tcpcopy_sessions_established_total'), targetN, 'tcpcopy_sessions_established_total');
    within1pct(d(t0, t1, 'tcpcopy_sessions_total{result="closed"}'), onlineN, 'sessions closed by FIN');
    assert.ok(d(t0, t1, 'tcpcopy_client_packets_total') >= 3 * onlineN, 'SYN, request and FIN of each connection were captured');
    assert.ok(d(t0, t1, 'tcpcopy_captured_packets_total') >= d(t0, t1, 'tcpcopy_client_packets_total'));
    within1pct(d(i0, i1, 'intercept_client_adds_total'), d(t0, t1, 'tcpcopy_sessions_created_total'), 'intercept CLIENT_ADDs vs tcpcopy sessions');
    within1pct(d(t0, t1, 'tcpcopy_replies_total'), d(i0, i1, 'intercept_replies_forwarded_total'), 'replies tcpcopy received vs intercept forwarded');
    assert.ok(d(t0, t1, 'tcpcopy_sent_packets_total') >= 3 * targetN, 'SYN, request, ACK/FIN at least per session');
    assert.equal(t1.get('tcpcopy_sessions_active'), 0, 'every session finished');
    // The raw-socket capture (the default) reports the kernel's drops; libpcap's do not come.
    assert.ok((t1.get('tcpcopy_capture_drops_total') ?? -1) >= 0, 'tcpcopy_capture_drops_total present with the raw socket');
    assert.ok(!i1.has('intercept_capture_drops_total'), 'absent while the capture cannot report it');
    assert.ok((t1.get('process_resident_memory_bytes') ?? 0) > 10 << 20);
    assert.ok((i1.get('process_cpu_seconds_total') ?? 0) > 0);
    assert.equal(t1.get(`tcpcopy_build_info{version="0.1.0",nodejs="${process.version}"}`), 1);
    assert.equal(i1.get(`intercept_build_info{version="0.1.0",nodejs="${process.version}"}`), 1);

    // /stats: the statistics line's figures, the same as the metrics once nothing moves.
    const st = JSON.parse(get('online', TC_PORT, '/stats')) as Record<string, unknown>;
    assert.equal(st.requestsSent, t1.get('tcpcopy_requests_sent_total'));
    assert.equal(st.sessionsCreated, t1.get('tcpcopy_sessions_created_total'));
    const logged = await tc.freshStats();
    assert.equal(logged?.requestsSent, st.requestsSent, 'the statistics log line says the same');
    const ist = JSON.parse(get('assistant', ICPT_PORT, '/stats')) as Record<string, unknown>;
    assert.equal(ist.forwarded, i1.get('intercept_replies_forwarded_total'));
    assert.equal(ist.clientAdds, i1.get('intercept_client_adds_total'));
  });

  test('every scrape passes promtool check metrics', { skip: !hasPromtool && 'promtool not installed (Debian package prometheus; scripts/setup.sh installs it)' }, () => {
    assert.ok(scraped.length >= 6, `scrapes taken (${scraped.length})`);
    for (const { who, text } of [scraped[0], scraped[scraped.length - 1], ...scraped.filter((s) => s.who === 'intercept').slice(-1)]) {
      const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(r.status, 0, `${who}: ${r.stdout}${r.stderr}`);
    }
    // What a scrape looks like (for the record).
    const lastTc = scraped.filter((s) => s.who === 'tcpcopy').slice(-1)[0].text;
    console.log(lastTc.split('\n').filter((l) => /^tcpcopy_(requests_sent|sessions_total|sessions_created|intercept_connections|replies|capture_drops)/.test(l)).map((l) => `# ${l}`).join('\n'));
    const lastIcpt = scraped.filter((s) => s.who === 'intercept').slice(-1)[0].text;
    console.log(lastIcpt.split('\n').filter((l) => /^intercept_(captured|replies_forwarded|replies_dropped|routes |tcpcopy_connections )|^process_/.test(l)).map((l) => `# ${l}`).join('\n'));
  });

  test('a --metrics port in use stops the start with one clear line and exit 1', async () => {
    const logFile = path.join(tb.workDir, 'second-intercept.log');
    const child = tb.spawn('assistant', process.execPath, [path.join(ROOT, 'bin/intercept'), '-i', tb.dev('assistant'), '-F', 'tcp and src port 8080',
      '-p', '36600', '--metrics', String(ICPT_PORT)], { logFile });
    const st = await new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const out = fs.readFileSync(logFile, 'utf8').trim().split('\n').filter((l) => !l.startsWith('{'));
    assert.equal(st, 1);
    assert.deepEqual(out, [`intercept: --metrics 127.0.0.1:${ICPT_PORT}: cannot listen: the port is in use (another process listens there); choose another port [port-in-use]`]);
    // The first intercept still serves.
    assert.ok(get('assistant', ICPT_PORT, '/metrics').includes('intercept_replies_forwarded_total'));
  });

  test('on a terminal the log is one readable line per record; --log-format json keeps JSON', { skip: !hasScript && 'script (util-linux) not installed' }, () => {
    const run = (extra: string[]): string[] => {
      const cmd = [process.execPath, path.join(ROOT, 'bin/intercept'), '-i', tb.dev('assistant'), '-F', "'tcp and src port 8080'", '-p', '36602', '--stats-interval', '1', ...extra].join(' ');
      // script(1) gives the daemon a pseudo-terminal as stderr; timeout stops it with SIGINT
      // after 5 s (time enough to start on a loaded machine).
      const out = tb.execSync('assistant', 'script', ['-qec', `timeout --preserve-status -s INT 5 ${cmd}`, '/dev/null'], { timeoutMs: 20000 });
      return out.replace(/\r/g, '').split('\n').filter(Boolean);
    };
    const pretty = run([]);
    assert.ok(pretty.length >= 2, pretty.join('\n'));
    assert.match(pretty[0].replace(/\x1b\[[0-9;]*m/g, ''), /^\d\d:\d\d:\d\d\.\d{3} INFO  intercept: intercept running control=0\.0\.0\.0:36602 /);
    assert.ok(pretty.some((l) => l.replace(/\x1b\[[0-9;]*m/g, '').includes(' INFO  intercept: summary summary={"reason":"SIGINT"')), pretty.join('\n'));
    assert.ok(!pretty.some((l) => l.startsWith('{')), 'no JSON lines on the terminal');
    const json = run(['--log-format', 'json']);
    assert.ok(json.length >= 2);
    for (const l of json) assert.equal((JSON.parse(l) as { name: string }).name, 'intercept');
  });
});
