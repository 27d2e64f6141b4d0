//! Tests for the stand-in provider: pure rules beside it, wire shapes over a real socket.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

const KEY: &str = "sk-standin-test";

/// A stand-in serving on an ephemeral loopback port.
struct Running {
    base: String,
    http: reqwest::Client,
    stop: oneshot::Sender<()>,
    served: JoinHandle<io::Result<()>>,
}

async fn start(api_key: Option<&str>, keep_requests: usize) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let config = UpstreamConfig {
        api_key: api_key.map(str::to_owned),
        keep_requests,
    };
    let served = tokio::spawn(serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        http: reqwest::Client::new(),
        stop,
        served,
    }
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn openai(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn anthropic(&self, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/messages"))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn logged(&self) -> Vec<Value> {
        let response = self
            .http
            .get(self.url("/_standin/requests"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Shuts down gracefully and checks that `serve` returned cleanly.
    async fn shut_down(self) {
        self.stop.send(()).unwrap();
        self.served.await.unwrap().unwrap();
    }
}

/// The events of an SSE body as (event name, data), checking the framing on the way.
fn sse(body: &str) -> Vec<(Option<String>, String)> {
    assert!(body.ends_with("\n\n"), "an SSE body ends with a blank line");
    body.split("\n\n")
        .filter(|block| !block.is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_owned());
                } else if let Some(json) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event");
                    data = Some(json.to_owned());
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (event, data.expect("every event has data"))
        })
        .collect()
}

async fn stream_of(response: reqwest::Response) -> Vec<(Option<String>, String)> {
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    sse(&response.text().await.unwrap())
}

fn chat_body(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the suite"},
        ],
    })
}

fn messages_body(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 1024,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Say hello to the suite"}],
    })
}

// ---------------------------------------------------------------------------------------------
// The deterministic rules.

fn content(json: &str) -> Content<'_> {
    serde_json::from_str(json).unwrap()
}

