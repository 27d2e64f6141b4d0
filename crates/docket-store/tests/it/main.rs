//! The store's integration tests: one conformance suite, run against every
//! backend (SQLite always; PostgreSQL against the server named by
//! `DOCKET_TEST_POSTGRES_URL`, which `scripts/test` starts).

mod conformance;
mod failing;
mod leaf_tail;
mod support;
