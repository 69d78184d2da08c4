//! `valet up` (a devnet, the contracts and the service on 127.0.0.1) and `valet serve` (the
//! service against a real chain).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use serde_json::json;
use valet_client::{
    Bundler, BundlerClient, Deployment, Devnet, DevnetOptions, Direct, Relayer, SponsorSigner, Submitter, Valet,
};
use valet_server::{DevnetRpc, Faucet, MasterKey, Service, Vault, Web};

/// The admin token: `VALET_ADMIN_TOKEN`, else `<dir>/admin.token` (created, mode 0600).
fn admin_token(dir: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("VALET_ADMIN_TOKEN") {
        if token.len() < 16 {
            bail!("VALET_ADMIN_TOKEN must be at least 16 characters");
        }
        return Ok(token);
    }
    let path = dir.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(token) => Ok(token.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = format!("valet_admin_{}", alloy::hex::encode(PrivateKeySigner::random().to_bytes()));
            valet_server::crypto::write_private(&path, token.as_bytes())?;
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Serves until Ctrl-C or SIGTERM, or until `broken` says what the service depends on is gone:
/// then the service stops (in-flight requests get a few seconds to be answered) and so does the
/// command, with `broken`'s error.
async fn run(
    service: Service,
    addr: SocketAddr,
    dir: &Path,
    json: bool,
    extra: serde_json::Value,
    broken: impl Future<Output = anyhow::Error>,
) -> anyhow::Result<()> {
    let serves_dapp = service.web.is_some();
    let service = Arc::new(service);
    let reconciled = service.reconcile().await.context("reconciling executions in flight")?;
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    // Stops the service when sent, or when dropped (this function ended early).
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = stop_rx => {}
        }
    };
    let mut server = tokio::spawn(valet_server::serve(service, addr, bound_tx, shutdown));
    let bound = match bound_rx.await {
        Ok(bound) => bound,
        Err(_) => return server.await?.map_err(Into::into),
    };
    let url = format!("http://{bound}");
    let mut extra = extra;
    if serves_dapp {
        extra["dapp"] = json!(format!("{url}/"));
    }
    if json {
        let mut doc = json!({ "url": url, "data_dir": dir, "admin_token_file": dir.join("admin.token"), "reconciled": reconciled, "pid": std::process::id() });
        if let (serde_json::Value::Object(map), serde_json::Value::Object(extra)) = (&mut doc, extra) {
            map.extend(extra);
        }
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        println!("Valet service at {} (until Ctrl-C)", url);
        if let Some(serde_json::Value::String(dapp)) = extra.get("dapp") {
            println!("  dApp        {dapp}");
        }
        println!("  data dir    {}", dir.display());
        println!("  admin token in {} (POST /v1/apps with it to get an API key)", dir.join("admin.token").display());
        println!("  OpenAPI     {}/openapi.json", url);
        if reconciled > 0 {
            println!("  reconciled {reconciled} execution(s) left in flight by the last run");
        }
        if let serde_json::Value::Object(extra) = extra {
            for (k, v) in extra.into_iter().filter(|(k, v)| k != "dapp" && !v.is_null()) {
                match v {
                    serde_json::Value::String(text) => println!("  {k:<11} {text}"),
                    other => println!("  {k:<11} {other}"),
                }
            }
        }
    }
    use std::io::Write as _;
    std::io::stdout().flush()?;
    tokio::select! {
        served = &mut server => served?.map_err(Into::into),
        error = broken => {
            let _ = stop_tx.send(());
            if tokio::time::timeout(Duration::from_secs(5), &mut server).await.is_err() {
                server.abort();
            }
            Err(error)
        }
    }
}

/// The development wallet the dApp offers when the browser has none: anvil's dev account 7, whose
/// key is public (and used by nothing else here).
const DEV_WALLET_KEY: usize = 7;

/// Where the dApp's build is: `flag` if given; else the first of `./web/dist`, `web/` beside the
/// `valet` binary (an install can ship it there) and the `web/dist` of the checkout this binary was
/// built from, that holds an `index.html`; else `./web/dist` (reported as not built).
pub(crate) fn find_web(flag: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = flag {
        return dir;
    }
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("web")));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    let default = PathBuf::from("web/dist");
    [Some(default.clone()), beside, Some(source)]
        .into_iter()
        .flatten()
        .find(|dir| dir.join("index.html").is_file())
        .unwrap_or(default)
}

