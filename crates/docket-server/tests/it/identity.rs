//! Identity end to end over a real socket: the first admin, users, a
//! project, an agent requested by one human and approved by another, its
//! keys and sessions, rotation, revocation, retirement, access reviews and
//! signed requests — each step a ledger entry, attributed.

use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, assert_message_contains, config};

pub(crate) async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.identity.expiry_sweep_ms = 50;
    Server::start_with(c, dir).await
}

impl Server {
    pub(crate) async fn as_(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let body = (method != Method::GET).then_some(&body);
        self.call(method, path, Some(token), body).await
    }

    /// Creates a user with `roles` and a password, and logs them in.
    pub(crate) async fn user(&self, id: &str, roles: &[&str]) -> String {
        let (st, v) = self
            .post(
                "/api/v1/users",
                &json!({"id": id, "name": id.to_uppercase(), "roles": roles, "password": format!("{id}-long-password")}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        self.login(id, &format!("{id}-long-password"))
            .await
            .unwrap()
    }

    async fn login(&self, id: &str, password: &str) -> Result<String, StatusCode> {
        let r = self
            .http
            .post(self.url("/api/v1/login"))
            .basic_auth(id, Some(password))
            .send()
            .await
            .unwrap();
        if r.status() != StatusCode::CREATED {
            return Err(r.status());
        }
        let v: Value = r.json().await.unwrap();
        Ok(v["token"].as_str().unwrap().to_owned())
    }

    pub(crate) async fn entry(&self, seq: u64) -> Value {
        let (st, v) = self.get(&format!("/api/v1/entries/{seq}")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["entry"].clone()
    }
}

fn seq_of(v: &Value, kind: &str) -> u64 {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} entry in {v}"))["seq"]
        .as_u64()
        .unwrap()
}

/// Sets up admin, a developer and an approver in project `support`, and a
/// registered agent `support-bot` owned by the developer. Returns
/// (developer token, approver token, agent API key, agent private key).
pub(crate) async fn registered_agent(s: &Server) -> (String, String, String, String) {
    let dev = s.user("dev", &["developer"]).await;
    let appr = s.user("appr", &["approver"]).await;
    let (st, v) = s
        .post(
            "/api/v1/projects",
            &json!({"id": "support", "name": "Support", "members": ["dev", "appr"],
                    "rules": [{"agents": ["*"], "tools": ["search", "email"], "models": ["gpt-4o"],
                               "data_classes": ["customer_data"], "environments": ["production"]}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s
        .as_(&dev, Method::POST, "/api/v1/agents", json!({
            "id": "support-bot", "name": "Support bot", "project": "support",
            "purpose": "answers tickets",
            "scope": {"tools": ["search"], "models": ["gpt-4o"], "data_classes": ["customer_data"], "environments": ["production"]}
        }))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let request = v["request"].as_u64().unwrap();
    let private_key = v["private_key"].as_str().unwrap().to_owned();
    let (st, v) = s
        .as_(
            &appr,
            Method::POST,
            &format!("/api/v1/changes/{request}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/support-bot/credentials",
            json!({"label": "prod"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    (
        dev,
        appr,
        v["token"].as_str().unwrap().to_owned(),
        private_key,
    )
}

#[tokio::test]
async fn the_whole_lifecycle_is_in_the_ledger_and_verifies() {
    let s = start().await;

    // The bootstrap token made the first admin and is now retired.
    let (st, v) = s
        .call(
            Method::POST,
            "/api/v1/bootstrap",
            Some(&s.bootstrap_token),
            Some(&json!({"id": "x", "name": "X"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_message_contains(&v, "retired");

    // A lead who may also approve: four eyes must still stop them approving their own request.
    let dev = s.user("dev", &["developer", "approver"]).await;
    let appr = s.user("appr", &["approver"]).await;
    assert_eq!(
        s.login("dev", "wrong-password-123").await,
        Err(StatusCode::UNAUTHORIZED)
    );

    // KYC: recorded with who, how and when; nobody verifies themselves.
    let (st, _) = s
        .as_(
            &dev,
            Method::PUT,
            "/api/v1/users/dev/kyc",
            json!({"status": "verified", "method": "passport"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s
        .as_(
            &s.token,
            Method::PUT,
            "/api/v1/users/dev/kyc",
            json!({"status": "verified", "method": "passport check"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["kyc"]["verified_by"], "admin");
    assert_eq!(v["user"]["kyc"]["method"], "passport check");

    let (st, v) = s
        .post(
            "/api/v1/projects",
            &json!({"id": "support", "name": "Support", "members": ["dev", "appr"],
                    "rules": [{"agents": ["*"], "tools": ["search", "email"], "models": ["gpt-4o"],
                               "data_classes": ["customer_data"], "environments": ["production"]}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // Scope beyond the project's rules is refused, naming the excess.
    let (st, v) = s
        .as_(&dev, Method::POST, "/api/v1/agents", json!({
            "id": "support-bot", "name": "Support bot", "project": "support", "purpose": "answers tickets",
            "scope": {"tools": ["search", "shell"]}
        }))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_message_contains(&v, "shell");

    // The agent brings its own key; its DID is that key's did:key.
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let did = docket_core::identity::Did::from_key(&key.verifying_key());
    let (st, v) = s
        .as_(&dev, Method::POST, "/api/v1/agents", json!({
            "id": "support-bot", "name": "Support bot", "project": "support", "purpose": "answers tickets",
            "public_key": base64::prelude::BASE64_STANDARD.encode(key.verifying_key().as_bytes()),
            "scope": {"tools": ["search"], "models": ["gpt-4o"], "data_classes": ["customer_data"]}
        }))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert!(v["private_key"].is_null());
    let request = v["request"].as_u64().unwrap();
    let (st, _) = s.get("/api/v1/agents/support-bot").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "not registered before approval");

    // Four eyes: the requester cannot approve; another human can.
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            &format!("/api/v1/changes/{request}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "four_eyes", "{v}");
    assert_message_contains(&v, "four-eyes");
    let (st, v) = s
        .as_(
            &appr,
            Method::POST,
            &format!("/api/v1/changes/{request}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let registered = seq_of(&v, "agent.registered");
    let e = s.entry(registered).await;
    assert_eq!(e["body"]["record"]["did"], did.as_str());
    assert_eq!(e["body"]["actor"]["user"], "appr");
    assert_eq!(e["body"]["request"], request);

    // An API key, shown once, stored as a digest.
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/support-bot/credentials",
            json!({"label": "prod"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let api_key = v["token"].as_str().unwrap().to_owned();
    assert!(api_key.starts_with(v["prefix"].as_str().unwrap()));
    let issued = s.entry(seq_of(&v, "credential.issued")).await;
    assert!(
        !issued.to_string().contains(&api_key),
        "the token never enters the ledger"
    );

    let (st, me) = s.as_(&api_key, Method::GET, "/api/v1/me", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["actor"]["did"], did.as_str());
    assert_eq!(me["effective_scope"]["tools"], json!(["search"]));

    // A session for one task, bound to the human who started it.
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/support-bot/sessions",
            json!({"task": "ticket-42", "ttl_secs": 600}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let session = v["token"].as_str().unwrap().to_owned();
    assert_eq!(v["human"], "dev");
    let (st, v) = s
        .as_(&session, Method::POST, "/api/v1/entries", json!({"type": "receipt", "body": {"tool": "search", "data_classes": ["customer_data"]}}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let acted = s.entry(v["entries"][0]["seq"].as_u64().unwrap()).await;
    assert_eq!(acted["body"]["agent"], "support-bot");
    assert_eq!(acted["body"]["project"], "support");
    assert_eq!(acted["body"]["human"], "dev");
    assert_eq!(acted["body"]["actor"]["human_assurance"], "session");
    assert_eq!(acted["body"]["actor"]["task"], "ticket-42");
    assert_eq!(acted["body"]["actor"]["did"], did.as_str());

    // A session cannot be stretched to another human.
    let (st, _) = s
        .as_(
            &session,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "receipt", "body": {"human": "appr"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // With a bare API key the human is only the agent's word, and says so.
    let (st, v) = s
        .as_(
            &api_key,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "receipt", "body": {"human": "appr"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let asserted = s.entry(v["entries"][0]["seq"].as_u64().unwrap()).await;
    assert_eq!(asserted["body"]["actor"]["human_assurance"], "asserted");
    // An agent cannot claim to be another agent.
    let (st, _) = s
        .as_(
            &api_key,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "receipt", "body": {"agent": "other-bot"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Nor write identity entries by hand.
    let (st, v) = s
        .as_(
            &s.token,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "agent.registered", "body": {}}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "reserved_type");

    // The task ends: the session key stops working at once.
    let (st, _) = s
        .as_(&session, Method::POST, "/api/v1/sessions/end", json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.as_(&session, Method::GET, "/api/v1/me", json!({})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_message_contains(&v, "revoked");

    // Rotation: both keys work during the grace period, then only the new.
    let cred = api_key.split('_').nth(1).unwrap().to_owned();
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            &format!("/api/v1/credentials/{cred}/rotate"),
            json!({"grace_secs": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let new_key = v["token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.as_(&api_key, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.as_(&new_key, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        s.as_(&api_key, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.as_(&new_key, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::OK
    );
    // …and the end of the grace period is itself an entry.
    let mut revoked = Value::Null;
    for _ in 0..100 {
        let (_, page) = s
            .get("/api/v1/entries?type=credential.revoked&agent=support-bot")
            .await;
        if let Some(e) = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["entry"]["body"]["credential"] == cred.as_str())
        {
            revoked = e["entry"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        revoked["body"]["reason"], "rotation grace period ended",
        "{revoked}"
    );
    assert_eq!(revoked["body"]["actor"]["kind"], "system");

    // Revocation takes effect on the next request.
    let new_cred = new_key.split('_').nth(1).unwrap().to_owned();
    let (st, _) = s
        .as_(
            &dev,
            Method::POST,
            &format!("/api/v1/credentials/{new_cred}/revoke"),
            json!({"reason": "laptop lost"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        s.as_(&new_key, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Retirement is a change another human approves; then nothing works.
    let (st, _) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/support-bot/credentials",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/support-bot/retire",
            json!({"reason": "replaced"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let retire = v["request"].as_u64().unwrap();
    let (st, v) = s
        .as_(
            &appr,
            Method::POST,
            &format!("/api/v1/changes/{retire}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "credential.revoked"),
        "{v}"
    );
    let (_, agent) = s.get("/api/v1/agents/support-bot").await;
    assert_eq!(agent["status"], "retired");
    assert!(
        agent["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] != "live"),
        "{agent}"
    );
    let (st, _) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/support-bot/credentials",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);

    // Every step is in the ledger, in order, attributed.
    let (_, page) = s
        .get("/api/v1/entries?agent=support-bot&order=asc&limit=100")
        .await;
    let steps: Vec<(String, String)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let b = &e["entry"]["body"];
            let who = b["actor"]["user"]
                .as_str()
                .or(b["actor"]["agent"].as_str())
                .or(b["actor"]["kind"].as_str())
                .unwrap_or("?");
            (
                e["entry"]["type"].as_str().unwrap().to_owned(),
                who.to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("change.requested", "dev"),
        ("change.approved", "appr"),
        ("agent.registered", "appr"),
        ("credential.issued", "dev"),
        ("credential.issued", "dev"),
        ("receipt", "support-bot"),
        ("receipt", "support-bot"),
        ("credential.revoked", "support-bot"),
        ("credential.issued", "dev"),
        ("credential.revoked", "system"),
        ("credential.revoked", "dev"),
        ("credential.issued", "dev"),
        ("change.requested", "dev"),
        ("change.approved", "appr"),
        ("credential.revoked", "appr"),
        ("agent.retired", "appr"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(steps, expected);

    // A restart rebuilds the same registry from the ledger alone.
    let size = s.get("/api/v1/log").await.1["size"].as_u64().unwrap();
    let dir = s.stop().await;
    let c = config(dir.path());
    let running = docket_server::start(c).await.unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/api/v1/login"))
        .basic_auth("appr", Some("appr-long-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::CREATED);
    let token = login.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent: Value = http
        .get(format!("{base}/api/v1/agents/support-bot"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(agent["status"], "retired");
    assert_eq!(agent["did"], did.as_str());
    let dev_again = http
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(
        dev_again.status(),
        StatusCode::OK,
        "login tokens survive a restart"
    );
    running.stop().await.unwrap();

    // And the log verifies end to end.
    let c = config(dir.path());
    let opened = docket_server::init::open(&c).unwrap();
    let report = docket_store::verify::verify_log(
        &docket_store::verify::BackendSource(opened.backend.as_ref()),
        &opened.signer.verifier(),
        &Default::default(),
        &|_| {},
    )
    .unwrap();
    assert!(report.entries >= size, "{report:?}");
}

#[tokio::test]
async fn an_access_review_revokes_what_the_reviewer_marks() {
    let s = start().await;
    let (dev, appr, api_key, _) = registered_agent(&s).await;
    let rev = s.user("rev", &["reviewer"]).await;
    // A second agent, kept.
    let (_, v) = s
        .as_(&dev, Method::POST, "/api/v1/agents", json!({"id": "triage-bot", "name": "Triage", "project": "support", "purpose": "sorts tickets", "scope": {"tools": ["search"]}}))
        .await;
    let req = v["request"].as_u64().unwrap();
    s.as_(
        &s.token,
        Method::POST,
        &format!("/api/v1/changes/{req}/approve"),
        json!({}),
    )
    .await;
    let (st, kept_key) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/triage-bot/credentials",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let kept_key = kept_key["token"].as_str().unwrap().to_owned();
    // A session appr started for the agent revoked below: it dies with
    // appr's access, and is revoked once, not twice.
    let (st, v) = s
        .as_(
            &appr,
            Method::POST,
            "/api/v1/agents/support-bot/sessions",
            json!({"task": "triage-7", "ttl_secs": 600}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let appr_session = v["token"].as_str().unwrap().to_owned();
    // Last use shows in the review.
    assert_eq!(
        s.as_(&api_key, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::OK
    );

    let (st, review) = s
        .as_(&s.token, Method::POST, "/api/v1/access-reviews", json!({}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{review}");
    let seq = review["seq"].as_u64().unwrap();
    let items = review["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let bot = items.iter().find(|i| i["agent"] == "support-bot").unwrap();
    assert_eq!(bot["owner"], "dev");
    let key = bot["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "api_key")
        .unwrap();
    assert_eq!(key["age_days"], 0);
    assert!(key["last_used"].is_string(), "{bot}");
    // Every human is listed too, with roles, projects, KYC and tokens.
    let humans = review["humans"].as_array().unwrap();
    let who: Vec<&str> = humans.iter().map(|h| h["user"].as_str().unwrap()).collect();
    assert_eq!(who, ["admin", "appr", "dev", "rev"], "{review}");
    let appr_item = &humans[1];
    assert_eq!(appr_item["roles"], json!(["approver"]));
    assert_eq!(appr_item["projects"], json!(["support"]));
    assert_eq!(appr_item["kyc"], "unverified");
    assert_eq!(
        appr_item["tokens"].as_array().unwrap().len(),
        1,
        "{appr_item}"
    );
    assert!(
        appr_item["tokens"][0]["last_used"].is_string(),
        "{appr_item}"
    );
    // Developers do not read reviews: they list everyone.
    let (st, _) = s
        .as_(
            &dev,
            Method::GET,
            &format!("/api/v1/access-reviews/{seq}"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let (st, v) = s
        .as_(
            &rev,
            Method::POST,
            &format!("/api/v1/access-reviews/{seq}/decisions"),
            json!({"agent": "support-bot", "decision": "revoke", "note": "unused scope"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .as_(
            &s.token,
            Method::POST,
            &format!("/api/v1/access-reviews/{seq}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "every agent needs a decision first: {v}"
    );
    assert_message_contains(&v, "triage-bot");
    let decide = |token: String, body: Value| {
        let s = &s;
        async move {
            s.as_(
                &token,
                Method::POST,
                &format!("/api/v1/access-reviews/{seq}/decisions"),
                body,
            )
            .await
        }
    };
    let (st, v) = decide(
        rev.clone(),
        json!({"agent": "triage-bot", "decision": "keep"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // The humans need decisions too.
    let (st, v) = s
        .as_(
            &s.token,
            Method::POST,
            &format!("/api/v1/access-reviews/{seq}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_message_contains(&v, "user admin");
    // Nobody decides on their own access.
    let (st, v) = decide(rev.clone(), json!({"user": "rev", "decision": "keep"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "own_access", "{v}");
    let (st, v) = decide(rev.clone(), json!({"user": "nobody", "decision": "keep"})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = decide(
        rev.clone(),
        json!({"user": "dev", "agent": "triage-bot", "decision": "keep"}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    for user in ["admin", "dev"] {
        let (st, v) = decide(rev.clone(), json!({"user": user, "decision": "keep"})).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, v) = decide(
        rev.clone(),
        json!({"user": "appr", "decision": "revoke", "note": "left the team"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = decide(s.token.clone(), json!({"user": "rev", "decision": "keep"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .as_(
            &s.token,
            Method::POST,
            &format!("/api/v1/access-reviews/{seq}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["review"]["status"], "completed");
    let types: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "credential.revoked",
            "credential.revoked",
            "agent.suspended",
            "credential.revoked",
            "user.updated",
            "access_review",
        ]
    );
    // The revoked human's token and the session bound to them are dead,
    // and the account disabled.
    for token in [&appr, &appr_session] {
        let (st, v) = s.as_(token, Method::GET, "/api/v1/me", json!({})).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
        assert!(v.to_string().contains("revoked"), "{v}");
    }
    let (_, user) = s.get("/api/v1/users/appr").await;
    assert_eq!(user["disabled"], true, "{user}");

    assert_eq!(
        s.as_(&api_key, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.as_(&kept_key, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let (_, page) = s.get("/api/v1/entries?type=access_review&order=asc").await;
    let events: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"]["body"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "opened",
            "decided",
            "decided",
            "decided",
            "decided",
            "decided",
            "decided",
            "completed"
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn signed_requests_are_verified_and_recorded() {
    use docket_server::httpsig::sign_request;
    let s = start().await;
    let (dev, appr, api_key, private_key) = registered_agent(&s).await;
    let secret: [u8; 32] = base64::prelude::BASE64_STANDARD
        .decode(private_key)
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    let authority = s.base.trim_start_matches("http://").to_owned();
    let body = serde_json::to_vec(&json!({"type": "receipt", "body": {"tool": "search"}})).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let send = |body: Vec<u8>, signed_body: Vec<u8>| {
        let headers = sign_request(
            &Method::POST,
            "http",
            &authority,
            "/api/v1/entries",
            &signed_body,
            &key,
            "support-bot",
            now,
        );
        let mut req = s
            .http
            .post(s.url("/api/v1/entries"))
            .bearer_auth(&api_key)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let r = send(body.clone(), body.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    let e = s.entry(v["entries"][0]["seq"].as_u64().unwrap()).await;
    let sig = &e["body"]["actor"]["signature"];
    assert_eq!(sig["keyid"], "support-bot", "{e}");
    assert!(
        sig["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "content-digest"),
        "{e}"
    );
    // The recorded base lets an auditor re-verify it with the agent's DID.
    let did = docket_core::identity::Did::try_from(
        e["body"]["actor"]["did"].as_str().unwrap().to_owned(),
    )
    .unwrap();
    assert_eq!(did.public_key(), key.verifying_key());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sig["signature"].as_str().unwrap())
        .unwrap();
    did.public_key()
        .verify_strict(
            sig["base"].as_str().unwrap().as_bytes(),
            &ed25519_dalek::Signature::from_slice(&bytes).unwrap(),
        )
        .expect("the recorded signature verifies over the recorded base");

    // The same signed request sent again (a replay by whoever holds the
    // token): refused, and recorded.
    let headers = sign_request(
        &Method::POST,
        "http",
        &authority,
        "/api/v1/entries",
        &body,
        &key,
        "support-bot",
        now,
    );
    for expected in [StatusCode::CREATED, StatusCode::UNAUTHORIZED] {
        let mut req = s
            .http
            .post(s.url("/api/v1/entries"))
            .bearer_auth(&api_key)
            .header("content-type", "application/json")
            .body(body.clone());
        for (k, v) in headers.clone() {
            req = req.header(k, v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), expected);
        if expected == StatusCode::UNAUTHORIZED {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "signature_replayed", "{v}");
        }
    }
    let (_, page) = s.get("/api/v1/entries?type=signature.rejected").await;
    assert!(
        page["entries"][0]["entry"]["body"]["error"]
            .as_str()
            .unwrap()
            .starts_with("replayed"),
        "{page}"
    );

    // The body changed after signing: refused, and the refusal recorded.
    let tampered =
        serde_json::to_vec(&json!({"type": "receipt", "body": {"tool": "shell"}})).unwrap();
    let r = send(tampered, body.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (_, page) = s.get("/api/v1/entries?type=signature.rejected").await;
    let rejected = &page["entries"][0]["entry"]["body"];
    assert_eq!(rejected["agent"], "support-bot");
    assert!(
        rejected["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("digest"),
        "{rejected}"
    );
    // A human named in a header the signature does not cover is refused:
    // whoever holds the token could otherwise swap it.
    let headers = sign_request(
        &Method::POST,
        "http",
        &authority,
        "/api/v1/entries",
        &body,
        &key,
        "support-bot",
        now,
    );
    let mut req = s
        .http
        .post(s.url("/api/v1/entries"))
        .bearer_auth(&api_key)
        .header("content-type", "application/json")
        .header("docket-on-behalf-of", "dev")
        .body(body.clone());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("docket-on-behalf-of"));
    // Unsigned requests are still accepted, and carry no signature.
    let (st, v) = s
        .as_(
            &api_key,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "receipt", "body": {}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(
        s.entry(v["entries"][0]["seq"].as_u64().unwrap()).await["body"]["actor"]["signature"]
            .is_null()
    );

    // Its owner asks that the agent must sign (a change request, the scope
    // unchanged); once another human approves, unsigned requests are
    // refused and recorded, signed ones still pass.
    let (st, v) = s
        .as_(&dev, Method::POST, "/api/v1/agents/support-bot/changes", json!({
            "scope": {"tools": ["search"], "models": ["gpt-4o"], "data_classes": ["customer_data"], "environments": ["production"]},
            "require_signature": true,
            "description": "the bot signs every request", "rollback_plan": "approve require_signature=false",
        }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let change = v["change"].as_u64().unwrap();
    let (st, v) = s
        .as_(
            &appr,
            Method::POST,
            &format!("/api/v1/changes/{change}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, agent) = s.get("/api/v1/agents/support-bot").await;
    assert_eq!(agent["require_signature"], true, "{agent}");
    let (st, v) = s
        .as_(
            &api_key,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "receipt", "body": {}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "signature_required", "{v}");
    let (_, page) = s
        .get("/api/v1/entries?type=signature.rejected&order=desc")
        .await;
    assert!(
        page["entries"][0]["entry"]["body"]["error"]
            .as_str()
            .unwrap()
            .contains("must sign every request"),
        "{page}"
    );
    let r = send(body.clone(), body.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Asking again with the flag left out changes nothing: it is refused
    // as an empty change rather than silently turning signing off.
    let (st, v) = s
        .as_(&dev, Method::POST, "/api/v1/agents/support-bot/changes", json!({
            "scope": {"tools": ["search"], "models": ["gpt-4o"], "data_classes": ["customer_data"], "environments": ["production"]},
            "description": "no-op", "rollback_plan": "none",
        }))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    s.stop().await;
}

#[tokio::test]
async fn wrong_scope_is_refused_and_a_session_never_outlives_or_outgrows_its_key() {
    let s = start().await;
    let (dev, _, _, _) = registered_agent(&s).await;
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/support-bot/credentials",
            json!({"scope": {"tools": ["search"]}, "expires_in_secs": 600}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let narrow = v["token"].as_str().unwrap().to_owned();
    let narrow_id = v["credential"].as_str().unwrap().to_owned();

    // Acting outside the key's scope is refused, naming what.
    let (st, v) = s
        .as_(
            &narrow,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "receipt", "body": {"tool": "email"}}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "out_of_scope");
    assert_message_contains(&v, "email");
    let (st, v) = s
        .as_(
            &narrow,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "receipt", "body": {"tool": "search", "data_classes": ["pii"]}}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _) = s
        .as_(
            &narrow,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "receipt", "body": {"tool": "search"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // Asking for more than the key holds is refused, naming the excess.
    let (st, v) = s
        .as_(
            &narrow,
            Method::POST,
            "/api/v1/sessions",
            json!({"task": "t1", "scope": {"models": ["gpt-4o"]}}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_message_contains(&v, "gpt-4o");
    // Asking for nothing gets the key's scope and at most its lifetime.
    let (st, v) = s
        .as_(
            &narrow,
            Method::POST,
            "/api/v1/sessions",
            json!({"task": "t1", "ttl_secs": 3600, "on_behalf_of": "dev"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["human_assurance"], "asserted");
    let session = v["token"].as_str().unwrap().to_owned();
    let (_, me) = s.as_(&session, Method::GET, "/api/v1/me", json!({})).await;
    assert_eq!(me["effective_scope"]["tools"], json!(["search"]), "{me}");
    assert_eq!(me["effective_scope"]["models"], json!([]), "{me}");

    // Revoking the key ends the session with it, on the next request.
    let (st, _) = s
        .as_(
            &dev,
            Method::POST,
            &format!("/api/v1/credentials/{narrow_id}/revoke"),
            json!({"reason": "leaked"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.as_(&session, Method::GET, "/api/v1/me", json!({})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_message_contains(&v, "ended with the key");
    s.stop().await;
}

#[tokio::test]
async fn nobody_acts_in_someone_elses_name() {
    let s = start().await;
    let (dev, _, _, _) = registered_agent(&s).await;

    // Not even an admin gets a personal token for another user.
    let (st, v) = s
        .as_(
            &s.token,
            Method::POST,
            "/api/v1/users/dev/tokens",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    // An admin may reset a password, and the ledger says so (without the hash).
    let (st, _) = s
        .as_(
            &s.token,
            Method::POST,
            "/api/v1/users/dev/password",
            json!({"password": "a brand new password"}),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, page) = s.get("/api/v1/entries?type=user.updated").await;
    let e = &page["entries"][0]["entry"]["body"];
    assert_eq!(e["changed"], json!(["password"]), "{e}");
    assert_eq!(e["actor"]["user"], "admin");
    assert!(
        !page.to_string().contains("argon2"),
        "no hash in the ledger"
    );
    assert!(s.login("dev", "a brand new password").await.is_ok());

    // A refused creation leaves no password behind for a later one.
    let (st, _) = s
        .post("/api/v1/users", &json!({"id": "carol", "name": "", "roles": ["developer"], "password": "carols long password"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s
        .post(
            "/api/v1/users",
            &json!({"id": "carol", "name": "Carol", "roles": ["developer"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(
        s.login("carol", "carols long password").await,
        Err(StatusCode::UNAUTHORIZED)
    );

    // A developer writes only about their own projects' agents.
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "note", "body": {"project": "elsewhere"}}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "note", "body": {"agent": "ghost-bot", "project": "support"}}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/entries",
            json!({"type": "note", "body": {"agent": "support-bot", "project": "support"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // A session bound to a human stops when that human is disabled.
    let (_, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/support-bot/sessions",
            json!({"task": "t"}),
        )
        .await;
    let session = v["token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.as_(&session, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let (st, _) = s
        .as_(
            &s.token,
            Method::PATCH,
            "/api/v1/users/dev",
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // The token is genuine; its holder may do nothing now: 403, not 401.
    let (st, v) = s.as_(&session, Method::GET, "/api/v1/me", json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "user_disabled", "{v}");
    assert_message_contains(&v, "disabled");
    s.stop().await;
}

#[tokio::test]
async fn with_verified_approvers_required_kyc_gates_approval_and_ownership() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.identity.require_verified_approvers = true;
    let s = Server::start_with(c, dir).await;
    let dev = s.user("dev", &["developer"]).await;
    let appr = s.user("appr", &["approver"]).await;
    let (st, v) = s
        .post(
            "/api/v1/projects",
            &json!({"id": "support", "name": "Support", "members": ["dev", "appr"],
                    "rules": [{"agents": ["*"], "tools": ["search"]}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents",
            json!({
                "id": "support-bot", "name": "Support bot", "project": "support",
                "purpose": "answers tickets", "scope": {"tools": ["search"]}
            }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let approve = format!("/api/v1/changes/{}/approve", v["request"]);
    let kyc = |user: &'static str| {
        let s = &s;
        async move {
            let (st, v) = s
                .call(
                    Method::PUT,
                    &format!("/api/v1/users/{user}/kyc"),
                    Some(&s.token),
                    Some(&json!({"status": "verified", "method": "passport check"})),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
    };

    // The approver is not verified yet…
    let (st, v) = s.as_(&appr, Method::POST, &approve, json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "identity_unverified", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("approving a change") && message.contains("appr's is unverified"),
        "{v}"
    );
    // …then the owner is not.
    kyc("appr").await;
    let (st, v) = s.as_(&appr, Method::POST, &approve, json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_message_contains(&v, "owning an agent");
    // Both verified: the registration goes through.
    kyc("dev").await;
    let (st, v) = s.as_(&appr, Method::POST, &approve, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, agent) = s.get("/api/v1/agents/support-bot").await;
    assert_eq!(agent["status"], "active", "{agent}");
    s.stop().await;
}

/// The auditor changes nothing but their own login: their password and
/// their personal tokens. Developers see only their projects' people.
#[tokio::test]
async fn the_auditor_manages_only_their_own_login_and_developers_see_their_projects() {
    let s = start().await;
    let (dev, _, api_key, _) = registered_agent(&s).await;
    let aud = s.user("aud", &["auditor"]).await;
    let other = s.user("other", &["developer"]).await;

    // Password: their own, not anyone else's.
    let (st, v) = s
        .as_(
            &aud,
            Method::POST,
            "/api/v1/users/aud/password",
            json!({"password": "a-brand-new-passphrase"}),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    assert!(s.login("aud", "aud-long-password").await.is_err());
    let fresh = s.login("aud", "a-brand-new-passphrase").await.unwrap();
    let (st, _) = s
        .as_(
            &aud,
            Method::POST,
            "/api/v1/users/dev/password",
            json!({"password": "a-brand-new-passphrase"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Personal tokens: issue and revoke their own.
    let (st, v) = s
        .as_(
            &fresh,
            Method::POST,
            "/api/v1/users/aud/tokens",
            json!({"label": "cli"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let id = v["credential"].as_str().unwrap().to_owned();
    let (st, v) = s
        .as_(
            &fresh,
            Method::POST,
            &format!("/api/v1/credentials/{id}/revoke"),
            json!({"reason": "laptop lost"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        s.as_(&token, Method::GET, "/api/v1/me", json!({})).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Nobody else's credentials: not the agent's key, not a developer's token.
    let (_, creds) = s.get("/api/v1/credentials?agent=support-bot").await;
    let bot_key = creds["credentials"][0]["id"].as_str().unwrap().to_owned();
    let (_, creds) = s.get("/api/v1/credentials?user=dev").await;
    let dev_token = creds["credentials"][0]["id"].as_str().unwrap().to_owned();
    for id in [bot_key, dev_token] {
        for (action, body) in [("revoke", json!({"reason": "x"})), ("rotate", json!({}))] {
            let (st, v) = s
                .as_(
                    &fresh,
                    Method::POST,
                    &format!("/api/v1/credentials/{id}/{action}"),
                    body,
                )
                .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{action} {id}: {v}");
        }
    }
    assert_eq!(
        s.as_(&api_key, Method::GET, "/api/v1/me", json!({}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.as_(&dev, Method::GET, "/api/v1/me", json!({})).await.0,
        StatusCode::OK
    );

    // A developer sees themselves and their projects' members, nobody else.
    let (st, v) = s.as_(&dev, Method::GET, "/api/v1/users", json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let seen: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["appr", "dev"], "{v}");
    assert_eq!(
        s.as_(&dev, Method::GET, "/api/v1/users/aud", json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, v) = s.as_(&other, Method::GET, "/api/v1/users", json!({})).await;
    assert_eq!(v["users"].as_array().unwrap().len(), 1, "{v}");
    // The auditor sees everyone.
    let (_, v) = s.as_(&fresh, Method::GET, "/api/v1/users", json!({})).await;
    assert_eq!(v["users"].as_array().unwrap().len(), 5, "{v}");
    s.stop().await;
}

/// Edges a review of this layer found: weak keys are refused,
/// `require_signature` can be asked for at registration, an inactive
/// agent's key gets 403, developers see only their projects' kill switches
/// and limits, and a review cannot revoke the last admin.
#[tokio::test]
async fn edges_of_reviews_keys_and_visibility() {
    let s = start().await;
    let (dev, _, api_key, _) = registered_agent(&s).await;
    let rev = s.user("rev", &["reviewer", "developer"]).await;

    // A weak key (the identity point) is refused at registration.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents",
            json!({
                "id": "weak-bot", "name": "Weak", "project": "support", "purpose": "x",
                "public_key": hex::encode(weak),
            }),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_message_contains(&v, "weak key");
    // require_signature can be asked for at registration.
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents",
            json!({
                "id": "signing-bot", "name": "Signing", "project": "support", "purpose": "x",
                "require_signature": true,
            }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["agent"]["require_signature"], true, "{v}");

    // A suspended agent's genuine key: 403, not 401.
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            "/api/v1/agents/support-bot/suspend",
            json!({"reason": "odd traffic"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.as_(&api_key, Method::GET, "/api/v1/me", json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "agent_inactive", "{v}");

    // Kill switches and limits of another project are not a developer's to see.
    let (st, v) = s
        .post(
            "/api/v1/projects",
            &json!({"id": "billing", "name": "Billing", "members": ["rev"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/kill-switches/engage",
            &json!({"scope": "project", "project": "billing", "reason": "audit"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .call(Method::PUT, "/api/v1/limits", Some(&s.token),
              Some(&json!({"scope": "project", "project": "billing", "limits": {"requests_per_minute": 5}})))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for path in ["/api/v1/kill-switches", "/api/v1/limits"] {
        let (_, mine) = s.as_(&dev, Method::GET, path, json!({})).await;
        assert!(!mine.to_string().contains("billing"), "{path}: {mine}");
        let (_, theirs) = s.as_(&rev, Method::GET, path, json!({})).await;
        assert!(theirs.to_string().contains("billing"), "{path}: {theirs}");
    }

    // Reviews: revoking the only admin is refused at completion (the
    // reviewer's own access is the admin's call).
    let (_, review) = s.post("/api/v1/access-reviews", &json!({})).await;
    let seq = review["seq"].as_u64().unwrap();
    let path = format!("/api/v1/access-reviews/{seq}/decisions");
    let decide = |token: String, body: Value| {
        let (s, path) = (&s, &path);
        async move { s.as_(&token, Method::POST, path, body).await }
    };
    for item in review["items"].as_array().unwrap() {
        let (st, v) = decide(
            rev.clone(),
            json!({"agent": item["agent"], "decision": "keep"}),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    for h in review["humans"].as_array().unwrap() {
        let user = h["user"].as_str().unwrap();
        let (who, decision) = match user {
            "rev" => (&s.token, "keep"),
            "admin" => (&rev, "revoke"),
            _ => (&rev, "keep"),
        };
        let (st, v) = decide(who.clone(), json!({"user": user, "decision": decision})).await;
        assert_eq!(st, StatusCode::OK, "{user}: {v}");
    }
    let (st, v) = s
        .post(
            &format!("/api/v1/access-reviews/{seq}/complete"),
            &json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_message_contains(&v, "no active admin");
    s.stop().await;
}

/// A reviewer who owns an agent does not decide on it.
#[tokio::test]
async fn a_reviewer_does_not_decide_on_their_own_agent() {
    let s = start().await;
    let (dev, _, _, _) = registered_agent(&s).await;
    // dev becomes a reviewer too; support-bot is dev's.
    let (st, v) = s
        .call(
            Method::PATCH,
            "/api/v1/users/dev",
            Some(&s.token),
            Some(&json!({"roles": ["developer", "reviewer"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, review) = s.post("/api/v1/access-reviews", &json!({})).await;
    let seq = review["seq"].as_u64().unwrap();
    let path = format!("/api/v1/access-reviews/{seq}/decisions");
    let (st, v) = s
        .as_(
            &dev,
            Method::POST,
            &path,
            json!({"agent": "support-bot", "decision": "keep"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "own_access", "{v}");
    s.stop().await;
}
