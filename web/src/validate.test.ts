import { describe, expect, it } from 'vitest';
import { EMPTY_CUSTOM, customSpec } from './presets';
import { checkEth, checkUses, parseDuration, quantityRange, serviceWords } from './validate';

describe('validate: the custom form in the user’s words, with the service’s grammar', () => {
  it('reads durations as the service does: a whole number and s, m, h, d or w', () => {
    expect(parseDuration('90s', 'Valid for')).toBe(90);
    expect(parseDuration('30m', 'Valid for')).toBe(1_800);
    expect(parseDuration(' 2w ', 'Valid for')).toBe(1_209_600);
    expect(() => parseDuration('10', 'Valid for')).toThrow('Valid for: “10” needs a unit: s, m, h, d or w');
    expect(() => parseDuration('0m', 'Valid for')).toThrow('is no time at all');
    expect(() => parseDuration('1 year', 'Valid for')).toThrow('“1 year” is not a duration');
    expect(() => parseDuration('', 'Valid for')).toThrow('give a duration');
  });

  it('refuses the odd inputs of the issue before anything is sent', () => {
    const odd: [Partial<typeof EMPTY_CUSTOM>, string][] = [
      [{ maxUses: '99999999999999999999' }, 'Calls allowed: 99999999999999999999 is more than 65,535'],
      [{ maxUses: '-3' }, 'Calls allowed: “-3” is not a whole number'],
      [{ valueLimit: '-1' }, 'ETH per call at most: “-1” is not an amount of ETH'],
      [{ validFor: '0' }, 'Valid for: “0” needs a unit'],
      [{ validFor: '0s' }, 'Valid for: “0s” is no time at all'],
      [{ validFor: '10' }, 'Valid for: “10” needs a unit'],
      [{ validFor: '99999d' }, 'Valid for: “99999d” is longer than a year'],
      [{ function: '' }, 'Function: name the function the session may call'],
      [{ rules: [{ arg: '', op: 'eq', value: '1' }] }, 'Rule 1: name the argument'],
      [{ limitAmount: '1', limitPeriod: '30s' }, 'Per period: “30s” is shorter than 1 minute'],
      [{ limitAmount: 'lots' }, 'Spending limit amount: “lots” is not an amount of ETH'],
    ];
    for (const [fields, error] of odd) {
      expect(() => customSpec({ ...EMPTY_CUSTOM, ...fields }, 'sponsor'), JSON.stringify(fields)).toThrow(error);
    }
    // 2w and 52w are fine; an empty function with ETH per call is a plain ETH transfer permission.
    expect(customSpec({ ...EMPTY_CUSTOM, validFor: '2w' }, 'sponsor').valid_for).toBe('2w');
    expect(customSpec({ ...EMPTY_CUSTOM, function: '', rules: [], valueLimit: '0.1' }, 'sponsor').permission[0]).toEqual({
      target: 'ValetNFT',
      max_uses: 5,
      value_limit: '0.1 ether',
    });
  });

  it('checks amounts and counts', () => {
    expect(checkEth('0.5', 'x')).toBe('0.5');
    expect(checkEth('.5', 'x')).toBe('0.5');
    expect(() => checkEth('0', 'x', { positive: true })).toThrow('give more than 0 ETH');
    expect(() => checkEth('1e3', 'x')).toThrow('not an amount');
    expect(checkUses('', 'x')).toBeUndefined();
    expect(checkUses('65535', 'x')).toBe(65_535);
    expect(() => checkUses('65536', 'x')).toThrow('more than 65,535');
  });

  it("puts the service's messages in the page's words", () => {
    expect(serviceWords('permission 0, rule 0: `amount` is not an argument of mint(address,uint256)')).toBe(
      'rule 1: `amount` is not an argument of mint(address,uint256)',
    );
    expect(
      serviceWords(
        'call 0 (mint on ValetNFT (0xCf7E…0Fc9)): quantity = 6, but the session requires quantity ≤ 5 (session 0x0b07c6bd59d1f8a3b3a0fb4b3eb1a6a4b2b3d1a0d0e0f0a0b0c0d0e0f0a0b0c0)',
      ),
    ).toBe('quantity = 6, but the session requires quantity ≤ 5 (session 0x0b07…b0c0)');
    expect(serviceWords('limit 0: period = `30s` is 30 s')).toBe('the spending limit: period = `30s` is 30 s');
  });

  it('finds the quantity bound in a summary', () => {
    expect(quantityRange(['May call mint(to, quantity) on ValetNFT, only if to = this account and quantity ≤ 5.'])).toEqual({ min: 1, max: 5 });
    expect(quantityRange(['May call castVote(proposalId, support).'])).toBeNull();
  });
});
