//! Authentication for every route but `/healthz`: resolves the request's
//! credentials to a [`Caller`] — the first-start bootstrap token, a human's
//! token, an agent's API key or session key (with the human it acts for and,
//! when the agent signed the request, its verified RFC 9421 signature), or
//! HTTP Basic credentials on the login route only. Tokens are stored only
//! as SHA-256 digests and compared in constant time.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::prelude::{BASE64_STANDARD, BASE64_URL_SAFE_NO_PAD};
use docket_core::Timestamp;
use docket_core::identity::{Actor, Event, HumanAssurance, UserId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::AppState;
use crate::error::ApiError;
use crate::httpsig;
use crate::identity::{AuthError, Caller, LoginPassword};

pub const ADMIN_TOKEN_META: &str = "admin_token_sha256";

/// The header an agent names the human it acts for with, when no session
/// credential binds one.
pub const ON_BEHALF_OF: &str = "docket-on-behalf-of";

/// A fresh random bootstrap token: `dkt_` and 32 random bytes, base64url.
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

/// The bootstrap token's digest.
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

/// A token that is not valid (or no longer) is 401; a valid one whose
/// holder may do nothing now (a suspended agent, a disabled user) is 403,
/// so the caller knows a new token will not help.
fn refused(e: AuthError) -> ApiError {
    let status = axum::http::StatusCode::FORBIDDEN;
    match e {
        AuthError::AgentInactive(..) => ApiError::new(status, "agent_inactive", e.to_string()),
        AuthError::UserDisabled(_) => ApiError::new(status, "user_disabled", e.to_string()),
        AuthError::Invalid | AuthError::Dead(..) | AuthError::BootstrapRetired => {
            ApiError::unauthorized(e.to_string())
        }
    }
}

/// Records that a request made with an agent's credentials did not carry a
/// valid signature (the credential was used; the agent did not sign), and
/// refuses it.
async fn reject_signature(
    state: &AppState,
    caller: &Caller,
    method: &axum::http::Method,
    path: &str,
    code: &'static str,
    error: String,
) -> ApiError {
    let Caller::Agent {
        agent,
        project,
        actor,
        ..
    } = caller
    else {
        return ApiError::internal("signature check on a caller that is not an agent");
    };
    let Actor::Agent { credential, .. } = actor else {
        return ApiError::internal("agent caller without agent actor");
    };
    let event = Event::SignatureRejected {
        agent: agent.clone(),
        project: project.clone(),
        credential: credential.clone(),
        method: method.to_string(),
        path: path.chars().take(512).collect(),
        error: error.clone(),
    };
    // Straight to the ledger, not through `Identity::commit`: the registry
    // ignores these, and a flood of them must not hold up registry changes
    // (such as revoking the key that sends them).
    let appended = match docket_store::NewEntry::new(event.entry_type(), &event.to_body(actor)) {
        Ok(entry) => state.ledger.append(vec![entry]).await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = appended {
        return ApiError::from(e);
    }
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        code,
        format!("request signature rejected: {error}"),
    )
}

fn bearer(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    if token.starts_with("dkt_") {
        if !state.auth.accepts(token) {
            return Err(refused(AuthError::Invalid));
        }
        if !state.identity.bootstrap_open() {
            return Err(refused(AuthError::BootstrapRetired));
        }
        return Ok(Caller::Bootstrap);
    }
    state
        .identity
        .authenticate(token, Timestamp::now())
        .map_err(refused)
}

fn basic(req: &Request, encoded: &str) -> Result<(Caller, LoginPassword), ApiError> {
    if req.uri().path() != "/api/v1/login" {
        return Err(ApiError::unauthorized(
            "Basic credentials are accepted only by POST /api/v1/login; send `Authorization: Bearer <token>`",
        ));
    }
    let bad = || ApiError::unauthorized("Basic credentials must be base64 of `user:password`");
    let decoded = Zeroizing::new(BASE64_STANDARD.decode(encoded.trim()).map_err(|_| bad())?);
    let text = std::str::from_utf8(&decoded).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    let user: UserId = user
        .parse()
        .map_err(|_| ApiError::unauthorized("user or password is wrong"))?;
    Ok((
        Caller::Login { user },
        LoginPassword(Zeroizing::new(password.to_owned())),
    ))
}

/// Applies `Docket-On-Behalf-Of` to an agent caller: a session's bound
/// human cannot be replaced; an API key's human is recorded as asserted.
fn on_behalf_of(state: &AppState, headers: &HeaderMap, actor: &mut Actor) -> Result<(), ApiError> {
    let Some(value) = headers.get(ON_BEHALF_OF) else {
        return Ok(());
    };
    let named: UserId = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_header",
                format!("{ON_BEHALF_OF} must be a user id"),
            )
        })?;
    let Actor::Agent {
        human,
        human_assurance,
        ..
    } = actor
    else {
        return Ok(());
    };
    if *human_assurance == HumanAssurance::Session {
        if human.as_ref() != Some(&named) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this session acts for {}; it cannot act for {named}",
                    human.as_ref().map(|h| h.as_str()).unwrap_or("nobody")
                ),
            ));
        }
        return Ok(());
    }
    match state.identity.read().user(&named) {
        Err(_) => {
            return Err(ApiError::bad_request(
                "unknown_user",
                format!("{ON_BEHALF_OF}: no user {named}"),
            ));
        }
        Ok(u) if u.record.disabled => {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "user_disabled",
                format!("{ON_BEHALF_OF}: user {named} is disabled; an agent cannot act for them"),
            ));
        }
        Ok(_) => {}
    }
    *human = Some(named);
    *human_assurance = HumanAssurance::Asserted;
    Ok(())
}

