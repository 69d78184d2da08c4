//! Gas sponsorship: paymasters that pay an operation's network fees instead of the account.
//!
//! [`Paymaster`] is what [`crate::Valet::with_paymaster`] asks for an operation's paymaster
//! fields, twice, as ERC-7677 does: stub fields before gas estimation, then the final fields for
//! the estimated operation, before the session key signs it (the userOpHash covers
//! paymasterAndData). Two implementations:
//!
//! - [`Erc7677`]: any ERC-7677 paymaster service (`pm_getPaymasterStubData`,
//!   `pm_getPaymasterData`) over JSON-RPC.
//! - [`SponsorSigner`]: Valet's own verifying paymaster (`contracts/src/ValetPaymaster.sol`),
//!   approved locally with the sponsor key: paymasterData is `validAfter (6) ‖ validUntil (6) ‖
//!   signature (65)` over [`sponsor_digest`].
//!
//! [`deploy_paymaster`] creates a ValetPaymaster through the deterministic deployment proxy and
//! [`fund_paymaster`] gives it the EntryPoint deposit it pays from and the stake ERC-7562
//! bundlers require of a paymaster that reads its own storage.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::client::RpcClient;
use alloy::signers::SignerSync;
use alloy::signers::k256::elliptic_curve::rand_core::OsRng;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct, SolValue};
use serde::Deserialize;
use valet_core::UserOperation;
use valet_core::user_operation::Quantity;

use crate::Error;
use crate::contracts::ValetPaymaster;
use crate::session::wiping_stack;
use crate::submit::BoxFuture;

/// The paymasterVerificationGasLimit [`SponsorSigner`] sets by default: two and a half times
/// what ValetPaymaster's validation takes with everything cold (the EntryPoint's deposit
/// bookkeeping, the call, the EIP-712 hash, `ecrecover`, the signer's slot): 19,286 measured on
/// the devnet for a mint, a little more for long callData or initCode, which it hashes. Unused
/// verification gas is not charged; a bundler's estimate may replace it.
pub const SPONSOR_VERIFICATION_GAS: u128 = 50_000;

/// The paymasterPostOpGasLimit [`SponsorSigner`] sets by default: none, as ValetPaymaster
/// returns no context and so is never called after the operation.
pub const SPONSOR_POST_OP_GAS: u128 = 0;

/// How long a [`SponsorSigner`] approval stays valid by default: ten minutes.
pub const SPONSOR_VALIDITY: Duration = Duration::from_secs(600);

/// The paymaster fields of an EntryPoint v0.7 UserOperation (packed as `paymaster ‖
/// verificationGasLimit (16) ‖ postOpGasLimit (16) ‖ paymasterData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymasterFields {
    /// The paymaster contract.
    pub paymaster: Address,
    /// Its data (what its validation reads).
    pub paymaster_data: Bytes,
    /// Gas for its `validatePaymasterUserOp`.
    pub verification_gas_limit: u128,
    /// Gas for its `postOp`.
    pub post_op_gas_limit: u128,
}

impl PaymasterFields {
    /// Writes these fields into `op`.
    pub fn apply(&self, op: &mut UserOperation) {
        op.paymaster = Some(self.paymaster);
        op.paymaster_data = self.paymaster_data.clone();
        op.paymaster_verification_gas_limit = self.verification_gas_limit;
        op.paymaster_post_op_gas_limit = self.post_op_gas_limit;
    }

    /// The fields `op` carries, if it names a paymaster.
    pub fn of(op: &UserOperation) -> Option<Self> {
        op.paymaster.map(|paymaster| Self {
            paymaster,
            paymaster_data: op.paymaster_data.clone(),
            verification_gas_limit: op.paymaster_verification_gas_limit,
            post_op_gas_limit: op.paymaster_post_op_gas_limit,
        })
    }
}

/// Paymaster fields for gas estimation (ERC-7677's stub data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymasterStub {
    /// The fields: the paymaster, data of the final length, and gas limits (which a bundler's
    /// estimate may replace).
    pub fields: PaymasterFields,
    /// Whether these fields are final: no [`Paymaster::data`] call is needed.
    pub is_final: bool,
    /// Who sponsors the operation, to show the user.
    pub sponsor: Option<String>,
}

