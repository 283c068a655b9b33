/**
 * Network-namespace test bed for TCPCopy end-to-end tests (and the demo and the bench).
 *
 * Why this file is over 600 lines (~770): `Testbed` is one object that builds a bed, runs
 * commands, servers, loads and captures in its hosts, and removes it again; its steps share
 * the bed's names and cleanup state, so they stay together. Commands and processes are in
 * process.ts, request digests in digests.ts.
 *
 * Topology (everything lives in namespaces; nothing is added to the root namespace):
 *
 *     client (198.18.1.10[+n]/24) ─┐
 *     online    (198.18.0.20/24) ──┤
 *     target    (198.18.0.30/24) ──┼── br0 (a Linux bridge in its own namespace "br")
 *     assistant (198.18.0.40/24) ──┘
 *
 * - client: route 198.18.0.0/24 on-link.
 * - online: route 198.18.1.0/24 on-link (its replies go straight to the clients).
 * - target: 198.18.1.0/24 and every `extraRoutesViaAssistant` CIDR via the assistant, so its
 *   replies to clients (and to tcpcopy `-c` addresses) go to the assistant.
 * - assistant: ip_forward=0, i.e. the black hole: those replies are dropped there without
 *   ICMP and show up in its IpInAddrErrors counter.
 * - rp_filter=0 (all, default, lo and every interface) everywhere; IPv6 is disabled so
 *   captures only show the IPv4 traffic under test; bridge netfilter is switched off.
 *
 * Every veth pair is created with both ends already inside namespaces (`ip -n BR link add …
 * peer name … netns HOST`). Namespace names are `tcb<pid>x<n>-<host>`; a bed deletes its
 * namespaces on destroy(), and synchronously on process exit / SIGINT / SIGTERM.
 * Testbed.cleanupStale() removes namespaces left behind by dead processes.
 *
 * Only addresses inside 198.18.0.0/15 are ever configured; with `ipv6: true`, also addresses
 * inside 2001:2::/48 (the IPv6 benchmarking prefix of RFC 5180), beside the IPv4 ones:
 *
 *     client    2001:2:0:1::10[+n]/64      online 2001:2::20/64
 *     target    2001:2::30/64              assistant 2001:2::40/64
 *
 * added with `nodad` (usable at once), router solicitations and RAs off, the same routes as
import { spawn as cpSpawn, spawnSync, type ChildProcess } from 'node:child_process';
 * assistant), and IPv6 forwarding 0 on the assistant (its black hole for IPv6 replies; there
 * is no IPv6 rp_filter sysctl, and the bed installs no ip6tables/nft rules). The bridge's
 * namespace keeps IPv6 off (it only bridges).
 */
