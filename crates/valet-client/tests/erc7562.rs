//! ERC-7562 on the devnet: every kind of operation Valet builds passes the validation rules
//! public bundlers enforce (checked by tracing it with `valet_client::erc7562`, then included to
//! show it was a real, valid operation), and operations that break them are caught: banned
//! opcodes, `GAS` not followed by a call, storage that is not the account's, an unstaked
//! factory, a paymaster without enough stake.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::dyn_abi::DynSolValue;
use alloy::json_abi::JsonAbi;
use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use valet_client::bundler::apply_estimate;
use valet_client::contracts::ValetAccountFactory;
use valet_client::erc7562::{Checker, Entity, Report, Rule, Subject, Violation};
use valet_client::session::DUMMY_ECDSA_SIGNATURE;
use valet_client::{Account, Deployment, Devnet, Direct, SessionHandle, Valet};
use valet_core::spec::{DEMO_MINT_SPEC, DEMO_PAYMENT_SPEC, Labels, SessionSpec};
use valet_core::{Call, Execution, UserOperation};

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

/// Mints to the account itself, its fees paid by a paymaster (none from the account's ETH).
const SPONSORED_MINT: &str = r#"
fees = "sponsored"
valid_for = "1h"
[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "to", eq = "$account" }]
"#;

/// A devnet, a client submitting directly, and a funded (counterfactual) account of dev key 3.
struct Fixture {
    devnet: Devnet,
    valet: Valet,
    owner: PrivateKeySigner,
    account: Account,
    names: BTreeMap<String, Address>,
}

impl Fixture {
    /// On a fresh devnet, with its (staked) factory.
    async fn start() -> Self {
        let devnet = Devnet::start().await.expect("devnet");
        let factory = devnet.addresses.factory;
        Self::with_factory(devnet, factory).await
    }

    /// Accounts come from `factory`.
    async fn with_factory(devnet: Devnet, factory: Address) -> Self {
        let direct = Direct::new(devnet.provider_for(1), devnet.key(1).address()).await.expect("direct submitter");
        let deployment = Deployment { factory, ..devnet.deployment() };
        let valet = Valet::new(devnet.provider.clone(), Arc::new(direct), deployment).await.expect("client");
        let owner = devnet.key(3);
        let account = valet.account(owner.address(), U256::ZERO).await.expect("account");
        assert!(!account.deployed, "counterfactual at first");
        devnet.fund(account.address, U256::from(ETHER)).await.expect("fund");
        let a = devnet.addresses;
        let names = BTreeMap::from([
            ("ValetNFT".to_string(), a.nft),
            ("ValetToken".to_string(), a.token),
            ("Payee".to_string(), devnet.key(6).address()),
        ]);
        Self { devnet, valet, owner, account, names }
    }

    fn checker(&self) -> Checker {
        Checker::new(self.devnet.provider.clone(), self.devnet.addresses.entry_point)
    }

    /// Grants `spec`; unless it says how fees are paid, with a fee budget of 0.5 ETH.
    async fn grant(&self, spec: &str) -> SessionHandle {
        let spec =
            if spec.contains("fees") { spec.to_string() } else { format!("{spec}\n[fees]\nbudget = \"0.5 ether\"\n") };
        let spec = SessionSpec::from_toml(&spec).expect("spec parses");
        let proposal =
            self.valet.propose(&self.account, &spec, &self.names, &Labels::default()).await.expect("propose");
        let signature = self.owner.sign_hash_sync(&proposal.digest).expect("owner signs").as_bytes();
        proposal.grant(&signature).expect("the owner's grant")
    }

    fn mint(&self, quantity: u64) -> Call {
        let data = ValetNFT::mintCall { to: self.account.address, quantity: U256::from(quantity) }.abi_encode();
        Call { target: self.devnet.addresses.nft, value: U256::ZERO, data: data.into() }
    }

    fn pay(&self, amount: u128) -> Call {
        let data = ValetToken::transferCall { to: self.names["Payee"], value: U256::from(amount) }.abi_encode();
        Call { target: self.devnet.addresses.token, value: U256::ZERO, data: data.into() }
    }

    /// 100 tokens to the account.
    async fn faucet(&self) {
        ValetToken::new(self.devnet.addresses.token, &self.devnet.provider)
            .faucet(self.account.address, U256::from(100 * ETHER))
            .send()
            .await
            .expect("faucet")
            .get_receipt()
            .await
            .expect("faucet receipt");
    }

