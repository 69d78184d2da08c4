//! The UserOperation signature the validator reads, and what the session key signs
//! (`docs/encoding.md` §4).

use alloy_primitives::{B256, Bytes, keccak256};

use crate::Error;

/// Mode byte of an operation that uses an enabled session.
pub const MODE_USE: u8 = 0;
/// Mode byte of an operation that enables its session (with the owner's grant) and uses it.
pub const MODE_ENABLE: u8 = 1;
/// Most calls (and permission indices) in one operation.
pub const MAX_CALLS: usize = 32;

/// Everything before the session key's 65-byte signature, for a use (`grant = None`) or an
/// enable-and-use operation: `mode ‖ len(session) ‖ session ‖ claimedTime ‖ n ‖ indices
/// [‖ len(grant) ‖ grant]`.
pub fn prefix(session: &[u8], claimed_time: u64, indices: &[u8], grant: Option<&[u8]>) -> Result<Bytes, Error> {
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
    out.push(if grant.is_some() { MODE_ENABLE } else { MODE_USE });
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
