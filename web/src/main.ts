// Valet's dApp: connect a wallet, grant a session with one signature, mint through it with no
// further prompt, watch what is left, revoke.

import './style.css';
import { type Address, type Hex, parseUnits, toFunctionSelector } from 'viem';
import {
  Api,
  ApiError,
  loadConfig,
  reachable,
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
import { type AccountKind, loadChoice, parseDelegation, saveChoice, signedBy } from './eip7702';
import { mintedIds } from './events';
import { errorText, executionFeeText, feeEstimateText, sponsorshipText } from './fees';
import { duration, eth, expiry, short, units, usesLeft } from './format';
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
import {
  type KeyMode,
  accountFromChain,
  grantMint,
  loadKeyMode,
  mintThrough,
  offersBrowserKeys,
  proposeMint,
  remainingLines,
  resumeNewest,
  saveKeyMode,
} from './browser-mode';
import { type BrowserSession, type Proposal as BrowserProposal, type Remaining, Refused } from './browser-keys';
import { sessionView, viewsKey, type SessionView } from './session-state';
import { quantityRange, serviceWords } from './validate';
import { connectInjected, developmentWallet, type Wallet } from './wallet';
import type { TypedData } from './api';

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
  /// How many the last mint asked for (what an included mint minted).
  quantity: number;
}

interface State {
  config: Config | null;
  api: Api | null;
  wallet: Wallet | null;
  connecting: boolean;
  /// Which account the sessions act for: a new smart account, or (a wallet that signs EIP-7702
  /// authorizations, a service that serves such accounts) the owner's own address.
  accountKind: AccountKind;
  /// Whether the page offers the choice ("use my address" vs "a new smart account").
  offer7702: boolean;
  /// The owner's smart account's address (what the choice names), once read.
  smartAddress: Address | null;
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
  /// Which of an approval's wallet prompts is open: the EIP-7702 authorization, then the grant.
  approvingStep: 'delegation' | 'grant' | null;
  /// Whether the proposal asks the owner to sign an EIP-7702 authorization besides the grant.
  proposalDelegates: boolean;
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
  /// The service did not answer (a failed /health or request); cleared when it answers again.
  serviceDown: boolean;
  /// The chain the injected wallet is on, when it is not the service's.
  wrongChain: number | null;
  /// What the devnet faucet gave on connecting, when it gave anything.
  funded: string | null;
  /// The session views last rendered (re-rendered when a session's state changes with time).
  viewsKey: string;
  /// Where the session keys live: with the service (its API) or in this browser (see
  /// browser-mode.ts: the page then talks to the chain and the bundler, never to `/v1`).
  keyMode: KeyMode;
  browser: BrowserState;
}

/// Keys in this browser: the proposal under review, the owner's newest session here and what it
/// has left, the Mint panel's and the card's messages.
interface BrowserState {
  proposal: BrowserProposal | null;
  session: BrowserSession | null;
  left: Remaining | null;
  minting: boolean;
  mintResult: string | null;
  mintError: string | null;
  revoking: boolean;
  revokeNote: { error: boolean; text: string } | null;
}

function emptyBrowser(): BrowserState {
  return { proposal: null, session: null, left: null, minting: false, mintResult: null, mintError: null, revoking: false, revokeNote: null };
}

const state: State = {
  config: null,
  api: null,
  wallet: null,
  connecting: false,
  accountKind: 'smart',
  offer7702: false,
  smartAddress: null,
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
  approvingStep: null,
  proposalDelegates: false,
  grantError: null,
  granted: null,
  mint: emptyMint(),
  revoking: new Set(),
  actions: new Map(),
  revokeNotes: new Map(),
  clockOffset: 0,
  sponsorship: null,
  sponsorshipError: null,
  serviceDown: false,
  wrongChain: null,
  funded: null,
  viewsKey: '',
  keyMode: 'service',
  browser: emptyBrowser(),
};

/// Tells the page's other tabs that something changed (a grant, a mint, a revoke): they read
/// the account again at once instead of at their next refresh.
const channel = typeof BroadcastChannel === 'undefined' ? null : new BroadcastChannel('valet');

function announce(): void {
  const address = state.wallet?.address;
  if (address) channel?.postMessage({ kind: 'changed', owner: address.toLowerCase() });
}

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

/// The connection banner: shown the moment the service stops answering, gone when it answers.
function showService(): void {
  const banner = $('service');
  banner.hidden = !state.serviceDown && state.wrongChain === null;
  banner.textContent = state.serviceDown
    ? 'The Valet service is not reachable. Nothing can be granted, minted or revoked until it is back; this page checks every few seconds.'
    : state.wrongChain !== null
      ? `Your wallet is on another network (chain id ${state.wrongChain}). Switch it back to this app's network (chain id ${state.config?.chain_id}) to approve or revoke.`
      : '';
}

function serviceAnswered(up: boolean): void {
  if (state.serviceDown === !up) return;
  state.serviceDown = !up;
  showService();
  renderAll();
  if (up) void refresh();
}

/// Whether an error means the service did not answer; marks it down at once if so.
function unreachable(e: unknown): boolean {
  const down = e instanceof ApiError && e.code === 'unreachable';
  if (down) serviceAnswered(false);
  return down;
}

/// An error from the service in the page's words.
function said(e: unknown): string {
  if (e instanceof ApiError && e.code === 'unreachable') return 'the Valet service is not reachable; nothing was done';
  return serviceWords(errorText(e));
}

/// The view of `s` now.
function viewOf(s: SessionInfo): SessionView {
  return sessionView(s, chainNow());
}

function chainNow(): number {
  return Math.floor(Date.now() / 1000) + state.clockOffset;
}

// ------------------------------------------------------------------ data

async function refresh(): Promise<void> {
  const { api, wallet, accountKind } = state;
  if (!api || !wallet) return;
  if (state.keyMode === 'browser') return refreshBrowser();
  try {
    const account = await api.account(wallet.address, accountKind);
    const [sessions, audit] = await Promise.all([
      api.sessions(account.address),
      api.audit(account.address),
      readSponsorship(api),
    ]);
    // The wallet changed account (or the owner chose the other account) meanwhile: this answer
    // is of another account.
    if (state.wallet !== wallet || state.accountKind !== accountKind) return;
    state.account = account;
    state.sessions = sessions.sessions.sort((a, b) => b.chain.valid_after - a.chain.valid_after);
    state.events = audit.events;
    const first = state.sessions[0];
    // The chain's clock is its last block's: behind the wall clock while a devnet idles (the next
    // block takes the wall clock), ahead after time travel. Only the latter moves expiry.
    if (first) state.clockOffset = Math.max(0, first.chain.now - Math.floor(Date.now() / 1000));
    showBanner(null);
    serviceAnswered(true);
  } catch (e) {
    if (!unreachable(e)) showBanner(`Could not read the account: ${said(e)}`);
  }
  forgetEnded();
  renderAll();
}

