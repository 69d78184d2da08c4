//! The `valet` commands end to end on one real devnet (`valet devnet --json`, stopped by its PID
//! whatever happens): an account's address, a session granted from a TOML spec, two mints through
//! it, a mint of six refused with the rule it breaks, what `show` and `list` report, revocation,
//! and bad input (unknown session, unknown name, wrong arguments, a typo in a spec, no password)
//! refused with messages naming the bad value, never a panic.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const MINT: &str = "mint(address to, uint256 quantity)";

const SPEC: &str = r#"
valid_for = "1h"
max_uses = 3

[[permission]]
target = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "to", eq = "$account" }, { arg = "quantity", lte = 5 }]
max_uses = 3

[fees]
budget = "0.05 ether"
"#;

/// A fresh data directory, removed when dropped.
struct Home(PathBuf);

impl Home {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("valet-cli-test-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("creating the test's VALET_HOME");
        Self(path)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} (devnet.log, sessions/) for a look", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running `valet devnet --json`, stopped with SIGTERM by its own PID when dropped (also when
/// the test panics).
struct Devnet {
    child: Child,
    /// Kept open so the devnet never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    info: Value,
    stopped: Option<ExitStatus>,
}

impl Devnet {
    fn start(home: &Path) -> Self {
        let log = std::fs::File::create(home.join("devnet.log")).expect("creating devnet.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_valet"))
            .args(["devnet", "--json"])
            .env("VALET_HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("valet devnet starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let mut devnet = Self { child, _stdout: stdout, info: Value::Null, stopped: None };
        if read.is_err() || line.trim().is_empty() {
            let status = devnet.stop();
            let log = std::fs::read_to_string(home.join("devnet.log")).unwrap_or_default();
            panic!("valet devnet printed nothing ({status:?}); its stderr:\n{log}");
        }
        devnet.info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("devnet --json printed {line}: {e}"));
        devnet
    }

    /// The PID `valet devnet` has (and wrote in devnet.json).
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM to the devnet's own PID, then its exit status (SIGKILL after 30 s).
    fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.stopped {
            return status;
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            self.stopped = Some(status);
            return status;
        }
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    eprintln!("valet devnet (PID {}) ignored SIGTERM for 30 s: killing it", self.pid());
                    let _ = self.child.kill();
                    break self.child.wait().expect("waiting for valet devnet");
                }
            }
        };
        self.stopped = Some(status);
        status
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `valet` with the test's environment (and none of the caller's VALET_* settings).
fn valet(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_valet"));
    for var in [
        "VALET_RPC_URL",
        "VALET_BUNDLER_URL",
        "VALET_RELAYER_KEY",
        "VALET_VALIDATOR",
        "VALET_FACTORY",
        "VALET_OWNER_KEY",
        "VALET_OWNER_PASSWORD",
        "VALET_PASSWORD",
        "VALET_ACCOUNT_KIND",
    ] {
        command.env_remove(var);
    }
    command.env("VALET_HOME", home).envs(env.iter().copied()).args(args).stdin(Stdio::null());
    command.output().expect("valet runs")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed and print one JSON document.
fn ok(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    let out = valet(home, env, args);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "valet {args:?} failed ({}): {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "valet {args:?}: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("valet {args:?} printed {}: {e}", String::from_utf8_lossy(&out.stdout)))
}

/// Runs a command that must fail cleanly (exit code 1, no panic); its output.
fn fails(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let out = valet(home, env, args);
    let stderr = stderr_of(&out);
    println!("valet {args:?} → {}\n  stderr: {}", out.status, stderr.trim_end());
    assert_eq!(out.status.code(), Some(1), "valet {args:?} should fail with exit code 1: {stderr}");
    assert!(!stderr.contains("panicked"), "valet {args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "valet {args:?}: {stderr}");
    if args.contains(&"--json") {
        // Under --json a failure is also one JSON object on stdout: the refusal, or the error.
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("valet {args:?}: stdout is not one JSON document ({e}): {:?}", out.stdout));
        match doc["status"].as_str() {
            Some("refused") => assert!(doc["reason"].is_string(), "{doc}"),
            Some("failed") => {
                let message = doc["error"].as_str().unwrap_or_default();
                assert_eq!(stderr.trim_end(), format!("error: {}", message.trim_end()), "the same error on both")
            }
            _ => panic!("valet {args:?}: a failure's JSON says neither refused nor failed: {doc}"),
        }
    }
    out
}

