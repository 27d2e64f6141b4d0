//! HTTP Message Signatures (RFC 9421) over requests, Ed25519 only, with
//! `Content-Digest` (RFC 9530, sha-256) binding the body: an agent signs its
//! request with its own key, Docket verifies it and records what was signed,
//! so an entry proves the agent itself asked.
//!
//! The signature base is built here on top of `sfv` (RFC 8941 structured
//! fields) rather than with the `httpsig` crate. httpsig 0.0.26 re-creates
//! `@signature-params` from its own struct, in a fixed parameter order and
//! without extension parameters, instead of from the `Signature-Input` member
//! as received: a correctly signed request whose parameters come in another
//! order (`keyid` before `created`) or carry an extension parameter fails to
//! verify. It also brings a second Ed25519 and SHA-2 stack (ed25519-compact,
//! pre-release RustCrypto crates) beside the ones Docket already uses, and
//! leaves deriving components from a request to the caller anyway.
//!
//! What is supported: the derived components `@method`, `@target-uri`,
//! `@authority`, `@scheme`, `@request-target`, `@path` and `@query`, and
//! header fields by name. Component parameters (`;sf`, `;key`, `;bs`, `;req`,
//! `;tr`, `;name`) and `@query-param` are refused with a clear error rather
//! than half-implemented.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Serialize;
use sfv::{
    BareItem, Dictionary, FieldType as _, InnerList, Integer, Item, ListEntry, Parameters, Parser,
    StringRef, Version,
};
use sha2::{Digest as _, Sha256};

pub const SIGNATURE: HeaderName = HeaderName::from_static("signature");
pub const SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");

/// The label [`sign_request`] puts its signature under.
pub const LABEL: &str = "sig1";

/// The only `alg` Docket accepts.
const ALG: &str = "ed25519";

/// What a verified signature covered, recorded in the ledger entry.
#[derive(Clone, Debug, Serialize)]
pub struct VerifiedSignature {
    /// The signature label, e.g. `sig1`.
    pub label: String,
    pub keyid: Option<String>,
    /// Unix seconds.
    pub created: i64,
    /// The covered components as written, e.g.
    /// `["@method", "@target-uri", "content-digest"]`.
    pub components: Vec<String>,
    /// Base64 of the signature bytes.
    pub signature: String,
    /// The signature base it was verified over (RFC 9421 §2.5), so anyone
    /// holding the agent's DID can verify it again offline.
    pub base: String,
}

/// Why a request's signature was not accepted. Each message says exactly
/// what is wrong, since it goes back to the agent that sent the request.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no {0} header")]
    MissingHeader(&'static str),
    #[error("the Signature-Input header is not a structured-field dictionary: {0}")]
    UnparsableSignatureInput(String),
    #[error("the Signature-Input member `{label}` is malformed: {reason}")]
    MalformedSignatureInput { label: String, reason: String },
    #[error(
        "the Signature header is not a structured-field dictionary of byte sequences \
         (`label=:base64:`): {0}"
    )]
    UnparsableSignature(String),
    #[error("the Signature header has no `{0}` member, the label Signature-Input names first")]
    LabelNotInSignature(String),
    #[error("the Signature member `{label}` is not a byte sequence (`{label}=:base64:`)")]
    SignatureNotBytes { label: String },
    #[error("the signature `{label}` is {len} bytes; an Ed25519 signature is 64")]
    BadSignatureLength { label: String, len: usize },
    #[error("the signature `{label}` uses alg `{alg}`; Docket accepts only `ed25519`")]
    WrongAlgorithm { label: String, alg: String },
    #[error("the signature `{label}` has no `created` parameter; Docket requires one")]
    MissingCreated { label: String },
    #[error(
        "the signature `{label}` was created at {created}, {age} s ago; \
         Docket accepts signatures at most {max_age} s old"
    )]
    TooOld {
        label: String,
        created: i64,
        age: i64,
        max_age: i64,
    },
    #[error(
        "the signature `{label}` claims creation at {created}, {ahead} s in the future; \
         Docket allows at most {max_skew} s of clock skew"
    )]
    InFuture {
        label: String,
        created: i64,
        ahead: i64,
        max_skew: i64,
    },
    #[error("the signature `{label}` expired at {expires} (now is {now})")]
    Expired {
        label: String,
        expires: i64,
        now: i64,
    },
    #[error(
        "the signature `{label}` covers the `{header}` header, which carries a credential; \
         Docket records what a signature covers in the ledger, so sign without it"
    )]
    CoversSecret { label: String, header: String },
    #[error("the signature `{label}` does not cover {missing}, which Docket requires")]
    NotCovered {
        label: String,
        missing: &'static str,
    },
    #[error(
        "the signature `{label}` covers `{component}`, which Docket does not support: {reason}"
    )]
    UnsupportedComponent {
        label: String,
        component: String,
        reason: &'static str,
    },
    #[error(
        "the signature `{label}` covers the `{header}` header, which the request does not have"
    )]
    MissingCoveredHeader { label: String, header: String },
    #[error(
        "the value of `{component}` holds control or non-ASCII bytes, \
         which a signature base cannot carry"
    )]
    UnsafeComponentValue { component: String },
    #[error("the signature covers content-digest but the request has no Content-Digest header")]
    MissingContentDigest,
    #[error("the Content-Digest header is not an RFC 9530 dictionary: {0}")]
    UnparsableContentDigest(String),
    #[error("the Content-Digest header has no sha-256 member (`sha-256=:base64:`)")]
    NoSha256Digest,
    #[error("the Content-Digest sha-256 does not match SHA-256 of the request body")]
    ContentDigestMismatch,
    #[error("the signature `{label}` does not verify with the agent's key over this request")]
    BadSignature { label: String },
}

/// Why [`try_sign_request`] could not sign.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("keyid {0:?} cannot go in Signature-Input: it must be printable ASCII")]
    BadKeyId(String),
    #[error("created {0} is outside what a structured-field integer holds")]
    BadCreated(i64),
    #[error("cannot build the signature base: {0}")]
    Base(#[from] SignatureError),
    #[error("the {0} header value would not be a valid HTTP header value")]
    HeaderValue(&'static str),
}

/// Returns whether the request carries a signature at all; a request with
/// only half of the pair is still "signed" so that it fails verification
/// instead of passing as unsigned.
pub fn is_signed(headers: &HeaderMap) -> bool {
    headers.contains_key(SIGNATURE) || headers.contains_key(SIGNATURE_INPUT)
}

/// Signatures already accepted, kept until their `created` is too old to
/// be accepted anyway: a signed request replayed (with the bearer token) is
/// refused instead of recorded again as the agent's own. Only the agent's
/// key makes new signatures, so this holds what the agents sign within
/// `max_age_secs`, nothing an attacker can grow.
#[derive(Default)]
pub struct SeenSignatures {
    inner: parking_lot::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// SHA-256 of the signature → Unix second after which it is too old.
    until: std::collections::HashMap<[u8; 32], i64>,
    /// Size at which expired entries are next swept out.
    sweep_at: usize,
}

impl SeenSignatures {
    /// True the first time `sig` is offered; false for a replay.
    pub fn first_use(&self, sig: &VerifiedSignature, max_age_secs: i64, now_unix: i64) -> bool {
        let key: [u8; 32] = Sha256::digest(sig.signature.as_bytes()).into();
        let mut seen = self.inner.lock();
        if seen.until.len() >= seen.sweep_at {
            seen.until.retain(|_, until| *until >= now_unix);
            seen.sweep_at = (seen.until.len() * 2).max(1024);
        }
        match seen.until.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) if *e.get() >= now_unix => false,
            e => {
                let until = sig.created.saturating_add(max_age_secs);
                e.insert_entry(until);
                true
            }
        }
    }
}

