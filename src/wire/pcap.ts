/**
 * Streaming, synchronous capture-file I/O.
 *
 * `PcapFileReader` reads classic pcap (both byte orders, µs and ns, and the "modified"
 * Kuznetzov variant) and pcapng (several sections and interfaces, EPB / SPB / obsolete PB)
 * from one reusable chunk buffer filled with `fs.readSync`: the file is never loaded whole,
 * so captures of many GiB are fine, and `next()` allocates nothing per packet.
 *
 * `PcapFileWriter` writes little-endian classic pcap through a buffered `fs.writeSync`.
 */
import * as fs from 'node:fs';
import { PcapErrorCode, TcpcopyError } from '../errors';

/** Why reading stopped (or why `open` refused the file). Stable `code`, human `message`. */
export class PcapError extends TcpcopyError {
  declare readonly code: PcapErrorCode;
  /** Byte offset in the file of the header / record / block that failed. */
  readonly fileOffset: number;
  /** Index of the packet that would have come next (packets returned before the failure). */
  readonly recordIndex: number;
  constructor(code: PcapErrorCode, message: string, fileOffset = 0, recordIndex = 0) {
    super(code, message);
    this.fileOffset = fileOffset;
    this.recordIndex = recordIndex;
  }
}

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAP_MAGIC_KUZNETZOV = 0xa1b2cd34; // "modified" pcap: 24-byte record headers
const PCAP_FILE_HEADER = 24;
/** Records larger than max(snaplen, this) are taken as corruption (libpcap's own bound). */
const PCAP_MIN_MAX_RECORD = 262144;

const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_IDB = 0x00000001;
const PCAPNG_OPB = 0x00000002; // obsolete Packet Block
const PCAPNG_SPB = 0x00000003;
const PCAPNG_EPB = 0x00000006;
const PCAPNG_BOM = 0x1a2b3c4d;
/** Blocks we must buffer whole (SHB, IDB, packets) may not exceed this; others are skipped. */
const PCAPNG_MAX_BUFFERED_BLOCK = 16 * 1024 * 1024;

const DEFAULT_CHUNK = 1024 * 1024;
const TWO32 = 4294967296;

const enum Format {
  Pcap = 0,
  Pcapng = 1,
}

/** Per-interface state of the current pcapng section (a plain record; built once per IDB). */
interface NgInterface {
  linkType: number;
  snaplen: number;
  /** Timestamp units per second (10^k or 2^k). */
  unitsPerSec: number;
  /** Nanoseconds per unit when the resolution is 10^-k with k ≤ 9, else 0. */
  nsPerUnit: number;
  /** Units per nanosecond when the resolution is 10^-k with k > 9, else 0. */
  unitsPerNs: number;
  /** if_tsoffset: seconds added to every timestamp. */
  tsOffsetSec: number;
}

/** Remainder of the last `divmod64` (module scratch: keeps the hot path allocation-free). */
let divRem = 0;

/**
 * Returns floor((hi·2^32 + lo) / d) and leaves the remainder in `divRem`. Exact for
 * d ≤ 2^36 (long division over 16-bit limbs keeps every intermediate below 2^53); for larger
 * divisors (sub-picosecond resolutions) it falls back to floating point.
 */
function divmod64(hi: number, lo: number, d: number): number {
  if (d > 68719476736) {
    const v = hi * TWO32 + lo;
    const q = Math.floor(v / d);
    const r = v - q * d;
    divRem = r < 0 ? 0 : r >= d ? d - 1 : r;
    return q;
  }
  let r = hi >>> 16;
  const q3 = Math.floor(r / d); r -= q3 * d;
  r = r * 65536 + (hi & 0xffff);
  const q2 = Math.floor(r / d); r -= q2 * d;
  r = r * 65536 + (lo >>> 16);
  const q1 = Math.floor(r / d); r -= q1 * d;
  r = r * 65536 + (lo & 0xffff);
  const q0 = Math.floor(r / d); r -= q0 * d;
  divRem = r;
  return ((q3 * 65536 + q2) * 65536 + q1) * 65536 + q0;
}

