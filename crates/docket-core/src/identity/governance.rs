//! The control-plane state around policy: change requests that need a
//! second human (policy versions and rollbacks, agent scope or system
//! prompt changes, project access rules), kill switches and limits. Like
//! the rest of the registry it is a fold of ledger entries; the Cedar side
//! (compiling and testing a policy text) is `docket-policy`'s and happens in
//! the server before a request is planned.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{AccessRule, ChangeRequest};
use super::registry::{AgentStatus, ChangeStatus, Registry, RegistryError};
use super::{AgentId, CredentialId, Event, ProjectId, Scope, UserId};
use crate::Timestamp;

use RegistryError::{Conflict, Forbidden, Invalid, NotFound};

type Result<T> = std::result::Result<T, RegistryError>;

/// What every change request carries besides the change itself (CC8.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_plan: Option<String>,
    /// Test evidence: for a policy version, the report of its own test cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Value>,
}

impl ChangeInfo {
    /// Policy, scope and rules changes must say what and how to undo it.
    fn require_described(&self) -> Result<()> {
        for (what, v) in [
            ("description", &self.description),
            ("rollback_plan", &self.rollback_plan),
        ] {
            match v {
                Some(s) if !s.trim().is_empty() && s.len() <= 4000 => {}
                _ => {
                    return Err(Invalid(format!(
                        "{what} is required: 1 to 4000 bytes saying {}",
                        if what == "description" {
                            "what changes and why"
                        } else {
                            "how to undo the change"
                        }
                    )));
                }
            }
        }
        Ok(())
    }
}

/// What a kill switch stops.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum KillTarget {
    /// Every agent.
    Global,
    Project {
        project: ProjectId,
    },
    Agent {
        agent: AgentId,
    },
}

impl std::fmt::Display for KillTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillTarget::Global => f.write_str("the global kill switch"),
            KillTarget::Project { project } => write!(f, "the kill switch of project {project}"),
            KillTarget::Agent { agent } => write!(f, "the kill switch of agent {agent}"),
        }
    }
}

/// What limits apply to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum LimitTarget {
    Project { project: ProjectId },
    Agent { agent: AgentId },
    Credential { credential: CredentialId },
}

impl std::fmt::Display for LimitTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitTarget::Project { project } => write!(f, "project {project}"),
            LimitTarget::Agent { agent } => write!(f, "agent {agent}"),
            LimitTarget::Credential { credential } => write!(f, "credential {credential}"),
        }
    }
}

/// Budgets (USD, in micro-dollars, per UTC day and calendar month) and
/// rate limits. `None` = no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_day_micro_usd: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_month_micro_usd: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<u32>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self == &Limits::default()
    }
}

/// A policy version as requested: its text and test cases.
#[derive(Clone, Debug)]
pub struct PolicyVersion {
    pub version: u64,
    pub sha256: String,
    pub policy: String,
    pub tests: Value,
    /// `seq` of the `change.requested` entry.
    pub request: u64,
    /// When it took effect, each time (`seq`, time).
    pub activations: Vec<(u64, Timestamp)>,
}

/// The version in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivePolicy {
    pub version: u64,
    pub sha256: String,
    /// `seq` of the `policy.activated` entry.
    pub seq: u64,
    pub at: Timestamp,
}

/// An engaged kill switch.
#[derive(Clone, Debug)]
pub struct Engaged {
    pub seq: u64,
    pub at: Timestamp,
    pub by: Option<UserId>,
    pub reason: String,
}

fn reason_text(reason: &str) -> Result<()> {
    if reason.trim().is_empty() || reason.len() > 2000 {
        return Err(Invalid("reason must be 1 to 2000 bytes".into()));
    }
    Ok(())
}

impl Registry {
    /// The version a new policy request gets: one past every version ever
    /// requested, rejected ones included, so a number never means two texts.
    pub fn next_policy_version(&self) -> u64 {
        self.policies.keys().next_back().map_or(1, |v| v + 1)
    }

