//! `valet deploy` on chains as any chain is before Valet (bare anvils: only the deterministic
//! deployment proxy in genesis), and a `valet` installed with `cargo install` run from elsewhere.

mod common;

use std::path::Path;
use std::process::Output;

use alloy::primitives::{Bytes, U256};
use alloy::providers::Provider;
use common::{Api, Proc, TempDir, valet};
use serde_json::Value;
use valet_client::{Devnet, DevnetOptions};

async fn bare(chain_id: u64) -> Devnet {
    Devnet::start_with(DevnetOptions { chain_id: Some(chain_id), bare: true, ..Default::default() })
        .await
        .expect("a bare anvil")
}

fn deployer_key(chain: &Devnet) -> String {
    format!("0x{}", alloy::hex::encode(chain.key(0).to_bytes()))
}

/// `valet deploy --json` against `chain`, with the deployer key in the environment.
fn deploy(chain: &Devnet, extra: &[&str]) -> Output {
    let url = chain.endpoint();
    let mut args = vec!["deploy", "--rpc-url", &url, "--json"];
    args.extend_from_slice(extra);
    valet(&args, &[("VALET_DEPLOYER_KEY", &deployer_key(chain))]).output().expect("valet deploy")
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "valet deploy failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

#[tokio::test]
async fn valet_deploy_gives_the_same_addresses_on_two_chains_and_is_idempotent() {
    let (a, b) = (bare(2001).await, bare(2002).await);
    let (on_a, on_b) = (json(&deploy(&a, &[])), json(&deploy(&b, &[])));
    assert_eq!(on_a["chain_id"], 2001);
    assert_eq!(on_b["chain_id"], 2002);
    for field in ["entry_point", "validator", "factory", "account_implementation"] {
        assert!(on_a[field].is_string(), "{field} in {on_a}");
        assert_eq!(on_a[field], on_b[field], "{field}: the same address on both chains");
    }
    // The addresses are known offline, before anything is deployed.
    let offline = valet(&["deploy", "--rpc-url", "http://127.0.0.1:9", "--addresses", "--json"], &[])
        .output()
        .expect("valet deploy --addresses");
    let offline = json(&offline);
    for field in ["entry_point", "validator", "factory", "account_implementation"] {
        assert_eq!(offline["valet"][field], on_a[field], "{field} computed offline");
    }
    assert_eq!(on_a["deployed"], serde_json::json!(["entry_point", "validator", "factory"]));
    assert_eq!(on_a["factory_stake_wei"], "1000000000000000000", "1 ether by default: {on_a}");
    let manager: alloy::primitives::Address =
        on_a["factory_stake_manager"].as_str().expect("address").parse().expect("address");
    assert_eq!(manager, a.key(0).address());
    // The stake is visible in the EntryPoint.
    let entry_point = on_a["entry_point"].as_str().expect("address").parse().expect("address");
    let factory = on_a["factory"].as_str().expect("address").parse().expect("address");
    let info = valet_client::contracts::entry_point::EntryPoint::new(entry_point, &a.provider)
        .getDepositInfo(factory)
        .call()
        .await
        .expect("deposit info");
    assert!(info.staked && U256::from(info.stake) == U256::from(10u128.pow(18)) && info.unstakeDelaySec == 86_400);

    // A second run deploys nothing and stakes nothing.
    let again = json(&deploy(&a, &[]));
    assert_eq!(again["deployed"], serde_json::json!([]), "{again}");
    assert_eq!(again["staked"], false);
    assert_eq!(again["transactions"], serde_json::json!([]));
    // --demo adds the demo contracts only; a larger --stake adds the difference.
    let demo = json(&deploy(&a, &["--demo", "--stake", "2.5 ether", "--unstake-delay", "172800"]));
    assert_eq!(demo["deployed"], serde_json::json!(["nft", "token", "dao"]));
    assert_eq!(demo["factory_stake_wei"], "2500000000000000000", "2.5 ether: {demo}");
    assert_eq!(demo["factory_unstake_delay_sec"], 172_800);
    for name in ["nft", "token", "dao"] {
        let address = demo["demo"][name].as_str().expect("address").parse().expect("address");
        assert!(!a.provider.get_code_at(address).await.expect("code").is_empty(), "{name} deployed");
    }

    // A paymaster for a sponsor key: deployed, staked and funded once; its address is the same
    // on every chain for the same signer and owner.
    let signer = alloy::primitives::Address::repeat_byte(0x5a).to_string();
    let args = ["--paymaster-signer", signer.as_str(), "--paymaster-deposit", "3 ether"];
    let (first, second) = (json(&deploy(&b, &args)), json(&deploy(&b, &args)));
    let expected = valet_client::paymaster::paymaster_address(signer.parse().expect("signer"), b.key(0).address());
    let address: alloy::primitives::Address =
        first["paymaster"]["address"].as_str().expect("address").parse().expect("address");
    assert_eq!(address, expected);
    assert_eq!(first["deployed"], serde_json::json!(["paymaster"]), "{first}");
    assert_eq!(first["paymaster"]["deposit_wei"], "3000000000000000000");
    assert_eq!(first["paymaster"]["stake_wei"], "1000000000000000000");
    assert_eq!(second["deployed"], serde_json::json!([]), "{second}");
    assert_eq!(second["paymaster"]["deposit_wei"], "3000000000000000000", "topped up only to what is asked");
    let info = valet_client::contracts::entry_point::EntryPoint::new(entry_point, &b.provider)
        .getDepositInfo(address)
        .call()
        .await
        .expect("deposit info");
    assert!(info.staked && U256::from(info.deposit) == U256::from(3u128 * 10u128.pow(18)));
}

#[tokio::test]
async fn valet_deploy_refuses_other_code_at_a_canonical_address_and_bad_input() {
    let chain = bare(2003).await;
    let factory: alloy::primitives::Address = valet_client::deploy::canonical().factory;
    let _: () = chain
        .provider
        .raw_request("anvil_setCode".into(), (factory, Bytes::from_static(&[0x60, 0x00])))
        .await
        .expect("setCode");
    let output = deploy(&chain, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused");
    let failure: Value = serde_json::from_slice(&output.stdout).expect("under --json, the failure as JSON");
    assert_eq!(failure["status"], "failed", "{failure}");
    assert!(failure["error"].as_str().is_some_and(|e| e.contains("not Valet's ValetAccountFactory")), "{failure}");
    assert!(stderr.contains(&factory.to_string()) && stderr.contains("not Valet's ValetAccountFactory"), "{stderr}");
    assert_eq!(chain.provider.get_transaction_count(chain.key(0).address()).await.expect("nonce"), 0, "sent nothing");

    // Bad input is named.
    let url = chain.endpoint();
    let no_key = valet(&["deploy", "--rpc-url", &url], &[]).output().expect("valet");
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("--deployer-key"), "names the missing key");
    let bad_stake =
        valet(&["deploy", "--rpc-url", &url, "--stake", "1 bitcoin"], &[("VALET_DEPLOYER_KEY", &deployer_key(&chain))])
            .output()
            .expect("valet");
    assert!(String::from_utf8_lossy(&bad_stake.stderr).contains("unknown unit `bitcoin`"), "{bad_stake:?}");
    let bad_key = valet(&["deploy", "--rpc-url", &url], &[("VALET_DEPLOYER_KEY", "0x1234")]).output().expect("valet");
    let text = String::from_utf8_lossy(&bad_key.stderr);
    assert!(text.contains("not a 32-byte hex private key") && !text.contains("0x1234"), "{text}");
}

/// `cargo install` of this checkout into a temporary root (a debug build sharing this
/// workspace's target directory, so it reuses what the tests built), then `valet demo` from
/// another directory: contracts are built in, tools come from `VALET_TOOLS`; without them the
/// error names what is missing and how to install it.
#[test]
fn an_installed_valet_runs_the_demo_from_any_directory() {
    let root = TempDir::new("install");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), Into::into);
    let status = std::process::Command::new(env!("CARGO"))
        .args(["install", "--path", "crates/valet-cli", "--debug", "--locked", "--offline", "--quiet", "--root"])
        .arg(&root.0)
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo install");
    assert!(status.success(), "cargo install failed");
    let installed = root.0.join("bin/valet");
    let elsewhere = TempDir::new("elsewhere");
    let tools = workspace.join("tools").canonicalize().expect("tools");
    let run = |tools: &Path| {
        let mut installed = std::process::Command::new(&installed);
        installed.args(["demo", "--json"]).current_dir(&elsewhere.0).env("VALET_TOOLS", tools);
        for var in common::VALET_VARS {
            installed.env_remove(var);
        }
        installed.output().expect("the installed valet")
    };
    let output = run(&tools);
    assert!(output.status.success(), "valet demo from elsewhere: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("the demo's JSON");
    assert_eq!(report["mints_succeeded"], 10, "{report}");

    let empty = TempDir::new("no-tools");
    let output = run(&empty.0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("anvil not found") && stderr.contains("npm"), "names the tool and the install: {stderr}");
}

