//! Targets over the log format (`docket-core`): request JSON, entries and
//! their bodies, checkpoints, receipts, proofs, identifiers.

use docket_core::bodies;
use docket_core::entry::{Envelope, parse_hex_hash};
use docket_core::identity::{self, Did, Event};
use docket_core::merkle::{self, MemoryTree};
use docket_core::strict_json::{self, Limits, StrictJsonError};
use docket_core::{CanonicalBody, Entry, EntryType, IndexFields, LogVerifier, Receipt, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::input::Input;
use crate::keys;

/// The strict JSON check every request body passes first, with the API's
/// and the gateway's budgets; and RFC 8785 canonical JSON of what parses.
pub fn json(data: &[u8]) {
    let parsed = serde_json::from_slice::<Value>(data);
    for limits in [&Limits::API, &Limits::GATEWAY] {
        match strict_json::check(data, limits) {
            Ok(()) => {
                assert!(
                    parsed.is_ok(),
                    "strict_json accepted a body serde_json refuses: {:?}",
                    parsed.as_ref().err()
                );
            }
            // The check's syntax errors are serde_json's own: it never
            // calls malformed what serde_json would read.
            Err(StrictJsonError::Syntax { message, .. }) => {
                assert!(
                    parsed.is_err(),
                    "strict_json calls a body serde_json reads malformed: {message}"
                );
            }
            Err(_) => {}
        }
    }
    if let Ok(value) = &parsed {
        canonical(value);
    }
}

/// Docket's canonical JSON agrees with the reference implementation and
/// is a fixed point: the canonical text parses back to the same text.
fn canonical(value: &Value) {
    let Ok(text) = docket_core::jcs::to_string(value) else {
        return;
    };
    if let Ok(reference) = serde_json_canonicalizer::to_string(value) {
        assert_eq!(text, reference, "jcs differs from serde_json_canonicalizer");
    }
    let back: Value = serde_json::from_str(&text).expect("canonical JSON parses");
    assert_eq!(
        docket_core::jcs::to_string(&back).as_deref(),
        Ok(text.as_str()),
        "canonical JSON is not a fixed point"
    );
}

/// What `POST /entries` reads: the strict check with the API's budgets,
/// then each reportable type's body; and the index attributes of a body.
pub fn request_body(data: &[u8]) {
    if strict_json::check(data, &Limits::API).is_err() {
        return;
    }
    let value: Value = serde_json::from_slice(data).expect("strict_json accepted it");
    let _ = IndexFields::from_body(&value);
    for kind in [
        EntryType::Receipt,
        EntryType::Note,
        EntryType::Verification,
        EntryType::Decision,
    ] {
        let Ok(stored) = bodies::parse_reported(kind, &value) else {
            continue;
        };
        // What is stored is read back through the same type, as every
        // reader of the log will.
        assert_eq!(
            bodies::parse_reported(kind, &stored).as_ref(),
            Ok(&stored),
            "a stored {kind} body does not read back as itself"
        );
        if let Ok(canonical) = CanonicalBody::from_value(&stored) {
            typed_body(kind, canonical.as_str());
        }
    }
}

/// Entries: the canonical decode, the borrowed envelope, any JSON
/// rendering of an entry, and the typed body of each type.
pub fn entry(data: &[u8]) {
    let envelope = Envelope::parse(data);
    if let Ok(e) = Entry::decode(data) {
        assert!(
            e.encode() == data,
            "a decoded entry does not re-encode to its bytes"
        );
        let env = envelope
            .as_ref()
            .expect("Entry::decode accepts what Envelope::parse refuses");
        assert_eq!(
            (env.seq, env.ts, env.kind, env.prev, env.body.get()),
            (e.seq, e.ts, e.kind, e.prev, e.body_json()),
            "the envelope and the decoded entry disagree"
        );
        let _ = e.leaf_hash();
        let _ = e.check_body_canonical();
    }
    if let Ok(env) = &envelope {
        typed_body(env.kind, env.body.get());
    }
    // Receipts and packs carry entries as JSON objects in any rendering.
    if let Ok(value) = serde_json::from_slice::<Value>(data)
        && let Ok(e) = Entry::from_json_value(&value)
    {
        assert_eq!(
            Entry::decode(&e.encode()).as_ref(),
            Ok(&e),
            "an entry read from JSON does not decode from its own encoding"
        );
    }
}

/// A body read as its entry type's struct, or as an identity event, and
/// written back: what is written reads back the same.
fn typed_body(kind: EntryType, body: &str) {
    use bodies::*;
    match kind {
        EntryType::Receipt => read_back::<ReceiptBody>(body),
        EntryType::Decision => read_back::<DecisionBody>(body),
        EntryType::ApprovalRequested => read_back::<ApprovalRequestedBody>(body),
        EntryType::ApprovalDecided => read_back::<ApprovalDecidedBody>(body),
        EntryType::ApprovalUsed => read_back::<ApprovalUsedBody>(body),
        EntryType::Export => read_back::<ExportBody>(body),
        EntryType::Note => read_back::<NoteBody>(body),
        EntryType::Verification => read_back::<VerificationBody>(body),
        _ => {}
    }
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return;
    };
    let _ = IndexFields::from_body(&value);
    if Event::is_identity_type(kind)
        && let Ok((event, actor)) = Event::from_body(kind, &value)
    {
        let written = event.to_body(&actor);
        match Event::from_body(kind, &written) {
            Ok(again) => assert!(
                again == (event.clone(), actor.clone()),
                "a {kind} event does not read back as itself: {event:?} {actor:?} -> {again:?}"
            ),
            Err(e) => panic!("a {kind} event does not read back ({e}): {written}"),
        }
    }
}

