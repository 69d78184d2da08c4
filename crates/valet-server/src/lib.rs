#![doc = include_str!("../README.md")]

pub mod api;
pub mod crypto;
mod error;
pub mod metrics;
pub mod openapi;
pub mod scheduler;
pub mod vault;
pub mod web;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use alloy::primitives::Address;
use tokio::sync::Mutex;
use valet_client::Valet;

pub use crypto::MasterKey;
pub use error::Error;
pub use vault::Vault;
pub use web::{Faucet, Web};

/// What the service needs: the chain client, the vault, the master key and the admin token.
pub struct Service {
    /// Valet's client (chain + submitter + deployment).
    pub valet: Valet,
    /// The database.
    pub vault: Vault,
    /// Seals and opens session keys.
    pub master: MasterKey,
    /// sha256 of the token that may register apps (`POST /v1/apps`).
    pub admin_token_hash: String,
    /// Names specs and calls may use for contracts (e.g. the devnet's).
    pub names: BTreeMap<String, Address>,
    /// Counters for `/metrics`.
    pub metrics: metrics::Metrics,
    /// A provider with a relayer's wallet, to submit owners' signed revocations (optional).
    pub relayer: Option<alloy::providers::DynProvider>,
    /// How often the scheduler looks for due runs (`None`: it does not run).
    pub scheduler_every: Option<std::time::Duration>,
    /// The dApp served at `/` (`None`: the API only).
    pub web: Option<Web>,
    /// Funds accounts on a development chain (`POST /v1/devnet/fund`; `None` elsewhere).
    pub faucet: Option<Faucet>,
    /// One execution at a time per session (its nonce lane); sessions run in parallel.
    lanes: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("valet", &self.valet).field("names", &self.names).finish_non_exhaustive()
    }
}

impl Service {
    /// A service over `valet` and `vault`; `admin_token` may register apps.
    pub fn new(
        valet: Valet,
        vault: Vault,
        master: MasterKey,
        admin_token: &str,
        names: BTreeMap<String, Address>,
        relayer: Option<alloy::providers::DynProvider>,
    ) -> Self {
        Self {
            valet,
            vault,
            master,
            admin_token_hash: vault::sha256_hex(admin_token.as_bytes()),
            names,
            metrics: metrics::Metrics::default(),
            relayer,
            scheduler_every: Some(std::time::Duration::from_secs(1)),
            web: None,
            faucet: None,
            lanes: Mutex::new(HashMap::new()),
        }
    }

