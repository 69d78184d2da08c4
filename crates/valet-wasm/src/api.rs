//! The functions [`crate`] exports, in plain Rust: text and JSON in, JSON out, errors as the
//! core's messages. Native code (tests, the case generator) calls them as they are; the
//! `#[wasm_bindgen]` wrappers only turn an `Err` into a thrown JS `Error`.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, U256, hex};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use valet_core::evaluator::{INCLUSION_MARGIN, judge_for_inclusion};
use valet_core::session::MAX_FEE_BUDGET;
use valet_core::spec::{Function, Labels, SessionSpec, SpecContext};
use valet_core::user_operation::{Quantity, session_lane, validator_nonce_key};
use valet_core::{
    Call, Counters, Execution, OpGas, PackedUserOperation, Refusal, Request, Session, SessionState, UserOperation,
    Verdict, eip712, signature, spec,
};

/// What every function here returns: a value, or the message to throw.
pub type Outcome<T> = Result<T, String>;

/// At most this many characters of a bad input are repeated in its error.
const SHOWN: usize = 80;

fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Outcome<T> {
    serde_json::from_str(text).map_err(|e| format!("{what}: {e}"))
}

fn bytes(what: &str, text: &str) -> Outcome<Bytes> {
    hex::decode(text).map(Bytes::from).map_err(|e| format!("{what} `{}` is not hex bytes: {e}", shown(text)))
}

fn address(what: &str, text: &str) -> Outcome<Address> {
    text.parse().map_err(|e| format!("{what} `{}` is not an address: {e}", shown(text)))
}

fn word(what: &str, text: &str) -> Outcome<B256> {
    text.parse().map_err(|e| format!("{what} `{}` is not 32 bytes of hex: {e}", shown(text)))
}

/// A packed session, decoded as the validator would read it.
fn session(packed: &str) -> Outcome<Session> {
    Session::decode(&bytes("session", packed)?).map_err(|e| format!("session: {e}"))
}

/// A count or a time that JavaScript passes as a number: a whole number from 0 to 2^53 - 1.
pub fn whole(what: &str, value: f64) -> Outcome<u64> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if value.fract() == 0.0 && (0.0..=MAX_SAFE).contains(&value) {
        Ok(value as u64)
    } else {
        Err(format!("{what} = {value} is not a whole number from 0 to 2^53 - 1"))
    }
}

fn u64_of(what: &str, q: Quantity) -> Outcome<u64> {
    u64::try_from(q.0).map_err(|_| format!("{what} = {} does not fit in 64 bits", q.0))
}

fn u128_of(what: &str, q: Quantity) -> Outcome<u128> {
    u128::try_from(q.0).map_err(|_| format!("{what} = {} does not fit in 128 bits", q.0))
}

/// Symbol and decimals of a token, for summaries and refusals in token units.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLabel {
    /// "USDC".
    pub symbol: String,
    /// 6.
    pub decimals: u8,
}

fn labels(names: &BTreeMap<String, Address>, tokens: &BTreeMap<Address, TokenLabel>) -> Labels {
    // As the CLI labels addresses: by the names the spec could use.
    let mut labels = Labels::default();
    for (name, address) in names {
        labels.names.insert(*address, name.clone());
    }
    for (address, token) in tokens {
        labels.tokens.insert(*address, (token.symbol.clone(), token.decimals));
    }
    labels
}

/// What resolving a spec needs: [`SpecContext`] with names, and token labels for the summary.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecInput {
    now: u64,
    session_key: Address,
    /// A quantity: epochs are random 64-bit numbers, beyond JavaScript's exact integers.
    #[serde(default)]
    account_epoch: Quantity,
    #[serde(default)]
    names: BTreeMap<String, Address>,
    #[serde(default)]
    tokens: BTreeMap<Address, TokenLabel>,
    /// The latest block's time: a window the spec does not start explicitly starts no later
    /// (bundlers simulate at that block, which on an idle chain lags the clock; no block comes
    /// before it, so the earlier start grants nothing). As the Rust client's `propose`.
    #[serde(default)]
    chain_time: Option<u64>,
}

