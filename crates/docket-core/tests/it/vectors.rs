//! The RFC 6962 reference vectors shared by Certificate Transparency implementations, against our Merkle code.
//!
//! All hex below is copied verbatim from github.com/transparency-dev/merkle
//! (the Go Merkle library used for CT and Trillian); each table names the file
//! it came from. Those files all describe one tree, over the 8 leaves below.

use docket_core::merkle::{
    EMPTY_HASH, Hash, HashReader, MemoryTree, ProofError, interior_hash, leaf_hash,
    prove_consistency, prove_inclusion, prove_range, root, stored_index, subtree_hash,
    verify_consistency, verify_inclusion, verify_range,
};
use sha2::{Digest, Sha256};

use crate::{bit_flips, hash_hex, hashes_hex, proof_bit_flips};

// transparency-dev/merkle testonly/constants.go: `LeafInputs()`.
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

// transparency-dev/merkle testonly/constants.go: `NodeHashes()`, the hashes
// of every complete subtree of the tree over `LEAVES`; `[level][index]`.
const NODE_HASHES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

// transparency-dev/merkle testonly/constants.go: `RootHashes()` and
// `EmptyRootHash()`; `ROOTS[size]` is the root of the first `size` leaves.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

// transparency-dev/merkle rfc6962/rfc6962_test.go: `TestRFC6962Hasher`.
const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const EMPTY_LEAF: &str = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";
const LEAF_L123456: &str = "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56";

struct Inclusion {
    index: u64,
    size: u64,
    proof: &'static [&'static str],
}

// transparency-dev/merkle testonly/reference_test.go: `TestRefInclusionProof`.
// proof/verify_test.go's `inclusionProofs` holds the same proofs with a
// 1-based leaf number ({1, 8}, {6, 8}, {3, 3}, {2, 5}).
const INCLUSION: &[Inclusion] = &[
    Inclusion {
        index: 0,
        size: 1,
        proof: &[],
    },
    Inclusion {
        index: 0,
        size: 2,
        proof: &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    },
    Inclusion {
        index: 1,
        size: 2,
        proof: &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    },
    Inclusion {
        index: 2,
        size: 3,
        proof: &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    },
    Inclusion {
        index: 1,
        size: 5,
        proof: &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    },
    Inclusion {
        index: 0,
        size: 8,
        proof: &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    },
    Inclusion {
        index: 5,
        size: 8,
        proof: &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    },
];

struct Consistency {
    old: u64,
    new: u64,
    proof: &'static [&'static str],
}

// transparency-dev/merkle testonly/reference_test.go: `TestRefConsistencyProof`
// (1→1, 1→8, 2→5, 6→8), and proof/verify_test.go: `consistencyProofs`, which
// adds 6→7.
const CONSISTENCY: &[Consistency] = &[
    Consistency {
        old: 1,
        new: 1,
        proof: &[],
    },
    Consistency {
        old: 1,
        new: 8,
        proof: &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    },
    Consistency {
        old: 6,
        new: 8,
        proof: &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    },
    Consistency {
        old: 2,
        new: 5,
        proof: &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    },
    Consistency {
        old: 6,
        new: 7,
        proof: &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    },
];

fn leaf_input(i: usize) -> Vec<u8> {
    hex::decode(LEAVES[i]).expect("LEAVES is hex")
}

fn leaf(i: u64) -> Hash {
    leaf_hash(&leaf_input(usize::try_from(i).expect("small index")))
}

fn published_root(size: u64) -> Hash {
    hash_hex(ROOTS[usize::try_from(size).expect("small size")])
}

fn node(level: usize, index: usize) -> Hash {
    hash_hex(NODE_HASHES[level][index])
}

/// The tree over the first `n` reference leaves.
fn reference_tree(n: usize) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push(leaf_hash(&leaf_input(i)));
    }
    t
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash(h.finalize().into())
}

#[test]
fn empty_tree_root_is_sha256_of_the_empty_string() {
    let published = hash_hex(EMPTY_ROOT);
    assert_eq!(sha256(&[b""]), published);
    assert_eq!(EMPTY_HASH, published);
    assert_eq!(hash_hex(ROOTS[0]), published);
    let empty = MemoryTree::new();
    assert_eq!(empty.root(0), Ok(published));
    assert_eq!(root(0, &empty), Ok(published));
    // The empty tree's root is not the hash of an empty leaf.
    assert_ne!(leaf_hash(b""), published);
}

