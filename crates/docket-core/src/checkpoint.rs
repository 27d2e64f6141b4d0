//! Signed checkpoints: the C2SP `tlog-checkpoint` text (origin, tree size,
//! base64 root hash) signed as a C2SP `signed-note` with the log's Ed25519
//! key, whose key name is the log's origin. Any C2SP-aware tool reads them.

use std::fmt;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use ed25519_dalek::SigningKey;
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
use thiserror::Error;
use tlog_tiles::Checkpoint;
use zeroize::Zeroizing;

use crate::merkle::Hash;

/// Largest signed checkpoint accepted for parsing.
pub const MAX_CHECKPOINT_BYTES: usize = 16 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("log origin {0:?} is not a valid key name (non-empty, no spaces or '+')")]
    BadOrigin(String),
    #[error("malformed signing key")]
    BadSecretKey,
    #[error("malformed public key: expected a signed-note verifier key `origin+hexid+base64`")]
    BadPublicKey,
    #[error("signed checkpoint is larger than {MAX_CHECKPOINT_BYTES} bytes")]
    TooLarge,
    #[error("malformed signed note: {0}")]
    MalformedNote(String),
    #[error("checkpoint is not signed by the pinned log key {0:?}")]
    NotSigned(String),
    #[error("signature by the pinned log key {0:?} does not verify")]
    BadSignature(String),
    #[error("malformed checkpoint body")]
    MalformedCheckpoint,
    #[error("checkpoint origin {got:?} is not the pinned origin {want:?}")]
    WrongOrigin { got: String, want: String },
    #[error("signing failed")]
    Signing,
}

/// A verified checkpoint, or one this process just signed.
#[derive(Clone, PartialEq)]
pub struct SignedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The whole signed note, as served and stored.
    pub note: String,
}

impl fmt::Debug for SignedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedCheckpoint")
            .field("origin", &self.origin)
            .field("size", &self.size)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The log's signing key. Its `Debug` never shows the secret.
pub struct LogSigner {
    origin: String,
    signer: StandardSigner,
    public_key: String,
    secret_key: Zeroizing<String>,
}

impl fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSigner")
            .field("origin", &self.origin)
            .field("public_key", &self.public_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if signed_note::is_key_name_valid(origin) {
        Ok(())
    } else {
        Err(CheckpointError::BadOrigin(origin.to_owned()))
    }
}

impl LogSigner {
    /// A fresh key for the log named `origin`.
    pub fn generate(origin: &str) -> Result<Self, CheckpointError> {
        check_origin(origin)?;
        let (secret, _) = signed_note::generate_key(&mut rand_core::OsRng, origin);
        Self::from_secret(&Zeroizing::new(secret))
    }

