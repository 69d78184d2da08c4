//! Faults between the service and its node: a loopback TCP proxy that drops connections, loses
//! answers after the node acted on the request, refuses chosen methods, or stalls. Whatever it does,
//! what the service reports never contradicts the chain, and once the node is back nothing stays
//! unknown: every execution reported included is on chain, and every operation on chain is one
//! reported included.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use alloy::signers::SignerSync as _;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use valet_client::contracts::demo::ValetNFT;
use valet_client::contracts::entry_point::EntryPoint;
use valet_client::{Devnet, Direct, Valet};

mod common;
use common::*;

const MINT_ANY: &str = "valid_for = \"1h\"\n[[permission]]\ntarget = \"ValetNFT\"\n\
                        function = \"mint(address to, uint256 quantity)\"\nrules = [{ arg = \"to\", eq = \"$account\" }]\n";

fn mint() -> Value {
    json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] })
}

/// What the proxy does to traffic.
#[derive(Default)]
struct Faults {
    /// Close every connection, and each new one at once.
    cut: bool,
    /// Hold every connection open and forward nothing.
    stall: bool,
    /// Requests naming one of these methods are dropped before the node sees them (so many times).
    refuse: BTreeMap<String, usize>,
    /// Requests naming one of these methods reach the node; its answer is lost (so many times).
    lose_answer: BTreeMap<String, usize>,
    /// Hooks, in order: the first is run (once) before the first request containing its text is
    /// forwarded (a front-runner, a delay), then the next one waits for its text.
    before: std::collections::VecDeque<(String, Hook)>,
}

