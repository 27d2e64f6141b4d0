//! `docket serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use docket_server::Config;
use docket_server::config::LogFormat;

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file; `DOCKET_*` environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides the configuration).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on (overrides the configuration).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    init_tracing(config.log_format);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let running = docket_server::start(config.clone()).await?;
        eprintln!(
            "docket: serving {} on http://{}",
            running.log.origin, running.addr
        );
        eprintln!("docket: log public key {}", running.log.public_key);
        eprintln!("docket: data directory {}", config.data_dir.display());
        if let Some(token) = &running.new_admin_token {
            // Shown once: only its digest is stored.
            eprintln!(
                "docket: bootstrap token (shown once; it can only create the first admin): {}",
                token.as_str()
            );
            eprintln!(
                "docket: create the first admin: DOCKET_TOKEN=<that token> docket bootstrap --user <id> --name <name> --password-stdin"
            );
        }
        running
            .run_until(shutdown_signal())
            .await
            .context("serving")?;
        eprintln!("docket: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
