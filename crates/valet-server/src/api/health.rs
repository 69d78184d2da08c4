//! Liveness, metrics and the OpenAPI document.

use std::sync::Arc;

use alloy::providers::Provider;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Service;

use super::*;

/// How long `/health` waits for the node.
const HEALTH_NODE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `/health`: ready (200) when the node answers within [`HEALTH_NODE_TIMEOUT`] on the expected
/// chain and Valet's contracts are there; else 503 naming what is wrong. Always answers quickly,
/// whatever the node does. Also counts what the service is still settling with the chain.
pub(crate) async fn health(State(service): State<Arc<Service>>) -> ApiResult {
    let provider = service.valet.provider();
    let deployment = service.valet.deployment();
    let checks = async {
        let block = provider.get_block_number().await.map_err(|e| format!("the node fails: {e}"))?;
        let chain_id = provider.get_chain_id().await.map_err(|e| format!("the node fails: {e}"))?;
        if chain_id != service.valet.chain_id() {
            return Err(format!("the node is on chain {chain_id}, not {}", service.valet.chain_id()));
        }
        let contracts = [
            ("entry_point", deployment.entry_point),
            ("validator", deployment.validator),
            ("factory", deployment.factory),
        ];
        let mut missing = Vec::new();
        for (name, address) in contracts {
            let code = provider.get_code_at(address).await.map_err(|e| format!("the node fails: {e}"))?;
            if code.is_empty() {
                missing.push(format!("{name} ({address})"));
            }
        }
        if !missing.is_empty() {
            return Err(format!("no contract on chain {chain_id} at: {}", missing.join(", ")));
        }
        Ok(block)
    };
    let ready = match tokio::time::timeout(HEALTH_NODE_TIMEOUT, checks).await {
        Ok(ready) => ready,
        Err(_) => Err(format!("the node did not answer within {HEALTH_NODE_TIMEOUT:?}")),
    };
    let (unknown, revocations) = service.vault.settling().await.map_or((None, None), |(u, r)| (Some(u), Some(r)));
    let settling = json!({ "unknown_executions": unknown, "pending_revocations": revocations });
    match ready {
        Ok(block) => ok(
            StatusCode::OK,
            json!({ "status": "ok", "chain_id": service.valet.chain_id(), "block": block, "submitter": service.valet.submitter().kind(), "settling": settling }),
        ),
        Err(reason) => {
            let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason);
            e.extra =
                Some(json!({ "status": "not_ready", "chain_id": service.valet.chain_id(), "settling": settling }));
            Err(e)
        }
    }
}

pub(crate) async fn metrics(State(service): State<Arc<Service>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], service.metrics.render()).into_response()
}

pub(crate) async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}
