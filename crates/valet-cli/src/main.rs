//! `valet`: session keys for ERC-4337 accounts. `valet demo [--json]` tells the story on a
//! local devnet: one owner signature grants a session; the session key mints ten NFTs alone;
//! an eleventh mint and a mint of six are refused with their reasons before anything is sent,
//! and the chain refuses a forced one too.

use std::collections::BTreeMap;
use std::time::Instant;

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use anyhow::{Context, bail};
use serde_json::json;
use valet_client::contracts::{ValetAccountFactory, ValetNFT};
use valet_client::{Devnet, Error, GasLimits, SessionCall, SessionHandle, submit};
use valet_core::spec::{DEMO_MINT_SPEC, Labels, SessionSpec, SpecContext, summary};
use valet_core::{Call, Counters, Execution, eip712};

const USAGE: &str =
    "usage: valet demo [--json]\n\n  demo   the story on a local devnet: one grant, ten mints, the eleventh refused";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    match args.iter().find(|a| !a.starts_with("--")).map(String::as_str) {
        Some("demo") => demo(json).await,
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
        None => {
            println!("{USAGE}");
            Ok(())
        }
    }
}

struct Step {
    op: String,
    status: String,
    gas: Option<u64>,
}

fn mint_calldata(nft: Address, to: Address, quantity: u64) -> Bytes {
    let data = ValetNFT::mintCall { to, quantity: U256::from(quantity) }.abi_encode();
    Execution::Single(Call { target: nft, value: U256::ZERO, data: data.into() }).encode()
}

async fn demo(json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let say = |line: String| {
        if !json {
            println!("{line}");
        }
    };
    say("Starting a local devnet (anvil, EntryPoint v0.7, Valet contracts)…".into());
    let devnet = Devnet::start().await.context("starting the devnet")?;
    let a = devnet.addresses;
    let chain_id = devnet.chain_id();
    let owner = devnet.key(3);
    let relayer = devnet.provider_for(1);
    let beneficiary = devnet.key(1).address();
    say(format!("  devnet at {}, validator {}", devnet.endpoint(), a.validator));

    let factory = ValetAccountFactory::new(a.factory, &devnet.provider);
    let account = factory.getAddress(owner.address(), U256::ZERO).call().await.context("account address")?;
    let fund = alloy::rpc::types::TransactionRequest::default().to(account).value(U256::from(10u128.pow(18)));
    devnet.provider_for(2).send_transaction(fund).await?.get_receipt().await?;
    say(format!("Account {account} (counterfactual: deployed by its first operation), funded with 1 ETH."));

    let now = devnet.provider.get_block_by_number(Default::default()).await?.context("latest block")?.header.timestamp;
    let session_key = PrivateKeySigner::random();
    let ctx = SpecContext {
        now,
        session_key: session_key.address(),
        account_epoch: 0,
        names: BTreeMap::from([("ValetNFT".to_string(), a.nft)]),
    };
    let spec = SessionSpec::from_toml(DEMO_MINT_SPEC)?;
    let session = spec.resolve(&ctx)?;
    let labels = Labels { names: BTreeMap::from([(a.nft, "ValetNFT".to_string())]), ..Labels::default() };
    let lines = summary(&session, &spec.functions()?, &labels);
    say("The owner reads:".into());
    for line in &lines {
        say(format!("  • {line}"));
    }
    let grant = owner.sign_hash_sync(&eip712::grant_digest(&session, account, a.validator, chain_id)?)?.as_bytes();
    let handle = SessionHandle::new(session, session_key, grant.to_vec().into(), a.validator)?;
    let id = handle.id;
    say(format!("The owner signs once (EIP-712 grant). Session {id}."));

    let mut counters = Counters::default();
    let mut steps = Vec::new();
    let mut refusals = Vec::new();
    let mut sequence = 0u64;
    let deploy = (
        a.factory,
        Bytes::from(ValetAccountFactory::createAccountCall { owner: owner.address(), salt: U256::ZERO }.abi_encode()),
    );
    let call_for = |quantity: u64, sequence: u64, first: bool| SessionCall {
        call_data: mint_calldata(a.nft, account, quantity),
        indices: vec![0],
        sequence,
        enable: first,
        deploy: first.then(|| deploy.clone()),
        ..SessionCall::default()
    };

    for i in 0..10u64 {
        let first = i == 0;
        let call = call_for(1, sequence, first);
        let verdict = handle.preflight(account, &counters, &call, now + 1).context("pre-flight")?;
        let op = handle.sign(account, &call, GasLimits::default(), chain_id)?;
        let (receipt, included) = submit::handle_ops(&relayer, &[op.pack()], beneficiary).await?;
        // The handleOps transaction's gas, as its receipt shows it (one operation per transaction).
        let gas = receipt.gas_used;
        if !included.first().is_some_and(|i| i.success) {
            bail!("mint {} was included but failed", i + 1);
        }
        counters = verdict.counters;
        sequence += 1;
        let label = if first { "mint 1 (deploy + enable + mint)".to_string() } else { format!("mint {}", i + 1) };
        say(format!("  ✓ {label}: gas {gas}"));
        steps.push(Step { op: label, status: "included".into(), gas: Some(gas) });
    }

    for (label, quantity) in [("mint 11", 1u64), ("mint of 6", 6)] {
        let call = call_for(quantity, sequence, false);
        let op = handle.sign(account, &call, GasLimits::default(), chain_id)?;
        match handle.preflight(account, &counters, &call, now + 1) {
            Ok(_) => bail!("{label} should have been refused"),
            Err(refusal) => {
                say(format!("  ✗ {label}: refused before sending — {refusal}"));
                let chain = match submit::handle_ops(&relayer, &[op.pack()], beneficiary).await {
                    Err(Error::Refused { reason, decoded, .. }) => {
                        format!("{reason}: {}", decoded.unwrap_or_else(|| "no data".into()))
                    }
                    Ok(_) => bail!("the chain accepted {label}"),
                    Err(e) => return Err(e.into()),
                };
                say(format!("    forced anyway, the chain refuses it too: {chain}"));
                refusals.push(json!({ "op": label, "reason": refusal.to_string(), "chain": chain }));
                steps.push(Step { op: label.into(), status: "refused".into(), gas: None });
            }
        }
    }

    let nft = ValetNFT::new(a.nft, &devnet.provider);
    let balance = nft.balanceOf(account).call().await?;
    let mints = steps.iter().filter(|s| s.status == "included").count();
    if json {
        let gas: Vec<_> = steps.iter().map(|s| json!({ "op": s.op, "status": s.status, "gas": s.gas })).collect();
        let doc = json!({
            "account": account,
            "session_id": id,
            "validator": a.validator,
            "summary": lines,
            "mints_succeeded": mints,
            "nft_balance": balance.to::<u64>(),
            "refusals": refusals,
            "gas": gas,
            "wall_time_ms": started.elapsed().as_millis() as u64,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("\n{:<36} {:<10} {:>10}", "operation", "status", "gas");
        for s in &steps {
            println!(
                "{:<36} {:<10} {:>10}",
                s.op,
                s.status,
                s.gas.map(|g| g.to_string()).unwrap_or_else(|| "-".into())
            );
        }
        println!(
            "\n{mints} mints with one owner signature; the account holds {balance} NFTs; {} refusals with their reasons. ({:.1} s)",
            refusals.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
