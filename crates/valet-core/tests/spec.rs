//! Session specs resolve to the exact session, refuse what the validator can't check, and
//! summarise in plain language.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, FixedBytes, U256, address};
use valet_core::spec::{Function, Labels, SessionSpec, SpecContext, summary};
use valet_core::{Error, LimitKind, RuleOp};

const NFT: Address = address!("0x00000000000000000000000000000000000000f7");
const TOKEN: Address = address!("0x0000000000000000000000000000000000000020");
const NOW: u64 = 1_800_000_000;

fn ctx() -> SpecContext {
    SpecContext {
        now: NOW,
        session_key: Address::repeat_byte(0x5e),
        account_epoch: 2,
        names: BTreeMap::from([("ValetNFT".to_string(), NFT), ("ValetToken".to_string(), TOKEN)]),
    }
}

use valet_core::spec::DEMO_MINT_SPEC as MINT;

#[test]
fn the_demo_spec_resolves_to_the_demo_session() {
    let s = SessionSpec::from_toml(MINT).expect("parses").resolve(&ctx()).expect("resolves");
    assert_eq!((s.valid_after, s.valid_until, s.epoch), (NOW, NOW + 3_599, 2));
    let p = &s.permissions[0];
    assert_eq!(p.target, NFT);
    assert_eq!(p.selector, FixedBytes::new([0x40, 0xc1, 0x0f, 0x19]));
    assert_eq!(p.max_uses, 10);
    assert_eq!(p.rules[0].op, RuleOp::SelfAccount);
    assert_eq!((p.rules[1].arg, p.rules[1].op, p.rules[1].values[0]), (1, RuleOp::Lte, B256::from(U256::from(5))));
}

#[test]
fn json_specs_and_limits() {
    let json = r#"{
        "valid_until": 1800086400,
        "permission": [{ "target": "ValetToken", "function": "transfer(address to, uint256 amount)",
                         "rules": [{ "arg": "to", "eq": "0x00000000000000000000000000000000000000fe" }] }],
        "limit": [{ "token": "ValetToken", "amount": "10 ether", "period": "1d" }, { "native": "0.5 ether" }]
    }"#;
    let s = SessionSpec::from_json(json).expect("parses").resolve(&ctx()).expect("resolves");
    assert_eq!(s.limits[0].kind, LimitKind::Erc20);
    assert_eq!((s.limits[0].amount, s.limits[0].period), (10_000_000_000_000_000_000, 86_400));
    assert_eq!((s.limits[1].kind, s.limits[1].amount), (LimitKind::Native, 500_000_000_000_000_000));
}

fn refusal(toml: &str) -> String {
    match SessionSpec::from_toml(toml).and_then(|s| s.resolve(&ctx())) {
        Err(Error::Spec { at, reason }) => format!("{at}: {reason}"),
        other => panic!("expected a spec error, got {other:?}"),
    }
}

