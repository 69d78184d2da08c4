//! The app's audit log.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::Service;

use super::*;

pub(crate) async fn audit(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let q = query_map(query)?;
    let account = q.get("account").map(|a| parse_address(a, "account")).transpose()?.map(|a| a.to_string());
    let session = q.get("session_id").map(|s| parse_session_id(s)).transpose()?.map(|s| s.to_string());
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad(format!("limit `{l}` must be 1 to 1000")))?,
        None => 100,
    };
    let events = service.vault.audit_log(&app.id, account.as_deref(), session.as_deref(), limit).await?;
    ok(StatusCode::OK, json!({ "events": events }))
}
