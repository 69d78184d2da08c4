//! The dApp's assets (built by Vite into a directory) and its configuration, served beside the
//! API, and the devnet faucet the dApp funds new accounts from.

use std::path::{Component, Path, PathBuf};

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// What the service serves at `/`: the built dApp and the configuration it reads first.
#[derive(Debug, Clone)]
pub struct Web {
    /// Vite's output directory (`index.html`, `assets/…`).
    pub dir: PathBuf,
    /// `/config.json`: the chain, the dApp's API key, the contracts' names, the development
    /// wallet (devnet only).
    pub config: Value,
}

/// The devnet's node and bundler on the page's own origin (`POST /rpc`, `POST /bundler`), for a
/// page whose session keys live in the browser: its CSP lets it talk to its own origin only, and
/// it must not need the service's API (`/v1/…`) to use them. Each forwards the few methods such
/// a page uses, nothing else (no transaction is sent through the node).
#[derive(Debug, Clone)]
pub struct DevnetRpc {
    node: alloy::rpc::client::RpcClient,
    bundler: Option<alloy::rpc::client::RpcClient>,
}

/// The node's methods `POST /rpc` forwards: reads, and what viem's fee estimate and receipt
/// polling ask.
const NODE_METHODS: &[&str] = &[
    "eth_chainId",
    "net_version",
    "eth_blockNumber",
    "eth_call",
    "eth_getCode",
    "eth_getBalance",
    "eth_getBlockByNumber",
    "eth_getTransactionCount",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getLogs",
    "eth_estimateGas",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_feeHistory",
];

/// The bundler's methods `POST /bundler` forwards: ERC-4337's, and Alto's gas prices.
const BUNDLER_METHODS: &[&str] = &[
    "eth_chainId",
    "eth_supportedEntryPoints",
    "eth_estimateUserOperationGas",
    "eth_sendUserOperation",
    "eth_getUserOperationReceipt",
    "eth_getUserOperationByHash",
    "pimlico_getUserOperationGasPrice",
];

/// Which upstream a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// The node (`POST /rpc`).
    Node,
    /// The bundler (`POST /bundler`).
    Bundler,
}

impl DevnetRpc {
    /// Forwards to the node at `node` and, if given, the bundler at `bundler` (both `http://…`).
    pub fn new(node: &str, bundler: Option<&str>) -> Result<Self, valet_client::Error> {
        Ok(Self {
            node: valet_client::rpc::http_client(node)?,
            bundler: bundler.map(valet_client::rpc::http_client).transpose()?,
        })
    }

    /// The JSON-RPC answer to `body` (one request), from `upstream`: its result, its error as it
    /// gave it, or an error of ours saying what is wrong with the request. Never fails.
    pub(crate) async fn answer(&self, upstream: Upstream, body: &[u8]) -> Value {
        let request: Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(e) => return rpc_error(Value::Null, -32700, format!("not JSON: {e}"), None),
        };
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let (Some(method), true) =
            (request.get("method").and_then(Value::as_str), request.get("jsonrpc") == Some(&json!("2.0")))
        else {
            return rpc_error(id, -32600, "not a JSON-RPC 2.0 request: { jsonrpc: \"2.0\", id, method, params }", None);
        };
        let params = match request.get("params") {
            None => json!([]),
            Some(p @ (Value::Array(_) | Value::Object(_))) => p.clone(),
            Some(other) => {
                return rpc_error(id, -32602, format!("params must be an array or an object, not {other}"), None);
            }
        };
        let (client, allowed, name) = match upstream {
            Upstream::Node => (Some(&self.node), NODE_METHODS, "the node"),
            Upstream::Bundler => (self.bundler.as_ref(), BUNDLER_METHODS, "the bundler"),
        };
        if !allowed.contains(&method) {
            let method: String = method.chars().take(64).collect();
            return rpc_error(
                id,
                -32601,
                format!("{method} is not forwarded to {name} here (it forwards {})", allowed.join(", ")),
                None,
            );
        }
        let Some(client) = client else {
            return rpc_error(id, -32603, "this devnet runs no bundler: start it with `valet up --bundler alto`", None);
        };
        match client.request::<Value, Value>(method.to_string(), params).await {
            Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
            Err(e) => match e.as_error_resp() {
                Some(payload) => {
                    let data = payload.data.as_ref().and_then(|d| serde_json::from_str(d.get()).ok());
                    rpc_error(id, payload.code, payload.message.to_string(), data)
                }
                None => rpc_error(id, -32603, format!("{name} did not answer: {e}"), None),
            },
        }
    }
}

