// The owner's wallet: an injected EIP-1193 provider (window.ethereum) when the browser has one,
// else — on the devnet only — a development wallet whose key the service publishes. The dApp asks
// it for an EIP-712 signature (a grant, a revocation) and, for "use my address" only, an EIP-7702
// authorization.
//
// EIP-7702 signing. There is no standard JSON-RPC method for it yet; the page uses this one:
//
//   wallet_getCapabilities  [owner, [chainIdHex]]  (EIP-5792; asked once on connecting, no prompt)
//     → { [chainIdHex | "0x0"]: { signAuthorization: { supported: true } } }   ("eip7702" also read)
//   wallet_signAuthorization  [{ chainId: hex, address, nonce: hex }]   (one wallet prompt)
//     → { r, s, yParity }   the signature of keccak256(0x05 ‖ rlp([chainId, address, nonce])) by
//       the account the page is connected to (viem's SignedAuthorization: it may repeat chainId,
//       address and nonce, which must then be the ones asked for). A 65-byte hex signature
//       r ‖ s ‖ v (v 27/28 or 0/1) is taken too.
//
// A wallet that does not advertise the capability (or fails to answer wallet_getCapabilities) is
// never asked to sign an authorization: the page offers it a new smart account only, as before.
// The page never probes with wallet_signAuthorization itself (that would prompt).

import type { Address, Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { TypedData } from './api';
import { advertises7702, authorizationRequest, authorizationSignature, type Delegation } from './eip7702';

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
  /// Signs an EIP-7702 authorization (one wallet prompt), as a 65-byte hex signature r ‖ s ‖ v;
  /// absent when the wallet does not say it can.
  signAuthorization?(delegation: Delegation): Promise<Hex>;
  /// Sends a transaction from the owner's address (one wallet prompt; the owner pays its fee);
  /// absent for the development wallet.
  sendTransaction?(tx: { to: Address; data: Hex }): Promise<Hex>;
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
  const can7702 = await signsAuthorizations(provider, address, chainId);
  return {
    kind: 'injected',
    label: 'Injected wallet',
    address,
    ...(can7702 && {
      async signAuthorization(delegation: Delegation) {
        let answer: unknown;
        try {
          answer = await provider.request({ method: 'wallet_signAuthorization', params: authorizationRequest(delegation) });
        } catch (e) {
          throw walletError(e, 'sign the authorization');
        }
        return authorizationSignature(answer, delegation);
      },
    }),
    async sendTransaction(tx) {
      try {
        return (await provider.request({ method: 'eth_sendTransaction', params: [{ from: address, to: tx.to, data: tx.data }] })) as Hex;
      } catch (e) {
        throw walletError(e, 'send the transaction');
      }
    },
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

/// Whether the wallet advertises EIP-7702 signing on `chainId` (see the top of this file). A
/// wallet that does not know `wallet_getCapabilities` throws: no.
export async function signsAuthorizations(provider: Eip1193Provider, address: Address, chainId: number): Promise<boolean> {
  try {
    const capabilities = await provider.request({
      method: 'wallet_getCapabilities',
      params: [address, [`0x${chainId.toString(16)}`]],
    });
    return advertises7702(capabilities, chainId);
  } catch {
    return false;
  }
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
