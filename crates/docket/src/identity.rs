//! `docket bootstrap`, `login`, `users`, `projects`, `agents`,
//! `credentials` and `access-review`: the identity API from the command
//! line. Listings print a table, or the API's JSON with `--json`; tokens
//! and keys the server shows once are printed once, on stdout.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ServerArgs;
use crate::client::{Client, enc};

/// Reads a password from stdin (first line) when asked to. Only `login`
/// also reads `DOCKET_PASSWORD`: a new user must never silently get the
/// password of the admin creating them.
fn password(from_stdin: bool) -> anyhow::Result<Option<String>> {
    if from_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        let line = s.lines().next().unwrap_or_default().to_owned();
        return Ok(Some(line));
    }
    Ok(None)
}

pub(crate) fn print_json(v: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints `rows` (objects) with `columns`, or the JSON with `--json`.
pub(crate) fn listing(
    v: &Value,
    key: &str,
    columns: &[&str],
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        return print_json(v);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(columns);
    for row in v[key].as_array().map(Vec::as_slice).unwrap_or_default() {
        table.add_row(columns.iter().map(|c| {
            let path: Vec<&str> = c.split('.').collect();
            let mut cell = row;
            for p in path {
                cell = &cell[p];
            }
            text(cell)
        }));
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}

/// What a change wrote, one line per entry, then the token if any.
pub(crate) fn done(v: &Value, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        return print_json(v);
    }
    for e in v["entries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        eprintln!("recorded {} at seq {}", text(&e["type"]), text(&e["seq"]));
    }
    if let Some(token) = v["token"].as_str() {
        eprintln!("token (shown once, store it now):");
        println!("{token}");
    }
    if let Some(key) = v["private_key"].as_str() {
        eprintln!("agent private key, base64 Ed25519 seed (shown once, store it now):");
        println!("{key}");
    }
    if let Some(r) = v["request"].as_u64() {
        eprintln!(
            "change request {r} waits for another human's approval: docket agents approve {r}"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The first admin's user id.
    #[arg(long)]
    user: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    email: Option<String>,
    /// Read the admin's password from stdin (else none: log in with a token).
    #[arg(long)]
    password_stdin: bool,
    #[arg(long)]
    json: bool,
}

/// `docket bootstrap`: the first admin, with the token printed at first start.
pub fn bootstrap(a: BootstrapArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.server)?;
    let body = json!({"id": a.user, "name": a.name, "email": a.email, "password": password(a.password_stdin)?});
    let v: Value = client.send(Method::POST, "/api/v1/bootstrap", Some(&body))?;
    done(&v, a.json)
}

#[derive(clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long)]
    user: String,
    /// Read the password from stdin (else `DOCKET_PASSWORD`).
    #[arg(long)]
    password_stdin: bool,
    #[arg(long)]
    json: bool,
}

/// `docket login`: a personal token for a password.
pub fn login(a: LoginArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.server)?;
    let password = match password(a.password_stdin)? {
        Some(p) => p,
        None => std::env::var("DOCKET_PASSWORD")
            .ok()
            .context("give the password on stdin with --password-stdin, or in DOCKET_PASSWORD")?,
    };
    let v: Value = client.login(&a.user, &password)?;
    done(&v, a.json)
}

