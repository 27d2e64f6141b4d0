//! The write boundary end to end: `POST /api/v1/entries` takes only what an
//! agent or a person says of itself (`receipt` from agents, `note` and
//! `verification`), stamped as their word; everything Docket writes itself
//! is refused there. Each case is a forgery that once went through — an
//! approval decided by the agent it held, a negative or someone else's cost
//! against a budget, a receipt claiming the gateway saw it, a junk approval
//! request — driven against the real binary, and, where the forgery can
//! only be planted in the store directly, caught by `docket verify` and
//! survived by the server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docket_core::EntryType;
use docket_store::sqlite::{SqliteBackend, SqliteConfig};
use docket_store::{Ledger, LedgerConfig, NewEntry};
use serde_json::{Value, json};

use crate::evidence::{Pack, close_window, control_test, export, now_micros, rfc3339, verify_with};
use crate::gateway::{Docket, MODELS, PROVIDER_KEY, PROVIDER_KEY_ENV, Setup, chat_body};
use crate::support::{Serve, ServerProcess, docket, run, stdout};

/// The start of a window that holds everything a test does from now on.
fn window_start() -> i64 {
    let now = now_micros();
    now - now.rem_euclid(1_000_000)
}

/// Exports `[from, now)` as the admin into the test's directory and opens it.
fn export_window(d: &Docket, from: i64, name: &str) -> (Pack, std::path::PathBuf) {
    let to = close_window();
    let path = d.root.path().join(name);
    export(
        d.base(),
        &d.admin,
        &rfc3339(from),
        &rfc3339(to),
        None,
        &path,
    );
    (Pack::open(&path), path)
}

/// The log's public key, as `docket serve` wrote it.
fn log_key(d: &Docket) -> String {
    d.data.join("log.pub").to_str().unwrap().to_owned()
}

/// A raw gateway call with `key`: status, JSON answer, `docket-receipt`.
fn call_as(
    d: &Docket,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<u64>) {
    let mut req = d
        .http
        .post(format!("{}/v1/chat/completions", d.base()))
        .bearer_auth(key)
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let receipt = r
        .headers()
        .get("docket-receipt")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (status, r.json().unwrap_or(Value::Null), receipt)
}

/// Appends `{type, body}` through `POST /api/v1/entries` as `token`.
fn post_entry(d: &Docket, token: &str, kind: &str, body: Value) -> (u16, Value) {
    d.api(
        "POST",
        "/api/v1/entries",
        token,
        json!({"type": kind, "body": body}),
    )
}

fn assert_refused(status: u16, v: &Value, want_status: u16, code: &str, what: &str) {
    assert_eq!(status, want_status, "{what}: {v}");
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
}

/// Appends one entry to a stopped server's SQLite store the way every
/// entry was once appended — through the ledger, hashed and chained, past
/// every check of the API — and returns its `seq`.
fn plant(data: &Path, kind: EntryType, body: &Value) -> u64 {
    let backend = SqliteBackend::open(&SqliteConfig::new(data.join("docket.db"))).unwrap();
    let ledger = Ledger::open(Arc::new(backend), LedgerConfig::default()).unwrap();
    let acks = ledger
        .append_blocking(vec![NewEntry::new(kind, body).unwrap()])
        .unwrap();
    ledger.close();
    acks[0].seq.0
}

/// `docket verify --data-dir` as text and as JSON.
fn verify_data_dir(data: &Path) -> (Output, Output) {
    let dir = data.to_str().unwrap();
    (
        run(&["verify", "--data-dir", dir]),
        run(&["verify", "--data-dir", dir, "--json"]),
    )
}

