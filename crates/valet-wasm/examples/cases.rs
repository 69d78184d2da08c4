//! The native side of the WebAssembly differential test: writes random evaluator cases (session,
//! calls, indices given or found, gas and paymaster, time, counters, epoch, installation) with
//! what valet-core compiled natively answers (accepted with indices and counters, or the refusal
//! in the words the CLI prints), and the demo mint spec's session, summary, typed data and
//! digest. `web/wasm-tests/` replays every case through the WebAssembly build and requires the
//! same answers.
//!
//!   cargo run -p valet-wasm --example cases -- N SEED OUT.json
//!
//! The case generation follows `crates/valet-client/tests/differential.rs` (which compares the
//! evaluator with the deployed validator), with more accepting cases and spec words (function
//! names, address names, token units) for the refusals' texts.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, FixedBytes, U256, address, keccak256};
use serde_json::{Value, json};
use valet_core::session::MAX_FEE_BUDGET;
use valet_core::spec::{self, Function, Labels, SessionSpec, SpecContext};
use valet_core::{
    Call, Counters, Execution, Limit, LimitKind, OpGas, Permission, Request, Rule, RuleOp, Session, SessionState,
    eip712,
};
use valet_wasm::api::{EvaluationJson, TokenLabel, answer, run};

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

/// Plain transfer, ERC-20 transfer, ERC-20 approve, a mint.
const SELECTORS: [[u8; 4]; 4] =
    [[0, 0, 0, 0], [0xa9, 0x05, 0x9c, 0xbb], [0x09, 0x5e, 0xa7, 0xb3], [0x4c, 0x5d, 0x79, 0x2f]];
