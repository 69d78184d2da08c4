#!/usr/bin/env node
// Prints the gas table from a gas.json written by contracts/test/GasTable.t.sol.
// With --check FILE: also fails (exit 1) if FILE (the committed gas.json) differs from it.
'use strict';
const fs = require('fs');

const args = process.argv.slice(2);
const checkAt = args.indexOf('--check');
const committed = checkAt >= 0 ? args[checkAt + 1] : null;
const measured = args.find((a, i) => !a.startsWith('--') && (checkAt < 0 || i !== checkAt + 1)) || 'gas.json';
const g = JSON.parse(fs.readFileSync(measured, 'utf8'));

const rows = [
  ['mint (2 rules, use count, fee budget)', 'owner_mint', 'session_mint', 'session_mint_overhead', 12000],
  ['enable in first use + mint', 'session_mint', 'session_enable_and_mint', 'enable_overhead', 60000],
  ['ERC-20 transfer (limit, fee budget)', 'owner_erc20_transfer', 'session_erc20_transfer', null, null],
  ['ERC-20 transfer (limit, sponsored)', 'owner_sponsored_erc20_transfer', 'session_sponsored_erc20_transfer', null, null],
];
const rows7702 = [
  ['mint (2 rules, use count, fee budget)', 'eip7702_owner_mint', 'eip7702_session_mint', 'eip7702_session_mint_overhead', 12000],
  ['enable in first use + mint', 'eip7702_session_mint', 'eip7702_session_enable_and_mint', 'eip7702_enable_overhead', 60000],
];
const n = (x) => (x === undefined ? '-' : Number(x).toLocaleString('en-US'));
const pad = (s, w) => String(s).padStart(w);
const table = (tableRows) => {
  console.log(`${'operation'.padEnd(38)}${pad('baseline', 20)}${pad('session', 20)}${pad('overhead', 18)}${pad('target', 18)}`);
  for (const [label, base, sess, over, target] of tableRows) {
    const overhead = over ? g[over] : g[sess] - g[base];
    const overheadTx = over ? g[`${over}_tx`] : g[`${sess}_tx`] - g[`${base}_tx`];
    const verdict = target && overhead !== undefined ? `<= ${n(target)} ${overhead <= target ? 'met' : 'MISSED'}` : '';
    console.log(
      `${label.padEnd(38)}${pad(`${n(g[base])} (${n(g[`${base}_tx`])})`, 20)}` +
      `${pad(`${n(g[sess])} (${n(g[`${sess}_tx`])})`, 20)}` +
      `${pad(`${n(overhead)} (${n(overheadTx)})`, 18)}${pad(verdict, 18)}`);
  }
};
console.log('One UserOperation per handleOps, same account, nonce lanes used once.');
console.log('Execution gas of handleOps; the whole transaction (21,000 + calldata + execution) in brackets.\n');
table(rows);
console.log('\nEIP-7702 account (EntryPoint v0.8): an EOA delegated to ValetAccount7702, same mint, same session');
table(rows7702);
console.log(`\nrevoke-all (an owner operation): ${n(g.owner_revoke_all)}; after 20 more sessions: ${n(g.owner_revoke_all_after_20_more_sessions)}`);
console.log(`signature bytes: owner ${g.owner_signature_bytes}, session use ${g.session_signature_bytes} (target <= 304), ` +
  `session enable ${g.session_enable_signature_bytes}; handleOps calldata bytes: owner ${g.owner_calldata_bytes}, ` +
  `session ${g.session_calldata_bytes}`);

if (committed) {
  const c = JSON.parse(fs.readFileSync(committed, 'utf8'));
  const keys = new Set([...Object.keys(c), ...Object.keys(g)]);
  const diff = [...keys].filter((k) => c[k] !== g[k]).map((k) => `${k}: committed ${c[k]}, measured ${g[k]}`);
  if (diff.length) {
    console.error(`\n${committed} is stale (run 'make gas' and commit it):\n  ${diff.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`\n${committed} is current.`);
}
