//! The service serving EIP-7702 accounts over HTTP, against a real anvil (Prague) and the real
//! EntryPoint v0.8: an owner's EOA gets a session with two signatures (the grant and the
//! delegation), the session's first operation delegates, activates, enables and mints at the
//! EOA's own address, limits and revocation work as for any session, a delegation that is not
//! the owner's or went stale is refused in the API's words, and smart accounts keep working in
//! the same service.

use alloy::eips::eip7702::Authorization;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use serde_json::{Value, json};
use valet_client::Devnet;

mod common;
use common::*;

const ETHER: u128 = 1_000_000_000_000_000_000;

const SPEC: &str = r#"
valid_for = "1h"
[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "to", eq = "$account" }, { arg = "quantity", lte = 5 }]
max_uses = 3
[fees]
budget = "0.5 ether"
"#;

fn mint(quantity: u64) -> Value {
    json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", quantity] }] })
}

fn sign(key: &PrivateKeySigner, hash: &Value) -> String {
    let hash: B256 = hash.as_str().expect("a hash").parse().expect("hex");
    alloy::hex::encode_prefixed(key.sign_hash_sync(&hash).expect("sign").as_bytes())
}

/// A fresh EOA holding 1 ETH.
async fn eoa(devnet: &Devnet) -> PrivateKeySigner {
    let eoa = PrivateKeySigner::random();
    devnet.fund(eoa.address(), U256::from(ETHER)).await.expect("fund");
    eoa
}

/// An eip7702 session proposed for `eoa`: the proposal.
async fn propose(s: &Server, key: &str, eoa: &PrivateKeySigner) -> Value {
    let body = json!({ "owner": eoa.address(), "spec": SPEC, "account_kind": "eip7702" });
    let (status, proposed) = s.call("POST", "/v1/sessions", Some(key), Some(body)).await;
    assert_eq!(status, 201, "{proposed}");
    proposed
}

async fn nfts(devnet: &Devnet, holder: Address) -> U256 {
    let nft = valet_client::contracts::demo::ValetNFT::new(devnet.addresses.nft, &devnet.provider);
    nft.balanceOf(holder).call().await.expect("balance")
}

