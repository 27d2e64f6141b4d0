//! The ledger entries that change who can act, as typed events, and their
//! bodies. Each body carries the [`Actor`] that caused it and the indexed
//! attributes (`agent`, `project`, `human`) so the audit queries find it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use super::governance::{ChangeInfo, KillTarget, LimitTarget, Limits};
use super::{
    AgentId, CredentialId, CredentialKind, Did, Kyc, KycStatus, ProjectId, Role, Scope, UserId,
};
use crate::{EntryType, Timestamp};

/// How sure Docket is of the human an agent acted for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HumanAssurance {
    /// Bound by a session credential a human issued for this task.
    Session,
    /// Only named by the agent; nothing proves the human asked.
    Asserted,
    /// No human named.
    None,
}

/// Who caused an entry, as the server authenticated them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The admin token printed at first start, before any user existed.
    Bootstrap,
    Human {
        user: UserId,
        credential: CredentialId,
    },
    Agent {
        agent: AgentId,
        did: Did,
        credential: CredentialId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        human: Option<UserId>,
        human_assurance: HumanAssurance,
        /// The verified RFC 9421 signature, when the agent signed the request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<Value>,
    },
    /// Docket itself, e.g. expiring a rotated credential.
    System { reason: String },
}

impl Actor {
    /// The human responsible: the acting user, or the human an agent acted for.
    pub fn human(&self) -> Option<&UserId> {
        match self {
            Actor::Human { user, .. } => Some(user),
            Actor::Agent { human, .. } => human.as_ref(),
            Actor::Bootstrap | Actor::System { .. } => None,
        }
    }

