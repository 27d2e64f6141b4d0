//! The identity service: the registry folded from the ledger at start, every
//! change to it appended to the ledger first and folded in only after the
//! append is durable, and credential resolution for each request.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering as AtomicOrdering};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use docket_core::Timestamp;
use docket_core::identity::event::IDENTITY_TYPES;
use docket_core::identity::registry::{AgentStatus, NewCredential};
use docket_core::identity::{
    Actor, AgentId, CREDENTIAL_ID_LEN, CredentialId, CredentialKind, Event, ProjectId, Registry,
    RegistryError, Role, UserId, parse_token,
};
use docket_store::{Appended, Ledger, NewEntry, Order, Query, StoreError};
use parking_lot::{RwLock, RwLockReadGuard};
use rand::Rng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::config::IdentityConfig;
use crate::error::ApiError;

/// Meta key of the credential last-use map (JSON `{id: micros}`).
const LAST_USED_META: &str = "credential_last_used";
/// Meta key prefix of a user's argon2id password hash (PHC string). Kept
/// out of the ledger: entries reach auditors in evidence packs, and a
/// password hash invites offline guessing.
const PASSWORD_META: &str = "password:";

/// Who made a request, as authentication resolved it.
#[derive(Clone, Debug)]
pub enum Caller {
    /// The first-start admin token, good only until the first user exists.
    Bootstrap,
    Human {
        user: UserId,
        credential: CredentialId,
        roles: Vec<Role>,
    },
    Agent {
        agent: AgentId,
        project: ProjectId,
        /// The actor entries record: DID, credential, task, human, signature.
        actor: Actor,
        kind: CredentialKind,
        /// The agent must sign every request (RFC 9421).
        must_sign: bool,
    },
    /// HTTP Basic credentials on `POST /api/v1/login`, not yet checked; the
    /// password travels separately in [`LoginPassword`].
    Login { user: UserId },
}

/// The password of a login attempt; never printed.
#[derive(Clone)]
pub struct LoginPassword(pub Zeroizing<String>);

impl std::fmt::Debug for LoginPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginPassword(..)")
    }
}

impl Caller {
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Bootstrap => Actor::Bootstrap,
            Caller::Human {
                user, credential, ..
            } => Actor::Human {
                user: user.clone(),
                credential: credential.clone(),
            },
            Caller::Agent { actor, .. } => actor.clone(),
            Caller::Login { user } => Actor::System {
                reason: format!("password login of {user}"),
            },
        }
    }

    pub fn user(&self) -> Option<&UserId> {
        match self {
            Caller::Human { user, .. } => Some(user),
            _ => None,
        }
    }

    pub fn has_role(&self, role: Role) -> bool {
        matches!(self, Caller::Human { roles, .. } if roles.contains(&role))
    }
}

/// Why a token was refused. The message never echoes the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token is not valid")]
    Invalid,
    #[error("credential {0} is {1}")]
    Dead(CredentialId, &'static str),
    #[error("agent {0} is {1}; it can do nothing")]
    AgentInactive(AgentId, &'static str),
    #[error("user {0} is disabled")]
    UserDisabled(UserId),
    #[error("the bootstrap token is retired: the first admin exists")]
    BootstrapRetired,
}

/// A freshly issued credential: the token (shown once) and its record.
pub struct Issued {
    pub token: Zeroizing<String>,
    pub new: NewCredential,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("id", &self.new.id)
            .finish_non_exhaustive()
    }
}

pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random credential of `kind`: `dk?_<16 base32 chars>_<32 random bytes, base64url>`.
pub fn new_credential(
    kind: CredentialKind,
    expires_at: Option<Timestamp>,
    label: Option<String>,
    scope: Option<docket_core::identity::Scope>,
) -> Issued {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rngs::OsRng;
    let id: String = (0..CREDENTIAL_ID_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    let id = CredentialId::try_from(id).expect("generated ids have the credential id shape");
    let mut secret = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(secret.as_mut());
    let token = Zeroizing::new(format!(
        "{}_{id}_{}",
        kind.token_prefix(),
        BASE64_URL_SAFE_NO_PAD.encode(secret.as_ref())
    ));
    Issued {
        new: NewCredential {
            id,
            sha256: sha256_hex(&token),
            scope,
            expires_at,
            label,
        },
        token,
    }
}

pub struct Identity {
    registry: RwLock<Registry>,
    /// Serializes changes: check, append, fold.
    write: tokio::sync::Mutex<()>,
    ledger: Arc<Ledger>,
    /// Last use per credential, in micros; every request writes it, so the
    /// common case takes only a shared lock and an atomic store.
    last_used: RwLock<HashMap<CredentialId, AtomicI64>>,
    last_used_dirty: AtomicBool,
    pub data_classes: BTreeSet<String>,
    pub config: IdentityConfig,
    /// An argon2id hash of nothing anyone knows, checked for unknown users.
    decoy_hash: String,
    /// Caps concurrent argon2 runs (each takes 19 MiB): login floods queue
    /// instead of exhausting memory.
    argon2_turns: Turns,
    /// Agents' request signatures already accepted (replays are refused).
    pub seen_signatures: crate::httpsig::SeenSignatures,
}

/// A counting semaphore for blocking threads.
struct Turns {
    free: parking_lot::Mutex<usize>,
    wake: parking_lot::Condvar,
}

struct Turn<'a>(&'a Turns);

