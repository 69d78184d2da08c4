//! The HTTP API. Every answer is JSON; every bad request gets a 4xx naming the problem (bodies,
//! paths and queries are parsed here, not by extractors with plain-text rejections).

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use axum::Router;
use axum::body::Bytes as Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use valet_client::{Account, Error as ClientError, SessionHandle};
use valet_core::spec::{Function, Labels, SessionSpec, explain};
use valet_core::{Call, Session, eip712};

use crate::Service;
use crate::vault::{App, Audit, Begin, ExecutionRow, ScheduleRow, SessionRow, random_id, sha256_hex};

/// An HTTP error: status, a stable code, and a message naming the problem.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: None }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let (Some(Value::Object(extra)), Value::Object(map)) = (self.extra, &mut body) {
            map.extend(extra);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Client(c) => c.into(),
            crate::Error::Core(c) => Self::bad(c.to_string()),
            other => {
                tracing::error!(error = %other, "internal error");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", other.to_string())
            }
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Core(c) => Self::bad(c.to_string()),
            ClientError::Config(m) => Self::bad(m),
            e @ (ClientError::Refused { .. } | ClientError::Bundler { .. } | ClientError::ExecutionWouldRevert(_)) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected_by_chain", e.to_string())
            }
            e @ ClientError::ExecutionReverted { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "execution_reverted", e.to_string())
            }
            e => {
                tracing::warn!(error = %e, "chain unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", e.to_string())
            }
        }
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

/// The API's routes.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/apps", post(create_app))
        .route("/v1/accounts/{owner}", get(account))
        .route("/v1/sessions", post(propose).get(list))
        .route("/v1/sessions/{id}", get(show))
        .route("/v1/sessions/{id}/grant", post(grant))
        .route("/v1/sessions/{id}/execute", post(execute))
        .route("/v1/sessions/{id}/revoke", post(revoke))
        .route("/v1/sessions/{id}/revoke/onchain", post(revoke_onchain))
        .route("/v1/sessions/{id}/schedules", post(create_schedule).get(list_schedules))
        .route("/v1/schedules/{id}", axum::routing::delete(cancel_schedule))
        .route("/v1/audit", get(audit))
        .route("/v1/devnet/fund", post(devnet_fund))
        .route("/config.json", get(web_config))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(service.clone(), count_requests))
        .with_state(service)
}

async fn count_requests(
    State(service): State<Arc<Service>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let response = next.run(request).await;
    service.metrics.inc(
        "valet_http_requests_total",
        &[("method", &method), ("route", &route), ("status", response.status().as_str())],
    );
    response
}

/// The dApp's files for any other GET outside the API (when the service serves it); else 404.
async fn fallback(State(service): State<Arc<Service>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    match &service.web {
        Some(web) if (method == Method::GET || method == Method::HEAD) && !path.starts_with("/v1/") => {
            crate::web::asset(web, path.trim_start_matches('/')).await
        }
        _ => ApiError::not_found(format!("no route {path}")).into_response(),
    }
}

async fn web_config(State(service): State<Arc<Service>>) -> ApiResult {
    match &service.web {
        Some(web) => {
            Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], axum::Json(web.config.clone())).into_response())
        }
        None => Err(ApiError::not_found("this service does not serve the dApp")),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

// ------------------------------------------------------------------ parsing helpers

fn parse_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &Body) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        if !ct.starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("content type `{ct}`: send application/json"),
            ));
        }
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("request body: {e}")))
}

fn query_map(query: Option<String>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode(s)
                .ok_or_else(|| ApiError::bad(format!("query parameter `{s}` is not valid percent-encoding")))
        };
        out.insert(decode(k)?, decode(v)?);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn parse_address(text: &str, what: &str) -> Result<Address, ApiError> {
    text.parse::<Address>()
        .map_err(|_| ApiError::bad(format!("{what} `{text}` is not an address (0x + 40 hex digits)")))
}

fn parse_session_id(text: &str) -> Result<B256, ApiError> {
    text.parse::<B256>().map_err(|_| ApiError::bad(format!("session id `{text}` is not 0x + 64 hex digits")))
}

fn parse_u256(text: &str, what: &str) -> Result<U256, ApiError> {
    let bad = || ApiError::bad(format!("{what} `{text}` is not a non-negative integer (decimal or 0x hex)"));
    if text.is_empty() || text == "0x" {
        return Err(bad());
    }
    text.parse::<U256>().map_err(|_| bad())
}

/// A salt: decimal digits only.
fn parse_salt(text: &str) -> Result<U256, ApiError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad(format!("salt `{text}` is not a decimal integer")));
    }
    U256::from_str_radix(text, 10).map_err(|_| ApiError::bad(format!("salt `{text}` does not fit in 256 bits")))
}

fn parse_signature(text: &str) -> Result<Bytes, ApiError> {
    let bytes = text.parse::<Bytes>().map_err(|_| ApiError::bad(format!("signature `{text}` is not hex")))?;
    if bytes.len() != 65 {
        return Err(ApiError::bad(format!("signature is {} bytes; an ECDSA signature is 65", bytes.len())));
    }
    Ok(bytes)
}

