//! `docket verify`: re-checks a whole log — a data directory, or a running
//! server through its API — against the log's public key. Exits 0 when
//! everything holds, 1 naming the first bad `seq` when something does not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use docket_core::{Hash, LogVerifier, Timestamp};
use docket_server::Config;
use docket_store::{
    BackendSource, LeafTile, LogSource, StoreError, StoredCheckpoint, TileRow, VerifyOptions,
    verify_log,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::client::Client;
use crate::{ServerArgs, read_key_arg};

#[derive(clap::Args)]
pub struct Args {
    /// An evidence pack (.zip) to verify offline, instead of a whole log;
    /// needs --key.
    #[arg(conflicts_with_all = ["data_dir", "config", "server", "bodies"])]
    pack: Option<PathBuf>,
    /// Data directory to verify (the default, unless --server is given).
    #[arg(long, conflicts_with = "server")]
    data_dir: Option<PathBuf>,
    /// Configuration file, for a log kept in PostgreSQL.
    #[arg(long, conflicts_with = "server")]
    config: Option<PathBuf>,
    /// Verify a running server through its API instead of a data directory.
    #[arg(long)]
    server: Option<String>,
    #[arg(long, env = "DOCKET_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The log's public key (`origin+id+base64`, or a file holding it).
    /// Defaults to the data directory's log.pub, or the server's own claim.
    #[arg(long)]
    key: Option<String>,
    /// Also re-canonicalize every entry body (slower).
    #[arg(long)]
    bodies: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(pack) = &args.pack {
        let Some(key) = &args.key else {
            bail!(
                "verifying a pack needs the log's public key: --key origin+id+base64 (or a file)"
            );
        };
        let code = docket_evidence::cli::verify_command(pack, key, args.json);
        return Ok(ExitCode::from(code as u8));
    }
    let options = VerifyOptions {
        check_bodies: args.bodies,
        skip_writers: false,
    };
    let (outcome, origin) = if let Some(server) = &args.server {
        let client = Client::new(&ServerArgs {
            server: server.clone(),
            token: args.token.clone(),
        })?;
        let info: serde_json::Value = client.get("/api/v1/log")?;
        let key = match &args.key {
            Some(k) => read_key_arg(k)?,
            None => {
                eprintln!(
                    "note: trusting the server's own public key; pass --key to pin the log's key"
                );
                info["public_key"].as_str().unwrap_or_default().to_owned()
            }
        };
        let verifier = LogVerifier::new(&key).context("--key")?;
        let total = info["size"].as_u64().unwrap_or(0);
        let source = HttpSource { client };
        (
            walk(&source, &verifier, &options, total, args.json),
            verifier.origin().to_owned(),
        )
    } else {
        let mut config = Config::load(args.config.as_deref())?;
        if let Some(d) = &args.data_dir {
            config.data_dir = d.clone();
        }
        if !config.data_dir.is_dir() {
            bail!(
                "data directory {} does not exist",
                config.data_dir.display()
            );
        }
        let key = match &args.key {
            Some(k) => read_key_arg(k)?,
            None => {
                std::fs::read_to_string(config.data_dir.join(docket_server::init::PUBLIC_KEY_FILE))
                    .context("reading the data directory's log.pub (or pass --key)")?
                    .trim()
                    .to_owned()
            }
        };
        let verifier = LogVerifier::new(&key).context("--key")?;
        let backend = docket_server::init::open_backend(&config)?;
        let total = backend
            .last_entry()?
            .and_then(|b| docket_core::Entry::decode(&b).ok())
            .map_or(0, |e| e.seq.0 + 1);
        let source = BackendSource(backend.as_ref());
        (
            walk(&source, &verifier, &options, total, args.json),
            verifier.origin().to_owned(),
        )
    };
    match outcome {
        Ok((report, secs)) => {
            let rate = report.entries as f64 / secs.max(1e-9);
            let writes = report.writes.clone().unwrap_or_default();
            let clean = writes.total == 0 && writes.unrecorded_total == 0;
            let listed = |f: &[docket_core::writers::WriteFinding]| {
                f.iter()
                    .map(|f| serde_json::json!({"seq": f.seq, "problem": f.problem}))
                    .collect::<Vec<_>>()
            };
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": clean, "origin": origin, "entries": report.entries,
                        "checkpoints": report.checkpoints, "tiles": report.tiles,
                        "root": report.root.to_string(), "seconds": secs, "entries_per_second": rate,
                        "integrity": "ok",
                        "writer_findings": {"total": writes.total, "listed": listed(&writes.findings)},
                        "unrecorded_outcomes": {"total": writes.unrecorded_total, "listed": listed(&writes.unrecorded)},
                    })
                );
            } else {
                let verdict = if clean { "ok" } else { "FAILED" };
                println!(
                    "{verdict}: {} entries, {} checkpoints and {} tiles of {origin} verify; root {} ({:.2} s, {:.0} entries/s)",
                    report.entries, report.checkpoints, report.tiles, report.root, secs, rate
                );
                print_findings(
                    "entries break the write table (who may write each type)",
                    writes.total,
                    &writes.findings,
                );
                print_findings(
                    "calls were forwarded with no receipt of their outcome",
                    writes.unrecorded_total,
                    &writes.unrecorded,
                );
            }
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(failure) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "origin": origin, "failure": {"seq": failure.seq, "problem": failure.problem}})
                );
            } else {
                println!("FAILED: {failure}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints `total` findings under `what`, those listed by `seq`.
fn print_findings(what: &str, total: u64, listed: &[docket_core::writers::WriteFinding]) {
    if total == 0 {
        return;
    }
    println!("{total} {what}:");
    for f in listed {
        println!("  seq {}: {}", f.seq, f.problem);
    }
    if total > listed.len() as u64 {
        println!("  … and {} more", total - listed.len() as u64);
    }
}

fn walk(
    source: &dyn LogSource,
    key: &LogVerifier,
    options: &VerifyOptions,
    total: u64,
    quiet: bool,
) -> Result<(docket_store::VerifyReport, f64), docket_store::VerifyFailure> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let result = verify_log(source, key, options, &|n| bar.set_position(n));
    bar.finish_and_clear();
    result.map(|r| (r, started.elapsed().as_secs_f64()))
}

/// A running server as a [`LogSource`]: entries and checkpoints through the
/// API. It serves no tiles, so the walk rests on the chain and the signed
/// checkpoints alone.
struct HttpSource {
    client: Client,
}

#[derive(Deserialize)]
struct PageJson {
    entries: Vec<ItemJson>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ItemJson {
    seq: u64,
    entry: Box<RawValue>,
}

#[derive(Deserialize)]
struct CheckpointsJson {
    checkpoints: Vec<CheckpointJson>,
}

#[derive(Deserialize)]
struct CheckpointJson {
    size: u64,
    root: String,
    note: String,
    signed_at: String,
}

fn remote(e: anyhow::Error) -> StoreError {
    StoreError::Unavailable(format!("{e:#}"))
}

impl HttpSource {
    fn checkpoint(c: CheckpointJson) -> Result<StoredCheckpoint, StoreError> {
        Ok(StoredCheckpoint {
            size: c.size,
            root: Hash::parse_hash(&c.root).map_err(|_| {
                StoreError::Corrupt(format!("checkpoint {} root is malformed", c.size))
            })?,
            note: c.note,
            signed_at: Timestamp::parse_rfc3339(&c.signed_at).map_err(|_| {
                StoreError::Corrupt(format!("checkpoint {} time is malformed", c.size))
            })?,
        })
    }
}

impl LogSource for HttpSource {
    fn size(&self) -> Result<u64, StoreError> {
        let info: serde_json::Value = self.client.get("/api/v1/log").map_err(remote)?;
        info["size"]
            .as_u64()
            .ok_or_else(|| StoreError::Corrupt("the server's /log has no size".into()))
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        // A log with no checkpoint yet answers 404.
        if self.size()? == 0 {
            return Ok(None);
        }
        match self.client.get::<CheckpointJson>("/api/v1/checkpoint") {
            Ok(c) => Self::checkpoint(c).map(Some),
            Err(e) if format!("{e:#}").contains("404") => Ok(None),
            Err(e) => Err(remote(e)),
        }
    }

    fn entries(
        &self,
        _from: u64,
        to: u64,
        f: &mut dyn FnMut(Vec<(u64, Vec<u8>)>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/api/v1/entries?order=asc&limit=1000".to_owned();
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", crate::client::enc(c)));
            }
            let page: PageJson = self.client.get(&path).map_err(remote)?;
            let chunk: Vec<(u64, Vec<u8>)> = page
                .entries
                .into_iter()
                .filter(|i| i.seq < to)
                .map(|i| (i.seq, i.entry.get().as_bytes().to_vec()))
                .collect();
            let reached_end = chunk.last().is_some_and(|(s, _)| s + 1 >= to);
            if !chunk.is_empty() {
                f(chunk)?;
            }
            if reached_end {
                return Ok(());
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }

    fn leaf_tile(&self, _index: u64) -> Result<Option<LeafTile>, StoreError> {
        Ok(None)
    }

    fn upper_tiles(&self, _level: u8) -> Result<Option<Vec<TileRow>>, StoreError> {
        Ok(None)
    }

    fn checkpoints(
        &self,
        after_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let page: CheckpointsJson = self
            .client
            .get(&format!(
                "/api/v1/checkpoints?after_size={after_size}&limit={limit}"
            ))
            .map_err(remote)?;
        page.checkpoints.into_iter().map(Self::checkpoint).collect()
    }
}
