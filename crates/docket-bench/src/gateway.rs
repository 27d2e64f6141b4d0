//! `docket-bench policy` and `docket-bench gateway`: the decision path and
//! the gateway's added latency. Both print medians and tails; neither
//! asserts a time.
//!
//! - `policy` times [`docket_server::governance::evaluate`] — kill
//!   switches, scope, Cedar and limits — over synthetic policy sets.
//! - `gateway` starts the stand-in provider and a Docket server in this
//!   process (SQLite, durable receipts, a Cedar policy), registers an
//!   agent, and sends chat completions at fixed rates both through Docket
//!   and straight to the stand-in, alternating, so both see the same
//!   machine at the same time. `--spawn-server` runs Docket as its own
//!   `docket serve` process instead (`--server-cpus` pins it), so the
//!   load generator does not share its runtime. `--through URL` measures
//!   another proxy (LiteLLM, say) in front of the same stand-in instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use docket_core::Timestamp;
use docket_core::identity::event::{
    AccessRule, AgentRecord, CredentialRecord, ProjectRecord, UserRecord,
};
use docket_core::identity::governance::{KillTarget, LimitTarget, Limits};
use docket_core::identity::{
    Actor, CredentialKind, Did, Event, HumanAssurance, Registry, Role, Scope,
};
use docket_server::governance::{
    ActionRequest, AgentCaller, Claim, Compiled, Limiter, Source, evaluate,
};
use serde_json::{Value, json};

use crate::summary;

fn quantile(xs: &mut [Duration], p: f64) -> Duration {
    xs.sort_unstable();
    xs[((xs.len() as f64 - 1.0) * p).round() as usize]
}

/// A registry with one agent allowed everything the synthetic requests
/// touch, limits on it, and a kill switch engaged on another agent (so
/// the switch lookup is not skipped).
fn bench_registry(requests: &[docket_policy::Request]) -> anyhow::Result<(Registry, AgentCaller)> {
    let mut scope = Scope::default();
    for r in requests {
        match r.resource.kind {
            docket_policy::ResourceKind::Model => {
                scope.models.insert(r.resource.id.clone());
            }
            docket_policy::ResourceKind::Tool => {
                scope.tools.insert(r.resource.id.clone());
            }
            docket_policy::ResourceKind::Dataset => {}
        }
        scope
            .data_classes
            .extend(r.resource.data_classes.iter().cloned());
    }
    let mut reg = Registry::default();
    let admin: docket_core::identity::UserId = "admin".parse()?;
    let actor = Actor::Bootstrap;
    let mut seq = 0;
    let mut apply = |reg: &mut Registry, e: Event| {
        seq += 1;
        reg.apply(seq, Timestamp::now(), &actor, &e);
    };
    apply(
        &mut reg,
        Event::UserCreated {
            user: UserRecord {
                id: admin.clone(),
                name: "Admin".into(),
                email: None,
                roles: vec![Role::Admin],
                disabled: false,
                kyc: Default::default(),
            },
        },
    );
    apply(
        &mut reg,
        Event::ProjectCreated {
            project: ProjectRecord {
                id: "bench".parse()?,
                name: "Bench".into(),
                members: vec![admin.clone()],
                rules: vec![AccessRule {
                    agents: vec!["*".into()],
                    allows: scope.clone(),
                }],
            },
        },
    );
    for id in ["bench-agent", "other-agent"] {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        apply(
            &mut reg,
            Event::AgentRegistered {
                request: 0,
                agent: AgentRecord {
                    id: id.parse()?,
                    name: id.into(),
                    owner: admin.clone(),
                    project: "bench".parse()?,
                    purpose: "benchmark".into(),
                    scope: scope.clone(),
                    did: Did::from_key(&key.verifying_key()),
                    system_prompt_sha256: None,
                    require_signature: false,
                },
            },
        );
    }
    let credential: docket_core::identity::CredentialId = "benchbenchbench2".parse()?;
    apply(
        &mut reg,
        Event::CredentialIssued {
            credential: CredentialRecord {
                id: credential.clone(),
                kind: CredentialKind::ApiKey,
                prefix: "dka_benchbenchbench2".into(),
                sha256: "00".repeat(32),
                agent: Some("bench-agent".parse()?),
                user: None,
                scope: None,
                task: None,
                human: None,
                human_assurance: None,
                parent: None,
                expires_at: None,
                label: None,
            },
            project: Some("bench".parse()?),
            replaces: None,
        },
    );
    let generous = Limits {
        budget_day_micro_usd: Some(i64::MAX / 4),
        budget_month_micro_usd: Some(i64::MAX / 4),
        requests_per_minute: Some(u32::MAX),
        tokens_per_minute: Some(u64::MAX / 4),
        concurrent: Some(1_000),
    };
    apply(
        &mut reg,
        Event::LimitsSet {
            target: LimitTarget::Agent {
                agent: "bench-agent".parse()?,
            },
            limits: generous.clone(),
        },
    );
    apply(
        &mut reg,
        Event::LimitsSet {
            target: LimitTarget::Project {
                project: "bench".parse()?,
            },
            limits: generous,
        },
    );
    apply(
        &mut reg,
        Event::KillSwitch {
            target: KillTarget::Agent {
                agent: "other-agent".parse()?,
            },
            engaged: true,
            reason: "bench".into(),
        },
    );
    let caller = AgentCaller {
        agent: "bench-agent".parse()?,
        project: "bench".parse()?,
        credential,
        human: Some(admin.clone()),
        actor: Actor::Agent {
            agent: "bench-agent".parse()?,
            did: reg.agents["bench-agent"].record.did.clone(),
            credential: "benchbenchbench2".parse()?,
            task: None,
            human: Some(admin),
            human_assurance: HumanAssurance::Asserted,
            signature: None,
        },
    };
    Ok((reg, caller))
}