/// The stderr of a command that must fail cleanly.
fn error(home: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    stderr_of(&fails(home, env, args))
}

fn cast(args: &[&str]) -> String {
    let cast =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/node_modules/@foundry-rs/cast-linux-amd64/bin/cast");
    let out = Command::new(&cast).args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", cast.display()));
    assert!(out.status.success(), "cast {args:?}: {}", stderr_of(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn is_address(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 42 && s.starts_with("0x") && s[2..].chars().all(|c| c.is_ascii_hexdigit()))
}

fn session_files(home: &Path) -> usize {
    std::fs::read_dir(home.join("sessions")).map_or(0, |entries| entries.count())
}

#[test]
fn sessions_from_grant_to_revocation_on_a_devnet() {
    let started = Instant::now();
    let home_dir = Home::new();
    let home = home_dir.0.as_path();
    let mut devnet = Devnet::start(home);
    let info = devnet.info["devnet"].clone();
    let rpc_url = info["rpc_url"].as_str().expect("rpc_url").to_string();
    let nft = info["names"]["ValetNFT"].as_str().expect("the ValetNFT name").to_string();
    assert!(is_address(&info["validator"]) && is_address(&info["factory"]), "{info}");
    assert_eq!(info["pid"], devnet.pid(), "{info}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("devnet.json")).expect("devnet.json is written"))
            .expect("devnet.json is JSON");
    assert_eq!(written["rpc_url"], rpc_url);
    let e = error(home, &[], &["devnet", "--json"]);
    assert!(e.contains("already running") && e.contains(&devnet.pid().to_string()), "one devnet per VALET_HOME: {e}");
    let keys = devnet.info["dev_keys"].as_array().expect("dev_keys");
    let owner = keys.iter().find(|k| k["index"] == 3).expect("dev key 3");
    let owner_key = owner["private_key"].as_str().expect("a private key").to_string();
    let owner_address = owner["address"].as_str().expect("an address").to_string();

    let password = ("VALET_PASSWORD", "correct horse battery staple");
    let env = [password, ("VALET_OWNER_KEY", owner_key.as_str())];
    let env = env.as_slice();

    // The account: counterfactual, empty.
    let doc = ok(home, env, &["account", "address", "--json"]);
    let account = doc["account"]["address"].as_str().expect("account address").to_string();
    assert!(is_address(&doc["account"]["address"]), "{doc}");
    assert_eq!(doc["account"]["deployed"], false, "{doc}");
    assert_eq!(doc["account"]["owner"], owner_address, "{doc}");
    assert_eq!(doc["balance_wei"], "0", "{doc}");
    let by_owner = ok(home, &[], &["account", "address", "--owner", &owner_address, "--json"]);
    assert_eq!(by_owner["account"]["address"], account, "--owner and --owner-key name the same account");

    // Grants that must fail before anything is stored.
    let spec = home.join("mint.toml");
    std::fs::write(&spec, SPEC).expect("writing the spec");
    let spec = spec.to_str().expect("a UTF-8 path");
    let no_password = error(home, &env[1..], &["session", "grant", "--spec", spec, "--json"]);
    assert!(no_password.contains("VALET_PASSWORD"), "{no_password}");
    let typo = home.join("typo.toml");
    std::fs::write(&typo, SPEC.replace("max_uses = 3\n\n", "max_usses = 3\n\n")).expect("writing the spec");
    let typo_error = error(home, env, &["session", "grant", "--spec", typo.to_str().expect("UTF-8"), "--json"]);
    assert!(typo_error.contains("unknown field `max_usses`"), "{typo_error}");
    let bad_rule = home.join("bad-rule.toml");
    std::fs::write(&bad_rule, SPEC.replace("lte = 5", "lt_e = 5")).expect("writing the spec");
    let bad_rule_error = error(home, env, &["session", "grant", "--spec", bad_rule.to_str().expect("UTF-8")]);
    assert!(bad_rule_error.contains("unknown field `lt_e`"), "{bad_rule_error}");
    let bad_target = home.join("bad-target.toml");
    std::fs::write(&bad_target, SPEC.replace("\"ValetNFT\"", "\"ValetNTF\"")).expect("writing the spec");
    let bad_target_error = error(home, env, &["session", "grant", "--spec", bad_target.to_str().expect("UTF-8")]);
    assert!(bad_target_error.contains("`ValetNTF` is neither an address nor a known name"), "{bad_target_error}");
    assert!(bad_target_error.contains("(known: ValetDAO, ValetNFT, ValetToken)"), "{bad_target_error}");
    let missing = error(home, env, &["session", "grant", "--spec", "/nonexistent/valet-spec.toml"]);
    assert!(missing.contains("/nonexistent/valet-spec.toml"), "{missing}");
    assert_eq!(session_files(home), 0, "failed grants store nothing");

    // The grant.
    let granted = ok(home, env, &["session", "grant", "--spec", spec, "--json"]);
    let id = granted["session_id"].as_str().expect("session_id").to_string();
    assert!(id.len() == 66 && id.starts_with("0x"), "{granted}");
    assert_eq!(granted["account"], account, "{granted}");
    assert_eq!(granted["enabled"], false, "{granted}");
    let summary = granted["summary"].to_string();
    assert!(summary.contains("only if to is this account and quantity ≤ 5"), "{summary}");
    assert_eq!(session_files(home), 2, "the session and its encrypted key");
    let key_file = std::fs::read_to_string(home.join("sessions").join(format!("{id}.key"))).expect("the key file");
    assert!(key_file.contains("\"crypto\""), "the session key is stored as an encrypted keystore");

    // Unfunded, the account cannot pay for its first operation; the error says what to do.
    let mint = |quantity: &str| -> Vec<String> {
        [
            "session",
            "exec",
            &id[..10],
            "--to",
            "ValetNFT",
            "--function",
            MINT,
            "--arg",
            "$account",
            "--arg",
            quantity,
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let unfunded = error(home, env, &args(&mint("2")));
    assert!(unfunded.contains("too little ETH") && unfunded.to_lowercase().contains(&account), "{unfunded}");

    cast(&["rpc", "anvil_setBalance", &account, "0xde0b6b3a7640000", "--rpc-url", &rpc_url]);
    let doc = ok(home, env, &["account", "address", "--json"]);
    assert_eq!(doc["balance_wei"], "1000000000000000000", "{doc}");

    // The first mint deploys the account and enables the session in the same operation.
    let first = ok(home, env, &args(&mint("2")));
    println!("first exec: {first}");
    assert_eq!(first["status"], "included", "{first}");
    assert_eq!(first["session_id"], id, "{first}");
    assert_eq!(first["deployed_account"], true, "{first}");
    assert_eq!(first["enabled_session"], true, "{first}");
    assert_eq!(first["permission_indices"], serde_json::json!([0]), "{first}");
    // A prefix in capitals without 0x names the same session.
    let prefix = id[2..12].to_ascii_uppercase();
    let mut second_args = mint("2");
    second_args[2] = prefix.clone();
    let second = ok(home, env, &args(&second_args));
    assert_eq!(second["status"], "included", "{second}");
    assert_eq!(second["deployed_account"], false, "{second}");
    assert_eq!(second["enabled_session"], false, "{second}");
    let balance = cast(&["call", &nft, "balanceOf(address)(uint256)", &account, "--rpc-url", &rpc_url]);
    assert_eq!(balance, "4", "two mints of two");

    // A mint of six breaks `quantity ≤ 5`: refused before sending, in the spec's words.
    let refused = fails(home, env, &args(&mint("6")));
    let stderr = stderr_of(&refused);
    let doc: Value = serde_json::from_slice(&refused.stdout).expect("a JSON refusal on stdout");
    println!("refused: {doc}");
    assert_eq!(doc["status"], "refused", "{doc}");
    let reason = doc["reason"].as_str().expect("reason");
    assert!(reason.contains("quantity = 6, but the session requires quantity ≤ 5"), "{doc}");
    assert!(doc["refusal"].as_str().is_some_and(|r| r.contains("rule 1 (Lte)")), "{doc}");
    assert!(stderr.contains("refused before sending") && stderr.contains(reason), "{stderr}");

    // What the validator says is left: 2 of 3 operations, 2 of 3 mints.
    let shown = ok(home, env, &["session", "show", &id, "--json"]);
    let status = &shown["status"];
    assert_eq!(status["id"], id, "{shown}");
    assert_eq!(status["state"], "enabled", "{shown}");
    assert_eq!(status["usable"], true, "{shown}");
    assert_eq!(status["uses"], 2, "{shown}");
    assert_eq!(status["max_uses"], 3, "{shown}");
    let permission = &status["permissions"][0];
    assert_eq!(permission["uses"], 2, "{shown}");
    assert_eq!(permission["max_uses"], 3, "{shown}");
    assert_eq!(permission["target"].as_str().map(str::to_lowercase), Some(nft.to_lowercase()), "{shown}");
    assert_eq!(shown["account"], account, "{shown}");

    let listed = ok(home, env, &["session", "list", "--json"]);
    let sessions = listed["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{listed}");
    assert_eq!(sessions[0]["status"]["id"], id, "{listed}");
    assert_eq!(sessions[0]["status"]["uses"], 2, "{listed}");
    // In text: each counted permission's calls, in the spec's function names.
    let text = String::from_utf8(valet(home, env, &["session", "list"]).stdout).expect("UTF-8");
    assert!(text.contains("enabled") && text.contains("2/3 ops, mint 2/3"), "{text}");
    let others = ok(home, env, &["session", "list", "--account", &owner_address, "--json"]);
    assert_eq!(others["sessions"], serde_json::json!([]), "no session of another account: {others}");

    // Bad input to exec: each names what is wrong.
    let other_prefix = if id[2..].starts_with('f') { "0xe" } else { "0xf" };
    let mut unknown = mint("1");
    unknown[2] = other_prefix.to_string();
    let e = error(home, env, &args(&unknown));
    assert!(e.contains(&format!("no stored session {other_prefix}")), "{e}");
    let mut not_hex = mint("1");
    not_hex[2] = "0xzz".to_string();
    let e = error(home, env, &args(&not_hex));
    assert!(e.contains("`0xzz` is not a session id"), "{e}");
    let mut unknown_name = mint("1");
    unknown_name[4] = "ValetNTF".to_string();
    let e = error(home, env, &args(&unknown_name));
    assert!(e.contains("--to `ValetNTF` is neither an address nor a known name"), "{e}");
    assert!(e.contains("ValetNFT"), "the known names are listed: {e}");
    let one_arg = ["session", "exec", &id, "--to", "ValetNFT", "--function", MINT, "--arg", "$account"];
    let e = error(home, env, &one_arg);
    assert!(e.contains("mint(address,uint256) takes 2 argument(s), 1 given"), "{e}");
    let mut placeholder = mint("1");
    placeholder[8] = "$acount".to_string();
    let e = error(home, env, &args(&placeholder));
    assert!(e.contains("`$acount`"), "{e}");
    let e = error(home, env, &args(&mint("-1")));
    assert!(e.contains("`quantity` (uint256) = `-1`"), "{e}");
    let mut bad_type = mint("1");
    bad_type[6] = "mint(adress to, uint256 quantity)".to_string();
    let e = error(home, env, &args(&bad_type));
    assert!(e.contains("unknown type `adress`"), "{e}");
    // A function the session does not allow: refused, saying what it does allow.
    let mut other_function = mint("1");
    other_function[6] = "mint(address to, uint128 quantity)".to_string();
    let e = error(home, env, &args(&other_function));
    assert!(e.contains("is not one the session allows; it allows mint(address,uint256) on ValetNFT"), "{e}");
    let wrong_password = [("VALET_PASSWORD", "wrong"), env[1]];
    let e = error(home, &wrong_password, &args(&mint("1")));
    assert!(e.contains("VALET_PASSWORD"), "{e}");
    // None of these spent anything.
    let shown = ok(home, env, &["session", "show", &prefix, "--json"]);
    assert_eq!(shown["status"]["uses"], 2, "{shown}");

    // Revocation: at once, and exec then says so.
    let revoked = ok(home, env, &["session", "revoke", &id, "--json"]);
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_eq!(revoked["session_id"], id, "{revoked}");
    let shown = ok(home, env, &["session", "show", &id, "--json"]);
    assert_eq!(shown["status"]["state"], "revoked", "{shown}");
    assert_eq!(shown["status"]["usable"], false, "{shown}");
    assert!(shown["status"]["reason"].as_str().is_some_and(|r| r.contains("was revoked")), "{shown}");
    let e = error(home, env, &args(&mint("1")));
    assert!(e.contains("refused before sending") && e.contains("was revoked"), "{e}");
    let balance = cast(&["call", &nft, "balanceOf(address)(uint256)", &account, "--rpc-url", &rpc_url]);
    assert_eq!(balance, "4", "nothing minted after the two mints");

    // A name given at grant (`--name`) also works for exec; list shows both sessions.
    let named_spec = home.join("named.toml");
    std::fs::write(
        &named_spec,
        SPEC.replace("\"ValetNFT\"", "\"Collectible\"")
            .replace("max_uses = 3\n\n[[permission]]", "salt = 1\n\n[[permission]]"),
    )
    .expect("writing the spec");
    let named_spec = named_spec.to_str().expect("UTF-8");
    let collectible = format!("Collectible={nft}");
    let granted = ok(home, env, &["session", "grant", "--spec", named_spec, "--name", &collectible, "--json"]);
    let named_id = granted["session_id"].as_str().expect("session_id").to_string();
    assert!(granted["summary"].to_string().contains("on Collectible"), "{granted}");
    let mint_named: Vec<String> = [
        "session",
        "exec",
        &named_id,
        "--to",
        "Collectible",
        "--function",
        MINT,
        "--arg",
        "$account",
        "--arg",
        "1",
        "--json",
    ]
    .map(String::from)
    .to_vec();
    let done = ok(home, env, &args(&mint_named));
    assert_eq!(done["status"], "included", "{done}");
    assert_eq!(done["enabled_session"], true, "{done}");
    assert_eq!(done["deployed_account"], false, "{done}");
    let listed = ok(home, env, &["session", "list", "--json"]);
    let mut states: Vec<(String, String)> = listed["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| {
            (
                s["status"]["id"].as_str().unwrap_or_default().into(),
                s["status"]["state"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    states.sort();
    let mut expected = vec![(id.clone(), "revoked".to_string()), (named_id.clone(), "enabled".to_string())];
    expected.sort();
    assert_eq!(states, expected, "{listed}");

    // Revoke-all: every session of the account ends, and a grant not used yet is void too.
    let unused = ok(home, env, &["session", "grant", "--spec", named_spec, "--name", &collectible, "--json"]);
    let unused_id = unused["session_id"].as_str().expect("session_id").to_string();
    let text = String::from_utf8(valet(home, env, &["session", "list"]).stdout).expect("UTF-8");
    let line = text.lines().find(|l| l.starts_with(&unused_id)).unwrap_or_default();
    assert!(line.contains("granted") && line.contains("mint 0/3"), "signed, not yet enabled: {text}");
    let all = ok(home, env, &["session", "revoke", "--all", "--json"]);
    assert_eq!(all["status"], "revoked_all", "{all}");
    assert_ne!(all["epoch"], all["previous_epoch"], "the epoch moved: {all}");
    for session in [&named_id, &unused_id] {
        let shown = ok(home, env, &["session", "show", session, "--json"]);
        assert_eq!(shown["status"]["state"], "voided", "{shown}");
        assert!(shown["status"]["reason"].as_str().is_some_and(|r| r.contains("revoked after")), "{shown}");
    }
    let e = error(home, env, &args(&mint_named));
    assert!(e.contains("refused before sending") && e.contains("revoked"), "{e}");
    // Neither an id nor --all: clap's usage error.
    let out = valet(home, env, &["session", "revoke", "--json"]);
    assert!(!out.status.success() && stderr_of(&out).contains("<ID>"), "{}", stderr_of(&out));

    // Stopping the devnet: by its PID, cleanly, devnet.json removed; the commands then say so.
    let status = devnet.stop();
    assert!(status.success(), "valet devnet exited with {status}");
    assert!(!home.join("devnet.json").exists(), "devnet.json is removed when the devnet stops");
    let e = error(home, env, &["session", "list", "--json"]);
    assert!(e.contains("no chain") && e.contains("valet devnet"), "{e}");
    // A devnet.json left by a devnet that died is named as such.
    std::fs::write(home.join("devnet.json"), written.to_string()).expect("writing a stale devnet.json");
    let e = error(home, env, &["session", "show", &id, "--json"]);
    assert!(e.contains(&format!("(PID {}) that is no longer running", devnet.pid())), "{e}");

    // The files are the owner's alone: encrypted keys, sessions, the devnet's description.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&home.join("sessions")), 0o700);
    for entry in std::fs::read_dir(home.join("sessions")).expect("sessions") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }

    // A fresh devnet has the same chain id and addresses, but it is another chain: the sessions
    // granted on the last one are not listed, shown or executed there (a revoked one would have
    // come back usable).
    let mut fresh = Devnet::start(home);
    assert_eq!(mode(&home.join("devnet.json")), 0o600);
    assert_eq!(fresh.info["devnet"]["validator"], info["validator"], "the same addresses");
    let listed = ok(home, env, &["session", "list", "--json"]);
    assert_eq!(listed["sessions"], serde_json::json!([]), "none of the old chain's sessions: {listed}");
    let e = error(home, env, &["session", "show", &id, "--json"]);
    assert!(e.contains("granted on another chain") && e.contains("grant a new one"), "{e}");
    let e = error(home, env, &args(&mint_named));
    assert!(e.contains("granted on another chain"), "{e}");
    assert!(fresh.stop().success());
    println!("the whole test took {:.1} s", started.elapsed().as_secs_f64());
}

/// `--account-kind eip7702`: the owner's own EOA gets a session (its grant stores the signed
/// delegation, the first exec delegates, activates, enables and mints at the EOA's address);
/// commands on the stored session need no flag; `account leave` makes it a plain EOA again with
/// every session void, and `account upgrade` brings it back with nothing from before alive.
#[test]
fn an_eoa_from_grant_to_leaving_and_back() {
    let home_dir = Home::new();
    let home = home_dir.0.as_path();
    let devnet = Devnet::start(home);
    let rpc_url = devnet.info["devnet"]["rpc_url"].as_str().expect("rpc_url").to_string();
    let keys = devnet.info["dev_keys"].as_array().expect("dev_keys");
    let owner = keys.iter().find(|k| k["index"] == 5).expect("dev key 5");
    let owner_key = owner["private_key"].as_str().expect("a private key").to_string();
    let eoa = owner["address"].as_str().expect("an address").to_string();
    let env = [("VALET_PASSWORD", "pw"), ("VALET_OWNER_KEY", owner_key.as_str())];
    let env = env.as_slice();
    let spec = home.join("mint.toml");
    std::fs::write(&spec, SPEC).expect("writing the spec");
    let spec = spec.to_str().expect("a UTF-8 path");

    let doc = ok(home, env, &["account", "address", "--account-kind", "eip7702", "--json"]);
    assert_eq!(doc["account"]["address"], eoa, "the account is the EOA itself: {doc}");
    assert_eq!(doc["account"]["deployed"], false, "{doc}");
    let granted = ok(home, env, &["session", "grant", "--spec", spec, "--account-kind", "eip7702", "--json"]);
    assert_eq!(granted["account"], eoa, "{granted}");
    let id = granted["session_id"].as_str().expect("session id").to_string();
    let mint = ["session", "exec", &id, "--to", "ValetNFT", "--function", MINT, "--arg", "$account", "--arg", "1"];
    let first = ok(home, env, &[&mint[..], &["--json"]].concat());
    assert_eq!(first["status"], "included", "{first}");
    assert_eq!(first["deployed_account"], true, "the first exec delegated and activated the EOA: {first}");
    assert!(cast(&["code", &eoa, "--rpc-url", &rpc_url]).starts_with("0xef0100"), "delegated");
    ok(home, env, &[&mint[..], &["--json"]].concat());
    let nft = devnet.info["devnet"]["names"]["ValetNFT"].as_str().expect("nft").to_string();
    let held = cast(&["call", &nft, "balanceOf(address)(uint256)", &eoa, "--rpc-url", &rpc_url]);
    assert_eq!(held, "2", "the EOA owns what its session minted");
    let shown = ok(home, env, &["session", "show", &id, "--json"]);
    assert_eq!(shown["status"]["usable"], true, "{shown}");

    let left = ok(home, env, &["account", "leave", "--json"]);
    assert_eq!(left["status"], "left", "{left}");
    assert_eq!(cast(&["code", &eoa, "--rpc-url", &rpc_url]), "0x", "a plain EOA again");
    let shown = ok(home, env, &["session", "show", &id, "--json"]);
    assert_eq!(shown["status"]["usable"], false, "{shown}");
    let upgraded = ok(home, env, &["account", "upgrade", "--json"]);
    assert_eq!(upgraded["status"], "upgraded", "{upgraded}");
    assert!(cast(&["code", &eoa, "--rpc-url", &rpc_url]).starts_with("0xef0100"), "delegated again");
    let refused = error(home, env, &mint);
    assert!(refused.contains("after this one was granted; grant a new one"), "nothing from before is alive: {refused}");
    let again = error(home, env, &["account", "upgrade"]);
    assert!(again.contains("already delegates to Valet"), "{again}");
}
