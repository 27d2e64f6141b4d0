//! Authorization: the one place that says which kind of caller may use
//! which route. Every route under `/api/v1` (and `/metrics`) is declared in
//! [`crate::routes::table`] with one [`Permission`]; [`allows`] maps each
//! permission to the callers that hold it. Rules about particular objects
//! (four eyes, ownership, project membership) are the registry's.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use docket_core::identity::Role;

use crate::error::ApiError;
use crate::identity::Caller;

/// What a route needs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Create the first admin with the first-start token.
    Bootstrap,
    /// Exchange a password (HTTP Basic) for a token.
    Login,
    /// Who am I, and what may I do.
    Me,
    /// The API description.
    ReadApiDocs,
    /// Checkpoints, proofs, the log's identity: hashes only.
    ReadLog,
    /// Entries and receipts; developers see their projects', agents their own.
    ReadEntries,
    /// Append entries of the types callers may write.
    AppendEntries,
    /// Users, projects, agents, credentials, change requests, reviews.
    ReadRegistry,
    ManageUsers,
    ManageProjects,
    /// Ask for an agent's registration or retirement.
    RequestChange,
    /// Approve or reject a change request (never one's own).
    DecideChange,
    /// Suspend an agent at once (its owner, approvers, admins).
    SuspendAgent,
    ResumeAgent,
    /// Issue an agent's API key (the registry checks whose agent).
    ManageCredentials,
    /// Set one's own password; issue, rotate, revoke credentials: one's own
    /// personal tokens for everyone, the auditor included; agents' keys for
    /// their owners and admins (the registry checks whose).
    ManageOwnCredentials,
    /// Issue a session credential for an agent, on one's own behalf.
    StartSession,
    /// An agent starts or ends its own session.
    AgentSession,
    OpenReview,
    DecideReview,
    /// Read access reviews: they list every agent and every human, so
    /// developers (who see only their projects) do not.
    ReadReviews,
    /// Prometheus metrics.
    ReadMetrics,
    /// Submit a policy version or ask for a rollback.
    ProposePolicy,
    /// Engage a kill switch (developers: their own agents and projects).
    Contain,
    /// Set budgets and rate limits.
    ManageLimits,
    /// See held actions (agents: their own).
    ReadApprovals,
    /// Approve or deny a held action.
    DecideApproval,
    /// Act as an agent: model calls through the gateway, authorize/record.
    AgentAction,
    /// Download an evidence pack (an `export` entry records who did).
    ExportEvidence,
}

const HUMANS: &[Role] = &Role::ALL;
const WRITERS: &[Role] = &[Role::Admin, Role::Approver, Role::Reviewer, Role::Developer];

/// The roles that hold `permission`, and whether agents and the bootstrap
/// token do. This table is the whole route-level policy.
pub fn holders(permission: Permission) -> (&'static [Role], bool, bool) {
    use Permission::*;
    // (roles, agents, bootstrap)
    match permission {
        Bootstrap => (&[], false, true),
        Login => (&[], false, false),
        Me | ReadApiDocs | ReadLog | ReadEntries => (HUMANS, true, false),
        AppendEntries => (&[Role::Admin, Role::Reviewer, Role::Developer], true, false),
        ReadRegistry => (HUMANS, false, false),
        ManageUsers | ManageProjects | OpenReview => (&[Role::Admin], false, false),
        RequestChange => (&[Role::Admin, Role::Developer], false, false),
        DecideChange | ResumeAgent => (&[Role::Admin, Role::Approver], false, false),
        SuspendAgent => (
            &[Role::Admin, Role::Approver, Role::Developer],
            false,
            false,
        ),
        ManageCredentials | StartSession => (WRITERS, false, false),
        ManageOwnCredentials => (HUMANS, false, false),
        AgentSession => (&[], true, false),
        DecideReview => (&[Role::Admin, Role::Reviewer], false, false),
        ReadReviews => (
            &[Role::Admin, Role::Approver, Role::Reviewer, Role::Auditor],
            false,
            false,
        ),
        ReadMetrics => (&[Role::Admin, Role::Auditor], false, false),
        ProposePolicy => (&[Role::Admin, Role::Developer], false, false),
        Contain => (
            &[Role::Admin, Role::Approver, Role::Developer],
            false,
            false,
        ),
        ManageLimits => (&[Role::Admin], false, false),
        ReadApprovals => (HUMANS, true, false),
        DecideApproval => (&[Role::Admin, Role::Approver], false, false),
        AgentAction => (&[], true, false),
        ExportEvidence => (&[Role::Admin, Role::Auditor, Role::Reviewer], false, false),
    }
}

pub fn allows(permission: Permission, caller: &Caller) -> bool {
    let (roles, agents, bootstrap) = holders(permission);
    match caller {
        Caller::Bootstrap => bootstrap,
        Caller::Agent { .. } => agents,
        Caller::Human { roles: mine, .. } => roles.iter().any(|r| mine.contains(r)),
        Caller::Login { .. } => permission == Permission::Login,
    }
}

fn describe(caller: &Caller) -> String {
    match caller {
        Caller::Bootstrap => "the bootstrap token".into(),
        Caller::Agent { agent, .. } => format!("agent {agent}"),
        Caller::Human { user, roles, .. } => {
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            format!("user {user} (roles: {})", roles.join(", "))
        }
        Caller::Login { .. } => "a password login".into(),
    }
}

/// Route layer: refuses the request unless its caller holds `permission`.
pub async fn authorize(
    permission: Permission,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = req
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| ApiError::unauthorized("not authenticated"))?;
    if !allows(permission, caller) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{} may not do this ({permission:?})", describe(caller)),
        ));
    }
    Ok(next.run(req).await)
}
