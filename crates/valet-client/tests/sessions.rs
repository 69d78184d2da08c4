//! The session client against a real anvil (direct submission): every rule kind refused before
//! sending with its reason and by the chain when forced; expiry; revocation (after use and before
//! first use); a periodic allowance across periods; several sessions of one account on their own
//! nonce lanes, in parallel and packed into one `handleOps`.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use valet_client::{Account, Devnet, Direct, Error, Relayer, SessionHandle, SessionRecord, Standing, Valet};
use valet_core::spec::{Labels, SessionSpec, explain};
use valet_core::user_operation::session_lane;
use valet_core::{Call, Refusal, RuleOp};

// The demo contracts, bound from their artifacts as an app binds the contracts it calls
// (valet-client exports its own bindings of them only with its `demo` feature).
alloy::sol!(
    #[sol(rpc)]
    ValetNFT,
    "../../contracts/artifacts/ValetNFT.json"
);
alloy::sol!(
    #[sol(rpc)]
    ValetToken,
    "../../contracts/artifacts/ValetToken.json"
);

const ETHER: u128 = 1_000_000_000_000_000_000;

struct Setup {
    devnet: Devnet,
    valet: Valet,
    owner: PrivateKeySigner,
    account: Account,
    names: BTreeMap<String, Address>,
}

async fn setup() -> Setup {
    let devnet = Devnet::start().await.expect("devnet");
    let direct = Direct::new(devnet.provider_for(1), devnet.key(1).address()).await.expect("direct submitter");
    let valet = Valet::new(devnet.provider.clone(), Arc::new(direct), devnet.deployment()).await.expect("client");
    let owner = devnet.key(3);
    let account = valet.account(owner.address(), U256::ZERO).await.expect("account");
    assert!(!account.deployed, "counterfactual at first");
    devnet.fund(account.address, U256::from(ETHER)).await.expect("fund");
    let a = devnet.addresses;
    let names = BTreeMap::from([
        ("ValetNFT".to_string(), a.nft),
        ("ValetToken".to_string(), a.token),
        ("ValetDAO".to_string(), a.dao),
        ("Payee".to_string(), devnet.key(6).address()),
    ]);
    Setup { devnet, valet, owner, account, names }
}

impl Setup {
    /// Grants `spec`; unless it says how fees are paid, with a fee budget of 0.5 ETH (the
    /// tests' operations pay their own fees).
    async fn grant(&self, spec: &str) -> SessionHandle {
        let spec =
            if spec.contains("fees") { spec.to_string() } else { format!("{spec}\n[fees]\nbudget = \"0.5 ether\"\n") };
        let spec = SessionSpec::from_toml(&spec).expect("spec parses");
        let proposal =
            self.valet.propose(&self.account, &spec, &self.names, &Labels::default()).await.expect("propose");
        let signature = self.owner.sign_hash_sync(&proposal.digest).expect("owner signs").as_bytes();
        proposal.grant(&signature).expect("the owner's grant")
    }

    fn mint(&self, to: Address, quantity: u64) -> Call {
        let data = ValetNFT::mintCall { to, quantity: U256::from(quantity) }.abi_encode();
        Call { target: self.devnet.addresses.nft, value: U256::ZERO, data: data.into() }
    }

    fn pay(&self, to: Address, amount: u128) -> Call {
        let data = ValetToken::transferCall { to, value: U256::from(amount) }.abi_encode();
        Call { target: self.devnet.addresses.token, value: U256::ZERO, data: data.into() }
    }

    /// `calls` are refused before sending, and by the chain when forced: returns both reasons.
    async fn refused(&self, session: &SessionHandle, calls: &[Call]) -> (Refusal, String) {
        let refusal = match self.valet.prepare(&self.account, session, calls).await {
            Err(Error::Preflight(refusal)) => refusal,
            other => panic!("expected a pre-flight refusal, got {other:?}"),
        };
        let forced = self.valet.prepare_unchecked(&self.account, session, calls).await.expect("forced op");
        let chain = match self.valet.submit(&[forced]).await {
            Err(e @ Error::Refused { .. }) => e.to_string(),
            other => panic!("the chain should refuse what the evaluator refused ({refusal}), got {other:?}"),
        };
        (refusal, chain)
    }
}

