//! Times `PolicySet::decide` over the synthetic sets and prints p50/p99: `cargo run --release -p docket-policy --example decide [decisions] [sizes…]`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use docket_policy::{Outcome, PolicySet, bench};

// The allocator of the docket binary, whose `bench policy` these figures
// stand for; a decision allocates a lot, so glibc's malloc would mislead.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let decisions: usize = match args.next().map(|a| a.parse()) {
        None => 200_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("decisions: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut sizes: Vec<usize> = Vec::new();
    for arg in args {
        match arg.parse() {
            Ok(n) => sizes.push(n),
            Err(e) => {
                eprintln!("size {arg:?}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if sizes.is_empty() {
        sizes = vec![100, 1_000];
    }

    for n in sizes {
        let (text, requests) = bench::synthetic(n);
        let started = Instant::now();
        let set = match PolicySet::compile(&text) {
            Ok(set) => set,
            Err(e) => {
                eprintln!("synthetic({n}) does not compile: {e}");
                return ExitCode::FAILURE;
            }
        };
        let compile = started.elapsed();

        // Warm the caches and the allocator before counting.
        for request in requests.iter().take(1_000) {
            std::hint::black_box(set.decide(request));
        }
        let mut times = Vec::with_capacity(decisions);
        let mut outcomes = [0_usize; 3];
        for request in requests.iter().cycle().take(decisions) {
            let started = Instant::now();
            let decision = set.decide(std::hint::black_box(request));
            times.push(started.elapsed());
            outcomes[match decision.outcome {
                Outcome::Allow => 0,
                Outcome::Deny => 1,
                Outcome::RequireApproval => 2,
            }] += 1;
        }
        times.sort_unstable();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "{n:>5} policies: p50 {:>6.2} µs  p99 {:>6.2} µs  p99.9 {:>6.2} µs  max {:>7.2} µs  \
             ({decisions} decisions; allow {} deny {} approval {}; compile {:.1} ms)",
            micros(at(0.50)),
            micros(at(0.99)),
            micros(at(0.999)),
            micros(at(1.0)),
            outcomes[0],
            outcomes[1],
            outcomes[2],
            compile.as_secs_f64() * 1e3,
        );
    }
    ExitCode::SUCCESS
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
