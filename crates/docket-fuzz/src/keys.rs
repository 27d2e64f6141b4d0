//! The fixed keys the targets verify against and the seed corpus is
//! signed with. Test keys only: they sign nothing but fuzz inputs.

use std::sync::OnceLock;

use docket_core::{LogSigner, LogVerifier};
use ed25519_dalek::SigningKey;

/// The log key, in signed-note form: Ed25519 seed `[0x42; 32]` for the
/// origin `docket.fuzz/log` (key id `a19c86dd`).
const LOG_SECRET: &str =
    "PRIVATE+KEY+docket.fuzz/log+a19c86dd+AUJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJC";

/// The log the corpus's checkpoints, receipts and packs belong to.
pub fn log_signer() -> &'static LogSigner {
    static SIGNER: OnceLock<LogSigner> = OnceLock::new();
    SIGNER.get_or_init(|| LogSigner::from_secret(LOG_SECRET).expect("the fixed log key parses"))
}

pub fn log_verifier() -> &'static LogVerifier {
    static VERIFIER: OnceLock<LogVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| log_signer().verifier())
}

/// The agent key the server's and the evidence crate's tests sign with.
pub fn agent_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// RFC 9421 Appendix B.1.4, `test-key-ed25519`: the RFC's own signed
/// examples verify with it.
pub fn rfc9421_key() -> SigningKey {
    SigningKey::from_bytes(&[
        0x9f, 0x83, 0x62, 0xf8, 0x7a, 0x48, 0x4a, 0x95, 0x4e, 0x6e, 0x74, 0x0c, 0x5b, 0x4c, 0x0e,
        0x84, 0x22, 0x91, 0x39, 0xa2, 0x0a, 0xa8, 0xab, 0x56, 0xff, 0x66, 0x58, 0x6f, 0x6a, 0x7d,
        0x29, 0xc5,
    ])
}
