//! EIP-7702 accounts against a real anvil (Prague) and the real EntryPoint v0.8, with direct
//! submission (each test builds its `handleOps` transaction itself): the Rust userOpHash is the
//! EntryPoint's; a fresh EOA delegates, activates and enables a session in one relayed type-4
//! transaction, paying for it from its own ETH; its sessions keep working across its own plain
//! transactions; and leaving (delegating to address 0) stops them, coming back voids them.

use std::collections::BTreeMap;

use alloy::eips::BlockNumberOrTag;
use alloy::eips::eip7702::{Authorization, SignedAuthorization};
use alloy::network::TransactionBuilder7702;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent, SolInterface};
use valet_client::contracts::SessionKeyValidator::{self, SessionKeyValidatorErrors};
use valet_client::contracts::account_7702::ValetAccount7702;
use valet_client::contracts::entry_point_v08::EntryPointV08::{self, EntryPointV08Errors};
use valet_client::{Devnet, DevnetAddresses};
use valet_core::spec::{SessionSpec, SpecContext};
use valet_core::user_operation::{EIP7702_INIT_MARKER, nonce, session_lane, validator_nonce_key};
use valet_core::{Call, ENTRY_POINT_V08, Execution, PackedUserOperation, Session, eip712, signature};

alloy::sol!(
    #[sol(rpc)]
    ValetNFT,
    "../../contracts/artifacts/ValetNFT.json"
);

const ETHER: u128 = 1_000_000_000_000_000_000;
const GWEI: u128 = 1_000_000_000;

/// The devnet's relayer (dev key 1) submits every `handleOps`.
const RELAYER: usize = 1;

/// The session every lifecycle test grants: mints to the account itself, 0.5 ETH of fees.
const SPEC: &str = r#"
valid_for = "1h"
[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "to", eq = "$account" }]
[fees]
budget = "0.5 ether"
"#;

/// An EOA that delegates to ValetAccount7702, with one session granted (not yet enabled).
struct Setup {
    devnet: Devnet,
    eoa: PrivateKeySigner,
    session: Session,
    session_key: PrivateKeySigner,
    relayer: DynProvider,
}

async fn setup() -> Setup {
    let devnet = Devnet::start().await.expect("devnet");
    let a = devnet.addresses;
    assert_eq!(a.entry_point_v08, ENTRY_POINT_V08);
    assert_eq!(a, DevnetAddresses::canonical());
    let eoa = PrivateKeySigner::random();
    devnet.fund(eoa.address(), U256::from(ETHER)).await.expect("fund the EOA");
    let session_key = PrivateKeySigner::random();
    let validator = SessionKeyValidator::new(a.validator, &devnet.provider);
    let ctx = SpecContext {
        // v0.8 reads validAfter as exclusive: the window starts a minute before the chain's clock.
        now: block_time(&devnet.provider).await - 60,
        session_key: session_key.address(),
        account_epoch: validator.accountEpoch(eoa.address()).call().await.expect("epoch"),
        names: BTreeMap::from([("ValetNFT".to_string(), a.nft)]),
    };
    let session = SessionSpec::from_toml(SPEC).expect("spec parses").resolve(&ctx).expect("spec resolves");
    let relayer = devnet.provider_for(RELAYER);
    Setup { devnet, eoa, session, session_key, relayer }
}

async fn block_time(provider: &DynProvider) -> u64 {
    let block = provider.get_block_by_number(BlockNumberOrTag::Latest).await.expect("block").expect("latest block");
    block.header.timestamp
}

/// `eoa`'s EIP-7702 authorization to delegate to `to` at its account nonce `nonce`.
fn authorize(devnet: &Devnet, eoa: &PrivateKeySigner, to: Address, nonce: u64) -> SignedAuthorization {
    let auth = Authorization { chain_id: U256::from(devnet.chain_id()), address: to, nonce };
    let signature = eoa.sign_hash_sync(&auth.signature_hash()).expect("the EOA signs its authorization");
    auth.into_signed(signature)
}

