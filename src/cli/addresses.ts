/**
 * The address flags of tcpcopy, parsed exactly in the original's syntax: `-x` transfer rules,
 * `-c` client addresses, `-s` intercept addresses. Every error is a UsageError that names the
 * item (by position) and shows the right form.
 */
import { UsageError } from '../errors';
import { parseIp } from '../wire/ipv4';
import { ipv6ToString, parseIpv6 } from '../wire/ipv6';
import { parseMac } from '../wire/link';
import type { InterceptAddress } from '../tcpcopy/links';
import { TransferRule } from '../tcpcopy/transfer';

export class TransferSyntaxError extends UsageError {
  constructor(readonly position: number, readonly item: string, reason: string) {
    super(`-x: ${reason} in '${item}' (item ${position}); write items like 80-10.0.0.2:8080 or 10.0.0.1:80-10.0.0.2:8080 ` +
      '(IPv6 in brackets: 80-[2001:db8::2]:8080 or [2001:db8::1]:80-[2001:db8::2]:8080), comma separated');
  }
}

function parsePort(s: string, what: string, pos: number, item: string): number {
  if (!/^\d{1,5}$/.test(s)) throw new TransferSyntaxError(pos, item, `${what} '${s}' is not a port number`);
  const n = Number(s);
  if (n < 1 || n > 65535) throw new TransferSyntaxError(pos, item, `${what} ${n} is outside 1..65535`);
  return n;
}

