//! Identity routes: bootstrap and login, users, projects, agents and their
//! change requests, credentials and sessions, access reviews. Every change
//! goes through [`Identity::commit`], so it is a ledger entry before it
//! takes effect.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use docket_core::Timestamp;
use docket_core::identity::event::{
    AgentRecord, ProjectRecord, ReviewDecision, ReviewSubject, UserRecord,
};
use docket_core::identity::registry::{Agent, Credential, UserPatch};
use docket_core::identity::{
    Actor, AgentId, CredentialId, CredentialKind, Did, Event, KycStatus, ProjectId, Registry, Role,
    Scope, UserId, parse_public_key,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{blocking, written};
use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::identity::{Caller, Identity, LoginPassword, new_credential};

type Caller_ = axum::Extension<Caller>;

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| ApiError::bad_request("invalid_request", format!("{what}: {e}")))
}

fn human(caller: &Caller) -> Result<&UserId, ApiError> {
    caller.user().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only a human may do this",
        )
    })
}

/// Longest lifetime or grace any credential may ask for: ten years.
const MAX_LIFETIME_SECS: u64 = 10 * 366 * 86_400;

fn expiry(secs: Option<u64>, max: Option<u64>) -> Result<Option<Timestamp>, ApiError> {
    let Some(secs) = secs else { return Ok(None) };
    let max = max.unwrap_or(MAX_LIFETIME_SECS).min(MAX_LIFETIME_SECS);
    if secs == 0 || secs > max {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("lifetime must be 1 to {max} seconds, got {secs}"),
        ));
    }
    let micros = i64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000))
        .and_then(|m| Timestamp::now().as_micros().checked_add(m))
        .ok_or_else(|| ApiError::bad_request("invalid_request", "lifetime is too long"))?;
    Ok(Some(Timestamp::from_micros(micros)))
}

// ---- views --------------------------------------------------------------

fn user_view(r: &Registry, id: &UserId) -> Value {
    let Some(u) = r.users.get(id) else {
        return Value::Null;
    };
    let projects: Vec<&ProjectId> = r
        .projects
        .values()
        .filter(|p| p.members.contains(id))
        .map(|p| &p.id)
        .collect();
    json!({
        "id": u.record.id, "name": u.record.name, "email": u.record.email,
        "roles": u.record.roles, "disabled": u.record.disabled, "kyc": u.record.kyc,
        "projects": projects, "created_at": u.created_at,
    })
}

fn credential_view(identity: &Identity, r: &Registry, c: &Credential, now: Timestamp) -> Value {
    json!({
        "id": c.record.id, "kind": c.record.kind, "prefix": c.record.prefix,
        "agent": c.record.agent, "user": c.record.user, "scope": c.record.scope,
        "task": c.record.task, "human": c.record.human, "human_assurance": c.record.human_assurance,
        "label": c.record.label, "expires_at": c.record.expires_at,
        "issued_at": c.issued_at, "issued_by": c.issued_by,
        "grace_until": c.grace_until,
        "revoked_at": c.revoked.as_ref().map(|r| r.0),
        "revoked_reason": c.revoked.as_ref().map(|r| &r.1),
        "status": r.credential_dead_at(c, now).unwrap_or("live"),
        "last_used": identity.last_used(&c.record.id),
    })
}

fn agent_view(identity: &Identity, r: &Registry, a: &Agent, now: Timestamp) -> Value {
    let mut creds: Vec<&Credential> = r
        .credentials
        .values()
        .filter(|c| c.record.agent.as_ref() == Some(&a.record.id))
        .collect();
    creds.sort_by_key(|c| c.issued_at);
    json!({
        "id": a.record.id, "name": a.record.name, "owner": a.record.owner,
        "project": a.record.project, "purpose": a.record.purpose, "scope": a.record.scope,
        "did": a.record.did, "require_signature": a.record.require_signature,
        "status": a.status.as_str(), "registered_at": a.registered_at,
        "request": a.request,
        "credentials": creds.iter().map(|c| credential_view(identity, r, c, now)).collect::<Vec<_>>(),
    })
}

