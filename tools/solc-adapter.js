#!/usr/bin/env node
// A solc-compatible command line over solc-js, so forge can compile offline:
// `forge build --use tools/solc --offline`. forge calls it with `--version` and with
// `--standard-json --base-path B --include-path I --allow-paths …`, input on stdin.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const args = process.argv.slice(2);
if (args.includes('--version')) {
  const v = solc.version().replace(/\.Emscripten\.clang$/, '');
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${v}.Linux.g++\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write(`solc-adapter: only --version and --standard-json are supported, got: ${args.join(' ')}\n`);
  process.exit(2);
}

const roots = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--base-path' || args[i] === '--include-path') roots.push(args[++i]);
}
roots.push(process.cwd());

function findImports(p) {
  const candidates = path.isAbsolute(p) ? [p] : roots.map((r) => path.resolve(r, p));
  for (const c of candidates) {
    try {
      return { contents: fs.readFileSync(c, 'utf8') };
    } catch (_) { /* try the next root */ }
  }
  return { error: `solc-adapter: file not found: ${p} (searched ${roots.join(', ')})` };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