fn rpc_error(id: Value, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
    let mut error = json!({ "code": code, "message": message.into() });
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

/// Funds accounts on a development chain: ETH for gas, and demo tokens.
pub struct Faucet {
    /// A provider signing with the faucet's (dev) key.
    pub provider: DynProvider,
    /// ETH an account is topped up to.
    pub eth: U256,
    /// An ERC-20 with `faucet(to, amount)`, and how much to give.
    pub token: Option<(Address, U256)>,
    /// The faucet key's address, if known ([`Faucet::with_sender`]).
    pub sender: Option<Address>,
    /// One funding at a time: the key has one nonce sequence.
    pub(crate) turn: Mutex<()>,
}

impl std::fmt::Debug for Faucet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faucet").field("eth", &self.eth).field("token", &self.token).finish_non_exhaustive()
    }
}

impl Faucet {
    /// A faucet sending from `provider`'s wallet.
    pub fn new(provider: DynProvider, eth: U256, token: Option<(Address, U256)>) -> Self {
        Self { provider, eth, token, sender: None, turn: Mutex::new(()) }
    }

    /// The faucet key's address is `sender`: each transfer then takes its nonce from the chain
    /// (the pending count, one funding at a time), not from the wallet's nonce cache, which counts
    /// a nonce for every transfer it fills even when the node refuses it (a contract that takes no
    /// ETH, such as a paymaster, refuses a transfer): every later transfer would then wait behind
    /// the gap, for ever.
    #[must_use]
    pub fn with_sender(mut self, sender: Address) -> Self {
        self.sender = Some(sender);
        self
    }

    /// The nonce of the faucet's next transaction, when its sender is known.
    async fn next_nonce(&self) -> Result<Option<u64>, FaucetError> {
        let Some(sender) = self.sender else { return Ok(None) };
        let pending = self.provider.get_transaction_count(sender).pending().await;
        pending.map(Some).map_err(|e| FaucetError::Node(e.to_string()))
    }

    /// Tops `to` up to the faucet's ETH amount (if `eth`) and, if it holds less than the faucet
    /// gives, its tokens. Returns the transaction hashes sent (none if `to` already had enough).
    pub async fn fund(&self, to: Address, eth: bool) -> Result<Vec<alloy::primitives::B256>, FaucetError> {
        let node = |e: alloy::transports::TransportError| FaucetError::Node(e.to_string());
        let _turn = self.turn.lock().await;
        let mut sent = Vec::new();
        let balance = match eth {
            true => self.provider.get_balance(to).await.map_err(node)?,
            false => self.eth,
        };
        if balance < self.eth {
            let mut tx = alloy::rpc::types::TransactionRequest::default().to(to).value(self.eth - balance);
            if let Some(nonce) = self.next_nonce().await? {
                tx = tx.nonce(nonce);
            }
            let pending = self.provider.send_transaction(tx).await.map_err(rejected)?;
            let receipt = pending.get_receipt().await.map_err(|e| FaucetError::Node(e.to_string()))?;
            sent.push(receipt.transaction_hash);
        }
        if let Some((token, amount)) = self.token {
            let erc20 = valet_client::contracts::demo::ValetToken::new(token, &self.provider);
            let held = erc20.balanceOf(to).call().await.map_err(|e| FaucetError::Node(e.to_string()))?;
            if held < amount {
                let mut call = erc20.faucet(to, amount - held);
                if let Some(nonce) = self.next_nonce().await? {
                    call = call.nonce(nonce);
                }
                let pending = call.send().await.map_err(|e| match e {
                    alloy::contract::Error::TransportError(e) => rejected(e),
                    other => FaucetError::Node(other.to_string()),
                })?;
                let receipt = pending.get_receipt().await.map_err(|e| FaucetError::Node(e.to_string()))?;
                sent.push(receipt.transaction_hash);
            }
        }
        Ok(sent)
    }
}

