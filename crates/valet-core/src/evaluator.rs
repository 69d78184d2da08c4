//! The policy evaluator: would the validator accept this operation for this session, now, with
//! these counters — and if not, exactly why. A mirror of `SessionKeyValidator.validateUserOp`
//! and of the EntryPoint's checks around it (gas values, paymasterAndData, time), in the same
//! order, with the same refusals (`docs/encoding.md` §9). Pure: the time, the operation's gas
//! fields and the on-chain counters are inputs.

use std::num::NonZeroU64;
use std::sync::OnceLock;

use alloy_primitives::{Address, B256, Bytes, FixedBytes, U256, keccak256};

use crate::PackedUserOperation;
use crate::execution::{self, CallRef};
use crate::session::{LimitKind, MAX_COUNTED_PERMISSIONS, MAX_LIMITS, MAX_PERMISSIONS, RuleOp, Session};

/// Where a session stands in the validator's storage (its state word): `None`, `Enabled` or
/// `Revoked`. Whether it is usable also depends on the account ([`Counters::installed`],
/// [`Counters::account_epoch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SessionState {
    /// Never enabled (nor revoked): the first use must carry the grant.
    #[default]
    None,
    /// Enabled.
    Enabled,
    /// Revoked for good.
    Revoked,
}

/// The on-chain counters of one session on one account, as the validator's views report them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters {
    /// The session's stored state.
    pub state: SessionState,
    /// Operations made.
    pub session_uses: u32,
    /// Calls made per permission 0..8.
    pub permission_uses: [u32; MAX_COUNTED_PERMISSIONS],
    /// Per limit: (spent, period index) — spent in that period, for a periodic limit.
    pub limits: Vec<(u128, u64)>,
    /// Wei of the account's ETH the session's operations committed to fees (of its fee budget).
    pub fees_spent: u128,
    /// Whether the validator is installed on the account.
    pub installed: bool,
    /// The account's epoch.
    pub account_epoch: u64,
}

/// The fields of an operation that decide what it may cost the account: its gas limits, fees and
/// paymaster, as packed for the EntryPoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpGas {
    /// verificationGasLimit (16 bytes) ‖ callGasLimit (16 bytes).
    pub account_gas_limits: B256,
    /// preVerificationGas.
    pub pre_verification_gas: U256,
    /// maxPriorityFeePerGas (16 bytes) ‖ maxFeePerGas (16 bytes).
    pub gas_fees: B256,
    /// paymaster ‖ verification gas (16) ‖ postOp gas (16) ‖ data, or empty.
    pub paymaster_and_data: Bytes,
}

impl OpGas {
    /// The gas fields of `op`.
    pub fn of(op: &PackedUserOperation) -> Self {
        Self {
            account_gas_limits: op.account_gas_limits,
            pre_verification_gas: op.pre_verification_gas,
            gas_fees: op.gas_fees,
            paymaster_and_data: op.paymaster_and_data.clone(),
        }
    }

    /// The paymaster named (the first 20 bytes of paymasterAndData), if not zero.
    pub fn paymaster(&self) -> Option<Address> {
        let p = self.paymaster_and_data.get(..20).map(Address::from_slice)?;
        (p != Address::ZERO).then_some(p)
    }

    /// What the account may pay: the EntryPoint's required prefund when no paymaster pays —
    /// `(verificationGasLimit + callGasLimit + paymasterVerificationGasLimit +
    /// paymasterPostOpGasLimit + preVerificationGas) × maxFeePerGas` — and 0 when one does.
    /// The values must be at most 2^120 - 1 ([`OpGas::check`]).
    pub fn max_cost(&self) -> U256 {
        if self.paymaster().is_some() {
            return U256::ZERO;
        }
        let (verification, call) = halves(self.account_gas_limits);
        let (_, max_fee) = halves(self.gas_fees);
        let (pm_verification, pm_post_op) = self.paymaster_gas();
        (U256::from(verification)
            + U256::from(call)
            + U256::from(pm_verification)
            + U256::from(pm_post_op)
            + self.pre_verification_gas)
            * U256::from(max_fee)
    }

    fn paymaster_gas(&self) -> (u128, u128) {
        let pmd = &self.paymaster_and_data;
        if pmd.len() < 52 {
            return (0, 0);
        }
        let g = |at: usize| u128::from_be_bytes(pmd[at..at + 16].try_into().expect("16 bytes"));
        (g(20), g(36))
    }