#[test]
fn refusals_name_the_problem() {
    let unknown = MINT.replace(r#"arg = "quantity""#, r#"arg = "qty""#);
    assert_eq!(
        refusal(&unknown),
        "permission 1, rule 2: `qty` is not an argument of mint(address,uint256) (arguments: to, quantity)"
    );
    let dynamic = r#"
valid_for = "1h"
[[permission]]
target = "ValetNFT"
function = "setURI(uint256 id, string uri)"
rules = [{ arg = "uri", eq = "x" }]
"#;
    assert!(refusal(dynamic).contains("argument `uri` has dynamic or multi-word type string"), "{}", refusal(dynamic));
    let signed = r#"
valid_for = "1h"
[[permission]]
target = "ValetNFT"
function = "adjust(int256 delta)"
rules = [{ arg = "delta", lt = 5 }]
"#;
    assert!(refusal(signed).contains("only eq, ne and one_of apply"), "{}", refusal(signed));
    let too_big = MINT.replace("lte = 5", "lte = \"0x1\", gt = 1");
    let zero_start = MINT.replace("valid_for = \"1h\"", "valid_after = 0\nvalid_for = \"1h\"");
    assert!(refusal(&zero_start).starts_with("valid_after: 0 is not a start time"), "{}", refusal(&zero_start));
    let forever = MINT.replace("valid_for = \"1h\"", "valid_for = \"18446744073709551615s\"");
    assert!(refusal(&forever).starts_with("valid_for: `18446744073709551615s` from"), "{}", refusal(&forever));
    let many = MINT.replace("max_uses = 10", "max_uses = 70000");
    assert!(refusal(&many).contains("max_uses = 70000 is above 65535"), "{}", refusal(&many));
    assert_eq!(
        refusal(&too_big),
        "permission 1, rule 2: give exactly one of eq, ne, gt, gte, lt, lte, in_range, one_of"
    );
    let unknown_target = MINT.replace("\"ValetNFT\"", "\"Nope\"");
    assert_eq!(
        refusal(&unknown_target),
        "permission 1: `Nope` is neither an address nor a known name (known: ValetNFT, ValetToken)"
    );
    assert!(matches!(SessionSpec::from_toml("valid_for = 1\nbogus = 2"), Err(Error::Spec { .. })));
}

#[test]
fn argument_words_skip_dynamic_heads_and_fixed_arrays() {
    let f = Function::parse("f(bytes data, uint256[3] xs, address to)").expect("parses");
    assert_eq!(f.signature(), "f(bytes,uint256[3],address)");
    let words: Vec<usize> = f.args.iter().map(|a| a.word).collect();
    assert_eq!(words, vec![0, 1, 4]);
    assert_eq!(Function::parse("transfer(address,uint)").expect("parses").signature(), "transfer(address,uint256)");
}

#[test]
fn the_summary_says_what_the_owner_grants() {
    let spec = SessionSpec::from_toml(MINT).expect("parses");
    let session = spec.resolve(&ctx()).expect("resolves");
    let labels = Labels { names: BTreeMap::from([(NFT, "ValetNFT".to_string())]), ..Labels::default() };
    let lines = summary(&session, &spec.functions().expect("functions"), &labels);
    assert_eq!(lines[0], "Valid for 1 hour: from 2027-01-15 08:00 UTC until 2027-01-15 09:00 UTC.");
    assert_eq!(
        lines[1],
        "May call mint(to, quantity) on ValetNFT (0x0000…00f7), at most 10 times, only if to is this account and quantity ≤ 5."
    );
    assert_eq!(
        lines[2],
        "May spend up to 0.01 ETH of your ETH on network fees, counted at each operation's maximum cost."
    );
    assert!(lines.contains(&"Its calls cannot send any of your ETH.".to_string()));
    assert_eq!(session.fee_budget, ETHER / 100);
}

/// Every session states how fees are paid: by a sponsor (the default), from a budget, per period.
#[test]
fn fee_rules_resolve_and_say_who_pays() {
    let labels = Labels::default();
    let sponsored = MINT.replace("[fees]\nbudget = \"0.01 ether\"\n", "");
    assert_ne!(sponsored, MINT, "the demo spec has a fee rule");
    let spec = SessionSpec::from_toml(&sponsored).expect("parses");
    let s = spec.resolve(&ctx()).expect("resolves");
    assert_eq!((s.fee_budget, s.paymasters.len()), (0, 0));
    let lines = summary(&s, &spec.functions().expect("functions"), &labels);
    assert!(
        lines.contains(&"Network fees are paid by a sponsor (a paymaster), never from your ETH.".to_string()),
        "{lines:?}"
    );

    let explicit = "fees = \"sponsored\"\n".to_string() + &sponsored;
    let s2 = SessionSpec::from_toml(&explicit).expect("parses").resolve(&ctx()).expect("resolves");
    assert_eq!(s2, s, "fees = \"sponsored\" is the default said aloud");

    let listed = sponsored.clone() + "[fees]\npaymasters = [\"0x00000000000000000000000000000000000000aa\"]\n";
    let s3 = SessionSpec::from_toml(&listed).expect("parses").resolve(&ctx()).expect("resolves");
    assert_eq!(
        (s3.fee_budget, s3.paymasters.clone()),
        (0, vec![address!("0x00000000000000000000000000000000000000aa")])
    );
    let lines = summary(&s3, &spec.functions().expect("functions"), &labels);
    assert!(lines.iter().any(|l| l.ends_with("never from your ETH; only 0x0000…00AA may pay.")), "{lines:?}");

    let daily = sponsored.clone() + "[fees]\nper_period = \"0.001 ether\"\nperiod = \"1d\"\n";
    let s4 = SessionSpec::from_toml(&daily).expect("parses").resolve(&ctx()).expect("resolves");
    assert_eq!(s4.fee_budget, valet_core::session::MAX_FEE_BUDGET);
    assert_eq!((s4.limits[0].kind, s4.limits[0].amount, s4.limits[0].period), (LimitKind::Fees, ETHER / 1000, 86_400));
    let lines = summary(&s4, &spec.functions().expect("functions"), &labels);
    assert!(
        lines.contains(&"May spend up to 0.001 ETH per 1 day (it refills) of your ETH on network fees, counted at each operation's maximum cost.".to_string()),
        "{lines:?}"
    );
    let both = daily.replace("period = \"1d\"", "period = \"1d\"\nbudget = \"0.005 ether\"");
    let s5 = SessionSpec::from_toml(&both).expect("parses").resolve(&ctx()).expect("resolves");
    let lines = summary(&s5, &spec.functions().expect("functions"), &labels);
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("May spend up to 0.005 ETH of your ETH on network fees, and at most 0.001 ETH per 1 day")),
        "{lines:?}"
    );

    assert_eq!(refusal(&("fees = \"free\"\n".to_string() + &sponsored)).split(':').next(), Some("fees"));
    assert!(refusal(&(sponsored.clone() + "[fees]\nper_period = \"1 gwei\"\n")).contains("per_period needs a period"));
    assert!(
        refusal(&(sponsored.clone() + "[fees]\nbudget = \"2000000 ether\"\n"))
            .contains("above the most a session may hold")
    );
    assert!(refusal(&(sponsored + "[fees]\n")).contains("give budget"));
}

