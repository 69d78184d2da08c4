// "Use my address" (an EIP-7702 account: the owner's EOA delegating to Valet's ValetAccount7702)
// versus "a new smart account": whether the wallet can sign an EIP-7702 authorization, the
// delegation the service asks the owner to sign and the signature the wallet gives back, and the
// choice the page remembers per owner. Pure; unit-tested in eip7702.test.ts. The wallet side of
// the protocol (the JSON-RPC methods) is described in wallet.ts.

import { type Address, type Hex, isAddress, isAddressEqual, isHex, recoverAddress } from 'viem';
import { hashAuthorization } from 'viem/utils';

// ------------------------------------------------------------------ the choice

/// Which account the owner's sessions act for: a ValetAccount clone at its own (counterfactual)
/// address, or the owner's own EOA, delegating to ValetAccount7702 (the service's `account_kind`).
export type AccountKind = 'smart' | 'eip7702';

/// The part of `Storage` the choice needs (localStorage in the page, a Map-backed fake in tests).
export interface ChoiceStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

const CHOICE_PREFIX = 'valet.accountKind.';

/// The localStorage key of `owner`'s choice (addresses compared case-insensitively).
export function choiceKey(owner: Address): string {
  return `${CHOICE_PREFIX}${owner.toLowerCase()}`;
}

/// `owner`'s remembered choice; `smart` (today's behaviour) when none, when it is unreadable, or
/// when the wallet cannot sign an authorization (`capable` false).
export function loadChoice(storage: ChoiceStorage | undefined, owner: Address, capable: boolean): AccountKind {
  if (!capable || !storage) return 'smart';
  try {
    return storage.getItem(choiceKey(owner)) === 'eip7702' ? 'eip7702' : 'smart';
  } catch {
    return 'smart'; // storage disabled (a private window's quota, a sandboxed frame)
  }
}

/// Remembers `owner`'s choice; `smart`, the default, is remembered by forgetting.
export function saveChoice(storage: ChoiceStorage | undefined, owner: Address, kind: AccountKind): void {
  if (!storage) return;
  try {
    if (kind === 'eip7702') storage.setItem(choiceKey(owner), kind);
    else storage.removeItem(choiceKey(owner));
  } catch {
    // Not remembered: the page still uses the choice until it is reloaded.
  }
}

// ------------------------------------------------------------------ the wallet's capability

/// The EIP-5792 capability a wallet advertises (in `wallet_getCapabilities`, under the chain's
/// hex id or `0x0` for every chain) to say it answers `wallet_signAuthorization`. Either name is
/// accepted: `{ "signAuthorization": { "supported": true } }` or `{ "eip7702": { "supported": true } }`.
export const CAPABILITY_NAMES = ['signAuthorization', 'eip7702'] as const;

/// Whether a `wallet_getCapabilities` answer says the wallet signs EIP-7702 authorizations on
/// `chainId`. Anything else — no answer, another shape, `supported` not exactly true — is no.
export function advertises7702(capabilities: unknown, chainId: number): boolean {
  if (!capabilities || typeof capabilities !== 'object') return false;
  const byChain = capabilities as Record<string, unknown>;
  const wanted = [`0x${chainId.toString(16)}`, '0x0'];
  const entries = Object.entries(byChain).filter(([key]) => isHex(key) && wanted.includes(normalHex(key)));
  return entries.some(([, caps]) => {
    if (!caps || typeof caps !== 'object') return false;
    return CAPABILITY_NAMES.some((name) => (caps as Record<string, { supported?: unknown } | undefined>)[name]?.supported === true);
  });
}

/// `0x07A69` → `0x7a69` (EIP-5792 keys are hex quantities; wallets differ in case and zeros).
function normalHex(value: string): string {
  return `0x${BigInt(value).toString(16)}`;
}

// ------------------------------------------------------------------ the delegation

/// What the service asks the owner to sign for an EIP-7702 account whose EOA does not delegate
/// to Valet yet: an authorization to run `address` (ValetAccount7702) on `chain_id` at the EOA's
/// transaction nonce `nonce`. `signing_hash` = keccak256(0x05 ‖ rlp([chain_id, address, nonce])).
export interface Delegation {
  chain_id: number;
  address: Address;
  nonce: number;
  signing_hash: Hex;
}

