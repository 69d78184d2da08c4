// "Keys in this browser": the dApp's sessions with their keys kept here (./browser-keys, IndexedDB
// under a key script cannot export), valet-core in WebAssembly deciding, and the chain and the
// bundler reached through the page's own origin (`/rpc` and `/bundler`, which `valet up` forwards
// to its devnet's node and bundler). Nothing here calls the service's API (`/v1/…`). No DOM:
// main.ts renders.

import {
  type Address,
  type Hex,
  type PublicClient,
  createClient,
  createPublicClient,
  defineChain,
  encodeFunctionData,
  http,
  parseAbi,
  parseAbiItem,
} from 'viem';
import type { AccountInfo, Config } from './api';
import {
  type BrowserSession,
  type Context,
  type Proposal,
  type Remaining,
  type SessionRecord,
  grant,
  propose,
  resume,
} from './browser-keys';
import { type Bindings, ValetCore } from './core/valet-core';

/// Where session keys live: with the service (its API, today's flow) or in this browser.
export type KeyMode = 'service' | 'browser';

/// What `/config.json` adds for keys in the browser (`valet up`).
interface BrowserConfig {
  entry_point?: Address;
  rpc?: string;
  bundler?: string | null;
}

/// Whether the service hands the page what keys in the browser need: the EntryPoint, and the
/// node and a bundler on this origin (`valet up --bundler alto`).
export function offersBrowserKeys(config: Config | null): boolean {
  const c = config as (Config & BrowserConfig) | null;
  return !!c?.entry_point && !!c.rpc && !!c.bundler;
}

const MODE_KEY = 'valet.key-mode';
const RECORDS_KEY = 'valet.browser-sessions.';

/// The owner's last choice (default: the service).
export function loadKeyMode(storage: Storage | undefined, owner: Address): KeyMode {
  return storage?.getItem(`${MODE_KEY}.${owner.toLowerCase()}`) === 'browser' ? 'browser' : 'service';
}

export function saveKeyMode(storage: Storage | undefined, owner: Address, mode: KeyMode): void {
  storage?.setItem(`${MODE_KEY}.${owner.toLowerCase()}`, mode);
}

/// The owner's sessions granted in this browser, newest first (their keys are in IndexedDB).
export function savedRecords(storage: Storage | undefined, owner: Address): SessionRecord[] {
  try {
    const text = storage?.getItem(`${RECORDS_KEY}${owner.toLowerCase()}`);
    return text ? (JSON.parse(text) as SessionRecord[]) : [];
  } catch {
    return [];
  }
}

function saveRecord(storage: Storage | undefined, owner: Address, record: SessionRecord): void {
  const kept = savedRecords(storage, owner).filter((r) => r.id !== record.id);
  storage?.setItem(`${RECORDS_KEY}${owner.toLowerCase()}`, JSON.stringify([record, ...kept]));
}

let context: Promise<Context> | undefined;

/// valet-core (loaded on first use: only this mode needs it), the node and the bundler, all on
/// this origin.
export function browserContext(config: Config): Promise<Context> {
  context ??= (async () => {
    const c = config as Config & BrowserConfig;
    const bindings = await import('../../target/wasm/web/valet_wasm.js');
    await bindings.default();
    const core = new ValetCore(bindings as unknown as Bindings);
    const rpc = new URL(c.rpc ?? '/rpc', window.location.origin).href;
    const chain = defineChain({
      id: config.chain_id,
      name: `chain ${config.chain_id}`,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [rpc] } },
    });
    const publicClient = createPublicClient({ chain, transport: http(rpc) }) as PublicClient;
    const inner = createClient({ transport: http(new URL(c.bundler ?? '/bundler', window.location.origin).href) });
    const bundler = { request: (args: { method: string; params?: unknown }) => inner.request(args as Parameters<typeof inner.request>[0]) };
    return { core, publicClient, bundler, pollMs: 300 };
  })();
  context.catch(() => (context = undefined));
  return context;
}

function deployment(config: Config): { chainId: number; entryPoint: Address; factory: Address; validator: Address } {
  return {
    chainId: config.chain_id,
    entryPoint: (config as Config & BrowserConfig).entry_point as Address,
    factory: config.factory,
    validator: config.validator,
  };
}

/// Proposes the demo's minting session (valet-core's, the CLI's `valet demo`) for `owner`'s
/// smart account, with a fresh key in IndexedDB: what the owner reads and signs.
export async function proposeMint(config: Config, owner: Address): Promise<Proposal> {
  const ctx = await browserContext(config);
  return propose({
    context: ctx,
    owner,
    spec: ctx.core.demoSpecs().mint,
    names: config.contracts,
    deployment: deployment(config),
    storage: 'indexeddb',
  });
}

