// "Keys in this browser" in a real (headless Debian) Chromium against `valet up --bundler alto`:
// the owner signs once; three mints follow with no prompt, signed in the page with a key kept in
// IndexedDB and sent by the page to Alto through its own origin (`/bundler`); a reload keeps the
// session; a mint beyond it is refused in the page with the exact reason and never sent; the owner
// revokes (a signature and a transaction from the wallet) and the next mint is refused; after a
// reload the revoked session is gone with its key. The chain agrees at every step, and between
// the grant and the revocation the page asks the service's API (`/v1/…`) nothing. Screenshots go to target/web-e2e/screenshots/ (prefixed `browser-keys-`).
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { type Address, type Hex, createPublicClient, erc721Abi, getAddress, http, parseAbi } from 'viem';
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
const VALIDATOR_ABI = parseAbi(['function isRevoked(address account, bytes32 id) view returns (bool)']);

interface Sent {
  path: string;
  /// The JSON-RPC method, for `/rpc` and `/bundler`.
  method: string | null;
}

describe('keys in this browser: grant once, mint with no prompt through Alto, reload, refuse, revoke', () => {
  let service: ValetService | undefined;
  let browser: Chromium | undefined;
  let page: Page;
  let wallet: TestWallet;
  let watch: PageWatch;
  let config: { contracts: Record<string, Address>; validator: Address; bundler?: string | null; rpc?: string };
  const sent: Sent[] = [];
  let grantFrom = 0;
  let account: Address;
  let sessionId: Hex;
  let failedStep: string | undefined;
  const screenshots: string[] = [];

  const chain = () => createPublicClient({ transport: http(service!.info.rpc_url) });
  const nftBalance = () =>
    chain().readContract({ address: config.contracts.ValetNFT, abi: erc721Abi, functionName: 'balanceOf', args: [account] });
  const toBundler = (from: number, method: string) => sent.slice(from).filter((s) => s.path === '/bundler' && s.method === method);

  beforeAll(async () => {
    if (!existsSync(join(webDist, 'index.html'))) throw new Error(`no built dApp at ${webDist}: run \`make web\``);
    mkdirSync(screenshotDir, { recursive: true });
    for (const file of readdirSync(screenshotDir)) {
      if (file.startsWith('browser-keys-')) rmSync(join(screenshotDir, file), { force: true });
    }
    service = await startValet({ web: webDist, bundler: 'alto' });
    try {
      browser = await launchChromium();
      const { context } = browser;
      await blockOffLoopback(context);
      wallet = new TestWallet(service.info.chain_id, { rpcUrl: service.info.rpc_url });
      await wallet.install(context);
      page = context.pages()[0] ?? (await context.newPage());
      watch = new PageWatch(page);
      // Every request of the context (the page, its workers), with the JSON-RPC method if any.
      context.on('request', (request) => {
        const path = new URL(request.url()).pathname;
        let method: string | null = null;
        try {
          method = (JSON.parse(request.postData() ?? 'null') as { method?: string } | null)?.method ?? null;
        } catch {
          method = null;
        }
        sent.push({ path, method });
      });
      config = (await (await fetch(new URL('/config.json', service.info.url))).json()) as typeof config;
      expect([config.rpc, config.bundler]).toEqual(['/rpc', '/bundler']);
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
    if (stopped && !stopped.clean) throw new Error(`valet up did not stop cleanly (${stopped.exit})`);
    if (service && !failedStep) rmSync(service.dataDir, { recursive: true, force: true });
  });

  function step(name: string, screenshot: string, body: () => Promise<void>): void {
    it(name, async (test) => {
      if (failedStep) test.skip(`an earlier step failed: ${failedStep}`);
      try {
        await body();
        expect(watch.problems(), 'page errors and off-loopback requests').toEqual([]);
        const path = join(screenshotDir, `browser-keys-${String(screenshots.length + 1).padStart(2, '0')}-${screenshot}.png`);
        await page.screenshot({ path, fullPage: true });
        screenshots.push(path);
      } catch (error) {
        failedStep = name;
        await page.screenshot({ path: join(screenshotDir, 'browser-keys-failure.png'), fullPage: true }).catch(() => {});
        console.error(
          [
            `step failed: ${name}`,
            '--- page problems ---',
            ...watch.problems(),
            '--- page console ---',
            ...watch.console,
            '--- wallet requests ---',
            ...wallet.requests.map((r) => `${r.method}${r.error ? ` → ${r.error}` : ''}`),
            `--- ${service?.logPath} (tail) ---`,
            service?.logTail(60) ?? '',
          ].join('\n'),
        );
        throw error;
      }
    });
  }

  async function text(testId: string): Promise<string | null> {
    const texts = await page.getByTestId(testId).allInnerTexts();
    return texts.length === 0 ? null : texts.join('\n').trim();
  }

  function untilText(testId: string, ok: (text: string) => boolean, what: string, timeoutMs = 60_000) {
    return until(() => text(testId), (value) => value !== null && ok(value), timeoutMs, `${testId}: ${what}`) as Promise<string>;
  }

  async function mint(quantity: string): Promise<void> {
    await page.getByTestId('mint-quantity').fill(quantity);
    await page.getByTestId('mint').click();
  }

  step('connects, and the owner chooses keys in this browser', 'choice', async () => {
    await page.getByTestId('connect').click();
    await untilText('owner', (t) => t.toLowerCase() === wallet.address.toLowerCase(), 'the owner');
    await expect.poll(() => page.getByTestId('key-mode-service').isChecked()).toBe(true); // the default
    await page.getByTestId('key-mode-browser').check();
    await until(() => page.getByTestId('key-mode-browser').isChecked(), Boolean, 30_000, 'browser mode');
    account = (await untilText('account-address', (t) => /^0x[0-9a-fA-F]{40}$/.test(t), 'the smart account')) as Address;
    await untilText('mint-none', (t) => t.includes('in this browser'), 'no session yet');
  });

  step('one signature grants the session, its key made and kept in this browser', 'granted', async () => {
    await page.getByTestId('review').click();
    const summary = await untilText('grant-summary', (t) => t.includes('mint(to, quantity) on ValetNFT'), 'the summary');
    expect(summary).toContain('For your smart account');
    const signing = wallet.count('signing');
    grantFrom = sent.length;
    await page.getByTestId('approve').click();
    await untilText('granted', (t) => t.startsWith('Granted'), 'granted');
    expect(wallet.count('signing')).toBe(signing + 1);
    expect(wallet.count('eth_signTypedData_v4')).toBe(1);
    sessionId = (await page.getByTestId('session').getAttribute('data-session-id')) as Hex;
    expect(sessionId).toMatch(/^0x[0-9a-f]{64}$/);
    await untilText('session-uses', (t) => t === '10 of 10 left', 'all uses left');
  });

  step('three mints with no prompt, sent by the page to Alto through /bundler', 'minted', async () => {
    const signing = wallet.count('signing');
    for (let i = 1; i <= 3; i++) {
      await mint('2');
      await untilText('mint-result', (t) => t.startsWith('Minted 2 NFTs'), `mint ${i}`, 90_000);
      await untilText('session-uses', (t) => t === `${10 - i} of 10 left`, `uses after mint ${i}`);
      expect(await nftBalance()).toBe(BigInt(2 * i));
    }
    expect(wallet.count('signing')).toBe(signing);
    expect(toBundler(grantFrom, 'eth_sendUserOperation')).toHaveLength(3);
    await untilText('nft-count', (t) => t === '6', 'six NFTs on the page');
    expect(await text('session-onchain')).toBe('enabled');
  });

  step('a reload keeps the session (IndexedDB and the record in localStorage)', 'reloaded', async () => {
    await page.reload();
    await untilText('session-uses', (t) => t === '7 of 10 left', 'the session after the reload');
    expect(await page.getByTestId('key-mode-browser').isChecked()).toBe(true);
    expect(await page.getByTestId('session').getAttribute('data-session-id')).toBe(sessionId);
  });

  step('a mint beyond the session is refused in the page with the exact reason, and never sent', 'refused', async () => {
    const from = sent.length;
    await mint('6');
    const nft = getAddress(config.contracts.ValetNFT); // checksummed, as the core states it
    const reason = `call 1 (mint on ValetNFT (${nft.slice(0, 6)}…${nft.slice(-4)})): quantity = 6, but the session requires quantity ≤ 5`;
    const error = await untilText('mint-error', (t) => t.startsWith('Refused'), 'the refusal');
    expect(error).toBe(`Refused, nothing was sent: ${reason}`);
    expect(toBundler(from, 'eth_sendUserOperation')).toEqual([]);
    expect(toBundler(from, 'eth_estimateUserOperationGas')).toEqual([]);
    expect(await nftBalance()).toBe(6n);
    expect(await text('session-uses')).toBe('7 of 10 left');
  });

  step('the owner revokes: a signature and a transaction from the wallet; the validator agrees', 'revoked', async () => {
    const typed = wallet.count('eth_signTypedData_v4');
    await page.getByTestId('revoke').click();
    await untilText('revoke-note', (t) => t.startsWith('Revoked on chain'), 'revoked', 60_000);
    expect(wallet.count('eth_signTypedData_v4')).toBe(typed + 1);
    expect(wallet.count('eth_sendTransaction')).toBe(1);
    expect(
      await chain().readContract({ address: config.validator, abi: VALIDATOR_ABI, functionName: 'isRevoked', args: [account, sessionId] }),
    ).toBe(true);
    await untilText('session-onchain', (t) => t === 'revoked', 'revoked on the card');
    // From the grant to the revocation, the page asked the service's API nothing.
    const api = sent.slice(grantFrom).filter((s) => s.path.startsWith('/v1/'));
    expect(api).toEqual([]);
    // (The recorder sees them: before the grant, the devnet's faucet funded the account.)
    expect(sent.slice(0, grantFrom).filter((s) => s.path === '/v1/devnet/fund').length).toBeGreaterThan(0);
    expect(sent.slice(grantFrom).filter((s) => s.path === '/rpc').length).toBeGreaterThan(0);
  });

  step('after the revocation the next mint is refused, never sent', 'refused-after-revoke', async () => {
    const from = sent.length;
    await mint('1');
    const error = await untilText('mint-error', (t) => t.startsWith('Refused'), 'the refusal');
    expect(error).toMatch(/revoked/);
    expect(toBundler(from, 'eth_sendUserOperation')).toEqual([]);
    expect(await nftBalance()).toBe(6n);
  });

  step('a reload after the revocation: the session is gone with its key, the page works on', 'reloaded-after-revoke', async () => {
    await page.reload();
    await untilText('mint-none', (t) => t.includes('in this browser'), 'no session left');
    expect(await page.getByTestId('key-mode-browser').isChecked()).toBe(true);
    await untilText('nft-count', (t) => t === '6', 'the NFTs, from the chain');
  });
});
