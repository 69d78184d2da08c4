//! The HTTP API, one module per resource: every answer is JSON; every bad request gets a 4xx
//! naming the problem (typed extractors whose rejections are the API's JSON errors: see
//! `extract`). The shared pieces — the error type, the router, parsing and authentication —
//! are here.

pub(crate) mod accounts;
pub(crate) mod apps;
pub(crate) mod audit;
pub(crate) mod devnet;
pub(crate) mod executions;
pub(crate) mod extract;
pub(crate) mod health;
pub(crate) mod paymaster;
pub(crate) mod schedules;
pub(crate) mod sessions;
pub(crate) mod sponsorship;

use accounts::*;
use apps::*;
use audit::*;
use devnet::*;
use executions::*;
pub(crate) use extract::{ApiJson, ApiQuery, Authed};
use health::*;
use paymaster::*;
use schedules::*;
use sessions::*;
use sponsorship::*;

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, U256};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use valet_client::Error as ClientError;

use crate::Service;
use crate::vault::{App, SessionRow};

/// An HTTP error: status, a stable code, and a message naming the problem.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) extra: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: None }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
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
            e @ crate::Error::SponsorshipBudgetExceeded { budget, left, max_cost } => {
                let mut answer = Self::new(StatusCode::PAYMENT_REQUIRED, "sponsorship_budget_exceeded", e.to_string());
                answer.extra = Some(json!({
                    "budget_wei": budget.to_string(),
                    "left_wei": left.to_string(),
                    "max_cost_wei": max_cost.to_string(),
                }));
                answer
            }
            e @ crate::Error::AccountKindUnavailable(_) => {
                Self::new(StatusCode::BAD_REQUEST, "account_kind_unavailable", e.to_string())
            }
            e @ crate::Error::ChainNotServed { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "chain_not_served", e.to_string())
            }
            crate::Error::NotSponsored(reason) => Self::new(StatusCode::PAYMENT_REQUIRED, "not_sponsored", reason),
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
            e @ ClientError::NotOwner { .. } => Self::bad(e.to_string()),
            e @ ClientError::AlreadyRevoked { .. } => Self::conflict("revoked", e.to_string()),
            // A bundler's own failure (an internal error, a method it lacks) says nothing about the
            // operation: retryable, not a rejection. Its ERC-4337 and parameter codes are.
            ClientError::Bundler { code, .. } if !(-32699..=-32500).contains(&code) && code != -32602 => {
                tracing::warn!(error = %e, "bundler failed");
                Self::new(StatusCode::BAD_GATEWAY, "bundler_unavailable", e.to_string())
            }
            e @ (ClientError::Refused { .. }
            | ClientError::Bundler { .. }
            | ClientError::ExecutionWouldRevert(_)
            | ClientError::ValidationWouldFail(_)
            | ClientError::TransactionWouldRevert(_)) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected_by_chain", e.to_string())
            }
            e @ ClientError::TransactionReverted(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "transaction_reverted", e.to_string())
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

pub(crate) type ApiResult = Result<Response, ApiError>;

pub(crate) fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

/// The API's routes.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/apps", post(create_app))
        .route("/v1/apps/{id}/sponsorship", put(set_sponsorship))
        .route("/v1/sponsorship", get(show_sponsorship))
        .route("/v1/paymaster", post(paymaster_rpc))
        .route("/v1/accounts/{owner}", get(account))
        .route("/v1/sessions", post(propose).get(list))
        .route("/v1/sessions/{id}", get(show))
        .route("/v1/sessions/{id}/grant", post(grant))
        .route("/v1/sessions/{id}/execute", post(execute))
        .route("/v1/executions/{id}", get(show_execution))
        .route("/v1/sessions/{id}/revoke", post(revoke))
        .route("/v1/sessions/{id}/revoke/onchain", post(revoke_onchain))
        .route("/v1/sessions/{id}/schedules", post(create_schedule).get(list_schedules))
        .route("/v1/schedules/{id}", axum::routing::delete(cancel_schedule))
        .route("/v1/audit", get(audit))
        .route("/v1/devnet/fund", post(devnet_fund))
        .route("/config.json", get(web_config))
        .route("/rpc", post(devnet_node))
        .route("/bundler", post(devnet_bundler))
        .route_layer(axum::middleware::from_fn_with_state(service.clone(), authenticate_first))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(contain_panics))
        .layer(axum::middleware::from_fn_with_state(service.clone(), count_requests))
        .layer(axum::middleware::map_response(json_errors))
        // Outermost, so that it compresses what the layers inside wrote (JSON errors too): gzip
        // when the client accepts it, for bodies over 32 bytes that are not images (the page is
        // a third of its size; a JSON list of sessions a fifth).
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(service)
}

