#!/usr/bin/env node
// Writes (or with --check, verifies) the ABI JSON files the Rust crates compile their bindings
// from (`sol!(..., "abi/<Name>.json")` in px-core), taken from a fresh `forge build` in out/.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const contracts = {
  StorageNFT: 'StorageNFT.sol/StorageNFT.json',
  PXToken: 'PXToken.sol/PXToken.json',
  ProviderRegistry: 'ProviderRegistry.sol/ProviderRegistry.json',
  StorageMarket: 'StorageMarket.sol/StorageMarket.json',
  Operator: 'Operator.sol/Operator.json',
  LinkToken: 'LinkToken.sol/LinkToken.json',
};
const check = process.argv.includes('--check');
let stale = [];
for (const [name, artifact] of Object.entries(contracts)) {
  const abi = JSON.parse(fs.readFileSync(path.join(root, 'out', artifact), 'utf8')).abi;
  const text = JSON.stringify(abi, null, 2) + '\n';
  const target = path.join(root, 'core', 'abi', `${name}.json`);
  const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : null;
  if (current === text) continue;
  if (check) {
    stale.push(path.relative(root, target));
  } else {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, text);
    console.error(`abi: wrote ${path.relative(root, target)}`);
  }
}
if (stale.length) {
  console.error(`abi: out of date with the contracts: ${stale.join(', ')}; run \`make abi\``);
  process.exit(1);
}