/// A spec (`format` "toml" or "json") resolved for `context` (JSON: `now`, `sessionKey`,
/// `accountEpoch`, `names`, `tokens`): `{packed, id, summary, warnings, functions}`.
pub fn parse_spec(text: &str, format: &str, context: &str) -> Outcome<Value> {
    let input: SpecInput = from_json("spec context", context)?;
    let parsed = match format {
        "toml" => SessionSpec::from_toml(text),
        "json" => SessionSpec::from_json(text),
        other => return Err(format!("spec format `{}` is neither \"toml\" nor \"json\"", shown(other))),
    }
    .map_err(|e| e.to_string())?;
    let ctx = SpecContext {
        now: input.now,
        session_key: input.session_key,
        account_epoch: u64_of("account epoch", input.account_epoch)?,
        names: input.names.clone(),
    };
    let mut session = parsed.resolve(&ctx).map_err(|e| e.to_string())?;
    if let Some(chain_time) = input.chain_time
        && parsed.valid_after.is_none()
        && chain_time < session.valid_after
    {
        session.valid_after = chain_time.max(1);
    }
    let functions = parsed.functions().map_err(|e| e.to_string())?;
    let packed = session.encode().map_err(|e| e.to_string())?;
    let id = session.id().map_err(|e| e.to_string())?;
    let labels = labels(&input.names, &input.tokens);
    Ok(json!({
        "packed": packed,
        "id": id,
        "summary": spec::summary(&session, &functions, &labels),
        "warnings": spec::warnings(&session),
        "functions": parsed.permissions.iter().map(|p| p.function.clone()).collect::<Vec<_>>(),
    }))
}

/// The id of a packed session (`keccak256` of it, once it decodes).
pub fn session_id(packed: &str) -> Outcome<B256> {
    session(packed)?.id().map_err(|e| e.to_string())
}

/// The owner's grant of a packed session on one chain: `{typedData, digest}`.
pub fn grant_typed_data(packed: &str, account: &str, validator: &str, chain_id: u64) -> Outcome<Value> {
    let session = session(packed)?;
    let account = address("account", account)?;
    let validator = address("validator", validator)?;
    let typed_data = eip712::grant_typed_data(&session, account, validator, chain_id).map_err(|e| e.to_string())?;
    let digest = eip712::grant_digest(&session, account, validator, chain_id).map_err(|e| e.to_string())?;
    Ok(json!({ "typedData": typed_data, "digest": digest }))
}

/// One call as JSON: `{target, value?, data?}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallJson {
    target: Address,
    #[serde(default)]
    value: Quantity,
    #[serde(default)]
    data: Bytes,
}

/// An execution as JSON: `{calls, batch?}`; without `batch`, one call is a single execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutionJson {
    calls: Vec<CallJson>,
    #[serde(default)]
    batch: bool,
}

impl ExecutionJson {
    fn execution(self) -> Outcome<Execution> {
        let mut calls: Vec<Call> =
            self.calls.into_iter().map(|c| Call { target: c.target, value: c.value.0, data: c.data }).collect();
        match (self.batch, calls.len()) {
            (false, 1) => Ok(Execution::Single(calls.remove(0))),
            (false, n) => Err(format!("a single execution makes one call, not {n} (set batch for several)")),
            (true, 0) => Err("a batch makes at least one call, not 0".into()),
            (true, _) => Ok(Execution::Batch(calls)),
        }
    }
}

/// The account's calldata for an execution (JSON `{calls, batch?}`): `execute(mode, executionCalldata)`.
pub fn encode_execution(execution: &str) -> Outcome<Bytes> {
    let execution: ExecutionJson = from_json("execution", execution)?;
    Ok(execution.execution()?.encode())
}

/// The execution an account's calldata makes: `{calls, batch}`; refuses what the validator would.
pub fn decode_execution(call_data: &str) -> Outcome<Value> {
    let execution = Execution::decode(&bytes("call data", call_data)?).map_err(|e| e.to_string())?;
    let batch = matches!(execution, Execution::Batch(_));
    let calls: Vec<CallJson> = execution
        .calls()
        .iter()
        .map(|c| CallJson { target: c.target, value: Quantity(c.value), data: c.data.clone() })
        .collect();
    serde_json::to_value(ExecutionJson { calls, batch }).map_err(|e| e.to_string())
}

