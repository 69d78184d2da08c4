//! The pre-flight's permission assignment, which judges each call incrementally, against the
//! one it replaced: the same depth-first search and first-fit fallback, each trial evaluating
//! the calls so far, re-encoded as a batch, with [`evaluate`]. Both must give the same indices,
//! verdict or refusal on every input.

use alloy_primitives::{Address, B256, Bytes, FixedBytes, U256, address};
use proptest::prelude::*;
use valet_core::evaluator::ASSIGNMENT_BUDGET;
use valet_core::session::MAX_COUNTED_PERMISSIONS;
use valet_core::{
    Call, Counters, Evaluator, Execution, Limit, LimitKind, OpGas, Permission, Refusal, Request, Rule, RuleOp, Session,
    SessionState, Verdict, assign_permissions, evaluate,
};

const ACCOUNT: Address = address!("0x00000000000000000000000000000000000aCC01");
const VALIDATOR: Address = address!("0x0000000000000000000000000000000000005a1d");
const NFT: Address = address!("0x00000000000000000000000000000000000000f7");
const TOKEN: Address = address!("0x0000000000000000000000000000000000000020");
const PAYEE: Address = address!("0x00000000000000000000000000000000000000e0");
const PAYMASTER: Address = address!("0x000000000000000000000000000000000000009a");
const MINT: [u8; 4] = [0x40, 0xc1, 0x0f, 0x19];
const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
const T0: u64 = 1_800_000_000;

// ------------------------------------------------------------------ the reference

/// The assignment as it was: each trial re-encodes the calls so far and evaluates them whole.
fn reference(session: &Session, counters: &Counters, request: &Request<'_>) -> Result<(Vec<u8>, Verdict), Refusal> {
    let execution = Execution::decode(request.call_data)?;
    let calls = execution.calls();
    let prefixes: Vec<Vec<u8>> = (0..calls.len())
        .map(|i| match &execution {
            Execution::Single(_) => request.call_data.to_vec(),
            Execution::Batch(_) => Execution::Batch(calls[..=i].to_vec()).encode().to_vec(),
        })
        .collect();
    let count = session.permissions.len().min(usize::from(u8::MAX) + 1);
    let mut order: Vec<u8> = (0..count).map(|p| p as u8).collect();
    order.sort_by_key(|&p| session.permissions[usize::from(p)].max_uses != 0);
    let mut budget = ASSIGNMENT_BUDGET;
    let mut indices = Vec::new();
    if !search(session, counters, request, &prefixes, &order, &mut budget, &mut indices) {
        indices = first_fit(session, counters, request, &prefixes)?;
    }
    let verdict = evaluate(session, counters, &Request { indices: &indices, ..request.clone() })?;
    Ok((indices, verdict))
}

fn search(
    session: &Session,
    counters: &Counters,
    request: &Request<'_>,
    prefixes: &[Vec<u8>],
    order: &[u8],
    budget: &mut usize,
    indices: &mut Vec<u8>,
) -> bool {
    let i = indices.len();
    if i == prefixes.len() {
        return true;
    }
    for &p in order {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        indices.push(p);
        let attempt = Request { call_data: &prefixes[i], indices, ..request.clone() };
        if evaluate(session, counters, &attempt).is_ok()
            && search(session, counters, request, prefixes, order, budget, indices)
        {
            return true;
        }
        indices.pop();
    }
    false
}