impl Turns {
    fn new(n: usize) -> Self {
        Self {
            free: parking_lot::Mutex::new(n),
            wake: parking_lot::Condvar::new(),
        }
    }

    fn acquire(&self) -> Turn<'_> {
        let mut free = self.free.lock();
        while *free == 0 {
            self.wake.wait(&mut free);
        }
        *free -= 1;
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.wake.notify_one();
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity { .. }")
    }
}

/// Fails closed around an identity entry that cannot be read: skipping an
/// unreadable revocation or suspension would bring a credential or agent
/// back to life, so whatever agent or credential it names is suspended or
/// revoked until a person looks (`docket verify` names the entry). The
/// server still starts: one bad entry must not take every agent down.
fn quarantine(registry: &mut Registry, entry: &docket_core::Entry) {
    use serde_json::Value;
    let body = entry.body_value();
    let reason = format!(
        "identity entry at seq {} cannot be read; quarantined until reviewed",
        entry.seq
    );
    let actor = Actor::System {
        reason: reason.clone(),
    };
    let agent = body
        .get("agent")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<AgentId>().ok());
    if let Some(agent) = agent
        && let Some(project) = registry
            .agents
            .get(&agent)
            .map(|a| a.record.project.clone())
    {
        let event = Event::AgentSuspended {
            agent,
            project,
            reason: reason.clone(),
        };
        registry.apply(entry.seq.0, entry.ts, &actor, &event);
    }
    let credential = match body.get("credential") {
        Some(Value::String(c)) => Some(c.as_str()),
        Some(Value::Object(c)) => c.get("id").and_then(Value::as_str),
        _ => None,
    }
    .and_then(|c| c.parse::<CredentialId>().ok());
    if let Some(credential) = credential
        && registry.credentials.contains_key(&credential)
    {
        let event = Event::CredentialRevoked {
            credential,
            agent: None,
            project: None,
            reason,
        };
        registry.apply(entry.seq.0, entry.ts, &actor, &event);
    }
}

