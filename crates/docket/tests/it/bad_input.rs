//! The standing bad-input corpus (issue 15): every case in
//! `tests/bad-input/` is sent to one real `docket serve`, and each must be
//! refused with its 4xx in the right error shape — Docket's own on the API,
//! the provider's on the gateway — and record nothing it should not. After
//! all of them the server still answers, a valid call still goes through,
//! and `docket verify` passes on the data directory. The cases are data
//! (`tests/bad-input/README.md` says how to write one), so a new hostile
//! input needs no Rust.

use std::path::{Path, PathBuf};

use reqwest::blocking::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::gateway::{Docket, Setup, chat_body};
use crate::support::{ServerProcess, run, stdout};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad-input")
}

/// One file of the corpus.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What is hostile about the input and what the right answer is.
    why: String,
    request: CaseRequest,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseRequest {
    method: String,
    /// Sent as written: percent-escapes (good or bad) are not touched.
    path: String,
    #[serde(default)]
    auth: Auth,
    /// Extra headers; `null` leaves out one the test would add (the
    /// `content-type: application/json` every body gets by default).
    #[serde(default)]
    headers: Map<String, Value>,
    /// The body's bytes: see [`bytes_of`]. None: no body.
    #[serde(default)]
    body: Option<Value>,
}

/// Whose credentials the request carries, and how.
#[derive(Deserialize, Default, Clone, Copy, Debug)]
#[serde(rename_all = "kebab-case")]
enum Auth {
    /// The first admin's personal token, `Authorization: Bearer`.
    #[default]
    Admin,
    /// The agent `bot`'s API key, `Authorization: Bearer`.
    Agent,
    /// The admin's token as `x-api-key` (only the gateway takes that header).
    AdminXApiKey,
    /// The agent's API key as `x-api-key`.
    AgentXApiKey,
    /// No credentials (unless the case's headers carry some).
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The status, or the statuses any one of which is right.
    status: Statuses,
    shape: Shape,
    /// Docket's error code: `error.code` in Docket's and OpenAI's shapes,
    /// the `docket-error-code` header in Anthropic's.
    #[serde(default)]
    code: Option<String>,
    /// Text the error message must contain, each piece.
    #[serde(default)]
    message: Vec<String>,
    /// The refusal is itself recorded (a rejected signature, a denial):
    /// otherwise the log must not grow.
    #[serde(default)]
    records: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Statuses {
    One(u16),
    Any(Vec<u16>),
}

impl Statuses {
    fn contains(&self, status: u16) -> bool {
        match self {
            Statuses::One(s) => *s == status,
            Statuses::Any(all) => all.contains(&status),
        }
    }

    fn all(&self) -> Vec<u16> {
        match self {
            Statuses::One(s) => vec![*s],
            Statuses::Any(all) => all.clone(),
        }
    }
}

/// The error shape the answer must have.
#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
enum Shape {
    /// `{"error": {"code", "message"}}`.
    Docket,
    /// `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
}

/// The bytes a body or header value spec stands for: a string is sent as
/// its UTF-8; an object is `prefix` + one of `hex` (bytes), `file` (a file
/// of the corpus directory) or `repeat` × `times` (`{i}` in it replaced by
/// the repetition's number) + `suffix`.
fn bytes_of(spec: &Value, what: &str) -> Vec<u8> {
    let obj = match spec {
        Value::String(s) => return s.as_bytes().to_vec(),
        Value::Object(obj) => obj,
        other => panic!("{what}: a string or an object, not {other}"),
    };
    let text = |key: &str| match obj.get(key) {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => panic!("{what}: `{key}` must be a string, not {other}"),
    };
    for key in obj.keys() {
        assert!(
            ["prefix", "hex", "file", "repeat", "times", "suffix"].contains(&key.as_str()),
            "{what}: unknown member `{key}`"
        );
    }
    let middles = ["hex", "file", "repeat"]
        .iter()
        .filter(|k| obj.contains_key(**k))
        .count();
    assert!(middles <= 1, "{what}: at most one of hex, file, repeat");
    let mut out = text("prefix").into_bytes();
    if obj.contains_key("hex") {
        out.extend(hex::decode(text("hex")).unwrap_or_else(|e| panic!("{what}: hex: {e}")));
    } else if obj.contains_key("file") {
        let path = corpus_dir().join(text("file"));
        out.extend(std::fs::read(&path).unwrap_or_else(|e| panic!("{what}: {path:?}: {e}")));
    } else if obj.contains_key("repeat") {
        let unit = text("repeat");
        let times = obj
            .get("times")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{what}: `repeat` needs `times`"));
        if unit.contains("{i}") {
            for i in 0..times {
                out.extend_from_slice(unit.replace("{i}", &i.to_string()).as_bytes());
            }
        } else {
            out.extend(std::iter::repeat_n(unit.as_bytes(), times as usize).flatten());
        }
    } else {
        assert!(
            !obj.contains_key("times"),
            "{what}: `times` without `repeat`"
        );
    }
    out.extend(text("suffix").into_bytes());
    out
}

/// Every case of the corpus, by file name.
fn load_corpus() -> Vec<(String, Case)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/bad-input exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let case: Case = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("tests/bad-input/{name}.json: {e}"));
            (name, case)
        })
        .collect()
}

