//! Governance routes: policy versions and rollbacks (change requests a
//! second human approves), agent and project-rule changes, kill switches,
//! limits, approvals of held actions, and the authorize / record API for
//! tools Docket cannot proxy.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use docket_core::EntryType;
use docket_core::Timestamp;
use docket_core::bodies::{self, DecisionBody, Outcome, ReceiptBody};
use docket_core::identity::Actor;
use docket_core::identity::event::{AccessRule, ChangeRequest};
use docket_core::identity::governance::{ChangeInfo, KillTarget, LimitTarget, Limits};
use docket_core::identity::{AgentId, ProjectId, Registry, Scope};
use docket_policy::{PolicySet, TestCase};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::written;
use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::governance::{ActionRequest, AgentCaller, Claim, Source, request_digest};
use crate::identity::Caller;

type Caller_ = axum::Extension<Caller>;

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Compiles `policy` and runs `tests` against it: the submission check and
/// the activation check are the same.
fn compile_and_test(policy: &str, tests: &Value) -> Result<(PolicySet, Value), ApiError> {
    let set =
        PolicySet::compile(policy).map_err(|e| unprocessable("invalid_policy", e.to_string()))?;
    let cases: Vec<TestCase> = serde_json::from_value(tests.clone()).map_err(|e| {
        ApiError::bad_request(
            "invalid_request",
            format!("tests: {e} (expected a list of {{name, request, expect}})"),
        )
    })?;
    if cases.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "tests: a policy version needs at least one test case (request → expected decision)",
        ));
    }
    let report = docket_policy::run_tests(&set, &cases);
    let value = serde_json::to_value(&report).map_err(ApiError::internal)?;
    if !report.ok() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy_tests_failed",
            format!(
                "{} of {} test cases failed: {}",
                report.failures.len(),
                report.total,
                report
                    .failures
                    .iter()
                    .map(|f| format!(
                        "{} (expected {:?}, got {:?}: {})",
                        f.name, f.expected, f.got, f.reason
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    Ok((set, value))
}

/// For the approval of change `seq`: a policy version's test report, run
/// again on the version that would take effect.
pub fn activation_tests(state: &AppState, seq: u64) -> Result<Option<Value>, ApiError> {
    let r = state.identity.read();
    let Some(change) = r.changes.get(&seq) else {
        return Ok(None);
    };
    let version = match &change.request {
        ChangeRequest::PolicyVersion { version, .. }
        | ChangeRequest::PolicyRollback { version } => *version,
        _ => return Ok(None),
    };
    let v = r.policy_version(version)?;
    let (_, report) = compile_and_test(&v.policy, &v.tests).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            "policy_tests_failed",
            format!("policy version {version} cannot take effect: {}", e.message),
        )
    })?;
    Ok(Some(report))
}

// ---- policy -----------------------------------------------------------------

pub async fn schema() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        docket_policy::schema_text(),
    )
}

fn version_view(
    r: &docket_core::identity::Registry,
    v: &docket_core::identity::governance::PolicyVersion,
    full: bool,
) -> Value {
    let status = match r.changes.get(&v.request).map(|c| &c.status) {
        _ if r.active_policy.as_ref().map(|a| a.version) == Some(v.version) => "active",
        Some(docket_core::identity::registry::ChangeStatus::Pending) => "pending",
        Some(docket_core::identity::registry::ChangeStatus::Rejected { .. }) => "rejected",
        _ if !v.activations.is_empty() => "inactive",
        _ => "unknown",
    };
    let mut out = json!({
        "version": v.version,
        "sha256": v.sha256,
        "status": status,
        "request": v.request,
        "activations": v.activations.iter().map(|(seq, at)| json!({"seq": seq, "at": at})).collect::<Vec<_>>(),
    });
    if full {
        out["policy"] = json!(v.policy);
        out["tests"] = v.tests.clone();
    }
    out
}

pub async fn policy_info(State(state): State<AppState>) -> impl IntoResponse {
    let r = state.identity.read();
    let versions: Vec<Value> = r
        .policies
        .values()
        .rev()
        .map(|v| version_view(&r, v, false))
        .collect();
    Json(json!({
        "active": r.active_policy.as_ref().map(|a| json!({
            "version": a.version, "sha256": a.sha256, "seq": a.seq, "since": a.at,
        })),
        "versions": versions,
    }))
}