/// How strict verification is about time.
#[derive(Clone, Copy, Debug)]
pub struct VerifyConfig {
    /// How old `created` may be.
    pub max_age_secs: i64,
    /// How far in the future `created` may be, for clients whose clocks run
    /// ahead.
    pub max_skew_secs: i64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            max_age_secs: 300,
            max_skew_secs: 60,
        }
    }
}

/// Verifies the request's signature (the first label in `Signature-Input`)
/// against the agent's key and Docket's policy.
///
/// `authority` is the request's authority (Host header value) and `scheme`
/// "http" or "https" — the server reconstructs @target-uri from them plus
/// the request's path and query. Behind a TLS-terminating proxy the scheme
/// must be the one the client used, or `@target-uri` will not match.
// The request's parts as a handler has them; bundling them in a struct would
// only move the list.
#[allow(clippy::too_many_arguments)]
pub fn verify_request(
    method: &Method,
    scheme: &str,
    authority: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    key: &VerifyingKey,
    now_unix: i64,
    config: &VerifyConfig,
) -> Result<VerifiedSignature, SignatureError> {
    let target = Target {
        method,
        scheme,
        authority,
        path_and_query,
        headers,
    };
    let parsed = parse_signature(headers)?;
    let label = &parsed.label;

    if let Some(alg) = &parsed.alg
        && alg != ALG
    {
        return Err(SignatureError::WrongAlgorithm {
            label: label.clone(),
            alg: alg.clone(),
        });
    }
    let created = parsed
        .created
        .ok_or_else(|| SignatureError::MissingCreated {
            label: label.clone(),
        })?;
    let age = now_unix.saturating_sub(created);
    if age > config.max_age_secs {
        return Err(SignatureError::TooOld {
            label: label.clone(),
            created,
            age,
            max_age: config.max_age_secs,
        });
    }
    let ahead = created.saturating_sub(now_unix);
    if ahead > config.max_skew_secs {
        return Err(SignatureError::InFuture {
            label: label.clone(),
            created,
            ahead,
            max_skew: config.max_skew_secs,
        });
    }
    if let Some(expires) = parsed.expires
        && expires < now_unix
    {
        return Err(SignatureError::Expired {
            label: label.clone(),
            expires,
            now: now_unix,
        });
    }

    check_coverage(&parsed, &target, body)?;
    // Checked before the signature itself: a body that does not match its
    // digest is the more useful thing to tell the agent.
    if parsed.covers("content-digest") {
        check_content_digest(headers, body)?;
    }

    let base = signature_base(&target, &parsed)?;
    let signature = Signature::from_bytes(&parsed.signature);
    // Strict: rejects weak keys and malleable signatures, so the recorded
    // signature is the only one that could have passed for these bytes.
    key.verify_strict(base.as_bytes(), &signature)
        .map_err(|_| SignatureError::BadSignature {
            label: label.clone(),
        })?;

    Ok(VerifiedSignature {
        label: parsed.label.clone(),
        keyid: parsed.keyid.clone(),
        created,
        components: parsed.components.iter().map(|c| c.name.clone()).collect(),
        signature: STANDARD.encode(parsed.signature),
        base,
    })
}

/// Client side: the headers to add: (`Content-Digest` if body non-empty,
/// `Signature-Input`, `Signature`), covering `@method`, `@target-uri` and,
/// with a body, `content-digest`.
///
/// # Panics
///
/// When [`try_sign_request`] fails: `keyid` is not printable ASCII,
/// `created` is beyond ±10^15, or `authority`/`path_and_query` hold control
/// or non-ASCII characters. Use [`try_sign_request`] to handle those.
#[allow(clippy::too_many_arguments)] // as verify_request
pub fn sign_request(
    method: &Method,
    scheme: &str,
    authority: &str,
    path_and_query: &str,
    body: &[u8],
    key: &SigningKey,
    keyid: &str,
    created: i64,
) -> Vec<(HeaderName, HeaderValue)> {
    try_sign_request(
        method,
        scheme,
        authority,
        path_and_query,
        body,
        key,
        keyid,
        created,
    )
    .unwrap_or_else(|e| panic!("cannot sign request: {e}"))
}

/// [`sign_request`] for inputs that may not be signable.
#[allow(clippy::too_many_arguments)] // as verify_request
pub fn try_sign_request(
    method: &Method,
    scheme: &str,
    authority: &str,
    path_and_query: &str,
    body: &[u8],
    key: &SigningKey,
    keyid: &str,
    created: i64,
) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
    // A fresh nonce (RFC 9421 §2.3): Ed25519 is deterministic, so two
    // identical requests signed in the same second would otherwise carry
    // the same signature, and the second would be refused as a replay.
    let nonce = {
        use rand::RngCore as _;
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    try_sign_request_with_nonce(
        method,
        scheme,
        authority,
        path_and_query,
        body,
        key,
        keyid,
        created,
        &nonce,
    )
}

