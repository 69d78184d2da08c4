//! The EIP-712 digests the owner signs: grants and revocations (`docs/encoding.md` §6).

use alloy_primitives::{Address, B256, U256, b256, keccak256};

use crate::{Error, Session};

/// `Rule(uint8 arg,uint8 op,bytes32[] values)`
pub const RULE_TYPE: &str = "Rule(uint8 arg,uint8 op,bytes32[] values)";
/// `Limit(...)`
pub const LIMIT_TYPE: &str = "Limit(uint8 kind,address token,uint128 amount,uint48 period)";
/// `Permission(...)` without the types it references.
pub const PERMISSION_TYPE: &str =
    "Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)";
/// `Session(...)` without the types it references.
pub const SESSION_TYPE: &str = "Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint64 epoch,\
uint32 salt,uint24 maxUses,uint80 feeBudget,address[] paymasters,Limit[] limits,Permission[] permissions)";
/// `Grant(address account,Session session)` without the types it references.
pub const GRANT_TYPE: &str = "Grant(address account,Session session)";
/// One chain's entry of a multichain grant, without the types it references.
pub const CHAIN_GRANT_TYPE: &str = "ChainGrant(uint256 chainId,address validator,address account,Session session)";
/// What the owner signs to grant sessions on several chains at once.
pub const MULTICHAIN_GRANT_TYPE: &str = "MultichainGrant(ChainGrant[] grants)";
/// What the owner signs to revoke one session.
pub const REVOKE_SESSION_TYPE: &str = "RevokeSession(address account,bytes32 sessionId)";
/// What the owner signs to revoke every session.
pub const REVOKE_ALL_TYPE: &str = "RevokeAllSessions(address account,uint64 epoch)";

// The type hashes: keccak256 of each type's encoding (its string, then the types it references
// in alphabetical order), as the validator declares them; the tests below recompute each.

/// `keccak256(RULE_TYPE)`.
pub const RULE_TYPEHASH: B256 = b256!("0x3d1408be3474fc40a6a6b72f28bd10641c4b9a9acbac3e7d8f9e8d5935923c66");
/// `keccak256(LIMIT_TYPE)`.
pub const LIMIT_TYPEHASH: B256 = b256!("0x53cc31f1e7900585cd902a1ccfffe607f9885f4f34a677f6d51b923844d8abda");
/// `keccak256(PERMISSION_TYPE ‖ RULE_TYPE)`.
pub const PERMISSION_TYPEHASH: B256 = b256!("0xe7fa5568adde80b2e6eba6899249e1fed6d585dca8de6ef30fa6652dbc5041df");
/// `keccak256(SESSION_TYPE ‖ LIMIT_TYPE ‖ PERMISSION_TYPE ‖ RULE_TYPE)`.
pub const SESSION_TYPEHASH: B256 = b256!("0x7931237e38cf18e097ae0b6bafa8e9ed860ee254c3df3ddd42aa618f523df88f");
/// `keccak256(GRANT_TYPE ‖ LIMIT_TYPE ‖ PERMISSION_TYPE ‖ RULE_TYPE ‖ SESSION_TYPE)`.
pub const GRANT_TYPEHASH: B256 = b256!("0x0c1a72ace299b0358141e569a6f169ba21b17263e2f97c270f724e6e62065a48");
/// `keccak256(CHAIN_GRANT_TYPE ‖ LIMIT_TYPE ‖ PERMISSION_TYPE ‖ RULE_TYPE ‖ SESSION_TYPE)`.
pub const CHAIN_GRANT_TYPEHASH: B256 = b256!("0x5462b40f6d238f54fc882b1b8e8b771c55473e87d75cb5b43761ae8ebbac0889");
/// `keccak256(MULTICHAIN_GRANT_TYPE ‖ CHAIN_GRANT_TYPE ‖ LIMIT_TYPE ‖ PERMISSION_TYPE ‖ RULE_TYPE ‖ SESSION_TYPE)`.
pub const MULTICHAIN_GRANT_TYPEHASH: B256 = b256!("0x6c418feb9c690015bc4fbf0c66b0aa1131fe4d049011db2afe694eeb8e7f6feb");
/// `keccak256(REVOKE_SESSION_TYPE)`.
pub const REVOKE_SESSION_TYPEHASH: B256 = b256!("0x872b4d1b3565ebdec68c1a9f8052d54438832a68092fcb192953e38da618111e");
/// `keccak256(REVOKE_ALL_TYPE)`.
pub const REVOKE_ALL_TYPEHASH: B256 = b256!("0x8a5b18c0bf323e8eb2ee80a0c4c129264440ccbcc23093602e6bfb42999d60e6");

