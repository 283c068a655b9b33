/**
 * The original C tcpcopy and intercept, built from their public source as peers to measure
 * against (never part of the product). The source folder is read-only and outside the project
 * (`../shared/peers` by default, `--peers DIR` or TCPCOPY_PEERS); it is copied to a temporary
 * directory and built there with `./configure && make`, once per source hash: a later bench
 * finds the build in the same place and reuses it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from '../lab/daemons';

/** Where the peers' source is looked for when neither --peers nor TCPCOPY_PEERS says. */
export const DEFAULT_PEERS_DIR = path.resolve(ROOT, '..', 'shared', 'peers');

export interface PeerBuild {
  /** The source folder (holds tcpcopy/ and intercept/). */
  source: string;
  /** sha1 (12 hex digits) of every file of both source trees: names the build. */
  sourceHash: string;
  /** The temporary build directory. */
  dir: string;
  tcpcopy: string;
  intercept: string;
  /** Version lines the binaries print (`-v`). */
  versions: { tcpcopy: string; intercept: string };
  /** False when an earlier bench's build of the same source was reused. */
  fresh: boolean;
  buildSeconds: number;
}

/** The peers' build, or why there is none (one line). */
export type PeerOutcome = { ok: true; build: PeerBuild } | { ok: false; reason: string };

const PROGRAMS = ['tcpcopy', 'intercept'] as const;

function treeHash(dirs: string[]): string {
  const h = createHash('sha1');
  const walk = (root: string, dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(root, p);
      else if (e.isFile()) h.update(path.relative(root, p)).update('\0').update(fs.readFileSync(p));
    }
  };
  for (const d of dirs) walk(path.dirname(d), d);
  return h.digest('hex').slice(0, 12);
}

function executable(f: string): boolean {
  try { fs.accessSync(f, fs.constants.X_OK); return fs.statSync(f).isFile(); } catch { return false; }
}

function version(bin: string): string {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

function inside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Builds (or finds the cached build of) the original tcpcopy and intercept. Never throws: a
 * missing source, compiler or libpcap, or a failed build is a reason, and the bench then runs
 * our pair alone.
 */
export function buildPeers(sourceDir: string, cacheRoot = os.tmpdir(), log: (m: string) => void = () => {}): PeerOutcome {
  const source = path.resolve(sourceDir);
  const srcs = PROGRAMS.map((p) => path.join(source, p));
  for (const d of srcs) {
    if (!fs.existsSync(path.join(d, 'configure'))) return { ok: false, reason: `no original source at ${d} (no configure script)` };
  }
  for (const tool of ['cc', 'make']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return { ok: false, reason: `${tool} is not installed (apt-get install build-essential)` };
  }
  if (!fs.existsSync('/usr/include/pcap/pcap.h')) return { ok: false, reason: 'libpcap headers are missing (apt-get install libpcap-dev)' };
  const sourceHash = treeHash(srcs);
  const dir = path.join(path.resolve(cacheRoot), `tcpcopy-peers-${sourceHash}`);
  if (inside(dir, ROOT)) return { ok: false, reason: `the build directory ${dir} would be inside the project; choose another` };
  const bins = { tcpcopy: path.join(dir, 'tcpcopy', 'objs', 'tcpcopy'), intercept: path.join(dir, 'intercept', 'objs', 'intercept') };
  const t0 = Date.now();
  let fresh = false;
  if (!executable(bins.tcpcopy) || !executable(bins.intercept)) {
    fresh = true;
    // Build in a directory of its own, then rename it into place: a build cut short never looks finished.
    const work = fs.mkdtempSync(path.join(path.resolve(cacheRoot), `tcpcopy-peers-${sourceHash}.tmp-`));
    try {
      for (const p of PROGRAMS) {
        log(`building the original ${p} in ${work}`);
        fs.cpSync(path.join(source, p), path.join(work, p), { recursive: true });
        spawnSync('chmod', ['-R', 'u+w', path.join(work, p)]);
        const r = spawnSync('sh', ['-c', './configure && make -j2'], {
          cwd: path.join(work, p), encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20,
        });
        fs.writeFileSync(path.join(work, `${p}-build.log`), `${r.stdout ?? ''}${r.stderr ?? ''}`);
        if (r.status !== 0 || !executable(path.join(work, p, 'objs', p))) {
          const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' | ');
          return { ok: false, reason: `the original ${p} did not build (${r.error?.message ?? `status ${r.status}`}): ${tail.slice(0, 300)}` };
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(work, dir);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
  return {
    ok: true,
    build: {
      source, sourceHash, dir, ...bins,
      versions: { tcpcopy: version(bins.tcpcopy), intercept: version(bins.intercept) },
      fresh, buildSeconds: (Date.now() - t0) / 1000,
    },
  };
}
