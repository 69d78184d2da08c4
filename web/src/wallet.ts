// The owner's wallet: an injected EIP-1193 provider (window.ethereum) when the browser has one,
// else — on the devnet only — a development wallet whose key the service publishes. Either way the
// dApp asks it for exactly one thing: an EIP-712 signature.

import type { Address, Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { TypedData } from './api';

/// The subset of EIP-1193 the page uses.
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown[] }): Promise<unknown>;
  /// EIP-1193 events (`accountsChanged`, `chainChanged`), when the wallet emits them.
  on?(event: string, listener: (payload: unknown) => void): unknown;
}

declare global {
  interface Window {
    ethereum?: Eip1193Provider;
  }
}

export interface Wallet {
  /// `injected` or `development`.
  kind: 'injected' | 'development';
  /// What the page shows for it.
  label: string;
  address: Address;
  /// Signs EIP-712 typed data (one wallet prompt for an injected wallet).
  signTypedData(data: TypedData): Promise<Hex>;
}

/// A wallet refusal or failure, in words a user can act on.
export class WalletError extends Error {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
    this.name = 'WalletError';
  }
}

/// `doing` as in "you declined to sign in your wallet" / "the wallet could not sign: …".
function walletError(e: unknown, doing: string): WalletError {
  const err = e as { code?: number; message?: string } | undefined;
  if (err?.code === 4001) return new WalletError(`you declined to ${doing} in your wallet`, 4001);
  return new WalletError(`the wallet could not ${doing}: ${err?.message ?? String(e)}`, err?.code);
}

/// Connects the injected wallet: asks for its accounts and checks it is on `chainId`.
export async function connectInjected(provider: Eip1193Provider, chainId: number): Promise<Wallet> {
  let accounts: unknown;
  try {
    accounts = await provider.request({ method: 'eth_requestAccounts' });
  } catch (e) {
    throw walletError(e, 'connect');
  }
  const address = Array.isArray(accounts) ? (accounts[0] as Address | undefined) : undefined;
  if (!address) throw new WalletError('the wallet shared no account');
  let walletChain: unknown;
  try {
    walletChain = await provider.request({ method: 'eth_chainId' });
  } catch (e) {
    throw walletError(e, 'tell its chain');
  }
  if (typeof walletChain === 'string' && Number.parseInt(walletChain, 16) !== chainId) {
    throw new WalletError(
      `the wallet is on chain ${Number.parseInt(walletChain, 16)}, but this service runs on chain ${chainId}: switch networks in the wallet`,
    );
  }
  return {
    kind: 'injected',
    label: 'Injected wallet',
    address,
    async signTypedData(data) {
      try {
        // Typed data with its EIP712Domain type, as eth_signTypedData_v4 expects.
        return (await provider.request({
          method: 'eth_signTypedData_v4',
          params: [address, JSON.stringify(data)],
        })) as Hex;
      } catch (e) {
        throw walletError(e, 'sign');
      }
    },
  };
}

/// Typed data as `eth_signTypedData_v4` JSON carries it (integers as decimal strings) turned into
/// what viem's signer takes: integers as bigint, the domain type left out.
export function forViem(data: TypedData) {
  const { EIP712Domain: domainType = [], ...types } = data.types;
  const convert = (type: string, value: unknown): unknown => {
    if (type.endsWith('[]')) return (value as unknown[]).map((v) => convert(type.slice(0, -2), v));
    if (/^u?int\d*$/.test(type)) return BigInt(value as string | number);
    const struct = data.types[type];
    if (struct && value && typeof value === 'object') {
      const object = value as Record<string, unknown>;
      return Object.fromEntries(struct.map((f) => [f.name, convert(f.type, object[f.name])]));
    }
    return value;
  };
  const domain = Object.fromEntries(
    domainType.map((f) => [f.name, convert(f.type, data.domain[f.name])]),
  ) as Record<string, unknown>;
  return {
    domain,
    types,
    primaryType: data.primaryType,
    message: convert(data.primaryType, data.message) as Record<string, unknown>,
  };
}

/// The development wallet: a published devnet key, signing in the page without a prompt.
export function developmentWallet(privateKey: Hex, label: string): Wallet {
  const account = privateKeyToAccount(privateKey);
  return {
    kind: 'development',
    label: `Development wallet (${label})`,
    address: account.address,
    signTypedData(data) {
      return account.signTypedData(forViem(data) as Parameters<typeof account.signTypedData>[0]);
    },
  };
}
