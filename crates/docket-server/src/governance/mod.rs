//! The decision on every agent action: kill switches, then the agent's
//! scope, then Cedar policy, then budgets and rate limits — and the
//! `decision` entry that records it, durable before anything is forwarded.
//! Held actions become approval requests ([`approvals`]).

pub mod approvals;
pub mod limits;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use docket_core::identity::governance::{LimitTarget, Limits};
use docket_core::identity::{
    Actor, AgentId, CredentialId, ProjectId, Registry, ScopeField, UserId,
};
use docket_core::{Entry, EntryType, Timestamp};
use docket_policy::{Decision, Outcome, PolicySet};
use docket_store::{Appended, Ledger, NewEntry, Order, Query, StoreError};
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::identity::{Caller, Identity};

pub use approvals::{Approval, Approvals};
pub use limits::{Claim, Limiter, Permit};

/// The policy version in force, compiled.
#[derive(Debug)]
pub struct Compiled {
    /// `None`: no version was ever activated; the built-in deny-all set.
    pub version: Option<u64>,
    pub sha256: String,
    pub set: PolicySet,
}

/// The stage of the decision that settled the outcome.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    KillSwitch,
    Scope,
    Policy,
    Budget,
    RateLimit,
    Concurrency,
    Approval,
}

impl From<limits::Stage> for Stage {
    fn from(s: limits::Stage) -> Self {
        match s {
            limits::Stage::Budget => Stage::Budget,
            limits::Stage::RateLimit => Stage::RateLimit,
            limits::Stage::Concurrency => Stage::Concurrency,
        }
    }
}

/// Who reports an action: the gateway saw it, or the agent says so.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Gateway,
    AgentReported,
}

/// The agent behind a request, as authentication resolved it.
#[derive(Clone, Debug)]
pub struct AgentCaller {
    pub agent: AgentId,
    pub project: ProjectId,
    pub credential: CredentialId,
    pub human: Option<UserId>,
    pub actor: Actor,
}

impl AgentCaller {
    pub fn from_caller(caller: &Caller) -> Result<Self, ApiError> {
        match caller {
            Caller::Agent {
                agent,
                project,
                actor,
                ..
            } => {
                let Actor::Agent {
                    credential, human, ..
                } = actor
                else {
                    return Err(ApiError::internal("agent caller without agent actor"));
                };
                Ok(Self {
                    agent: agent.clone(),
                    project: project.clone(),
                    credential: credential.clone(),
                    human: human.clone(),
                    actor: actor.clone(),
                })
            }
            _ => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "only agents act through the gateway; use an agent credential",
            )),
        }
    }

    fn assurance(&self) -> &'static str {
        match &self.actor {
            Actor::Agent {
                human_assurance, ..
            } => match human_assurance {
                docket_core::identity::HumanAssurance::Session => "session",
                docket_core::identity::HumanAssurance::Asserted => "asserted",
                docket_core::identity::HumanAssurance::None => "none",
            },
            _ => "none",
        }
    }

    fn task(&self) -> Option<String> {
        match &self.actor {
            Actor::Agent { task, .. } => task.clone(),
            _ => None,
        }
    }
}

/// What the agent wants to do.
#[derive(Clone, Debug)]
pub struct ActionRequest {
    pub action: docket_policy::Action,
    pub resource: docket_policy::Resource,
    pub claim: Claim,
    /// SHA-256 of the exact request (see [`request_digest`]).
    pub request_sha256: String,
    pub source: Source,
    /// Extra inputs worth recording (digests, never payloads).
    pub extra: Value,
}

