//! The identity lifecycle driven from the `docket` command line against a
//! real `docket serve`: users, a project, an agent requested and approved
//! by two people, its keys, an access review, retirement — then
//! `docket verify` over the data directory.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::support::{ServerProcess, docket, stdout};

/// Runs `docket args…` against `s` with `token`; panics with the output on failure.
fn ok(s: &ServerProcess, token: &str, args: &[&str]) -> String {
    let out = with(s, token, args, &[]);
    assert!(
        out.status.success(),
        "docket {args:?} failed: {}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

fn with(s: &ServerProcess, token: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = docket();
    cmd.args(args)
        .env("DOCKET_SERVER", &s.base)
        .env("DOCKET_TOKEN", token)
        .env_remove("DOCKET_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run docket")
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn login(s: &ServerProcess, user: &str, password: &str) -> String {
    let out = with(
        s,
        "",
        &["login", "--user", user],
        &[("DOCKET_PASSWORD", password)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out).trim().to_owned()
}

fn create_user(s: &ServerProcess, admin: &str, id: &str, roles: &str) -> String {
    use std::io::Write;
    let password = format!("{id}-long-password");
    let mut child = docket()
        .args([
            "users",
            "create",
            id,
            "--name",
            id,
            "--roles",
            roles,
            "--password-stdin",
        ])
        .env("DOCKET_SERVER", &s.base)
        .env("DOCKET_TOKEN", admin)
        // Set, and ignored: only `login` reads it.
        .env("DOCKET_PASSWORD", "the-admins-own-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    login(s, id, &password)
}

#[test]
fn the_identity_lifecycle_from_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let s = ServerProcess::start(&dir, None);
    let admin = s.token.clone();
    // A lead who may also approve: four eyes must still stop them approving their own request.
    let dev = create_user(&s, &admin, "dev", "developer,approver");
    let appr = create_user(&s, &admin, "appr", "approver");
    let rev = create_user(&s, &admin, "rev", "reviewer");
    let out = with(
        &s,
        "",
        &["login", "--user", "dev"],
        &[("DOCKET_PASSWORD", "not-the-password")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    // A password reset from the command line; the old one stops working.
    {
        use std::io::Write;
        let mut child = docket()
            .args(["users", "password", "rev", "--password-stdin"])
            .env("DOCKET_SERVER", &s.base)
            .env("DOCKET_TOKEN", &rev)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "a fresh reviewer password").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!login(&s, "rev", "a fresh reviewer password").is_empty());
        let out = with(
            &s,
            "",
            &["login", "--user", "rev"],
            &[("DOCKET_PASSWORD", "rev-long-password")],
        );
        assert_eq!(out.status.code(), Some(2));
    }

    ok(
        &s,
        &admin,
        &[
            "users",
            "kyc",
            "dev",
            "--status",
            "verified",
            "--method",
            "video call",
        ],
    );
    let users = json_of(&ok(&s, &admin, &["users", "list", "--json"]));
    let dev_row = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "dev")
        .unwrap()
        .clone();
    assert_eq!(dev_row["kyc"]["status"], "verified");
    assert_eq!(dev_row["kyc"]["verified_by"], "admin");

    let project = root.path().join("support.json");
    std::fs::write(
        &project,
        json!({"id": "support", "name": "Support", "members": ["dev", "appr"],
               "rules": [{"agents": ["*"], "tools": ["search"], "data_classes": ["customer_data"]}]})
        .to_string(),
    )
    .unwrap();
    ok(
        &s,
        &admin,
        &["projects", "create", project.to_str().unwrap()],
    );

    // Requested by the developer; the private key is printed once.
    let out = ok(
        &s,
        &dev,
        &[
            "agents",
            "request",
            "support-bot",
            "--name",
            "Support bot",
            "--project",
            "support",
            "--purpose",
            "answers tickets",
            "--tools",
            "search",
            "--data-classes",
            "customer_data",
            "--json",
        ],
    );
    let req = json_of(&out);
    let request = req["request"].as_u64().unwrap().to_string();
    assert!(req["private_key"].is_string());
    assert!(
        req["agent"]["did"]
            .as_str()
            .unwrap()
            .starts_with("did:key:z6Mk")
    );

    // The requester cannot approve; another human can.
    let out = with(&s, &dev, &["agents", "approve", &request], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("four-eyes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pending = json_of(&ok(
        &s,
        &appr,
        &["agents", "changes", "--status", "pending", "--json"],
    ));
    assert_eq!(pending["changes"].as_array().unwrap().len(), 1);
    ok(&s, &appr, &["agents", "approve", &request]);

    let key = ok(
        &s,
        &dev,
        &["credentials", "issue", "support-bot", "--label", "prod"],
    )
    .trim()
    .to_owned();
    assert!(key.starts_with("dka_"), "{key}");
    let session = ok(
        &s,
        &dev,
        &[
            "credentials",
            "session",
            "support-bot",
            "--task",
            "ticket-7",
        ],
    )
    .trim()
    .to_owned();
    assert!(session.starts_with("dks_"), "{session}");
    let creds = json_of(&ok(
        &s,
        &admin,
        &["credentials", "list", "--agent", "support-bot", "--json"],
    ));
    let listed = creds["credentials"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        !creds.to_string().contains(&key[20..]),
        "secrets never leave the server"
    );
    let table = ok(&s, &admin, &["agents", "list"]);
    assert!(
        table.contains("support-bot") && table.contains("active"),
        "{table}"
    );

    // An access review: the reviewer marks it revoke; completion applies it.
    let review = ok(&s, &admin, &["access-review", "open"]).trim().to_owned();
    let shown = ok(&s, &rev, &["access-review", "show", &review]);
    assert!(
        shown.contains("support-bot") && shown.contains("undecided"),
        "{shown}"
    );
    ok(
        &s,
        &rev,
        &[
            "access-review",
            "decide",
            &review,
            "support-bot",
            "revoke",
            "--note",
            "not needed",
        ],
    );
    // Every human is kept; the reviewer's own access is decided by the admin.
    let shown = json_of(&ok(&s, &rev, &["access-review", "show", &review, "--json"]));
    for h in shown["humans"].as_array().unwrap() {
        let user = h["user"].as_str().unwrap();
        let decider = if user == "rev" { &admin } else { &rev };
        ok(
            &s,
            decider,
            &[
                "access-review",
                "decide",
                &review,
                &format!("user:{user}"),
                "keep",
            ],
        );
    }
    let table = ok(&s, &rev, &["access-review", "show", &review]);
    assert!(
        table.contains("kyc") && !table.contains("undecided"),
        "{table}"
    );
    ok(&s, &admin, &["access-review", "complete", &review]);
    let agent = json_of(&ok(&s, &admin, &["agents", "show", "support-bot"]));
    assert_eq!(agent["status"], "suspended");
    let me = with(&s, &key, &["users", "list"], &[]);
    assert!(String::from_utf8_lossy(&me.stderr).contains("401"));

    // Retirement, requested by the owner and approved by someone else.
    let out = json_of(&ok(
        &s,
        &dev,
        &[
            "agents",
            "retire",
            "support-bot",
            "--reason",
            "replaced",
            "--json",
        ],
    ));
    let retire = out["request"].as_u64().unwrap().to_string();
    ok(&s, &appr, &["agents", "approve", &retire]);
    let agent = json_of(&ok(&s, &admin, &["agents", "show", "support-bot"]));
    assert_eq!(agent["status"], "retired");

    let all = json_of(&ok(
        &s,
        &admin,
        &[
            "query",
            "--agent",
            "support-bot",
            "--order",
            "asc",
            "--json",
        ],
    ));
    let types: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "change.requested",
            "change.approved",
            "agent.registered",
            "credential.issued",
            "credential.issued",
            "access_review",
            "credential.revoked",
            "credential.revoked",
            "agent.suspended",
            "change.requested",
            "change.approved",
            "agent.retired"
        ]
    );
    s.stop();

    let out = docket()
        .args(["verify", "--data-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(Path::new(&dir).join("log.pub").exists());
}

/// Secrets — passwords, tokens, an agent's private key — never reach the
/// server's logs (at debug level, request traces included) or its error
/// messages, even when requests with them fail.
#[test]
fn no_secret_reaches_the_logs_or_the_errors() {
    use std::process::Stdio;
    use std::time::Duration;

    let root = tempfile::tempdir().unwrap();
    let log_path = root.path().join("serve.log");
    // Port 0: the server picks a free port and prints it, so no other
    // test can take it between choosing and binding.
    let mut child = docket()
        .args([
            "serve",
            "--data-dir",
            root.path().join("data").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("DOCKET_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let http = reqwest::blocking::Client::new();
    let after = |log: &str, marker: &str| {
        log.split(marker)
            .nth(1)
            .and_then(|t| t.lines().next())
            .map(|t| t.trim().to_owned())
    };
    let (mut bootstrap, mut base) = (None, String::new());
    for _ in 0..800 {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bootstrap = after(&log, "create the first admin): ");
        if let Some(addr) = after(&log, " on http://") {
            base = format!("http://{addr}");
        }
        if bootstrap.is_some() && !base.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let bootstrap = bootstrap.expect("bootstrap token printed");
    let call = |method: reqwest::Method, path: &str, token: &str, body: Value| -> (u16, Value) {
        let r = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    let mut secrets: Vec<String> = vec![
        "admin-secret-password-1".into(),
        "developer-secret-pw-2".into(),
    ];
    let (_, v) = call(
        reqwest::Method::POST,
        "/api/v1/bootstrap",
        &bootstrap,
        json!({"id": "admin", "name": "A", "password": secrets[0]}),
    );
    let admin = v["token"].as_str().unwrap().to_owned();
    secrets.push(admin.clone());
    call(
        reqwest::Method::POST,
        "/api/v1/users",
        &admin,
        json!({"id": "dev", "name": "D", "roles": ["developer"], "password": secrets[1]}),
    );
    // A password too short, a wrong password, a mistyped token: errors that must not echo them.
    let (st, v) = call(
        reqwest::Method::POST,
        "/api/v1/users/dev/password",
        &admin,
        json!({"password": "short-pw-3"}),
    );
    assert_eq!(st, 400);
    assert!(!v.to_string().contains("short-pw-3"), "{v}");
    secrets.push("short-pw-3".into());
    let r = http
        .post(format!("{base}/api/v1/login"))
        .basic_auth("dev", Some("wrong-secret-pw-4"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(!r.text().unwrap().contains("wrong-secret-pw-4"));
    secrets.push("wrong-secret-pw-4".into());
    let r = http
        .post(format!("{base}/api/v1/login"))
        .basic_auth("dev", Some(&secrets[1]))
        .send()
        .unwrap();
    let dev = r.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.push(dev.clone());
    call(
        reqwest::Method::POST,
        "/api/v1/projects",
        &admin,
        json!({"id": "p", "name": "P", "members": ["dev"], "rules": [{"agents": ["*"], "tools": ["t"]}]}),
    );
    let (_, v) = call(
        reqwest::Method::POST,
        "/api/v1/agents",
        &dev,
        json!({"id": "bot", "name": "Bot", "project": "p", "purpose": "x", "scope": {"tools": ["t"]}}),
    );
    secrets.push(v["private_key"].as_str().unwrap().to_owned());
    let request = v["request"].as_u64().unwrap();
    call(
        reqwest::Method::POST,
        &format!("/api/v1/changes/{request}/approve"),
        &admin,
        json!({}),
    );
    let (_, v) = call(
        reqwest::Method::POST,
        "/api/v1/agents/bot/credentials",
        &dev,
        json!({}),
    );
    let key = v["token"].as_str().unwrap().to_owned();
    secrets.push(key.clone());
    let (_, v) = call(
        reqwest::Method::POST,
        "/api/v1/sessions",
        &key,
        json!({"task": "t"}),
    );
    secrets.push(v["token"].as_str().unwrap().to_owned());
    let mistyped = format!("{}x", &key);
    let (st, v) = call(reqwest::Method::GET, "/api/v1/me", &mistyped, json!({}));
    assert_eq!(st, 401);
    assert!(!v.to_string().contains(&key[..20]), "{v}");
    call(
        reqwest::Method::POST,
        "/api/v1/entries",
        &key,
        json!({"type": "receipt", "body": {"tool": "t"}}),
    );

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("/api/v1/entries"),
        "debug logs include request traces: {log}"
    );
    for secret in &secrets {
        // The part after the public prefix is what must stay secret.
        let tail = &secret[secret.len().saturating_sub(16)..];
        assert!(!log.contains(tail), "a secret reached the log: …{tail}");
    }
}
