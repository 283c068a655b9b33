import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Copies what running the daemons needs (bin/, dist/src, package.json, the production
 * packages of node_modules and our addon's build) to `<dir>/tcpcopy`, readable by every user
 * (directories 0755, files 0644, launchers 0755), so that an unprivileged user can run it
 * wherever the checkout lives (a 0700 home, /root); `extra` are more paths relative to the
 * checkout (e.g. a compiled test helper). Returns that directory.
 */
export function installedCopy(dir: string, extra: readonly string[] = []): string {
  const app = path.join(dir, 'tcpcopy');
  const dev = new Set(['typescript', '@types', '.bin']);
  const copy = (from: string, to: string): void => {
    const st = fs.lstatSync(from);
    if (st.isDirectory()) {
      fs.mkdirSync(to, { mode: 0o755 });
      fs.chmodSync(to, 0o755);
      for (const e of fs.readdirSync(from)) copy(path.join(from, e), path.join(to, e));
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(from), to);
    } else {
      fs.copyFileSync(from, to);
      fs.chmodSync(to, st.mode & 0o111 ? 0o755 : 0o644);
    }
  };
  fs.mkdirSync(app, { mode: 0o755 });
  fs.chmodSync(app, 0o755);
  copy(path.join(ROOT, 'bin'), path.join(app, 'bin'));
  copy(path.join(ROOT, 'package.json'), path.join(app, 'package.json'));
  fs.mkdirSync(path.join(app, 'dist'), { mode: 0o755 });
  fs.chmodSync(path.join(app, 'dist'), 0o755);
  copy(path.join(ROOT, 'dist/src'), path.join(app, 'dist/src'));
  fs.mkdirSync(path.join(app, 'node_modules'), { mode: 0o755 });
  fs.chmodSync(path.join(app, 'node_modules'), 0o755);
  for (const e of fs.readdirSync(path.join(ROOT, 'node_modules'))) {
    if (!dev.has(e)) copy(path.join(ROOT, 'node_modules', e), path.join(app, 'node_modules', e));
  }
  for (const rel of [...(fs.existsSync(path.join(ROOT, 'native/build/Release')) ? ['native/build/Release'] : []), ...extra]) {
    let at = app;
    for (const part of path.dirname(rel).split('/')) {
      at = path.join(at, part);
      if (!fs.existsSync(at)) { fs.mkdirSync(at, { mode: 0o755 }); fs.chmodSync(at, 0o755); }
    }
    copy(path.join(ROOT, rel), path.join(app, rel));
  }
  return app;
}

