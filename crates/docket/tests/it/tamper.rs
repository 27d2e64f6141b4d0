//! `docket verify` catches any change to the SQLite file — a changed byte,
//! a deleted, inserted or reordered entry, a truncated log — and names the
//! first bad `seq`; receipts verify offline and fail once altered.

use std::path::Path;

use rusqlite::{Connection, params};
use serde_json::json;

use crate::support::{ServerProcess, run, stdout};

const N: u64 = 300;

/// A data directory holding `N` entries, all covered by a checkpoint: the
/// bootstrap's, then receipts whose `n` and marker are their `seq`.
fn make_log(dir: &Path) -> ServerProcess {
    let s = ServerProcess::start(dir, None);
    let c = s.client();
    for i in s.base_size..N {
        s.append(&c, json!({"agent": format!("agent-{}", i % 5), "marker": format!("entry-marker-{i:05}"), "n": i}))
            .unwrap();
    }
    s.wait_for_checkpoint(N);
    s
}

fn verify(data_dir: &Path) -> (bool, String) {
    let out = run(&["verify", "--data-dir", data_dir.to_str().unwrap()]);
    let text = stdout(&out) + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("docket.db")).unwrap()
}

fn data(conn: &Connection, seq: u64) -> Vec<u8> {
    conn.query_row(
        "SELECT data FROM entries WHERE seq = ?1",
        [seq as i64],
        |r| r.get(0),
    )
    .unwrap()
}

fn set_data(conn: &Connection, seq: u64, bytes: &[u8]) {
    conn.execute(
        "UPDATE entries SET data = ?1 WHERE seq = ?2",
        params![bytes, seq as i64],
    )
    .unwrap();
}

/// Flips the low bit of byte `i` of entry `seq`.
fn flip_bit(dir: &Path, seq: u64, i: usize) {
    let conn = db(dir);
    let mut bytes = data(&conn, seq);
    bytes[i] ^= 0x01;
    set_data(&conn, seq, &bytes);
}

