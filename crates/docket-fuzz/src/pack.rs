//! Evidence packs (`docket_evidence::verify::verify_pack`): zip archives,
//! and the files inside them — manifest, checkpoint, range proof, context
//! receipts, entries — past the manifest's signature.

use std::io::{Cursor, Write as _};

use docket_evidence::pack::{MANIFEST, MANIFEST_SIG, manifest_note_text};
use docket_evidence::verify::{PackCheck, verify_pack};
use sha2::{Digest as _, Sha256};
use zip::write::SimpleFileOptions;

use crate::keys;

/// The line that starts each file of a pack in the text form.
pub(crate) const FILE_MARK: &[u8] = b"--- ";

/// A pack in one of two forms. Bytes that start `PK` are a zip archive,
/// verified as they are: mutations reach the zip reader and whatever
/// survives it. Anything else is the pack's files as text,
///
/// ```text
/// --- manifest.json
/// {…}
/// --- entries.jsonl
/// {…}
/// ```
///
/// zipped here, with `manifest.sig` signed by the log key over whatever
/// the manifest says unless the input has its own: so mutated manifests,
/// proofs, receipts and entries are checked one by one instead of all
/// stopping at the signature.
pub fn pack(data: &[u8]) {
    let Some(zip) = as_zip(data) else { return };
    if let Ok(outcome) = verify_pack(Cursor::new(zip), keys::log_verifier(), &mut |_, _| {}) {
        assert_eq!(outcome.ok, outcome.problems.is_empty());
    }
}

/// The same inputs as [`pack`], verified up to the derived files: the zip,
/// the manifest, the checkpoint, the range proof, the context receipts and
/// every entry line, without re-deriving the report and the control files
/// from the fold, which is most of `pack`'s time: the parsers get many
/// more executions in the same time.
pub fn pack_window(data: &[u8]) {
    let Some(zip) = as_zip(data) else { return };
    let Ok(mut check) = PackCheck::open(Cursor::new(zip), keys::log_verifier()) else {
        return;
    };
    if let Some(anchor) = check.anchor() {
        check.window(&anchor, &mut |_, _| {});
    }
    let outcome = check.finish();
    assert_eq!(outcome.ok, outcome.problems.is_empty());
}

/// `data` as a zip archive: as it is when it starts `PK`, else its text
/// form zipped (see [`pack`]).
fn as_zip(data: &[u8]) -> Option<Vec<u8>> {
    if data.starts_with(b"PK") {
        Some(data.to_vec())
    } else {
        zip_files(&split_files(data))
    }
}

/// The text form's files, in order; content before the first mark is
/// ignored.
pub(crate) fn split_files(data: &[u8]) -> Vec<(&str, &[u8])> {
    let mut files = Vec::new();
    let mut at = if data.starts_with(FILE_MARK) {
        Some(0)
    } else {
        find_mark(data, 0)
    };
    while let Some(start) = at {
        let name_start = start + FILE_MARK.len();
        let name_end = data[name_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| name_start + i);
        let content_start = (name_end + 1).min(data.len());
        at = find_mark(data, content_start.saturating_sub(1));
        // The newline before the next mark belongs to the mark.
        let content_end = at.map_or(data.len(), |next| (next - 1).max(content_start));
        if let Ok(name) = std::str::from_utf8(&data[name_start..name_end]) {
            files.push((name, &data[content_start..content_end]));
        }
    }
    files
}

/// The next `\n--- ` at or after `from`, as the offset of its `---`.
fn find_mark(data: &[u8], from: usize) -> Option<usize> {
    let needle = b"\n--- ";
    data.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i + 1)
}

/// The text form of a pack's files, the inverse of [`split_files`] for
/// files that do not contain the mark.
pub(crate) fn join_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in files {
        if !out.is_empty() {
            out.push(b'\n');
        }
        out.extend_from_slice(FILE_MARK);
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(content);
    }
    out
}

pub(crate) fn zip_files(files: &[(&str, &[u8])]) -> Option<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // Stored, not deflated: the verifier's reading is what is fuzzed.
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut has_sig = false;
    for (name, content) in files {
        has_sig |= *name == MANIFEST_SIG;
        zip.start_file(*name, options).ok()?;
        zip.write_all(content).ok()?;
    }
    if !has_sig && let Some((_, manifest)) = files.iter().find(|(name, _)| *name == MANIFEST) {
        let text = manifest_note_text(&hex::encode(Sha256::digest(manifest)));
        let sig = keys::log_signer()
            .sign_text(&text)
            .expect("the log key signs a manifest digest");
        zip.start_file(MANIFEST_SIG, options).ok()?;
        zip.write_all(sig.as_bytes()).ok()?;
    }
    Some(zip.finish().ok()?.into_inner())
}