/// A paymaster, as the client asks it for an operation's paymaster fields.
pub trait Paymaster: Send + Sync {
    /// What to call it in errors and logs: a contract address, or a service's scheme and host
    /// (never a URL's path or query, which often hold an API key).
    fn name(&self) -> &str;

    /// Fields for estimating `op` (an operation of `chain_id` for `entry_point`, with a dummy
    /// signature of its final length and its gas limits not yet set).
    fn stub<'a>(
        &'a self,
        op: &'a UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterStub, Error>>;

    /// The final fields for `op`, whose gas limits (paymaster ones included) are set and whose
    /// signature is still a dummy: the account's signature is made over the result.
    fn data<'a>(
        &'a self,
        op: &'a UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterFields, Error>>;
}

/// `e`, from asking `paymaster` for `method`, as an [`Error::Paymaster`] naming it.
pub(crate) fn attribute(paymaster: &dyn Paymaster, method: &str, e: Error) -> Error {
    match e {
        e @ Error::Paymaster { .. } => e,
        other => Error::Paymaster {
            paymaster: paymaster.name().to_string(),
            method: method.to_string(),
            code: None,
            message: other.to_string(),
            data: None,
        },
    }
}

// ------------------------------------------------------------------ ERC-7677

/// An ERC-7677 paymaster service: `pm_getPaymasterStubData` and `pm_getPaymasterData` with
/// params `[userOp, entryPoint, chainId, context]` (the operation in ERC-4337 v0.7 JSON-RPC form,
/// the chain id as a hex string, `context` as the service defines it: a sponsorship policy id,
/// for example). Calls time out ([`crate::rpc::CALL_TIMEOUT`]); a JSON-RPC error comes back as
/// [`Error::Paymaster`] with the service's code and message.
///
/// ```
/// use std::sync::Arc;
///
/// use valet_client::{Erc7677, Paymaster, Valet};
///
/// let service = Erc7677::new("https://paymaster.example/v1/rpc?apikey=KEY")?
///     .with_context(serde_json::json!({ "sponsorshipPolicyId": "sp_example" }));
/// assert_eq!(service.name(), "https://paymaster.example"); // errors and logs never show the key
///
/// /// `valet`, with the gas of its session operations paid through `service`.
/// fn sponsored(valet: Valet, service: Erc7677) -> Valet {
///     valet.with_paymaster(Arc::new(service))
/// }
/// # Ok::<(), valet_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Erc7677 {
    client: RpcClient,
    name: String,
    /// The full URL as the HTTP client prints it in its errors: replaced there by `name`.
    url: String,
    context: serde_json::Value,
}

impl std::fmt::Debug for Erc7677 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's path and query are left out: they often carry an API key.
        f.debug_struct("Erc7677").field("service", &self.name).field("context", &self.context).finish()
    }
}

/// What `pm_getPaymasterStubData` and `pm_getPaymasterData` answer (v0.7 fields; the v0.6
/// `paymasterAndData` is recognised only to say it is not supported).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Erc7677Answer {
    paymaster: Option<Address>,
    paymaster_data: Option<Bytes>,
    paymaster_and_data: Option<Bytes>,
    paymaster_verification_gas_limit: Option<Quantity>,
    paymaster_post_op_gas_limit: Option<Quantity>,
    #[serde(default)]
    is_final: bool,
    sponsor: Option<Erc7677Sponsor>,
}

#[derive(Debug, Deserialize)]
struct Erc7677Sponsor {
    name: String,
}

impl Erc7677 {
    /// A client for the service at `url` (`http://…` or `https://…`), with an empty context.
    pub fn new(url: &str) -> Result<Self, Error> {
        let parsed: alloy::transports::http::reqwest::Url =
            url.parse().map_err(|e| Error::Config(format!("paymaster service URL: {e}")))?;
        let host = parsed.host_str().unwrap_or("?");
        let name = match parsed.port() {
            Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
            None => format!("{}://{host}", parsed.scheme()),
        };
        let client = crate::rpc::http_client(url).map_err(|e| Error::Config(format!("paymaster service {e}")))?;
        Ok(Self { client, name, url: parsed.to_string(), context: serde_json::json!({}) })
    }

    /// Sends `context` with every request (what the service expects there: a sponsorship
    /// policy, a token to pay in, …).
    #[must_use]
    pub fn with_context(mut self, context: serde_json::Value) -> Self {
        self.context = context;
        self
    }