#[test]
fn verify_names_the_first_bad_seq_for_every_kind_of_tampering() {
    let root = tempfile::tempdir().unwrap();
    let pristine = root.path().join("pristine");
    make_log(&pristine).stop();
    let (ok, text) = verify(&pristine);
    assert!(ok, "an untouched log verifies: {text}");
    assert!(text.contains(&format!("{N} entries")), "{text}");

    let case = |name: &str, tamper: &dyn Fn(&Path), want_seq: Option<u64>| {
        let dir = root.path().join(name);
        copy_dir(&pristine, &dir);
        tamper(&dir);
        let (ok, text) = verify(&dir);
        assert!(!ok, "{name}: tampering went unnoticed: {text}");
        if let Some(seq) = want_seq {
            assert!(
                text.contains(&format!("seq {seq}:")),
                "{name}: wrong position: {text}"
            );
        }
    };

    let by_sql = |name: &str, sql: &str, want_seq: Option<u64>| {
        case(
            name,
            &|d| {
                db(d).execute(sql, []).unwrap();
            },
            want_seq,
        );
    };

    // Every byte of one entry, changed in turn.
    let len = data(&db(&pristine), 137).len();
    for i in 0..len {
        case(&format!("byte-{i}"), &|d| flip_bit(d, 137, i), Some(137));
    }

    by_sql("deleted", "DELETE FROM entries WHERE seq = 42", Some(42));

    case(
        "reordered",
        &|d| {
            let conn = db(d);
            let (a, b) = (data(&conn, 90), data(&conn, 91));
            set_data(&conn, 90, &b);
            set_data(&conn, 91, &a);
        },
        Some(90),
    );

    // An entry slipped in at 200, everything after shifted up, and its
    // `prev` forged to fit the chain: the Merkle tree still tells.
    case(
        "inserted",
        &|d| {
            let conn = db(d);
            let after = docket_core::Entry::decode(&data(&conn, 199)).unwrap();
            conn.execute(
                "UPDATE entries SET seq = seq + 1000000 WHERE seq >= 200",
                [],
            )
            .unwrap();
            conn.execute(
                "UPDATE entries SET seq = seq - 1000000 + 1 WHERE seq >= 1000000",
                [],
            )
            .unwrap();
            let forged = docket_core::Entry {
                seq: docket_core::Seq(200),
                ts: after.ts,
                kind: docket_core::EntryType::Receipt,
                prev: after.leaf_hash(),
                body: docket_core::CanonicalBody::from_value(&json!({"agent": "did:key:forged"}))
                    .unwrap(),
            };
            let mut row = conn
                .prepare("SELECT ts, mow, type FROM entries WHERE seq = 199")
                .unwrap();
            let (ts, mow, kind): (i64, i64, i64) = row
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap();
            conn.execute(
                "INSERT INTO entries (seq, ts, mow, type, data) VALUES (200, ?1, ?2, ?3, ?4)",
                params![ts, mow, kind, forged.encode()],
            )
            .unwrap();
        },
        Some(200),
    );

    // An entry in the leaf tile still being filled (its hashes are a row
    // each until the tile is full) is caught at its own seq too, and so is
    // a hash of that tile changed or removed.
    case("tail-entry", &|d| flip_bit(d, 280, 30), Some(280));
    by_sql(
        "tail-hash",
        "UPDATE leaf_tail SET hash = zeroblob(32) WHERE seq = 265",
        Some(265),
    );
    by_sql(
        "tail-hash-removed",
        "DELETE FROM leaf_tail WHERE seq = 270",
        Some(270),
    );
    by_sql(
        "tail-first-hash-removed",
        "DELETE FROM leaf_tail WHERE seq = 256",
        Some(256),
    );

    // The time index that turns time ranges into seq ranges, skewed.
    by_sql(
        "time-index",
        "UPDATE tiles SET first_ts = first_ts + 3600000000 WHERE level = 0 AND idx = 1",
        Some(256),
    );

    // The last entries removed: the signed checkpoint still covers them.
    by_sql("truncated", "DELETE FROM entries WHERE seq >= 290", None);

    // A body rewritten and the whole tree and chain recomputed by someone
    // without the signing key: the signed checkpoint catches it.
    case(
        "rehashed",
        &|d| {
            let conn = db(d);
            let mut prev = docket_core::Hash([0; 32]);
            let mut leaves = Vec::new();
            for seq in 0..N {
                let mut e = docket_core::Entry::decode(&data(&conn, seq)).unwrap();
                if seq == 10 {
                    e.body = docket_core::CanonicalBody::from_value(
                        &json!({"agent": "did:key:innocent"}),
                    )
                    .unwrap();
                }
                e.prev = prev;
                prev = e.leaf_hash();
                leaves.push(prev);
                set_data(&conn, seq, &e.encode());
            }
            // Rewrite the leaf tiles to match: full tiles whole, the one
            // being filled a hash per row.
            for (i, chunk) in leaves.chunks(256).enumerate() {
                if chunk.len() < 256 {
                    for (k, h) in chunk.iter().enumerate() {
                        let changed = conn
                            .execute(
                                "UPDATE leaf_tail SET hash = ?1 WHERE seq = ?2",
                                params![h.0.to_vec(), (i * 256 + k) as i64],
                            )
                            .unwrap();
                        assert_eq!(changed, 1);
                    }
                    continue;
                }
                let bytes: Vec<u8> = chunk.iter().flat_map(|h| h.0).collect();
                conn.execute(
                    "UPDATE tiles SET hashes = ?1 WHERE level = 0 AND idx = ?2",
                    params![bytes, i as i64],
                )
                .unwrap();
            }
        },
        None,
    );
}

#[test]
fn a_changed_byte_in_the_raw_sqlite_file_is_caught_at_its_seq() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    make_log(&dir).stop();
    // Fold the WAL into the main file so the entry bytes live there.
    db(&dir)
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let path = dir.join("docket.db");
    let mut file = std::fs::read(&path).unwrap();
    let marker = b"entry-marker-00211";
    let at = file
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker in file");
    file[at + marker.len() - 1] = b'9';
    std::fs::write(&path, &file).unwrap();
    let (ok, text) = verify(&dir);
    assert!(!ok, "{text}");
    assert!(text.contains("seq 211:"), "{text}");
}

#[test]
fn a_receipt_verifies_offline_and_fails_after_any_change() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let s = make_log(&dir);
    let file = root.path().join("receipt.json");
    let out = run(&[
        "receipt",
        "get",
        "57",
        "--server",
        &s.base,
        "--token",
        &s.token,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop();
    let key = dir.join("log.pub");
    let verify = |f: &Path| {
        run(&[
            "receipt",
            "verify",
            f.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ])
    };
    let out = verify(&file);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("entry 57"));

    let text = std::fs::read_to_string(&file).unwrap();
    for (from, to) in [
        ("\"n\": 57", "\"n\": 58"),
        ("agent-2", "agent-3"),
        ("\"seq\": 57", "\"seq\": 56"),
    ] {
        assert!(text.contains(from), "{from}");
        let bad = root.path().join("bad.json");
        std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
        let out = verify(&bad);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{from} -> {to}: {}",
            stdout(&out)
        );
        assert!(stdout(&out).starts_with("FAILED"));
    }
    // And with another log's key.
    let other = root.path().join("other");
    ServerProcess::start(&other, None).stop();
    let out = run(&[
        "receipt",
        "verify",
        file.to_str().unwrap(),
        "--key",
        other.join("log.pub").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
}
