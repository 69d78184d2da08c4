//! Property tests of the codecs: round trips, and refusal of malformed input.

use alloy_primitives::{Address, B256, Bytes, FixedBytes, U256};
use proptest::prelude::*;
use valet_core::{Call, Error, Execution, Limit, LimitKind, Permission, Rule, RuleOp, Session};

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(|mut a| {
        a[19] |= 1; // never zero
        Address::from(a)
    })
}

fn rule() -> impl Strategy<Value = Rule> {
    (any::<u8>(), 0u8..=8, prop::collection::vec(any::<[u8; 32]>(), 1..=16)).prop_map(|(arg, code, raw)| {
        let op = RuleOp::from_code(code).expect("code in range");
        let mut values: Vec<B256> = raw.into_iter().map(B256::from).collect();
        match op {
            RuleOp::SelfAccount => values.clear(),
            RuleOp::InRange => {
                values.resize(2, B256::ZERO);
                values.sort();
            }
            RuleOp::OneOf => {}
            _ => values.truncate(1),
        }
        Rule { arg, op, values }
    })
}

fn session() -> impl Strategy<Value = Session> {
    let limit =
        (0u8..3, address(), any::<u128>(), 0u64..(1 << 48)).prop_map(|(kind, token, amount, period)| match kind {
            0 => Limit { kind: LimitKind::Native, token: Address::ZERO, amount, period },
            1 => Limit { kind: LimitKind::Erc20, token, amount, period },
            _ => Limit { kind: LimitKind::Fees, token: Address::ZERO, amount, period },
        });
    let permission = (address(), any::<[u8; 4]>(), any::<u128>(), any::<u16>(), prop::collection::vec(rule(), 0..4))
        .prop_map(|(target, selector, value_limit, max_uses, rules)| Permission {
            target,
            selector: FixedBytes::from(selector),
            value_limit,
            max_uses,
            rules,
        });
    (
        (address(), 1u64..(1 << 47), 1u64..(1 << 47), any::<u64>(), any::<u32>(), 0u32..(1 << 24)),
        (0u128..(1 << 80), prop::collection::vec(address(), 0..=8)),
        prop::collection::vec(limit, 0..=8),
        prop::collection::vec(permission, 1..=9),
    )
        .prop_map(
            |(
                (session_key, valid_after, span, epoch, salt, max_uses),
                (fee_budget, paymasters),
                limits,
                permissions,
            )| {
                Session {
                    session_key,
                    valid_after,
                    valid_until: valid_after + span,
                    epoch,
                    salt,
                    max_uses,
                    fee_budget,
                    paymasters,
                    limits,
                    permissions,
                }
            },
        )
}

fn call() -> impl Strategy<Value = Call> {
    (any::<[u8; 20]>(), any::<[u8; 32]>(), prop::collection::vec(any::<u8>(), 0..100)).prop_map(|(t, v, d)| Call {
        target: Address::from(t),
        value: U256::from_be_bytes(v),
        data: Bytes::from(d),
    })
}

proptest! {
    #[test]
    fn sessions_round_trip(s in session()) {
        let packed = s.encode().expect("valid sessions encode");
        prop_assert_eq!(Session::decode(&packed).expect("and decode"), s);
    }

    #[test]
    fn truncated_or_extended_sessions_are_refused(s in session(), cut in any::<usize>(), extra in any::<u8>()) {
        let packed = s.encode().expect("encode");
        let short = &packed[..cut % packed.len()];
        let refused = matches!(Session::decode(short), Err(Error::MalformedSession { .. }));
        prop_assert!(refused, "a truncated session decoded");
        let mut long = packed.to_vec();
        long.push(extra);
        let refused = matches!(Session::decode(&long), Err(Error::MalformedSession { .. }));
        prop_assert!(refused, "a session with a trailing byte decoded");
    }

    #[test]
    fn executions_round_trip(calls in prop::collection::vec(call(), 1..=4), single in any::<bool>()) {
        let execution = if single { Execution::Single(calls[0].clone()) } else { Execution::Batch(calls) };
        prop_assert_eq!(Execution::decode(&execution.encode()).expect("canonical decodes"), execution);
    }

    #[test]
    fn mutated_executions_decode_only_to_what_they_say(calls in prop::collection::vec(call(), 1..=3), at in any::<usize>(), byte in any::<u8>()) {
        let mut data = Execution::Batch(calls).encode().to_vec();
        let i = at % data.len();
        data[i] = byte;
        // Whatever decodes must re-encode to the same bytes, padding aside: one reading only.
        if let Ok(decoded) = Execution::decode(&data) {
            let again = decoded.encode();
            prop_assert_eq!(again.len(), data.len());
            prop_assert_eq!(Execution::decode(&again).expect("re-encoding decodes"), decoded);
        }
    }
}

