//! The service end to end over HTTP, against a real anvil and a SQLite vault: apps and API keys,
//! propose → grant → execute (idempotent, pre-flighted) → show/list → revoke in the service and on
//! chain, the audit log, metrics, keys sealed at rest, and bad input answered with JSON 4xx.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::dyn_abi::TypedData;
use alloy::primitives::{Address, B256, U256};
use alloy::signers::SignerSync;
use alloy::transports::http::reqwest;
use serde_json::{Value, json};
use valet_client::{Devnet, Valet};
use valet_server::{MasterKey, Service, Vault};

mod common;
use common::*;
/// The NFT ids an execution's answer says its operation minted to `to`: its `events`'
/// `Transfer(0, to, id)` of `nft` (panics on any other Transfer of `nft` among them).
fn minted_ids(execution: &Value, nft: Address, to: Address) -> Vec<U256> {
    use alloy::sol_types::SolEvent as _;
    use valet_client::contracts::demo::ValetNFT::Transfer;
    let events = execution["events"].as_array().unwrap_or_else(|| panic!("no events: {execution}"));
    let word = |v: &Value| v.as_str().and_then(|t| t.parse::<B256>().ok()).expect("a 32-byte topic");
    events
        .iter()
        .filter(|e| e["address"].as_str().and_then(|a| a.parse::<Address>().ok()) == Some(nft))
        .filter(|e| e["topics"][0].as_str().and_then(|t| t.parse::<B256>().ok()) == Some(Transfer::SIGNATURE_HASH))
        .map(|e| {
            let topics = e["topics"].as_array().expect("topics");
            assert_eq!(topics.len(), 4, "{e}");
            assert_eq!((word(&topics[1]), word(&topics[2])), (B256::ZERO, to.into_word()), "a mint to {to}: {e}");
            U256::from_be_bytes(word(&topics[3]).0)
        })
        .collect()
}

#[tokio::test]
async fn the_service_from_proposal_to_revocation() {
    story(None).await;
}

/// The same story on PostgreSQL: the same code and queries, the PostgreSQL migrations.
#[tokio::test]
async fn the_service_on_postgresql() {
    let postgres = Postgres::start("postgres");
    story(Some(postgres.url.clone())).await;
}

/// Two instances over one PostgreSQL vault execute on the same session at once: its lane is held
/// across instances, so no two operations race for one nonce.
#[tokio::test]
async fn two_instances_share_a_session_lane_through_postgresql() {
    let postgres = Postgres::start("postgres");
    let devnet = Devnet::start().await.expect("devnet");
    let master = MasterKey::generate().to_hex().to_string();
    let (a, _, dir_a, _) =
        boot_with(&devnet, "instance-a", false, Some(postgres.url.clone()), Some(&master), 1, |_, _| {}).await;
    let (b, _, dir_b, _) =
        boot_with(&devnet, "instance-b", false, Some(postgres.url.clone()), Some(&master), 7, |_, _| {}).await;
    let key = app_key(&a, "shared").await;
    let owner = devnet.key(3);
    let spec = "valid_for = \"1h\"\n[[permission]]\ntarget = \"ValetNFT\"\n\
                function = \"mint(address to, uint256 quantity)\"\nrules = [{ arg = \"to\", eq = \"$account\" }]\n";
    let (id, account) = granted(&a, &key, &owner, spec).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let path = format!("/v1/sessions/{id}/execute");
    let mint = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] });
    let (status, first) = b.call("POST", &path, Some(&key), Some(mint.clone())).await;
    assert_eq!(status, 200, "instance B executes what A granted: {first}");
    let requests: Vec<_> = (0..12)
        .map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            server.call("POST", &path, Some(&key), Some(mint.clone()))
        })
        .collect();
    for (status, answer) in futures_join_all(requests).await {
        assert_eq!((status, answer["status"].as_str()), (200, Some("included")), "{answer}");
    }
    let nft = valet_client::contracts::demo::ValetNFT::new(devnet.addresses.nft, &devnet.provider);
    assert_eq!(nft.balanceOf(account).call().await.expect("balance"), U256::from(13));
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