    async fn call(
        &self,
        method: &'static str,
        op: &UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> Result<Erc7677Answer, Error> {
        let failed = |code: Option<i64>, message: String, data: Option<String>| Error::Paymaster {
            paymaster: self.name.clone(),
            method: method.to_string(),
            code,
            message,
            data,
        };
        let params = (op.clone(), entry_point, format!("{chain_id:#x}"), self.context.clone());
        let answer: serde_json::Value =
            self.client.request(method, params).await.map_err(|e| match e.as_error_resp() {
                Some(payload) => failed(
                    Some(payload.code),
                    payload.message.to_string(),
                    payload.data.as_ref().map(|d| d.get().to_string()),
                ),
                // A transport error names the URL, whose path or query may hold an API key.
                None => failed(None, e.to_string().replace(&self.url, &self.name), None),
            })?;
        let answer: Erc7677Answer = serde_json::from_value(answer.clone())
            .map_err(|e| failed(None, format!("unreadable answer {answer}: {e}"), None))?;
        if answer.paymaster.is_none() && answer.paymaster_and_data.is_some() {
            return Err(failed(
                None,
                "the service answered for EntryPoint v0.6 (paymasterAndData); Valet uses v0.7".into(),
                None,
            ));
        }
        Ok(answer)
    }

    /// The answer's fields; gas limits it leaves out are `op`'s.
    fn fields(&self, method: &str, answer: &Erc7677Answer, op: &UserOperation) -> Result<PaymasterFields, Error> {
        let failed = |message: String| Error::Paymaster {
            paymaster: self.name.clone(),
            method: method.to_string(),
            code: None,
            message,
            data: None,
        };
        let paymaster = answer.paymaster.ok_or_else(|| failed("the answer names no paymaster".into()))?;
        let narrow = |field: &str, q: Option<Quantity>, default: u128| match q {
            None => Ok(default),
            Some(q) => u128::try_from(q.0).map_err(|_| failed(format!("{field} {} does not fit in 128 bits", q.0))),
        };
        Ok(PaymasterFields {
            paymaster,
            paymaster_data: answer.paymaster_data.clone().unwrap_or_default(),
            verification_gas_limit: narrow(
                "paymasterVerificationGasLimit",
                answer.paymaster_verification_gas_limit,
                op.paymaster_verification_gas_limit,
            )?,
            post_op_gas_limit: narrow(
                "paymasterPostOpGasLimit",
                answer.paymaster_post_op_gas_limit,
                op.paymaster_post_op_gas_limit,
            )?,
        })
    }
}

impl Paymaster for Erc7677 {
    fn name(&self) -> &str {
        &self.name
    }

    fn stub<'a>(
        &'a self,
        op: &'a UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterStub, Error>> {
        Box::pin(async move {
            const METHOD: &str = "pm_getPaymasterStubData";
            let answer = self.call(METHOD, op, entry_point, chain_id).await?;
            Ok(PaymasterStub {
                fields: self.fields(METHOD, &answer, op)?,
                is_final: answer.is_final,
                sponsor: answer.sponsor.map(|s| s.name),
            })
        })
    }

    fn data<'a>(
        &'a self,
        op: &'a UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterFields, Error>> {
        Box::pin(async move {
            const METHOD: &str = "pm_getPaymasterData";
            let answer = self.call(METHOD, op, entry_point, chain_id).await?;
            self.fields(METHOD, &answer, op)
        })
    }
}

// ------------------------------------------------------------------ ValetPaymaster

mod eip712 {
    #![allow(missing_docs, unreachable_pub)]
    alloy::sol! {
        /// What ValetPaymaster's signer signs (OpenZeppelin's `PaymasterSigner`).
        struct UserOperationRequest {
            address sender;
            uint256 nonce;
            bytes initCode;
            bytes callData;
            bytes32 accountGasLimits;
            uint256 preVerificationGas;
            bytes32 gasFees;
            uint256 paymasterVerificationGasLimit;
            uint256 paymasterPostOpGasLimit;
            uint48 validAfter;
            uint48 validUntil;
        }
    }
}

/// The latest a window bound can be: a uint48 without its top bit, which ValetPaymaster refuses
/// (OpenZeppelin reads it as a block-number flag).
const MAX_WINDOW_BOUND: u64 = (1 << 47) - 1;