#[tokio::test]
async fn an_eoa_gets_a_session_through_the_service() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, dir, _) = boot_7702(&devnet, "eip7702").await;
    let key = app_key(&s, "eoa-app").await;
    let eoa = eoa(&devnet).await;
    let owner = eoa.address();

    // The account is the EOA itself, neither delegated nor deployed yet.
    let path = format!("/v1/accounts/{owner}?kind=eip7702");
    let (status, account) = s.call("GET", &path, Some(&key), None).await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["address"].as_str().and_then(|a| a.parse::<Address>().ok()), Some(owner), "{account}");
    assert_eq!(
        (account["kind"].as_str(), &account["deployed"], &account["delegated"]),
        (Some("eip7702"), &json!(false), &json!(false))
    );
    let (status, bad) = s.call("GET", &format!("/v1/accounts/{owner}?kind=bogus"), Some(&key), None).await;
    assert_eq!(status, 400, "{bad}");

    // Bad proposals: an unknown kind, a salt for an EOA.
    let body = json!({ "owner": owner, "spec": SPEC, "account_kind": "bogus" });
    let (status, bad) = s.call("POST", "/v1/sessions", Some(&key), Some(body)).await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["message"].as_str().unwrap_or_default().contains("bogus"), "names the value: {bad}");
    let body = json!({ "owner": owner, "spec": SPEC, "account_kind": "eip7702", "salt": "1" });
    let (status, bad) = s.call("POST", "/v1/sessions", Some(&key), Some(body)).await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["message"].as_str().unwrap_or_default().contains("salt"), "{bad}");

    // The proposal: what the owner signs twice, the grant and the delegation.
    let proposed = propose(&s, &key, &eoa).await;
    let id = proposed["session_id"].as_str().expect("id").to_string();
    assert_eq!(proposed["account_kind"], "eip7702");
    assert_eq!(proposed["account"].as_str().and_then(|a| a.parse::<Address>().ok()), Some(owner));
    let delegation = &proposed["delegation"];
    let implementation = devnet.deployment_7702().factory;
    assert_eq!(delegation["address"].as_str().and_then(|a| a.parse::<Address>().ok()), Some(implementation));
    assert_eq!(delegation["nonce"], 0, "a fresh EOA's nonce: {delegation}");
    assert_eq!(delegation["chain_id"], devnet.chain_id().to_string());
    let expected = Authorization { chain_id: U256::from(devnet.chain_id()), address: implementation, nonce: 0 };
    assert_eq!(delegation["signing_hash"], json!(expected.signature_hash()));

    let grant = format!("/v1/sessions/{id}/grant");
    let signature = sign(&eoa, &proposed["digest"]);
    // No delegation: 400 delegation_required, with what to sign.
    let (status, refused) = s.call("POST", &grant, Some(&key), Some(json!({ "signature": signature }))).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("delegation_required")), "{refused}");
    assert_eq!(refused["delegation"]["signing_hash"], delegation["signing_hash"]);
    // A delegation signed by another key: 400 naming who signed.
    let stranger = PrivateKeySigner::random();
    let body = json!({ "signature": signature, "delegation_signature": sign(&stranger, &delegation["signing_hash"]) });
    let (status, refused) = s.call("POST", &grant, Some(&key), Some(body)).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["message"].as_str().unwrap_or_default().contains(&stranger.address().to_string()), "{refused}");
    // Both of the owner's.
    let body = json!({ "signature": signature, "delegation_signature": sign(&eoa, &delegation["signing_hash"]) });
    let (status, answer) = s.call("POST", &grant, Some(&key), Some(body)).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("active")), "{answer}");

    // Three mints: the first delegates, activates, enables and mints, at the EOA's address.
    let execute = format!("/v1/sessions/{id}/execute");
    for i in 0..3 {
        let (status, done) = s.call("POST", &execute, Some(&key), Some(mint(1))).await;
        assert_eq!((status, done["status"].as_str()), (200, Some("included")), "mint {i}: {done}");
        let first = i == 0;
        assert_eq!(done["detail"]["deployed_account"], json!(first), "{done}");
        assert_eq!(done["detail"]["enabled_session"], json!(first), "{done}");
    }
    assert_eq!(nfts(&devnet, owner).await, U256::from(3), "the EOA holds what its session minted");
    let code = devnet.provider.get_code_at(owner).await.expect("code");
    assert_eq!(code[..], valet_client::client::delegation_code(implementation)[..]);
    let (_, account) = s.call("GET", &path, Some(&key), None).await;
    assert_eq!((&account["deployed"], &account["delegated"]), (&json!(true), &json!(true)), "{account}");

    // The fourth: refused by the session's 3 uses, in its words.
    let (status, refused) = s.call("POST", &execute, Some(&key), Some(mint(1))).await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("refused")), "{refused}");
    assert!(refused["refusal"].as_str().unwrap_or_default().to_lowercase().contains("use"), "{refused}");
    let (status, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(&key), None).await;
    assert_eq!((status, shown["account_kind"].as_str()), (200, Some("eip7702")), "{shown}");

    // Revoked: refused as such.
    let (status, revoked) = s.call("POST", &format!("/v1/sessions/{id}/revoke"), Some(&key), None).await;
    assert_eq!(status, 200, "{revoked}");
    let (status, refused) = s.call("POST", &execute, Some(&key), Some(mint(1))).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("revoked")), "{refused}");
    assert_eq!(nfts(&devnet, owner).await, U256::from(3));

    // A smart account's session in the same service, unchanged.
    let smart_owner = devnet.key(3);
    let (smart_id, smart_account) = granted(&s, &key, &smart_owner, valet_core::spec::DEMO_MINT_SPEC).await;
    assert_ne!(smart_account, smart_owner.address());
    devnet.fund(smart_account, U256::from(ETHER)).await.expect("fund");
    let (status, done) = s.call("POST", &format!("/v1/sessions/{smart_id}/execute"), Some(&key), Some(mint(2))).await;
    assert_eq!((status, done["status"].as_str()), (200, Some("included")), "{done}");
    assert_eq!(nfts(&devnet, smart_account).await, U256::from(2));
    let (_, shown) = s.call("GET", &format!("/v1/sessions/{smart_id}"), Some(&key), None).await;
    assert_eq!(shown["account_kind"], "smart", "{shown}");

    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The EOA sends a transaction of its own between the grant and the first operation: its nonce
/// moves, the delegation it signed can never be used, and the execution is refused with the SDK's
/// reason — nothing sent, nothing recorded as failed.
#[tokio::test]
async fn a_stale_delegation_is_refused_before_anything_is_sent() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, dir, _) = boot_7702(&devnet, "eip7702-stale").await;
    let key = app_key(&s, "eoa-app").await;
    let eoa = eoa(&devnet).await;
    let proposed = propose(&s, &key, &eoa).await;
    let id = proposed["session_id"].as_str().expect("id").to_string();
    let body = json!({
        "signature": sign(&eoa, &proposed["digest"]),
        "delegation_signature": sign(&eoa, &proposed["delegation"]["signing_hash"]),
    });
    let (status, granted) = s.call("POST", &format!("/v1/sessions/{id}/grant"), Some(&key), Some(body)).await;
    assert_eq!(status, 200, "{granted}");

    let wallet = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(eoa.clone()))
        .connect_http(devnet.endpoint().parse().expect("url"));
    let own = alloy::rpc::types::TransactionRequest::default().to(Address::repeat_byte(0x42)).value(U256::from(1));
    wallet.send_transaction(own).await.expect("send").get_receipt().await.expect("the EOA's own transaction");

    let (status, refused) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint(1))).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("delegation_unusable")), "{refused}");
    assert!(refused["message"].as_str().unwrap_or_default().contains("nonce"), "{refused}");
    let execution = refused["execution_id"].as_str().expect("execution id");
    let (_, recorded) = s.call("GET", &format!("/v1/executions/{execution}"), Some(&key), None).await;
    assert_eq!(recorded["status"], "refused", "never sent, so never failed: {recorded}");
    assert_eq!(nfts(&devnet, eoa.address()).await, U256::ZERO);
    assert!(devnet.provider.get_code_at(eoa.address()).await.expect("code").is_empty(), "still a plain EOA");

    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
