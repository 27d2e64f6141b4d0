//! HTTP routes under `/api/v1`, grouped by what they serve.

pub mod entries;
pub mod evidence;
pub mod governance;
pub mod identity;
pub mod log;

/// What a change appended, for its response (identity and governance
/// changes alike).
fn written(acks: &[(docket_store::Appended, docket_core::identity::Event)]) -> serde_json::Value {
    acks.iter()
        .map(|(a, e)| serde_json::json!({"seq": a.seq.0, "type": e.entry_type().as_str(), "ts": a.ts.to_string()}))
        .collect()
}

use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, get, patch, post, put};
use serde_json::value::RawValue;

use crate::AppState;
use crate::authz::Permission;
use crate::error::ApiError;

/// One route: method, path, the permission it needs, its handler.
pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
    pub permission: Permission,
    pub handler: MethodRouter<AppState>,
}

/// Every authenticated route. [`crate::app`] mounts exactly these, each
/// behind [`crate::authz::authorize`] with its permission, so a route
/// cannot exist without a decision about who may call it.
pub fn table() -> Vec<ApiRoute> {
    use Permission as P;
    use governance as gov;
    use identity as id;
    let r = |method: Method, path, permission, handler| ApiRoute {
        method,
        path,
        permission,
        handler,
    };
    vec![
        r(
            Method::POST,
            "/api/v1/bootstrap",
            P::Bootstrap,
            post(id::bootstrap),
        ),
        r(Method::POST, "/api/v1/login", P::Login, post(id::login)),
        r(Method::GET, "/api/v1/me", P::Me, get(id::me)),
        r(
            Method::GET,
            "/api/v1/openapi.json",
            P::ReadApiDocs,
            get(crate::telemetry::openapi),
        ),
        r(
            Method::GET,
            "/metrics",
            P::ReadMetrics,
            get(crate::telemetry::metrics),
        ),
        // The log.
        r(
            Method::POST,
            "/api/v1/entries",
            P::AppendEntries,
            post(entries::append),
        ),
        r(
            Method::GET,
            "/api/v1/entries",
            P::ReadEntries,
            get(entries::list),
        ),
        r(
            Method::GET,
            "/api/v1/entries/{seq}",
            P::ReadEntries,
            get(entries::get),
        ),
        r(
            Method::GET,
            "/api/v1/receipts/{seq}",
            P::ReadEntries,
            get(log::receipt),
        ),
        r(
            Method::GET,
            "/api/v1/evidence/export",
            P::ExportEvidence,
            get(evidence::export_pack),
        ),
        r(Method::GET, "/api/v1/log", P::ReadLog, get(log::info)),
        r(
            Method::GET,
            "/api/v1/checkpoint",
            P::ReadLog,
            get(log::latest),
        ),
        r(
            Method::GET,
            "/api/v1/checkpoints",
            P::ReadLog,
            get(log::list),
        ),
        r(
            Method::GET,
            "/api/v1/proofs/inclusion",
            P::ReadLog,
            get(log::inclusion),
        ),
        r(
            Method::GET,
            "/api/v1/proofs/consistency",
            P::ReadLog,
            get(log::consistency),
        ),
        r(
            Method::GET,
            "/api/v1/proofs/range",
            P::ReadLog,
            get(log::range),
        ),
        // Users.
        r(
            Method::GET,
            "/api/v1/users",
            P::ReadRegistry,
            get(id::list_users),
        ),
        r(
            Method::POST,
            "/api/v1/users",
            P::ManageUsers,
            post(id::create_user),
        ),
        r(
            Method::GET,
            "/api/v1/users/{id}",
            P::ReadRegistry,
            get(id::get_user),
        ),
        r(
            Method::PATCH,
            "/api/v1/users/{id}",
            P::ManageUsers,
            patch(id::update_user),
        ),
        r(
            Method::PUT,
            "/api/v1/users/{id}/kyc",
            P::ManageUsers,
            put(id::set_kyc),
        ),
        r(
            Method::POST,
            "/api/v1/users/{id}/password",
            P::ManageOwnCredentials,
            post(id::set_password),
        ),
        r(
            Method::POST,
            "/api/v1/users/{id}/tokens",
            P::ManageOwnCredentials,
            post(id::issue_personal),
        ),
        // Projects.
        r(
            Method::GET,
            "/api/v1/projects",
            P::ReadRegistry,
            get(id::list_projects),
        ),
        r(
            Method::POST,
            "/api/v1/projects",
            P::ManageProjects,
            post(id::create_project),
        ),
        r(
            Method::GET,
            "/api/v1/projects/{id}",
            P::ReadRegistry,
            get(id::get_project),
        ),
        r(
            Method::PUT,
            "/api/v1/projects/{id}",
            P::ManageProjects,
            put(id::update_project),
        ),
        // Agents and their change requests.
        r(
            Method::GET,
            "/api/v1/agents",
            P::ReadRegistry,
            get(id::list_agents),
        ),
        r(
            Method::POST,
            "/api/v1/agents",
            P::RequestChange,
            post(id::request_agent),
        ),
        r(
            Method::GET,
            "/api/v1/agents/{id}",
            P::ReadRegistry,
            get(id::get_agent),
        ),
        r(
            Method::POST,
            "/api/v1/agents/{id}/retire",
            P::RequestChange,
            post(id::request_retire),
        ),
        r(
            Method::POST,
            "/api/v1/agents/{id}/suspend",
            P::SuspendAgent,
            post(id::suspend_agent),
        ),
        r(
            Method::POST,
            "/api/v1/agents/{id}/resume",
            P::ResumeAgent,
            post(id::resume_agent),
        ),
        r(
            Method::POST,
            "/api/v1/agents/{id}/credentials",
            P::ManageCredentials,
            post(id::issue_api_key),
        ),
        r(
            Method::POST,
            "/api/v1/agents/{id}/sessions",
            P::StartSession,
            post(id::human_session),
        ),
        r(
            Method::GET,
            "/api/v1/changes",
            P::ReadRegistry,
            get(id::list_changes),
        ),
        r(
            Method::GET,
            "/api/v1/changes/{seq}",
            P::ReadRegistry,
            get(id::get_change),
        ),
        r(
            Method::POST,
            "/api/v1/changes/{seq}/approve",
            P::DecideChange,
            post(id::approve_change),
        ),
        r(
            Method::POST,
            "/api/v1/changes/{seq}/reject",
            P::DecideChange,
            post(id::reject_change),
        ),
        // Credentials and sessions.
        r(
            Method::GET,
            "/api/v1/credentials",
            P::ReadRegistry,
            get(id::list_credentials),
        ),
        r(
            Method::POST,
            "/api/v1/credentials/{id}/rotate",
            P::ManageOwnCredentials,
            post(id::rotate),
        ),
        r(
            Method::POST,
            "/api/v1/credentials/{id}/revoke",
            P::ManageOwnCredentials,
            post(id::revoke),
        ),
        r(
            Method::POST,
            "/api/v1/sessions",
            P::AgentSession,
            post(id::agent_session),
        ),
        r(
            Method::POST,
            "/api/v1/sessions/end",
            P::AgentSession,
            post(id::end_session),
        ),
        // Access reviews.
        r(
            Method::GET,
            "/api/v1/access-reviews",
            P::ReadReviews,
            get(id::list_reviews),
        ),
        r(
            Method::POST,
            "/api/v1/access-reviews",
            P::OpenReview,
            post(id::open_review),
        ),
        r(
            Method::GET,
            "/api/v1/access-reviews/{seq}",
            P::ReadReviews,
            get(id::get_review),
        ),
        r(
            Method::POST,
            "/api/v1/access-reviews/{seq}/decisions",
            P::DecideReview,
            post(id::decide_review),
        ),
        r(
            Method::POST,
            "/api/v1/access-reviews/{seq}/complete",
            P::OpenReview,
            post(id::complete_review),
        ),
        // Policy and change management.
        r(
            Method::GET,
            "/api/v1/policy",
            P::ReadRegistry,
            get(gov::policy_info),
        ),
        r(
            Method::GET,
            "/api/v1/policy/schema",
            P::ReadRegistry,
            get(gov::schema),
        ),
        r(
            Method::POST,
            "/api/v1/policy/versions",
            P::ProposePolicy,
            post(gov::submit_version),
        ),
        r(
            Method::GET,
            "/api/v1/policy/versions/{version}",
            P::ReadRegistry,
            get(gov::get_version),
        ),
        r(
            Method::POST,
            "/api/v1/policy/rollback",
            P::ProposePolicy,
            post(gov::rollback),
        ),
        r(
            Method::POST,
            "/api/v1/agents/{id}/changes",
            P::RequestChange,
            post(gov::request_agent_change),
        ),
        r(
            Method::POST,
            "/api/v1/projects/{id}/rules",
            P::ManageProjects,
            post(gov::request_rules_change),
        ),
        // Containment.
        r(
            Method::GET,
            "/api/v1/kill-switches",
            P::ReadRegistry,
            get(gov::list_kill_switches),
        ),
        r(
            Method::POST,
            "/api/v1/kill-switches/engage",
            P::Contain,
            post(gov::engage),
        ),
        r(
            Method::POST,
            "/api/v1/kill-switches/release",
            P::ResumeAgent,
            post(gov::release),
        ),
        r(
            Method::GET,
            "/api/v1/limits",
            P::ReadRegistry,
            get(gov::list_limits),
        ),
        r(
            Method::PUT,
            "/api/v1/limits",
            P::ManageLimits,
            put(gov::set_limits),
        ),
        // Approvals of held actions.
        r(
            Method::GET,
            "/api/v1/approvals",
            P::ReadApprovals,
            get(gov::list_approvals),
        ),
        r(
            Method::GET,
            "/api/v1/approvals/{id}",
            P::ReadApprovals,
            get(gov::get_approval),
        ),
        r(
            Method::POST,
            "/api/v1/approvals/{id}/decide",
            P::DecideApproval,
            post(gov::decide_approval),
        ),
        // Tools Docket cannot proxy.
        r(
            Method::POST,
            "/api/v1/authorize",
            P::AgentAction,
            post(gov::authorize),
        ),
        r(
            Method::POST,
            "/api/v1/record",
            P::AgentAction,
            post(gov::record),
        ),
        // The gateway: provider-compatible routes for agents' own SDKs.
        r(
            Method::POST,
            "/v1/chat/completions",
            P::AgentAction,
            post(crate::gateway::chat_completions),
        ),
        r(
            Method::POST,
            "/v1/responses",
            P::AgentAction,
            post(crate::gateway::responses),
        ),
        r(
            Method::POST,
            "/v1/embeddings",
            P::AgentAction,
            post(crate::gateway::embeddings),
        ),
        r(
            Method::GET,
            "/v1/models",
            P::AgentAction,
            get(crate::gateway::models),
        ),
        r(
            Method::POST,
            "/v1/messages",
            P::AgentAction,
            post(crate::gateway::messages),
        ),
    ]
}

/// Runs blocking store work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// Embeds stored canonical entry bytes in a response without re-parsing.
pub fn raw_entry(bytes: Vec<u8>) -> Result<Box<RawValue>, ApiError> {
    let s = String::from_utf8(bytes).map_err(ApiError::internal)?;
    RawValue::from_string(s).map_err(ApiError::internal)
}

/// Parses an id from a path, saying which and why it is wrong.
pub fn parse_id<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| ApiError::bad_request("invalid_request", format!("{what}: {e}")))
}

pub fn parse_u64(field: &str, value: &str) -> Result<u64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("{field} must be a non-negative integer, got {value:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json parses");
        for route in super::table() {
            let method = route.method.as_str().to_lowercase();
            assert!(
                doc["paths"][route.path][&method].is_object(),
                "{} {} is not in openapi.json",
                route.method,
                route.path
            );
        }
    }
}
