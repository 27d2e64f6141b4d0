//! Streaming checks over a run of entries: every hash, the `prev` chain,
//! gap-free `seq`, non-decreasing `ts`, and the Merkle root at any size.
//! Holds O(log n) state however long the log, so `docket verify` and the
//! evidence verifier can walk millions of entries in constant memory.

use thiserror::Error;

use crate::entry::{Entry, EntryError, Timestamp};
use crate::merkle::{EMPTY_HASH, Hash, interior_hash, leaf_hash};

/// The right edge of a growing Merkle tree: one complete subtree per set
/// bit of the size, largest first.
#[derive(Clone, Debug, Default)]
pub struct CompactTree {
    size: u64,
    stack: Vec<(u8, Hash)>,
}

impl CompactTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf; `on_node(level, index, hash)` sees every complete
    /// subtree this completes, the leaf itself (level 0) included.
    pub fn push(&mut self, leaf: Hash, mut on_node: impl FnMut(u8, u64, &Hash)) {
        on_node(0, self.size, &leaf);
        let mut h = leaf;
        let mut level = 0u8;
        let mut index = self.size;
        while let Some(&(top_level, top)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            h = interior_hash(&top, &h);
            level += 1;
            index >>= 1;
            on_node(level, index, &h);
        }
        self.stack.push((level, h));
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return EMPTY_HASH;
        };
        for (_, h) in iter {
            acc = interior_hash(h, &acc);
        }
        acc
    }
}

#[derive(Debug, Error, PartialEq)]
#[error("seq {seq}: {problem}")]
pub struct ChainError {
    /// The position at which the log stops being what it claims.
    pub seq: u64,
    pub problem: ChainProblem,
}

#[derive(Debug, Error, PartialEq)]
pub enum ChainProblem {
    #[error("entry does not decode: {0}")]
    Decode(EntryError),
    #[error("entry says seq {0}; a gap, insertion or reordering")]
    WrongSeq(u64),
    #[error("prev does not match the leaf hash of the entry before; the chain is broken")]
    BrokenChain,
    #[error("ts {0} is earlier than the entry before ({1})")]
    TimeWentBack(String, String),
}

/// Checks entries one after another from seq 0 (or from a known point).
#[derive(Clone, Debug)]
pub struct ChainChecker {
    next_seq: u64,
    prev: Hash,
    last_ts: Option<Timestamp>,
    check_body: bool,
    tree: CompactTree,
}

impl ChainChecker {
    /// From the start of the log. `check_body` also re-canonicalizes every
    /// body (slower; catches a writer that logged non-canonical JSON).
    pub fn new(check_body: bool) -> Self {
        Self {
            next_seq: 0,
            prev: Hash([0; 32]),
            last_ts: None,
            check_body,
            tree: CompactTree::new(),
        }
    }

    pub fn size(&self) -> u64 {
        self.next_seq
    }

    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// Checks the next entry's bytes; returns its leaf hash.
    pub fn push(
        &mut self,
        bytes: &[u8],
        on_node: impl FnMut(u8, u64, &Hash),
    ) -> Result<Entry, ChainError> {
        self.push_hashed(bytes, leaf_hash(bytes), on_node)
    }

    /// [`ChainChecker::push`] with the leaf hash already computed — by the
    /// caller's own code, e.g. on another thread — as `leaf_hash(bytes)`.
    pub fn push_hashed(
        &mut self,
        bytes: &[u8],
        leaf: Hash,
        on_node: impl FnMut(u8, u64, &Hash),
    ) -> Result<Entry, ChainError> {
        debug_assert_eq!(leaf, leaf_hash(bytes));
        let seq = self.next_seq;
        let fail = |problem| ChainError { seq, problem };
        let entry = Entry::decode(bytes).map_err(|e| fail(ChainProblem::Decode(e)))?;
        if self.check_body {
            entry
                .check_body_canonical()
                .map_err(|e| fail(ChainProblem::Decode(e)))?;
        }
        if entry.seq.0 != seq {
            return Err(fail(ChainProblem::WrongSeq(entry.seq.0)));
        }
        if entry.prev != self.prev {
            return Err(fail(ChainProblem::BrokenChain));
        }
        if let Some(last) = self.last_ts
            && entry.ts < last
        {
            return Err(fail(ChainProblem::TimeWentBack(
                entry.ts.to_string(),
                last.to_string(),
            )));
        }
        self.tree.push(leaf, on_node);
        self.prev = leaf;
        self.last_ts = Some(entry.ts);
        self.next_seq += 1;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{CanonicalBody, EntryType, Seq};
    use crate::merkle::MemoryTree;
    use serde_json::json;

    fn log(n: u64) -> Vec<Vec<u8>> {
        let mut prev = Hash([0; 32]);
        (0..n)
            .map(|i| {
                let e = Entry {
                    seq: Seq(i),
                    ts: Timestamp::from_micros(1_000_000 + i as i64),
                    kind: EntryType::Note,
                    prev,
                    body: CanonicalBody::from_value(&json!({"i": i})).unwrap(),
                };
                prev = e.leaf_hash();
                e.encode()
            })
            .collect()
    }

    #[test]
    fn compact_root_matches_the_full_tree_at_every_size() {
        let mut c = CompactTree::new();
        let mut m = MemoryTree::new();
        for i in 0..300u64 {
            assert_eq!(c.root(), m.root(i).unwrap());
            let l = leaf_hash(&i.to_le_bytes());
            c.push(l, |_, _, _| {});
            m.push(l);
        }
    }

    #[test]
    fn nodes_are_reported_with_their_coordinates() {
        let mut c = CompactTree::new();
        let mut seen = Vec::new();
        for i in 0..4u64 {
            c.push(leaf_hash(&[i as u8]), |l, n, _| seen.push((l, n)));
        }
        assert_eq!(
            seen,
            vec![(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0)]
        );
    }

    #[test]
    fn the_checker_names_the_first_bad_seq() {
        let entries = log(10);
        let run = |entries: &[Vec<u8>]| -> Result<(), ChainError> {
            let mut c = ChainChecker::new(true);
            for e in entries {
                c.push(e, |_, _, _| {})?;
            }
            Ok(())
        };
        run(&entries).unwrap();

        let mut dropped = entries.clone();
        dropped.remove(4);
        assert_eq!(run(&dropped).unwrap_err().seq, 4);

        let mut swapped = entries.clone();
        swapped.swap(6, 7);
        assert_eq!(run(&swapped).unwrap_err().seq, 6);

        let mut changed = entries.clone();
        let s = String::from_utf8(changed[3].clone())
            .unwrap()
            .replace("\"i\":3", "\"i\":9");
        changed[3] = s.into_bytes();
        // The altered entry itself still decodes; the next one's prev catches it.
        assert_eq!(
            run(&changed).unwrap_err(),
            ChainError {
                seq: 4,
                problem: ChainProblem::BrokenChain
            }
        );
    }
}
