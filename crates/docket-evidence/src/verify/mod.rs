//! The offline verifier: everything in a pack checked with the log's
//! public key alone, and every derived file re-derived from the entries.
//!
//! Verification runs in phases, each a method of [`PackCheck`]:
//! [`open`](PackCheck::open) reads the zip directory,
//! [`anchor`](PackCheck::anchor) the signed manifest, the files' hashes,
//! the checkpoint, the range proof and the window,
//! [`window`](PackCheck::window) the context receipts and every entry of
//! the window, and [`derived`](PackCheck::derived) re-derives the files
//! made from the entries. [`verify_pack`] runs them all.

mod archive;
mod entries;

use std::io::{BufRead, BufReader, Read, Seek};

use docket_core::receipt::decode_hashes;
use docket_core::{Entry, Hash, LogVerifier, Receipt, SignedCheckpoint, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use crate::fold::{Fold, RecordFile, Refs};
use crate::pack::{
    CHECKPOINT, CONTEXT, ENTRIES, MANIFEST, Manifest, RANGE_PROOF, RangeProof, derived_files,
};

/// One thing that did not check out, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What was checked: `manifest`, `signature`, `file`, `checkpoint`,
    /// `range`, `context`, `entry`, `chain`, `window`, `derived`, `scope`.
    pub check: &'static str,
    /// Where: a file path, `entries.jsonl:<line>`, or `seq <n>`.
    pub location: String,
    pub detail: String,
}

/// What verification established.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub ok: bool,
    pub origin: String,
    pub window: Option<crate::controls::WindowInfo>,
    pub entries: u64,
    pub withheld: u64,
    pub tree_size: u64,
    /// Files whose bytes were re-derived from the entries and matched.
    pub rederived: Vec<String>,
    pub warnings: Vec<String>,
    pub problems: Vec<Problem>,
}

/// Progress: entries checked so far, of how many.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(
        &mut self,
        check: &'static str,
        location: impl Into<String>,
        detail: impl Into<String>,
    ) {
        if self.problems.len() < 1000 {
            self.problems.push(Problem {
                check,
                location: location.into(),
                detail: detail.into(),
            });
        }
    }
}

/// Verifies the pack read from `input` against the log key `key`.
/// Returns `Err` only when the pack cannot be read as a zip at all; every
/// failed check is a [`Problem`] in the outcome.
pub fn verify_pack<R: Read + Seek>(
    input: R,
    key: &LogVerifier,
    progress: Progress<'_>,
) -> Result<Outcome, String> {
    let mut check = PackCheck::open(input, key)?;
    if let Some(anchor) = check.anchor() {
        let window = check.window(&anchor, progress);
        check.derived(&anchor, window);
    }
    Ok(check.finish())
}

/// One pack being verified, phase by phase; what fails is collected, and
/// [`finish`](Self::finish) returns it all.
pub struct PackCheck<'k, R> {
    zip: ZipArchive<R>,
    key: &'k LogVerifier,
    c: Checker,
    out: Outcome,
}

/// What the signed part of a pack fixes: its manifest, the checkpoint
/// it is anchored to, and the window of that tree (its times parsed).
pub struct Anchor {
    manifest: Manifest,
    cp: SignedCheckpoint,
    range: Option<RangeProof>,
    from: Timestamp,
    to: Timestamp,
    created: Timestamp,
}

impl Anchor {
    /// The window `[a, b)`, as the manifest gives it.
    fn bounds(&self) -> (u64, u64) {
        (self.manifest.window.first_seq, self.manifest.window.end_seq)
    }
}

/// The window as read: its entries folded, and the record files'
/// hashes, for [`PackCheck::derived`].
pub struct WindowRead {
    read: entries::Pass,
}

