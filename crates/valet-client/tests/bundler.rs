//! The bundler path against the real Alto bundler on loopback: our JSON-RPC types accept what
//! it sends (receipts, `null` while unknown, operations by hash, gas prices), a session runs
//! through it from deployment to revocation, and its refusals carry the validator's error.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{B256, U256};
use alloy::signers::SignerSync;
use alloy::sol_types::SolCall;
use valet_client::contracts::ValetNFT;
use valet_client::{Bundler, BundlerClient, Devnet, DevnetOptions, Error, Valet};
use valet_core::Call;
use valet_core::spec::{DEMO_MINT_SPEC, Labels, SessionSpec};

#[tokio::test]
async fn a_session_runs_through_alto_from_deployment_to_revocation() {
    let devnet =
        Devnet::start_with(DevnetOptions { alto: true, ..Default::default() }).await.expect("devnet with Alto");
    let url = devnet.bundler_url().expect("Alto runs");
    assert!(url.starts_with("http://127.0.0.1:"), "loopback only: {url}");
    let client = BundlerClient::new(&url, devnet.addresses.entry_point).expect("client");
    assert_eq!(client.supported_entry_points().await.expect("entry points"), vec![valet_core::ENTRY_POINT_V07]);
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