/// A number as JSON may carry it (a number, a decimal or 0x string) → a safe integer, or null.
function quantity(value: unknown): number | null {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^(0x[0-9a-fA-F]+|\d+)$/.test(value)) n = Number(BigInt(value));
  else return null;
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/// The service's `delegation` checked before the wallet is asked anything: every field there, on
/// this app's chain (`chainId`; never 0, which would be valid on every chain), and its
/// `signing_hash` the hash of exactly those fields — what the wallet signs is what the page
/// names. Throws an Error in the user's words otherwise.
export function parseDelegation(raw: unknown, chainId: number): Delegation {
  const bad = (why: string) => new Error(`the service asked for an address delegation the page cannot check: ${why}`);
  if (!raw || typeof raw !== 'object') throw bad('it is missing');
  const d = raw as Record<string, unknown>;
  const chain = quantity(d.chain_id);
  const nonce = quantity(d.nonce);
  if (chain === null) throw bad('no chain id');
  if (chain !== chainId) throw bad(`it is for chain ${chain}, not this app's chain ${chainId}`);
  if (typeof d.address !== 'string' || !isAddress(d.address, { strict: false })) throw bad('no contract address');
  if (nonce === null) throw bad('no nonce');
  if (typeof d.signing_hash !== 'string' || !isHex(d.signing_hash) || d.signing_hash.length !== 66) throw bad('no signing hash');
  const address = d.address as Address;
  const expected = hashAuthorization({ chainId: chain, address, nonce });
  if (expected.toLowerCase() !== d.signing_hash.toLowerCase()) throw bad('its signing hash is not the hash of its fields');
  return { chain_id: chain, address, nonce, signing_hash: expected };
}

/// The params of `wallet_signAuthorization` for `d`: `[{ chainId, address, nonce }]`, the numbers
/// as hex quantities.
export function authorizationRequest(d: Delegation): [{ chainId: Hex; address: Address; nonce: Hex }] {
  return [{ chainId: `0x${d.chain_id.toString(16)}`, address: d.address, nonce: `0x${d.nonce.toString(16)}` }];
}

/// The wallet's answer to `wallet_signAuthorization` as the service takes it: a 65-byte hex
/// signature r ‖ s ‖ v (v = 27 + yParity). The answer may be that already (v 27/28 or 0/1) or an
/// object `{ r, s, yParity }` (viem's SignedAuthorization; `v` instead of `yParity` too); when the
/// object repeats `chainId`, `address` or `nonce`, they must be the ones asked for. Throws in the
/// user's words when it is none of these.
export function authorizationSignature(answer: unknown, asked: Delegation): Hex {
  const bad = (why: string) => new Error(`the wallet's authorization is not usable: ${why}`);
  if (typeof answer === 'string') {
    if (!isHex(answer) || answer.length !== 132) throw bad('expected a 65-byte signature');
    const v = Number.parseInt(answer.slice(130), 16);
    if (![0, 1, 27, 28].includes(v)) throw bad(`its v is ${v}`);
    return `${answer.slice(0, 130)}${(v < 27 ? v + 27 : v).toString(16)}`.toLowerCase() as Hex;
  }
  if (!answer || typeof answer !== 'object') throw bad('the wallet answered nothing');
  const a = answer as Record<string, unknown>;
  if (a.chainId !== undefined && quantity(a.chainId) !== asked.chain_id) throw bad('it is for another chain');
  if (a.nonce !== undefined && quantity(a.nonce) !== asked.nonce) throw bad('it is for another nonce');
  const target = a.address ?? a.contractAddress;
  if (target !== undefined && (typeof target !== 'string' || !isAddress(target, { strict: false }) || !isAddressEqual(target as Address, asked.address))) {
    throw bad('it is for another contract');
  }
  const word = (value: unknown, name: string): string => {
    if (typeof value !== 'string' || !isHex(value) || value.length > 66 || value.length < 3) throw bad(`no ${name}`);
    return value.slice(2).padStart(64, '0');
  };
  let parity: number | null = quantity(a.yParity);
  if (parity === null && a.v !== undefined) {
    const v = quantity(typeof a.v === 'bigint' ? Number(a.v) : a.v);
    parity = v === null ? null : v >= 27 ? v - 27 : v;
  }
  if (parity !== 0 && parity !== 1) throw bad('no y parity');
  return `0x${word(a.r, 'r')}${word(a.s, 's')}${(27 + parity).toString(16)}`.toLowerCase() as Hex;
}

/// Whether `signature` over the delegation was made by `owner`'s key (a wallet that signed with
/// another account would otherwise fail only on chain).
export async function signedBy(d: Delegation, signature: Hex, owner: Address): Promise<boolean> {
  try {
    return isAddressEqual(await recoverAddress({ hash: d.signing_hash, signature }), owner);
  } catch {
    return false;
  }
}
