//! One grant, several chains, in the service: a service serving two real anvils (Base's chain id
//! 8453 as its main chain, OP Mainnet's 10 besides) proposes one session per chain for one owner,
//! and the owner's one signature activates both (or neither); each chain's session mints on its
//! own chain, counts its own uses and is revoked on its own. A chain the service does not serve
//! is a 400 naming it; a signature of anything else (another key, another grant, sessions changed
//! in the store) activates nothing; and a chain's proof carried to another chain's session is
//! refused by the chain itself.

use alloy::primitives::{Address, B256, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use serde_json::{Value, json};
use valet_client::{Devnet, DevnetOptions};

mod common;
use common::*;

const ETHER: u128 = 1_000_000_000_000_000_000;
const BASE: u64 = 8453;
const OPTIMISM: u64 = 10;

const SPEC: &str = r#"
valid_for = "1h"
max_uses = 2
[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "to", eq = "$account" }, { arg = "quantity", lte = 5 }]
[fees]
budget = "0.5 ether"
"#;

fn mint() -> Value {
    json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] })
}

fn sign(key: &PrivateKeySigner, hash: &Value) -> String {
    let hash: B256 = hash.as_str().expect("a hash").parse().expect("hex");
    alloy::hex::encode_prefixed(key.sign_hash_sync(&hash).expect("sign").as_bytes())
}

async fn devnet(chain_id: u64) -> Devnet {
    Devnet::start_with(DevnetOptions { chain_id: Some(chain_id), ..Default::default() }).await.expect("devnet")
}

async fn nfts(devnet: &Devnet, owner: Address) -> U256 {
    let nft = valet_client::contracts::demo::ValetNFT::new(devnet.addresses.nft, &devnet.provider);
    nft.balanceOf(owner).call().await.expect("balance")
}