type Hook = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A loopback TCP proxy in front of the devnet's node.
struct Proxy {
    url: String,
    faults: Arc<Mutex<Faults>>,
    /// Connections closed by a fault.
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(devnet: &Devnet) -> Self {
        let node: u16 =
            devnet.endpoint().trim_end_matches('/').rsplit(':').next().expect("port").parse().expect("port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (f, h) = (faults.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(pipe(client, node, f.clone(), h.clone()));
            }
        });
        Self { url, faults, hits, task }
    }

    fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().expect("faults"));
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards one connection both ways, applying the faults.
async fn pipe(mut client: TcpStream, node: u16, faults: Arc<Mutex<Faults>>, hits: Arc<AtomicUsize>) {
    let hit = || {
        hits.fetch_add(1, Ordering::SeqCst);
    };
    if faults.lock().expect("faults").cut {
        return hit();
    }
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", node)).await else { return };
    let (mut client_read, mut client_write) = client.split();
    let (mut node_read, mut node_write) = upstream.split();
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut losing = false;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    loop {
        let (cut, stall) = {
            let f = faults.lock().expect("faults");
            (f.cut, f.stall)
        };
        if cut {
            return hit();
        }
        if stall {
            tick.tick().await;
            continue;
        }
        tokio::select! {
            n = client_read.read(&mut up) => {
                let Ok(n @ 1..) = n else { return };
                let text = String::from_utf8_lossy(&up[..n]).into_owned();
                {
                    let mut f = faults.lock().expect("faults");
                    let named = |methods: &mut BTreeMap<String, usize>| {
                        methods.iter_mut().find(|(m, left)| **left > 0 && text.contains(&format!("\"{m}\""))).map(|(_, left)| *left -= 1).is_some()
                    };
                    if f.cut || named(&mut f.refuse) {
                        drop(f);
                        return hit();
                    }
                    losing |= named(&mut f.lose_answer);
                }
                let hook = {
                    let mut f = faults.lock().expect("faults");
                    match f.before.front() {
                        Some((marker, _)) if text.contains(marker.as_str()) => f.before.pop_front().map(|(_, run)| run),
                        _ => None,
                    }
                };
                if let Some(run) = hook {
                    run.await;
                }
                if node_write.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            n = node_read.read(&mut down) => {
                let Ok(n @ 1..) = n else { return };
                if losing || faults.lock().expect("faults").cut {
                    return hit();
                }
                if client_write.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {}
        }
    }
}

/// The service with its node behind `proxy` (reads, the direct submitter and revocations alike).
async fn boot_behind(devnet: &Devnet, proxy: &Proxy, name: &str) -> (Server, Arc<valet_server::Service>) {
    let relayer = 1;
    let provider = valet_client::rpc::http_provider(&proxy.url).expect("provider");
    let wallet = valet_client::rpc::http_wallet_provider(&proxy.url, devnet.key(relayer)).expect("wallet");
    let direct = Direct::new(wallet, devnet.key(relayer).address()).await.expect("direct");
    let revoker = direct.relayer();
    let valet = Valet::new(provider, Arc::new(direct), devnet.deployment()).await.expect("valet");
    let (s, service, _, _) = boot_with(devnet, name, false, None, None, relayer, move |service, _| {
        service.valet = valet;
        service.relayer = Some(revoker);
    })
    .await;
    (s, service)
}

async fn nfts(devnet: &Devnet, account: Address) -> U256 {
    ValetNFT::new(devnet.addresses.nft, &devnet.provider).balanceOf(account).call().await.expect("balanceOf")
}

/// The userOpHashes of `account`'s successful operations on chain, read from the node directly.
async fn on_chain(devnet: &Devnet, account: Address) -> BTreeSet<B256> {
    let filter = alloy::rpc::types::Filter::new()
        .address(valet_core::ENTRY_POINT_V07)
        .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
        .topic2(account.into_word())
        .from_block(0);
    let logs = devnet.provider.get_logs(&filter).await.expect("logs");
    logs.iter()
        .map(|l| EntryPoint::UserOperationEvent::decode_log(&l.inner).expect("event"))
        .filter(|e| e.success)
        .map(|e| e.userOpHash)
        .collect()
}

/// Polls `GET /v1/executions/{id}` until its status is no longer unknown (or 30 s pass).
async fn settled(s: &Server, key: &str, id: &str) -> Value {
    for _ in 0..300 {
        let (status, body) = s.call("GET", &format!("/v1/executions/{id}"), Some(key), None).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] != "unknown" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} still unknown after 30 s");
}

/// The node executes the handleOps but its answer is lost: the service says "unknown" (202, not
/// "failed"), finds the operation on chain by itself, and a retry with the same key says included.
#[tokio::test]
async fn an_answer_lost_after_sending_is_unknown_until_the_chain_says() {
    let devnet = Devnet::start().await.expect("devnet");
    let proxy = Proxy::start(&devnet).await;
    let (s, _) = boot_behind(&devnet, &proxy, "faults-lost").await;
    let key = app_key(&s, "faults").await;
    let (id, account) = granted(&s, &key, &PrivateKeySigner::random(), MINT_ANY).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let execute = format!("/v1/sessions/{id}/execute");
    let headers = [("idempotency-key", "lost-1"), ("content-type", "application/json")];

    proxy.set(|f| {
        f.lose_answer.insert("eth_sendRawTransaction".into(), 1);
    });
    let (status, body) = s.raw("POST", &execute, Some(&key), Some(mint().to_string()), &headers).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("unknown")), "{body}");
    assert_eq!(proxy.hits(), 1, "the answer to the handleOps transaction was lost");
    let execution = body["execution_id"].as_str().expect("execution id");
    assert_eq!(body["check"], format!("/v1/executions/{execution}"));

    let found = settled(&s, &key, execution).await;
    assert_eq!(found["status"], "included", "{found}");
    assert_eq!(nfts(&devnet, account).await, U256::from(1), "minted once");
    let hashes = on_chain(&devnet, account).await;
    let hash: B256 = found["user_op_hash"].as_str().expect("hash").parse().expect("hex");
    assert_eq!(hashes, BTreeSet::from([hash]), "the operation the service reports is the one on chain");

    let (status, replay) = s.raw("POST", &execute, Some(&key), Some(mint().to_string()), &headers).await;
    assert_eq!((status, replay["status"].as_str(), replay["replayed"].as_bool()), (200, Some("included"), Some(true)));
    assert_eq!(nfts(&devnet, account).await, U256::from(1), "the retry executed nothing");
}