    /// The EntryPoint's own checks before the account is called: paymasterAndData empty or at
    /// least 52 bytes (AA93), every gas value at most 2^120 - 1 (AA94; the validator checks the
    /// same bound).
    pub fn check(&self) -> Result<(), Refusal> {
        let length = self.paymaster_and_data.len();
        if length != 0 && length < 52 {
            return Err(Refusal::InvalidPaymasterAndData { length });
        }
        let (verification, call) = halves(self.account_gas_limits);
        let (priority, max_fee) = halves(self.gas_fees);
        let (pm_verification, pm_post_op) = self.paymaster_gas();
        let bound = U256::from(1u128 << 120);
        let too_large = [verification, call, priority, max_fee, pm_verification, pm_post_op]
            .iter()
            .any(|v| U256::from(*v) >= bound)
            || self.pre_verification_gas >= bound;
        if too_large { Err(Refusal::GasValuesOverflow) } else { Ok(()) }
    }
}

fn halves(w: B256) -> (u128, u128) {
    (
        u128::from_be_bytes(w[..16].try_into().expect("16 bytes")),
        u128::from_be_bytes(w[16..].try_into().expect("16 bytes")),
    )
}

/// What one operation asks of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The account (`userOp.sender`).
    pub account: Address,
    /// The validator's address (a call to it is never allowed).
    pub validator: Address,
    /// The operation's calldata on the account: `execute(mode, executionCalldata)`.
    pub call_data: &'a [u8],
    /// The permission each call uses, by index.
    pub indices: &'a [u8],
    /// The time the operation names for periodic allowances.
    pub claimed_time: u64,
    /// Whether the operation enables the session (carries the grant).
    pub enable: bool,
    /// Its gas limits, fees and paymaster.
    pub gas: OpGas,
    /// The chain's time when the operation is included.
    pub now: u64,
}

/// An accepted operation: its validity window and the counters after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// First second the EntryPoint accepts the operation (the session's, narrowed by periods).
    pub valid_after: u64,
    /// Last second.
    pub valid_until: u64,
    /// The counters once the operation is validated.
    pub counters: Counters,
}