impl<'k, R: Read + Seek> PackCheck<'k, R> {
    /// Reads the zip directory. `Err` only when `input` is not a zip
    /// archive at all; bytes in front of the archive and names listed
    /// twice are problems.
    pub fn open(mut input: R, key: &'k LogVerifier) -> Result<Self, String> {
        let listed =
            archive::directory_entries(&mut input).map_err(|e| format!("reading the pack: {e}"))?;
        let zip = ZipArchive::new(input).map_err(|e| format!("not a zip archive: {e}"))?;
        let mut c = Checker {
            problems: Vec::new(),
        };
        // What one zip tool shows must be what another shows: no bytes in
        // front, and no name twice (the zip reader keeps only the last).
        if zip.offset() != 0 {
            c.fail(
                "file",
                "pack",
                format!("{} bytes precede the zip archive", zip.offset()),
            );
        }
        if let Some(n) = listed
            && n != zip.len() as u64
        {
            c.fail(
                "file",
                "pack",
                format!(
                    "the zip directory lists {n} files but only {} distinct names: a name appears twice",
                    zip.len()
                ),
            );
        }
        let out = Outcome {
            ok: false,
            origin: key.origin().to_owned(),
            window: None,
            entries: 0,
            withheld: 0,
            tree_size: 0,
            rederived: Vec::new(),
            warnings: Vec::new(),
            problems: Vec::new(),
        };
        Ok(Self { zip, key, c, out })
    }

