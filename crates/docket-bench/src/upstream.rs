//! A stand-in model provider speaking OpenAI's and Anthropic's wire formats, for tests and benchmarks.
//!
//! Docket's gateway proxies model calls, but its tests and benchmarks cannot reach the real
//! providers. This small HTTP server answers the same requests in the same shapes — closely
//! enough that the official `openai` and `anthropic` Python SDKs work against it unchanged,
//! streaming included — and answers deterministically, so a test can predict the usage (and so
//! the cost) Docket should record.
//!
//! # Routes
//!
//! | route | provider | answer |
//! | --- | --- | --- |
//! | `POST /v1/chat/completions` | OpenAI | `chat.completion`, or `chat.completion.chunk` SSE when `"stream": true` |
//! | `POST /v1/responses` | OpenAI | a Responses API `response`, or its typed SSE events when streaming |
//! | `POST /v1/embeddings` | OpenAI | a list of embeddings, floats or base64 (`encoding_format`) |
//! | `GET /v1/models` | both | OpenAI's list; Anthropic's when the request carries `anthropic-version` or `x-api-key` |
//! | `POST /v1/messages` | Anthropic | a `message`, or its SSE events when `"stream": true` |
//! | `GET /_standin/requests` | — | the last `keep_requests` requests, newest last |
//! | `DELETE /_standin/requests` | — | clears that log (204) |
//!
//! # Deterministic content and usage
//!
//! A *word* is a run of non-whitespace, as Rust's `str::split_whitespace` splits (Unicode
//! `White_Space`; Python's `str.split()` agrees on everything but the ASCII separators
//! `\x1c`–`\x1f`).
//!
//! - **Reply text**: `"echo:"` followed by the first 32 words of the last `user` message, joined
//!   by single spaces (`"echo:"` alone when there is none). For the Responses API a string `input`
//!   is the user message. Only text counts: a string content, or the `text` field of each content
//!   part/block (images, tool calls and the like are skipped).
//! - **Input tokens**: the number of words across the text of *all* messages, whatever their
//!   role, plus Anthropic's `system` and the Responses API's `instructions`; at least 1. For
//!   embeddings: the words of every input string, or the number of token ids; at least 1.
//! - **Output tokens**: the number of words in the reply text.
//! - **Caps**: `max_completion_tokens` (else `max_tokens`) for chat, `max_output_tokens` for
//!   Responses, `max_tokens` for Anthropic (required there, as by the real API) cut the reply to
//!   that many words (at least 1). A cut reply ends with `finish_reason: "length"`,
//!   `stop_reason: "max_tokens"`, or a Responses `status: "incomplete"` with
//!   `incomplete_details.reason: "max_output_tokens"` (and a final `response.incomplete` event);
//!   otherwise `"stop"`, `"end_turn"`, `"completed"`.
//! - **Streaming** sends one text delta per word: `"echo:"`, then `" word"` for each further word,
//!   so the deltas concatenate to the reply text.
//! - **Embeddings**: a unit-length vector of `dimensions` (default 8) floats derived from a hash
//!   of each input; base64 is the little-endian `f32` bytes, as OpenAI sends them.
//!
//! # Faults, chosen by model name
//!
//! - `fail-<status>` (400–599, e.g. `fail-500`, `fail-429`, `fail-400`): that status with the
//!   provider's error body; 429 carries `retry-after: 0`.
//! - `slow-<ms>`: answers normally after that delay.
//! - `hang`: never answers; on shutdown it gives up with a 503 so shutdown can finish.
//! - `cut-stream`: sends the first half of the body (SSE frames, or half the JSON), then drops
//!   the connection without finishing the response.
//! - `drip-<ms>`: streams normally but waits that long between SSE frames, so a test can see
//!   whether the gateway forwards frames as they come.
//!
//! # Authentication and errors
//!
//! With a configured key, OpenAI routes want `Authorization: Bearer <key>`; Anthropic routes take
//! `x-api-key: <key>` or `Authorization: Bearer <key>` (the current `anthropic` SDK sends the
//! latter). A missing or wrong key is a 401; Anthropic routes also need an `anthropic-version`
//! header (400 without). Malformed JSON or a missing `model`/`messages`/`input` is a 400. Errors
//! have the provider's shape: OpenAI `{"error": {"message", "type", "param", "code"}}`,
//! Anthropic `{"type": "error", "error": {"type", "message"}}`.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

#[cfg(test)]
mod tests;

/// How the stand-in behaves.
#[derive(Clone)]
pub struct UpstreamConfig {
    /// The API key clients must present (OpenAI: `Authorization: Bearer`; Anthropic:
    /// `x-api-key` or `Authorization: Bearer`); `None` accepts any key, or none.
    pub api_key: Option<String>,
    /// Keep the last N requests for inspection at `/_standin/requests`; 0 turns the log (and
    /// what it costs per request) off.
    pub keep_requests: usize,
}

// Even a stand-in's key stays out of logs: it may be copied from a real configuration.
impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("keep_requests", &self.keep_requests)
            .finish()
    }
}

/// Serves the stand-in on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (a `hang` request is answered with a 503 at that point) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: UpstreamConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stopping_tx, stopping) = watch::channel(false);
    let stand = Arc::new(Stand::new(config, stopping));
    // Streams are many small writes; without TCP_NODELAY, Nagle plus delayed ACKs add ~40 ms
    // stalls that would show up as gateway latency in the benchmark.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "stand-in could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app(stand))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Wake the handlers that wait (hang, slow, drip) before axum waits for them.
            let _ = stopping_tx.send(true);
        })
        .await
}

/// The largest request body taken, as Anthropic's own limit for a messages request.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

fn app(stand: Arc<Stand>) -> Router {
    let router = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/responses", post(responses))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(messages))
        .route(
            "/_standin/requests",
            get(list_requests).delete(clear_requests),
        )
        .fallback(not_found)
        // Axum's 2 MiB default would refuse bodies the real APIs take (images in base64).
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    // Only pay for buffering and copying each request when someone wants to inspect them.
    let router = if stand.log.is_some() {
        router.layer(middleware::from_fn_with_state(stand.clone(), record))
    } else {
        router
    };
    router.with_state(stand)
}

/// The server's shared state.
struct Stand {
    api_key: Option<Box<str>>,
    log: Option<RequestLog>,
    ids: Ids,
    stopping: watch::Receiver<bool>,
}