/// Messages about a session that has ended (revoked, expired, not installed) are no longer true:
/// "Granted …", the last mint's result and refusal go. (A session whose last use was just spent
/// keeps that use's result: it is still news.)
function ended(s: SessionInfo): boolean {
  return ['revoked', 'expired', 'not-installed'].includes(viewOf(s).badge);
}

function forgetEnded(): void {
  const session = mintSession();
  if (session && ended(session) && !state.mint.busy) {
    state.mint.result = null;
    state.mint.error = null;
    state.granted = null;
  }
  for (const s of state.sessions) {
    const action = state.actions.get(s.session_id);
    if (action && !action.busy && ended(s)) {
      action.result = null;
      action.error = null;
    }
  }
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

/// The ids this tab's last mint minted: from its own operation's Transfer events when the
/// service answered them. Else (an older service) the ids that appeared since it started, if
/// they are exactly as many as it minted (else another tab or app minted too, and none is named).
function newlyMinted(): string[] {
  const m = state.mint;
  const collection = state.config?.contracts.ValetNFT;
  if (m.result?.status !== 'included') return [];
  if (m.result.events && collection && state.account) {
    return mintedIds(m.result.events, collection, state.account.address);
  }
  const appeared = heldIds().filter((id) => !m.heldBefore.has(id));
  return appeared.length === m.quantity ? appeared : [];
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
  return minting.find((s) => viewOf(s).usable) ?? minting[0];
}

// ------------------------------------------------------------------ actions

/// Where the page remembers how it was connected, to connect again on reload.
const CONNECTED_KEY = 'valet.connected';

/// Connects `kind`. `silent` (on reload): an injected wallet is only asked which account it
/// already shares (no prompt); none means not connected.
async function connect(kind: 'injected' | 'development', silent = false): Promise<void> {
  const { config } = state;
  if (!config) return;
  state.connecting = true;
  renderWallet();
  try {
    if (kind === 'injected') {
      if (!window.ethereum) throw new Error('no wallet in this browser');
      if (silent) {
        const shared = (await window.ethereum.request({ method: 'eth_accounts' })) as string[] | undefined;
        if (!Array.isArray(shared) || shared.length === 0) return;
      }
      state.wallet = await connectInjected(window.ethereum, config.chain_id);
    } else {
      if (!config.dev_wallet) throw new Error('this service offers no development wallet');
      state.wallet = developmentWallet(config.dev_wallet.private_key, config.dev_wallet.label);
    }
    localStorage.setItem(CONNECTED_KEY, kind);
    state.wrongChain = null;
    showService();
    state.api = new Api(config.api_key);
    const owner = state.wallet.address;
    state.keyMode = offersBrowserKeys(config) ? loadKeyMode(storage(), owner) : 'service';
    if (state.keyMode === 'browser') {
      // Keys in this browser: the session and the account from here and the chain, no `/v1`.
      state.accountKind = 'smart';
      state.offer7702 = false;
      state.browser = emptyBrowser();
      state.browser.session = await resumeNewest(config, storage(), owner);
      await refresh();
      return;
    }
    state.smartAddress = (await state.api.account(owner)).address;
    // "Use my address" is offered when the wallet says it signs EIP-7702 authorizations and the
    // service serves such accounts; the owner's last choice holds (else a new smart account).
    state.offer7702 = !!state.wallet.signAuthorization && (await serves7702(state.api, owner));
    state.accountKind = loadChoice(storage(), owner, state.offer7702);
    await fundAccount(state.api, config);
    await refresh();
  } catch (e) {
    state.wallet = null;
    localStorage.removeItem(CONNECTED_KEY);
    if (!unreachable(e)) showBanner(`Could not connect: ${said(e)}`);
  } finally {
    state.connecting = false;
    renderAll();
    // The next step: choosing what to allow.
    if (state.wallet && !silent) focus('[data-testid=review]', $('grant'));
  }
}

/// The page's localStorage, when it has one.
function storage(): Storage | undefined {
  try {
    return typeof localStorage === 'undefined' ? undefined : localStorage;
  } catch {
    return undefined;
  }
}

/// Whether the service serves EIP-7702 accounts (an older one refuses the `kind` query).
async function serves7702(api: Api, owner: Address): Promise<boolean> {
  try {
    const account = await api.account(owner, 'eip7702');
    return account.address.toLowerCase() === owner.toLowerCase();
  } catch (e) {
    if (e instanceof ApiError && e.status >= 400 && e.status < 500) return false;
    throw e;
  }
}

/// The devnet faucet, for the account the owner chose. With a sponsor paying the fees the
/// account needs no ETH, and gets none: only the demo tokens it pays with. The faucet tops up
/// what is below its amounts, and the page says so.
async function fundAccount(api: Api, config: Config): Promise<void> {
  const { wallet } = state;
  if (!config.faucet || !wallet) return;
  const address = state.accountKind === 'eip7702' ? wallet.address : state.smartAddress;
  if (!address) return;
  const funded = await api.fund(address, !sponsorOffered());
  state.funded = funded.funded
    ? sponsorOffered()
      ? 'The test network’s faucet gave this account demo tokens.'
      : `The test network’s faucet topped this account up to ${units(funded.balance_wei, 18)} ETH for network fees, and gave it demo tokens.`
    : null;
}

/// Whether the app's sponsor may pay the fees of the account shown: it has a paymaster, and the
/// account is a smart one (the service's paymaster serves EntryPoint v0.7; an EIP-7702 account,
/// on v0.8, pays its own fees from the address's ETH).
function sponsorOffered(): boolean {
  return !!state.config?.paymaster && state.accountKind !== 'eip7702' && state.keyMode !== 'browser';
}

/// Who pays the fees of the session being drafted: the choice, where there is one.
function feePayer(): FeePayer {
  return sponsorOffered() ? state.feePayer : 'account';
}

/// The owner chose the account its sessions act for: remembered for this owner; what the page
/// showed of the other account goes (its sessions, a proposal made for it, results).
async function chooseAccount(kind: AccountKind): Promise<void> {
  const { api, config, wallet } = state;
  if (!api || !config || !wallet || kind === state.accountKind || !state.offer7702) return;
  if (state.proposing || state.approving || state.mint.busy) return;
  saveChoice(storage(), wallet.address, kind);
  state.accountKind = kind;
  forgetShown();
  renderAll();
  try {
    await fundAccount(api, config);
  } catch (e) {
    if (!unreachable(e)) showBanner(`Could not fund the account: ${said(e)}`);
  }
  await refresh();
  focus(`[data-testid=account-kind-${kind}]`, $('account'));
}

/// Moves keyboard focus to `selector` (in `within`), on purpose after an action, so that it
/// never drops to the page's body; also scrolls it into view (on a phone, the next step).
function focus(selector: string, within: ParentNode = document): boolean {
  const el = within.querySelector<HTMLElement>(selector);
  if (!el) return false;
  el.focus({ preventScroll: true });
  el.scrollIntoView({ block: 'center', behavior: 'instant' as ScrollBehavior });
  return document.activeElement === el;
}

/// Everything the page knew of the previous owner goes: a new account is a new page.
function forgetOwner(): void {
  state.browser = emptyBrowser();
  state.keyMode = 'service';
  state.account = null;
  state.accountKind = 'smart';
  state.offer7702 = false;
  state.smartAddress = null;
  state.sessions = [];
  state.events = [];
  forgetShown();
}

/// What the page showed of the account it acted for goes: a proposal made for it, results,
/// notes (another owner, or the owner chose the other account).
function forgetShown(): void {
  state.proposal = null;
  state.proposalFees = null;
  state.proposalDelegates = false;
  state.grantError = null;
  state.granted = null;
  state.funded = null;
  state.mint = emptyMint();
  state.actions.clear();
  state.revokeNotes.clear();
}

/// The mint panel before anything was minted.
function emptyMint(): MintState {
  return { busy: false, result: null, error: null, fields: { quantity: '1' }, heldBefore: new Set(), quantity: 0 };
}

/// The injected wallet's events: another account (or none), another network.
function followWallet(): void {
  const provider = window.ethereum;
  if (!provider?.on) return;
  provider.on('accountsChanged', (accounts: unknown) => {
    if (state.wallet?.kind !== 'injected') return;
    const next = Array.isArray(accounts) ? (accounts[0] as string | undefined) : undefined;
    if (next?.toLowerCase() === state.wallet.address.toLowerCase()) return;
    forgetOwner();
    if (!next) {
      state.wallet = null;
      localStorage.removeItem(CONNECTED_KEY);
      showBanner('Your wallet disconnected from this page. Connect again to continue.');
      renderAll();
      focus('[data-testid=connect]');
      return;
    }
    showBanner(null);
    renderAll();
    void connect('injected', true);
  });
  provider.on('chainChanged', (chain: unknown) => {
    const id = typeof chain === 'string' ? Number.parseInt(chain, 16) : Number(chain);
    state.wrongChain = state.config && id !== state.config.chain_id ? id : null;
    showService();
    renderAll();
    if (state.wrongChain === null && state.wallet) void refresh();
  });
}

function specForPreset(): Spec {
  switch (state.preset) {
    case 'mint':
      return mintSpec(feePayer());
    case 'payment':
      return paymentSpec(state.payee, state.perDay, feePayer());
    case 'vote':
      return voteSpec(feePayer());
    case 'custom':
      return customSpec(state.custom, feePayer());
  }
}

async function review(): Promise<void> {
  const { api, wallet } = state;
  if (!api || !wallet || state.proposing) return;
  state.grantError = null;
  state.granted = null;
  state.proposal = null;
  state.proposalFees = null;
  try {
    const spec = specForPreset();
    state.proposing = true;
    renderGrant();
    const kind = state.accountKind;
    const proposal = await api.propose(wallet.address, spec, {}, kind);
    // Checked now, before any prompt: a delegation the page cannot name is never signed.
    state.proposalDelegates = proposal.delegation != null;
    if (proposal.delegation != null) parseDelegation(proposal.delegation, state.config?.chain_id ?? -1);
    state.proposal = proposal;
    state.proposalFees = spec.fees;
  } catch (e) {
    unreachable(e);
    state.grantError = e instanceof ApiError ? said(e) : message(e);
  } finally {
    state.proposing = false;
    renderGrant();
    focus(state.proposal ? '[data-testid=approve]' : '[data-testid=grant-error]', $('grant'));
  }
}

async function approve(): Promise<void> {
  const { api, wallet, proposal } = state;
  if (!api || !wallet || !proposal || state.approving) return;
  if (state.wrongChain !== null) {
    state.grantError = `Your wallet is on another network (chain id ${state.wrongChain}): switch it back, then approve.`;
    renderGrant();
    focus('[data-testid=grant-error]', $('grant'));
    return;
  }
  state.approving = true;
  state.grantError = null;
  renderAll();
  let granted = false;
  try {
    // "Use my address", the first time: the EIP-7702 authorization first (the wallet's first
    // prompt), checked to be the owner's, then the grant.
    let delegationSignature: Hex | undefined;
    if (proposal.delegation != null) {
      const delegation = parseDelegation(proposal.delegation, state.config?.chain_id ?? -1);
      if (!wallet.signAuthorization) {
        throw new Error('this wallet cannot sign the authorization your own address needs: choose a new smart account instead');
      }
      state.approvingStep = 'delegation';
      renderGrant();
      delegationSignature = await wallet.signAuthorization(delegation);
      if (!(await signedBy(delegation, delegationSignature, wallet.address))) {
        throw new Error(`the wallet signed the authorization with another account than ${short(wallet.address)}: nothing was granted`);
      }
    }
    state.approvingStep = 'grant';
    renderGrant();
    const signature = await wallet.signTypedData(proposal.typed_data);
    await api.grant(proposal.session_id, signature, delegationSignature);
    state.granted = `Granted. Actions within its limits need no further signature.`;
    state.proposal = null;
    state.proposalDelegates = false;
    state.mint.error = null;
    state.mint.result = null;
    granted = true;
    announce();
    await refresh();
  } catch (e) {
    unreachable(e);
    state.grantError = e instanceof ApiError ? said(e) : message(e);
  } finally {
    state.approving = false;
    state.approvingStep = null;
    renderAll();
    // The next step: minting, when the new session mints; else the confirmation.
    const session = mintSession();
    const next =
      granted && session?.session_id === proposal.session_id && viewOf(session).usable
        ? focus('[data-testid=mint]', $('mint'))
        : false;
    if (!next) focus(granted ? '[data-testid=granted]' : '[data-testid=grant-error]', $('grant'));
  }
}

async function mint(): Promise<void> {
  const { account } = state;
  const session = mintSession();
  if (!account || !session || state.mint.busy) return;
  const m = state.mint;
  m.heldBefore = new Set(heldIds());
  await act(
    session,
    m,
    () => {
      const quantity = (m.fields.quantity ?? '').trim();
      if (!/^\d+$/.test(quantity) || Number(quantity) < 1) {
        throw new Error(`Quantity: “${quantity}” is not a whole number of at least 1`);
      }
      m.quantity = Number(quantity);
      return [{ to: 'ValetNFT', function: MINT_FUNCTION, args: [account.address, quantity] }];
    },
    renderMint,
  );
  if (!focus('[data-testid=mint]:not([disabled])', $('mint'))) focus('[data-testid=grant-new]', $('mint'));
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
    announce();
  } catch (e) {
    unreachable(e);
    action.error = said(e);
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
  let stopped = false;
  try {
    // Another tab (or app) may have revoked it already: the chain says, before any signature.
    const now = await api.session(id);
    const onchainDone = now.chain.state === 'revoked' || now.chain.state === 'voided';
    // Stopped in the service and never enabled on chain: nothing on chain to revoke either.
    const nothingOnchain = now.status === 'revoked' && now.chain.state === 'none';
    if (onchainDone || nothingOnchain) {
      state.revokeNotes.set(id, { error: false, text: 'Already revoked: nothing to sign.' });
      return;
    }
    if (state.wrongChain !== null) {
      throw new Error(`your wallet is on another network (chain id ${state.wrongChain}): switch it back, then revoke`);
    }
    // The service stops using the key at once; the owner's signature then revokes it on chain.
    const answer = await api.revoke(id);
    stopped = true;
    const signature = await wallet.signTypedData(answer.onchain.typed_data);
    const onchain = await api.revokeOnchain(id, signature);
    const text =
      onchain.onchain === 'included' && onchain.transaction_hash
        ? `Revoked on chain in transaction ${short(onchain.transaction_hash)}.`
        : `Revoked. ${onchain.message.charAt(0).toUpperCase()}${onchain.message.slice(1)}.`;
    state.revokeNotes.set(id, { error: false, text });
    announce();
  } catch (e) {
    if (e instanceof ApiError && e.status === 409 && e.code === 'already_revoked') {
      state.revokeNotes.set(id, { error: false, text: 'Already revoked: nothing to sign.' });
    } else if (unreachable(e)) {
      state.revokeNotes.set(id, {
        error: true,
        text: stopped
          ? 'Stopped in the service, which then stopped answering: not revoked on chain yet. Revoke again when the service is back.'
          : 'Not revoked: the Valet service is not reachable, so nothing was stopped. Try again when it is back.',
      });
    } else {
      state.revokeNotes.set(id, {
        error: true,
        text: stopped
          ? `Stopped in the service (its key is no longer used), but not revoked on chain: ${e instanceof ApiError ? said(e) : message(e)}`
          : `Not revoked: ${e instanceof ApiError ? said(e) : message(e)}`,
      });
    }
    if (stopped) announce();
  } finally {
    state.revoking.delete(id);
    await refresh();
    // Focus stays with the card: on its note (the Revoke button is gone once revoked).
    const card = document.querySelector<HTMLElement>(`[data-session-id="${id}"]`);
    if (card && !focus('[data-testid=revoke-note]', card)) focus('[data-testid=revoke]', card);
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

/// "Use my address" vs "a new smart account", when the page offers it: radio buttons in a
/// fieldset (arrow keys move between them), the owner's choice checked.
function accountChoice(): HTMLElement | null {
  const { wallet } = state;
  if (!wallet || !state.offer7702) return null;
  const locked = state.proposing || state.approving || state.mint.busy || state.connecting;
  const option = (kind: AccountKind, address: Address | null, title: string, text: string) =>
    h(
      'label',
      { class: 'choice' },
      h('input', {
        type: 'radio',
        name: 'account-kind',
        value: kind,
        testid: `account-kind-${kind}`,
        checked: state.accountKind === kind,
        disabled: locked,
        onchange: () => void chooseAccount(kind),
      }),
      h(
        'span',
        {},
        h('strong', {}, title),
        address && ' (',
        address && h('code', { title: address, testid: `account-kind-${kind}-address` }, short(address)),
        address && ')',
        `: ${text}`,
      ),
    );
  return h(
    'fieldset',
    { class: 'account-choice', testid: 'account-choice' },
    h('legend', {}, 'Which account the app acts for'),
    option(
      'eip7702',
      wallet.address,
      'Use my address',
      'the session acts for your own account, with what it holds; your wallet asks you to sign twice the first time.',
    ),
    option(
      'smart',
      state.smartAddress,
      'A new smart account',
      'a separate account for this app’s sessions, made on its first use; one signature per session.',
    ),
  );
}

/// Whether the account shown is the owner's own address (EIP-7702).
function ownAddress(): boolean {
  return state.account?.kind === 'eip7702' || (state.accountKind === 'eip7702' && state.account?.address.toLowerCase() === state.wallet?.address.toLowerCase());
}

/// The "On chain" line of the account.
function onChainText(account: AccountInfo): string {
  if (!ownAddress()) return account.deployed ? 'deployed' : 'not deployed yet — the first action deploys it';
  if (account.deployed) return 'your address runs Valet’s account code (EIP-7702)';
  if (account.delegated) return 'your address runs Valet’s account code (EIP-7702); the first action activates it';
  return 'a plain address for now — approving a session lets it run Valet’s account code (EIP-7702)';
}

function renderAccount(): void {
  const { account, config } = state;
  const title = h('h2', { id: 'account-title' }, ownAddress() ? 'Your account (your own address)' : 'Your smart account');
  if (!account) {
    replace(
      $('account'),
      title,
      h(
        'p',
        { class: 'hint' },
        config
          ? `Connect a wallet: it owns a smart account on this app's ${config.network === 'devnet' || config.chain_id === 31337 ? 'test network' : 'network'}, made on its first use.`
          : 'Loading…',
      ),
      config && sessionIntro(),
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
    accountChoice(),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Address'),
      h('dd', {}, h('code', { testid: 'account-address', 'data-kind': ownAddress() ? 'eip7702' : 'smart' }, account.address)),
      h('dt', {}, 'On chain'),
      h('dd', { testid: 'account-deployed' }, onChainText(account)),
      h('dt', {}, 'Balance'),
      h('dd', { testid: 'account-balance' }, `${units(account.balance_wei, 18)} ETH`),
      config?.paymaster && h('dt', {}, 'Fee sponsor'),
      config?.paymaster &&
        h(
          'dd',
          { testid: 'sponsorship' },
          state.keyMode === 'browser'
            ? 'None for sessions whose keys live in this browser: the account pays their network fees from its ETH, within each session’s fee budget.'
            : !sponsorOffered()
            ? 'This app pays the network fees of smart accounts only: your own address pays its fees from its ETH.'
            : state.sponsorship
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
    state.funded && h('p', { class: 'hint', testid: 'funded' }, state.funded),
  );
}

/// What a session is, in plain words, for a visitor who has not connected yet.
function sessionIntro(): HTMLElement {
  return h(
    'div',
    { class: 'intro', testid: 'intro' },
    h('h3', {}, 'What is a session?'),
    h(
      'p',
      {},
      'A session is a permission you give once, with one signature: for example “mint up to 5 NFTs at a time, 10 times, for 1 hour”. ',
      'Within those limits the app acts for you without asking again; anything else is refused by the contract that guards your account. ',
      'It ends when its time or uses run out, or when you revoke it.',
    ),
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
  if (!sponsorOffered()) return null;
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
      !sponsorOffered() && feeBudgetField('Network fees: ETH budget'),
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
  if (state.keyMode === 'browser' && state.wallet) return renderBrowserGrant();
  const { wallet, proposal } = state;
  const title = h('h2', { id: 'grant-title' }, 'Grant a session');
  if (!wallet) {
    replace(
      $('grant'),
      title,
      h('p', { class: 'hint' }, 'After connecting, choose what the app may do for you — mint NFTs, pay a payee, vote — and approve it with one signature.'),
    );
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
        h(
          'ul',
          {},
          proposal.summary.map((line) =>
            h(
              'li',
              {},
              // "Cannot send your ETH" is about the calls; fees are the next line's business.
              state.proposalFees !== 'sponsored' && /cannot send any of your ETH/.test(line)
                ? `${line.replace(/\.$/, '')} with its calls (network fees aside: see below).`
                : line,
            ),
          ),
        ),
        state.proposalFees && h('p', { class: 'who-pays', testid: 'grant-fees' }, feesText(state.proposalFees)),
        state.proposalFees && h('p', { class: 'hint', testid: 'grant-fee-estimate' }, feeEstimate(state.proposalFees, proposal)),
        (proposal.warnings?.length ?? 0) > 0 &&
          h(
            'div',
            { class: 'warnings', testid: 'grant-warnings', role: 'note' },
            h('strong', {}, 'Before you approve:'),
            h('ul', {}, (proposal.warnings ?? []).map((w) => h('li', {}, serviceWords(w)))),
          ),
        h(
          'p',
          { class: 'who-acts', testid: 'grant-account' },
          proposal.account_kind === 'eip7702'
            ? ['For your own address ', h('code', { title: proposal.account }, short(proposal.account)), ': the session acts with what it holds.']
            : ['For your smart account ', h('code', { title: proposal.account }, short(proposal.account)), '.'],
        ),
        h(
          'p',
          { class: 'hint' },
          `Valet's contract on chain enforces these limits. The service holds this session's key and acts only through it; `,
          proposal.account_deployed || proposal.account_kind === 'eip7702' ? '' : 'your account is created with the first action; ',
          state.proposalDelegates
            ? 'approving asks your wallet for two signatures (no transaction, no fee): first an authorization that lets your address run Valet’s account code — it cannot move anything by itself —, then the session itself.'
            : 'approving asks your wallet for one signature (no transaction, no fee).',
        ),
        state.approvingStep &&
          h(
            'p',
            { class: 'progress', role: 'status', testid: 'approve-step' },
            state.approvingStep === 'delegation'
              ? 'Signature 1 of 2 in your wallet: an authorization that lets your address run Valet’s account code. It cannot move anything by itself.'
              : state.proposalDelegates
                ? 'Signature 2 of 2 in your wallet: the session, with the limits above.'
                : 'In your wallet: the session, with the limits above.',
          ),
        h(
          'div',
          { class: 'actions' },
          h(
            'button',
            { class: 'primary', testid: 'approve', onclick: approve, disabled: busy || state.serviceDown },
            state.approving
              ? state.proposalDelegates
                ? `Waiting for signature ${state.approvingStep === 'grant' ? 2 : 1} of 2…`
                : 'Waiting for your signature…'
              : state.proposalDelegates
                ? 'Approve with two signatures'
                : 'Approve with one signature',
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
                focus('[data-testid=review]', $('grant'));
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
          { class: 'primary', testid: 'review', onclick: review, disabled: busy || state.serviceDown },
          state.proposing ? 'Preparing…' : 'Review what it allows',
        ),
      );
  replace(
    $('grant'),
    title,
    keyChoice(),
    presets,
    presetForm(),
    reviewing,
    state.grantError && h('p', { class: 'error', role: 'alert', testid: 'grant-error', tabindex: '-1' }, state.grantError),
    state.granted && h('p', { class: 'ok', role: 'status', testid: 'granted' }, state.granted),
  );
}

/// Roughly what the session's fees will cost: from the service's estimate when the account pays
/// them, else from what this account's operations cost so far (the service reports each
/// included one's fee).
function feeEstimate(fees: Spec['fees'], proposal: Proposal): string {
  const deployed = proposal.account_deployed;
  const paid = state.events
    .filter((e) => e.event === 'execution.included' && typeof e.detail === 'object' && e.detail)
    .map((e) => (e.detail as Record<string, unknown>).fee_wei)
    .filter((f): f is string => typeof f === 'string' && /^\d+$/.test(f))
    .map(BigInt);
  const typical = paid.length ? ` Recent operations of this account cost about ${eth(paid[paid.length - 1]!.toString())} each.` : '';
  const first = deployed ? '' : ' The first one also creates your account, so it costs more.';
  if (fees === 'sponsored') {
    const left = state.sponsorship?.sponsored ? ` It has ${eth(state.sponsorship.left_wei)} left for fees today.` : '';
    return `Each operation's network fee is paid by this app, not you.${left}${typical}`;
  }
  const estimate = feeEstimateText(proposal.fee_estimate, deployed);
  if (estimate) return `Each operation's network fee comes out of your account's ETH: ${estimate}.`;
  return `Each operation's network fee comes out of your account's ETH, so your balance goes down a little with every use.${typical}${first}`;
}

function renderMint(): void {
  if (state.keyMode === 'browser' && state.account) return renderBrowserMint();
  const title = h('h2', { id: 'mint-title' }, 'Mint');
  const session = mintSession();
  const { account, mint: m } = state;
  if (!account) {
    replace($('mint'), title, h('p', { class: 'hint' }, 'Once a minting session is granted, you mint here with no wallet prompt.'));
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
  const view = viewOf(session);
  const range = quantityRange(session.summary);
  const result = m.result;
  const disabled = m.busy || !view.usable || state.serviceDown;
  replace(
    $('mint'),
    title,
    h(
      'p',
      { class: 'session-line' },
      'Through session ',
      h('code', { title: session.session_id }, short(session.session_id)),
      ' ',
      h('span', { class: `badge ${view.badge}`, testid: 'mint-status' }, view.label),
      view.usable ? ' — no wallet prompt.' : '',
    ),
    !view.usable &&
      h(
        'div',
        { class: 'ended', testid: 'mint-unusable' },
        h('p', {}, `Not usable: ${view.reason}. Minting needs a new session.`),
        h('button', { class: 'primary', testid: 'grant-new', onclick: grantNew }, 'Grant a new session'),
      ),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Uses'),
      h('dd', { testid: 'uses-left' }, uses),
      h('dt', {}, 'Time'),
      h(
        'dd',
        view.counting
          ? { testid: 'time-left', 'data-valid-until': String(session.chain.valid_until) }
          : { testid: 'time-left' },
        view.counting ? expiry(session.chain.valid_until, chainNow()) : view.badge === 'expired' ? expiry(session.chain.valid_until, chainNow()) : 'ended',
      ),
    ),
    h(
      'form',
      {
        class: 'mint-form',
        onsubmit: (e: Event) => {
          e.preventDefault();
          if (!disabled) void mint();
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
          'aria-describedby': range ? 'mint-range' : null,
          disabled: !view.usable,
          oninput: (e: Event) => (m.fields.quantity = (e.target as HTMLInputElement).value),
        }),
        range && h('span', { id: 'mint-range', class: 'range', testid: 'mint-range' }, `${range.min}–${range.max} per mint`),
      ),
      h(
        'button',
        { class: 'primary', type: 'submit', testid: 'mint', disabled },
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
          h('p', {}, mintedText(result), '.'),
          feeNote(result, session, 'mint-fee'),
          h('p', { class: 'hashes' }, 'Operation ', h('code', {}, result.user_op_hash ?? '—')),
          h('p', { class: 'hashes' }, 'Transaction ', h('code', {}, result.transaction_hash ?? '—')),
        ),
    ),
    m.error && h('p', { class: 'error', role: 'alert', testid: 'mint-error' }, m.error),
  );
}

/// What this tab's last mint minted. An included mint of `quantity` minted exactly that many;
/// their ids are named from its own events (see `newlyMinted`), or not at all when they cannot
/// be told apart.
function mintedText(result: Execution): string {
  const m = state.mint;
  if (result.status !== 'included') return `Mint ${result.status}`;
  const count = `${m.quantity} NFT${m.quantity === 1 ? '' : 's'}`;
  const ids = newlyMinted();
  return ids.length > 0 ? `Minted ${count} (${ids.map((id) => `#${id}`).join(', ')}): included` : `Minted ${count}: included`;
}

/// Back to the grant form, the mint preset chosen, focus on its Review button.
function grantNew(): void {
  state.preset = 'mint';
  state.proposal = null;
  state.grantError = null;
  state.granted = null;
  renderGrant();
  focus('[data-testid=review]', $('grant'));
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
  if (state.keyMode === 'browser' && state.account) return renderBrowserSessions();
  const title = h('h2', { id: 'sessions-title' }, 'Sessions');
  if (!state.account) {
    replace($('sessions'), title, h('p', { class: 'hint' }, 'The sessions you grant appear here, with what each has left; you can revoke any of them.'));
    return;
  }
  const shown = state.sessions.filter((s) => s.status !== 'proposed');
  if (shown.length === 0) {
    replace($('sessions'), title, h('p', { class: 'hint' }, 'No sessions yet.'));
    return;
  }
  const cards = shown.map((s) => {
    const revoking = state.revoking.has(s.session_id);
    const onChainRevoked = s.chain.state === 'revoked' || s.chain.state === 'voided';
    const view = viewOf(s);
    const note = state.revokeNotes.get(s.session_id);
    const counted = s.chain.permissions.filter((p) => p.max_uses > 0);
    const uses = [
      s.chain.max_uses > 0 ? `session: ${usesLeft(s.chain.uses, s.chain.max_uses)}` : null,
      ...counted.map((p) => usesLeft(p.uses ?? 0, p.max_uses)),
    ].filter(Boolean);
    return h(
      'article',
      { class: `session ${view.badge}`, testid: 'session', 'data-session-id': s.session_id, 'data-state': view.badge },
      h(
        'header',
        {},
        h('h3', {}, s.summary[1] ?? 'Session'),
        h('span', { class: `badge ${view.badge}`, testid: 'session-status' }, view.label),
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
          view.counting ? { testid: 'session-expiry', 'data-valid-until': String(s.chain.valid_until) } : { testid: 'session-expiry' },
          view.counting || view.badge === 'expired' ? expiry(s.chain.valid_until, chainNow()) : 'ended',
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
            not_installed: "Valet's module is not installed in this account",
          }[s.chain.state],
        ),
      ),
      !view.usable &&
        h(
          'div',
          { class: 'ended', testid: 'session-unusable' },
          h('p', {}, `Not usable: ${view.reason}.`),
          h('button', { class: 'ghost', testid: 'grant-new', onclick: grantNew }, 'Grant a new session'),
        ),
      h('details', {}, h('summary', {}, 'What it allows'), h('ul', {}, s.summary.map((line) => h('li', {}, line)))),
      view.usable && sessionAction(s),
      !onChainRevoked &&
        h(
          'button',
          {
            class: 'danger',
            testid: 'revoke',
            disabled: revoking || state.serviceDown,
            'aria-label': `Revoke session ${short(s.session_id)}`,
            onclick: () => revoke(s),
          },
          revoking ? 'Revoking…' : s.status === 'revoked' ? 'Revoke on chain too' : 'Revoke',
        ),
      note &&
        h('p', { class: note.error ? 'error' : 'ok', role: note.error ? 'alert' : 'status', testid: 'revoke-note', tabindex: '-1' }, note.text),
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
        h('p', { class: 'hashes' }, 'Operation ', h('code', {}, action.result.user_op_hash ?? '—')),
        h('p', { class: 'hashes' }, 'Transaction ', h('code', {}, action.result.transaction_hash ?? '—')),
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
      return `Refused before sending (session${session}): ${serviceWords(String(detail.reason ?? ''))}`;
    case 'execution.failed':
    case 'execution.reverted':
      return `Execution ${e.event.split('.')[1]} (session${session}): ${String(detail.error ?? '')}`;
    case 'session.revoked':
      return `Session${session} stopped in the service`;
    case 'session.revoked_onchain':
      return `Session${session} revoked on chain`;
    case 'account.funded':
      return 'Funded by the test network’s faucet';
    default:
      return `${e.event}${session}`;
  }
}

function renderActivity(): void {
  const title = h('h2', { id: 'activity-title' }, 'Activity');
  if (state.keyMode === 'browser' && state.account) {
    replace($('activity'), title, h('p', { class: 'hint', testid: 'activity-browser' }, 'The service’s log lists the sessions whose keys it holds; sessions with their keys in this browser act without it (their record is on chain).'));
    return;
  }
  if (!state.account) {
    replace($('activity'), title, h('p', { class: 'hint' }, 'What your sessions did — grants, mints, refusals, revocations — is listed here.'));
    return;
  }
  // A proposal is only a draft until it is granted (which has its own line): a review that was
  // cancelled leaves no trace.
  const events = state.events.filter((e) => e.event !== 'session.proposed').reverse();
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
              userOp && h('span', { class: 'hashes' }, 'Operation ', h('code', {}, userOp)),
              tx && h('span', { class: 'hashes' }, 'Transaction ', h('code', {}, tx)),
              txs.map((t) => h('span', { class: 'hashes' }, 'Transaction ', h('code', {}, t))),
            );
          }),
        ),
  );
}

/// Every second: countdowns tick from the chain's clock (no re-render, so focus stays put); when
/// a session's state changes with time (it expires), its card and the Mint panel render again.
// ------------------------------------------------------------------ keys in this browser

/// "Keys in this browser" vs "Keys in the service", when the service hands the page what the
/// first needs (`valet up --bundler alto`): radio buttons, the owner's choice checked.
function keyChoice(): HTMLElement | null {
  const { wallet, config } = state;
  if (!wallet || !offersBrowserKeys(config)) return null;
  const b = state.browser;
  const locked = state.proposing || state.approving || state.mint.busy || state.connecting || b.minting || b.revoking;
  const option = (mode: KeyMode, title: string, text: string) =>
    h(
      'label',
      { class: 'choice' },
      h('input', {
        type: 'radio',
        name: 'key-mode',
        value: mode,
        testid: `key-mode-${mode}`,
        checked: state.keyMode === mode,
        disabled: locked,
        onchange: () => void chooseKeyMode(mode),
      }),
      h('span', {}, h('strong', {}, title), `: ${text}`),
    );
  return h(
    'fieldset',
    { class: 'account-choice', testid: 'key-choice' },
    h('legend', {}, 'Where the session key lives'),
    option('service', 'Keys in the service', 'the Valet service holds the session key and acts through it.'),
    option(
      'browser',
      'Keys in this browser',
      'this page holds the key (encrypted in this browser, unreadable by script) and sends your actions to the network itself; the service never sees them.',
    ),
  );
}

/// The owner chose where keys live: remembered for this owner, and the page connects again in
/// that mode (no prompt).
async function chooseKeyMode(mode: KeyMode): Promise<void> {
  const { wallet } = state;
  if (!wallet || mode === state.keyMode) return;
  saveKeyMode(storage(), wallet.address, mode);
  forgetOwner();
  state.wallet = wallet;
  renderAll();
  await connect(wallet.kind, true);
  focus(`[data-testid=key-mode-${mode}]`, $('grant'));
}

/// The account from the chain, and what the session has left (`remaining()`): no `/v1`.
async function refreshBrowser(): Promise<void> {
  const { config, wallet } = state;
  if (!config || !wallet) return;
  try {
    const account = await accountFromChain(config, wallet.address);
    const session = state.browser.session;
    const left = session ? await session.remaining() : null;
    if (state.wallet !== wallet || state.keyMode !== 'browser') return;
    state.account = account;
    state.smartAddress = account.address;
    state.sessions = [];
    state.events = [];
    state.browser.left = left;
    if (left) state.clockOffset = Math.max(0, left.validUntil - left.secondsLeft - Math.floor(Date.now() / 1000));
    showBanner(null);
  } catch (e) {
    showBanner(`Could not read the account from the chain: ${message(e)}`);
  }
  renderAll();
}

/// Proposes the demo's minting session with a fresh key here. On the devnet the faucet first
/// gives the account ETH for its fees and the owner ETH to send a revocation (the last the
/// service is asked for, before the grant).
async function browserReview(): Promise<void> {
  const { api, config, wallet } = state;
  if (!api || !config || !wallet || state.proposing) return;
  state.grantError = null;
  state.granted = null;
  state.browser.proposal = null;
  state.proposing = true;
  renderGrant();
  try {
    if (config.faucet && state.smartAddress) {
      await api.fund(state.smartAddress, true);
      await api.fund(wallet.address, true);
    }
    state.browser.proposal = await proposeMint(config, wallet.address);
  } catch (e) {
    unreachable(e);
    state.grantError = e instanceof ApiError ? said(e) : message(e);
  } finally {
    state.proposing = false;
    renderGrant();
    focus(state.browser.proposal ? '[data-testid=approve]' : '[data-testid=grant-error]', $('grant'));
  }
}

/// One signature from the wallet: the session is granted, its key kept in IndexedDB.
async function browserApprove(): Promise<void> {
  const { wallet } = state;
  const proposal = state.browser.proposal;
  if (!wallet || !proposal || state.approving) return;
  state.approving = true;
  state.grantError = null;
  renderAll();
  let granted = false;
  try {
    const signature = await wallet.signTypedData(proposal.typedData as unknown as TypedData);
    state.browser.session = await grantMint(storage(), proposal, signature);
    state.browser.proposal = null;
    state.browser.mintError = null;
    state.browser.mintResult = null;
    state.browser.revokeNote = null;
    state.granted = 'Granted. Its key lives in this browser: minting needs no further signature.';
    granted = true;
    await refreshBrowser();
  } catch (e) {
    state.grantError = message(e);
  } finally {
    state.approving = false;
    renderAll();
    if (!(granted && focus('[data-testid=mint]', $('mint')))) focus(granted ? '[data-testid=granted]' : '[data-testid=grant-error]', $('grant'));
  }
}

/// Mints from this page: valet-core checks the call against the session first (a refusal is
/// shown with its reason and nothing is sent), then the bundler includes it.
async function browserMint(): Promise<void> {
  const { config } = state;
  const b = state.browser;
  if (!config || !b.session || b.minting) return;
  b.mintResult = null;
  b.mintError = null;
  const quantity = (state.mint.fields.quantity ?? '').trim();
  if (!/^\d+$/.test(quantity) || Number(quantity) < 1) {
    b.mintError = `Quantity: “${quantity}” is not a whole number of at least 1`;
    renderMint();
    return;
  }
  b.minting = true;
  renderMint();
  try {
    const done = await mintThrough(b.session, config, BigInt(quantity));
    b.mintResult = `Minted ${quantity} NFT${quantity === '1' ? '' : 's'} in transaction ${short(done.transactionHash)}.`;
  } catch (e) {
    b.mintError = e instanceof Refused ? `Refused, nothing was sent: ${e.reason}` : `Not minted: ${message(e)}`;
  } finally {
    b.minting = false;
    await refreshBrowser();
    focus('[data-testid=mint]:not([disabled])', $('mint'));
  }
}

/// The owner's revocation: signed in the wallet, sent by the wallet (it pays the fee).
async function browserRevoke(): Promise<void> {
  const { wallet } = state;
  const b = state.browser;
  const session = b.session;
  if (!wallet || !session || b.revoking) return;
  b.revoking = true;
  b.revokeNote = null;
  renderSessions();
  try {
    const send = wallet.sendTransaction;
    if (!send) throw new Error('this wallet cannot send transactions: use one that can to revoke on chain');
    const signature = await wallet.signTypedData(session.revocation().typedData as unknown as TypedData);
    const hash = await session.revoke(signature, { sendTransaction: (tx) => send(tx) });
    b.revokeNote = { error: false, text: `Revoked on chain in transaction ${short(hash)}. Its key is gone from this browser.` };
  } catch (e) {
    b.revokeNote = { error: true, text: `Not revoked: ${message(e)}` };
  } finally {
    b.revoking = false;
    await refreshBrowser();
    const card = document.querySelector<HTMLElement>('[data-testid=session]');
    if (card) focus('[data-testid=revoke-note]', card);
  }
}

function renderBrowserGrant(): void {
  const proposal = state.browser.proposal;
  const busy = state.proposing || state.approving;
  replace(
    $('grant'),
    h('h2', { id: 'grant-title' }, 'Grant a session'),
    keyChoice(),
    h('p', { class: 'hint' }, 'With keys in this browser the page grants the demo’s NFT minting session: mint up to 5 at a time, 10 times, for an hour.'),
    proposal
      ? h(
          'div',
          { class: 'proposal', testid: 'grant-summary', 'aria-live': 'polite' },
          h('h3', {}, 'You are about to allow'),
          h('ul', {}, proposal.summary.map((line) => h('li', {}, line))),
          proposal.warnings.length > 0 &&
            h('div', { class: 'warnings', testid: 'grant-warnings', role: 'note' }, h('ul', {}, proposal.warnings.map((w) => h('li', {}, w)))),
          h(
            'p',
            { class: 'who-acts', testid: 'grant-account' },
            'For your smart account ',
            h('code', { title: proposal.record.account }, short(proposal.record.account)),
            '. The session key was made in this browser and never leaves it; approving asks your wallet for one signature (no transaction, no fee).',
          ),
          h(
            'div',
            { class: 'actions' },
            h('button', { class: 'primary', testid: 'approve', onclick: browserApprove, disabled: busy }, state.approving ? 'Waiting for your signature…' : 'Approve with one signature'),
            h(
              'button',
              {
                class: 'ghost',
                testid: 'cancel',
                disabled: busy,
                onclick: () => {
                  state.browser.proposal = null;
                  renderGrant();
                },
              },
              'Cancel',
            ),
          ),
        )
      : h('div', { class: 'actions' }, h('button', { class: 'primary', testid: 'review', onclick: browserReview, disabled: busy }, state.proposing ? 'Preparing…' : 'Review what it allows')),
    state.grantError && h('p', { class: 'error', role: 'alert', testid: 'grant-error', tabindex: '-1' }, state.grantError),
    state.granted && h('p', { class: 'ok', role: 'status', testid: 'granted' }, state.granted),
  );
}

function renderBrowserMint(): void {
  const title = h('h2', { id: 'mint-title' }, 'Mint');
  const b = state.browser;
  if (!b.session) {
    replace($('mint'), title, h('p', { class: 'hint', testid: 'mint-none' }, 'Grant an NFT minting session first: its key lives in this browser.'));
    return;
  }
  const usable = b.left ? b.left.standing === 'enabled' || b.left.standing === 'not_enabled' : true;
  const lines = b.left && remainingLines(b.left);
  replace(
    $('mint'),
    title,
    h(
      'p',
      { class: 'session-line' },
      'Through session ',
      h('code', { title: b.session.id }, short(b.session.id)),
      ', its key in this browser',
      usable ? ' — no wallet prompt.' : '.',
    ),
    h('dl', { class: 'facts' }, h('dt', {}, 'Uses'), h('dd', { testid: 'uses-left' }, lines?.uses ?? '…')),
    h(
      'form',
      {
        class: 'mint-form',
        onsubmit: (e: Event) => {
          e.preventDefault();
          if (!b.minting) void browserMint();
        },
      },
      h(
        'label',
        { class: 'field small', for: 'mint-quantity' },
        h('span', {}, 'Quantity'),
        h('input', {
          id: 'mint-quantity',
          testid: 'mint-quantity',
          value: state.mint.fields.quantity ?? '',
          inputmode: 'numeric',
          autocomplete: 'off',
          oninput: (e: Event) => (state.mint.fields.quantity = (e.target as HTMLInputElement).value),
        }),
      ),
      h('button', { class: 'primary', type: 'submit', testid: 'mint', disabled: b.minting }, b.minting ? 'Minting…' : 'Mint'),
    ),
    h(
      'div',
      { 'aria-live': 'polite' },
      b.minting &&
        h(
          'p',
          { class: 'progress', testid: 'mint-progress', role: 'status' },
          h('span', { class: 'spinner', 'aria-hidden': 'true' }),
          'This page checks the call against the session, signs with the key kept here, and waits for the bundler to include it…',
        ),
      b.mintResult && h('div', { class: 'ok', testid: 'mint-result', role: 'status' }, h('p', {}, b.mintResult)),
    ),
    b.mintError && h('p', { class: 'error', role: 'alert', testid: 'mint-error' }, b.mintError),
  );
}

function renderBrowserSessions(): void {
  const title = h('h2', { id: 'sessions-title' }, 'Sessions');
  const b = state.browser;
  if (!b.session) {
    replace($('sessions'), title, h('p', { class: 'hint' }, 'No session with its key in this browser yet.'));
    return;
  }
  const left = b.left;
  const lines = left && remainingLines(left);
  const badge = !left ? 'active' : left.standing === 'revoked' || left.standing === 'voided' ? 'revoked' : left.secondsLeft === 0 ? 'expired' : 'active';
  replace(
    $('sessions'),
    title,
    h(
      'div',
      { class: 'session-list' },
      h(
        'article',
        { class: `session ${badge}`, testid: 'session', 'data-session-id': b.session.id, 'data-state': badge, 'data-keys': 'browser' },
        h('header', {}, h('h3', {}, 'Mint NFTs (key in this browser)'), h('span', { class: `badge ${badge}`, testid: 'session-status' }, badge)),
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'Id'),
          h('dd', {}, h('code', { title: b.session.id }, short(b.session.id, 6))),
          h('dt', {}, 'Uses'),
          h('dd', { testid: 'session-uses' }, lines?.uses ?? '…'),
          h('dt', {}, 'Fees'),
          h('dd', { testid: 'session-fees' }, lines?.fees ?? '…'),
          h('dt', {}, 'Time'),
          h('dd', { testid: 'session-expiry' }, left ? expiry(left.validUntil, chainNow()) : '…'),
          h('dt', {}, 'On chain'),
          h('dd', { testid: 'session-onchain' }, lines?.standing ?? '…'),
        ),
        badge !== 'revoked' &&
          h(
            'button',
            { class: 'danger', testid: 'revoke', disabled: b.revoking, onclick: () => void browserRevoke() },
            b.revoking ? 'Revoking…' : 'Revoke',
          ),
        b.revokeNote &&
          h('p', { class: b.revokeNote.error ? 'error' : 'ok', role: b.revokeNote.error ? 'alert' : 'status', testid: 'revoke-note', tabindex: '-1' }, b.revokeNote.text),
      ),
    ),
  );
}

