//! The evaluator on the stories the forge tests run against the validator.

use alloy_primitives::{Address, B256, Bytes, FixedBytes, U256, address};
use valet_core::{
    Call, Counters, Execution, Limit, LimitKind, Permission, Refusal, Request, Rule, RuleOp, Session, SessionState,
    evaluate,
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

fn request(call_data: &[u8], enable: bool, now: u64, claimed_time: u64) -> Request<'_> {
    Request { account: ACCOUNT, validator: VALIDATOR, call_data, indices: &[0], claimed_time, enable, now }
}

#[test]
fn ten_mints_then_the_eleventh_is_refused_with_its_reason() {
    let s = mint_session();
    let mut counters = Counters::default();
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
    let refusal = evaluate(&mint_session(), &Counters::default(), &request(&data, true, T0, 0)).expect_err("refused");
    assert!(matches!(refusal, Refusal::RuleViolated { rule: 0, op: RuleOp::SelfAccount, .. }), "{refusal}");
}

#[test]
fn state_time_and_epoch_refusals() {
    let s = mint_session();
    let data = mint(ACCOUNT, 1);
    let id = s.id().expect("id");
    assert_eq!(evaluate(&s, &Counters::default(), &request(&data, false, T0, 0)), Err(Refusal::NotEnabled(id)));
    let revoked = Counters { state: SessionState::Revoked, ..Counters::default() };
    assert_eq!(evaluate(&s, &revoked, &request(&data, true, T0, 0)), Err(Refusal::Revoked(id)));
    let moved = Counters { account_epoch: 1, ..Counters::default() };
    assert_eq!(
        evaluate(&s, &moved, &request(&data, true, T0, 0)),
        Err(Refusal::EpochMismatch { id, session_epoch: 0, account_epoch: 1 })
    );
    assert_eq!(
        evaluate(&s, &Counters::default(), &request(&data, true, T0 + 3601, 0)),
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
    let v = evaluate(&s, &Counters::default(), &request(&six, true, T0, T0)).expect("first payment");
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
        evaluate(&s, &Counters::default(), &request(&to_self, true, T0, 0)),
        Err(Refusal::ForbiddenTarget { call: 0, target: ACCOUNT })
    );
    let mut delegate = mint(ACCOUNT, 1).to_vec();
    delegate[4] = 0xff;
    assert!(matches!(
        evaluate(&s, &Counters::default(), &request(&delegate, true, T0, 0)),
        Err(Refusal::Execution(valet_core::Error::UnsupportedExecutionMode(_)))
    ));
}