/// The domain's type: `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`.
pub const DOMAIN_TYPE: &str = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
/// `keccak256(DOMAIN_TYPE)`.
pub const DOMAIN_TYPEHASH: B256 = b256!("0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f");
/// The multichain grant's domain type: name and version only, as one signature serves several
/// chains and validators (each entry names its own).
pub const MULTICHAIN_DOMAIN_TYPE: &str = "EIP712Domain(string name,string version)";
/// `keccak256(MULTICHAIN_DOMAIN_TYPE)`.
pub const MULTICHAIN_DOMAIN_TYPEHASH: B256 =
    b256!("0xb03948446334eb9b2196d5eb166f69b9d49403eb4a12f36de8d3f9f3cb8e15c3");
/// The multichain domain separator: `hashStruct(EIP712Domain("Valet", "1"))`.
pub const MULTICHAIN_DOMAIN_SEPARATOR: B256 =
    b256!("0x39e811de1bbe3262508f769df32b00405758ec6eb297afafbb7f67eae7dde9d1");
/// The domain's name.
pub const DOMAIN_NAME: &str = "Valet";
/// `keccak256(DOMAIN_NAME)`.
const DOMAIN_NAME_HASH: B256 = b256!("0xc78bce0b0fbc51deefb32c0616721cb3d74c1048f7a7462235cf90342a2b13e8");
/// The domain's version.
pub const DOMAIN_VERSION: &str = "1";
/// `keccak256(DOMAIN_VERSION)`.
const DOMAIN_VERSION_HASH: B256 = b256!("0xc89efdaa54c0f20c7adf612882df0950f5a951637e0307cdcb4c672f298b8bc6");

fn word(x: impl Into<u128>) -> [u8; 32] {
    U256::from(x.into()).to_be_bytes()
}

fn address_word(a: Address) -> [u8; 32] {
    a.into_word().0
}

fn hash_words(words: &[[u8; 32]]) -> B256 {
    keccak256(words.as_flattened())
}

/// `hashStruct(Session)`.
pub fn session_hash(s: &Session) -> B256 {
    let limits: Vec<[u8; 32]> = s
        .limits
        .iter()
        .map(|l| {
            hash_words(&[LIMIT_TYPEHASH.0, word(l.kind as u8), address_word(l.token), word(l.amount), word(l.period)]).0
        })
        .collect();
    let permissions: Vec<[u8; 32]> = s
        .permissions
        .iter()
        .map(|p| {
            let rules: Vec<[u8; 32]> = p
                .rules
                .iter()
                .map(|r| {
                    let values: Vec<[u8; 32]> = r.values.iter().map(|v| v.0).collect();
                    hash_words(&[RULE_TYPEHASH.0, word(r.arg), word(r.op as u8), hash_words(&values).0]).0
                })
                .collect();
            let mut selector = [0u8; 32];
            selector[..4].copy_from_slice(p.selector.as_slice());
            hash_words(&[
                PERMISSION_TYPEHASH.0,
                address_word(p.target),
                selector,
                word(p.value_limit),
                word(p.max_uses),
                hash_words(&rules).0,
            ])
            .0
        })
        .collect();
    let paymasters: Vec<[u8; 32]> = s.paymasters.iter().map(|p| address_word(*p)).collect();
    hash_words(&[
        SESSION_TYPEHASH.0,
        address_word(s.session_key),
        word(s.valid_after),
        word(s.valid_until),
        word(s.epoch),
        word(s.salt),
        word(s.max_uses),
        word(s.fee_budget),
        hash_words(&paymasters).0,
        hash_words(&limits).0,
        hash_words(&permissions).0,
    ])
}

