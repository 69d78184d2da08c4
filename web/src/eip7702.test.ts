import { describe, expect, it } from 'vitest';
import { type Address, type Hex, keccak256, concat, toRlp, numberToHex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import {
  advertises7702,
  authorizationRequest,
  authorizationSignature,
  choiceKey,
  loadChoice,
  parseDelegation,
  saveChoice,
  signedBy,
  type ChoiceStorage,
  type Delegation,
} from './eip7702';
import { signsAuthorizations, type Eip1193Provider } from './wallet';

const OWNER = '0x1111111111111111111111111111111111111111' as Address;
const IMPL = '0x00000000000000000000000000000000000077a2' as Address;

function memoryStorage(): ChoiceStorage & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, v),
    removeItem: (k) => void map.delete(k),
  };
}

/// keccak256(0x05 ‖ rlp([chain_id, address, nonce])), written out here rather than taken from viem.
function signingHash(chainId: number, address: Address, nonce: number): Hex {
  const q = (n: number): Hex => (n === 0 ? '0x' : numberToHex(n));
  return keccak256(concat(['0x05', toRlp([q(chainId), address, q(nonce)])]));
}

function delegation(chainId = 31337, nonce = 3): Record<string, unknown> {
  return { chain_id: chainId, address: IMPL, nonce, signing_hash: signingHash(chainId, IMPL, nonce) };
}

describe('the account choice, per owner', () => {
  it('defaults to a new smart account', () => {
    expect(loadChoice(memoryStorage(), OWNER, true)).toBe('smart');
    expect(loadChoice(undefined, OWNER, true)).toBe('smart');
  });

  it('remembers "use my address" per owner, whatever the case of the address', () => {
    const storage = memoryStorage();
    saveChoice(storage, OWNER, 'eip7702');
    expect(loadChoice(storage, OWNER.toUpperCase().replace('0X', '0x') as Address, true)).toBe('eip7702');
    expect(loadChoice(storage, '0x2222222222222222222222222222222222222222', true)).toBe('smart');
    expect(storage.map.get(choiceKey(OWNER))).toBe('eip7702');
  });

  it('forgets it when the owner goes back to a smart account', () => {
    const storage = memoryStorage();
    saveChoice(storage, OWNER, 'eip7702');
    saveChoice(storage, OWNER, 'smart');
    expect(storage.map.size).toBe(0);
    expect(loadChoice(storage, OWNER, true)).toBe('smart');
  });

  it('is a smart account for a wallet that cannot sign an authorization, whatever was remembered', () => {
    const storage = memoryStorage();
    saveChoice(storage, OWNER, 'eip7702');
    expect(loadChoice(storage, OWNER, false)).toBe('smart');
  });

  it('ignores what it cannot read, and storage that throws', () => {
    const storage = memoryStorage();
    storage.map.set(choiceKey(OWNER), 'something else');
    expect(loadChoice(storage, OWNER, true)).toBe('smart');
    const broken: ChoiceStorage = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('denied');
      },
      removeItem: () => {
        throw new Error('denied');
      },
    };
    expect(loadChoice(broken, OWNER, true)).toBe('smart');
    expect(() => saveChoice(broken, OWNER, 'eip7702')).not.toThrow();
  });
});

describe("the wallet's EIP-7702 capability (wallet_getCapabilities)", () => {
  it('is read under the chain id, in any hex spelling, or under 0x0 for every chain', () => {
    expect(advertises7702({ '0x7a69': { signAuthorization: { supported: true } } }, 31337)).toBe(true);
    expect(advertises7702({ '0x07A69': { eip7702: { supported: true } } }, 31337)).toBe(true);
    expect(advertises7702({ '0x0': { signAuthorization: { supported: true } } }, 31337)).toBe(true);
  });

  it('is no on another chain, without the capability, or without supported: true', () => {
    expect(advertises7702({ '0x1': { signAuthorization: { supported: true } } }, 31337)).toBe(false);
    expect(advertises7702({ '0x7a69': { atomic: { status: 'supported' } } }, 31337)).toBe(false);
    expect(advertises7702({ '0x7a69': { signAuthorization: { supported: 'yes' } } }, 31337)).toBe(false);
    expect(advertises7702({ '0x7a69': { signAuthorization: {} } }, 31337)).toBe(false);
    expect(advertises7702({ chain: { signAuthorization: { supported: true } } }, 31337)).toBe(false);
    expect(advertises7702(null, 31337)).toBe(false);
    expect(advertises7702('yes', 31337)).toBe(false);
  });

  it('asks the wallet without a prompt, and a wallet that does not know the method is no', async () => {
    const asked: { method: string; params?: unknown[] }[] = [];
    const capable: Eip1193Provider = {
      request: async (args) => {
        asked.push(args);
        return { '0x7a69': { signAuthorization: { supported: true } } };
      },
    };
    expect(await signsAuthorizations(capable, OWNER, 31337)).toBe(true);
    expect(asked).toEqual([{ method: 'wallet_getCapabilities', params: [OWNER, ['0x7a69']] }]);
    const old: Eip1193Provider = {
      request: async () => {
        throw Object.assign(new Error('The method does not exist'), { code: -32601 });
      },
    };
    expect(await signsAuthorizations(old, OWNER, 31337)).toBe(false);
  });
});