function splitMac(s: string, pos: number, item: string): [string, Buffer | null] {
  const at = s.indexOf('@');
  if (at < 0) return [s, null];
  const mac = parseMac(s.slice(at + 1));
  if (!mac) throw new TransferSyntaxError(pos, item, `'${s.slice(at + 1)}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return [s.slice(0, at), mac];
}

/** An address of either family, as parsed from a flag. */
export interface ParsedAddress {
  family: 4 | 6;
  /** IPv4: the 32-bit address; IPv6: 0. */
  v4: number;
  /** IPv6: the 16 bytes; IPv4: null. */
  v6: Buffer | null;
}

/** An IPv4 dotted quad or an IPv6 address (no brackets), or null. */
export function parseAnyIp(text: string): ParsedAddress | null {
  const v4 = parseIp(text);
  if (v4 >= 0) return { family: 4, v4, v6: null };
  const v6 = parseIpv6(text);
  return v6 ? { family: 6, v4: 0, v6 } : null;
}

/**
 * Splits `host:port`, `[ipv6]:port`, `[ipv6]` or a bare host (an IPv6 address without brackets
 * only when no port follows) into its host and port texts (port '' when none).
 */
function splitHostPort(text: string): { host: string; port: string; bracketed: boolean } | string {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return "a '[' without its ']'";
    const rest = text.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return `'${rest}' after ']': write [address]:port`;
    return { host: text.slice(1, close), port: rest.slice(1), bracketed: true };
  }
  const first = text.indexOf(':');
  if (first < 0) return { host: text, port: '', bracketed: false };
  if (text.indexOf(':', first + 1) >= 0) {
    // Two colons or more: an IPv6 address without brackets, which cannot carry a port.
    return { host: text, port: '', bracketed: false };
  }
  return { host: text.slice(0, first), port: text.slice(first + 1), bracketed: false };
}

/**
 * Parses `-x` in the original's syntax, `[srcIP:]srcPort[@MAC]-dstIP:dstPort[@MAC],...`, with
 * IPv6 addresses in brackets: `80-[2001:db8::2]:8080`, `[2001:db8::1]:80-[2001:db8::2]:8080`.
 * An item's online address and target are of one family; items of both families may stand
 * side by side (an item without an online address takes the packets of its target's family).
 * An item that an earlier one shadows (same family and online port, and the earlier one has the
 * same online address or none) could never match a packet: it is refused.
 */
export function parseTransfer(spec: string): TransferRule[] {
  const rules: TransferRule[] = [];
  const items = spec.split(',');
  items.forEach((raw, i) => {
    const pos = i + 1;
    const item = raw.trim();
    if (!item) throw new TransferSyntaxError(pos, raw, 'empty item');
    const dash = item.indexOf('-');
    if (dash < 0) throw new TransferSyntaxError(pos, item, "missing '-' between the online side and the target");
    const [src, srcMac] = splitMac(item.slice(0, dash), pos, item);
    const [dst, dstMac] = splitMac(item.slice(dash + 1), pos, item);
    let online: ParsedAddress | null = null;
    let onlinePortText = src;
    if (src.includes(':') || src.startsWith('[')) {
      const hp = splitHostPort(src);
      if (typeof hp === 'string') throw new TransferSyntaxError(pos, item, `online side: ${hp}`);
      if (!hp.bracketed && hp.port === '') throw new TransferSyntaxError(pos, item, `'${src}': an IPv6 online address goes in brackets before its port, e.g. [2001:db8::1]:80`);
      online = parseAnyIp(hp.host);
      if (online === null) throw new TransferSyntaxError(pos, item, `'${hp.host}' is not an IPv4 or IPv6 address`);
      if (hp.bracketed && online.family !== 6) throw new TransferSyntaxError(pos, item, `'[${hp.host}]': brackets are for IPv6 addresses`);
      onlinePortText = hp.port;
    }
    const onlinePort = parsePort(onlinePortText, 'online port', pos, item);
    const hp = splitHostPort(dst);
    if (typeof hp === 'string') throw new TransferSyntaxError(pos, item, `target: ${hp}`);
    if (!hp.bracketed && parseIpv6(hp.host) !== null) {
      throw new TransferSyntaxError(pos, item, `'${dst}': an IPv6 target goes in brackets before its port, e.g. [2001:db8::2]:8080`);
    }
    if (hp.port === '') throw new TransferSyntaxError(pos, item, "the target needs an address and a port, 'ip:port' or '[ipv6]:port'");
    const target = parseAnyIp(hp.host);
    if (target === null) throw new TransferSyntaxError(pos, item, `'${hp.host}' is not an ${hp.bracketed ? 'IPv6' : 'IPv4'} address`);
    if (hp.bracketed && target.family !== 6) throw new TransferSyntaxError(pos, item, `'[${hp.host}]': brackets are for IPv6 addresses`);
    const targetPort = parsePort(hp.port, 'target port', pos, item);
    if (online !== null && online.family !== target.family) {
      throw new TransferSyntaxError(pos, item, `the online address is IPv${online.family} and the target IPv${target.family}: an item copies within one family`);
    }
    if ((srcMac === null) !== (dstMac === null)) throw new TransferSyntaxError(pos, item, 'give a MAC address on both sides or on neither');
    const onlineIp = online !== null ? online.v4 : 0;
    const onlineIp6 = online !== null ? online.v6 : null;
    const shadow = rules.find((r) => r.family === target.family && r.onlinePort === onlinePort &&
      (!r.hasOnlineIp || (target.family === 4 ? r.onlineIp === onlineIp : onlineIp6 !== null && r.onlineIp6!.equals(onlineIp6))));
    if (shadow) {
      const example = target.family === 6 ? `[2001:db8::1]:${onlinePort}-…` : `10.0.0.1:${onlinePort}-…`;
      throw new UsageError(`-x: item ${pos} '${item}' can never match: item ${shadow.index + 1} '${shadow}' already takes ` +
        `${shadow.hasOnlineIp ? 'that address and ' : ''}online port ${onlinePort}; remove one, or give each an online address (e.g. ${example})`);
    }
    rules.push(new TransferRule(i, onlineIp, onlinePort, target.v4, targetPort, srcMac, dstMac, onlineIp6, target.v6));
  });
  return rules;
}

/** `-c` addresses of both families. */
export interface ClientAddressSet {
  v4: number[];
  /** 16-byte IPv6 addresses. */
  v6: Buffer[];
}

/** Shortest and longest IPv6 prefix `-c` takes: /116 gives 4095 addresses, within the limit. */
const MIN_CLIENT_PREFIX6 = 116;

/**
 * `-c`: addresses the replayed clients get, of either family. Items are IPv4 addresses,
 * `a.b.c.x` for .1–.254, IPv6 addresses, or an IPv6 prefix `2001:db8::/120` (length 116 to
 * 128) for every address in it but the all-zeros one (the subnet-router anycast address of
 * RFC 4291, when the prefix is shorter than /127). Addresses equal to a target are left out
 * (the target would talk to itself). At most 4096 addresses in all.
 */
export function parseClientAddressSet(spec: string, rules: TransferRule[]): ClientAddressSet {
  const v4: number[] = [];
  const v6: Buffer[] = [];
  const targets = new Set(rules.filter((r) => r.family === 4).map((r) => r.targetIp));
  const targets6 = rules.filter((r) => r.family === 6).map((r) => r.targetIp6!);
  const push6 = (a: Buffer): void => { if (!targets6.some((t) => t.equals(a))) v6.push(a); };
  spec.split(',').forEach((raw, i) => {
    const item = raw.trim();
    if (!item) return;
    if (item.endsWith('*')) throw new UsageError(`-c: '${item}' (item ${i + 1}): use 'x' for a range, e.g. 62.135.200.x, or an IPv6 prefix, e.g. 2001:db8::/120`);
    if (item.includes('/')) {
      const [addr, lenText] = item.split('/');
      const base = parseIpv6(addr);
      const len = /^\d{1,3}$/.test(lenText ?? '') ? Number(lenText) : -1;
      if (base === null || len < MIN_CLIENT_PREFIX6 || len > 128) {
        throw new UsageError(`-c: '${item}' (item ${i + 1}) is not an IPv6 prefix of length ${MIN_CLIENT_PREFIX6} to 128; write e.g. -c 2001:db8::/120`);
      }
      const hostBits = 128 - len;
      const n = 2 ** hostBits;
      // The host part is in the last 12 bits at most: the last two bytes hold it.
      const low = base.readUInt16BE(14) & ~(n - 1) & 0xffff;
      for (let h = hostBits >= 2 ? 1 : 0; h < n; h++) {
        const a = Buffer.from(base);
        a.writeUInt16BE((low + h) & 0xffff, 14);
        push6(a);
      }
      return;
    }
    if (/\.x$/i.test(item)) {
      const base = parseIp(item.replace(/x$/i, '0'));
      if (base < 0) throw new UsageError(`-c: '${item}' (item ${i + 1}) is not an address range like 62.135.200.x`);
      for (let h = 1; h <= 254; h++) if (!targets.has(base + h)) v4.push(base + h);
      return;
    }
    const a = parseAnyIp(item);
    if (a === null) throw new UsageError(`-c: '${item}' (item ${i + 1}) is not an IPv4 or IPv6 address; write e.g. -c 10.0.1.5,10.0.1.6, -c 10.0.1.x, -c 2001:db8::5 or -c 2001:db8::/120`);
    if (a.family === 6) push6(a.v6!);
    else if (!targets.has(a.v4)) v4.push(a.v4);
  });
  const n = v4.length + v6.length;
  if (n > 4096) throw new UsageError(`-c: ${n} addresses; at most 4096`);
  if (spec.trim() && n === 0) throw new UsageError('-c: no usable address (every one equals a target address)');
  return { v4, v6 };
}

/** The IPv4 addresses of `-c` (the engine's `clientAddrs`; its IPv6 ones are `clientAddrs6`). */
export function parseClientAddresses(spec: string, rules: TransferRule[]): number[] {
  return parseClientAddressSet(spec, rules).v4;
}

/**
 * Parses `-s ip[:port],...` (port defaults to `-p`); IPv6 addresses in brackets when a port
 * follows (`[2001:db8::3]:36524`), bare otherwise (`2001:db8::3`). The control connection is
 * plain TCP: either family works whatever the family of the replayed traffic.
 */
export function parseInterceptList(spec: string, defaultPort: number): InterceptAddress[] {
  const out: InterceptAddress[] = [];
  const form = 'write e.g. -s 10.0.0.3, -s 10.0.0.3:36524,10.0.0.4, -s 2001:db8::3 or -s [2001:db8::3]:36524';
  spec.split(',').forEach((raw, i) => {
    const item = raw.trim();
    if (!item) return;
    const hp = splitHostPort(item);
    if (typeof hp === 'string') throw new UsageError(`-s: '${item}' (item ${i + 1}): ${hp}; ${form}`);
    const a = parseAnyIp(hp.host);
    if (a === null) throw new UsageError(`-s: '${item}' (item ${i + 1}) is not an IPv4 or IPv6 address; ${form}`);
    if (hp.bracketed && a.family !== 6) throw new UsageError(`-s: '${item}' (item ${i + 1}): brackets are for IPv6 addresses; ${form}`);
    let port = defaultPort;
    if (hp.port !== '') {
      port = Number(hp.port);
      if (!/^\d+$/.test(hp.port) || port < 1 || port > 65535) throw new UsageError(`-s: '${item}' has a bad port; write ip:port or [ipv6]:port with a port from 1 to 65535`);
    } else if ((hp.bracketed || a.family === 4) && item.endsWith(':')) {
      throw new UsageError(`-s: '${item}' has a bad port; write ip:port or [ipv6]:port with a port from 1 to 65535`);
    }
    out.push({ host: a.family === 6 ? ipv6ToString(a.v6!) : hp.host, port });
  });
  if (out.length === 0) throw new UsageError('-s: give at least one intercept address, e.g. -s 10.0.0.3');
  if (out.length > 32) throw new UsageError(`-s: ${out.length} intercepts; at most 32`);
  return out;
}

/** `host:port` for logs, with the host in brackets when it is an IPv6 address. */
export function hostPortText(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
