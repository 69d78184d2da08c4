//! `valet bench`: the service's throughput and latency against anvil, from HTTP request to
//! confirmed receipt, with direct submission and through the Alto bundler in the same run, side by
//! side with their ratio.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use valet_client::{Devnet, DevnetOptions, Valet};
use valet_server::{MasterKey, Service, Vault};

/// One mode's figures.
struct Figures {
    mode: &'static str,
    executions: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn post(http: &reqwest::Client, url: &str, key: &str, body: Value) -> anyhow::Result<Value> {
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

async fn measure(alto: bool, sessions: usize, per_session: usize) -> anyhow::Result<Figures> {
    let mode = if alto { "alto" } else { "direct" };
    let devnet = Devnet::start_with(DevnetOptions { alto }).await.context("devnet")?;
    let dir = std::env::temp_dir().join(format!("valet-bench-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let vault = Vault::connect(&format!("sqlite://{}?mode=rwc", dir.join("valet.db").display())).await?;
    let master = MasterKey::load(&dir.join("master.key"))?;
    let valet = Valet::new(devnet.provider.clone(), crate::submitter_for(&devnet).await?, devnet.deployment()).await?;
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
    let app = post(&http, &format!("{base}/v1/apps"), &admin, json!({ "name": "bench" })).await?;
    let key = app["api_key"].as_str().context("api key")?.to_string();

    // One owner, account and session per worker; the first execution (deploy + enable) is
    // warm-up, outside the figures.
    let spec = "valid_for = \"1h\"\n[[permission]]\ntarget = \"ValetNFT\"\n\
                function = \"mint(address to, uint256 quantity)\"\nrules = [{ arg = \"to\", eq = \"$account\" }]\n\
                [fees]\nbudget = \"1 ether\"\n";
    let mint = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] });
    let mut ids = Vec::new();
    for _ in 0..sessions {
        let owner = PrivateKeySigner::random();
        let proposed =
            post(&http, &format!("{base}/v1/sessions"), &key, json!({ "owner": owner.address(), "spec": spec }))
                .await?;
        let id = proposed["session_id"].as_str().context("id")?.to_string();
        let account = proposed["account"].as_str().context("account")?.parse()?;
        devnet.fund(account, U256::from(10u128.pow(18))).await?;
        let digest: B256 = proposed["digest"].as_str().context("digest")?.parse()?;
        let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest)?.as_bytes());
        post(&http, &format!("{base}/v1/sessions/{id}/grant"), &key, json!({ "signature": signature })).await?;
        post(&http, &format!("{base}/v1/sessions/{id}/execute"), &key, mint.clone()).await?;
        ids.push(id);
    }

    let started = Instant::now();
    let workers: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let (http, key, url, mint) =
                (http.clone(), key.clone(), format!("{base}/v1/sessions/{id}/execute"), mint.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_session);
                for _ in 0..per_session {
                    let sent = Instant::now();
                    let done = post(&http, &url, &key, mint.clone()).await?;
                    if done["status"] != "included" {
                        bail!("not included: {done}");
                    }
                    latencies.push(sent.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(());
    let _ = server.await;
    drop(devnet);
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort();
    Ok(Figures {
        mode,
        executions: latencies.len(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

/// Runs both modes and prints the table.
pub(crate) async fn run(sessions: usize, per_session: usize, json_out: bool) -> anyhow::Result<()> {
    if sessions == 0 || per_session == 0 {
        bail!("--sessions and --executions must be at least 1");
    }
    let direct = measure(false, sessions, per_session).await.context("direct submission")?;
    let alto = measure(true, sessions, per_session).await.context("through Alto")?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if json_out {
        let row = |f: &Figures| json!({ "mode": f.mode, "executions": f.executions, "per_second": f.per_second, "p50_ms": ms(f.p50), "p99_ms": ms(f.p99) });
        let doc = json!({
            "sessions": sessions, "executions_per_session": per_session,
            "direct": row(&direct), "alto": row(&alto),
            "ratio_direct_over_alto": { "per_second": direct.per_second / alto.per_second, "p50": ms(alto.p50) / ms(direct.p50) },
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "The service on anvil: {sessions} sessions executing concurrently, {per_session} mints each, \
         request → confirmed receipt\n"
    );
    println!("{:<22} {:>10} {:>10} {:>10} {:>10}", "submitter", "executions", "exec/s", "p50 ms", "p99 ms");
    for f in [&direct, &alto] {
        println!("{:<22} {:>10} {:>10.1} {:>10.1} {:>10.1}", f.mode, f.executions, f.per_second, ms(f.p50), ms(f.p99));
    }
    println!(
        "{:<22} {:>10} {:>10.2} {:>10.2} {:>10.2}",
        "direct ÷ alto",
        "",
        direct.per_second / alto.per_second,
        ms(direct.p50) / ms(alto.p50),
        ms(direct.p99) / ms(alto.p99)
    );
    Ok(())
}