/// The session the owner granted with `signature`, kept for later pages.
export async function grantMint(storage: Storage | undefined, proposal: Proposal, signature: Hex): Promise<BrowserSession> {
  const session = await grant(proposal, signature);
  saveRecord(storage, proposal.record.owner, session.record);
  return session;
}

/// The owner's newest session granted in this browser whose key is still here (a revoked
/// session's key is forgotten; site data may have been cleared), loaded from IndexedDB.
export async function resumeNewest(config: Config, storage: Storage | undefined, owner: Address): Promise<BrowserSession | null> {
  const records = savedRecords(storage, owner).filter((r) => r.deployment.chainId === config.chain_id);
  if (records.length === 0) return null;
  const ctx = await browserContext(config);
  for (const record of records) {
    try {
      return await resume(ctx, record, 'indexeddb');
    } catch {
      // No key for it here: the next one.
    }
  }
  return null;
}

const NFT_ABI = parseAbi(['function mint(address to, uint256 quantity)']);
const ERC20_ABI = parseAbi([
  'function balanceOf(address owner) view returns (uint256)',
  'function symbol() view returns (string)',
  'function decimals() view returns (uint8)',
]);
const FACTORY_ABI = parseAbi(['function getAddress(address owner, uint256 salt) view returns (address)']);
const TRANSFER = parseAbiItem('event Transfer(address indexed from, address indexed to, uint256 indexed tokenId)');

/// Mints `quantity` to the session's account, with no prompt; `Refused` (never sent) outside it.
export function mintThrough(session: BrowserSession, config: Config, quantity: bigint) {
  const nft = config.contracts.ValetNFT as Address;
  const data = encodeFunctionData({ abi: NFT_ABI, functionName: 'mint', args: [session.account, quantity] });
  return session.execute({ calls: [{ target: nft, data }] });
}

/// The owner's smart account as the chain tells it (what the service's `/v1/accounts` says, read
/// through `/rpc`): ETH, the demo NFTs it holds (from their Transfer events), the demo tokens.
export async function accountFromChain(config: Config, owner: Address): Promise<AccountInfo> {
  const { publicClient } = await browserContext(config);
  const address = await publicClient.readContract({
    address: config.factory,
    abi: FACTORY_ABI,
    functionName: 'getAddress',
    args: [owner, 0n],
  });
  const nft = config.contracts.ValetNFT as Address;
  const token = config.contracts.ValetToken as Address;
  const [balance, code, nftSymbol, received, sent, tokenBalance, tokenSymbol] = await Promise.all([
    publicClient.getBalance({ address }),
    publicClient.getCode({ address }),
    publicClient.readContract({ address: nft, abi: ERC20_ABI, functionName: 'symbol' }),
    publicClient.getLogs({ address: nft, event: TRANSFER, args: { to: address }, fromBlock: 0n }),
    publicClient.getLogs({ address: nft, event: TRANSFER, args: { from: address }, fromBlock: 0n }),
    publicClient.readContract({ address: token, abi: ERC20_ABI, functionName: 'balanceOf', args: [address] }),
    publicClient.readContract({ address: token, abi: ERC20_ABI, functionName: 'symbol' }),
  ]);
  const gone = new Set(sent.map((l) => l.args.tokenId?.toString()));
  const ids = received.map((l) => l.args.tokenId?.toString() ?? '').filter((id) => id && !gone.has(id));
  return {
    address,
    owner,
    kind: 'smart',
    salt: '0',
    deployed: code !== undefined && code !== '0x',
    balance_wei: balance.toString(),
    tokens: {
      ValetNFT: { address: nft, symbol: nftSymbol, balance: String(ids.length), kind: 'erc721', token_ids: ids },
      ValetToken: { address: token, symbol: tokenSymbol, balance: tokenBalance.toString(), kind: 'erc20', decimals: 18 },
    },
  };
}

/// "7 of 10 left" and the like, for the session card: from `remaining()`.
export function remainingLines(left: Remaining): { uses: string; fees: string; standing: string } {
  const uses = [
    left.uses ? `session: ${left.uses.left} of ${left.uses.max} left` : null,
    ...left.permissions.map((p) => `${p.left} of ${p.max} left`),
  ].filter(Boolean);
  const eth = (wei: bigint) => `${(Number(wei) / 1e18).toFixed(6).replace(/0+$/, '').replace(/\.$/, '')} ETH`;
  return {
    uses: uses.length ? uses.join('; ') : 'not counted',
    fees: `${eth(left.fees.left)} of ${eth(left.fees.budget)} left for network fees`,
    standing: {
      not_enabled: 'granted; enabled with its first use',
      enabled: 'enabled',
      revoked: 'revoked',
      voided: 'void: all sessions were revoked since',
      not_installed: "Valet's module is not installed in this account",
    }[left.standing],
  };
}
