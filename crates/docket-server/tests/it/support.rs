//! Starting a server for a test and talking to it.

use std::time::Duration;

use docket_server::{Config, Running};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub struct Server {
    pub running: Option<Running>,
    pub base: String,
    /// The first admin's personal token.
    pub token: String,
    /// The first-start bootstrap token (retired once the admin exists).
    pub bootstrap_token: String,
    /// Entries the bootstrap wrote (the admin and their token).
    pub base_size: u64,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        checkpoint_interval_ms: 100,
        max_body_bytes: 256 * 1024,
        max_batch_entries: 100,
        // A busy test machine must not shed the tests' calls; admission's
        // shedding has tests of its own.
        gateway: docket_server::gateway::config::GatewayConfig {
            shed_lag_ms: 0,
            shed_decide_ms: 0,
            ..Default::default()
        },
        ..Config::default()
    }
}

impl Server {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        Self::start_with(c, dir).await
    }

    pub async fn start_with(c: Config, dir: tempfile::TempDir) -> Self {
        let running = docket_server::start(c).await.unwrap();
        let bootstrap_token = running
            .new_admin_token
            .as_ref()
            .expect("first start prints a token")
            .to_string();
        let base = format!("http://{}", running.addr);
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{base}/api/v1/bootstrap"))
            .bearer_auth(&bootstrap_token)
            .json(
                &json!({"id": "admin", "name": "First Admin", "password": "correct horse battery"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        let token = v["token"].as_str().unwrap().to_owned();
        let base_size = v["entries"].as_array().unwrap().len() as u64;
        Self {
            base_size,
            base,
            running: Some(running),
            token,
            bootstrap_token,
            http,
            dir,
        }
    }

    /// A request with `token` instead of the admin's.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn append(&self, kind: &str, body: Value) -> u64 {
        let (status, v) = self
            .post("/api/v1/entries", &json!({"type": kind, "body": body}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["entries"][0]["seq"].as_u64().unwrap()
    }

    /// Waits until a signed checkpoint covers `size` entries.
    pub async fn wait_for_checkpoint(&self, size: u64) -> Value {
        for _ in 0..200 {
            let (status, cp) = self.get("/api/v1/checkpoint").await;
            if status == StatusCode::OK && cp["size"].as_u64().unwrap() >= size {
                return cp;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no checkpoint covering {size} entries was signed");
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        self.running.take().unwrap().stop().await.unwrap();
        self.dir
    }
}

/// Asserts that the error body `v` says `text` in its message.
pub fn assert_message_contains(v: &Value, text: &str) {
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {v}"));
    assert!(message.contains(text), "{text:?} not in the message of {v}");
}