    pub fn policy_version(&self, version: u64) -> Result<&PolicyVersion> {
        self.policies
            .get(&version)
            .ok_or_else(|| NotFound(format!("no policy version {version}")))
    }

    /// A new policy version, already compiled and tested by the caller
    /// (`info.evidence` holds the test report).
    pub fn plan_request_policy(
        &self,
        sha256: String,
        policy: String,
        tests: Value,
        info: ChangeInfo,
    ) -> Result<Vec<Event>> {
        info.require_described()?;
        if info.evidence.is_none() {
            return Err(Invalid(
                "a policy version needs its test report as evidence".into(),
            ));
        }
        Ok(vec![Event::ChangeRequested {
            agent: None,
            project: None,
            request: ChangeRequest::PolicyVersion {
                version: self.next_policy_version(),
                sha256,
                policy,
                tests,
            },
            info,
        }])
    }

    /// Activating an earlier version again: itself a change to approve.
    pub fn plan_request_rollback(&self, version: u64, info: ChangeInfo) -> Result<Vec<Event>> {
        info.require_described()?;
        let v = self.policy_version(version)?;
        if v.activations.is_empty() {
            return Err(Conflict(format!(
                "policy version {version} was never active; approve its own request instead"
            )));
        }
        if self.active_policy.as_ref().map(|a| a.version) == Some(version) {
            return Err(Conflict(format!("policy version {version} is active now")));
        }
        Ok(vec![Event::ChangeRequested {
            agent: None,
            project: None,
            request: ChangeRequest::PolicyRollback { version },
            info,
        }])
    }

