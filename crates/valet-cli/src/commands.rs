//! `valet devnet`, `valet account …` and `valet session …`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use serde_json::json;
use valet_client::bundler::GasEstimate;
use valet_client::submit::{BoxFuture, Fees, OpReceipt};
use valet_client::{
    Account, Bundler, BundlerClient, Deployment, Devnet, DevnetOptions, Direct, Error, SessionHandle, Submitter, Valet,
};
use valet_core::spec::{Function, Labels, SessionSpec, explain, units, utc};
use valet_core::{Call, Session, UserOperation};

use crate::store::{self, DevnetInfo, StoredSession};
use crate::{ChainArgs, OwnerKey};

/// `valet devnet`: run until Ctrl-C (or SIGTERM), with `devnet.json` describing it meanwhile; or
/// fail, saying so, when anvil or Alto dies (nothing can use the devnet any more).
pub(crate) async fn devnet(json: bool, alto: bool, dir: &Path) -> anyhow::Result<()> {
    if let Some(running) = store::read_devnet(dir)?
        && store::is_running(running.pid)
    {
        bail!(
            "a devnet (PID {}) is already running at {} with {}: stop it first, or pass another --data-dir",
            running.pid,
            running.rpc_url,
            store::devnet_path(dir).display()
        );
    }
    // Listen for the stop signals before anything starts, so that a signal arriving at any point
    // (even right after the JSON line is printed) stops the devnet cleanly.
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let devnet = tokio::select! {
        devnet = Devnet::start_with(DevnetOptions { alto, ..Default::default() }) => devnet.context("starting the devnet")?,
        _ = interrupt.recv() => bail!("interrupted while starting the devnet"),
        _ = terminate.recv() => bail!("terminated while starting the devnet"),
    };
    let a = devnet.addresses;
    let names = BTreeMap::from([
        ("ValetNFT".to_string(), a.nft),
        ("ValetToken".to_string(), a.token),
        ("ValetDAO".to_string(), a.dao),
    ]);
    let info = DevnetInfo {
        rpc_url: devnet.endpoint(),
        bundler_url: devnet.bundler_url(),
        chain_id: devnet.chain_id(),
        entry_point: a.entry_point,
        validator: a.validator,
        factory: a.factory,
        names,
        relayer_key: format!("0x{}", alloy::hex::encode(devnet.key(1).to_bytes())),
        pid: std::process::id(),
        dev_keys: (0..10).map(|i| format!("0x{}", alloy::hex::encode(devnet.key(i).to_bytes()))).collect(),
    };
    store::write_devnet(dir, &info)?;
    // Removes devnet.json however this function ends (a signal, a write error, a panic).
    let devnet_file = store::DevnetFile(dir.to_path_buf());
    print_devnet(json, alto, &info, dir, "until Ctrl-C")?;
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let exited = tokio::select! {
        _ = interrupt.recv() => None,
        _ = terminate.recv() => None,
        exited = devnet.exited() => Some(exited),
    };
    drop(devnet_file);
    drop(devnet);
    if let Some(exited) = exited {
        bail!("{exited}: the devnet is stopped");
    }
    if !json {
        println!("devnet stopped");
    }
    Ok(())
}

/// The dev key that owns the walkthrough's account (anvil's dev key 3: a public test key).
const OWNER_DEV_KEY: usize = 3;