/// Why the validator (or the EntryPoint's time check) refuses an operation, with the values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The session is revoked.
    #[error("session {0} was revoked; grant a new one")]
    Revoked(B256),
    /// The session is not enabled and the operation carries no grant.
    #[error("session {0} is not enabled yet: send its first operation with the grant")]
    NotEnabled(B256),
    /// The operation carries a grant, but the session is enabled already.
    #[error("session {0} is already enabled: send operations without the grant")]
    AlreadyEnabled(B256),
    /// The session was granted under another epoch: all sessions of the account were revoked,
    /// or the validator reinstalled, since.
    #[error(
        "session {id} was granted under epoch {session_epoch:#x}, the account is at {account_epoch:#x}: all its sessions were revoked since; grant a new one"
    )]
    EpochMismatch {
        /// Session id.
        id: B256,
        /// Its epoch.
        session_epoch: u64,
        /// The account's.
        account_epoch: u64,
    },
    /// The validator is not installed on the account.
    #[error("the session key validator is not installed on account {0}")]
    NotInstalled(Address),
    /// paymasterAndData is 1 to 51 bytes (the EntryPoint's AA93).
    #[error("paymasterAndData is {length} bytes: empty, or a paymaster and its two gas limits (52 bytes or more)")]
    InvalidPaymasterAndData {
        /// Its length.
        length: usize,
    },
    /// A gas value is above 2^120 - 1 (the EntryPoint's AA94).
    #[error("a gas limit, preVerificationGas or fee is above 2^120 - 1")]
    GasValuesOverflow,
    /// The session may not spend the account's ETH on fees: a paymaster must pay.
    #[error("session {0} may not spend the account's ETH on fees: its operations must be paid by a paymaster")]
    PaymasterRequired(B256),
    /// The operation's maximum cost does not fit in what is left of the fee budget.
    #[error(
        "this operation may cost up to {fee} wei in fees, but {spent} of the session's {budget} wei fee budget is spent"
    )]
    FeeBudgetExceeded {
        /// Wei committed so far.
        spent: u128,
        /// The operation's maximum cost.
        fee: U256,
        /// The budget.
        budget: u128,
    },
    /// The operation names a paymaster the session does not list.
    #[error("paymaster {0} is not one the session allows")]
    PaymasterNotAllowed(Address),
    /// The session's operations are used up.
    #[error("session {id} has used all {max_uses} of its operations")]
    SessionUsesExhausted {
        /// Session id.
        id: B256,
        /// Its limit.
        max_uses: u32,
    },
    /// The calldata is not an accepted `execute` call.
    #[error(transparent)]
    Execution(#[from] crate::Error),
    /// The signature names a different number of permission indices than there are calls.
    #[error("{calls} call(s) but {indices} permission index(es)")]
    CallCountMismatch {
        /// Calls.
        calls: usize,
        /// Indices.
        indices: usize,
    },
    /// A call targets the account itself, the validator or an EntryPoint.
    #[error("call {call} targets {target}: a session may never call the account, the validator or an EntryPoint")]
    ForbiddenTarget {
        /// Call index.
        call: usize,
        /// Target.
        target: Address,
    },
    /// A call names a permission the session does not have.
    #[error("call {call} names permission {permission}, but the session has {count}")]
    NoSuchPermission {
        /// Call index.
        call: usize,
        /// Permission index.
        permission: usize,
        /// How many there are.
        count: usize,
    },
    /// A call's target or function is not what its permission allows.
    #[error("call {call} ({target}, selector {selector}) is not allowed by permission {permission}")]
    NotPermitted {
        /// Call index.
        call: usize,
        /// Permission index.
        permission: usize,
        /// Target.
        target: Address,
        /// The call's selector (left-aligned bytes for calldata under 4 bytes).
        selector: FixedBytes<4>,
    },
    /// A call sends more native value than its permission allows.
    #[error("call {call} sends {value} wei, above permission {permission}'s cap of {limit}")]
    ValueAboveLimit {
        /// Call index.
        call: usize,
        /// Permission index.
        permission: usize,
        /// Value sent.
        value: U256,
        /// The cap.
        limit: u128,
    },
    /// A rule's argument word is not in the calldata.
    #[error("call {call} has no argument {arg} for rule {rule} of permission {permission}")]
    ArgumentMissing {
        /// Call index.
        call: usize,
        /// Permission index.
        permission: usize,
        /// Rule index.
        rule: usize,
        /// Argument word index.
        arg: u8,
    },
    /// An argument breaks a rule.
    #[error("call {call}: argument {arg} = {value} breaks rule {rule} ({op:?}) of permission {permission}")]
    RuleViolated {
        /// Call index.
        call: usize,
        /// Permission index.
        permission: usize,
        /// Rule index.
        rule: usize,
        /// Argument word index.
        arg: u8,
        /// The rule's op.
        op: RuleOp,
        /// The argument's value.
        value: U256,
    },
    /// A permission's calls are used up.
    #[error("permission {permission} of session {id} has used all {max_uses} of its calls")]
    PermissionUsesExhausted {
        /// Session id.
        id: B256,
        /// Permission index.
        permission: usize,
        /// Its limit.
        max_uses: u16,
    },
    /// An ERC-20 call on a limited token has no amount word.
    #[error("call {call} is an ERC-20 transfer or approval without an amount")]
    TokenAmountMissing {
        /// Call index.
        call: usize,
    },
    /// `claimed_time` is before the session starts.
    #[error("claimed time {claimed_time} is before the session starts at {valid_after}")]
    ClaimedTimeBeforeSession {
        /// The claimed time.
        claimed_time: u64,
        /// The session start.
        valid_after: u64,
    },
    /// The operation claims a period that has passed.
    #[error("limit {limit} is in period {stored}; the operation claims period {period}")]
    PeriodElapsed {
        /// Limit index.
        limit: usize,
        /// Claimed period.
        period: u64,
        /// Current period on chain.
        stored: u64,
    },
    /// A limit would be exceeded.
    #[error("limit {limit}: {spent} spent of {cap}, this operation adds {amount}")]
    LimitExceeded {
        /// Limit index.
        limit: usize,
        /// Already spent (this period).
        spent: u128,
        /// This operation's amount (saturated at u256 max).
        amount: U256,
        /// The cap.
        cap: u128,
    },
    /// The operation is outside its validity window at `now` (the EntryPoint's AA22).
    #[error("valid from {valid_after} to {valid_until}, but it is {now}")]
    OutsideWindow {
        /// Window start.
        valid_after: u64,
        /// Window end (inclusive).
        valid_until: u64,
        /// The time checked.
        now: u64,
    },
}