    pub fn user(&self) -> Option<&UserId> {
        match self {
            Actor::Human { user, .. } => Some(user),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    pub id: UserId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub kyc: Kyc,
}

/// Which agents a project rule applies to, and what it lets them touch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Agent ids, or `["*"]` for every agent of the project.
    pub agents: Vec<String>,
    #[serde(flatten)]
    pub allows: Scope,
}

impl AccessRule {
    pub fn applies_to(&self, agent: &AgentId) -> bool {
        self.agents.iter().any(|a| a == "*" || a == agent.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectRecord {
    pub id: ProjectId,
    pub name: String,
    #[serde(default)]
    pub members: Vec<UserId>,
    #[serde(default)]
    pub rules: Vec<AccessRule>,
}

impl ProjectRecord {
    /// What the project's rules let `agent` touch.
    pub fn allowed_for(&self, agent: &AgentId) -> Scope {
        let mut out = Scope::default();
        for rule in self.rules.iter().filter(|r| r.applies_to(agent)) {
            out.union_with(&rule.allows);
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRecord {
    pub id: AgentId,
    pub name: String,
    pub owner: UserId,
    pub project: ProjectId,
    pub purpose: String,
    pub scope: Scope,
    pub did: Did,
    /// SHA-256 (hex) of the agent's system prompt, when its owner declared
    /// one: changing it is a change request like a change of scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt_sha256: Option<String>,
    /// Every request with this agent's credentials must carry its RFC 9421
    /// signature; unsigned ones are refused and recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_signature: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRecord {
    pub id: CredentialId,
    pub kind: CredentialKind,
    /// What the token starts with, e.g. `dka_abcdefghij234567`.
    pub prefix: String,
    /// SHA-256 of the whole token, hex. Tokens carry 256 random bits, so a
    /// fast hash is as safe as a slow one and keeps authentication cheap.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    /// The user a personal token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// A subset of the agent's declared scope; `None` = all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Session credentials: the task they are bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Session credentials: the human the agent acts for, and how sure that is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_assurance: Option<HumanAssurance>,
    /// Session credentials an agent started itself: the API key it used.
    /// The session dies with it and never exceeds its scope or lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<CredentialId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// What a change request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ChangeRequest {
    #[serde(rename = "agent.register")]
    AgentRegister { record: Box<AgentRecord> },
    #[serde(rename = "agent.retire")]
    AgentRetire { reason: String },
    /// A new scope (models, tools, data classes, environments) or system prompt.
    #[serde(rename = "agent.update")]
    AgentUpdate {
        scope: Scope,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        system_prompt_sha256: Option<String>,
        /// The agent's whole new state, so an update that says nothing about
        /// signing keeps what the agent had.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        require_signature: bool,
    },
    /// New access rules for a project: a tool-permission change.
    #[serde(rename = "project.rules")]
    ProjectRules { rules: Vec<AccessRule> },
    /// A new policy set version, activated on approval.
    #[serde(rename = "policy.version")]
    PolicyVersion {
        version: u64,
        sha256: String,
        /// The Cedar policy text.
        policy: String,
        /// Its test cases (request → expected decision).
        tests: Value,
    },
    /// Activating an earlier policy version again.
    #[serde(rename = "policy.rollback")]
    PolicyRollback { version: u64 },
}

impl ChangeRequest {
    pub fn name(&self) -> &'static str {
        match self {
            ChangeRequest::AgentRegister { .. } => "agent.register",
            ChangeRequest::AgentRetire { .. } => "agent.retire",
            ChangeRequest::AgentUpdate { .. } => "agent.update",
            ChangeRequest::ProjectRules { .. } => "project.rules",
            ChangeRequest::PolicyVersion { .. } => "policy.version",
            ChangeRequest::PolicyRollback { .. } => "policy.rollback",
        }
    }
}

/// A reviewer's call on one agent in an access review.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Keep,
    Revoke,
}

/// One agent as an access review lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub agent: AgentId,
    pub owner: UserId,
    pub project: ProjectId,
    pub status: String,
    pub scope: Scope,
    pub credentials: Vec<ReviewCredential>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewCredential {
    pub id: CredentialId,
    pub kind: CredentialKind,
    pub prefix: String,
    pub issued_at: Timestamp,
    pub age_days: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// One human as an access review lists them: what they may do (roles,
/// projects), whether their identity is verified, and their personal tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewHuman {
    pub user: UserId,
    pub roles: Vec<Role>,
    pub projects: Vec<ProjectId>,
    pub kyc: KycStatus,
    pub tokens: Vec<ReviewCredential>,
}

/// What a review decision is about: an agent or a human.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewSubject {
    Agent(AgentId),
    User(UserId),
}

impl std::fmt::Display for ReviewSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReviewSubject::Agent(a) => write!(f, "agent {a}"),
            ReviewSubject::User(u) => write!(f, "user {u}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReviewEvent {
    Opened {
        items: Vec<ReviewItem>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        humans: Vec<ReviewHuman>,
    },
    /// A decision on one agent (`agent`) or one human (`user`).
    Decided {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<UserId>,
        decision: ReviewDecision,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Completed {
        kept: Vec<AgentId>,
        revoked: Vec<AgentId>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept_users: Vec<UserId>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        revoked_users: Vec<UserId>,
    },
}

impl ReviewEvent {
    /// Whom a decision is about; `None` for a malformed one (neither or both).
    pub fn subject(&self) -> Option<ReviewSubject> {
        match self {
            ReviewEvent::Decided {
                agent: Some(a),
                user: None,
                ..
            } => Some(ReviewSubject::Agent(a.clone())),
            ReviewEvent::Decided {
                agent: None,
                user: Some(u),
                ..
            } => Some(ReviewSubject::User(u.clone())),
            _ => None,
        }
    }
}

/// A change to who can act. One event is one ledger entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    UserCreated {
        user: UserRecord,
    },
    UserUpdated {
        user: UserRecord,
        changed: Vec<String>,
    },
    ProjectCreated {
        project: ProjectRecord,
    },
    ProjectUpdated {
        project: ProjectRecord,
    },
    ChangeRequested {
        /// The agent and project the change is about; policy changes name neither.
        agent: Option<AgentId>,
        project: Option<ProjectId>,
        request: ChangeRequest,
        info: ChangeInfo,
    },
    ChangeApproved {
        /// `seq` of the `change.requested` entry.
        request: u64,
        agent: Option<AgentId>,
        project: Option<ProjectId>,
    },
    ChangeRejected {
        request: u64,
        agent: Option<AgentId>,
        project: Option<ProjectId>,
        reason: String,
    },
    AgentUpdated {
        request: u64,
        agent: AgentRecord,
    },
    /// A policy version took effect (approved new version or rollback).
    PolicyActivated {
        request: u64,
        version: u64,
        sha256: String,
        rollback: bool,
        /// The version's test report, re-run just before activation.
        tests: Option<Value>,
    },
    KillSwitch {
        target: KillTarget,
        engaged: bool,
        reason: String,
    },
    LimitsSet {
        target: LimitTarget,
        limits: Limits,
    },
    AgentRegistered {
        request: u64,
        agent: AgentRecord,
    },
    AgentSuspended {
        agent: AgentId,
        project: ProjectId,
        reason: String,
    },
    AgentResumed {
        agent: AgentId,
        project: ProjectId,
        reason: String,
    },
    AgentRetired {
        request: u64,
        agent: AgentId,
        project: ProjectId,
    },
    CredentialIssued {
        credential: CredentialRecord,
        project: Option<ProjectId>,
        /// Rotation: the credential this one replaces, usable until `grace_until`.
        replaces: Option<(CredentialId, Timestamp)>,
    },
    CredentialRevoked {
        credential: CredentialId,
        agent: Option<AgentId>,
        project: Option<ProjectId>,
        reason: String,
    },
    AccessReview {
        /// `seq` of the review's `opened` entry; `None` for the opening itself.
        review: Option<u64>,
        event: ReviewEvent,
    },
    SignatureRejected {
        agent: AgentId,
        project: ProjectId,
        credential: CredentialId,
        method: String,
        path: String,
        error: String,
    },
}

#[derive(Debug, Error)]
pub enum EventError {
    #[error("entry type {0} is not an identity event")]
    NotIdentity(EntryType),
    #[error("{kind} body: {source}")]
    Body {
        kind: EntryType,
        source: serde_json::Error,
    },
}

/// The on-ledger shape of each event: its members besides `actor`.
mod wire {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct UserCreated {
        pub user: UserRecord,
    }
    #[derive(Serialize, Deserialize)]
    pub struct UserUpdated {
        pub user: UserRecord,
        pub changed: Vec<String>,
    }
    #[derive(Serialize, Deserialize)]
    pub struct Project {
        pub project: ProjectId,
        pub record: ProjectRecord,
    }
    #[derive(Serialize, Deserialize)]
    pub struct ChangeRequested {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub agent: Option<AgentId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub project: Option<ProjectId>,
        #[serde(flatten)]
        pub request: ChangeRequest,
        #[serde(flatten)]
        pub info: ChangeInfo,
    }
    #[derive(Serialize, Deserialize)]
    pub struct ChangeDecided {
        pub request: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub agent: Option<AgentId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub project: Option<ProjectId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: Option<String>,
    }
    #[derive(Serialize, Deserialize)]
    pub struct AgentRegistered {
        pub request: u64,
        pub agent: AgentId,
        pub project: ProjectId,
        pub record: AgentRecord,
    }
    #[derive(Serialize, Deserialize)]
    pub struct AgentState {
        pub agent: AgentId,
        pub project: ProjectId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub request: Option<u64>,
    }
    #[derive(Serialize, Deserialize)]
    pub struct Replaces {
        pub credential: CredentialId,
        pub grace_until: Timestamp,
    }
    #[derive(Serialize, Deserialize)]
    pub struct CredentialIssued {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub agent: Option<AgentId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub project: Option<ProjectId>,
        pub credential: CredentialRecord,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub replaces: Option<Replaces>,
    }
    #[derive(Serialize, Deserialize)]
    pub struct CredentialRevoked {
        pub credential: CredentialId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub agent: Option<AgentId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub project: Option<ProjectId>,
        pub reason: String,
    }
    #[derive(Serialize, Deserialize)]
    pub struct AccessReview {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub review: Option<u64>,
        #[serde(flatten)]
        pub event: ReviewEvent,
    }
    #[derive(Serialize, Deserialize)]
    pub struct PolicyActivated {
        pub request: u64,
        pub version: u64,
        pub sha256: String,
        pub rollback: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tests: Option<Value>,
    }
    #[derive(Serialize, Deserialize)]
    pub struct KillSwitch {
        #[serde(flatten)]
        pub target: KillTarget,
        pub reason: String,
    }
    #[derive(Serialize, Deserialize)]
    pub struct LimitsSet {
        #[serde(flatten)]
        pub target: LimitTarget,
        pub limits: Limits,
    }
    #[derive(Serialize, Deserialize)]
    pub struct SignatureRejected {
        pub agent: AgentId,
        pub project: ProjectId,
        pub credential: CredentialId,
        pub method: String,
        pub path: String,
        pub error: String,
    }
}

fn to_value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("identity events serialize to JSON")
}

impl Event {
    pub fn entry_type(&self) -> EntryType {
        match self {
            Event::UserCreated { .. } => EntryType::UserCreated,
            Event::UserUpdated { .. } => EntryType::UserUpdated,
            Event::ProjectCreated { .. } => EntryType::ProjectCreated,
            Event::ProjectUpdated { .. } => EntryType::ProjectUpdated,
            Event::ChangeRequested { .. } => EntryType::ChangeRequested,
            Event::ChangeApproved { .. } => EntryType::ChangeApproved,
            Event::ChangeRejected { .. } => EntryType::ChangeRejected,
            Event::AgentRegistered { .. } => EntryType::AgentRegistered,
            Event::AgentSuspended { .. } => EntryType::AgentSuspended,
            Event::AgentResumed { .. } => EntryType::AgentResumed,
            Event::AgentRetired { .. } => EntryType::AgentRetired,
            Event::CredentialIssued { .. } => EntryType::CredentialIssued,
            Event::CredentialRevoked { .. } => EntryType::CredentialRevoked,
            Event::AccessReview { .. } => EntryType::AccessReview,
            Event::SignatureRejected { .. } => EntryType::SignatureRejected,
            Event::AgentUpdated { .. } => EntryType::AgentUpdated,
            Event::PolicyActivated { .. } => EntryType::PolicyActivated,
            Event::KillSwitch { engaged: true, .. } => EntryType::KillSwitchEngaged,
            Event::KillSwitch { engaged: false, .. } => EntryType::KillSwitchReleased,
            Event::LimitsSet { .. } => EntryType::LimitsSet,
        }
    }

