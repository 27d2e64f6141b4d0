//! Ledger entries: the five-field envelope `{seq, ts, type, prev, body}`, its
//! RFC 8785 (JCS) canonical encoding, and its RFC 6962 leaf hash.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use crate::merkle::{Hash, leaf_hash};

/// Largest body accepted in one entry, in canonical bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Largest `seq` JCS can carry exactly (an IEEE 754 double's integer range).
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// 0-based position of an entry in the log.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Server time of an append, in microseconds since the Unix epoch, UTC.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

const TS_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        Self((dt.unix_timestamp_nanos() / 1_000) as i64)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Minute of the week in UTC, Monday 00:00 = 0; the query index for
    /// time-of-day and weekday windows.
    pub fn minute_of_week(self) -> u16 {
        let dt = self.to_datetime();
        let day = u16::from(dt.weekday().number_days_from_monday());
        day * 1440 + u16::from(dt.hour()) * 60 + u16::from(dt.minute())
    }

    /// Parses any RFC 3339 time (offsets allowed) into UTC microseconds.
    pub fn parse_rfc3339(s: &str) -> Result<Self, EntryError> {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(Self::from_datetime)
            .map_err(|_| EntryError::Timestamp(s.to_owned()))
    }
}

impl Timestamp {
    /// Appends the log form `YYYY-MM-DDTHH:MM:SS.ffffffZ`. Written out by
    /// hand because it runs for every entry encoded or verified, where the
    /// general formatter showed up in profiles.
    pub fn write_log_form(self, out: &mut Vec<u8>) {
        let dt = self.to_datetime();
        let year = dt.year();
        if !(0..=9999).contains(&year) {
            let s = dt.format(TS_FORMAT).unwrap_or_default();
            out.extend_from_slice(s.as_bytes());
            return;
        }
        let fields: [(Option<u8>, u32, usize); 7] = [
            (None, year as u32, 4),
            (Some(b'-'), u32::from(u8::from(dt.month())), 2),
            (Some(b'-'), u32::from(dt.day()), 2),
            (Some(b'T'), u32::from(dt.hour()), 2),
            (Some(b':'), u32::from(dt.minute()), 2),
            (Some(b':'), u32::from(dt.second()), 2),
            (Some(b'.'), dt.microsecond(), 6),
        ];
        for (sep, value, width) in fields {
            if let Some(sep) = sep {
                out.push(sep);
            }
            let mut buf = [b'0'; 6];
            let mut n = value;
            for b in buf[..width].iter_mut().rev() {
                *b = b'0' + (n % 10) as u8;
                n /= 10;
            }
            out.extend_from_slice(&buf[..width]);
        }
        out.push(b'Z');
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(27);
        self.write_log_form(&mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

macro_rules! entry_types {
    ($($variant:ident => $name:literal,)*) => {
        /// The kinds of entry the log accepts. A new kind is a new variant here.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EntryType { $($variant,)* }

        impl EntryType {
            pub const ALL: &'static [EntryType] = &[$(EntryType::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(EntryType::$variant => $name,)* }
            }
        }

        impl FromStr for EntryType {
            type Err = EntryError;
            fn from_str(s: &str) -> Result<Self, EntryError> {
                match s {
                    $($name => Ok(EntryType::$variant),)*
                    _ => Err(EntryError::UnknownType(s.chars().take(64).collect())),
                }
            }
        }
    };
}

entry_types! {
    Receipt => "receipt",
    Decision => "decision",
    ApprovalRequested => "approval.requested",
    ApprovalDecided => "approval.decided",
    Anomaly => "anomaly",
    IncidentEvent => "incident.event",
    ChangeRequested => "change.requested",
    ChangeApproved => "change.approved",
    ChangeApplied => "change.applied",
    ChangeRejected => "change.rejected",
    UserCreated => "user.created",
    UserUpdated => "user.updated",
    ProjectCreated => "project.created",
    ProjectUpdated => "project.updated",
    AgentRegistered => "agent.registered",
    AgentSuspended => "agent.suspended",
    AgentResumed => "agent.resumed",
    AgentRetired => "agent.retired",
    CredentialIssued => "credential.issued",
    CredentialRevoked => "credential.revoked",
    SignatureRejected => "signature.rejected",
    AgentUpdated => "agent.updated",
    PolicyActivated => "policy.activated",
    KillSwitchEngaged => "killswitch.engaged",
    KillSwitchReleased => "killswitch.released",
    LimitsSet => "limits.set",
    ApprovalUsed => "approval.used",
    Verification => "verification",
    Review => "review",
    AccessReview => "access_review",
    Export => "export",
    Note => "note",
}

impl fmt::Display for EntryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EntryType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EntryType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <&str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("unknown entry type {0:?}; known types: {known}", known = known_types())]
    UnknownType(String),
    #[error("body must be a JSON object")]
    BodyNotObject,
    #[error("body is {0} bytes in canonical form; the limit is {MAX_BODY_BYTES}")]
    BodyTooLarge(usize),
    #[error("body cannot be canonicalized: {0}")]
    BodyNotCanonicalizable(String),
    #[error("malformed entry: {0}")]
    Malformed(String),
    #[error("entry is not in canonical form (RFC 8785)")]
    NotCanonical,
    #[error("bad timestamp {0:?}: expected RFC 3339 UTC with microseconds")]
    Timestamp(String),
    #[error("seq {0} is beyond the largest representable position")]
    SeqTooLarge(u64),
}

