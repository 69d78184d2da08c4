//! Building and signing session operations: the UserOperation, its nonce on the session's lane,
//! the validator's signature layout and the session key's signature.

use std::pin::Pin;
use std::task::{Context, Poll};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use valet_core::user_operation::{nonce, session_lane, validator_nonce_key};
use valet_core::{Counters, Refusal, Request, Session, UserOperation, Verdict, evaluate, signature};

use crate::Error;

/// Gas limits that cover Valet's session operations on the devnet (a bundler estimates them).
/// A session's fee budget counts each operation at its maximum cost, so these are not padded
/// more than a first operation (deploy + enable + a call) needs: 0.00172 ETH at most at 2 gwei.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasLimits {
    /// Validation (and deployment) gas.
    pub verification: u128,
    /// Execution gas.
    pub call: u128,
    /// Pre-verification gas.
    pub pre_verification: u64,
    /// EIP-1559 max fee per gas.
    pub max_fee: u128,
    /// EIP-1559 priority fee per gas.
    pub max_priority_fee: u128,
}

impl Default for GasLimits {
    fn default() -> Self {
        Self {
            verification: 500_000,
            call: 300_000,
            pre_verification: 60_000,
            max_fee: 2_000_000_000,
            max_priority_fee: 1_000_000_000,
        }
    }
}

impl GasLimits {
    /// These limits as the gas fields of an operation no paymaster pays for.
    pub fn op_gas(&self) -> valet_core::OpGas {
        let op = UserOperation {
            verification_gas_limit: self.verification,
            call_gas_limit: self.call,
            pre_verification_gas: U256::from(self.pre_verification),
            max_fee_per_gas: self.max_fee,
            max_priority_fee_per_gas: self.max_priority_fee,
            ..UserOperation::default()
        };
        valet_core::OpGas::of(&op.pack())
    }
}

/// A session as an app holds it: the session, its packed form and id, its key, and the owner's
/// grant until the first operation has enabled it.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// The session.
    pub session: Session,
    /// Its packed encoding.
    pub packed: Bytes,
    /// Its id.
    pub id: B256,
    /// The session key.
    pub key: PrivateKeySigner,
    /// The owner's grant (sent with the first operation): the owner's signature, or for a
    /// multichain grant, this chain's proof and the owner's signature.
    pub grant: Bytes,
    /// Whether `grant` is a single-chain or a multichain grant.
    pub grant_kind: GrantKind,
    /// For an EIP-7702 account that does not delegate to Valet yet: the EOA's signed delegation,
    /// which the first operation carries ([`crate::Valet::sign_delegation`]).
    pub authorization: Option<valet_core::user_operation::Eip7702Auth>,
    /// The validator it is enforced by.
    pub validator: Address,
    /// Each permission's function as its spec wrote it (`mint(address to, uint256 quantity)`;
    /// `None` for a plain transfer), to explain refusals in those words
    /// ([`SessionHandle::explain`]); empty when not known.
    pub functions: Vec<Option<String>>,
}

/// A session as an app stores it: everything in a [`SessionHandle`] but its key, which the app
/// keeps apart (a keystore, a KMS, the service's sealed store). [`SessionHandle::record`] gives
/// it, [`SessionHandle::from_record`] takes it back with the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    /// The session's id.
    pub id: B256,
    /// The packed session.
    pub session: Bytes,
    /// The owner's grant (see [`SessionHandle::grant`]).
    pub grant: Bytes,
    /// Whether `grant` is a single-chain or a multichain grant (absent: single).
    #[serde(default, skip_serializing_if = "GrantKind::is_single")]
    pub grant_kind: GrantKind,
    /// The EOA's signed EIP-7702 delegation, until the first operation has used it (absent:
    /// none needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<valet_core::user_operation::Eip7702Auth>,
    /// The validator it is enforced by.
    pub validator: Address,
    /// Each permission's function as its spec wrote it (absent when not known).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<Option<String>>,
}

