//! Backends to test against: a fresh SQLite file, or a fresh PostgreSQL schema.

use std::sync::Arc;

use docket_core::LogSigner;
use docket_store::postgres::{PostgresBackend, PostgresConfig};
use docket_store::sqlite::{SqliteBackend, SqliteConfig};
use docket_store::{
    Backend, BackendSource, Ledger, LedgerConfig, NewEntry, VerifyOptions, VerifyReport, verify_log,
};
use serde_json::json;

pub struct TestDb {
    pub backend: Arc<dyn Backend>,
    /// Where the tables are, for tests that read or change them directly.
    pub raw: Raw,
    /// Keeps the SQLite directory alive.
    _dir: Option<tempfile::TempDir>,
    reopen: Box<dyn Fn() -> Arc<dyn Backend> + Send + Sync>,
}

impl TestDb {
    pub fn ledger(&self) -> Ledger {
        Ledger::open(self.backend.clone(), LedgerConfig::default()).expect("open ledger")
    }

    /// A new connection to the same database, as after a restart.
    pub fn reopen(&self) -> Arc<dyn Backend> {
        (self.reopen)()
    }
}

/// Direct SQL access to a test database, past the backend.
pub enum Raw {
    Sqlite(std::path::PathBuf),
    /// URL and schema.
    Postgres(String, String),
}

impl Raw {
    /// Runs `sql` (`$1`-style parameters, bytes or integers) and returns
    /// the first column of each row as bytes or an integer.
    pub fn query(&self, sql: &str, params: &[RawValue]) -> Vec<RawValue> {
        match self {
            Raw::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                let sql = sql.replace('$', "?");
                let mut stmt = c.prepare(&sql).unwrap();
                let params: Vec<&dyn rusqlite::ToSql> = params
                    .iter()
                    .map(|p| match p {
                        RawValue::Int(i) => i as &dyn rusqlite::ToSql,
                        RawValue::Bytes(b) => b as &dyn rusqlite::ToSql,
                    })
                    .collect();
                let mut rows = stmt.query(params.as_slice()).unwrap();
                let mut out = Vec::new();
                while let Some(r) = rows.next().unwrap() {
                    out.push(match r.get_ref(0).unwrap() {
                        rusqlite::types::ValueRef::Blob(b) => RawValue::Bytes(b.to_vec()),
                        v => RawValue::Int(v.as_i64().unwrap()),
                    });
                }
                out
            }
            Raw::Postgres(url, schema) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
                c.batch_execute(&format!("SET search_path TO {schema}"))
                    .unwrap();
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| match p {
                        RawValue::Int(i) => i as &(dyn postgres::types::ToSql + Sync),
                        RawValue::Bytes(b) => b as &(dyn postgres::types::ToSql + Sync),
                    })
                    .collect();
                c.query(sql, &params)
                    .unwrap()
                    .iter()
                    .map(|r| match *r.columns()[0].type_() {
                        postgres::types::Type::BYTEA => RawValue::Bytes(r.get(0)),
                        postgres::types::Type::INT4 => RawValue::Int(r.get::<_, i32>(0).into()),
                        _ => RawValue::Int(r.get(0)),
                    })
                    .collect()
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawValue {
    Int(i64),
    Bytes(Vec<u8>),
}

pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let config = SqliteConfig::new(&path);
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::open(&config).unwrap());
    TestDb {
        backend,
        raw: Raw::Sqlite(path.clone()),
        _dir: Some(dir),
        reopen: Box::new(move || Arc::new(SqliteBackend::open(&config).unwrap())),
    }
}

/// A fresh schema in the database named by `DOCKET_TEST_POSTGRES_URL`.
pub fn postgres() -> TestDb {
    let url = std::env::var("DOCKET_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "DOCKET_TEST_POSTGRES_URL is not set: run the tests with `scripts/test`, \
             which starts a throwaway PostgreSQL and sets it"
        )
    });
    let schema = format!("docket_test_{}", rand_suffix());
    let config = PostgresConfig::new(&url).with_schema(&schema);
    let open = move || -> Arc<dyn Backend> {
        Arc::new(
            PostgresBackend::open(&config)
                .unwrap_or_else(|e| panic!("cannot open PostgreSQL ({config:?}): {e}")),
        )
    };
    TestDb {
        backend: open(),
        raw: Raw::Postgres(url, schema),
        _dir: None,
        reopen: Box::new(open),
    }
}

/// Unique across the test threads of one run and across runs.
fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}_{}_{n}", std::process::id(), nanos % 1_000_000_000)
}

/// A receipt-like body, as the gateway writes them.
pub fn receipt(i: u64) -> NewEntry {
    let agents = [
        "did:key:z6MkAgentA",
        "did:key:z6MkAgentB",
        "did:key:z6MkAgentC",
    ];
    let mut classes = vec![];
    if i.is_multiple_of(3) {
        classes.push("customer_data");
    }
    if i.is_multiple_of(5) {
        classes.push("pii");
    }
    let body = json!({
        "agent": agents[(i % 3) as usize],
        "human": format!("user-{}", i % 4),
        "project": if i.is_multiple_of(2) { "billing" } else { "support" },
        "provider": "openai",
        "model": if i.is_multiple_of(2) { "gpt-4o" } else { "gpt-4o-mini" },
        "tool": if i.is_multiple_of(7) { Some("crm.lookup") } else { None },
        "outcome": if i.is_multiple_of(10) { "deny" } else { "allow" },
        "data_classes": classes,
        "i": i,
        "request_digest": format!("{:064x}", i),
    });
    NewEntry::new(docket_core::EntryType::Receipt, &body).unwrap()
}

/// `docket verify` over the whole of `ledger`'s store, re-canonicalizing
/// every body; panics naming the first problem.
pub fn verify_all(ledger: &Ledger, signer: &LogSigner) -> VerifyReport {
    verify_log(
        &BackendSource(ledger.backend().as_ref()),
        &signer.verifier(),
        &VerifyOptions {
            check_bodies: true,
            ..VerifyOptions::default()
        },
        &|_| {},
    )
    .unwrap()
}
