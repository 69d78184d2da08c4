//! Secrets in the memory of `valet serve`, measured as someone who can read the service's memory
//! would (a core dump, a swap file, a debugger, a memory-disclosure bug): the real binary on a
//! devnet, its master key in `<data-dir>/master.key`, sessions proposed, granted and used; then
//! every readable region of its memory (`/proc/PID/maps` + `/proc/PID/mem`) is searched for each
//! session key and for the master key, raw and as hex.
//!
//! After use a session key is nowhere in memory (it is opened for one execution and wiped), and
//! the master key is in one place only, its own buffer, and never as hex. On the code before this
//! test: 4 of 20 session keys (a user-space RNG's buffer) and 12 copies of the master key.
//!
//! Real processes, everything on 127.0.0.1; the service is stopped by its own PID at the end,
//! also when the test fails.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use alloy::primitives::{B256, U256};
use alloy::signers::SignerSync;
use alloy::transports::http::reqwest;
use serde_json::{Value, json};
use valet_client::Devnet;
use valet_server::{MasterKey, Vault};

mod common;
use common::*;

/// How many sessions are granted and used.
const SESSIONS: usize = 20;

/// Mints to the account; one operation's fees at most.
const SPEC: &str = r#"
valid_for = "1h"

[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "to", eq = "$account" }]

[fees]
budget = "0.01 ether"
"#;

/// The test's admin token (it is not a secret this test looks for).
const ADMIN: &str = "secrets-test-admin-token-0123456789";

impl Api {
    async fn mint(&self, session: &str) -> (u16, Value) {
        let calls = json!({ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 1] }] });
        self.must("POST", &format!("/v1/sessions/{session}/execute"), Some(calls)).await
    }
}

/// One secret and the forms it is looked for in.
struct Secret {
    name: String,
    /// (form, bytes): raw big-endian, raw reversed (how a secp256k1 scalar sits in memory: its
    /// 64-bit limbs little-endian, least significant first), lower- and upper-case hex.
    forms: Vec<(&'static str, Vec<u8>)>,
}

impl Secret {
    fn new(name: String, raw: [u8; 32]) -> Self {
        let mut reversed = raw;
        reversed.reverse();
        let hex = alloy::hex::encode(raw);
        let forms = vec![
            ("raw", raw.to_vec()),
            ("reversed", reversed.to_vec()),
            ("hex", hex.clone().into_bytes()),
            ("HEX", hex.to_uppercase().into_bytes()),
        ];
        Self { name, forms }
    }
}

/// What one scan read.
#[derive(Debug, Default)]
struct Scanned {
    regions: usize,
    bytes: usize,
    unreadable: Vec<String>,
}

/// Finds the copies of each form of each secret in the memory of process `pid`: every readable
/// region, except those mapped from a file and not writable (they hold that file's bytes, not
/// anything the process wrote). `found[s][f]` names the region of each copy of secret `s`'s
/// form `f` (`[heap]`, `[stack]` for the main thread's, `anonymous` for threads' stacks and heaps).
fn scan(pid: u32, secrets: &[Secret]) -> (Vec<Vec<Vec<String>>>, Scanned) {
    // Candidates by their first two bytes: one table lookup per byte of memory.
    let mut by_prefix: Vec<Vec<(usize, usize)>> = vec![Vec::new(); 1 << 16];
    for (s, secret) in secrets.iter().enumerate() {
        for (f, (_, bytes)) in secret.forms.iter().enumerate() {
            by_prefix[usize::from(u16::from_le_bytes([bytes[0], bytes[1]]))].push((s, f));
        }
    }
    let mut found: Vec<Vec<Vec<String>>> = secrets.iter().map(|s| vec![Vec::new(); s.forms.len()]).collect();
    let mut scanned = Scanned::default();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("reading /proc/PID/maps");
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("opening /proc/PID/mem");
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(range), Some(perms), Some(inode)) = (fields.first(), fields.get(1), fields.get(4)) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else {
            continue;
        };
        let (readable, writable) = (perms.starts_with('r'), perms.as_bytes().get(1) == Some(&b'w'));
        let place = fields.get(5).map_or_else(|| format!("anonymous {start:x}"), |path| path.to_string());
        if !readable || (*inode != "0" && !writable) {
            continue;
        }
        let mut region = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).and_then(|_| mem.read_exact(&mut region)).is_err() {
            scanned.unreadable.push(line.to_string());
            continue;
        }
        scanned.regions += 1;
        scanned.bytes += region.len();
        for i in 0..region.len().saturating_sub(1) {
            let candidates = &by_prefix[usize::from(u16::from_le_bytes([region[i], region[i + 1]]))];
            for &(s, f) in candidates {
                let bytes = &secrets[s].forms[f].1;
                if region[i..].starts_with(bytes) {
                    found[s][f].push(place.clone());
                }
            }
        }
    }
    (found, scanned)
}