impl Stand {
    fn new(config: UpstreamConfig, stopping: watch::Receiver<bool>) -> Self {
        Self {
            api_key: config.api_key.map(String::into_boxed_str),
            log: (config.keep_requests > 0).then(|| RequestLog {
                keep: config.keep_requests,
                entries: Mutex::new(VecDeque::with_capacity(config.keep_requests)),
            }),
            ids: Ids {
                // Ids from two runs against one ledger must not collide.
                salt: rand::random(),
                next: AtomicU64::new(1),
            },
            stopping,
        }
    }

    /// Checks the credential (and Anthropic's version header) the way each provider does.
    fn admit(&self, provider: Provider, headers: &HeaderMap) -> Result<(), ApiError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let presented = match provider {
            Provider::OpenAi => bearer,
            Provider::Anthropic => headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .or(bearer),
        };
        if let Some(expected) = &self.api_key {
            match presented {
                None => return Err(ApiError::no_key(provider)),
                Some(key) if key != &**expected => return Err(ApiError::wrong_key(provider)),
                Some(_) => {}
            }
        }
        if provider == Provider::Anthropic && !headers.contains_key("anthropic-version") {
            return Err(ApiError::invalid(
                provider,
                "anthropic-version: header is required",
            ));
        }
        Ok(())
    }

    /// Applies the fault the model name asks for, if any, and says how to send the answer.
    async fn behave(&self, provider: Provider, model: &str) -> Result<Delivery, ApiError> {
        match Behaviour::of(model) {
            Behaviour::Answer => Ok(Delivery::Whole),
            Behaviour::Fail(status) => Err(ApiError::fault(provider, status)),
            Behaviour::Slow(delay) => {
                pause(&mut self.stopping.clone(), delay).await;
                Ok(Delivery::Whole)
            }
            Behaviour::Hang => {
                // An error means the sender is gone, which only happens on shutdown too.
                let _ = self.stopping.clone().wait_for(|stopping| *stopping).await;
                Err(ApiError::shutting_down(provider))
            }
            Behaviour::CutStream => Ok(Delivery::Cut),
            Behaviour::Drip(gap) => Ok(Delivery::Drip(gap)),
        }
    }

    fn answer(&self, provider: Provider, answer: Answer, delivery: Delivery) -> Response {
        let streaming = matches!(answer.body, AnswerBody::Stream(_));
        let body = match (answer.body, delivery) {
            (AnswerBody::Json(json), Delivery::Whole | Delivery::Drip(_)) => Body::from(json),
            (AnswerBody::Json(json), Delivery::Cut) => frames_body(vec![json], Delivery::Cut, None),
            (AnswerBody::Stream(frames), delivery) => {
                frames_body(frames, delivery, Some(self.stopping.clone()))
            }
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        if streaming {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        } else {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        // The SDKs surface these as `_request_id`; the real APIs always send one.
        if let Ok(value) = HeaderValue::try_from(self.ids.format("req_", answer.serial)) {
            headers.insert(provider.request_id_header(), value);
        }
        response
    }
}

/// Unique ids for the objects the stand-in returns.
struct Ids {
    salt: u32,
    next: AtomicU64,
}

impl Ids {
    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn format(&self, prefix: &str, serial: u64) -> String {
        format!("{prefix}{:08x}{serial:012x}", self.salt)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    OpenAi,
    Anthropic,
}

impl Provider {
    /// `GET /v1/models` and unknown routes are shared, so guess from Anthropic's own headers.
    fn of(headers: &HeaderMap) -> Self {
        if headers.contains_key("anthropic-version") || headers.contains_key("x-api-key") {
            Provider::Anthropic
        } else {
            Provider::OpenAi
        }
    }

    fn request_id_header(self) -> HeaderName {
        HeaderName::from_static(match self {
            Provider::OpenAi => "x-request-id",
            Provider::Anthropic => "request-id",
        })
    }
}

/// What the model name asks the stand-in to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Answer,
    Fail(StatusCode),
    Slow(Duration),
    Hang,
    CutStream,
    Drip(Duration),
}

impl Behaviour {
    fn of(model: &str) -> Self {
        let millis = |ms: &str| ms.parse::<u64>().ok().map(Duration::from_millis);
        if model == "hang" {
            Behaviour::Hang
        } else if model == "cut-stream" {
            Behaviour::CutStream
        } else if let Some(code) = model.strip_prefix("fail-") {
            code.parse::<u16>()
                .ok()
                .filter(|code| (400..=599).contains(code))
                .and_then(|code| StatusCode::from_u16(code).ok())
                .map_or(Behaviour::Answer, Behaviour::Fail)
        } else if let Some(ms) = model.strip_prefix("slow-") {
            millis(ms).map_or(Behaviour::Answer, Behaviour::Slow)
        } else if let Some(ms) = model.strip_prefix("drip-") {
            millis(ms).map_or(Behaviour::Answer, Behaviour::Drip)
        } else {
            Behaviour::Answer
        }
    }
}

/// How the body of a successful answer goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Whole,
    Cut,
    Drip(Duration),
}

/// How long a cut stream waits before dropping, so the first half is flushed to the client
/// rather than lost with the connection.
const CUT_AFTER: Duration = Duration::from_millis(50);

/// A successful answer before delivery.
struct Answer {
    serial: u64,
    body: AnswerBody,
}

enum AnswerBody {
    Json(Bytes),
    Stream(Vec<Bytes>),
}

fn frames_body(
    frames: Vec<Bytes>,
    delivery: Delivery,
    stopping: Option<watch::Receiver<bool>>,
) -> Body {
    match (delivery, stopping) {
        (Delivery::Drip(gap), Some(stopping)) => Body::from_stream(stream::unfold(
            (frames.into_iter(), stopping, false),
            move |(mut rest, mut stopping, started)| async move {
                let frame = rest.next()?;
                if started {
                    pause(&mut stopping, gap).await;
                }
                Some((Ok::<_, Infallible>(frame), (rest, stopping, true)))
            },
        )),
        (Delivery::Cut, _) => {
            let kept = if frames.len() >= 2 {
                let half = frames.len() / 2;
                frames.into_iter().take(half).collect::<Vec<_>>()
            } else {
                frames
                    .into_iter()
                    .map(|frame| frame.slice(..frame.len() / 2))
                    .collect()
            };
            // An error from the body stream makes hyper abort the connection mid-body, which is
            // what a provider dropping a stream looks like to the client.
            let dropped = stream::once(async {
                tokio::time::sleep(CUT_AFTER).await;
                Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "cut-stream: the stand-in dropped the connection",
                ))
            });
            Body::from_stream(stream::iter(kept.into_iter().map(Ok)).chain(dropped))
        }
        _ => Body::from_stream(stream::iter(frames.into_iter().map(Ok::<_, Infallible>))),
    }
}

