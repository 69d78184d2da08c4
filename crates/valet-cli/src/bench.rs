//! `valet bench`: a load run of the service on anvil, from HTTP request to confirmed receipt, at
//! several concurrency levels (sessions executing at once, each in a closed loop), each level on a
//! fresh devnet. Per level: executions/s, p50/p99, every answer that was not "included" counted
//! as an error, the throughput as a ratio of the first level's measured in the same run, and the
//! chain checked against what the service answered (chain == record). Optionally one level
//! through the Alto bundler beside direct submission, and (`--profile`) where the time goes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent as _;
use alloy::transports::http::reqwest;
use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;
use valet_client::bundler::GasEstimate;
use valet_client::contracts::entry_point::EntryPoint;
use valet_client::submit::BoxFuture;
use valet_client::{Devnet, DevnetOptions, Fees, OpReceipt, Submitter, Valet};
use valet_core::UserOperation;
use valet_server::{MasterKey, Service, Vault};

/// What one `valet bench` runs.
pub(crate) struct Plan {
    /// Sessions executing at once, one level after another; the first is the baseline.
    pub(crate) levels: Vec<usize>,
    /// How long each level's load runs (after its sessions' warm-up).
    pub(crate) run_for: Duration,
    /// The level also run through Alto, if any.
    pub(crate) alto: Option<usize>,
    /// Collects where the time goes, when asked (`--profile`).
    pub(crate) profiler: Option<Profiler>,
}

/// The workload: every session mints one NFT to its own account per execution.
const SPEC: &str = "valid_for = \"1h\"\n[[permission]]\ntarget = \"ValetNFT\"\n\
                    function = \"mint(address to, uint256 quantity)\"\nrules = [{ arg = \"to\", eq = \"$account\" }]\n\
                    [fees]\nbudget = \"100 ether\"\n";

fn mint() -> Value {
    json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] })
}

/// One level's figures.
struct Level {
    submitter: &'static str,
    sessions: usize,
    /// Executions answered "included" during the timed run.
    executions: usize,
    elapsed: Duration,
    /// Latencies of the included executions, sorted.
    latencies: Vec<Duration>,
    /// Answers other than "included": kind (HTTP status and error code) → count and a first example.
    errors: BTreeMap<String, (usize, String)>,
    chain: ChainCheck,
    profile: Option<Breakdown>,
}

impl Level {
    fn per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64()
    }

    fn errors(&self) -> usize {
        self.errors.values().map(|(n, _)| n).sum()
    }

    fn p(&self, p: f64) -> Option<Duration> {
        percentile(&self.latencies, p)
    }

    fn ok(&self) -> bool {
        self.errors() == 0 && self.chain.mismatches.is_empty()
    }
}

/// Nearest-rank percentile of sorted samples; none without samples.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    let at = (last as f64 * p).round() as usize;
    sorted.get(at.min(last)).copied()
}

/// Runs every level (then Alto's), prints the table, and fails if any answer was not "included"
/// or the chain disagrees with the record.
pub(crate) async fn run(plan: Plan, json_out: bool) -> anyhow::Result<()> {
    if plan.levels.is_empty() || plan.levels.contains(&0) {
        bail!("--levels: give one or more concurrency levels of at least 1, e.g. 1,8,32,64");
    }
    if plan.run_for.is_zero() {
        bail!("--seconds must be at least 1");
    }
    // A level that cannot be run (its devnet, its setup) is reported with the others' figures.
    let mut failed = Vec::new();
    let mut direct = Vec::new();
    for &sessions in &plan.levels {
        eprintln!("direct, {sessions} sessions: setting up, then {:?} of load…", plan.run_for);
        match measure(false, sessions, plan.run_for, plan.profiler.as_ref()).await {
            Ok(level) => direct.push(level),
            Err(e) => failed.push(format!("direct submission at {sessions} sessions: {e:#}")),
        }
    }
    let mut alto = None;
    if let Some(sessions) = plan.alto {
        eprintln!("alto, {sessions} sessions: setting up, then {:?} of load…", plan.run_for);
        match measure(true, sessions, plan.run_for, plan.profiler.as_ref()).await {
            Ok(level) => alto = Some(level),
            Err(e) => failed.push(format!("through Alto at {sessions} sessions: {e:#}")),
        }
    }
    failed.extend(direct.iter().chain(alto.as_ref()).filter(|l| !l.ok()).map(|l| {
        format!(
            "{} at {} sessions: {} errors, {} sessions whose chain differs from the record",
            l.submitter,
            l.sessions,
            l.errors(),
            l.chain.mismatches.len()
        )
    }));
    if json_out {
        println!("{}", serde_json::to_string_pretty(&document(&plan, &direct, alto.as_ref(), &failed))?);
    } else {
        print_table(&plan, &direct, alto.as_ref());
    }
    if !failed.is_empty() {
        bail!("the load run failed: {}", failed.join("; "));
    }
    Ok(())
}

/// One session under load: its account and the operations the service answered "included".
struct Open {
    id: String,
    account: Address,
    url: String,
    included: Vec<B256>,
}

/// The answers one session's loop got.
#[derive(Default)]
struct Outcomes {
    latencies: Vec<Duration>,
    /// When each included execution was sent and answered.
    spans: Vec<(Instant, Instant)>,
    included: Vec<B256>,
    errors: BTreeMap<String, (usize, String)>,
}

