//! Executions: calls as a session's operation, idempotent, one at a time per session lane.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use valet_client::session::wiping_stack;
use valet_client::{Error as ClientError, SessionHandle};
use valet_core::spec::{Function, explain};
use valet_core::{Call, Refusal, Session};

use crate::Service;
use crate::sponsorship::BudgetedSponsor;
use crate::vault::{App, Audit, Begin, ExecutionRow, NewExecution, SessionRow, sha256_hex};

use super::*;

#[derive(Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallRequest {
    pub(crate) to: String,
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) data: Option<String>,
    #[serde(default)]
    pub(crate) function: Option<String>,
    #[serde(default)]
    pub(crate) args: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Execute {
    pub(crate) calls: Vec<CallRequest>,
}

pub(crate) fn build_calls(
    req: &Execute,
    account: Address,
    names: &BTreeMap<String, Address>,
) -> Result<Vec<Call>, ApiError> {
    if req.calls.is_empty() || req.calls.len() > valet_core::execution::MAX_BATCH_CALLS {
        return Err(ApiError::bad(format!(
            "calls: give 1 to {} calls, not {}",
            valet_core::execution::MAX_BATCH_CALLS,
            req.calls.len()
        )));
    }
    req.calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let at = |m: String| ApiError::bad(format!("calls[{i}]: {m}"));
            let target = valet_client::abi::resolve_address(&c.to, names).map_err(|e| at(e.to_string()))?;
            let value = c.value.as_deref().map(|v| parse_u256(v, "value")).transpose().map_err(|e| at(e.message))?;
            let data = match (&c.function, &c.data) {
                (Some(_), Some(_)) => return Err(at("give function + args or data, not both".into())),
                (Some(f), None) => {
                    let args: Vec<String> = c
                        .args
                        .iter()
                        .map(|a| match a {
                            Value::String(s) => Ok(s.clone()),
                            // serde_json keeps integers up to u64 exact; a larger one arrives as a
                            // float already rounded: refuse it rather than use another number.
                            Value::Number(n) if n.is_f64() => Err(at(format!(
                                "argument {n} is not an exact integer in JSON: give large numbers as decimal strings"
                            ))),
                            Value::Number(n) => Ok(n.to_string()),
                            Value::Bool(b) => Ok(b.to_string()),
                            other => Err(at(format!("argument {other} must be a string, number or bool"))),
                        })
                        .collect::<Result<_, _>>()?;
                    valet_client::abi::encode_call(f, &args, account, names).map_err(|e| at(e.to_string()))?
                }
                (None, Some(d)) => d.parse::<Bytes>().map_err(|_| at(format!("data `{d}` is not hex")))?,
                (None, None) if c.args.is_empty() => Bytes::new(),
                (None, None) => return Err(at("args given without function".into())),
            };
            Ok(Call { target, value: value.unwrap_or_default(), data })
        })
        .collect()
}

/// An included operation's logs as the API answers them (`events`): `[{address, topics, data}]`,
/// in the order it emitted them. Kept in the execution's stored detail under `events` (answered
/// beside it by [`execution_json`]), so a replay and `GET /v1/executions/{id}` say the same.
pub(crate) fn events_json(logs: &[alloy::primitives::Log]) -> Value {
    logs.iter()
        .map(|l| json!({ "address": l.address, "topics": l.topics(), "data": l.data.data }))
        .collect::<Vec<_>>()
        .into()
}

pub(crate) fn execution_json(e: &ExecutionRow) -> Value {
    let mut detail: Value = e.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
    let events = detail.as_object_mut().and_then(|d| d.remove("events"));
    let mut body = json!({
        "execution_id": e.id,
        "session_id": e.session_id,
        "status": e.status,
        "user_op_hash": e.user_op_hash,
        "transaction_hash": e.transaction_hash,
        "gas_used": e.gas_used,
        "fee_wei": detail.get("fee_wei"),
        "paymaster": detail.get("paymaster"),
        "detail": detail,
    });
    // Only where they are known: an included execution's (those recorded before they were kept
    // have none).
    if let Some(events) = events {
        body["events"] = events;
    }
    body
}