/// What ValetPaymaster at `paymaster` on `chain_id` checks its signer signed to pay for `op`
/// from `valid_after` to `valid_until` (unix seconds, below 2^47): the EIP-712 digest of
/// `UserOperationRequest(…)` (every field of `op` but its signature and paymasterData, its
/// paymaster gas limits included) under the domain `ValetPaymaster`, version `1`, `chain_id`,
/// `paymaster`.
pub fn sponsor_digest(
    op: &UserOperation,
    paymaster: Address,
    chain_id: u64,
    valid_after: u64,
    valid_until: u64,
) -> B256 {
    use alloy::primitives::aliases::U48;
    let packed = op.pack();
    let request = eip712::UserOperationRequest {
        sender: packed.sender,
        nonce: packed.nonce,
        initCode: packed.init_code,
        callData: packed.call_data,
        accountGasLimits: packed.account_gas_limits,
        preVerificationGas: packed.pre_verification_gas,
        gasFees: packed.gas_fees,
        paymasterVerificationGasLimit: U256::from(op.paymaster_verification_gas_limit),
        paymasterPostOpGasLimit: U256::from(op.paymaster_post_op_gas_limit),
        validAfter: U48::saturating_from(valid_after),
        validUntil: U48::saturating_from(valid_until),
    };
    let domain = Eip712Domain::new(
        Some("ValetPaymaster".into()),
        Some("1".into()),
        Some(U256::from(chain_id)),
        Some(paymaster),
        None,
    );
    request.eip712_signing_hash(&domain)
}

/// Valet's verifying paymaster, approved locally: holds the sponsor key (the ValetPaymaster's
/// signer) and signs each operation it is asked about for [`SPONSOR_VALIDITY`] from now. Its
/// `Debug` shows the signer's address, never the key.
///
/// "Now" is this machine's clock, or the later of it and the chain's latest block with
/// [`SponsorSigner::with_chain_clock`] (a chain moved ahead in time, like a devnet, would find an
/// approval made by the wall clock expired). Approvals start at 0 (a signature cannot be used
/// before it exists), so a chain that lags the wall clock never finds one not due yet.
///
/// ```
/// use std::time::Duration;
///
/// use alloy::primitives::{Signature, address};
/// use alloy::signers::local::PrivateKeySigner;
/// use valet_client::paymaster::sponsor_digest;
/// use valet_client::{SponsorSigner, UserOperation};
///
/// // A ValetPaymaster (`deploy_paymaster`) and its signer's key, which only the sponsor holds.
/// let paymaster = address!("0x00000000000000000000000000000000000000aa");
/// let key = PrivateKeySigner::random();
/// let sponsor = SponsorSigner::new(paymaster, key.clone()).with_validity(Duration::from_secs(300));
///
/// // `Valet::with_paymaster(Arc::new(sponsor))` asks it about each session operation; by hand:
/// let account = address!("0x00000000000000000000000000000000000000bb");
/// let mut op = UserOperation { sender: account, ..Default::default() };
/// let fields = sponsor.approve(&op, 31337, 0, 1_900_000_000)?;
/// fields.apply(&mut op);
/// // paymasterData: validAfter (6 bytes) ‖ validUntil (6) ‖ the signer's signature (65).
/// let signature = Signature::try_from(&op.paymaster_data[12..])?;
/// let digest = sponsor_digest(&op, paymaster, 31337, 0, 1_900_000_000);
/// assert_eq!(signature.recover_address_from_prehash(&digest)?, key.address());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SponsorSigner {
    paymaster: Address,
    key: PrivateKeySigner,
    validity: Duration,
    verification_gas_limit: u128,
    post_op_gas_limit: u128,
    clock: Option<DynProvider>,
    name: String,
}

impl std::fmt::Debug for SponsorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SponsorSigner")
            .field("paymaster", &self.paymaster)
            .field("signer", &self.key.address())
            .field("validity", &self.validity)
            .field("verification_gas_limit", &self.verification_gas_limit)
            .field("post_op_gas_limit", &self.post_op_gas_limit)
            .finish_non_exhaustive()
    }
}

