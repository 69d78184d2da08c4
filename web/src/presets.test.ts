import { describe, expect, it } from 'vitest';
import {
  ACCOUNT_FEES,
  EMPTY_CUSTOM,
  customSpec,
  defaultFeePayer,
  feeBudgetText,
  feesText,
  mintSpec,
  paymentSpec,
  voteSpec,
} from './presets';

describe('presets', () => {
  it('mint: to this account, at most 5 per call, 10 calls, 1 hour', () => {
    expect(mintSpec('account')).toEqual({
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
      fees: { budget: '0.01 ether' },
    });
  });

  it('payment: one payee, a daily budget', () => {
    const spec = paymentSpec(' 0x976EA74026E726554dB657fA54763abd0C3a0aa9 ', '2.5', 'account');
    expect(spec.permission[0]?.rules).toEqual([{ arg: 'to', eq: '0x976EA74026E726554dB657fA54763abd0C3a0aa9' }]);
    expect(spec.limit).toEqual([{ token: 'ValetToken', amount: '2.5 ether', period: '1d' }]);
    expect(spec.fees).toEqual({ per_period: '0.005 ether', period: '1d' });
    expect(() => paymentSpec('0x123', '1', 'account')).toThrow('payee `0x123` is not an address');
    expect(() => paymentSpec('0x976EA74026E726554dB657fA54763abd0C3a0aa9', '-1', 'account')).toThrow('amount per day `-1`');
  });

  it('vote: support 0..2, three votes', () => {
    expect(voteSpec('account').permission[0]).toMatchObject({ max_uses: 3, rules: [{ arg: 'support', in_range: [0, 2] }] });
  });

  it('custom: fields become a spec; bad fields are named', () => {
    expect(customSpec({ ...EMPTY_CUSTOM, valueLimit: '0.1', limitAmount: '1', limitPeriod: '1d' }, 'account')).toEqual({
      valid_for: '30m',
      permission: [
        {
          target: 'ValetNFT',
          function: 'mint(address to, uint256 quantity)',
          max_uses: 5,
          value_limit: '0.1 ether',
          rules: [{ arg: 'to', eq: '$account' }],
        },
      ],
      limit: [{ native: '1 ether', period: '1d' }],
      fees: { budget: '0.01 ether' },
    });
    expect(customSpec({ ...EMPTY_CUSTOM, feeBudget: '0.2' }, 'account').fees).toEqual({ budget: '0.2 ether' });
    expect(() => customSpec({ ...EMPTY_CUSTOM, feeBudget: '' }, 'account')).toThrow('Network fees: “”');
    expect(() => customSpec({ ...EMPTY_CUSTOM, feeBudget: '0' }, 'account')).toThrow('Network fees: “0”');
    expect(() => customSpec({ ...EMPTY_CUSTOM, target: ' ' }, 'account')).toThrow('Contract');
    expect(() => customSpec({ ...EMPTY_CUSTOM, function: 'mint(' }, 'account')).toThrow('Function: “mint(” is not');
    expect(() => customSpec({ ...EMPTY_CUSTOM, validFor: 'soon' }, 'account')).toThrow('Valid for: “soon”');
    expect(() => customSpec({ ...EMPTY_CUSTOM, maxUses: '0' }, 'account')).toThrow('Calls allowed: give at least 1');
    expect(() => customSpec({ ...EMPTY_CUSTOM, rules: [{ arg: 'quantity', op: 'lte', value: '' }] }, 'account')).toThrow(
      'Rule 1: give a value for quantity',
    );
  });

  it('sponsored: every preset and the custom form say fees = "sponsored", and nothing else changes', () => {
    const payee = '0x976EA74026E726554dB657fA54763abd0C3a0aa9';
    const pairs = [
      [mintSpec('sponsor'), mintSpec('account')],
      [paymentSpec(payee, '2', 'sponsor'), paymentSpec(payee, '2', 'account')],
      [voteSpec('sponsor'), voteSpec('account')],
      [customSpec(EMPTY_CUSTOM, 'sponsor'), customSpec(EMPTY_CUSTOM, 'account')],
    ];
    for (const [sponsored, own] of pairs) {
      expect(sponsored!.fees).toBe('sponsored');
      expect({ ...sponsored, fees: own!.fees }).toEqual(own);
    }
    expect(mintSpec('account').fees).toEqual(ACCOUNT_FEES.mint);
    expect(voteSpec('account').fees).toEqual(ACCOUNT_FEES.vote);
    expect(paymentSpec(payee, '2', 'account').fees).toEqual(ACCOUNT_FEES.payment);
  });

  it('sponsored custom form: the fee budget is not asked for (not even a bad one)', () => {
    expect(customSpec({ ...EMPTY_CUSTOM, feeBudget: '' }, 'sponsor').fees).toBe('sponsored');
    expect(customSpec({ ...EMPTY_CUSTOM, feeBudget: 'lots' }, 'sponsor').fees).toBe('sponsored');
    // Other fields are still checked.
    expect(() => customSpec({ ...EMPTY_CUSTOM, maxUses: '0' }, 'sponsor')).toThrow('Calls allowed: give at least 1');
  });

  it('defaults to sponsored fees exactly when the app has a paymaster', () => {
    expect(defaultFeePayer({ paymaster: '0x8bDDE7a1a28a4b9B9fd3D1C4e27b3F1F7b2B6D8a' })).toBe('sponsor');
    expect(defaultFeePayer({})).toBe('account');
    expect(defaultFeePayer({ paymaster: null })).toBe('account');
  });

  it("says who pays, as the spec does (never the account's ETH when sponsored)", () => {
    expect(feesText('sponsored')).toBe(
      "Network fees: paid by this app (sponsored). This session can never spend your account's ETH on fees.",
    );
    expect(feesText(mintSpec('account').fees)).toBe("Network fees: from your account's ETH, up to 0.01 ETH.");
    expect(feesText(paymentSpec('0x976EA74026E726554dB657fA54763abd0C3a0aa9', '1', 'account').fees)).toBe(
      "Network fees: from your account's ETH, up to 0.005 ETH per day.",
    );
    expect(feesText(customSpec({ ...EMPTY_CUSTOM, feeBudget: '0.2' }, 'account').fees)).toBe(
      "Network fees: from your account's ETH, up to 0.2 ETH.",
    );
    expect(feeBudgetText({ budget: '0.01 ether', per_period: '0.002 ether', period: '12h' })).toBe(
      'up to 0.01 ETH and up to 0.002 ETH per 12 hours',
    );
  });
});