/// Checks `signature` of `digest` is `owner`'s: its signer, or 403 naming who signed.
fn owners_signature(signature: &Bytes, digest: B256, owner: Address, what: &str) -> Result<Address, ApiError> {
    let parsed = alloy::primitives::Signature::try_from(signature.as_ref())
        .map_err(|e| ApiError::bad(format!("signature: {e}")))?;
    let signer = parsed.recover_address_from_prehash(&digest).map_err(|e| ApiError::bad(format!("signature: {e}")))?;
    if signer != owner {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_the_owner",
            format!("the {what} is signed by {signer}, not by the account's owner {owner}"),
        ));
    }
    Ok(signer)
}

/// The names a session's calls may use: the service's, and those it was proposed with (which win).
fn session_names(service: &Service, row: &SessionRow) -> BTreeMap<String, Address> {
    let mut names = service.names.clone();
    if let Ok(stored) = serde_json::from_str::<BTreeMap<String, Address>>(&row.names) {
        names.extend(stored);
    }
    names
}

async fn authenticate(service: &Service, headers: &HeaderMap) -> Result<App, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("send `Authorization: Bearer <API key>`"))?;
    let key = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <API key>`"))?;
    service.vault.app_by_key(key.trim()).await?.ok_or_else(|| unauthorized("unknown API key"))
}

// ------------------------------------------------------------------ handlers

async fn health(State(service): State<Arc<Service>>) -> ApiResult {
    match service.valet.provider().get_block_number().await {
        Ok(block) => ok(
            StatusCode::OK,
            json!({ "status": "ok", "chain_id": service.valet.chain_id(), "block": block, "submitter": service.valet.submitter().kind() }),
        ),
        Err(e) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("node: {e}"))),
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], service.metrics.render()).into_response()
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    name: String,
}

async fn create_app(State(service): State<Arc<Service>>, headers: HeaderMap, body: Body) -> ApiResult {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if sha256_hex(token.trim().as_bytes()) != service.admin_token_hash {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "registering apps needs the admin token"));
    }
    let req: CreateApp = parse_body(&headers, &body)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad("name must be 1 to 100 characters"));
    }
    let (app, key) = service.vault.create_app(name).await?;
    service.vault.audit(&app.id, None, None, "app.created", &json!({ "name": name })).await?;
    ok(StatusCode::CREATED, json!({ "id": app.id, "name": app.name, "api_key": key }))
}

async fn account(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(owner): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    authenticate(&service, &headers).await?;
    let owner = parse_address(&owner, "owner")?;
    let q = query_map(query)?;
    let salt = q.get("salt").map(|s| parse_salt(s)).transpose()?.unwrap_or_default();
    let account = service.valet.account(owner, salt).await?;
    let balance = service
        .valet
        .provider()
        .get_balance(account.address)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("node: {e}")))?;
    // Balances at the tokens and collections the service knows by name: whatever answers
    // `symbol()` and `balanceOf(account)`. An ERC-20 in base units with its decimals; an ERC-721
    // as a count with the ids the account holds.
    let mut tokens = serde_json::Map::new();
    for (name, address) in &service.names {
        let token = valet_client::contracts::ValetToken::new(*address, service.valet.provider());
        let (Ok(symbol), Ok(held)) = (token.symbol().call().await, token.balanceOf(account.address).call().await)
        else {
            continue;
        };
        let mut entry = json!({ "address": address, "symbol": symbol, "balance": held.to_string() });
        let erc165 = Erc165::new(*address, service.valet.provider());
        if erc165.supportsInterface(ERC721_INTERFACE.into()).call().await.unwrap_or(false) {
            entry["kind"] = json!("erc721");
            entry["token_ids"] = json!(held_token_ids(&service, *address, account.address).await?);
        } else if let Ok(decimals) = token.decimals().call().await {
            entry["kind"] = json!("erc20");
            entry["decimals"] = json!(decimals);
        }
        tokens.insert(name.clone(), entry);
    }
    ok(
        StatusCode::OK,
        json!({
            "address": account.address, "owner": owner, "salt": salt.to_string(), "deployed": account.deployed,
            "balance_wei": balance.to_string(), "tokens": tokens,
        }),
    )
}

alloy::sol! {
    #[sol(rpc)]
    interface Erc165 {
        function supportsInterface(bytes4 interfaceId) external view returns (bool);
    }
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
}

/// ERC-721's ERC-165 interface id.
const ERC721_INTERFACE: [u8; 4] = [0x80, 0xac, 0x58, 0xcd];

/// The ids of `collection` that `holder` holds, from its Transfer events in chain order (the
/// most recent 1,000).
async fn held_token_ids(service: &Service, collection: Address, holder: Address) -> Result<Vec<String>, ApiError> {
    use alloy::sol_types::SolEvent as _;
    let filter =
        alloy::rpc::types::Filter::new().address(collection).event_signature(Transfer::SIGNATURE_HASH).from_block(0);
    let provider = service.valet.provider();
    let unavailable = |e: alloy::transports::TransportError| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("node: {e}"))
    };
    let holder_topic = holder.into_word();
    let mut logs = provider.get_logs(&filter.clone().topic2(holder_topic)).await.map_err(unavailable)?;
    logs.extend(provider.get_logs(&filter.topic1(holder_topic)).await.map_err(unavailable)?);
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    let mut held: Vec<U256> = Vec::new();
    for log in logs {
        let Ok(transfer) = Transfer::decode_log(&log.inner) else { continue };
        held.retain(|id| *id != transfer.tokenId);
        if transfer.to == holder {
            held.push(transfer.tokenId);
        }
    }
    let skip = held.len().saturating_sub(1000);
    Ok(held.into_iter().skip(skip).map(|id| id.to_string()).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Propose {
    owner: String,
    #[serde(default)]
    salt: Option<String>,
    /// A TOML spec (string) or a JSON spec (object)…
    #[serde(default)]
    spec: Option<Value>,
    /// …or an ERC-7715-style permission request.
    #[serde(default)]
    permission_request: Option<Value>,
    /// How fees are paid (a spec's `fees`: `"sponsored"` or `{budget, per_period, period,
    /// paymasters}`), for a permission request, which has no word for them; absent: sponsored.
    #[serde(default)]
    fees: Option<Value>,
    #[serde(default)]
    names: BTreeMap<String, String>,
}