/// `raw 2 ([heap], [stack]), reversed 0, …`: how many copies of each form, and where.
fn describe(secret: &Secret, found: &[Vec<String>]) -> String {
    let forms: Vec<String> = secret
        .forms
        .iter()
        .zip(found)
        .map(|((form, _), places)| match places.len() {
            0 => format!("{form} 0"),
            n => format!("{form} {n} ({})", places.join(", ")),
        })
        .collect();
    forms.join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_keys_and_the_master_key_are_wiped_after_use() {
    let dir = TempDir::new("secrets-test");
    let data_dir = dir.0.join("serve");
    let devnet = Devnet::start().await.expect("the devnet starts");
    let a = devnet.addresses;

    // The master key, where an operator keeps it: in the data directory's key file.
    let master_file = data_dir.join("master.key");
    let master_hex = MasterKey::generate().to_hex();
    valet_server::crypto::write_private(&master_file, master_hex.as_bytes()).expect("writing master.key");

    let relayer = alloy::hex::encode_prefixed(devnet.key(1).to_bytes());
    let name = format!("ValetNFT={}", a.nft);
    let (validator, factory) = (a.validator.to_string(), a.factory.to_string());
    let rpc_url = devnet.endpoint();
    let args = [
        "serve",
        "--json",
        "--port",
        "0",
        "--data-dir",
        data_dir.to_str().expect("a UTF-8 path"),
        "--rpc-url",
        &rpc_url,
        "--relayer-key",
        &relayer,
        "--validator",
        &validator,
        "--factory",
        &factory,
        "--name",
        &name,
    ];
    let mut serve = Proc::start("valet serve", valet(&args, &[("VALET_ADMIN_TOKEN", ADMIN)]), dir.0.join("serve.log"));
    let url = serve.info["url"].as_str().unwrap_or_else(|| panic!("no url in {}", serve.info)).to_string();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("an HTTP client");

    // An app; the owner's account, funded; SESSIONS sessions proposed and granted by the owner.
    let admin = Api { url: url.clone(), http: http.clone(), key: ADMIN.to_string() };
    let (status, app) = admin.must("POST", "/v1/apps", Some(json!({ "name": "secrets-test" }))).await;
    assert_eq!(status, 201, "{app}");
    let app_id = app["id"].as_str().expect("id").to_string();
    let api = Api { url, http, key: app["api_key"].as_str().expect("api_key").to_string() };
    let owner = devnet.key(3);
    let mut sessions = Vec::new();
    let mut account = None;
    for _ in 0..SESSIONS {
        let (status, proposed) =
            api.must("POST", "/v1/sessions", Some(json!({ "owner": owner.address(), "spec": SPEC }))).await;
        assert_eq!(status, 201, "{proposed}");
        let id = proposed["session_id"].as_str().expect("session_id").to_string();
        let digest: B256 = proposed["digest"].as_str().expect("digest").parse().expect("hex");
        let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("signs").as_bytes());
        let (status, granted) =
            api.must("POST", &format!("/v1/sessions/{id}/grant"), Some(json!({ "signature": signature }))).await;
        assert_eq!((status, granted["status"].as_str()), (200, Some("active")), "{granted}");
        account = proposed["account"].as_str().map(str::to_string);
        sessions.push(id);
    }
    let account = account.expect("an account").parse().expect("an address");
    devnet.fund(account, U256::from(10u128.pow(18))).await.expect("funding the account");

    // One mint with each: the first alone (it deploys the account), the rest two at a time.
    let (status, minted) = api.mint(&sessions[0]).await;
    assert_eq!((status, minted["status"].as_str()), (200, Some("included")), "{minted}");
    for pair in sessions[1..].chunks(2) {
        let tasks: Vec<_> = pair
            .iter()
            .map(|id| {
                let (api, id) = (api.clone(), id.clone());
                tokio::spawn(async move { api.mint(&id).await })
            })
            .collect();
        for task in tasks {
            let (status, minted) = task.await.expect("the mint task");
            assert_eq!((status, minted["status"].as_str()), (200, Some("included")), "{minted}");
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The secrets: each session key, opened from the vault with the master key.
    let master = MasterKey::from_hex(&master_hex).expect("the master key");
    let vault = Vault::connect(&format!("sqlite://{}?mode=rwc", data_dir.join("valet.db").display()))
        .await
        .expect("opening the service's database");
    let rows = vault.sessions(&app_id, None).await.expect("the sessions");
    assert_eq!(rows.len(), SESSIONS);
    let mut secrets: Vec<Secret> = rows
        .iter()
        .map(|row| {
            let id: B256 = row.id.parse().expect("a session id");
            let sealed = alloy::hex::decode(&row.sealed_key).expect("hex");
            let key = master.open(id, &sealed).expect("the session key opens");
            assert_eq!(key.address().to_string(), row.session_key);
            Secret::new(format!("session {id}"), key.to_bytes().0)
        })
        .collect();
    let mut master_raw = [0u8; 32];
    alloy::hex::decode_to_slice(master_hex.as_bytes(), &mut master_raw).expect("hex");
    secrets.push(Secret::new("master key".into(), master_raw));

    // The service's memory, as it stands after the load.
    let (found, scanned) = scan(serve.pid(), &secrets);
    assert!(scanned.regions > 0 && scanned.bytes > 0, "nothing of the service's memory could be read: {scanned:?}");
    println!(
        "scanned {} regions, {} MiB of valet serve (PID {}); unreadable: {:?}",
        scanned.regions,
        scanned.bytes >> 20,
        serve.pid(),
        scanned.unreadable
    );
    let (keys, master) = (&found[..SESSIONS], &found[SESSIONS]);
    let leaked: Vec<String> = secrets[..SESSIONS]
        .iter()
        .zip(keys)
        .filter(|(_, forms)| forms.iter().any(|places| !places.is_empty()))
        .map(|(secret, forms)| format!("{}: {}", secret.name, describe(secret, forms)))
        .collect();
    let copies: usize = keys.iter().flatten().map(Vec::len).sum();
    println!("session keys in memory: {} of {SESSIONS} ({copies} copies)", leaked.len());
    for line in &leaked {
        println!("  {line}");
    }
    let master_copies = describe(&secrets[SESSIONS], master);
    println!("master key copies: {master_copies}");

    let stopped = serve.stop();
    assert!(!serve.stderr().contains("panicked"), "valet serve panicked:\n{}", serve.stderr());
    assert!(stopped.success(), "valet serve exited {stopped} on SIGTERM:\n{}", serve.stderr());
    assert!(
        leaked.is_empty(),
        "{} of {SESSIONS} session keys are still in memory after use:\n{}",
        leaked.len(),
        leaked.join("\n")
    );
    let [raw, reversed, hex, upper] = [0, 1, 2, 3].map(|f| master[f].len());
    assert!(
        raw + reversed <= 1 && hex + upper == 0,
        "the master key is in memory more than once (its one live copy), or as hex: {master_copies}"
    );
}