/// Whether `caller` may see things of `project` ([`Registry::sees_project`]).
fn sees_project(r: &Registry, caller: &Caller, project: &ProjectId) -> bool {
    caller.user().is_some_and(|u| r.sees_project(u, project))
}

/// Policy changes name no project: every human who reads the registry sees them.
fn sees_change(r: &Registry, caller: &Caller, project: Option<&ProjectId>) -> bool {
    match project {
        Some(p) => sees_project(r, caller, p),
        None => matches!(caller, Caller::Human { .. }),
    }
}

// ---- bootstrap, login, me -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    id: String,
    name: String,
    email: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    password: Option<String>,
}

impl NewUser {
    fn record(&self, roles: Vec<Role>) -> Result<UserRecord, ApiError> {
        Ok(UserRecord {
            id: parse("id", &self.id)?,
            name: self.name.clone(),
            email: self.email.clone(),
            roles,
            disabled: false,
            kyc: Default::default(),
        })
    }
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn roles(list: &[String]) -> Result<Vec<Role>, ApiError> {
    let mut roles = list
        .iter()
        .map(|r| parse::<Role>("roles", r))
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// Sets a password first (if any), so a user never exists with a password
/// that failed to save. A leftover hash for a user whose creation then
/// failed is harmless: there is no such user to log in as.
async fn save_password(
    state: &AppState,
    user: &UserId,
    password: Option<String>,
) -> Result<(), ApiError> {
    if let Some(password) = password {
        let identity = state.identity.clone();
        let user = user.clone();
        let password = zeroize::Zeroizing::new(password);
        blocking(move || identity.set_password(&user, &password)).await?;
    }
    Ok(())
}

/// `POST /api/v1/bootstrap`: with the first-start token, creates the first
/// admin and returns their personal token. The bootstrap token is then retired.
pub async fn bootstrap(
    State(state): State<AppState>,
    ApiJson(mut req): ApiJson<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    let record = req.record(vec![Role::Admin])?;
    let id = record.id.clone();
    if !state.identity.bootstrap_open() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the first admin exists already",
        ));
    }
    let password = req.password.take();
    if let Some(p) = &password {
        crate::identity::password_rules(p)?;
    }
    let issued = new_credential(
        CredentialKind::Personal,
        None,
        Some("bootstrap".into()),
        None,
    );
    let new = issued.new.clone();
    let uid = id.clone();
    let acks = state
        .identity
        .commit(Actor::Bootstrap, move |r| {
            let mut events = r.plan_bootstrap(record)?;
            // The token is planned against the registry as it will be.
            let mut after = r.clone();
            for e in &events {
                after.apply(0, Timestamp::now(), &Actor::Bootstrap, e);
            }
            events.extend(after.plan_personal(None, &uid, new)?);
            Ok(events)
        })
        .await?;
    save_password(&state, &id, password).await?;
    let view = user_view(&state.identity.read(), &id);
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"user": view, "token": issued.token.as_str(), "credential": issued.new.id, "entries": written(&acks)}),
        ),
    ))
}