/// [`try_sign_request`] with the nonce given: for fuzzing and fixtures,
/// which need the same bytes every time. A repeated nonce makes a
/// repeated request a replay, so nothing else should call this.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // as verify_request
pub fn try_sign_request_with_nonce(
    method: &Method,
    scheme: &str,
    authority: &str,
    path_and_query: &str,
    body: &[u8],
    key: &SigningKey,
    keyid: &str,
    created: i64,
    nonce: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
    let mut out = Vec::with_capacity(3);
    // The base reads covered headers from a map; only the ones added here
    // are covered.
    let mut covered_headers = HeaderMap::new();
    let mut names = vec!["@method", "@target-uri"];
    if !body.is_empty() {
        let digest = content_digest(body);
        let value =
            HeaderValue::try_from(digest).map_err(|_| SignError::HeaderValue("Content-Digest"))?;
        covered_headers.insert(CONTENT_DIGEST, value.clone());
        out.push((CONTENT_DIGEST, value));
        names.push("content-digest");
    }

    let mut params = Parameters::new();
    params.insert(
        key_ref("created"),
        BareItem::Integer(Integer::try_from(created).map_err(|_| SignError::BadCreated(created))?),
    );
    let keyid_item =
        StringRef::from_str(keyid).map_err(|_| SignError::BadKeyId(keyid.to_owned()))?;
    params.insert(key_ref("keyid"), BareItem::from(keyid_item));
    params.insert(key_ref("alg"), BareItem::from(sfv::string_ref(ALG)));
    params.insert(
        key_ref("nonce"),
        BareItem::from(
            StringRef::from_str(nonce).map_err(|_| SignError::HeaderValue("Signature-Input"))?,
        ),
    );
    let items = names
        .iter()
        .map(|name| Item::new(sfv::string_ref(name)))
        .collect();
    let inner = InnerList::with_params(items, params);

    let parsed = Parsed {
        label: LABEL.to_owned(),
        components: names
            .iter()
            .map(|name| Component {
                name: (*name).to_owned(),
                identifier: Item::new(sfv::string_ref(name)).serialize(),
            })
            .collect(),
        params_line: serialize_inner_list(&inner),
        created: Some(created),
        expires: None,
        alg: Some(ALG.to_owned()),
        keyid: Some(keyid.to_owned()),
        signature: [0; 64],
    };
    let target = Target {
        method,
        scheme,
        authority,
        path_and_query,
        headers: &covered_headers,
    };
    let base = signature_base(&target, &parsed)?;
    let signature = key.sign(base.as_bytes());

    let input = HeaderValue::try_from(format!("{LABEL}={}", parsed.params_line))
        .map_err(|_| SignError::HeaderValue("Signature-Input"))?;
    let sig = HeaderValue::try_from(format!(
        "{LABEL}=:{}:",
        STANDARD.encode(signature.to_bytes())
    ))
    .map_err(|_| SignError::HeaderValue("Signature"))?;
    out.push((SIGNATURE_INPUT, input));
    out.push((SIGNATURE, sig));
    Ok(out)
}

/// The RFC 9530 `Content-Digest` value for a body, sha-256 only.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// The parts of a request a signature can cover.
struct Target<'a> {
    method: &'a Method,
    scheme: &'a str,
    authority: &'a str,
    path_and_query: &'a str,
    headers: &'a HeaderMap,
}

impl Target<'_> {
    fn path(&self) -> &str {
        let path = match self.path_and_query.split_once('?') {
            Some((path, _)) => path,
            None => self.path_and_query,
        };
        // RFC 9421 §2.2.6: an empty path is a single slash.
        if path.is_empty() { "/" } else { path }
    }

    fn query(&self) -> Option<&str> {
        self.path_and_query.split_once('?').map(|(_, query)| query)
    }

    /// An empty query (`/path?`) gives the same `@query` as none, so only a
    /// non-empty one makes covering `@query` matter.
    fn has_query(&self) -> bool {
        self.query().is_some_and(|query| !query.is_empty())
    }

    fn request_target(&self) -> String {
        match self.query() {
            Some(query) => format!("{}?{query}", self.path()),
            None => self.path().to_owned(),
        }
    }

    /// RFC 9421 §2.2.3: lowercased, default port omitted.
    fn normalized_authority(&self) -> String {
        let authority = self.authority.to_ascii_lowercase();
        let default_port = match self.scheme.to_ascii_lowercase().as_str() {
            "https" => Some(":443"),
            "http" => Some(":80"),
            _ => None,
        };
        match default_port.and_then(|port| authority.strip_suffix(port)) {
            Some(host) => host.to_owned(),
            None => authority,
        }
    }
}

/// One covered component, as the signer wrote it.
struct Component {
    /// The component name: `@method`, `content-digest`, …
    name: String,
    /// The identifier as the signature base shows it: `"@method"`.
    identifier: String,
}

/// The signature Docket checks, read from `Signature-Input` and `Signature`.
struct Parsed {
    label: String,
    components: Vec<Component>,
    /// The `@signature-params` value: the member re-serialized from what was
    /// parsed, so parameter order and extension parameters stay as the
    /// signer sent them.
    params_line: String,
    created: Option<i64>,
    expires: Option<i64>,
    alg: Option<String>,
    keyid: Option<String>,
    signature: [u8; 64],
}

impl Parsed {
    fn covers(&self, name: &str) -> bool {
        self.components.iter().any(|c| c.name == name)
    }
}

/// All lines of a field joined as one value (RFC 9110 §5.3), so a
/// dictionary split over several lines parses as one.
fn field_bytes(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut values = headers.get_all(name).iter();
    let mut joined = values.next()?.as_bytes().to_vec();
    for value in values {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(value.as_bytes());
    }
    Some(joined)
}

/// RFC 9421 builds on RFC 8941, so dates and display strings (RFC 9651)
/// are not accepted in its fields.
fn parse_dictionary(bytes: &[u8]) -> Result<Dictionary, sfv::Error> {
    Parser::new(bytes)
        .with_version(Version::Rfc8941)
        .parse::<Dictionary>()
}

fn key_ref(key: &'static str) -> sfv::Key {
    sfv::key_ref(key).to_owned()
}

fn serialize_inner_list(inner: &InnerList) -> String {
    // A one-member list serializes as exactly that member, and is never
    // empty, so `None` cannot come back.
    vec![ListEntry::InnerList(inner.clone())]
        .serialize()
        .unwrap_or_default()
}

fn parse_signature(headers: &HeaderMap) -> Result<Parsed, SignatureError> {
    let input = field_bytes(headers, &SIGNATURE_INPUT)
        .ok_or(SignatureError::MissingHeader("Signature-Input"))?;
    let signatures =
        field_bytes(headers, &SIGNATURE).ok_or(SignatureError::MissingHeader("Signature"))?;

    let input = parse_dictionary(&input)
        .map_err(|e| SignatureError::UnparsableSignatureInput(e.to_string()))?;
    let Some((label, entry)) = input.first() else {
        return Err(SignatureError::UnparsableSignatureInput(
            "it has no members".to_owned(),
        ));
    };
    let label = label.as_str().to_owned();
    let malformed = |reason: String| SignatureError::MalformedSignatureInput {
        label: label.clone(),
        reason,
    };
    let ListEntry::InnerList(inner) = entry else {
        return Err(malformed(
            "its value is not an inner list of covered components".to_owned(),
        ));
    };

    let signatures = parse_dictionary(&signatures)
        .map_err(|e| SignatureError::UnparsableSignature(e.to_string()))?;
    let signature = match signatures.get(label.as_str()) {
        None => return Err(SignatureError::LabelNotInSignature(label.clone())),
        Some(ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(bytes),
            ..
        })) => <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| {
            SignatureError::BadSignatureLength {
                label: label.clone(),
                len: bytes.len(),
            }
        })?,
        Some(_) => {
            return Err(SignatureError::SignatureNotBytes {
                label: label.clone(),
            });
        }
    };

    let mut components: Vec<Component> = Vec::with_capacity(inner.items.len());
    for item in &inner.items {
        let BareItem::String(name) = &item.bare_item else {
            return Err(malformed(format!(
                "covered component {} is not a string",
                item.serialize()
            )));
        };
        let name = name.as_str();
        if !item.params.is_empty() {
            return Err(SignatureError::UnsupportedComponent {
                label: label.clone(),
                component: item.serialize(),
                reason: "component parameters (;sf, ;key, ;bs, ;req, ;tr, ;name) are not supported",
            });
        }
        check_component_name(&label, name)?;
        if components.iter().any(|c| c.name == name) {
            return Err(malformed(format!(
                "covered component `{name}` appears twice"
            )));
        }
        components.push(Component {
            name: name.to_owned(),
            identifier: item.serialize(),
        });
    }

    let mut created = None;
    let mut expires = None;
    let mut alg = None;
    let mut keyid = None;
    for (key, value) in &inner.params {
        let key = key.as_str();
        let integer = || {
            value
                .as_integer()
                .map(i64::from)
                .ok_or_else(|| malformed(format!("parameter `{key}` is not an integer")))
        };
        let string = || {
            value
                .as_string()
                .map(|s| s.as_str().to_owned())
                .ok_or_else(|| malformed(format!("parameter `{key}` is not a string")))
        };
        match key {
            "created" => created = Some(integer()?),
            "expires" => expires = Some(integer()?),
            "alg" => alg = Some(string()?),
            "keyid" => keyid = Some(string()?),
            "nonce" | "tag" => {
                string()?;
            }
            // Extension parameters are signed over through `params_line`;
            // nothing else reads them.
            _ => {}
        }
    }

    Ok(Parsed {
        components,
        params_line: serialize_inner_list(inner),
        created,
        expires,
        alg,
        keyid,
        signature,
        label,
    })
}

