/**
 * The address flags of tcpcopy, parsed exactly in the original's syntax: `-x` transfer rules,
 * `-c` client addresses, `-s` intercept addresses. Every error is a UsageError that names the
 * item (by position) and shows the right form.
 */
import { UsageError } from '../errors';
import { parseIp } from '../wire/ipv4';
import { parseMac } from '../wire/link';
import type { InterceptAddress } from '../tcpcopy/links';
import { TransferRule } from '../tcpcopy/transfer';

export class TransferSyntaxError extends UsageError {
  constructor(readonly position: number, readonly item: string, reason: string) {
    super(`-x: ${reason} in '${item}' (item ${position}); write items like 80-10.0.0.2:8080 or 10.0.0.1:80-10.0.0.2:8080, comma separated`);
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

/**
 * Parses `-x` exactly in the original's syntax: `[srcIP:]srcPort[@MAC]-dstIP:dstPort[@MAC],...`.
 * An item that an earlier one shadows (same online port, and the earlier one has the same
 * online address or none) could never match a packet: it is refused.
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
    let onlineIp = 0;
    let onlinePortText = src;
    const sc = src.lastIndexOf(':');
    if (sc >= 0) {
      onlineIp = parseIp(src.slice(0, sc));
      if (onlineIp < 0) throw new TransferSyntaxError(pos, item, `'${src.slice(0, sc)}' is not an IPv4 address`);
      onlinePortText = src.slice(sc + 1);
    }
    const onlinePort = parsePort(onlinePortText, 'online port', pos, item);
    const dc = dst.lastIndexOf(':');
    if (dc < 0) throw new TransferSyntaxError(pos, item, "the target needs an address and a port, 'ip:port'");
    const targetIp = parseIp(dst.slice(0, dc));
    if (targetIp < 0) throw new TransferSyntaxError(pos, item, `'${dst.slice(0, dc)}' is not an IPv4 address`);
    const targetPort = parsePort(dst.slice(dc + 1), 'target port', pos, item);
    if ((srcMac === null) !== (dstMac === null)) throw new TransferSyntaxError(pos, item, 'give a MAC address on both sides or on neither');
    const shadow = rules.find((r) => r.onlinePort === onlinePort && (r.onlineIp === 0 || r.onlineIp === onlineIp));
    if (shadow) {
      throw new UsageError(`-x: item ${pos} '${item}' can never match: item ${shadow.index + 1} '${shadow}' already takes ` +
        `${shadow.onlineIp ? 'that address and ' : ''}online port ${onlinePort}; remove one, or give each an online address (e.g. 10.0.0.1:${onlinePort}-…)`);
    }
    rules.push(new TransferRule(i, onlineIp, onlinePort, targetIp, targetPort, srcMac, dstMac));
  });
  return rules;
}

/**
 * `-c`: addresses the replayed clients get. Items are addresses, or `a.b.c.x` for .1–.254.
 * Addresses equal to a target are left out (the target would talk to itself).
 */
export function parseClientAddresses(spec: string, rules: TransferRule[]): number[] {
  const out: number[] = [];
  const targets = new Set(rules.map((r) => r.targetIp));
  spec.split(',').forEach((raw, i) => {
    const item = raw.trim();
    if (!item) return;
    if (item.endsWith('*')) throw new UsageError(`-c: '${item}' (item ${i + 1}): use 'x' for a range, e.g. 62.135.200.x`);
    if (/\.x$/i.test(item)) {
      const base = parseIp(item.replace(/x$/i, '0'));
      if (base < 0) throw new UsageError(`-c: '${item}' (item ${i + 1}) is not an address range like 62.135.200.x`);
      for (let h = 1; h <= 254; h++) if (!targets.has(base + h)) out.push(base + h);
      return;
    }
    const ip = parseIp(item);
    if (ip < 0) throw new UsageError(`-c: '${item}' (item ${i + 1}) is not an IPv4 address; write e.g. -c 10.0.1.5,10.0.1.6 or -c 10.0.1.x`);
    if (!targets.has(ip)) out.push(ip);
  });
  if (out.length > 4096) throw new UsageError(`-c: ${out.length} addresses; at most 4096`);
  if (spec.trim() && out.length === 0) throw new UsageError('-c: no usable address (every one equals a target address)');
  return out;
}

/** Parses `-s ip[:port],...` (port defaults to `-p`). */
export function parseInterceptList(spec: string, defaultPort: number): InterceptAddress[] {
  const out: InterceptAddress[] = [];
  spec.split(',').forEach((raw, i) => {
    const item = raw.trim();
    if (!item) return;
    const [host, portText] = item.split(':');
    if (parseIp(host) < 0) throw new UsageError(`-s: '${item}' (item ${i + 1}) is not an IPv4 address; write e.g. -s 10.0.0.3 or -s 10.0.0.3:36524,10.0.0.4`);
    let port = defaultPort;
    if (portText !== undefined) {
      port = Number(portText);
      if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new UsageError(`-s: '${item}' has a bad port; write ip:port with a port from 1 to 65535`);
    }
    out.push({ host, port });
  });
  if (out.length === 0) throw new UsageError('-s: give at least one intercept address, e.g. -s 10.0.0.3');
  if (out.length > 32) throw new UsageError(`-s: ${out.length} intercepts; at most 32`);
  return out;
}
