//! `valet demo`: the story on a local devnet. One owner signature grants a session; the session
//! key mints ten NFTs alone (the first operation also deploys the account and enables the
//! session); an eleventh mint and a mint of six are refused with their reasons before anything is
//! sent, and the chain refuses them too when forced. Then, in short: a recurring ERC-20 payment
//! under a daily allowance across two days, and DAO votes on three proposals with one session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::sol_types::SolCall;
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;
use valet_client::contracts::demo::{ValetDAO, ValetNFT, ValetToken};
use valet_client::{Account, Devnet, DevnetOptions, Error, Executed, SessionHandle, Valet};
use valet_core::Call;
use valet_core::spec::{DEMO_MINT_SPEC, DEMO_PAYMENT_SPEC, DEMO_VOTE_SPEC, Labels, SessionSpec, explain, units};

use crate::submitter_for;

/// One line of the final table.
#[derive(Debug, Serialize)]
struct Step {
    leg: &'static str,
    op: String,
    status: &'static str,
    /// Gas the EntryPoint charged the account (its own execution + validation + pre-verification).
    gas: Option<u128>,
    /// Gas of the transaction that carried it.
    tx_gas: Option<u64>,
    /// What the account paid for it, in wei.
    #[serde(skip)]
    fee_wei: Option<U256>,
    user_op_hash: Option<B256>,
    transaction_hash: Option<B256>,
    detail: Option<String>,
}

struct Story {
    labels: Labels,
    json: bool,
    steps: Vec<Step>,
    refusals: Vec<serde_json::Value>,
    progress: bool,
    /// What an account's first operation does besides enabling: deploy it, or (an EIP-7702
    /// account) delegate and activate it.
    first_op: &'static str,
}

impl Story {
    /// A story told as text (a progress spinner on a terminal) or, with `json`, as one document.
    fn new(json: bool, first_op: &'static str) -> Self {
        Self {
            labels: Labels::default(),
            json,
            steps: Vec::new(),
            refusals: Vec::new(),
            progress: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            first_op,
        }
    }

    fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("{}", line.as_ref());
        }
    }

    fn spinner(&self, message: String) -> ProgressBar {
        if self.json || !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner().with_message(message);
        bar.set_style(ProgressStyle::with_template("  {spinner} {msg} {elapsed}").expect("a valid template"));
        bar.enable_steady_tick(Duration::from_millis(80));
        bar
    }

    /// Runs one session operation with a spinner while it waits, and records it.
    async fn run(
        &mut self,
        valet: &Valet,
        account: &Account,
        session: &SessionHandle,
        leg: &'static str,
        label: String,
        calls: &[Call],
    ) -> anyhow::Result<Executed> {
        let bar = self.spinner(format!("{label}: pre-flight, estimate, sign, submit, wait"));
        let result = valet.execute(account, session, calls).await;
        bar.finish_and_clear();
        let done = result.with_context(|| format!("{leg}: {label}"))?;
        let mut extra = Vec::new();
        if done.deployed_account {
            extra.push(self.first_op);
        }
        if done.enabled_session {
            extra.push("enabled the session");
        }
        let note = if extra.is_empty() { String::new() } else { format!(" ({})", extra.join(", ")) };
        self.say(format!("  ✓ {label}{note}: gas {}", done.receipt.actual_gas_used));
        self.steps.push(Step {
            leg,
            op: label,
            status: "included",
            gas: Some(done.receipt.actual_gas_used),
            tx_gas: done.receipt.transaction_gas_used,
            fee_wei: Some(done.receipt.actual_gas_cost),
            user_op_hash: Some(done.receipt.user_op_hash),
            transaction_hash: Some(done.receipt.transaction_hash),
            detail: (!extra.is_empty()).then(|| extra.join(", ")),
        });
        Ok(done)
    }

    /// Shows that `calls` are refused before sending, then forces them and shows the chain (or
    /// the bundler's simulation of it) refusing them too.
    async fn refuse(
        &mut self,
        (valet, account): (&Valet, &Account),
        session: &SessionHandle,
        leg: &'static str,
        label: &str,
        spec: &SessionSpec,
        calls: &[Call],
    ) -> anyhow::Result<()> {
        let refusal = match valet.prepare(account, session, calls).await {
            Err(Error::Preflight(refusal)) => refusal,
            Ok(_) => bail!("{leg}: {label} should have been refused"),
            Err(e) => return Err(e).context(format!("{leg}: {label}")),
        };
        let reason = explain(&refusal, &session.session, &spec.functions()?, &self.labels);
        self.say(format!("  ✗ {label}: refused before sending — {reason}"));
        let forced = valet.prepare_unchecked(account, session, calls).await?;
        let chain = match valet.submit(std::slice::from_ref(&forced)).await {
            Err(e @ (Error::Refused { .. } | Error::Bundler { .. })) => e.to_string(),
            Ok(_) => bail!("{leg}: the chain accepted {label}"),
            Err(e) => return Err(e).context(format!("{leg}: forcing {label}")),
        };
        self.say(format!("    forced anyway: {chain}"));
        self.refusals
            .push(json!({ "leg": leg, "op": label, "reason": reason, "refusal": refusal.to_string(), "chain": chain }));
        self.steps.push(Step {
            leg,
            op: label.to_string(),
            status: "refused",
            gas: None,
            tx_gas: None,
            fee_wei: None,
            user_op_hash: None,
            transaction_hash: None,
            detail: Some(reason),
        });
        Ok(())
    }
}

