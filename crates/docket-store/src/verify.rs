//! Re-checks a whole log: every entry's hash and canonical form, gap-free
//! `seq`, the `prev` chain, non-decreasing `ts`, every stored tile against
//! the recomputed tree, and every stored checkpoint's signature and root —
//! which, all recomputed from one run of entries, also proves each
//! checkpoint consistent with the one before. Streams: memory stays flat
//! however long the log. Names the first bad `seq`.

use std::fmt;

use docket_core::writers::{LogWrites, WritesReport};
use docket_core::{ChainChecker, ChainProblem};
use docket_core::{Hash, LogVerifier};

use crate::backend::{Backend, StoredCheckpoint, TileRow};
use crate::error::StoreError;
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH, decode_hashes};

/// A run of `(seq, canonical bytes)` in order.
pub type EntryChunk = Vec<(u64, Vec<u8>)>;

/// A stored leaf tile: its hashes and the `ts` of its first entry.
#[derive(Clone, Debug, Default)]
pub struct LeafTile {
    pub hashes: Vec<Hash>,
    pub first_ts: Option<i64>,
}

/// Where the log to verify comes from: a database, or a server's API. The
/// log may be growing while it is read.
pub trait LogSource: Sync {
    /// How many entries the log holds now.
    fn size(&self) -> Result<u64, StoreError>;
    /// Entries in `[from, to)`, in order, in chunks.
    fn entries(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(EntryChunk) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Stored leaf tile `index`, if this source has tiles at all.
    fn leaf_tile(&self, index: u64) -> Result<Option<LeafTile>, StoreError>;
    /// Stored tiles of a level above 0, if this source has tiles at all.
    fn upper_tiles(&self, level: u8) -> Result<Option<Vec<TileRow>>, StoreError>;
    fn checkpoints(&self, after_size: u64, limit: u32)
    -> Result<Vec<StoredCheckpoint>, StoreError>;
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;
}

const CHUNK: usize = 2048;

/// A database as a [`LogSource`].
pub struct BackendSource<'a>(pub &'a dyn Backend);

impl LogSource for BackendSource<'_> {
    fn size(&self) -> Result<u64, StoreError> {
        Ok(match self.0.last_entry()? {
            None => 0,
            Some(bytes) => {
                docket_core::Entry::decode(&bytes)
                    .map_err(|e| {
                        StoreError::Corrupt(format!("the last entry does not decode: {e}"))
                    })?
                    .seq
                    .0
                    + 1
            }
        })
    }

    fn entries(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(EntryChunk) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut chunk = Vec::with_capacity(CHUNK);
        self.0.scan(from, to, &mut |seq, bytes| {
            chunk.push((seq, bytes));
            if chunk.len() == CHUNK {
                f(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))?;
            }
            Ok(())
        })?;
        if !chunk.is_empty() {
            f(chunk)?;
        }
        Ok(())
    }

    fn leaf_tile(&self, index: u64) -> Result<Option<LeafTile>, StoreError> {
        // A stored tile keeps its first `ts` even when none of its hashes
        // read back, so a missing first hash is reported as that, not as
        // an altered time index.
        let Some(bytes) = self.0.tile(0, index)? else {
            return Ok(Some(LeafTile::default()));
        };
        Ok(Some(LeafTile {
            hashes: decode_hashes(&bytes),
            first_ts: self.0.tile_first_ts(index)?,
        }))
    }

    fn upper_tiles(&self, level: u8) -> Result<Option<Vec<TileRow>>, StoreError> {
        self.0.tiles(level).map(Some)
    }

    fn checkpoints(
        &self,
        after_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.0.checkpoints(after_size, limit)
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.0.latest_checkpoint()
    }
}

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Also re-canonicalize every body (slower).
    pub check_bodies: bool,
    /// Leave out the write-table check ([`docket_core::writers`]): hashes,
    /// chain, tiles and checkpoints only.
    pub skip_writers: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    pub entries: u64,
    pub checkpoints: u64,
    pub tiles: u64,
    pub root: Hash,
    /// Entries whose hashes hold but that break the write table, and
    /// forwarded calls without a receipt; `None` when skipped.
    pub writes: Option<WritesReport>,
}

/// Why a log failed verification, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyFailure {
    /// The first entry found bad, when the failure is one entry's.
    pub seq: Option<u64>,
    pub problem: String,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}: {}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

impl std::error::Error for VerifyFailure {}

fn at(seq: u64, problem: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        seq: Some(seq),
        problem: problem.into(),
    }
}

fn whole(problem: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        seq: None,
        problem: problem.into(),
    }
}

fn source_err(e: StoreError) -> VerifyFailure {
    whole(format!("reading the log: {e}"))
}