/// The service submitting through the Alto bundler instead of directly.
#[tokio::test]
async fn the_service_submits_through_a_bundler() {
    let devnet = Devnet::start_with(valet_client::DevnetOptions { alto: true, ..Default::default() })
        .await
        .expect("devnet with Alto");
    let dir = temp_dir("bundler");
    let vault = Vault::connect(&format!("sqlite://{}?mode=rwc", dir.join("valet.db").display())).await.expect("vault");
    let client = valet_client::BundlerClient::new(&devnet.bundler_url().expect("alto"), devnet.addresses.entry_point)
        .expect("client");
    let valet = Valet::new(devnet.provider.clone(), Arc::new(valet_client::Bundler::new(client)), devnet.deployment())
        .await
        .expect("valet");
    let names = BTreeMap::from([("ValetNFT".to_string(), devnet.addresses.nft)]);
    let mut service = Service::new(valet, vault, MasterKey::generate(), ADMIN, names, None);
    service.scheduler_every = None;
    let service = Arc::new(service);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(valet_server::serve(service, "127.0.0.1:0".parse().expect("addr"), bound_tx, async {
        let _ = stop_rx.await;
    }));
    let addr = bound_rx.await.expect("bound");
    let s = Server { url: format!("http://{addr}"), http: reqwest::Client::new(), shutdown: Some(stop_tx), task: None };
    let key = app_key(&s, "via-bundler").await;
    let (_, health) = s.call("GET", "/health", None, None).await;
    assert_eq!(health["submitter"], "bundler");
    let owner = devnet.key(3);
    let (id, account) = granted(&s, &key, &owner, valet_core::spec::DEMO_MINT_SPEC).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let path = format!("/v1/sessions/{id}/execute");
    for quantity in [5, 1] {
        let body = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", quantity] }] });
        let (status, done) = s.call("POST", &path, Some(&key), Some(body)).await;
        assert_eq!((status, done["status"].as_str()), (200, Some("included")), "{done}");
    }
    let body = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 6] }] });
    let (status, refused) = s.call("POST", &path, Some(&key), Some(body)).await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("refused")), "{refused}");
    let nft = valet_client::contracts::demo::ValetNFT::new(devnet.addresses.nft, &devnet.provider);
    assert_eq!(nft.balanceOf(account).call().await.expect("balance"), U256::from(6));
    drop(s);
    let _ = task.await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Awaits every future concurrently (tokio only, no `futures` crate).
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let mut set = Vec::new();
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    set.extend(done.into_iter().flatten());
    set
}