/// Every error answer in the API's JSON shape, including those the framework writes itself
/// (a body over the size limit, a path that is not UTF-8, a missing route's method, …), which
/// come as plain text or empty.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Framework rejections are short text; read at most 1 KiB of it.
    let text = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
    let message = match std::str::from_utf8(&text).map(str::trim) {
        Ok(t) if !t.is_empty() => t.to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "unavailable",
        _ => "bad_request",
    };
    let mut answer = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// A request whose handling panics (a bug: no known input does it) gets a JSON 500 and the log
/// says where, instead of a connection closed without an answer.
async fn contain_panics(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "a request handler panicked");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the service failed on this request (a bug, logged); it may or may not have been applied: look before retrying",
            )
            .into_response()
        }
    }
}

/// The request methods counted by name; any other is counted as `OTHER`, so that a client cannot
/// grow the metrics without bound by inventing methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

pub(crate) async fn count_requests(
    State(service): State<Arc<Service>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(request.method());
    let response = next.run(request).await;
    service.metrics.inc(
        "valet_http_requests_total",
        &[("method", method), ("route", &route), ("status", response.status().as_str())],
    );
    response
}

/// The dApp's files for any other GET outside the API (when the service serves it); else 404.
pub(crate) async fn fallback(State(service): State<Arc<Service>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    match &service.web {
        Some(web) if (method == Method::GET || method == Method::HEAD) && !path.starts_with("/v1/") => {
            crate::web::asset(web, path.trim_start_matches('/')).await
        }
        _ => ApiError::not_found(format!("no route {path}")).into_response(),
    }
}

pub(crate) async fn web_config(State(service): State<Arc<Service>>) -> ApiResult {
    match &service.web {
        Some(web) => {
            Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], axum::Json(web.config.clone())).into_response())
        }
        None => Err(ApiError::not_found("this service does not serve the dApp")),
    }
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

// ------------------------------------------------------------------ parsing helpers

pub(crate) fn parse_address(text: &str, what: &str) -> Result<Address, ApiError> {
    text.parse::<Address>()
        .map_err(|_| ApiError::bad(format!("{what} `{text}` is not an address (0x + 40 hex digits)")))
}

pub(crate) fn parse_session_id(text: &str) -> Result<B256, ApiError> {
    text.parse::<B256>().map_err(|_| ApiError::bad(format!("session id `{text}` is not 0x + 64 hex digits")))
}

pub(crate) fn parse_u256(text: &str, what: &str) -> Result<U256, ApiError> {
    let bad = || ApiError::bad(format!("{what} `{text}` is not a non-negative integer (decimal or 0x hex)"));
    if text.is_empty() || text == "0x" {
        return Err(bad());
    }
    text.parse::<U256>().map_err(|_| bad())
}

/// A salt: decimal digits only.
pub(crate) fn parse_salt(text: &str) -> Result<U256, ApiError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad(format!("salt `{text}` is not a decimal integer")));
    }
    U256::from_str_radix(text, 10).map_err(|_| ApiError::bad(format!("salt `{text}` does not fit in 256 bits")))
}

pub(crate) fn parse_signature(text: &str) -> Result<Bytes, ApiError> {
    let bytes = text.parse::<Bytes>().map_err(|_| ApiError::bad(format!("signature `{text}` is not hex")))?;
    if bytes.len() != 65 {
        return Err(ApiError::bad(format!("signature is {} bytes; an ECDSA signature is 65", bytes.len())));
    }
    Ok(bytes)
}

