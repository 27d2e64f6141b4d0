//! The providers' wire formats, both directions: what a request asks for
//! (model, streaming, a pre-call token estimate), the one rewrite Docket
//! makes to it, the usage a response reports (whole or streamed), and
//! errors in the shape each provider's SDK expects.

use std::fmt;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::json;

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
    fn input_field(self) -> Option<(&'static str, &'static str)> {
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
    has_stream_options: bool,
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
    has_stream_options: bool,
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

/// A request body ready to forward.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub body: Bytes,
    /// Docket added `include_usage` to a streaming chat completion, so the
    /// stream will carry a usage-only chunk the client did not ask for;
    /// [`SseTap`] removes it.
    pub strip_usage_chunk: bool,
}

const INCLUDE_USAGE: &[u8] = br#""stream_options":{"include_usage":true}"#;

/// The one change Docket makes to a request: a streaming chat completion
/// must report its token usage, which OpenAI does only when asked
/// (`stream_options.include_usage`). Every other body passes through
/// byte for byte.
pub fn prepare(api: Api, body: Bytes, shape: &CallShape) -> Prepared {
    let unchanged = |body| Prepared {
        body,
        strip_usage_chunk: false,
    };
    if api != Api::ChatCompletions || !shape.stream || shape.include_usage {
        return unchanged(body);
    }
    let injected = if shape.has_stream_options {
        merge_include_usage(&body)
    } else {
        splice_include_usage(&body)
    };
    match injected {
        Some(body) => Prepared {
            body,
            strip_usage_chunk: true,
        },
        None => {
            // Only reachable with a body `inspect` did not accept; the call
            // then goes out as sent and its usage is estimated.
            tracing::debug!("could not add stream_options.include_usage; forwarding unchanged");
            unchanged(body)
        }
    }
}

/// Inserts the key right after the opening brace: no parse, and the
/// agent's bytes stay as they were after it.
fn splice_include_usage(body: &[u8]) -> Option<Bytes> {
    let open = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if body.get(open) != Some(&b'{') {
        return None;
    }
    let rest = body.get(open + 1..)?;
    let empty = rest
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|&b| b == b'}');
    let mut out = BytesMut::with_capacity(body.len() + INCLUDE_USAGE.len() + 1);
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(INCLUDE_USAGE);
    if !empty {
        out.extend_from_slice(b",");
    }
    out.extend_from_slice(rest);
    Some(out.freeze())
}

/// The agent sent `stream_options` without `include_usage: true`: a second
/// key would be a duplicate, so this rare case re-serializes the body.
fn merge_include_usage(body: &[u8]) -> Option<Bytes> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let options = v
        .as_object_mut()?
        .entry("stream_options")
        .or_insert(serde_json::Value::Null);
    match options {
        serde_json::Value::Object(m) => {
            m.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
        }
        serde_json::Value::Null => *options = json!({"include_usage": true}),
        _ => return None,
    }
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

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
struct UsageFields {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl UsageFields {
    fn usage(&self, api: Api) -> Option<Usage> {
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

/// Which streamed format an [`SseTap`] reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum StreamFormat {
    Chat,
    Responses,
    Messages,
}

impl StreamFormat {
    fn of(api: Api) -> Self {
        match api {
            Api::Responses => Self::Responses,
            Api::Messages => Self::Messages,
            Api::ChatCompletions | Api::Embeddings | Api::Models => Self::Chat,
        }
    }

