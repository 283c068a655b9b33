import { WireReason } from './errors';
import { get16, get32, get32le, put16 } from './bytes';

/** libpcap link-layer types (DLT / LINKTYPE values) that we understand. */
export const enum LinkType {
  Null = 0, // BSD loopback: 4-byte host-order family
  Ethernet = 1,
  Raw = 101, // LINKTYPE_RAW: raw IP
  RawDlt12 = 12, // DLT_RAW on some systems
  RawDlt14 = 14,
  LinuxSll = 113,
  Ipv4 = 228, // LINKTYPE_IPV4
  Ipv6 = 229, // LINKTYPE_IPV6
  LinuxSll2 = 276,
}

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;

/** Ethernet II header field offsets. */
export const enum Eth {
  Dst = 0,
  Src = 6,
  Type = 12,
}
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
export const ETHERTYPE_QINQ_OLD = 0x9100;
export const ETHER_HEADER = 14;

export function linkTypeName(t: number): string {
  switch (t) {
    case LinkType.Null: return 'NULL';
    case LinkType.Ethernet: return 'EN10MB';
    case LinkType.Raw: case LinkType.RawDlt12: case LinkType.RawDlt14: return 'RAW';
    case LinkType.LinuxSll: return 'LINUX_SLL';
    case LinkType.Ipv4: return 'IPV4';
    case LinkType.Ipv6: return 'IPV6';
    case LinkType.LinuxSll2: return 'LINUX_SLL2';
    default: return `DLT ${t}`;
  }
}

export function linkTypeSupported(t: number): boolean {
  return t === LinkType.Ethernet || t === LinkType.Raw || t === LinkType.RawDlt12 || t === LinkType.RawDlt14 ||
    t === LinkType.LinuxSll || t === LinkType.LinuxSll2 || t === LinkType.Ipv4 || t === LinkType.Ipv6 || t === LinkType.Null;
}

/**
 * Returns the offset (relative to `off`) at which the IPv4 header starts in a frame of
 * `linkType`, or a negative WireReason when the frame is too short, not IPv4, or of a link
 * type we do not handle. Ethernet II with any number of 802.1Q / 802.1ad tags, Linux
 * cooked capture v1 and v2, raw IP and BSD loopback are understood.
 */
export function ipv4Offset(linkType: number, buf: Buffer, off: number, len: number): number {
  switch (linkType) {
    case LinkType.Ethernet: {
      let p = 12;
      for (;;) {
        if (len < p + 2) return -WireReason.Truncated;
        const et = (buf[off + p] << 8) | buf[off + p + 1];
        if (et === ETHERTYPE_IPV4) return p + 2;
        if (et === ETHERTYPE_VLAN || et === ETHERTYPE_QINQ || et === ETHERTYPE_QINQ_OLD) { p += 4; continue; }
        return -WireReason.NotIpv4EtherType;
      }
    }
    case LinkType.LinuxSll: {
      if (len < 16) return -WireReason.Truncated;
      // Linux cooked capture v1: the protocol type is the last field of its 16-byte header.
      return get16(buf, off + 14) === ETHERTYPE_IPV4 ? 16 : -WireReason.NotIpv4EtherType;
    }
    case LinkType.LinuxSll2: {
      if (len < 20) return -WireReason.Truncated;
      return ((buf[off] << 8) | buf[off + 1]) === ETHERTYPE_IPV4 ? 20 : -WireReason.NotIpv4EtherType;
    }
    case LinkType.Raw: case LinkType.RawDlt12: case LinkType.RawDlt14: case LinkType.Ipv4: case LinkType.Ipv6:
      if (len < 1) return -WireReason.Truncated;
      return (buf[off] >>> 4) === 4 ? 0 : -WireReason.NotIpv4;
    case LinkType.Null: {
      if (len < 4) return -WireReason.Truncated;
      // AF_INET is 2 on every system; the family is in host byte order of the capturing machine.
      const le = get32le(buf, off), be = get32(buf, off);
      return le === 2 || be === 2 ? 4 : -WireReason.NotIpv4;
    }
    default:
      return -WireReason.UnsupportedLinkType;
  }
}

