//! docket-core's integration tests, one binary: our Merkle hashing and proofs against published vectors.

mod ct_log;
mod subtrees;
mod vectors;

use docket_core::merkle::Hash;

/// A published hash written as 64 hex digits.
fn hash_hex(s: &str) -> Hash {
    let bytes = hex::decode(s).unwrap_or_else(|e| panic!("{s:?} is not hex: {e}"));
    Hash(
        bytes
            .try_into()
            .unwrap_or_else(|b: Vec<u8>| panic!("{s:?} is {} bytes, not 32", b.len())),
    )
}

fn hashes_hex(hs: &[&str]) -> Vec<Hash> {
    hs.iter().map(|h| hash_hex(h)).collect()
}

/// Every copy of `h` with exactly one bit flipped: 256 of them.
fn bit_flips(h: &Hash) -> impl Iterator<Item = Hash> + '_ {
    (0..32).flat_map(move |byte| {
        (0..8).map(move |bit| {
            let mut flipped = *h;
            flipped.0[byte] ^= 1 << bit;
            flipped
        })
    })
}

/// Every copy of `proof` with exactly one bit flipped in one of its hashes.
fn proof_bit_flips(proof: &[Hash]) -> impl Iterator<Item = Vec<Hash>> + '_ {
    (0..proof.len()).flat_map(move |i| {
        bit_flips(&proof[i]).map(move |h| {
            let mut p = proof.to_vec();
            p[i] = h;
            p
        })
    })
}
