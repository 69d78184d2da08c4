//! The API's extractors. Each rejects in the API's JSON error shape ([`ApiError`]) naming what
//! is wrong, so handlers take typed input and never parse by hand.
//!
//! - [`Authed`]: the app the request's API key belongs to (checked before the body is read, by
//!   the `authenticate_first` layer, which hands the app over).
//! - [`ApiJson`]: a JSON body, `application/json` exactly (parameters allowed), unknown fields
//!   refused by the request types; with its raw bytes, for idempotency hashes.
//! - [`ApiQuery`]: the query string, percent-decoded, unknown parameters refused.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, authenticate};
use crate::Service;
use crate::vault::App;

/// The app whose API key authenticated the request.
#[derive(Debug, Clone)]
pub(crate) struct Authed(pub(crate) App);

impl FromRequestParts<Arc<Service>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Self, ApiError> {
        match parts.extensions.get::<App>() {
            Some(app) => Ok(Self(app.clone())),
            // Not through the layer (a route outside /v1): check the key here.
            None => authenticate(service, &parts.headers).await.map(Self),
        }
    }
}

/// A JSON request body as `T`, and the bytes it was read from.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T, pub(crate) Bytes);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(ct) = request.headers().get(axum::http::header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default();
            // The media type before any parameters (`application/json; charset=utf-8`), exactly.
            let media = ct.split(';').next().unwrap_or_default().trim();
            if !media.eq_ignore_ascii_case("application/json") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("content type `{ct}`: send application/json"),
                ));
            }
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            let status = e.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_request" };
            ApiError::new(status, code, format!("request body: {}", e.body_text()))
        })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("request body: {e}")))?;
        Ok(Self(value, bytes))
    }
}

/// The query string as `T` (a struct with `#[serde(deny_unknown_fields)]`).
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query).map(Self).map_err(|e| ApiError::bad(format!("query `{query}`: {e}")))
    }
}
