//! The verifier's command line, shared by `docket verify PACK` and the
//! standalone `docket-verify`.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use docket_core::LogVerifier;

use crate::verify::{Outcome, verify_pack};

/// Reads a log key given inline (`origin+id+base64`) or as a file holding it.
pub fn load_key(key: &str) -> Result<LogVerifier, String> {
    let text = if Path::new(key).is_file() {
        std::fs::read_to_string(key).map_err(|e| format!("reading key file {key}: {e}"))?
    } else {
        key.to_owned()
    };
    LogVerifier::new(text.trim())
        .map_err(|e| format!("the log key {:?} is not a verifier key: {e}", text.trim()))
}

/// Verifies `pack` and prints the outcome; returns the exit code
/// (0 verified, 1 a check failed, 2 the pack or key could not be read).
pub fn verify_command(pack: &Path, key: &str, json: bool) -> i32 {
    let key = match load_key(key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let file = match File::open(pack) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: opening {}: {e}", pack.display());
            return 2;
        }
    };
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal() && !json;
    let mut last = Instant::now();
    let mut progress = |done: u64, total: u64| {
        if tty && last.elapsed().as_millis() >= 200 {
            last = Instant::now();
            eprint!("\rverifying entries: {done}/{total}");
            let _ = std::io::stderr().flush();
        }
    };
    let outcome = verify_pack(BufReader::with_capacity(1 << 20, file), &key, &mut progress);
    if tty {
        eprint!("\r\x1b[2K");
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {}: {e}", pack.display());
            return 2;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        );
    } else {
        print_outcome(pack, &outcome, started.elapsed().as_secs_f64());
    }
    if outcome.ok { 0 } else { 1 }
}

fn print_outcome(pack: &Path, o: &Outcome, secs: f64) {
    if let Some(w) = &o.window {
        println!(
            "pack {} from log {}\nwindow {} .. {} (entries [{}, {}) of a tree of {}){}",
            pack.display(),
            o.origin,
            w.from,
            w.to,
            w.first_seq,
            w.end_seq,
            o.tree_size,
            w.project
                .as_deref()
                .map(|p| format!(", project {p}"))
                .unwrap_or_default()
        );
    }
    println!(
        "{} entries checked ({} withheld as leaf hashes) in {secs:.2} s",
        o.entries, o.withheld
    );
    for w in &o.warnings {
        println!("warning: {w}");
    }
    if o.ok {
        println!(
            "OK: manifest signature, file hashes, checkpoint, range proof, chain and times verified; re-derived from the entries: {}",
            o.rederived.join(", ")
        );
    } else {
        println!("FAILED: {} problem(s)", o.problems.len());
        for p in &o.problems {
            println!("  [{}] {}: {}", p.check, p.location, p.detail);
        }
    }
}

/// `sample PACK --criterion C --n N --seed S`: verifies, then samples.
pub fn sample_command(
    pack: &Path,
    key: &str,
    criterion: &str,
    n: usize,
    seed: &str,
    json: bool,
) -> i32 {
    let k = match load_key(key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let open = || File::open(pack).map(|f| BufReader::with_capacity(1 << 20, f));
    let verified = open()
        .map_err(|e| e.to_string())
        .and_then(|f| verify_pack(f, &k, &mut |_, _| {}));
    match verified {
        Ok(o) if o.ok => {}
        Ok(o) => {
            eprintln!("error: the pack does not verify; sampling refused:");
            for p in &o.problems {
                eprintln!("  [{}] {}: {}", p.check, p.location, p.detail);
            }
            return 1;
        }
        Err(e) => {
            eprintln!("error: {}: {e}", pack.display());
            return 2;
        }
    }
    let sample = open()
        .map_err(|e| e.to_string())
        .and_then(|f| crate::sample::sample(f, criterion, n, seed));
    match sample {
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
        Ok(s) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                println!(
                    "{}: {} of {} entries, seed {:?}",
                    s.criterion,
                    s.items.len(),
                    s.population,
                    s.seed
                );
                for i in &s.items {
                    println!("- seq {} {} at {}", i.seq, i.kind, i.ts);
                    if let Some(a) = &i.agent {
                        println!(
                            "    agent {} ({}) owner {} status {}",
                            a["id"].as_str().unwrap_or("?"),
                            a["did"].as_str().unwrap_or("?"),
                            a["owner"].as_str().unwrap_or("?"),
                            a["status"].as_str().unwrap_or("?")
                        );
                    }
                    if let Some(h) = &i.human {
                        println!(
                            "    human {} kyc {}",
                            h["id"].as_str().unwrap_or("?"),
                            h["kyc"]["status"].as_str().unwrap_or("?")
                        );
                    }
                    if let Some(d) = &i.decision {
                        let b = &d["body"];
                        println!(
                            "    decision seq {}: {} at stage {} ({})",
                            d["seq"],
                            b["outcome"].as_str().unwrap_or("?"),
                            b["stage"].as_str().unwrap_or("?"),
                            b["reason"].as_str().unwrap_or("")
                        );
                    }
                    if let Some(p) = &i.policy {
                        println!(
                            "    policy version {} sha256 {}",
                            p["version"],
                            p["sha256"].as_str().unwrap_or("?")
                        );
                    }
                    if let Some(r) = &i.receipt {
                        println!("    receipt seq {}", r["seq"]);
                    }
                    for a in &i.approvals {
                        println!("    {} seq {}", a["type"].as_str().unwrap_or("?"), a["seq"]);
                    }
                }
            }
            0
        }
    }
}