impl Refusal {
    /// The call and the permission it was checked against, for refusals about one call.
    pub fn call_permission(&self) -> Option<(usize, usize)> {
        match *self {
            Self::NoSuchPermission { call, permission, .. }
            | Self::NotPermitted { call, permission, .. }
            | Self::ValueAboveLimit { call, permission, .. }
            | Self::ArgumentMissing { call, permission, .. }
            | Self::RuleViolated { call, permission, .. } => Some((call, permission)),
            _ => None,
        }
    }
}

const ERC20_TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
const ERC20_APPROVE: [u8; 4] = [0x09, 0x5e, 0xa7, 0xb3];
const ERC20_INCREASE_ALLOWANCE: [u8; 4] = [0x39, 0x50, 0x93, 0x51];
const ERC20_TRANSFER_FROM: [u8; 4] = [0x23, 0xb8, 0x72, 0xdd];

/// The canonical EntryPoints (v0.6, v0.7, v0.8, v0.9): never a session's target (the account's
/// deposit and stake live there).
pub const ENTRY_POINTS: [Address; 4] = [
    alloy_primitives::address!("0x5FF137D4b0FDCD49DcA30c7CF57E578a026d2789"),
    alloy_primitives::address!("0x0000000071727De22E5E9d8BAf0edAc6f37da032"),
    alloy_primitives::address!("0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108"),
    alloy_primitives::address!("0x433709009B8330FDa32311DF1C2AFA402eD8D009"),
];

/// How long an operation may wait, once built, before a block includes it: 12 seconds, one
/// Ethereum slot (a block on most chains, several on fast ones). Pre-flight judges an operation
/// at every moment it may be included — from now (the earliest block) to now plus this margin —
/// as bundlers refuse operations that expire within a few seconds: an operation whose session
/// ends, or whose allowance period turns, before then is refused before sending instead of
/// reverting a shared `handleOps` with `AA22 expired or not due`.
pub const INCLUSION_MARGIN: u64 = 12;

/// Judges an operation for inclusion at any time from `now` to `now` + [`INCLUSION_MARGIN`]:
/// `judge(claimed_time)` evaluates it claiming `claimed_time` at the latest of those times
/// (`Request::now`); its window must also have begun by `now`. It claims the period current
/// now, which for an accepted operation is the period current at inclusion too; when that
/// period ends before inclusion, the period current at inclusion begins after now, and the
/// operation is refused as not due until it begins (no claim fits every block that may include
/// it). An operation whose session ends before inclusion is refused as expired.
pub fn judge_for_inclusion<T>(
    session: &Session,
    now: u64,
    judge: impl Fn(u64) -> Result<(T, Verdict), Refusal>,
) -> Result<(T, Verdict), Refusal> {
    let (value, verdict) = match judge(now) {
        Err(Refusal::OutsideWindow { valid_until, now: at, .. })
            if at > valid_until && valid_until < session.valid_until =>
        {
            judge(now.saturating_add(INCLUSION_MARGIN))?
        }
        judged => judged?,
    };
    if verdict.valid_after > now {
        return Err(Refusal::OutsideWindow { valid_after: verdict.valid_after, valid_until: verdict.valid_until, now });
    }
    Ok((value, verdict))
}

/// Evaluates `request` against `session` with `counters`, as the EntryPoint and the validator
/// would. Checks first that the session encodes as the validator requires; to evaluate several
/// operations of one session, bind it once with [`Evaluator::new`].
pub fn evaluate(session: &Session, counters: &Counters, request: &Request<'_>) -> Result<Verdict, Refusal> {
    Evaluator::new(session)?.evaluate(counters, request)
}

/// A session bound for evaluation: checked once to encode as the validator requires (which the
/// evaluation relies on: at most [`MAX_LIMITS`] limits, counted permissions among the first
/// [`MAX_COUNTED_PERMISSIONS`]), with its id computed at most once, when a refusal first names
/// it: an accepted operation never needs it, and hashing the session costs more than
/// evaluating most operations.
#[derive(Debug, Clone)]
pub struct Evaluator<'s> {
    session: &'s Session,
    /// The packed session: its id is `keccak256` of it.
    packed: Bytes,
    id: OnceLock<B256>,
}

/// What an operation's checks before its calls leave: the counters they move (state, uses,
/// fees spent, limits sized to the session's) and the operation's maximum cost. The same for
/// every prefix of the calls.
struct Opening {
    next: Counters,
    fee: U256,
}

/// What the calls so far have used: each counted permission's uses and each limit's spend.
#[derive(Clone, Copy)]
struct Tally {
    uses: [u32; MAX_COUNTED_PERMISSIONS],
    spend: [U256; MAX_LIMITS],
}