impl SponsorSigner {
    /// Approves operations for the ValetPaymaster at `paymaster` with its signer's `key`.
    pub fn new(paymaster: Address, key: PrivateKeySigner) -> Self {
        Self {
            paymaster,
            key,
            validity: SPONSOR_VALIDITY,
            verification_gas_limit: SPONSOR_VERIFICATION_GAS,
            post_op_gas_limit: SPONSOR_POST_OP_GAS,
            clock: None,
            name: format!("ValetPaymaster {paymaster}"),
        }
    }

    /// Approvals last `validity` from now.
    #[must_use]
    pub fn with_validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    /// The paymaster gas limits stub fields carry (a bundler's estimate may replace them).
    #[must_use]
    pub fn with_gas_limits(mut self, verification: u128, post_op: u128) -> Self {
        self.verification_gas_limit = verification;
        self.post_op_gas_limit = post_op;
        self
    }

    /// Counts validity from the later of this machine's clock and `provider`'s latest block.
    #[must_use]
    pub fn with_chain_clock(mut self, provider: DynProvider) -> Self {
        self.clock = Some(provider);
        self
    }

    /// The ValetPaymaster.
    pub fn paymaster(&self) -> Address {
        self.paymaster
    }

    /// The sponsor key's address (the ValetPaymaster's signer).
    pub fn signer(&self) -> Address {
        self.key.address()
    }

    /// The fields approving `op` (with its paymaster gas limits, or this signer's where `op` has
    /// none) on `chain_id` from `valid_after` to `valid_until` (unix seconds, below 2^47).
    pub fn approve(
        &self,
        op: &UserOperation,
        chain_id: u64,
        valid_after: u64,
        valid_until: u64,
    ) -> Result<PaymasterFields, Error> {
        self.fields(op, chain_id, valid_after, valid_until, &self.key)
    }

    fn fields(
        &self,
        op: &UserOperation,
        chain_id: u64,
        valid_after: u64,
        valid_until: u64,
        key: &PrivateKeySigner,
    ) -> Result<PaymasterFields, Error> {
        for (name, bound) in [("validAfter", valid_after), ("validUntil", valid_until)] {
            if bound > MAX_WINDOW_BOUND {
                return Err(Error::Config(format!("{name} = {bound} is past 2^47 - 1, which ValetPaymaster refuses")));
            }
        }
        let ours = op.paymaster == Some(self.paymaster);
        let verification_gas_limit = match op.paymaster_verification_gas_limit {
            limit if ours && limit != 0 => limit,
            _ => self.verification_gas_limit,
        };
        let post_op_gas_limit = if ours { op.paymaster_post_op_gas_limit } else { self.post_op_gas_limit };
        let mut fields = PaymasterFields {
            paymaster: self.paymaster,
            paymaster_data: Bytes::new(),
            verification_gas_limit,
            post_op_gas_limit,
        };
        let mut approved = op.clone();
        fields.apply(&mut approved);
        let digest = sponsor_digest(&approved, self.paymaster, chain_id, valid_after, valid_until);
        let signature = wiping_stack(|| key.sign_hash_sync(&digest)).map_err(Error::Signing)?.as_bytes();
        fields.paymaster_data =
            [&valid_after.to_be_bytes()[2..], &valid_until.to_be_bytes()[2..], &signature[..]].concat().into();
        Ok(fields)
    }

    /// Now, as this signer counts validity from.
    async fn now(&self) -> Result<u64, Error> {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let Some(provider) = &self.clock else { return Ok(wall) };
        let block = provider.get_block_by_number(Default::default()).await.map_err(rpc)?;
        Ok(block.map_or(wall, |b| b.header.timestamp.max(wall)))
    }

    fn check_entry_point(&self, entry_point: Address) -> Result<(), Error> {
        if entry_point != valet_core::ENTRY_POINT_V07 {
            return Err(Error::Config(format!(
                "ValetPaymaster serves EntryPoint v0.7 ({}), not {entry_point}",
                valet_core::ENTRY_POINT_V07
            )));
        }
        Ok(())
    }
}

impl Paymaster for SponsorSigner {
    fn name(&self) -> &str {
        &self.name
    }

