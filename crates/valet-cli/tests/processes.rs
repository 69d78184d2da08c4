//! A `valet` that starts a devnet does not outlive it, and the devnet does not outlive the `valet`:
//! - `kill -9` of `valet up` (which runs no cleanup code) takes its anvil, and its Alto, with it;
//! - `valet devnet` and `valet up` exit with an error naming anvil when their anvil is killed.
//!
//! Real processes, everything on 127.0.0.1. Every process the test starts, and every process it
//! finds that `valet` started, is stopped by its own PID at the end, also when the test fails.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

/// How long a process may take to go after what should end it (it takes well under a second).
const WITHIN: Duration = Duration::from_secs(5);

/// A process seen in `/proc`: its PID, name, and start time (which tells it from a later
/// process that gets the same PID).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    pid: u32,
    name: String,
    started: u64,
}

impl Seen {
    /// `/proc/PID/stat`: `pid (name) state ppid …`, the start time its 22nd field. The name may
    /// hold spaces and parentheses: the fields after it are counted from its last `)`.
    fn read(pid: u32) -> Option<(Self, char, u32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, tail) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1.to_string();
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let state = fields.first()?.chars().next()?;
        let parent = fields.get(1)?.parse().ok()?;
        let started = fields.get(19)?.parse().ok()?;
        Some((Self { pid, name, started }, state, parent))
    }

    /// Whether this very process still runs (a zombie does not: it is dead, only not yet reaped,
    /// and holds no port).
    fn alive(&self) -> bool {
        matches!(Self::read(self.pid), Some((now, state, _)) if now == *self && state != 'Z')
    }

    /// SIGKILL by its own PID, if it is still this process.
    fn kill(&self) {
        if self.alive() {
            let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        }
    }
}

/// The live descendants of process `root` (children, their children, …).
fn descendants(root: u32) -> Vec<Seen> {
    let all: Vec<(Seen, char, u32)> = std::fs::read_dir("/proc")
        .expect("reading /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(Seen::read)
        .filter(|(_, state, _)| *state != 'Z')
        .collect();
    let mut found: Vec<Seen> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for (seen, _, _) in all.iter().filter(|(_, _, p)| *p == parent) {
            parents.push(seen.pid);
            found.push(seen.clone());
        }
    }
    found
}

/// A `valet` process ([`Proc`]) and what it was seen to start. When dropped (also when the test
/// panics) it is stopped by its own PID, and so is every process it started that is still alive:
/// on the code this test guards against, those outlive it.
struct Valet {
    proc: Proc,
    /// What `valet` started (anvil, Alto), as found in `/proc`.
    started: Vec<Seen>,
}

impl Valet {
    /// Starts `valet args` in `dir` (stderr to `<dir>/valet.log`), waits up to 2 minutes for its
    /// JSON line, and notes the processes it started.
    fn start(args: &[&str], dir: &Path) -> Self {
        let mut command = valet(args, &[("VALET_ADMIN_TOKEN", "processes-test-admin-token-0123")]);
        command.current_dir(dir);
        let proc = Proc::start(&format!("valet {args:?}"), command, dir.join("valet.log"));
        let started = descendants(proc.pid());
        Self { proc, started }
    }

    /// The one process named `name` that `valet` started.
    fn started(&self, name: &str) -> Seen {
        let found: Vec<&Seen> = self.started.iter().filter(|p| p.name == name).collect();
        match found.as_slice() {
            [one] => (*one).clone(),
            _ => panic!("valet (PID {}) started {:?}: expected one `{name}`", self.pid(), self.started),
        }
    }
}

