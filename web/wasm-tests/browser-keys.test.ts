// Session keys held by the app itself (web/src/browser-keys), against a real devnet with the
// Alto bundler: one owner signature, three mints with none, a mint outside the session refused
// before anything reaches the bundler (in the CLI's words), the owner's signed revocation, and
// the chain agreeing with every step. And the key store: keys encrypted under a wrapping key
// nobody can export.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Address,
  type Hex,
  type PublicClient,
  createClient,
  createPublicClient,
  createWalletClient,
  encodeFunctionData,
  getAddress,
  hashTypedData,
  http,
  parseAbi,
  parseEther,
  recoverAddress,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import {
  type BrowserSession,
  type Context,
  type Rpc,
  KeyStore,
  Refused,
  createSessionKey,
  grant,
  loadSessionKey,
  memoryRecords,
  propose,
  resume,
} from '../src/browser-keys';
import type { TypedData } from '../src/core/valet-core';
import { type Devnet, startDevnet } from './devnet';
import { loadCore } from './load';

const core = loadCore();
const NFT_ABI = parseAbi([
  'function mint(address to, uint256 quantity)',
  'function balanceOf(address owner) view returns (uint256)',
]);
const VALIDATOR_ABI = parseAbi([
  'function isRevoked(address account, bytes32 id) view returns (bool)',
  'function sessionState(address account, bytes session) view returns (uint8 state, uint256 uses, uint256 feesSpent)',
]);

describe('the key store', () => {
  it('keeps keys encrypted under a wrapping key that cannot be exported, and loads them by session id', async () => {
    const records = memoryRecords();
    const store = new KeyStore(records);
    // Two stores on the same records (two tabs) sealing at once share one wrapping key.
    const other = new KeyStore(records);
    const [first, second] = await Promise.all([
      createSessionKey({ storage: store }),
      createSessionKey({ storage: other }),
    ]);
    const ids = [`0x${'01'.repeat(32)}`, `0x${'02'.repeat(32)}`] as const;
    await Promise.all([first.save(ids[0]), second.save(ids[1])]);
    expect((await new KeyStore(records).get(ids[0]))?.address).toBe(first.address);
    expect((await new KeyStore(records).get(ids[1]))?.address).toBe(second.address);

    const key = await createSessionKey({ storage: store });
    const id = `0x${'ab'.repeat(32)}` as Hex;
    await key.save(id);

    const wrapping = (await records.get('wrapping-key')) as CryptoKey;
    expect(wrapping.extractable).toBe(false);
    await expect(crypto.subtle.exportKey('raw', wrapping)).rejects.toThrow();
    const sealed = (await records.get(`session:${id}`)) as { address: Address; ciphertext: ArrayBuffer };
    expect(sealed.address).toBe(key.address);
    expect(sealed.ciphertext.byteLength).toBe(32 + 16); // the key and GCM's tag, nothing else

    const loaded = await loadSessionKey(id, { storage: store });
    expect(loaded?.address).toBe(key.address);
    const digest = `0x${'11'.repeat(32)}` as Hex;
    const signature = await loaded!.signDigest(digest);
    expect(await recoverAddress({ hash: digest, signature })).toBe(key.address);
    expect(signature).toBe(await key.signDigest(digest));

    // Bound to its address: a record moved to another address does not decrypt.
    await records.put(`session:${id}`, { ...sealed, address: `0x${'00'.repeat(20)}` });
    await expect(store.get(id)).rejects.toThrow();
    await key.forget(id);
    expect(await store.get(id)).toBeUndefined();
  });
});