export class PcapFileReader {
  // ---- the current packet (valid until the next call to next()) ----
  /** Buffer holding the current packet's bytes (the reader's chunk buffer). */
  data: Buffer;
  /** Start of the packet in `data`. */
  offset = 0;
  caplen = 0;
  origLen = 0;
  tsSec = 0;
  /** Sub-second part of the timestamp, in nanoseconds. */
  tsNsec = 0;
  /** Link type of this packet's interface. */
  linkType = 0;
  interfaceId = 0;
  /** 0-based index of this packet. */
  recordIndex = -1;
  /** Byte offset in the file of this packet's record (pcap) or block (pcapng). */
  fileOffset = 0;

  // ---- status and counters ----
  /** Why next() returned false: null at clean end of file. */
  error: PcapError | null = null;
  /** Packets returned so far. */
  packets = 0;
  /** Bytes read from the file so far. */
  bytesRead = 0;

  /** Classic pcap: the file header's link type and snaplen; pcapng: those of the file's first interface once seen. */
  fileLinkType = -1;
  snaplen = 0;
  /** Classic pcap: timestamps are in nanoseconds. */
  nanosecond = false;

  private fd: number;
  private readonly path: string;
  /** File offset of data[0]. */
  private bufStart = 0;
  /** Parse position in data. */
  private pos = 0;
  /** Valid bytes in data. */
  private end = 0;
  private eof = false;
  private done = false;
  private le = true;
  private fmt: Format;
  private recHdrLen = 16;
  private maxRecord = PCAP_MIN_MAX_RECORD;
  private ifaces: NgInterface[] = [];

  private constructor(fd: number, path: string, chunkSize: number) {
    this.fd = fd;
    this.path = path;
    this.data = Buffer.allocUnsafe(Math.max(chunkSize, 64));
    this.fmt = Format.Pcap;
  }

  /** 'pcap' or 'pcapng'. */
  get format(): 'pcap' | 'pcapng' {
    return this.fmt === Format.Pcap ? 'pcap' : 'pcapng';
  }

  /** Microseconds since the epoch (a double: exact up to year 2255). */
  get tsUs(): number {
    return this.tsSec * 1000000 + Math.floor(this.tsNsec / 1000);
  }

