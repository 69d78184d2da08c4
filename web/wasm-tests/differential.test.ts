// The differential replay: every evaluator case the native generator wrote
// (crates/valet-wasm/examples/cases.rs, into target/wasm/cases.json) judged again by the
// WebAssembly build, which must answer exactly as valet-core natively did: accepted with the
// same permission indices, window and counters, or refused with the same reason text (what the
// CLI prints) and the same refusal.

import { describe, expect, it } from 'vitest';
import type { Evaluation, Verdict } from '../src/core/valet-core';
import { loadCore, readJson } from './load';

interface Cases {
  seed: number;
  cases: { case: number; input: Evaluation; expected: Verdict }[];
}

const core = loadCore();
const run = readJson<Cases>('target/wasm/cases.json', 'run the generator (make test-wasm)');

describe('the evaluator in WebAssembly agrees with the native one', () => {
  it(`on every generated case (seed ${run.seed})`, () => {
    expect(run.cases.length).toBeGreaterThanOrEqual(1_000);
    let accepted = 0;
    const disagreements: string[] = [];
    const started = performance.now();
    for (const c of run.cases) {
      const got = core.evaluate(c.input);
      if (c.expected.accepted) accepted += 1;
      try {
        expect(got).toEqual(c.expected);
      } catch {
        disagreements.push(`case ${c.case}: wasm ${JSON.stringify(got)}, native ${JSON.stringify(c.expected)}`);
      }
    }
    const ms = performance.now() - started;
    const refused = run.cases.length - accepted;
    console.log(
      `${run.cases.length} cases (seed ${run.seed}): ${accepted} accepted, ${refused} refused; ` +
        `${disagreements.length} disagreements; ${ms.toFixed(0)} ms through WebAssembly`,
    );
    expect(disagreements.slice(0, 5)).toEqual([]);
    // Both answers must be well represented, or the replay proves little.
    expect(accepted / run.cases.length).toBeGreaterThanOrEqual(0.1);
    expect(refused / run.cases.length).toBeGreaterThanOrEqual(0.1);
  });

  it('refusals name the values, and inputs it cannot read throw the reason', () => {
    const c = run.cases.find((x) => !x.expected.accepted)!;
    expect(() => core.evaluate({ ...c.input, session: '0x00' })).toThrow(/session: malformed session at byte/);
    expect(() => core.evaluate({ ...c.input, execution: { calls: [] } })).toThrow(/either callData or execution/);
  });
});