struct Walk<'a> {
    key: &'a LogVerifier,
    source: &'a dyn LogSource,
    checker: ChainChecker,
    tile: Option<(u64, LeafTile)>,
    /// The next entry pushed is the first of its leaf tile.
    first_in_tile: bool,
    tiles_checked: u64,
    has_tiles: bool,
    /// Recomputed hashes at tree levels 8, 16, …, for the upper tiles.
    upper: Vec<Vec<Hash>>,
    pending: std::collections::VecDeque<StoredCheckpoint>,
    checkpoints_after: u64,
    checkpoints_done: bool,
    checkpoints_checked: u64,
    /// How many entries this walk checks: the log's size when it began.
    target: u64,
    writes: Option<LogWrites>,
}

impl Walk<'_> {
    fn refill_checkpoints(&mut self) -> Result<(), VerifyFailure> {
        if self.pending.is_empty() && !self.checkpoints_done {
            let next = self
                .source
                .checkpoints(self.checkpoints_after, 1000)
                .map_err(source_err)?;
            self.checkpoints_done = next.is_empty();
            if let Some(last) = next.last() {
                self.checkpoints_after = last.size;
            }
            self.pending.extend(next);
        }
        Ok(())
    }

    /// Checks every checkpoint whose size the walk has now reached.
    fn check_checkpoints(&mut self) -> Result<(), VerifyFailure> {
        loop {
            self.refill_checkpoints()?;
            let size = self.checker.size();
            let Some(cp) = self.pending.front() else {
                return Ok(());
            };
            if cp.size > self.target {
                // Signed after this walk began: beyond what it checks.
                return Ok(());
            }
            if cp.size > size {
                return Ok(());
            }
            if cp.size < size {
                return Err(whole(format!(
                    "checkpoint for size {} is out of order in the checkpoint store",
                    cp.size
                )));
            }
            let cp = self.pending.pop_front().expect("front exists");
            let signed = self
                .key
                .verify(&cp.note)
                .map_err(|e| whole(format!("checkpoint for size {}: {e}", cp.size)))?;
            if signed.size != cp.size || signed.root != cp.root {
                return Err(whole(format!(
                    "checkpoint for size {}: stored size/root differ from the signed note",
                    cp.size
                )));
            }
            if signed.root != self.checker.root() {
                return Err(whole(format!(
                    "checkpoint for size {}: the signed root does not match the entries \
                     [0, {}); an entry before it was altered, removed or inserted",
                    cp.size, cp.size
                )));
            }
            self.checkpoints_checked += 1;
        }
    }

    fn push(&mut self, seq_col: u64, bytes: &[u8], leaf: Hash) -> Result<(), VerifyFailure> {
        let seq = self.checker.size();
        if seq_col != seq {
            return Err(at(
                seq,
                format!("entry {seq} is missing (the next stored entry is {seq_col})"),
            ));
        }
        if self.has_tiles {
            let tile_index = seq / TILE_WIDTH;
            if self.tile.as_ref().is_none_or(|(i, _)| *i != tile_index) {
                let t = self
                    .source
                    .leaf_tile(tile_index)
                    .map_err(source_err)?
                    .unwrap_or_default();
                self.tile = Some((tile_index, t));
                self.tiles_checked += 1;
                self.first_in_tile = true;
            }
        }
        let upper = &mut self.upper;
        let checked = self.checker.push_hashed(bytes, leaf, |level, n, h| {
            if level > 0 && level % TILE_HEIGHT == 0 {
                let l = usize::from(level / TILE_HEIGHT) - 1;
                if upper.len() <= l {
                    upper.push(Vec::new());
                }
                debug_assert_eq!(upper[l].len() as u64, n);
                upper[l].push(*h);
            }
        });
        let entry = match checked {
            Ok(entry) => entry,
            Err(e) => {
                // With tiles, an altered entry fails its own leaf check
                // first; without them, the next entry's `prev` is where it shows.
                if matches!(e.problem, ChainProblem::BrokenChain) {
                    return Err(at(
                        e.seq,
                        "prev does not match the entry before: an entry was altered, removed, inserted or reordered here",
                    ));
                }
                return Err(at(e.seq, e.problem.to_string()));
            }
        };
        if let Some(w) = &mut self.writes {
            w.push(&entry);
        }
        if let Some((_, tile)) = &self.tile {
            if std::mem::take(&mut self.first_in_tile)
                && tile.first_ts != Some(entry.ts.as_micros())
            {
                return Err(at(
                    seq,
                    "the time index (the first ts of its leaf tile) does not match the entry: it was altered",
                ));
            }
            match tile.hashes.get((seq % TILE_WIDTH) as usize) {
                Some(stored) if *stored == leaf => {}
                Some(_) => {
                    return Err(at(
                        seq,
                        "entry bytes do not match the leaf hash in the Merkle tree: the entry was altered",
                    ));
                }
                None => return Err(at(seq, "the Merkle tree has no leaf for this entry")),
            }
        }
        self.check_checkpoints()
    }
}

