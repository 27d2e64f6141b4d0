//! The pack as a zip archive: its directory, the signed manifest, and the
//! hashes of the files the manifest lists.

use std::io::{self, Read, Seek};

use docket_core::LogVerifier;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use super::Checker;
use crate::pack::{ENTRIES, MANIFEST, MANIFEST_SIG, Manifest, PACK_FORMAT, manifest_note_text};

/// Largest manifest, checkpoint, proof or context file read whole.
const MAX_SMALL_FILE: u64 = 64 * 1024 * 1024;

pub(super) fn read_small<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    path: &str,
) -> Result<Vec<u8>, String> {
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

/// The entry count of the zip's end-of-central-directory record (`None`
/// when it says 0xFFFF, i.e. zip64, or cannot be found). Leaves `r` at 0.
pub(super) fn directory_entries<R: Read + Seek>(r: &mut R) -> io::Result<Option<u64>> {
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

pub(super) fn check_manifest<R: Read + Seek>(
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
pub(super) fn check_files<R: Read + Seek>(zip: &mut ZipArchive<R>, m: &Manifest, c: &mut Checker) {
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
