//! A local devnet: the pinned anvil on a free loopback port, EntryPoint v0.7 and v0.8 at their
//! canonical addresses (CREATE2 through the deterministic deployer, from their published
//! bytecode), and the Valet (the EIP-7702 account implementation included) and demo contracts; optionally the Alto bundler, on loopback too. Dropping the
//! [`Devnet`] stops them (each by its own PID); a process that dies without dropping it (`kill
//! -9`, a crash) takes them with it, and [`Devnet::exited`] tells when one of them dies first.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;

use crate::Error;
use crate::deploy::DeployOptions;

/// The deterministic CREATE2 deployer anvil has in genesis.
pub use crate::deploy::DETERMINISTIC_DEPLOYER as CREATE2_DEPLOYER;

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
    /// EntryPoint v0.8, the EntryPoint of EIP-7702 accounts.
    pub entry_point_v08: Address,
    /// The ValetAccount7702 implementation an EOA delegates to with EIP-7702.
    pub account_7702: Address,
}

/// What to start besides anvil and the contracts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevnetOptions {
    /// Start the Alto bundler (executor dev key 4, utility dev key 5) on a free loopback port.
    pub alto: bool,
    /// The chain id (default 31337).
    pub chain_id: Option<u64>,
    /// Deploy nothing: a chain as any chain is before `valet deploy` (the EntryPoint included;
    /// the deterministic deployment proxy is in anvil's genesis). No bundler then.
    pub bare: bool,
}

impl DevnetAddresses {
    /// The canonical addresses ([`crate::deploy::canonical`], [`crate::deploy::demo`],
    /// [`crate::deploy::eip7702`]): where the devnet, and `valet deploy --demo` (with
    /// [`crate::deploy::deploy_eip7702`] for the last two) on any chain, put everything.
    pub fn canonical() -> Self {
        let (valet, demo, eip7702) = (crate::deploy::canonical(), crate::deploy::demo(), crate::deploy::eip7702());
        Self {
            entry_point: valet.entry_point,
            validator: valet.validator,
            factory: valet.factory,
            nft: demo.nft,
            token: demo.token,
            dao: demo.dao,
            entry_point_v08: eip7702.entry_point_v08,
            account_7702: eip7702.account_7702,
        }
    }
}

/// A running devnet. Dev keys: 0 deploys, 1 relays (submits `handleOps`), 2 funds, 4 and 5 are
/// Alto's; the rest are free.
pub struct Devnet {
    // Dropped first: Alto before the anvil it talks to.
    alto: Option<Alto>,
    anvil: Anvil,
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

/// Where the pinned tools are, in this order: `VALET_TOOLS` (a Valet checkout's `tools/` after
/// `make tools`: used alone when set), the `PATH`, then the `tools/` of the checkout this crate
/// was built from, if it is still there. A `valet` installed with `cargo install` therefore runs
/// from any directory, given `VALET_TOOLS` or the tools on its `PATH`.
pub fn tools_dir() -> Option<PathBuf> {
    match std::env::var_os("VALET_TOOLS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools")).filter(|d| d.is_dir()),
    }
}

/// A pinned tool: its place under `tools/node_modules` and its name on a `PATH`.
struct Tool {
    name: &'static str,
    package: &'static str,
    in_package: &'static str,
}

const ANVIL: Tool = Tool { name: "anvil", package: "@foundry-rs/anvil-linux-amd64@1.7.1", in_package: "bin/anvil" };
const ALTO: Tool = Tool { name: "alto", package: "@pimlico/alto@0.0.20", in_package: "esm/cli/alto.js" };

impl Tool {
    fn find(&self) -> Result<PathBuf, Error> {
        let package = self.package.rsplit_once('@').map_or(self.package, |(name, _)| name);
        let under = |tools: &Path| tools.join("node_modules").join(package).join(self.in_package);
        let mut looked = Vec::new();
        if let Some(tools) = std::env::var_os("VALET_TOOLS").map(PathBuf::from) {
            let path = under(&tools);
            if path.is_file() {
                return Ok(path);
            }
            return Err(Error::ToolMissing(format!(
                "{} not found at {} (VALET_TOOLS={}): run `npm ci` in that folder, or `make tools` in a Valet checkout",
                self.name,
                path.display(),
                tools.display()
            )));
        }
        // On the PATH: followed through npm's bin symlink, so that Alto's script is run by node.
        if let Some(path) = std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(self.name)).find(|p| p.is_file()))
        {
            return Ok(std::fs::canonicalize(&path).unwrap_or(path));
        }
        looked.push("VALET_TOOLS (not set)".to_string());
        looked.push("PATH".to_string());
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools");
        let path = under(&source);
        if path.is_file() {
            return Ok(path);
        }
        looked.push(path.display().to_string());
        Err(Error::ToolMissing(format!(
            "{} not found (looked in {}): run `make tools` in a Valet checkout and set VALET_TOOLS=<checkout>/tools, \
             or install it on the PATH with `npm install -g {}`",
            self.name,
            looked.join(", "),
            self.package
        )))
    }
}

