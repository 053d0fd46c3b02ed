#!/usr/bin/env node
// A solc executable for forge, backed by solcjs (WebAssembly from npm).
// forge makes two calls: `solc --version` and `solc --standard-json` (input on stdin,
// all sources inlined, so no import callback is needed).
'use strict';
const path = require('path');

const pkg = process.env.PX_SOLCJS_PACKAGE;
if (!pkg) {
  process.stderr.write('PX_SOLCJS_PACKAGE is not set: run `make bootstrap` to write the wrappers\n');
  process.exit(2);
}
const solc = require(path.resolve(pkg));
const args = process.argv.slice(2);

if (args.includes('--version')) {
  // forge expects the native binary's line, e.g. "Version: 0.8.30+commit.73712a01.Linux.g++".
  const m = /^(\d+\.\d+\.\d+)\+commit\.([0-9a-f]+)/.exec(solc.version());
  if (!m) {
    process.stderr.write(`unrecognised solcjs version ${solc.version()}\n`);
    process.exit(1);
  }
  process.stdout.write(`solc, the solidity compiler commandline interface\n`);
  process.stdout.write(`Version: ${m[1]}+commit.${m[2]}.Linux.g++\n`);
  process.exit(0);
}

if (!args.includes('--standard-json')) {
  process.stderr.write(`this solcjs wrapper supports only --version and --standard-json\n`);
  process.exit(2);
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  process.stdout.write(solc.compile(Buffer.concat(chunks).toString('utf8')));
});
