//! `valet deploy`: Valet's contracts at their canonical addresses on any EVM chain.

use std::path::PathBuf;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use valet_client::deploy::{self, DeployOptions};

/// Settings of `valet deploy`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeployArgs {
    /// The node's JSON-RPC URL.
    #[arg(long, env = "VALET_RPC_URL")]
    rpc_url: String,
    /// The deployer's private key (hex); it pays for the deployment and the factory's stake, and
    /// manages that stake. Prefer the env variable or a keystore: flags show in `ps`.
    #[arg(long, env = "VALET_DEPLOYER_KEY", hide_env_values = true)]
    deployer_key: Option<String>,
    /// An encrypted keystore file holding the deployer's key (password in VALET_DEPLOYER_PASSWORD).
    #[arg(long, conflicts_with = "deployer_key")]
    deployer_keystore: Option<PathBuf>,
    /// Also deploy the demo contracts (ValetNFT, ValetToken, ValetDAO).
    #[arg(long)]
    demo: bool,
    /// The factory's stake in the EntryPoint should be at least this: wei, or "N ether" / "N gwei"
    /// (0: leave the stake alone). Bundlers require a staked factory for an account's first
    /// operation that also enables a session; ask yours for its minimum.
    #[arg(long, default_value = "1 ether", value_parser = parse_wei)]
    stake: U256,
    /// And its unstake delay at least this many seconds.
    #[arg(long, default_value_t = deploy::DEFAULT_UNSTAKE_DELAY)]
    unstake_delay: u32,
    /// Also deploy a ValetPaymaster whose sponsor key is this address (owned by the deployer; its
    /// address depends on both, so it is the same on every chain for the same pair), stake it
    /// like the factory and fund its EntryPoint deposit (--paymaster-deposit). `valet serve
    /// --paymaster … --sponsor-key …` then sponsors apps' operations through it.
    #[arg(long)]
    paymaster_signer: Option<Address>,
    /// The paymaster's EntryPoint deposit should be at least this (what it pays fees from).
    #[arg(long, default_value = "0", value_parser = parse_wei, requires = "paymaster_signer")]
    paymaster_deposit: U256,
    /// Print only where nothing would be deployed: the canonical addresses, computed offline.
    #[arg(long, conflicts_with_all = ["deployer_key", "deployer_keystore", "demo"])]
    addresses: bool,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_wei(text: &str) -> Result<U256, String> {
    valet_core::spec::parse_amount(&valet_core::spec::Amount::Text(text.to_string()), "--stake")
        .map_err(|e| e.to_string())
}

fn deployer(args: &DeployArgs) -> anyhow::Result<PrivateKeySigner> {
    match (&args.deployer_key, &args.deployer_keystore) {
        (Some(hex), _) => hex.trim().parse().map_err(|_| anyhow!("the deployer key is not a 32-byte hex private key")),
        (None, Some(path)) => {
            let password = std::env::var("VALET_DEPLOYER_PASSWORD")
                .map_err(|_| anyhow!("set VALET_DEPLOYER_PASSWORD to decrypt {}", path.display()))?;
            PrivateKeySigner::decrypt_keystore(path, password)
                .with_context(|| format!("decrypting the deployer keystore {}", path.display()))
        }
        (None, None) => {
            bail!("the deployer must sign: pass --deployer-key (or VALET_DEPLOYER_KEY) or --deployer-keystore")
        }
    }
}