/// Rules on arguments narrower than a word compile to rules that refuse words with bits beyond
/// the type (a target that truncates would read them as other values).
#[test]
fn narrow_arguments_compile_to_rules_that_refuse_dirty_words() {
    let spec = |rule: &str, function: &str| {
        format!(
            "valid_for = \"1h\"\n[[permission]]\ntarget = \"ValetNFT\"\nfunction = \"{function}\"\nrules = [{rule}]\n"
        )
    };
    let resolve = |text: String| SessionSpec::from_toml(&text).expect("parses").resolve(&ctx());
    let word = |x: u64| B256::from(U256::from(x));
    let max8 = B256::from(U256::from(255));

    let gte = resolve(spec("{ arg = \"level\", gte = 100 }", "setLevel(uint8 level)")).expect("resolves");
    assert_eq!(gte.permissions[0].rules.len(), 1);
    let r = &gte.permissions[0].rules[0];
    assert_eq!((r.op, r.values.clone()), (RuleOp::InRange, vec![word(100), max8]));

    let gt = resolve(spec("{ arg = \"level\", gt = 100 }", "setLevel(uint8 level)")).expect("resolves");
    assert_eq!(gt.permissions[0].rules[0].values, vec![word(101), max8]);

    let ne = resolve(spec("{ arg = \"level\", ne = 3 }", "setLevel(uint8 level)")).expect("resolves");
    let rules = &ne.permissions[0].rules;
    assert_eq!((rules[0].op, rules[1].op, rules[1].values[0]), (RuleOp::Ne, RuleOp::Lte, max8));

    let flag = resolve(spec("{ arg = \"on\", ne = true }", "set(bool on)")).expect("resolves");
    assert_eq!(flag.permissions[0].rules[1].values[0], word(1), "a bool is 0 or 1");

    let addr = resolve(spec("{ arg = \"to\", gt = \"0x0000000000000000000000000000000000000001\" }", "f(address to)"))
        .expect("ok");
    let max160 = B256::from((U256::from(1) << 160) - U256::from(1));
    assert_eq!(addr.permissions[0].rules[0].values[1], max160);

    // Full words are left as written; lte/lt/eq on narrow types already refuse dirty words.
    let full = resolve(spec("{ arg = \"x\", gte = 100 }", "f(uint256 x)")).expect("resolves");
    assert_eq!(full.permissions[0].rules[0].op, RuleOp::Gte);
    let lte = resolve(spec("{ arg = \"level\", lte = 5 }", "setLevel(uint8 level)")).expect("resolves");
    assert_eq!(lte.permissions[0].rules[0].op, RuleOp::Lte);

    // The summary states the rule as written, without the compiler's guard.
    let text = spec("{ arg = \"level\", ne = 3 }", "setLevel(uint8 level)");
    let parsed = SessionSpec::from_toml(&text).expect("parses");
    let lines = summary(&ne, &parsed.functions().expect("functions"), &Labels::default());
    assert!(lines[1].ends_with("only if level ≠ 3."), "{lines:?}");
    let text = spec("{ arg = \"level\", gte = 100 }", "setLevel(uint8 level)");
    let parsed = SessionSpec::from_toml(&text).expect("parses");
    let lines = summary(&gte, &parsed.functions().expect("functions"), &Labels::default());
    assert!(lines[1].ends_with("only if level ≥ 100."), "{lines:?}");

    // The evaluator (and so the validator) refuses the dirty word 0x103 under the compiled rule.
    use valet_core::spec::explain;
    let violated = valet_core::Refusal::RuleViolated {
        call: 0,
        permission: 0,
        rule: 0,
        arg: 0,
        op: RuleOp::InRange,
        value: U256::from(0x103),
    };
    let text = spec("{ arg = \"level\", gte = 100 }", "setLevel(uint8 level)");
    let parsed = SessionSpec::from_toml(&text).expect("parses");
    assert_eq!(
        explain(&violated, &gte, &parsed.functions().expect("functions"), &Labels::default()),
        "level = 0x103 is not a uint8: the word has bits beyond the type, which the session refuses (a target could read it as another value)"
    );

    // Signed and bytesN narrower than a word: only eq and one_of.
    assert!(refusal(&spec("{ arg = \"d\", ne = 1 }", "f(int8 d)")).contains("only eq and one_of"));
    assert!(refusal(&spec("{ arg = \"b\", lte = \"0x01\" }", "f(bytes4 b)")).contains("only eq and one_of"));
    assert!(
        refusal(&spec("{ arg = \"level\", gt = 255 }", "setLevel(uint8 level)"))
            .contains("no uint8 is greater than 255")
    );
}

