//! Gas sponsorship through the real service and a real devnet: an app with a daily budget has its
//! session operations paid by the service's paymaster (an account that never held ETH runs them,
//! the paymaster's EntryPoint deposit pays, the ledger shows what the chain charged); an operation
//! the budget cannot cover is refused with 402 before anything is sent; two executions racing for
//! the last of a budget never both pass; an unknown outcome keeps its reservation until
//! reconciliation settles it, and one the chain refuses releases it; an app without a budget (or a
//! service without a paymaster) is not sponsored and a sponsored-only session says why. The
//! ERC-7677 endpoint sponsors an operation a client builds and sends itself (from the same
//! budget, settled by reconciliation) and answers bad requests with JSON-RPC errors, never a 5xx.
//!
//! Most tests share one devnet (each with its own relayer key and fresh accounts) on one runtime;
//! the race turns the devnet's automatic mining off, and Alto has a devnet of its own.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use alloy::signers::SignerSync as _;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall as _, SolEvent as _};
use serde_json::{Value, json};
use valet_client::contracts::demo::ValetNFT;
use valet_client::contracts::entry_point::EntryPoint;
use valet_client::submit::BoxFuture;
use valet_client::{
    Bundler, BundlerClient, Devnet, DevnetOptions, Direct, Erc7677, Fees, OpReceipt, Paymaster as _, SponsorSigner,
    Submitter, Valet,
};
use valet_core::spec::{Labels, SessionSpec};
use valet_core::{Call, UserOperation};
use valet_server::Service;
use valet_server::vault::{SponsoredRow, utc_day};

mod common;
use common::*;

// ------------------------------------------------------------------ the shared devnet

/// One runtime for the tests that share a devnet: its node clients live as long as it does.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
    });
    &RUNTIME
}

/// The devnet the tests share (stopped with the test process: see `valet_client::devnet`).
async fn shared_devnet() -> &'static Devnet {
    static DEVNET: tokio::sync::OnceCell<Devnet> = tokio::sync::OnceCell::const_new();
    DEVNET.get_or_init(|| async { Devnet::start().await.expect("devnet") }).await
}

/// Runs `test` on the shared runtime; its panic fails the calling test.
fn run(test: impl Future<Output = ()> + Send + 'static) {
    runtime().block_on(async {
        if let Err(e) = tokio::spawn(test).await {
            std::panic::resume_unwind(e.into_panic());
        }
    });
}

// ------------------------------------------------------------------ helpers

const ETHER: u128 = 1_000_000_000_000_000_000;

/// The mint permission; the fee rule is each test's (none: sponsored only).
const MINT: &str = "valid_for = \"1h\"\n[[permission]]\ntarget = \"ValetNFT\"\n\
                    function = \"mint(address to, uint256 quantity)\"\nrules = [{ arg = \"to\", eq = \"$account\" }]\n";
const SPONSORED_ONLY: &str = "fees = \"sponsored\"\n";

fn mint() -> Value {
    json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] })
}

/// The service on `devnet`, submitting directly from dev key `relayer`, sponsoring with `sponsor`.
async fn boot_sponsored(
    devnet: &Devnet,
    name: &str,
    relayer: usize,
    sponsor: Option<SponsorSigner>,
) -> (Server, Arc<Service>, std::path::PathBuf) {
    let (s, service, dir, _) = boot_with(devnet, name, false, None, None, relayer, move |service, _| {
        service.sponsor = sponsor;
    })
    .await;
    (s, service, dir)
}

/// Registers an app with a daily budget (wei, decimal), or none: its API key and id.
async fn app(s: &Server, name: &str, budget: Option<&str>) -> (String, String) {
    let mut request = json!({ "name": name });
    if let Some(budget) = budget {
        request["sponsorship"] = json!({ "daily_budget_wei": budget });
    }
    let (status, app) = s.call("POST", "/v1/apps", Some(ADMIN), Some(request)).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["sponsorship"]["budget_wei"].as_str(), budget, "{app}");
    (app["api_key"].as_str().expect("key").to_string(), app["id"].as_str().expect("id").to_string())
}