/// Most devnets `valet up --chains` starts: the main one and one per chain id of `valet demo
/// --chains`.
pub(crate) const MAX_UP_CHAINS: usize = 4;

/// Another devnet `valet up --chains` serves: smart accounts (through its Alto, or directly from
/// dev key 1) and owners' revocations from dev key 9, as on the main devnet.
async fn other_chain(devnet: &Devnet) -> anyhow::Result<valet_server::Chain> {
    let submitter: Arc<dyn Submitter> = match devnet.bundler_url() {
        Some(url) => Arc::new(
            Bundler::new(BundlerClient::new(&url, devnet.addresses.entry_point)?).with_node(devnet.provider.clone()),
        ),
        None => Arc::new(Direct::new(devnet.provider_for(1), devnet.key(1).address()).await?),
    };
    let valet = Valet::new(devnet.provider.clone(), submitter, devnet.deployment()).await?;
    let relayer = Relayer::new(devnet.provider_for(9), devnet.key(9).address());
    Ok(valet_server::Chain { valet, relayer: Some(relayer) })
}

/// `valet up`: a fresh devnet (and Alto if asked), the contracts, the service, and the dApp; with
/// `chains` > 1, as many devnets, the others with the chain ids `valet demo --chains` gives its
/// anvils (smart accounts only there: multichain grants).
pub(crate) async fn up(
    port: u16,
    dir: PathBuf,
    alto: bool,
    json: bool,
    web: &Path,
    chains: usize,
) -> anyhow::Result<()> {
    if !(1..=MAX_UP_CHAINS).contains(&chains) {
        bail!("--chains {chains}: valet up serves 1 to {MAX_UP_CHAINS} devnets");
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let devnet =
        Devnet::start_with(DevnetOptions { alto, ..Default::default() }).await.context("starting the devnet")?;
    let mut others = Vec::with_capacity(chains - 1);
    for chain_id in &crate::demo::DEMO_CHAIN_IDS[..chains - 1] {
        let other = Devnet::start_with(DevnetOptions { alto, chain_id: Some(*chain_id), ..Default::default() })
            .await
            .with_context(|| format!("starting the devnet of chain {chain_id}"))?;
        others.push(other);
    }
    // The vault mirrors this devnet, which starts empty: so does the vault.
    for file in ["valet.db", "valet.db-wal", "valet.db-shm"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    let vault = Vault::connect(&format!("sqlite://{}?mode=rwc", dir.join("valet.db").display())).await?;
    let master = MasterKey::load(&dir.join("master.key"))?;
    // Smart accounts on EntryPoint v0.7, EOAs (EIP-7702) on v0.8: through Alto, which serves
    // both, or directly from dev key 1, one nonce manager for both EntryPoints.
    let (submitter, submitter_7702): (Arc<dyn Submitter>, Arc<dyn Submitter>) = match devnet.bundler_url() {
        Some(url) => (
            Arc::new(
                Bundler::new(BundlerClient::new(&url, devnet.addresses.entry_point)?)
                    .with_node(devnet.provider.clone()),
            ),
            Arc::new(
                Bundler::new(BundlerClient::new(&url, valet_core::ENTRY_POINT_V08)?).with_node(devnet.provider.clone()),
            ),
        ),
        None => {
            let direct = Direct::new(devnet.provider_for(1), devnet.key(1).address()).await?;
            let for_7702 = direct.for_entry_point(valet_core::ENTRY_POINT_V08);
            (Arc::new(direct), Arc::new(for_7702))
        }
    };
    let valet = Valet::new(devnet.provider.clone(), submitter, devnet.deployment()).await?;
    let valet_7702 = Valet::new(devnet.provider.clone(), submitter_7702, devnet.deployment_7702()).await?;
    let a = devnet.addresses;
    let names = BTreeMap::from([
        ("ValetNFT".to_string(), a.nft),
        ("ValetToken".to_string(), a.token),
        ("ValetDAO".to_string(), a.dao),
    ]);
    let token = admin_token(&dir)?;
    // Owners' revocations go out from dev key 9 (the submitter's handleOps from key 1, or Alto's).
    let revoker = Relayer::new(devnet.provider_for(9), devnet.key(9).address());
    let mut service = Service::new(valet, vault, master, &token, names.clone(), Some(revoker));
    service.valet_7702 = Some(valet_7702);
    for other in &others {
        service.other_chains.insert(other.chain_id(), other_chain(other).await?);
    }
    // Accounts made in the dApp get 1 ETH for gas and 100 demo tokens to pay with.
    let ether = alloy::primitives::U256::from(10u128.pow(18));
    service.faucet = Some(
        Faucet::new(devnet.provider_for(2), ether, Some((a.token, ether * alloy::primitives::U256::from(100))))
            .with_sender(devnet.key(2).address()),
    );
    // The devnet's paymaster sponsors apps' operations (within each app's daily budget).
    service.sponsor = Some(devnet.sponsor());
    // Three open proposals, so a DAO voting session has something to vote on.
    let proposals: Vec<serde_json::Value> =
        crate::demo::open_proposals(&devnet, service.valet.now().await? + 30 * 86_400)
            .await?
            .into_iter()
            .map(|(id, title)| json!({ "id": id, "title": title }))
            .collect();
    // Keys kept in the browser: the page reaches the node and the bundler on its own origin.
    let bundler = devnet.bundler_url();
    service.devnet_rpc = Some(DevnetRpc::new(&devnet.endpoint(), bundler.as_deref())?);
    let dapp = if web.join("index.html").is_file() {
        // The page is public on loopback, and so is its key: this app exists for the devnet dApp.
        let (app, api_key) = service.vault.create_app("dApp (devnet)").await?;
        // The devnet's paymaster pays the dApp's operations, up to 1 ETH a day.
        service.vault.set_sponsorship_budget(&app.id, Some(ether)).await?;
        let wallet = devnet.key(DEV_WALLET_KEY);
        service.web = Some(Web {
            dir: web.to_path_buf(),
            config: json!({
                "network": "devnet",
                "chain_id": devnet.chain_id(),
                "api_key": api_key,
                "contracts": names,
                "validator": a.validator,
                "factory": a.factory,
                "demo_payee": devnet.key(6).address(),
                "dao_proposals": proposals,
                "faucet": true,
                "paymaster": devnet.paymaster(),
                "entry_point": a.entry_point,
                "rpc": "/rpc",
                "bundler": bundler.is_some().then_some("/bundler"),
                "dev_wallet": {
                    "address": wallet.address(),
                    "private_key": format!("0x{}", alloy::hex::encode(wallet.to_bytes())),
                    "label": format!("anvil dev account {DEV_WALLET_KEY}: its key is public, use it on this devnet only"),
                },
            }),
        });
        None
    } else {
        Some(format!("not built: no {} (run `make web`)", web.join("index.html").display()))
    };
    let served: Vec<serde_json::Value> = std::iter::once(&devnet)
        .chain(&others)
        .map(|d| json!({ "chain_id": d.chain_id(), "rpc_url": d.endpoint(), "bundler_url": d.bundler_url() }))
        .collect();
    let extra = json!({ "dapp": dapp, "rpc_url": devnet.endpoint(), "bundler_url": devnet.bundler_url(), "chain_id": devnet.chain_id(), "chains": served, "contracts": names, "validator": a.validator, "factory": a.factory, "paymaster": devnet.paymaster() });
    // The service stops with any of its devnets.
    let mut watched: Vec<std::pin::Pin<Box<dyn Future<Output = String> + '_>>> = std::iter::once(&devnet)
        .chain(&others)
        .map(|d| Box::pin(async move { format!("chain {}: {}", d.chain_id(), d.exited().await) }) as _)
        .collect();
    let devnet_exited = async move {
        let exited = std::future::poll_fn(|cx| {
            for watch in &mut watched {
                if let std::task::Poll::Ready(exited) = watch.as_mut().poll(cx) {
                    return std::task::Poll::Ready(exited);
                }
            }
            std::task::Poll::Pending
        })
        .await;
        anyhow!("{exited}: the service stops with its devnets")
    };
    let result = run(service, SocketAddr::from((Ipv4Addr::LOCALHOST, port)), &dir, json, extra, devnet_exited).await;
    drop(others);
    drop(devnet);
    result
}

/// Settings of `valet serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The node's JSON-RPC URL.
    #[arg(long, env = "VALET_RPC_URL")]
    pub(crate) rpc_url: String,
    /// A bundler's URL (otherwise --relayer-key submits directly).
    #[arg(long, env = "VALET_BUNDLER_URL")]
    pub(crate) bundler_url: Option<String>,
    /// The relayer's private key (direct submission, and owners' signed revocations).
    #[arg(long, env = "VALET_RELAYER_KEY", hide_env_values = true)]
    pub(crate) relayer_key: Option<String>,
    /// `sqlite://…` or `postgres://…` (default: a SQLite file in the data dir).
    #[arg(long, env = "VALET_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// The SessionKeyValidator (default: its canonical address, where `valet deploy` puts it).
    #[arg(long, env = "VALET_VALIDATOR")]
    pub(crate) validator: Option<Address>,
    /// The ValetAccountFactory (default: its canonical address).
    #[arg(long, env = "VALET_FACTORY")]
    pub(crate) factory: Option<Address>,
    /// Names for contracts in specs and calls: `--name Name=0x…` (repeatable).
    #[arg(long = "name", value_parser = crate::parse_name)]
    pub(crate) names: Vec<(String, Address)>,
    /// Where to listen: `ADDR:PORT` (port 0: any free port). Anything but a loopback address
    /// exposes the service: put it behind TLS.
    #[arg(long, env = "VALET_LISTEN", default_value = "127.0.0.1:8080", conflicts_with = "port")]
    pub(crate) listen: SocketAddr,
    /// Shorthand for `--listen 127.0.0.1:PORT`.
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Where the service keeps its SQLite database, master key and admin token.
    #[arg(long = "data-dir", default_value = ".valet-serve")]
    pub(crate) data_dir: PathBuf,
    /// Print one JSON line once serving.
    #[arg(long)]
    pub(crate) json: bool,
    /// A ValetPaymaster that pays the network fees of apps' session operations, each app within
    /// the daily budget the admin gives it (`PUT /v1/apps/{id}/sponsorship`). Needs its signer's
    /// key (--sponsor-key).
    #[arg(long, env = "VALET_PAYMASTER", requires = "sponsor_key")]
    pub(crate) paymaster: Option<Address>,
    /// The paymaster's signer key (hex), which approves each operation it pays for. Prefer the
    /// env variable: flags show in `ps`.
    #[arg(long, env = "VALET_SPONSOR_KEY", hide_env_values = true, requires = "paymaster")]
    pub(crate) sponsor_key: Option<String>,
    /// Another chain to serve, by its node's JSON-RPC URL (repeatable; `VALET_CHAINS` takes them
    /// comma-separated): the sessions of multichain grants (`chains` in `POST /v1/sessions`) live
    /// one per chain. Valet must be at the same addresses there (`valet deploy` puts it there);
    /// its operations go directly from the relayer key, funded on that chain too, unless
    /// `--chain-bundler` names a bundler for it. Smart accounts only on these chains.
    #[arg(long = "chain", env = "VALET_CHAINS", value_delimiter = ',', hide_env_values = true)]
    pub(crate) chains: Vec<String>,
    /// A bundler for another chain: `CHAIN_ID=URL` (repeatable).
    #[arg(long = "chain-bundler", value_parser = parse_chain_bundler)]
    pub(crate) chain_bundlers: Vec<(u64, String)>,
}

/// `CHAIN_ID=URL` of `--chain-bundler`.
fn parse_chain_bundler(value: &str) -> Result<(u64, String), String> {
    let (id, url) = value.split_once('=').ok_or_else(|| format!("`{value}` is not CHAIN_ID=URL"))?;
    let id =
        id.trim().parse::<u64>().map_err(|_| format!("`{id}` in `{value}` is not a chain id (a decimal number)"))?;
    if url.trim().is_empty() {
        return Err(format!("`{value}` names no bundler URL after the `=`"));
    }
    Ok((id, url.trim().to_string()))
}

/// Where a URL points, for messages: its scheme, host and port only (node and bundler URLs often
/// carry an API key in their path or query).
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}")
        }
        None => "the URL given".to_string(),
    }
}