/// The HTTP status an execution in `status` is answered with: 200 included, 202 while its
/// outcome is unknown (or in progress), 422 otherwise.
fn execution_status(status: &str) -> StatusCode {
    match status {
        "included" => StatusCode::OK,
        "unknown" | "pending" => StatusCode::ACCEPTED,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// `GET /v1/executions/{id}`: what the service knows of one of the app's executions. An unknown
/// one is looked up on chain every few seconds until it is included or provably never will be.
pub(crate) async fn show_execution(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    if id.len() > 100 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::bad(format!(
            "execution id `{}` is not one this service gives",
            id.chars().take(100).collect::<String>()
        )));
    }
    let (execution, _) = service
        .vault
        .execution(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution {id}")))?;
    // Found on chain or not, the record answers 200: the execution's own status is in the body.
    ok(StatusCode::OK, execution_json(&execution))
}

pub(crate) async fn execute(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(req, body): ApiJson<Execute>,
) -> ApiResult {
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v.to_str().map_err(|_| ApiError::bad("Idempotency-Key must be visible ASCII"))?.trim();
            if key.is_empty() || key.len() > 200 {
                return Err(ApiError::bad("Idempotency-Key must be 1 to 200 characters"));
            }
            Some(key.to_string())
        }
    };
    let (row, session, id) = load(&service, &app, &id).await?;
    let account = row_account(&row)?;
    let names = session_names(&service, &row);
    let calls = build_calls(&req, account.address, &names)?;
    match row.status.as_str() {
        "active" => {}
        "revoked" => return Err(ApiError::conflict("revoked", format!("session {id} was revoked; grant a new one"))),
        other => {
            return Err(ApiError::conflict(
                "not_active",
                format!("session {id} is {other}: the owner must grant it first"),
            ));
        }
    }
    let request_hash = sha256_hex(&body);

    // In a task of its own: a client that hangs up never leaves an execution half recorded.
    let run = Run {
        service: service.clone(),
        app,
        row,
        session,
        id,
        calls,
        names,
        idempotency_key,
        request_hash,
        schedule: None,
    };
    tokio::spawn(run.execute())
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("execution task: {e}")))?
}

/// Whether the SDK's configuration error `message` is about an EIP-7702 account's delegation
/// (stale, not the owner's, for another chain or implementation, missing), which the owner
/// fixes by signing a new one: not a failure of the service.
fn is_delegation_problem(message: &str) -> bool {
    message.contains("EIP-7702 authorization") || message.contains("does not delegate to Valet")
}

/// Records an execution that ends before anything is sent, as `status` with `audit` (whose detail
/// is the execution's): written now, or updated if it was built before (`written`).
async fn unsent(
    service: &Service,
    new: &NewExecution<'_>,
    written: bool,
    status: &'static str,
    audit: &Audit<'_>,
) -> Result<(), crate::Error> {
    if written {
        service.vault.finish_execution(new.id, status, None, None, audit.detail, audit).await?;
    } else {
        service.vault.record_unsent(new, status, audit.detail, audit).await?;
    }
    service.metrics.inc("valet_executions_total", &[("outcome", status)]);
    Ok(())
}

/// One execution, owned by its task.
pub(crate) struct Run {
    pub(crate) service: Arc<Service>,
    pub(crate) app: App,
    pub(crate) row: SessionRow,
    pub(crate) session: Session,
    pub(crate) id: B256,
    pub(crate) calls: Vec<Call>,
    pub(crate) names: BTreeMap<String, Address>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) request_hash: String,
    /// The schedule this run belongs to, if any: it must still be active when the run gets the lane.
    pub(crate) schedule: Option<String>,
}