/// `valet deploy`.
pub(crate) async fn run(args: DeployArgs) -> anyhow::Result<()> {
    if args.addresses {
        let doc = serde_json::json!({ "valet": deploy::canonical(), "demo": deploy::demo() });
        if args.json {
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            let c = deploy::canonical();
            println!("Valet's addresses on every EVM chain:");
            println!("  entryPoint             {}", c.entry_point);
            println!("  validator              {}", c.validator);
            println!("  factory                {}", c.factory);
            println!("  account implementation {}", c.account_implementation);
        }
        return Ok(());
    }
    let key = deployer(&args)?;
    let from = key.address();
    let provider = valet_client::rpc::http_wallet_provider(&args.rpc_url, key)
        .map_err(|e| anyhow!("--rpc-url `{}`: {e}", args.rpc_url))?;
    let options = DeployOptions { demo: args.demo, stake: args.stake, unstake_delay: args.unstake_delay };
    let mut report = deploy::deploy(&provider, options).await.with_context(|| format!("deploying from {from}"))?;
    let paymaster = match args.paymaster_signer {
        Some(signer) => Some(
            paymaster(&provider, signer, from, &args, &mut report)
                .await
                .with_context(|| format!("deploying the paymaster from {from}"))?,
        ),
        None => None,
    };
    if args.json {
        let mut doc = serde_json::to_value(&report)?;
        if let Some(p) = &paymaster {
            doc["paymaster"] = serde_json::to_value(p)?;
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("Valet on chain {} (deployer {from})", report.chain_id);
    let status = |name: &str| match report.deployed.contains(&name) {
        true => "deployed now",
        false => "already there, code verified",
    };
    println!("  entryPoint             {}  {}", report.entry_point, status("entry_point"));
    println!("  validator              {}  {}", report.validator, status("validator"));
    println!("  factory                {}  {}", report.factory, status("factory"));
    println!("  account implementation {}  (created by the factory)", report.account_implementation);
    if let Some(demo) = report.demo {
        println!("  ValetNFT               {}  {}", demo.nft, status("nft"));
        println!("  ValetToken             {}  {}", demo.token, status("token"));
        println!("  ValetDAO               {}  {}", demo.dao, status("dao"));
    }
    println!(
        "  factory stake          {} wei, unstake delay {} s, managed by {}{}",
        report.factory_stake_wei,
        report.factory_unstake_delay_sec,
        report.factory_stake_manager,
        if report.staked { " (staked now)" } else { "" }
    );
    if report.factory_stake_manager != from && report.factory_stake_manager != alloy::primitives::Address::ZERO {
        println!("  note: the stake is managed by {}, not by this deployer", report.factory_stake_manager);
    }
    if let Some(p) = &paymaster {
        println!(
            "  paymaster              {}  {} (signer {}, owner {}): deposit {} wei, stake {} wei",
            p.address,
            status("paymaster"),
            p.signer,
            p.owner,
            p.deposit_wei,
            p.stake_wei
        );
    }
    println!("{} transaction(s) sent.", report.transactions.len());
    Ok(())
}

/// The paymaster `valet deploy --paymaster-signer` deployed or found.
#[derive(Debug, serde::Serialize)]
struct PaymasterReport {
    address: Address,
    signer: Address,
    owner: Address,
    /// Its EntryPoint deposit (wei, decimal).
    deposit_wei: String,
    /// Its stake (wei, decimal).
    stake_wei: String,
}

/// Deploys (or finds) the ValetPaymaster of `signer` owned by `owner`, and tops its deposit and
/// stake up to what `args` asks for.
async fn paymaster(
    provider: &alloy::providers::DynProvider,
    signer: Address,
    owner: Address,
    args: &DeployArgs,
    report: &mut deploy::DeployReport,
) -> anyhow::Result<PaymasterReport> {
    use alloy::providers::Provider as _;
    use valet_client::contracts::entry_point::EntryPoint;
    let address = valet_client::paymaster::paymaster_address(signer, owner);
    if provider.get_code_at(address).await?.is_empty() {
        valet_client::paymaster::deploy_paymaster(provider, signer, owner).await?;
        report.deployed.push("paymaster");
    } else {
        report.verified.push("paymaster");
    }
    let entry_point = EntryPoint::new(report.entry_point, provider);
    let info = entry_point.getDepositInfo(address).call().await?;
    // Top-ups only: the EntryPoint adds a deposit and a stake to what is there.
    let deposit = args.paymaster_deposit.saturating_sub(U256::from(info.deposit));
    let stake = args.stake.saturating_sub(U256::from(info.stake));
    let delay = std::time::Duration::from_secs(u64::from(args.unstake_delay.max(info.unstakeDelaySec)));
    valet_client::paymaster::fund_paymaster(provider, address, deposit, stake, delay).await?;
    let info = entry_point.getDepositInfo(address).call().await?;
    Ok(PaymasterReport {
        address,
        signer,
        owner,
        deposit_wei: U256::from(info.deposit).to_string(),
        stake_wei: U256::from(info.stake).to_string(),
    })
}