#[test]
fn leaf_and_node_hashes_follow_rfc6962_section_2_1() {
    assert_eq!(leaf_hash(b""), hash_hex(EMPTY_LEAF));
    assert_eq!(leaf_hash(b"L123456"), hash_hex(LEAF_L123456));

    for i in 0..LEAVES.len() {
        let data = leaf_input(i);
        assert_eq!(leaf_hash(&data), node(0, i), "leaf {i}");
        assert_eq!(leaf_hash(&data), sha256(&[&[0x00], &data]), "leaf {i}");
    }

    // Each published node is the interior hash of the two below it.
    for (level, row) in NODE_HASHES.iter().enumerate().skip(1) {
        for index in 0..row.len() {
            let (l, r) = (node(level - 1, 2 * index), node(level - 1, 2 * index + 1));
            let want = node(level, index);
            assert_eq!(interior_hash(&l, &r), want, "node ({level}, {index})");
            assert_eq!(sha256(&[&[0x01], &l.0, &r.0]), want);
        }
    }

    // Domain separation: a node is not the leaf of its children's
    // concatenation, and the order of the children matters.
    let (a, b) = (leaf_hash(b"Hello"), leaf_hash(b"World"));
    assert_ne!(a, b);
    assert_ne!(interior_hash(&a, &b), leaf_hash(&[a.0, b.0].concat()));
    assert_ne!(interior_hash(&a, &b), interior_hash(&b, &a));
}

#[test]
fn tree_stores_every_published_node_hash() {
    let t = reference_tree(8);
    for (level, row) in NODE_HASHES.iter().enumerate() {
        for index in 0..row.len() {
            let want = node(level, index);
            let lvl = u8::try_from(level).expect("small level");
            let stored = t
                .read_hashes(&[stored_index(lvl, index as u64)])
                .expect("node is in the tree");
            assert_eq!(stored, vec![want], "node ({level}, {index})");
            let lo = (index as u64) << level;
            let hi = (index as u64 + 1) << level;
            assert_eq!(subtree_hash(lo, hi, &t), Ok(want), "[{lo}, {hi})");
        }
    }
}

#[test]
fn roots_match_the_published_roots_for_every_size() {
    let full = reference_tree(8);
    for size in 0..=8u64 {
        let want = published_root(size);
        assert_eq!(full.root(size), Ok(want), "size {size} of the 8-leaf tree");
        let exact = reference_tree(size as usize);
        assert_eq!(exact.len(), size);
        assert_eq!(exact.root(size), Ok(want), "tree of exactly {size} leaves");
    }
}

#[test]
fn inclusion_proofs_equal_the_published_proofs_and_verify() {
    let t = reference_tree(8);
    for v in INCLUSION {
        let want = hashes_hex(v.proof);
        let (i, n) = (v.index, v.size);
        assert_eq!(
            prove_inclusion(i, n, &t),
            Ok(want.clone()),
            "leaf {i} of {n}"
        );
        // A tree no bigger than the proof needs gives the same proof.
        let exact = reference_tree(n as usize);
        assert_eq!(prove_inclusion(i, n, &exact), Ok(want.clone()));
        assert_eq!(
            verify_inclusion(&want, i, n, &leaf(i), &published_root(n)),
            Ok(()),
            "leaf {i} of {n}"
        );
    }
}

#[test]
fn published_inclusion_proofs_are_rejected_once_tampered_with() {
    for v in INCLUSION {
        let proof = hashes_hex(v.proof);
        let (i, n) = (v.index, v.size);
        let (l, r) = (leaf(i), published_root(n));
        let refused = |p: &[Hash], i: u64, n: u64, l: &Hash, r: &Hash| {
            verify_inclusion(p, i, n, l, r).is_err()
        };
        let ctx = format!("leaf {i} of {n}");

        for p in proof_bit_flips(&proof) {
            assert!(refused(&p, i, n, &l, &r), "{ctx}: flipped proof bit");
        }
        for bad in bit_flips(&l) {
            assert!(refused(&proof, i, n, &bad, &r), "{ctx}: flipped leaf bit");
        }
        for bad in bit_flips(&r) {
            assert!(refused(&proof, i, n, &l, &bad), "{ctx}: flipped root bit");
        }

        // Any other position, inside the tree or not.
        for j in (0..n + 2).chain([i ^ 2, i.wrapping_sub(1), u64::MAX]) {
            if j != i {
                assert!(refused(&proof, j, n, &l, &r), "{ctx}: claimed at {j}");
            }
        }
        // A tree of another height (the sizes transparency-dev probes; a
        // size of the same shape yields the same root, which is why the
        // root, not the proof, is what pins the size).
        for m in [n * 2, n / 2, 0, i] {
            assert!(refused(&proof, i, m, &l, &r), "{ctx}: claimed size {m}");
        }

        // Another leaf, or another published root.
        for other in (0..8).filter(|&j| j != i) {
            assert!(
                refused(&proof, i, n, &leaf(other), &r),
                "{ctx}: leaf {other}"
            );
        }
        for other in (0..=8).filter(|&m| m != n) {
            let bad = published_root(other);
            assert!(refused(&proof, i, n, &l, &bad), "{ctx}: root of {other}");
        }

        // Hashes added or removed at either end, or in the middle.
        let ln = proof.len();
        let mut variants: Vec<Vec<Hash>> = Vec::new();
        for extra in [EMPTY_HASH, r, l] {
            variants.push([proof.as_slice(), &[extra][..]].concat());
            variants.push([&[extra][..], proof.as_slice()].concat());
        }
        if ln > 0 {
            variants.push(proof[..ln - 1].to_vec());
            variants.push(proof[1..].to_vec());
        }
        if ln > 1 {
            variants.push([&proof[..1], &[EMPTY_HASH][..], &proof[1..]].concat());
            let mut swapped = proof.clone();
            swapped.swap(0, 1);
            variants.push(swapped);
        }
        for p in variants {
            assert!(refused(&p, i, n, &l, &r), "{ctx}: proof {p:?}");
        }
    }
}