#[derive(clap::Subcommand)]
pub enum Users {
    /// Every user with roles, projects and KYC status.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// Create a user (admin).
    Create {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Comma-separated: admin, approver, reviewer, auditor, developer.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Read the password from stdin (else none).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change roles, name, email, or disable/enable a user (admin).
    Update {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, value_delimiter = ',')]
        roles: Option<Vec<String>>,
        #[arg(long)]
        disabled: Option<bool>,
        #[arg(long)]
        json: bool,
    },
    /// Record an identity-verification (KYC) decision (admin; not for oneself).
    Kyc {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        /// unverified, pending or verified.
        #[arg(long)]
        status: String,
        /// How the identity was checked (required for verified).
        #[arg(long)]
        method: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Set a password (one's own, or any user's as an admin; recorded).
    Password {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        /// Read the new password from stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Issue a personal API token for yourself.
    Token {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        expires_in_secs: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

pub fn users(c: Users) -> anyhow::Result<ExitCode> {
    match c {
        Users::List { server, json } => {
            let v: Value = Client::new(&server)?.get("/api/v1/users")?;
            listing(
                &v,
                "users",
                &["id", "name", "roles", "projects", "kyc.status", "disabled"],
                json,
            )
        }
        Users::Show { server, id } => {
            print_json(&Client::new(&server)?.get(&format!("/api/v1/users/{}", enc(&id)))?)
        }
        Users::Create {
            server,
            id,
            name,
            email,
            roles,
            password_stdin,
            json,
        } => {
            let body = json!({"id": id, "name": name, "email": email, "roles": roles, "password": password(password_stdin)?});
            done(
                &Client::new(&server)?.send(Method::POST, "/api/v1/users", Some(&body))?,
                json,
            )
        }
        Users::Update {
            server,
            id,
            name,
            email,
            roles,
            disabled,
            json,
        } => {
            let mut body = serde_json::Map::new();
            for (k, v) in [
                ("name", name.map(Value::from)),
                ("email", email.map(Value::from)),
                ("roles", roles.map(Value::from)),
                ("disabled", disabled.map(Value::from)),
            ] {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            let path = format!("/api/v1/users/{}", enc(&id));
            done(
                &Client::new(&server)?.send(Method::PATCH, &path, Some(&Value::Object(body)))?,
                json,
            )
        }
        Users::Kyc {
            server,
            id,
            status,
            method,
            json,
        } => {
            let path = format!("/api/v1/users/{}/kyc", enc(&id));
            done(
                &Client::new(&server)?.send(
                    Method::PUT,
                    &path,
                    Some(&json!({"status": status, "method": method})),
                )?,
                json,
            )
        }
        Users::Password {
            server,
            id,
            password_stdin,
        } => {
            let password = password(password_stdin)?.context("no password on stdin")?;
            let path = format!("/api/v1/users/{}/password", enc(&id));
            let _: Value = Client::new(&server)?.send(
                Method::POST,
                &path,
                Some(&json!({ "password": password })),
            )?;
            eprintln!("password set for {id}");
            Ok(ExitCode::SUCCESS)
        }
        Users::Token {
            server,
            id,
            label,
            expires_in_secs,
            json,
        } => {
            let path = format!("/api/v1/users/{}/tokens", enc(&id));
            done(
                &Client::new(&server)?.send(
                    Method::POST,
                    &path,
                    Some(&json!({"label": label, "expires_in_secs": expires_in_secs})),
                )?,
                json,
            )
        }
    }
}

#[derive(clap::Subcommand)]
pub enum Projects {
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// Create a project from a JSON file `{id, name, members, rules}` (admin).
    Create {
        #[command(flatten)]
        server: ServerArgs,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Replace a project's name, members and rules from a JSON file (admin).
    Update {
        #[command(flatten)]
        server: ServerArgs,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn read_json(path: &PathBuf) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

pub fn projects(c: Projects) -> anyhow::Result<ExitCode> {
    match c {
        Projects::List { server, json } => {
            let v: Value = Client::new(&server)?.get("/api/v1/projects")?;
            listing(&v, "projects", &["id", "name", "members"], json)
        }
        Projects::Show { server, id } => {
            print_json(&Client::new(&server)?.get(&format!("/api/v1/projects/{}", enc(&id)))?)
        }
        Projects::Create { server, file, json } => done(
            &Client::new(&server)?.send(
                Method::POST,
                "/api/v1/projects",
                Some(&read_json(&file)?),
            )?,
            json,
        ),
        Projects::Update { server, file, json } => {
            let body = read_json(&file)?;
            let id = body["id"]
                .as_str()
                .context("the project file needs an id")?
                .to_owned();
            done(
                &Client::new(&server)?.send(
                    Method::PUT,
                    &format!("/api/v1/projects/{}", enc(&id)),
                    Some(&body),
                )?,
                json,
            )
        }
    }
}

#[derive(clap::Subcommand)]
pub enum Agents {
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// Ask for an agent's registration; another human approves it.
    Request {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        purpose: String,
        /// Defaults to you.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, value_delimiter = ',')]
        tools: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        data_classes: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        environments: Vec<String>,
        /// The agent's Ed25519 public key (did:key, base64 or hex); Docket
        /// generates one and prints the private key once when absent.
        #[arg(long)]
        public_key: Option<String>,
        /// Refuse the agent's requests unless it signs them with its key
        /// (RFC 9421 HTTP Message Signatures).
        #[arg(long)]
        require_signature: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change requests (registrations and retirements).
    Changes {
        #[command(flatten)]
        server: ServerArgs,
        /// pending, approved or rejected.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approve a change request (never your own).
    Approve {
        #[command(flatten)]
        server: ServerArgs,
        request: u64,
        #[arg(long)]
        json: bool,
    },
    Reject {
        #[command(flatten)]
        server: ServerArgs,
        request: u64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop an agent at once.
    Suspend {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    Resume {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask for an agent's retirement; another human approves it.
    Retire {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn agents(c: Agents) -> anyhow::Result<ExitCode> {
    match c {
        Agents::List { server, json } => {
            let v: Value = Client::new(&server)?.get("/api/v1/agents")?;
            listing(
                &v,
                "agents",
                &["id", "project", "owner", "status", "did"],
                json,
            )
        }
        Agents::Show { server, id } => {
            print_json(&Client::new(&server)?.get(&format!("/api/v1/agents/{}", enc(&id)))?)
        }
        Agents::Request {
            server,
            id,
            name,
            project,
            purpose,
            owner,
            tools,
            models,
            data_classes,
            environments,
            public_key,
            require_signature,
            json,
        } => {
            let body = json!({
                "id": id, "name": name, "project": project, "purpose": purpose, "owner": owner,
                "scope": {"tools": tools, "models": models, "data_classes": data_classes, "environments": environments},
                "public_key": public_key,
                "require_signature": require_signature,
            });
            done(
                &Client::new(&server)?.send(Method::POST, "/api/v1/agents", Some(&body))?,
                json,
            )
        }
        Agents::Changes {
            server,
            status,
            json,
        } => {
            let path = match status {
                Some(s) => format!("/api/v1/changes?status={}", enc(&s)),
                None => "/api/v1/changes".to_owned(),
            };
            let v: Value = Client::new(&server)?.get(&path)?;
            listing(
                &v,
                "changes",
                &[
                    "seq",
                    "change",
                    "agent",
                    "project",
                    "requested_by",
                    "status",
                    "decided_by",
                ],
                json,
            )
        }
        Agents::Approve {
            server,
            request,
            json,
        } => done(
            &Client::new(&server)?.send(
                Method::POST,
                &format!("/api/v1/changes/{request}/approve"),
                Some(&json!({})),
            )?,
            json,
        ),
        Agents::Reject {
            server,
            request,
            reason,
            json,
        } => done(
            &Client::new(&server)?.send(
                Method::POST,
                &format!("/api/v1/changes/{request}/reject"),
                Some(&json!({"reason": reason})),
            )?,
            json,
        ),
        Agents::Suspend {
            server,
            id,
            reason,
            json,
        } => agent_action(&server, &id, "suspend", &reason, json),
        Agents::Resume {
            server,
            id,
            reason,
            json,
        } => agent_action(&server, &id, "resume", &reason, json),
        Agents::Retire {
            server,
            id,
            reason,
            json,
        } => agent_action(&server, &id, "retire", &reason, json),
    }
}

fn agent_action(
    server: &ServerArgs,
    id: &str,
    action: &str,
    reason: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/agents/{}/{action}", enc(id));
    done(
        &Client::new(server)?.send(Method::POST, &path, Some(&json!({"reason": reason})))?,
        json,
    )
}

#[derive(clap::Subcommand)]
pub enum Credentials {
    /// Credentials (never their secrets), optionally of one agent or user.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Issue an API key for an agent (its owner or an admin); shown once.
    Issue {
        #[command(flatten)]
        server: ServerArgs,
        agent: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        expires_in_secs: Option<u64>,
        /// Narrow the key to these tools (default: the agent's whole scope).
        #[arg(long, value_delimiter = ',')]
        tools: Option<Vec<String>>,
        #[arg(long)]
        json: bool,
    },
    /// Issue a session key binding an agent to you and one task.
    Session {
        #[command(flatten)]
        server: ServerArgs,
        agent: String,
        #[arg(long)]
        task: String,
        #[arg(long)]
        ttl_secs: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// A new key now; the old one works for the grace period, then is revoked.
    Rotate {
        #[command(flatten)]
        server: ServerArgs,
        credential: String,
        #[arg(long)]
        grace_secs: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke at once.
    Revoke {
        #[command(flatten)]
        server: ServerArgs,
        credential: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

/// Accepts a credential id or a prefix like `dka_<id>` or a whole token.
pub(crate) fn credential_id(s: &str) -> &str {
    s.split('_').nth(1).unwrap_or(s)
}

pub fn credentials(c: Credentials) -> anyhow::Result<ExitCode> {
    match c {
        Credentials::List {
            server,
            agent,
            user,
            json,
        } => {
            let mut q = Vec::new();
            if let Some(a) = agent {
                q.push(format!("agent={}", enc(&a)));
            }
            if let Some(u) = user {
                q.push(format!("user={}", enc(&u)));
            }
            let v: Value =
                Client::new(&server)?.get(&format!("/api/v1/credentials?{}", q.join("&")))?;
            listing(
                &v,
                "credentials",
                &[
                    "prefix",
                    "kind",
                    "agent",
                    "user",
                    "human",
                    "status",
                    "expires_at",
                    "last_used",
                ],
                json,
            )
        }
        Credentials::Issue {
            server,
            agent,
            label,
            expires_in_secs,
            tools,
            json,
        } => {
            let scope = tools.map(|t| json!({"tools": t}));
            let body = json!({"label": label, "expires_in_secs": expires_in_secs, "scope": scope});
            done(
                &Client::new(&server)?.send(
                    Method::POST,
                    &format!("/api/v1/agents/{}/credentials", enc(&agent)),
                    Some(&body),
                )?,
                json,
            )
        }
        Credentials::Session {
            server,
            agent,
            task,
            ttl_secs,
            json,
        } => {
            let body = json!({"task": task, "ttl_secs": ttl_secs});
            done(
                &Client::new(&server)?.send(
                    Method::POST,
                    &format!("/api/v1/agents/{}/sessions", enc(&agent)),
                    Some(&body),
                )?,
                json,
            )
        }
        Credentials::Rotate {
            server,
            credential,
            grace_secs,
            json,
        } => {
            let path = format!(
                "/api/v1/credentials/{}/rotate",
                enc(credential_id(&credential))
            );
            done(
                &Client::new(&server)?.send(
                    Method::POST,
                    &path,
                    Some(&json!({"grace_secs": grace_secs})),
                )?,
                json,
            )
        }
        Credentials::Revoke {
            server,
            credential,
            reason,
            json,
        } => {
            let path = format!(
                "/api/v1/credentials/{}/revoke",
                enc(credential_id(&credential))
            );
            done(
                &Client::new(&server)?.send(
                    Method::POST,
                    &path,
                    Some(&json!({"reason": reason})),
                )?,
                json,
            )
        }
    }
}

#[derive(clap::Subcommand)]
pub enum AccessReview {
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Every agent in the review (scope, credentials) and every human
    /// (roles, projects, KYC, personal tokens), with the decisions.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        review: u64,
        #[arg(long)]
        json: bool,
    },
    /// Open a review listing every agent and every human (admin).
    Open {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Mark one agent or human keep or revoke (reviewer; never oneself).
    Decide {
        #[command(flatten)]
        server: ServerArgs,
        review: u64,
        /// An agent id, or `user:<id>` for a human.
        subject: String,
        /// keep or revoke.
        decision: String,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Complete the review; revocations take effect (admin).
    Complete {
        #[command(flatten)]
        server: ServerArgs,
        review: u64,
        #[arg(long)]
        json: bool,
    },
}

pub fn access_review(c: AccessReview) -> anyhow::Result<ExitCode> {
    match c {
        AccessReview::List { server, json } => {
            let v: Value = Client::new(&server)?.get("/api/v1/access-reviews")?;
            listing(
                &v,
                "access_reviews",
                &["seq", "status", "opened_by", "opened_at", "completed_at"],
                json,
            )
        }
        AccessReview::Show {
            server,
            review,
            json,
        } => {
            let v: Value =
                Client::new(&server)?.get(&format!("/api/v1/access-reviews/{review}"))?;
            if json {
                return print_json(&v);
            }
            let decision = |key: &str, id: &Value| {
                v["decisions"]
                    .as_array()
                    .and_then(|d| d.iter().find(|d| &d[key] == id))
                    .map(|d| text(&d["decision"]))
                    .unwrap_or_else(|| "undecided".into())
            };
            let creds = |list: &Value| -> Vec<String> {
                list.as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        format!(
                            "{} ({}d, last used {})",
                            text(&c["prefix"]),
                            text(&c["age_days"]),
                            text(&c["last_used"]).chars().take(10).collect::<String>()
                        )
                    })
                    .collect()
            };
            let mut rows = Vec::new();
            for item in v["items"].as_array().map(Vec::as_slice).unwrap_or_default() {
                rows.push(json!({"agent": item["agent"], "owner": item["owner"], "project": item["project"], "tools": item["scope"]["tools"], "credentials": creds(&item["credentials"]), "decision": decision("agent", &item["agent"])}));
            }
            listing(
                &json!({"rows": rows}),
                "rows",
                &[
                    "agent",
                    "owner",
                    "project",
                    "tools",
                    "credentials",
                    "decision",
                ],
                false,
            )?;
            let mut rows = Vec::new();
            for h in v["humans"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                rows.push(json!({"user": h["user"], "roles": h["roles"], "projects": h["projects"], "kyc": h["kyc"], "tokens": creds(&h["tokens"]), "decision": decision("user", &h["user"])}));
            }
            println!();
            listing(
                &json!({"rows": rows}),
                "rows",
                &["user", "roles", "projects", "kyc", "tokens", "decision"],
                false,
            )
        }
        AccessReview::Open { server, json } => {
            let v: Value = Client::new(&server)?.send(
                Method::POST,
                "/api/v1/access-reviews",
                Some(&json!({})),
            )?;
            if json {
                return print_json(&v);
            }
            eprintln!(
                "access review {} opened with {} agents and {} humans",
                text(&v["seq"]),
                v["items"].as_array().map_or(0, Vec::len),
                v["humans"].as_array().map_or(0, Vec::len)
            );
            println!("{}", text(&v["seq"]));
            Ok(ExitCode::SUCCESS)
        }
        AccessReview::Decide {
            server,
            review,
            subject,
            decision,
            note,
            json,
        } => {
            let body = match subject.strip_prefix("user:") {
                Some(user) => json!({"user": user, "decision": decision, "note": note}),
                None => json!({"agent": subject.strip_prefix("agent:").unwrap_or(&subject),
                               "decision": decision, "note": note}),
            };
            done(
                &Client::new(&server)?.send(
                    Method::POST,
                    &format!("/api/v1/access-reviews/{review}/decisions"),
                    Some(&body),
                )?,
                json,
            )
        }
        AccessReview::Complete {
            server,
            review,
            json,
        } => done(
            &Client::new(&server)?.send(
                Method::POST,
                &format!("/api/v1/access-reviews/{review}/complete"),
                Some(&json!({})),
            )?,
            json,
        ),
    }
}