pub async fn get_version(
    State(state): State<AppState>,
    ApiPath(version): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let version = super::parse_u64("version", &version)?;
    let r = state.identity.read();
    let v = r.policy_version(version)?;
    Ok(Json(version_view(&r, v, true)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySubmission {
    policy: String,
    tests: Value,
    description: Option<String>,
    rollback_plan: Option<String>,
}

pub async fn submit_version(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(req): ApiJson<PolicySubmission>,
) -> Result<impl IntoResponse, ApiError> {
    let (set, report) = compile_and_test(&req.policy, &req.tests)?;
    let sha256 = set.sha256().to_owned();
    let info = ChangeInfo {
        description: req.description,
        rollback_plan: req.rollback_plan,
        evidence: Some(json!({"tests": report})),
    };
    let (policy, tests) = (req.policy, req.tests);
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_request_policy(sha256, policy, tests, info)
        })
        .await?;
    let seq = acks.first().map(|(a, _)| a.seq.0).unwrap_or_default();
    let r = state.identity.read();
    let version = match r.changes.get(&seq).map(|c| &c.request) {
        Some(ChangeRequest::PolicyVersion { version, .. }) => *version,
        _ => 0,
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "change": seq,
            "version": version,
            "policies": set.policy_ids(),
            "tests": report,
            "status": "pending: another human must approve it (POST /api/v1/changes/{seq}/approve)",
            "entries": written(&acks),
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    version: u64,
    description: Option<String>,
    rollback_plan: Option<String>,
}

pub async fn rollback(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(req): ApiJson<Rollback>,
) -> Result<impl IntoResponse, ApiError> {
    let report = {
        let r = state.identity.read();
        let v = r.policy_version(req.version)?;
        compile_and_test(&v.policy, &v.tests)?.1
    };
    let info = ChangeInfo {
        description: req.description,
        rollback_plan: req.rollback_plan,
        evidence: Some(json!({"tests": report})),
    };
    let version = req.version;
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_request_rollback(version, info)
        })
        .await?;
    let seq = acks.first().map(|(a, _)| a.seq.0).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(json!({"change": seq, "version": version, "entries": written(&acks)})),
    ))
}

// ---- agent and project-rule changes ---------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentChange {
    scope: Scope,
    system_prompt_sha256: Option<String>,
    /// Unset: as the agent has it now.
    require_signature: Option<bool>,
    description: Option<String>,
    rollback_plan: Option<String>,
}

pub async fn request_agent_change(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<AgentChange>,
) -> Result<impl IntoResponse, ApiError> {
    let agent: AgentId = super::parse_id("agent id", &id)?;
    let me = caller.user().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only a human may do this",
        )
    })?;
    let info = ChangeInfo {
        description: req.description,
        rollback_plan: req.rollback_plan,
        evidence: None,
    };
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_request_agent_update(
                &me,
                &agent,
                req.scope,
                req.system_prompt_sha256,
                req.require_signature,
                info,
            )
        })
        .await?;
    let seq = acks.first().map(|(a, _)| a.seq.0).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(json!({"change": seq, "entries": written(&acks)})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesChange {
    rules: Vec<AccessRule>,
    description: Option<String>,
    rollback_plan: Option<String>,
}

pub async fn request_rules_change(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RulesChange>,
) -> Result<impl IntoResponse, ApiError> {
    let project: ProjectId = super::parse_id("project id", &id)?;
    let info = ChangeInfo {
        description: req.description,
        rollback_plan: req.rollback_plan,
        evidence: None,
    };
    let classes = state.identity.data_classes.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_request_project_rules(&project, req.rules, info, &classes)
        })
        .await?;
    let seq = acks.first().map(|(a, _)| a.seq.0).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(json!({"change": seq, "entries": written(&acks)})),
    ))
}

// ---- kill switches and limits -------------------------------------------------