/// A token limit counts only what the token's counted functions move: a session may not also
/// permit another function of the same token.
#[test]
fn a_limited_token_permits_only_counted_functions() {
    let text = r#"
valid_for = "1h"
[[permission]]
target   = "ValetToken"
function = "burn(uint256 amount)"
[[limit]]
token  = "ValetToken"
amount = "10 ether"
"#;
    assert_eq!(
        refusal(text),
        "permission 1: burn(uint256 amount) on ValetToken: the session limits this token, and the limit counts only \
         transfer, transferFrom, approve and increaseAllowance; any other function could move it uncounted"
    );
    // Calls to other contracts are allowed, and the summary says what the limit does not see.
    let other = r#"
valid_for = "1h"
[[permission]]
target   = "ValetToken"
function = "approve(address spender, uint256 amount)"
[[permission]]
target   = "ValetNFT"
function = "buy(uint256 id)"
[[limit]]
token  = "ValetToken"
amount = "10 ether"
"#;
    let spec = SessionSpec::from_toml(other).expect("parses");
    let s = spec.resolve(&ctx()).expect("resolves");
    let labels = Labels { tokens: BTreeMap::from([(TOKEN, ("VLT".to_string(), 18))]), ..Labels::default() };
    let lines = summary(&s, &spec.functions().expect("functions"), &labels);
    assert!(lines.contains(&"At most 10 VLT in all transferred or approved.".to_string()), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("does not see what other contracts take through approvals")), "{lines:?}");
}

