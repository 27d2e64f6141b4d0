//! The [`Backend`] trait: what a database must do for the ledger. Writes
//! come from the ledger's single appender thread only; reads from anywhere.

use std::sync::Arc;

use docket_core::{EntryType, Hash, IndexFields, Timestamp};

use crate::col::Col;
use crate::error::StoreError;
use crate::query::{Placeholder, SqlQuery};

/// A sequenced entry, ready to be written.
#[derive(Clone, Debug)]
pub struct Row {
    pub seq: u64,
    pub ts: Timestamp,
    pub kind: EntryType,
    /// Canonical entry bytes: what the leaf hash covers.
    pub bytes: Vec<u8>,
    /// Shared with the entry's [`IndexRow`] while its postings wait.
    pub index: Arc<IndexFields>,
}

/// The attributes of one committed entry, waiting to be written as postings.
#[derive(Clone, Debug)]
pub struct IndexRow {
    pub seq: u64,
    /// Minute of the week of the entry's `ts` (UTC).
    pub mow: u16,
    pub kind: EntryType,
    pub index: Arc<IndexFields>,
}

impl IndexRow {
    /// `(column, value)` of every posting this entry makes.
    pub fn postings(&self) -> impl Iterator<Item = (Col, &str)> {
        let ix = &self.index;
        let single = Col::ATTRIBUTES.into_iter().zip(ix.attributes());
        std::iter::once((Col::Type, self.kind.as_str()))
            .chain(single.filter_map(|(c, v)| v.map(|v| (c, v))))
            .chain(ix.data_classes.iter().map(|c| (Col::DataClass, c.as_str())))
    }
}

/// One transaction's worth of writes from the appender.
#[derive(Debug)]
pub struct Batch<'a> {
    pub rows: &'a [Row],
    pub tiles: &'a [TileRow],
    /// Postings to write now: the secondary indexes are a projection of the
    /// entries, written in bulk every few thousand entries rather than with
    /// every commit (scattered index pages are what a commit costs most).
    pub postings: &'a [IndexRow],
    /// With postings: every entry below this `seq` has its postings written.
    pub indexed_upto: u64,
}

/// Bytes of a full leaf tile: 256 hashes of 32 bytes.
pub(crate) const FULL_LEAF_TILE_BYTES: usize = 256 * 32;
const LEAVES_PER_TILE: u64 = 256;

/// How a batch's tiles are written when the leaf tile being filled is kept
/// a hash per row (`leaf_tail`, both backends): a commit then adds its own
/// leaves instead of rewriting the tile's growing blob. The tile's own row
/// exists from its first leaf on, with an empty blob (the one sign of a
/// tile being filled) and the first `ts`; when it fills, the blob is written
/// whole and its `leaf_tail` rows go, in the same transaction.
pub(crate) struct TileWrites<'a> {
    /// Tiles stored whole: every tile above the leaves, and leaf tiles that filled.
    pub whole: Vec<&'a TileRow>,
    /// `[from, to)` seqs of leaf tiles that filled and were begun before
    /// this batch: their `leaf_tail` rows go.
    pub filled: Vec<(u64, u64)>,
    /// The leaf tile being filled, if this batch added to it.
    pub tail: Option<Tail<'a>>,
}

pub(crate) struct Tail<'a> {
    pub index: u64,
    pub first_ts: Option<i64>,
    /// This batch's leaves: `(seq, hash)`.
    pub leaves: Vec<(u64, &'a [u8])>,
}