/// One session per rule kind, each on `mint(to, quantity)`: a call within the rule goes through,
/// one outside it is refused by the evaluator with the rule, argument and value, and by the
/// validator with the same indices and value.
#[tokio::test]
async fn every_rule_kind_is_refused_before_sending_and_on_chain() {
    let s = setup().await;
    let me = s.account.address;
    let other = s.devnet.key(7).address();
    let cases: Vec<(&str, &str, RuleOp, Call, Call)> = vec![
        ("eq", r#"{ arg = "quantity", eq = 2 }"#, RuleOp::Eq, s.mint(me, 2), s.mint(me, 3)),
        ("ne", r#"{ arg = "quantity", ne = 2 }"#, RuleOp::Ne, s.mint(me, 3), s.mint(me, 2)),
        ("gt", r#"{ arg = "quantity", gt = 2 }"#, RuleOp::Gt, s.mint(me, 3), s.mint(me, 2)),
        ("gte", r#"{ arg = "quantity", gte = 2 }"#, RuleOp::Gte, s.mint(me, 2), s.mint(me, 1)),
        ("lt", r#"{ arg = "quantity", lt = 2 }"#, RuleOp::Lt, s.mint(me, 1), s.mint(me, 2)),
        ("lte", r#"{ arg = "quantity", lte = 2 }"#, RuleOp::Lte, s.mint(me, 2), s.mint(me, 3)),
        ("in_range", r#"{ arg = "quantity", in_range = [2, 4] }"#, RuleOp::InRange, s.mint(me, 4), s.mint(me, 5)),
        ("one_of", r#"{ arg = "quantity", one_of = [1, 3] }"#, RuleOp::OneOf, s.mint(me, 3), s.mint(me, 2)),
        ("self", r#"{ arg = "to", eq = "$account" }"#, RuleOp::SelfAccount, s.mint(me, 1), s.mint(other, 1)),
    ];
    for (salt, (name, rule, op, good, bad)) in cases.into_iter().enumerate() {
        let spec = format!(
            "valid_for = \"1h\"\nsalt = {salt}\n[[permission]]\ntarget = \"ValetNFT\"\n\
             function = \"mint(address to, uint256 quantity)\"\nrules = [{rule}]\n"
        );
        let session = s.grant(&spec).await;
        let done = s.valet.execute(&s.account, &session, &[good]).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(done.receipt.success && done.enabled_session, "{name}");
        assert_eq!(done.deployed_account, salt == 0, "{name}: only the very first operation deploys");
        let (refusal, chain) = s.refused(&session, std::slice::from_ref(&bad)).await;
        let Refusal::RuleViolated { call: 0, permission: 0, rule: 0, arg, op: got, value } = refusal else {
            panic!("{name}: {refusal:?}");
        };
        assert_eq!(got, op, "{name}");
        let expected_arg = if name == "self" { 0 } else { 1 };
        assert_eq!(arg, expected_arg, "{name}");
        let expected_value = if name == "self" { U256::from_be_slice(other.as_slice()) } else { value };
        assert_eq!(value, expected_value, "{name}");
        // Explained in the spec's words from the stored record alone (no spec kept around).
        let stored = serde_json::to_string(&session.record()).expect("record serialises");
        let record: SessionRecord = serde_json::from_str(&stored).expect("record parses");
        let again = SessionHandle::from_record(&record, session.key.clone()).expect("from record");
        let arg_name = if name == "self" { "to" } else { "quantity" };
        let words = again.explain(&refusal, &Labels::default());
        assert!(words.contains(arg_name) && words.contains("mint"), "{name}: {words}");
        assert!(!session.explain(&refusal, &Labels::default()).contains("argument "), "{name}: named, not numbered");
        assert!(chain.contains("AA23 reverted"), "{name}: {chain}");
        assert!(
            chain.contains(&format!(
                "RuleViolated(callIndex=0, permissionIndex=0, ruleIndex=0, argIndex={arg}, value={value})"
            )),
            "{name}: {chain}"
        );
    }
}

/// Calls outside every permission: another function, another contract, native value above the
/// cap, the validator itself, and a batch whose second call breaks a rule.
#[tokio::test]
async fn calls_outside_the_session_are_refused_with_their_reason() {
    let s = setup().await;
    let session = s
        .grant(
            r#"
valid_for = "1h"
[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "quantity", lte = 5 }]
[[permission]]
target = "Payee"
value_limit = "0.01 ether"
"#,
        )
        .await;
    let payee = s.names["Payee"];
    let me = s.account.address;
    // A batch within the session: a mint and a tip, one operation.
    let tip = Call { target: payee, value: U256::from(ETHER / 100), data: Default::default() };
    let done = s.valet.execute(&s.account, &session, &[s.mint(me, 5), tip.clone()]).await.expect("batch");
    assert_eq!(done.indices, vec![0, 1], "each call found its permission");

    let approve = ValetNFT::setApprovalForAllCall { operator: payee, approved: true }.abi_encode();
    let cases: Vec<(&str, Vec<Call>)> = vec![
        ("another function", vec![Call { target: s.devnet.addresses.nft, value: U256::ZERO, data: approve.into() }]),
        ("another contract", vec![Call { target: s.devnet.addresses.dao, ..s.mint(me, 1) }]),
        ("value above the cap", vec![Call { value: U256::from(ETHER / 50), ..tip.clone() }]),
        ("the validator", vec![Call { target: s.devnet.addresses.validator, ..tip.clone() }]),
        ("a batch breaking a rule in its second call", vec![s.mint(me, 1), s.mint(me, 6)]),
    ];
    for (name, calls) in cases {
        let (refusal, chain) = s.refused(&session, &calls).await;
        let expected = match name {
            "another function" | "another contract" => matches!(refusal, Refusal::NotPermitted { call: 0, .. }),
            "value above the cap" => matches!(refusal, Refusal::ValueAboveLimit { call: 0, permission: 1, .. }),
            "the validator" => matches!(refusal, Refusal::ForbiddenTarget { call: 0, .. }),
            _ => matches!(refusal, Refusal::RuleViolated { call: 1, permission: 0, .. }),
        };
        assert!(expected, "{name}: {refusal:?}");
        let error = match name {
            "another function" | "another contract" => "CallNotPermitted(",
            "value above the cap" => "ValueLimitExceeded(",
            "the validator" => "ForbiddenTarget(",
            _ => "RuleViolated(callIndex=1",
        };
        assert!(chain.contains(error), "{name}: {chain}");
    }
}

#[tokio::test]
async fn an_expired_session_is_refused_and_says_so() {
    let s = setup().await;
    let session = s
        .grant(
            r#"
valid_for = "90s"
[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
"#,
        )
        .await;
    let me = s.account.address;
    s.valet.execute(&s.account, &session, &[s.mint(me, 1)]).await.expect("within the window");
    s.devnet.advance_time(120).await.expect("time travel");
    let (refusal, chain) = s.refused(&session, &[s.mint(me, 1)]).await;
    assert!(matches!(refusal, Refusal::OutsideWindow { .. }), "{refusal:?}");
    let words = explain(&refusal, &session.session, &[], &Labels::default());
    assert!(words.starts_with("the session expired at ") && words.ends_with("grant a new one"), "{words}");
    assert!(chain.contains("AA22 expired or not due"), "{chain}");
    let status = s.valet.status(me, &session.session).await.expect("status");
    assert!(!status.usable);
    assert!(status.reason.as_deref().is_some_and(|r| r.starts_with("session expired at ")), "{status:?}");
}

#[tokio::test]
async fn a_revoked_session_stops_at_once_whether_used_or_not() {
    let s = setup().await;
    let spec = |salt: u32| {
        format!(
            "valid_for = \"1h\"\nsalt = {salt}\n[[permission]]\ntarget = \"ValetNFT\"\n\
             function = \"mint(address to, uint256 quantity)\"\nmax_uses = 5\n"
        )
    };
    let me = s.account.address;
    let used = s.grant(&spec(1)).await;
    let unused = s.grant(&spec(2)).await;
    s.valet.execute(&s.account, &used, &[s.mint(me, 1)]).await.expect("first use");
    assert_eq!(s.valet.status(me, &used.session).await.expect("status").state, Standing::Enabled);

    for session in [&used, &unused] {
        s.valet.revoke(&s.account, &s.owner, session.id).await.expect("the owner revokes");
        let status = s.valet.status(me, &session.session).await.expect("status");
        assert_eq!(status.state, Standing::Revoked);
        assert!(status.reason.as_deref().is_some_and(|r| r.contains("was revoked")), "{status:?}");
        let (refusal, chain) = s.refused(session, &[s.mint(me, 1)]).await;
        assert_eq!(refusal, Refusal::Revoked(session.id));
        assert!(chain.contains("SessionIsRevoked("), "{chain}");
    }
    let again = s.valet.revoke(&s.account, &s.owner, used.id).await.expect_err("already revoked");
    assert!(matches!(again, Error::AlreadyRevoked { id } if id == used.id), "{again:?}");
    assert!(again.to_string().contains("is already revoked"), "{again}");
    // Only the owner may revoke.
    let stranger = s.devnet.key(8);
    let err = s.valet.revoke(&s.account, &stranger, used.id).await.expect_err("not the owner");
    assert!(
        matches!(err, Error::NotOwner { key, owner, .. } if key == stranger.address() && owner == s.owner.address()),
        "{err:?}"
    );
}

/// The owner signs revocations offline (a raw EIP-712 hash, or the typed data a wallet shows) and
/// anyone submits them: a stranger's signature is refused in simulation at no cost, a revoked
/// session is not paid for twice, and a revoke-all signed once cannot be replayed.
#[tokio::test]
async fn an_owner_signed_revocation_is_submitted_by_anyone_once() {
    let s = setup().await;
    let me = s.account.address;
    let spec = |salt: u32| {
        format!(
            "valid_for = \"1h\"\nsalt = {salt}\n[[permission]]\ntarget = \"ValetNFT\"\n\
             function = \"mint(address to, uint256 quantity)\"\n"
        )
    };
    let (one, two) = (s.grant(&spec(1)).await, s.grant(&spec(2)).await);
    s.valet.execute(&s.account, &one, &[s.mint(me, 1)]).await.expect("enabled by its first mint");
    // The app's relayer, which the owner never gives a key to.
    let relayer = Relayer::new(s.devnet.provider_for(5), s.devnet.key(5).address());

    let revocation = s.valet.revocation(me, one.id);
    assert_eq!(revocation.typed_data["primaryType"], "RevokeSession");
    let stranger = s.devnet.key(8).sign_hash_sync(&revocation.digest).expect("sign").as_bytes();
    match s.valet.revoke_with_signature(&relayer, &revocation, &stranger).await {
        Err(Error::TransactionWouldRevert(reason)) => assert!(reason.contains("InvalidOwnerSignature"), "{reason}"),
        other => panic!("a stranger's signature must be refused, got {other:?}"),
    }
    assert_eq!(s.valet.status(me, &one.session).await.expect("status").state, Standing::Enabled);
    let signature = s.owner.sign_hash_sync(&revocation.digest).expect("sign").as_bytes();
    s.valet.revoke_with_signature(&relayer, &revocation, &signature).await.expect("revoked");
    assert_eq!(s.valet.status(me, &one.session).await.expect("status").state, Standing::Revoked);
    let (refusal, _) = s.refused(&one, &[s.mint(me, 1)]).await;
    assert_eq!(refusal, Refusal::Revoked(one.id));
    match s.valet.revoke_with_signature(&relayer, &revocation, &signature).await {
        Err(Error::AlreadyRevoked { id }) => assert_eq!(id, one.id),
        other => panic!("revoking again must be refused before paying, got {other:?}"),
    }

    let all = s.valet.revocation_of_all(me).await.expect("revocation of all");
    let signature = s.owner.sign_hash_sync(&all.digest).expect("sign").as_bytes();
    s.valet.revoke_with_signature(&relayer, &all, &signature).await.expect("every session revoked");
    assert_eq!(s.valet.status(me, &two.session).await.expect("status").state, Standing::Voided);
    match s.valet.revoke_with_signature(&relayer, &all, &signature).await {
        Err(Error::Config(message)) => assert!(message.contains("since this revocation was signed"), "{message}"),
        other => panic!("a replayed revoke-all must be refused, got {other:?}"),
    }
}

/// 10 tokens a day: spent in pieces, refused past the cap, refilled the next day.
#[tokio::test]
async fn a_periodic_allowance_refills_each_period() {
    let s = setup().await;
    let a = s.devnet.addresses;
    ValetToken::new(a.token, &s.devnet.provider)
        .faucet(s.account.address, U256::from(100 * ETHER))
        .send()
        .await
        .expect("faucet")
        .get_receipt()
        .await
        .expect("faucet receipt");
    let session = s
        .grant(
            r#"
valid_for = "7d"
[[permission]]
target = "ValetToken"
function = "transfer(address to, uint256 amount)"
rules = [{ arg = "to", eq = "Payee" }]
[[limit]]
token = "ValetToken"
amount = "10 ether"
period = "1d"
"#,
        )
        .await;
    let payee = s.names["Payee"];
    let me = s.account.address;
    for amount in [6, 4] {
        s.valet.execute(&s.account, &session, &[s.pay(payee, amount * ETHER)]).await.expect("within the allowance");
    }
    let (refusal, chain) = s.refused(&session, &[s.pay(payee, ETHER)]).await;
    assert_eq!(
        refusal,
        Refusal::LimitExceeded { limit: 0, spent: 10 * ETHER, amount: U256::from(ETHER), cap: 10 * ETHER }
    );
    assert!(chain.contains("LimitExceeded("), "{chain}");
    let status = s.valet.status(me, &session.session).await.expect("status");
    assert_eq!((status.limits[0].left, status.limits[0].current_period), (0, 0));

    s.devnet.advance_time(86_400).await.expect("a day passes");
    let status = s.valet.status(me, &session.session).await.expect("status");
    assert_eq!((status.limits[0].left, status.limits[0].current_period), (10 * ETHER, 1), "refilled");
    s.valet.execute(&s.account, &session, &[s.pay(payee, 10 * ETHER)]).await.expect("the new day's allowance");
    let (refusal, _) = s.refused(&session, &[s.pay(payee, 1)]).await;
    assert!(matches!(refusal, Refusal::LimitExceeded { spent, .. } if spent == 10 * ETHER), "{refusal:?}");
    let balance = ValetToken::new(a.token, s.valet.provider()).balanceOf(payee).call().await.expect("balance");
    assert_eq!(balance, U256::from(20 * ETHER));
}

/// A session minting to the account itself, told apart by `salt`.
fn mint_to_self(salt: u32) -> String {
    format!(
        "valid_for = \"1h\"\nsalt = {salt}\n[[permission]]\ntarget = \"ValetNFT\"\n\
         function = \"mint(address to, uint256 quantity)\"\nrules = [{{ arg = \"to\", eq = \"$account\" }}]\n"
    )
}

/// Three sessions of one account, each on its own nonce lane: their operations are prepared
/// concurrently and packed into one `handleOps`, then executed concurrently.
#[tokio::test]
async fn sessions_run_in_parallel_on_their_own_lanes() {
    let s = setup().await;
    let me = s.account.address;
    let sessions = [s.grant(&mint_to_self(1)).await, s.grant(&mint_to_self(2)).await, s.grant(&mint_to_self(3)).await];
    let lanes: std::collections::BTreeSet<u32> = sessions.iter().map(|x| session_lane(x.id)).collect();
    assert_eq!(lanes.len(), 3, "three lanes");
    // Deploy the account first (one initCode only), then enable the other two in parallel.
    s.valet.execute(&s.account, &sessions[0], &[s.mint(me, 1)]).await.expect("deploys");

    let mint = s.mint(me, 1);
    let (a, b, c) = tokio::join!(
        s.valet.prepare(&s.account, &sessions[0], std::slice::from_ref(&mint)),
        s.valet.prepare(&s.account, &sessions[1], std::slice::from_ref(&mint)),
        s.valet.prepare(&s.account, &sessions[2], std::slice::from_ref(&mint)),
    );
    let ops = vec![a.expect("a").op, b.expect("b").op, c.expect("c").op];
    let receipts = s.valet.submit(&ops).await.expect("one handleOps");
    assert_eq!(receipts.len(), 3);
    assert!(receipts.iter().all(|r| r.success && r.transaction_hash == receipts[0].transaction_hash), "one tx");

    let (a, b, c) = tokio::join!(
        s.valet.execute(&s.account, &sessions[0], std::slice::from_ref(&mint)),
        s.valet.execute(&s.account, &sessions[1], std::slice::from_ref(&mint)),
        s.valet.execute(&s.account, &sessions[2], std::slice::from_ref(&mint)),
    );
    for done in [a, b, c] {
        assert!(done.expect("concurrent execution").receipt.success);
    }
    for (i, session) in sessions.iter().enumerate() {
        let sequence = s.valet.nonce(me, session.nonce_key()).await.expect("nonce") & U256::from(u64::MAX);
        assert_eq!(sequence, U256::from(if i == 0 { 3 } else { 2 }), "lane of session {i}");
    }
    let balance = ValetNFT::new(s.devnet.addresses.nft, s.valet.provider()).balanceOf(me).call().await.expect("bal");
    assert_eq!(balance, U256::from(7));
}

/// The NFT ids minted to `to` by `logs` (`Transfer(0, to, id)` of `nft`), and whether every other
/// `Transfer` of `nft` in them is one too.
fn minted_to(logs: &[alloy::primitives::Log], nft: Address, to: Address) -> (Vec<U256>, bool) {
    let transfers: Vec<_> = logs
        .iter()
        .filter(|l| l.address == nft)
        .filter_map(|l| ValetNFT::Transfer::decode_log(l).ok())
        .map(|t| t.data)
        .collect();
    let only = transfers.iter().all(|t| t.from == Address::ZERO && t.to == to);
    (transfers.into_iter().map(|t| t.tokenId).collect(), only)
}

/// Two accounts' operations in one `handleOps`: each receipt carries its own operation's logs
/// only (the NFTs it minted to its own account), none of the other's and none of the EntryPoint's.
#[tokio::test]
async fn each_operation_of_a_handle_ops_carries_only_its_own_logs() {
    let s = setup().await;
    let nft = s.devnet.addresses.nft;
    let owner_b = s.devnet.key(4);
    let account_b = s.valet.account(owner_b.address(), U256::ZERO).await.expect("account b");
    s.devnet.fund(account_b.address, U256::from(ETHER)).await.expect("fund b");
    let session_a = s.grant(&mint_to_self(1)).await;
    let spec = SessionSpec::from_toml(&format!("{}\n[fees]\nbudget = \"0.5 ether\"\n", mint_to_self(2))).expect("spec");
    let proposal = s.valet.propose(&account_b, &spec, &s.names, &Labels::default()).await.expect("propose b");
    let signature = owner_b.sign_hash_sync(&proposal.digest).expect("sign").as_bytes();
    let session_b = proposal.grant(&signature).expect("b's grant");
    // Minted before, so that ids are not simply counted from 0.
    s.valet.execute(&s.account, &session_a, &[s.mint(s.account.address, 1)]).await.expect("deploys a");

    // Both first uses of their sessions, b's also its account's deployment (validation-phase
    // logs, which belong to no execution).
    let a = s.valet.prepare(&s.account, &session_a, &[s.mint(s.account.address, 2)]).await.expect("a").op;
    let b = s.valet.prepare(&account_b, &session_b, &[s.mint(account_b.address, 3)]).await.expect("b").op;
    let receipts = s.valet.submit(&[a, b]).await.expect("one handleOps");
    assert_eq!(receipts[0].transaction_hash, receipts[1].transaction_hash, "one transaction");
    let (ids_a, only_a) = minted_to(&receipts[0].logs, nft, s.account.address);
    let (ids_b, only_b) = minted_to(&receipts[1].logs, nft, account_b.address);
    assert!(only_a && only_b, "a Transfer of the other operation: {receipts:?}");
    assert_eq!((ids_a.len(), ids_b.len()), (2, 3), "{receipts:?}");
    assert!(ids_a.iter().all(|id| !ids_b.contains(id)), "disjoint: {ids_a:?} {ids_b:?}");
    let entry_point = s.devnet.addresses.entry_point;
    assert!(receipts.iter().flat_map(|r| &r.logs).all(|l| l.address != entry_point), "no EntryPoint event");
    let collection = ValetNFT::new(nft, s.valet.provider());
    for (ids, owner) in [(&ids_a, s.account.address), (&ids_b, account_b.address)] {
        for id in ids {
            assert_eq!(collection.ownerOf(*id).call().await.expect("ownerOf"), owner, "#{id}");
        }
    }
}

/// Concurrent submissions share one `handleOps`; an operation the EntryPoint refuses fails its
/// own submission only.
#[tokio::test]
async fn concurrent_submissions_are_packed_and_a_refused_one_fails_alone() {
    let s = setup().await;
    let me = s.account.address;
    let sessions = [s.grant(&mint_to_self(1)).await, s.grant(&mint_to_self(2)).await, s.grant(&mint_to_self(3)).await];
    s.valet.execute(&s.account, &sessions[0], &[s.mint(me, 1)]).await.expect("deploys");
    let good_a = s.valet.prepare(&s.account, &sessions[1], &[s.mint(me, 1)]).await.expect("a").op;
    let bad = s.valet.prepare_unchecked(&s.account, &sessions[0], &[s.mint(s.names["Payee"], 1)]).await.expect("bad");
    let good_b = s.valet.prepare(&s.account, &sessions[2], &[s.mint(me, 1)]).await.expect("b").op;
    let submitter = s.valet.submitter();
    let (a, refused, b) = tokio::join!(
        submitter.submit(std::slice::from_ref(&good_a)),
        submitter.submit(std::slice::from_ref(&bad)),
        submitter.submit(std::slice::from_ref(&good_b)),
    );
    let (a, b) = (a.expect("a included").remove(0), b.expect("b included").remove(0));
    assert!(a.success && b.success);
    assert_eq!(a.transaction_hash, b.transaction_hash, "packed into one handleOps");
    match refused {
        Err(Error::Refused { op_index: 0, decoded: Some(d), .. }) => assert!(d.starts_with("RuleViolated("), "{d}"),
        other => panic!("expected the bad operation alone to be refused, got {other:?}"),
    }
}

/// A grant signed by someone other than the owner is refused before anything is stored or sent.
#[tokio::test]
async fn a_grant_must_be_the_owners() {
    let s = setup().await;
    let spec = SessionSpec::from_toml(valet_core::spec::DEMO_MINT_SPEC).expect("spec");
    let proposal = s.valet.propose(&s.account, &spec, &s.names, &Labels::default()).await.expect("propose");
    let stranger = s.devnet.key(8);
    let signature = stranger.sign_hash_sync(&proposal.digest).expect("signs").as_bytes();
    match proposal.grant(&signature) {
        Err(Error::WrongGrantSigner { signer, owner }) => {
            assert_eq!((signer, owner), (stranger.address(), s.owner.address()));
        }
        other => panic!("expected WrongGrantSigner, got {other:?}"),
    }
}

/// A wallet is given the grant as EIP-712 typed data (`eth_signTypedData_v4`): what it hashes is
/// the digest, so the signature it returns grants the session, and the session runs.
#[tokio::test]
async fn a_wallet_signs_the_grant_as_typed_data() {
    let s = setup().await;
    let spec = SessionSpec::from_toml(valet_core::spec::DEMO_MINT_SPEC).expect("spec");
    let proposal = s.valet.propose(&s.account, &spec, &s.names, &Labels::default()).await.expect("propose");
    let typed: alloy::dyn_abi::TypedData =
        serde_json::from_value(proposal.typed_data().expect("typed data")).expect("eth_signTypedData_v4 JSON");
    assert_eq!(typed.primary_type, "Grant");
    assert_eq!(typed.eip712_signing_hash().expect("hash"), proposal.digest, "the wallet signs the digest");
    let signature = s.owner.sign_dynamic_typed_data_sync(&typed).expect("the wallet signs").as_bytes();
    let session = proposal.grant(&signature).expect("a typed-data signature grants");

    // Stored without its key (as JSON here), and taken back with it: the same session, usable.
    let stored = serde_json::to_string(&session.record()).expect("the record serialises");
    assert!(!stored.contains(&alloy::hex::encode(session.key.to_bytes())), "no key in the record");
    let record: valet_client::SessionRecord = serde_json::from_str(&stored).expect("the record deserialises");
    let other = alloy::signers::local::PrivateKeySigner::random();
    let e = valet_client::SessionHandle::from_record(&record, other.clone()).expect_err("another key");
    assert!(e.to_string().contains(&other.address().to_string()), "{e}");
    let mut altered = record.clone();
    altered.id = alloy::primitives::B256::repeat_byte(1);
    assert!(valet_client::SessionHandle::from_record(&altered, session.key.clone()).is_err(), "an altered record");
    let session = valet_client::SessionHandle::from_record(&record, session.key.clone()).expect("back with its key");

    let done = s.valet.execute(&s.account, &session, &[s.mint(s.account.address, 1)]).await.expect("mint");
    assert!(done.receipt.success && done.enabled_session);
}
