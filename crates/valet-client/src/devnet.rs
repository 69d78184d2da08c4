//! A local devnet: the pinned anvil on a free loopback port, EntryPoint v0.7 at its canonical
//! address (CREATE2 through the deterministic deployer, from its published bytecode), and the
//! Valet and demo contracts; optionally the Alto bundler, on loopback too. Dropping the
//! [`Devnet`] stops them (each by its own PID).

use std::path::{Path, PathBuf};

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, Bytes, address, b256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;

use crate::Error;
use crate::contracts::{SessionKeyValidator, ValetAccountFactory, ValetDAO, ValetNFT, ValetToken, entry_point};

/// The deterministic CREATE2 deployer anvil has in genesis.
pub const CREATE2_DEPLOYER: Address = address!("0x4e59b44847b379578588920cA78FbF26c0B4956C");

/// Where everything lives on the devnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevnetAddresses {
    /// EntryPoint v0.7.
    pub entry_point: Address,
    /// The SessionKeyValidator.
    pub validator: Address,
    /// The ValetAccountFactory.
    pub factory: Address,
    /// The demo ERC-721.
    pub nft: Address,
    /// The demo ERC-20.
    pub token: Address,
    /// The demo DAO.
    pub dao: Address,
}

/// What to start besides anvil and the contracts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevnetOptions {
    /// Start the Alto bundler (executor dev key 4, utility dev key 5) on a free loopback port.
    pub alto: bool,
}

/// A running devnet. Dev keys: 0 deploys, 1 relays (submits `handleOps`), 2 funds, 4 and 5 are
/// Alto's; the rest are free.
pub struct Devnet {
    // Dropped first: Alto before the anvil it talks to.
    alto: Option<Alto>,
    anvil: AnvilInstance,
    /// Contract addresses.
    pub addresses: DevnetAddresses,
    /// A provider signing with the deployer key.
    pub provider: DynProvider,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet").field("endpoint", &self.endpoint()).field("addresses", &self.addresses).finish()
    }
}

/// The pinned tools (`tools/` at the workspace root, found from this crate's location, or
/// `VALET_TOOLS`).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("VALET_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools"))
}