/// Why the faucet could not fund an address.
#[derive(Debug, thiserror::Error)]
pub enum FaucetError {
    /// The chain refused the transfer (decoded when it is a known contract error).
    #[error("the chain refused to fund it: {0}")]
    Rejected(String),
    /// The node failed.
    #[error("node: {0}")]
    Node(String),
}

/// A send that failed: refused by the chain when the node answered with revert data.
fn rejected(e: alloy::transports::TransportError) -> FaucetError {
    match e.as_error_resp() {
        Some(payload) => FaucetError::Rejected(
            payload
                .as_revert_data()
                .and_then(|d| valet_client::submit::decode_revert(&d))
                .unwrap_or_else(|| payload.message.to_string()),
        ),
        None => FaucetError::Node(e.to_string()),
    }
}

/// The content type of a built asset, by extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Only scripts, styles and requests of this origin: the page talks to nothing else.
/// `'wasm-unsafe-eval'` lets it compile WebAssembly (valet-core, for keys kept in the browser);
/// it allows no `eval` of script.
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Serves `request_path` (already without its leading `/`) from `web.dir`: `index.html` for the
/// root, hashed assets as immutable, anything outside the directory refused.
pub(crate) async fn asset(web: &Web, request_path: &str) -> Response {
    let relative = if request_path.is_empty() { "index.html" } else { request_path };
    let path = Path::new(relative);
    // Source maps are the dApp's source, for its developers only: never served, even if a build
    // left some in the directory.
    let source_map = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("map"));
    if source_map || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let full = web.dir.join(path);
    let Ok(bytes) = tokio::fs::read(&full).await else {
        return (StatusCode::NOT_FOUND, format!("no file /{relative} in the dApp's build")).into_response();
    };
    let cache = if relative.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&full)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_files_inside_the_directory_only() {
        let dir = std::env::temp_dir().join(format!("valet-web-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("assets")).expect("dir");
        std::fs::write(dir.join("index.html"), "<!doctype html>").expect("index");
        std::fs::write(dir.join("assets/app-1.js"), "1").expect("js");
        std::fs::write(dir.join("assets/app-1.js.map"), "{}").expect("map");
        std::fs::write(dir.join("assets/core-1.wasm"), b"\0asm").expect("wasm");
        std::fs::write(dir.parent().expect("parent").join("valet-web-secret.txt"), "secret").expect("secret");
        let web = Web { dir: dir.clone(), config: Value::Null };

        let root = asset(&web, "").await;
        assert_eq!(root.status(), StatusCode::OK);
        assert_eq!(root.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(root.headers()[header::CACHE_CONTROL], "no-cache");
        let js = asset(&web, "assets/app-1.js").await;
        assert_eq!(js.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert!(js.headers()[header::CACHE_CONTROL].to_str().expect("ascii").contains("immutable"));
        // As `WebAssembly.instantiateStreaming` requires.
        let wasm = asset(&web, "assets/core-1.wasm").await;
        assert_eq!(wasm.headers()[header::CONTENT_TYPE], "application/wasm");
        for escape in [
            "../valet-web-secret.txt",
            "assets/../../valet-web-secret.txt",
            "/etc/passwd",
            "missing.js",
            "assets/app-1.js.map",
        ] {
            assert_eq!(asset(&web, escape).await.status(), StatusCode::NOT_FOUND, "{escape}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
