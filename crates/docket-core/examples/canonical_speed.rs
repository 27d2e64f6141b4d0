//! How long RFC 8785 canonicalization of a receipt body takes: Docket's
//! `jcs` against `serde_json_canonicalizer`, with a plain serialization
//! and the parse for scale. The figures behind `jcs.rs` being written here.
//!
//!     cargo run --release -p docket-core --example canonical_speed

use std::hint::black_box;
use std::time::Instant;

use serde_json::{Value, json};

/// A receipt body of about 740 bytes, like the ones `docket-bench append`
/// sends.
fn body(i: u64) -> Value {
    json!({
        "agent": format!("did:key:z6MkbenchAgent{:04}", i % 1000),
        "human": format!("user-{:03}", i % 200),
        "project": "billing",
        "provider": "openai",
        "model": "gpt-4o",
        "tool": if i.is_multiple_of(3) { json!("crm.lookup") } else { Value::Null },
        "outcome": "allow",
        "data_classes": ["customer_data", "pii"],
        "credential": format!("cred_{:016x}", i.wrapping_mul(7919)),
        "request_digest": format!("sha256:{:064x}", u128::from(i) * 1_234_567_891_234_567),
        "response_digest": format!("sha256:{:064x}", u128::from(i) * 9_876_543_219_876_543),
        "input_tokens": 1234 + i % 100,
        "output_tokens": 567,
        "cost_micro_usd": 4321,
        "latency_ms": 1234.5,
        "upstream_status": 200,
        "decision_seq": 123_456_789 + i,
        "policy_version": "v12",
        "padding": "p".repeat(150),
    })
}

/// Runs `f` over the 64 bodies in turn, by index.
fn time(name: &str, f: impl Fn(usize) -> usize) {
    const N: usize = 200_000;
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..N {
                black_box(f(black_box(i % 64)));
            }
            t.elapsed().as_secs_f64() * 1e6 / N as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "{name:34} median {:.2} µs per body (5 runs of {N})",
        runs[2]
    );
}

fn main() {
    let bodies: Vec<Value> = (0..64).map(body).collect();
    let texts: Vec<Vec<u8>> = bodies
        .iter()
        .map(|b| serde_json::to_vec(b).unwrap())
        .collect();
    for b in &bodies {
        assert_eq!(
            docket_core::jcs::to_string(b).unwrap(),
            serde_json_canonicalizer::to_string(b).unwrap()
        );
    }
    println!(
        "canonical form of a {}-byte receipt body",
        docket_core::jcs::to_string(&bodies[0]).unwrap().len()
    );
    time("parse (serde_json::from_slice)", |i| {
        serde_json::from_slice::<Value>(&texts[i])
            .unwrap()
            .as_object()
            .unwrap()
            .len()
    });
    time("docket_core::jcs", |i| {
        docket_core::jcs::to_string(&bodies[i]).unwrap().len()
    });
    time("serde_json_canonicalizer", |i| {
        serde_json_canonicalizer::to_string(&bodies[i])
            .unwrap()
            .len()
    });
    time("serde_json::to_vec (not canonical)", |i| {
        serde_json::to_vec(&bodies[i]).unwrap().len()
    });
}