/// `POST /api/v1/login` with HTTP Basic `user:password`: a personal token
/// that expires after `identity.login_ttl_secs`.
pub async fn login(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    axum::Extension(password): axum::Extension<LoginPassword>,
) -> Result<impl IntoResponse, ApiError> {
    let Caller::Login { user } = caller else {
        return Err(ApiError::unauthorized("send HTTP Basic credentials"));
    };
    let identity = state.identity.clone();
    let u = user.clone();
    let ok = blocking(move || identity.check_password(&u, &password.0)).await?;
    let active = state
        .identity
        .read()
        .user(&user)
        .is_ok_and(|u| !u.record.disabled);
    if !ok || !active {
        return Err(ApiError::unauthorized("user or password is wrong"));
    }
    let expires = expiry(Some(state.identity.config.login_ttl_secs), None)?;
    let issued = new_credential(
        CredentialKind::Personal,
        expires,
        Some("login".into()),
        None,
    );
    let actor = Actor::Human {
        user: user.clone(),
        credential: issued.new.id.clone(),
    };
    let new = issued.new.clone();
    let u = user.clone();
    let acks = state
        .identity
        .commit(actor, move |r| r.plan_personal(Some(&u), &u, new))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"user": user, "token": issued.token.as_str(), "credential": issued.new.id, "expires_at": expires, "entries": written(&acks)}),
        ),
    ))
}

/// `GET /api/v1/me`: who the server thinks the caller is.
pub async fn me(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
) -> Result<impl IntoResponse, ApiError> {
    let r = state.identity.read();
    let now = Timestamp::now();
    Ok(Json(match &caller {
        Caller::Human {
            user, credential, ..
        } => {
            json!({"kind": "human", "user": user_view(&r, user), "credential": credential})
        }
        Caller::Agent { agent, actor, .. } => {
            let a = r.agent(agent)?;
            let Actor::Agent { credential, .. } = actor else {
                return Err(ApiError::internal("agent caller without agent actor"));
            };
            let c = r.credential(credential)?;
            json!({
                "kind": "agent", "actor": actor, "agent": agent_view(&state.identity, &r, a, now),
                "effective_scope": r.effective_scope(a, c),
            })
        }
        Caller::Bootstrap | Caller::Login { .. } => {
            return Err(ApiError::unauthorized("log in first"));
        }
    }))
}

// ---- users ----------------------------------------------------------------

/// `GET /api/v1/users`: developers see themselves and their projects'
/// members; the other roles see everyone.
pub async fn list_users(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
) -> Result<impl IntoResponse, ApiError> {
    let me = human(&caller)?;
    let r = state.identity.read();
    let users: Vec<Value> = r
        .users
        .keys()
        .filter(|id| r.sees_user(me, id))
        .map(|id| user_view(&r, id))
        .collect();
    Ok(Json(json!({ "users": users })))
}

pub async fn get_user(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: UserId = parse("user id", &id)?;
    let me = human(&caller)?;
    let r = state.identity.read();
    r.user(&id)?;
    if !r.sees_user(me, &id) {
        // As if absent: a developer learns nothing of users outside their projects.
        return Err(ApiError::not_found(format!("no user {id}")));
    }
    Ok(Json(user_view(&r, &id)))
}

pub async fn create_user(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(mut req): ApiJson<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    let record = req.record(roles(&req.roles)?)?;
    let id = record.id.clone();
    let password = req.password.take();
    if let Some(p) = &password {
        crate::identity::password_rules(p)?;
    }
    let acks = state
        .identity
        .commit(caller.actor(), move |r| r.plan_create_user(record))
        .await?;
    save_password(&state, &id, password).await?;
    let view = user_view(&state.identity.read(), &id);
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": view, "entries": written(&acks)})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    name: Option<String>,
    email: Option<String>,
    roles: Option<Vec<String>>,
    disabled: Option<bool>,
}

