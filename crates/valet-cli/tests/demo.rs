//! `valet demo --json` on a fresh devnet: ten mints with one grant, both refusals with reasons.

use std::process::Command;

#[test]
fn the_demo_reports_ten_mints_and_two_refusals() {
    let out = Command::new(env!("CARGO_BIN_EXE_valet")).args(["demo", "--json"]).output().expect("valet runs");
    assert!(out.status.success(), "valet demo failed: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["mints_succeeded"], 10);
    assert_eq!(doc["nft_balance"], 10);
    let refusals = doc["refusals"].as_array().expect("refusals");
    assert_eq!(refusals.len(), 2);
    assert!(refusals[0]["reason"].as_str().is_some_and(|r| r.contains("has used all 10 of its calls")), "{doc}");
    assert!(refusals[0]["chain"].as_str().is_some_and(|r| r.contains("PermissionUsesExhausted")), "{doc}");
    assert!(refusals[1]["reason"].as_str().is_some_and(|r| r.contains("argument 1 = 6 breaks rule 1")), "{doc}");
    assert!(refusals[1]["chain"].as_str().is_some_and(|r| r.contains("RuleViolated")), "{doc}");
    let gas = doc["gas"].as_array().expect("gas per operation");
    assert_eq!(gas.len(), 12);
    assert!(gas[0]["gas"].as_u64() > gas[1]["gas"].as_u64(), "the first operation also deployed and enabled");
    assert!(doc["session_id"].as_str().is_some_and(|s| s.len() == 66));
}

#[test]
fn unknown_commands_are_refused_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_valet")).arg("dmeo").output().expect("valet runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command `dmeo`"));
}
