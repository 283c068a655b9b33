/**
 * `--baseline <rev>`: an earlier build of ours as a pair in the same run, so that a change is
 * measured as a ratio (this build ÷ that one) on a machine whose absolute figures drift by tens
 * of percent between runs. The revision is checked out in a temporary directory (a detached git
 * worktree, never inside the project), compiled with this checkout's TypeScript and modules, and
 * its addon built there (`npm run install`), so that it runs its own JavaScript and C++. The
 * worktree is removed at the end.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from '../lab/daemons';

export interface BaselineBuild {
  /** As given (`HEAD~1`, a tag, a commit). */
  rev: string;
  commit: string;
  subject: string;
  dir: string;
  bin: { tcpcopy: string; intercept: string };
}

const git = (args: string[], cwd = ROOT): string => execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** Checks out and builds `rev`; a reason when that is not possible (the bench then stops: it was asked for). */
export function buildBaseline(rev: string, progress: (line: string) => void): { ok: true; build: BaselineBuild } | { ok: false; reason: string } {
  let commit: string;
  let subject: string;
  try {
    commit = git(['rev-parse', '--verify', `${rev}^{commit}`]);
    subject = git(['log', '-1', '--format=%s', commit]);
    if (subject.length > 80) subject = `${subject.slice(0, 79)}…`;
  } catch {
    return { ok: false, reason: `--baseline ${rev}: not a revision of this repository (git rev-parse failed)` };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-baseline-'));
  const t0 = Date.now();
  try {
    git(['worktree', 'add', '--detach', dir, commit]);
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    const addonDeps = path.join(ROOT, 'native', 'node_modules');
    if (fs.existsSync(addonDeps) && !fs.existsSync(path.join(dir, 'native', 'node_modules'))) {
      fs.symlinkSync(addonDeps, path.join(dir, 'native', 'node_modules'), 'dir');
    }
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (fs.existsSync(path.join(dir, 'native', 'binding.gyp'))) {
      execFileSync('npm', ['run', '--silent', 'install'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
    }
  } catch (e) {
    removeBaseline({ dir });
    const err = e as { stderr?: Buffer | string; message: string };
    const detail = String(err.stderr ?? '').trim().split('\n').slice(-3).join(' | ') || err.message;
    return { ok: false, reason: `--baseline ${rev}: the build failed: ${detail}` };
  }
  const bin = { tcpcopy: path.join(dir, 'bin', 'tcpcopy'), intercept: path.join(dir, 'bin', 'intercept') };
  if (!fs.existsSync(bin.tcpcopy) || !fs.existsSync(bin.intercept)) {
    removeBaseline({ dir });
    return { ok: false, reason: `--baseline ${rev}: no bin/tcpcopy and bin/intercept in that revision` };
  }
  progress(`baseline pair: ${commit.slice(0, 12)} "${subject}" built in ${((Date.now() - t0) / 1000).toFixed(0)} s (${dir})`);
  return { ok: true, build: { rev, commit, subject, dir, bin } };
}

/** Removes the worktree (and its directory); quiet when it is gone already. */
export function removeBaseline(b: { dir: string }): void {
  try { git(['worktree', 'remove', '--force', b.dir]); } catch { /* not registered */ }
  fs.rmSync(b.dir, { recursive: true, force: true });
  try { git(['worktree', 'prune']); } catch { /* nothing to prune */ }
}
