//! Scheduled evidence exports: the last whole period's pack is written once,
//! durably, verifies offline, and is recorded as an `export` entry.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use docket_core::{EntryType, Timestamp};
use docket_server::Config;
use docket_server::evidence::{Schedule, last_period, pack_name, run_schedule};
use docket_store::query::Query;
use docket_store::{Ledger, LedgerConfig, NewEntry};
use serde_json::json;

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

#[test]
fn the_last_whole_period_is_yesterday_last_week_or_last_month() {
    let now = at("2026-03-04T10:00:00Z"); // a Wednesday
    assert_eq!(last_period(Schedule::Off, now), None);
    assert_eq!(
        last_period(Schedule::Daily, now),
        Some((at("2026-03-03T00:00:00Z"), at("2026-03-04T00:00:00Z")))
    );
    assert_eq!(
        last_period(Schedule::Weekly, now),
        Some((at("2026-02-23T00:00:00Z"), at("2026-03-02T00:00:00Z")))
    );
    assert_eq!(
        last_period(Schedule::Monthly, now),
        Some((at("2026-02-01T00:00:00Z"), at("2026-03-01T00:00:00Z")))
    );
    assert_eq!(
        last_period(Schedule::Monthly, at("2026-01-15T00:00:00Z")),
        Some((at("2025-12-01T00:00:00Z"), at("2026-01-01T00:00:00Z")))
    );
}

#[test]
fn a_scheduled_export_writes_a_verifiable_pack_once_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let opened = docket_server::init::open(&config).unwrap();
    // Entries last month and this month, on a clock the test moves.
    let clock = Arc::new(AtomicI64::new(at("2026-02-10T12:00:00Z").as_micros()));
    let c = clock.clone();
    let ledger = Ledger::open(
        opened.backend.clone(),
        LedgerConfig {
            clock: Arc::new(move || Timestamp::from_micros(c.load(Ordering::SeqCst))),
            ..LedgerConfig::default()
        },
    )
    .unwrap();
    let note = |text: &str| NewEntry::new(EntryType::Note, &json!({ "text": text })).unwrap();
    ledger
        .append_blocking(vec![note("february 1"), note("february 2")])
        .unwrap();
    clock.store(at("2026-03-02T08:00:00Z").as_micros(), Ordering::SeqCst);
    ledger.append_blocking(vec![note("march")]).unwrap();

    let out = dir.path().join("packs");
    let now = at("2026-03-04T10:00:00Z");
    let written = run_schedule(&ledger, &opened.signer, Schedule::Monthly, &out, now)
        .map_err(|e| e.message)
        .unwrap()
        .expect("last month's pack is written");
    assert_eq!(
        written,
        out.join(pack_name(
            at("2026-02-01T00:00:00Z"),
            at("2026-03-01T00:00:00Z")
        ))
    );
    // Nothing but the pack is left in the directory (no temporary file).
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);

    let outcome = docket_evidence::verify::verify_pack(
        std::fs::File::open(&written).unwrap(),
        &opened.signer.verifier(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(outcome.ok, "{:?}", outcome.problems);
    assert_eq!(outcome.entries, 2, "february's two entries, not march's");

    // The export is an entry naming the window and the file.
    let (rows, _) = ledger
        .query(&Query {
            types: vec![EntryType::Export],
            ..Query::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 1);
    let body = docket_core::Entry::decode(&rows[0].1).unwrap().body_value();
    assert_eq!(body["from"], "2026-02-01T00:00:00.000000Z");
    assert_eq!(body["to"], "2026-03-01T00:00:00.000000Z");
    assert_eq!(body["entries"], 2);
    assert_eq!(
        body["file"],
        written.file_name().unwrap().to_str().unwrap(),
        "{body}"
    );

    // The next run finds it done and writes nothing.
    let again = run_schedule(&ledger, &opened.signer, Schedule::Monthly, &out, now)
        .map_err(|e| e.message)
        .unwrap();
    assert_eq!(again, None);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    ledger.close();
}
