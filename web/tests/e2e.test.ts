// The dApp in a real (headless Debian) Chromium against a real `valet up`: connect an injected
// wallet, grant a mint session with one signature, mint three times without any prompt, its fees
// paid by the app's sponsor while the account holds no ETH, see refusals, revoke with one more
// signature; the page as it was for a service without a sponsor. Screenshots go to
// target/web-e2e/screenshots/.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import {
  type Address,
  type Hex,
  createPublicClient,
  defineChain,
  erc20Abi,
  erc721Abi,
  http,
  parseAbi,
  verifyTypedData,
} from 'viem';
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
  startValet,
  until,
} from './harness';

const webDist = join(repoRoot, 'web', 'dist');
const screenshotDir = join(e2eDir, 'screenshots');
const refusalText = 'quantity = 6, but the session requires quantity ≤ 5';
/** The service's summary line for `fees = "sponsored"` (valet-core's fee_lines). */
const sponsoredLine = 'Network fees are paid by a sponsor (a paymaster), never from your ETH';
/** EntryPoint v0.7, at its canonical address on the devnet too: paymasters pay from deposits there. */
const entryPoint: Address = '0x0000000071727De22E5E9d8BAf0edAc6f37da032';

const hashesIn = (text: string): string[] => text.match(/0x[0-9a-fA-F]{64}/g) ?? [];

/** "0.5 ETH" → 0.5; NaN when there is no amount in ETH. */
function ethAmount(text: string): number {
  const amount = /([\d.,]+)\s*ETH/.exec(text)?.[1];
  return amount === undefined ? Number.NaN : Number(amount.replace(/,/g, ''));
}

type RequestOutcome = { result: unknown } | { error: { isError: boolean; code: unknown; message: unknown } };

/** Calls window.ethereum.request in the page, as a dApp would, and reports how it settled. */
function requestInPage(page: Page, method: string, params: unknown[] = []): Promise<RequestOutcome> {
  return page.evaluate(
    async ([method, params]) => {
      const { ethereum } = globalThis as unknown as {
        ethereum: { request(args: { method: string; params: unknown[] }): Promise<unknown> };
      };
      try {
        return { result: await ethereum.request({ method, params }) };
      } catch (error) {
        const { code, message } = error as { code?: unknown; message?: unknown };
        return { error: { isError: error instanceof Error, code, message } };
      }
    },
    [method, params] as const,
  );
}

