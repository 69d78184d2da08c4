//! Each app's gas sponsorship: its daily budget, set by the admin (`PUT
//! /v1/apps/{id}/sponsorship`, or at registration), and what is left of it today (`GET
//! /v1/sponsorship`, for the app). See [`crate::sponsorship`] for how it is spent.

use std::sync::Arc;

use alloy::primitives::U256;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Service;
use crate::vault::App;

use super::*;

/// A daily budget, as the admin gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSponsorship {
    /// Wei per UTC day, as a decimal string; `null` or `"0"`: no sponsorship. Required.
    pub(crate) daily_budget_wei: Value,
}

/// The daily budget `value` says: wei as a decimal string, or `null`; zero is none.
pub(crate) fn parse_daily_budget(value: &Value) -> Result<Option<U256>, ApiError> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(text) => text,
        other => {
            return Err(ApiError::bad(format!(
                "daily_budget_wei {other} must be wei as a decimal string (\"1000000000000000000\" is 1 ETH), or null"
            )));
        }
    };
    if text.is_empty() || text.len() > 78 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad(format!(
            "daily_budget_wei `{}` is not wei as a decimal string (digits only: \"1000000000000000000\" is 1 ETH)",
            text.chars().take(80).collect::<String>()
        )));
    }
    let budget = U256::from_str_radix(text, 10)
        .map_err(|_| ApiError::bad(format!("daily_budget_wei `{text}` does not fit in 256 bits")))?;
    Ok(Some(budget).filter(|b| !b.is_zero()))
}

/// `GET /v1/sponsorship`: the app's daily budget, what its operations spent today (UTC), what is
/// reserved for operations not settled yet, what is left, and the paymaster that pays.
pub(crate) async fn show_sponsorship(State(service): State<Arc<Service>>, Authed(app): Authed) -> ApiResult {
    ok(StatusCode::OK, service.sponsorship_json(&app).await?)
}

/// `PUT /v1/apps/{id}/sponsorship` (admin token): sets an app's daily budget.
pub(crate) async fn set_sponsorship(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(req, _): ApiJson<SetSponsorship>,
) -> ApiResult {
    admin(&service, &headers)?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ApiError::bad(format!(
            "app id `{}` is not one this service gives (32 lowercase hex digits)",
            id.chars().take(100).collect::<String>()
        )));
    }
    let budget = parse_daily_budget(&req.daily_budget_wei)?;
    set_budget(&service, &id, budget).await?.ok_or_else(|| ApiError::not_found(format!("no app {id}")))?;
    let name = service.vault.app_name(&id).await?.unwrap_or_default();
    ok(StatusCode::OK, service.sponsorship_json(&App { id, name }).await?)
}

/// Sets app `id`'s budget and records it in its audit log; `None` if there is no such app.
pub(crate) async fn set_budget(service: &Service, id: &str, budget: Option<U256>) -> Result<Option<()>, ApiError> {
    if !service.vault.set_sponsorship_budget(id, budget).await? {
        return Ok(None);
    }
    let detail = json!({ "daily_budget_wei": budget.map(|b| b.to_string()) });
    service.vault.audit(id, None, None, "sponsorship.budget_set", &detail).await?;
    Ok(Some(()))
}