describe("the service's delegation", () => {
  it('is taken when its signing hash is the hash of its fields, on this chain', () => {
    const d = parseDelegation(delegation(), 31337);
    expect(d).toEqual({ chain_id: 31337, address: IMPL, nonce: 3, signing_hash: signingHash(31337, IMPL, 3) });
    // Numbers as strings (decimal or hex) too.
    const strings = { ...delegation(31337, 0), chain_id: '0x7a69', nonce: '0' };
    expect(parseDelegation(strings, 31337).nonce).toBe(0);
  });

  it('is refused when it is for another chain, for every chain, or its hash does not match', () => {
    expect(() => parseDelegation(delegation(1), 31337)).toThrow(/chain 1, not this app's chain 31337/);
    expect(() => parseDelegation(delegation(0), 31337)).toThrow(/chain 0/);
    const forged = { ...delegation(), nonce: 4 };
    expect(() => parseDelegation(forged, 31337)).toThrow(/not the hash of its fields/);
    const elsewhere = { ...delegation(), address: '0x00000000000000000000000000000000000000bb' };
    expect(() => parseDelegation(elsewhere, 31337)).toThrow(/not the hash of its fields/);
    expect(() => parseDelegation({ ...delegation(), address: 'nope' }, 31337)).toThrow(/no contract address/);
    expect(() => parseDelegation({ ...delegation(), signing_hash: '0x12' }, 31337)).toThrow(/no signing hash/);
    expect(() => parseDelegation(null, 31337)).toThrow(/missing/);
  });

  it('becomes the params of wallet_signAuthorization, numbers in hex', () => {
    expect(authorizationRequest(parseDelegation(delegation(31337, 10), 31337))).toEqual([
      { chainId: '0x7a69', address: IMPL, nonce: '0xa' },
    ]);
  });
});

describe("the wallet's authorization signature", () => {
  const asked: Delegation = parseDelegation(delegation(), 31337);

  it('is the signature of the signing hash by the owner, from viem’s signAuthorization', async () => {
    const key = generatePrivateKey();
    const account = privateKeyToAccount(key);
    const signed = await account.signAuthorization({ chainId: 31337, address: IMPL, nonce: 3 });
    // As a wallet answers it over JSON-RPC: hex quantities.
    const answer = { chainId: '0x7a69', address: IMPL, nonce: '0x3', r: signed.r, s: signed.s, yParity: `0x${signed.yParity}` };
    const signature = authorizationSignature(answer, asked);
    expect(signature).toMatch(/^0x[0-9a-f]{128}(1b|1c)$/);
    expect(await signedBy(asked, signature, account.address)).toBe(true);
    expect(await signedBy(asked, signature, OWNER)).toBe(false);
    // The same as a 65-byte hex answer, with v as 27/28 or 0/1.
    expect(authorizationSignature(signature, asked)).toBe(signature);
    const zeroOne = `${signature.slice(0, 130)}0${signed.yParity}` as Hex;
    expect(authorizationSignature(zeroOne, asked)).toBe(signature);
    // With v instead of yParity.
    expect(authorizationSignature({ r: signed.r, s: signed.s, v: 27 + signed.yParity! }, asked)).toBe(signature);
  });

  it('is refused when it is for something else than what was asked, or not a signature', () => {
    const base = { r: `0x${'11'.repeat(32)}`, s: `0x${'22'.repeat(32)}`, yParity: 0 };
    expect(() => authorizationSignature({ ...base, chainId: 1 }, asked)).toThrow(/another chain/);
    expect(() => authorizationSignature({ ...base, nonce: '0x4' }, asked)).toThrow(/another nonce/);
    expect(() => authorizationSignature({ ...base, address: OWNER }, asked)).toThrow(/another contract/);
    expect(() => authorizationSignature({ ...base, yParity: 2 }, asked)).toThrow(/y parity/);
    expect(() => authorizationSignature({ ...base, r: 'x' }, asked)).toThrow(/no r/);
    expect(() => authorizationSignature('0x1234', asked)).toThrow(/65-byte/);
    expect(() => authorizationSignature(`0x${'11'.repeat(64)}05`, asked)).toThrow(/v is 5/);
    expect(() => authorizationSignature(undefined, asked)).toThrow(/answered nothing/);
  });

  it('does not recover to the owner from a garbage signature', async () => {
    expect(await signedBy(asked, `0x${'00'.repeat(65)}`, OWNER)).toBe(false);
  });
});
