//! The API's one error shape, `{"error": {"code": "...", "message": "..."}}`,
//! and extractors of our own so malformed bodies and query strings get it
//! too. 4xx say exactly what was wrong; 5xx log the cause and say nothing
//! of internals.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use docket_core::strict_json;
use docket_store::StoreError;
use serde::de::DeserializeOwned;
use serde_json::json;

pub use crate::listener::RETRY_AFTER_SECS;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// Too much is waiting already: refused at once, nothing done; the
    /// response says when to try again (`Retry-After`).
    pub fn overloaded(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("Docket is overloaded ({message}); nothing was done, try again shortly"),
        )
    }

    /// Logs `cause` and tells the client only that the server failed.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::not_found(m),
            StoreError::Invalid(m) => Self::bad_request("invalid_request", m),
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::Unavailable(_) | StoreError::Closed => {
                tracing::error!(cause = %e, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the ledger cannot be written or read right now; nothing was recorded",
                )
            }
            StoreError::Overloaded(m) => Self::overloaded(m),
            StoreError::Corrupt(_) => Self::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert("www-authenticate", "Bearer".parse().expect("static header"));
        }
        // Every 503 is a moment's state (overload, a store refusing
        // writes): say when to look again.
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

/// A JSON body, read strictly: checked in one pass against the API's
/// budgets (depth, members, array lengths, values) before any tree is
/// built, with duplicate keys and out-of-range numbers refused; then
/// parsed as `T`. Every refusal is in our error shape and names where the
/// body is at fault.
pub struct ApiJson<T>(pub T);

/// The budgets of a body on Docket's own API. The body's size is bounded
/// by `max_body_bytes` before it is read; a batch of up to
/// `max_batch_entries` entries is one body, so it may hold more values than
/// one entry (131,072: a thousand entries of about a hundred values each;
/// the tree of the largest passing body stays in the tens of MB).
const API_JSON: strict_json::Limits = strict_json::Limits {
    max_bytes: usize::MAX,
    max_total_values: 131_072,
    ..strict_json::Limits::API
};

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(BodyLimit::default().0, |l| l.0);
        let bytes = read_body(req.into_body(), limit)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => too_large(),
                BodyError::Timeout(m) => {
                    ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", m)
                }
                BodyError::Unreadable(m) => ApiError::bad_request("invalid_request", m),
            })?;
        parse_strict(&bytes).map(Self)
    }
}

/// The largest request body, in bytes (`max_body_bytes`); put in every
/// request's extensions by [`crate::app`].
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

impl Default for BodyLimit {
    fn default() -> Self {
        Self(crate::Config::default().max_body_bytes)
    }
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    /// It did not arrive in time (`body_timeout_ms`).
    Timeout(String),
    Unreadable(String),
}

/// Reads a request body of at most `limit` bytes. One past the limit is
/// still read to its end and dropped (up to four times the limit), so a
/// client that is still sending reads the 413 rather than a connection
/// reset under its feet.
pub async fn read_body(mut body: axum::body::Body, limit: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let mut parts: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    let failed = |e: axum::Error| {
        if crate::listener::is_body_timeout(&e) {
            BodyError::Timeout(e.to_string())
        } else {
            BodyError::Unreadable(format!("the request body could not be read: {e}"))
        }
    };
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(failed)?.into_data() else {
            continue;
        };
        len = len.saturating_add(data.len());
        if len > limit {
            let drain_max = limit.saturating_mul(4);
            while len <= drain_max {
                match body.frame().await {
                    Some(Ok(f)) => len += f.data_ref().map_or(0, Bytes::len),
                    _ => break,
                }
            }
            return Err(BodyError::TooLarge);
        }
        parts.push(data);
    }
    Ok(match parts.len() {
        0 => Bytes::new(),
        1 => parts.swap_remove(0),
        _ => {
            let mut all = Vec::with_capacity(len);
            for p in &parts {
                all.extend_from_slice(p);
            }
            Bytes::from(all)
        }
    })
}

/// Reads `bytes` as `T` the way [`ApiJson`] does.
pub fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    strict_json::check(bytes, &API_JSON).map_err(|e| {
        let code = match e {
            strict_json::StrictJsonError::Syntax { .. } => "invalid_json",
            strict_json::StrictJsonError::DuplicateKey { .. } => "duplicate_key",
            _ => "invalid_request",
        };
        ApiError::bad_request(code, e.to_string())
    })?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        ApiError::bad_request("invalid_request", message)
    })
}

pub(crate) fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || mime
            .rsplit_once('+')
            .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "request body is larger than the server's limit (max_body_bytes)",
    )
}

/// `axum::extract::Query` with our error shape on rejection.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::bad_request("invalid_query", e.body_text()))
            }
            Err(other) => Err(ApiError::bad_request("invalid_query", other.body_text())),
        }
    }
}

/// `axum::extract::Path` with our error shape on rejection (a segment
/// that is not UTF-8 once percent-decoded, or not the type the route
/// wants).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(e) if e.status().is_server_error() => Err(ApiError::internal(e.body_text())),
            Err(e) => Err(ApiError::bad_request("invalid_path", e.body_text())),
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API lives under /api/v1 (see /api/v1/openapi.json)")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
