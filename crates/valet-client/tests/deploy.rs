//! Valet at the same addresses on every chain: [`valet_client::deploy`] on bare anvils (chains
//! as any chain is before Valet: only the deterministic deployment proxy in genesis).

use alloy::primitives::{Bytes, U256, keccak256};
use alloy::providers::Provider;
use valet_client::contracts::entry_point::EntryPoint;
use valet_client::deploy::{self, DeployOptions, ENTRY_POINT_CODE_HASH};
use valet_client::{Deployment, Devnet, DevnetAddresses, DevnetOptions, Error};

async fn bare(chain_id: u64) -> Devnet {
    Devnet::start_with(DevnetOptions { chain_id: Some(chain_id), bare: true, ..Default::default() })
        .await
        .expect("a bare anvil")
}

#[tokio::test]
async fn the_devnet_is_deployed_at_the_canonical_addresses() {
    let devnet = Devnet::start().await.expect("devnet");
    assert_eq!(devnet.addresses, DevnetAddresses::canonical());
    assert_eq!(devnet.deployment(), Deployment::canonical());
    assert_eq!(Deployment::default(), Deployment::canonical());
    let relayer = valet_client::Direct::new(devnet.provider_for(1), devnet.key(1).address()).await.expect("relayer");
    let valet = valet_client::Valet::canonical(devnet.provider.clone(), std::sync::Arc::new(relayer))
        .await
        .expect("Valet at the canonical addresses");
    assert_eq!(valet.deployment(), devnet.deployment());
    let entry_point = devnet.provider.get_code_at(devnet.addresses.entry_point).await.expect("code");
    assert_eq!(keccak256(&entry_point), ENTRY_POINT_CODE_HASH, "EntryPoint v0.7's code hash");
    let implementation = valet_client::contracts::ValetAccountFactory::new(devnet.addresses.factory, &devnet.provider)
        .accountImplementation()
        .call()
        .await
        .expect("implementation");
    assert_eq!(implementation, deploy::canonical().account_implementation);
    // Deploying again on the devnet finds everything in place and staked.
    let report =
        deploy::deploy(&devnet.provider, DeployOptions { demo: true, ..Default::default() }).await.expect("again");
    assert!(report.deployed.is_empty(), "nothing to deploy: {:?}", report.deployed);
    assert!(!report.staked, "already staked");
}

#[tokio::test]
async fn two_chains_get_the_same_addresses_and_a_second_run_deploys_nothing() {
    let (a, b) = (bare(1001).await, bare(1002).await);
    let mut reports = Vec::new();
    for chain in [&a, &b] {
        for name in ["entry_point", "validator", "factory"] {
            let address = match name {
                "entry_point" => deploy::canonical().entry_point,
                "validator" => deploy::canonical().validator,
                _ => deploy::canonical().factory,
            };
            assert!(chain.provider.get_code_at(address).await.expect("code").is_empty(), "{name}: a bare chain");
        }
        let report = deploy::deploy(&chain.provider, DeployOptions::default()).await.expect("deploy");
        assert_eq!(report.chain_id, chain.chain_id());
        assert_eq!(report.deployed, ["entry_point", "validator", "factory"], "chain {}", report.chain_id);
        assert!(report.demo.is_none(), "no demo contracts unless asked");
        assert!(chain.provider.get_code_at(deploy::demo().nft).await.expect("code").is_empty(), "no demo NFT");
        // The stake is on the EntryPoint, managed by the deployer.
        let info = EntryPoint::new(report.entry_point, &chain.provider)
            .getDepositInfo(report.factory)
            .call()
            .await
            .expect("deposit info");
        assert!(info.staked);
        assert_eq!(U256::from(info.stake), deploy::DEFAULT_STAKE);
        assert_eq!(info.unstakeDelaySec, deploy::DEFAULT_UNSTAKE_DELAY);
        assert_eq!(report.factory_stake_wei, deploy::DEFAULT_STAKE);
        assert_eq!(report.factory_stake_manager, chain.key(0).address());
        assert!(report.staked);
        reports.push(report);
    }
    let addresses = |r: &deploy::DeployReport| (r.entry_point, r.validator, r.factory, r.account_implementation);
    assert_eq!(addresses(&reports[0]), addresses(&reports[1]), "the same addresses on both chains");
    let c = deploy::canonical();
    assert_eq!(addresses(&reports[0]), (c.entry_point, c.validator, c.factory, c.account_implementation));
    // The validator's code differs between the chains only in its immutables (the EIP-712
    // domain's cached chain id): the comparison must not mistake that for other code.
    let code_a = a.provider.get_code_at(c.validator).await.expect("code");
    let code_b = b.provider.get_code_at(c.validator).await.expect("code");
    assert_ne!(code_a, code_b, "the validator's immutables hold the chain id");

    // Again, with the demo contracts: only those are new; nothing is staked twice.
    let nonce = a.provider.get_transaction_count(a.key(0).address()).await.expect("nonce");
    let again = deploy::deploy(&a.provider, DeployOptions::default()).await.expect("again");
    assert!(again.deployed.is_empty() && again.transactions.is_empty() && !again.staked, "{again:?}");
    assert_eq!(again.verified, ["entry_point", "validator", "factory"]);
    assert_eq!(a.provider.get_transaction_count(a.key(0).address()).await.expect("nonce"), nonce, "sent nothing");
    let demo = deploy::deploy(&a.provider, DeployOptions { demo: true, ..Default::default() }).await.expect("demo");
    assert_eq!(demo.deployed, ["nft", "token", "dao"]);
    assert_eq!(demo.demo, Some(deploy::demo()));

    // A larger stake asked for later adds the difference (the EntryPoint adds to the stake).
    let more = DeployOptions { stake: deploy::DEFAULT_STAKE * U256::from(3), ..Default::default() };
    let restaked = deploy::deploy(&a.provider, more).await.expect("more stake");
    assert!(restaked.staked && restaked.deployed.is_empty());
    assert_eq!(restaked.factory_stake_wei, deploy::DEFAULT_STAKE * U256::from(3));
}