fn known_types() -> String {
    EntryType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An entry body in RFC 8785 canonical form: always a JSON object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalBody(String);

impl CanonicalBody {
    pub fn from_value(value: &serde_json::Value) -> Result<Self, EntryError> {
        if !value.is_object() {
            return Err(EntryError::BodyNotObject);
        }
        let s = crate::jcs::to_string(value)
            .map_err(|e| EntryError::BodyNotCanonicalizable(e.to_string()))?;
        if s.len() > MAX_BODY_BYTES {
            return Err(EntryError::BodyTooLarge(s.len()));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One ledger entry, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub seq: Seq,
    pub ts: Timestamp,
    pub kind: EntryType,
    pub prev: Hash,
    /// The body exactly as it appears in the canonical encoding.
    pub body: CanonicalBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEntry<'a> {
    #[serde(borrow)]
    body: &'a RawValue,
    prev: &'a str,
    seq: u64,
    ts: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

/// An entry's envelope read in one pass, its body borrowed unparsed: for
/// readers of many entries that need the members but not a copy
/// ([`Entry::decode`] builds on it and also checks the canonical form).
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub seq: Seq,
    pub ts: Timestamp,
    pub kind: EntryType,
    pub prev: Hash,
    /// A JSON object.
    pub body: &'a RawValue,
    ts_text: &'a str,
}

impl<'a> Envelope<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EntryError> {
        let wire: WireEntry<'a> =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if wire.seq > MAX_SEQ {
            return Err(EntryError::SeqTooLarge(wire.seq));
        }
        let prev = parse_hex_hash(wire.prev)
            .ok_or_else(|| EntryError::Malformed("prev must be 64 lowercase hex digits".into()))?;
        if !wire.body.get().starts_with('{') {
            return Err(EntryError::BodyNotObject);
        }
        Ok(Self {
            seq: Seq(wire.seq),
            // Any RFC 3339 time parses here; `Entry::decode`'s byte-for-byte
            // comparison holds it to the log form.
            ts: Timestamp::parse_rfc3339(wire.ts)?,
            kind: wire.kind.parse()?,
            prev,
            body: wire.body,
            ts_text: wire.ts,
        })
    }
}

impl Entry {
    /// The canonical bytes of this entry: what its leaf hash covers.
    ///
    /// The envelope is assembled here rather than by re-running the
    /// canonicalizer over the whole entry: its members are fixed, sorted as
    /// JCS sorts them (`body`, `prev`, `seq`, `ts`, `type`), and none needs
    /// escaping; the body is already canonical. This keeps the single
    /// appender thread from re-serializing every body it sequences. A unit
    /// test checks the result against the canonicalizer.
    pub fn encode(&self) -> Vec<u8> {
        encode_parts(self.seq, self.ts, self.kind, &self.prev, self.body.as_str())
    }

    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.encode())
    }

    /// Decodes canonical entry bytes, refusing anything that is not exactly
    /// what [`Entry::encode`] would produce.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let env = Envelope::parse(bytes)?;
        let entry = Entry {
            seq: env.seq,
            ts: env.ts,
            kind: env.kind,
            prev: env.prev,
            body: CanonicalBody(env.body.get().to_owned()),
        };
        if entry.encode() != bytes {
            if entry.ts.to_string() != env.ts_text {
                return Err(EntryError::Timestamp(env.ts_text.to_owned()));
            }
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }

    /// Decodes any JSON rendering of an entry (pretty-printed, reordered) by
    /// canonicalizing it first. For entries that travelled inside documents.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Self, EntryError> {
        let bytes = crate::jcs::to_vec(value).map_err(|e| EntryError::Malformed(e.to_string()))?;
        Self::decode(&bytes)
    }

    /// Checks the body is itself in canonical form. [`Entry::decode`] checks
    /// the envelope byte for byte; this re-runs the canonicalizer over the
    /// body, which costs a parse and a serialization.
    pub fn check_body_canonical(&self) -> Result<(), EntryError> {
        let value: serde_json::Value = serde_json::from_str(self.body.as_str())
            .map_err(|e| EntryError::Malformed(e.to_string()))?;
        let canon = crate::jcs::to_string(&value)
            .map_err(|e| EntryError::BodyNotCanonicalizable(e.to_string()))?;
        if canon == self.body.0 {
            Ok(())
        } else {
            Err(EntryError::NotCanonical)
        }
    }

    /// The body's canonical JSON text.
    pub fn body_json(&self) -> &str {
        self.body.as_str()
    }

    /// The body parsed as JSON.
    pub fn body_value(&self) -> serde_json::Value {
        serde_json::from_str(self.body.as_str()).unwrap_or(serde_json::Value::Null)
    }
}