/// `GET /v1/sponsorship` for `key`.
async fn sponsorship(s: &Server, key: &str) -> Value {
    let (status, body) = s.call("GET", "/v1/sponsorship", Some(key), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn wei(v: &Value) -> U256 {
    v.as_str().and_then(|s| U256::from_str_radix(s, 10).ok()).unwrap_or_else(|| panic!("not wei: {v}"))
}

/// App `app`'s ledger of today.
async fn ledger(service: &Service, app: &str) -> Vec<SponsoredRow> {
    let today =
        utc_day(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64);
    service.vault.sponsored_operations(app, today).await.expect("ledger")
}

/// The `UserOperationEvent` of `hash`, and its block.
async fn op_event(devnet: &Devnet, hash: B256) -> (EntryPoint::UserOperationEvent, u64) {
    let filter = alloy::rpc::types::Filter::new()
        .address(devnet.addresses.entry_point)
        .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
        .topic1(hash)
        .from_block(0);
    let logs = devnet.provider.get_logs(&filter).await.expect("logs");
    assert_eq!(logs.len(), 1, "one event for {hash}");
    let event = EntryPoint::UserOperationEvent::decode_log(&logs[0].inner).expect("event").data;
    (event, logs[0].block_number.expect("block"))
}

/// `who`'s EntryPoint deposit at `block`.
async fn deposit_at(devnet: &Devnet, who: Address, block: u64) -> U256 {
    let entry_point = EntryPoint::new(devnet.addresses.entry_point, &devnet.provider);
    entry_point.balanceOf(who).block(BlockId::number(block)).call().await.expect("deposit")
}

async fn eth(devnet: &Devnet, who: Address) -> U256 {
    devnet.provider.get_balance(who).await.expect("balance")
}

async fn nfts(devnet: &Devnet, who: Address) -> U256 {
    ValetNFT::new(devnet.addresses.nft, &devnet.provider).balanceOf(who).call().await.expect("balanceOf")
}

/// Checks that the included execution `done` was paid by `devnet`'s paymaster: its event names
/// it, the deposit dropped by the event's actualGasCost in that block (a transaction of its own),
/// the answer's fee is that cost, and the ledger holds it as spent at that cost.
async fn paid_by_the_paymaster(devnet: &Devnet, service: &Service, app: &str, done: &Value) -> U256 {
    let hash: B256 = done["user_op_hash"].as_str().expect("hash").parse().expect("hex");
    let (event, block) = op_event(devnet, hash).await;
    assert_eq!(event.paymaster, devnet.paymaster(), "{done}");
    assert!(event.success, "{done}");
    let cost = event.actualGasCost;
    assert!(cost > U256::ZERO);
    let paymaster = devnet.paymaster();
    assert_eq!(deposit_at(devnet, paymaster, block - 1).await - deposit_at(devnet, paymaster, block).await, cost);
    assert_eq!(wei(&done["fee_wei"]), cost, "{done}");
    assert_eq!(done["paymaster"], json!(paymaster), "{done}");
    let row = service.vault.sponsored_operation(&hash.to_string()).await.expect("ledger").expect("in the ledger");
    assert_eq!((row.app_id.as_str(), row.state.as_str(), row.source.as_str()), (app, "spent", "execution"));
    assert_eq!(row.actual_cost, Some(cost));
    assert!(row.max_cost >= cost, "the reservation covered the cost: {row:?}");
    cost
}

/// Polls `check` every 250 ms until it holds, for at most `within`.
async fn eventually<F: Future<Output = bool>>(within: Duration, what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ------------------------------------------------------------------ the service's own operations

/// The main path, by direct submission: a zero-ETH account's operations paid by the paymaster
/// (a session with a fee budget of its own spends none of it; a sponsored-only one works), the
/// ledger and `GET /v1/sponsorship` showing what the chain charged; then the budget set to less
/// than an operation's maximum cost: 402 before sending, the chain unchanged; then no budget:
/// not sponsored, and a sponsored-only session says why.
#[test]
fn an_app_with_a_budget_has_its_operations_paid_by_the_paymaster() {
    run(async {
        let devnet = shared_devnet().await;
        let (s, service, dir) = boot_sponsored(devnet, "sponsored", 1, Some(devnet.sponsor())).await;
        let (key, app_id) = app(&s, "game", Some(&ETHER.to_string())).await;
        let shown = sponsorship(&s, &key).await;
        assert_eq!(shown["sponsored"], true, "{shown}");
        assert_eq!(shown["paymaster"], json!(devnet.paymaster()), "{shown}");
        assert_eq!((wei(&shown["left_wei"]), wei(&shown["spent_today_wei"])), (U256::from(ETHER), U256::ZERO));

        // A session with a fee budget of its own (0.5 ETH), on an account that never held ETH.
        let owner = PrivateKeySigner::random();
        let (budgeted, account) = granted(&s, &key, &owner, MINT).await;
        assert_eq!(eth(devnet, account).await, U256::ZERO);
        let mut spent = U256::ZERO;
        for first in [true, false] {
            let (status, done) =
                s.call("POST", &format!("/v1/sessions/{budgeted}/execute"), Some(&key), Some(mint())).await;
            assert_eq!((status, done["status"].as_str()), (200, Some("included")), "{done}");
            assert_eq!(done["detail"]["deployed_account"], first, "{done}");
            spent += paid_by_the_paymaster(devnet, &service, &app_id, &done).await;
        }
        assert_eq!(eth(devnet, account).await, U256::ZERO, "the account still holds no ETH");
        let entry_point = EntryPoint::new(devnet.addresses.entry_point, &devnet.provider);
        assert_eq!(entry_point.balanceOf(account).call().await.expect("deposit"), U256::ZERO, "nor a deposit");
        let (_, shown) = s.call("GET", &format!("/v1/sessions/{budgeted}"), Some(&key), None).await;
        assert_eq!(shown["chain"]["fees"]["spent"], "0", "the session's own fee budget is untouched: {shown}");

        // A sponsored-only session.
        let (sponsored, _) = granted(&s, &key, &owner, &format!("salt = 1\n{SPONSORED_ONLY}{MINT}")).await;
        let execute = format!("/v1/sessions/{sponsored}/execute");
        let (status, done) = s.call("POST", &execute, Some(&key), Some(mint())).await;
        assert_eq!((status, done["status"].as_str()), (200, Some("included")), "{done}");
        spent += paid_by_the_paymaster(devnet, &service, &app_id, &done).await;
        let (_, replayed) = s
            .call("GET", &format!("/v1/executions/{}", done["execution_id"].as_str().expect("id")), Some(&key), None)
            .await;
        assert_eq!(
            (replayed["fee_wei"].clone(), replayed["paymaster"].clone()),
            (done["fee_wei"].clone(), done["paymaster"].clone())
        );

        let shown = sponsorship(&s, &key).await;
        assert_eq!(wei(&shown["spent_today_wei"]), spent, "{shown}");
        assert_eq!(wei(&shown["reserved_wei"]), U256::ZERO, "{shown}");
        assert_eq!(wei(&shown["left_wei"]), U256::from(ETHER) - spent, "{shown}");
        let rows = ledger(&service, &app_id).await;
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert!(rows.iter().all(|r| r.state == "spent"), "{rows:?}");

        // One wei left: the next operation is refused before it is sent.
        let budget = spent + U256::from(1);
        let path = format!("/v1/apps/{app_id}/sponsorship");
        let (status, set) =
            s.call("PUT", &path, Some(ADMIN), Some(json!({ "daily_budget_wei": budget.to_string() }))).await;
        assert_eq!((status, wei(&set["left_wei"])), (200, U256::from(1)), "{set}");
        let session_id: B256 = sponsored.parse().expect("id");
        let nonce_key = valet_core::user_operation::validator_nonce_key(
            devnet.addresses.validator,
            valet_core::user_operation::session_lane(session_id),
        );
        let nonce = service.valet.nonce(account, nonce_key).await.expect("nonce");
        let minted = nfts(devnet, account).await;
        let (status, refused) = s.call("POST", &execute, Some(&key), Some(mint())).await;
        assert_eq!((status, refused["error"].as_str()), (402, Some("sponsorship_budget_exceeded")), "{refused}");
        let max_cost = wei(&refused["max_cost_wei"]);
        assert!(max_cost > U256::from(1));
        assert_eq!((wei(&refused["budget_wei"]), wei(&refused["left_wei"])), (budget, U256::from(1)), "{refused}");
        let message = refused["message"].as_str().expect("message");
        for shown in [budget.to_string(), "1 wei".to_string(), max_cost.to_string()] {
            assert!(message.contains(&shown), "the message names {shown}: {message}");
        }
        assert_eq!(service.valet.nonce(account, nonce_key).await.expect("nonce"), nonce, "the nonce is unused");
        assert_eq!(nfts(devnet, account).await, minted, "nothing minted");
        assert_eq!(ledger(&service, &app_id).await.len(), 3, "nothing reserved");
        let execution = refused["execution_id"].as_str().expect("the refused execution is recorded");
        let (_, recorded) = s.call("GET", &format!("/v1/executions/{execution}"), Some(&key), None).await;
        assert_eq!(recorded["status"], "refused", "{recorded}");
        assert!(recorded["detail"]["reason"].as_str().is_some_and(|r| r.contains("sponsorship budget")), "{recorded}");

        // Only the admin sets budgets, as wei in decimal, for apps that exist.
        let bad: Vec<BadCase<'_>> = vec![
            ("PUT", path.clone(), Some(&key), Some(json!({ "daily_budget_wei": "1" }).to_string()), 401),
            ("PUT", path.clone(), Some(ADMIN), Some(json!({ "daily_budget_wei": "1.5" }).to_string()), 400),
            ("PUT", path.clone(), Some(ADMIN), Some(json!({ "daily_budget_wei": "1 ether" }).to_string()), 400),
            ("PUT", path.clone(), Some(ADMIN), Some(json!({ "daily_budget_wei": 5 }).to_string()), 400),
            ("PUT", path.clone(), Some(ADMIN), Some(json!({ "daily_budget_wei": "9".repeat(79) }).to_string()), 400),
            ("PUT", path.clone(), Some(ADMIN), Some("{}".into()), 400),
            (
                "PUT",
                format!("/v1/apps/{}/sponsorship", "ab".repeat(16)),
                Some(ADMIN),
                Some(json!({ "daily_budget_wei": "1" }).to_string()),
                404,
            ),
            (
                "PUT",
                "/v1/apps/nope/sponsorship".into(),
                Some(ADMIN),
                Some(json!({ "daily_budget_wei": "1" }).to_string()),
                400,
            ),
            (
                "POST",
                "/v1/apps".into(),
                Some(ADMIN),
                Some(json!({ "name": "x", "sponsorship": { "daily_budget_wei": -1 } }).to_string()),
                400,
            ),
            ("GET", "/v1/sponsorship".into(), None, None, 401),
        ];
        for (method, path, auth, body, expected) in bad {
            let (status, answer) = s.raw(method, &path, auth, body.clone(), &[]).await;
            assert_eq!(status, expected, "{method} {path} {body:?}: {answer}");
            assert!(answer["error"].is_string() && answer["message"].is_string(), "{answer}");
        }

        // No budget: not sponsored. A sponsored-only session is refused saying why; a session
        // with a fee budget of its own has the account pay, which it cannot.
        let (status, set) = s.call("PUT", &path, Some(ADMIN), Some(json!({ "daily_budget_wei": null }))).await;
        assert_eq!((status, set["sponsored"].as_bool(), set["budget_wei"].clone()), (200, Some(false), Value::Null));
        assert!(set["reason"].as_str().is_some_and(|r| r.contains("no sponsorship budget")), "{set}");
        let (status, refused) = s.call("POST", &execute, Some(&key), Some(mint())).await;
        assert_eq!((status, refused["error"].as_str()), (422, Some("refused")), "{refused}");
        let message = refused["message"].as_str().expect("message");
        assert!(message.contains("may not spend your ETH") && message.contains("no sponsorship budget"), "{message}");
        let (status, unpaid) =
            s.call("POST", &format!("/v1/sessions/{budgeted}/execute"), Some(&key), Some(mint())).await;
        assert_eq!((status, unpaid["error"].as_str()), (422, Some("rejected_by_chain")), "{unpaid}");
        assert!(unpaid["message"].as_str().is_some_and(|m| m.contains("AA21")), "the account cannot pay: {unpaid}");
        assert_eq!(ledger(&service, &app_id).await.len(), 3, "nothing sponsored without a budget");
        assert_eq!(nfts(devnet, account).await, minted);
        let (_, metrics) = s.call("GET", "/metrics", None, None).await;
        let metrics = metrics.as_str().expect("text");
        assert!(metrics.contains("valet_sponsorships_total{outcome=\"spent\"} 3"), "{metrics}");
        assert!(metrics.contains("valet_sponsorships_total{outcome=\"refused\"} 1"), "{metrics}");
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    });
}

/// Four executions on four sessions race for what is left of a budget, one operation's maximum
/// cost and a half: exactly one is sent; the three others are refused with 402 while its
/// reservation is held (the devnet mines nothing until they have answered), and nothing of theirs
/// reaches the chain.
#[test]
fn racing_executions_never_both_take_the_last_of_a_budget() {
    run(async {
        let devnet = Devnet::start().await.expect("devnet");
        let (s, service, dir) = boot_sponsored(&devnet, "race", 1, Some(devnet.sponsor())).await;
        let s = Arc::new(s);
        let (key, app_id) = app(&s, "race", Some(&ETHER.to_string())).await;
        // Four accounts, each deployed with its session enabled, so that the racers are alike.
        let mut sessions = Vec::new();
        for _ in 0..4 {
            let owner = PrivateKeySigner::random();
            let (id, account) = granted(&s, &key, &owner, &format!("{SPONSORED_ONLY}{MINT}")).await;
            let (status, done) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
            assert_eq!(status, 200, "{done}");
            sessions.push((id, account));
        }
        // An operation like the racers', just before: its maximum cost sets what is left.
        let (status, probe) =
            s.call("POST", &format!("/v1/sessions/{}/execute", sessions[0].0), Some(&key), Some(mint())).await;
        assert_eq!(status, 200, "{probe}");
        let probe = service
            .vault
            .sponsored_operation(probe["user_op_hash"].as_str().expect("hash"))
            .await
            .expect("ledger")
            .expect("row");
        let shown = sponsorship(&s, &key).await;
        let used = wei(&shown["spent_today_wei"]) + wei(&shown["reserved_wei"]);
        let budget = used + probe.max_cost * U256::from(3) / U256::from(2);
        let (status, set) = s
            .call(
                "PUT",
                &format!("/v1/apps/{app_id}/sponsorship"),
                Some(ADMIN),
                Some(json!({ "daily_budget_wei": budget.to_string() })),
            )
            .await;
        assert_eq!(status, 200, "{set}");
        let before = ledger(&service, &app_id).await.len();
        let mut minted = U256::ZERO;
        for (_, account) in &sessions {
            minted += nfts(&devnet, *account).await;
        }

        let _: Value = devnet.provider.raw_request("evm_setAutomine".into(), [false]).await.expect("automine off");
        let racers: Vec<_> = sessions
            .iter()
            .map(|(id, _)| {
                let (s, key, path) = (s.clone(), key.clone(), format!("/v1/sessions/{id}/execute"));
                tokio::spawn(async move { s.call("POST", &path, Some(&key), Some(mint())).await })
            })
            .collect();
        // Nothing is mined yet: three answer (refused), the fourth waits for its block.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while racers.iter().filter(|r| r.is_finished()).count() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "three racers should have been refused by now");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(racers.iter().filter(|r| r.is_finished()).count(), 3, "one racer waits for its block");
        let mut answers = Vec::new();
        for racer in racers {
            while !racer.is_finished() {
                devnet.mine().await.expect("mine");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answers.push(racer.await.expect("racer"));
        }
        let _: Value = devnet.provider.raw_request("evm_setAutomine".into(), [true]).await.expect("automine on");
        let included = answers.iter().filter(|(status, body)| *status == 200 && body["status"] == "included").count();
        let refused = answers
            .iter()
            .filter(|(status, body)| *status == 402 && body["error"] == "sponsorship_budget_exceeded")
            .count();
        assert_eq!((included, refused), (1, 3), "{answers:?}");
        let mut after = U256::ZERO;
        for (_, account) in &sessions {
            after += nfts(&devnet, *account).await;
        }
        assert_eq!(after, minted + U256::from(1), "one mint");
        let rows = ledger(&service, &app_id).await;
        assert_eq!(rows.len(), before + 1, "one more operation in the ledger: {rows:?}");
        let shown = sponsorship(&s, &key).await;
        assert_eq!(wei(&shown["reserved_wei"]), U256::ZERO, "{shown}");
        assert!(wei(&shown["spent_today_wei"]) <= budget, "{shown}");
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    });
}

/// A submitter that sends nothing and says the outcome is unknown while `lose` is set (as when the
/// connection drops once the operation is out), and submits for real otherwise.
struct Losing {
    inner: Direct,
    lose: Arc<AtomicBool>,
}

impl Submitter for Losing {
    fn kind(&self) -> &'static str {
        "direct"
    }

    fn fees(&self) -> BoxFuture<'_, Result<Fees, valet_client::Error>> {
        self.inner.fees()
    }

    fn estimate<'a>(
        &'a self,
        op: &'a UserOperation,
    ) -> BoxFuture<'a, Result<valet_client::bundler::GasEstimate, valet_client::Error>> {
        self.inner.estimate(op)
    }

    fn submit<'a>(&'a self, ops: &'a [UserOperation]) -> BoxFuture<'a, Result<Vec<OpReceipt>, valet_client::Error>> {
        if self.lose.load(Ordering::SeqCst) {
            return Box::pin(async { Err(valet_client::Error::OutcomeUnknown("the answer was lost".into())) });
        }
        self.inner.submit(ops)
    }
}

