// The shared vectors (contracts/test/vectors/sessions.json, written by the validator's forge
// test and checked natively by crates/valet-core/tests/vectors.rs) against the WebAssembly build.

import { describe, expect, it } from 'vitest';
import type { Hex, PackedUserOperation, UserOperation } from '../src/core/valet-core';
import { loadCore, readJson } from './load';

interface SessionVector {
  packed: Hex;
  id: Hex;
  grant_digest: Hex;
  claimed_time: number;
  indices: Hex;
  use_signature_prefix: Hex;
  key_digest: Hex;
}

interface Vectors {
  chain_id: number;
  validator: Hex;
  account: Hex;
  user_op_hash: Hex;
  user_operation: {
    sender: Hex;
    nonce: Hex;
    init_code: Hex;
    call_data: Hex;
    account_gas_limits: Hex;
    pre_verification_gas: number;
    gas_fees: Hex;
    paymaster_and_data: Hex;
    signature: Hex;
    hash: Hex;
  };
  sessions: Record<string, SessionVector>;
}

const ENTRY_POINT_V07: Hex = '0x0000000071727De22E5E9d8BAf0edAc6f37da032';

const core = loadCore();
const v = readJson<Vectors>('contracts/test/vectors/sessions.json', 'the shared vectors');

const bytes = (hex: Hex): number[] => Array.from(Buffer.from(hex.slice(2), 'hex'));
const lower = (hex: string) => hex.toLowerCase();
/// A 16-byte half of a word as a quantity.
const half = (word: Hex, high: boolean): Hex => `0x${BigInt(`0x${high ? word.slice(2, 34) : word.slice(34)}`).toString(16)}`;

describe('the shared vectors, through WebAssembly', () => {
  const names = Object.keys(v.sessions);

  it('cover every session', () => {
    expect(names.length).toBeGreaterThanOrEqual(4);
  });

  for (const name of names) {
    const s = v.sessions[name]!;
    it(`${name}: id, grant digest, signature prefixes and key digest`, () => {
      expect(core.sessionId(s.packed)).toBe(s.id);
      const grant = core.grant(s.packed, v.account, v.validator, v.chain_id);
      expect(grant.digest).toBe(s.grant_digest);
      expect(grant.typedData.primaryType).toBe('Grant');
      const indices = bytes(s.indices);
      expect(core.signaturePrefix(s.packed, s.claimed_time, indices)).toBe(s.use_signature_prefix);
      // Enable-in-first-use: mode 1, the same fields, then len(grant) ‖ grant.
      const ownerSignature: Hex = `0x${'ab'.repeat(65)}`;
      expect(core.signaturePrefix(s.packed, s.claimed_time, indices, ownerSignature)).toBe(
        `0x01${s.use_signature_prefix.slice(4)}0041${ownerSignature.slice(2)}`,
      );
      expect(core.keyDigest(v.user_op_hash, s.id, s.claimed_time, indices)).toBe(s.key_digest);
    });
  }

  it('the userOpHash of the packed operation, and of it unpacked then packed again', () => {
    const u = v.user_operation;
    const packed: PackedUserOperation = {
      sender: u.sender,
      nonce: u.nonce,
      initCode: u.init_code,
      callData: u.call_data,
      accountGasLimits: u.account_gas_limits,
      preVerificationGas: u.pre_verification_gas,
      gasFees: u.gas_fees,
      paymasterAndData: u.paymaster_and_data,
      signature: u.signature,
    };
    expect(core.packedUserOperationHash(packed, ENTRY_POINT_V07, v.chain_id)).toBe(u.hash);

    // The JSON-RPC form of the same operation: factory ‖ factoryData, gas halves, paymaster fields.
    const pmd = u.paymaster_and_data;
    const op: UserOperation = {
      sender: u.sender,
      nonce: u.nonce,
      factory: `0x${u.init_code.slice(2, 42)}`,
      factoryData: `0x${u.init_code.slice(42)}`,
      callData: u.call_data,
      verificationGasLimit: half(u.account_gas_limits, true),
      callGasLimit: half(u.account_gas_limits, false),
      preVerificationGas: u.pre_verification_gas,
      maxPriorityFeePerGas: half(u.gas_fees, true),
      maxFeePerGas: half(u.gas_fees, false),
      paymaster: `0x${pmd.slice(2, 42)}`,
      paymasterVerificationGasLimit: `0x${pmd.slice(42, 74)}`,
      paymasterPostOpGasLimit: `0x${pmd.slice(74, 106)}`,
      paymasterData: `0x${pmd.slice(106)}`,
      signature: u.signature,
    };
    const again = core.packUserOperation(op, ENTRY_POINT_V07, v.chain_id);
    expect(again.hash).toBe(u.hash);
    expect(lower(again.packed.initCode)).toBe(lower(u.init_code));
    expect(again.packed.accountGasLimits).toBe(u.account_gas_limits);
    expect(again.packed.gasFees).toBe(u.gas_fees);
    expect(lower(again.packed.paymasterAndData)).toBe(lower(pmd));
    expect(BigInt(again.packed.nonce)).toBe(BigInt(u.nonce));
  });
});