/// Sends the case's request; Err says why no answer came back at all.
fn send(d: &Docket, name: &str, req: &CaseRequest) -> Result<Response, String> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
    let mut r = d.http.request(method, format!("{}{}", d.base(), req.path));
    r = match req.auth {
        Auth::Admin => r.bearer_auth(&d.admin),
        Auth::Agent => r.bearer_auth(&d.key),
        Auth::AdminXApiKey => r.header("x-api-key", &d.admin),
        Auth::AgentXApiKey => r.header("x-api-key", &d.key),
        Auth::None => r,
    };
    let mut headers = Map::new();
    if req.body.is_some() {
        headers.insert("content-type".into(), json!("application/json"));
    }
    headers.extend(
        req.headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
    );
    for (header, value) in &headers {
        if value.is_null() {
            continue;
        }
        let value = bytes_of(value, &format!("{name}: header {header}"));
        let value = reqwest::header::HeaderValue::from_bytes(&value)
            .unwrap_or_else(|e| panic!("{name}: header {header} cannot be sent: {e}"));
        r = r.header(header.as_str(), value);
    }
    if let Some(body) = &req.body {
        r = r.body(bytes_of(body, &format!("{name}: body")));
    }
    r.send().map_err(|e| {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            why.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        format!("no answer at all ({why})")
    })
}

/// What is wrong with `resp` as the answer `expect` wants; None if nothing.
fn check(expect: &Expect, resp: Response) -> (u16, Option<String>) {
    let status = resp.status().as_u16();
    let header_code = resp
        .headers()
        .get("docket-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().unwrap_or_default();
    let shown: String = text.chars().take(300).collect();
    let fail = |why: String| (status, Some(format!("{why}; body: {shown}")));
    if !expect.status.contains(status) {
        return fail(format!("status {status}, want {:?}", expect.status.all()));
    }
    if !content_type.starts_with("application/json") {
        return fail(format!("content-type {content_type:?}, not JSON"));
    }
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return fail("the body is not JSON".into());
    };
    let (code, message) = match shape_of(expect.shape, &v) {
        Ok(found) => found,
        Err(why) => return fail(format!("not {:?}'s error shape: {why}", expect.shape)),
    };
    let code = code.or(header_code);
    if let Some(want) = &expect.code
        && code.as_deref() != Some(want)
    {
        return fail(format!("code {code:?}, want {want:?}"));
    }
    for piece in &expect.message {
        if !message.contains(piece.as_str()) {
            return fail(format!("the message does not say {piece:?}"));
        }
    }
    (status, None)
}

/// The code (if the shape carries one) and message of an error body in
/// `shape`, which must be exactly that shape.
fn shape_of(shape: Shape, v: &Value) -> Result<(Option<String>, String), String> {
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    let text = |v: &Value, key: &str| -> Result<String, String> {
        match v.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            other => Err(format!("`{key}` is {other:?}, not a non-empty string")),
        }
    };
    let err = &v["error"];
    match shape {
        Shape::Docket => {
            if keys(v) != ["error"] || keys(err) != ["code", "message"] {
                return Err(format!("members {:?} / {:?}", keys(v), keys(err)));
            }
            Ok((Some(text(err, "code")?), text(err, "message")?))
        }
        Shape::OpenAi => {
            if keys(v) != ["error"] || keys(err) != ["code", "message", "param", "type"] {
                return Err(format!("members {:?} / {:?}", keys(v), keys(err)));
            }
            text(err, "type")?;
            if !(err["param"].is_null() || err["param"].is_string()) {
                return Err("`param` is neither null nor a string".into());
            }
            let code = match &err["code"] {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => return Err(format!("`code` is {other}")),
            };
            Ok((code, text(err, "message")?))
        }
        Shape::Anthropic => {
            if keys(v) != ["error", "type"]
                || v["type"] != "error"
                || keys(err) != ["message", "type"]
            {
                return Err(format!("members {:?} / {:?}", keys(v), keys(err)));
            }
            text(err, "type")?;
            Ok((None, text(err, "message")?))
        }
    }
}