    /// Whether entries of this type are identity events (written only by
    /// Docket, folded into the registry).
    pub fn is_identity_type(kind: EntryType) -> bool {
        IDENTITY_TYPES.contains(&kind)
    }

    /// The entry body: the event's members, `actor`, and `human` (the
    /// responsible human, indexed) unless the event names one itself.
    pub fn to_body(&self, actor: &Actor) -> Value {
        let value = match self.clone() {
            Event::UserCreated { user } => to_value(wire::UserCreated { user }),
            Event::UserUpdated { user, changed } => to_value(wire::UserUpdated { user, changed }),
            Event::ProjectCreated { project } | Event::ProjectUpdated { project } => {
                to_value(wire::Project {
                    project: project.id.clone(),
                    record: project,
                })
            }
            Event::ChangeRequested {
                agent,
                project,
                request,
                info,
            } => to_value(wire::ChangeRequested {
                agent,
                project,
                request,
                info,
            }),
            Event::ChangeApproved {
                request,
                agent,
                project,
            } => to_value(wire::ChangeDecided {
                request,
                agent,
                project,
                reason: None,
            }),
            Event::ChangeRejected {
                request,
                agent,
                project,
                reason,
            } => to_value(wire::ChangeDecided {
                request,
                agent,
                project,
                reason: Some(reason),
            }),
            Event::AgentRegistered { request, agent } | Event::AgentUpdated { request, agent } => {
                to_value(wire::AgentRegistered {
                    request,
                    agent: agent.id.clone(),
                    project: agent.project.clone(),
                    record: agent,
                })
            }
            Event::AgentSuspended {
                agent,
                project,
                reason,
            }
            | Event::AgentResumed {
                agent,
                project,
                reason,
            } => to_value(wire::AgentState {
                agent,
                project,
                reason: Some(reason),
                request: None,
            }),
            Event::AgentRetired {
                request,
                agent,
                project,
            } => to_value(wire::AgentState {
                agent,
                project,
                reason: None,
                request: Some(request),
            }),
            Event::CredentialIssued {
                credential,
                project,
                replaces,
            } => to_value(wire::CredentialIssued {
                agent: credential.agent.clone(),
                project,
                credential,
                replaces: replaces.map(|(credential, grace_until)| wire::Replaces {
                    credential,
                    grace_until,
                }),
            }),
            Event::CredentialRevoked {
                credential,
                agent,
                project,
                reason,
            } => to_value(wire::CredentialRevoked {
                credential,
                agent,
                project,
                reason,
            }),
            Event::AccessReview { review, event } => to_value(wire::AccessReview { review, event }),
            Event::PolicyActivated {
                request,
                version,
                sha256,
                rollback,
                tests,
            } => to_value(wire::PolicyActivated {
                request,
                version,
                sha256,
                rollback,
                tests,
            }),
            Event::KillSwitch { target, reason, .. } => {
                to_value(wire::KillSwitch { target, reason })
            }
            Event::LimitsSet { target, limits } => to_value(wire::LimitsSet { target, limits }),
            Event::SignatureRejected {
                agent,
                project,
                credential,
                method,
                path,
                error,
            } => to_value(wire::SignatureRejected {
                agent,
                project,
                credential,
                method,
                path,
                error,
            }),
        };
        let Value::Object(mut map) = value else {
            unreachable!("event bodies are JSON objects")
        };
        if let Some(human) = actor.human() {
            map.entry("human")
                .or_insert_with(|| Value::String(human.to_string()));
        }
        map.insert("actor".into(), to_value(actor));
        Value::Object(map)
    }

