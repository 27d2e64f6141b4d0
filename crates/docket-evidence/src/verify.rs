//! The offline verifier: everything in a pack checked with the log's
//! public key alone, and every derived file re-derived from the entries.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Seek};

use docket_core::merkle::leaf_hash;
use docket_core::receipt::decode_hashes;
use docket_core::{Entry, Hash, LogVerifier, RangeVerifier, Receipt, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use crate::fold::{Fold, Line, RecordFile, RecordSink, Refs};
use crate::pack::{
    CHECKPOINT, CONTEXT, ENTRIES, LeafLine, MANIFEST, MANIFEST_SIG, Manifest, PACK_FORMAT,
    RANGE_PROOF, RangeProof, derived_files, manifest_note_text,
};

/// Largest manifest, checkpoint, proof or context file read whole.
const MAX_SMALL_FILE: u64 = 64 * 1024 * 1024;
/// Longest line accepted in `entries.jsonl`.
const MAX_LINE: usize = 16 * 1024 * 1024;

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

fn read_small<R: Read + Seek>(zip: &mut ZipArchive<R>, path: &str) -> Result<Vec<u8>, String> {
    let f = zip
        .by_name(path)
        .map_err(|e| format!("the pack has no {path}: {e}"))?;
    if f.size() > MAX_SMALL_FILE {
        return Err(format!(
            "{path} is {} bytes, more than a pack holds",
            f.size()
        ));
    }
    let mut out = Vec::with_capacity(f.size() as usize);
    f.take(MAX_SMALL_FILE)
        .read_to_end(&mut out)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(out)
}

fn sha256_of<R: Read + Seek>(zip: &mut ZipArchive<R>, path: &str) -> Result<(String, u64), String> {
    let mut f = zip.by_name(path).map_err(|e| format!("{e}"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| e.to_string())?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Record lines re-derived by the verifier, hashed as they come.
struct Hashers(BTreeMap<RecordFile, Sha256>);

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

struct Window {
    from: Timestamp,
    to: Timestamp,
    project: Option<String>,
    /// Leaf hash of the entry before the window, when the pack proves it.
    prev_leaf: Option<Hash>,
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

/// Verifies the pack read from `input` against the log key `key`.
/// Returns `Err` only when the pack cannot be read as a zip at all; every
/// failed check is a [`Problem`] in the outcome.
pub fn verify_pack<R: Read + Seek>(
    input: R,
    key: &LogVerifier,
    progress: Progress<'_>,
) -> Result<Outcome, String> {
    let mut input = input;
    let listed = directory_entries(&mut input).map_err(|e| format!("reading the pack: {e}"))?;
    let mut zip = ZipArchive::new(input).map_err(|e| format!("not a zip archive: {e}"))?;
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
    let mut out = Outcome {
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
    let Some(manifest) = check_manifest(&mut zip, key, &mut c) else {
        out.problems = c.problems;
        return Ok(out);
    };
    out.window = Some(manifest.window.clone());
    out.withheld = manifest.withheld;
    check_files(&mut zip, &manifest, &mut c);
    let w = &manifest.window;
    // The checkpoint and the range proof.
    let cp = match read_small(&mut zip, CHECKPOINT)
        .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
        .and_then(|note| key.verify(&note).map_err(|e| e.to_string()))
    {
        Ok(cp) => cp,
        Err(e) => {
            c.fail("checkpoint", CHECKPOINT, e);
            out.problems = c.problems;
            return Ok(out);
        }
    };
    out.tree_size = cp.size;
    if manifest.checkpoint.size != cp.size || manifest.checkpoint.root != cp.root.to_string() {
        c.fail(
            "manifest",
            MANIFEST,
            "the manifest names another checkpoint than checkpoint.txt",
        );
    }
    let range: Option<RangeProof> = read_small(&mut zip, RANGE_PROOF)
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| c.fail("range", RANGE_PROOF, e))
        .ok();
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
        out.problems = c.problems;
        return Ok(out);
    }
    let from = Timestamp::parse_rfc3339(&w.from);
    let to = Timestamp::parse_rfc3339(&w.to);
    let created = Timestamp::parse_rfc3339(&w.created);
    let (Ok(from), Ok(to), Ok(created)) = (from, to, created) else {
        c.fail("manifest", MANIFEST, "window times are not RFC 3339");
        out.problems = c.problems;
        return Ok(out);
    };
    let project = w.project.clone();
    let mut fold = Fold::new(w.clone(), to);

    // Context: the edges and the identity entries before the window.
    let mut before: Option<(Entry, Hash)> = None;
    let mut after: Option<Entry> = None;
    match zip.by_name(CONTEXT) {
        Err(e) => c.fail("context", CONTEXT, e.to_string()),
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
                        c.fail("context", CONTEXT, e.to_string());
                        break;
                    }
                }
                let loc = format!("{CONTEXT}:{}", i + 1);
                if raw.last() != Some(&b'\n') {
                    c.fail(
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
                                "proved against another checkpoint than checkpoint.txt".into()
                            );
                        }
                        r.verify(key).map_err(|e| e.to_string())
                    });
                let v = match verified {
                    Ok(v) => v,
                    Err(e) => {
                        c.fail("context", loc, e);
                        continue;
                    }
                };
                let seq = v.entry.seq.0;
                if last.is_some_and(|l| seq <= l) {
                    c.fail(
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
                    c.fail("context", loc, format!("entry {seq} is inside the window"));
                    continue;
                }
                if !is_context && !is_edge {
                    c.fail(
                        "scope",
                        loc,
                        format!("entry {seq} is neither this scope's context nor a window edge"),
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
            Some((e, _)) if e.ts >= from => c.fail(
                "window",
                format!("seq {}", a - 1),
                format!("the entry before the window is at {}, not before {}", e.ts, w.from),
            ),
            Some(_) => {}
            None if project.is_some() => out.warnings.push(format!(
                "the entry before the window (seq {}) is another project's; the lower edge is proved by seq only",
                a - 1
            )),
            None => c.fail("window", format!("seq {}", a - 1), "the pack does not prove the entry before the window"),
        }
    }
    if b < cp.size {
        match &after {
            Some(e) if e.ts < to => c.fail(
                "window",
                format!("seq {b}"),
                format!("the entry after the window is at {}, before its end {}", e.ts, w.to),
            ),
            Some(_) => {}
            None if project.is_some() => out.warnings.push(format!(
                "the entry after the window (seq {b}) is another project's; the upper edge is proved by seq only"
            )),
            None => c.fail("window", format!("seq {b}"), "the pack does not prove the entry after the window"),
        }
    } else if created < to {
        c.fail(
            "window",
            MANIFEST,
            format!(
                "the pack was made at {} before its window ended at {}",
                w.created, w.to
            ),
        );
    } else {
        out.warnings.push(format!(
            "the window ends at the checkpoint's tree size ({b}): that no entry of the window came after rests on the manifest's creation time {}, not on a proof",
            w.created
        ));
    }

    // The entries, on two threads: this one inflates, splits, hashes and
    // feeds the range proof; the other parses, checks chain, times and
    // scope, and folds.
    let total = b - a;
    let mut rv = RangeVerifier::new(a);
    let mut entries_hash = Sha256::new();
    let mut entries_bytes = 0u64;
    let mut withheld = 0u64;
    let window = Window {
        from,
        to,
        project: project.clone(),
        prev_leaf: before.as_ref().map(|(_, h)| *h),
    };
    let (fold, mut hashers, mut late) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(16);
        let worker = scope.spawn(move || check_entries(rx, window, fold));
        let mut batch = Vec::with_capacity(BATCH);
        let mut batch_bytes = 0usize;
        match zip.by_name(ENTRIES) {
            Err(e) => c.fail("file", ENTRIES, e.to_string()),
            Ok(f) => {
                let mut reader = BufReader::with_capacity(1 << 20, f);
                let mut n = 0u64;
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
                    entries_bytes += k as u64;
                    let seq = a + n;
                    let line_no = n + 1;
                    let loc = move || format!("{ENTRIES}:{line_no}");
                    n += 1;
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
                                rv.push(h);
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
                        rv.push(leaf);
                        batch.push(Item::Entry { seq, leaf, line });
                    }
                    batch_bytes += k;
                    if batch.len() == BATCH || batch_bytes >= BATCH_BYTES {
                        batch_bytes = 0;
                        progress(n, total);
                        if tx
                            .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
                progress(n, total);
                if n != total {
                    c.fail(
                        "entry",
                        ENTRIES,
                        format!("{n} entries, but the window [{a}, {b}) holds {total}"),
                    );
                }
                out.entries = n;
            }
        }
        let _ = tx.send(batch);
        drop(tx);
        worker.join().expect("the entry checker does not panic")
    });
    c.problems.append(&mut late);
    let digest = hex::encode(entries_hash.finalize());
    if let Some(f) = manifest.files.iter().find(|f| f.path == ENTRIES)
        && (f.sha256 != digest || f.bytes != entries_bytes)
    {
        c.fail("file", ENTRIES, "SHA-256 does not match the manifest");
    }
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
    if withheld != manifest.withheld {
        c.fail(
            "manifest",
            MANIFEST,
            format!(
                "says {} entries withheld, the pack has {withheld}",
                manifest.withheld
            ),
        );
    }
    if let Some(r) = &range {
        if total == 0 {
            if !r.proof.is_empty() {
                c.fail("range", RANGE_PROOF, "an empty window has no range proof");
            }
        } else {
            match decode_hashes(&r.proof) {
                Err(e) => c.fail("range", RANGE_PROOF, e.to_string()),
                Ok(proof) => {
                    if let Err(e) = rv.finish(cp.size, &proof, &cp.root) {
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
    // The derived files, re-derived.
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
        match manifest.files.iter().find(|f| f.path == path) {
            None => c.fail("derived", path, "missing from the manifest"),
            Some(f) if f.sha256 != sha => c.fail(
                "derived",
                path,
                "does not match what the entries show (re-derived from the entries, the file differs)",
            ),
            Some(_) => out.rederived.push(path),
        }
    }
    out.problems = c.problems;
    out.ok = out.problems.is_empty();
    Ok(out)
}

/// The entry count of the zip's end-of-central-directory record (`None`
/// when it says 0xFFFF, i.e. zip64, or cannot be found). Leaves `r` at 0.
fn directory_entries<R: Read + Seek>(r: &mut R) -> io::Result<Option<u64>> {
    let len = r.seek(io::SeekFrom::End(0))?;
    let tail = len.min(22 + 65_535);
    r.seek(io::SeekFrom::Start(len - tail))?;
    let mut buf = vec![0u8; tail as usize];
    r.read_exact(&mut buf)?;
    r.seek(io::SeekFrom::Start(0))?;
    let found = (0..buf.len().saturating_sub(21))
        .rev()
        .find(|&i| buf[i..i + 4] == [0x50, 0x4b, 0x05, 0x06]);
    Ok(found.and_then(|i| {
        let n = u16::from_le_bytes([buf[i + 10], buf[i + 11]]);
        (n != 0xFFFF).then_some(u64::from(n))
    }))
}

fn check_manifest<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    key: &LogVerifier,
    c: &mut Checker,
) -> Option<Manifest> {
    let bytes = match read_small(zip, MANIFEST) {
        Ok(b) => b,
        Err(e) => {
            c.fail("manifest", MANIFEST, e);
            return None;
        }
    };
    let sig = match read_small(zip, MANIFEST_SIG)
        .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            c.fail("signature", MANIFEST_SIG, e);
            return None;
        }
    };
    match key.verify_text(&sig) {
        Err(e) => {
            c.fail(
                "signature",
                MANIFEST_SIG,
                format!("not signed by the log key: {e}"),
            );
            return None;
        }
        Ok(text) => {
            if text != manifest_note_text(&hex::encode(Sha256::digest(&bytes))) {
                c.fail(
                    "signature",
                    MANIFEST_SIG,
                    "signs another manifest than manifest.json",
                );
                return None;
            }
        }
    }
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            c.fail("manifest", MANIFEST, e.to_string());
            return None;
        }
    };
    if manifest.format != PACK_FORMAT {
        c.fail(
            "manifest",
            MANIFEST,
            format!("format {:?}, expected {PACK_FORMAT:?}", manifest.format),
        );
        return None;
    }
    if manifest.origin != key.origin() || manifest.public_key != key.public_key() {
        c.fail(
            "manifest",
            MANIFEST,
            format!("made for log {}, not {}", manifest.origin, key.origin()),
        );
    }
    Some(manifest)
}

/// Every file the manifest names is there with its hash, and nothing else
/// is. `entries.jsonl` is hashed during the main pass.
fn check_files<R: Read + Seek>(zip: &mut ZipArchive<R>, m: &Manifest, c: &mut Checker) {
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    for name in &names {
        if name != MANIFEST && name != MANIFEST_SIG && !m.files.iter().any(|f| &f.path == name) {
            c.fail(
                "file",
                name.clone(),
                "is in the pack but not in the manifest",
            );
        }
    }
    for f in &m.files {
        if !names.contains(&f.path) {
            c.fail(
                "file",
                f.path.clone(),
                "named by the manifest but missing from the pack",
            );
            continue;
        }
        if f.path == ENTRIES {
            continue;
        }
        match sha256_of(zip, &f.path) {
            Ok((sha, n)) if sha == f.sha256 && n == f.bytes => {}
            Ok(_) => c.fail(
                "file",
                f.path.clone(),
                "SHA-256 does not match the manifest",
            ),
            Err(e) => c.fail("file", f.path.clone(), e),
        }
    }
}
