//! Gas sponsorship on the devnet, through direct submission and through Alto: an account that
//! never held ETH is deployed, gets its session enabled and uses it in one operation the devnet's
//! ValetPaymaster pays for (its deposit drops by exactly the operation's cost); a session that may
//! not spend the account's ETH is refused before sending without a paymaster and runs with one; a
//! session listing another paymaster is refused before sending, naming ours, and by the chain when
//! forced. The chain refuses approvals that are missing, foreign or expired. The sponsor's digest
//! is the contract's, and its gas limit covers the paymaster's validation measured cold. An
//! ERC-7677 client talks to a small JSON-RPC service on loopback answering with the sponsor's
//! fields, and carries the service's errors.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use alloy::primitives::aliases::U48;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider as _;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use common::RpcServer;
use serde_json::{Value, json};
use valet_client::contracts::ValetPaymaster;
use valet_client::contracts::entry_point::EntryPoint;
use valet_client::erc7562::{Checker, Entity};
use valet_client::paymaster::{SPONSOR_VERIFICATION_GAS, sponsor_digest};
use valet_client::submit::BoxFuture;
use valet_client::{
    Account, Bundler, BundlerClient, Devnet, DevnetOptions, Direct, Erc7677, Error, Paymaster, PaymasterFields,
    PaymasterStub, SessionHandle, SponsorSigner, Standing, Valet,
};
use valet_core::spec::{Labels, SessionSpec};
use valet_core::{Call, Execution, Refusal, UserOperation};

// The demo contracts, bound from their artifacts as an app binds the contracts it calls
// (valet-client exports its own bindings of them only with its `demo` feature).
alloy::sol!(
    #[sol(rpc)]
    ValetNFT,
    "../../contracts/artifacts/ValetNFT.json"
);

/// The demo's mint permission; the fee rule is each test's.
const MINT: &str = r#"
valid_for = "1h"
[[permission]]
target   = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules    = [{ arg = "to", eq = "$account" }, { arg = "quantity", lte = 5 }]
"#;

struct Setup {
    devnet: Devnet,
    /// No paymaster.
    valet: Valet,
    owner: PrivateKeySigner,
    /// Never funded.
    account: Account,
}

async fn setup(alto: bool) -> Setup {
    let devnet = Devnet::start_with(DevnetOptions { alto, ..Default::default() }).await.expect("devnet");
    let submitter: Arc<dyn valet_client::Submitter> = match devnet.bundler_url() {
        Some(url) => Arc::new(Bundler::new(BundlerClient::new(&url, devnet.addresses.entry_point).expect("client"))),
        None => Arc::new(Direct::new(devnet.provider_for(1), devnet.key(1).address()).await.expect("direct")),
    };
    let valet = Valet::new(devnet.provider.clone(), submitter, devnet.deployment()).await.expect("valet");
    let owner = devnet.key(3);
    let account = valet.account(owner.address(), U256::ZERO).await.expect("account");
    assert!(!account.deployed);
    Setup { devnet, valet, owner, account }
}

impl Setup {
    fn sponsored(&self) -> Valet {
        self.valet.clone().with_paymaster(Arc::new(self.devnet.sponsor()))
    }

    /// Grants the mint permission with `fees` (a top-level TOML `fees = …` line) and `salt`.
    async fn grant(&self, fees: &str, salt: u32) -> SessionHandle {
        let spec = SessionSpec::from_toml(&format!("salt = {salt}\n{fees}\n{MINT}")).expect("spec");
        let names = BTreeMap::from([("ValetNFT".to_string(), self.devnet.addresses.nft)]);
        let proposal = self.valet.propose(&self.account, &spec, &names, &Labels::default()).await.expect("propose");
        let grant = self.owner.sign_hash_sync(&proposal.digest).expect("sign").as_bytes();
        proposal.grant(&grant).expect("grant")
    }

    fn mint(&self, quantity: u64) -> Call {
        let data = ValetNFT::mintCall { to: self.account.address, quantity: U256::from(quantity) }.abi_encode();
        Call { target: self.devnet.addresses.nft, value: U256::ZERO, data: data.into() }
    }

    async fn eth(&self, who: Address) -> U256 {
        self.devnet.provider.get_balance(who).await.expect("balance")
    }

