// The demo mint spec through WebAssembly: spec → session → summary → grant typed data → digest,
// and its evaluation, all as valet-core natively gives them (written by the generator into
// target/wasm/cases.json); the execute codec's round trip; errors thrown with the core's words.

import { describe, expect, it } from 'vitest';
import type { Evaluation, Hex, SpecContext, TypedData, Verdict } from '../src/core/valet-core';
import { loadCore, readJson } from './load';

interface Demo {
  spec: string;
  context: SpecContext;
  account: Hex;
  validator: Hex;
  chainId: number;
  packed: Hex;
  id: Hex;
  summary: string[];
  warnings: string[];
  typedData: TypedData;
  digest: Hex;
  evaluations: { input: Evaluation; expected: Verdict }[];
}

const core = loadCore();
const demo = readJson<{ demo: Demo }>('target/wasm/cases.json', 'run the generator (make test-wasm)').demo;

describe('the demo mint spec, through WebAssembly', () => {
  it('is the native spec', () => {
    expect(core.demoSpecs().mint).toBe(demo.spec);
  });

  it('resolves to the native session, summary and warnings', () => {
    const resolved = core.parseSpec(demo.spec, demo.context);
    expect(resolved.packed).toBe(demo.packed);
    expect(resolved.id).toBe(demo.id);
    expect(resolved.summary).toEqual(demo.summary);
    expect(resolved.warnings).toEqual(demo.warnings);
    expect(resolved.functions).toEqual(['mint(address to, uint256 quantity)']);
    expect(core.sessionId(resolved.packed)).toBe(demo.id);
  });

  it('gives the native grant typed data and digest', () => {
    const grant = core.grant(demo.packed, demo.account, demo.validator, demo.chainId);
    expect(grant.typedData).toEqual(demo.typedData);
    expect(grant.digest).toBe(demo.digest);
  });

  it('mints, then refuses the eleventh mint in the words the CLI prints', () => {
    const [first, eleventh] = demo.evaluations;
    expect(core.evaluate(first!.input)).toEqual(first!.expected);
    expect(first!.expected).toMatchObject({ accepted: true, indices: [0] });
    expect(core.evaluate(eleventh!.input)).toEqual(eleventh!.expected);
    expect(eleventh!.expected).toMatchObject({ accepted: false, reason: expect.stringMatching(/^mint on ValetNFT .* all 10 times/) });
  });

  it('reads the same spec as JSON', () => {
    const json = JSON.stringify({
      valid_for: '1h',
      permission: [
        {
          target: 'ValetNFT',
          function: 'mint(address to, uint256 quantity)',
          rules: [{ arg: 'to', eq: '$account' }, { arg: 'quantity', lte: 5 }],
          max_uses: 10,
        },
      ],
      fees: { budget: '0.01 ether' },
    });
    expect(core.parseSpec(json, demo.context, 'json').packed).toBe(demo.packed);
  });

  it('throws the core’s message for what it refuses', () => {
    expect(() => core.parseSpec('valid_for = "1h"\n[[permission]]\ntarget = "Nowhere"\n', demo.context)).toThrow(/Nowhere/);
    expect(() => core.parseSpec('{}', demo.context, 'yaml' as 'json')).toThrow(/`yaml` is neither/);
    expect(() => core.sessionId('0x00')).toThrow(/malformed session at byte/);
    expect(() => core.grant(demo.packed, demo.account, demo.validator, 1.5)).toThrow(/chain id = 1.5/);
    expect(() => core.encodeExecution({ calls: [] })).toThrow(/one call, not 0/);
  });
});

describe('the execute codec, through WebAssembly', () => {
  it('decodes what it encodes, single and batch', () => {
    const a: Hex = '0x1111111111111111111111111111111111111111';
    const b: Hex = '0x2222222222222222222222222222222222222222';
    const single = core.encodeExecution({ calls: [{ target: a, value: 5, data: '0xdeadbeef' }] });
    expect(single.startsWith('0xe9ae5c53')).toBe(true);
    expect(core.decodeExecution(single)).toEqual({ batch: false, calls: [{ target: a, value: '0x5', data: '0xdeadbeef' }] });
    const batch = core.encodeExecution({ calls: [{ target: a }, { target: b, value: '0x10' }], batch: true });
    expect(core.decodeExecution(batch)).toEqual({
      batch: true,
      calls: [
        { target: a, value: '0x0', data: '0x' },
        { target: b, value: '0x10', data: '0x' },
      ],
    });
    expect(() => core.decodeExecution('0x12345678')).toThrow(/unsupported account function 0x12345678/);
  });
});
