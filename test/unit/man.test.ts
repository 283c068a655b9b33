/**
 * The man pages: man/*.1 (written by the build from the commander definitions) are what the
 * programs define, every flag is in them, and man(1) renders them without warnings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { manPage, manPages, roff } from '../../src/cli/man';
import { tcpcopyProgram } from '../../src/cli/tcpcopy';
import { interceptProgram } from '../../src/cli/intercept';

const ROOT = path.resolve(__dirname, '../../..');
const hasMan = spawnSync('man', ['--version'], { encoding: 'utf8' }).status === 0;
const hasGroff = spawnSync('groff', ['--version'], { encoding: 'utf8' }).status === 0;

const built = fs.existsSync(path.join(ROOT, 'man', 'tcpcopy.1'));

test('man/*.1 are what the commander definitions produce (the build writes them)', { skip: !built && 'man/ not written yet (npm run build or scripts/setup.sh writes it)' }, () => {
  for (const [file, text] of Object.entries(manPages())) {
    const written = fs.readFileSync(path.join(ROOT, 'man', file), 'utf8');
    assert.equal(written, text, `man/${file} differs from what scripts/man.js writes: run npm run build`);
  }
});

test('package.json installs both pages', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { man: string[]; files: string[] };
  assert.deepEqual(pkg.man, ['./man/tcpcopy.1', './man/intercept.1']);
  for (const f of ['bin/', 'dist/src/', 'man/', 'packaging/', 'binding.gyp', 'native/']) assert.ok(pkg.files.includes(f), `files has ${f}`);
});

for (const [name, make] of [['tcpcopy', tcpcopyProgram], ['intercept', interceptProgram]] as const) {
  test(`${name}(1) has the usual sections and every flag`, () => {
    const p = make();
    const page = manPage(name, p);
    for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'METRICS', 'EXAMPLES', 'SIGNALS', 'ENVIRONMENT', 'FILES', 'EXIT STATUS', 'SEE ALSO']) {
      assert.ok(page.includes(`\n.SH ${s}\n`), `section ${s}`);
    }
    for (const o of [...p.options, p.createHelp().visibleOptions(p).find((x) => x.long === '--help')!]) {
      assert.ok(page.includes(`.B ${roff(o.flags)}\n`), `${o.flags} in OPTIONS`);
    }
    // A page built from a program with one more flag differs: the drift check above can fail.
    const more = make().option('--zzz-extra', 'a flag added later');
    assert.notEqual(manPage(name, more), page);
  });

  test(`man -l renders ${name}.1 without warnings`, { skip: (!hasMan || !hasGroff) && 'man or groff not installed (Debian: man-db, groff-base)' }, (t) => {
    // The page as the build writes it, rendered from a scratch copy.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-man-'));
    const file = path.join(dir, `${name}.1`);
    fs.writeFileSync(file, manPages()[`${name}.1`]);
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const warn = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', file], { encoding: 'utf8' });
    assert.equal(warn.status, 0);
    assert.equal(warn.stderr, '', 'groff warnings');
    const r = spawnSync('man', ['-l', file], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '100', MAN_KEEP_FORMATTING: '', PAGER: 'cat' } });
    assert.equal(r.status, 0, r.stderr);
    const text = r.stdout.replace(/.\x08/g, '');
    assert.match(text, new RegExp(`^${name.toUpperCase()}\\(1\\)`));
    assert.ok(text.includes(`${name} - `), 'NAME line');
    assert.ok(text.includes('--metrics <[host:]port>'));
    assert.ok(text.includes('--log-format <format>'));
  });
}
