//! Docket's storage: the [`Backend`] trait each database implements
//! (SQLite, the embedded default, and PostgreSQL), and the [`Ledger`] built
//! on it: the single group-commit appender, the Merkle tiles, proofs,
//! checkpoints and queries. Both backends pass one conformance suite.

mod backend;
mod col;
mod error;
pub mod ledger;
pub mod postgres;
pub mod query;
pub mod sqlite;
mod tiles;
pub mod verify;

pub use backend::{Backend, Batch, IndexRow, Row, StoredCheckpoint, TileRow, TileSummary};
pub use col::Col;
pub use error::StoreError;
pub use ledger::{Appended, Ledger, LedgerConfig, NewEntry, Page};
pub use query::{Order, Query, QueryError, TimeWindow};
pub use verify::{
    BackendSource, EntryChunk, LeafTile, LogSource, VerifyFailure, VerifyOptions, VerifyReport,
    verify_log,
};
