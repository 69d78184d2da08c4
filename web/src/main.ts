// Valet's dApp: connect a wallet, grant a session with one signature, mint through it with no
// further prompt, watch what is left, revoke.

import './style.css';
import { parseUnits, toFunctionSelector } from 'viem';
import {
  Api,
  loadConfig,
  type AccountInfo,
  type AuditEvent,
  type CallRequest,
  type Config,
  type Execution,
  type Proposal,
  type SessionInfo,
  type Sponsorship,
  type TokenHolding,
} from './api';
import { h, replace } from './dom';
import { errorText, executionFeeText, sponsorshipText } from './fees';
import { duration, expiry, short, units, usesLeft } from './format';
import {
  ACCOUNT_FEES,
  EMPTY_CUSTOM,
  PRESETS,
  customSpec,
  defaultFeePayer,
  feeBudgetText,
  feesText,
  mintSpec,
  paymentSpec,
  voteSpec,
  type Comparison,
  type CustomForm,
  type FeePayer,
  type PresetId,
  type Spec,
} from './presets';
import { connectInjected, developmentWallet, type Wallet } from './wallet';

const MINT_FUNCTION = 'mint(address to, uint256 quantity)';
const MINT_SELECTOR = toFunctionSelector('mint(address,uint256)');
const TRANSFER_FUNCTION = 'transfer(address to, uint256 amount)';
const TRANSFER_SELECTOR = toFunctionSelector('transfer(address,uint256)');
const VOTE_FUNCTION = 'castVote(uint256 proposalId, uint8 support)';
const VOTE_SELECTOR = toFunctionSelector('castVote(uint256,uint8)');

/// What an action (the Mint panel, a session card's Pay or Vote form) is doing.
interface ActionState {
  busy: boolean;
  result: Execution | null;
  error: string | null;
  /// The form's fields by name.
  fields: Record<string, string>;
}

/// The Mint panel's action, and the ids the account held when it started (what is new after it
/// is derived from them).
interface MintState extends ActionState {
  heldBefore: Set<string>;
}

interface State {
  config: Config | null;
  api: Api | null;
  wallet: Wallet | null;
  connecting: boolean;
  account: AccountInfo | null;
  sessions: SessionInfo[];
  events: AuditEvent[];
  preset: PresetId;
  payee: string;
  perDay: string;
  custom: CustomForm;
  /// Who pays the network fees of the session being drafted (a choice only when the app has a
  /// paymaster; else the account).
  feePayer: FeePayer;
  proposal: Proposal | null;
  /// The fee rule of the spec the proposal was made from (what its summary's fee line says).
  proposalFees: Spec['fees'] | null;
  proposing: boolean;
  approving: boolean;
  grantError: string | null;
  granted: string | null;
  mint: MintState;
  revoking: Set<string>;
  actions: Map<string, ActionState>;
  revokeNotes: Map<string, { error: boolean; text: string }>;
  /// Chain time minus local time (seconds), from the last session read.
  clockOffset: number;
  /// The app's sponsorship today, when it has a paymaster; `sponsorshipError` when unreadable.
  sponsorship: Sponsorship | null;
  sponsorshipError: string | null;
}

const state: State = {
  config: null,
  api: null,
  wallet: null,
  connecting: false,
  account: null,
  sessions: [],
  events: [],
  preset: 'mint',
  payee: '',
  perDay: '10',
  custom: structuredClone(EMPTY_CUSTOM),
  feePayer: 'account',
  proposal: null,
  proposalFees: null,
  proposing: false,
  approving: false,
  grantError: null,
  granted: null,
  mint: { busy: false, result: null, error: null, fields: { quantity: '1' }, heldBefore: new Set() },
  revoking: new Set(),
  actions: new Map(),
  revokeNotes: new Map(),
  clockOffset: 0,
  sponsorship: null,
  sponsorshipError: null,
};

const $ = (id: string) => document.getElementById(id) as HTMLElement;

