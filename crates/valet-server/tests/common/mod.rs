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
    let dir = temp_dir(name);
    let database = database.unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("valet.db").display()));
    let vault = Vault::connect(&database).await.expect("vault");
    let master = match master {
        Some(hex) => MasterKey::from_hex(hex).expect("master key"),
        None => MasterKey::load(&dir.join("master.key")).expect("master key"),
    };
    let direct = Direct::new(devnet.provider_for(relayer), devnet.key(relayer).address()).await.expect("direct");
    let valet = Valet::new(devnet.provider.clone(), Arc::new(direct), devnet.deployment()).await.expect("valet");
    let names = BTreeMap::from([
        ("ValetNFT".to_string(), devnet.addresses.nft),
        ("ValetToken".to_string(), devnet.addresses.token),
    ]);
    let mut service = Service::new(valet, vault, master, ADMIN, names, Some(devnet.provider_for(9)));
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
