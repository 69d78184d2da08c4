//! The demo story against a real anvil, with direct submission: one owner signature grants a
//! session; the first operation deploys the account, enables the session and mints; nine more
//! mints need no owner; the eleventh is refused by the evaluator before sending, and by the
//! chain when forced.

use std::collections::BTreeMap;

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use valet_client::contracts::{SessionKeyValidator, ValetAccountFactory};
use valet_client::{Devnet, Error, GasLimits, SessionCall, SessionHandle, submit};
use valet_core::spec::{SessionSpec, SpecContext};
use valet_core::{Call, Counters, Execution, Refusal, SessionState, eip712};

use valet_core::spec::DEMO_MINT_SPEC as MINT;

// The demo contracts, bound from their artifacts as an app binds the contracts it calls
// (valet-client exports its own bindings of them only with its `demo` feature).
alloy::sol!(
    #[sol(rpc)]
    ValetNFT,
    "../../contracts/artifacts/ValetNFT.json"
);

fn mint(nft: Address, to: Address, quantity: u64) -> Bytes {
    let data = ValetNFT::mintCall { to, quantity: U256::from(quantity) }.abi_encode();
    Execution::Single(Call { target: nft, value: U256::ZERO, data: data.into() }).encode()
}

#[tokio::test]
async fn one_grant_ten_mints_and_the_eleventh_refused() -> Result<(), Error> {
    let devnet = Devnet::start().await?;
    let a = devnet.addresses;
    let owner = devnet.key(3);
    let relayer = devnet.provider_for(1);
    let funder = devnet.provider_for(2);
    let chain_id = devnet.chain_id();

    let factory = ValetAccountFactory::new(a.factory, &devnet.provider);
    let account = factory.getAddress(owner.address(), U256::ZERO).call().await.map_err(Error::rpc)?;
    let fund = alloy::rpc::types::TransactionRequest::default().to(account).value(U256::from(10u128.pow(18)));
    funder.send_transaction(fund).await.map_err(Error::rpc)?.get_receipt().await.map_err(Error::rpc)?;

    let now = devnet
        .provider
        .get_block_by_number(Default::default())
        .await
        .map_err(Error::rpc)?
        .expect("latest block")
        .header
        .timestamp;
    let session_key = PrivateKeySigner::random();
    let ctx = SpecContext {
        now,
        session_key: session_key.address(),
        account_epoch: 0,
        names: BTreeMap::from([("ValetNFT".to_string(), a.nft)]),
    };
    // Ten operations at the fixed gas limits below may cost up to 0.0172 ETH: a larger budget.
    let session = SessionSpec::from_toml(&MINT.replace("0.01 ether", "0.05 ether"))?.resolve(&ctx)?;
    // The one owner signature.
    let grant = owner
        .sign_hash_sync(&eip712::grant_digest(&session, account, a.validator, chain_id)?)
        .expect("owner signs")
        .as_bytes();
    let handle = SessionHandle::new(session, session_key, grant.to_vec().into(), a.validator)?;
    let id = handle.id;

    let validator = SessionKeyValidator::new(a.validator, &devnet.provider);
    // The account is not deployed yet: its first operation installs the validator.
    let mut counters = Counters { installed: true, ..Counters::default() };
    let mut gas = Vec::new();
    for i in 0..11u64 {
        let first = i == 0;
        let call = SessionCall {
            call_data: mint(a.nft, account, 1),
            indices: vec![0],
            sequence: i,
            enable: first,
            deploy: first.then(|| {
                (
                    a.factory,
                    ValetAccountFactory::createAccountCall { owner: owner.address(), salt: U256::ZERO }
                        .abi_encode()
                        .into(),
                )
            }),
            ..SessionCall::default()
        };
        let verdict = handle.preflight(account, &counters, &call, GasLimits::default(), now + i);
        let op = handle.sign(account, &call, GasLimits::default(), devnet.addresses.entry_point, chain_id)?;
        let user_op_hash = op.hash(devnet.addresses.entry_point, chain_id);

        if i < 10 {
            let verdict = verdict.expect("the evaluator accepts mints 1 to 10");
            let (_, included) =
                submit::handle_ops(&relayer, devnet.addresses.entry_point, devnet.key(1).address(), &[op.pack()])
                    .await?;
            assert!(included[0].success, "mint {i} executed");
            assert_eq!(included[0].user_op_hash, user_op_hash, "our userOpHash is the EntryPoint's");
            gas.push(included[0].actual_gas_used);
            counters = verdict.counters;
            // The evaluator's counters are the chain's.
            let uses = validator.permissionUses(account, id, U256::ZERO).call().await.map_err(Error::rpc)?;
            assert_eq!(uses, U256::from(counters.permission_uses[0]), "uses after mint {i}");
        } else {
            assert_eq!(
                verdict,
                Err(Refusal::PermissionUsesExhausted { id, permission: 0, max_uses: 10 }),
                "refused before sending"
            );
            match submit::handle_ops(&relayer, devnet.addresses.entry_point, devnet.key(1).address(), &[op.pack()])
                .await
            {
                Err(Error::Refused { reason, decoded, .. }) => {
                    assert_eq!(reason, "AA23 reverted");
                    let decoded = decoded.expect("the validator's error decodes");
                    assert!(decoded.contains("PermissionUsesExhausted"), "{decoded}");
                }
                other => panic!("the chain accepted an eleventh mint: {other:?}"),
            }
        }
    }
    assert_eq!(counters.state, SessionState::Enabled);
    let nft = ValetNFT::new(a.nft, &devnet.provider);
    let balance = nft.balanceOf(account).call().await.map_err(Error::rpc)?;
    assert_eq!(balance, U256::from(10), "ten NFTs, one grant");
    assert!(gas[0] > gas[1], "the first operation also deployed and enabled");
    Ok(())
}
