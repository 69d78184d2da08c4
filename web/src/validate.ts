// The custom form checked in the page, in the user's words and with the service's grammar
// (crates/valet-core/src/spec.rs, docs/spec.md), before anything is sent; and the service's
// messages put in the page's words (rules numbered from 1, no internal call numbers, short ids).
// Unit-tested in validate.test.ts.

import { short } from './format';

/// The longest session the page offers: a year. The service takes longer ones; a key valid for
/// decades is almost always a typo.
export const MAX_VALID_FOR_SECONDS = 365 * 86_400;
/// The most calls one permission counts (the validator's uint16).
export const MAX_PERMISSION_USES = 65_535;
/// The shortest period of an allowance (the service's MIN_PERIOD).
export const MIN_PERIOD_SECONDS = 60;

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400, w: 604_800 };

/// A duration as the service reads it — a whole number then s, m, h, d or w — in seconds; an
/// Error in the user's words (naming `field`) otherwise.
export function parseDuration(text: string, field: string): number {
  const t = text.trim();
  if (!t) throw new Error(`${field}: give a duration, like 30m, 1h, 7d or 2w`);
  if (/^\d+$/.test(t)) throw new Error(`${field}: “${t}” needs a unit: s, m, h, d or w (like ${t}m or ${t}h)`);
  const match = /^(\d+)\s*([smhdw])$/.exec(t);
  if (!match) throw new Error(`${field}: “${t}” is not a duration; write a whole number and s, m, h, d or w, like 30m, 1h, 7d or 2w`);
  const seconds = Number(match[1]) * UNITS[match[2]!]!;
  if (seconds === 0) throw new Error(`${field}: “${t}” is no time at all; give at least 1 minute`);
  return seconds;
}

/// An amount of ETH as typed ("0.01"): a non-negative decimal with at most 18 decimals.
export function checkEth(text: string, field: string, { positive = false } = {}): string {
  const t = text.trim();
  if (!/^\d+(\.\d{1,18})?$/.test(t) && !/^\.\d{1,18}$/.test(t)) {
    throw new Error(`${field}: “${t}” is not an amount of ETH; write a number like 0.01`);
  }
  if (positive && Number(t) <= 0) throw new Error(`${field}: give more than 0 ETH`);
  return t.startsWith('.') ? `0${t}` : t;
}

/// "Calls allowed" as typed: empty (uncounted) or a whole number from 1 to 65,535.
export function checkUses(text: string, field: string): number | undefined {
  const t = text.trim();
  if (!t) return undefined;
  if (!/^\d+$/.test(t)) throw new Error(`${field}: “${t}” is not a whole number; give 1 to 65,535, or leave it empty for no count`);
  const n = Number(t);
  if (n < 1) throw new Error(`${field}: give at least 1, or leave it empty for no count`);
  if (n > MAX_PERMISSION_USES) throw new Error(`${field}: ${t} is more than 65,535, the most calls one permission can count`);
  return n;
}

/// The service's message in the page's words: the custom form's single permission unnamed, its
/// rules numbered from 1 as the page numbers them, no internal call numbers, 66-character ids
/// shortened.
export function serviceWords(message: string): string {
  return message
    .replace(/\bpermission 0, rule (\d+)/g, (_, n: string) => `rule ${Number(n) + 1}`)
    .replace(/\bpermission 0(: |, )/g, '')
    .replace(/\blimit 0\b/g, 'the spending limit')
    .replace(/\bcall \d+ \((?:[^()]|\([^()]*\))*\):\s*/g, '')
    .replace(/0x[0-9a-fA-F]{64}\b/g, (id) => short(id));
}

/// "1–5 per mint" from a session's summary ("… only if … quantity ≤ 5"); null when it says no
/// bound.
export function quantityRange(summary: string[]): { min: number; max: number } | null {
  for (const line of summary) {
    const le = /\bquantity ≤ (\d+)/.exec(line) ?? /\bquantity < (\d+)/.exec(line);
    if (le) return { min: 1, max: le[0].includes('<') && !le[0].includes('≤') ? Number(le[1]) - 1 : Number(le[1]) };
  }
  return null;
}
