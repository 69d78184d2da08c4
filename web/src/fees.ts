// Who paid for what: the app's sponsorship left today, each operation's network fee and who paid
// it, and a refusal for want of sponsorship, in the page's words (unit-tested in fees.test.ts).

import { ApiError, type Execution, type FeeEstimate, type FeeStatus, type Sponsorship } from './api';
import { eth, short } from './format';

/// "This app pays the network fees: 0.9981 ETH of 1 ETH left today (0.0019 ETH spent).", or why
/// it pays none now.
export function sponsorshipText(s: Sponsorship): string {
  if (!s.sponsored || s.budget_wei === null) return `This app pays no network fees now: ${s.reason ?? 'it has no budget'}.`;
  const held = BigInt(s.reserved_wei) > 0n ? `, ${eth(s.reserved_wei)} held for operations in flight` : '';
  return `This app pays the network fees: ${eth(s.left_wei)} of ${eth(s.budget_wei)} left today (${eth(s.spent_today_wei)} spent${held}).`;
}

/// What the account's own fees will roughly be, from the service's estimate: "about 0.0001 ETH
/// for the first (it creates your account), about 0.00004 ETH each after". Null when the estimate
/// is absent or malformed.
export function feeEstimateText(estimate: FeeEstimate | null | undefined, deployed: boolean): string | null {
  const wei = (v: unknown): v is string => typeof v === 'string' && /^\d+$/.test(v);
  if (!estimate || !wei(estimate.first_operation_wei) || !wei(estimate.later_operation_wei)) return null;
  const first = deployed ? 'the first (it enables the session)' : 'the first (it creates your account)';
  return `about ${eth(estimate.first_operation_wei)} for ${first}, about ${eth(estimate.later_operation_wei)} each after`;
}

/// Who paid an included operation's network fee, how much and the gas it used, when the service
/// says. A session
/// whose fees are sponsored was paid for by a paymaster even when the answer does not name it:
/// the validator refuses any operation of such a session that has none.
export function executionFeeText(execution: Execution, fees: FeeStatus | undefined): string | null {
  if (execution.status !== 'included') return null;
  const cost = execution.fee_wei ?? null;
  const gas = execution.gas_used && /^\d+$/.test(execution.gas_used) ? ` (${Number(execution.gas_used).toLocaleString('en-US')} gas)` : '';
  const amount = `${cost === null ? '' : ` ${eth(cost)}`}${gas}`;
  const paymaster = execution.paymaster ?? null;
  if (paymaster) return `Network fee${amount}: paid by the sponsor (paymaster ${short(paymaster)}), none of your ETH.`;
  if (fees?.mode === 'sponsored') return `Network fee${amount}: paid by the sponsor, none of your ETH.`;
  if (cost === null) return null;
  return `Network fee${amount}: paid from your account's ETH.`;
}

/// An error as the page shows it. A refusal for want of sponsorship says plainly that nothing was
/// sent or charged, what the operation could cost against what is left of the app's budget, and
/// when the budget renews (a UTC day).
export function errorText(e: unknown): string {
  if (e instanceof ApiError && e.code === 'sponsorship_budget_exceeded') {
    const { budget_wei: budget, left_wei: left, max_cost_wei: cost } = e.fields;
    const wei = (v: unknown): v is string => typeof v === 'string' && /^\d+$/.test(v);
    if (wei(budget) && wei(left) && wei(cost)) {
      return `This app's sponsorship of network fees is used up for today: this operation may cost up to ${eth(cost)}, and ${eth(left)} of its ${eth(budget)} daily budget is left. Nothing was sent and nothing was charged; the budget renews at 00:00 UTC.`;
    }
    return `This app's sponsorship of network fees is used up for today, so the operation was not sent and nothing was charged (${e.message}). It renews at 00:00 UTC.`;
  }
  if (e instanceof ApiError && e.code === 'not_sponsored') {
    return `This app does not sponsor network fees now, so the operation was not sent and nothing was charged (${e.message}).`;
  }
  return e instanceof Error ? e.message : String(e);
}