/// An execution whose outcome is unknown keeps its maximum cost reserved; reconciliation sends it
/// again, finds it on chain and counts its actual cost instead.
#[test]
fn an_unknown_outcome_keeps_its_reservation_until_reconciliation_settles_it() {
    run(async {
        let devnet = shared_devnet().await;
        let lose = Arc::new(AtomicBool::new(true));
        let direct = Direct::new(devnet.provider_for(4), devnet.key(4).address()).await.expect("direct");
        let losing = Losing { inner: direct, lose: lose.clone() };
        let valet = Valet::new(devnet.provider.clone(), Arc::new(losing), devnet.deployment()).await.expect("valet");
        let sponsor = devnet.sponsor();
        let (s, service, dir, _) = boot_with(devnet, "unknown", false, None, None, 4, move |service, _| {
            service.valet = valet;
            service.sponsor = Some(sponsor);
        })
        .await;
        let (key, app_id) = app(&s, "unknown", Some(&ETHER.to_string())).await;
        let (id, account) = granted(&s, &key, &PrivateKeySigner::random(), &format!("{SPONSORED_ONLY}{MINT}")).await;
        let (status, unknown) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
        assert_eq!((status, unknown["status"].as_str()), (202, Some("unknown")), "{unknown}");
        let hash = unknown["user_op_hash"].as_str().expect("hash").to_string();
        let row = service.vault.sponsored_operation(&hash).await.expect("ledger").expect("reserved");
        assert_eq!(row.state, "reserved");
        let shown = sponsorship(&s, &key).await;
        assert_eq!(wei(&shown["reserved_wei"]), row.max_cost, "{shown}");
        assert_eq!(wei(&shown["left_wei"]), U256::from(ETHER) - row.max_cost, "{shown}");
        // Reconciliation keeps it while it cannot tell.
        service.reconcile_in_flight().await.expect("reconcile");
        let row = service.vault.sponsored_operation(&hash).await.expect("ledger").expect("row");
        assert_eq!(row.state, "reserved", "an unknown outcome is not a release");

        // The node answers again: reconciliation sends it once more (after RESEND_AFTER) and
        // settles both the execution and its sponsorship.
        lose.store(false, Ordering::SeqCst);
        let execution = format!("/v1/executions/{}", unknown["execution_id"].as_str().expect("id"));
        eventually(Duration::from_secs(40), "the execution is included", || async {
            s.call("GET", &execution, Some(&key), None).await.1["status"] == "included"
        })
        .await;
        let (event, _) = op_event(devnet, hash.parse().expect("hex")).await;
        let row = service.vault.sponsored_operation(&hash).await.expect("ledger").expect("row");
        assert_eq!((row.state.as_str(), row.actual_cost), ("spent", Some(event.actualGasCost)), "{row:?}");
        let shown = sponsorship(&s, &key).await;
        assert_eq!(wei(&shown["reserved_wei"]), U256::ZERO, "{shown}");
        assert_eq!(wei(&shown["spent_today_wei"]), event.actualGasCost, "{shown}");
        assert_eq!(eth(devnet, account).await, U256::ZERO);
        assert_eq!(ledger(&service, &app_id).await.len(), 1);
        let (_, done) = s.call("GET", &execution, Some(&key), None).await;
        assert_eq!(wei(&done["fee_wei"]), event.actualGasCost, "{done}");
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    });
}

