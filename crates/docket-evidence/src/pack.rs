//! The pack format and the writer. A pack is a zip of:
//!
//! | file | what |
//! |---|---|
//! | `manifest.json` | format, log origin and key, window, checkpoint, every other file with its SHA-256 |
//! | `manifest.sig` | a signed note by the log key over the manifest's SHA-256 |
//! | `checkpoint.txt` | the signed checkpoint everything is proved against |
//! | `proof/range.json` | the proof that `entries.jsonl` is exactly `[first_seq, end_seq)` of that tree |
//! | `proof/context.jsonl` | receipts (entry + inclusion proof) of the window's edges and of the identity entries before it |
//! | `entries.jsonl` | the window's entries, canonical bytes one per line; another project's entry as `{"leaf":…,"seq":…}` |
//! | `registry.json`, `vendors.json`, `controls.json`, `records/*.jsonl`, `report.html`, `oscal/assessment-results.json` | derived from the entries alone; the verifier re-derives them |

use std::io::{self, Seek, Write};

use docket_core::merkle::leaf_hash;
use docket_core::{Entry, Hash, LogSigner, Receipt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tempfile::SpooledTempFile;
use thiserror::Error;
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use crate::controls::WindowInfo;
use crate::fold::{Derived, Fold, Line, RecordFile, RecordSink, Refs};

pub const PACK_FORMAT: &str = "docket-evidence/v2";
pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_SIG: &str = "manifest.sig";
pub const CHECKPOINT: &str = "checkpoint.txt";
pub const RANGE_PROOF: &str = "proof/range.json";
pub const CONTEXT: &str = "proof/context.jsonl";
pub const ENTRIES: &str = "entries.jsonl";
pub const REGISTRY: &str = "registry.json";
pub const VENDORS: &str = "vendors.json";
pub const CONTROLS: &str = "controls.json";
pub const REPORT: &str = "report.html";
pub const OSCAL: &str = "oscal/assessment-results.json";

/// The text of the manifest's signed note: a first line that can never be
/// a log origin's checkpoint, then the manifest's digest.
pub fn manifest_note_text(manifest_sha256: &str) -> String {
    format!("{PACK_FORMAT} manifest\nsha256:{manifest_sha256}\n")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointInfo {
    pub size: u64,
    /// Base64, as in the checkpoint note.
    pub root: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub origin: String,
    /// The log's verifier key (`origin+id+base64`).
    pub public_key: String,
    pub window: WindowInfo,
    pub checkpoint: CheckpointInfo,
    /// Entries in the window, and how many of them are withheld (other projects').
    pub entries: u64,
    pub withheld: u64,
    /// Every file but the manifest and its signature, by path.
    pub files: Vec<FileDigest>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeProof {
    pub first_seq: u64,
    pub end_seq: u64,
    pub tree_size: u64,
    /// Base64 hashes; empty for an empty window.
    pub proof: Vec<String>,
}

/// A withheld entry's line in `entries.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafLine {
    /// Hex leaf hash.
    pub leaf: String,
    pub seq: u64,
}

#[derive(Debug, Error)]
pub enum PackError {
    #[error("writing the pack: {0}")]
    Io(#[from] io::Error),
    #[error("writing the pack: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("entry {seq}: {why}")]
    Entry { seq: u64, why: String },
    #[error("signing the manifest: {0}")]
    Sign(String),
}

/// What the exporter knows before it streams the entries.
pub struct PackHeader<'a> {
    pub signer: &'a LogSigner,
    pub window: WindowInfo,
    /// The signed checkpoint note the proofs lead to.
    pub checkpoint_note: String,
    pub tree_size: u64,
    pub root: Hash,
    pub range_proof: Vec<Hash>,
    /// Receipts of the window's edges (`first_seq - 1`, `end_seq`) and of
    /// the identity entries before it, in `seq` order.
    pub context: Vec<Receipt>,
}

/// SHA-256 (hex) of the manifest as written in the pack.
pub fn manifest_sha256(m: &Manifest) -> String {
    hex::encode(Sha256::digest(json_bytes(m)))
}

/// Writes the serialized form the verifier re-derives: pretty JSON and a newline.
pub fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The derived files, as bytes, in the order they are written.
pub fn derived_files(d: &Derived) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (REGISTRY, json_bytes(&d.registry)),
        (VENDORS, json_bytes(&d.vendors)),
        (CONTROLS, json_bytes(&d.controls)),
        (
            REPORT,
            crate::report::render(&d.controls, &d.vendors).into_bytes(),
        ),
        (
            OSCAL,
            json_bytes(&crate::oscal::assessment_results(&d.controls)),
        ),
    ]
}

struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Record files are produced while `entries.jsonl` is being written, so
/// they wait in spooled temporary files (memory up to a limit, then disk).
struct Spool {
    files: Vec<(RecordFile, io::BufWriter<SpooledTempFile>)>,
}

impl RecordSink for Spool {
    fn line(&mut self, file: RecordFile, line: &[u8]) -> io::Result<()> {
        let slot = self
            .files
            .iter_mut()
            .find(|(f, _)| *f == file)
            .expect("every record file has a spool");
        slot.1.write_all(line)
    }
}

/// Streams a pack into a zip: create it with the header, push the
/// window's entries in `seq` order, then [`PackWriter::finish`].
pub struct PackWriter<'a, W: Write + Seek> {
    zip: ZipWriter<W>,
    header: PackHeader<'a>,
    files: Vec<FileDigest>,
    entries: Hashing<io::Sink>,
    fold: Fold,
    spool: Spool,
    next: u64,
    withheld: u64,
}

fn options() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true)
}

impl<'a, W: Write + Seek> PackWriter<'a, W> {
    pub fn new(out: W, mut header: PackHeader<'a>) -> Result<Self, PackError> {
        let to = docket_core::Timestamp::parse_rfc3339(&header.window.to).map_err(|e| {
            PackError::Entry {
                seq: header.window.end_seq,
                why: format!("window end: {e}"),
            }
        })?;
        let mut fold = Fold::new(header.window.clone(), to);
        let project = header.window.project.clone();
        let (a, b) = (header.window.first_seq, header.window.end_seq);
        // Keep what the scope discloses: identity entries before the
        // window that are not another project's, and the edges when they
        // are this project's (or the pack is for all projects).
        let mut kept = Vec::new();
        for r in std::mem::take(&mut header.context) {
            let entry = Entry::from_json_value(&r.entry).map_err(|e| PackError::Entry {
                seq: 0,
                why: e.to_string(),
            })?;
            let body = entry.body_value();
            let refs = Refs::of_value(&body);
            let seq = entry.seq.0;
            let context = seq < a
                && docket_core::identity::Event::is_identity_type(entry.kind)
                && !fold.elsewhere(entry.kind, &refs, project.as_deref());
            let edge = (seq + 1 == a || seq == b)
                && !fold.elsewhere(entry.kind, &refs, project.as_deref());
            if context {
                fold.context(&entry, &body);
            }
            if context || edge {
                kept.push(r);
            }
        }
        header.context = kept;
        let mut zip = ZipWriter::new(out);
        zip.start_file(ENTRIES, options())?;
        let spool = Spool {
            files: RecordFile::ALL
                .iter()
                .map(|f| {
                    (
                        *f,
                        io::BufWriter::new(SpooledTempFile::new(8 * 1024 * 1024)),
                    )
                })
                .collect(),
        };
        Ok(Self {
            zip,
            next: header.window.first_seq,
            header,
            files: Vec::new(),
            entries: Hashing {
                inner: io::sink(),
                hash: Sha256::new(),
                bytes: 0,
            },
            fold,
            spool,
            withheld: 0,
        })
    }

