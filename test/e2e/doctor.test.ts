/**
 * `--doctor` end to end: both daemons' doctors in the namespace bed, a healthy deployment and
 * one fault at a time (applied and undone on one shared bed): the target's route to the
 * assistant replaced, a firewall on the target dropping the probe, nothing listening on the
 * target port, intercept not running, the assistant forwarding, tcpcopy without CAP_NET_RAW.
 * Each case asserts the exit status and the check that names the fault.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Testbed, TARGET_IP, ASSISTANT_IP, ONLINE_IP, CLIENT_NET, HttpServerHandle, LoadResult } from '../../lab/testbed';
import { buildProbePacket } from '../../src/doctor/probe';
import { PcapFileWriter } from '../../src/wire/pcap';
import { LinkType } from '../../src/wire/link';
import { parseIp } from '../../src/wire/ipv4';
import { TcpFlag } from '../../src/wire/tcp';
import { BIN, DaemonHandle, startDaemon } from '../../lab/daemons';

const isRoot = process.getuid?.() === 0;

interface Check { id: string; status: 'ok' | 'warn' | 'fail'; detail: string; fix: string }
interface DoctorRun { code: number | null; ok: boolean; checks: Check[]; stdout: string; stderr: string; ms: number }

const TABLE = 'tcpcopy_doctor_test';

describe('--doctor', { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  let tb: Testbed;
  let online: HttpServerHandle;
  let target: HttpServerHandle;
  let icpt: DaemonHandle | undefined;
  const icptArgs = (): string[] => ['-i', tb.dev('assistant'), '-F', 'tcp and src portrange 8080-8081'];
  const tcArgs = (...extra: string[]): string[] => ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP, ...extra];

  before(async () => {
    tb = await Testbed.create({ clientAddrs: 2 });
    online = await tb.startHttpServer('online', 80, { body: 100 });
    target = await tb.startHttpServer('target', 8080, { body: 100 });
    icpt = await startDaemon(tb, 'assistant', 'intercept', icptArgs());
  });

  after(async () => {
    if (icpt) await icpt.stop();
    if (tb) {
      for (const h of ['target', 'online'] as const) {
        try { tb.execSync(h, 'nft', ['delete', 'table', 'ip', TABLE]); } catch { /* not there */ }
      }
      await tb.destroy();
    }
  });

  /** Runs a doctor in a namespace (bounded) and parses its JSON report. */
  function doctor(host: 'online' | 'assistant', name: 'tcpcopy' | 'intercept', args: string[], wrap: string[] = []): Promise<DoctorRun> {
    const argv = [BIN[name], '--doctor', '--json', ...args];
    const child = wrap.length
      ? tb.spawn(host, wrap[0], [...wrap.slice(1), process.execPath, ...argv])
      : tb.spawn(host, process.execPath, argv);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${name} --doctor ran over 20 s: ${stdout}${stderr}`)); }, 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        const ms = Date.now() - started;
        let parsed: { ok: boolean; checks: Check[] };
        try {
          parsed = JSON.parse(stdout) as { ok: boolean; checks: Check[] };
        } catch {
          reject(new Error(`${name} --doctor printed no JSON (exit ${code}): ${stdout}${stderr}`));
          return;
        }
        resolve({ code, ok: parsed.ok, checks: parsed.checks, stdout, stderr, ms });
      });
    });
  }

  function check(r: DoctorRun, prefix: string): Check {
    const c = r.checks.find((x) => x.id === prefix || x.id.startsWith(prefix));
    assert.ok(c, `a check named ${prefix} in ${r.stdout}`);
    return c;
  }

  /** Client traffic while the doctor listens, so that it finds a probe address in the capture. */
  function backgroundLoad(requests: number): Promise<LoadResult> {
    return tb.runLoad({ requests, concurrency: 2, rate: 20, durationMs: requests * 60, localAddrs: tb.clientIps });
  }

  test('healthy: both doctors pass, the probe comes back through intercept', async () => {
    const tc = await startDaemon(tb, 'online', 'tcpcopy', tcArgs());
    let probePort = 0;
    try {
      const load = backgroundLoad(200);
      // Both at once: intercept's doctor sees the replies of the replay that runs meanwhile.
      const [r, ri] = await Promise.all([doctor('online', 'tcpcopy', tcArgs()), doctor('assistant', 'intercept', icptArgs())]);
      await load;
      assert.equal(r.code, 0, r.stdout);
      assert.equal(r.ok, true);
      for (const id of ['permissions', 'capture', 'raw-send', 'intercept@', 'probe@']) assert.equal(check(r, id).status, 'ok', `${id}: ${r.stdout}`);
      assert.match(check(r, 'probe@').detail, /a client address seen in the capture/);
      assert.match(check(r, 'probe@').detail, /SYN-ACK came back/);
      // Its own bounds add up to about 10 s; the slack is for a busy machine starting node.
      assert.ok(r.ms < 15_000, `the doctor took ${r.ms} ms`);
      probePort = Number(/SYN [\d.]+:(\d+) ->/.exec(check(r, 'probe@').detail)?.[1]);
      assert.ok(probePort > 0);
      assert.equal(ri.code, 0, ri.stdout);
      for (const id of ['ip-forward', 'permissions', 'devices', 'filter', 'control-port', 'replies']) assert.equal(check(ri, id).status, 'ok', `${id}: ${ri.stdout}`);
      assert.match(check(ri, 'control-port').detail, /held by intercept/);
    } finally {
      await tc.stop();
    }
    // The probe left nothing on the target (its RST closed the half-open connection). Its
    // address is a real client's, so a replayed session of that client may have used the same
    // port and be in TIME-WAIT: only a finished connection gets there, never the probe's.
    const ss = tb.execSync('target', 'ss', ['-tan', `( sport = :8080 and dport = :${probePort} )`]);
    const left = ss.trim().split('\n').slice(1).filter((l) => !l.startsWith('TIME-WAIT'));
    assert.deepEqual(left, [], `no socket of the probe on the target: ${ss}`);
  });

  test('the target routes the client network to the real clients: probe fails and prints the route fix', async () => {
    tb.execSync('target', 'ip', ['route', 'replace', CLIENT_NET, 'dev', tb.dev('target')]);
    try {
      const load = backgroundLoad(120);
      const r = await doctor('online', 'tcpcopy', tcArgs());
      await load;
      assert.equal(r.code, 1, r.stdout);
      const p = check(r, 'probe@');
      assert.equal(p.status, 'fail');
      assert.match(p.detail, /no answer came back/);
      assert.match(p.detail, /a plain connect from this host .* works/);
      assert.match(p.fix, new RegExp(`ip route add 198\\.18\\.1\\.0/24 via ${ASSISTANT_IP.replace(/\./g, '\\.')}`));
      assert.equal(check(r, 'intercept@').status, 'ok');
    } finally {
      tb.execSync('target', 'ip', ['route', 'replace', CLIENT_NET, 'via', ASSISTANT_IP, 'dev', tb.dev('target')]);
    }
  });

  test('a firewall on the target drops the probe: probe fails, the service itself answers this host', async () => {
    tb.execSync('target', 'nft', ['-f', '-'], {
      input: `table ip ${TABLE} {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ip saddr 198.18.2.0/24 tcp dport 8080 drop\n }\n}\n`,
    });
    try {
      const r = await doctor('online', 'tcpcopy', tcArgs('-c', '198.18.2.x'));
      assert.equal(r.code, 1, r.stdout);
      const p = check(r, 'probe@');
      assert.equal(p.status, 'fail');
      assert.match(p.detail, /probe address 198\.18\.2\.1: a -c address/);
      assert.match(p.detail, /no answer came back/);
      assert.match(p.detail, /firewall/);
      assert.match(p.fix, /nft list ruleset/);
      const counted = tb.execSync('target', 'nft', ['list', 'table', 'ip', TABLE]);
      assert.ok(counted.includes('drop'), counted);
    } finally {
      tb.execSync('target', 'nft', ['delete', 'table', 'ip', TABLE]);
    }
  });

  test('nothing listens on the target port: the target answers RST, which comes back through intercept', async () => {
    const r = await doctor('online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8081`, '-s', ASSISTANT_IP, '-c', '198.18.2.x']);
    assert.equal(r.code, 1, r.stdout);
    const p = check(r, 'probe@');
    assert.equal(p.status, 'fail');
    assert.match(p.detail, /answered with RST/);
    assert.match(p.detail, /nothing listens on port 8081/);
    assert.match(p.detail, /refused too/);
  });

  test('intercept is not running: the intercept check fails, the probe is not run', async () => {
    await icpt!.stop();
    icpt = undefined;
    try {
      const r = await doctor('online', 'tcpcopy', tcArgs('-c', '198.18.2.x'));
      assert.equal(r.code, 1, r.stdout);
      const c = check(r, 'intercept@');
      assert.equal(c.status, 'fail');
      assert.match(c.detail, /connection refused/);
      assert.match(check(r, 'probe@').detail, /not run: no intercept/);
      // On the assistant, the doctor sees the control port free.
      const ri = await doctor('assistant', 'intercept', icptArgs());
      assert.match(check(ri, 'control-port').detail, /is free/);
    } finally {
      icpt = await startDaemon(tb, 'assistant', 'intercept', icptArgs());
    }
  });

  test('the assistant forwards (ip_forward=1): intercept --doctor fails, intercept warns at start-up', async () => {
    tb.execSync('assistant', 'sysctl', ['-w', 'net.ipv4.ip_forward=1']);
    try {
      const ri = await doctor('assistant', 'intercept', icptArgs());
      assert.equal(ri.code, 1, ri.stdout);
      const c = check(ri, 'ip-forward');
      assert.equal(c.status, 'fail');
      assert.match(c.fix, /sysctl -w net\.ipv4\.ip_forward=0/);
      const second = await startDaemon(tb, 'assistant', 'intercept', [...icptArgs(), '-p', '36600']);
      try {
        const text = fs.readFileSync(second.logFile, 'utf8');
        assert.match(text, /intercept: warning: net\.ipv4\.ip_forward is 1/, 'a warning at start-up');
      } finally {
        await second.stop();
      }
    } finally {
      tb.execSync('assistant', 'sysctl', ['-w', 'net.ipv4.ip_forward=0']);
    }
  });

  test('--secret: a wrong secret fails the intercept check, the right one passes and the probe comes back', async () => {
    const secured = await startDaemon(tb, 'assistant', 'intercept', [...icptArgs(), '-p', '36601', '--secret', 'right-secret']);
    try {
      const wrong = await doctor('online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:36601`, '--secret', 'wrong-secret', '-c', '198.18.2.x']);
      assert.equal(wrong.code, 1, wrong.stdout);
      const w = check(wrong, 'intercept@');
      assert.equal(w.status, 'fail');
      assert.match(w.detail, /not our shared secret/);
      const right = await doctor('online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', `${ASSISTANT_IP}:36601`, '--secret', 'right-secret', '-c', '198.18.2.x']);
      assert.equal(check(right, 'intercept@').status, 'ok', right.stdout);
      assert.match(check(right, 'intercept@').detail, /shared secret accepted/);
      assert.equal(check(right, 'probe@').status, 'ok', right.stdout);
      // The capture saw no client (none is active, -c gave the probe address): a warning, exit 0.
      assert.equal(check(right, 'capture').status, 'warn');
      assert.equal(right.code, 0, right.stdout);
    } finally {
      await secured.stop();
    }
  });

  test('an OUTPUT rule on the online server drops the copies: raw-send fails and names the rule; with -o the probe passes', async () => {
    tb.execSync('online', 'nft', ['-f', '-'], {
      input: `table ip ${TABLE} {\n chain output {\n  type filter hook output priority 0; policy accept;\n  ip saddr 198.18.2.0/24 tcp dport 8080 drop\n }\n}\n`,
    });
    try {
      const r = await doctor('online', 'tcpcopy', tcArgs('-c', '198.18.2.x'));
      assert.equal(r.code, 1, r.stdout);
      const c = check(r, 'raw-send');
      assert.equal(c.status, 'fail');
      assert.match(c.detail, /refused the raw send/);
      assert.match(c.detail, /tcp dport 8080 drop/);
      assert.match(check(r, 'probe@').detail, /could not be sent/);
      // With -o the copies leave as Ethernet frames, past the host's OUTPUT chain: the doctor
      // sends its probe the same way, and it comes back.
      const o = await doctor('online', 'tcpcopy', tcArgs('-c', '198.18.2.x', '-o', tb.dev('online')));
      assert.equal(check(o, 'raw-send').status, 'ok', o.stdout);
      assert.match(check(o, 'raw-send').detail, /Ethernet frames on v-online/);
      assert.equal(check(o, 'probe@').status, 'ok', o.stdout);
      assert.equal(o.code, 0, o.stdout);
    } finally {
      tb.execSync('online', 'nft', ['delete', 'table', 'ip', TABLE]);
    }
  });

  test('offline replay (-i file): the client addresses come from the file, the probe uses one of them', async () => {
    // A small raw-IP capture: SYNs from 198.18.2.7 to the online server's port 80.
    const file = path.join(tb.workDir, 'doctor-offline.pcap');
    const w = PcapFileWriter.create(file, LinkType.Raw);
    const pkt = Buffer.alloc(64);
    for (let i = 0; i < 5; i++) {
      const len = buildProbePacket(pkt, parseIp('198.18.2.7'), 30000 + i, parseIp(ONLINE_IP), 80, 1000 * i, TcpFlag.SYN, i);
      w.write(pkt, 0, len, 1_700_000_000 + i, 0);
    }
    w.close();
    const r = await doctor('online', 'tcpcopy', ['-i', file, ...tcArgs()]);
    assert.equal(r.code, 0, r.stdout);
    assert.match(check(r, 'capture').detail, /5 packet\(s\) read, 5 for port\(s\) 80 from 1 client address/);
    const p = check(r, 'probe@');
    assert.equal(p.status, 'ok', r.stdout);
    assert.match(p.detail, /probe address 198\.18\.2\.7: a client address seen in the file/);
  });

  test('tcpcopy without CAP_NET_RAW: the permissions check fails with the setcap command', async () => {
    const r = await doctor('online', 'tcpcopy', tcArgs('-c', '198.18.2.x'), ['capsh', '--drop=cap_net_raw', '--', '-c', 'exec "$0" "$@"']);
    assert.equal(r.code, 1, r.stdout);
    const c = check(r, 'permissions');
    assert.equal(c.status, 'fail');
    assert.match(c.detail, /CAP_NET_RAW is missing/);
    assert.match(c.fix, /setcap cap_net_raw/);
    assert.equal(check(r, 'intercept@').status, 'ok', 'the control connection needs no capability');
  });
});