pub fn policy(sizes: &[usize], decisions: usize) -> anyhow::Result<()> {
    println!(
        "policy decision, in-process (kill switches, scope, Cedar, budgets and rate limits), one thread:"
    );
    for &n in sizes {
        let (text, requests) = docket_policy::bench::synthetic(n);
        let set = docket_policy::PolicySet::compile(&text)
            .map_err(|e| anyhow!("synthetic policy set does not compile: {e}"))?;
        let compiled = Compiled {
            version: Some(1),
            sha256: set.sha256().to_owned(),
            set,
        };
        let (registry, caller) = bench_registry(&requests)?;
        let limiter = Arc::new(Limiter::default());
        let actions: Vec<ActionRequest> = requests
            .iter()
            .map(|r| ActionRequest {
                action: r.action,
                resource: r.resource.clone(),
                claim: Claim {
                    estimate_micro_usd: r.context.estimated_cost_micro_usd,
                    estimated_tokens: 100,
                },
                request_sha256: String::new(),
                source: Source::Gateway,
                extra: Value::Null,
            })
            .collect();
        // Warm up caches and the allocator.
        for a in actions.iter().take(10_000) {
            drop(evaluate(
                &registry,
                &compiled,
                &limiter,
                &caller,
                a,
                Timestamp::now(),
            ));
        }
        let mut times = Vec::with_capacity(decisions);
        let mut outcomes = [0usize; 3];
        for i in 0..decisions {
            let a = &actions[i % actions.len()];
            let now = Timestamp::now();
            let start = Instant::now();
            let e = evaluate(&registry, &compiled, &limiter, &caller, a, now);
            let outcome = e.outcome;
            drop(e);
            times.push(start.elapsed());
            outcomes[match outcome {
                docket_policy::Outcome::Allow => 0,
                docket_policy::Outcome::Deny => 1,
                docket_policy::Outcome::RequireApproval => 2,
            }] += 1;
        }
        println!(
            "  {n:>5} policies: {}  (allow {}, deny {}, require_approval {})",
            summary(times, "µs"),
            outcomes[0],
            outcomes[1],
            outcomes[2]
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct GatewayArgs {
    /// Requests per second to try, in order; stops at the first rate with errors.
    #[arg(
        long,
        default_value = "250,500,1000,1500,2000,3000",
        value_delimiter = ','
    )]
    rates: Vec<u64>,
    /// Seconds per rate (each for Docket and for the direct path).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Measure this proxy (an OpenAI-compatible base URL, e.g. LiteLLM's)
    /// instead of an in-process Docket; it must forward to `--upstream`.
    #[arg(long)]
    through: Option<String>,
    /// The key for `--through`.
    #[arg(long, env = "DOCKET_BENCH_THROUGH_KEY", hide_env_values = true)]
    through_key: Option<String>,
    /// A stand-in upstream already running (with `--through`); by default
    /// one is started in this process.
    #[arg(long)]
    upstream: Option<String>,
    /// Model name sent in each request.
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// After the sweep, offer twice the highest rate sustained (or this
    /// rate) for `--seconds` and report what was admitted, what was
    /// refused (503/429 with `Retry-After`), the admitted calls' latency
    /// and the process's peak memory.
    #[arg(long)]
    overload: bool,
    #[arg(long)]
    overload_rate: Option<u64>,
    /// Run Docket as a child `docket serve` process instead of in this
    /// process, so the load generator and the stand-in do not share its
    /// runtime; its own peak memory is reported.
    #[arg(long, conflicts_with = "through")]
    spawn_server: bool,
    /// With `--spawn-server`, the CPUs the server may run on (a `taskset`
    /// list such as `0` or `0-1`); pin this process elsewhere with
    /// `taskset -c 1 docket-bench gateway …` for a fair split.
    #[arg(long, requires = "spawn_server")]
    server_cpus: Option<String>,
    /// With `--spawn-server`, a TOML file appended to the server's
    /// configuration (e.g. `[gateway]` with other admission figures).
    #[arg(long, requires = "spawn_server")]
    server_config: Option<std::path::PathBuf>,
    /// With `--spawn-server`, the `docket` binary to run; by default the
    /// one beside this program, where cargo builds both.
    #[arg(long, requires = "spawn_server")]
    docket: Option<std::path::PathBuf>,
}

async fn start_upstream() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(docket_bench::upstream::serve(
        listener,
        docket_bench::upstream::UpstreamConfig {
            api_key: Some("sk-upstream".into()),
            keep_requests: 0,
        },
        std::future::pending(),
    ));
    Ok(format!("http://{addr}"))
}