/// `GET /api/v1/kill-switches`: developers see the global switch and
/// those of their projects and their agents.
pub async fn list_kill_switches(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
) -> impl IntoResponse {
    let r = state.identity.read();
    let engaged: Vec<Value> = r
        .kill_switches
        .iter()
        .filter(|(t, _)| {
            caller.user().is_some_and(|me| match t {
                KillTarget::Global => true,
                KillTarget::Project { project } => r.sees_project(me, project),
                KillTarget::Agent { agent } => r.sees_agent(me, agent),
            })
        })
        .map(|(t, e)| {
            let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
            v["since"] = json!(e.at);
            v["seq"] = json!(e.seq);
            v["by"] = json!(e.by);
            v["reason"] = json!(e.reason);
            v
        })
        .collect();
    Json(json!({"engaged": engaged}))
}

/// serde cannot refuse unknown fields next to a flattened enum, so the
/// handlers check the body's keys themselves ([`only_fields`]).
#[derive(Deserialize)]
pub struct KillRequest {
    #[serde(flatten)]
    target: KillTarget,
    reason: String,
}

async fn kill_switch(
    state: AppState,
    caller: Caller,
    req: KillRequest,
    engaged: bool,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.user().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only a human may do this",
        )
    })?;
    let target = req.target.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_kill_switch(&me, req.target, engaged, req.reason)
        })
        .await?;
    Ok(Json(json!({
        "target": target,
        "engaged": engaged,
        "entries": written(&acks),
    })))
}

/// Parses `body` as `T`, refusing members other than `allowed`.
fn only_fields<T: serde::de::DeserializeOwned>(
    body: Value,
    allowed: &[&str],
) -> Result<T, ApiError> {
    if let Value::Object(m) = &body
        && let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "unknown field `{k}`, expected one of {}",
                allowed.join(", ")
            ),
        ));
    }
    serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))
}

const KILL_FIELDS: &[&str] = &["scope", "project", "agent", "reason"];

pub async fn engage(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let req = only_fields(body, KILL_FIELDS)?;
    kill_switch(state, caller, req, true).await
}

pub async fn release(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let req = only_fields(body, KILL_FIELDS)?;
    kill_switch(state, caller, req, false).await
}

/// `GET /api/v1/limits`: developers see those of their projects, their
/// agents and their agents' credentials.
pub async fn list_limits(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
) -> impl IntoResponse {
    let now = Timestamp::now();
    let r = state.identity.read();
    let limits: Vec<Value> = r
        .limits
        .iter()
        .filter(|(t, _)| {
            caller.user().is_some_and(|me| match t {
                LimitTarget::Project { project } => r.sees_project(me, project),
                LimitTarget::Agent { agent } => r.sees_agent(me, agent),
                LimitTarget::Credential { credential } => {
                    match r
                        .credentials
                        .get(credential)
                        .and_then(|c| c.record.agent.as_ref())
                    {
                        Some(agent) => r.sees_agent(me, agent),
                        None => r.sees_all_projects(me),
                    }
                }
            })
        })
        .map(|(t, l)| {
            let (day, month) = state.governance.limiter.spent(t, now);
            let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
            v["limits"] = json!(l);
            v["spent_today_micro_usd"] = json!(day);
            v["spent_this_month_micro_usd"] = json!(month);
            v
        })
        .collect();
    Json(json!({"limits": limits}))
}

#[derive(Deserialize)]
pub struct LimitsRequest {
    #[serde(flatten)]
    target: LimitTarget,
    limits: Limits,
}

pub async fn set_limits(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let req: LimitsRequest =
        only_fields(body, &["scope", "project", "agent", "credential", "limits"])?;
    let target = req.target.clone();
    let acks = state
        .identity
        .commit(caller.actor(), move |r| {
            r.plan_limits(req.target, req.limits)
        })
        .await?;
    Ok(Json(json!({"target": target, "entries": written(&acks)})))
}

// ---- approvals ---------------------------------------------------------------------

fn approval_view(a: &crate::governance::Approval, now: Timestamp) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    v["state"] = json!(a.state(now));
    v
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFilter {
    state: Option<String>,
}

