//! The forwarder: sends an agent's call to its model provider with
//! Docket's credential in place of the agent's, and hands back the
//! provider's answer as a stream, under the configured timeouts.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::config::{GatewayConfig, ProviderKind};
use super::wire::{self, Api, SseTap, TapSummary};

/// A response body on its way from the provider.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, ForwardError>> + Send + 'static>>;

/// Largest non-streamed provider response [`collect`] should be asked to
/// hold; far above any real completion or embedding batch.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Sent to Anthropic when the client names no API version: the SDKs
/// always send one, so this only serves hand-written clients.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Why a call did not get an answer from the provider. None of these
/// carries the provider key: the key lives only in a sensitive header
/// value, which reqwest's errors never print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("no provider named `{0}` is configured")]
    NoProvider(String),
    #[error("Docket has no API key for provider `{0}`")]
    NoKey(String),
    #[error("upstream provider unreachable: {0}")]
    Connect(String),
    #[error("upstream provider did not answer in time")]
    Timeout,
    #[error("upstream provider's response failed: {0}")]
    Body(String),
}

impl ForwardError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoProvider(_) | Self::NoKey(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Connect(_) | Self::Body(_) => StatusCode::BAD_GATEWAY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NoProvider(_) => "no_provider",
            Self::NoKey(_) => "no_provider_key",
            Self::Connect(_) => "upstream_unreachable",
            Self::Timeout => "upstream_timeout",
            Self::Body(_) => "upstream_failed",
        }
    }

    /// The error in `api`'s shape, so the agent's SDK raises its usual
    /// exception (and retries what is worth retrying).
    pub fn to_response(&self, api: Api) -> Response {
        let mut extra = HeaderMap::new();
        if matches!(self, Self::NoProvider(_) | Self::NoKey(_)) {
            // A configuration problem: the SDKs' automatic retries of a
            // 500 would only repeat it.
            extra.insert(
                HeaderName::from_static("x-should-retry"),
                HeaderValue::from_static("false"),
            );
        }
        wire::error_response_with_headers(api, self.status(), self.code(), &self.to_string(), extra)
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        // Connect before timeout: a connect timeout means the provider is
        // unreachable, not slow.
        if e.is_connect() {
            return Self::Connect(describe(e));
        }
        if e.is_timeout() {
            return Self::Timeout;
        }
        if e.is_body() || e.is_decode() {
            Self::Body(describe(e))
        } else {
            Self::Connect(describe(e))
        }
    }
}

/// The error and its causes on one line, without the URL (which is the
/// operator's business, not the agent's).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// The credential one provider gets.
enum Credential {
    /// The provider takes no key (`api_key`/`api_key_env` both unset).
    None,
    /// A sensitive header value: `Debug` prints `Sensitive`.
    Header(HeaderName, HeaderValue),
    /// A key was configured via `api_key_env` but the variable is unset.
    Missing,
}

struct Upstream {
    kind: ProviderKind,
    base_url: String,
    client: reqwest::Client,
    /// `base_url + api.path()` for each [`Api`], parsed once.
    urls: Vec<reqwest::Url>,
    credential: Credential,
    timeout: Duration,
}

/// Sends calls to the configured providers. Build one at startup and share
/// it: it holds the connection pools.
pub struct Forwarder {
    upstreams: BTreeMap<String, Upstream>,
}

impl fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (name, u) in &self.upstreams {
            let key = match u.credential {
                Credential::None => "none",
                Credential::Header(..) => "set",
                Credential::Missing => "missing",
            };
            m.entry(name, &format_args!("{} {} (key {key})", u.kind, u.base_url));
        }
        m.finish()
    }
}

/// One call to forward.
#[derive(Debug, Clone)]
pub struct Outbound<'a> {
    /// A key of `gateway.providers`, normally from [`GatewayConfig::route_for`].
    pub provider: &'a str,
    pub api: Api,
    /// The agent's request headers; only end-to-end ones the provider
    /// understands go on (see [`forwardable`]).
    pub headers: &'a HeaderMap,
    /// Sent as is (for POST APIs), e.g. [`wire::Prepared::body`].
    pub body: Bytes,
    /// A streamed call: the provider's timeout bounds the wait for the
    /// response head and each silence between chunks, not the whole call.
    pub stream: bool,
}

