//! One owner signature for a session on several chains, on three real anvils with their own chain
//! ids (Base's 8453, OP Mainnet's 10, and Arbitrum One's 42161 as the chain not listed): each
//! listed chain enables its own session from the one signature and counts its own uses; the
//! unlisted chain refuses it; a revocation on one chain leaves the other's session as it was; the
//! grant cannot be carried to another account of the same owner.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::dyn_abi::TypedData;
use alloy::primitives::{Address, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use valet_client::{
    Account, Devnet, DevnetOptions, Direct, Error, GrantKind, MultichainProposal, SessionHandle, SessionRecord,
    Standing, Valet,
};
use valet_core::spec::{Labels, SessionSpec};
use valet_core::{Call, Refusal};

alloy::sol!(
    #[sol(rpc)]
    ValetNFT,
    "../../contracts/artifacts/ValetNFT.json"
);

const ETHER: u128 = 1_000_000_000_000_000_000;

const SPEC: &str = r#"
valid_for = "1h"
max_uses = 3

[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "to", eq = "$account" }, { arg = "quantity", lte = 5 }]

[fees]
budget = "0.5 ether"
"#;

struct Chain {
    devnet: Devnet,
    valet: Valet,
    account: Account,
}

impl Chain {
    async fn start(chain_id: u64, owner: Address) -> Chain {
        let devnet =
            Devnet::start_with(DevnetOptions { chain_id: Some(chain_id), ..Default::default() }).await.expect("devnet");
        let direct = Direct::new(devnet.provider_for(1), devnet.key(1).address()).await.expect("direct submitter");
        let valet = Valet::new(devnet.provider.clone(), Arc::new(direct), devnet.deployment()).await.expect("client");
        assert_eq!(valet.chain_id(), chain_id);
        let account = valet.account(owner, U256::ZERO).await.expect("account");
        devnet.fund(account.address, U256::from(ETHER)).await.expect("fund");
        Chain { devnet, valet, account }
    }

    fn names(&self) -> BTreeMap<String, Address> {
        BTreeMap::from([("ValetNFT".to_string(), self.devnet.addresses.nft)])
    }

    fn mint(&self, to: Address) -> Call {
        let data = ValetNFT::mintCall { to, quantity: U256::from(1) }.abi_encode();
        Call { target: self.devnet.addresses.nft, value: U256::ZERO, data: data.into() }
    }

    async fn minted(&self, to: Address) -> U256 {
        ValetNFT::new(self.devnet.addresses.nft, &self.devnet.provider).balanceOf(to).call().await.expect("balance")
    }

