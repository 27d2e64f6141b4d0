//! The gateway end to end: an agent's own OpenAI and Anthropic SDKs (the
//! official Python packages, driven by tests/sdk/client.py) call a real
//! `docket serve`, which forwards to the stand-in provider
//! (`docket_bench::upstream`). Each case checks what the agent sees, what reached the
//! provider, and what the ledger recorded.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::support::{Serve, ServerProcess, StandIn, run, sdk_client, sdk_python, stdout};

/// The key Docket holds for the providers (the stand-in wants it); agents
/// never see it.
pub(crate) const PROVIDER_KEY: &str = "sk-standin-provider-key-7d41";
/// Not `DOCKET_*`: `docket serve` takes those as its own configuration.
pub(crate) const PROVIDER_KEY_ENV: &str = "GATEWAY_TEST_PROVIDER_KEY";

/// Every model the agent's scope (and its project's rules) name: policy,
/// not scope, decides about them.
pub(crate) const MODELS: &[&str] = &[
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-5",
    "text-embedding-3-small",
    "claude-haiku-4-5",
    "fail-500",
    "slow-300",
    "slow-2000",
    "hang",
    "nowhere",
    "claude-nowhere",
];
const DATA_CLASSES: &[&str] = &["pii", "customer_data", "health"];

/// Version 1: models in scope, but never gpt-4.1 nor health data, and
/// gpt-5 only with a human's approval.
const POLICY_V1: &str = r#"
@id("models-in-scope")
permit(principal, action in [Docket::Action::"call_model", Docket::Action::"embed"], resource)
when { principal.models.contains(resource.name) };

@id("no-gpt-4-1")
forbid(principal, action == Docket::Action::"call_model", resource)
when { resource.name == "gpt-4.1" };

@id("no-health-data")
forbid(principal, action, resource)
when { context.data_classes.contains("health") };

@id("gpt-5-needs-a-human")
@approval("required")
permit(principal, action == Docket::Action::"call_model", resource)
when { resource.name == "gpt-5" };
"#;

/// Version 2: gpt-4.1 allowed after all.
const POLICY_V2: &str = r#"
@id("models-in-scope")
permit(principal, action in [Docket::Action::"call_model", Docket::Action::"embed"], resource)
when { principal.models.contains(resource.name) };

@id("no-health-data")
forbid(principal, action, resource)
when { context.data_classes.contains("health") };
"#;

/// A policy test case: the bot calls `model`.
fn case(name: &str, model: &str, data_classes: &[&str], expect: &str) -> Value {
    json!({
        "name": name,
        "request": {
            "principal": {"agent": "bot", "project": "support", "owner": "dev", "models": MODELS},
            "action": "call_model",
            "resource": {"kind": "model", "id": model, "provider": "openai", "data_classes": data_classes},
            "context": {"time": 1_767_268_800},
        },
        "expect": expect,
    })
}

fn v1_tests() -> Value {
    json!([
        case("a model in scope is allowed", "gpt-4o-mini", &[], "allow"),
        case("gpt-4.1 is forbidden", "gpt-4.1", &[], "deny"),
        case(
            "health data is forbidden",
            "gpt-4o-mini",
            &["health"],
            "deny"
        ),
        case("gpt-5 waits for a human", "gpt-5", &[], "require_approval"),
    ])
}

fn v2_tests() -> Value {
    json!([
        case("gpt-4.1 is allowed again", "gpt-4.1", &[], "allow"),
        case(
            "health data is still forbidden",
            "gpt-4o-mini",
            &["health"],
            "deny"
        ),
    ])
}

/// How a test's Docket is set up.
pub(crate) struct Setup {
    pub(crate) approval_wait_secs: u64,
    pub(crate) approval_ttl_secs: u64,
    /// Submitted by dev and approved by appr before the test starts.
    pub(crate) policy: Option<(&'static str, Value)>,
    /// The OpenAI provider's key as `api_key` in the file, rather than
    /// named by `api_key_env`.
    pub(crate) openai_key_in_file: bool,
    /// The data directory, when not in the test's own temporary directory
    /// (on a small filesystem, say).
    pub(crate) data: Option<PathBuf>,
    /// More `[gateway]` settings, as TOML lines.
    pub(crate) gateway: String,
    /// More configuration tables, as TOML (`[connections]`, …).
    pub(crate) more: String,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            approval_wait_secs: 30,
            approval_ttl_secs: 300,
            policy: Some((POLICY_V1, v1_tests())),
            openai_key_in_file: false,
            data: None,
            gateway: String::new(),
            more: String::new(),
        }
    }
}

/// One `docket serve` in front of one stand-in provider, with three
/// humans — admin; dev (developer and approver, owner of the agent, the
/// human it acts for); appr (approver) — and the agent `bot` of project
/// `support` with an API key.
pub(crate) struct Docket {
    pub(crate) root: tempfile::TempDir,
    pub(crate) data: PathBuf,
    pub(crate) server: Option<ServerProcess>,
    pub(crate) standin: StandIn,
    pub(crate) http: Client,
    pub(crate) admin: String,
    pub(crate) dev: String,
    pub(crate) appr: String,
    /// The bot's API key (`dka_…`) and its credential id.
    pub(crate) key: String,
    pub(crate) credential: String,
}