/// Refuses, at parse time, names Docket cannot compute a value for.
fn check_component_name(label: &str, name: &str) -> Result<(), SignatureError> {
    let unsupported = |reason| SignatureError::UnsupportedComponent {
        label: label.to_owned(),
        component: name.to_owned(),
        reason,
    };
    match name {
        "@method" | "@target-uri" | "@authority" | "@scheme" | "@request-target" | "@path"
        | "@query" => Ok(()),
        "@query-param" => Err(unsupported(
            "it needs the ;name parameter, which is not supported",
        )),
        "@status" => Err(unsupported("it exists only on responses")),
        "@signature-params" => Err(unsupported("it must never be a covered component")),
        _ if name.starts_with('@') => Err(unsupported("it is not a derived component of RFC 9421")),
        _ => {
            // Component names of fields are lowercase by definition
            // (RFC 9421 §2.1); an uppercase one was not written for RFC 9421.
            let valid = HeaderName::from_bytes(name.as_bytes()).is_ok()
                && !name.bytes().any(|b| b.is_ascii_uppercase());
            if valid {
                Ok(())
            } else {
                Err(SignatureError::MalformedSignatureInput {
                    label: label.to_owned(),
                    reason: format!("covered component `{name}` is not a lowercase field name"),
                })
            }
        }
    }
}

/// Headers a signature may not cover: their values are secrets, and the
/// signature base goes into the ledger.
const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "cookie",
    "set-cookie",
];

fn check_coverage(parsed: &Parsed, target: &Target<'_>, body: &[u8]) -> Result<(), SignatureError> {
    if let Some(c) = parsed
        .components
        .iter()
        .find(|c| SECRET_HEADERS.contains(&c.name.to_ascii_lowercase().as_str()))
    {
        return Err(SignatureError::CoversSecret {
            label: parsed.label.clone(),
            header: c.name.clone(),
        });
    }
    let missing = |missing| SignatureError::NotCovered {
        label: parsed.label.clone(),
        missing,
    };
    if !parsed.covers("@method") {
        return Err(missing("@method"));
    }
    if !parsed.covers("@target-uri") {
        if !(parsed.covers("@authority") && parsed.covers("@path")) {
            return Err(missing("@target-uri (or both @authority and @path)"));
        }
        if target.has_query() && !parsed.covers("@query") {
            return Err(missing("@query, as the request has a query"));
        }
    }
    if !body.is_empty() && !parsed.covers("content-digest") {
        return Err(missing("content-digest, as the request has a body"));
    }
    Ok(())
}

fn check_content_digest(headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    let raw = field_bytes(headers, &CONTENT_DIGEST).ok_or(SignatureError::MissingContentDigest)?;
    let digests = parse_dictionary(&raw)
        .map_err(|e| SignatureError::UnparsableContentDigest(e.to_string()))?;
    // Other algorithms (sha-512, …) may sit beside it; RFC 9530 lets a
    // recipient ignore those, and Docket's policy is sha-256.
    match digests.get("sha-256") {
        None => Err(SignatureError::NoSha256Digest),
        Some(ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(claimed),
            ..
        })) => {
            if claimed.as_slice() == Sha256::digest(body).as_slice() {
                Ok(())
            } else {
                Err(SignatureError::ContentDigestMismatch)
            }
        }
        Some(_) => Err(SignatureError::UnparsableContentDigest(
            "its sha-256 member is not a byte sequence".to_owned(),
        )),
    }
}

/// RFC 9421 §2.5: one `identifier: value` line per covered component, then
/// the `@signature-params` line, no trailing newline.
fn signature_base(target: &Target<'_>, parsed: &Parsed) -> Result<String, SignatureError> {
    let mut base = String::new();
    for component in &parsed.components {
        let value = component_value(target, &parsed.label, component)?;
        // A newline or other control byte in a value could forge a line of
        // the base, so only visible ASCII, space and tab get in.
        if value
            .bytes()
            .any(|b| !(b == b'\t' || (0x20..0x7f).contains(&b)))
        {
            return Err(SignatureError::UnsafeComponentValue {
                component: component.name.clone(),
            });
        }
        base.push_str(&component.identifier);
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&parsed.params_line);
    Ok(base)
}

