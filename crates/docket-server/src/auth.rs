//! Bearer-token authentication for every route but `/healthz`. Tokens are
//! stored only as SHA-256 digests and compared in constant time.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::AppState;
use crate::error::ApiError;

pub const ADMIN_TOKEN_META: &str = "admin_token_sha256";

/// A fresh random token: `dkt_` and 32 random bytes, base64url.
pub fn new_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(format!(
        "dkt_{}",
        BASE64_URL_SAFE_NO_PAD.encode(bytes.as_ref())
    ))
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The tokens the server accepts.
#[derive(Clone)]
pub struct Auth {
    admin_digest: [u8; 32],
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    pub fn new(admin_digest: [u8; 32]) -> Self {
        Self { admin_digest }
    }

    fn accepts(&self, token: &str) -> bool {
        digest(token).ct_eq(&self.admin_digest).into()
    }
}

/// Who made a request; later roles and agents hang off this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Admin,
}

pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>` header"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be `Bearer <token>`"))?;
    if !state.auth.accepts(token.trim()) {
        return Err(ApiError::unauthorized("token is not valid"));
    }
    req.extensions_mut().insert(Caller::Admin);
    Ok(next.run(req).await)
}