/// Asserts that `docket verify --data-dir` finds the hashes sound but
/// exactly the entry at `seq` breaking the write table, with `problem` in
/// what it says of it.
fn assert_verify_names(data: &Path, seq: u64, problem: &str) {
    let (text, json_out) = verify_data_dir(data);
    let out = stdout(&text);
    let all = format!("{out}{}", String::from_utf8_lossy(&text.stderr));
    assert_eq!(
        text.status.code(),
        Some(1),
        "an entry breaking the write table fails verify: {all}"
    );
    assert!(
        out.contains(" tiles of ") && out.contains(" verify; root "),
        "the hashes, chain and tiles still verify: {all}"
    );
    assert!(
        out.contains("1 entries break the write table"),
        "exactly one entry breaks the write table: {all}"
    );
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("seq {seq}:")))
        .unwrap_or_else(|| panic!("no line names seq {seq}: {all}"));
    assert!(line.contains(problem), "{problem:?} not in {line:?}");

    assert_eq!(json_out.status.code(), Some(1), "{}", stdout(&json_out));
    let v: Value = serde_json::from_slice(&json_out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", stdout(&json_out)));
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["integrity"], "ok", "{v}");
    assert_eq!(v["writer_findings"]["total"], 1, "{v}");
    assert_eq!(v["writer_findings"]["listed"][0]["seq"], seq, "{v}");
}

/// Strips the terminal colours a log line may carry.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Starts `docket serve` again on `d`'s data and configuration like
/// [`Docket::restart`] does, keeping everything it writes to stderr.
fn start_keeping_stderr(d: &mut Docket) -> Arc<Mutex<String>> {
    if let Some(s) = d.server.take() {
        s.stop();
    }
    let config = d.root.path().join("docket.toml");
    let mut child = docket()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args([
            "--data-dir",
            d.data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("DOCKET_CHECKPOINT_INTERVAL_MS", "100")
        .env("DOCKET_LOG", "warn")
        .env(PROVIDER_KEY_ENV, PROVIDER_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docket serve");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(addr) = line.split(" on http://").nth(1) {
                let _ = tx.send(format!("http://{}", addr.trim()));
            }
            let mut k = kept.lock().unwrap();
            k.push_str(&line);
            k.push('\n');
        }
    });
    let base = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(base) => base,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "docket serve did not start over the planted entry:\n{}",
                log.lock().unwrap()
            );
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reqwest::blocking::get(format!("{base}/healthz")).is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "docket serve does not answer");
        std::thread::sleep(Duration::from_millis(25));
    }
    d.server = Some(ServerProcess {
        child,
        base,
        token: d.admin.clone(),
        base_size: 0,
    });
    log
}

/// Entries of `kind` about `agent`, oldest first.
fn entries_of(d: &Docket, kind: &str, agent: &str) -> Vec<Value> {
    let v = d.ok(
        "GET",
        &format!("/api/v1/entries?type={kind}&agent={agent}&order=asc&limit=1000"),
        &d.admin,
        Value::Null,
    );
    v["entries"].as_array().unwrap().clone()
}