  /**
   * Opens `path` and reads its file header (pcap) or first Section Header Block (pcapng).
   * `chunkSize` is the initial read buffer (it grows only for a record that does not fit).
   * Throws a PcapError: open-failed, read-failed, truncated-header, bad-magic, bad-version,
   * bad-block.
   */
  static open(path: string, chunkSize = DEFAULT_CHUNK): PcapFileReader {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new PcapError('open-failed', `cannot open ${path}: ${(e as Error).message}`);
    }
    const r = new PcapFileReader(fd, path, chunkSize);
    try {
      r.readFileHeader();
    } catch (e) {
      r.close();
      throw e;
    }
    return r;
  }

  close(): void {
    if (this.fd >= 0) {
      try { fs.closeSync(this.fd); } catch { /* already gone */ }
      this.fd = -1;
    }
    this.done = true;
  }

  // ------------------------------------------------------------------ buffering

  /**
   * Makes `n` bytes available at `pos`, compacting / refilling (and, for a record larger than
   * the buffer, growing) the chunk buffer. False at end of file (or on a read error, which
   * sets `error`). Never grows for a length that reaches past the end of the file.
   */
  private ensure(n: number): boolean {
    if (this.end - this.pos >= n) return true;
    if (this.fd < 0) return false;
    if (n > this.data.length) {
      // Rare: a record larger than the chunk. Refuse lying lengths before allocating.
      let size: number;
      try { size = fs.fstatSync(this.fd).size; } catch { size = Infinity; }
      if (this.bufStart + this.pos + n > size) { this.eof = true; return false; }
      const nb = Buffer.allocUnsafe(Math.max(n, this.data.length * 2));
      this.data.copy(nb, 0, this.pos, this.end);
      this.data = nb;
      this.bufStart += this.pos;
      this.end -= this.pos;
      this.pos = 0;
    } else if (this.pos + n > this.data.length) {
      // Move the partial record to the front (copy handles the overlap).
      if (this.end > this.pos) this.data.copy(this.data, 0, this.pos, this.end);
      this.bufStart += this.pos;
      this.end -= this.pos;
      this.pos = 0;
    }
    while (this.end - this.pos < n) {
      if (this.eof) return false;
      let got: number;
      try {
        got = fs.readSync(this.fd, this.data, this.end, this.data.length - this.end, this.bufStart + this.end);
      } catch (e) {
        this.fail('read-failed', `read error: ${(e as Error).message}`, this.bufStart + this.pos);
        this.eof = true;
        return false;
      }
      if (got === 0) { this.eof = true; return false; }
      this.end += got;
      this.bytesRead += got;
    }
    return true;
  }

  /** Advances past `n` bytes, discarding unread buffered data if they reach beyond it. */
  private skip(n: number): void {
    const avail = this.end - this.pos;
    if (n <= avail) { this.pos += n; return; }
    this.bufStart += this.pos + n;
    this.pos = 0;
    this.end = 0;
  }

  private u32(off: number): number {
    return this.le ? this.data.readUInt32LE(off) : this.data.readUInt32BE(off);
  }

  private u16(off: number): number {
    return this.le ? this.data.readUInt16LE(off) : this.data.readUInt16BE(off);
  }

  /** Ends iteration (clean EOF, or after `error` was set). */
  private halt(): false {
    this.done = true;
    return false;
  }

  /** Records a stop reason (once) and ends iteration. */
  private fail(code: PcapErrorCode, message: string, fileOffset: number): false {
    if (this.error === null) this.error = new PcapError(code, message, fileOffset, this.packets);
    this.done = true;
    return false;
  }

  // ------------------------------------------------------------------ file header

  private readFileHeader(): void {
    const err = (code: PcapErrorCode, msg: string): PcapError => new PcapError(code, `${this.path}: ${msg}`, 0, 0);
    if (!this.ensure(4)) throw this.error ?? err('truncated-header', 'file shorter than a magic number');
    const d = this.data;
    const mle = d.readUInt32LE(0), mbe = d.readUInt32BE(0);
    if (mle === PCAPNG_SHB) {
      this.fmt = Format.Pcapng;
      const e = this.readShb(true);
      if (e !== null) throw e;
      return;
    }
    let magic: number;
    if (mle === PCAP_MAGIC_US || mle === PCAP_MAGIC_NS || mle === PCAP_MAGIC_KUZNETZOV) {
      this.le = true; magic = mle;
    } else if (mbe === PCAP_MAGIC_US || mbe === PCAP_MAGIC_NS || mbe === PCAP_MAGIC_KUZNETZOV) {
      this.le = false; magic = mbe;
    } else {
      throw err('bad-magic', `not a pcap or pcapng file (magic 0x${mbe.toString(16).padStart(8, '0')})`);
    }
    if (!this.ensure(PCAP_FILE_HEADER)) throw this.error ?? err('truncated-header', 'pcap file header cut short');
    const major = this.u16(4);
    if (major !== 2) throw err('bad-version', `unsupported pcap version ${major}.${this.u16(6)}`);
    this.nanosecond = magic === PCAP_MAGIC_NS;
    this.recHdrLen = magic === PCAP_MAGIC_KUZNETZOV ? 24 : 16;
    this.snaplen = this.u32(16);
    // The upper bits of the link-type field carry FCS information (LT_LINKTYPE in libpcap).
    this.fileLinkType = this.u32(20) & 0x03ffffff;
    this.maxRecord = Math.max(this.snaplen, PCAP_MIN_MAX_RECORD);
    this.linkType = this.fileLinkType;
    this.pos = PCAP_FILE_HEADER;
  }

  /**
   * Reads a Section Header Block at `pos` (its type already seen): sets the byte order and
   * forgets the previous section's interfaces. Returns the error instead of throwing (the
   * caller decides: `open` throws it, `next` stops with it).
   */
  private readShb(atOpen: boolean): PcapError | null {
    const at = this.bufStart + this.pos;
    const truncCode = atOpen ? 'truncated-header' : 'truncated-record';
    const mk = (code: PcapErrorCode, msg: string): PcapError => new PcapError(code, `${this.path}: ${msg}`, at, this.packets);
    if (!this.ensure(12)) return this.error ?? mk(truncCode, 'section header block cut short');
    const p = this.pos;
    const bom = this.data.readUInt32LE(p + 8);
    if (bom === PCAPNG_BOM) this.le = true;
    else if (this.data.readUInt32BE(p + 8) === PCAPNG_BOM) this.le = false;
    else return mk(atOpen ? 'bad-magic' : 'bad-block', 'section header block has no byte-order magic');
    const len = this.u32(p + 4);
    if (len < 28 || (len & 3) !== 0 || len > PCAPNG_MAX_BUFFERED_BLOCK) {
      return mk('bad-block', `section header block length ${len} invalid`);
    }
    if (!this.ensure(len)) return this.error ?? mk(truncCode, 'section header block cut short');
    const q = this.pos;
    if (this.u32(q + len - 4) !== len) return mk('bad-block', 'section header block trailing length mismatch');
    const major = this.u16(q + 12);
    if (major !== 1) return mk('bad-version', `unsupported pcapng version ${major}.${this.u16(q + 14)}`);
    this.ifaces.length = 0;
    this.pos = q + len;
    return null;
  }

  /** Parses an Interface Description Block of `len` bytes (buffered at `pos`). */
  private readIdb(len: number): boolean {
    const d = this.data, p = this.pos;
    const at = this.bufStart + p;
    if (len < 20) return this.fail('bad-block', `interface description block length ${len} too small`, at);
    const iface: NgInterface = {
      linkType: this.u16(p + 8),
      snaplen: this.u32(p + 12),
      unitsPerSec: 1000000,
      nsPerUnit: 1000,
      unitsPerNs: 0,
      tsOffsetSec: 0,
    };
    // Options: code(2) length(2) value padded to 4, up to the trailing length.
    let o = p + 16;
    const optEnd = p + len - 4;
    while (o + 4 <= optEnd) {
      const code = this.u16(o), olen = this.u16(o + 2);
      if (code === 0) break; // opt_endofopt
      if (o + 4 + olen > optEnd) return this.fail('bad-block', 'interface option beyond its block', at);
      if (code === 9 && olen >= 1) {
        // if_tsresol: MSB clear → 10^-v seconds, set → 2^-v seconds.
        const v = d[o + 4];
        const e = v & 0x7f;
        if ((v & 0x80) === 0) {
          if (e > 19) return this.fail('bad-block', `unsupported if_tsresol 10^-${e}`, at);
          iface.unitsPerSec = 10 ** e;
          iface.nsPerUnit = e <= 9 ? 10 ** (9 - e) : 0;
          iface.unitsPerNs = e > 9 ? 10 ** (e - 9) : 0;
        } else {
          if (e > 63) return this.fail('bad-block', `unsupported if_tsresol 2^-${e}`, at);
          iface.unitsPerSec = 2 ** e;
          iface.nsPerUnit = e === 0 ? 1000000000 : 0;
          iface.unitsPerNs = 0;
        }
      } else if (code === 14 && olen >= 8) {
        // if_tsoffset: signed 64-bit seconds.
        const hi = this.le ? d.readInt32LE(o + 8) : d.readInt32BE(o + 4);
        const lo = this.le ? d.readUInt32LE(o + 4) : d.readUInt32BE(o + 8);
        iface.tsOffsetSec = hi * TWO32 + lo;
      }
      o += 4 + ((olen + 3) & ~3);
    }
    if (this.ifaces.length === 0 && this.fileLinkType < 0) {
      this.fileLinkType = iface.linkType;
      this.snaplen = iface.snaplen;
    }
    this.ifaces.push(iface);
    return true;
  }

  /** Sets tsSec / tsNsec from a pcapng 64-bit timestamp in `iface` units. */
  private setNgTimestamp(iface: NgInterface, hi: number, lo: number): void {
    const sec = divmod64(hi, lo, iface.unitsPerSec);
    const r = divRem;
    this.tsSec = sec + iface.tsOffsetSec;
    if (iface.nsPerUnit !== 0) {
      this.tsNsec = r * iface.nsPerUnit;
    } else if (iface.unitsPerNs !== 0) {
      this.tsNsec = Math.floor(r / iface.unitsPerNs);
    } else {
      // 2^-k: exact while r·10^9 < 2^53 (k ≤ 23), within a nanosecond beyond.
      const ns = Math.floor((r * 1e9) / iface.unitsPerSec);
      this.tsNsec = ns > 999999999 ? 999999999 : ns;
    }
  }

  // ------------------------------------------------------------------ iteration

  /**
   * Advances to the next packet. False at end of file or on error (see `error`: null at a
   * clean end; else truncated-record, bad-record-length, bad-block, bad-interface,
   * bad-version or read-failed), and false ever after.
   */
  next(): boolean {
    if (this.done) return false;
    return this.fmt === Format.Pcap ? this.nextPcap() : this.nextPcapng();
  }

  private nextPcap(): boolean {
    const hl = this.recHdrLen;
    const at = this.bufStart + this.pos;
    if (!this.ensure(hl)) {
      if (this.error !== null) return this.halt();
      if (this.end === this.pos) return this.halt(); // clean EOF
      return this.fail('truncated-record', `record header cut short (${this.end - this.pos} of ${hl} bytes)`, at);
    }
    const p = this.pos;
    const incl = this.u32(p + 8);
    if (incl > this.maxRecord) {
      return this.fail('bad-record-length', `record length ${incl} exceeds the limit ${this.maxRecord}`, at);
    }
    if (!this.ensure(hl + incl)) {
      if (this.error !== null) return this.halt();
      return this.fail('truncated-record', `record of ${incl} bytes cut short (${this.end - this.pos - hl} present)`, at);
    }
    const q = this.pos; // ensure() may have moved the record
    const frac = this.u32(q + 4);
    this.tsSec = this.u32(q);
    this.tsNsec = this.nanosecond ? frac : frac * 1000;
    this.caplen = incl;
    this.origLen = this.u32(q + 12);
    this.offset = q + hl;
    this.fileOffset = at;
    this.recordIndex = this.packets++;
    this.pos = q + hl + incl;
    return true;
  }

  private nextPcapng(): boolean {
    for (;;) {
      const at = this.bufStart + this.pos;
      if (!this.ensure(8)) {
        if (this.error !== null) return this.halt();
        if (this.end === this.pos) return this.halt(); // clean EOF
        return this.fail('truncated-record', `block header cut short (${this.end - this.pos} of 8 bytes)`, at);
      }
      const p = this.pos;
      const type = this.u32(p);
      if (type === PCAPNG_SHB) {
        const e = this.readShb(false);
        if (e !== null) {
          if (this.error === null) this.error = e;
          return this.halt();
        }
        continue;
      }
      const len = this.u32(p + 4);
      if (len < 12 || (len & 3) !== 0) return this.fail('bad-block', `block length ${len} invalid (type 0x${type.toString(16)})`, at);
      const isPacket = type === PCAPNG_EPB || type === PCAPNG_SPB || type === PCAPNG_OPB;
      if (!isPacket && type !== PCAPNG_IDB) {
        // Skipped block (NRB, ISB, DSB, custom, ...): check its trailing length and move on
        // without buffering its body.
        this.skip(len - 4);
        if (!this.ensure(4)) {
          if (this.error !== null) return this.halt();
          return this.fail('truncated-record', `block of ${len} bytes cut short`, at);
        }
        if (this.u32(this.pos) !== len) return this.fail('bad-block', 'trailing block length mismatch', at);
        this.pos += 4;
        continue;
      }
      if (len > PCAPNG_MAX_BUFFERED_BLOCK) return this.fail('bad-block', `block length ${len} exceeds the limit`, at);
      if (!this.ensure(len)) {
        if (this.error !== null) return this.halt();
        return this.fail('truncated-record', `block of ${len} bytes cut short (${this.end - this.pos} present)`, at);
      }
      const q = this.pos;
      if (this.u32(q + len - 4) !== len) return this.fail('bad-block', 'trailing block length mismatch', at);
      if (type === PCAPNG_IDB) {
        if (!this.readIdb(len)) return false;
        this.pos = q + len;
        continue;
      }
      const ifs = this.ifaces;
      let ifId: number, cap: number, orig: number, dataOff: number;
      if (type === PCAPNG_SPB) {
        if (len < 16) return this.fail('bad-block', `simple packet block length ${len} too small`, at);
        if (ifs.length === 0) return this.fail('bad-interface', 'simple packet block before any interface', at);
        ifId = 0;
        orig = this.u32(q + 8);
        cap = len - 16;
        const snap = ifs[0].snaplen;
        if (orig < cap) cap = orig;
        if (snap !== 0 && snap < cap) cap = snap;
        dataOff = q + 12;
        this.tsSec = 0;
        this.tsNsec = 0;
      } else {
        if (len < 32) return this.fail('bad-block', `packet block length ${len} too small`, at);
        ifId = type === PCAPNG_EPB ? this.u32(q + 8) : this.u16(q + 8);
        if (ifId >= ifs.length) return this.fail('bad-interface', `packet on undeclared interface ${ifId}`, at);
        cap = this.u32(q + 20);
        orig = this.u32(q + 24);
        if (cap > len - 32) return this.fail('bad-block', `captured length ${cap} beyond its block`, at);
        dataOff = q + 28;
        this.setNgTimestamp(ifs[ifId], this.u32(q + 12), this.u32(q + 16));
      }
      this.interfaceId = ifId;
      this.linkType = ifs[ifId].linkType;
      this.caplen = cap;
      this.origLen = orig;
      this.offset = dataOff;
      this.fileOffset = at;
      this.recordIndex = this.packets++;
      this.pos = q + len;
      return true;
    }
  }
}