    /// Deploys the account with an owner-signed operation.
    async fn deploy_account(&self) {
        self.valet.owner_execute(&self.account, &self.owner, &[self.mint(1)]).await.expect("owner deploys");
    }

    /// A session operation for `calls`, built and signed, not sent.
    async fn session_op(&self, session: &SessionHandle, calls: &[Call]) -> UserOperation {
        self.valet.prepare(&self.account, session, calls).await.expect("prepare").op
    }

    /// An owner-signed operation for `call` on the deployed account, built as
    /// `Valet::owner_execute` builds it, not sent.
    async fn owner_op(&self, call: Call) -> UserOperation {
        let submitter = self.valet.submitter();
        let fees = submitter.fees().await.expect("fees");
        let mut op = UserOperation {
            sender: self.account.address,
            nonce: self.valet.nonce(self.account.address, U256::ZERO).await.expect("nonce"),
            call_data: Execution::Single(call).encode(),
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            signature: DUMMY_ECDSA_SIGNATURE.to_vec().into(),
            ..UserOperation::default()
        };
        let estimate = submitter.estimate(&op).await.expect("estimate");
        apply_estimate(&mut op, &estimate).expect("estimate applies");
        let hash = op.hash(self.devnet.addresses.entry_point, self.devnet.chain_id());
        op.signature = self.owner.sign_message_sync(hash.as_slice()).expect("owner signs").as_bytes().into();
        op
    }
}

/// The kinds of operation Valet builds. To add one: a variant, its arm in [`Kind::build`], and
/// a line in `clean_kinds!` below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Signed by the owner, on an account deployed before.
    Owner,
    /// A session used on a deployed account where it is enabled already.
    Session,
    /// The account's first operation: deploys it (initCode through the staked factory),
    /// enables the session and uses it.
    DeployEnableUse,
    /// A session spending from a token allowance that refills every day, on its second use.
    PeriodicLimit,
    /// A session sending ERC-20 tokens up to a total amount, on its first use (enable + use)
    /// on a deployed account.
    Erc20Limit,
    /// A sponsored session's first operation (deploy + enable + use), its fees paid by the
    /// devnet's paymaster (staked): all three phases, factory, sender and paymaster.
    Sponsored,
    /// The account's first operation enabling its session with a multichain grant (mode 2:
    /// the validator computes this chain's entry and the list's digest) and using it.
    MultichainDeployEnableUse,
}

impl Kind {
    /// Whether the operation is validated by the session key validator.
    fn uses_session(self) -> bool {
        self != Self::Owner
    }