/// The pinned anvil ([`tools_dir`] explains where it is looked for).
pub fn anvil_path() -> Result<PathBuf, Error> {
    ANVIL.find()
}

fn rpc(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::rpc(e)
}

impl Devnet {
    /// Starts anvil (Prague, 127.0.0.1, a free port) and deploys everything.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), valet_client::Error> {
    /// use alloy::primitives::U256;
    /// use valet_client::Devnet;
    ///
    /// let devnet = Devnet::start().await?; // the pinned anvil: see `devnet::tools_dir`
    /// println!("chain {} at {}", devnet.chain_id(), devnet.endpoint());
    /// let me = devnet.key(6).address(); // a free dev key (see `Devnet`)
    /// devnet.fund(me, U256::from(10u64.pow(18))).await?;
    /// devnet.advance_time(3600).await?; // an hour later, in one block
    /// // `devnet.deployment()` and `devnet.provider_for(i)` give `Valet::new` what it needs.
    /// drop(devnet); // stops anvil
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(DevnetOptions::default()).await
    }

    /// Starts anvil, deploys everything, and starts what `options` asks for.
    pub async fn start_with(options: DevnetOptions) -> Result<Self, Error> {
        let path = anvil_path()?;
        let chain_id = options.chain_id.unwrap_or(CHAIN_ID);
        let anvil = Anvil::start(&path, chain_id).await?;
        let provider = signing_provider(anvil.port, anvil.keys[0].clone());

        // Exactly as `valet deploy --demo` deploys on any chain, so the devnet's addresses are
        // the canonical ones. The factory is staked: ERC-7562 bundlers require it for an
        // operation that deploys the account and touches the validator's storage for it.
        if !options.bare {
            crate::deploy::deploy(&provider, DeployOptions { demo: true, ..DeployOptions::default() }).await?;
            deploy_devnet_paymaster(&provider, &anvil.keys).await?;
            crate::deploy::deploy_eip7702(&provider).await?;
        }
        let addresses = DevnetAddresses::canonical();
        let alto = match options.alto && !options.bare {
            true => Some(Alto::start(&anvil).await?),
            false => None,
        };
        tracing::info!(endpoint = %loopback_url(anvil.port), ?addresses, "devnet ready");
        Ok(Self { alto, anvil, addresses, provider })
    }

    /// The JSON-RPC endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        loopback_url(self.anvil.port).to_string()
    }

    /// The Alto bundler's JSON-RPC endpoint, if it runs.
    pub fn bundler_url(&self) -> Option<String> {
        self.alto.as_ref().map(|a| loopback_url(a.port).to_string())
    }

    /// Waits until anvil or Alto ends on its own (killed, crashed: whatever did not come from
    /// dropping the devnet) and says which and how. A program that offers the devnet to others
    /// stops with it rather than serve a chain that is gone.
    pub async fn exited(&self) -> Exited {
        loop {
            // anvil first: when both are gone, Alto most likely followed it.
            let processes = std::iter::once(&self.anvil.process).chain(self.alto.as_ref().map(|a| &a.process));
            if let Some(exited) = processes.filter_map(ChildProcess::exited).next() {
                return exited;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where Valet is deployed, for [`crate::Valet`].
    pub fn deployment(&self) -> crate::Deployment {
        crate::Deployment {
            entry_point: self.addresses.entry_point,
            validator: self.addresses.validator,
            factory: self.addresses.factory,
            kind: crate::AccountKind::Smart,
        }
    }

    /// Where Valet is deployed for EIP-7702 accounts (EntryPoint v0.8 and the ValetAccount7702
    /// implementation), for a [`crate::Valet`] serving EOAs.
    pub fn deployment_7702(&self) -> crate::Deployment {
        crate::Deployment {
            entry_point: self.addresses.entry_point_v08,
            validator: self.addresses.validator,
            factory: self.addresses.account_7702,
            kind: crate::AccountKind::Eip7702,
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
        self.anvil.chain_id
    }

    /// Dev key `i` (anvil's mnemonic accounts; it prints ten).
    pub fn key(&self, i: usize) -> PrivateKeySigner {
        self.anvil.keys[i].clone()
    }

    /// A provider that signs with dev key `i` (its calls time out: [`crate::rpc::CALL_TIMEOUT`]).
    pub fn provider_for(&self, i: usize) -> DynProvider {
        signing_provider(self.anvil.port, self.key(i))
    }
}

/// A provider on the devnet's node that signs with `key`, with call deadlines (a frozen anvil is
/// reported, not waited on); without them only if no HTTP client with deadlines can be built.
fn signing_provider(port: u16, key: PrivateKeySigner) -> DynProvider {
    let url = loopback_url(port);
    crate::rpc::http_wallet_provider(url.as_str(), key.clone()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no HTTP client with deadlines: calls to the devnet will wait");
        ProviderBuilder::new().wallet(EthereumWallet::from(key)).connect_http(url).erased()
    })
}

/// `http://127.0.0.1:PORT`: always the IPv4 loopback, never a name that could resolve elsewhere.
fn loopback_url(port: u16) -> alloy::transports::http::reqwest::Url {
    format!("http://127.0.0.1:{port}").parse().expect("a loopback URL parses")
}

/// anvil's chain id, said explicitly so that nothing has to be read back for it.
const CHAIN_ID: u64 = 31_337;

/// How long anvil may take to say it listens.
const ANVIL_READY: Duration = Duration::from_secs(30);

/// The pinned anvil, run by us rather than by alloy's `Anvil` builder, which cannot tie the
/// child to this process (see [`ChildProcess::spawn`]).
struct Anvil {
    process: ChildProcess,
    port: u16,
    /// The dev keys it printed (its default mnemonic's first ten accounts).
    keys: Vec<PrivateKeySigner>,
    chain_id: u64,
}

/// What anvil printed before it listened.
struct AnvilBanner {
    port: u16,
    keys: Vec<PrivateKeySigner>,
}

impl Anvil {
    /// Starts anvil (Prague, 127.0.0.1, a port the OS picks) and waits until it listens.
    async fn start(path: &Path, chain_id: u64) -> Result<Self, Error> {
        let mut command = Command::new(path);
        command
            .args(["--host", "127.0.0.1", "--port", "0", "--hardfork", "prague"])
            .args(["--chain-id", &chain_id.to_string()])
            .env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut process = ChildProcess::spawn("anvil", command).await?;
        let stdout = process.child.get_mut().unwrap_or_else(PoisonError::into_inner).stdout.take();
        let stdout = stdout.ok_or_else(|| anvil_failed("no stdout"))?;
        // Its banner is read on a thread of its own, which then reads (and drops) everything anvil
        // writes until it exits, so that anvil never writes to a closed pipe.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("anvil-stdout".into())
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                let _ = tx.send(read_banner(&mut reader));
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            })
            .map_err(|e| anvil_failed(format!("no thread to read its output: {e}")))?;
        let banner = match tokio::time::timeout(ANVIL_READY, rx).await {
            Ok(Ok(banner)) => banner,
            Ok(Err(_)) => Err("its output was not read".to_string()),
            Err(_) => Err(format!("not listening after {ANVIL_READY:?}")),
        };
        // On an error `process` is dropped here, which stops anvil.
        let banner = banner.map_err(|reason| match process.exited() {
            Some(exited) => anvil_failed(format!("{reason} (it exited with {})", exited.status)),
            None => anvil_failed(reason),
        })?;
        if banner.keys.len() < 10 {
            return Err(anvil_failed(format!("it printed {} dev keys, not 10", banner.keys.len())));
        }
        Ok(Self { process, port: banner.port, keys: banner.keys, chain_id })
    }
}

