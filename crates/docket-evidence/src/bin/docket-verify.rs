//! `docket-verify`: the offline evidence-pack verifier, standalone. Built
//! from `docket-core` and `docket-evidence` only:
//! `cargo build --release -p docket-evidence --bin docket-verify`.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  docket-verify PACK.zip --key KEY [--json]
  docket-verify sample PACK.zip --key KEY --criterion CC6.1 --n 25 --seed SEED [--json]
KEY is the log's verifier key (origin+id+base64) or a file holding it.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut positional = Vec::new();
    let mut opts = std::collections::BTreeMap::new();
    let mut json = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            flag @ ("--key" | "--criterion" | "--n" | "--seed") => {
                let Some(v) = args.get(i + 1) else {
                    eprintln!("error: {flag} needs a value\n{USAGE}");
                    return ExitCode::from(2);
                };
                opts.insert(flag.trim_start_matches('-').to_owned(), v.clone());
                i += 1;
            }
            other if other.starts_with("--") => {
                eprintln!("error: unknown option {other}\n{USAGE}");
                return ExitCode::from(2);
            }
            other => positional.push(other.to_owned()),
        }
        i += 1;
    }
    let Some(key) = opts.get("key") else {
        eprintln!("error: --key is required\n{USAGE}");
        return ExitCode::from(2);
    };
    let code = match positional.as_slice() {
        [cmd, pack] if cmd == "sample" => {
            let (Some(c), Some(n), Some(seed)) =
                (opts.get("criterion"), opts.get("n"), opts.get("seed"))
            else {
                eprintln!("error: sample needs --criterion, --n and --seed\n{USAGE}");
                return ExitCode::from(2);
            };
            let Ok(n) = n.parse::<usize>() else {
                eprintln!("error: --n {n:?} is not a number");
                return ExitCode::from(2);
            };
            docket_evidence::cli::sample_command(&PathBuf::from(pack), key, c, n, seed, json)
        }
        [pack] => docket_evidence::cli::verify_command(&PathBuf::from(pack), key, json),
        _ => {
            eprintln!("{USAGE}");
            2
        }
    };
    ExitCode::from(code as u8)
}