    /// Sets up `f` for this kind (sending what must come before) and builds the operation to
    /// check, signed and valid, not sent.
    async fn build(self, f: &Fixture) -> UserOperation {
        match self {
            Self::Owner => {
                f.deploy_account().await;
                f.owner_op(f.mint(1)).await
            }
            Self::Session => {
                let session = f.grant(DEMO_MINT_SPEC).await;
                f.valet.execute(&f.account, &session, &[f.mint(1)]).await.expect("deploys and enables");
                f.session_op(&session, &[f.mint(2)]).await
            }
            Self::DeployEnableUse => {
                let session = f.grant(DEMO_MINT_SPEC).await;
                let op = f.session_op(&session, &[f.mint(1)]).await;
                assert_eq!(op.factory, Some(f.devnet.addresses.factory), "the operation deploys the account");
                op
            }
            Self::PeriodicLimit => {
                f.faucet().await;
                let session = f.grant(DEMO_PAYMENT_SPEC).await;
                f.valet.execute(&f.account, &session, &[f.pay(4 * ETHER)]).await.expect("first payment");
                f.session_op(&session, &[f.pay(5 * ETHER)]).await
            }
            Self::Erc20Limit => {
                f.faucet().await;
                f.deploy_account().await;
                let session = f
                    .grant(
                        r#"
valid_for = "1h"
[[permission]]
target = "ValetToken"
function = "transfer(address to, uint256 amount)"
rules = [{ arg = "to", eq = "Payee" }]
[[limit]]
token = "ValetToken"
amount = "30 ether"
"#,
                    )
                    .await;
                f.session_op(&session, &[f.pay(12 * ETHER)]).await
            }
            Self::MultichainDeployEnableUse => {
                let spec = SessionSpec::from_toml(DEMO_MINT_SPEC).expect("spec parses");
                let proposal = f.valet.propose(&f.account, &spec, &f.names, &Labels::default()).await.expect("propose");
                // This chain and another: the operation carries the other's entry.
                let mut elsewhere = proposal.chain_grant();
                elsewhere.chain_id = 10;
                let entries = vec![proposal.chain_grant().hash().expect("entry"), elsewhere.hash().expect("entry")];
                let digest = valet_core::eip712::multichain_grant_digest(&entries);
                let signature = f.owner.sign_hash_sync(&digest).expect("owner signs").as_bytes();
                let grant = valet_core::signature::multichain_grant(&entries, 0, &signature).expect("proof");
                let session = SessionHandle::new(proposal.session, proposal.key, grant, f.devnet.addresses.validator)
                    .expect("handle")
                    .with_grant_kind(valet_client::GrantKind::Multichain);
                let op = f.session_op(&session, &[f.mint(1)]).await;
                assert_eq!(op.signature[0], valet_core::signature::MODE_ENABLE_MULTICHAIN, "a mode-2 operation");
                op
            }
            Self::Sponsored => {
                let session = f.grant(SPONSORED_MINT).await;
                let valet = f.valet.clone().with_paymaster(Arc::new(f.devnet.sponsor()));
                let op = valet.prepare(&f.account, &session, &[f.mint(1)]).await.expect("prepare").op;
                assert_eq!(op.paymaster, Some(f.devnet.paymaster()), "the operation is sponsored");
                op
            }
        }
    }
}

/// Builds an operation of `kind` on a fresh devnet, checks it has no violation (and that the
/// trace saw what that kind's validation does, so a silent tracer cannot pass), then includes it.
async fn assert_clean(kind: Kind) {
    let f = Fixture::start().await;
    let op = kind.build(&f).await;
    let started = std::time::Instant::now();
    let report = f.checker().check_user_op(&op).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    eprintln!("{kind:?}: {report} in {:?}", started.elapsed());
    assert!(report.is_clean(), "{kind:?}: {report}");

    let sender = report.phase(Entity::Sender).unwrap_or_else(|| panic!("{kind:?}: no sender phase"));
    assert!(!sender.storage.is_empty(), "{kind:?}: the account's validation reads storage");
    let validator = f.devnet.addresses.validator;
    let touched_validator = sender.storage.iter().any(|s| s.contract == validator);
    assert_eq!(touched_validator, kind.uses_session(), "{kind:?}: validator storage in the sender's phase");
    match report.phase(Entity::Factory) {
        Some(factory) => {
            assert_eq!(op.factory, Some(factory.address), "{kind:?}");
            assert!(factory.staked, "{kind:?}: the devnet's factory is staked");
        }
        None => assert_eq!(op.factory, None, "{kind:?}: initCode without a factory phase"),
    }
    match report.phase(Entity::Paymaster) {
        Some(paymaster) => {
            assert_eq!(op.paymaster, Some(paymaster.address), "{kind:?}");
            assert!(paymaster.staked, "{kind:?}: the devnet's paymaster is staked");
            assert!(!paymaster.storage.is_empty(), "{kind:?}: the paymaster reads its signer");
        }
        None => assert_eq!(op.paymaster, None, "{kind:?}: a paymaster without a phase"),
    }

    let receipts = f.valet.submit(&[op]).await.unwrap_or_else(|e| panic!("{kind:?}: the checked operation: {e}"));
    assert!(receipts[0].success, "{kind:?}: included and executed");
}

/// One test per kind, from one table.
macro_rules! clean_kinds {
    ($($name:ident => $kind:expr),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            assert_clean($kind).await;
        }
    )*};
}

clean_kinds! {
    an_owner_operation_on_a_deployed_account_breaks_no_rule => Kind::Owner,
    a_session_operation_on_a_deployed_account_breaks_no_rule => Kind::Session,
    deploy_enable_and_use_in_one_operation_breaks_no_rule => Kind::DeployEnableUse,
    a_periodic_limit_session_operation_breaks_no_rule => Kind::PeriodicLimit,
    an_erc20_transfer_with_a_value_limit_breaks_no_rule => Kind::Erc20Limit,
    a_sponsored_session_operation_breaks_no_rule => Kind::Sponsored,
    a_multichain_grant_enabling_in_the_first_operation_breaks_no_rule => Kind::MultichainDeployEnableUse,
}

