#!/usr/bin/env node
// Writes the ABI and bytecode of every contract the Rust side deploys or calls into one folder
// (checked in, so `cargo build` never needs node or forge). With --check, changes nothing and
// exits 1 if any file there differs from what the current build would write.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'target/forge/out');
const CONTRACTS = [
  ['SessionKeyValidator.sol', 'SessionKeyValidator'],
  ['ValetAccount.sol', 'ValetAccount'],
  ['ValetAccountFactory.sol', 'ValetAccountFactory'],
  ['ValetNFT.sol', 'ValetNFT'],
  ['ValetToken.sol', 'ValetToken'],
  ['ValetDAO.sol', 'ValetDAO'],
  ['ValetPaymaster.sol', 'ValetPaymaster'],
  ['ValetAccount7702.sol', 'ValetAccount7702'],
];

const args = process.argv.slice(2);
const check = args.includes('--check');
const dest = path.resolve(args.find((a) => !a.startsWith('--')) || 'contracts/artifacts');

function render(abi, bytecode, deployedBytecode) {
  return JSON.stringify({ abi, bytecode, deployedBytecode }, null, 2) + '\n';
}

const files = {};
// Where each contract's runtime code holds immutables (set by its constructor, so they may differ
// from chain to chain, e.g. an EIP-712 domain's cached chain id): `valet deploy` compares the code
// at a canonical address with the artifact's everywhere else.
const immutables = {};
for (const [file, name] of CONTRACTS) {
  const p = path.join(out, file, `${name}.json`);
  if (!fs.existsSync(p)) {
    console.error(`export-artifacts: ${p} is missing; run forge build first`);
    process.exit(2);
  }
  const a = JSON.parse(fs.readFileSync(p, 'utf8'));
  files[`${name}.json`] = render(a.abi, a.bytecode.object, a.deployedBytecode.object);
  immutables[name] = Object.values(a.deployedBytecode.immutableReferences || {})
    .flat()
    .map((r) => [r.start, r.length])
    .sort((x, y) => x[0] - y[0]);
}
files['immutables.json'] =
  '{\n' + Object.entries(immutables).map(([n, r]) => `  "${n}": ${JSON.stringify(r)}`).join(',\n') + '\n}\n';
// EntryPoint v0.7 exactly as published (the devnet CREATE2-deploys `bytecode`).
const ep = JSON.parse(fs.readFileSync(
  path.join(root, 'tools/node_modules/@account-abstraction/contracts/artifacts/EntryPoint.json'), 'utf8'));
files['EntryPoint.json'] = render(ep.abi, ep.bytecode, ep.deployedBytecode);
// EntryPoint v0.8 likewise (the EIP-7702 account's EntryPoint).
const ep08 = JSON.parse(fs.readFileSync(
  path.join(root, 'tools/node_modules/@account-abstraction/contracts-v08/artifacts/EntryPoint.json'), 'utf8'));
files['EntryPointV08.json'] = render(ep08.abi, ep08.bytecode, ep08.deployedBytecode);

let stale = [];
for (const [name, text] of Object.entries(files)) {
  const p = path.join(dest, name);
  const current = fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : null;
  if (current === text) continue;
  if (check) stale.push(name);
  else {
    fs.mkdirSync(dest, { recursive: true });
    fs.writeFileSync(p, text);
    console.log(`wrote ${path.relative(root, p)}`);
  }
}
if (check) {
  const extra = fs.existsSync(dest) ? fs.readdirSync(dest).filter((f) => f.endsWith('.json') && !(f in files)) : [];
  stale = stale.concat(extra.map((f) => `${f} (no longer exported)`));
  if (stale.length) {
    console.error(`contracts/artifacts is stale: ${stale.join(', ')}. Run 'make artifacts' and commit the result.`);
    process.exit(1);
  }
  console.log(`contracts/artifacts: ${Object.keys(files).length} artifacts current`);
}
