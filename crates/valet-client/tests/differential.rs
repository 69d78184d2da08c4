//! Differential test: the evaluator (valet-core) and the deployed validator agree on random
//! (session, calls, gas and fee fields, paymaster, time, counters, epoch, installation) cases.
//! Each case asks the validator with one `eth_call` of `validateUserOp` from the account, its
//! storage (session word, limit words, account word) set by a state override, and compares: the
//! same acceptance and validity window, or the same refusal, byte for byte. A fifth of the cases
//! enable the session with a real owner grant (mode 1).
//!
//! `VALET_DIFF_CASES` (default 50,000) and `VALET_DIFF_SEED` (printed; a fixed one by default,
//! `random` for a new one) replay a run; each case draws from its own generator (seed, case), so
//! a failure names the one case to replay (`VALET_DIFF_CASE=N`).

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, FixedBytes, U256, aliases::U48, keccak256};
use alloy::providers::DynProvider;
use alloy::rpc::types::state::{AccountOverride, StateOverride};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolError;
use valet_client::contracts::SessionKeyValidator as V;
use valet_client::{Devnet, Error};
use valet_core::session::MAX_FEE_BUDGET;
use valet_core::{
    Call, Counters, Execution, Limit, LimitKind, OpGas, Permission, Refusal, Request, Rule, RuleOp, Session,
    SessionState, eip712, evaluate, signature,
};

struct Rng(u64);