/// What a session's grant is: the owner's signature of this chain's grant, or one signature for
/// several chains with this chain's proof ([`crate::MultichainProposal`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// `Grant(account, session)` on this chain: the owner's signature (mode 1).
    #[default]
    Single,
    /// `MultichainGrant(ChainGrant[])`: `K ‖ position ‖ other entries ‖ owner signature` (mode 2).
    Multichain,
}

impl GrantKind {
    /// Whether this is the single-chain kind (what records leave out).
    pub fn is_single(&self) -> bool {
        *self == GrantKind::Single
    }
}

/// One session operation to build.
#[derive(Debug, Clone, Default)]
pub struct SessionCall {
    /// The account's calldata (`execute(…)`).
    pub call_data: Bytes,
    /// The permission index of each call.
    pub indices: Vec<u8>,
    /// The time named for periodic allowances.
    pub claimed_time: u64,
    /// The sequence number on the session's lane (`EntryPoint.getNonce`).
    pub sequence: u64,
    /// Whether to carry the grant (the session's first operation).
    pub enable: bool,
    /// factory and factoryData when this operation also deploys the account.
    pub deploy: Option<(Address, Bytes)>,
}

impl SessionHandle {
    /// Encodes `session` for `key` with the owner's `grant`.
    pub fn new(session: Session, key: PrivateKeySigner, grant: Bytes, validator: Address) -> Result<Self, Error> {
        let packed = session.encode()?;
        let id = session.id()?;
        Ok(Self {
            session,
            packed,
            id,
            key,
            grant,
            grant_kind: GrantKind::Single,
            authorization: None,
            validator,
            functions: Vec::new(),
        })
    }

    /// This handle carrying the EOA's signed EIP-7702 delegation to its first operation
    /// ([`crate::Valet::sign_delegation`]; `None` when the EOA delegates to Valet already).
    #[must_use]
    pub fn with_authorization(mut self, authorization: Option<valet_core::user_operation::Eip7702Auth>) -> Self {
        self.authorization = authorization;
        self
    }

    /// This handle with a grant of `kind` ([`SessionHandle::new`] takes a single-chain one).
    #[must_use]
    pub fn with_grant_kind(mut self, kind: GrantKind) -> Self {
        self.grant_kind = kind;
        self
    }

    /// The validator's signature prefix for an operation of this session: the grant rides along
    /// when `enable`.
    fn prefix(&self, claimed_time: u64, indices: &[u8], enable: bool) -> Result<Bytes, Error> {
        Ok(match (enable, self.grant_kind) {
            (false, _) => signature::prefix(&self.packed, claimed_time, indices, None)?,
            (true, GrantKind::Single) => signature::prefix(&self.packed, claimed_time, indices, Some(&self.grant))?,
            (true, GrantKind::Multichain) => {
                signature::multichain_prefix(&self.packed, claimed_time, indices, &self.grant)?
            }
        })
    }

    /// This handle knowing each permission's function as its spec wrote it
    /// ([`crate::Proposal::grant`] gives them), so that refusals read in the spec's words.
    #[must_use]
    pub fn with_functions(mut self, functions: Vec<Option<String>>) -> Self {
        self.functions = functions;
        self
    }

    /// `refusal` (of an operation of this session) in the words of its spec: function and
    /// argument names, the rule as the approval screen stated it, amounts in `labels`' token
    /// units; no spec needs keeping around. A function that no longer parses reads as its index.
    pub fn explain(&self, refusal: &valet_core::Refusal, labels: &valet_core::spec::Labels) -> String {
        let functions: Vec<_> = self
            .functions
            .iter()
            .map(|f| f.as_deref().and_then(|text| valet_core::spec::Function::parse(text).ok()))
            .collect();
        valet_core::spec::explain(refusal, &self.session, &functions, labels)
    }

