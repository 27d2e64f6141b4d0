//! The providers' wire formats, both directions, one file per job:
//! `api.rs` (the APIs, providers and error shapes), `inspect.rs` (what a
//! request asks for: model, streaming, a pre-call token estimate),
//! `prepare.rs` (the one rewrite Docket makes to it), `usage.rs` and
//! `sse.rs` (the usage a response reports, whole or streamed), and
//! `errors.rs` (errors in the shape each provider's SDK expects). Files
//! import only what they need from each other; this one re-exports.

mod api;
mod errors;
mod inspect;
mod prepare;
mod sse;
mod usage;

pub use api::{Api, ErrorShape, ProviderKind};
pub use errors::{ERROR_CODE_HEADER, error_body, error_response, error_response_with_headers};
pub use inspect::{CallShape, WireError, inspect};
pub use prepare::{Prepared, prepare};
pub use sse::{MAX_EVENT_BYTES, SseTap, TapSummary};
pub use usage::{ResponseFacts, Usage, response_facts, usage_from_json};

#[cfg(test)]
mod tests;