fn labels(names: &BTreeMap<String, Address>) -> Labels {
    let mut labels = Labels::default();
    for (name, address) in names {
        labels.names.insert(*address, name.clone());
    }
    labels
}

/// [`labels`], with amounts of `tokens` in each token's own units, as it states them on chain.
async fn token_labels(service: &Service, names: &BTreeMap<String, Address>, tokens: &[Address]) -> Labels {
    let mut labels = labels(names);
    for &address in tokens {
        let erc20 = valet_client::contracts::ValetToken::new(address, service.valet.provider());
        if let (Ok(symbol), Ok(decimals)) = (erc20.symbol().call().await, erc20.decimals().call().await) {
            labels.tokens.insert(address, (symbol, decimals));
        }
    }
    labels
}

async fn propose(State(service): State<Arc<Service>>, headers: HeaderMap, body: Body) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let req: Propose = parse_body(&headers, &body)?;
    let owner = parse_address(&req.owner, "owner")?;
    let salt = req.salt.as_deref().map(parse_salt).transpose()?.unwrap_or_default();
    let spec = match (&req.spec, &req.permission_request) {
        (Some(Value::String(toml)), None) => SessionSpec::from_toml(toml),
        (Some(spec @ Value::Object(_)), None) => SessionSpec::from_json(&spec.to_string()),
        (Some(_), None) => return Err(ApiError::bad("spec must be a TOML string or a JSON object")),
        (None, Some(request @ Value::Object(_))) => valet_core::spec::from_erc7715(request, service.valet.chain_id()),
        (None, Some(_)) => return Err(ApiError::bad("permission_request must be a JSON object")),
        (Some(_), Some(_)) => return Err(ApiError::bad("give spec or permission_request, not both")),
        (None, None) => return Err(ApiError::bad("give spec (TOML or JSON) or permission_request (ERC-7715)")),
    }
    .map_err(|e| ApiError::bad(e.to_string()))?;
    let mut spec = spec;
    if let Some(fees) = &req.fees {
        if req.permission_request.is_none() {
            return Err(ApiError::bad(
                "fees go inside the spec (its [fees] table); the top-level fees is for permission_request",
            ));
        }
        let parsed: valet_core::spec::FeesSpec = serde_json::from_value(fees.clone())
            .map_err(|e| ApiError::bad(format!("fees: {e} (\"sponsored\", or {{\"budget\": \"0.01 ether\"}})")))?;
        spec.fees = Some(parsed);
    }
    let mut names = service.names.clone();
    for (name, address) in &req.names {
        names.insert(name.clone(), parse_address(address, &format!("names.{name}"))?);
    }
    let account = service.valet.account(owner, salt).await?;
    let tokens = spec
        .limits
        .iter()
        .filter_map(|l| l.token.as_deref())
        .filter_map(|t| valet_client::abi::resolve_address(t, &names).ok())
        .collect::<Vec<_>>();
    let labels = token_labels(&service, &names, &tokens).await;
    let proposal = service.valet.propose(&account, &spec, &names, &labels).await.map_err(|e| match e {
        ClientError::Core(c) => ApiError::bad(c.to_string()),
        other => other.into(),
    })?;
    let functions: Vec<Option<String>> = spec
        .functions()
        .map_err(|e| ApiError::bad(e.to_string()))?
        .iter()
        .map(|f| f.as_ref().map(Function::signature_with_names))
        .collect();
    let deployment = service.valet.deployment();
    let typed_data =
        eip712::grant_typed_data(&proposal.session, account.address, deployment.validator, service.valet.chain_id())
            .map_err(|e| ApiError::bad(e.to_string()))?;
    let id = proposal.id;
    let row = SessionRow {
        id: id.to_string(),
        app_id: app.id.clone(),
        chain_id: service.valet.chain_id() as i64,
        validator: deployment.validator.to_string(),
        account: account.address.to_string(),
        owner: owner.to_string(),
        salt: salt.to_string(),
        session_key: proposal.key.address().to_string(),
        packed: proposal.session.encode().map_err(|e| ApiError::bad(e.to_string()))?.to_string(),
        functions: serde_json::to_string(&functions).unwrap_or_default(),
        names: serde_json::to_string(&names).unwrap_or_default(),
        summary: serde_json::to_string(&proposal.summary).unwrap_or_default(),
        sealed_key: alloy::hex::encode(service.master.seal(id, &proposal.key)?),
        grant_sig: None,
        status: "proposed".into(),
        created_at: crate::vault::now(),
    };
    service.vault.insert_session(&row).await?;
    service
        .vault
        .audit(&app.id, Some(&row.account), Some(&row.id), "session.proposed", &json!({ "summary": proposal.summary }))
        .await?;
    service.metrics.inc("valet_sessions_total", &[("event", "proposed")]);
    ok(
        StatusCode::CREATED,
        json!({
            "session_id": id,
            "status": "proposed",
            "account": account.address,
            "account_deployed": account.deployed,
            "session_key": proposal.key.address(),
            "valid_after": proposal.session.valid_after,
            "valid_until": proposal.session.valid_until,
            "summary": proposal.summary,
            "digest": proposal.digest,
            "typed_data": typed_data,
        }),
    )
}

