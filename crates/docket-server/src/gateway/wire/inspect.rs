//! Request inspection: what a request asks for (model, streaming, a
//! pre-call token estimate), read in one pass without building a tree.

use std::fmt;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::api::Api;
use super::errors::error_response;

/// What a request asks for, as far as policy and budgets care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallShape {
    /// Empty for [`Api::Models`], which names no model.
    pub model: String,
    pub stream: bool,
    /// A pre-call estimate for budget checks only: characters of the
    /// prompt's text ÷ 4, rounded up, at least 1. The receipt records the
    /// provider's own usage instead.
    pub estimated_input_tokens: u64,
    /// The largest of `max_tokens`, `max_completion_tokens` and
    /// `max_output_tokens` the request sets.
    pub max_output_tokens: Option<u64>,
    /// The request already has `stream_options.include_usage: true`.
    pub include_usage: bool,
    /// The request has a `stream_options` key at all; [`prepare`] then
    /// merges into it instead of adding one.
    pub(super) has_stream_options: bool,
}

/// What is wrong with a request body, worded for the agent's developer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("request body is not JSON: {0}")]
    NotJson(String),
    /// Refused before anything reads it: a duplicate key (which a provider
    /// might read differently from Docket), a budget exceeded, a number out
    /// of range.
    #[error("request body: {0}")]
    Strict(#[from] docket_core::strict_json::StrictJsonError),
    #[error("request body must be a JSON object")]
    NotObject,
    #[error("field `{field}` is required ({expected})")]
    Missing {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `{field}` must be {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
}

impl WireError {
    /// A 400 in the API's error shape.
    pub fn to_response(&self, api: Api) -> Response {
        error_response(
            api,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &self.to_string(),
        )
    }
}

/// The budgets of a model request; its size is bounded by `max_body_bytes`
/// before it is read.
const GATEWAY_JSON: docket_core::strict_json::Limits = docket_core::strict_json::Limits {
    max_bytes: usize::MAX,
    ..docket_core::strict_json::Limits::GATEWAY
};

/// Reads what policy needs from a request body without building a JSON
/// tree: one pass, counting prompt characters as it goes.
pub fn inspect(api: Api, body: &[u8]) -> Result<CallShape, WireError> {
    let Some((input_field, input_expected)) = api.input_field() else {
        return Ok(CallShape {
            model: String::new(),
            stream: false,
            estimated_input_tokens: 0,
            max_output_tokens: None,
            include_usage: false,
            has_stream_options: false,
        });
    };
    // What the provider reads is what policy saw: no duplicate keys, and
    // the body's budgets hold before anything reads it.
    docket_core::strict_json::check(body, &GATEWAY_JSON).map_err(|e| match e {
        docket_core::strict_json::StrictJsonError::Syntax {
            line,
            column,
            message,
        } => WireError::NotJson(format!("{message} at line {line} column {column}")),
        other => WireError::Strict(other),
    })?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let fields = de
        .deserialize_map(TopVisitor)
        .and_then(|f| de.end().map(|()| f))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => WireError::NotObject,
            _ => WireError::NotJson(e.to_string()),
        })?;

    let model = match fields.model {
        None | Some(serde_json::Value::Null) => {
            return Err(WireError::Missing {
                field: "model",
                expected: "a string",
            });
        }
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        Some(_) => {
            return Err(WireError::Invalid {
                field: "model",
                expected: "a non-empty string",
            });
        }
    };
    let input_kind = if input_field == "messages" {
        fields.messages
    } else {
        fields.input
    };
    let input_ok = match input_kind {
        None | Some(JsonKind::Null) => {
            // A Responses call may take its prompt from a stored template.
            if api == Api::Responses && fields.has_prompt {
                true
            } else {
                return Err(WireError::Missing {
                    field: input_field,
                    expected: input_expected,
                });
            }
        }
        Some(JsonKind::Array) => true,
        Some(JsonKind::String) => matches!(api, Api::Responses | Api::Embeddings),
        Some(_) => false,
    };
    if !input_ok {
        return Err(WireError::Invalid {
            field: input_field,
            expected: input_expected,
        });
    }
    let stream = match fields.stream {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => {
            return Err(WireError::Invalid {
                field: "stream",
                expected: "a boolean",
            });
        }
    };
    let mut max_output_tokens: Option<u64> = None;
    for (name, value) in [
        ("max_tokens", &fields.max_tokens),
        ("max_completion_tokens", &fields.max_completion_tokens),
        ("max_output_tokens", &fields.max_output_tokens),
    ] {
        match value {
            None | Some(serde_json::Value::Null) => {}
            Some(v) => {
                let n = v.as_u64().ok_or(WireError::Invalid {
                    field: name,
                    expected: "a non-negative integer",
                })?;
                max_output_tokens = Some(max_output_tokens.map_or(n, |m| m.max(n)));
            }
        }
    }
    Ok(CallShape {
        model,
        stream: stream && api.can_stream(),
        estimated_input_tokens: fields.chars.div_ceil(4).max(1),
        max_output_tokens,
        include_usage: fields.include_usage,
        has_stream_options: fields.has_stream_options,
    })
}

