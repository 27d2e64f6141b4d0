//! The decision on every agent action: kill switches, then the agent's
//! scope, then Cedar policy, then budgets and rate limits — and the
//! `decision` entry that records it, durable before anything is forwarded.
//! Held actions become approval requests ([`approvals`]).

pub mod approvals;
pub mod limits;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use docket_core::bodies::{
    self, ApprovalDecidedBody, ApprovalRequestedBody, ApprovalUsedBody, ApprovalVerdict,
    DecisionBody, HeldSummary, PolicyRef, ReceiptBody, ResourceRef,
};
use docket_core::identity::governance::{LimitTarget, Limits};
use docket_core::identity::{
    Actor, AgentId, CredentialId, ProjectId, Registry, ScopeField, UserId,
};
use docket_core::writers::{self, ApproverRefusal, approver_may_decide};
use docket_core::{Entry, EntryType, Timestamp};
use docket_policy::{Decision, Outcome, PolicySet};
use docket_store::{Appended, Ledger, NewEntry, Order, Query, StoreError};
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::identity::{Caller, Identity};

pub use approvals::{Approval, ApprovalClaim, Approvals};
pub use limits::{Claim, Limiter, Permit};

/// The policy version in force, compiled.
#[derive(Debug)]
pub struct Compiled {
    /// `None`: no version was ever activated; the built-in deny-all set.
    pub version: Option<u64>,
    pub sha256: String,
    pub set: PolicySet,
}

pub use docket_core::bodies::{Source, Stage};

