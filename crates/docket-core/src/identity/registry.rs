//! The registry of users, projects, agents, credentials, change requests
//! and access reviews: a fold over the identity events in the ledger. The
//! `plan_*` methods check a request against the current state and return
//! the events to append; [`Registry::apply`] folds an appended event in.
//! Object-level rules live here (four-eyes, ownership, membership, scope
//! containment); which role may call which route is the server's table.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use thiserror::Error;

use super::event::{
    AgentRecord, ChangeRequest, CredentialRecord, ProjectRecord, ReviewCredential, ReviewDecision,
    ReviewEvent, ReviewHuman, ReviewItem, ReviewSubject, UserRecord,
};
use super::governance::{
    ActivePolicy, ChangeInfo, Engaged, KillTarget, LimitTarget, Limits, PolicyVersion,
};
use super::{
    Actor, AgentId, CredentialId, CredentialKind, Event, HumanAssurance, Kyc, KycStatus, ProjectId,
    Role, Scope, ScopeField, UserId,
};
use crate::Timestamp;

/// Why the registry refused a request. The variant is what a caller acts
/// on (the server maps it to a status code); the message, for a human, says
/// what exactly was wrong. The rules clients branch on have their own
/// variant with a stable code.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    /// A governance rule said no: its stable code and the explanation.
    #[error("{1}")]
    Rule(Rule, String),
}

/// Rules whose refusals clients recognise by code, not by message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Whoever asked for something cannot approve it.
    FourEyes,
    /// The deployment requires a verified identity (KYC) for this.
    IdentityUnverified,
    /// Nobody decides on their own access in a review.
    OwnAccess,
}

impl Rule {
    pub fn code(self) -> &'static str {
        match self {
            Rule::FourEyes => "four_eyes",
            Rule::IdentityUnverified => "identity_unverified",
            Rule::OwnAccess => "own_access",
        }
    }
}

use RegistryError::{Conflict, Forbidden, Invalid, NotFound};

type Result<T> = std::result::Result<T, RegistryError>;

#[derive(Clone, Debug)]
pub struct User {
    pub record: UserRecord,
    pub created_at: Timestamp,
}

impl User {
    pub fn has(&self, role: Role) -> bool {
        self.record.roles.contains(&role)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Active,
    Suspended,
    Retired,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Suspended => "suspended",
            AgentStatus::Retired => "retired",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Agent {
    pub record: AgentRecord,
    pub status: AgentStatus,
    pub registered_at: Timestamp,
    /// `seq` of the approved `change.requested` entry.
    pub request: u64,
}

#[derive(Clone, Debug)]
pub struct Credential {
    pub record: CredentialRecord,
    pub issued_at: Timestamp,
    pub issued_by: Actor,
    pub revoked: Option<(Timestamp, String)>,
    /// Set when rotated: usable until then, then revoked.
    pub grace_until: Option<Timestamp>,
}

impl Credential {
    /// Why it cannot be used at `now`, if it cannot.
    pub fn dead_at(&self, now: Timestamp) -> Option<&'static str> {
        if self.revoked.is_some() {
            Some("revoked")
        } else if self.record.expires_at.is_some_and(|t| now >= t) {
            Some("expired")
        } else if self.grace_until.is_some_and(|t| now >= t) {
            Some("replaced by rotation")
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeStatus {
    Pending,
    Approved { by: UserId, seq: u64 },
    Rejected { by: UserId, reason: String },
}

#[derive(Clone, Debug)]
pub struct Change {
    pub seq: u64,
    pub requested_at: Timestamp,
    pub requested_by: Option<UserId>,
    pub agent: Option<AgentId>,
    pub project: Option<ProjectId>,
    pub request: ChangeRequest,
    pub info: ChangeInfo,
    pub status: ChangeStatus,
}

#[derive(Clone, Debug)]
pub struct Review {
    pub seq: u64,
    pub opened_at: Timestamp,
    pub opened_by: Option<UserId>,
    /// The agents under review.
    pub items: Vec<ReviewItem>,
    /// The humans under review (reviews opened before humans were listed
    /// have none).
    pub humans: Vec<ReviewHuman>,
    /// Decision, who made it, their note.
    pub decisions: BTreeMap<ReviewSubject, (ReviewDecision, Option<UserId>, Option<String>)>,
    pub completed_at: Option<Timestamp>,
}

impl Review {
    /// Everyone and everything the review asks a decision about.
    pub fn subjects(&self) -> impl Iterator<Item = ReviewSubject> + '_ {
        let agents = self
            .items
            .iter()
            .map(|i| ReviewSubject::Agent(i.agent.clone()));
        let humans = self
            .humans
            .iter()
            .map(|h| ReviewSubject::User(h.user.clone()));
        agents.chain(humans)
    }

    /// The decisions as the API and evidence packs show them:
    /// `{"agent"|"user": id, "decision", "by", "note"}`, agents first.
    pub fn decision_views(&self) -> Vec<serde_json::Value> {
        self.decisions
            .iter()
            .map(|(subject, (decision, by, note))| {
                let mut v = serde_json::json!(subject);
                v["decision"] = serde_json::json!(decision);
                v["by"] = serde_json::json!(by);
                v["note"] = serde_json::json!(note);
                v
            })
            .collect()
    }
}

/// A credential to issue: its id and the SHA-256 of its token, made by the
/// caller (which holds the randomness), plus what it is for.
#[derive(Clone, Debug)]
pub struct NewCredential {
    pub id: CredentialId,
    pub sha256: String,
    pub scope: Option<Scope>,
    pub expires_at: Option<Timestamp>,
    pub label: Option<String>,
}

impl NewCredential {
    /// The record of this credential as `kind`, bound to nothing yet.
    fn record(self, kind: CredentialKind) -> CredentialRecord {
        CredentialRecord {
            prefix: super::token_prefix(kind, &self.id),
            id: self.id,
            kind,
            sha256: self.sha256,
            agent: None,
            user: None,
            scope: self.scope,
            task: None,
            human: None,
            human_assurance: None,
            parent: None,
            expires_at: self.expires_at,
            label: self.label,
        }
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub roles: Option<Vec<Role>>,
    pub disabled: Option<bool>,
}

#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub users: BTreeMap<UserId, User>,
    pub projects: BTreeMap<ProjectId, ProjectRecord>,
    pub agents: BTreeMap<AgentId, Agent>,
    pub credentials: HashMap<CredentialId, Credential>,
    pub changes: BTreeMap<u64, Change>,
    pub reviews: BTreeMap<u64, Review>,
    /// Every policy version ever requested, by version number.
    pub policies: BTreeMap<u64, PolicyVersion>,
    pub active_policy: Option<ActivePolicy>,
    pub kill_switches: BTreeMap<KillTarget, Engaged>,
    pub limits: BTreeMap<LimitTarget, Limits>,
}

/// Whether `project`'s rules for `agent`, and `credential`'s own scope,
/// allow `name`: the narrowing [`Registry::allows`] and
/// [`Registry::effective_scope`] apply to the agent's declared scope.
fn narrowed_allows(
    project: &ProjectRecord,
    agent: &Agent,
    credential: &Credential,
    field: ScopeField,
    name: &str,
) -> bool {
    project
        .rules
        .iter()
        .any(|r| r.applies_to(&agent.record.id) && r.allows.get(field).contains(name))
        && credential
            .record
            .scope
            .as_ref()
            .is_none_or(|s| s.get(field).contains(name))
}

/// A live credential as an access review lists it.
fn review_credential(
    c: &Credential,
    now: Timestamp,
    last_used: &impl Fn(&CredentialId) -> Option<Timestamp>,
) -> ReviewCredential {
    ReviewCredential {
        id: c.record.id.clone(),
        kind: c.record.kind,
        prefix: c.record.prefix.clone(),
        issued_at: c.issued_at,
        age_days: (now.as_micros() - c.issued_at.as_micros()) / 86_400_000_000,
        last_used: last_used(&c.record.id),
        expires_at: c.record.expires_at,
    }
}

fn text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.trim().is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "{what} must be 1 to {max} bytes of printable text"
        )));
    }
    Ok(())
}