/// A sponsor key that is not the paymaster's signer: the chain refuses the approval (AA34) before
/// anything is included, and the reservation is released.
#[test]
fn an_operation_the_chain_refuses_releases_its_reservation() {
    run(async {
        let devnet = shared_devnet().await;
        let impostor = SponsorSigner::new(devnet.paymaster(), PrivateKeySigner::random());
        let (s, service, dir) = boot_sponsored(devnet, "refused", 5, Some(impostor)).await;
        let (key, app_id) = app(&s, "refused", Some(&ETHER.to_string())).await;
        let (id, account) = granted(&s, &key, &PrivateKeySigner::random(), &format!("{SPONSORED_ONLY}{MINT}")).await;
        let (status, refused) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
        assert_eq!((status, refused["error"].as_str()), (422, Some("rejected_by_chain")), "{refused}");
        assert!(refused["message"].as_str().is_some_and(|m| m.contains("AA34")), "{refused}");
        let rows = ledger(&service, &app_id).await;
        assert_eq!(rows.iter().map(|r| r.state.as_str()).collect::<Vec<_>>(), ["released"], "{rows:?}");
        let shown = sponsorship(&s, &key).await;
        assert_eq!((wei(&shown["reserved_wei"]), wei(&shown["left_wei"])), (U256::ZERO, U256::from(ETHER)), "{shown}");
        assert_eq!(nfts(devnet, account).await, U256::ZERO);
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    });
}

