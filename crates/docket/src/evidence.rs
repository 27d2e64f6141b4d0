//! `docket evidence export|sample`: evidence packs for auditors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::ServerArgs;
use crate::client::{Client, enc};

#[derive(Subcommand)]
pub enum Command {
    /// Download the signed evidence pack of a closed window from a running server.
    Export {
        #[command(flatten)]
        server: ServerArgs,
        /// Start of the window (RFC 3339, inclusive), e.g. 2026-10-01T00:00:00Z.
        #[arg(long)]
        from: String,
        /// End of the window (RFC 3339, exclusive); must have passed.
        #[arg(long)]
        to: String,
        /// Only this project's entries; others' appear as leaf hashes.
        #[arg(long)]
        project: Option<String>,
        /// Where to write the zip.
        #[arg(long)]
        out: PathBuf,
    },
    /// A reproducible random sample of the entries evidencing one criterion,
    /// each walked back to its receipt, agent, human, decision, policy and approval.
    Sample {
        pack: PathBuf,
        /// The log's public key (`origin+id+base64`, or a file holding it).
        #[arg(long)]
        key: String,
        /// e.g. CC6.1
        #[arg(long)]
        criterion: String,
        #[arg(long, default_value_t = 25)]
        n: usize,
        /// Any text; the same seed draws the same sample.
        #[arg(long)]
        seed: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Export {
            server,
            from,
            to,
            project,
            out,
        } => {
            let client = Client::new(&server)?;
            let mut path = format!(
                "/api/v1/evidence/export?from={}&to={}",
                enc(&from),
                enc(&to)
            );
            if let Some(p) = &project {
                path.push_str(&format!("&project={}", enc(p)));
            }
            let dir = out
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            let headers = client.download(&path, tmp.as_file_mut())?;
            tmp.as_file().sync_all()?;
            tmp.persist(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            let sha = headers
                .get("docket-manifest-sha256")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!(
                "wrote {} ({bytes} bytes), manifest sha256 {sha}",
                out.display()
            );
            println!(
                "verify offline with: docket verify {} --key <log public key>",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sample {
            pack,
            key,
            criterion,
            n,
            seed,
            json,
        } => Ok(ExitCode::from(docket_evidence::cli::sample_command(
            &pack, &key, &criterion, n, &seed, json,
        ) as u8)),
    }
}