/// The functions of [`SELECTORS`], as a spec writes them.
const FUNCTIONS: [Option<&str>; 4] = [
    None,
    Some("transfer(address to, uint256 amount)"),
    Some("approve(address spender, uint256 amount)"),
    Some("mint(address to, uint256 quantity, uint256 tier)"),
];
const GWEI: u128 = 1_000_000_000;
const PAYMASTERS: [Address; 2] = [Address::repeat_byte(0x91), Address::repeat_byte(0x92)];
const TARGETS: [Address; 3] = [Address::repeat_byte(0x71), Address::repeat_byte(0x72), Address::repeat_byte(0x73)];
const SESSION_KEY: Address = address!("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
const VALIDATOR: Address = address!("0x5615dEB798BB3E4dFa0139dFa1b3D433Cc23b72f");
const CHAIN_ID: u64 = 31_337;

fn random_session(r: &mut Rng, epoch: u64) -> Session {
    // Windows from second 1 with 1-second periods probe the edges of the time checks.
    let valid_after = if r.chance(10) { 1 } else { 1_000 };
    let valid_until = valid_after + 10 + r.below(1_000);
    let period = |r: &mut Rng| r.pick(&[0, 0, 100, 1]);
    let mut limits = Vec::new();
    for _ in 0..r.below(3) {
        limits.push(match r.below(3) {
            0 => Limit { kind: LimitKind::Native, token: Address::ZERO, amount: r.below(60).into(), period: period(r) },
            1 => {
                Limit { kind: LimitKind::Erc20, token: r.pick(&TARGETS), amount: r.below(60).into(), period: period(r) }
            }
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
            let op = RuleOp::from_code(r.below(9) as u8).expect("0..8 are rule codes");
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
        let target = r.pick(&TARGETS);
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
        session_key: SESSION_KEY,
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

fn random_calls(r: &mut Rng, s: &Session, account: Address, friendly: bool) -> (Bytes, Vec<u8>) {
    let n = 1 + r.below(3) as usize;
    let mut calls = Vec::new();
    let mut indices = Vec::new();
    for _ in 0..n {
        let k = if r.chance(92) { r.below(s.permissions.len() as u64) } else { r.below(5) } as usize;
        let p = s.permissions.get(k).unwrap_or(&s.permissions[0]);
        let target = if r.chance(95) {
            p.target
        } else {
            r.pick(&[TARGETS[0], account, TARGETS[2], valet_core::ENTRY_POINT_V07])
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
                    Some(rule) if r.chance(85) => satisfying(rule, account),
                    _ if r.chance(15) => account.into_word(),
                    _ => B256::from(U256::from(r.below(25))),
                };
                data.extend_from_slice(word.as_slice());
            }
            if r.chance(5) {
                data.truncate(r.below(data.len() as u64 + 1) as usize);
            }
        }
        let value =
            if friendly || r.chance(90) { U256::ZERO } else { U256::from(r.pick(&[30u128, 10u128.pow(18) + 1])) };
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

/// Gas limits, fees and a paymaster: mostly ordinary, sometimes enormous, sometimes free,
/// sometimes through a paymaster the session lists or not. `kind` picks friendly (sponsored
/// or cheap) fields for accepting cases.
fn random_gas(r: &mut Rng, friendly: bool) -> OpGas {
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
    let paymaster_and_data = match r.below(if friendly { 6 } else { 10 }) {
        0..=2 => Bytes::new(),
        3..=7 => {
            let p = r.pick(&PAYMASTERS);
            [p.as_slice(), &gas(r).to_be_bytes(), &gas(r).to_be_bytes(), &[0xc0, 0xff, 0xee]].concat().into()
        }
        8 => [Address::repeat_byte(0x93).as_slice(), &gas(r).to_be_bytes(), &gas(r).to_be_bytes()].concat().into(),
        _ => [Address::ZERO.as_slice(), &gas(r).to_be_bytes(), &gas(r).to_be_bytes()].concat().into(),
    };
    OpGas {
        account_gas_limits: pack128(gas(r), gas(r)),
        pre_verification_gas: U256::from(gas(r)),
        gas_fees: pack128(u128::from(r.below(3)) * GWEI, if friendly { max_fee.min(GWEI) } else { max_fee }),
        paymaster_and_data,
    }
}

fn random_counters(r: &mut Rng, s: &Session, account_epoch: u64, enable: bool, friendly: bool) -> Counters {
    let state = match (enable, r.below(if friendly { 100 } else { 20 })) {
        (true, 0) => SessionState::Enabled,
        (true, 1) => SessionState::Revoked,
        (true, _) => SessionState::None,
        (false, 0) => SessionState::None,
        (false, 1) => SessionState::Revoked,
        (false, _) => SessionState::Enabled,
    };
    let mut permission_uses = [0u32; 9];
    for u in &mut permission_uses {
        *u = if !friendly && r.chance(25) { 1 } else { 0 };
    }
    let fees_spent = match r.below(if friendly { 40 } else { 8 }) {
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
                _ if friendly => (0, 0),
                LimitKind::Fees => (r.pick(&[0u128, 10u128.pow(14), 10u128.pow(16)]), r.below(3)),
                _ => (u128::from(r.below(60)), r.below(3)),
            })
            .collect(),
        fees_spent,
        installed: friendly || r.chance(97),
        account_epoch,
    }
}

/// Case `case` under `seed`, with the native answer.
fn case(seed: u64, case: u64) -> Value {
    let r = &mut Rng::of(seed, case);
    // About half the cases are drawn to pass most checks, so that acceptances are common.
    let friendly = r.chance(50);
    let account = Address::from_word(keccak256(case.to_be_bytes()));
    let account_epoch = if r.chance(50) { 0 } else { r.next() };
    let epoch =
        if friendly || r.chance(95) { account_epoch } else { r.pick(&[account_epoch.wrapping_add(1), 0, u64::MAX]) };
    let session = random_session(r, epoch);
    let packed = session.encode().expect("generated sessions encode");
    let enable = r.chance(20);
    let counters = random_counters(r, &session, account_epoch, enable, friendly);
    let (call_data, indices) = random_calls(r, &session, account, friendly);
    let gas = random_gas(r, friendly);
    let claimed_time = session.valid_after - r.below(2).min(session.valid_after - 1)
        + r.below(session.valid_until - session.valid_after + 10);
    let now = match r.below(if friendly { 20 } else { 8 }) {
        0 => session.valid_after - 1,
        1 => session.valid_until + 1,
        2 => claimed_time + r.below(300),
        _ => claimed_time,
    };
    // Half the cases name the indices (as a signed operation does); half let the evaluator find
    // them (as the client does before signing).
    let given = r.chance(50);
    let request = Request {
        account,
        validator: VALIDATOR,
        call_data: &call_data,
        indices: &indices,
        claimed_time,
        enable,
        gas: gas.clone(),
        now,
    };
    // Spec words for a third of the cases: functions, names of targets, a token's units.
    let mut input = EvaluationJson::new(
        packed,
        account,
        VALIDATOR,
        call_data.clone(),
        given.then(|| indices.clone()),
        claimed_time,
        enable,
        &gas,
        now,
        &counters,
    );
    let mut functions = Vec::new();
    let mut labels = Labels::default();
    if r.chance(33) {
        input.functions = session
            .permissions
            .iter()
            .map(|p| SELECTORS.iter().position(|s| p.selector.0 == *s).and_then(|i| FUNCTIONS[i]).map(String::from))
            .collect();
        functions = input
            .functions
            .iter()
            .map(|f| f.as_deref().map(|f| Function::parse(f).expect("the generator's functions parse")))
            .collect();
        for (i, target) in TARGETS.iter().enumerate() {
            let name = format!("Target{}", i + 1);
            input.names.insert(name.clone(), *target);
            labels.names.insert(*target, name);
        }
        input.tokens.insert(TARGETS[1], TokenLabel { symbol: "TOK".into(), decimals: 6 });
        labels.tokens.insert(TARGETS[1], ("TOK".into(), 6));
    }
    // The native answer, from valet-core itself.
    let result = run(&session, &counters, &request, given);
    let expected = answer(result, &session, &functions, &labels);
    json!({ "case": case, "input": input, "expected": expected })
}

/// The demo mint spec, natively: session, summary, warnings, typed data, digest.
fn demo() -> Value {
    let now = 1_800_000_000;
    let account = address!("0xc3A901a3Cb2aa3cEC6487446e9c73b1813Be966F");
    let nft = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
    let names = BTreeMap::from([("ValetNFT".to_string(), nft)]);
    let parsed = SessionSpec::from_toml(spec::DEMO_MINT_SPEC).expect("the demo spec parses");
    let ctx = SpecContext { now, session_key: SESSION_KEY, account_epoch: 0, names: names.clone() };
    let session = parsed.resolve(&ctx).expect("the demo spec resolves");
    let functions = parsed.functions().expect("the demo spec's functions parse");
    let mut labels = Labels::default();
    labels.names.insert(nft, "ValetNFT".into());
    // A mint of 5 to the account: the first accepted, the eleventh refused (10 uses allowed).
    let mint = functions[0].as_ref().expect("the demo permission has a function");
    let data =
        [mint.selector().as_slice(), account.into_word().as_slice(), U256::from(5).to_be_bytes::<32>().as_slice()]
            .concat();
    let call_data = Execution::Single(Call { target: nft, value: U256::ZERO, data: data.into() }).encode();
    let packed = session.encode().expect("encodes");
    let evaluations: Vec<Value> = [0u32, 10]
        .iter()
        .map(|&uses| {
            let mut counters = Counters { state: SessionState::Enabled, installed: true, ..Counters::default() };
            counters.permission_uses[0] = uses;
            let gas = OpGas::default();
            let mut input = EvaluationJson::new(
                packed.clone(),
                account,
                VALIDATOR,
                call_data.clone(),
                None,
                now,
                false,
                &gas,
                now + 60,
                &counters,
            );
            input.functions = parsed.permissions.iter().map(|p| p.function.clone()).collect();
            input.names = names.clone();
            let request = Request {
                account,
                validator: VALIDATOR,
                call_data: &call_data,
                indices: &[],
                claimed_time: now,
                enable: false,
                gas,
                now: now + 60,
            };
            let expected = answer(run(&session, &counters, &request, false), &session, &functions, &labels);
            json!({ "input": input, "expected": expected })
        })
        .collect();
    json!({
        "evaluations": evaluations,
        "spec": spec::DEMO_MINT_SPEC,
        "context": { "now": now, "sessionKey": SESSION_KEY, "accountEpoch": 0, "names": names },
        "account": account,
        "validator": VALIDATOR,
        "chainId": CHAIN_ID,
        "packed": session.encode().expect("encodes"),
        "id": session.id().expect("id"),
        "summary": spec::summary(&session, &functions, &labels),
        "warnings": spec::warnings(&session),
        "typedData": eip712::grant_typed_data(&session, account, VALIDATOR, CHAIN_ID).expect("typed data"),
        "digest": eip712::grant_digest(&session, account, VALIDATOR, CHAIN_ID).expect("digest"),
    })
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [n, seed, out] = args.as_slice() else {
        return Err("usage: cases N SEED OUT.json".into());
    };
    let n: u64 = n.parse().map_err(|e| format!("N `{n}`: {e}"))?;
    let seed: u64 = seed.parse().map_err(|e| format!("SEED `{seed}`: {e}"))?;
    let cases: Vec<Value> = (0..n).map(|c| case(seed, c)).collect();
    let accepted = cases.iter().filter(|c| c["expected"]["accepted"] == true).count();
    let doc = json!({ "seed": seed, "cases": cases, "demo": demo() });
    if let Some(dir) = std::path::Path::new(out).parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(out, doc.to_string()).map_err(|e| format!("{out}: {e}"))?;
    println!("{n} cases (seed {seed}): {accepted} accepted, {} refused, in {out}", n as usize - accepted);
    Ok(())
}
