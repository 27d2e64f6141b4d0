//! Self-standing receipts: one entry, its inclusion proof and the signed
//! checkpoint the proof leads to, as one JSON document that anyone holding
//! the log's public key can verify offline. Evidence packs use the same
//! proof encoding and this same verifier.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::checkpoint::{CheckpointError, LogVerifier, SignedCheckpoint};
use crate::entry::{Entry, EntryError};
use crate::merkle::{Hash, MAX_PROOF_LEN, ProofError, verify_inclusion};

pub const RECEIPT_FORMAT: &str = "docket-receipt/v1";
/// Largest receipt document accepted.
pub const MAX_RECEIPT_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub format: String,
    /// The entry as a JSON object; any rendering of it that canonicalizes
    /// back to the logged bytes verifies.
    pub entry: serde_json::Value,
    pub tree_size: u64,
    /// Audit path, leaf side first, each hash standard base64.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint note for `tree_size`.
    pub checkpoint: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("receipt is not valid JSON of the receipt format: {0}")]
    Malformed(String),
    #[error("receipt is larger than {MAX_RECEIPT_BYTES} bytes")]
    TooLarge,
    #[error("unsupported receipt format {0:?}; expected {RECEIPT_FORMAT:?}")]
    Format(String),
    #[error("entry: {0}")]
    Entry(#[from] EntryError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("receipt claims tree size {claimed} but its checkpoint is for size {signed}")]
    SizeMismatch { claimed: u64, signed: u64 },
    #[error("inclusion proof hash {0} is not base64 of 32 bytes")]
    BadHash(usize),
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
}

/// What a verified receipt establishes.
#[derive(Clone, Debug)]
pub struct VerifiedReceipt {
    pub entry: Entry,
    pub leaf_hash: Hash,
    pub checkpoint: SignedCheckpoint,
}

impl Receipt {
    /// `note` is the signed checkpoint for a tree of `tree_size` entries.
    pub fn new(entry: &Entry, proof: &[Hash], tree_size: u64, note: &str) -> Self {
        let entry_json = serde_json::from_slice(&entry.encode()).unwrap_or_default();
        Self {
            format: RECEIPT_FORMAT.to_owned(),
            entry: entry_json,
            tree_size,
            inclusion_proof: proof.iter().map(|h| h.to_string()).collect(),
            checkpoint: note.to_owned(),
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ReceiptError> {
        if bytes.len() > MAX_RECEIPT_BYTES {
            return Err(ReceiptError::TooLarge);
        }
        serde_json::from_slice(bytes).map_err(|e| ReceiptError::Malformed(e.to_string()))
    }

    pub fn verify(&self, log: &LogVerifier) -> Result<VerifiedReceipt, ReceiptError> {
        if self.format != RECEIPT_FORMAT {
            return Err(ReceiptError::Format(self.format.clone()));
        }
        let entry = Entry::from_json_value(&self.entry)?;
        let checkpoint = log.verify(&self.checkpoint)?;
        if checkpoint.size != self.tree_size {
            return Err(ReceiptError::SizeMismatch {
                claimed: self.tree_size,
                signed: checkpoint.size,
            });
        }
        if self.inclusion_proof.len() > MAX_PROOF_LEN {
            return Err(ProofError::TooLong(self.inclusion_proof.len()).into());
        }
        let proof = decode_hashes(&self.inclusion_proof)?;
        let leaf_hash = entry.leaf_hash();
        verify_inclusion(
            &proof,
            entry.seq.0,
            checkpoint.size,
            &leaf_hash,
            &checkpoint.root,
        )?;
        Ok(VerifiedReceipt {
            entry,
            leaf_hash,
            checkpoint,
        })
    }
}

/// Decodes base64 proof hashes, naming the first bad one.
pub fn decode_hashes(hashes: &[String]) -> Result<Vec<Hash>, ReceiptError> {
    hashes
        .iter()
        .enumerate()
        .map(|(i, s)| Hash::parse_hash(s).map_err(|_| ReceiptError::BadHash(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::LogSigner;
    use crate::entry::{CanonicalBody, EntryType, Seq, Timestamp};
    use crate::merkle::{MemoryTree, prove_inclusion};
    use serde_json::json;

    fn log_of(n: u64) -> (LogSigner, Vec<Entry>, MemoryTree) {
        let signer = LogSigner::generate("test-log").unwrap();
        let mut tree = MemoryTree::new();
        let mut entries = Vec::new();
        let mut prev = Hash([0; 32]);
        for i in 0..n {
            let e = Entry {
                seq: Seq(i),
                ts: Timestamp::from_micros(1_700_000_000_000_000 + i as i64),
                kind: EntryType::Receipt,
                prev,
                body: CanonicalBody::from_value(&json!({"agent": "a", "i": i})).unwrap(),
            };
            prev = e.leaf_hash();
            tree.push(prev);
            entries.push(e);
        }
        (signer, entries, tree)
    }

    fn receipt(signer: &LogSigner, entries: &[Entry], tree: &MemoryTree, seq: u64) -> Receipt {
        let size = tree.len();
        let cp = signer.sign(size, tree.root(size).unwrap()).unwrap();
        let proof = prove_inclusion(seq, size, tree).unwrap();
        Receipt::new(&entries[seq as usize], &proof, cp.size, &cp.note)
    }

    #[test]
    fn a_receipt_verifies_offline_even_reformatted() {
        let (signer, entries, tree) = log_of(11);
        let r = receipt(&signer, &entries, &tree, 6);
        let pretty = serde_json::to_vec_pretty(&r).unwrap();
        let back = Receipt::from_json(&pretty).unwrap();
        let v = back.verify(&signer.verifier()).unwrap();
        assert_eq!(v.entry, entries[6]);
    }

    #[test]
    fn any_change_to_a_receipt_fails_verification() {
        let (signer, entries, tree) = log_of(11);
        let r = receipt(&signer, &entries, &tree, 6);
        let key = signer.verifier();

        let mut body = r.clone();
        body.entry["body"]["i"] = json!(7);
        assert!(body.verify(&key).is_err());

        let mut seq = r.clone();
        seq.entry["seq"] = json!(5);
        assert!(seq.verify(&key).is_err());

        let mut proof = r.clone();
        proof.inclusion_proof[0] = Hash([1; 32]).to_string();
        assert!(proof.verify(&key).is_err());

        let mut size = r.clone();
        size.tree_size = 12;
        assert!(matches!(
            size.verify(&key),
            Err(ReceiptError::SizeMismatch { .. })
        ));

        let mut note = r.clone();
        note.checkpoint = note.checkpoint.replacen("\n11\n", "\n12\n", 1);
        assert!(note.verify(&key).is_err());

        let other = LogSigner::generate("test-log").unwrap();
        assert!(r.verify(&other.verifier()).is_err());

        // Every single byte of the serialized receipt: flipping it must
        // either make the document unreadable or fail verification, unless
        // the flip only touched insignificant formatting.
        let bytes = serde_json::to_vec(&r).unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            if let Ok(changed) = Receipt::from_json(&b)
                && changed != r
            {
                assert!(
                    changed.verify(&key).is_err(),
                    "byte {i} flipped still verifies"
                );
            }
        }
    }
}