/// A multichain proposal on `chains` for `owner`: the answer, and each chain's session id.
async fn propose(s: &Server, key: &str, owner: Address, chains: &[u64]) -> (Value, Vec<String>) {
    let body = json!({ "owner": owner, "spec": SPEC, "chains": chains });
    let (status, proposed) = s.call("POST", "/v1/sessions", Some(key), Some(body)).await;
    assert_eq!(status, 201, "{proposed}");
    let ids = proposed["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|p| p["session_id"].as_str().expect("id").to_string())
        .collect();
    (proposed, ids)
}

async fn status_of(s: &Server, key: &str, id: &str) -> Value {
    let (status, shown) = s.call("GET", &format!("/v1/sessions/{id}"), Some(key), None).await;
    assert_eq!(status, 200, "{shown}");
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_signature_grants_a_session_on_each_chain_and_each_chain_keeps_its_own() {
    let (a, b) = tokio::join!(devnet(BASE), devnet(OPTIMISM));
    let (s, _service, _dir, _) = boot_chains(&a, &[&b], "multichain").await;
    let key = app_key(&s, "multichain").await;
    let owner = PrivateKeySigner::random();

    // Chains the service cannot grant on: named, with those it serves.
    for (chains, needle) in [
        (json!([BASE, 42161]), "does not serve chain 42161: it serves 8453, 10"),
        (json!([BASE, BASE]), "chain 8453 twice"),
        (json!([]), "chains is empty"),
    ] {
        let body = json!({ "owner": owner.address(), "spec": SPEC, "chains": chains });
        let (status, refused) = s.call("POST", "/v1/sessions", Some(&key), Some(body)).await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused["message"].as_str().unwrap_or_default().contains(needle), "{needle}: {refused}");
    }
    let body = json!({ "owner": owner.address(), "spec": SPEC, "chains": [BASE], "account_kind": "eip7702" });
    let (status, refused) = s.call("POST", "/v1/sessions", Some(&key), Some(body)).await;
    assert_eq!(status, 400, "{refused}");

    // Proposed on both: one digest, one summary naming both chains, the same account on each.
    let (proposed, ids) = propose(&s, &key, owner.address(), &[BASE, OPTIMISM]).await;
    assert_eq!(proposed["grant_id"], proposed["digest"]);
    assert_eq!(proposed["status"], "proposed");
    let typed: alloy::dyn_abi::TypedData = serde_json::from_value(proposed["typed_data"].clone()).expect("typed");
    assert_eq!(typed.eip712_signing_hash().expect("hash").to_string(), proposed["digest"].as_str().expect("digest"));
    let headline = proposed["summary"][0].as_str().expect("summary");
    assert!(headline.starts_with("One signature grants this session on 2 chains: Base"), "{headline}");
    let sessions = proposed["sessions"].as_array().expect("sessions");
    assert_eq!((sessions[0]["chain_id"].as_u64(), sessions[1]["chain_id"].as_u64()), (Some(BASE), Some(OPTIMISM)));
    assert_eq!(sessions[0]["account"], sessions[1]["account"], "the factory is deterministic");
    assert_ne!(ids[0], ids[1]);
    let account: Address = sessions[0]["account"].as_str().expect("account").parse().expect("address");
    a.fund(account, U256::from(ETHER)).await.expect("fund");
    b.fund(account, U256::from(ETHER)).await.expect("fund");

    // Another key's signature: refused, and nothing is active on either chain.
    let stranger = PrivateKeySigner::random();
    let grant_b = format!("/v1/sessions/{}/grant", ids[1]);
    let wrong = json!({ "signature": sign(&stranger, &proposed["digest"]) });
    let (status, refused) = s.call("POST", &grant_b, Some(&key), Some(wrong)).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("not_the_owner")), "{refused}");
    for id in &ids {
        assert_eq!(status_of(&s, &key, id).await["status"], "proposed");
    }
    // Not granted yet: not usable on either chain.
    let (status, refused) = s.call("POST", &format!("/v1/sessions/{}/execute", ids[0]), Some(&key), Some(mint())).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("not_active")), "{refused}");

    // The owner's one signature, given on B's session: both active.
    let signature = json!({ "signature": sign(&owner, &proposed["digest"]) });
    let (status, granted) = s.call("POST", &grant_b, Some(&key), Some(signature.clone())).await;
    assert_eq!(status, 200, "{granted}");
    assert_eq!(granted["sessions"].as_array().map(Vec::len), Some(2), "{granted}");
    for id in &ids {
        assert_eq!(status_of(&s, &key, id).await["status"], "active");
    }
    // Given again (on A's): nothing waits for it.
    let (status, again) = s.call("POST", &format!("/v1/sessions/{}/grant", ids[0]), Some(&key), Some(signature)).await;
    assert_eq!((status, again["error"].as_str()), (409, Some("not_proposed")), "{again}");

    // GET shows the chain, the grant and its sessions on every chain.
    let shown = status_of(&s, &key, &ids[0]).await;
    assert_eq!((shown["chain_id"].as_u64(), &shown["grant_id"]), (Some(BASE), &proposed["grant_id"]), "{shown}");
    let group = shown["grant_sessions"].as_array().expect("grant_sessions");
    assert_eq!(group.len(), 2, "{shown}");
    assert_eq!(
        (group[1]["session_id"].as_str(), group[1]["chain_id"].as_u64()),
        (Some(ids[1].as_str()), Some(OPTIMISM))
    );

    // Each session mints on its own chain, at the same address.
    for id in &ids {
        let (status, body) = s.call("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(mint())).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("included")), "{body}");
    }
    assert_eq!((nfts(&a, account).await, nfts(&b, account).await), (U256::from(1), U256::from(1)));

    // Revoked on A (in the service and on chain, through A's relayer): A is refused, B mints on.
    let (status, revoked) = s.call("POST", &format!("/v1/sessions/{}/revoke", ids[0]), Some(&key), None).await;
    assert_eq!(status, 200, "{revoked}");
    let onchain = json!({ "signature": sign(&owner, &revoked["onchain"]["digest"]) });
    let (status, landed) =
        s.call("POST", &format!("/v1/sessions/{}/revoke/onchain", ids[0]), Some(&key), Some(onchain)).await;
    assert_eq!((status, landed["onchain"].as_str()), (200, Some("included")), "{landed}");
    let (status, refused) = s.call("POST", &format!("/v1/sessions/{}/execute", ids[0]), Some(&key), Some(mint())).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("revoked")), "{refused}");
    assert_eq!(status_of(&s, &key, &ids[0]).await["chain"]["state"], "revoked");
    let shown_b = status_of(&s, &key, &ids[1]).await;
    assert_eq!((&shown_b["status"], &shown_b["usable"]), (&json!("active"), &json!(true)), "{shown_b}");
    let (status, body) = s.call("POST", &format!("/v1/sessions/{}/execute", ids[1]), Some(&key), Some(mint())).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("included")), "{body}");
    assert_eq!((nfts(&a, account).await, nfts(&b, account).await), (U256::from(1), U256::from(2)));

    // A second grant: A's two uses spent, B still has its own two; B then revoked on its chain
    // through B's relayer.
    let (proposed, ids) = propose(&s, &key, owner.address(), &[BASE, OPTIMISM]).await;
    let signature = json!({ "signature": sign(&owner, &proposed["digest"]) });
    let (status, granted) =
        s.call("POST", &format!("/v1/sessions/{}/grant", ids[0]), Some(&key), Some(signature)).await;
    assert_eq!(status, 200, "{granted}");
    let execute_a = format!("/v1/sessions/{}/execute", ids[0]);
    let execute_b = format!("/v1/sessions/{}/execute", ids[1]);
    for _ in 0..2 {
        let (status, body) = s.call("POST", &execute_a, Some(&key), Some(mint())).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("included")), "{body}");
    }
    let (status, refused) = s.call("POST", &execute_a, Some(&key), Some(mint())).await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("refused")), "{refused}");
    assert!(refused["refusal"].as_str().unwrap_or_default().to_lowercase().contains("use"), "{refused}");
    for _ in 0..2 {
        let (status, body) = s.call("POST", &execute_b, Some(&key), Some(mint())).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("included")), "B has its own uses: {body}");
    }
    assert_eq!((nfts(&a, account).await, nfts(&b, account).await), (U256::from(3), U256::from(4)));
    let (status, revoked) = s.call("POST", &format!("/v1/sessions/{}/revoke", ids[1]), Some(&key), None).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["onchain"]["typed_data"]["domain"]["chainId"].to_string().trim_matches('"'), "10", "{revoked}");
    let onchain = json!({ "signature": sign(&owner, &revoked["onchain"]["digest"]) });
    let (status, landed) =
        s.call("POST", &format!("/v1/sessions/{}/revoke/onchain", ids[1]), Some(&key), Some(onchain)).await;
    assert_eq!((status, landed["onchain"].as_str()), (200, Some("included")), "{landed}");
    assert_eq!(status_of(&s, &key, &ids[1]).await["chain"]["state"], "revoked");
    assert_eq!(status_of(&s, &key, &ids[0]).await["chain"]["state"], "enabled", "A is as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_activates_only_the_sessions_it_was_made_for() {
    let (a, b) = tokio::join!(devnet(BASE), devnet(OPTIMISM));
    let (s, _service, _dir, database) = boot_chains(&a, &[&b], "multichain-hostile").await;
    let key = app_key(&s, "hostile").await;
    let owner = PrivateKeySigner::random();

    // The owner's signature of one grant, given to another grant of the same owner: refused.
    let (first, first_ids) = propose(&s, &key, owner.address(), &[BASE, OPTIMISM]).await;
    let (second, second_ids) = propose(&s, &key, owner.address(), &[BASE, OPTIMISM]).await;
    assert_ne!(first["digest"], second["digest"]);
    let for_first = json!({ "signature": sign(&owner, &first["digest"]) });
    let (status, refused) =
        s.call("POST", &format!("/v1/sessions/{}/grant", second_ids[0]), Some(&key), Some(for_first)).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("not_the_owner")), "{refused}");

    // The second grant's sessions changed in the store (their order swapped): what the owner
    // signs no longer matches them, and nothing is activated.
    let pool = sqlx::SqlitePool::connect(&database).await.expect("the vault's database");
    for (id, position) in [(&second_ids[0], 1), (&second_ids[1], 0)] {
        sqlx::query("UPDATE sessions SET grant_position = ? WHERE id = ?")
            .bind(position)
            .bind(id)
            .execute(&pool)
            .await
            .expect("update");
    }
    let for_second = json!({ "signature": sign(&owner, &second["digest"]) });
    let (status, refused) =
        s.call("POST", &format!("/v1/sessions/{}/grant", second_ids[1]), Some(&key), Some(for_second)).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("grant_mismatch")), "{refused}");
    for id in first_ids.iter().chain(&second_ids) {
        assert_eq!(status_of(&s, &key, id).await["status"], "proposed", "{id}");
    }

    // The same vault served without chain 10: its sessions there are shown as not usable here,
    // naming the chain and those served (and the list stays readable), never a panic; the grant
    // cannot be given without every chain of it: a 400 naming the chain.
    drop(s);
    let (s, _, _, _) = boot(&a, "multichain-one-chain", false, Some(database)).await;
    assert_eq!(status_of(&s, &key, &first_ids[0]).await["chain_id"].as_u64(), Some(BASE));
    let shown = status_of(&s, &key, &first_ids[1]).await;
    assert_eq!((&shown["usable"], &shown["chain"]), (&json!(false), &Value::Null), "{shown}");
    assert!(
        shown["reason"].as_str().unwrap_or_default().contains("does not serve chain 10: it serves 8453"),
        "{shown}"
    );
    let (status, listed) = s.call("GET", "/v1/sessions", Some(&key), None).await;
    assert_eq!((status, listed["sessions"].as_array().map(Vec::len)), (200, Some(4)), "{listed}");
    let for_first = json!({ "signature": sign(&owner, &first["digest"]) });
    let (status, refused) =
        s.call("POST", &format!("/v1/sessions/{}/grant", first_ids[0]), Some(&key), Some(for_first)).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("chain_not_served")), "{refused}");
    assert_eq!(status_of(&s, &key, &first_ids[0]).await["status"], "proposed");
    // It can still be stopped in the service, and the owner is given what revokes it on chain 10.
    let (status, revoked) = s.call("POST", &format!("/v1/sessions/{}/revoke", first_ids[1]), Some(&key), None).await;
    assert_eq!((status, revoked["status"].as_str()), (200, Some("revoked")), "{revoked}");
    assert_eq!(revoked["onchain"]["typed_data"]["domain"]["chainId"].to_string().trim_matches('"'), "10", "{revoked}");
}