async fn load(service: &Service, app: &App, id: &str) -> Result<(SessionRow, Session, B256), ApiError> {
    let parsed = parse_session_id(id)?;
    let row = service
        .vault
        .session(&app.id, &parsed.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no session {parsed} for this app")))?;
    let packed: Bytes =
        row.packed.parse().map_err(|_| ApiError::from(crate::Error::Database("stored session is not hex".into())))?;
    let session =
        Session::decode(&packed).map_err(|e| ApiError::from(crate::Error::Database(format!("stored session: {e}"))))?;
    Ok((row, session, parsed))
}

fn row_account(row: &SessionRow) -> Result<Account, ApiError> {
    let bad = |what: &str| ApiError::from(crate::Error::Database(format!("stored {what} is malformed")));
    Ok(Account {
        address: row.account.parse().map_err(|_| bad("account"))?,
        owner: row.owner.parse().map_err(|_| bad("owner"))?,
        salt: row.salt.parse().map_err(|_| bad("salt"))?,
        deployed: false,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    signature: String,
}

async fn grant(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let req: Grant = parse_body(&headers, &body)?;
    let signature = parse_signature(&req.signature)?;
    let (row, session, id) = load(&service, &app, &id).await?;
    if row.status != "proposed" {
        return Err(ApiError::conflict(
            "not_proposed",
            format!("session {id} is {}, not waiting for a grant", row.status),
        ));
    }
    let account = row_account(&row)?;
    let digest =
        eip712::grant_digest(&session, account.address, service.valet.deployment().validator, service.valet.chain_id())
            .map_err(|e| ApiError::bad(e.to_string()))?;
    let signer = owners_signature(&signature, digest, account.owner, "grant")?;
    let detail = json!({ "owner": signer });
    let audit = Audit {
        app: &app.id,
        account: Some(&row.account),
        session: Some(&row.id),
        event: "session.granted",
        detail: &detail,
    };
    if !service.vault.transition(&row.id, &["proposed"], "active", Some(&signature.to_string()), &audit).await? {
        return Err(ApiError::conflict("not_proposed", format!("session {id} is no longer waiting for a grant")));
    }
    service.metrics.inc("valet_sessions_total", &[("event", "granted")]);
    ok(StatusCode::OK, json!({ "session_id": id, "status": "active" }))
}

#[derive(Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields)]
struct CallRequest {
    to: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    args: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Execute {
    calls: Vec<CallRequest>,
}

fn build_calls(req: &Execute, account: Address, names: &BTreeMap<String, Address>) -> Result<Vec<Call>, ApiError> {
    if req.calls.is_empty() || req.calls.len() > valet_core::execution::MAX_BATCH_CALLS {
        return Err(ApiError::bad(format!(
            "calls: give 1 to {} calls, not {}",
            valet_core::execution::MAX_BATCH_CALLS,
            req.calls.len()
        )));
    }
    req.calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let at = |m: String| ApiError::bad(format!("calls[{i}]: {m}"));
            let target = valet_client::abi::resolve_address(&c.to, names).map_err(|e| at(e.to_string()))?;
            let value = c.value.as_deref().map(|v| parse_u256(v, "value")).transpose().map_err(|e| at(e.message))?;
            let data = match (&c.function, &c.data) {
                (Some(_), Some(_)) => return Err(at("give function + args or data, not both".into())),
                (Some(f), None) => {
                    let args: Vec<String> = c
                        .args
                        .iter()
                        .map(|a| match a {
                            Value::String(s) => Ok(s.clone()),
                            Value::Number(n) => Ok(n.to_string()),
                            Value::Bool(b) => Ok(b.to_string()),
                            other => Err(at(format!("argument {other} must be a string, number or bool"))),
                        })
                        .collect::<Result<_, _>>()?;
                    valet_client::abi::encode_call(f, &args, account, names).map_err(|e| at(e.to_string()))?
                }
                (None, Some(d)) => d.parse::<Bytes>().map_err(|_| at(format!("data `{d}` is not hex")))?,
                (None, None) if c.args.is_empty() => Bytes::new(),
                (None, None) => return Err(at("args given without function".into())),
            };
            Ok(Call { target, value: value.unwrap_or_default(), data })
        })
        .collect()
}

fn execution_json(e: &ExecutionRow) -> Value {
    let detail: Value = e.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
    json!({
        "execution_id": e.id,
        "session_id": e.session_id,
        "status": e.status,
        "user_op_hash": e.user_op_hash,
        "transaction_hash": e.transaction_hash,
        "gas_used": e.gas_used,
        "detail": detail,
    })
}

async fn execute(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v.to_str().map_err(|_| ApiError::bad("Idempotency-Key must be visible ASCII"))?.trim();
            if key.is_empty() || key.len() > 200 {
                return Err(ApiError::bad("Idempotency-Key must be 1 to 200 characters"));
            }
            Some(key.to_string())
        }
    };
    let req: Execute = parse_body(&headers, &body)?;
    let (row, session, id) = load(&service, &app, &id).await?;
    let account = row_account(&row)?;
    let names = session_names(&service, &row);
    let calls = build_calls(&req, account.address, &names)?;
    match row.status.as_str() {
        "active" => {}
        "revoked" => return Err(ApiError::conflict("revoked", format!("session {id} was revoked; grant a new one"))),
        other => {
            return Err(ApiError::conflict(
                "not_active",
                format!("session {id} is {other}: the owner must grant it first"),
            ));
        }
    }
    let request_hash = sha256_hex(&body);

    // In a task of its own: a client that hangs up never leaves an execution half recorded.
    let run = Run { service: service.clone(), app, row, session, id, calls, names, idempotency_key, request_hash };
    tokio::spawn(run.execute())
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("execution task: {e}")))?
}

