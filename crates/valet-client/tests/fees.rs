//! What operations pay, on a real anvil and EntryPoint: the fee strategy's bump reaches the
//! chain and its cap stops an operation before anything is signed; on a rollup the L1 data fee is
//! paid back to the relayer through `preVerificationGas`; and a submitter for another EntryPoint
//! is refused before any operation is signed for the wrong one.

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256, address};
use alloy::providers::Provider as _;
use alloy::signers::SignerSync;
use alloy::sol_types::SolCall;
use valet_client::fees::{FeePolicy, OpStackL1Fee};
use valet_client::{Account, Devnet, Direct, Error, SessionHandle, Submitter, Valet};
use valet_core::Call;
use valet_core::spec::{DEMO_MINT_SPEC, Labels, SessionSpec};

alloy::sol!(
    #[sol(rpc)]
    ValetNFT,
    "../../contracts/artifacts/ValetNFT.json"
);

/// An account with ETH and a granted mint session, on `valet`.
async fn minting(devnet: &Devnet, valet: &Valet, owner: usize) -> (Account, SessionHandle) {
    let owner = devnet.key(owner);
    let account = valet.account(owner.address(), U256::ZERO).await.expect("account");
    devnet.fund(account.address, U256::from(10u128.pow(18))).await.expect("fund");
    let names = [("ValetNFT".to_string(), devnet.addresses.nft)].into();
    let spec = SessionSpec::from_toml(DEMO_MINT_SPEC).expect("spec");
    let proposal = valet.propose(&account, &spec, &names, &Labels::default()).await.expect("propose");
    let grant = owner.sign_hash_sync(&proposal.digest).expect("sign").as_bytes();
    (account, proposal.grant(&grant).expect("grant"))
}

fn mint(devnet: &Devnet, to: Address) -> Call {
    let data = ValetNFT::mintCall { to, quantity: U256::from(1) }.abi_encode();
    Call { target: devnet.addresses.nft, value: U256::ZERO, data: data.into() }
}

async fn direct(devnet: &Devnet) -> Direct {
    Direct::new(devnet.provider_for(1), devnet.key(1).address()).await.expect("direct submitter")
}

#[tokio::test]
async fn the_fee_policy_reaches_the_chain_and_its_cap_stops_an_operation_before_signing() {
    let devnet = Devnet::start().await.expect("devnet");
    let submitter = Arc::new(direct(&devnet).await);
    let doubled = Valet::new(devnet.provider.clone(), submitter.clone(), devnet.deployment())
        .await
        .expect("valet")
        .with_fees(Arc::new(FeePolicy { bump_percent: 100, ..FeePolicy::default() }));
    let (account, session) = minting(&devnet, &doubled, 3).await;
    // No block comes between this quote and the one prepare reads: the same figures.
    let quoted = submitter.fees().await.expect("quote");

    let prepared = doubled.prepare(&account, &session, &[mint(&devnet, account.address)]).await.expect("prepare");
    assert_eq!(prepared.op.max_fee_per_gas, 2 * quoted.max_fee_per_gas);
    assert_eq!(prepared.op.max_priority_fee_per_gas, 2 * quoted.max_priority_fee_per_gas);
    let receipt = doubled.submit(std::slice::from_ref(&prepared.op)).await.expect("included").remove(0);
    let tx = devnet.provider.get_transaction_by_hash(receipt.transaction_hash).await.expect("tx").expect("mined");
    let packed = valet_client::contracts::entry_point::EntryPoint::handleOpsCall::abi_decode(
        alloy::consensus::Transaction::input(&tx),
    )
    .expect("a handleOps");
    let fees = packed.ops[0].gasFees;
    assert_eq!(u128::from_be_bytes(fees[16..].try_into().expect("16 bytes")), prepared.op.max_fee_per_gas, "as signed");

    // Capped below the chain's price: refused with both figures, nothing signed, the nonce unused.
    let capped = doubled.clone().with_fees(Arc::new(FeePolicy { max_fee_cap: Some(1), ..FeePolicy::default() }));
    let nonce = capped.nonce(account.address, session.nonce_key()).await.expect("nonce");
    match capped.execute(&account, &session, &[mint(&devnet, account.address)]).await {
        Err(Error::FeeCapExceeded { max_fee_per_gas, cap: 1 }) => assert!(max_fee_per_gas > 1),
        other => panic!("expected the cap to refuse, got {other:?}"),
    }
    assert_eq!(capped.nonce(account.address, session.nonce_key()).await.expect("nonce"), nonce, "nothing sent");
}

