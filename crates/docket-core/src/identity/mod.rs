//! Who can act: humans, projects, agents and their credentials, as typed
//! values; the ledger events that change them ([`event`]); and the registry
//! folded from those events ([`registry`]). Pure, so the evidence verifier
//! rebuilds the same registry from the entries alone.

pub mod event;
pub mod governance;
pub mod registry;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use event::{Actor, Event, HumanAssurance};
pub use registry::{Registry, RegistryError};

/// Longest identifier (user, project, agent).
pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error(
        "{what} {value:?} is not valid: use 1 to {MAX_ID_LEN} lowercase letters, digits, `.`, `_`, `-` or `@`, starting with a letter or digit"
    )]
    Invalid { what: &'static str, value: String },
    #[error("{0:?} is not a did:key for an Ed25519 key")]
    Did(String),
    #[error("public key is not a valid Ed25519 key: {0}")]
    Key(String),
}

fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_ID_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-' | b'@')
        })
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// Maps keyed by the id can be searched by `&str` without
        /// allocating (the derived order and hash are the string's).
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                if is_slug(&value) {
                    Ok(Self(value))
                } else {
                    Err(IdError::Invalid { what: $what, value: value.chars().take(80).collect() })
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_id!(
    /// A human user's handle, e.g. `alice` or `alice@example.com`.
    UserId,
    "user id"
);
slug_id!(
    /// A project's handle, e.g. `support`.
    ProjectId,
    "project id"
);
slug_id!(
    /// An agent's handle, unique for the life of the log (a retired
    /// agent's id is never reused, so old entries stay unambiguous).
    AgentId,
    "agent id"
);

/// A credential's public identifier; the part of a token shown as its prefix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialId(String);

/// Length of a credential id: 16 lowercase base32 characters (80 bits).
pub const CREDENTIAL_ID_LEN: usize = 16;

impl CredentialId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for CredentialId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CredentialId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        if value.len() == CREDENTIAL_ID_LEN
            && value
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            Ok(Self(value))
        } else {
            Err(IdError::Invalid {
                what: "credential id",
                value: value.chars().take(80).collect(),
            })
        }
    }
}

impl std::str::FromStr for CredentialId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::try_from(s.to_owned())
    }
}

impl From<CredentialId> for String {
    fn from(id: CredentialId) -> String {
        id.0
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a credential is for; the second letter of its token's prefix.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An agent's long-lived API key (`dka_…`).
    ApiKey,
    /// An agent's short-lived key bound to one task and one human (`dks_…`).
    Session,
    /// A human's personal API token (`dkp_…`).
    Personal,
}

impl CredentialKind {
    pub fn token_prefix(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "dka",
            CredentialKind::Session => "dks",
            CredentialKind::Personal => "dkp",
        }
    }
}

/// Splits a presented token `dk?_<credential id>_<secret>` into its kind and
/// id; `None` when it does not have that shape. The secret is checked
/// against the stored digest by the caller.
pub fn parse_token(token: &str) -> Option<(CredentialKind, CredentialId)> {
    let mut parts = token.splitn(3, '_');
    let kind = match parts.next()? {
        "dka" => CredentialKind::ApiKey,
        "dks" => CredentialKind::Session,
        "dkp" => CredentialKind::Personal,
        _ => return None,
    };
    let id = CredentialId::try_from(parts.next()?.to_owned()).ok()?;
    let secret = parts.next()?;
    (secret.len() >= 32).then_some((kind, id))
}

/// The token prefix shown in listings: `dka_<id>`.
pub fn token_prefix(kind: CredentialKind, id: &CredentialId) -> String {
    format!("{}_{}", kind.token_prefix(), id)
}

/// A human's role. A user may hold several.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Approver,
    Reviewer,
    /// Reads everything, changes nothing.
    Auditor,
    Developer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Approver,
        Role::Reviewer,
        Role::Auditor,
        Role::Developer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Approver => "approver",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Developer => "developer",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?}; roles are admin, approver, reviewer, auditor, developer"
                )
            })
    }
}

/// Identity-verification (KYC) state of a human.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KycStatus {
    #[default]
    Unverified,
    Pending,
    Verified,
}