/// One execution, owned by its task.
struct Run {
    service: Arc<Service>,
    app: App,
    row: SessionRow,
    session: Session,
    id: B256,
    calls: Vec<Call>,
    names: BTreeMap<String, Address>,
    idempotency_key: Option<String>,
    request_hash: String,
}

impl Run {
    async fn execute(self) -> ApiResult {
        let Run { service, app, row, session, id, calls, names, idempotency_key, request_hash } = self;
        let account = row_account(&row)?;
        // One execution at a time on this session's lane.
        let lane = service.lane(&row.id).await;
        let _turn = lane.lock().await;
        let _across_instances = service.vault.lane_lock(&row.id).await?;
        let execution_id =
            match service.vault.begin_execution(&app.id, &row.id, idempotency_key.as_deref(), &request_hash).await? {
                Begin::New(execution_id) => execution_id,
                Begin::Existing(previous) => {
                    if previous.request_hash != request_hash || previous.session_id != row.id {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "idempotency_key_reused",
                            "this Idempotency-Key was used for a different request",
                        ));
                    }
                    if previous.status == "pending" {
                        return Err(ApiError::conflict(
                            "in_progress",
                            "an execution with this Idempotency-Key is in progress",
                        ));
                    }
                    let status =
                        if previous.status == "included" { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
                    let mut body = execution_json(&previous);
                    body["replayed"] = Value::Bool(true);
                    return ok(status, body);
                }
            };

        let no_detail = Value::Null;
        let audit =
            Audit { app: &app.id, account: Some(&row.account), session: Some(&row.id), event: "", detail: &no_detail };
        let key_bytes = alloy::hex::decode(&row.sealed_key)
            .map_err(|_| ApiError::from(crate::Error::Database("sealed key is not hex".into())))?;
        let key = service.master.open(id, &key_bytes)?;
        let grant: Bytes = row.grant_sig.as_deref().unwrap_or_default().parse().unwrap_or_default();
        let handle = SessionHandle::new(session.clone(), key, grant, service.valet.deployment().validator)
            .map_err(ApiError::from)?;
        let functions: Vec<Option<Function>> = serde_json::from_str::<Vec<Option<String>>>(&row.functions)
            .unwrap_or_default()
            .iter()
            .map(|f| f.as_deref().and_then(|f| Function::parse(f).ok()))
            .collect();