/// The OP Stack's GasPriceOracle at its predeploy, as a test chain can hold it: runtime code that
/// answers every call with `fee` (PUSH32 fee, PUSH1 0, MSTORE, PUSH1 32, PUSH1 0, RETURN).
fn oracle_code(fee: U256) -> Vec<u8> {
    [&[0x7f][..], &fee.to_be_bytes::<32>(), &[0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3]].concat()
}

#[tokio::test]
async fn on_a_rollup_the_account_pays_the_relayer_back_its_l1_data_fee() {
    let devnet = Devnet::start().await.expect("devnet");
    const ORACLE: Address = address!("0x420000000000000000000000000000000000000F");
    // A thousandth of an ether per operation posted to L1: several times an L2 mint's own gas
    // here, and within the session's fee budget.
    let l1_fee = U256::from(10u128.pow(15));
    let _: () = devnet
        .provider
        .raw_request("anvil_setCode".into(), (ORACLE, alloy::primitives::Bytes::from(oracle_code(l1_fee))))
        .await
        .expect("setCode");

    let plain =
        Valet::new(devnet.provider.clone(), Arc::new(direct(&devnet).await), devnet.deployment()).await.expect("valet");
    let (account, session) = minting(&devnet, &plain, 3).await;
    let first = plain.execute(&account, &session, &[mint(&devnet, account.address)]).await.expect("deploys");
    let without = plain.execute(&account, &session, &[mint(&devnet, account.address)]).await.expect("mint");
    assert!(first.receipt.success && without.receipt.success);
    assert!(
        without.receipt.actual_gas_cost < l1_fee,
        "without the hook the relayer is not paid back: {}",
        without.receipt.actual_gas_cost
    );

    let submitter = direct(&devnet).await.with_l1_fee(Arc::new(OpStackL1Fee::new(devnet.provider.clone())));
    let rollup = Valet::new(devnet.provider.clone(), Arc::new(submitter), devnet.deployment()).await.expect("valet");
    let prepared = rollup.prepare(&account, &session, &[mint(&devnet, account.address)]).await.expect("prepare");
    assert!(prepared.op.pre_verification_gas > U256::from(200_000), "{}", prepared.op.pre_verification_gas);
    let with = rollup.submit(std::slice::from_ref(&prepared.op)).await.expect("included").remove(0);
    assert!(with.success);
    assert!(
        with.actual_gas_cost >= l1_fee + without.receipt.actual_gas_cost * U256::from(9) / U256::from(10),
        "the account pays the L1 fee ({l1_fee}) on top of its own gas ({}): it paid {}",
        without.receipt.actual_gas_cost,
        with.actual_gas_cost
    );
}

#[tokio::test]
async fn a_submitter_for_another_entry_point_is_refused() {
    let devnet = Devnet::start().await.expect("devnet");
    let elsewhere = B256::repeat_byte(0x44);
    let other = Address::from_word(elsewhere);
    let submitter = direct(&devnet).await.with_entry_point(other);
    let err = Valet::new(devnet.provider.clone(), Arc::new(submitter), devnet.deployment())
        .await
        .expect_err("another EntryPoint");
    let text = err.to_string();
    assert!(text.contains(&other.to_string()) && text.contains(&devnet.addresses.entry_point.to_string()), "{text}");
}