/// One level: a fresh devnet (and database), `sessions` sessions granted and warmed up (their
/// first execution deploys the account and enables the session), then every session executing
/// in a closed loop for `run_for`. A fresh devnet per level so that each level starts from the
/// same chain and an empty database, not from the previous level's history.
async fn measure(alto: bool, sessions: usize, run_for: Duration, profiler: Option<&Profiler>) -> anyhow::Result<Level> {
    let submitter_name = if alto { "alto" } else { "direct" };
    let devnet = Devnet::start_with(DevnetOptions { alto, ..Default::default() }).await.context("devnet")?;
    let dir = Scratch::new(format!("valet-bench-{submitter_name}-{sessions}-{}", std::process::id()))?;
    let vault = Vault::connect(&format!("sqlite://{}?mode=rwc", dir.join("valet.db").display())).await?;
    let master = MasterKey::load(&dir.join("master.key"))?;
    let mut submitter = crate::submitter_for(&devnet).await?;
    if let Some(profiler) = profiler {
        submitter = Arc::new(Timed { inner: submitter, profiler: profiler.clone() });
    }
    let valet = Valet::new(devnet.provider.clone(), submitter, devnet.deployment()).await?;
    let names = BTreeMap::from([("ValetNFT".to_string(), devnet.addresses.nft)]);
    let admin = format!("bench-{}", alloy::hex::encode(PrivateKeySigner::random().to_bytes()));
    let mut service = Service::new(valet, vault, master, &admin, names, None);
    service.scheduler_every = None;
    let service = Arc::new(service);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server =
        tokio::spawn(valet_server::serve(service, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), bound_tx, async {
            let _ = stop_rx.await;
        }));
    let base = format!("http://{}", bound_rx.await.context("the service did not start")?);
    let http = reqwest::Client::new();
    let answer = post(&http, &format!("{base}/v1/apps"), &admin, &json!({ "name": "bench" })).await?;
    let key = answer["api_key"].as_str().context("no api_key in the answer")?.to_string();

    let mut open = Vec::with_capacity(sessions);
    for i in 0..sessions {
        open.push(open_session(&devnet, &http, &base, &key).await.with_context(|| format!("setting up session {i}"))?);
    }

    if let Some(profiler) = profiler {
        profiler.reset();
    }
    let cpu_before = CpuSample::now();
    let started = Instant::now();
    let until = started + run_for;
    let workers: Vec<_> =
        open.iter().map(|session| tokio::spawn(load(http.clone(), session.url.clone(), key.clone(), until))).collect();
    let mut all = Outcomes::default();
    let mut timeline = BTreeMap::new();
    for (worker, session) in workers.into_iter().zip(&mut open) {
        let outcomes = worker.await.context("a load task")?;
        all.latencies.extend(outcomes.latencies);
        timeline.insert(session.account, outcomes.spans);
        session.included.extend(outcomes.included);
        for (kind, (n, example)) in outcomes.errors {
            all.errors.entry(kind).or_insert((0, example)).0 += n;
        }
    }
    let elapsed = started.elapsed();
    let cpu = CpuSample::now().and_then(|after| cpu_before.map(|before| after.since(&before)));
    let mut profile = profiler.map(|p| {
        let profile = p.take();
        let phases = phases(&timeline, &profile.marks);
        Breakdown { profile, cpu, phases, vault: None }
    });

    let chain = on_chain(&devnet).await.context("reading UserOperationEvents")?;
    let record: BTreeMap<Address, Vec<B256>> = open.iter().map(|s| (s.account, s.included.clone())).collect();
    let chain = compare(&record, &chain);

    let _ = stop_tx.send(());
    let _ = server.await;
    if let Some(profile) = &mut profile {
        let ids: Vec<String> = open.iter().map(|s| s.id.clone()).collect();
        let db = format!("sqlite://{}", dir.join("valet.db").display());
        profile.vault =
            Some(vault_alone(&db, &key, &ids, run_for.min(VAULT_ALONE_FOR)).await.context("the vault alone")?);
    }
    drop(devnet);
    all.latencies.sort();
    Ok(Level {
        submitter: submitter_name,
        sessions,
        executions: all.latencies.len(),
        elapsed,
        latencies: all.latencies,
        errors: all.errors,
        chain,
        profile,
    })
}

/// A level's database and master key, in a directory removed however the level ends.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: String) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn join(&self, file: &str) -> std::path::PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A session of a new owner: proposed, its account funded, granted, and its first execution
/// (deploy + enable) done — that one counts in the record, not in the figures.
async fn open_session(devnet: &Devnet, http: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<Open> {
    let owner = PrivateKeySigner::random();
    let proposed =
        post(http, &format!("{base}/v1/sessions"), key, &json!({ "owner": owner.address(), "spec": SPEC })).await?;
    let id = proposed["session_id"].as_str().context("no session_id")?.to_string();
    let account: Address = proposed["account"].as_str().context("no account")?.parse()?;
    // Funded by the node itself: a transfer per session would make the setup of 64 sessions
    // wait for 64 receipts.
    let balance = U256::from(100u128 * 10u128.pow(18));
    let _: Value = devnet.provider.raw_request("anvil_setBalance".into(), (account, balance)).await?;
    let digest: B256 = proposed["digest"].as_str().context("no digest")?.parse()?;
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest)?.as_bytes());
    post(http, &format!("{base}/v1/sessions/{id}/grant"), key, &json!({ "signature": signature })).await?;
    // The session's window starts at the wall clock, and an idle anvil's latest block is older:
    // a bundler, which simulates at the latest block, would find it "not due" (AA22). A block
    // now, as a live chain would have made.
    devnet.mine().await?;
    let url = format!("{base}/v1/sessions/{id}/execute");
    let first = execute(http, &url, key).await.map_err(|f| anyhow::anyhow!("warm-up execution: {}", f.message))?;
    Ok(Open { id, account, url, included: vec![first] })
}

