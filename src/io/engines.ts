/**
 * The packet engines and how a daemon picks them. The fast ones (our addon, native/) are the
 * default wherever they load; the older ones stay selectable:
 *
 *   capture  ring    TPACKET_V3 ring + kernel BPF filter (native/)
 *            raw     raw IP socket (`raw-socket`), tcpcopy without -i
 *            pcap    libpcap (`cap`), with -i devices
 *            legacy  whichever of raw / pcap the mode used before the ring
 *   send     mmsg    sendmmsg from one arena per event-loop turn (native/): the raw IP socket,
 *                    or an AF_PACKET socket with -o
 *            raw     raw IP socket, one sendto per packet (`raw-socket`), without -o
 *            pcap    libpcap, one pcap_sendpacket per frame (`cap`), with -o
 *            legacy  whichever of raw / pcap the mode used before sendmmsg
 */
/** Why the raw-socket capture cannot see IPv6 (the start-up refusals quote it). */
export const RAW_CAPTURE_NO_IPV6 = 'an AF_INET6 raw socket does not deliver the IPv6 header on receive';

export type CaptureEngineName = 'ring' | 'raw' | 'pcap' | 'legacy';
export type SendEngineName = 'mmsg' | 'raw' | 'pcap' | 'legacy';
export const CAPTURE_ENGINES: readonly CaptureEngineName[] = ['ring', 'raw', 'pcap', 'legacy'];
export const SEND_ENGINES: readonly SendEngineName[] = ['mmsg', 'raw', 'pcap', 'legacy'];

/** A choice: the fast engine or the old one, and whether the user asked for it (no fallback then). */
export interface EngineChoice {
  fast: boolean;
  explicit: boolean;
}

/**
 * Resolves `--capture-engine` (or env TCPCOPY_CAPTURE_ENGINE) for a mode: `devices` is true
 * with -i devices (the old engine is libpcap), false without (the old one is the raw socket;
 * intercept has no such mode). Returns an error text for a choice the mode cannot run.
 */
export function chooseCapture(flag: string | undefined, env: string | undefined, devices: boolean, allowRaw: boolean): EngineChoice | string {
  const v = (flag ?? env ?? '').trim();
  const from = flag !== undefined ? '--capture-engine' : 'TCPCOPY_CAPTURE_ENGINE';
  if (v === '') return { fast: true, explicit: false };
  if (!(CAPTURE_ENGINES as readonly string[]).includes(v)) return `${from} ${v}: choose one of ${CAPTURE_ENGINES.join(', ')}`;
  if (v === 'ring') return { fast: true, explicit: true };
  if (v === 'legacy') return { fast: false, explicit: true };
  if (v === 'raw' && (!allowRaw || devices)) {
    return allowRaw ? `${from} raw captures on every interface: drop -i, or choose ring or pcap` : `${from} raw: intercept captures with ring or pcap`;
  }
  if (v === 'pcap' && !devices && allowRaw) return `${from} pcap needs -i devices (libpcap opens devices): add -i, or choose ring or raw`;
  return { fast: false, explicit: true };
}

/** Resolves `--send-engine` (or env TCPCOPY_SEND_ENGINE); `link` is true with -o. */
export function chooseSend(flag: string | undefined, env: string | undefined, link: boolean): EngineChoice | string {
  const v = (flag ?? env ?? '').trim();
  const from = flag !== undefined ? '--send-engine' : 'TCPCOPY_SEND_ENGINE';
  if (v === '') return { fast: true, explicit: false };
  if (!(SEND_ENGINES as readonly string[]).includes(v)) return `${from} ${v}: choose one of ${SEND_ENGINES.join(', ')}`;
  if (v === 'mmsg') return { fast: true, explicit: true };
  if (v === 'raw' && link) return `${from} raw sends through the IP stack: drop -o, or choose mmsg or pcap`;
  if (v === 'pcap' && !link) return `${from} pcap sends Ethernet frames and needs -o <device>: add -o, or choose mmsg or raw`;
  return { fast: false, explicit: true };
}
