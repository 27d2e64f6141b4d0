//! Tests of the wire formats: request inspection and its messages, the
//! include_usage rewrite, usage from whole and streamed responses (every
//! split of realistic streams), and error shapes.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

use super::errors::error_type;
use super::*;
use proptest::prelude::*;

fn shape(api: Api, body: &str) -> CallShape {
    inspect(api, body.as_bytes()).unwrap()
}

fn wire_error(api: Api, body: &str) -> String {
    inspect(api, body.as_bytes()).unwrap_err().to_string()
}

#[test]
fn inspect_reads_model_stream_and_limits() {
    let s = shape(
        Api::ChatCompletions,
        r#"{"model":"gpt-4o-mini","stream":true,"max_completion_tokens":300,"max_tokens":200,
            "messages":[{"role":"user","content":"Hello there!"}]}"#,
    );
    assert_eq!(s.model, "gpt-4o-mini");
    assert!(s.stream);
    assert_eq!(s.max_output_tokens, Some(300), "the largest limit counts");
    assert!(!s.include_usage);
    // "Hello there!" is 12 characters → 3 tokens; role values are not text.
    assert_eq!(s.estimated_input_tokens, 3);

    let s = shape(
        Api::Responses,
        r#"{"model":"o3","input":"hi","max_output_tokens":50,"instructions":"Be brief."}"#,
    );
    assert!(!s.stream);
    assert_eq!(s.max_output_tokens, Some(50));
    assert_eq!(s.estimated_input_tokens, 3, "2 + 9 characters → 3 tokens");

    let s = shape(
        Api::Messages,
        r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":false,"system":"You are terse.",
            "messages":[{"role":"user","content":[{"type":"text","text":"Grüße"}]}]}"#,
    );
    assert_eq!(s.max_output_tokens, Some(1024));
    assert_eq!(
        s.estimated_input_tokens, 5,
        "14 + 5 characters (not bytes) → 5 tokens"
    );

    let s = shape(
        Api::Embeddings,
        r#"{"model":"text-embedding-3-small","input":["a","b"],"stream":true}"#,
    );
    assert!(!s.stream, "embeddings never stream");
    assert_eq!(s.estimated_input_tokens, 1, "at least one token");
    assert_eq!(s.max_output_tokens, None);

    let s = shape(
        Api::Embeddings,
        r#"{"model":"text-embedding-3-small","input":[[1,2,3,4,5]]}"#,
    );
    assert_eq!(
        s.estimated_input_tokens, 5,
        "token ids count one token each"
    );

    let s = shape(Api::Models, "");
    assert_eq!(s.model, "");
    assert_eq!(s.estimated_input_tokens, 0);
}

#[test]
fn images_and_ids_are_not_counted_as_text() {
    let image = "A".repeat(40_000);
    let body = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":[
            {{"type":"text","text":"What is this?"}},
            {{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}}]}},
            {{"role":"assistant","tool_calls":[{{"id":"call_abcdefghijklmnop","type":"function",
              "function":{{"name":"f","arguments":"{{}}"}}}}]}}]}}"#
    );
    let s = inspect(Api::ChatCompletions, body.as_bytes()).unwrap();
    // "What is this?" (13) + "f" (1) + "{}" (2) = 16 characters.
    assert_eq!(s.estimated_input_tokens, 4);

    let body = format!(
        r#"{{"model":"claude-3-5-haiku","messages":[{{"role":"user","content":[
            {{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{image}"}}}},
            {{"type":"text","text":"12345678"}}]}}]}}"#
    );
    let s = inspect(Api::Messages, body.as_bytes()).unwrap();
    assert_eq!(s.estimated_input_tokens, 2);
}

