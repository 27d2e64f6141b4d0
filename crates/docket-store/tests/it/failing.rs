//! A backend that refuses the next write when told to: a full disk or a
//! lost database, as the appender sees it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use docket_store::query::{Placeholder, SqlQuery};
use docket_store::{Backend, Batch, StoreError, StoredCheckpoint, TileRow, TileSummary};

pub struct Failing {
    pub inner: Arc<dyn Backend>,
    pub fail_next_write: AtomicBool,
    /// Refuse every write until cleared (a disk that stays full).
    pub refuse_writes: AtomicBool,
}

impl Backend for Failing {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn write_batch(&self, batch: &Batch<'_>) -> Result<(), StoreError> {
        if self.fail_next_write.swap(false, Ordering::SeqCst)
            || self.refuse_writes.load(Ordering::SeqCst)
        {
            return Err(StoreError::Unavailable("disk full (injected)".into()));
        }
        self.inner.write_batch(batch)
    }
    fn last_entry(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.last_entry()
    }
    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.entry(seq)
    }
    fn scan(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner.scan(from, to, f)
    }
    fn tiles(&self, level: u8) -> Result<Vec<TileRow>, StoreError> {
        self.inner.tiles(level)
    }
    fn leaf_tile_summaries(&self) -> Result<Vec<TileSummary>, StoreError> {
        self.inner.leaf_tile_summaries()
    }
    fn tile_first_ts(&self, index: u64) -> Result<Option<i64>, StoreError> {
        self.inner.tile_first_ts(index)
    }
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.tile(level, index)
    }
    fn first_seq_at_or_after(&self, lo: u64, hi: u64, ts: i64) -> Result<Option<u64>, StoreError> {
        self.inner.first_seq_at_or_after(lo, hi, ts)
    }
    fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        self.inner.put_checkpoint(cp)
    }
    fn checkpoints(
        &self,
        after_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.checkpoints(after_size, limit)
    }
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.latest_checkpoint()
    }

    fn placeholder(&self) -> Placeholder {
        self.inner.placeholder()
    }
    fn select_entries(&self, sql: &SqlQuery) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.inner.select_entries(sql)
    }
    fn select_count(&self, sql: &SqlQuery) -> Result<u64, StoreError> {
        self.inner.select_count(sql)
    }
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.meta(key)
    }
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        if self.refuse_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("disk full (injected)".into()));
        }
        self.inner.set_meta(key, value)
    }
}