/// What the checks after the calls conclude: the window, and the limit words and fees spent
/// once the operation is validated.
#[derive(Clone, Copy)]
struct Settlement {
    valid_after: u64,
    valid_until: u64,
    limits: [(u128, u64); MAX_LIMITS],
    fees_spent: u128,
}

impl<'s> Evaluator<'s> {
    /// Binds `session`, refusing it if it does not encode as the validator requires.
    pub fn new(session: &'s Session) -> Result<Self, crate::Error> {
        Ok(Self { packed: session.encode()?, session, id: OnceLock::new() })
    }

    /// The session.
    pub fn session(&self) -> &'s Session {
        self.session
    }

    /// Its id ([`Session::id`]).
    pub fn id(&self) -> B256 {
        *self.id.get_or_init(|| keccak256(&self.packed))
    }

    /// Evaluates `request` with `counters`, as the EntryPoint and the validator would.
    pub fn evaluate(&self, counters: &Counters, request: &Request<'_>) -> Result<Verdict, Refusal> {
        let opening = self.open(counters, request)?;
        let mut tally = Tally::of(&opening.next);
        let indices = request.indices;
        execution::visit(
            request.call_data,
            |calls| {
                if calls == indices.len() {
                    Ok(())
                } else {
                    Err(Refusal::CallCountMismatch { calls, indices: indices.len() })
                }
            },
            |i, call| self.check_call(request, &mut tally, i, usize::from(indices[i]), &call),
        )?;
        let settlement = self.settle(&opening, &tally, request)?;
        Ok(verdict(opening, &tally, &settlement))
    }

    /// The checks before the calls, in the validator's order: gas values, installation, state,
    /// epoch, enabling, the session's uses.
    fn open(&self, counters: &Counters, request: &Request<'_>) -> Result<Opening, Refusal> {
        let session = self.session;
        let id = || self.id();
        request.gas.check()?;
        if !counters.installed {
            return Err(Refusal::NotInstalled(request.account));
        }
        let mut next = counters.clone();
        next.limits.resize(session.limits.len(), (0, 0));
        // The same order in both modes: revoked, then the epoch (a revoke-all or reinstall since
        // the grant), then whether the session is enabled already.
        if counters.state == SessionState::Revoked {
            return Err(Refusal::Revoked(id()));
        }
        if session.epoch != counters.account_epoch {
            return Err(Refusal::EpochMismatch {
                id: id(),
                session_epoch: session.epoch,
                account_epoch: counters.account_epoch,
            });
        }
        match (request.enable, counters.state) {
            (true, SessionState::Enabled) => return Err(Refusal::AlreadyEnabled(id())),
            // Enabling writes a fresh state word (uses and fees spent 0); limit words are not
            // touched (a session never enabled has never spent from them).
            (true, _) => {
                next.state = SessionState::Enabled;
                next.session_uses = 0;
                next.permission_uses = [0; MAX_COUNTED_PERMISSIONS];
                next.fees_spent = 0;
            }
            (false, SessionState::None) => return Err(Refusal::NotEnabled(id())),
            (false, _) => {}
        }

        if session.max_uses != 0 {
            if next.session_uses >= session.max_uses {
                return Err(Refusal::SessionUsesExhausted { id: id(), max_uses: session.max_uses });
            }
            next.session_uses += 1;
        }
        Ok(Opening { fee: request.gas.max_cost(), next })
    }

    /// Call `i` under permission `k`, after the calls `tally` counts.
    fn check_call(
        &self,
        request: &Request<'_>,
        tally: &mut Tally,
        i: usize,
        k: usize,
        call: &CallRef<'_>,
    ) -> Result<(), Refusal> {
        let session = self.session;
        if call.target == request.account || call.target == request.validator || ENTRY_POINTS.contains(&call.target) {
            return Err(Refusal::ForbiddenTarget { call: i, target: call.target });
        }
        let Some(p) = session.permissions.get(k) else {
            return Err(Refusal::NoSuchPermission { call: i, permission: k, count: session.permissions.len() });
        };
        let data = call.data;
        let mut selector = [0u8; 4];
        let n = data.len().min(4);
        selector[..n].copy_from_slice(&data[..n]);
        let matches = call.target == p.target
            && if p.selector == FixedBytes::ZERO {
                data.is_empty()
            } else {
                data.len() >= 4 && selector == p.selector.0
            };
        if !matches {
            return Err(Refusal::NotPermitted {
                call: i,
                permission: k,
                target: call.target,
                selector: selector.into(),
            });
        }
        if call.value > U256::from(p.value_limit) {
            return Err(Refusal::ValueAboveLimit { call: i, permission: k, value: call.value, limit: p.value_limit });
        }
        for (j, rule) in p.rules.iter().enumerate() {
            let pos = 4 + 32 * usize::from(rule.arg);
            if data.len() < pos + 32 {
                return Err(Refusal::ArgumentMissing { call: i, permission: k, rule: j, arg: rule.arg });
            }
            let x = U256::from_be_slice(&data[pos..pos + 32]);
            let v = |n: usize| U256::from_be_bytes(rule.values[n].0);
            let ok = match rule.op {
                RuleOp::Eq => x == v(0),
                RuleOp::Ne => x != v(0),
                RuleOp::Gt => x > v(0),
                RuleOp::Gte => x >= v(0),
                RuleOp::Lt => x < v(0),
                RuleOp::Lte => x <= v(0),
                RuleOp::InRange => v(0) <= x && x <= v(1),
                RuleOp::OneOf => rule.values.iter().any(|w| U256::from_be_bytes(w.0) == x),
                RuleOp::SelfAccount => x == U256::from_be_bytes(request.account.into_word().0),
            };
            if !ok {
                return Err(Refusal::RuleViolated {
                    call: i,
                    permission: k,
                    rule: j,
                    arg: rule.arg,
                    op: rule.op,
                    value: x,
                });
            }
        }
        if p.max_uses != 0 {
            // Only permissions 0..8 count their uses (the session encodes).
            let uses = &mut tally.uses[k];
            if *uses >= u32::from(p.max_uses) {
                return Err(Refusal::PermissionUsesExhausted { id: self.id(), permission: k, max_uses: p.max_uses });
            }
            *uses += 1;
        }
        for (l, limit) in session.limits.iter().enumerate() {
            let amount = match limit.kind {
                LimitKind::Native => call.value,
                LimitKind::Erc20 if call.target == limit.token => token_amount(i, data)?,
                LimitKind::Erc20 | LimitKind::Fees => U256::ZERO,
            };
            tally.spend[l] = tally.spend[l].saturating_add(amount);
        }
        Ok(())
    }

    /// The checks after the calls, in the validator's order: the limits (the calls' spend, the
    /// fee for a fee limit), the paymaster or the fee budget, then the EntryPoint's time check.
    fn settle(&self, opening: &Opening, tally: &Tally, request: &Request<'_>) -> Result<Settlement, Refusal> {
        let (session, next, fee) = (self.session, &opening.next, opening.fee);
        let mut limits = [(0, 0); MAX_LIMITS];
        limits[..next.limits.len()].copy_from_slice(&next.limits);
        let mut valid_after = session.valid_after;
        let mut valid_until = session.valid_until;
        for (l, limit) in session.limits.iter().enumerate() {
            let amount = if limit.kind == LimitKind::Fees { fee } else { tally.spend[l] };
            if amount.is_zero() {
                continue;
            }
            let (stored_spent, stored_period) = next.limits[l];
            let mut spent = stored_spent;
            let mut period = 0;
            if let Some(length) = NonZeroU64::new(limit.period) {
                if request.claimed_time < session.valid_after {
                    return Err(Refusal::ClaimedTimeBeforeSession {
                        claimed_time: request.claimed_time,
                        valid_after: session.valid_after,
                    });
                }
                period = (request.claimed_time - session.valid_after) / length;
                if period < stored_period {
                    return Err(Refusal::PeriodElapsed { limit: l, period, stored: stored_period });
                }
                if period > stored_period {
                    spent = 0;
                }
                let start = session.valid_after + period * limit.period;
                let end = start + limit.period - 1;
                valid_after = valid_after.max(start);
                valid_until = valid_until.min(end);
            }
            let cap = U256::from(limit.amount);
            if amount > cap || U256::from(spent) > cap - amount {
                return Err(Refusal::LimitExceeded { limit: l, spent, amount, cap: limit.amount });
            }
            limits[l] = (spent + amount.to::<u128>(), period);
        }

        let mut fees_spent = next.fees_spent;
        match request.gas.paymaster() {
            Some(paymaster) => {
                if !session.paymasters.is_empty() && !session.paymasters.contains(&paymaster) {
                    return Err(Refusal::PaymasterNotAllowed(paymaster));
                }
            }
            None if fee.is_zero() => {}
            None => {
                let (spent, budget) = (fees_spent, session.fee_budget);
                if spent > budget || fee > U256::from(budget - spent) {
                    if budget == 0 {
                        return Err(Refusal::PaymasterRequired(self.id()));
                    }
                    return Err(Refusal::FeeBudgetExceeded { spent, fee, budget });
                }
                fees_spent = spent + fee.to::<u128>();
            }
        }

        if request.now < valid_after || request.now > valid_until {
            return Err(Refusal::OutsideWindow { valid_after, valid_until, now: request.now });
        }
        Ok(Settlement { valid_after, valid_until, limits, fees_spent })
    }

    /// Picks a permission for each call of `request` (its `indices` are ignored) such that the
    /// validator accepts them all, whenever there is such an assignment (within
    /// [`ASSIGNMENT_BUDGET`] trials): a depth-first search over the calls, each call trying the
    /// permissions without a use count first — a call that fits an uncounted permission does
    /// not spend a use a later call may need — then the counted ones, in their order, and going
    /// back to an earlier call when a later one fits nothing. Returns the indices and the
    /// verdict; or, when there is no assignment, the most telling refusal, as the first-fit
    /// assignment sees it: at the first call that fits no permission, that of the first
    /// permission naming the call's target and function, else that of permission 0.
    ///
    /// A trial judges the calls so far as the operation they would make on their own (what
    /// [`Evaluator::evaluate`] says of their batch), but incrementally: the checks before the
    /// calls once, each call once per permission tried, on the uses and spend of the calls
    /// before it, and the checks after the calls on their sum.
    pub fn assign_permissions(
        &self,
        counters: &Counters,
        request: &Request<'_>,
    ) -> Result<(Vec<u8>, Verdict), Refusal> {
        // One allocation: a batch holds at most MAX_BATCH_CALLS calls.
        let mut calls = Vec::with_capacity(execution::MAX_BATCH_CALLS);
        execution::visit::<crate::Error>(
            request.call_data,
            |_| Ok(()),
            |_, call| {
                calls.push(call);
                Ok(())
            },
        )?;
        // At most MAX_PERMISSIONS (the session encodes).
        let count = self.session.permissions.len();
        let mut order = [0u8; MAX_PERMISSIONS];
        for (p, slot) in order.iter_mut().enumerate() {
            *slot = p as u8;
        }
        let order = &mut order[..count];
        order.sort_by_key(|&p| self.session.permissions[usize::from(p)].max_uses != 0);
        let mut trials = Trials {
            evaluator: self,
            request,
            calls: &calls,
            opening: self.open(counters, request),
            budget: ASSIGNMENT_BUDGET,
        };
        let mut indices = Vec::with_capacity(trials.calls.len());
        // When the checks before the calls refuse, every trial does: first-fit returns the refusal.
        let start = trials.opening.as_ref().ok().map(|opening| Tally::of(&opening.next));
        let found = start.and_then(|start| trials.search(order, &mut indices, &start));
        let (tally, settlement) = match found {
            Some(last) => last,
            // None found (or the budget ran out): first-fit's answer, and its refusal.
            None => trials.first_fit(count, &mut indices)?,
        };
        // Found: every trial met the checks before the calls.
        Ok((indices, verdict(trials.opening?, &tally, &settlement)))
    }
}