impl Docket {
    pub(crate) fn start(setup: Setup) -> Self {
        // Before anything is started: says how to get the SDKs if missing.
        sdk_python();
        let standin = StandIn::start(PROVIDER_KEY);
        // A port nothing listens on: bound, then released.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("docket.toml");
        let up = &standin.base;
        // The default providers keep their `api_key_env` (renamed here);
        // the extra ones carry `api_key` in the file.
        std::fs::write(
            &config,
            format!(
                r#"
[identity]
require_verified_approvers = true

[gateway]
# A busy test machine must not shed the tests' calls; admission's
# shedding has tests of its own.
shed_lag_ms = 0
shed_decide_ms = 0
approval_wait_secs = {wait}
approval_ttl_secs = {ttl}
{gateway_more}

[gateway.providers.openai]
base_url = "{up}"
{openai_key}

[gateway.providers.anthropic]
base_url = "{up}"
api_key_env = "{PROVIDER_KEY_ENV}"

[gateway.providers.impatient]
kind = "openai"
base_url = "{up}"
api_key = "{PROVIDER_KEY}"
timeout_secs = 1

[gateway.providers.nowhere]
kind = "openai"
base_url = "http://127.0.0.1:{closed}"
api_key = "{PROVIDER_KEY}"

[gateway.providers.nowhere-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{closed}"
api_key = "{PROVIDER_KEY}"

[[gateway.models]]
pattern = "hang"
provider = "impatient"

[[gateway.models]]
pattern = "nowhere"
provider = "nowhere"

[[gateway.models]]
pattern = "claude-nowhere"
provider = "nowhere-anthropic"

[[gateway.models]]
pattern = "gpt-*"
provider = "openai"

[[gateway.models]]
pattern = "text-embedding-*"
provider = "openai"

[[gateway.models]]
pattern = "fail-*"
provider = "openai"

[[gateway.models]]
pattern = "slow-*"
provider = "openai"

[[gateway.models]]
pattern = "claude-*"
provider = "anthropic"

{more}
"#,
                gateway_more = setup.gateway,
                more = setup.more,
                wait = setup.approval_wait_secs,
                ttl = setup.approval_ttl_secs,
                openai_key = if setup.openai_key_in_file {
                    format!("api_key = \"{PROVIDER_KEY}\"")
                } else {
                    format!("api_key_env = \"{PROVIDER_KEY_ENV}\"")
                },
            ),
        )
        .unwrap();
        let data = setup.data.unwrap_or_else(|| root.path().join("data"));
        let server = ServerProcess::start_with(
            &data,
            None,
            &Serve {
                config: Some(&config),
                env: &[(PROVIDER_KEY_ENV, PROVIDER_KEY)],
            },
        );
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut d = Self {
            root,
            data,
            admin: server.token.clone(),
            server: Some(server),
            standin,
            http,
            dev: String::new(),
            appr: String::new(),
            key: String::new(),
            credential: String::new(),
        };
        d.dev = d.user("dev", &["developer", "approver"]);
        d.appr = d.user("appr", &["approver"]);
        // Approvers and agent owners must be verified here (the config
        // above); the admin records both checks.
        for user in ["dev", "appr"] {
            d.ok(
                "PUT",
                &format!("/api/v1/users/{user}/kyc"),
                &d.admin,
                json!({"status": "verified", "method": "passport check"}),
            );
        }
        d.ok(
            "POST",
            "/api/v1/projects",
            &d.admin,
            json!({"id": "support", "name": "Support", "members": ["dev", "appr"],
                   "rules": [{"agents": ["*"], "models": MODELS, "data_classes": DATA_CLASSES}]}),
        );
        let v = d.ok(
            "POST",
            "/api/v1/agents",
            &d.dev,
            json!({"id": "bot", "name": "Support bot", "project": "support", "purpose": "answers tickets",
                   "scope": {"models": MODELS, "data_classes": DATA_CLASSES}}),
        );
        d.approve_change(v["request"].as_u64().unwrap());
        let v = d.ok("POST", "/api/v1/agents/bot/credentials", &d.dev, json!({}));
        d.key = v["token"].as_str().unwrap().to_owned();
        d.credential = v["credential"].as_str().unwrap().to_owned();
        assert!(d.key.starts_with("dka_"), "{v}");
        if let Some((policy, tests)) = setup.policy {
            let v = d.submit_policy(policy, tests);
            d.approve_change(v["change"].as_u64().unwrap());
        }
        d
    }

    pub(crate) fn base(&self) -> &str {
        &self.server.as_ref().unwrap().base
    }

    /// Creates a user with a password and logs them in; returns their token.
    pub(crate) fn user(&self, id: &str, roles: &[&str]) -> String {
        let password = format!("{id}-gateway-test-password");
        self.ok(
            "POST",
            "/api/v1/users",
            &self.admin,
            json!({"id": id, "name": id, "roles": roles, "password": password}),
        );
        let v: Value = self
            .http
            .post(format!("{}/api/v1/login", self.base()))
            .basic_auth(id, Some(&password))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// Calls Docket's API; returns the status and the JSON answer.
    pub(crate) fn api(&self, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base()))
            .bearer_auth(token);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// [`Docket::api`] that must succeed.
    pub(crate) fn ok(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        let (status, v) = self.api(method, path, token, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// Submitted by dev: the four-eyes rule leaves the approval to appr.
    fn submit_policy(&self, policy: &str, tests: Value) -> Value {
        self.ok(
            "POST",
            "/api/v1/policy/versions",
            &self.dev,
            json!({"policy": policy, "tests": tests, "description": "gateway test policy",
                   "rollback_plan": "roll back to the previous version"}),
        )
    }

    pub(crate) fn approve_change(&self, seq: u64) -> Value {
        self.ok(
            "POST",
            &format!("/api/v1/changes/{seq}/approve"),
            &self.appr,
            json!({}),
        )
    }

    /// The entry at `seq`: `{seq, ts, type, prev, body}`.
    pub(crate) fn entry(&self, seq: u64) -> Value {
        self.ok(
            "GET",
            &format!("/api/v1/entries/{seq}"),
            &self.admin,
            Value::Null,
        )["entry"]
            .clone()
    }

    /// Entries of `kind` about the bot, oldest first.
    pub(crate) fn entries(&self, kind: &str) -> Vec<Value> {
        let v = self.ok(
            "GET",
            &format!("/api/v1/entries?type={kind}&agent=bot&order=asc&limit=1000"),
            &self.admin,
            Value::Null,
        );
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["entry"].clone())
            .collect()
    }

    /// The receipt of the call that `decision` let through.
    fn receipt_for(&self, decision: u64) -> Value {
        let found: Vec<Value> = self
            .entries("receipt")
            .into_iter()
            .filter(|e| e["body"]["decision"] == decision)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one receipt for decision {decision}: {found:?}"
        );
        found[0].clone()
    }

    /// Runs one call through an official SDK as the bot.
    fn sdk(&self, call: &Call) -> Value {
        self.sdk_spawn(call).finish()
    }

    /// Starts one SDK call; [`SdkCall::finish`] collects its result.
    fn sdk_spawn(&self, call: &Call) -> SdkCall {
        self.sdk_spawn_with_key(call, &self.key)
    }

    fn sdk_spawn_with_key(&self, call: &Call, key: &str) -> SdkCall {
        let mut cmd = Command::new(sdk_python());
        cmd.arg(sdk_client()).arg(call.scenario).args([
            "--base-url",
            self.base(),
            "--key",
            key,
            "--timeout",
            "90",
        ]);
        if !call.model.is_empty() {
            cmd.args(["--model", call.model]);
        }
        if !call.prompt.is_empty() {
            cmd.args(["--prompt", call.prompt]);
        }
        if call.stream {
            cmd.arg("--stream");
        }
        for (name, value) in call.headers {
            cmd.arg("--header").arg(format!("{name}={value}"));
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", sdk_python()));
        SdkCall {
            child: Some(child),
            what: format!("{} {}", call.scenario, call.model),
        }
    }

    /// A raw call to the gateway as the bot.
    pub(crate) fn raw(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base()))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().unwrap()
    }

    /// The pending approval of the bot's held call, once there is one.
    fn pending_approval(&self, call: &mut SdkCall) -> Value {
        poll("a pending approval", || {
            call.assert_running();
            let v = self.ok(
                "GET",
                "/api/v1/approvals?state=pending",
                &self.appr,
                Value::Null,
            );
            v["approvals"].as_array().unwrap().first().cloned()
        })
    }

    pub(crate) fn decide(
        &self,
        token: &str,
        approval: &Value,
        decision: &str,
        reason: &str,
    ) -> (u16, Value) {
        self.api(
            "POST",
            &format!("/api/v1/approvals/{}/decide", approval["id"]),
            token,
            json!({"decision": decision, "reason": reason, "shown_sha256": approval["summary_sha256"]}),
        )
    }

    /// Stops the server and starts it again on the same data and
    /// configuration (a new port: requests go to the new base).
    pub(crate) fn restart(&mut self) {
        self.server.take().unwrap().stop();
        let config = self.root.path().join("docket.toml");
        self.server = Some(ServerProcess::start_with(
            &self.data,
            Some(&self.admin),
            &Serve {
                config: Some(&config),
                env: &[(PROVIDER_KEY_ENV, PROVIDER_KEY)],
            },
        ));
    }

