//! The window's entries: `entries.jsonl` read, hashed into the range
//! proof, parsed, chained and folded.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Seek};

use docket_core::merkle::leaf_hash;
use docket_core::{Hash, RangeVerifier, Timestamp};
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use super::{Checker, Problem, Progress};
use crate::fold::{Fold, Line, RecordFile, RecordSink, Refs};
use crate::pack::{ENTRIES, LeafLine};

/// Longest line accepted in `entries.jsonl`.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Record lines re-derived by the verifier, hashed as they come.
pub(super) struct Hashers(pub(super) BTreeMap<RecordFile, Sha256>);

impl RecordSink for Hashers {
    fn line(&mut self, file: RecordFile, line: &[u8]) -> io::Result<()> {
        self.0.entry(file).or_default().update(line);
        Ok(())
    }
}

const BATCH: usize = 2048;
/// Bytes of lines in one batch at most: with the channel's 16 batches in
/// flight this bounds the verifier's memory whatever the lines hold.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// One line of `entries.jsonl`, hashed, on its way to [`check_entries`].
enum Item {
    Entry {
        seq: u64,
        leaf: Hash,
        line: Vec<u8>,
    },
    Withheld(Hash),
    /// A line that could not be read; the chain restarts after it.
    Broken,
}

pub(super) struct Window {
    pub(super) from: Timestamp,
    pub(super) to: Timestamp,
    pub(super) project: Option<String>,
    /// Leaf hash of the entry before the window, when the pack proves it.
    pub(super) prev_leaf: Option<Hash>,
}

/// Parses each entry, checks its `seq`, chain link, time and project, and
/// folds it.
fn check_entries(
    rx: std::sync::mpsc::Receiver<Vec<Item>>,
    w: Window,
    mut fold: Fold,
) -> (Fold, Hashers, Vec<Problem>) {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let mut hashers = Hashers(BTreeMap::new());
    let mut prev_leaf = w.prev_leaf;
    let mut prev_ts: Option<Timestamp> = None;
    for batch in rx {
        for item in batch {
            let (seq, leaf, line) = match item {
                Item::Withheld(h) => {
                    fold.withheld();
                    prev_leaf = Some(h);
                    continue;
                }
                Item::Broken => {
                    prev_leaf = None;
                    continue;
                }
                Item::Entry { seq, leaf, line } => (seq, leaf, line),
            };
            let at = || format!("seq {seq}");
            let e = match Line::parse(&line) {
                Ok(e) => e,
                Err(why) => {
                    c.fail("entry", at(), why);
                    prev_leaf = Some(leaf);
                    continue;
                }
            };
            if e.seq != seq {
                c.fail(
                    "entry",
                    at(),
                    format!("entry says seq {}, expected {seq}", e.seq),
                );
            }
            if prev_leaf.is_some_and(|p| e.prev != p) {
                c.fail("chain", at(), "prev is not the hash of the entry before it");
            }
            prev_leaf = Some(leaf);
            if e.ts < w.from || e.ts >= w.to {
                c.fail(
                    "window",
                    at(),
                    format!("entry time {} is outside the window", e.ts),
                );
            }
            if prev_ts.is_some_and(|t| e.ts < t) {
                c.fail("entry", at(), "entry time goes backwards");
            }
            prev_ts = Some(e.ts);
            if w.project.is_some()
                && fold.elsewhere(e.kind, &Refs::of_raw(e.body), w.project.as_deref())
            {
                c.fail("scope", at(), "another project's entry is disclosed");
            }
            let _ = fold.entry(&e, &mut hashers);
        }
    }
    (fold, hashers, c.problems)
}

/// What the entry pass found.
pub(super) struct Pass {
    /// The window's entries, folded.
    pub fold: Fold,
    /// The record files, re-derived and hashed.
    pub hashers: Hashers,
    /// Lines read, withheld ones included.
    pub entries: u64,
    pub withheld: u64,
    /// SHA-256 (hex) and length of `entries.jsonl` as read.
    pub sha256: String,
    pub bytes: u64,
    /// The lines' leaf hashes, for the range proof.
    pub leaves: RangeVerifier,
}