#[test]
fn refusals_name_the_validators_reason() {
    let mut s = Session {
        session_key: Address::repeat_byte(1),
        valid_after: 10,
        valid_until: 10,
        epoch: 0,
        salt: 0,
        max_uses: 0,
        fee_budget: 0,
        paymasters: vec![],
        limits: vec![],
        permissions: vec![Permission {
            target: Address::repeat_byte(2),
            selector: FixedBytes::ZERO,
            value_limit: 0,
            max_uses: 0,
            rules: vec![],
        }],
    };
    assert_eq!(s.encode(), Err(Error::MalformedSession { offset: 26, reason: "validUntil is not after validAfter" }));
    s.valid_after = 0;
    assert_eq!(s.encode(), Err(Error::MalformedSession { offset: 20, reason: "validAfter is zero" }));
    s.valid_after = 10;
    s.valid_until = 11;
    // header 58, the limit count, the permission count, a 43-byte permission: the rule at 103.
    s.permissions[0].rules.push(Rule { arg: 0, op: RuleOp::InRange, values: vec![B256::repeat_byte(9), B256::ZERO] });
    assert_eq!(s.encode(), Err(Error::MalformedSession { offset: 106, reason: "IN_RANGE minimum above maximum" }));
    s.permissions[0].rules[0] = Rule { arg: 0, op: RuleOp::SelfAccount, values: vec![B256::ZERO] };
    assert_eq!(s.encode(), Err(Error::MalformedSession { offset: 105, reason: "SELF takes no values" }));
    s.permissions[0].rules.clear();
    s.paymasters = vec![Address::ZERO];
    assert_eq!(s.encode(), Err(Error::MalformedSession { offset: 58, reason: "paymaster is zero" }));
    s.paymasters = vec![];
    s.limits = vec![Limit { kind: LimitKind::Fees, token: Address::repeat_byte(2), amount: 1, period: 0 }];
    assert_eq!(s.encode(), Err(Error::MalformedSession { offset: 60, reason: "native or fee limit names a token" }));
    // A limit on the permission's target (the limit at 59, the permission at 103): only
    // functions the limit counts may be called there.
    s.limits = vec![Limit { kind: LimitKind::Erc20, token: Address::repeat_byte(2), amount: 1, period: 0 }];
    assert_eq!(
        s.encode(),
        Err(Error::MalformedSession {
            offset: 59 + 43 + 1 + 20,
            reason: "function on a limited token that its limit does not count"
        })
    );
    s.permissions[0].selector = FixedBytes::new([0xa9, 0x05, 0x9c, 0xbb]);
    s.encode().expect("transfer is counted");
    s.limits.clear();
    s.valid_after = 1 << 48;
    assert_eq!(s.encode(), Err(Error::OutOfRange { field: "valid_after", value: 1 << 48, max: (1 << 48) - 1 }));
}

#[test]
fn only_execute_in_single_or_batch_mode_is_accepted() {
    let call = Call { target: Address::repeat_byte(3), value: U256::ZERO, data: Bytes::from_static(&[1, 2, 3, 4]) };
    let mut data = Execution::Single(call).encode().to_vec();
    data[4] = 0xff; // delegatecall
    assert!(matches!(Execution::decode(&data), Err(Error::UnsupportedExecutionMode(_))));
    data[4] = 0x00;
    data[0] = 0x00;
    assert!(matches!(Execution::decode(&data), Err(Error::UnsupportedAccountFunction(_))));
}

mod json_rpc_form {
    use alloy_primitives::{Address, B256, Bytes, U256};
    use proptest::prelude::*;
    use valet_core::UserOperation;
    use valet_core::user_operation::{Eip7702Auth, Quantity};