        let prepared = match service.valet.prepare(&account, &handle, &calls).await {
            Ok(p) => p,
            Err(ClientError::Preflight(refusal)) => {
                let tokens: Vec<Address> =
                    session.limits.iter().filter(|l| l.token != Address::ZERO).map(|l| l.token).collect();
                let reason = explain(&refusal, &session, &functions, &token_labels(&service, &names, &tokens).await);
                let detail = json!({ "execution_id": execution_id, "reason": reason, "refusal": refusal.to_string() });
                let audit = Audit { event: "execution.refused", detail: &detail, ..audit };
                service.vault.finish_execution(&execution_id, "refused", None, None, &detail, &audit).await?;
                service.metrics.inc("valet_executions_total", &[("outcome", "refused")]);
                let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", reason);
                e.extra = Some(json!({ "refusal": refusal.to_string(), "execution_id": execution_id }));
                return Err(e);
            }
            Err(e) => {
                let detail = json!({ "execution_id": execution_id, "error": e.to_string() });
                let audit = Audit { event: "execution.failed", detail: &detail, ..audit };
                service.vault.finish_execution(&execution_id, "failed", None, None, &detail, &audit).await?;
                service.metrics.inc("valet_executions_total", &[("outcome", "failed")]);
                return Err(e.into());
            }
        };
        let user_op_hash = prepared.op.hash(service.valet.deployment().entry_point, service.valet.chain_id());
        let operation = serde_json::to_string(&prepared.op).unwrap_or_default();
        service.vault.execution_built(&execution_id, &user_op_hash.to_string(), &operation).await?;
        match service.valet.submit(std::slice::from_ref(&prepared.op)).await {
            Ok(mut receipts) => {
                let receipt = receipts.remove(0);
                let detail = json!({ "permission_indices": prepared.indices, "deployed_account": prepared.deploys, "enabled_session": prepared.enables });
                let gas = receipt.actual_gas_used.to_string();
                let tx = receipt.transaction_hash.to_string();
                let event = json!({ "execution_id": execution_id, "user_op_hash": user_op_hash, "transaction_hash": tx, "gas_used": gas });
                let audit = Audit { event: "execution.included", detail: &event, ..audit };
                service
                    .vault
                    .finish_execution(&execution_id, "included", Some(&tx), Some(&gas), &detail, &audit)
                    .await?;
                service.metrics.inc("valet_executions_total", &[("outcome", "included")]);
                ok(
                    StatusCode::OK,
                    json!({
                        "execution_id": execution_id,
                        "session_id": id,
                        "status": "included",
                        "user_op_hash": user_op_hash,
                        "transaction_hash": receipt.transaction_hash,
                        "gas_used": gas,
                        "detail": detail,
                    }),
                )
            }
            Err(e) => {
                let status = if matches!(e, ClientError::ExecutionReverted { .. }) { "reverted" } else { "failed" };
                let detail =
                    json!({ "execution_id": execution_id, "user_op_hash": user_op_hash, "error": e.to_string() });
                let event = format!("execution.{status}");
                let audit = Audit { event: &event, detail: &detail, ..audit };
                service.vault.finish_execution(&execution_id, status, None, None, &detail, &audit).await?;
                service.metrics.inc("valet_executions_total", &[("outcome", status)]);
                Err(e.into())
            }
        }
    }
}

async fn session_json(service: &Service, row: &SessionRow, session: &Session) -> Result<Value, ApiError> {
    let account: Address = row_account(row)?.address;
    let status = service.valet.status(account, session).await?;
    let summary: Value = serde_json::from_str(&row.summary).unwrap_or(Value::Null);
    let (usable, reason) = match row.status.as_str() {
        "revoked" => (false, Some("revoked in the service; grant a new one".to_string())),
        "proposed" => (false, Some("waiting for the owner's grant".to_string())),
        _ => (status.usable, status.reason.clone()),
    };
    Ok(json!({
        "session_id": row.id,
        "status": row.status,
        "account": row.account,
        "owner": row.owner,
        "session_key": row.session_key,
        "summary": summary,
        "usable": usable,
        "reason": reason,
        "chain": status,
    }))
}

async fn show(State(service): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let (row, session, _) = load(&service, &app, &id).await?;
    ok(StatusCode::OK, session_json(&service, &row, &session).await?)
}

async fn list(State(service): State<Arc<Service>>, headers: HeaderMap, RawQuery(query): RawQuery) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let q = query_map(query)?;
    let account = q.get("account").map(|a| parse_address(a, "account")).transpose()?;
    let rows = service.vault.sessions(&app.id, account.map(|a| a.to_string()).as_deref()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (_, session, _) = load(&service, &app, &row.id).await?;
        out.push(session_json(&service, &row, &session).await?);
    }
    ok(StatusCode::OK, json!({ "sessions": out }))
}

async fn revoke(State(service): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let (row, _, id) = load(&service, &app, &id).await?;
    // Stop use in the service at once, before anything reaches the chain.
    let detail = json!({ "by": "app" });
    let audit = Audit {
        app: &app.id,
        account: Some(&row.account),
        session: Some(&row.id),
        event: "session.revoked",
        detail: &detail,
    };
    let changed = service.vault.transition(&row.id, &["proposed", "active"], "revoked", None, &audit).await?;
    if changed {
        service.metrics.inc("valet_sessions_total", &[("event", "revoked")]);
    }
    let account: Address = row_account(&row)?.address;
    let deployment = service.valet.deployment();
    let chain_id = service.valet.chain_id();
    ok(
        StatusCode::OK,
        json!({
            "session_id": id,
            "status": "revoked",
            "onchain": {
                "digest": eip712::revoke_session_digest(account, id, deployment.validator, chain_id),
                "typed_data": eip712::revoke_session_typed_data(account, id, deployment.validator, chain_id),
                "submit": format!("POST /v1/sessions/{id}/revoke/onchain with the owner's signature"),
            },
        }),
    )
}

