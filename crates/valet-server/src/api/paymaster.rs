//! ERC-7677 for the service's own paymaster: `POST /v1/paymaster`, JSON-RPC 2.0, authenticated
//! with the app's API key like every app endpoint (also as Basic credentials, for clients
//! configured with a URL alone: `http://valet:<API key>@host/v1/paymaster`).
//!
//! - `pm_getPaymasterStubData [userOp, entryPoint, chainId, context]`: fields for gas
//!   estimation (a throwaway signature of the final length), `isFinal: false`, and the sponsor's
//!   name (the app's). Reserves nothing.
//! - `pm_getPaymasterData [userOp, entryPoint, chainId, context]`: the sponsor's approval of the
//!   operation, its maximum cost reserved against the app's daily budget first, the same budget
//!   the operations the service builds for the app spend ([`crate::sponsorship`]). The service
//!   never sees these operations sent: reconciliation finds their UserOperationEvent, or lets the
//!   reservation expire with the approval.
//!
//! `userOp` is an EntryPoint v0.7 operation in JSON-RPC form (hex quantities), `entryPoint` must
//! be the service's, `chainId` its chain as a hex string; `context` is ignored. A request that is
//! not a JSON-RPC 2.0 request object is answered 400 in the API's error shape; everything else
//! with HTTP 200 and a JSON-RPC result or error:
//!
//! | code     | meaning |
//! |----------|---------|
//! | -32601   | no such method |
//! | -32602   | bad params: what is wrong, naming the value (another entryPoint or chain id, a malformed operation) |
//! | -32001   | the app's budget cannot cover the operation today (`data`: `dailyBudgetWei`, `leftWei`, `maxCostWei`) |
//! | -32002   | the app's operations are not sponsored (no budget, or the service has no paymaster) |
//! | -32603   | the service failed (its database, the node): retry |

use std::sync::Arc;

use alloy::primitives::Address;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use valet_client::{Paymaster as _, PaymasterFields};
use valet_core::UserOperation;

use crate::Service;
use crate::vault::{App, utc_day};

use super::*;

/// The sponsorship was refused: the app's budget cannot cover the operation today.
pub(crate) const SPONSORSHIP_REFUSED: i64 = -32001;
/// The app's operations are not sponsored at all.
pub(crate) const NOT_SPONSORED: i64 = -32002;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

/// A JSON-RPC 2.0 request (a notification, without `id`, is not one this endpoint answers).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RpcRequest {
    jsonrpc: String,
    id: Value,
    method: String,
    /// Absent: `None` (a JSON-RPC error); present, it must be an array (`null` is not).
    #[serde(default, deserialize_with = "present")]
    params: Option<Vec<Value>>,
}

/// A field that is there: `Some` of its value, whatever it is (`null` is refused by `T`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A JSON-RPC error object.
#[derive(Debug)]
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    fn params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

impl From<crate::Error> for RpcError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::SponsorshipBudgetExceeded { budget, left, max_cost } => Self {
                code: SPONSORSHIP_REFUSED,
                message: e.to_string(),
                data: Some(json!({
                    "dailyBudgetWei": budget.to_string(),
                    "leftWei": left.to_string(),
                    "maxCostWei": max_cost.to_string(),
                })),
            },
            crate::Error::NotSponsored(reason) => Self::new(NOT_SPONSORED, reason),
            crate::Error::Client(valet_client::Error::Config(m)) => Self::params(m),
            other => {
                tracing::warn!(error = %other, "paymaster request failed");
                Self::new(INTERNAL_ERROR, format!("the service failed: {other}; retry"))
            }
        }
    }
}

