//! The API doing its job: appends, reads, queries, checkpoints, proofs, receipts.

use docket_core::merkle::{Hash, verify_consistency, verify_inclusion};
use docket_core::{LogVerifier, Receipt};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Server, config};

fn hashes(v: &serde_json::Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::parse_hash(h.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn readyz_says_whether_docket_can_do_its_job_without_a_token() {
    let s = Server::start().await;
    let r = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ready"], true, "{v}");
    assert_eq!(v["store"]["writable"], true, "{v}");
    assert_eq!(v["store"]["receipts_waiting"], 0, "{v}");
    assert_eq!(v["checkpoint"]["current"], true, "{v}");
    assert_eq!(v["gateway"]["in_flight"], 0, "{v}");
    // What admission sheds on: the scheduler's lateness and how long
    // deciding takes, both measured (nothing measured yet here).
    assert_eq!(v["gateway"]["scheduler_lag_ms"], 0.0, "{v}");
    assert_eq!(v["gateway"]["decide_ms"], 0.0, "{v}");
    assert!(
        v["gateway"]["upstreams"].as_object().unwrap().is_empty(),
        "{v}"
    );
}

#[tokio::test]
async fn x_api_key_is_for_the_gateway_routes_only() {
    let s = Server::start().await;
    // A valid admin token, sent the way Anthropic's SDK sends a key.
    let r = s
        .http
        .get(s.url("/api/v1/log"))
        .header("x-api-key", &s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gateway routes (/v1/…) only"),
        "{body}"
    );
    let r = s
        .http
        .get(s.url("/api/v1/log"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn nothing_but_healthz_answers_without_a_token() {
    let s = Server::start().await;
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for path in [
        "/api/v1/entries",
        "/api/v1/entries/0",
        "/api/v1/log",
        "/api/v1/checkpoint",
        "/api/v1/checkpoints",
        "/api/v1/proofs/inclusion?seq=0",
        "/api/v1/proofs/consistency?old=1",
        "/api/v1/proofs/range?from=0&to=1",
        "/api/v1/receipts/0",
        "/api/v1/openapi.json",
        "/metrics",
        "/api/v1/nope",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{path}");
        let r = s
            .http
            .get(s.url(path))
            .bearer_auth("dkt_wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = s
        .http
        .post(s.url("/api/v1/entries"))
        .json(&json!({"type": "note", "body": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn append_read_and_query() {
    let s = Server::start().await;
    let first = s
        .append(
            "note",
            json!({"agent": "agent-a", "data_classes": ["customer_data"], "n": 1}),
        )
        .await;
    let b = s.base_size;
    assert_eq!(first, b);
    let (status, v) = s
        .post(
            "/api/v1/entries",
            &json!({"entries": [
                {"type": "note", "body": {"agent": "agent-b", "n": 2, "outcome": "deny"}},
                {"type": "verification", "body": {"agent": "agent-a", "method": "json-schema", "verdict": "fail"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["entries"][1]["seq"], b + 2);

    let (status, e) = s.get(&format!("/api/v1/entries/{}", b + 2)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(e["entry"]["type"], "verification");
    assert_eq!(e["entry"]["body"]["verdict"], "fail");
    assert_eq!(e["leaf_hash"], v["entries"][1]["leaf_hash"]);
    assert_eq!(e["entry"]["prev"], v["entries"][0]["leaf_hash"]);

    let (_, page) = s.get("/api/v1/entries?agent=agent-a&count=true").await;
    let seqs: Vec<u64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![b + 2, b]);
    assert_eq!(page["count"], 2);
    let (_, page) = s.get("/api/v1/entries?data_class=customer_data").await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let (_, page) = s
        .get("/api/v1/entries?type=note,verification&order=asc&limit=2")
        .await;
    assert_eq!(page["entries"][0]["seq"], b);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, page) = s
        .get(&format!(
            "/api/v1/entries?type=note,verification&order=asc&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(page["entries"][0]["seq"], b + 2);
    assert!(page["next_cursor"].is_null());
    let (_, page) = s
        .get("/api/v1/entries?type=verification,note&outcome=deny")
        .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn checkpoints_proofs_and_receipts_verify_with_the_public_key_alone() {
    let s = Server::start().await;
    for i in s.base_size..10 {
        s.append("note", json!({"i": i})).await;
    }
    let cp = s.wait_for_checkpoint(10).await;
    let (_, log) = s.get("/api/v1/log").await;
    let key = LogVerifier::new(log["public_key"].as_str().unwrap()).unwrap();
    let signed = key.verify(cp["note"].as_str().unwrap()).unwrap();
    assert_eq!(signed.size, 10);

    // The bare note, as C2SP tools read it.
    let r = s
        .http
        .get(s.url("/api/v1/checkpoint?format=note"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), cp["note"].as_str().unwrap());

    let (status, p) = s.get("/api/v1/proofs/inclusion?seq=4&size=10").await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let (_, e) = s.get("/api/v1/entries/4").await;
    let leaf = docket_core::entry::parse_hex_hash(e["leaf_hash"].as_str().unwrap()).unwrap();
    verify_inclusion(&hashes(&p["hashes"]), 4, 10, &leaf, &signed.root).unwrap();

    for i in 10..15 {
        s.append("note", json!({"i": i})).await;
    }
    let cp2 = s.wait_for_checkpoint(15).await;
    let signed2 = key.verify(cp2["note"].as_str().unwrap()).unwrap();
    let (_, c) = s
        .get(&format!(
            "/api/v1/proofs/consistency?old=10&new={}",
            signed2.size
        ))
        .await;
    verify_consistency(
        &hashes(&c["hashes"]),
        10,
        &signed.root,
        signed2.size,
        &signed2.root,
    )
    .unwrap();

    let (status, r) = s.get("/api/v1/receipts/7").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let receipt = Receipt::from_json(r.to_string().as_bytes()).unwrap();
    let v = receipt.verify(&key).unwrap();
    assert_eq!(v.entry.seq.0, 7);

    let (_, list) = s.get("/api/v1/checkpoints").await;
    assert!(list["checkpoints"].as_array().unwrap().len() >= 2);
    s.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_log_key_and_token_and_prints_no_new_token() {
    let s = Server::start().await;
    s.append("note", json!({"x": 1})).await;
    let (_, log) = s.get("/api/v1/log").await;
    let token = s.token.clone();
    let dir = s.stop().await;
    let key_path = dir.path().join("data/log.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = docket_server::start(config(dir.path())).await.unwrap();
    assert!(again.new_admin_token.is_none());
    assert_eq!(again.log.public_key, log["public_key"].as_str().unwrap());
    let r = reqwest::Client::new()
        .get(format!("http://{}/api/v1/entries/0", again.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    again.stop().await.unwrap();

    // A different key in the data directory is refused, not used.
    std::fs::remove_file(&key_path).unwrap();
    let err = docket_server::start(config(dir.path()))
        .await
        .err()
        .expect("must refuse a foreign key");
    assert!(err.to_string().contains("not the key of this log"), "{err}");
}

#[tokio::test]
async fn metrics_count_appends() {
    let s = Server::start().await;
    s.append("note", json!({})).await;
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("docket_appended_entries_total"), "{text}");
    assert!(text.contains("docket_http_requests_total"), "{text}");
    assert!(text.contains("docket_log_entries"), "{text}");
    s.stop().await;
}
