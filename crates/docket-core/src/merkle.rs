//! RFC 6962 / RFC 9162 Merkle trees over the log: leaf and node hashing,
//! inclusion and consistency proofs (from `tlog_tiles`, a port of Go's
//! `sumdb/tlog`), and range proofs.
//!
//! A range proof shows that a contiguous run of entries `[a, b)` is exactly
//! what a tree of size `t` holds there: nothing dropped, added, altered or
//! reordered. `tlog_tiles` has no such proof, so it is written here: the
//! proof is the list of hashes of the subtrees the RFC 6962 tree-hash
//! recursion reaches that lie wholly outside `[a, b)`, left to right; the
//! verifier rebuilds the root from those and the range's own leaves.
//!
//! Every verifier here bounds proof lengths before doing any work and never
//! panics on hostile input.

use thiserror::Error;
pub use tlog_tiles::{EMPTY_HASH, Hash, HashReader};
use tlog_tiles::{node_hash, record_hash, split_stored_hash_index, stored_hash_index};

/// Longest inclusion or consistency proof any tree of up to 2^63 leaves needs.
pub const MAX_PROOF_LEN: usize = 64;
/// Longest range proof: one hash per tree level on either side of the range.
pub const MAX_RANGE_PROOF_LEN: usize = 2 * MAX_PROOF_LEN;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("index {index} is not inside a tree of size {size}")]
    OutOfRange { index: u64, size: u64 },
    #[error("range [{a}, {b}) is not a non-empty range inside a tree of size {size}")]
    BadRange { a: u64, b: u64, size: u64 },
    #[error("old size {old} is larger than new size {new}")]
    BadSizes { old: u64, new: u64 },
    #[error("proof has {0} hashes; more than any tree of this size needs")]
    TooLong(usize),
    #[error("range proof was given {got} leaves for a range of {want}")]
    LeafCount { got: u64, want: u64 },
    #[error("proof does not lead to the expected root hash")]
    Mismatch,
    #[error("hash store: {0}")]
    Read(String),
}

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    record_hash(data)
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn interior_hash(left: &Hash, right: &Hash) -> Hash {
    node_hash(*left, *right)
}

/// Position of a complete subtree: `level` (0 = leaf) and index at that level.
pub fn split_index(stored: u64) -> (u8, u64) {
    split_stored_hash_index(stored)
}

pub fn stored_index(level: u8, n: u64) -> u64 {
    stored_hash_index(level, n)
}

fn read_err(e: tlog_tiles::Error) -> ProofError {
    ProofError::Read(e.to_string())
}

/// The root hash of the first `size` leaves.
pub fn root<R: HashReader>(size: u64, reader: &R) -> Result<Hash, ProofError> {
    tlog_tiles::tree_hash(size, reader).map_err(read_err)
}

/// The audit path for leaf `index` in the tree of `size` leaves, leaf side first.
pub fn prove_inclusion<R: HashReader>(
    index: u64,
    size: u64,
    reader: &R,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    tlog_tiles::prove_record(size, index, reader).map_err(read_err)
}

pub fn verify_inclusion(
    proof: &[Hash],
    index: u64,
    size: u64,
    leaf: &Hash,
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::TooLong(proof.len()));
    }
    tlog_tiles::check_record(&proof.to_vec(), size, *root, index, *leaf)
        .map_err(|_| ProofError::Mismatch)
}

/// Proof that the tree of `old` leaves is a prefix of the tree of `new` leaves.
pub fn prove_consistency<R: HashReader>(
    old: u64,
    new: u64,
    reader: &R,
) -> Result<Vec<Hash>, ProofError> {
    if old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    tlog_tiles::prove_tree(new, old, reader).map_err(read_err)
}