impl std::ops::Deref for Valet {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl std::ops::DerefMut for Valet {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

impl Drop for Valet {
    fn drop(&mut self) {
        self.proc.stop();
        for orphan in self.started.iter().filter(|p| p.alive()) {
            eprintln!("{} (PID {}) outlived valet: killing it", orphan.name, orphan.pid);
            orphan.kill();
        }
    }
}

/// The port of a `http://127.0.0.1:PORT` URL in `valet`'s JSON line.
fn loopback_port(info: &Value, key: &str) -> SocketAddr {
    let url = info[key].as_str().unwrap_or_else(|| panic!("no {key} in {info}"));
    let addr = url.strip_prefix("http://").unwrap_or_else(|| panic!("{key} `{url}` is not http://…"));
    let addr: SocketAddr = addr.trim_end_matches('/').parse().unwrap_or_else(|e| panic!("{key} `{url}`: {e}"));
    assert!(addr.ip().is_loopback(), "{key} `{url}` is not on loopback");
    addr
}

/// Whether something answers a TCP connection on `addr`.
fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Polls `done` every 20 ms until it holds or `within` has passed; whether it held.
fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kill -9` of `valet up` with `extra` arguments: what it started goes with it, and nothing
/// listens on the ports it printed any more. `expect` names what it must have started.
fn kill_9_of_valet_up_leaves_nothing(extra: &[&str], expect: &[(&str, &str)]) {
    let dir = TempDir::new("processes-up");
    let data = dir.0.join("up");
    let mut args = vec!["up", "--json", "--port", "0", "--data-dir", data.to_str().expect("a UTF-8 path")];
    args.extend_from_slice(extra);
    let mut valet = Valet::start(&args, &dir.0);
    let started: Vec<(Seen, SocketAddr)> =
        expect.iter().map(|(name, url)| (valet.started(name), loopback_port(&valet.info, url))).collect();
    for (process, addr) in &started {
        assert!(listening(*addr), "{} (PID {}) does not answer on {addr}", process.name, process.pid);
    }

    let status = valet.kill();
    assert!(!status.success(), "valet up was killed, yet exited with {status}");
    for (process, addr) in &started {
        assert!(
            eventually(WITHIN, || !process.alive()),
            "{} (PID {}) still runs {WITHIN:?} after `kill -9` of valet up (PID {})",
            process.name,
            process.pid,
            valet.pid()
        );
        // Its main thread may be a zombie a moment before its last thread exits and its sockets close.
        assert!(
            eventually(WITHIN, || !listening(*addr)),
            "something still listens on {addr}, where {} was, {WITHIN:?} after it went",
            process.name
        );
    }
    let rest: Vec<Seen> = valet.started.iter().filter(|p| p.alive()).cloned().collect();
    assert!(rest.is_empty(), "still running after valet up was killed: {rest:?}");
}

#[test]
fn kill_9_of_valet_up_takes_its_anvil_with_it() {
    kill_9_of_valet_up_leaves_nothing(&[], &[("anvil", "rpc_url")]);
}

#[test]
fn kill_9_of_valet_up_takes_its_anvil_and_alto_with_it() {
    kill_9_of_valet_up_leaves_nothing(&["--bundler", "alto"], &[("anvil", "rpc_url"), ("node", "bundler_url")]);
}

/// Kills the anvil of `valet args` (by its PID, SIGKILL): `valet` exits within seconds, with a
/// failure status and a message naming anvil.
fn valet_stops_when_its_anvil_dies(args: &[&str], dir: &TempDir) -> Valet {
    let mut valet = Valet::start(args, &dir.0);
    let anvil = valet.started("anvil");
    anvil.kill();
    let status = valet.wait(WITHIN).unwrap_or_else(|| {
        panic!(
            "valet {args:?} (PID {}) still runs {WITHIN:?} after its anvil (PID {}) was killed",
            valet.pid(),
            anvil.pid
        )
    });
    let stderr = valet.stderr();
    assert!(!status.success(), "valet {args:?} exited with {status} when its anvil died; its stderr:\n{stderr}");
    let said = stderr.lines().filter(|l| l.starts_with("error:")).collect::<Vec<_>>().join("\n");
    assert!(
        said.contains("anvil") && said.contains(&anvil.pid.to_string()),
        "valet {args:?} does not say that anvil (PID {}) died; its stderr:\n{stderr}",
        anvil.pid
    );
    valet
}

#[test]
fn valet_devnet_stops_with_an_error_when_its_anvil_dies() {
    let dir = TempDir::new("processes-devnet");
    let home = dir.0.join("home");
    let home = home.to_str().expect("a UTF-8 path");
    let valet = valet_stops_when_its_anvil_dies(&["devnet", "--json", "--data-dir", home], &dir);
    assert!(!Path::new(home).join("devnet.json").exists(), "devnet.json describes a devnet that is gone");
    drop(valet);
}

#[test]
fn valet_up_stops_with_an_error_when_its_anvil_dies() {
    let dir = TempDir::new("processes-up-anvil");
    let data = dir.0.join("up");
    let valet = valet_stops_when_its_anvil_dies(
        &["up", "--json", "--port", "0", "--data-dir", data.to_str().expect("a UTF-8 path")],
        &dir,
    );
    drop(valet);
}

/// A JSON request to `url` over a plain connection (`Connection: close`): the status and the
/// JSON body.
fn http(url: &str, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    use std::io::{Read as _, Write as _};
    let addr = url.strip_prefix("http://").expect("http://…");
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let (_, body) = answer.split_once("\r\n\r\n").expect("a head");
    (status, serde_json::from_str(body).unwrap_or(Value::String(body.to_string())))
}

#[test]
fn valet_up_with_two_chains_serves_both_and_kill_9_takes_both_anvils_with_it() {
    let dir = TempDir::new("processes-up-chains");
    let data = dir.0.join("up");
    let args = ["up", "--json", "--port", "0", "--chains", "2", "--data-dir", data.to_str().expect("a UTF-8 path")];
    let mut valet = Valet::start(&args, &dir.0);
    let chains = valet.info["chains"].as_array().cloned().unwrap_or_else(|| panic!("no chains in {}", valet.info));
    let ids: Vec<Option<u64>> = chains.iter().map(|c| c["chain_id"].as_u64()).collect();
    assert_eq!(ids, [Some(31337), Some(8453)], "{}", valet.info);
    let rpcs: Vec<SocketAddr> = chains.iter().map(|c| loopback_port(c, "rpc_url")).collect();
    let anvils: Vec<Seen> = valet.started.iter().filter(|p| p.name == "anvil").cloned().collect();
    assert_eq!(anvils.len(), 2, "valet up --chains 2 started {:?}", valet.started);

    // One proposal on both chains, through the service.
    let url = valet.info["url"].as_str().expect("url").to_string();
    let admin = "processes-test-admin-token-0123";
    let (status, app) = http(&url, "POST", "/v1/apps", admin, &serde_json::json!({ "name": "chains" }));
    assert_eq!(status, 201, "{app}");
    let key = app["api_key"].as_str().expect("api key");
    let owner = "0x00000000000000000000000000000000000000aa";
    let proposal =
        serde_json::json!({ "owner": owner, "spec": valet_core::spec::DEMO_MINT_SPEC, "chains": [31337, 8453] });
    let (status, proposed) = http(&url, "POST", "/v1/sessions", key, &proposal);
    assert_eq!(status, 201, "{proposed}");
    assert_eq!(proposed["sessions"].as_array().map(Vec::len), Some(2), "{proposed}");

    let status = valet.kill();
    assert!(!status.success(), "valet up was killed, yet exited with {status}");
    for (anvil, rpc) in anvils.iter().zip(&rpcs) {
        assert!(eventually(WITHIN, || !anvil.alive()), "anvil (PID {}) outlived valet up", anvil.pid);
        assert!(eventually(WITHIN, || !listening(*rpc)), "something still listens on {rpc}");
    }
}
