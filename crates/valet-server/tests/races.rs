//! Revocation and cancellation win every race: once `revoke` answers, no further operation of the
//! session reaches the chain, however many requests were queued for its lane; once a schedule's
//! cancel answers, it never runs again, however the scheduler's passes interleave.

use alloy::primitives::{Address, U256};
use serde_json::{Value, json};
use valet_client::Devnet;
use valet_client::contracts::demo::ValetNFT;

mod common;
use common::*;

const MINT_ANY: &str = "valid_for = \"1h\"\n[[permission]]\ntarget = \"ValetNFT\"\n\
                        function = \"mint(address to, uint256 quantity)\"\nrules = [{ arg = \"to\", eq = \"$account\" }]\n";

async fn nfts(devnet: &Devnet, account: Address) -> U256 {
    ValetNFT::new(devnet.addresses.nft, &devnet.provider).balanceOf(account).call().await.expect("balanceOf")
}

/// 30 executions queue for one session's lane; a revoke lands after the first is included.
/// Whatever was in flight finishes before the revoke answers; nothing is minted after.
#[tokio::test]
async fn no_operation_reaches_the_chain_after_revoke_answers() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "revoke-race", false, None).await;
    let s = std::sync::Arc::new(s);
    let key = app_key(&s, "race").await;
    let (id, account) = granted(&s, &key, &devnet.key(3), MINT_ANY).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let execute = format!("/v1/sessions/{id}/execute");
    let mint = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] });
    // The first one deploys the account and enables the session: the rest queue behind it.
    let (status, first) = s.call("POST", &execute, Some(&key), Some(mint.clone())).await;
    assert_eq!(status, 200, "{first}");
    let mut queued = Vec::new();
    for _ in 0..30 {
        let (s, key, execute, mint) = (s.clone(), key.clone(), execute.clone(), mint.clone());
        queued.push(tokio::spawn(async move { s.call("POST", &execute, Some(&key), Some(mint)).await }));
    }
    // Let a few get in, then revoke.
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let (status, revoked) = s.call("POST", &format!("/v1/sessions/{id}/revoke"), Some(&key), None).await;
    assert_eq!(status, 200, "{revoked}");
    let at_revoke = nfts(&devnet, account).await;
    let mut answers: Vec<(u16, Value)> = Vec::new();
    for task in queued {
        answers.push(task.await.expect("request task"));
    }
    let included = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused = answers.iter().filter(|(s, b)| *s == 409 && b["error"] == "revoked").count();
    assert_eq!(included + refused, 30, "{answers:?}");
    assert!(refused > 0, "the revoke landed while requests were queued: {answers:?}");
    assert_eq!(nfts(&devnet, account).await, at_revoke, "nothing minted after the revoke answered");
    assert_eq!(at_revoke, U256::from(1 + included), "every 200 is a mint, and every mint a 200");
}

/// Ten schedules on one session run every 2 s of chain time while the scheduler passes; all are
/// cancelled at once mid-pass. After the cancels answer, none runs again and none is active.
#[tokio::test]
async fn a_cancelled_schedule_never_runs_again() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot_with(&devnet, "cancel-race", true, None, None, 1, |service, _| {
        service.scheduler_every = Some(std::time::Duration::from_millis(100));
    })
    .await;
    let s = std::sync::Arc::new(s);
    let key = app_key(&s, "race").await;
    let (id, account) = granted(&s, &key, &devnet.key(4), MINT_ANY).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let mint = json!({ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] });
    let mut schedules = Vec::new();
    for _ in 0..10 {
        let (status, created) = s
            .call(
                "POST",
                &format!("/v1/sessions/{id}/schedules"),
                Some(&key),
                Some(json!({ "calls": [mint], "every": 2 })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        schedules.push(created["schedule_id"].as_str().expect("schedule id").to_string());
    }
    // Keep the chain's clock moving so that runs fall due, until every schedule ran once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while nfts(&devnet, account).await < U256::from(10) {
        assert!(std::time::Instant::now() < deadline, "the schedules did not run");
        devnet.advance_time(2).await.expect("time");
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    devnet.advance_time(2).await.expect("time");
    let mut cancels = Vec::new();
    for schedule in &schedules {
        let (s, key, path) = (s.clone(), key.clone(), format!("/v1/schedules/{schedule}"));
        cancels.push(tokio::spawn(async move { s.call("DELETE", &path, Some(&key), None).await }));
    }
    for cancel in cancels {
        let (status, body) = cancel.await.expect("cancel task");
        assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")), "{body}");
    }
    let after_cancel = nfts(&devnet, account).await;
    for _ in 0..10 {
        devnet.advance_time(2).await.expect("time");
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    assert_eq!(nfts(&devnet, account).await, after_cancel, "a cancelled schedule ran");
    let (status, listed) = s.call("GET", &format!("/v1/sessions/{id}/schedules"), Some(&key), None).await;
    assert_eq!(status, 200, "{listed}");
    let statuses: Vec<&str> =
        listed["schedules"].as_array().expect("schedules").iter().filter_map(|s| s["status"].as_str()).collect();
    assert_eq!(statuses, vec!["cancelled"; 10], "{listed}");
}

/// Twenty requests with one Idempotency-Key at once on one session, and one more on another
/// session: one operation, one mint, and every answer is that execution (or its replay) or says
/// the key is taken.
#[tokio::test]
async fn one_idempotency_key_is_one_operation_however_many_ask_at_once() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "idempotency-race", false, None).await;
    let s = std::sync::Arc::new(s);
    let key = app_key(&s, "race").await;
    let (id, account) = granted(&s, &key, &devnet.key(3), MINT_ANY).await;
    let (other, other_account) = granted(&s, &key, &devnet.key(4), MINT_ANY).await;
    for a in [account, other_account] {
        devnet.fund(a, U256::from(10u128.pow(18))).await.expect("fund");
    }
    let mint = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] });
    let mut tasks = Vec::new();
    for n in 0..21 {
        let (s, key, mint) = (s.clone(), key.clone(), mint.to_string());
        let session = if n == 20 { other.clone() } else { id.clone() };
        tasks.push(tokio::spawn(async move {
            let headers = [("idempotency-key", "once"), ("content-type", "application/json")];
            (n, s.raw("POST", &format!("/v1/sessions/{session}/execute"), Some(&key), Some(mint), &headers).await)
        }));
    }
    // Whichever session gets the key first executes once; every other answer is that execution
    // (its replay) or says the key is taken.
    let mut executions = std::collections::BTreeSet::new();
    for task in tasks {
        let (_, (status, body)) = task.await.expect("task");
        match status {
            200 => {
                assert_eq!(body["status"], "included", "{body}");
                executions.insert(body["execution_id"].as_str().expect("id").to_string());
            }
            422 => assert_eq!(body["error"], "idempotency_key_reused", "{body}"),
            409 => assert_eq!(body["error"], "in_progress", "{body}"),
            _ => panic!("{status} {body}"),
        }
    }
    assert_eq!(executions.len(), 1, "one execution: {executions:?}");
    let minted = nfts(&devnet, account).await + nfts(&devnet, other_account).await;
    assert_eq!(minted, U256::from(1), "one mint across both sessions");
}

