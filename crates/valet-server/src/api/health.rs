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
/// chain and Valet's contracts are there; else 503 naming what is wrong (`not_ready`, with the
/// chain id and what is settling: the service is up, the chain is not). Made to be polled every
/// few seconds by every open page: its five reads of the node go at once (one round trip, a
/// few milliseconds on a local node), it answers within [`HEALTH_NODE_TIMEOUT`] whatever the
/// node does, one check runs at a time however many pollers ask (those who asked while it ran
/// share its answer, which began after they asked), and the answer is never cached.
pub(crate) async fn health(State(service): State<Arc<Service>>) -> ApiResult {
    let asked = tokio::time::Instant::now();
    let ready = {
        let mut last = service.health.lock().await;
        match &*last {
            Some((at, ready)) if *at >= asked => ready.clone(),
            _ => {
                let started = tokio::time::Instant::now();
                let ready = check_node(&service).await;
                *last = Some((started, ready.clone()));
                ready
            }
        }
    };
    let (unknown, revocations) = service.vault.settling().await.map_or((None, None), |(u, r)| (Some(u), Some(r)));
    let settling = json!({ "unknown_executions": unknown, "pending_revocations": revocations });
    let no_store = [(axum::http::header::CACHE_CONTROL, "no-store")];
    match ready {
        Ok(block) => Ok((
            no_store,
            axum::Json(json!({ "status": "ok", "chain_id": service.valet.chain_id(), "block": block, "submitter": service.valet.submitter().kind(), "settling": settling })),
        )
            .into_response()),
        Err(reason) => {
            let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason);
            e.extra =
                Some(json!({ "status": "not_ready", "chain_id": service.valet.chain_id(), "settling": settling }));
            Ok((no_store, e).into_response())
        }
    }
}

/// The node's latest block, if it answers within [`HEALTH_NODE_TIMEOUT`] on the expected chain
/// with Valet's contracts deployed; else what is wrong.
async fn check_node(service: &Service) -> Result<u64, String> {
    let provider = service.valet.provider();
    let deployment = service.valet.deployment();
    let contracts =
        [("entry_point", deployment.entry_point), ("validator", deployment.validator), ("factory", deployment.factory)];
    let checks = async {
        let fails = |e: alloy::transports::TransportError| format!("the node fails: {e}");
        let (block, chain_id, entry_point, validator, factory) = tokio::join!(
            provider.get_block_number(),
            provider.get_chain_id(),
            provider.get_code_at(contracts[0].1),
            provider.get_code_at(contracts[1].1),
            provider.get_code_at(contracts[2].1),
        );
        let (block, chain_id) = (block.map_err(fails)?, chain_id.map_err(fails)?);
        if chain_id != service.valet.chain_id() {
            return Err(format!("the node is on chain {chain_id}, not {}", service.valet.chain_id()));
        }
        let mut missing = Vec::new();
        for ((name, address), code) in contracts.iter().zip([entry_point, validator, factory]) {
            if code.map_err(fails)?.is_empty() {
                missing.push(format!("{name} ({address})"));
            }
        }
        if !missing.is_empty() {
            return Err(format!("no contract on chain {chain_id} at: {}", missing.join(", ")));
        }
        Ok(block)
    };
    match tokio::time::timeout(HEALTH_NODE_TIMEOUT, checks).await {
        Ok(ready) => ready,
        Err(_) => Err(format!("the node did not answer within {HEALTH_NODE_TIMEOUT:?}")),
    }
}

pub(crate) async fn metrics(State(service): State<Arc<Service>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], service.metrics.render()).into_response()
}

pub(crate) async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}