impl Tally {
    fn of(next: &Counters) -> Self {
        Self { uses: next.permission_uses, spend: [U256::ZERO; MAX_LIMITS] }
    }
}

/// The counters once an operation is validated.
fn verdict(opening: Opening, tally: &Tally, settlement: &Settlement) -> Verdict {
    let mut counters = opening.next;
    counters.permission_uses = tally.uses;
    let limits = counters.limits.len();
    counters.limits.copy_from_slice(&settlement.limits[..limits]);
    counters.fees_spent = settlement.fees_spent;
    Verdict { valid_after: settlement.valid_after, valid_until: settlement.valid_until, counters }
}

/// The spending power of an ERC-20 call: the amount of transfer, approve, increaseAllowance
/// (word 1) and transferFrom (word 2).
fn token_amount(i: usize, data: &[u8]) -> Result<U256, Refusal> {
    if data.len() < 4 {
        return Ok(U256::ZERO);
    }
    let selector: [u8; 4] = [data[0], data[1], data[2], data[3]];
    let pos = match selector {
        ERC20_TRANSFER | ERC20_APPROVE | ERC20_INCREASE_ALLOWANCE => 36,
        ERC20_TRANSFER_FROM => 68,
        _ => return Ok(U256::ZERO),
    };
    if data.len() < pos + 32 {
        return Err(Refusal::TokenAmountMissing { call: i });
    }
    Ok(U256::from_be_slice(&data[pos..pos + 32]))
}