/// The pinned anvil.
pub fn anvil_path() -> PathBuf {
    tools_dir().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

fn rpc(e: impl std::fmt::Display) -> Error {
    Error::Rpc(e.to_string())
}

impl Devnet {
    /// Starts anvil (Prague, 127.0.0.1, a free port) and deploys everything.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(DevnetOptions::default()).await
    }

    /// Starts anvil, deploys everything, and starts what `options` asks for.
    pub async fn start_with(options: DevnetOptions) -> Result<Self, Error> {
        let path = anvil_path();
        if !path.exists() {
            return Err(Error::ToolMissing(path.display().to_string()));
        }
        let anvil = Anvil::at(&path)
            .args(["--host", "127.0.0.1", "--hardfork", "prague"])
            .try_spawn()
            .map_err(|e| Error::Start { what: "anvil", reason: e.to_string() })?;
        let deployer: PrivateKeySigner = anvil.keys()[0].clone().into();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(deployer.clone()))
            .connect_http(loopback_url(anvil.port()))
            .erased();

        let entry_point = deploy_entry_point(&provider).await?;
        let validator = *SessionKeyValidator::deploy(&provider).await.map_err(rpc)?.address();
        let factory =
            *ValetAccountFactory::deploy(&provider, validator, deployer.address()).await.map_err(rpc)?.address();
        let nft = *ValetNFT::deploy(&provider).await.map_err(rpc)?.address();
        let token = *ValetToken::deploy(&provider).await.map_err(rpc)?.address();
        let dao = *ValetDAO::deploy(&provider).await.map_err(rpc)?.address();
        let addresses = DevnetAddresses { entry_point, validator, factory, nft, token, dao };
        // ERC-7562: a factory must be staked for an operation that deploys the account and also
        // touches the validator's storage for it (bundlers enforce this; direct submission not).
        ValetAccountFactory::new(factory, &provider)
            .addStake(86_400)
            .value(alloy::primitives::U256::from(10u128.pow(18)))
            .send()
            .await
            .map_err(rpc)?
            .get_receipt()
            .await
            .map_err(rpc)?;
        let alto = match options.alto {
            true => Some(Alto::start(&anvil).await?),
            false => None,
        };
        tracing::info!(endpoint = %loopback_url(anvil.port()), ?addresses, "devnet ready");
        Ok(Self { alto, anvil, addresses, provider })
    }

    /// The JSON-RPC endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        loopback_url(self.anvil.port()).to_string()
    }

    /// The Alto bundler's JSON-RPC endpoint, if it runs.
    pub fn bundler_url(&self) -> Option<String> {
        self.alto.as_ref().map(|a| loopback_url(a.port).to_string())
    }

    /// Where Valet is deployed, for [`crate::Valet`].
    pub fn deployment(&self) -> crate::Deployment {
        crate::Deployment {
            entry_point: self.addresses.entry_point,
            validator: self.addresses.validator,
            factory: self.addresses.factory,
        }
    }

    /// Sends `amount` wei to `to` from the funder (dev key 2).
    pub async fn fund(&self, to: Address, amount: alloy::primitives::U256) -> Result<(), Error> {
        let tx = TransactionRequest::default().to(to).value(amount);
        self.provider_for(2).send_transaction(tx).await.map_err(rpc)?.get_receipt().await.map_err(rpc)?;
        Ok(())
    }

    /// Moves the chain's clock forward by `seconds` and mines a block.
    pub async fn advance_time(&self, seconds: u64) -> Result<(), Error> {
        let _: serde_json::Value =
            self.provider.raw_request("evm_increaseTime".into(), [seconds]).await.map_err(rpc)?;
        let _: serde_json::Value = self.provider.raw_request("evm_mine".into(), ()).await.map_err(rpc)?;
        Ok(())
    }

    /// Mines a block (its timestamp is the wall clock, or later after time travel).
    pub async fn mine(&self) -> Result<(), Error> {
        let _: serde_json::Value = self.provider.raw_request("evm_mine".into(), ()).await.map_err(rpc)?;
        Ok(())
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }

    /// Dev key `i` (anvil's mnemonic accounts).
    pub fn key(&self, i: usize) -> PrivateKeySigner {
        self.anvil.keys()[i].clone().into()
    }

    /// A provider that signs with dev key `i`.
    pub fn provider_for(&self, i: usize) -> DynProvider {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(self.key(i)))
            .connect_http(self.anvil.endpoint_url())
            .erased()
    }
}

/// `http://127.0.0.1:PORT`: always the IPv4 loopback, never a name that could resolve elsewhere.
fn loopback_url(port: u16) -> alloy::transports::http::reqwest::Url {
    format!("http://127.0.0.1:{port}").parse().expect("a loopback URL parses")
}

async fn deploy_entry_point(provider: &DynProvider) -> Result<Address, Error> {
    let salt = b256!("0x90d8084deab30c2a37c45e8d47f49f2f7965183cb6990a98943ef94940681de3");
    let mut input = salt.to_vec();
    input.extend_from_slice(&entry_point::EntryPoint::BYTECODE);
    let tx = TransactionRequest::default().to(CREATE2_DEPLOYER).input(Bytes::from(input).into());
    provider.send_transaction(tx).await.map_err(rpc)?.get_receipt().await.map_err(rpc)?;
    let code = provider.get_code_at(valet_core::ENTRY_POINT_V07).await.map_err(rpc)?;
    if code.is_empty() {
        return Err(Error::Deploy("EntryPoint v0.7 is not at its canonical address".into()));
    }
    Ok(valet_core::ENTRY_POINT_V07)
}

