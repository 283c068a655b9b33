/**
 * intercept end to end, in network namespaces: our intercept on the assistant captures the
 * target's real SYN-ACKs (the clients' connections are black-holed there) and must hand each
 * one, as a 64-byte record in count-prefixed batches, to exactly the control connection that
 * registered its client address — and to nobody else. Control connections are made by a test
 * stand-in for tcpcopy running in the online namespace (fixtures/control-client.ts), so the
 * test process itself (root namespace) never touches 198.18.x. Also: hostile control input,
 * a reader that never reads, the -x passlist, bad command lines, and throughput figures.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Testbed, TARGET_IP, ASSISTANT_IP, CLIENT_IPS, HttpServerHandle } from '../../lab/testbed';
import { BIN, DaemonHandle, num, startDaemon, waitFor } from '../../lab/daemons';
import { ControlFixture, Report, parseRecord, startSyns, SynRun } from '../../lab/fixtures/control-client';

const isRoot = process.getuid?.() === 0;
const SCRIPT = path.join(__dirname, '../../lab/fixtures', 'control-client.js');
const TARGET = `${TARGET_IP}:8080`;
const CONTROL_PORT = 36524;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15; CLK_TCK is 100 on Linux
}

/** Resident set size of a process, in MiB. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Keys "ip:port" for every ip × port. */
function keysOf(ips: readonly string[], ports: readonly number[]): string[] {
  return ips.flatMap((ip) => ports.map((p) => `${ip}:${p}`));
}

/** Framing and per-record checks every report must pass. */
function assertWellFormed(r: Report): void {
  assert.equal(r.decodeError, null, `${r.c}: decoder error`);
  assert.equal(r.bytes, r.batches * 2 + r.records * 64, `${r.c}: ${r.bytes} bytes are not ${r.batches} count prefixes + ${r.records} 64-byte records`);
  assert.ok(r.records <= r.batches * 16, `${r.c}: more than 16 records per batch`);
  assert.equal(r.bad, 0, `${r.c}: ${r.bad} bad records ${JSON.stringify(r.problems)} e.g. ${r.badSample[0]}`);
}

/** Checks one sampled record field by field against the registered client pairs. */
function assertSample(hex: string, registered: Set<string>): void {
  const b = Buffer.from(hex, 'hex');
  assert.equal(b.length, 64);
  const r = parseRecord(b);
  assert.ok(registered.has(`${r.dstIp}:${r.dstPort}`), `record for ${r.dstIp}:${r.dstPort}, which was not registered here`);
  assert.equal(`${r.srcIp}:${r.srcPort}`, TARGET);
  assert.equal(r.flags & 0x17, 0x12, `flags 0x${r.flags.toString(16)} (want SYN+ACK)`);
  assert.equal(r.version, 4);
  assert.equal(r.ihl, 20);
  assert.equal(r.protocol, 6);
  assert.equal(r.totalLen, 20 + r.doff, 'a SYN-ACK carries no payload');
  assert.ok(r.ipChecksumOk, 'IP header copied verbatim (checksum valid)');
  assert.equal(r.tcpChecksumOk, true, 'TCP header and options copied verbatim (segment checksum valid)');
  assert.ok(r.paddingZero, 'zero padding after the TCP header');
  assert.equal(r.ack !== 0, true);
}