/// The validator's EIP-712 domain separator: name "Valet", version "1", `chain_id`, `validator`.
pub fn domain_separator(validator: Address, chain_id: u64) -> B256 {
    hash_words(&[DOMAIN_TYPEHASH.0, DOMAIN_NAME_HASH.0, DOMAIN_VERSION_HASH.0, word(chain_id), address_word(validator)])
}

fn typed_digest(validator: Address, chain_id: u64, struct_hash: B256) -> B256 {
    let mut preimage = Vec::with_capacity(66);
    preimage.extend_from_slice(b"\x19\x01");
    preimage.extend_from_slice(domain_separator(validator, chain_id).as_slice());
    preimage.extend_from_slice(struct_hash.as_slice());
    keccak256(preimage)
}

/// The digest the owner signs to grant `session` to `account` (after checking the session
/// encodes as the validator requires).
pub fn grant_digest(session: &Session, account: Address, validator: Address, chain_id: u64) -> Result<B256, Error> {
    session.encode()?;
    let grant = hash_words(&[GRANT_TYPEHASH.0, address_word(account), session_hash(session).0]);
    Ok(typed_digest(validator, chain_id, grant))
}

/// One chain's entry of a multichain grant: `session` granted to `account` on chain `chain_id`,
/// enforced by `validator` there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainGrant {
    /// The chain.
    pub chain_id: u64,
    /// The validator on that chain.
    pub validator: Address,
    /// The account on that chain.
    pub account: Address,
    /// The session on that chain (its epoch is that chain's).
    pub session: Session,
}

impl ChainGrant {
    /// `hashStruct(ChainGrant)`: what the validator on `chain_id` computes for itself (after
    /// checking the session encodes as the validator requires).
    pub fn hash(&self) -> Result<B256, Error> {
        self.session.encode()?;
        Ok(hash_words(&[
            CHAIN_GRANT_TYPEHASH.0,
            word(self.chain_id),
            address_word(self.validator),
            address_word(self.account),
            session_hash(&self.session).0,
        ]))
    }
}

/// The digest the owner signs to grant sessions on several chains at once, from the entries'
/// struct hashes ([`ChainGrant::hash`]) in the order signed.
pub fn multichain_grant_digest(entries: &[B256]) -> B256 {
    let list = keccak256(entries.iter().flat_map(|e| e.0).collect::<Vec<u8>>());
    let grant = hash_words(&[MULTICHAIN_GRANT_TYPEHASH.0, list.0]);
    let mut preimage = Vec::with_capacity(66);
    preimage.extend_from_slice(b"\x19\x01");
    preimage.extend_from_slice(MULTICHAIN_DOMAIN_SEPARATOR.as_slice());
    preimage.extend_from_slice(grant.as_slice());
    keccak256(preimage)
}

/// The digest the owner signs to revoke one session.
pub fn revoke_session_digest(account: Address, session_id: B256, validator: Address, chain_id: u64) -> B256 {
    let revoke = hash_words(&[REVOKE_SESSION_TYPEHASH.0, address_word(account), session_id.0]);
    typed_digest(validator, chain_id, revoke)
}

/// The digest the owner signs to revoke every session of `account`, which is at `epoch` (the
/// signature works once: the revoke-all moves the epoch).
pub fn revoke_all_digest(account: Address, epoch: u64, validator: Address, chain_id: u64) -> B256 {
    let revoke = hash_words(&[REVOKE_ALL_TYPEHASH.0, address_word(account), word(epoch)]);
    typed_digest(validator, chain_id, revoke)
}

fn domain_json(validator: Address, chain_id: u64) -> serde_json::Value {
    serde_json::json!({ "name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": validator })
}

fn domain_type() -> serde_json::Value {
    serde_json::json!([
        { "name": "name", "type": "string" },
        { "name": "version", "type": "string" },
        { "name": "chainId", "type": "uint256" },
        { "name": "verifyingContract", "type": "address" }
    ])
}