fn component_value(
    target: &Target<'_>,
    label: &str,
    component: &Component,
) -> Result<String, SignatureError> {
    Ok(match component.name.as_str() {
        // RFC 9421 §2.2.1: method names are case-sensitive, not normalized.
        "@method" => target.method.as_str().to_owned(),
        "@target-uri" => format!(
            "{}://{}{}",
            target.scheme,
            target.authority,
            target.request_target()
        ),
        "@authority" => target.normalized_authority(),
        "@scheme" => target.scheme.to_ascii_lowercase(),
        "@request-target" => target.request_target(),
        "@path" => target.path().to_owned(),
        // RFC 9421 §2.2.7: with no query, the value is a lone `?`.
        "@query" => format!("?{}", target.query().unwrap_or("")),
        name if name.starts_with('@') => {
            return Err(SignatureError::UnsupportedComponent {
                label: label.to_owned(),
                component: name.to_owned(),
                reason: "it is not a derived component of RFC 9421",
            });
        }
        field => {
            let mut lines = target.headers.get_all(field).iter().peekable();
            if lines.peek().is_none() {
                return Err(SignatureError::MissingCoveredHeader {
                    label: label.to_owned(),
                    header: field.to_owned(),
                });
            }
            // RFC 9421 §2.1: each line trimmed, lines joined with ", ".
            let mut joined = Vec::new();
            for (i, line) in lines.enumerate() {
                if i > 0 {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(line.as_bytes().trim_ascii());
            }
            String::from_utf8(joined).map_err(|_| SignatureError::UnsafeComponentValue {
                component: field.to_owned(),
            })?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    // RFC 9421 Appendix B.1.4, test-key-ed25519, as its JWK members.
    const RFC_ED25519_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
    const RFC_ED25519_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";

    // RFC 9421 Appendix B.2.6, unwrapped from the RFC 8792 line folding.
    const RFC_B26_INPUT: &str = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
    const RFC_B26_SIGNATURE: &str = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";
    const RFC_B26_BASE: &str = concat!(
        "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n",
        "\"@method\": POST\n",
        "\"@path\": /foo\n",
        "\"@authority\": example.com\n",
        "\"content-type\": application/json\n",
        "\"content-length\": 18\n",
        "\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" ",
        "\"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"",
    );

    const CREATED: i64 = 1_700_000_000;
    const NOW: i64 = CREATED + 10;
    const AUTHORITY: &str = "docket.example";
    const PATH: &str = "/api/v1/entries?agent=a1";
    const BODY: &[u8] = br#"{"action":"deploy"}"#;

    fn rfc_key() -> SigningKey {
        let d: [u8; 32] = URL_SAFE_NO_PAD
            .decode(RFC_ED25519_D)
            .unwrap()
            .try_into()
            .unwrap();
        SigningKey::from_bytes(&d)
    }

    fn agent_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    /// The RFC's test-request (Appendix B.2) headers with the B.2.6 signature.
    fn rfc_b26_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "example.com"),
            ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            ("content-type", "application/json"),
            (
                "content-digest",
                "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
            ),
            ("content-length", "18"),
            ("signature-input", RFC_B26_INPUT),
            ("signature", RFC_B26_SIGNATURE),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    fn signed(method: &Method, path: &str, body: &[u8], key: &SigningKey) -> HeaderMap {
        sign_request(
            method, "https", AUTHORITY, path, body, key, "agent-1", CREATED,
        )
        .into_iter()
        .collect()
    }

    fn verify(
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        key: &SigningKey,
    ) -> Result<VerifiedSignature, SignatureError> {
        verify_request(
            method,
            "https",
            AUTHORITY,
            path,
            headers,
            body,
            &key.verifying_key(),
            NOW,
            &VerifyConfig::default(),
        )
    }

    /// Signs `headers` under a hand-written Signature-Input member, with the
    /// base built by the verifier's own code: for policy cases the
    /// sign_request helper cannot produce.
    fn sign_custom(
        method: &Method,
        path: &str,
        mut headers: HeaderMap,
        key: &SigningKey,
        input: &str,
    ) -> HeaderMap {
        headers.insert(
            SIGNATURE_INPUT,
            HeaderValue::try_from(format!("sig1={input}")).unwrap(),
        );
        headers.insert(
            SIGNATURE,
            HeaderValue::try_from(format!("sig1=:{}:", STANDARD.encode([0u8; 64]))).unwrap(),
        );
        let parsed = parse_signature(&headers).unwrap();
        let target = Target {
            method,
            scheme: "https",
            authority: AUTHORITY,
            path_and_query: path,
            headers: &headers,
        };
        let base = signature_base(&target, &parsed).unwrap();
        let signature = key.sign(base.as_bytes());
        headers.insert(
            SIGNATURE,
            HeaderValue::try_from(format!("sig1=:{}:", STANDARD.encode(signature.to_bytes())))
                .unwrap(),
        );
        headers
    }

    fn digest_header(body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_DIGEST,
            HeaderValue::try_from(content_digest(body)).unwrap(),
        );
        headers
    }

    #[test]
    fn rfc9421_b26_ed25519_vector_verifies() {
        let key = rfc_key();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            RFC_ED25519_X,
            "the B.1.4 private key must yield the B.1.4 public key"
        );
        let headers = rfc_b26_headers();
        let parsed = parse_signature(&headers).unwrap();
        assert_eq!(parsed.label, "sig-b26");
        assert_eq!(parsed.created, Some(1_618_884_473));
        assert_eq!(parsed.keyid.as_deref(), Some("test-key-ed25519"));
        let target = Target {
            method: &Method::POST,
            scheme: "https",
            authority: "example.com",
            path_and_query: "/foo?param=Value&Pet=dog",
            headers: &headers,
        };
        let base = signature_base(&target, &parsed).unwrap();
        assert_eq!(base, RFC_B26_BASE);

        let signature = Signature::from_bytes(&parsed.signature);
        key.verifying_key()
            .verify_strict(base.as_bytes(), &signature)
            .expect("the RFC's signature verifies over the RFC's base");
        // Ed25519 is deterministic: the RFC's key over the RFC's base gives
        // the RFC's signature, byte for byte.
        assert_eq!(key.sign(base.as_bytes()).to_bytes(), parsed.signature);
    }

    #[test]
    fn rfc9421_b26_request_fails_docket_policy() {
        // The RFC's signature is valid but covers neither @query nor
        // content-digest, both of which Docket requires for this request.
        let err = verify_request(
            &Method::POST,
            "https",
            "example.com",
            "/foo?param=Value&Pet=dog",
            &rfc_b26_headers(),
            br#"{"hello": "world"}"#,
            &rfc_key().verifying_key(),
            1_618_884_473,
            &VerifyConfig::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, SignatureError::NotCovered { missing, .. } if missing.starts_with("@query")),
            "{err}"
        );
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let key = agent_key();
        let added = sign_request(
            &Method::POST,
            "https",
            AUTHORITY,
            PATH,
            BODY,
            &key,
            "agent-1",
            CREATED,
        );
        let names: Vec<_> = added.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["content-digest", "signature-input", "signature"]);
        let headers: HeaderMap = added.into_iter().collect();

        let verified = verify(&Method::POST, PATH, &headers, BODY, &key).unwrap();
        assert_eq!(verified.label, "sig1");
        assert_eq!(verified.keyid.as_deref(), Some("agent-1"));
        assert_eq!(verified.created, CREATED);
        assert_eq!(
            verified.components,
            ["@method", "@target-uri", "content-digest"]
        );
        let sig = headers[SIGNATURE].to_str().unwrap();
        assert_eq!(sig, format!("sig1=:{}:", verified.signature));
        let input = headers[SIGNATURE_INPUT].to_str().unwrap();
        let (fixed, nonce) = input.split_once(r#";nonce=""#).unwrap();
        assert_eq!(
            fixed,
            r#"sig1=("@method" "@target-uri" "content-digest");created=1700000000;keyid="agent-1";alg="ed25519""#
        );
        // 16 random bytes, base64url: a second signing of the same request
        // differs.
        assert_eq!(nonce.trim_end_matches('"').len(), 22, "{input}");
        let again = signed(&Method::POST, PATH, BODY, &key);
        assert_ne!(again[SIGNATURE], headers[SIGNATURE]);
    }

    #[test]
    fn a_signature_is_accepted_once_until_it_is_too_old() {
        let key = agent_key();
        let headers = signed(&Method::GET, PATH, b"", &key);
        let verified = verify(&Method::GET, PATH, &headers, b"", &key).unwrap();
        let seen = SeenSignatures::default();
        let now = CREATED + 10;
        assert!(seen.first_use(&verified, 300, now));
        assert!(!seen.first_use(&verified, 300, now), "a replay");
        assert!(!seen.first_use(&verified, 300, CREATED + 300));
        // Past max_age the verifier refuses it anyway; the entry may go.
        assert!(seen.first_use(&verified, 300, CREATED + 301));
    }

    #[test]
    fn sign_then_verify_without_body() {
        let key = agent_key();
        let headers = signed(&Method::GET, PATH, b"", &key);
        assert!(!headers.contains_key(CONTENT_DIGEST));
        let verified = verify(&Method::GET, PATH, &headers, b"", &key).unwrap();
        assert_eq!(verified.components, ["@method", "@target-uri"]);
    }

    #[test]
    fn parameter_order_and_extensions_are_kept_as_sent() {
        // The case the httpsig crate gets wrong: keyid before created and an
        // extension parameter must both be part of the base as sent.
        let key = agent_key();
        let headers = sign_custom(
            &Method::POST,
            PATH,
            digest_header(BODY),
            &key,
            r#"("@method" "@target-uri" "content-digest");keyid="agent-1";created=1700000000;ext="x""#,
        );
        let verified = verify(&Method::POST, PATH, &headers, BODY, &key).unwrap();
        assert_eq!(verified.keyid.as_deref(), Some("agent-1"));
    }

    #[test]
    fn authority_and_path_with_query_satisfy_policy() {
        let key = agent_key();
        let headers = sign_custom(
            &Method::POST,
            PATH,
            digest_header(BODY),
            &key,
            r#"("@method" "@authority" "@path" "@query" "content-digest");created=1700000000"#,
        );
        verify(&Method::POST, PATH, &headers, BODY, &key).unwrap();
    }

    #[test]
    fn a_signature_over_the_credential_is_refused_and_the_base_is_recorded() {
        let key = agent_key();
        let mut headers = digest_header(BODY);
        headers.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer dka_secret"),
        );
        let headers = sign_custom(
            &Method::POST,
            PATH,
            headers,
            &key,
            r#"("@method" "@target-uri" "content-digest" "authorization");created=1700000000"#,
        );
        let err = verify(&Method::POST, PATH, &headers, BODY, &key).unwrap_err();
        assert!(
            matches!(&err, SignatureError::CoversSecret { header, .. } if header == "authorization"),
            "{err}"
        );
        assert!(!err.to_string().contains("dka_secret"));

        // What is recorded lets anyone re-verify with the agent's public key.
        let headers = signed(&Method::POST, PATH, BODY, &key);
        let v = verify(&Method::POST, PATH, &headers, BODY, &key).unwrap();
        let sig = Signature::from_slice(&STANDARD.decode(&v.signature).unwrap()).unwrap();
        key.verifying_key()
            .verify_strict(v.base.as_bytes(), &sig)
            .unwrap();
        assert!(v.base.contains("\"@method\": POST"), "{}", v.base);
    }

    #[test]
    fn first_label_is_the_one_checked() {
        let key = agent_key();
        let mut headers = signed(&Method::GET, PATH, b"", &key);
        let input = headers[SIGNATURE_INPUT].to_str().unwrap().to_owned();
        let sig = headers[SIGNATURE].to_str().unwrap().to_owned();
        headers.insert(
            SIGNATURE_INPUT,
            HeaderValue::try_from(format!(r#"{input}, other=("@method");created=1"#)).unwrap(),
        );
        headers.insert(
            SIGNATURE,
            HeaderValue::try_from(format!("other=:AAAA:, {sig}")).unwrap(),
        );
        let verified = verify(&Method::GET, PATH, &headers, b"", &key).unwrap();
        assert_eq!(verified.label, "sig1");
    }

    #[test]
    fn tampered_body_is_rejected() {
        let key = agent_key();
        let headers = signed(&Method::POST, PATH, BODY, &key);
        let err = verify(
            &Method::POST,
            PATH,
            &headers,
            br#"{"action":"delete"}"#,
            &key,
        )
        .unwrap_err();
        assert!(
            matches!(err, SignatureError::ContentDigestMismatch),
            "{err}"
        );
    }

    #[test]
    fn digest_rewritten_to_match_tampered_body_is_rejected() {
        let key = agent_key();
        let tampered = br#"{"action":"delete"}"#;
        let mut headers = signed(&Method::POST, PATH, BODY, &key);
        headers.insert(
            CONTENT_DIGEST,
            HeaderValue::try_from(content_digest(tampered)).unwrap(),
        );
        let err = verify(&Method::POST, PATH, &headers, tampered, &key).unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn wrong_key_is_rejected() {
        let headers = signed(&Method::POST, PATH, BODY, &agent_key());
        let other = SigningKey::from_bytes(&[8; 32]);
        let err = verify(&Method::POST, PATH, &headers, BODY, &other).unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn changed_method_is_rejected() {
        let key = agent_key();
        let headers = signed(&Method::POST, PATH, BODY, &key);
        let err = verify(&Method::PUT, PATH, &headers, BODY, &key).unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn changed_path_is_rejected() {
        let key = agent_key();
        let headers = signed(&Method::POST, PATH, BODY, &key);
        for path in [
            "/api/v1/entries?agent=a2",
            "/api/v1/entries",
            "/api/v2/entries?agent=a1",
        ] {
            let err = verify(&Method::POST, path, &headers, BODY, &key).unwrap_err();
            assert!(
                matches!(err, SignatureError::BadSignature { .. }),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn changed_authority_is_rejected() {
        let key = agent_key();
        let headers = signed(&Method::POST, PATH, BODY, &key);
        let err = verify_request(
            &Method::POST,
            "https",
            "evil.example",
            PATH,
            &headers,
            BODY,
            &key.verifying_key(),
            NOW,
            &VerifyConfig::default(),
        )
        .unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn body_without_content_digest_coverage_is_rejected() {
        let key = agent_key();
        // Signed as if bodiless, then sent with a body.
        let headers = signed(&Method::POST, PATH, b"", &key);
        let err = verify(&Method::POST, PATH, &headers, BODY, &key).unwrap_err();
        assert!(
            matches!(err, SignatureError::NotCovered { missing, .. } if missing.starts_with("content-digest")),
            "{err}"
        );
    }

    #[test]
    fn covered_content_digest_must_be_present() {
        let key = agent_key();
        let mut headers = signed(&Method::POST, PATH, BODY, &key);
        headers.remove(CONTENT_DIGEST);
        let err = verify(&Method::POST, PATH, &headers, BODY, &key).unwrap_err();
        assert!(matches!(err, SignatureError::MissingContentDigest), "{err}");
    }

    #[test]
    fn content_digest_needs_sha256() {
        let key = agent_key();
        let mut only_sha512 = HeaderMap::new();
        only_sha512.insert(CONTENT_DIGEST, HeaderValue::from_static("sha-512=:AAAA:"));
        let headers = sign_custom(
            &Method::POST,
            PATH,
            only_sha512,
            &key,
            r#"("@method" "@target-uri" "content-digest");created=1700000000"#,
        );
        let err = verify(&Method::POST, PATH, &headers, BODY, &key).unwrap_err();
        assert!(matches!(err, SignatureError::NoSha256Digest), "{err}");

        let mut garbage = signed(&Method::POST, PATH, BODY, &key);
        garbage.insert(
            CONTENT_DIGEST,
            HeaderValue::from_static("sha-256=not bytes"),
        );
        let err = verify(&Method::POST, PATH, &garbage, BODY, &key).unwrap_err();
        assert!(
            matches!(err, SignatureError::UnparsableContentDigest(_)),
            "{err}"
        );
    }

    #[test]
    fn stale_created_is_rejected() {
        let key = agent_key();
        let headers = signed(&Method::POST, PATH, BODY, &key);
        let config = VerifyConfig::default();
        let err = verify_request(
            &Method::POST,
            "https",
            AUTHORITY,
            PATH,
            &headers,
            BODY,
            &key.verifying_key(),
            CREATED + config.max_age_secs + 1,
            &config,
        )
        .unwrap_err();
        assert!(
            matches!(err, SignatureError::TooOld { age, .. } if age == config.max_age_secs + 1),
            "{err}"
        );
    }

    #[test]
    fn future_created_is_rejected() {
        let key = agent_key();
        let headers = signed(&Method::POST, PATH, BODY, &key);
        let config = VerifyConfig::default();
        let err = verify_request(
            &Method::POST,
            "https",
            AUTHORITY,
            PATH,
            &headers,
            BODY,
            &key.verifying_key(),
            CREATED - config.max_skew_secs - 1,
            &config,
        )
        .unwrap_err();
        assert!(
            matches!(err, SignatureError::InFuture { ahead, .. } if ahead == config.max_skew_secs + 1),
            "{err}"
        );
    }

    #[test]
    fn missing_created_and_passed_expires_are_rejected() {
        let key = agent_key();
        let headers = sign_custom(
            &Method::GET,
            PATH,
            HeaderMap::new(),
            &key,
            r#"("@method" "@target-uri")"#,
        );
        let err = verify(&Method::GET, PATH, &headers, b"", &key).unwrap_err();
        assert!(
            matches!(err, SignatureError::MissingCreated { .. }),
            "{err}"
        );

        let input = format!(
            r#"("@method" "@target-uri");created={CREATED};expires={}"#,
            NOW - 1
        );
        let headers = sign_custom(&Method::GET, PATH, HeaderMap::new(), &key, &input);
        let err = verify(&Method::GET, PATH, &headers, b"", &key).unwrap_err();
        assert!(matches!(err, SignatureError::Expired { .. }), "{err}");
    }

    #[test]
    fn alg_other_than_ed25519_is_rejected() {
        let key = agent_key();
        for alg in ["rsa-pss-sha512", "hmac-sha256", "ED25519"] {
            let input = format!(r#"("@method" "@target-uri");created={CREATED};alg="{alg}""#);
            let headers = sign_custom(&Method::GET, PATH, HeaderMap::new(), &key, &input);
            let err = verify(&Method::GET, PATH, &headers, b"", &key).unwrap_err();
            assert!(
                matches!(&err, SignatureError::WrongAlgorithm { alg: got, .. } if got == alg),
                "{err}"
            );
        }
    }

    #[test]
    fn method_and_target_must_be_covered() {
        let key = agent_key();
        let cases = [
            (r#"("@target-uri");created=1700000000"#, "@method"),
            (r#"("@method" "@path");created=1700000000"#, "@target-uri"),
            (
                r#"("@method" "@authority" "@path");created=1700000000"#,
                "@query",
            ),
        ];
        for (input, expected) in cases {
            let headers = sign_custom(&Method::GET, PATH, HeaderMap::new(), &key, input);
            let err = verify(&Method::GET, PATH, &headers, b"", &key).unwrap_err();
            assert!(
                matches!(err, SignatureError::NotCovered { missing, .. } if missing.starts_with(expected)),
                "{input}: {err}"
            );
        }
    }

    #[test]
    fn covered_header_must_be_present() {
        let key = agent_key();
        let mut with_date = HeaderMap::new();
        with_date.insert(
            "date",
            HeaderValue::from_static("Tue, 20 Apr 2021 02:07:55 GMT"),
        );
        let mut headers = sign_custom(
            &Method::GET,
            PATH,
            with_date,
            &key,
            r#"("@method" "@target-uri" "date");created=1700000000"#,
        );
        verify(&Method::GET, PATH, &headers, b"", &key).unwrap();
        headers.remove("date");
        let err = verify(&Method::GET, PATH, &headers, b"", &key).unwrap_err();
        assert!(
            matches!(&err, SignatureError::MissingCoveredHeader { header, .. } if header == "date"),
            "{err}"
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let key = agent_key();
        let mut headers = signed(&Method::GET, PATH, b"", &key);
        headers.remove(SIGNATURE);
        let err = verify(&Method::GET, PATH, &headers, b"", &key).unwrap_err();
        assert!(
            matches!(err, SignatureError::MissingHeader("Signature")),
            "{err}"
        );

        let mut headers = signed(&Method::GET, PATH, b"", &key);
        headers.remove(SIGNATURE_INPUT);
        let err = verify(&Method::GET, PATH, &headers, b"", &key).unwrap_err();
        assert!(
            matches!(err, SignatureError::MissingHeader("Signature-Input")),
            "{err}"
        );
    }

    fn verify_raw(input: &[u8], signature: &[u8]) -> SignatureError {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_INPUT, HeaderValue::from_bytes(input).unwrap());
        headers.insert(SIGNATURE, HeaderValue::from_bytes(signature).unwrap());
        verify(&Method::GET, PATH, &headers, b"", &agent_key()).unwrap_err()
    }

    #[test]
    fn garbage_headers_get_specific_errors() {
        let good_sig = format!("sig1=:{}:", STANDARD.encode([1u8; 64]));
        let good_input = r#"sig1=("@method" "@target-uri");created=1700000000"#;

        let err = verify_raw(b"((garbage", good_sig.as_bytes());
        assert!(
            matches!(err, SignatureError::UnparsableSignatureInput(_)),
            "{err}"
        );
        let err = verify_raw(b"", good_sig.as_bytes());
        assert!(
            matches!(err, SignatureError::UnparsableSignatureInput(_)),
            "{err}"
        );
        let err = verify_raw("sig1=(\"@méthod\")".as_bytes(), good_sig.as_bytes());
        assert!(
            matches!(err, SignatureError::UnparsableSignatureInput(_)),
            "{err}"
        );
        let err = verify_raw(b"sig1=1", good_sig.as_bytes());
        assert!(
            matches!(err, SignatureError::MalformedSignatureInput { .. }),
            "{err}"
        );
        let err = verify_raw(b"sig1=(method);created=1", good_sig.as_bytes());
        assert!(
            matches!(err, SignatureError::MalformedSignatureInput { .. }),
            "{err}"
        );
        let err = verify_raw(b"sig1=(\"@method\");created=\"soon\"", good_sig.as_bytes());
        assert!(
            matches!(err, SignatureError::MalformedSignatureInput { .. }),
            "{err}"
        );
        let err = verify_raw(
            b"sig1=(\"@method\" \"@method\");created=1",
            good_sig.as_bytes(),
        );
        assert!(
            matches!(err, SignatureError::MalformedSignatureInput { .. }),
            "{err}"
        );
        let err = verify_raw(b"sig1=(\"Date\");created=1", good_sig.as_bytes());
        assert!(
            matches!(err, SignatureError::MalformedSignatureInput { .. }),
            "{err}"
        );

        // Bad base64 inside the byte sequence.
        let err = verify_raw(good_input.as_bytes(), b"sig1=:not*base64!:");
        assert!(
            matches!(&err, SignatureError::UnparsableSignature(reason) if reason.contains("byte sequence")),
            "{err}"
        );
        let err = verify_raw(good_input.as_bytes(), b"sig2=:AAAA:");
        assert!(
            matches!(&err, SignatureError::LabelNotInSignature(l) if l == "sig1"),
            "{err}"
        );
        let err = verify_raw(good_input.as_bytes(), b"sig1=\"a string\"");
        assert!(
            matches!(err, SignatureError::SignatureNotBytes { .. }),
            "{err}"
        );
        let err = verify_raw(good_input.as_bytes(), b"sig1=:AAAA:");
        assert!(
            matches!(err, SignatureError::BadSignatureLength { len: 3, .. }),
            "{err}"
        );

        let err = verify_raw(b"sig1=(\"@method\";bs);created=1", good_sig.as_bytes());
        assert!(
            matches!(err, SignatureError::UnsupportedComponent { .. }),
            "{err}"
        );
        for derived in ["@query-param", "@status", "@signature-params", "@nonsense"] {
            let input = format!(r#"sig1=("{derived}");created=1"#);
            let err = verify_raw(input.as_bytes(), good_sig.as_bytes());
            assert!(
                matches!(err, SignatureError::UnsupportedComponent { .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        let inputs: &[&[u8]] = &[
            b"",
            b"=",
            b",,,",
            b"sig1",
            b"sig1=()",
            b"sig1=();created=-99999999999999",
            b"sig1=();created=999999999999999;expires=-999999999999999",
            b"sig1=(\"@method\");created=1.5",
            b"sig1=(\"\\\"\");created=1",
            b"sig1=(\"a\" b ?1 :AAAA: 1.0);created=1",
            b"sig1=:AAAA:",
            b"sig1=(\"@method\" \"@target-uri\");created=1700000000;alg=ed25519",
            b"a=(), b=(), c=()",
            &[0xff, 0xfe, 0x80],
        ];
        let key = agent_key().verifying_key();
        for input in inputs {
            for signature in inputs {
                let mut headers = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_bytes(input) {
                    headers.insert(SIGNATURE_INPUT, v);
                }
                if let Ok(v) = HeaderValue::from_bytes(signature) {
                    headers.insert(SIGNATURE, v.clone());
                    headers.insert(CONTENT_DIGEST, v);
                }
                let configs = [
                    VerifyConfig::default(),
                    VerifyConfig {
                        max_age_secs: i64::MAX,
                        max_skew_secs: i64::MAX,
                    },
                    VerifyConfig {
                        max_age_secs: i64::MIN,
                        max_skew_secs: i64::MIN,
                    },
                ];
                for (now, config) in [i64::MIN, 0, NOW, i64::MAX]
                    .into_iter()
                    .flat_map(|now| configs.iter().map(move |c| (now, c)))
                {
                    let _ = verify_request(
                        &Method::GET,
                        "https",
                        AUTHORITY,
                        PATH,
                        &headers,
                        BODY,
                        &key,
                        now,
                        config,
                    );
                }
            }
        }
    }

    #[test]
    fn control_characters_cannot_forge_base_lines() {
        let key = agent_key();
        let headers = signed(&Method::GET, PATH, b"", &key);
        let err = verify(&Method::GET, "/api\n\"@method\": POST", &headers, b"", &key).unwrap_err();
        assert!(
            matches!(err, SignatureError::UnsafeComponentValue { .. }),
            "{err}"
        );
    }

    #[test]
    fn derived_component_values_follow_rfc9421() {
        let headers = HeaderMap::new();
        let target = Target {
            method: &Method::POST,
            scheme: "HTTPS",
            authority: "WWW.Example.com:443",
            path_and_query: "/path?param=value&foo=bar",
            headers: &headers,
        };
        assert_eq!(target.normalized_authority(), "www.example.com");
        assert_eq!(target.path(), "/path");
        assert_eq!(target.query(), Some("param=value&foo=bar"));
        assert_eq!(target.request_target(), "/path?param=value&foo=bar");

        let bare = Target {
            path_and_query: "",
            scheme: "http",
            authority: "example.com:8080",
            ..target
        };
        assert_eq!(bare.path(), "/");
        assert!(!bare.has_query());
        assert_eq!(bare.normalized_authority(), "example.com:8080");
        let query = Component {
            name: "@query".to_owned(),
            identifier: "\"@query\"".to_owned(),
        };
        assert_eq!(component_value(&bare, "sig1", &query).unwrap(), "?");
    }

    #[test]
    fn field_lines_are_trimmed_and_joined() {
        let mut headers = HeaderMap::new();
        headers.append("x-list", HeaderValue::from_static("  a, b "));
        headers.append("x-list", HeaderValue::from_static("c\t"));
        let target = Target {
            method: &Method::GET,
            scheme: "https",
            authority: AUTHORITY,
            path_and_query: "/",
            headers: &headers,
        };
        let component = Component {
            name: "x-list".to_owned(),
            identifier: "\"x-list\"".to_owned(),
        };
        assert_eq!(
            component_value(&target, "sig1", &component).unwrap(),
            "a, b, c"
        );
    }

    #[test]
    fn is_signed_sees_either_header() {
        let mut headers = HeaderMap::new();
        assert!(!is_signed(&headers));
        headers.insert(SIGNATURE, HeaderValue::from_static("x"));
        assert!(is_signed(&headers));
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_INPUT, HeaderValue::from_static("x"));
        assert!(is_signed(&headers));
    }

    #[test]
    fn unsignable_inputs_are_errors_not_panics() {
        let key = agent_key();
        let err = try_sign_request(
            &Method::GET,
            "https",
            AUTHORITY,
            "/",
            b"",
            &key,
            "agent\u{e9}",
            CREATED,
        )
        .unwrap_err();
        assert!(matches!(err, SignError::BadKeyId(_)), "{err}");
        let err = try_sign_request(
            &Method::GET,
            "https",
            AUTHORITY,
            "/",
            b"",
            &key,
            "k",
            i64::MAX,
        )
        .unwrap_err();
        assert!(matches!(err, SignError::BadCreated(_)), "{err}");
        let err = try_sign_request(&Method::GET, "https", "a\nb", "/", b"", &key, "k", CREATED)
            .unwrap_err();
        assert!(matches!(err, SignError::Base(_)), "{err}");
    }
}