/// Deploys `runtime` with a plain creation transaction: init code that returns it
/// (`PUSH1 len DUP1 PUSH1 9 PUSH0 CODECOPY PUSH0 RETURN`, 9 bytes, then the runtime).
async fn deploy_runtime(devnet: &Devnet, runtime: &[u8]) -> Address {
    let len = u8::try_from(runtime.len()).expect("a runtime under 256 bytes");
    let init = [&[0x60, len, 0x80, 0x60, 0x09, 0x5f, 0x39, 0x5f, 0xf3][..], runtime].concat();
    deploy_code(devnet, init).await
}

async fn deploy_code(devnet: &Devnet, init: Vec<u8>) -> Address {
    let tx = TransactionRequest::default().with_deploy_code(Bytes::from(init));
    let receipt = devnet.provider.send_transaction(tx).await.expect("send").get_receipt().await.expect("receipt");
    assert!(receipt.status(), "creation succeeded");
    receipt.contract_address.expect("a contract was created")
}

/// A stand-in account: runs `probe`, then returns one zero word (validationData 0: valid, no
/// time bounds), whatever it is called with (`validateUserOp`, and the empty execution).
fn probe_account(probe: &[u8]) -> Vec<u8> {
    // PUSH1 32 PUSH1 0x80 RETURN: 32 bytes of memory no probe writes (zero).
    [probe, &[0x60, 0x20, 0x60, 0x80, 0xf3]].concat()
}

/// `STATICCALL(gas(), target, 0, 32, 0, 0)` of a 32-byte word already at memory 0, result
/// popped: `PUSH0 PUSH0 PUSH1 32 PUSH0 PUSH20 target GAS STATICCALL POP`.
fn static_call_with_word(target: Address) -> Vec<u8> {
    [&[0x5f, 0x5f, 0x60, 0x20, 0x5f, 0x73][..], target.as_slice(), &[0x5a, 0xfa, 0x50]].concat()
}

/// `PUSH20 address`.
fn push(address: Address) -> Vec<u8> {
    [&[0x73][..], address.as_slice()].concat()
}

/// An operation of the stand-in account `sender`: no fees (so no prefund to pay), nothing to
/// execute, no signature.
fn stand_in_op(sender: Address) -> UserOperation {
    UserOperation {
        sender,
        call_gas_limit: 50_000,
        verification_gas_limit: 300_000,
        pre_verification_gas: U256::from(50_000),
        ..UserOperation::default()
    }
}

/// A violation as the probe table writes it: `RULE subject`, with the probes' helper contract
/// and the EntryPoint named.
fn describe(v: &Violation, names: &[(Address, &str)]) -> String {
    let name = |a: Address| names.iter().find(|(x, _)| *x == a).map_or(a.to_string(), |(_, n)| (*n).to_string());
    match &v.subject {
        Subject::Opcode(opcode) => format!("{} {opcode}", v.rule),
        Subject::Storage(s) => format!("{} storage of {}", v.rule, name(s.contract)),
        Subject::Address(a) => format!("{} {}", v.rule, name(*a)),
    }
}