async fn revoke_onchain(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let req: Grant = parse_body(&headers, &body)?;
    let signature = parse_signature(&req.signature)?;
    let (row, _, id) = load(&service, &app, &id).await?;
    let account = row_account(&row)?;
    let deployment = service.valet.deployment();
    let digest = eip712::revoke_session_digest(account.address, id, deployment.validator, service.valet.chain_id());
    owners_signature(&signature, digest, account.owner, "revocation")?;
    let Some(relayer) = &service.relayer else {
        return Err(ApiError::conflict(
            "no_relayer",
            "this service has no relayer key: submit revokeSessionWithSignature(account, id, signature) to the validator yourself",
        ));
    };
    let detail = json!({ "by": "owner" });
    let audit = Audit {
        app: &app.id,
        account: Some(&row.account),
        session: Some(&row.id),
        event: "session.revoked",
        detail: &detail,
    };
    service.vault.transition(&row.id, &["proposed", "active"], "revoked", None, &audit).await?;
    let validator = valet_client::contracts::SessionKeyValidator::new(deployment.validator, relayer);
    let pending = validator.revokeSessionWithSignature(account.address, id, signature).send().await.map_err(|e| {
        let decoded = e.as_revert_data().and_then(|d| valet_client::submit::decode_validator_error(&d));
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected_by_chain", decoded.unwrap_or_else(|| e.to_string()))
    })?;
    let receipt = pending
        .get_receipt()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", e.to_string()))?;
    let tx = receipt.transaction_hash;
    service
        .vault
        .audit(
            &app.id,
            Some(&row.account),
            Some(&row.id),
            "session.revoked_onchain",
            &json!({ "transaction_hash": tx }),
        )
        .await?;
    ok(StatusCode::OK, json!({ "session_id": id, "status": "revoked", "transaction_hash": tx }))
}

async fn audit(State(service): State<Arc<Service>>, headers: HeaderMap, RawQuery(query): RawQuery) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let q = query_map(query)?;
    let account = q.get("account").map(|a| parse_address(a, "account")).transpose()?.map(|a| a.to_string());
    let session = q.get("session_id").map(|s| parse_session_id(s)).transpose()?.map(|s| s.to_string());
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad(format!("limit `{l}` must be 1 to 1000")))?,
        None => 100,
    };
    let events = service.vault.audit_log(&app.id, account.as_deref(), session.as_deref(), limit).await?;
    ok(StatusCode::OK, json!({ "events": events }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fund {
    address: String,
}

/// Tops an account up with ETH (and demo tokens) on a development chain.
async fn devnet_fund(State(service): State<Arc<Service>>, headers: HeaderMap, body: Body) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let req: Fund = parse_body(&headers, &body)?;
    let address = parse_address(&req.address, "address")?;
    if address == Address::ZERO {
        return Err(ApiError::bad(format!("address {address} is the zero address: funds sent there are lost")));
    }
    let Some(faucet) = &service.faucet else {
        return Err(ApiError::conflict(
            "no_faucet",
            "this service is not on a development chain: fund the account from a wallet",
        ));
    };
    let sent = faucet.fund(address).await.map_err(|e| match e {
        crate::web::FaucetError::Rejected(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected_by_chain", format!("funding {address}: {e}"))
        }
        crate::web::FaucetError::Node(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("faucet: {e}"))
        }
    })?;
    if !sent.is_empty() {
        let detail = json!({ "transactions": sent });
        service.vault.audit(&app.id, Some(&address.to_string()), None, "account.funded", &detail).await?;
    }
    let balance = service
        .valet
        .provider()
        .get_balance(address)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("node: {e}")))?;
    ok(
        StatusCode::OK,
        json!({ "address": address, "funded": !sent.is_empty(), "transactions": sent, "balance_wei": balance.to_string() }),
    )
}

// ------------------------------------------------------------------ schedules

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSchedule {
    calls: Vec<CallRequest>,
    /// "1d", "12h", "90s", or seconds.
    every: Value,
    #[serde(default)]
    start_at: Option<u64>,
    #[serde(default)]
    max_runs: Option<u32>,
}

fn schedule_json(s: &ScheduleRow) -> Value {
    json!({
        "schedule_id": s.id,
        "session_id": s.session_id,
        "calls": serde_json::from_str::<Value>(&s.body).map(|b| b["calls"].clone()).unwrap_or(Value::Null),
        "start_at": s.start_at,
        "every": s.every,
        "max_runs": s.max_runs,
        "next_run": s.next_run,
        "next_run_at": s.start_at + s.next_run * s.every,
        "status": s.status,
        "reason": s.reason,
    })
}

async fn create_schedule(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let req: CreateSchedule = parse_body(&headers, &body)?;
    let every = match &req.every {
        Value::Number(n) => n.as_u64().ok_or_else(|| ApiError::bad(format!("every = {n}: give whole seconds")))?,
        Value::String(text) => {
            valet_core::spec::parse_duration(text).map_err(|e| ApiError::bad(format!("every: {e}")))?
        }
        other => return Err(ApiError::bad(format!("every = {other}: give \"1d\", \"12h\", \"90s\" or seconds"))),
    };
    if !(1..=366 * 86_400).contains(&every) {
        return Err(ApiError::bad(format!("every = {every} s: give 1 s to 366 days")));
    }
    if req.max_runs == Some(0) {
        return Err(ApiError::bad("max_runs must be at least 1"));
    }
    let (row, _, id) = load(&service, &app, &id).await?;
    let account = row_account(&row)?;
    let names = session_names(&service, &row);
    let execute = Execute { calls: req.calls.clone() };
    build_calls(&execute, account.address, &names)?;
    if row.status != "active" {
        return Err(ApiError::conflict(
            "not_active",
            format!("session {id} is {}: schedules run in active sessions", row.status),
        ));
    }
    let now = service.valet.now().await?;
    let start_at = req.start_at.unwrap_or(now);
    if start_at > i64::MAX as u64 / 2 {
        return Err(ApiError::bad(format!("start_at {start_at} is out of range")));
    }
    let schedule = ScheduleRow {
        id: random_id(),
        app_id: app.id.clone(),
        session_id: row.id.clone(),
        body: json!({ "calls": serde_json::to_value(req.calls.iter().map(call_json).collect::<Vec<_>>()).unwrap_or_default() }).to_string(),
        start_at: start_at as i64,
        every: every as i64,
        max_runs: req.max_runs.map(i64::from),
        next_run: 0,
        status: "active".into(),
        reason: None,
    };
    service.vault.insert_schedule(&schedule).await?;
    service
        .vault
        .audit(
            &app.id,
            Some(&row.account),
            Some(&row.id),
            "schedule.created",
            &json!({ "schedule_id": schedule.id, "every": every }),
        )
        .await?;
    ok(StatusCode::CREATED, schedule_json(&schedule))
}