pub async fn list_approvals(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiQuery(f): ApiQuery<ApprovalFilter>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(s) = &f.state
        && !["pending", "approved", "denied", "used", "expired"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("state must be pending, approved, denied, used or expired, got {s:?}"),
        ));
    }
    let now = Timestamp::now();
    let r = state.identity.read();
    let list: Vec<Value> = state
        .governance
        .approvals
        .list()
        .iter()
        .filter(|a| sees_approval(&r, &caller, a))
        .filter(|a| f.state.as_deref().is_none_or(|s| a.state(now) == s))
        .map(|a| approval_view(a, now))
        .collect();
    Ok(Json(json!({"approvals": list})))
}

/// Whether `caller` may see a held action: an agent its own, a human those
/// of the projects they see.
fn sees_approval(r: &Registry, caller: &Caller, a: &crate::governance::Approval) -> bool {
    match caller {
        Caller::Agent { agent, .. } => &a.agent == agent,
        Caller::Human { user, .. } => r.sees_project(user, &a.project),
        _ => false,
    }
}

pub async fn get_approval(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = super::parse_u64("approval id", &id)?;
    let a = state
        .governance
        .approvals
        .get(id)
        .filter(|a| sees_approval(&state.identity.read(), &caller, a))
        .ok_or_else(|| ApiError::not_found(format!("no approval {id} (or it expired long ago)")))?;
    Ok(Json(approval_view(&a, Timestamp::now())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    /// "approve" or "deny".
    decision: String,
    reason: Option<String>,
    /// The `summary_sha256` of the approval as the approver saw it.
    shown_sha256: String,
}

pub async fn decide_approval(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ApprovalDecision>,
) -> Result<impl IntoResponse, ApiError> {
    let id = super::parse_u64("approval id", &id)?;
    let approve = match req.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("decision must be \"approve\" or \"deny\", got {other:?}"),
            ));
        }
    };
    let a = state
        .governance
        .decide_approval(&caller, id, approve, req.reason, &req.shown_sha256)
        .await?;
    Ok(Json(approval_view(&a, Timestamp::now())))
}

// ---- authorize / record ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// "call_tool", "read_data", "write_data" (models go through the gateway).
    action: docket_policy::Action,
    /// The tool or dataset.
    name: String,
    /// The tool's arguments: digested, never stored.
    #[serde(default)]
    arguments: Value,
    /// What the action touches (a record id, a URL…): digested.
    resource: Option<String>,
    #[serde(default)]
    data_classes: std::collections::BTreeSet<String>,
    environment: Option<String>,
    #[serde(default)]
    estimated_cost_micro_usd: i64,
    /// Resume a held action with its approval.
    approval: Option<u64>,
    /// Seconds to wait for a human when policy holds the action (0 = return at once).
    #[serde(default)]
    wait_secs: u64,
}