/// What `valet devnet` prints once the devnet is ready: its endpoints, addresses and dev keys,
/// and the lines to paste to use it.
fn print_devnet(json: bool, alto: bool, info: &DevnetInfo, dir: &Path, lasts: &str) -> anyhow::Result<()> {
    let keys: Vec<serde_json::Value> = info
        .dev_keys
        .iter()
        .enumerate()
        .map(|(i, hex)| {
            let address = parse_key(hex, "dev").map(|k| k.address()).unwrap_or_default();
            let role = match i {
                0 => "deployer",
                1 => "relayer (direct submission)",
                2 => "funder",
                OWNER_DEV_KEY => "owner in the README's walkthrough (free)",
                4 | 5 if alto => "bundler",
                _ => "free (e.g. an owner)",
            };
            json!({ "index": i, "address": address, "private_key": hex, "role": role })
        })
        .collect();
    let owner_key = info.dev_keys.get(OWNER_DEV_KEY).cloned().unwrap_or_default();
    let env = json!({ "VALET_OWNER_KEY": owner_key, "ETH_RPC_URL": info.rpc_url });
    if json {
        println!("{}", serde_json::to_string(&json!({ "devnet": info, "dev_keys": keys, "env": env }))?);
    } else {
        println!("Valet devnet (chain {}), {lasts}", info.chain_id);
        println!("  rpc        {}", info.rpc_url);
        if let Some(url) = &info.bundler_url {
            println!("  bundler    {url}");
        }
        println!("  entryPoint {}", info.entry_point);
        println!("  validator  {}", info.validator);
        println!("  factory    {}", info.factory);
        for (name, address) in &info.names {
            println!("  {name:<10} {address}");
        }
        println!("Dev keys (anvil's public test keys — never use them on a real chain):");
        for k in &keys {
            println!(
                "  {} {} {} ({})",
                k["index"],
                k["address"].as_str().unwrap_or_default(),
                k["private_key"].as_str().unwrap_or_default(),
                k["role"].as_str().unwrap_or_default()
            );
        }
        println!("Other commands find this devnet through {}. To use it, paste:", store::devnet_path(dir).display());
        println!("  export VALET_OWNER_KEY={owner_key}   # dev key {OWNER_DEV_KEY} owns the account");
        println!("  export VALET_PASSWORD=…   # yours to choose: stored session keys are encrypted under it");
        println!("  export ETH_RPC_URL={}   # for cast and other tools", info.rpc_url);
        println!("  valet devnet fund         # 1 ETH for the owner's account's fees");
    }
    use std::io::Write as _;
    std::io::stdout().flush()?;
    Ok(())
}