    /// The manifest and its signature, every listed file's hash, the
    /// checkpoint, the range proof's claims and the window's bounds and
    /// times. `None` when the pack cannot be checked further.
    pub fn anchor(&mut self) -> Option<Anchor> {
        let (zip, c) = (&mut self.zip, &mut self.c);
        let manifest = archive::check_manifest(zip, self.key, c)?;
        self.out.window = Some(manifest.window.clone());
        self.out.withheld = manifest.withheld;
        archive::check_files(zip, &manifest, c);
        let cp = match archive::read_small(zip, CHECKPOINT)
            .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
            .and_then(|note| self.key.verify(&note).map_err(|e| e.to_string()))
        {
            Ok(cp) => cp,
            Err(e) => {
                c.fail("checkpoint", CHECKPOINT, e);
                return None;
            }
        };
        self.out.tree_size = cp.size;
        if manifest.checkpoint.size != cp.size || manifest.checkpoint.root != cp.root.to_string() {
            c.fail(
                "manifest",
                MANIFEST,
                "the manifest names another checkpoint than checkpoint.txt",
            );
        }
        let range: Option<RangeProof> = archive::read_small(zip, RANGE_PROOF)
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| c.fail("range", RANGE_PROOF, e))
            .ok();
        let w = &manifest.window;
        let (a, b) = (w.first_seq, w.end_seq);
        if let Some(r) = &range
            && (r.first_seq != a || r.end_seq != b || r.tree_size != cp.size)
        {
            c.fail(
                "range",
                RANGE_PROOF,
                format!(
                    "proves [{}, {}) of a tree of {} but the manifest's window is [{a}, {b}) of {}",
                    r.first_seq, r.end_seq, r.tree_size, cp.size
                ),
            );
        }
        if b < a || b > cp.size {
            c.fail(
                "window",
                MANIFEST,
                format!("window [{a}, {b}) is not inside the tree of {}", cp.size),
            );
            return None;
        }
        let from = Timestamp::parse_rfc3339(&w.from);
        let to = Timestamp::parse_rfc3339(&w.to);
        let created = Timestamp::parse_rfc3339(&w.created);
        let (Ok(from), Ok(to), Ok(created)) = (from, to, created) else {
            c.fail("manifest", MANIFEST, "window times are not RFC 3339");
            return None;
        };
        Some(Anchor {
            manifest,
            cp,
            range,
            from,
            to,
            created,
        })
    }

    /// The context receipts (the window's edges and the identity entries
    /// before it), then every entry of the window: hashed into the range
    /// proof, parsed, chained, timed, scoped and folded.
    pub fn window(&mut self, anchor: &Anchor, progress: Progress<'_>) -> WindowRead {
        let mut fold = Fold::new(anchor.manifest.window.clone(), anchor.to);
        let prev_leaf = self.context(anchor, &mut fold);
        let Anchor {
            manifest,
            cp,
            range,
            from,
            to,
            ..
        } = anchor;
        let (a, b) = anchor.bounds();
        let window = entries::Window {
            from: *from,
            to: *to,
            project: manifest.window.project.clone(),
            prev_leaf,
        };
        let read = entries::pass(&mut self.zip, (a, b), window, fold, &mut self.c, progress);
        self.out.entries = read.entries;
        let c = &mut self.c;
        if let Some(f) = manifest.files.iter().find(|f| f.path == ENTRIES)
            && (f.sha256 != read.sha256 || f.bytes != read.bytes)
        {
            c.fail("file", ENTRIES, "SHA-256 does not match the manifest");
        }
        let total = b - a;
        if manifest.entries != total {
            c.fail(
                "manifest",
                MANIFEST,
                format!(
                    "says {} entries, but its window [{a}, {b}) holds {total}",
                    manifest.entries
                ),
            );
        }
        if read.withheld != manifest.withheld {
            c.fail(
                "manifest",
                MANIFEST,
                format!(
                    "says {} entries withheld, the pack has {}",
                    manifest.withheld, read.withheld
                ),
            );
        }
        if let Some(r) = range {
            if total == 0 {
                if !r.proof.is_empty() {
                    c.fail("range", RANGE_PROOF, "an empty window has no range proof");
                }
            } else {
                match decode_hashes(&r.proof) {
                    Err(e) => c.fail("range", RANGE_PROOF, e.to_string()),
                    Ok(proof) => {
                        if let Err(e) = read.leaves.finish(cp.size, &proof, &cp.root) {
                            c.fail(
                                "range",
                                RANGE_PROOF,
                                format!(
                                    "the entries are not exactly [{a}, {b}) of the signed tree: {e}"
                                ),
                            );
                        }
                    }
                }
            }
        }
        WindowRead { read }
    }

    /// Reads the context receipts into `fold` and checks the window's
    /// edges: the entry before is earlier than `from`, the entry after is
    /// at or after `to`. Returns the leaf hash of the entry before the
    /// window, when the pack proves it.
    fn context(&mut self, anchor: &Anchor, fold: &mut Fold) -> Option<Hash> {
        let Anchor {
            manifest,
            cp,
            from,
            to,
            created,
            ..
        } = anchor;
        let (a, b) = anchor.bounds();
        let (from, to, created) = (*from, *to, *created);
        let w = &manifest.window;
        let project = w.project.clone();
        let mut before: Option<(Entry, Hash)> = None;
        let mut after: Option<Entry> = None;
        match self.zip.by_name(CONTEXT) {
            Err(e) => self.c.fail("context", CONTEXT, e.to_string()),
            Ok(f) => {
                // Streamed: a long-lived log has many identity entries.
                let mut reader = BufReader::new(f);
                let mut last = None;
                let mut raw = Vec::new();
                for i in 0.. {
                    raw.clear();
                    let cap = docket_core::receipt::MAX_RECEIPT_BYTES as u64 + 1;
                    match (&mut reader).take(cap).read_until(b'\n', &mut raw) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            self.c.fail("context", CONTEXT, e.to_string());
                            break;
                        }
                    }
                    let loc = format!("{CONTEXT}:{}", i + 1);
                    if raw.last() != Some(&b'\n') {
                        self.c.fail(
                            "context",
                            loc,
                            "line does not end in a newline (or is too long)",
                        );
                        break;
                    }
                    let line = &raw[..raw.len() - 1];
                    if line.is_empty() {
                        continue;
                    }
                    let verified = Receipt::from_json(line)
                        .map_err(|e| e.to_string())
                        .and_then(|r| {
                            if r.checkpoint != cp.note {
                                return Err(
                                    "proved against another checkpoint than checkpoint.txt".into(),
                                );
                            }
                            r.verify(self.key).map_err(|e| e.to_string())
                        });
                    let v = match verified {
                        Ok(v) => v,
                        Err(e) => {
                            self.c.fail("context", loc, e);
                            continue;
                        }
                    };
                    let seq = v.entry.seq.0;
                    if last.is_some_and(|l| seq <= l) {
                        self.c.fail(
                            "context",
                            loc.clone(),
                            format!("entry {seq} is out of order"),
                        );
                    }
                    last = Some(seq);
                    let body = v.entry.body_value();
                    let refs = Refs::of_value(&body);
                    let is_context = seq < a
                        && docket_core::identity::Event::is_identity_type(v.entry.kind)
                        && !fold.elsewhere(v.entry.kind, &refs, project.as_deref());
                    let is_edge = (seq + 1 == a || seq == b)
                        && !fold.elsewhere(v.entry.kind, &refs, project.as_deref());
                    if seq >= a && seq != b {
                        self.c
                            .fail("context", loc, format!("entry {seq} is inside the window"));
                        continue;
                    }
                    if !is_context && !is_edge {
                        self.c.fail(
                            "scope",
                            loc,
                            format!(
                                "entry {seq} is neither this scope's context nor a window edge"
                            ),
                        );
                        continue;
                    }
                    if seq + 1 == a {
                        before = Some((v.entry.clone(), v.leaf_hash));
                    }
                    if seq == b {
                        after = Some(v.entry.clone());
                    }
                    if is_context {
                        fold.context(&v.entry, &body);
                    }
                }
            }
        }
        // The window's edges: the entry before is earlier than `from`, the
        // entry after is at or after `to`.
        if a > 0 {
            match &before {
                Some((e, _)) if e.ts >= from => self.c.fail(
                    "window",
                    format!("seq {}", a - 1),
                    format!("the entry before the window is at {}, not before {}", e.ts, w.from),
                ),
                Some(_) => {}
                None if project.is_some() => self.out.warnings.push(format!(
                    "the entry before the window (seq {}) is another project's; the lower edge is proved by seq only",
                    a - 1
                )),
                None => self.c.fail("window", format!("seq {}", a - 1), "the pack does not prove the entry before the window"),
            }
        }
        if b < cp.size {
            match &after {
                Some(e) if e.ts < to => self.c.fail(
                    "window",
                    format!("seq {b}"),
                    format!("the entry after the window is at {}, before its end {}", e.ts, w.to),
                ),
                Some(_) => {}
                None if project.is_some() => self.out.warnings.push(format!(
                    "the entry after the window (seq {b}) is another project's; the upper edge is proved by seq only"
                )),
                None => self.c.fail("window", format!("seq {b}"), "the pack does not prove the entry after the window"),
            }
        } else if created < to {
            self.c.fail(
                "window",
                MANIFEST,
                format!(
                    "the pack was made at {} before its window ended at {}",
                    w.created, w.to
                ),
            );
        } else {
            self.out.warnings.push(format!(
                "the window ends at the checkpoint's tree size ({b}): that no entry of the window came after rests on the manifest's creation time {}, not on a proof",
                w.created
            ));
        }
        before.map(|(_, h)| h)
    }

    /// Agent signatures that do not verify, and the derived files
    /// re-derived from the fold and compared with the manifest's hashes.
    pub fn derived(&mut self, anchor: &Anchor, window: WindowRead) {
        let entries::Pass {
            fold, mut hashers, ..
        } = window.read;
        let c = &mut self.c;
        // Signatures that agents did not make fail the pack, not just a test.
        let (bad, more) = fold.signature_failures();
        for item in bad {
            c.fail(
                "agent-signature",
                format!("seq {}", item.seq),
                item.note.clone(),
            );
        }
        if more > 0 {
            c.fail(
                "agent-signature",
                ENTRIES,
                format!("and {more} more entries"),
            );
        }
        let derived = fold.finish();
        let mut expect: Vec<(String, String)> = derived_files(&derived)
            .into_iter()
            .map(|(p, bytes)| (p.to_owned(), hex::encode(Sha256::digest(&bytes))))
            .collect();
        for f in RecordFile::ALL {
            let h = hashers.0.remove(&f).unwrap_or_default();
            expect.push((f.path().to_owned(), hex::encode(h.finalize())));
        }
        for (path, sha) in expect {
            match anchor.manifest.files.iter().find(|f| f.path == path) {
                None => c.fail("derived", path, "missing from the manifest"),
                Some(f) if f.sha256 != sha => c.fail(
                    "derived",
                    path,
                    "does not match what the entries show (re-derived from the entries, the file differs)",
                ),
                Some(_) => self.out.rederived.push(path),
            }
        }
    }

    /// Everything found, phase by phase; `ok` when nothing failed.
    pub fn finish(mut self) -> Outcome {
        self.out.problems = self.c.problems;
        self.out.ok = self.out.problems.is_empty();
        self.out
    }
}