/// At most `n` characters of `value` as JSON, for error messages.
fn shown(value: &Value, n: usize) -> String {
    let text = value.to_string();
    match text.char_indices().nth(n) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `POST /v1/paymaster`.
pub(crate) async fn paymaster_rpc(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    ApiJson(req, _): ApiJson<RpcRequest>,
) -> ApiResult {
    if req.jsonrpc != "2.0" {
        return Err(ApiError::bad(format!(
            "jsonrpc `{}` is not \"2.0\": send a JSON-RPC 2.0 request",
            req.jsonrpc.chars().take(20).collect::<String>()
        )));
    }
    if !(req.id.is_string() || req.id.is_i64() || req.id.is_u64() || req.id.is_null()) {
        return Err(ApiError::bad(format!("id {} must be a string, an integer or null", shown(&req.id, 40))));
    }
    let answer = match answer(&service, &app, &req.method, req.params.as_deref()).await {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": req.id, "result": result }),
        Err(e) => {
            let mut error = json!({ "code": e.code, "message": e.message });
            if let Some(data) = e.data {
                error["data"] = data;
            }
            json!({ "jsonrpc": "2.0", "id": req.id, "error": error })
        }
    };
    ok(StatusCode::OK, answer)
}

async fn answer(service: &Service, app: &App, method: &str, params: Option<&[Value]>) -> Result<Value, RpcError> {
    let stub = match method {
        "pm_getPaymasterStubData" => true,
        "pm_getPaymasterData" => false,
        other => {
            return Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!(
                    "no method `{}`: this endpoint serves pm_getPaymasterStubData and pm_getPaymasterData (ERC-7677)",
                    other.chars().take(60).collect::<String>()
                ),
            ));
        }
    };
    let op = operation(service, params)?;
    if let Some(reason) = service.not_sponsored(app).await? {
        return Err(RpcError::new(NOT_SPONSORED, reason));
    }
    if !stub {
        let sponsored = service.sponsor_operation(app, &op, None).await?;
        return Ok(fields_json(&sponsored.fields));
    }
    // Nothing left today: said now rather than after the caller's gas estimation.
    let usage = service.vault.sponsorship_usage(&app.id, utc_day(crate::vault::now())).await?;
    if let Some(budget) = usage.budget.filter(|_| usage.left().is_zero()) {
        let mut e = RpcError::new(
            SPONSORSHIP_REFUSED,
            format!(
                "sponsorship budget exceeded: nothing is left today (UTC) of this app's daily sponsorship budget of {}",
                crate::sponsorship::wei(budget)
            ),
        );
        e.data = Some(json!({ "dailyBudgetWei": budget.to_string(), "leftWei": "0" }));
        return Err(e);
    }
    let sponsor =
        service.sponsor.as_ref().ok_or_else(|| RpcError::new(NOT_SPONSORED, crate::sponsorship::NO_SPONSOR))?;
    let (entry_point, chain_id) = (service.valet.deployment().entry_point, service.valet.chain_id());
    let stub = sponsor.stub(&op, entry_point, chain_id).await.map_err(|e| RpcError::from(crate::Error::from(e)))?;
    let mut answer = fields_json(&stub.fields);
    answer["isFinal"] = json!(false);
    answer["sponsor"] = json!({ "name": app.name });
    Ok(answer)
}

/// The operation in `params`, checked to be for this service's EntryPoint and chain.
fn operation(service: &Service, params: Option<&[Value]>) -> Result<UserOperation, RpcError> {
    const SHAPE: &str = "give [userOp, entryPoint, chainId, context]";
    let params = params.ok_or_else(|| RpcError::params(format!("no params: {SHAPE}")))?;
    if !(3..=4).contains(&params.len()) {
        return Err(RpcError::params(format!("{} params: {SHAPE}", params.len())));
    }
    let op: UserOperation = serde_json::from_value(params[0].clone()).map_err(|e| {
        RpcError::params(format!("params[0], the userOp (EntryPoint v0.7 JSON-RPC form, hex quantities): {e}"))
    })?;
    let ours = service.valet.deployment().entry_point;
    let entry_point: Address = params[1].as_str().and_then(|a| a.parse().ok()).ok_or_else(|| {
        RpcError::params(format!("params[1], the entryPoint, {} is not an address", shown(&params[1], 80)))
    })?;
    if entry_point != ours {
        return Err(RpcError::params(format!(
            "entryPoint {entry_point} is not supported: this service sponsors operations for EntryPoint v0.7 at {ours}"
        )));
    }
    let chain_id = service.valet.chain_id();
    let asked = params[2]
        .as_str()
        .and_then(|c| c.strip_prefix("0x"))
        .filter(|hex| !hex.is_empty())
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| {
            RpcError::params(format!(
                "params[2], the chainId, {} is not a hex string (\"{chain_id:#x}\")",
                shown(&params[2], 80)
            ))
        })?;
    if asked != chain_id {
        return Err(RpcError::params(format!(
            "chainId {asked:#x} ({asked}) is not this service's chain: it sponsors on chain {chain_id:#x} ({chain_id})"
        )));
    }
    Ok(op)
}

/// Paymaster fields as ERC-7677 answers them (hex quantities).
fn fields_json(fields: &PaymasterFields) -> Value {
    json!({
        "paymaster": fields.paymaster,
        "paymasterData": fields.paymaster_data,
        "paymasterVerificationGasLimit": format!("{:#x}", fields.verification_gas_limit),
        "paymasterPostOpGasLimit": format!("{:#x}", fields.post_op_gas_limit),
    })
}