describe('harness: the injected wallet in Chromium', () => {
  let browser: Chromium | undefined;
  let page: Page;
  let wallet: TestWallet;
  let watch: PageWatch;

  beforeAll(async () => {
    browser = await launchChromium();
    const { context } = browser;
    await blockOffLoopback(context);
    wallet = new TestWallet(31337);
    await wallet.install(context);
    page = context.pages()[0] ?? (await context.newPage());
    watch = new PageWatch(page);
    // A page on a loopback origin that Playwright answers itself: nothing listens on port 9.
    await page.route('http://127.0.0.1:9/', (route) =>
      route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>wallet check</title><p>wallet check' }),
    );
    await page.goto('http://127.0.0.1:9/');
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('reveals its account only after eth_requestAccounts, and its chain id', async () => {
    expect(await requestInPage(page, 'eth_accounts')).toEqual({ result: [] });
    expect(await requestInPage(page, 'eth_requestAccounts')).toEqual({ result: [wallet.address] });
    expect(await requestInPage(page, 'eth_accounts')).toEqual({ result: [wallet.address] });
    expect(await requestInPage(page, 'eth_chainId')).toEqual({ result: '0x7a69' });
  });

  it('signs EIP-712 typed data for real (eth_signTypedData_v4)', async () => {
    const typedData = {
      domain: {
        name: 'Valet',
        version: '1',
        chainId: 31337,
        verifyingContract: '0x00000000000000000000000000000000000000aa',
      },
      types: {
        EIP712Domain: [
          { name: 'name', type: 'string' },
          { name: 'version', type: 'string' },
          { name: 'chainId', type: 'uint256' },
          { name: 'verifyingContract', type: 'address' },
        ],
        Grant: [
          { name: 'session', type: 'address' },
          { name: 'uses', type: 'uint256' },
          { name: 'selector', type: 'bytes4' },
        ],
      },
      primaryType: 'Grant',
      // As a dApp's JSON carries it: the uint as a decimal string.
      message: { session: '0x00000000000000000000000000000000000000bb', uses: '10', selector: '0xa0712d68' },
    } as const;
    const before = wallet.count('eth_signTypedData_v4');
    const outcome = await requestInPage(page, 'eth_signTypedData_v4', [wallet.address, JSON.stringify(typedData)]);
    expect(outcome).toHaveProperty('result');
    const signature = (outcome as { result: Hex }).result;
    const { EIP712Domain: _domainType, ...types } = typedData.types;
    const message = { ...typedData.message, uses: 10n };
    const { domain, primaryType } = typedData;
    const { address } = wallet;
    expect(await verifyTypedData({ address, domain, types, primaryType, message, signature })).toBe(true);
    expect(wallet.count('eth_signTypedData_v4')).toBe(before + 1);
  });

  it('rejects what it does not support with an EIP-1193 error the page can read', async () => {
    expect(await requestInPage(page, 'eth_sendTransaction', [{ to: wallet.address }])).toEqual({
      error: { isError: true, code: 4200, message: 'The test wallet does not support eth_sendTransaction' },
    });
    const foreign = '0x00000000000000000000000000000000000000cc';
    const outcome = await requestInPage(page, 'personal_sign', ['0x68656c6c6f', foreign]);
    expect(outcome).toMatchObject({ error: { isError: true, code: 4100 } });
    expect(wallet.requests.map((request) => request.method)).toContain('eth_sendTransaction');
  });

  it('blocks and reports requests that leave 127.0.0.1', async () => {
    const fetched = await page.evaluate(() =>
      fetch('http://example.com/').then(
        () => 'answered',
        () => 'failed',
      ),
    );
    expect(fetched).toBe('failed');
    expect(watch.offLoopback).toEqual(['GET http://example.com/']);
  });
});

/** What the page reads first: `/config.json` of the service. */
interface DappConfig {
  paymaster?: Address;
  [key: string]: unknown;
}

describe('the dApp in Chromium: one grant, sponsored mints without prompts, refusals, revoke', () => {
  let service: ValetService | undefined;
  let dappConfig: DappConfig;
  let paymaster: Address;
  let depositBefore: bigint;
  const faucetCalls: string[] = [];
  let browser: Chromium | undefined;
  let page: Page;
  let wallet: TestWallet;
  let watch: PageWatch;
  let smartAccount: Address;
  let mintSessionId: Hex;
  let failedStep: string | undefined;
  const screenshots: string[] = [];

  beforeAll(async () => {
    if (!existsSync(join(webDist, 'index.html'))) {
      throw new Error(`no built dApp at ${webDist}: run \`npm run build\` in web/`);
    }
    // This file's own screenshots (numbered) go; other files' (states.test.ts: `state-…`, eip7702.test.ts: `eip7702-…`,
    // browser-keys.test.ts: `browser-keys-…`) stay.
    mkdirSync(screenshotDir, { recursive: true });
    for (const file of readdirSync(screenshotDir)) {
      const others = ['state-', 'eip7702-', 'browser-keys-'];
      if (!others.some((prefix) => file.startsWith(prefix))) rmSync(join(screenshotDir, file), { recursive: true, force: true });
    }
    service = await startValet({ web: webDist });
    try {
      browser = await launchChromium();
      const { context } = browser;
      await blockOffLoopback(context);
      wallet = new TestWallet(service.info.chain_id);
      await wallet.install(context);
      page = context.pages()[0] ?? (await context.newPage());
      watch = new PageWatch(page);
      page.on('request', (request) => {
        if (new URL(request.url()).pathname === '/v1/devnet/fund') faucetCalls.push(request.postData() ?? '');
      });
      dappConfig = (await (await fetch(new URL('/config.json', service.info.url))).json()) as DappConfig;
      if (!dappConfig.paymaster) throw new Error('`valet up` gives the dApp no paymaster (config.paymaster)');
      paymaster = dappConfig.paymaster;
      depositBefore = await paymasterDeposit();
      await page.goto(new URL('/', service.info.url).href);
    } catch (error) {
      failedStep = 'setup';
      console.error(`--- ${service.logPath} (tail) ---\n${service.logTail(60)}`);
      throw error;
    }
  });

  afterAll(async () => {
    await browser?.close();
    const stopped = await service?.stop();
    if (screenshots.length > 0) console.log(`screenshots:\n  ${screenshots.join('\n  ')}`);
    if (stopped && !stopped.clean) {
      const leftovers = stopped.leftovers.join(', ') || 'none';
      throw new Error(`valet up did not stop cleanly on SIGTERM (${stopped.exit}; leftover children: ${leftovers})`);
    }
    // Its log is worth keeping only when something went wrong.
    if (service && !failedStep) rmSync(service.dataDir, { recursive: true, force: true });
  });

  /** One step of the flow; after a failed step the rest are skipped, not failed again. */
  function step(name: string, screenshot: string | undefined, body: () => Promise<void>): void {
    it(name, async (test) => {
      if (failedStep) test.skip(`an earlier step failed: ${failedStep}`);
      try {
        await body();
        expect(watch.problems(), 'page errors and off-loopback requests').toEqual([]);
        if (screenshot) await takeScreenshot(screenshot);
      } catch (error) {
        failedStep = name;
        await reportFailure(name);
        throw error;
      }
    });
  }

  async function takeScreenshot(name: string, on: Page = page): Promise<void> {
    const path = join(screenshotDir, `${String(screenshots.length + 1).padStart(2, '0')}-${name}.png`);
    await on.screenshot({ path, fullPage: true });
    screenshots.push(path);
  }

  async function reportFailure(name: string): Promise<void> {
    const path = join(screenshotDir, 'failure.png');
    await page.screenshot({ path, fullPage: true }).then(
      () => screenshots.push(path),
      (error: unknown) => console.error(`(no failure screenshot: ${error})`),
    );
    const requests = wallet.requests.map(
      (r) => `${new Date(r.at).toISOString()} ${r.method}${r.error ? ` → ${r.error}` : ''}`,
    );
    console.error(
      [
        `step failed: ${name}`,
        `--- page problems ---`,
        ...watch.problems(),
        `--- page console ---`,
        ...watch.console,
        `--- 4xx answers to the page's calls ---`,
        ...watch.refusals,
        `--- wallet requests ---`,
        ...requests,
        `--- ${service?.logPath} (tail) ---`,
        service?.logTail(60) ?? '',
      ].join('\n'),
    );
  }

  /** The rendered text of the element(s) with this data-testid; null while there is none. */
  async function text(testId: string, on: Page = page): Promise<string | null> {
    const texts = await on.getByTestId(testId).allInnerTexts();
    return texts.length === 0 ? null : texts.join('\n').trim();
  }

  function untilText(testId: string, ok: (text: string) => boolean, what: string, timeoutMs = 30_000) {
    return until(
      () => text(testId),
      (value) => value !== null && ok(value),
      timeoutMs,
      `${testId}: ${what}`,
    ) as Promise<string>;
  }

  async function sessionStatus(): Promise<string> {
    const texts = await page.getByTestId('session').getByTestId('session-status').allInnerTexts();
    return texts.join('\n').trim().toLowerCase();
  }

  /**
   * Watches, from inside the page, whether `mint` is ever disabled while `mint-progress` shows,
   * so a mint that finishes quickly cannot slip between two polls.
   */
  async function watchMintBusy(): Promise<() => Promise<boolean>> {
    const probe = await page.evaluateHandle(() => {
      const state = { seen: false, observer: undefined as MutationObserver | undefined };
      const check = () => {
        const button = document.querySelector('[data-testid=mint]');
        const progress = document.querySelector('[data-testid=mint-progress]');
        const disabled = !!button && (button.matches(':disabled') || button.getAttribute('aria-disabled') === 'true');
        const shown =
          !!progress && progress.getClientRects().length > 0 && getComputedStyle(progress).visibility !== 'hidden';
        if (disabled && shown) state.seen = true;
      };
      state.observer = new MutationObserver(check);
      state.observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
      return state;
    });
    return () =>
      probe.evaluate((state) => {
        state.observer?.disconnect();
        return state.seen;
      });
  }

  async function mintOne(quantity: string): Promise<void> {
    await page.getByTestId('mint-quantity').fill(quantity);
    await page.getByTestId('mint').click();
  }

  step('connects the injected wallet and shows the smart account: demo tokens, no ETH, fees sponsored', 'connected', async () => {
    const connect = page.getByTestId('connect');
    await untilText('connect', (t) => t.includes('Connect wallet'), 'the connect button');
    await connect.click();
    await untilText('wallet-kind', (t) => t.includes('Injected wallet'), 'names the injected wallet');
    await untilText('owner', (t) => t.toLowerCase().includes(wallet.address.toLowerCase()), `shows ${wallet.address}`);
    const shown = await untilText('account-address', (t) => /0x[0-9a-fA-F]{40}/.test(t), 'a smart account address');
    smartAccount = /0x[0-9a-fA-F]{40}/.exec(shown)![0] as Address;
    expect(smartAccount.toLowerCase()).not.toBe(wallet.address.toLowerCase());
    await untilText('account-deployed', (t) => t.includes('not deployed'), 'not deployed yet');
    await untilText('nft-count', (t) => t === '0', '0 NFTs');
    await untilText(
      'sponsorship',
      (t) => t.startsWith('This app pays the network fees: 1 ETH of 1 ETH left today'),
      "the app's sponsorship left today",
    );
    // The app's sponsor pays the fees: the faucet is asked for the demo tokens only, no ETH.
    expect(faucetCalls.map((body) => JSON.parse(body).eth), 'requests to the devnet faucet').toEqual([false]);
    expect(await text('account-balance')).toBe('0 ETH');
    expect(await chainClient().getBalance({ address: smartAccount }), 'ETH of the account on chain').toBe(0n);
    expect(wallet.count('signing'), 'signing requests while connecting').toBe(0);
  });

  step('reviews the default mint grant, by keyboard', 'summary', async () => {
    expect(await page.getByTestId('preset-mint').getAttribute('aria-pressed')).toBe('true');
    for (const preset of ['preset-payment', 'preset-vote', 'preset-custom']) {
      await page.getByTestId(preset).waitFor({ state: 'visible' });
    }
    await page.getByTestId('review').focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('grant-summary').waitFor({ state: 'visible' });
    await untilText('grant-summary', (t) => /mint/i.test(t) && /\b10\b/.test(t), 'mentions mint and 10 uses');
    // Sponsored by default; the service's summary and the page say the same.
    expect(await page.getByTestId('fees-sponsor').isChecked(), 'the sponsored fee choice').toBe(true);
    await untilText('grant-summary', (t) => t.includes(sponsoredLine), `the service's fee line: "${sponsoredLine}"`);
    expect(await text('grant-fees')).toBe(
      "Network fees: paid by this app (sponsored). This session can never spend your account's ETH on fees.",
    );
    expect(await text('grant-summary')).not.toMatch(/of your ETH on network fees/);
  });

  step('a declined signature grants nothing and says so', 'declined', async () => {
    wallet.declineNextSignature();
    await page.getByTestId('approve').click();
    await untilText('grant-error', (t) => t.includes('you declined to sign in your wallet'), 'the decline, in words');
    expect(await page.getByTestId('session').count(), 'session cards').toBe(0);
    await page.getByTestId('grant-summary').waitFor({ state: 'visible' });
  });

  step('approving asks the wallet for exactly one typed-data signature', 'approved', async () => {
    const typedBefore = wallet.count('eth_signTypedData_v4');
    const signingBefore = wallet.count('signing');
    await page.getByTestId('approve').click();
    await until(sessionStatus, (t) => t === 'active', 60_000, 'the session card to be active');
    await untilText('uses-left', (t) => t.includes('10 of 10'), '10 of 10');
    expect(wallet.count('eth_signTypedData_v4') - typedBefore, 'eth_signTypedData_v4 requests').toBe(1);
    expect(wallet.count('signing') - signingBefore, 'signing requests of any kind').toBe(1);
  });

  for (const n of [1, 2, 3]) {
    step(`mint ${n} of 3 goes through without any wallet prompt`, `mint-${n}`, async () => {
      const signingBefore = wallet.count('signing');
      const previousResult = await text('mint-result');
      const sawBusy = await watchMintBusy();
      await mintOne('1');
      await untilText(
        'mint-result',
        (t) => t !== previousResult && t.includes('included') && hashesIn(t).length > 0,
        'a new result: included, with a user operation hash',
        60_000,
      );
      expect(await sawBusy(), 'mint disabled and mint-progress visible while waiting').toBe(true);
      await untilText('nft-count', (t) => t === String(n), `${n} NFTs`);
      await until(() => page.getByTestId('nft').count(), (count) => count === n, 30_000, `${n} nft items`);
      await untilText('uses-left', (t) => t.includes(`${10 - n} of 10`), `${10 - n} of 10`);
      await page.getByTestId('time-left').waitFor({ state: 'visible' });
      expect(await text('time-left')).not.toBe('');
      expect(await text('mint-fee')).toMatch(/^Network fee [\d.]+ ETH \([\d,]+ gas\): paid by the sponsor \(paymaster 0x[0-9a-f]{4}…[0-9a-f]{4}\), none of your ETH\.$/i);
      expect(await text('account-balance')).toBe('0 ETH');
      expect(wallet.count('signing'), 'signing requests during a mint').toBe(signingBefore);
    });
  }

  step('refuses a mint of 6 and says why', 'refused', async () => {
    const signingBefore = wallet.count('signing');
    await mintOne('6');
    await untilText('mint-error', (t) => t.toLowerCase().includes(refusalText), `says "${refusalText}"`);
    // In the page's words: no internal call number, no 66-character id; the limit at the field.
    expect(await text('mint-error')).not.toMatch(/\bcall 0\b|0x[0-9a-fA-F]{64}/);
    expect(await text('mint-range')).toBe('1–5 per mint');
    expect(await page.getByTestId('mint-error').getAttribute('role')).toBe('alert');
    await until(() => page.getByTestId('mint').isEnabled(), (enabled) => enabled, 30_000, 'mint to be enabled again');
    expect(await text('nft-count')).toBe('3');
    expect(await text('uses-left')).toContain('7 of 10');
    expect(wallet.count('signing'), 'signing requests during a refused mint').toBe(signingBefore);
    // Three mints spent nothing of the account's: the app's sponsorship paid for them.
    expect(await text('session-fees')).toBe('paid by a sponsor; none of your ETH');
    const sponsorship = await untilText('sponsorship', (t) => ethAmount(t) < 1, 'less than 1 ETH of sponsorship left today');
    expect(ethAmount(sponsorship), sponsorship).toBeGreaterThan(0.9);
  });

  step('lists the mints in the activity, with user operation and transaction hashes', undefined, async () => {
    const withBothHashes = async () =>
      (await page.getByTestId('activity-item').allInnerTexts()).filter((t) => new Set(hashesIn(t)).size >= 2);
    await until(withBothHashes, (items) => items.length >= 3, 30_000, 'three activity items with two hashes each');
  });

  step('revoking asks for exactly one more typed-data signature', 'revoked', async () => {
    const typedBefore = wallet.count('eth_signTypedData_v4');
    const signingBefore = wallet.count('signing');
    await page.getByTestId('session').getByTestId('revoke').click();
    await until(sessionStatus, (t) => t === 'revoked', 30_000, 'the session card to be revoked');
    await untilText('session-onchain', (t) => t === 'revoked', 'the validator to say revoked');
    mintSessionId = (await page.getByTestId('session').getAttribute('data-session-id')) as Hex;
    expect(wallet.count('eth_signTypedData_v4') - typedBefore, 'eth_signTypedData_v4 requests').toBe(1);
    expect(wallet.count('signing') - signingBefore, 'signing requests of any kind').toBe(1);
  });

  step('after the revoke, Mint is disabled and says why, with a way to grant a new session', 'refused-after-revoke', async () => {
    const signingBefore = wallet.count('signing');
    await untilText('mint-unusable', (t) => t.includes('revoked'), 'says the session is revoked');
    expect(await page.getByTestId('mint').isDisabled(), 'Mint disabled').toBe(true);
    expect(await page.getByTestId('mint-result').count(), 'the last mint result, stale now').toBe(0);
    expect(await text('nft-count')).toBe('3');
    expect(wallet.count('signing'), 'signing requests during a refused mint').toBe(signingBefore);
  });

  /** A viem client on the devnet, from the test process (not the page). */
  function chainClient() {
    const { rpc_url, chain_id } = service!.info;
    const chain = defineChain({
      id: chain_id,
      name: 'valet devnet',
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [rpc_url] } },
    });
    return createPublicClient({ chain, transport: http(rpc_url) });
  }

  /** What the app's paymaster has deposited in the EntryPoint to pay fees from. */
  function paymasterDeposit(): Promise<bigint> {
    const abi = parseAbi(['function balanceOf(address account) view returns (uint256)']);
    return chainClient().readContract({ address: entryPoint, abi, functionName: 'balanceOf', args: [paymaster] });
  }

  step('the chain holds the 3 NFTs in the smart account, its ETH is 0, the paymaster paid, the session is revoked', undefined, async () => {
    const { chain_id, contracts, validator } = service!.info;
    const client = chainClient();
    expect(await client.getBalance({ address: smartAccount }), 'ETH of the account on chain').toBe(0n);
    expect(await client.getCode({ address: smartAccount }), 'the account is deployed').toMatch(/^0x[0-9a-f]{2,}/);
    expect(await paymasterDeposit(), "the paymaster's EntryPoint deposit").toBeLessThan(depositBefore);
    expect(await client.getChainId()).toBe(chain_id);
    const owned = await client.readContract({
      address: contracts.ValetNFT,
      abi: erc721Abi,
      functionName: 'balanceOf',
      args: [smartAccount],
    });
    expect(owned).toBe(3n);
    const abi = parseAbi([
      'function isRevoked(address account, bytes32 id) view returns (bool)',
      'function permissionUses(address account, bytes32 id, uint256 permissionIndex) view returns (uint256)',
    ]);
    const revoked = await client.readContract({
      address: validator,
      abi,
      functionName: 'isRevoked',
      args: [smartAccount, mintSessionId],
    });
    expect(revoked, 'revoked in the validator').toBe(true);
    const mints = await client.readContract({
      address: validator,
      abi,
      functionName: 'permissionUses',
      args: [smartAccount, mintSessionId, 0n],
    });
    expect(mints, 'uses of the mint permission').toBe(3n);
  });

  /** Picks `preset`, reviews it, approves with one signature; returns its session card. */
  async function grantPreset(preset: string, summary: RegExp) {
    const before = await page.getByTestId('session').count();
    const typedBefore = wallet.count('eth_signTypedData_v4');
    await page.getByTestId(`preset-${preset}`).click();
    expect(await page.getByTestId(`preset-${preset}`).getAttribute('aria-pressed')).toBe('true');
    await page.getByTestId('review').click();
    await untilText('grant-summary', (t) => summary.test(t), `a summary matching ${summary}`);
    await page.getByTestId('approve').click();
    await until(() => page.getByTestId('session').count(), (n) => n === before + 1, 30_000, 'one more session card');
    expect(wallet.count('eth_signTypedData_v4') - typedBefore, 'eth_signTypedData_v4 requests').toBe(1);
  }

  step('a recurring payment: paid within the daily budget, refused beyond it', 'payment', async () => {
    await untilText('token-balance', (t) => t === '100 VLT', '100 VLT', 30_000);
    await grantPreset('payment', /at most 10 VLT per 1 day/i);
    const card = page.getByTestId('session').filter({ has: page.getByTestId('action-payee') });
    const payee = (await card.getByTestId('action-payee').inputValue()) as Address;
    const signingBefore = wallet.count('signing');
    await card.getByTestId('action-amount').fill('4');
    await card.getByTestId('action-submit').click();
    await until(() => card.getByTestId('action-result').innerText().catch(() => ''), (t) => t.includes('included'), 30_000, 'the payment to be included');
    await until(() => card.getByTestId('session-budget').innerText(), (t) => t.includes('6 of 10 VLT'), 30_000, '6 of 10 VLT left');
    await untilText('token-balance', (t) => t === '96 VLT', '96 VLT left in the account');
    await card.getByTestId('action-amount').fill('7');
    await card.getByTestId('action-submit').click();
    const refusal = 'this operation spends 7 VLT, but 4 VLT of the 10 VLT allowed per 1 day is already spent this period';
    await until(() => card.getByTestId('action-error').innerText().catch(() => ''), (t) => t.includes(refusal), 30_000, `"${refusal}"`);
    expect(wallet.count('signing'), 'signing requests while paying').toBe(signingBefore);
    const paid = await chainClient().readContract({
      address: service!.info.contracts.ValetToken,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [payee],
    });
    expect(paid, 'the payee holds what was paid').toBe(4n * 10n ** 18n);
  });

  step('DAO voting: a vote goes through, a second vote on the same proposal is refused by the DAO', 'vote', async () => {
    await grantPreset('vote', /castVote\(proposalId, support\).*at most 3 times/i);
    const card = page.getByTestId('session').filter({ has: page.getByTestId('action-proposal') });
    await card.getByTestId('action-submit').click();
    await until(() => card.getByTestId('action-result').innerText().catch(() => ''), (t) => t.includes('included'), 30_000, 'the vote to be included');
    await until(() => card.getByTestId('session-uses').innerText(), (t) => t.includes('2 of 3'), 30_000, '2 of 3 votes left');
    await card.getByTestId('action-submit').click();
    await until(() => card.getByTestId('action-error').innerText().catch(() => ''), (t) => t.includes('AlreadyVoted(proposalId=1'), 30_000, 'AlreadyVoted(proposalId=1, …)');
  });

  step('a custom grant: a mistake named by the service, then granted as typed', 'custom', async () => {
    await page.getByTestId('preset-custom').click();
    await page.getByTestId('custom-function').fill('mint(address to, uint256 quantity)');
    await page.getByTestId('rule-0-arg').fill('amount');
    await page.getByTestId('review').click();
    await untilText(
      'grant-error',
      (t) => t.includes('`amount` is not an argument of mint(address,uint256) (arguments: to, quantity)'),
      'the bad argument, named',
    );
    await page.getByTestId('rule-0-arg').fill('quantity');
    await page.getByTestId('rule-0-op').selectOption('lte');
    await page.getByTestId('rule-0-value').fill('2');
    await page.getByTestId('custom-max-uses').fill('4');
    await page.getByTestId('review').click();
    await untilText(
      'grant-summary',
      (t) => /at most 4 times, only if quantity ≤ 2/.test(t),
      'the custom limits in the summary',
    );
    const before = await page.getByTestId('session').count();
    await page.getByTestId('approve').click();
    await until(() => page.getByTestId('session').count(), (n) => n === before + 1, 30_000, 'the custom session card');
    // The mint panel now mints through the newest usable minting session: this one.
    await untilText('uses-left', (t) => t.includes('4 of 4'), '4 of 4 uses left');
    await mintOne('3');
    await untilText('mint-error', (t) => t.toLowerCase().includes('quantity = 3, but the session requires quantity ≤ 2'), 'its own rule');
    await mintOne('2');
    await untilText('nft-count', (t) => t === '5', '5 NFTs');
    await untilText('uses-left', (t) => t.includes('3 of 4'), '3 of 4 uses left');
  });

  step("with a sponsor, the user may still choose the account's ETH: the summary and the page say so", 'fees-account', async () => {
    await page.getByTestId('preset-mint').click();
    await page.getByTestId('fees-account').check();
    expect(await page.getByTestId('fee-choice').innerText()).toContain("From my account's ETH, budget up to 0.01 ETH.");
    await page.getByTestId('review').click();
    await untilText(
      'grant-summary',
      (t) => t.includes('May spend up to 0.01 ETH of your ETH on network fees'),
      "the service's fee line: a 0.01 ETH budget",
    );
    expect(await text('grant-fees')).toBe("Network fees: from your account's ETH, up to 0.01 ETH.");
    expect(await text('grant-summary')).not.toContain(sponsoredLine);
    await page.getByTestId('cancel').click();
    await page.getByTestId('fees-sponsor').check();
  });

  step('a service without a sponsor: the faucet gives ETH, the account pays its fees, no fee choice (as before)', undefined, async () => {
    // Another browser and wallet, shown the configuration without its paymaster.
    const other = await launchChromium();
    try {
      await blockOffLoopback(other.context);
      const otherWallet = new TestWallet(service!.info.chain_id);
      await otherWallet.install(other.context);
      await other.context.route('**/config.json', async (route) => {
        const { paymaster: _paymaster, ...config } = (await (await route.fetch()).json()) as DappConfig;
        await route.fulfill({ json: config });
      });
      const second = other.context.pages()[0] ?? (await other.context.newPage());
      const secondWatch = new PageWatch(second);
      const read = (testId: string) => async () => (await text(testId, second)) ?? '';
      await second.goto(new URL('/', service!.info.url).href);
      await second.getByTestId('connect').click();
      await until(read('account-balance'), (t) => ethAmount(t) === 1, 60_000, '1 ETH from the faucet');
      // The faucet's top-up is said, not silent.
      await until(read('funded'), (t) => t.includes('topped this account up to 1 ETH'), 10_000, 'the faucet named');
      expect(await second.getByTestId('sponsorship').count(), 'a sponsorship line').toBe(0);
      expect(await second.getByTestId('fee-choice').count(), 'a fee choice').toBe(0);
      await second.getByTestId('review').click();
      await until(
        read('grant-summary'),
        (t) => t.includes('May spend up to 0.01 ETH of your ETH on network fees'),
        30_000,
        "the service's fee line: a 0.01 ETH budget",
      );
      expect(await read('grant-fees')()).toBe("Network fees: from your account's ETH, up to 0.01 ETH.");
      // A first-time user gets a number, from the service's estimate, not only words.
      expect(await read('grant-fee-estimate')()).toMatch(
        /comes out of your account's ETH: about \d+(\.\d+)? ETH for the first \(it creates your account\), about \d+(\.\d+)? ETH each after\.$/,
      );
      await second.getByTestId('preset-custom').click();
      expect(await second.getByTestId('custom-fee-budget').inputValue(), 'the custom fee budget').toBe('0.01');
      expect(secondWatch.problems()).toEqual([]);
      await takeScreenshot('no-sponsor', second);
    } finally {
      await other.close();
    }
  });

  step("an app whose sponsorship is used up for today: the mint is not sent, and the page says why", undefined, async () => {
    // Another app, with a daily budget below any operation's maximum cost, behind the same page.
    // (`valet up` takes its admin token from VALET_ADMIN_TOKEN if set, else from its file.)
    const admin = process.env.VALET_ADMIN_TOKEN ?? readFileSync(service!.info.admin_token_file, 'utf8').trim();
    const created = await fetch(new URL('/v1/apps', service!.info.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'dApp with 1 gwei a day', sponsorship: { daily_budget_wei: '1000000000' } }),
    });
    expect(created.status, 'POST /v1/apps').toBe(201);
    const { api_key } = (await created.json()) as { api_key: string };
    const other = await launchChromium();
    try {
      await blockOffLoopback(other.context);
      const otherWallet = new TestWallet(service!.info.chain_id);
      await otherWallet.install(other.context);
      await other.context.route('**/config.json', async (route) => {
        const config = (await (await route.fetch()).json()) as DappConfig;
        await route.fulfill({ json: { ...config, api_key } });
      });
      const second = other.context.pages()[0] ?? (await other.context.newPage());
      const secondWatch = new PageWatch(second);
      const read = (testId: string) => async () => (await text(testId, second)) ?? '';
      await second.goto(new URL('/', service!.info.url).href);
      await second.getByTestId('connect').click();
      await until(read('sponsorship'), (t) => t.includes('0.000000001 ETH of 0.000000001 ETH left today'), 30_000, 'its budget');
      await second.getByTestId('review').click();
      await until(read('grant-summary'), (t) => t.includes(sponsoredLine), 30_000, 'a sponsored mint session');
      await second.getByTestId('approve').click();
      await until(read('uses-left'), (t) => t.includes('10 of 10'), 30_000, 'the granted session');
      await second.getByTestId('mint').click();
      const outcome = async () => `${await read('mint-error')()}${await read('mint-result')()}`;
      const refusal = await until(outcome, (t) => t !== '', 60_000, 'the outcome of the mint');
      expect(refusal).toMatch(
        /^This app's sponsorship of network fees is used up for today: this operation may cost up to 0\.0\d+ ETH, and 0\.000000001 ETH of its 0\.000000001 ETH daily budget is left\. Nothing was sent and nothing was charged; the budget renews at 00:00 UTC\.$/,
      );
      expect(await second.getByTestId('mint-error').getAttribute('role')).toBe('alert');
      expect(await read('nft-count')(), 'NFTs').toBe('0');
      expect(await read('account-deployed')(), 'nothing reached the chain').toContain('not deployed');
      expect(secondWatch.refusals.some((line) => line.includes('/execute → 402')), 'a 402 answer').toBe(true);
      expect(secondWatch.problems()).toEqual([]);
      await takeScreenshot('sponsorship-used-up', second);
    } finally {
      await other.close();
    }
  });

  step('without an injected wallet, the page offers the labelled development wallet', undefined, async () => {
    // A second browser, with no wallet injected.
    const bare = await launchChromium();
    await blockOffLoopback(bare.context);
    const second = bare.context.pages()[0] ?? (await bare.context.newPage());
    const secondWatch = new PageWatch(second);
    await second.goto(new URL('/', service!.info.url).href);
    await second.getByTestId('connect-dev').click();
    await until(() => second.getByTestId('wallet-kind').innerText().catch(() => ''), (t) => t.includes('Development wallet') && t.includes('devnet only'), 30_000, 'the development wallet, labelled');
    await until(() => second.getByTestId('account-address').innerText().catch(() => ''), (t) => /0x[0-9a-fA-F]{40}/.test(t), 30_000, 'its smart account');
    expect(secondWatch.problems()).toEqual([]);
    await takeScreenshot('development-wallet', second);
    await bare.close();
  });

  step('fits a phone screen without horizontal scrolling', 'phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(() => window.innerWidth === 390);
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(scrollWidth, 'document scroll width at 390 px').toBeLessThanOrEqual(390);
  });
});