fn first_fit(
    session: &Session,
    counters: &Counters,
    request: &Request<'_>,
    prefixes: &[Vec<u8>],
) -> Result<Vec<u8>, Refusal> {
    let mut indices: Vec<u8> = Vec::new();
    for (i, prefix) in prefixes.iter().enumerate() {
        let mut best: Option<Refusal> = None;
        let mut chosen = None;
        for p in 0..session.permissions.len().min(usize::from(u8::MAX) + 1) {
            let mut trial = indices.clone();
            trial.push(p as u8);
            match evaluate(session, counters, &Request { call_data: prefix, indices: &trial, ..request.clone() }) {
                Ok(_) => {
                    chosen = Some(p as u8);
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
            Some(p) => indices.push(p),
            None => return Err(best.unwrap_or(Refusal::NoSuchPermission { call: i, permission: 0, count: 0 })),
        }
    }
    Ok(indices)
}

// ------------------------------------------------------------------ random cases

/// splitmix64: every case from one seed, so a failing seed reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
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

fn word(x: u64) -> [u8; 32] {
    U256::from(x).to_be_bytes()
}

fn call_data(selector: [u8; 4], to: Address, amount: u64) -> Bytes {
    [&selector[..], to.into_word().as_slice(), &word(amount)].concat().into()
}

fn random_permission(r: &mut Rng, counted: bool) -> Permission {
    let max_uses = if counted && r.chance(50) { r.pick(&[1u16, 2, 3]) } else { 0 };
    let lte = |n: u64| Rule { arg: 1, op: RuleOp::Lte, values: vec![B256::from(U256::from(n))] };
    match r.below(3) {
        0 => Permission {
            target: NFT,
            selector: FixedBytes::new(MINT),
            value_limit: 0,
            max_uses,
            rules: match r.below(3) {
                0 => vec![],
                1 => vec![lte(r.pick(&[2, 5, 8]))],
                _ => vec![Rule { arg: 0, op: RuleOp::SelfAccount, values: vec![] }, lte(5)],
            },
        },
        1 => Permission {
            target: TOKEN,
            selector: FixedBytes::new(TRANSFER),
            value_limit: 0,
            max_uses,
            rules: if r.chance(50) { vec![] } else { vec![lte(r.pick(&[3, 10]))] },
        },
        _ => Permission {
            target: PAYEE,
            selector: FixedBytes::ZERO,
            value_limit: r.pick(&[0u128, 5, 20]),
            max_uses,
            rules: vec![],
        },
    }
}

fn random_session(r: &mut Rng) -> Session {
    let count = 1 + r.below(5) as usize;
    let permissions = (0..count).map(|k| random_permission(r, k < MAX_COUNTED_PERMISSIONS)).collect();
    let mut limits = vec![];
    for _ in 0..r.below(4) {
        let period = r.pick(&[0u64, 3_600]);
        limits.push(match r.below(3) {
            0 => Limit { kind: LimitKind::Native, token: Address::ZERO, amount: r.pick(&[10u128, 40]), period },
            1 => Limit { kind: LimitKind::Erc20, token: TOKEN, amount: r.pick(&[8u128, 30]), period },
            _ => Limit {
                kind: LimitKind::Fees,
                token: Address::ZERO,
                amount: r.pick(&[10u128.pow(14), 10u128.pow(16)]),
                period,
            },
        });
    }
    Session {
        session_key: Address::repeat_byte(0x5e),
        valid_after: T0,
        valid_until: T0 + r.pick(&[1_800u64, 86_400]),
        epoch: 0,
        salt: r.next() as u32,
        max_uses: r.pick(&[0u32, 0, 0, 0, 2, 10]),
        fee_budget: r.pick(&[0u128, 10u128.pow(14), 10u128.pow(16), 10u128.pow(16)]),
        paymasters: if r.chance(20) { vec![Address::repeat_byte(0x9b)] } else { vec![] },
        limits,
        permissions,
    }
}

/// A call one of the session's permissions names (its arguments may break the rules), or now
/// and then one none does.
fn random_call(r: &mut Rng, s: &Session) -> Call {
    let target = if r.chance(90) {
        s.permissions[r.below(s.permissions.len() as u64) as usize].target
    } else {
        r.pick(&[ACCOUNT, NFT, TOKEN, PAYEE])
    };
    match (target, r.below(12)) {
        (_, 0) => Call { target, value: U256::ZERO, data: Bytes::from_static(&[0x12, 0x34]) },
        (NFT, _) => {
            let to = if r.chance(95) { ACCOUNT } else { PAYEE };
            Call { target, value: U256::ZERO, data: call_data(MINT, to, 1 + r.below(6)) }
        }
        (TOKEN, _) => Call { target, value: U256::ZERO, data: call_data(TRANSFER, PAYEE, 1 + r.below(6)) },
        _ => Call { target, value: U256::from(r.below(8)), data: Bytes::new() },
    }
}

fn random_counters(r: &mut Rng, s: &Session) -> Counters {
    let mut permission_uses = [0u32; MAX_COUNTED_PERMISSIONS];
    for uses in permission_uses.iter_mut() {
        *uses = r.pick(&[0, 0, 1, 2]);
    }
    Counters {
        state: if r.chance(3) {
            SessionState::Revoked
        } else if r.chance(20) {
            SessionState::None
        } else {
            SessionState::Enabled
        },
        session_uses: r.pick(&[0, 0, 0, 1, 5]),
        permission_uses,
        limits: (0..s.limits.len()).map(|_| (u128::from(r.pick(&[0u8, 3, 9])), u64::from(r.chance(10)))).collect(),
        fees_spent: r.pick(&[0u128, 10u128.pow(14)]),
        installed: r.chance(99),
        account_epoch: if r.chance(98) { 0 } else { 1 },
    }
}

fn pack(high: u128, low: u128) -> B256 {
    let mut w = [0u8; 32];
    w[..16].copy_from_slice(&high.to_be_bytes());
    w[16..].copy_from_slice(&low.to_be_bytes());
    B256::from(w)
}

fn random_gas(r: &mut Rng) -> OpGas {
    let paymaster = r.chance(25);
    OpGas {
        account_gas_limits: pack(r.pick(&[0u128, 100_000]), r.pick(&[0u128, 50_000])),
        pre_verification_gas: U256::from(r.pick(&[0u64, 1, 50_000])),
        gas_fees: pack(1, r.pick(&[0u128, 1, 1_000_000_000])),
        paymaster_and_data: if paymaster {
            [PAYMASTER.as_slice(), &100_000u128.to_be_bytes(), &0u128.to_be_bytes()].concat().into()
        } else {
            Bytes::new()
        },
    }
}

/// One random case: the session, the counters, the calldata and the request's other fields.
fn case(seed: u64) -> (Session, Counters, Bytes, bool, u64, u64, OpGas) {
    let mut r = Rng(seed);
    let session = random_session(&mut r);
    let counters = random_counters(&mut r, &session);
    let calls: Vec<Call> = (0..1 + r.below(10)).map(|_| random_call(&mut r, &session)).collect();
    let call_data = if calls.len() == 1 && r.chance(50) {
        Execution::Single(calls[0].clone()).encode()
    } else {
        Execution::Batch(calls).encode()
    };
    let enable = if r.chance(95) { counters.state == SessionState::None } else { r.chance(50) };
    let now = T0 + r.pick(&[0u64, 100, 1_000, 1_799, 3_599, 3_600, 5_000]);
    let claimed_time = if r.chance(90) { now } else { r.pick(&[T0 - 1, T0, T0 + 3_600]) };
    (session, counters, call_data, enable, now, claimed_time, random_gas(&mut r))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn the_incremental_assignment_is_the_whole_evaluation_s(seed in any::<u64>()) {
        let (session, counters, call_data, enable, now, claimed_time, gas) = case(seed);
        let request = Request {
            account: ACCOUNT,
            validator: VALIDATOR,
            call_data: &call_data,
            indices: &[],
            claimed_time,
            enable,
            gas,
            now,
        };
        let expected = reference(&session, &counters, &request);
        prop_assert_eq!(&assign_permissions(&session, &counters, &request), &expected, "seed {}", seed);
        let evaluator = Evaluator::new(&session).expect("the session encodes");
        prop_assert_eq!(&evaluator.assign_permissions(&counters, &request), &expected, "seed {}", seed);
    }
}

/// Sixteen permissions that all accept the first 31 calls and none the 32nd: the search runs
/// out of its budget, and first-fit's refusal at the last call is the answer, as before.
#[test]
fn an_exhausted_budget_falls_back_to_first_fit_as_before() {
    let mut r = Rng(7);
    let mut session = random_session(&mut r);
    session.limits.clear();
    session.max_uses = 0;
    session.fee_budget = 0;
    session.permissions = (0..16)
        .map(|_| Permission { target: PAYEE, selector: FixedBytes::ZERO, value_limit: 5, max_uses: 0, rules: vec![] })
        .collect();
    let mut calls: Vec<Call> =
        (0..31).map(|_| Call { target: PAYEE, value: U256::from(1), data: Bytes::new() }).collect();
    calls.push(Call { target: PAYEE, value: U256::from(6), data: Bytes::new() });
    let call_data = Execution::Batch(calls).encode();
    let counters = Counters { state: SessionState::Enabled, installed: true, ..Counters::default() };
    let request = Request {
        account: ACCOUNT,
        validator: VALIDATOR,
        call_data: &call_data,
        indices: &[],
        claimed_time: T0,
        enable: false,
        gas: OpGas::default(),
        now: T0,
    };
    let refusal = assign_permissions(&session, &counters, &request).expect_err("no permission allows 6 wei");
    assert_eq!(refusal, Refusal::ValueAboveLimit { call: 31, permission: 0, value: U256::from(6), limit: 5 });
    assert_eq!(Err(refusal), reference(&session, &counters, &request));

    // Backtracking: two counted permissions, one use each; 1 wei fits both, 6 wei only the
    // first, so the 1 wei must take the second.
    session.permissions.truncate(2);
    session.permissions[0] = Permission { max_uses: 1, value_limit: 6, ..session.permissions[0].clone() };
    session.permissions[1] = Permission { max_uses: 1, value_limit: 5, ..session.permissions[1].clone() };
    let call_data = Execution::Batch(vec![
        Call { target: PAYEE, value: U256::from(1), data: Bytes::new() },
        Call { target: PAYEE, value: U256::from(6), data: Bytes::new() },
    ])
    .encode();
    let request = Request { call_data: &call_data, ..request };
    let (indices, verdict) = assign_permissions(&session, &counters, &request).expect("an assignment exists");
    assert_eq!(indices, [1, 0]);
    assert_eq!(verdict.counters.permission_uses[..2], [1, 1]);
    assert_eq!(Ok((indices, verdict)), reference(&session, &counters, &request));
}
