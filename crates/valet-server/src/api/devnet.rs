//! The devnet faucet, and the devnet's node and bundler on the page's origin.

use std::sync::Arc;

use alloy::primitives::Address;
use alloy::providers::Provider;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::Service;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fund {
    pub(crate) address: String,
    /// Whether to top its ETH up too (default true); false for an account whose fees a sponsor
    /// pays, which needs only the demo tokens.
    #[serde(default = "yes")]
    pub(crate) eth: bool,
}

fn yes() -> bool {
    true
}

/// Tops an account up with ETH (unless `eth` is false) and demo tokens on a development chain.
pub(crate) async fn devnet_fund(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    ApiJson(req, _): ApiJson<Fund>,
) -> ApiResult {
    let address = parse_address(&req.address, "address")?;
    if address == Address::ZERO {
        return Err(ApiError::bad(format!("address {address} is the zero address: funds sent there are lost")));
    }
    let Some(faucet) = &service.faucet else {
        return Err(ApiError::conflict(
            "no_faucet",
            "this service is not on a development chain: fund the account from a wallet",
        ));
    };
    let sent = faucet.fund(address, req.eth).await.map_err(|e| match e {
        crate::web::FaucetError::Rejected(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected_by_chain", format!("funding {address}: {e}"))
        }
        crate::web::FaucetError::Node(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("faucet: {e}"))
        }
    })?;
    if !sent.is_empty() {
        let detail = json!({ "transactions": sent });
        service.vault.audit(&app.id, Some(&address.to_string()), None, "account.funded", &detail).await?;
    }
    let balance = service
        .valet
        .provider()
        .get_balance(address)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("node: {e}")))?;
    ok(
        StatusCode::OK,
        json!({ "address": address, "funded": !sent.is_empty(), "transactions": sent, "balance_wei": balance.to_string() }),
    )
}

/// `POST /rpc`: a JSON-RPC request for the devnet's node ([`crate::web::DevnetRpc`]), answered
/// with HTTP 200 and a JSON-RPC result or error, whatever the body.
pub(crate) async fn devnet_node(State(service): State<Arc<Service>>, body: axum::body::Bytes) -> ApiResult {
    forward(&service, crate::web::Upstream::Node, &body).await
}

/// `POST /bundler`: a JSON-RPC request for the devnet's bundler, as `POST /rpc`.
pub(crate) async fn devnet_bundler(State(service): State<Arc<Service>>, body: axum::body::Bytes) -> ApiResult {
    forward(&service, crate::web::Upstream::Bundler, &body).await
}

async fn forward(service: &Service, upstream: crate::web::Upstream, body: &[u8]) -> ApiResult {
    let Some(rpc) = &service.devnet_rpc else {
        return Err(ApiError::not_found("this service forwards no JSON-RPC: `valet up` does, on its devnet"));
    };
    ok(StatusCode::OK, rpc.answer(upstream, body).await)
}

// ------------------------------------------------------------------ schedules
