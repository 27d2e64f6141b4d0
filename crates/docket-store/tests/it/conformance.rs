//! One suite of behaviour every backend must show, instantiated per backend.

use std::sync::Arc;

use docket_core::{Entry, EntryType, Hash, LogSigner, Timestamp};
use docket_store::{Ledger, LedgerConfig, NewEntry, Order, Query, TimeWindow};
use serde_json::json;

use crate::support::{TestDb, receipt, verify_all};

fn append_n(ledger: &Ledger, from: u64, n: u64) {
    let entries: Vec<NewEntry> = (from..from + n).map(receipt).collect();
    for chunk in entries.chunks(500) {
        ledger.append_blocking(chunk.to_vec()).unwrap();
    }
}

pub fn appends_are_sequenced_chained_and_durable(db: TestDb) {
    let ledger = db.ledger();
    let acks = ledger
        .append_blocking((0..3).map(receipt).collect())
        .unwrap();
    assert_eq!(
        acks.iter().map(|a| a.seq.0).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(acks.windows(2).all(|w| w[0].ts <= w[1].ts));
    let e1 = ledger.entry(1).unwrap();
    assert_eq!(e1.prev, acks[0].leaf_hash);
    assert_eq!(e1.leaf_hash(), acks[1].leaf_hash);
    assert_eq!(ledger.entry(0).unwrap().prev, Hash([0; 32]));
    drop(ledger);

    // Reopened over a new connection, the log continues where it stopped.
    let again = Ledger::open(db.reopen(), LedgerConfig::default()).unwrap();
    assert_eq!(again.size(), 3);
    let more = again.append_blocking(vec![receipt(3)]).unwrap();
    assert_eq!(more[0].seq.0, 3);
    assert_eq!(again.entry(3).unwrap().prev, acks[2].leaf_hash);
}

pub fn concurrent_writers_get_gap_free_seqs(db: TestDb) {
    let ledger = Arc::new(db.ledger());
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        ledger.append_blocking(vec![receipt(t * 1000 + i)]).unwrap()[0]
                            .seq
                            .0
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..800).collect::<Vec<_>>());
    let mut last = Timestamp::from_micros(i64::MIN);
    for s in 0..800 {
        let e = ledger.entry(s).unwrap();
        assert!(e.ts >= last, "ts went back at {s}");
        last = e.ts;
    }
}

pub fn proofs_verify_at_every_size(db: TestDb) {
    let ledger = db.ledger();
    // Enough entries for two tile levels to be in play (256 and 256 * 2 + …).
    append_n(&ledger, 0, 600);
    let mut tree = docket_core::merkle::MemoryTree::new();
    for s in 0..600 {
        tree.push(ledger.entry(s).unwrap().leaf_hash());
    }
    for size in [1u64, 2, 3, 255, 256, 257, 511, 512, 513, 600] {
        let root = ledger.root(size).unwrap();
        assert_eq!(root, tree.root(size).unwrap(), "root at {size}");
        for seq in [0, size / 2, size - 1] {
            let p = ledger.inclusion_proof(seq, size).unwrap();
            let leaf = ledger.entry(seq).unwrap().leaf_hash();
            docket_core::merkle::verify_inclusion(&p, seq, size, &leaf, &root).unwrap();
        }
        for old in [1u64, size / 3, size] {
            if old == 0 {
                continue;
            }
            let p = ledger.consistency_proof(old, size).unwrap();
            let old_root = ledger.root(old).unwrap();
            docket_core::merkle::verify_consistency(&p, old, &old_root, size, &root).unwrap();
        }
        let (a, b) = (size / 4, size - size / 5);
        if a < b {
            let p = ledger.range_proof(a, b, size).unwrap();
            let leaves: Vec<Hash> = (a..b)
                .map(|s| ledger.entry(s).unwrap().leaf_hash())
                .collect();
            docket_core::merkle::verify_range(a, &leaves, size, &p, &root).unwrap();
        }
    }
    assert!(ledger.inclusion_proof(5, 601).is_err());
    assert!(ledger.inclusion_proof(600, 600).is_err());
    assert!(ledger.consistency_proof(10, 5).is_err());

    // The tree survives a restart: the same roots from the stored tiles.
    let root = ledger.root(600).unwrap();
    drop(ledger);
    let again = Ledger::open(db.reopen(), LedgerConfig::default()).unwrap();
    assert_eq!(again.root(600).unwrap(), root);
    append_n(&again, 600, 10);
    tree = docket_core::merkle::MemoryTree::new();
    for s in 0..610 {
        tree.push(again.entry(s).unwrap().leaf_hash());
    }
    assert_eq!(again.root(610).unwrap(), tree.root(610).unwrap());
}

