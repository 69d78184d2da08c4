//! Differential test: the evaluator (valet-core) and the deployed validator agree on random
//! (session, calls, time, counters) cases. Each case writes the counters into the validator's
//! storage on anvil, asks the validator (`eth_call` of `validateUserOp` from the account), and
//! compares: the same acceptance and validity window, or the same refusal, byte for byte.
//! `VALET_DIFF_CASES` (default 10,000) and `VALET_DIFF_SEED` (printed; a fixed one by default,
//! `random` for a new one) replay a run.

use alloy::primitives::{Address, B256, Bytes, FixedBytes, U256, aliases::U48, keccak256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolError;
use valet_client::contracts::SessionKeyValidator as V;
use valet_client::{Devnet, Error};
use valet_core::{
    Call, Counters, Execution, Limit, LimitKind, Permission, Refusal, Request, Rule, RuleOp, Session, SessionState,
    evaluate, signature,
};

struct Rng(u64);

impl Rng {
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

const ACCOUNT: Address = Address::repeat_byte(0xac);
const SELECTORS: [[u8; 4]; 4] =
    [[0, 0, 0, 0], [0xa9, 0x05, 0x9c, 0xbb], [0x09, 0x5e, 0xa7, 0xb3], [0x11, 0x11, 0x11, 0x11]];

fn random_session(r: &mut Rng, key: Address, targets: &[Address]) -> Session {
    let valid_after = 1_000;
    let valid_until = valid_after + 10 + r.below(1_000);
    let mut limits = Vec::new();
    for _ in 0..r.below(3) {
        limits.push(if r.chance(50) {
            Limit {
                kind: LimitKind::Native,
                token: Address::ZERO,
                amount: r.below(60).into(),
                period: r.pick(&[0, 100]),
            }
        } else {
            Limit {
                kind: LimitKind::Erc20,
                token: r.pick(targets),
                amount: r.below(60).into(),
                period: r.pick(&[0, 100]),
            }
        });
    }
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
        permissions.push(Permission {
            target: r.pick(targets),
            selector: FixedBytes::new(r.pick(&SELECTORS)),
            value_limit: r.pick(&[0u128, 100, 10u128.pow(18)]),
            max_uses: r.pick(&[0, 1, 2, 3]),
            rules,
        });
    }
    Session {
        session_key: key,
        valid_after,
        valid_until,
        epoch: 0,
        salt: r.next() as u32,
        max_uses: r.pick(&[0, 2]),
        limits,
        permissions,
    }
}

fn random_calls(r: &mut Rng, s: &Session, targets: &[Address]) -> (Bytes, Vec<u8>) {
    let n = 1 + r.below(3) as usize;
    let mut calls = Vec::new();
    let mut indices = Vec::new();
    for _ in 0..n {
        let k = if r.chance(92) { r.below(s.permissions.len() as u64) } else { r.below(5) } as usize;
        let p = s.permissions.get(k).unwrap_or(&s.permissions[0]);
        let target = if r.chance(95) { p.target } else { r.pick(&[targets[0], ACCOUNT, targets[2]]) };
        let mut data = Vec::new();
        if !(p.selector == FixedBytes::ZERO && r.chance(80)) {
            data.extend_from_slice(if r.chance(95) { p.selector.as_slice() } else { &[0x22, 0x22, 0x22, 0x22] });
            let words = if r.chance(90) { 3 } else { r.below(4) };
            for arg in 0..words {
                // Mostly a value that satisfies the permission's rule on this argument, so that
                // accepting paths are exercised as much as refusing ones.
                let rule = p.rules.iter().find(|rule| u64::from(rule.arg) == arg);
                let word = match rule {
                    Some(rule) if r.chance(80) => satisfying(rule),
                    _ if r.chance(15) => ACCOUNT.into_word(),
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
fn satisfying(rule: &Rule) -> B256 {
    let v0 = rule.values.first().map(|v| U256::from_be_bytes(v.0)).unwrap_or_default();
    let x = match rule.op {
        RuleOp::Eq | RuleOp::Gte | RuleOp::Lte | RuleOp::InRange | RuleOp::OneOf => v0,
        RuleOp::Ne | RuleOp::Gt => v0 + U256::from(1),
        RuleOp::Lt => v0.saturating_sub(U256::from(1)),
        RuleOp::SelfAccount => return ACCOUNT.into_word(),
    };
    B256::from(x)
}

fn random_counters(r: &mut Rng, s: &Session) -> Counters {
    let state = match r.below(20) {
        0 => SessionState::None,
        1 => SessionState::Revoked,
        _ => SessionState::Enabled,
    };
    let mut permission_uses = [0u32; 9];
    for u in &mut permission_uses {
        *u = r.below(2) as u32;
    }
    Counters {
        state,
        session_uses: r.below(2) as u32,
        permission_uses,
        limits: s.limits.iter().map(|_| (u128::from(r.below(60)), r.below(3))).collect(),
        account_epoch: 0,
    }
}

fn slot(key: B256, mapping: u64) -> B256 {
    let inner = keccak256([key.0, U256::from(mapping).to_be_bytes()].concat());
    keccak256([ACCOUNT.into_word().0, inner.0].concat())
}

/// The validator's revert data for a refusal.
fn expected_revert(refusal: &Refusal, id: B256) -> Vec<u8> {
    let u = |x: usize| U256::from(x);
    match refusal.clone() {
        Refusal::Revoked(_) => V::SessionIsRevoked { sessionId: id }.abi_encode(),
        Refusal::NotEnabled(_) => V::SessionNotEnabled { sessionId: id }.abi_encode(),
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
        other => panic!("not a validator refusal in use mode: {other}"),
    }
}

/// (validAfter, validUntil) from validationData.
fn window(data: U256) -> (u64, u64) {
    let after: U256 = data >> 208usize;
    let until: U256 = (data >> 160usize) & U256::from((1u64 << 48) - 1);
    (after.to::<u64>(), until.to::<u64>())
}

#[tokio::test]
async fn the_evaluator_agrees_with_the_deployed_validator() -> Result<(), Error> {
    let cases: u64 = std::env::var("VALET_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    // A fixed seed by default, so CI is deterministic; VALET_DIFF_SEED=random explores new cases.
    let seed: u64 = match std::env::var("VALET_DIFF_SEED").ok().as_deref() {
        Some("random") => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
        }
        Some(s) => s.parse().expect("VALET_DIFF_SEED is a number or `random`"),
        None => 0x5e55_1011_a11e_d0c5,
    };
    println!("differential test: {cases} cases, VALET_DIFF_SEED={seed}");
    let devnet = Devnet::start().await?;
    let validator_address = devnet.addresses.validator;
    let validator = V::new(validator_address, &devnet.provider);
    let targets = [devnet.addresses.nft, devnet.addresses.token, Address::repeat_byte(0x77)];
    let key = PrivateKeySigner::random();
    let mut r = Rng(seed);
    let (mut accepted, mut refused) = (0u64, 0u64);
    let mut kinds = std::collections::BTreeMap::new();
    for case in 0..cases {
        let session = random_session(&mut r, key.address(), &targets);
        let id = session.id()?;
        let packed = session.encode()?;
        let counters = random_counters(&mut r, &session);
        let (call_data, indices) = random_calls(&mut r, &session, &targets);
        let claimed_time = session.valid_after - 5 + r.below(session.valid_until - session.valid_after + 10);

        let mut word = U256::from(match counters.state {
            SessionState::None => 0u8,
            SessionState::Enabled => 1,
            SessionState::Revoked => 2,
        });
        if counters.state != SessionState::None {
            word |= U256::from(counters.session_uses) << 8;
            for (k, uses) in counters.permission_uses.iter().enumerate() {
                word |= U256::from(*uses) << (32 + 24 * k);
            }
        }
        let set = |slot: B256, value: U256| {
            devnet
                .provider
                .raw_request::<_, bool>("anvil_setStorageAt".into(), (validator_address, slot, B256::from(value)))
        };
        set(slot(id, 2), word).await.map_err(|e| Error::Rpc(e.to_string()))?;
        for (l, (spent, period)) in counters.limits.iter().enumerate() {
            let limit_key = keccak256([id.0, U256::from(l).to_be_bytes()].concat());
            set(slot(limit_key, 3), (U256::from(*period) << 128) | U256::from(*spent))
                .await
                .map_err(|e| Error::Rpc(e.to_string()))?;
        }

        let user_op_hash = B256::from(U256::from(case + 1));
        let prefix = signature::prefix(&packed, claimed_time, &indices, None)?;
        let key_sig = key
            .sign_hash_sync(&signature::key_digest(user_op_hash, id, claimed_time, &indices))
            .expect("signs")
            .as_bytes();
        let op = V::PackedUserOperation {
            sender: ACCOUNT,
            nonce: U256::ZERO,
            initCode: Bytes::new(),
            callData: call_data.clone(),
            accountGasLimits: B256::ZERO,
            preVerificationGas: U256::ZERO,
            gasFees: B256::ZERO,
            paymasterAndData: Bytes::new(),
            signature: [prefix.as_ref(), &key_sig].concat().into(),
        };
        let request = Request {
            account: ACCOUNT,
            validator: validator_address,
            call_data: &call_data,
            indices: &indices,
            claimed_time,
            enable: false,
            now: claimed_time,
        };
        let evaluated = evaluate(&session, &counters, &request);
        let chain: Result<U256, _> = validator.validateUserOp(op, user_op_hash).from(ACCOUNT).call().await;
        let replay = format!(
            "case {case} (VALET_DIFF_SEED={seed}): session {session:?}, counters {counters:?}, indices {indices:?}, claimed {claimed_time}, calldata {call_data}"
        );
        match (evaluated, chain) {
            (Ok(verdict), Ok(data)) => {
                accepted += 1;
                assert_eq!(data & U256::from(1), U256::ZERO, "signature accepted: {replay}");
                assert_eq!(window(data), (verdict.valid_after, verdict.valid_until), "window: {replay}");
            }
            (Err(Refusal::OutsideWindow { valid_after, valid_until, .. }), Ok(data)) => {
                accepted += 1;
                assert_eq!(window(data), (valid_after, valid_until), "window: {replay}");
            }
            (Err(refusal), Err(e)) => {
                refused += 1;
                *kinds
                    .entry(format!("{refusal:?}").split(['(', ' ', '{']).next().unwrap_or("").to_string())
                    .or_insert(0u64) += 1;
                let data = e.as_revert_data().unwrap_or_else(|| panic!("no revert data ({e}): {replay}"));
                assert_eq!(data.to_vec(), expected_revert(&refusal, id), "refusal {refusal}: {replay}");
            }
            (Ok(_), Err(e)) => panic!("the evaluator accepts, the validator refuses ({e}): {replay}"),
            (Err(refusal), Ok(_)) => panic!("the evaluator refuses ({refusal}), the validator accepts: {replay}"),
        }
    }
    println!("differential test: {accepted} accepted, {refused} refused, 0 disagreements; refusals: {kinds:?}");
    assert!(
        accepted > cases / 10 && refused > cases / 10,
        "both outcomes exercised: {accepted} accepted, {refused} refused"
    );
    Ok(())
}