describe('a session whose key lives in the app, through a real bundler', () => {
  let devnet: Devnet;
  let publicClient: PublicClient;
  let context: Context;
  let sent: string[];

  beforeAll(async () => {
    devnet = await startDevnet();
    const chain = { ...foundry, rpcUrls: { default: { http: [devnet.info.rpc_url] } } };
    publicClient = createPublicClient({ chain, transport: http(devnet.info.rpc_url) }) as PublicClient;
    // The bundler, with every method asked of it recorded.
    const inner = createClient({ transport: http(devnet.info.bundler_url) });
    sent = [];
    const bundler: Rpc = {
      request: (args) => {
        sent.push(args.method);
        return inner.request(args as Parameters<typeof inner.request>[0]);
      },
    };
    context = { core, publicClient, bundler, pollMs: 200 };
  }, 150_000);

  afterAll(async () => {
    await devnet?.stop();
  }, 30_000);

  it('grants once, mints three times, refuses beyond the session before sending, and stops when revoked', async () => {
    const info = devnet.info;
    const chain = { ...foundry, rpcUrls: { default: { http: [info.rpc_url] } } };
    const owner = privateKeyToAccount(info.dev_keys[6]);
    const relayer = createWalletClient({
      account: privateKeyToAccount(info.dev_keys[7]),
      chain,
      transport: http(info.rpc_url),
    });
    const nft = getAddress(info.names.ValetNFT);
    const deployment = {
      chainId: info.chain_id,
      entryPoint: info.entry_point,
      factory: info.factory,
      validator: info.validator,
    };

    const proposal = await propose({
      context,
      owner: owner.address,
      spec: core.demoSpecs().mint,
      names: info.names,
      deployment,
      storage: 'memory',
    });
    const account = proposal.record.account;
    expect(await publicClient.getCode({ address: account })).toBeUndefined(); // counterfactual
    expect(proposal.summary.join('\n')).toContain('May call mint(to, quantity) on ValetNFT');
    // The typed data a wallet signs is the digest the validator checks.
    const typedData = proposal.typedData as unknown as TypedData;
    expect(hashTypedData(typedData as Parameters<typeof hashTypedData>[0])).toBe(proposal.digest);
    await relayer.sendTransaction({ to: account, value: parseEther('1') });

    // The owner's one signature.
    const session: BrowserSession = await grant(proposal, await owner.sign({ hash: proposal.digest }));

    const mint = (quantity: bigint) => ({
      target: nft,
      data: encodeFunctionData({ abi: NFT_ABI, functionName: 'mint', args: [account, quantity] }),
    });
    const balance = () =>
      publicClient.readContract({ address: nft, abi: NFT_ABI, functionName: 'balanceOf', args: [account] });

    // Three mints, no further signature: the first deploys the account and enables the session.
    for (let i = 1; i <= 3; i++) {
      const done = await session.execute({ calls: [mint(2n)] });
      expect(done.counters.permissionUses[0]).toBe(i);
      expect(await balance()).toBe(BigInt(2 * i));
    }
    expect(sent.filter((m) => m === 'eth_sendUserOperation')).toHaveLength(3);
    expect(sent.filter((m) => m === 'eth_estimateUserOperationGas')).toHaveLength(3);
    expect(await publicClient.getCode({ address: account })).not.toBeUndefined();

    // Resumed from its record and the key store, as a reloaded page would.
    const again = await resume(context, session.record, 'memory');

    // Outside the session: refused with the CLI's words, and the bundler never hears of it.
    const before = sent.length;
    const refused = await again.execute({ calls: [mint(6n)] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Refused);
    expect((refused as Refused).message).toBe(
      `call 1 (mint on ValetNFT (${nft.slice(0, 6)}…${nft.slice(-4)})): quantity = 6, but the session requires quantity ≤ 5`,
    );
    expect(sent.slice(before)).toEqual([]);

    const left = await again.remaining();
    expect(left.standing).toBe('enabled');
    expect(left.uses).toBeNull(); // the demo session counts uses per permission only
    expect(left.permissions).toEqual([{ index: 0, made: 3, max: 10, left: 7 }]);
    expect(left.fees.spent > 0n && left.fees.left < left.fees.budget).toBe(true);
    expect(left.secondsLeft).toBeGreaterThan(3000);

    // The owner revokes with a signature; a relayer sends it.
    const revocation = session.revocation();
    expect(hashTypedData(revocation.typedData as Parameters<typeof hashTypedData>[0])).toBe(revocation.digest);
    await session.revoke(await owner.sign({ hash: revocation.digest }), relayer);

    const afterRevoke = sent.length;
    const revoked = await session.execute({ calls: [mint(1n)] }).catch((e: unknown) => e);
    expect(revoked).toBeInstanceOf(Refused);
    expect((revoked as Refused).message).toMatch(/revoked/);
    expect(sent.slice(afterRevoke)).toEqual([]);
    expect(await loadSessionKey(session.id, { storage: 'memory' })).toBeUndefined();

    // The chain agrees.
    const validator = { address: info.validator, abi: VALIDATOR_ABI } as const;
    expect(await publicClient.readContract({ ...validator, functionName: 'isRevoked', args: [account, session.id] })).toBe(
      true,
    );
    const [state] = await publicClient.readContract({
      ...validator,
      functionName: 'sessionState',
      args: [account, session.record.packed],
    });
    expect(state).toBe(2); // revoked
    expect((await session.chainState()).counters.permissionUses[0]).toBe(3);
    expect(await balance()).toBe(6n);
    expect((await session.remaining()).standing).toBe('revoked');
  }, 240_000);
});
