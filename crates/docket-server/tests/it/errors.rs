//! Bad input gets a 4xx whose JSON says what is wrong, and nothing is written.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::Server;

async fn size(s: &Server) -> u64 {
    s.get("/api/v1/log").await.1["size"].as_u64().unwrap()
}

#[tokio::test]
async fn bad_appends_say_what_is_wrong_and_write_nothing() {
    let s = Server::start().await;
    s.append("note", json!({})).await;
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (
            json!({"type": "nope", "body": {}}),
            "unknown_type",
            "unknown entry type \"nope\"",
        ),
        (
            json!({"body": {}}),
            "invalid_request",
            "missing field `type`",
        ),
        (
            json!({"type": "note"}),
            "invalid_request",
            "missing field `body`",
        ),
        (
            json!({"type": "note", "body": [1]}),
            "invalid_body",
            "must be a JSON object",
        ),
        (
            json!({"type": "note", "body": {}, "extra": 1}),
            "invalid_request",
            "unknown field `extra`",
        ),
        (
            json!({"type": "note", "body": {"agent": 7}}),
            "invalid_body",
            "body: agent: invalid type: integer `7`",
        ),
        (
            json!({"entries": []}),
            "invalid_request",
            "must not be empty",
        ),
        (
            json!({"entries": [{"type": "note", "body": {}}, {"type": "bad", "body": {}}]}),
            "unknown_type",
            "entries[1].type",
        ),
    ];
    for (body, code, message) in cases {
        let (status, v) = s.post("/api/v1/entries", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {v}");
        assert_eq!(v["error"]["code"], code, "{body} -> {v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains(message), "{body} -> {m}");
    }
    let (status, v) = s
        .post_raw("/api/v1/entries", "{\"type\": \"note\", \"body\": {")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_json");

    let too_many: Vec<_> = (0..101)
        .map(|_| json!({"type": "note", "body": {}}))
        .collect();
    let (status, v) = s
        .post("/api/v1/entries", &json!({"entries": too_many}))
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("batch_too_large"))
    );

    let big = "x".repeat(300 * 1024);
    let (status, v) = s
        .post(
            "/api/v1/entries",
            &json!({"type": "note", "body": {"big": big}}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");

    let r = s
        .http
        .post(s.url("/api/v1/entries"))
        .bearer_auth(&s.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert_eq!(
        size(&s).await,
        s.base_size + 1,
        "nothing of a refused request was written"
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_reads_say_what_is_wrong() {
    let s = Server::start().await;
    s.append("note", json!({})).await;
    for (path, status, code) in [
        ("/api/v1/entries/5", StatusCode::NOT_FOUND, "not_found"),
        (
            "/api/v1/entries/-1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/v1/entries?cursor=zzz",
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "/api/v1/entries?cursor=a5",
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "/api/v1/entries?limit=5000",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/v1/entries?from=yesterday",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/v1/entries?type=nope",
            StatusCode::BAD_REQUEST,
            "unknown_type",
        ),
        (
            "/api/v1/entries?hours=25:00-26:00",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/v1/entries?colour=red",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/v1/proofs/inclusion?seq=0&size=9",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/proofs/consistency?old=3&new=1",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        ("/api/v1/nope", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (got, v) = s.get(path).await;
        assert_eq!(got, status, "{path} -> {v}");
        assert_eq!(v["error"]["code"], code, "{path} -> {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    let r = s
        .http
        .delete(s.url("/api/v1/entries"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    s.stop().await;
}
