// "Use my address" (EIP-7702) in a real Chromium against a real `valet up`: a wallet that signs
// authorizations is offered the owner's own address as the account; choosing it, one approval
// asks for the authorization then the grant, mints land in the wallet's own address on chain (its
// code now delegating to Valet's ValetAccount7702, on EntryPoint v0.8), later mints ask nothing,
// a reload remembers the choice; a wallet that cannot sign authorizations is never offered it.
// Screenshots go to target/web-e2e/screenshots/ (prefixed `eip7702-`).
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import {
  type Address,
  type Hex,
  concatHex,
  createPublicClient,
  defineChain,
  encodeAbiParameters,
  erc721Abi,
  getContractAddress,
  http,
  isAddressEqual,
  recoverAddress,
  toHex,
} from 'viem';
import { hashAuthorization } from 'viem/utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Chromium,
  PageWatch,
  TestWallet,
  type ValetService,
  blockOffLoopback,
  e2eDir,
  launchChromium,
  repoRoot,
  signingMethods,
  startValet,
  until,
} from './harness';

const webDist = join(repoRoot, 'web', 'dist');
const screenshotDir = join(e2eDir, 'screenshots');
const addressIn = (text: string): string | undefined => /0x[0-9a-fA-F]{40}/.exec(text)?.[0];

/**
 * Where ValetAccount7702 is on every chain, computed here from the artifact rather than read from
 * the service: the CREATE2 address the deterministic deployment proxy gives its init code (the
 * bytecode and the validator it is built for) with Valet's salt (valet-client's deploy.rs).
 */
function implementation7702(validator: Address): Address {
  const artifact = JSON.parse(readFileSync(join(repoRoot, 'contracts', 'artifacts', 'ValetAccount7702.json'), 'utf8')) as {
    bytecode: Hex | { object: Hex };
  };
  const bytecode = typeof artifact.bytecode === 'string' ? artifact.bytecode : artifact.bytecode.object;
  return getContractAddress({
    opcode: 'CREATE2',
    from: '0x4e59b44847b379578588920cA78FbF26c0B4956C',
    salt: '0xabba23bd64177f3e0dd3b8c2361e4563513101b8bc6d2e8df0859daf8233bf01',
    bytecode: concatHex([bytecode, encodeAbiParameters([{ type: 'address' }], [validator])]),
  });
}

