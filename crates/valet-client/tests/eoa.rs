//! The SDK's EIP-7702 accounts: a plain EOA gets a session through `Valet` alone, on a real anvil
//! (Prague) and the real EntryPoint v0.8, directly and through Alto. The owner signs twice — the
//! delegation and the grant — and the session's first operation delegates, activates, enables and
//! mints at the EOA's own address, paid from its own ETH; limits and refusals are those of any
//! Valet session; owner operations (a revocation) are signed by the EOA key; a delegation whose
//! nonce went stale is refused before sending; `upgrade` makes an EOA a Valet account on its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use valet_client::{
    Account, AccountKind, Bundler, BundlerClient, Devnet, DevnetOptions, Direct, Error, SessionHandle, Standing, Valet,
};
use valet_core::spec::{Labels, SessionSpec};
use valet_core::{Call, ENTRY_POINT_V08, Refusal};

alloy::sol!(
    #[sol(rpc)]
    ValetNFT,
    "../../contracts/artifacts/ValetNFT.json"
);

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

struct Eoa {
    devnet: Devnet,
    valet: Valet,
}

impl Eoa {
    async fn direct() -> Eoa {
        let devnet = Devnet::start().await.expect("devnet");
        let direct = Direct::new(devnet.provider_for(1), devnet.key(1).address())
            .await
            .expect("direct submitter")
            .with_entry_point(ENTRY_POINT_V08);
        let valet =
            Valet::new(devnet.provider.clone(), Arc::new(direct), devnet.deployment_7702()).await.expect("client");
        Eoa { devnet, valet }
    }

    async fn alto() -> Eoa {
        let devnet = Devnet::start_with(DevnetOptions { alto: true, ..Default::default() }).await.expect("devnet");
        let url = devnet.bundler_url().expect("Alto runs");
        let bundler = Bundler::new(BundlerClient::new(url.as_ref(), ENTRY_POINT_V08).expect("bundler client"))
            .with_node(devnet.provider.clone());
        let valet =
            Valet::new(devnet.provider.clone(), Arc::new(bundler), devnet.deployment_7702()).await.expect("client");
        Eoa { devnet, valet }
    }

    /// A fresh EOA holding 1 ETH.
    async fn eoa(&self) -> (PrivateKeySigner, Account) {
        let eoa = PrivateKeySigner::random();
        self.devnet.fund(eoa.address(), U256::from(ETHER)).await.expect("fund");
        let account = self.valet.account(eoa.address(), U256::ZERO).await.expect("account");
        (eoa, account)
    }

    /// The owner's two signatures: the grant, and the delegation unless the EOA delegates already.
    async fn grant(&self, eoa: &PrivateKeySigner, account: &Account) -> SessionHandle {
        let names = BTreeMap::from([("ValetNFT".to_string(), self.devnet.addresses.nft)]);
        let spec = SessionSpec::from_toml(SPEC).expect("spec");
        let proposal = self.valet.propose(account, &spec, &names, &Labels::default()).await.expect("propose");
        let signature = eoa.sign_hash_sync(&proposal.digest).expect("grant").as_bytes();
        let delegation = self.valet.sign_delegation(account, eoa).await.expect("delegation");
        proposal.grant(&signature).expect("the owner's grant").with_authorization(delegation)
    }

    fn mint(&self, to: Address, quantity: u64) -> Call {
        let data = ValetNFT::mintCall { to, quantity: U256::from(quantity) }.abi_encode();
        Call { target: self.devnet.addresses.nft, value: U256::ZERO, data: data.into() }
    }

    async fn minted(&self, to: Address) -> U256 {
        ValetNFT::new(self.devnet.addresses.nft, &self.devnet.provider).balanceOf(to).call().await.expect("balance")
    }

    async fn code(&self, at: Address) -> Vec<u8> {
        self.devnet.provider.get_code_at(at).await.expect("code").to_vec()
    }
}

