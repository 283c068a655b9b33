#!/usr/bin/env node
// Writes man/tcpcopy.1 and man/intercept.1 from the built commander definitions
// (dist/src/cli/man.js). Run by `npm pack` (prepack) and by hand after changing a flag;
// test/unit/man.test.ts fails when the checked-in pages differ from the programs.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const { manPages } = require(path.join(root, 'dist/src/cli/man.js'));
const dir = path.join(root, 'man');
fs.mkdirSync(dir, { recursive: true });
for (const [file, text] of Object.entries(manPages())) {
  fs.writeFileSync(path.join(dir, file), text);
  console.log(`man: wrote man/${file}`);
}