/// One session's closed loop: the next execution as soon as the last one is answered, until
/// `until`.
async fn load(http: reqwest::Client, url: String, key: String, until: Instant) -> Outcomes {
    let mut out = Outcomes::default();
    while Instant::now() < until {
        let sent = Instant::now();
        match execute(&http, &url, &key).await {
            Ok(hash) => {
                out.latencies.push(sent.elapsed());
                out.spans.push((sent, Instant::now()));
                out.included.push(hash);
            }
            Err(failure) => out.errors.entry(failure.kind).or_insert((0, failure.message)).0 += 1,
        }
    }
    out
}

/// An answer other than "included".
struct Failure {
    /// `HTTP 503 chain_unavailable`, `HTTP 202 unknown`, `no answer`, …
    kind: String,
    message: String,
}

/// One execution; its userOpHash if the service answered 200 "included".
async fn execute(http: &reqwest::Client, url: &str, key: &str) -> Result<B256, Failure> {
    let no_answer = |e: reqwest::Error| Failure { kind: "no answer".into(), message: e.to_string() };
    let response = http
        .post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(mint().to_string())
        .send()
        .await
        .map_err(no_answer)?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(no_answer)?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let hash = body["user_op_hash"].as_str().and_then(|h| h.parse::<B256>().ok());
    match hash {
        Some(hash) if status == reqwest::StatusCode::OK && body["status"] == "included" => Ok(hash),
        _ => {
            let code = body["error"].as_str().or(body["status"].as_str()).unwrap_or("-");
            let text = String::from_utf8_lossy(&bytes);
            Err(Failure { kind: format!("HTTP {} {code}", status.as_u16()), message: text.chars().take(300).collect() })
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> anyhow::Result<Value> {
    let response = http
        .post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status();
    let value: Value = serde_json::from_slice(&response.bytes().await?)?;
    if !status.is_success() {
        bail!("{url}: {status} {value}");
    }
    Ok(value)
}

/// The successful `UserOperationEvent`s of EntryPoint v0.7 on the devnet, by sender (topic 2).
async fn on_chain(devnet: &Devnet) -> anyhow::Result<BTreeMap<Address, Vec<B256>>> {
    let filter = alloy::rpc::types::Filter::new()
        .address(valet_core::ENTRY_POINT_V07)
        .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
        .from_block(0);
    let mut by_sender: BTreeMap<Address, Vec<B256>> = BTreeMap::new();
    for log in devnet.provider.get_logs(&filter).await? {
        let event = EntryPoint::UserOperationEvent::decode_log(&log.inner)?;
        if event.success {
            by_sender.entry(event.sender).or_default().push(event.userOpHash);
        }
    }
    Ok(by_sender)
}

/// Chain == record, session by session.
#[derive(Debug, Default, PartialEq, Eq)]
struct ChainCheck {
    sessions: usize,
    /// Operations the service answered "included" (warm-ups too).
    recorded: usize,
    /// Successful `UserOperationEvent`s of those accounts (and any other) on chain.
    on_chain: usize,
    /// One line per account whose operations on chain are not exactly those recorded.
    mismatches: Vec<String>,
}

/// Compares, per account, the operations answered "included" with the successful ones on chain
/// (as sets of userOpHashes, and their counts). An account on chain that is not one of the
/// sessions' is a mismatch too.
fn compare(record: &BTreeMap<Address, Vec<B256>>, chain: &BTreeMap<Address, Vec<B256>>) -> ChainCheck {
    let mut check = ChainCheck {
        sessions: record.len(),
        recorded: record.values().map(Vec::len).sum(),
        on_chain: chain.values().map(Vec::len).sum(),
        mismatches: Vec::new(),
    };
    let accounts: BTreeSet<&Address> = record.keys().chain(chain.keys()).collect();
    for account in accounts {
        let recorded = record.get(account).map(Vec::as_slice).unwrap_or_default();
        let mined = chain.get(account).map(Vec::as_slice).unwrap_or_default();
        let (r, m): (BTreeSet<_>, BTreeSet<_>) = (recorded.iter().collect(), mined.iter().collect());
        if recorded.len() != mined.len() || r != m {
            let missing = r.difference(&m).count();
            let extra = m.difference(&r).count();
            check.mismatches.push(format!(
                "account {account}: {} answered included, {} on chain ({missing} answered but not on chain, {extra} on chain but not answered)",
                recorded.len(),
                mined.len()
            ));
        }
    }
    check
}

// ---------------------------------------------------------------------------------------------
// Where the time goes (`--profile`).

/// Collects, while a level's load runs: every JSON-RPC call to the node by method (the
/// `request` span alloy's HTTP transport opens around each call: request sent → answer read),
/// every SQL statement by its first words (sqlx's `sqlx::query` events: the statement's own
/// execution, not the wait for a pooled connection), and the submitter's `fees` / `estimate` /
/// `submit` (around the service's calls into it). A tracing layer beside the log output.
#[derive(Clone, Default)]
pub(crate) struct Profiler(Arc<Mutex<Profile>>);

#[derive(Clone, Default)]
struct Profile {
    node: BTreeMap<String, Tally>,
    sql: BTreeMap<String, Tally>,
    submitter: BTreeMap<&'static str, Tally>,
    /// Each `estimate` and `submit`, by the operation's account, to place them inside requests.
    marks: Vec<Mark>,
}

/// One call into the submitter.
#[derive(Clone, Copy, Debug)]
struct Mark {
    account: Address,
    phase: &'static str,
    start: Instant,
    end: Instant,
}

/// Mean time per execution in each stretch of a request, placed by the submitter's calls
/// inside it (a session's executions run one at a time, so its calls fall inside its requests).
#[derive(Debug, Default, Clone, PartialEq)]
struct Phases {
    /// Requests with exactly one estimate and one submit inside.
    placed: usize,
    /// Sent → estimate starts: HTTP, auth, the session loaded, the execution begun (a write),
    /// the session checked again, the key opened, six chain reads and the fees.
    before_estimate: Duration,
    estimate: Duration,
    /// Estimate ends → submit starts: the second evaluation, signing, the operation recorded (a
    /// write).
    between: Duration,
    submit: Duration,
    /// Submit ends → answered: the outcome and audit event recorded (a transaction), the answer.
    after_submit: Duration,
}

/// Places each request's estimate and submit (see [`Phases`]) and averages the stretches.
fn phases(requests: &BTreeMap<Address, Vec<(Instant, Instant)>>, marks: &[Mark]) -> Phases {
    let mut sums = Phases::default();
    for (account, spans) in requests {
        let mine: Vec<&Mark> = marks.iter().filter(|m| m.account == *account).collect();
        for &(sent, answered) in spans {
            let inside = |phase: &str| -> Vec<&Mark> {
                mine.iter().copied().filter(|m| m.phase == phase && m.start >= sent && m.end <= answered).collect()
            };
            let (estimate, submit) = (inside("estimate"), inside("submit"));
            let ([estimate], [submit]) = (estimate.as_slice(), submit.as_slice()) else { continue };
            sums.placed += 1;
            sums.before_estimate += estimate.start.saturating_duration_since(sent);
            sums.estimate += estimate.end.saturating_duration_since(estimate.start);
            sums.between += submit.start.saturating_duration_since(estimate.end);
            sums.submit += submit.end.saturating_duration_since(submit.start);
            sums.after_submit += answered.saturating_duration_since(submit.end);
        }
    }
    let n = u32::try_from(sums.placed.max(1)).unwrap_or(u32::MAX);
    Phases {
        placed: sums.placed,
        before_estimate: sums.before_estimate / n,
        estimate: sums.estimate / n,
        between: sums.between / n,
        submit: sums.submit / n,
        after_submit: sums.after_submit / n,
    }
}

#[derive(Clone, Copy, Default)]
struct Tally {
    count: u64,
    total: Duration,
}

impl Tally {
    fn mean_ms(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.total.as_secs_f64() * 1000.0 / self.count as f64 }
    }
}

/// What one level's profile holds: the tallies and the CPU used meanwhile.
struct Breakdown {
    profile: Profile,
    cpu: Option<Cpu>,
    phases: Phases,
    vault: Option<VaultAlone>,
}

/// The service's database calls of one execution, replayed without the service or the chain.
struct VaultAlone {
    concurrency: usize,
    /// Replayed executions per second.
    per_second: f64,
    /// Each call, its wait for a pooled connection included.
    calls: BTreeMap<&'static str, Tally>,
    /// Whole replayed executions, sorted.
    latencies: Vec<Duration>,
}

/// How long the vault alone is measured (at most the level's own duration).
const VAULT_ALONE_FOR: Duration = Duration::from_secs(5);

/// Replays, on the level's database (after its service stopped), what one execution asks of the
/// vault — the API key's app, the session (twice: on arrival and when it has the lane), the
/// execution begun, its operation recorded, its outcome and audit event in one transaction — with
/// one loop per session for `run_for`. How many executions' worth the database takes per second
/// with nothing else running, and what each call costs at that concurrency, pool wait included.
async fn vault_alone(db: &str, key: &str, sessions: &[String], run_for: Duration) -> anyhow::Result<VaultAlone> {
    let vault = Arc::new(Vault::connect(db).await?);
    let app = vault.app_by_key(key).await?.context("the bench's app is not in the database")?;
    let operation: Arc<str> = format!("{{\"operation\":\"{}\"}}", "ab".repeat(600)).into();
    let started = Instant::now();
    let until = started + run_for;
    let loops: Vec<_> = sessions
        .iter()
        .map(|session| {
            let (vault, key, app, session, operation) =
                (vault.clone(), key.to_string(), app.id.clone(), session.clone(), operation.clone());
            tokio::spawn(async move {
                let mut calls: BTreeMap<&'static str, Tally> = BTreeMap::new();
                let mut latencies = Vec::new();
                let mut timed = |name: &'static str, since: Instant| {
                    let tally = calls.entry(name).or_default();
                    tally.count += 1;
                    tally.total += since.elapsed();
                    Instant::now()
                };
                while Instant::now() < until {
                    let first = Instant::now();
                    vault.app_by_key(&key).await?;
                    let t = timed("app_by_key", first);
                    vault.session(&app, &session).await?;
                    let t = timed("session", t);
                    let valet_server::vault::Begin::New(id) = vault.begin_execution(&app, None).await? else {
                        bail!("an execution without an idempotency key was not new");
                    };
                    let t = timed("begin_execution", t);
                    vault.session(&app, &session).await?;
                    let t = timed("session", t);
                    let new = valet_server::vault::NewExecution {
                        id: &id,
                        app: &app,
                        session: &session,
                        key: None,
                        request_hash: "bench",
                    };
                    vault.execution_built(&new, &B256::ZERO.to_string(), &operation).await?;
                    let t = timed("execution_built", t);
                    let detail = json!({ "execution_id": id, "replayed": true });
                    let audit = valet_server::vault::Audit {
                        app: &app,
                        account: None,
                        session: Some(&session),
                        event: "execution.included",
                        detail: &detail,
                    };
                    vault.finish_execution(&id, "included", None, None, &detail, &audit).await?;
                    timed("finish_execution", t);
                    latencies.push(first.elapsed());
                }
                Ok::<_, anyhow::Error>((calls, latencies))
            })
        })
        .collect();
    let mut calls: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut latencies = Vec::new();
    for one in loops {
        let (c, l) = one.await??;
        for (name, t) in c {
            let tally = calls.entry(name).or_default();
            tally.count += t.count;
            tally.total += t.total;
        }
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(VaultAlone {
        concurrency: sessions.len(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        calls,
        latencies,
    })
}

enum Part {
    Node(String),
    Sql(String),
    Submitter(&'static str),
}

impl Profiler {
    fn add(&self, part: Part, took: Duration) {
        let mut profile = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let tally = match part {
            Part::Node(method) => profile.node.entry(method).or_default(),
            Part::Sql(statement) => profile.sql.entry(statement).or_default(),
            Part::Submitter(phase) => profile.submitter.entry(phase).or_default(),
        };
        tally.count += 1;
        tally.total += took;
    }

    fn mark(&self, account: Address, phase: &'static str, start: Instant) {
        let mark = Mark { account, phase, start, end: Instant::now() };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).marks.push(mark);
    }

    fn reset(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Profile::default();
    }

    fn take(&self) -> Profile {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// What the layer needs to see: alloy's per-call span and sqlx's statement events.
    pub(crate) fn wants(metadata: &Metadata<'_>) -> bool {
        (metadata.name() == "request" && metadata.target().starts_with("alloy_transport_http"))
            || metadata.target() == "sqlx::query"
    }
}

/// A node call in flight, kept in its span.
struct NodeCall {
    method: String,
    started: Instant,
}

/// Reads one field of a span or event as text, and `elapsed_secs` as a number.
#[derive(Default)]
struct Fields {
    want: &'static str,
    text: Option<String>,
    elapsed_secs: Option<f64>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == self.want {
            self.text = Some(value.to_string());
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == self.want && self.text.is_none() {
            self.text = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

impl<S> Layer<S> for Profiler
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "request" {
            return;
        }
        let mut fields = Fields { want: "method_names", ..Fields::default() };
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            let method = fields.text.unwrap_or_else(|| "?".into());
            span.extensions_mut().insert(NodeCall { method, started: Instant::now() });
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(call) = span.extensions_mut().remove::<NodeCall>() else { return };
        self.add(Part::Node(call.method), call.started.elapsed());
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut fields = Fields { want: "summary", ..Fields::default() };
        event.record(&mut fields);
        if let (Some(statement), Some(secs)) = (fields.text, fields.elapsed_secs) {
            self.add(Part::Sql(statement.trim_end_matches(" …").to_string()), Duration::from_secs_f64(secs.max(0.0)));
        }
    }
}

/// The service's submitter, timed from the outside: what `fees`, `estimate` and `submit` (for
/// direct submission: waiting for the relayer, the `handleOps` and its receipt) take.
struct Timed {
    inner: Arc<dyn Submitter>,
    profiler: Profiler,
}

impl Submitter for Timed {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn fees(&self) -> BoxFuture<'_, Result<Fees, valet_client::Error>> {
        Box::pin(async move {
            let started = Instant::now();
            let fees = self.inner.fees().await;
            self.profiler.add(Part::Submitter("fees"), started.elapsed());
            fees
        })
    }

    fn estimate<'a>(&'a self, op: &'a UserOperation) -> BoxFuture<'a, Result<GasEstimate, valet_client::Error>> {
        Box::pin(async move {
            let started = Instant::now();
            let estimate = self.inner.estimate(op).await;
            self.profiler.add(Part::Submitter("estimate"), started.elapsed());
            self.profiler.mark(op.sender, "estimate", started);
            estimate
        })
    }

    fn submit<'a>(&'a self, ops: &'a [UserOperation]) -> BoxFuture<'a, Result<Vec<OpReceipt>, valet_client::Error>> {
        Box::pin(async move {
            let started = Instant::now();
            let receipts = self.inner.submit(ops).await;
            self.profiler.add(Part::Submitter("submit"), started.elapsed());
            if let Some(op) = ops.first() {
                self.profiler.mark(op.sender, "submit", started);
            }
            receipts
        })
    }
}

/// CPU used during a level, in cores (CPU seconds per wall second).
#[derive(Debug, Clone, PartialEq)]
struct Cpu {
    /// This process: the service and the load's HTTP clients.
    this_process: f64,
    /// This process's threads by name (tokio's workers, sqlx's SQLite workers, …).
    threads: BTreeMap<String, f64>,
    /// Child processes by name (anvil; Alto's node).
    children: BTreeMap<String, f64>,
    /// The whole machine's busy share, 0–1.
    machine_busy: f64,
}

/// CPU counters at one moment, from /proc (Linux).
struct CpuSample {
    at: Instant,
    this_process: Duration,
    threads: BTreeMap<u32, (String, Duration)>,
    children: BTreeMap<u32, (String, Duration)>,
    /// (busy, total) clock ticks of the whole machine.
    machine: (u64, u64),
}

/// Linux reports CPU time in units of USER_HZ, 100 on every architecture Rust targets there.
const USER_HZ: f64 = 100.0;

impl CpuSample {
    fn now() -> Option<Self> {
        let this_process = process_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let (mut threads, mut children) = (BTreeMap::new(), BTreeMap::new());
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let tid = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok());
            if let (Some(tid), Some(cpu), Some(name)) = (tid, process_cpu(&stat), process_name(&stat)) {
                // Numbered threads of one pool under one name (the kernel keeps 15 bytes of it).
                threads.insert(tid, (name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-').to_string(), cpu));
            }
            let listed = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for pid in listed.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if let (Some(cpu), Some(name)) = (process_cpu(&stat), process_name(&stat)) {
                    children.insert(pid, (name, cpu));
                }
            }
        }
        let machine = machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
        Some(Self { at: Instant::now(), this_process, threads, children, machine })
    }

    fn since(&self, before: &Self) -> Cpu {
        let wall = self.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let by_name = |now: &BTreeMap<u32, (String, Duration)>, then: &BTreeMap<u32, (String, Duration)>| {
            let mut cores: BTreeMap<String, f64> = BTreeMap::new();
            for (id, (name, cpu)) in now {
                let start = then.get(id).map(|(_, c)| *c).unwrap_or_default();
                *cores.entry(name.clone()).or_default() += cpu.saturating_sub(start).as_secs_f64() / wall;
            }
            cores
        };
        let busy = self.machine.0.saturating_sub(before.machine.0) as f64;
        let total = self.machine.1.saturating_sub(before.machine.1).max(1) as f64;
        Cpu {
            this_process: self.this_process.saturating_sub(before.this_process).as_secs_f64() / wall,
            threads: by_name(&self.threads, &before.threads),
            children: by_name(&self.children, &before.children),
            machine_busy: busy / total,
        }
    }
}

/// utime + stime of a `/proc/PID/stat` line (fields 14 and 15, counted after the `(comm)`).
fn process_cpu(stat: &str) -> Option<Duration> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / USER_HZ))
}

