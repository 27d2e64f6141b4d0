//! Backends to test against: a fresh SQLite file, or a fresh PostgreSQL schema.

use std::sync::Arc;

use docket_store::sqlite::{SqliteBackend, SqliteConfig};
use docket_store::{Backend, Ledger, LedgerConfig, NewEntry};
use serde_json::json;

pub struct TestDb {
    pub backend: Arc<dyn Backend>,
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

pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let config = SqliteConfig::new(&path);
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::open(&config).unwrap());
    TestDb {
        backend,
        _dir: Some(dir),
        reopen: Box::new(move || Arc::new(SqliteBackend::open(&config).unwrap())),
    }
}

pub fn postgres() -> TestDb {
    todo!("PostgreSQL backend")
}

#[allow(dead_code)]
fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// A receipt-like body, as the gateway writes them.
pub fn receipt(i: u64) -> NewEntry {
    let agents = [
        "did:key:z6MkAgentA",
        "did:key:z6MkAgentB",
        "did:key:z6MkAgentC",
    ];
    let mut classes = vec![];
    if i % 3 == 0 {
        classes.push("customer_data");
    }
    if i % 5 == 0 {
        classes.push("pii");
    }
    let body = json!({
        "agent": agents[(i % 3) as usize],
        "human": format!("user-{}", i % 4),
        "project": if i % 2 == 0 { "billing" } else { "support" },
        "provider": "openai",
        "model": if i % 2 == 0 { "gpt-4o" } else { "gpt-4o-mini" },
        "tool": if i % 7 == 0 { Some("crm.lookup") } else { None },
        "outcome": if i % 10 == 0 { "deny" } else { "allow" },
        "data_classes": classes,
        "i": i,
        "request_digest": format!("{:064x}", i),
    });
    NewEntry::new(docket_core::EntryType::Receipt, &body).unwrap()
}
