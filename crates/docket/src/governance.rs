//! `docket policy`, `changes`, `kill`, `limits` and `approvals`: the
//! governance API from the command line. Listings print a table, or the
//! API's JSON with `--json`; commands that open a change request print its
//! seq on stdout (for scripts) and the next step on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ServerArgs;
use crate::client::{Client, enc};
use crate::identity::{credential_id, done, listing, print_json, read_json, text};

// ---- money ---------------------------------------------------------------------

const MICROS_PER_USD: i64 = 1_000_000;

/// Parses a US-dollar amount such as `12`, `12.5` or `0.000125` into
/// micro-dollars, exactly. Budgets are integers on the server, so a seventh
/// decimal is refused rather than silently rounded, and a budget below zero
/// means nothing.
pub fn parse_usd(s: &str) -> Result<i64, String> {
    const FORMAT: &str = "digits with at most 6 decimals, e.g. 12.50";
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("an amount in US dollars is needed ({FORMAT})"));
    }
    if s.starts_with('-') {
        return Err(format!(
            "{s:?} is negative: a budget is zero or more US dollars"
        ));
    }
    if s.starts_with('$') {
        return Err(format!("give {s:?} without the dollar sign ({FORMAT})"));
    }
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || frac.is_some_and(|f| !digits(f)) {
        return Err(format!("{s:?} is not an amount in US dollars ({FORMAT})"));
    }
    let frac = frac.unwrap_or("");
    if frac.len() > 6 {
        return Err(format!(
            "{s:?} has more than 6 decimals: budgets are counted in millionths of a dollar"
        ));
    }
    let too_large = || format!("{s:?} is too large");
    // Digits only (checked above), so a parse failure can only be overflow.
    let whole: i64 = whole.parse().map_err(|_| too_large())?;
    let frac: i64 = format!("{frac:0<6}").parse().map_err(|_| too_large())?;
    whole
        .checked_mul(MICROS_PER_USD)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(too_large)
}

/// Micro-dollars as `$12.50` or `$0.000125`: cents always, further decimals
/// only when they are not zero, so small model costs stay visible.
pub fn usd(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let abs = micro.unsigned_abs();
    let per = MICROS_PER_USD.unsigned_abs();
    let mut frac = format!("{:06}", abs % per);
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}${}.{frac}", abs / per)
}

/// A JSON micro-dollar amount as dollars; blank when absent.
fn usd_cell(v: &Value) -> String {
    v.as_i64().map(usd).unwrap_or_default()
}

// ---- shared ----------------------------------------------------------------------

/// Fetches a text (not JSON) resource: the schema is served as text/plain,
/// which `Client` would try to decode as JSON.
fn get_text(server: &ServerArgs, path: &str) -> anyhow::Result<String> {
    let base = server.server.trim_end_matches('/');
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    let mut req = http.get(format!("{base}{path}"));
    if let Some(t) = &server.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().with_context(|| format!("cannot reach {base}"))?;
    let status = resp.status();
    let body = resp.text()?;
    if !status.is_success() {
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("server answered {status}: {msg}");
    }
    Ok(body)
}

/// After a change request was opened: what it wrote, its seq on stdout, and
/// who has to act next (the requester can never approve it themselves).
fn requested(v: &Value, json: bool) -> anyhow::Result<ExitCode> {
    done(v, json)?;
    if !json {
        let seq = text(&v["change"]);
        eprintln!(
            "change request {seq} waits for another human's approval; another approver runs: docket changes approve {seq}"
        );
        println!("{seq}");
    }
    Ok(ExitCode::SUCCESS)
}

