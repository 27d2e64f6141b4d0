//! A small blocking client for the Docket API, with its error shape decoded.

use anyhow::{Context, anyhow};
use serde::de::DeserializeOwned;

use crate::ServerArgs;

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(Self {
            base: args.server.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            http,
        })
    }

    pub fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> anyhow::Result<T> {
        self.send(reqwest::Method::GET, path_and_query, None)
    }

    /// Sends `body` (JSON) with `method`; decodes the answer or the API's error.
    pub fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<T> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path_and_query));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.finish(req, path_and_query)
    }

    /// GETs `path_and_query` and streams the body into `out` (no timeout:
    /// an export of a large window takes a while). Returns the response headers.
    pub fn download(
        &self,
        path_and_query: &str,
        out: &mut dyn std::io::Write,
    ) -> anyhow::Result<reqwest::header::HeaderMap> {
        let mut req = self
            .http
            .get(format!("{}{}", self.base, path_and_query))
            .timeout(std::time::Duration::from_secs(24 * 3600));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req
            .send()
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes()?;
            let msg = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(anyhow!("server answered {status}: {msg}"));
        }
        let headers = resp.headers().clone();
        resp.copy_to(out)?;
        Ok(headers)
    }

    /// `POST /api/v1/login` with HTTP Basic credentials.
    pub fn login<T: DeserializeOwned>(&self, user: &str, password: &str) -> anyhow::Result<T> {
        let req = self
            .http
            .post(format!("{}/api/v1/login", self.base))
            .basic_auth(user, Some(password));
        self.finish(req, "/api/v1/login")
    }

    fn finish<T: DeserializeOwned>(
        &self,
        req: reqwest::blocking::RequestBuilder,
        path_and_query: &str,
    ) -> anyhow::Result<T> {
        let url = format!("{}{}", self.base, path_and_query);
        let resp = req
            .send()
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes()?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(anyhow!("server answered {status}: {msg}"));
        }
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).with_context(|| format!("unexpected response from {url}"))
    }
}

/// Percent-encodes a query-string value.
pub fn enc(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