describe('the dApp in Chromium: "use my address" (EIP-7702)', () => {
  let service: ValetService | undefined;
  let browser: Chromium | undefined;
  let page: Page;
  let wallet: TestWallet;
  let watch: PageWatch;
  let implementation: Address;
  let smartAccount: Address;
  let sessionId: string;
  let failedStep: string | undefined;
  /** The page's POST /v1/sessions/{id}/grant bodies. */
  const grants: Record<string, unknown>[] = [];

  beforeAll(async () => {
    if (!existsSync(join(webDist, 'index.html'))) throw new Error(`no built dApp at ${webDist}: run \`make web\``);
    mkdirSync(screenshotDir, { recursive: true });
    for (const file of readdirSync(screenshotDir)) if (file.startsWith('eip7702-')) rmSync(join(screenshotDir, file), { force: true });
    service = await startValet({ web: webDist });
    implementation = implementation7702(service.info.validator);
    browser = await launchChromium();
    const { context } = browser;
    await blockOffLoopback(context);
    wallet = new TestWallet(service.info.chain_id);
    await wallet.install(context);
    page = context.pages()[0] ?? (await context.newPage());
    watch = new PageWatch(page);
    context.on('request', (request) => {
      if (request.method() === 'POST' && /^\/v1\/sessions\/[^/]+\/grant$/.test(new URL(request.url()).pathname)) {
        grants.push(request.postDataJSON() as Record<string, unknown>);
      }
    });
    await page.goto(new URL('/', service.info.url).href);
  });

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    if (service && !failedStep) rmSync(service.dataDir, { recursive: true, force: true });
  });

  function step(name: string, screenshot: string | undefined, body: () => Promise<void>): void {
    it(name, async (test) => {
      if (failedStep) test.skip(`an earlier step failed: ${failedStep}`);
      try {
        await body();
        expect(watch.problems(), 'page errors and off-loopback requests').toEqual([]);
        if (screenshot) await page.screenshot({ path: join(screenshotDir, `eip7702-${screenshot}.png`), fullPage: true });
      } catch (error) {
        failedStep = name;
        await page.screenshot({ path: join(screenshotDir, 'eip7702-failure.png'), fullPage: true }).catch(() => undefined);
        const requests = wallet.requests.map((r) => `${r.method}${r.error ? ` → ${r.error}` : ''}`);
        console.error(
          [
            `step failed: ${name}`,
            '--- page problems ---',
            ...watch.problems(),
            '--- page console ---',
            ...watch.console,
            '--- 4xx answers ---',
            ...watch.refusals,
            '--- wallet requests ---',
            ...requests,
            `--- ${service?.logPath} (tail) ---`,
            service?.logTail(40) ?? '',
          ].join('\n'),
        );
        throw error;
      }
    });
  }

  async function text(testId: string, on: Page = page): Promise<string> {
    return (await on.getByTestId(testId).allInnerTexts()).join('\n').trim();
  }

  function untilText(testId: string, ok: (t: string) => boolean, what: string, timeoutMs = 30_000, on: Page = page) {
    return until(() => text(testId, on), ok, timeoutMs, `${testId}: ${what}`);
  }

  /** The signing requests (a wallet prompt each) `w` got from its request number `from` on. */
  function signingSince(from: number, w: TestWallet = wallet) {
    return w.requests.slice(from).filter((r) => signingMethods.has(r.method));
  }

  /** A viem client on the devnet, from the test process (not the page). */
  function chain() {
    const { rpc_url, chain_id } = service!.info;
    const network = defineChain({
      id: chain_id,
      name: 'valet devnet',
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [rpc_url] } },
    });
    return createPublicClient({ chain: network, transport: http(rpc_url) });
  }

  function nftsOf(owner: Address): Promise<bigint> {
    return chain().readContract({ address: service!.info.contracts.ValetNFT, abi: erc721Abi, functionName: 'balanceOf', args: [owner] });
  }

  async function mint(quantity: string, total: number): Promise<void> {
    const previous = await text('mint-result');
    await page.getByTestId('mint-quantity').fill(quantity);
    await page.getByTestId('mint').click();
    await untilText('mint-result', (t) => t !== previous && t.includes('included'), `${quantity} minted`, 60_000);
    expect(await text('mint-result')).toContain(`Minted ${quantity} NFT`);
    await untilText('nft-count', (t) => t === String(total), `${total} NFTs`);
  }

  step('a wallet that signs EIP-7702 authorizations is offered the choice; a new smart account by default', '01-choice', async () => {
    await page.getByTestId('connect').click();
    await untilText('owner', (t) => t.toLowerCase().includes(wallet.address.toLowerCase()), `the owner ${wallet.address}`);
    await page.getByTestId('account-choice').waitFor();
    expect(await page.getByTestId('account-kind-smart').isChecked(), '"A new smart account" checked').toBe(true);
    expect(await page.getByTestId('account-kind-eip7702').isChecked(), '"Use my address" checked').toBe(false);
    const shown = await untilText('account-address', (t) => addressIn(t) !== undefined, 'the smart account');
    smartAccount = addressIn(shown) as Address;
    expect(isAddressEqual(smartAccount, wallet.address), 'the smart account is the wallet').toBe(false);
    expect(await page.getByTestId('account-address').getAttribute('data-kind')).toBe('smart');
    expect(await page.getByTestId('account-kind-eip7702-address').getAttribute('title')).toBe(wallet.address);
    expect(wallet.count('wallet_getCapabilities'), 'capabilities asked').toBeGreaterThan(0);
    expect(wallet.count('signing'), 'signing requests while connecting').toBe(0);
  });

  step('"Use my address": the account is the wallet\'s own address, a plain one for now', '02-own-address', async () => {
    await page.getByTestId('account-kind-eip7702').check();
    await untilText('account-address', (t) => t.toLowerCase() === wallet.address.toLowerCase(), 'the wallet\'s address');
    expect(await page.getByTestId('account-address').getAttribute('data-kind')).toBe('eip7702');
    expect(await page.getByTestId('account-kind-eip7702').isChecked()).toBe(true);
    expect(await text('account-deployed')).toMatch(/^a plain address for now/);
    // The faucet gives the address ETH: an EIP-7702 account pays its own fees.
    await untilText('account-balance', (t) => t !== '0 ETH', 'ETH for its fees');
    expect(await chain().getCode({ address: wallet.address }), 'code at the EOA').toBeUndefined();
    expect(wallet.count('signing'), 'signing requests for choosing').toBe(0);
  });

  step('approving the mint preset: the authorization, then the grant; granted', '03-granted', async () => {
    const from = wallet.requests.length;
    const nonce = await chain().getTransactionCount({ address: wallet.address });
    await page.getByTestId('preset-mint').click();
    await page.getByTestId('review').click();
    await untilText('grant-account', (t) => t.startsWith('For your own address'), 'the session acts for the own address');
    await untilText('approve', (t) => t.includes('two signatures'), 'two signatures announced');
    await page.getByTestId('approve').click();
    await untilText('granted', (t) => t.startsWith('Granted.'), 'granted');
    await untilText('mint-status', (t) => /^active$/i.test(t), 'the session, active');
    await untilText('uses-left', (t) => t.includes('10 of 10'), '10 of 10');
    const signing = signingSince(from);
    expect(signing.map((r) => r.method), 'the signing requests, in order').toEqual(['wallet_signAuthorization', 'eth_signTypedData_v4']);
    expect(signing.map((r) => r.error ?? 'signed')).toEqual(['signed', 'signed']);
    const [asked] = signing[0]!.params as [{ chainId: Hex; address: Address; nonce: Hex }];
    expect({ ...asked, address: asked.address.toLowerCase() }, 'what the authorization is for').toEqual({
      chainId: toHex(service!.info.chain_id),
      address: implementation.toLowerCase(),
      nonce: toHex(nonce),
    });
    // The service got the authorization the wallet signed, by the owner.
    expect(grants.length, 'grant requests').toBe(1);
    const signature = grants[0]!.delegation_signature as Hex;
    expect(signature, 'delegation_signature in the grant').toMatch(/^0x[0-9a-f]{130}$/i);
    const hash = hashAuthorization({ chainId: service!.info.chain_id, address: implementation, nonce });
    expect(await recoverAddress({ hash, signature }), 'who signed the authorization').toBe(wallet.address);
    sessionId = (await page.getByTestId('session').first().getAttribute('data-session-id')) as string;
    expect(sessionId).toMatch(/^0x[0-9a-f]{64}$/);
  });

  step('minting 2: the NFTs are the wallet address\'s own, and its code delegates to ValetAccount7702', '04-minted', async () => {
    const from = wallet.requests.length;
    await mint('2', 2);
    expect(await nftsOf(wallet.address), "NFTs of the wallet's address on chain").toBe(2n);
    expect(await nftsOf(smartAccount), 'NFTs of the smart account on chain').toBe(0n);
    const code = await chain().getCode({ address: wallet.address });
    expect(code?.toLowerCase(), 'code at the EOA').toBe(`0xef0100${implementation.slice(2)}`.toLowerCase());
    expect(await chain().getCode({ address: smartAccount }), 'the smart account stays undeployed').toBeUndefined();
    await untilText('account-deployed', (t) => t === 'your address runs Valet’s account code (EIP-7702)', 'the address activated');
    expect(signingSince(from), 'signing requests while minting').toEqual([]);
  });

  step('a second mint asks the wallet nothing', '05-second-mint', async () => {
    const from = wallet.requests.length;
    await mint('1', 3);
    expect(await nftsOf(wallet.address), "NFTs of the wallet's address on chain").toBe(3n);
    await untilText('uses-left', (t) => t.includes('8 of 10'), '8 of 10');
    expect(signingSince(from), 'signing requests').toEqual([]);
  });

  step('a reload remembers "use my address", and the same session mints', '06-reloaded', async () => {
    const from = wallet.requests.length;
    await page.reload();
    await untilText('account-address', (t) => t.toLowerCase() === wallet.address.toLowerCase(), 'the own address, without a click', 15_000);
    expect(await page.getByTestId('account-kind-eip7702').isChecked(), '"Use my address" checked').toBe(true);
    expect(await page.getByTestId('account-kind-smart').isChecked()).toBe(false);
    await untilText('mint-status', (t) => /^active$/i.test(t), 'the session, active');
    expect(await page.getByTestId('session').first().getAttribute('data-session-id'), 'the session').toBe(sessionId);
    await untilText('nft-count', (t) => t === '3', '3 NFTs');
    await mint('1', 4);
    expect(await nftsOf(wallet.address), "NFTs of the wallet's address on chain").toBe(4n);
    expect(signingSince(from), 'signing requests').toEqual([]);
  });

  step('a wallet that cannot sign authorizations: no choice, a smart account, never asked to', undefined, async () => {
    const other = await launchChromium();
    try {
      await blockOffLoopback(other.context);
      const plain = new TestWallet(service!.info.chain_id, { eip7702: false });
      await plain.install(other.context);
      const second = other.context.pages()[0] ?? (await other.context.newPage());
      const secondWatch = new PageWatch(second);
      await second.goto(new URL('/', service!.info.url).href);
      await second.getByTestId('connect').click();
      const shown = await untilText('account-address', (t) => addressIn(t) !== undefined, 'its account', 30_000, second);
      expect(isAddressEqual(addressIn(shown) as Address, plain.address), 'the account is the wallet').toBe(false);
      expect(await second.getByTestId('account-address').getAttribute('data-kind')).toBe('smart');
      expect(await second.getByTestId('account-choice').count(), 'the account choice').toBe(0);
      expect(plain.count('wallet_getCapabilities'), 'capabilities asked').toBeGreaterThan(0);
      // Its approval is the one signature of a smart account's.
      await second.getByTestId('preset-mint').click();
      await second.getByTestId('review').click();
      await untilText('grant-account', (t) => t.startsWith('For your smart account'), 'a smart account session', 30_000, second);
      await second.getByTestId('approve').click();
      await untilText('mint-status', (t) => /^active$/i.test(t), 'the session, active', 30_000, second);
      expect(signingSince(0, plain).map((r) => r.method)).toEqual(['eth_signTypedData_v4']);
      expect(plain.count('wallet_signAuthorization'), 'wallet_signAuthorization requests').toBe(0);
      expect(secondWatch.problems()).toEqual([]);
      await second.screenshot({ path: join(screenshotDir, 'eip7702-07-no-7702.png'), fullPage: true });
    } finally {
      await other.close();
    }
  });
});