describe('intercept in network namespaces', { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  let tb: Testbed;
  let target: HttpServerHandle;
  let icpt: DaemonHandle;
  let ctl: ControlFixture;
  const others: DaemonHandle[] = [];
  const syns: SynRun[] = [];

  let wmem0 = '';

  /** Largest kernel Send-Q of intercept's control connections, per local port (ss in the assistant namespace). */
  function sendQueues(): Map<number, number> {
    const out = tb.execSync('assistant', 'ss', ['-tn', 'state', 'established']);
    const m = new Map<number, number>();
    for (const l of out.split('\n')) {
      const x = /^\s*\d+\s+(\d+)\s+\S+:(\d+)\s/.exec(l);
      if (x) m.set(Number(x[2]), Math.max(m.get(Number(x[2])) ?? 0, Number(x[1])));
    }
    return m;
  }

  const interceptArgs = (): string[] => ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080'];

  /** Polls a connection's report until every registered pair has a record (bounded). */
  async function untilAllSeen(c: string, timeoutMs: number, fx = ctl): Promise<Report> {
    let r = await fx.report(c);
    await waitFor(async () => {
      r = await fx.report(c);
      return r.registered > 0 && r.registeredSeen === r.registered;
    }, timeoutMs, 100);
    return r;
  }

  function syn(o: Parameters<typeof startSyns>[2]): SynRun {
    const s = startSyns(tb, SCRIPT, o);
    syns.push(s);
    return s;
  }

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 8 });
    target = await tb.startHttpServer('target', 8080);
    icpt = await startDaemon(tb, 'assistant', 'intercept', interceptArgs());
    ctl = await ControlFixture.start(tb, 'online', SCRIPT, path.join(tb.workDir, 'ctl.sock'));
    wmem0 = tb.execSync('assistant', 'sysctl', ['-n', 'net.ipv4.tcp_wmem']).trim().split(/\s+/).join(' ');
  });

  after(async () => {
    ctl?.close();
    for (const s of syns) if (s.child.exitCode === null) await tb.stop(s.child, 'SIGKILL', 2000);
    for (const d of others) await d.stop();
    if (icpt) await icpt.stop();
    if (target) await target.stop();
    if (tb) await tb.destroy();
  });

  test('replies reach exactly the control connection that registered the client (and none go elsewhere)', async () => {
    const ip = CLIENT_IPS[0];
    await ctl.call('connect', { c: 'a', host: ASSISTANT_IP, port: CONTROL_PORT, expectSrc: TARGET, samples: 64 });
    await ctl.call('add', { c: 'a', target: TARGET, ips: [ip], from: 11001, to: 11004 });
    // 11005..11008 connect too but are never registered.
    const s = syn({ target: TARGET, ips: [ip], from: 11001, to: 11008, holdMs: 5000 });
    await s.sent;
    let r = await untilAllSeen('a', 5000);
    assert.equal(r.registeredSeen, 4, `records for ${r.registeredSeen} of the 4 registered clients`);
    await sleep(1500); // SYN-ACK retransmissions for every port come within this time
    r = await ctl.report('a', true);
    assertWellFormed(r);
    assert.deepEqual(Object.keys(r.keys!).sort(), keysOf([ip], range(11001, 11004)).sort(), 'records for exactly the registered pairs');
    assert.equal(r.unexpected, 0);
    const reg = new Set(keysOf([ip], range(11001, 11004)));
    assert.ok(r.samples.length >= 4);
    for (const h of r.samples) assertSample(h, reg);
    const st = await icpt.freshStats();
    assert.ok(num(st?.forwarded) >= r.records, `intercept forwarded ${num(st?.forwarded)}, client got ${r.records}`);
    assert.ok(num(st?.held) >= 4, 'replies to the unregistered clients were held, not forwarded');
    await tb.stop(s.child, 'SIGTERM');
  });

  test('two control connections sharing one intercept each get only their own clients\' replies', async () => {
    const ip = CLIENT_IPS[0];
    await ctl.call('connect', { c: 'b0', host: ASSISTANT_IP, port: CONTROL_PORT, expectSrc: TARGET });
    await ctl.call('connect', { c: 'b1', host: ASSISTANT_IP, port: CONTROL_PORT, expectSrc: TARGET });
    await ctl.call('connect', { c: 'b2', host: ASSISTANT_IP, port: CONTROL_PORT, expectSrc: TARGET });
    // A bystander with clients of its own that send nothing now.
    await ctl.call('add', { c: 'b0', target: TARGET, ips: [ip], from: 11191, to: 11192 });
    await ctl.call('add', { c: 'b1', target: TARGET, ips: [ip], from: 11101, to: 11103 });
    await ctl.call('add', { c: 'b2', target: TARGET, ips: [ip], from: 11104, to: 11106 });
    const s = syn({ target: TARGET, ips: [ip], from: 11101, to: 11108, holdMs: 5000 });
    await s.sent;
    await untilAllSeen('b1', 5000);
    await untilAllSeen('b2', 5000);
    await sleep(1500);
    const r1 = await ctl.report('b1', true);
    const r2 = await ctl.report('b2', true);
    assertWellFormed(r1);
    assertWellFormed(r2);
    assert.deepEqual(Object.keys(r1.keys!).sort(), keysOf([ip], range(11101, 11103)));
    assert.deepEqual(Object.keys(r2.keys!).sort(), keysOf([ip], range(11104, 11106)));
    // The bystander gets nothing.
    const r0 = await ctl.report('b0', true);
    assertWellFormed(r0);
    assert.equal(r0.records, 0, `the bystander got ${r0.records} records`);
    assert.equal(r0.unexpected, 0);
    await ctl.call('destroy', { c: 'b0' });
    await tb.stop(s.child, 'SIGTERM');
  });

  test('a SYN-ACK captured before its CLIENT_ADD is held and delivered when the add comes', async () => {
    const ip = CLIENT_IPS[0];
    await ctl.call('connect', { c: 'h', host: ASSISTANT_IP, port: CONTROL_PORT, expectSrc: TARGET });
    const before0 = await icpt.freshStats();
    const s = syn({ target: TARGET, ips: [ip], from: 11201, to: 11203, holdMs: 5000 });
    const sent = await s.sent;
    await sleep(350); // the SYN-ACKs are captured now, with no route yet
    const { addAt } = await ctl.call<{ addAt: number }>('add', { c: 'h', target: TARGET, ips: [ip], from: 11201, to: 11203 });
    const r = await untilAllSeen('h', 3000);
    assert.equal(r.registeredSeen, 3);
    const full = await ctl.report('h', true);
    assertWellFormed(full);
    for (const [key, k] of Object.entries(full.keys!)) {
      // The target's first retransmission (and the client's retried SYN) come ~1 s after the
      // first SYN: a record this early can only be the held one.
      assert.ok(k.firstAt - addAt < 400, `${key}: first record ${k.firstAt - addAt} ms after the add`);
      assert.ok(k.firstAt - sent.at < 900, `${key}: first record ${k.firstAt - sent.at} ms after the SYN`);
    }
    const st = await icpt.freshStats();
    assert.ok(num(st?.heldDelivered) - num(before0?.heldDelivered) >= 3, `heldDelivered ${num(before0?.heldDelivered)} → ${num(st?.heldDelivered)}`);
    await tb.stop(s.child, 'SIGTERM');
  });

  /**
   * The hostile-input and slow-reader scenario, run once and shared: the test of that name runs
   * it, and the next test (which needs its 16 KiB intercept with dropped records) runs it
   * itself when it runs alone.
   */
  let slowReaderP: Promise<{ small: DaemonHandle; dropped: number }> | undefined;
  const slowReaderScenario = (): Promise<{ small: DaemonHandle; dropped: number }> => (slowReaderP ??= hostileAndSlowReader());

  async function hostileAndSlowReader(): Promise<{ small: DaemonHandle; dropped: number }> {
    // A second instance with a 16 KiB per-connection backlog, so that the slow reader is
    // certain to overflow it (the first one's 4 MiB default is far beyond this burst).
    const small = await startDaemon(tb, 'assistant', 'intercept', [...interceptArgs(), '-p', '36601', '--max-backlog', '16']);
    others.push(small);
    const good = CLIENT_IPS[1];
    const slowIps = [CLIENT_IPS[2], CLIENT_IPS[3]];
    const rss0 = rssMiB(icpt.child.pid!);
    // Small kernel send buffers on the assistant (only for this test's connections), so that
    // the burst overflows them and intercept's own backlog handling is what is exercised
    // (with the default 4 MiB the kernel would absorb the whole burst).
    tb.execSync('assistant', 'sysctl', ['-q', '-w', 'net.ipv4.tcp_wmem=4096 16384 65536']);
    try {
      for (const [c, port] of [['g', CONTROL_PORT], ['g2', 36601]] as const) {
        await ctl.call('connect', { c, host: ASSISTANT_IP, port, expectSrc: TARGET });
        await ctl.call('add', { c, target: TARGET, ips: [good], from: 12001, to: 12200 });
      }
      for (const [c, port] of [['s', CONTROL_PORT], ['s2', 36601]] as const) {
        await ctl.call('connect', { c, host: ASSISTANT_IP, port, expectSrc: TARGET });
        await ctl.call('pause', { c });
        await ctl.call('add', { c, target: TARGET, ips: slowIps, from: 13000, to: 17999 });
      }

      // Garbage on the main instance.
      // x1: the first record carries an address (a pre-version tcpcopy) → dropped as "client too old".
      await ctl.call('connect', { c: 'x1', host: ASSISTANT_IP, port: CONTROL_PORT, version: null });
      await ctl.call('raw', { c: 'x1', hex: 'c6120a0a' + '9c40' + '0001' + 'c612001e' + '1f90' });
      // x2: version, then half a record, then FIN.
      await ctl.call('connect', { c: 'x2', host: ASSISTANT_IP, port: CONTROL_PORT });
      await ctl.call('raw', { c: 'x2', hex: 'c6120a0a9c4000' });
      await ctl.call('end', { c: 'x2' });
      // x3: version, then 256 KiB of random bytes (random record types and routes), then RST.
      await ctl.call('connect', { c: 'x3', host: ASSISTANT_IP, port: CONTROL_PORT });
      await ctl.call('random', { c: 'x3', bytes: 256 * 1024 });
      // x4: half a version record, then RST.
      await ctl.call('connect', { c: 'x4', host: ASSISTANT_IP, port: CONTROL_PORT, version: null });
      await ctl.call('raw', { c: 'x4', hex: '00000000' });
      // x5: another protocol version: a warning, and the connection is kept.
      await ctl.call('connect', { c: 'x5', host: ASSISTANT_IP, port: CONTROL_PORT, version: 5 });

      const c1 = await ctl.call<{ closed: Report['closed'] }>('waitClosed', { c: 'x1', timeoutMs: 3000 });
      assert.equal(c1.closed?.by, 'peer', 'intercept closed the "client too old" connection');
      await sleep(200);
      await ctl.call('reset', { c: 'x3' });
      await ctl.call('reset', { c: 'x4' });

      // Lots of replies: 10,000 for the slow readers, 200 for the good ones.
      const sSlow = syn({ target: TARGET, ips: slowIps, from: 13000, to: 17999, batch: 200, paceMs: 5 });
      const sGood = syn({ target: TARGET, ips: [good], from: 12001, to: 12200, batch: 50, paceMs: 20 });
      const [errSlow, errGood] = await Promise.all([sSlow.done, sGood.done]);
      assert.deepEqual(errGood, {});
      assert.deepEqual(errSlow, {});

      for (const c of ['g', 'g2']) {
        const r = await untilAllSeen(c, 10_000);
        assertWellFormed(r);
        assert.equal(r.registeredSeen, 200, `${c}: records for ${r.registeredSeen} of 200 clients`);
        assert.equal(r.unexpected, 0, `${c}: records for other clients ${r.unexpectedSample.join(' ')}`);
      }
      await sleep(1000);
      const st = await icpt.freshStats();
      const st2 = await small.freshStats();
      const sendQ = sendQueues();
      console.log(`# slow reader: main instance (4 MiB backlog): kernel Send-Q ${sendQ.get(CONTROL_PORT)} B, backlog ${num(st?.backlogBytes)} B, ` +
        `dropped ${num(st?.recordsDroppedSlowReader)} records; 16 KiB instance: kernel Send-Q ${sendQ.get(36601)} B, backlog ${num(st2?.backlogBytes)} B, ` +
        `dropped ${num(st2?.recordsDroppedSlowReader)} records; intercept RSS ${rss0.toFixed(1)} → ${rssMiB(icpt.child.pid!).toFixed(1)} MiB`);

      // Still up, still logging, garbage connections dropped, memory bounded.
      assert.equal(icpt.child.exitCode, null, 'intercept is running');
      assert.equal(small.child.exitCode, null, 'the second intercept is running');
      assert.ok(st, 'intercept still logs statistics');
      assert.ok(num(st?.tunnelsDropped) >= 1, `tunnelsDropped ${num(st?.tunnelsDropped)}`);
      const lines = icpt.lines();
      const dropped = lines.filter((l) => l.msg === 'tcpcopy connection dropped');
      assert.ok(dropped.some((l) => l.reason === 'client-too-old'), `drop lines: ${JSON.stringify(dropped)}`);
      const gone = lines.filter((l) => l.msg === 'tcpcopy disconnected' || l.msg === 'tcpcopy connection dropped');
      assert.ok(gone.some((l) => l.reason === 'peer-closed-mid-record'), `half a record then FIN: ${JSON.stringify(gone)}`);
      assert.ok(lines.some((l) => l.msg === 'tcpcopy speaks another protocol version; continuing' && l.version === 5));
      const x5 = await ctl.report('x5');
      assert.equal(x5.closed, null, 'the version-5 connection is kept');
      const rss = rssMiB(icpt.child.pid!);
      assert.ok(rss < 200, `intercept RSS ${rss.toFixed(1)} MiB`);
      assert.ok(rssMiB(small.child.pid!) < 200);
      // The main instance keeps everything for the reader that never reads (well within 4 MiB)…
      assert.ok(num(st?.backlogBytes) > 0, 'records wait in intercept\'s backlog for the reader that never reads');
      assert.ok(num(st?.backlogBytes) <= 4 * 1024 * 1024, `backlog ${num(st?.backlogBytes)} bytes`);
      assert.equal(num(st?.recordsDroppedSlowReader), 0);
      // …the 16 KiB instance bounds it, dropping the oldest batches.
      assert.ok(num(st2?.recordsDroppedSlowReader) > 0, 'the 16 KiB backlog overflowed and dropped the oldest batches');
      assert.ok(num(st2?.backlogBytes) > 0 && num(st2?.backlogBytes) <= 16 * 1024, `backlog ${num(st2?.backlogBytes)} bytes`);

      // The readers wake up: the main instance delivers every record it kept; the 16 KiB one
      // delivers whole batches only (the stream stays well framed after the drops).
      await ctl.call('resume', { c: 's' });
      await ctl.call('resume', { c: 's2' });
      const rs = await untilAllSeen('s', 15_000);
      assertWellFormed(rs);
      assert.equal(rs.registeredSeen, 10_000, `the slow reader got records for ${rs.registeredSeen} of 10000 clients`);
      assert.equal(rs.unexpected, 0);
      await sleep(300);
      const rs2 = await ctl.report('s2');
      assertWellFormed(rs2);
      assert.ok(rs2.records > 0);
      assert.equal(rs2.unexpected, 0);
      console.log(`# after resuming: main-instance slow reader got ${rs.records} records, 16 KiB-instance one ${rs2.records} ` +
        `(records for ${rs2.registeredSeen} of 10000 clients)`);

      for (const c of ['s', 's2', 'x5', 'g', 'g2']) await ctl.call('destroy', { c });
      // The 16 KiB instance is stopped by the next test, which looks at its counters after the disconnect.
      return { small, dropped: num(st2?.recordsDroppedSlowReader) };
    } finally {
      tb.execSync('assistant', 'sysctl', ['-q', '-w', `net.ipv4.tcp_wmem=${wmem0}`]);
    }
  }

  test('hostile control input and a reader that never reads: intercept stays up and bounded', async () => {
    await slowReaderScenario();
  });

  test('the slow reader\'s dropped records stay counted after it disconnects (statistics and exit summary)', async () => {
    const { small: smallIcpt, dropped: smallDropped } = await slowReaderScenario();
    assert.ok(smallDropped > 0, 'the 16 KiB intercept dropped records for the reader that never read');
    // The reader's close is logged as "disconnected", or as "connection dropped" when it closed
    // with unread bytes (a RST: ECONNRESET at intercept); wait for it (bounded) before stopping.
    const closedOf = (l: Record<string, unknown>) =>
      (l.msg === 'tcpcopy disconnected' || l.msg === 'tcpcopy connection dropped') && num(l.recordsDropped) > 0;
    await waitFor(() => smallIcpt.lines().some(closedOf), 5000, 100);
    const live = await smallIcpt.freshStats();
    const summary = await smallIcpt.stop();
    const closedLine = smallIcpt.lines().find(closedOf);
    console.log(`# 16 KiB instance: ${smallDropped} records dropped while connected; after the disconnect: statistics say ` +
      `${num(live?.recordsDroppedSlowReader)}, summary says ${num(summary?.recordsDroppedSlowReader)}; ` +
      `disconnect line says ${num(closedLine?.recordsDropped)}`);
    assert.ok(num(closedLine?.recordsDropped) >= smallDropped, 'the disconnect line counts them');
    assert.ok(num(live?.recordsDroppedSlowReader) >= smallDropped,
      `statistics after the slow reader left: recordsDroppedSlowReader ${num(live?.recordsDroppedSlowReader)} (was ${smallDropped})`);
    assert.ok(num(summary?.recordsDroppedSlowReader) >= smallDropped,
      `exit summary: recordsDroppedSlowReader ${num(summary?.recordsDroppedSlowReader)} (was ${smallDropped})`);
  });

  test('-x passlist: a control connection from an unlisted address is refused', async () => {
    const px = await startDaemon(tb, 'assistant', 'intercept', [...interceptArgs(), '-p', '36600', '-x', '198.18.0.99']);
    others.push(px);
    const r = await ctl.call<{ connected: boolean }>('connect', { c: 'p', host: ASSISTANT_IP, port: 36600 });
    if (r.connected) {
      const c = await ctl.call<{ closed: Report['closed'] }>('waitClosed', { c: 'p', timeoutMs: 3000 });
      assert.ok(c.closed && c.closed.by === 'peer', 'closed by intercept right away');
      assert.ok(c.closed.at - (await ctl.report('p')).connectedAt < 1000);
    }
    assert.ok(await waitFor(() => px.lines().some((l) => String(l.msg).startsWith('control connection refused')), 3000, 100),
      'log line "control connection refused"');
    const st = await px.freshStats();
    assert.equal(num(st?.tunnelsRefused), 1);
    assert.equal(num(st?.tunnelsAccepted), 0);
    await px.stop();
  });

  test('bad command lines exit non-zero at once with one clear line', async () => {
    // `first`: what the first human-readable stderr line must say; `also`: what stderr must
    // say somewhere. Lines that are JSON (the log's fatal record: stderr is the log without
    // -l) and parenthesised hints such as "(Did you mean --filter?)" may follow.
    const cases: { name: string; args: string[]; ns: boolean; first: RegExp; also?: RegExp }[] = [
      { name: 'missing -F', args: ['-i', 'lo'], ns: false, first: /missing -F/ },
      { name: 'unknown option', args: ['-F', 'tcp', '--filtr', 'tcp'], ns: false, first: /unknown option '--filtr'/, also: /--filter\b/ },
      { name: '-p 0', args: ['-F', 'tcp', '-p', '0'], ns: false, first: /-p.*1 to 65535/ },
      // These get as far as listening and opening the capture: run them in the assistant namespace.
      { name: 'bad filter', args: ['-i', 'v-assistant', '-F', 'tcp and', '-p', '36701'], ns: true, first: /filter 'tcp and'/ },
      { name: 'no such device', args: ['-i', 'nosuchdev0', '-F', 'tcp', '-p', '36702'], ns: true, first: /'nosuchdev0' does not exist/ },
      { name: 'port in use', args: interceptArgs(), ns: true, first: /36524.*in use/ },
    ];
    const failures: string[] = [];
    for (const c of cases) {
      const argv = c.ns ? ['ip', 'netns', 'exec', tb.ns('assistant'), process.execPath, BIN.intercept, ...c.args]
        : [process.execPath, BIN.intercept, ...c.args];
      const t0 = Date.now();
      const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 10_000, killSignal: 'SIGKILL' });
      const ms = Date.now() - t0;
      const human = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('{'));
      console.log(`# ${c.name}: exit ${r.status} in ${ms} ms: ${JSON.stringify(r.stderr.trim())}`);
      if (r.status === 0 || r.status === null) failures.push(`${c.name}: exit status ${r.status}`);
      if (ms > 5000) failures.push(`${c.name}: took ${ms} ms`);
      if (!(human[0] ?? '').startsWith('intercept: ') || !c.first.test(human[0])) {
        failures.push(`${c.name}: first line is not "intercept: …" matching ${c.first}: ${JSON.stringify(r.stderr)}`);
      }
      if (c.also && !c.also.test(human.join('\n'))) failures.push(`${c.name}: stderr does not say ${c.also}`);
      const extra = human.slice(1).filter((l) => !/^\(.*\)$/.test(l.trim()));
      if (extra.length) failures.push(`${c.name}: more than one line of message: ${JSON.stringify(human)}`);
      if (r.stdout.trim()) failures.push(`${c.name}: wrote to stdout: ${JSON.stringify(r.stdout)}`);
    }
    assert.deepEqual(failures, []);
    assert.equal(icpt.child.exitCode, null, 'the running intercept was not disturbed');
  });

  test('figures: a burst of 20,000 SYN-ACKs, all registered, all forwarded', async () => {
    const ips = CLIENT_IPS.slice(4, 8);
    const from = 20000, to = 24999;
    const n = ips.length * (to - from + 1);
    await ctl.call('connect', { c: 'perf', host: ASSISTANT_IP, port: CONTROL_PORT, expectSrc: TARGET, samples: 0 });
    await ctl.call('add', { c: 'perf', target: TARGET, ips, from, to });
    const pid = icpt.child.pid!;
    const st0 = await icpt.freshStats();
    const cpu0 = cpuSeconds(pid);
    const t0 = Date.now();
    const s = syn({ target: TARGET, ips, from, to, batch: 250, paceMs: 5 });
    const sent = await s.sent;
    const r = await untilAllSeen('perf', 40_000);
    const tAll = Date.now();
    const cpu1 = cpuSeconds(pid);
    const errs = await s.done;
    const st1 = await icpt.freshStats();
    const windowS = Math.max(r.lastAt - r.firstAt, 1) / 1000;
    console.log(`# burst: ${n} SYNs sent in ${sent.ms} ms (${Math.round(n / (sent.ms / 1000))}/s); ` +
      `${r.registeredSeen}/${n} clients got records, ${r.records} records in ${r.batches} batches ` +
      `(${(r.records / r.batches).toFixed(1)} per batch) over ${windowS.toFixed(2)} s = ${Math.round(r.records / windowS)} records/s; ` +
      `all in ${tAll - t0} ms; intercept CPU ${(cpu1 - cpu0).toFixed(2)} s ` +
      `(${Math.round(((cpu1 - cpu0) * 1e6) / Math.max(r.records, 1))} µs/record); ` +
      `forwarded +${num(st1?.forwarded) - num(st0?.forwarded)}, captured +${num(st1?.captured) - num(st0?.captured)}; ` +
      `RSS ${rssMiB(pid).toFixed(1)} MiB; generator errors ${JSON.stringify(errs)}`);
    assert.deepEqual(errs, {});
    assertWellFormed(r);
    assert.equal(r.registeredSeen, n, `records for ${r.registeredSeen} of ${n} registered clients`);
    assert.equal(r.unexpected, 0);
    assert.equal(icpt.child.exitCode, null);
    await ctl.call('destroy', { c: 'perf' });
  });
});