async fn story(database: Option<String>) {
    let sqlite = database.is_none();
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _service, dir, database) = boot(&devnet, if sqlite { "api" } else { "api-pg" }, true, database).await;

    // Health, and apps registered with the admin token only.
    let (status, health) = s.call("GET", "/health", None, None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, body) = s.call("POST", "/v1/apps", Some("wrong"), Some(json!({ "name": "game" }))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")));
    let (status, app) = s.call("POST", "/v1/apps", Some(ADMIN), Some(json!({ "name": "game" }))).await;
    assert_eq!(status, 201, "{app}");
    let key = app["api_key"].as_str().expect("api key").to_string();
    let (_, other) = s.call("POST", "/v1/apps", Some(ADMIN), Some(json!({ "name": "other" }))).await;
    let other_key = other["api_key"].as_str().expect("api key").to_string();

    // The owner's account, counterfactual.
    let owner = devnet.key(3);
    let (status, account) = s.call("GET", &format!("/v1/accounts/{}?salt=0", owner.address()), Some(&key), None).await;
    assert_eq!((status, account["deployed"].as_bool()), (200, Some(false)), "{account}");
    let address: Address = account["address"].as_str().expect("address").parse().expect("an address");
    devnet.fund(address, U256::from(10u128.pow(18))).await.expect("fund");

    // Propose: the summary and the typed data the owner signs (which hashes to the digest).
    let spec = valet_core::spec::DEMO_MINT_SPEC;
    let (status, proposed) =
        s.call("POST", "/v1/sessions", Some(&key), Some(json!({ "owner": owner.address(), "spec": spec }))).await;
    assert_eq!(status, 201, "{proposed}");
    let id = proposed["session_id"].as_str().expect("id").to_string();
    assert!(proposed["summary"][1].as_str().is_some_and(|l| l.contains("quantity ≤ 5")), "{proposed}");
    let typed: TypedData = serde_json::from_value(proposed["typed_data"].clone()).expect("typed data");
    let digest: B256 = proposed["digest"].as_str().expect("digest").parse().expect("hex");
    assert_eq!(typed.eip712_signing_hash().expect("hash"), digest);

    let mint = |quantity: u64| json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", quantity] }] });
    let execute = format!("/v1/sessions/{id}/execute");
    let (status, body) = s.call("POST", &execute, Some(&key), Some(mint(1))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("not_active")), "not granted yet: {body}");

    // Grant: only the owner's signature activates it.
    let stranger = devnet.key(8).sign_hash_sync(&digest).expect("sign").as_bytes();
    let grant = format!("/v1/sessions/{id}/grant");
    let (status, body) =
        s.call("POST", &grant, Some(&key), Some(json!({ "signature": alloy::hex::encode_prefixed(stranger) }))).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("not_the_owner")), "{body}");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let (status, body) = s.call("POST", &grant, Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("active")), "{body}");
    let (status, _) = s.call("POST", &grant, Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!(status, 409, "granted once");

    // Execute, idempotently.
    let body = mint(2).to_string();
    let (status, first) = s.raw("POST", &execute, Some(&key), Some(body.clone()), &[("idempotency-key", "k1")]).await;
    assert_eq!((status, first["status"].as_str()), (200, Some("included")), "{first}");
    assert_eq!(first["detail"]["deployed_account"], true);
    let (status, again) = s.raw("POST", &execute, Some(&key), Some(body.clone()), &[("idempotency-key", "k1")]).await;
    assert_eq!((status, again["replayed"].as_bool()), (200, Some(true)), "{again}");
    assert_eq!(again["execution_id"], first["execution_id"], "executed once");
    // The answer names what the operation emitted: its two NFTs' Transfers from 0 to the account.
    let minted = minted_ids(&first, devnet.addresses.nft, address);
    assert_eq!(minted.len(), 2, "{first}");
    let nft = valet_client::contracts::demo::ValetNFT::new(devnet.addresses.nft, &devnet.provider);
    for id in &minted {
        assert_eq!(nft.ownerOf(*id).call().await.expect("ownerOf"), address, "#{id}");
    }
    let entry_point = devnet.addresses.entry_point.to_string().to_lowercase();
    assert!(
        first["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["address"].as_str().map(str::to_lowercase) != Some(entry_point.clone())),
        "none of the EntryPoint's: {first}"
    );
    assert_eq!(again["events"], first["events"], "replayed with its events");
    let (status, shown) = s
        .call("GET", &format!("/v1/executions/{}", first["execution_id"].as_str().expect("id")), Some(&key), None)
        .await;
    assert_eq!((status, &shown["events"]), (200, &first["events"]), "{shown}");
    assert_eq!(shown["detail"].get("events"), None, "answered beside the detail, not in it: {shown}");
    let (status, reused) =
        s.raw("POST", &execute, Some(&key), Some(mint(3).to_string()), &[("idempotency-key", "k1")]).await;
    assert_eq!((status, reused["error"].as_str()), (422, Some("idempotency_key_reused")));
    assert_eq!(nft.balanceOf(address).call().await.expect("balance"), U256::from(2), "minted once");
    let (_, account) = s.call("GET", &format!("/v1/accounts/{}", owner.address()), Some(&key), None).await;
    assert_eq!(account["deployed"], true);
    assert_eq!(
        (account["tokens"]["ValetNFT"]["symbol"].as_str(), account["tokens"]["ValetNFT"]["balance"].as_str()),
        (Some("VALET"), Some("2")),
        "{account}"
    );

    // Refused before sending, with the reason in the spec's words.
    let (status, refused) = s.call("POST", &execute, Some(&key), Some(mint(6))).await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("refused")), "{refused}");
    assert!(
        refused["message"].as_str().is_some_and(|m| m.contains("quantity = 6, but the session requires quantity ≤ 5"))
    );

    // Show and list, read from the chain; other apps see nothing.
    let (status, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&key), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!((shown["usable"].as_bool(), shown["chain"]["state"].as_str()), (Some(true), Some("enabled")));
    assert_eq!(shown["chain"]["permissions"][0]["uses"], 1);
    let (status, listed) = s.call("GET", &format!("/v1/sessions?account={address}"), Some(&key), None).await;
    assert_eq!((status, listed["sessions"].as_array().map(Vec::len)), (200, Some(1)));
    let (status, _) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&other_key), None).await;
    assert_eq!(status, 404, "another app's session");
    let (_, listed) = s.call("GET", "/v1/sessions", Some(&other_key), None).await;
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(0));

    // Revoke: stops at once in the service; the owner's signature revokes on chain.
    let (status, revoked) = s.call("POST", &format!("/v1/sessions/{id}/revoke"), Some(&key), None).await;
    assert_eq!(status, 200, "{revoked}");
    let (status, body) = s.call("POST", &execute, Some(&key), Some(mint(1))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("revoked")));
    let revoke_digest: B256 = revoked["onchain"]["digest"].as_str().expect("digest").parse().expect("hex");
    let typed: TypedData = serde_json::from_value(revoked["onchain"]["typed_data"].clone()).expect("typed");
    assert_eq!(typed.eip712_signing_hash().expect("hash"), revoke_digest);
    let onchain = format!("/v1/sessions/{id}/revoke/onchain");
    let wrong = alloy::hex::encode_prefixed(devnet.key(8).sign_hash_sync(&revoke_digest).expect("sign").as_bytes());
    let (status, _) = s.call("POST", &onchain, Some(&key), Some(json!({ "signature": wrong }))).await;
    assert_eq!(status, 403);
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&revoke_digest).expect("sign").as_bytes());
    let (status, body) = s.call("POST", &onchain, Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!(status, 200, "{body}");
    let (_, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&key), None).await;
    assert_eq!(shown["chain"]["state"], "revoked", "{shown}");

    // The audit log tells the story, for this app only.
    let (status, audit) = s.call("GET", &format!("/v1/audit?session_id={id}"), Some(&key), None).await;
    assert_eq!(status, 200);
    let events: Vec<&str> =
        audit["events"].as_array().expect("events").iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        events,
        [
            "session.proposed",
            "session.granted",
            "execution.included",
            "execution.refused",
            "session.revoked",
            "session.revoked_onchain"
        ]
    );
    let (_, audit) = s.call("GET", "/v1/audit", Some(&other_key), None).await;
    assert!(audit["events"].as_array().expect("events").iter().all(|e| e["session_id"].is_null()));

    // Metrics count what happened.
    let (status, metrics) = s.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().expect("text");
    assert!(metrics.contains("valet_executions_total{outcome=\"included\"} 1"), "{metrics}");
    assert!(metrics.contains("valet_executions_total{outcome=\"refused\"} 1"), "{metrics}");

    // Bad input: JSON 4xx naming the problem, never a 5xx.
    let cases: Vec<BadCase<'_>> = vec![
        ("POST", "/v1/sessions".into(), Some(&key), Some("{not json".into()), 400),
        ("POST", "/v1/sessions".into(), Some(&key), Some(json!({ "owner": "0x12", "spec": spec }).to_string()), 400),
        (
            "POST",
            "/v1/sessions".into(),
            Some(&key),
            Some(json!({ "owner": owner.address(), "spec": "valid_for = 1" }).to_string()),
            400,
        ),
        (
            "POST",
            "/v1/sessions".into(),
            Some(&key),
            Some(json!({ "owner": owner.address(), "spec": spec, "extra": 1 }).to_string()),
            400,
        ),
        // Fees go in the spec; beside a permission request they must be a fee rule.
        (
            "POST",
            "/v1/sessions".into(),
            Some(&key),
            Some(json!({ "owner": owner.address(), "spec": spec, "fees": "sponsored" }).to_string()),
            400,
        ),
        (
            "POST",
            "/v1/sessions".into(),
            Some(&key),
            Some(json!({ "owner": owner.address(), "permission_request": {}, "fees": 5 }).to_string()),
            400,
        ),
        ("GET", "/v1/sessions/0x1234".into(), Some(&key), None, 400),
        ("GET", format!("/v1/sessions/0x{}", "ab".repeat(32)), Some(&key), None, 404),
        ("GET", "/v1/sessions".into(), None, None, 401),
        ("GET", "/v1/sessions?account=nope".into(), Some(&key), None, 400),
        ("GET", "/v1/audit?limit=0".into(), Some(&key), None, 400),
        ("POST", execute.clone(), Some(&key), Some(json!({ "calls": [] }).to_string()), 400),
        ("POST", execute.clone(), Some(&key), Some(json!({ "calls": [{ "to": "Nowhere" }] }).to_string()), 400),
        ("DELETE", "/v1/sessions".into(), Some(&key), None, 405),
        ("GET", "/v2/nothing".into(), Some(&key), None, 404),
    ];
    for (method, path, auth, body, expected) in cases {
        let (status, answer) = s.raw(method, &path, auth, body.clone(), &[]).await;
        assert_eq!(status, expected, "{method} {path} {body:?}: {answer}");
        assert!(answer["error"].is_string() && answer["message"].is_string(), "{method} {path}: {answer}");
    }

    // At rest: the session key is sealed; the database file does not hold it.
    let master = MasterKey::load(&dir.join("master.key")).expect("the same master key");
    let vault = Vault::connect(&database).await.expect("vault");
    let app_id = app["id"].as_str().expect("app id");
    let row = vault.session(app_id, &id).await.expect("query").expect("stored");
    let key = master.open(id.parse().expect("id"), &alloy::hex::decode(&row.sealed_key).expect("hex")).expect("opens");
    assert_eq!(key.address().to_string(), row.session_key);
    let secret = key.to_bytes();
    if sqlite {
        let file = std::fs::read(dir.join("valet.db")).expect("db file");
        assert!(!file.windows(32).any(|w| w == secret.as_slice()), "no raw key in the database");
        assert!(!String::from_utf8_lossy(&file).contains(&alloy::hex::encode(secret)), "no hex key in the database");
    }
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A recurring payment: 10 VLT a day to one payee under a daily allowance of 10, run by the
/// scheduler by the chain's clock; runs missed during downtime are skipped, not made up; a
/// revoked session ends the schedule.
#[tokio::test]
async fn the_scheduler_pays_once_per_period_across_downtime() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, service, dir, _) = boot(&devnet, "schedules", false, None).await;
    let key = app_key(&s, "payroll").await;
    let owner = devnet.key(4);
    let payee = devnet.key(6).address();
    let spec = format!(
        "valid_for = \"30d\"\n[[permission]]\ntarget = \"ValetToken\"\nfunction = \"transfer(address to, uint256 amount)\"\n\
         rules = [{{ arg = \"to\", eq = \"{payee}\" }}]\n[[limit]]\ntoken = \"ValetToken\"\namount = \"10 ether\"\nperiod = \"1d\"\n"
    );
    let (id, account) = granted(&s, &key, &owner, &spec).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    valet_client::contracts::demo::ValetToken::new(devnet.addresses.token, &devnet.provider)
        .faucet(account, U256::from(1000u128 * 10u128.pow(18)))
        .send()
        .await
        .expect("faucet")
        .get_receipt()
        .await
        .expect("receipt");
    // The same session asked for as an ERC-7715 permission request reads the same.
    let request = json!({
        "chainId": devnet.chain_id(),
        "permission": { "type": "erc20-token-periodic", "data": { "tokenAddress": "ValetToken", "periodAmount": "10 ether", "periodDuration": 86400 } },
        "rules": [{ "type": "expiry", "data": { "timestamp": valet_client::Valet::new(devnet.provider.clone(), Arc::new(valet_client::Direct::new(devnet.provider_for(1), devnet.key(1).address()).await.expect("direct")), devnet.deployment()).await.expect("valet").now().await.expect("now") + 30 * 86_400 } }, { "type": "payee", "data": { "payee": payee.to_string() } }]
    });
    let (status, proposed) = s
        .call(
            "POST",
            "/v1/sessions",
            Some(&key),
            Some(json!({ "owner": owner.address(), "permission_request": request, "fees": { "budget": "0.5 ether" } })),
        )
        .await;
    assert_eq!(status, 201, "{proposed}");
    let lines: Vec<&str> = proposed["summary"].as_array().expect("summary").iter().filter_map(Value::as_str).collect();
    assert!(lines.contains(&"At most 10 VLT per 1 day (it refills) transferred or approved."), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("May spend up to 0.5 ETH of your ETH on network fees")), "{lines:?}");
    assert!(lines[0].starts_with("Valid for 30 days"), "{lines:?}");
    let pay = json!({ "to": "ValetToken", "function": "transfer(address to, uint256 amount)", "args": [payee.to_string(), "10000000000000000000"] });
    let schedules = format!("/v1/sessions/{id}/schedules");
    let (status, bad) = s.call("POST", &schedules, Some(&key), Some(json!({ "calls": [pay], "every": "soon" }))).await;
    assert_eq!(status, 400, "{bad}");
    let (status, created) =
        s.call("POST", &schedules, Some(&key), Some(json!({ "calls": [pay], "every": "1d" }))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["every"], 86_400);

    let token = valet_client::contracts::demo::ValetToken::new(devnet.addresses.token, &devnet.provider);
    let balance = || async { token.balanceOf(payee).call().await.expect("balance") / U256::from(10u128.pow(18)) };
    assert_eq!(valet_server::scheduler::run_schedules(&service).await.expect("pass"), 1, "run 0 is due at once");
    assert_eq!(valet_server::scheduler::run_schedules(&service).await.expect("pass"), 0, "and runs once");
    assert_eq!(balance().await, U256::from(10));

    devnet.advance_time(86_400).await.expect("a day");
    assert_eq!(valet_server::scheduler::run_schedules(&service).await.expect("pass"), 1);
    assert_eq!(balance().await, U256::from(20));

    // Three days of downtime: one run, not three.
    devnet.advance_time(3 * 86_400).await.expect("three days");
    assert_eq!(valet_server::scheduler::run_schedules(&service).await.expect("pass"), 1);
    assert_eq!(valet_server::scheduler::run_schedules(&service).await.expect("pass"), 0);
    assert_eq!(balance().await, U256::from(30));
    let (_, listed) = s.call("GET", &schedules, Some(&key), None).await;
    assert_eq!(listed["schedules"][0]["next_run"], 5, "{listed}");
    let (_, audit) = s.call("GET", &format!("/v1/audit?session_id={id}"), Some(&key), None).await;
    let events: Vec<&str> =
        audit["events"].as_array().expect("events").iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(events.iter().filter(|e| **e == "schedule.run").count(), 3, "{events:?}");
    assert_eq!(events.iter().filter(|e| **e == "schedule.skipped").count(), 1, "{events:?}");
    assert_eq!(events.iter().filter(|e| **e == "execution.included").count(), 3, "{events:?}");

    // Revoked: the schedule ends with the reason.
    let (status, _) = s.call("POST", &format!("/v1/sessions/{id}/revoke"), Some(&key), None).await;
    assert_eq!(status, 200);
    devnet.advance_time(86_400).await.expect("a day");
    assert_eq!(valet_server::scheduler::run_schedules(&service).await.expect("pass"), 0);
    let (_, listed) = s.call("GET", &schedules, Some(&key), None).await;
    assert_eq!(
        (listed["schedules"][0]["status"].as_str(), listed["schedules"][0]["reason"].as_str()),
        (Some("done"), Some("session is revoked"))
    );
    assert_eq!(balance().await, U256::from(30));
    let schedule_id = created["schedule_id"].as_str().expect("id");
    let (status, _) = s.call("DELETE", &format!("/v1/schedules/{schedule_id}"), Some(&key), None).await;
    assert_eq!(status, 404, "already done");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the dApp needs from the service: its files (and nothing outside them) with a strict