/// The provider's answer: status and headers as they came (less
/// hop-by-hop and provider-private ones), body still streaming.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: BodyStream,
}

impl fmt::Debug for UpstreamResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl UpstreamResponse {
    /// A `text/event-stream` body: the one to watch with an [`SseTap`].
    pub fn is_event_stream(&self) -> bool {
        is_event_stream(&self.headers)
    }

    /// Passes the answer to the client as it arrives.
    pub fn into_response(self) -> Response {
        response(self.status, self.headers, Body::from_stream(self.body))
    }
}

pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// A response to the client from a provider's status and headers and a
/// body (a collected one, or a [`tap_stream`]).
pub fn response(status: StatusCode, headers: HeaderMap, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

impl Forwarder {
    pub fn new(config: &GatewayConfig) -> Result<Self, String> {
        config.validate()?;
        let mut upstreams = BTreeMap::new();
        for (name, p) in &config.providers {
            let client = reqwest::Client::builder()
                // Egress goes where the config says, not via whatever
                // HTTPS_PROXY the server process inherited.
                .no_proxy()
                .connect_timeout(Duration::from_millis(p.connect_timeout_ms))
                .pool_idle_timeout(Duration::from_secs(90))
                .tcp_nodelay(true)
                .tcp_keepalive(Duration::from_secs(30))
                // A redirect would resend the credential to wherever the
                // provider points; providers' APIs do not redirect.
                .redirect(reqwest::redirect::Policy::none())
                .referer(false)
                .http1_only()
                .use_rustls_tls()
                .build()
                .map_err(|e| {
                    format!("gateway.providers.{name}: cannot build an HTTP client: {e}")
                })?;
            let base = p.base_url.trim_end_matches('/');
            let urls = Api::ALL
                .iter()
                .map(|api| {
                    reqwest::Url::parse(&format!("{base}{}", api.path()))
                        .map_err(|e| format!("gateway.providers.{name}.base_url: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let credential = match config.api_key(name) {
                Some(key) => credential(p.kind, key.expose_secret()).ok_or_else(|| {
                    format!(
                        "gateway.providers.{name}: the API key contains characters an HTTP header cannot carry"
                    )
                })?,
                None => match &p.api_key_env {
                    Some(var) => {
                        tracing::warn!(
                            provider = %name,
                            env = %var,
                            "no API key for this provider (the variable is unset or empty); its calls will fail"
                        );
                        Credential::Missing
                    }
                    None => Credential::None,
                },
            };
            upstreams.insert(
                name.clone(),
                Upstream {
                    kind: p.kind,
                    base_url: base.to_owned(),
                    client,
                    urls,
                    credential,
                    timeout: Duration::from_secs(p.timeout_secs),
                },
            );
        }
        Ok(Self { upstreams })
    }

    /// Sends the call; any HTTP status from the provider is an `Ok`.
    pub async fn send(&self, out: Outbound<'_>) -> Result<UpstreamResponse, ForwardError> {
        let up = self
            .upstreams
            .get(out.provider)
            .ok_or_else(|| ForwardError::NoProvider(out.provider.to_owned()))?;
        let mut headers = forwardable(out.headers);
        match &up.credential {
            Credential::None => {}
            Credential::Header(name, value) => {
                headers.insert(name.clone(), value.clone());
            }
            Credential::Missing => return Err(ForwardError::NoKey(out.provider.to_owned())),
        }
        if up.kind == ProviderKind::Anthropic {
            headers
                .entry(HeaderName::from_static("anthropic-version"))
                .or_insert(HeaderValue::from_static(ANTHROPIC_VERSION));
        }
        let method = out.api.method();
        let url = up
            .urls
            .get(api_index(out.api))
            .cloned()
            .ok_or_else(|| ForwardError::NoProvider(out.provider.to_owned()))?;
        let mut req = up.client.request(method.clone(), url);
        if method == Method::POST {
            headers
                .entry(header::CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("application/json"));
            req = req.body(out.body);
        }
        req = req.headers(headers);
        let sent = if out.stream {
            match tokio::time::timeout(up.timeout, req.send()).await {
                Ok(r) => r,
                Err(_) => return Err(self.failed(out.provider, ForwardError::Timeout)),
            }
        } else {
            // Covers the response body too: reqwest applies it until the
            // last byte is read.
            req.timeout(up.timeout).send().await
        };
        let resp = sent.map_err(|e| self.failed(out.provider, ForwardError::from_reqwest(e)))?;
        let status = resp.status();
        let headers = response_headers(resp.headers());
        let body = resp
            .bytes_stream()
            .map(|r| r.map_err(ForwardError::from_reqwest));
        let body: BodyStream = if out.stream {
            Box::pin(IdleTimeout::new(Box::pin(body), up.timeout))
        } else {
            Box::pin(body)
        };
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }

    fn failed(&self, provider: &str, e: ForwardError) -> ForwardError {
        tracing::warn!(provider, error = %e, "upstream call failed");
        e
    }
}

fn api_index(api: Api) -> usize {
    Api::ALL.iter().position(|a| *a == api).unwrap_or(0)
}

fn credential(kind: ProviderKind, key: &str) -> Option<Credential> {
    let (name, value) = match kind {
        ProviderKind::OpenAi => (
            header::AUTHORIZATION,
            Zeroizing::new(format!("Bearer {key}")),
        ),
        ProviderKind::Anthropic => (
            HeaderName::from_static("x-api-key"),
            Zeroizing::new(key.to_owned()),
        ),
    };
    let mut value = HeaderValue::from_str(&value).ok()?;
    value.set_sensitive(true);
    Some(Credential::Header(name, value))
}

/// Whether an agent's request header goes on to the provider. An allow
/// list: the agent's own credentials (`authorization`, `x-api-key`),
/// cookies, Docket's `docket-*` headers, hop-by-hop headers, `host` and
/// `content-length` (reqwest sets both), `accept-encoding` (Docket must
/// read the answer uncompressed) and `openai-organization`/`-project`
/// (which would let the agent pick what Docket's key bills) all stay
/// behind.
pub fn forward_request_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "content-type"
            | "accept"
            | "anthropic-version"
            | "anthropic-beta"
            | "openai-beta"
            | "user-agent"
            | "idempotency-key"
    ) || name.starts_with("x-stainless-")
}

/// The agent's headers that go to the provider.
pub fn forwardable(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(incoming.keys_len().min(16) + 2);
    for (name, value) in incoming {
        if forward_request_header(name) {
            // Both clones are reference-count bumps, not copies.
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Whether a provider's response header goes back to the agent: not the
/// hop-by-hop ones, not `content-length` (the body may be changed or
/// re-framed), and not what belongs to the provider's own origin or
/// account (cookies, HSTS, alt-svc, the organization name).
pub fn forward_response_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "set-cookie"
            | "strict-transport-security"
            | "alt-svc"
            | "openai-organization"
    )
}

fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.keys_len());
    for (name, value) in upstream {
        if forward_response_header(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Reads a whole (non-streamed) response body, up to `limit` bytes.
pub async fn collect(mut body: BodyStream, limit: usize) -> Result<Bytes, ForwardError> {
    // Most bodies arrive in one chunk: keep it as is, copy only when a
    // second one comes.
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        total = total.saturating_add(chunk.len());
        if total > limit {
            return Err(ForwardError::Body(format!(
                "response is larger than {limit} bytes"
            )));
        }
        match first.take() {
            None if rest.is_empty() => first = Some(chunk),
            Some(f) => {
                rest.reserve(f.len() + chunk.len());
                rest.extend_from_slice(&f);
                rest.extend_from_slice(&chunk);
            }
            None => rest.extend_from_slice(&chunk),
        }
    }
    Ok(first.unwrap_or_else(|| rest.freeze()))
}

/// Ends a stream with [`ForwardError::Timeout`] when no chunk arrives for
/// `idle`.
struct IdleTimeout {
    inner: BodyStream,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl IdleTimeout {
    fn new(inner: BodyStream, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            done: false,
        }
    }
}

impl Stream for IdleTimeout {
    type Item = Result<Bytes, ForwardError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(item)) => {
                let deadline = tokio::time::Instant::now() + self.idle;
                self.sleep.as_mut().reset(deadline);
                if item.is_err() {
                    self.done = true;
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if self.sleep.as_mut().poll(cx).is_ready() {
                    self.done = true;
                    tracing::warn!(
                        idle_secs = self.idle.as_secs(),
                        "upstream stream went silent"
                    );
                    Poll::Ready(Some(Err(ForwardError::Timeout)))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

/// How a tapped stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The provider's body ended normally (see [`TapSummary::complete`]
    /// for whether the answer itself was whole).
    Finished,
    /// The provider's body failed or went silent; the client's response
    /// was cut off with the same error.
    Upstream(ForwardError),
    /// The client's response was dropped before the provider's body ended
    /// (the agent disconnected, or the server shut down).
    ClientGone,
}

/// What [`tap_stream`] reports, exactly once, when the stream is over.
#[derive(Debug, Clone)]
pub struct StreamEnd {
    pub summary: TapSummary,
    pub outcome: StreamOutcome,
    /// Bytes handed to the client's response.
    pub bytes_sent: u64,
}

type OnEnd = Box<dyn FnOnce(StreamEnd) + Send + 'static>;

/// Passes a streamed provider body through `tap` (which removes the
/// usage-only chunk Docket asked for and reads the usage) and calls
/// `on_end` once the stream is over, however it ends — including when the
/// client goes away and the body is dropped. `on_end` runs inside the
/// response's poll or drop: it must not block (send the receipt to a
/// channel or spawn a task).
pub fn tap_stream(
    body: BodyStream,
    tap: SseTap,
    on_end: impl FnOnce(StreamEnd) + Send + 'static,
) -> BodyStream {
    Box::pin(Tapped {
        body,
        tap: Some(tap),
        on_end: Some(Box::new(on_end)),
        sent: 0,
        done: false,
    })
}

struct Tapped {
    body: BodyStream,
    tap: Option<SseTap>,
    on_end: Option<OnEnd>,
    sent: u64,
    done: bool,
}

impl Tapped {
    fn end(&mut self, outcome: StreamOutcome) -> Bytes {
        self.done = true;
        let Some(mut tap) = self.tap.take() else {
            return Bytes::new();
        };
        let rest = match outcome {
            // The rest of a stream cut off mid-event is not worth sending
            // after the error.
            StreamOutcome::Finished => tap.flush(),
            _ => Bytes::new(),
        };
        self.sent += rest.len() as u64;
        let summary = tap.finish();
        if let Some(on_end) = self.on_end.take() {
            on_end(StreamEnd {
                summary,
                outcome,
                bytes_sent: self.sent,
            });
        }
        rest
    }
}

impl Stream for Tapped {
    type Item = Result<Bytes, ForwardError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match self.body.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let Some(tap) = self.tap.as_mut() else {
                        return Poll::Ready(None);
                    };
                    let out = tap.feed(chunk);
                    if out.is_empty() {
                        continue;
                    }
                    self.sent += out.len() as u64;
                    return Poll::Ready(Some(Ok(out)));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.end(StreamOutcome::Upstream(e.clone()));
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    let rest = self.end(StreamOutcome::Finished);
                    return Poll::Ready((!rest.is_empty()).then_some(Ok(rest)));
                }
            }
        }
    }
}

impl Drop for Tapped {
    fn drop(&mut self) {
        if self.on_end.is_some() {
            self.end(StreamOutcome::ClientGone);
        }
    }
}

#[cfg(test)]
mod tests;