    async fn deposit(&self, who: Address) -> U256 {
        let entry_point = EntryPoint::new(self.devnet.addresses.entry_point, &self.devnet.provider);
        entry_point.balanceOf(who).call().await.expect("deposit")
    }

    async fn minted(&self) -> U256 {
        let nft = ValetNFT::new(self.devnet.addresses.nft, &self.devnet.provider);
        nft.balanceOf(self.account.address).call().await.expect("NFT balance")
    }
}

/// The sponsored story, through `alto` or direct submission.
async fn sponsored_story(alto: bool) {
    let s = setup(alto).await;
    let paymaster = s.devnet.paymaster();
    assert!(!s.devnet.provider.get_code_at(paymaster).await.expect("code").is_empty(), "deployed");
    let deposit = s.deposit(paymaster).await;
    assert_eq!(deposit, U256::from(100u128 * 10u128.pow(18)), "the devnet's deposit");
    assert_eq!(s.eth(s.account.address).await, U256::ZERO, "never funded");

    // A session that may not spend the account's ETH: refused before sending without a paymaster.
    let session = s.grant(r#"fees = "sponsored""#, 0).await;
    match s.valet.prepare(&s.account, &session, &[s.mint(2)]).await {
        Err(Error::Preflight(Refusal::PaymasterRequired(id))) => assert_eq!(id, session.id),
        other => panic!("expected PaymasterRequired before sending, got {other:?}"),
    }

    // With the paymaster: deployed, enabled and used in one operation the paymaster pays for.
    let sponsored = s.sponsored();
    let done = sponsored.execute(&s.account, &session, &[s.mint(2)]).await.expect("sponsored");
    assert!(done.receipt.success && done.deployed_account && done.enabled_session);
    assert!(done.receipt.actual_gas_cost > U256::ZERO);
    assert_eq!(s.minted().await, U256::from(2));
    assert_eq!(s.eth(s.account.address).await, U256::ZERO, "the account still holds nothing");
    assert_eq!(s.deposit(s.account.address).await, U256::ZERO, "nor any EntryPoint deposit");
    assert_eq!(s.deposit(paymaster).await, deposit - done.receipt.actual_gas_cost, "the paymaster paid the cost");

    // A session that lists this paymaster runs through it.
    let listing = s.grant(&format!("fees = {{ paymasters = [\"{paymaster}\"] }}"), 1).await;
    sponsored.execute(&s.account, &listing, &[s.mint(1)]).await.expect("the listed paymaster");
    assert_eq!(s.minted().await, U256::from(3));

    // A session that lists another paymaster: refused before sending, naming this one ...
    let other = Address::repeat_byte(0xd1);
    let foreign = s.grant(&format!("fees = {{ paymasters = [\"{other}\"] }}"), 2).await;
    match sponsored.prepare(&s.account, &foreign, &[s.mint(1)]).await {
        Err(e @ Error::Preflight(Refusal::PaymasterNotAllowed(named))) => {
            assert_eq!(named, paymaster);
            assert!(e.to_string().contains(&paymaster.to_string()), "{e}");
        }
        other => panic!("expected PaymasterNotAllowed before sending, got {other:?}"),
    }
    // ... and by the chain when forced through.
    let forced = sponsored.prepare_unchecked(&s.account, &foreign, &[s.mint(1)]).await.expect("forced");
    assert_eq!(forced.paymaster, Some(paymaster), "prepare_unchecked fills the paymaster fields");
    let expected = format!("PaymasterNotAllowed(sessionId={}, paymaster={paymaster})", foreign.id);
    match sponsored.submit(&[forced]).await {
        Err(Error::Refused { decoded: Some(d), .. }) if !alto => assert_eq!(d, expected),
        Err(Error::Bundler { decoded: Some(d), .. }) if alto => assert_eq!(d, expected),
        other => panic!("expected the chain to refuse the paymaster, got {other:?}"),
    }
    assert_eq!(s.eth(s.account.address).await, U256::ZERO);

    // The owner's emergency brake works for an account holding no ETH: the revocation (an
    // owner-signed operation) is sponsored too. Without the paymaster it could not pay (AA21).
    let owner = s.owner.clone();
    let error = s.valet.revoke(&s.account, &owner, session.id).await.expect_err("no ETH, no paymaster");
    assert!(error.to_string().contains("AA21"), "the account cannot pay: {error}");
    let before = s.deposit(paymaster).await;
    let revoked = sponsored.revoke(&s.account, &owner, session.id).await.expect("a sponsored revocation");
    assert!(revoked.success);
    assert_eq!(s.deposit(paymaster).await, before - revoked.actual_gas_cost, "the paymaster paid the revocation");
    assert_eq!(sponsored.status(s.account.address, &session.session).await.expect("status").state, Standing::Revoked);
    assert_eq!(s.eth(s.account.address).await, U256::ZERO);
}

#[tokio::test]
async fn a_zero_eth_account_runs_sponsored_by_direct_submission() {
    sponsored_story(false).await;
}

#[tokio::test]
async fn a_zero_eth_account_runs_sponsored_through_alto() {
    sponsored_story(true).await;
}

// ------------------------------------------------------------------ what the chain refuses

/// A paymaster whose final fields are made by `data` from the devnet's sponsor and the operation.
struct Custom {
    sponsor: SponsorSigner,
    data: MakeFields,
}

/// Final paymaster fields from the sponsor, the operation and the chain id.
type MakeFields = fn(&SponsorSigner, &UserOperation, u64) -> PaymasterFields;

impl Paymaster for Custom {
    fn name(&self) -> &str {
        "custom"
    }

    fn stub<'a>(
        &'a self,
        op: &'a UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterStub, Error>> {
        self.sponsor.stub(op, entry_point, chain_id)
    }

    fn data<'a>(
        &'a self,
        op: &'a UserOperation,
        _entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterFields, Error>> {
        let fields = (self.data)(&self.sponsor, op, chain_id);
        Box::pin(async move { Ok(fields) })
    }
}