async fn api(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let r = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{path}: {status}: {v}");
    }
    Ok(v)
}

/// The Docket being measured.
enum Server {
    InProcess(docket_server::Running),
    Child(std::process::Child),
}

impl Server {
    /// Peak resident memory of the server, MiB: the child's own, or this
    /// whole process's (server, stand-in and load generator) in-process.
    fn peak_rss_mib(&self) -> Option<(f64, &'static str)> {
        match self {
            Server::InProcess(_) => peak_rss_mib("/proc/self/status")
                .map(|m| (m, "this process (Docket, stand-in and load generator)")),
            Server::Child(c) => peak_rss_mib(&format!("/proc/{}/status", c.id()))
                .map(|m| (m, "the Docket server process")),
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Server::InProcess(running) => running.stop().await?,
            Server::Child(mut c) => {
                // A benchmark's throwaway data directory: no need to be gentle.
                c.kill()?;
                c.wait()?;
            }
        }
        Ok(())
    }
}

/// Starts Docket in this process on a temporary SQLite data directory
/// with the stand-in as its OpenAI provider; returns its base URL and
/// bootstrap token.
async fn start_in_process(
    upstream: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(String, String, Server)> {
    let mut config = docket_server::Config {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse()?,
        ..docket_server::Config::default()
    };
    // Every call of the load comes from this one address.
    config.connections.max_per_address = 0;
    if let Some(p) = config.gateway.providers.get_mut("openai") {
        p.base_url = upstream.to_owned();
        p.api_key = Some(secrecy::SecretString::from("sk-upstream"));
        p.api_key_env = None;
    }
    let running = docket_server::start(config).await?;
    let base = format!("http://{}", running.addr);
    let boot = running
        .new_admin_token
        .clone()
        .context("a new data directory prints a bootstrap token")?;
    Ok((base, boot.to_string(), Server::InProcess(running)))
}

/// Starts Docket as a child `docket serve` (`docket`, or the binary beside this one) with the same
/// configuration as [`start_in_process`], pinned to `cpus` if given, and
/// reads its address and bootstrap token from what it prints.
fn spawn_server(
    docket: Option<&std::path::Path>,
    upstream: &str,
    dir: &std::path::Path,
    cpus: Option<&str>,
    more: Option<&std::path::Path>,
) -> anyhow::Result<(String, String, Server)> {
    use std::io::BufRead as _;
    // Not `DOCKET_…`: those are configuration overrides.
    const KEY_ENV: &str = "BENCH_UPSTREAM_KEY";
    let config = dir.join("docket.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\n\n[connections]\nmax_per_address = 0\n\n\
             [gateway.providers.openai]\nbase_url = {upstream:?}\napi_key_env = \"{KEY_ENV}\"\n",
            data = dir.join("data").display().to_string(),
        ) + &match more {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
            None => String::new(),
        },
    )?;
    let exe = match docket {
        Some(path) => path.to_owned(),
        None => {
            let here = std::env::current_exe().context("finding this program")?;
            let beside = here.with_file_name("docket");
            anyhow::ensure!(
                beside.is_file(),
                "no `docket` binary beside {} to run `docket serve`: build it (`cargo build --release -p docket`) or name one with --docket",
                here.display()
            );
            beside
        }
    };
    let mut cmd = match cpus {
        Some(list) => {
            let mut c = std::process::Command::new("taskset");
            c.args(["-c", list]).arg(&exe);
            c
        }
        None => std::process::Command::new(&exe),
    };
    // The same configuration as in-process: none from this environment.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DOCKET_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env(KEY_ENV, "sk-upstream")
        .env("DOCKET_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    let stderr = child.stderr.take().context("the server's stderr")?;
    // Its address and token, then whatever else it says, passed on.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let said = line
                .split_once(" on http://")
                .filter(|_| line.starts_with("docket: serving "))
                .map(|(_, addr)| ("addr", addr.to_owned()))
                .or_else(|| {
                    line.strip_prefix("docket: bootstrap token")
                        .and_then(|rest| rest.rsplit_once(": "))
                        .map(|(_, token)| ("token", token.to_owned()))
                });
            match said {
                Some(said) => {
                    let _ = tx.send(said);
                }
                // Its start-up banner is not news; its log lines are.
                None if line.starts_with("docket: ") => {}
                None => eprintln!("  docket serve: {line}"),
            }
        }
    });
    let (mut addr, mut token) = (None, None);
    while addr.is_none() || token.is_none() {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(("addr", a)) => addr = Some(a),
            Ok((_, t)) => token = Some(t),
            Err(_) => {
                let _ = child.kill();
                bail!("`docket serve` did not print its address and bootstrap token");
            }
        }
    }
    let (addr, token) = (addr.unwrap_or_default(), token.unwrap_or_default());
    Ok((format!("http://{addr}"), token, Server::Child(child)))
}

