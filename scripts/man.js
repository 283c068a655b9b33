#!/usr/bin/env node
// Writes man/tcpcopy.1 and man/intercept.1 from the built commander definitions
// (dist/src/cli/man.js), so the pages cannot drift from the flags: man/ is build output (not
// checked in), written by `npm run build`, scripts/setup.sh and `npm pack` (prepack).
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
