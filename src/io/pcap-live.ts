import { FrameSink, IoError, setcapCommand } from './types';
import { LinkType } from '../wire/link';

// The `cap` addon (libpcap). Loaded lazily so that programs which never capture with
// libpcap do not need it.
interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): void;
  send(buffer: Buffer, nbytes?: number): void;
  on(ev: 'packet', fn: (nbytes: number, truncated: boolean) => void): void;
  removeAllListeners(ev?: string): void;
}
interface CapModule {
  Cap: { new(): CapHandle; deviceList(): { name: string; addresses: { addr: string }[] }[] };
}
let capModule: CapModule | null = null;
export function loadCap(): CapModule {
  if (!capModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      capModule = require('cap') as CapModule;
    } catch (e) {
      throw new IoError('no-libpcap', `cannot load the cap (libpcap) addon: ${(e as Error).message}; run 'npm run setup' (it installs libpcap-dev and rebuilds)`);
    }
  }
  return capModule;
}

function linkTypeOf(name: string): number {
  switch (name) {
    case 'ETHERNET': return LinkType.Ethernet;
    case 'LINKTYPE_LINUX_SLL': return LinkType.LinuxSll;
    case 'RAW': return LinkType.Raw;
    case 'NULL': return LinkType.Null;
    default: return -1;
  }
}

/** Names of the devices libpcap can open (for error messages). */
export function pcapDevices(): string[] {
  try { return loadCap().Cap.deviceList().map((d) => d.name); } catch { return []; }
}

export function explainPcapError(device: string, filter: string, msg: string): IoError {
  const m = msg.toLowerCase();
  if (m.includes('no such device') || m.includes("doesn't exist") || m.includes('not found')) {
    return new IoError('no-device', `device '${device}' does not exist; devices here: ${pcapDevices().join(', ')}`);
  }
  if (m.includes('permission') || m.includes('operation not permitted')) {
    return new IoError('no-permission', `no permission to capture on '${device}' (${msg}): run as root or grant CAP_NET_RAW and CAP_NET_ADMIN (${setcapCommand()})`);
  }
  if (m.includes('syntax') || m.includes('parse') || m.includes('illegal') || m.includes('expression') || m.includes('filter')) {
    return new IoError('bad-filter', `libpcap rejects the filter '${filter}': ${msg}; see man pcap-filter, e.g. -F 'tcp and src port 8080'`);
  }
  return new IoError('pcap-open', `cannot capture on '${device}': ${msg}`);
}

/** One libpcap handle per device; every frame goes to the sink with its link type. */
class DeviceCapture {
  readonly cap: CapHandle;
  /** Referenced for as long as the handle is open: libpcap writes into it (cap keeps only a raw pointer to it: if it were collected, libpcap would write into freed memory). */
  readonly buffer: Buffer;
  readonly linkType: number;
  packets = 0;
  truncated = 0;

  constructor(readonly device: string, filter: string, bufferBytes: number, frameBytes: number, private readonly sink: FrameSink) {
    const { Cap } = loadCap();
    this.cap = new Cap();
    this.buffer = Buffer.alloc(frameBytes);
    let lt: string;
    try {
      lt = this.cap.open(device, filter, bufferBytes, this.buffer);
    } catch (e) {
      // No close() here: cap asserts (and aborts the process) when closing a failed handle.
      throw explainPcapError(device, filter, (e as Error).message);
    }
    this.linkType = linkTypeOf(lt);
    if (this.linkType < 0) {
      this.cap.close();
      throw new IoError('link-type', `device '${device}' has link type ${lt}, which is not supported (Ethernet, Linux SLL, raw IP)`);
    }
    this.cap.on('packet', this.onPacket);
  }

  private readonly onPacket = (nbytes: number, trunc: boolean): void => {
    this.packets++;
    if (trunc) this.truncated++;
    this.sink.onFrame(this.buffer, nbytes, this.linkType, Date.now() * 1000);
  };

  close(): void {
    this.cap.removeAllListeners('packet');
    try { this.cap.close(); } catch { /* closed */ }
  }
}

export interface PcapLiveOptions {
  devices: string[];
  filter: string;
  /** libpcap kernel buffer (bytes). */
  bufferBytes: number;
  /** Bytes of each frame copied out of libpcap (the effective snap length). */
  frameBytes: number;
}

/** Live capture on one or more devices through libpcap (`cap`). */
export class PcapLiveSource {
  private readonly handles: DeviceCapture[] = [];

  constructor(private readonly opts: PcapLiveOptions, private readonly sink: FrameSink) {}

  /** Opens every device; on any failure closes what was opened and throws an IoError. */
  open(): void {
    const known = pcapDevices();
    for (const d of this.opts.devices) {
      if (known.length && !known.includes(d)) {
        throw new IoError('no-device', `device '${d}' does not exist; devices here: ${known.join(', ')}`);
      }
    }
    try {
      for (const d of this.opts.devices) {
        this.handles.push(new DeviceCapture(d, this.opts.filter, this.opts.bufferBytes, this.opts.frameBytes, this.sink));
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  get packets(): number { return this.handles.reduce((a, h) => a + h.packets, 0); }
  get truncated(): number { return this.handles.reduce((a, h) => a + h.truncated, 0); }
  get linkTypes(): number[] { return this.handles.map((h) => h.linkType); }

  close(): void {
    for (const h of this.handles.splice(0)) h.close();
  }
}

/**
 * Link-layer sender: whole Ethernet frames through libpcap on one device. The handle is
 * opened with a filter that matches nothing, so it never receives.
 */
export class PcapSendHandle {
  private readonly cap: CapHandle;
  private readonly rxBuffer = Buffer.alloc(64);
  constructor(readonly device: string) {
    const { Cap } = loadCap();
    this.cap = new Cap();
    try {
      // A filter that matches nothing (a local experimental EtherType): this handle only sends.
      this.cap.open(device, 'ether proto 0x88b5', 1 << 20, this.rxBuffer);
    } catch (e) {
      throw explainPcapError(device, '', (e as Error).message);
    }
  }
  send(frame: Buffer, len: number): void {
    this.cap.send(frame, len);
  }
  close(): void {
    try { this.cap.close(); } catch { /* closed */ }
  }
}
