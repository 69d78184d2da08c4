//! The SDK's hot path without the network: spec parsing, the digests, the evaluator, the
//! pre-flight's permission assignment and the whole build of a batch of eight mints, each as a
//! median time per iteration and as a ratio to one ECDSA signature measured in the same run
//! (the ratios carry over to other machines; the absolute targets are this repository's).
//! `make bench-sdk` runs it in release.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256, address};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use valet_client::core::spec::{DEMO_MINT_SPEC, SessionSpec, SpecContext};
use valet_client::core::{
    Call, Counters, ENTRY_POINT_V07, Evaluator, Execution, Request, Session, SessionState, assign_permissions, eip712,
    evaluate,
};
use valet_client::{GasLimits, SessionCall, SessionHandle};

const ACCOUNT: Address = address!("0x00000000000000000000000000000000000aCC01");
const VALIDATOR: Address = address!("0x0000000000000000000000000000000000005a1d");
const NFT: Address = address!("0x00000000000000000000000000000000000000f7");
const CHAIN_ID: u64 = 31_337;
const T0: u64 = 1_800_000_000;
const BATCH: usize = 8;

const SIGN: &str = "ECDSA sign (k256, PrivateKeySigner::sign_hash_sync)";
const PREFLIGHT: &str = "pre-flight (assign_permissions): batch of 8";
const BUILD: &str = "full build, no network: batch of 8";

/// Rounds per measurement; the median is reported.
const ROUNDS: usize = 21;
/// How long one round runs (the iteration count is calibrated to it).
const ROUND: Duration = Duration::from_millis(10);

/// Pre-flight (permission assignment) of a batch of eight: under 2 µs on the reference machine.
const PREFLIGHT_TARGET_NS: f64 = 2_000.0;
/// The whole build of a batch of eight, signature included: under 60 µs on the reference machine.
const BUILD_TARGET_NS: f64 = 60_000.0;

/// One measured case: a name and a closure that runs its body a given number of times and says
/// how long that took.
struct Case<'a> {
    name: &'static str,
    run: Box<dyn FnMut(u64) -> Duration + 'a>,
    iterations: u64,
    rounds: Vec<f64>,
}