    /// Events whose data the tap reads; the rest (the bulk: text deltas)
    /// are framed but not buffered. Chat streams name no events.
    fn wants(self, event: &[u8]) -> bool {
        match self {
            Self::Chat => true,
            Self::Responses => matches!(
                event,
                b"response.created"
                    | b"response.completed"
                    | b"response.incomplete"
                    | b"response.failed"
                    | b"error"
            ),
            Self::Messages => matches!(
                event,
                b"message_start" | b"message_delta" | b"message_stop" | b"error"
            ),
        }
    }
}

/// What a stream turned out to be, once it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TapSummary {
    pub usage: Option<Usage>,
    /// The stream reached its format's last event (`[DONE]`,
    /// `response.completed`/`incomplete`/`failed`, `message_stop`); false
    /// when it was cut off.
    pub complete: bool,
    pub response_id: Option<String>,
    /// An error the provider reported inside the stream after its 200
    /// (`type: message`, shortened).
    pub stream_error: Option<String>,
}

/// Default bound on one event's buffered bytes.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Watches a streamed (server-sent events) response on its way to the
/// client: the bytes go through unchanged, except the usage-only chat
/// chunk Docket asked for, and the usage is read on the way.
///
/// Chunks may split anywhere (inside a line, a UTF-8 character or a
/// `\r\n`). Memory is bounded: an event larger than the limit is passed
/// through without being read.
pub struct SseTap {
    parser: Parser,
    strip: bool,
    /// Strip mode only: the bytes of the current, unfinished event, held
    /// back until it is known whether it is the chunk to strip.
    held: BytesMut,
    /// The current event outgrew the limit and was already sent on; it is
    /// not stripped whatever it turns out to be.
    released: bool,
    closed: bool,
}

impl fmt::Debug for SseTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseTap")
            .field("format", &self.parser.format)
            .field("strip", &self.strip)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl SseTap {
    /// `strip_usage_chunk` as [`prepare`] said.
    pub fn new(api: Api, strip_usage_chunk: bool) -> Self {
        Self::with_limit(api, strip_usage_chunk, MAX_EVENT_BYTES)
    }

    pub fn with_limit(api: Api, strip_usage_chunk: bool, max_event_bytes: usize) -> Self {
        let format = StreamFormat::of(api);
        Self {
            parser: Parser::new(format, max_event_bytes.max(64)),
            strip: strip_usage_chunk && format == StreamFormat::Chat,
            held: BytesMut::new(),
            released: false,
            closed: false,
        }
    }

    /// Takes the next upstream chunk; returns what to send the client now
    /// (possibly empty: skip sending empty chunks).
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        if !self.strip {
            self.parser.scan(&chunk, |_, _| {});
            return chunk;
        }
        let held_before = self.held.len();
        // How the event that was in progress when this chunk began ended
        // (`Some(dropped)`), if it did.
        let mut first: Option<bool> = None;
        let mut drops: Vec<(usize, usize)> = Vec::new();
        let mut seg = 0;
        let max = self.parser.max;
        let released = &mut self.released;
        self.parser.scan(&chunk, |end, drop| {
            // An event larger than the limit is never dropped, however the
            // chunks fell: a split stream may have had to release it early.
            let len = if first.is_none() {
                held_before + end
            } else {
                end - seg
            };
            let drop = drop && !*released && len <= max;
            *released = false;
            if first.is_none() {
                first = Some(drop);
            }
            if drop {
                drops.push((seg, end));
            }
            seg = end;
        });
        let held_stays = first.is_none();
        let mut send_held = held_before > 0 && first == Some(false);
        let send_tail = if self.released {
            true
        } else {
            let pending = if held_stays { held_before } else { 0 } + (chunk.len() - seg);
            if pending > self.parser.max {
                // Too big to be the usage chunk: stop holding it back.
                self.released = true;
                send_held |= held_stays && held_before > 0;
                true
            } else {
                false
            }
        };
        let end = if send_tail { chunk.len() } else { seg };

        let out = if !send_held && drops.is_empty() {
            chunk.slice(..end)
        } else {
            let mut out = BytesMut::with_capacity(held_before + end);
            if send_held {
                out.extend_from_slice(&self.held);
            }
            let mut at = 0;
            for (from, to) in &drops {
                out.extend_from_slice(&chunk[at..*from]);
                at = *to;
            }
            out.extend_from_slice(&chunk[at..end]);
            out.freeze()
        };
        if !held_stays || send_held {
            self.held.clear();
        }
        if !send_tail {
            self.held.extend_from_slice(&chunk[seg..]);
        }
        out
    }