    /// Stops the server and checks the whole ledger with `docket verify`.
    pub(crate) fn stop_and_verify(mut self) {
        self.server.take().unwrap().stop();
        let out = run(&["verify", "--data-dir", self.data.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "docket verify failed: {}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(self.data.join("log.pub").exists());
    }
}

/// One SDK call, as tests/sdk/client.py takes it.
#[derive(Default)]
struct Call {
    scenario: &'static str,
    /// Empty: the scenario's default.
    model: &'static str,
    prompt: &'static str,
    stream: bool,
    headers: &'static [(&'static str, &'static str)],
}

/// A running tests/sdk/client.py.
struct SdkCall {
    child: Option<Child>,
    what: String,
}

impl SdkCall {
    /// Panics with the harness's output if it already ended (so a wait
    /// for something it should have caused does not run out the clock).
    fn assert_running(&mut self) {
        let exited = self.child.as_mut().unwrap().try_wait().unwrap().is_some();
        if exited {
            let out = self.output();
            panic!("the SDK call ({}) ended early: {out}", self.what);
        }
    }

    fn output(&mut self) -> String {
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        format!(
            "exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The JSON line client.py printed.
    fn finish(mut self) -> Value {
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the SDK harness failed ({}): {text}{}",
            self.what,
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

impl Drop for SdkCall {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 25 ms until it returns something, for at most 30 s.
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn seq_header(result: &Value, name: &str) -> u64 {
    result["headers"][name]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no {name} header: {result}"))
}

fn is_hex64(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks a refused SDK call: the status, the SDK's exception, Docket's
/// reason in the message, and the decision entry it names.
fn assert_refused(d: &Docket, r: &Value, status: u16, error_type: &str, reason: &str) -> Value {
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["status"], status, "{r}");
    assert_eq!(r["error_type"], error_type, "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(message.contains(reason), "{reason:?} not in {message:?}");
    let decision = d.entry(seq_header(r, "docket-decision"));
    assert_eq!(decision["type"], "decision");
    assert_eq!(decision["body"]["outcome"], "deny", "{decision}");
    assert_eq!(decision["body"]["agent"], "bot");
    decision
}

/// What an allowed call must have left: the SDK's answer, one request at
/// the stand-in with Docket's key and the agent's body, an `allow`
/// decision and a receipt that agrees with the provider's usage.
struct Allowed {
    provider: &'static str,
    path: &'static str,
    model: &'static str,
    /// The body the SDK sends, as the stand-in must get it.
    body: Value,
    /// (input, output) tokens as the SDK reports them.
    usage: (&'static str, &'static str),
    text: Option<&'static str>,
    human: Option<&'static str>,
}

fn assert_allowed(d: &Docket, r: &Value, want: &Allowed) -> Value {
    assert_eq!(r["ok"], true, "{r}");
    if let Some(text) = want.text {
        assert_eq!(r["text"], text, "{r}");
    }
    let input = r["usage"][want.usage.0].as_u64().unwrap();
    let output = if want.usage.1.is_empty() {
        0
    } else {
        r["usage"][want.usage.1].as_u64().unwrap()
    };
    assert!(input > 0, "{r}");

    let seen = d.standin.requests();
    assert_eq!(seen.len(), 1, "one request reached the provider: {seen:?}");
    let req = &seen[0];
    assert_eq!(req["path"], want.path);
    assert_eq!(
        req["body"], want.body,
        "the body is forwarded as the SDK sent it"
    );
    let headers = req["headers"].as_object().unwrap();
    match want.provider {
        "anthropic" => {
            assert_eq!(headers["x-api-key"], PROVIDER_KEY);
            assert!(!headers.contains_key("authorization"), "{headers:?}");
        }
        _ => assert_eq!(headers["authorization"], format!("Bearer {PROVIDER_KEY}")),
    }
    for (name, value) in headers {
        let value = value.as_str().unwrap();
        assert!(
            !value.contains("dka_") && !value.contains(&d.key[4..]),
            "the agent's key reached the provider in {name}"
        );
        assert!(
            !name.starts_with("docket-"),
            "Docket's own header {name} was forwarded"
        );
    }

    let decision_seq = seq_header(r, "docket-decision");
    let decision = d.entry(decision_seq);
    assert_eq!(decision["type"], "decision");
    let db = &decision["body"];
    assert_eq!(db["outcome"], "allow", "{decision}");
    assert_eq!(db["agent"], "bot");
    assert_eq!(db["model"], want.model);
    assert_eq!(db["provider"], want.provider);
    assert_eq!(db["policy"]["version"], 1);
    assert!(is_hex64(&db["request_sha256"]), "{decision}");

    let receipt = match r["headers"].get("docket-receipt") {
        Some(_) => d.entry(seq_header(r, "docket-receipt")),
        None => d.receipt_for(decision_seq),
    };
    assert_eq!(receipt["type"], "receipt");
    let b = &receipt["body"];
    assert_eq!(b["decision"], decision_seq);
    assert_eq!(b["outcome"], "ok", "{receipt}");
    assert_eq!(b["provider"], want.provider);
    assert_eq!(b["model"], want.model);
    assert_eq!(b["api"], want.path);
    assert_eq!(b["agent"], "bot");
    assert_eq!(b["project"], "support");
    assert_eq!(b["credential"], d.credential.as_str());
    match want.human {
        Some(h) => assert_eq!(b["human"], h, "{receipt}"),
        None => assert!(b.get("human").is_none(), "{receipt}"),
    }
    assert_eq!(b["input_tokens"], input, "{receipt} vs {r}");
    assert_eq!(b["output_tokens"], output, "{receipt} vs {r}");
    assert_eq!(b["usage_source"], "provider");
    assert!(b["cost_micro_usd"].as_i64().unwrap() > 0, "{receipt}");
    assert_eq!(b["request_sha256"], db["request_sha256"]);
    assert!(is_hex64(&b["response_sha256"]), "{receipt}");
    assert_eq!(b["upstream_status"], 200);
    assert!(b["latency_us"].is_u64(), "{receipt}");
    d.standin.clear();
    receipt
}

const AS_DEV: &[(&str, &str)] = &[("Docket-On-Behalf-Of", "dev")];

pub(crate) fn chat_body(model: &str, prompt: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": prompt},
    ]})
}

/// Every API the gateway serves, streamed and not, through the official
/// SDKs: the agent gets the provider's answer and usage; the provider gets
/// Docket's key and the agent's body; the ledger gets an `allow` decision
/// and a receipt per call; and `docket verify` passes afterwards.
#[test]
fn allowed_calls_reach_the_provider_with_dockets_key_and_leave_a_receipt() {
    let d = Docket::start(Setup::default());

    // Chat Completions, on behalf of a human, naming data classes and an environment.
    let r = d.sdk(&Call {
        scenario: "openai-chat",
        model: "gpt-4o-mini",
        prompt: "Summarise ticket one",
        headers: &[
            ("Docket-On-Behalf-Of", "dev"),
            ("Docket-Data-Classes", "pii,customer_data"),
            ("Docket-Environment", "prod"),
        ],
        ..Call::default()
    });
    let receipt = assert_allowed(
        &d,
        &r,
        &Allowed {
            provider: "openai",
            path: "/v1/chat/completions",
            model: "gpt-4o-mini",
            body: chat_body("gpt-4o-mini", "Summarise ticket one"),
            usage: ("prompt_tokens", "completion_tokens"),
            text: Some("echo: Summarise ticket one"),
            human: Some("dev"),
        },
    );
    assert_eq!(receipt["body"]["stream"], false);
    assert_eq!(
        receipt["body"]["data_classes"],
        json!(["customer_data", "pii"])
    );
    assert_eq!(receipt["body"]["environment"], "prod");
    assert_eq!(
        r["usage"]["prompt_tokens"], 6,
        "the stand-in counts words: {r}"
    );
    assert_eq!(r["usage"]["completion_tokens"], 4, "{r}");

    // Streamed: the receipt is durable by the time the stream ends.
    let r = d.sdk(&Call {
        scenario: "openai-chat",
        model: "gpt-4o-mini",
        prompt: "Summarise ticket two please",
        stream: true,
        ..Call::default()
    });
    let mut body = chat_body("gpt-4o-mini", "Summarise ticket two please");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let receipt = assert_allowed(
        &d,
        &r,
        &Allowed {
            provider: "openai",
            path: "/v1/chat/completions",
            model: "gpt-4o-mini",
            body,
            usage: ("prompt_tokens", "completion_tokens"),
            text: Some("echo: Summarise ticket two please"),
            human: None,
        },
    );
    assert_eq!(receipt["body"]["stream"], true);
    assert!(r["chunks"].as_u64().unwrap() > 2, "{r}");

    // Responses API, both ways.
    let r = d.sdk(&Call {
        scenario: "openai-responses",
        model: "gpt-4o-mini",
        prompt: "Draft a reply",
        ..Call::default()
    });
    assert_allowed(
        &d,
        &r,
        &Allowed {
            provider: "openai",
            path: "/v1/responses",
            model: "gpt-4o-mini",
            body: json!({"model": "gpt-4o-mini", "instructions": "You are terse.", "input": "Draft a reply"}),
            usage: ("input_tokens", "output_tokens"),
            text: Some("echo: Draft a reply"),
            human: None,
        },
    );
    let r = d.sdk(&Call {
        scenario: "openai-responses",
        model: "gpt-4o-mini",
        prompt: "Draft another reply",
        stream: true,
        headers: AS_DEV,
    });
    let receipt = assert_allowed(
        &d,
        &r,
        &Allowed {
            provider: "openai",
            path: "/v1/responses",
            model: "gpt-4o-mini",
            body: json!({"model": "gpt-4o-mini", "instructions": "You are terse.",
                         "input": "Draft another reply", "stream": true}),
            usage: ("input_tokens", "output_tokens"),
            text: Some("echo: Draft another reply"),
            human: Some("dev"),
        },
    );
    assert_eq!(receipt["body"]["stream"], true);
    assert_eq!(r["response_status"], "completed", "{r}");

    // Embeddings: input tokens only.
    let r = d.sdk(&Call {
        scenario: "openai-embeddings",
        model: "text-embedding-3-small",
        prompt: "refund policy for damaged goods",
        ..Call::default()
    });
    assert_allowed(
        &d,
        &r,
        &Allowed {
            provider: "openai",
            path: "/v1/embeddings",
            model: "text-embedding-3-small",
            body: json!({"model": "text-embedding-3-small", "input": "refund policy for damaged goods",
                         "encoding_format": "base64"}),
            usage: ("prompt_tokens", ""),
            text: None,
            human: None,
        },
    );
    assert_eq!(r["embedding"].as_array().unwrap().len(), 8, "{r}");
    let decision = d.entry(seq_header(&r, "docket-decision"));
    assert_eq!(decision["body"]["action"], "embed");

    // Anthropic Messages, both ways.
    let r = d.sdk(&Call {
        scenario: "anthropic-messages",
        model: "claude-haiku-4-5",
        prompt: "Classify this ticket",
        headers: AS_DEV,
        ..Call::default()
    });
    let anthropic_body = |prompt: &str| {
        json!({"model": "claude-haiku-4-5", "max_tokens": 1024, "system": "You are terse.",
               "messages": [{"role": "user", "content": prompt}]})
    };
    assert_allowed(
        &d,
        &r,
        &Allowed {
            provider: "anthropic",
            path: "/v1/messages",
            model: "claude-haiku-4-5",
            body: anthropic_body("Classify this ticket"),
            usage: ("input_tokens", "output_tokens"),
            text: Some("echo: Classify this ticket"),
            human: Some("dev"),
        },
    );
    let r = d.sdk(&Call {
        scenario: "anthropic-messages",
        model: "claude-haiku-4-5",
        prompt: "Classify that ticket",
        stream: true,
        ..Call::default()
    });
    let mut body = anthropic_body("Classify that ticket");
    body["stream"] = json!(true);
    let receipt = assert_allowed(
        &d,
        &r,
        &Allowed {
            provider: "anthropic",
            path: "/v1/messages",
            model: "claude-haiku-4-5",
            body,
            usage: ("input_tokens", "output_tokens"),
            text: Some("echo: Classify that ticket"),
            human: None,
        },
    );
    assert_eq!(receipt["body"]["stream"], true);
    assert_eq!(r["stop_reason"], "end_turn", "{r}");

    // A streamed chat that did not ask for usage: Docket asks the
    // provider for it (so the receipt has real usage) and keeps the extra
    // usage chunk from the agent.
    let raw = br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"count my words"}]}"#;
    let resp = d.raw("/v1/chat/completions", raw, &[]);
    assert_eq!(resp.status(), 200);
    let decision_seq: u64 = resp.headers()["docket-decision"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = resp.text().unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data != "[DONE]" {
            let chunk: Value = serde_json::from_str(data).unwrap();
            assert!(
                chunk["usage"].is_null(),
                "a usage chunk reached the agent: {chunk}"
            );
        }
    }
    let seen = d.standin.requests();
    assert_eq!(
        seen[0]["body"]["stream_options"],
        json!({"include_usage": true})
    );
    let decision = d.entry(decision_seq);
    assert_eq!(
        decision["body"]["request_sha256"],
        docket_server::governance::request_digest("POST", "/v1/chat/completions", raw),
        "the decision names the exact bytes the agent sent"
    );
    let receipt = d.receipt_for(decision_seq);
    assert_eq!(receipt["body"]["usage_source"], "provider", "{receipt}");
    assert_eq!(receipt["body"]["input_tokens"], 3, "{receipt}");
    assert_eq!(receipt["body"]["output_tokens"], 4, "{receipt}");
    d.standin.clear();

    // The model list is the agent's scope, answered by Docket itself.
    let r = d.sdk(&Call {
        scenario: "openai-models",
        ..Call::default()
    });
    let mut models: Vec<&str> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    models.sort_unstable();
    let mut want = MODELS.to_vec();
    want.sort_unstable();
    assert_eq!(models, want, "{r}");
    assert!(d.standin.requests().is_empty());

    d.stop_and_verify();
}

/// A model the policy forbids, and a forbidden data class named in
/// `Docket-Data-Classes`: the SDK raises PermissionDeniedError with
/// Docket's reason, the decision is recorded, the provider sees nothing.
#[test]
fn calls_the_policy_forbids_are_refused_before_the_provider() {
    let d = Docket::start(Setup::default());
    let r = d.sdk(&Call {
        scenario: "openai-chat",
        model: "gpt-4.1",
        prompt: "Summarise ticket three",
        ..Call::default()
    });
    let decision = assert_refused(&d, &r, 403, "PermissionDeniedError", "no-gpt-4-1");
    assert_eq!(decision["body"]["stage"], "policy");
    assert_eq!(
        decision["body"]["policy"]["determining"],
        json!(["no-gpt-4-1"])
    );
    assert_eq!(r["headers"]["docket-error-code"], "policy_denied");
    assert_eq!(
        r["body"]["code"], "policy_denied",
        "OpenAI's error shape: {r}"
    );

    let r = d.sdk(&Call {
        scenario: "anthropic-messages",
        model: "claude-haiku-4-5",
        prompt: "Look up the patient record",
        headers: &[("Docket-Data-Classes", "customer_data, health")],
        ..Call::default()
    });
    let decision = assert_refused(&d, &r, 403, "PermissionDeniedError", "no-health-data");
    assert_eq!(
        decision["body"]["data_classes"],
        json!(["customer_data", "health"])
    );
    assert_eq!(r["body"]["type"], "error", "Anthropic's error shape: {r}");
    assert_eq!(r["body"]["error"]["type"], "permission_error", "{r}");

    // Outside the agent's scope: refused before policy is asked.
    let r = d.sdk(&Call {
        scenario: "openai-chat",
        model: "gpt-4o",
        prompt: "Summarise ticket four",
        ..Call::default()
    });
    let decision = assert_refused(
        &d,
        &r,
        403,
        "PermissionDeniedError",
        "outside agent bot's scope",
    );
    assert_eq!(decision["body"]["stage"], "scope");

    assert!(
        d.standin.requests().is_empty(),
        "{:?}",
        d.standin.requests()
    );
    // Nothing was let through, so nothing has a receipt.
    assert!(d.entries("receipt").is_empty());
}

/// gpt-5 needs a human: approved while the SDK waits, the call goes
/// through; denied, the SDK gets a 403 naming the denial; and over raw
/// HTTP the 202 + `Docket-Approval` resume path, bound to the exact
/// request and good for one call.
#[test]
fn held_calls_go_ahead_only_with_a_humans_approval() {
    let d = Docket::start(Setup::default());

    // (a) Approved while the SDK waits.
    let mut call = d.sdk_spawn(&Call {
        scenario: "openai-chat",
        model: "gpt-5",
        prompt: "Refund order 1234",
        headers: AS_DEV,
        ..Call::default()
    });
    let approval = d.pending_approval(&mut call);
    assert_eq!(approval["agent"], "bot");
    assert_eq!(approval["human"], "dev");
    assert_eq!(approval["summary"]["model"], "gpt-5");
    // dev is an approver, but the agent acts for dev: four eyes.
    let (status, v) = d.decide(&d.dev, &approval, "approve", "fine");
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "four_eyes", "{v}");
    // An approver must decide on what they were shown.
    let (status, v) = d.api(
        "POST",
        &format!("/api/v1/approvals/{}/decide", approval["id"]),
        &d.appr,
        json!({"decision": "approve", "shown_sha256": "00".repeat(32)}),
    );
    assert_eq!(status, 409, "{v}");
    // An approver whose identity nobody has verified may not approve.
    let unverified = d.user("appr2", &["approver"]);
    let (status, v) = d.decide(&unverified, &approval, "approve", "looks fine");
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "identity_unverified", "{v}");
    let (status, v) = d.decide(&d.appr, &approval, "approve", "refund is within policy");
    assert_eq!(status, 200, "{v}");
    let r = call.finish();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["text"], "echo: Refund order 1234");
    assert_eq!(d.standin.requests().len(), 1);
    d.standin.clear();

    let id = approval["id"].as_u64().unwrap();
    let requested = d.entry(id);
    assert_eq!(requested["type"], "approval.requested");
    let held = d.entry(requested["body"]["decision"].as_u64().unwrap());
    assert_eq!(held["body"]["outcome"], "require_approval", "{held}");
    assert_eq!(
        held["body"]["policy"]["determining"],
        json!(["gpt-5-needs-a-human", "models-in-scope"])
    );
    let decided: Vec<Value> = d
        .entries("approval.decided")
        .into_iter()
        .filter(|e| e["body"]["approval"] == id)
        .collect();
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["body"]["by"], "appr");
    assert_eq!(decided[0]["body"]["decision"], "approve");
    assert_eq!(
        decided[0]["body"]["shown_sha256"],
        approval["summary_sha256"]
    );
    assert_eq!(decided[0]["body"]["shown"], approval["summary"]);
    let used: Vec<Value> = d
        .entries("approval.used")
        .into_iter()
        .filter(|e| e["body"]["approval"] == id)
        .collect();
    assert_eq!(used.len(), 1, "{used:?}");
    let go = d.entry(seq_header(&r, "docket-decision"));
    assert_eq!(go["body"]["outcome"], "allow");
    assert_eq!(go["body"]["stage"], "approval");
    assert_eq!(go["body"]["approval"], id);
    // The go-ahead names the policies that decided it, like the hold did.
    assert_eq!(
        go["body"]["policy"]["determining"],
        json!(["gpt-5-needs-a-human", "models-in-scope"]),
        "{go}"
    );
    // The gateway recorded that call; the agent cannot add its own account.
    let (status, v) = d.api(
        "POST",
        "/api/v1/record",
        &d.key,
        json!({"decision": go["seq"], "outcome": "ok"}),
    );
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "not_agent_reported", "{v}");
    // A developer outside the project sees none of its held actions.
    let outsider = d.user("outsider", &["developer"]);
    let (status, v) = d.api("GET", "/api/v1/approvals", &outsider, Value::Null);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["approvals"], json!([]), "{v}");
    let (status, _) = d.api(
        "GET",
        &format!("/api/v1/approvals/{id}"),
        &outsider,
        Value::Null,
    );
    assert_eq!(status, 404);
    let (_, v) = d.api(
        "GET",
        &format!("/api/v1/approvals/{id}"),
        &d.dev,
        Value::Null,
    );
    assert_eq!(v["id"], id, "a member sees it: {v}");
    let receipt = d.entry(seq_header(&r, "docket-receipt"));
    // Checked at the end, with the other approval receipts.
    let (waited_receipt, waited_approval) = (receipt.clone(), id);
    assert_eq!(receipt["body"]["human"], "dev");
    assert_eq!(receipt["body"]["outcome"], "ok");
    assert!(requested["seq"].as_u64() < decided[0]["seq"].as_u64());
    assert!(decided[0]["seq"].as_u64() < used[0]["seq"].as_u64());
    assert!(used[0]["seq"].as_u64() < receipt["seq"].as_u64());

    // (b) Denied while the SDK waits.
    let mut call = d.sdk_spawn(&Call {
        scenario: "openai-responses",
        model: "gpt-5",
        prompt: "Delete every ticket",
        ..Call::default()
    });
    let approval = d.pending_approval(&mut call);
    let (status, v) = d.decide(&d.appr, &approval, "deny", "nobody deletes every ticket");
    assert_eq!(status, 200, "{v}");
    let r = call.finish();
    assert_eq!(r["status"], 403, "{r}");
    assert_eq!(r["error_type"], "PermissionDeniedError", "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(
        message.contains("denied by appr: nobody deletes every ticket"),
        "{message}"
    );
    assert!(d.standin.requests().is_empty());

    // (d) Raw HTTP: answered 202 at once with the approval to resume with.
    let body = br#"{"model":"gpt-5","messages":[{"role":"user","content":"Escalate ticket 77"}]}"#;
    let other = br#"{"model":"gpt-5","messages":[{"role":"user","content":"Escalate ticket 78"}]}"#;
    let resp = d.raw(
        "/v1/chat/completions",
        body,
        &[("Docket-Approval-Wait", "0")],
    );
    assert_eq!(resp.status(), 202);
    let held: Value = resp.json().unwrap();
    assert_eq!(held["state"], "pending", "{held}");
    let id = held["approval"].as_u64().unwrap();
    let id_text = id.to_string();
    let decision = d.entry(held["decision"].as_u64().unwrap());
    assert_eq!(
        decision["body"]["request_sha256"],
        docket_server::governance::request_digest("POST", "/v1/chat/completions", body)
    );
    let resume = |b: &[u8]| {
        let r = d.raw("/v1/chat/completions", b, &[("Docket-Approval", &id_text)]);
        let status = r.status().as_u16();
        let receipt = r
            .headers()
            .get("docket-receipt")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        (status, r.json::<Value>().unwrap(), receipt)
    };
    let (status, v, _) = resume(body);
    assert_eq!(status, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still pending"),
        "{v}"
    );
    let approval = d.ok(
        "GET",
        &format!("/api/v1/approvals/{id}"),
        &d.appr,
        Value::Null,
    );
    let (status, v) = d.decide(&d.appr, &approval, "approve", "escalation is fine");
    assert_eq!(status, 200, "{v}");
    let (status, v, _) = resume(other);
    assert_eq!(status, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{v}"
    );
    assert!(d.standin.requests().is_empty());
    let (status, v, receipt) = resume(body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "echo: Escalate ticket 77"
    );
    let receipt = d.entry(receipt.expect("a docket-receipt header"));
    assert_eq!(receipt["body"]["approval"], id, "{receipt}");
    let (status, v, _) = resume(body);
    assert_eq!(status, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{v}"
    );
    assert_eq!(d.standin.requests().len(), 1, "one approval, one call");

    // Regression: the receipt of a call approved while it waited once
    // lacked `approval` (only the resume-by-header path named it).
    assert_eq!(
        waited_receipt["body"]["approval"], waited_approval,
        "the receipt of a call approved while it waited names its approval: {waited_receipt}"
    );
}