pub fn verify_consistency(
    proof: &[Hash],
    old: u64,
    old_root: &Hash,
    new: u64,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::TooLong(proof.len()));
    }
    if old == 0 {
        // The empty tree is a prefix of every tree, but its root is fixed.
        return if proof.is_empty()
            && *old_root == EMPTY_HASH
            && (new > 0 || *new_root == EMPTY_HASH)
        {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    tlog_tiles::check_tree(&proof.to_vec(), new, *new_root, old, *old_root)
        .map_err(|_| ProofError::Mismatch)
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    1 << (n - 1).ilog2()
}

/// Hash of the RFC 6962 subtree over leaves `[lo, hi)`, from the complete
/// subtrees that cover it.
pub fn subtree_hash<R: HashReader>(lo: u64, hi: u64, reader: &R) -> Result<Hash, ProofError> {
    let indexes = tlog_tiles::sub_tree_index(lo, hi, Vec::new());
    let hashes = reader.read_hashes(&indexes).map_err(read_err)?;
    if hashes.len() != indexes.len() || hashes.is_empty() {
        return Err(ProofError::Read("short read".into()));
    }
    Ok(fold_right(&hashes))
}

/// Folds complete subtrees of decreasing size, left to right, into the hash
/// of the subtree they make up together.
fn fold_right(hashes: &[Hash]) -> Hash {
    let mut acc = hashes[hashes.len() - 1];
    for h in hashes[..hashes.len() - 1].iter().rev() {
        acc = node_hash(*h, acc);
    }
    acc
}

/// Proof that leaves `[a, b)` are exactly what the tree of `size` holds there.
pub fn prove_range<R: HashReader>(
    a: u64,
    b: u64,
    size: u64,
    reader: &R,
) -> Result<Vec<Hash>, ProofError> {
    if a >= b || b > size {
        return Err(ProofError::BadRange { a, b, size });
    }
    let mut out = Vec::new();
    collect_outside(0, size, a, b, reader, &mut out)?;
    Ok(out)
}

fn collect_outside<R: HashReader>(
    lo: u64,
    hi: u64,
    a: u64,
    b: u64,
    reader: &R,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    if hi <= a || lo >= b {
        out.push(subtree_hash(lo, hi, reader)?);
        return Ok(());
    }
    if a <= lo && hi <= b {
        return Ok(());
    }
    let k = split_point(hi - lo);
    collect_outside(lo, lo + k, a, b, reader, out)?;
    collect_outside(lo + k, hi, a, b, reader, out)
}

/// Streams the leaves of a range `[a, b)` and checks them against a range
/// proof, holding only O(log n) hashes however long the range.
#[derive(Clone, Debug)]
pub struct RangeVerifier {
    start: u64,
    next: u64,
    /// Complete aligned subtrees covering `[start, next)`: (first leaf, level, hash).
    stack: Vec<(u64, u8, Hash)>,
    /// A leaf was pushed at index `u64::MAX`, which no tree has: the range
    /// cannot verify.
    past_end: bool,
}

impl RangeVerifier {
    pub fn new(start: u64) -> Self {
        Self {
            start,
            next: start,
            stack: Vec::new(),
            past_end: false,
        }
    }

    /// Index the next pushed leaf will take.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    pub fn push(&mut self, leaf: Hash) {
        if self.next == u64::MAX {
            self.past_end = true;
            return;
        }
        self.stack.push((self.next, 0, leaf));
        self.next += 1;
        // Merge two equal neighbours while the left one is aligned to the
        // size of their union: that keeps every stacked subtree a node of
        // the RFC 6962 tree.
        while self.stack.len() >= 2 {
            let (ls, ll, lh) = self.stack[self.stack.len() - 2];
            let (_, rl, rh) = self.stack[self.stack.len() - 1];
            if ll != rl || ll >= 63 || ls % (2u64 << ll) != 0 {
                break;
            }
            self.stack.truncate(self.stack.len() - 2);
            self.stack.push((ls, ll + 1, node_hash(lh, rh)));
        }
    }

    /// Checks the pushed leaves are `[start, b)` of the tree of `size`
    /// leaves with root `root`, given the range proof.
    pub fn finish(&self, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
        let (a, b) = (self.start, self.next);
        if a >= b || b > size || self.past_end {
            return Err(ProofError::BadRange { a, b, size });
        }
        if proof.len() > MAX_RANGE_PROOF_LEN {
            return Err(ProofError::TooLong(proof.len()));
        }
        let mut proof_iter = proof.iter();
        let got = self.rebuild(0, size, &mut proof_iter)?;
        if proof_iter.next().is_some() || got != *root {
            return Err(ProofError::Mismatch);
        }
        Ok(())
    }

    fn rebuild<'p>(
        &self,
        lo: u64,
        hi: u64,
        proof: &mut impl Iterator<Item = &'p Hash>,
    ) -> Result<Hash, ProofError> {
        let (a, b) = (self.start, self.next);
        if hi <= a || lo >= b {
            return proof.next().copied().ok_or(ProofError::Mismatch);
        }
        if a <= lo && hi <= b {
            return self.inside(lo, hi);
        }
        let k = split_point(hi - lo);
        let left = self.rebuild(lo, lo + k, proof)?;
        let right = self.rebuild(lo + k, hi, proof)?;
        Ok(node_hash(left, right))
    }

    /// Hash of a tree node lying wholly inside the pushed range: a run of
    /// stacked subtrees, folded.
    fn inside(&self, lo: u64, hi: u64) -> Result<Hash, ProofError> {
        let first = self.stack.iter().position(|(s, _, _)| *s == lo);
        let Some(first) = first else {
            return Err(ProofError::Mismatch);
        };
        let mut run = Vec::new();
        let mut end = lo;
        for (s, l, h) in &self.stack[first..] {
            if end == hi {
                break;
            }
            if *s != end {
                return Err(ProofError::Mismatch);
            }
            run.push(*h);
            end = s + (1u64 << l);
        }
        if end != hi || run.is_empty() {
            return Err(ProofError::Mismatch);
        }
        Ok(fold_right(&run))
    }
}

