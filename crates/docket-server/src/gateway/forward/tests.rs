//! Tests of the forwarder against a small provider stand-in on a real
//! socket: credentials swapped, headers filtered, bodies untouched,
//! failures and timeouts in the provider's error shape, streams tapped.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use futures_util::stream;

use super::*;
use crate::gateway::config::{ModelRoute, ProviderConfig};
use crate::gateway::wire::ResponseFacts;

const OPENAI_KEY: &str = "sk-test-SECRET-openai-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-test-SECRET-abcdef";

/// What the stand-in provider received.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Request>>>);

/// Method, path, headers and body of one request.
type Request = (Method, String, HeaderMap, Bytes);

impl Received {
    fn last(&self) -> Request {
        self.0.lock().unwrap().last().cloned().expect("a request")
    }
}

const CHAT_JSON: &str = r#"{"id":"chatcmpl-up","object":"chat.completion","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#;

const SSE_WITH_USAGE: &str = "data: {\"id\":\"chatcmpl-s\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\ndata: {\"id\":\"chatcmpl-s\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}\n\ndata: [DONE]\n\n";
const SSE_STRIPPED: &str = "data: {\"id\":\"chatcmpl-s\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\ndata: [DONE]\n\n";

async fn record(
    State(seen): State<Received>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    seen.0
        .lock()
        .unwrap()
        .push((method, uri.path().to_owned(), headers, body));
    (
        [
            ("content-type", "application/json"),
            ("set-cookie", "__cf_bm=abc; path=/"),
            ("openai-organization", "docket-prod-org"),
            ("alt-svc", "h3=\":443\""),
            ("x-ratelimit-remaining-requests", "99"),
            ("x-request-id", "req_123"),
        ],
        CHAT_JSON,
    )
        .into_response()
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

/// Headers at once, one chunk, then silence.
async fn stall() -> Response {
    let chunks = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
        b"data: {\"id\":\"x\",\"choices\":[]}\n\n",
    ))])
    .chain(stream::pending());
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// A chat stream with the usage chunk, in awkward pieces.
async fn sse() -> Response {
    let bytes = SSE_WITH_USAGE.as_bytes();
    let pieces: Vec<Result<Bytes, std::io::Error>> = [0, 7, 90, 91, 150, bytes.len()]
        .windows(2)
        .map(|w| Ok(Bytes::copy_from_slice(&bytes[w[0]..w[1]])))
        .collect();
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream::iter(pieces)),
    )
        .into_response()
}

struct StandIn {
    port: u16,
    received: Received,
}

async fn stand_in() -> StandIn {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(record))
        .route("/v1/messages", post(record))
        .route("/v1/models", get(record))
        .route("/slow/v1/chat/completions", post(slow))
        .route("/stall/v1/chat/completions", post(stall))
        .route("/sse/v1/chat/completions", post(sse))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    StandIn { port, received }
}

fn provider(kind: ProviderKind, base_url: String, key: Option<&str>) -> ProviderConfig {
    ProviderConfig {
        kind,
        base_url,
        api_key: key.map(Into::into),
        api_key_env: None,
        timeout_secs: 1,
        connect_timeout_ms: 2000,
    }
}

/// A port nothing listens on.
async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn forwarder(port: u16) -> Forwarder {
    let base = format!("http://127.0.0.1:{port}");
    let dead = dead_port().await;
    let providers = BTreeMap::from([
        (
            "openai".into(),
            provider(ProviderKind::OpenAi, base.clone(), Some(OPENAI_KEY)),
        ),
        (
            "anthropic".into(),
            provider(ProviderKind::Anthropic, base.clone(), Some(ANTHROPIC_KEY)),
        ),
        (
            "slow".into(),
            provider(
                ProviderKind::OpenAi,
                format!("{base}/slow"),
                Some(OPENAI_KEY),
            ),
        ),
        (
            "stall".into(),
            provider(
                ProviderKind::OpenAi,
                format!("{base}/stall"),
                Some(OPENAI_KEY),
            ),
        ),
        (
            "sse".into(),
            provider(
                ProviderKind::OpenAi,
                format!("{base}/sse/"),
                Some(OPENAI_KEY),
            ),
        ),
        (
            "keyless".into(),
            provider(ProviderKind::OpenAi, base.clone(), None),
        ),
        (
            "down".into(),
            provider(
                ProviderKind::OpenAi,
                format!("http://127.0.0.1:{dead}"),
                Some(OPENAI_KEY),
            ),
        ),
        (
            "nokey".into(),
            ProviderConfig {
                api_key_env: Some("DOCKET_TEST_NEVER_SET_5d1e".into()),
                ..provider(ProviderKind::OpenAi, base.clone(), None)
            },
        ),
    ]);
    let c = GatewayConfig {
        providers,
        models: vec![ModelRoute {
            pattern: "*".into(),
            provider: "openai".into(),
        }],
        ..GatewayConfig::default()
    };
    Forwarder::new(&c).unwrap()
}