    /// What to store of this session: all but its key.
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id,
            session: self.packed.clone(),
            grant: self.grant.clone(),
            grant_kind: self.grant_kind,
            authorization: self.authorization,
            validator: self.validator,
            functions: self.functions.clone(),
        }
    }

    /// The session `record` holds, with its `key`: refused when the record was altered (its
    /// packed session does not hash to its id) or the key is not the session's.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use alloy::signers::local::PrivateKeySigner;
    /// use valet_client::{SessionHandle, SessionRecord};
    /// # use alloy::primitives::{Address, Bytes};
    /// # use valet_client::{SessionSpec, core::spec::SpecContext};
    /// # let key = PrivateKeySigner::random();
    /// # let ctx = SpecContext { now: 1_800_000_000, session_key: key.address(), ..Default::default() };
    /// # let spec = SessionSpec::from_toml(
    /// #     "valid_for = \"1h\"\n[[permission]]\ntarget = \"0x00000000000000000000000000000000000000f7\"\n",
    /// # )?;
    /// # let (grant, validator) = (Bytes::from([1u8; 65]), Address::repeat_byte(0x7a));
    /// # let session = SessionHandle::new(spec.resolve(&ctx)?, key, grant, validator)?;
    ///
    /// // `session` came from `Proposal::grant`: store its record, and its key apart (a keystore, a KMS).
    /// let stored = serde_json::to_string(&session.record())?;
    /// let key = session.key.clone();
    ///
    /// // Later, perhaps in another process: the session again, checked against its id and key.
    /// let record: SessionRecord = serde_json::from_str(&stored)?;
    /// let again = SessionHandle::from_record(&record, key)?;
    /// assert_eq!(again.id, session.id);
    /// assert!(SessionHandle::from_record(&record, PrivateKeySigner::random()).is_err()); // not its key
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_record(record: &SessionRecord, key: PrivateKeySigner) -> Result<Self, Error> {
        let session = Session::decode(&record.session)?;
        let id = session.id()?;
        if id != record.id {
            return Err(Error::Config(format!(
                "stored session {} holds a session whose id is {id}: the record was altered",
                record.id
            )));
        }
        if key.address() != session.session_key {
            return Err(Error::Config(format!(
                "key {} is not session {id}'s key {}",
                key.address(),
                session.session_key
            )));
        }
        if !record.functions.is_empty() && record.functions.len() != session.permissions.len() {
            return Err(Error::Config(format!(
                "stored session {id} names {} functions for its {} permissions: the record was altered",
                record.functions.len(),
                session.permissions.len()
            )));
        }
        Ok(Self::new(session, key, record.grant.clone(), record.validator)?
            .with_grant_kind(record.grant_kind)
            .with_authorization(record.authorization)
            .with_functions(record.functions.clone()))
    }

    /// The nonce key of this session's lane.
    pub fn nonce_key(&self) -> U256 {
        validator_nonce_key(self.validator, session_lane(self.id))
    }

    /// Pre-flight: whether the validator would accept `call` with `gas` on `account` at `now`
    /// with the session's on-chain `counters`, and if not exactly why (valet-core's evaluator).
    pub fn preflight(
        &self,
        account: Address,
        counters: &Counters,
        call: &SessionCall,
        gas: GasLimits,
        now: u64,
    ) -> Result<Verdict, Refusal> {
        let request = Request {
            account,
            validator: self.validator,
            call_data: &call.call_data,
            indices: &call.indices,
            claimed_time: call.claimed_time,
            enable: call.enable,
            gas: gas.op_gas(),
            now,
        };
        evaluate(&self.session, counters, &request)
    }

    /// The signed operation for `call` on `account`, for the EntryPoint at `entry_point` on chain
    /// `chain_id` (the userOpHash binds both).
    pub fn sign(
        &self,
        account: Address,
        call: &SessionCall,
        gas: GasLimits,
        entry_point: Address,
        chain_id: u64,
    ) -> Result<UserOperation, Error> {
        let (factory, factory_data) = match &call.deploy {
            Some((factory, data)) => (Some(*factory), data.clone()),
            None => (None, Bytes::new()),
        };
        let mut op = UserOperation {
            sender: account,
            nonce: nonce(self.nonce_key(), call.sequence),
            factory,
            factory_data,
            call_data: call.call_data.clone(),
            call_gas_limit: gas.call,
            verification_gas_limit: gas.verification,
            pre_verification_gas: U256::from(gas.pre_verification),
            max_fee_per_gas: gas.max_fee,
            max_priority_fee_per_gas: gas.max_priority_fee,
            ..Default::default()
        };
        self.authorize(&mut op, call.claimed_time, &call.indices, call.enable, entry_point, chain_id)?;
        Ok(op)
    }

    /// Writes the session signature into `op` (whose other fields are final): the validator's
    /// prefix, then the session key's signature over the userOpHash (for `entry_point` on
    /// `chain_id`) bound to this session.
    pub fn authorize(
        &self,
        op: &mut UserOperation,
        claimed_time: u64,
        indices: &[u8],
        enable: bool,
        entry_point: Address,
        chain_id: u64,
    ) -> Result<(), Error> {
        let hash = op.hash(entry_point, chain_id);
        let prefix = self.prefix(claimed_time, indices, enable)?;
        let digest = signature::key_digest(hash, self.id, claimed_time, indices);
        let key_signature = wiping_stack(|| self.key.sign_hash_sync(&digest)).map_err(Error::Signing)?.as_bytes();
        op.signature = [prefix.as_ref(), &key_signature].concat().into();
        Ok(())
    }

    /// A signature of the final length whose key signature does not verify (the validator then
    /// answers `SIG_VALIDATION_FAILED` instead of reverting), for gas estimation.
    pub fn dummy_signature(&self, claimed_time: u64, indices: &[u8], enable: bool) -> Result<Bytes, Error> {
        let prefix = self.prefix(claimed_time, indices, enable)?;
        Ok([prefix.as_ref(), DUMMY_ECDSA_SIGNATURE.as_slice()].concat().into())
    }
}