/// Registers an admin, an approver, a project, the agent (scope: `model`)
/// and its key, and an active Cedar policy; returns the agent's key.
async fn set_up(base: &str, boot: &str, model: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let v = api(
        &http,
        base,
        boot,
        reqwest::Method::POST,
        "/api/v1/bootstrap",
        json!({"id": "admin", "name": "Admin"}),
    )
    .await?;
    let admin = v["token"].as_str().context("bootstrap token")?.to_owned();
    let password = "bench-approver-password";
    api(
        &http,
        base,
        &admin,
        reqwest::Method::POST,
        "/api/v1/users",
        json!({"id": "approver", "name": "Approver", "roles": ["approver"], "password": password}),
    )
    .await?;
    let v: Value = http
        .post(format!("{base}/api/v1/login"))
        .basic_auth("approver", Some(password))
        .send()
        .await?
        .json()
        .await?;
    let approver = v["token"].as_str().context("approver login")?.to_owned();
    api(
        &http,
        base,
        &admin,
        reqwest::Method::POST,
        "/api/v1/projects",
        json!({
            "id": "bench", "name": "Bench", "members": ["admin"],
            "rules": [{"agents": ["*"], "models": [model], "tools": [], "data_classes": []}],
        }),
    )
    .await?;
    let v = api(&http, base, &admin, reqwest::Method::POST, "/api/v1/agents", json!({
        "id": "bench-agent", "name": "Bench agent", "project": "bench", "purpose": "gateway benchmark",
        "scope": {"models": [model]},
    })).await?;
    let change = v["request"].as_u64().context("agent change seq")?;
    api(
        &http,
        base,
        &approver,
        reqwest::Method::POST,
        &format!("/api/v1/changes/{change}/approve"),
        json!({}),
    )
    .await?;
    let v = api(
        &http,
        base,
        &admin,
        reqwest::Method::POST,
        "/api/v1/agents/bench-agent/credentials",
        json!({}),
    )
    .await?;
    let key = v["token"].as_str().context("agent key")?.to_owned();
    // A realistic policy: models in the agent's scope, nothing big without a human.
    let policy = r#"
@id("models-in-scope")
permit(principal, action == Docket::Action::"call_model", resource)
when { principal.models.contains(resource.name) };
@id("no-pii-at-night")
forbid(principal, action, resource)
when { context.data_classes.contains("pii") && (context.hour < 6 || context.hour >= 22) };
"#;
    let tests = json!([{
        "name": "scope model allowed",
        "request": {
            "principal": {"agent": "bench-agent", "project": "bench", "owner": "admin", "models": [model]},
            "action": "call_model",
            "resource": {"kind": "model", "id": model, "provider": "openai"},
            "context": {"time": 1_767_268_800},
        },
        "expect": "allow",
    }]);
    let v = api(
        &http,
        base,
        &admin,
        reqwest::Method::POST,
        "/api/v1/policy/versions",
        json!({
            "policy": policy, "tests": tests,
            "description": "benchmark policy", "rollback_plan": "activate the previous version",
        }),
    )
    .await?;
    let change = v["change"].as_u64().context("policy change seq")?;
    api(
        &http,
        base,
        &approver,
        reqwest::Method::POST,
        &format!("/api/v1/changes/{change}/approve"),
        json!({}),
    )
    .await?;
    Ok(key)
}