function message(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

function showBanner(text: string | null): void {
  const banner = $('banner');
  banner.hidden = text === null;
  banner.textContent = text ?? '';
}

function chainNow(): number {
  return Math.floor(Date.now() / 1000) + state.clockOffset;
}

// ------------------------------------------------------------------ data

async function refresh(): Promise<void> {
  const { api, wallet } = state;
  if (!api || !wallet) return;
  try {
    const account = await api.account(wallet.address);
    const [sessions, audit] = await Promise.all([
      api.sessions(account.address),
      api.audit(account.address),
      readSponsorship(api),
    ]);
    state.account = account;
    state.sessions = sessions.sessions.sort((a, b) => b.chain.valid_after - a.chain.valid_after);
    state.events = audit.events;
    const first = state.sessions[0];
    // The chain's clock is its last block's: behind the wall clock while a devnet idles (the next
    // block takes the wall clock), ahead after time travel. Only the latter moves expiry.
    if (first) state.clockOffset = Math.max(0, first.chain.now - Math.floor(Date.now() / 1000));
    showBanner(null);
  } catch (e) {
    showBanner(`Could not read the account: ${message(e)}`);
  }
  renderAll();
}

/// What is left of the app's sponsorship today (only when it has a paymaster). Not knowing it
/// stops nothing: the service refuses what the budget cannot pay, and says so.
async function readSponsorship(api: Api): Promise<void> {
  if (!state.config?.paymaster) return;
  try {
    state.sponsorship = await api.sponsorship();
    state.sponsorshipError = null;
  } catch (e) {
    state.sponsorshipError = message(e);
  }
}

function nft(): [string, TokenHolding] | undefined {
  return Object.entries(state.account?.tokens ?? {}).find(([, t]) => t.kind === 'erc721');
}

/// The ids of the collection the account holds.
function heldIds(): string[] {
  return nft()?.[1].token_ids ?? [];
}

/// The ids the last mint added.
function newlyMinted(): string[] {
  return state.mint.result ? heldIds().filter((id) => !state.mint.heldBefore.has(id)) : [];
}

function token(): [string, TokenHolding] | undefined {
  return Object.entries(state.account?.tokens ?? {}).find(([, t]) => t.kind === 'erc20');
}

function tokenByAddress(address: string): TokenHolding | undefined {
  return Object.values(state.account?.tokens ?? {}).find((t) => t.address.toLowerCase() === address.toLowerCase());
}

/// The session the Mint button uses: the newest usable NFT minting session, else the newest one
/// granted (so a revoked or spent session says why it refuses).
function mintSession(): SessionInfo | undefined {
  const collection = state.config?.contracts.ValetNFT?.toLowerCase();
  const minting = state.sessions.filter(
    (s) =>
      s.status !== 'proposed' &&
      s.chain.permissions.some((p) => p.selector === MINT_SELECTOR && p.target.toLowerCase() === collection),
  );
  return minting.find((s) => s.usable) ?? minting[0];
}

// ------------------------------------------------------------------ actions

async function connect(kind: 'injected' | 'development'): Promise<void> {
  const { config } = state;
  if (!config) return;
  state.connecting = true;
  renderWallet();
  try {
    if (kind === 'injected') {
      if (!window.ethereum) throw new Error('no wallet in this browser');
      state.wallet = await connectInjected(window.ethereum, config.chain_id);
    } else {
      if (!config.dev_wallet) throw new Error('this service offers no development wallet');
      state.wallet = developmentWallet(config.dev_wallet.private_key, config.dev_wallet.label);
    }
    state.api = new Api(config.api_key);
    const account = await state.api.account(state.wallet.address);
    // With a sponsor paying the fees the account needs no ETH, and gets none: only the demo
    // tokens it pays with.
    if (config.faucet) await state.api.fund(account.address, !config.paymaster);
    await refresh();
  } catch (e) {
    state.wallet = null;
    showBanner(`Could not connect: ${message(e)}`);
  } finally {
    state.connecting = false;
    renderAll();
  }
}

function specForPreset(): Spec {
  switch (state.preset) {
    case 'mint':
      return mintSpec(state.feePayer);
    case 'payment':
      return paymentSpec(state.payee, state.perDay, state.feePayer);
    case 'vote':
      return voteSpec(state.feePayer);
    case 'custom':
      return customSpec(state.custom, state.feePayer);
  }
}

async function review(): Promise<void> {
  const { api, wallet } = state;
  if (!api || !wallet) return;
  state.grantError = null;
  state.granted = null;
  state.proposal = null;
  state.proposalFees = null;
  try {
    const spec = specForPreset();
    state.proposing = true;
    renderGrant();
    state.proposal = await api.propose(wallet.address, spec);
    state.proposalFees = spec.fees;
  } catch (e) {
    state.grantError = message(e);
  } finally {
    state.proposing = false;
    renderGrant();
    $('grant').querySelector<HTMLElement>(state.proposal ? '[data-testid=approve]' : '[data-testid=grant-error]')?.focus();
  }
}

async function approve(): Promise<void> {
  const { api, wallet, proposal } = state;
  if (!api || !wallet || !proposal) return;
  state.approving = true;
  state.grantError = null;
  renderGrant();
  try {
    const signature = await wallet.signTypedData(proposal.typed_data);
    await api.grant(proposal.session_id, signature);
    state.granted = `Granted session ${short(proposal.session_id)}. Actions within its limits need no further signature.`;
    state.proposal = null;
    state.mint.error = null;
    state.mint.result = null;
    await refresh();
  } catch (e) {
    state.grantError = message(e);
  } finally {
    state.approving = false;
    renderAll();
  }
}

async function mint(): Promise<void> {
  const { account } = state;
  const session = mintSession();
  if (!account || !session) return;
  const m = state.mint;
  m.heldBefore = new Set(heldIds());
  await act(
    session,
    m,
    () => {
      const quantity = (m.fields.quantity ?? '').trim();
      if (!/^\d+$/.test(quantity) || Number(quantity) < 1) {
        throw new Error(`quantity \`${quantity}\` is not a whole number of at least 1`);
      }
      return [{ to: 'ValetNFT', function: MINT_FUNCTION, args: [account.address, quantity] }];
    },
    renderMint,
  );
}

function actionOf(id: string, defaults: Record<string, string>): ActionState {
  let action = state.actions.get(id);
  if (!action) {
    action = { busy: false, result: null, error: null, fields: { ...defaults } };
    state.actions.set(id, action);
  }
  return action;
}

/// Runs calls through `session` for `action` (the Mint panel, or a card's Pay or Vote form):
/// `build` turns its fields into calls, or throws naming the bad one; `show` renders its section
/// while it runs. No wallet is involved: the service signs with the session key.
async function act(
  session: SessionInfo,
  action: ActionState,
  build: () => CallRequest[],
  show: () => void,
): Promise<void> {
  const { api } = state;
  if (!api || action.busy) return;
  action.result = null;
  action.error = null;
  let calls: CallRequest[];
  try {
    calls = build();
  } catch (e) {
    action.error = message(e);
    show();
    return;
  }
  action.busy = true;
  show();
  try {
    action.result = await api.execute(session.session_id, calls, crypto.randomUUID());
  } catch (e) {
    action.error = errorText(e);
  } finally {
    action.busy = false;
    await refresh();
  }
}

async function revoke(session: SessionInfo): Promise<void> {
  const { api, wallet } = state;
  if (!api || !wallet || state.revoking.has(session.session_id)) return;
  const id = session.session_id;
  state.revoking.add(id);
  state.revokeNotes.delete(id);
  renderSessions();
  try {
    // The service stops using the key at once; the owner's signature then revokes it on chain.
    const stopped = await api.revoke(id);
    await refresh();
    const signature = await wallet.signTypedData(stopped.onchain.typed_data);
    const onchain = await api.revokeOnchain(id, signature);
    const text =
      onchain.onchain === 'included' && onchain.transaction_hash
        ? `Revoked on chain in transaction ${onchain.transaction_hash}.`
        : `${onchain.message.charAt(0).toUpperCase()}${onchain.message.slice(1)}.`;
    state.revokeNotes.set(id, { error: false, text });
  } catch (e) {
    state.revokeNotes.set(id, {
      error: true,
      text: `Stopped in the service, but not revoked on chain: ${message(e)}`,
    });
  } finally {
    state.revoking.delete(id);
    await refresh();
  }
}

// ------------------------------------------------------------------ rendering

function renderAll(): void {
  renderWallet();
  renderAccount();
  renderGrant();
  renderMint();
  renderSessions();
  renderActivity();
}

function renderWallet(): void {
  const { config, wallet } = state;
  const el = $('wallet');
  if (!config) {
    replace(el);
    return;
  }
  if (wallet) {
    replace(
      el,
      h('span', { class: `pill ${wallet.kind}`, testid: 'wallet-kind' }, wallet.label),
      h('span', { class: 'owner' }, 'Owner ', h('code', { testid: 'owner', title: wallet.address }, wallet.address)),
    );
    return;
  }
  const buttons = [];
  if (window.ethereum) {
    buttons.push(
      h(
        'button',
        { class: 'primary', testid: 'connect', onclick: () => connect('injected'), disabled: state.connecting },
        state.connecting ? 'Connecting…' : 'Connect wallet',
      ),
    );
  } else if (config.dev_wallet) {
    buttons.push(
      h(
        'button',
        { class: 'primary', testid: 'connect-dev', onclick: () => connect('development'), disabled: state.connecting },
        state.connecting ? 'Connecting…' : 'Use the development wallet',
      ),
      h(
        'p',
        { class: 'hint' },
        `No wallet found in this browser. On this devnet you may use a development wallet: ${config.dev_wallet.label}.`,
      ),
    );
  } else {
    buttons.push(h('p', { class: 'hint' }, 'No wallet found in this browser: install one to continue.'));
  }
  replace(el, ...buttons);
}

function renderAccount(): void {
  const { account, config } = state;
  const title = h('h2', { id: 'account-title' }, 'Your smart account');
  if (!account) {
    replace(
      $('account'),
      title,
      h(
        'p',
        { class: 'hint' },
        config
          ? `Connect a wallet: it owns a smart account on chain ${config.chain_id}, made on first use.`
          : 'Loading…',
      ),
    );
    return;
  }
  const collection = nft();
  const erc20 = token();
  const ids = heldIds();
  const minted = newlyMinted();
  replace(
    $('account'),
    title,
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Address'),
      h('dd', {}, h('code', { testid: 'account-address' }, account.address)),
      h('dt', {}, 'On chain'),
      h(
        'dd',
        { testid: 'account-deployed' },
        account.deployed ? 'deployed' : 'not deployed yet — the first action deploys it',
      ),
      h('dt', {}, 'Balance'),
      h('dd', { testid: 'account-balance' }, `${units(account.balance_wei, 18)} ETH`),
      config?.paymaster && h('dt', {}, 'Fee sponsor'),
      config?.paymaster &&
        h(
          'dd',
          { testid: 'sponsorship' },
          state.sponsorship
            ? sponsorshipText(state.sponsorship)
            : `This app pays the network fees of sponsored sessions; what is left today is unknown${state.sponsorshipError ? `: ${state.sponsorshipError}` : ''}.`,
        ),
      erc20 && h('dt', {}, erc20[1].symbol),
      erc20 && h('dd', { testid: 'token-balance' }, `${units(erc20[1].balance, erc20[1].decimals ?? 18)} ${erc20[1].symbol}`),
      collection && h('dt', {}, `${collection[1].symbol} NFTs`),
      collection && h('dd', {}, h('span', { testid: 'nft-count' }, String(ids.length))),
    ),
    h(
      'ul',
      { class: 'nfts', testid: 'nft-list', 'aria-label': 'Your NFTs' },
      ids.map((id) =>
        h(
          'li',
          { class: minted.includes(id) ? 'nft new' : 'nft', testid: 'nft' },
          h('span', { class: 'nft-art', 'aria-hidden': 'true' }, `#${id}`),
          h('span', { class: 'nft-name' }, `${collection?.[1].symbol ?? 'NFT'} #${id}`),
        ),
      ),
    ),
    ids.length === 0 && h('p', { class: 'hint' }, 'No NFTs yet.'),
  );
}

