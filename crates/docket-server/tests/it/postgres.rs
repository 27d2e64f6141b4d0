//! The server on PostgreSQL: the same API over the other backend, started
//! against the server `scripts/test` runs (`DOCKET_TEST_POSTGRES_URL`).

use docket_core::{LogVerifier, Receipt};
use docket_server::config::BackendKind;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;

use crate::support::{Server, config};

#[tokio::test]
async fn the_server_runs_on_postgresql() {
    let url = std::env::var("DOCKET_TEST_POSTGRES_URL").expect(
        "DOCKET_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts PostgreSQL",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.storage.backend = BackendKind::Postgres;
    c.storage.postgres_url = Some(SecretString::from(url));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    c.storage.postgres_schema = Some(format!(
        "srv_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    ));
    let s = Server::start_with(c, dir).await;

    for i in 0..5 {
        s.append(
            "note",
            json!({"agent": format!("agent-a{}", i % 2), "data_classes": ["pii"], "i": i}),
        )
        .await;
    }
    let (_, log) = s.get("/api/v1/log").await;
    assert_eq!(log["backend"], "postgres");
    let (_, page) = s.get("/api/v1/entries?agent=agent-a0&count=true").await;
    assert_eq!(page["count"], 3);
    s.wait_for_checkpoint(5).await;
    let (status, r) = s.get("/api/v1/receipts/3").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let key = LogVerifier::new(log["public_key"].as_str().unwrap()).unwrap();
    Receipt::from_json(r.to_string().as_bytes())
        .unwrap()
        .verify(&key)
        .unwrap();
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("docket_checkpoint_age_seconds")
    );
    s.stop().await;
}