    fn operation() -> impl Strategy<Value = UserOperation> {
        (
            any::<[u8; 20]>(),
            any::<[u8; 32]>(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..80),
            (any::<u128>(), any::<u128>(), any::<u128>(), any::<u128>(), any::<u128>()),
            any::<bool>(),
            (any::<u128>(), any::<u128>()),
            prop::option::of((any::<[u8; 20]>(), any::<u64>(), any::<u64>(), any::<bool>(), any::<[u8; 32]>())),
        )
            .prop_map(
                |(sender, nonce, deploy, data, (call, verification, pre, max_fee, priority), paymaster, pm, auth)| {
                    let bytes = Bytes::from(data);
                    let eip7702_auth = auth.map(|(address, chain_id, nonce, parity, rs)| Eip7702Auth {
                        chain_id: Quantity(U256::from(chain_id)),
                        address: Address::from(address),
                        nonce: Quantity(U256::from(nonce)),
                        y_parity: Quantity(U256::from(u8::from(parity))),
                        r: B256::from(rs),
                        s: B256::from(rs),
                    });
                    UserOperation {
                        sender: Address::from(sender),
                        nonce: U256::from_be_bytes(nonce),
                        factory: deploy.then_some(Address::repeat_byte(0xfa)),
                        factory_data: if deploy { bytes.clone() } else { Bytes::new() },
                        call_data: bytes.clone(),
                        call_gas_limit: call,
                        verification_gas_limit: verification,
                        pre_verification_gas: U256::from(pre),
                        max_fee_per_gas: max_fee,
                        max_priority_fee_per_gas: priority,
                        paymaster: paymaster.then_some(Address::repeat_byte(0x9a)),
                        paymaster_verification_gas_limit: if paymaster { pm.0 } else { 0 },
                        paymaster_post_op_gas_limit: if paymaster { pm.1 } else { 0 },
                        paymaster_data: if paymaster { bytes.clone() } else { Bytes::new() },
                        signature: bytes,
                        delegate: eip7702_auth.map(|a| a.address),
                        eip7702_auth,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips_through_json(op in operation()) {
            let text = serde_json::to_string(&op).expect("serialises");
            let back: UserOperation = serde_json::from_str(&text).expect("parses");
            prop_assert_eq!(&back, &op);
            let value: serde_json::Value = serde_json::from_str(&text).expect("json");
            // Absent factory / paymaster: the fields are omitted, as bundlers expect.
            prop_assert_eq!(value.get("factory").is_some(), op.factory.is_some());
            prop_assert_eq!(value.get("factoryData").is_some(), op.factory.is_some());
            prop_assert_eq!(value.get("paymasterPostOpGasLimit").is_some(), op.paymaster.is_some());
            // The delegation travels as eip7702Auth, with r and s as 32-byte data.
            prop_assert_eq!(value.get("eip7702Auth").is_some(), op.eip7702_auth.is_some());
            if let Some(auth) = value.get("eip7702Auth") {
                prop_assert_eq!(auth["r"].as_str().map(str::len), Some(66));
            }
            // Quantities are 0x-hex strings without leading zeros.
            let gas = value["callGasLimit"].as_str().expect("a string");
            prop_assert!(gas.starts_with("0x") && (gas == "0x0" || !gas.starts_with("0x0")));
        }
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "sender": "0x00000000000000000000000000000000000000aa",
            "nonce": "0x1", "callData": "0x", "callGasLimit": "0x10", "verificationGasLimit": 32,
            "preVerificationGas": "100", "maxFeePerGas": "0x3", "maxPriorityFeePerGas": "0x0",
            "signature": "0x", "factory": null, "paymaster": null, "eip7702Auth": null
        })
    }

    #[test]
    fn accepts_what_bundlers_send() {
        let op: UserOperation = serde_json::from_value(minimal()).expect("lenient");
        assert_eq!((op.call_gas_limit, op.verification_gas_limit), (16, 32));
        assert_eq!(op.pre_verification_gas, U256::from(100));
        assert_eq!(op.factory, None);
    }

    #[test]
    fn refuses_malformed_operations_naming_the_field() {
        let mut too_big = minimal();
        too_big["callGasLimit"] = serde_json::json!(format!("0x1{}", "0".repeat(32)));
        let err = serde_json::from_value::<UserOperation>(too_big).expect_err("2^128");
        assert!(err.to_string().contains("callGasLimit"), "{err}");
        let mut not_hex = minimal();
        not_hex["nonce"] = serde_json::json!("0xzz");
        let err = serde_json::from_value::<UserOperation>(not_hex).expect_err("bad hex");
        assert!(err.to_string().contains("`0xzz` is not a quantity"), "{err}");
        let mut missing = minimal();
        missing.as_object_mut().expect("object").remove("sender");
        let err = serde_json::from_value::<UserOperation>(missing).expect_err("no sender");
        assert!(err.to_string().contains("sender"), "{err}");
    }
}
