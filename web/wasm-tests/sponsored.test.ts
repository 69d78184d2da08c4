// Sponsored sessions whose key lives in the app (web/src/browser-keys), through the ERC-7677
// paymaster service of `valet up --bundler alto` (`POST /v1/paymaster`, the app's API key as the
// password in the URL): an account that holds no ETH mints three times with one owner signature,
// every fee paid by the devnet's paymaster; the same session without a paymaster is refused by the
// pre-flight (its fee rule: sponsored only) and the bundler never hears of it; and an app whose
// daily sponsorship budget is too small gets the service's refusal, with nothing sent.

import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Address,
  type PublicClient,
  createClient,
  createPublicClient,
  encodeFunctionData,
  getAddress,
  http,
  isAddressEqual,
  parseAbi,
  parseEventLogs,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import {
  type Context,
  type PaymasterService,
  type Rpc,
  PaymasterRefused,
  Refused,
  grant,
  propose,
  resume,
} from '../src/browser-keys';
import { type ValetService, startValet } from '../tests/harness';
import { ROOT, loadCore } from './load';

const core = loadCore();
const NFT_ABI = parseAbi([
  'function mint(address to, uint256 quantity)',
  'function balanceOf(address owner) view returns (uint256)',
]);
const USER_OPERATION_EVENT = parseAbi([
  'event UserOperationEvent(bytes32 indexed userOpHash, address indexed sender, address indexed paymaster, uint256 nonce, bool success, uint256 actualGasCost, uint256 actualGasUsed)',
]);

/// The demo's mint session, but a paymaster must pay every operation: none of the account's ETH.
const SPONSORED_MINT_SPEC = `
valid_for = "1h"
fees = "sponsored"
[[permission]]
target   = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules    = [{ arg = "to", eq = "$account" }, { arg = "quantity", lte = 5 }]
max_uses = 10
`;

/// What `/config.json` of `valet up` says (the parts used here).
interface Config {
  chain_id: number;
  api_key: string;
  contracts: Record<string, Address>;
  validator: Address;
  factory: Address;
  entry_point: Address;
  paymaster: Address;
  bundler: string | null;
}

