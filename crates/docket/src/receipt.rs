//! `docket receipt get SEQ` and `docket receipt verify FILE --key PUB` (offline).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use docket_core::{LogVerifier, Receipt};

use crate::client::Client;
use crate::{ServerArgs, read_key_arg};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Fetch the receipt of one entry from a running server.
    Get {
        seq: u64,
        #[command(flatten)]
        server: ServerArgs,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify a receipt offline with the log's public key alone.
    Verify {
        file: PathBuf,
        /// The log's public key (`origin+id+base64`, or a file holding it).
        #[arg(long)]
        key: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Get { seq, server, out } => {
            let client = Client::new(&server)?;
            let receipt: serde_json::Value = client.get(&format!("/api/v1/receipts/{seq}"))?;
            let text = serde_json::to_string_pretty(&receipt)? + "\n";
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { file, key, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let verifier = LogVerifier::new(&read_key_arg(&key)?).context("--key")?;
            let result = Receipt::from_json(&bytes).and_then(|r| r.verify(&verifier));
            match result {
                Ok(v) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "ok": true, "seq": v.entry.seq.0, "type": v.entry.kind.as_str(),
                                "ts": v.entry.ts.to_string(), "tree_size": v.checkpoint.size,
                                "root": v.checkpoint.root.to_string(), "origin": verifier.origin(),
                            })
                        );
                    } else {
                        println!(
                            "ok: entry {} ({}, {}) is in {} at tree size {} under a valid signature",
                            v.entry.seq,
                            v.entry.kind,
                            v.entry.ts,
                            verifier.origin(),
                            v.checkpoint.size
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"ok": false, "problem": e.to_string()})
                        );
                    } else {
                        println!("FAILED: {e}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