/// The grant as `eth_signTypedData_v4` JSON, for wallets: signing it gives the signature of
/// [`grant_digest`]. Integers are decimal strings.
pub fn grant_typed_data(
    session: &Session,
    account: Address,
    validator: Address,
    chain_id: u64,
) -> Result<serde_json::Value, Error> {
    session.encode()?;
    Ok(serde_json::json!({
        "types": {
            "EIP712Domain": domain_type(),
            "Grant": [{ "name": "account", "type": "address" }, { "name": "session", "type": "Session" }],
            "Session": session_types(),
            "Limit": limit_types(),
            "Permission": permission_types(),
            "Rule": rule_types()
        },
        "primaryType": "Grant",
        "domain": domain_json(validator, chain_id),
        "message": { "account": account, "session": session_json(session) }
    }))
}

/// A multichain grant as `eth_signTypedData_v4` JSON: signing it gives the signature of
/// [`multichain_grant_digest`] over the entries' hashes. The domain has no chain id, so a wallet
/// signs it on whichever chain it is connected to.
pub fn multichain_grant_typed_data(grants: &[ChainGrant]) -> Result<serde_json::Value, Error> {
    let mut entries = Vec::with_capacity(grants.len());
    for g in grants {
        g.session.encode()?;
        entries.push(serde_json::json!({
            "chainId": g.chain_id.to_string(), "validator": g.validator, "account": g.account,
            "session": session_json(&g.session)
        }));
    }
    Ok(serde_json::json!({
        "types": {
            "EIP712Domain": [{ "name": "name", "type": "string" }, { "name": "version", "type": "string" }],
            "MultichainGrant": [{ "name": "grants", "type": "ChainGrant[]" }],
            "ChainGrant": [
                { "name": "chainId", "type": "uint256" }, { "name": "validator", "type": "address" },
                { "name": "account", "type": "address" }, { "name": "session", "type": "Session" }
            ],
            "Session": session_types(),
            "Limit": limit_types(),
            "Permission": permission_types(),
            "Rule": rule_types()
        },
        "primaryType": "MultichainGrant",
        "domain": { "name": DOMAIN_NAME, "version": DOMAIN_VERSION },
        "message": { "grants": entries }
    }))
}

fn session_types() -> serde_json::Value {
    serde_json::json!([
        { "name": "sessionKey", "type": "address" }, { "name": "validAfter", "type": "uint48" },
        { "name": "validUntil", "type": "uint48" }, { "name": "epoch", "type": "uint64" },
        { "name": "salt", "type": "uint32" }, { "name": "maxUses", "type": "uint24" },
        { "name": "feeBudget", "type": "uint80" }, { "name": "paymasters", "type": "address[]" },
        { "name": "limits", "type": "Limit[]" }, { "name": "permissions", "type": "Permission[]" }
    ])
}

fn limit_types() -> serde_json::Value {
    serde_json::json!([
        { "name": "kind", "type": "uint8" }, { "name": "token", "type": "address" },
        { "name": "amount", "type": "uint128" }, { "name": "period", "type": "uint48" }
    ])
}

fn permission_types() -> serde_json::Value {
    serde_json::json!([
        { "name": "target", "type": "address" }, { "name": "selector", "type": "bytes4" },
        { "name": "valueLimit", "type": "uint128" }, { "name": "maxUses", "type": "uint16" },
        { "name": "rules", "type": "Rule[]" }
    ])
}

fn rule_types() -> serde_json::Value {
    serde_json::json!([
        { "name": "arg", "type": "uint8" }, { "name": "op", "type": "uint8" },
        { "name": "values", "type": "bytes32[]" }
    ])
}

/// A session as typed-data message JSON (integers as decimal strings).
fn session_json(session: &Session) -> serde_json::Value {
    let limits: Vec<serde_json::Value> = session
        .limits
        .iter()
        .map(|l| {
            serde_json::json!({
                "kind": (l.kind as u8).to_string(), "token": l.token,
                "amount": l.amount.to_string(), "period": l.period.to_string()
            })
        })
        .collect();
    let permissions: Vec<serde_json::Value> = session
        .permissions
        .iter()
        .map(|p| {
            let rules: Vec<serde_json::Value> = p
                .rules
                .iter()
                .map(|r| serde_json::json!({ "arg": r.arg.to_string(), "op": (r.op as u8).to_string(), "values": r.values }))
                .collect();
            serde_json::json!({
                "target": p.target, "selector": p.selector, "valueLimit": p.value_limit.to_string(),
                "maxUses": p.max_uses.to_string(), "rules": rules
            })
        })
        .collect();
    serde_json::json!({
        "sessionKey": session.session_key, "validAfter": session.valid_after.to_string(),
        "validUntil": session.valid_until.to_string(), "epoch": session.epoch.to_string(),
        "salt": session.salt.to_string(), "maxUses": session.max_uses.to_string(),
        "feeBudget": session.fee_budget.to_string(), "paymasters": session.paymasters,
        "limits": limits, "permissions": permissions
    })
}

