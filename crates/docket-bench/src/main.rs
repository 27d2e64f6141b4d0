//! `docket-bench`: Docket's benchmarks and the stand-in model provider,
//! kept out of the shipped `docket` binary. Each benchmark prints its
//! figures (medians and tails) and the process's peak memory; none
//! asserts a time. Run as `cargo run --release -p docket-bench -- …`.
//!
//! - `append`: durable appends through the group-commit ledger with 1, 16
//!   and 256 concurrent writers, on SQLite or PostgreSQL.
//! - `build`: a synthetic year of traffic (10 M entries by default) in a
//!   data directory, for the read benchmarks.
//! - `read`: inclusion and consistency proofs and the audit queries through
//!   the HTTP API of a server started on that data directory.
//! - `evidence`, `http`, `auth`, `checkpoint-latency`: see their `--help`.
//! - `policy`, `gateway`: decision time in-process, and the gateway's
//!   overhead against the stand-in provider (`gateway.rs`).
//! - `upstream`: the stand-in OpenAI/Anthropic provider on its own
//!   (`docket_bench::upstream`).

mod gateway;
mod ledger;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use docket_bench::upstream;

// The allocator of the `docket` binary, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "docket-bench",
    version,
    about = "Docket's benchmarks, and the stand-in model provider"
)]
enum Command {
    /// Durable append throughput and acknowledgement latency.
    Append {
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: BackendArg,
        #[arg(long, env = "DOCKET_BENCH_POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
        /// Concurrent writers, comma-separated.
        #[arg(long, default_value = "1,16,256", value_delimiter = ',')]
        writers: Vec<usize>,
        /// Seconds per writer count.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Approximate canonical body size in bytes.
        #[arg(long, default_value_t = 700)]
        body_bytes: usize,
        /// Entries per append call (1 = one acknowledged entry at a time, as the gateway does).
        #[arg(long, default_value_t = 1)]
        batch: usize,
    },
    /// Build a synthetic year of traffic in a data directory.
    Build {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 10_000_000)]
        entries: u64,
        #[arg(long, default_value_t = 700)]
        body_bytes: usize,
    },
    /// Evidence export and offline verification over a built data
    /// directory: the whole log as one window, each run timed.
    Evidence {
        #[arg(long)]
        data_dir: PathBuf,
        /// Runs of each (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Proofs and queries through the HTTP API over a built data directory.
    Read {
        #[arg(long)]
        data_dir: PathBuf,
        /// Requests per measured operation.
        #[arg(long, default_value_t = 1000)]
        samples: usize,
    },
    /// Appends over HTTP to a running server, one entry per request.
    Http {
        /// Base URL of the Docket server.
        #[arg(long, env = "DOCKET_SERVER", default_value = "http://127.0.0.1:7373")]
        server: String,
        /// A token that may append entries.
        #[arg(long, env = "DOCKET_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long, default_value = "16,256", value_delimiter = ',')]
        writers: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 700)]
        body_bytes: usize,
    },
    /// Authentication of a request's token, in process: what every request
    /// pays before its handler runs (no database round trip).
    Auth {
        /// Registered agents, each with one API key and one session key.
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        /// Token checks per thread.
        #[arg(long, default_value_t = 500_000)]
        requests: usize,
        /// Threads checking tokens at once.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Acknowledgement-to-checkpoint latency under load.
    CheckpointLatency {
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        writers: usize,
    },
    /// A stand-in model provider (OpenAI and Anthropic wire formats) for
    /// gateway tests and benchmarks; prints its address and serves until killed.
    Upstream {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// The key clients must present; any key when unset.
        #[arg(long, env = "DOCKET_UPSTREAM_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Requests kept for `GET /_standin/requests`.
        #[arg(long, default_value_t = 100)]
        keep_requests: usize,
    },
    /// Policy decision time in-process: kill switches, scope, Cedar and limits.
    Policy {
        /// Policy set sizes, comma-separated.
        #[arg(long, default_value = "100,1000", value_delimiter = ',')]
        policies: Vec<usize>,
        #[arg(long, default_value_t = 200_000)]
        decisions: usize,
    },
    /// Gateway overhead: latency through Docket minus latency straight to
    /// the same stand-in upstream, at fixed request rates.
    Gateway(gateway::GatewayArgs),
}

#[derive(Copy, Clone, Debug, clap::ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
}

fn main() -> ExitCode {
    match run(Command::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cmd {
        Command::Append {
            backend,
            postgres_url,
            writers,
            seconds,
            body_bytes,
            batch,
        } => rt.block_on(ledger::append(
            backend,
            postgres_url,
            &writers,
            seconds,
            body_bytes,
            batch,
        ))?,
        Command::Build {
            data_dir,
            entries,
            body_bytes,
        } => ledger::build(&data_dir, entries, body_bytes)?,
        Command::Read { data_dir, samples } => rt.block_on(ledger::read(&data_dir, samples))?,
        Command::Evidence { data_dir, runs } => ledger::evidence(&data_dir, runs)?,
        Command::Http {
            server,
            token,
            writers,
            seconds,
            body_bytes,
        } => rt.block_on(ledger::http(&server, &token, &writers, seconds, body_bytes))?,
        Command::Auth {
            agents,
            requests,
            threads,
        } => rt.block_on(ledger::auth(agents, requests, threads))?,
        Command::CheckpointLatency { seconds, writers } => {
            rt.block_on(ledger::checkpoint_latency(seconds, writers))?
        }
        Command::Upstream {
            listen,
            api_key,
            keep_requests,
        } => {
            return rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                eprintln!(
                    "stand-in upstream listening on http://{}",
                    listener.local_addr()?
                );
                upstream::serve(
                    listener,
                    upstream::UpstreamConfig {
                        api_key,
                        keep_requests,
                    },
                    async {
                        let _ = tokio::signal::ctrl_c().await;
                    },
                )
                .await?;
                Ok(ExitCode::SUCCESS)
            });
        }
        Command::Policy {
            policies,
            decisions,
        } => gateway::policy(&policies, decisions)?,
        Command::Gateway(args) => rt.block_on(gateway::gateway(args))?,
    }
    print_memory();
    Ok(ExitCode::SUCCESS)
}

/// Median, p99 and max of a sample, in the unit given.
pub(crate) fn summary(mut xs: Vec<Duration>, unit: &str) -> String {
    if xs.is_empty() {
        return "no samples".into();
    }
    xs.sort_unstable();
    let q = |p: f64| xs[((xs.len() as f64 - 1.0) * p).round() as usize];
    let f = |d: Duration| match unit {
        "µs" => format!("{:.0} µs", d.as_secs_f64() * 1e6),
        "ms" => format!("{:.2} ms", d.as_secs_f64() * 1e3),
        _ => format!("{:.3} s", d.as_secs_f64()),
    };
    format!(
        "p50 {}  p99 {}  max {}  (n = {})",
        f(q(0.5)),
        f(q(0.99)),
        f(q(1.0)),
        xs.len()
    )
}

fn print_memory() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l[name.len()..].trim().to_owned())
                .unwrap_or_default()
        };
        println!(
            "memory: RSS {}  peak RSS {} (whole bench process, server and load generator together)",
            field("VmRSS:"),
            field("VmHWM:")
        );
    }
}
