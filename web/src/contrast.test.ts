import { describe, expect, it } from 'vitest';
import { contrast, parseColor } from './contrast';

describe('contrast', () => {
  it('parses the colours getComputedStyle gives', () => {
    expect(parseColor('#fff')).toEqual([255, 255, 255]);
    expect(parseColor('rgb(106, 27, 154)')).toEqual([106, 27, 154]);
    expect(parseColor('rgba(0, 0, 0, 0.5)')).toEqual([0, 0, 0]);
    expect(parseColor('transparent')).toBeNull();
  });

  it('computes WCAG ratios', () => {
    expect(contrast('#000', '#fff')).toBeCloseTo(21, 5);
    expect(contrast('#fff', '#fff')).toBe(1);
    // The old focus ring failed against white; the new one passes, and its dark-header variant too.
    expect(contrast('#ffb000', '#ffffff')).toBeLessThan(3);
    expect(contrast('#6a1b9a', '#ffffff')).toBeGreaterThanOrEqual(3);
    expect(contrast('#6a1b9a', '#f6f5f1')).toBeGreaterThanOrEqual(3);
    expect(contrast('#ffd24d', '#1d1b16')).toBeGreaterThanOrEqual(3);
  });
});