pub async fn update_user(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PatchUser>,
) -> Result<impl IntoResponse, ApiError> {
    let id: UserId = parse("user id", &id)?;
    let actor_user = human(&caller)?.clone();
    let patch = UserPatch {
        name: req.name,
        email: req.email,
        roles: req.roles.as_deref().map(roles).transpose()?,
        disabled: req.disabled,
    };
    let target = id.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_update_user(&actor_user, &target, patch)
        })
        .await?;
    let view = user_view(&state.identity.read(), &id);
    Ok(Json(json!({"user": view, "entries": written(&acks)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KycRequest {
    status: KycStatus,
    method: Option<String>,
}

pub async fn set_kyc(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<KycRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id: UserId = parse("user id", &id)?;
    let actor_user = human(&caller)?.clone();
    let target = id.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_kyc(
                &actor_user,
                &target,
                req.status,
                req.method,
                Timestamp::now(),
            )
        })
        .await?;
    let view = user_view(&state.identity.read(), &id);
    Ok(Json(json!({"user": view, "entries": written(&acks)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    password: String,
}

/// `POST /api/v1/users/{id}/password`: the user themselves or an admin.
pub async fn set_password(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PasswordRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id: UserId = parse("user id", &id)?;
    let me = human(&caller)?;
    if me != &id && !caller.has_role(Role::Admin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the user or an admin may set a password",
        ));
    }
    crate::identity::password_rules(&req.password)?;
    let target = id.clone();
    // Recorded (without the hash): a reset by an admin must be visible.
    state
        .identity
        .commit(caller.actor(), move |r| {
            Ok(vec![Event::UserUpdated {
                user: r.user(&target)?.record.clone(),
                changed: vec!["password".into()],
            }])
        })
        .await?;
    save_password(&state, &id, Some(req.password)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    label: Option<String>,
    expires_in_secs: Option<u64>,
}

/// `POST /api/v1/users/{id}/tokens`: a personal token, shown once.
pub async fn issue_personal(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id: UserId = parse("user id", &id)?;
    let me = human(&caller)?.clone();
    let issued = new_credential(
        CredentialKind::Personal,
        expiry(req.expires_in_secs, None)?,
        req.label,
        None,
    );
    let new = issued.new.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_personal(Some(&me), &id, new)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"token": issued.token.as_str(), "credential": issued.new.id, "expires_at": issued.new.expires_at, "entries": written(&acks)}),
        ),
    ))
}

// ---- projects ---------------------------------------------------------------

pub async fn list_projects(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
) -> impl IntoResponse {
    let r = state.identity.read();
    let projects: Vec<&ProjectRecord> = r
        .projects
        .values()
        .filter(|p| sees_project(&r, &caller, &p.id))
        .collect();
    Json(json!({ "projects": projects }))
}

pub async fn get_project(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: ProjectId = parse("project id", &id)?;
    let r = state.identity.read();
    let p = r.project(&id)?;
    if !sees_project(&r, &caller, &id) {
        return Err(ApiError::not_found(format!("no project {id}")));
    }
    Ok(Json(serde_json::to_value(p).map_err(ApiError::internal)?))
}

pub async fn create_project(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(project): ApiJson<ProjectRecord>,
) -> Result<impl IntoResponse, ApiError> {
    let identity = state.identity.clone();
    let p = project.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_create_project(p, &identity.data_classes)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"project": project, "entries": written(&acks)})),
    ))
}

/// `PUT /api/v1/projects/{id}`: replaces the project's name, members and rules.
pub async fn update_project(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(project): ApiJson<ProjectRecord>,
) -> Result<impl IntoResponse, ApiError> {
    let id: ProjectId = parse("project id", &id)?;
    if project.id != id {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("body id {} does not match the path's {id}", project.id),
        ));
    }
    let identity = state.identity.clone();
    let p = project.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_update_project(p, &identity.data_classes)
        })
        .await?;
    Ok(Json(json!({"project": project, "entries": written(&acks)})))
}

// ---- agents and change requests ----------------------------------------------

pub async fn list_agents(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
) -> impl IntoResponse {
    let r = state.identity.read();
    let now = Timestamp::now();
    let agents: Vec<Value> = r
        .agents
        .values()
        .filter(|a| sees_project(&r, &caller, &a.record.project))
        .map(|a| agent_view(&state.identity, &r, a, now))
        .collect();
    Json(json!({ "agents": agents }))
}