/// The day's spending of the bot and of its project, as `GET /limits` shows it.
fn spent(d: &Docket) -> (i64, i64) {
    let limits = d.ok("GET", "/api/v1/limits", &d.admin, Value::Null);
    let of = |scope: &str, id: &str| {
        limits["limits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["scope"] == scope && l[scope] == id)
            .unwrap_or_else(|| panic!("no {scope} {id} in {limits}"))["spent_today_micro_usd"]
            .as_i64()
            .unwrap_or_else(|| panic!("no spending of {scope} {id} in {limits}"))
    };
    (of("agent", "bot"), of("project", "support"))
}

/// A held action cannot be approved by writing its `approval.decided`
/// through `POST /entries`: the agent (or anyone) is refused with
/// `reserved_type`, the approval stays pending across a restart, the call
/// is not let through, and the evidence pack names no approver for it.
#[test]
fn forged_approval_leaves_the_call_held() {
    let from = window_start();
    let mut d = Docket::start(Setup::default());
    let held_body = chat_body("gpt-5", "Refund order 4242");
    let (status, held, _) = call_as(&d, &d.key, &held_body, &[("Docket-Approval-Wait", "0")]);
    assert_eq!(status, 202, "gpt-5 is held for a human: {held}");
    assert_eq!(held["state"], "pending", "{held}");
    let id = held["approval"].as_u64().unwrap();

    // The agent, with its own key, writes the approver's decision itself.
    let forged = json!({"approval": id, "decision": "approve", "by": "appr",
                        "agent": "bot", "project": "support"});
    let (status, v) = post_entry(&d, &d.key, "approval.decided", forged.clone());
    assert_refused(
        status,
        &v,
        403,
        "reserved_type",
        "the agent's forged approval",
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/approvals/{id}/decide"),
        "the refusal names the route that writes it: {v}"
    );
    // Nor the admin, who may append and approve: only the decide route
    // writes a decision.
    let (status, v) = post_entry(&d, &d.admin, "approval.decided", forged.clone());
    assert_refused(status, &v, 403, "reserved_type", "the admin's raw entry");
    // Nor hidden in a batch behind an entry the agent may write.
    let (status, v) = d.api(
        "POST",
        "/api/v1/entries",
        &d.key,
        json!({"entries": [
            {"type": "note", "body": {"text": "approving my own refund"}},
            {"type": "approval.decided", "body": forged},
        ]}),
    );
    assert_refused(status, &v, 403, "reserved_type", "a batch with a forgery");
    assert!(
        d.entries("note").is_empty(),
        "nothing of a refused batch is written"
    );
    assert!(d.entries("approval.decided").is_empty());

    // A restart reads the approvals back from the ledger: still pending.
    d.restart();
    let approval = d.ok(
        "GET",
        &format!("/api/v1/approvals/{id}"),
        &d.appr,
        Value::Null,
    );
    assert_eq!(approval["state"], "pending", "{approval}");
    let (status, v, receipt) = call_as(
        &d,
        &d.key,
        &held_body,
        &[("Docket-Approval", &id.to_string())],
    );
    assert_eq!(status, 403, "the held call is not let through: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("still pending"),
        "{v}"
    );
    assert_eq!(receipt, None, "{v}");
    assert!(
        d.standin.requests().is_empty(),
        "nothing reached the provider"
    );

    // The pack: the request is there, no decision and no approver.
    let (pack, path) = export_window(&d, from, "forged-approval.zip");
    let approvals = pack.lines("records/approvals.jsonl");
    assert!(
        approvals
            .iter()
            .any(|a| a["type"] == "approval.requested" && a["seq"] == id),
        "{approvals:?}"
    );
    let about: Vec<&Value> = approvals
        .iter()
        .filter(|a| a["approval"] == id || a["seq"] == id)
        .collect();
    assert!(
        about
            .iter()
            .all(|a| a["type"] != "approval.decided" && a.get("by").is_none()),
        "the pack names no approver for approval {id}: {about:?}"
    );
    let controls = pack.json("controls.json");
    let t = control_test(&controls, "cc6.1-writers");
    assert_eq!(t["figures"]["entries_failing"], 0, "{t}");
    verify_with(&path, &log_key(&d)).assert_ok("the pack of the forged approval's window");
}

/// A receipt cannot move a budget it is not the gateway's to move: a
/// negative cost is refused naming the member, a person's receipt for the
/// agent is refused, and the agent's own (accepted) account counts for
/// nothing; after a restart the spending is what it was and a call within
/// budget goes through.
#[test]
fn negative_and_foreign_cost_leave_budgets_unchanged() {
    let mut d = Docket::start(Setup::default());
    // Budgets, so `GET /limits` shows the spending: 1000 USD a day.
    for target in [
        json!({"scope": "agent", "agent": "bot"}),
        json!({"scope": "project", "project": "support"}),
    ] {
        let mut body = target;
        body["limits"] = json!({"budget_day_micro_usd": 1_000_000_000});
        d.ok("PUT", "/api/v1/limits", &d.admin, body);
    }
    let call = chat_body("gpt-4o-mini", "Summarise ticket 31");
    let (status, v, receipt) = call_as(&d, &d.key, &call, &[]);
    assert_eq!(status, 200, "{v}");
    let cost = d.entry(receipt.expect("a docket-receipt header"))["body"]["cost_micro_usd"]
        .as_i64()
        .unwrap();
    assert!(cost > 0);
    let before = spent(&d);
    assert_eq!(before, (cost, cost), "the gateway's call counts");

    // A negative cost would give budget back.
    let (status, v) = post_entry(
        &d,
        &d.key,
        "receipt",
        json!({"provider": "openai", "model": "gpt-4o-mini",
               "cost_micro_usd": -1_000_000_000_000i64}),
    );
    assert_refused(status, &v, 400, "invalid_body", "a negative cost");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cost_micro_usd"),
        "the refusal names the member: {v}"
    );
    // People do not write receipts, least of all for an agent.
    let reviewer = d.user("rev", &["reviewer"]);
    let foreign = json!({"agent": "bot", "project": "support", "provider": "openai",
                         "model": "gpt-4o-mini", "cost_micro_usd": 1_000_000_000_000_000u64});
    for (who, token) in [("a reviewer", &reviewer), ("the admin", &d.admin)] {
        let (status, v) = post_entry(&d, token, "receipt", foreign.clone());
        assert_refused(status, &v, 403, "reserved_type", who);
    }
    // The agent's own account of a costly call is recorded as its word and
    // counts against no budget.
    let (status, v) = post_entry(
        &d,
        &d.key,
        "receipt",
        json!({"provider": "openai", "model": "gpt-4o-mini",
               "cost_micro_usd": 1_000_000_000_000_000u64}),
    );
    assert_eq!(status, 201, "{v}");
    let own = d.entry(v["entries"][0]["seq"].as_u64().unwrap());
    assert_eq!(own["body"]["source"], "agent_reported", "{own}");
    assert_eq!(spent(&d), before, "nothing but the gateway's call counts");

    // Read back from the ledger at start: the same.
    d.restart();
    assert_eq!(spent(&d), before, "after a restart");
    let (status, v, receipt) = call_as(&d, &d.key, &call, &[]);
    assert_eq!(status, 200, "a call within budget goes through: {v}");
    let cost2 = d.entry(receipt.expect("a docket-receipt header"))["body"]["cost_micro_usd"]
        .as_i64()
        .unwrap();
    assert_eq!(spent(&d), (before.0 + cost2, before.1 + cost2));
}

