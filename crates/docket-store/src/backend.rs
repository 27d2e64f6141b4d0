//! The [`Backend`] trait: what a database must do for the ledger. Writes
//! come from the ledger's single appender thread only; reads from anywhere.

use docket_core::{EntryType, Hash, IndexFields, Timestamp};

use crate::error::StoreError;
use crate::query::Query;

/// A sequenced entry, ready to be written.
#[derive(Clone, Debug)]
pub struct Row {
    pub seq: u64,
    pub ts: Timestamp,
    pub kind: EntryType,
    /// Canonical entry bytes: what the leaf hash covers.
    pub bytes: Vec<u8>,
    pub index: IndexFields,
}

/// A C2SP tile: up to 256 consecutive hashes at tree level `8 * level`.
/// A tile is rewritten as it fills and never changes once full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileRow {
    pub level: u8,
    pub index: u64,
    /// Concatenated 32-byte hashes.
    pub hashes: Vec<u8>,
    /// For level-0 tiles: the `ts` of the tile's first entry (a sparse time index).
    pub first_ts: Option<i64>,
}

impl TileRow {
    pub fn hash(&self, i: usize) -> Option<Hash> {
        let bytes = self.hashes.get(i * 32..i * 32 + 32)?;
        Some(Hash(bytes.try_into().ok()?))
    }

    pub fn len(&self) -> usize {
        self.hashes.len() / 32
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    pub note: String,
    pub signed_at: Timestamp,
}

pub trait Backend: Send + Sync + 'static {
    /// "sqlite" or "postgres".
    fn kind(&self) -> &'static str;

    /// Writes entries and tiles in one transaction; durable when it returns `Ok`.
    fn write_batch(&self, rows: &[Row], tiles: &[TileRow]) -> Result<(), StoreError>;

    /// Bytes of the entry with the highest `seq`.
    fn last_entry(&self) -> Result<Option<Vec<u8>>, StoreError>;

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Calls `f` with each entry in `[from, to)` in `seq` order.
    fn scan(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// All tiles of one level, by index.
    fn tiles(&self, level: u8) -> Result<Vec<TileRow>, StoreError>;

    /// The hashes of one tile.
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The first `seq` in `[lo, hi)` whose `ts` is at or after `ts`.
    fn first_seq_at_or_after(&self, lo: u64, hi: u64, ts: i64) -> Result<Option<u64>, StoreError>;

    fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError>;

    /// Checkpoints with size greater than `after_size`, smallest first.
    fn checkpoints(&self, after_size: u64, limit: u32)
    -> Result<Vec<StoredCheckpoint>, StoreError>;

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// The smallest checkpoint whose tree holds at least `size` entries.
    fn checkpoint_covering(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// One page of a query whose time bounds are already resolved to `seq`s.
    fn query(&self, q: &Query, seqs: (u64, u64)) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    fn count(&self, q: &Query, seqs: (u64, u64)) -> Result<u64, StoreError>;

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
}
