//! What the service's tests share: the service booted on 127.0.0.1 over a fresh vault, an HTTP
//! client for it, and the first steps of most stories (an app, a granted session).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, B256};
use alloy::signers::SignerSync;
use alloy::transports::http::reqwest;
use serde_json::{Value, json};
use valet_client::{Devnet, Direct, Valet};
use valet_server::{MasterKey, Service, Vault};

pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub(crate) async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, key, body.map(|b| b.to_string()), &[]).await
    }

    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A fresh directory, unique to this process and call (tests run in parallel).
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("valet-server-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A bad request: method, path, API key, body, expected status.
pub(crate) type BadCase<'a> = (&'a str, String, Option<&'a str>, Option<String>, u16);

pub(crate) const ADMIN: &str = "admin-token-for-tests";

/// The service on 127.0.0.1 over a fresh SQLite vault in a temp dir.
pub(crate) async fn boot(
    devnet: &Devnet,
    name: &str,
    scheduler: bool,
    database: Option<String>,
) -> (Server, Arc<Service>, std::path::PathBuf, String) {
    boot_with(devnet, name, scheduler, database, None, 1, |_, _| {}).await
}

/// [`boot`], with a given master key and relayer (dev key index), and `customize` run on the
/// service (and its directory) before it serves.
pub(crate) async fn boot_with(
    devnet: &Devnet,
    name: &str,
    scheduler: bool,
    database: Option<String>,
    master: Option<&str>,
    relayer: usize,
    customize: impl FnOnce(&mut Service, &std::path::Path),
) -> (Server, Arc<Service>, std::path::PathBuf, String) {
    boot_kinds(devnet, name, scheduler, database, master, relayer, false, customize).await
}

/// [`boot`] of a service that serves EIP-7702 accounts too: a second client for EntryPoint v0.8
/// whose submitter shares the relayer's nonce manager, as `valet serve` builds it.
pub(crate) async fn boot_7702(devnet: &Devnet, name: &str) -> (Server, Arc<Service>, std::path::PathBuf, String) {
    boot_kinds(devnet, name, false, None, None, 1, true, |_, _| {}).await
}

#[allow(clippy::too_many_arguments)]
async fn boot_kinds(
    devnet: &Devnet,
    name: &str,
    scheduler: bool,
    database: Option<String>,
    master: Option<&str>,
    relayer: usize,
    eip7702: bool,
    customize: impl FnOnce(&mut Service, &std::path::Path),
) -> (Server, Arc<Service>, std::path::PathBuf, String) {
    let dir = temp_dir(name);
    let database = database.unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("valet.db").display()));
    let vault = Vault::connect(&database).await.expect("vault");
    let master = match master {
        Some(hex) => MasterKey::from_hex(hex).expect("master key"),
        None => MasterKey::load(&dir.join("master.key")).expect("master key"),
    };
    let direct = Direct::new(devnet.provider_for(relayer), devnet.key(relayer).address()).await.expect("direct");
    // One relayer key for handleOps and owners' revocations, as `valet serve --relayer-key` has.
    let revoker = direct.relayer();
    let valet_7702 = if eip7702 {
        let for_7702 = direct.for_entry_point(valet_core::ENTRY_POINT_V08);
        Some(
            Valet::new(devnet.provider.clone(), Arc::new(for_7702), devnet.deployment_7702())
                .await
                .expect("valet 7702"),
        )
    } else {
        None
    };
    let valet = Valet::new(devnet.provider.clone(), Arc::new(direct), devnet.deployment()).await.expect("valet");
    let names = BTreeMap::from([
        ("ValetNFT".to_string(), devnet.addresses.nft),
        ("ValetToken".to_string(), devnet.addresses.token),
    ]);
    let mut service = Service::new(valet, vault, master, ADMIN, names, Some(revoker));
    service.valet_7702 = valet_7702;
    if !scheduler {
        service.scheduler_every = None;
    }
    customize(&mut service, &dir);
    let service = Arc::new(service);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = service.clone();
    let task = tokio::spawn(async move {
        let addr = "127.0.0.1:0".parse().expect("addr");
        valet_server::serve(serving, addr, bound_tx, async {
            let _ = stop_rx.await;
        })
        .await
        .expect("serves");
    });
    let addr = bound_rx.await.expect("bound");
    assert!(addr.ip().is_loopback());
    let server = Server {
        url: format!("http://{addr}"),
        http: reqwest::Client::new(),
        shutdown: Some(stop_tx),
        task: Some(task),
    };
    (server, service, dir, database)
}

/// Registers an app; its API key.
pub(crate) async fn app_key(s: &Server, name: &str) -> String {
    let (status, app) = s.call("POST", "/v1/apps", Some(ADMIN), Some(json!({ "name": name }))).await;
    assert_eq!(status, 201, "{app}");
    app["api_key"].as_str().expect("api key").to_string()
}