fn agent_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("authorization", "Bearer dkt_agent_credential"),
        ("x-api-key", "agent-supplied-key"),
        ("cookie", "session=abc"),
        ("host", "docket.internal:7373"),
        ("content-length", "99999"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("docket-agent", "did:key:z6Mk"),
        ("docket-task", "t-1"),
        ("openai-organization", "org-other"),
        ("openai-project", "proj-other"),
        ("accept-encoding", "gzip, br"),
        ("x-forwarded-for", "10.0.0.1"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "OpenAI/Python 1.55.0"),
        ("x-stainless-lang", "python"),
        ("x-stainless-retry-count", "0"),
        ("openai-beta", "assistants=v2"),
        ("idempotency-key", "stainless-retry-1"),
    ] {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn outbound<'a>(
    provider: &'a str,
    api: Api,
    headers: &'a HeaderMap,
    body: &[u8],
    stream: bool,
) -> Outbound<'a> {
    Outbound {
        provider,
        api,
        headers,
        body: Bytes::copy_from_slice(body),
        stream,
    }
}

const BODY: &[u8] = "{ \"model\" : \"gpt-4o\",\n  \"messages\": [{\"role\":\"user\",\"content\":\"h\u{e9}llo \\u00e9 \u{1F600}\"}], \"temperature\": 0.70 }".as_bytes();

#[tokio::test]
async fn replaces_the_credential_and_filters_headers() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let incoming = agent_headers();
    let resp = f
        .send(outbound(
            "openai",
            Api::ChatCompletions,
            &incoming,
            BODY,
            false,
        ))
        .await
        .unwrap();
    let (method, path, h, body) = up.received.last();
    assert_eq!(method, Method::POST);
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(body, BODY, "byte for byte");
    assert_eq!(h["authorization"], format!("Bearer {OPENAI_KEY}").as_str());
    assert_eq!(h.get_all("authorization").iter().count(), 1);
    for gone in [
        "x-api-key",
        "cookie",
        "docket-agent",
        "docket-task",
        "openai-organization",
        "openai-project",
        "accept-encoding",
        "x-forwarded-for",
        "keep-alive",
        "te",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the provider");
    }
    assert_eq!(h["host"], format!("127.0.0.1:{}", up.port).as_str());
    assert_eq!(h["content-length"], BODY.len().to_string().as_str());
    for kept in [
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "OpenAI/Python 1.55.0"),
        ("x-stainless-lang", "python"),
        ("x-stainless-retry-count", "0"),
        ("openai-beta", "assistants=v2"),
        ("idempotency-key", "stainless-retry-1"),
    ] {
        assert_eq!(h[kept.0], kept.1);
    }

    assert_eq!(resp.status, StatusCode::OK);
    assert!(!resp.is_event_stream());
    for gone in [
        "set-cookie",
        "openai-organization",
        "alt-svc",
        "content-length",
    ] {
        assert!(!resp.headers.contains_key(gone), "{gone} reached the agent");
    }
    assert_eq!(resp.headers["x-ratelimit-remaining-requests"], "99");
    assert_eq!(resp.headers["x-request-id"], "req_123");
    let body = collect(resp.body, MAX_RESPONSE_BYTES).await.unwrap();
    assert_eq!(body, CHAT_JSON.as_bytes());
    assert_eq!(
        wire::response_facts(Api::ChatCompletions, &body),
        ResponseFacts {
            usage: Some(wire::Usage {
                input_tokens: 7,
                output_tokens: 2
            }),
            response_id: Some("chatcmpl-up".into()),
        }
    );
}