/// An agent cannot pass its word off as the gateway's: `source` is
/// Docket's to stamp; its own receipt of a model call is `agent_reported`
/// and counted apart from the vendor shares. A gateway receipt planted in
/// the store without the gateway's decision is named by `docket verify`.
#[test]
fn a_forged_gateway_receipt_is_refused_and_caught_if_planted() {
    let from = window_start();
    let mut d = Docket::start(Setup::default());
    let (status, v, _) = call_as(&d, &d.key, &chat_body("gpt-4o-mini", "Ticket 51"), &[]);
    assert_eq!(status, 200, "one call the gateway carried: {v}");

    let (status, v) = post_entry(
        &d,
        &d.key,
        "receipt",
        json!({"source": "gateway", "provider": "openai", "model": "gpt-4o-mini",
               "cost_micro_usd": 5000}),
    );
    assert_refused(status, &v, 400, "invalid_body", "source: gateway");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("source"),
        "{v}"
    );

    let (status, v) = post_entry(
        &d,
        &d.key,
        "receipt",
        json!({"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 12,
               "output_tokens": 3, "cost_micro_usd": 5000, "outcome": "ok"}),
    );
    assert_eq!(status, 201, "{v}");
    let reported_seq = v["entries"][0]["seq"].as_u64().unwrap();
    let reported = d.entry(reported_seq);
    let body = &reported["body"];
    assert_eq!(body["source"], "agent_reported", "{reported}");
    assert_eq!(body["agent"], "bot", "{reported}");
    assert_eq!(body["credential"], d.credential.as_str(), "{reported}");
    assert_eq!(body["actor"]["agent"], "bot", "{reported}");

    let (pack, path) = export_window(&d, from, "reported-receipt.zip");
    let vendors = pack.json("vendors.json");
    assert_eq!(vendors["calls"], 1, "only the gateway's call: {vendors}");
    assert_eq!(vendors["agent_reported_calls"], 1, "{vendors}");
    assert_eq!(vendors["agent_reported_cost_micro_usd"], 5000, "{vendors}");
    let openai = vendors["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["provider"] == "openai" && l["model"].is_null())
        .unwrap_or_else(|| panic!("no openai line: {vendors}"));
    assert_eq!(openai["calls"], 1, "{vendors}");
    let controls = pack.json("controls.json");
    let t = control_test(&controls, "cc6.1-writers");
    assert_eq!(t["figures"]["entries_failing"], 0, "{t}");
    assert_eq!(t["figures"]["gateway_observed_receipts"], 1, "{t}");
    assert_eq!(t["figures"]["agent_reported_receipts"], 1, "{t}");
    verify_with(&path, &log_key(&d)).assert_ok("the pack with an agent's own receipt");

    // Planted past the API: the agent's receipt, now claiming the gateway
    // observed it, linked to an entry that is no gateway decision.
    d.server.take().unwrap().stop();
    let mut forged = body.clone();
    forged["source"] = json!("gateway");
    forged["decision"] = json!(reported_seq);
    forged["api"] = json!("/v1/chat/completions");
    forged["upstream_status"] = json!(200);
    forged["cost_micro_usd"] = json!(1_000_000);
    let seq = plant(&d.data, EntryType::Receipt, &forged);
    assert_verify_names(&d.data, seq, "gateway");

    // Nor does the planted receipt count against the agent's budget when
    // the server reads this month's spending back at start.
    d.server = Some(ServerProcess::start_with(
        &d.data,
        Some(&d.admin),
        &Serve {
            config: Some(&d.root.path().join("docket.toml")),
            env: &[(PROVIDER_KEY_ENV, PROVIDER_KEY)],
        },
    ));
    d.ok(
        "PUT",
        "/api/v1/limits",
        &d.admin,
        json!({"scope": "agent", "agent": "bot", "limits": {"budget_day_micro_usd": 1_000_000_000}}),
    );
    d.ok(
        "PUT",
        "/api/v1/limits",
        &d.admin,
        json!({"scope": "project", "project": "support", "limits": {"budget_day_micro_usd": 1_000_000_000}}),
    );
    let gateway_cost = d
        .entries("receipt")
        .iter()
        .filter(|r| r["body"]["source"] == "gateway" && r["seq"].as_u64() != Some(seq))
        .map(|r| r["body"]["cost_micro_usd"].as_i64().unwrap())
        .sum::<i64>();
    assert_eq!(
        spent(&d),
        (gateway_cost, gateway_cost),
        "the planted receipt counts for nothing"
    );
}