function presetForm(): (Node | null)[] {
  switch (state.preset) {
    case 'mint':
      return [feeChoice()];
    case 'vote':
      return [feeChoice()];
    case 'payment':
      return [
        h(
          'div',
          { class: 'fields' },
          field('Payee', 'payee', state.payee, (v) => (state.payee = v), { placeholder: '0x…', autocomplete: 'off' }),
          field('VLT per day at most', 'per-day', state.perDay, (v) => (state.perDay = v), { inputmode: 'decimal' }),
        ),
        feeChoice(),
      ];
    case 'custom':
      return [...customForm(), feeChoice()];
  }
}

/// Who pays the session's network fees. With no sponsor the account does, and only the custom
/// form asks how much of its ETH (the presets state their budgets); with one, the user chooses,
/// sponsored first.
function feeChoice(): Node | null {
  if (!state.config?.paymaster) return null;
  const option = (payer: FeePayer, ...text: (Node | string)[]) =>
    h(
      'label',
      { class: 'choice' },
      h('input', {
        type: 'radio',
        name: 'fee-payer',
        value: payer,
        testid: `fees-${payer}`,
        checked: state.feePayer === payer,
        onchange: () => {
          state.feePayer = payer;
          state.proposal = null;
          renderGrant();
        },
      }),
      h('span', {}, ...text),
    );
  const preset = state.preset === 'custom' ? null : ACCOUNT_FEES[state.preset];
  const custom = preset === null;
  return h(
    'fieldset',
    { class: 'fee-choice', testid: 'fee-choice' },
    h('legend', {}, 'Network fees'),
    option('sponsor', h('strong', {}, 'Paid by this app (sponsored)'), ': none of your ETH.'),
    option(
      'account',
      h('strong', {}, "From my account's ETH"),
      preset ? `, budget ${feeBudgetText(preset)}.` : ', with a budget:',
    ),
    custom && state.feePayer === 'account' && h('div', { class: 'fields' }, feeBudgetField('ETH for fees at most')),
  );
}

