//! What a whole (non-streamed) response reports: its usage and ids.

use serde::Deserialize;

use super::api::Api;

/// Tokens a call used, as the provider reported them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// All prompt tokens, cached or not (Anthropic reports cache reads and
    /// writes apart from `input_tokens`; they are added in).
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What a whole (non-streamed) response says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    pub usage: Option<Usage>,
    /// The provider's id for the response (`chatcmpl-…`, `resp_…`, `msg_…`).
    pub response_id: Option<String>,
}

#[derive(Deserialize)]
struct WholeResponse {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<UsageFields>,
}

/// Every usage field any of the APIs uses; each API reads its own.
#[derive(Deserialize, Default, Clone, Copy)]
pub(super) struct UsageFields {
    #[serde(default)]
    pub(super) prompt_tokens: Option<u64>,
    #[serde(default)]
    pub(super) completion_tokens: Option<u64>,
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
}

impl UsageFields {
    pub(super) fn usage(&self, api: Api) -> Option<Usage> {
        let (input, output) = match api {
            Api::ChatCompletions => (self.prompt_tokens?, self.completion_tokens.unwrap_or(0)),
            Api::Embeddings => (self.prompt_tokens?, 0),
            Api::Responses => (self.input_tokens?, self.output_tokens.unwrap_or(0)),
            Api::Messages => (
                self.input_tokens?
                    .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
                    .saturating_add(self.cache_read_input_tokens.unwrap_or(0)),
                self.output_tokens.unwrap_or(0),
            ),
            Api::Models => return None,
        };
        Some(Usage {
            input_tokens: input,
            output_tokens: output,
        })
    }
}

/// Usage and id from a whole JSON response; empty when the body is not
/// the API's success shape.
pub fn response_facts(api: Api, body: &[u8]) -> ResponseFacts {
    let Ok(r) = serde_json::from_slice::<WholeResponse>(body) else {
        return ResponseFacts::default();
    };
    ResponseFacts {
        usage: r.usage.and_then(|u| u.usage(api)),
        response_id: r.id.and_then(|v| match v {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        }),
    }
}

/// Just the usage of [`response_facts`].
pub fn usage_from_json(api: Api, body: &[u8]) -> Option<Usage> {
    response_facts(api, body).usage
}