/// The main path through Alto: the service submits to the bundler; the paymaster pays.
#[test]
fn an_app_with_a_budget_is_sponsored_through_alto() {
    run(async {
        let devnet =
            Devnet::start_with(DevnetOptions { alto: true, ..Default::default() }).await.expect("devnet with Alto");
        let client =
            BundlerClient::new(&devnet.bundler_url().expect("alto"), devnet.addresses.entry_point).expect("client");
        let valet = Valet::new(devnet.provider.clone(), Arc::new(Bundler::new(client)), devnet.deployment())
            .await
            .expect("valet");
        let sponsor = devnet.sponsor();
        let (s, service, dir, _) = boot_with(&devnet, "alto", false, None, None, 1, move |service, _| {
            service.valet = valet;
            service.sponsor = Some(sponsor);
        })
        .await;
        let (_, health) = s.call("GET", "/health", None, None).await;
        assert_eq!(health["submitter"], "bundler");
        let (key, app_id) = app(&s, "alto", Some(&ETHER.to_string())).await;
        let (id, account) = granted(&s, &key, &PrivateKeySigner::random(), &format!("{SPONSORED_ONLY}{MINT}")).await;
        let execute = format!("/v1/sessions/{id}/execute");
        let mut spent = U256::ZERO;
        for _ in 0..2 {
            let (status, done) = s.call("POST", &execute, Some(&key), Some(mint())).await;
            assert_eq!((status, done["status"].as_str()), (200, Some("included")), "{done}");
            spent += paid_by_the_paymaster(&devnet, &service, &app_id, &done).await;
        }
        assert_eq!(eth(&devnet, account).await, U256::ZERO);
        assert_eq!(nfts(&devnet, account).await, U256::from(2));
        let shown = sponsorship(&s, &key).await;
        assert_eq!((wei(&shown["spent_today_wei"]), wei(&shown["reserved_wei"])), (spent, U256::ZERO), "{shown}");
        // Too little left: refused before anything reaches the bundler.
        let (status, _) = s
            .call(
                "PUT",
                &format!("/v1/apps/{app_id}/sponsorship"),
                Some(ADMIN),
                Some(json!({ "daily_budget_wei": (spent + U256::from(1)).to_string() })),
            )
            .await;
        assert_eq!(status, 200);
        let (status, refused) = s.call("POST", &execute, Some(&key), Some(mint())).await;
        assert_eq!((status, refused["error"].as_str()), (402, Some("sponsorship_budget_exceeded")), "{refused}");
        assert_eq!(nfts(&devnet, account).await, U256::from(2));
        assert_eq!(ledger(&service, &app_id).await.len(), 2);
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    });
}

// ------------------------------------------------------------------ ERC-7677

/// A JSON-RPC request to `/v1/paymaster` with `key` as a Bearer token: the HTTP status and body.
async fn rpc(s: &Server, key: Option<&str>, method: &str, params: Value) -> (u16, Value) {
    let request = json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params });
    s.call("POST", "/v1/paymaster", key, Some(request)).await
}

/// An operation of `sender` with its gas limits and fees set, as a client asks data for.
fn operation(sender: Address, max_fee_per_gas: u128) -> UserOperation {
    UserOperation {
        sender,
        nonce: U256::from(1),
        call_data: alloy::primitives::Bytes::from_static(&[0xb6, 0x1d, 0x27, 0xf6]),
        call_gas_limit: 100_000,
        verification_gas_limit: 150_000,
        pre_verification_gas: U256::from(50_000),
        max_fee_per_gas,
        max_priority_fee_per_gas: 1_000_000_000,
        signature: alloy::primitives::Bytes::from(vec![0u8; 65]),
        ..UserOperation::default()
    }
}