    /// Fields of the final length whose signature is a throwaway key's: the paymaster's
    /// validation then runs as it will with the sponsor's (it recovers an address and reads
    /// its signer to compare), so an estimate measures the real cost; and the stub approves
    /// nothing, as no one holds the key.
    fn stub<'a>(
        &'a self,
        op: &'a UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterStub, Error>> {
        Box::pin(async move {
            self.check_entry_point(entry_point)?;
            let now = self.now().await?;
            let throwaway = PrivateKeySigner::random_with(&mut OsRng);
            // Not naming this paymaster yet, so the stub carries this signer's gas limits.
            let mut unpriced = op.clone();
            unpriced.paymaster = None;
            let fields = self.fields(&unpriced, chain_id, 0, valid_until(now, self.validity), &throwaway)?;
            Ok(PaymasterStub { fields, is_final: false, sponsor: None })
        })
    }

    fn data<'a>(
        &'a self,
        op: &'a UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterFields, Error>> {
        Box::pin(async move {
            self.check_entry_point(entry_point)?;
            let now = self.now().await?;
            self.approve(op, chain_id, 0, valid_until(now, self.validity))
        })
    }
}

fn valid_until(now: u64, validity: Duration) -> u64 {
    now.saturating_add(validity.as_secs()).min(MAX_WINDOW_BOUND)
}

fn rpc(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::rpc(e)
}

// ------------------------------------------------------------------ deployment

/// ValetPaymaster's creation code with its constructor arguments `(signer, owner)`.
fn init_code(signer: Address, owner: Address) -> Vec<u8> {
    let mut code = ValetPaymaster::BYTECODE.to_vec();
    code.extend_from_slice(&(signer, owner).abi_encode_params());
    code
}

/// Where [`deploy_paymaster`] puts the ValetPaymaster of `signer` and `owner`: the deterministic
/// deployment proxy's CREATE2 address for its creation code with Valet's salt (the same on every
/// chain for the same signer and owner).
pub fn paymaster_address(signer: Address, owner: Address) -> Address {
    crate::deploy::DETERMINISTIC_DEPLOYER.create2(crate::deploy::SALT, keccak256(init_code(signer, owner)))
}

/// Creates the ValetPaymaster of `signer` (the sponsor key) and `owner` (who manages its deposit,
/// stake and signer) through the deterministic deployment proxy, with `provider`'s wallet paying;
/// nothing is sent when it is there already (its address follows from its code and arguments, so
/// code there is this paymaster).
pub async fn deploy_paymaster(provider: &DynProvider, signer: Address, owner: Address) -> Result<Address, Error> {
    let address = paymaster_address(signer, owner);
    if !provider.get_code_at(address).await.map_err(rpc)?.is_empty() {
        return Ok(address);
    }
    let proxy = crate::deploy::DETERMINISTIC_DEPLOYER;
    if provider.get_code_at(proxy).await.map_err(rpc)?.is_empty() {
        return Err(Error::Deploy(format!("no deterministic deployment proxy at {proxy}: deploy it first")));
    }
    crate::deploy::create2(provider, "ValetPaymaster", crate::deploy::SALT, &init_code(signer, owner), address).await?;
    Ok(address)
}