/// content security policy, its configuration, the devnet faucet, and the account's NFTs by id.
#[tokio::test]
async fn the_service_serves_the_dapp_and_the_devnet_faucet() {
    use alloy::providers::Provider as _;
    let devnet = Devnet::start().await.expect("devnet");
    let ether = U256::from(10u128.pow(18));
    let token = devnet.addresses.token;
    let (s, _, dir, _) = boot_with(&devnet, "dapp", false, None, None, 1, |service, dir| {
        let web = dir.join("dist");
        std::fs::create_dir_all(web.join("assets")).expect("dist");
        std::fs::write(web.join("index.html"), "<!doctype html><title>Valet</title>").expect("index");
        // A script of the size and redundancy of a real bundle, and the source map Vite used to leave.
        let script: String = (0..2_000).map(|i| format!("export const v{i} = valet.call({i}, 'mint');\n")).collect();
        std::fs::write(web.join("assets/app-1a2b.js"), script).expect("js");
        std::fs::write(web.join("assets/app-1a2b.js.map"), "{\"version\":3,\"sources\":[\"src/main.ts\"]}")
            .expect("map");
        std::fs::write(dir.join("outside.txt"), "not served").expect("outside");
        service.web = Some(valet_server::Web { dir: web, config: json!({ "network": "devnet", "api_key": "k" }) });
        service.faucet =
            Some(valet_server::Faucet::new(devnet.provider_for(2), ether, Some((token, ether * U256::from(100)))));
        service.devnet_rpc = Some(valet_server::DevnetRpc::new(&devnet.endpoint(), None).expect("rpc"));
    })
    .await;
    let key = app_key(&s, "dapp").await;

    // Files, with their types, caching and the policy that keeps the page on its own origin.
    let get = |path: &str| s.http.get(format!("{}{path}", s.url)).send();
    let index = get("/").await.expect("GET /");
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    let csp = index.headers()["content-security-policy"].to_str().expect("ascii").to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    // WebAssembly may compile (valet-core, for keys kept in the browser); script is not eval'd.
    assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval';") && !csp.contains("'unsafe-eval'"), "{csp}");
    assert_eq!(index.text().await.expect("body"), "<!doctype html><title>Valet</title>");
    let js = get("/assets/app-1a2b.js").await.expect("GET js");
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(js.headers()["cache-control"].to_str().expect("ascii").contains("immutable"));
    assert_eq!(get("/assets/missing.js").await.expect("GET").status(), 404);
    // Compressed for a client that accepts gzip (the page is a third of its size), as it is; and
    // no source map is served, even one a build left in the directory.
    let gzip = |path: &str| s.http.get(format!("{}{path}", s.url)).header("accept-encoding", "gzip").send();
    let plain = get("/assets/app-1a2b.js").await.expect("GET").bytes().await.expect("body");
    let packed = gzip("/assets/app-1a2b.js").await.expect("GET gzip");
    assert_eq!(packed.headers()["content-encoding"], "gzip");
    assert_eq!(packed.headers()["content-type"], "text/javascript; charset=utf-8");
    let packed = packed.bytes().await.expect("body");
    assert!(packed.len() < plain.len() / 4, "{} bytes of gzip for {}", packed.len(), plain.len());
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut unpacked).expect("gunzip");
    assert_eq!(unpacked, plain);
    let (status, _) = s.call("GET", "/assets/app-1a2b.js.map", None, None).await;
    assert_eq!(status, 404, "a source map is not served");
    let listed = gzip("/v1/sessions").await.expect("GET gzip");
    assert_eq!(listed.status(), 401, "JSON answers are compressed too, errors included");
    assert_eq!(listed.headers()["content-encoding"], "gzip");
    // Paths that climb out of the directory, sent as written (an HTTP client would normalise them).
    for path in
        ["/../outside.txt", "/assets/../../outside.txt", "/%2e%2e/outside.txt", "/assets/%2e%2e/%2e%2e/outside.txt"]
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://")).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.expect("send");
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.expect("read");
        assert!(!answer.contains("not served"), "{path} escaped the directory: {answer}");
        let status = answer.split_whitespace().nth(1).unwrap_or_default();
        assert!(status == "404" || status == "400", "{path}: {answer}");
    }
    // The API keeps its JSON 404s and its methods.
    let (status, body) = s.call("GET", "/v1/nothing", Some(&key), None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{body}");
    let (status, _) = s.call("POST", "/", None, None).await;
    assert_eq!(status, 404);
    let (status, config) = s.call("GET", "/config.json", None, None).await;
    assert_eq!((status, config["network"].as_str()), (200, Some("devnet")), "{config}");

    // The devnet's node on the page's origin: its reads, nothing that sends; anything malformed
    // is a JSON-RPC error (HTTP 200), never a 5xx. Without a bundler, `/bundler` says so.
    let rpc = |path: &'static str, body: String| s.raw("POST", path, None, Some(body), &[]);
    let (status, chain) = rpc("/rpc", json!({ "jsonrpc": "2.0", "id": 7, "method": "eth_chainId" }).to_string()).await;
    assert_eq!((status, chain["id"].as_u64(), chain["result"].as_str()), (200, Some(7), Some("0x7a69")), "{chain}");
    let code = json!({ "jsonrpc": "2.0", "id": "c", "method": "eth_getCode", "params": [devnet.addresses.validator, "latest"] });
    let (_, code) = rpc("/rpc", code.to_string()).await;
    assert!(code["result"].as_str().is_some_and(|c| c.len() > 2), "{code}");
    let reverted = json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [{ "to": devnet.addresses.token, "data": "0xdeadbeef" }, "latest"] });
    let (status, reverted) = rpc("/rpc", reverted.to_string()).await;
    assert_eq!((status, reverted["error"]["code"].as_i64()), (200, Some(3)), "the node's own error: {reverted}");
    for (path, body, code) in [
        ("/rpc", "{not json".to_string(), -32700),
        ("/rpc", "[]".to_string(), -32600),
        ("/rpc", json!({ "id": 1, "method": "eth_chainId" }).to_string(), -32600),
        ("/rpc", json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": 5 }).to_string(), -32602),
        (
            "/rpc",
            json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x00"] }).to_string(),
            -32601,
        ),
        ("/rpc", json!({ "jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance", "params": [] }).to_string(), -32601),
        ("/bundler", json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_supportedEntryPoints" }).to_string(), -32603),
        ("/bundler", json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_call" }).to_string(), -32601),
    ] {
        let (status, answer) = rpc(path, body.clone()).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (200, Some(code)), "{path} {body}: {answer}");
    }

    // The faucet: ETH up to 1, tokens up to 100, once; an address it names when malformed.
    let owner = devnet.key(3);
    let (_, account) = s.call("GET", &format!("/v1/accounts/{}", owner.address()), Some(&key), None).await;
    let address: Address = account["address"].as_str().expect("address").parse().expect("hex");
    let fund = json!({ "address": address });
    let (status, funded) = s.call("POST", "/v1/devnet/fund", Some(&key), Some(fund.clone())).await;
    assert_eq!(status, 200, "{funded}");
    assert_eq!(funded["funded"], true);
    assert_eq!(funded["transactions"].as_array().map(Vec::len), Some(2), "{funded}");
    assert_eq!(devnet.provider.get_balance(address).await.expect("balance"), ether);
    let (status, again) = s.call("POST", "/v1/devnet/fund", Some(&key), Some(fund.clone())).await;
    assert_eq!((status, again["funded"].as_bool()), (200, Some(false)), "{again}");
    let (status, _) = s.call("POST", "/v1/devnet/fund", None, Some(fund)).await;
    assert_eq!(status, 401);
    // An account whose fees a sponsor pays asks for the tokens alone: no ETH.
    let sponsored = Address::repeat_byte(0x5b);
    let tokens_only = json!({ "address": sponsored, "eth": false });
    let (status, funded) = s.call("POST", "/v1/devnet/fund", Some(&key), Some(tokens_only)).await;
    assert_eq!((status, funded["transactions"].as_array().map(Vec::len)), (200, Some(1)), "{funded}");
    assert_eq!(devnet.provider.get_balance(sponsored).await.expect("balance"), U256::ZERO, "no ETH");
    let token = valet_client::contracts::demo::ValetToken::new(devnet.addresses.token, &devnet.provider);
    assert_eq!(token.balanceOf(sponsored).call().await.expect("tokens"), ether * U256::from(100));
    let (status, bad) = s.call("POST", "/v1/devnet/fund", Some(&key), Some(json!({ "address": "0x12" }))).await;
    assert_eq!(status, 400);
    assert!(bad["message"].as_str().is_some_and(|m| m.contains("`0x12`")), "{bad}");
    // Found by schemathesis: the token refuses to mint to the zero address (it was a 503).
    let (status, bad) = s.call("POST", "/v1/devnet/fund", Some(&key), Some(json!({ "address": Address::ZERO }))).await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["message"].as_str().is_some_and(|m| m.contains("zero address")), "{bad}");

    // The account's holdings: the collection's ids, the token's units.
    let nft = valet_client::contracts::demo::ValetNFT::new(devnet.addresses.nft, devnet.provider_for(5));
    for quantity in [2u64, 1] {
        nft.mint(address, U256::from(quantity)).send().await.expect("mint").get_receipt().await.expect("mined");
    }
    nft.mint(devnet.key(5).address(), U256::from(1)).send().await.expect("mint").get_receipt().await.expect("mined");
    let (status, account) = s.call("GET", &format!("/v1/accounts/{}", owner.address()), Some(&key), None).await;
    assert_eq!(status, 200, "{account}");
    let collection = &account["tokens"]["ValetNFT"];
    assert_eq!(collection["kind"], "erc721", "{account}");
    assert_eq!(collection["token_ids"], json!(["1", "2", "3"]), "{account}");
    assert_eq!(collection["balance"], "3");
    let vlt = &account["tokens"]["ValetToken"];
    assert_eq!((vlt["kind"].as_str(), vlt["decimals"].as_u64()), (Some("erc20"), Some(18)), "{account}");
    assert_eq!(vlt["balance"], (ether * U256::from(100)).to_string());
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

/// Without a faucet (any chain but a devnet) funding is refused, saying why; without the dApp,
/// `/` and `/config.json` are JSON 404s.
#[tokio::test]
async fn a_service_without_the_dapp_or_a_faucet_says_so() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, dir, _) = boot(&devnet, "no-dapp", false, None).await;
    let key = app_key(&s, "api only").await;
    let (status, body) =
        s.call("POST", "/v1/devnet/fund", Some(&key), Some(json!({ "address": devnet.key(3).address() }))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("no_faucet")), "{body}");
    for path in ["/", "/config.json", "/assets/app.js"] {
        let (status, body) = s.call("GET", path, None, None).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{path}: {body}");
    }
    // Nor does it forward JSON-RPC to any node or bundler: only `valet up` does, on its devnet.
    for path in ["/rpc", "/bundler"] {
        let (status, body) =
            s.call("POST", path, None, Some(json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_chainId" }))).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{path}: {body}");
    }
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

/// Odd input from the dApp's custom form is refused in its user's words, naming the field, the
/// value and where (counted from 1); a proposal the owner should think twice about comes with
/// `warnings` beside its summary: a function the known contract does not have, a session of
/// 273 years. (They came back as "JSON spec: invalid type: floating point 1e+23, expected u32 at
/// line 1 column 80", "-1 ether is not a number", or nothing at all.)
#[tokio::test]
async fn odd_specs_are_answered_in_the_users_words_with_warnings() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, dir, _) = boot(&devnet, "words", false, None).await;
    let key = app_key(&s, "custom").await;
    let owner = devnet.key(3).address();
    let propose = |permission: Value, valid_for: &str| json!({ "owner": owner, "spec": { "valid_for": valid_for, "permission": [permission], "fees": "sponsored" } });
    let mint = "mint(address to, uint256 quantity)";
    for (permission, valid_for, message) in [
        (
            json!({ "target": "ValetNFT", "function": mint, "max_uses": 1e23 }),
            "1h",
            "permission 1: max_uses = 1e23 is too large: at most 4294967295",
        ),
        (
            json!({ "target": "ValetNFT", "function": mint, "value_limit": "-1 ether" }),
            "1h",
            "permission 1: value_limit: `-1 ether` is negative",
        ),
        (
            json!({ "target": "ValetNFT", "function": mint, "rules": [{ "arg": "to", "eq": "$account" }, { "arg": "qty", "lte": 5 }] }),
            "1h",
            "permission 1, rule 2: `qty` is not an argument of mint(address,uint256) (arguments: to, quantity)",
        ),
        (
            json!({ "target": "ValetNFT", "function": mint }),
            "10",
            "valid_for: `10` needs a unit: 10s, 10m, 10h, 10d or 10w",
        ),
        (
            json!({ "target": "ValetNFT", "function": mint }),
            "0s",
            "valid_for: `0s` is no time at all: give at least 1s",
        ),
    ] {
        let (status, body) = s.call("POST", "/v1/sessions", Some(&key), Some(propose(permission, valid_for))).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")), "{body}");
        assert_eq!(body["message"], message, "{body}");
    }

    let odd = propose(json!({ "target": "ValetNFT", "function": "fooBar(uint256 x)" }), "99999d");
    let (status, proposed) = s.call("POST", "/v1/sessions", Some(&key), Some(odd)).await;
    assert_eq!(status, 201, "proposed: warnings refuse nothing: {proposed}");
    assert_eq!(
        proposed["warnings"],
        json!([
            "this session lasts 273 years: consider a shorter one",
            "ValetNFT has no function fooBar(uint256): the session would allow a call that always reverts"
        ]),
        "{proposed}"
    );
    let plain = propose(json!({ "target": "ValetNFT", "function": mint }), "1h");
    let (status, proposed) = s.call("POST", "/v1/sessions", Some(&key), Some(plain)).await;
    assert_eq!((status, &proposed["warnings"]), (201, &json!([])), "{proposed}");
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