/// A packed UserOperation as JSON (camelCase, quantities as `0x` hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PackedJson {
    sender: Address,
    nonce: Quantity,
    #[serde(default)]
    init_code: Bytes,
    call_data: Bytes,
    account_gas_limits: B256,
    pre_verification_gas: Quantity,
    gas_fees: B256,
    #[serde(default)]
    paymaster_and_data: Bytes,
    #[serde(default)]
    signature: Bytes,
}

impl From<&PackedUserOperation> for PackedJson {
    fn from(op: &PackedUserOperation) -> Self {
        Self {
            sender: op.sender,
            nonce: Quantity(op.nonce),
            init_code: op.init_code.clone(),
            call_data: op.call_data.clone(),
            account_gas_limits: op.account_gas_limits,
            pre_verification_gas: Quantity(op.pre_verification_gas),
            gas_fees: op.gas_fees,
            paymaster_and_data: op.paymaster_and_data.clone(),
            signature: op.signature.clone(),
        }
    }
}

impl From<PackedJson> for PackedUserOperation {
    fn from(op: PackedJson) -> Self {
        Self {
            sender: op.sender,
            nonce: op.nonce.0,
            init_code: op.init_code,
            call_data: op.call_data,
            account_gas_limits: op.account_gas_limits,
            pre_verification_gas: op.pre_verification_gas.0,
            gas_fees: op.gas_fees,
            paymaster_and_data: op.paymaster_and_data,
            signature: op.signature,
        }
    }
}

/// A v0.7 UserOperation in its JSON-RPC form (ERC-7769), packed for the EntryPoint, with its
/// userOpHash there: `{packed, hash}`.
pub fn pack_user_operation(op: &str, entry_point: &str, chain_id: u64) -> Outcome<Value> {
    let op: UserOperation = from_json("user operation", op)?;
    let entry_point = address("entry point", entry_point)?;
    let packed = op.pack();
    let hash = packed.hash(entry_point, chain_id);
    Ok(json!({ "packed": PackedJson::from(&packed), "hash": hash }))
}

/// The userOpHash of a packed UserOperation (JSON, camelCase) at EntryPoint v0.7.
pub fn packed_user_operation_hash(op: &str, entry_point: &str, chain_id: u64) -> Outcome<B256> {
    let op: PackedJson = from_json("packed user operation", op)?;
    let entry_point = address("entry point", entry_point)?;
    Ok(PackedUserOperation::from(op).hash(entry_point, chain_id))
}

/// Everything in an operation's signature before the session key's 65 bytes: mode 0 (use an
/// enabled session) without `grant`, mode 1 (enable it with the owner's grant, and use it) with.
pub fn signature_prefix(packed: &str, claimed_time: u64, indices: &[u8], grant: Option<&str>) -> Outcome<Bytes> {
    let packed = bytes("session", packed)?;
    let grant = grant.map(|g| bytes("grant", g)).transpose()?;
    signature::prefix(&packed, claimed_time, indices, grant.as_ref().map(|g| &g[..])).map_err(|e| e.to_string())
}

/// What the session key signs for an operation: see [`signature::key_digest`].
pub fn key_digest(user_op_hash: &str, session_id: &str, claimed_time: u64, indices: &[u8]) -> Outcome<B256> {
    if indices.len() > signature::MAX_CALLS {
        return Err(format!("{} permission indices: an operation makes 1 to 32 calls", indices.len()));
    }
    Ok(signature::key_digest(word("userOpHash", user_op_hash)?, word("session id", session_id)?, claimed_time, indices))
}

/// A signature of the final length for gas estimation: [`signature_prefix`]'s, then a 65-byte
/// key signature that recovers to no key ([`signature::DUMMY_ECDSA_SIGNATURE`]), so the
/// validator answers `SIG_VALIDATION_FAILED` instead of reverting.
pub fn stub_signature(packed: &str, claimed_time: u64, indices: &[u8], grant: Option<&str>) -> Outcome<Bytes> {
    let prefix = signature_prefix(packed, claimed_time, indices, grant)?;
    Ok([prefix.as_ref(), signature::DUMMY_ECDSA_SIGNATURE.as_slice()].concat().into())
}