/// `approval.requested` is Docket's: an agent's junk one is refused; planted
/// in the store, it keeps neither the server from starting (it reports the
/// entry and serves) nor `docket verify` from naming it.
#[test]
fn junk_approval_request_is_refused_and_survived_if_planted() {
    let mut d = Docket::start(Setup::default());
    let (status, v) = post_entry(&d, &d.key, "approval.requested", json!({"hello": 1}));
    assert_refused(status, &v, 403, "reserved_type", "a junk approval request");
    let (status, v) = post_entry(&d, &d.dev, "approval.requested", json!({"hello": 1}));
    assert_refused(
        status,
        &v,
        403,
        "reserved_type",
        "a person's approval request",
    );

    d.server.take().unwrap().stop();
    let seq = plant(&d.data, EntryType::ApprovalRequested, &json!({"hello": 1}));

    let log = start_keeping_stderr(&mut d);
    // It serves: people, the approvals it folded, and the gateway.
    let pending = d.ok("GET", "/api/v1/approvals", &d.appr, Value::Null);
    assert_eq!(pending["approvals"], json!([]), "{pending}");
    let (status, v, _) = call_as(&d, &d.key, &chat_body("gpt-4o-mini", "Ticket 61"), &[]);
    assert_eq!(status, 200, "{v}");
    let finding = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = plain(&log.lock().unwrap());
            if let Some(l) = text
                .lines()
                .find(|l| l.contains("integrity finding") && l.contains(&format!("seq={seq}")))
            {
                break l.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no integrity finding for seq {seq} in the server's log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    assert!(finding.contains("approvals"), "{finding}");
    let metrics = d
        .http
        .get(format!("{}/metrics", d.base()))
        .bearer_auth(&d.admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("docket_integrity_findings_total") && !l.ends_with(" 0")),
        "the finding is counted: {metrics}"
    );
    d.server.take().unwrap().stop();
    assert_verify_names(&d.data, seq, "approval.requested");
}

