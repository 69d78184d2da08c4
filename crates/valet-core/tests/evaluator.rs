//! The evaluator on the stories the forge tests run against the validator.

use alloy_primitives::{Address, B256, Bytes, FixedBytes, U256, address};
use valet_core::{
    Call, Counters, Execution, Limit, LimitKind, OpGas, Permission, Refusal, Request, Rule, RuleOp, Session,
    SessionState, evaluate,
};

const ACCOUNT: Address = address!("0x00000000000000000000000000000000000aCC01");
const VALIDATOR: Address = address!("0x0000000000000000000000000000000000005a1d");
const NFT: Address = address!("0x00000000000000000000000000000000000000f7");
const TOKEN: Address = address!("0x0000000000000000000000000000000000000020");
const T0: u64 = 1_800_000_000;

fn word(x: U256) -> [u8; 32] {
    x.to_be_bytes()
}

fn mint(to: Address, quantity: u64) -> Bytes {
    let mut data = vec![0x40, 0xc1, 0x0f, 0x19]; // mint(address,uint256)
    data.extend_from_slice(to.into_word().as_slice());
    data.extend_from_slice(&word(U256::from(quantity)));
    Execution::Single(Call { target: NFT, value: U256::ZERO, data: data.into() }).encode()
}

fn transfer(amount: u128) -> Bytes {
    let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
    data.extend_from_slice(Address::repeat_byte(0xfe).into_word().as_slice());
    data.extend_from_slice(&word(U256::from(amount)));
    Execution::Single(Call { target: TOKEN, value: U256::ZERO, data: data.into() }).encode()
}

fn mint_session() -> Session {
    Session {
        session_key: Address::repeat_byte(0x5e),
        valid_after: T0,
        valid_until: T0 + 3600,
        epoch: 0,
        salt: 0,
        max_uses: 0,
        fee_budget: 10u128.pow(16),
        paymasters: vec![],
        limits: vec![],
        permissions: vec![Permission {
            target: NFT,
            selector: FixedBytes::new([0x40, 0xc1, 0x0f, 0x19]),
            value_limit: 0,
            max_uses: 10,
            rules: vec![
                Rule { arg: 0, op: RuleOp::SelfAccount, values: vec![] },
                Rule { arg: 1, op: RuleOp::Lte, values: vec![B256::from(U256::from(5))] },
            ],
        }],
    }
}

/// Gas fields whose maximum cost is `gas` × `max_fee`, paid by `paymaster` if given.
fn gas(verification: u128, call: u128, pre: u64, max_fee: u128, paymaster: Option<Address>) -> OpGas {
    let pack = |hi: u128, lo: u128| {
        let mut w = [0u8; 32];
        w[..16].copy_from_slice(&hi.to_be_bytes());
        w[16..].copy_from_slice(&lo.to_be_bytes());
        B256::from(w)
    };
    OpGas {
        account_gas_limits: pack(verification, call),
        pre_verification_gas: U256::from(pre),
        gas_fees: pack(1, max_fee),
        paymaster_and_data: match paymaster {
            Some(p) => [p.as_slice(), &100_000u128.to_be_bytes(), &0u128.to_be_bytes()].concat().into(),
            None => Bytes::new(),
        },
    }
}

/// 200,000 gas at 1 gwei: 0.0002 ETH at most, paid by the account.
fn request(call_data: &[u8], enable: bool, now: u64, claimed_time: u64) -> Request<'_> {
    Request {
        account: ACCOUNT,
        validator: VALIDATOR,
        call_data,
        indices: &[0],
        claimed_time,
        enable,
        gas: gas(100_000, 50_000, 50_000, 1_000_000_000, None),
        now,
    }
}

fn installed() -> Counters {
    Counters { installed: true, ..Counters::default() }
}