/// Nobody decides: the approval expires, the waiting SDK is refused, and
/// the approval can be neither decided nor used afterwards.
#[test]
fn an_undecided_approval_expires_and_the_call_is_refused() {
    let d = Docket::start(Setup {
        approval_wait_secs: 2,
        approval_ttl_secs: 2,
        ..Setup::default()
    });
    let r = d.sdk(&Call {
        scenario: "openai-chat",
        model: "gpt-5",
        prompt: "Refund order 999",
        ..Call::default()
    });
    assert_eq!(r["status"], 403, "{r}");
    assert_eq!(r["error_type"], "PermissionDeniedError");
    let message = r["message"].as_str().unwrap();
    assert!(
        message.contains("not granted: the approval is expired"),
        "{message}"
    );
    let id = r["headers"]["docket-approval"].as_str().unwrap().to_owned();
    let approval = d.ok(
        "GET",
        &format!("/api/v1/approvals/{id}"),
        &d.appr,
        Value::Null,
    );
    assert_eq!(approval["state"], "expired");
    let (status, v) = d.decide(&d.appr, &approval, "approve", "too late");
    assert_eq!(status, 409, "{v}");
    let body = serde_json::to_vec(&chat_body("gpt-5", "Refund order 999")).unwrap();
    let resp = d.raw("/v1/chat/completions", &body, &[("Docket-Approval", &id)]);
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );
    assert!(d.standin.requests().is_empty());
}