/// Another chain `valet serve --chain URL` serves: its id, and Valet's client there (the same
/// deployment as on the main chain, checked to be there) with its relayer.
async fn served_chain(
    url: &str,
    deployment: Deployment,
    relayer_key: Option<&PrivateKeySigner>,
    bundlers: &BTreeMap<u64, String>,
) -> anyhow::Result<(u64, valet_server::Chain)> {
    let at = shown(url);
    let provider = valet_client::rpc::http_provider(url).map_err(|e| anyhow!("--chain {at}: {e}"))?;
    let chain_id = provider.get_chain_id().await.map_err(|e| anyhow!("--chain {at}: the node does not answer: {e}"))?;
    for (name, address) in [
        ("EntryPoint v0.7", deployment.entry_point),
        ("SessionKeyValidator", deployment.validator),
        ("ValetAccountFactory", deployment.factory),
    ] {
        let code = provider.get_code_at(address).await.map_err(|e| anyhow!("--chain {at} (chain {chain_id}): {e}"))?;
        if code.is_empty() {
            bail!(
                "--chain {at} (chain {chain_id}): no {name} at {address}: Valet must be at the main chain's addresses \
                 there (`valet deploy --rpc-url …` puts it at its canonical ones)"
            );
        }
    }
    let wallet = match relayer_key {
        Some(key) => Some((
            valet_client::rpc::http_wallet_provider(url, key.clone()).map_err(|e| anyhow!("--chain {at}: {e}"))?,
            key.address(),
        )),
        None => None,
    };
    let (submitter, relayer): (Arc<dyn Submitter>, Option<Relayer>) = match (bundlers.get(&chain_id), wallet) {
        (Some(bundler), wallet) => (
            Arc::new(Bundler::new(BundlerClient::new(bundler, deployment.entry_point)?).with_node(provider.clone())),
            wallet.map(|(w, address)| Relayer::new(w, address)),
        ),
        (None, Some((wallet, address))) => {
            let direct = Direct::new(wallet, address).await?;
            let relayer = direct.relayer();
            (Arc::new(direct), Some(relayer))
        }
        (None, None) => bail!(
            "--chain {at} (chain {chain_id}): give --relayer-key, or --chain-bundler {chain_id}=URL, to send its operations"
        ),
    };
    let valet = Valet::new(provider, submitter, deployment).await?;
    Ok((chain_id, valet_server::Chain { valet, relayer }))
}

