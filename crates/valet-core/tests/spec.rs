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
        "permission 0, rule 1: `qty` is not an argument of mint(address,uint256) (arguments: to, quantity)"
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
    assert_eq!(
        refusal(&too_big),
        "permission 0, rule 1: give exactly one of eq, ne, gt, gte, lt, lte, in_range, one_of"
    );
    let unknown_target = MINT.replace("\"ValetNFT\"", "\"Nope\"");
    assert_eq!(refusal(&unknown_target), "permission 0: `Nope` is neither an address nor a known name");
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
    assert!(lines.contains(&"It cannot send your ETH.".to_string()));
}