describe('a sponsored session whose key lives in the app, through an ERC-7677 paymaster service', () => {
  let service: ValetService;
  let config: Config;
  let publicClient: PublicClient;
  let bundler: Rpc;
  /// Every method asked of the bundler, and of the paymaster service.
  const sent: string[] = [];
  const paymasterCalls: string[] = [];
  const realFetch = globalThis.fetch;

  beforeAll(async () => {
    // `valet up` registers the devnet dApp's app (1 ETH a day of sponsorship) when it serves a
    // page: an empty one will do.
    mkdirSync(`${ROOT}target/tmp`, { recursive: true });
    const web = mkdtempSync(join(`${ROOT}target/tmp`, 'sponsored-web-'));
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>sponsored</title>');
    service = await startValet({ web, bundler: 'alto' });
    config = (await (await realFetch(new URL('/config.json', service.info.url))).json()) as Config;
    if (!config.bundler) throw new Error('`valet up --bundler alto` gives no bundler in /config.json');
    publicClient = createPublicClient({
      chain: { ...foundry, id: config.chain_id, rpcUrls: { default: { http: [service.info.rpc_url] } } },
      transport: http(service.info.rpc_url) }) as PublicClient;
    const inner = createClient({ transport: http(new URL(config.bundler, service.info.url).href) });
    bundler = {
      request: (args) => {
        sent.push(args.method);
        return inner.request(args as Parameters<typeof inner.request>[0]);
      },
    };
    // The paymaster service's methods, as the module sends them.
    globalThis.fetch = async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.pathname === '/v1/paymaster' && typeof init?.body === 'string') {
        paymasterCalls.push((JSON.parse(init.body) as { method: string }).method);
      }
      return realFetch(input, init);
    };
  }, 240_000);

  afterAll(async () => {
    globalThis.fetch = realFetch;
    const stopped = await service?.stop();
    if (stopped && !stopped.clean) console.warn('valet up did not stop cleanly', stopped);
  }, 30_000);

  /// The service's ERC-7677 endpoint for `apiKey`, the key as the URL's password.
  const paymasterFor = (apiKey: string): PaymasterService => {
    const url = new URL('/v1/paymaster', service.info.url);
    url.username = 'valet';
    url.password = apiKey;
    return { url: url.href, context: { note: 'browser-keys test' } };
  };

  it('mints three times at no cost to an account without ETH, refuses without the paymaster, and reports the service refusing', async () => {
    const owner = privateKeyToAccount(generatePrivateKey());
    const nft = getAddress(config.contracts.ValetNFT);
    const deployment = {
      chainId: config.chain_id,
      entryPoint: config.entry_point,
      factory: config.factory,
      validator: config.validator,
    };
    const context: Context = { core, publicClient, bundler, pollMs: 200, paymaster: paymasterFor(config.api_key) };

    const proposal = await propose({
      context,
      owner: owner.address,
      spec: SPONSORED_MINT_SPEC,
      names: config.contracts,
      deployment,
      storage: 'memory',
    });
    const account = proposal.record.account;
    expect(await publicClient.getCode({ address: account })).toBeUndefined(); // counterfactual
    expect(await publicClient.getBalance({ address: account })).toBe(0n);
    expect(proposal.summary.join('\n')).toMatch(/paymaster/i);

    // The owner's one signature.
    const session = await grant(proposal, await owner.sign({ hash: proposal.digest }));
    const mint = (quantity: bigint) => ({
      target: nft,
      data: encodeFunctionData({ abi: NFT_ABI, functionName: 'mint', args: [account, quantity] }),
    });
    const balance = () =>
      publicClient.readContract({ address: nft, abi: NFT_ABI, functionName: 'balanceOf', args: [account] });

    // Three mints, each paid by the devnet's paymaster.
    for (let i = 1; i <= 3; i++) {
      const done = await session.execute({ calls: [mint(2n)] });
      expect(done.paymaster && isAddressEqual(done.paymaster, config.paymaster)).toBe(true);
      expect(done.counters.permissionUses[0]).toBe(i);
      expect(BigInt(done.counters.feesSpent)).toBe(0n);
      const receipt = await publicClient.getTransactionReceipt({ hash: done.transactionHash });
      const [event] = parseEventLogs({ abi: USER_OPERATION_EVENT, logs: receipt.logs }).filter(
        (e) => e.args.userOpHash === done.userOpHash,
      );
      expect(event, 'UserOperationEvent').toBeDefined();
      expect(isAddressEqual(event!.args.paymaster, config.paymaster)).toBe(true);
      expect(isAddressEqual(event!.args.sender, account)).toBe(true);
      expect(event!.args.success).toBe(true);
      const byBundler = (await bundler.request({ method: 'eth_getUserOperationReceipt', params: [done.userOpHash] })) as {
        paymaster: Address;
      };
      expect(isAddressEqual(byBundler.paymaster, config.paymaster)).toBe(true);
      expect(await balance()).toBe(BigInt(2 * i));
      expect(await publicClient.getBalance({ address: account })).toBe(0n);
    }
    // ERC-7677's two steps for each: stub fields before estimating, the final ones after.
    expect(paymasterCalls).toEqual(Array(3).fill(['pm_getPaymasterStubData', 'pm_getPaymasterData']).flat());
    expect(sent.filter((m) => m === 'eth_sendUserOperation')).toHaveLength(3);
    expect(await publicClient.getCode({ address: account })).not.toBeUndefined();

    // The same session, resumed without a paymaster: the pre-flight refuses it (sponsored only),
    // and neither the bundler nor the paymaster hears of it.
    const { paymaster: _paymaster, ...unsponsored } = context;
    const again = await resume(unsponsored, session.record, 'memory');
    const [sentBefore, pmBefore] = [sent.length, paymasterCalls.length];
    const refused = await again.execute({ calls: [mint(1n)] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Refused);
    expect((refused as Refused).message).toBe(
      'the session may not spend your ETH on network fees: a sponsor (paymaster) must pay for its operations; grant a fee budget to let the account pay',
    );
    expect((refused as Refused).refusal).toBeTruthy();
    expect(sent.slice(sentBefore)).toEqual([]);
    expect(paymasterCalls.slice(pmBefore)).toEqual([]);
    // `execute`'s own `paymaster: null` is the same.
    const refusedToo = await session.execute({ calls: [mint(1n)], paymaster: null }).catch((e: unknown) => e);
    expect(refusedToo).toBeInstanceOf(Refused);
    expect(sent.slice(sentBefore)).toEqual([]);

    // An app whose daily sponsorship budget (1 gwei) cannot cover an operation: the service's
    // ERC-7677 error, in its words, and nothing sent to the bundler.
    const admin = readFileSync(service.info.admin_token_file, 'utf8').trim();
    const created = await realFetch(new URL('/v1/apps', service.info.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'browser keys, 1 gwei a day' }),
    });
    expect(created.status, 'POST /v1/apps').toBe(201);
    const app = (await created.json()) as { id: string; api_key: string };
    const budget = await realFetch(new URL(`/v1/apps/${app.id}/sponsorship`, service.info.url), {
      method: 'PUT',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ daily_budget_wei: '1000000000' }),
    });
    expect(budget.status, 'PUT /v1/apps/{id}/sponsorship').toBe(200);
    const sendsBefore = sent.filter((m) => m === 'eth_sendUserOperation').length;
    const pmBefore2 = paymasterCalls.length;
    const tiny = await session
      .execute({ calls: [mint(1n)], paymaster: paymasterFor(app.api_key) })
      .catch((e: unknown) => e);
    expect(tiny).toBeInstanceOf(PaymasterRefused);
    const message = (tiny as PaymasterRefused).message;
    expect(message).toMatch(/^sponsorship budget exceeded: /);
    expect(message).toContain("of this app's daily sponsorship budget of");
    expect(message).not.toContain(app.api_key);
    expect((tiny as PaymasterRefused).code).toBe(-32001);
    expect((tiny as PaymasterRefused).method).toBe('pm_getPaymasterData');
    expect(paymasterCalls.slice(pmBefore2)).toEqual(['pm_getPaymasterStubData', 'pm_getPaymasterData']);
    expect(sent.filter((m) => m === 'eth_sendUserOperation')).toHaveLength(sendsBefore);

    // The chain: 6 NFTs, no ETH ever spent by the account, three operations counted.
    expect(await balance()).toBe(6n);
    expect(await publicClient.getBalance({ address: account })).toBe(0n);
    const left = await session.remaining();
    expect(left.permissions).toEqual([{ index: 0, made: 3, max: 10, left: 7 }]);
    expect(left.fees.spent).toBe(0n);
  }, 300_000);
});