/// The provider key written in the configuration file, as
/// `[gateway.providers.openai] api_key = "…"`, is the key the provider gets.
#[test]
fn a_provider_key_in_the_configuration_file_is_used() {
    // Regression: the built-in providers' default `api_key_env` is merged
    // under the file's section (TOML cannot unset it); a key given in the
    // file must win instead of `docket serve` refusing to start.
    let d = Docket::start(Setup {
        openai_key_in_file: true,
        ..Setup::default()
    });
    let r = d.sdk(&Call {
        scenario: "openai-chat",
        model: "gpt-4o-mini",
        prompt: "Summarise ticket twelve",
        ..Call::default()
    });
    assert_eq!(r["ok"], true, "{r}");
    let seen = d.standin.requests();
    assert_eq!(
        seen[0]["headers"]["authorization"],
        format!("Bearer {PROVIDER_KEY}")
    );
}

/// Kill switches for the agent, its project and everything: the next call
/// is refused with the switch's reason; released, calls work again.
#[test]
fn kill_switches_stop_calls_until_released() {
    let d = Docket::start(Setup::default());
    let call = Call {
        scenario: "openai-chat",
        model: "gpt-4o-mini",
        prompt: "Summarise ticket five",
        ..Call::default()
    };
    assert_eq!(d.sdk(&call)["ok"], true);

    // The agent's owner stops it.
    let agent = json!({"scope": "agent", "agent": "bot", "reason": "runaway refund loop"});
    // Regression: serde cannot deny unknown fields beside a flattened
    // target, so this documented body was once refused as "unknown field
    // `scope`"; the handler now checks the keys itself.
    d.ok(
        "POST",
        "/api/v1/kill-switches/engage",
        &d.dev,
        agent.clone(),
    );
    let r = d.sdk(&call);
    let decision = assert_refused(
        &d,
        &r,
        403,
        "PermissionDeniedError",
        "the kill switch of agent bot is engaged: runaway refund loop",
    );
    assert_eq!(decision["body"]["stage"], "kill_switch");
    assert_eq!(r["headers"]["docket-error-code"], "kill_switch");
    d.ok("POST", "/api/v1/kill-switches/release", &d.appr, agent);
    assert_eq!(d.sdk(&call)["ok"], true);

    let project = json!({"scope": "project", "project": "support", "reason": "data incident"});
    d.ok(
        "POST",
        "/api/v1/kill-switches/engage",
        &d.appr,
        project.clone(),
    );
    let r = d.sdk(&Call {
        scenario: "anthropic-messages",
        model: "claude-haiku-4-5",
        prompt: "Classify ticket six",
        ..Call::default()
    });
    assert_refused(
        &d,
        &r,
        403,
        "PermissionDeniedError",
        "the kill switch of project support is engaged: data incident",
    );
    d.ok("POST", "/api/v1/kill-switches/release", &d.appr, project);
    assert_eq!(d.sdk(&call)["ok"], true);

    let global = json!({"scope": "global", "reason": "provider outage drill"});
    d.ok(
        "POST",
        "/api/v1/kill-switches/engage",
        &d.admin,
        global.clone(),
    );
    let listed = d.ok("GET", "/api/v1/kill-switches", &d.appr, Value::Null);
    assert_eq!(listed["engaged"][0]["scope"], "global", "{listed}");
    let r = d.sdk(&Call {
        scenario: "openai-embeddings",
        model: "text-embedding-3-small",
        ..Call::default()
    });
    assert_refused(
        &d,
        &r,
        403,
        "PermissionDeniedError",
        "the global kill switch is engaged: provider outage drill",
    );
    d.ok("POST", "/api/v1/kill-switches/release", &d.admin, global);
    assert_eq!(d.sdk(&call)["ok"], true);

    let reached: Vec<String> = d
        .standin
        .requests()
        .iter()
        .map(|r| r["body"]["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reached, ["gpt-4o-mini"; 4],
        "only the calls made while no switch was engaged"
    );
}

/// Waits, if need be, until the current UTC minute has more than
/// `needed` left: the rate limiter counts a sliding minute estimated from
/// whole-minute buckets, which can forget a request made just before a
/// minute boundary.
fn clear_of_minute_boundary(needed: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    if into + needed > Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(60) - into + Duration::from_millis(100));
    }
}