/// A client that builds and sends its operations itself, its session key in its own hands, has
/// them sponsored through `valet_client::Erc7677` against the service (the API key in the URL):
/// the paymaster pays, and reconciliation settles the app's ledger at the actual cost.
#[test]
fn a_client_sends_its_own_operation_sponsored_through_erc7677() {
    run(async {
        let devnet = shared_devnet().await;
        let (s, service, dir) = boot_sponsored(devnet, "erc7677", 6, Some(devnet.sponsor())).await;
        let (key, app_id) = app(&s, "browser app", Some(&ETHER.to_string())).await;

        // The stub, asked directly: a throwaway signature of the final length, the sponsor named.
        let op = operation(Address::repeat_byte(0x42), 2_000_000_000);
        let chain = format!("{:#x}", devnet.chain_id());
        let (status, stub) =
            rpc(&s, Some(&key), "pm_getPaymasterStubData", json!([op, devnet.addresses.entry_point, chain, {}])).await;
        assert_eq!(status, 200, "{stub}");
        let result = &stub["result"];
        assert_eq!((stub["id"].as_u64(), result["isFinal"].as_bool()), (Some(7), Some(false)), "{stub}");
        assert_eq!(result["sponsor"]["name"], "browser app");
        assert_eq!(result["paymaster"], json!(devnet.paymaster()));
        assert_eq!(result["paymasterData"].as_str().map(str::len), Some(2 + 2 * 77), "{stub}");
        assert!(result["paymasterVerificationGasLimit"].as_str().is_some_and(|g| g.starts_with("0x")), "{stub}");
        assert!(ledger(&service, &app_id).await.is_empty(), "a stub reserves nothing");

        // The client: its own submitter (dev key 8), its own session key, the service's paymaster.
        let direct = Direct::new(devnet.provider_for(8), devnet.key(8).address()).await.expect("direct");
        let valet = Valet::new(devnet.provider.clone(), Arc::new(direct), devnet.deployment()).await.expect("valet");
        let url = format!("{}/v1/paymaster", s.url.replacen("http://", &format!("http://valet:{key}@"), 1));
        let paymaster = Erc7677::new(&url).expect("client").with_context(json!({ "app": "browser" }));
        assert!(!paymaster.name().contains(&key), "the key stays out of the client's name");
        let valet = valet.with_paymaster(Arc::new(paymaster));
        let owner = PrivateKeySigner::random();
        let account = valet.account(owner.address(), U256::ZERO).await.expect("account");
        let spec = SessionSpec::from_toml(&format!("{SPONSORED_ONLY}{MINT}")).expect("spec");
        let names = BTreeMap::from([("ValetNFT".to_string(), devnet.addresses.nft)]);
        let proposal = valet.propose(&account, &spec, &names, &Labels::default()).await.expect("propose");
        let grant = owner.sign_hash_sync(&proposal.digest).expect("sign").as_bytes();
        let session = proposal.grant(&grant).expect("grant");
        let call_data = ValetNFT::mintCall { to: account.address, quantity: U256::from(2) }.abi_encode();
        let mint = Call { target: devnet.addresses.nft, value: U256::ZERO, data: call_data.into() };
        let done = valet.execute(&account, &session, &[mint]).await.expect("sponsored through the service");
        assert!(done.receipt.success && done.deployed_account && done.enabled_session);
        assert_eq!(nfts(devnet, account.address).await, U256::from(2));
        assert_eq!(eth(devnet, account.address).await, U256::ZERO, "the account never held ETH");
        let (event, _) = op_event(devnet, done.receipt.user_op_hash).await;
        assert_eq!(event.paymaster, devnet.paymaster());

        // The service never saw it sent: its reservation is settled from the chain.
        let hash = done.receipt.user_op_hash.to_string();
        let row = service.vault.sponsored_operation(&hash).await.expect("ledger").expect("approved by the service");
        assert_eq!((row.app_id.as_str(), row.source.as_str()), (app_id.as_str(), "erc7677"));
        assert!(row.max_cost >= done.receipt.actual_gas_cost);
        eventually(Duration::from_secs(20), "reconciliation settles the ERC-7677 operation", || async {
            wei(&sponsorship(&s, &key).await["reserved_wei"]).is_zero()
        })
        .await;
        let row = service.vault.sponsored_operation(&hash).await.expect("ledger").expect("row");
        assert_eq!((row.state.as_str(), row.actual_cost), ("spent", Some(done.receipt.actual_gas_cost)), "{row:?}");
        let shown = sponsorship(&s, &key).await;
        assert_eq!(wei(&shown["spent_today_wei"]), done.receipt.actual_gas_cost, "{shown}");
        assert_eq!(ledger(&service, &app_id).await.len(), 1, "one approval: the stub reserves nothing");
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    });
}