/// The code EIP-7702 gives an EOA delegating to `implementation`.
fn designator(implementation: Address) -> Bytes {
    [&[0xef, 0x01, 0x00][..], implementation.as_slice()].concat().into()
}

fn executes(call: Call) -> Bytes {
    Execution::Single(call).encode()
}

/// `initCode` that marks an EIP-7702 sender and has the SenderCreator call `activate()` on it.
fn activating_init_code() -> Bytes {
    [EIP7702_INIT_MARKER.as_slice(), &ValetAccount7702::activateCall {}.abi_encode()].concat().into()
}

impl Setup {
    fn address(&self) -> Address {
        self.eoa.address()
    }

    /// A provider signing with the EOA's key, for its own transactions.
    fn wallet(&self) -> DynProvider {
        valet_client::rpc::http_wallet_provider(&self.devnet.endpoint(), self.eoa.clone()).expect("EOA provider")
    }

    fn entry_point(&self) -> EntryPointV08::EntryPointV08Instance<DynProvider> {
        EntryPointV08::new(self.devnet.addresses.entry_point_v08, self.relayer.clone())
    }

    fn mint(&self, quantity: u64) -> Call {
        let data = ValetNFT::mintCall { to: self.address(), quantity: U256::from(quantity) }.abi_encode();
        Call { target: self.devnet.addresses.nft, value: U256::ZERO, data: data.into() }
    }

    /// An unsigned operation on the session's lane, at the lane's next sequence number.
    async fn op(&self, init_code: Bytes, call: Call) -> PackedUserOperation {
        let key = validator_nonce_key(self.devnet.addresses.validator, session_lane(self.session.id().expect("id")));
        let key192 = alloy::primitives::Uint::<192, 3>::from(key);
        let next = self.entry_point().getNonce(self.address(), key192).call().await.expect("getNonce");
        assert_eq!(next >> 64, key, "the EntryPoint's nonce is on the session's lane");
        let sequence = u64::try_from(next & U256::from(u64::MAX)).expect("a 64-bit sequence");
        let gas = |high: u128, low: u128| B256::from((U256::from(high) << 128) | U256::from(low));
        PackedUserOperation {
            sender: self.address(),
            nonce: nonce(key, sequence),
            init_code,
            call_data: executes(call),
            // verificationGasLimit ‖ callGasLimit, maxPriorityFeePerGas ‖ maxFeePerGas.
            account_gas_limits: gas(1_000_000, 300_000),
            pre_verification_gas: U256::from(60_000),
            gas_fees: gas(GWEI, 20 * GWEI),
            ..PackedUserOperation::default()
        }
    }

    /// Signs `op` with the session key: enabling the session with the owner's grant when
    /// `enable`, using it (enabled before) otherwise. `delegate`: what the EOA delegates to when
    /// the op's initCode has the 7702 marker.
    async fn sign(&self, mut op: PackedUserOperation, enable: bool, delegate: Option<Address>) -> PackedUserOperation {
        let (validator, chain_id) = (self.devnet.addresses.validator, self.devnet.chain_id());
        let packed = self.session.encode().expect("session encodes");
        let claimed_time = block_time(&self.devnet.provider).await;
        let indices = [0u8];
        let grant = enable.then(|| {
            let digest = eip712::grant_digest(&self.session, self.address(), validator, chain_id).expect("digest");
            self.eoa.sign_hash_sync(&digest).expect("the owner signs the grant").as_bytes().to_vec()
        });
        let prefix = signature::prefix(&packed, claimed_time, &indices, grant.as_deref()).expect("prefix");
        let hash = op.hash_v08(ENTRY_POINT_V08, chain_id, delegate).expect("a delegate for a 7702 initCode");
        let digest = signature::key_digest(hash, self.session.id().expect("id"), claimed_time, &indices);
        let key_signature = self.session_key.sign_hash_sync(&digest).expect("the session key signs");
        op.signature = [&prefix[..], &key_signature.as_bytes()].concat().into();
        op
    }

