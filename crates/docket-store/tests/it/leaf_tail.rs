//! How both backends keep the leaf tile being filled: a row per hash in
//! `leaf_tail` until the tile is full, so a commit writes only its own
//! leaves; a partial tile in the earlier layout (one blob, rewritten by
//! every commit, as an older docket writes it) is taken over on open; and
//! readers see the tile whole while it fills.

use std::sync::Arc;

use docket_core::LogSigner;
use docket_core::merkle::MemoryTree;
use docket_store::{Ledger, LedgerConfig};

use crate::support::{RawValue, TestDb, receipt, verify_all};

fn open(db: &TestDb) -> Ledger {
    Ledger::open(db.reopen(), LedgerConfig::default()).unwrap()
}

fn append(ledger: &Ledger, from: u64, to: u64) {
    // One entry per commit, as the gateway appends.
    for i in from..to {
        ledger.append_blocking(vec![receipt(i)]).unwrap();
    }
}

fn int(v: &[RawValue]) -> i64 {
    match v {
        [RawValue::Int(i)] => *i,
        other => panic!("expected one integer, got {other:?}"),
    }
}

/// (bytes of the level-0 tile `idx`'s blob, rows in `leaf_tail`).
fn layout(db: &TestDb, idx: i64) -> (i64, i64) {
    let blob = db.raw.query(
        "SELECT length(hashes) FROM tiles WHERE level = 0 AND idx = $1",
        &[RawValue::Int(idx)],
    );
    let tail = db.raw.query("SELECT count(*) FROM leaf_tail", &[]);
    (int(&blob), int(&tail))
}

/// Writes the partial tile 1 as one blob, as the layout before `leaf_tail`
/// (and an older docket) does, and empties `leaf_tail`. Returns the blob.
fn to_earlier_layout(db: &TestDb) -> Vec<u8> {
    let hashes: Vec<u8> = db
        .raw
        .query("SELECT hash FROM leaf_tail ORDER BY seq", &[])
        .into_iter()
        .flat_map(|v| match v {
            RawValue::Bytes(b) => b,
            RawValue::Int(_) => panic!("hash is not bytes"),
        })
        .collect();
    db.raw.query(
        "UPDATE tiles SET hashes = $1 WHERE level = 0 AND idx = 1",
        &[RawValue::Bytes(hashes.clone())],
    );
    db.raw.query("DELETE FROM leaf_tail", &[]);
    hashes
}

/// Roots, proofs and `verify_log` agree with a tree built from the entries.
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
    let report = verify_all(ledger, signer);
    assert_eq!(report.entries, size);
}

pub fn the_tile_being_filled_is_kept_a_hash_per_row_until_it_is_full(db: TestDb) {
    let signer = LogSigner::generate("test.docket/log").unwrap();
    let ledger = open(&db);
    append(&ledger, 0, 300);
    // Tile 0 full and whole; tile 1 has its row (first ts) and 44 leaves.
    assert_eq!(layout(&db, 0).0, 8192);
    assert_eq!(layout(&db, 1), (0, 44));
    check(&ledger, 300, &signer);

    // A restart reads the 44 back; filling tile 1 writes it whole.
    drop(ledger);
    let ledger = open(&db);
    assert_eq!(ledger.size(), 300);
    append(&ledger, 300, 520);
    assert_eq!(layout(&db, 1).0, 8192);
    assert_eq!(layout(&db, 2), (0, 8));
    check(&ledger, 520, &signer);
}

pub fn a_partial_tile_in_the_earlier_layout_is_taken_over(db: TestDb, back_to_version_1: &str) {
    let root = {
        let ledger = open(&db);
        append(&ledger, 0, 300);
        ledger.root(300).unwrap()
    };
    // A database from before `leaf_tail` existed.
    assert_eq!(to_earlier_layout(&db).len(), 44 * 32);
    db.raw.query("DROP TABLE leaf_tail", &[]);
    db.raw.query(back_to_version_1, &[]);
    let ledger = open(&db);
    assert_eq!(layout(&db, 1), (0, 44));
    assert_eq!(ledger.root(300).unwrap(), root);
    append(&ledger, 300, 320);
    let root = ledger.root(320).unwrap();
    drop(ledger);

    // An older docket run on the migrated database: it wrote tile 1 as a
    // blob again, and a row of a tile since filled was left behind.
    to_earlier_layout(&db);
    db.raw.query(
        "INSERT INTO leaf_tail (seq, hash) VALUES (7, $1)",
        &[RawValue::Bytes(vec![0; 32])],
    );
    let ledger = open(&db);
    assert_eq!(layout(&db, 1), (0, 64));
    assert_eq!(ledger.root(320).unwrap(), root);
    append(&ledger, 320, 600);
    let signer = LogSigner::generate("test.docket/log").unwrap();
    check(&ledger, 600, &signer);
}

/// Proofs read the tile being filled while the appender fills it, across
/// several fills: each read sees every leaf of the size it started from.
/// (Both backends read the blob and the rows in one snapshot; the
/// interleaving that guards against is too rare to hit on purpose here.)
pub fn readers_see_the_tile_being_filled_whole_while_it_fills(db: TestDb) {
    let ledger = Arc::new(open(&db));
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

mod sqlite {
    use crate::support;

    #[test]
    fn the_tile_being_filled_is_kept_a_hash_per_row_until_it_is_full() {
        super::the_tile_being_filled_is_kept_a_hash_per_row_until_it_is_full(support::sqlite());
    }
    #[test]
    fn a_partial_tile_in_the_earlier_layout_is_taken_over() {
        super::a_partial_tile_in_the_earlier_layout_is_taken_over(
            support::sqlite(),
            "PRAGMA user_version = 1",
        );
    }
    #[test]
    fn readers_see_the_tile_being_filled_whole_while_it_fills() {
        super::readers_see_the_tile_being_filled_whole_while_it_fills(support::sqlite());
    }
}

mod postgres {
    use crate::support;

    #[test]
    fn the_tile_being_filled_is_kept_a_hash_per_row_until_it_is_full() {
        super::the_tile_being_filled_is_kept_a_hash_per_row_until_it_is_full(support::postgres());
    }
    #[test]
    fn a_partial_tile_in_the_earlier_layout_is_taken_over() {
        super::a_partial_tile_in_the_earlier_layout_is_taken_over(
            support::postgres(),
            "DELETE FROM docket_migrations WHERE version = 2",
        );
    }
    #[test]
    fn readers_see_the_tile_being_filled_whole_while_it_fills() {
        super::readers_see_the_tile_being_filled_whole_while_it_fills(support::postgres());
    }
}