/// Sleeps for `delay`, or less if the server starts shutting down.
async fn pause(stopping: &mut watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        _ = stopping.wait_for(|stopping| *stopping) => {}
    }
}

/// Server-sent events written into one buffer and handed out as one `Bytes` per event, so the
/// frames of a stream share a buffer rather than costing an allocation each.
struct Frames {
    buf: BytesMut,
    ends: Vec<usize>,
}

impl Frames {
    fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(4096),
            ends: Vec::with_capacity(48),
        }
    }

    /// `event: <name>` (when named) and `data: <json>`, then the blank line that ends the event.
    fn event(
        &mut self,
        name: Option<&str>,
        data: &impl Serialize,
    ) -> Result<(), serde_json::Error> {
        if let Some(name) = name {
            self.buf.put_slice(b"event: ");
            self.buf.put_slice(name.as_bytes());
            self.buf.put_slice(b"\n");
        }
        self.buf.put_slice(b"data: ");
        serde_json::to_writer((&mut self.buf).writer(), data)?;
        self.buf.put_slice(b"\n\n");
        self.ends.push(self.buf.len());
        Ok(())
    }

    fn raw(&mut self, frame: &[u8]) {
        self.buf.put_slice(frame);
        self.ends.push(self.buf.len());
    }

    fn finish(self) -> Vec<Bytes> {
        let all = self.buf.freeze();
        let mut start = 0;
        self.ends
            .into_iter()
            .map(|end| {
                let frame = all.slice(start..end);
                start = end;
                frame
            })
            .collect()
    }
}

fn json_bytes(value: &impl Serialize) -> Result<Bytes, serde_json::Error> {
    serde_json::to_vec(value).map(Bytes::from)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

// ---------------------------------------------------------------------------------------------
// Requests: only the fields the stand-in reads; strings borrow from the body where they can.

/// A string that borrows from the request body unless it had escapes to undo.
#[derive(Deserialize)]
#[serde(transparent)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

/// A message's content: a string, or parts/blocks of which only the `text` ones count.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow)]
    text: Option<Str<'a>>,
}

impl Content<'_> {
    fn segments(&self) -> impl Iterator<Item = &str> {
        let (text, parts) = match self {
            Content::Text(text) => (Some(text.as_ref()), &[][..]),
            Content::Parts(parts) => (None, parts.as_slice()),
        };
        text.into_iter().chain(
            parts
                .iter()
                .filter_map(|part| part.text.as_ref())
                .map(|t| t.0.as_ref()),
        )
    }

    fn words(&self) -> u64 {
        self.segments()
            .map(|segment| segment.split_whitespace().count() as u64)
            .sum()
    }
}

/// A chat message, an Anthropic message or a Responses input item: whatever has a role and content.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Option<Str<'a>>,
    #[serde(borrow)]
    content: Option<Content<'a>>,
}

fn input_words<'c>(
    messages: &[Message<'_>],
    extra: impl IntoIterator<Item = &'c Content<'c>>,
) -> u64 {
    let messages: u64 = messages
        .iter()
        .filter_map(|message| message.content.as_ref())
        .map(Content::words)
        .sum();
    let extra: u64 = extra.into_iter().map(Content::words).sum();
    (messages + extra).max(1)
}

fn last_user<'m, 'a>(messages: &'m [Message<'a>]) -> Option<&'m Content<'a>> {
    messages
        .iter()
        .rev()
        .find(|message| message.role.as_ref().is_some_and(|role| role.0 == "user"))
        .and_then(|message| message.content.as_ref())
}

/// How many words of the user's message the reply echoes.
const ECHO_WORDS: usize = 32;

/// The deterministic reply, as the module docs describe it.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    text: String,
    input_tokens: u64,
    output_tokens: u64,
    /// The cap cut the reply short.
    truncated: bool,
}

impl Reply {
    fn new(last_user: Option<&Content<'_>>, input_tokens: u64, cap: Option<u64>) -> Self {
        let user_words = || {
            last_user
                .into_iter()
                .flat_map(Content::segments)
                .flat_map(str::split_whitespace)
        };
        let natural = 1 + user_words().take(ECHO_WORDS).count();
        let limit = cap.map_or(usize::MAX, |cap| {
            usize::try_from(cap.max(1)).unwrap_or(usize::MAX)
        });
        let emitted = natural.min(limit);
        let mut text = String::with_capacity(64);
        text.push_str("echo:");
        for word in user_words().take(emitted - 1) {
            text.push(' ');
            text.push_str(word);
        }
        Reply {
            text,
            input_tokens,
            output_tokens: emitted as u64,
            truncated: emitted < natural,
        }
    }

    /// One streaming delta per word: `"echo:"`, then `" word"` for each further word.
    fn deltas(&self) -> impl Iterator<Item = &str> {
        let mut rest = self.text.as_str();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let end = rest
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map_or(rest.len(), |(at, _)| at);
            let (delta, tail) = rest.split_at(end);
            rest = tail;
            Some(delta)
        })
    }
}

fn parse<'a, T: Deserialize<'a>>(provider: Provider, body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => {
            ApiError::invalid(provider, format!("invalid request body: {err}"))
        }
        _ => ApiError::invalid(
            provider,
            match provider {
                Provider::OpenAi => {
                    format!("We could not parse the JSON body of your request: {err}")
                }
                Provider::Anthropic => {
                    format!("There was an error parsing the body of your request: {err}")
                }
            },
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Shared response pieces.

/// Serializes as JSON `[]`.
type EmptyList = [(); 0];

/// Serializes as JSON `{}`.
#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: &'static str,
}

// ---------------------------------------------------------------------------------------------
// OpenAI: chat completions.

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    messages: Option<Vec<Message<'a>>>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChatChoice<'a>; 1],
    usage: ChatUsage,
    system_fingerprint: Option<&'static str>,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
    refusal: (),
    annotations: EmptyList,
}

#[derive(Serialize)]
struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
    completion_tokens_details: ReasoningTokens,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

