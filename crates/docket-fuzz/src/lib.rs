//! Fuzz targets: one function per parser that reads outside input, each
//! taking arbitrary bytes and driving the real entry point.
//!
//! Two harnesses run them. `fuzz/` builds each as a libFuzzer binary
//! (`scripts/fuzz`, or `cargo fuzz` on nightly), for long coverage-guided
//! runs. `tests/it` replays each target's corpus (`fuzz/corpus/<target>/`)
//! and mutates it for a fixed number of iterations under `cargo test` on
//! stable, so every CI run fuzzes a little.
//!
//! A target never returns an error: an input the parser refuses is simply
//! done with. What a target asserts is what must hold for *any* input —
//! a parsed entry re-encodes to the same bytes, what the strict JSON check
//! accepts `serde_json` parses, splitting a stream differently changes
//! nothing — so a panic is always a bug, in the parser or in the
//! assertion's idea of it.
//!
//! Signed inputs (checkpoints, receipts, packs, request signatures) are
//! checked against fixed test keys ([`keys`]), the ones the seed corpus
//! was made with, so mutations of a seed reach past the signature check.

mod gateway;
mod input;
pub mod keys;
mod log;
mod pack;
pub mod seeds;
mod signature;

pub use gateway::{gateway_request, sse};
pub use log::{checkpoint, entry, identity, json, proof, receipt, request_body};
pub use pack::{pack, pack_window};
pub use signature::httpsig;

/// A fuzz target: any bytes in, a panic if something that must hold does not.
pub type Target = fn(&[u8]);

/// Every target by name: the names of `fuzz/fuzz_targets/*.rs` and of the
/// corpus directories.
pub const TARGETS: &[(&str, Target)] = &[
    ("json", json),
    ("request_body", request_body),
    ("gateway_request", gateway_request),
    ("entry", entry),
    ("checkpoint", checkpoint),
    ("receipt", receipt),
    ("proof", proof),
    ("identity", identity),
    ("pack", pack),
    ("pack_window", pack_window),
    ("httpsig", httpsig),
    ("sse", sse),
];
