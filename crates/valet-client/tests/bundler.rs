//! The bundler path against the real Alto bundler on loopback: our JSON-RPC types accept what
//! it sends (receipts, `null` while unknown, operations by hash, gas prices), a session runs
//! through it from deployment to revocation, and its refusals carry the validator's error.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{B256, U256};
use alloy::signers::SignerSync;
use alloy::sol_types::{SolCall, SolEvent};
use valet_client::{Bundler, BundlerClient, Devnet, DevnetOptions, Error, Valet};
use valet_core::Call;
use valet_core::spec::{DEMO_MINT_SPEC, Labels, SessionSpec};

// The demo contracts, bound from their artifacts as an app binds the contracts it calls
// (valet-client exports its own bindings of them only with its `demo` feature).
alloy::sol!(
    #[sol(rpc)]
    ValetNFT,
    "../../contracts/artifacts/ValetNFT.json"
);

#[tokio::test]
async fn a_session_runs_through_alto_from_deployment_to_revocation() {
    let devnet =
        Devnet::start_with(DevnetOptions { alto: true, ..Default::default() }).await.expect("devnet with Alto");
    let url = devnet.bundler_url().expect("Alto runs");
    assert!(url.starts_with("http://127.0.0.1:"), "loopback only: {url}");
    let client = BundlerClient::new(&url, devnet.addresses.entry_point).expect("client");
    assert_eq!(
        client.supported_entry_points().await.expect("entry points"),
        vec![valet_core::ENTRY_POINT_V07, valet_core::ENTRY_POINT_V08],
        "v0.7 for smart accounts, v0.8 for EIP-7702 accounts"
    );
    assert_eq!(client.chain_id().await.expect("chain id"), devnet.chain_id());
    let prices = client.gas_price().await.expect("Alto's gas price method");
    assert!(prices.fast.max_fee_per_gas.0 >= prices.fast.max_priority_fee_per_gas.0);
    assert!(prices.fast.max_fee_per_gas.0 > U256::ZERO);
    assert_eq!(client.get_user_operation_receipt(B256::repeat_byte(7)).await.expect("receipt"), None, "null");
    assert_eq!(client.get_user_operation_by_hash(B256::repeat_byte(7)).await.expect("by hash"), None, "null");

    let valet = Valet::new(devnet.provider.clone(), Arc::new(Bundler::new(client.clone())), devnet.deployment())
        .await
        .expect("valet");
    let owner = devnet.key(3);
    let account = valet.account(owner.address(), U256::ZERO).await.expect("account");
    devnet.fund(account.address, U256::from(10u128.pow(18))).await.expect("fund");
    let names = [("ValetNFT".to_string(), devnet.addresses.nft)].into();
    let spec = SessionSpec::from_toml(DEMO_MINT_SPEC).expect("spec");
    let proposal = valet.propose(&account, &spec, &names, &Labels::default()).await.expect("propose");
    let grant = owner.sign_hash_sync(&proposal.digest).expect("sign").as_bytes();
    let session = proposal.grant(&grant).expect("grant");
    let mint = |quantity: u64| {
        let data = ValetNFT::mintCall { to: account.address, quantity: U256::from(quantity) }.abi_encode();
        Call { target: devnet.addresses.nft, value: U256::ZERO, data: data.into() }
    };

    // Deploy + enable + mint in one operation, estimated and bundled by Alto.
    let prepared = valet.prepare(&account, &session, &[mint(2)]).await.expect("prepare");
    assert!(prepared.deploys && prepared.enables);
    assert!(prepared.op.verification_gas_limit > 0 && prepared.op.call_gas_limit > 0, "estimated by Alto");
    let receipt = valet.submit(std::slice::from_ref(&prepared.op)).await.expect("included").remove(0);
    assert!(receipt.success && receipt.actual_gas_used > 0);
    // Its own logs, from Alto's receipt: the two NFTs it minted, none of the EntryPoint's events.
    let transfers: Vec<_> = receipt
        .logs
        .iter()
        .filter(|l| l.address == devnet.addresses.nft)
        .filter_map(|l| ValetNFT::Transfer::decode_log(l).ok())
        .collect();
    assert_eq!(transfers.len(), 2, "{:?}", receipt.logs);
    assert!(transfers.iter().all(|t| t.from.is_zero() && t.to == account.address), "{:?}", receipt.logs);
    assert!(receipt.logs.iter().all(|l| l.address != devnet.addresses.entry_point), "{:?}", receipt.logs);
    let known = client.get_user_operation_by_hash(receipt.user_op_hash).await.expect("by hash").expect("known");
    assert_eq!(known.user_operation, prepared.op, "the operation round-trips through Alto's JSON");
    assert_eq!(known.transaction_hash, Some(receipt.transaction_hash));
    let full = client
        .wait_for_receipt(receipt.user_op_hash, Duration::from_millis(50), Duration::from_secs(10))
        .await
        .expect("receipt");
    assert_eq!((full.sender, full.success), (account.address, true));
    assert_eq!(full.entry_point, Some(valet_core::ENTRY_POINT_V07));

    valet.execute(&account, &session, &[mint(5)]).await.expect("a second mint");

    // Alto's simulation refuses what the validator refuses, with the validator's error.
    let forced = valet.prepare_unchecked(&account, &session, &[mint(6)]).await.expect("forced");
    match valet.submit(&[forced]).await {
        Err(Error::Bundler { method, decoded: Some(decoded), .. }) => {
            assert_eq!(method, "eth_sendUserOperation");
            assert!(decoded.starts_with("RuleViolated(") && decoded.contains("value=6"), "{decoded}");
        }
        other => panic!("expected the bundler to refuse, got {other:?}"),
    }

    // The owner revokes through the bundler too; the session stops.
    valet.revoke(&account, &owner, session.id).await.expect("revoke through Alto");
    match valet.prepare(&account, &session, &[mint(1)]).await {
        Err(Error::Preflight(valet_core::Refusal::Revoked(id))) => assert_eq!(id, session.id),
        other => panic!("expected a revoked refusal, got {other:?}"),
    }
}

