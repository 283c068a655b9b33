/**
 * tcpcopy's other capture and send paths, end to end: libpcap capture on a veth, link-layer
 * send, offline replay of a capture recorded with tcpdump during the test (at -a 1 and -a 10),
 * and a non-HTTP protocol (Debian's redis-server driven by redis-benchmark).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Testbed, TARGET_IP, ASSISTANT_IP, ONLINE_IP, HttpServerHandle, HttpServerStats } from '../../lab/testbed';
import { DaemonHandle, num, startDaemon, waitFor } from '../../lab/daemons';

const isRoot = process.getuid?.() === 0;
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function requestsFrom(s: HttpServerStats, prefix: string): { requests: number; bytes: number } {
  let requests = 0, bytes = 0;
  for (const [ip, v] of Object.entries(s.perClient)) {
    if (!ip.startsWith(prefix)) continue;
    requests += v.requests;
    bytes += v.headerBytes + v.bodyBytes;
  }
  return { requests, bytes };
}

describe('capture modes, offline replay and redis', { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  let tb: Testbed;
  let online: HttpServerHandle;
  let target: HttpServerHandle;
  let icpt: DaemonHandle;

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 4, extraRoutesViaAssistant: ['198.18.2.0/24', '198.18.3.0/24', '198.18.4.0/24', '198.18.5.0/24', '198.18.6.0/24', '198.18.7.0/24'] });
    online = await tb.startHttpServer('online', 80, { body: 500 });
    target = await tb.startHttpServer('target', 8080, { body: 500 });
    icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and (src port 8080 or src port 6380)']);
  });

  after(async () => {
    if (icpt) await icpt.stop();
    if (tb) await tb.destroy();
  });

  /** Runs a load with tcpcopy running with `args`; returns online and target deltas (client addresses only). */
  async function replicate(args: string[], prefixTarget = '198.18.1.') {
    const tc = await startDaemon(tb, 'online', 'tcpcopy', args);
    try {
      const o0 = requestsFrom(await online.stats(), '198.18.1.');
      const t0 = requestsFrom(await target.stats(), prefixTarget);
      await Promise.all([
        tb.runLoad({ requests: 300, concurrency: 6, rate: 300, localAddrs: tb.clientIps }),
        tb.runLoad({ requests: 600, concurrency: 4, keepalive: true, rate: 600, localAddrs: tb.clientIps }),
      ]);
      const o1 = requestsFrom(await online.stats(), '198.18.1.');
      const want = o1.requests - o0.requests;
      let t1 = t0;
      await waitFor(async () => { t1 = requestsFrom(await target.stats(), prefixTarget); return t1.requests - t0.requests >= want; }, 15000, 300);
      return { online: want, onlineBytes: o1.bytes - o0.bytes, target: t1.requests - t0.requests, targetBytes: t1.bytes - t0.bytes, stats: await tc.freshStats() };
    } finally {
      await tc.stop();
    }
  }

  test('libpcap capture on a veth (-i device, filter built from -x)', async () => {
    const r = await replicate(['-i', tb.dev('online'), '-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP]);
    assert.equal(r.online, 900);
    assert.equal(r.target, r.online);
    assert.equal(r.targetBytes, r.onlineBytes);
  });

  /**
   * Runs `body` with an nftables rule in the online namespace that drops every packet its IP
   * stack sends to the target's port: what the online host's own stack (and a raw IP socket)
   * sends to the target dies there, frames sent at the link layer pass by. Checks first that
   * the rule really drops the stack's packets. Returns how many packets the rule dropped during
   * `body`.
   */
  async function withStackBlocked<T>(body: () => Promise<T>): Promise<{ result: T; dropped: number }> {
    const nft = (...a: string[]) => tb.execSync('online', 'nft', a);
    tb.execSync('online', 'nft', ['-f', '-'], { input: `table ip stackguard {
  chain out {
    type filter hook output priority 0;
    ip daddr ${TARGET_IP} tcp dport 8080 counter drop
  }
}
` });
    const counted = () => Number(/packets (\d+)/.exec(nft('list', 'table', 'ip', 'stackguard'))?.[1] ?? -1);
    try {
      // Control: a connection from the online host's own stack to the target does not get through.
      const probe = tb.execSync('online', process.execPath, ['-e',
        `const s = require('net').connect(8080, '${TARGET_IP}');
         const t = setTimeout(() => { console.log('blocked'); s.destroy(); }, 1200);
         s.on('connect', () => { console.log('connected'); clearTimeout(t); s.destroy(); });
         s.on('error', (e) => { console.log(e.code); clearTimeout(t); });`]).trim();
      assert.equal(probe, 'blocked', 'the rule drops what the online stack sends to the target');
      const before = counted();
      assert.ok(before >= 1, `the rule counted the probe's SYN (${before})`);
      const result = await body();
      return { result, dropped: counted() - before };
    } finally {
      try { nft('delete', 'table', 'ip', 'stackguard'); } catch { /* gone */ }
    }
  }

  test('link-layer send (-o device, MAC resolved through the neighbour table): frames bypass the online IP stack', async () => {
    const { result: r, dropped } = await withStackBlocked(() =>
      replicate(['-o', tb.dev('online'), '-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP]));
    assert.equal(r.online, 900);
    assert.equal(r.target, r.online, 'replicated although the online stack cannot reach the target: the frames went out through libpcap');
    assert.equal(r.targetBytes, r.onlineBytes);
    assert.equal(dropped, 0, 'nothing tcpcopy sent went through the online IP stack');
  });

  test('libpcap capture and link-layer send together, with explicit MACs (the target sees the configured source MAC)', async () => {
    const mac = (host: 'online' | 'target') => tb.execSync(host, 'cat', [`/sys/class/net/${tb.dev(host)}/address`]).trim();
    // A source MAC that no interface has: only frames built by tcpcopy can carry it.
    const fakeSrc = '02:00:5e:10:20:30';
    assert.notEqual(mac('online'), fakeSrc);
    const cap = await tb.startCapture('target', ['-i', tb.dev('target'), '-e', '-Q', 'in',
      `ether src ${fakeSrc} and ether dst ${mac('target')} and tcp dst port 8080`]);
    let frames: string[] = [];
    const { result: r, dropped } = await withStackBlocked(async () => {
      try {
        return await replicate(['-i', tb.dev('online'), '-o', tb.dev('online'), '-x', `80@${fakeSrc}-${TARGET_IP}:8080@${mac('target')}`, '-s', ASSISTANT_IP]);
      } finally {
        frames = await cap.stop();
      }
    });
    assert.equal(r.online, 900);
    assert.equal(r.target, r.online);
    assert.equal(r.targetBytes, r.onlineBytes);
    assert.equal(dropped, 0, 'nothing tcpcopy sent went through the online IP stack');
    // Every replayed session sent at least its SYN, a request and an ACK from that MAC.
    assert.ok(frames.length >= 3 * 300, `frames from ${fakeSrc} at the target: ${frames.length}`);
  });

  /**
   * A tcpdump recording of ~4 s of client traffic to the online server (short and keep-alive
   * connections), made once and shared by the tests that replay it (each of them can also run
   * alone: the first to ask records it).
   */
  let recordingP: Promise<{ file: string; recorded: number; inFile: number }> | undefined;
  function recording(): Promise<{ file: string; recorded: number; inFile: number }> {
    recordingP ??= (async () => {
      const file = path.join(tb.workDir, 'online.pcap');
      const dump = tb.spawn('online', 'tcpdump', ['-i', tb.dev('online'), '-U', '-w', file, '-s', '0', 'tcp and dst port 80']);
      await waitFor(() => fs.existsSync(file), 5000, 50);
      // tcpdump may still be setting up its capture when the file appears: a recording that
      // missed the first ~0.7 s of the load was seen (333 of 400 requests in the file).
      await new Promise((r) => setTimeout(r, 1500));
      const o0 = requestsFrom(await online.stats(), '198.18.1.');
      // About 4 s of traffic: short and keep-alive connections.
      await Promise.all([
        tb.runLoad({ requests: 200, concurrency: 4, rate: 50, localAddrs: tb.clientIps }),
        tb.runLoad({ requests: 200, concurrency: 4, keepalive: true, rate: 50, localAddrs: tb.clientIps }),
      ]);
      const recorded = requestsFrom(await online.stats(), '198.18.1.').requests - o0.requests;
      await new Promise((r) => setTimeout(r, 1000));
      await tb.stop(dump, 'SIGINT', 5000);
      assert.equal(recorded, 400);
      assert.ok(fs.statSync(file).size > 10000, 'tcpdump wrote the capture');
      // Requests in the file (one packet each): a replay is held to these. A recording that
      // missed some (tcpdump) is said so, not blamed on the replay.
      const inFile = tb.execSync('online', 'tcpdump', ['-r', file, '-nn',
        'tcp dst port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)']).split('\n').filter((l) => l.trim()).length;
      if (inFile !== recorded) console.log(`# the recording holds ${inFile} of the ${recorded} requests the online server served`);
      assert.ok(inFile >= recorded * 0.9, `tcpdump recorded only ${inFile} of ${recorded} requests`);
      return { file, recorded, inFile };
    })();
    return recordingP;
  }

  test('offline replay of a tcpdump capture: every request, and -a 10 runs faster than -a 1', async () => {
    const { file, inFile } = await recording();

    const replay = async (accel: number, net: string) => {
      const t0 = requestsFrom(await target.stats(), net);
      const started = Date.now();
      const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-i', file, '-a', String(accel), '-x', `80-${TARGET_IP}:8080`,
        '-s', ASSISTANT_IP, '-c', `${net}x`, '--offline-tail', '10']);
      await new Promise<void>((r) => { if (tc.child.exitCode !== null) r(); else tc.child.once('exit', () => r()); });
      const ms = Date.now() - started;
      const t1 = requestsFrom(await target.stats(), net);
      const summary = tc.lines().find((l) => l.msg === 'summary')?.summary as Record<string, unknown>;
      return { requests: t1.requests - t0.requests, ms, summary, code: tc.child.exitCode };
    };
    const slow = await replay(1, '198.18.2.');
    const fast = await replay(10, '198.18.3.');
    console.log(`# offline replay of ${inFile} recorded requests: -a 1 ${slow.requests} in ${slow.ms} ms, -a 10 ${fast.requests} in ${fast.ms} ms`);
    assert.equal(slow.code, 0);
    assert.equal(fast.code, 0);
    assert.equal(slow.requests, inFile, 'every recorded request replayed at -a 1');
    assert.equal(fast.requests, inFile, 'every recorded request replayed at -a 10');
    assert.ok(slow.ms >= 3500, `-a 1 took ${slow.ms} ms for ~4 s of traffic`);
    assert.ok(fast.ms < slow.ms * 0.6, `-a 10 took ${fast.ms} ms vs ${slow.ms} ms at -a 1`);
    assert.equal(String(slow.summary.reason), 'offline replay is complete');
  });

  /** Replays `file` with these extra flags, each client mapped into `net` (`-c <net>x`); waits for the exit. */
  async function replayFile(file: string, net: string, extra: string[]) {
    const t0 = requestsFrom(await target.stats(), net);
    const started = Date.now();
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-i', file, ...extra, '-x', `80-${TARGET_IP}:8080`,
      '-s', ASSISTANT_IP, '-c', `${net}x`, '--offline-tail', '10']);
    await new Promise<void>((r) => { if (tc.child.exitCode !== null) r(); else tc.child.once('exit', () => r()); });
    const ms = Date.now() - started;
    // The target may answer the last requests a moment after tcpcopy has sent them.
    let t1 = requestsFrom(await target.stats(), net);
    await waitFor(async () => { const n = requestsFrom(await target.stats(), net); const moved = n.requests !== t1.requests; t1 = n; return !moved; }, 3000, 300);
    return { requests: t1.requests - t0.requests, ms, code: tc.child.exitCode, lines: tc.lines() };
  }

  /** Records of a little-endian classic pcap file: offset and timestamp (µs) of each. */
  function pcapRecords(buf: Buffer): { at: number; us: number }[] {
    assert.equal(buf.readUInt32LE(0), 0xa1b2c3d4, 'a little-endian microsecond pcap file');
    const out: { at: number; us: number }[] = [];
    for (let at = 24; at + 16 <= buf.length; at += 16 + buf.readUInt32LE(at + 8)) {
      out.push({ at, us: buf.readUInt32LE(at) * 1e6 + buf.readUInt32LE(at + 4) });
    }
    return out;
  }

  test('-I: an idle gap in the capture is cut to -I ms; without -I it is kept', async () => {
    const { file, inFile } = await recording();
    // The recording with a 10 s pause in the middle: every record from the middle on is 10 s later.
    const buf = Buffer.from(fs.readFileSync(file));
    const recs = pcapRecords(buf);
    const spanMs = (recs[recs.length - 1].us - recs[0].us) / 1000;
    const mid = Math.floor(recs.length / 2);
    for (const r of recs.slice(mid)) buf.writeUInt32LE(buf.readUInt32LE(r.at) + 10, r.at);
    const gap = path.join(tb.workDir, 'gap.pcap');
    fs.writeFileSync(gap, buf);
    const kept = await replayFile(gap, '198.18.5.', ['-a', '2']);
    const cut = await replayFile(gap, '198.18.6.', ['-a', '2', '-I', '200']);
    console.log(`# -I: ${recs.length} packets over ${Math.round(spanMs)} ms + a 10 s gap at -a 2: without -I ${kept.requests} requests in ${kept.ms} ms, -I 200 ${cut.requests} in ${cut.ms} ms`);
    assert.equal(kept.code, 0);
    assert.equal(cut.code, 0);
    assert.equal(kept.requests, inFile, 'every recorded request replayed without -I');
    assert.equal(cut.requests, inFile, 'every recorded request replayed with -I 200');
    // At -a 2 the pause lasts 5 s: kept, the replay takes at least that on top of the traffic's
    // own ~2 s; cut to 0.2 s (0.1 s at -a 2), the replay is ~4.9 s shorter (at least 3.5 s).
    assert.ok(kept.ms >= spanMs / 2 + 5000 - 300, `without -I: ${kept.ms} ms for ${Math.round(spanMs / 2)} ms of traffic and a 5 s pause`);
    assert.ok(cut.ms <= kept.ms - 3500, `-I 200: ${cut.ms} ms, against ${kept.ms} ms with the pause kept`);
  });

  test('-T 2: the file is replayed twice, every request each time', async () => {
    const { file, inFile } = await recording();
    const r = await replayFile(file, '198.18.7.', ['-a', '10', '-T', '2']);
    const records = pcapRecords(fs.readFileSync(file)).length;
    const end = r.lines.find((l) => l.msg === 'end of capture file; letting sessions finish');
    const sum = (r.lines.find((l) => l.msg === 'summary')?.summary ?? {}) as Record<string, unknown>;
    const why = ['sessionsCreated', 'handshakes', 'portReuses', 'synTimeouts', 'sessionsResetByTarget', 'sessionsTimedOut', 'repliesOutOfWindow']
      .map((k) => `${k} ${num(sum[k])}`).join(', ');
    console.log(`# -T 2: ${r.requests} requests at the target for ${inFile} in the file, in ${r.ms} ms; ${num(end?.packets)} packets read for ${records} in the file; ${why}`);
    assert.equal(r.code, 0);
    assert.equal(num(end?.packets), 2 * records, 'every packet of the file was read twice');
    assert.equal(num(sum.sessionsCreated) % 2, 0, `each pass creates the same sessions (${why})`);
    // The second pass sends the first pass's connections again (same addresses, ports and
    // sequence numbers): it starts once the first pass's sessions are over, or a session still
    // open takes its packets for retransmissions (795-799 of 800 before the wait).
    assert.equal(r.requests, 2 * inFile, `every request of both passes (${why})`);
    const prog = sum.offline as { passWaitMs?: number } | undefined;
    assert.ok(prog && typeof prog.passWaitMs === 'number' && prog.passWaitMs < 60_000, `waited ${prog?.passWaitMs} ms between passes`);
  });

  test('a truncated capture file replays what it can and says where it stopped', async () => {
    const { file } = await recording();
    const cut = path.join(tb.workDir, 'cut.pcap');
    const buf = fs.readFileSync(file);
    // Cut in the middle of the record that spans 60 % of the file (tcpdump writes classic
    // little-endian pcap: 24-byte file header, 16-byte record headers with incl_len at +8), so
    // the cut never lands on a record boundary (which would be a clean end).
    assert.equal(buf.readUInt32LE(0), 0xa1b2c3d4, 'a little-endian microsecond pcap file');
    let at = 24;
    const aim = Math.floor(buf.length * 0.6);
    while (at + 16 + buf.readUInt32LE(at + 8) <= aim) at += 16 + buf.readUInt32LE(at + 8);
    fs.writeFileSync(cut, buf.subarray(0, at + 16 + Math.max(1, buf.readUInt32LE(at + 8) >> 1)));
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-i', cut, '-a', '20', '-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, '-c', '198.18.4.x', '--offline-tail', '5']);
    await new Promise<void>((r) => { if (tc.child.exitCode !== null) r(); else tc.child.once('exit', () => r()); });
    assert.equal(tc.child.exitCode, 0, 'some packets could be read: not a failure');
    const warn = tc.lines().find((l) => String(l.msg).includes('capture file ends early'));
    assert.ok(warn, 'a warning names the early end');
    assert.match(String(warn.msg), /at byte \d+ \(record \d+\)/);
    assert.ok(num(warn.fileOffset) > 0);
    // An empty file is a failure.
    const empty = path.join(tb.workDir, 'empty.pcap');
    fs.writeFileSync(empty, '');
    const r = spawnSync(process.execPath, [path.join(__dirname, '../../../bin/tcpcopy'), '-i', empty, '-x', `80-${TARGET_IP}:8080`, '-s', '127.0.0.1', '-L'], { encoding: 'utf8', timeout: 20000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /empty\.pcap/);
  });

  test('redis: redis-benchmark against the online redis, the target counts the same commands', { skip: !has('redis-server') && 'redis-server missing' }, async () => {
    const redis = (host: 'online' | 'target', port: number) => tb.spawn(host, 'redis-server', ['--port', String(port), '--bind', '0.0.0.0',
      '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', tb.workDir, '--dbfilename', `${host}.rdb`]);
    const ro = redis('online', 6379);
    const rt = redis('target', 6380);
    const ping = (host: 'online' | 'target', port: number) => {
      try { return tb.execSync(host, 'redis-cli', ['-p', String(port), 'ping'], { timeoutMs: 2000 }).includes('PONG'); } catch { return false; }
    };
    assert.ok(await waitFor(() => ping('online', 6379) && ping('target', 6380), 10000, 200), 'both redis servers answer');
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `6379-${TARGET_IP}:6380`, '-s', ASSISTANT_IP]);
    try {
      tb.execSync('client', 'redis-benchmark', ['-h', ONLINE_IP, '-p', '6379', '-n', '3000', '-c', '8', '-q', '-t', 'set,get,incr,lpush,lpop'], { timeoutMs: 60000 });
      const stats = (host: 'online' | 'target', port: number): Record<string, number> => {
        const out = tb.execSync(host, 'redis-cli', ['-p', String(port), 'info', 'commandstats']);
        const m: Record<string, number> = {};
        for (const line of out.split('\n')) {
          const x = /^cmdstat_([a-z|]+):calls=(\d+)/.exec(line.trim());
          if (x) m[x[1]] = Number(x[2]);
        }
        return m;
      };
      let o: Record<string, number> = {}, t: Record<string, number> = {};
      await waitFor(() => {
        o = stats('online', 6379); t = stats('target', 6380);
        return ['set', 'get', 'incr', 'lpush', 'lpop'].every((c) => (t[c] ?? 0) >= (o[c] ?? 0));
      }, 15000, 300);
      console.log(`# redis commandstats online ${JSON.stringify(o)} target ${JSON.stringify(t)}`);
      for (const c of ['set', 'get', 'incr', 'lpush', 'lpop']) {
        assert.ok((o[c] ?? 0) >= 3000, `online ${c} calls ${o[c]}`);
        const lost = (o[c] ?? 0) - (t[c] ?? 0);
        assert.ok(Math.abs(lost) <= Math.ceil((o[c] ?? 0) * 0.001), `${c}: online ${o[c]}, target ${t[c]}`);
      }
      const s = await tc.freshStats();
      assert.ok(num(s?.sessionsCreated) >= 8);
    } finally {
      await tc.stop();
      await tb.stop(ro);
      await tb.stop(rt);
    }
  });
});
