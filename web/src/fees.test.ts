import { describe, expect, it } from 'vitest';
import { ApiError, type Execution, type FeeStatus, type Sponsorship } from './api';
import { errorText, executionFeeText, feeEstimateText, sponsorshipText } from './fees';

const paymaster = '0x9f3A1d0b2c4E5F60718293a4B5c6D7e8F9011223';

function included(fields: Partial<Execution> = {}): Execution {
  return {
    execution_id: 'e1',
    session_id: '0x01',
    status: 'included',
    user_op_hash: '0x02',
    transaction_hash: '0x03',
    gas_used: '180000',
    detail: null,
    ...fields,
  };
}

function fees(mode: FeeStatus['mode']): FeeStatus {
  return { mode, budget: '0', spent: '0', left: '0', paymasters: [] };
}

describe('fees', () => {
  it("says what is left of the app's sponsorship today", () => {
    const today: Sponsorship = {
      sponsored: true,
      reason: null,
      paymaster,
      budget_wei: '1000000000000000000',
      spent_today_wei: '1500000000000000',
      reserved_wei: '0',
      left_wei: '998500000000000000',
      day: '2026-12-04',
      resets_at: 1_796_428_800,
    };
    expect(sponsorshipText(today)).toBe('This app pays the network fees: 0.9985 ETH of 1 ETH left today (0.0015 ETH spent).');
    expect(sponsorshipText({ ...today, spent_today_wei: '0', reserved_wei: '2000000000000000', left_wei: '998000000000000000' })).toBe(
      'This app pays the network fees: 0.998 ETH of 1 ETH left today (0 ETH spent, 0.002 ETH held for operations in flight).',
    );
    const reason = 'app `dApp (devnet)` has no sponsorship budget: the service\'s admin gives it one with PUT /v1/apps/…/sponsorship';
    expect(sponsorshipText({ ...today, sponsored: false, reason, budget_wei: null, left_wei: '0' })).toBe(
      `This app pays no network fees now: ${reason}.`,
    );
  });

  it('says who paid an operation: the sponsor named by the answer, or implied by a sponsored session', () => {
    expect(executionFeeText(included({ fee_wei: '210000000000000', paymaster }), fees('sponsored'))).toBe(
      'Network fee 0.0002 ETH (180,000 gas): paid by the sponsor (paymaster 0x9f3A…1223), none of your ETH.',
    );
    // A sponsored session's operations carry a paymaster, or the validator refuses them.
    expect(executionFeeText(included(), fees('sponsored'))).toBe('Network fee (180,000 gas): paid by the sponsor, none of your ETH.');
    // The sponsor may pay for a session that allows the account's ETH too: the answer says who did.
    expect(executionFeeText(included({ fee_wei: '1', paymaster }), fees('budget'))).toContain('paid by the sponsor');
    expect(executionFeeText(included({ fee_wei: '210000000000000', paymaster: null }), fees('budget'))).toBe(
      "Network fee 0.0002 ETH (180,000 gas): paid from your account's ETH.",
    );
    // Nothing known: nothing claimed.
    expect(executionFeeText(included(), fees('budget'))).toBeNull();
    expect(executionFeeText(included({ status: 'unknown', paymaster }), fees('sponsored'))).toBeNull();
  });

  it("says roughly what the account's own fees will be, from the service's estimate", () => {
    const estimate = { gas_price_wei: '346095912', first_operation_wei: '148219035273120', later_operation_wei: '48554833782216' };
    expect(feeEstimateText(estimate, false)).toBe('about 0.0001 ETH for the first (it creates your account), about 0.00004 ETH each after');
    expect(feeEstimateText({ ...estimate, first_operation_wei: '60657987000000' }, true)).toBe(
      'about 0.00006 ETH for the first (it enables the session), about 0.00004 ETH each after',
    );
    // An older service, a chain that could not say, or nonsense: no number claimed.
    expect(feeEstimateText(undefined, false)).toBeNull();
    expect(feeEstimateText(null, false)).toBeNull();
    expect(feeEstimateText({ ...estimate, later_operation_wei: '-1' }, false)).toBeNull();
  });

  it('reads a refusal for want of sponsorship plainly: not sent, nothing charged, the amounts, when it renews', () => {
    const message =
      "sponsorship budget exceeded: this operation may cost up to 80055346108482 wei (0.000080055346108482 ETH) in network fees, but only 1000000000 wei (0.000000001 ETH) is left today (UTC) of this app's daily sponsorship budget of 1000000000 wei (0.000000001 ETH); nothing was sent";
    const amounts = { budget_wei: '1000000000', left_wei: '1000000000', max_cost_wei: '80055346108482' };
    expect(errorText(new ApiError(402, 'sponsorship_budget_exceeded', message, amounts))).toBe(
      "This app's sponsorship of network fees is used up for today: this operation may cost up to 0.00008 ETH, and 0.000000001 ETH of its 0.000000001 ETH daily budget is left. Nothing was sent and nothing was charged; the budget renews at 00:00 UTC.",
    );
    // Without the amounts, the service's message says them.
    const text = errorText(new ApiError(402, 'sponsorship_budget_exceeded', message));
    expect(text).toMatch(/^This app's sponsorship of network fees is used up for today, so the operation was not sent and nothing was charged/);
    expect(text).toContain(message);
    expect(text).toContain('renews at 00:00 UTC');
    expect(errorText(new ApiError(402, 'not_sponsored', 'app `dApp` has no sponsorship budget'))).toBe(
      'This app does not sponsor network fees now, so the operation was not sent and nothing was charged (app `dApp` has no sponsorship budget).',
    );
    // Other errors keep the service's own words.
    expect(errorText(new ApiError(422, 'refused', 'quantity = 6, but the session requires quantity ≤ 5'))).toBe(
      'quantity = 6, but the session requires quantity ≤ 5',
    );
    expect(errorText('plain')).toBe('plain');
  });
});
