import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  AuthReply, authReplyKind, nativePasswordToken, parseAuthSwitch, parseGreeting, parseHandshakeResponse,
} from '../../src/tcpcopy/modules/mysql-protocol';
import { parseModuleConf } from '../../src/tcpcopy/modules/module-conf';
import { MysqlModule } from '../../src/tcpcopy/modules/mysql';
import { loadModule } from '../../src/cli/module-conf-file';
import { buildReplyRecord, REPLY_RECORD_PAYLOAD_SIZE } from '../../src/control/records';
import { tcpChecksumValid } from '../../src/wire/checksum';
import { TcpPacket } from '../../src/wire/packet';
import { DEFAULT_ENGINE_OPTIONS, Engine } from '../../src/tcpcopy/engine';
import {
  buildPacket, CaptureSender, F, ip, makeRule, parse, Parsed, Registrar, SIM_START_MS, TARGET_IP, TARGET_PORT, u32,
} from './engine-sim';

// Captured on this machine from Debian 12's MariaDB 10.11.19 and its `mariadb` client (libmariadb
// 3.3), user app with password s3cret (mysql_native_password), over TCP: real bytes, so the
// token below is checked against what the real client computed.
const hex = (s: string): Buffer => Buffer.from(s, 'hex');
/** Greeting of session 1 (scramble "Lpn\x5aW&U\\" + "NQ.0FO<zwcig"). */
const GREETING_1 = hex('640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100050000004c706e5a5726555c00fef7080200ff81150000000000001d0000004e512e30464f3c7a77636967006d7973716c5f6e61746976655f70617373776f726400');
/** The client's handshake response to it: MariaDB client, extended capabilities in the filler's last 4 bytes. */
const RESPONSE_1 = hex('ce00000184a2bf000000100021000000000000000000000000000000000000001d00000061707000145c537ee43042e5eab5a7974ae6474e12bf15676e6d7973716c5f6e61746976655f70617373776f7264007e035f6f73054c696e75780c5f636c69656e745f6e616d650a6c69626d617269616462045f70696404393936300f5f636c69656e745f76657273696f6e06332e332e3230095f706c6174666f726d067838365f36340c70726f6772616d5f6e616d65056d7973716c0c5f7365727665725f686f7374093132372e302e302e31');
const OK_1 = hex('0700000200000002000000');
const QUERY_1 = hex('090000000373656c6563742031');
/** Session 2: the client starts with caching_sha2_password, the server switches to mysql_native_password. */
const GREETING_2 = hex('640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100060000007559407139677a5000fef7080200ff81150000000000001d000000627b646344685f24326c4e22006d7973716c5f6e61746976655f70617373776f726400');
const RESPONSE_2 = hex('ba00000184a2bf000000100021000000000000000000000000000000000000001d000000617070000063616368696e675f736861325f70617373776f7264007e035f6f73054c696e75780c5f636c69656e745f6e616d650a6c69626d617269616462045f70696404393936310f5f636c69656e745f76657273696f6e06332e332e3230095f706c6174666f726d067838365f36340c70726f6772616d5f6e616d65056d7973716c0c5f7365727665725f686f7374093132372e302e302e31');
const SWITCH_2 = hex('2c000002fe6d7973716c5f6e61746976655f70617373776f7264007559407139677a50627b646344685f24326c4e2200');
const SWITCH_ANSWER_2 = hex('1400000300adc615d4361d50091471e12810cb4915f290e4');
/** Session 3's greeting: another scramble, used as "the target's". */
const GREETING_3 = hex('640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100070000005742273827596b3000fef7080200ff81150000000000001d0000004b694e2a272521754c5a6053006d7973716c5f6e61746976655f70617373776f726400');

function greeting(b: Buffer) {
  const g = parseGreeting(b, 0, b.length);
  assert.ok(typeof g !== 'string', `greeting parsed (${String(g)})`);
  return g;
}