    /// The next entry of the window: its canonical bytes as stored.
    pub fn push(&mut self, seq: u64, bytes: &[u8]) -> Result<(), PackError> {
        if seq != self.next {
            return Err(PackError::Entry {
                seq,
                why: format!("expected entry {} next", self.next),
            });
        }
        self.next += 1;
        let line = Line::parse(bytes).map_err(|why| PackError::Entry { seq, why })?;
        let leaf_line: Vec<u8>;
        let project = self.header.window.project.as_deref();
        let elsewhere = project.is_some()
            && self
                .fold
                .elsewhere(line.kind, &Refs::of_raw(line.body), project);
        let out: &[u8] = if elsewhere {
            self.withheld += 1;
            self.fold.withheld();
            leaf_line = serde_json::to_vec(&LeafLine {
                leaf: hex::encode(leaf_hash(bytes).0),
                seq,
            })
            .unwrap_or_default();
            &leaf_line
        } else {
            self.fold
                .entry(&line, &mut self.spool)
                .map_err(PackError::Io)?;
            bytes
        };
        self.write_entries(out)?;
        self.write_entries(b"\n")
    }

    fn write_entries(&mut self, b: &[u8]) -> Result<(), PackError> {
        self.zip.write_all(b)?;
        self.entries.write_all(b)?;
        Ok(())
    }

    /// Writes the derived files, the proofs and the signed manifest.
    pub fn finish(self) -> Result<(W, Manifest), PackError> {
        let Self {
            mut zip,
            header: h,
            mut files,
            entries,
            fold,
            spool,
            next,
            withheld,
        } = self;
        if next != h.window.end_seq {
            return Err(PackError::Entry {
                seq: next,
                why: format!(
                    "the window ends at {} but entries stopped",
                    h.window.end_seq
                ),
            });
        }
        files.push(FileDigest {
            path: ENTRIES.to_owned(),
            sha256: hex::encode(entries.hash.finalize()),
            bytes: entries.bytes,
        });
        for (file, spool) in spool.files {
            let mut spool = spool.into_inner().map_err(|e| e.into_error())?;
            spool.seek(io::SeekFrom::Start(0))?;
            zip.start_file(file.path(), options())?;
            let mut hashing = Hashing {
                inner: &mut zip,
                hash: Sha256::new(),
                bytes: 0,
            };
            io::copy(&mut spool, &mut hashing)?;
            let (hash, bytes) = (hashing.hash.finalize(), hashing.bytes);
            files.push(FileDigest {
                path: file.path().to_owned(),
                sha256: hex::encode(hash),
                bytes,
            });
        }
        let range = RangeProof {
            first_seq: h.window.first_seq,
            end_seq: h.window.end_seq,
            tree_size: h.tree_size,
            proof: h.range_proof.iter().map(|x| x.to_string()).collect(),
        };
        let mut context = Vec::new();
        for r in &h.context {
            context.extend(serde_json::to_vec(r).unwrap_or_default());
            context.push(b'\n');
        }
        let mut written = derived_files(&fold.finish());
        written.push((CHECKPOINT, h.checkpoint_note.clone().into_bytes()));
        written.push((RANGE_PROOF, json_bytes(&range)));
        written.push((CONTEXT, context));
        for (path, bytes) in written {
            zip.start_file(path, options())?;
            zip.write_all(&bytes)?;
            files.push(FileDigest {
                path: path.to_owned(),
                sha256: hex::encode(Sha256::digest(&bytes)),
                bytes: bytes.len() as u64,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = Manifest {
            format: PACK_FORMAT.to_owned(),
            origin: h.signer.origin().to_owned(),
            public_key: h.signer.public_key().to_owned(),
            window: h.window.clone(),
            checkpoint: CheckpointInfo {
                size: h.tree_size,
                root: h.root.to_string(),
            },
            entries: h.window.end_seq - h.window.first_seq,
            withheld,
            files,
        };
        let manifest_bytes = json_bytes(&manifest);
        let sig = h
            .signer
            .sign_text(&manifest_note_text(&hex::encode(Sha256::digest(
                &manifest_bytes,
            ))))
            .map_err(|e| PackError::Sign(e.to_string()))?;
        zip.start_file(MANIFEST, options())?;
        zip.write_all(&manifest_bytes)?;
        zip.start_file(MANIFEST_SIG, options())?;
        zip.write_all(sig.as_bytes())?;
        Ok((zip.finish()?, manifest))
    }
}