    /// Reads an identity entry's body back into its event and actor.
    pub fn from_body(kind: EntryType, body: &Value) -> Result<(Event, Actor), EventError> {
        let err = |source| EventError::Body { kind, source };
        let mut map: Map<String, Value> = match body {
            Value::Object(m) => m.clone(),
            _ => return Err(err(serde::de::Error::custom("not an object"))),
        };
        let actor: Actor =
            serde_json::from_value(map.remove("actor").unwrap_or(Value::Null)).map_err(err)?;
        // `human` (derived from the actor) is ignored like any member the
        // event does not read.
        let rest = Value::Object(map);
        fn de<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, serde_json::Error> {
            serde_json::from_value(v)
        }
        let event = match kind {
            EntryType::UserCreated => {
                let w: wire::UserCreated = de(rest).map_err(err)?;
                Event::UserCreated { user: w.user }
            }
            EntryType::UserUpdated => {
                let w: wire::UserUpdated = de(rest).map_err(err)?;
                Event::UserUpdated {
                    user: w.user,
                    changed: w.changed,
                }
            }
            EntryType::ProjectCreated => Event::ProjectCreated {
                project: de::<wire::Project>(rest).map_err(err)?.record,
            },
            EntryType::ProjectUpdated => Event::ProjectUpdated {
                project: de::<wire::Project>(rest).map_err(err)?.record,
            },
            EntryType::ChangeRequested => {
                let w: wire::ChangeRequested = de(rest).map_err(err)?;
                Event::ChangeRequested {
                    agent: w.agent,
                    project: w.project,
                    request: w.request,
                    info: w.info,
                }
            }
            EntryType::ChangeApproved => {
                let w: wire::ChangeDecided = de(rest).map_err(err)?;
                Event::ChangeApproved {
                    request: w.request,
                    agent: w.agent,
                    project: w.project,
                }
            }
            EntryType::ChangeRejected => {
                let w: wire::ChangeDecided = de(rest).map_err(err)?;
                Event::ChangeRejected {
                    request: w.request,
                    agent: w.agent,
                    project: w.project,
                    reason: w.reason.unwrap_or_default(),
                }
            }
            EntryType::AgentRegistered => {
                let w: wire::AgentRegistered = de(rest).map_err(err)?;
                Event::AgentRegistered {
                    request: w.request,
                    agent: w.record,
                }
            }
            EntryType::AgentUpdated => {
                let w: wire::AgentRegistered = de(rest).map_err(err)?;
                Event::AgentUpdated {
                    request: w.request,
                    agent: w.record,
                }
            }
            EntryType::PolicyActivated => {
                let w: wire::PolicyActivated = de(rest).map_err(err)?;
                Event::PolicyActivated {
                    request: w.request,
                    version: w.version,
                    sha256: w.sha256,
                    rollback: w.rollback,
                    tests: w.tests,
                }
            }
            EntryType::KillSwitchEngaged | EntryType::KillSwitchReleased => {
                let w: wire::KillSwitch = de(rest).map_err(err)?;
                Event::KillSwitch {
                    target: w.target,
                    engaged: kind == EntryType::KillSwitchEngaged,
                    reason: w.reason,
                }
            }
            EntryType::LimitsSet => {
                let w: wire::LimitsSet = de(rest).map_err(err)?;
                Event::LimitsSet {
                    target: w.target,
                    limits: w.limits,
                }
            }
            EntryType::AgentSuspended | EntryType::AgentResumed | EntryType::AgentRetired => {
                let w: wire::AgentState = de(rest).map_err(err)?;
                match kind {
                    EntryType::AgentSuspended => Event::AgentSuspended {
                        agent: w.agent,
                        project: w.project,
                        reason: w.reason.unwrap_or_default(),
                    },
                    EntryType::AgentResumed => Event::AgentResumed {
                        agent: w.agent,
                        project: w.project,
                        reason: w.reason.unwrap_or_default(),
                    },
                    _ => Event::AgentRetired {
                        request: w.request.unwrap_or_default(),
                        agent: w.agent,
                        project: w.project,
                    },
                }
            }
            EntryType::CredentialIssued => {
                let w: wire::CredentialIssued = de(rest).map_err(err)?;
                Event::CredentialIssued {
                    credential: w.credential,
                    project: w.project,
                    replaces: w.replaces.map(|r| (r.credential, r.grace_until)),
                }
            }
            EntryType::CredentialRevoked => {
                let w: wire::CredentialRevoked = de(rest).map_err(err)?;
                Event::CredentialRevoked {
                    credential: w.credential,
                    agent: w.agent,
                    project: w.project,
                    reason: w.reason,
                }
            }
            EntryType::AccessReview => {
                let w: wire::AccessReview = de(rest).map_err(err)?;
                Event::AccessReview {
                    review: w.review,
                    event: w.event,
                }
            }
            EntryType::SignatureRejected => {
                let w: wire::SignatureRejected = de(rest).map_err(err)?;
                Event::SignatureRejected {
                    agent: w.agent,
                    project: w.project,
                    credential: w.credential,
                    method: w.method,
                    path: w.path,
                    error: w.error,
                }
            }
            other => return Err(EventError::NotIdentity(other)),
        };
        Ok((event, actor))
    }
}

/// Entry types only Docket writes, folded into the registry.
pub const IDENTITY_TYPES: &[EntryType] = &[
    EntryType::UserCreated,
    EntryType::UserUpdated,
    EntryType::ProjectCreated,
    EntryType::ProjectUpdated,
    EntryType::ChangeRequested,
    EntryType::ChangeApproved,
    EntryType::ChangeRejected,
    EntryType::AgentRegistered,
    EntryType::AgentSuspended,
    EntryType::AgentResumed,
    EntryType::AgentRetired,
    EntryType::CredentialIssued,
    EntryType::CredentialRevoked,
    EntryType::AccessReview,
    EntryType::SignatureRejected,
    EntryType::AgentUpdated,
    EntryType::PolicyActivated,
    EntryType::KillSwitchEngaged,
    EntryType::KillSwitchReleased,
    EntryType::LimitsSet,
];