test('greeting: MariaDB HandshakeV10 gives version, 20-byte scramble in two parts, plugin', () => {
  const g = greeting(GREETING_1);
  assert.equal(g.serverVersion, '5.5.5-10.11.19-MariaDB-0+deb12u1');
  assert.equal(g.scramble.toString('latin1'), 'Lpn' + 'ZW&U\\' + 'NQ.0FO<zwcig');
  assert.equal(g.plugin, 'mysql_native_password');
  assert.equal(g.capabilities & 0x1, 0, 'a MariaDB server leaves CLIENT_MYSQL (LONG_PASSWORD) clear');
});

test('mysql_native_password token equals what the real client computed, handshake and auth switch', () => {
  const r = parseHandshakeResponse(RESPONSE_1, 0, RESPONSE_1.length);
  assert.ok(typeof r !== 'string');
  assert.equal(r.user, 'app');
  assert.equal(r.plugin, 'mysql_native_password');
  assert.equal(r.authLen, 20);
  assert.equal(r.sequenceId, 1);
  assert.equal(r.end, RESPONSE_1.length);
  const captured = RESPONSE_1.subarray(r.authOff, r.authOff + 20);
  assert.deepEqual(nativePasswordToken('s3cret', greeting(GREETING_1).scramble), captured);
  assert.notDeepEqual(nativePasswordToken('other', greeting(GREETING_1).scramble), captured);
  assert.equal(nativePasswordToken('', greeting(GREETING_1).scramble).length, 0, 'empty password: empty answer');

  const sw = parseAuthSwitch(SWITCH_2, 0, SWITCH_2.length);
  assert.ok(typeof sw !== 'string');
  assert.equal(sw.plugin, 'mysql_native_password');
  assert.deepEqual(sw.scramble, greeting(GREETING_2).scramble, 'MariaDB switches with the greeting\'s scramble');
  assert.deepEqual(nativePasswordToken('s3cret', sw.scramble), SWITCH_ANSWER_2.subarray(4));
  const r2 = parseHandshakeResponse(RESPONSE_2, 0, RESPONSE_2.length);
  assert.ok(typeof r2 !== 'string');
  assert.equal(r2.plugin, 'caching_sha2_password');
  assert.equal(r2.authLen, 0);
});

test('server answers: OK, ERR, auth switch, more data, garbage', () => {
  assert.equal(authReplyKind(OK_1, 0, OK_1.length), AuthReply.Ok);
  assert.equal(authReplyKind(SWITCH_2, 0, SWITCH_2.length), AuthReply.Switch);
  assert.equal(authReplyKind(hex('07000002421504000000'), 0, 10), AuthReply.Bad);
  assert.equal(authReplyKind(hex('09000002ff15043238303030'), 0, 12), AuthReply.Error);
  assert.equal(authReplyKind(hex('0200000201'), 0, 5), AuthReply.MoreData);
  assert.equal(authReplyKind(hex('00'), 0, 1), AuthReply.Bad);
});

test('malformed greetings and handshake responses give a reason, never an exception', () => {
  // Every truncation of the real packets.
  for (let n = 0; n < GREETING_1.length; n++) {
    const g = parseGreeting(GREETING_1, 0, n);
    assert.ok(typeof g === 'string', `greeting cut at ${n}: a reason`);
  }
  for (let n = 0; n < RESPONSE_1.length; n++) {
    const r = parseHandshakeResponse(RESPONSE_1, 0, n);
    assert.ok(typeof r === 'string', `response cut at ${n}: a reason`);
  }
  // Random bytes and corrupted lengths.
  let seed = 7;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed & 0xff; };
  for (let k = 0; k < 2000; k++) {
    const b = Buffer.from(k % 2 ? GREETING_1 : RESPONSE_1);
    for (let j = 0; j < 4; j++) b[rnd() % b.length] = rnd();
    assert.doesNotThrow(() => { parseGreeting(b, 0, b.length); parseHandshakeResponse(b, 0, b.length); parseAuthSwitch(b, 0, b.length); });
  }
  assert.equal(parseGreeting(hex('0b000000ff1004546f6f206d616e79'), 0, 15), 'target-error');
  assert.equal(parseGreeting(hex('0500000009414243'), 0, 8), 'split-packet');
  assert.equal(parseGreeting(hex('050000000941424300'), 0, 9), 'bad-greeting');
  // An SSL request: 32 bytes with CLIENT_SSL.
  const ssl = Buffer.from(RESPONSE_1.subarray(0, 36));
  ssl.writeUIntLE(32, 0, 3);
  ssl.writeUInt32LE(RESPONSE_1.readUInt32LE(4) | 0x800, 4);
  assert.equal(parseHandshakeResponse(ssl, 0, ssl.length), 'tls');
  const old = Buffer.from(RESPONSE_1);
  old.writeUInt32LE(old.readUInt32LE(4) & ~0x200, 4);
  assert.equal(parseHandshakeResponse(old, 0, old.length), 'old-protocol');
});