impl From<limits::Stage> for Stage {
    fn from(s: limits::Stage) -> Self {
        match s {
            limits::Stage::Budget => Stage::Budget,
            limits::Stage::RateLimit => Stage::RateLimit,
            limits::Stage::Concurrency => Stage::Concurrency,
        }
    }
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
/// counters; `docket-bench policy` times exactly this.
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
        let (approvals, limiter) = {
            let registry = identity.read();
            let approvals = Approvals::load(&ledger, approval_ttl, &registry)?;
            let limiter = Arc::new(Limiter::default());
            load_usage(&ledger, &limiter, &registry)?;
            (approvals, limiter)
        };
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
            let summary = serde_json::to_value(&summary).map_err(ApiError::internal)?;
            let body = ApprovalRequestedBody {
                agent: caller.agent.clone(),
                project: caller.project.clone(),
                human: caller.human.clone(),
                decision: seq,
                request_sha256: req.request_sha256.clone(),
                summary_sha256: sha256_json(&summary),
                summary,
                expires_at,
                actor: caller.actor.clone(),
            };
            let acks = self
                .append(vec![entry(EntryType::ApprovalRequested, &body)?])
                .await?;
            self.approvals.requested(acks[0].seq.0, acks[0].ts, body);
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
        self: &Arc<Self>,
        caller: &AgentCaller,
        req: &ActionRequest,
        approval_id: u64,
    ) -> Result<Decided, ApiError> {
        let now = Timestamp::now();
        let refuse = |reason: String| (Stage::Approval, reason);
        // Held until the approval is marked used (or this call refused), so
        // two calls bearing the same approval cannot both read it unused.
        let claim = self.approvals.claim(approval_id);
        let checked = match self.approvals.get(approval_id) {
            _ if claim.is_none() => Err(refuse(format!(
                "approval {approval_id} is being used by another call right now; an approval is good for one call"
            ))),
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
        // On a task of its own, holding the claim until the use is marked:
        // a caller that goes away mid-append cannot leave a durable use
        // unmarked in memory (and the approval usable again).
        let this = self.clone();
        let used = allowed.then(|| used_body(caller, approval_id));
        let claimed = claim.map(ApprovalClaim::hand_over);
        let acks = tokio::spawn(async move {
            let acks = this.append(entries).await;
            if let (Ok(acks), Some(b)) = (&acks, &used)
                && let Some(ack) = acks.get(1)
            {
                this.approvals.used(ack.seq.0, b);
            }
            if let Some(id) = claimed {
                this.approvals.release(id);
            }
            acks
        })
        .await
        .map_err(ApiError::internal)??;
        let seq = acks[0].seq.0;
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
        // One decision at a time per approval: the second of two approvers
        // deciding at once is told so, not silently ignored.
        let Some(_claim) = self.approvals.claim(id) else {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "conflict",
                format!("approval {id} is being decided or used right now; read it again"),
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
        // Four eyes: never the human the agent acts for, its owner, or
        // whoever requested the agent (the verifiers hold the log to the
        // same rule).
        let refused = approver_may_decide(&self.identity.read(), user, &a.agent, a.human.as_ref());
        match refused {
            Ok(()) => {}
            Err(ApproverRefusal::FourEyes(m)) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    docket_core::identity::registry::Rule::FourEyes.code(),
                    m,
                ));
            }
            Err(ApproverRefusal::NotAnApprover(m)) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "forbidden",
                    m,
                ));
            }
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
        let body = ApprovalDecidedBody {
            approval: id,
            agent: a.agent.clone(),
            project: a.project.clone(),
            decision: if approve {
                ApprovalVerdict::Approve
            } else {
                ApprovalVerdict::Deny
            },
            reason,
            shown: a.summary.clone(),
            shown_sha256: a.summary_sha256.clone(),
            by: user.clone(),
            human: Some(user.clone()),
            actor: approver.actor(),
        };
        let acks = self
            .append(vec![entry(EntryType::ApprovalDecided, &body)?])
            .await?;
        self.approvals.decided(acks[0].seq.0, acks[0].ts, body);
        self.approvals
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))
    }

    /// Appends `receipt`, the one agent-reported outcome of `decision` (an
    /// allow decision about `agent`); 409 `already_recorded` when the
    /// decision has its outcome. Its cost is the agent's word, so it counts
    /// against no budget (budgets count what the gateway observed).
    /// Runs on a task of its own: a client that goes away cannot leave the
    /// claim taken without a receipt.
    pub async fn record_outcome(
        self: &Arc<Self>,
        decision: Entry,
        agent: String,
        receipt: ReceiptBody,
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
            appended.inspect_err(|_| this.unclaim_record(seq))
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

/// A typed body as an entry to append.
pub fn entry<B: Serialize>(kind: EntryType, body: &B) -> Result<NewEntry, ApiError> {
    let value = serde_json::to_value(body).map_err(ApiError::internal)?;
    NewEntry::new(kind, &value).map_err(ApiError::from)
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
        // An unreadable receipt records nothing; the scan at start reported it.
        found = bodies::parse::<ReceiptBody>(entry.body_json())
            .is_ok_and(|r| r.decision == Some(seq) && r.source == Source::AgentReported);
        Ok(if found {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(found)
}

/// Sums this month's gateway receipts into the budgets' counters, and the
/// last two minutes' allow decisions and gateway receipts into the rate
/// windows, so a restart resets neither. Decisions and receipts are read
/// together, in `seq` order, through the write check: a receipt counts only
/// if it follows the gateway's allow decision for the same agent and
/// credential. What agents report of themselves counts against no budget;
/// an entry that cannot be read, or that breaks the write table, is
/// reported and counts for nothing.
fn load_usage(ledger: &Ledger, limiter: &Limiter, registry: &Registry) -> Result<(), StoreError> {
    let now = Timestamp::now();
    let dt = now.to_datetime();
    let month_start = dt
        .replace_day(1)
        .map(|d| d.replace_time(time::Time::MIDNIGHT))
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let month_start = Timestamp::from_datetime(month_start);
    let window_start = Timestamp::from_micros(now.as_micros() - 2 * 60_000_000);
    let query = Query {
        // In a month's first minutes the window reaches into the last month.
        from: Some(month_start.min(window_start)),
        types: vec![EntryType::Decision, EntryType::Receipt],
        order: Order::Asc,
        ..Query::default()
    };
    let mut check = writers::WriteCheck::new();
    ledger.scan(query, |entry| {
        let counted = match entry.kind {
            EntryType::Receipt => bodies::parse::<ReceiptBody>(entry.body_json()).and_then(|r| {
                let standing = check.check_receipt(entry.seq.0, entry.ts, &r)?;
                if standing.observed() {
                    count_receipt(limiter, &entry, &r, window_start, now);
                }
                Ok(())
            }),
            _ => check
                .check(
                    entry.seq.0,
                    entry.ts,
                    entry.kind,
                    entry.body_json(),
                    registry,
                )
                .and_then(|_| bodies::parse::<DecisionBody>(entry.body_json()))
                .map(|d| {
                    // A request counts in the minute it was admitted.
                    if d.outcome == Outcome::Allow && entry.ts >= window_start {
                        let targets =
                            limit_targets(Some(&d.agent), Some(&d.project), Some(&d.credential));
                        for target in targets {
                            limiter.add_used(target, entry.ts, 1, 0, now);
                        }
                    }
                }),
        };
        if let Err(problem) = counted {
            crate::integrity::finding("usage", entry.seq.0, &problem);
        }
        Ok::<_, StoreError>(ControlFlow::Continue(()))
    })
}

/// A gateway receipt's cost into the budgets, and its tokens into the
/// rate windows if it is recent.
fn count_receipt(
    limiter: &Limiter,
    entry: &Entry,
    r: &ReceiptBody,
    window_start: Timestamp,
    now: Timestamp,
) {
    let recent = entry.ts >= window_start;
    for target in limit_targets(r.agent.as_ref(), r.project.as_ref(), r.credential()) {
        if let Some(cost) = r.cost_micro_usd {
            let cost = i64::try_from(cost).unwrap_or(i64::MAX);
            limiter.add_spent(target.clone(), entry.ts, cost, now);
        }
        if recent {
            limiter.add_used(target, entry.ts, 0, r.tokens(), now);
        }
    }
}

/// The project, agent and credential an action counts against.
fn limit_targets(
    agent: Option<&AgentId>,
    project: Option<&ProjectId>,
    credential: Option<&CredentialId>,
) -> Vec<LimitTarget> {
    let mut out = Vec::with_capacity(3);
    if let Some(project) = project {
        out.push(LimitTarget::Project {
            project: project.clone(),
        });
    }
    if let Some(agent) = agent {
        out.push(LimitTarget::Agent {
            agent: agent.clone(),
        });
    }
    if let Some(credential) = credential {
        out.push(LimitTarget::Credential {
            credential: credential.clone(),
        });
    }
    out
}

/// What a decision or a held summary names of the resource.
fn resource_ref(req: &ActionRequest) -> ResourceRef {
    let r = &req.resource;
    let mut m = ResourceRef {
        data_classes: r.data_classes.iter().cloned().collect(),
        environment: r.environment.clone(),
        ..ResourceRef::default()
    };
    match req.action {
        docket_policy::Action::CallModel | docket_policy::Action::Embed => {
            m.model = Some(r.id.clone());
            m.provider = r.provider.clone();
        }
        docket_policy::Action::CallTool => m.tool = Some(r.id.clone()),
        docket_policy::Action::ReadData | docket_policy::Action::WriteData => {
            m.dataset = Some(r.id.clone())
        }
    }
    m
}

fn raw(v: &Value) -> Option<Box<serde_json::value::RawValue>> {
    if v.is_null() {
        return None;
    }
    serde_json::value::to_raw_value(v).ok()
}

/// The `decision` entry: who, what, the outcome and why, which policy
/// version and policies, and the inputs Cedar saw.
fn decision_body(
    caller: &AgentCaller,
    req: &ActionRequest,
    eval: &Evaluation,
    approval: Option<u64>,
) -> DecisionBody {
    DecisionBody {
        agent: caller.agent.clone(),
        project: caller.project.clone(),
        human: caller.human.clone(),
        credential: caller.credential.clone(),
        action: req.action,
        resource: resource_ref(req),
        outcome: eval.outcome,
        stage: eval.stage,
        reason: eval.reason.clone(),
        policy: PolicyRef {
            version: eval.policy_version,
            sha256: eval.policy_sha256.clone(),
            determining: eval.decision.as_ref().map(|d| d.determining.clone()),
            errors: eval
                .decision
                .as_ref()
                .map(|d| d.errors.clone())
                .unwrap_or_default(),
        },
        inputs: eval
            .inputs
            .as_ref()
            .and_then(|i| serde_json::value::to_raw_value(i).ok()),
        request_sha256: req.request_sha256.clone(),
        estimated_cost_micro_usd: u64::try_from(req.claim.estimate_micro_usd).unwrap_or(0),
        request: raw(&req.extra),
        approval,
        source: req.source,
        actor: caller.actor.clone(),
    }
}

/// What an approver is shown about a held action.
fn summary(caller: &AgentCaller, req: &ActionRequest, eval: &Evaluation) -> HeldSummary {
    HeldSummary {
        agent: caller.agent.clone(),
        project: caller.project.clone(),
        human: caller.human.clone(),
        action: req.action,
        resource: resource_ref(req),
        estimated_cost_micro_usd: u64::try_from(req.claim.estimate_micro_usd).unwrap_or(0),
        request_sha256: req.request_sha256.clone(),
        policy_version: eval.policy_version,
        reason: eval.reason.clone(),
        request: (!req.extra.is_null()).then(|| req.extra.clone()),
    }
}

/// Goes in one transaction with the decision that names the approval.
fn used_body(caller: &AgentCaller, approval: u64) -> ApprovalUsedBody {
    ApprovalUsedBody {
        approval,
        agent: caller.agent.clone(),
        project: caller.project.clone(),
        actor: caller.actor.clone(),
    }
}