/// A daily budget: once the agent has spent it, the next call is refused
/// with 429 (RateLimitError) naming the budget. A rate limit of two
/// requests a minute refuses the third.
#[test]
fn budgets_and_rate_limits_refuse_with_429() {
    let mut d = Docket::start(Setup::default());
    let call = Call {
        scenario: "openai-chat",
        model: "gpt-4o-mini",
        prompt: "Summarise ticket seven",
        ..Call::default()
    };

    // Rate limit, on a second key of the bot so the budget below is apart.
    let v = d.ok("POST", "/api/v1/agents/bot/credentials", &d.dev, json!({}));
    let second_key = v["token"].as_str().unwrap().to_owned();
    d.ok(
        "PUT",
        "/api/v1/limits",
        &d.admin,
        json!({"scope": "credential", "credential": v["credential"], "limits": {"requests_per_minute": 2}}),
    );
    // Room for two calls and a restart before the minute ends.
    clear_of_minute_boundary(Duration::from_secs(30));
    for _ in 0..2 {
        let r = d.sdk_spawn_with_key(&call, &second_key).finish();
        assert_eq!(r["ok"], true, "{r}");
    }
    let r = d.sdk_spawn_with_key(&call, &second_key).finish();
    let decision = assert_refused(
        &d,
        &r,
        429,
        "RateLimitError",
        "reached its rate limit of 2 requests per minute",
    );
    assert_eq!(decision["body"]["stage"], "rate_limit");
    assert_eq!(r["headers"]["retry-after"], "60");
    assert_eq!(d.standin.requests().len(), 2);
    d.standin.clear();
    // A restart does not open the window again: the last minutes' calls
    // are read back from the ledger.
    d.restart();
    let r = d.sdk_spawn_with_key(&call, &second_key).finish();
    assert_refused(
        &d,
        &r,
        429,
        "RateLimitError",
        "reached its rate limit of 2 requests per minute",
    );
    assert!(d.standin.requests().is_empty());

    // Budget: the agent's spending today counts, including what it spent
    // before the budget was set (the rate-limited calls above).
    let spent = || {
        let limits = d.ok("GET", "/api/v1/limits", &d.admin, Value::Null);
        limits["limits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["scope"] == "agent")
            .unwrap_or_else(|| panic!("no agent limits: {limits}"))["spent_today_micro_usd"]
            .as_i64()
            .unwrap()
    };
    let budget = |micro_usd: i64| {
        d.ok(
            "PUT",
            "/api/v1/limits",
            &d.admin,
            json!({"scope": "agent", "agent": "bot", "limits": {"budget_day_micro_usd": micro_usd}}),
        );
    };
    budget(1_000_000);
    let before = spent();
    assert!(before > 0, "the two calls above were counted: {before}");
    let r = d.sdk(&call);
    assert_eq!(r["ok"], true, "{r}");
    let cost = d.entry(seq_header(&r, "docket-receipt"))["body"]["cost_micro_usd"]
        .as_i64()
        .unwrap();
    assert!(cost > 0);
    assert_eq!(spent(), before + cost);
    // A budget exactly spent: the next call would pass it.
    budget(before + cost);
    let r = d.sdk(&call);
    let decision = assert_refused(
        &d,
        &r,
        429,
        "RateLimitError",
        "would exceed its daily budget",
    );
    assert_eq!(decision["body"]["stage"], "budget");
    assert_eq!(r["headers"]["docket-error-code"], "budget_exceeded");
    assert_eq!(
        d.standin.requests().len(),
        1,
        "the refused call never reached the provider"
    );
}

/// The provider fails: its own 500 reaches the SDK unchanged; an
/// unreachable provider is a 502 and a hung one a 504, each in the
/// provider's error shape; every one leaves a receipt.
#[test]
fn provider_failures_reach_the_sdk_in_the_providers_shape() {
    let d = Docket::start(Setup::default());

    let r = d.sdk(&Call {
        scenario: "openai-chat",
        model: "fail-500",
        prompt: "Summarise ticket eight",
        ..Call::default()
    });
    assert_eq!(r["status"], 500, "{r}");
    assert_eq!(r["error_type"], "InternalServerError");
    assert_eq!(
        r["body"]["type"], "server_error",
        "the stand-in's own error: {r}"
    );
    assert!(
        r["body"]["message"]
            .as_str()
            .unwrap()
            .contains("the stand-in failed on purpose"),
        "{r}"
    );
    let receipt = d.entry(seq_header(&r, "docket-receipt"));
    assert_eq!(receipt["body"]["outcome"], "upstream_error", "{receipt}");
    assert_eq!(receipt["body"]["upstream_status"], 500);
    assert_eq!(
        receipt["body"]["cost_micro_usd"], 0,
        "a provider error is not billed: {receipt}"
    );
    assert_eq!(
        receipt["body"]["decision"],
        seq_header(&r, "docket-decision")
    );
    assert_eq!(d.standin.requests().len(), 1);
    d.standin.clear();

    let r = d.sdk(&Call {
        scenario: "openai-chat",
        model: "nowhere",
        ..Call::default()
    });
    assert_eq!(r["status"], 502, "{r}");
    assert_eq!(
        r["body"]["code"], "upstream_unreachable",
        "OpenAI's shape: {r}"
    );
    assert_eq!(r["body"]["type"], "server_error", "{r}");
    let receipt = d.entry(seq_header(&r, "docket-receipt"));
    assert_eq!(receipt["body"]["outcome"], "upstream_error", "{receipt}");
    assert_eq!(receipt["body"]["provider"], "nowhere");
    assert!(
        receipt["body"].get("upstream_status").is_none(),
        "{receipt}"
    );
    assert!(
        receipt["body"]["error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{receipt}"
    );

    let r = d.sdk(&Call {
        scenario: "anthropic-messages",
        model: "claude-nowhere",
        ..Call::default()
    });
    assert_eq!(r["status"], 502, "{r}");
    assert_eq!(r["body"]["type"], "error", "Anthropic's shape: {r}");
    assert_eq!(r["body"]["error"]["type"], "api_error", "{r}");
    assert_eq!(r["headers"]["docket-error-code"], "upstream_unreachable");
    let receipt = d.entry(seq_header(&r, "docket-receipt"));
    assert_eq!(receipt["body"]["provider"], "nowhere-anthropic");
    assert_eq!(receipt["body"]["outcome"], "upstream_error");

    // The provider with a one-second limit never answers.
    let r = d.sdk(&Call {
        scenario: "openai-chat",
        model: "hang",
        ..Call::default()
    });
    assert_eq!(r["status"], 504, "{r}");
    assert_eq!(r["body"]["code"], "upstream_timeout", "{r}");
    let receipt = d.entry(seq_header(&r, "docket-receipt"));
    assert_eq!(receipt["body"]["outcome"], "upstream_error", "{receipt}");
    assert_eq!(receipt["body"]["provider"], "impatient");
    assert_eq!(
        d.standin.requests().len(),
        1,
        "the hung call did reach the provider"
    );
}

/// Before any version is active everything is denied. A version needs a
/// second human (four eyes), one whose tests fail is refused at
/// submission, and a rollback is itself a change that takes effect only
/// once approved.
#[test]
fn policy_changes_need_a_second_human_and_rollback_is_a_change_too() {
    let d = Docket::start(Setup {
        policy: None,
        ..Setup::default()
    });
    let gpt41 = Call {
        scenario: "openai-chat",
        model: "gpt-4.1",
        prompt: "Summarise ticket nine",
        ..Call::default()
    };
    let mini = Call {
        scenario: "openai-chat",
        model: "gpt-4o-mini",
        prompt: "Summarise ticket ten",
        ..Call::default()
    };
    let r = d.sdk(&mini);
    let decision = assert_refused(
        &d,
        &r,
        403,
        "PermissionDeniedError",
        "Docket refused this call",
    );
    assert_eq!(decision["body"]["stage"], "policy");
    assert!(
        decision["body"]["policy"]["version"].is_null(),
        "{decision}"
    );

    // Version 1: its author cannot approve it; another approver can.
    let v = d.submit_policy(POLICY_V1, v1_tests());
    assert_eq!(v["version"], 1, "{v}");
    let change = v["change"].as_u64().unwrap();
    let (status, e) = d.api(
        "POST",
        &format!("/api/v1/changes/{change}/approve"),
        &d.dev,
        json!({}),
    );
    assert_eq!(status, 403, "{e}");
    assert!(e.to_string().contains("four-eyes"), "{e}");
    assert_eq!(d.sdk(&mini)["status"], 403, "still nothing is active");
    d.approve_change(change);
    assert_eq!(d.sdk(&mini)["ok"], true);
    assert_refused(
        &d,
        &d.sdk(&gpt41),
        403,
        "PermissionDeniedError",
        "no-gpt-4-1",
    );

    // A version whose own tests fail is refused when submitted.
    let failing = json!([case("gpt-4.1 is still forbidden", "gpt-4.1", &[], "deny")]);
    let (status, e) = d.api(
        "POST",
        "/api/v1/policy/versions",
        &d.dev,
        json!({"policy": POLICY_V2, "tests": failing, "description": "d", "rollback_plan": "r"}),
    );
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["code"], "policy_tests_failed", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-4.1 is still forbidden"),
        "{e}"
    );

    // Version 2 allows gpt-4.1, once approved.
    let v = d.submit_policy(POLICY_V2, v2_tests());
    assert_eq!(v["version"], 2, "{v}");
    assert_eq!(
        d.sdk(&gpt41)["status"],
        403,
        "pending changes do not take effect"
    );
    d.approve_change(v["change"].as_u64().unwrap());
    let r = d.sdk(&gpt41);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        d.entry(seq_header(&r, "docket-decision"))["body"]["policy"]["version"],
        2
    );

    // Rolling back to version 1 is a change request of its own.
    let v = d.ok(
        "POST",
        "/api/v1/policy/rollback",
        &d.dev,
        json!({"version": 1, "description": "gpt-4.1 misbehaves", "rollback_plan": "activate version 2"}),
    );
    let change = v["change"].as_u64().unwrap();
    assert_eq!(d.sdk(&gpt41)["ok"], true, "not rolled back until approved");
    let (status, e) = d.api(
        "POST",
        &format!("/api/v1/changes/{change}/approve"),
        &d.dev,
        json!({}),
    );
    assert_eq!(status, 403, "{e}");
    d.approve_change(change);
    let r = d.sdk(&gpt41);
    let decision = assert_refused(&d, &r, 403, "PermissionDeniedError", "no-gpt-4-1");
    assert_eq!(decision["body"]["policy"]["version"], 1);
    let policy = d.ok("GET", "/api/v1/policy", &d.appr, Value::Null);
    assert_eq!(policy["active"]["version"], 1, "{policy}");
}