/// `valet serve --chain`: one service on two chains (Valet at the same addresses on both), one
/// owner signature granting a session on each, each minting on its own chain; a `--chain`
/// without Valet, or a bundler for a chain not served, refused before serving, naming it.
#[tokio::test]
async fn valet_serve_serves_several_chains_and_one_grant_covers_them() {
    use alloy::signers::SignerSync;
    let dir = TempDir::new("serve-chains");
    let (a, b) = (
        Devnet::start_with(DevnetOptions { chain_id: Some(8453), ..Default::default() }).await.expect("chain 8453"),
        Devnet::start_with(DevnetOptions { chain_id: Some(10), ..Default::default() }).await.expect("chain 10"),
    );
    let relayer = format!("0x{}", alloy::hex::encode(a.key(1).to_bytes()));
    let nft = format!("ValetNFT={}", a.addresses.nft);
    assert_eq!(a.addresses.nft, b.addresses.nft, "the demo NFT at the same address on both");
    let data = dir.0.join("serve");
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--json",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("UTF-8"),
            "--relayer-key",
            &relayer,
            "--name",
            &nft,
        ];
        args.extend_from_slice(extra);
        valet(&args, &[("VALET_ADMIN_TOKEN", "serve-chains-admin-token-0123456789")])
    };
    let (url_a, url_b) = (a.endpoint(), b.endpoint());

    // Refused before serving: a chain without Valet, a bundler for a chain not served.
    let empty = bare(2004).await;
    let url_bare = format!("{}?apikey=secret-api-key", empty.endpoint());
    let output = serve(&["--rpc-url", &url_a, "--chain", &url_bare]).output().expect("valet serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("chain 2004") && stderr.contains("no EntryPoint v0.7 at"), "{stderr}");
    assert!(!stderr.contains("secret-api-key"), "a URL's query never shows: {stderr}");
    let output = serve(&["--rpc-url", &url_a, "--chain", &url_b, "--chain-bundler", "999=http://127.0.0.1:9"])
        .output()
        .expect("valet serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("no --chain serves chain 999"), "{stderr}");
    let output = serve(&["--rpc-url", &url_a, "--chain", &url_a]).output().expect("valet serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("chain 8453 is served already"), "{stderr}");

    let service =
        Proc::start("valet serve --chain", serve(&["--rpc-url", &url_a, "--chain", &url_b]), dir.0.join("serve.log"));
    let ids: Vec<Option<u64>> =
        service.info["chains"].as_array().expect("chains").iter().map(|c| c["chain_id"].as_u64()).collect();
    assert_eq!(ids, [Some(8453), Some(10)], "{}", service.info);
    let http = alloy::transports::http::reqwest::Client::new();
    let url = service.info["url"].as_str().expect("url").to_string();
    let admin = Api { url: url.clone(), http: http.clone(), key: "serve-chains-admin-token-0123456789".into() };
    let (status, app) = admin.must("POST", "/v1/apps", Some(serde_json::json!({ "name": "chains" }))).await;
    assert_eq!(status, 201, "{app}");
    let api = Api { url, http, key: app["api_key"].as_str().expect("api key").to_string() };

    let owner = a.key(3);
    let body =
        serde_json::json!({ "owner": owner.address(), "spec": valet_core::spec::DEMO_MINT_SPEC, "chains": [8453, 10] });
    let (status, proposed) = api.must("POST", "/v1/sessions", Some(body)).await;
    assert_eq!(status, 201, "{proposed}");
    let digest: alloy::primitives::B256 = proposed["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let sessions = proposed["sessions"].as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 2, "{proposed}");
    let first = sessions[0]["session_id"].as_str().expect("id");
    let (status, granted) = api
        .must("POST", &format!("/v1/sessions/{first}/grant"), Some(serde_json::json!({ "signature": signature })))
        .await;
    assert_eq!(status, 200, "{granted}");

    for (session, chain) in sessions.iter().zip([&a, &b]) {
        let account: alloy::primitives::Address =
            session["account"].as_str().expect("account").parse().expect("address");
        chain.fund(account, U256::from(10u128.pow(18))).await.expect("fund");
        let id = session["session_id"].as_str().expect("id");
        let mint = serde_json::json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 2] }] });
        let (status, done) = api.must("POST", &format!("/v1/sessions/{id}/execute"), Some(mint)).await;
        assert_eq!((status, done["status"].as_str()), (200, Some("included")), "chain {}: {done}", chain.chain_id());
        let nft = valet_client::contracts::demo::ValetNFT::new(chain.addresses.nft, &chain.provider);
        assert_eq!(nft.balanceOf(account).call().await.expect("balance"), U256::from(2), "chain {}", chain.chain_id());
    }
    drop(service);
}
