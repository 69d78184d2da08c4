//! valet-core against the vectors the forge tests check the deployed validator against
//! (`contracts/test/vectors/sessions.json`): same encoding, id, grant digest, signature prefix
//! and session-key digest.

use alloy_primitives::U256;
use alloy_primitives::{Address, B256, hex};
use valet_core::user_operation::{nonce, session_lane, validator_nonce_key};
use valet_core::{PackedUserOperation, Session, eip712, signature};

fn field<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("vector field {key} missing"))
}

fn bytes(v: &serde_json::Value, key: &str) -> Vec<u8> {
    hex::decode(field(v, key)).unwrap_or_else(|e| panic!("vector field {key}: {e}"))
}

fn b256(v: &serde_json::Value, key: &str) -> B256 {
    field(v, key).parse().unwrap_or_else(|e| panic!("vector field {key}: {e}"))
}

#[test]
fn valet_core_matches_the_validator_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/test/vectors/sessions.json");
    let text = std::fs::read_to_string(path).expect("vectors file");
    let root: serde_json::Value = serde_json::from_str(&text).expect("vectors JSON");
    let validator: Address = field(&root, "validator").parse().expect("validator");
    let account: Address = field(&root, "account").parse().expect("account");
    let chain_id = root["chain_id"].as_u64().expect("chain_id");
    let user_op_hash = b256(&root, "user_op_hash");

    let sessions = root["sessions"].as_object().expect("sessions");
    assert!(sessions.len() >= 4, "every vector is checked");
    for (name, v) in sessions {
        let packed = bytes(v, "packed");
        let session = Session::decode(&packed).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(session.encode().expect("encode").as_ref(), &packed[..], "{name}: re-encoding");
        let id = session.id().expect("id");
        assert_eq!(id, b256(v, "id"), "{name}: session id");
        assert_eq!(
            eip712::grant_digest(&session, account, validator, chain_id).expect("digest"),
            b256(v, "grant_digest"),
            "{name}: grant digest"
        );
        let claimed_time = v["claimed_time"].as_u64().expect("claimed_time");
        let indices = bytes(v, "indices");
        assert_eq!(
            signature::prefix(&packed, claimed_time, &indices, None).expect("prefix").as_ref(),
            &bytes(v, "use_signature_prefix")[..],
            "{name}: use signature prefix"
        );
        assert_eq!(
            signature::key_digest(user_op_hash, id, claimed_time, &indices),
            b256(v, "key_digest"),
            "{name}: session key digest"
        );
    }
}

#[test]
fn the_user_op_hash_is_the_entry_points() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/test/vectors/sessions.json");
    let root: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors file")).expect("vectors JSON");
    let chain_id = root["chain_id"].as_u64().expect("chain_id");
    let validator: Address = field(&root, "validator").parse().expect("validator");
    let v = &root["user_operation"];
    let op = PackedUserOperation {
        sender: field(v, "sender").parse().expect("sender"),
        nonce: U256::from_be_bytes(b256(v, "nonce").0),
        init_code: bytes(v, "init_code").into(),
        call_data: bytes(v, "call_data").into(),
        account_gas_limits: b256(v, "account_gas_limits"),
        pre_verification_gas: U256::from(v["pre_verification_gas"].as_u64().expect("pvg")),
        gas_fees: b256(v, "gas_fees"),
        paymaster_and_data: bytes(v, "paymaster_and_data").into(),
        signature: bytes(v, "signature").into(),
    };
    assert_eq!(op.hash(valet_core::ENTRY_POINT_V07, chain_id), b256(v, "hash"), "userOpHash");
    assert_eq!(op.nonce, nonce(validator_nonce_key(validator, 0x0102_0304), 5), "nonce key layout");
    assert_eq!(session_lane(B256::repeat_byte(0xab)), 0xabab_abab);
}