/// Checks `signature` of `digest` is `owner`'s: its signer, or 403 naming who signed.
pub(crate) fn owners_signature(
    signature: &Bytes,
    digest: B256,
    owner: Address,
    what: &str,
) -> Result<Address, ApiError> {
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
pub(crate) fn session_names(service: &Service, row: &SessionRow) -> BTreeMap<String, Address> {
    let mut names = service.names.clone();
    if let Ok(stored) = serde_json::from_str::<BTreeMap<String, Address>>(&row.names) {
        names.extend(stored);
    }
    names
}

/// The credentials of `Authorization: Bearer <credentials>`; the scheme is case-insensitive
/// (RFC 9110 §11.1): `bearer`, `Bearer`, `BEARER`. `None` when the header is missing;
/// `Some(Err)` when it is not a Bearer header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<Result<&str, ApiError>> {
    let header = headers.get(axum::http::header::AUTHORIZATION)?;
    Some(
        header
            .to_str()
            .ok()
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <API key>`")),
    )
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

pub(crate) async fn authenticate(service: &Service, headers: &HeaderMap) -> Result<App, ApiError> {
    let key = bearer(headers).ok_or_else(|| unauthorized("send `Authorization: Bearer <API key>`"))??;
    service.vault.app_by_key(key).await?.ok_or_else(|| unauthorized("unknown API key"))
}

/// The API key of `Authorization: Bearer <API key>`, or of `Authorization: Basic …` whose
/// password is the key (any user name): what a JSON-RPC client sends for credentials in its URL
/// (`http://valet:<API key>@host/v1/paymaster`), as ERC-7677 clients are configured with a URL.
async fn authenticate_basic_too(service: &Service, headers: &HeaderMap) -> Result<App, ApiError> {
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, credentials)| credentials.trim());
    let Some(credentials) = basic else { return authenticate(service, headers).await };
    let decoded = base64_decode(credentials)
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| unauthorized("the Basic credentials are not base64 of `user:API key`"))?;
    let (_, key) = decoded.split_once(':').ok_or_else(|| unauthorized("the Basic credentials have no password"))?;
    service.vault.app_by_key(key).await?.ok_or_else(|| unauthorized("unknown API key"))
}

/// Standard base64 (RFC 4648, padded or not); `None` if `text` is not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut held) = (0u32, 0u32);
    for c in text.bytes() {
        bits = (bits << 6) | u32::from(value(c)?);
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    Some(out)
}

/// Every `/v1` request is authenticated before its body is read (the handlers read it whole, up to
/// the body limit): a client without a key cannot make the service buffer anything. `POST
/// /v1/apps` and `/v1/apps/…` need the admin token; every other route an app's API key (which
/// `/v1/paymaster`, a JSON-RPC endpoint, also takes as Basic credentials).
async fn authenticate_first(
    State(service): State<Arc<Service>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if path.starts_with("/v1/") {
        let checked = if path == "/v1/apps" || path.starts_with("/v1/apps/") {
            admin(&service, request.headers()).map(|()| None)
        } else if path == "/v1/paymaster" {
            authenticate_basic_too(&service, request.headers()).await.map(Some)
        } else {
            authenticate(&service, request.headers()).await.map(Some)
        };
        match checked {
            Err(e) => return e.into_response(),
            // Handed to the handler's [`Authed`]: one look-up per request.
            Ok(Some(app)) => {
                request.extensions_mut().insert(app);
            }
            Ok(None) => {}
        }
    }
    next.run(request).await
}

/// Checks the admin token (`Authorization: Bearer <admin token>`).
pub(crate) fn admin(service: &Service, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = bearer(headers).and_then(Result::ok).unwrap_or_default();
    if crate::vault::sha256_hex(token.as_bytes()) != service.admin_token_hash {
        return Err(unauthorized("registering and managing apps needs the admin token"));
    }
    Ok(())
}

// ------------------------------------------------------------------ handlers

#[cfg(test)]
mod tests {
    use super::*;

    async fn boom() -> &'static str {
        panic!("a bug")
    }

    #[test]
    fn base64_decodes_what_http_clients_send() {
        assert_eq!(base64_decode("dmFsZXQ6a2V5").as_deref(), Some(&b"valet:key"[..]));
        assert_eq!(base64_decode("dmFsZXQ6a2V5MQ==").as_deref(), Some(&b"valet:key1"[..]));
        assert_eq!(base64_decode("dmFsZXQ6a2V5MTI=").as_deref(), Some(&b"valet:key12"[..]));
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("not base64!"), None);
        assert_eq!(base64_decode("a"), None);
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_in_json() {
        use tower_service::Service as _;
        let mut app: Router = Router::new().route("/boom", get(boom)).layer(axum::middleware::from_fn(contain_panics));
        let request = axum::http::Request::get("/boom").body(axum::body::Body::empty()).expect("request");
        let response = app.call(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("body");
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"], "internal_error");
    }
}
