//! Schedules: calls run every period by the chain's clock.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Service;
use crate::vault::{ScheduleRow, random_id};

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSchedule {
    pub(crate) calls: Vec<CallRequest>,
    /// "1d", "12h", "90s", or seconds.
    pub(crate) every: Value,
    #[serde(default)]
    pub(crate) start_at: Option<u64>,
    #[serde(default)]
    pub(crate) max_runs: Option<u32>,
}

pub(crate) fn schedule_json(s: &ScheduleRow) -> Value {
    json!({
        "schedule_id": s.id,
        "session_id": s.session_id,
        "calls": serde_json::from_str::<Value>(&s.body).map(|b| b["calls"].clone()).unwrap_or(Value::Null),
        "start_at": s.start_at,
        "every": s.every,
        "max_runs": s.max_runs,
        "next_run": s.next_run,
        "next_run_at": s.start_at + s.next_run * s.every,
        "status": s.status,
        "reason": s.reason,
    })
}

pub(crate) async fn create_schedule(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    Path(id): Path<String>,
    ApiJson(req, _): ApiJson<CreateSchedule>,
) -> ApiResult {
    let every = match &req.every {
        Value::Number(n) => n.as_u64().ok_or_else(|| ApiError::bad(format!("every = {n}: give whole seconds")))?,
        Value::String(text) => {
            valet_core::spec::parse_duration(text).map_err(|e| ApiError::bad(format!("every: {e}")))?
        }
        other => return Err(ApiError::bad(format!("every = {other}: give \"1d\", \"12h\", \"90s\" or seconds"))),
    };
    if !(1..=366 * 86_400).contains(&every) {
        return Err(ApiError::bad(format!("every = {every} s: give 1 s to 366 days")));
    }
    if req.max_runs == Some(0) {
        return Err(ApiError::bad("max_runs must be at least 1"));
    }
    let (row, _, id) = load(&service, &app, &id).await?;
    let account = row_account(&row)?;
    let names = session_names(&service, &row);
    let execute = Execute { calls: req.calls.clone() };
    build_calls(&execute, account.address, &names)?;
    if row.status != "active" {
        return Err(ApiError::conflict(
            "not_active",
            format!("session {id} is {}: schedules run in active sessions", row.status),
        ));
    }
    let now = service.valet_of(&row)?.now().await?;
    let start_at = req.start_at.unwrap_or(now);
    if start_at > i64::MAX as u64 / 2 {
        return Err(ApiError::bad(format!("start_at {start_at} is out of range")));
    }
    let schedule = ScheduleRow {
        id: random_id(),
        app_id: app.id.clone(),
        session_id: row.id.clone(),
        body: json!({ "calls": serde_json::to_value(req.calls.iter().map(call_json).collect::<Vec<_>>()).unwrap_or_default() }).to_string(),
        start_at: start_at as i64,
        every: every as i64,
        max_runs: req.max_runs.map(i64::from),
        next_run: 0,
        status: "active".into(),
        reason: None,
    };
    service.vault.insert_schedule(&schedule).await?;
    service
        .vault
        .audit(
            &app.id,
            Some(&row.account),
            Some(&row.id),
            "schedule.created",
            &json!({ "schedule_id": schedule.id, "every": every }),
        )
        .await?;
    ok(StatusCode::CREATED, schedule_json(&schedule))
}

pub(crate) fn call_json(c: &CallRequest) -> Value {
    let mut v = json!({ "to": c.to });
    if let Some(value) = &c.value {
        v["value"] = json!(value);
    }
    if let Some(data) = &c.data {
        v["data"] = json!(data);
    }
    if let Some(function) = &c.function {
        v["function"] = json!(function);
        v["args"] = json!(c.args);
    }
    v
}

pub(crate) async fn list_schedules(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    let (row, _, _) = load(&service, &app, &id).await?;
    let schedules = service.vault.schedules(&app.id, Some(&row.id)).await?;
    ok(StatusCode::OK, json!({ "schedules": schedules.iter().map(schedule_json).collect::<Vec<_>>() }))
}

pub(crate) async fn cancel_schedule(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::bad(format!("schedule id `{id}` is not 32 hex digits")));
    }
    let Some(session) = service.vault.cancel_schedule(&app.id, &id).await? else {
        return Err(ApiError::not_found(format!("no active schedule {id} for this app")));
    };
    // A run already under way holds its session's lane: wait for it, so that once this answers
    // the schedule has no run in flight and will start none (runs check it is still active once
    // they hold the lane).
    let _lanes = service.hold_lane(&session).await?;
    service.vault.audit(&app.id, None, None, "schedule.cancelled", &json!({ "schedule_id": id })).await?;
    ok(StatusCode::OK, json!({ "schedule_id": id, "status": "cancelled" }))
}
