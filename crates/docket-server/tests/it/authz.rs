//! The route-level authorization matrix: every API route against every kind
//! of caller, each expectation written down here from the access rules
//! rather than read from `docket_server::authz`, so a wrong entry in the
//! server's table shows up as a mismatch. Also: nothing but `/healthz`
//! answers without credentials, unknown paths included.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Server;

/// Who makes a request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Who {
    /// No `Authorization` header at all.
    Anonymous,
    /// A bearer token the server never issued.
    Garbage,
    /// The first-start token, retired once the first admin exists.
    RetiredBootstrap,
    Admin,
    Approver,
    Reviewer,
    Auditor,
    Developer,
    /// An agent's API key.
    AgentKey,
    /// An agent's session key, started by its owner for one task.
    AgentSession,
}

use Who::*;

/// Every caller, in the order the matrix runs them. The agent session comes
/// last so that ending it (`POST /api/v1/sessions/end`, the last row) is the
/// last request it makes.
const CALLERS: [Who; 10] = [
    Anonymous,
    Garbage,
    RetiredBootstrap,
    Admin,
    Approver,
    Reviewer,
    Auditor,
    Developer,
    AgentKey,
    AgentSession,
];

const NOBODY: &[Who] = &[];
const AGENTS: &[Who] = &[AgentKey, AgentSession];
const ADMIN: &[Who] = &[Admin];
const HUMANS: &[Who] = &[Admin, Approver, Reviewer, Auditor, Developer];
const READERS: &[Who] = &[
    Admin,
    Approver,
    Reviewer,
    Auditor,
    Developer,
    AgentKey,
    AgentSession,
];
/// Humans who change things: every role but the auditor.
const WRITERS: &[Who] = &[Admin, Approver, Reviewer, Developer];