/// The node fails while the calls are estimated or a revocation is sent: that is the node's
/// failure (503, retry), not the calls' (422); the revocation is kept and lands once the node is
/// back.
#[tokio::test]
async fn node_failures_are_retryable_and_revocations_land_once_it_is_back() {
    let devnet = Devnet::start().await.expect("devnet");
    let proxy = Proxy::start(&devnet).await;
    let (s, _) = boot_behind(&devnet, &proxy, "faults-503").await;
    let key = app_key(&s, "faults").await;
    let owner = PrivateKeySigner::random();
    let (id, account) = granted(&s, &key, &owner, MINT_ANY).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let execute = format!("/v1/sessions/{id}/execute");
    let (status, body) = s.call("POST", &execute, Some(&key), Some(mint())).await;
    assert_eq!(status, 200, "{body}");

    proxy.set(|f| {
        f.refuse.insert("eth_estimateGas".into(), usize::MAX);
    });
    let (status, body) = s.call("POST", &execute, Some(&key), Some(mint())).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("chain_unavailable")), "{body}");

    // Owner-signed revocation while the node fails: revoked in the service at once, pending on chain.
    let (status, revoked) = s.call("POST", &format!("/v1/sessions/{id}/revoke"), Some(&key), None).await;
    assert_eq!(status, 200, "{revoked}");
    let digest: B256 = revoked["onchain"]["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let onchain = format!("/v1/sessions/{id}/revoke/onchain");
    let (status, body) = s.call("POST", &onchain, Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!((status, body["onchain"].as_str()), (202, Some("pending")), "{body}");
    let (_, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&key), None).await;
    assert_eq!(shown["onchain_revocation"]["status"], "pending", "{shown}");

    proxy.set(|f| f.refuse.clear());
    let mut state = Value::Null;
    for _ in 0..100 {
        let (_, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&key), None).await;
        if shown["onchain_revocation"]["status"] == "included" {
            state = shown;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state["chain"]["state"], "revoked", "the service retried the revocation: {state}");
    assert!(state["onchain_revocation"]["transaction_hash"].is_string(), "{state}");
}

/// The node accepts connections and answers nothing: `/health` says so within seconds, and an
/// execution answers (503, or 202 if it may have been sent) instead of hanging.
#[tokio::test]
async fn a_stalled_node_is_reported_not_waited_on() {
    let devnet = Devnet::start().await.expect("devnet");
    let proxy = Proxy::start(&devnet).await;
    let (s, _) = boot_behind(&devnet, &proxy, "faults-stall").await;
    let key = app_key(&s, "faults").await;
    let (id, account) = granted(&s, &key, &PrivateKeySigner::random(), MINT_ANY).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let (status, health) = s.call("GET", "/health", None, None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")), "{health}");

    proxy.set(|f| f.stall = true);
    let started = std::time::Instant::now();
    let (status, health) = tokio::time::timeout(Duration::from_secs(10), s.call("GET", "/health", None, None))
        .await
        .expect("/health answers while the node stalls");
    assert_eq!((status, health["error"].as_str()), (503, Some("not_ready")), "{health}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // Polled by every open page: never cached, and twenty pollers at once while the node stalls
    // share one check (one wait for the node, not twenty), each told the service is up and the
    // chain is not.
    let started = std::time::Instant::now();
    let polls: Vec<_> = (0..20).map(|_| tokio::spawn(s.http.get(format!("{}/health", s.url)).send())).collect();
    for poll in polls {
        let poll = poll.await.expect("task").expect("/health answers");
        assert_eq!(poll.status(), 503);
        assert_eq!(poll.headers()["cache-control"], "no-store");
        let body: Value = poll.json().await.expect("JSON");
        assert_eq!((body["error"].as_str(), body["status"].as_str()), (Some("not_ready"), Some("not_ready")), "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("did not answer")), "{body}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "twenty polls took {:?}", started.elapsed());
    let execute = format!("/v1/sessions/{id}/execute");
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(40), s.call("POST", &execute, Some(&key), Some(mint())))
            .await
            .expect("an execution answers while the node stalls");
    assert!(status == 503 || (status == 202 && body["status"] == "unknown"), "{status} {body}");

    proxy.set(|f| f.stall = false);
    let (status, health) = s.call("GET", "/health", None, None).await;
    assert_eq!(status, 200, "{health}");
    let ok = s.http.get(format!("{}/health", s.url)).send().await.expect("/health");
    assert_eq!((ok.status().as_u16(), ok.headers()["cache-control"].to_str().ok()), (200, Some("no-store")));
    let (status, body) = s.call("POST", &execute, Some(&key), Some(mint())).await;
    assert_eq!(status, 200, "{body}");
}

/// `/health` on a chain that lost Valet's contracts (a node reset under the service) is not "ok".
#[tokio::test]
async fn health_is_not_ok_without_the_contracts() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "faults-health", false, None).await;
    let (status, health) = s.call("GET", "/health", None, None).await;
    assert_eq!(status, 200, "{health}");
    let validator = devnet.deployment().validator;
    let _: () = devnet
        .provider
        .raw_request("anvil_setCode".into(), (validator, alloy::primitives::Bytes::new()))
        .await
        .expect("anvil_setCode");
    let (status, health) = s.call("GET", "/health", None, None).await;
    assert_eq!((status, health["error"].as_str()), (503, Some("not_ready")), "{health}");
    assert!(health["message"].as_str().expect("message").contains(&format!("validator ({validator})")), "{health}");
}