import { execFileSync, spawn as cpSpawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { HttpServerStats, LoadResult } from './fixtures/protocol';
import { ExecOptions, listNetns, pidAlive, quote, run } from './process';

export { CommandError, listNetns, pidAlive } from './process';
export type { ExecOptions } from './process';
export { compareDigests, digestDelta } from './digests';

export type { HttpServerStats, LoadResult, ClientCounters } from './fixtures/protocol';

/** A host of the bed; `br` is the namespace holding the bridge. */
export type Host = 'client' | 'online' | 'target' | 'assistant' | 'br';
/** The hosts that have an address (every host but the bridge). */
export type IpHost = Exclude<Host, 'br'>;

export const HOSTS: readonly Host[] = ['br', 'client', 'online', 'target', 'assistant'];
export const IP_HOSTS: readonly IpHost[] = ['client', 'online', 'target', 'assistant'];

export const SERVER_NET = '198.18.0.0/24';
export const CLIENT_NET = '198.18.1.0/24';
export const ONLINE_IP = '198.18.0.20';
export const TARGET_IP = '198.18.0.30';
export const ASSISTANT_IP = '198.18.0.40';
/** The largest number of client addresses a bed can have. */
export const MAX_CLIENT_ADDRS = 32;
/** Every possible client address: 198.18.1.10 … 198.18.1.41; a bed uses the first `clientAddrs`. */
export const CLIENT_IPS: readonly string[] = Array.from({ length: MAX_CLIENT_ADDRS }, (_, i) => `198.18.1.${10 + i}`);
/** The first (and by default only) client address. */
export const CLIENT_IP = CLIENT_IPS[0];
export const DEFAULT_EXTRA_ROUTES: readonly string[] = ['198.18.2.0/24'];

/** IPv6 (`ipv6: true`): the server segment, the client segment and the -c segment, inside 2001:2::/48. */
export const SERVER_NET6 = '2001:2::/64';
export const CLIENT_NET6 = '2001:2:0:1::/64';
export const EXTRA_NET6 = '2001:2:0:2::/64';
export const ONLINE_IP6 = '2001:2::20';
export const TARGET_IP6 = '2001:2::30';
export const ASSISTANT_IP6 = '2001:2::40';
/** Every possible IPv6 client address: 2001:2:0:1::10 … ::29 (hex), one per IPv4 client address. */
export const CLIENT_IPS6: readonly string[] = Array.from({ length: MAX_CLIENT_ADDRS }, (_, i) => `2001:2:0:1::${(0x10 + i).toString(16)}`);

/** Interface name of each host's veth end (inside the host's namespace); `br` maps to the bridge. */
export const HOST_DEV: Readonly<Record<Host, string>> = {
  br: 'br0',
  client: 'v-client',
  online: 'v-online',
  target: 'v-target',
  assistant: 'v-assistant',
};
/** Interface name of each host's bridge port (inside the `br` namespace). */
export const BRIDGE_PORT: Readonly<Record<IpHost, string>> = {
  client: 'b-client',
  online: 'b-online',
  target: 'b-target',
  assistant: 'b-assistant',
};

/** Prefix shared by every namespace any test bed creates. */
export const NS_PREFIX = 'tcb';
const NS_RE = /^tcb(\d+)x(\d+)-/;

const FIXTURES_DIR = path.join(__dirname, 'fixtures');
const HTTP_SERVER_JS = path.join(FIXTURES_DIR, 'http-server.js');
const LOAD_CLIENT_JS = path.join(FIXTURES_DIR, 'load-client.js');

export interface TestbedOptions {
  /** Client addresses on the client host: 1 (default) … 32, starting at 198.18.1.10. */
  clientAddrs?: number;
  /** Keep veth offloads on (default false: `tx tso gso gro` off on every veth end). */
  offloads?: boolean;
  /** CIDRs the target routes via the assistant besides 198.18.1.0/24 (default ['198.18.2.0/24']). */
  extraRoutesViaAssistant?: readonly string[];
  /** Give every host an IPv6 address from 2001:2::/48 too (default false: IPv6 disabled). */
  ipv6?: boolean;
}

export interface SpawnOptions {
  /** Append stdout and stderr to this file (stdio is then not piped). */
  logFile?: string;
  /** Extra environment variables (merged over process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface HttpServerOptions {
  /** Response body size in bytes (default 100). */
  body?: number;
  /** Close keep-alive connections after this many requests (a server-side keep-alive limit). */
  maxPerSocket?: number;
  /** Keep a digest of every request (stats.digests), to compare request content between servers. */
  digests?: boolean;
  /** Listen address (default 0.0.0.0). */
  listenHost?: string;
  /** Where the server writes its stats (default: a file in the bed's work directory). */
  statsFile?: string;
  /** Copy the server's stdout/stderr here. */
  logFile?: string;
  /** How long to wait for `listening` (default 10 s). */
  readyTimeoutMs?: number;
}

export interface HttpServerHandle {
  host: IpHost;
  port: number;
  statsFile: string;
  child: ChildProcess;
  /** Asks the server for fresh stats (SIGUSR2) and waits, bounded, for the newer file. */
  stats(timeoutMs?: number): Promise<HttpServerStats>;
  /** Stops the server (SIGTERM; it writes final stats) and returns them. */
  stop(): Promise<HttpServerStats | undefined>;
}

export interface LoadOptions {
  /** Default `http://198.18.0.20:80/` (the online server). */
  url?: string;
  requests: number;
  concurrency?: number;
  keepalive?: boolean;
  /** Requests per keep-alive connection (default unlimited). */
  perConn?: number;
  /** Requests per second, across all workers (default unlimited). */
  rate?: number;
  /** Hard stop (default 60 s). */
  durationMs?: number;
  /** POST bodies of this many bytes (default: GET). */
  body?: number;
  /** Source addresses; pass `tb.clientIps` to spread over every client address. */
  localAddrs?: readonly string[];
  /** Per-request inactivity timeout (default 10 s). */
  timeoutMs?: number;
  /** Where to run (default 'client'). */
  host?: IpHost;
  /** Copy the client's stderr here. */
  logFile?: string;
}

/** A tcpdump running in a namespace (Testbed.startCapture). */
export interface CaptureHandle {
  child: ChildProcess;
  /** Packet lines printed so far. */
  lines(): string[];
  /** Stops tcpdump and returns every packet line it printed. */
  stop(): Promise<string[]>;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Checks that a CIDR is IPv4, inside 198.18.0.0/15, and clear of the server segment. */
function checkTestCidr(cidr: string): void {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const len = m ? Number(m[5]) : -1;
  if (!m || octets.some((o) => o > 255) || len > 32) throw new Error(`testbed: "${cidr}" is not an IPv4 CIDR`);
  const start = octets.reduce((acc, o) => acc * 256 + o, 0);
  const end = start + 2 ** (32 - len); // exclusive
  const range = (a: number, b: number, c: number, d: number): number => ((a * 256 + b) * 256 + c) * 256 + d;
  if (start < range(198, 18, 0, 0) || end > range(198, 20, 0, 0)) {
    throw new Error(`testbed: "${cidr}" is outside 198.18.0.0/15; only the benchmarking range may be used`);
  }
  const server = range(198, 18, 0, 0);
  if (start < server + 256 && server < end) {
    throw new Error(`testbed: "${cidr}" overlaps the server segment ${SERVER_NET}`);
  }
}

// ---- process-wide cleanup hooks ------------------------------------------------------------

const liveBeds = new Set<Testbed>();
let hooksInstalled = false;

function onExit(): void {
  for (const bed of liveBeds) bed.destroySync();
}
function onSignal(signal: NodeJS.Signals): void {
  onExit();
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', onExit);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function removeHooks(): void {
  if (!hooksInstalled || liveBeds.size > 0) return;
  hooksInstalled = false;
  process.off('exit', onExit);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

let bedCounter = 0;

// ---- the bed ---------------------------------------------------------------------------------

export class Testbed {
  /** Namespace-name prefix of this bed, e.g. `tcb1234x1-`. */
  readonly prefix: string;
  /** Client addresses configured on the client host. */
  readonly clientIps: readonly string[];
  readonly offloads: boolean;
  readonly extraRoutesViaAssistant: readonly string[];
  /** The hosts have IPv6 addresses too. */
  readonly ipv6: boolean;
  /** IPv6 client addresses (one per IPv4 client address); empty without `ipv6`. */
  readonly clientIps6: readonly string[];
  /** Scratch directory for stats files and logs (removed by destroy() unless TESTBED_KEEP=1). */
  readonly workDir: string;

  private readonly created: string[] = [];
  private readonly tracked = new Set<ChildProcess>();
  private readonly spawnedPids: number[] = [];
  private destroyed = false;
  private destroying: Promise<void> | undefined;

  private constructor(opts: Required<TestbedOptions>) {
    this.prefix = `${NS_PREFIX}${process.pid}x${++bedCounter}-`;
    this.clientIps = CLIENT_IPS.slice(0, opts.clientAddrs);
    this.offloads = opts.offloads;
    this.extraRoutesViaAssistant = [...opts.extraRoutesViaAssistant];
    this.ipv6 = opts.ipv6;
    this.clientIps6 = opts.ipv6 ? CLIENT_IPS6.slice(0, opts.clientAddrs) : [];
    this.workDir = fs.mkdtempSync(path.join(os.tmpdir(), this.prefix));
  }

  /** Builds a bed; on any failure, whatever was created is removed before the error is thrown. */
  static async create(opts: TestbedOptions = {}): Promise<Testbed> {
    const clientAddrs = opts.clientAddrs ?? 1;
    if (!Number.isInteger(clientAddrs) || clientAddrs < 1 || clientAddrs > MAX_CLIENT_ADDRS) {
      throw new Error(`testbed: clientAddrs must be an integer in [1, ${MAX_CLIENT_ADDRS}], got ${clientAddrs}`);
    }
    const extra = opts.extraRoutesViaAssistant ?? DEFAULT_EXTRA_ROUTES;
    for (const cidr of extra) checkTestCidr(cidr);
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new Error('testbed: network namespaces need root');
    }
    const bed = new Testbed({ clientAddrs, offloads: opts.offloads ?? false, extraRoutesViaAssistant: extra, ipv6: opts.ipv6 ?? false });
    liveBeds.add(bed);
    installHooks();
    try {
      bed.build();
    } catch (err) {
      await bed.destroy();
      throw err;
    }
    return bed;
  }

  /**
   * Deletes namespaces named `tcb<pid>x<n>-…` whose creating process is gone (left by crashed
   * or killed runs). Returns the names deleted.
   */
  static cleanupStale(): string[] {
    const deleted: string[] = [];
    for (const name of listNetns()) {
      const m = NS_RE.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || pidAlive(pid)) continue;
      spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 10_000 });
      deleted.push(name);
    }
    return deleted;
  }

  /** Namespace name of a host. */
  ns(host: Host): string {
    return `${this.prefix}${host}`;
  }

  /** Name of the host's veth (or the bridge, for 'br') inside its namespace. */
  dev(host: Host): string {
    return HOST_DEV[host];
  }

  /** Name of the host's bridge port inside the 'br' namespace. */
  bridgePort(host: IpHost): string {
    return BRIDGE_PORT[host];
  }

  /** The host's address (the first client address for 'client'). */
  ip(host: IpHost): string {
    switch (host) {
      case 'client': return this.clientIps[0];
      case 'online': return ONLINE_IP;
      case 'target': return TARGET_IP;
      case 'assistant': return ASSISTANT_IP;
    }
  }

  /** The host's IPv6 address (the first client address for 'client'); the bed needs `ipv6`. */
  ip6(host: IpHost): string {
    if (!this.ipv6) throw new Error('testbed: this bed has no IPv6 (create it with ipv6: true)');
    switch (host) {
      case 'client': return this.clientIps6[0];
      case 'online': return ONLINE_IP6;
      case 'target': return TARGET_IP6;
      case 'assistant': return ASSISTANT_IP6;
    }
  }

  /** Every namespace of the bed, bridge first. */
  namespaces(): string[] {
    return HOSTS.map((h) => this.ns(h));
  }

  /** PIDs of every process this bed has spawned (running or not). */
  get pids(): readonly number[] {
    return this.spawnedPids;
  }

  /** Runs `cmd args…` in the host's namespace and returns its stdout; throws CommandError on failure. */
  execSync(host: Host, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): string {
    this.assertAlive();
    return run('ip', ['netns', 'exec', this.ns(host), cmd, ...args], opts);
  }

  /**
   * Starts `cmd args…` in the host's namespace. `ip netns exec` execs the command, so the
   * child's PID is the command's own. The child is tracked and stopped by destroy().
   * Without `logFile`, stdout and stderr are pipes the caller must read (or they may fill up).
   */
  spawn(host: Host, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    this.assertAlive();
    let fd: number | undefined;
    if (opts.logFile) fd = fs.openSync(opts.logFile, 'a');
    try {
      const child = cpSpawn('ip', ['netns', 'exec', this.ns(host), cmd, ...args], {
        stdio: fd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', fd, fd],
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      });
      if (child.pid === undefined) {
        // Spawn failed synchronously (e.g. ENOENT); the 'error' event carries the reason.
        throw new Error(`testbed: cannot spawn ip netns exec ${this.ns(host)} ${cmd}`);
      }
      this.spawnedPids.push(child.pid);
      this.tracked.add(child);
      child.once('exit', () => this.tracked.delete(child));
      child.on('error', () => {
        /* reported through exit status */
      });
      return child;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /**
   * Sends `signal` to the child (by PID) and waits for it to exit; SIGKILL after timeoutMs.
   * Resolves with the exit status (immediately if it has already exited).
   */
  stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<ExitStatus> {
    return new Promise((resolve) => {
      if (!isRunning(child)) {
        resolve({ code: child.exitCode, signal: child.signalCode });
        return;
      }
      let killTimer: NodeJS.Timeout | undefined;
      let giveUp: NodeJS.Timeout | undefined;
      const done = (code: number | null, sig: NodeJS.Signals | null): void => {
        clearTimeout(killTimer);
        clearTimeout(giveUp);
        resolve({ code, signal: sig });
      };
      child.once('exit', done);
      try {
        child.kill(signal);
      } catch {
        /* already gone: 'exit' follows */
      }
      killTimer = setTimeout(() => {
        if (isRunning(child)) child.kill('SIGKILL');
        // SIGKILL cannot be ignored; if 'exit' still does not come, stop waiting.
        giveUp = setTimeout(() => {
          child.off('exit', done);
          done(child.exitCode, child.signalCode ?? 'SIGKILL');
        }, 2000);
      }, timeoutMs);
    });
  }

  /** Absolute SNMP/netstat counters of the host's namespace (`nstat -asz`; history untouched). */
  nstat(host: Host): Record<string, number> {
    const out = this.execSync(host, 'nstat', ['-a', '-s', '-z']);
    const counters: Record<string, number> = {};
    for (const line of out.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const [name, value] = line.trim().split(/\s+/);
      if (name && value !== undefined && /^\d+$/.test(value)) counters[name] = Number(value);
    }
    return counters;
  }

  /**
   * Starts the counting HTTP server fixture on `host:port` and waits (bounded) until it
   * prints `listening`.
   */
  async startHttpServer(host: IpHost, port: number, opts: HttpServerOptions = {}): Promise<HttpServerHandle> {
    const statsFile = opts.statsFile ?? path.join(this.workDir, `http-${host}-${port}.json`);
    const args = [HTTP_SERVER_JS, '--port', String(port), '--host', opts.listenHost ?? '0.0.0.0', '--stats', statsFile];
    if (opts.body !== undefined) args.push('--body', String(opts.body));
    if (opts.maxPerSocket !== undefined) args.push('--max-per-socket', String(opts.maxPerSocket));
    if (opts.digests) args.push('--digests');
    const child = this.spawn(host, process.execPath, args);
    const log = opts.logFile ? fs.createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 8192) stderr += d.toString();
      log?.write(d);
    });
    const timeoutMs = opts.readyTimeoutMs ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      let ready = false;
      const fail = (why: string): void => {
        clearTimeout(timer);
        reject(new Error(`testbed: HTTP server on ${host}:${port} ${why}${stderr ? `\nstderr: ${stderr.trim()}` : ''}`));
      };
      const timer = setTimeout(() => {
        void this.stop(child, 'SIGKILL');
        fail(`did not print "listening" within ${timeoutMs} ms`);
      }, timeoutMs);
      child.stdout?.on('data', (d: Buffer) => {
        log?.write(d);
        if (ready) return;
        buf += d.toString();
        if (/^listening \d+$/m.test(buf)) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, sig) => {
        log?.end();
        if (!ready) fail(`exited before it was ready (${sig ?? `status ${code}`})`);
      });
    });

    let lastSeq = -1;
    const readStats = (): HttpServerStats | undefined => {
      try {
        return JSON.parse(fs.readFileSync(statsFile, 'utf8')) as HttpServerStats;
      } catch {
        return undefined;
      }
    };
    const handle: HttpServerHandle = {
      host,
      port,
      statsFile,
      child,
      stats: async (statsTimeoutMs = 5000): Promise<HttpServerStats> => {
        if (!isRunning(child)) {
          const s = readStats();
          if (s) return s;
          throw new Error(`testbed: HTTP server on ${host}:${port} has exited and left no stats`);
        }
        const before = Math.max(lastSeq, readStats()?.seq ?? -1);
        child.kill('SIGUSR2');
        const deadline = Date.now() + statsTimeoutMs;
        for (;;) {
          const s = readStats();
          if (s && s.seq > before) {
            lastSeq = s.seq;
            return s;
          }
          if (Date.now() > deadline) {
            throw new Error(`testbed: HTTP server on ${host}:${port} wrote no stats newer than seq ${before} within ${statsTimeoutMs} ms`);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      },
      stop: async (): Promise<HttpServerStats | undefined> => {
        await this.stop(child, 'SIGTERM');
        return readStats();
      },
    };
    return handle;
  }

  /**
   * Starts tcpdump in the host's namespace (`-l -nn -tt` plus `args`, e.g. `['-i', 'any', '-e',
   * 'ip']`) and waits, bounded, until it says it is listening. `stop()` ends it (SIGINT) and
   * returns the packet lines it printed (one per packet), so a test can both count packets and
   * show exactly which ones it saw.
   */
  async startCapture(host: Host, args: readonly string[], readyTimeoutMs = 5000): Promise<CaptureHandle> {
    const child = this.spawn(host, 'tcpdump', ['-l', '-nn', '-tt', ...args]);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => {
      if (out.length < 4 * 1024 * 1024) out += d.toString();
    });
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), readyTimeoutMs);
      child.stderr?.on('data', (d: Buffer) => {
        if (err.length < 16_384) err += d.toString();
        if (/listening on/.test(err)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!ready) {
      await this.stop(child, 'SIGKILL', 1000);
      throw new Error(`testbed: tcpdump ${args.join(' ')} in ${host} did not start: ${err.trim()}`);
    }
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    return {
      child,
      lines: () => out.split('\n').filter((l) => /^\d+\.\d+ /.test(l)),
      stop: async (): Promise<string[]> => {
        await this.stop(child, 'SIGINT', 3000);
        await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
        return out.split('\n').filter((l) => /^\d+\.\d+ /.test(l));
      },
    };
  }

  /**
   * Runs the load-client fixture (in the client namespace by default) and returns its result.
   * Bounded: the client stops itself at durationMs; it is killed 15 s after that regardless.
   */
  async runLoad(opts: LoadOptions): Promise<LoadResult> {
    const durationMs = opts.durationMs ?? 60_000;
    const args = [
      LOAD_CLIENT_JS,
      '--url', opts.url ?? `http://${ONLINE_IP}:80/`,
      '--requests', String(opts.requests),
      '--concurrency', String(opts.concurrency ?? 1),
      '--duration-ms', String(durationMs),
    ];
    if (opts.keepalive) args.push('--keepalive');
    if (opts.perConn !== undefined) args.push('--per-conn', String(opts.perConn));
    if (opts.rate !== undefined) args.push('--rate', String(opts.rate));
    if (opts.body !== undefined) args.push('--body', String(opts.body));
    if (opts.localAddrs && opts.localAddrs.length) args.push('--local-addrs', opts.localAddrs.join(','));
    if (opts.timeoutMs !== undefined) args.push('--timeout-ms', String(opts.timeoutMs));
    const child = this.spawn(opts.host ?? 'client', process.execPath, args);
    let stdout = '';
    let stderr = '';
    const log = opts.logFile ? fs.createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 16_384) stderr += d.toString();
      log?.write(d);
    });
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const killer = setTimeout(() => void this.stop(child, 'SIGKILL'), durationMs + 15_000);
    const status = await new Promise<ExitStatus>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    clearTimeout(killer);
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
    log?.end();
    const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
    if (status.code !== 0 || !line) {
      throw new Error(
        `testbed: load client ${args.slice(1).map(quote).join(' ')} failed ` +
          `(${status.signal ?? `status ${status.code}`})${stderr ? `\nstderr: ${stderr.trim()}` : ''}`,
      );
    }
    return JSON.parse(line) as LoadResult;
  }

  /**
   * Stops every tracked child (SIGTERM, SIGKILL after 5 s) and deletes the namespaces.
   * Idempotent; concurrent calls share one teardown.
   */
  destroy(): Promise<void> {
    if (this.destroyed) return Promise.resolve();
    this.destroying ??= (async () => {
      await Promise.all([...this.tracked].map((c) => this.stop(c, 'SIGTERM', 5000)));
      this.destroySync();
    })();
    return this.destroying;
  }

  /**
   * Synchronous teardown for exit hooks: SIGKILLs tracked children by PID and deletes the
   * namespaces. Throws (after trying everything) if a namespace could not be deleted.
   */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const child of this.tracked) {
      if (isRunning(child) && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    const failures: string[] = [];
    const existing = new Set(listNetnsQuiet());
    for (const ns of [...this.created].reverse()) {
      if (!existing.has(ns)) continue;
      const r = spawnSync('ip', ['netns', 'del', ns], { encoding: 'utf8', timeout: 10_000 });
      if (r.status !== 0) failures.push(`ip netns del ${ns}: ${(r.stderr || r.error?.message || '').trim()}`);
    }
    if (process.env.TESTBED_KEEP !== '1') fs.rmSync(this.workDir, { recursive: true, force: true });
    liveBeds.delete(this);
    removeHooks();
    if (failures.length) throw new Error(`testbed: teardown failed:\n${failures.join('\n')}`);
  }

  // ---- construction ------------------------------------------------------------------------

  private assertAlive(): void {
    if (this.destroyed) throw new Error(`testbed ${this.prefix}: already destroyed`);
  }

  private ipn(host: Host, ...args: string[]): string {
    return run('ip', ['-n', this.ns(host), ...args]);
  }

  private sysctl(host: Host, settings: readonly string[], ignoreMissing = false): void {
    this.execSync(host, 'sysctl', ['-q', ...(ignoreMissing ? ['-e'] : []), '-w', ...settings]);
  }

  private build(): void {
    // Namespaces, with their defaults set before any interface appears in them.
    for (const host of HOSTS) {
      run('ip', ['netns', 'add', this.ns(host)]);
      this.created.push(this.ns(host));
      this.ipn(host, 'link', 'set', 'lo', 'up');
      this.sysctl(host, [
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.default.rp_filter=0',
        'net.ipv4.conf.lo.rp_filter=0',
      ]);
      if (this.ipv6 && host !== 'br') {
        // Before any interface appears: no router solicitations or RAs, no DAD delay.
        this.sysctl(host, [
          'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0',
          'net.ipv6.conf.all.accept_ra=0', 'net.ipv6.conf.default.accept_ra=0',
          'net.ipv6.conf.all.router_solicitations=0', 'net.ipv6.conf.default.router_solicitations=0',
          'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0',
          'net.ipv6.conf.all.forwarding=0',
        ]);
      } else {
        this.sysctl(host, ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], true);
      }
    }

    // The bridge, in its own namespace, with bridge netfilter off.
    const br = HOST_DEV.br;
    this.ipn('br', 'link', 'add', br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    this.sysctl('br', [
      'net.bridge.bridge-nf-call-iptables=0',
      'net.bridge.bridge-nf-call-ip6tables=0',
      'net.bridge.bridge-nf-call-arptables=0',
    ], true);
    this.ipn('br', 'link', 'set', br, 'up');

    // One veth pair per host, both ends born inside namespaces (never in the root namespace).
    for (const host of IP_HOSTS) {
      const dev = HOST_DEV[host];
      const port = BRIDGE_PORT[host];
      this.ipn('br', 'link', 'add', port, 'type', 'veth', 'peer', 'name', dev, 'netns', this.ns(host));
      this.ipn('br', 'link', 'set', port, 'master', br);
      if (!this.offloads) {
        this.execSync('br', 'ethtool', ['-K', port, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
        this.execSync(host, 'ethtool', ['-K', dev, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
      }
      this.sysctl('br', [`net.ipv4.conf.${port}.rp_filter=0`]);
      this.sysctl(host, [`net.ipv4.conf.${dev}.rp_filter=0`]);
      this.ipn('br', 'link', 'set', port, 'up');
    }
    this.sysctl('br', [`net.ipv4.conf.${br}.rp_filter=0`]);

    // Addresses and routes.
    const cdev = HOST_DEV.client;
    for (const ip of this.clientIps) this.ipn('client', 'addr', 'add', `${ip}/24`, 'dev', cdev);
    this.ipn('client', 'link', 'set', cdev, 'up');
    this.ipn('client', 'route', 'add', SERVER_NET, 'dev', cdev);

    this.ipn('online', 'addr', 'add', `${ONLINE_IP}/24`, 'dev', HOST_DEV.online);
    this.ipn('online', 'link', 'set', HOST_DEV.online, 'up');
    this.ipn('online', 'route', 'add', CLIENT_NET, 'dev', HOST_DEV.online);

    this.ipn('target', 'addr', 'add', `${TARGET_IP}/24`, 'dev', HOST_DEV.target);
    this.ipn('target', 'link', 'set', HOST_DEV.target, 'up');
    for (const cidr of [CLIENT_NET, ...this.extraRoutesViaAssistant]) {
      this.ipn('target', 'route', 'add', cidr, 'via', ASSISTANT_IP, 'dev', HOST_DEV.target);
    }

    this.ipn('assistant', 'addr', 'add', `${ASSISTANT_IP}/24`, 'dev', HOST_DEV.assistant);
    this.ipn('assistant', 'link', 'set', HOST_DEV.assistant, 'up');
    this.sysctl('assistant', ['net.ipv4.ip_forward=0']);
    if (this.ipv6) this.buildIpv6();
  }

  /** The IPv6 addresses and routes, beside the IPv4 ones (see the header comment). */
  private buildIpv6(): void {
    const cdev = HOST_DEV.client;
    for (const ip of this.clientIps6) this.ipn('client', '-6', 'addr', 'add', `${ip}/64`, 'dev', cdev, 'nodad');
    this.ipn('client', '-6', 'route', 'add', SERVER_NET6, 'dev', cdev);
    this.ipn('online', '-6', 'addr', 'add', `${ONLINE_IP6}/64`, 'dev', HOST_DEV.online, 'nodad');
    this.ipn('online', '-6', 'route', 'add', CLIENT_NET6, 'dev', HOST_DEV.online);
    this.ipn('target', '-6', 'addr', 'add', `${TARGET_IP6}/64`, 'dev', HOST_DEV.target, 'nodad');
    for (const net of [CLIENT_NET6, EXTRA_NET6]) {
      this.ipn('target', '-6', 'route', 'add', net, 'via', ASSISTANT_IP6, 'dev', HOST_DEV.target);
    }
    this.ipn('assistant', '-6', 'addr', 'add', `${ASSISTANT_IP6}/64`, 'dev', HOST_DEV.assistant, 'nodad');
    // The assistant must not route the target's IPv6 replies on: its black hole, as for IPv4.
    this.sysctl('assistant', ['net.ipv6.conf.all.forwarding=0', `net.ipv6.conf.${HOST_DEV.assistant}.forwarding=0`]);
  }
}

function listNetnsQuiet(): string[] {
  try {
    return listNetns();
  } catch {
    return [];
  }
}