fn anvil_failed(reason: impl Into<String>) -> Error {
    Error::Start { what: "anvil", reason: reason.into() }
}

/// Reads anvil's banner up to `Listening on 127.0.0.1:PORT`: the port, and the dev keys from its
/// `Private Keys` section (lines `(0) 0x…`).
fn read_banner(reader: &mut BufReader<ChildStdout>) -> Result<AnvilBanner, String> {
    let mut keys = Vec::new();
    let mut in_keys = false;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Err("it closed its output before listening".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading its output: {e}")),
        }
        let text = line.trim();
        if let Some(addr) = text.strip_prefix("Listening on") {
            let addr: std::net::SocketAddr =
                addr.trim().parse().map_err(|e| format!("`{text}` names no address: {e}"))?;
            return Ok(AnvilBanner { port: addr.port(), keys });
        }
        if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
            in_keys = text == "Private Keys";
        } else if in_keys && let Some((_, key)) = text.split_once(") ") {
            keys.push(key.trim().parse().map_err(|e| format!("`{text}` holds no private key: {e}"))?);
        }
    }
}

/// A devnet process that ended on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exited {
    /// `anvil` or `alto`.
    pub what: &'static str,
    /// Its PID.
    pub pid: u32,
    /// How it ended (an exit code, or the signal that killed it).
    pub status: ExitStatus,
}

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (PID {}) exited on its own ({})", self.what, self.pid, self.status)
    }
}