impl KycStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KycStatus::Unverified => "unverified",
            KycStatus::Pending => "pending",
            KycStatus::Verified => "verified",
        }
    }
}

/// A human's KYC record: the status and, once decided, who decided it, how and when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kyc {
    pub status: KycStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// What an agent may touch. Each list names tools, models, data classes or
/// environments; an empty list grants nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub tools: BTreeSet<String>,
    #[serde(default)]
    pub models: BTreeSet<String>,
    #[serde(default)]
    pub data_classes: BTreeSet<String>,
    #[serde(default)]
    pub environments: BTreeSet<String>,
}

/// One of the four lists of a [`Scope`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScopeField {
    Tools,
    Models,
    DataClasses,
    Environments,
}

impl ScopeField {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeField::Tools => "tool",
            ScopeField::Models => "model",
            ScopeField::DataClasses => "data class",
            ScopeField::Environments => "environment",
        }
    }
}

impl Scope {
    pub fn get(&self, field: ScopeField) -> &BTreeSet<String> {
        match field {
            ScopeField::Tools => &self.tools,
            ScopeField::Models => &self.models,
            ScopeField::DataClasses => &self.data_classes,
            ScopeField::Environments => &self.environments,
        }
    }

    /// The first member of `self` that `outer` does not grant, as
    /// `("tools", "name")`.
    pub fn first_outside(&self, outer: &Scope) -> Option<(&'static str, &str)> {
        let pairs = [
            ("tools", &self.tools, &outer.tools),
            ("models", &self.models, &outer.models),
            ("data_classes", &self.data_classes, &outer.data_classes),
            ("environments", &self.environments, &outer.environments),
        ];
        pairs.into_iter().find_map(|(what, inner, outer)| {
            inner
                .iter()
                .find(|x| !outer.contains(*x))
                .map(|x| (what, x.as_str()))
        })
    }

    pub fn intersect(&self, other: &Scope) -> Scope {
        let both =
            |a: &BTreeSet<String>, b: &BTreeSet<String>| a.intersection(b).cloned().collect();
        Scope {
            tools: both(&self.tools, &other.tools),
            models: both(&self.models, &other.models),
            data_classes: both(&self.data_classes, &other.data_classes),
            environments: both(&self.environments, &other.environments),
        }
    }

    pub fn union_with(&mut self, other: &Scope) {
        self.tools.extend(other.tools.iter().cloned());
        self.models.extend(other.models.iter().cloned());
        self.data_classes.extend(other.data_classes.iter().cloned());
        self.environments.extend(other.environments.iter().cloned());
    }