#[test]
fn ten_mints_then_the_eleventh_is_refused_with_its_reason() {
    let s = mint_session();
    let mut counters = installed();
    let first = mint(ACCOUNT, 5);
    counters = evaluate(&s, &counters, &request(&first, true, T0, 0)).expect("enable and mint").counters;
    assert_eq!(counters.state, SessionState::Enabled);
    for _ in 1..10 {
        let data = mint(ACCOUNT, 1);
        counters = evaluate(&s, &counters, &request(&data, false, T0 + 60, 0)).expect("mint").counters;
    }
    assert_eq!(counters.permission_uses[0], 10);

    let six = mint(ACCOUNT, 6);
    let refusal = evaluate(&s, &counters, &request(&six, false, T0 + 60, 0)).expect_err("quantity 6");
    assert_eq!(
        refusal,
        Refusal::RuleViolated { call: 0, permission: 0, rule: 1, arg: 1, op: RuleOp::Lte, value: U256::from(6) }
    );
    let eleventh = mint(ACCOUNT, 1);
    let refusal = evaluate(&s, &counters, &request(&eleventh, false, T0 + 60, 0)).expect_err("eleventh");
    assert_eq!(refusal, Refusal::PermissionUsesExhausted { id: s.id().expect("id"), permission: 0, max_uses: 10 });
    assert_eq!(
        refusal.to_string(),
        format!("permission 0 of session {} has used all 10 of its calls", s.id().expect("id"))
    );
}

#[test]
fn minting_to_someone_else_breaks_the_self_rule() {
    let data = mint(Address::repeat_byte(0xba), 1);
    let refusal = evaluate(&mint_session(), &installed(), &request(&data, true, T0, 0)).expect_err("refused");
    assert!(matches!(refusal, Refusal::RuleViolated { rule: 0, op: RuleOp::SelfAccount, .. }), "{refusal}");
}

#[test]
fn state_time_and_epoch_refusals() {
    let s = mint_session();
    let data = mint(ACCOUNT, 1);
    let id = s.id().expect("id");
    assert_eq!(evaluate(&s, &installed(), &request(&data, false, T0, 0)), Err(Refusal::NotEnabled(id)));
    let revoked = Counters { state: SessionState::Revoked, ..installed() };
    assert_eq!(evaluate(&s, &revoked, &request(&data, true, T0, 0)), Err(Refusal::Revoked(id)));
    let moved = Counters { account_epoch: 1, ..installed() };
    assert_eq!(
        evaluate(&s, &moved, &request(&data, true, T0, 0)),
        Err(Refusal::EpochMismatch { id, session_epoch: 0, account_epoch: 1 })
    );
    // An enabled session dies with a revoke-all too: its epoch is checked on every use.
    let voided = Counters { state: SessionState::Enabled, account_epoch: 7, ..installed() };
    assert_eq!(
        evaluate(&s, &voided, &request(&data, false, T0, 0)),
        Err(Refusal::EpochMismatch { id, session_epoch: 0, account_epoch: 7 })
    );
    let uninstalled = Counters { state: SessionState::Enabled, ..Counters::default() };
    assert_eq!(evaluate(&s, &uninstalled, &request(&data, false, T0, 0)), Err(Refusal::NotInstalled(ACCOUNT)));
    assert_eq!(
        evaluate(&s, &installed(), &request(&data, true, T0 + 3601, 0)),
        Err(Refusal::OutsideWindow { valid_after: T0, valid_until: T0 + 3600, now: T0 + 3601 })
    );
}

#[test]
fn a_daily_allowance_refills_and_narrows_the_window() {
    let mut s = mint_session();
    s.valid_until = T0 + 30 * 86_400;
    s.permissions = vec![Permission {
        target: TOKEN,
        selector: FixedBytes::new([0xa9, 0x05, 0x9c, 0xbb]),
        value_limit: 0,
        max_uses: 0,
        rules: vec![],
    }];
    s.limits = vec![Limit { kind: LimitKind::Erc20, token: TOKEN, amount: 10, period: 86_400 }];
    let six = transfer(6);
    let v = evaluate(&s, &installed(), &request(&six, true, T0, T0)).expect("first payment");
    assert_eq!((v.valid_after, v.valid_until), (T0, T0 + 86_399));
    let five = transfer(5);
    assert_eq!(
        evaluate(&s, &v.counters, &request(&five, false, T0 + 10, T0 + 10)),
        Err(Refusal::LimitExceeded { limit: 0, spent: 6, amount: U256::from(5), cap: 10 })
    );
    let day2 = evaluate(&s, &v.counters, &request(&five, false, T0 + 86_401, T0 + 86_400)).expect("next day");
    assert_eq!(day2.counters.limits[0], (5, 1));
    assert_eq!(
        evaluate(&s, &day2.counters, &request(&five, false, T0 + 86_401, T0)),
        Err(Refusal::PeriodElapsed { limit: 0, period: 0, stored: 1 })
    );
}