/// A child process of the devnet: it dies with this process, and is stopped by its own PID when
/// dropped.
struct ChildProcess {
    what: &'static str,
    pid: u32,
    /// Locked only for a `try_wait`, a `kill` or a `wait`, never across an `.await`.
    child: Mutex<Child>,
}

/// A command for the spawner thread, and where its child goes.
type SpawnJob = (Command, tokio::sync::oneshot::Sender<std::io::Result<Child>>);

impl ChildProcess {
    /// Spawns `command` tied to this process: Linux sends the child SIGKILL when this process
    /// dies, however it dies (`kill -9` included, which runs no drop), so that a devnet never
    /// outlives the program that started it.
    ///
    /// The parent-death signal is set in the child between fork and exec, and Linux sends it
    /// when the *thread* that forked the child ends, not the process: a child forked from a
    /// tokio worker or a test's thread would be killed when that thread ends. So every child is
    /// forked by one thread that lives as long as the process.
    async fn spawn(what: &'static str, mut command: Command) -> Result<Self, Error> {
        let failed = |reason: String| Error::Start { what, reason };
        let program = Path::new(command.get_program()).display().to_string();
        die_with_this_process(&mut command);
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawner()
            .map_err(|e| failed(format!("no thread to start it from: {e}")))?
            .send((command, tx))
            .map_err(|_| failed("the thread that starts it is gone".into()))?;
        let child = rx
            .await
            .map_err(|_| failed("the thread that starts it is gone".into()))?
            .map_err(|e| failed(format!("{program}: {e}")))?;
        Ok(Self { what, pid: child.id(), child: Mutex::new(child) })
    }

