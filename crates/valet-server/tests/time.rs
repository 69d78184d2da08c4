//! Time in the service, against a real anvil whose clock is steered: proposals last their whole
//! duration from Valet's clock (the later of the chain's last block and the wall clock), a proposal that expired
//! waiting for its grant is not granted, and the scheduler says truly why it skipped runs —
//! missed while the service was down, or late while it ran (the chain's clock jumped).

mod common;

use alloy::primitives::{B256, U256};
use alloy::providers::Provider as _;
use alloy::signers::SignerSync;
use serde_json::{Value, json};
use valet_client::Devnet;
use valet_server::MasterKey;
use valet_server::scheduler::{LATE_WHILE_UP, MISSED_WHILE_DOWN};

use common::*;

const MINT: &str = "[[permission]]\ntarget = \"ValetNFT\"\nfunction = \"mint(address to, uint256 quantity)\"\n\
                    rules = [{ arg = \"to\", eq = \"$account\" }]\n";

fn wall() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs()
}

async fn rpc(devnet: &Devnet, method: &str, param: u64) {
    let _: Value = devnet.provider.raw_request(method.to_string().into(), [param]).await.expect(method);
}

/// The session's audit events `event`, their details.
async fn events(s: &Server, key: &str, session: &str, event: &str) -> Vec<Value> {
    let (status, audit) = s.call("GET", &format!("/v1/audit?session_id={session}&limit=1000"), Some(key), None).await;
    assert_eq!(status, 200, "{audit}");
    audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == event)
        .map(|e| e["detail"].clone())
        .collect()
}