/** Buffered little-endian classic pcap writer. */
export class PcapFileWriter {
  readonly linkType: number;
  readonly snaplen: number;
  readonly nanosecond: boolean;
  packets = 0;
  bytesWritten = 0;
  private fd: number;
  private readonly buf: Buffer;
  private used = 0;

  private constructor(fd: number, linkType: number, snaplen: number, nanosecond: boolean, bufSize: number) {
    this.fd = fd;
    this.linkType = linkType;
    this.snaplen = snaplen;
    this.nanosecond = nanosecond;
    this.buf = Buffer.allocUnsafe(Math.max(bufSize, 4096));
  }

  /** Creates (truncating) `path` and writes the file header. Throws fs errors. */
  static create(path: string, linkType: number, snaplen = 65535, nanosecond = false, bufSize = DEFAULT_CHUNK): PcapFileWriter {
    const fd = fs.openSync(path, 'w');
    const w = new PcapFileWriter(fd, linkType, snaplen, nanosecond, bufSize);
    const b = w.buf;
    b.writeUInt32LE(nanosecond ? PCAP_MAGIC_NS : PCAP_MAGIC_US, 0);
    b.writeUInt16LE(2, 4);
    b.writeUInt16LE(4, 6);
    b.writeInt32LE(0, 8); // thiszone
    b.writeUInt32LE(0, 12); // sigfigs
    b.writeUInt32LE(snaplen >>> 0, 16);
    b.writeUInt32LE(linkType >>> 0, 20);
    w.used = PCAP_FILE_HEADER;
    return w;
  }

