//! `valet demo --json` on a fresh devnet, directly and through the Alto bundler: ten mints with
//! one grant, both refusals with reasons (before sending and on chain), three DAO votes with one
//! more grant, and a daily allowance paid across two periods.

use std::process::Command;

fn demo(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_valet")).args(args).output().expect("valet runs");
    assert!(out.status.success(), "valet {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn check_story(doc: &serde_json::Value, submitter: &str) {
    assert_eq!(doc["submitter"], submitter);
    assert_eq!(doc["mints_succeeded"], 10);
    assert_eq!(doc["nft_balance"], 10);
    let wei = |key: &str| doc["mint_fees"][key].as_str().and_then(|v| v.parse::<u128>().ok()).expect(key);
    let total = |key: &str| doc[key].as_str().and_then(|v| v.parse::<u128>().ok()).expect(key);
    assert_eq!(wei("budget_wei"), 10u128.pow(16), "{doc}");
    if doc["sponsored"] == true {
        // The paymaster paid every fee: the account, holding no ETH, paid none and committed
        // none of its fee budget; the paymaster's deposit paid what the operations cost.
        assert_eq!(wei("committed_wei"), 0, "{doc}");
        assert_eq!(wei("paid_wei"), 0, "{doc}");
        assert!(wei("sponsored_wei") > 0, "{doc}");
        assert_eq!(total("fees_paid_by_account_wei"), 0, "{doc}");
        assert!(total("fees_paid_by_paymaster_wei") >= wei("sponsored_wei"), "{doc}");
        assert!(doc["paymaster"].as_str().is_some_and(|p| p.len() == 42), "{doc}");
    } else {
        // The fee rule: the mints committed part of the 0.01 ETH budget (at their maximum cost),
        // and paid no more than that.
        assert!(wei("committed_wei") > 0 && wei("committed_wei") <= wei("budget_wei"), "{doc}");
        assert!(wei("paid_wei") > 0 && wei("paid_wei") <= wei("committed_wei"), "{doc}");
        assert_eq!(wei("sponsored_wei"), 0, "{doc}");
        assert!(total("fees_paid_by_account_wei") >= wei("paid_wei"), "{doc}");
        assert_eq!(total("fees_paid_by_paymaster_wei"), 0, "{doc}");
    }
    let summary: Vec<&str> = doc["summary"].as_array().expect("summary").iter().filter_map(|l| l.as_str()).collect();
    assert!(
        summary.contains(
            &"May spend up to 0.01 ETH of your ETH on network fees, counted at each operation's maximum cost."
        ),
        "{doc}"
    );
    let refusals = doc["refusals"].as_array().expect("refusals");
    assert_eq!(refusals.len(), 3, "{doc}");
    let field = |i: usize, key: &str| refusals[i][key].as_str().unwrap_or_default().to_string();
    assert_eq!(field(0, "op"), "mint 11");
    assert!(field(0, "reason").contains("has been called all 10 times the session allows"), "{doc}");
    assert!(field(0, "refusal").contains("has used all 10 of its calls"), "{doc}");
    assert!(field(0, "chain").contains("PermissionUsesExhausted("), "{doc}");
    assert!(field(0, "chain").contains("maxUses=10"), "{doc}");
    assert_eq!(field(1, "op"), "mint of 6");
    assert!(field(1, "reason").contains("quantity = 6, but the session requires quantity ≤ 5"), "{doc}");
    assert!(field(1, "chain").contains("RuleViolated(") && field(1, "chain").contains("value=6"), "{doc}");
    assert!(field(2, "reason").contains("1 VLT, but 10 VLT of the 10 VLT allowed per 1 day"), "{doc}");
    assert!(field(2, "chain").contains("LimitExceeded("), "{doc}");

    let gas = doc["gas"].as_array().expect("gas per operation");
    let included: Vec<&serde_json::Value> = gas.iter().filter(|g| g["status"] == "included").collect();
    assert_eq!(included.len(), 10 + 3 + 2, "{doc}");
    assert!(included.iter().all(|g| g["gas"].as_u64().is_some_and(|n| n > 21_000)), "{doc}");
    assert!(gas[0]["gas"].as_u64() > gas[1]["gas"].as_u64(), "the first operation also deployed and enabled");
    assert!(doc["session_id"].as_str().is_some_and(|s| s.len() == 66));
    assert_eq!(doc["votes"]["cast"], 3);
    assert_eq!(doc["payments"]["payee_balance"], "20", "10 VLT on each of two days");
}

#[test]
fn the_demo_tells_the_whole_story_with_direct_submission() {
    check_story(&demo(&["demo", "--json"]), "direct");
}

#[test]
fn the_demo_tells_the_whole_story_through_the_alto_bundler() {
    check_story(&demo(&["demo", "--json", "--bundler", "alto"]), "bundler");
}

#[test]
fn the_sponsored_demo_runs_with_an_account_holding_no_eth() {
    let doc = demo(&["demo", "--json", "--sponsored"]);
    assert_eq!(doc["sponsored"], true);
    check_story(&doc, "direct");
}

#[test]
fn the_sponsored_demo_runs_through_the_alto_bundler() {
    let doc = demo(&["demo", "--json", "--sponsored", "--bundler", "alto"]);
    assert_eq!(doc["sponsored"], true);
    check_story(&doc, "bundler");
}

#[test]
fn unknown_commands_are_refused_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_valet")).arg("dmeo").output().expect("valet runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unrecognized subcommand 'dmeo'"), "{stderr}");
    assert!(stderr.contains("Usage: valet"), "{stderr}");
}