/// Controls (a) and (c): stand-in accounts whose validation runs one probe each. Probes that
/// break a rule are caught with exactly that rule; the clean ones (nothing, GAS right before a
/// call, storage associated with the account) are not flagged, so what is caught is the probe.
#[tokio::test]
async fn banned_opcodes_and_foreign_storage_in_validation_are_caught() {
    let devnet = Devnet::start().await.expect("devnet");
    let entry_point = devnet.addresses.entry_point;
    // A contract that reads the slot named by its calldata: `PUSH0 CALLDATALOAD SLOAD POP STOP`.
    let reader = deploy_runtime(&devnet, &[0x5f, 0x35, 0x54, 0x50, 0x00]).await;
    let nowhere = Address::repeat_byte(0x99);
    let names = [(reader, "reader"), (entry_point, "EntryPoint"), (nowhere, "nowhere")];
    // `keccak256(address(this) ‖ 0) + n` at memory 0: ADDRESS PUSH0 MSTORE PUSH0 PUSH1 32 MSTORE
    // PUSH1 64 PUSH0 KECCAK256 PUSH1 n ADD PUSH0 MSTORE.
    let mapping_slot =
        |n: u8| vec![0x30, 0x5f, 0x52, 0x5f, 0x60, 0x20, 0x52, 0x60, 0x40, 0x5f, 0x20, 0x60, n, 0x01, 0x5f, 0x52];
    let read = |slot: Vec<u8>| [slot, static_call_with_word(reader)].concat();
    let probes: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        ("nothing", vec![], vec![]),
        // PUSH0 ×4 PUSH1 4 GAS STATICCALL POP: the identity precompile with all gas.
        ("GAS right before STATICCALL", vec![0x5f, 0x5f, 0x5f, 0x5f, 0x60, 0x04, 0x5a, 0xfa, 0x50], vec![]),
        ("TIMESTAMP", vec![0x42, 0x50], vec!["OP-011 TIMESTAMP"]),
        ("NUMBER", vec![0x43, 0x50], vec!["OP-011 NUMBER"]),
        ("ORIGIN", vec![0x32, 0x50], vec!["OP-011 ORIGIN"]),
        ("GASPRICE", vec![0x3a, 0x50], vec!["OP-011 GASPRICE"]),
        ("BLOCKHASH", vec![0x5f, 0x40, 0x50], vec!["OP-011 BLOCKHASH"]),
        ("BASEFEE", vec![0x48, 0x50], vec!["OP-011 BASEFEE"]),
        ("BALANCE (unstaked)", vec![0x33, 0x31, 0x50], vec!["OP-080 BALANCE"]),
        ("SELFBALANCE (unstaked)", vec![0x47, 0x50], vec!["OP-080 SELFBALANCE"]),
        // Control (c): GAS POP.
        ("GAS not followed by a call", vec![0x5a, 0x50], vec!["OP-012 GAS"]),
        // PUSH0 ×4 PUSH1 1 PUSH20 nowhere GAS CALL POP: 1 wei to an address without code.
        (
            "CALL with value",
            [&[0x5f, 0x5f, 0x5f, 0x5f, 0x60, 0x01][..], &push(nowhere), &[0x5a, 0xf1, 0x50]].concat(),
            vec!["OP-061 nowhere", "OP-041 nowhere"],
        ),
        ("EXTCODESIZE of no code", [push(nowhere), vec![0x3b, 0x50]].concat(), vec!["OP-041 nowhere"]),
        ("EXTCODESIZE of the EntryPoint", [push(entry_point), vec![0x3b, 0x50]].concat(), vec![]),
        ("EXTCODEHASH of the EntryPoint", [push(entry_point), vec![0x3f, 0x50]].concat(), vec!["OP-054 EntryPoint"]),
        // The slot that is the account's address: associated with it.
        ("a slot equal to the account", read(vec![0x30, 0x5f, 0x52]), vec![]),
        ("a field of the account's mapping entry", read(mapping_slot(5)), vec![]),
        ("past the account's mapping entry", read(mapping_slot(200)), vec!["STO-033 storage of reader"]),
        ("slot 0 of another contract", read(vec![0x5f, 0x5f, 0x52]), vec!["STO-033 storage of reader"]),
    ];
    let checker = Checker::new(devnet.provider.clone(), entry_point);
    let mut failures = Vec::new();
    for (name, probe, expected) in probes {
        let account = deploy_runtime(&devnet, &probe_account(&probe)).await;
        devnet.fund(account, U256::from(ETHER / 100)).await.expect("fund");
        let report: Report =
            checker.check_user_op(&stand_in_op(account)).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.violations.iter().all(|v| v.entity == Entity::Sender && v.entity_address == account), "{name}");
        let mut found: Vec<String> = report.violations.iter().map(|v| describe(v, &names)).collect();
        let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
        found.sort();
        expected.sort();
        if found != expected {
            failures.push(format!("{name}: expected {expected:?}, found {found:?} ({report})"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A second ValetAccountFactory with the devnet's validator, never staked. Its constructor's
/// arguments are read from the artifact the bindings come from, so the test follows the
/// factory's constructor: the validator, and the deployer for any other address.
async fn deploy_unstaked_factory(devnet: &Devnet) -> Address {
    let artifact: serde_json::Value =
        serde_json::from_str(include_str!("../../../contracts/artifacts/ValetAccountFactory.json")).expect("artifact");
    let abi: JsonAbi = serde_json::from_value(artifact["abi"].clone()).expect("abi");
    let inputs = abi.constructor.map(|c| c.inputs).unwrap_or_default();
    let args: Vec<DynSolValue> = inputs
        .iter()
        .map(|p| match (p.ty.as_str(), p.name.as_str()) {
            ("address", "validator") => DynSolValue::Address(devnet.addresses.validator),
            ("address", _) => DynSolValue::Address(devnet.key(0).address()),
            (ty, name) => panic!("ValetAccountFactory's constructor takes `{ty} {name}`: say here what to pass"),
        })
        .collect();
    let mut init = ValetAccountFactory::BYTECODE.to_vec();
    init.extend(DynSolValue::Tuple(args).abi_encode_params());
    deploy_code(devnet, init).await
}

/// Control (b): deploy + enable + use through an unstaked factory touches the validator's
/// storage for an account that does not exist yet: STO-022, in the factory's phase (the
/// validator's install) and in the sender's (the session's counters), and nothing else. Once
/// the factory is staked, the very same operation passes.
#[tokio::test]
async fn deploying_through_an_unstaked_factory_is_caught() {
    let devnet = Devnet::start().await.expect("devnet");
    let factory = deploy_unstaked_factory(&devnet).await;
    let f = Fixture::with_factory(devnet, factory).await;
    let validator = f.devnet.addresses.validator;
    let session = f.grant(DEMO_MINT_SPEC).await;
    let prepared = f.valet.prepare(&f.account, &session, &[f.mint(1)]).await.expect("prepare");
    assert!(prepared.deploys && prepared.enables);
    assert_eq!(prepared.op.factory, Some(factory));

    let report = f.checker().check_user_op(&prepared.op).await.expect("traced");
    eprintln!("unstaked factory: {report}");
    assert!(!report.phase(Entity::Factory).expect("a factory phase").staked);
    assert!(!report.is_clean(), "an unstaked factory must be caught");
    for v in &report.violations {
        assert_eq!(v.rule, Rule::Sto022, "{v}");
        assert!(matches!(&v.subject, Subject::Storage(s) if s.contract == validator), "{v}");
    }
    for entity in [Entity::Factory, Entity::Sender] {
        assert!(report.violations.iter().any(|v| v.entity == entity), "{entity}: {report}");
    }

    ValetAccountFactory::new(factory, &f.devnet.provider)
        .addStake(valet_client::erc7562::MIN_UNSTAKE_DELAY)
        .value(U256::from(ETHER))
        .send()
        .await
        .expect("stake")
        .get_receipt()
        .await
        .expect("stake receipt");
    let report = f.checker().check_user_op(&prepared.op).await.expect("traced");
    assert!(report.is_clean(), "staked: {report}");
    assert!(report.phase(Entity::Factory).expect("a factory phase").staked);
}

/// A paymaster's own storage needs a stake (STO-031): the devnet's paymaster, judged against a
/// minimum stake above the 1 ETH it holds, is caught reading its signer; the factory, with the
/// same 1 ETH, no longer covers the account's storage either (STO-022).
#[tokio::test]
async fn a_paymaster_without_enough_stake_is_caught() {
    let f = Fixture::start().await;
    let op = Kind::Sponsored.build(&f).await;
    let report = f.checker().min_stake(U256::from(2 * ETHER)).check_user_op(&op).await.expect("traced");
    eprintln!("stake below the minimum: {report}");
    let paymaster = report.phase(Entity::Paymaster).expect("a paymaster phase");
    assert!(!paymaster.staked);
    let own = |v: &Violation| matches!(&v.subject, Subject::Storage(s) if s.contract == paymaster.address);
    assert!(
        report.violations.iter().any(|v| v.entity == Entity::Paymaster && v.rule == Rule::Sto031 && own(v)),
        "{report}"
    );
    for v in &report.violations {
        assert!(matches!(v.rule, Rule::Sto031 | Rule::Sto022), "{v}");
    }
    assert!(f.checker().check_user_op(&op).await.expect("traced").is_clean(), "with the devnet's minimum");
}