impl Rng {
    /// The generator of case `case` under `seed` (SplitMix64 of both, then xorshift).
    fn of(seed: u64, case: u64) -> Self {
        let mut z = seed ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const SELECTORS: [[u8; 4]; 4] =
    [[0, 0, 0, 0], [0xa9, 0x05, 0x9c, 0xbb], [0x09, 0x5e, 0xa7, 0xb3], [0x11, 0x11, 0x11, 0x11]];
const GWEI: u128 = 1_000_000_000;
const PAYMASTERS: [Address; 2] = [Address::repeat_byte(0x91), Address::repeat_byte(0x92)];

/// What stays the same for every case.
struct Fixture {
    provider: DynProvider,
    validator: Address,
    chain_id: u64,
    targets: [Address; 3],
    key: PrivateKeySigner,
    owner: PrivateKeySigner,
}

fn random_session(r: &mut Rng, f: &Fixture, epoch: u64) -> Session {
    // Windows from second 1 with 1-second periods probe the edges of the EntryPoint's time check.
    let valid_after = if r.chance(10) { 1 } else { 1_000 };
    let valid_until = valid_after + 10 + r.below(1_000);
    let period = |r: &mut Rng| r.pick(&[0, 0, 100, 1]);
    let mut limits = Vec::new();
    for _ in 0..r.below(3) {
        limits.push(match r.below(3) {
            0 => Limit { kind: LimitKind::Native, token: Address::ZERO, amount: r.below(60).into(), period: period(r) },
            1 => Limit {
                kind: LimitKind::Erc20,
                token: r.pick(&f.targets),
                amount: r.below(60).into(),
                period: period(r),
            },
            _ => Limit {
                kind: LimitKind::Fees,
                token: Address::ZERO,
                amount: r.pick(&[0u128, 10u128.pow(15), 10u128.pow(16)]),
                period: period(r),
            },
        });
    }
    let limited: Vec<Address> = limits.iter().filter(|l| l.kind == LimitKind::Erc20).map(|l| l.token).collect();
    let mut permissions = Vec::new();
    for _ in 0..1 + r.below(3) {
        let mut rules = Vec::new();
        for _ in 0..r.below(3) {
            let op = RuleOp::from_code(r.below(9) as u8).expect("0..8");
            let v = |r: &mut Rng| B256::from(U256::from(r.below(20)));
            let values = match op {
                RuleOp::SelfAccount => vec![],
                RuleOp::InRange => {
                    let (a, b) = (v(r), v(r));
                    vec![a.min(b), a.max(b)]
                }
                RuleOp::OneOf => (0..1 + r.below(4)).map(|_| v(r)).collect(),
                _ => vec![v(r)],
            };
            rules.push(Rule { arg: r.below(3) as u8, op, values });
        }
        let target = r.pick(&f.targets);
        // A limited token may only be called with a function its limit counts.
        let selector = if limited.contains(&target) { r.pick(&SELECTORS[1..3]) } else { r.pick(&SELECTORS) };
        // Rules on a plain transfer (no calldata) can only fail: keep most of them away.
        if selector == [0, 0, 0, 0] && r.chance(80) {
            rules.clear();
        }
        permissions.push(Permission {
            target,
            selector: FixedBytes::new(selector),
            value_limit: r.pick(&[0u128, 100, 10u128.pow(18)]),
            max_uses: r.pick(&[0, 1, 2, 3]),
            rules,
        });
    }
    let paymasters = match r.below(4) {
        0 => vec![PAYMASTERS[0]],
        1 => PAYMASTERS.to_vec(),
        _ => vec![],
    };
    Session {
        session_key: f.key.address(),
        valid_after,
        valid_until,
        epoch,
        salt: r.next() as u32,
        max_uses: r.pick(&[0, 2]),
        fee_budget: r.pick(&[0, 10u128.pow(15), 10u128.pow(17), 10u128.pow(18), MAX_FEE_BUDGET, MAX_FEE_BUDGET]),
        paymasters,
        limits,
        permissions,
    }
}

fn random_calls(r: &mut Rng, s: &Session, account: Address, targets: &[Address]) -> (Bytes, Vec<u8>) {
    let n = 1 + r.below(3) as usize;
    let mut calls = Vec::new();
    let mut indices = Vec::new();
    for _ in 0..n {
        let k = if r.chance(92) { r.below(s.permissions.len() as u64) } else { r.below(5) } as usize;
        let p = s.permissions.get(k).unwrap_or(&s.permissions[0]);
        let target = if r.chance(95) {
            p.target
        } else {
            r.pick(&[targets[0], account, targets[2], valet_core::ENTRY_POINT_V07])
        };
        let mut data = Vec::new();
        if !(p.selector == FixedBytes::ZERO && r.chance(80)) {
            data.extend_from_slice(if r.chance(95) { p.selector.as_slice() } else { &[0x22, 0x22, 0x22, 0x22] });
            let words = if r.chance(90) { 3 } else { r.below(4) };
            for arg in 0..words {
                // Mostly a value that satisfies the permission's rule on this argument, so that
                // accepting paths are exercised as much as refusing ones.
                let rule = p.rules.iter().find(|rule| u64::from(rule.arg) == arg);
                let word = match rule {
                    Some(rule) if r.chance(80) => satisfying(rule, account),
                    _ if r.chance(15) => account.into_word(),
                    _ => B256::from(U256::from(r.below(25))),
                };
                data.extend_from_slice(word.as_slice());
            }
            if r.chance(5) {
                data.truncate(r.below(data.len() as u64 + 1) as usize);
            }
        }
        let value = if r.chance(90) { U256::ZERO } else { U256::from(r.pick(&[30u128, 10u128.pow(18) + 1])) };
        calls.push(Call { target, value, data: data.into() });
        indices.push(k as u8);
    }
    if r.chance(5) {
        indices.push(0);
    }
    let execution = if n == 1 && r.chance(60) { Execution::Single(calls.remove(0)) } else { Execution::Batch(calls) };
    (execution.encode(), indices)
}

/// A word the rule accepts (for LT 0 there is none: it gets 0, which the rule refuses).
fn satisfying(rule: &Rule, account: Address) -> B256 {
    let v0 = rule.values.first().map(|v| U256::from_be_bytes(v.0)).unwrap_or_default();
    let x = match rule.op {
        RuleOp::Eq | RuleOp::Gte | RuleOp::Lte | RuleOp::InRange | RuleOp::OneOf => v0,
        RuleOp::Ne | RuleOp::Gt => v0 + U256::from(1),
        RuleOp::Lt => v0.saturating_sub(U256::from(1)),
        RuleOp::SelfAccount => return account.into_word(),
    };
    B256::from(x)
}

fn pack128(high: u128, low: u128) -> B256 {
    let mut w = [0u8; 32];
    w[..16].copy_from_slice(&high.to_be_bytes());
    w[16..].copy_from_slice(&low.to_be_bytes());
    B256::from(w)
}

/// Gas limits, fees and a paymaster, as an attacker might set them: mostly ordinary, sometimes
/// enormous (within the EntryPoint's 2^120 bound), sometimes free, sometimes through a paymaster
/// the session lists or not, or naming the zero paymaster with gas limits (the account pays).
fn random_gas(r: &mut Rng) -> OpGas {
    let gas = |r: &mut Rng| match r.below(10) {
        0 => 0,
        1 => u128::from(r.below(1 << 40)),
        _ => u128::from(20_000 + r.below(2_000_000)),
    };
    let max_fee = match r.below(10) {
        0 => 0,
        1 => 8_000 * GWEI,
        2 => 1,
        _ => u128::from(r.below(100)) * GWEI / 10,
    };
    let paymaster_and_data = match r.below(10) {
        0..=5 => Bytes::new(),
        6 | 7 => {
            let p = r.pick(&PAYMASTERS);
            [p.as_slice(), &gas(r).to_be_bytes(), &gas(r).to_be_bytes(), &[0xc0, 0xff, 0xee]].concat().into()
        }
        8 => [Address::repeat_byte(0x93).as_slice(), &gas(r).to_be_bytes(), &gas(r).to_be_bytes()].concat().into(),
        _ => [Address::ZERO.as_slice(), &gas(r).to_be_bytes(), &gas(r).to_be_bytes()].concat().into(),
    };
    OpGas {
        account_gas_limits: pack128(gas(r), gas(r)),
        pre_verification_gas: U256::from(gas(r)),
        gas_fees: pack128(u128::from(r.below(3)) * GWEI, max_fee),
        paymaster_and_data,
    }
}

fn random_counters(r: &mut Rng, s: &Session, account_epoch: u64, enable: bool) -> Counters {
    let state = match (enable, r.below(20)) {
        (true, 0) => SessionState::Enabled,
        (true, 1) => SessionState::Revoked,
        (true, _) => SessionState::None,
        (false, 0) => SessionState::None,
        (false, 1) => SessionState::Revoked,
        (false, _) => SessionState::Enabled,
    };
    let mut permission_uses = [0u32; 9];
    for u in &mut permission_uses {
        *u = if r.chance(25) { 1 } else { 0 };
    }
    let fees_spent = match r.below(8) {
        0 => s.fee_budget.saturating_sub(u128::from(r.below(1_000_000)) * GWEI),
        1 => s.fee_budget.saturating_add(1).min(MAX_FEE_BUDGET),
        2 | 3 => u128::from(r.below(1_000_000)) * GWEI,
        _ => 0,
    }
    .min(MAX_FEE_BUDGET);
    Counters {
        state,
        session_uses: r.below(2) as u32,
        permission_uses,
        limits: s
            .limits
            .iter()
            .map(|l| match l.kind {
                LimitKind::Fees => (r.pick(&[0u128, 10u128.pow(14), 10u128.pow(16)]), r.below(3)),
                _ => (u128::from(r.below(60)), r.below(3)),
            })
            .collect(),
        fees_spent,
        installed: r.chance(97),
        account_epoch,
    }
}

/// `keccak256(abi.encode(key, mapping slot))`, then keyed by `account`: the validator's
/// `mapping(bytes32 => mapping(address => uint256))` at `mapping`.
fn slot(account: Address, key: B256, mapping: u64) -> B256 {
    let inner = keccak256([key.0, U256::from(mapping).to_be_bytes()].concat());
    keccak256([account.into_word().0, inner.0].concat())
}

/// The validator's revert data for a refusal.
fn expected_revert(refusal: &Refusal, id: B256, account: Address) -> Vec<u8> {
    let u = |x: usize| U256::from(x);
    match refusal.clone() {
        Refusal::Revoked(_) => V::SessionIsRevoked { sessionId: id }.abi_encode(),
        Refusal::NotEnabled(_) => V::SessionNotEnabled { sessionId: id }.abi_encode(),
        Refusal::AlreadyEnabled(_) => V::SessionAlreadyEnabled { sessionId: id }.abi_encode(),
        Refusal::NotInstalled(_) => V::NotInstalled { account }.abi_encode(),
        Refusal::EpochMismatch { session_epoch, account_epoch, .. } => {
            V::SessionEpochMismatch { sessionId: id, sessionEpoch: session_epoch, accountEpoch: account_epoch }
                .abi_encode()
        }
        Refusal::SessionUsesExhausted { max_uses, .. } => {
            V::SessionUsesExhausted { sessionId: id, maxUses: U256::from(max_uses) }.abi_encode()
        }
        Refusal::Execution(valet_core::Error::UnsupportedAccountFunction(selector)) => {
            V::UnsupportedAccountFunction { selector }.abi_encode()
        }
        Refusal::Execution(valet_core::Error::UnsupportedExecutionMode(mode)) => {
            V::UnsupportedExecutionMode { mode }.abi_encode()
        }
        Refusal::Execution(valet_core::Error::NonCanonicalExecution { what, offset }) => {
            V::NonCanonicalExecution { what: what.into(), offset: u(offset) }.abi_encode()
        }
        Refusal::CallCountMismatch { calls, indices } => {
            V::CallCountMismatch { calls: u(calls), indices: u(indices) }.abi_encode()
        }
        Refusal::ForbiddenTarget { call, target } => V::ForbiddenTarget { callIndex: u(call), target }.abi_encode(),
        Refusal::NoSuchPermission { call, permission, count } => {
            V::PermissionIndexOutOfRange { callIndex: u(call), permissionIndex: u(permission), count: u(count) }
                .abi_encode()
        }
        Refusal::NotPermitted { call, permission, target, selector } => {
            V::CallNotPermitted { callIndex: u(call), permissionIndex: u(permission), target, selector }.abi_encode()
        }
        Refusal::ValueAboveLimit { call, permission, value, limit } => V::ValueLimitExceeded {
            callIndex: u(call),
            permissionIndex: u(permission),
            value,
            valueLimit: U256::from(limit),
        }
        .abi_encode(),
        Refusal::ArgumentMissing { call, permission, rule, arg } => V::ArgumentMissing {
            callIndex: u(call),
            permissionIndex: u(permission),
            ruleIndex: u(rule),
            argIndex: U256::from(arg),
        }
        .abi_encode(),
        Refusal::RuleViolated { call, permission, rule, arg, value, .. } => V::RuleViolated {
            callIndex: u(call),
            permissionIndex: u(permission),
            ruleIndex: u(rule),
            argIndex: U256::from(arg),
            value,
        }
        .abi_encode(),
        Refusal::PermissionUsesExhausted { permission, max_uses, .. } => {
            V::PermissionUsesExhausted { sessionId: id, permissionIndex: u(permission), maxUses: U256::from(max_uses) }
                .abi_encode()
        }
        Refusal::TokenAmountMissing { call } => V::TokenAmountMissing { callIndex: u(call) }.abi_encode(),
        Refusal::ClaimedTimeBeforeSession { claimed_time, valid_after } => {
            V::ClaimedTimeBeforeSession { claimedTime: U48::from(claimed_time), validAfter: U48::from(valid_after) }
                .abi_encode()
        }
        Refusal::PeriodElapsed { limit, period, stored } => V::PeriodElapsed {
            sessionId: id,
            limitIndex: u(limit),
            period: U256::from(period),
            storedPeriod: U256::from(stored),
        }
        .abi_encode(),
        Refusal::LimitExceeded { limit, spent, amount, cap } => V::LimitExceeded {
            sessionId: id,
            limitIndex: u(limit),
            spent: U256::from(spent),
            amount,
            limit: U256::from(cap),
        }
        .abi_encode(),
        Refusal::PaymasterRequired(_) => V::PaymasterRequired { sessionId: id }.abi_encode(),
        Refusal::FeeBudgetExceeded { spent, fee, budget } => {
            V::FeeBudgetExceeded { sessionId: id, spent: U256::from(spent), fee, budget: U256::from(budget) }
                .abi_encode()
        }
        Refusal::PaymasterNotAllowed(paymaster) => V::PaymasterNotAllowed { sessionId: id, paymaster }.abi_encode(),
        other => panic!("not a validator refusal: {other}"),
    }
}

/// (validAfter, validUntil) from validationData.
fn window(data: U256) -> (u64, u64) {
    let after: U256 = data >> 208usize;
    let until: U256 = (data >> 160usize) & U256::from((1u64 << 48) - 1);
    (after.to::<u64>(), until.to::<u64>())
}

/// What one case came to: accepted, or refused (with the refusal's name).
enum Outcome {
    Accepted,
    Refused(String),
}

/// Runs case `case`; `Err` describes a disagreement (with what it takes to replay it).
async fn run_case(f: &Fixture, seed: u64, case: u64) -> Result<Outcome, String> {
    let r = &mut Rng::of(seed, case);
    let account = Address::from_word(keccak256(case.to_be_bytes()));
    let account_epoch = if r.chance(50) { 0 } else { r.next() };
    let epoch = if r.chance(95) { account_epoch } else { r.pick(&[account_epoch.wrapping_add(1), 0, u64::MAX]) };
    let session = random_session(r, f, epoch);
    let id = session.id().map_err(|e| e.to_string())?;
    let packed = session.encode().map_err(|e| e.to_string())?;
    let enable = r.chance(20);
    let counters = random_counters(r, &session, account_epoch, enable);
    let (call_data, indices) = random_calls(r, &session, account, &f.targets);
    let gas = random_gas(r);
    let claimed_time = session.valid_after - r.below(2).min(session.valid_after - 1)
        + r.below(session.valid_until - session.valid_after + 10);

    // Storage: the session word, the limit words, the account word.
    let mut word = U256::from(match counters.state {
        SessionState::None => 0u8,
        SessionState::Enabled => 1,
        SessionState::Revoked => 2,
    });
    if counters.state != SessionState::None {
        word |= U256::from(counters.session_uses) << 8;
        for (k, uses) in counters.permission_uses.iter().enumerate() {
            word |= U256::from(*uses) << (32 + 16 * k);
        }
        word |= U256::from(counters.fees_spent) << 176;
    }
    let mut diff: BTreeMap<B256, B256> = BTreeMap::new();
    diff.insert(slot(account, id, 2), B256::from(word));
    for (l, (spent, period)) in counters.limits.iter().enumerate() {
        let limit_key = keccak256([id.0, U256::from(l).to_be_bytes()].concat());
        diff.insert(slot(account, limit_key, 3), B256::from((U256::from(*period) << 128) | U256::from(*spent)));
    }
    let account_word = (U256::from(counters.installed) << 255)
        | (U256::from(account_epoch) << 160)
        | U256::from_be_slice(f.owner.address().as_slice());
    diff.insert(keccak256([account.into_word().0, U256::from(4).to_be_bytes()].concat()), B256::from(account_word));
    let overrides = StateOverride::from_iter([(
        f.validator,
        AccountOverride { state_diff: Some(diff.into_iter().collect()), ..AccountOverride::default() },
    )]);

    let user_op_hash = B256::from(U256::from(case + 1));
    let grant = if enable {
        let digest = eip712::grant_digest(&session, account, f.validator, f.chain_id).map_err(|e| e.to_string())?;
        Some(f.owner.sign_hash_sync(&digest).expect("signs").as_bytes().to_vec())
    } else {
        None
    };
    let prefix = signature::prefix(&packed, claimed_time, &indices, grant.as_deref()).map_err(|e| e.to_string())?;
    let key_sig = f
        .key
        .sign_hash_sync(&signature::key_digest(user_op_hash, id, claimed_time, &indices))
        .expect("signs")
        .as_bytes();
    let op = V::PackedUserOperation {
        sender: account,
        nonce: U256::ZERO,
        initCode: Bytes::new(),
        callData: call_data.clone(),
        accountGasLimits: gas.account_gas_limits,
        preVerificationGas: gas.pre_verification_gas,
        gasFees: gas.gas_fees,
        paymasterAndData: gas.paymaster_and_data.clone(),
        signature: [prefix.as_ref(), &key_sig].concat().into(),
    };
    let request = Request {
        account,
        validator: f.validator,
        call_data: &call_data,
        indices: &indices,
        claimed_time,
        enable,
        gas: gas.clone(),
        now: claimed_time,
    };
    let evaluated = evaluate(&session, &counters, &request);
    let validator = V::new(f.validator, &f.provider);
    let chain = validator.validateUserOp(op, user_op_hash).from(account).state(overrides).call().await;
    let replay = || {
        format!(
            "case {case} (VALET_DIFF_SEED={seed} VALET_DIFF_CASE={case}): session {session:?}, counters {counters:?}, \
             gas {gas:?}, enable {enable}, indices {indices:?}, claimed {claimed_time}, calldata {call_data}"
        )
    };
    match (evaluated, chain) {
        (Ok(verdict), Ok(data)) => {
            if data & U256::from(1) != U256::ZERO {
                return Err(format!("signature refused: {}", replay()));
            }
            if window(data) != (verdict.valid_after, verdict.valid_until) {
                return Err(format!("window {:?} vs {:?}: {}", window(data), verdict, replay()));
            }
            Ok(Outcome::Accepted)
        }
        (Err(Refusal::OutsideWindow { valid_after, valid_until, .. }), Ok(data)) => {
            if window(data) != (valid_after, valid_until) {
                return Err(format!("window {:?} vs {:?}: {}", window(data), (valid_after, valid_until), replay()));
            }
            Ok(Outcome::Accepted)
        }
        (Err(refusal), Err(e)) => {
            let data = e.as_revert_data().ok_or_else(|| format!("no revert data ({e}): {}", replay()))?;
            let expected = expected_revert(&refusal, id, account);
            if data.to_vec() != expected {
                return Err(format!("refusal {refusal} vs revert {data}: {}", replay()));
            }
            let name = format!("{refusal:?}").split(['(', ' ', '{']).next().unwrap_or("").to_string();
            Ok(Outcome::Refused(name))
        }
        (Ok(_), Err(e)) => Err(format!("the evaluator accepts, the validator refuses ({e}): {}", replay())),
        (Err(refusal), Ok(_)) => Err(format!("the evaluator refuses ({refusal}), the validator accepts: {}", replay())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evaluator_agrees_with_the_deployed_validator() -> Result<(), Error> {
    let cases: u64 = std::env::var("VALET_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    // A fixed seed by default, so CI is deterministic; VALET_DIFF_SEED=random explores new cases.
    let seed: u64 = match std::env::var("VALET_DIFF_SEED").ok().as_deref() {
        Some("random") => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
        }
        Some(s) => s.parse().expect("VALET_DIFF_SEED is a number or `random`"),
        None => 0x5e55_1011_a11e_d0c5,
    };
    let only: Option<u64> = std::env::var("VALET_DIFF_CASE").ok().map(|c| c.parse().expect("a case number"));
    println!("differential test: {cases} cases, VALET_DIFF_SEED={seed}");
    let started = std::time::Instant::now();
    let devnet = Devnet::start().await?;
    let fixture = Arc::new(Fixture {
        provider: devnet.provider.clone(),
        validator: devnet.addresses.validator,
        chain_id: alloy::providers::Provider::get_chain_id(&devnet.provider).await.map_err(Error::rpc)?,
        targets: [devnet.addresses.nft, devnet.addresses.token, Address::repeat_byte(0x77)],
        key: PrivateKeySigner::random(),
        owner: PrivateKeySigner::random(),
    });
    let (mut accepted, mut refused) = (0u64, 0u64);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let range: Vec<u64> = match only {
        Some(case) => vec![case],
        None => (0..cases).collect(),
    };
    // Cases are independent (each has its own account), so several are asked at once.
    for chunk in range.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for &case in chunk {
            let fixture = fixture.clone();
            set.spawn(async move { run_case(&fixture, seed, case).await });
        }
        while let Some(result) = set.join_next().await {
            match result.expect("the case ran") {
                Ok(Outcome::Accepted) => accepted += 1,
                Ok(Outcome::Refused(name)) => {
                    refused += 1;
                    *kinds.entry(name).or_insert(0) += 1;
                }
                Err(disagreement) => panic!("{disagreement}"),
            }
        }
    }
    println!(
        "differential test: {accepted} accepted, {refused} refused, 0 disagreements in {:.1} s; refusals: {kinds:?}",
        started.elapsed().as_secs_f64()
    );
    if only.is_none() {
        assert!(
            accepted > cases / 10 && refused > cases / 10,
            "both outcomes exercised: {accepted} accepted, {refused} refused"
        );
        for kind in ["PaymasterRequired", "FeeBudgetExceeded", "PaymasterNotAllowed", "EpochMismatch", "NotInstalled"] {
            assert!(kinds.get(kind).copied().unwrap_or(0) > 0, "{kind} exercised: {kinds:?}");
        }
    }
    Ok(())
}
