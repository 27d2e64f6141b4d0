//! The accumulated subtree-hash vector of draft-ietf-plants-merkle-tree-certs, against `subtree_hash`.
//!
//! Appendix "Subtree Test Vectors" (C.1) of the draft takes a tree whose leaf
//! `i` is the single byte `i`, writes the line `"[START, END) HASH\n"` for
//! every valid subtree of a tree of up to 130 leaves, and publishes the
//! SHA-256 of all the lines. A valid subtree `[start, end)` has `start` a
//! multiple of the smallest power of two not below `end - start`; its hash
//! is the RFC 6962 tree hash of those leaves. The digest is copied from
//! github.com/transparency-dev/merkle `testonly/vectors_test.go`
//! (`TestSubtreeHashVectors`), which reproduces the draft's appendix.

use std::fmt::Write as _;

use docket_core::merkle::{MemoryTree, leaf_hash, subtree_hash};
use sha2::{Digest, Sha256};

const LEAVES: u64 = 130;
const SUBTREE_HASHES_DIGEST: &str =
    "94a95384a8c69acea9b50d035a58285b3a777cb7a724005faa5e1f1e1190007f";

fn is_valid_subtree(start: u64, end: u64) -> bool {
    start < end && start.is_multiple_of((end - start).next_power_of_two())
}

#[test]
fn subtree_hashes_reproduce_the_published_digest() {
    let mut tree = MemoryTree::new();
    for i in 0..LEAVES {
        tree.push(leaf_hash(
            &[u8::try_from(i).expect("fewer than 256 leaves")],
        ));
    }

    let mut lines = String::new();
    let mut count = 0;
    for end in 1..=LEAVES {
        for start in (0..end).filter(|&s| is_valid_subtree(s, end)) {
            let h = subtree_hash(start, end, &tree).expect("subtree is in the tree");
            if start == 0 {
                assert_eq!(tree.root(end), Ok(h), "root of {end}");
            }
            writeln!(lines, "[{start}, {end}) {}", hex::encode(h.0)).expect("String write");
            count += 1;
        }
    }
    // Every leaf on its own is a valid subtree, so there are at least 130.
    assert!(count > LEAVES, "only {count} subtrees enumerated");
    assert_eq!(
        hex::encode(Sha256::digest(lines.as_bytes())),
        SUBTREE_HASHES_DIGEST
    );
}
