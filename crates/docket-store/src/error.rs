//! The store's closed error type; each backend maps its driver errors here.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    /// The request itself is wrong (bad range, unknown size); the caller's fault.
    #[error("{0}")]
    Invalid(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or refused the write; nothing was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The stored data contradicts itself (a broken tile, a missing row).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("the appender has stopped")]
    Closed,
    /// Too many appends already wait; nothing was written. Try again shortly.
    #[error("overloaded: {0}")]
    Overloaded(String),
}