function field(
  label: string,
  id: string,
  value: string,
  set: (v: string) => void,
  extra: Record<string, string> = {},
): HTMLElement {
  return h(
    'label',
    { class: 'field', for: id },
    h('span', {}, label),
    h('input', {
      id,
      testid: id,
      value,
      oninput: (e: Event) => set((e.target as HTMLInputElement).value),
      ...extra,
    }),
  );
}

function feeBudgetField(label: string): HTMLElement {
  const form = state.custom;
  return field(label, 'custom-fee-budget', form.feeBudget, (v) => (form.feeBudget = v), { inputmode: 'decimal' });
}

function customForm(): Node[] {
  const form = state.custom;
  const names = Object.keys(state.config?.contracts ?? {});
  const ops: [Comparison, string][] = [
    ['eq', '='],
    ['ne', '≠'],
    ['lt', '<'],
    ['lte', '≤'],
    ['gt', '>'],
    ['gte', '≥'],
  ];
  const rules = form.rules.map((rule, i) =>
    h(
      'div',
      { class: 'rule' },
      h('input', {
        'aria-label': `Rule ${i + 1} argument`,
        testid: `rule-${i}-arg`,
        value: rule.arg,
        placeholder: 'argument',
        oninput: (e: Event) => (rule.arg = (e.target as HTMLInputElement).value),
      }),
      h(
        'select',
        {
          'aria-label': `Rule ${i + 1} comparison`,
          testid: `rule-${i}-op`,
          onchange: (e: Event) => (rule.op = (e.target as HTMLSelectElement).value as Comparison),
        },
        ops.map(([op, text]) => h('option', { value: op, selected: rule.op === op }, text)),
      ),
      h('input', {
        'aria-label': `Rule ${i + 1} value`,
        testid: `rule-${i}-value`,
        value: rule.value,
        placeholder: 'value, address or $account',
        oninput: (e: Event) => (rule.value = (e.target as HTMLInputElement).value),
      }),
      h(
        'button',
        {
          class: 'ghost',
          'aria-label': `Remove rule ${i + 1}`,
          onclick: () => {
            form.rules.splice(i, 1);
            renderGrant();
          },
        },
        '×',
      ),
    ),
  );
  return [
    h(
      'div',
      { class: 'fields' },
      field('Contract (address or name)', 'custom-target', form.target, (v) => (form.target = v), {
        list: 'known-names',
        autocomplete: 'off',
      }),
      h('datalist', { id: 'known-names' }, names.map((n) => h('option', { value: n }))),
      field('Function', 'custom-function', form.function, (v) => (form.function = v), {
        placeholder: 'name(type arg, …)',
        autocomplete: 'off',
      }),
      field('Calls allowed', 'custom-max-uses', form.maxUses, (v) => (form.maxUses = v), { inputmode: 'numeric' }),
      field('Valid for', 'custom-valid-for', form.validFor, (v) => (form.validFor = v), { placeholder: '30m, 1h, 7d' }),
      field('ETH per call at most', 'custom-value', form.valueLimit, (v) => (form.valueLimit = v), {
        placeholder: 'none',
        inputmode: 'decimal',
      }),
      // Without a sponsor the account pays its fees: how much of its ETH they may take.
      !state.config?.paymaster && feeBudgetField('Network fees: ETH budget'),
    ),
    h('fieldset', { class: 'rules' }, h('legend', {}, 'Rules on arguments'), rules,
      h('button', { class: 'ghost', testid: 'add-rule', onclick: () => {
        form.rules.push({ arg: '', op: 'eq', value: '' });
        renderGrant();
      } }, '+ Add a rule'),
    ),
    h(
      'fieldset',
      { class: 'fields' },
      h('legend', {}, 'Spending limit (optional)'),
      field('Token (empty for ETH)', 'custom-limit-token', form.limitToken, (v) => (form.limitToken = v), {
        list: 'known-names',
        autocomplete: 'off',
      }),
      field('Amount', 'custom-limit-amount', form.limitAmount, (v) => (form.limitAmount = v), { inputmode: 'decimal' }),
      field('Per period', 'custom-limit-period', form.limitPeriod, (v) => (form.limitPeriod = v), {
        placeholder: 'whole session, or 1d',
      }),
    ),
  ];
}

