//! Docket's log format: entries, their canonical encoding and hashes, Merkle
//! proofs, signed checkpoints and self-standing receipts.
//!
//! This crate is pure: no IO, no async, no SQL, no HTTP. Everything an
//! auditor needs to check Docket's evidence offline is built from it alone.

pub mod audit;
pub mod bodies;
pub mod checkpoint;
pub mod entry;
pub mod identity;
pub mod index;
pub mod jcs;
pub mod merkle;
pub mod receipt;
pub mod strict_json;
pub mod writers;

pub use audit::{ChainChecker, ChainError, ChainProblem, CompactTree};
pub use checkpoint::{CheckpointError, LogSigner, LogVerifier, SignedCheckpoint};
pub use entry::{CanonicalBody, Entry, EntryError, EntryType, Envelope, Seq, Timestamp};
pub use index::{IndexError, IndexFields};
pub use merkle::{Hash, ProofError, RangeVerifier};
pub use receipt::{Receipt, ReceiptError, VerifiedReceipt};