/** BSD loopback (DLT_NULL) address family values of AF_INET6: Linux, the BSDs, FreeBSD, Darwin. */
function isNullFamilyInet6(v: number): boolean {
  return v === 10 || v === 24 || v === 28 || v === 30;
}

/**
 * Like `ipv4Offset`, for either family: the offset (relative to `off`) of the IPv4 or IPv6
 * header in a frame of `linkType`, or a negative WireReason. Ethernet II (EtherType 0x0800 or
 * 0x86DD, behind any number of VLAN tags), Linux cooked capture v1 and v2, raw IP (the
 * version nibble decides; LINKTYPE_IPV4 and LINKTYPE_IPV6 take only their own) and BSD
 * loopback (AF_INET 2, AF_INET6 10/24/28/30, in either byte order) are understood. The
 * caller tells the family by the version nibble at the offset.
 */
export function ipOffset(linkType: number, buf: Buffer, off: number, len: number): number {
  switch (linkType) {
    case LinkType.Ethernet: {
      let p = 12;
      for (;;) {
        if (len < p + 2) return -WireReason.Truncated;
        const et = (buf[off + p] << 8) | buf[off + p + 1];
        if (et === ETHERTYPE_IPV4 || et === ETHERTYPE_IPV6) return p + 2;
        if (et === ETHERTYPE_VLAN || et === ETHERTYPE_QINQ || et === ETHERTYPE_QINQ_OLD) { p += 4; continue; }
        return -WireReason.NotIpEtherType;
      }
    }
    case LinkType.LinuxSll: {
      if (len < 16) return -WireReason.Truncated;
      const et = get16(buf, off + 14);
      return et === ETHERTYPE_IPV4 || et === ETHERTYPE_IPV6 ? 16 : -WireReason.NotIpEtherType;
    }
    case LinkType.LinuxSll2: {
      if (len < 20) return -WireReason.Truncated;
      const et = (buf[off] << 8) | buf[off + 1];
      return et === ETHERTYPE_IPV4 || et === ETHERTYPE_IPV6 ? 20 : -WireReason.NotIpEtherType;
    }
    case LinkType.Raw: case LinkType.RawDlt12: case LinkType.RawDlt14: {
      if (len < 1) return -WireReason.Truncated;
      const v = buf[off] >>> 4;
      return v === 4 || v === 6 ? 0 : -WireReason.NotIp;
    }
    case LinkType.Ipv4:
      if (len < 1) return -WireReason.Truncated;
      return (buf[off] >>> 4) === 4 ? 0 : -WireReason.NotIpv4;
    case LinkType.Ipv6:
      if (len < 1) return -WireReason.Truncated;
      return (buf[off] >>> 4) === 6 ? 0 : -WireReason.NotIpv6;
    case LinkType.Null: {
      if (len < 4) return -WireReason.Truncated;
      const le = get32le(buf, off), be = get32(buf, off);
      if (le === 2 || be === 2 || isNullFamilyInet6(le) || isNullFamilyInet6(be)) return 4;
      return -WireReason.NotIp;
    }
    default:
      return -WireReason.UnsupportedLinkType;
  }
}

/**
 * Writes an Ethernet II header (dst, src, EtherType: IPv4 unless told) at `off`. MACs are
 * 6-byte Buffers.
 */
export function writeEthernetHeader(buf: Buffer, off: number, dstMac: Buffer, srcMac: Buffer, etherType = ETHERTYPE_IPV4): void {
  dstMac.copy(buf, off + Eth.Dst, 0, 6);
  srcMac.copy(buf, off + Eth.Src, 0, 6);
  put16(buf, off + Eth.Type, etherType);
}

/** Parses `aa:bb:cc:dd:ee:ff` (or with `-`) into 6 bytes, or null. */
export function parseMac(s: string): Buffer | null {
  const m = /^([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})$/.exec(s.trim());
  if (!m) return null;
  return Buffer.from(m.slice(1, 7).map((h) => parseInt(h, 16)));
}

export function macToString(b: Buffer): string {
  return Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}