#[test]
fn forbidden_targets_and_modes() {
    let s = mint_session();
    let to_self = Execution::Single(Call { target: ACCOUNT, value: U256::ZERO, data: Bytes::new() }).encode();
    assert_eq!(
        evaluate(&s, &installed(), &request(&to_self, true, T0, 0)),
        Err(Refusal::ForbiddenTarget { call: 0, target: ACCOUNT })
    );
    let mut delegate = mint(ACCOUNT, 1).to_vec();
    delegate[4] = 0xff;
    assert!(matches!(
        evaluate(&s, &installed(), &request(&delegate, true, T0, 0)),
        Err(Refusal::Execution(valet_core::Error::UnsupportedExecutionMode(_)))
    ));
}

#[test]
fn fees_come_from_the_budget_at_the_maximum_cost_or_from_a_paymaster() {
    let mut s = mint_session();
    s.fee_budget = 5 * 10u128.pow(14); // 0.0005 ETH
    let id = s.id().expect("id");
    let data = mint(ACCOUNT, 1);
    let first = evaluate(&s, &installed(), &request(&data, true, T0, 0)).expect("0.0002 ETH");
    assert_eq!(first.counters.fees_spent, 2 * 10u128.pow(14));
    let second = evaluate(&s, &first.counters, &request(&data, false, T0, 0)).expect("0.0004 ETH");
    assert_eq!(
        evaluate(&s, &second.counters, &request(&data, false, T0, 0)),
        Err(Refusal::FeeBudgetExceeded {
            spent: 4 * 10u128.pow(14),
            fee: U256::from(2 * 10u128.pow(14)),
            budget: 5 * 10u128.pow(14)
        })
    );
    // The paymaster pays: the budget is not touched.
    let paymaster = Address::repeat_byte(0x9a);
    let sponsored =
        Request { gas: gas(100_000, 50_000, 50_000, 1_000_000_000, Some(paymaster)), ..request(&data, false, T0, 0) };
    let v = evaluate(&s, &second.counters, &sponsored).expect("sponsored");
    assert_eq!(v.counters.fees_spent, second.counters.fees_spent);
    // Listed paymasters only, when the session lists them.
    s.paymasters = vec![Address::repeat_byte(0x9b)];
    let enabled = Counters { state: SessionState::Enabled, ..installed() };
    assert_eq!(evaluate(&s, &enabled, &sponsored), Err(Refusal::PaymasterNotAllowed(paymaster)));
    // No budget: a paymaster must pay.
    s.paymasters.clear();
    s.fee_budget = 0;
    let id0 = s.id().expect("id");
    assert_ne!(id, id0);
    assert_eq!(evaluate(&s, &enabled, &request(&data, false, T0, 0)), Err(Refusal::PaymasterRequired(id0)));
    assert!(evaluate(&s, &enabled, &sponsored).is_ok());
}

#[test]
fn the_entry_points_checks_come_first() {
    let s = mint_session();
    let data = mint(ACCOUNT, 1);
    let mut short = request(&data, true, T0, 0);
    short.gas.paymaster_and_data = Bytes::from(vec![0x9a; 20]);
    assert_eq!(evaluate(&s, &installed(), &short), Err(Refusal::InvalidPaymasterAndData { length: 20 }));
    let huge = Request { gas: gas(1 << 120, 0, 0, 1, None), ..request(&data, true, T0, 0) };
    assert_eq!(evaluate(&s, &installed(), &huge), Err(Refusal::GasValuesOverflow));
}