    /// Loads a key in signed-note form `PRIVATE+KEY+origin+hexid+base64`.
    pub fn from_secret(secret: &str) -> Result<Self, CheckpointError> {
        let signer =
            StandardSigner::new(secret.trim()).map_err(|_| CheckpointError::BadSecretKey)?;
        let origin = signed_note::Signer::name(&signer).to_owned();
        // `PRIVATE+KEY+name+id+base64`: base64 may itself contain '+'.
        let encoded = secret.trim().splitn(5, '+').nth(4).unwrap_or_default();
        let raw = Zeroizing::new(
            BASE64_STANDARD
                .decode(encoded)
                .map_err(|_| CheckpointError::BadSecretKey)?,
        );
        let bytes: [u8; 32] = raw
            .get(1..)
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::BadSecretKey)?;
        let public = signed_note::new_ed25519_verifier_key(
            &origin,
            &SigningKey::from_bytes(&bytes).verifying_key(),
        );
        Ok(Self {
            origin,
            signer,
            public_key: public,
            secret_key: Zeroizing::new(secret.trim().to_owned()),
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key `origin+hexid+base64` to hand to anyone who checks the log.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The secret in signed-note form, for writing to the key file only.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    pub fn verifier(&self) -> LogVerifier {
        LogVerifier::new(&self.public_key).expect("own public key is well formed")
    }

    pub fn sign(&self, size: u64, root: Hash) -> Result<SignedCheckpoint, CheckpointError> {
        let cp = Checkpoint::new(&self.origin, size, root, "")
            .map_err(|_| CheckpointError::MalformedCheckpoint)?;
        let mut note = Note::new(&cp.to_bytes(), &[])
            .map_err(|e| CheckpointError::MalformedNote(e.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|_| CheckpointError::Signing)?;
        let note = String::from_utf8(note.to_bytes()).map_err(|_| CheckpointError::Signing)?;
        Ok(SignedCheckpoint {
            origin: self.origin.clone(),
            size,
            root,
            note,
        })
    }
    /// Signs a note whose text is not a checkpoint (e.g. an evidence
    /// manifest digest). `text` must end in a newline, and its first line
    /// must differ from the origin so no note is mistaken for a checkpoint.
    pub fn sign_text(&self, text: &str) -> Result<String, CheckpointError> {
        if text.lines().next() == Some(self.origin.as_str()) {
            return Err(CheckpointError::MalformedCheckpoint);
        }
        let mut note = Note::new(text.as_bytes(), &[])
            .map_err(|e| CheckpointError::MalformedNote(e.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|_| CheckpointError::Signing)?;
        String::from_utf8(note.to_bytes()).map_err(|_| CheckpointError::Signing)
    }
}

/// Verifies checkpoints against one pinned log key and origin.
#[derive(Clone)]
pub struct LogVerifier {
    origin: String,
    public_key: String,
    verifier: StandardVerifier,
}

impl fmt::Debug for LogVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogVerifier")
            .field("public_key", &self.public_key)
            .finish()
    }
}

impl LogVerifier {
    pub fn new(public_key: &str) -> Result<Self, CheckpointError> {
        let public_key = public_key.trim();
        let verifier =
            StandardVerifier::new(public_key).map_err(|_| CheckpointError::BadPublicKey)?;
        let origin = signed_note::Verifier::name(&verifier).to_owned();
        Ok(Self {
            origin,
            public_key: public_key.to_owned(),
            verifier,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Verifies a signed note's signature by the pinned key and returns
    /// its text; what the text means is the caller's to check.
    pub fn verify_text(&self, note: &str) -> Result<String, CheckpointError> {
        if note.len() > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::TooLarge);
        }
        let parsed = Note::from_bytes(note.as_bytes())
            .map_err(|e| CheckpointError::MalformedNote(e.to_string()))?;
        let known = VerifierList::new(vec![Box::new(self.verifier.clone())]);
        match parsed.verify(&known) {
            Ok(_) => {}
            Err(signed_note::NoteError::UnverifiedNote) => {
                return Err(CheckpointError::NotSigned(self.public_key.clone()));
            }
            Err(signed_note::NoteError::InvalidSignature { .. }) => {
                return Err(CheckpointError::BadSignature(self.public_key.clone()));
            }
            Err(e) => return Err(CheckpointError::MalformedNote(e.to_string())),
        }
        String::from_utf8(parsed.text().to_vec())
            .map_err(|e| CheckpointError::MalformedNote(e.to_string()))
    }

    /// Verifies a signed checkpoint note: signed by the pinned key, for the
    /// pinned origin. Other signatures (witness cosignatures) are ignored.
    pub fn verify(&self, note: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let text = self.verify_text(note)?;
        let cp = Checkpoint::from_bytes(text.as_bytes())
            .map_err(|_| CheckpointError::MalformedCheckpoint)?;
        if cp.origin() != self.origin {
            return Err(CheckpointError::WrongOrigin {
                got: cp.origin().to_owned(),
                want: self.origin.clone(),
            });
        }
        Ok(SignedCheckpoint {
            origin: self.origin.clone(),
            size: cp.size(),
            root: *cp.hash(),
            note: note.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_key_round_trip() {
        let signer = LogSigner::generate("docket.example/log").unwrap();
        let cp = signer.sign(10, Hash([9; 32])).unwrap();
        assert!(cp.note.starts_with("docket.example/log\n10\n"));
        assert!(cp.note.contains("\n\n— docket.example/log "));
        let v = LogVerifier::new(signer.public_key()).unwrap();
        let got = v.verify(&cp.note).unwrap();
        assert_eq!((got.size, got.root), (10, Hash([9; 32])));

        let again = LogSigner::from_secret(signer.secret_key()).unwrap();
        assert_eq!(again.public_key(), signer.public_key());
    }

    #[test]
    fn tampered_foreign_and_malformed_notes_are_refused() {
        let signer = LogSigner::generate("log-a").unwrap();
        let cp = signer.sign(10, Hash([9; 32])).unwrap();
        let v = signer.verifier();

        let bumped = cp.note.replacen("\n10\n", "\n11\n", 1);
        assert!(matches!(
            v.verify(&bumped),
            Err(CheckpointError::BadSignature(_))
        ));

        let other = LogSigner::generate("log-a").unwrap();
        let foreign = other.sign(10, Hash([9; 32])).unwrap();
        assert!(matches!(
            v.verify(&foreign.note),
            Err(CheckpointError::NotSigned(_))
        ));

        for junk in ["", "\n", "log-a\n10\n\n", &"x".repeat(20_000), "\u{0}\u{1}"] {
            assert!(v.verify(junk).is_err());
        }
        assert!(LogVerifier::new("nope").is_err());
        assert!(LogSigner::from_secret("PRIVATE+KEY+x+00000000+AAAA").is_err());
        assert!(LogSigner::generate("has space").is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let signer = LogSigner::generate("log-a").unwrap();
        let secret_b64 = signer
            .secret_key()
            .splitn(5, '+')
            .nth(4)
            .unwrap()
            .to_owned();
        let shown = format!("{signer:?}");
        assert!(!shown.contains(&secret_b64), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
