//! HTTP routes under `/api/v1`, grouped by what they serve.

pub mod entries;
pub mod log;

use axum::http::StatusCode;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// Runs blocking store work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// Embeds stored canonical entry bytes in a response without re-parsing.
pub fn raw_entry(bytes: Vec<u8>) -> Result<Box<RawValue>, ApiError> {
    let s = String::from_utf8(bytes).map_err(ApiError::internal)?;
    RawValue::from_string(s).map_err(ApiError::internal)
}

pub fn parse_u64(field: &str, value: &str) -> Result<u64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("{field} must be a non-negative integer, got {value:?}"),
        )
    })
}