#[tokio::test]
async fn anthropic_gets_x_api_key_and_a_version() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let mut incoming = agent_headers();
    incoming.insert(
        "anthropic-beta",
        HeaderValue::from_static("prompt-caching-2024-07-31"),
    );
    let body = br#"{"model":"claude-3-5-haiku","max_tokens":5,"messages":[]}"#;
    f.send(outbound("anthropic", Api::Messages, &incoming, body, false))
        .await
        .unwrap();
    let (_, path, h, got) = up.received.last();
    assert_eq!(path, "/v1/messages");
    assert_eq!(got, &body[..]);
    assert_eq!(h["x-api-key"], ANTHROPIC_KEY);
    assert!(!h.contains_key("authorization"));
    assert_eq!(
        h["anthropic-version"], "2023-06-01",
        "added when the client sent none"
    );
    assert_eq!(h["anthropic-beta"], "prompt-caching-2024-07-31");

    incoming.insert("anthropic-version", HeaderValue::from_static("2024-10-22"));
    f.send(outbound("anthropic", Api::Messages, &incoming, body, false))
        .await
        .unwrap();
    let (_, _, h, _) = up.received.last();
    assert_eq!(
        h["anthropic-version"], "2024-10-22",
        "the client's own is kept"
    );
    assert_eq!(h.get_all("anthropic-version").iter().count(), 1);
}

#[tokio::test]
async fn models_is_a_get_and_keyless_providers_get_no_credential() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let incoming = agent_headers();
    let resp = f
        .send(outbound("keyless", Api::Models, &incoming, b"", false))
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    let (method, path, h, body) = up.received.last();
    assert_eq!((method, path.as_str()), (Method::GET, "/v1/models"));
    assert!(body.is_empty());
    assert!(
        !h.contains_key("authorization"),
        "the agent's own credential is never passed on"
    );
    assert!(!h.contains_key("x-api-key"));
}

async fn json_of(resp: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(!text.contains("SECRET"), "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn unreachable_provider_is_a_502_in_the_providers_shape() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let incoming = agent_headers();
    let e = f
        .send(outbound(
            "down",
            Api::ChatCompletions,
            &incoming,
            BODY,
            false,
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, ForwardError::Connect(_)), "{e:?}");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(
        !shown.contains("127.0.0.1"),
        "no internal addresses: {shown}"
    );

    let resp = e.to_response(Api::ChatCompletions);
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let v = json_of(resp).await;
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("upstream provider unreachable: "),
        "{message}"
    );

    let v = json_of(e.to_response(Api::Messages)).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "api_error");
}