impl Run {
    pub(crate) async fn execute(self) -> ApiResult {
        let Run { service, app, row, session, id, calls, names, idempotency_key, request_hash, schedule } = self;
        let account = row_account(&row)?;
        let kind_valet = service.valet_of(&row)?.clone();
        let eip7702 = kind_valet.deployment().kind == valet_client::AccountKind::Eip7702;
        // One execution at a time on this session's lane.
        let _lane = service.hold_lane(&row.id).await?;
        let execution_id = match service.vault.begin_execution(&app.id, idempotency_key.as_deref()).await? {
            Begin::New(execution_id) => execution_id,
            Begin::Existing(previous) => {
                if previous.request_hash != request_hash || previous.session_id != row.id {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for a different request",
                    ));
                }
                if previous.status == "pending" {
                    return Err(ApiError::conflict(
                        "in_progress",
                        "an execution with this Idempotency-Key is in progress",
                    ));
                }
                // Unknown: look again now (this lane is held), so that the answer is the
                // chain's as of this request.
                let previous = if previous.status == "unknown" {
                    let operation = service.vault.execution(&app.id, &previous.id).await?.and_then(|(_, op)| op);
                    service.settle(&app.id, &previous, operation.as_deref()).await?;
                    service.vault.execution(&app.id, &previous.id).await?.map(|(e, _)| e).unwrap_or(previous)
                } else {
                    previous
                };
                let mut body = execution_json(&previous);
                body["replayed"] = Value::Bool(true);
                return ok(execution_status(&previous.status), body);
            }
        };

        let new = NewExecution {
            id: &execution_id,
            app: &app.id,
            session: &row.id,
            key: idempotency_key.as_deref(),
            request_hash: &request_hash,
        };
        // Whether the execution's row is written (from the first build on).
        let mut written = false;
        let no_detail = Value::Null;
        let audit =
            Audit { app: &app.id, account: Some(&row.account), session: Some(&row.id), event: "", detail: &no_detail };
        // A revocation (or the schedule's cancellation) that landed while this request waited
        // for the lane wins: nothing is signed or sent after it answered.
        let still = service.vault.session(&app.id, &row.id).await?.map(|r| r.status).unwrap_or_default();
        let stopped = if still != "active" {
            Some(("revoked", format!("session {id} was revoked; grant a new one")))
        } else if let Some(schedule) = &schedule {
            (!service.vault.schedule_active(schedule).await?)
                .then(|| ("cancelled", format!("schedule {schedule} was cancelled")))
        } else {
            None
        };
        if let Some((code, reason)) = stopped {
            let detail = json!({ "execution_id": execution_id, "reason": reason, "sent": false });
            let audit = Audit { event: "execution.refused", detail: &detail, ..audit };
            unsent(&service, &new, written, "refused", &audit).await?;
            return Err(ApiError::conflict(code, reason));
        }
        let key_bytes = alloy::hex::decode(&row.sealed_key)
            .map_err(|_| ApiError::from(crate::Error::Database("sealed key is not hex".into())))?;
        let grant: Bytes = row.grant_sig.as_deref().unwrap_or_default().parse().unwrap_or_default();
        let validator = kind_valet.deployment().validator;
        // An eip7702 session's signed delegation, until an operation used it: the first operation
        // carries it (and delegates, activates, enables, uses) unless the EOA delegates already.
        let delegation = match &row.delegation {
            Some(json) => Some(serde_json::from_str::<valet_core::user_operation::Eip7702Auth>(json).map_err(|e| {
                ApiError::from(crate::Error::Database(format!("stored delegation of session {id}: {e}")))
            })?),
            None => None,
        };
        // The session key, opened and boxed on a stack wiped afterwards: in one place until the
        // handle is dropped, which wipes it.
        let handle = wiping_stack(|| -> Result<Box<SessionHandle>, ApiError> {
            let key = service.master.open(id, &key_bytes)?;
            // A multichain grant's session carries its chain's proof (mode 2) instead of a grant.
            let grant_kind = if row.grant_group.is_some() {
                valet_client::GrantKind::Multichain
            } else {
                valet_client::GrantKind::Single
            };
            Ok(Box::new(
                SessionHandle::new(session.clone(), key, grant, validator)?
                    .with_grant_kind(grant_kind)
                    .with_authorization(delegation),
            ))
        })?;
        let functions: Vec<Option<Function>> = serde_json::from_str::<Vec<Option<String>>>(&row.functions)
            .unwrap_or_default()
            .iter()
            .map(|f| f.as_deref().and_then(|f| Function::parse(f).ok()))
            .collect();

        // Sponsored when the app has a budget (and the service a paymaster): the sponsor reserves
        // each operation's maximum cost against the app's budget before the session key signs it.
        // The service's paymaster approves operations for EntryPoint v0.7: an EIP-7702 account's
        // (v0.8) pay their fees from the EOA's own ETH.
        let not_sponsored = if eip7702 {
            Some(
                "an eip7702 account pays its own fees: the service sponsors smart accounts' operations only"
                    .to_string(),
            )
        } else if kind_valet.chain_id() != service.valet.chain_id() {
            Some(format!(
                "the service's paymaster sponsors operations on its main chain {} only: on chain {} the account pays \
                 its own fees",
                service.valet.chain_id(),
                kind_valet.chain_id()
            ))
        } else {
            service.not_sponsored(&app).await?
        };
        let sponsor = match &not_sponsored {
            None => BudgetedSponsor::new(service.clone(), app.clone(), &execution_id).map(Arc::new),
            Some(_) => None,
        };
        let valet = match &sponsor {
            Some(sponsor) => kind_valet.clone().with_paymaster(sponsor.clone()),
            None => kind_valet.clone(),
        };
        // Releases what the sponsor reserved for operations that did not leave the service, or
        // that the chain refused.
        let release = async |sponsor: &Option<Arc<BudgetedSponsor>>| match sponsor {
            Some(sponsor) => sponsor.release().await,
            None => Ok(()),
        };

        // Built, recorded, sent; built once more if someone deployed the account in between (anyone
        // may call the factory for a counterfactual account: `AA10 sender already constructed`).
        let mut rebuilt = false;
        let (prepared, user_op_hash, submitted) = loop {
            let prepared = match valet.prepare(&account, &handle, &calls).await {
                Ok(p) => p,
                Err(ClientError::Preflight(refusal)) => {
                    release(&sponsor).await?;
                    let tokens: Vec<Address> =
                        session.limits.iter().filter(|l| l.token != Address::ZERO).map(|l| l.token).collect();
                    let mut reason =
                        explain(&refusal, &session, &functions, &token_labels(&service, &names, &tokens).await);
                    if let (Refusal::PaymasterRequired(_), Some(why)) = (&refusal, &not_sponsored) {
                        reason = format!("{reason}. Not sponsored: {why}");
                    }
                    let detail =
                        json!({ "execution_id": execution_id, "reason": reason, "refusal": refusal.to_string() });
                    let audit = Audit { event: "execution.refused", detail: &detail, ..audit };
                    unsent(&service, &new, written, "refused", &audit).await?;
                    let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", reason);
                    e.extra = Some(json!({ "refusal": refusal.to_string(), "execution_id": execution_id }));
                    return Err(e);
                }
                // The session's delegation cannot be used (the EOA's nonce moved since it was
                // signed, it is not the owner's, …) or is missing: nothing was built or sent.
                Err(ClientError::Config(message)) if eip7702 && is_delegation_problem(&message) => {
                    release(&sponsor).await?;
                    let detail = json!({ "execution_id": execution_id, "reason": message, "sent": false });
                    let audit = Audit { event: "execution.refused", detail: &detail, ..audit };
                    unsent(&service, &new, written, "refused", &audit).await?;
                    let mut e = ApiError::conflict("delegation_unusable", message);
                    e.extra = Some(json!({ "execution_id": execution_id }));
                    return Err(e);
                }
                Err(e) => {
                    release(&sponsor).await?;
                    // The sponsor refused (the budget) or failed: its own error, not the client's.
                    if let Some(failure) = sponsor.as_ref().and_then(|s| s.take_failure()) {
                        let refused = matches!(
                            failure,
                            crate::Error::SponsorshipBudgetExceeded { .. } | crate::Error::NotSponsored(_)
                        );
                        let (status, event) =
                            if refused { ("refused", "execution.refused") } else { ("failed", "execution.failed") };
                        let detail =
                            json!({ "execution_id": execution_id, "reason": failure.to_string(), "sent": false });
                        let audit = Audit { event, detail: &detail, ..audit };
                        unsent(&service, &new, written, status, &audit).await?;
                        let mut answer = ApiError::from(failure);
                        let extra = answer.extra.get_or_insert_with(|| json!({}));
                        extra["execution_id"] = json!(execution_id);
                        return Err(answer);
                    }
                    let detail = json!({ "execution_id": execution_id, "error": e.to_string() });
                    let audit = Audit { event: "execution.failed", detail: &detail, ..audit };
                    unsent(&service, &new, written, "failed", &audit).await?;
                    return Err(e.into());
                }
            };
            let user_op_hash = prepared.op.hash(valet.deployment().entry_point, valet.chain_id());
            let operation = serde_json::to_string(&prepared.op).unwrap_or_default();
            if !service.vault.execution_built(&new, &user_op_hash.to_string(), &operation).await? {
                release(&sponsor).await?;
                // Another request (on another session) took this Idempotency-Key meanwhile.
                return Err(ApiError::conflict(
                    "in_progress",
                    "an execution with this Idempotency-Key is in progress; nothing was sent for this request",
                ));
            }
            written = true;
            let submitted = valet.submit(std::slice::from_ref(&prepared.op)).await;
            match &submitted {
                Err(e) if e.already_deployed() && !rebuilt => {
                    tracing::info!(%user_op_hash, account = %account.address, "the account was deployed meanwhile: building the operation again without initCode");
                    // Refused by the chain: it can never be included (its initCode cannot run again).
                    release(&sponsor).await?;
                    rebuilt = true;
                }
                _ => break (prepared, user_op_hash, submitted),
            }
        };
        let hash = user_op_hash.to_string();
        match submitted {
            Ok(mut receipts) => {
                let receipt = receipts.remove(0);
                service.sponsorship_outcome(&hash, Some(&receipt), "released").await?;
                let fee = receipt.actual_gas_cost.to_string();
                let paymaster = prepared.op.paymaster;
                let detail = json!({ "permission_indices": prepared.indices, "deployed_account": prepared.deploys, "enabled_session": prepared.enables, "fee_wei": fee, "paymaster": paymaster });
                let gas = receipt.actual_gas_used.to_string();
                let tx = receipt.transaction_hash.to_string();
                let event = json!({ "execution_id": execution_id, "user_op_hash": user_op_hash, "transaction_hash": tx, "gas_used": gas, "fee_wei": fee, "paymaster": paymaster });
                let audit = Audit { event: "execution.included", detail: &event, ..audit };
                let events = events_json(&receipt.logs);
                let mut stored = detail.clone();
                stored["events"] = events.clone();
                service
                    .vault
                    .finish_execution(&execution_id, "included", Some(&tx), Some(&gas), &stored, &audit)
                    .await?;
                service.metrics.inc("valet_executions_total", &[("outcome", "included")]);
                // Its delegation is on chain now: the EOA delegates to Valet, none is needed again.
                if prepared.op.eip7702_auth.is_some() {
                    service.vault.clear_delegation(&row.id).await?;
                }
                ok(
                    StatusCode::OK,
                    json!({
                        "execution_id": execution_id,
                        "session_id": id,
                        "status": "included",
                        "user_op_hash": user_op_hash,
                        "transaction_hash": receipt.transaction_hash,
                        "gas_used": gas,
                        "fee_wei": fee,
                        "paymaster": paymaster,
                        "detail": detail,
                        "events": events,
                    }),
                )
            }
            Err(e) if e.outcome_unknown() => {
                // It may have reached the chain: never reported failed, settled by reconciliation
                // (which also settles its sponsorship: its maximum cost stays reserved until then).
                let detail = json!({
                    "execution_id": execution_id,
                    "user_op_hash": user_op_hash,
                    "reason": "it may have been sent and is not found on chain yet",
                    "last_check": e.to_string(),
                });
                let audit = Audit { event: "execution.unknown", detail: &detail, ..audit };
                service.vault.finish_execution(&execution_id, "unknown", None, None, &detail, &audit).await?;
                service.metrics.inc("valet_executions_total", &[("outcome", "unknown")]);
                let location = format!("/v1/executions/{execution_id}");
                let body = json!({
                    "execution_id": execution_id,
                    "session_id": id,
                    "status": "unknown",
                    "user_op_hash": user_op_hash,
                    "transaction_hash": null,
                    "gas_used": null,
                    "detail": detail,
                    "check": location,
                });
                Ok((StatusCode::ACCEPTED, [(axum::http::header::LOCATION, location)], axum::Json(body)).into_response())
            }
            // Refused by the chain before it was sent (the EntryPoint simulated at the next block,
            // AA22) because the session's window had closed by then: pre-flight's refusal, in its
            // words, not the EntryPoint's code. Nothing was sent: refused, as pre-flight would.
            Err(ClientError::Refused { reason, .. })
                if reason.starts_with("AA22") && valet.now().await.is_ok_and(|now| now > session.valid_until) =>
            {
                release(&sponsor).await?;
                let now = valet.now().await.unwrap_or(session.valid_until.saturating_add(1));
                let refusal =
                    Refusal::OutsideWindow { valid_after: session.valid_after, valid_until: session.valid_until, now };
                let reason = explain(&refusal, &session, &functions, &valet_core::spec::Labels::default());
                let detail = json!({
                    "execution_id": execution_id,
                    "user_op_hash": user_op_hash,
                    "reason": reason,
                    "refusal": refusal.to_string(),
                    "sent": false,
                });
                let audit = Audit { event: "execution.refused", detail: &detail, ..audit };
                unsent(&service, &new, written, "refused", &audit).await?;
                let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", reason);
                e.extra = Some(json!({ "refusal": refusal.to_string(), "execution_id": execution_id }));
                Err(e)
            }
            Err(e) => {
                let reverted = matches!(e, ClientError::ExecutionReverted { .. });
                if reverted {
                    // Included (its calls reverted): paid for. Its cost is in its UserOperationEvent;
                    // if the node does not say now, reconciliation will.
                    if let Ok(Some(receipt)) = service.find_operation(&kind_valet, user_op_hash).await {
                        service.sponsorship_outcome(&hash, Some(&receipt), "released").await?;
                    }
                } else {
                    release(&sponsor).await?;
                }
                let status = if reverted { "reverted" } else { "failed" };
                let detail =
                    json!({ "execution_id": execution_id, "user_op_hash": user_op_hash, "error": e.to_string() });
                let event = format!("execution.{status}");
                let audit = Audit { event: &event, detail: &detail, ..audit };
                service.vault.finish_execution(&execution_id, status, None, None, &detail, &audit).await?;
                service.metrics.inc("valet_executions_total", &[("outcome", status)]);
                Err(e.into())
            }
        }
    }
}