/// (method, path as in the route table, the callers the route admits).
/// Everyone else gets 401 (no or bad credentials) or a 403 from the
/// authorization layer.
const EXPECTED: &[(&str, &str, &[Who])] = &[
    // Only the bootstrap token, and only before the first user exists: here
    // it is retired, so nobody.
    ("POST", "/api/v1/bootstrap", NOBODY),
    // Takes HTTP Basic only; bearer tokens of any kind are refused (see
    // `login_takes_a_password_and_basic_credentials_open_nothing_else`).
    ("POST", "/api/v1/login", NOBODY),
    ("GET", "/api/v1/me", READERS),
    ("GET", "/api/v1/openapi.json", READERS),
    ("GET", "/metrics", &[Admin, Auditor]),
    // The log.
    (
        "POST",
        "/api/v1/entries",
        &[Admin, Reviewer, Developer, AgentKey, AgentSession],
    ),
    ("GET", "/api/v1/entries", READERS),
    ("GET", "/api/v1/entries/{seq}", READERS),
    ("GET", "/api/v1/receipts/{seq}", READERS),
    (
        "GET",
        "/api/v1/evidence/export",
        &[Admin, Auditor, Reviewer],
    ),
    ("GET", "/api/v1/log", READERS),
    ("GET", "/api/v1/checkpoint", READERS),
    ("GET", "/api/v1/checkpoints", READERS),
    ("GET", "/api/v1/proofs/inclusion", READERS),
    ("GET", "/api/v1/proofs/consistency", READERS),
    ("GET", "/api/v1/proofs/range", READERS),
    // Users.
    ("GET", "/api/v1/users", HUMANS),
    ("POST", "/api/v1/users", ADMIN),
    ("GET", "/api/v1/users/{id}", HUMANS),
    ("PATCH", "/api/v1/users/{id}", ADMIN),
    ("PUT", "/api/v1/users/{id}/kyc", ADMIN),
    // Everyone manages their own login; the handler decides whose.
    ("POST", "/api/v1/users/{id}/password", HUMANS),
    ("POST", "/api/v1/users/{id}/tokens", HUMANS),
    // Projects.
    ("GET", "/api/v1/projects", HUMANS),
    ("POST", "/api/v1/projects", ADMIN),
    ("GET", "/api/v1/projects/{id}", HUMANS),
    ("PUT", "/api/v1/projects/{id}", ADMIN),
    // Agents and change requests.
    ("GET", "/api/v1/agents", HUMANS),
    ("POST", "/api/v1/agents", &[Admin, Developer]),
    ("GET", "/api/v1/agents/{id}", HUMANS),
    ("POST", "/api/v1/agents/{id}/retire", &[Admin, Developer]),
    (
        "POST",
        "/api/v1/agents/{id}/suspend",
        &[Admin, Approver, Developer],
    ),
    ("POST", "/api/v1/agents/{id}/resume", &[Admin, Approver]),
    ("POST", "/api/v1/agents/{id}/credentials", WRITERS),
    ("POST", "/api/v1/agents/{id}/sessions", WRITERS),
    ("GET", "/api/v1/changes", HUMANS),
    ("GET", "/api/v1/changes/{seq}", HUMANS),
    ("POST", "/api/v1/changes/{seq}/approve", &[Admin, Approver]),
    ("POST", "/api/v1/changes/{seq}/reject", &[Admin, Approver]),
    // Credentials.
    ("GET", "/api/v1/credentials", HUMANS),
    ("POST", "/api/v1/credentials/{id}/rotate", HUMANS),
    ("POST", "/api/v1/credentials/{id}/revoke", HUMANS),
    // Access reviews.
    // Reviews list every agent and human: not for developers.
    (
        "GET",
        "/api/v1/access-reviews",
        &[Admin, Approver, Reviewer, Auditor],
    ),
    ("POST", "/api/v1/access-reviews", ADMIN),
    (
        "GET",
        "/api/v1/access-reviews/{seq}",
        &[Admin, Approver, Reviewer, Auditor],
    ),
    (
        "POST",
        "/api/v1/access-reviews/{seq}/decisions",
        &[Admin, Reviewer],
    ),
    ("POST", "/api/v1/access-reviews/{seq}/complete", ADMIN),
    // Policy and change management.
    ("GET", "/api/v1/policy", HUMANS),
    ("GET", "/api/v1/policy/schema", HUMANS),
    ("POST", "/api/v1/policy/versions", &[Admin, Developer]),
    ("GET", "/api/v1/policy/versions/{version}", HUMANS),
    ("POST", "/api/v1/policy/rollback", &[Admin, Developer]),
    ("POST", "/api/v1/agents/{id}/changes", &[Admin, Developer]),
    ("POST", "/api/v1/projects/{id}/rules", ADMIN),
    // Containment.
    ("GET", "/api/v1/kill-switches", HUMANS),
    (
        "POST",
        "/api/v1/kill-switches/engage",
        &[Admin, Approver, Developer],
    ),
    ("POST", "/api/v1/kill-switches/release", &[Admin, Approver]),
    ("GET", "/api/v1/limits", HUMANS),
    ("PUT", "/api/v1/limits", ADMIN),
    // Held actions: humans see all, agents their own; approvers decide.
    ("GET", "/api/v1/approvals", READERS),
    ("GET", "/api/v1/approvals/{id}", READERS),
    ("POST", "/api/v1/approvals/{id}/decide", &[Admin, Approver]),
    // Agents act: tools Docket cannot proxy, and the gateway.
    ("POST", "/api/v1/authorize", AGENTS),
    ("POST", "/api/v1/record", AGENTS),
    ("POST", "/v1/chat/completions", AGENTS),
    ("POST", "/v1/responses", AGENTS),
    ("POST", "/v1/embeddings", AGENTS),
    ("GET", "/v1/models", AGENTS),
    ("POST", "/v1/messages", AGENTS),
    // Agents' own sessions. Last: the session caller ends its session here.
    ("POST", "/api/v1/sessions", AGENTS),
    ("POST", "/api/v1/sessions/end", AGENTS),
];