/// The sponsor of `--paymaster` with `--sponsor-key`, checked against the chain: a paymaster is
/// there, and the key is its signer (else every approval would be refused). The key is never
/// shown.
async fn sponsor(provider: &DynProvider, paymaster: Address, key: &str) -> anyhow::Result<SponsorSigner> {
    let key: PrivateKeySigner =
        key.trim().parse().map_err(|_| anyhow!("the sponsor key is not a 32-byte hex private key"))?;
    if provider.get_code_at(paymaster).await?.is_empty() {
        bail!("--paymaster {paymaster}: no contract there (deploy a ValetPaymaster first)");
    }
    let signer = valet_client::contracts::ValetPaymaster::new(paymaster, provider)
        .signer()
        .call()
        .await
        .with_context(|| format!("--paymaster {paymaster}: reading its signer (is it a ValetPaymaster?)"))?;
    if signer != key.address() {
        bail!("--paymaster {paymaster} takes approvals from {signer}, not from the sponsor key's {}", key.address());
    }
    // Validity counted by the chain's clock too, should it run ahead of this machine's.
    Ok(SponsorSigner::new(paymaster, key).with_chain_clock(provider.clone()))
}

/// `valet serve`: the service against any chain with Valet deployed.
pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    // Every node and bundler call has a deadline: a stalled node is reported, not waited on.
    let rpc_url = |e: valet_client::Error| anyhow!("--rpc-url `{}`: {e}", args.rpc_url);
    let provider = valet_client::rpc::http_provider(&args.rpc_url).map_err(rpc_url)?;
    let relayer_key: Option<PrivateKeySigner> = match &args.relayer_key {
        Some(key) => Some(key.trim().parse().map_err(|_| anyhow!("the relayer key is not a 32-byte hex private key"))?),
        None => None,
    };
    let wallet: Option<(DynProvider, Address)> = match &relayer_key {
        Some(key) => {
            Some((valet_client::rpc::http_wallet_provider(&args.rpc_url, key.clone()).map_err(rpc_url)?, key.address()))
        }
        None => None,
    };
    // One relayer account, whatever it sends: handleOps and owners' revocations share its nonces.
    // EIP-7702 accounts' operations go to EntryPoint v0.8: on the same bundler URL, or from the
    // same relayer through the same nonce manager.
    type Submitters = (Arc<dyn Submitter>, Arc<dyn Submitter>, Option<Relayer>);
    let (submitter, submitter_7702, relayer): Submitters = match (&args.bundler_url, wallet) {
        (Some(url), wallet) => (
            Arc::new(Bundler::new(BundlerClient::new(url, valet_core::ENTRY_POINT_V07)?).with_node(provider.clone())),
            Arc::new(Bundler::new(BundlerClient::new(url, valet_core::ENTRY_POINT_V08)?).with_node(provider.clone())),
            wallet.map(|(w, address)| Relayer::new(w, address)),
        ),
        (None, Some((wallet, address))) => {
            let direct = Direct::new(wallet, address).await?;
            let relayer = direct.relayer();
            let for_7702 = direct.for_entry_point(valet_core::ENTRY_POINT_V08);
            (Arc::new(direct), Arc::new(for_7702), Some(relayer))
        }
        (None, None) => bail!("give --bundler-url or --relayer-key (VALET_BUNDLER_URL / VALET_RELAYER_KEY)"),
    };
    let canonical = Deployment::canonical();
    let deployment = Deployment {
        entry_point: valet_core::ENTRY_POINT_V07,
        validator: args.validator.unwrap_or(canonical.validator),
        factory: args.factory.unwrap_or(canonical.factory),
        kind: valet_client::AccountKind::Smart,
    };
    let valet = Valet::new(provider.clone(), submitter, deployment).await?;
    // EIP-7702 accounts too where EntryPoint v0.8 and Valet's 7702 implementation are deployed
    // (`valet deploy` puts them there); elsewhere the service serves smart accounts only.
    let deployment_7702 = Deployment { validator: deployment.validator, ..Deployment::eip7702() };
    let (valet_7702, eip7702) = match eip7702_client(&provider, submitter_7702, deployment_7702).await {
        Ok(valet) => (Some(valet), json!("served")),
        Err(why) => (None, json!(format!("not served: {why}"))),
    };
    let database = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", args.data_dir.join("valet.db").display()));
    let vault = Vault::connect(&database).await?;
    let master = MasterKey::load(&args.data_dir.join("master.key"))?;
    let token = admin_token(&args.data_dir)?;
    let names = args.names.into_iter().collect();
    let chain_id = provider.get_chain_id().await?;
    let mut service = Service::new(valet, vault, master, &token, names, relayer);
    service.valet_7702 = valet_7702;
    if let (Some(paymaster), Some(key)) = (args.paymaster, &args.sponsor_key) {
        service.sponsor = Some(sponsor(&provider, paymaster, key).await?);
    }
    // The other chains, each checked before serving: Valet there, a way to send, no chain twice.
    let bundlers: BTreeMap<u64, String> = args.chain_bundlers.iter().cloned().collect();
    let mut chains = vec![json!({ "chain_id": chain_id, "rpc_url": shown(&args.rpc_url) })];
    for url in &args.chains {
        let (other, chain) = served_chain(url, deployment, relayer_key.as_ref(), &bundlers).await?;
        if other == chain_id || service.other_chains.contains_key(&other) {
            bail!("--chain {}: chain {other} is served already (one URL per chain)", shown(url));
        }
        chains.push(json!({ "chain_id": other, "rpc_url": shown(url), "bundler": bundlers.contains_key(&other) }));
        service.other_chains.insert(other, chain);
    }
    if let Some(id) = bundlers.keys().find(|id| !service.other_chains.contains_key(id)) {
        bail!("--chain-bundler {id}=…: no --chain serves chain {id} (the main chain's bundler is --bundler-url)");
    }
    let extra = json!({
        "rpc_url": args.rpc_url, "chain_id": chain_id, "chains": chains, "paymaster": args.paymaster, "eip7702": eip7702,
    });
    // The chain is not ours to watch: a node that goes away shows in the answers.
    let listen = args.port.map_or(args.listen, |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    run(service, listen, &args.data_dir, args.json, extra, std::future::pending()).await
}

/// The client for EIP-7702 accounts at `deployment`, if EntryPoint v0.8 and the implementation
/// are on the chain; else why not.
async fn eip7702_client(
    provider: &DynProvider,
    submitter: Arc<dyn Submitter>,
    deployment: Deployment,
) -> anyhow::Result<Valet> {
    if provider.get_code_at(deployment.entry_point).await?.is_empty() {
        bail!("no EntryPoint v0.8 at {}", deployment.entry_point);
    }
    Ok(Valet::new(provider.clone(), submitter, deployment).await?)
}