    /// At the end of the upstream body: the bytes still held back (an
    /// event the stream did not finish, say). Call once, after the last
    /// [`Self::feed`].
    pub fn flush(&mut self) -> Bytes {
        if self.closed {
            return Bytes::new();
        }
        self.closed = true;
        // An event ended by a final `\r` is complete; anything after it
        // is an unfinished event, read leniently for its usage.
        let (pending, _) = self.parser.close();
        if pending == Some(true)
            && !self.released
            && self.strip
            && self.held.len() <= self.parser.max
        {
            self.held.clear();
        }
        self.released = false;
        self.held.split().freeze()
    }

    /// What the stream said about itself. Flushes first if needed (the
    /// bytes [`Self::flush`] would have returned are then lost).
    pub fn finish(mut self) -> TapSummary {
        let _ = self.flush();
        self.parser.seen.summary()
    }
}

/// What the parser learned so far.
#[derive(Default)]
struct Seen {
    input: Option<u64>,
    cache_creation: Option<u64>,
    cache_read: Option<u64>,
    output: Option<u64>,
    complete: bool,
    response_id: Option<String>,
    stream_error: Option<String>,
    /// Chat: the id is read from the first chunk only.
    id_tried: bool,
}

impl Seen {
    fn summary(&self) -> TapSummary {
        let usage = (self.input.is_some() || self.output.is_some()).then(|| Usage {
            input_tokens: self
                .input
                .unwrap_or(0)
                .saturating_add(self.cache_creation.unwrap_or(0))
                .saturating_add(self.cache_read.unwrap_or(0)),
            output_tokens: self.output.unwrap_or(0),
        });
        TapSummary {
            usage,
            complete: self.complete,
            response_id: self.response_id.clone(),
            stream_error: self.stream_error.clone(),
        }
    }

    fn set_error(&mut self, kind: Option<&str>, message: Option<&str>) {
        let mut s = match (kind, message) {
            (Some(k), Some(m)) => format!("{k}: {m}"),
            (Some(x), None) | (None, Some(x)) => x.to_owned(),
            (None, None) => "error".to_owned(),
        };
        if s.len() > 200 {
            let mut cut = 200;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        self.stream_error = Some(s);
    }
}

/// An incremental SSE parser (the WHATWG event-stream grammar) over bytes.
struct Parser {
    format: StreamFormat,
    max: usize,
    line: Vec<u8>,
    /// The rest of the current line is not buffered (an unwanted event's
    /// data, or too long).
    line_discard: bool,
    line_too_long: bool,
    /// The last line ended in `\r`; a `\n` next belongs to it.
    after_cr: bool,
    /// An event ended at a `\r`; it is reported after the next byte, so
    /// that a following `\n` counts as part of it.
    pending_end: Option<bool>,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The current event's data is not read (unwanted or too big).
    skip_data: bool,
    seen: Seen,
}

impl Parser {
    fn new(format: StreamFormat, max: usize) -> Self {
        Self {
            format,
            max,
            line: Vec::new(),
            line_discard: false,
            line_too_long: false,
            after_cr: false,
            pending_end: None,
            event: Vec::new(),
            data: Vec::new(),
            has_data: false,
            skip_data: false,
            seen: Seen::default(),
        }
    }