/// The 192-bit EntryPoint nonce key of a session's operations (`0x` hex): the validator and
/// the session's lane (the first 4 bytes of its id), as the Rust client uses it.
pub fn nonce_key(session_id: &str, validator: &str) -> Outcome<String> {
    let id = word("session id", session_id)?;
    let validator = address("validator", validator)?;
    Ok(format!("{:#x}", validator_nonce_key(validator, session_lane(id))))
}

/// The owner's revocation of session `session_id` on `account`, to sign with any wallet:
/// `{typedData, digest}` (submitted with `revokeSessionWithSignature`).
pub fn revoke_typed_data(account: &str, session_id: &str, validator: &str, chain_id: u64) -> Outcome<Value> {
    let account = address("account", account)?;
    let id = word("session id", session_id)?;
    let validator = address("validator", validator)?;
    Ok(json!({
        "typedData": eip712::revoke_session_typed_data(account, id, validator, chain_id),
        "digest": eip712::revoke_session_digest(account, id, validator, chain_id),
    }))
}

/// What the validator's views return for one session on one account (`sessionState`,
/// `isInitialized`, `accountEpoch`, `permissionUses` and `limitUsage` of each counted one),
/// and whether the account has code.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ViewsJson {
    session: Bytes,
    /// `sessionState(account, session).state`: 0 none, 1 enabled, 2 revoked, 3 voided, else
    /// not installed.
    state: u8,
    #[serde(default)]
    uses: Quantity,
    #[serde(default)]
    fees_spent: Quantity,
    installed: bool,
    #[serde(default)]
    account_epoch: Quantity,
    deployed: bool,
    #[serde(default)]
    permission_uses: Vec<Quantity>,
    #[serde(default)]
    limits: Vec<LimitWordJson>,
}

/// The counters the evaluator takes, from the validator's views (JSON [`ViewsJson`]), and
/// where the session stands: `{counters, standing}` with `standing` one of `not_enabled`,
/// `enabled`, `revoked`, `voided`, `not_installed` — as the Rust client reads them.
pub fn chain_counters(views: &str) -> Outcome<Value> {
    let views: ViewsJson = from_json("views", views)?;
    let session = Session::decode(&views.session).map_err(|e| format!("session: {e}"))?;
    let account_epoch = u64_of("account epoch", views.account_epoch)?;
    let mut installed = views.installed;
    let (state, standing) = match views.state {
        0 => (StateJson::None, "not_enabled"),
        1 => (StateJson::Enabled, "enabled"),
        2 => (StateJson::Revoked, "revoked"),
        // Voided and not installed: the evaluator refuses on the epoch or the installation.
        3 => (StateJson::None, "voided"),
        // Not deployed yet: its first operation deploys it with the validator installed, unless
        // the session names another epoch than the account's.
        _ if !views.deployed => {
            installed = true;
            (StateJson::None, if session.epoch != account_epoch { "voided" } else { "not_enabled" })
        }
        _ => (StateJson::None, "not_installed"),
    };
    let saturating = |q: Quantity| u32::try_from(q.0).unwrap_or(u32::MAX);
    let counters = CountersJson {
        state,
        session_uses: saturating(views.uses),
        permission_uses: views.permission_uses.into_iter().map(saturating).collect(),
        limits: views.limits,
        fees_spent: views.fees_spent,
        installed,
        account_epoch: views.account_epoch,
    };
    counters.counters()?;
    Ok(json!({ "counters": counters, "standing": standing }))
}

/// A session's state word, as JSON: "none", "enabled" or "revoked".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateJson {
    /// [`SessionState::None`].
    None,
    /// [`SessionState::Enabled`].
    Enabled,
    /// [`SessionState::Revoked`].
    Revoked,
}

/// One limit's word: spent in `period`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitWordJson {
    /// Spent (base units, wei).
    pub spent: Quantity,
    /// The period index it was spent in.
    pub period: u64,
}