/// The digest an approval is bound to: method, path and body.
pub fn request_digest(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// What the gate decided, before anything is written.
#[derive(Debug)]
pub struct Evaluation {
    pub outcome: Outcome,
    pub stage: Stage,
    pub reason: String,
    pub decision: Option<Decision>,
    pub policy_version: Option<u64>,
    pub policy_sha256: String,
    /// What Cedar saw; serialized into the decision entry, not here, so
    /// the decision itself stays cheap.
    pub inputs: Option<Box<docket_policy::Request>>,
    /// The call's claim on budgets and rate limits, when it may go ahead now.
    pub permit: Option<Permit>,
}

fn scope_field(action: docket_policy::Action) -> ScopeField {
    match action {
        docket_policy::Action::CallModel | docket_policy::Action::Embed => ScopeField::Models,
        docket_policy::Action::CallTool => ScopeField::Tools,
        docket_policy::Action::ReadData | docket_policy::Action::WriteData => {
            ScopeField::DataClasses
        }
    }
}

static NO_LIMITS: Limits = Limits {
    budget_day_micro_usd: None,
    budget_month_micro_usd: None,
    requests_per_minute: None,
    tokens_per_minute: None,
    concurrent: None,
};

/// The limits of a call's project, agent and credential. All three are
/// counted even without limits, so a budget set mid-day sees the day's
/// spending so far.
fn limited<'a>(registry: &'a Registry, caller: &AgentCaller) -> Vec<(LimitTarget, &'a Limits)> {
    [
        LimitTarget::Project {
            project: caller.project.clone(),
        },
        LimitTarget::Agent {
            agent: caller.agent.clone(),
        },
        LimitTarget::Credential {
            credential: caller.credential.clone(),
        },
    ]
    .into_iter()
    .map(|t| {
        let l = registry.limits.get(&t).unwrap_or(&NO_LIMITS);
        (t, l)
    })
    .collect()
}

/// Kill switches, scope, Cedar, then limits. Pure but for the limiter's
/// counters; `docket bench policy` times exactly this.
pub fn evaluate(
    registry: &Registry,
    policy: &Compiled,
    limiter: &Arc<Limiter>,
    caller: &AgentCaller,
    req: &ActionRequest,
    now: Timestamp,
) -> Evaluation {
    let deny = |stage, reason: String, inputs: Option<Box<docket_policy::Request>>| Evaluation {
        outcome: Outcome::Deny,
        stage,
        reason,
        decision: None,
        policy_version: policy.version,
        policy_sha256: policy.sha256.clone(),
        inputs,
        permit: None,
    };
    if let Some((target, engaged)) = registry.kill_switch_for(&caller.agent, &caller.project) {
        return deny(
            Stage::KillSwitch,
            format!("{target} is engaged: {}", engaged.reason),
            None,
        );
    }
    let (Some(agent), Some(credential)) = (
        registry.agents.get(&caller.agent),
        registry.credentials.get(&caller.credential),
    ) else {
        return deny(
            Stage::Scope,
            "the agent or its credential is no longer registered".into(),
            None,
        );
    };
    // The model or tool by name (a dataset is scoped by its data classes),
    // then every data class the call touches.
    let named = match scope_field(req.action) {
        ScopeField::DataClasses => None,
        field => Some((field, req.resource.id.as_str())),
    };
    let classes = req
        .resource
        .data_classes
        .iter()
        .map(|c| (ScopeField::DataClasses, c.as_str()));
    for (f, name) in named.into_iter().chain(classes) {
        if !registry.allows(agent, credential, f, name) {
            return deny(
                Stage::Scope,
                format!(
                    "{} {name:?} is outside agent {}'s scope (declared scope, project rules and credential)",
                    f.as_str(),
                    caller.agent
                ),
                None,
            );
        }
    }
    let scope = registry.effective_scope(agent, credential);
    let request = docket_policy::Request {
        principal: docket_policy::Principal {
            agent: caller.agent.to_string(),
            project: caller.project.to_string(),
            owner: agent.record.owner.to_string(),
            tools: scope.tools,
            models: scope.models,
            data_classes: scope.data_classes,
            environments: scope.environments,
        },
        action: req.action,
        resource: req.resource.clone(),
        context: docket_policy::Context {
            time: now.as_micros().div_euclid(1_000_000),
            human: caller.human.as_ref().map(|h| h.to_string()),
            human_assurance: caller.assurance().to_owned(),
            estimated_cost_micro_usd: req.claim.estimate_micro_usd,
            estimated_tokens: i64::try_from(req.claim.estimated_tokens).unwrap_or(i64::MAX),
            task: caller.task(),
        },
    };
    let decision = policy.set.decide(&request);
    let inputs = Some(Box::new(request));
    let mut eval = Evaluation {
        outcome: decision.outcome,
        stage: Stage::Policy,
        reason: decision.reason.clone(),
        decision: Some(decision),
        policy_version: policy.version,
        policy_sha256: policy.sha256.clone(),
        inputs,
        permit: None,
    };
    if eval.outcome == Outcome::Deny {
        return eval;
    }
    let limits = limited(registry, caller);
    let checked = if eval.outcome == Outcome::Allow {
        limiter.admit(&limits, &req.claim, now).map(Some)
    } else {
        // Held for a human: count it only when it goes ahead.
        limiter.check(&limits, &req.claim, now).map(|()| None)
    };
    match checked {
        Ok(permit) => eval.permit = permit,
        Err(trip) => {
            eval.outcome = Outcome::Deny;
            eval.stage = trip.stage.into();
            eval.reason = trip.reason;
        }
    }
    eval
}

