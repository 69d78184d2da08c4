import { describe, expect, it } from 'vitest';
import { EMPTY_CUSTOM, customSpec, mintSpec, paymentSpec, voteSpec } from './presets';

describe('presets', () => {
  it('mint: to this account, at most 5 per call, 10 calls, 1 hour', () => {
    expect(mintSpec()).toEqual({
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
    const spec = paymentSpec(' 0x976EA74026E726554dB657fA54763abd0C3a0aa9 ', '2.5');
    expect(spec.permission[0]?.rules).toEqual([{ arg: 'to', eq: '0x976EA74026E726554dB657fA54763abd0C3a0aa9' }]);
    expect(spec.limit).toEqual([{ token: 'ValetToken', amount: '2.5 ether', period: '1d' }]);
    expect(spec.fees).toEqual({ per_period: '0.005 ether', period: '1d' });
    expect(() => paymentSpec('0x123', '1')).toThrow('payee `0x123` is not an address');
    expect(() => paymentSpec('0x976EA74026E726554dB657fA54763abd0C3a0aa9', '-1')).toThrow('amount per day `-1`');
  });

  it('vote: support 0..2, three votes', () => {
    expect(voteSpec().permission[0]).toMatchObject({ max_uses: 3, rules: [{ arg: 'support', in_range: [0, 2] }] });
  });

  it('custom: fields become a spec; bad fields are named', () => {
    expect(customSpec({ ...EMPTY_CUSTOM, valueLimit: '0.1', limitAmount: '1', limitPeriod: '1d' })).toEqual({
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
    expect(customSpec({ ...EMPTY_CUSTOM, feeBudget: '0.2' }).fees).toEqual({ budget: '0.2 ether' });
    expect(() => customSpec({ ...EMPTY_CUSTOM, feeBudget: '' })).toThrow('network fees ``');
    expect(() => customSpec({ ...EMPTY_CUSTOM, feeBudget: '0' })).toThrow('network fees `0`');
    expect(() => customSpec({ ...EMPTY_CUSTOM, target: ' ' })).toThrow('contract');
    expect(() => customSpec({ ...EMPTY_CUSTOM, function: 'mint(' })).toThrow('function `mint(` is not');
    expect(() => customSpec({ ...EMPTY_CUSTOM, validFor: 'soon' })).toThrow('valid for `soon`');
    expect(() => customSpec({ ...EMPTY_CUSTOM, maxUses: '0' })).toThrow('max uses `0`');
    expect(() => customSpec({ ...EMPTY_CUSTOM, rules: [{ arg: 'quantity', op: 'lte', value: '' }] })).toThrow(
      'rule 1: give a value for quantity',
    );
  });
});