/// What `/v1/paymaster` refuses, and how: another chain or EntryPoint and malformed params are
/// JSON-RPC errors naming the value; a request that is not JSON-RPC 2.0 is a 400; no key or an
/// unknown one a 401; another app's key is that app's budget (none here); an operation the budget
/// cannot cover is refused with the figures; an approval never used expires from the ledger; a
/// service without a paymaster sponsors nothing and says so. Never a 5xx.
#[test]
fn the_erc7677_endpoint_refuses_clearly() {
    run(async {
        let devnet = shared_devnet().await;
        // Approvals last 3 s, so that one can be seen to expire.
        let sponsor = devnet.sponsor().with_validity(Duration::from_secs(3));
        let (s, service, dir) = boot_sponsored(devnet, "erc7677-errors", 9, Some(sponsor)).await;
        let (key, app_id) = app(&s, "sponsored", Some(&ETHER.to_string())).await;
        let (other, _) = app(&s, "unsponsored", None).await;
        let entry_point = devnet.addresses.entry_point;
        let chain = format!("{:#x}", devnet.chain_id());
        let op = operation(Address::repeat_byte(0x43), 2_000_000_000);
        let data = "pm_getPaymasterData";

        let cases: Vec<(&str, Value, i64, String)> = vec![
            (data, json!([op, entry_point, "0x1", {}]), -32602, "chainId 0x1 (1)".into()),
            (data, json!([op, entry_point, 31337, {}]), -32602, "not a hex string".into()),
            (data, json!([op, Address::repeat_byte(1), chain, {}]), -32602, Address::repeat_byte(1).to_string()),
            (data, json!([op, "nowhere", chain, {}]), -32602, "\"nowhere\" is not an address".into()),
            (data, json!(["junk", entry_point, chain, {}]), -32602, "userOp".into()),
            (data, json!([{ "sender": "0x12" }, entry_point, chain, {}]), -32602, "userOp".into()),
            (data, json!([]), -32602, "0 params".into()),
            ("pm_getPaymasterStubData", json!([op]), -32602, "1 params".into()),
            ("eth_sendUserOperation", json!([op, entry_point]), -32601, "eth_sendUserOperation".into()),
        ];
        for (method, params, code, named) in cases {
            let (status, answer) = rpc(&s, Some(&key), method, params.clone()).await;
            assert_eq!(status, 200, "{method} {params}: {answer}");
            assert_eq!((answer["jsonrpc"].as_str(), answer["id"].as_u64()), (Some("2.0"), Some(7)), "{answer}");
            assert_eq!(answer["error"]["code"].as_i64(), Some(code), "{method} {params}: {answer}");
            let message = answer["error"]["message"].as_str().expect("message");
            assert!(message.contains(&named), "{method}: `{message}` names {named}");
        }
        let (status, answer) = s
            .raw(
                "POST",
                "/v1/paymaster",
                Some(&key),
                Some(json!({ "jsonrpc": "2.0", "id": "x", "method": data }).to_string()),
                &[],
            )
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_i64(), answer["id"].as_str()),
            (200, Some(-32602), Some("x")),
            "{answer}"
        );

        // Not JSON-RPC 2.0: the API's 400.
        let envelopes = [
            "{not json".to_string(),
            json!([{ "jsonrpc": "2.0", "id": 1, "method": data, "params": [] }]).to_string(),
            json!({ "jsonrpc": "1.0", "id": 1, "method": data, "params": [] }).to_string(),
            json!({ "jsonrpc": "2.0", "method": data, "params": [] }).to_string(),
            json!({ "jsonrpc": "2.0", "id": { "a": 1 }, "method": data, "params": [] }).to_string(),
            json!({ "jsonrpc": "2.0", "id": 1, "method": data, "params": { "userOp": op } }).to_string(),
            json!({ "jsonrpc": "2.0", "id": 1, "method": data, "params": null }).to_string(),
            json!({ "jsonrpc": "2.0", "id": 1, "method": data, "params": [], "extra": true }).to_string(),
        ];
        for body in envelopes {
            let (status, answer) = s.raw("POST", "/v1/paymaster", Some(&key), Some(body.clone()), &[]).await;
            assert_eq!((status, answer["error"].as_str()), (400, Some("bad_request")), "{body}: {answer}");
        }

        // Keys: none or unknown is 401; Basic credentials carry it as the password.
        let params = json!([op, entry_point, chain, {}]);
        assert_eq!(rpc(&s, None, data, params.clone()).await.0, 401);
        assert_eq!(rpc(&s, Some("valet_nope"), data, params.clone()).await.0, 401);
        let basic = |credentials: &str| {
            use alloy::transports::http::reqwest::header::AUTHORIZATION;
            let request =
                json!({ "jsonrpc": "2.0", "id": 1, "method": "pm_getPaymasterStubData", "params": params.clone() });
            s.http
                .post(format!("{}/v1/paymaster", s.url))
                .header(AUTHORIZATION, credentials.to_string())
                .json(&request)
                .send()
        };
        let encoded = base64(&format!("valet:{key}"));
        let answer: Value = basic(&format!("Basic {encoded}")).await.expect("answer").json().await.expect("json");
        assert_eq!(answer["result"]["isFinal"], false, "{answer}");
        for wrong in [
            "Basic !!!".to_string(),
            format!("Basic {}", base64("valet:valet_nope")),
            format!("Basic {}", base64(&key)),
        ] {
            assert_eq!(basic(&wrong).await.expect("answer").status(), 401, "{wrong}");
        }

        // Another app's key is that app's budget: it has none.
        let (status, answer) = rpc(&s, Some(&other), data, params.clone()).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (200, Some(-32002)), "{answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("no sponsorship budget")), "{answer}");
        assert!(ledger(&service, &app_id).await.is_empty(), "nothing reserved for anyone");

        // More than the budget: refused, with the figures (at 10^6 gwei a gas, 300,000 gas is 300 ETH).
        let costly = operation(Address::repeat_byte(0x44), 1_000_000_000_000_000);
        let (status, answer) = rpc(&s, Some(&key), data, json!([costly, entry_point, chain, {}])).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (200, Some(-32001)), "{answer}");
        let figures = &answer["error"]["data"];
        assert_eq!((wei(&figures["dailyBudgetWei"]), wei(&figures["leftWei"])), (U256::from(ETHER), U256::from(ETHER)));
        assert!(wei(&figures["maxCostWei"]) > U256::from(300u128 * ETHER), "{answer}");

        // Approved and reserved, never sent: the reservation expires with the approval.
        let (status, answer) = rpc(&s, Some(&key), data, params.clone()).await;
        assert_eq!(status, 200, "{answer}");
        let result = &answer["result"];
        assert_eq!(result["paymaster"], json!(devnet.paymaster()), "{answer}");
        let mut approved = op.clone();
        approved.paymaster = Some(devnet.paymaster());
        approved.paymaster_data = result["paymasterData"].as_str().expect("data").parse().expect("hex");
        approved.paymaster_verification_gas_limit = u128::from_str_radix(
            result["paymasterVerificationGasLimit"].as_str().expect("gas").trim_start_matches("0x"),
            16,
        )
        .expect("hex");
        approved.paymaster_post_op_gas_limit =
            u128::from_str_radix(result["paymasterPostOpGasLimit"].as_str().expect("gas").trim_start_matches("0x"), 16)
                .expect("hex");
        let hash = approved.hash(entry_point, devnet.chain_id()).to_string();
        let row = service.vault.sponsored_operation(&hash).await.expect("ledger").expect("reserved");
        assert_eq!((row.state.as_str(), row.source.as_str()), ("reserved", "erc7677"));
        assert_eq!(row.max_cost, valet_server::sponsorship::max_cost(&approved));
        let signer = devnet.sponsor();
        let digest = valet_client::paymaster::sponsor_digest(
            &approved,
            devnet.paymaster(),
            devnet.chain_id(),
            0,
            row.valid_until as u64,
        );
        let signature = alloy::primitives::Signature::try_from(&approved.paymaster_data[12..]).expect("signature");
        assert_eq!(
            signature.recover_address_from_prehash(&digest).expect("recovers"),
            signer.signer(),
            "the sponsor's approval"
        );
        assert_eq!(wei(&sponsorship(&s, &key).await["reserved_wei"]), row.max_cost);
        tokio::time::sleep(Duration::from_secs(4)).await;
        eventually(Duration::from_secs(20), "the unused approval's reservation expires", || async {
            // Blocks after validUntil (the chain's clock moves with its blocks).
            devnet.mine().await.expect("a block");
            service.vault.sponsored_operation(&hash).await.expect("ledger").is_some_and(|r| r.state == "expired")
        })
        .await;
        let shown = sponsorship(&s, &key).await;
        assert_eq!((wei(&shown["reserved_wei"]), wei(&shown["left_wei"])), (U256::ZERO, U256::from(ETHER)), "{shown}");

        // A service without a paymaster sponsors nothing, and says so everywhere.
        let (bare, _, bare_dir) = boot_sponsored(devnet, "no-sponsor", 9, None).await;
        let (key, _) = app(&bare, "budget but no paymaster", Some(&ETHER.to_string())).await;
        let shown = sponsorship(&bare, &key).await;
        assert_eq!((shown["sponsored"].as_bool(), shown["paymaster"].clone()), (Some(false), Value::Null), "{shown}");
        assert!(shown["reason"].as_str().is_some_and(|r| r.contains("without a paymaster")), "{shown}");
        let (status, answer) = rpc(&bare, Some(&key), "pm_getPaymasterStubData", params.clone()).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (200, Some(-32002)), "{answer}");
        let (id, _) = granted(&bare, &key, &PrivateKeySigner::random(), &format!("{SPONSORED_ONLY}{MINT}")).await;
        let (status, refused) =
            bare.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
        assert_eq!((status, refused["error"].as_str()), (422, Some("refused")), "{refused}");
        assert!(refused["message"].as_str().is_some_and(|m| m.contains("without a paymaster")), "{refused}");
        drop((s, bare));
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(bare_dir);
    });
}