/// Eight sessions execute in a loop while the proxy drops every node connection for 30 ms out of
/// every 100, 30 times. Clients retry 503s with the same key, as they should. Once the node is
/// back and nothing is unknown, for every session: the operations on chain are exactly those the
/// service reports included, and the NFTs minted equal them.
#[tokio::test]
async fn bursts_of_dropped_connections_leave_the_record_equal_to_the_chain() {
    let devnet = Devnet::start().await.expect("devnet");
    let proxy = Arc::new(Proxy::start(&devnet).await);
    let (s, _) = boot_behind(&devnet, &proxy, "faults-burst").await;
    let s = Arc::new(s);
    let key = app_key(&s, "faults").await;
    let mut sessions = Vec::new();
    for _ in 0..8 {
        let (id, account) = granted(&s, &key, &PrivateKeySigner::random(), MINT_ANY).await;
        devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
        sessions.push((id, account));
    }
    let cutting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let cutter = {
        let (proxy, cutting) = (proxy.clone(), cutting.clone());
        tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(70)).await;
                proxy.set(|f| f.cut = true);
                tokio::time::sleep(Duration::from_millis(30)).await;
                proxy.set(|f| f.cut = false);
            }
            cutting.store(false, Ordering::SeqCst);
        })
    };
    let mut clients = Vec::new();
    for (n, (id, _)) in sessions.iter().enumerate() {
        let (s, key, id, cutting) = (s.clone(), key.clone(), id.clone(), cutting.clone());
        clients.push(tokio::spawn(async move {
            let mut answers: Vec<(String, u16, Value)> = Vec::new();
            let mut i = 0;
            while cutting.load(Ordering::SeqCst) || i < 2 {
                let idempotency = format!("burst-{n}-{i}");
                let headers = [("idempotency-key", idempotency.as_str()), ("content-type", "application/json")];
                let execute = format!("/v1/sessions/{id}/execute");
                let mut answer = (0, Value::Null);
                for _ in 0..100 {
                    answer = s.raw("POST", &execute, Some(&key), Some(mint().to_string()), &headers).await;
                    if answer.0 != 503 && answer.0 != 409 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                answers.push((idempotency, answer.0, answer.1));
                i += 1;
            }
            answers
        }));
    }
    cutter.await.expect("cutter");
    let mut answers = Vec::new();
    for client in clients {
        answers.push(client.await.expect("client"));
    }
    assert!(proxy.hits() > 0, "the proxy dropped connections");
    for (n, (_, account)) in sessions.iter().enumerate() {
        let mut reported = BTreeSet::new();
        for (idempotency, status, body) in &answers[n] {
            assert!(matches!(status, 200 | 202 | 422), "{idempotency}: {status} {body}");
            let final_state = match body["status"].as_str() {
                Some("unknown") => settled(&s, &key, body["execution_id"].as_str().expect("id")).await,
                _ => body.clone(),
            };
            if final_state["status"] == "included" {
                reported.insert(final_state["user_op_hash"].as_str().expect("hash").parse::<B256>().expect("hex"));
            }
        }
        let chain = on_chain(&devnet, *account).await;
        assert_eq!(chain, reported, "session {n}: operations on chain == executions reported included");
        assert_eq!(nfts(&devnet, *account).await, U256::from(reported.len()), "session {n}");
    }
    let (_, health) = s.call("GET", "/health", None, None).await;
    assert_eq!(health["settling"]["unknown_executions"], 0, "{health}");
}