pub fn checkpoints_and_receipts(db: TestDb) {
    let ledger = db.ledger();
    let signer = LogSigner::generate("test.docket/log").unwrap();
    assert!(
        ledger.checkpoint(&signer).unwrap().is_none(),
        "nothing to sign yet"
    );
    append_n(&ledger, 0, 20);
    assert!(ledger.receipt(3).is_err(), "no checkpoint covers it yet");
    let cp = ledger.checkpoint(&signer).unwrap().unwrap();
    assert_eq!(cp.size, 20);
    assert!(
        ledger.checkpoint(&signer).unwrap().is_none(),
        "no growth, no new checkpoint"
    );
    let r = ledger.receipt(3).unwrap();
    let v = r.verify(&signer.verifier()).unwrap();
    assert_eq!(v.entry.seq.0, 3);
    append_n(&ledger, 20, 5);
    ledger.checkpoint(&signer).unwrap().unwrap();
    let all = ledger.backend().checkpoints(0, 10).unwrap();
    assert_eq!(all.iter().map(|c| c.size).collect::<Vec<_>>(), vec![20, 25]);
    let report = verify_all(&ledger, &signer);
    assert_eq!((report.entries, report.checkpoints), (25, 2));
}

pub fn queries_filter_and_paginate(db: TestDb) {
    let ledger = db.ledger();
    // Two thirds of the log indexed (postings written once the appender is
    // idle), the rest still in the unindexed tail: every query spans both.
    append_n(&ledger, 0, 200);
    let waited = std::time::Instant::now();
    while ledger.indexed_upto() < 200 {
        assert!(
            waited.elapsed().as_secs() < 30,
            "postings were never written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    append_n(&ledger, 200, 100);
    assert_eq!(
        ledger.indexed_upto(),
        200,
        "the last appends are still in the tail"
    );
    ledger
        .append_blocking(vec![
            NewEntry::new(EntryType::Decision, &json!({"agent": "did:key:z6MkAgentA"})).unwrap(),
        ])
        .unwrap();
    let all_of = |mut q: Query| -> Vec<u64> {
        let mut out = Vec::new();
        loop {
            let (rows, next) = ledger.query(&q).unwrap();
            for (seq, bytes) in &rows {
                assert_eq!(Entry::decode(bytes).unwrap().seq.0, *seq);
                out.push(*seq);
            }
            match next {
                Some(c) => q.set_cursor(&c).unwrap(),
                None => return out,
            }
        }
    };
    let expect =
        |pred: &dyn Fn(u64) -> bool| -> Vec<u64> { (0..300).rev().filter(|&i| pred(i)).collect() };

    let q = Query {
        agent: Some("did:key:z6MkAgentB".into()),
        limit: 7,
        ..Default::default()
    };
    assert_eq!(all_of(q.clone()), expect(&|i| i % 3 == 1));
    assert_eq!(ledger.count(&q).unwrap(), 100);

    let q = Query {
        data_class: Some("customer_data".into()),
        outcome: Some("deny".into()),
        limit: 4,
        ..Default::default()
    };
    assert_eq!(all_of(q), expect(&|i| i % 3 == 0 && i % 10 == 0));

    let q = Query {
        tool: Some("crm.lookup".into()),
        order: Order::Asc,
        ..Default::default()
    };
    let mut asc = expect(&|i| i % 7 == 0);
    asc.reverse();
    assert_eq!(all_of(q), asc);

    let q = Query {
        types: vec![EntryType::Decision],
        ..Default::default()
    };
    assert_eq!(all_of(q), vec![300]);

    let q = Query {
        agent: Some("did:key:unknown".into()),
        ..Default::default()
    };
    assert!(all_of(q.clone()).is_empty());
    assert_eq!(ledger.count(&q).unwrap(), 0);

    // Time bounds: everything was appended just now.
    let now = Timestamp::now();
    let q = Query {
        to: Some(Timestamp::from_micros(now.as_micros() - 3_600_000_000)),
        ..Default::default()
    };
    assert!(all_of(q).is_empty());
    let first_ts = ledger.entry(100).unwrap().ts;
    let q = Query {
        from: Some(first_ts),
        project: Some("billing".into()),
        ..Default::default()
    };
    let got = all_of(q);
    assert!(
        got.iter()
            .all(|&s| s % 2 == 0 && ledger.entry(s).unwrap().ts >= first_ts)
    );
    assert!(got.contains(&100));

    // The time-of-day window: all entries share this minute, so a window
    // holding it returns them all, and its complement none.
    let mow = now.minute_of_week();
    let here = TimeWindow {
        ranges: vec![(mow.saturating_sub(2), mow + 3)],
    };
    let q = Query {
        window: Some(here),
        data_class: Some("pii".into()),
        ..Default::default()
    };
    assert_eq!(ledger.count(&q).unwrap(), 60);
    let elsewhere = TimeWindow {
        ranges: vec![((mow + 10) % 10000, (mow + 10) % 10000 + 5)],
    };
    let q = Query {
        window: Some(elsewhere),
        ..Default::default()
    };
    assert_eq!(ledger.count(&q).unwrap(), 0);
}

pub fn a_failed_write_acknowledges_nothing_and_the_log_goes_on(db: TestDb) {
    let failing = Arc::new(crate::failing::Failing {
        inner: db.backend.clone(),
        fail_next_write: false.into(),
        refuse_writes: false.into(),
    });
    let ledger = Ledger::open(failing.clone(), LedgerConfig::default()).unwrap();
    append_n(&ledger, 0, 5);
    let before = ledger.root(5).unwrap();
    failing
        .fail_next_write
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = ledger.append_blocking(vec![receipt(5), receipt(6)]);
    assert!(
        matches!(refused, Err(docket_store::StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(ledger.size(), 5, "nothing of the failed batch is visible");
    assert_eq!(ledger.root(5).unwrap(), before);
    assert!(ledger.entry(5).is_err());

    // The next append takes the same seq and chains onto entry 4.
    let acks = ledger.append_blocking(vec![receipt(7)]).unwrap();
    assert_eq!(acks[0].seq.0, 5);
    assert_eq!(
        ledger.entry(5).unwrap().prev,
        ledger.entry(4).unwrap().leaf_hash()
    );
    let signer = LogSigner::generate("test.docket/log").unwrap();
    ledger.checkpoint(&signer).unwrap();
    let report = verify_all(&ledger, &signer);
    assert_eq!(report.entries, 6);
}

/// The receipt of a call already made outside must not be lost to a full
/// disk: it is kept, retried on its own, and lands before anything newer.
pub fn kept_entries_outlive_a_refusing_store_and_land_first(db: TestDb) {
    use std::sync::atomic::Ordering::SeqCst;
    let failing = Arc::new(crate::failing::Failing {
        inner: db.backend.clone(),
        fail_next_write: false.into(),
        refuse_writes: false.into(),
    });
    let ledger = Ledger::open(failing.clone(), LedgerConfig::default()).unwrap();
    append_n(&ledger, 0, 3);
    assert!(ledger.writable());
    failing.refuse_writes.store(true, SeqCst);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = rt.block_on(ledger.append_kept(vec![receipt(100)]));
    assert!(
        matches!(refused, Err(docket_store::StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(ledger.kept_entries(), 1);
    assert!(!ledger.writable());
    assert!(ledger.probe_writable().is_err());
    // Others are refused while the store refuses; the kept one stays kept
    // through the appender's own retries.
    assert!(ledger.append_blocking(vec![receipt(7)]).is_err());
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(ledger.kept_entries(), 1);
    assert_eq!(ledger.size(), 3);

    // Room again: the appender writes it without being asked.
    failing.refuse_writes.store(false, SeqCst);
    for _ in 0..200 {
        if ledger.kept_entries() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(
        ledger.kept_entries(),
        0,
        "kept entry written once the store takes it"
    );
    assert!(ledger.writable());
    let acks = ledger.append_blocking(vec![receipt(200)]).unwrap();
    assert_eq!(acks[0].seq.0, 4);
    let i = |seq| {
        let body: serde_json::Value =
            serde_json::from_str(ledger.entry(seq).unwrap().body.as_str()).unwrap();
        body["i"].as_u64().unwrap()
    };
    assert_eq!((i(3), i(4)), (100, 200));

    // Kept behind a failed write, then something newer: the kept one is
    // first in the log.
    failing.fail_next_write.store(true, SeqCst);
    assert!(rt.block_on(ledger.append_kept(vec![receipt(300)])).is_err());
    let acks = ledger.append_blocking(vec![receipt(400)]).unwrap();
    assert_eq!(ledger.kept_entries(), 0);
    assert_eq!(acks[0].seq.0, 6);
    assert_eq!((i(5), i(6)), (300, 400));
    let signer = LogSigner::generate("test.docket/log").unwrap();
    ledger.checkpoint(&signer).unwrap();
    assert_eq!(verify_all(&ledger, &signer).entries, 7);
}

pub fn postings_not_yet_written_are_rebuilt_after_a_restart(db: TestDb) {
    let lazy = LedgerConfig {
        postings_flush_entries: 1_000_000,
        postings_max_delay: std::time::Duration::from_secs(3600),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(db.backend.clone(), lazy.clone()).unwrap();
    append_n(&ledger, 0, 90);
    assert_eq!(ledger.indexed_upto(), 0);
    // Stopped (or killed) before the postings were written.
    drop(ledger);
    let again = Ledger::open(
        db.reopen(),
        LedgerConfig {
            postings_flush_entries: 1,
            ..lazy
        },
    )
    .unwrap();
    let q = Query {
        agent: Some("did:key:z6MkAgentC".into()),
        ..Default::default()
    };
    assert_eq!(again.count(&q).unwrap(), 30);
    // The next commit writes the rebuilt postings with its own.
    append_n(&again, 90, 3);
    assert_eq!(again.indexed_upto(), 93);
    assert_eq!(again.count(&q).unwrap(), 31);
    let (rows, _) = again
        .query(&Query {
            agent: Some("did:key:z6MkAgentC".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let want: Vec<u64> = (0..93).rev().filter(|i| i % 3 == 2).collect();
    assert_eq!(rows.iter().map(|(s, _)| *s).collect::<Vec<_>>(), want);
}

macro_rules! suite {
    ($backend:ident) => {
        mod $backend {
            use crate::support;
            #[test]
            fn appends_are_sequenced_chained_and_durable() {
                super::appends_are_sequenced_chained_and_durable(support::$backend());
            }
            #[test]
            fn concurrent_writers_get_gap_free_seqs() {
                super::concurrent_writers_get_gap_free_seqs(support::$backend());
            }
            #[test]
            fn proofs_verify_at_every_size() {
                super::proofs_verify_at_every_size(support::$backend());
            }
            #[test]
            fn checkpoints_and_receipts() {
                super::checkpoints_and_receipts(support::$backend());
            }
            #[test]
            fn queries_filter_and_paginate() {
                super::queries_filter_and_paginate(support::$backend());
            }
            #[test]
            fn postings_not_yet_written_are_rebuilt_after_a_restart() {
                super::postings_not_yet_written_are_rebuilt_after_a_restart(support::$backend());
            }
            #[test]
            fn kept_entries_outlive_a_refusing_store_and_land_first() {
                super::kept_entries_outlive_a_refusing_store_and_land_first(support::$backend());
            }
            #[test]
            fn a_failed_write_acknowledges_nothing_and_the_log_goes_on() {
                super::a_failed_write_acknowledges_nothing_and_the_log_goes_on(support::$backend());
            }
        }
    };
}

suite!(sqlite);
suite!(postgres);
