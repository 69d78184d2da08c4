// What a user can ask to grant: three presets (the seed's use cases) and a custom form, each
// turned into a session spec the service understands (the JSON form of Valet's TOML specs).

import { MAX_VALID_FOR_SECONDS, MIN_PERIOD_SECONDS, checkEth, checkUses, parseDuration } from './validate';

/// A spec as `POST /v1/sessions` takes it (JSON object form).
export interface Spec {
  valid_for: string;
  max_uses?: number;
  permission: PermissionSpec[];
  limit?: LimitSpec[];
  /// How the session's operations pay network fees: from a budget of the account's ETH, or
  /// `'sponsored'` (a paymaster pays; none of the account's ETH). Every session says which.
  fees: FeesSpec | 'sponsored';
}

export interface FeesSpec {
  /// The most of the account's ETH its operations may commit to fees, e.g. `'0.01 ether'`.
  budget?: string;
  /// Or per period: at most `per_period` every `period`.
  per_period?: string;
  period?: string;
}

/// The fee budget the presets give a session on this devnet: 0.01 ETH, a few dozen operations at
/// the devnet's fees (each counted at its maximum cost).
export const DEFAULT_FEE_BUDGET = '0.01';

/// Who pays a session's network fees: the app's sponsor (its paymaster; the spec says
/// `fees = "sponsored"`, so the session can never spend the account's ETH on fees), or the
/// account's own ETH, within the budget its spec states.
export type FeePayer = 'sponsor' | 'account';

/// What a session should default to: sponsored when the app has a paymaster (the service then
/// pays every operation it sends for this app), else the account pays, as without sponsorship.
export function defaultFeePayer(config: { paymaster?: string | null }): FeePayer {
  return config.paymaster ? 'sponsor' : 'account';
}

/// The fee rule of each preset when the account pays its own fees.
export const ACCOUNT_FEES: Record<Exclude<PresetId, 'custom'>, FeesSpec> = {
  mint: { budget: `${DEFAULT_FEE_BUDGET} ether` },
  payment: { per_period: '0.005 ether', period: '1d' },
  vote: { budget: '0.005 ether' },
};

/// A fee rule as the page shows it: "up to 0.01 ETH", "up to 0.005 ETH per day".
export function feeBudgetText(fees: FeesSpec): string {
  const eth = (amount: string) => amount.trim().replace(/\s*ether$/, ' ETH');
  const parts: string[] = [];
  if (fees.budget) parts.push(`up to ${eth(fees.budget)}`);
  if (fees.per_period) parts.push(`up to ${eth(fees.per_period)} per ${periodText(fees.period ?? '')}`);
  return parts.join(' and ');
}

/// "1d" → "day", "12h" → "12 hours"; anything else as written.
function periodText(period: string): string {
  const match = /^(\d+)\s*([smhd])$/.exec(period.trim());
  if (!match) return period;
  const unit = { s: 'second', m: 'minute', h: 'hour', d: 'day' }[match[2] as 's' | 'm' | 'h' | 'd'];
  return match[1] === '1' ? unit : `${match[1]} ${unit}s`;
}

/// Who pays a spec's network fees, in the page's words. It says what the spec says, as the
/// service's summary of the same spec does: sponsored means never the account's ETH; otherwise the
/// account's ETH up to the spec's budget.
export function feesText(fees: Spec['fees']): string {
  if (fees === 'sponsored') return "Network fees: paid by this app (sponsored). This session can never spend your account's ETH on fees.";
  return `Network fees: from your account's ETH, ${feeBudgetText(fees)}.`;
}

function feesFor(payer: FeePayer, account: FeesSpec): Spec['fees'] {
  return payer === 'sponsor' ? 'sponsored' : { ...account };
}

export interface PermissionSpec {
  target: string;
  function?: string;
  value_limit?: string;
  max_uses?: number;
  rules?: RuleSpec[];
}

export type Comparison = 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte';

export type RuleSpec = { arg: string; in_range?: [number, number] } & Partial<Record<Comparison, string | number>>;

export interface LimitSpec {
  token?: string;
  native?: string;
  amount?: string;
  period?: string;
}

export type PresetId = 'mint' | 'payment' | 'vote' | 'custom';

export interface Preset {
  id: PresetId;
  title: string;
  /// One line on what it allows, before the service's full summary.
  blurb: string;
}

export const PRESETS: Preset[] = [
  { id: 'mint', title: 'Mint NFTs', blurb: 'Mint ValetNFTs to your account: up to 5 per call, 10 calls, for 1 hour.' },
  { id: 'payment', title: 'Recurring payment', blurb: 'Pay one payee in VLT: at most the amount you set per day, for 7 days.' },
  { id: 'vote', title: 'DAO voting', blurb: 'Vote for, against or abstain on ValetDAO proposals: 3 votes, for 1 day.' },
  { id: 'custom', title: 'Custom', blurb: 'Any contract and function, with your own rules and limits.' },
];

/// The NFT minting session of the seed: `mint(to = this account, quantity ≤ 5)`, 10 times, 1 hour;
/// fees paid by `payer`.
export function mintSpec(payer: FeePayer): Spec {
  return {
    valid_for: '1h',
    permission: [
      {
        target: 'ValetNFT',
        function: 'mint(address to, uint256 quantity)',
        rules: [
          { arg: 'to', eq: '$account' },
          { arg: 'quantity', lte: 5 },
        ],
        max_uses: 10,
      },
    ],
    fees: feesFor(payer, ACCOUNT_FEES.mint),
  };
}

