//! `valet`: session keys for ERC-4337 accounts.
//!
//! - `valet demo` tells the story on a local devnet (one grant, ten mints, the eleventh refused).
//! - `valet devnet` runs a devnet until Ctrl-C and prints its endpoints, addresses and dev keys;
//!   `valet up` runs the service on one. Either fails, naming it, when anvil or Alto dies.
//! - `valet deploy` puts Valet at its canonical addresses (the same on every chain) on any chain.
//! - `valet account address`, `valet session grant|show|list|exec|revoke` work against any chain
//!   with Valet deployed (the running devnet by default).

mod bench;
mod commands;
mod demo;
mod deploy;
mod serve;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use clap::{Args, Parser, Subcommand, ValueEnum};
use valet_client::{Bundler, BundlerClient, Devnet, Direct, Submitter};

/// Session keys for ERC-4337 smart accounts.
#[derive(Debug, Parser)]
#[command(name = "valet", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which submitter runs the story.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BundlerChoice {
    /// A relayer key calls `EntryPoint.handleOps` (default).
    Direct,
    /// The Alto bundler, started on loopback.
    Alto,
}

/// Whose account the story runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AccountChoice {
    /// A new counterfactual ValetAccount of the owner (default).
    Smart,
    /// The owner's own EOA, delegating to Valet's account with EIP-7702.
    Eip7702,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The story on a local devnet: one approval, ten mints, the eleventh refused with its reason.
    Demo {
        /// One machine-readable JSON document instead of the story.
        #[arg(long)]
        json: bool,
        /// Submit through a bundler instead of directly.
        #[arg(long, value_enum, default_value = "direct")]
        bundler: BundlerChoice,
        /// The devnet's paymaster pays every operation's fees: the account holds no ETH at all.
        #[arg(long, conflicts_with = "chains")]
        sponsored: bool,
        /// One grant signature for a session on N local chains (2 to 4 anvils with different
        /// chain ids): ten mints on each, the eleventh refused on each.
        #[arg(long, value_name = "N", conflicts_with = "account")]
        chains: Option<usize>,
        /// Whose account: a new smart account (`smart`), or the owner's own EOA made a Valet
        /// account with EIP-7702 (`eip7702`: the NFTs land at the EOA's address).
        #[arg(long, value_enum, default_value = "smart", conflicts_with = "sponsored")]
        account: AccountChoice,
    },
    /// Run a local devnet until Ctrl-C, printing its endpoints, addresses and dev keys (fails if
    /// anvil or the bundler dies).
    #[command(args_conflicts_with_subcommands = true)]
    Devnet {
        /// Print one JSON document (then keep running).
        #[arg(long)]
        json: bool,
        /// Also start a bundler.
        #[arg(long, value_enum, default_value = "direct")]
        bundler: BundlerChoice,
        /// Run in the background: return once the devnet is ready (its output goes to
        /// devnet.log in the data directory); `valet devnet stop` stops it.
        #[arg(long)]
        detach: bool,
        #[command(flatten)]
        data: DataDir,
        #[command(subcommand)]
        action: Option<DevnetAction>,
    },
    /// The session-key service on a fresh local devnet (and the contracts), until Ctrl-C (fails
    /// if anvil or the bundler dies).
    Up {
        /// Port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value = "8080")]
        port: u16,
        /// Where the service keeps its database, master key and admin token.
        #[arg(long = "data-dir", default_value = ".valet-up")]
        data_dir: PathBuf,
        /// Also start a bundler and submit through it.
        #[arg(long, value_enum, default_value = "direct")]
        bundler: BundlerChoice,
        /// Print one JSON line once serving.
        #[arg(long)]
        json: bool,
        /// The dApp's build (Vite's output) to serve at `/`; `make up` builds it. Default: the
        /// first of ./web/dist, `web/` beside the valet binary, and the checkout it was built from.
        #[arg(long, env = "VALET_WEB")]
        web: Option<PathBuf>,
        /// How many devnets to serve (1 to 4): the main one (chain 31337) and, for multichain
        /// grants, others with the chain ids of `valet demo --chains` (8453, 10, 42161).
        #[arg(long, default_value = "1")]
        chains: usize,
    },
    /// Deploy Valet (account implementation, factory, SessionKeyValidator; the demo contracts with
    /// --demo) at its canonical addresses, the same on every EVM chain, and stake the factory.
    /// Idempotent: what is there already is verified and skipped.
    Deploy(deploy::DeployArgs),
    /// The session-key service against a chain with Valet deployed, until Ctrl-C.
    Serve(serve::ServeArgs),
    /// A load run of the service on anvil: executions/s, p50/p99, errors and chain == record at
    /// each concurrency level (each on a fresh devnet), with direct submission; one level through
    /// Alto beside it. Exits non-zero on any error or a chain that differs from the record.
    Bench {
        /// Concurrency levels: sessions executing at once, each in a closed loop. The first level
        /// is the baseline of the throughput ratios.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
        levels: Vec<usize>,
        /// How long each level's load runs, in seconds (after its sessions' warm-up).
        #[arg(long, default_value = "10")]
        seconds: u64,
        /// The level also run through the Alto bundler, compared with direct submission at the
        /// same level (0: no Alto run).
        #[arg(long, default_value = "8")]
        alto: usize,
        /// Where the time goes, per level: node calls by method, SQL statements, the submitter's
        /// phases, CPU used by the service and anvil.
        #[arg(long)]
        profile: bool,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Smart accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Sessions: grant, show, list, exec, revoke.
    #[command(subcommand)]
    Session(SessionCommand),
}