#[tokio::test]
async fn other_code_at_a_canonical_address_is_refused_before_anything_is_sent() {
    let chain = bare(1003).await;
    let validator = deploy::canonical().validator;
    // Someone else's contract where Valet's validator would be (possible only on a chain that
    // lets code be set, or with a proxy that is not the real one: both are refused).
    let other: Bytes = alloy::hex!("6001600055").into();
    let _: () = chain.provider.raw_request("anvil_setCode".into(), (validator, other.clone())).await.expect("setCode");
    let nonce = chain.provider.get_transaction_count(chain.key(0).address()).await.expect("nonce");
    let error = deploy::deploy(&chain.provider, DeployOptions::default()).await.expect_err("other code");
    let text = error.to_string();
    assert!(matches!(error, Error::Deploy(_)), "{error:?}");
    assert!(text.contains(&validator.to_string()) && text.contains("not Valet's SessionKeyValidator"), "{text}");
    assert!(text.contains(&keccak256(&other).to_string()), "names the code hash found: {text}");
    assert_eq!(
        chain.provider.get_transaction_count(chain.key(0).address()).await.expect("nonce"),
        nonce,
        "nothing sent, not even the EntryPoint"
    );
    assert!(chain.provider.get_code_at(deploy::canonical().entry_point).await.expect("code").is_empty());

    // A validator that differs from Valet's by one byte outside its immutables is refused too.
    let chain = bare(1004).await;
    deploy::deploy(&chain.provider, DeployOptions { stake: U256::ZERO, ..Default::default() }).await.expect("deploy");
    let mut code = chain.provider.get_code_at(validator).await.expect("code").to_vec();
    let last = code.len() - 1;
    code[last] ^= 1;
    let _: () = chain.provider.raw_request("anvil_setCode".into(), (validator, Bytes::from(code))).await.expect("set");
    let error = deploy::deploy(&chain.provider, DeployOptions::default()).await.expect_err("one byte");
    assert!(error.to_string().contains("not Valet's SessionKeyValidator"), "{error}");

    // A chain without the deterministic deployment proxy cannot have the canonical addresses.
    let _: () = chain
        .provider
        .raw_request("anvil_setCode".into(), (deploy::DETERMINISTIC_DEPLOYER, Bytes::new()))
        .await
        .expect("remove the proxy");
    let error = deploy::deploy(&chain.provider, DeployOptions::default()).await.expect_err("no proxy");
    assert!(error.to_string().contains("no deterministic deployment proxy"), "{error}");
}