/// A recurring payment: VLT transfers to `payee` only, at most `perDay` VLT a day, for 7 days;
/// fees paid by `payer`.
export function paymentSpec(payee: string, perDay: string, payer: FeePayer): Spec {
  if (!/^0x[0-9a-fA-F]{40}$/.test(payee.trim())) {
    throw new Error(`payee \`${payee}\` is not an address (0x + 40 hex digits)`);
  }
  if (!/^\d+(\.\d+)?$/.test(perDay.trim()) || Number(perDay) <= 0) {
    throw new Error(`amount per day \`${perDay}\` is not a positive number of VLT`);
  }
  return {
    valid_for: '7d',
    permission: [
      {
        target: 'ValetToken',
        function: 'transfer(address to, uint256 amount)',
        rules: [{ arg: 'to', eq: payee.trim() }],
      },
    ],
    limit: [{ token: 'ValetToken', amount: `${perDay.trim()} ether`, period: '1d' }],
    fees: feesFor(payer, ACCOUNT_FEES.payment),
  };
}

/// DAO voting: `castVote(proposalId, support ∈ {0,1,2})`, three votes, for a day; fees paid by
/// `payer`.
export function voteSpec(payer: FeePayer): Spec {
  return {
    valid_for: '1d',
    permission: [
      {
        target: 'ValetDAO',
        function: 'castVote(uint256 proposalId, uint8 support)',
        rules: [{ arg: 'support', in_range: [0, 2] }],
        max_uses: 3,
      },
    ],
    fees: feesFor(payer, ACCOUNT_FEES.vote),
  };
}

/// The custom form's fields, as typed.
export interface CustomForm {
  target: string;
  function: string;
  rules: { arg: string; op: Comparison; value: string }[];
  maxUses: string;
  validFor: string;
  valueLimit: string;
  limitToken: string;
  limitAmount: string;
  limitPeriod: string;
  /// ETH the session's operations may spend on network fees, when the account pays them.
  feeBudget: string;
}

export const EMPTY_CUSTOM: CustomForm = {
  target: 'ValetNFT',
  function: 'mint(address to, uint256 quantity)',
  rules: [{ arg: 'to', op: 'eq', value: '$account' }],
  maxUses: '5',
  validFor: '30m',
  valueLimit: '',
  limitToken: '',
  limitAmount: '',
  limitPeriod: '',
  feeBudget: DEFAULT_FEE_BUDGET,
};

/// The custom form as a spec, its fees paid by `payer` (the fee budget is read only when the
/// account pays); throws an error in the user's words naming the first bad field, with the
/// service's grammar (validate.ts). The service checks what needs the contract (that each rule's
/// argument exists and its value fits) and may add warnings.
export function customSpec(form: CustomForm, payer: FeePayer): Spec {
  const target = form.target.trim();
  if (!target) throw new Error('Contract: give an address or a known name (ValetNFT, ValetToken, ValetDAO)');
  const fn = form.function.trim();
  if (fn && !/^[A-Za-z_][A-Za-z0-9_]*\(.*\)$/.test(fn)) {
    throw new Error(`Function: “${fn}” is not written as name(type argument, …), like mint(address to, uint256 quantity)`);
  }
  const valueLimit = form.valueLimit.trim() ? checkEth(form.valueLimit, 'ETH per call at most') : '';
  if (!fn && (!valueLimit || Number(valueLimit) === 0)) {
    throw new Error(
      `Function: name the function the session may call, like mint(address to, uint256 quantity). Left empty, the session may only send ETH to ${target}, and “ETH per call at most” allows none`,
    );
  }
  const validFor = form.validFor.trim();
  const seconds = parseDuration(validFor, 'Valid for');
  if (seconds > MAX_VALID_FOR_SECONDS) {
    throw new Error(`Valid for: “${validFor}” is longer than a year; give at most 365d (52w)`);
  }
  const permission: PermissionSpec = { target };
  if (fn) permission.function = fn;
  const maxUses = checkUses(form.maxUses, 'Calls allowed');
  if (maxUses !== undefined) permission.max_uses = maxUses;
  if (valueLimit && Number(valueLimit) > 0) permission.value_limit = `${valueLimit} ether`;
  const rules = form.rules.map((r, i) => ({ ...r, n: i + 1 })).filter((r) => r.arg.trim() || r.value.trim());
  for (const r of rules) {
    if (!r.arg.trim()) throw new Error(`Rule ${r.n}: name the argument it checks`);
    if (!r.value.trim()) throw new Error(`Rule ${r.n}: give a value for ${r.arg.trim()}`);
  }
  if (rules.length) permission.rules = rules.map((r) => ({ arg: r.arg.trim(), [r.op]: r.value.trim() }));
  let fees: Spec['fees'] = 'sponsored';
  if (payer === 'account') {
    const feeBudget = form.feeBudget.trim();
    if (!/^\d+(\.\d+)?$/.test(feeBudget) || Number(feeBudget) <= 0) {
      throw new Error(`Network fees: “${feeBudget}” is not a positive amount of ETH (the account pays its own fees here)`);
    }
    fees = { budget: `${feeBudget} ether` };
  }
  const spec: Spec = { valid_for: validFor, permission: [permission], fees };
  if (form.limitAmount.trim()) {
    const amount = checkEth(form.limitAmount, 'Spending limit amount', { positive: true });
    const limit: LimitSpec = form.limitToken.trim()
      ? { token: form.limitToken.trim(), amount: `${amount} ether` }
      : { native: `${amount} ether` };
    if (form.limitPeriod.trim()) {
      const period = parseDuration(form.limitPeriod, 'Per period');
      if (period < MIN_PERIOD_SECONDS) throw new Error(`Per period: “${form.limitPeriod.trim()}” is shorter than 1 minute, the shortest period`);
      limit.period = form.limitPeriod.trim();
    }
    spec.limit = [limit];
  }
  return spec;
}