/// The receipt the README shows an agent posting is one CC6.1 counts as a
/// registered agent's, with nothing failing.
#[test]
fn the_readme_receipt_passes_cc6_1() {
    let from = window_start();
    let d = Docket::start(Setup::default());
    d.ok(
        "POST",
        "/api/v1/projects",
        &d.admin,
        json!({"id": "research", "name": "Research", "members": ["dev", "appr"],
               "rules": [{"agents": ["*"], "tools": ["search"], "data_classes": ["customer_data"]}]}),
    );
    let v = d.ok(
        "POST",
        "/api/v1/agents",
        &d.dev,
        json!({"id": "searcher", "name": "Searcher", "project": "research",
               "purpose": "looks things up",
               "scope": {"tools": ["search"], "data_classes": ["customer_data"]}}),
    );
    d.approve_change(v["request"].as_u64().unwrap());
    let v = d.ok(
        "POST",
        "/api/v1/agents/searcher/credentials",
        &d.dev,
        json!({}),
    );
    let key = v["token"].as_str().unwrap().to_owned();

    // Exactly the README's request.
    let r = d
        .http
        .post(format!("{}/api/v1/entries", d.base()))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(r#"{"type":"receipt","body":{"tool":"search","data_classes":["customer_data"]}}"#)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().unwrap();
    assert_eq!(status, 201, "{v}");
    let receipt = d.entry(v["entries"][0]["seq"].as_u64().unwrap());
    assert_eq!(receipt["body"]["agent"], "searcher", "{receipt}");
    assert_eq!(receipt["body"]["source"], "agent_reported", "{receipt}");

    let (pack, path) = export_window(&d, from, "readme-receipt.zip");
    let controls = pack.json("controls.json");
    let t = control_test(&controls, "cc6.1-registered-agent");
    assert_eq!(t["figures"]["receipts"], 1, "{t}");
    assert_eq!(t["figures"]["receipts_failing"], 0, "{t}");
    assert_eq!(t["status"], "satisfied", "{t}");
    let t = control_test(&controls, "cc6.1-writers");
    assert_eq!(t["figures"]["entries_failing"], 0, "{t}");
    verify_with(&path, &log_key(&d)).assert_ok("the pack of the README's receipt");
}

/// Four eyes on held actions: an agent's owner, an approver too, may not
/// decide its held action (`four_eyes`); another approver may, and the
/// call then goes ahead.
#[test]
fn an_agents_owner_cannot_approve_its_held_action() {
    let d = Docket::start(Setup::default());
    // The owner is neither who requested the agent (the admin) nor, with
    // no human named on the call, who it acts for: only ownership counts.
    d.user("owner", &["developer"]);
    d.ok(
        "PUT",
        "/api/v1/users/owner/kyc",
        &d.admin,
        json!({"status": "verified", "method": "passport check"}),
    );
    d.ok(
        "POST",
        "/api/v1/projects",
        &d.admin,
        json!({"id": "ops", "name": "Ops", "members": ["owner", "appr"],
               "rules": [{"agents": ["*"], "models": MODELS}]}),
    );
    let v = d.ok(
        "POST",
        "/api/v1/agents",
        &d.admin,
        json!({"id": "helper", "name": "Helper", "project": "ops", "purpose": "ops work",
               "owner": "owner", "scope": {"models": MODELS}}),
    );
    d.approve_change(v["request"].as_u64().unwrap());
    assert_eq!(
        d.ok("GET", "/api/v1/agents/helper", &d.admin, Value::Null)["owner"],
        "owner"
    );
    // The owner is given the approver role too, and logs in again.
    d.ok(
        "PATCH",
        "/api/v1/users/owner",
        &d.admin,
        json!({"roles": ["developer", "approver"]}),
    );
    let owner = {
        let v: Value = d
            .http
            .post(format!("{}/api/v1/login", d.base()))
            .basic_auth("owner", Some("owner-gateway-test-password"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["token"].as_str().unwrap().to_owned()
    };
    let v = d.ok(
        "POST",
        "/api/v1/agents/helper/credentials",
        &owner,
        json!({}),
    );
    let key = v["token"].as_str().unwrap().to_owned();

    let held_body = chat_body("gpt-5", "Restart the billing cluster");
    let (status, held, _) = call_as(&d, &key, &held_body, &[("Docket-Approval-Wait", "0")]);
    assert_eq!(status, 202, "{held}");
    let id = held["approval"].as_u64().unwrap();
    let approval = d.ok(
        "GET",
        &format!("/api/v1/approvals/{id}"),
        &d.appr,
        Value::Null,
    );
    assert_eq!(approval["agent"], "helper", "{approval}");
    assert!(approval["human"].is_null(), "{approval}");

    let (status, v) = d.decide(&owner, &approval, "approve", "my agent, my call");
    assert_refused(status, &v, 403, "four_eyes", "the owner approving");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("owns"),
        "{v}"
    );
    let after = d.ok(
        "GET",
        &format!("/api/v1/approvals/{id}"),
        &d.appr,
        Value::Null,
    );
    assert_eq!(after["state"], "pending", "{after}");
    assert!(entries_of(&d, "approval.decided", "helper").is_empty());

    // The owner's approval planted in the store past the API: read back at
    // start, it is held to the same rule and leaves the approval pending.
    let mut d = d;
    d.server.take().unwrap().stop();
    let planted = plant(
        &d.data,
        EntryType::ApprovalDecided,
        &json!({
            "approval": id, "agent": "helper", "project": "ops", "decision": "approve",
            "shown": approval["summary"], "shown_sha256": approval["summary_sha256"],
            "by": "owner", "human": "owner",
            "actor": {"kind": "human", "user": "owner", "credential": "aaaaaaaaaaaaaaaa"},
        }),
    );
    d.server = Some(ServerProcess::start_with(
        &d.data,
        Some(&d.admin),
        &Serve {
            config: Some(&d.root.path().join("docket.toml")),
            env: &[(PROVIDER_KEY_ENV, PROVIDER_KEY)],
        },
    ));
    let after = d.ok(
        "GET",
        &format!("/api/v1/approvals/{id}"),
        &d.appr,
        Value::Null,
    );
    assert_eq!(
        after["state"], "pending",
        "planted at seq {planted}: {after}"
    );
    let (status, v, _) = call_as(
        &d,
        &key,
        &held_body,
        &[("Docket-Approval", &id.to_string())],
    );
    assert_ne!(
        status, 200,
        "the planted approval lets nothing through: {v}"
    );
    assert!(d.standin.requests().is_empty());

    let (status, v) = d.decide(&d.appr, &approval, "approve", "planned maintenance");
    assert_eq!(status, 200, "another approver may: {v}");
    let (status, v, receipt) = call_as(
        &d,
        &key,
        &held_body,
        &[("Docket-Approval", &id.to_string())],
    );
    assert_eq!(status, 200, "{v}");
    assert!(receipt.is_some(), "{v}");
    assert_eq!(d.standin.requests().len(), 1);
}