impl Batch<'_> {
    pub(crate) fn tile_writes(&self) -> TileWrites<'_> {
        let mut out = TileWrites {
            whole: Vec::new(),
            filled: Vec::new(),
            tail: None,
        };
        // Tiles only change with new entries; a batch without rows has none.
        let Some(first_seq) = self.rows.first().map(|r| r.seq) else {
            return out;
        };
        for t in self.tiles {
            if t.level > 0 || t.hashes.len() == FULL_LEAF_TILE_BYTES {
                out.whole.push(t);
                let from = t.index * LEAVES_PER_TILE;
                // Only a tile begun before this batch has rows to drop.
                if t.level == 0 && from < first_seq {
                    out.filled.push((from, from + LEAVES_PER_TILE));
                }
                continue;
            }
            let start = t.index * LEAVES_PER_TILE;
            let leaves = t
                .hashes
                .chunks_exact(32)
                .enumerate()
                .map(|(pos, h)| (start + pos as u64, h))
                .filter(|(seq, _)| *seq >= first_seq)
                .collect();
            out.tail = Some(Tail {
                index: t.index,
                first_ts: t.first_ts,
                leaves,
            });
        }
        out
    }
}

/// The hashes of leaf tile `index` being filled, from its `leaf_tail` rows
/// in `seq` order: those from the tile's start up to the first missing or
/// malformed one, so that each hash stays at its entry's position.
pub(crate) fn leaf_tail_hashes<'a>(
    index: u64,
    rows: impl IntoIterator<Item = (i64, &'a [u8])>,
) -> Vec<u8> {
    let mut hashes = Vec::with_capacity(FULL_LEAF_TILE_BYTES);
    for (want, (seq, hash)) in (index * LEAVES_PER_TILE..).zip(rows) {
        if u64::try_from(seq).ok() != Some(want) || hash.len() != 32 {
            break;
        }
        hashes.extend_from_slice(hash);
    }
    hashes
}

/// Meta key of the postings watermark, written with each postings flush.
pub const INDEXED_UPTO_META: &str = "indexed_upto";

/// A C2SP tile: up to 256 consecutive hashes at tree level `8 * level`.
/// The appender hands over a tile's whole contents each time it grows; the
/// backends store a leaf tile still filling a hash per row (see
/// [`TileWrites`]). A full tile never changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileRow {
    pub level: u8,
    pub index: u64,
    /// Concatenated 32-byte hashes.
    pub hashes: Vec<u8>,
    /// For level-0 tiles: the `ts` of the tile's first entry (a sparse time index).
    pub first_ts: Option<i64>,
}

/// A leaf tile's index, length in hashes, and first entry's `ts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileSummary {
    pub index: u64,
    pub len: u64,
    pub first_ts: Option<i64>,
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

    /// Writes a batch in one transaction — entries, tiles, and postings with
    /// their watermark when there are any; durable when it returns `Ok`.
    fn write_batch(&self, batch: &Batch<'_>) -> Result<(), StoreError>;

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

    /// For every leaf tile, by index: how many hashes it holds and the `ts`
    /// of its first entry — without the hashes, so opening a large log
    /// reads a few bytes per 256 entries.
    fn leaf_tile_summaries(&self) -> Result<Vec<TileSummary>, StoreError>;

    /// The `ts` of the first entry of leaf tile `index`, as recorded.
    fn tile_first_ts(&self, index: u64) -> Result<Option<i64>, StoreError>;

    /// The hashes of one tile.
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The first `seq` in `[lo, hi)` whose `ts` is at or after `ts`.
    fn first_seq_at_or_after(&self, lo: u64, hi: u64, ts: i64) -> Result<Option<u64>, StoreError>;

    fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError>;

    /// Checkpoints with size greater than `after_size`, smallest first.
    fn checkpoints(&self, after_size: u64, limit: u32)
    -> Result<Vec<StoredCheckpoint>, StoreError>;

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// How this database spells positional parameters.
    fn placeholder(&self) -> Placeholder;

    /// Runs a query built by [`crate::query::build_sql`] returning `(seq, data)` rows.
    fn select_entries(&self, sql: &SqlQuery) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Runs a count built by [`crate::query::build_sql`].
    fn select_count(&self, sql: &SqlQuery) -> Result<u64, StoreError>;

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
}