/// The `comm` of a `/proc/PID/stat` line.
fn process_name(stat: &str) -> Option<String> {
    Some(stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_string())
}

/// (busy, total) ticks from the `cpu` line of `/proc/stat` (idle and iowait are not busy).
fn machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

// ---------------------------------------------------------------------------------------------
// Output.

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ms_text(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.1}", ms(d)))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
}

/// The direct level run at `sessions`, if any.
fn direct_at(direct: &[Level], sessions: usize) -> Option<&Level> {
    direct.iter().find(|l| l.sessions == sessions)
}

fn print_table(plan: &Plan, direct: &[Level], alto: Option<&Level>) {
    let baseline = direct.first().map_or(0.0, Level::per_second);
    println!(
        "The service on anvil, HTTP request → confirmed receipt, one mint per execution; each level on a fresh \
         devnet, its sessions executing in a closed loop for {} s ({} cores); \"× first\": exec/s as a ratio of the \
         first level's\n",
        plan.run_for.as_secs(),
        cores()
    );
    println!(
        "{:<9} {:>8} {:>10} {:>9} {:>8} {:>8} {:>7} {:>9}  chain == record",
        "submitter", "sessions", "executions", "exec/s", "p50 ms", "p99 ms", "errors", "× first"
    );
    for level in direct.iter().chain(alto) {
        let ratio = if level.submitter == "direct" && baseline > 0.0 {
            format!("{:.2}", level.per_second() / baseline)
        } else {
            "".into()
        };
        let chain = if level.chain.mismatches.is_empty() {
            format!("yes: {} sessions, {} operations", level.chain.sessions, level.chain.on_chain)
        } else {
            format!("NO: {} of {} sessions differ", level.chain.mismatches.len(), level.chain.sessions)
        };
        println!(
            "{:<9} {:>8} {:>10} {:>9.1} {:>8} {:>8} {:>7} {:>9}  {chain}",
            level.submitter,
            level.sessions,
            level.executions,
            level.per_second(),
            ms_text(level.p(0.50)),
            ms_text(level.p(0.99)),
            level.errors(),
            ratio
        );
    }
    if let Some(alto) = alto
        && let Some(direct) = direct_at(direct, alto.sessions)
    {
        let ratio = |d: Option<Duration>, a: Option<Duration>| match (d, a) {
            (Some(d), Some(a)) if !d.is_zero() => format!("{:.2}", ms(a) / ms(d)),
            _ => "-".into(),
        };
        println!(
            "\nAt {} sessions direct submission does {:.1}× Alto's executions/s; Alto's p50 is {}×, its p99 {}× direct's.",
            alto.sessions,
            direct.per_second() / alto.per_second(),
            ratio(direct.p(0.50), alto.p(0.50)),
            ratio(direct.p(0.99), alto.p(0.99))
        );
    }
    for level in direct.iter().chain(alto) {
        for (kind, (n, example)) in &level.errors {
            println!("\n{} at {} sessions: {n} × {kind}, e.g. {example}", level.submitter, level.sessions);
        }
        for line in &level.chain.mismatches {
            println!("{} at {} sessions: {line}", level.submitter, level.sessions);
        }
    }
    for level in direct.iter().chain(alto) {
        if let Some(profile) = &level.profile {
            print_profile(level, profile);
        }
    }
}