/// Reads the window `[a, b)` from `entries.jsonl` on two threads: this one
/// inflates, splits, hashes and feeds the range proof; the other parses,
/// checks chain, times and scope, and folds.
pub(super) fn pass<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    (a, b): (u64, u64),
    window: Window,
    fold: Fold,
    c: &mut Checker,
    progress: Progress<'_>,
) -> Pass {
    let total = b - a;
    let project = window.project.clone();
    let mut leaves = RangeVerifier::new(a);
    let mut entries_hash = Sha256::new();
    let (mut entries, mut bytes, mut withheld) = (0u64, 0u64, 0u64);
    let (fold, hashers, mut late) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(16);
        let worker = scope.spawn(move || check_entries(rx, window, fold));
        let mut batch = Vec::with_capacity(BATCH);
        let mut batch_bytes = 0usize;
        match zip.by_name(ENTRIES) {
            Err(e) => c.fail("file", ENTRIES, e.to_string()),
            Ok(f) => {
                let mut reader = BufReader::with_capacity(1 << 20, f);
                loop {
                    let mut line = Vec::with_capacity(1024);
                    let k = match (&mut reader)
                        .take(MAX_LINE as u64 + 1)
                        .read_until(b'\n', &mut line)
                    {
                        Ok(k) => k,
                        Err(e) => {
                            c.fail("file", ENTRIES, e.to_string());
                            break;
                        }
                    };
                    if k == 0 {
                        break;
                    }
                    entries_hash.update(&line);
                    bytes += k as u64;
                    let seq = a + entries;
                    let line_no = entries + 1;
                    let loc = move || format!("{ENTRIES}:{line_no}");
                    entries += 1;
                    if line.last() != Some(&b'\n') {
                        c.fail(
                            "entry",
                            loc(),
                            "line does not end in a newline (or is too long)",
                        );
                        break;
                    }
                    line.pop();
                    if seq >= b {
                        c.fail(
                            "entry",
                            loc(),
                            format!("more entries than the window [{a}, {b}) holds"),
                        );
                        break;
                    }
                    if line.starts_with(b"{\"leaf\":") {
                        let parsed = serde_json::from_slice::<LeafLine>(&line)
                            .ok()
                            .and_then(|l| {
                                docket_core::entry::parse_hex_hash(&l.leaf).map(|h| (l.seq, h))
                            });
                        match parsed {
                            Some((s, h)) if s == seq => {
                                if project.is_none() {
                                    c.fail(
                                        "scope",
                                        loc(),
                                        format!(
                                            "entry {seq} is withheld in a pack for all projects"
                                        ),
                                    );
                                }
                                withheld += 1;
                                leaves.push(h);
                                batch.push(Item::Withheld(h));
                            }
                            Some((s, _)) => {
                                c.fail(
                                    "entry",
                                    loc(),
                                    format!("withheld entry says seq {s}, expected {seq}"),
                                );
                                batch.push(Item::Broken);
                            }
                            None => {
                                c.fail("entry", loc(), "not a withheld-entry line");
                                batch.push(Item::Broken);
                            }
                        }
                    } else {
                        let leaf = leaf_hash(&line);
                        leaves.push(leaf);
                        batch.push(Item::Entry { seq, leaf, line });
                    }
                    batch_bytes += k;
                    if batch.len() == BATCH || batch_bytes >= BATCH_BYTES {
                        batch_bytes = 0;
                        progress(entries, total);
                        if tx
                            .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
                progress(entries, total);
                if entries != total {
                    c.fail(
                        "entry",
                        ENTRIES,
                        format!("{entries} entries, but the window [{a}, {b}) holds {total}"),
                    );
                }
            }
        }
        let _ = tx.send(batch);
        drop(tx);
        worker.join().expect("the entry checker does not panic")
    });
    c.problems.append(&mut late);
    Pass {
        fold,
        hashers,
        entries,
        withheld,
        sha256: hex::encode(entries_hash.finalize()),
        bytes,
        leaves,
    }
}
