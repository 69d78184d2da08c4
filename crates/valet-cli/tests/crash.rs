//! Crash safety of `valet serve`, end to end against real processes: a devnet (`valet devnet
//! --json`), the service on it (`valet serve`), a session granted over HTTP, then a burst of
//! concurrent executions, each with its own Idempotency-Key, during which the service is killed
//! with SIGKILL. Restarted on the same data directory, the service reconciles what was in flight;
//! every request is sent again with its key, and the test checks that nothing executed twice (the
//! NFT balance and the UserOperation events on chain, the execution ids, the audit log) and that
//! the session survived. The invariants hold whatever the moment of the kill:
//! `VALET_CRASH_KILL_MS=N` kills N ms into the burst (default: a random moment, printed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use alloy::transports::http::reqwest;
use serde_json::{Value, json};
use valet_client::contracts::demo::ValetNFT;
use valet_client::contracts::entry_point::EntryPoint;

mod common;
use common::*;

const MINT: &str = "mint(address to, uint256 quantity)";

/// Mints to the account, any quantity, any number of times, for an hour.
const SPEC: &str = r#"
valid_for = "1h"

[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "to", eq = "$account" }]

[fees]
budget = "1 ether"
"#;

/// The test's admin token (32 characters).
const ADMIN: &str = "crash-test-admin-token-0123456789";

/// How many concurrent executions are in flight when the service is killed.
const BURST: usize = 24;

/// What the devnet printed that the test uses.
struct Chain {
    rpc_url: String,
    validator: String,
    factory: String,
    nft: Address,
    entry_point: Address,
    keys: Vec<PrivateKeySigner>,
}

impl Chain {
    fn from(info: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_else(|| panic!("expected a string, got {v} in {info}")).to_string();
        let address = |v: &Value| text(v).parse::<Address>().unwrap_or_else(|e| panic!("{v}: {e}"));
        let devnet = &info["devnet"];
        let keys = info["dev_keys"]
            .as_array()
            .unwrap_or_else(|| panic!("no dev_keys in {info}"))
            .iter()
            .map(|k| text(&k["private_key"]).parse::<PrivateKeySigner>().expect("a dev key"))
            .collect();
        Self {
            rpc_url: text(&devnet["rpc_url"]),
            validator: text(&devnet["validator"]),
            factory: text(&devnet["factory"]),
            nft: address(&devnet["names"]["ValetNFT"]),
            entry_point: address(&devnet["entry_point"]),
            keys,
        }
    }

    fn key_hex(&self, i: usize) -> String {
        alloy::hex::encode_prefixed(self.keys[i].to_bytes())
    }

    fn provider(&self, key: usize) -> DynProvider {
        let url = self.rpc_url.parse().expect("the devnet's URL");
        ProviderBuilder::new().wallet(EthereumWallet::from(self.keys[key].clone())).connect_http(url).erased()
    }
}

/// Starts `valet serve` on the devnet, with its data in `dir`; `run` names its log.
fn serve(chain: &Chain, dir: &Path, run: usize) -> Proc {
    let relayer = chain.key_hex(1);
    let canonical = valet_client::deploy::canonical();
    assert_eq!(chain.validator.parse::<Address>().ok(), Some(canonical.validator), "the devnet's validator");
    assert_eq!(chain.factory.parse::<Address>().ok(), Some(canonical.factory), "the devnet's factory");
    let data_dir = dir.join("serve");
    let name = format!("ValetNFT={}", chain.nft);
    let args = [
        "serve",
        "--json",
        // Any free port on loopback; the contracts at their canonical addresses (the devnet's),
        // so no --validator/--factory.
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().expect("a UTF-8 path"),
        "--rpc-url",
        &chain.rpc_url,
        "--relayer-key",
        &relayer,
        "--name",
        &name,
    ];
    let proc = Proc::start(
        &format!("valet serve (run {run})"),
        valet(&args, &[("VALET_ADMIN_TOKEN", ADMIN)]),
        dir.join(format!("serve-{run}.log")),
    );
    let url = proc.info["url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "listening where --listen says: {}",
        proc.info
    );
    proc
}

impl Api {
    /// One mint of 1 to the account, with `key` as its Idempotency-Key (if any).
    async fn mint(&self, session: &str, key: Option<&str>) -> Result<Answer, String> {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        self.call("POST", &format!("/v1/sessions/{session}/execute"), Some(mint_body()), &headers).await
    }
}