/// Verifies an agent's RFC 9421 signature over the request; a failure is
/// recorded in the ledger (the agent's key was used, its signature did not
/// hold) and refused.
async fn check_signature(
    state: &AppState,
    caller: &mut Caller,
    req: Request,
) -> Result<Request, ApiError> {
    let Caller::Agent { actor, .. } = &*caller else {
        return Ok(req);
    };
    let key = match actor {
        Actor::Agent { did, .. } => did.public_key(),
        _ => return Err(ApiError::internal("agent caller without agent actor")),
    };
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than the server's limit (max_body_bytes)",
            )
        })?;
    let scheme = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v == "https")
        .unwrap_or("http");
    let authority = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let config = httpsig::VerifyConfig {
        max_age_secs: state.identity.config.signature_max_age_secs,
        max_skew_secs: 60,
    };
    let now = Timestamp::now().as_micros() / 1_000_000;
    match httpsig::verify_request(
        &parts.method,
        scheme,
        authority,
        path_and_query,
        &parts.headers,
        &bytes,
        &key,
        now,
        &config,
    ) {
        Ok(sig)
            if parts.headers.contains_key(ON_BEHALF_OF)
                && !sig.components.iter().any(|c| c == ON_BEHALF_OF) =>
        {
            // Otherwise anyone holding the token could swap the human on a
            // request the agent signed.
            Err(ApiError::unauthorized(format!(
                "request signature rejected: it must cover the {ON_BEHALF_OF} header the request sends"
            )))
        }
        Ok(sig)
            if !state
                .identity
                .seen_signatures
                .first_use(&sig, config.max_age_secs, now) =>
        {
            Err(reject_signature(
                state,
                caller,
                &parts.method,
                parts.uri.path(),
                "signature_replayed",
                "replayed: this signature was already accepted once; sign every request anew"
                    .into(),
            )
            .await)
        }
        Ok(sig) => {
            if let Caller::Agent {
                actor: Actor::Agent { signature, .. },
                ..
            } = caller
            {
                *signature = Some(serde_json::to_value(&sig).map_err(ApiError::internal)?);
            }
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        Err(e) => Err(reject_signature(
            state,
            caller,
            &parts.method,
            parts.uri.path(),
            "signature_rejected",
            e.to_string(),
        )
        .await),
    }
}

pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = match (
        req.headers().get(axum::http::header::AUTHORIZATION),
        req.headers().get("x-api-key"),
    ) {
        (Some(h), _) => h
            .to_str()
            .map_err(|_| ApiError::unauthorized("Authorization header is not valid text"))?
            .to_owned(),
        // Anthropic's SDKs send the key this way; it is a bearer token,
        // taken on the provider-compatible routes only.
        (None, Some(_)) if !req.uri().path().starts_with("/v1/") => {
            return Err(ApiError::unauthorized(
                "x-api-key is accepted on the gateway routes (/v1/…) only; send `Authorization: Bearer <token>`",
            ));
        }
        (None, Some(key)) => format!(
            "Bearer {}",
            key.to_str()
                .map_err(|_| ApiError::unauthorized("x-api-key header is not valid text"))?
        ),
        (None, None) => {
            return Err(ApiError::unauthorized(
                "missing `Authorization: Bearer <token>` header",
            ));
        }
    };
    let header = Zeroizing::new(header);
    let mut caller = if let Some(token) = header.strip_prefix("Bearer ") {
        bearer(&state, token.trim())?
    } else if let Some(encoded) = header.strip_prefix("Basic ") {
        let (caller, password) = basic(&req, encoded)?;
        req.extensions_mut().insert(password);
        caller
    } else {
        return Err(ApiError::unauthorized(
            "Authorization header must be `Bearer <token>`",
        ));
    };
    if let Caller::Agent { actor, .. } = &mut caller {
        on_behalf_of(&state, req.headers(), actor)?;
    }
    if httpsig::is_signed(req.headers()) {
        req = check_signature(&state, &mut caller, req).await?;
    } else if let Caller::Agent {
        agent,
        must_sign: true,
        ..
    } = &caller
    {
        let error = format!(
            "unsigned: agent {agent} must sign every request with its key (RFC 9421 `Signature` and `Signature-Input` headers)"
        );
        let (method, path) = (req.method(), req.uri().path());
        return Err(
            reject_signature(&state, &caller, method, path, "signature_required", error).await,
        );
    }
    if let Some(conn) = req.extensions().get::<crate::listener::Connection>() {
        conn.authenticated();
    }
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}