/// `valet demo --chains 2`: two anvils with their own chain ids, one grant signature, ten mints on
/// each and the eleventh refused on each (by pre-flight and by that chain), each counting its own.
#[test]
fn the_multichain_demo_grants_once_and_counts_per_chain() {
    let doc = demo(&["demo", "--json", "--chains", "2"]);
    assert_eq!(doc["grant_signatures"], 1, "{doc}");
    assert_eq!(doc["mints_succeeded"], serde_json::json!({ "8453": 10, "10": 10 }), "{doc}");
    let chains = doc["chains"].as_array().expect("chains");
    assert_eq!(chains.len(), 2);
    for chain in chains {
        assert_eq!(chain["nft_balance"], 10, "{chain}");
        assert_eq!(chain["account"], doc["account"], "the same account address on every chain");
    }
    assert_ne!(chains[0]["session_id"], chains[1]["session_id"], "a session per chain");
    let refusals = doc["refusals"].as_array().expect("refusals");
    assert_eq!(refusals.len(), 2, "{doc}");
    for (refusal, chain_id) in refusals.iter().zip([8453, 10]) {
        assert_eq!(refusal["chain_id"], chain_id, "{refusal}");
        assert!(refusal["reason"].as_str().is_some_and(|r| r.contains("all 10 times")), "{refusal}");
        assert!(refusal["chain"].as_str().is_some_and(|c| c.contains("PermissionUsesExhausted")), "{refusal}");
    }
    assert!(doc["summary"][0].as_str().is_some_and(|s| s.contains("2 chains")), "{doc}");
}

#[test]
fn the_multichain_demo_refuses_a_chain_count_it_cannot_run() {
    for n in ["1", "5"] {
        let out = Command::new(env!("CARGO_BIN_EXE_valet")).args(["demo", "--chains", n]).output().expect("runs");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("--chains {n}: the demo runs on 2 to 4 chains")), "{err}");
    }
}

fn check_eip7702_story(doc: &serde_json::Value, submitter: &str, owner_signatures: u64) {
    assert_eq!(doc["submitter"], submitter, "{doc}");
    assert_eq!(doc["account_kind"], "eip7702");
    assert_eq!(doc["account"], doc["owner"], "the session acts at the owner's own address: {doc}");
    assert_eq!(doc["mints_succeeded"], 10, "{doc}");
    assert_eq!(doc["nft_balance"], 10, "the EOA owns the NFTs: {doc}");
    assert_eq!(doc["grant_signatures"], 1, "{doc}");
    assert_eq!(doc["owner_signatures"], owner_signatures, "{doc}");
    let refusals = doc["refusals"].as_array().expect("refusals");
    assert_eq!(refusals.len(), 2, "{doc}");
    assert!(refusals[0]["chain"].as_str().is_some_and(|c| c.contains("PermissionUsesExhausted")), "{doc}");
    assert!(refusals[1]["reason"].as_str().is_some_and(|r| r.contains("quantity = 6")), "{doc}");
}

/// `valet demo --account eip7702`: the owner's EOA delegates to Valet's account; directly, the
/// session's first mint delegates, activates and enables (two owner signatures: delegation and
/// grant); through Alto the EOA upgrades in an owner operation first (three).
#[test]
fn the_eip7702_demo_mints_at_the_owners_own_address() {
    check_eip7702_story(&demo(&["demo", "--json", "--account", "eip7702"]), "direct", 2);
}

#[test]
fn the_eip7702_demo_runs_through_the_alto_bundler() {
    check_eip7702_story(&demo(&["demo", "--json", "--account", "eip7702", "--bundler", "alto"]), "bundler", 3);
}
