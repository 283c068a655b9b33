/**
 * --log-format: pino's JSON lines in files (the default), a readable line per record with
 * `pretty` (the default on a terminal).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLog } from '../../src/daemon/log';
import { prettyLine } from '../../src/daemon/log-pretty';

test('a pino record becomes one readable line', () => {
  const rec = JSON.stringify({ level: 40, time: '2026-12-01T09:20:06.452Z', name: 'tcpcopy', pid: 7, msg: 'control connection to intercept lost', intercept: '198.18.0.40:36524', conn: 1, up: 0 });
  assert.equal(prettyLine(rec, false), '09:20:06.452 WARN  tcpcopy: control connection to intercept lost intercept=198.18.0.40:36524 conn=1 up=0\n');
  const stats = JSON.stringify({ level: 30, time: '2026-12-01T09:20:36.000Z', name: 'intercept', pid: 7, msg: 'statistics', stats: { captured: 3, skipped: {} }, filter: 'tcp and src port 80' });
  assert.equal(prettyLine(stats, false), '09:20:36.000 INFO  intercept: statistics stats={"captured":3,"skipped":{}} filter="tcp and src port 80"\n');
  assert.equal(prettyLine(rec, true), '\x1b[2m09:20:06.452\x1b[0m \x1b[33mWARN \x1b[0m tcpcopy: control connection to intercept lost intercept=198.18.0.40:36524 conn=1 up=0\n');
  assert.equal(prettyLine('not json', false), 'not json\n');
});

test('createLog writes JSON by default and readable lines with format pretty', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-logfmt-'));
  try {
    for (const format of ['json', 'pretty'] as const) {
      const file = path.join(dir, `${format}.log`);
      const log = await createLog({ name: 'intercept', file, format });
      log.logger.info({ routes: 5 }, 'intercept running');
      log.logger.error({ err: 'boom' }, 'control server error');
      // The file destination opens and writes asynchronously: wait (bounded) for both lines.
      const end = Date.now() + 5000;
      while (Date.now() < end) {
        await new Promise((r) => setTimeout(r, 20));
        log.flush();
        if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').split('\n').length > 2) break;
      }
      const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(lines.length, 2, `${format}: ${lines.join(' | ')}`);
      if (format === 'json') {
        const r = JSON.parse(lines[0]) as Record<string, unknown>;
        assert.equal(r.msg, 'intercept running');
        assert.equal(r.routes, 5);
        assert.equal(r.level, 30);
      } else {
        assert.match(lines[0], /^\d\d:\d\d:\d\d\.\d{3} INFO  intercept: intercept running routes=5$/);
        assert.match(lines[1], /^\d\d:\d\d:\d\d\.\d{3} ERROR intercept: control server error err=boom$/);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