#[tokio::test]
async fn a_slow_provider_is_a_504() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let incoming = agent_headers();
    let started = std::time::Instant::now();
    let e = f
        .send(outbound(
            "slow",
            Api::ChatCompletions,
            &incoming,
            BODY,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(e, ForwardError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(10));
    let resp = e.to_response(Api::Messages);
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let v = json_of(resp).await;
    assert_eq!(v["error"]["type"], "timeout_error");

    // Streamed: the wait for the response head is bounded too.
    let e = f
        .send(outbound(
            "slow",
            Api::ChatCompletions,
            &incoming,
            BODY,
            true,
        ))
        .await
        .unwrap_err();
    assert_eq!(e, ForwardError::Timeout);
}

#[tokio::test]
async fn the_whole_call_timeout_covers_the_body() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let incoming = agent_headers();
    let resp = f
        .send(outbound(
            "stall",
            Api::ChatCompletions,
            &incoming,
            BODY,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(
        collect(resp.body, MAX_RESPONSE_BYTES).await,
        Err(ForwardError::Timeout)
    );
}

#[tokio::test]
async fn a_silent_stream_times_out() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let incoming = agent_headers();
    let mut resp = f
        .send(outbound(
            "stall",
            Api::ChatCompletions,
            &incoming,
            BODY,
            true,
        ))
        .await
        .unwrap();
    assert!(resp.is_event_stream());
    let first = resp.body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert_eq!(resp.body.next().await, Some(Err(ForwardError::Timeout)));
    assert_eq!(resp.body.next().await, None);
}

#[tokio::test]
async fn a_missing_key_fails_closed_and_says_so() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let incoming = agent_headers();
    let e = f
        .send(outbound(
            "nokey",
            Api::ChatCompletions,
            &incoming,
            BODY,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(e, ForwardError::NoKey("nokey".into()));
    assert!(up.received.0.lock().unwrap().is_empty(), "nothing was sent");
    let resp = e.to_response(Api::ChatCompletions);
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(resp.headers()["x-should-retry"], "false");
    let v = json_of(resp).await;
    assert_eq!(
        v["error"]["message"],
        "Docket has no API key for provider `nokey`"
    );

    let e = f
        .send(outbound(
            "nope",
            Api::ChatCompletions,
            &incoming,
            BODY,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(e, ForwardError::NoProvider("nope".into()));
}

#[tokio::test]
async fn debug_output_never_shows_keys() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let shown = format!("{f:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(
        shown.contains("\"openai\": openai http://127.0.0.1"),
        "{shown}"
    );
    assert!(
        shown.contains("(key set)")
            && shown.contains("(key missing)")
            && shown.contains("(key none)")
    );
    let incoming = agent_headers();
    let resp = f
        .send(outbound(
            "openai",
            Api::ChatCompletions,
            &incoming,
            BODY,
            false,
        ))
        .await
        .unwrap();
    let shown = format!("{resp:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[tokio::test]
async fn a_tapped_stream_strips_the_usage_chunk_and_reports_once() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let incoming = agent_headers();
    let resp = f
        .send(outbound("sse", Api::ChatCompletions, &incoming, BODY, true))
        .await
        .unwrap();
    assert!(resp.is_event_stream());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let body = tap_stream(
        resp.body,
        SseTap::new(Api::ChatCompletions, true),
        move |end| {
            let _ = tx.send(end);
        },
    );
    let client = response(resp.status, resp.headers, Body::from_stream(body));
    let got = axum::body::to_bytes(client.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(got, SSE_STRIPPED.as_bytes());
    let end = rx.recv().await.unwrap();
    assert_eq!(end.outcome, StreamOutcome::Finished);
    assert_eq!(end.bytes_sent, SSE_STRIPPED.len() as u64);
    assert_eq!(
        end.summary.usage,
        Some(wire::Usage {
            input_tokens: 4,
            output_tokens: 1
        })
    );
    assert!(end.summary.complete);
    assert_eq!(end.summary.response_id.as_deref(), Some("chatcmpl-s"));
    assert!(rx.recv().await.is_none(), "reported exactly once");
}

#[tokio::test]
async fn a_dropped_stream_reports_the_client_gone() {
    let up = stand_in().await;
    let f = forwarder(up.port).await;
    let incoming = agent_headers();
    let resp = f
        .send(outbound(
            "stall",
            Api::ChatCompletions,
            &incoming,
            BODY,
            true,
        ))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut body = tap_stream(
        resp.body,
        SseTap::new(Api::ChatCompletions, false),
        move |end| {
            let _ = tx.send(end);
        },
    );
    assert!(body.next().await.unwrap().is_ok());
    drop(body);
    let end = rx.recv().await.unwrap();
    assert_eq!(end.outcome, StreamOutcome::ClientGone);
    assert!(!end.summary.complete);
    assert!(rx.recv().await.is_none());

    // An upstream that goes silent ends the client's stream with the error.
    let resp = f
        .send(outbound(
            "stall",
            Api::ChatCompletions,
            &incoming,
            BODY,
            true,
        ))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut body = tap_stream(
        resp.body,
        SseTap::new(Api::ChatCompletions, false),
        move |end| {
            let _ = tx.send(end);
        },
    );
    assert!(body.next().await.unwrap().is_ok());
    assert_eq!(body.next().await, Some(Err(ForwardError::Timeout)));
    assert_eq!(
        rx.recv().await.unwrap().outcome,
        StreamOutcome::Upstream(ForwardError::Timeout)
    );
}

#[tokio::test]
async fn collect_enforces_its_limit_and_keeps_single_chunks() {
    let one = Bytes::from_static(b"0123456789");
    let body: BodyStream = Box::pin(stream::iter([Ok(one.clone())]));
    let got = collect(body, 10).await.unwrap();
    assert_eq!(got.as_ptr(), one.as_ptr(), "a single chunk is not copied");

    let pieces = || {
        stream::iter([
            Ok(Bytes::from_static(b"01234")),
            Ok(Bytes::from_static(b"56789")),
        ])
    };
    assert_eq!(
        collect(Box::pin(pieces()), 10).await.unwrap(),
        &b"0123456789"[..]
    );
    assert_eq!(
        collect(Box::pin(pieces()), 9).await,
        Err(ForwardError::Body("response is larger than 9 bytes".into()))
    );
}

#[test]
fn header_filters() {
    for (name, forwarded) in [
        ("content-type", true),
        ("x-stainless-os", true),
        ("anthropic-beta", true),
        ("authorization", false),
        ("proxy-authorization", false),
        ("docket-agent", false),
        ("x-docket", false),
        ("transfer-encoding", false),
        ("upgrade", false),
        ("content-length", false),
    ] {
        assert_eq!(
            forward_request_header(&HeaderName::from_static(name)),
            forwarded,
            "{name}"
        );
    }
    for (name, returned) in [
        ("content-type", true),
        ("retry-after", true),
        ("request-id", true),
        ("x-ratelimit-limit-tokens", true),
        ("transfer-encoding", false),
        ("connection", false),
        ("set-cookie", false),
    ] {
        assert_eq!(
            forward_response_header(&HeaderName::from_static(name)),
            returned,
            "{name}"
        );
    }
}