/// Two tabs on one session: tab A revokes it (in the service, then on chain with the owner's
/// signature). Tab B's revoke is answered 409 `already_revoked` with the transaction and when,
/// and no typed data: the page has nothing to ask the wallet for. Tab B's signature, if it got
/// one first, sends nothing either. A session the owner revoked on chain themselves, without the
/// service, is answered the same way, its transaction found on chain. (Tab B used to be given a
/// revocation to sign, and then "Revoked on chain in transaction …".)
#[tokio::test]
async fn a_second_revoke_says_when_and_sends_nothing() {
    use alloy::providers::Provider as _;
    use alloy::signers::SignerSync as _;
    let devnet = Devnet::start().await.expect("devnet");
    let (s, service, _, _) = boot(&devnet, "revoke-twice", false, None).await;
    let key = app_key(&s, "tabs").await;
    let owner = devnet.key(3);
    let (id, account) = granted(&s, &key, &owner, MINT_ANY).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let mint = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] });
    let (status, body) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint.clone())).await;
    assert_eq!(status, 200, "enabled on chain: {body}");

    // Tab A.
    let revoke = format!("/v1/sessions/{id}/revoke");
    let (status, stopped) = s.call("POST", &revoke, Some(&key), None).await;
    assert_eq!(status, 200, "{stopped}");
    let digest: alloy::primitives::B256 = stopped["onchain"]["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let onchain = format!("/v1/sessions/{id}/revoke/onchain");
    let (status, landed) = s.call("POST", &onchain, Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!((status, landed["onchain"].as_str()), (200, Some("included")), "{landed}");
    let tx = landed["transaction_hash"].as_str().expect("tx").to_string();

    // Tab B: told before any signature, and nothing is sent for the one it may hold.
    let relayer = devnet.key(1).address();
    let sent = devnet.provider.get_transaction_count(relayer).await.expect("nonce");
    let (status, again) = s.call("POST", &revoke, Some(&key), None).await;
    assert_eq!((status, again["error"].as_str()), (409, Some("already_revoked")), "{again}");
    assert_eq!((again["onchain"].as_str(), again["transaction_hash"].as_str()), (Some("included"), Some(&*tx)));
    assert!(again["revoked_at"].as_u64().is_some(), "{again}");
    assert!(again["message"].as_str().is_some_and(|m| m.contains(&tx)), "{again}");
    assert!(again.get("typed_data").is_none() && again["onchain"].get("typed_data").is_none(), "{again}");
    let (status, again) = s.call("POST", &onchain, Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!((status, again["error"].as_str()), (409, Some("already_revoked")), "{again}");
    assert_eq!(again["transaction_hash"].as_str(), Some(&*tx), "{again}");
    assert_eq!(devnet.provider.get_transaction_count(relayer).await.expect("nonce"), sent, "nothing sent");

    // Revoked by the owner on chain, not through the service: found there, with its transaction.
    let other = devnet.key(5);
    let (id, account) = granted(&s, &key, &other, MINT_ANY).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let (status, body) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint)).await;
    assert_eq!(status, 200, "{body}");
    let owned = service.valet.account(other.address(), U256::ZERO).await.expect("account");
    let receipt = service.valet.revoke(&owned, &other, id.parse().expect("id")).await.expect("the owner revokes");
    let (status, again) = s.call("POST", &format!("/v1/sessions/{id}/revoke"), Some(&key), None).await;
    assert_eq!((status, again["error"].as_str()), (409, Some("already_revoked")), "{again}");
    assert_eq!(again["transaction_hash"], json!(receipt.transaction_hash), "{again}");
    assert!(again["revoked_at"].as_u64().is_some(), "{again}");
    let (_, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&key), None).await;
    assert_eq!((shown["status"].as_str(), shown["chain"]["state"].as_str()), (Some("revoked"), Some("revoked")));
}