/// A decision written to the ledger.
#[derive(Debug)]
pub struct Decided {
    pub seq: u64,
    pub outcome: Outcome,
    pub stage: Stage,
    pub reason: String,
    pub permit: Option<Permit>,
    /// Set when the action is held: the approval request's id.
    pub approval: Option<Approval>,
}

pub struct Governance {
    pub identity: Arc<Identity>,
    ledger: Arc<Ledger>,
    compiled: RwLock<Arc<Compiled>>,
    pub limiter: Arc<Limiter>,
    pub approvals: Approvals,
    pub approval_ttl: Duration,
    /// Decisions whose agent-reported outcome is recorded or being recorded
    /// since start; older records are looked up in the ledger.
    recorded: parking_lot::Mutex<std::collections::HashSet<u64>>,
    /// The log's size when this server started: outcomes recorded for
    /// decisions below it may be in the ledger only.
    started_at_seq: u64,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Governance { .. }")
    }
}

fn deny_all() -> Compiled {
    Compiled {
        version: None,
        sha256: String::new(),
        set: PolicySet::deny_all(),
    }
}

/// A policy entry that no longer compiles stops the server from starting:
/// running with a different policy than the ledger says is active would
/// be worse than not running.
#[derive(Debug, thiserror::Error)]
#[error("active policy version {version} does not compile: {error}")]
pub struct PolicyLoadError {
    pub version: u64,
    pub error: String,
}

impl Governance {
    /// Compiles the active policy, folds recent approvals and this month's
    /// spending from the ledger. Blocking: reads the store.
    pub fn load(
        identity: Arc<Identity>,
        ledger: Arc<Ledger>,
        approval_ttl: Duration,
    ) -> Result<Self, StoreError> {
        let compiled = {
            let registry = identity.read();
            compile_active(&registry).map_err(|e| StoreError::Corrupt(e.to_string()))?
        };
        let approvals = Approvals::load(&ledger, approval_ttl)?;
        let limiter = Arc::new(Limiter::default());
        load_usage(&ledger, &limiter)?;
        Ok(Self {
            identity,
            compiled: RwLock::new(Arc::new(compiled)),
            limiter,
            approvals,
            approval_ttl,
            recorded: Default::default(),
            started_at_seq: ledger.size(),
            ledger,
        })
    }

    /// The compiled active policy, recompiled when the registry says
    /// another version took effect.
    pub fn policy(&self) -> Result<Arc<Compiled>, ApiError> {
        let active = self
            .identity
            .read()
            .active_policy
            .as_ref()
            .map(|a| a.version);
        let current = self.compiled.read().clone();
        if current.version == active {
            return Ok(current);
        }
        let fresh = Arc::new(compile_active(&self.identity.read()).map_err(ApiError::internal)?);
        *self.compiled.write() = fresh.clone();
        Ok(fresh)
    }

