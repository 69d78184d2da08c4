//! Liveness, metrics and the OpenAPI document.

use std::sync::Arc;

use alloy::providers::Provider;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Service;

use super::*;

pub(crate) async fn health(State(service): State<Arc<Service>>) -> ApiResult {
    match service.valet.provider().get_block_number().await {
        Ok(block) => ok(
            StatusCode::OK,
            json!({ "status": "ok", "chain_id": service.valet.chain_id(), "block": block, "submitter": service.valet.submitter().kind() }),
        ),
        Err(e) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("node: {e}"))),
    }
}

pub(crate) async fn metrics(State(service): State<Arc<Service>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], service.metrics.render()).into_response()
}

pub(crate) async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}