/// A well-formed 65-byte ECDSA signature that recovers to no key anyone holds (valet-core's,
/// shared with the WebAssembly build), for gas estimation.
pub use valet_core::signature::DUMMY_ECDSA_SIGNATURE;

// ------------------------------------------------------------------ key material on the stack

/// How much of the stack [`wipe_stack`] overwrites: more than generating a key, sealing or
/// opening one (about 53 KiB unoptimised, the AEAD's frames) or signing with one uses.
const WIPED_STACK: usize = 128 * 1024;

/// Overwrites with zeros the `WIPED_STACK` bytes of stack below its caller's frame.
///
/// k256 and the AEAD copy the secrets they work on into stack temporaries that nothing wipes
/// (the key's bytes before RFC 6979, the bytes a key is parsed from), and moving a key by value
/// leaves the bytes it was moved from behind. Those stay in the stack's unused part until
/// something else happens to be written there: readable in a core dump, or by anyone who can
/// read the process's memory. Called once such work has returned, this writes there at once.
#[inline(never)]
pub fn wipe_stack() {
    let area = [0u8; WIPED_STACK];
    // Nothing reads the zeros: this keeps them from being optimised away.
    std::hint::black_box(&area);
}

/// Runs `f`, then wipes the stack it used ([`wipe_stack`]). Whatever `f` returns passes by
/// value through frames that are not wiped: return no secret by value (box it inside `f`).
#[inline(never)]
pub fn wiping_stack<R>(f: impl FnOnce() -> R) -> R {
    let out = call(f);
    wipe_stack();
    out
}

/// `f()` in a frame of its own: inlined into [`wiping_stack`]'s, its temporaries would be out of
/// reach of the wipe.
#[inline(never)]
fn call<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// A future that wipes the stack after each poll of the future it wraps ([`wipe_stack`]): for a
/// future that handles key material, on whichever thread polls it. Like [`wiping_stack`], its
/// output passes by value through frames that are not wiped.
pub struct Wiping<F>(Pin<Box<F>>);

impl<F: Future> Wiping<F> {
    /// Wraps `future`.
    pub fn new(future: F) -> Self {
        Self(Box::pin(future))
    }
}

impl<F: Future> Future for Wiping<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let future = self.0.as_mut();
        wiping_stack(move || future.poll(cx))
    }
}