/// A standard ERC-4337 bundler has no fee method (`pimlico_getUserOperationGasPrice` is Alto's
/// and Pimlico's own): in front of Alto, a shim that answers it "method not found" and forwards
/// everything else. The session runs through it with the node's fees; without a node the error
/// says what to give.
#[tokio::test]
async fn a_bundler_without_a_fee_method_is_used_with_the_nodes_fees() {
    let devnet =
        Devnet::start_with(DevnetOptions { alto: true, ..Default::default() }).await.expect("devnet with Alto");
    let alto = devnet.bundler_url().expect("Alto runs");
    let runtime =
        Arc::new(tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime for the shim"));
    let http = alloy::transports::http::reqwest::Client::new();
    let shim = common::RpcServer::start(Arc::new(move |method: &str, params: &[serde_json::Value]| {
        if method == "pimlico_getUserOperationGasPrice" {
            return Err(
                serde_json::json!({ "code": -32601, "message": format!("the method {method} does not exist") }),
            );
        }
        let request = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let answer: serde_json::Value = runtime
            .block_on(async {
                let response = http
                    .post(&alto)
                    .header("content-type", "application/json")
                    .body(request.to_string())
                    .send()
                    .await?;
                response.bytes().await
            })
            .map(|body| serde_json::from_slice(&body).unwrap_or_default())
            .map_err(|e| serde_json::json!({ "code": -32603, "message": e.to_string() }))?;
        match answer.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(answer["result"].clone()),
        }
    }));
    let client = BundlerClient::new(&shim.url, devnet.addresses.entry_point).expect("client");
    assert!(matches!(client.gas_price().await, Err(Error::Bundler { code: -32601, .. })), "no fee method");

    let owner = devnet.key(3);
    let names = [("ValetNFT".to_string(), devnet.addresses.nft)].into();
    let spec = SessionSpec::from_toml(DEMO_MINT_SPEC).expect("spec");
    let standard = Bundler::new(client.clone());
    let valet = Valet::new(devnet.provider.clone(), Arc::new(standard), devnet.deployment()).await.expect("valet");
    let account = valet.account(owner.address(), U256::ZERO).await.expect("account");
    devnet.fund(account.address, U256::from(10u128.pow(18))).await.expect("fund");
    let proposal = valet.propose(&account, &spec, &names, &Labels::default()).await.expect("propose");
    let grant = owner.sign_hash_sync(&proposal.digest).expect("sign").as_bytes();
    let session = proposal.grant(&grant).expect("grant");
    let data = ValetNFT::mintCall { to: account.address, quantity: U256::from(2) }.abi_encode();
    let mint = Call { target: devnet.addresses.nft, value: U256::ZERO, data: data.into() };

    // Without the node: a clear error, nothing sent.
    match valet.execute(&account, &session, std::slice::from_ref(&mint)).await {
        Err(e @ Error::Config(_)) => assert!(e.to_string().contains("Bundler::with_node"), "{e}"),
        other => panic!("expected the missing fee source to be named, got {other:?}"),
    }
    assert!(!shim.methods().iter().any(|m| m == "eth_sendUserOperation"), "nothing sent");

    // With it: the node's fees, and the operation through the shim to Alto.
    let with_node = Bundler::new(client).with_node(devnet.provider.clone());
    let valet = Valet::new(devnet.provider.clone(), Arc::new(with_node), devnet.deployment()).await.expect("valet");
    let done = valet.execute(&account, &session, &[mint]).await.expect("through a bundler without a fee method");
    assert!(done.receipt.success && done.deployed_account && done.enabled_session);
    let methods = shim.methods();
    assert!(methods.iter().any(|m| m == "eth_estimateUserOperationGas"), "{methods:?}");
    assert!(methods.iter().any(|m| m == "eth_sendUserOperation"), "{methods:?}");
}