impl ChatUsage {
    fn of(reply: &Reply) -> Self {
        ChatUsage {
            prompt_tokens: reply.input_tokens,
            completion_tokens: reply.output_tokens,
            total_tokens: reply.input_tokens + reply.output_tokens,
            prompt_tokens_details: CachedTokens { cached_tokens: 0 },
            completion_tokens_details: ReasoningTokens {
                reasoning_tokens: 0,
            },
        }
    }
}

#[derive(Serialize)]
struct ChatChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: Option<&'static str>,
    choices: &'a [ChunkChoice<'a>],
    /// Absent unless usage was asked for; then `null` on every chunk but the last, as OpenAI
    /// sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a ChatUsage>>,
}

/// What every chunk of one stream shares.
struct ChunkTemplate<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
    include_usage: bool,
}

impl ChunkTemplate<'_> {
    fn chunk<'c>(
        &'c self,
        choices: &'c [ChunkChoice<'c>],
        usage: Option<&'c ChatUsage>,
    ) -> ChatChunk<'c> {
        ChatChunk {
            id: self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model,
            system_fingerprint: None,
            choices,
            usage: self.include_usage.then_some(usage),
        }
    }
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: ChunkDelta<'a>,
    logprobs: (),
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ChunkDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

async fn chat_completions(
    State(stand): State<Arc<Stand>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let provider = Provider::OpenAi;
    match chat_completion(&stand, &headers, &body).await {
        Ok((answer, delivery)) => stand.answer(provider, answer, delivery),
        Err(err) => err.into_response(),
    }
}

async fn chat_completion(
    stand: &Stand,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Answer, Delivery), ApiError> {
    let provider = Provider::OpenAi;
    stand.admit(provider, headers)?;
    let request: ChatRequest<'_> = parse(provider, body)?;
    let model = request
        .model
        .ok_or_else(|| ApiError::missing(provider, "model"))?;
    let messages = request
        .messages
        .ok_or_else(|| ApiError::missing(provider, "messages"))?;
    let delivery = stand.behave(provider, &model.0).await?;

    let reply = Reply::new(
        last_user(&messages),
        input_words(&messages, None),
        request.max_completion_tokens.or(request.max_tokens),
    );
    let serial = stand.ids.next();
    let id = stand.ids.format("chatcmpl-", serial);
    let created = unix_now();
    let usage = ChatUsage::of(&reply);
    let finish_reason = if reply.truncated { "length" } else { "stop" };
    let encode = |err| ApiError::internal(provider, err);

    if request.stream != Some(true) {
        let completion = ChatCompletion {
            id: &id,
            object: "chat.completion",
            created,
            model: &model.0,
            choices: [ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: &reply.text,
                    refusal: (),
                    annotations: [],
                },
                logprobs: (),
                finish_reason,
            }],
            usage,
            system_fingerprint: None,
        };
        let body = AnswerBody::Json(json_bytes(&completion).map_err(encode)?);
        return Ok((Answer { serial, body }, delivery));
    }

    let include_usage = request
        .stream_options
        .and_then(|options| options.include_usage)
        .unwrap_or(false);
    let template = ChunkTemplate {
        id: &id,
        created,
        model: &model.0,
        include_usage,
    };
    let choice = |role, content, finish_reason| ChunkChoice {
        index: 0,
        delta: ChunkDelta { role, content },
        logprobs: (),
        finish_reason,
    };
    let mut frames = Frames::new();
    frames
        .event(
            None,
            &template.chunk(&[choice(Some("assistant"), Some(""), None)], None),
        )
        .map_err(encode)?;
    for delta in reply.deltas() {
        frames
            .event(
                None,
                &template.chunk(&[choice(None, Some(delta), None)], None),
            )
            .map_err(encode)?;
    }
    frames
        .event(
            None,
            &template.chunk(&[choice(None, None, Some(finish_reason))], None),
        )
        .map_err(encode)?;
    if include_usage {
        frames
            .event(None, &template.chunk(&[], Some(&usage)))
            .map_err(encode)?;
    }
    frames.raw(b"data: [DONE]\n\n");
    let body = AnswerBody::Stream(frames.finish());
    Ok((Answer { serial, body }, delivery))
}

// ---------------------------------------------------------------------------------------------
// OpenAI: the Responses API.

#[derive(Deserialize)]
struct ResponsesRequest<'a> {
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    input: Option<ResponsesInput<'a>>,
    #[serde(borrow)]
    instructions: Option<Str<'a>>,
    stream: Option<bool>,
    max_output_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ResponsesInput<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Items(#[serde(borrow)] Vec<Message<'a>>),
}

#[derive(Serialize)]
struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    error: (),
    incomplete_details: Option<IncompleteDetails>,
    instructions: Option<&'a str>,
    max_output_tokens: Option<u64>,
    model: &'a str,
    output: &'a [OutputMessage<'a>],
    parallel_tool_calls: bool,
    previous_response_id: (),
    reasoning: ReasoningConfig,
    store: bool,
    temperature: f64,
    text: TextConfig,
    tool_choice: &'static str,
    tools: EmptyList,
    top_p: f64,
    truncation: &'static str,
    usage: Option<&'a ResponseUsage>,
    user: (),
    metadata: EmptyObject,
}

#[derive(Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

#[derive(Serialize)]
struct ReasoningConfig {
    effort: (),
    summary: (),
}

#[derive(Serialize)]
struct TextConfig {
    format: TypeOnly,
}

#[derive(Serialize)]
struct OutputMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    status: &'static str,
    role: &'static str,
    content: &'a [OutputText<'a>],
}

#[derive(Serialize)]
struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: EmptyList,
    logprobs: EmptyList,
}

#[derive(Serialize)]
struct ResponseUsage {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
}