    /// Evaluates `req` and records the decision (and, when held, the
    /// approval request) before returning. Fail-closed: if the ledger
    /// cannot be written the action is refused.
    pub async fn decide(
        &self,
        caller: &AgentCaller,
        req: &ActionRequest,
    ) -> Result<Decided, ApiError> {
        let policy = self.policy()?;
        let now = Timestamp::now();
        let eval = {
            let registry = self.identity.read();
            evaluate(&registry, &policy, &self.limiter, caller, req, now)
        };
        let body = decision_body(caller, req, &eval, None);
        // Only a held call needs what approvers are shown.
        let held = (eval.outcome == Outcome::RequireApproval).then(|| summary(caller, req, &eval));
        let Evaluation {
            outcome,
            stage,
            reason,
            permit,
            ..
        } = eval;
        let acks = self
            .append(vec![entry(EntryType::Decision, &body)?])
            .await?;
        let seq = acks[0].seq.0;
        let mut approval = None;
        if let Some(summary) = held {
            // A second append, so the request can name its decision's seq;
            // if it fails the action stays refused (nothing to approve).
            let expires_at = Timestamp::from_micros(
                now.as_micros() + i64::try_from(self.approval_ttl.as_micros()).unwrap_or(i64::MAX),
            );
            let summary_sha256 = sha256_json(&summary);
            let body = approval_body(caller, req, seq, &summary, &summary_sha256, expires_at)?;
            let acks = self
                .append(vec![entry(EntryType::ApprovalRequested, &body)?])
                .await?;
            self.approvals
                .apply_parts(
                    EntryType::ApprovalRequested,
                    acks[0].seq.0,
                    acks[0].ts,
                    body,
                )
                .map_err(ApiError::internal)?;
            approval = self.approvals.get(acks[0].seq.0);
        }
        Ok(Decided {
            seq,
            outcome,
            stage,
            reason,
            permit,
            approval,
        })
    }

    /// A held action coming back with its approval: checks the approval is
    /// this agent's, approved, unexpired, unused and for this exact
    /// request, then records the decision to let it through and marks the
    /// approval used, in one transaction.
    pub async fn resume(
        &self,
        caller: &AgentCaller,
        req: &ActionRequest,
        approval_id: u64,
    ) -> Result<Decided, ApiError> {
        let now = Timestamp::now();
        let refuse = |reason: String| (Stage::Approval, reason);
        let checked = match self.approvals.get(approval_id) {
            None => Err(refuse(format!(
                "approval {approval_id} does not exist or has expired"
            ))),
            Some(a) if a.agent != caller.agent => Err(refuse(format!(
                "approval {approval_id} is not for agent {}",
                caller.agent
            ))),
            Some(a) if a.request_sha256 != req.request_sha256 => Err(refuse(format!(
                "approval {approval_id} was given for a different request (digest {}); it is bound to the exact request that was held",
                a.request_sha256
            ))),
            Some(a) => match &a.status {
                approvals::Status::Used { seq, .. } => Err(refuse(format!(
                    "approval {approval_id} was already used (seq {seq}); an approval is good for one call"
                ))),
                approvals::Status::Denied { by, reason, .. } => Err(refuse(format!(
                    "approval {approval_id} was denied by {by}: {reason}"
                ))),
                _ if a.expired(now) => Err(refuse(format!(
                    "approval {approval_id} expired at {}",
                    a.expires_at
                ))),
                approvals::Status::Pending => {
                    Err(refuse(format!("approval {approval_id} is still pending")))
                }
                approvals::Status::Approved { by, .. } => Ok(by.clone()),
            },
        };
        let policy = self.policy()?;
        let (outcome, stage, reason, permit, inputs, decision) = match checked {
            Err((stage, reason)) => (Outcome::Deny, stage, reason, None, None, None),
            Ok(by) => {
                // Everything is evaluated again: the human's approval
                // answers a hold, and only a hold. The entry names the
                // policies that determined this evaluation, as any other.
                let eval = {
                    let registry = self.identity.read();
                    evaluate(&registry, &policy, &self.limiter, caller, req, now)
                };
                let approved = format!("approved by {by} (approval {approval_id})");
                match eval.outcome {
                    // A kill switch, the scope, a forbid added since, or a
                    // limit: the human approved the hold, not these.
                    Outcome::Deny => (
                        Outcome::Deny,
                        eval.stage,
                        eval.reason,
                        None,
                        eval.inputs,
                        eval.decision,
                    ),
                    Outcome::Allow => (
                        Outcome::Allow,
                        Stage::Approval,
                        approved,
                        eval.permit,
                        eval.inputs,
                        eval.decision,
                    ),
                    Outcome::RequireApproval => {
                        // `evaluate` only checked the limits of a held call.
                        let admitted = {
                            let registry = self.identity.read();
                            let limits = limited(&registry, caller);
                            self.limiter.admit(&limits, &req.claim, now)
                        };
                        match admitted {
                            Ok(permit) => (
                                Outcome::Allow,
                                Stage::Approval,
                                approved,
                                Some(permit),
                                eval.inputs,
                                eval.decision,
                            ),
                            Err(trip) => (
                                Outcome::Deny,
                                trip.stage.into(),
                                trip.reason,
                                None,
                                eval.inputs,
                                eval.decision,
                            ),
                        }
                    }
                }
            }
        };
        let eval = Evaluation {
            outcome,
            stage,
            reason,
            decision,
            policy_version: policy.version,
            policy_sha256: policy.sha256.clone(),
            inputs,
            permit,
        };
        let body = decision_body(caller, req, &eval, Some(approval_id));
        let mut entries = vec![entry(EntryType::Decision, &body)?];
        let allowed = eval.outcome == Outcome::Allow;
        if allowed {
            entries.push(entry(
                EntryType::ApprovalUsed,
                &used_body(caller, approval_id),
            )?);
        }
        let acks = self.append(entries).await?;
        let seq = acks[0].seq.0;
        if allowed && let Some(ack) = acks.get(1) {
            self.approvals
                .apply_parts(
                    EntryType::ApprovalUsed,
                    ack.seq.0,
                    ack.ts,
                    used_body(caller, approval_id),
                )
                .map_err(ApiError::internal)?;
        }
        let Evaluation {
            outcome,
            stage,
            reason,
            permit,
            ..
        } = eval;
        Ok(Decided {
            seq,
            outcome,
            stage,
            reason,
            permit,
            approval: None,
        })
    }