#[test]
fn reply_echoes_the_user_words_and_counts_them() {
    let user = content(r#""hello  there\nworld""#);
    let reply = Reply::new(Some(&user), 7, None);
    assert_eq!(
        reply,
        Reply {
            text: "echo: hello there world".into(),
            input_tokens: 7,
            output_tokens: 4,
            truncated: false,
        }
    );
    assert_eq!(
        reply.deltas().collect::<Vec<_>>(),
        ["echo:", " hello", " there", " world"]
    );
}

#[test]
fn reply_takes_text_parts_and_skips_the_rest() {
    let user = content(
        r#"[{"type":"text","text":"one two"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"three"}]"#,
    );
    assert_eq!(user.words(), 3);
    assert_eq!(Reply::new(Some(&user), 3, None).text, "echo: one two three");
}

#[test]
fn reply_echoes_at_most_32_words() {
    let long = (1..=40)
        .map(|n| format!("w{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let user = Content::Text(Cow::Owned(long));
    let reply = Reply::new(Some(&user), 40, None);
    assert_eq!(reply.output_tokens, 33);
    assert!(reply.text.ends_with(" w32"));
    assert!(!reply.truncated, "the echo limit is not a cap");
}

#[test]
fn reply_is_cut_to_the_cap_of_at_least_one_word() {
    let user = content(r#""a b c d""#);
    let capped = Reply::new(Some(&user), 4, Some(3));
    assert_eq!(
        (capped.text.as_str(), capped.output_tokens),
        ("echo: a b", 3)
    );
    assert!(capped.truncated);
    let zero = Reply::new(Some(&user), 4, Some(0));
    assert_eq!((zero.text.as_str(), zero.output_tokens), ("echo:", 1));
    let exact = Reply::new(Some(&user), 4, Some(5));
    assert!(!exact.truncated, "a cap the reply fits in does not cut it");
}

#[test]
fn reply_without_a_user_message_is_the_bare_echo() {
    let reply = Reply::new(None, 1, None);
    assert_eq!((reply.text.as_str(), reply.output_tokens), ("echo:", 1));
    assert_eq!(reply.deltas().collect::<Vec<_>>(), ["echo:"]);
}

#[test]
fn input_words_count_every_message_and_extra_text_and_are_at_least_one() {
    let messages: Vec<Message<'_>> = serde_json::from_str(
        r#"[{"role":"system","content":"be brief"},{"role":"assistant","content":null},{"role":"user","content":"a b c"}]"#,
    )
    .unwrap();
    let system = content(r#""one more""#);
    assert_eq!(input_words(&messages, None), 5);
    assert_eq!(input_words(&messages, Some(&system)), 7);
    assert_eq!(input_words(&[], None), 1);
}

#[test]
fn model_names_choose_the_behaviour() {
    let cases = [
        ("gpt-4o", Behaviour::Answer),
        (
            "fail-500",
            Behaviour::Fail(StatusCode::INTERNAL_SERVER_ERROR),
        ),
        ("fail-429", Behaviour::Fail(StatusCode::TOO_MANY_REQUESTS)),
        (
            "fail-529",
            Behaviour::Fail(StatusCode::from_u16(529).unwrap()),
        ),
        ("fail-200", Behaviour::Answer),
        ("fail-abc", Behaviour::Answer),
        ("slow-250", Behaviour::Slow(Duration::from_millis(250))),
        ("slow-x", Behaviour::Answer),
        ("drip-10", Behaviour::Drip(Duration::from_millis(10))),
        ("hang", Behaviour::Hang),
        ("cut-stream", Behaviour::CutStream),
    ];
    for (model, expected) in cases {
        assert_eq!(Behaviour::of(model), expected, "{model}");
    }
}

#[test]
fn base64_matches_the_standard_alphabet_and_padding() {
    let cases = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in cases {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
    assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
}

#[test]
fn embeddings_are_deterministic_unit_vectors() {
    let a = embed(b"hello", 8);
    assert_eq!(a, embed(b"hello", 8));
    assert_ne!(a, embed(b"hellp", 8));
    assert_eq!(embed(b"x", 3).len(), 3);
    let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
}

#[test]
fn debug_never_shows_the_key() {
    let config = UpstreamConfig {
        api_key: Some("sk-secret".into()),
        keep_requests: 1,
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("sk-secret"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

// ---------------------------------------------------------------------------------------------
// OpenAI chat completions.

#[tokio::test]
async fn chat_completion_has_openai_shape_and_usage_rule() {
    let standin = start(Some(KEY), 0).await;
    let response = standin
        .openai("/v1/chat/completions", chat_body("gpt-4o"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(request_id.starts_with("req_"), "{request_id}");
    let body: Value = response.json().await.unwrap();

    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(
        body["choices"],
        json!([{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "echo: Say hello to the suite",
                "refusal": null,
                "annotations": [],
            },
            "logprobs": null,
            "finish_reason": "stop",
        }])
    );
    // System "You are terse." (3) + user (5) words in; "echo:" + 5 words out.
    assert_eq!(body["usage"]["prompt_tokens"], 8);
    assert_eq!(body["usage"]["completion_tokens"], 6);
    assert_eq!(body["usage"]["total_tokens"], 14);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    standin.shut_down().await;
}

#[tokio::test]
async fn chat_stream_sends_role_deltas_finish_usage_then_done() {
    let standin = start(Some(KEY), 0).await;
    let mut body = chat_body("gpt-4o");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let events = stream_of(standin.openai("/v1/chat/completions", body).await).await;

    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(last, &(None, "[DONE]".to_owned()));
    let chunks: Vec<Value> = chunks
        .iter()
        .map(|(name, data)| {
            assert_eq!(name, &None, "chat chunks are unnamed events");
            serde_json::from_str(data).unwrap()
        })
        .collect();
    let id = &chunks[0]["id"];
    assert!(chunks.iter().all(|chunk| &chunk["id"] == id
        && chunk["object"] == "chat.completion.chunk"
        && chunk["model"] == "gpt-4o"));

    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    let (finish, deltas) = rest.split_last().unwrap();
    let text: String = deltas[1..]
        .iter()
        .map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "echo: Say hello to the suite");
    assert_eq!(deltas.len() - 1, 6, "one delta per word");
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(rest.iter().all(|chunk| chunk["usage"].is_null()));

    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 8);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 6);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 14);
    standin.shut_down().await;
}

#[tokio::test]
async fn chat_stream_without_include_usage_sends_no_usage() {
    let standin = start(Some(KEY), 0).await;
    let mut body = chat_body("gpt-4o");
    body["stream"] = json!(true);
    let events = stream_of(standin.openai("/v1/chat/completions", body).await).await;
    assert_eq!(events.last().unwrap().1, "[DONE]");
    for (_, data) in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    standin.shut_down().await;
}

#[tokio::test]
async fn chat_caps_output_with_max_completion_tokens_or_max_tokens() {
    let standin = start(Some(KEY), 0).await;
    for cap in ["max_completion_tokens", "max_tokens"] {
        let mut body = chat_body("gpt-4o");
        body[cap] = json!(2);
        let body: Value = standin
            .openai("/v1/chat/completions", body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"], "echo: Say",
            "{cap}"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "length", "{cap}");
        assert_eq!(body["usage"]["completion_tokens"], 2, "{cap}");
    }
    standin.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses API.

#[tokio::test]
async fn response_has_responses_api_shape_and_counts_instructions() {
    let standin = start(Some(KEY), 0).await;
    let body: Value = standin
        .openai(
            "/v1/responses",
            json!({"model": "gpt-4o", "instructions": "Be terse.", "input": "hi there"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["instructions"], "Be terse.");
    assert!(body["error"].is_null() && body["incomplete_details"].is_null());
    let output = &body["output"];
    assert_eq!(output.as_array().unwrap().len(), 1);
    assert!(output[0]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[0]["status"], "completed");
    assert_eq!(output[0]["role"], "assistant");
    assert_eq!(
        output[0]["content"],
        json!([{"type": "output_text", "text": "echo: hi there", "annotations": [], "logprobs": []}])
    );
    assert_eq!(
        body["usage"],
        json!({
            "input_tokens": 4,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 3,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 7,
        })
    );
    standin.shut_down().await;
}

#[tokio::test]
async fn response_takes_input_items_with_input_text_parts() {
    let standin = start(Some(KEY), 0).await;
    let body: Value = standin
        .openai(
            "/v1/responses",
            json!({"model": "gpt-4o", "input": [
                {"role": "developer", "content": "one two"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "three four five"}]},
            ]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "echo: three four five"
    );
    assert_eq!(body["usage"]["input_tokens"], 5);
    assert_eq!(body["usage"]["output_tokens"], 4);
    standin.shut_down().await;
}

#[tokio::test]
async fn response_stream_sends_the_typed_events_in_order() {
    let standin = start(Some(KEY), 0).await;
    let events = stream_of(
        standin
            .openai(
                "/v1/responses",
                json!({"model": "gpt-4o", "input": "a b", "stream": true}),
            )
            .await,
    )
    .await;
    let names: Vec<&str> = events
        .iter()
        .map(|(name, _)| name.as_deref().expect("Responses events are named"))
        .collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let data: Vec<Value> = events
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    for (number, (event, name)) in data.iter().zip(&names).enumerate() {
        assert_eq!(event["type"], *name);
        assert_eq!(event["sequence_number"], number);
    }
    assert_eq!(data[0]["response"]["status"], "in_progress");
    assert!(data[0]["response"]["usage"].is_null());
    let item_id = &data[2]["item"]["id"];
    let deltas: String = data[4..7]
        .iter()
        .map(|event| {
            assert_eq!(&event["item_id"], item_id);
            event["delta"].as_str().unwrap()
        })
        .collect();
    assert_eq!(deltas, "echo: a b");
    assert_eq!(data[7]["text"], "echo: a b");
    assert_eq!(data[9]["item"]["status"], "completed");
    let completed = &data[10]["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0]["content"][0]["text"], "echo: a b");
    assert_eq!(completed["usage"]["input_tokens"], 2);
    assert_eq!(completed["usage"]["output_tokens"], 3);
    assert_eq!(completed["usage"]["total_tokens"], 5);
    standin.shut_down().await;
}

#[tokio::test]
async fn response_cut_by_max_output_tokens_is_incomplete() {
    let standin = start(Some(KEY), 0).await;
    let body = json!({"model": "gpt-4o", "input": "a b c", "max_output_tokens": 2});
    let whole: Value = standin
        .openai("/v1/responses", body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(whole["status"], "incomplete");
    assert_eq!(whole["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(whole["output"][0]["content"][0]["text"], "echo: a");
    assert_eq!(whole["usage"]["output_tokens"], 2);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let events = stream_of(standin.openai("/v1/responses", streamed).await).await;
    let (name, data) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("response.incomplete"));
    let last: Value = serde_json::from_str(data).unwrap();
    assert_eq!(last["response"]["status"], "incomplete");
    standin.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// OpenAI embeddings and models.

#[tokio::test]
async fn embeddings_answer_floats_or_the_same_floats_in_base64() {
    let standin = start(Some(KEY), 0).await;
    let floats: Value = standin
        .openai(
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": ["a b c", "d"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["model"], "text-embedding-3-small");
    assert_eq!(
        floats["usage"],
        json!({"prompt_tokens": 4, "total_tokens": 4})
    );
    let data = floats["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let vectors: Vec<Vec<f32>> = data
        .iter()
        .enumerate()
        .map(|(index, item)| {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], index);
            serde_json::from_value(item["embedding"].clone()).unwrap()
        })
        .collect();
    assert_eq!(vectors[0].len(), DEFAULT_DIMENSIONS);
    assert_eq!(vectors[0], embed(b"a b c", 8));

    // What the OpenAI SDK asks for by default: little-endian f32s in base64.
    let encoded: Value = standin
        .openai(
            "/v1/embeddings",
            json!({"model": "m", "input": ["a b c", "d"], "encoding_format": "base64"}),
        )
        .await
        .json()
        .await
        .unwrap();
    for (item, vector) in encoded["data"].as_array().unwrap().iter().zip(&vectors) {
        assert_eq!(item["embedding"], base64_f32(vector));
    }

    let sized: Value = standin
        .openai(
            "/v1/embeddings",
            json!({"model": "m", "input": [[1, 2, 3]], "dimensions": 3}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sized["data"][0]["embedding"].as_array().unwrap().len(), 3);
    assert_eq!(sized["usage"]["prompt_tokens"], 3);

    let bad = standin
        .openai(
            "/v1/embeddings",
            json!({"model": "m", "input": "x", "encoding_format": "hex"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    standin.shut_down().await;
}

#[tokio::test]
async fn models_list_in_each_providers_shape() {
    let standin = start(Some(KEY), 0).await;
    let openai: Value = standin
        .http
        .get(standin.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][0]["object"], "model");
    assert!(openai["data"][0]["id"].is_string());
    assert!(openai["data"][0]["owned_by"].is_string());

    let anthropic: Value = standin
        .http
        .get(standin.url("/v1/models"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["has_more"], false);
    assert_eq!(anthropic["first_id"], anthropic["data"][0]["id"]);
    standin.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// Anthropic messages.

#[tokio::test]
async fn message_has_anthropic_shape_and_counts_the_system_prompt() {
    let standin = start(Some(KEY), 0).await;
    let response = standin.anthropic(messages_body("claude-haiku-4-5")).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-haiku-4-5");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "echo: Say hello to the suite"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["stop_sequence"].is_null());
    assert_eq!(body["usage"]["input_tokens"], 8);
    assert_eq!(body["usage"]["output_tokens"], 6);
    standin.shut_down().await;
}

#[tokio::test]
async fn message_stream_sends_anthropics_events_in_order() {
    let standin = start(Some(KEY), 0).await;
    let mut body = messages_body("claude-haiku-4-5");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(3);
    let events = stream_of(standin.anthropic(body).await).await;
    let names: Vec<&str> = events
        .iter()
        .map(|(name, _)| name.as_deref().expect("Anthropic events are named"))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let data: Vec<Value> = events
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    for (event, name) in data.iter().zip(&names) {
        assert_eq!(event["type"], *name);
    }
    let start = &data[0]["message"];
    assert_eq!(start["content"], json!([]));
    assert!(start["stop_reason"].is_null());
    assert_eq!(start["usage"]["input_tokens"], 8);
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(
        data[1],
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    let text: String = data[3..6]
        .iter()
        .map(|event| {
            assert_eq!(event["delta"]["type"], "text_delta");
            event["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "echo: Say hello");
    assert_eq!(
        data[7],
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
            "usage": {"output_tokens": 3},
        })
    );
    standin.shut_down().await;
}

#[tokio::test]
async fn messages_need_anthropic_version_and_max_tokens() {
    let standin = start(Some(KEY), 0).await;
    let response = standin
        .http
        .post(standin.url("/v1/messages"))
        .header("x-api-key", KEY)
        .json(&messages_body("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"}})
    );

    let mut no_max = messages_body("claude");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let response = standin.anthropic(no_max).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "max_tokens: Field required");
    standin.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// Authentication and malformed requests.

#[tokio::test]
async fn openai_routes_want_the_bearer_key() {
    let standin = start(Some(KEY), 0).await;
    let missing = standin
        .http
        .post(standin.url("/v1/chat/completions"))
        .json(&chat_body("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["param"].is_null() && body["error"]["code"].is_null());
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key")
    );

    for path in ["/v1/chat/completions", "/v1/responses", "/v1/embeddings"] {
        let wrong = standin
            .http
            .post(standin.url(path))
            .bearer_auth("sk-wrong")
            .json(&chat_body("gpt-4o"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let body: Value = wrong.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key", "{path}");
    }
    let models = standin
        .http
        .get(standin.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
    standin.shut_down().await;
}

#[tokio::test]
async fn anthropic_routes_take_x_api_key_or_bearer() {
    let standin = start(Some(KEY), 0).await;
    let send = |auth: Option<(&'static str, String)>| {
        let mut request = standin
            .http
            .post(standin.url("/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .json(&messages_body("claude"));
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        request.send()
    };
    let bearer = send(Some(("authorization", format!("Bearer {KEY}"))))
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let wrong = send(Some(("x-api-key", "sk-wrong".into()))).await.unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    );
    let missing = send(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    standin.shut_down().await;
}

#[tokio::test]
async fn without_a_configured_key_any_key_or_none_is_accepted() {
    let standin = start(None, 0).await;
    let response = standin
        .http
        .post(standin.url("/v1/chat/completions"))
        .json(&chat_body("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    standin.shut_down().await;
}

#[tokio::test]
async fn malformed_or_incomplete_requests_are_400_in_each_shape() {
    let standin = start(Some(KEY), 0).await;
    let not_json = standin
        .http
        .post(standin.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let no_messages = standin
        .openai("/v1/chat/completions", json!({"model": "gpt-4o"}))
        .await;
    assert_eq!(no_messages.status(), 400);
    let body: Value = no_messages.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {
            "message": "Missing required parameter: 'messages'.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "missing_required_parameter",
        }})
    );
    let no_model = standin
        .openai("/v1/responses", json!({"input": "hi"}))
        .await;
    assert_eq!(no_model.status(), 400);
    let wrong_type = standin
        .openai(
            "/v1/chat/completions",
            json!({"model": "m", "messages": "hi"}),
        )
        .await;
    assert_eq!(wrong_type.status(), 400);

    let anthropic_not_json = standin
        .http
        .post(standin.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .body("[")
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic_not_json.status(), 400);
    let body: Value = anthropic_not_json.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let no_model = standin
        .anthropic(json!({"max_tokens": 5, "messages": []}))
        .await;
    assert_eq!(no_model.status(), 400);
    let body: Value = no_model.json().await.unwrap();
    assert_eq!(body["error"]["message"], "model: Field required");
    standin.shut_down().await;
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_callers_shape() {
    let standin = start(Some(KEY), 0).await;
    let openai = standin.openai("/v1/completions", json!({})).await;
    assert_eq!(openai.status(), 404);
    let body: Value = openai.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let anthropic = standin
        .http
        .post(standin.url("/v1/complete"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic.status(), 404);
    let body: Value = anthropic.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
    standin.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// Fault injection.

#[tokio::test]
async fn fail_models_answer_that_status_in_each_shape() {
    let standin = start(Some(KEY), 0).await;
    let cases = [
        ("fail-500", 500, "server_error", "api_error"),
        ("fail-429", 429, "requests", "rate_limit_error"),
        (
            "fail-400",
            400,
            "invalid_request_error",
            "invalid_request_error",
        ),
        ("fail-529", 529, "server_error", "overloaded_error"),
    ];
    for (model, status, openai_type, anthropic_type) in cases {
        for stream in [false, true] {
            let mut body = chat_body(model);
            body["stream"] = json!(stream);
            let openai = standin.openai("/v1/chat/completions", body).await;
            assert_eq!(openai.status(), status, "{model}");
            if status == 429 {
                assert_eq!(openai.headers()["retry-after"], "0");
            }
            let error: Value = openai.json().await.unwrap();
            assert_eq!(error["error"]["type"], openai_type, "{model}");
            assert!(error["error"]["message"].is_string());

            let mut body = messages_body(model);
            body["stream"] = json!(stream);
            let anthropic = standin.anthropic(body).await;
            assert_eq!(anthropic.status(), status, "{model}");
            if status == 429 {
                assert_eq!(anthropic.headers()["retry-after"], "0");
            }
            let error: Value = anthropic.json().await.unwrap();
            assert_eq!(error["type"], "error");
            assert_eq!(error["error"]["type"], anthropic_type, "{model}");
        }
    }
    let embeddings = standin
        .openai("/v1/embeddings", json!({"model": "fail-500", "input": "x"}))
        .await;
    assert_eq!(embeddings.status(), 500);
    standin.shut_down().await;
}

#[tokio::test]
async fn slow_models_answer_normally_after_the_delay() {
    let standin = start(Some(KEY), 0).await;
    let started = Instant::now();
    let response = standin
        .openai("/v1/chat/completions", chat_body("slow-200"))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: Say hello to the suite"
    );
    standin.shut_down().await;
}

#[tokio::test]
async fn hang_never_answers_until_shutdown_and_shutdown_still_finishes() {
    let standin = start(Some(KEY), 0).await;
    let request = standin
        .http
        .post(standin.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body("hang"))
        .send();
    let pending = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "hang answered before shutdown");

    standin.shut_down().await;
    let response = pending.await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
}

/// Reads a body chunk by chunk until it ends or fails: (bytes received, whether it failed).
async fn drain(mut response: reqwest::Response) -> (String, bool) {
    let mut received = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => return (String::from_utf8(received).unwrap(), false),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), true),
        }
    }
}

#[tokio::test]
async fn cut_stream_drops_the_connection_mid_body() {
    let standin = start(Some(KEY), 0).await;
    let mut body = chat_body("cut-stream");
    body["stream"] = json!(true);
    let response = standin.openai("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    let (received, failed) = drain(response).await;
    assert!(failed, "the body should end in an error, got {received:?}");
    assert!(received.starts_with("data: {"), "{received:?}");
    assert!(!received.contains("[DONE]"));

    let mut body = messages_body("cut-stream");
    body["stream"] = json!(true);
    let (received, failed) = drain(standin.anthropic(body).await).await;
    assert!(failed);
    assert!(received.starts_with("event: message_start\n"));
    assert!(!received.contains("message_stop"));

    let (received, failed) = drain(standin.anthropic(messages_body("cut-stream")).await).await;
    assert!(failed, "a non-streaming body is cut too");
    assert!(serde_json::from_str::<Value>(&received).is_err());
    standin.shut_down().await;
}

#[tokio::test]
async fn drip_streams_the_same_events_spaced_out() {
    let standin = start(Some(KEY), 0).await;
    let mut body = messages_body("drip-5");
    body["stream"] = json!(true);
    let events = stream_of(standin.anthropic(body).await).await;
    assert_eq!(events.len(), 12, "3 opening events, 6 deltas, 3 closing");
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));
    standin.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// The request log.

#[tokio::test]
async fn request_log_keeps_the_latest_requests_newest_last() {
    let standin = start(Some(KEY), 3).await;
    for n in 0..4 {
        let response = standin
            .http
            .post(standin.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("X-Trace-Id", format!("trace-{n}"))
            .json(&chat_body(&format!("model-{n}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let logged = standin.logged().await;
    assert_eq!(logged.len(), 3, "bounded by keep_requests");
    let models: Vec<&str> = logged
        .iter()
        .map(|entry| entry["body"]["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["model-1", "model-2", "model-3"]);
    let newest = &logged[2];
    assert_eq!(newest["method"], "POST");
    assert_eq!(newest["path"], "/v1/chat/completions");
    assert_eq!(newest["headers"]["authorization"], format!("Bearer {KEY}"));
    assert_eq!(newest["headers"]["x-trace-id"], "trace-3");
    assert_eq!(newest["body"], chat_body("model-3"));

    // Rejected and body-less requests are logged too; the inspection routes are not.
    let _ = standin
        .http
        .get(standin.url("/v1/models"))
        .send()
        .await
        .unwrap();
    let logged = standin.logged().await;
    let newest = logged.last().unwrap();
    assert_eq!(newest["method"], "GET");
    assert_eq!(newest["path"], "/v1/models");
    assert!(newest["body"].is_null());

    let cleared = standin
        .http
        .delete(standin.url("/_standin/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert_eq!(standin.logged().await, Vec::<Value>::new());
    standin.shut_down().await;
}

#[tokio::test]
async fn request_log_is_empty_when_not_kept() {
    let standin = start(Some(KEY), 0).await;
    let response = standin
        .openai("/v1/chat/completions", chat_body("gpt-4o"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(standin.logged().await, Vec::<Value>::new());
    standin.shut_down().await;
}