    /// `handleOps([op])` from the relayer in one transaction, type 4 when `authorization` is
    /// given: its receipt, which must be a success.
    async fn submit(&self, op: &PackedUserOperation, authorization: Option<SignedAuthorization>) -> TransactionReceipt {
        let relayer = self.devnet.key(RELAYER).address();
        let data = EntryPointV08::handleOpsCall { ops: vec![op.into()], beneficiary: relayer }.abi_encode();
        let mut tx =
            TransactionRequest::default().to(ENTRY_POINT_V08).input(Bytes::from(data).into()).gas_limit(3_000_000);
        if let Some(authorization) = authorization {
            tx = tx.with_authorization_list(vec![authorization]);
        }
        let receipt = self.relayer.send_transaction(tx).await.expect("send").get_receipt().await.expect("receipt");
        assert!(receipt.status(), "handleOps reverted: {receipt:?}");
        let event = receipt
            .inner
            .logs()
            .iter()
            .find_map(|log| EntryPointV08::UserOperationEvent::decode_log_data(log.data()).ok())
            .expect("a UserOperationEvent");
        assert!(event.success, "the operation's execution failed: {event:?}");
        receipt
    }

    /// How the EntryPoint refuses `handleOps([op])` (simulated: nothing is sent).
    async fn refused(&self, op: &PackedUserOperation) -> EntryPointV08Errors {
        let relayer = self.devnet.key(RELAYER).address();
        let err = self
            .entry_point()
            .handleOps(vec![op.into()], relayer)
            .from(relayer)
            .call()
            .await
            .expect_err("handleOps should be refused");
        let data = err.as_revert_data().unwrap_or_else(|| panic!("no revert data in {err}"));
        EntryPointV08Errors::abi_decode(&data).unwrap_or_else(|e| panic!("not an EntryPoint error ({e}): {data}"))
    }

    async fn code(&self) -> Bytes {
        self.devnet.provider.get_code_at(self.address()).await.expect("code")
    }

    async fn nfts(&self) -> U256 {
        let nft = ValetNFT::new(self.devnet.addresses.nft, &self.devnet.provider);
        nft.balanceOf(self.address()).call().await.expect("balanceOf")
    }

    async fn session_state(&self) -> u8 {
        let validator = SessionKeyValidator::new(self.devnet.addresses.validator, &self.devnet.provider);
        let packed = self.session.encode().expect("session encodes");
        validator.sessionState(self.address(), packed).call().await.expect("sessionState").state
    }

    /// The first operation, relayed in one type-4 transaction with the EOA's authorization:
    /// delegates, activates (initCode), enables the session (mode 1) and mints.
    async fn delegate_activate_and_enable(&self) -> TransactionReceipt {
        let implementation = self.devnet.addresses.account_7702;
        let op = self.op(activating_init_code(), self.mint(1)).await;
        let op = self.sign(op, true, Some(implementation)).await;
        let eoa_nonce = self.devnet.provider.get_transaction_count(self.address()).await.expect("nonce");
        let receipt = self.submit(&op, Some(authorize(&self.devnet, &self.eoa, implementation, eoa_nonce))).await;
        // The hash signed before the delegation existed is the one the EntryPoint computes now.
        let on_chain = self.entry_point().getUserOpHash((&op).into()).call().await.expect("getUserOpHash");
        assert_eq!(op.hash_v08(ENTRY_POINT_V08, self.devnet.chain_id(), Some(implementation)), Some(on_chain));
        receipt
    }
}

/// `SessionState.Enabled` in the validator.
const ENABLED: u8 = 1;