/// The proposal's `fee_estimate` for an account that pays its own fees is within a factor of two
/// of what a real first mint (creating the account, enabling the session) and a later mint cost.
#[tokio::test]
async fn the_fee_estimate_is_near_what_a_first_and_a_later_mint_cost() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _service, _dir, _) = boot(&devnet, "fee-estimate", false, None).await;
    let key = app_key(&s, "estimates").await;
    let owner = devnet.key(3);
    // The demo's mint: the account pays its fees, from a 0.01 ETH budget.
    let spec = valet_core::spec::DEMO_MINT_SPEC;
    let (status, proposed) =
        s.call("POST", "/v1/sessions", Some(&key), Some(json!({ "owner": owner.address(), "spec": spec }))).await;
    assert_eq!(status, 201, "{proposed}");
    assert_eq!(proposed["account_deployed"].as_bool(), Some(false), "{proposed}");
    let wei = |v: &Value, what: &str| -> U256 {
        v.as_str().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("{what} is not a decimal string: {v}"))
    };
    let estimate = &proposed["fee_estimate"];
    let price = wei(&estimate["gas_price_wei"], "gas_price_wei");
    let (first, later) = (
        wei(&estimate["first_operation_wei"], "first_operation_wei"),
        wei(&estimate["later_operation_wei"], "later_operation_wei"),
    );
    assert!(price > U256::ZERO && first > later && later > U256::ZERO, "{estimate}");
    let id = proposed["session_id"].as_str().expect("id").to_string();
    let account: Address = proposed["account"].as_str().expect("account").parse().expect("address");
    let digest: B256 = proposed["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let (status, body) =
        s.call("POST", &format!("/v1/sessions/{id}/grant"), Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!(status, 200, "{body}");
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");

    let mint = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] });
    let path = format!("/v1/sessions/{id}/execute");
    let mut paid = Vec::new();
    for _ in 0..2 {
        let (status, done) = s.call("POST", &path, Some(&key), Some(mint.clone())).await;
        assert_eq!((status, done["status"].as_str()), (200, Some("included")), "{done}");
        assert!(done["paymaster"].is_null(), "the account pays: {done}");
        paid.push((wei(&done["fee_wei"], "fee_wei"), done["gas_used"].clone()));
    }
    eprintln!("estimate {estimate}; paid (fee_wei, gas_used): {paid:?}");
    for ((actual, _), (estimated, which)) in paid.iter().zip([(first, "first"), (later, "later")]) {
        assert!(
            estimated * U256::from(2) >= *actual && estimated <= *actual * U256::from(2),
            "the {which} operation cost {actual} wei, estimated {estimated} wei: not within 0.5×–2× ({estimate})"
        );
    }
}
