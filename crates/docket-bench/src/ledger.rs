//! The ledger's and the API's benchmarks: appends, a synthetic year,
//! reads and proofs over it, evidence export and verification, appends
//! over HTTP, token checks, and acknowledgement-to-checkpoint latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use docket_core::{EntryType, Timestamp};
use docket_server::Config;
use docket_server::config::BackendKind;
use docket_store::{Backend, Ledger, LedgerConfig, NewEntry};
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use serde_json::json;

use crate::{BackendArg, summary};

/// Registers `agents` agents with an API key and a session key each, then
/// times `Identity::authenticate` on `threads` threads at once.
pub(crate) async fn auth(agents: usize, requests: usize, threads: usize) -> anyhow::Result<()> {
    use docket_core::identity::event::{AccessRule, AgentRecord, ProjectRecord, UserRecord};
    use docket_core::identity::{Actor, CredentialKind, Did, Role, Scope};
    use docket_server::identity::{Identity, new_credential};

    let dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let opened = docket_server::init::open(&config)?;
    let ledger = Arc::new(Ledger::open(
        opened.backend.clone(),
        LedgerConfig::default(),
    )?);
    let l = ledger.clone();
    let identity = Arc::new(
        tokio::task::spawn_blocking(move || Identity::load(l, config.identity.clone())).await??,
    );
    let user = |id: &str, roles: Vec<Role>| UserRecord {
        id: id.parse().expect("static id"),
        name: id.into(),
        email: None,
        roles,
        disabled: false,
        kyc: Default::default(),
    };
    let (admin, approver) = (
        user("admin", vec![Role::Admin]),
        user("approver", vec![Role::Approver]),
    );
    let human = |u: &UserRecord| Actor::Human {
        user: u.id.clone(),
        credential: "benchbenchbench2".parse().expect("static id"),
    };
    let a = admin.clone();
    identity
        .commit(Actor::Bootstrap, move |r| r.plan_bootstrap(a))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let ap = approver.clone();
    identity
        .commit(human(&admin), move |r| r.plan_create_user(ap))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let scope = Scope {
        tools: ["search".to_owned()].into(),
        ..Scope::default()
    };
    let project = ProjectRecord {
        id: "bench".parse()?,
        name: "Bench".into(),
        members: vec![admin.id.clone()],
        rules: vec![AccessRule {
            agents: vec!["*".into()],
            allows: scope.clone(),
        }],
    };
    let classes = identity.data_classes.clone();
    identity
        .commit(human(&admin), move |r| {
            r.plan_create_project(project, &classes)
        })
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let mut tokens = Vec::with_capacity(agents * 2);
    for i in 0..agents {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let record = AgentRecord {
            id: format!("agent-{i}").parse()?,
            name: format!("Agent {i}"),
            owner: admin.id.clone(),
            project: "bench".parse()?,
            purpose: "benchmark".into(),
            scope: scope.clone(),
            did: Did::from_key(&key.verifying_key()),
            system_prompt_sha256: None,
            require_signature: false,
        };
        let agent = record.id.clone();
        let (admin_id, classes) = (admin.id.clone(), identity.data_classes.clone());
        let acks = identity
            .commit(human(&admin), move |r| {
                r.plan_request_agent(&admin_id, record, &classes)
            })
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let request = acks[0].0.seq.0;
        let approver_id = approver.id.clone();
        identity
            .commit(human(&approver), move |r| {
                r.plan_approve(&approver_id, request, Timestamp::now(), None)
            })
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let api = new_credential(CredentialKind::ApiKey, None, None, None);
        let (new, admin_id, ag) = (api.new.clone(), admin.id.clone(), agent.clone());
        identity
            .commit(human(&admin), move |r| r.plan_api_key(&admin_id, &ag, new))
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let expires = Timestamp::from_micros(Timestamp::now().as_micros() + 3_600_000_000);
        let session = new_credential(CredentialKind::Session, Some(expires), None, None);
        let new = session.new.clone();
        let actor = human(&admin);
        let act = actor.clone();
        identity
            .commit(actor, move |r| {
                r.plan_session(&act, &agent, "bench".into(), None, new)
            })
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        tokens.push(api.token.to_string());
        tokens.push(session.token.to_string());
    }
    println!(
        "auth: {} agents, {} credentials in the registry; {threads} threads × {requests} token checks",
        agents,
        identity.read().credentials.len()
    );
    let tokens = Arc::new(tokens);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (identity, tokens) = (identity.clone(), tokens.clone());
            std::thread::spawn(move || {
                let mut times = Vec::with_capacity(requests);
                for i in 0..requests {
                    let token = &tokens[(i * 7 + t) % tokens.len()];
                    let now = Timestamp::now();
                    let t0 = Instant::now();
                    let ok = identity.authenticate(token, now).is_ok();
                    times.push(t0.elapsed());
                    assert!(ok, "a live token was refused");
                }
                times
            })
        })
        .collect();
    let mut all = Vec::with_capacity(threads * requests);
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("bench thread panicked"))?,
        );
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let q = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6;
    println!(
        "  per check: p50 {:.2} µs  p99 {:.2} µs  p99.9 {:.2} µs  max {:.1} µs; {:.0} checks/s in all",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0),
        all.len() as f64 / secs
    );
    ledger.close();
    Ok(())
}