#[test]
fn inspect_says_exactly_what_is_wrong() {
    let cases: &[(Api, &str, &str)] = &[
        (
            Api::ChatCompletions,
            "",
            "request body is not JSON: EOF while parsing a value at line 1 column 0",
        ),
        (
            Api::ChatCompletions,
            "{\"model\":",
            "request body is not JSON: EOF while parsing a value at line 1 column 9",
        ),
        (
            Api::ChatCompletions,
            "{} x",
            "request body is not JSON: trailing characters at line 1 column 4",
        ),
        (
            Api::ChatCompletions,
            "[1,2]",
            "request body must be a JSON object",
        ),
        (
            Api::ChatCompletions,
            "\"hi\"",
            "request body must be a JSON object",
        ),
        (
            Api::ChatCompletions,
            r#"{"messages":[]}"#,
            "field `model` is required (a string)",
        ),
        (
            Api::ChatCompletions,
            r#"{"model":null,"messages":[]}"#,
            "field `model` is required (a string)",
        ),
        (
            Api::ChatCompletions,
            r#"{"model":4,"messages":[]}"#,
            "field `model` must be a non-empty string",
        ),
        (
            Api::ChatCompletions,
            r#"{"model":"","messages":[]}"#,
            "field `model` must be a non-empty string",
        ),
        (
            Api::ChatCompletions,
            r#"{"model":"gpt-4o"}"#,
            "field `messages` is required (an array)",
        ),
        (
            Api::ChatCompletions,
            r#"{"model":"gpt-4o","messages":"hi"}"#,
            "field `messages` must be an array",
        ),
        (
            Api::Messages,
            r#"{"model":"claude-3-haiku","max_tokens":5}"#,
            "field `messages` is required (an array)",
        ),
        (
            Api::Responses,
            r#"{"model":"o3"}"#,
            "field `input` is required (a string or an array)",
        ),
        (
            Api::Responses,
            r#"{"model":"o3","input":{}}"#,
            "field `input` must be a string or an array",
        ),
        (
            Api::Embeddings,
            r#"{"model":"text-embedding-3-small"}"#,
            "field `input` is required (a string or an array)",
        ),
        (
            Api::ChatCompletions,
            r#"{"model":"gpt-4o","messages":[],"stream":"yes"}"#,
            "field `stream` must be a boolean",
        ),
        (
            Api::ChatCompletions,
            r#"{"model":"gpt-4o","messages":[],"max_tokens":-1}"#,
            "field `max_tokens` must be a non-negative integer",
        ),
        (
            Api::Responses,
            r#"{"model":"o3","input":"x","max_output_tokens":1.5}"#,
            "field `max_output_tokens` must be a non-negative integer",
        ),
    ];
    for (api, body, want) in cases {
        assert_eq!(&wire_error(*api, body), want, "{api} {body}");
    }
    // A stored prompt template stands in for `input`.
    shape(Api::Responses, r#"{"model":"o3","prompt":{"id":"pmpt_1"}}"#);
}

#[test]
fn prepare_adds_include_usage_only_where_needed() {
    let body = Bytes::from_static(
        br#"  {"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let s = inspect(Api::ChatCompletions, &body).unwrap();
    let p = prepare(Api::ChatCompletions, body.clone(), &s);
    assert!(p.strip_usage_chunk);
    assert_eq!(
        std::str::from_utf8(&p.body).unwrap(),
        r#"  {"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    );
    let again = inspect(Api::ChatCompletions, &p.body).unwrap();
    assert!(again.include_usage);

    // stream_options present without include_usage: merged, not duplicated.
    let body = Bytes::from_static(
        br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[]}"#,
    );
    let s = inspect(Api::ChatCompletions, &body).unwrap();
    let p = prepare(Api::ChatCompletions, body, &s);
    assert!(p.strip_usage_chunk);
    let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
    assert_eq!(v["stream_options"], json!({"include_usage": true, "x": 1}));
    assert_eq!(v["model"], "gpt-4o");

    // The agent asked for usage itself, or is not streaming, or is on
    // another API: the very same bytes go out.
    for (api, body) in [
        (
            Api::ChatCompletions,
            r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
        ),
        (Api::ChatCompletions, r#"{"model":"gpt-4o","messages":[]}"#),
        (
            Api::Responses,
            r#"{"model":"o3","input":"x","stream":true}"#,
        ),
        (
            Api::Messages,
            r#"{"model":"claude-3-haiku","messages":[],"stream":true}"#,
        ),
    ] {
        let body = Bytes::copy_from_slice(body.as_bytes());
        let s = inspect(api, &body).unwrap();
        let p = prepare(api, body.clone(), &s);
        assert!(!p.strip_usage_chunk, "{body:?}");
        assert_eq!(p.body.as_ptr(), body.as_ptr(), "not even copied");
        assert_eq!(p.body, body);
    }
}

#[test]
fn usage_from_whole_responses() {
    let chat = br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[],
        "usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0}}}"#;
    assert_eq!(
        response_facts(Api::ChatCompletions, chat),
        ResponseFacts {
            usage: Some(Usage {
                input_tokens: 19,
                output_tokens: 10
            }),
            response_id: Some("chatcmpl-1".into()),
        }
    );
    let responses = br#"{"id":"resp_1","object":"response","output":[{"type":"message"}],
        "usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"total_tokens":123}}"#;
    assert_eq!(
        usage_from_json(Api::Responses, responses),
        Some(Usage {
            input_tokens: 36,
            output_tokens: 87
        })
    );
    let embeddings =
        br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2]}],
        "model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    let f = response_facts(Api::Embeddings, embeddings);
    assert_eq!(
        f.usage,
        Some(Usage {
            input_tokens: 8,
            output_tokens: 0
        })
    );
    assert_eq!(f.response_id, None);
    let messages = br#"{"id":"msg_01","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],
        "usage":{"input_tokens":10,"cache_creation_input_tokens":200,"cache_read_input_tokens":3000,"output_tokens":25}}"#;
    assert_eq!(
        response_facts(Api::Messages, messages),
        ResponseFacts {
            usage: Some(Usage {
                input_tokens: 3210,
                output_tokens: 25
            }),
            response_id: Some("msg_01".into()),
        }
    );
    assert_eq!(
        response_facts(Api::ChatCompletions, b"not json"),
        ResponseFacts::default()
    );
    assert_eq!(
        usage_from_json(Api::ChatCompletions, br#"{"error":{"message":"x"}}"#),
        None
    );
    assert_eq!(
        usage_from_json(Api::Models, br#"{"usage":{"prompt_tokens":1}}"#),
        None
    );
}

// ---- streams -------------------------------------------------------------

const CHAT_USAGE_EVENT: &str = "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1727000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n";

fn chat_stream(with_usage: bool) -> String {
    let head = "{\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1727000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_1\",";
    let mut s = String::new();
    s.push_str(&format!("data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"));
    s.push_str(&format!("data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Héllo, wörld ✓ — \\\"usage\\\": {{\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"));
    s.push_str(&format!("data: {head}\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":null}}\n\n"));
    if with_usage {
        s.push_str(CHAT_USAGE_EVENT);
    }
    s.push_str("data: [DONE]\n\n");
    s
}

fn responses_stream() -> String {
    [
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_67c\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi ✓ response.completed\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_67c\",\"object\":\"response\",\"status\":\"completed\",\"output\":[{\"id\":\"msg_1\",\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi ✓ response.completed\"}]}],\"usage\":{\"input_tokens\":37,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":11,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":48}}}\n\n",
    ]
    .concat()
}

fn messages_stream() -> String {
    [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XF\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":50,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Grüße 🌍 message_stop\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ]
    .concat()
}

fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

/// Feeds `input` in the given pieces; returns what the client got.
fn run(tap: &mut SseTap, input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        out.extend_from_slice(&tap.feed(Bytes::copy_from_slice(&input[at..cut])));
        at = cut;
    }
    out.extend_from_slice(&tap.flush());
    out
}

/// Every split of `input` into two pieces, and byte by byte: the client
/// gets `want` and the summary is `summary`.
fn check_every_split(api: Api, strip: bool, input: &str, want: &str, summary: &TapSummary) {
    let input = input.as_bytes();
    for cut in 0..=input.len() {
        let mut tap = SseTap::new(api, strip);
        let out = run(&mut tap, input, &[cut]);
        assert!(
            out == want.as_bytes(),
            "{api} split at {cut}: got\n{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(&tap.finish(), summary, "{api} split at {cut}");
    }
    let mut tap = SseTap::new(api, strip);
    let cuts: Vec<usize> = (1..input.len()).collect();
    assert_eq!(
        run(&mut tap, input, &cuts),
        want.as_bytes(),
        "{api} byte by byte"
    );
    assert_eq!(&tap.finish(), summary, "{api} byte by byte");
}

fn usage(input_tokens: u64, output_tokens: u64) -> Option<Usage> {
    Some(Usage {
        input_tokens,
        output_tokens,
    })
}

#[test]
fn chat_stream_loses_only_the_usage_chunk_docket_asked_for() {
    let summary = TapSummary {
        usage: usage(12, 3),
        complete: true,
        response_id: Some("chatcmpl-B9".into()),
        stream_error: None,
    };
    check_every_split(
        Api::ChatCompletions,
        true,
        &chat_stream(true),
        &chat_stream(false),
        &summary,
    );
    check_every_split(
        Api::ChatCompletions,
        true,
        &crlf(&chat_stream(true)),
        &crlf(&chat_stream(false)),
        &summary,
    );
    // Bare `\r` line ends are legal SSE too.
    check_every_split(
        Api::ChatCompletions,
        true,
        &chat_stream(true).replace('\n', "\r"),
        &chat_stream(false).replace('\n', "\r"),
        &summary,
    );
    // The agent asked for usage itself: it gets the chunk.
    check_every_split(
        Api::ChatCompletions,
        false,
        &chat_stream(true),
        &chat_stream(true),
        &summary,
    );
}

#[test]
fn chat_stream_without_usage_reports_none() {
    let summary = TapSummary {
        usage: None,
        complete: true,
        response_id: Some("chatcmpl-B9".into()),
        stream_error: None,
    };
    check_every_split(
        Api::ChatCompletions,
        true,
        &chat_stream(false),
        &chat_stream(false),
        &summary,
    );
}

#[test]
fn responses_stream_passes_unchanged_and_yields_usage() {
    let summary = TapSummary {
        usage: usage(37, 11),
        complete: true,
        response_id: Some("resp_67c".into()),
        stream_error: None,
    };
    let s = responses_stream();
    check_every_split(Api::Responses, false, &s, &s, &summary);
    check_every_split(Api::Responses, false, &crlf(&s), &crlf(&s), &summary);
}

#[test]
fn messages_stream_passes_unchanged_and_yields_usage() {
    let summary = TapSummary {
        usage: usage(175, 15),
        complete: true,
        response_id: Some("msg_01XF".into()),
        stream_error: None,
    };
    let s = messages_stream();
    check_every_split(Api::Messages, false, &s, &s, &summary);
    check_every_split(Api::Messages, false, &crlf(&s), &crlf(&s), &summary);
}

#[test]
fn a_cut_off_stream_is_not_complete() {
    let s = messages_stream();
    let cut = s.find("event: message_delta").unwrap();
    let mut tap = SseTap::new(Api::Messages, false);
    assert_eq!(
        run(&mut tap, &s.as_bytes()[..cut], &[]),
        &s.as_bytes()[..cut]
    );
    let summary = tap.finish();
    assert!(!summary.complete);
    assert_eq!(summary.usage, usage(175, 1), "what message_start said");

    // A chat stream that stops inside its usage chunk: the partial bytes
    // still reach the client.
    let s = chat_stream(true);
    let cut = s.find("\"choices\":[],").unwrap();
    let mut tap = SseTap::new(Api::ChatCompletions, true);
    assert_eq!(
        run(&mut tap, &s.as_bytes()[..cut], &[10]),
        &s.as_bytes()[..cut]
    );
    assert!(!tap.finish().complete);
}

#[test]
fn errors_inside_streams_are_reported() {
    let s = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let mut tap = SseTap::new(Api::Messages, false);
    run(&mut tap, s.as_bytes(), &[]);
    let summary = tap.finish();
    assert_eq!(
        summary.stream_error.as_deref(),
        Some("overloaded_error: Overloaded")
    );
    assert!(!summary.complete);

    let s =
        "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n";
    let mut tap = SseTap::new(Api::ChatCompletions, true);
    assert_eq!(run(&mut tap, s.as_bytes(), &[]), s.as_bytes());
    assert_eq!(
        tap.finish().stream_error.as_deref(),
        Some("server_error: The server had an error")
    );

    let s = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_9\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"},\"usage\":null}}\n\n";
    let mut tap = SseTap::new(Api::Responses, false);
    run(&mut tap, s.as_bytes(), &[]);
    let summary = tap.finish();
    assert_eq!(summary.stream_error.as_deref(), Some("server_error: boom"));
    assert_eq!(summary.response_id.as_deref(), Some("resp_9"));
    assert!(summary.complete);
}

#[test]
fn events_over_the_limit_pass_through_unread() {
    let big = format!(
        "data: {{\"id\":\"x\",\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}],\"usage\":null}}\n\n",
        "z".repeat(5000)
    );
    let input = format!("{big}{CHAT_USAGE_EVENT}data: [DONE]\n\n");
    let want = format!("{big}data: [DONE]\n\n");
    for cut in [0, 100, 1000, big.len() - 1, big.len(), big.len() + 7] {
        let mut tap = SseTap::with_limit(Api::ChatCompletions, true, 1024);
        let out = run(&mut tap, input.as_bytes(), &[cut]);
        assert!(out == want.as_bytes(), "cut {cut}");
        let summary = tap.finish();
        assert_eq!(summary.usage, usage(12, 3));
        assert!(summary.complete);
    }
    // Bounded memory: a 10 MB event with no line end is never buffered.
    let mut tap = SseTap::with_limit(Api::ChatCompletions, true, 1024);
    let mut sent = 0;
    for _ in 0..10_000 {
        sent += tap.feed(Bytes::from(vec![b'a'; 1000])).len();
        assert!(tap.held.len() <= 1024 && tap.parser.line.len() <= 1024);
    }
    sent += tap.flush().len();
    assert_eq!(sent, 10_000_000);
}

#[test]
fn passthrough_is_zero_copy() {
    let chunk = Bytes::from(chat_stream(false));
    let mut tap = SseTap::new(Api::ChatCompletions, true);
    let out = tap.feed(chunk.clone());
    assert_eq!(out.as_ptr(), chunk.as_ptr());
    assert_eq!(out.len(), chunk.len());
    let mut tap = SseTap::new(Api::Messages, false);
    let chunk = Bytes::from(messages_stream());
    assert_eq!(tap.feed(chunk.clone()).as_ptr(), chunk.as_ptr());
}

/// Pieces of realistic streams, and garbage, for the property tests.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(CHAT_USAGE_EVENT.as_bytes().to_vec()),
        Just(chat_stream(false).into_bytes()),
        Just(responses_stream().into_bytes()),
        Just(messages_stream().into_bytes()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"data: {\"usage\": {\"prompt_tokens\": 1".to_vec()),
        Just(b"event: message_delta\n".to_vec()),
        Just(b": comment\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Garbage never panics, and how the bytes are split never changes
    /// what the client gets or what the tap reports.
    #[test]
    fn split_invariant_and_panic_free(
        pieces in proptest::collection::vec(piece(), 0..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        api in prop_oneof![Just(Api::ChatCompletions), Just(Api::Responses), Just(Api::Messages)],
        strip in any::<bool>(),
        limit in prop_oneof![Just(64usize), Just(300), Just(MAX_EVENT_BYTES)],
    ) {
        let input: Vec<u8> = pieces.concat();
        let mut whole = SseTap::with_limit(api, strip, limit);
        let want = run(&mut whole, &input, &[]);
        let want_summary = whole.finish();

        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut split = SseTap::with_limit(api, strip, limit);
        let got = run(&mut split, &input, &cuts);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(split.finish(), want_summary);
        if !strip || api != Api::ChatCompletions {
            prop_assert_eq!(&got, &input);
        } else {
            prop_assert!(got.len() <= input.len());
        }
    }

    #[test]
    fn inspect_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        for api in Api::ALL {
            let _ = inspect(api, &body);
            let _ = response_facts(api, &body);
        }
    }
}

// ---- errors --------------------------------------------------------------

async fn body_json(resp: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn errors_come_in_each_providers_shape() {
    let resp = error_response(
        Api::ChatCompletions,
        StatusCode::FORBIDDEN,
        "policy_denied",
        "denied by policy `no-gpt4`",
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()[ERROR_CODE_HEADER], "policy_denied");
    assert_eq!(
        body_json(resp).await,
        json!({"error": {"message": "denied by policy `no-gpt4`", "type": "permission_error", "param": null, "code": "policy_denied"}})
    );

    let mut extra = HeaderMap::new();
    extra.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    let resp = error_response_with_headers(
        Api::Messages,
        StatusCode::TOO_MANY_REQUESTS,
        "budget_exceeded",
        "daily budget spent",
        extra,
    );
    assert_eq!(resp.headers()["retry-after"], "30");
    assert_eq!(
        body_json(resp).await,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "daily budget spent"}})
    );

    let openai = [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "server_error"),
        (502, "server_error"),
        (504, "server_error"),
    ];
    for (status, kind) in openai {
        assert_eq!(
            error_type(ErrorShape::OpenAi, StatusCode::from_u16(status).unwrap()),
            kind,
            "{status}"
        );
    }
    let anthropic = [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ];
    for (status, kind) in anthropic {
        assert_eq!(
            error_type(ErrorShape::Anthropic, StatusCode::from_u16(status).unwrap()),
            kind,
            "{status}"
        );
    }

    let resp = WireError::Missing {
        field: "model",
        expected: "a string",
    }
    .to_response(Api::Responses);
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        body_json(resp).await["error"]["message"],
        "field `model` is required (a string)"
    );
}

#[test]
fn api_paths_round_trip() {
    for api in Api::ALL {
        assert_eq!(Api::from_path(api.path()), Some(api));
    }
    assert_eq!(Api::Models.method(), Method::GET);
    assert_eq!(Api::Messages.provider_kind(), ProviderKind::Anthropic);
    assert_eq!(Api::Responses.error_shape(), ErrorShape::OpenAi);
    assert_eq!(Api::from_path("/v1/completions"), None);
}
