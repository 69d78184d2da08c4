//! Registering apps (`POST /v1/apps`, with the admin token).

use std::sync::Arc;

use axum::body::Bytes as Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::Service;
use crate::vault::sha256_hex;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApp {
    pub(crate) name: String,
}

pub(crate) async fn create_app(State(service): State<Arc<Service>>, headers: HeaderMap, body: Body) -> ApiResult {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if sha256_hex(token.trim().as_bytes()) != service.admin_token_hash {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "registering apps needs the admin token"));
    }
    let req: CreateApp = parse_body(&headers, &body)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad("name must be 1 to 100 characters"));
    }
    let (app, key) = service.vault.create_app(name).await?;
    service.vault.audit(&app.id, None, None, "app.created", &json!({ "name": name })).await?;
    ok(StatusCode::CREATED, json!({ "id": app.id, "name": app.name, "api_key": key }))
}