/// `hash_v08` is EntryPoint v0.8's `getUserOpHash`: for a plain operation, and for operations
/// with a 7702 initCode (bare marker, marker ‖ calldata) on a delegated EOA.
#[tokio::test]
async fn hash_v08_is_the_entry_points_user_op_hash() {
    let s = setup().await;
    let chain_id = s.devnet.chain_id();
    // The devnet deployed both at their canonical addresses: deploying again finds them there
    // (EntryPoint v0.8's chain-specific immutables aside) and sends nothing.
    let again = valet_client::deploy::deploy_eip7702(&s.devnet.provider).await.expect("deploy again");
    assert_eq!((again.deployed.len(), again.verified), (0, vec!["entry_point_v08", "account_7702"]));
    assert_eq!(again.contracts, valet_client::deploy::eip7702());
    let plain = s.op(Bytes::new(), s.mint(1)).await;
    let on_chain = s.entry_point().getUserOpHash((&plain).into()).call().await.expect("getUserOpHash");
    assert_eq!(plain.hash_v08(ENTRY_POINT_V08, chain_id, None), Some(on_chain));
    // v0.7's formula gives another hash.
    assert_ne!(plain.hash(ENTRY_POINT_V08, chain_id), on_chain);

    // Delegate the EOA (the relayer's type-4 transaction to the EOA, which runs nothing).
    let implementation = s.devnet.addresses.account_7702;
    let eoa_nonce = s.devnet.provider.get_transaction_count(s.address()).await.expect("nonce");
    let tx = TransactionRequest::default().to(s.address()).gas_limit(100_000).with_authorization_list(vec![authorize(
        &s.devnet,
        &s.eoa,
        implementation,
        eoa_nonce,
    )]);
    let receipt = s.relayer.send_transaction(tx).await.expect("send").get_receipt().await.expect("receipt");
    assert!(receipt.status());
    assert_eq!(s.code().await, designator(implementation));

    for init_code in [Bytes::from(EIP7702_INIT_MARKER.to_vec()), activating_init_code()] {
        let op = PackedUserOperation { init_code: init_code.clone(), ..plain.clone() };
        let on_chain = s.entry_point().getUserOpHash((&op).into()).call().await.expect("getUserOpHash");
        assert_eq!(op.hash_v08(ENTRY_POINT_V08, chain_id, Some(implementation)), Some(on_chain), "{init_code}");
        assert_eq!(op.hash_v08(ENTRY_POINT_V08, chain_id, None), None, "a 7702 initCode needs the delegate");
        assert_ne!(op.hash_v08(ENTRY_POINT_V08, chain_id, Some(Address::ZERO)), Some(on_chain));
    }
}

/// A fresh EOA's first operation, relayed in one type-4 transaction: delegates the EOA,
/// activates it, enables its session and mints, paid from the EOA's ETH. Then the session works
/// in use mode, also after the EOA sends a plain transaction of its own.
#[tokio::test]
async fn an_eoa_delegates_activates_and_uses_a_session_in_one_transaction() {
    let s = setup().await;
    let ep = s.entry_point();
    assert!(s.code().await.is_empty(), "a fresh EOA has no code");
    let balance = s.devnet.provider.get_balance(s.address()).await.expect("balance");

    let receipt = s.delegate_activate_and_enable().await;
    assert_eq!(receipt.from, s.devnet.key(RELAYER).address(), "the relayer sent it");
    assert_eq!(s.code().await, designator(s.devnet.addresses.account_7702));
    assert_eq!(s.nfts().await, U256::from(1), "the EOA minted to itself");
    assert_eq!(s.session_state().await, ENABLED);
    let account = ValetAccount7702::new(s.address(), &s.devnet.provider);
    assert_eq!(account.owner().call().await.expect("owner"), s.address());
    // The EOA paid its prefund from its ETH: the cost of the operation, and what is left of the
    // prefund is its deposit in the EntryPoint.
    let event = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| EntryPointV08::UserOperationEvent::decode_log_data(log.data()).ok())
        .expect("a UserOperationEvent");
    let spent = balance - s.devnet.provider.get_balance(s.address()).await.expect("balance");
    let deposit = ep.balanceOf(s.address()).call().await.expect("deposit");
    assert!(event.actualGasCost > U256::ZERO);
    assert_eq!(spent, event.actualGasCost + deposit, "the EOA's ETH paid the prefund, and nothing else");

    // A second operation uses the enabled session (mode 0).
    let op = s.sign(s.op(Bytes::new(), s.mint(2)).await, false, None).await;
    s.submit(&op, None).await;
    assert_eq!(s.nfts().await, U256::from(3));

    // The EOA's own plain transaction moves its account nonce, not the EntryPoint's.
    let eoa_nonce = s.devnet.provider.get_transaction_count(s.address()).await.expect("nonce");
    let own = TransactionRequest::default().to(s.devnet.key(7).address()).value(U256::from(1000));
    let receipt = s.wallet().send_transaction(own).await.expect("send").get_receipt().await.expect("receipt");
    assert!(receipt.status());
    assert_eq!(s.devnet.provider.get_transaction_count(s.address()).await.expect("nonce"), eoa_nonce + 1);
    assert_eq!(s.code().await, designator(s.devnet.addresses.account_7702), "still delegated");

    let op = s.sign(s.op(Bytes::new(), s.mint(1)).await, false, None).await;
    s.submit(&op, None).await;
    assert_eq!(s.nfts().await, U256::from(4));
}