/// How many permission trials [`assign_permissions`] makes at most before it gives up looking
/// for an assignment (each trial is one call under one permission, after the calls before it).
pub const ASSIGNMENT_BUDGET: usize = 4_096;

/// See [`Evaluator::assign_permissions`]; binds `session` first.
pub fn assign_permissions(
    session: &Session,
    counters: &Counters,
    request: &Request<'_>,
) -> Result<(Vec<u8>, Verdict), Refusal> {
    let evaluator = match Evaluator::new(session) {
        Ok(evaluator) => evaluator,
        // The calldata's refusal first, as every trial would see it before the session's.
        Err(e) => {
            execution::Execution::decode(request.call_data)?;
            return Err(e.into());
        }
    };
    evaluator.assign_permissions(counters, request)
}

/// The trials of [`Evaluator::assign_permissions`]: call `i` under permission `p`, after calls
/// `0..i` under theirs, judged as the operation of calls `0..=i` alone.
struct Trials<'a, 'r> {
    evaluator: &'a Evaluator<'a>,
    request: &'a Request<'r>,
    calls: &'a [CallRef<'r>],
    /// The checks before the calls: the same for every trial.
    opening: Result<Opening, Refusal>,
    budget: usize,
}

impl Trials<'_, '_> {
    /// Whether the operation of calls `0..=i`, call `i` under permission `p` and the calls
    /// before it as `before` counts them, is accepted, and with what.
    fn trial(&self, i: usize, p: u8, before: &Tally) -> Result<(Tally, Settlement), Refusal> {
        let opening = self.opening.as_ref().map_err(Clone::clone)?;
        let mut tally = *before;
        self.evaluator.check_call(self.request, &mut tally, i, usize::from(p), &self.calls[i])?;
        let settlement = self.evaluator.settle(opening, &tally, self.request)?;
        Ok((tally, settlement))
    }