#[test]
fn consistency_proofs_equal_the_published_proofs_and_verify() {
    let t = reference_tree(8);
    for v in CONSISTENCY {
        let want = hashes_hex(v.proof);
        let (old, new) = (v.old, v.new);
        assert_eq!(
            prove_consistency(old, new, &t),
            Ok(want.clone()),
            "{old}→{new}"
        );
        let exact = reference_tree(new as usize);
        assert_eq!(prove_consistency(old, new, &exact), Ok(want.clone()));
        assert_eq!(
            verify_consistency(&want, old, &published_root(old), new, &published_root(new)),
            Ok(()),
            "{old}→{new}"
        );
    }
}

#[test]
fn published_consistency_proofs_are_rejected_once_tampered_with() {
    for v in CONSISTENCY.iter().filter(|v| !v.proof.is_empty()) {
        let proof = hashes_hex(v.proof);
        let (old, new) = (v.old, v.new);
        let (r1, r2) = (published_root(old), published_root(new));
        let refused = |p: &[Hash], old: u64, r1: &Hash, new: u64, r2: &Hash| {
            verify_consistency(p, old, r1, new, r2).is_err()
        };
        let ctx = format!("{old}→{new}");

        for p in proof_bit_flips(&proof) {
            assert!(refused(&p, old, &r1, new, &r2), "{ctx}: flipped proof bit");
        }
        for bad in bit_flips(&r1) {
            assert!(
                refused(&proof, old, &bad, new, &r2),
                "{ctx}: flipped old root"
            );
        }
        for bad in bit_flips(&r2) {
            assert!(
                refused(&proof, old, &r1, new, &bad),
                "{ctx}: flipped new root"
            );
        }

        for o in [old - 1, old + 1, old ^ 2, new, new + 1, u64::MAX] {
            assert!(refused(&proof, o, &r1, new, &r2), "{ctx}: old size {o}");
        }
        for n in [new * 2, new / 2, old, 0, u64::MAX] {
            assert!(refused(&proof, old, &r1, n, &r2), "{ctx}: new size {n}");
        }
        assert!(refused(&proof, old, &r2, new, &r1), "{ctx}: swapped roots");
        for other in 0..=8 {
            if other != old {
                let bad = published_root(other);
                assert!(
                    refused(&proof, old, &bad, new, &r2),
                    "{ctx}: old root {other}"
                );
            }
            if other != new {
                let bad = published_root(other);
                assert!(
                    refused(&proof, old, &r1, new, &bad),
                    "{ctx}: new root {other}"
                );
            }
        }

        let ln = proof.len();
        let mut variants = vec![Vec::new(), proof[..ln - 1].to_vec(), proof[1..].to_vec()];
        for extra in [EMPTY_HASH, r1, r2, proof[0]] {
            variants.push([proof.as_slice(), &[extra][..]].concat());
            variants.push([&[extra][..], proof.as_slice()].concat());
        }
        let mut swapped = proof.clone();
        swapped.swap(0, 1);
        variants.push(swapped);
        for p in variants {
            assert!(refused(&p, old, &r1, new, &r2), "{ctx}: proof {p:?}");
        }
    }
}