/// Standard base64 with padding, for Basic credentials.
fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The paymaster's address, which `/config.json` and `GET /v1/sponsorship` now show, is a
/// contract that takes no ETH: the devnet faucet's transfer to it is refused, and the faucet
/// still works afterwards (found by schemathesis: the refused transfer used up a nonce of the
/// wallet's nonce cache, and every later transfer waited behind the gap).
#[test]
fn a_refused_faucet_transfer_leaves_the_faucet_working() {
    run(async {
        let devnet = shared_devnet().await;
        let ether = U256::from(ETHER);
        let faucet = valet_server::Faucet::new(devnet.provider_for(2), ether, Some((devnet.addresses.token, ether)))
            .with_sender(devnet.key(2).address());
        for _ in 0..2 {
            match faucet.fund(devnet.paymaster(), true).await {
                Err(valet_server::web::FaucetError::Rejected(_)) => {}
                other => panic!("expected the paymaster to refuse ETH, got {other:?}"),
            }
        }
        for _ in 0..2 {
            let to = PrivateKeySigner::random().address();
            let sent = tokio::time::timeout(Duration::from_secs(10), faucet.fund(to, true)).await;
            assert_eq!(sent.expect("funded within 10 s").expect("funded").len(), 2);
            assert_eq!(eth(devnet, to).await, ether);
        }
    });
}

// ------------------------------------------------------------------ PostgreSQL

/// The PostgreSQL migration, and reservations racing for the last of a budget across many
/// connections (as several instances would): exactly as many pass as the budget covers.
#[test]
fn reservations_never_overspend_on_postgresql() {
    run(async {
        let postgres = Postgres::start("sponsorship-postgres");
        let vault = valet_server::Vault::connect(&postgres.url).await.expect("vault");
        let (app, _) = vault.create_app("pg").await.expect("app");
        assert!(vault.set_sponsorship_budget(&app.id, Some(U256::from(1_000))).await.expect("budget"));
        let racers: Vec<_> = (0..24u8)
            .map(|n| {
                let (vault, app) = (vault.clone(), app.id.clone());
                tokio::spawn(async move {
                    let hash = format!("0x{}", alloy::hex::encode([n; 32]));
                    let reservation = valet_server::vault::NewReservation {
                        app: &app,
                        day: 20_000,
                        user_op_hash: &hash,
                        source: "erc7677",
                        execution_id: None,
                        sender: "0x0000000000000000000000000000000000000001",
                        max_cost: U256::from(300),
                        valid_until: 1_800_000_000,
                    };
                    vault.reserve_sponsorship(&reservation).await.expect("reserve")
                })
            })
            .collect();
        let mut reserved = 0;
        for racer in racers {
            reserved += usize::from(racer.await.expect("racer") == valet_server::vault::Reservation::Reserved);
        }
        assert_eq!(reserved, 3);
        let usage = vault.sponsorship_usage(&app.id, 20_000).await.expect("usage");
        assert_eq!((usage.reserved, usage.left()), (U256::from(900), U256::from(100)));
        // Settled: the actual cost counts instead of the maximum.
        let rows = vault.sponsored_operations(&app.id, 20_000).await.expect("ledger");
        assert_eq!(rows.len(), 3);
        assert!(vault.sponsorship_spent(&rows[0].user_op_hash, U256::from(120), Some("0xabc")).await.expect("spent"));
        assert!(vault.end_sponsorship(&rows[1].user_op_hash, "expired").await.expect("expired"));
        let usage = vault.sponsorship_usage(&app.id, 20_000).await.expect("usage");
        assert_eq!((usage.spent, usage.reserved, usage.left()), (U256::from(120), U256::from(300), U256::from(580)));
        drop(postgres);
    });
}
