/**
 * Keeps docs/usage.md honest: every flag that the two commander programs define must have a
 * row in the flag tables of that program's section, with its short and long form (and its
 * default, when commander has one). A new flag without documentation fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command, Option } from 'commander';

import { tcpcopyProgram } from '../../src/cli/tcpcopy';
import { interceptProgram } from '../../src/cli/intercept';

// Compiled to dist/test/unit: the repository root is three levels up.
const ROOT = path.resolve(__dirname, '../../..');
const USAGE = path.resolve(__dirname, '../../../docs/usage.md');
const README = path.join(ROOT, 'README.md');

/**
 * The text of the level-2 section whose heading is exactly `## <name>`, up to the next
 * level-2 heading (sub-headings stay inside).
 */
function section(doc: string, name: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.trim() === `## ${name}`);
  assert.ok(start >= 0, `docs/usage.md has a '## ${name}' section`);
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    if (/^## /.test(lines[i])) { end = i; break; }
  }
  return lines.slice(start, end).join('\n');
}

/** Table rows of a section: [first cell, whole row]. */
function rows(text: string): { first: string; row: string }[] {
  const out: { first: string; row: string }[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('|') || /^\|\s*-/.test(t)) continue;
    const cells = t.split('|');
    out.push({ first: cells[1] ?? '', row: t });
  }
  return out;
}

/** True when `flag` stands alone in `text` (not part of a longer flag such as -s in --stats). */
function hasFlag(text: string, flag: string): boolean {
  const esc = flag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^\\w-])${esc}(?![\\w-])`).test(text);
}

function flagsOf(p: Command): Option[] {
  return p.options as Option[];
}

const doc = fs.readFileSync(USAGE, 'utf8');

for (const [name, make] of [['tcpcopy', tcpcopyProgram], ['intercept', interceptProgram]] as const) {
  test(`docs/usage.md documents every ${name} flag in the ${name} section`, () => {
    const text = section(doc, name);
    const table = rows(text);
    const options = flagsOf(make());
    assert.ok(options.length > 10, `${name} defines its flags (${options.length})`);
    const missing: string[] = [];
    for (const o of options) {
      const forms = [o.short, o.long].filter((f): f is string => !!f);
      // A row whose first cell names this option: its long form (unique), and its short form too.
      const row = table.find((r) => forms.every((f) => hasFlag(r.first, f)));
      if (!row) {
        missing.push(`${forms.join(', ')} (no table row naming ${forms.join(' and ')})`);
        continue;
      }
      const d = o.defaultValue;
      if ((typeof d === 'number' || typeof d === 'string') && !o.negate) {
        const cells = row.row.split('|').slice(2);
        if (!cells.some((c) => new RegExp(`(^|[^\\w.])${String(d).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w])`).test(c))) {
          missing.push(`${forms.join(', ')}: the row does not state the default ${JSON.stringify(d)}`);
        }
      }
    }
    // Help is handled by commander outside `options`; it is a flag users type all the same.
    if (!table.some((r) => hasFlag(r.first, '-h') && hasFlag(r.first, '--help'))) missing.push('-h, --help');
    assert.deepEqual(missing, [], `undocumented in the ${name} section of docs/usage.md`);
  });
}

test('the section check really fails for an undocumented flag', () => {
  const fake = '## tcpcopy\n\n| Flag | Default | Meaning |\n|---|---|---|\n| `-x, --transfer <rules>` | — | rules |\n\n## intercept\n\n| `-Z, --zzz` | — | only here |\n';
  const text = section(fake, 'tcpcopy');
  const table = rows(text);
  assert.ok(table.some((r) => hasFlag(r.first, '-x') && hasFlag(r.first, '--transfer')));
  assert.ok(!table.some((r) => hasFlag(r.first, '-Z')), 'a flag of the other section does not count');
  assert.ok(!hasFlag('--stats-interval', '-s'), '-s inside --stats-interval is not -s');
  assert.ok(!hasFlag('--no-combined', '--no-combine'));
  assert.ok(hasFlag('`-s, --intercept <addrs>`', '-s'));
});

/** Splits a shell command line into words (single and double quotes; no expansion). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let have = false;
  let quote: string | null = null;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      have = true;
    } else if (/\s/.test(ch)) {
      if (have) words.push(cur);
      cur = '';
      have = false;
    } else {
      cur += ch;
      have = true;
    }
  }
  assert.equal(quote, null, `unbalanced quote in ${line}`);
  if (have) words.push(cur);
  return words;
}

/** Command lines in the fenced code blocks of a Markdown text, split at `&&`. */
function codeCommands(md: string): string[][] {
  const out: string[][] = [];
  let inBlock = false;
  for (const line of md.split('\n')) {
    if (/^\s*```/.test(line)) { inBlock = !inBlock; continue; }
    if (!inBlock || !line.trim() || line.trim().startsWith('#')) continue;
    for (const part of line.split('&&')) {
      const w = shellWords(part.trim());
      if (w[0] === 'sudo') w.shift();
      if (w.length) out.push(w);
    }
  }
  return out;
}