    /// Every name is 1 to 128 bytes without control characters.
    pub fn check_names(&self) -> Result<(), String> {
        for (what, set) in [
            ("tools", &self.tools),
            ("models", &self.models),
            ("data_classes", &self.data_classes),
            ("environments", &self.environments),
        ] {
            for name in set {
                if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                    return Err(format!(
                        "scope.{what} entry {name:?} must be 1 to 128 printable bytes"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An agent's decentralized identifier: the `did:key` of its Ed25519 key
/// (multicodec `0xed01` + the 32 key bytes, base58btc, multibase `z`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Did(String);

const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

impl Did {
    pub fn from_key(key: &ed25519_dalek::VerifyingKey) -> Self {
        let mut bytes = Vec::with_capacity(34);
        bytes.extend_from_slice(&ED25519_MULTICODEC);
        bytes.extend_from_slice(key.as_bytes());
        Self(format!("did:key:z{}", bs58::encode(bytes).into_string()))
    }

    pub fn public_key(&self) -> ed25519_dalek::VerifyingKey {
        // Checked on construction; the unwrap-free path re-parses.
        parse_did_key(&self.0).expect("a Did holds a valid did:key")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_did_key(s: &str) -> Result<ed25519_dalek::VerifyingKey, IdError> {
    let bad = || IdError::Did(s.chars().take(120).collect());
    let encoded = s.strip_prefix("did:key:z").ok_or_else(bad)?;
    let bytes = bs58::decode(encoded).into_vec().map_err(|_| bad())?;
    let key: [u8; 32] = bytes
        .strip_prefix(&ED25519_MULTICODEC)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(bad)?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| bad())
}

impl TryFrom<String> for Did {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        parse_did_key(&value)?;
        Ok(Self(value))
    }
}

impl From<Did> for String {
    fn from(d: Did) -> String {
        d.0
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads an agent's public key as given at registration: a `did:key`, or
/// the 32 key bytes in base64 (standard or URL-safe) or hex.
/// Weak keys (of small order, such as all zeros) are refused: a signature
/// under one proves nothing about who made it.
pub fn parse_public_key(s: &str) -> Result<ed25519_dalek::VerifyingKey, IdError> {
    let key = decode_public_key(s.trim())?;
    if key.is_weak() {
        return Err(IdError::Key(
            "weak key (a point of small order): any signature verifies under it".into(),
        ));
    }
    Ok(key)
}

fn decode_public_key(s: &str) -> Result<ed25519_dalek::VerifyingKey, IdError> {
    use base64::Engine;
    if s.starts_with("did:key:") {
        return parse_did_key(s);
    }
    let bytes = hex::decode(s)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .or_else(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
        })
        .ok_or_else(|| IdError::Key("expected did:key, base64 or hex".into()))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| IdError::Key(format!("{} bytes, expected 32", b.len())))?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|e| IdError::Key(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_key_round_trips_the_did_key_spec_example() {
        // The did:key spec's Ed25519 example parses to a key whose DID is
        // the same string (multicodec 0xed01, base58btc, `z`).
        let did: Did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
            .to_owned()
            .try_into()
            .unwrap();
        let again = Did::from_key(&did.public_key());
        assert_eq!(again, did);
        assert!(did.as_str().starts_with("did:key:z6Mk"));
    }

    #[test]
    fn did_key_rejects_other_codecs_and_garbage() {
        for bad in [
            "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme", // secp256k1
            "did:key:z6Mk",
            "did:web:example.com",
            "did:key:0OIl",
        ] {
            assert!(Did::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn weak_keys_are_refused_in_every_encoding() {
        // The identity point: a key of small order, under which signatures
        // can be forged without any secret.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let did = Did::from_key(&ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap());
        for input in [hex::encode(identity), did.as_str().to_owned()] {
            let err = parse_public_key(&input).unwrap_err().to_string();
            assert!(err.contains("weak key"), "{input}: {err}");
        }
        let good = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert_eq!(
            parse_public_key(&hex::encode(good.as_bytes())).unwrap(),
            good
        );
    }

    #[test]
    fn ids_are_slugs() {
        assert!("support-bot".parse::<AgentId>().is_ok());
        assert!("alice@example.com".parse::<UserId>().is_ok());
        for bad in ["", "Bob", "-x", "a b", "x\n", &"a".repeat(65)] {
            assert!(bad.parse::<UserId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_parse_only_in_their_own_shape() {
        let id = CredentialId::try_from("abcdefghij234567".to_owned()).unwrap();
        let secret = "s".repeat(43);
        let token = format!("dka_{id}_{secret}");
        assert_eq!(
            parse_token(&token),
            Some((CredentialKind::ApiKey, id.clone()))
        );
        assert_eq!(
            parse_token(&format!("dks_{id}_{secret}")).map(|t| t.0),
            Some(CredentialKind::Session)
        );
        assert_eq!(parse_token(&format!("dkx_{id}_{secret}")), None);
        assert_eq!(parse_token(&format!("dka_{id}_short")), None);
        assert_eq!(parse_token(&format!("dka_ABC_{secret}")), None);
        assert_eq!(parse_token("dkt_whatever"), None);
    }

    #[test]
    fn scope_containment_names_the_first_excess() {
        let outer = Scope {
            tools: ["search".into(), "email".into()].into(),
            ..Scope::default()
        };
        let inner = Scope {
            tools: ["search".into(), "shell".into()].into(),
            ..Scope::default()
        };
        assert_eq!(inner.first_outside(&outer), Some(("tools", "shell")));
        assert_eq!(inner.intersect(&outer).first_outside(&outer), None);
    }
}