/// What one run of [`load`] got back.
struct Loaded {
    /// Latencies of the calls answered with success.
    ok: Vec<Duration>,
    /// Latencies of the calls refused for load (503 or 429 with
    /// `Retry-After`): shed, as a bounded gateway should.
    shed: Vec<Duration>,
    /// Why calls were shed, as the refusals said it (figures as `N`).
    why: std::collections::BTreeMap<String, u64>,
    /// Everything else: failures, timeouts, other statuses.
    errors: u64,
    took: Duration,
}

/// Sends `rate` requests per second for `seconds` to `url`, open loop
/// (on schedule, whatever the answers do).
async fn load(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
    rate: u64,
    seconds: u64,
) -> Loaded {
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let (http, url, key, body) = (http.clone(), url.to_owned(), key.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = http.post(&url).bearer_auth(&key).json(&body).send().await;
            match r {
                Ok(r) if r.status().is_success() => {
                    let ok = r.bytes().await.is_ok();
                    (t.elapsed(), if ok { Answer::Ok } else { Answer::Error })
                }
                Ok(r)
                    if matches!(r.status().as_u16(), 429 | 503)
                        && r.headers().contains_key("retry-after") =>
                {
                    let body = r.bytes().await.unwrap_or_default();
                    (t.elapsed(), Answer::Shed(shed_reason(&body)))
                }
                _ => (t.elapsed(), Answer::Error),
            }
        }));
    }
    let mut out = Loaded {
        ok: Vec::with_capacity(tasks.len()),
        shed: Vec::new(),
        why: Default::default(),
        errors: 0,
        took: Duration::ZERO,
    };
    for t in tasks {
        match t.await {
            Ok((d, Answer::Ok)) => out.ok.push(d),
            Ok((d, Answer::Shed(why))) => {
                out.shed.push(d);
                *out.why.entry(why).or_default() += 1;
            }
            _ => out.errors += 1,
        }
    }
    out.took = start.elapsed();
    out
}

enum Answer {
    Ok,
    /// Refused for load, with the reason its message gave.
    Shed(String),
    Error,
}

/// The reason in a refusal's message — Docket's says "overloaded (…)" —
/// with its figures blanked, so refusals for one reason count together.
fn shed_reason(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = v["error"]["message"].as_str().unwrap_or("(no message)");
    let reason = message
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map_or(message, |(reason, _)| reason);
    let mut out = String::new();
    for c in reason.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('N') {
            out.push('N');
        }
    }
    out
}