/**
 * What is wrong with the tcpcopy/intercept/npm command lines of a Markdown text: a daemon
 * command the program's own parser refuses (unknown flag, value out of range), or an `npm run
 * X` / `npm test` for which package.json has no script.
 */
function commandProblems(md: string, scripts: Record<string, string>): { problems: string[]; checked: number } {
  const problems: string[] = [];
  let checked = 0;
  for (const w of codeCommands(md)) {
    const name = path.basename(w[0]);
    if (name === 'tcpcopy' || name === 'intercept') {
      checked++;
      const p = name === 'tcpcopy' ? tcpcopyProgram() : interceptProgram();
      p.exitOverride();
      p.configureOutput({ writeOut: () => {}, writeErr: () => {} });
      try {
        const { operands, unknown } = p.parseOptions(w.slice(1));
        if (unknown.length) problems.push(`${w.join(' ')}: unknown ${unknown.join(' ')}`);
        if (operands.length) problems.push(`${w.join(' ')}: stray words ${operands.join(' ')}`);
      } catch (err) {
        problems.push(`${w.join(' ')}: ${(err as Error).message}`);
      }
    } else if (name === 'npm') {
      const script = w[1] === 'run' ? w[2] : w[1] === 'test' ? 'test' : undefined;
      if (w[1] === 'run' || w[1] === 'test') {
        checked++;
        if (!script || !(script in scripts)) problems.push(`${w.join(' ')}: package.json has no "${script}" script`);
      }
    }
  }
  return { problems, checked };
}

test('README.md: every tcpcopy, intercept and npm command in its code blocks is accepted as written', () => {
  const readme = fs.readFileSync(README, 'utf8');
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const { problems, checked } = commandProblems(readme, pkg.scripts);
  assert.ok(checked >= 4, `the README's code blocks hold the quick start's commands (${checked} found)`);
  assert.deepEqual(problems, []);
  // The demo and the test suite are where a new user starts.
  const words = codeCommands(readme).map((w) => w.join(' '));
  assert.ok(words.includes('npm run demo') && words.includes('npm test'), `README commands: ${words.join(' | ')}`);
});

test('the README command check really fails for a wrong flag, a bad value and a missing script', () => {
  const md = "```\ntcpcopy -x 80-10.0.0.2:8080 -s 10.0.0.3 --copys 2\nintercept -F 'tcp and src port 80' -p 0\n" +
    "sudo npm run dmeo\ntcpcopy -x 80-10.0.0.2:8080 -s 10.0.0.3 -n 2\n```\n";
  const { problems, checked } = commandProblems(md, { demo: 'x', test: 'y' });
  assert.equal(checked, 4);
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.match(problems[0], /--copys/);
  assert.match(problems[1], /-p/);
  assert.match(problems[2], /"dmeo"/);
});