function renderGrant(): void {
  const { wallet, proposal } = state;
  const title = h('h2', { id: 'grant-title' }, 'Grant a session');
  if (!wallet) {
    replace($('grant'), title, h('p', { class: 'hint' }, 'Connect first.'));
    return;
  }
  const presets = h(
    'div',
    { class: 'presets', role: 'group', 'aria-label': 'What the session may do' },
    PRESETS.map((p) =>
      h(
        'button',
        {
          class: 'preset',
          testid: `preset-${p.id}`,
          'aria-pressed': String(state.preset === p.id),
          onclick: () => {
            state.preset = p.id;
            state.proposal = null;
            state.grantError = null;
            renderGrant();
          },
        },
        h('strong', {}, p.title),
        h('span', {}, p.blurb),
      ),
    ),
  );
  const busy = state.proposing || state.approving;
  const reviewing = proposal
    ? h(
        'div',
        { class: 'proposal', testid: 'grant-summary', 'aria-live': 'polite' },
        h('h3', {}, 'You are about to allow'),
        h('ul', {}, proposal.summary.map((line) => h('li', {}, line))),
        state.proposalFees && h('p', { class: 'who-pays', testid: 'grant-fees' }, feesText(state.proposalFees)),
        h(
          'p',
          { class: 'hint' },
          `The validator on chain enforces these limits. The service holds the session key ${short(proposal.session_key)} and acts only through it; `,
          proposal.account_deployed ? '' : 'your account is deployed with the first action; ',
          'approving asks your wallet for one EIP-712 signature.',
        ),
        h(
          'div',
          { class: 'actions' },
          h(
            'button',
            { class: 'primary', testid: 'approve', onclick: approve, disabled: busy },
            state.approving ? 'Waiting for your signature…' : 'Approve with one signature',
          ),
          h(
            'button',
            {
              class: 'ghost',
              testid: 'cancel',
              disabled: busy,
              onclick: () => {
                state.proposal = null;
                renderGrant();
              },
            },
            'Cancel',
          ),
        ),
      )
    : h(
        'div',
        { class: 'actions' },
        h(
          'button',
          { class: 'primary', testid: 'review', onclick: review, disabled: busy },
          state.proposing ? 'Preparing…' : 'Review what it allows',
        ),
      );
  replace(
    $('grant'),
    title,
    presets,
    presetForm(),
    reviewing,
    state.grantError && h('p', { class: 'error', role: 'alert', testid: 'grant-error', tabindex: '-1' }, state.grantError),
    state.granted && h('p', { class: 'ok', role: 'status', testid: 'granted' }, state.granted),
  );
}