/// One relayer key for handleOps and owners' revocations: eight owners revoke on chain while their
/// sessions execute. Every revocation lands, no execution fails for a nonce.
#[tokio::test]
async fn revocations_and_executions_share_the_relayers_nonces() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "faults-nonces", false, None).await;
    let s = Arc::new(s);
    let key = app_key(&s, "faults").await;
    let mut sessions = Vec::new();
    for _ in 0..8 {
        let owner = PrivateKeySigner::random();
        let (id, account) = granted(&s, &key, &owner, MINT_ANY).await;
        devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
        let (status, body) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
        assert_eq!(status, 200, "{body}");
        sessions.push((id, owner));
    }
    let mut tasks = Vec::new();
    for (id, owner) in &sessions {
        for _ in 0..3 {
            let (s, key, id) = (s.clone(), key.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await
            }));
        }
        let (s, key, id, owner) = (s.clone(), key.clone(), id.clone(), owner.clone());
        tasks.push(tokio::spawn(async move {
            let (status, revoked) = s.call("POST", &format!("/v1/sessions/{id}/revoke"), Some(&key), None).await;
            assert_eq!(status, 200, "{revoked}");
            let digest: B256 = revoked["onchain"]["digest"].as_str().expect("digest").parse().expect("hex");
            let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
            let answer = s
                .call(
                    "POST",
                    &format!("/v1/sessions/{id}/revoke/onchain"),
                    Some(&key),
                    Some(json!({ "signature": signature })),
                )
                .await;
            assert_eq!((answer.0, answer.1["onchain"].as_str()), (200, Some("included")), "{}", answer.1);
            answer
        }));
    }
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert!(
            status == 200 || (status == 409 && body["error"] == "revoked"),
            "no execution or revocation fails: {status} {body}"
        );
    }
    for (id, _) in &sessions {
        let (_, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&key), None).await;
        assert_eq!(shown["chain"]["state"], "revoked", "{shown}");
    }
}

/// A session never enabled on chain needs no transaction to revoke: the answer says so, and the
/// relayer sends nothing.
#[tokio::test]
async fn a_session_never_enabled_is_revoked_without_a_transaction() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "faults-never", false, None).await;
    let key = app_key(&s, "faults").await;
    let owner = PrivateKeySigner::random();
    let (id, _) = granted(&s, &key, &owner, MINT_ANY).await;
    let relayer = devnet.key(1).address();
    let sent = devnet.provider.get_transaction_count(relayer).await.expect("nonce");
    let (_, revoked) = s.call("POST", &format!("/v1/sessions/{id}/revoke"), Some(&key), None).await;
    let digest: B256 = revoked["onchain"]["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let (status, body) = s
        .call("POST", &format!("/v1/sessions/{id}/revoke/onchain"), Some(&key), Some(json!({ "signature": signature })))
        .await;
    assert_eq!((status, body["onchain"].as_str()), (200, Some("not_needed")), "{body}");
    assert!(body["transaction_hash"].is_null(), "{body}");
    assert_eq!(devnet.provider.get_transaction_count(relayer).await.expect("nonce"), sent, "nothing sent");
    let (status, body) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("revoked")), "{body}");
}