pub async fn authorize(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(mut bound): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let req = AuthorizeRequest::deserialize(&bound)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("request body: {e}")))?;
    let agent = AgentCaller::from_caller(&caller)?;
    if matches!(
        req.action,
        docket_policy::Action::CallModel | docket_policy::Action::Embed
    ) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "model calls go through the gateway (/v1/...), which observes them itself",
        ));
    }
    if req.name.is_empty() || req.name.len() > 256 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "name must be 1 to 256 bytes",
        ));
    }
    let digest = |v: &[u8]| hex::encode(Sha256::digest(v));
    let mut extra = json!({"arguments_sha256": digest(req.arguments.to_string().as_bytes())});
    if let Some(r) = &req.resource {
        extra["resource_sha256"] = json!(digest(r.as_bytes()));
    }
    // The approval binds the request minus the fields that say how to
    // resume it.
    if let Value::Object(m) = &mut bound {
        m.remove("approval");
        m.remove("wait_secs");
    }
    let action = ActionRequest {
        action: req.action,
        resource: docket_policy::Resource {
            kind: match req.action {
                docket_policy::Action::CallTool => docket_policy::ResourceKind::Tool,
                _ => docket_policy::ResourceKind::Dataset,
            },
            id: req.name.clone(),
            provider: None,
            data_classes: req.data_classes.clone(),
            environment: req.environment.clone(),
        },
        claim: Claim {
            estimate_micro_usd: req.estimated_cost_micro_usd.max(0),
            estimated_tokens: 0,
        },
        request_sha256: request_digest("POST", "/api/v1/authorize", bound.to_string().as_bytes()),
        source: Source::AgentReported,
        extra,
    };
    let decided = match req.approval {
        Some(id) => state.governance.resume(&agent, &action, id).await?,
        None => state.governance.decide(&agent, &action).await?,
    };
    let mut approval = decided.approval.clone();
    if let Some(a) = &approval
        && req.wait_secs > 0
    {
        let wait = req.wait_secs.min(state.config.gateway.approval_wait_secs);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
        approval = state.governance.approvals.wait(a.id, deadline).await;
    }
    // The in-flight slot is for the gateway's calls; a tool call reported
    // here is settled by its record.
    drop(decided.permit);
    let now = Timestamp::now();
    Ok(Json(json!({
        "decision": decided.seq,
        "outcome": decided.outcome,
        "stage": decided.stage,
        "reason": decided.reason,
        "approval": approval.map(|a| approval_view(&a, now)),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    /// `seq` of the allowing decision this outcome follows.
    decision: u64,
    /// "ok" or "error".
    outcome: String,
    status: Option<i64>,
    /// SHA-256 of the tool's output, computed by the agent.
    output_sha256: Option<String>,
    latency_ms: Option<u64>,
    /// What the tool cost, as the agent reports it; shown apart from
    /// what the gateway observed and counted against no budget.
    #[serde(default)]
    cost_micro_usd: u64,
    error: Option<String>,
}

pub async fn record(
    State(state): State<AppState>,
    axum::Extension(caller): Caller_,
    ApiJson(req): ApiJson<RecordRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let agent = AgentCaller::from_caller(&caller)?;
    if !["ok", "error"].contains(&req.outcome.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("outcome must be \"ok\" or \"error\", got {:?}", req.outcome),
        ));
    }
    if let Some(h) = &req.output_sha256
        && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            "output_sha256 must be 64 hex digits",
        ));
    }
    let ledger = state.ledger.clone();
    let seq = req.decision;
    let decision = super::blocking(move || Ok(ledger.entry(seq)?)).await?;
    let body = match decision.kind {
        EntryType::Decision => bodies::parse::<DecisionBody>(decision.body_json()).ok(),
        _ => None,
    };
    let Some(body) = body.filter(|d| d.agent == agent.agent) else {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("entry {seq} is not a decision about agent {}", agent.agent),
        ));
    };
    if body.outcome != Outcome::Allow {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_allowed",
            format!("decision {seq} did not allow the action; there is no outcome to record"),
        ));
    }
    if body.source != Source::AgentReported {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_agent_reported",
            format!("decision {seq} is the gateway's: Docket recorded that call's outcome itself"),
        ));
    }
    let session = match &agent.actor {
        Actor::Agent { task, .. } => task.clone(),
        _ => None,
    };
    let mut receipt = ReceiptBody::new(
        agent.agent.clone(),
        agent.project.clone(),
        agent.credential.clone(),
        Source::AgentReported,
        agent.actor.clone(),
    );
    receipt.human = agent.human.clone();
    receipt.session = session;
    receipt.action = Some(body.action);
    receipt.tool = body.resource.tool;
    receipt.dataset = body.resource.dataset;
    receipt.data_classes = body.resource.data_classes;
    receipt.environment = body.resource.environment;
    receipt.decision = Some(seq);
    receipt.approval = body.approval;
    receipt.output_sha256 = req.output_sha256;
    receipt.cost_micro_usd = Some(req.cost_micro_usd);
    receipt.latency_ms = req.latency_ms;
    receipt.outcome = Some(req.outcome);
    receipt.status = req.status;
    receipt.error = req.error.map(|v| v.chars().take(2000).collect());
    let acks = state
        .governance
        .record_outcome(decision, agent.agent.to_string(), receipt)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"receipt": acks[0].seq.0, "ts": acks[0].ts.to_string()})),
    ))
}