/// The demo's other two sessions resolve as their summaries say.
#[test]
fn the_payment_and_vote_specs_resolve() {
    let mut context = ctx();
    let payee = Address::repeat_byte(0xbe);
    let dao = Address::repeat_byte(0xda);
    context.names.insert("Payee".into(), payee);
    context.names.insert("ValetDAO".into(), dao);
    let pay =
        SessionSpec::from_toml(valet_core::spec::DEMO_PAYMENT_SPEC).expect("parses").resolve(&context).expect("ok");
    assert_eq!(pay.valid_until, NOW + 7 * 86_400 - 1);
    assert_eq!((pay.limits[0].token, pay.limits[0].amount, pay.limits[0].period), (TOKEN, 10 * ETHER, 86_400));
    assert_eq!(
        (pay.permissions[0].rules[0].op, pay.permissions[0].rules[0].values[0]),
        (RuleOp::Eq, payee.into_word())
    );
    let vote = SessionSpec::from_toml(valet_core::spec::DEMO_VOTE_SPEC).expect("parses").resolve(&context).expect("ok");
    let p = &vote.permissions[0];
    assert_eq!((p.target, p.max_uses, p.rules[0].arg, p.rules[0].op), (dao, 3, 1, RuleOp::InRange));
    assert_eq!(p.rules[0].values, vec![B256::ZERO, B256::from(U256::from(2))]);
}

const ETHER: u128 = 1_000_000_000_000_000_000;

/// Refusals read in the spec's words: argument names, the rule as the summary states it, token
/// units, and what to do next.
#[test]
fn refusals_are_explained_in_the_specs_words() {
    use valet_core::Refusal;
    use valet_core::spec::explain;
    let spec = SessionSpec::from_toml(MINT).expect("parses");
    let session = spec.resolve(&ctx()).expect("resolves");
    let functions = spec.functions().expect("functions");
    let labels = Labels {
        names: BTreeMap::from([(NFT, "ValetNFT".to_string())]),
        tokens: BTreeMap::from([(TOKEN, ("VLT".to_string(), 18))]),
    };
    let rule = Refusal::RuleViolated { call: 0, permission: 0, rule: 1, arg: 1, op: RuleOp::Lte, value: U256::from(6) };
    assert_eq!(
        explain(&rule, &session, &functions, &labels),
        "call 1 (mint on ValetNFT (0x0000…00f7)): quantity = 6, but the session requires quantity ≤ 5"
    );
    let other = Address::repeat_byte(0xbb);
    let to = Refusal::RuleViolated {
        call: 0,
        permission: 0,
        rule: 0,
        arg: 0,
        op: RuleOp::SelfAccount,
        value: U256::from_be_slice(other.as_slice()),
    };
    assert_eq!(
        explain(&to, &session, &functions, &labels),
        "call 1 (mint on ValetNFT (0x0000…00f7)): to = 0xbBbB…BBbB, but the session requires to is this account"
    );
    let used = Refusal::PermissionUsesExhausted { id: B256::ZERO, permission: 0, max_uses: 10 };
    assert_eq!(
        explain(&used, &session, &functions, &labels),
        "mint on ValetNFT (0x0000…00f7) has been called all 10 times the session allows; grant a new session for more"
    );
    let late = Refusal::OutsideWindow { valid_after: NOW, valid_until: NOW + 3_599, now: NOW + 4_000 };
    assert_eq!(
        explain(&late, &session, &functions, &labels),
        "the session expired at 2027-01-15 09:00:00 UTC for an operation sent now, which may be included as late as \
         2027-01-15 09:06:40 UTC; grant a new one"
    );

    let pay = SessionSpec::from_toml(valet_core::spec::DEMO_PAYMENT_SPEC).expect("parses");
    let mut context = ctx();
    context.names.insert("Payee".into(), other);
    let pay_session = pay.resolve(&context).expect("resolves");
    let over = Refusal::LimitExceeded { limit: 0, spent: 7 * ETHER, amount: U256::from(4 * ETHER), cap: 10 * ETHER };
    assert_eq!(
        explain(&over, &pay_session, &pay.functions().expect("functions"), &labels),
        "this operation spends 4 VLT, but 7 VLT of the 10 VLT allowed per 1 day is already spent this period; \
         it refills at the next period"
    );
}

