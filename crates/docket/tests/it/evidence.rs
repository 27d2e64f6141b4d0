//! Evidence packs end to end. One realistic window is built once — two
//! projects, agents and humans, calls through the gateway that were
//! allowed, denied and held for a human's approval, a tool call through
//! `authorize`/`record`, a policy change approved by a second person, a
//! revoked credential, a kill switch and an access review — and exported
//! with `docket evidence export`. The packs are verified offline with
//! `docket verify PACK --key`, then tampered with in each way an auditor
//! relies on the verifier to catch, scoped to one project, sampled, and
//! their OSCAL checked against NIST's schema.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use docket_core::merkle::leaf_hash;
use docket_core::{Entry, LogSigner, Timestamp};
use docket_evidence::pack::{Manifest, json_bytes, manifest_note_text};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{Serve, ServerProcess, StandIn, docket, stdout};

/// The key Docket holds for the providers; the stand-in wants it.
const PROVIDER_KEY: &str = "sk-standin-evidence-key-51c2";
/// Not `DOCKET_*`: `docket serve` takes those as its own configuration.
const PROVIDER_KEY_ENV: &str = "EVIDENCE_TEST_PROVIDER_KEY";

/// The project a scoped pack is made for, and the other one, whose every
/// identifying string must stay out of that pack.
const PROJECT: &str = "support";
const OTHER_PROJECT: &str = "zeta-ledger";
const OTHER_PROJECT_NAME: &str = "Zeta Ledger Ops";
const OTHER_AGENT: &str = "zeta-payer";
const OTHER_AGENT_NAME: &str = "Zeta Payer Agent";

const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4.1", "gpt-5", "claude-haiku-4-5"];

/// Models in scope, never gpt-4.1, gpt-5 only with a human's approval,
/// tools in scope.
const POLICY: &str = r#"
@id("models-in-scope")
permit(principal, action == Docket::Action::"call_model", resource)
when { principal.models.contains(resource.name) };

@id("no-gpt-4-1")
forbid(principal, action == Docket::Action::"call_model", resource)
when { resource.name == "gpt-4.1" };

@id("gpt-5-needs-a-human")
@approval("required")
permit(principal, action == Docket::Action::"call_model", resource)
when { resource.name == "gpt-5" };

@id("tools-in-scope")
permit(principal, action == Docket::Action::"call_tool", resource)
when { principal.tools.contains(resource.name) };
"#;

/// The policy's own test cases. They name a made-up agent: a policy is
/// shared by every project, so its tests belong in every project's pack.
fn policy_tests() -> Value {
    let case = |name: &str, model: &str, expect: &str| {
        json!({
            "name": name,
            "request": {
                "principal": {"agent": "example-agent", "project": "example-project",
                              "owner": "example-owner", "models": MODELS},
                "action": "call_model",
                "resource": {"kind": "model", "id": model, "provider": "openai"},
                "context": {"time": 1_767_268_800},
            },
            "expect": expect,
        })
    };
    json!([
        case("a model in scope is allowed", "gpt-4o-mini", "allow"),
        case("gpt-4.1 is forbidden", "gpt-4.1", "deny"),
        case("gpt-5 waits for a human", "gpt-5", "require_approval"),
    ])
}

// ---- time -------------------------------------------------------------------

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

pub(crate) fn rfc3339(micros: i64) -> String {
    Timestamp::from_micros(micros).to_string()
}

/// The next whole second, once it has passed: a window end no entry
/// written so far reaches, and that the export accepts as closed.
pub(crate) fn close_window() -> i64 {
    let now = now_micros();
    let end = now - now.rem_euclid(1_000_000) + 1_000_000;
    loop {
        let left = end + 20_000 - now_micros();
        if left <= 0 {
            return end;
        }
        std::thread::sleep(Duration::from_micros(left as u64));
    }
}

// ---- the API ------------------------------------------------------------------

struct Resp {
    status: u16,
    json: Value,
    headers: reqwest::header::HeaderMap,
}

impl Resp {
    fn seq_header(&self, name: &str) -> u64 {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header: {} {}", self.status, self.json))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

struct Api {
    base: String,
    http: Client,
}

impl Api {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        Resp {
            status,
            json: r.json().unwrap_or(Value::Null),
            headers,
        }
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Value) -> Resp {
        let body = (method != "GET").then(|| serde_json::to_vec(&body).unwrap());
        self.send(method, path, token, body, &[])
    }

    /// [`Api::call`] that must succeed.
    fn ok(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        let r = self.call(method, path, token, body);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.json
        );
        r.json
    }

    /// Creates a user with a password and logs them in; returns their token.
    fn user(&self, admin: &str, id: &str, name: &str, roles: &[&str]) -> String {
        let password = format!("{id}-evidence-test-password");
        self.ok(
            "POST",
            "/api/v1/users",
            admin,
            json!({"id": id, "name": name, "roles": roles, "password": password}),
        );
        let v: Value = self
            .http
            .post(format!("{}/api/v1/login", self.base))
            .basic_auth(id, Some(&password))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    fn chat(&self, key: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
        self.send(
            "POST",
            "/v1/chat/completions",
            key,
            Some(body.to_vec()),
            headers,
        )
    }

    fn messages(&self, key: &str, model: &str, prompt: &str) -> Resp {
        let body = json!({"model": model, "max_tokens": 64,
                          "messages": [{"role": "user", "content": prompt}]});
        self.send(
            "POST",
            "/v1/messages",
            key,
            Some(serde_json::to_vec(&body).unwrap()),
            &[("anthropic-version", "2023-06-01")],
        )
    }
}

fn chat_body(model: &str, prompt: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": model, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": prompt},
    ]}))
    .unwrap()
}

// ---- the window -----------------------------------------------------------------

/// What the window holds, as the test made it happen.
struct Facts {
    /// Calls the gateway forwarded (each has a receipt), by provider.
    calls_by_provider: BTreeMap<String, u64>,
    /// Outcomes reported through `/api/v1/record` (each a receipt too).
    recorded: u64,
    /// The decision that refused gpt-4.1.
    denied: u64,
    /// The held gpt-5 call: its approval and the receipt of the call it let through.
    approval: u64,
    approved_receipt: u64,
    /// The policy version's change request.
    policy_change: u64,
    revoked_credential: String,
    /// Every agent: id and DID.
    agents: Vec<(String, String)>,
    /// Strings that identify the other project: its id and name, its
    /// agent's id, name and DID, its credential's id.
    other_project: Vec<String>,
}

impl Facts {
    fn gateway_calls(&self) -> u64 {
        self.calls_by_provider.values().sum()
    }
}

/// The window's packs and the log key, with the server stopped.
struct Window {
    /// The log's verifier key, `origin+id+base64`, and the file holding it.
    key: String,
    key_file: PathBuf,
    /// The log's signing key, to re-sign tampered manifests with the real key.
    secret: String,
    /// `[from, to)` of everything; `[from, mid)` and `[mid, to)` split it.
    from: String,
    mid: String,
    to: String,
    full: PathBuf,
    first: PathBuf,
    second: PathBuf,
    /// `[from, to)` for project `support` only.
    scoped: PathBuf,
    /// `docket receipt get` of the approved call's receipt and of the denial.
    receipts: Vec<PathBuf>,
    facts: Facts,
}