function renderMint(): void {
  const title = h('h2', { id: 'mint-title' }, 'Mint');
  const session = mintSession();
  const { account, mint: m } = state;
  if (!account) {
    replace($('mint'), title, h('p', { class: 'hint' }, 'Connect first.'));
    return;
  }
  if (!session) {
    replace(
      $('mint'),
      title,
      h('p', { class: 'hint', testid: 'mint-none' }, 'Grant an NFT minting session first (the “Mint NFTs” preset).'),
    );
    return;
  }
  const permission = session.chain.permissions.find((p) => p.selector === MINT_SELECTOR);
  const uses = permission && permission.max_uses > 0 ? usesLeft(permission.uses ?? 0, permission.max_uses) : usesLeft(session.chain.uses, session.chain.max_uses);
  const result = m.result;
  const minted = newlyMinted();
  replace(
    $('mint'),
    title,
    h(
      'p',
      { class: 'session-line' },
      'Through session ',
      h('code', { title: session.session_id }, short(session.session_id)),
      ` (${session.status}) — no wallet prompt.`,
    ),
    !session.usable && session.reason && h('p', { class: 'hint', testid: 'mint-unusable' }, `Not usable now: ${session.reason}.`),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Uses'),
      h('dd', { testid: 'uses-left' }, uses),
      h('dt', {}, 'Time'),
      h(
        'dd',
        { testid: 'time-left', 'data-valid-until': String(session.chain.valid_until) },
        expiry(session.chain.valid_until, chainNow()),
      ),
    ),
    h(
      'form',
      {
        class: 'mint-form',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void mint();
        },
      },
      h(
        'label',
        { class: 'field small', for: 'mint-quantity' },
        h('span', {}, 'Quantity'),
        h('input', {
          id: 'mint-quantity',
          testid: 'mint-quantity',
          value: m.fields.quantity ?? '',
          inputmode: 'numeric',
          autocomplete: 'off',
          oninput: (e: Event) => (m.fields.quantity = (e.target as HTMLInputElement).value),
        }),
      ),
      h(
        'button',
        { class: 'primary', type: 'submit', testid: 'mint', disabled: m.busy },
        m.busy ? 'Minting…' : 'Mint',
      ),
    ),
    h(
      'div',
      { 'aria-live': 'polite' },
      m.busy &&
        h(
          'p',
          { class: 'progress', testid: 'mint-progress', role: 'status' },
          h('span', { class: 'spinner', 'aria-hidden': 'true' }),
          'The service signs with the session key, checks the call against the session, and waits for the transaction…',
        ),
      result &&
        h(
          'div',
          { class: 'ok', testid: 'mint-result', role: 'status' },
          h('p', {}, minted.length ? `Minted ${minted.map((id) => `#${id}`).join(', ')}: ` : 'Minted: ', result.status, '.'),
          feeNote(result, session, 'mint-fee'),
          h('p', { class: 'hashes' }, 'userOp ', h('code', {}, result.user_op_hash ?? '—')),
          h('p', { class: 'hashes' }, 'tx ', h('code', {}, result.transaction_hash ?? '—')),
        ),
    ),
    m.error && h('p', { class: 'error', role: 'alert', testid: 'mint-error' }, m.error),
  );
}

/// Who paid an included operation's fee, under its result.
function feeNote(result: Execution, session: SessionInfo, testid: string): HTMLElement | null {
  const text = executionFeeText(result, session.chain.fees);
  return text ? h('p', { class: 'fee', testid }, text) : null;
}

function limitLine(limit: SessionInfo['chain']['limits'][number]): string {
  const held = limit.kind === 'erc20' ? tokenByAddress(limit.token) : undefined;
  const decimals = limit.kind === 'erc20' ? (held?.decimals ?? 18) : 18;
  const symbol = limit.kind === 'erc20' ? (held?.symbol ?? short(limit.token)) : 'ETH';
  const per = limit.period_seconds ? ` per ${duration(limit.period_seconds)}` : ' in all';
  const what = limit.kind === 'fees' ? ' for fees' : '';
  return `${units(limit.left.toString(), decimals)} of ${units(limit.cap.toString(), decimals)} ${symbol}${what}${per} left`;
}

/// The fee rule in the card's words.
function feeLine(fees: SessionInfo['chain']['fees'], limits: SessionInfo['chain']['limits']): string {
  if (fees.mode === 'sponsored') return 'paid by a sponsor; none of your ETH';
  if (fees.mode === 'per_period') return limits.filter((l) => l.kind === 'fees').map(limitLine).join('; ');
  return `${units(fees.left.toString(), 18)} ETH of ${units(fees.budget.toString(), 18)} ETH left`;
}

