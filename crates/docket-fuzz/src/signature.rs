//! RFC 9421 request signatures (`docket_server::httpsig`): the
//! `Signature-Input`, `Signature` and `Content-Digest` fields of any
//! request, and requests Docket's own signer signs.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use docket_server::httpsig::{self, VerifiedSignature, VerifyConfig};
use ed25519_dalek::{Signature, VerifyingKey};

use crate::keys;

/// When the corpus's signatures were made, and "now" for verifying them.
pub(crate) const CREATED: i64 = 1_700_000_000;
pub(crate) const NOW: i64 = CREATED + 10;

/// Times never refuse a signature: the RFC's examples are from 2021.
pub(crate) const ANY_TIME: VerifyConfig = VerifyConfig {
    max_age_secs: i64::MAX,
    max_skew_secs: i64::MAX,
};

/// A request as text:
///
/// ```text
/// POST https://docket.example/api/v1/entries?agent=a1
/// content-digest: sha-256=:…:
/// signature-input: sig1=("@method" "@target-uri" "content-digest");created=…
/// signature: sig1=:…:
///
/// {"body":…}
/// ```
///
/// verified with the agent key and the RFC 9421 test key. An input that
/// starts `sign` instead has Docket's signer sign the request (with the
/// `created`, `keyid` and `nonce` its header lines give), and the
/// signature must then verify.
pub fn httpsig(data: &[u8]) {
    if let Some(rest) = data.strip_prefix(b"sign\n") {
        return sign_and_verify(rest);
    }
    let Some(request) = Request::parse(data) else {
        return;
    };
    let agent = keys::agent_key().verifying_key();
    let rfc = keys::rfc9421_key().verifying_key();
    for (key, config) in [
        (&agent, VerifyConfig::default()),
        (&agent, ANY_TIME),
        (&rfc, ANY_TIME),
    ] {
        if let Ok(v) = request.verify(key, NOW, &config) {
            verifies_offline(&v, key);
        }
    }
}

fn sign_and_verify(data: &[u8]) {
    let Some(request) = Request::parse(data) else {
        return;
    };
    let field = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let created = field("created")
        .and_then(|s| s.parse().ok())
        .unwrap_or(CREATED);
    let keyid = field("keyid").unwrap_or_else(|| "agent".to_owned());
    let nonce = field("nonce").unwrap_or_else(|| "n".to_owned());
    let key = keys::agent_key();
    let Ok(added) = httpsig::try_sign_request_with_nonce(
        &request.method,
        &request.scheme,
        &request.authority,
        &request.path_and_query,
        &request.body,
        &key,
        &keyid,
        created,
        &nonce,
    ) else {
        return;
    };
    let signed = Request {
        headers: added.into_iter().collect(),
        ..request
    };
    let verified = signed
        .verify(&key.verifying_key(), created, &VerifyConfig::default())
        .unwrap_or_else(|e| panic!("a request Docket signed does not verify: {e}"));
    assert_eq!(verified.keyid.as_deref(), Some(keyid.as_str()));
    assert_eq!(verified.created, created);
    verifies_offline(&verified, &key.verifying_key());
}

/// What the ledger records verifies on its own, as the evidence verifier
/// checks it: the signature over the recorded base.
fn verifies_offline(v: &VerifiedSignature, key: &VerifyingKey) {
    let bytes: [u8; 64] = STANDARD
        .decode(&v.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .expect("a recorded signature is base64 of 64 bytes");
    assert!(
        key.verify_strict(v.base.as_bytes(), &Signature::from_bytes(&bytes))
            .is_ok(),
        "a verified signature does not verify over its recorded base"
    );
    assert!(v.components.iter().any(|c| c == "@method"));
}

pub(crate) struct Request {
    method: Method,
    scheme: String,
    authority: String,
    path_and_query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Request {
    /// The text form above; `None` when the request line does not parse.
    /// Header lines that are not valid fields are passed over.
    pub(crate) fn parse(data: &[u8]) -> Option<Self> {
        let (head, body) = match find(data, b"\n\n") {
            Some(i) => (&data[..i], &data[i + 2..]),
            None => (data, &[][..]),
        };
        let mut lines = head.split(|&b| b == b'\n');
        let request_line = std::str::from_utf8(lines.next()?).ok()?;
        let (method, url) = request_line.split_once(' ')?;
        let (scheme, rest) = url.split_once("://")?;
        let (authority, path_and_query) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let mut headers = HeaderMap::new();
        for line in lines {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(line[..colon].trim_ascii()),
                HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
        Some(Self {
            method: Method::from_bytes(method.as_bytes()).ok()?,
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            path_and_query: path_and_query.to_owned(),
            headers,
            body: body.to_vec(),
        })
    }

    pub(crate) fn verify(
        &self,
        key: &VerifyingKey,
        now: i64,
        config: &VerifyConfig,
    ) -> Result<VerifiedSignature, httpsig::SignatureError> {
        httpsig::verify_request(
            &self.method,
            &self.scheme,
            &self.authority,
            &self.path_and_query,
            &self.headers,
            &self.body,
            key,
            now,
            config,
        )
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