    /// Extends `indices` (the calls before `indices.len()` assigned, counted by `before`) to
    /// every call, returning the last trial's tally and settlement; `None`, with `indices` as
    /// it was, when no extension is accepted within the budget.
    fn search(&mut self, order: &[u8], indices: &mut Vec<u8>, before: &Tally) -> Option<(Tally, Settlement)> {
        let i = indices.len();
        for &p in order {
            if self.budget == 0 {
                return None;
            }
            self.budget -= 1;
            let Ok(after) = self.trial(i, p, before) else { continue };
            indices.push(p);
            if i + 1 == self.calls.len() {
                return Some(after);
            }
            if let Some(last) = self.search(order, indices, &after.0) {
                return Some(last);
            }
            indices.pop();
        }
        None
    }

    /// The first-fit assignment (each call the first of the `count` permissions that accepts
    /// the calls so far) into `indices`, or its refusal at the first call that fits nothing.
    fn first_fit(&self, count: usize, indices: &mut Vec<u8>) -> Result<(Tally, Settlement), Refusal> {
        // Every trial meets the checks before the calls first (and there is a permission).
        let opening = self.opening.as_ref().map_err(Clone::clone)?;
        let mut before = Tally::of(&opening.next);
        let mut last = None;
        for i in 0..self.calls.len() {
            let mut best: Option<Refusal> = None;
            let mut chosen = None;
            for p in 0..count {
                match self.trial(i, p as u8, &before) {
                    Ok(after) => {
                        chosen = Some((p as u8, after));
                        break;
                    }
                    Err(refusal) => {
                        let names_call = !matches!(refusal, Refusal::NotPermitted { call, .. } if call == i);
                        if best.is_none() || (names_call && matches!(best, Some(Refusal::NotPermitted { .. }))) {
                            best = Some(refusal);
                        }
                    }
                }
            }
            match chosen {
                Some((p, after)) => {
                    indices.push(p);
                    before = after.0;
                    last = Some(after);
                }
                None => return Err(best.unwrap_or(Refusal::NoSuchPermission { call: i, permission: 0, count: 0 })),
            }
        }
        // The calldata decoded: there was a call.
        last.ok_or(Refusal::Execution(crate::Error::CallCount(0)))
    }
}
