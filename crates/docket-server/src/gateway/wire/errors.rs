//! Errors in the shape each provider's SDK expects.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::api::{Api, ErrorShape};

/// The `type` an SDK expects for `status`.
pub(super) fn error_type(shape: ErrorShape, status: StatusCode) -> &'static str {
    match (shape, status.as_u16()) {
        (_, 401) => "authentication_error",
        (_, 403) => "permission_error",
        (_, 404) => "not_found_error",
        (_, 429) => "rate_limit_error",
        (ErrorShape::OpenAi, 500..) => "server_error",
        (ErrorShape::OpenAi, _) => "invalid_request_error",
        (ErrorShape::Anthropic, 402) => "billing_error",
        (ErrorShape::Anthropic, 413) => "request_too_large",
        (ErrorShape::Anthropic, 504) => "timeout_error",
        (ErrorShape::Anthropic, 529) => "overloaded_error",
        (ErrorShape::Anthropic, 500..) => "api_error",
        // Anthropic uses this type for every 4xx it does not list.
        (ErrorShape::Anthropic, _) => "invalid_request_error",
    }
}

/// The JSON body of [`error_response`].
pub fn error_body(api: Api, status: StatusCode, code: &str, message: &str) -> serde_json::Value {
    let kind = error_type(api.error_shape(), status);
    match api.error_shape() {
        ErrorShape::OpenAi => json!({
            "error": {"message": message, "type": kind, "param": null, "code": code}
        }),
        ErrorShape::Anthropic => json!({
            "type": "error",
            "error": {"type": kind, "message": message}
        }),
    }
}

/// The header that carries Docket's own error code, whatever the shape
/// (the Anthropic shape has no field for it).
pub const ERROR_CODE_HEADER: &str = "docket-error-code";

/// An error the agent's SDK raises as its usual exception: a refusal by
/// Docket, or a failure to reach the provider.
pub fn error_response(api: Api, status: StatusCode, code: &str, message: &str) -> Response {
    error_response_with_headers(api, status, code, message, HeaderMap::new())
}

/// [`error_response`] with extra headers, e.g. `retry-after`, or
/// `x-should-retry: false` (honoured by the OpenAI and Anthropic SDKs) for
/// a refusal that retrying cannot change.
pub fn error_response_with_headers(
    api: Api,
    status: StatusCode,
    code: &str,
    message: &str,
    headers: HeaderMap,
) -> Response {
    let body = error_body(api, status, code, message);
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert(HeaderName::from_static(ERROR_CODE_HEADER), v);
    }
    h.extend(headers);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