    /// A new scope or system prompt for an agent, by its owner or an admin.
    pub fn plan_request_agent_update(
        &self,
        actor: &UserId,
        agent: &AgentId,
        scope: Scope,
        system_prompt_sha256: Option<String>,
        require_signature: Option<bool>,
        info: ChangeInfo,
    ) -> Result<Vec<Event>> {
        info.require_described()?;
        let a = self.agent(agent)?;
        if a.status == AgentStatus::Retired {
            return Err(Conflict(format!("agent {agent} is retired")));
        }
        if &a.record.owner != actor && !self.is_admin(actor) {
            return Err(Forbidden(format!(
                "only the owner ({}) or an admin may ask to change {agent}",
                a.record.owner
            )));
        }
        if let Some(h) = &system_prompt_sha256
            && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Invalid("system_prompt_sha256 must be 64 hex digits".into()));
        }
        scope.check_names().map_err(Invalid)?;
        let require_signature = require_signature.unwrap_or(a.record.require_signature);
        if scope == a.record.scope
            && system_prompt_sha256 == a.record.system_prompt_sha256
            && require_signature == a.record.require_signature
        {
            return Err(Invalid("the request changes nothing".into()));
        }
        self.check_agent_scope(agent, &a.record.project, &scope)?;
        if let Some(c) = self.pending_change_for(agent) {
            return Err(Conflict(format!(
                "agent {agent} already has a pending request (seq {})",
                c.seq
            )));
        }
        Ok(vec![Event::ChangeRequested {
            agent: Some(agent.clone()),
            project: Some(a.record.project.clone()),
            request: ChangeRequest::AgentUpdate {
                scope,
                system_prompt_sha256,
                require_signature,
            },
            info,
        }])
    }

    fn check_agent_scope(&self, agent: &AgentId, project: &ProjectId, scope: &Scope) -> Result<()> {
        let allowed = self.project(project)?.allowed_for(agent);
        if let Some((what, name)) = scope.first_outside(&allowed) {
            return Err(Forbidden(format!(
                "scope.{what} {name:?} is not allowed for {agent} by project {project}'s rules"
            )));
        }
        Ok(())
    }

    /// New access rules for a project (which agents may use which tools,
    /// models and data classes).
    pub fn plan_request_project_rules(
        &self,
        project: &ProjectId,
        rules: Vec<AccessRule>,
        info: ChangeInfo,
        data_classes: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<Event>> {
        info.require_described()?;
        let mut record = self.project(project)?.clone();
        if record.rules == rules {
            return Err(Invalid("the request changes nothing".into()));
        }
        record.rules = rules.clone();
        self.check_project(&record, data_classes)?;
        if let Some(c) = self.changes.values().find(|c| {
            c.status == ChangeStatus::Pending
                && matches!(c.request, ChangeRequest::ProjectRules { .. })
                && c.project.as_ref() == Some(project)
        }) {
            return Err(Conflict(format!(
                "project {project} already has a pending rules change (seq {})",
                c.seq
            )));
        }
        Ok(vec![Event::ChangeRequested {
            agent: None,
            project: Some(project.clone()),
            request: ChangeRequest::ProjectRules { rules },
            info,
        }])
    }

    /// The effects of approving one of the changes above. `tests` is the
    /// policy's test report, re-run by the caller just before activation.
    pub(super) fn approve_governance(
        &self,
        seq: u64,
        request: &ChangeRequest,
        tests: Option<Value>,
    ) -> Result<Vec<Event>> {
        let change = self.change(seq)?;
        match request {
            ChangeRequest::PolicyVersion {
                version, sha256, ..
            } => Ok(vec![Event::PolicyActivated {
                request: seq,
                version: *version,
                sha256: sha256.clone(),
                rollback: false,
                tests,
            }]),
            ChangeRequest::PolicyRollback { version } => {
                let v = self.policy_version(*version)?;
                if self.active_policy.as_ref().map(|a| a.version) == Some(*version) {
                    return Err(Conflict(format!(
                        "policy version {version} is already active"
                    )));
                }
                Ok(vec![Event::PolicyActivated {
                    request: seq,
                    version: *version,
                    sha256: v.sha256.clone(),
                    rollback: true,
                    tests,
                }])
            }
            ChangeRequest::AgentUpdate {
                scope,
                system_prompt_sha256,
                require_signature,
            } => {
                let id = change
                    .agent
                    .as_ref()
                    .ok_or_else(|| Invalid("agent change without an agent".into()))?;
                let a = self.agent(id)?;
                if a.status == AgentStatus::Retired {
                    return Err(Conflict(format!(
                        "agent {id} is retired; reject this request"
                    )));
                }
                self.check_agent_scope(id, &a.record.project, scope)
                    .map_err(|e| Conflict(format!("{e}; reject this request")))?;
                let mut record = a.record.clone();
                record.scope = scope.clone();
                record.system_prompt_sha256 = system_prompt_sha256.clone();
                record.require_signature = *require_signature;
                Ok(vec![Event::AgentUpdated {
                    request: seq,
                    agent: record,
                }])
            }
            ChangeRequest::ProjectRules { rules } => {
                let id = change
                    .project
                    .as_ref()
                    .ok_or_else(|| Invalid("rules change without a project".into()))?;
                let mut record = self.project(id)?.clone();
                record.rules = rules.clone();
                Ok(vec![Event::ProjectUpdated { project: record }])
            }
            ChangeRequest::AgentRegister { .. } | ChangeRequest::AgentRetire { .. } => {
                Err(Invalid("not a governance change".into()))
            }
        }
    }

    /// Engages or releases a kill switch; effective on the next request.
    /// Admins and approvers do either; others may only stop an agent they
    /// own or a project they belong to.
    pub fn plan_kill_switch(
        &self,
        actor: &UserId,
        target: KillTarget,
        engaged: bool,
        reason: String,
    ) -> Result<Vec<Event>> {
        reason_text(&reason)?;
        if !self.is_admin(actor) && !self.has_role(actor, super::Role::Approver) {
            let theirs = match &target {
                KillTarget::Agent { agent } => self
                    .agents
                    .get(agent)
                    .is_some_and(|a| &a.record.owner == actor),
                KillTarget::Project { project } => self.is_member(actor, project),
                KillTarget::Global => false,
            };
            if !theirs || !engaged {
                return Err(Forbidden(
                    "only admins and approvers release kill switches or stop everything; others may stop their own agents and projects"
                        .into(),
                ));
            }
        }
        match &target {
            KillTarget::Global => {}
            KillTarget::Project { project } => {
                self.project(project)?;
            }
            KillTarget::Agent { agent } => {
                self.agent(agent)?;
            }
        }
        let on = self.kill_switches.contains_key(&target);
        if on == engaged {
            return Err(Conflict(format!(
                "{target} is already {}",
                if on { "engaged" } else { "released" }
            )));
        }
        Ok(vec![Event::KillSwitch {
            target,
            engaged,
            reason,
        }])
    }

    /// Replaces the limits of a project, agent or credential.
    pub fn plan_limits(&self, target: LimitTarget, limits: Limits) -> Result<Vec<Event>> {
        match &target {
            LimitTarget::Project { project } => {
                self.project(project)?;
            }
            LimitTarget::Agent { agent } => {
                self.agent(agent)?;
            }
            LimitTarget::Credential { credential } => {
                let c = self
                    .credentials
                    .get(credential)
                    .ok_or_else(|| NotFound(format!("no credential {credential}")))?;
                if c.record.agent.is_none() {
                    return Err(Invalid(format!(
                        "credential {credential} is a personal token; limits apply to agents' credentials"
                    )));
                }
            }
        }
        for (what, v) in [
            ("budget_day_micro_usd", limits.budget_day_micro_usd),
            ("budget_month_micro_usd", limits.budget_month_micro_usd),
        ] {
            if v.is_some_and(|v| v < 0) {
                return Err(Invalid(format!("{what} must not be negative")));
            }
        }
        Ok(vec![Event::LimitsSet { target, limits }])
    }

    /// The kill switch that stops `agent` of `project`, if one is engaged.
    pub fn kill_switch_for(
        &self,
        agent: &AgentId,
        project: &ProjectId,
    ) -> Option<(&KillTarget, &Engaged)> {
        if self.kill_switches.is_empty() {
            return None;
        }
        [
            KillTarget::Global,
            KillTarget::Project {
                project: project.clone(),
            },
            KillTarget::Agent {
                agent: agent.clone(),
            },
        ]
        .iter()
        .find_map(|t| self.kill_switches.get_key_value(t))
    }

    pub(super) fn apply_governance(
        &mut self,
        seq: u64,
        ts: Timestamp,
        by: Option<&UserId>,
        event: &Event,
    ) {
        match event {
            Event::ChangeRequested {
                request:
                    ChangeRequest::PolicyVersion {
                        version,
                        sha256,
                        policy,
                        tests,
                    },
                ..
            } => {
                self.policies.insert(
                    *version,
                    PolicyVersion {
                        version: *version,
                        sha256: sha256.clone(),
                        policy: policy.clone(),
                        tests: tests.clone(),
                        request: seq,
                        activations: Vec::new(),
                    },
                );
            }
            Event::PolicyActivated {
                version, sha256, ..
            } => {
                if let Some(v) = self.policies.get_mut(version) {
                    v.activations.push((seq, ts));
                }
                self.active_policy = Some(ActivePolicy {
                    version: *version,
                    sha256: sha256.clone(),
                    seq,
                    at: ts,
                });
            }
            Event::AgentUpdated { agent, .. } => {
                if let Some(a) = self.agents.get_mut(&agent.id) {
                    a.record = agent.clone();
                }
            }
            Event::KillSwitch {
                target,
                engaged,
                reason,
            } => {
                if *engaged {
                    self.kill_switches.insert(
                        target.clone(),
                        Engaged {
                            seq,
                            at: ts,
                            by: by.cloned(),
                            reason: reason.clone(),
                        },
                    );
                } else {
                    self.kill_switches.remove(target);
                }
            }
            Event::LimitsSet { target, limits } => {
                if limits.is_empty() {
                    self.limits.remove(target);
                } else {
                    self.limits.insert(target.clone(), limits.clone());
                }
            }
            _ => {}
        }
    }
}
