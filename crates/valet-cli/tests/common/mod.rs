//! What the `valet` process tests share: a temporary directory, and a `valet` process that prints
//! one JSON line when ready and is stopped by its own PID when dropped.
#![allow(dead_code)] // Each test binary uses its own part of it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use alloy::transports::http::reqwest;
use serde_json::Value;

/// Variables `valet` reads that must not leak in from the caller's environment.
pub(crate) const VALET_VARS: [&str; 16] = [
    "VALET_HOME",
    "VALET_RPC_URL",
    "VALET_BUNDLER_URL",
    "VALET_RELAYER_KEY",
    "VALET_DATABASE_URL",
    "VALET_VALIDATOR",
    "VALET_FACTORY",
    "VALET_OWNER_KEY",
    "VALET_OWNER_PASSWORD",
    "VALET_PASSWORD",
    "VALET_ADMIN_TOKEN",
    "VALET_MASTER_KEY",
    "VALET_DEPLOYER_KEY",
    "VALET_DEPLOYER_PASSWORD",
    "VALET_LISTEN",
    "VALET_WEB",
];

/// A fresh temporary directory, removed when dropped (kept, and named, if the test panics).
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    /// `<tmp>/valet-<name>-<pid>-<nanos>`.
    pub(crate) fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("valet-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("creating the test's temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} (its logs and databases) for a look", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `valet args` with `env`, and none of [`VALET_VARS`] from the caller's environment.
pub(crate) fn valet(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_valet"));
    for var in VALET_VARS {
        command.env_remove(var);
    }
    command.args(args).envs(env.iter().copied());
    command
}

/// A `valet` process that prints one JSON line when ready; stopped with SIGTERM by its own PID
/// when dropped (also when the test panics), SIGKILL if it ignores SIGTERM for 30 s.
pub(crate) struct Proc {
    pub(crate) what: String,
    pub(crate) child: Child,
    /// Kept open so the process never writes to a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
    pub(crate) log: PathBuf,
    /// Its JSON line.
    pub(crate) info: Value,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Starts `command` (stderr to `log`) and waits up to 2 minutes for its JSON line.
    pub(crate) fn start(what: &str, mut command: Command, log: PathBuf) -> Self {
        let stderr = std::fs::File::create(&log).expect("creating the log file");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut proc = Self { what: what.to_string(), child, _stdout: None, log, info: Value::Null, exited: None };
        // Read the line in a thread of its own, so that a process that hangs fails the test
        // instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send((reader, line));
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok((reader, line)) if !line.trim().is_empty() => {
                proc._stdout = Some(reader);
                line
            }
            other => {
                let status = proc.stop();
                let why = if other.is_ok() { "printed nothing" } else { "printed nothing in 2 minutes" };
                panic!("{what} {why} ({status}); its stderr:\n{}", proc.stderr());
            }
        };
        proc.info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what} printed `{line}`: {e}"));
        proc
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn signal(&self, signal: &str) {
        let _ = Command::new("kill").args([format!("-{signal}"), self.pid().to_string()]).status();
    }

    /// SIGKILL by its PID, at once; its exit status.
    pub(crate) fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        self.signal("KILL");
        let status = self.child.wait().unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what));
        self.exited = Some(status);
        status
    }

    /// Its exit status, if it exits within `within`.
    pub(crate) fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited {
                return Some(status);
            }
            match self.child.try_wait() {
                Ok(Some(status)) => self.exited = Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => return None,
            }
        }
    }

    /// SIGTERM by its PID, then its exit status (SIGKILL after 30 s).
    pub(crate) fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.wait(Duration::ZERO) {
            return status;
        }
        self.signal("TERM");
        match self.wait(Duration::from_secs(30)) {
            Some(status) => status,
            None => {
                eprintln!("{} (PID {}) ignored SIGTERM for 30 s: killing it", self.what, self.pid());
                self.kill()
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A status and a JSON body (a string if the body is not JSON).
pub(crate) type Answer = (u16, Value);

/// The service's HTTP API, as an app with an API key.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) key: String,
}

impl Api {
    /// `method path` with `body` (JSON) and `headers`; an error if nothing answered.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        request = request.header("authorization", format!("Bearer {}", self.key));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| format!("{e:?}"))?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value))
    }

    /// A call that must be answered.
    pub(crate) async fn must(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call(method, path, body.map(|b| b.to_string()), &[])
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"))
    }
}