/// [`Counters`] as JSON (camelCase; amounts as quantities, written `0x` hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CountersJson {
    /// The session's stored state.
    pub state: StateJson,
    /// Operations made.
    #[serde(default)]
    pub session_uses: u32,
    /// Calls made per permission 0..8 (fewer: the rest are 0).
    #[serde(default)]
    pub permission_uses: Vec<u32>,
    /// Per limit: spent and its period.
    #[serde(default)]
    pub limits: Vec<LimitWordJson>,
    /// Wei committed to fees.
    #[serde(default)]
    pub fees_spent: Quantity,
    /// Whether the validator is installed on the account.
    pub installed: bool,
    /// The account's epoch: a quantity (epochs are random 64-bit numbers, beyond JavaScript's
    /// exact integers).
    #[serde(default)]
    pub account_epoch: Quantity,
}

impl CountersJson {
    fn counters(&self) -> Outcome<Counters> {
        let mut permission_uses = [0u32; valet_core::session::MAX_COUNTED_PERMISSIONS];
        if self.permission_uses.len() > permission_uses.len() {
            return Err(format!(
                "counters: {} permission use counts, at most {} are counted",
                self.permission_uses.len(),
                permission_uses.len()
            ));
        }
        permission_uses[..self.permission_uses.len()].copy_from_slice(&self.permission_uses);
        let limits = self
            .limits
            .iter()
            .enumerate()
            .map(|(l, w)| Ok((u128_of(&format!("limit {l} spent"), w.spent)?, w.period)))
            .collect::<Outcome<Vec<_>>>()?;
        let fees_spent = u128_of("fees spent", self.fees_spent)?;
        if fees_spent > MAX_FEE_BUDGET {
            return Err(format!("fees spent = {fees_spent} does not fit (at most {MAX_FEE_BUDGET})"));
        }
        Ok(Counters {
            state: match self.state {
                StateJson::None => SessionState::None,
                StateJson::Enabled => SessionState::Enabled,
                StateJson::Revoked => SessionState::Revoked,
            },
            session_uses: self.session_uses,
            permission_uses,
            limits,
            fees_spent,
            installed: self.installed,
            account_epoch: u64_of("account epoch", self.account_epoch)?,
        })
    }

    /// The JSON of `counters`.
    pub fn of(counters: &Counters) -> Self {
        Self {
            state: match counters.state {
                SessionState::None => StateJson::None,
                SessionState::Enabled => StateJson::Enabled,
                SessionState::Revoked => StateJson::Revoked,
            },
            session_uses: counters.session_uses,
            permission_uses: counters.permission_uses.to_vec(),
            limits: counters
                .limits
                .iter()
                .map(|(spent, period)| LimitWordJson { spent: Quantity(U256::from(*spent)), period: *period })
                .collect(),
            fees_spent: Quantity(U256::from(counters.fees_spent)),
            installed: counters.installed,
            account_epoch: Quantity(U256::from(counters.account_epoch)),
        }
    }
}

/// An operation's gas fields, as packed (all zero by default: no fee, no paymaster).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GasJson {
    /// verificationGasLimit ‖ callGasLimit.
    #[serde(default)]
    pub account_gas_limits: B256,
    /// preVerificationGas.
    #[serde(default)]
    pub pre_verification_gas: Quantity,
    /// maxPriorityFeePerGas ‖ maxFeePerGas.
    #[serde(default)]
    pub gas_fees: B256,
    /// paymaster ‖ gas limits ‖ data, or empty.
    #[serde(default)]
    pub paymaster_and_data: Bytes,
}