/// Encodes an entry from its parts; see [`Entry::encode`].
pub fn encode_parts(seq: Seq, ts: Timestamp, kind: EntryType, prev: &Hash, body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 180);
    out.extend_from_slice(BODY_OPEN);
    out.extend_from_slice(body.as_bytes());
    write_after_body(&mut out, seq, ts, kind, prev);
    out
}

/// What an entry's canonical bytes start with; the body follows.
const BODY_OPEN: &[u8] = b"{\"body\":";

/// The rest of an entry's canonical bytes after its body: the four members
/// sequencing fixes.
fn write_after_body(out: &mut Vec<u8>, seq: Seq, ts: Timestamp, kind: EntryType, prev: &Hash) {
    use std::io::Write;
    out.extend_from_slice(b",\"prev\":\"");
    let mut hex_prev = [0u8; 64];
    hex::encode_to_slice(prev.0, &mut hex_prev).expect("32 bytes are 64 hex digits");
    out.extend_from_slice(&hex_prev);
    let _ = write!(out, "\",\"seq\":{},\"ts\":\"", seq.0);
    ts.write_log_form(out);
    out.extend_from_slice(b"\",\"type\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
}

/// A canonical body with its entry's leaf hash begun.
///
/// An entry's canonical bytes put the body first, so the leaf hash
/// (`SHA-256(0x00 ‖ bytes)`, RFC 6962) can take in everything up to the end
/// of the body where the body is prepared, on the caller's thread. The
/// single appender thread then hashes only the hundred-odd bytes of `prev`,
/// `seq`, `ts` and `type` ([`HashedBody::seal`]); a property test checks the
/// result against [`leaf_hash`] of [`encode_parts`].
#[derive(Clone)]
pub struct HashedBody {
    body: CanonicalBody,
    begun: sha2::Sha256,
}

impl HashedBody {
    pub fn new(body: CanonicalBody) -> Self {
        use sha2::Digest;
        let mut begun = sha2::Sha256::new();
        begun.update([0x00]);
        begun.update(BODY_OPEN);
        begun.update(body.as_str().as_bytes());
        Self { body, begun }
    }

    /// The canonical bytes of the entry with this body and these parts, and
    /// its leaf hash.
    pub fn seal(&self, seq: Seq, ts: Timestamp, kind: EntryType, prev: &Hash) -> (Vec<u8>, Hash) {
        use sha2::Digest;
        let bytes = encode_parts(seq, ts, kind, prev, self.body.as_str());
        let mut h = self.begun.clone();
        h.update(&bytes[BODY_OPEN.len() + self.body.as_str().len()..]);
        (bytes, Hash(h.finalize().into()))
    }
}

impl fmt::Debug for HashedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HashedBody").field(&self.body).finish()
    }
}

