//! The scheduler: runs due schedules, once per run, by Valet's clock (the later of the chain's
//! last block and the wall clock, [`valet_client::Valet::now`]).

use std::sync::Arc;

use alloy::primitives::{B256, Bytes};
use serde_json::{Value, json};
use valet_core::Session;

use crate::Service;
use crate::api::executions::{Execute, Run, build_calls};
use crate::api::session_names;
use crate::api::sessions::row_account;
use crate::vault::{App, ScheduleRow, sha256_hex};

/// Why runs due before the scheduler began were not made.
pub const MISSED_WHILE_DOWN: &str = "missed while the service was down";

/// Why runs due while the scheduler ran were not made.
pub const LATE_WHILE_UP: &str = "late: due while the service was running, but a later run was due before it could be \
     made (the clock jumped, an earlier run took longer than the period, or the chain did not answer); only the \
     latest run is made";

/// The scheduler of one running service. It remembers when it began — by Valet's clock, at its
/// first pass — so that the runs it skips say truly why: those due before it began were missed
/// while the service was down; those due since were late (the clock jumped, as a chain's does
/// when a block comes after a pause or anvil travels in time, or a run outlasted a period).
/// Either way only the latest due run is made, never a burst: a periodic allowance would refuse
/// the burst anyway.
#[derive(Debug, Default)]
pub struct Scheduler {
    started_at: Option<u64>,
}

impl Scheduler {
    /// A scheduler that begins at its first pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// One pass: every active schedule whose run is due runs once; runs skipped are recorded in
    /// the audit log with the reason. Returns how many runs executed.
    pub async fn pass(&mut self, service: &Arc<Service>) -> Result<usize, crate::Error> {
        let now = service.valet.now().await?;
        let started_at = *self.started_at.get_or_insert(now);
        run_due(service, now, started_at).await
    }
}

/// One pass of a scheduler that begins now (see [`Scheduler`]): every run skipped was due before
/// it, so it counts as missed while the service was down. A running service keeps one
/// [`Scheduler`] instead.
pub async fn run_schedules(service: &Arc<Service>) -> Result<usize, crate::Error> {
    Scheduler::new().pass(service).await
}

/// The runs of schedule `s` skipped when `due` is made (`s.next_run..due`), split into those due
/// before `started_at` and those due since.
fn skipped(s: &ScheduleRow, due: i64, started_at: i64) -> [(std::ops::Range<i64>, &'static str); 2] {
    // The first run due at or after `started_at`.
    let first_since =
        if started_at > s.start_at { (started_at - s.start_at).saturating_add(s.every - 1) / s.every } else { 0 };
    let split = first_since.clamp(s.next_run, due.max(s.next_run));
    [(s.next_run..split, MISSED_WHILE_DOWN), (split..due, LATE_WHILE_UP)]
}

async fn run_due(service: &Arc<Service>, now: u64, started_at: u64) -> Result<usize, crate::Error> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let started_at = i64::try_from(started_at).unwrap_or(i64::MAX);
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
        for (runs, reason) in skipped(&s, due, started_at) {
            if !runs.is_empty() {
                let detail = json!({ "schedule_id": s.id, "first_run": runs.start, "last_run": runs.end - 1, "count": runs.end - runs.start, "reason": reason });
                audit("schedule.skipped", detail).await?;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn every_minute_from(start_at: i64, next_run: i64) -> ScheduleRow {
        ScheduleRow {
            id: String::new(),
            app_id: String::new(),
            session_id: String::new(),
            body: String::new(),
            start_at,
            every: 60,
            max_runs: None,
            next_run,
            status: "active".into(),
            reason: None,
        }
    }

    /// Runs due before the scheduler began were missed while the service was down; runs due
    /// since (a run due exactly when it began included) were late.
    #[test]
    fn skipped_runs_are_split_at_the_schedulers_start() {
        let s = every_minute_from(1_000, 1);
        assert_eq!(skipped(&s, 10, 1_000 + 4 * 60), [(1..4, MISSED_WHILE_DOWN), (4..10, LATE_WHILE_UP)]);
        assert_eq!(skipped(&s, 10, 1_000 + 4 * 60 + 1), [(1..5, MISSED_WHILE_DOWN), (5..10, LATE_WHILE_UP)]);
        assert_eq!(skipped(&s, 10, 1_000 + 20 * 60), [(1..10, MISSED_WHILE_DOWN), (10..10, LATE_WHILE_UP)]);
        assert_eq!(skipped(&s, 10, 0), [(1..1, MISSED_WHILE_DOWN), (1..10, LATE_WHILE_UP)]);
        assert_eq!(skipped(&s, 1, i64::MAX), [(1..1, MISSED_WHILE_DOWN), (1..1, LATE_WHILE_UP)]);
    }
}
