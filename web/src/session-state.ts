// What a session is right now, as the page shows it: derived from the service's answer and the
// chain's clock, so that expiry, revocation, exhaustion and a missing module show the moment they
// are true, not at the next read (unit-tested in session-state.test.ts).

import type { SessionInfo } from './api';

/// The badge a session card shows.
export type SessionBadge = 'active' | 'revoked' | 'expired' | 'used-up' | 'not-yet' | 'not-installed' | 'unusable';

export interface SessionView {
  badge: SessionBadge;
  /// The badge's words.
  label: string;
  /// Whether an action may be tried through it now.
  usable: boolean;
  /// Why not, in plain words (null when usable).
  reason: string | null;
  /// Whether the time left still matters (not for a revoked or used-up session).
  counting: boolean;
}

const LABELS: Record<SessionBadge, string> = {
  active: 'Active',
  revoked: 'Revoked',
  expired: 'Expired',
  'used-up': 'Used up',
  'not-yet': 'Not yet valid',
  'not-installed': 'Not installed',
  unusable: 'Not usable',
};

function view(badge: SessionBadge, reason: string | null): SessionView {
  return {
    badge,
    label: LABELS[badge],
    usable: badge === 'active',
    reason,
    counting: badge === 'active' || badge === 'not-yet',
  };
}

/// The session's state at chain time `now` (unix seconds). The states that end a session come
/// first (revoked, expired, used up), so that an ended session never reads as usable.
export function sessionView(s: SessionInfo, now: number): SessionView {
  const c = s.chain;
  if (s.status === 'revoked' || c.state === 'revoked') return view('revoked', 'it was revoked');
  if (c.state === 'voided') return view('revoked', 'all sessions of this account were revoked since it was granted');
  if (c.valid_until < now) return view('expired', 'its time is over');
  if (c.max_uses > 0 && c.uses >= c.max_uses) return view('used-up', 'all its uses are spent');
  const counted = c.permissions.filter((p) => p.max_uses > 0);
  if (c.permissions.length > 0 && counted.length === c.permissions.length && counted.every((p) => (p.uses ?? 0) >= p.max_uses)) {
    return view('used-up', 'all its uses are spent');
  }
  if (c.state === 'not_installed') return view('not-installed', "Valet's module is not installed in this account");
  if (c.valid_after > now) return view('not-yet', 'its time has not started yet');
  if (s.status === 'proposed') return view('unusable', "it waits for the owner's approval");
  if (!s.usable || !c.usable) return view('unusable', s.reason ?? c.reason ?? 'the service says it is not usable');
  return view('active', null);
}

/// One key for the views of `sessions` at `now`: when it changes, the page re-renders.
export function viewsKey(sessions: SessionInfo[], now: number): string {
  return sessions.map((s) => `${s.session_id}:${sessionView(s, now).badge}`).join(',');
}