/// Everything an EOA does with a session, through `valet`'s submitter. `upgrade_first`: the EOA
/// becomes a Valet account in an owner operation before the grant (what a bundler needs), else
/// the session's first operation delegates and activates it too.
async fn the_eoa_story(s: &Eoa, upgrade_first: bool) {
    let (eoa, account) = s.eoa().await;
    assert_eq!(account.address, eoa.address(), "the account is the EOA itself");
    assert!(!account.deployed);
    assert_eq!(s.valet.deployment().kind, AccountKind::Eip7702);
    let balance_before = s.devnet.provider.get_balance(eoa.address()).await.expect("balance");
    let mut fees = U256::ZERO;
    let account = if upgrade_first {
        let upgraded = s.valet.upgrade(&account, &eoa).await.expect("upgrade");
        fees += upgraded.actual_gas_cost;
        s.valet.account(eoa.address(), U256::ZERO).await.expect("account")
    } else {
        account
    };
    let session = s.grant(&eoa, &account).await;
    assert_eq!(session.authorization.is_some(), !upgrade_first, "a fresh EOA signs its delegation");

    // One operation: (delegate, activate,) enable, mint — at the EOA's address.
    let first = s.valet.execute(&account, &session, &[s.mint(eoa.address(), 2)]).await.expect("first mint");
    assert!(first.deployed_account != upgrade_first && first.enabled_session, "{first:?}");
    fees += first.receipt.actual_gas_cost;
    assert_eq!(s.code(eoa.address()).await, valet_client::client::delegation_code(s.valet.deployment().factory));
    assert_eq!(s.minted(eoa.address()).await, U256::from(2), "the EOA owns what the session minted");
    let paid = balance_before - s.devnet.provider.get_balance(eoa.address()).await.expect("balance");
    assert!(paid >= fees, "the EOA's own ETH paid the fees ({paid} < {fees})");
    let account = s.valet.account(eoa.address(), U256::ZERO).await.expect("account");
    assert!(account.deployed, "delegated and activated");

    // Limits as for any session: 3 uses, quantity ≤ 5.
    match s.valet.prepare(&account, &session, &[s.mint(eoa.address(), 6)]).await {
        Err(Error::Preflight(Refusal::RuleViolated { .. })) => {}
        other => panic!("a mint of 6 is refused by its rule, got {other:?}"),
    }
    s.valet.execute(&account, &session, &[s.mint(eoa.address(), 1)]).await.expect("second mint");
    // The EOA sends a transaction of its own between two session operations.
    let own = TransactionRequest::default().from(eoa.address()).to(Address::repeat_byte(0x42)).value(U256::from(1));
    let wallet = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(eoa.clone()))
        .connect_http(s.devnet.endpoint().parse().expect("url"));
    wallet.send_transaction(own).await.expect("send").get_receipt().await.expect("own transaction");
    s.valet.execute(&account, &session, &[s.mint(eoa.address(), 1)]).await.expect("third mint");
    match s.valet.prepare(&account, &session, &[s.mint(eoa.address(), 1)]).await {
        Err(Error::Preflight(Refusal::PermissionUsesExhausted { .. })) => {}
        other => panic!("the fourth mint is refused for the permission's 3 uses, got {other:?}"),
    }
    assert_eq!(s.minted(eoa.address()).await, U256::from(4));

    // The owner revokes with an operation signed by the EOA key.
    s.valet.revoke(&account, &eoa, session.id).await.expect("revoke");
    let status = s.valet.status(eoa.address(), &session.session).await.expect("status");
    assert_eq!(status.state, Standing::Revoked);

    // A delegation signed before the EOA's nonce moved is refused before anything is sent.
    let (late, late_account) = s.eoa().await;
    let stale = s.grant(&late, &late_account).await;
    let wallet = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(late.clone()))
        .connect_http(s.devnet.endpoint().parse().expect("url"));
    let own = TransactionRequest::default().from(late.address()).to(Address::repeat_byte(0x43)).value(U256::from(1));
    wallet.send_transaction(own).await.expect("send").get_receipt().await.expect("own transaction");
    let err = s.valet.execute(&late_account, &stale, &[s.mint(late.address(), 1)]).await.expect_err("stale");
    let expected = if upgrade_first { "upgrade the EOA first" } else { "it sent a transaction since" };
    assert!(err.to_string().contains(expected), "{err}");
    assert!(s.code(late.address()).await.is_empty(), "nothing was sent");
    // A delegation signed by another EOA would delegate that EOA, not this one: refused.
    let (other, other_account) = s.eoa().await;
    let theirs = s.valet.sign_delegation(&other_account, &other).await.expect("their delegation");
    let err = s
        .valet
        .execute(&late_account, &stale.clone().with_authorization(theirs), &[s.mint(late.address(), 1)])
        .await
        .expect_err("another EOA's delegation");
    let expected =
        if upgrade_first { "upgrade the EOA first".to_string() } else { format!("is signed by {}", other.address()) };
    assert!(err.to_string().contains(&expected), "{err}");
    assert!(s.code(other.address()).await.is_empty(), "nothing was sent for the other EOA either");
    // Without a delegation at all: told what to do.
    let err = s
        .valet
        .execute(&late_account, &stale.clone().with_authorization(None), &[s.mint(late.address(), 1)])
        .await
        .expect_err("undelegated");
    let expected = if upgrade_first { "upgrade the EOA first" } else { "Valet::sign_delegation" };
    assert!(err.to_string().contains(expected), "{err}");
}

