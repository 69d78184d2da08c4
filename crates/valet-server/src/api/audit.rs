//! The app's audit log.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::Service;

use super::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    account: Option<String>,
    session_id: Option<String>,
    limit: Option<String>,
}

pub(crate) async fn audit(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult {
    let account = q.account.as_deref().map(|a| parse_address(a, "account")).transpose()?.map(|a| a.to_string());
    let session = q.session_id.as_deref().map(parse_session_id).transpose()?.map(|s| s.to_string());
    let limit = match &q.limit {
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