/// `valet devnet --detach`: `valet devnet` in the background, in a process group of its own (a
/// Ctrl-C in this terminal does not reach it), its output in `devnet.log`; returns once it is
/// ready, printing what it prints.
pub(crate) async fn devnet_detach(json: bool, alto: bool, dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    if let Some(running) = store::read_devnet(dir)?
        && store::is_running(running.pid)
    {
        bail!(
            "a devnet (PID {}) is already running at {}: stop it first (`valet devnet stop`), or pass another --data-dir",
            running.pid,
            running.rpc_url
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let log_path = dir.join("devnet.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut command = std::process::Command::new(std::env::current_exe().context("finding this valet binary")?);
    command.arg("devnet").arg("--data-dir").arg(dir);
    if alto {
        command.args(["--bundler", "alto"]);
    }
    command.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
    let mut child = command.spawn().context("starting valet devnet in the background")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let info = loop {
        if let Some(status) = child.try_wait()? {
            bail!("the devnet exited ({status}) before it was ready: see {}", log_path.display());
        }
        if let Some(info) = store::read_devnet(dir)?.filter(|i| i.pid == child.id()) {
            break info;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            bail!("the devnet was not ready after 120 s: see {}", log_path.display());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // Not waited for: it outlives this process.
    drop(child);
    print_devnet(json, alto, &info, dir, "in the background (`valet devnet stop` stops it)")
}

/// `valet devnet stop`: SIGTERM to the running devnet, by its PID, and wait until it is gone.
pub(crate) async fn devnet_stop(dir: &Path) -> anyhow::Result<()> {
    let Some(info) = store::read_devnet(dir)? else {
        bail!("no devnet is running here (no {})", store::devnet_path(dir).display());
    };
    if !store::is_running(info.pid) {
        let _ = std::fs::remove_file(store::devnet_path(dir));
        bail!("the devnet (PID {}) was no longer running; removed {}", info.pid, store::devnet_path(dir).display());
    }
    let status =
        std::process::Command::new("kill").args(["-TERM", &info.pid.to_string()]).status().context("running kill")?;
    if !status.success() {
        bail!("could not signal the devnet (PID {}): kill exited with {status}", info.pid);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store::is_running(info.pid) || store::devnet_path(dir).exists() {
        if std::time::Instant::now() > deadline {
            bail!("the devnet (PID {}) is still running 30 s after SIGTERM", info.pid);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("devnet (PID {}) stopped", info.pid);
    Ok(())
}

/// `valet devnet fund`: adds `eth` ETH to `address` (default: the owner key's account, salt 0) on
/// the running devnet (`anvil_setBalance`: a devnet only).
pub(crate) async fn devnet_fund(address: Option<Address>, eth: &str, key: &OwnerKey, dir: &Path) -> anyhow::Result<()> {
    let info = store::read_devnet(dir)?
        .filter(|i| store::is_running(i.pid))
        .ok_or_else(|| anyhow!("no devnet is running: start one with `valet devnet`"))?;
    let amount = valet_core::spec::parse_amount(&valet_core::spec::Amount::Text(format!("{eth} ether")), "--eth")?;
    let url = info.rpc_url.parse().map_err(|e| anyhow!("{}: {e}", info.rpc_url))?;
    let provider = ProviderBuilder::new().connect_http(url).erased();
    let address = match address {
        Some(address) => address,
        None => {
            let owner = owner_signer(key)?.ok_or_else(|| {
                anyhow!("give the address to fund, or the owner key (VALET_OWNER_KEY) whose account to fund")
            })?;
            valet_client::contracts::ValetAccountFactory::new(info.factory, &provider)
                .getAddress(owner.address(), U256::ZERO)
                .call()
                .await?
        }
    };
    let balance = provider.get_balance(address).await? + amount;
    let _: serde_json::Value = provider.raw_request("anvil_setBalance".into(), (address, balance)).await?;
    println!("{address} now holds {} ETH", units(balance.saturating_to(), 18));
    Ok(())
}

/// A submitter for commands that only read.
struct NoSubmitter;

impl Submitter for NoSubmitter {
    fn kind(&self) -> &'static str {
        "none"
    }
    fn fees(&self) -> BoxFuture<'_, Result<Fees, Error>> {
        Box::pin(async { Err(no_submitter()) })
    }
    fn estimate<'a>(&'a self, _: &'a UserOperation) -> BoxFuture<'a, Result<GasEstimate, Error>> {
        Box::pin(async { Err(no_submitter()) })
    }
    fn submit<'a>(&'a self, _: &'a [UserOperation]) -> BoxFuture<'a, Result<Vec<OpReceipt>, Error>> {
        Box::pin(async { Err(no_submitter()) })
    }
}

fn no_submitter() -> Error {
    Error::Config(
        "no way to submit: pass --bundler-url (VALET_BUNDLER_URL) or --relayer-key (VALET_RELAYER_KEY)".into(),
    )
}

struct Connection {
    valet: Valet,
    names: BTreeMap<String, Address>,
    dir: std::path::PathBuf,
    rpc_url: String,
}

fn parse_key(hex: &str, what: &str) -> anyhow::Result<PrivateKeySigner> {
    hex.trim().parse::<PrivateKeySigner>().map_err(|_| anyhow!("the {what} key is not a 32-byte hex private key"))
}

async fn connect(chain: &ChainArgs) -> anyhow::Result<Connection> {
    connect_as(chain, chain.account_kind.into()).await
}

/// [`connect`] for a stored session: with the session's account kind, whatever the flag says.
async fn connect_for(chain: &ChainArgs, id: &str) -> anyhow::Result<(Connection, StoredSession)> {
    let stored = store::find_session(&chain.data.path(), id)?;
    let c = connect_as(chain, stored.account_kind.into()).await?;
    Ok((c, stored))
}

async fn connect_as(chain: &ChainArgs, kind: valet_client::AccountKind) -> anyhow::Result<Connection> {
    let dir = chain.data.path();
    let devnet = store::read_devnet(&dir)?.filter(|d| chain.rpc_url.as_ref().is_none_or(|url| *url == d.rpc_url));
    if let Some(d) = devnet.as_ref().filter(|d| chain.rpc_url.is_none() && !store::is_running(d.pid)) {
        bail!(
            "{} describes a devnet (PID {}) that is no longer running: start one with `valet devnet`, or pass --rpc-url",
            store::devnet_path(&dir).display(),
            d.pid
        );
    }
    let rpc_url = chain
        .rpc_url
        .clone()
        .or_else(|| devnet.as_ref().map(|d| d.rpc_url.clone()))
        .ok_or_else(|| anyhow!("no chain: pass --rpc-url (or VALET_RPC_URL), or start one with `valet devnet`"))?;
    let url = rpc_url.parse().map_err(|e| anyhow!("--rpc-url `{rpc_url}`: {e}"))?;
    let provider = ProviderBuilder::new().connect_http(url).erased();
    // A flag, else the running devnet's, else where `valet deploy` puts them on every chain.
    let canonical = Deployment::canonical();
    let validator = chain.validator.or_else(|| devnet.as_ref().map(|d| d.validator)).unwrap_or(canonical.validator);
    let deployment = match kind {
        valet_client::AccountKind::Smart => Deployment {
            entry_point: valet_core::ENTRY_POINT_V07,
            validator,
            factory: chain.factory.or_else(|| devnet.as_ref().map(|d| d.factory)).unwrap_or(canonical.factory),
            kind,
        },
        // EntryPoint v0.8 and the ValetAccount7702 implementation, at their canonical addresses.
        valet_client::AccountKind::Eip7702 => Deployment { validator, ..Deployment::eip7702() },
    };
    let bundler_url = chain.bundler_url.clone().or_else(|| devnet.as_ref().and_then(|d| d.bundler_url.clone()));
    let relayer_key = chain.relayer_key.clone().or_else(|| devnet.as_ref().map(|d| d.relayer_key.clone()));
    let submitter: Arc<dyn Submitter> = match (bundler_url, relayer_key) {
        (Some(url), _) => {
            Arc::new(Bundler::new(BundlerClient::new(&url, deployment.entry_point)?).with_node(provider.clone()))
        }
        (None, Some(key)) => {
            let key = parse_key(&key, "relayer")?;
            let url = rpc_url.parse().map_err(|e| anyhow!("--rpc-url `{rpc_url}`: {e}"))?;
            let relayer = ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(url).erased();
            Arc::new(Direct::new(relayer, key.address()).await?.with_entry_point(deployment.entry_point))
        }
        (None, None) => Arc::new(NoSubmitter),
    };
    let valet = Valet::new(provider, submitter, deployment).await?;
    let names = devnet.map(|d| d.names).unwrap_or_default();
    Ok(Connection { valet, names, dir, rpc_url })
}

fn owner_signer(key: &OwnerKey) -> anyhow::Result<Option<PrivateKeySigner>> {
    match (&key.owner_key, &key.owner_keystore) {
        (Some(_), Some(_)) => bail!("give --owner-key or --owner-keystore, not both"),
        (Some(hex), None) => Ok(Some(parse_key(hex, "owner")?)),
        (None, Some(path)) => {
            let password = std::env::var("VALET_OWNER_PASSWORD")
                .map_err(|_| anyhow!("set VALET_OWNER_PASSWORD to decrypt {}", path.display()))?;
            Ok(Some(
                PrivateKeySigner::decrypt_keystore(path, password)
                    .with_context(|| format!("decrypting the owner keystore {}", path.display()))?,
            ))
        }
        (None, None) => Ok(None),
    }
}

fn require_owner(key: &OwnerKey) -> anyhow::Result<PrivateKeySigner> {
    owner_signer(key)?
        .ok_or_else(|| anyhow!("the owner must sign: pass --owner-key (or VALET_OWNER_KEY) or --owner-keystore"))
}

fn labels(names: &BTreeMap<String, Address>) -> Labels {
    let mut labels = Labels::default();
    for (name, address) in names {
        labels.names.insert(*address, name.clone());
    }
    labels
}

fn print(json: bool, doc: serde_json::Value, text: impl FnOnce()) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        text();
    }
    Ok(())
}

/// `valet account address`.
pub(crate) async fn account_address(
    owner: Option<Address>,
    key: &OwnerKey,
    salt: U256,
    chain: &ChainArgs,
) -> anyhow::Result<()> {
    let owner = match (owner, owner_signer(key)?) {
        (Some(o), _) => o,
        (None, Some(k)) => k.address(),
        (None, None) => bail!("whose account? pass --owner 0x… or an owner key"),
    };
    let c = connect(chain).await?;
    let account = c.valet.account(owner, salt).await?;
    let balance = c.valet.provider().get_balance(account.address).await?;
    print(chain.json, json!({ "account": account, "balance_wei": balance.to_string() }), || {
        println!(
            "{} ({}; owner {}, salt {salt}; balance {} wei)",
            account.address,
            if account.deployed { "deployed" } else { "not deployed yet: its first operation deploys it" },
            owner,
            balance
        );
    })
}

/// `valet account upgrade`: the owner's EOA becomes a Valet account (EIP-7702).
pub(crate) async fn account_upgrade(key: &OwnerKey, chain: &ChainArgs) -> anyhow::Result<()> {
    let owner = require_owner(key)?;
    let c = connect_as(chain, valet_client::AccountKind::Eip7702).await?;
    let account = c.valet.account(owner.address(), U256::ZERO).await?;
    let receipt = c.valet.upgrade(&account, &owner).await.map_err(|e| submit_error(e, account.address))?;
    let implementation = c.valet.deployment().factory;
    print(
        chain.json,
        json!({
            "status": "upgraded",
            "account": account.address,
            "delegates_to": implementation,
            "user_op_hash": receipt.user_op_hash,
            "transaction_hash": receipt.transaction_hash,
        }),
        || {
            println!(
                "{} now delegates to Valet's account {implementation} and has activated it (transaction {}): grant \
                 sessions with `valet session grant --account-kind eip7702`",
                account.address, receipt.transaction_hash
            )
        },
    )
}

/// `valet account leave`: the owner's EOA leaves Valet in a transaction of its own.
pub(crate) async fn account_leave(key: &OwnerKey, to: Address, chain: &ChainArgs) -> anyhow::Result<()> {
    let owner = require_owner(key)?;
    let c = connect_as(chain, valet_client::AccountKind::Eip7702).await?;
    let account = c.valet.account(owner.address(), U256::ZERO).await?;
    let url = c.rpc_url.parse().map_err(|e| anyhow!("--rpc-url `{}`: {e}", c.rpc_url))?;
    let wallet = ProviderBuilder::new().wallet(EthereumWallet::from(owner.clone())).connect_http(url).erased();
    let wallet = valet_client::Relayer::new(wallet, owner.address());
    let receipt = c.valet.leave(&account, &owner, &wallet, to).await.map_err(|e| submit_error(e, account.address))?;
    print(
        chain.json,
        json!({ "status": "left", "account": account.address, "delegates_to": to, "transaction_hash": receipt.transaction_hash }),
        || {
            println!(
                "{} left Valet (transaction {}): every session and grant is void; its code {}",
                account.address,
                receipt.transaction_hash,
                if to.is_zero() { "is gone (a plain EOA)".to_string() } else { format!("delegates to {to}") }
            )
        },
    )
}

/// `valet session grant`.
pub(crate) async fn grant(
    spec_path: &Path,
    extra_names: Vec<(String, Address)>,
    salt: U256,
    key: &OwnerKey,
    chain: &ChainArgs,
    id_only: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(spec_path).with_context(|| format!("reading {}", spec_path.display()))?;
    let spec = if spec_path.extension().is_some_and(|e| e == "json") {
        SessionSpec::from_json(&text)?
    } else {
        SessionSpec::from_toml(&text)?
    };
    let owner = require_owner(key)?;
    store::password()?; // fail before signing anything if the key cannot be stored
    let mut c = connect(chain).await?;
    // The summary calls an address by the name given with --name, if any, over the devnet's.
    let mut summary_labels = labels(&c.names);
    for (name, address) in &extra_names {
        summary_labels.names.insert(*address, name.clone());
    }
    c.names.extend(extra_names);
    let account = c.valet.account(owner.address(), salt).await?;
    let kind = c.valet.deployment().kind;
    if kind == valet_client::AccountKind::Eip7702 && !account.deployed && c.valet.submitter().kind() == "bundler" {
        bail!(
            "{} is not a Valet account yet, and a bundler cannot make it one in a session's first operation: run \
             `valet account upgrade --account-kind eip7702` first (one owner operation)",
            account.address
        );
    }
    let proposal = c.valet.propose(&account, &spec, &c.names, &summary_labels).await?;
    let signature = owner.sign_hash_sync(&proposal.digest)?.as_bytes();
    let summary = proposal.summary.clone();
    let warnings = proposal.warnings.clone();
    // An EOA not delegating to Valet yet signs its delegation too: the first exec carries it.
    let authorization = match kind {
        valet_client::AccountKind::Eip7702 => c.valet.sign_delegation(&account, &owner).await?,
        valet_client::AccountKind::Smart => None,
    };
    let handle = proposal.grant(&signature)?.with_authorization(authorization);
    let stored = StoredSession {
        id: handle.id,
        chain_id: c.valet.chain_id(),
        validator: handle.validator,
        account: account.address,
        owner: owner.address(),
        salt,
        session_key: handle.key.address(),
        session: handle.packed.clone(),
        grant: handle.grant.clone(),
        summary: summary.clone(),
        functions: spec.permissions.iter().map(|p| p.function.clone()).collect(),
        names: c.names.clone(),
        genesis: Some(genesis(&c.valet).await?),
        account_kind: kind.into(),
        authorization,
    };
    store::save_session(&c.dir, &stored, &handle.key)?;
    if id_only {
        // For scripts (`SESSION=$(valet session grant … --id-only)`); the summary on stderr.
        for line in &summary {
            eprintln!("  • {line}");
        }
        for warning in &warnings {
            eprintln!("  warning: {warning}");
        }
        println!("{}", handle.id);
        return Ok(());
    }
    print(
        chain.json,
        json!({ "session_id": handle.id, "account": account.address, "session_key": handle.key.address(), "summary": summary, "warnings": warnings, "enabled": false }),
        || {
            println!("Granted session {} on account {}:", handle.id, account.address);
            for line in &summary {
                println!("  • {line}");
            }
            for warning in &warnings {
                println!("  warning: {warning}");
            }
            println!("Its first `valet session exec` enables it (and deploys the account if needed).");
        },
    )
}

fn handle_of(stored: &StoredSession, key: PrivateKeySigner) -> anyhow::Result<SessionHandle> {
    let session = Session::decode(&stored.session)?;
    if session.id()? != stored.id {
        bail!("stored session {} does not match its id: the file was altered", stored.id);
    }
    Ok(SessionHandle::new(session, key, stored.grant.clone(), stored.validator)?
        .with_authorization(stored.authorization))
}

/// The hash of the chain's genesis block: which chain this is, beyond its id (every fresh devnet
/// has chain id 31337 and the same contract addresses, but its own genesis).
async fn genesis(valet: &Valet) -> anyhow::Result<alloy::primitives::B256> {
    let block = valet.provider().get_block_by_number(0.into()).await.context("reading the genesis block")?;
    Ok(block.ok_or_else(|| anyhow!("the node has no genesis block"))?.header.hash)
}

/// Whether `stored` was granted on this very chain (id, validator and genesis).
fn same_chain(stored: &StoredSession, valet: &Valet, genesis: alloy::primitives::B256) -> bool {
    stored.chain_id == valet.chain_id()
        && stored.validator == valet.deployment().validator
        && stored.genesis.is_none_or(|g| g == genesis)
}

async fn check_chain(stored: &StoredSession, valet: &Valet) -> anyhow::Result<()> {
    if stored.chain_id != valet.chain_id() || stored.validator != valet.deployment().validator {
        bail!(
            "session {} was granted on chain {} with validator {}, not this chain {} / validator {}",
            stored.id,
            stored.chain_id,
            stored.validator,
            valet.chain_id(),
            valet.deployment().validator
        );
    }
    let genesis = genesis(valet).await?;
    if !same_chain(stored, valet, genesis) {
        bail!(
            "session {} was granted on another chain with the same id {} (genesis {}, this one's is {genesis}): a \
             restarted devnet is a new chain, where the session does not exist; grant a new one",
            stored.id,
            stored.chain_id,
            stored.genesis.unwrap_or_default()
        );
    }
    Ok(())
}

/// `valet session show`.
pub(crate) async fn show(id: &str, chain: &ChainArgs) -> anyhow::Result<()> {
    let (c, stored) = connect_for(chain, id).await?;
    check_chain(&stored, &c.valet).await?;
    let session = Session::decode(&stored.session)?;
    let status = c.valet.status(stored.account, &session).await?;
    print(chain.json, json!({ "account": stored.account, "summary": stored.summary, "status": status }), || {
        println!("Session {} on account {}", stored.id, stored.account);
        for line in &stored.summary {
            println!("  • {line}");
        }
        println!("  state: {}; valid {} – {}", status.state, utc(status.valid_after), utc(status.valid_until));
        if status.max_uses != 0 {
            println!("  operations: {} of {} used", status.uses, status.max_uses);
        }
        for (i, p) in status.permissions.iter().enumerate() {
            if let Some(uses) = p.uses {
                println!("  permission {}: {uses} of {} calls used", i + 1, p.max_uses);
            }
        }
        for (i, l) in status.limits.iter().enumerate() {
            println!("  limit {}: {} left of {} ({} spent in period {})", i + 1, l.left, l.cap, l.spent, l.period);
        }
        match status.fees.mode {
            "sponsored" => println!("  fees: paid by a paymaster; none from the account's ETH"),
            _ => println!(
                "  fees: {} ETH left of a {} ETH budget ({} ETH committed)",
                units(status.fees.left, 18),
                units(status.fees.budget, 18),
                units(status.fees.spent, 18)
            ),
        }
        match &status.reason {
            None => println!("  usable now"),
            Some(reason) => println!("  not usable: {reason}"),
        }
    })
}

/// `valet session list`.
pub(crate) async fn list(account: Option<Address>, chain: &ChainArgs) -> anyhow::Result<()> {
    let c = connect(chain).await?;
    let genesis = genesis(&c.valet).await?;
    let mut rows = Vec::new();
    for stored in store::list_sessions(&c.dir)? {
        if account.is_some_and(|a| a != stored.account) || !same_chain(&stored, &c.valet, genesis) {
            continue;
        }
        let session = Session::decode(&stored.session)?;
        let status = c.valet.status(stored.account, &session).await?;
        rows.push((stored, status));
    }
    let doc: Vec<serde_json::Value> = rows
        .iter()
        .map(|(s, status)| json!({ "account": s.account, "summary": s.summary, "status": status }))
        .collect();
    print(chain.json, json!({ "sessions": doc }), || {
        if rows.is_empty() {
            println!("no sessions stored for this chain in {}", c.dir.display());
        }
        for (s, status) in &rows {
            println!(
                "{}  account {}  {:<8} {}  until {}  {}",
                s.id,
                s.account,
                state_word(status.state),
                uses_text(s, status),
                utc(status.valid_until),
                status.reason.as_deref().unwrap_or("usable")
            );
        }
    })
}

/// A session's state as `list` prints it: "granted" for one signed but not yet enabled on chain
/// (its first operation enables it).
fn state_word(state: valet_client::Standing) -> &'static str {
    if state == valet_client::Standing::NotEnabled { "granted" } else { state.as_str() }
}

/// What a session has used: its operations against its own cap, if any, and each counted
/// permission's calls (`mint 2/10`), in the spec's function names when stored.
fn uses_text(stored: &StoredSession, status: &valet_client::SessionStatus) -> String {
    let mut parts = vec![match status.max_uses {
        0 => format!("{} ops", status.uses),
        max => format!("{}/{max} ops", status.uses),
    }];
    for (i, p) in status.permissions.iter().enumerate().filter(|(_, p)| p.max_uses > 0) {
        let name = stored
            .functions
            .get(i)
            .and_then(|f| f.as_deref())
            .and_then(|f| f.split('(').next())
            .map_or_else(|| format!("permission {}", i + 1), str::to_string);
        parts.push(format!("{name} {}/{}", p.uses.unwrap_or(0), p.max_uses));
    }
    parts.join(", ")
}

fn calldata(
    function: &str,
    args: &[String],
    account: Address,
    names: &BTreeMap<String, Address>,
) -> anyhow::Result<Bytes> {
    Ok(valet_client::abi::encode_call(function, args, account, names)?)
}

/// `valet session exec`.
pub(crate) async fn exec(
    id: &str,
    to: &str,
    function: Option<&str>,
    args: &[String],
    value: U256,
    chain: &ChainArgs,
) -> anyhow::Result<()> {
    let (c, stored) = connect_for(chain, id).await?;
    check_chain(&stored, &c.valet).await?;
    // The devnet's names, and those the session was granted with (its `--name`s too), which win.
    let mut names = c.names.clone();
    names.extend(stored.names.clone());
    let target = match names.get(to) {
        Some(a) => *a,
        None => to.parse::<Address>().map_err(|_| {
            let known: Vec<&str> = names.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            anyhow!("--to `{to}` is neither an address nor a known name (known: {known})")
        })?,
    };
    let data = match function {
        Some(f) => calldata(f, args, stored.account, &names)?,
        None if args.is_empty() => Bytes::new(),
        None => bail!("{} argument(s) given without --function", args.len()),
    };
    let handle = handle_of(&stored, store::session_key(&c.dir, stored.id)?)?;
    let account = Account { address: stored.account, owner: stored.owner, salt: stored.salt, deployed: false };
    match c.valet.execute(&account, &handle, &[Call { target, value, data }]).await {
        Ok(done) => print(
            chain.json,
            json!({
                "status": "included",
                "session_id": stored.id,
                "user_op_hash": done.receipt.user_op_hash,
                "transaction_hash": done.receipt.transaction_hash,
                "gas": done.receipt.actual_gas_used,
                "permission_indices": done.indices,
                "deployed_account": done.deployed_account,
                "enabled_session": done.enabled_session,
            }),
            || {
                println!(
                    "included: userOp {} in transaction {}, gas {}",
                    done.receipt.user_op_hash, done.receipt.transaction_hash, done.receipt.actual_gas_used
                );
                let eoa = c.valet.deployment().kind == valet_client::AccountKind::Eip7702;
                match (done.deployed_account, done.enabled_session) {
                    (true, true) if eoa => println!(
                        "  (this first operation also delegated the EOA to Valet's account, activated it and enabled \
                         the session)"
                    ),
                    (true, true) => {
                        println!("  (this first operation also deployed the account and enabled the session)")
                    }
                    (false, true) => println!("  (this first operation of the session also enabled it on chain)"),
                    (true, false) => println!("  (this operation also deployed the account)"),
                    (false, false) => {}
                }
            },
        ),
        Err(Error::Preflight(refusal)) => {
            // In the words of the spec the owner approved when the stored session has them.
            let functions: Vec<Option<Function>> =
                stored.functions.iter().map(|f| f.as_deref().and_then(|f| Function::parse(f).ok())).collect();
            let reason = explain(&refusal, &handle.session, &functions, &labels(&names));
            if chain.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({ "status": "refused", "reason": reason, "refusal": refusal.to_string() })
                    )?
                );
                crate::FAILURE_PRINTED.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Err(anyhow!("refused before sending: {reason}"))
        }
        Err(e) => Err(submit_error(e, stored.account)),
    }
}

/// A submission error, with what to do when the account cannot pay for its operation.
fn submit_error(e: Error, account: Address) -> anyhow::Error {
    let unfunded = matches!(&e, Error::Refused { reason, .. } if reason.starts_with("AA21"));
    let e = anyhow::Error::from(e);
    if unfunded {
        e.context(format!(
            "account {account} has too little ETH to pay for its operation: send it some (on a devnet, `cast rpc anvil_setBalance {account} 0xde0b6b3a7640000`)"
        ))
    } else {
        e
    }
}

/// `valet session revoke`.
pub(crate) async fn revoke(id: &str, key: &OwnerKey, chain: &ChainArgs) -> anyhow::Result<()> {
    let owner = require_owner(key)?;
    let (c, stored) = connect_for(chain, id).await?;
    check_chain(&stored, &c.valet).await?;
    if owner.address() != stored.owner {
        bail!("the key given is {}, but session {} belongs to owner {}", owner.address(), stored.id, stored.owner);
    }
    let account = Account { address: stored.account, owner: stored.owner, salt: stored.salt, deployed: false };
    let receipt = c.valet.revoke(&account, &owner, stored.id).await.map_err(|e| submit_error(e, stored.account))?;
    print(
        chain.json,
        json!({ "status": "revoked", "session_id": stored.id, "user_op_hash": receipt.user_op_hash, "transaction_hash": receipt.transaction_hash }),
        || println!("revoked session {} (transaction {})", stored.id, receipt.transaction_hash),
    )
}

/// `valet session revoke --all`: every session of the owner's account ends, and every grant
/// signed for it so far is void.
pub(crate) async fn revoke_all(salt: U256, key: &OwnerKey, chain: &ChainArgs) -> anyhow::Result<()> {
    let owner = require_owner(key)?;
    let c = connect(chain).await?;
    let account = c.valet.account(owner.address(), salt).await?;
    let before = c.valet.account_epoch(account.address).await?;
    let receipt = c.valet.revoke_all(&account, &owner).await.map_err(|e| submit_error(e, account.address))?;
    let epoch = c.valet.account_epoch(account.address).await?;
    print(
        chain.json,
        json!({
            "status": "revoked_all",
            "account": account.address,
            "previous_epoch": before.to_string(),
            "epoch": epoch.to_string(),
            "user_op_hash": receipt.user_op_hash,
            "transaction_hash": receipt.transaction_hash
        }),
        || {
            println!(
                "revoked every session of account {} and voided every grant signed before (epoch {before:#x} → {epoch:#x}; transaction {})",
                account.address, receipt.transaction_hash
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_are_named_in_one_line() {
        let names = BTreeMap::from([("ValetNFT".to_string(), Address::repeat_byte(1))]);
        let error = |function: &str, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let e = calldata(function, &args, Address::repeat_byte(2), &names).expect_err("refused").to_string();
            println!("{function} {args:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
            e
        };
        assert!(error("f(uint8 a)", &["-1"]).starts_with("argument `a` (uint8) = `-1`: "));
        assert!(error("f(uint8 a)", &["300"]).starts_with("argument `a` (uint8) = `300`: "));
        assert!(error("f(uint256 a)", &["1.5"]).starts_with("argument `a` (uint256) = `1.5`: "));
        assert!(error("f(address a)", &["0x12"]).starts_with("argument `a` (address) = `0x12`: "));
        assert!(error("f(bool a)", &["yes"]).starts_with("argument `a` (bool) = `yes`: "));
        assert!(error("f(address a)", &["$acount"]).contains("unknown placeholder"));
        assert_eq!(error("f(address a, uint8 b)", &["$account"]), "f(address,uint8) takes 2 argument(s), 1 given");
        let data = calldata(
            "f(address a, address b)",
            &["$account".into(), "ValetNFT".into()],
            Address::repeat_byte(2),
            &names,
        )
        .expect("encodes");
        assert_eq!(data.len(), 4 + 64);
        assert_eq!(data[4 + 31], 2);
        assert_eq!(data[4 + 63], 1);
    }
}