/// The objects the matrix points path parameters at, and every caller's
/// token. Mutating routes aim at throwaway objects (`spare` user,
/// `spare-bot` agent and its key, a pending change), so the callers' own
/// credentials keep working to the end.
struct Fixture {
    s: Server,
    approver: String,
    reviewer: String,
    auditor: String,
    developer: String,
    agent_key: String,
    agent_session: String,
    /// An entry the agent wrote in the project: every reader may see it.
    entry: u64,
    spare_credential: String,
    pending_change: u64,
    review: u64,
}

const PROJECT: &str = "authz";
const SPARE_USER: &str = "spare";
const SPARE_AGENT: &str = "spare-bot";

async fn send(
    s: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let body = (method != Method::GET).then_some(&body);
    s.call(method, path, Some(token), body).await
}

async fn login(s: &Server, id: &str, password: &str) -> reqwest::Response {
    s.http
        .post(s.url("/api/v1/login"))
        .basic_auth(id, Some(password))
        .send()
        .await
        .unwrap()
}

/// Creates a user with exactly `role` and logs them in with their password.
async fn human(s: &Server, id: &str, role: &str) -> String {
    let password = format!("{id}-long-password");
    let (st, v) = s
        .post(
            "/api/v1/users",
            &json!({"id": id, "name": id.to_uppercase(), "roles": [role], "password": password}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let r = login(s, id, &password).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The developer asks for an agent in the project; returns the request's seq.
async fn request_agent(s: &Server, developer: &str, id: &str) -> u64 {
    let (st, v) = send(
        s,
        developer,
        Method::POST,
        "/api/v1/agents",
        json!({"id": id, "name": id, "project": PROJECT, "purpose": "authorization matrix",
               "scope": {"tools": ["search"]}}),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    v["request"].as_u64().unwrap()
}

/// Registers an agent owned by the developer (four eyes: the approver
/// approves) and issues it an API key.
async fn registered_agent(s: &Server, developer: &str, approver: &str, id: &str) -> String {
    let request = request_agent(s, developer, id).await;
    let (st, v) = send(
        s,
        approver,
        Method::POST,
        &format!("/api/v1/changes/{request}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = send(
        s,
        developer,
        Method::POST,
        &format!("/api/v1/agents/{id}/credentials"),
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

async fn fixture() -> Fixture {
    let s = Server::start().await;
    let approver = human(&s, "appr", "approver").await;
    let reviewer = human(&s, "rev", "reviewer").await;
    let auditor = human(&s, "aud", "auditor").await;
    let developer = human(&s, "dev", "developer").await;
    let (st, v) = s
        .post(
            "/api/v1/users",
            &json!({"id": SPARE_USER, "name": "Spare", "roles": ["developer"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/projects",
            &json!({"id": PROJECT, "name": "Authz", "members": ["dev", SPARE_USER],
                    "rules": [{"agents": ["*"], "tools": ["search"]}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    let agent_key = registered_agent(&s, &developer, &approver, "matrix-bot").await;
    let spare_key = registered_agent(&s, &developer, &approver, SPARE_AGENT).await;
    let spare_credential = spare_key.split('_').nth(1).unwrap().to_owned();
    let pending_change = request_agent(&s, &developer, "pending-bot").await;

    let (st, v) = send(
        &s,
        &developer,
        Method::POST,
        "/api/v1/agents/matrix-bot/sessions",
        json!({"task": "authorization matrix", "ttl_secs": 600}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let agent_session = v["token"].as_str().unwrap().to_owned();

    let (st, v) = send(
        &s,
        &agent_key,
        Method::POST,
        "/api/v1/entries",
        json!({"type": "receipt", "body": {"tool": "search"}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let entry = v["entries"][0]["seq"].as_u64().unwrap();

    let (st, v) = send(
        &s,
        &s.token,
        Method::POST,
        "/api/v1/access-reviews",
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let review = v["seq"].as_u64().unwrap();

    Fixture {
        s,
        approver,
        reviewer,
        auditor,
        developer,
        agent_key,
        agent_session,
        entry,
        spare_credential,
        pending_change,
        review,
    }
}

impl Fixture {
    fn token(&self, who: Who) -> Option<&str> {
        Some(match who {
            Anonymous => return None,
            Garbage => "not-a-token-docket-issued",
            RetiredBootstrap => &self.s.bootstrap_token,
            Admin => &self.s.token,
            Approver => &self.approver,
            Reviewer => &self.reviewer,
            Auditor => &self.auditor,
            Developer => &self.developer,
            AgentKey => &self.agent_key,
            AgentSession => &self.agent_session,
        })
    }

    /// The route's path with its parameters pointed at fixture objects.
    /// Listing entries names the project: developers must, and every other
    /// reader may (the form without it is checked on its own).
    fn concrete(&self, method: &str, path: &str) -> String {
        if method == "GET" && path == "/api/v1/entries" {
            return format!("{path}?project={PROJECT}");
        }
        let Some((prefix, _)) = path.split_once('{') else {
            return path.to_owned();
        };
        let value = match prefix {
            "/api/v1/users/" => SPARE_USER.to_owned(),
            "/api/v1/projects/" => PROJECT.to_owned(),
            "/api/v1/agents/" => SPARE_AGENT.to_owned(),
            "/api/v1/credentials/" => self.spare_credential.clone(),
            "/api/v1/entries/" | "/api/v1/receipts/" => self.entry.to_string(),
            "/api/v1/changes/" => self.pending_change.to_string(),
            "/api/v1/access-reviews/" => self.review.to_string(),
            "/api/v1/policy/versions/" | "/api/v1/approvals/" => "1".to_owned(),
            other => panic!("no fixture object for the parameter of {other}…: add one"),
        };
        path.replace("{id}", &value)
            .replace("{seq}", &value)
            .replace("{version}", &value)
    }
}

/// What the server did with a request, as far as authorization goes.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// 401: no, unknown or dead credentials.
    Unauthenticated,
    /// 403 from the authorization layer: the caller lacks the permission.
    Refused,
    /// Past the authorization layer (the handler may still say no).
    Admitted,
}

fn outcome(status: StatusCode, body: &Value) -> Outcome {
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    if status == StatusCode::UNAUTHORIZED && code == "unauthorized" {
        Outcome::Unauthenticated
    } else if status == StatusCode::FORBIDDEN
        && code == "forbidden"
        && message.contains("may not do this")
    {
        Outcome::Refused
    } else {
        Outcome::Admitted
    }
}

fn expected(who: Who, allowed: &[Who]) -> Outcome {
    match who {
        Anonymous | Garbage | RetiredBootstrap => Outcome::Unauthenticated,
        _ if allowed.contains(&who) => Outcome::Admitted,
        _ => Outcome::Refused,
    }
}

#[test]
fn the_expected_table_covers_exactly_the_servers_routes() {
    let mine: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(mine.len(), EXPECTED.len(), "a route is listed twice");
    let served: BTreeSet<(String, String)> = docket_server::routes::table()
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(
        served.difference(&mine).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes without a row in this test's matrix"
    );
    assert_eq!(
        mine.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "rows for routes the server does not have"
    );
}

/// The routes where anyone manages their own login: password, personal
/// tokens (the handler and registry refuse anyone else's).
const OWN_LOGIN: &[&str] = &[
    "/api/v1/users/{id}/password",
    "/api/v1/users/{id}/tokens",
    "/api/v1/credentials/{id}/rotate",
    "/api/v1/credentials/{id}/revoke",
];

#[test]
fn the_auditor_reads_everything_and_changes_nothing_but_their_own_login() {
    // The gateway's routes are agents' actions, not reads of the record.
    for (method, path, allowed) in EXPECTED.iter().filter(|(_, p, _)| !p.starts_with("/v1/")) {
        assert_eq!(
            allowed.contains(&Auditor),
            *method == "GET" || OWN_LOGIN.contains(path),
            "{method} {path}: the auditor reads every GET route and changes only their own login"
        );
    }
}

#[tokio::test]
async fn every_route_admits_exactly_the_callers_the_rules_name() {
    let fx = fixture().await;
    let mut wrong = Vec::new();
    let mut calls = 0;
    for (method, path, allowed) in EXPECTED {
        let url = fx.concrete(method, path);
        for who in CALLERS {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let body = (m != Method::GET).then(|| json!({}));
            let (status, v) = fx.s.call(m, &url, fx.token(who), body.as_ref()).await;
            calls += 1;
            let want = expected(who, allowed);
            let got = outcome(status, &v);
            if got != want || status.is_server_error() {
                wrong.push(format!(
                    "{method} {url} as {who:?}: expected {want:?}, got {status} {v}"
                ));
            }
        }
    }
    assert_eq!(calls, EXPECTED.len() * CALLERS.len());
    assert!(
        wrong.is_empty(),
        "{} of {calls} cells disagree with the rules:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    fx.s.stop().await;
}

#[tokio::test]
async fn developers_list_entries_only_by_project_and_agents_only_their_own() {
    let fx = fixture().await;
    // Without a project filter a developer passes the route check and is
    // then refused by the read scope (not by the authorization layer).
    let (st, v) = send(
        &fx.s,
        &fx.developer,
        Method::GET,
        "/api/v1/entries",
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(outcome(st, &v), Outcome::Admitted, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(PROJECT),
        "{v}"
    );
    for who in [Admin, Approver, Reviewer, Auditor, AgentKey, AgentSession] {
        let (st, v) = send(
            &fx.s,
            fx.token(who).unwrap(),
            Method::GET,
            "/api/v1/entries",
            json!({}),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{who:?}: {v}");
    }
    // An agent reads its own entries and may not ask for another agent's.
    let (st, v) = send(
        &fx.s,
        &fx.agent_key,
        Method::GET,
        "/api/v1/entries?agent=spare-bot",
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(outcome(st, &v), Outcome::Admitted, "{v}");
    fx.s.stop().await;
}

#[tokio::test]
async fn nothing_but_healthz_answers_without_credentials() {
    let fx = fixture().await;
    for who in CALLERS {
        let (st, _) =
            fx.s.call(Method::GET, "/healthz", fx.token(who), None)
                .await;
        assert_eq!(st, StatusCode::OK, "/healthz as {who:?}");
    }
    // Unknown paths and methods give nothing away without credentials…
    let unknown = [
        (Method::GET, "/api/v1/nope"),
        (Method::POST, "/api/v1/nope"),
        (Method::GET, "/nope"),
        (Method::GET, "/"),
        (Method::DELETE, "/api/v1/users"),
        (Method::GET, "/api/v1/sessions"),
    ];
    for (method, path) in &unknown {
        for who in [Anonymous, Garbage, RetiredBootstrap] {
            let (st, v) = fx.s.call(method.clone(), path, fx.token(who), None).await;
            assert_eq!(
                outcome(st, &v),
                Outcome::Unauthenticated,
                "{method} {path} as {who:?}: {st} {v}"
            );
        }
    }
    // …and with them are plainly unknown.
    for (method, path) in &unknown {
        let (st, v) =
            fx.s.call(method.clone(), path, Some(&fx.s.token), None)
                .await;
        let want = if path.contains("nope") || *path == "/" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::METHOD_NOT_ALLOWED
        };
        assert_eq!(st, want, "{method} {path}: {v}");
    }
    fx.s.stop().await;
}

#[tokio::test]
async fn login_takes_a_password_and_basic_credentials_open_nothing_else() {
    let fx = fixture().await;
    let r = login(&fx.s, "aud", "aud-long-password").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = login(&fx.s, "aud", "a-wrong-password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A correct password is good for logging in and for nothing else.
    for (method, path, _) in EXPECTED.iter().filter(|(_, p, _)| *p != "/api/v1/login") {
        let url = fx.concrete(method, path);
        let r =
            fx.s.http
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    fx.s.url(&url),
                )
                .basic_auth("aud", Some("aud-long-password"))
                .send()
                .await
                .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {url} with Basic credentials"
        );
    }
    fx.s.stop().await;
}