#[test]
fn a_fee_allowance_refills_per_period() {
    let mut s = mint_session();
    s.valid_until = T0 + 30 * 86_400;
    s.permissions[0].max_uses = 0;
    s.fee_budget = valet_core::session::MAX_FEE_BUDGET;
    s.limits = vec![Limit { kind: LimitKind::Fees, token: Address::ZERO, amount: 3 * 10u128.pow(14), period: 86_400 }];
    let data = mint(ACCOUNT, 1);
    let v = evaluate(&s, &installed(), &request(&data, true, T0, T0)).expect("day 0");
    assert_eq!((v.valid_after, v.valid_until), (T0, T0 + 86_399));
    assert_eq!(
        evaluate(&s, &v.counters, &request(&data, false, T0, T0)),
        Err(Refusal::LimitExceeded {
            limit: 0,
            spent: 2 * 10u128.pow(14),
            amount: U256::from(2 * 10u128.pow(14)),
            cap: 3 * 10u128.pow(14)
        })
    );
    evaluate(&s, &v.counters, &request(&data, false, T0 + 86_400, T0 + 86_400)).expect("day 1");
}

#[test]
fn entry_points_are_never_targets() {
    let s = mint_session();
    for ep in valet_core::evaluator::ENTRY_POINTS {
        let call = Execution::Single(Call { target: ep, value: U256::ZERO, data: Bytes::new() }).encode();
        assert_eq!(
            evaluate(&s, &installed(), &request(&call, true, T0, 0)),
            Err(Refusal::ForbiddenTarget { call: 0, target: ep })
        );
    }
}

/// Permission 0: `mint`, one use, no rule; permission 1: `mint` with quantity ≤ 5, uncounted.
fn two_mint_permissions() -> Session {
    let mut s = mint_session();
    let selector = s.permissions[0].selector;
    s.permissions = vec![
        Permission { target: NFT, selector, value_limit: 0, max_uses: 1, rules: vec![] },
        Permission {
            target: NFT,
            selector,
            value_limit: 0,
            max_uses: 0,
            rules: vec![Rule { arg: 1, op: RuleOp::Lte, values: vec![B256::from(U256::from(5))] }],
        },
    ];
    s
}

fn batch(quantities: &[u64]) -> Bytes {
    let calls = quantities
        .iter()
        .map(|q| match Execution::decode(&mint(ACCOUNT, *q)).expect("single") {
            Execution::Single(call) => call,
            Execution::Batch(_) => unreachable!(),
        })
        .collect();
    Execution::Batch(calls).encode()
}

/// The pre-flight's assignment finds one the chain accepts whenever there is one: [mint 1,
/// mint 10] needs indices [1, 0] (first-fit took permission 0 for the first call, then found
/// nothing for the second); and a lone mint 1 takes the uncounted permission, keeping the one
/// use of permission 0 for the mint of 10 that only it allows.
#[test]
fn permissions_are_assigned_so_that_the_chain_accepts_when_it_can() {
    let s = two_mint_permissions();
    let counters = Counters { state: SessionState::Enabled, ..installed() };
    let data = batch(&[1, 10]);
    let (indices, verdict) =
        valet_core::assign_permissions(&s, &counters, &request(&data, false, T0, 0)).expect("an assignment exists");
    assert_eq!(indices, [1, 0]);
    let accepted = Request { indices: &indices, ..request(&data, false, T0, 0) };
    assert_eq!(evaluate(&s, &counters, &accepted).expect("the validator's view").counters, verdict.counters);

    let one = mint(ACCOUNT, 1);
    let (indices, verdict) = valet_core::assign_permissions(&s, &counters, &request(&one, false, T0, 0)).expect("fits");
    assert_eq!(indices, [1], "the uncounted permission");
    let ten = mint(ACCOUNT, 10);
    let (indices, _) = valet_core::assign_permissions(&s, &verdict.counters, &request(&ten, false, T0, 0))
        .expect("permission 0's use is still there");
    assert_eq!(indices, [0]);

    // No assignment: the refusal is first-fit's at the call that fits nothing (the second mint
    // of 10: permission 0's one use is gone, as before this search).
    let data = batch(&[10, 10]);
    match valet_core::assign_permissions(&s, &counters, &request(&data, false, T0, 0)) {
        Err(Refusal::PermissionUsesExhausted { permission: 0, max_uses: 1, .. }) => {}
        other => panic!("two mints of 10 with one use to allow them: {other:?}"),
    }
}