    /// An approver's decision on a held action.
    pub async fn decide_approval(
        &self,
        approver: &Caller,
        id: u64,
        approve: bool,
        reason: Option<String>,
        shown_sha256: &str,
    ) -> Result<Approval, ApiError> {
        let Some(user) = approver.user() else {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "only a human decides approvals",
            ));
        };
        let a = self
            .approvals
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))?;
        let now = Timestamp::now();
        let conflict = |m: String| ApiError::new(axum::http::StatusCode::CONFLICT, "conflict", m);
        if a.expired(now) {
            return Err(conflict(format!(
                "approval {id} expired at {}",
                a.expires_at
            )));
        }
        if a.status != approvals::Status::Pending {
            return Err(conflict(format!(
                "approval {id} is already {}",
                a.state(now)
            )));
        }
        if a.human.as_ref() == Some(user) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                docket_core::identity::registry::Rule::FourEyes.code(),
                format!(
                    "four-eyes rule: {user} asked for this action (the agent acts on their behalf) and cannot approve it"
                ),
            ));
        }
        if approve && self.identity.config.require_verified_approvers {
            self.identity
                .read()
                .check_verified(user, "approving a held action")?;
        }
        if shown_sha256 != a.summary_sha256 {
            return Err(conflict(format!(
                "shown_sha256 does not match approval {id}'s summary ({}): read the approval again and decide on what it shows",
                a.summary_sha256
            )));
        }
        if let Some(r) = &reason
            && r.len() > 2000
        {
            return Err(ApiError::bad_request(
                "invalid_request",
                "reason must be at most 2000 bytes",
            ));
        }
        if !approve && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(ApiError::bad_request(
                "invalid_request",
                "a denial needs a reason the agent's owner can read",
            ));
        }
        let body = approvals::DecidedBody {
            approval: id,
            agent: a.agent.clone(),
            project: a.project.clone(),
            decision: if approve { "approve" } else { "deny" }.into(),
            reason,
            shown: a.summary.clone(),
            shown_sha256: a.summary_sha256.clone(),
            by: user.clone(),
        };
        let mut value = serde_json::to_value(&body).map_err(ApiError::internal)?;
        value["actor"] = serde_json::to_value(approver.actor()).map_err(ApiError::internal)?;
        value["human"] = Value::String(user.to_string());
        let acks = self
            .append(vec![entry(EntryType::ApprovalDecided, &value)?])
            .await?;
        self.approvals
            .apply_parts(EntryType::ApprovalDecided, acks[0].seq.0, acks[0].ts, value)
            .map_err(ApiError::internal)?;
        self.approvals
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))
    }

    /// Appends `receipt`, the one agent-reported outcome of `decision` (an
    /// allow decision about `agent`), and counts its cost against the
    /// budgets; 409 `already_recorded` when the decision has its outcome.
    /// Runs on a task of its own: a client that goes away cannot leave the
    /// claim taken without a receipt, nor a durable receipt without its claim.
    pub async fn record_outcome(
        self: &Arc<Self>,
        decision: Entry,
        agent: String,
        receipt: Value,
    ) -> Result<Vec<Appended>, ApiError> {
        let this = self.clone();
        tokio::spawn(async move {
            let seq = decision.seq.0;
            if !this.claim_record(&decision, &agent).await? {
                return Err(ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "already_recorded",
                    format!("decision {seq} already has its recorded outcome"),
                ));
            }
            let appended = match entry(EntryType::Receipt, &receipt) {
                Ok(e) => this.append(vec![e]).await,
                Err(e) => Err(e),
            };
            let acks = appended.inspect_err(|_| this.unclaim_record(seq))?;
            // The tool's cost counts now, as it will after a restart (which
            // reads it back from this receipt).
            if let Some(cost) = receipt.get("cost_micro_usd").and_then(Value::as_i64) {
                let now = Timestamp::now();
                for target in limit_targets(&receipt) {
                    this.limiter.add_spent(target, acks[0].ts, cost, now);
                }
            }
            Ok(acks)
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Claims the one agent-reported outcome of `decision`: false when it
    /// already has one, in memory or, for decisions made before this start,
    /// in the ledger.
    async fn claim_record(&self, decision: &Entry, agent: &str) -> Result<bool, ApiError> {
        let seq = decision.seq.0;
        if !self.recorded.lock().insert(seq) {
            return Ok(false);
        }
        if seq >= self.started_at_seq {
            return Ok(true);
        }
        let query = Query {
            types: vec![EntryType::Receipt],
            agent: Some(agent.to_owned()),
            order: Order::Asc,
            after: Some(seq),
            ..Query::default()
        };
        let ledger = self.ledger.clone();
        let upto = self.started_at_seq;
        let found = tokio::task::spawn_blocking(move || recorded_in(&ledger, query, seq, upto))
            .await
            .map_err(ApiError::internal)
            .and_then(|r| r.map_err(ApiError::from));
        match found {
            Ok(found) => Ok(!found),
            Err(e) => {
                self.unclaim_record(seq);
                Err(e)
            }
        }
    }

    fn unclaim_record(&self, decision: u64) {
        self.recorded.lock().remove(&decision);
    }

    /// Appends, fail-closed: an unwritable ledger refuses the action.
    pub async fn append(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>, ApiError> {
        self.ledger.append(entries).await.map_err(|e| {
            tracing::error!(cause = %e, "ledger append failed; refusing the action");
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                "the ledger cannot be written, so Docket refuses the action (fail-closed); nothing was forwarded",
            )
        })
    }
}

fn entry(kind: EntryType, body: &Value) -> Result<NewEntry, ApiError> {
    NewEntry::new(kind, body).map_err(ApiError::from)
}

pub fn sha256_json(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

fn compile_active(registry: &Registry) -> Result<Compiled, PolicyLoadError> {
    let Some(active) = &registry.active_policy else {
        return Ok(deny_all());
    };
    let text = registry
        .policies
        .get(&active.version)
        .map(|v| v.policy.as_str())
        .ok_or_else(|| PolicyLoadError {
            version: active.version,
            error: "its text is not in the ledger".into(),
        })?;
    let set = PolicySet::compile(text).map_err(|e| PolicyLoadError {
        version: active.version,
        error: e.to_string(),
    })?;
    Ok(Compiled {
        version: Some(active.version),
        sha256: active.sha256.clone(),
        set,
    })
}

/// Whether an agent-reported receipt matched by `query` (in `seq` order)
/// records the outcome of decision `seq`. Receipts from `upto` on are known
/// in memory, so the search stops there.
fn recorded_in(ledger: &Ledger, query: Query, seq: u64, upto: u64) -> Result<bool, StoreError> {
    let mut found = false;
    ledger.scan(query, |entry| {
        if entry.seq.0 >= upto {
            return Ok::<_, StoreError>(ControlFlow::Break(()));
        }
        let body = entry.body_value();
        found = body.get("decision").and_then(Value::as_u64) == Some(seq)
            && body.get("source").and_then(Value::as_str) == Some("agent_reported");
        Ok(if found {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(found)
}

/// Sums this month's receipts into the budgets' counters, and the last two
/// minutes' allow decisions and receipts into the rate windows, so a restart
/// resets neither.
fn load_usage(ledger: &Ledger, limiter: &Limiter) -> Result<(), StoreError> {
    let now = Timestamp::now();
    let dt = now.to_datetime();
    let month_start = dt
        .replace_day(1)
        .map(|d| d.replace_time(time::Time::MIDNIGHT))
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let month_start = Timestamp::from_datetime(month_start);
    let window_start = Timestamp::from_micros(now.as_micros() - 2 * 60_000_000);
    // In a month's first minutes the window reaches into the last month.
    each_entry(
        ledger,
        month_start.min(window_start),
        EntryType::Receipt,
        |entry, body| {
            let recent = entry.ts >= window_start;
            let cost = body.get("cost_micro_usd").and_then(Value::as_i64);
            let tokens = ["input_tokens", "output_tokens"]
                .iter()
                .filter_map(|k| body.get(*k).and_then(Value::as_u64))
                .sum();
            for target in limit_targets(body) {
                if let Some(cost) = cost {
                    limiter.add_spent(target.clone(), entry.ts, cost, now);
                }
                if recent {
                    limiter.add_used(target, entry.ts, 0, tokens, now);
                }
            }
        },
    )?;
    // A request counts in the minute it was admitted: its allow decision.
    each_entry(ledger, window_start, EntryType::Decision, |entry, body| {
        if body.get("outcome").and_then(Value::as_str) == Some("allow") {
            for target in limit_targets(body) {
                limiter.add_used(target, entry.ts, 1, 0, now);
            }
        }
    })
}

/// Calls `f` with every entry of `kind` from `from` on, in `seq` order.
fn each_entry(
    ledger: &Ledger,
    from: Timestamp,
    kind: EntryType,
    mut f: impl FnMut(&Entry, &Value),
) -> Result<(), StoreError> {
    let query = Query {
        from: Some(from),
        types: vec![kind],
        order: Order::Asc,
        ..Query::default()
    };
    ledger.scan(query, |entry| {
        f(&entry, &entry.body_value());
        Ok::<_, StoreError>(ControlFlow::Continue(()))
    })
}

/// The project, agent and credential an entry's body names: what its use
/// counts against.
fn limit_targets(body: &Value) -> Vec<LimitTarget> {
    let id = |k: &str| body.get(k).and_then(Value::as_str);
    [
        id("project")
            .and_then(|p| p.parse().ok())
            .map(|project| LimitTarget::Project { project }),
        id("agent")
            .and_then(|a| a.parse().ok())
            .map(|agent| LimitTarget::Agent { agent }),
        id("credential")
            .and_then(|c| c.parse().ok())
            .map(|credential| LimitTarget::Credential { credential }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn resource_fields(req: &ActionRequest, body: &mut serde_json::Map<String, Value>) {
    let r = &req.resource;
    match req.action {
        docket_policy::Action::CallModel | docket_policy::Action::Embed => {
            body.insert("model".into(), json!(r.id));
            if let Some(p) = &r.provider {
                body.insert("provider".into(), json!(p));
            }
        }
        docket_policy::Action::CallTool => {
            body.insert("tool".into(), json!(r.id));
        }
        docket_policy::Action::ReadData | docket_policy::Action::WriteData => {
            body.insert("dataset".into(), json!(r.id));
        }
    }
    if !r.data_classes.is_empty() {
        body.insert("data_classes".into(), json!(r.data_classes));
    }
    if let Some(env) = &r.environment {
        body.insert("environment".into(), json!(env));
    }
}

/// The `decision` entry: who, what, the outcome and why, which policy
/// version and policies, and the inputs Cedar saw.
fn decision_body(
    caller: &AgentCaller,
    req: &ActionRequest,
    eval: &Evaluation,
    approval: Option<u64>,
) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("agent".into(), json!(caller.agent));
    body.insert("project".into(), json!(caller.project));
    if let Some(h) = &caller.human {
        body.insert("human".into(), json!(h));
    }
    body.insert("credential".into(), json!(caller.credential));
    body.insert("action".into(), json!(req.action));
    resource_fields(req, &mut body);
    body.insert("outcome".into(), json!(eval.outcome));
    body.insert("stage".into(), json!(eval.stage));
    body.insert("reason".into(), json!(eval.reason));
    let mut policy = json!({
        "version": eval.policy_version,
        "sha256": eval.policy_sha256,
    });
    if let Some(d) = &eval.decision {
        policy["determining"] = json!(d.determining);
        if !d.errors.is_empty() {
            policy["errors"] = json!(d.errors);
        }
    }
    body.insert("policy".into(), policy);
    if let Some(inputs) = &eval.inputs {
        body.insert(
            "inputs".into(),
            serde_json::to_value(inputs).unwrap_or(Value::Null),
        );
    }
    body.insert("request_sha256".into(), json!(req.request_sha256));
    body.insert(
        "estimated_cost_micro_usd".into(),
        json!(req.claim.estimate_micro_usd),
    );
    if !req.extra.is_null() {
        body.insert("request".into(), req.extra.clone());
    }
    if let Some(a) = approval {
        body.insert("approval".into(), json!(a));
    }
    body.insert("source".into(), json!(req.source));
    body.insert(
        "actor".into(),
        serde_json::to_value(&caller.actor).unwrap_or(Value::Null),
    );
    Value::Object(body)
}

/// What an approver is shown about a held action.
fn summary(caller: &AgentCaller, req: &ActionRequest, eval: &Evaluation) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("agent".into(), json!(caller.agent));
    body.insert("project".into(), json!(caller.project));
    body.insert("human".into(), json!(caller.human));
    body.insert("action".into(), json!(req.action));
    resource_fields(req, &mut body);
    body.insert(
        "estimated_cost_micro_usd".into(),
        json!(req.claim.estimate_micro_usd),
    );
    body.insert("request_sha256".into(), json!(req.request_sha256));
    body.insert("policy_version".into(), json!(eval.policy_version));
    body.insert("reason".into(), json!(eval.reason));
    if !req.extra.is_null() {
        body.insert("request".into(), req.extra.clone());
    }
    Value::Object(body)
}

fn approval_body(
    caller: &AgentCaller,
    req: &ActionRequest,
    decision: u64,
    summary: &Value,
    summary_sha256: &str,
    expires_at: Timestamp,
) -> Result<Value, ApiError> {
    let mut value = serde_json::to_value(approvals::RequestedBody {
        agent: caller.agent.clone(),
        project: caller.project.clone(),
        human: caller.human.clone(),
        decision,
        request_sha256: req.request_sha256.clone(),
        summary: summary.clone(),
        summary_sha256: summary_sha256.to_owned(),
        expires_at,
    })
    .map_err(ApiError::internal)?;
    value["actor"] = serde_json::to_value(&caller.actor).map_err(ApiError::internal)?;
    Ok(value)
}

/// Goes in one transaction with the decision that names the approval.
fn used_body(caller: &AgentCaller, approval: u64) -> Value {
    json!({
        "approval": approval,
        "agent": caller.agent,
        "project": caller.project,
        "actor": caller.actor,
    })
}
