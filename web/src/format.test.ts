import { describe, expect, it } from 'vitest';
import { duration, eth, expiry, short, units, usesLeft } from './format';

describe('format', () => {
  it('shortens hex in the middle', () => {
    expect(short('0x9ac6b8003174218613a12b04da2338f64721294e')).toBe('0x9ac6…294e');
    expect(short('0x1234')).toBe('0x1234');
  });

  it('prints base units as decimals, rounding down', () => {
    expect(units('1500000000000000000', 18)).toBe('1.5');
    expect(units('999100000000000000', 18)).toBe('0.9991');
    expect(units('999199999999999999', 18)).toBe('0.9991');
    expect(units('100000000000000000000', 18)).toBe('100');
    expect(units('0', 18)).toBe('0');
    expect(units(10e18, 18)).toBe('10');
    expect(units('7', 0)).toBe('7');
  });

  it('prints wei as ETH, small amounts to their first digit', () => {
    expect(eth('998500000000000000')).toBe('0.9985 ETH');
    expect(eth('1000000000000000000')).toBe('1 ETH');
    expect(eth('1000000000')).toBe('0.000000001 ETH');
    expect(eth('123456789012345')).toBe('0.0001 ETH');
    expect(eth('12345678901234')).toBe('0.00001 ETH');
    expect(eth('1')).toBe('0.000000000000000001 ETH');
    expect(eth(0n)).toBe('0 ETH');
  });

  it('counts down', () => {
    expect(duration(3599)).toBe('59 min 59 s');
    expect(duration(3600)).toBe('1 h');
    expect(duration(7 * 86_400 - 1)).toBe('6 d 23 h');
    expect(duration(-5)).toBe('0 s');
    expect(expiry(1_000, 1_000)).toBe('expires in 1 s');
    expect(expiry(1_000, 1_180)).toBe('expired 3 min 0 s ago');
  });

  it('says what is left of a count', () => {
    expect(usesLeft(3, 10)).toBe('7 of 10 uses left');
    expect(usesLeft(12, 10)).toBe('0 of 10 uses left');
    expect(usesLeft(0, 1)).toBe('1 of 1 use left');
    expect(usesLeft(5, 0)).toBe('unlimited uses');
  });
});