/// A paymaster whose stub says it is final: its data must never be asked for.
struct FinalStub(SponsorSigner);

impl Paymaster for FinalStub {
    fn name(&self) -> &str {
        "final stub"
    }

    fn stub<'a>(
        &'a self,
        op: &'a UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterStub, Error>> {
        Box::pin(async move { Ok(PaymasterStub { is_final: true, ..self.0.stub(op, entry_point, chain_id).await? }) })
    }

    fn data<'a>(&'a self, _: &'a UserOperation, _: Address, _: u64) -> BoxFuture<'a, Result<PaymasterFields, Error>> {
        Box::pin(async { Err(Error::Config("asked for data after a final stub".into())) })
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// Approvals that are missing, signed by another key, for another operation or expired pass
/// pre-flight (it does not judge the paymaster's signature) and are refused by the EntryPoint, as
/// is a final stub, which is sent as it is; the honest approval then goes through.
#[tokio::test]
async fn missing_foreign_or_expired_approvals_are_refused_by_the_chain() {
    let s = setup(false).await;
    let session = s.grant(r#"fees = "sponsored""#, 0).await;
    let cases: [(&str, MakeFields, &str); 4] = [
        (
            "no signature",
            |sponsor, op, chain| {
                let mut f = sponsor.approve(op, chain, 0, unix_now() + 600).expect("approve");
                f.paymaster_data = f.paymaster_data.slice(..12);
                f
            },
            "AA34 signature error",
        ),
        (
            "another key",
            |sponsor, op, chain| {
                let stranger = SponsorSigner::new(sponsor.paymaster(), PrivateKeySigner::random());
                stranger.approve(op, chain, 0, unix_now() + 600).expect("approve")
            },
            "AA34 signature error",
        ),
        (
            "another operation",
            |sponsor, op, chain| {
                let mut other = op.clone();
                other.call_gas_limit += 1;
                sponsor.approve(&other, chain, 0, unix_now() + 600).expect("approve")
            },
            "AA34 signature error",
        ),
        (
            "expired",
            |sponsor, op, chain| sponsor.approve(op, chain, 0, unix_now() - 60).expect("approve"),
            "AA32 paymaster expired or not due",
        ),
    ];
    for (name, data, reason) in cases {
        let custom = Custom { sponsor: s.devnet.sponsor(), data };
        let valet = s.valet.clone().with_paymaster(Arc::new(custom));
        match valet.execute(&s.account, &session, &[s.mint(1)]).await {
            Err(Error::Refused { reason: got, .. }) => assert_eq!(got, reason, "{name}"),
            other => panic!("{name}: expected {reason}, got {other:?}"),
        }
    }
    // A final stub is used as it is (here: the sponsor's stub, which approves nothing).
    let valet = s.valet.clone().with_paymaster(Arc::new(FinalStub(s.devnet.sponsor())));
    match valet.execute(&s.account, &session, &[s.mint(1)]).await {
        Err(Error::Refused { reason, .. }) => assert_eq!(reason, "AA34 signature error"),
        other => panic!("final stub: expected the stub's fields on chain, got {other:?}"),
    }
    assert_eq!(s.minted().await, U256::ZERO);
    s.sponsored().execute(&s.account, &session, &[s.mint(1)]).await.expect("the honest approval");
    assert_eq!(s.minted().await, U256::from(1));
}

/// The sponsor's digest is the one the contract computes, its approvals pass the ERC-7562 rules,
/// and the least
/// paymasterVerificationGasLimit an approved operation goes through with, measured cold (each
/// try its own `eth_call` of `handleOps`), is well under the sponsor's default.
#[tokio::test]
async fn the_sponsor_signs_the_contracts_digest_with_gas_to_spare() {
    let s = setup(false).await;
    let sponsor = s.devnet.sponsor();
    let paymaster = ValetPaymaster::new(s.devnet.paymaster(), &s.devnet.provider);
    assert_eq!(paymaster.signer().call().await.expect("signer"), s.devnet.sponsor().signer());
    assert_eq!(paymaster.owner().call().await.expect("owner"), s.devnet.key(0).address());

    // The account, deployed by a sponsored session operation.
    let session = s.grant(r#"fees = "sponsored""#, 0).await;
    s.sponsored().execute(&s.account, &session, &[s.mint(1)]).await.expect("deployed");

    // An owner operation (nonce key 0), approved with `limit` and signed by the owner.
    let nonce = s.valet.nonce(s.account.address, U256::ZERO).await.expect("nonce");
    let chain = s.devnet.chain_id();
    let entry_point = s.devnet.addresses.entry_point;
    let op_with = |limit: u128, valid_after: u64, valid_until: u64| {
        let mut op = UserOperation {
            sender: s.account.address,
            nonce,
            call_data: Execution::Single(s.mint(1)).encode(),
            call_gas_limit: 300_000,
            verification_gas_limit: 300_000,
            pre_verification_gas: U256::from(60_000),
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            paymaster: Some(sponsor.paymaster()),
            paymaster_verification_gas_limit: limit,
            ..UserOperation::default()
        };
        sponsor.approve(&op, chain, valid_after, valid_until).expect("approve").apply(&mut op);
        let hash = op.hash(entry_point, chain);
        op.signature = s.owner.sign_message_sync(hash.as_slice()).expect("owner signs").as_bytes().into();
        op
    };

    let op = op_with(SPONSOR_VERIFICATION_GAS, 5, 1_900_000_000);
    let on_chain = paymaster.userOpRequestHash((&op.pack()).into(), U48::from(5u64), U48::from(1_900_000_000u64));
    assert_eq!(on_chain.call().await.expect("hash"), sponsor_digest(&op, sponsor.paymaster(), chain, 5, 1_900_000_000));

    // ERC-7562: the paymaster's validation reads only its own storage (it is staked) and runs no
    // banned opcode, as public bundlers require.
    let checker = Checker::new(s.devnet.provider.clone(), entry_point);
    let report = checker.check_user_op(&op_with(SPONSOR_VERIFICATION_GAS, 0, unix_now() + 600)).await.expect("traced");
    assert!(report.is_clean(), "{report}");
    let phase = report.phase(Entity::Paymaster).expect("a paymaster phase");
    assert!(phase.staked, "the devnet's paymaster is staked");
    assert!(!phase.storage.is_empty(), "it reads its signer");
    assert!(phase.storage.iter().all(|a| a.contract == sponsor.paymaster() && !a.write), "{:?}", phase.storage);

    let relayer = s.devnet.key(1).address();
    let passes = |limit: u128| {
        let op = op_with(limit, 0, unix_now() + 600);
        let entry_point = EntryPoint::new(entry_point, &s.devnet.provider);
        async move { entry_point.handleOps(vec![(&op.pack()).into()], relayer).from(relayer).call().await.is_ok() }
    };
    assert!(passes(SPONSOR_VERIFICATION_GAS).await, "the default limit is enough");
    let (mut lo, mut hi) = (0u128, SPONSOR_VERIFICATION_GAS);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if passes(mid).await {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    eprintln!("ValetPaymaster's validation needs paymasterVerificationGasLimit >= {hi} (cold)");
    assert!(hi > 10_000, "a real measure: {hi}");
    assert!(hi * 2 <= SPONSOR_VERIFICATION_GAS, "the default {SPONSOR_VERIFICATION_GAS} leaves room over {hi}");
}

// ------------------------------------------------------------------ ERC-7677

/// What the test service does: sponsor with the devnet's sponsor, or fail in one of several ways.
const SPONSOR: usize = 0;
const POLICY_ERROR: usize = 1;
const V06_ANSWER: usize = 2;
const GARBAGE: usize = 3;

/// An ERC-7677 service answering with `sponsor`'s stub and final fields (named "Valet test
/// sponsor"), or as `mode` says.
fn sponsor_service(sponsor: SponsorSigner, mode: Arc<AtomicUsize>) -> RpcServer {
    let runtime = Arc::new(
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime for the service"),
    );
    RpcServer::start(Arc::new(move |method, params| {
        match mode.load(Ordering::Relaxed) {
            POLICY_ERROR => {
                return Err(
                    json!({ "code": -32001, "message": "policy sp_valet: daily limit reached", "data": { "policy": "sp_valet" } }),
                );
            }
            V06_ANSWER => return Ok(json!({ "paymasterAndData": "0x1234" })),
            GARBAGE => return Ok(json!("0xdeadbeef")),
            _ => {}
        }
        let bad = |m: String| json!({ "code": -32602, "message": m });
        let op: UserOperation =
            serde_json::from_value(params.first().cloned().unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
        let entry_point: Address =
            serde_json::from_value(params.get(1).cloned().unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
        let chain = params.get(2).and_then(Value::as_str).and_then(|c| c.strip_prefix("0x")).unwrap_or_default();
        let chain = u64::from_str_radix(chain, 16).map_err(|e| bad(e.to_string()))?;
        let fields = |f: PaymasterFields| {
            json!({
                "paymaster": f.paymaster,
                "paymasterData": f.paymaster_data,
                "paymasterVerificationGasLimit": format!("{:#x}", f.verification_gas_limit),
                "paymasterPostOpGasLimit": format!("{:#x}", f.post_op_gas_limit),
            })
        };
        match method {
            "pm_getPaymasterStubData" => {
                let stub = runtime.block_on(sponsor.stub(&op, entry_point, chain)).map_err(|e| bad(e.to_string()))?;
                let mut answer = fields(stub.fields);
                answer["isFinal"] = json!(false);
                answer["sponsor"] = json!({ "name": "Valet test sponsor" });
                Ok(answer)
            }
            "pm_getPaymasterData" => {
                let data = runtime.block_on(sponsor.data(&op, entry_point, chain)).map_err(|e| bad(e.to_string()))?;
                let mut answer = fields(data);
                // As the spec has it for v0.7: no gas limits in the final answer.
                answer.as_object_mut().expect("object").retain(|k, _| k == "paymaster" || k == "paymasterData");
                Ok(answer)
            }
            other => Err(json!({ "code": -32601, "message": format!("no method {other}") })),
        }
    }))
}

/// A session through the ERC-7677 client: stub, then data, with the context, the EntryPoint and
/// the chain id as a hex string; then the service's error through the client, naming the service
/// by scheme and host only.
#[tokio::test]
async fn an_erc7677_service_sponsors_a_session_end_to_end() {
    let s = setup(false).await;
    let mode = Arc::new(AtomicUsize::new(SPONSOR));
    // The service's own sponsor, on this machine's clock (the devnet's is not moved here).
    let service = sponsor_service(s.devnet.sponsor(), mode.clone());
    let context = json!({ "sponsorshipPolicyId": "sp_valet" });
    let client =
        Erc7677::new(&format!("{}/rpc?apikey=secret", service.url)).expect("client").with_context(context.clone());
    assert_eq!(client.name(), service.url, "named by scheme and host");
    let valet = s.valet.clone().with_paymaster(Arc::new(client));

    let session = s.grant(r#"fees = "sponsored""#, 0).await;
    let deposit = s.deposit(s.devnet.paymaster()).await;
    let done = valet.execute(&s.account, &session, &[s.mint(3)]).await.expect("sponsored through ERC-7677");
    assert!(done.receipt.success && done.deployed_account && done.enabled_session);
    assert_eq!(s.minted().await, U256::from(3));
    assert_eq!(s.eth(s.account.address).await, U256::ZERO);
    assert_eq!(s.deposit(s.devnet.paymaster()).await, deposit - done.receipt.actual_gas_cost);

    assert_eq!(service.methods(), ["pm_getPaymasterStubData", "pm_getPaymasterData"]);
    let received = service.received.lock().expect("lock").clone();
    for (method, params) in &received {
        assert_eq!(params.len(), 4, "{method}");
        assert_eq!(params[1], json!(s.devnet.addresses.entry_point), "{method}: the EntryPoint");
        assert_eq!(params[2], json!("0x7a69"), "{method}: the chain id as hex");
        assert_eq!(params[3], context, "{method}: the context");
        assert_eq!(params[0]["sender"], json!(s.account.address), "{method}");
        assert_eq!(params[0]["maxFeePerGas"].as_str().map(|q| q.starts_with("0x")), Some(true), "hex quantities");
    }
    assert!(received[0].1[0].get("paymaster").is_none(), "the stub is asked for an operation without one");
    assert_eq!(received[1].1[0]["paymaster"], json!(s.devnet.paymaster()), "data: with the stub's fields");
    assert_ne!(received[1].1[0]["callGasLimit"], json!("0x0"), "data: after estimation");

    // The service says no: a clear error, with its code and message, naming it, and nothing sent.
    mode.store(POLICY_ERROR, Ordering::Relaxed);
    let refused = valet.execute(&s.account, &session, &[s.mint(1)]).await.expect_err("the service says no");
    let shown = refused.to_string();
    assert!(shown.contains("daily limit reached") && shown.contains(&service.url), "{shown}");
    assert!(!shown.contains("secret"), "the URL's query stays out of errors: {shown}");
    let Error::Paymaster { paymaster, method, code, message, data } = refused else {
        panic!("expected the service's error, got {shown}");
    };
    assert_eq!((paymaster, method, code), (service.url.clone(), "pm_getPaymasterStubData".to_string(), Some(-32001)));
    assert_eq!(message, "policy sp_valet: daily limit reached");
    assert_eq!(data.as_deref(), Some(r#"{"policy":"sp_valet"}"#));
    assert_eq!(s.minted().await, U256::from(3), "nothing was sent");
}

/// Answers the client cannot use are errors naming the service, never panics: a v0.6 answer, a
/// result that is not an object, a service that is gone.
#[tokio::test]
async fn an_erc7677_service_answering_nonsense_is_a_clear_error() {
    let mode = Arc::new(AtomicUsize::new(V06_ANSWER));
    // A sponsor is only needed in SPONSOR mode, which this test never uses.
    let sponsor = SponsorSigner::new(Address::repeat_byte(1), PrivateKeySigner::random());
    let service = sponsor_service(sponsor, mode.clone());
    let client = Erc7677::new(&service.url).expect("client");
    let op =
        UserOperation { sender: Address::repeat_byte(2), call_data: Bytes::from_static(&[1]), ..Default::default() };
    let entry_point = valet_core::ENTRY_POINT_V07;
    match client.stub(&op, entry_point, 1).await {
        Err(Error::Paymaster { message, .. }) => assert!(message.contains("v0.6"), "{message}"),
        other => panic!("expected a v0.6 refusal, got {other:?}"),
    }
    mode.store(GARBAGE, Ordering::Relaxed);
    match client.data(&op, entry_point, 1).await {
        Err(Error::Paymaster { method, message, .. }) => {
            assert_eq!(method, "pm_getPaymasterData");
            assert!(message.contains("unreadable answer"), "{message}");
        }
        other => panic!("expected an unreadable answer, got {other:?}"),
    }
    let url = service.url.clone();
    drop(service);
    // Gone, with an API key in its URL: the transport's error names the service, not the key.
    let gone = Erc7677::new(&format!("{url}/rpc/key_abc123?apikey=secret")).expect("client");
    match gone.stub(&op, entry_point, 1).await {
        Err(e @ Error::Paymaster { code: None, .. }) => {
            let Error::Paymaster { paymaster, .. } = &e else { unreachable!() };
            assert_eq!(*paymaster, url);
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("secret") && !shown.contains("key_abc123"), "no key in the error: {shown}");
        }
        other => panic!("expected a transport error naming the service, got {other:?}"),
    }
}