    /// Feeds bytes; `on_end(offset, drop)` is called as each event ends,
    /// with the offset in `buf` just past its last byte.
    fn scan(&mut self, buf: &[u8], mut on_end: impl FnMut(usize, bool)) {
        let mut i = 0;
        while i < buf.len() {
            if self.after_cr {
                self.after_cr = false;
                if buf[i] == b'\n' {
                    i += 1;
                }
                if let Some(drop) = self.pending_end.take() {
                    on_end(i, drop);
                }
                continue;
            }
            let rest = &buf[i..];
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.push(rest);
                    return;
                }
                Some(j) => {
                    self.push(&rest[..j]);
                    let cr = rest[j] == b'\r';
                    i += j + 1;
                    self.after_cr = cr;
                    if let Some(drop) = self.end_line() {
                        if cr {
                            self.pending_end = Some(drop);
                        } else {
                            on_end(i, drop);
                        }
                    }
                }
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.line_discard || bytes.is_empty() {
            return;
        }
        if self.line.len() + bytes.len() > self.max {
            self.line_too_long = true;
            self.line_discard = true;
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
        if self.skip_data && self.line.starts_with(b"data") {
            self.line_discard = true;
            self.line.clear();
        }
    }

    /// A line ended; `Some(drop)` if it was the blank line ending an event.
    fn end_line(&mut self) -> Option<bool> {
        if self.line_discard {
            self.line_discard = false;
            if std::mem::take(&mut self.line_too_long) {
                self.skip_data = true;
                self.data.clear();
            }
            return None;
        }
        if self.line.is_empty() {
            return Some(self.dispatch());
        }
        let line = &self.line[..];
        if line.first() != Some(&b':') {
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(c) => {
                    let v = &line[c + 1..];
                    (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &line[line.len()..]),
            };
            match name {
                b"event" => {
                    self.event.clear();
                    self.event.extend_from_slice(value);
                    if !self.format.wants(value) {
                        self.skip_data = true;
                        self.data.clear();
                    }
                }
                b"data" if !self.skip_data => {
                    self.has_data = true;
                    if self.data.len() + value.len() + 1 > self.max {
                        self.skip_data = true;
                        self.data.clear();
                    } else {
                        self.data.extend_from_slice(value);
                        self.data.push(b'\n');
                    }
                }
                _ => {}
            }
        }
        self.line.clear();
        None
    }

    /// An event is complete: read it if wanted; say whether to drop it.
    fn dispatch(&mut self) -> bool {
        let mut drop = false;
        if self.has_data && !self.skip_data {
            if self.data.last() == Some(&b'\n') {
                self.data.pop();
            }
            let data = self.data.trim_ascii();
            drop = match self.format {
                StreamFormat::Chat => on_chat(data, &mut self.seen),
                StreamFormat::Responses => {
                    on_responses(&self.event, data, &mut self.seen);
                    false
                }
                StreamFormat::Messages => {
                    on_messages(&self.event, data, &mut self.seen);
                    false
                }
            };
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
        self.skip_data = false;
        drop
    }

    /// The stream ended: `(verdict of an event ended by a final \r,
    /// whether an unfinished event was read)`.
    fn close(&mut self) -> (Option<bool>, bool) {
        let pending = self.pending_end.take();
        self.after_cr = false;
        let mut partial = false;
        if !self.line.is_empty() || self.line_discard {
            let _ = self.end_line();
        }
        if self.has_data {
            // Not dispatched by the grammar (no blank line), but its usage
            // is still the best account of the call there is.
            let _ = self.dispatch();
            partial = true;
        }
        (pending, partial)
    }
}

/// Finds `"key"` followed by `:` and `{`, i.e. a non-null object value;
/// a cheap filter before parsing a chunk.
fn has_object_field(data: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = find(&data[from..], key) {
        let after = &data[from + at + key.len()..];
        let mut it = after.iter().copied().skip_while(u8::is_ascii_whitespace);
        if it.next() == Some(b':') && it.find(|b| !b.is_ascii_whitespace()) == Some(b'{') {
            return true;
        }
        from += at + 1;
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<UsageFields>,
    #[serde(default)]
    error: Option<ErrorFields>,
}

#[derive(Deserialize)]
struct ErrorFields {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

impl ErrorFields {
    fn kind(&self) -> Option<&str> {
        self.kind
            .as_deref()
            .or_else(|| self.code.as_ref().and_then(|c| c.as_str()))
    }
}

fn take_id(seen: &mut Seen, id: Option<serde_json::Value>) {
    if seen.response_id.is_none()
        && let Some(serde_json::Value::String(s)) = id
    {
        seen.response_id = Some(s);
    }
}

/// One chat-completion chunk; returns whether it is the usage-only chunk.
fn on_chat(data: &[u8], seen: &mut Seen) -> bool {
    if data == b"[DONE]" {
        seen.complete = true;
        return false;
    }
    let want_id = !seen.id_tried;
    let has_usage = has_object_field(data, b"\"usage\"");
    let has_error = data.starts_with(b"{\"error\"");
    if !(want_id || has_usage || has_error) {
        return false;
    }
    seen.id_tried = true;
    let Ok(chunk) = serde_json::from_slice::<ChatChunk>(data) else {
        return false;
    };
    take_id(seen, chunk.id);
    if let Some(e) = &chunk.error {
        seen.set_error(e.kind(), e.message.as_deref());
    }
    let Some(usage) = chunk.usage.and_then(|u| u.usage(Api::ChatCompletions)) else {
        return false;
    };
    seen.input = Some(usage.input_tokens);
    seen.output = Some(usage.output_tokens);
    chunk.choices.is_some_and(|c| c.is_empty())
}

#[derive(Deserialize)]
struct ResponsesEvent {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    response: Option<ResponseObject>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct ResponseObject {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<UsageFields>,
    #[serde(default)]
    error: Option<ErrorFields>,
}

/// Whether an event without an `event:` line may be one the tap reads;
/// a substring test, confirmed by the `type` in the parsed data.
fn might_be(data: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|n| find(data, n).is_some())
}

fn on_responses(event: &[u8], data: &[u8], seen: &mut Seen) {
    if event.is_empty()
        && !might_be(
            data,
            &[
                b"response.created",
                b"response.completed",
                b"response.incomplete",
                b"response.failed",
                b"\"error\"",
            ],
        )
    {
        return;
    }
    let Ok(ev) = serde_json::from_slice::<ResponsesEvent>(data) else {
        return;
    };
    let kind = ev.kind.as_deref().unwrap_or("");
    let terminal = matches!(
        kind,
        "response.completed" | "response.incomplete" | "response.failed"
    );
    if let Some(r) = ev.response
        && (terminal || kind == "response.created")
    {
        take_id(seen, r.id);
        if let Some(u) = r.usage.and_then(|u| u.usage(Api::Responses)) {
            seen.input = Some(u.input_tokens);
            seen.output = Some(u.output_tokens);
        }
        if let Some(e) = &r.error {
            seen.set_error(e.kind(), e.message.as_deref());
        }
    }
    if terminal {
        seen.complete = true;
    }
    if kind == "error" {
        let code = ev.code.as_ref().and_then(|c| c.as_str());
        seen.set_error(code, ev.message.as_deref());
    }
}

#[derive(Deserialize)]
struct MessagesEvent {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<MessageObject>,
    #[serde(default)]
    usage: Option<UsageFields>,
    #[serde(default)]
    error: Option<ErrorFields>,
}

#[derive(Deserialize)]
struct MessageObject {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<UsageFields>,
}

fn on_messages(event: &[u8], data: &[u8], seen: &mut Seen) {
    if event.is_empty()
        && !might_be(
            data,
            &[
                b"message_start",
                b"message_delta",
                b"message_stop",
                b"\"error\"",
            ],
        )
    {
        return;
    }
    let Ok(ev) = serde_json::from_slice::<MessagesEvent>(data) else {
        return;
    };
    // Anthropic's counts are cumulative: `message_start` has the prompt's,
    // each `message_delta` the output so far (and, on newer versions, the
    // prompt's again); the latest value of each field is the total.
    let mut absorb = |u: UsageFields| {
        if u.input_tokens.is_some() {
            seen.input = u.input_tokens;
        }
        if u.cache_creation_input_tokens.is_some() {
            seen.cache_creation = u.cache_creation_input_tokens;
        }
        if u.cache_read_input_tokens.is_some() {
            seen.cache_read = u.cache_read_input_tokens;
        }
        if u.output_tokens.is_some() {
            seen.output = u.output_tokens;
        }
    };
    match ev.kind.as_deref() {
        Some("message_start") => {
            if let Some(m) = ev.message {
                if let Some(u) = m.usage {
                    absorb(u);
                }
                take_id(seen, m.id);
            }
        }
        Some("message_delta") => {
            if let Some(u) = ev.usage {
                absorb(u);
            }
        }
        Some("message_stop") => seen.complete = true,
        Some("error") => {
            if let Some(e) = &ev.error {
                seen.set_error(e.kind(), e.message.as_deref());
            } else {
                seen.set_error(None, None);
            }
        }
        _ => {}
    }
}

/// The `type` an SDK expects for `status`.
fn error_type(shape: ErrorShape, status: StatusCode) -> &'static str {
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

#[cfg(test)]
mod tests;
