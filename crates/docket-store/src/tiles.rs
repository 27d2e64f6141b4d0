//! The Merkle tree as C2SP tiles (height 8): level-0 tiles hold leaf hashes
//! and live in the database; tiles of level 1 and up hold the hashes of
//! complete subtrees of 256, 65,536, … leaves and are also kept in memory
//! (about 1/256 of the leaf count, a few MB at 10 M entries). Any node of
//! any tree size is one leaf-tile read plus at most 255 hashes per tile
//! level away, so proofs never rehash the log.

use std::collections::HashMap;

use docket_core::Hash;
use docket_core::merkle::{interior_hash, split_index};
use parking_lot::RwLock;
use tlog_tiles::HashReader;

use crate::backend::Backend;
use crate::error::StoreError;

pub(crate) const TILE_HEIGHT: u8 = 8;
pub(crate) const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// Every complete subtree hash at tree level 8 and above:
/// `levels[k][n]` is the hash of the `2^(8+k)` leaves from `n · 2^(8+k)`.
/// About 2/256 of the leaf count (2.5 MB at 10 M entries), so a proof only
/// ever hashes within one leaf tile. Only appended to, after the commit
/// that made the leaves durable.
#[derive(Default)]
pub(crate) struct UpperLevels {
    pub(crate) levels: RwLock<Vec<Vec<Hash>>>,
}

impl UpperLevels {
    /// Adds the next complete level-8 hash and every node it completes above it.
    pub(crate) fn push_level8(&self, hash: Hash) {
        let mut levels = self.levels.write();
        let mut h = hash;
        let mut k = 0;
        loop {
            if levels.len() == k {
                levels.push(Vec::new());
            }
            levels[k].push(h);
            let n = levels[k].len();
            if n % 2 == 1 {
                break;
            }
            h = interior_hash(&levels[k][n - 2], &h);
            k += 1;
        }
    }
}

/// The leaf tile being filled, as committed. Proofs at the latest size
/// all reach into it, so readers take it from here rather than from the
/// store (where it is a row per hash). Replaced after each commit, before
/// the new size is published: whatever size a reader saw, this tile holds
/// every leaf of it, or has moved on to a later tile, the earlier one then
/// being stored whole.
#[derive(Default)]
pub(crate) struct TailTile {
    pub(crate) index: u64,
    pub(crate) hashes: Vec<Hash>,
}

/// Folds `2^k` consecutive hashes of one level into their subtree hash.
pub(crate) fn perfect_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut row = hashes.to_vec();
    while row.len() > 1 {
        row = row.chunks(2).map(|p| interior_hash(&p[0], &p[1])).collect();
    }
    row[0]
}

pub(crate) fn decode_hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .map(|c| Hash(c.try_into().expect("chunk of 32")))
        .collect()
}

/// Reads tree nodes for proofs at any committed size.
pub(crate) struct TreeReader<'a> {
    pub(crate) backend: &'a dyn Backend,
    pub(crate) upper: &'a UpperLevels,
    pub(crate) tail: &'a RwLock<TailTile>,
}

impl TreeReader<'_> {
    fn node(
        &self,
        level: u8,
        n: u64,
        leaf_tiles: &mut HashMap<u64, Vec<Hash>>,
    ) -> Result<Hash, StoreError> {
        let tile_level = level / TILE_HEIGHT;
        let base = tile_level * TILE_HEIGHT;
        let span = 1u64 << (level - base);
        let start = n
            .checked_mul(span)
            .ok_or_else(|| StoreError::Invalid("node out of range".into()))?;
        if tile_level > 0 {
            let levels = self.upper.levels.read();
            return levels
                .get(usize::from(level - TILE_HEIGHT))
                .and_then(|l| l.get(n as usize))
                .copied()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("tree node at level {level} index {n} is missing"))
                });
        }
        let tile_index = start / TILE_WIDTH;
        let from = (start % TILE_WIDTH) as usize;
        {
            let tail = self.tail.read();
            if tail.index == tile_index
                && let Some(hashes) = tail.hashes.get(from..from + span as usize)
            {
                return Ok(perfect_root(hashes));
            }
        }
        let tile = match leaf_tiles.entry(tile_index) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let bytes = self.backend.tile(0, tile_index)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("leaf tile {tile_index} is missing"))
                })?;
                e.insert(decode_hashes(&bytes))
            }
        };
        let hashes = tile
            .get(from..from + span as usize)
            .ok_or_else(|| StoreError::Corrupt(format!("leaf tile {tile_index} is short")))?;
        Ok(perfect_root(hashes))
    }
}

impl HashReader for TreeReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let mut leaf_tiles = HashMap::new();
        indexes
            .iter()
            .map(|&i| {
                let (level, n) = split_index(i);
                self.node(level, n, &mut leaf_tiles)
                    .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))
            })
            .collect()
    }
}