/// Parses 64 lowercase hex digits into a hash.
pub fn parse_hex_hash(s: &str) -> Option<Hash> {
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(Hash(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample(body: serde_json::Value) -> Entry {
        Entry {
            seq: Seq(42),
            ts: Timestamp::parse_rfc3339("2026-11-22T05:51:00.123456Z").unwrap(),
            kind: EntryType::Receipt,
            prev: Hash([7; 32]),
            body: CanonicalBody::from_value(&body).unwrap(),
        }
    }

    fn canonicalizer_encoding(e: &Entry) -> Vec<u8> {
        let v = json!({
            "seq": e.seq.0, "ts": e.ts.to_string(), "type": e.kind.as_str(),
            "prev": hex::encode(e.prev.0), "body": e.body_value(),
        });
        serde_json_canonicalizer::to_vec(&v).unwrap()
    }

    #[test]
    fn encoding_matches_the_canonicalizer() {
        let e = sample(json!({"z": 1, "a": [3.0, "é\u{1}", {"y": null, "b": true}], "€": 1e21}));
        assert_eq!(e.encode(), canonicalizer_encoding(&e));
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    }

    proptest! {
        #[test]
        fn encoding_matches_the_canonicalizer_for_any_body(
            keys in proptest::collection::vec("\\PC{0,8}", 0..6),
            nums in proptest::collection::vec(any::<i32>(), 0..6),
            seq in 0u64..MAX_SEQ,
        ) {
            let mut map = serde_json::Map::new();
            for (k, n) in keys.iter().zip(nums.iter()) {
                map.insert(k.clone(), json!([n, k, f64::from(*n) / 7.0]));
            }
            let mut e = sample(serde_json::Value::Object(map));
            e.seq = Seq(seq);
            prop_assert_eq!(e.encode(), canonicalizer_encoding(&e));
            prop_assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        }

        #[test]
        fn a_hashed_body_seals_to_the_entry_and_its_leaf_hash(
            text in "\\PC{0,300}",
            seq in 0u64..MAX_SEQ,
            micros in 0i64..253_402_300_799_999_999,
            kind in proptest::sample::select(EntryType::ALL.to_vec()),
            prev in any::<[u8; 32]>(),
        ) {
            let e = Entry {
                seq: Seq(seq),
                ts: Timestamp::from_micros(micros),
                kind,
                prev: Hash(prev),
                body: CanonicalBody::from_value(&json!({ "text": text })).unwrap(),
            };
            let (bytes, leaf) = HashedBody::new(e.body.clone()).seal(e.seq, e.ts, e.kind, &e.prev);
            prop_assert_eq!(&bytes, &e.encode());
            prop_assert_eq!(leaf, leaf_hash(&bytes));
            prop_assert_eq!(leaf, e.leaf_hash());
        }
    }

    #[test]
    fn decode_refuses_non_canonical_and_malformed_input() {
        let e = sample(json!({"a": 1}));
        let good = String::from_utf8(e.encode()).unwrap();
        let spaced = good.replace(",\"prev\"", ", \"prev\"");
        assert_eq!(
            Entry::decode(spaced.as_bytes()),
            Err(EntryError::NotCanonical)
        );
        let body_unsorted = good.replace("{\"a\":1}", "{\"b\":2,\"a\":1}");
        let unsorted = Entry::decode(body_unsorted.as_bytes()).unwrap();
        assert_eq!(
            unsorted.check_body_canonical(),
            Err(EntryError::NotCanonical)
        );
        assert_eq!(e.check_body_canonical(), Ok(()));
        let extra = good.replace("{\"body\"", "{\"x\":1,\"body\"");
        assert!(matches!(
            Entry::decode(extra.as_bytes()),
            Err(EntryError::Malformed(_))
        ));
        let bad_type = good.replace("\"receipt\"", "\"nope\"");
        assert!(matches!(
            Entry::decode(bad_type.as_bytes()),
            Err(EntryError::UnknownType(_))
        ));
        let bad_ts = good.replace(".123456Z", ".123Z");
        assert!(matches!(
            Entry::decode(bad_ts.as_bytes()),
            Err(EntryError::Timestamp(_))
        ));
        assert!(Entry::decode(b"").is_err());
        assert!(Entry::decode(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn body_must_be_an_object_within_limits() {
        assert_eq!(
            CanonicalBody::from_value(&json!([1])),
            Err(EntryError::BodyNotObject)
        );
        let big = json!({"x": "a".repeat(MAX_BODY_BYTES)});
        assert!(matches!(
            CanonicalBody::from_value(&big),
            Err(EntryError::BodyTooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn the_log_form_matches_the_time_crate(micros in 0i64..253_402_300_799_999_999) {
            let ts = Timestamp::from_micros(micros);
            let expected = ts.to_datetime().format(TS_FORMAT).unwrap();
            prop_assert_eq!(ts.to_string(), expected);
        }
    }

    #[test]
    fn timestamps_render_in_the_log_form() {
        let ts = Timestamp::parse_rfc3339("2026-11-22T07:51:00.5+02:00").unwrap();
        assert_eq!(ts.to_string(), "2026-11-22T05:51:00.500000Z");
        // 2026-11-22 is a Sunday: day 6 of the week.
        assert_eq!(ts.minute_of_week(), 6 * 1440 + 5 * 60 + 51);
    }
}
