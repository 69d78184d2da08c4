// What a user can ask to grant: three presets (the seed's use cases) and a custom form, each
// turned into a session spec the service understands (the JSON form of Valet's TOML specs).

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

/// The NFT minting session of the seed: `mint(to = this account, quantity ≤ 5)`, 10 times, 1 hour.
export function mintSpec(): Spec {
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
    fees: { budget: `${DEFAULT_FEE_BUDGET} ether` },
  };
}

/// A recurring payment: VLT transfers to `payee` only, at most `perDay` VLT a day, for 7 days.
export function paymentSpec(payee: string, perDay: string): Spec {
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
    fees: { per_period: '0.005 ether', period: '1d' },
  };
}

/// DAO voting: `castVote(proposalId, support ∈ {0,1,2})`, three votes, for a day.
export function voteSpec(): Spec {
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
    fees: { budget: '0.005 ether' },
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
  /// ETH the session's operations may spend on network fees.
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

/// The custom form as a spec; throws an error naming the first bad field. The service checks the
/// rest (that the function parses, that each rule's argument exists and its value fits).
export function customSpec(form: CustomForm): Spec {
  const target = form.target.trim();
  if (!target) throw new Error('contract: give an address or a known name');
  const fn = form.function.trim();
  if (fn && !/^[A-Za-z_][A-Za-z0-9_]*\(.*\)$/.test(fn)) {
    throw new Error(`function \`${fn}\` is not name(type arg, …)`);
  }
  const validFor = form.validFor.trim();
  if (!/^\d+[smhd]?$/.test(validFor)) throw new Error(`valid for \`${validFor}\` is not like 90s, 30m, 1h or 7d`);
  const permission: PermissionSpec = { target };
  if (fn) permission.function = fn;
  const maxUses = form.maxUses.trim();
  if (maxUses) {
    if (!/^\d+$/.test(maxUses) || Number(maxUses) < 1) throw new Error(`max uses \`${maxUses}\` is not a whole number ≥ 1`);
    permission.max_uses = Number(maxUses);
  }
  if (form.valueLimit.trim()) permission.value_limit = `${form.valueLimit.trim()} ether`;
  const rules = form.rules.filter((r) => r.arg.trim() || r.value.trim());
  for (const [i, r] of rules.entries()) {
    if (!r.arg.trim()) throw new Error(`rule ${i + 1}: name the argument`);
    if (!r.value.trim()) throw new Error(`rule ${i + 1}: give a value for ${r.arg.trim()}`);
  }
  if (rules.length) permission.rules = rules.map((r) => ({ arg: r.arg.trim(), [r.op]: r.value.trim() }));
  const feeBudget = form.feeBudget.trim();
  if (!/^\d+(\.\d+)?$/.test(feeBudget) || Number(feeBudget) <= 0) {
    throw new Error(`network fees \`${feeBudget}\` is not a positive number of ETH (the account pays its own fees here)`);
  }
  const spec: Spec = { valid_for: validFor, permission: [permission], fees: { budget: `${feeBudget} ether` } };
  if (form.limitAmount.trim()) {
    const amount = form.limitAmount.trim();
    if (!/^\d+(\.\d+)?$/.test(amount)) throw new Error(`limit amount \`${amount}\` is not a number`);
    const limit: LimitSpec = form.limitToken.trim()
      ? { token: form.limitToken.trim(), amount: `${amount} ether` }
      : { native: `${amount} ether` };
    if (form.limitPeriod.trim()) limit.period = form.limitPeriod.trim();
    spec.limit = [limit];
  }
  return spec;
}