fn print_profile(level: &Level, breakdown: &Breakdown) {
    let n = level.executions.max(1) as f64;
    let p = &breakdown.profile;
    let mean = level.latencies.iter().map(|d| ms(*d)).sum::<f64>() / n;
    let phase = |name: &str| p.submitter.get(name).map_or(0.0, |t| t.total.as_secs_f64() * 1000.0 / n);
    let (fees, estimate, submit) = (phase("fees"), phase("estimate"), phase("submit"));
    let handle_ops = p.node.get("eth_sendRawTransaction").map_or(0, |t| t.count);
    println!(
        "\nWhere the time goes, {} at {} sessions ({} executions in {:.1} s{}):",
        level.submitter,
        level.sessions,
        level.executions,
        level.elapsed.as_secs_f64(),
        if handle_ops > 0 {
            format!("; {handle_ops} transactions, {:.1} executions each", level.executions as f64 / handle_ops as f64)
        } else {
            String::new()
        }
    );
    println!(
        "  mean latency {mean:.1} ms = submit {submit:.1} + estimate {estimate:.1} + fees {fees:.1} + the rest {:.1} \
         (HTTP, auth, SQLite, chain reads, signing)",
        mean - submit - estimate - fees
    );
    // The chain reads before the estimate: the session's counters and nonce (every eth_call but
    // the relayer's one simulation per transaction, whose mean is alike), the account's code, the
    // latest block; and the submitter's fees.
    let per_exec = |method: &str, less: u64| {
        p.node.get(method).map_or(0.0, |t| t.mean_ms() * t.count.saturating_sub(less) as f64 / n)
    };
    let reads =
        per_exec("eth_call", handle_ops) + per_exec("eth_getCode", 0) + per_exec("eth_getBlockByNumber", 0) + fees;
    let ph = &breakdown.phases;
    if ph.placed > 0 {
        println!(
            "  by stretch ({} requests placed): sent → estimate {:.1} (of which chain reads and fees ≈ {reads:.1}; \
             the rest is HTTP, auth, the session loaded twice and the execution begun in SQLite) | estimate {:.1} | \
             → submit {:.1} (evaluate, sign, the operation recorded in SQLite) | submit {:.1} | → answered {:.1} \
             (outcome and audit event committed in SQLite, the answer)",
            ph.placed,
            ms(ph.before_estimate),
            ms(ph.estimate),
            ms(ph.between),
            ms(ph.submit),
            ms(ph.after_submit)
        );
    }
    if let Some(cpu) = &breakdown.cpu {
        let list = |m: &BTreeMap<String, f64>| {
            m.iter()
                .filter(|(_, c)| **c >= 0.005)
                .map(|(name, c)| format!("{name} {c:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  CPU in cores: this process (service + load) {:.2} ({}), {}; the machine {:.0}% busy",
            cpu.this_process,
            list(&cpu.threads),
            list(&cpu.children),
            cpu.machine_busy * 100.0
        );
    }
    if let Some(v) = &breakdown.vault {
        let calls: Vec<String> = v
            .calls
            .iter()
            .map(|(name, t)| format!("{name} {:.2}", t.total.as_secs_f64() * 1000.0 / v.latencies.len().max(1) as f64))
            .collect();
        println!(
            "  the vault alone (the same database calls, {} loops, no chain): {:.0} executions' worth/s, p50 {} ms, p99 {} ms; ms per execution: {}",
            v.concurrency,
            v.per_second,
            ms_text(percentile(&v.latencies, 0.50)),
            ms_text(percentile(&v.latencies, 0.99)),
            calls.join(", ")
        );
    }
    for (title, tallies) in [("node calls", &p.node), ("SQL statements", &p.sql)] {
        let mut rows: Vec<(&String, &Tally)> = tallies.iter().collect();
        rows.sort_by_key(|(_, t)| std::cmp::Reverse(t.total));
        println!("  {title:<40} {:>8} {:>9} {:>8} {:>12}", "calls", "per exec", "mean ms", "ms per exec");
        for (name, t) in rows {
            println!(
                "    {:<38} {:>8} {:>9.2} {:>8.2} {:>12.2}",
                name.chars().take(38).collect::<String>(),
                t.count,
                t.count as f64 / n,
                t.mean_ms(),
                t.total.as_secs_f64() * 1000.0 / n
            );
        }
    }
}

fn document(plan: &Plan, direct: &[Level], alto: Option<&Level>, failed: &[String]) -> Value {
    let baseline = direct.first().map_or(0.0, Level::per_second);
    let tallies = |t: &BTreeMap<String, Tally>| -> Value {
        t.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    json!({ "calls": v.count, "total_ms": v.total.as_secs_f64() * 1000.0, "mean_ms": v.mean_ms() }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let row = |l: &Level| {
        let mut row = json!({
            "submitter": l.submitter,
            "sessions": l.sessions,
            "executions": l.executions,
            "seconds": l.elapsed.as_secs_f64(),
            "per_second": l.per_second(),
            "p50_ms": l.p(0.50).map(ms),
            "p99_ms": l.p(0.99).map(ms),
            "errors": l.errors(),
            "error_kinds": l.errors.iter().map(|(k, (n, e))| (k.clone(), json!({ "count": n, "example": e }))).collect::<serde_json::Map<_, _>>(),
            "chain_equals_record": l.chain.mismatches.is_empty(),
            "chain": { "sessions": l.chain.sessions, "recorded": l.chain.recorded, "on_chain": l.chain.on_chain, "mismatches": l.chain.mismatches },
        });
        if l.submitter == "direct" && baseline > 0.0 {
            row["per_second_vs_first_level"] = json!(l.per_second() / baseline);
        }
        if let Some(b) = &l.profile {
            let submitter: BTreeMap<String, Tally> =
                b.profile.submitter.iter().map(|(k, v)| ((*k).to_string(), *v)).collect();
            let ph = &b.phases;
            row["profile"] = json!({
                "stretches_ms": {
                    "placed": ph.placed,
                    "sent_to_estimate": ms(ph.before_estimate),
                    "estimate": ms(ph.estimate),
                    "estimate_to_submit": ms(ph.between),
                    "submit": ms(ph.submit),
                    "submit_to_answer": ms(ph.after_submit),
                },
                "node_calls": tallies(&b.profile.node),
                "sql_statements": tallies(&b.profile.sql),
                "submitter": tallies(&submitter),
                "vault_alone": b.vault.as_ref().map(|v| {
                    let calls: BTreeMap<String, Tally> = v.calls.iter().map(|(k, t)| ((*k).to_string(), *t)).collect();
                    json!({
                        "concurrency": v.concurrency,
                        "per_second": v.per_second,
                        "p50_ms": percentile(&v.latencies, 0.50).map(ms),
                        "p99_ms": percentile(&v.latencies, 0.99).map(ms),
                        "calls": tallies(&calls),
                    })
                }),
                "cpu_cores": b.cpu.as_ref().map(|c| json!({ "this_process": c.this_process, "threads": c.threads, "children": c.children, "machine_busy": c.machine_busy })),
            });
        }
        row
    };
    let mut doc = json!({
        "cores": cores(),
        "seconds_per_level": plan.run_for.as_secs(),
        "levels": direct.iter().map(row).collect::<Vec<_>>(),
        "ok": failed.is_empty(),
        "failures": failed,
    });
    if let Some(alto) = alto {
        doc["alto"] = row(alto);
        if let Some(direct) = direct_at(direct, alto.sessions) {
            doc["direct_over_alto"] = json!({
                "sessions": alto.sessions,
                "per_second": direct.per_second() / alto.per_second(),
                "p50": alto.p(0.50).zip(direct.p(0.50)).map(|(a, d)| ms(a) / ms(d)),
                "p99": alto.p(0.99).zip(direct.p(0.99)).map(|(a, d)| ms(a) / ms(d)),
            });
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> B256 {
        B256::repeat_byte(n)
    }

    #[test]
    fn percentiles_are_nearest_rank_and_none_without_samples() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.50), Some(Duration::from_millis(51)));
        assert_eq!(percentile(&samples, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&[Duration::from_millis(7)], 0.99), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn the_chain_matches_the_record_only_operation_for_operation() {
        let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
        let record = BTreeMap::from([(a, vec![h(1), h(2)]), (b, vec![h(3)])]);
        let same = BTreeMap::from([(a, vec![h(2), h(1)]), (b, vec![h(3)])]);
        let check = compare(&record, &same);
        assert_eq!((check.sessions, check.recorded, check.on_chain), (2, 3, 3));
        assert!(check.mismatches.is_empty(), "{:?}", check.mismatches);

        // Mined but answered otherwise (e.g. "unknown"), answered but not mined, another operation
        // in its place, and an account that is no session's: each is a mismatch.
        let extra = BTreeMap::from([(a, vec![h(1), h(2), h(4)]), (b, vec![h(3)])]);
        assert_eq!(compare(&record, &extra).mismatches.len(), 1);
        let missing = BTreeMap::from([(a, vec![h(1)]), (b, vec![h(3)])]);
        assert_eq!(compare(&record, &missing).mismatches.len(), 1);
        let swapped = BTreeMap::from([(a, vec![h(1), h(5)]), (b, vec![h(3)])]);
        assert!(compare(&record, &swapped).mismatches[0].contains("1 answered but not on chain, 1 on chain but not"));
        let stranger = BTreeMap::from([(a, vec![h(1), h(2)]), (b, vec![h(3)]), (Address::ZERO, vec![h(9)])]);
        assert_eq!(compare(&record, &stranger).mismatches.len(), 1);
        // The same operation twice in the record (a replay counted twice) is not one on chain.
        let twice = BTreeMap::from([(a, vec![h(1), h(2), h(2)]), (b, vec![h(3)])]);
        assert_eq!(compare(&twice, &same).mismatches.len(), 1);
    }

    #[test]
    fn each_request_is_cut_at_its_own_estimate_and_submit() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
        let mark = |account, phase, start, end| Mark { account, phase, start: at(start), end: at(end) };
        let marks = [
            mark(a, "estimate", 10, 14),
            mark(a, "submit", 20, 50),
            mark(a, "estimate", 110, 116),
            mark(a, "submit", 120, 160),
            // Another account's calls inside a's requests do not count for a.
            mark(b, "estimate", 11, 12),
            // b's request has no submit inside (it was refused): not placed.
            mark(b, "estimate", 210, 212),
        ];
        let requests = BTreeMap::from([(a, vec![(at(0), at(60)), (at(100), at(170))]), (b, vec![(at(200), at(220))])]);
        let ph = phases(&requests, &marks);
        assert_eq!(ph.placed, 2);
        assert_eq!(ph.before_estimate, Duration::from_millis(10));
        assert_eq!(ph.estimate, Duration::from_millis(5));
        assert_eq!(ph.between, Duration::from_millis(5));
        assert_eq!(ph.submit, Duration::from_millis(35));
        assert_eq!(ph.after_submit, Duration::from_millis(10));
        assert_eq!(phases(&BTreeMap::new(), &marks), Phases::default());
    }

    #[test]
    fn cpu_counters_parse_from_proc() {
        let stat = "4242 (anvil) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(process_cpu(stat), Some(Duration::from_secs(3)));
        assert_eq!(process_name(stat).as_deref(), Some("anvil"));
        // A name with a space and a parenthesis.
        let odd = "7 (tokio (rt) x) R 1 7 7 0 -1 0 0 0 0 0 100 100 0 0";
        assert_eq!(process_cpu(odd), Some(Duration::from_secs(2)));
        assert_eq!(process_name(odd).as_deref(), Some("tokio (rt) x"));
        let machine = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        assert_eq!(machine_ticks(machine), Some((150, 1000)));
    }

    /// A short run against a real anvil: every execution included, and the chain equals the record.
    #[tokio::test]
    async fn a_short_load_run_includes_everything_and_the_chain_equals_the_record() {
        let level = measure(false, 3, Duration::from_secs(1), None).await.expect("a load run");
        assert_eq!(level.errors(), 0, "{:?}", level.errors.keys().collect::<Vec<_>>());
        assert!(level.executions >= 3, "{} executions", level.executions);
        assert_eq!(level.chain.mismatches, Vec::<String>::new());
        assert_eq!(level.chain.recorded, level.executions + 3, "the warm-ups are in the record");
        assert_eq!(level.chain.on_chain, level.chain.recorded);
    }
}