impl Registry {
    // ---- reading ------------------------------------------------------

    pub fn user(&self, id: &UserId) -> Result<&User> {
        self.users
            .get(id)
            .ok_or_else(|| NotFound(format!("no user {id}")))
    }

    pub fn project(&self, id: &ProjectId) -> Result<&ProjectRecord> {
        self.projects
            .get(id)
            .ok_or_else(|| NotFound(format!("no project {id}")))
    }

    pub fn agent(&self, id: &AgentId) -> Result<&Agent> {
        self.agents
            .get(id)
            .ok_or_else(|| NotFound(format!("no agent {id}")))
    }

    pub fn credential(&self, id: &CredentialId) -> Result<&Credential> {
        self.credentials
            .get(id)
            .ok_or_else(|| NotFound(format!("no credential {id}")))
    }

    pub fn change(&self, seq: u64) -> Result<&Change> {
        self.changes
            .get(&seq)
            .ok_or_else(|| NotFound(format!("no change request at seq {seq}")))
    }

    pub fn review(&self, seq: u64) -> Result<&Review> {
        self.reviews
            .get(&seq)
            .ok_or_else(|| NotFound(format!("no access review at seq {seq}")))
    }

    pub fn has_role(&self, user: &UserId, role: Role) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| !u.record.disabled && u.has(role))
    }

    pub fn is_member(&self, user: &UserId, project: &ProjectId) -> bool {
        self.projects
            .get(project)
            .is_some_and(|p| p.members.contains(user))
    }

    /// Projects whose data `user` may read: all for admins, approvers,
    /// reviewers and auditors; their memberships for developers. This and
    /// the two below are the one rule of who sees what in the registry and
    /// the log.
    pub fn sees_all_projects(&self, user: &UserId) -> bool {
        [Role::Admin, Role::Approver, Role::Reviewer, Role::Auditor]
            .into_iter()
            .any(|r| self.has_role(user, r))
    }

    /// Refuses unless `user`'s identity is verified (KYC): for deployments
    /// that require verified approvers. `what` says what they tried.
    pub fn check_verified(&self, user: &UserId, what: &str) -> Result<()> {
        let status = self.user(user)?.record.kyc.status;
        if status == KycStatus::Verified {
            return Ok(());
        }
        Err(RegistryError::Rule(
            Rule::IdentityUnverified,
            format!(
                "{what} needs a verified identity, and {user}'s is {}: an admin records a KYC check first (PUT /api/v1/users/{user}/kyc)",
                status.as_str()
            ),
        ))
    }

    /// [`Registry::check_verified`] for approving change request `seq`: the
    /// approver, and for a registration the agent's owner too.
    pub fn check_verified_approval(&self, approver: &UserId, seq: u64) -> Result<()> {
        self.check_verified(approver, "approving a change")?;
        if let ChangeRequest::AgentRegister { record } = &self.change(seq)?.request {
            self.check_verified(&record.owner, "owning an agent")?;
        }
        Ok(())
    }

    /// Whether `user` may see the things (agents, entries, changes) of `project`.
    pub fn sees_project(&self, user: &UserId, project: &ProjectId) -> bool {
        self.sees_all_projects(user) || self.is_member(user, project)
    }

    /// Whether `user` may see the things of `agent`'s project (unknown
    /// agents are seen only by those who see every project).
    pub fn sees_agent(&self, user: &UserId, agent: &AgentId) -> bool {
        match self.agents.get(agent) {
            Some(a) => self.sees_project(user, &a.record.project),
            None => self.sees_all_projects(user),
        }
    }

    /// Whether `viewer` may see `user`'s record: themselves, and for
    /// developers the members of their projects; everyone for the rest.
    pub fn sees_user(&self, viewer: &UserId, user: &UserId) -> bool {
        viewer == user
            || self.sees_all_projects(viewer)
            || self
                .projects
                .values()
                .any(|p| p.members.contains(viewer) && p.members.contains(user))
    }

    /// What `agent` may do with `credential`: its declared scope, narrowed
    /// by the project's rules and the credential's own scope.
    ///
    /// Built name by name with [`Registry::allows`]'s test, copying only
    /// what survives: this runs on every decision.
    pub fn effective_scope(&self, agent: &Agent, credential: &Credential) -> Scope {
        let Some(project) = self.projects.get(&agent.record.project) else {
            return Scope::default();
        };
        let field = |f: ScopeField| -> BTreeSet<String> {
            agent
                .record
                .scope
                .get(f)
                .iter()
                .filter(|name| narrowed_allows(project, agent, credential, f, name))
                .cloned()
                .collect()
        };
        Scope {
            tools: field(ScopeField::Tools),
            models: field(ScopeField::Models),
            data_classes: field(ScopeField::DataClasses),
            environments: field(ScopeField::Environments),
        }
    }

    /// Whether `agent` holding `credential` may touch `name`: the answer
    /// [`Registry::effective_scope`] gives, without building it (this runs
    /// on every append), and `false` if the agent's project is unknown.
    pub fn allows(
        &self,
        agent: &Agent,
        credential: &Credential,
        field: ScopeField,
        name: &str,
    ) -> bool {
        agent.record.scope.get(field).contains(name)
            && self
                .projects
                .get(&agent.record.project)
                .is_some_and(|p| narrowed_allows(p, agent, credential, field, name))
    }

    /// Why `c` cannot be used at `now`, its parent key included.
    pub fn credential_dead_at(&self, c: &Credential, now: Timestamp) -> Option<&'static str> {
        c.dead_at(now).or_else(|| {
            let parent = c.record.parent.as_ref()?;
            match self.credentials.get(parent) {
                Some(p) if p.dead_at(now).is_none() => None,
                _ => Some("ended with the key that started it"),
            }
        })
    }

    pub fn live_credentials_of<'a>(
        &'a self,
        agent: &'a AgentId,
        now: Timestamp,
    ) -> impl Iterator<Item = &'a Credential> + 'a {
        self.credentials
            .values()
            .filter(move |c| c.record.agent.as_ref() == Some(agent) && c.dead_at(now).is_none())
    }

    /// Admins who are not disabled, other than `leaving`.
    fn active_admins_besides(&self, leaving: &[UserId]) -> usize {
        self.users
            .values()
            .filter(|u| !u.record.disabled && u.has(Role::Admin))
            .filter(|u| !leaving.contains(&u.record.id))
            .count()
    }

    pub(super) fn is_admin(&self, user: &UserId) -> bool {
        self.has_role(user, Role::Admin)
    }

    // ---- users and projects -------------------------------------------

    fn check_user_record(&self, user: &UserRecord) -> Result<()> {
        text("name", &user.name, 200)?;
        if let Some(email) = &user.email {
            text("email", email, 254)?;
            if !email.contains('@') {
                return Err(Invalid(format!("email {email:?} has no @")));
            }
        }
        if user.roles.is_empty() {
            return Err(Invalid("a user needs at least one role".into()));
        }
        Ok(())
    }

    /// The first user, created with the bootstrap token. It must be an admin.
    pub fn plan_bootstrap(&self, mut user: UserRecord) -> Result<Vec<Event>> {
        if !self.users.is_empty() {
            return Err(Forbidden(
                "the bootstrap token is retired: the first admin exists; use a user's token".into(),
            ));
        }
        if !user.roles.contains(&Role::Admin) {
            return Err(Invalid("the first user must have the admin role".into()));
        }
        user.disabled = false;
        user.kyc = Kyc::default();
        self.check_user_record(&user)?;
        Ok(vec![Event::UserCreated { user }])
    }

    pub fn plan_create_user(&self, mut user: UserRecord) -> Result<Vec<Event>> {
        if self.users.contains_key(&user.id) {
            return Err(Conflict(format!("user {} already exists", user.id)));
        }
        user.disabled = false;
        user.kyc = Kyc::default();
        self.check_user_record(&user)?;
        Ok(vec![Event::UserCreated { user }])
    }

    pub fn plan_update_user(
        &self,
        actor: &UserId,
        id: &UserId,
        patch: UserPatch,
    ) -> Result<Vec<Event>> {
        let mut user = self.user(id)?.record.clone();
        let mut changed = Vec::new();
        if let Some(name) = patch.name {
            user.name = name;
            changed.push("name".to_owned());
        }
        if let Some(email) = patch.email {
            user.email = Some(email);
            changed.push("email".to_owned());
        }
        if let Some(mut roles) = patch.roles {
            roles.sort();
            roles.dedup();
            user.roles = roles;
            changed.push("roles".to_owned());
        }
        if let Some(disabled) = patch.disabled {
            user.disabled = disabled;
            changed.push("disabled".to_owned());
        }
        if changed.is_empty() {
            return Err(Invalid("nothing to change".into()));
        }
        self.check_user_record(&user)?;
        let still_admin = !user.disabled && user.roles.contains(&Role::Admin);
        if id == actor
            && !still_admin
            && self.is_admin(actor)
            && self.active_admins_besides(std::slice::from_ref(id)) == 0
        {
            return Err(Conflict(
                "this would leave no active admin; make another admin first".into(),
            ));
        }
        Ok(vec![Event::UserUpdated { user, changed }])
    }

    /// Records a KYC decision. Nobody verifies their own identity.
    pub fn plan_kyc(
        &self,
        actor: &UserId,
        id: &UserId,
        status: KycStatus,
        method: Option<String>,
        now: Timestamp,
    ) -> Result<Vec<Event>> {
        let mut user = self.user(id)?.record.clone();
        if status == KycStatus::Verified {
            if actor == id {
                return Err(Forbidden("a user cannot verify their own identity".into()));
            }
            match &method {
                Some(m) => text("method", m, 200)?,
                None => {
                    return Err(Invalid(
                        "verifying an identity needs the method used (e.g. \"passport check\")"
                            .into(),
                    ));
                }
            }
        }
        user.kyc = Kyc {
            status,
            verified_by: Some(actor.clone()),
            method,
            at: Some(now.to_string()),
        };
        Ok(vec![Event::UserUpdated {
            user,
            changed: vec!["kyc".into()],
        }])
    }

    pub(super) fn check_project(
        &self,
        project: &ProjectRecord,
        data_classes: &BTreeSet<String>,
    ) -> Result<()> {
        text("name", &project.name, 200)?;
        for member in &project.members {
            self.user(member)?;
        }
        for (i, rule) in project.rules.iter().enumerate() {
            if rule.agents.is_empty() {
                return Err(Invalid(format!(
                    "rules[{i}].agents is empty; name agent ids or \"*\""
                )));
            }
            for a in &rule.agents {
                if a != "*" && a.parse::<AgentId>().is_err() {
                    return Err(Invalid(format!(
                        "rules[{i}].agents: {a:?} is not an agent id"
                    )));
                }
            }
            rule.allows.check_names().map_err(Invalid)?;
            if let Some(c) = rule
                .allows
                .data_classes
                .iter()
                .find(|c| !data_classes.contains(*c))
            {
                return Err(Invalid(format!(
                    "rules[{i}].data_classes: unknown data class {c:?}; configured classes are {}",
                    data_classes.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(())
    }

    pub fn plan_create_project(
        &self,
        project: ProjectRecord,
        data_classes: &BTreeSet<String>,
    ) -> Result<Vec<Event>> {
        if self.projects.contains_key(&project.id) {
            return Err(Conflict(format!("project {} already exists", project.id)));
        }
        self.check_project(&project, data_classes)?;
        Ok(vec![Event::ProjectCreated { project }])
    }

    pub fn plan_update_project(
        &self,
        project: ProjectRecord,
        data_classes: &BTreeSet<String>,
    ) -> Result<Vec<Event>> {
        let current = self.project(&project.id)?;
        if current.rules != project.rules {
            // A tool-permission change needs a second human (CC8.1).
            return Err(Invalid(format!(
                "access rules change only through an approved change request (POST /api/v1/projects/{}/rules)",
                project.id
            )));
        }
        self.check_project(&project, data_classes)?;
        Ok(vec![Event::ProjectUpdated { project }])
    }

    // ---- agents -----------------------------------------------------------

    pub(super) fn pending_change_for(&self, agent: &AgentId) -> Option<&Change> {
        self.changes
            .values()
            .find(|c| c.agent.as_ref() == Some(agent) && c.status == ChangeStatus::Pending)
    }

    /// A request to register an agent; it waits for another human's approval.
    pub fn plan_request_agent(
        &self,
        actor: &UserId,
        record: AgentRecord,
        data_classes: &BTreeSet<String>,
    ) -> Result<Vec<Event>> {
        text("name", &record.name, 200)?;
        text("purpose", &record.purpose, 2000)?;
        record.scope.check_names().map_err(Invalid)?;
        if self.agents.contains_key(&record.id) {
            return Err(Conflict(format!(
                "agent id {} is taken (ids are never reused)",
                record.id
            )));
        }
        if let Some(c) = self.pending_change_for(&record.id) {
            return Err(Conflict(format!(
                "agent {} already has a pending request (seq {})",
                record.id, c.seq
            )));
        }
        let pending_dids = self.changes.values().filter_map(|c| match &c.request {
            ChangeRequest::AgentRegister { record } if c.status == ChangeStatus::Pending => {
                Some(&record.did)
            }
            _ => None,
        });
        if self
            .agents
            .values()
            .map(|a| &a.record.did)
            .chain(pending_dids)
            .any(|d| d == &record.did)
        {
            return Err(Conflict(
                "that public key already belongs to another agent or request; each agent needs its own key"
                    .into(),
            ));
        }
        let project = self.project(&record.project)?;
        if !self.is_admin(actor) && !project.members.contains(actor) {
            return Err(Forbidden(format!(
                "{actor} is not a member of project {}",
                project.id
            )));
        }
        let owner = self.user(&record.owner)?;
        if owner.record.disabled {
            return Err(Invalid(format!("owner {} is disabled", record.owner)));
        }
        if !project.members.contains(&record.owner) && !owner.has(Role::Admin) {
            return Err(Invalid(format!(
                "owner {} is not a member of project {}",
                record.owner, project.id
            )));
        }
        if let Some(c) = record
            .scope
            .data_classes
            .iter()
            .find(|c| !data_classes.contains(*c))
        {
            return Err(Invalid(format!(
                "scope.data_classes: unknown data class {c:?}"
            )));
        }
        let allowed = project.allowed_for(&record.id);
        if let Some((what, name)) = record.scope.first_outside(&allowed) {
            return Err(Forbidden(format!(
                "scope.{what} {name:?} is not allowed for this agent by project {}'s rules",
                project.id
            )));
        }
        Ok(vec![Event::ChangeRequested {
            agent: Some(record.id.clone()),
            project: Some(record.project.clone()),
            request: ChangeRequest::AgentRegister {
                record: Box::new(record),
            },
            info: ChangeInfo::default(),
        }])
    }

    /// A request to retire an agent; it waits for another human's approval.
    pub fn plan_request_retire(
        &self,
        actor: &UserId,
        agent: &AgentId,
        reason: String,
    ) -> Result<Vec<Event>> {
        text("reason", &reason, 2000)?;
        let a = self.agent(agent)?;
        if a.status == AgentStatus::Retired {
            return Err(Conflict(format!("agent {agent} is already retired")));
        }
        if &a.record.owner != actor && !self.is_admin(actor) {
            return Err(Forbidden(format!(
                "only the owner ({}) or an admin may ask to retire {agent}",
                a.record.owner
            )));
        }
        if let Some(c) = self.pending_change_for(agent) {
            return Err(Conflict(format!(
                "agent {agent} already has a pending request (seq {})",
                c.seq
            )));
        }
        Ok(vec![Event::ChangeRequested {
            agent: Some(agent.clone()),
            project: Some(a.record.project.clone()),
            request: ChangeRequest::AgentRetire { reason },
            info: ChangeInfo::default(),
        }])
    }

    /// Approves a pending change. Four eyes: never the requester.
    /// `tests` is a policy version's test report, re-run by the caller
    /// just before activation; other changes ignore it.
    pub fn plan_approve(
        &self,
        actor: &UserId,
        seq: u64,
        now: Timestamp,
        tests: Option<serde_json::Value>,
    ) -> Result<Vec<Event>> {
        let change = self.change(seq)?;
        if change.status != ChangeStatus::Pending {
            return Err(Conflict(format!("change request {seq} is not pending")));
        }
        if change.requested_by.as_ref() == Some(actor) {
            return Err(RegistryError::Rule(
                Rule::FourEyes,
                "four-eyes rule: the requester cannot approve their own request".into(),
            ));
        }
        let approved = Event::ChangeApproved {
            request: seq,
            agent: change.agent.clone(),
            project: change.project.clone(),
        };
        match &change.request {
            ChangeRequest::AgentRegister { record } => {
                // What may have changed since the request.
                if self.agents.contains_key(&record.id) {
                    return Err(Conflict(format!("agent id {} is taken", record.id)));
                }
                if self.agents.values().any(|a| a.record.did == record.did) {
                    return Err(Conflict(
                        "that public key now belongs to another agent; reject this request".into(),
                    ));
                }
                if self
                    .users
                    .get(&record.owner)
                    .is_none_or(|u| u.record.disabled)
                {
                    return Err(Conflict(format!(
                        "owner {} is disabled or gone; reject this request",
                        record.owner
                    )));
                }
                let allowed = self.project(&record.project)?.allowed_for(&record.id);
                if let Some((what, name)) = record.scope.first_outside(&allowed) {
                    return Err(Conflict(format!(
                        "scope.{what} {name:?} is no longer allowed by project {}'s rules; reject this request",
                        record.project
                    )));
                }
                Ok(vec![
                    approved,
                    Event::AgentRegistered {
                        request: seq,
                        agent: (**record).clone(),
                    },
                ])
            }
            ChangeRequest::AgentRetire { .. } => {
                let (Some(id), Some(project)) = (&change.agent, &change.project) else {
                    return Err(Invalid(format!("change request {seq} names no agent")));
                };
                let agent = self.agent(id)?;
                if agent.status == AgentStatus::Retired {
                    return Err(Conflict(format!("agent {id} is already retired")));
                }
                let mut events = vec![approved];
                events.extend(self.revoke_all(id, now, "agent retired"));
                events.push(Event::AgentRetired {
                    request: seq,
                    agent: id.clone(),
                    project: project.clone(),
                });
                Ok(events)
            }
            other => {
                let mut events = vec![approved];
                events.extend(self.approve_governance(seq, other, tests)?);
                Ok(events)
            }
        }
    }

    /// Rejects a pending change; the requester may withdraw their own.
    pub fn plan_reject(&self, seq: u64, reason: String) -> Result<Vec<Event>> {
        text("reason", &reason, 2000)?;
        let change = self.change(seq)?;
        if change.status != ChangeStatus::Pending {
            return Err(Conflict(format!("change request {seq} is not pending")));
        }
        Ok(vec![Event::ChangeRejected {
            request: seq,
            agent: change.agent.clone(),
            project: change.project.clone(),
            reason,
        }])
    }

    fn revoke_all(&self, agent: &AgentId, now: Timestamp, reason: &str) -> Vec<Event> {
        let mut live: Vec<&Credential> = self.live_credentials_of(agent, now).collect();
        live.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        live.into_iter()
            .map(|c| Event::CredentialRevoked {
                credential: c.record.id.clone(),
                agent: Some(agent.clone()),
                project: self.agents.get(agent).map(|a| a.record.project.clone()),
                reason: reason.to_owned(),
            })
            .collect()
    }

    /// Suspends an agent at once (a kill switch): the owner, an approver or
    /// an admin may.
    pub fn plan_suspend(
        &self,
        actor: &UserId,
        agent: &AgentId,
        reason: String,
    ) -> Result<Vec<Event>> {
        text("reason", &reason, 2000)?;
        let a = self.agent(agent)?;
        if a.status != AgentStatus::Active {
            return Err(Conflict(format!("agent {agent} is {}", a.status.as_str())));
        }
        if &a.record.owner != actor
            && !self.is_admin(actor)
            && !self.has_role(actor, Role::Approver)
        {
            return Err(Forbidden(format!(
                "only the owner ({}), an approver or an admin may suspend {agent}",
                a.record.owner
            )));
        }
        Ok(vec![Event::AgentSuspended {
            agent: agent.clone(),
            project: a.record.project.clone(),
            reason,
        }])
    }

    pub fn plan_resume(&self, agent: &AgentId, reason: String) -> Result<Vec<Event>> {
        text("reason", &reason, 2000)?;
        let a = self.agent(agent)?;
        if a.status != AgentStatus::Suspended {
            return Err(Conflict(format!(
                "agent {agent} is {}, not suspended",
                a.status.as_str()
            )));
        }
        Ok(vec![Event::AgentResumed {
            agent: agent.clone(),
            project: a.record.project.clone(),
            reason,
        }])
    }

    // ---- credentials --------------------------------------------------------

    fn active_agent(&self, agent: &AgentId) -> Result<&Agent> {
        let a = self.agent(agent)?;
        if a.status != AgentStatus::Active {
            return Err(Conflict(format!(
                "agent {agent} is {}; it gets no credentials",
                a.status.as_str()
            )));
        }
        Ok(a)
    }

    fn check_narrowing(agent: &Agent, scope: &Option<Scope>) -> Result<()> {
        if let Some(scope) = scope {
            scope.check_names().map_err(Invalid)?;
            if let Some((what, name)) = scope.first_outside(&agent.record.scope) {
                return Err(Forbidden(format!(
                    "scope.{what} {name:?} is outside agent {}'s declared scope",
                    agent.record.id
                )));
            }
        }
        Ok(())
    }

    fn check_label(new: &NewCredential) -> Result<()> {
        if let Some(label) = &new.label {
            text("label", label, 200)?;
        }
        Ok(())
    }

    /// An agent API key, issued by its owner or an admin.
    pub fn plan_api_key(
        &self,
        actor: &UserId,
        agent: &AgentId,
        new: NewCredential,
    ) -> Result<Vec<Event>> {
        let a = self.active_agent(agent)?;
        if &a.record.owner != actor && !self.is_admin(actor) {
            return Err(Forbidden(format!(
                "only the owner ({}) or an admin may issue keys for {agent}",
                a.record.owner
            )));
        }
        Self::check_narrowing(a, &new.scope)?;
        Self::check_label(&new)?;
        Ok(vec![Event::CredentialIssued {
            project: Some(a.record.project.clone()),
            replaces: None,
            credential: CredentialRecord {
                agent: Some(agent.clone()),
                ..new.record(CredentialKind::ApiKey)
            },
        }])
    }

    /// A session credential for one task. Issued by a human (who is then the
    /// bound human, and must belong to the agent's project) or by the agent
    /// itself (the human, if any, is only asserted).
    pub fn plan_session(
        &self,
        actor: &Actor,
        agent: &AgentId,
        task: String,
        asserted_human: Option<UserId>,
        new: NewCredential,
    ) -> Result<Vec<Event>> {
        text("task", &task, 200)?;
        let a = self.active_agent(agent)?;
        let mut new = new;
        let mut parent = None;
        if let Actor::Agent { credential, .. } = actor {
            // Never more than the key that starts it: its scope, its lifetime.
            let p = self.credential(credential)?;
            if let Some(outer) = &p.record.scope {
                match &new.scope {
                    Some(inner) => {
                        if let Some((what, name)) = inner.first_outside(outer) {
                            return Err(Forbidden(format!(
                                "scope.{what} {name:?} is outside the scope of the key starting this session"
                            )));
                        }
                    }
                    None => new.scope = Some(outer.clone()),
                }
            }
            if let Some(limit) = p.record.expires_at {
                new.expires_at = Some(new.expires_at.map_or(limit, |e| e.min(limit)));
            }
            parent = Some(credential.clone());
        }
        let (human, assurance) = match actor {
            Actor::Human { user, .. } => {
                if !self.is_admin(user) && !self.is_member(user, &a.record.project) {
                    return Err(Forbidden(format!(
                        "{user} is not a member of project {}",
                        a.record.project
                    )));
                }
                if asserted_human.as_ref().is_some_and(|h| h != user) {
                    return Err(Invalid(
                        "a human starts sessions on their own behalf; omit on_behalf_of".into(),
                    ));
                }
                (Some(user.clone()), HumanAssurance::Session)
            }
            Actor::Agent { agent: caller, .. } if caller == agent => match asserted_human {
                Some(h) => {
                    if self.user(&h)?.record.disabled {
                        return Err(Conflict(format!(
                            "user {h} is disabled; an agent cannot act for them"
                        )));
                    }
                    (Some(h), HumanAssurance::Asserted)
                }
                None => (None, HumanAssurance::None),
            },
            _ => {
                return Err(Forbidden(format!(
                    "cannot start a session for agent {agent}"
                )));
            }
        };
        Self::check_narrowing(a, &new.scope)?;
        Self::check_label(&new)?;
        if new.expires_at.is_none() {
            return Err(Invalid("a session credential needs an expiry".into()));
        }
        Ok(vec![Event::CredentialIssued {
            project: Some(a.record.project.clone()),
            replaces: None,
            credential: CredentialRecord {
                agent: Some(agent.clone()),
                task: Some(task),
                human,
                human_assurance: Some(assurance),
                parent,
                ..new.record(CredentialKind::Session)
            },
        }])
    }

    /// A human's personal API token, for themselves only.
    pub fn plan_personal(
        &self,
        actor: Option<&UserId>,
        user: &UserId,
        new: NewCredential,
    ) -> Result<Vec<Event>> {
        // Not even an admin: a token for someone else would let its holder
        // act, and approve, in that person's name. Checked first, so the
        // answer says nothing about other users.
        if let Some(actor) = actor
            && actor != user
        {
            return Err(Forbidden(
                "personal tokens are issued only to the user themselves".into(),
            ));
        }
        let u = self.user(user)?;
        if u.record.disabled {
            return Err(Conflict(format!("user {user} is disabled")));
        }
        Self::check_label(&new)?;
        Ok(vec![Event::CredentialIssued {
            project: None,
            replaces: None,
            credential: CredentialRecord {
                user: Some(user.clone()),
                scope: None,
                ..new.record(CredentialKind::Personal)
            },
        }])
    }

    /// May `actor` manage (rotate, revoke) this credential?
    fn may_manage(&self, actor: &Actor, c: &Credential) -> bool {
        match actor {
            Actor::Human { user, .. } => {
                if c.record.user.as_ref() == Some(user) {
                    return true;
                }
                // An auditor manages their own login and nothing else.
                let writer = self
                    .users
                    .get(user)
                    .is_some_and(|u| u.record.roles.iter().any(|r| *r != Role::Auditor));
                writer
                    && (self.is_admin(user)
                        || c.record
                            .agent
                            .as_ref()
                            .and_then(|a| self.agents.get(a))
                            .is_some_and(|a| &a.record.owner == user))
            }
            // An agent may end its own sessions.
            Actor::Agent {
                agent, credential, ..
            } => {
                c.record.agent.as_ref() == Some(agent)
                    && c.record.kind == CredentialKind::Session
                    && &c.record.id == credential
            }
            Actor::Bootstrap | Actor::System { .. } => false,
        }
    }

    /// Rotation: a new credential with the same purpose; the old one keeps
    /// working until `grace_until`, then is revoked.
    pub fn plan_rotate(
        &self,
        actor: &Actor,
        old: &CredentialId,
        new: NewCredential,
        grace_until: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<Event>> {
        let c = self.credential(old)?;
        if !self.may_manage(actor, c) {
            return Err(Forbidden(format!("not allowed to rotate credential {old}")));
        }
        if let Some(why) = c.dead_at(now) {
            return Err(Conflict(format!("credential {old} is {why}")));
        }
        if c.grace_until.is_some() {
            return Err(Conflict(format!("credential {old} was already rotated")));
        }
        let kind = c.record.kind;
        if kind == CredentialKind::Session {
            return Err(Invalid(
                "session credentials are not rotated; start a new session".into(),
            ));
        }
        let project = match &c.record.agent {
            Some(agent) => Some(self.active_agent(agent)?.record.project.clone()),
            None => None,
        };
        Ok(vec![Event::CredentialIssued {
            project,
            replaces: Some((old.clone(), grace_until)),
            credential: CredentialRecord {
                agent: c.record.agent.clone(),
                user: c.record.user.clone(),
                scope: c.record.scope.clone(),
                // A rotation never turns an expiring key into a lasting one:
                // unless told otherwise, the new key lives as long as the old.
                expires_at: new.expires_at.or_else(|| {
                    c.record.expires_at.map(|end| {
                        let lifetime = end.as_micros() - c.issued_at.as_micros();
                        Timestamp::from_micros(now.as_micros().saturating_add(lifetime))
                    })
                }),
                label: new.label.clone().or_else(|| c.record.label.clone()),
                ..new.record(kind)
            },
        }])
    }

    pub fn plan_revoke(
        &self,
        actor: &Actor,
        id: &CredentialId,
        reason: String,
    ) -> Result<Vec<Event>> {
        text("reason", &reason, 2000)?;
        let c = self.credential(id)?;
        if !self.may_manage(actor, c) {
            return Err(Forbidden(format!("not allowed to revoke credential {id}")));
        }
        if c.revoked.is_some() {
            return Err(Conflict(format!("credential {id} is already revoked")));
        }
        Ok(vec![self.revocation(c, reason)])
    }

    fn revocation(&self, c: &Credential, reason: String) -> Event {
        Event::CredentialRevoked {
            credential: c.record.id.clone(),
            agent: c.record.agent.clone(),
            project: c
                .record
                .agent
                .as_ref()
                .and_then(|a| self.agents.get(a))
                .map(|a| a.record.project.clone()),
            reason,
        }
    }

    /// Credentials past their expiry or rotation grace that have no
    /// revocation entry yet; the server records one for each, so the ledger
    /// shows when every credential stopped working.
    pub fn plan_expire(&self, now: Timestamp) -> Vec<Event> {
        let mut due: Vec<&Credential> = self
            .credentials
            .values()
            .filter(|c| c.revoked.is_none() && self.credential_dead_at(c, now).is_some())
            .collect();
        due.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        due.into_iter()
            .map(|c| {
                let why = if c.dead_at(now).is_none() {
                    "the key that started this session stopped working"
                } else if c.grace_until.is_some_and(|t| now >= t) {
                    "rotation grace period ended"
                } else if c.record.kind == CredentialKind::Session {
                    "session expired"
                } else {
                    "expired"
                };
                self.revocation(c, why.to_owned())
            })
            .collect()
    }

    // ---- access reviews -------------------------------------------------------

    pub fn plan_open_review(
        &self,
        now: Timestamp,
        last_used: impl Fn(&CredentialId) -> Option<Timestamp>,
    ) -> Result<Vec<Event>> {
        if let Some(r) = self.reviews.values().find(|r| r.completed_at.is_none()) {
            return Err(Conflict(format!(
                "access review {} is still open; complete it first",
                r.seq
            )));
        }
        let items = self
            .agents
            .values()
            .filter(|a| a.status != AgentStatus::Retired)
            .map(|a| {
                let mut credentials: Vec<ReviewCredential> = self
                    .live_credentials_of(&a.record.id, now)
                    .map(|c| review_credential(c, now, &last_used))
                    .collect();
                credentials.sort_by(|x, y| x.id.cmp(&y.id));
                ReviewItem {
                    agent: a.record.id.clone(),
                    owner: a.record.owner.clone(),
                    project: a.record.project.clone(),
                    status: a.status.as_str().to_owned(),
                    scope: a.record.scope.clone(),
                    credentials,
                }
            })
            .collect();
        let humans = self
            .users
            .values()
            .filter(|u| !u.record.disabled)
            .map(|u| {
                let mut tokens: Vec<ReviewCredential> = self
                    .credentials
                    .values()
                    .filter(|c| c.record.user.as_ref() == Some(&u.record.id))
                    .filter(|c| c.dead_at(now).is_none())
                    .map(|c| review_credential(c, now, &last_used))
                    .collect();
                tokens.sort_by(|x, y| x.id.cmp(&y.id));
                ReviewHuman {
                    user: u.record.id.clone(),
                    roles: u.record.roles.clone(),
                    projects: self
                        .projects
                        .values()
                        .filter(|p| p.members.contains(&u.record.id))
                        .map(|p| p.id.clone())
                        .collect(),
                    kyc: u.record.kyc.status,
                    tokens,
                }
            })
            .collect();
        Ok(vec![Event::AccessReview {
            review: None,
            event: ReviewEvent::Opened { items, humans },
        }])
    }

    /// A reviewer's keep or revoke for one agent or human. Nobody decides
    /// on their own access.
    pub fn plan_review_decision(
        &self,
        actor: &UserId,
        review: u64,
        subject: ReviewSubject,
        decision: ReviewDecision,
        note: Option<String>,
    ) -> Result<Vec<Event>> {
        let r = self.review(review)?;
        if r.completed_at.is_some() {
            return Err(Conflict(format!("access review {review} is completed")));
        }
        if !r.subjects().any(|s| s == subject) {
            return Err(NotFound(format!(
                "{subject} is not in access review {review}"
            )));
        }
        let own = match &subject {
            ReviewSubject::User(u) => u == actor,
            ReviewSubject::Agent(a) => self.agents.get(a).is_some_and(|a| &a.record.owner == actor),
        };
        if own {
            return Err(RegistryError::Rule(
                Rule::OwnAccess,
                format!(
                    "nobody decides on their own access or their own agents'; another reviewer must decide on {subject}"
                ),
            ));
        }
        if let Some(n) = &note {
            text("note", n, 2000)?;
        }
        let (agent, user) = match subject {
            ReviewSubject::Agent(a) => (Some(a), None),
            ReviewSubject::User(u) => (None, Some(u)),
        };
        Ok(vec![Event::AccessReview {
            review: Some(review),
            event: ReviewEvent::Decided {
                agent,
                user,
                decision,
                note,
            },
        }])
    }

    /// Completes a review once every agent and human has a decision; each
    /// `revoke` takes effect in the same append. A revoked agent's live
    /// credentials are revoked and it is suspended; a revoked human's
    /// personal tokens are revoked and their account disabled (which also
    /// ends the agent sessions they started).
    pub fn plan_complete_review(&self, review: u64, now: Timestamp) -> Result<Vec<Event>> {
        let r = self.review(review)?;
        if r.completed_at.is_some() {
            return Err(Conflict(format!(
                "access review {review} is already completed"
            )));
        }
        if let Some(missing) = r.subjects().find(|s| !r.decisions.contains_key(s)) {
            return Err(Conflict(format!(
                "{missing} has no decision yet; every agent and human must be marked keep or revoke"
            )));
        }
        let decision = |s: ReviewSubject| r.decisions[&s].0;
        let mut kept = Vec::new();
        let mut revoked = Vec::new();
        let mut effects = Vec::new();
        for item in &r.items {
            match decision(ReviewSubject::Agent(item.agent.clone())) {
                ReviewDecision::Keep => kept.push(item.agent.clone()),
                ReviewDecision::Revoke => {
                    revoked.push(item.agent.clone());
                    effects.extend(self.revoke_all(&item.agent, now, "access review"));
                    if self
                        .agents
                        .get(&item.agent)
                        .is_some_and(|a| a.status == AgentStatus::Active)
                    {
                        effects.push(Event::AgentSuspended {
                            agent: item.agent.clone(),
                            project: item.project.clone(),
                            reason: format!("access review {review}: access revoked"),
                        });
                    }
                }
            }
        }
        let mut kept_users = Vec::new();
        let mut revoked_users = Vec::new();
        for human in &r.humans {
            let id = &human.user;
            match decision(ReviewSubject::User(id.clone())) {
                ReviewDecision::Keep => kept_users.push(id.clone()),
                ReviewDecision::Revoke => {
                    revoked_users.push(id.clone());
                    let Some(user) = self.users.get(id) else {
                        continue;
                    };
                    // Their personal tokens, and the agent sessions bound to
                    // them (but for those of agents revoked above, which
                    // went with their agent).
                    let mut tokens: Vec<&Credential> = self
                        .credentials
                        .values()
                        .filter(|c| {
                            c.record.user.as_ref() == Some(id)
                                || c.record.human.as_ref() == Some(id)
                        })
                        .filter(|c| c.record.agent.as_ref().is_none_or(|a| !revoked.contains(a)))
                        .filter(|c| c.dead_at(now).is_none())
                        .collect();
                    tokens.sort_by(|a, b| a.record.id.cmp(&b.record.id));
                    effects.extend(
                        tokens
                            .into_iter()
                            .map(|c| self.revocation(c, format!("access review {review}"))),
                    );
                    if !user.record.disabled {
                        let mut record = user.record.clone();
                        record.disabled = true;
                        effects.push(Event::UserUpdated {
                            user: record,
                            changed: vec!["disabled".into()],
                        });
                    }
                }
            }
        }
        if self.active_admins_besides(&revoked_users) == 0 {
            return Err(Conflict(
                "revoking these users would leave no active admin; keep one or make another admin first"
                    .into(),
            ));
        }
        effects.push(Event::AccessReview {
            review: Some(review),
            event: ReviewEvent::Completed {
                kept,
                revoked,
                kept_users,
                revoked_users,
            },
        });
        Ok(effects)
    }

    // ---- the fold ---------------------------------------------------------------

    /// Folds one appended identity event in. Never fails: the ledger is the
    /// record, so an event that refers to something unknown changes nothing.
    pub fn apply(&mut self, seq: u64, ts: Timestamp, actor: &Actor, event: &Event) {
        match event {
            Event::UserCreated { user } => {
                self.users.insert(
                    user.id.clone(),
                    User {
                        record: user.clone(),
                        created_at: ts,
                    },
                );
            }
            Event::UserUpdated { user, .. } => {
                if let Some(u) = self.users.get_mut(&user.id) {
                    u.record = user.clone();
                }
            }
            Event::ProjectCreated { project } | Event::ProjectUpdated { project } => {
                self.projects.insert(project.id.clone(), project.clone());
            }
            Event::ChangeRequested {
                agent,
                project,
                request,
                info,
            } => {
                self.changes.insert(
                    seq,
                    Change {
                        seq,
                        requested_at: ts,
                        requested_by: actor.user().cloned(),
                        agent: agent.clone(),
                        project: project.clone(),
                        request: request.clone(),
                        info: info.clone(),
                        status: ChangeStatus::Pending,
                    },
                );
                self.apply_governance(seq, ts, actor.user(), event);
            }
            Event::ChangeApproved { request, .. } => {
                if let (Some(c), Some(by)) = (self.changes.get_mut(request), actor.user()) {
                    c.status = ChangeStatus::Approved {
                        by: by.clone(),
                        seq,
                    };
                }
            }
            Event::ChangeRejected {
                request, reason, ..
            } => {
                if let (Some(c), Some(by)) = (self.changes.get_mut(request), actor.user()) {
                    c.status = ChangeStatus::Rejected {
                        by: by.clone(),
                        reason: reason.clone(),
                    };
                }
            }
            Event::AgentRegistered { request, agent } => {
                self.agents.insert(
                    agent.id.clone(),
                    Agent {
                        record: agent.clone(),
                        status: AgentStatus::Active,
                        registered_at: ts,
                        request: *request,
                    },
                );
            }
            Event::AgentSuspended { agent, .. } => self.set_status(agent, AgentStatus::Suspended),
            Event::AgentResumed { agent, .. } => self.set_status(agent, AgentStatus::Active),
            Event::AgentRetired { agent, .. } => self.set_status(agent, AgentStatus::Retired),
            Event::CredentialIssued {
                credential,
                replaces,
                ..
            } => {
                if let Some((old, until)) = replaces
                    && let Some(c) = self.credentials.get_mut(old)
                {
                    c.grace_until = Some(*until);
                }
                self.credentials.insert(
                    credential.id.clone(),
                    Credential {
                        record: credential.clone(),
                        issued_at: ts,
                        issued_by: actor.clone(),
                        revoked: None,
                        grace_until: None,
                    },
                );
            }
            Event::CredentialRevoked {
                credential, reason, ..
            } => {
                if let Some(c) = self.credentials.get_mut(credential) {
                    c.revoked.get_or_insert((ts, reason.clone()));
                }
            }
            Event::AccessReview { review, event } => match (review, event) {
                (None, ReviewEvent::Opened { items, humans }) => {
                    self.reviews.insert(
                        seq,
                        Review {
                            seq,
                            opened_at: ts,
                            opened_by: actor.user().cloned(),
                            items: items.clone(),
                            humans: humans.clone(),
                            decisions: BTreeMap::new(),
                            completed_at: None,
                        },
                    );
                }
                (Some(r), decided @ ReviewEvent::Decided { decision, note, .. }) => {
                    if let (Some(r), Some(subject)) = (self.reviews.get_mut(r), decided.subject()) {
                        r.decisions
                            .insert(subject, (*decision, actor.user().cloned(), note.clone()));
                    }
                }
                (Some(r), ReviewEvent::Completed { .. }) => {
                    if let Some(r) = self.reviews.get_mut(r) {
                        r.completed_at = Some(ts);
                    }
                }
                _ => {}
            },
            Event::SignatureRejected { .. } => {}
            Event::AgentUpdated { .. }
            | Event::PolicyActivated { .. }
            | Event::KillSwitch { .. }
            | Event::LimitsSet { .. } => self.apply_governance(seq, ts, actor.user(), event),
        }
    }

    /// Retirement is final, on replay too.
    fn set_status(&mut self, agent: &AgentId, status: AgentStatus) {
        if let Some(a) = self.agents.get_mut(agent)
            && a.status != AgentStatus::Retired
        {
            a.status = status;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::AccessRule;
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn scope(tools: &[&str], models: &[&str]) -> Scope {
        Scope {
            tools: names(tools),
            models: names(models),
            ..Scope::default()
        }
    }

    /// The effective scope is the declared scope, narrowed by the project's
    /// rules for the agent and by the credential: the same answer as the
    /// intersection of the three, and as `allows` asks name by name.
    #[test]
    fn effective_scope_agrees_with_the_intersection_and_with_allows() {
        let agent_id: AgentId = "bot".parse().unwrap();
        let project_id: ProjectId = "support".parse().unwrap();
        let mut r = Registry::default();
        let project = ProjectRecord {
            id: project_id.clone(),
            name: "Support".into(),
            members: Vec::new(),
            rules: vec![
                AccessRule {
                    agents: vec!["*".into()],
                    allows: scope(&["search", "email"], &["gpt-4o"]),
                },
                AccessRule {
                    agents: vec!["bot".into()],
                    allows: scope(&["shell"], &[]),
                },
                AccessRule {
                    agents: vec!["other".into()],
                    allows: scope(&["payments"], &["o3"]),
                },
            ],
        };
        r.projects.insert(project_id.clone(), project.clone());
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
        let agent = Agent {
            record: AgentRecord {
                id: agent_id.clone(),
                name: "Bot".into(),
                owner: "dev".parse().unwrap(),
                project: project_id,
                purpose: "tests".into(),
                scope: scope(&["search", "shell", "payments", "ftp"], &["gpt-4o", "o3"]),
                did: super::super::Did::from_key(&key),
                system_prompt_sha256: None,
                require_signature: false,
            },
            status: AgentStatus::Active,
            registered_at: Timestamp::from_micros(0),
            request: 1,
        };
        for narrow in [None, Some(scope(&["search", "email", "payments"], &["o3"]))] {
            let credential = Credential {
                record: CredentialRecord {
                    id: "abcdefghij234567".to_owned().try_into().unwrap(),
                    kind: CredentialKind::ApiKey,
                    prefix: "dka_abcdefghij234567".into(),
                    sha256: "00".repeat(32),
                    agent: Some(agent_id.clone()),
                    user: None,
                    scope: narrow.clone(),
                    task: None,
                    human: None,
                    human_assurance: None,
                    parent: None,
                    expires_at: None,
                    label: None,
                },
                issued_at: Timestamp::from_micros(0),
                issued_by: Actor::Bootstrap,
                revoked: None,
                grace_until: None,
            };
            let effective = r.effective_scope(&agent, &credential);
            let mut expected = agent
                .record
                .scope
                .intersect(&project.allowed_for(&agent_id));
            if let Some(n) = &narrow {
                expected = expected.intersect(n);
            }
            assert_eq!(effective, expected, "credential scope {narrow:?}");
            for f in [ScopeField::Tools, ScopeField::Models] {
                for name in [
                    "search", "email", "shell", "payments", "ftp", "gpt-4o", "o3",
                ] {
                    assert_eq!(
                        effective.get(f).contains(name),
                        r.allows(&agent, &credential, f, name),
                        "{f:?} {name} with {narrow:?}"
                    );
                }
            }
        }
    }
}