/// The Responses API's typed stream events, numbered as they are sent (see [`Numbered`]).
#[derive(Serialize)]
#[serde(tag = "type")]
enum ResponseEvent<'a> {
    #[serde(rename = "response.created")]
    Created { response: &'a ResponseObject<'a> },
    #[serde(rename = "response.in_progress")]
    InProgress { response: &'a ResponseObject<'a> },
    #[serde(rename = "response.output_item.added")]
    ItemAdded {
        output_index: u32,
        item: &'a OutputMessage<'a>,
    },
    #[serde(rename = "response.content_part.added")]
    PartAdded {
        item_id: &'a str,
        output_index: u32,
        content_index: u32,
        part: &'a OutputText<'a>,
    },
    #[serde(rename = "response.output_text.delta")]
    TextDelta {
        item_id: &'a str,
        output_index: u32,
        content_index: u32,
        delta: &'a str,
        logprobs: EmptyList,
    },
    #[serde(rename = "response.output_text.done")]
    TextDone {
        item_id: &'a str,
        output_index: u32,
        content_index: u32,
        text: &'a str,
        logprobs: EmptyList,
    },
    #[serde(rename = "response.content_part.done")]
    PartDone {
        item_id: &'a str,
        output_index: u32,
        content_index: u32,
        part: &'a OutputText<'a>,
    },
    #[serde(rename = "response.output_item.done")]
    ItemDone {
        output_index: u32,
        item: &'a OutputMessage<'a>,
    },
    #[serde(rename = "response.completed")]
    Completed { response: &'a ResponseObject<'a> },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: &'a ResponseObject<'a> },
}

/// An event with its place in the stream; the SDK's stream helpers read events in this order.
#[derive(Serialize)]
struct Numbered<'e, 'a> {
    #[serde(flatten)]
    event: &'e ResponseEvent<'a>,
    sequence_number: u32,
}

impl ResponseEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            ResponseEvent::Created { .. } => "response.created",
            ResponseEvent::InProgress { .. } => "response.in_progress",
            ResponseEvent::ItemAdded { .. } => "response.output_item.added",
            ResponseEvent::PartAdded { .. } => "response.content_part.added",
            ResponseEvent::TextDelta { .. } => "response.output_text.delta",
            ResponseEvent::TextDone { .. } => "response.output_text.done",
            ResponseEvent::PartDone { .. } => "response.content_part.done",
            ResponseEvent::ItemDone { .. } => "response.output_item.done",
            ResponseEvent::Completed { .. } => "response.completed",
            ResponseEvent::Incomplete { .. } => "response.incomplete",
        }
    }
}

async fn responses(State(stand): State<Arc<Stand>>, headers: HeaderMap, body: Bytes) -> Response {
    let provider = Provider::OpenAi;
    match response(&stand, &headers, &body).await {
        Ok((answer, delivery)) => stand.answer(provider, answer, delivery),
        Err(err) => err.into_response(),
    }
}

async fn response(
    stand: &Stand,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Answer, Delivery), ApiError> {
    let provider = Provider::OpenAi;
    stand.admit(provider, headers)?;
    let request: ResponsesRequest<'_> = parse(provider, body)?;
    let model = request
        .model
        .ok_or_else(|| ApiError::missing(provider, "model"))?;
    let input = request
        .input
        .ok_or_else(|| ApiError::missing(provider, "input"))?;
    let delivery = stand.behave(provider, &model.0).await?;

    let instructions = request.instructions.map(|text| Content::Text(text.0));
    let reply = match &input {
        ResponsesInput::Text(text) => {
            let content = Content::Text(Cow::Borrowed(text));
            let words = input_words(
                &[],
                [Some(&content), instructions.as_ref()]
                    .into_iter()
                    .flatten(),
            );
            Reply::new(Some(&content), words, request.max_output_tokens)
        }
        ResponsesInput::Items(items) => Reply::new(
            last_user(items),
            input_words(items, instructions.as_ref()),
            request.max_output_tokens,
        ),
    };
    let instructions = match &instructions {
        Some(Content::Text(text)) => Some(text.as_ref()),
        _ => None,
    };

    let serial = stand.ids.next();
    let id = stand.ids.format("resp_", serial);
    let item_id = stand.ids.format("msg_", serial);
    let usage = ResponseUsage {
        input_tokens: reply.input_tokens,
        input_tokens_details: CachedTokens { cached_tokens: 0 },
        output_tokens: reply.output_tokens,
        output_tokens_details: ReasoningTokens {
            reasoning_tokens: 0,
        },
        total_tokens: reply.input_tokens + reply.output_tokens,
    };
    let (status, item_status) = if reply.truncated {
        ("incomplete", "incomplete")
    } else {
        ("completed", "completed")
    };
    let text = [OutputText {
        kind: "output_text",
        text: &reply.text,
        annotations: [],
        logprobs: [],
    }];
    let message = [OutputMessage {
        kind: "message",
        id: &item_id,
        status: item_status,
        role: "assistant",
        content: &text,
    }];
    let object = |status, output, usage| ResponseObject {
        id: &id,
        object: "response",
        created_at: unix_now(),
        status,
        error: (),
        incomplete_details: (status == "incomplete").then_some(IncompleteDetails {
            reason: "max_output_tokens",
        }),
        instructions,
        max_output_tokens: request.max_output_tokens,
        model: &model.0,
        output,
        parallel_tool_calls: true,
        previous_response_id: (),
        reasoning: ReasoningConfig {
            effort: (),
            summary: (),
        },
        store: true,
        temperature: 1.0,
        text: TextConfig {
            format: TypeOnly { kind: "text" },
        },
        tool_choice: "auto",
        tools: [],
        top_p: 1.0,
        truncation: "disabled",
        usage,
        user: (),
        metadata: EmptyObject {},
    };
    let done = object(status, &message, Some(&usage));
    let encode = |err| ApiError::internal(provider, err);

    if request.stream != Some(true) {
        let body = AnswerBody::Json(json_bytes(&done).map_err(encode)?);
        return Ok((Answer { serial, body }, delivery));
    }

    let started = object("in_progress", &[], None);
    let empty_text = [OutputText {
        kind: "output_text",
        text: "",
        annotations: [],
        logprobs: [],
    }];
    let in_progress = OutputMessage {
        kind: "message",
        id: &item_id,
        status: "in_progress",
        role: "assistant",
        content: &[],
    };
    let (item_id, output_index, content_index) = (item_id.as_str(), 0, 0);
    let mut events = Vec::with_capacity(reply.output_tokens as usize + 9);
    events.push(ResponseEvent::Created { response: &started });
    events.push(ResponseEvent::InProgress { response: &started });
    events.push(ResponseEvent::ItemAdded {
        output_index,
        item: &in_progress,
    });
    events.push(ResponseEvent::PartAdded {
        item_id,
        output_index,
        content_index,
        part: &empty_text[0],
    });
    events.extend(reply.deltas().map(|delta| ResponseEvent::TextDelta {
        item_id,
        output_index,
        content_index,
        delta,
        logprobs: [],
    }));
    events.push(ResponseEvent::TextDone {
        item_id,
        output_index,
        content_index,
        text: &reply.text,
        logprobs: [],
    });
    events.push(ResponseEvent::PartDone {
        item_id,
        output_index,
        content_index,
        part: &text[0],
    });
    events.push(ResponseEvent::ItemDone {
        output_index,
        item: &message[0],
    });
    events.push(if reply.truncated {
        ResponseEvent::Incomplete { response: &done }
    } else {
        ResponseEvent::Completed { response: &done }
    });
    let mut frames = Frames::new();
    for (sequence_number, event) in (0..).zip(&events) {
        let numbered = Numbered {
            event,
            sequence_number,
        };
        frames
            .event(Some(event.name()), &numbered)
            .map_err(encode)?;
    }
    let body = AnswerBody::Stream(frames.finish());
    Ok((Answer { serial, body }, delivery))
}