/// The Alto bundler (`@pimlico/alto`, pinned in `tools/`), run by node with a preload that keeps
/// every listening socket on 127.0.0.1 (Alto binds 0.0.0.0 and has no flag for it).
struct Alto {
    child: std::process::Child,
    port: u16,
    /// Alto's output (kept if it fails to start, removed when it stops).
    log: PathBuf,
}

impl Alto {
    async fn start(anvil: &AnvilInstance) -> Result<Self, Error> {
        let tools = tools_dir();
        let script = tools.join("node_modules/@pimlico/alto/esm/cli/alto.js");
        if !script.exists() {
            return Err(Error::ToolMissing(script.display().to_string()));
        }
        let key = |i: usize| format!("0x{}", alloy::hex::encode(anvil.keys()[i].to_bytes()));
        // The free port is released before Alto binds it; if another process takes it first,
        // Alto exits (with status 0): try another.
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = std::env::temp_dir().join(format!("valet-alto-{port}.log"));
            let log = std::fs::File::create(&log_path)
                .map_err(|e| Error::Start { what: "alto", reason: format!("{}: {e}", log_path.display()) })?;
            let log_err = log.try_clone().map_err(|e| Error::Start { what: "alto", reason: e.to_string() })?;
            let mut command = std::process::Command::new("node");
            command
                .current_dir(&tools)
                .arg("--require")
                .arg(tools.join("loopback.js"))
                .arg(&script)
                .args(["--rpc-url", &anvil.endpoint()])
                .args(["--entrypoints", &valet_core::ENTRY_POINT_V07.to_string()])
                .args(["--executor-private-keys", &key(4)])
                .args(["--utility-private-key", &key(5)])
                .args(["--port", &port.to_string()])
                .args(ALTO_FLAGS)
                // Alto reads ALTO_* variables as flags and a .env file as settings: give it none.
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stdin(std::process::Stdio::null())
                .stdout(log)
                .stderr(log_err);
            let child = command.spawn().map_err(|e| Error::Start { what: "alto", reason: format!("node: {e}") })?;
            let mut alto = Self { child, port, log: log_path.clone() };
            match alto.wait_ready().await {
                Ok(()) => {
                    tracing::info!(port, log = %log_path.display(), "alto ready");
                    return Ok(alto);
                }
                Err(e) => {
                    last = Some(Error::Start { what: "alto", reason: format!("{e} (log: {})", log_path.display()) })
                }
            }
        }
        Err(last.unwrap_or(Error::Start { what: "alto", reason: "no attempt".into() }))
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let client = crate::BundlerClient::new(loopback_url(self.port).as_ref(), valet_core::ENTRY_POINT_V07)?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Start { what: "alto", reason: format!("exited with {status}") });
            }
            if let Ok(entry_points) = client.supported_entry_points().await
                && entry_points.contains(&valet_core::ENTRY_POINT_V07)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Start { what: "alto", reason: "not answering after 30 s".into() });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Alto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Alto's flags besides endpoints and keys, and why.
const ALTO_FLAGS: &[&str] = &[
    // anvil has no debug_traceCall tracer for the ERC-7562 checks.
    "--safe-mode",
    "false",
    // Its simulation contracts are CREATE2-deployed by the utility key.
    "--deploy-simulations-contract",
    "true",
    // Bundle as soon as operations arrive: anvil mines each transaction at once, and Alto's
    // executor waits for its block poller (every block-time / 4 ms) before the next bundle.
    "--bundle-mode",
    "auto",
    "--min-bundle-interval",
    "10",
    "--max-bundle-interval",
    "50",
    "--block-time",
    "250",
    // Quiet, and JSON lines without a pretty-printing worker (stdout is discarded).
    "--log-level",
    "warn",
    "--json",
    "true",
];

/// A free TCP port on 127.0.0.1 (bound and released; the bundler binds it right after).
fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::Start { what: "alto", reason: format!("no free port: {e}") })?;
    listener.local_addr().map(|a| a.port()).map_err(|e| Error::Start { what: "alto", reason: e.to_string() })
}