/// The fixed cases of transparency-dev/merkle proof/verify_test.go
/// `TestVerifyConsistency`, with its placeholder roots made real hashes.
#[test]
fn trivial_consistency_cases_follow_the_reference_verifier() {
    let (e, r1, r2) = (EMPTY_HASH, published_root(1), published_root(2));
    let ok = |p: &[Hash], old, a: &Hash, new, b: &Hash| verify_consistency(p, old, a, new, b);

    // Sizes that are always consistent.
    assert_eq!(ok(&[], 0, &e, 0, &e), Ok(()));
    assert_eq!(ok(&[], 0, &e, 1, &r1), Ok(()));
    assert_eq!(ok(&[], 1, &r1, 1, &r1), Ok(()));
    assert_eq!(
        ok(&[], 8, &published_root(8), 8, &published_root(8)),
        Ok(())
    );
    // Time travel to the past.
    assert_eq!(
        ok(&[], 1, &r1, 0, &e),
        Err(ProofError::BadSizes { old: 1, new: 0 })
    );
    assert_eq!(
        ok(&[], 2, &r2, 1, &r1),
        Err(ProofError::BadSizes { old: 2, new: 1 })
    );
    // An empty proof between different non-zero sizes.
    assert!(ok(&[], 1, &r1, 2, &r2).is_err());
    // Equal sizes, different roots.
    assert!(ok(&[], 1, &r1, 1, &r2).is_err());
    assert!(ok(&[], 1, &e, 1, &r1).is_err());
    // Roots that match but a proof that should be empty is not.
    assert!(ok(&[e], 0, &e, 0, &e).is_err());
    assert!(ok(&[e], 0, &e, 1, &e).is_err());
    assert!(ok(&[e], 1, &e, 1, &e).is_err());
    assert!(ok(&[r1], 1, &r1, 1, &r1).is_err());
}

#[test]
fn every_consistency_and_inclusion_proof_verifies_against_the_published_roots() {
    let t = reference_tree(8);
    for new in 1..=8u64 {
        let r2 = published_root(new);
        for old in 0..=new {
            let p = prove_consistency(old, new, &t).expect("old <= new");
            assert_eq!(
                verify_consistency(&p, old, &published_root(old), new, &r2),
                Ok(()),
                "{old}→{new}"
            );
        }
        for i in 0..new {
            let p = prove_inclusion(i, new, &t).expect("i < new");
            assert_eq!(verify_inclusion(&p, i, new, &leaf(i), &r2), Ok(()));
        }
    }
}

/// Range proofs are Docket's own, so nothing publishes them; these expected
/// proofs are assembled from the published node hashes by the rule in
/// merkle.rs: the subtrees wholly outside the range, left to right.
#[test]
fn range_proofs_over_the_reference_tree_are_made_of_published_nodes() {
    let t = reference_tree(8);
    let cases: [(u64, u64, u64, Vec<Hash>); 6] = [
        (0, 8, 8, vec![]),
        (0, 4, 8, vec![node(2, 1)]),
        (2, 5, 8, vec![node(1, 0), node(0, 5), node(1, 3)]),
        (5, 6, 8, vec![node(2, 0), node(0, 4), node(1, 3)]),
        (1, 2, 5, vec![node(0, 0), node(1, 1), node(0, 4)]),
        (6, 7, 7, vec![node(2, 0), node(1, 2)]),
    ];
    for (a, b, size, want) in cases {
        assert_eq!(
            prove_range(a, b, size, &t),
            Ok(want.clone()),
            "[{a}, {b}) of {size}"
        );
        let leaves: Vec<Hash> = (a..b).map(leaf).collect();
        assert_eq!(
            verify_range(a, &leaves, size, &want, &published_root(size)),
            Ok(())
        );
    }

    // A one-leaf range proof holds exactly the published audit path's hashes.
    for v in INCLUSION {
        let mut range = prove_range(v.index, v.index + 1, v.size, &t).expect("valid range");
        let mut path = hashes_hex(v.proof);
        range.sort_by_key(|h| h.0);
        path.sort_by_key(|h| h.0);
        assert_eq!(range, path, "leaf {} of {}", v.index, v.size);
    }

    for size in 1..=8u64 {
        let r = published_root(size);
        for a in 0..size {
            for b in a + 1..=size {
                let p = prove_range(a, b, size, &t).expect("valid range");
                let leaves: Vec<Hash> = (a..b).map(leaf).collect();
                assert_eq!(verify_range(a, &leaves, size, &p, &r), Ok(()));
                for bad in proof_bit_flips(&p) {
                    assert!(verify_range(a, &leaves, size, &bad, &r).is_err());
                }
            }
        }
    }
}