fn call_json(c: &CallRequest) -> Value {
    let mut v = json!({ "to": c.to });
    if let Some(value) = &c.value {
        v["value"] = json!(value);
    }
    if let Some(data) = &c.data {
        v["data"] = json!(data);
    }
    if let Some(function) = &c.function {
        v["function"] = json!(function);
        v["args"] = json!(c.args);
    }
    v
}

async fn list_schedules(State(service): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    let (row, _, _) = load(&service, &app, &id).await?;
    let schedules = service.vault.schedules(&app.id, Some(&row.id)).await?;
    ok(StatusCode::OK, json!({ "schedules": schedules.iter().map(schedule_json).collect::<Vec<_>>() }))
}

async fn cancel_schedule(State(service): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let app = authenticate(&service, &headers).await?;
    if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::bad(format!("schedule id `{id}` is not 32 hex digits")));
    }
    if !service.vault.cancel_schedule(&app.id, &id).await? {
        return Err(ApiError::not_found(format!("no active schedule {id} for this app")));
    }
    service.vault.audit(&app.id, None, None, "schedule.cancelled", &json!({ "schedule_id": id })).await?;
    ok(StatusCode::OK, json!({ "schedule_id": id, "status": "cancelled" }))
}

/// One pass of the scheduler: every active schedule whose run is due (by the chain's clock)
/// runs once. Runs missed while the service was down are skipped, not made up in a burst — a
/// periodic allowance would refuse the burst anyway — and recorded in the audit log. Returns how
/// many runs executed.
pub async fn run_schedules(service: &Arc<Service>) -> Result<usize, crate::Error> {
    let now = service.valet.now().await? as i64;
    let mut ran = 0;
    for s in service.vault.active_schedules().await? {
        if now < s.start_at {
            continue;
        }
        let mut due = (now - s.start_at) / s.every;
        if let Some(max) = s.max_runs {
            due = due.min(max - 1);
        }
        if due < s.next_run {
            continue;
        }
        let app = App { id: s.app_id.clone(), name: String::new() };
        let audit = |event: &'static str, detail: Value| {
            let service = service.clone();
            let (app, session) = (s.app_id.clone(), s.session_id.clone());
            async move { service.vault.audit(&app, None, Some(&session), event, &detail).await }
        };
        if due > s.next_run {
            audit("schedule.skipped", json!({ "schedule_id": s.id, "runs": (s.next_run..due).collect::<Vec<_>>(), "reason": "missed while the service was down" })).await?;
        }
        let Some(row) = service.vault.session(&s.app_id, &s.session_id).await? else { continue };
        let stop = |reason: String| {
            let service = service.clone();
            let id = s.id.clone();
            let next = due;
            async move { service.vault.update_schedule(&id, next, "done", Some(&reason)).await }
        };
        if row.status != "active" {
            stop(format!("session is {}", row.status)).await?;
            continue;
        }
        let Ok(session_bytes) = row.packed.parse::<Bytes>() else { continue };
        let Ok(session) = Session::decode(&session_bytes) else { continue };
        if now as u64 > session.valid_until {
            stop("the session has expired".into()).await?;
            continue;
        }
        let account = row_account(&row).map_err(|e| crate::Error::Database(e.message))?;
        let names = session_names(service, &row);
        let Ok(execute) = serde_json::from_str::<Execute>(&s.body) else { continue };
        let calls = match build_calls(&execute, account.address, &names) {
            Ok(calls) => calls,
            Err(e) => {
                stop(format!("its calls no longer encode: {}", e.message)).await?;
                continue;
            }
        };
        let id: B256 = row.id.parse().map_err(|_| crate::Error::Database("stored session id".into()))?;
        let run = Run {
            service: service.clone(),
            app,
            row,
            session,
            id,
            calls,
            names,
            idempotency_key: Some(format!("schedule:{}:{due}", s.id)),
            request_hash: sha256_hex(s.body.as_bytes()),
        };
        let outcome = match run.execute().await {
            Ok(response) => json!({ "status": response.status().as_u16() }),
            Err(e) => json!({ "status": e.status.as_u16(), "error": e.code, "message": e.message }),
        };
        ran += 1;
        audit("schedule.run", json!({ "schedule_id": s.id, "run": due, "outcome": outcome })).await?;
        let finished = s.max_runs.is_some_and(|max| due + 1 >= max);
        service
            .vault
            .update_schedule(
                &s.id,
                due + 1,
                if finished { "done" } else { "active" },
                finished.then_some("all runs made"),
            )
            .await?;
    }
    Ok(ran)
}