pub async fn get_agent(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: AgentId = parse("agent id", &id)?;
    let r = state.identity.read();
    let a = r.agent(&id)?;
    if !sees_project(&r, &caller, &a.record.project) {
        return Err(ApiError::not_found(format!("no agent {id}")));
    }
    Ok(Json(agent_view(&state.identity, &r, a, Timestamp::now())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    id: String,
    name: String,
    project: String,
    purpose: String,
    /// Defaults to the requester.
    owner: Option<String>,
    #[serde(default)]
    scope: Scope,
    /// The agent's Ed25519 public key (did:key, base64 or hex); when absent
    /// Docket generates a key pair and returns the private key once.
    public_key: Option<String>,
    /// Refuse the agent's unsigned requests (RFC 9421).
    #[serde(default)]
    require_signature: bool,
}

/// `POST /api/v1/agents`: asks for an agent's registration; another human approves.
pub async fn request_agent(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(req): ApiJson<AgentRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let me = human(&caller)?.clone();
    let (key, secret) = match &req.public_key {
        Some(k) => (
            parse_public_key(k)
                .map_err(|e| ApiError::bad_request("invalid_key", format!("public_key: {e}")))?,
            None,
        ),
        None => {
            let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            (
                signing.verifying_key(),
                Some(zeroize::Zeroizing::new(base64::Engine::encode(
                    &base64::prelude::BASE64_STANDARD,
                    signing.to_bytes(),
                ))),
            )
        }
    };
    let record = AgentRecord {
        id: parse("id", &req.id)?,
        name: req.name,
        owner: match &req.owner {
            Some(o) => parse("owner", o)?,
            None => me.clone(),
        },
        project: parse("project", &req.project)?,
        purpose: req.purpose,
        scope: req.scope,
        did: Did::from_key(&key),
        system_prompt_sha256: None,
        require_signature: req.require_signature,
    };
    let identity = state.identity.clone();
    let rec = record.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_request_agent(&me, rec, &identity.data_classes)
        })
        .await?;
    let request = acks.first().map(|(a, _)| a.seq.0);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "request": request, "status": "pending", "agent": record,
            "private_key": secret.as_ref().map(|s| s.as_str()),
            "entries": written(&acks),
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    reason: String,
}

pub async fn request_retire(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<impl IntoResponse, ApiError> {
    let id: AgentId = parse("agent id", &id)?;
    let me = human(&caller)?.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_request_retire(&me, &id, req.reason)
        })
        .await?;
    let request = acks.first().map(|(a, _)| a.seq.0);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"request": request, "status": "pending", "entries": written(&acks)})),
    ))
}

pub async fn suspend_agent(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<impl IntoResponse, ApiError> {
    let id: AgentId = parse("agent id", &id)?;
    let me = human(&caller)?.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_suspend(&me, &id, req.reason)
        })
        .await?;
    Ok(Json(
        json!({"status": "suspended", "entries": written(&acks)}),
    ))
}