impl Window {
    fn signer(&self) -> LogSigner {
        LogSigner::from_secret(&self.secret).unwrap()
    }
}

static WINDOW: LazyLock<Window> = LazyLock::new(build_window);

fn window() -> &'static Window {
    &WINDOW
}

/// Windows of earlier runs: the shared one lives as long as the test
/// process, so nothing removes it but the next run.
fn remove_stale_windows(dir: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for e in read.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old
            && e.file_name()
                .to_string_lossy()
                .starts_with("evidence-window-")
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn gateway_config(up: &str) -> String {
    format!(
        r#"
[gateway]
# A busy test machine must not shed the tests' calls.
shed_lag_ms = 0
shed_decide_ms = 0
approval_wait_secs = 30
approval_ttl_secs = 300

[gateway.providers.openai]
base_url = "{up}"
api_key_env = "{PROVIDER_KEY_ENV}"

[gateway.providers.anthropic]
base_url = "{up}"
api_key_env = "{PROVIDER_KEY_ENV}"

[[gateway.models]]
pattern = "gpt-*"
provider = "openai"

[[gateway.models]]
pattern = "claude-*"
provider = "anthropic"
"#
    )
}

/// `docket evidence export` as `token`.
pub(crate) fn export(
    base: &str,
    token: &str,
    from: &str,
    to: &str,
    project: Option<&str>,
    out: &Path,
) {
    let mut cmd = docket();
    cmd.args([
        "evidence", "export", "--server", base, "--token", token, "--from", from, "--to", to,
        "--out",
    ])
    .arg(out)
    .env_remove("DOCKET_TOKEN")
    .env_remove("DOCKET_SERVER");
    if let Some(p) = project {
        cmd.args(["--project", p]);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "docket evidence export {from} {to} {project:?}: {}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("manifest sha256"), "{}", stdout(&o));
}

fn build_window() -> Window {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(tmp).unwrap();
    remove_stale_windows(tmp);
    let root = tempfile::Builder::new()
        .prefix("evidence-window-")
        .tempdir_in(tmp)
        .unwrap()
        .keep();
    let from = now_micros() - now_micros().rem_euclid(1_000_000);
    let standin = StandIn::start(PROVIDER_KEY);
    let config = root.join("docket.toml");
    std::fs::write(&config, gateway_config(&standin.base)).unwrap();
    let data = root.join("data");
    let server = ServerProcess::start_with(
        &data,
        None,
        &Serve {
            config: Some(&config),
            env: &[(PROVIDER_KEY_ENV, PROVIDER_KEY)],
        },
    );
    let api = Api::new(&server.base);
    let admin = server.token.clone();

    // Humans: two developers (one per project), an approver, a reviewer, an auditor.
    let dev = api.user(&admin, "dev", "Dana Developer", &["developer", "approver"]);
    let appr = api.user(&admin, "appr", "Avery Approver", &["approver"]);
    let qdev = api.user(&admin, "qdev", "Quinn Developer", &["developer"]);
    let rev = api.user(&admin, "rev", "Riley Reviewer", &["reviewer"]);
    let auditor = api.user(&admin, "auditor", "Ari Auditor", &["auditor"]);
    api.ok(
        "PUT",
        "/api/v1/users/dev/kyc",
        &admin,
        json!({"status": "verified", "method": "video call"}),
    );
    api.ok(
        "POST",
        "/api/v1/projects",
        &admin,
        json!({"id": PROJECT, "name": "Customer Support", "members": ["dev", "appr"],
               "rules": [{"agents": ["*"], "models": MODELS, "tools": ["search"]}]}),
    );
    api.ok(
        "POST",
        "/api/v1/projects",
        &admin,
        json!({"id": OTHER_PROJECT, "name": OTHER_PROJECT_NAME, "members": ["qdev", "appr"],
               "rules": [{"agents": ["*"], "models": ["gpt-4o-mini", "claude-haiku-4-5"]}]}),
    );

    // The policy change: submitted by dev, approved by appr, activated.
    let v = api.ok(
        "POST",
        "/api/v1/policy/versions",
        &dev,
        json!({"policy": POLICY, "tests": policy_tests(), "description": "models and tools in scope",
               "rollback_plan": "reactivate the previous version"}),
    );
    let policy_change = v["change"].as_u64().unwrap();
    api.ok(
        "POST",
        &format!("/api/v1/changes/{policy_change}/approve"),
        &appr,
        json!({}),
    );
    assert_eq!(
        api.ok("GET", "/api/v1/policy", &auditor, Value::Null)["active"]["version"],
        1
    );

    // Agents, each requested by its owner and approved by appr.
    let mut agents = Vec::new();
    let mut register = |owner: &str, id: &str, name: &str, project: &str, scope: Value| {
        let v = api.ok(
            "POST",
            "/api/v1/agents",
            owner,
            json!({"id": id, "name": name, "project": project, "purpose": "evidence test",
                   "scope": scope}),
        );
        api.ok(
            "POST",
            &format!("/api/v1/changes/{}/approve", v["request"]),
            &appr,
            json!({}),
        );
        let did = v["agent"]["did"].as_str().unwrap().to_owned();
        agents.push((id.to_owned(), did.clone()));
        did
    };
    register(
        &dev,
        "bot",
        "Support bot",
        PROJECT,
        json!({"models": MODELS, "tools": ["search"]}),
    );
    register(
        &dev,
        "triage",
        "Triage helper",
        PROJECT,
        json!({"models": ["gpt-4o-mini"]}),
    );
    let other_did = register(
        &qdev,
        OTHER_AGENT,
        OTHER_AGENT_NAME,
        OTHER_PROJECT,
        json!({"models": ["gpt-4o-mini", "claude-haiku-4-5"]}),
    );
    let key_of = |owner: &str, agent: &str| {
        let v = api.ok(
            "POST",
            &format!("/api/v1/agents/{agent}/credentials"),
            owner,
            json!({}),
        );
        (
            v["token"].as_str().unwrap().to_owned(),
            v["credential"].as_str().unwrap().to_owned(),
        )
    };
    let (bot, _) = key_of(&dev, "bot");
    let (triage, _) = key_of(&dev, "triage");
    let (zeta, zeta_credential) = key_of(&qdev, OTHER_AGENT);
    // A second key of the bot, pasted where it should not be: revoked.
    let (leaked, revoked_credential) = key_of(&dev, "bot");
    api.ok(
        "POST",
        &format!("/api/v1/credentials/{revoked_credential}/revoke"),
        &dev,
        json!({"reason": "pasted into a support ticket"}),
    );
    let r = api.chat(&leaked, &chat_body("gpt-4o-mini", "hello"), &[]);
    assert_eq!(r.status, 401, "a revoked key is refused: {}", r.json);

    // Calls through the gateway.
    let mut calls: BTreeMap<String, u64> = BTreeMap::new();
    let mut forwarded = |r: &Resp, provider: &str| {
        assert_eq!(r.status, 200, "{provider}: {}", r.json);
        r.seq_header("docket-receipt");
        *calls.entry(provider.to_owned()).or_default() += 1;
    };
    forwarded(
        &api.chat(&bot, &chat_body("gpt-4o-mini", "Summarise ticket 1"), &[]),
        "openai",
    );
    forwarded(
        &api.chat(&bot, &chat_body("gpt-4o-mini", "Summarise ticket 2"), &[]),
        "openai",
    );
    forwarded(
        &api.messages(&bot, "claude-haiku-4-5", "Classify ticket 3"),
        "anthropic",
    );
    forwarded(
        &api.chat(&triage, &chat_body("gpt-4o-mini", "Route ticket 4"), &[]),
        "openai",
    );
    forwarded(
        &api.chat(&zeta, &chat_body("gpt-4o-mini", "Reconcile invoice 5"), &[]),
        "openai",
    );
    forwarded(
        &api.messages(&zeta, "claude-haiku-4-5", "Reconcile invoice 6"),
        "anthropic",
    );

    // Denied by policy.
    let r = api.chat(&bot, &chat_body("gpt-4.1", "Summarise ticket 7"), &[]);
    assert_eq!(r.status, 403, "{}", r.json);
    let denied = r.seq_header("docket-decision");

    // Held for a human, approved by appr (dev is who the agent acts for), then used.
    let held_body = chat_body("gpt-5", "Refund order 8");
    let r = api.chat(&bot, &held_body, &[("Docket-Approval-Wait", "0")]);
    assert_eq!(r.status, 202, "{}", r.json);
    let approval = r.json["approval"].as_u64().unwrap();
    let shown = api.ok(
        "GET",
        &format!("/api/v1/approvals/{approval}"),
        &appr,
        Value::Null,
    );
    api.ok(
        "POST",
        &format!("/api/v1/approvals/{approval}/decide"),
        &appr,
        json!({"decision": "approve", "reason": "refund within policy",
               "shown_sha256": shown["summary_sha256"]}),
    );
    let r = api.chat(
        &bot,
        &held_body,
        &[("Docket-Approval", &approval.to_string())],
    );
    forwarded(&r, "openai");
    let approved_receipt = r.seq_header("docket-receipt");

    // A tool Docket cannot proxy: asked, done, recorded; and one out of scope.
    let v = api.ok(
        "POST",
        "/api/v1/authorize",
        &bot,
        json!({"action": "call_tool", "name": "search", "arguments": {"q": "order 8"}}),
    );
    assert_eq!(v["outcome"], "allow", "{v}");
    let r = api.call(
        "POST",
        "/api/v1/record",
        &bot,
        json!({"decision": v["decision"], "outcome": "ok", "latency_ms": 9,
               "output_sha256": "cd".repeat(32)}),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    let v = api.ok(
        "POST",
        "/api/v1/authorize",
        &bot,
        json!({"action": "call_tool", "name": "shell"}),
    );
    assert_eq!(v["outcome"], "deny", "{v}");
    assert_eq!(v["stage"], "scope", "{v}");

    // Containment: the other project's agent stopped by its owner, released by appr.
    let switch = json!({"scope": "agent", "agent": OTHER_AGENT, "reason": "duplicate payouts"});
    api.ok(
        "POST",
        "/api/v1/kill-switches/engage",
        &qdev,
        switch.clone(),
    );
    let r = api.chat(&zeta, &chat_body("gpt-4o-mini", "Pay invoice 9"), &[]);
    assert_eq!(r.status, 403, "{}", r.json);
    api.ok("POST", "/api/v1/kill-switches/release", &appr, switch);

    // A quarterly access review: every agent kept.
    let opened = api.ok("POST", "/api/v1/access-reviews", &admin, json!({}));
    let review = opened["seq"].as_u64().unwrap();
    for (id, _) in &agents {
        api.ok(
            "POST",
            &format!("/api/v1/access-reviews/{review}/decisions"),
            &rev,
            json!({"agent": id, "decision": "keep", "note": "still needed"}),
        );
    }
    // Every human kept; nobody decides on themselves.
    for h in opened["humans"].as_array().unwrap() {
        let user = h["user"].as_str().unwrap();
        let decider = if user == "rev" { &admin } else { &rev };
        api.ok(
            "POST",
            &format!("/api/v1/access-reviews/{review}/decisions"),
            decider,
            json!({"user": user, "decision": "keep"}),
        );
    }
    api.ok(
        "POST",
        &format!("/api/v1/access-reviews/{review}/complete"),
        &admin,
        json!({}),
    );

    // The second half of the window.
    let mid = close_window();
    forwarded(
        &api.chat(&bot, &chat_body("gpt-4o-mini", "Summarise ticket 10"), &[]),
        "openai",
    );
    forwarded(
        &api.messages(&zeta, "claude-haiku-4-5", "Reconcile invoice 11"),
        "anthropic",
    );
    let to = close_window();

    let (from, mid, to) = (rfc3339(from), rfc3339(mid), rfc3339(to));
    let pack = |name: &str| root.join(name);
    export(&server.base, &auditor, &from, &to, None, &pack("full.zip"));
    export(
        &server.base,
        &auditor,
        &from,
        &mid,
        None,
        &pack("first.zip"),
    );
    export(&server.base, &auditor, &mid, &to, None, &pack("second.zip"));
    export(
        &server.base,
        &auditor,
        &from,
        &to,
        Some(PROJECT),
        &pack("scoped.zip"),
    );
    let mut receipts = Vec::new();
    for seq in [approved_receipt, denied] {
        let file = root.join(format!("receipt-{seq}.json"));
        let o = docket()
            .args(["receipt", "get", &seq.to_string(), "--server", &server.base])
            .args(["--token", &auditor, "--out"])
            .arg(&file)
            .env_remove("DOCKET_TOKEN")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        receipts.push(file);
    }
    let served_key = api.ok("GET", "/api/v1/log", &auditor, Value::Null)["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    server.stop();
    drop(standin);

    let key_file = data.join("log.pub");
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(key, served_key, "log.pub is the key the server signs with");
    let secret = std::fs::read_to_string(data.join("log.key")).unwrap();
    Window {
        full: pack("full.zip"),
        first: pack("first.zip"),
        second: pack("second.zip"),
        scoped: pack("scoped.zip"),
        key,
        key_file,
        secret,
        from,
        mid,
        to,
        receipts,
        facts: Facts {
            calls_by_provider: calls,
            recorded: 1,
            denied,
            approval,
            approved_receipt,
            policy_change,
            revoked_credential,
            agents,
            other_project: vec![
                OTHER_PROJECT.to_owned(),
                OTHER_PROJECT_NAME.to_owned(),
                OTHER_AGENT.to_owned(),
                OTHER_AGENT_NAME.to_owned(),
                other_did,
                zeta_credential,
            ],
        },
    }
}

// ---- packs ----------------------------------------------------------------------

/// A pack's files, uncompressed, in their order in the zip.
#[derive(Clone)]
pub(crate) struct Pack {
    files: Vec<(String, Vec<u8>)>,
}

impl Pack {
    pub(crate) fn open(path: &Path) -> Self {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        let files = (0..zip.len())
            .map(|i| {
                let mut f = zip.by_index(i).unwrap();
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).unwrap();
                (f.name().to_owned(), bytes)
            })
            .collect();
        Self { files }
    }

    fn names(&self) -> Vec<String> {
        self.files.iter().map(|(n, _)| n.clone()).collect()
    }

    fn get(&self, name: &str) -> &[u8] {
        &self
            .files
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("the pack has no {name}"))
            .1
    }

    pub(crate) fn json(&self, name: &str) -> Value {
        serde_json::from_slice(self.get(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Lines of a JSON-lines file, parsed.
    pub(crate) fn lines(&self, name: &str) -> Vec<Value> {
        self.get(name)
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    /// `entries.jsonl`, one raw line (without its newline) per entry.
    fn entry_lines(&self) -> Vec<Vec<u8>> {
        let text = self.get("entries.jsonl");
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
    }

    fn set(&mut self, name: &str, bytes: Vec<u8>) {
        match self.files.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = bytes,
            None => self.files.push((name.to_owned(), bytes)),
        }
    }

    fn set_entry_lines(&mut self, lines: &[Vec<u8>]) {
        let mut out = Vec::new();
        for l in lines {
            out.extend_from_slice(l);
            out.push(b'\n');
        }
        self.set("entries.jsonl", out);
    }

    fn manifest(&self) -> Manifest {
        serde_json::from_slice(self.get("manifest.json")).unwrap()
    }

    /// Writes `m` as the manifest and signs it with `signer`, as the
    /// exporter would.
    fn sign(&mut self, m: &Manifest, signer: &LogSigner) {
        let bytes = json_bytes(m);
        let sha = hex::encode(Sha256::digest(&bytes));
        let sig = signer.sign_text(&manifest_note_text(&sha)).unwrap();
        self.set("manifest.json", bytes);
        self.set("manifest.sig", sig.into_bytes());
    }

    /// Updates the manifest's digests of `changed` to their current bytes
    /// and re-signs it: only what the files say can then give them away.
    fn reseal(&mut self, changed: &[&str], signer: &LogSigner) {
        let mut m = self.manifest();
        for name in changed {
            let bytes = self.get(name).to_vec();
            let f = m
                .files
                .iter_mut()
                .find(|f| f.path == *name)
                .unwrap_or_else(|| panic!("{name} is not in the manifest"));
            f.sha256 = hex::encode(Sha256::digest(&bytes));
            f.bytes = bytes.len() as u64;
        }
        self.sign(&m, signer);
    }

    fn write(&self, path: &Path) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in &self.files {
            zip.start_file(name.as_str(), options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }
}

/// What `docket verify PACK --key K --json` said.
pub(crate) struct Verdict {
    code: Option<i32>,
    out: Value,
    text: String,
}

impl Verdict {
    fn problems(&self) -> Vec<(String, String)> {
        self.out["problems"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["check"].as_str().unwrap_or_default().to_owned(),
                            p["location"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn has(&self, check: &str) -> bool {
        self.problems().iter().any(|(c, _)| c == check)
    }

    fn has_at(&self, check: &str, location: &str) -> bool {
        self.problems()
            .iter()
            .any(|(c, l)| c == check && l == location)
    }

    pub(crate) fn assert_ok(&self, what: &str) {
        assert_eq!(self.code, Some(0), "{what} must verify: {}", self.text);
        assert_eq!(self.out["ok"], true, "{what}: {}", self.text);
    }

    /// Exit 1, with at least one problem.
    fn assert_failed(&self, what: &str) {
        assert_eq!(
            self.code,
            Some(1),
            "{what}: the verifier must refuse it: {}",
            self.text
        );
        assert_eq!(self.out["ok"], false, "{what}: {}", self.text);
        assert!(!self.problems().is_empty(), "{what}: {}", self.text);
    }
}

pub(crate) fn verify_with(pack: &Path, key: &str) -> Verdict {
    let o: Output = docket()
        .arg("verify")
        .arg(pack)
        .args(["--key", key, "--json"])
        .output()
        .unwrap();
    let text = stdout(&o) + &String::from_utf8_lossy(&o.stderr);
    Verdict {
        code: o.status.code(),
        out: serde_json::from_slice(&o.stdout).unwrap_or(Value::Null),
        text,
    }
}

fn verify(pack: &Path) -> Verdict {
    verify_with(pack, &window().key)
}

/// Writes `pack` into `dir` as `name`.zip and verifies it.
fn verify_tampered(dir: &Path, name: &str, pack: &Pack) -> Verdict {
    let path = dir.join(format!("{}.zip", name.replace('/', "_")));
    pack.write(&path);
    verify(&path)
}

/// The test with `id` in `controls.json`.
pub(crate) fn control_test<'a>(controls: &'a Value, id: &str) -> &'a Value {
    controls["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["tests"].as_array().unwrap())
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no test {id} in controls.json"))
}

/// The entries of a pack, decoded; withheld ones as `None`.
fn entries(pack: &Pack) -> Vec<Option<(Entry, Value)>> {
    pack.entry_lines()
        .iter()
        .map(|l| {
            if l.starts_with(b"{\"leaf\":") {
                None
            } else {
                let e = Entry::decode(l).unwrap();
                let body = e.body_value();
                Some((e, body))
            }
        })
        .collect()
}

// ---- tests ----------------------------------------------------------------------

/// The exported pack of a real window verifies offline with the log's
/// key, and what it derives says what happened in the window.
#[test]
fn a_pack_of_a_real_window_verifies_and_its_controls_show_what_happened() {
    let w = window();
    let f = &w.facts;

    // Verified with the key inline and from the key file; read as a person too.
    verify(&w.full).assert_ok("the full pack");
    let v = verify_with(&w.full, w.key_file.to_str().unwrap());
    v.assert_ok("the full pack, key from log.pub");
    assert!(
        v.out["rederived"]
            .as_array()
            .unwrap()
            .contains(&json!("controls.json")),
        "{}",
        v.text
    );
    let o = docket()
        .arg("verify")
        .arg(&w.full)
        .args(["--key", &w.key])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("\nOK: "), "{}", stdout(&o));

    let pack = Pack::open(&w.full);
    let m = pack.manifest();
    assert_eq!(m.window.from, w.from);
    assert_eq!(m.window.to, w.to);
    assert_eq!(m.window.project, None);
    assert_eq!(m.withheld, 0);
    assert_eq!(m.public_key, w.key);
    let all = entries(&pack);
    assert_eq!(all.len() as u64, m.entries);
    assert!(
        all.iter().all(Option::is_some),
        "a pack for all projects withholds nothing"
    );
    let count = |kind: &str| {
        all.iter()
            .flatten()
            .filter(|(e, _)| e.kind.as_str() == kind)
            .count() as u64
    };

    // CC6.1: every forwarded call and every recorded outcome is a receipt
    // of a registered, active agent.
    let controls = pack.json("controls.json");
    let receipts = f.gateway_calls() + f.recorded;
    assert_eq!(count("receipt"), receipts);
    let t = control_test(&controls, "cc6.1-registered-agent");
    assert_eq!(t["figures"]["receipts"], receipts, "{t}");
    assert_eq!(t["figures"]["receipts_failing"], 0, "{t}");
    assert_eq!(t["status"], "satisfied", "{t}");
    let t = control_test(&controls, "cc6.1-inactive-agents");
    assert_eq!(t["figures"]["actions"], 0, "{t}");
    // Every entry of a real window keeps to the write table; the gateway's
    // receipts are observed and the recorded tool outcomes are the agents'
    // word, counted apart.
    let t = control_test(&controls, "cc6.1-writers");
    assert_eq!(t["figures"]["entries_failing"], 0, "{t}");
    assert_eq!(t["status"], "satisfied", "{t}");
    assert_eq!(
        t["figures"]["gateway_observed_receipts"],
        f.gateway_calls(),
        "{t}"
    );
    assert_eq!(t["figures"]["agent_reported_receipts"], f.recorded, "{t}");
    let t = control_test(&controls, "a1.2-unrecorded-outcomes");
    assert_eq!(t["figures"]["calls_without_receipt"], 0, "{t}");
    assert_eq!(t["status"], "satisfied", "{t}");

    // CC8.1: the policy change was applied, approved, by someone else.
    let t = control_test(&controls, "cc8.1-unapproved-changes");
    assert_eq!(t["figures"]["unapproved"], 0, "{t}");
    assert!(
        t["figures"]["changes_applied"].as_u64().unwrap() >= 1,
        "{t}"
    );
    assert_eq!(t["status"], "satisfied", "{t}");
    let t = control_test(&controls, "cc8.1-self-approved");
    assert_eq!(t["figures"]["approvals"], 0, "{t}");
    let t = control_test(&controls, "cc8.1-test-evidence");
    assert_eq!(t["figures"]["changes"], 0, "{t}");
    let changes = pack.lines("records/changes.jsonl");
    let activated: Vec<&Value> = changes
        .iter()
        .filter(|c| c["type"] == "policy.activated")
        .collect();
    assert_eq!(activated.len(), 1, "{changes:?}");
    assert_eq!(activated[0]["request"], f.policy_change);
    assert!(
        changes
            .iter()
            .any(|c| c["type"] == "change.approved" && c["request"] == f.policy_change),
        "{changes:?}"
    );

    // CC6.2: the other project's owner never had their identity verified,
    // and the pack says so rather than passing it.
    let t = control_test(&controls, "cc6.2-owner-kyc");
    assert_eq!(t["status"], "not_satisfied", "{t}");
    assert_eq!(t["figures"]["owner_not_verified"], 1, "{t}");
    assert!(
        t["items"][0]["note"]
            .as_str()
            .unwrap()
            .contains(OTHER_AGENT)
    );
    let t = control_test(&controls, "cc6.2-unapproved-registrations");
    assert_eq!(t["figures"]["registrations"], 0, "{t}");

    // CC6.6: the out-of-scope tool was attempted and refused.
    let t = control_test(&controls, "cc6.6-out-of-scope");
    assert_eq!(t["figures"]["attempts"], 1, "{t}");
    assert_eq!(t["figures"]["allowed"], 0, "{t}");
    assert!(t["items"][0]["note"].as_str().unwrap().contains("shell"));

    // CC6.3 and CC7.4: the review was completed; the kill switch engaged and released.
    let t = control_test(&controls, "cc6.3-quarterly-review");
    assert_eq!(t["figures"]["missed"], 0, "{t}");
    assert!(
        t["figures"]["quarters"]
            .to_string()
            .contains("\"completed\":1")
    );
    let t = control_test(&controls, "cc7.4-containment");
    assert_eq!(t["figures"]["events"], 2, "{t}");

    // CC9.2: the vendor rollup counts the calls each provider got (tool
    // calls recorded without a provider are not vendor traffic).
    let vendors = pack.json("vendors.json");
    let model_calls: u64 = f.calls_by_provider.values().sum();
    assert_eq!(vendors["calls"], model_calls, "{vendors}");
    for (provider, calls) in &f.calls_by_provider {
        let line = vendors["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["provider"] == provider.as_str() && l["model"].is_null())
            .unwrap_or_else(|| panic!("no {provider} in {vendors}"));
        assert_eq!(line["calls"], *calls, "{provider}: {vendors}");
        assert_eq!(line["errors"], 0, "{provider}: {vendors}");
    }
    let t = control_test(&controls, "cc9.2-vendor-share");
    assert_eq!(t["figures"]["calls"], model_calls, "{t}");

    // The denial, in the decisions record.
    let decisions = pack.lines("records/decisions.jsonl");
    assert_eq!(decisions.len() as u64, count("decision"));
    let denied = decisions
        .iter()
        .find(|d| d["seq"] == f.denied)
        .expect("the denial is in records/decisions.jsonl");
    assert_eq!(denied["outcome"], "deny", "{denied}");
    assert_eq!(denied["model"], "gpt-4.1", "{denied}");
    assert_eq!(denied["stage"], "policy", "{denied}");
    assert!(
        denied.get("inputs").is_none(),
        "Cedar inputs stay in the entry"
    );

    // The approval, in the approvals record: asked, approved by appr, used.
    let approvals = pack.lines("records/approvals.jsonl");
    assert!(
        approvals
            .iter()
            .any(|a| a["seq"] == f.approval && a["type"] == "approval.requested")
    );
    let decided = approvals
        .iter()
        .find(|a| a["type"] == "approval.decided" && a["approval"] == f.approval)
        .expect("the approval decision is in records/approvals.jsonl");
    assert_eq!(decided["decision"], "approve", "{decided}");
    assert_eq!(decided["by"], "appr", "{decided}");
    assert!(
        approvals
            .iter()
            .any(|a| a["type"] == "approval.used" && a["approval"] == f.approval)
    );

    // The registry: every agent with its DID, the revoked credential with when.
    let registry = pack.json("registry.json");
    let agents = registry["agents"].as_array().unwrap();
    assert_eq!(agents.len(), f.agents.len(), "{registry}");
    for (id, did) in &f.agents {
        let a = agents
            .iter()
            .find(|a| a["id"] == id.as_str())
            .unwrap_or_else(|| panic!("agent {id} not in registry.json"));
        assert_eq!(a["did"], did.as_str(), "{a}");
        assert!(did.starts_with("did:key:z6Mk"), "{did}");
        assert_eq!(a["status"], "active", "{a}");
    }
    let credentials = registry["credentials"].as_array().unwrap();
    let revoked = credentials
        .iter()
        .find(|c| c["id"] == f.revoked_credential.as_str())
        .expect("the revoked credential is in registry.json");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert_eq!(
        revoked["revoked_reason"], "pasted into a support ticket",
        "{revoked}"
    );
    assert!(
        credentials
            .iter()
            .filter(|c| c["agent"].is_string() && c["id"] != f.revoked_credential.as_str())
            .all(|c| c["revoked_at"].is_null()),
        "{registry}"
    );
    assert_eq!(registry["active_policy"]["version"], 1, "{registry}");

    // The report a person reads says the same.
    let report = String::from_utf8(pack.get("report.html").to_vec()).unwrap();
    assert!(report.contains("CC6.1") && report.contains("CC8.1"));
    assert!(report.contains("Not satisfied"), "the KYC finding is shown");
}

/// A changed byte in any file of the pack is caught and the file named.
#[test]
fn a_changed_byte_in_any_file_of_the_pack_is_caught() {
    let w = window();
    let dir = tempfile::tempdir().unwrap();
    let pristine = Pack::open(&w.full);
    let names = pristine.names();
    assert!(names.len() >= 16, "{names:?}");
    for name in &names {
        let mut pack = pristine.clone();
        let mut bytes = pack.get(name).to_vec();
        if bytes.is_empty() {
            // An empty record file: a byte added is the change.
            bytes.push(b'\n');
        } else {
            let i = bytes.len() / 2;
            bytes[i] ^= 0x01;
        }
        pack.set(name, bytes);
        let v = verify_tampered(dir.path(), name, &pack);
        v.assert_failed(&format!("a byte of {name} changed"));
        match name.as_str() {
            "manifest.json" | "manifest.sig" => assert!(
                v.has_at("signature", "manifest.sig") && v.text.contains(name.as_str()),
                "{name}: {}",
                v.text
            ),
            _ => assert!(v.has_at("file", name), "{name}: {}", v.text),
        }
    }
}

/// Entries removed, added or reordered are caught even when the manifest
/// carries the new file's hash and is signed with the log's real key:
/// the chain and the range proof to the signed checkpoint tell.
#[test]
fn entries_removed_added_or_reordered_are_caught_under_a_re_signed_manifest() {
    let w = window();
    let signer = w.signer();
    let dir = tempfile::tempdir().unwrap();
    let pristine = Pack::open(&w.full);
    let lines = pristine.entry_lines();
    let k = lines.len() / 2;
    let mut removed = lines.clone();
    removed.remove(k);
    let mut added = lines.clone();
    added.insert(k, lines[k].clone());
    let mut reordered = lines.clone();
    reordered.swap(k, k + 1);
    // The last entry dropped, and the manifest's window made to end
    // before it so the count adds up.
    let mut truncated = lines.clone();
    truncated.pop();
    for (case, new_lines, shorten) in [
        ("removed", removed, false),
        ("added", added, false),
        ("reordered", reordered, false),
        ("truncated", truncated, true),
    ] {
        let mut pack = pristine.clone();
        pack.set_entry_lines(&new_lines);
        pack.reseal(&["entries.jsonl"], &signer);
        if shorten {
            let mut m = pack.manifest();
            m.window.end_seq -= 1;
            m.entries -= 1;
            pack.sign(&m, &signer);
        }
        let v = verify_tampered(dir.path(), case, &pack);
        v.assert_failed(case);
        assert!(
            !v.has("signature") && !v.has("file"),
            "{case}: the manifest was re-signed to match, so only the entries can tell: {}",
            v.text
        );
        assert!(
            v.has("range"),
            "{case}: the range proof must no longer lead to the signed checkpoint: {}",
            v.text
        );
        if !shorten {
            assert!(v.has("chain") || v.has("entry"), "{case}: {}", v.text);
        }
    }
}

/// A derived figure edited to look better fails as `derived`, even with
/// the manifest updated and signed with the real key.
#[test]
fn derived_figures_edited_to_look_better_fail_as_derived() {
    let w = window();
    let signer = w.signer();
    let dir = tempfile::tempdir().unwrap();
    let pristine = Pack::open(&w.full);

    let edit_controls = |f: &dyn Fn(&mut Value)| {
        let mut c = pristine.json("controls.json");
        f(&mut c);
        json_bytes(&c)
    };
    let find_test = |c: &mut Value, id: &str, f: &dyn Fn(&mut Value)| {
        for crit in c["criteria"].as_array_mut().unwrap() {
            for t in crit["tests"].as_array_mut().unwrap() {
                if t["id"] == id {
                    f(t);
                    if crit["status"] == "not_satisfied" {
                        crit["status"] = json!("satisfied");
                    }
                    return;
                }
            }
        }
        panic!("no test {id}");
    };
    let kyc_passed = edit_controls(&|c| {
        find_test(c, "cc6.2-owner-kyc", &|t| {
            assert_eq!(t["status"], "not_satisfied");
            t["status"] = json!("satisfied");
            t["figures"]["owner_not_verified"] = json!(0);
            t["items"] = json!([]);
        })
    });
    let more_receipts = edit_controls(&|c| {
        find_test(c, "cc6.1-registered-agent", &|t| {
            let n = t["figures"]["receipts"].as_u64().unwrap();
            t["figures"]["receipts"] = json!(n + 1);
        })
    });
    let report = String::from_utf8(pristine.get("report.html").to_vec()).unwrap();
    assert!(report.contains("Not satisfied"));
    let report = report
        .replacen("Not satisfied", "Satisfied", 1)
        .into_bytes();

    for (case, file, bytes) in [
        (
            "a failed KYC test marked satisfied",
            "controls.json",
            kyc_passed,
        ),
        ("one more receipt", "controls.json", more_receipts),
        ("a finding relabelled in the report", "report.html", report),
    ] {
        let mut pack = pristine.clone();
        pack.set(file, bytes);
        pack.reseal(&[file], &signer);
        let v = verify_tampered(dir.path(), "derived", &pack);
        v.assert_failed(case);
        assert!(v.has_at("derived", file), "{case}: {}", v.text);
        assert!(!v.has("signature") && !v.has("file"), "{case}: {}", v.text);
    }
}

/// A manifest signed by another key — even one with the log's name — is
/// not the log's; and a pack checked against another log's key fails.
#[test]
fn a_manifest_signed_by_another_key_fails_the_signature_check() {
    let w = window();
    let dir = tempfile::tempdir().unwrap();
    let pristine = Pack::open(&w.full);
    let m = pristine.manifest();
    let impostor = LogSigner::generate(&m.origin).unwrap();
    assert_ne!(impostor.public_key(), w.key);

    let mut pack = pristine.clone();
    pack.sign(&m, &impostor);
    let v = verify_tampered(dir.path(), "impostor", &pack);
    v.assert_failed("signed by another key");
    assert!(v.has_at("signature", "manifest.sig"), "{}", v.text);

    // The impostor's pack claims the impostor's key, signed by it: still not the log's.
    let mut pack = pristine.clone();
    let mut claimed = m.clone();
    claimed.public_key = impostor.public_key().to_owned();
    pack.sign(&claimed, &impostor);
    let v = verify_tampered(dir.path(), "impostor-claimed", &pack);
    v.assert_failed("signed by another key, claiming it");
    assert!(v.has("signature"), "{}", v.text);

    // The untouched pack, checked with another log's key.
    let v = verify_with(&w.full, impostor.public_key());
    v.assert_failed("another log's key");
    assert!(v.has("signature"), "{}", v.text);
}

/// Two windows each give a pack that verifies, and they meet exactly; a
/// pack cannot be passed off as covering another window, nor take the
/// other pack's manifest.
#[test]
fn packs_of_two_windows_verify_and_cannot_pass_for_another_window() {
    let w = window();
    let signer = w.signer();
    let dir = tempfile::tempdir().unwrap();
    verify(&w.first).assert_ok("the first half");
    verify(&w.second).assert_ok("the second half");
    let (first, second, full) = (
        Pack::open(&w.first),
        Pack::open(&w.second),
        Pack::open(&w.full),
    );
    let (a, b, all) = (first.manifest(), second.manifest(), full.manifest());
    assert_eq!(
        (a.window.from.as_str(), a.window.to.as_str()),
        (w.from.as_str(), w.mid.as_str())
    );
    assert_eq!(
        (b.window.from.as_str(), b.window.to.as_str()),
        (w.mid.as_str(), w.to.as_str())
    );
    assert_eq!(a.window.first_seq, all.window.first_seq);
    assert_eq!(a.window.end_seq, b.window.first_seq, "the halves meet");
    assert_eq!(b.window.end_seq, all.window.end_seq);
    assert!(a.entries > 0 && b.entries > 0);
    assert_eq!(
        [first.entry_lines(), second.entry_lines()].concat(),
        full.entry_lines(),
        "the halves hold exactly the whole window's entries"
    );
    // The second half knows the agents registered in the first from the
    // identity entries before it.
    let controls = second.json("controls.json");
    let t = control_test(&controls, "cc6.1-registered-agent");
    assert_eq!(t["figures"]["receipts"], 2, "{t}");
    assert_eq!(t["figures"]["receipts_failing"], 0, "{t}");
    assert_eq!(
        second.json("registry.json")["agents"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Re-dated windows, signed with the real key.
    let redated = |pack: &Pack, from: &str, to: &str| {
        let mut p = pack.clone();
        let mut m = p.manifest();
        m.window.from = from.to_owned();
        m.window.to = to.to_owned();
        p.sign(&m, &signer);
        p
    };
    let later = rfc3339(Timestamp::parse_rfc3339(&w.to).unwrap().as_micros() + 3_600_000_000);
    for (case, pack) in [
        (
            "the second half claiming the whole window",
            redated(&second, &w.from, &w.to),
        ),
        (
            "the first half claiming to run an hour past the end",
            redated(&first, &w.from, &later),
        ),
        (
            "the first half claiming the second half's window",
            redated(&first, &w.mid, &w.to),
        ),
    ] {
        let v = verify_tampered(dir.path(), "redated", &pack);
        v.assert_failed(case);
        assert!(v.has("window"), "{case}: {}", v.text);
        assert!(!v.has("signature"), "{case}: {}", v.text);
    }

    // One pack's own signed manifest, swapped into the other.
    let mut swapped = first.clone();
    swapped.set("manifest.json", second.get("manifest.json").to_vec());
    swapped.set("manifest.sig", second.get("manifest.sig").to_vec());
    let v = verify_tampered(dir.path(), "swapped", &swapped);
    v.assert_failed("the second half's manifest in the first half's pack");
    assert!(v.has("file"), "{}", v.text);
}

/// A project's pack verifies, and discloses that project's entries and
/// the shared ones only; the others are there as leaf hashes, which keep
/// the completeness proof.
#[test]
fn a_project_pack_verifies_and_shows_other_projects_only_as_leaf_hashes() {
    let w = window();
    let scoped = Pack::open(&w.scoped);
    let full = Pack::open(&w.full);
    let (m, all) = (scoped.manifest(), full.manifest());
    assert_eq!(m.window.project.as_deref(), Some(PROJECT));
    assert_eq!(
        (m.window.first_seq, m.window.end_seq),
        (all.window.first_seq, all.window.end_seq)
    );
    assert!(m.withheld > 0, "the other project's entries are withheld");

    // Another project's entries: those naming it, its agents or their
    // credentials, and access reviews (which list every project's agents).
    let full_registry = full.json("registry.json");
    let other_agents: BTreeSet<String> = full_registry["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["project"] != PROJECT)
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    let other_credentials: BTreeSet<String> = full_registry["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["agent"]
                .as_str()
                .is_some_and(|a| other_agents.contains(a))
        })
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!other_agents.is_empty());
    let (mine, theirs) = (scoped.entry_lines(), full.entry_lines());
    assert_eq!(mine.len(), theirs.len());
    let mut leaves = 0;
    for (i, (line, original)) in mine.iter().zip(&theirs).enumerate() {
        let seq = m.window.first_seq + i as u64;
        let entry = Entry::decode(original).unwrap();
        let body = entry.body_value();
        let project = body.get("project").and_then(Value::as_str);
        let named = |k: &str, set: &BTreeSet<String>| {
            body.get(k)
                .and_then(Value::as_str)
                .is_some_and(|v| set.contains(v))
        };
        let elsewhere = match project {
            Some(p) => p != PROJECT,
            None => {
                entry.kind.as_str() == "access_review"
                    || named("agent", &other_agents)
                    || named("credential", &other_credentials)
            }
        };
        if elsewhere {
            let leaf: Value =
                serde_json::from_slice(line).unwrap_or_else(|e| panic!("seq {seq}: {e}"));
            assert_eq!(
                leaf,
                json!({"leaf": hex::encode(leaf_hash(original).0), "seq": seq}),
                "seq {seq} of project {project:?} is only its leaf hash"
            );
            leaves += 1;
        } else {
            assert_eq!(line, original, "seq {seq} is disclosed as logged");
            let e = Entry::decode(line).unwrap();
            if let Some(p) = e.body_value().get("project") {
                assert_eq!(p, PROJECT, "seq {seq}");
            }
        }
    }
    assert_eq!(leaves, m.withheld);

    // What it derives is the project's: its agents, its calls.
    let registry = scoped.json("registry.json");
    let agents: BTreeSet<&str> = registry["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(agents, BTreeSet::from(["bot", "triage"]));
    let projects: Vec<&Value> = registry["projects"].as_array().unwrap().iter().collect();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0]["id"], PROJECT);
    let receipts = entries(&full)
        .iter()
        .flatten()
        .filter(|(e, b)| e.kind.as_str() == "receipt" && b["project"] == PROJECT)
        .count();
    let controls = scoped.json("controls.json");
    let t = control_test(&controls, "cc6.1-registered-agent");
    assert_eq!(t["figures"]["receipts"], receipts, "{t}");
    assert_eq!(t["figures"]["receipts_failing"], 0, "{t}");
    assert_eq!(controls["withheld_entries"], m.withheld, "{controls}");

    // And it verifies offline, every derived file re-derived.
    let v = verify(&w.scoped);
    v.assert_ok("the project's pack");
    assert_eq!(v.out["withheld"], m.withheld);
}

/// Nothing in a project's pack names the other project, its agent or
/// its credential — in any file.
#[test]
fn a_project_pack_names_nothing_of_another_project() {
    let w = window();
    let scoped = Pack::open(&w.scoped);
    let mut leaks = Vec::new();
    for (name, bytes) in &scoped.files {
        for needle in &w.facts.other_project {
            let found = bytes
                .windows(needle.len())
                .any(|win| win == needle.as_bytes());
            if !found {
                continue;
            }
            if name == "entries.jsonl" {
                for (i, line) in scoped.entry_lines().iter().enumerate() {
                    if line
                        .windows(needle.len())
                        .any(|win| win == needle.as_bytes())
                    {
                        let e = Entry::decode(line).unwrap();
                        leaks.push(format!(
                            "entries.jsonl:{} ({}, seq {}) names {needle:?}",
                            i + 1,
                            e.kind,
                            e.seq.0
                        ));
                    }
                }
            } else {
                leaks.push(format!("{name} names {needle:?}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "the pack of project {PROJECT} discloses project {OTHER_PROJECT}:\n{}",
        leaks.join("\n")
    );
}

/// The OSCAL assessment results validate against NIST's schema.
#[test]
fn the_oscal_assessment_results_validate_against_nists_schema() {
    let w = window();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, path) in [("full", &w.full), ("scoped", &w.scoped)] {
        let file = dir.path().join(format!("{name}-assessment-results.json"));
        std::fs::write(&file, Pack::open(path).get("oscal/assessment-results.json")).unwrap();
        files.push(file);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = Command::new("bash")
        .arg(root.join("scripts/validate-oscal"))
        .args(&files)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "validate-oscal: {}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sample(pack: &Path, criterion: &str, n: usize, seed: &str) -> Value {
    let o = docket()
        .args(["evidence", "sample"])
        .arg(pack)
        .args(["--key", &window().key, "--criterion", criterion])
        .args(["--n", &n.to_string(), "--seed", seed, "--json"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "sample {criterion} {seed}: {}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A seeded sample is the same every time, another seed draws another,
/// and each sampled action walks back to its agent, decision and approval.
#[test]
fn samples_are_reproducible_and_walk_back_to_agent_decision_and_approval() {
    let w = window();
    let f = &w.facts;
    let a = sample(&w.full, "CC6.1", 5, "s1");
    assert_eq!(
        a,
        sample(&w.full, "CC6.1", 5, "s1"),
        "same seed, same sample"
    );
    let picked = |s: &Value| -> Vec<u64> {
        s["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(picked(&a).len(), 5);
    let others: Vec<Vec<u64>> = ["s2", "s3", "s4"]
        .iter()
        .map(|s| picked(&sample(&w.full, "CC6.1", 5, s)))
        .collect();
    assert!(
        others.iter().any(|o| *o != picked(&a)),
        "other seeds draw other samples: {:?} {others:?}",
        picked(&a)
    );

    // The whole population: receipts and decisions.
    let full = Pack::open(&w.full);
    let population = entries(&full)
        .iter()
        .flatten()
        .filter(|(e, _)| matches!(e.kind.as_str(), "receipt" | "decision"))
        .count();
    let everything = sample(&w.full, "CC6.1", 1000, "all");
    assert_eq!(everything["population"], population);
    let items = everything["items"].as_array().unwrap();
    assert_eq!(items.len(), population);
    for i in items.iter().filter(|i| i["type"] == "receipt") {
        assert!(
            i["agent"]["did"].is_string(),
            "receipt without its agent: {i}"
        );
        assert!(
            i["decision"].is_object(),
            "receipt without its decision: {i}"
        );
        assert_eq!(i["decision"]["body"]["outcome"], "allow", "{i}");
    }
    let denied = items.iter().find(|i| i["seq"] == f.denied).unwrap();
    assert_eq!(denied["decision"]["body"]["outcome"], "deny", "{denied}");
    assert_eq!(denied["policy"]["version"], 1, "{denied}");
    assert!(
        denied["receipt"].is_null(),
        "a denied call has no receipt: {denied}"
    );

    let approved = items
        .iter()
        .find(|i| i["seq"] == f.approved_receipt)
        .unwrap();
    assert_eq!(approved["agent"]["id"], "bot", "{approved}");
    assert_eq!(
        approved["decision"]["body"]["stage"], "approval",
        "{approved}"
    );
    let approvals = approved["approvals"].as_array().unwrap();
    assert!(!approvals.is_empty(), "{approved}");
    let kinds: Vec<&str> = approvals
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    let decided = approvals
        .iter()
        .find(|a| a["type"] == "approval.decided")
        .unwrap_or_else(|| panic!("{approved}"));
    assert_eq!(decided["body"]["decision"], "approve");
    assert_eq!(decided["body"]["by"], "appr");
    assert!(kinds.contains(&"approval.used"), "{kinds:?}");
    // The request the approver decided on is part of the approval's trail.
    assert!(
        approvals
            .iter()
            .any(|a| a["type"] == "approval.requested" && a["seq"] == f.approval),
        "the approval's own approval.requested entry (seq {}) is missing from the sample's walk-back: {kinds:?}",
        f.approval
    );
}

/// A receipt fetched from the server verifies with the pack's key, and
/// its entry is the pack's line: one proof format.
#[test]
fn a_receipt_from_the_server_is_the_packs_entry_under_the_same_key() {
    let w = window();
    let full = Pack::open(&w.full);
    let m = full.manifest();
    let lines = full.entry_lines();
    for file in &w.receipts {
        let o = docket()
            .args(["receipt", "verify"])
            .arg(file)
            .args(["--key", &w.key])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        let receipt: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let seq = receipt["entry"]["seq"].as_u64().unwrap();
        let line: Value =
            serde_json::from_slice(&lines[(seq - m.window.first_seq) as usize]).unwrap();
        assert_eq!(receipt["entry"], line, "seq {seq}");
    }
    // The pack's own proofs of the entries around its window are receipts
    // of the same format.
    let second = Pack::open(&w.second);
    let context = second.get("proof/context.jsonl");
    let first = context.split(|b| *b == b'\n').next().unwrap();
    assert!(
        !first.is_empty(),
        "the second half proves the identity entries before it"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edge.json");
    std::fs::write(&file, first).unwrap();
    let o = docket()
        .args(["receipt", "verify"])
        .arg(&file)
        .args(["--key", &w.key])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

/// The export refuses a window that has not ended or is empty, and
/// callers without the auditor, admin or reviewer role.
#[test]
fn the_export_refuses_open_or_empty_windows_and_developers() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let start = now_micros() - now_micros().rem_euclid(1_000_000) - 60_000_000;
    let s = ServerProcess::start(&dir, None);
    let api = Api::new(&s.base);
    let dev = api.user(&s.token, "dev", "Dana Developer", &["developer"]);
    let appr = api.user(&s.token, "appr", "Avery Approver", &["approver"]);
    let rev = api.user(&s.token, "rev", "Riley Reviewer", &["reviewer"]);
    let get = |token: &str, from: &str, to: &str| {
        let r = api
            .http
            .get(format!("{}/api/v1/evidence/export", s.base))
            .query(&[("from", from), ("to", to)])
            .bearer_auth(token)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.bytes().unwrap().to_vec())
    };
    let error = |bytes: &[u8]| -> Value { serde_json::from_slice(bytes).unwrap_or(Value::Null) };
    let now = now_micros();
    let (from, closed) = (rfc3339(start), rfc3339(now - now.rem_euclid(1_000_000)));
    let open = rfc3339(now + 3_600_000_000);

    let (status, _, body) = get(&s.token, &from, &open);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error(&body)["error"]["code"], "window_open");
    for (a, b) in [(&closed, &closed), (&closed, &from)] {
        let (status, _, body) = get(&s.token, a, b);
        assert_eq!(
            status,
            400,
            "from {a} to {b}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(error(&body)["error"]["code"], "invalid_window");
    }
    let (status, _, body) = get(&s.token, "last tuesday", &closed);
    assert_eq!(status, 400);
    assert_eq!(error(&body)["error"]["code"], "invalid_time");
    for (who, token) in [("a developer", &dev), ("an approver", &appr)] {
        let (status, _, body) = get(token, &from, &closed);
        assert_eq!(status, 403, "{who}: {}", String::from_utf8_lossy(&body));
    }

    // A reviewer may: the pack comes as a zip named by the manifest digest,
    // and verifies.
    let (status, headers, body) = get(&rev, &from, &closed);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/zip");
    let pack = root.path().join("pack.zip");
    std::fs::write(&pack, &body).unwrap();
    let digest = hex::encode(Sha256::digest(Pack::open(&pack).get("manifest.json")));
    assert_eq!(headers["docket-manifest-sha256"].to_str().unwrap(), digest);
    let key = std::fs::read_to_string(dir.join("log.pub")).unwrap();
    verify_with(&pack, key.trim()).assert_ok("the reviewer's pack");

    // The command line says why it got nothing.
    let out = root.path().join("open.zip");
    let o = docket()
        .args([
            "evidence", "export", "--server", &s.base, "--token", &s.token,
        ])
        .args(["--from", &from, "--to", &open, "--out"])
        .arg(&out)
        .env_remove("DOCKET_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has not passed yet"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists(), "no file for a refused export");
    s.stop();
}
