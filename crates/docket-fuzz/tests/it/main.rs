//! The bounded fuzzing harness `cargo test` runs on stable: for each
//! target, every file of `fuzz/corpus/<target>/` is replayed, then a
//! fixed number of deterministic mutations of them (see `mutate`). A
//! panic fails the target's test, names it, and leaves the input in
//! `target/fuzz-failures/` for `scripts/fuzz` or a debugger.
//!
//! The counts keep the whole binary to about 20 s in the debug profile
//! on two cores; `scripts/fuzz` fuzzes for as long as it is asked.

mod mutate;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use mutate::{Mutator, Rng, parse_dictionary};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus_dir(target: &str) -> PathBuf {
    workspace().join("fuzz/corpus").join(target)
}

/// The corpus files, sorted by name so every run mutates the same way.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().expect("a file name");
            let bytes = std::fs::read(&path).expect("a corpus file reads");
            (name.to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// The target's libFuzzer dictionary, or the JSON one, as `scripts/fuzz`
/// picks it.
fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let dir = workspace().join("fuzz/dict");
    let own = dir.join(format!("{target}.dict"));
    let path = if own.exists() {
        own
    } else {
        dir.join("json.dict")
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_dictionary(&text)
}

fn failures_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("fuzz-failures")
}

/// Runs `f` on `input`; on a panic, saves the input and fails naming it.
fn check(target: &str, f: docket_fuzz::Target, input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_ok() {
        return;
    }
    let dir = failures_dir();
    std::fs::create_dir_all(&dir).expect("target/fuzz-failures");
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{hash:016x}"));
    std::fs::write(&path, input).expect("the failing input is saved");
    panic!(
        "fuzz target `{target}` panicked on {what}; the input is in {} \
         (replay: scripts/fuzz {target} --runs 1 with that file as the corpus)",
        path.display()
    );
}

fn run(target: &str, iterations: u64) {
    let f = docket_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target} in docket_fuzz::TARGETS"))
        .1;
    let started = std::time::Instant::now();
    let files = corpus(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
    for (name, bytes) in &files {
        check(target, f, bytes, &format!("corpus file {name}"));
    }
    let inputs: Vec<Vec<u8>> = files.into_iter().map(|(_, b)| b).collect();
    let dictionary = dictionary(target);
    let mutator = Mutator {
        corpus: &inputs,
        dictionary: &dictionary,
        max_len: inputs.iter().map(Vec::len).max().unwrap_or(0).max(4096) * 2,
    };
    // One seed per target: adding a target changes no other's sequence.
    let seed = target
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = Rng::new(seed);
    for i in 0..iterations {
        let base = &inputs[rng.below(inputs.len())];
        let input = mutator.mutate(&mut rng, base);
        check(target, f, &input, &format!("mutation {i}"));
    }
    println!(
        "{target}: {} corpus inputs and {iterations} mutations in {:.1?}",
        inputs.len(),
        started.elapsed()
    );
}

/// One test per target, with its number of mutations: each chosen so the
/// target takes about a second in the debug profile on an idle core
/// (some 12 s in all on one core, half that on two).
macro_rules! targets {
    ($($name:ident: $iterations:expr,)*) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name), $iterations);
            }
        )*

        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

targets! {
    json: 50_000,
    request_body: 50_000,
    gateway_request: 30_000,
    entry: 40_000,
    checkpoint: 80_000,
    receipt: 60_000,
    proof: 35_000,
    identity: 70_000,
    pack: 1_500,
    pack_window: 3_000,
    httpsig: 25_000,
    sse: 30_000,
}

#[test]
fn every_target_has_a_test_a_corpus_and_a_libfuzzer_binary() {
    let names: Vec<&str> = docket_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, TESTED, "docket_fuzz::TARGETS and the tests here");
    for name in names {
        let binary = workspace().join(format!("fuzz/fuzz_targets/{name}.rs"));
        let text = std::fs::read_to_string(&binary)
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        assert!(
            text.contains(&format!("docket_fuzz::{name}(")),
            "{} does not call docket_fuzz::{name}",
            binary.display()
        );
        assert!(corpus_dir(name).is_dir(), "fuzz/corpus/{name}");
    }
}

/// The committed `seed-*` files are what `docket_fuzz::seeds` makes, so
/// the corpus follows the formats; `DOCKET_FUZZ_WRITE_SEEDS=1` rewrites
/// them.
#[test]
fn the_seed_corpus_is_what_the_seeds_make() {
    let seeds = docket_fuzz::seeds::all();
    let write = std::env::var_os("DOCKET_FUZZ_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for (target, _) in docket_fuzz::TARGETS {
        let dir = corpus_dir(target);
        if write {
            std::fs::create_dir_all(&dir).expect("a corpus directory");
        }
        let wanted: Vec<_> = seeds.iter().filter(|s| s.target == *target).collect();
        let on_disk: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("seed-"))
                    .collect()
            })
            .unwrap_or_default();
        for name in on_disk {
            if !wanted.iter().any(|s| format!("seed-{}", s.name) == name) {
                if write {
                    std::fs::remove_file(dir.join(&name)).expect("a stale seed is removed");
                } else {
                    stale.push(format!("{target}/{name} (no longer made)"));
                }
            }
        }
        for seed in wanted {
            let path = dir.join(format!("seed-{}", seed.name));
            if write {
                std::fs::write(&path, &seed.bytes).expect("a seed is written");
            } else if std::fs::read(&path).ok().as_deref() != Some(seed.bytes.as_slice()) {
                stale.push(format!("{target}/seed-{}", seed.name));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "fuzz/corpus differs from docket_fuzz::seeds: {stale:?}; \
         rewrite with DOCKET_FUZZ_WRITE_SEEDS=1 cargo test -p docket-fuzz the_seed_corpus"
    );
}