/// After a devnet idles, its last block lags the wall clock. A session proposed then keeps its
/// whole duration from the wall clock, its window opening at the latest block (it used to be
/// counted from the last block: a 2-minute
/// session proposed 10 minutes after the last block was over before it was granted). A
/// proposal whose window closed while it waited for the owner is not granted.
#[tokio::test]
async fn proposals_last_their_whole_duration_and_an_expired_one_is_not_granted() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, dir, _) = boot(&devnet, "time-proposals", false, None).await;
    let key = app_key(&s, "clock").await;
    let owner = devnet.key(4);
    // The last block 10 minutes ago, and anvil's clock back at the wall clock: an idle devnet.
    rpc(&devnet, "evm_setTime", wall() - 600).await;
    devnet.mine().await.expect("mine");
    rpc(&devnet, "evm_setTime", wall()).await;
    let before = wall();
    let block = devnet.provider.get_block_by_number(Default::default()).await.expect("block").expect("latest");
    assert!(block.header.timestamp + 590 <= before, "the chain lags the wall clock");

    let propose = |valid_for: &str, salt: u32| json!({ "owner": owner.address(), "spec": format!("valid_for = \"{valid_for}\"\nsalt = {salt}\n{MINT}[fees]\nbudget = \"0.5 ether\"\n") });
    let (status, proposed) = s.call("POST", "/v1/sessions", Some(&key), Some(propose("2m", 0))).await;
    assert_eq!(status, 201, "{proposed}");
    let (after, until) =
        (proposed["valid_after"].as_u64().expect("after"), proposed["valid_until"].as_u64().expect("until"));
    assert!(until + 1 >= before + 120, "the whole 2 minutes from the wall clock ({before}): {proposed}");
    assert_eq!(after, block.header.timestamp, "starts at the latest block, where a bundler simulates: {proposed}");
    assert!(proposed["summary"][0].as_str().is_some_and(|l| l.starts_with("Valid for 2 minutes")), "{proposed}");

    // Proposed for 30 s; the owner signs a minute later.
    let (status, short) = s.call("POST", "/v1/sessions", Some(&key), Some(propose("30s", 1))).await;
    assert_eq!(status, 201, "{short}");
    devnet.advance_time(60).await.expect("a minute");
    let id = short["session_id"].as_str().expect("id");
    let digest: B256 = short["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let (status, refused) =
        s.call("POST", &format!("/v1/sessions/{id}/grant"), Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("before it was granted")), "{refused}");
    let (_, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&key), None).await;
    assert_eq!(shown["status"], "proposed", "{shown}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A schedule every minute. Runs due while no scheduler ran (the service down, the chain's clock
/// moving on) are skipped as missed while the service was down when it starts; runs that fall
/// due at once while it runs — the chain's clock jumps five minutes, as on an idle devnet when
/// a block finally comes — are skipped as late, not as missed while down. Either way the latest
/// run is made, once.
#[tokio::test]
async fn the_scheduler_tells_runs_missed_while_down_from_late_ones() {
    let devnet = Devnet::start().await.expect("devnet");
    let master = MasterKey::generate().to_hex().to_string();
    // The service without a scheduler: as far as schedules go, it is down.
    let (down, _, dir_down, database) = boot_with(&devnet, "time-down", false, None, Some(&master), 1, |_, _| {}).await;
    let key = app_key(&down, "payroll").await;
    let (id, account) = granted(&down, &key, &devnet.key(4), &format!("valid_for = \"1d\"\n{MINT}")).await;
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
    let mint = json!({ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] });
    let (status, created) = down
        .call(
            "POST",
            &format!("/v1/sessions/{id}/schedules"),
            Some(&key),
            Some(json!({ "calls": [mint], "every": "1m" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    devnet.advance_time(5 * 60 + 5).await.expect("five minutes pass with no scheduler");

    // The scheduler starts: runs 0 to 4 were missed while it was down; run 5 is made.
    let (up, _, dir_up, _) = boot_with(&devnet, "time-up", true, Some(database), Some(&master), 1, |_, _| {}).await;
    let made = |n: usize| {
        let (up, key, id) = (&up, &key, &id);
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let runs = events(up, key, id, "schedule.run").await;
                if runs.len() >= n {
                    return runs;
                }
                assert!(std::time::Instant::now() < deadline, "run {n} was not made: {runs:?}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    let runs = made(1).await;
    assert_eq!(runs[0]["run"], 5, "{runs:?}");
    let skipped = events(&up, &key, &id, "schedule.skipped").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        (&skipped[0]["reason"], &skipped[0]["first_run"], &skipped[0]["last_run"]),
        (&json!(MISSED_WHILE_DOWN), &json!(0), &json!(4)),
        "{skipped:?}"
    );

    // While it runs, the chain's clock jumps five minutes: runs 6 to 9 are late, run 10 is made.
    devnet.advance_time(5 * 60).await.expect("the clock jumps");
    let runs = made(2).await;
    assert_eq!(runs[1]["run"], 10, "{runs:?}");
    assert_eq!(runs[1]["outcome"]["status"], 200, "{runs:?}");
    let skipped = events(&up, &key, &id, "schedule.skipped").await;
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let late = skipped.iter().find(|e| e["first_run"] == 6).expect("runs 6 to 9 skipped");
    assert_eq!((&late["reason"], &late["last_run"], &late["count"]), (&json!(LATE_WHILE_UP), &json!(9), &json!(4)));
    assert_eq!(
        skipped.iter().filter(|e| e["reason"] == MISSED_WHILE_DOWN).count(),
        1,
        "only the runs before the scheduler started were missed while down: {skipped:?}"
    );
    assert_eq!(events(&up, &key, &id, "execution.included").await.len(), 2);
    drop((down, up));
    let _ = std::fs::remove_dir_all(&dir_down);
    let _ = std::fs::remove_dir_all(&dir_up);
}

/// Through a bundler, which simulates at the latest block: on an idle chain (its last block 10
/// minutes behind the wall clock) a session granted now is used at once — its window starts no
/// later than the latest block — instead of being refused "AA22 not due" until a block comes.
#[tokio::test]
async fn a_session_granted_on_an_idle_chain_is_usable_at_once_through_a_bundler() {
    use std::sync::Arc;
    let devnet = Devnet::start_with(valet_client::DevnetOptions { alto: true, ..Default::default() })
        .await
        .expect("devnet with Alto");
    let client = valet_client::BundlerClient::new(&devnet.bundler_url().expect("alto"), devnet.addresses.entry_point)
        .expect("client");
    let valet = valet_client::Valet::new(
        devnet.provider.clone(),
        Arc::new(valet_client::Bundler::new(client)),
        devnet.deployment(),
    )
    .await
    .expect("valet");
    let (s, _, dir, _) = boot_with(&devnet, "time-bundler", false, None, None, 1, move |service, _| {
        service.valet = valet;
        service.relayer = None;
    })
    .await;
    let key = app_key(&s, "clock").await;
    let owner = devnet.key(3);
    // The account, funded while the chain still moves (funding mines a block).
    let (_, found) = s.call("GET", &format!("/v1/accounts/{}", owner.address()), Some(&key), None).await;
    let fresh_account: alloy::primitives::Address = found["address"].as_str().expect("address").parse().expect("hex");
    devnet.fund(fresh_account, U256::from(10u128.pow(18))).await.expect("fund");
    // Idle: the last block 10 minutes ago, anvil's clock back at the wall clock. Nothing mines a
    // block from here until the bundler sends the operation.
    rpc(&devnet, "evm_setTime", wall() - 600).await;
    devnet.mine().await.expect("mine");
    rpc(&devnet, "evm_setTime", wall()).await;
    let spec = format!("valid_for = \"1h\"\n{MINT}[fees]\nbudget = \"0.5 ether\"\n");
    let (status, proposed) =
        s.call("POST", "/v1/sessions", Some(&key), Some(json!({ "owner": owner.address(), "spec": spec }))).await;
    assert_eq!(status, 201, "{proposed}");
    let fresh = proposed["session_id"].as_str().expect("id").to_string();
    assert_eq!(
        proposed["account"].as_str().expect("account").parse::<alloy::primitives::Address>().expect("hex"),
        fresh_account
    );
    let digest: B256 = proposed["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let (status, body) = s
        .call("POST", &format!("/v1/sessions/{fresh}/grant"), Some(&key), Some(json!({ "signature": signature })))
        .await;
    assert_eq!(status, 200, "{body}");
    let mint = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] });
    let (status, body) = s.call("POST", &format!("/v1/sessions/{fresh}/execute"), Some(&key), Some(mint)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("included")), "{body}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a chain whose clock runs ahead of the wall clock (anvil after time travel: a day ahead,
/// as `valet demo` leaves a devnet), idle: its last block lags the time its next block will
/// carry. A 20-second session is used once; then 23 seconds pass without a block. The session
/// has expired: it says so (not usable), and its execution is refused before anything is sent,
/// in pre-flight's words (422 `refused`). It used to be judged by the last block — still
/// inside the window — and sent to the EntryPoint, which refused it `AA22 expired or not due`
/// (once a 503 with an internal message, then a 422 `rejected_by_chain` and a failed record).
#[tokio::test]
async fn an_expired_session_is_refused_before_sending_on_a_chain_ahead_of_the_wall_clock() {
    let devnet = Devnet::start().await.expect("devnet");
    let sponsor = devnet.sponsor();
    let (s, _, dir, _) = boot_with(&devnet, "time-ahead", false, None, None, 1, move |service, _| {
        service.sponsor = Some(sponsor);
    })
    .await;
    let budget = json!({ "name": "clock", "sponsorship": { "daily_budget_wei": "1000000000000000000" } });
    let (status, app) = s.call("POST", "/v1/apps", Some(ADMIN), Some(budget)).await;
    assert_eq!(status, 201, "{app}");
    let key = app["api_key"].as_str().expect("key").to_string();
    devnet.advance_time(86_400).await.expect("a day ahead");
    let owner = devnet.key(4);
    let spec = format!("valid_for = \"20s\"\nfees = \"sponsored\"\n{MINT}");
    let (id, _) = granted(&s, &key, &owner, &spec).await;
    let mint = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] });
    let execute = format!("/v1/sessions/{id}/execute");
    let (status, body) = s.call("POST", &execute, Some(&key), Some(mint.clone())).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("included")), "{body}");

    // 23 seconds without a block: the next block's time moves on, the last block's does not.
    rpc(&devnet, "evm_increaseTime", 23).await;
    let relayer = devnet.key(1).address();
    let sent = devnet.provider.get_transaction_count(relayer).await.expect("nonce");
    let (status, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&key), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["usable"], false, "an expired session is not offered: {shown}");
    assert!(shown["reason"].as_str().is_some_and(|r| r.starts_with("session expired at")), "{shown}");
    let (status, body) = s.call("POST", &execute, Some(&key), Some(mint)).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("refused")), "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(message.starts_with("the session expired at") && message.ends_with("grant a new one"), "{body}");
    assert!(body["refusal"].as_str().is_some_and(|r| r.starts_with("valid from")), "{body}");
    assert_eq!(devnet.provider.get_transaction_count(relayer).await.expect("nonce"), sent, "nothing was sent");
    // The record agrees: refused, never sent; no failure.
    let execution = body["execution_id"].as_str().expect("execution id");
    let (status, recorded) = s.call("GET", &format!("/v1/executions/{execution}"), Some(&key), None).await;
    assert_eq!((status, recorded["status"].as_str()), (200, Some("refused")), "{recorded}");
    assert!(events(&s, &key, &id, "execution.failed").await.is_empty());
    assert_eq!(events(&s, &key, &id, "execution.refused").await.len(), 1);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