impl<'a> Case<'a> {
    fn new<T>(name: &'static str, mut f: impl FnMut() -> T + 'a) -> Self {
        let run = move |iterations: u64| {
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(f());
            }
            start.elapsed()
        };
        Self { name, run: Box::new(run), iterations: 1, rounds: Vec::with_capacity(ROUNDS) }
    }

    /// Sets the iterations per round so that a round takes about [`ROUND`] (which also warms
    /// caches and branch predictors).
    fn calibrate(&mut self) {
        while (self.run)(self.iterations) < ROUND / 4 {
            self.iterations *= 2;
        }
        self.iterations *= 4;
    }

    fn round(&mut self) -> f64 {
        (self.run)(self.iterations).as_nanos() as f64 / self.iterations as f64
    }

    fn median(&self) -> f64 {
        let mut rounds = self.rounds.clone();
        rounds.sort_by(f64::total_cmp);
        rounds.get(rounds.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// Runs the cases' rounds interleaved (round r of every case before round r + 1 of any), so
/// that a change in the machine's load weighs on every case alike, after one round unmeasured;
/// returns each case's median nanoseconds per iteration.
fn measure(cases: &mut [Case<'_>]) -> Vec<(&'static str, f64)> {
    for case in cases.iter_mut() {
        case.calibrate();
        case.round();
    }
    for _ in 0..ROUNDS {
        for case in cases.iter_mut() {
            let ns = case.round();
            case.rounds.push(ns);
        }
    }
    cases.iter().map(|case| (case.name, case.median())).collect()
}

/// `mint(address to, uint256 quantity)` on the demo NFT, to the account.
fn mint_call(quantity: u64) -> Call {
    let mut data = vec![0x40, 0xc1, 0x0f, 0x19];
    data.extend_from_slice(ACCOUNT.into_word().as_slice());
    data.extend_from_slice(&U256::from(quantity).to_be_bytes::<32>());
    Call { target: NFT, value: U256::ZERO, data: data.into() }
}

/// A use of the session (enabled already) on [`ACCOUNT`], with [`GasLimits::default`]'s fields.
fn request<'a>(call_data: &'a [u8], indices: &'a [u8], now: u64) -> Request<'a> {
    Request {
        account: ACCOUNT,
        validator: VALIDATOR,
        call_data,
        indices,
        claimed_time: now,
        enable: false,
        gas: GasLimits::default().op_gas(),
        now,
    }
}

fn main() -> anyhow::Result<()> {
    let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42))?;
    let names: BTreeMap<String, Address> = [("ValetNFT".to_string(), NFT)].into();
    let ctx = SpecContext { now: T0, session_key: key.address(), account_epoch: 0, names };
    let session: Session = SessionSpec::from_toml(DEMO_MINT_SPEC)?.resolve(&ctx)?;
    let grant = Bytes::from(vec![0x11; 65]);
    let handle = SessionHandle::new(session.clone(), key.clone(), grant, VALIDATOR)?;
    let counters = Counters { state: SessionState::Enabled, installed: true, ..Counters::default() };
    let gas = GasLimits::default();
    let now = T0 + 60;

    let one = Execution::Single(mint_call(5)).encode();
    let calls: Vec<Call> = (1..=BATCH as u64).map(|q| mint_call(q % 5 + 1)).collect();
    let batch = Execution::Batch(calls.clone()).encode();
    let single_request = request(&one, &[0], now);
    let batch_request = request(&batch, &[0; BATCH], now);
    let unassigned_request = request(&batch, &[], now);

    // The session bound once (checked once), as an app evaluating many operations may hold it.
    let evaluator = Evaluator::new(&session)?;
    // Every case must succeed: a refusal would measure the wrong path.
    evaluator.evaluate(&counters, &single_request)?;
    evaluator.evaluate(&counters, &batch_request)?;
    let (indices, _) = assign_permissions(&session, &counters, &unassigned_request)?;
    anyhow::ensure!(indices == [0; BATCH], "the batch's permissions: {indices:?}");

    // The SDK's build of a batch, as `Valet::prepare` makes it once the chain has answered:
    // the calldata, the permissions (pre-flight with the fee rule), the dummy signature the gas
    // estimate is made with, the operation with its gas fields, pre-flight of the operation as
    // signed, the userOpHash and the session key's signature.
    let build = |calls: &[Call]| -> anyhow::Result<_> {
        let call_data = Execution::Batch(calls.to_vec()).encode();
        let request = Request { call_data: &call_data, ..unassigned_request.clone() };
        let (indices, _) = assign_permissions(&session, &counters, &request)?;
        let _for_the_estimate = handle.dummy_signature(now, &indices, false)?;
        let call = SessionCall { call_data, indices, claimed_time: now, sequence: 3, enable: false, deploy: None };
        handle.preflight(ACCOUNT, &counters, &call, gas, now)?;
        Ok(handle.sign(ACCOUNT, &call, gas, ENTRY_POINT_V07, CHAIN_ID)?)
    };
    let op = build(&calls)?;

    let digest = B256::repeat_byte(0x07);
    let mut op_to_sign = op.clone();
    let mut cases = vec![
        Case::new(SIGN, || key.sign_hash_sync(&digest)),
        Case::new("spec: parse + resolve the mint spec (TOML)", || {
            SessionSpec::from_toml(DEMO_MINT_SPEC).and_then(|spec| spec.resolve(&ctx))
        }),
        Case::new("session id", || session.id()),
        Case::new("grant digest (EIP-712)", || eip712::grant_digest(&session, ACCOUNT, VALIDATOR, CHAIN_ID)),
        Case::new("userOpHash (batch of 8)", || op.hash(ENTRY_POINT_V07, CHAIN_ID)),
        Case::new("evaluate: 1 call", || evaluate(&session, &counters, &single_request)),
        Case::new("evaluate: 1 call (Evaluator bound once)", || evaluator.evaluate(&counters, &single_request)),
        Case::new("evaluate: batch of 8", || evaluate(&session, &counters, &batch_request)),
        Case::new("evaluate: batch of 8 (Evaluator bound once)", || evaluator.evaluate(&counters, &batch_request)),
        Case::new(PREFLIGHT, || assign_permissions(&session, &counters, &unassigned_request)),
        Case::new("pre-flight: batch of 8 (Evaluator bound once)", || {
            evaluator.assign_permissions(&counters, &unassigned_request)
        }),
        Case::new("sign the operation (SessionHandle::authorize)", || {
            handle.authorize(&mut op_to_sign, now, &indices, false, ENTRY_POINT_V07, CHAIN_ID)
        }),
        Case::new(BUILD, || build(&calls)),
    ];
    let results = measure(&mut cases);
    let ns = |name: &str| results.iter().find(|(n, _)| *n == name).map_or(f64::NAN, |(_, ns)| *ns);
    let sign = ns(SIGN);

    println!("Valet SDK hot path (release): median ns per iteration of {ROUNDS} rounds; ratio = × one ECDSA sign");
    for (name, ns) in &results {
        println!("  {name:<56} {ns:>10.0} ns  {:>8.4}", ns / sign);
    }
    let targets = [
        ("pre-flight of a batch of 8", ns(PREFLIGHT), PREFLIGHT_TARGET_NS),
        ("full no-network build of a batch of 8", ns(BUILD), BUILD_TARGET_NS),
    ];
    println!("targets (absolute on the reference machine; as ratios to this run's ECDSA sign)");
    for (name, ns, target) in targets {
        let verdict = if ns < target { "PASS" } else { "MISS" };
        println!(
            "  {name:<40} < {:>4.0} µs (< {:.4} × sign): {:>8.0} ns = {:.4} × sign  {verdict}",
            target / 1_000.0,
            target / sign,
            ns,
            ns / sign,
        );
    }
    Ok(())
}