#[derive(Debug, Subcommand)]
enum DevnetAction {
    /// Stop the running devnet (by its PID) and wait until it is gone.
    Stop {
        #[command(flatten)]
        data: DataDir,
    },
    /// Give an address test ETH on the running devnet (default: the owner's account, from
    /// VALET_OWNER_KEY, salt 0).
    Fund {
        /// The address (default: the account of the owner key).
        address: Option<Address>,
        /// How much ETH to add.
        #[arg(long, default_value = "1")]
        eth: String,
        #[command(flatten)]
        owner_key: OwnerKey,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// The (counterfactual) address of an owner's account, and whether it is deployed.
    Address {
        /// The owner's address (or give an owner key).
        #[arg(long)]
        owner: Option<Address>,
        #[command(flatten)]
        owner_key: OwnerKey,
        /// The factory salt.
        #[arg(long, default_value = "0")]
        salt: U256,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Make the owner's EOA a Valet account (EIP-7702): the owner signs a delegation to Valet's
    /// account and an operation that activates it. Whatever an earlier delegation left is void.
    Upgrade {
        #[command(flatten)]
        owner_key: OwnerKey,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// The owner's EOA leaves Valet in one transaction of its own (it pays the gas): every session
    /// and grant void, its code delegated to --to (default: none, a plain EOA again).
    Leave {
        #[command(flatten)]
        owner_key: OwnerKey,
        /// Where the EOA delegates next (default: nowhere).
        #[arg(long, default_value_t = Address::ZERO)]
        to: Address,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// Propose a session from a spec file (TOML or JSON), have the owner sign the grant, and
    /// store the session (its key encrypted) for `exec`.
    Grant {
        /// The spec: TOML (or JSON if the file ends in .json).
        #[arg(long)]
        spec: PathBuf,
        /// Names the spec may use: `--name Name=0x…` (repeatable; the devnet's are known).
        #[arg(long = "name", value_parser = parse_name)]
        names: Vec<(String, Address)>,
        /// The factory salt of the owner's account.
        #[arg(long, default_value = "0")]
        salt: U256,
        /// Print only the session id on stdout (the summary goes to stderr): `SESSION=$(…)`.
        #[arg(long, conflicts_with = "json")]
        id_only: bool,
        #[command(flatten)]
        owner_key: OwnerKey,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// What a session has left, read from the validator.
    Show {
        /// The session id (or a unique prefix).
        id: String,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Every stored session, with what it has left.
    List {
        /// Only this account's.
        #[arg(long)]
        account: Option<Address>,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Execute one call with a session key (pre-flighted: a call outside the session is refused
    /// before anything is sent).
    Exec {
        /// The session id (or a unique prefix).
        id: String,
        /// The contract to call (an address or a known name).
        #[arg(long)]
        to: String,
        /// The function, `name(type arg, …)`; absent for a plain value transfer.
        #[arg(long)]
        function: Option<String>,
        /// The arguments, in order (addresses, numbers, `true`/`false`, `$account`).
        #[arg(long = "arg", allow_hyphen_values = true)]
        args: Vec<String>,
        /// Native value to send, in wei.
        #[arg(long, default_value = "0")]
        value: U256,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Revoke a session on chain (an owner-signed operation), effective at once; or, with
    /// `--all`, every session of the owner's account and every grant signed before.
    Revoke {
        /// The session id (or a unique prefix).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Revoke every session of the owner's account, and void every grant not used yet: the
        /// account moves to a new epoch that nothing signed before can name.
        #[arg(long)]
        all: bool,
        /// With `--all`: the account's salt.
        #[arg(long, default_value = "0", requires = "all")]
        salt: U256,
        #[command(flatten)]
        owner_key: OwnerKey,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

/// Where Valet keeps its state: the running devnet's description and stored sessions.
#[derive(Debug, Clone, Args)]
struct DataDir {
    /// Valet's data directory.
    #[arg(long = "data-dir", env = "VALET_HOME", global = true)]
    data_dir: Option<PathBuf>,
}

impl DataDir {
    fn path(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".valet")
        })
    }
}

/// The chain, the submitter and Valet's contracts (each defaults to the running `valet devnet`).
#[derive(Debug, Clone, Args)]
struct ChainArgs {
    /// The node's JSON-RPC URL.
    #[arg(long, env = "VALET_RPC_URL")]
    rpc_url: Option<String>,
    /// A bundler's URL (otherwise a relayer key submits directly).
    #[arg(long, env = "VALET_BUNDLER_URL")]
    bundler_url: Option<String>,
    /// The relayer's private key for direct submission (hex).
    #[arg(long, env = "VALET_RELAYER_KEY", hide_env_values = true)]
    relayer_key: Option<String>,
    /// The SessionKeyValidator (default: the running devnet's, else the canonical address).
    #[arg(long, env = "VALET_VALIDATOR")]
    validator: Option<Address>,
    /// The ValetAccountFactory (default: the running devnet's, else the canonical address).
    #[arg(long, env = "VALET_FACTORY")]
    factory: Option<Address>,
    /// Whose accounts: `smart` (a ValetAccount at a counterfactual address, EntryPoint v0.7) or
    /// `eip7702` (the owner's own EOA delegating to Valet's account, EntryPoint v0.8). Commands
    /// on a stored session use the session's own.
    #[arg(long, value_enum, default_value = "smart", env = "VALET_ACCOUNT_KIND")]
    account_kind: AccountChoice,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data: DataDir,
}

impl From<AccountChoice> for valet_client::AccountKind {
    fn from(choice: AccountChoice) -> Self {
        match choice {
            AccountChoice::Smart => valet_client::AccountKind::Smart,
            AccountChoice::Eip7702 => valet_client::AccountKind::Eip7702,
        }
    }
}

/// The owner's key: a hex private key (flag or env) or a keystore file (password from env).
#[derive(Debug, Clone, Args)]
struct OwnerKey {
    /// The owner's private key (hex). Prefer the env variable or a keystore: flags show in `ps`.
    #[arg(long, env = "VALET_OWNER_KEY", hide_env_values = true)]
    owner_key: Option<String>,
    /// An encrypted keystore file holding the owner's key (password in VALET_OWNER_PASSWORD).
    #[arg(long)]
    owner_keystore: Option<PathBuf>,
}

pub(crate) fn parse_name(text: &str) -> Result<(String, Address), String> {
    let (name, address) = text.split_once('=').ok_or_else(|| format!("`{text}`: expected Name=0x…"))?;
    let address = address.parse::<Address>().map_err(|e| format!("`{address}` is not an address: {e}"))?;
    Ok((name.to_string(), address))
}

/// The submitter a devnet offers: its bundler if it runs one, else direct from dev key 1.
pub(crate) async fn submitter_for(devnet: &Devnet) -> anyhow::Result<Arc<dyn Submitter>> {
    Ok(match devnet.bundler_url() {
        Some(url) => Arc::new(
            Bundler::new(BundlerClient::new(&url, devnet.addresses.entry_point)?).with_node(devnet.provider.clone()),
        ),
        None => Arc::new(Direct::new(devnet.provider_for(1), devnet.key(1).address()).await?),
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings, and the service's own info lines).
/// Nothing that can sign is ever a field of a log line. `valet bench --profile` adds its
/// profiler beside the log output, with a filter of its own.
fn init_logging(profiler: Option<bench::Profiler>) {
    use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,valet_server=info"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let profiler = profiler.map(|p| p.with_filter(tracing_subscriber::filter::filter_fn(bench::Profiler::wants)));
    let _ = tracing_subscriber::registry().with(log).with(profiler).try_init();
}

/// Set when a command has printed its own JSON document for a failure (a refusal before
/// sending): `main` then adds none.
pub(crate) static FAILURE_PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Under --json every failure is one JSON object on stdout too (scripts read stdout).
    let json = std::env::args().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    let cli = Cli::parse();
    let profiler = matches!(cli.command, Command::Bench { profile: true, .. }).then(bench::Profiler::default);
    init_logging(profiler.clone());
    let result = match cli.command {
        Command::Demo { json, bundler, account: AccountChoice::Eip7702, .. } => {
            demo::run_eip7702(json, bundler == BundlerChoice::Alto).await
        }
        Command::Demo { json, bundler, sponsored, chains: Some(chains), .. } => {
            debug_assert!(!sponsored, "clap refuses --sponsored with --chains");
            demo::run_multichain(json, bundler == BundlerChoice::Alto, chains).await
        }
        Command::Demo { json, bundler, sponsored, chains: None, .. } => {
            demo::run(json, bundler == BundlerChoice::Alto, sponsored).await
        }
        Command::Devnet { action: Some(DevnetAction::Stop { data }), .. } => commands::devnet_stop(&data.path()).await,
        Command::Devnet { action: Some(DevnetAction::Fund { address, eth, owner_key, data }), .. } => {
            commands::devnet_fund(address, &eth, &owner_key, &data.path()).await
        }
        Command::Devnet { json, bundler, detach: true, data, action: None } => {
            commands::devnet_detach(json, bundler == BundlerChoice::Alto, &data.path()).await
        }
        Command::Devnet { json, bundler, detach: false, data, action: None } => {
            commands::devnet(json, bundler == BundlerChoice::Alto, &data.path()).await
        }
        Command::Bench { levels, seconds, alto, profile: _, json } => {
            let run_for = std::time::Duration::from_secs(seconds);
            bench::run(bench::Plan { levels, run_for, alto: (alto > 0).then_some(alto), profiler }, json).await
        }
        Command::Up { port, data_dir, bundler, json, web, chains } => {
            serve::up(port, data_dir, bundler == BundlerChoice::Alto, json, &serve::find_web(web), chains).await
        }
        Command::Deploy(args) => deploy::run(args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Account(AccountCommand::Address { owner, owner_key, salt, chain }) => {
            commands::account_address(owner, &owner_key, salt, &chain).await
        }
        Command::Account(AccountCommand::Upgrade { owner_key, chain }) => {
            commands::account_upgrade(&owner_key, &chain).await
        }
        Command::Account(AccountCommand::Leave { owner_key, to, chain }) => {
            commands::account_leave(&owner_key, to, &chain).await
        }
        Command::Session(command) => match command {
            SessionCommand::Grant { spec, names, salt, id_only, owner_key, chain } => {
                commands::grant(&spec, names, salt, &owner_key, &chain, id_only).await
            }
            SessionCommand::Show { id, chain } => commands::show(&id, &chain).await,
            SessionCommand::List { account, chain } => commands::list(account, &chain).await,
            SessionCommand::Exec { id, to, function, args, value, chain } => {
                commands::exec(&id, &to, function.as_deref(), &args, value, &chain).await
            }
            SessionCommand::Revoke { id: Some(id), owner_key, chain, .. } => {
                commands::revoke(&id, &owner_key, &chain).await
            }
            SessionCommand::Revoke { id: None, salt, owner_key, chain, .. } => {
                commands::revoke_all(salt, &owner_key, &chain).await
            }
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let message = describe(&e);
            eprintln!("error: {message}");
            if json && !FAILURE_PRINTED.load(std::sync::atomic::Ordering::Relaxed) {
                println!("{}", serde_json::json!({ "status": "failed", "error": message }));
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, `a: b: c`, leaving out a cause whose text its effect
/// already quotes (valet-client's errors keep their source and say it too).
fn describe(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::describe;

    /// A client error that keeps its source is said once, with the context above it.
    #[test]
    fn causes_already_quoted_are_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = anyhow::Error::new(valet_client::Error::rpc(io)).context("reading the session");
        assert_eq!(describe(&e), "reading the session: RPC error: connection refused");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(describe(&plain), "outer: inner");
    }
}
