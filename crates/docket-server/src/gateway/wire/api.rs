//! The APIs Docket serves, the providers behind them, and the error
//! shape each one's SDK expects.

use std::fmt;

use axum::http::Method;
use serde::Deserialize;

/// Which wire format and credential scheme a provider speaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum ProviderKind {
    #[serde(rename = "openai")]
    OpenAi,
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The model-provider APIs the gateway speaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// OpenAI `POST /v1/embeddings`.
    Embeddings,
    /// OpenAI `GET /v1/models`.
    Models,
    /// Anthropic `POST /v1/messages`.
    Messages,
}

/// How an API's SDK expects errors to look.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error": {"message", "type", "param", "code"}}`
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`
    Anthropic,
}

impl Api {
    pub const ALL: [Api; 5] = [
        Api::ChatCompletions,
        Api::Responses,
        Api::Embeddings,
        Api::Models,
        Api::Messages,
    ];

    /// The path on the provider, and on the gateway.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Responses => "/v1/responses",
            Self::Embeddings => "/v1/embeddings",
            Self::Models => "/v1/models",
            Self::Messages => "/v1/messages",
        }
    }

    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.path() == path)
    }

    pub fn method(self) -> Method {
        match self {
            Self::Models => Method::GET,
            _ => Method::POST,
        }
    }

    pub fn provider_kind(self) -> ProviderKind {
        match self {
            Self::Messages => ProviderKind::Anthropic,
            _ => ProviderKind::OpenAi,
        }
    }

    pub fn error_shape(self) -> ErrorShape {
        match self.provider_kind() {
            ProviderKind::OpenAi => ErrorShape::OpenAi,
            ProviderKind::Anthropic => ErrorShape::Anthropic,
        }
    }

    /// Whether a request to this API may ask for a streamed (SSE) answer.
    pub fn can_stream(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Responses | Self::Messages
        )
    }

    /// The request field holding the prompt, and what it must be.
    pub(super) fn input_field(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::ChatCompletions | Self::Messages => Some(("messages", "an array")),
            Self::Responses | Self::Embeddings => Some(("input", "a string or an array")),
            Self::Models => None,
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}
