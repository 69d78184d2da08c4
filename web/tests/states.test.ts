// The dApp tells the truth in every state (issue 14), in a real Chromium against a real
// `valet up`: a session that expires while the page is open, a revoked one, two tabs on one
// account, the wallet switching accounts and networks, odd inputs in the custom form, keyboard
// focus after each action and its ring's contrast, a phone screen, the service going away.
// Screenshots go to target/web-e2e/screenshots/ (prefixed `state-`).
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { type Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contrast } from '../src/contrast';
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

describe('the dApp in Chromium: every state shown as it is', () => {
  let service: ValetService | undefined;
  let serviceStopped = false;
  let browser: Chromium | undefined;
  let page: Page;
  let wallet: TestWallet;
  let watch: PageWatch;
  let apiKey: string;
  let failedStep: string | undefined;
  const proposals: string[] = [];

  beforeAll(async () => {
    if (!existsSync(join(webDist, 'index.html'))) throw new Error(`no built dApp at ${webDist}: run \`npm run build\` in web/`);
    mkdirSync(screenshotDir, { recursive: true });
    for (const file of readdirSync(screenshotDir)) if (file.startsWith('state-')) rmSync(join(screenshotDir, file), { force: true });
    service = await startValet({ web: webDist });
    browser = await launchChromium();
    const { context } = browser;
    await blockOffLoopback(context);
    wallet = new TestWallet(service.info.chain_id);
    await wallet.install(context);
    page = context.pages()[0] ?? (await context.newPage());
    watch = new PageWatch(page);
    context.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname === '/v1/sessions') proposals.push(request.url());
    });
    apiKey = ((await (await fetch(new URL('/config.json', service.info.url))).json()) as { api_key: string }).api_key;
    await page.goto(new URL('/', service.info.url).href);
  });

  afterAll(async () => {
    await browser?.close();
    if (!serviceStopped) await service?.stop();
    if (service && !failedStep) rmSync(service.dataDir, { recursive: true, force: true });
  });

  function step(name: string, screenshot: string | undefined, body: () => Promise<void>, tolerate?: RegExp): void {
    it(name, async (test) => {
      if (failedStep) test.skip(`an earlier step failed: ${failedStep}`);
      try {
        await body();
        const problems = watch.problems().filter((p) => !tolerate?.test(p));
        expect(problems, 'page errors and off-loopback requests').toEqual([]);
        if (screenshot) await page.screenshot({ path: join(screenshotDir, `state-${screenshot}.png`), fullPage: true });
      } catch (error) {
        failedStep = name;
        await page.screenshot({ path: join(screenshotDir, 'state-failure.png'), fullPage: true }).catch(() => undefined);
        console.error([`step failed: ${name}`, ...watch.problems(), ...watch.console, service?.logTail(40) ?? ''].join('\n'));
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

  /** The data-testid of the focused element ('BODY' when focus fell to the page). */
  function focused(on: Page = page): Promise<string> {
    return on.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      return !el || el === document.body ? 'BODY' : (el.dataset.testid ?? el.id ?? el.tagName);
    });
  }

  /** The focused element's outline colour and the background around it (first opaque ancestor). */
  function focusRing(on: Page = page): Promise<{ style: string; width: string; ring: string; around: string }> {
    return on.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      const css = getComputedStyle(el);
      let around = 'rgb(255, 255, 255)';
      for (let p = el.parentElement; p; p = p.parentElement) {
        const bg = getComputedStyle(p).backgroundColor;
        if (bg && bg !== 'transparent' && !/rgba\(.*,\s*0\)$/.test(bg)) {
          around = bg;
          break;
        }
      }
      return { style: css.outlineStyle, width: css.outlineWidth, ring: css.outlineColor, around };
    });
  }

  async function expectRing(what: string): Promise<void> {
    const ring = await focusRing();
    expect(ring.style, `${what}: outline style`).not.toBe('none');
    expect(contrast(ring.ring, ring.around), `${what}: focus ring ${ring.ring} on ${ring.around}`).toBeGreaterThanOrEqual(3);
  }

  async function sessionCard(on: Page = page) {
    return on.getByTestId('session').first();
  }

  step('before connecting, the page says what a session is, in plain words', 'intro', async () => {
    await untilText('intro', (t) => t.includes('What is a session?'), 'the explanation');
    const body = await page.locator('main').innerText();
    expect(body).not.toMatch(/chain 31337|EIP-712|validator|userOp/);
    expect(body).not.toContain('Connect first.');
  });

  step('connect by keyboard: focus moves to the next step, with a ring of at least 3:1', 'connected', async () => {
    await page.getByTestId('connect').focus();
    await expectRing('the Connect button in the header');
    await page.keyboard.press('Enter');
    await untilText('account-address', (t) => /0x[0-9a-fA-F]{40}/.test(t), 'the smart account');
    await until(() => focused(), (f) => f === 'review', 10_000, 'focus on Review');
    await expectRing('the Review button');
  });

  step('a reload keeps the connection', undefined, async () => {
    const owner = await text('owner');
    await page.reload();
    await untilText('owner', (t) => t === owner, 'the same owner without clicking Connect', 15_000);
    await untilText('account-address', (t) => /0x[0-9a-fA-F]{40}/.test(t), 'the smart account');
  });

  step('odd inputs in the custom form are named in the user’s words before anything is sent', 'odd-inputs', async () => {
    await page.getByTestId('preset-custom').click();
    const cases: [string, string, string][] = [
      ['custom-max-uses', '99999999999999999999', 'Calls allowed: 99999999999999999999 is more than 65,535'],
      ['custom-value', '-1', 'ETH per call at most: “-1” is not an amount of ETH'],
      ['custom-valid-for', '10', 'Valid for: “10” needs a unit'],
      ['custom-valid-for', '0', 'Valid for: “0” needs a unit'],
      ['custom-valid-for', '99999d', 'Valid for: “99999d” is longer than a year'],
      ['custom-function', '', 'Function: name the function the session may call'],
    ];
    const before = proposals.length;
    for (const [field, value, error] of cases) {
      const original = await page.getByTestId(field).inputValue();
      await page.getByTestId(field).fill(value);
      await page.getByTestId('review').click();
      await untilText('grant-error', (t) => t.includes(error), `"${error}"`, 5_000);
      expect(await focused(), 'focus on the error').toBe('grant-error');
      await page.getByTestId(field).fill(original);
    }
    expect(proposals.length - before, 'proposals sent for odd inputs').toBe(0);
  });

  step('reviews that are cancelled leave no trace in the activity', undefined, async () => {
    await page.getByTestId('preset-mint').click();
    for (let i = 0; i < 4; i++) {
      await page.getByTestId('review').click();
      await page.getByTestId('grant-summary').waitFor();
      await page.getByTestId('cancel').click();
      await until(() => focused(), (f) => f === 'review', 5_000, 'focus back on Review');
    }
    expect(await page.locator('main').innerText()).not.toContain('proposed');
  });

  step('approval is truthful: who pays, roughly how much, and the limit where the user acts', 'approval', async () => {
    await page.getByTestId('review').click();
    await untilText('grant-fees', (t) => t.includes('paid by this app'), 'who pays');
    expect(await text('grant-fee-estimate')).toContain("paid by this app, not you");
    expect(await text('grant-summary')).not.toMatch(/EIP-712|validator/);
    await page.getByTestId('cancel').click();
  });

  step('a short session expires while the page is open: badge, disabled Mint, a way to grant again', 'expired', async () => {
    await page.getByTestId('preset-custom').click();
    await page.getByTestId('custom-valid-for').fill('40s');
    await page.getByTestId('review').click();
    await page.getByTestId('approve').waitFor();
    await page.getByTestId('approve').focus();
    await page.keyboard.press('Enter');
    await untilText('mint-status', (t) => /^active$/i.test(t), 'the new session, active');
    await until(() => focused(), (f) => f === 'mint', 10_000, 'focus on Mint after approving');
    await page.keyboard.press('Enter');
    await untilText('mint-result', (t) => t.includes('Minted 1 NFT'), 'one NFT minted', 60_000);
    await until(() => focused(), (f) => f === 'mint', 10_000, 'focus on Mint after minting');
    await expectRing('the Mint button');
    // No reload, no refresh needed: the page's clock turns it.
    await untilText('mint-status', (t) => /^expired$/i.test(t), 'the Mint panel says expired', 60_000);
    expect(await page.getByTestId('mint').isDisabled(), 'Mint disabled').toBe(true);
    await page.getByTestId('mint-unusable').getByTestId('grant-new').waitFor();
    const card = await sessionCard();
    expect(await card.getByTestId('session-status').innerText()).toMatch(/expired/i);
    expect(await page.getByTestId('mint-result').count(), 'the stale result').toBe(0);
    expect(await page.getByTestId('granted').count(), 'the stale "Granted…"').toBe(0);
  });

  step('revoking a used session: revoked everywhere at once, no countdown, no stale message, focus on the note', 'revoked', async () => {
    await page.getByTestId('mint-unusable').getByTestId('grant-new').click();
    await until(() => focused(), (f) => f === 'review', 5_000, 'focus on Review');
    await page.keyboard.press('Enter');
    await page.getByTestId('approve').waitFor();
    await page.getByTestId('approve').click();
    await untilText('mint-status', (t) => /^active$/i.test(t), 'the 1-hour session');
    await page.getByTestId('mint').click();
    await untilText('mint-result', (t) => t.includes('Minted 1 NFT'), 'one NFT minted', 60_000);
    const card = await sessionCard();
    await card.getByTestId('revoke').focus();
    await page.keyboard.press('Enter');
    await until(() => card.getByTestId('session-status').innerText(), (t) => /revoked/i.test(t), 30_000, 'the card revoked');
    await until(() => focused(), (f) => f === 'revoke-note', 10_000, 'focus on the revoke note');
    expect(await card.getByTestId('session-expiry').innerText()).toBe('ended');
    expect(await card.getByTestId('revoke').count(), 'a Revoke button').toBe(0);
    await untilText('mint-status', (t) => /^revoked$/i.test(t), 'Mint panel revoked');
    expect(await page.getByTestId('mint').isDisabled()).toBe(true);
    expect(await page.getByTestId('mint-result').count(), 'the stale "Minted…"').toBe(0);
    expect(await page.getByTestId('granted').count(), 'the stale "Granted…"').toBe(0);
  });

  let second: Page;

  step('two tabs: each names only its own mint; a revoke in one shows in the other at once', 'two-tabs', async () => {
    second = await browser!.context.newPage();
    await second.goto(new URL('/', service!.info.url).href);
    await untilText('account-address', (t) => /0x[0-9a-fA-F]{40}/.test(t), 'tab B connected on load', 15_000, second);
    await page.getByTestId('preset-mint').click();
    await page.getByTestId('review').click();
    await page.getByTestId('approve').click();
    await untilText('mint-status', (t) => /^active$/i.test(t), 'tab A: the new session');
    await untilText('mint-status', (t) => /^active$/i.test(t), 'tab B: the new session, without waiting 15 s', 5_000, second);
    // Each tab's own answer from the service: the ids its operation minted, from its Transfer
    // events (read here by hand, not by the page's code).
    const answered = (tab: Page) =>
      tab
        .waitForResponse((r) => r.request().method() === 'POST' && /^\/v1\/sessions\/[^/]+\/execute$/.test(new URL(r.url()).pathname), { timeout: 90_000 })
        .then(async (r) => {
          const body = (await r.json()) as { events?: { address: string; topics: string[] }[] };
          const transfer = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';
          return (body.events ?? []).filter((e) => e.topics[0] === transfer && BigInt(e.topics[1] ?? 1) === 0n).map((e) => BigInt(e.topics[3] ?? 0).toString());
        });
    const answers = Promise.all([answered(page), answered(second)]);
    await Promise.all([page.getByTestId('mint').click(), second.getByTestId('mint').click()]);
    const a = await untilText('mint-result', (t) => t.includes('included'), 'tab A minted', 90_000);
    const b = await untilText('mint-result', (t) => t.includes('included'), 'tab B minted', 90_000, second);
    const [ownA, ownB] = await answers;
    expect([ownA.length, ownB.length], `each answer names one minted id: ${ownA} / ${ownB}`).toEqual([1, 1]);
    expect(ownA[0], 'two mints, two ids').not.toBe(ownB[0]);
    for (const [tab, result, own, other] of [['A', a, ownA, ownB], ['B', b, ownB, ownA]] as const) {
      expect(result, `tab ${tab}`).toContain('Minted 1 NFT');
      const named = (result.match(/#\d+/g) ?? []).map((id) => id.slice(1));
      expect(named, `ids named by tab ${tab}: ${result}`).toEqual(own);
      expect(named, `tab ${tab} names the other tab's id`).not.toContain(other[0]);
    }
    // Each tab marks its own NFT as new in the account's list (once the list has both).
    for (const [tab, own] of [[page, ownA], [second, ownB]] as const) {
      await until(
        () => tab.locator('[data-testid=nft].new .nft-art').allInnerTexts(),
        (marked) => marked.length === 1 && marked[0] === `#${own[0]}`,
        15_000,
        `the new NFT marked in ${tab === page ? 'tab A' : 'tab B'}`,
      );
    }
    // Revoked in tab A: tab B shows it within seconds, not at its 15 s refresh.
    const card = await sessionCard();
    await card.getByTestId('revoke').click();
    await until(() => card.getByTestId('session-status').innerText(), (t) => /revoked/i.test(t), 30_000, 'tab A revoked');
    await until(async () => (await sessionCard(second)).getByTestId('session-status').innerText(), (t) => /revoked/i.test(t), 5_000, 'tab B revoked');
  });

  step('a tab that missed a revoke checks the chain before asking for a signature: "Already revoked"', undefined, async () => {
    await page.getByTestId('review').click();
    await page.getByTestId('approve').click();
    await untilText('mint-status', (t) => /^active$/i.test(t), 'another session');
    const card = await sessionCard();
    const id = (await card.getAttribute('data-session-id')) as Hex;
    await untilText('mint-status', (t) => /^active$/i.test(t), 'tab B sees it', 5_000, second);
    // Revoked elsewhere (another app, the CLI): no tab hears of it.
    const api = (path: string, body?: unknown) =>
      fetch(new URL(path, service!.info.url), {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, json: (await r.json()) as Record<string, unknown> }));
    const stopped = await api(`/v1/sessions/${id}/revoke`);
    const typed = (stopped.json.onchain as { typed_data: { domain: never; types: Record<string, never>; primaryType: string; message: never } }).typed_data;
    const { EIP712Domain: _d, ...types } = typed.types;
    const signature = await wallet.account.signTypedData({ domain: typed.domain, types, primaryType: typed.primaryType, message: typed.message } as never);
    const onchain = await api(`/v1/sessions/${id}/revoke/onchain`, { signature });
    expect(onchain.status, JSON.stringify(onchain.json)).toBe(200);
    const signing = wallet.count('signing');
    const stale = second.locator(`[data-session-id="${id}"]`);
    if ((await stale.getByTestId('revoke').count()) > 0) {
      await stale.getByTestId('revoke').click();
      await until(() => stale.getByTestId('revoke-note').innerText().catch(() => ''), (t) => t.includes('Already revoked'), 15_000, 'Already revoked');
    }
    await until(() => stale.getByTestId('session-status').innerText(), (t) => /revoked/i.test(t), 15_000, 'tab B revoked');
    expect(wallet.count('signing') - signing, 'signatures asked for').toBe(0);
    await second.screenshot({ path: join(screenshotDir, 'state-already-revoked.png'), fullPage: true });
    await second.close();
  });

  step('the wallet switches account, then network and back: the page follows', 'wallet-switch', async () => {
    const before = await text('account-address');
    const next = await wallet.switchAccount(page);
    await untilText('owner', (t) => t.toLowerCase() === next.toLowerCase(), 'the new owner in the header');
    await untilText('account-address', (t) => /0x[0-9a-fA-F]{40}/.test(t) && t !== before, 'the new smart account');
    expect(await page.getByTestId('session').count(), "the previous owner's sessions").toBe(0);
    await wallet.switchChain(page, 1);
    await untilText('service-banner', (t) => t.includes('another network'), 'the wrong-network banner', 5_000);
    await page.screenshot({ path: join(screenshotDir, 'state-wrong-network.png'), fullPage: true });
    await wallet.switchChain(page, service!.info.chain_id);
    await until(() => page.getByTestId('service-banner').isHidden(), (hidden) => hidden, 5_000, 'the banner gone');
  });

  step('on a phone, approving scrolls to Mint and focuses it; every target is at least 24 px', 'phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByTestId('preset-mint').click();
    await page.getByTestId('review').click();
    await page.getByTestId('approve').click();
    await untilText('mint-status', (t) => /^active$/i.test(t), 'the session');
    await until(() => focused(), (f) => f === 'mint', 10_000, 'focus on Mint');
    const box = await page.getByTestId('mint').boundingBox();
    expect(box, 'Mint on screen').not.toBeNull();
    expect(box!.y, 'Mint below the top').toBeGreaterThanOrEqual(0);
    expect(box!.y + box!.height, 'Mint above the bottom').toBeLessThanOrEqual(844);
    const small = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLElement>('button, input, select, summary, a[href]')]
        .filter((el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden')
        .map((el) => ({ el, r: el.getBoundingClientRect() }))
        .filter(({ r }) => r.left >= 0 && (r.height < 24 || r.width < 24))
        .map(({ el, r }) => `${el.tagName} ${el.dataset.testid ?? el.textContent?.trim().slice(0, 20)} ${r.width}×${r.height}`),
    );
    expect(small, 'targets smaller than 24 px').toEqual([]);
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(scrollWidth).toBeLessThanOrEqual(390);
  });

  step(
    'the service stops: a banner at once, actions paused, never described as a partial success',
    'service-gone',
    async () => {
      await page.setViewportSize({ width: 1280, height: 900 });
      await service!.stop();
      serviceStopped = true;
      await untilText('service-banner', (t) => t.includes('not reachable'), 'the connection banner, without any action', 8_000);
      expect(await page.getByTestId('mint').isDisabled(), 'Mint paused').toBe(true);
      expect(await (await sessionCard()).getByTestId('revoke').isDisabled(), 'Revoke paused').toBe(true);
      expect(await page.locator('body').innerText()).not.toContain('Stopped in the service');
    },
    /ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET/,
  );
});