const AGENTS: usize = 200;
const HUMANS: usize = 60;
const PROJECTS: [&str; 8] = [
    "billing", "support", "sales", "ops", "research", "legal", "hr", "growth",
];
const MODELS: [(&str, &str); 6] = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4"),
    ("anthropic", "claude-haiku-4"),
    ("google", "gemini-2.5-pro"),
    ("mistral", "mistral-large"),
];
const TOOLS: [&str; 6] = [
    "crm.lookup",
    "email.send",
    "sql.query",
    "web.fetch",
    "tickets.update",
    "files.read",
];

pub fn agent_name(i: usize) -> String {
    format!("bench-agent-{i:04}")
}

/// Agent `i`'s actor as the server stamps it: its DID (from a key fixed by
/// `i`) and one of its credentials.
fn agent_actor(i: usize, credential: &str) -> serde_json::Value {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    let did = docket_core::identity::Did::from_key(
        &ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key(),
    );
    json!({
        "kind": "agent", "agent": agent_name(i), "did": did, "credential": credential,
        "human_assurance": "asserted",
    })
}

/// A realistic receipt body of about `size` canonical bytes, as the JSON
/// bytes a client would send.
fn receipt_json(rng: &mut impl Rng, size: usize) -> Vec<u8> {
    let agent = rng.gen_range(0..AGENTS);
    let (provider, model) = MODELS[agent % MODELS.len()];
    let mut classes = Vec::new();
    if rng.gen_bool(0.3) {
        classes.push("customer_data");
    }
    if rng.gen_bool(0.1) {
        classes.push("pii");
    }
    let tool = rng
        .gen_bool(0.4)
        .then(|| TOOLS[rng.gen_range(0..TOOLS.len())]);
    // An agent's own account of a call, as `POST /entries` stores it.
    let credential = format!("{:016x}", rng.r#gen::<u64>());
    let mut body = json!({
        "actor": agent_actor(agent, &credential),
        "source": "agent_reported",
        "agent": agent_name(agent),
        "human": format!("user-{:03}", rng.gen_range(0..HUMANS)),
        "project": PROJECTS[agent % PROJECTS.len()],
        "provider": provider,
        "model": model,
        "tool": tool,
        "outcome": if rng.gen_bool(0.95) { "ok" } else { "error" },
        "data_classes": classes,
        "credential": credential,
        "request_digest": format!("sha256:{:064x}", rng.r#gen::<u128>()),
        "response_digest": format!("sha256:{:064x}", rng.r#gen::<u128>()),
        "input_tokens": rng.gen_range(10..4000),
        "output_tokens": rng.gen_range(10..2000),
        "cost_micro_usd": rng.gen_range(10..50_000),
        "latency_ms": rng.gen_range(50..5000),
        "upstream_status": 200,
        "decision_seq": rng.r#gen::<u32>(),
        "policy_version": "v12",
    });
    let so_far = body.to_string().len();
    if size > so_far + 12 {
        body["padding"] = json!("p".repeat(size - so_far - 12));
    }
    serde_json::to_vec(&body).expect("serializable")
}

/// What the server does with a request body: parse, canonicalize, index.
fn prepare(json: &[u8]) -> NewEntry {
    let body: serde_json::Value = serde_json::from_slice(json).expect("bench body is JSON");
    NewEntry::new(EntryType::Receipt, &body).expect("bench body is valid")
}

fn receipt(rng: &mut impl Rng, size: usize) -> NewEntry {
    prepare(&receipt_json(rng, size))
}

/// Distinct request bodies per writer, generated before timing starts so
/// the figures measure the ledger's work, not the load generator's.
const BODIES_PER_WRITER: usize = 64;

fn open_backend(
    kind: BackendArg,
    url: Option<&str>,
    dir: &std::path::Path,
) -> anyhow::Result<Arc<dyn Backend>> {
    let mut config = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    if let BackendArg::Postgres = kind {
        config.storage.backend = BackendKind::Postgres;
        config.storage.postgres_url = Some(SecretString::from(
            url.context("--postgres-url (or DOCKET_BENCH_POSTGRES_URL) is required")?
                .to_owned(),
        ));
    }
    std::fs::create_dir_all(dir)?;
    Ok(docket_server::init::open_backend(&config)?)
}

pub(crate) async fn append(
    kind: BackendArg,
    url: Option<String>,
    writers: &[usize],
    seconds: u64,
    body_bytes: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The PostgreSQL client blocks: open off the async workers.
    let path = dir.path().to_owned();
    let ledger = tokio::task::spawn_blocking(move || -> anyhow::Result<Ledger> {
        let backend = open_backend(kind, url.as_deref(), &path)?;
        Ok(Ledger::open(backend, LedgerConfig::default())?)
    })
    .await??;
    let ledger = Arc::new(ledger);
    println!(
        "append: {kind:?}, ~{body_bytes}-byte receipt bodies, {seconds} s per writer count, durable on ack"
    );
    for &n in writers {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let start_size = ledger.size();
        let started = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|w| {
                let (ledger, stop, count) = (ledger.clone(), stop.clone(), count.clone());
                tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
                    let bodies: Vec<Vec<u8>> = (0..BODIES_PER_WRITER)
                        .map(|_| receipt_json(&mut rng, body_bytes))
                        .collect();
                    let mut next = bodies.iter().cycle();
                    let mut lat = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let es: Vec<NewEntry> = (0..batch)
                            .map(|_| prepare(next.next().expect("cycle")))
                            .collect();
                        let t = Instant::now();
                        ledger.append(es).await.expect("append");
                        lat.push(t.elapsed());
                        count.fetch_add(batch as u64, Ordering::Relaxed);
                    }
                    lat
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await?);
        }
        let secs = started.elapsed().as_secs_f64();
        let done = ledger.size() - start_size;
        println!(
            "  {n:>4} writers: {:>8.0} entries/s ({done} entries in {secs:.1} s); ack latency {}",
            done as f64 / secs,
            summary(lat, "ms")
        );
    }
    let l = ledger.clone();
    tokio::task::spawn_blocking(move || l.close()).await?;
    Ok(())
}

/// Writes `entries` receipts spread evenly over the 365 days before now.
pub(crate) fn build(
    data_dir: &std::path::Path,
    entries: u64,
    body_bytes: usize,
) -> anyhow::Result<()> {
    let config = Config {
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    let opened = docket_server::init::open(&config)?;
    if let Some(token) = &opened.new_admin_token {
        std::fs::write(data_dir.join("bench-admin-token"), token.as_bytes())?;
    }
    let start = Timestamp::now().as_micros() - 365 * 86_400 * 1_000_000;
    let step = (365 * 86_400 * 1_000_000) / entries.max(1) as i64;
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let clock = Arc::new(move || {
        Timestamp::from_micros(start + step * w.fetch_add(1, Ordering::Relaxed) as i64)
    });
    let ledger = Arc::new(Ledger::open(
        opened.backend.clone(),
        LedgerConfig {
            clock,
            ..LedgerConfig::default()
        },
    )?);
    let have = ledger.size();
    written.store(have, Ordering::Relaxed);
    let bar = indicatif::ProgressBar::new(entries);
    bar.set_position(have);
    let started = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(have);
    let batch = 2000u64;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Keep a few batches in flight so generating bodies overlaps commits.
        let mut pending = std::collections::VecDeque::new();
        let mut next = have;
        while next < entries {
            let n = batch.min(entries - next);
            let es: Vec<NewEntry> = (0..n).map(|_| receipt(&mut rng, body_bytes)).collect();
            let l = ledger.clone();
            pending.push_back(tokio::spawn(async move { l.append(es).await }));
            next += n;
            bar.set_position(next);
            while pending.len() > 4 {
                pending.pop_front().expect("nonempty").await??;
            }
        }
        for p in pending {
            p.await??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let signer = opened.signer;
    ledger.checkpoint(&signer)?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "build: {} entries in {secs:.1} s ({:.0} entries/s) in {}",
        ledger.size(),
        (ledger.size() - have) as f64 / secs,
        data_dir.display()
    );
    ledger.close();
    Ok(())
}

/// Peak resident memory since the last [`reset_peak`], in MiB (Linux).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the kernel's peak-RSS mark to the current RSS (Linux >= 4.0).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Exports the whole built log as one pack and verifies it, `runs` times.
pub(crate) fn evidence(data_dir: &std::path::Path, runs: usize) -> anyhow::Result<()> {
    let config = Config {
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    let opened = docket_server::init::open(&config)?;
    let ledger = Ledger::open(opened.backend.clone(), LedgerConfig::default())?;
    let size = ledger.size();
    anyhow::ensure!(size > 0, "the log is empty: run `docket-bench build` first");
    let first = ledger.entry(0)?.ts;
    let last = ledger.entry(size - 1)?.ts;
    let req = docket_server::evidence::ExportRequest {
        from: first,
        to: Timestamp::from_micros(last.as_micros() + 1),
        project: None,
    };
    let key = opened.signer.verifier();
    println!(
        "evidence: {size} entries in {}, one window, {runs} runs",
        data_dir.display()
    );
    let dir = tempfile::tempdir_in(data_dir)?;
    let (mut export, mut verify) = (Vec::new(), Vec::new());
    let (mut export_mem, mut verify_mem, mut bytes) = (0f64, 0f64, 0u64);
    for run in 0..runs {
        let path = dir.path().join(format!("pack-{run}.zip"));
        let file = std::fs::File::create(&path)?;
        reset_peak();
        let t = Instant::now();
        let (file, manifest) = docket_server::evidence::export(
            &ledger,
            &opened.signer,
            &req,
            std::io::BufWriter::with_capacity(1 << 20, file),
        )
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        drop(file);
        export.push(t.elapsed());
        export_mem = export_mem.max(peak_mib());
        anyhow::ensure!(
            manifest.entries == size,
            "exported {} of {size}",
            manifest.entries
        );
        bytes = std::fs::metadata(&path)?.len();
        reset_peak();
        let t = Instant::now();
        let outcome = docket_evidence::verify::verify_pack(
            std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?),
            &key,
            &mut |_, _| {},
        )
        .map_err(anyhow::Error::msg)?;
        verify.push(t.elapsed());
        verify_mem = verify_mem.max(peak_mib());
        anyhow::ensure!(
            outcome.ok,
            "the pack did not verify: {:?}",
            outcome.problems
        );
        std::fs::remove_file(&path)?;
    }
    let med = |mut xs: Vec<Duration>| {
        xs.sort_unstable();
        xs[xs.len() / 2]
    };
    let (e, v) = (med(export), med(verify));
    println!(
        "  export: median {:.2} s ({:.0} entries/s), peak RSS {export_mem:.0} MiB",
        e.as_secs_f64(),
        size as f64 / e.as_secs_f64()
    );
    println!(
        "  verify: median {:.2} s ({:.0} entries/s), peak RSS {verify_mem:.0} MiB",
        v.as_secs_f64(),
        size as f64 / v.as_secs_f64()
    );
    println!(
        "  pack: {bytes} bytes, {:.1} bytes per entry",
        bytes as f64 / size as f64
    );
    ledger.close();
    Ok(())
}

/// The bench admin's personal token: on the first run the bootstrap token
/// creates the admin, and the personal token replaces it in the file.
async fn bench_admin(
    http: &reqwest::Client,
    base: &str,
    data_dir: &std::path::Path,
    token: &str,
) -> anyhow::Result<String> {
    if !token.starts_with("dkt_") {
        return Ok(token.to_owned());
    }
    let r = http
        .post(format!("{base}/api/v1/bootstrap"))
        .bearer_auth(token)
        .json(&serde_json::json!({"id": "bench", "name": "Benchmark admin"}))
        .send()
        .await?
        .error_for_status()
        .context("creating the bench admin")?;
    let v: serde_json::Value = r.json().await?;
    let personal = v["token"]
        .as_str()
        .context("bootstrap answered without a token")?
        .to_owned();
    std::fs::write(data_dir.join("bench-admin-token"), &personal)?;
    Ok(personal)
}

pub(crate) async fn read(data_dir: &std::path::Path, samples: usize) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(data_dir.join("bench-admin-token")).context(
        "no bench-admin-token: build the data directory with `docket-bench build` first",
    )?;
    let config = Config {
        data_dir: data_dir.to_owned(),
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    let running = docket_server::start(config).await?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let token = bench_admin(&http, &base, data_dir, token.trim()).await?;
    let size = running.ledger.size();
    println!(
        "read: {size} entries in {}, through the HTTP API on loopback",
        data_dir.display()
    );
    let get = |path: String| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            let t = Instant::now();
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(token.trim())
                .send()
                .await?;
            let status = r.status();
            let body: serde_json::Value = r.json().await?;
            anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
            Ok::<_, anyhow::Error>((t.elapsed(), body))
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut lat = Vec::new();
    for _ in 0..samples {
        let seq = rng.gen_range(0..size);
        lat.push(
            get(format!("/api/v1/proofs/inclusion?seq={seq}&size={size}"))
                .await?
                .0,
        );
    }
    println!("  inclusion proof:   {}", summary(lat, "µs"));
    let mut lat = Vec::new();
    for _ in 0..samples {
        let seq = rng.gen_range(0..size);
        let l = running.ledger.clone();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || l.inclusion_proof(seq, size)).await??;
        lat.push(t.elapsed());
    }
    println!(
        "  inclusion proof, in-process (no HTTP): {}",
        summary(lat, "µs")
    );
    let mut lat = Vec::new();
    for _ in 0..samples {
        let old = rng.gen_range(1..size);
        lat.push(
            get(format!("/api/v1/proofs/consistency?old={old}&new={size}"))
                .await?
                .0,
        );
    }
    println!("  consistency proof: {}", summary(lat, "µs"));

    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let mut lat = Vec::new();
    let mut rows = 0;
    for i in 0..samples.min(200) {
        let month_start = now - time::Duration::days(30 * (1 + (i % 11) as i64));
        let q = format!(
            "/api/v1/entries?agent={}&from={}&to={}",
            agent_name(rng.gen_range(0..AGENTS)),
            fmt(month_start),
            fmt(month_start + time::Duration::days(30))
        );
        let (d, body) = get(q).await?;
        rows += body["entries"].as_array().map_or(0, Vec::len);
        lat.push(d);
    }
    println!(
        "  one agent, one month, first page:       {} ({rows} rows returned in all)",
        summary(lat, "ms")
    );
    let mut lat = Vec::new();
    let mut count = 0;
    for _ in 0..samples.min(20) {
        let q = format!(
            "/api/v1/entries?data_class=customer_data&days=mon-fri&hours=08:00-18:00&outside=true&from={}&count=true",
            fmt(now - time::Duration::days(365))
        );
        let (d, body) = get(q).await?;
        count = body["count"].as_u64().unwrap_or(0);
        lat.push(d);
    }
    println!(
        "  customer data off-hours, 12 months, count + first page: {} (count {count})",
        summary(lat, "ms")
    );
    running.stop().await?;
    Ok(())
}

pub(crate) async fn http(
    server: &str,
    token: &str,
    writers: &[usize],
    seconds: u64,
    body_bytes: usize,
) -> anyhow::Result<()> {
    let token = token.to_owned();
    let url = format!("{}/api/v1/entries", server.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    println!(
        "http: POST {url}, one ~{body_bytes}-byte receipt per request, {seconds} s per writer count"
    );
    for &n in writers {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|w| {
                let (http, url, token, stop) =
                    (http.clone(), url.clone(), token.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
                    let bodies: Vec<Vec<u8>> = (0..BODIES_PER_WRITER)
                        .map(|_| {
                            let body: serde_json::Value =
                                serde_json::from_slice(&receipt_json(&mut rng, body_bytes))
                                    .expect("json");
                            serde_json::to_vec(&json!({"type": "receipt", "body": body}))
                                .expect("json")
                        })
                        .collect();
                    let mut next = bodies.iter().cycle();
                    let (mut lat, mut errors) = (Vec::new(), 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let r = http
                            .post(&url)
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .body(next.next().expect("cycle").clone())
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                                lat.push(t.elapsed())
                            }
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut lat, mut errors) = (Vec::new(), 0);
        for t in tasks {
            let (l, e) = t.await?;
            lat.extend(l);
            errors += e;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  {n:>4} writers: {:>8.0} entries/s, {errors} errors; ack latency {}",
            lat.len() as f64 / secs,
            summary(lat, "ms")
        );
    }
    Ok(())
}

pub(crate) async fn checkpoint_latency(seconds: u64, writers: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    let running = docket_server::start(config).await?;
    let ledger = running.ledger.clone();
    let stop = Arc::new(AtomicBool::new(false));
    // Watch checkpoints: (size, first time seen), until every ack is covered.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (ledger, stop) = (ledger.clone(), watching.clone());
        tokio::spawn(async move {
            let mut seen: Vec<(u64, Instant)> = Vec::new();
            while stop.load(Ordering::Relaxed) {
                let l = ledger.clone();
                if let Ok(Ok(Some(cp))) =
                    tokio::task::spawn_blocking(move || l.latest_checkpoint()).await
                    && seen.last().is_none_or(|(s, _)| *s < cp.size)
                {
                    seen.push((cp.size, Instant::now()));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        })
    };
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (ledger, stop) = (ledger.clone(), stop.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
                let bodies: Vec<Vec<u8>> = (0..BODIES_PER_WRITER)
                    .map(|_| receipt_json(&mut rng, 700))
                    .collect();
                let mut next = bodies.iter().cycle();
                let mut acks = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let a = ledger
                        .append(vec![prepare(next.next().expect("cycle"))])
                        .await
                        .expect("append");
                    acks.push((a[0].seq.0, Instant::now()));
                }
                acks
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    // Let the writers stop, then give the checkpointer time to cover them.
    stop.store(true, Ordering::Relaxed);
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await?);
    }
    let last = acks.iter().map(|(s, _)| *s).max().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ledger.latest_checkpoint()?.is_none_or(|c| c.size <= last) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    watching.store(false, Ordering::Relaxed);
    let seen = watcher.await?;
    let mut lat = Vec::new();
    for (seq, at) in &acks {
        if let Some((_, t)) = seen.iter().find(|(s, _)| *s > *seq) {
            lat.push(t.saturating_duration_since(*at));
        }
    }
    println!(
        "checkpoint latency: {} entries from {writers} writers over {seconds} s, checkpoint interval 1 s; ack → covered: {}",
        acks.len(),
        summary(lat, "ms")
    );
    running.stop().await?;
    Ok(())
}
