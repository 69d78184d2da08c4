#![doc = include_str!("../README.md")]

pub mod api;

use wasm_bindgen::prelude::*;

/// `Err(message)` as a thrown JS `Error` with that message; a value as JSON text.
fn json(outcome: api::Outcome<serde_json::Value>) -> Result<String, JsError> {
    outcome.map(|v| v.to_string()).map_err(|e| JsError::new(&e))
}

/// `Err(message)` as a thrown JS `Error`; a value as its text (`0x` hex for bytes and words).
fn text<T: ToString>(outcome: api::Outcome<T>) -> Result<String, JsError> {
    outcome.map(|v| v.to_string()).map_err(|e| JsError::new(&e))
}

fn whole(what: &str, value: f64) -> Result<u64, JsError> {
    api::whole(what, value).map_err(|e| JsError::new(&e))
}

/// A spec (TOML or JSON) resolved for a context: JSON `{packed, id, summary, warnings, functions}`.
#[wasm_bindgen(js_name = parseSpec)]
pub fn parse_spec(spec: &str, format: &str, context: &str) -> Result<String, JsError> {
    json(api::parse_spec(spec, format, context))
}

/// The id of a packed session.
#[wasm_bindgen(js_name = sessionId)]
pub fn session_id(packed: &str) -> Result<String, JsError> {
    text(api::session_id(packed))
}

/// The owner's grant on one chain: JSON `{typedData, digest}`.
#[wasm_bindgen(js_name = grantTypedData)]
pub fn grant_typed_data(packed: &str, account: &str, validator: &str, chain_id: f64) -> Result<String, JsError> {
    json(api::grant_typed_data(packed, account, validator, whole("chain id", chain_id)?))
}

/// The account's calldata for an execution (JSON `{calls, batch?}`).
#[wasm_bindgen(js_name = encodeExecution)]
pub fn encode_execution(execution: &str) -> Result<String, JsError> {
    text(api::encode_execution(execution))
}

/// The execution an account's calldata makes: JSON `{calls, batch}`.
#[wasm_bindgen(js_name = decodeExecution)]
pub fn decode_execution(call_data: &str) -> Result<String, JsError> {
    json(api::decode_execution(call_data))
}

/// A v0.7 UserOperation (JSON-RPC form) packed, with its userOpHash: JSON `{packed, hash}`.
#[wasm_bindgen(js_name = packUserOperation)]
pub fn pack_user_operation(op: &str, entry_point: &str, chain_id: f64) -> Result<String, JsError> {
    json(api::pack_user_operation(op, entry_point, whole("chain id", chain_id)?))
}

/// The userOpHash of a packed UserOperation (JSON) at an EntryPoint v0.7.
#[wasm_bindgen(js_name = packedUserOperationHash)]
pub fn packed_user_operation_hash(op: &str, entry_point: &str, chain_id: f64) -> Result<String, JsError> {
    text(api::packed_user_operation_hash(op, entry_point, whole("chain id", chain_id)?))
}

/// The signature before the session key's 65 bytes: mode 0 without a grant, mode 1 with one.
#[wasm_bindgen(js_name = signaturePrefix)]
pub fn signature_prefix(
    packed: &str,
    claimed_time: f64,
    indices: &[u8],
    grant: Option<String>,
) -> Result<String, JsError> {
    text(api::signature_prefix(packed, whole("claimed time", claimed_time)?, indices, grant.as_deref()))
}

/// What the session key signs for an operation.
#[wasm_bindgen(js_name = keyDigest)]
pub fn key_digest(user_op_hash: &str, session_id: &str, claimed_time: f64, indices: &[u8]) -> Result<String, JsError> {
    text(api::key_digest(user_op_hash, session_id, whole("claimed time", claimed_time)?, indices))
}

/// A signature of the final length for gas estimation (the key's 65 bytes recover to no key).
#[wasm_bindgen(js_name = stubSignature)]
pub fn stub_signature(
    packed: &str,
    claimed_time: f64,
    indices: &[u8],
    grant: Option<String>,
) -> Result<String, JsError> {
    text(api::stub_signature(packed, whole("claimed time", claimed_time)?, indices, grant.as_deref()))
}

/// The EntryPoint nonce key of a session's operations (`0x` hex).
#[wasm_bindgen(js_name = nonceKey)]
pub fn nonce_key(session_id: &str, validator: &str) -> Result<String, JsError> {
    text(api::nonce_key(session_id, validator))
}

/// The owner's revocation of one session: JSON `{typedData, digest}`.
#[wasm_bindgen(js_name = revokeTypedData)]
pub fn revoke_typed_data(account: &str, session_id: &str, validator: &str, chain_id: f64) -> Result<String, JsError> {
    json(api::revoke_typed_data(account, session_id, validator, whole("chain id", chain_id)?))
}

/// The evaluator's counters from the validator's views: JSON `{counters, standing}`.
#[wasm_bindgen(js_name = chainCounters)]
pub fn chain_counters(views: &str) -> Result<String, JsError> {
    json(api::chain_counters(views))
}

/// The evaluator: JSON in (session, request, counters, now), JSON out (accepted with indices
/// and counters, or refused with the reason the CLI prints).
#[wasm_bindgen]
pub fn evaluate(input: &str) -> Result<String, JsError> {
    json(api::evaluate(input))
}

/// The demo specs (`mint`, `payment`, `vote`) as TOML: JSON `{mint, payment, vote}`.
#[wasm_bindgen(js_name = demoSpecs)]
pub fn demo_specs() -> String {
    serde_json::json!({
        "mint": valet_core::spec::DEMO_MINT_SPEC,
        "payment": valet_core::spec::DEMO_PAYMENT_SPEC,
        "vote": valet_core::spec::DEMO_VOTE_SPEC,
    })
    .to_string()
}
