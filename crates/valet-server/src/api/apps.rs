//! Registering apps (`POST /v1/apps`, with the admin token), optionally with a daily
//! sponsorship budget.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::Service;

use super::sponsorship::{SetSponsorship, parse_daily_budget, set_budget};
use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApp {
    pub(crate) name: String,
    /// The app's daily sponsorship budget, if it has one.
    #[serde(default)]
    pub(crate) sponsorship: Option<SetSponsorship>,
}

pub(crate) async fn create_app(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    ApiJson(req, _): ApiJson<CreateApp>,
) -> ApiResult {
    admin(&service, &headers)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad("name must be 1 to 100 characters"));
    }
    let budget = req.sponsorship.as_ref().map(|s| parse_daily_budget(&s.daily_budget_wei)).transpose()?.flatten();
    let (app, key) = service.vault.create_app(name).await?;
    service.vault.audit(&app.id, None, None, "app.created", &json!({ "name": name })).await?;
    if budget.is_some() {
        set_budget(&service, &app.id, budget).await?;
    }
    let sponsorship = service.sponsorship_json(&app).await?;
    ok(StatusCode::CREATED, json!({ "id": app.id, "name": app.name, "api_key": key, "sponsorship": sponsorship }))
}