impl Identity {
    /// Folds every identity entry of the ledger into a registry. Blocking:
    /// reads the store.
    pub fn load(ledger: Arc<Ledger>, config: IdentityConfig) -> Result<Self, StoreError> {
        let mut registry = Registry::default();
        let query = Query {
            types: IDENTITY_TYPES.to_vec(),
            order: Order::Asc,
            ..Query::default()
        };
        ledger.scan(query, |entry| {
            match Event::from_body(entry.kind, &entry.body_value()) {
                Ok((event, actor)) => registry.apply(entry.seq.0, entry.ts, &actor, &event),
                Err(e) => {
                    crate::integrity::finding("registry", entry.seq.0, &e.to_string());
                    quarantine(&mut registry, &entry);
                }
            }
            Ok::<_, StoreError>(ControlFlow::Continue(()))
        })?;
        let last_used = match ledger.backend().meta(LAST_USED_META)? {
            Some(json) => serde_json::from_str::<HashMap<CredentialId, i64>>(&json)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, AtomicI64::new(v)))
                .collect(),
            None => HashMap::new(),
        };
        Ok(Self {
            registry: RwLock::new(registry),
            write: tokio::sync::Mutex::new(()),
            ledger,
            last_used: RwLock::new(last_used),
            last_used_dirty: AtomicBool::new(false),
            data_classes: config.data_classes.iter().cloned().collect(),
            config,
            decoy_hash: Argon2::default()
                .hash_password(
                    &rand::random::<[u8; 32]>(),
                    &SaltString::generate(&mut rand_core_06()),
                )
                .map_err(|e| StoreError::Invalid(e.to_string()))?
                .to_string(),
            argon2_turns: Turns::new(4),
            seen_signatures: Default::default(),
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read()
    }

    /// Checks a change against the registry, appends its events as one
    /// transaction, then folds them in. Runs to the end even if the caller
    /// goes away, so the registry never misses an appended event.
    pub async fn commit<F>(
        self: &Arc<Self>,
        actor: Actor,
        plan: F,
    ) -> Result<Vec<(Appended, Event)>, ApiError>
    where
        F: FnOnce(&Registry) -> Result<Vec<Event>, RegistryError> + Send + 'static,
    {
        let this = self.clone();
        tokio::spawn(async move {
            let _turn = this.write.lock().await;
            let events = plan(&this.registry.read()).map_err(ApiError::from)?;
            if events.is_empty() {
                return Ok(Vec::new());
            }
            let entries = events
                .iter()
                .map(|e| NewEntry::new(e.entry_type(), &e.to_body(&actor)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ApiError::from)?;
            let acks = this.ledger.append(entries).await?;
            let mut registry = this.registry.write();
            for (ack, event) in acks.iter().zip(&events) {
                registry.apply(ack.seq.0, ack.ts, &actor, event);
            }
            Ok(acks.into_iter().zip(events).collect())
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Resolves a bearer token to a caller, or says why not.
    pub fn authenticate(&self, token: &str, now: Timestamp) -> Result<Caller, AuthError> {
        let (kind, id) = parse_token(token).ok_or(AuthError::Invalid)?;
        let registry = self.registry.read();
        let cred = registry.credentials.get(&id).ok_or(AuthError::Invalid)?;
        let presented = Sha256::digest(token.as_bytes());
        let stored = hex::decode(&cred.record.sha256).map_err(|_| AuthError::Invalid)?;
        if cred.record.kind != kind || !bool::from(presented.as_slice().ct_eq(&stored)) {
            return Err(AuthError::Invalid);
        }
        if let Some(why) = registry.credential_dead_at(cred, now) {
            return Err(AuthError::Dead(id, why));
        }
        let caller = match (&cred.record.agent, &cred.record.user) {
            (Some(agent_id), _) => {
                let agent = registry.agent(agent_id).map_err(|_| AuthError::Invalid)?;
                if agent.status != AgentStatus::Active {
                    return Err(AuthError::AgentInactive(
                        agent_id.clone(),
                        agent.status.as_str(),
                    ));
                }
                if let Some(h) = &cred.record.human
                    && registry.users.get(h).is_none_or(|u| u.record.disabled)
                {
                    return Err(AuthError::UserDisabled(h.clone()));
                }
                Caller::Agent {
                    agent: agent_id.clone(),
                    project: agent.record.project.clone(),
                    kind,
                    must_sign: agent.record.require_signature,
                    actor: Actor::Agent {
                        agent: agent_id.clone(),
                        did: agent.record.did.clone(),
                        credential: id.clone(),
                        task: cred.record.task.clone(),
                        human: cred.record.human.clone(),
                        human_assurance: cred
                            .record
                            .human_assurance
                            .unwrap_or(docket_core::identity::HumanAssurance::None),
                        signature: None,
                    },
                }
            }
            (None, Some(user_id)) => {
                let user = registry.user(user_id).map_err(|_| AuthError::Invalid)?;
                if user.record.disabled {
                    return Err(AuthError::UserDisabled(user_id.clone()));
                }
                Caller::Human {
                    user: user_id.clone(),
                    credential: id.clone(),
                    roles: user.record.roles.clone(),
                }
            }
            (None, None) => return Err(AuthError::Invalid),
        };
        drop(registry);
        self.touch(id, now);
        Ok(caller)
    }

    /// Whether the bootstrap token may still be used.
    pub fn bootstrap_open(&self) -> bool {
        self.registry.read().users.is_empty()
    }

    fn touch(&self, id: CredentialId, now: Timestamp) {
        self.last_used_dirty.store(true, AtomicOrdering::Relaxed);
        if let Some(t) = self.last_used.read().get(&id) {
            t.fetch_max(now.as_micros(), AtomicOrdering::Relaxed);
            return;
        }
        self.last_used
            .write()
            .entry(id)
            .or_insert_with(|| AtomicI64::new(0))
            .fetch_max(now.as_micros(), AtomicOrdering::Relaxed);
    }

    pub fn last_used(&self, id: &CredentialId) -> Option<Timestamp> {
        self.last_used
            .read()
            .get(id)
            .map(|t| Timestamp::from_micros(t.load(AtomicOrdering::Relaxed)))
    }

    /// Writes the last-use map if it changed. Blocking.
    fn flush_last_used(&self) -> Result<(), StoreError> {
        if !self.last_used_dirty.swap(false, AtomicOrdering::Relaxed) {
            return Ok(());
        }
        let json = {
            let last = self.last_used.read();
            let map: HashMap<&CredentialId, i64> = last
                .iter()
                .map(|(k, v)| (k, v.load(AtomicOrdering::Relaxed)))
                .collect();
            serde_json::to_string(&map).map_err(|e| StoreError::Invalid(e.to_string()))?
        };
        let saved = self.ledger.backend().set_meta(LAST_USED_META, &json);
        if saved.is_err() {
            self.last_used_dirty.store(true, AtomicOrdering::Relaxed);
        }
        saved
    }

    /// Stores a user's password as an argon2id hash. Blocking (argon2 is slow on purpose).
    pub fn set_password(&self, user: &UserId, password: &str) -> Result<(), ApiError> {
        password_rules(password)?;
        let salt = SaltString::generate(&mut rand_core_06());
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(ApiError::internal)?
            .to_string();
        self.ledger
            .backend()
            .set_meta(&format!("{PASSWORD_META}{user}"), &hash)
            .map_err(ApiError::from)
    }

    /// Removes any stored password (a user created without one must not
    /// inherit a hash left by an earlier failed attempt). Blocking.
    pub fn clear_password(&self, user: &UserId) -> Result<(), ApiError> {
        self.ledger
            .backend()
            .set_meta(&format!("{PASSWORD_META}{user}"), "")
            .map_err(ApiError::from)
    }

    /// Checks a user's password. Blocking. Unknown users and wrong
    /// passwords get the same answer.
    pub fn check_password(&self, user: &UserId, password: &str) -> Result<bool, ApiError> {
        let stored = self
            .ledger
            .backend()
            .meta(&format!("{PASSWORD_META}{user}"))
            .map_err(ApiError::from)?;
        // Unknown users and users without a password cost the same argon2
        // run as everyone else, so timing does not tell which users exist.
        let (stored, real) = match stored.filter(|s| !s.is_empty()) {
            Some(s) => (s, true),
            None => (self.decoy_hash.clone(), false),
        };
        let parsed = PasswordHash::new(&stored).map_err(ApiError::internal)?;
        let _turn = self.argon2_turns.acquire();
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && real)
    }
}

fn rand_core_06() -> argon2::password_hash::rand_core::OsRng {
    argon2::password_hash::rand_core::OsRng
}

/// The password rules: 12 to 256 characters.
pub fn password_rules(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if !(12..=256).contains(&n) {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("passwords must be 12 to 256 characters; this one has {n}"),
        ));
    }
    Ok(())
}

/// Background upkeep: records a revocation for every credential whose
/// expiry or rotation grace has passed, and saves credential last-use times.
pub fn spawn_upkeep(
    identity: Arc<Identity>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis(identity.config.expiry_sweep_ms.max(10));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            let actor = Actor::System {
                reason: "credential expiry".into(),
            };
            let due = identity.read().plan_expire(Timestamp::now());
            if !due.is_empty()
                && let Err(e) = identity
                    .commit(actor, |r| Ok(r.plan_expire(Timestamp::now())))
                    .await
            {
                tracing::warn!(
                    error = e.message,
                    "recording credential expiry failed; will retry"
                );
            }
            let id = identity.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || id.flush_last_used()).await {
                tracing::warn!(error = %e, "saving credential last-use times failed");
            }
        }
        let id = identity.clone();
        let _ = tokio::task::spawn_blocking(move || id.flush_last_used()).await;
    })
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use axum::http::StatusCode;
        match e {
            RegistryError::NotFound(m) => ApiError::not_found(m),
            RegistryError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            RegistryError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            RegistryError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            RegistryError::Rule(rule, m) => ApiError::new(StatusCode::FORBIDDEN, rule.code(), m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let issued = new_credential(CredentialKind::ApiKey, None, None, None);
        let secret_tail = issued.token[issued.token.len() - 20..].to_owned();
        let shown = format!("{issued:?}");
        assert!(!shown.contains(&secret_tail), "{shown}");
        let password = LoginPassword(Zeroizing::new("hunter2-hunter2".into()));
        assert!(!format!("{password:?}").contains("hunter2"));
        let token = crate::auth::new_token();
        let auth = crate::auth::Auth::new(crate::auth::digest(&token));
        assert!(!format!("{auth:?}").contains(&token[4..]));
    }

    #[test]
    fn tokens_have_their_kind_prefix_and_verify_against_their_digest() {
        let issued = new_credential(CredentialKind::Session, None, None, None);
        assert!(issued.token.starts_with("dks_"));
        assert_eq!(
            parse_token(&issued.token),
            Some((CredentialKind::Session, issued.new.id.clone()))
        );
        assert_eq!(sha256_hex(&issued.token), issued.new.sha256);
        let other = new_credential(CredentialKind::Session, None, None, None);
        assert_ne!(other.token, issued.token);
    }
}
