//! The API's one error shape, `{"error": {"code": "...", "message": "..."}}`,
//! and extractors of our own so malformed bodies and query strings get it
//! too. 4xx say exactly what was wrong; 5xx log the cause and say nothing
//! of internals.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use docket_core::strict_json;
use docket_store::StoreError;
use serde::de::DeserializeOwned;
use serde_json::json;

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

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::bad_request("invalid_request", e.body_text())
                }
            })?;
        parse_strict(&bytes).map(Self)
    }
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

fn is_json(headers: &axum::http::HeaderMap) -> bool {
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