function tick(): void {
  for (const el of document.querySelectorAll<HTMLElement>('[data-valid-until]')) {
    el.textContent = expiry(Number(el.dataset.validUntil), chainNow());
  }
  const key = viewsKey(state.sessions, chainNow());
  if (key !== state.viewsKey) {
    state.viewsKey = key;
    const granted = state.granted;
    forgetEnded();
    renderMint();
    renderSessions();
    if (granted !== state.granted) renderGrant();
  }
}

/// Reads the account again unless an action of this tab is under way (it reads when done).
function refreshIfIdle(): void {
  const b = state.browser;
  if (b.minting || b.revoking || state.proposing) return;
  if (state.wallet && !state.mint.busy && state.revoking.size === 0 && !state.approving) void refresh();
}

/// Whether the service answers: every few seconds, and at once after a failed request.
async function checkService(): Promise<void> {
  serviceAnswered(await reachable());
}

async function start(): Promise<void> {
  try {
    state.config = await loadConfig();
    state.payee = state.config.demo_payee ?? '';
    state.feePayer = defaultFeePayer(state.config);
  } catch (e) {
    unreachable(e);
    showBanner(message(e));
  }
  renderAll();
  setInterval(tick, 1000);
  setInterval(() => void checkService(), 3_000);
  // What is left changes on chain (other apps, schedules): read it again now and then, when the
  // tab comes back into view, and when another tab of this page changed something.
  setInterval(refreshIfIdle, 15_000);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') refreshIfIdle();
  });
  window.addEventListener('focus', refreshIfIdle);
  channel?.addEventListener('message', (e: MessageEvent) => {
    const data = e.data as { kind?: string; owner?: string } | null;
    if (data?.kind === 'changed' && data.owner === state.wallet?.address.toLowerCase()) refreshIfIdle();
  });
  followWallet();
  // Connected before this reload: connect again (an injected wallet without a prompt).
  const before = localStorage.getItem(CONNECTED_KEY);
  if (state.config && (before === 'injected' || before === 'development')) {
    if (before === 'injected' && window.ethereum) await connect('injected', true);
    else if (before === 'development' && !window.ethereum) await connect('development', true);
  }
}

void start();