// ---------------------------------------------------------------------------------------------
// OpenAI: embeddings.

#[derive(Deserialize)]
struct EmbeddingsRequest<'a> {
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    input: Option<EmbeddingInput<'a>>,
    #[serde(borrow)]
    encoding_format: Option<Str<'a>>,
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Texts(#[serde(borrow)] Vec<Str<'a>>),
    Tokens(Vec<u64>),
    TokenLists(Vec<Vec<u64>>),
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingObject>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingObject {
    object: &'static str,
    index: usize,
    embedding: EmbeddingValue,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbeddingValue {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

const DEFAULT_DIMENSIONS: usize = 8;
const MAX_DIMENSIONS: usize = 4096;

async fn embeddings(State(stand): State<Arc<Stand>>, headers: HeaderMap, body: Bytes) -> Response {
    let provider = Provider::OpenAi;
    match embedding(&stand, &headers, &body).await {
        Ok((answer, delivery)) => stand.answer(provider, answer, delivery),
        Err(err) => err.into_response(),
    }
}

async fn embedding(
    stand: &Stand,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Answer, Delivery), ApiError> {
    let provider = Provider::OpenAi;
    stand.admit(provider, headers)?;
    let request: EmbeddingsRequest<'_> = parse(provider, body)?;
    let model = request
        .model
        .ok_or_else(|| ApiError::missing(provider, "model"))?;
    let input = request
        .input
        .ok_or_else(|| ApiError::missing(provider, "input"))?;
    let base64 = match request.encoding_format.as_ref().map(|f| f.0.as_ref()) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                provider,
                format!(
                    "Invalid value for 'encoding_format': '{other}'. Expected 'float' or 'base64'."
                ),
            ));
        }
    };
    let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if !(1..=MAX_DIMENSIONS).contains(&dimensions) {
        return Err(ApiError::invalid(
            provider,
            format!("'dimensions' must be between 1 and {MAX_DIMENSIONS}"),
        ));
    }
    let delivery = stand.behave(provider, &model.0).await?;

    let encode = |vector: Vec<f32>| {
        if base64 {
            EmbeddingValue::Base64(base64_f32(&vector))
        } else {
            EmbeddingValue::Floats(vector)
        }
    };
    let (data, tokens): (Vec<EmbeddingObject>, u64) = match &input {
        EmbeddingInput::Text(text) => (
            vec![embedding_object(
                0,
                encode(embed(text.as_bytes(), dimensions)),
            )],
            text.split_whitespace().count() as u64,
        ),
        EmbeddingInput::Texts(texts) => (
            texts
                .iter()
                .enumerate()
                .map(|(index, text)| {
                    embedding_object(index, encode(embed(text.0.as_bytes(), dimensions)))
                })
                .collect(),
            texts
                .iter()
                .map(|text| text.0.split_whitespace().count() as u64)
                .sum(),
        ),
        EmbeddingInput::Tokens(tokens) => (
            vec![embedding_object(
                0,
                encode(embed_tokens(tokens, dimensions)),
            )],
            tokens.len() as u64,
        ),
        EmbeddingInput::TokenLists(lists) => (
            lists
                .iter()
                .enumerate()
                .map(|(index, tokens)| {
                    embedding_object(index, encode(embed_tokens(tokens, dimensions)))
                })
                .collect(),
            lists.iter().map(|tokens| tokens.len() as u64).sum(),
        ),
    };
    let tokens = tokens.max(1);
    let list = EmbeddingList {
        object: "list",
        data,
        model: &model.0,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    let body = json_bytes(&list).map_err(|err| ApiError::internal(provider, err))?;
    let serial = stand.ids.next();
    Ok((
        Answer {
            serial,
            body: AnswerBody::Json(body),
        },
        delivery,
    ))
}

fn embedding_object(index: usize, embedding: EmbeddingValue) -> EmbeddingObject {
    EmbeddingObject {
        object: "embedding",
        index,
        embedding,
    }
}

fn embed_tokens(tokens: &[u64], dimensions: usize) -> Vec<f32> {
    let bytes: Vec<u8> = tokens
        .iter()
        .flat_map(|token| token.to_le_bytes())
        .collect();
    embed(&bytes, dimensions)
}