/// The same bytes every time (the service checks a replay's body by its hash).
fn mint_body() -> String {
    json!({ "calls": [{ "to": "ValetNFT", "function": MINT, "args": ["$account", 1] }] }).to_string()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("an HTTP client")
}

/// How an idempotency key finally stands after the restart.
#[derive(Debug, Clone)]
struct Final {
    execution_id: String,
    status: String,
    user_op_hash: Option<String>,
    replayed: bool,
    /// Settled by the restart's reconciliation (rather than by the request that started it).
    reconciled: bool,
}

/// What one crash round saw.
struct Round {
    kill: Kill,
    killed_at: Duration,
    answered: usize,
    in_flight: usize,
    reconciled: u64,
    resend: Duration,
}

/// When to kill the service during a burst.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Once this many requests are answered, this much later (or after 20 s whatever happened).
    After { answers: usize, then: Duration },
    /// This long after the burst starts (`VALET_CRASH_KILL_MS`).
    At(Duration),
}

impl Kill {
    /// Round `round`'s moment: a random one in the round's share of the burst (counted in
    /// answered requests, so that it does not depend on the machine's speed), up to about one
    /// execution after that many answers; the rounds together cover the whole burst.
    fn for_round(round: usize) -> Self {
        if let Ok(ms) = std::env::var("VALET_CRASH_KILL_MS") {
            return Self::At(Duration::from_millis(ms.parse().expect("VALET_CRASH_KILL_MS is a number of ms")));
        }
        let share = BURST / ROUNDS;
        let answers = round * share + rand::random::<u64>() as usize % share;
        Self::After { answers, then: Duration::from_micros(rand::random::<u64>() % 30_000) }
    }

    /// Waits for the moment, from `start`, with `answered` counting the answers.
    async fn wait(self, start: Instant, answered: &AtomicUsize) {
        match self {
            Self::At(after) => tokio::time::sleep_until((start + after).into()).await,
            Self::After { answers, then } => {
                let deadline = start + Duration::from_secs(20);
                while answered.load(Ordering::SeqCst) < answers && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                tokio::time::sleep(then).await;
            }
        }
    }
}

/// One line on what happened to a request before the kill.
fn brief(answer: &Result<Answer, String>) -> String {
    match answer {
        Ok((status, body)) => format!("{status} {} {}", body["status"], body["execution_id"]),
        Err(e) if e.contains("IncompleteMessage") => "in flight (the kill closed the connection)".into(),
        Err(e) => format!("no answer: {e}"),
    }
}