    /// How it ended, if it has. It is then reaped: its PID, which another process may get next,
    /// is never signalled afterwards.
    fn exited(&self) -> Option<Exited> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        match child.try_wait() {
            Ok(Some(status)) => Some(Exited { what: self.what, pid: self.pid, status }),
            _ => None,
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        // SIGKILL by its own PID (nothing if it was already reaped), then reaped. Neither anvil
        // nor Alto keeps anything worth a graceful stop.
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The thread that forks every child of every devnet, started on first use; it lives as long as
/// the process (its channel's sender is never dropped).
fn spawner() -> std::io::Result<mpsc::Sender<SpawnJob>> {
    static SPAWNER: Mutex<Option<mpsc::Sender<SpawnJob>>> = Mutex::new(None);
    let mut spawner = SPAWNER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(tx) = spawner.as_ref() {
        return Ok(tx.clone());
    }
    let (tx, rx) = mpsc::channel::<SpawnJob>();
    std::thread::Builder::new().name("devnet-spawner".into()).spawn(move || {
        for (mut command, reply) in rx {
            let _ = reply.send(command.spawn());
        }
    })?;
    *spawner = Some(tx.clone());
    Ok(tx)
}

/// Has the child ask Linux for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`), and give up if
/// the parent died before it asked.
fn die_with_this_process(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: it makes two system calls and builds errors without allocating.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // Reparented already: the parent died before the signal was asked for.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// The Alto bundler (`@pimlico/alto`, pinned in `tools/`), run by node with a preload that keeps
/// every listening socket on 127.0.0.1 (Alto binds 0.0.0.0 and has no flag for it).
struct Alto {
    process: ChildProcess,
    port: u16,
    /// Alto's output (kept if it fails to start, removed when it stops).
    log: PathBuf,
}

impl Alto {
    async fn start(anvil: &Anvil) -> Result<Self, Error> {
        let script = ALTO.find()?;
        let preload = loopback_preload()?;
        let key = |i: usize| format!("0x{}", alloy::hex::encode(anvil.keys[i].to_bytes()));
        // The free port is released before Alto binds it; if another process takes it first,
        // Alto exits (with status 0): try another.
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = std::env::temp_dir().join(format!("valet-alto-{port}.log"));
            let log = std::fs::File::create(&log_path)
                .map_err(|e| Error::Start { what: "alto", reason: format!("{}: {e}", log_path.display()) })?;
            let log_err = log.try_clone().map_err(|e| Error::Start { what: "alto", reason: e.to_string() })?;
            let mut command = Command::new("node");
            command
                // Not the caller's directory: Alto would read a `.env` there as settings.
                .current_dir(script.parent().unwrap_or(Path::new("/")))
                .arg("--require")
                .arg(&preload)
                .arg(&script)
                .args(["--rpc-url", loopback_url(anvil.port).as_str()])
                .args(["--entrypoints", &format!("{},{}", valet_core::ENTRY_POINT_V07, valet_core::ENTRY_POINT_V08)])
                .args(["--executor-private-keys", &key(4)])
                .args(["--utility-private-key", &key(5)])
                .args(["--port", &port.to_string()])
                .args(ALTO_FLAGS)
                // Alto reads ALTO_* variables as flags and a .env file as settings: give it none.
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err);
            let process = ChildProcess::spawn("alto", command).await?;
            let mut alto = Self { process, port, log: log_path.clone() };
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
            if let Some(exited) = self.process.exited() {
                return Err(Error::Start { what: "alto", reason: format!("exited with {}", exited.status) });
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
        // Its process is stopped right after, when the field is dropped.
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `tools/loopback.js`, built into this crate and written to a temporary file for node to preload:
/// the bundler listens on loopback wherever `valet` runs from.
fn loopback_preload() -> Result<PathBuf, Error> {
    const SCRIPT: &str = include_str!("../../../tools/loopback.js");
    let path = std::env::temp_dir().join(format!("valet-loopback-{}.js", alloy::primitives::keccak256(SCRIPT)));
    if std::fs::read_to_string(&path).ok().as_deref() != Some(SCRIPT) {
        // Written under a unique name then renamed: concurrent starts never read half a file.
        let partial = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&partial, SCRIPT)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|e| Error::Start { what: "alto", reason: format!("writing {}: {e}", path.display()) })?;
    }
    Ok(path)
}

/// Alto's flags besides endpoints and keys, and why.
const ALTO_FLAGS: &[&str] = &[
    // Safe mode off: anvil does answer debug_traceCall with JavaScript tracers, but Alto 0.0.20's
    // safe mode refuses every EntryPoint v0.7 operation, because it does not decode the
    // EntryPoint's `DelegateAndRevert(bool,bytes)` (0x99410554) from its own simulation. The
    // ERC-7562 rules are checked by `crate::erc7562` instead, in tests/erc7562.rs.
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

// ------------------------------------------------------------------ gas sponsorship

/// The key that signs for the devnet's paymaster: `keccak256("valet devnet sponsor")`, public
/// like anvil's dev keys and for the devnet only. Not one of the ten dev keys, which all have a
/// role already (the dApp's development wallet is dev key 7).
fn sponsor_key() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&alloy::primitives::keccak256("valet devnet sponsor")).expect("a valid secp256k1 key")
}

/// The devnet's ValetPaymaster: created by the deployer (dev key 0, its owner) with
/// [`sponsor_key`] as its signer, given 100 ETH of EntryPoint deposit to sponsor from and 1 ETH of
/// stake (one day's unstake delay: ERC-7562 bundlers want a paymaster that reads its own storage
/// staked).
async fn deploy_devnet_paymaster(provider: &DynProvider, keys: &[PrivateKeySigner]) -> Result<Address, Error> {
    let ether = alloy::primitives::U256::from(10u128.pow(18));
    let (signer, owner) = (sponsor_key().address(), keys[0].address());
    let paymaster = crate::paymaster::deploy_paymaster(provider, signer, owner).await?;
    let (deposit, day) = (ether * alloy::primitives::U256::from(100), Duration::from_secs(86_400));
    crate::paymaster::fund_paymaster(provider, paymaster, deposit, ether, day).await?;
    Ok(paymaster)
}

impl Devnet {
    /// The devnet's ValetPaymaster (its signer a devnet-only sponsor key, its owner dev key 0),
    /// funded with 100 ETH of EntryPoint deposit (not deployed on a bare devnet).
    pub fn paymaster(&self) -> Address {
        crate::paymaster::paymaster_address(sponsor_key().address(), self.key(0).address())
    }

    /// Approves operations for [`Devnet::paymaster`] with its signer (the devnet sponsor key), counting each
    /// approval's validity from the chain's clock as well as this machine's (the devnet may have
    /// been moved ahead in time).
    pub fn sponsor(&self) -> crate::SponsorSigner {
        crate::SponsorSigner::new(self.paymaster(), sponsor_key()).with_chain_clock(self.provider.clone())
    }
}