/// Verifies the log from `source` against the log's public key.
pub fn verify_log(
    source: &dyn LogSource,
    key: &LogVerifier,
    options: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<VerifyReport, VerifyFailure> {
    // The log may grow while it is read: pin what to check first. The
    // latest checkpoint is read before the size, so a log shorter than a
    // checkpoint it signed means entries were removed, not appended late.
    let latest = source.latest_checkpoint().map_err(source_err)?;
    let target = source.size().map_err(source_err)?;
    if let Some(cp) = &latest
        && cp.size > target
    {
        return Err(whole(format!(
            "a signed checkpoint covers {} entries but the log holds only {target}: entries from {target} on were removed",
            cp.size
        )));
    }
    let has_tiles = source.upper_tiles(1).map_err(source_err)?.is_some();
    let mut walk = Walk {
        key,
        source,
        checker: ChainChecker::new(options.check_bodies),
        tile: None,
        first_in_tile: false,
        tiles_checked: 0,
        has_tiles,
        upper: Vec::new(),
        pending: Default::default(),
        checkpoints_after: 0,
        checkpoints_done: false,
        checkpoints_checked: 0,
        target,
        writes: (!options.skip_writers).then(LogWrites::new),
    };
    // Read and hash on one thread, check on this one.
    let (tx, rx) = crossbeam_channel::bounded::<Vec<(u64, Vec<u8>, Hash)>>(8);
    let result = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            source.entries(0, target, &mut |chunk| {
                let hashed = chunk
                    .into_iter()
                    .map(|(seq, bytes)| {
                        let leaf = docket_core::merkle::leaf_hash(&bytes);
                        (seq, bytes, leaf)
                    })
                    .collect();
                tx.send(hashed).map_err(|_| StoreError::Closed)
            })
        });
        let mut outcome = Ok(());
        for chunk in rx.iter() {
            for (seq, bytes, leaf) in &chunk {
                if let Err(e) = walk.push(*seq, bytes, *leaf) {
                    outcome = Err(e);
                    break;
                }
            }
            if outcome.is_err() {
                break;
            }
            progress(walk.checker.size());
        }
        drop(rx);
        match reader.join() {
            Ok(Err(StoreError::Closed)) | Ok(Ok(())) => {}
            Ok(Err(e)) if outcome.is_ok() => outcome = Err(source_err(e)),
            Ok(Err(_)) => {}
            Err(_) => outcome = Err(whole("the reader thread panicked")),
        }
        outcome
    });
    result?;
    let size = walk.checker.size();
    if size < target {
        return Err(at(
            size,
            format!(
                "the log should hold {target} entries but ends at {size}: entries from {size} on are missing"
            ),
        ));
    }
    walk.check_checkpoints()?;
    // Checks that only hold of a log that stopped growing while we read it.
    let still = source.size().map_err(source_err)? == target;
    if has_tiles {
        // The last leaf tile must hold exactly the entries there are.
        let last = source
            .leaf_tile(size / TILE_WIDTH)
            .map_err(source_err)?
            .unwrap_or_default();
        let want = size % TILE_WIDTH;
        if still && last.hashes.len() as u64 != want {
            return Err(whole(format!(
                "the Merkle tree holds {} leaves past the last entry: entries were removed from the end",
                last.hashes.len() as u64 - want.min(last.hashes.len() as u64)
            )));
        }
        for (l, expected) in walk.upper.iter().enumerate() {
            let level = (l + 1) as u8;
            let stored: Vec<Hash> = source
                .upper_tiles(level)
                .map_err(source_err)?
                .unwrap_or_default()
                .iter()
                .flat_map(|t| decode_hashes(&t.hashes))
                .collect();
            let compare = if still {
                expected.len().max(stored.len())
            } else {
                expected.len()
            };
            if let Some(i) = (0..compare).find(|&i| stored.get(i) != expected.get(i)) {
                let first_leaf = (i as u64) << (u32::from(level) * u32::from(TILE_HEIGHT));
                return Err(whole(format!(
                    "stored tree node at level {} index {i} (leaves from {first_leaf}) does not match the entries",
                    u32::from(level) * u32::from(TILE_HEIGHT)
                )));
            }
            walk.tiles_checked += 1;
        }
    }
    Ok(VerifyReport {
        entries: size,
        checkpoints: walk.checkpoints_checked,
        tiles: walk.tiles_checked,
        root: walk.checker.root(),
        writes: walk.writes.map(LogWrites::finish),
    })
}