/// The revocation of every session as `eth_signTypedData_v4` JSON ([`revoke_all_digest`]).
pub fn revoke_all_typed_data(account: Address, epoch: u64, validator: Address, chain_id: u64) -> serde_json::Value {
    serde_json::json!({
        "types": {
            "EIP712Domain": domain_type(),
            "RevokeAllSessions": [{ "name": "account", "type": "address" }, { "name": "epoch", "type": "uint64" }]
        },
        "primaryType": "RevokeAllSessions",
        "domain": domain_json(validator, chain_id),
        "message": { "account": account, "epoch": epoch.to_string() }
    })
}

/// The revocation of one session as `eth_signTypedData_v4` JSON ([`revoke_session_digest`]).
pub fn revoke_session_typed_data(
    account: Address,
    session_id: B256,
    validator: Address,
    chain_id: u64,
) -> serde_json::Value {
    serde_json::json!({
        "types": {
            "EIP712Domain": domain_type(),
            "RevokeSession": [{ "name": "account", "type": "address" }, { "name": "sessionId", "type": "bytes32" }]
        },
        "primaryType": "RevokeSession",
        "domain": domain_json(validator, chain_id),
        "message": { "account": account, "sessionId": session_id }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each constant type hash is keccak256 of its type's encoding.
    #[test]
    fn the_type_hashes_are_those_of_the_type_strings() {
        let hash = |parts: &[&str]| keccak256(parts.concat());
        assert_eq!(RULE_TYPEHASH, hash(&[RULE_TYPE]));
        assert_eq!(LIMIT_TYPEHASH, hash(&[LIMIT_TYPE]));
        assert_eq!(PERMISSION_TYPEHASH, hash(&[PERMISSION_TYPE, RULE_TYPE]));
        assert_eq!(SESSION_TYPEHASH, hash(&[SESSION_TYPE, LIMIT_TYPE, PERMISSION_TYPE, RULE_TYPE]));
        assert_eq!(GRANT_TYPEHASH, hash(&[GRANT_TYPE, LIMIT_TYPE, PERMISSION_TYPE, RULE_TYPE, SESSION_TYPE]));
        assert_eq!(
            CHAIN_GRANT_TYPEHASH,
            hash(&[CHAIN_GRANT_TYPE, LIMIT_TYPE, PERMISSION_TYPE, RULE_TYPE, SESSION_TYPE])
        );
        assert_eq!(
            MULTICHAIN_GRANT_TYPEHASH,
            hash(&[MULTICHAIN_GRANT_TYPE, CHAIN_GRANT_TYPE, LIMIT_TYPE, PERMISSION_TYPE, RULE_TYPE, SESSION_TYPE])
        );
        assert_eq!(MULTICHAIN_DOMAIN_TYPEHASH, hash(&[MULTICHAIN_DOMAIN_TYPE]));
        assert_eq!(
            MULTICHAIN_DOMAIN_SEPARATOR,
            hash_words(&[MULTICHAIN_DOMAIN_TYPEHASH.0, DOMAIN_NAME_HASH.0, DOMAIN_VERSION_HASH.0])
        );
        assert_eq!(REVOKE_SESSION_TYPEHASH, hash(&[REVOKE_SESSION_TYPE]));
        assert_eq!(REVOKE_ALL_TYPEHASH, hash(&[REVOKE_ALL_TYPE]));
        assert_eq!(DOMAIN_TYPEHASH, hash(&[DOMAIN_TYPE]));
        assert_eq!(DOMAIN_NAME_HASH, hash(&[DOMAIN_NAME]));
        assert_eq!(DOMAIN_VERSION_HASH, hash(&[DOMAIN_VERSION]));
    }
}