/// Adds `deposit` wei to `paymaster`'s EntryPoint deposit (anyone may) and `stake` wei to its
/// stake with `unstake_delay` (its owner only: `provider`'s wallet must be the owner's). Zero
/// amounts are skipped.
pub async fn fund_paymaster(
    provider: &DynProvider,
    paymaster: Address,
    deposit: U256,
    stake: U256,
    unstake_delay: Duration,
) -> Result<(), Error> {
    let contract = ValetPaymaster::new(paymaster, provider);
    let sent = |what: &str, receipt: alloy::rpc::types::TransactionReceipt| {
        if receipt.status() {
            Ok(())
        } else {
            Err(Error::Deploy(format!("{what} of paymaster {paymaster} reverted in {}", receipt.transaction_hash)))
        }
    };
    if !deposit.is_zero() {
        let receipt = contract.deposit().value(deposit).send().await.map_err(rpc)?.get_receipt().await.map_err(rpc)?;
        sent("the deposit", receipt)?;
    }
    if !stake.is_zero() {
        let delay = u32::try_from(unstake_delay.as_secs()).map_err(|_| {
            Error::Config(format!("unstake delay {unstake_delay:?} does not fit in 32 bits of seconds"))
        })?;
        let receipt =
            contract.addStake(delay).value(stake).send().await.map_err(rpc)?.get_receipt().await.map_err(rpc)?;
        sent("the stake", receipt)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> UserOperation {
        UserOperation {
            sender: Address::repeat_byte(0x11),
            nonce: U256::from(7),
            call_data: Bytes::from_static(&[1, 2, 3]),
            call_gas_limit: 100_000,
            verification_gas_limit: 200_000,
            pre_verification_gas: U256::from(50_000),
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            ..UserOperation::default()
        }
    }

    /// paymasterAndData is 129 bytes laid out as ValetPaymaster reads it, and the signature
    /// recovers to the sponsor over [`sponsor_digest`] of the operation with those gas limits.
    #[test]
    fn approval_layout_and_signature() {
        let key = PrivateKeySigner::random();
        let paymaster = Address::repeat_byte(0x22);
        let sponsor = SponsorSigner::new(paymaster, key.clone());
        let fields = sponsor.approve(&op(), 31_337, 5, 1_800_000_000).expect("approves");
        let mut approved = op();
        fields.apply(&mut approved);
        let packed = approved.pack().paymaster_and_data;
        assert_eq!(packed.len(), 129);
        assert_eq!(&packed[..20], paymaster.as_slice());
        assert_eq!(u128::from_be_bytes(packed[20..36].try_into().expect("16")), SPONSOR_VERIFICATION_GAS);
        assert_eq!(u128::from_be_bytes(packed[36..52].try_into().expect("16")), SPONSOR_POST_OP_GAS);
        assert_eq!(&packed[52..58], &[0, 0, 0, 0, 0, 5]);
        assert_eq!(&packed[58..64], &1_800_000_000u64.to_be_bytes()[2..]);
        let signature = alloy::primitives::Signature::try_from(&packed[64..]).expect("65 bytes");
        let digest = sponsor_digest(&approved, paymaster, 31_337, 5, 1_800_000_000);
        assert_eq!(signature.recover_address_from_prehash(&digest).expect("recovers"), key.address());
        // Another chain, paymaster or gas limit is another digest.
        assert_ne!(digest, sponsor_digest(&approved, paymaster, 1, 5, 1_800_000_000));
        assert_ne!(digest, sponsor_digest(&approved, Address::repeat_byte(0x33), 31_337, 5, 1_800_000_000));
        approved.paymaster_verification_gas_limit += 1;
        assert_ne!(digest, sponsor_digest(&approved, paymaster, 31_337, 5, 1_800_000_000));
    }

    /// The operation's own paymaster gas limits are signed when it names this paymaster (an
    /// estimate set them); the signer's otherwise.
    #[test]
    fn approval_keeps_the_estimated_gas_limits() {
        let paymaster = Address::repeat_byte(0x22);
        let sponsor = SponsorSigner::new(paymaster, PrivateKeySigner::random()).with_gas_limits(40_000, 1);
        let mut estimated = op();
        estimated.paymaster = Some(paymaster);
        estimated.paymaster_verification_gas_limit = 33_333;
        estimated.paymaster_post_op_gas_limit = 0;
        let fields = sponsor.approve(&estimated, 1, 0, 100).expect("approves");
        assert_eq!((fields.verification_gas_limit, fields.post_op_gas_limit), (33_333, 0));
        let fields = sponsor.approve(&op(), 1, 0, 100).expect("approves");
        assert_eq!((fields.verification_gas_limit, fields.post_op_gas_limit), (40_000, 1));
        assert!(sponsor.approve(&op(), 1, 0, 1 << 47).is_err(), "the block-number flag is refused");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = PrivateKeySigner::random();
        let secret = alloy::hex::encode(key.to_bytes());
        let shown = format!("{:?}", SponsorSigner::new(Address::ZERO, key));
        assert!(!shown.contains(&secret), "{shown}");
        let service = Erc7677::new("https://paymaster.example/v2/SECRET?apikey=SECRET2").expect("url");
        let shown = format!("{service:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(service.name(), "https://paymaster.example");
    }

    /// The salt-and-code address of a known input (checked against the proxy on the devnet by
    /// the sponsored tests).
    #[test]
    fn address_depends_on_signer_and_owner() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        assert_ne!(paymaster_address(a, b), paymaster_address(b, a));
        assert_eq!(paymaster_address(a, b), paymaster_address(a, b));
    }
}