/// The top-level fields [`inspect`] looks at; everything else is skipped.
#[derive(Default)]
struct Fields {
    model: Option<serde_json::Value>,
    stream: Option<serde_json::Value>,
    pub(super) has_stream_options: bool,
    include_usage: bool,
    messages: Option<JsonKind>,
    input: Option<JsonKind>,
    has_prompt: bool,
    max_tokens: Option<serde_json::Value>,
    max_completion_tokens: Option<serde_json::Value>,
    max_output_tokens: Option<serde_json::Value>,
    chars: u64,
}

enum TopKey {
    Model,
    Stream,
    StreamOptions,
    Messages,
    Input,
    /// Other prompt-bearing fields: counted, not required.
    Text,
    Prompt,
    MaxTokens,
    MaxCompletionTokens,
    MaxOutputTokens,
    Other,
}

impl<'de> Deserialize<'de> for TopKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TopKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TopKey, E> {
                Ok(match v {
                    "model" => TopKey::Model,
                    "stream" => TopKey::Stream,
                    "stream_options" => TopKey::StreamOptions,
                    "messages" => TopKey::Messages,
                    "input" => TopKey::Input,
                    "system" | "instructions" | "tools" | "functions" => TopKey::Text,
                    "prompt" => TopKey::Prompt,
                    "max_tokens" => TopKey::MaxTokens,
                    "max_completion_tokens" => TopKey::MaxCompletionTokens,
                    "max_output_tokens" => TopKey::MaxOutputTokens,
                    _ => TopKey::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut f = Fields::default();
        while let Some(key) = map.next_key::<TopKey>()? {
            match key {
                TopKey::Model => f.model = Some(map.next_value()?),
                TopKey::Stream => f.stream = Some(map.next_value()?),
                TopKey::StreamOptions => {
                    let v: serde_json::Value = map.next_value()?;
                    f.has_stream_options = true;
                    f.include_usage =
                        v.get("include_usage") == Some(&serde_json::Value::Bool(true));
                }
                TopKey::Messages => f.messages = Some(map.next_value_seed(count(&mut f.chars))?),
                TopKey::Input => f.input = Some(map.next_value_seed(count(&mut f.chars))?),
                TopKey::Text => {
                    map.next_value_seed(count(&mut f.chars))?;
                }
                TopKey::Prompt => {
                    f.has_prompt = true;
                    map.next_value::<IgnoredAny>()?;
                }
                TopKey::MaxTokens => f.max_tokens = Some(map.next_value()?),
                TopKey::MaxCompletionTokens => f.max_completion_tokens = Some(map.next_value()?),
                TopKey::MaxOutputTokens => f.max_output_tokens = Some(map.next_value()?),
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(f)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum JsonKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// Keys whose string values are not prompt text (binary payloads, ids,
/// enum tags, opaque signatures): counting a base64 image as text would
/// overestimate its tokens a hundredfold.
const NOT_TEXT_KEYS: &[&str] = &[
    "data",
    "url",
    "image_url",
    "file_data",
    "file_id",
    "signature",
    "encrypted_content",
    "type",
    "role",
    "id",
    "call_id",
    "tool_call_id",
    "tool_use_id",
    "media_type",
    "detail",
    "format",
];

fn count(chars: &mut u64) -> Count<'_> {
    Count { chars, skip: false }
}

/// Walks any JSON value, adding the characters of its text strings to
/// `chars`; yields the value's kind.
struct Count<'c> {
    chars: &'c mut u64,
    skip: bool,
}

impl Count<'_> {
    fn add(&mut self, n: usize) {
        if !self.skip {
            *self.chars = self.chars.saturating_add(n as u64);
        }
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = JsonKind;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<JsonKind, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = JsonKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<JsonKind, E> {
        Ok(JsonKind::Bool)
    }

    // A number in a prompt is most often a token id (embeddings accept
    // arrays of them): one token, four characters.
    fn visit_i64<E>(mut self, _: i64) -> Result<JsonKind, E> {
        self.add(4);
        Ok(JsonKind::Number)
    }

    fn visit_u64<E>(mut self, _: u64) -> Result<JsonKind, E> {
        self.add(4);
        Ok(JsonKind::Number)
    }

    fn visit_f64<E>(mut self, _: f64) -> Result<JsonKind, E> {
        self.add(4);
        Ok(JsonKind::Number)
    }

    fn visit_str<E>(mut self, v: &str) -> Result<JsonKind, E> {
        // Data URLs are images and files, whatever key holds them.
        if !v.starts_with("data:") {
            self.add(v.chars().count());
        }
        Ok(JsonKind::String)
    }

    fn visit_unit<E>(self) -> Result<JsonKind, E> {
        Ok(JsonKind::Null)
    }

    fn visit_none<E>(self) -> Result<JsonKind, E> {
        Ok(JsonKind::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonKind, A::Error> {
        let Count { chars, skip } = self;
        while seq
            .next_element_seed(Count {
                chars: &mut *chars,
                skip,
            })?
            .is_some()
        {}
        Ok(JsonKind::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonKind, A::Error> {
        let Count { chars, skip } = self;
        while let Some(NotText(not_text)) = map.next_key()? {
            map.next_value_seed(Count {
                chars: &mut *chars,
                skip: skip || not_text,
            })?;
        }
        Ok(JsonKind::Object)
    }
}

/// A map key, classified against [`NOT_TEXT_KEYS`] without allocating.
struct NotText(bool);

impl<'de> Deserialize<'de> for NotText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NotText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NotText, E> {
                Ok(NotText(NOT_TEXT_KEYS.contains(&v)))
            }
        }
        d.deserialize_str(V)
    }
}
