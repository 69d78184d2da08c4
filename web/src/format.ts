// Small, pure formatting helpers (unit-tested in format.test.ts).

/// `0x1234…abcd`.
export function short(hex: string, keep = 4): string {
  return hex.length <= 2 + keep * 2 + 1 ? hex : `${hex.slice(0, 2 + keep)}…${hex.slice(-keep)}`;
}

/// An integer amount in base units with `decimals`, as a decimal without trailing zeros, at most
/// `places` fractional digits (rounded down): units("1500000000000000000", 18) = "1.5".
export function units(value: string | number | bigint, decimals: number, places = 4): string {
  const v = BigInt(typeof value === 'number' ? Math.trunc(value).toLocaleString('fullwide', { useGrouping: false }) : value);
  const negative = v < 0n;
  const abs = negative ? -v : v;
  const base = 10n ** BigInt(decimals);
  const whole = abs / base;
  let fraction = (abs % base).toString().padStart(decimals, '0').slice(0, places).replace(/0+$/, '');
  if (decimals === 0) fraction = '';
  return `${negative ? '-' : ''}${whole.toString()}${fraction ? `.${fraction}` : ''}`;
}

/// Wei as ETH, with 4 decimals, or as many as a small amount needs to show its first digit:
/// eth("998500000000000000") = "0.9985 ETH", eth("1000000000") = "0.000000001 ETH".
export function eth(wei: string | bigint): string {
  let places = 4;
  while (places < 18 && BigInt(wei) > 0n && units(wei, 18, places) === '0') places++;
  return `${units(wei, 18, places)} ETH`;
}

/// Seconds as a countdown: "59 min 12 s", "6 d 23 h", "0 s".
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  const rest = s % 60;
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  if (m > 0) return `${m} min ${rest} s`;
  return `${rest} s`;
}

/// "in 59 min 12 s" or "expired 3 min ago".
export function expiry(validUntil: number, now: number): string {
  return validUntil >= now ? `expires in ${duration(validUntil - now + 1)}` : `expired ${duration(now - validUntil)} ago`;
}

/// "7 of 10 uses left" (or "unlimited uses" when the session does not count).
export function usesLeft(uses: number, maxUses: number): string {
  if (maxUses === 0) return 'unlimited uses';
  const left = Math.max(0, maxUses - uses);
  return `${left} of ${maxUses} use${maxUses === 1 ? '' : 's'} left`;
}
