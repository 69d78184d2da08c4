#![doc = include_str!("../README.md")]

pub mod api;
pub mod crypto;
mod error;
pub mod metrics;
pub mod openapi;
pub mod vault;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use alloy::primitives::Address;
use tokio::sync::Mutex;
use valet_client::Valet;

pub use crypto::MasterKey;
pub use error::Error;
pub use vault::Vault;

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
            lanes: Mutex::new(HashMap::new()),
        }
    }

    /// The lock of session `id`'s lane.
    async fn lane(&self, id: &str) -> Arc<Mutex<()>> {
        self.lanes.lock().await.entry(id.to_string()).or_default().clone()
    }
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
    axum::serve(listener, api::router(service))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Config(format!("serving: {e}")))
}
