#!/usr/bin/env node
// Runs the compiled test suite with Node's built-in runner: unit tests first, then the
// end-to-end tests in network namespaces (root only; they run one file at a time).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
function collect(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...collect(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}
const only = process.argv.slice(2);
let files = [...collect(path.join(root, 'dist/test/unit')), ...collect(path.join(root, 'dist/test/e2e'))];
if (only.length) files = files.filter((f) => only.some((o) => f.includes(o)));
if (!files.length) { console.error('run-tests: no test files found (did the build run?)'); process.exit(1); }
// One file at a time: the end-to-end files each build their own namespaces and load the 2 cores.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit', cwd: root,
});
process.exit(r.status === null ? 1 : r.status);
