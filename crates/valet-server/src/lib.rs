#![doc = include_str!("../README.md")]

pub mod api;
pub mod crypto;
mod error;
mod listener;
pub mod metrics;
pub mod openapi;
pub mod reconcile;
pub mod scheduler;
pub mod sponsorship;
pub mod vault;
pub mod web;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use alloy::primitives::Address;
use tokio::sync::Mutex;
use valet_client::{AccountKind, Valet};

pub use crypto::MasterKey;
pub use error::Error;
pub use listener::Limits;
pub use vault::Vault;
pub use web::{DevnetRpc, Faucet, Web};

/// Another chain the service serves besides its main one (`Service::valet`'s): smart accounts
/// only, for the sessions of multichain grants ([`Service::other_chains`]).
#[derive(Debug, Clone)]
pub struct Chain {
    /// Valet's client on that chain for smart accounts (EntryPoint v0.7).
    pub valet: Valet,
    /// The relayer's account on that chain, to put owners' signed revocations there (optional).
    pub relayer: Option<valet_client::Relayer>,
}

/// What the service needs: the chain client, the vault, the master key and the admin token.
pub struct Service {
    /// Valet's client (chain + submitter + deployment) for smart accounts (EntryPoint v0.7).
    pub valet: Valet,
    /// Valet's client for EIP-7702 accounts (EntryPoint v0.8, `Deployment::eip7702`), on the same
    /// chain and validator (`None`: the service serves smart accounts only). With direct
    /// submission its submitter is the smart accounts' one for EntryPoint v0.8
    /// ([`valet_client::Direct::for_entry_point`]), so that both share the relayer's nonces.
    pub valet_7702: Option<Valet>,
    /// The other chains the service serves, by chain id (smart accounts only): a multichain
    /// grant's sessions live one per chain. Health, the faucet, sponsorship, ERC-7677 and the
    /// accounts endpoints stay on the main chain.
    pub other_chains: BTreeMap<u64, Chain>,
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
    /// The relayer's account, to put owners' signed revocations on chain (optional). With direct
    /// submission it must be the submitter's own ([`valet_client::Direct::relayer`]), so that
    /// both send through one nonce manager.
    pub relayer: Option<valet_client::Relayer>,
    /// How often the scheduler looks for due runs (`None`: it does not run).
    pub scheduler_every: Option<std::time::Duration>,
    /// The dApp served at `/` (`None`: the API only).
    pub web: Option<Web>,
    /// Funds accounts on a development chain (`POST /v1/devnet/fund`; `None` elsewhere).
    pub faucet: Option<Faucet>,
    /// The devnet's node and bundler on the page's origin (`POST /rpc`, `POST /bundler`; `None`
    /// elsewhere: `valet up` only).
    pub devnet_rpc: Option<DevnetRpc>,
    /// How long HTTP clients may take and how many may be connected at once.
    pub limits: Limits,
    /// The signer of the ValetPaymaster that pays the network fees of apps' operations, each app
    /// within its daily budget (`None`: nothing is sponsored). See [`sponsorship`].
    pub sponsor: Option<valet_client::SponsorSigner>,
    /// One execution at a time per session (its nonce lane); sessions run in parallel.
    lanes: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// `/health`'s last check of the node (when it began, what it found), held while one runs:
    /// one check at a time, shared by those who asked while it ran.
    pub(crate) health: Mutex<Option<(tokio::time::Instant, Result<u64, String>)>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("valet", &self.valet)
            .field("valet_7702", &self.valet_7702)
            .field("other_chains", &self.other_chains)
            .field("names", &self.names)
            .field("sponsor", &self.sponsor)
            .finish_non_exhaustive()
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
        relayer: Option<valet_client::Relayer>,
    ) -> Self {
        Self {
            valet,
            valet_7702: None,
            other_chains: BTreeMap::new(),
            vault,
            master,
            admin_token_hash: vault::sha256_hex(admin_token.as_bytes()),
            names,
            metrics: metrics::Metrics::default(),
            relayer,
            scheduler_every: Some(std::time::Duration::from_secs(1)),
            web: None,
            faucet: None,
            devnet_rpc: None,
            limits: Limits::default(),
            sponsor: None,
            lanes: Mutex::new(HashMap::new()),
            health: Mutex::new(None),
        }
    }

    /// The client for accounts of `kind`: 400 `account_kind_unavailable` when the service has none.
    pub fn valet_for(&self, kind: AccountKind) -> Result<&Valet, Error> {
        match kind {
            AccountKind::Smart => Ok(&self.valet),
            AccountKind::Eip7702 => self.valet_7702.as_ref().ok_or(Error::AccountKindUnavailable(kind_name(kind))),
        }
    }

    /// The client for accounts of `kind` on chain `chain_id`: the main chain's clients, or another
    /// chain's (smart accounts only). [`Error::ChainNotServed`] naming the chains served otherwise.
    pub fn valet_on(&self, chain_id: u64, kind: AccountKind) -> Result<&Valet, Error> {
        if chain_id == self.valet.chain_id() {
            return self.valet_for(kind);
        }
        let chain = self
            .other_chains
            .get(&chain_id)
            .ok_or_else(|| Error::ChainNotServed { chain_id, served: self.chain_ids() })?;
        match kind {
            AccountKind::Smart => Ok(&chain.valet),
            AccountKind::Eip7702 => Err(Error::AccountKindUnavailable(kind_name(kind))),
        }
    }

    /// The client for stored session `row`: its chain's, for its kind of account.
    pub fn valet_of(&self, row: &vault::SessionRow) -> Result<&Valet, Error> {
        let kind = parse_kind(&row.account_kind).ok_or_else(|| {
            Error::Database(format!(
                "session {}: stored account kind `{}` is not smart or eip7702",
                row.id, row.account_kind
            ))
        })?;
        self.valet_on(row_chain(row)?, kind)
    }

    /// The relayer that puts owners' revocations on stored session `row`'s chain, if that chain
    /// has one.
    pub fn relayer_of(&self, row: &vault::SessionRow) -> Result<Option<&valet_client::Relayer>, Error> {
        let chain_id = row_chain(row)?;
        if chain_id == self.valet.chain_id() {
            return Ok(self.relayer.as_ref());
        }
        match self.other_chains.get(&chain_id) {
            Some(chain) => Ok(chain.relayer.as_ref()),
            None => Err(Error::ChainNotServed { chain_id, served: self.chain_ids() }),
        }
    }

    /// The chains the service serves: the main one first, then the others in ascending order.
    pub fn chain_ids(&self) -> Vec<u64> {
        std::iter::once(self.valet.chain_id()).chain(self.other_chains.keys().copied()).collect()
    }

    /// Every client the service has on its main chain: the smart accounts' first.
    pub fn clients(&self) -> impl Iterator<Item = &Valet> {
        std::iter::once(&self.valet).chain(self.valet_7702.as_ref())
    }

    /// Every client the service has on chain `chain_id` (none if it does not serve it).
    pub fn clients_on(&self, chain_id: u64) -> Vec<&Valet> {
        if chain_id == self.valet.chain_id() {
            self.clients().collect()
        } else {
            self.other_chains.get(&chain_id).map(|c| &c.valet).into_iter().collect()
        }
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

/// The chain of stored session `row`.
fn row_chain(row: &vault::SessionRow) -> Result<u64, Error> {
    u64::try_from(row.chain_id)
        .map_err(|_| Error::Database(format!("session {}: stored chain id {} is negative", row.id, row.chain_id)))
}

/// An account kind as the API and the database name it: `smart` or `eip7702`.
pub fn kind_name(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::Smart => "smart",
        AccountKind::Eip7702 => "eip7702",
    }
}

/// The account kind named `name` (`smart` or `eip7702`), if it is one.
pub fn parse_kind(name: &str) -> Option<AccountKind> {
    match name {
        "smart" => Some(AccountKind::Smart),
        "eip7702" => Some(AccountKind::Eip7702),
        _ => None,
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
    // Executions of unknown outcome and revocations still to land, settled as the chain answers.
    let reconciler = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(reconcile::RECONCILE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = service.reconcile_in_flight().await {
                    tracing::warn!(error = %e, "reconciliation pass failed");
                }
            }
        })
    };
    let scheduler = service.scheduler_every.map(|every| {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut schedules = scheduler::Scheduler::new();
            loop {
                tick.tick().await;
                if let Err(e) = schedules.pass(&service).await {
                    tracing::warn!(error = %e, "scheduler pass failed");
                }
            }
        })
    });
    let limits = service.limits.clone();
    let served = listener::serve(listener, api::router(service), limits, shutdown).await;
    reconciler.abort();
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    served
}