/// Crash rounds: each kills the service during a burst of its own keys, then restarts it.
const ROUNDS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_executes_twice_when_the_service_is_killed_mid_burst() {
    let started = Instant::now();
    let dir = TempDir::new("crash-test");
    let home = dir.0.join("home");
    std::fs::create_dir_all(&home).expect("VALET_HOME");

    // 1. The devnet, stopped by its PID whatever happens.
    let devnet = Proc::start(
        "valet devnet",
        valet(&["devnet", "--json"], &[("VALET_HOME", home.to_str().expect("a UTF-8 path"))]),
        dir.0.join("devnet.log"),
    );
    let chain = Chain::from(&devnet.info);
    let reader = ProviderBuilder::new().connect_http(chain.rpc_url.parse().expect("URL")).erased();

    // 2. The service.
    let mut runs = 1;
    let mut service = serve(&chain, &dir.0, runs);
    assert_eq!(service.info["reconciled"], 0, "a fresh data dir has nothing to reconcile: {}", service.info);
    let http = http_client();
    let url = service.info["url"].as_str().expect("url").to_string();

    // 3. An app, the owner's account (funded), a session granted by the owner, one mint.
    let admin = Api { url: url.clone(), http: http.clone(), key: ADMIN.to_string() };
    let (status, app) = admin.must("POST", "/v1/apps", Some(json!({ "name": "crash-test" }))).await;
    assert_eq!(status, 201, "{app}");
    let mut api = Api { url, http, key: app["api_key"].as_str().expect("api_key").to_string() };
    let owner = chain.keys[3].clone();
    let (status, account) = api.must("GET", &format!("/v1/accounts/{}", owner.address()), None).await;
    assert_eq!(status, 200, "{account}");
    let account: Address = account["address"].as_str().expect("address").parse().expect("an address");
    let funding = TransactionRequest::default().to(account).value(U256::from(10u128.pow(18)));
    chain.provider(2).send_transaction(funding).await.expect("funding").get_receipt().await.expect("funded");

    let (status, proposed) =
        api.must("POST", "/v1/sessions", Some(json!({ "owner": owner.address(), "spec": SPEC }))).await;
    assert_eq!(status, 201, "{proposed}");
    let session = proposed["session_id"].as_str().expect("session_id").to_string();
    let digest: B256 = proposed["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("signs").as_bytes());
    let (status, granted) =
        api.must("POST", &format!("/v1/sessions/{session}/grant"), Some(json!({ "signature": signature }))).await;
    assert_eq!((status, granted["status"].as_str()), (200, Some("active")), "{granted}");

    let t = Instant::now();
    let (status, minted) = api.mint(&session, None).await.expect("the first mint is answered");
    assert_eq!((status, minted["status"].as_str()), (200, Some("included")), "{minted}");
    assert_eq!(minted["detail"]["deployed_account"], true, "{minted}");
    let one_mint = t.elapsed();
    let first_op_hash = minted["user_op_hash"].as_str().expect("user_op_hash").to_string();

    let mut anomalies: Vec<String> = Vec::new();
    let mut logs: Vec<String> = Vec::new();
    let mut rounds: Vec<Round> = Vec::new();
    let mut before: BTreeMap<String, Result<Answer, String>> = BTreeMap::new();
    let mut finals: BTreeMap<String, Final> = BTreeMap::new();
    for round in 0..ROUNDS {
        // 4. The burst, and SIGKILL in the middle of it.
        let keys: Vec<String> = (0..BURST).map(|i| format!("r{round}-k{i}")).collect();
        let kill = Kill::for_round(round);
        let answered = Arc::new(AtomicUsize::new(0));
        let burst_start = Instant::now();
        let tasks: Vec<_> = keys
            .iter()
            .map(|key| {
                let (api, session, key, answered) = (api.clone(), session.clone(), key.clone(), answered.clone());
                tokio::spawn(async move {
                    let answer = api.mint(&session, Some(&key)).await;
                    if answer.is_ok() {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    answer
                })
            })
            .collect();
        kill.wait(burst_start, &answered).await;
        let killed_at = burst_start.elapsed();
        let answered_at_kill = answered.load(Ordering::SeqCst);
        let killed = service.kill();
        assert!(!killed.success(), "SIGKILL ends valet serve: {killed}");
        logs.push(service.stderr());
        let mut in_flight = 0;
        for (key, task) in keys.iter().zip(tasks) {
            let answer = task.await.expect("the request task");
            match &answer {
                Err(_) => in_flight += 1,
                Ok((200, body)) if body["status"] == "included" => {}
                Ok((status, body)) => anomalies.push(format!("{key}: before the kill, answered {status} {body}")),
            }
            before.insert(key.clone(), answer);
        }

        // 5. The restart: it reconciles what the kill left pending; then every request again.
        runs += 1;
        service = serve(&chain, &dir.0, runs);
        let reconciled = service.info["reconciled"].as_u64().unwrap_or_else(|| panic!("reconciled: {}", service.info));
        api.url = service.info["url"].as_str().expect("url").to_string();
        let resend_start = Instant::now();
        let tasks: Vec<_> = keys
            .iter()
            .map(|key| {
                let (api, session, key) = (api.clone(), session.clone(), key.clone());
                tokio::spawn(async move { api.mint(&session, Some(&key)).await })
            })
            .collect();
        for (key, task) in keys.iter().zip(tasks) {
            let (status, body) = match task.await.expect("the request task") {
                Ok(answer) => answer,
                Err(e) => {
                    anomalies.push(format!("{key}: after the restart, no answer: {e}"));
                    continue;
                }
            };
            let text = |field: &str| body[field].as_str().map(str::to_string);
            let replayed = body["replayed"] == true;
            let state = text("status").unwrap_or_default();
            let acceptable = match (status, state.as_str()) {
                (200, "included") => true,
                // Recorded as failed (e.g. interrupted before anything was sent): acceptable if
                // nothing was minted for it, which the checks below make sure of.
                (422, "failed") => replayed,
                _ => false,
            };
            let Some(execution_id) = text("execution_id").filter(|_| acceptable) else {
                anomalies.push(format!("{key}: after the restart, answered {status} {body}"));
                continue;
            };
            if let Some(Ok((_, first))) = before.get(key) {
                if first["execution_id"].as_str() != Some(&execution_id) {
                    anomalies.push(format!(
                        "{key}: answered execution {} before the kill, {execution_id} after the restart",
                        first["execution_id"]
                    ));
                }
                if !replayed {
                    anomalies.push(format!("{key}: answered before the kill, executed again after it: {body}"));
                }
            }
            let reconciled = body["detail"]["reconciled"] == true;
            let user_op_hash = text("user_op_hash");
            finals.insert(key.clone(), Final { execution_id, status: state, user_op_hash, replayed, reconciled });
        }
        rounds.push(Round {
            kill,
            killed_at,
            answered: answered_at_kill,
            in_flight,
            reconciled,
            resend: resend_start.elapsed(),
        });
    }

    // Once more, every key of every round: each answer must now replay the same execution.
    for (key, done) in &finals {
        match api.mint(&session, Some(key)).await {
            Ok((_, body)) if body["replayed"] == true && body["execution_id"] == done.execution_id.as_str() => {}
            other => anomalies.push(format!("{key}: a second replay answered {other:?}, not {}", done.execution_id)),
        }
    }

    // 6. The invariants.
    // (a) The session survived, and still works.
    let (status, shown) = api.must("GET", &format!("/v1/sessions/{session}"), None).await;
    assert_eq!(status, 200, "{shown}");
    let (status, after) = api.mint(&session, Some("after-the-crashes")).await.expect("a mint after the crashes");
    let after_ok = status == 200 && after["status"] == "included";
    let after_op_hash = after["user_op_hash"].as_str().unwrap_or_default().to_string();

    // (b) Nothing executed twice: one execution per key, each included one minted exactly once.
    let ids: BTreeSet<&str> = finals.values().map(|f| f.execution_id.as_str()).collect();
    let included: Vec<&Final> = finals.values().filter(|f| f.status == "included").collect();
    let failed: Vec<(&String, &Final)> = finals.iter().filter(|(_, f)| f.status != "included").collect();
    let balance = ValetNFT::new(chain.nft, &reader).balanceOf(account).call().await.expect("balanceOf");
    let events = UserOperationEvents::read(&reader, chain.entry_point, account).await;
    let (status, audit) = api.must("GET", &format!("/v1/audit?session_id={session}&limit=1000"), None).await;
    assert_eq!(status, 200, "{audit}");
    let audit: Vec<&Value> = audit["events"].as_array().expect("events").iter().collect();
    let audit_included = audit.iter().filter(|e| e["event"] == "execution.included").count();
    // The first mint, the bursts' included executions, the mint after the crashes.
    let expected = 1 + included.len() + usize::from(after_ok);

    println!("crash test: one mint took {one_mint:?}; {ROUNDS} rounds of {BURST} concurrent mints, SIGKILL in each:");
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "  round {i}: killed at {:?} ({:?}) with {} answered, {} in flight; the restart reconciled {}; re-sending \
             took {:?}",
            r.killed_at, r.kill, r.answered, r.in_flight, r.reconciled, r.resend
        );
    }
    println!(
        "  in all: {} keys, {} included ({} replayed), {} failed; balance {balance}, {} UserOperationEvents \
         ({} failed), {audit_included} execution.included audit events; {:?}",
        finals.len(),
        included.len(),
        finals.values().filter(|f| f.replayed).count(),
        failed.len(),
        events.all.len(),
        events.failed,
        started.elapsed(),
    );
    for (key, f) in &failed {
        println!("  {key}: {} {} (userOp {:?})", f.status, f.execution_id, f.user_op_hash);
    }
    let mut problems = anomalies;
    if shown["status"] != "active" || shown["usable"] != true {
        problems.push(format!("the session is not active and usable after the crashes: {shown}"));
    }
    if !after_ok {
        problems.push(format!("a mint after the crashes answered {status} {after}"));
    }
    if ids.len() != finals.len() {
        problems.push(format!("{} keys share {} execution ids", finals.len(), ids.len()));
    }
    if balance != U256::from(expected) {
        problems.push(format!(
            "the account holds {balance} NFTs, but {expected} executions are included (1 + {} + {})",
            included.len(),
            usize::from(after_ok)
        ));
    }
    if events.all.len() != expected || events.failed != 0 {
        problems.push(format!(
            "{} UserOperationEvents ({} failed) for the account, but {expected} executions are included",
            events.all.len(),
            events.failed
        ));
    }
    // Each included execution's operation is on chain exactly once; a failed one's is not there.
    let mut expected_hashes: Vec<String> = included.iter().filter_map(|f| f.user_op_hash.clone()).collect();
    expected_hashes.push(first_op_hash);
    if after_ok {
        expected_hashes.push(after_op_hash);
    }
    for hash in &expected_hashes {
        let on_chain = events.all.iter().filter(|h| h.eq_ignore_ascii_case(hash)).count();
        if on_chain != 1 {
            problems.push(format!("included userOp {hash} is on chain {on_chain} times"));
        }
    }
    for (key, f) in &failed {
        if let Some(hash) = &f.user_op_hash
            && events.all.iter().any(|h| h.eq_ignore_ascii_case(hash))
        {
            problems.push(format!("{key} is recorded as {} but its userOp {hash} is on chain", f.status));
        }
    }
    // (c) The audit log lists each included execution once: those included by their request name
    // their userOp; those the reconciliation settled say so.
    if audit_included != expected {
        problems
            .push(format!("{audit_included} execution.included audit events, but {expected} executions are included"));
    }
    let included_events: Vec<&Value> = audit.iter().copied().filter(|e| e["event"] == "execution.included").collect();
    for (key, f) in finals.iter().filter(|(_, f)| f.status == "included" && !f.reconciled) {
        let hash = f.user_op_hash.as_deref().unwrap_or_default();
        let events = included_events.iter().filter(|e| e["detail"]["user_op_hash"] == hash).count();
        if events != 1 {
            problems.push(format!(
                "{key}: execution {} (userOp {hash}) is included, but {events} execution.included audit events name it",
                f.execution_id
            ));
        }
    }
    let reconciled_included = finals.values().filter(|f| f.status == "included" && f.reconciled).count();
    let reconciled_events = included_events.iter().filter(|e| e["detail"]["reconciled"] == true).count();
    if reconciled_events != reconciled_included {
        problems.push(format!(
            "{reconciled_included} executions were included by the reconciliation, but {reconciled_events} \
             execution.included audit events say so"
        ));
    }

    // No panic, and the last run of the service stops on SIGTERM.
    let stopped = service.stop();
    logs.push(service.stderr());
    for (run, log) in logs.iter().enumerate() {
        if log.contains("panicked") {
            problems.push(format!("valet serve (run {}) panicked:\n{log}", run + 1));
        }
    }
    if !stopped.success() {
        problems.push(format!("valet serve (run {runs}) exited {stopped} on SIGTERM:\n{}", service.stderr()));
    }
    if !problems.is_empty() {
        let audit: Vec<String> = audit.iter().map(|e| e.to_string()).collect();
        let keys: Vec<String> = before
            .iter()
            .map(|(key, answer)| format!("{key}: before the kill {}; after: {:?}", brief(answer), finals.get(key)))
            .collect();
        panic!(
            "{} problem(s):\n  {}\nkeys:\n  {}\naudit:\n  {}\n(the service's data: {})",
            problems.len(),
            problems.join("\n  "),
            keys.join("\n  "),
            audit.join("\n  "),
            dir.0.join("serve").display()
        );
    }
    drop(service);
    drop(devnet);
}

/// The EntryPoint's UserOperationEvents for one sender.
struct UserOperationEvents {
    /// Their userOpHashes, in order.
    all: Vec<String>,
    /// How many report a failed execution.
    failed: usize,
}

impl UserOperationEvents {
    async fn read(provider: &DynProvider, entry_point: Address, sender: Address) -> Self {
        let filter = Filter::new()
            .address(entry_point)
            .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
            .topic2(sender.into_word())
            .from_block(0);
        let logs = provider.get_logs(&filter).await.expect("the EntryPoint's logs");
        let mut all = Vec::new();
        let mut failed = 0;
        for log in &logs {
            let event = EntryPoint::UserOperationEvent::decode_log(&log.inner).expect("a UserOperationEvent");
            all.push(event.userOpHash.to_string());
            failed += usize::from(!event.success);
        }
        Self { all, failed }
    }
}
