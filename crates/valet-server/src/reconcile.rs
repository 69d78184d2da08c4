//! Reconciliation: the service's record made to equal the chain's.
//!
//! An execution whose operation may have reached the chain without the service learning what
//! became of it (the connection dropped after sending, the node timed out, the process was killed)
//! is `unknown` — never `failed` — until one of these is found:
//!
//! - its `UserOperationEvent` on chain: it is `included` (or `reverted`, when its calls reverted);
//! - its nonce used by another operation: it can never be included, it is `failed`;
//! - its session's window closed before the latest block, or its session is revoked on chain
//!   (or voided by revoke-all), or the paymaster approval it carries expired before the latest
//!   block: it can never be included, `failed`.
//!
//! Until then the very same signed operation is sent again now and then (its nonce makes a second
//! inclusion impossible). The nonce is read before the logs, so that an operation included between
//! the two reads is found in the logs rather than taken for one whose nonce was used by another.
//!
//! Owners' signed revocations go the same way: sent through the relayer's one nonce manager and
//! retried until the chain shows the session revoked.
//!
//! Sponsored operations ([`crate::sponsorship`]) follow their executions: an included one counts
//! its actual cost, one that can never be included nothing. Those the service never sends itself
//! (approved through ERC-7677) are looked for by their userOpHash, as are those released while
//! their approval can still be used: found on chain, they count their actual cost; once the
//! approval's validUntil is behind the latest block without them, nothing.

use std::time::Duration;

use alloy::primitives::{B256, Bytes};
use alloy::providers::Provider as _;
use alloy::sol_types::SolEvent as _;
use serde_json::{Value, json};
use valet_client::contracts::entry_point::EntryPoint;
use valet_client::{Error as ClientError, OpReceipt, Standing};
use valet_core::{Session, UserOperation};

use crate::vault::{self, Audit, ExecutionRow, RevocationRow, SessionRow};
use crate::{Error, Service};

/// How long after it was last sent an operation of unknown outcome is sent again.
pub const RESEND_AFTER: Duration = Duration::from_secs(10);

/// How often the service reconciles while it runs.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// What became of an execution looked up on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Final: `included`, `reverted`, `failed`; or `abandoned` (nothing was ever sent).
    Final(&'static str),
    /// Still unknown: it may yet be included.
    Unknown,
}

/// What became of a revocation the service put on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landed {
    /// The chain shows the session revoked; by this transaction, if it was ours.
    Included(Option<B256>),
    /// The session was never enabled on chain and nothing in flight can enable it.
    NotNeeded,
    /// The chain refuses the revocation (not for the session being revoked already).
    Refused(String),
    /// Not landed yet (the node failed, or operations that may enable the session are in
    /// flight): it is retried.
    Pending(String),
}

impl Service {
    /// Settles what a previous run left in flight (killed mid-flight) and what is unknown: see the
    /// [module documentation](self). Returns how many executions reached a final state.
    pub async fn reconcile(&self) -> Result<usize, Error> {
        let mut settled = 0;
        for (app, execution, _) in self.vault.pending_executions().await? {
            settled += usize::from(self.settle_locked(&app, &execution).await? != Settled::Unknown);
        }
        Ok(settled + self.reconcile_in_flight().await?)
    }

    /// One pass of the reconciliation that runs while the service does: executions of unknown
    /// outcome, and revocations still to land on chain. Returns how many executions reached a
    /// final state.
    pub async fn reconcile_in_flight(&self) -> Result<usize, Error> {
        let mut settled = 0;
        for (app, execution, _) in self.vault.unknown_executions().await? {
            settled += usize::from(self.settle_locked(&app, &execution).await? != Settled::Unknown);
        }
        for revocation in self.vault.pending_revocations().await? {
            self.retry_revocation(&revocation).await?;
        }
        self.reconcile_sponsorships().await?;
        Ok(settled)
    }