fn read_back<T: DeserializeOwned + Serialize>(body: &str) {
    let Ok(parsed) = bodies::parse::<T>(body) else {
        return;
    };
    let written = serde_json::to_string(&parsed).expect("a body serializes");
    if let Err(e) = bodies::parse::<T>(&written) {
        panic!("a body read as its type does not read back once written ({e}): {written}");
    }
}

/// Signed notes: checkpoints and the evidence manifest's signature, and
/// the verifier keys `docket verify --key` reads.
pub fn checkpoint(data: &[u8]) {
    let Ok(note) = std::str::from_utf8(data) else {
        return;
    };
    let _ = LogVerifier::new(note);
    let verifier = keys::log_verifier();
    let text = verifier.verify_text(note);
    if let Ok(cp) = verifier.verify(note) {
        assert!(text.is_ok(), "verify accepts a note verify_text refuses");
        assert_eq!(cp.origin, verifier.origin());
        assert_eq!(cp.note, note);
        // What the log would sign for that size and root says the same.
        let ours = keys::log_signer()
            .sign(cp.size, cp.root)
            .expect("the log signs any size and root");
        let again = verifier.verify(&ours.note).expect("its own checkpoint");
        assert_eq!((again.size, again.root), (cp.size, cp.root));
    }
}

/// Self-standing receipts, verified against the fixed log key.
pub fn receipt(data: &[u8]) {
    let Ok(r) = Receipt::from_json(data) else {
        return;
    };
    if let Ok(v) = r.verify(keys::log_verifier()) {
        assert_eq!(v.leaf_hash, v.entry.leaf_hash());
        assert_eq!(v.checkpoint.size, r.tree_size);
        assert!(v.entry.seq.0 < r.tree_size);
    }
}

/// Merkle proofs: arbitrary inclusion, consistency and range proofs must
/// be refused without a panic whatever the sizes; and real proofs over a
/// small tree verify, and stop verifying when one hash changes.
pub fn proof(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 4 {
        0 => {
            let (index, size) = (input.size(), input.size());
            let (leaf, root) = (input.hash(), input.hash());
            let _ = merkle::verify_inclusion(&input.hashes(), index, size, &leaf, &root);
        }
        1 => {
            let (old, new) = (input.size(), input.size());
            let (old_root, new_root) = (input.hash(), input.hash());
            let _ = merkle::verify_consistency(&input.hashes(), old, &old_root, new, &new_root);
        }
        2 => {
            let (a, size) = (input.size(), input.size());
            let leaves: Vec<_> = (0..input.u8()).map(|_| input.hash()).collect();
            let root = input.hash();
            let _ = merkle::verify_range(a, &leaves, size, &input.hashes(), &root);
        }
        _ => real_proofs(&mut input),
    }
}