/// ERC-7715-style permission requests become the sessions they ask for.
#[test]
fn erc7715_requests_become_sessions() {
    use valet_core::spec::from_erc7715;
    let payee = "0x00000000000000000000000000000000000000be";
    let request = serde_json::json!({
        "chainId": "0x7a69",
        "permission": { "type": "erc20-token-periodic", "isAdjustmentAllowed": false,
                        "data": { "tokenAddress": "ValetToken", "periodAmount": "10 ether", "periodDuration": 86400 } },
        "rules": [{ "type": "expiry", "data": { "timestamp": NOW + 7 * 86_400 } }, { "type": "payee", "data": { "payee": payee } }]
    });
    let s = from_erc7715(&request, 31_337).expect("translates").resolve(&ctx()).expect("resolves");
    assert_eq!((s.valid_after, s.valid_until), (NOW, NOW + 7 * 86_400 - 1), "the expiry is exclusive");
    assert_eq!((s.limits[0].token, s.limits[0].amount, s.limits[0].period), (TOKEN, 10 * ETHER, 86_400));
    assert_eq!(s.permissions[0].target, TOKEN);
    assert_eq!(s.permissions[0].rules[0].values[0], payee.parse::<Address>().expect("address").into_word());

    let native = serde_json::json!({
        "permission": { "type": "native-token-allowance", "data": { "allowance": "0x16345785d8a0000" } },
        "rules": [{ "type": "expiry", "data": { "timestamp": NOW + 60 } }, { "type": "payee", "data": { "addresses": [payee] } }]
    });
    let s = from_erc7715(&native, 31_337).expect("translates").resolve(&ctx()).expect("resolves");
    assert_eq!((s.limits[0].kind, s.limits[0].amount, s.limits[0].period), (LimitKind::Native, ETHER / 10, 0));
    assert_eq!((s.permissions[0].selector, s.permissions[0].value_limit), (FixedBytes::ZERO, ETHER / 10));

    let refused = |request: serde_json::Value| match from_erc7715(&request, 31_337) {
        Err(Error::Spec { at, reason }) => format!("{at}: {reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut no_payee = native.clone();
    no_payee["rules"] = serde_json::json!([{ "type": "expiry", "data": { "timestamp": NOW + 60 } }]);
    assert!(refused(no_payee).contains("needs a payee rule"));
    let mut stream = request.clone();
    stream["permission"]["type"] = "erc20-token-stream".into();
    assert!(refused(stream).contains("streams are not supported"));
    let mut no_expiry = request.clone();
    no_expiry["rules"] = serde_json::json!([]);
    assert!(refused(no_expiry).contains("an expiry rule is required"));
    let mut other_chain = request;
    other_chain["chainId"] = "0x1".into();
    assert_eq!(refused(other_chain), "chainId: 0x1 is not this chain (31337)");
}

/// What the dApp's custom form sends for odd input is refused in the words its user typed:
/// naming the field, the value and where (permission and rule counted from 1), never a JSON
/// parser's "invalid type: floating point 1e+23, expected u32 at line 1 column 80".
#[test]
fn odd_inputs_are_refused_in_the_users_words() {
    let json = |permission: &str| {
        format!(
            r#"{{ "valid_for": "1h", "permission": [{{ "target": "ValetNFT", "function": "mint(address to, uint256 quantity)" }}, {permission}] }}"#
        )
    };
    let refused = |text: &str| match SessionSpec::from_json(text).and_then(|s| s.resolve(&ctx())) {
        Err(Error::Spec { at, reason }) => format!("{at}: {reason}"),
        other => panic!("expected a spec error, got {other:?}"),
    };
    let huge = json(r#"{ "target": "ValetNFT", "max_uses": 1e23 }"#);
    assert_eq!(refused(&huge), "permission 2: max_uses = 1e23 is too large: at most 4294967295");
    let negative = json(r#"{ "target": "ValetNFT", "max_uses": -1 }"#);
    assert_eq!(refused(&negative), "permission 2: max_uses = -1 is negative: give a whole number from 0");
    let half = json(r#"{ "target": "ValetNFT", "max_uses": 2.5 }"#);
    assert_eq!(refused(&half), "permission 2: max_uses = 2.5 is not a whole number");
    let words = json(r#"{ "target": "ValetNFT", "max_uses": "ten" }"#);
    assert_eq!(refused(&words), "permission 2: max_uses = `ten` is not a whole number");
    let digits = json(r#"{ "target": "ValetNFT", "function": "mint(address to, uint256 quantity)", "max_uses": "3" }"#);
    let session = SessionSpec::from_json(&digits).expect("digits in a string are a count").resolve(&ctx()).expect("ok");
    assert_eq!(session.permissions[1].max_uses, 3);
    let minus = json(r#"{ "target": "ValetNFT", "value_limit": "-1 ether" }"#);
    assert_eq!(refused(&minus), "permission 2: value_limit: `-1 ether` is negative");
    let rule = json(
        r#"{ "target": "ValetNFT", "function": "mint(address to, uint256 quantity)", "rules": [{ "arg": "to", "eq": "$account" }, { "arg": "qty", "lte": 5 }] }"#,
    );
    assert!(refused(&rule).starts_with("permission 2, rule 2: `qty` is not an argument"), "{}", refused(&rule));
    let fees = r#"{ "valid_for": "1h", "permission": [{ "target": "ValetNFT" }], "fees": 5 }"#;
    assert!(refused(fees).starts_with("fees: write \"sponsored\""), "{}", refused(fees));
    let top = r#"{ "valid_for": "1h", "max_uses": 1e23, "permission": [{ "target": "ValetNFT" }] }"#;
    assert_eq!(refused(top), "spec: max_uses = 1e23 is too large: at most 4294967295");
}

/// One grammar for durations (docs/spec.md): a whole number of at least 1 and a unit, s, m, h, d
/// or w. A bare number, zero and anything else are refused saying what to write.
#[test]
fn durations_have_one_grammar() {
    use valet_core::spec::parse_duration;
    for (text, seconds) in
        [("90s", 90), ("30m", 1_800), ("1h", 3_600), ("7d", 604_800), ("2w", 1_209_600), ("10 m", 600)]
    {
        assert_eq!(parse_duration(text).expect(text), seconds, "{text}");
    }
    let reason = |text: &str| match parse_duration(text) {
        Err(Error::Spec { reason, .. }) => reason,
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(reason("10"), "`10` needs a unit: 10s, 10m, 10h, 10d or 10w");
    assert_eq!(reason("0"), "`0` needs a unit: 0s, 0m, 0h, 0d or 0w");
    assert_eq!(reason("0s"), "`0s` is no time at all: give at least 1s");
    for bad in ["1.5h", "1h30m", "-1d", "h", "", "10x"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    let spec = MINT.replace("valid_for = \"1h\"", "valid_for = \"10\"");
    assert_eq!(refusal(&spec), "valid_for: `10` needs a unit: 10s, 10m, 10h, 10d or 10w");
}

/// A session longer than 30 days is granted if asked for, with a word to the owner first.
#[test]
fn a_very_long_session_comes_with_a_warning() {
    let resolved = |valid_for: &str| {
        SessionSpec::from_toml(&MINT.replace("valid_for = \"1h\"", &format!("valid_for = \"{valid_for}\"")))
            .expect("parses")
            .resolve(&ctx())
            .expect("resolves")
    };
    assert!(valet_core::spec::warnings(&resolved("30d")).is_empty());
    assert_eq!(valet_core::spec::warnings(&resolved("60d")), ["this session lasts 60 days: consider a shorter one"]);
    assert_eq!(
        valet_core::spec::warnings(&resolved("99999d")),
        ["this session lasts 273 years: consider a shorter one"]
    );
}