function renderSessions(): void {
  const title = h('h2', { id: 'sessions-title' }, 'Sessions');
  if (!state.account) {
    replace($('sessions'), title, h('p', { class: 'hint' }, 'Connect first.'));
    return;
  }
  const shown = state.sessions.filter((s) => s.status !== 'proposed');
  if (shown.length === 0) {
    replace($('sessions'), title, h('p', { class: 'hint' }, 'No sessions yet.'));
    return;
  }
  const cards = shown.map((s) => {
    const revoking = state.revoking.has(s.session_id);
    const onChainRevoked = s.chain.state === 'revoked';
    const note = state.revokeNotes.get(s.session_id);
    const counted = s.chain.permissions.filter((p) => p.max_uses > 0);
    const uses = [
      s.chain.max_uses > 0 ? `session: ${usesLeft(s.chain.uses, s.chain.max_uses)}` : null,
      ...counted.map((p) => usesLeft(p.uses ?? 0, p.max_uses)),
    ].filter(Boolean);
    return h(
      'article',
      { class: `session ${s.status}`, testid: 'session', 'data-session-id': s.session_id },
      h(
        'header',
        {},
        h('h3', {}, s.summary[1] ?? 'Session'),
        h('span', { class: `badge ${s.status}`, testid: 'session-status' }, s.status),
      ),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Id'),
        h('dd', {}, h('code', { title: s.session_id }, short(s.session_id, 6))),
        h('dt', {}, 'Uses'),
        h('dd', { testid: 'session-uses' }, uses.length ? uses.join('; ') : 'not counted'),
        s.chain.limits.length > 0 && h('dt', {}, 'Budget'),
        s.chain.limits.length > 0 && h('dd', { testid: 'session-budget' }, s.chain.limits.map(limitLine).join('; ')),
        h('dt', {}, 'Fees'),
        h('dd', { testid: 'session-fees' }, feeLine(s.chain.fees, s.chain.limits)),
        h('dt', {}, 'Time'),
        h(
          'dd',
          { testid: 'session-expiry', 'data-valid-until': String(s.chain.valid_until) },
          expiry(s.chain.valid_until, chainNow()),
        ),
        h('dt', {}, 'On chain'),
        h(
          'dd',
          { testid: 'session-onchain' },
          {
            none: 'granted; enabled with its first use',
            enabled: 'enabled',
            revoked: 'revoked',
            voided: 'void: all sessions were revoked since',
            not_installed: 'the session validator is not installed',
          }[s.chain.state],
        ),
      ),
      !s.usable && s.reason && h('p', { class: 'hint' }, s.reason),
      h('details', {}, h('summary', {}, 'What it allows'), h('ul', {}, s.summary.map((line) => h('li', {}, line)))),
      s.status === 'active' && sessionAction(s),
      !onChainRevoked &&
        h(
          'button',
          {
            class: 'danger',
            testid: 'revoke',
            disabled: revoking,
            'aria-label': `Revoke session ${short(s.session_id)}`,
            onclick: () => revoke(s),
          },
          revoking ? 'Revoking…' : s.status === 'revoked' ? 'Revoke on chain too' : 'Revoke',
        ),
      note && h('p', { class: note.error ? 'error' : 'ok', role: note.error ? 'alert' : 'status' }, note.text),
    );
  });
  replace($('sessions'), title, h('div', { class: 'session-list' }, cards));
}

/// A form that uses the session for what it was granted for: pay (a transfer session) or vote.
function sessionAction(s: SessionInfo): HTMLElement | null {
  const contracts = state.config?.contracts ?? {};
  const on = (selector: string, name: string) =>
    s.chain.permissions.some(
      (p) => p.selector === selector && p.target.toLowerCase() === contracts[name]?.toLowerCase(),
    );
  const id = s.session_id;
  const input = (action: ActionState, name: string, label: string, extra: Record<string, string> = {}) =>
    h(
      'label',
      { class: 'field', for: `${name}-${id}` },
      h('span', {}, label),
      h('input', {
        id: `${name}-${id}`,
        testid: `action-${name}`,
        value: action.fields[name] ?? '',
        autocomplete: 'off',
        oninput: (e: Event) => (action.fields[name] = (e.target as HTMLInputElement).value),
        ...extra,
      }),
    );
  const outcome = (action: ActionState, verb: string) => [
    action.busy && h('p', { class: 'progress', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), `${verb}…`),
    action.result &&
      h(
        'div',
        { class: 'ok', role: 'status', testid: 'action-result' },
        h('p', {}, `${action.result.status}.`),
        feeNote(action.result, s, 'action-fee'),
        h('p', { class: 'hashes' }, 'userOp ', h('code', {}, action.result.user_op_hash ?? '—')),
        h('p', { class: 'hashes' }, 'tx ', h('code', {}, action.result.transaction_hash ?? '—')),
      ),
    action.error && h('p', { class: 'error', role: 'alert', testid: 'action-error' }, action.error),
  ];
  const form = (action: ActionState, run: () => CallRequest[], verb: string, ...fields: Node[]) =>
    h(
      'form',
      {
        class: 'action',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void act(s, action, run, renderSessions);
        },
      },
      h('div', { class: 'fields' }, fields),
      h('button', { class: 'primary', type: 'submit', testid: 'action-submit', disabled: action.busy }, verb),
      outcome(action, verb),
    );
  if (on(TRANSFER_SELECTOR, 'ValetToken')) {
    const vlt = token()?.[1];
    const action = actionOf(id, { payee: state.config?.demo_payee ?? '', amount: '1' });
    return form(
      action,
      () => {
        const payee = action.fields.payee?.trim() ?? '';
        if (!/^0x[0-9a-fA-F]{40}$/.test(payee)) throw new Error(`payee \`${payee}\` is not an address`);
        const amount = action.fields.amount?.trim() ?? '';
        if (!/^\d+(\.\d+)?$/.test(amount)) throw new Error(`amount \`${amount}\` is not a number of ${vlt?.symbol ?? 'tokens'}`);
        return [
          { to: 'ValetToken', function: TRANSFER_FUNCTION, args: [payee, parseUnits(amount, vlt?.decimals ?? 18).toString()] },
        ];
      },
      'Pay',
      input(action, 'payee', 'Payee'),
      input(action, 'amount', `Amount (${vlt?.symbol ?? 'tokens'})`, { inputmode: 'decimal' }),
    );
  }
  if (on(VOTE_SELECTOR, 'ValetDAO')) {
    const proposals = state.config?.dao_proposals ?? [];
    const action = actionOf(id, { proposal: String(proposals[0]?.id ?? 1), support: '1' });
    const select = (name: string, label: string, options: [string, string][]) =>
      h(
        'label',
        { class: 'field', for: `${name}-${id}` },
        h('span', {}, label),
        h(
          'select',
          {
            id: `${name}-${id}`,
            testid: `action-${name}`,
            onchange: (e: Event) => (action.fields[name] = (e.target as HTMLSelectElement).value),
          },
          options.map(([value, text]) => h('option', { value, selected: action.fields[name] === value }, text)),
        ),
      );
    return form(
      action,
      () => [{ to: 'ValetDAO', function: VOTE_FUNCTION, args: [action.fields.proposal ?? '', action.fields.support ?? ''] }],
      'Vote',
      select(
        'proposal',
        'Proposal',
        proposals.map((p) => [String(p.id), `#${p.id} ${p.title}`]),
      ),
      select('support', 'Vote', [
        ['1', 'For'],
        ['0', 'Against'],
        ['2', 'Abstain'],
      ]),
    );
  }
  return null;
}