/// Fail-closed: while the ledger cannot be written (another process holds
/// SQLite's write lock, as a backup or an operator's `sqlite3` might),
/// calls are refused with 503 and nothing reaches the provider; once it
/// can be written again, calls work and the log still verifies.
#[test]
fn an_unwritable_ledger_refuses_calls() {
    let d = Docket::start(Setup::default());
    let call = Call {
        scenario: "openai-chat",
        model: "gpt-4o-mini",
        prompt: "Summarise ticket eleven",
        ..Call::default()
    };
    assert_eq!(d.sdk(&call)["ok"], true);
    d.standin.clear();

    let lock = rusqlite::Connection::open(d.data.join("docket.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = d.sdk(&call);
    assert_eq!(r["status"], 503, "{r}");
    assert_eq!(r["error_type"], "InternalServerError", "{r}");
    assert_eq!(r["body"]["code"], "ledger_unavailable", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("fail-closed"),
        "{r}"
    );
    assert!(d.standin.requests().is_empty(), "nothing was forwarded");
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);

    let r = d.sdk(&call);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(d.standin.requests().len(), 1);
    d.stop_and_verify();
}

/// Only datasets named `tickets` may be read.
const TOOL_POLICY: &str = r#"
@id("read-tickets")
permit(principal, action == Docket::Action::"read_data", resource)
when { resource.name == "tickets" };
"#;

/// A tool Docket cannot proxy: the agent asks `authorize`, acts, and
/// reports the outcome with `record`; both entries say the agent reported
/// them, and an outcome is recorded once, only for an allowing decision.
#[test]
fn tools_docket_cannot_proxy_go_through_authorize_and_record() {
    let dataset = |name: &str, expect: &str| {
        json!({
            "name": format!("read {name}"),
            "request": {
                "principal": {"agent": "bot", "project": "support", "owner": "dev",
                              "data_classes": ["pii"]},
                "action": "read_data",
                "resource": {"kind": "dataset", "id": name, "data_classes": ["pii"]},
                "context": {"time": 1_767_268_800},
            },
            "expect": expect,
        })
    };
    let d = Docket::start(Setup {
        policy: Some((
            TOOL_POLICY,
            json!([dataset("tickets", "allow"), dataset("payroll", "deny")]),
        )),
        ..Setup::default()
    });
    let ask = |name: &str, classes: &[&str]| {
        d.api(
            "POST",
            "/api/v1/authorize",
            &d.key,
            json!({"action": "read_data", "name": name, "data_classes": classes,
                   "arguments": {"ticket": 42}}),
        )
    };

    let (status, v) = ask("tickets", &["pii"]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["outcome"], "allow", "{v}");
    let allowed = v["decision"].as_u64().unwrap();
    let decision = d.entry(allowed);
    assert_eq!(decision["type"], "decision");
    assert_eq!(decision["body"]["source"], "agent_reported");
    assert_eq!(decision["body"]["dataset"], "tickets");
    assert_eq!(
        decision["body"]["policy"]["determining"],
        json!(["read-tickets"])
    );
    assert!(
        decision["body"]["request"]["arguments_sha256"].is_string(),
        "{decision}"
    );

    let record = |decision: u64| {
        d.api(
            "POST",
            "/api/v1/record",
            &d.key,
            json!({"decision": decision, "outcome": "ok", "latency_ms": 12,
                   "output_sha256": "ab".repeat(32), "cost_micro_usd": 1234}),
        )
    };
    // The tool's reported cost is the agent's word: recorded, but it
    // counts against no budget (budgets count what the gateway observed).
    d.ok(
        "PUT",
        "/api/v1/limits",
        &d.admin,
        json!({"scope": "agent", "agent": "bot", "limits": {"budget_day_micro_usd": 1_000_000_000}}),
    );
    let spent = |d: &Docket| {
        let limits = d.ok("GET", "/api/v1/limits", &d.admin, Value::Null);
        limits["limits"][0]["spent_today_micro_usd"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(spent(&d), 0);
    let (status, v) = record(allowed);
    assert_eq!(status, 201, "{v}");
    assert_eq!(spent(&d), 0);
    let receipt = d.entry(v["receipt"].as_u64().unwrap());
    assert_eq!(receipt["body"]["cost_micro_usd"], 1234);
    assert_eq!(receipt["type"], "receipt");
    assert_eq!(receipt["body"]["source"], "agent_reported");
    assert_eq!(receipt["body"]["decision"], allowed);
    assert_eq!(receipt["body"]["dataset"], "tickets");
    let (status, v) = record(allowed);
    assert_eq!(status, 409, "one outcome per decision: {v}");
    assert_eq!(v["error"]["code"], "already_recorded");

    // Refused by policy, and then there is nothing to record.
    let (status, v) = ask("payroll", &["pii"]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["outcome"], "deny");
    assert_eq!(v["stage"], "policy");
    let (status, v) = record(v["decision"].as_u64().unwrap());
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "not_allowed");

    // A data class outside the agent's scope never reaches policy.
    let (status, v) = ask("tickets", &["financial"]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["outcome"], "deny");
    assert_eq!(v["stage"], "scope");

    // Model calls are the gateway's to observe.
    let (status, v) = d.api(
        "POST",
        "/api/v1/authorize",
        &d.key,
        json!({"action": "call_model", "name": "gpt-4o-mini"}),
    );
    assert_eq!(status, 400, "{v}");

    // A restart forgets nothing: the recorded outcome is found in the
    // ledger, and a decision made before it can still get its one outcome.
    let (status, v) = ask("tickets", &["pii"]);
    assert_eq!(status, 200, "{v}");
    let unrecorded = v["decision"].as_u64().unwrap();
    let mut d = d;
    d.restart();
    let record = |decision: u64| {
        d.api(
            "POST",
            "/api/v1/record",
            &d.key,
            json!({"decision": decision, "outcome": "ok", "cost_micro_usd": 1234}),
        )
    };
    let (status, v) = record(allowed);
    assert_eq!(status, 409, "after a restart: {v}");
    assert_eq!(v["error"]["code"], "already_recorded");
    assert_eq!(spent(&d), 0, "nor after a restart");
    let (status, v) = record(unrecorded);
    assert_eq!(status, 201, "{v}");
    assert_eq!(spent(&d), 0);
    let (status, v) = record(unrecorded);
    assert_eq!(status, 409, "{v}");
    d.stop_and_verify();
}