fn read_text(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

// ---- policy ----------------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum Policy {
    /// The active policy version and every version with its status.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// The Cedar schema policies are written against.
    Schema {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One version's Cedar text (with --json: the version and its tests).
    Get {
        #[command(flatten)]
        server: ServerArgs,
        version: u64,
        #[arg(long)]
        json: bool,
    },
    /// Propose a new policy version; the server compiles and tests it, and
    /// it takes effect when another human approves the change request.
    Submit {
        #[command(flatten)]
        server: ServerArgs,
        /// The Cedar policy file.
        #[arg(long, value_name = "FILE.cedar")]
        policy: PathBuf,
        /// Test cases, a JSON list of {name, request, expect}; at least one.
        #[arg(long, value_name = "FILE.json")]
        tests: PathBuf,
        /// What changes and why.
        #[arg(long)]
        description: String,
        /// How to undo it if it goes wrong.
        #[arg(long)]
        rollback_plan: String,
        #[arg(long)]
        json: bool,
    },
    /// Propose making an earlier version active again (another human approves).
    Rollback {
        #[command(flatten)]
        server: ServerArgs,
        version: u64,
        #[arg(long)]
        description: String,
        #[arg(long)]
        rollback_plan: String,
        #[arg(long)]
        json: bool,
    },
}

/// `[{seq, at}]` as `seq 12 at 2025-…, seq 40 at …`.
fn activations(v: &Value) -> String {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| format!("seq {} at {}", text(&a["seq"]), text(&a["at"])))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn policy(c: Policy) -> anyhow::Result<ExitCode> {
    match c {
        Policy::Show { server, json } => {
            let v: Value = Client::new(&server)?.get("/api/v1/policy")?;
            if json {
                return print_json(&v);
            }
            let a = &v["active"];
            if a.is_null() {
                println!("active: none");
            } else {
                println!(
                    "active: version {} (sha256 {}) since {}, seq {}",
                    text(&a["version"]),
                    text(&a["sha256"]),
                    text(&a["since"]),
                    text(&a["seq"])
                );
            }
            let rows: Vec<Value> = v["versions"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    json!({
                        "version": r["version"], "status": r["status"], "sha256": r["sha256"],
                        "request": r["request"], "activations": activations(&r["activations"]),
                    })
                })
                .collect();
            listing(
                &json!({ "versions": rows }),
                "versions",
                &["version", "status", "sha256", "request", "activations"],
                false,
            )
        }
        Policy::Schema { server } => {
            let schema = get_text(&server, "/api/v1/policy/schema")?;
            print!("{schema}");
            if !schema.ends_with('\n') {
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
        Policy::Get {
            server,
            version,
            json,
        } => {
            let v: Value =
                Client::new(&server)?.get(&format!("/api/v1/policy/versions/{version}"))?;
            if json {
                return print_json(&v);
            }
            // Metadata on stderr so that stdout is exactly the policy text,
            // ready to edit and submit again.
            eprintln!(
                "policy version {}: {}, sha256 {}, {} test cases (see --json)",
                text(&v["version"]),
                text(&v["status"]),
                text(&v["sha256"]),
                v["tests"].as_array().map_or(0, Vec::len)
            );
            let policy = v["policy"]
                .as_str()
                .context("the server's answer has no policy text")?;
            print!("{policy}");
            if !policy.ends_with('\n') {
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
        Policy::Submit {
            server,
            policy,
            tests,
            description,
            rollback_plan,
            json,
        } => {
            let body = json!({
                "policy": read_text(&policy)?,
                "tests": read_json(&tests)?,
                "description": description,
                "rollback_plan": rollback_plan,
            });
            let v: Value =
                Client::new(&server)?.send(Method::POST, "/api/v1/policy/versions", Some(&body))?;
            if !json {
                let t = &v["tests"];
                eprintln!(
                    "policy version {} (policies: {}): {} of {} tests passed",
                    text(&v["version"]),
                    text(&v["policies"]),
                    text(&t["passed"]),
                    text(&t["total"])
                );
            }
            requested(&v, json)
        }
        Policy::Rollback {
            server,
            version,
            description,
            rollback_plan,
            json,
        } => {
            let body = json!({
                "version": version, "description": description, "rollback_plan": rollback_plan,
            });
            let v: Value =
                Client::new(&server)?.send(Method::POST, "/api/v1/policy/rollback", Some(&body))?;
            if !json {
                eprintln!("rollback to policy version {version} requested");
            }
            requested(&v, json)
        }
    }
}

// ---- change requests -----------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum Changes {
    /// Change requests: agent registrations, updates and retirements,
    /// project rules, policy versions and rollbacks.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_parser = ["pending", "approved", "rejected"])]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One change request: what it asks for, why, and how to undo it.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        seq: u64,
        #[arg(long)]
        json: bool,
    },
    /// Approve a change request (never your own); it takes effect at once.
    Approve {
        #[command(flatten)]
        server: ServerArgs,
        seq: u64,
        #[arg(long)]
        json: bool,
    },
    /// Reject a change request; the reason is recorded.
    Reject {
        #[command(flatten)]
        server: ServerArgs,
        seq: u64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask for an agent's new scope or system prompt; another human approves it.
    RequestAgent {
        #[command(flatten)]
        server: ServerArgs,
        agent: String,
        /// The whole new scope, JSON {tools, models, data_classes, environments}.
        #[arg(long, value_name = "FILE.json")]
        scope: PathBuf,
        /// The new system prompt: only its SHA-256 (of the file's exact
        /// bytes, final newline included) is sent, never the prompt.
        #[arg(long, value_name = "FILE")]
        system_prompt: Option<PathBuf>,
        /// Whether the agent must sign its requests (RFC 9421); unchanged
        /// when absent.
        #[arg(long, value_name = "true|false")]
        require_signature: Option<bool>,
        #[arg(long)]
        description: String,
        #[arg(long)]
        rollback_plan: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask for a project's new access rules; another human approves them.
    RequestRules {
        #[command(flatten)]
        server: ServerArgs,
        project: String,
        /// The whole new rule list, JSON [{agents, tools, models, data_classes,
        /// environments}] (or a project file with a "rules" list).
        #[arg(long, value_name = "FILE.json")]
        rules: PathBuf,
        #[arg(long)]
        description: String,
        #[arg(long)]
        rollback_plan: String,
        #[arg(long)]
        json: bool,
    },
}

/// What an approver needs to see before deciding on a change request.
fn describe_change(c: &Value) -> String {
    let mut out = format!(
        "change request {}: {} ({})\nrequested by {} at {}\n",
        text(&c["seq"]),
        text(&c["change"]),
        text(&c["status"]),
        text(&c["requested_by"]),
        text(&c["requested_at"])
    );
    for (label, key) in [
        ("project", "project"),
        ("agent", "agent"),
        ("description", "description"),
        ("rollback plan", "rollback_plan"),
        ("decided by", "decided_by"),
        ("reason", "reason"),
    ] {
        if !c[key].is_null() {
            out.push_str(&format!("{label}: {}\n", text(&c[key])));
        }
    }
    let tests = &c["evidence"]["tests"];
    if !tests.is_null() {
        out.push_str(&format!(
            "tests: {} of {} passed\n",
            text(&tests["passed"]),
            text(&tests["total"])
        ));
    }
    // The Cedar text reads better as itself than as an escaped JSON string,
    // and the tests are summed up above.
    let mut request = c["request"].clone();
    let policy = request
        .as_object_mut()
        .and_then(|r| {
            r.remove("tests");
            r.remove("policy")
        })
        .and_then(|p| p.as_str().map(str::to_owned));
    out.push_str(&format!(
        "request: {}\n",
        serde_json::to_string_pretty(&request).unwrap_or_default()
    ));
    if let Some(p) = policy {
        out.push_str("policy:\n");
        out.push_str(&p);
        if !p.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

pub fn changes(c: Changes) -> anyhow::Result<ExitCode> {
    match c {
        Changes::List {
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
                    "description",
                ],
                json,
            )
        }
        Changes::Show { server, seq, json } => {
            let v: Value = Client::new(&server)?.get(&format!("/api/v1/changes/{seq}"))?;
            if json {
                return print_json(&v);
            }
            print!("{}", describe_change(&v));
            Ok(ExitCode::SUCCESS)
        }
        Changes::Approve { server, seq, json } => {
            let v: Value = Client::new(&server)?.send(
                Method::POST,
                &format!("/api/v1/changes/{seq}/approve"),
                Some(&json!({})),
            )?;
            done(&v, json)?;
            if !json {
                let c = &v["change"];
                eprintln!("change request {seq} is {}", text(&c["status"]));
                if matches!(
                    c["change"].as_str(),
                    Some("policy.version" | "policy.rollback")
                ) {
                    eprintln!(
                        "policy version {} is now active",
                        text(&c["request"]["version"])
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Changes::Reject {
            server,
            seq,
            reason,
            json,
        } => done(
            &Client::new(&server)?.send(
                Method::POST,
                &format!("/api/v1/changes/{seq}/reject"),
                Some(&json!({ "reason": reason })),
            )?,
            json,
        ),
        Changes::RequestAgent {
            server,
            agent,
            scope,
            system_prompt,
            require_signature,
            description,
            rollback_plan,
            json,
        } => {
            // Hashed here so that the prompt, which may hold confidential
            // instructions, never leaves this machine.
            let prompt_sha256 = system_prompt
                .map(|p| read_text(&p).map(|t| docket_server::identity::sha256_hex(&t)))
                .transpose()?;
            let body = json!({
                "scope": read_json(&scope)?,
                "system_prompt_sha256": prompt_sha256,
                "require_signature": require_signature,
                "description": description,
                "rollback_plan": rollback_plan,
            });
            let path = format!("/api/v1/agents/{}/changes", enc(&agent));
            let v: Value = Client::new(&server)?.send(Method::POST, &path, Some(&body))?;
            requested(&v, json)
        }
        Changes::RequestRules {
            server,
            project,
            rules,
            description,
            rollback_plan,
            json,
        } => {
            let file = read_json(&rules)?;
            let rules = match file {
                Value::Array(_) => file,
                Value::Object(mut o) => o
                    .remove("rules")
                    .ok_or_else(|| anyhow!("{} has no \"rules\" list", rules.display()))?,
                _ => bail!("{} must hold a list of rules", rules.display()),
            };
            let body = json!({
                "rules": rules, "description": description, "rollback_plan": rollback_plan,
            });
            let path = format!("/api/v1/projects/{}/rules", enc(&project));
            let v: Value = Client::new(&server)?.send(Method::POST, &path, Some(&body))?;
            requested(&v, json)
        }
    }
}

// ---- kill switches -------------------------------------------------------------------

/// Which kill switch: exactly one of these.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct KillScope {
    /// Every agent on the server.
    #[arg(long)]
    global: bool,
    /// Every agent of one project.
    #[arg(long, value_name = "PROJECT")]
    project: Option<String>,
    /// One agent.
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,
}

impl KillScope {
    fn body(self, reason: String) -> Value {
        match (self.project, self.agent) {
            (Some(p), _) => json!({"scope": "project", "project": p, "reason": reason}),
            (_, Some(a)) => json!({"scope": "agent", "agent": a, "reason": reason}),
            // clap's group guarantees --global when neither is given.
            _ => json!({"scope": "global", "reason": reason}),
        }
    }
}

#[derive(clap::Subcommand)]
pub enum Kill {
    /// Stop agents at once: every request of theirs is refused until release.
    Engage {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        target: KillScope,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Let agents run again (admins and approvers).
    Release {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        target: KillScope,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// The kill switches engaged now.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
}

/// `{scope, project?, agent?, credential?}` as `project p`, `agent a`, `global`.
fn target_text(t: &Value) -> String {
    match t["scope"].as_str() {
        Some(s @ ("project" | "agent" | "credential")) => format!("{s} {}", text(&t[s])),
        _ => text(&t["scope"]),
    }
}

fn switch(
    server: &ServerArgs,
    action: &str,
    target: KillScope,
    reason: String,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let v: Value = Client::new(server)?.send(
        Method::POST,
        &format!("/api/v1/kill-switches/{action}"),
        Some(&target.body(reason)),
    )?;
    done(&v, json)?;
    if !json {
        let state = if v["engaged"].as_bool() == Some(true) {
            "engaged"
        } else {
            "released"
        };
        eprintln!("kill switch {state}: {}", target_text(&v["target"]));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn kill(c: Kill) -> anyhow::Result<ExitCode> {
    match c {
        Kill::Engage {
            server,
            target,
            reason,
            json,
        } => switch(&server, "engage", target, reason, json),
        Kill::Release {
            server,
            target,
            reason,
            json,
        } => switch(&server, "release", target, reason, json),
        Kill::List { server, json } => {
            let v: Value = Client::new(&server)?.get("/api/v1/kill-switches")?;
            if !json && v["engaged"].as_array().is_none_or(Vec::is_empty) {
                eprintln!("no kill switch is engaged");
                return Ok(ExitCode::SUCCESS);
            }
            listing(
                &v,
                "engaged",
                &["scope", "project", "agent", "since", "seq", "by", "reason"],
                json,
            )
        }
    }
}

// ---- limits ----------------------------------------------------------------------------

/// Whose limits: exactly one of these.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct LimitScope {
    #[arg(long, value_name = "PROJECT")]
    project: Option<String>,
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,
    /// An agent's API key: its id or prefix (`dka_…`).
    #[arg(long, value_name = "CREDENTIAL")]
    credential: Option<String>,
}

impl LimitScope {
    fn body(self) -> serde_json::Map<String, Value> {
        let mut body = serde_json::Map::new();
        let (scope, id) = match (self.project, self.agent, self.credential) {
            (Some(p), _, _) => ("project", p),
            (_, Some(a), _) => ("agent", a),
            (_, _, Some(c)) => ("credential", credential_id(&c).to_owned()),
            // Unreachable: clap's group requires one of the three.
            (None, None, None) => ("project", String::new()),
        };
        body.insert("scope".into(), json!(scope));
        body.insert(scope.into(), json!(id));
        body
    }
}

#[derive(clap::Subcommand)]
pub enum Limits {
    /// Budgets and rate limits, with what was spent today and this month.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Replace the limits of a project, agent or credential: a limit not
    /// given is removed, and none given removes them all.
    Set {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        target: LimitScope,
        /// Budget per UTC day in US dollars, e.g. 12.50.
        #[arg(long, value_name = "USD", value_parser = parse_usd, allow_negative_numbers = true)]
        day_usd: Option<i64>,
        /// Budget per calendar month (UTC) in US dollars.
        #[arg(long, value_name = "USD", value_parser = parse_usd, allow_negative_numbers = true)]
        month_usd: Option<i64>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u32>,
        /// Model tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Requests in flight at once.
        #[arg(long)]
        concurrent: Option<u32>,
        #[arg(long)]
        json: bool,
    },
}

pub fn limits(c: Limits) -> anyhow::Result<ExitCode> {
    match c {
        Limits::List { server, json } => {
            let v: Value = Client::new(&server)?.get("/api/v1/limits")?;
            if json {
                return print_json(&v);
            }
            let rows: Vec<Value> = v["limits"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    let l = &r["limits"];
                    json!({
                        "target": target_text(r),
                        "day": usd_cell(&l["budget_day_micro_usd"]),
                        "spent_today": usd_cell(&r["spent_today_micro_usd"]),
                        "month": usd_cell(&l["budget_month_micro_usd"]),
                        "spent_this_month": usd_cell(&r["spent_this_month_micro_usd"]),
                        "rpm": l["requests_per_minute"],
                        "tpm": l["tokens_per_minute"],
                        "concurrent": l["concurrent"],
                    })
                })
                .collect();
            listing(
                &json!({ "limits": rows }),
                "limits",
                &[
                    "target",
                    "day",
                    "spent_today",
                    "month",
                    "spent_this_month",
                    "rpm",
                    "tpm",
                    "concurrent",
                ],
                false,
            )
        }
        Limits::Set {
            server,
            target,
            day_usd,
            month_usd,
            rpm,
            tpm,
            concurrent,
            json,
        } => {
            let mut limits = serde_json::Map::new();
            for (k, v) in [
                ("budget_day_micro_usd", day_usd.map(Value::from)),
                ("budget_month_micro_usd", month_usd.map(Value::from)),
                ("requests_per_minute", rpm.map(Value::from)),
                ("tokens_per_minute", tpm.map(Value::from)),
                ("concurrent", concurrent.map(Value::from)),
            ] {
                if let Some(v) = v {
                    limits.insert(k.into(), v);
                }
            }
            let mut body = target.body();
            let summary = if limits.is_empty() {
                "no limits (cleared)".to_owned()
            } else {
                [
                    day_usd.map(|d| format!("{} a day", usd(d))),
                    month_usd.map(|m| format!("{} a month", usd(m))),
                    rpm.map(|n| format!("{n} requests/min")),
                    tpm.map(|n| format!("{n} tokens/min")),
                    concurrent.map(|n| format!("{n} at once")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
            };
            body.insert("limits".into(), Value::Object(limits));
            let v: Value = Client::new(&server)?.send(
                Method::PUT,
                "/api/v1/limits",
                Some(&Value::Object(body)),
            )?;
            done(&v, json)?;
            if !json {
                eprintln!("{}: {summary}", target_text(&v["target"]));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ---- approvals of held actions ---------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum Approvals {
    /// Actions policy held for a human (all, or those in one state).
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_parser = ["pending", "approved", "denied", "used", "expired"])]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One held action: the summary an approver decides on.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// Let a held action run (once); records what you were shown.
    Approve {
        #[command(flatten)]
        server: ServerArgs,
        id: u64,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Refuse a held action; records what you were shown.
    Deny {
        #[command(flatten)]
        server: ServerArgs,
        id: u64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

/// What the action is about: the tool, model or dataset in its summary.
fn subject(summary: &Value) -> String {
    ["tool", "model", "dataset"]
        .iter()
        .find(|k| !summary[**k].is_null())
        .map(|k| format!("{k} {}", text(&summary[*k])))
        .unwrap_or_default()
}

/// An approval as an approver reads it: state, who, and the exact summary
/// whose digest the decision echoes back.
fn describe_approval(a: &Value) -> String {
    let s = &a["summary"];
    let mut out = format!(
        "approval {}: {} (expires at {})\n{} {} by agent {} of project {}",
        text(&a["id"]),
        text(&a["state"]),
        text(&a["expires_at"]),
        text(&s["action"]),
        subject(s),
        text(&a["agent"]),
        text(&a["project"])
    );
    if !a["human"].is_null() {
        out.push_str(&format!(" for {}", text(&a["human"])));
    }
    out.push_str(&format!(
        "\nestimated cost: {}\nwhy held: {}\n",
        usd_cell(&s["estimated_cost_micro_usd"]),
        text(&s["reason"])
    ));
    if !a["by"].is_null() {
        out.push_str(&format!("decided by {}", text(&a["by"])));
        if !a["reason"].is_null() {
            out.push_str(&format!(": {}", text(&a["reason"])));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "summary (sha256 {}):\n{}\n",
        text(&a["summary_sha256"]),
        serde_json::to_string_pretty(s).unwrap_or_default()
    ));
    out
}

fn decide(
    server: &ServerArgs,
    id: u64,
    decision: &str,
    reason: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    let a: Value = client.get(&format!("/api/v1/approvals/{id}"))?;
    // The server records that the decision was made on this summary; it
    // refuses the decision if the summary changed since it was read.
    let shown = a["summary_sha256"]
        .as_str()
        .context("the approval has no summary_sha256")?
        .to_owned();
    eprint!("{}", describe_approval(&a));
    let body = json!({"decision": decision, "reason": reason, "shown_sha256": shown});
    let v: Value = client.send(
        Method::POST,
        &format!("/api/v1/approvals/{id}/decide"),
        Some(&body),
    )?;
    if json {
        return print_json(&v);
    }
    eprintln!(
        "approval {id} is {} by {} (recorded at seq {})",
        text(&v["state"]),
        text(&v["by"]),
        text(&v["seq"])
    );
    Ok(ExitCode::SUCCESS)
}

pub fn approvals(c: Approvals) -> anyhow::Result<ExitCode> {
    match c {
        Approvals::List {
            server,
            state,
            json,
        } => {
            let path = match state {
                Some(s) => format!("/api/v1/approvals?state={}", enc(&s)),
                None => "/api/v1/approvals".to_owned(),
            };
            let v: Value = Client::new(&server)?.get(&path)?;
            if json {
                return print_json(&v);
            }
            let rows: Vec<Value> = v["approvals"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|a| {
                    let s = &a["summary"];
                    json!({
                        "id": a["id"], "state": a["state"], "agent": a["agent"],
                        "project": a["project"], "human": a["human"], "action": s["action"],
                        "on": subject(s), "cost": usd_cell(&s["estimated_cost_micro_usd"]),
                        "expires_at": a["expires_at"],
                    })
                })
                .collect();
            listing(
                &json!({ "approvals": rows }),
                "approvals",
                &[
                    "id",
                    "state",
                    "agent",
                    "project",
                    "human",
                    "action",
                    "on",
                    "cost",
                    "expires_at",
                ],
                false,
            )
        }
        Approvals::Show { server, id, json } => {
            let v: Value = Client::new(&server)?.get(&format!("/api/v1/approvals/{id}"))?;
            if json {
                return print_json(&v);
            }
            print!("{}", describe_approval(&v));
            Ok(ExitCode::SUCCESS)
        }
        Approvals::Approve {
            server,
            id,
            reason,
            json,
        } => decide(&server, id, "approve", reason, json),
        Approvals::Deny {
            server,
            id,
            reason,
            json,
        } => decide(&server, id, "deny", Some(reason), json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_become_exact_micro_dollars() {
        assert_eq!(parse_usd("12.50"), Ok(12_500_000));
        assert_eq!(parse_usd("12.5"), Ok(12_500_000));
        assert_eq!(parse_usd("12"), Ok(12_000_000));
        assert_eq!(parse_usd("0"), Ok(0));
        assert_eq!(parse_usd("0.000001"), Ok(1));
        assert_eq!(parse_usd("007.10"), Ok(7_100_000));
        assert_eq!(parse_usd(" 3.25 "), Ok(3_250_000));
        assert_eq!(
            parse_usd("9223372036854.775807"),
            Ok(i64::MAX),
            "the largest amount the server can store"
        );
    }

    #[test]
    fn malformed_or_negative_amounts_are_refused_with_the_reason() {
        for (input, says) in [
            ("-1", "negative"),
            ("-0.01", "negative"),
            ("$5", "dollar sign"),
            ("", "needed"),
            ("1.0000001", "more than 6 decimals"),
            ("1.", "not an amount"),
            (".5", "not an amount"),
            ("1.2.3", "not an amount"),
            ("1,50", "not an amount"),
            ("+1", "not an amount"),
            ("1e3", "not an amount"),
            ("twelve", "not an amount"),
            ("9223372036854.775808", "too large"),
            ("99999999999999999999", "too large"),
        ] {
            let err = parse_usd(input).expect_err(input);
            assert!(err.contains(says), "{input:?}: {err}");
        }
    }

    #[test]
    fn micro_dollars_print_as_dollars_with_cents() {
        assert_eq!(usd(12_500_000), "$12.50");
        assert_eq!(usd(12_000_000), "$12.00");
        assert_eq!(usd(125), "$0.000125");
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(-1_230_000), "-$1.23");
        assert_eq!(usd(i64::MIN), "-$9223372036854.775808");
    }

    #[test]
    fn parsed_amounts_print_back_as_given() {
        for s in ["12.50", "0.000125", "1.25", "100.00"] {
            assert_eq!(parse_usd(s).map(usd), Ok(format!("${s}")));
        }
    }
}
