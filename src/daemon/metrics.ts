/**
 * `--metrics [host:]port`: a small HTTP endpoint with `GET /metrics` (Prometheus text format,
 * written by prom-client) and `GET /stats` (the statistics line's figures as JSON).
 *
 * Every value is read when a scrape comes: one snapshot of the daemon's counters per request,
 * which each metric's collect() reads. Nothing is added to the packet path.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { IoErrorCode, TcpcopyError } from '../errors';
import { MetricDef, Snapshot, metricDefsFor } from './metric-defs';

export interface MetricsAddress { host: string; port: number }

/**
 * Parses `[host:]port` (host: an IPv4 address, `[IPv6]`, or `localhost`; default 127.0.0.1).
 * Throws an Error whose message says what to write instead.
 */
export function parseMetricsAddress(value: string): MetricsAddress {
  const v = value.trim();
  const example = 'e.g. --metrics 9100 or --metrics 127.0.0.1:9100';
  let host = '127.0.0.1';
  let portText = v;
  const m6 = /^\[([^\]]*)\]:(.*)$/.exec(v);
  if (m6) {
    if (net.isIPv6(m6[1])) { host = m6[1]; portText = m6[2]; }
    else throw new Error(`'${value}': [${m6[1]}] is not an IPv6 address; ${example}`);
  } else if (v.includes(':')) {
    const i = v.lastIndexOf(':');
    host = v.slice(0, i);
    portText = v.slice(i + 1);
    if (host !== 'localhost' && !net.isIPv4(host)) {
      throw new Error(`'${value}': '${host}' is not an IPv4 address (write IPv6 as [addr]:port); ${example}`);
    }
  }
  if (!/^\d+$/.test(portText)) throw new Error(`'${value}': the port must be a number from 1 to 65535; ${example}`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new Error(`'${value}': the port must be from 1 to 65535 (got ${port}); ${example}`);
  return { host, port };
}

export interface MetricsInfo {
  daemon: string;
  version: string;
  /** The daemon's counters, as in the statistics line. */
  snapshot(): Snapshot;
}

/** A registry with the daemon's metrics, the process metrics and `<daemon>_build_info`. */
export function buildRegistry(info: MetricsInfo): { registry: Registry; scrape(): Promise<string>; stats(): Snapshot } {
  const registry = new Registry();
  let current: Snapshot = {};
  // A figure this run does not have (e.g. kernel drops with a capture that cannot report
  // them) is left out rather than shown as 0.
  const first = info.snapshot();
  for (const d of metricDefsFor(info.daemon)) if (d.value(first) !== undefined) register(registry, d, () => current);
  new Counter({
    name: 'process_cpu_seconds_total', help: 'Total user and system CPU time spent in seconds.', registers: [registry],
    collect() { const u = process.cpuUsage(); this.reset(); this.inc((u.user + u.system) / 1e6); },
  });
  new Gauge({
    name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes.', registers: [registry],
    collect() { this.set(process.memoryUsage.rss()); },
  });
  const startTime = Math.round(Date.now() / 1000 - process.uptime());
  new Gauge({
    name: 'process_start_time_seconds', help: 'Start time of the process since unix epoch in seconds.', registers: [registry],
    collect() { this.set(startTime); },
  });
  const build = new Gauge({
    name: `${info.daemon}_build_info`, help: `Always 1; the labels say which ${info.daemon} runs.`,
    labelNames: ['version', 'nodejs'], registers: [registry],
  });
  build.set({ version: info.version, nodejs: process.version }, 1);
  return {
    registry,
    scrape: async () => {
      current = info.snapshot();
      try { return await registry.metrics(); } finally { current = {}; }
    },
    stats: () => info.snapshot(),
  };
}

function register(registry: Registry, d: MetricDef, snap: () => Snapshot): void {
  const labelNames = d.labels ?? [];
  const fill = (m: Counter | Gauge): void => {
    m.reset();
    const v = d.value(snap());
    if (v === undefined) return;
    if (typeof v === 'number') { setValue(m, {}, v); return; }
    for (const [values, x] of v) {
      const labels: Record<string, string> = {};
      labelNames.forEach((l, i) => { labels[l] = values[i] ?? ''; });
      setValue(m, labels, x);
    }
  };
  if (d.type === 'counter') {
    new Counter({ name: d.name, help: d.help, labelNames, registers: [registry], collect() { fill(this); } });
  } else {
    new Gauge({ name: d.name, help: d.help, labelNames, registers: [registry], collect() { fill(this); } });
  }
}

function setValue(m: Counter | Gauge, labels: Record<string, string>, v: number): void {
  if (!Number.isFinite(v)) return;
  if (m instanceof Gauge) m.set(labels, v);
  else m.inc(labels, Math.max(0, v));
}

export interface MetricsServer {
  /** The address it listens on, host:port. */
  address: string;
  /** The port it listens on (the one asked for, or the kernel's choice for 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on `addr` and serves /metrics and /stats. Rejects with a one-line message when the
 * address cannot be used (port in use, address not on this host, permission).
 */
export function startMetricsServer(addr: MetricsAddress, info: MetricsInfo): Promise<MetricsServer> {
  const reg = buildRegistry(info);
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
      res.end('only GET\n');
      return;
    }
    if (url === '/metrics') {
      reg.scrape().then((body) => {
        res.writeHead(200, { 'content-type': reg.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      }, (e: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${e.message}\n`);
      });
      return;
    }
    if (url === '/stats') {
      let body: string;
      try { body = JSON.stringify(reg.stats()); } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${(e as Error).message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(req.method === 'HEAD' ? undefined : `${body}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end(url === '/' ? `${info.daemon}: GET /metrics (Prometheus) or /stats (JSON)\n` : 'not found: try /metrics or /stats\n');
  });
  server.maxConnections = 32;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  const show = (port: number): string => (addr.host.includes(':') ? `[${addr.host}]:${port}` : `${addr.host}:${port}`);
  const shown = show(addr.port);
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      const [code, why]: [IoErrorCode, string] = e.code === 'EADDRINUSE' ? ['port-in-use', 'the port is in use (another process listens there); choose another port']
        : e.code === 'EADDRNOTAVAIL' ? ['bad-bind', 'the address is not on this host; give one of its addresses, or 127.0.0.1']
          : e.code === 'EACCES' ? ['no-permission', 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE); choose a port above 1023']
            : e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' ? ['bad-bind', 'the host name does not resolve; give an address']
              : ['listen', e.message];
      reject(new TcpcopyError(code, `--metrics ${shown}: cannot listen: ${why}`));
    };
    server.once('error', onError);
    server.listen(addr.port, addr.host, () => {
      server.off('error', onError);
      server.on('error', () => { /* a client's socket error; the server goes on */ });
      server.unref();
      const a = server.address();
      resolve({
        address: show(typeof a === 'object' && a ? a.port : addr.port),
        port: typeof a === 'object' && a ? a.port : addr.port,
        close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }),
      });
    });
  });
}