    /// Settles the sponsorship ledger with the chain (see the [module documentation](self)):
    /// returns how many of its operations changed state.
    pub async fn reconcile_sponsorships(&self) -> Result<usize, Error> {
        // Nothing to look for, nothing asked of the node (which may be down).
        let candidates = self.vault.sponsorships_open(vault::now().saturating_sub(vault::DAY)).await?;
        if candidates.is_empty() {
            return Ok(0);
        }
        // The latest block first: an operation not in the logs read after it is not in any block
        // up to it, and no later block can include it once its approval expired.
        let latest = self.latest_timestamp(&self.valet).await?;
        let latest_at = i64::try_from(latest).unwrap_or(i64::MAX);
        let open: Vec<_> =
            candidates.into_iter().filter(|(row, _)| row.state == "reserved" || row.valid_until >= latest_at).collect();
        let hashes: Vec<B256> = open.iter().filter_map(|(row, _)| row.user_op_hash.parse().ok()).collect();
        // The service's paymaster sponsors operations on its main chain only.
        let found = self.find_operations(&self.valet, &hashes).await?;
        let mut changed = 0;
        for (row, execution) in open {
            let hash: Option<B256> = row.user_op_hash.parse().ok();
            let receipt = hash.and_then(|h| found.iter().find(|r| r.user_op_hash == h));
            if let Some(receipt) = receipt {
                if row.state != "spent" {
                    self.sponsorship_outcome(&row.user_op_hash, Some(receipt), "released").await?;
                    changed += 1;
                }
            } else if row.state == "reserved" {
                let ended = if latest_at > row.valid_until {
                    Some("expired")
                } else if matches!(execution.as_deref(), Some("failed" | "refused")) {
                    // The service's execution of it ended without reaching the chain (left
                    // reserved by an interruption between the two records).
                    Some("released")
                } else {
                    None
                };
                if let Some(ended) = ended {
                    self.sponsorship_outcome(&row.user_op_hash, None, ended).await?;
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }

    /// The latest block's timestamp on `valet`'s chain.
    async fn latest_timestamp(&self, valet: &valet_client::Valet) -> Result<u64, Error> {
        let latest = valet.provider().get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await;
        Ok(latest.map_err(rpc)?.map(|b| b.header.timestamp).unwrap_or_default())
    }

    /// [`Service::settle`] while holding the execution's session lane, if it is still pending or
    /// unknown once the lane is held (read again then, with its operation).
    async fn settle_locked(&self, app: &str, execution: &ExecutionRow) -> Result<Settled, Error> {
        let _lane = self.hold_lane(&execution.session_id).await?;
        match self.vault.execution(app, &execution.id).await? {
            Some((now, operation)) if now.status == "pending" || now.status == "unknown" => {
                self.settle(app, &now, operation.as_deref()).await
            }
            Some(_) => Ok(Settled::Final("settled meanwhile")),
            None => Ok(Settled::Final("abandoned")),
        }
    }

    /// Looks `execution` (pending or unknown) up on chain and records what is found. The caller
    /// holds its session's lane.
    pub(crate) async fn settle(
        &self,
        app: &str,
        execution: &ExecutionRow,
        operation: Option<&str>,
    ) -> Result<Settled, Error> {
        let session = self.vault.session(app, &execution.session_id).await?;
        let account = session.as_ref().map(|s| s.account.clone());
        let (Some(hash), Some(operation)) = (&execution.user_op_hash, operation) else {
            // Nothing was built, so nothing sent: forget it, so its idempotency key may be used again.
            let detail = json!({ "execution_id": execution.id, "reconciled": true, "reason": "interrupted before anything was sent" });
            let audit = Audit {
                app,
                account: account.as_deref(),
                session: Some(&execution.session_id),
                event: "execution.abandoned",
                detail: &detail,
            };
            self.vault.abandon_execution(&execution.id, &audit).await?;
            return Ok(Settled::Final("abandoned"));
        };
        let op: UserOperation = serde_json::from_str(operation)
            .map_err(|e| Error::Database(format!("stored operation of execution {}: {e}", execution.id)))?;
        let finish = |status: &'static str, receipt: Option<OpReceipt>, mut detail: Value| {
            let account = account.clone();
            let tx = receipt.as_ref().map(|r| r.transaction_hash.to_string());
            let gas = receipt.as_ref().map(|r| r.actual_gas_used.to_string());
            let paymaster = op.paymaster;
            async move {
                detail["execution_id"] = execution.id.clone().into();
                detail["user_op_hash"] = hash.clone().into();
                detail["transaction_hash"] = tx.clone().into();
                detail["reconciled"] = true.into();
                if let Some(receipt) = &receipt {
                    detail["fee_wei"] = receipt.actual_gas_cost.to_string().into();
                    detail["paymaster"] = json!(paymaster);
                }
                // Its sponsorship, if the service's paymaster approved it: what the chain charged,
                // or nothing (an expired approval is told apart from other reasons).
                let ended = if detail["approval_expired"] == true { "expired" } else { "released" };
                self.sponsorship_outcome(hash, receipt.as_ref(), ended).await?;
                let event = format!("execution.{status}");
                let audit = Audit {
                    app,
                    account: account.as_deref(),
                    session: Some(&execution.session_id),
                    event: &event,
                    detail: &detail,
                };
                // The execution's record also keeps an included operation's events (its answer's
                // `events`); the audit event does not repeat them.
                let mut stored = detail.clone();
                if let Some(receipt) = receipt.as_ref().filter(|r| r.success) {
                    stored["events"] = crate::api::executions::events_json(&receipt.logs);
                }
                self.vault
                    .finish_execution(&execution.id, status, tx.as_deref(), gas.as_deref(), &stored, &audit)
                    .await?;
                self.metrics.inc("valet_executions_total", &[("outcome", status)]);
                Ok::<Settled, Error>(Settled::Final(status))
            }
        };
        let hash_word: B256 =
            hash.parse().map_err(|_| Error::Database(format!("stored userOpHash `{hash}` is not hex")))?;

        // The client of the session's chain and kind of account: its EntryPoint holds the
        // nonce, its submitter sends the operation again, its chain has the logs.
        let valet = match &session {
            Some(row) => self.valet_of(row)?,
            None => &self.valet,
        };
        let nonce = valet.nonce(op.sender, op.nonce >> 64).await?;
        // Read before the logs too: an operation not found after it can only land in a later block.
        let latest = self.latest_timestamp(valet).await?;
        if let Some(receipt) = self.find_operation(valet, hash_word).await? {
            let status = if receipt.success { "included" } else { "reverted" };
            return finish(status, Some(receipt), json!({ "found_on_chain": true })).await;
        }
        if nonce > op.nonce {
            let reason = "its nonce was used by another operation: it can never be included";
            return finish("failed", None, json!({ "reason": reason, "never_included": true })).await;
        }
        if let Some(approval) = self.vault.sponsored_operation(hash).await?
            && i64::try_from(latest).unwrap_or(i64::MAX) > approval.valid_until
        {
            let reason = format!(
                "its paymaster approval expired (at {}) before it was included: it can never be",
                approval.valid_until
            );
            let detail = json!({ "reason": reason, "never_included": true, "approval_expired": true });
            return finish("failed", None, detail).await;
        }
        if let Some((account, decoded, _)) = session.as_ref().and_then(|row| decode(row).ok()) {
            if latest > decoded.valid_until {
                let reason = format!(
                    "its session's window closed (at {}) before it was included: it can never be",
                    decoded.valid_until
                );
                return finish("failed", None, json!({ "reason": reason, "never_included": true })).await;
            }
            if valet.chain_state(account, &decoded).await.is_ok_and(|c| c.state.is_final()) {
                let reason = "its session is revoked on chain: it can never be included";
                return finish("failed", None, json!({ "reason": reason, "never_included": true })).await;
            }
        }

        // It may still land. Send the very same signed operation again, unless it went out moments ago.
        let since = vault::now().saturating_sub(execution.updated_at);
        if execution.status == "unknown" && since < RESEND_AFTER.as_secs() as i64 {
            return Ok(Settled::Unknown);
        }
        match valet.submitter().submit(std::slice::from_ref(&op)).await {
            Ok(mut receipts) => {
                let receipt = receipts.remove(0);
                let status = if receipt.success { "included" } else { "reverted" };
                finish(status, Some(receipt), json!({ "resubmitted": true })).await
            }
            Err(e) => {
                let detail = json!({
                    "execution_id": execution.id,
                    "user_op_hash": hash,
                    "reason": "it may have been sent and is not found on chain yet",
                    "last_check": e.to_string(),
                });
                if execution.status == "pending" {
                    let audit = Audit {
                        app,
                        account: account.as_deref(),
                        session: Some(&execution.session_id),
                        event: "execution.unknown",
                        detail: &detail,
                    };
                    self.vault.finish_execution(&execution.id, "unknown", None, None, &detail, &audit).await?;
                    self.metrics.inc("valet_executions_total", &[("outcome", "unknown")]);
                } else {
                    self.vault.execution_checked(&execution.id, &detail).await?;
                }
                Ok(Settled::Unknown)
            }
        }
    }

    /// The operation `hash` on `valet`'s chain, from its `UserOperationEvent`.
    pub(crate) async fn find_operation(
        &self,
        valet: &valet_client::Valet,
        hash: B256,
    ) -> Result<Option<OpReceipt>, Error> {
        Ok(self.find_operations(valet, &[hash]).await?.pop())
    }

    /// Those of the operations `hashes` that are on `valet`'s chain, from their
    /// `UserOperationEvent`s at every EntryPoint the service sends to there (v0.7 for smart
    /// accounts; v0.8 too when it serves EIP-7702 accounts on that chain: the same event, at
    /// another address), read from that chain's node.
    async fn find_operations(&self, valet: &valet_client::Valet, hashes: &[B256]) -> Result<Vec<OpReceipt>, Error> {
        let mut entry_points: Vec<alloy::primitives::Address> =
            self.clients_on(valet.chain_id()).iter().map(|v| v.deployment().entry_point).collect();
        if entry_points.is_empty() {
            entry_points.push(valet.deployment().entry_point);
        }
        entry_points.dedup();
        let mut found = Vec::new();
        // A few topics per query: nodes limit how many a filter may hold.
        for chunk in hashes.chunks(50) {
            let filter = alloy::rpc::types::Filter::new()
                .address(entry_points.clone())
                .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
                .topic1(chunk.to_vec())
                .from_block(0);
            for log in valet.provider().get_logs(&filter).await.map_err(rpc)? {
                let event = EntryPoint::UserOperationEvent::decode_log(&log.inner).map_err(rpc)?;
                if found.iter().any(|r: &OpReceipt| r.user_op_hash == event.userOpHash) {
                    continue;
                }
                // Its own logs, from its transaction's (the events the execution answers with).
                let transaction_hash = log.transaction_hash.unwrap_or_default();
                let entry_point = log.address();
                let logs = match valet.provider().get_transaction_receipt(transaction_hash).await.map_err(rpc)? {
                    Some(receipt) => valet_client::submit::operation_logs(entry_point, receipt.inner.logs())
                        .into_iter()
                        .find(|(e, _)| e.userOpHash == event.userOpHash)
                        .map(|(_, logs)| logs)
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                found.push(OpReceipt {
                    user_op_hash: event.userOpHash,
                    transaction_hash,
                    block_number: log.block_number.unwrap_or_default(),
                    success: event.success,
                    actual_gas_used: event.actualGasUsed.saturating_to(),
                    actual_gas_cost: event.actualGasCost,
                    transaction_gas_used: None,
                    revert_reason: None,
                    logs,
                });
            }
        }
        Ok(found)
    }

    /// Puts the owner's signed revocation of `row` on chain (the caller recorded it as pending),
    /// records and returns what became of it.
    pub(crate) async fn land_revocation(&self, row: &SessionRow, signature: &Bytes) -> Result<Landed, Error> {
        let landed = self.try_revocation(row, signature).await?;
        let (status, tx, error) = match &landed {
            Landed::Included(tx) => ("included", tx.map(|t| t.to_string()), None),
            Landed::NotNeeded => ("not_needed", None, None),
            Landed::Refused(e) => ("refused", None, Some(e.clone())),
            Landed::Pending(e) => ("pending", None, Some(e.clone())),
        };
        self.vault.revocation_attempted(&row.id, status, tx.as_deref(), error.as_deref()).await?;
        if let Landed::Included(tx) = &landed {
            let detail = json!({ "transaction_hash": tx });
            self.vault
                .audit(&row.app_id, Some(&row.account), Some(&row.id), "session.revoked_onchain", &detail)
                .await?;
        }
        Ok(landed)
    }

    async fn retry_revocation(&self, revocation: &RevocationRow) -> Result<(), Error> {
        let Some(row) = self.vault.session(&revocation.app_id, &revocation.session_id).await? else { return Ok(()) };
        let signature: Bytes = revocation
            .signature
            .parse()
            .map_err(|_| Error::Database(format!("stored revocation signature of {}", revocation.session_id)))?;
        let landed = self.land_revocation(&row, &signature).await?;
        tracing::info!(session = %row.id, ?landed, "revocation retried");
        Ok(())
    }

    async fn try_revocation(&self, row: &SessionRow, signature: &Bytes) -> Result<Landed, Error> {
        let Some(relayer) = self.relayer_of(row)? else {
            return Ok(Landed::Pending(format!("this service has no relayer key on chain {}", row.chain_id)));
        };
        let (account, session, id) = decode(row)?;
        let valet = self.valet_of(row)?;
        let state = match valet.chain_state(account, &session).await {
            Ok(chain) => chain.state,
            Err(e) => return Ok(Landed::Pending(e.to_string())),
        };
        if state.is_final() {
            return Ok(Landed::Included(None));
        }
        let in_flight = self.vault.executions_in_flight(&row.id).await?;
        if state != Standing::Enabled && in_flight == 0 {
            // Never enabled, and nothing signed that could enable it is in flight: the session key
            // is the service's and the service will not use it, so there is nothing to revoke.
            return Ok(Landed::NotNeeded);
        }
        let validator =
            valet_client::contracts::SessionKeyValidator::new(valet.deployment().validator, relayer.provider());
        let tx = validator.revokeSessionWithSignature(account, id, signature.clone()).into_transaction_request();
        match relayer.send(tx).await {
            Ok(receipt) => Ok(Landed::Included(Some(receipt.transaction_hash))),
            Err(ClientError::TransactionWouldRevert(reason)) => {
                // Revoked meanwhile (by the owner, or an earlier attempt of ours)?
                match valet.chain_state(account, &session).await.map(|c| c.state) {
                    Ok(now) if now.is_final() => Ok(Landed::Included(None)),
                    _ if state != Standing::Enabled => Ok(Landed::Pending(format!(
                        "{reason} (the session is not enabled on chain yet; {in_flight} of its operations may still land)"
                    ))),
                    _ => Ok(Landed::Refused(reason)),
                }
            }
            Err(e) => Ok(Landed::Pending(e.to_string())),
        }
    }
}

fn decode(row: &SessionRow) -> Result<(alloy::primitives::Address, Session, B256), Error> {
    let account = row.account.parse().map_err(|_| Error::Database(format!("stored account `{}`", row.account)))?;
    let bytes: Bytes = row.packed.parse().map_err(|_| Error::Database(format!("stored session {}", row.id)))?;
    let session = Session::decode(&bytes).map_err(|e| Error::Database(format!("stored session {}: {e}", row.id)))?;
    let id = row.id.parse().map_err(|_| Error::Database(format!("stored session id `{}`", row.id)))?;
    Ok((account, session, id))
}

fn rpc(e: impl std::fmt::Display) -> Error {
    Error::Client(ClientError::rpc_message(e.to_string()))
}
