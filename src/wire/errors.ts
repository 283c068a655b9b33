/**
 * Why untrusted bytes were rejected. Checked constructors return one of these (never throw);
 * the numeric code indexes counters without string work on the hot path.
 */
export const enum WireReason {
  Ok = 0,
  Truncated = 1,
  NotIpv4 = 2,
  BadIhl = 3,
  BadTotalLength = 4,
  NotTcp = 5,
  BadDataOffset = 6,
  Fragment = 7,
  UnsupportedLinkType = 8,
  NotIpv4EtherType = 9,
  BadRecord = 10,
  NotIpv6 = 11,
  Ipv6BadPayloadLength = 12,
  Ipv6Fragment = 13,
  Ipv6UnknownExtension = 14,
  Ipv6BadExtension = 15,
  Ipv6RoutingInTransit = 16,
  NotIpEtherType = 17,
  NotIp = 18,
}

export const WIRE_REASON_NAMES: readonly string[] = [
  'ok',
  'truncated',
  'not-ipv4',
  'bad-ihl',
  'bad-total-length',
  'not-tcp',
  'bad-data-offset',
  'fragment',
  'unsupported-link-type',
  'not-ipv4-ethertype',
  'bad-record',
  'not-ipv6',
  'ipv6-bad-payload-length',
  'ipv6-fragment',
  'ipv6-unknown-extension',
  'ipv6-bad-extension',
  'ipv6-routing-in-transit',
  'not-ip-ethertype',
  'not-ip',
];

/** A typed rejection of untrusted bytes, with a stable code and a human reason. */
export class WireError {
  readonly reason: WireReason;
  readonly code: string;
  readonly message: string;
  constructor(reason: WireReason, message: string) {
    this.reason = reason;
    this.code = WIRE_REASON_NAMES[reason];
    this.message = message;
  }
}

const DESCRIPTIONS: readonly string[] = [
  'ok',
  'fewer bytes than the header needs',
  'IP version is not 4',
  'IPv4 header length (IHL) below 5 words or beyond the packet',
  'IPv4 total length below the header or beyond the captured bytes',
  'IP protocol is not TCP',
  'TCP data offset below 5 words or beyond the segment',
  'non-first IPv4 fragment',
  'unsupported link-layer type',
  'link-layer frame does not carry IPv4',
  'malformed control-channel record',
  'IP version is not 6',
  'IPv6 payload length beyond the captured bytes (or a jumbogram)',
  'IPv6 fragment header (fragments are refused: a TCP segment must be whole)',
  'IPv6 extension header we do not walk (ESP, AH, mobility, HIP, shim6, experimental)',
  'IPv6 extension header beyond the packet, or too many of them',
  'IPv6 routing header with segments left: the destination is not the final one',
  'link-layer frame carries neither IPv4 nor IPv6',
  'IP version is neither 4 nor 6',
];

/** One shared, immutable error per reason: rejections allocate nothing. */
export const WIRE_ERRORS: readonly WireError[] = DESCRIPTIONS.map((d, i) => new WireError(i as WireReason, d));

export function wireError(reason: WireReason): WireError {
  return WIRE_ERRORS[reason];
}