pub async fn resume_agent(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<impl IntoResponse, ApiError> {
    let id: AgentId = parse("agent id", &id)?;
    let acks = state
        .identity
        .commit(caller.actor(), move |r| r.plan_resume(&id, req.reason))
        .await?;
    Ok(Json(json!({"status": "active", "entries": written(&acks)})))
}

fn change_view(c: &docket_core::identity::registry::Change) -> Value {
    use docket_core::identity::registry::ChangeStatus;
    let (status, by, reason) = match &c.status {
        ChangeStatus::Pending => ("pending", None, None),
        ChangeStatus::Approved { by, .. } => ("approved", Some(by), None),
        ChangeStatus::Rejected { by, reason } => ("rejected", Some(by), Some(reason)),
    };
    json!({
        "seq": c.seq, "change": c.request.name(), "agent": c.agent, "project": c.project,
        "requested_by": c.requested_by, "requested_at": c.requested_at, "request": c.request,
        "description": c.info.description, "rollback_plan": c.info.rollback_plan,
        "evidence": c.info.evidence,
        "status": status, "decided_by": by, "reason": reason,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeFilter {
    status: Option<String>,
}

pub async fn list_changes(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiQuery(f): ApiQuery<ChangeFilter>,
) -> impl IntoResponse {
    let r = state.identity.read();
    let changes: Vec<Value> = r
        .changes
        .values()
        .filter(|c| sees_change(&r, &caller, c.project.as_ref()))
        .map(change_view)
        .filter(|v| f.status.as_deref().is_none_or(|s| v["status"] == s))
        .collect();
    Json(json!({ "changes": changes }))
}

pub async fn get_change(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(seq): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let seq = super::parse_u64("seq", &seq)?;
    let r = state.identity.read();
    let c = r.change(seq)?;
    if !sees_change(&r, &caller, c.project.as_ref()) {
        return Err(ApiError::not_found(format!(
            "no change request at seq {seq}"
        )));
    }
    Ok(Json(change_view(c)))
}

pub async fn approve_change(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(seq): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let seq = super::parse_u64("seq", &seq)?;
    let me = human(&caller)?.clone();
    // A policy version's own tests run again just before it takes effect.
    let tests = super::governance::activation_tests(&state, seq)?;
    let verified = state.identity.config.require_verified_approvers;
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            if verified {
                r.check_verified_approval(&me, seq)?;
            }
            r.plan_approve(&me, seq, Timestamp::now(), tests)
        })
        .await?;
    // Compile the new policy now rather than on the next agent request.
    state.governance.policy()?;
    let view = change_view(state.identity.read().change(seq)?);
    Ok(Json(json!({"change": view, "entries": written(&acks)})))
}

pub async fn reject_change(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(seq): ApiPath<String>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<impl IntoResponse, ApiError> {
    let seq = super::parse_u64("seq", &seq)?;
    let acks = state
        .identity
        .commit(caller.actor(), move |r| r.plan_reject(seq, req.reason))
        .await?;
    let view = change_view(state.identity.read().change(seq)?);
    Ok(Json(json!({"change": view, "entries": written(&acks)})))
}

// ---- credentials and sessions ------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    label: Option<String>,
    expires_in_secs: Option<u64>,
    scope: Option<Scope>,
}

/// `POST /api/v1/agents/{id}/credentials`: an API key, shown once.
pub async fn issue_api_key(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<KeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id: AgentId = parse("agent id", &id)?;
    let me = human(&caller)?.clone();
    let issued = new_credential(
        CredentialKind::ApiKey,
        expiry(req.expires_in_secs, None)?,
        req.label,
        req.scope,
    );
    let new = issued.new.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| r.plan_api_key(&me, &id, new))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"token": issued.token.as_str(), "credential": issued.new.id, "prefix": docket_core::identity::token_prefix(CredentialKind::ApiKey, &issued.new.id), "expires_at": issued.new.expires_at, "entries": written(&acks)}),
        ),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    task: String,
    ttl_secs: Option<u64>,
    scope: Option<Scope>,
    /// Agents only: the human they say they act for (recorded as asserted).
    on_behalf_of: Option<String>,
}

async fn start_session(
    state: &AppState,
    caller: &Caller,
    agent: AgentId,
    req: SessionRequest,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let cfg = &state.identity.config;
    let ttl = req.ttl_secs.unwrap_or(cfg.session_default_ttl_secs);
    let expires = expiry(Some(ttl), Some(cfg.session_max_ttl_secs))?;
    let asserted = req
        .on_behalf_of
        .as_deref()
        .map(|h| parse::<UserId>("on_behalf_of", h))
        .transpose()?;
    let issued = new_credential(CredentialKind::Session, expires, None, req.scope);
    let new = issued.new.clone();
    let actor = caller.actor();
    let task = req.task;
    let acks = state
        .identity
        .commit(actor.clone(), move |r| {
            r.plan_session(&actor, &agent, task, asserted, new)
        })
        .await?;
    let c = state
        .identity
        .read()
        .credential(&issued.new.id)?
        .record
        .clone();
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"token": issued.token.as_str(), "credential": issued.new.id, "task": c.task, "human": c.human, "human_assurance": c.human_assurance, "expires_at": c.expires_at, "entries": written(&acks)}),
        ),
    ))
}