test('plugin.conf: user directives, comments, several lines; errors name the line, not the password', () => {
  const c = parseModuleConf('# target passwords\nuser root@123456,app@se@cret;\nuser  empty@ ;  user x@y;\n');
  assert.deepEqual([...c.users], [['root', '123456'], ['app', 'se@cret'], ['empty', ''], ['x', 'y']]);
  assert.throws(() => parseModuleConf('user root@123456'), /line 1: .*does not end with ';'/);
  assert.throws(() => parseModuleConf('\nuser hunter2;'), (e: Error) => /line 2: item 1/.test(e.message) && !e.message.includes('hunter2'));
  assert.throws(() => parseModuleConf('password a@b;'), /unknown directive "password"/);
  assert.throws(() => parseModuleConf('# nothing\n'), /no "user/);
});

test('--module mysql: needs --payload and --module-conf; a conf file other users can read is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-mysql-'));
  try {
    const f = path.join(dir, 'plugin.conf');
    fs.writeFileSync(f, 'user app@secret;\n', { mode: 0o644 });
    fs.chmodSync(f, 0o644);
    assert.throws(() => loadModule('mysql', f, true), /other users may read it \(mode 644\): chmod 600/);
    fs.chmodSync(f, 0o600);
    assert.equal(loadModule('mysql', f, true)?.name, 'mysql');
    assert.throws(() => loadModule('mysql', f, false), /add --payload here, and run intercept with --payload/);
    assert.throws(() => loadModule('mysql', undefined, true), /needs --module-conf/);
    assert.throws(() => loadModule('mysql', path.join(dir, 'none'), true), /cannot read it \(ENOENT\)/);
    assert.throws(() => loadModule('redis', f, true), /unknown protocol module/);
    assert.throws(() => loadModule(undefined, f, true), /add --module mysql/);
    assert.equal(loadModule('plain', undefined, false), null);
    assert.equal(loadModule(undefined, undefined, false), null);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------- through the engine

const CLIENT = ip('10.1.1.7');
const CPORT = 41000;
const ONLINE = ip('10.0.0.1');
const CISN = 5000;
const OISN = 90000;
const TISN = 7000000;

/** An engine with the MySQL module (target password `pw` for app) and helpers to drive it. */
class MysqlRig {
  readonly clock = { n: 0 };
  readonly sender = new CaptureSender(this.clock);
  readonly reg = new Registrar(this.clock);
  readonly module: MysqlModule;
  readonly engine: Engine;
  readonly skipped: string[] = [];
  readonly rule = makeRule(0, 3306, TARGET_IP, TARGET_PORT);
  now = SIM_START_MS;
  /** Client's next seq, online server's next seq (captured acks), target's next seq. */
  cseq = CISN + 1;
  oseq = OISN + 1;
  tseq = TISN + 1;

  constructor(users = 'user app@target-pw;') {
    this.module = new MysqlModule(parseModuleConf(users));
    this.engine = new Engine({ ...DEFAULT_ENGINE_OPTIONS }, this.sender, this.reg, this.now, this.module);
    this.engine.onSessionSkipped = (r) => this.skipped.push(r);
  }

  client(flags: number, payload?: Buffer, seq = this.cseq): void {
    const b = buildPacket({ srcIp: CLIENT, dstIp: ONLINE, srcPort: CPORT, dstPort: 3306, seq, ack: flags & F.ACK ? this.oseq : 0, flags, payload });
    const p = new TcpPacket();
    assert.equal(p.check(b, 0, b.length), 0);
    this.engine.onClientPacket(p, this.rule, this.now);
    if (payload) this.cseq = u32(this.cseq + payload.length);
  }

  /** The online server's answer (not captured: only moves the acks the client will send). */
  online(bytes: number): void { this.oseq = u32(this.oseq + bytes); }

  /** A 192-byte reply record from the target carrying `payload`. */
  target(flags: number, payload?: Buffer): void {
    const ackNo = this.lastSentEnd();
    const hdr = buildPacket({ srcIp: TARGET_IP, dstIp: CLIENT, srcPort: TARGET_PORT, dstPort: CPORT, seq: flags & F.SYN ? TISN : this.tseq, ack: ackNo, flags, payload });
    const rec = Buffer.alloc(REPLY_RECORD_PAYLOAD_SIZE);
    buildReplyRecord(rec, 0, rec.length, hdr, 0, 20, 20, hdr.readUInt16BE(2), hdr.length);
    this.now += 1;
    this.engine.onReply(rec, 0, this.now);
    this.engine.flushAcks();
    if (payload) this.tseq = u32(this.tseq + payload.length);
  }

  sent(): Parsed[] { return this.sender.all.map((p) => parse(p.buf)); }
  data(): Parsed[] { return this.sent().filter((p) => p.payload.length > 0); }
  lastSentEnd(): number {
    let end = CISN + 1;
    for (const p of this.sent()) if (p.payload.length > 0) end = u32(p.seq + p.payload.length);
    return end;
  }
  /** Time passes (pacing waits for the response), timers fire. */
  wait(ms: number): void { this.now += ms; this.engine.poll(this.now); }

  /** SYN, SYN-ACK, the client's handshake ACK. */
  connect(): void {
    this.client(F.SYN, undefined, CISN);
    this.target(F.SYN | F.ACK);
    this.client(F.ACK);
  }
}

test('engine + MySQL module: the login waits for the target\'s greeting and goes with the answer for its scramble', () => {
  const r = new MysqlRig();
  r.connect();
  r.online(GREETING_1.length);
  r.client(F.ACK | F.PSH, RESPONSE_1);
  r.wait(50);
  assert.equal(r.data().length, 0, 'held: the target\'s greeting has not come');
  r.target(F.ACK | F.PSH, GREETING_3);
  const d = r.data();
  assert.equal(d.length, 1, 'the handshake response went once the greeting came');
  const sentResp = d[0].payload;
  const pr = parseHandshakeResponse(RESPONSE_1, 0, RESPONSE_1.length);
  assert.ok(typeof pr !== 'string');
  const want = Buffer.from(RESPONSE_1);
  nativePasswordToken('target-pw', greeting(GREETING_3).scramble).copy(want, pr.authOff);
  assert.deepEqual(sentResp, want, 'only the 20 answer bytes changed: the target password for the target scramble');
  assert.ok(tcpChecksumValid(d[0].buf, 0, 20, d[0].buf.length - 20), 'TCP checksum right after the rewrite');
  assert.equal(r.module.authRewritten, 1);
  // The query is held until the target answers the login.
  r.online(OK_1.length);
  r.client(F.ACK | F.PSH, QUERY_1);
  r.wait(50);
  assert.equal(r.data().length, 1, 'the command waits for the login\'s answer');
  r.target(F.ACK | F.PSH, OK_1);
  r.wait(50);
  assert.equal(r.data().length, 2);
  assert.deepEqual(r.data()[1].payload, QUERY_1, 'commands go unchanged');
  assert.equal(r.module.authenticated, 1);
  assert.equal(r.engine.stats.sessionsSkipped, 0);
  const s = r.engine.byReply.first!;
  assert.equal(s.proto, null, 'logged in: the module let go of the session');
});

test('engine + MySQL module: an auth switch from the target is answered for its scramble', () => {
  const r = new MysqlRig();
  r.connect();
  r.online(GREETING_2.length);
  r.client(F.ACK | F.PSH, RESPONSE_2);
  r.target(F.ACK | F.PSH, GREETING_3);
  assert.equal(r.data().length, 1);
  assert.deepEqual(r.data()[0].payload, RESPONSE_2, 'another plugin\'s first answer goes as captured');
  r.online(SWITCH_2.length);
  r.client(F.ACK | F.PSH, SWITCH_ANSWER_2);
  r.wait(50);
  assert.equal(r.data().length, 1, 'the switch answer waits for the target\'s switch request');
  const targetSwitch = Buffer.from(SWITCH_2);
  greeting(GREETING_3).scramble.copy(targetSwitch, 4 + 1 + 'mysql_native_password'.length + 1);
  r.target(F.ACK | F.PSH, targetSwitch);
  r.wait(50);
  assert.equal(r.data().length, 2);
  const ans = r.data()[1].payload;
  assert.deepEqual(ans.subarray(0, 4), SWITCH_ANSWER_2.subarray(0, 4), 'header and sequence id kept');
  assert.deepEqual(ans.subarray(4), nativePasswordToken('target-pw', greeting(GREETING_3).scramble));
  assert.equal(r.module.authSwitches, 1);
});

test('engine + MySQL module: unknown user, wrong target password, no captured SYN: skipped whole and counted', () => {
  // Unknown user: RST to the target, the rest of the connection dropped.
  const a = new MysqlRig('user someoneelse@x;');
  a.connect();
  a.online(GREETING_1.length);
  a.client(F.ACK | F.PSH, RESPONSE_1);
  a.target(F.ACK | F.PSH, GREETING_3);
  assert.equal(a.data().length, 0);
  assert.ok(a.sent().some((p) => (p.flags & F.RST) !== 0), 'the target connection is reset');
  assert.deepEqual(a.engine.stats.sessionsSkippedByReason, { 'unknown-user': 1 });
  assert.deepEqual(a.skipped, ['unknown-user']);
  a.online(OK_1.length);
  a.client(F.ACK | F.PSH, QUERY_1);
  assert.equal(a.data().length, 0, 'nothing of a skipped session is sent');
  assert.equal(a.engine.stats.skippedSessionPackets, 1);

  // Wrong password in the file: the target's ERR skips the session.
  const b = new MysqlRig();
  b.connect();
  b.online(GREETING_1.length);
  b.client(F.ACK | F.PSH, RESPONSE_1);
  b.target(F.ACK | F.PSH, GREETING_3);
  b.target(F.ACK | F.PSH, hex('090000024215043238303030'));
  assert.deepEqual(b.engine.stats.sessionsSkippedByReason, { 'bad-auth-reply': 1 });
  const c = new MysqlRig();
  c.connect();
  c.online(GREETING_1.length);
  c.client(F.ACK | F.PSH, RESPONSE_1);
  c.target(F.ACK | F.PSH, GREETING_3);
  c.target(F.ACK | F.PSH, hex('09000002ff15043238303030'));
  assert.deepEqual(c.engine.stats.sessionsSkippedByReason, { 'auth-failed': 1 });

  // A malformed greeting from the target.
  const g = new MysqlRig();
  g.connect();
  g.target(F.ACK | F.PSH, hex('0500000009414243ff'));
  assert.deepEqual(g.engine.stats.sessionsSkippedByReason, { 'bad-greeting': 1 });

  // A malformed login packet from the client.
  const m = new MysqlRig();
  m.connect();
  m.online(GREETING_1.length);
  m.target(F.ACK | F.PSH, GREETING_3);
  m.client(F.ACK | F.PSH, RESPONSE_1.subarray(0, 40));
  assert.deepEqual(m.engine.stats.sessionsSkippedByReason, { 'split-packet': 1 });

  // Running before tcpcopy started: no SYN captured.
  const n = new MysqlRig();
  n.client(F.ACK | F.PSH, QUERY_1);
  n.client(F.ACK | F.PSH, QUERY_1);
  assert.equal(n.sent().length, 0, 'no fake handshake');
  assert.deepEqual(n.engine.stats.sessionsSkippedByReason, { 'no-handshake': 1 });
  assert.equal(n.engine.stats.skippedSessionPackets, 2);
});
