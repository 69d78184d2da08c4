import { describe, expect, it } from 'vitest';
import type { SessionInfo } from './api';
import { sessionView, viewsKey } from './session-state';

function session(fields: Partial<SessionInfo> = {}, chain: Partial<SessionInfo['chain']> = {}): SessionInfo {
  return {
    session_id: '0x01',
    status: 'active',
    account: '0x02',
    owner: '0x03',
    session_key: '0x04',
    summary: [],
    usable: true,
    reason: null,
    ...fields,
    chain: {
      id: '0x01',
      state: 'enabled',
      usable: true,
      reason: null,
      now: 1_000,
      valid_after: 900,
      valid_until: 1_020,
      uses: 1,
      max_uses: 0,
      permissions: [{ target: '0x05', selector: '0x40c10f19', uses: 1, max_uses: 10 }],
      limits: [],
      fees: { mode: 'sponsored', budget: '0', spent: '0', left: '0', paymasters: [] },
      ...chain,
    },
  };
}

describe('session state', () => {
  it('is active while valid, and expired the second after its last', () => {
    expect(sessionView(session(), 1_020)).toMatchObject({ badge: 'active', usable: true });
    // The service's answer still says usable: the clock decides.
    expect(sessionView(session(), 1_021)).toMatchObject({ badge: 'expired', label: 'Expired', usable: false, counting: false });
  });

  it('says revoked whether the service or the chain says so, before anything else', () => {
    expect(sessionView(session({ status: 'revoked', usable: false }), 2_000).badge).toBe('revoked');
    expect(sessionView(session({}, { state: 'revoked' }), 1_000)).toMatchObject({ badge: 'revoked', counting: false });
    expect(sessionView(session({}, { state: 'voided' }), 1_000).badge).toBe('revoked');
  });

  it('says used up when every use is spent', () => {
    expect(sessionView(session({}, { uses: 10, permissions: [{ target: '0x05', selector: '0x40c10f19', uses: 10, max_uses: 10 }] }), 1_000)).toMatchObject({
      badge: 'used-up',
      usable: false,
      counting: false,
    });
    expect(sessionView(session({}, { uses: 3, max_uses: 3 }), 1_000).badge).toBe('used-up');
  });

  it('says when the module is not installed, or the service refuses for its own reason', () => {
    expect(sessionView(session({}, { state: 'not_installed' }), 1_000).badge).toBe('not-installed');
    expect(sessionView(session({ usable: false, reason: 'the fee budget is spent' }), 1_000)).toMatchObject({
      badge: 'unusable',
      reason: 'the fee budget is spent',
    });
  });

  it('keys the views so a change with time re-renders', () => {
    expect(viewsKey([session()], 1_000)).not.toBe(viewsKey([session()], 1_021));
  });
});