/// Someone deploys the account (anyone may call the factory) after the service built its first
/// operation with initCode and before it is sent: the EntryPoint would refuse it (`AA10 sender
/// already constructed`); the service builds it again without initCode and it goes through.
#[tokio::test]
async fn a_front_run_deployment_is_met_by_building_again() {
    let devnet = Devnet::start().await.expect("devnet");
    let proxy = Proxy::start(&devnet).await;
    let (s, _) = boot_behind(&devnet, &proxy, "faults-aa10").await;
    let key = app_key(&s, "faults").await;
    let owner = PrivateKeySigner::random();
    let (id, account) = granted(&s, &key, &owner, MINT_ANY).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let factory =
        valet_client::contracts::ValetAccountFactory::new(devnet.deployment().factory, devnet.provider.clone());
    let front_run = async move {
        let sent = factory.createAccount(owner.address(), U256::ZERO).send().await.expect("createAccount");
        sent.get_receipt().await.expect("mined");
    };
    // handleOps(PackedUserOperation[],address): the submission's simulation, after the operation was built.
    proxy.set(|f| f.before.push_back(("0x765e827f".into(), Box::pin(front_run))));
    let (status, body) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
    assert!(proxy.faults.lock().expect("faults").before.is_empty(), "the front-run happened");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["detail"]["deployed_account"], false, "built again without initCode: {body}");
    assert_eq!(nfts(&devnet, account).await, U256::from(1));
}

/// Two sessions' operations share one `handleOps`; between its simulation and its inclusion the
/// owner of one revokes the session on chain, so the transaction reverts. The other operation is
/// sent again and included; the revoked one is never reported included (nor simply failed while
/// its signed bytes are public), and settles as failed once the chain proves it can never land.
#[tokio::test]
async fn a_shared_bundle_survives_an_operation_that_fails_at_inclusion() {
    let devnet = Devnet::start().await.expect("devnet");
    let proxy = Proxy::start(&devnet).await;
    let (s, _) = boot_behind(&devnet, &proxy, "faults-bundle").await;
    let s = Arc::new(s);
    let key = app_key(&s, "faults").await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let owner = PrivateKeySigner::random();
        let (id, account) = granted(&s, &key, &owner, MINT_ANY).await;
        devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
        let (status, body) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
        assert_eq!(status, 200, "enabled: {body}");
        sessions.push((id, account, owner));
    }
    let (first, victim, other) = (&sessions[0], &sessions[1], &sessions[2]);
    // The victim's owner revokes on chain, straight to the node, just before the shared handleOps goes out.
    let validator =
        valet_client::contracts::SessionKeyValidator::new(devnet.deployment().validator, devnet.provider.clone());
    let victim_id: B256 = victim.0.parse().expect("id");
    let digest = valet_core::eip712::revoke_session_digest(
        victim.1,
        victim_id,
        devnet.deployment().validator,
        devnet.chain_id(),
    );
    let signature = victim.2.sign_hash_sync(&digest).expect("sign").as_bytes();
    let victim_account = victim.1;
    let revoke = async move {
        let sent = validator
            .revokeSessionWithSignature(victim_account, victim_id, signature.into())
            .send()
            .await
            .expect("revoke");
        sent.get_receipt().await.expect("mined");
    };
    let handle_ops = "0x765e827f";
    proxy.set(|f| {
        // The first submission holds the relayer while the other two queue behind it: they share the next handleOps.
        f.before.push_back((handle_ops.into(), Box::pin(tokio::time::sleep(Duration::from_millis(600)))));
        f.before.push_back(("eth_sendRawTransaction".into(), Box::pin(async {})));
        f.before.push_back(("eth_sendRawTransaction".into(), Box::pin(revoke)));
    });
    let call = |id: String| {
        let (s, key) = (s.clone(), key.clone());
        tokio::spawn(
            async move { s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await },
        )
    };
    let first_answer = call(first.0.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (victim_answer, other_answer) = (call(victim.0.clone()), call(other.0.clone()));
    let (status, body) = first_answer.await.expect("first");
    assert_eq!(status, 200, "{body}");
    let (status, body) = other_answer.await.expect("other");
    assert_eq!(status, 200, "the other operation went through: {body}");
    let (status, body) = victim_answer.await.expect("victim");
    assert!(proxy.faults.lock().expect("faults").before.is_empty(), "the revocation ran before the shared handleOps");
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("unknown")),
        "published in a reverted transaction: {body}"
    );
    let settled = settled(&s, &key, body["execution_id"].as_str().expect("id")).await;
    assert_eq!(settled["status"], "failed", "{settled}");
    assert!(settled["detail"]["reason"].as_str().is_some_and(|r| r.contains("revoked on chain")), "{settled}");
    assert_eq!(nfts(&devnet, victim.1).await, U256::from(1), "only the mint before the revocation");
    assert_eq!(nfts(&devnet, other.1).await, U256::from(2));
    assert_eq!(on_chain(&devnet, victim.1).await.len(), 1);
}