fn log_size(d: &Docket) -> u64 {
    d.ok("GET", "/api/v1/log", &d.admin, Value::Null)["size"]
        .as_u64()
        .expect("log size")
}

fn healthy(d: &Docket) -> bool {
    d.http
        .get(format!("{}/healthz", d.base()))
        .send()
        .is_ok_and(|r| r.status().is_success())
}

#[test]
fn the_bad_input_corpus_is_refused_in_the_right_shape_and_the_server_keeps_serving() {
    let corpus = load_corpus();
    assert!(corpus.len() >= 40, "the corpus has {} cases", corpus.len());
    let mut d = Docket::start(Setup::default());
    let mut failures = Vec::new();
    let mut report = String::new();
    for (name, case) in &corpus {
        let before = log_size(&d);
        let (status, wrong) = match send(&d, name, &case.request) {
            Ok(resp) => check(&case.expect, resp),
            Err(why) => (0, Some(why)),
        };
        assert!(healthy(&d), "the server stopped answering after {name}");
        let grew = log_size(&d) - before;
        let wrong = match wrong {
            None if grew > 0 && !case.expect.records => {
                Some(format!("refused, but {grew} entries were appended"))
            }
            w => w,
        };
        let verdict = wrong.as_deref().unwrap_or("ok");
        report.push_str(&format!("  {status} {name}: {verdict}\n"));
        if let Some(w) = wrong {
            failures.push(format!("{name}: {w}\n    ({})", case.why));
        }
    }
    eprintln!("bad-input corpus, {} cases:\n{report}", corpus.len());

    // Still serving: unauthenticated, authenticated, a write and a model call.
    assert!(healthy(&d));
    let before = log_size(&d);
    let (status, v) = d.api(
        "POST",
        "/api/v1/entries",
        &d.admin,
        json!({"type": "note", "body": {"content": "after the corpus"}}),
    );
    assert_eq!(status, 201, "{v}");
    let r = d.raw(
        "/v1/chat/completions",
        chat_body("gpt-4o-mini", "still there?")
            .to_string()
            .as_bytes(),
        &[],
    );
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text());
    assert!(log_size(&d) >= before + 3, "a note, a decision, a receipt");

    let server = d.server.take().unwrap();
    server.stop();
    let out = run(&["verify", "--data-dir", d.data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "docket verify failed after the corpus: {}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not refused as they should be:\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n")
    );
}

/// Issue 15: `POST /access-reviews {"bogus":1}` opened a review; the
/// access-review routes now refuse members they do not know, by name, and
/// record nothing.
#[test]
fn issue_15_access_reviews_refuse_unknown_members() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), None);
    let http = server.client();
    let post = |path: &str, body: &str| {
        let r = http
            .post(format!("{}{path}", server.base))
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let reviews = || -> usize {
        http.get(format!("{}/api/v1/access-reviews", server.base))
            .bearer_auth(&server.token)
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["access_reviews"]
            .as_array()
            .unwrap()
            .len()
    };

    let (status, v) = post("/api/v1/access-reviews", r#"{"bogus":1}"#);
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_request", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`bogus`"),
        "{v}"
    );
    assert_eq!(reviews(), 0, "no review was opened");

    let (status, v) = post("/api/v1/access-reviews", "{}");
    assert_eq!(status, 201, "{v}");
    let seq = v["seq"].as_u64().unwrap();
    assert_eq!(reviews(), 1);

    // Completing refuses them the same way, before it looks at the review.
    let complete = format!("/api/v1/access-reviews/{seq}/complete");
    let (status, v) = post(&complete, r#"{"force":true}"#);
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`force`"),
        "{v}"
    );
    server.stop();
}