/// Peak resident memory (`VmHWM`) from a `/proc/…/status` file, MiB.
fn peak_rss_mib(status: &str) -> Option<f64> {
    let status = std::fs::read_to_string(status).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let upstream = match &args.upstream {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => start_upstream().await?,
    };
    let dir = tempfile::tempdir()?;
    let (through, key, server) = match &args.through {
        Some(url) => (
            url.trim_end_matches('/').to_owned(),
            args.through_key.clone().unwrap_or_default(),
            None,
        ),
        None => {
            let (base, boot, server) = if args.spawn_server {
                spawn_server(
                    args.docket.as_deref(),
                    &upstream,
                    dir.path(),
                    args.server_cpus.as_deref(),
                    args.server_config.as_deref(),
                )?
            } else {
                start_in_process(&upstream, dir.path()).await?
            };
            let key = set_up(&base, &boot, &args.model).await?;
            (base, key, Some(server))
        }
    };
    let name = if args.through.is_some() {
        "proxy"
    } else {
        "docket"
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .build()?;
    let body = json!({
        "model": args.model,
        "messages": [{"role": "user", "content": "Summarise the ticket in one line please"}],
        "max_tokens": 32,
    });
    let via = format!("{through}/v1/chat/completions");
    let direct = format!("{upstream}/v1/chat/completions");
    // Warm both paths (connections, caches) before measuring.
    load(&http, &via, &key, &body, 200, 1).await;
    load(&http, &direct, "sk-upstream", &body, 200, 1).await;
    println!(
        "gateway overhead: POST /v1/chat/completions, non-streaming, open-loop at fixed rates, {}s each; {name} vs straight to the stand-in",
        args.seconds
    );
    let mut best = None;
    for &rate in &args.rates {
        let d = load(&http, &direct, "sk-upstream", &body, rate, args.seconds).await;
        let g = load(&http, &via, &key, &body, rate, args.seconds).await;
        let (mut d_times, d_err) = (d.ok, d.errors + d.shed.len() as u64);
        let (mut g_times, g_err, took) = (g.ok, g.errors + g.shed.len() as u64, g.took);
        if d_times.is_empty() || g_times.is_empty() {
            println!(
                "  {rate:>5}/s: no successful requests ({name} errors {g_err}, direct errors {d_err})"
            );
            break;
        }
        let achieved = g_times.len() as f64 / took.as_secs_f64();
        let (dp50, dp99) = (quantile(&mut d_times, 0.5), quantile(&mut d_times, 0.99));
        let (gp50, gp99) = (quantile(&mut g_times, 0.5), quantile(&mut g_times, 0.99));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "  {rate:>5}/s: {name} p50 {:.3} ms p99 {:.3} ms | direct p50 {:.3} ms p99 {:.3} ms | overhead p50 {:.3} ms p99 {:.3} ms | errors {name} {g_err} direct {d_err} | achieved {achieved:.0}/s",
            ms(gp50),
            ms(gp99),
            ms(dp50),
            ms(dp99),
            ms(gp50) - ms(dp50),
            ms(gp99) - ms(dp99),
        );
        for (why, n) in &g.why {
            println!("           refused {n}: {why}");
        }
        if g_err > 0 || achieved < rate as f64 * 0.95 {
            break;
        }
        best = Some(rate);
    }
    match best {
        Some(r) => println!("highest rate sustained without errors: {r}/s"),
        None => println!("no rate was sustained without errors"),
    }
    if args.overload {
        let rate = args
            .overload_rate
            .or(best.map(|r| r * 2))
            .context("no rate was sustained; give --overload-rate")?;
        let mut g = load(&http, &via, &key, &body, rate, args.seconds).await;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let offered = rate * args.seconds;
        println!(
            "overload: offered {rate}/s for {}s ({offered} calls): admitted {} ({:.0}/s), refused with Retry-After {}, other errors {}",
            args.seconds,
            g.ok.len(),
            g.ok.len() as f64 / g.took.as_secs_f64(),
            g.shed.len(),
            g.errors,
        );
        if !g.ok.is_empty() {
            println!(
                "  admitted p50 {:.3} ms p99 {:.3} ms",
                ms(quantile(&mut g.ok, 0.5)),
                ms(quantile(&mut g.ok, 0.99))
            );
        }
        if !g.shed.is_empty() {
            println!(
                "  refused p50 {:.3} ms p99 {:.3} ms",
                ms(quantile(&mut g.shed, 0.5)),
                ms(quantile(&mut g.shed, 0.99))
            );
        }
        for (why, n) in &g.why {
            println!("  refused {n}: {why}");
        }
        if let Some((mib, of)) = server.as_ref().and_then(Server::peak_rss_mib) {
            println!("  peak RSS of {of}: {mib:.0} MiB");
        }
    }
    if let Some(server) = server {
        server.stop().await?;
    }
    Ok(())
}