  /**
   * Appends one record: `len` bytes of `buf` at `off` (cut to the snaplen), timestamp
   * `tsSec` + `tsUsOrNs` (µs, or ns for a nanosecond file), original length `origLen`.
   */
  write(buf: Buffer, off: number, len: number, tsSec: number, tsUsOrNs: number, origLen = len): void {
    if (this.fd < 0) throw new Error('PcapFileWriter: write after close');
    const incl = len > this.snaplen ? this.snaplen : len;
    if (this.used + 16 + incl > this.buf.length) this.flush();
    const b = this.buf;
    let u = this.used;
    b.writeUInt32LE(tsSec >>> 0, u);
    b.writeUInt32LE(tsUsOrNs >>> 0, u + 4);
    b.writeUInt32LE(incl, u + 8);
    b.writeUInt32LE(origLen >>> 0, u + 12);
    u += 16;
    if (incl > b.length - u) {
      // Larger than the buffer: header then body straight to the file.
      this.used = u;
      this.flush();
      this.writeAll(buf, off, incl);
    } else {
      buf.copy(b, u, off, off + incl);
      this.used = u + incl;
    }
    this.packets++;
  }

  /** Writes the buffered records to the file. */
  flush(): void {
    if (this.used > 0 && this.fd >= 0) {
      this.writeAll(this.buf, 0, this.used);
      this.used = 0;
    }
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      this.flush();
    } finally {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }

  private writeAll(b: Buffer, off: number, len: number): void {
    while (len > 0) {
      const n = fs.writeSync(this.fd, b, off, len);
      off += n;
      len -= n;
      this.bytesWritten += n;
    }
  }
}
