//! How the SQLite backend keeps the leaf tile being filled: a row per hash
//! in `leaf_tail` until the tile is full, so a commit writes only its own
//! leaves; and a database written by the earlier layout (the partial tile
//! as one blob, rewritten by every commit) is taken over on open.

use std::path::Path;
use std::sync::Arc;

use docket_core::LogSigner;
use docket_core::merkle::MemoryTree;
use docket_store::sqlite::{SqliteBackend, SqliteConfig};
use docket_store::{Backend, BackendSource, Ledger, LedgerConfig, VerifyOptions, verify_log};
use rusqlite::{Connection, params};

use crate::support::receipt;

fn open(path: &Path) -> Ledger {
    let backend: Arc<dyn Backend> =
        Arc::new(SqliteBackend::open(&SqliteConfig::new(path)).unwrap());
    Ledger::open(backend, LedgerConfig::default()).unwrap()
}

fn append(ledger: &Ledger, from: u64, to: u64) {
    // One entry per commit, as the gateway appends.
    for i in from..to {
        ledger.append_blocking(vec![receipt(i)]).unwrap();
    }
}

/// (bytes of the level-0 tile `idx`'s blob, rows in `leaf_tail`).
fn layout(path: &Path, idx: i64) -> (i64, i64) {
    let c = Connection::open(path).unwrap();
    let blob = c
        .query_row(
            "SELECT length(hashes) FROM tiles WHERE level = 0 AND idx = ?1",
            [idx],
            |r| r.get(0),
        )
        .unwrap();
    let tail = c
        .query_row("SELECT count(*) FROM leaf_tail", [], |r| r.get(0))
        .unwrap();
    (blob, tail)
}

/// The roots at every size, the proofs and `verify_log` agree with a tree
/// built from the entries themselves.
fn check(ledger: &Ledger, size: u64, signer: &LogSigner) {
    let mut tree = MemoryTree::new();
    for s in 0..size {
        tree.push(ledger.entry(s).unwrap().leaf_hash());
    }
    for n in [1, 255, 256, 257, 300, size - 1, size] {
        assert_eq!(
            ledger.root(n).unwrap(),
            tree.root(n).unwrap(),
            "root at {n}"
        );
    }
    let root = ledger.root(size).unwrap();
    for seq in [0, 255, 256, size - 1] {
        let proof = ledger.inclusion_proof(seq, size).unwrap();
        let leaf = ledger.entry(seq).unwrap().leaf_hash();
        docket_core::merkle::verify_inclusion(&proof, seq, size, &leaf, &root).unwrap();
    }
    ledger.checkpoint(signer).unwrap();
    let report = verify_log(
        &BackendSource(ledger.backend().as_ref()),
        &signer.verifier(),
        &VerifyOptions { check_bodies: true },
        &|_| {},
    )
    .unwrap();
    assert_eq!(report.entries, size);
}

#[test]
fn the_tile_being_filled_is_kept_a_hash_per_row_until_it_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let signer = LogSigner::generate("test.docket/log").unwrap();
    let ledger = open(&path);
    append(&ledger, 0, 300);
    // Tile 0 full and whole; tile 1 has its row (first ts) and 44 leaves.
    assert_eq!(layout(&path, 0).0, 8192);
    assert_eq!(layout(&path, 1), (0, 44));
    check(&ledger, 300, &signer);

    // A restart reads the 44 back; filling tile 1 writes it whole.
    drop(ledger);
    let ledger = open(&path);
    assert_eq!(ledger.size(), 300);
    append(&ledger, 300, 520);
    assert_eq!(layout(&path, 1).0, 8192);
    assert_eq!(layout(&path, 2), (0, 8));
    check(&ledger, 520, &signer);
}

/// Writes the partial tile 1 as one blob, as the layout before `leaf_tail`
/// (and an older docket) does, and empties `leaf_tail`.
fn to_earlier_layout(c: &Connection) -> Vec<u8> {
    let mut hashes = Vec::new();
    let mut stmt = c
        .prepare("SELECT hash FROM leaf_tail ORDER BY seq")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        hashes.extend(r.get::<_, Vec<u8>>(0).unwrap());
    }
    c.execute(
        "UPDATE tiles SET hashes = ?1 WHERE level = 0 AND idx = 1",
        params![hashes],
    )
    .unwrap();
    c.execute("DELETE FROM leaf_tail", []).unwrap();
    hashes
}

#[test]
fn a_partial_tile_in_the_earlier_layout_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let root = {
        let ledger = open(&path);
        append(&ledger, 0, 300);
        ledger.root(300).unwrap()
    };
    // A database from before `leaf_tail` existed (schema version 1).
    {
        let c = Connection::open(&path).unwrap();
        assert_eq!(to_earlier_layout(&c).len(), 44 * 32);
        c.execute_batch("DROP TABLE leaf_tail; PRAGMA user_version = 1;")
            .unwrap();
    }
    let ledger = open(&path);
    assert_eq!(layout(&path, 1), (0, 44));
    assert_eq!(ledger.root(300).unwrap(), root);
    append(&ledger, 300, 320);
    let root = ledger.root(320).unwrap();
    drop(ledger);

    // An older docket run on the migrated database: it wrote tile 1 as a
    // blob again, and a row of a tile since filled was left behind.
    {
        let c = Connection::open(&path).unwrap();
        to_earlier_layout(&c);
        c.execute(
            "INSERT INTO leaf_tail (seq, hash) VALUES (7, zeroblob(32))",
            [],
        )
        .unwrap();
    }
    let ledger = open(&path);
    assert_eq!(layout(&path, 1), (0, 64));
    assert_eq!(ledger.root(320).unwrap(), root);
    append(&ledger, 320, 600);
    let signer = LogSigner::generate("test.docket/log").unwrap();
    check(&ledger, 600, &signer);
}

/// Proofs read the tile being filled while the appender fills it, across
/// several fills: each read sees every leaf of the size it started from.
/// (`tile` reads the blob and the rows in one snapshot; the interleaving
/// that guards against is too rare to hit on purpose here.)
#[test]
fn readers_see_the_tile_being_filled_whole_while_it_fills() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let ledger = Arc::new(open(&path));
    append(&ledger, 0, 1);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (ledger, done) = (ledger.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let size = ledger.size();
                let tile = (size - 1) / 256;
                let hashes = ledger.backend().tile(0, tile).unwrap().unwrap();
                let want = (size - tile * 256).min(256) as usize;
                assert!(
                    hashes.len() >= want * 32,
                    "tile {tile} read {} hashes at size {size}",
                    hashes.len() / 32
                );
                ledger.root(size).unwrap();
                reads += 1;
            }
            reads
        })
    };
    append(&ledger, 1, 1_300);
    done.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
}
