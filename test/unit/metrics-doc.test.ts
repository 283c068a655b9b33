/**
 * Keeps docs/usage.md honest about metrics: every metric either daemon exposes has a row in
 * that daemon's table of the Metrics section (as usage-doc.test.ts does for flags).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { metricNamesFor } from '../../src/daemon/metric-defs';

const USAGE = path.resolve(__dirname, '../../../docs/usage.md');

/** The first cells of the table under `### <heading>`, up to the next heading. */
function firstCells(doc: string, heading: string): string[] {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.trim() === `### ${heading}`);
  assert.ok(start >= 0, `docs/usage.md has a '### ${heading}' section`);
  const out: string[] = [];
  for (let i = start + 1; i < lines.length && !/^#{1,3} /.test(lines[i]); i++) {
    const t = lines[i].trim();
    if (t.startsWith('|') && !/^\|\s*-/.test(t)) out.push(t.split('|')[1].trim().replace(/`/g, ''));
  }
  return out;
}

function missing(doc: string, daemon: string): string[] {
  const cells = new Set(firstCells(doc, `${daemon} metrics`));
  return metricNamesFor(daemon).filter((n) => !cells.has(n));
}

const doc = fs.readFileSync(USAGE, 'utf8');

for (const daemon of ['tcpcopy', 'intercept']) {
  test(`docs/usage.md documents every ${daemon} metric`, () => {
    assert.ok(metricNamesFor(daemon).length > 10);
    assert.deepEqual(missing(doc, daemon), [], `metrics missing from '### ${daemon} metrics' in docs/usage.md`);
  });
}

test('the check really fails for an undocumented metric', () => {
  const fake = '### tcpcopy metrics\n\n| Metric | Type |\n|---|---|\n| `tcpcopy_requests_sent_total` | counter |\n\n### intercept metrics\n\n| `tcpcopy_sessions_active` | gauge |\n';
  const m = missing(fake, 'tcpcopy');
  assert.ok(!m.includes('tcpcopy_requests_sent_total'));
  assert.ok(m.includes('tcpcopy_sessions_active'), 'a row of the other daemon\'s table does not count');
});