/// Verifies a whole range at once; see [`RangeVerifier`].
pub fn verify_range(
    a: u64,
    leaves: &[Hash],
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let mut v = RangeVerifier::new(a);
    for l in leaves {
        v.push(*l);
    }
    v.finish(size, proof, root)
}

/// Keeps every complete subtree hash of a growing tree in memory. For tests,
/// the offline verifier, and anything that holds a whole (small) tree.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    /// levels[l][n] = hash of the complete subtree of 2^l leaves at n·2^l.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(h);
            let n = self.levels[level].len();
            if n % 2 == 1 {
                break;
            }
            h = node_hash(self.levels[level][n - 2], h);
            level += 1;
        }
    }

    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        root(size, self)
    }
}

impl HashReader for MemoryTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                let (level, n) = split_stored_hash_index(i);
                self.levels
                    .get(usize::from(level))
                    .and_then(|l| l.get(usize::try_from(n).ok()?))
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(n: u64) -> (MemoryTree, Vec<Hash>) {
        let mut t = MemoryTree::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let l = leaf_hash(&i.to_be_bytes());
            leaves.push(l);
            t.push(l);
        }
        (t, leaves)
    }

    /// RFC 6962 MTH, straight from the definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_HASH,
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_rfc_definition() {
        let (t, leaves) = tree(70);
        for size in 0..=70 {
            assert_eq!(
                t.root(size).unwrap(),
                mth(&leaves[..size as usize]),
                "size {size}"
            );
        }
    }

    #[test]
    fn range_proofs_verify_for_every_range_and_size() {
        let (t, leaves) = tree(37);
        for size in 1..=37u64 {
            let r = t.root(size).unwrap();
            for a in 0..size {
                for b in a + 1..=size {
                    let p = prove_range(a, b, size, &t).unwrap();
                    verify_range(a, &leaves[a as usize..b as usize], size, &p, &r)
                        .unwrap_or_else(|e| panic!("[{a},{b}) of {size}: {e}"));
                }
            }
        }
    }

    #[test]
    fn range_proofs_catch_dropped_added_altered_and_reordered_leaves() {
        let (t, leaves) = tree(100);
        let (a, b, size) = (13u64, 71u64, 100u64);
        let r = t.root(size).unwrap();
        let p = prove_range(a, b, size, &t).unwrap();
        let range = &leaves[a as usize..b as usize];

        let mut dropped = range.to_vec();
        dropped.remove(5);
        assert!(verify_range(a, &dropped, size, &p, &r).is_err());

        let mut added = range.to_vec();
        added.insert(5, leaf_hash(b"extra"));
        assert!(verify_range(a, &added, size, &p, &r).is_err());

        let mut altered = range.to_vec();
        altered[9] = leaf_hash(b"altered");
        assert!(verify_range(a, &altered, size, &p, &r).is_err());

        let mut swapped = range.to_vec();
        swapped.swap(3, 4);
        assert!(verify_range(a, &swapped, size, &p, &r).is_err());

        // The same leaves claimed at another position.
        assert!(verify_range(a + 1, range, size, &p, &r).is_err());

        let mut long = p.clone();
        long.push(EMPTY_HASH);
        assert!(verify_range(a, range, size, &long, &r).is_err());
        assert!(verify_range(a, range, size, &p[1..], &r).is_err());
        let junk = vec![EMPTY_HASH; 10_000];
        assert_eq!(
            verify_range(a, range, size, &junk, &r),
            Err(ProofError::TooLong(10_000))
        );
    }

    #[test]
    fn hostile_proofs_are_refused_without_panicking() {
        let (t, leaves) = tree(20);
        let r = t.root(20).unwrap();
        let junk = vec![EMPTY_HASH; 1_000_000];
        assert!(verify_inclusion(&junk, 3, 20, &leaves[3], &r).is_err());
        assert!(verify_inclusion(&[], 20, 20, &leaves[3], &r).is_err());
        assert!(verify_inclusion(&[], u64::MAX, u64::MAX, &leaves[3], &r).is_err());
        assert!(verify_consistency(&junk, 3, &r, 20, &r).is_err());
        assert!(verify_consistency(&[], 21, &r, 20, &r).is_err());
        assert!(verify_consistency(&[], 5, &r, u64::MAX, &r).is_err());
        assert!(verify_consistency(&[], 0, &r, 20, &r).is_err());
        assert!(verify_consistency(&[], 0, &EMPTY_HASH, 20, &r).is_ok());
        for len in 0..70 {
            let p = vec![r; len];
            let _ = verify_inclusion(&p, 7, 1 << 40, &leaves[0], &r);
            let _ = verify_consistency(&p, 7, &r, 1 << 40, &r);
            let _ = verify_range(7, &leaves[..3], 1 << 40, &p, &r);
        }
        // Found by the `proof` fuzz target: leaves pushed past index
        // u64::MAX - 1 overflowed the next index.
        assert!(verify_range(u64::MAX - 9, &[r; 12], 3, &[], &r).is_err());
        assert!(verify_range(u64::MAX - 1, &[r; 2], u64::MAX, &[], &r).is_err());
    }

    #[test]
    fn consistency_and_inclusion_round_trip() {
        let (t, leaves) = tree(64);
        for new in 1..=64u64 {
            let nr = t.root(new).unwrap();
            for old in 0..=new {
                let or = t.root(old).unwrap();
                let p = prove_consistency(old, new, &t).unwrap();
                verify_consistency(&p, old, &or, new, &nr).unwrap();
            }
            for i in 0..new {
                let p = prove_inclusion(i, new, &t).unwrap();
                verify_inclusion(&p, i, new, &leaves[i as usize], &nr).unwrap();
                assert!(verify_inclusion(&p, i, new, &leaf_hash(b"x"), &nr).is_err());
            }
        }
    }
}
