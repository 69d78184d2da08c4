//! The scheduler: runs due schedules, once per run, by the chain's clock.

use std::sync::Arc;

use alloy::primitives::{B256, Bytes};
use serde_json::{Value, json};
use valet_core::Session;

use crate::Service;
use crate::api::executions::{Execute, Run, build_calls};
use crate::api::session_names;
use crate::api::sessions::row_account;
use crate::vault::{App, sha256_hex};

/// One pass of the scheduler: every active schedule whose run is due (by the chain's clock)
/// runs once. Runs missed while the service was down are skipped, not made up in a burst — a
/// periodic allowance would refuse the burst anyway — and recorded in the audit log. Returns how
/// many runs executed.
pub async fn run_schedules(service: &Arc<Service>) -> Result<usize, crate::Error> {
    let now = service.valet.now().await? as i64;
    let mut ran = 0;
    for s in service.vault.active_schedules().await? {
        if now < s.start_at {
            continue;
        }
        let mut due = (now - s.start_at) / s.every;
        if let Some(max) = s.max_runs {
            due = due.min(max - 1);
        }
        if due < s.next_run {
            continue;
        }
        let app = App { id: s.app_id.clone(), name: String::new() };
        let audit = |event: &'static str, detail: Value| {
            let service = service.clone();
            let (app, session) = (s.app_id.clone(), s.session_id.clone());
            async move { service.vault.audit(&app, None, Some(&session), event, &detail).await }
        };
        if due > s.next_run {
            audit("schedule.skipped", json!({ "schedule_id": s.id, "runs": (s.next_run..due).collect::<Vec<_>>(), "reason": "missed while the service was down" })).await?;
        }
        let Some(row) = service.vault.session(&s.app_id, &s.session_id).await? else { continue };
        let stop = |reason: String| {
            let service = service.clone();
            let id = s.id.clone();
            let next = due;
            async move { service.vault.update_schedule(&id, next, "done", Some(&reason)).await }
        };
        if row.status != "active" {
            stop(format!("session is {}", row.status)).await?;
            continue;
        }
        let Ok(session_bytes) = row.packed.parse::<Bytes>() else { continue };
        let Ok(session) = Session::decode(&session_bytes) else { continue };
        if now as u64 > session.valid_until {
            stop("the session has expired".into()).await?;
            continue;
        }
        let account = row_account(&row).map_err(|e| crate::Error::Database(e.message))?;
        let names = session_names(service, &row);
        let Ok(execute) = serde_json::from_str::<Execute>(&s.body) else { continue };
        let calls = match build_calls(&execute, account.address, &names) {
            Ok(calls) => calls,
            Err(e) => {
                stop(format!("its calls no longer encode: {}", e.message)).await?;
                continue;
            }
        };
        let id: B256 = row.id.parse().map_err(|_| crate::Error::Database("stored session id".into()))?;
        let run = Run {
            service: service.clone(),
            app,
            row,
            session,
            id,
            calls,
            names,
            idempotency_key: Some(format!("schedule:{}:{due}", s.id)),
            request_hash: sha256_hex(s.body.as_bytes()),
            schedule: Some(s.id.clone()),
        };
        let outcome = match run.execute().await {
            Ok(response) => json!({ "status": response.status().as_u16() }),
            Err(e) => json!({ "status": e.status.as_u16(), "error": e.code, "message": e.message }),
        };
        ran += 1;
        audit("schedule.run", json!({ "schedule_id": s.id, "run": due, "outcome": outcome })).await?;
        let finished = s.max_runs.is_some_and(|max| due + 1 >= max);
        service
            .vault
            .update_schedule(
                &s.id,
                due + 1,
                if finished { "done" } else { "active" },
                finished.then_some("all runs made"),
            )
            .await?;
    }
    Ok(ran)
}