/// What [`evaluate`] takes, as JSON (camelCase).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvaluationJson {
    /// The packed session.
    pub session: Bytes,
    /// The account (`userOp.sender`).
    pub account: Address,
    /// The validator.
    pub validator: Address,
    /// The account's calldata (`execute(mode, executionCalldata)`); or `execution`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_data: Option<Bytes>,
    /// The calls, encoded as [`encode_execution`] does; or `callData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    execution: Option<ExecutionJson>,
    /// The permission of each call; absent: the evaluator finds them (as the client does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indices: Option<Vec<u8>>,
    /// The time the operation names for periodic allowances.
    #[serde(default)]
    pub claimed_time: u64,
    /// Whether the operation carries the grant (enables the session).
    #[serde(default)]
    pub enable: bool,
    /// Gas limits, fees and paymaster.
    #[serde(default)]
    pub gas: GasJson,
    /// The chain's time.
    pub now: u64,
    /// Judge the operation at every time a block may include it, from `now` to `now` +
    /// [`INCLUSION_MARGIN`] (claiming the period current now; `claimedTime` is not read), as
    /// the Rust client's pre-flight does; otherwise at `now` with `claimedTime`.
    #[serde(default)]
    pub for_inclusion: bool,
    /// The on-chain counters.
    pub counters: CountersJson,
    /// Each permission's function as the spec wrote it (`null` for a plain transfer), for the
    /// refusal's words.
    #[serde(default)]
    pub functions: Vec<Option<String>>,
    /// Names of addresses, for the refusal's words.
    #[serde(default)]
    pub names: BTreeMap<String, Address>,
    /// Token symbols and decimals, for the refusal's words.
    #[serde(default)]
    pub tokens: BTreeMap<Address, TokenLabel>,
}

impl EvaluationJson {
    /// An evaluation of `call_data` with `counters` (the rest as given).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        session: Bytes,
        account: Address,
        validator: Address,
        call_data: Bytes,
        indices: Option<Vec<u8>>,
        claimed_time: u64,
        enable: bool,
        gas: &OpGas,
        now: u64,
        counters: &Counters,
    ) -> Self {
        Self {
            session,
            account,
            validator,
            call_data: Some(call_data),
            execution: None,
            indices,
            claimed_time,
            enable,
            gas: GasJson {
                account_gas_limits: gas.account_gas_limits,
                pre_verification_gas: Quantity(gas.pre_verification_gas),
                gas_fees: gas.gas_fees,
                paymaster_and_data: gas.paymaster_and_data.clone(),
            },
            now,
            for_inclusion: false,
            counters: CountersJson::of(counters),
            functions: Vec::new(),
            names: BTreeMap::new(),
            tokens: BTreeMap::new(),
        }
    }
}

/// The answer of [`evaluate`]: the verdict with the indices, or the refusal in the spec's words
/// (`reason`, what the CLI prints) and the evaluator's (`refusal`).
pub fn answer(
    result: Result<(Vec<u8>, Verdict), Refusal>,
    session: &Session,
    functions: &[Option<Function>],
    labels: &Labels,
) -> Value {
    match result {
        Ok((indices, verdict)) => json!({
            "accepted": true,
            "indices": indices,
            "validAfter": verdict.valid_after,
            "validUntil": verdict.valid_until,
            "counters": CountersJson::of(&verdict.counters),
        }),
        Err(refusal) => json!({
            "accepted": false,
            "reason": spec::explain(&refusal, session, functions, labels),
            "refusal": refusal.to_string(),
        }),
    }
}

/// Would the validator accept this operation (JSON [`EvaluationJson`]), and with which
/// permissions and counters after it; or why not, in the words the CLI prints.
pub fn evaluate(input: &str) -> Outcome<Value> {
    let input: EvaluationJson = from_json("evaluation", input)?;
    let session = Session::decode(&input.session).map_err(|e| format!("session: {e}"))?;
    let call_data = match (input.call_data, input.execution) {
        (Some(call_data), None) => call_data,
        (None, Some(execution)) => execution.execution()?.encode(),
        _ => return Err("an evaluation takes either callData or execution, not both or neither".into()),
    };
    let functions = input
        .functions
        .iter()
        .enumerate()
        .map(|(p, f)| f.as_deref().map(Function::parse).transpose().map_err(|e| format!("function {p}: {e}")))
        .collect::<Outcome<Vec<_>>>()?;
    let labels = labels(&input.names, &input.tokens);
    let counters = input.counters.counters()?;
    let gas = OpGas {
        account_gas_limits: input.gas.account_gas_limits,
        pre_verification_gas: input.gas.pre_verification_gas.0,
        gas_fees: input.gas.gas_fees,
        paymaster_and_data: input.gas.paymaster_and_data,
    };
    let request = Request {
        account: input.account,
        validator: input.validator,
        call_data: &call_data,
        indices: input.indices.as_deref().unwrap_or_default(),
        claimed_time: input.claimed_time,
        enable: input.enable,
        gas,
        now: input.now,
    };
    let given = input.indices.is_some();
    let result = if input.for_inclusion {
        let latest = input.now.saturating_add(INCLUSION_MARGIN);
        judge_for_inclusion(&session, input.now, |claimed_time| {
            run(&session, &counters, &Request { claimed_time, now: latest, ..request.clone() }, given)
        })
    } else {
        run(&session, &counters, &request, given)
    };
    Ok(answer(result, &session, &functions, &labels))
}