function eventText(e: AuditEvent): string {
  const detail = (typeof e.detail === 'object' && e.detail) || {};
  const session = e.session_id ? ` ${short(e.session_id)}` : '';
  switch (e.event) {
    case 'session.proposed':
      return `Session${session} proposed`;
    case 'session.granted':
      return `Session${session} granted with the owner's signature`;
    case 'execution.included':
      return `Executed in session${session}: included${detail.paymaster ? '; network fee paid by the sponsor' : ''}`;
    case 'execution.refused':
      return `Refused before sending (session${session}): ${String(detail.reason ?? '')}`;
    case 'execution.failed':
    case 'execution.reverted':
      return `Execution ${e.event.split('.')[1]} (session${session}): ${String(detail.error ?? '')}`;
    case 'session.revoked':
      return `Session${session} stopped in the service`;
    case 'session.revoked_onchain':
      return `Session${session} revoked on chain`;
    case 'account.funded':
      return 'Funded by the devnet faucet (ETH for gas, demo tokens)';
    default:
      return `${e.event}${session}`;
  }
}

function renderActivity(): void {
  const title = h('h2', { id: 'activity-title' }, 'Activity');
  if (!state.account) {
    replace($('activity'), title, h('p', { class: 'hint' }, 'Connect first.'));
    return;
  }
  const events = [...state.events].reverse();
  replace(
    $('activity'),
    title,
    events.length === 0
      ? h('p', { class: 'hint' }, 'Nothing yet.')
      : h(
          'ol',
          { class: 'activity', reversed: true },
          events.map((e) => {
            const detail = (typeof e.detail === 'object' && e.detail) || {};
            const userOp = typeof detail.user_op_hash === 'string' ? detail.user_op_hash : null;
            const tx = typeof detail.transaction_hash === 'string' ? detail.transaction_hash : null;
            const txs = Array.isArray(detail.transactions) ? (detail.transactions as string[]) : [];
            return h(
              'li',
              { testid: 'activity-item', class: e.event.replace('.', '-') },
              h('time', {}, typeof e.at === 'number' ? new Date(e.at * 1000).toLocaleTimeString() : String(e.at)),
              h('span', { class: 'what' }, eventText(e)),
              userOp && h('span', { class: 'hashes' }, 'userOp ', h('code', {}, userOp)),
              tx && h('span', { class: 'hashes' }, 'tx ', h('code', {}, tx)),
              txs.map((t) => h('span', { class: 'hashes' }, 'tx ', h('code', {}, t))),
            );
          }),
        ),
  );
}

/// Every second: countdowns tick from the chain's clock (no re-render, so focus stays put).
function tick(): void {
  for (const el of document.querySelectorAll<HTMLElement>('[data-valid-until]')) {
    el.textContent = expiry(Number(el.dataset.validUntil), chainNow());
  }
}

async function start(): Promise<void> {
  try {
    state.config = await loadConfig();
    state.payee = state.config.demo_payee ?? '';
    state.feePayer = defaultFeePayer(state.config);
  } catch (e) {
    showBanner(message(e));
  }
  renderAll();
  setInterval(tick, 1000);
  // What is left changes on chain (other apps, schedules): read it again now and then.
  setInterval(() => {
    if (state.wallet && !state.mint.busy && state.revoking.size === 0 && !state.approving) void refresh();
  }, 15_000);
}

void start();