/// `POST /api/v1/agents/{id}/sessions`: a human starts a task with an
/// agent; the session key binds the agent to that human and task.
pub async fn human_session(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id: AgentId = parse("agent id", &id)?;
    start_session(&state, &caller, id, req).await
}

/// `POST /api/v1/sessions`: an agent starts its own session (the human, if
/// named, is only asserted).
pub async fn agent_session(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let Caller::Agent { agent, kind, .. } = &caller else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an agent may do this",
        ));
    };
    if *kind != CredentialKind::ApiKey {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "start sessions with the agent's API key, not a session key",
        ));
    }
    let agent = agent.clone();
    start_session(&state, &caller, agent, req).await
}

/// `POST /api/v1/sessions/end`: the task is over; the session key stops working.
pub async fn end_session(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
) -> Result<impl IntoResponse, ApiError> {
    let Caller::Agent {
        actor: Actor::Agent { credential, .. },
        kind: CredentialKind::Session,
        ..
    } = &caller
    else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "call this with the session key whose task ended",
        ));
    };
    let id = credential.clone();
    let actor = caller.actor();
    let acks = state
        .identity
        .commit(actor.clone(), move |r| {
            r.plan_revoke(&actor, &id, "task ended".into())
        })
        .await?;
    Ok(Json(json!({"status": "ended", "entries": written(&acks)})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialFilter {
    agent: Option<String>,
    user: Option<String>,
}

pub async fn list_credentials(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiQuery(f): ApiQuery<CredentialFilter>,
) -> Result<impl IntoResponse, ApiError> {
    let agent = f
        .agent
        .as_deref()
        .map(|a| parse::<AgentId>("agent", a))
        .transpose()?;
    let user = f
        .user
        .as_deref()
        .map(|u| parse::<UserId>("user", u))
        .transpose()?;
    let r = state.identity.read();
    let now = Timestamp::now();
    let me = caller.user();
    let sees_all = me.is_some_and(|u| r.sees_all_projects(u));
    let mut creds: Vec<&Credential> = r
        .credentials
        .values()
        .filter(|c| {
            agent
                .as_ref()
                .is_none_or(|a| c.record.agent.as_ref() == Some(a))
        })
        .filter(|c| {
            user.as_ref()
                .is_none_or(|u| c.record.user.as_ref() == Some(u))
        })
        .filter(|c| {
            sees_all
                || c.record.user.as_ref() == me
                || c.record
                    .agent
                    .as_ref()
                    .and_then(|a| r.agents.get(a))
                    .is_some_and(|a| sees_project(&r, &caller, &a.record.project))
        })
        .collect();
    creds.sort_by_key(|c| c.issued_at);
    let out: Vec<Value> = creds
        .iter()
        .map(|c| credential_view(&state.identity, &r, c, now))
        .collect();
    Ok(Json(json!({ "credentials": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    grace_secs: Option<u64>,
    expires_in_secs: Option<u64>,
    label: Option<String>,
}

/// `POST /api/v1/credentials/{id}/rotate`: a new key now; the old one works
/// for the grace period, then is revoked.
pub async fn rotate(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id: CredentialId = parse("credential id", &id)?;
    let kind = state.identity.read().credential(&id)?.record.kind;
    let grace = req
        .grace_secs
        .unwrap_or(state.identity.config.rotation_grace_secs);
    let grace_until = expiry(Some(grace), None)
        .map_err(|e| {
            ApiError::bad_request("invalid_request", format!("grace_secs: {}", e.message))
        })?
        .ok_or_else(|| ApiError::internal("grace without an end"))?;
    let issued = new_credential(kind, expiry(req.expires_in_secs, None)?, req.label, None);
    let new = issued.new.clone();
    let actor = caller.actor();
    let old = id.clone();
    let acks = state
        .identity
        .commit(actor.clone(), move |r| {
            r.plan_rotate(&actor, &old, new, grace_until, Timestamp::now())
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"token": issued.token.as_str(), "credential": issued.new.id, "replaces": id, "old_valid_until": grace_until, "entries": written(&acks)}),
        ),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<impl IntoResponse, ApiError> {
    let id: CredentialId = parse("credential id", &id)?;
    let actor = caller.actor();
    let acks = state
        .identity
        .commit(actor.clone(), move |r| {
            r.plan_revoke(&actor, &id, req.reason)
        })
        .await?;
    Ok(Json(
        json!({"status": "revoked", "entries": written(&acks)}),
    ))
}

// ---- access reviews --------------------------------------------------------------

fn review_view(r: &docket_core::identity::registry::Review) -> Value {
    json!({
        "seq": r.seq, "opened_at": r.opened_at, "opened_by": r.opened_by,
        "status": if r.completed_at.is_some() { "completed" } else { "open" },
        "completed_at": r.completed_at, "items": r.items, "humans": r.humans,
        "decisions": r.decision_views(),
    })
}

pub async fn list_reviews(State(state): State<AppState>) -> impl IntoResponse {
    let r = state.identity.read();
    let reviews: Vec<Value> = r.reviews.values().map(review_view).collect();
    Json(json!({ "access_reviews": reviews }))
}

pub async fn get_review(
    State(state): State<AppState>,
    ApiPath(seq): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let seq = super::parse_u64("seq", &seq)?;
    Ok(Json(review_view(state.identity.read().review(seq)?)))
}

/// The body of an access-review request that takes no parameters: `{}`.
/// Read strictly like every other body, so a member the client believes it
/// is setting (a typo, an option this version does not have) is refused by
/// name rather than ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

pub async fn open_review(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(NoParams {}): ApiJson<NoParams>,
) -> Result<impl IntoResponse, ApiError> {
    let identity: Arc<Identity> = state.identity.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_open_review(Timestamp::now(), |id| identity.last_used(id))
        })
        .await?;
    let seq = acks
        .first()
        .map(|(a, _)| a.seq.0)
        .ok_or_else(|| ApiError::internal("no review entry"))?;
    let view = review_view(state.identity.read().review(seq)?);
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The agent decided on, or
    agent: Option<String>,
    /// the human decided on: exactly one of the two.
    user: Option<String>,
    decision: ReviewDecision,
    note: Option<String>,
}

pub async fn decide_review(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(seq): ApiPath<String>,
    ApiJson(req): ApiJson<DecisionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let seq = super::parse_u64("seq", &seq)?;
    let subject = match (&req.agent, &req.user) {
        (Some(a), None) => ReviewSubject::Agent(parse("agent", a)?),
        (None, Some(u)) => ReviewSubject::User(parse("user", u)?),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "name exactly one of `agent` or `user`",
            ));
        }
    };
    let me = human(&caller)?.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_review_decision(&me, seq, subject, req.decision, req.note)
        })
        .await?;
    Ok(Json(json!({"entries": written(&acks)})))
}

pub async fn complete_review(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(seq): ApiPath<String>,
    ApiJson(NoParams {}): ApiJson<NoParams>,
) -> Result<impl IntoResponse, ApiError> {
    let seq = super::parse_u64("seq", &seq)?;
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_complete_review(seq, Timestamp::now())
        })
        .await?;
    let view = review_view(state.identity.read().review(seq)?);
    Ok(Json(json!({"review": view, "entries": written(&acks)})))
}