#[tokio::test]
async fn an_eoa_gets_a_session_through_the_sdk_with_direct_submission() {
    the_eoa_story(&Eoa::direct().await, false).await;
}

#[tokio::test]
async fn an_eoa_upgrades_then_gets_a_session_through_the_sdk_and_alto() {
    the_eoa_story(&Eoa::alto().await, true).await;
}

/// `upgrade`: the EOA becomes a Valet account in an owner operation of its own (delegation signed
/// inside); grants then need no delegation. Coming back after leaving without deactivating is
/// refused at propose until the EOA upgrades again, which voids the old session.
#[tokio::test]
async fn upgrade_makes_an_eoa_a_valet_account_and_voids_what_an_earlier_delegation_left() {
    let s = Eoa::direct().await;
    let (eoa, account) = s.eoa().await;
    s.valet.upgrade(&account, &eoa).await.expect("upgrade");
    let account = s.valet.account(eoa.address(), U256::ZERO).await.expect("account");
    assert!(account.deployed);
    assert!(s.valet.upgrade(&account, &eoa).await.is_err(), "upgrading twice is refused");
    let session = s.grant(&eoa, &account).await;
    assert!(session.authorization.is_none(), "no delegation needed any more");
    let done = s.valet.execute(&account, &session, &[s.mint(eoa.address(), 1)]).await.expect("mint");
    assert!(!done.deployed_account && done.enabled_session);

    // The EOA delegates away (to address 0) with a wallet, without deactivating.
    let wallet = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(eoa.clone()))
        .connect_http(s.devnet.endpoint().parse().expect("url"));
    let nonce = wallet.get_transaction_count(eoa.address()).await.expect("nonce");
    let away = alloy::eips::eip7702::Authorization {
        chain_id: U256::from(s.devnet.chain_id()),
        address: Address::ZERO,
        nonce: nonce + 1,
    };
    let signature = eoa.sign_hash_sync(&away.signature_hash()).expect("sign");
    let tx = alloy::network::TransactionBuilder7702::with_authorization_list(
        TransactionRequest::default().from(eoa.address()).to(eoa.address()),
        vec![away.into_signed(signature)],
    );
    wallet.send_transaction(tx).await.expect("send").get_receipt().await.expect("delegated away");
    assert!(s.code(eoa.address()).await.is_empty());
    let gone = s.valet.account(eoa.address(), U256::ZERO).await.expect("account");
    assert!(!gone.deployed);
    let err = s.valet.prepare(&gone, &session, &[s.mint(eoa.address(), 1)]).await.expect_err("no code");
    assert!(err.to_string().contains("does not delegate to Valet"), "{err}");
    // Proposing now would be voided by the activation: refused with what to do.
    let names = BTreeMap::from([("ValetNFT".to_string(), s.devnet.addresses.nft)]);
    let spec = SessionSpec::from_toml(SPEC).expect("spec");
    let err = s.valet.propose(&gone, &spec, &names, &Labels::default()).await.expect_err("stale record");
    assert!(err.to_string().contains("upgrade it first"), "{err}");
    // Upgrading again: the old session is void.
    s.valet.upgrade(&gone, &eoa).await.expect("upgrade again");
    let back = s.valet.account(eoa.address(), U256::ZERO).await.expect("account");
    let status = s.valet.status(eoa.address(), &session.session).await.expect("status");
    assert_eq!(status.state, Standing::Voided, "{status:?}");
    match s.valet.prepare(&back, &session, &[s.mint(eoa.address(), 1)]).await {
        Err(Error::Preflight(Refusal::EpochMismatch { .. })) => {}
        other => panic!("the old session is refused for its epoch, got {other:?}"),
    }
}