/// What the service's API cannot express, with the SDK on the same two chains: the proof made for
/// chain B's session, carried to chain A's, is refused by chain A's validator (its entry is not
/// the one at that position); A's own proof is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chains_proof_carried_to_another_chains_session_is_refused_by_the_chain() {
    use std::sync::Arc;
    use valet_client::{Direct, GrantKind, Labels, MultichainProposal, SessionHandle, SessionSpec, Valet};

    let (a, b) = tokio::join!(devnet(BASE), devnet(OPTIMISM));
    let owner = PrivateKeySigner::random();
    let spec = SessionSpec::from_toml(SPEC).expect("spec");
    let names = [("ValetNFT".to_string(), a.addresses.nft)].into();
    let mut valets = Vec::new();
    let mut proposals = Vec::new();
    for devnet in [&a, &b] {
        let direct = Direct::new(devnet.provider_for(1), devnet.key(1).address()).await.expect("direct");
        let valet = Valet::new(devnet.provider.clone(), Arc::new(direct), devnet.deployment()).await.expect("valet");
        let account = valet.account(owner.address(), U256::ZERO).await.expect("account");
        devnet.fund(account.address, U256::from(ETHER)).await.expect("fund");
        proposals.push(valet.propose(&account, &spec, &names, &Labels::default()).await.expect("propose"));
        valets.push(valet);
    }
    let account = proposals[0].account;
    let multichain = MultichainProposal::new(proposals).expect("combined");
    let signature = owner.sign_hash_sync(&multichain.digest).expect("sign").as_bytes();
    let entries = multichain.entries.clone();
    let on_a = &multichain.proposals[0];
    let nft = a.addresses.nft;
    let data = alloy::sol_types::SolCall::abi_encode(&valet_client::contracts::demo::ValetNFT::mintCall {
        to: account.address,
        quantity: U256::from(1),
    });
    let call = valet_core::Call { target: nft, value: U256::ZERO, data: data.into() };
    let handle = |position: usize| {
        let proof = valet_core::signature::multichain_grant(&entries, position, &signature).expect("proof");
        SessionHandle::new(on_a.session.clone(), on_a.key.clone(), proof, a.deployment().validator)
            .expect("handle")
            .with_grant_kind(GrantKind::Multichain)
    };
    let carried = valets[0].prepare_unchecked(&account, &handle(1), std::slice::from_ref(&call)).await.expect("op");
    match valets[0].submit(&[carried]).await {
        Err(e @ valet_client::Error::Refused { .. }) => assert!(!e.to_string().is_empty()),
        other => panic!("chain A took chain B's proof: {other:?}"),
    }
    assert_eq!(nfts(&a, account.address).await, U256::ZERO);
    let own = valets[0].prepare_unchecked(&account, &handle(0), &[call]).await.expect("op");
    valets[0].submit(&[own]).await.expect("A's own proof is accepted");
    assert_eq!(nfts(&a, account.address).await, U256::from(1));
}