/// A deterministic unit vector for `seed`: FNV-1a of the input, spread by splitmix64.
fn embed(seed: &[u8], dimensions: usize) -> Vec<f32> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in seed {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut vector: Vec<f32> = (0..dimensions as u64)
        .map(|i| {
            let mut z = hash.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // The top 24 bits fit an f32 exactly: a value in [-1, 1).
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut vector {
            *x /= norm;
        }
    }
    vector
}

/// Standard base64 (with padding) of the vector's little-endian `f32` bytes, which is what the
/// OpenAI SDK decodes; written out here rather than pulling in a crate for one encoder.
fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64(&bytes)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[(n >> shift & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Models (both providers).

const OPENAI_MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "o4-mini",
    "text-embedding-3-small",
];

const ANTHROPIC_MODELS: &[(&str, &str)] = &[
    ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
    ("claude-opus-4-1", "Claude Opus 4.1"),
];

#[derive(Serialize)]
struct OpenAiModel {
    id: &'static str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

#[derive(Serialize)]
struct AnthropicModel {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'static str,
    display_name: &'static str,
    created_at: &'static str,
}

#[derive(Serialize)]
struct OpenAiModelList {
    object: &'static str,
    data: Vec<OpenAiModel>,
}

#[derive(Serialize)]
struct AnthropicModelList {
    data: Vec<AnthropicModel>,
    has_more: bool,
    first_id: Option<&'static str>,
    last_id: Option<&'static str>,
}

async fn models(State(stand): State<Arc<Stand>>, headers: HeaderMap) -> Response {
    let provider = Provider::of(&headers);
    if let Err(err) = stand.admit(provider, &headers) {
        return err.into_response();
    }
    let body = match provider {
        Provider::OpenAi => json_bytes(&OpenAiModelList {
            object: "list",
            data: OPENAI_MODELS
                .iter()
                .map(|&id| OpenAiModel {
                    id,
                    object: "model",
                    created: 1_700_000_000,
                    owned_by: "docket-standin",
                })
                .collect(),
        }),
        Provider::Anthropic => json_bytes(&AnthropicModelList {
            data: ANTHROPIC_MODELS
                .iter()
                .map(|&(id, display_name)| AnthropicModel {
                    kind: "model",
                    id,
                    display_name,
                    created_at: "2025-01-01T00:00:00Z",
                })
                .collect(),
            has_more: false,
            first_id: ANTHROPIC_MODELS.first().map(|&(id, _)| id),
            last_id: ANTHROPIC_MODELS.last().map(|&(id, _)| id),
        }),
    };
    match body {
        Ok(body) => {
            let answer = Answer {
                serial: stand.ids.next(),
                body: AnswerBody::Json(body),
            };
            stand.answer(provider, answer, Delivery::Whole)
        }
        Err(err) => ApiError::internal(provider, err).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic: messages.

#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(borrow)]
    system: Option<Content<'a>>,
    max_tokens: Option<u64>,
    stream: Option<bool>,
}

#[derive(Serialize)]
struct AnthropicMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: &'a [TextBlock<'a>],
    stop_reason: Option<&'static str>,
    stop_sequence: (),
    usage: AnthropicUsage,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct AnthropicUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnthropicEvent<'a> {
    MessageStart {
        message: &'a AnthropicMessage<'a>,
    },
    ContentBlockStart {
        index: u32,
        content_block: TextBlock<'a>,
    },
    Ping,
    ContentBlockDelta {
        index: u32,
        delta: TextBlock<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: StopDelta,
        usage: OutputUsage,
    },
    MessageStop,
}

impl AnthropicEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            AnthropicEvent::MessageStart { .. } => "message_start",
            AnthropicEvent::ContentBlockStart { .. } => "content_block_start",
            AnthropicEvent::Ping => "ping",
            AnthropicEvent::ContentBlockDelta { .. } => "content_block_delta",
            AnthropicEvent::ContentBlockStop { .. } => "content_block_stop",
            AnthropicEvent::MessageDelta { .. } => "message_delta",
            AnthropicEvent::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: (),
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

async fn messages(State(stand): State<Arc<Stand>>, headers: HeaderMap, body: Bytes) -> Response {
    let provider = Provider::Anthropic;
    match message(&stand, &headers, &body).await {
        Ok((answer, delivery)) => stand.answer(provider, answer, delivery),
        Err(err) => err.into_response(),
    }
}

async fn message(
    stand: &Stand,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Answer, Delivery), ApiError> {
    let provider = Provider::Anthropic;
    stand.admit(provider, headers)?;
    let request: MessagesRequest<'_> = parse(provider, body)?;
    let model = request
        .model
        .ok_or_else(|| ApiError::missing(provider, "model"))?;
    let messages = request
        .messages
        .ok_or_else(|| ApiError::missing(provider, "messages"))?;
    // The real API rejects a request without it, so a gateway that drops it should find out here.
    let max_tokens = request
        .max_tokens
        .ok_or_else(|| ApiError::missing(provider, "max_tokens"))?;
    let delivery = stand.behave(provider, &model.0).await?;

    let reply = Reply::new(
        last_user(&messages),
        input_words(&messages, request.system.as_ref()),
        Some(max_tokens),
    );
    let serial = stand.ids.next();
    let id = stand.ids.format("msg_", serial);
    let stop_reason = if reply.truncated {
        "max_tokens"
    } else {
        "end_turn"
    };
    let usage = |output_tokens| AnthropicUsage {
        input_tokens: reply.input_tokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens,
    };
    let text = [TextBlock {
        kind: "text",
        text: &reply.text,
    }];
    let encode = |err| ApiError::internal(provider, err);

    if request.stream != Some(true) {
        let message = AnthropicMessage {
            id: &id,
            kind: "message",
            role: "assistant",
            model: &model.0,
            content: &text,
            stop_reason: Some(stop_reason),
            stop_sequence: (),
            usage: usage(reply.output_tokens),
        };
        let body = AnswerBody::Json(json_bytes(&message).map_err(encode)?);
        return Ok((Answer { serial, body }, delivery));
    }

    // As the real API does: the start carries the input tokens and a placeholder output count,
    // the final count comes in `message_delta`.
    let started = AnthropicMessage {
        id: &id,
        kind: "message",
        role: "assistant",
        model: &model.0,
        content: &[],
        stop_reason: None,
        stop_sequence: (),
        usage: usage(1),
    };
    let mut frames = Frames::new();
    let mut send = |event: AnthropicEvent<'_>| frames.event(Some(event.name()), &event);
    send(AnthropicEvent::MessageStart { message: &started }).map_err(encode)?;
    send(AnthropicEvent::ContentBlockStart {
        index: 0,
        content_block: TextBlock {
            kind: "text",
            text: "",
        },
    })
    .map_err(encode)?;
    send(AnthropicEvent::Ping).map_err(encode)?;
    for delta in reply.deltas() {
        send(AnthropicEvent::ContentBlockDelta {
            index: 0,
            delta: TextBlock {
                kind: "text_delta",
                text: delta,
            },
        })
        .map_err(encode)?;
    }
    send(AnthropicEvent::ContentBlockStop { index: 0 }).map_err(encode)?;
    send(AnthropicEvent::MessageDelta {
        delta: StopDelta {
            stop_reason,
            stop_sequence: (),
        },
        usage: OutputUsage {
            output_tokens: reply.output_tokens,
        },
    })
    .map_err(encode)?;
    send(AnthropicEvent::MessageStop).map_err(encode)?;
    let body = AnswerBody::Stream(frames.finish());
    Ok((Answer { serial, body }, delivery))
}

// ---------------------------------------------------------------------------------------------
// Errors in each provider's shape.

struct ApiError {
    provider: Provider,
    status: StatusCode,
    /// OpenAI's `error.type` or Anthropic's `error.type`.
    kind: &'static str,
    message: Cow<'static, str>,
    /// OpenAI's `error.param`.
    param: Option<&'static str>,
    /// OpenAI's `error.code`.
    code: Option<&'static str>,
}

impl ApiError {
    fn invalid(provider: Provider, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            provider,
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: None,
            code: None,
        }
    }

    fn missing(provider: Provider, field: &'static str) -> Self {
        match provider {
            Provider::OpenAi => ApiError {
                param: Some(field),
                code: Some("missing_required_parameter"),
                ..ApiError::invalid(provider, format!("Missing required parameter: '{field}'."))
            },
            Provider::Anthropic => ApiError::invalid(provider, format!("{field}: Field required")),
        }
    }

    fn no_key(provider: Provider) -> Self {
        let (kind, message) = match provider {
            Provider::OpenAi => (
                "invalid_request_error",
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            ),
            Provider::Anthropic => ("authentication_error", "x-api-key header is required"),
        };
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind,
            ..ApiError::invalid(provider, message)
        }
    }

    fn wrong_key(provider: Provider) -> Self {
        let (kind, message) = match provider {
            Provider::OpenAi => ("invalid_request_error", "Incorrect API key provided."),
            Provider::Anthropic => ("authentication_error", "invalid x-api-key"),
        };
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind,
            code: (provider == Provider::OpenAi).then_some("invalid_api_key"),
            ..ApiError::invalid(provider, message)
        }
    }

    /// The failure a `fail-<status>` model asks for, typed as each provider types that status.
    fn fault(provider: Provider, status: StatusCode) -> Self {
        let (kind, code) = match provider {
            Provider::OpenAi => match status.as_u16() {
                429 => ("requests", Some("rate_limit_exceeded")),
                401 => ("invalid_request_error", Some("invalid_api_key")),
                500..=599 => ("server_error", None),
                _ => ("invalid_request_error", None),
            },
            Provider::Anthropic => (
                match status.as_u16() {
                    401 => "authentication_error",
                    402 => "billing_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    504 => "timeout_error",
                    529 => "overloaded_error",
                    500..=599 => "api_error",
                    _ => "invalid_request_error",
                },
                None,
            ),
        };
        ApiError {
            status,
            kind,
            code,
            ..ApiError::invalid(
                provider,
                format!(
                    "the stand-in failed on purpose with {} (model fail-{})",
                    status,
                    status.as_u16()
                ),
            )
        }
    }

    fn shutting_down(provider: Provider) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: match provider {
                Provider::OpenAi => "server_error",
                Provider::Anthropic => "api_error",
            },
            ..ApiError::invalid(provider, "the stand-in is shutting down")
        }
    }

    fn internal(provider: Provider, err: serde_json::Error) -> Self {
        tracing::error!(%err, "stand-in could not encode its answer");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: match provider {
                Provider::OpenAi => "server_error",
                Provider::Anthropic => "api_error",
            },
            ..ApiError::invalid(
                provider,
                "The server had an error while processing your request.",
            )
        }
    }
}