/// The evaluation itself: with the request's indices when `given`, else finding them
/// ([`valet_core::assign_permissions`], as the client does before it signs).
pub fn run(
    session: &Session,
    counters: &Counters,
    request: &Request<'_>,
    given: bool,
) -> Result<(Vec<u8>, Verdict), Refusal> {
    if given {
        valet_core::evaluate(session, counters, request).map(|verdict| (request.indices.to_vec(), verdict))
    } else {
        valet_core::assign_permissions(session, counters, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = r#"{"now": 1800000000, "sessionKey": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
        "names": {"ValetNFT": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}}"#;

    fn err<T: std::fmt::Debug>(outcome: Outcome<T>) -> String {
        outcome.expect_err("refused")
    }

    #[test]
    fn numbers_from_javascript_are_whole_and_exact() {
        assert_eq!(whole("chain id", 31337.0), Ok(31337));
        assert!(err(whole("chain id", -1.0)).contains("chain id = -1"));
        assert!(err(whole("chain id", 1.5)).contains("chain id = 1.5"));
        assert!(err(whole("claimed time", 2f64.powi(60))).contains("claimed time"));
    }

    #[test]
    fn the_demo_spec_resolves_as_the_core_resolves_it() {
        let resolved = parse_spec(spec::DEMO_MINT_SPEC, "toml", CONTEXT).expect("resolves");
        let packed = resolved["packed"].as_str().expect("packed");
        assert_eq!(resolved["id"].as_str(), Some(session_id(packed).expect("id").to_string().as_str()));
        assert!(resolved["summary"][1].as_str().expect("line").starts_with("May call mint(to, quantity) on ValetNFT"));
        let validator = "0x5615dEB798BB3E4dFa0139dFa1b3D433Cc23b72f";
        let grant = grant_typed_data(packed, validator, validator, 31337).expect("grant");
        assert_eq!(grant["typedData"]["primaryType"], "Grant");
        let lagging = CONTEXT.replace(r#""now": 1800000000,"#, r#""now": 1800000000, "chainTime": 1799999000,"#);
        let started = parse_spec(spec::DEMO_MINT_SPEC, "toml", &lagging).expect("resolves");
        let typed =
            grant_typed_data(started["packed"].as_str().expect("packed"), validator, validator, 1).expect("grant");
        assert_eq!(typed["typedData"]["message"]["session"]["validAfter"], "1799999000");
        assert!(err(parse_spec("x", "yaml", CONTEXT)).contains("`yaml` is neither"));
        assert!(err(parse_spec(spec::DEMO_MINT_SPEC, "toml", "{}")).contains("spec context"));
    }

    #[test]
    fn epochs_beyond_javascripts_integers_cross_as_quantities() {
        let counters =
            Counters { state: SessionState::Enabled, installed: true, account_epoch: u64::MAX, ..Counters::default() };
        let text = serde_json::to_string(&CountersJson::of(&counters)).expect("serialises");
        assert!(text.contains(r#""accountEpoch":"0xffffffffffffffff""#), "{text}");
        let back: CountersJson = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back.counters(), Ok(counters));
        let wide: CountersJson =
            serde_json::from_str(r#"{"state":"enabled","installed":true,"accountEpoch":"0x10000000000000000"}"#)
                .expect("a quantity");
        assert!(err(wide.counters()).contains("account epoch = 18446744073709551616 does not fit"));
    }

    #[test]
    fn nonce_keys_revocations_stubs_and_chain_counters() {
        let resolved = parse_spec(spec::DEMO_MINT_SPEC, "toml", CONTEXT).expect("resolves");
        let (packed, id) = (resolved["packed"].as_str().expect("packed"), resolved["id"].as_str().expect("id"));
        let validator = "0x5615dEB798BB3E4dFa0139dFa1b3D433Cc23b72f";
        let key = nonce_key(id, validator).expect("key");
        assert_eq!(key, format!("0x{}{}", &validator[2..].to_lowercase(), &id[2..10]));
        let revoke = revoke_typed_data(validator, id, validator, 31337).expect("revocation");
        assert_eq!(revoke["typedData"]["primaryType"], "RevokeSession");
        let stub = stub_signature(packed, 7, &[0], None).expect("stub");
        let prefix = signature_prefix(packed, 7, &[0], None).expect("prefix");
        assert_eq!(stub.len(), prefix.len() + 65);
        let views = |state: u8, deployed: bool, epoch: &str| {
            format!(
                r#"{{"session":"{packed}","state":{state},"uses":"0x3","installed":false,"deployed":{deployed},
                    "accountEpoch":"{epoch}","permissionUses":[3]}}"#
            )
        };
        let fresh = chain_counters(&views(4, false, "0x0")).expect("undeployed");
        assert_eq!(
            (fresh["standing"].as_str(), fresh["counters"]["installed"].as_bool()),
            (Some("not_enabled"), Some(true))
        );
        let moved = chain_counters(&views(4, false, "0x9")).expect("moved epoch");
        assert_eq!(moved["standing"], "voided");
        let bare = chain_counters(&views(4, true, "0x0")).expect("not installed");
        assert_eq!(
            (bare["standing"].as_str(), bare["counters"]["installed"].as_bool()),
            (Some("not_installed"), Some(false))
        );
        let revoked = chain_counters(&views(2, true, "0x0")).expect("revoked");
        assert_eq!(
            (revoked["counters"]["state"].as_str(), revoked["counters"]["sessionUses"].as_u64()),
            (Some("revoked"), Some(3))
        );
    }

    #[test]
    fn pre_flight_for_inclusion_refuses_a_session_that_ends_before_a_block_can_include_it() {
        let resolved = parse_spec(spec::DEMO_MINT_SPEC, "toml", CONTEXT).expect("resolves");
        let packed = resolved["packed"].as_str().expect("packed");
        let until = session(packed).expect("decodes").valid_until;
        let nft = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
        let (account, validator) =
            ("0x1111111111111111111111111111111111111111", "0x5615dEB798BB3E4dFa0139dFa1b3D433Cc23b72f");
        let judged = |now: u64, for_inclusion: bool| {
            let data = format!("0x40c10f19{:0>64}{:064x}", &account[2..], 1);
            let input = json!({
                "session": packed, "account": account, "validator": validator, "now": now, "claimedTime": now,
                "forInclusion": for_inclusion, "enable": true,
                "execution": {"calls": [{"target": nft, "data": data}]},
                "counters": {"state": "none", "installed": true},
            });
            evaluate(&input.to_string()).expect("evaluates")
        };
        assert_eq!(judged(until - 5, false)["accepted"], true, "{}", judged(until - 5, false));
        let late = judged(until - 5, true);
        assert_eq!(late["accepted"], false);
        assert!(late["reason"].as_str().expect("reason").contains("may be included as late as"), "{late}");
        assert_eq!(judged(until - INCLUSION_MARGIN, true)["accepted"], true);
    }

    #[test]
    fn executions_round_trip_and_bad_ones_are_named() {
        let one =
            r#"{"calls":[{"target":"0x1111111111111111111111111111111111111111","value":5,"data":"0xdeadbeef"}]}"#;
        let call_data = encode_execution(one).expect("encodes");
        let decoded = decode_execution(&call_data.to_string()).expect("decodes");
        assert_eq!(decoded["batch"], false);
        assert_eq!(decoded["calls"][0]["value"], "0x5");
        assert!(err(encode_execution(r#"{"calls":[]}"#)).contains("one call, not 0"));
        assert!(err(encode_execution(r#"{"calls":[],"batch":true}"#)).contains("at least one call"));
        // The core's own words.
        let core = Execution::decode(&[0x12]).expect_err("too short").to_string();
        assert_eq!(err(decode_execution("0x12")), core);
        assert!(err(session_id("0xzz")).contains("`0xzz` is not hex"));
    }
}