/// Delegating to address 0 stops every session (no code: the EntryPoint refuses the sender);
/// coming back with the EOA's own type-4 transaction that calls `activate()` voids the sessions
/// from before (`SessionEpochMismatch`).
#[tokio::test]
async fn leaving_stops_sessions_and_coming_back_voids_them() {
    let s = setup().await;
    s.delegate_activate_and_enable().await;
    assert_eq!(s.session_state().await, ENABLED);

    // Leave: the relayer carries the EOA's authorization to address 0.
    let eoa_nonce = s.devnet.provider.get_transaction_count(s.address()).await.expect("nonce");
    let tx = TransactionRequest::default().to(s.address()).gas_limit(100_000).with_authorization_list(vec![authorize(
        &s.devnet,
        &s.eoa,
        Address::ZERO,
        eoa_nonce,
    )]);
    let receipt = s.relayer.send_transaction(tx).await.expect("send").get_receipt().await.expect("receipt");
    assert!(receipt.status());
    assert!(s.code().await.is_empty(), "delegating to address 0 clears the code");
    let op = s.sign(s.op(Bytes::new(), s.mint(1)).await, false, None).await;
    match s.refused(&op).await {
        EntryPointV08Errors::FailedOp(e) => assert!(e.reason.starts_with("AA20"), "{}", e.reason),
        other => panic!("expected AA20, got {other:?}"),
    }

    // Come back: the EOA's own type-4 transaction to itself calling activate(). The sender's
    // nonce is taken before the authorization is applied, so the authorization names the next.
    let implementation = s.devnet.addresses.account_7702;
    let eoa_nonce = s.devnet.provider.get_transaction_count(s.address()).await.expect("nonce");
    let tx = TransactionRequest::default()
        .to(s.address())
        .input(Bytes::from(ValetAccount7702::activateCall {}.abi_encode()).into())
        .gas_limit(1_000_000)
        .with_authorization_list(vec![authorize(&s.devnet, &s.eoa, implementation, eoa_nonce + 1)]);
    let receipt = s.wallet().send_transaction(tx).await.expect("send").get_receipt().await.expect("receipt");
    assert!(receipt.status(), "re-delegating and activating failed: {receipt:?}");
    assert_eq!(s.code().await, designator(implementation));
    let activated = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| ValetAccount7702::Activated::decode_log_data(log.data()).ok())
        .expect("an Activated event");
    assert!(activated.voidedEarlier, "the earlier installation was voided");

    let op = s.sign(s.op(Bytes::new(), s.mint(1)).await, false, None).await;
    match s.refused(&op).await {
        EntryPointV08Errors::FailedOpWithRevert(e) => match SessionKeyValidatorErrors::abi_decode(&e.inner) {
            Ok(SessionKeyValidatorErrors::SessionEpochMismatch(m)) => {
                assert_eq!(m.sessionId, s.session.id().expect("id"));
                assert_eq!(m.sessionEpoch, s.session.epoch);
                assert_ne!(m.accountEpoch, s.session.epoch);
            }
            other => panic!("expected SessionEpochMismatch, got {other:?} ({})", e.reason),
        },
        other => panic!("expected the validator's refusal, got {other:?}"),
    }
    assert_eq!(s.nfts().await, U256::from(1), "only the first operation minted");
}