/// `leave`: one transaction of the EOA's own voids every session and grant and delegates it back
/// to nothing; coming back (`upgrade`) finds nothing alive, an unused grant from before included.
#[tokio::test]
async fn leaving_voids_everything_and_coming_back_starts_afresh() {
    let s = Eoa::direct().await;
    let (eoa, account) = s.eoa().await;
    let used = s.grant(&eoa, &account).await;
    s.valet.execute(&account, &used, &[s.mint(eoa.address(), 1)]).await.expect("delegate, activate, mint");
    let account = s.valet.account(eoa.address(), U256::ZERO).await.expect("account");
    let unused = s.grant(&eoa, &account).await; // granted, never enabled
    let epoch = s.valet.account_epoch(eoa.address()).await.expect("epoch");

    let wallet = valet_client::Relayer::new(
        alloy::providers::ProviderBuilder::new()
            .wallet(alloy::network::EthereumWallet::from(eoa.clone()))
            .connect_http(s.devnet.endpoint().parse().expect("url")),
        eoa.address(),
    );
    let stranger = valet_client::Relayer::new(s.devnet.provider_for(6), s.devnet.key(6).address());
    assert!(s.valet.leave(&account, &eoa, &stranger, Address::ZERO).await.is_err(), "only the EOA sends it");
    s.valet.leave(&account, &eoa, &wallet, Address::ZERO).await.expect("leave");
    assert!(s.code(eoa.address()).await.is_empty(), "a plain EOA again");
    assert_ne!(s.valet.account_epoch(eoa.address()).await.expect("epoch"), epoch, "the epoch moved");
    let status = s.valet.status(eoa.address(), &used.session).await.expect("status");
    assert_eq!(status.state, Standing::Voided, "{status:?}");
    assert!(!status.usable, "{status:?}");

    // Back: upgrade, then both old sessions are void (the epoch they name is gone).
    s.valet.upgrade(&account, &eoa).await.expect("upgrade");
    let back = s.valet.account(eoa.address(), U256::ZERO).await.expect("account");
    assert!(back.deployed);
    for old in [&used, &unused] {
        match s.valet.prepare(&back, old, &[s.mint(eoa.address(), 1)]).await {
            Err(Error::Preflight(Refusal::EpochMismatch { .. })) => {}
            other => panic!("an old session stays void after coming back, got {other:?}"),
        }
    }
    // A new grant works.
    let fresh = s.grant(&eoa, &back).await;
    s.valet.execute(&back, &fresh, &[s.mint(eoa.address(), 1)]).await.expect("a new session");
}