/// Proposes `spec` for `owner`'s account and grants it with the owner's signature: the session id
/// and the account.
pub(crate) async fn granted(
    s: &Server,
    key: &str,
    owner: &alloy::signers::local::PrivateKeySigner,
    spec: &str,
) -> (String, Address) {
    // Unless the spec says how fees are paid, the account pays them from a 0.5 ETH budget.
    let spec =
        if spec.contains("fees") { spec.to_string() } else { format!("{spec}\n[fees]\nbudget = \"0.5 ether\"\n") };
    let (status, proposed) =
        s.call("POST", "/v1/sessions", Some(key), Some(json!({ "owner": owner.address(), "spec": spec }))).await;
    assert_eq!(status, 201, "{proposed}");
    let id = proposed["session_id"].as_str().expect("id").to_string();
    let digest: B256 = proposed["digest"].as_str().expect("digest").parse().expect("hex");
    let signature = alloy::hex::encode_prefixed(owner.sign_hash_sync(&digest).expect("sign").as_bytes());
    let (status, body) =
        s.call("POST", &format!("/v1/sessions/{id}/grant"), Some(key), Some(json!({ "signature": signature }))).await;
    assert_eq!(status, 200, "{body}");
    (id, proposed["account"].as_str().expect("account").parse().expect("address"))
}

// ------------------------------------------------------------------ raw connections

/// A raw TCP connection to the server, for clients no HTTP library would be.
pub(crate) async fn connect(s: &Server) -> tokio::net::TcpStream {
    let addr = s.url.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.expect("connects")
}

/// An HTTP/1.1 answer read off a raw connection.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    /// JSON, or a string if the body is not JSON.
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads `n` answers (each a head and a body of `content-length` bytes) off `stream`, within 10 s.
pub(crate) async fn read_answers(stream: &mut (impl tokio::io::AsyncRead + Unpin), n: usize) -> Vec<Answer> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut buf = Vec::new();
        let mut more = async |buf: &mut Vec<u8>| {
            let mut chunk = [0u8; 8192];
            let got = stream.read(&mut chunk).await.expect("reads");
            assert!(got > 0, "the server closed before answering; got {:?}", String::from_utf8_lossy(buf));
            buf.extend_from_slice(&chunk[..got]);
        };
        let mut answers = Vec::new();
        for _ in 0..n {
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                more(&mut buf).await;
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().expect("a content-length"));
            while buf.len() < head_end + length {
                more(&mut buf).await;
            }
            let bytes: Vec<u8> = buf.drain(..head_end + length).skip(head_end).collect();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            answers.push(Answer { status, headers, body });
        }
        answers
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read).await.expect("answers within 10 s")
}

/// Reads one answer off `stream` (see [`read_answers`]).
pub(crate) async fn read_answer(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Answer {
    read_answers(stream, 1).await.pop().expect("one answer")
}

/// Sends `request` on a new connection; the answer.
pub(crate) async fn request_raw(s: &Server, request: &str) -> Answer {
    use tokio::io::AsyncWriteExt;
    let mut stream = connect(s).await;
    stream.write_all(request.as_bytes()).await.expect("writes");
    read_answer(&mut stream).await
}

/// Reads (and drops) what comes until the server closes `stream`, a reset counting as closed:
/// how long that took, and what came. Panics if it is still open after `within`.
pub(crate) async fn until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    within: std::time::Duration,
) -> (std::time::Duration, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let start = tokio::time::Instant::now();
    let mut got = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        while let Ok(n @ 1..) = stream.read(&mut chunk).await {
            got.extend_from_slice(&chunk[..n]);
        }
    };
    if tokio::time::timeout(within, read).await.is_err() {
        panic!("the connection is still open after {within:?}; got {:?}", String::from_utf8_lossy(&got));
    }
    (start.elapsed(), got)
}

/// A PostgreSQL server of its own, on 127.0.0.1, stopped (by its PID file) when dropped.
pub(crate) struct Postgres {
    dir: std::path::PathBuf,
    pub(crate) url: String,
}

impl Postgres {
    /// Starts one with its data in a temporary directory named after `name`.
    pub(crate) fn start(name: &str) -> Self {
        let dir = temp_dir(name);
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/postgres.sh");
        let status = std::process::Command::new(&script)
            .args(["start", &dir.join("pg").display().to_string(), &port.to_string()])
            .status()
            .expect("tools/postgres.sh runs");
        assert!(status.success(), "PostgreSQL did not start (see {}/pg/server.log)", dir.display());
        Self { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/postgres.sh");
        let _ = std::process::Command::new(script).args(["stop", &self.dir.join("pg").display().to_string()]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ------------------------------------------------------------------ other chains

/// Another chain for a service to serve ([`Service::other_chains`]): smart accounts through
/// `devnet`, submitted directly from dev key `relayer`, whose account also puts owners'
/// revocations there (one nonce manager), as `valet up --chains` builds it.
pub(crate) async fn other_chain(devnet: &Devnet, relayer: usize) -> (u64, valet_server::Chain) {
    let direct = Direct::new(devnet.provider_for(relayer), devnet.key(relayer).address()).await.expect("direct");
    let revoker = direct.relayer();
    let valet = Valet::new(devnet.provider.clone(), Arc::new(direct), devnet.deployment()).await.expect("valet");
    (valet.chain_id(), valet_server::Chain { valet, relayer: Some(revoker) })
}

/// [`boot`] of a service whose main chain is `devnet` and that serves `others` too.
pub(crate) async fn boot_chains(
    devnet: &Devnet,
    others: &[&Devnet],
    name: &str,
) -> (Server, Arc<Service>, std::path::PathBuf, String) {
    let mut chains = BTreeMap::new();
    for other in others {
        let (id, chain) = other_chain(other, 1).await;
        chains.insert(id, chain);
    }
    boot_with(devnet, name, false, None, None, 1, move |service, _| service.other_chains = chains).await
}