    /// Settles executions a previous run left pending (killed mid-flight): an operation found on
    /// chain is recorded as included (or reverted); one never built is recorded as not sent; one
    /// built but not found is submitted again, the very same signed operation — its nonce makes a
    /// second inclusion impossible, so nothing executes twice. Returns how many were settled.
    pub async fn reconcile(&self) -> Result<usize, Error> {
        use alloy::providers::Provider as _;
        use alloy::sol_types::SolEvent as _;
        use valet_client::contracts::entry_point::EntryPoint;
        let pending = self.vault.pending_executions().await?;
        for (app, execution, operation) in &pending {
            let account = self.vault.session(app, &execution.session_id).await?.map(|s| s.account);
            let settle =
                |status: &'static str, tx: Option<String>, gas: Option<String>, mut detail: serde_json::Value| {
                    let account = account.clone();
                    async move {
                        detail["execution_id"] = execution.id.clone().into();
                        detail["user_op_hash"] = execution.user_op_hash.clone().into();
                        detail["transaction_hash"] = tx.clone().into();
                        detail["reconciled"] = true.into();
                        let event = format!("execution.{status}");
                        let audit = vault::Audit {
                            app,
                            account: account.as_deref(),
                            session: Some(&execution.session_id),
                            event: &event,
                            detail: &detail,
                        };
                        self.vault
                            .finish_execution(&execution.id, status, tx.as_deref(), gas.as_deref(), &detail, &audit)
                            .await?;
                        self.metrics.inc("valet_executions_total", &[("outcome", status)]);
                        Ok::<(), Error>(())
                    }
                };
            let (Some(hash), Some(operation)) = (&execution.user_op_hash, operation) else {
                // Nothing was sent: forget it, so its idempotency key may be used again.
                let detail = serde_json::json!({ "execution_id": execution.id, "reconciled": true, "reason": "interrupted before anything was sent" });
                let audit = vault::Audit {
                    app,
                    account: account.as_deref(),
                    session: Some(&execution.session_id),
                    event: "execution.abandoned",
                    detail: &detail,
                };
                self.vault.abandon_execution(&execution.id, &audit).await?;
                continue;
            };
            let hash: alloy::primitives::B256 =
                hash.parse().map_err(|_| Error::Database(format!("stored userOpHash `{hash}` is not hex")))?;
            let filter = alloy::rpc::types::Filter::new()
                .address(self.valet.deployment().entry_point)
                .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
                .topic1(hash)
                .from_block(0);
            let logs = self
                .valet
                .provider()
                .get_logs(&filter)
                .await
                .map_err(|e| Error::Client(valet_client::Error::Rpc(e.to_string())))?;
            if let Some(log) = logs.first() {
                let event = EntryPoint::UserOperationEvent::decode_log(&log.inner)
                    .map_err(|e| Error::Client(valet_client::Error::Rpc(e.to_string())))?;
                let status = if event.success { "included" } else { "reverted" };
                let tx = log.transaction_hash.map(|t| t.to_string());
                settle(
                    status,
                    tx,
                    Some(event.actualGasUsed.to_string()),
                    serde_json::json!({ "found_on_chain": true }),
                )
                .await?;
                continue;
            }
            let op: valet_core::UserOperation = serde_json::from_str(operation)
                .map_err(|e| Error::Database(format!("stored operation of execution {}: {e}", execution.id)))?;
            match self.valet.submit(std::slice::from_ref(&op)).await {
                Ok(receipts) => {
                    let r = &receipts[0];
                    settle(
                        "included",
                        Some(r.transaction_hash.to_string()),
                        Some(r.actual_gas_used.to_string()),
                        serde_json::json!({ "resubmitted": true }),
                    )
                    .await?;
                }
                Err(e) => {
                    settle("failed", None, None, serde_json::json!({ "error": e.to_string() })).await?;
                }
            }
        }
        Ok(pending.len())
    }

    /// The lock of session `id`'s lane.
    async fn lane(&self, id: &str) -> Arc<Mutex<()>> {
        self.lanes.lock().await.entry(id.to_string()).or_default().clone()
    }

    /// Holds session `id`'s lane in this instance and among every instance sharing the vault,
    /// until the value is dropped: an execution of that session runs only while holding it.
    pub(crate) async fn hold_lane(&self, id: &str) -> Result<HeldLane, Error> {
        let lane = self.lane(id).await;
        let local = lane.lock_owned().await;
        let across = self.vault.lane_lock(id).await?;
        Ok(HeldLane { _across: across, _local: local })
    }
}

/// A session's lane, held (see [`Service::hold_lane`]).
pub(crate) struct HeldLane {
    _across: vault::LaneLock,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

/// Serves `service` on `addr` (127.0.0.1 unless told otherwise) until `shutdown` resolves.
/// Returns the bound address through `bound` as soon as it listens.
pub async fn serve(
    service: Arc<Service>,
    addr: SocketAddr,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Config(format!("binding {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| Error::Config(e.to_string()))?;
    let _ = bound.send(local);
    tracing::info!(%local, "valet-server listening");
    let scheduler = service.scheduler_every.map(|every| {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = scheduler::run_schedules(&service).await {
                    tracing::warn!(error = %e, "scheduler pass failed");
                }
            }
        })
    });
    let served = axum::serve(listener, api::router(service))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Config(format!("serving: {e}")));
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    served
}