fn nft_mint(nft: Address, to: Address, quantity: u64) -> Call {
    let data = ValetNFT::mintCall { to, quantity: U256::from(quantity) }.abi_encode();
    Call { target: nft, value: U256::ZERO, data: data.into() }
}

fn token_transfer(token: Address, to: Address, amount: U256) -> Call {
    let data = ValetToken::transferCall { to, value: amount }.abi_encode();
    Call { target: token, value: U256::ZERO, data: data.into() }
}

fn vote(dao: Address, proposal: u64, support: u8) -> Call {
    let data = ValetDAO::castVoteCall { proposalId: U256::from(proposal), support }.abi_encode();
    Call { target: dao, value: U256::ZERO, data: data.into() }
}

const ETHER: u128 = 1_000_000_000_000_000_000;
const DAY: u64 = 86_400;
/// Seconds of the payment session's first period left when it is granted, on the Alto path: Alto
/// refuses operations valid for less than 5 more seconds (by its clock), so day 1 must be paid
/// well before the period turns — and pre-flight refuses a claim on a period that turns within its
/// 12 s inclusion margin.
const ALTO_PERIOD_WAIT: u64 = 25;

/// Runs the story; `alto` sends everything through the Alto bundler instead of direct submission.
pub(crate) async fn run(json: bool, alto: bool, sponsored: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut story = Story::new(json, "deployed the account");
    let via = if alto { "the Alto bundler" } else { "direct submission (a relayer calls handleOps)" };
    story.say(format!("Starting a local devnet (anvil, EntryPoint v0.7, Valet contracts), submitting through {via}…"));
    let bar = story.spinner("starting".into());
    let devnet = Devnet::start_with(DevnetOptions { alto, ..Default::default() }).await.context("starting the devnet");
    bar.finish_and_clear();
    let devnet = devnet?;
    let a = devnet.addresses;
    story.say(format!("  anvil at {}, validator {}", devnet.endpoint(), a.validator));
    if let Some(url) = devnet.bundler_url() {
        story.say(format!("  Alto bundler at {url}"));
    }
    let mut valet = Valet::new(devnet.provider.clone(), submitter_for(&devnet).await?, devnet.deployment()).await?;
    if sponsored {
        // Every session operation's fees are paid by the devnet's ValetPaymaster, which its
        // sponsor key approves one operation at a time.
        valet = valet.with_paymaster(Arc::new(devnet.sponsor()));
    }

    let owner = devnet.key(3);
    let account = valet.account(owner.address(), U256::ZERO).await?;
    let funding = if sponsored { U256::ZERO } else { U256::from(ETHER) };
    if sponsored {
        story.say(format!(
            "Account {} for owner {} (counterfactual: its first operation deploys it), holding no ETH: the \
             paymaster {} pays every fee.",
            account.address,
            owner.address(),
            devnet.paymaster()
        ));
    } else {
        devnet.fund(account.address, funding).await?;
        story.say(format!(
            "Account {} for owner {} (counterfactual: its first operation deploys it), funded with 1 ETH.",
            account.address,
            owner.address()
        ));
    }
    let sponsor_deposit = |valet: &Valet| {
        let (provider, paymaster) = (valet.provider().clone(), devnet.paymaster());
        async move {
            anyhow::Ok(
                valet_client::contracts::entry_point::EntryPoint::new(valet_core::ENTRY_POINT_V07, provider)
                    .balanceOf(paymaster)
                    .call()
                    .await?,
            )
        }
    };
    let deposit_before = sponsor_deposit(&valet).await?;

    let payee = devnet.key(6).address();
    let names = BTreeMap::from([
        ("ValetNFT".to_string(), a.nft),
        ("ValetToken".to_string(), a.token),
        ("ValetDAO".to_string(), a.dao),
        ("Payee".to_string(), payee),
    ]);
    let mut labels = Labels::default();
    for (name, address) in &names {
        labels.names.insert(*address, name.clone());
    }
    labels.tokens.insert(a.token, ("VLT".to_string(), 18));
    story.labels = labels.clone();

    // 1. NFT minting: one signature, ten mints, two refusals.
    story.say("\n1. Minting NFTs with a session key");
    let mint_spec = SessionSpec::from_toml(DEMO_MINT_SPEC)?;
    let proposal = valet.propose(&account, &mint_spec, &names, &labels).await?;
    story.say("The app asks; the owner reads:");
    for line in &proposal.summary {
        story.say(format!("  • {line}"));
    }
    let summary = proposal.summary.clone();
    let grant = owner.sign_hash_sync(&proposal.digest)?.as_bytes();
    let mint_session = proposal.grant(&grant)?;
    story.say(format!("The owner signs once (EIP-712 grant). Session {}.", mint_session.id));
    for i in 1..=10u64 {
        story
            .run(&valet, &account, &mint_session, "mint", format!("mint {i}"), &[nft_mint(a.nft, account.address, 1)])
            .await?;
    }
    story
        .refuse(
            (&valet, &account),
            &mint_session,
            "mint",
            "mint 11",
            &mint_spec,
            &[nft_mint(a.nft, account.address, 1)],
        )
        .await?;
    story
        .refuse(
            (&valet, &account),
            &mint_session,
            "mint",
            "mint of 6",
            &mint_spec,
            &[nft_mint(a.nft, account.address, 6)],
        )
        .await?;
    let nft_balance = ValetNFT::new(a.nft, valet.provider()).balanceOf(account.address).call().await?;
    let mints = story.steps.iter().filter(|s| s.leg == "mint" && s.status == "included").count();
    story.say(format!("The account holds {nft_balance} NFTs."));
    let fees = valet.status(account.address, &mint_session.session).await?.fees;
    let cost: U256 =
        story.steps.iter().filter(|s| s.leg == "mint").filter_map(|s| s.fee_wei).fold(U256::ZERO, |sum, fee| sum + fee);
    let (paid, sponsored_cost) = if sponsored { (U256::ZERO, cost) } else { (cost, U256::ZERO) };
    if sponsored {
        story.say(format!(
            "Fees: {} ETH, all paid by the paymaster; none of the session's {} ETH budget committed.",
            units(cost.saturating_to(), 18),
            units(fees.budget, 18)
        ));
    } else {
        story.say(format!(
            "Fees: {} ETH of the session's {} ETH budget committed (each mint counted at its maximum cost); the account \
             paid {} ETH.",
            units(fees.spent, 18),
            units(fees.budget, 18),
            units(paid.saturating_to(), 18)
        ));
    }

    // 2. DAO votes: one session, three proposals.
    story.say("\n2. Voting in a DAO with a session key");
    let dao = ValetDAO::new(a.dao, &devnet.provider);
    let proposals = open_proposals(&devnet, valet.now().await? + 7 * 86_400).await?;
    let proposal = valet.propose(&account, &SessionSpec::from_toml(DEMO_VOTE_SPEC)?, &names, &labels).await?;
    for line in &proposal.summary {
        story.say(format!("  • {line}"));
    }
    let grant = owner.sign_hash_sync(&proposal.digest)?.as_bytes();
    let vote_session = proposal.grant(&grant)?;
    story.say(format!("One owner signature: session {}.", vote_session.id));
    for ((id, title), support) in proposals.iter().zip([1u8, 1, 0]) {
        let word = ["against", "for", "abstain"][usize::from(support)];
        story
            .run(
                &valet,
                &account,
                &vote_session,
                "vote",
                format!("vote {word} #{id} “{title}”"),
                &[vote(a.dao, *id, support)],
            )
            .await?;
    }
    let mut votes = 0;
    for (id, _) in &proposals {
        votes += usize::from(dao.hasVoted(U256::from(*id), account.address).call().await?);
    }

    // 3. A recurring payment under a daily allowance, across two days.
    story.say("\n3. A recurring payment: at most 10 VLT a day to one payee");
    ValetToken::new(a.token, &devnet.provider)
        .faucet(account.address, U256::from(100 * ETHER))
        .send()
        .await?
        .get_receipt()
        .await?;
    let mut spec = SessionSpec::from_toml(DEMO_PAYMENT_SPEC)?;
    // A bundler judges an operation's validAfter by its own clock, not the chain's, so through
    // Alto the next period must really begin: this session started a day ago, less a few seconds.
    let turn = if alto {
        let now = valet.now().await?;
        spec.valid_after = Some(now - DAY + ALTO_PERIOD_WAIT);
        Some(now + ALTO_PERIOD_WAIT)
    } else {
        None
    };
    let proposal = valet.propose(&account, &spec, &names, &labels).await?;
    for line in &proposal.summary {
        story.say(format!("  • {line}"));
    }
    let grant = owner.sign_hash_sync(&proposal.digest)?.as_bytes();
    let pay_session = proposal.grant(&grant)?;
    story.say(format!("One owner signature: session {}.", pay_session.id));
    let ten = U256::from(10 * ETHER);
    story
        .run(
            &valet,
            &account,
            &pay_session,
            "payment",
            "day 1: pay 10 VLT".into(),
            &[token_transfer(a.token, payee, ten)],
        )
        .await?;
    story
        .refuse(
            (&valet, &account),
            &pay_session,
            "payment",
            "day 1: pay 1 VLT more",
            &spec,
            &[token_transfer(a.token, payee, U256::from(ETHER))],
        )
        .await?;
    match turn {
        None => {
            devnet.advance_time(DAY).await?;
            story.say("  … a day passes (anvil time travel) and the allowance refills");
        }
        Some(at) => {
            story.say(format!(
                "  … the bundler checks time by its own clock, so no time travel: the session began a day ago less \
                 {ALTO_PERIOD_WAIT} s, and the next period begins in a moment"
            ));
            let bar = story.spinner("waiting for the next period".into());
            // Until a block of the new period exists: the bundler simulates at the latest block.
            while valet.chain_time().await? <= at {
                tokio::time::sleep(Duration::from_millis(250)).await;
                devnet.mine().await?;
            }
            bar.finish_and_clear();
            story.say("  … the new period has begun and the allowance refills");
        }
    }
    story
        .run(
            &valet,
            &account,
            &pay_session,
            "payment",
            "day 2: pay 10 VLT".into(),
            &[token_transfer(a.token, payee, ten)],
        )
        .await?;
    let payee_balance = ValetToken::new(a.token, valet.provider()).balanceOf(payee).call().await?;
    // What the fees cost whom, from the chain: the account's ETH and the paymaster's deposit.
    let account_balance = valet.provider().get_balance(account.address).await?;
    let fees_paid_by_account = funding.saturating_sub(account_balance);
    let fees_paid_by_paymaster = deposit_before.saturating_sub(sponsor_deposit(&valet).await?);
    story.say(format!(
        "\nThe account paid {} ETH in fees{}.",
        units(fees_paid_by_account.saturating_to(), 18),
        if sponsored {
            format!(
                " (it holds {} ETH); the paymaster's deposit paid {} ETH",
                units(account_balance.saturating_to(), 18),
                units(fees_paid_by_paymaster.saturating_to(), 18)
            )
        } else {
            String::new()
        }
    ));

    let wall = started.elapsed();
    if json {
        let doc = json!({
            "submitter": valet.submitter().kind(),
            "account": account.address,
            "owner": owner.address(),
            "session_id": mint_session.id,
            "validator": a.validator,
            "summary": summary,
            "mints_succeeded": mints,
            "mint_fees": { "budget_wei": fees.budget.to_string(), "committed_wei": fees.spent.to_string(), "paid_wei": paid.to_string(), "sponsored_wei": sponsored_cost.to_string() },
            "nft_balance": nft_balance.to::<u64>(),
            "refusals": story.refusals,
            "votes": { "session_id": vote_session.id, "cast": votes },
            "payments": { "session_id": pay_session.id, "payee": payee, "payee_balance": units(payee_balance.saturating_to(), 18) },
            "sponsored": sponsored,
            "paymaster": sponsored.then(|| devnet.paymaster()),
            "fees_paid_by_account_wei": fees_paid_by_account.to_string(),
            "fees_paid_by_paymaster_wei": fees_paid_by_paymaster.to_string(),
            "gas": story.steps,
            "wall_time_ms": wall.as_millis() as u64,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("\n{:<46} {:<9} {:>9} {:>9}", "operation", "status", "gas", "tx gas");
        for s in &story.steps {
            let show = |g: Option<String>| g.unwrap_or_else(|| "-".into());
            println!(
                "{:<46} {:<9} {:>9} {:>9}",
                s.op,
                s.status,
                show(s.gas.map(|g| g.to_string())),
                show(s.tx_gas.map(|g| g.to_string()))
            );
        }
        println!(
            "\n{mints} mints with one owner signature (the account holds {nft_balance} NFTs), {votes} votes with one \
             more, {} VLT paid over two days with a third; {} refusals, each with its reason. ({:.1} s)",
            units(payee_balance.saturating_to(), 18),
            story.refusals.len(),
            wall.as_secs_f64()
        );
        println!(
            "gas = what the EntryPoint charged the account (validation + execution + pre-verification); \
             tx gas = the whole handleOps transaction."
        );
    }
    Ok(())
}

/// Opens the demo's three DAO proposals until `deadline`: their ids and titles.
pub(crate) async fn open_proposals(devnet: &Devnet, deadline: u64) -> anyhow::Result<Vec<(u64, &'static str)>> {
    let dao = ValetDAO::new(devnet.addresses.dao, &devnet.provider);
    let mut proposals = Vec::new();
    for title in ["Fund the public goods pool", "Adopt the new logo", "Move the meetup to Lisbon"] {
        dao.propose(title.to_string(), alloy::primitives::aliases::U48::from(deadline))
            .send()
            .await?
            .get_receipt()
            .await?;
        proposals.push((dao.proposalCount().call().await?.to::<u64>(), title));
    }
    Ok(proposals)
}

/// The chain ids `valet demo --chains N` gives its local anvils, in order: the ids of chains an
/// app would list, so that the approval reads as it would there.
pub(crate) const DEMO_CHAIN_IDS: [u64; 4] = [8453, 10, 42161, 137];

/// `valet demo --chains N`: N local anvils with different chain ids, one owner signature for a
/// session on all of them, ten mints on each and the eleventh refused on each — every chain
/// counting its own uses.
pub(crate) async fn run_multichain(json: bool, alto: bool, chains: usize) -> anyhow::Result<()> {
    if !(2..=DEMO_CHAIN_IDS.len()).contains(&chains) {
        bail!("--chains {chains}: the demo runs on 2 to {} chains", DEMO_CHAIN_IDS.len());
    }
    let started = Instant::now();
    let mut story = Story::new(json, "deployed the account");
    let ids = &DEMO_CHAIN_IDS[..chains];
    story.say(format!(
        "Starting {chains} local devnets (anvil with the chain ids of {}), EntryPoint v0.7 and Valet on each…",
        ids.iter().map(|id| valet_client::chain_name(*id)).collect::<Vec<_>>().join(", ")
    ));
    let bar = story.spinner("starting".into());
    let mut devnets = Vec::with_capacity(chains);
    for id in ids {
        let devnet = Devnet::start_with(DevnetOptions { alto, chain_id: Some(*id), ..Default::default() }).await;
        devnets.push(devnet.with_context(|| format!("starting the devnet for chain {id}"))?);
    }
    bar.finish_and_clear();
    let owner = devnets[0].key(3);
    let mut valets = Vec::with_capacity(chains);
    let mut proposals = Vec::with_capacity(chains);
    let spec = SessionSpec::from_toml(DEMO_MINT_SPEC)?;
    for devnet in &devnets {
        let valet = Valet::new(devnet.provider.clone(), submitter_for(devnet).await?, devnet.deployment()).await?;
        let account = valet.account(owner.address(), U256::ZERO).await?;
        devnet.fund(account.address, U256::from(ETHER)).await?;
        let names = BTreeMap::from([("ValetNFT".to_string(), devnet.addresses.nft)]);
        let mut labels = Labels::default();
        labels.names.insert(devnet.addresses.nft, "ValetNFT".to_string());
        proposals.push(valet.propose(&account, &spec, &names, &labels).await?);
        story.say(format!(
            "  {}: anvil at {}, account {} funded with 1 ETH",
            valet_client::chain_name(valet.chain_id()),
            devnet.endpoint(),
            account.address
        ));
        valets.push((valet, account));
    }
    let proposal = valet_client::MultichainProposal::new(proposals)?;
    story.say("\nThe app asks once; the owner reads:");
    for line in &proposal.summary {
        story.say(format!("  • {line}"));
    }
    let summary = proposal.summary.clone();
    let signature = owner.sign_hash_sync(&proposal.digest)?.as_bytes();
    let grant_signatures = 1;
    let sessions = proposal.grant(&signature)?;
    story.say("The owner signs once (one EIP-712 MultichainGrant for every chain).");

    let mut per_chain = Vec::with_capacity(chains);
    for ((valet, account), session) in valets.iter().zip(&sessions) {
        let chain_id = valet.chain_id();
        let name = valet_client::chain_name(chain_id);
        let nft = devnets.iter().find(|d| d.chain_id() == chain_id).map(|d| d.addresses.nft).context("devnet")?;
        story.say(format!("\nOn {name}:"));
        let before = story.steps.len();
        for i in 1..=10u64 {
            story
                .run(
                    valet,
                    account,
                    session,
                    "mint",
                    format!("mint {i} on chain {chain_id}"),
                    &[nft_mint(nft, account.address, 1)],
                )
                .await?;
        }
        let refusals_before = story.refusals.len();
        story
            .refuse(
                (valet, account),
                session,
                "mint",
                &format!("mint 11 on chain {chain_id}"),
                &spec,
                &[nft_mint(nft, account.address, 1)],
            )
            .await?;
        for refusal in &mut story.refusals[refusals_before..] {
            refusal["chain_id"] = json!(chain_id);
        }
        let mints = story.steps[before..].iter().filter(|s| s.status == "included").count();
        let balance = ValetNFT::new(nft, valet.provider()).balanceOf(account.address).call().await?;
        story.say(format!("  The account holds {balance} NFTs on {name}."));
        per_chain.push(json!({
            "chain_id": chain_id,
            "name": name,
            "account": account.address,
            "session_id": session.id,
            "mints_succeeded": mints,
            "nft_balance": balance.to::<u64>(),
        }));
    }
    let wall = started.elapsed();
    let mints_succeeded: serde_json::Map<String, serde_json::Value> =
        per_chain.iter().map(|c| (c["chain_id"].to_string(), c["mints_succeeded"].clone())).collect();
    if json {
        let doc = json!({
            "submitter": valets[0].0.submitter().kind(),
            "account": valets[0].1.address,
            "owner": owner.address(),
            "grant_signatures": grant_signatures,
            "summary": summary,
            "chains": per_chain,
            "mints_succeeded": mints_succeeded,
            "refusals": story.refusals,
            "gas": story.steps,
            "wall_time_ms": wall.as_millis() as u64,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let total: usize = per_chain.iter().filter_map(|c| c["mints_succeeded"].as_u64()).map(|n| n as usize).sum();
        println!(
            "\n{total} mints on {chains} chains with {grant_signatures} owner signature; the eleventh refused on each, \
             each chain counting its own uses. ({:.1} s)",
            wall.as_secs_f64()
        );
    }
    Ok(())
}

/// The submitter of EIP-7702 accounts on `devnet`: EntryPoint v0.8, directly or through its Alto.
async fn submitter_7702(devnet: &Devnet) -> anyhow::Result<Arc<dyn valet_client::Submitter>> {
    Ok(match devnet.bundler_url() {
        Some(url) => Arc::new(
            valet_client::Bundler::new(valet_client::BundlerClient::new(&url, valet_core::ENTRY_POINT_V08)?)
                .with_node(devnet.provider.clone()),
        ),
        None => Arc::new(
            valet_client::Direct::new(devnet.provider_for(1), devnet.key(1).address())
                .await?
                .with_entry_point(valet_core::ENTRY_POINT_V08),
        ),
    })
}

/// `valet demo --account eip7702`: the owner's own EOA, not a new smart account. It delegates to
/// Valet's ValetAccount7702 with EIP-7702 (its address, its ETH, its NFTs stay where they are);
/// the owner signs the delegation and the grant; ten mints land at the EOA's own address, the
/// first also delegating and activating it (directly) — through Alto the EOA upgrades in an owner
/// operation first; the eleventh mint and a mint of six are refused with their reasons.
pub(crate) async fn run_eip7702(json: bool, alto: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut story = Story::new(json, "delegated and activated the EOA");
    let via = if alto { "the Alto bundler" } else { "direct submission (a relayer calls handleOps)" };
    story.say(format!(
        "Starting a local devnet (anvil with Prague, EntryPoint v0.8, Valet's EIP-7702 account), submitting through \
         {via}…"
    ));
    let bar = story.spinner("starting".into());
    let devnet = Devnet::start_with(DevnetOptions { alto, ..Default::default() }).await.context("starting the devnet");
    bar.finish_and_clear();
    let devnet = devnet?;
    let a = devnet.addresses;
    let valet = Valet::new(devnet.provider.clone(), submitter_7702(&devnet).await?, devnet.deployment_7702()).await?;
    // The owner: a plain EOA holding 1 ETH, with no code.
    let owner = devnet.key(3);
    let account = valet.account(owner.address(), U256::ZERO).await?;
    story.say(format!(
        "The owner's EOA {} holds {} ETH and no code: it will act as a smart account at its own address, delegating \
         to Valet's account {} (EIP-7702).",
        account.address,
        units(valet.provider().get_balance(account.address).await?.saturating_to(), 18),
        a.account_7702
    ));
    let names = BTreeMap::from([("ValetNFT".to_string(), a.nft)]);
    let mut labels = Labels::default();
    labels.names.insert(a.nft, "ValetNFT".to_string());
    story.labels = labels.clone();
    let mut owner_signatures = 0;
    let account = if alto {
        // A bundler cannot activate the EOA in a session's first operation: one owner operation.
        let upgraded = valet.upgrade(&account, &owner).await?;
        owner_signatures += 2; // the delegation and the operation
        story.say(format!(
            "  ✓ upgraded in one owner operation (the owner signed the delegation and the operation): gas {}",
            upgraded.actual_gas_used
        ));
        valet.account(owner.address(), U256::ZERO).await?
    } else {
        account
    };

    story.say("\nMinting NFTs with a session key");
    let spec = SessionSpec::from_toml(DEMO_MINT_SPEC)?;
    let proposal = valet.propose(&account, &spec, &names, &labels).await?;
    story.say("The app asks; the owner reads:");
    for line in &proposal.summary {
        story.say(format!("  • {line}"));
    }
    let summary = proposal.summary.clone();
    let grant = owner.sign_hash_sync(&proposal.digest)?.as_bytes();
    let delegation = valet.sign_delegation(&account, &owner).await?;
    let grant_signatures = 1;
    owner_signatures += 1 + usize::from(delegation.is_some());
    let session = proposal.grant(&grant)?.with_authorization(delegation);
    story.say(if session.authorization.is_some() {
        format!(
            "The owner signs twice: the EIP-7702 delegation (it can name only the chain, Valet's account and the EOA's \
             nonce, never a session) and the EIP-712 grant. Session {}.",
            session.id
        )
    } else {
        format!("The owner signs the EIP-712 grant once. Session {}.", session.id)
    });
    for i in 1..=10u64 {
        story
            .run(&valet, &account, &session, "mint", format!("mint {i}"), &[nft_mint(a.nft, account.address, 1)])
            .await?;
    }
    for (label, quantity) in [("mint 11", 1), ("mint of 6", 6)] {
        story
            .refuse((&valet, &account), &session, "mint", label, &spec, &[nft_mint(a.nft, account.address, quantity)])
            .await?;
    }
    let nft_balance = ValetNFT::new(a.nft, valet.provider()).balanceOf(account.address).call().await?;
    let mints = story.steps.iter().filter(|s| s.status == "included").count();
    let code = valet.provider().get_code_at(account.address).await?;
    story.say(format!(
        "The EOA {} holds {nft_balance} NFTs; its code is the delegation {code} (0xef0100 ‖ Valet's account).",
        account.address
    ));
    let wall = started.elapsed();
    if json {
        let doc = json!({
            "submitter": valet.submitter().kind(),
            "account_kind": "eip7702",
            "account": account.address,
            "owner": owner.address(),
            "delegates_to": a.account_7702,
            "entry_point": valet.deployment().entry_point,
            "session_id": session.id,
            "summary": summary,
            "grant_signatures": grant_signatures,
            "owner_signatures": owner_signatures,
            "mints_succeeded": mints,
            "nft_balance": nft_balance.to::<u64>(),
            "refusals": story.refusals,
            "gas": story.steps,
            "wall_time_ms": wall.as_millis() as u64,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "\n{mints} mints at the EOA's own address with {owner_signatures} owner signatures ({grant_signatures} grant); \
             {} refusals, each with its reason. ({:.1} s)",
            story.refusals.len(),
            wall.as_secs_f64()
        );
    }
    Ok(())
}
