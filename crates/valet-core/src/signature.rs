//! The UserOperation signature the validator reads, and what the session key signs
//! (`docs/encoding.md` §4).

use alloy_primitives::{B256, Bytes, keccak256};

use crate::Error;

/// Mode byte of an operation that uses an enabled session.
pub const MODE_USE: u8 = 0;
/// Mode byte of an operation that enables its session (with the owner's grant) and uses it.
pub const MODE_ENABLE: u8 = 1;
/// Mode byte of an operation that enables its session with a multichain grant and uses it.
pub const MODE_ENABLE_MULTICHAIN: u8 = 2;
/// Most chains one multichain grant may list.
pub const MAX_CHAINS: usize = 32;
/// Most calls (and permission indices) in one operation.
pub const MAX_CALLS: usize = 32;

/// Everything before the session key's 65-byte signature, for a use (`grant = None`) or an
/// enable-and-use operation: `mode ‖ len(session) ‖ session ‖ claimedTime ‖ n ‖ indices
/// [‖ len(grant) ‖ grant]`.
pub fn prefix(session: &[u8], claimed_time: u64, indices: &[u8], grant: Option<&[u8]>) -> Result<Bytes, Error> {
    let mode = if grant.is_some() { MODE_ENABLE } else { MODE_USE };
    prefix_with_mode(mode, session, claimed_time, indices, grant)
}

/// Everything before the session key's signature for an operation that enables its session with
/// a multichain grant ([`multichain_grant`]) and uses it: as [`prefix`], with mode 2.
pub fn multichain_prefix(session: &[u8], claimed_time: u64, indices: &[u8], grant: &[u8]) -> Result<Bytes, Error> {
    prefix_with_mode(MODE_ENABLE_MULTICHAIN, session, claimed_time, indices, Some(grant))
}

/// A mode-2 grant for the chain whose entry stands at `position` of `entries` (the struct hashes
/// the owner signed, in order): `K ‖ position ‖ every other entry ‖ owner signature`. The
/// validator computes its own entry, so this one is left out.
pub fn multichain_grant(entries: &[B256], position: usize, owner_signature: &[u8]) -> Result<Bytes, Error> {
    if entries.is_empty() || entries.len() > MAX_CHAINS {
        return Err(Error::OutOfRange { field: "chain count", value: entries.len() as u128, max: MAX_CHAINS as u128 });
    }
    if position >= entries.len() {
        return Err(Error::OutOfRange {
            field: "chain position",
            value: position as u128,
            max: entries.len() as u128 - 1,
        });
    }
    let mut out = Vec::with_capacity(2 + 32 * (entries.len() - 1) + owner_signature.len());
    out.push(entries.len() as u8);
    out.push(position as u8);
    for (i, e) in entries.iter().enumerate() {
        if i != position {
            out.extend_from_slice(e.as_slice());
        }
    }
    out.extend_from_slice(owner_signature);
    Ok(out.into())
}

fn prefix_with_mode(
    mode: u8,
    session: &[u8],
    claimed_time: u64,
    indices: &[u8],
    grant: Option<&[u8]>,
) -> Result<Bytes, Error> {
    if session.len() > u16::MAX as usize {
        return Err(Error::OutOfRange { field: "session length", value: session.len() as u128, max: u16::MAX.into() });
    }
    if indices.is_empty() || indices.len() > MAX_CALLS {
        return Err(Error::CallCount(indices.len()));
    }
    if claimed_time >= 1 << 48 {
        return Err(Error::OutOfRange { field: "claimed_time", value: claimed_time.into(), max: (1 << 48) - 1 });
    }
    let mut out = Vec::with_capacity(3 + session.len() + 7 + indices.len() + 2 + 65);
    out.push(mode);
    out.extend_from_slice(&(session.len() as u16).to_be_bytes());
    out.extend_from_slice(session);
    out.extend_from_slice(&claimed_time.to_be_bytes()[2..]);
    out.push(indices.len() as u8);
    out.extend_from_slice(indices);
    if let Some(grant) = grant {
        if grant.len() > u16::MAX as usize {
            return Err(Error::OutOfRange { field: "grant length", value: grant.len() as u128, max: u16::MAX.into() });
        }
        out.extend_from_slice(&(grant.len() as u16).to_be_bytes());
        out.extend_from_slice(grant);
    }
    Ok(out.into())
}

/// A well-formed 65-byte ECDSA signature that recovers to no key anyone holds, for gas
/// estimation (the validator then answers `SIG_VALIDATION_FAILED` instead of reverting):
/// r = 0xff…f0 ‖ 16 zero bytes (below the curve order, unlike 0xff…ff00, which OpenZeppelin's
/// `ECDSA.recover` rejects with a revert), s = 0x7aaa…aa (low), v = 28.
pub const DUMMY_ECDSA_SIGNATURE: [u8; 65] = {
    let mut sig = [0u8; 65];
    let mut i = 0;
    while i < 15 {
        sig[i] = 0xff;
        i += 1;
    }
    sig[15] = 0xf0;
    sig[32] = 0x7a;
    i = 33;
    while i < 64 {
        sig[i] = 0xaa;
        i += 1;
    }
    sig[64] = 0x1c;
    sig
};

/// What the session key signs (raw ECDSA, low s): `keccak256(userOpHash ‖ sessionId ‖
/// claimedTime (6 bytes) ‖ call count (1) ‖ permission indices)`.
pub fn key_digest(user_op_hash: B256, session_id: B256, claimed_time: u64, indices: &[u8]) -> B256 {
    let mut preimage = Vec::with_capacity(64 + 7 + indices.len());
    preimage.extend_from_slice(user_op_hash.as_slice());
    preimage.extend_from_slice(session_id.as_slice());
    preimage.extend_from_slice(&claimed_time.to_be_bytes()[2..]);
    preimage.push(indices.len() as u8);
    preimage.extend_from_slice(indices);
    keccak256(preimage)
}
