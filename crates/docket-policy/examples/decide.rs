//! Times `PolicySet::decide` over the synthetic sets and prints p50/p99: `cargo run --release -p docket-policy --example decide [decisions] [sizes…]`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use docket_policy::{Outcome, PolicySet, Request, bench};

// The allocator of the docket binaries, whose `docket-bench policy` these figures
// stand for; a decision allocates a lot, so glibc's malloc would mislead.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let decisions: usize = match args.next().map(|a| a.parse()) {
        None => 200_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: decide [decisions > 0] [policy set sizes…]");
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
        println!(
            "{n} policies (compiled in {:.1} ms), {decisions} decisions:",
            started.elapsed().as_secs_f64() * 1e3
        );
        report("  agents seen before", time(&set, &requests, decisions));

        // The same requests, each from an agent whose entities are not
        // cached (an owner never seen), as after a restart or for an agent's
        // first calls.
        let unseen: Vec<Request> = requests
            .iter()
            .cycle()
            .take(decisions.min(50_000))
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.clone();
                r.principal.owner = format!("unseen-{i}");
                r
            })
            .collect();
        report("  agents never seen ", time(&set, &unseen, decisions));
    }
    ExitCode::SUCCESS
}

struct Timings {
    times: Vec<Duration>,
    outcomes: [usize; 3],
}

fn time(set: &PolicySet, requests: &[Request], decisions: usize) -> Timings {
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
    Timings { times, outcomes }
}

fn report(what: &str, t: Timings) {
    let at = |q: f64| {
        let i = ((t.times.len().saturating_sub(1)) as f64 * q) as usize;
        t.times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    println!(
        "{what}: p50 {:>6.2} µs  p99 {:>6.2} µs  p99.9 {:>7.2} µs  max {:>8.2} µs  \
         (allow {} deny {} approval {})",
        at(0.50),
        at(0.99),
        at(0.999),
        at(1.0),
        t.outcomes[0],
        t.outcomes[1],
        t.outcomes[2],
    );
}