#[derive(Serialize)]
struct OpenAiErrorBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

#[derive(Serialize)]
struct AnthropicErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match self.provider {
            Provider::OpenAi => (
                self.status,
                axum::Json(OpenAiErrorBody {
                    error: OpenAiError {
                        message: &self.message,
                        kind: self.kind,
                        param: self.param,
                        code: self.code,
                    },
                }),
            )
                .into_response(),
            Provider::Anthropic => (
                self.status,
                axum::Json(AnthropicErrorBody {
                    kind: "error",
                    error: AnthropicError {
                        kind: self.kind,
                        message: &self.message,
                    },
                }),
            )
                .into_response(),
        };
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // Retry at once: a test of the gateway's retry handling should not sleep.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        }
        response
    }
}

async fn not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let provider = Provider::of(&headers);
    let message = match provider {
        Provider::OpenAi => format!("Invalid URL ({method} {path})"),
        Provider::Anthropic => format!("Not found: {method} {path}"),
    };
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: match provider {
            Provider::OpenAi => "invalid_request_error",
            Provider::Anthropic => "not_found_error",
        },
        ..ApiError::invalid(provider, message)
    }
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// The request log, for tests to see what the gateway actually sent.

/// A bounded ring of the latest requests; the lock is held only to push, copy out or clear.
struct RequestLog {
    keep: usize,
    entries: Mutex<VecDeque<Logged>>,
}

#[derive(Clone)]
struct Logged {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl RequestLog {
    fn push(&self, entry: Logged) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.keep {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    fn snapshot(&self) -> Vec<Logged> {
        self.entries.lock().iter().cloned().collect()
    }

    fn clear(&self) {
        self.entries.lock().clear();
    }
}

async fn record(State(stand): State<Arc<Stand>>, request: Request, next: Next) -> Response {
    let Some(log) = &stand.log else {
        return next.run(request).await;
    };
    if request.uri().path().starts_with("/_standin/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    log.push(Logged {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    next.run(Request::from_parts(parts, Body::from(body))).await
}

#[derive(Serialize)]
struct LoggedView<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: BTreeMap<&'a str, String>,
    body: serde_json::Value,
}

async fn list_requests(State(stand): State<Arc<Stand>>) -> Response {
    let entries = stand
        .log
        .as_ref()
        .map(RequestLog::snapshot)
        .unwrap_or_default();
    let views: Vec<LoggedView<'_>> = entries
        .iter()
        .map(|entry| {
            let mut headers: BTreeMap<&str, String> = BTreeMap::new();
            for (name, value) in &entry.headers {
                let value = String::from_utf8_lossy(value.as_bytes());
                headers
                    .entry(name.as_str())
                    .and_modify(|joined| {
                        joined.push_str(", ");
                        joined.push_str(&value);
                    })
                    .or_insert_with(|| value.into_owned());
            }
            LoggedView {
                method: entry.method.as_str(),
                path: &entry.path,
                query: entry.query.as_deref(),
                headers,
                body: serde_json::from_slice(&entry.body).unwrap_or(serde_json::Value::Null),
            }
        })
        .collect();
    axum::Json(views).into_response()
}

async fn clear_requests(State(stand): State<Arc<Stand>>) -> StatusCode {
    if let Some(log) = &stand.log {
        log.clear();
    }
    StatusCode::NO_CONTENT
}