/// The same on another chain the service serves: a multichain grant's session on chain 10, whose
/// node (behind the proxy) loses the answer to the handleOps transaction, is unknown until
/// reconciliation finds its operation on chain 10's node and EntryPoint (the main chain has no
/// such operation: looked up there, its used nonce would have said "failed").
#[tokio::test]
async fn an_answer_lost_on_another_chain_is_settled_from_that_chain() {
    let (main, other) = tokio::join!(
        Devnet::start(),
        Devnet::start_with(valet_client::DevnetOptions { chain_id: Some(10), ..Default::default() })
    );
    let (main, other) = (main.expect("devnet"), other.expect("devnet 10"));
    let proxy = Proxy::start(&other).await;
    let provider = valet_client::rpc::http_provider(&proxy.url).expect("provider");
    let wallet = valet_client::rpc::http_wallet_provider(&proxy.url, other.key(1)).expect("wallet");
    let direct = Direct::new(wallet, other.key(1).address()).await.expect("direct");
    let revoker = direct.relayer();
    let valet = Valet::new(provider, Arc::new(direct), other.deployment()).await.expect("valet");
    let chain = valet_server::Chain { valet, relayer: Some(revoker) };
    let (s, _, _, _) = boot_with(&main, "faults-other-chain", false, None, None, 1, move |service, _| {
        service.other_chains.insert(10, chain);
    })
    .await;
    let key = app_key(&s, "faults").await;
    let owner = PrivateKeySigner::random();
    let spec = format!("{MINT_ANY}[fees]\nbudget = \"0.5 ether\"\n");
    let body = json!({ "owner": owner.address(), "spec": spec, "chains": [31337, 10] });
    let (status, proposed) = s.call("POST", "/v1/sessions", Some(&key), Some(body)).await;
    assert_eq!(status, 201, "{proposed}");
    let digest: B256 = proposed["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let id = proposed["sessions"][1]["session_id"].as_str().expect("id").to_string();
    let (status, granted) =
        s.call("POST", &format!("/v1/sessions/{id}/grant"), Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!(status, 200, "{granted}");
    let account: Address = proposed["sessions"][1]["account"].as_str().expect("account").parse().expect("address");
    other.fund(account, U256::from(10u128.pow(18))).await.expect("fund");

    proxy.set(|f| {
        f.lose_answer.insert("eth_sendRawTransaction".into(), 1);
    });
    let (status, body) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("unknown")), "{body}");
    let execution = body["execution_id"].as_str().expect("execution id");
    let found = settled(&s, &key, execution).await;
    assert_eq!(found["status"], "included", "{found}");
    assert_eq!((nfts(&other, account).await, nfts(&main, account).await), (U256::from(1), U256::ZERO));
    let hash: B256 = found["user_op_hash"].as_str().expect("hash").parse().expect("hex");
    assert_eq!(on_chain(&other, account).await, BTreeSet::from([hash]));
}