fn real_proofs(input: &mut Input<'_>) {
    let size = 1 + u64::from(input.u8());
    let mut tree = MemoryTree::new();
    let leaves: Vec<_> = (0..size)
        .map(|i| merkle::leaf_hash(&i.to_le_bytes()))
        .collect();
    for leaf in &leaves {
        tree.push(*leaf);
    }
    let root = tree.root(size).expect("a tree's own root");
    let (x, y) = (input.size() % size, input.size() % size);
    let (lo, hi) = (x.min(y), x.max(y) + 1);
    let tamper = input.u8();
    let flip = |mut proof: Vec<docket_core::Hash>| {
        if !proof.is_empty() {
            let i = usize::from(tamper) % proof.len();
            proof[i].0[usize::from(tamper) % 32] ^= 1;
        }
        proof
    };

    let p = merkle::prove_inclusion(x, size, &tree).expect("an inclusion proof");
    let leaf = leaves[x as usize];
    assert_eq!(merkle::verify_inclusion(&p, x, size, &leaf, &root), Ok(()));
    if !p.is_empty() {
        assert!(merkle::verify_inclusion(&flip(p), x, size, &leaf, &root).is_err());
    }

    let old_root = tree.root(hi).expect("an old root");
    let p = merkle::prove_consistency(hi, size, &tree).expect("a consistency proof");
    assert_eq!(
        merkle::verify_consistency(&p, hi, &old_root, size, &root),
        Ok(())
    );
    if !p.is_empty() {
        assert!(merkle::verify_consistency(&flip(p), hi, &old_root, size, &root).is_err());
    }

    let p = merkle::prove_range(lo, hi, size, &tree).expect("a range proof");
    let range = &leaves[lo as usize..hi as usize];
    assert_eq!(merkle::verify_range(lo, range, size, &p, &root), Ok(()));
    if !p.is_empty() {
        assert!(merkle::verify_range(lo, range, size, &flip(p), &root).is_err());
    }
}

/// Identifiers read from requests and tokens: credentials, DIDs and
/// agents' public keys, handles, roles, entry types, times.
pub fn identity(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((kind, id)) = identity::parse_token(s) {
        assert!(s.starts_with(&identity::token_prefix(kind, &id)));
    }
    if let Ok(did) = Did::try_from(s.to_owned()) {
        // One key, one DID: the agent named by a signature is unambiguous.
        assert_eq!(Did::from_key(&did.public_key()).as_str(), s);
    }
    if let Ok(key) = identity::parse_public_key(s) {
        assert!(!key.is_weak());
    }
    round_trip::<identity::UserId>(s);
    round_trip::<identity::ProjectId>(s);
    round_trip::<identity::AgentId>(s);
    round_trip::<identity::CredentialId>(s);
    if let Ok(role) = s.parse::<identity::Role>() {
        assert_eq!(role.as_str(), s);
    }
    if let Ok(kind) = s.parse::<EntryType>() {
        assert_eq!(kind.as_str(), s);
    }
    if let Ok(ts) = Timestamp::parse_rfc3339(s) {
        // Any RFC 3339 time reads as UTC microseconds, which the log form
        // writes and reads back exactly.
        let written = ts.to_string();
        assert_eq!(Timestamp::parse_rfc3339(&written), Ok(ts), "{written}");
    }
    let _ = parse_hex_hash(s);
}

fn round_trip<T>(s: &str)
where
    T: std::str::FromStr + std::fmt::Display,
{
    if let Ok(id) = s.parse::<T>() {
        assert_eq!(id.to_string(), s);
    }
}