    /// Forces `session`'s operation for `account` past the pre-flight: the chain's refusal.
    async fn forced(&self, account: &Account, session: &SessionHandle) -> String {
        let op =
            self.valet.prepare_unchecked(account, session, &[self.mint(account.address)]).await.expect("forced op");
        match self.valet.submit(&[op]).await {
            Err(e @ Error::Refused { .. }) => e.to_string(),
            other => panic!("expected the chain to refuse, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn one_signature_grants_a_session_on_each_listed_chain_and_no_other() {
    let owner = PrivateKeySigner::random();
    let (base, optimism, arbitrum) = tokio::join!(
        Chain::start(8453, owner.address()),
        Chain::start(10, owner.address()),
        Chain::start(42161, owner.address())
    );
    // The same factory and validator everywhere, so the same counterfactual account.
    assert_eq!(base.account.address, optimism.account.address);

    let spec = SessionSpec::from_toml(SPEC).expect("spec");
    let labels = Labels::default();
    let on_base = base.valet.propose(&base.account, &spec, &base.names(), &labels).await.expect("propose on Base");
    let on_optimism =
        optimism.valet.propose(&optimism.account, &spec, &optimism.names(), &labels).await.expect("propose on OP");
    let proposal = MultichainProposal::new(vec![on_base, on_optimism]).expect("one grant for two chains");
    assert!(
        proposal.summary[0].contains("2 chains: Base (chain 8453), OP Mainnet (chain 10)")
            && proposal.summary[0].contains("Each chain counts its own uses and limits"),
        "the approval names the chains and says counts are per chain: {:?}",
        proposal.summary
    );
    assert!(proposal.summary.iter().any(|l| l == "On Base (chain 8453):"), "{:?}", proposal.summary);

    // What a wallet signs hashes to the digest.
    let typed: TypedData = serde_json::from_value(proposal.typed_data().expect("typed data")).expect("parses");
    assert_eq!(typed.eip712_signing_hash().expect("hash"), proposal.digest);

    // One signature.
    let signature = owner.sign_hash_sync(&proposal.digest).expect("owner signs").as_bytes();
    let not_the_owner = PrivateKeySigner::random().sign_hash_sync(&proposal.digest).expect("sign").as_bytes();
    assert!(matches!(proposal.clone().grant(&not_the_owner), Err(Error::WrongGrantSigner { .. })));
    let sessions = proposal.grant(&signature).expect("the owner's grant");
    let [base_session, optimism_session]: [SessionHandle; 2] = sessions.try_into().expect("two sessions");
    assert_eq!(base_session.grant_kind, GrantKind::Multichain);
    // The record keeps the kind (a stored multichain session enables as one after a restart).
    let record: SessionRecord =
        serde_json::from_str(&serde_json::to_string(&base_session.record()).expect("json")).expect("record");
    assert_eq!(
        SessionHandle::from_record(&record, base_session.key.clone()).expect("back").grant_kind,
        GrantKind::Multichain
    );

    // Base: the first operation deploys the account, enables the session and mints; then one more.
    let a = base.account;
    let first = base.valet.execute(&a, &base_session, &[base.mint(a.address)]).await.expect("first mint on Base");
    assert!(first.deployed_account && first.enabled_session);
    base.valet.execute(&a, &base_session, &[base.mint(a.address)]).await.expect("second mint on Base");
    assert_eq!(base.minted(a.address).await, U256::from(2));

    // The owner revokes it on Base.
    let owner_account = base.valet.account(owner.address(), U256::ZERO).await.expect("account");
    base.valet.revoke(&owner_account, &owner, base_session.id).await.expect("revoke on Base");
    assert!(matches!(
        base.valet.prepare(&a, &base_session, &[base.mint(a.address)]).await,
        Err(Error::Preflight(Refusal::Revoked(_)))
    ));
    assert!(base.forced(&a, &base_session).await.contains("SessionIsRevoked"));

    // OP Mainnet: its own session, untouched by Base's revocation, with its own 3 uses.
    let o = optimism.account;
    for i in 0..3 {
        optimism.valet.execute(&o, &optimism_session, &[optimism.mint(o.address)]).await.unwrap_or_else(|e| {
            panic!("mint {} on OP Mainnet: {e}", i + 1);
        });
    }
    assert_eq!(optimism.minted(o.address).await, U256::from(3));
    let status = optimism.valet.status(o.address, &optimism_session.session).await.expect("status");
    assert_eq!(status.state, Standing::Enabled);
    match optimism.valet.prepare(&o, &optimism_session, &[optimism.mint(o.address)]).await {
        Err(Error::Preflight(Refusal::SessionUsesExhausted { max_uses: 3, .. })) => {}
        other => panic!("the fourth mint on OP Mainnet is refused for its own uses, got {other:?}"),
    }

    // Arbitrum One is not listed: neither chain's proof enables a session there.
    let r = arbitrum.account;
    for session in [&base_session, &optimism_session] {
        let refusal = arbitrum.forced(&r, session).await;
        assert!(refusal.contains("InvalidGrantSignature"), "refused on the unlisted chain: {refusal}");
    }
    assert_eq!(arbitrum.minted(r.address).await, U256::ZERO);

    // Another account of the same owner on a listed chain: the entry names the account.
    let other = optimism.valet.account(owner.address(), U256::from(1)).await.expect("second account");
    optimism.devnet.fund(other.address, U256::from(ETHER)).await.expect("fund");
    let fresh = optimism.valet.propose(&optimism.account, &spec, &optimism.names(), &labels).await.expect("propose");
    let single = MultichainProposal::new(vec![fresh]).expect("one chain");
    let sig = owner.sign_hash_sync(&single.digest).expect("sign").as_bytes();
    let session = single.grant(&sig).expect("grant").remove(0);
    let refusal = optimism.forced(&other, &session).await;
    assert!(refusal.contains("InvalidGrantSignature"), "refused for another account: {refusal}");
}

#[tokio::test]
async fn a_multichain_proposal_refuses_two_owners_and_a_chain_listed_twice() {
    let (owner, stranger) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let chain = Chain::start(8453, owner.address()).await;
    let spec = SessionSpec::from_toml(SPEC).expect("spec");
    let labels = Labels::default();
    let mine = chain.valet.propose(&chain.account, &spec, &chain.names(), &labels).await.expect("propose");
    let again = chain.valet.propose(&chain.account, &spec, &chain.names(), &labels).await.expect("propose");
    let err = MultichainProposal::new(vec![mine.clone(), again]).expect_err("one chain twice");
    assert!(err.to_string().contains("chain 8453 is listed twice"), "{err}");

    let theirs_account = chain.valet.account(stranger.address(), U256::ZERO).await.expect("account");
    let theirs = chain.valet.propose(&theirs_account, &spec, &chain.names(), &labels).await.expect("propose");
    let err = MultichainProposal::new(vec![mine, theirs]).expect_err("two owners");
    assert!(err.to_string().contains("one signature grants for one owner"), "{err}");
    assert!(MultichainProposal::new(Vec::new()).is_err());
}
