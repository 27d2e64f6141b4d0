//! The gateway: OpenAI- and Anthropic-compatible routes that agents reach
//! with their usual SDKs. Each call is authenticated (by the router),
//! decided ([`crate::governance`]: kill switches, scope, Cedar, limits),
//! held for a human when policy says so, forwarded with Docket's provider
//! key, and recorded as one `receipt` entry — durable before the agent
//! gets the answer's last byte. If the ledger cannot be written, nothing
//! is forwarded.

pub mod admission;
pub mod config;
pub mod forward;
mod pattern;
pub mod price;
pub mod wire;

use docket_core::bodies::ReceiptBody;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use docket_core::Timestamp;
use docket_policy::Outcome;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::governance::{
    ActionRequest, AgentCaller, Claim, Decided, Permit, Source, Stage, request_digest,
};
use crate::identity::Caller;
use admission::Admission;
use config::GatewayConfig;
use forward::{Forwarder, Outbound, StreamOutcome};
use price::PriceTable;
use wire::{Api, SseTap};

/// Request header: the data classes the call touches, comma-separated.
pub const DATA_CLASSES_HEADER: &str = "docket-data-classes";
/// Request header: the environment the call runs in (`prod`, …).
pub const ENVIRONMENT_HEADER: &str = "docket-environment";
/// Request header: resume a held call with its granted approval.
pub const APPROVAL_HEADER: &str = "docket-approval";
/// Request header: seconds to wait for a human when the call is held.
pub const APPROVAL_WAIT_HEADER: &str = "docket-approval-wait";
/// Largest non-streamed provider answer Docket relays.
const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Output assumed for a budget estimate when the request sets no limit.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;

/// What the gateway holds: the provider connections, the prices, how
/// much work it takes on, and how each provider last answered.
pub struct Gateway {
    pub forwarder: Forwarder,
    pub prices: PriceTable,
    pub config: GatewayConfig,
    pub admission: Admission,
    upstreams: parking_lot::Mutex<BTreeMap<String, UpstreamSeen>>,
}

/// How a provider answered the last call forwarded to it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UpstreamSeen {
    pub at: Timestamp,
    /// It answered with a success status.
    pub ok: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("forwarder", &self.forwarder)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(config: &GatewayConfig) -> Result<Self, String> {
        Ok(Self {
            forwarder: Forwarder::new(config)?,
            prices: config.price_table(),
            config: config.clone(),
            admission: Admission::new(config),
            upstreams: Default::default(),
        })
    }

    /// How each provider answered its last call, by provider name.
    pub fn upstreams(&self) -> BTreeMap<String, UpstreamSeen> {
        self.upstreams.lock().clone()
    }

    fn saw(&self, provider: &str, seen: UpstreamSeen) {
        self.upstreams.lock().insert(provider.to_owned(), seen);
    }
}

pub async fn chat_completions(
    s: State<AppState>,
    c: axum::Extension<Caller>,
    r: Request,
) -> Response {
    call(s, c, r, Api::ChatCompletions).await
}

pub async fn responses(s: State<AppState>, c: axum::Extension<Caller>, r: Request) -> Response {
    call(s, c, r, Api::Responses).await
}

pub async fn embeddings(s: State<AppState>, c: axum::Extension<Caller>, r: Request) -> Response {
    call(s, c, r, Api::Embeddings).await
}

pub async fn messages(s: State<AppState>, c: axum::Extension<Caller>, r: Request) -> Response {
    call(s, c, r, Api::Messages).await
}

/// `GET /v1/models`: the models this agent may call, in OpenAI's list
/// shape. Answered by Docket: the provider's full catalogue is not what
/// the agent is allowed to use.
pub async fn models(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let agent = match AgentCaller::from_caller(&caller) {
        Ok(a) => a,
        Err(e) => return refusal(Api::Models, e.status, e.code, &e.message),
    };
    let r = state.identity.read();
    let (Some(a), Some(c)) = (
        r.agents.get(&agent.agent),
        r.credentials.get(&agent.credential),
    ) else {
        return refusal(
            Api::Models,
            StatusCode::FORBIDDEN,
            "scope",
            "agent is not registered",
        );
    };
    let created = a.registered_at.as_micros() / 1_000_000;
    let data: Vec<Value> = r
        .effective_scope(a, c)
        .models
        .iter()
        .map(|m| {
            let owner = state
                .gateway
                .config
                .route(m)
                .map(|(p, _)| p.to_owned())
                .unwrap_or_else(|| "docket".into());
            json!({"id": m, "object": "model", "created": created, "owned_by": owner})
        })
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

fn refusal(api: Api, status: StatusCode, code: &str, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    // Retrying cannot change a refusal by policy; rate limits say when.
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            HeaderName::from_static("x-should-retry"),
            HeaderValue::from_static("false"),
        );
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("60"),
        );
    }
    // A 503 is a moment's state (overload, a ledger refusing writes).
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(crate::error::RETRY_AFTER_SECS),
        );
    }
    wire::error_response_with_headers(api, status, code, message, headers)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn set_header(resp: &mut Response, name: &'static str, value: u64) {
    resp.headers_mut()
        .insert(HeaderName::from_static(name), HeaderValue::from(value));
}

async fn call(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    request: Request,
    api: Api,
) -> Response {
    let started = Instant::now();
    let overloaded = |e: admission::Refused| {
        refusal(
            api,
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            &format!(
                "Docket is overloaded ({e}); nothing was decided or forwarded, try again shortly"
            ),
        )
    };
    let admission = &state.gateway.admission;
    let mut admitted = match admission.admit() {
        Ok(a) => a,
        Err(e) => return overloaded(e),
    };
    let (parts, body) = request.into_parts();
    let body = match read_body(&state, api, &parts.headers, body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if let Err(e) = admission.start_deciding(&mut admitted).await {
        return overloaded(e);
    }
    match run(
        &state,
        &caller,
        &parts.headers,
        body,
        api,
        started,
        admitted,
    )
    .await
    {
        Ok(resp) | Err(resp) => resp,
    }
}

/// The request body, refused in the provider's error shape unless it is
/// JSON (415) within `max_body_bytes` (413).
// Both arms are the response to send.
#[allow(clippy::result_large_err)]
async fn read_body(
    state: &AppState,
    api: Api,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Response> {
    if !crate::error::is_json(headers) {
        return Err(refusal(
            api,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the request body as JSON with `Content-Type: application/json`",
        ));
    }
    let limit = state.config.max_body_bytes;
    crate::error::read_body(body, limit)
        .await
        .map_err(|e| match e {
            crate::error::BodyError::TooLarge => refusal(
                api,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &format!("the request body is larger than this gateway's limit of {limit} bytes"),
            ),
            crate::error::BodyError::Timeout(m) => {
                refusal(api, StatusCode::REQUEST_TIMEOUT, "request_timeout", &m)
            }
            crate::error::BodyError::Unreadable(m) => {
                refusal(api, StatusCode::BAD_REQUEST, "invalid_request", &m)
            }
        })
}

/// The HTTP status and code a denial gets, so SDKs raise the right error.
fn denial_status(stage: Stage) -> (StatusCode, &'static str) {
    match stage {
        Stage::KillSwitch => (StatusCode::FORBIDDEN, "kill_switch"),
        Stage::Scope => (StatusCode::FORBIDDEN, "out_of_scope"),
        Stage::Policy => (StatusCode::FORBIDDEN, "policy_denied"),
        Stage::Approval => (StatusCode::FORBIDDEN, "approval_refused"),
        Stage::Budget => (StatusCode::TOO_MANY_REQUESTS, "budget_exceeded"),
        Stage::RateLimit => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Stage::Concurrency => (StatusCode::TOO_MANY_REQUESTS, "too_many_concurrent_calls"),
    }
}

fn denied(api: Api, d: &Decided) -> Response {
    let (status, code) = denial_status(d.stage);
    let mut resp = refusal(
        api,
        status,
        code,
        &format!(
            "Docket refused this call (decision {}): {}",
            d.seq, d.reason
        ),
    );
    set_header(&mut resp, "docket-decision", d.seq);
    resp
}

// Both arms are the response to send; `Err` is the early way out, and
// boxing it would only add an allocation to every refusal.
#[allow(clippy::result_large_err)]
async fn run(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Bytes,
    api: Api,
    started: Instant,
    mut admitted: admission::Admitted,
) -> Result<Response, Response> {
    let err = move |e: ApiError| refusal(api, e.status, e.code, &e.message);
    // Docket's own headers are read as text; one that is not is refused,
    // never taken as absent.
    if let Some((name, _)) = headers
        .iter()
        .find(|(n, v)| n.as_str().starts_with("docket-") && v.to_str().is_err())
    {
        return Err(refusal(
            api,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("the {name} header is not valid text"),
        ));
    }
    let agent = AgentCaller::from_caller(caller).map_err(err)?;
    let shape = wire::inspect(api, &body).map_err(|e| e.to_response(api))?;
    let gateway = &state.gateway;
    let (provider, _) = gateway.config.route_for(api, &shape.model).map_err(|e| {
        let status = match e {
            config::RouteError::UnknownModel { .. } => StatusCode::NOT_FOUND,
            config::RouteError::WrongApi { .. } => StatusCode::BAD_REQUEST,
        };
        refusal(api, status, e.code(), &e.to_string())
    })?;
    let provider = provider.to_owned();
    let data_classes: BTreeSet<String> = header_str(headers, DATA_CLASSES_HEADER)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let max_out = match api {
        Api::Embeddings => Some(0),
        _ => Some(shape.max_output_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE)),
    };
    let estimate = gateway
        .prices
        .estimate(&shape.model, shape.estimated_input_tokens, max_out);
    let req = ActionRequest {
        action: if api == Api::Embeddings {
            docket_policy::Action::Embed
        } else {
            docket_policy::Action::CallModel
        },
        resource: docket_policy::Resource {
            kind: docket_policy::ResourceKind::Model,
            id: shape.model.clone(),
            provider: Some(provider.clone()),
            data_classes,
            environment: header_str(headers, ENVIRONMENT_HEADER).map(str::to_owned),
        },
        claim: Claim {
            estimate_micro_usd: estimate.0,
            estimated_tokens: shape.estimated_input_tokens + max_out.unwrap_or(0),
        },
        request_sha256: request_digest("POST", api.path(), &body),
        source: Source::Gateway,
        extra: json!({"api": api.path(), "stream": shape.stream}),
    };
    let gov = &state.governance;
    let approval = header_str(headers, APPROVAL_HEADER)
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                refusal(
                    api,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("{APPROVAL_HEADER} must be an approval id (a number), got {v:?}"),
                )
            })
        })
        .transpose()?;
    let decision = match approval {
        Some(id) => gov.resume(&agent, &req, id).await,
        None => gov.decide(&agent, &req).await,
    };
    // Decided, whatever the outcome: the place goes to the next call (a
    // human's time to approve is not Docket's work), and admission learns
    // how long deciding took.
    admitted.decided();
    let mut decided = decision.map_err(err)?;
    // The approval a held call goes ahead with, for its receipt.
    let held = decided.approval.as_ref().map(|a| a.id);
    if decided.outcome == Outcome::RequireApproval {
        decided = wait_for_approval(state, &agent, &req, headers, decided, api).await?;
    }
    if decided.outcome != Outcome::Allow {
        return Err(denied(api, &decided));
    }
    let decision = decided.seq;
    let permit = decided.permit.take();
    let approval = approval.or(held);
    let prepared = wire::prepare(api, body, &shape);
    let facts = Facts {
        agent,
        api,
        provider: provider.clone(),
        model: shape.model.clone(),
        stream: shape.stream,
        decision,
        approval,
        request_sha256: req.request_sha256.clone(),
        resource: req.resource.clone(),
        estimate: req.claim.clone(),
        started,
    };
    // From here on the call is the provider's: it runs on a task of its own,
    // so an agent that hangs up (or times out) cannot stop its receipt from
    // being written and its cost from being counted.
    let state = state.clone();
    let headers = headers.clone();
    let (body, stream, strip_usage_chunk) =
        (prepared.body, shape.stream, prepared.strip_usage_chunk);
    let forwarded = tokio::spawn(async move {
        // In flight until the receipt is durable, even if the agent goes.
        let state = &state;
        let sent = state
            .gateway
            .forwarder
            .send(Outbound {
                provider: &provider,
                api,
                headers: &headers,
                body,
                stream,
            })
            .await;
        let upstream = match sent {
            Ok(u) => u,
            Err(e) => return facts.failed(state, permit, &e, None).await,
        };
        if upstream.is_event_stream() {
            return Ok(stream_through(
                state,
                facts,
                (permit, admitted),
                upstream,
                strip_usage_chunk,
            ));
        }
        let status = upstream.status;
        let mut out_headers = upstream.headers;
        let bytes = match forward::collect(upstream.body, MAX_RESPONSE_BYTES).await {
            Ok(b) => b,
            Err(e) => return facts.failed(state, permit, &e, Some(status)).await,
        };
        let facts_of = wire::response_facts(api, &bytes);
        let digest = hex::encode(Sha256::digest(&bytes));
        let receipt = facts
            .record(
                state,
                permit,
                Ended::Answered {
                    status,
                    usage: facts_of.usage,
                    response_id: facts_of.response_id,
                    complete: true,
                    stream_error: None,
                },
                Some(status),
                Some(digest),
            )
            .await
            .map_err(|e| facts.unrecorded(e))?;
        out_headers.insert(
            HeaderName::from_static("docket-decision"),
            HeaderValue::from(decision),
        );
        out_headers.insert(
            HeaderName::from_static("docket-receipt"),
            HeaderValue::from(receipt),
        );
        Ok(forward::response(status, out_headers, bytes))
    });
    match forwarded.await {
        Ok(answer) => answer,
        Err(e) => Err(err(ApiError::internal(e))),
    }
}

/// A held call: wait (bounded) for the human, then go ahead with the
/// approval, or answer 202 with the handle to resume with.
// Both arms are the response to send; `Err` is the early way out, and
// boxing it would only add an allocation to every refusal.
#[allow(clippy::result_large_err)]
async fn wait_for_approval(
    state: &AppState,
    agent: &AgentCaller,
    req: &ActionRequest,
    headers: &HeaderMap,
    held: Decided,
    api: Api,
) -> Result<Decided, Response> {
    let err = |e: ApiError| refusal(api, e.status, e.code, &e.message);
    let Some(approval) = held.approval.clone() else {
        return Err(err(ApiError::internal(
            "held call without approval request",
        )));
    };
    let max = state.gateway.config.approval_wait_secs;
    let wait = match header_str(headers, APPROVAL_WAIT_HEADER) {
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            refusal(
                api,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("{APPROVAL_WAIT_HEADER} must be a number of seconds, got {v:?}"),
            )
        })?,
        None => max,
    }
    .min(max);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let now_state = state
        .governance
        .approvals
        .wait(approval.id, deadline)
        .await
        .unwrap_or(approval.clone());
    match now_state.state(Timestamp::now()) {
        "approved" => state
            .governance
            .resume(agent, req, approval.id)
            .await
            .map_err(err),
        "pending" => {
            let mut resp = (
                StatusCode::ACCEPTED,
                Json(json!({
                    "object": "docket.approval",
                    "approval": approval.id,
                    "decision": held.seq,
                    "state": "pending",
                    "expires_at": approval.expires_at,
                    "reason": held.reason,
                    "message": format!(
                        "held for human approval; once approved, send the same request again with the header `{APPROVAL_HEADER}: {}`",
                        approval.id
                    ),
                })),
            )
                .into_response();
            set_header(&mut resp, "docket-approval", approval.id);
            set_header(&mut resp, "docket-decision", held.seq);
            Err(resp)
        }
        other => {
            let why = match &now_state.status {
                crate::governance::approvals::Status::Denied { by, reason, .. } => {
                    format!("denied by {by}: {reason}")
                }
                _ => format!("the approval is {other}"),
            };
            let mut resp = refusal(
                api,
                StatusCode::FORBIDDEN,
                "approval_refused",
                &format!(
                    "Docket held this call for approval {} (decision {}) and it was not granted: {why}",
                    approval.id, held.seq
                ),
            );
            set_header(&mut resp, "docket-approval", approval.id);
            set_header(&mut resp, "docket-decision", held.seq);
            Err(resp)
        }
    }
}

/// How the provider call ended, for the receipt.
enum Ended<'a> {
    Failed(&'a forward::ForwardError),
    Answered {
        status: StatusCode,
        usage: Option<wire::Usage>,
        response_id: Option<String>,
        complete: bool,
        stream_error: Option<String>,
    },
    /// The stream was cut: by the provider, or the agent went away.
    Cut {
        usage: Option<wire::Usage>,
        response_id: Option<String>,
        why: String,
    },
}

/// Everything the receipt needs that is known before the answer.
struct Facts {
    agent: AgentCaller,
    api: Api,
    provider: String,
    model: String,
    stream: bool,
    decision: u64,
    approval: Option<u64>,
    request_sha256: String,
    resource: docket_policy::Resource,
    estimate: Claim,
    started: Instant,
}

impl Facts {
    /// The provider could not be reached or its answer not read: the
    /// receipt says so, and the agent gets the provider-shaped error.
    // Both arms are the response to send.
    #[allow(clippy::result_large_err)]
    async fn failed(
        &self,
        state: &AppState,
        permit: Option<Permit>,
        e: &forward::ForwardError,
        upstream_status: Option<StatusCode>,
    ) -> Result<Response, Response> {
        let receipt = self
            .record(state, permit, Ended::Failed(e), upstream_status, None)
            .await
            .map_err(|e| self.unrecorded(e))?;
        let mut resp = e.to_response(self.api);
        set_header(&mut resp, "docket-decision", self.decision);
        set_header(&mut resp, "docket-receipt", receipt);
        Ok(resp)
    }

    /// The answer to an agent whose call went to the provider but whose
    /// receipt is not durable yet: it may have run and been billed, so the
    /// agent is told not to repeat it blindly, and given the decision to
    /// look it up by. The ledger keeps the receipt and writes it as soon as
    /// the store takes writes.
    fn unrecorded(&self, e: ApiError) -> Response {
        let mut resp = refusal(
            self.api,
            StatusCode::SERVICE_UNAVAILABLE,
            "receipt_pending",
            &format!(
                "this call reached the provider (decision {}), but Docket could not record its outcome yet ({}), so the answer is withheld; Docket keeps the receipt and records it as soon as the ledger takes writes. The provider may have run and billed the call: do not repeat it without checking.",
                self.decision, e.message
            ),
        );
        set_header(&mut resp, "docket-decision", self.decision);
        // Not a moment's state for the agent: the call already ran.
        let h = resp.headers_mut();
        h.remove(axum::http::header::RETRY_AFTER);
        h.insert(
            HeaderName::from_static("x-should-retry"),
            HeaderValue::from_static("false"),
        );
        resp
    }

    /// Settles the budget with the real cost and appends the receipt;
    /// returns its seq. The receipt is kept until durable: if the store
    /// refuses it now, the ledger retries it ahead of anything newer.
    async fn record(
        &self,
        state: &AppState,
        permit: Option<Permit>,
        ended: Ended<'_>,
        upstream_status: Option<StatusCode>,
        response_sha256: Option<String>,
    ) -> Result<u64, ApiError> {
        let (outcome, usage, response_id, error) = match &ended {
            Ended::Failed(e) => ("upstream_error", None, None, Some(e.to_string())),
            Ended::Answered {
                status,
                usage,
                response_id,
                complete,
                stream_error,
            } => {
                let outcome = if !status.is_success() || stream_error.is_some() {
                    "upstream_error"
                } else if !complete {
                    "incomplete"
                } else {
                    "ok"
                };
                (outcome, *usage, response_id.clone(), stream_error.clone())
            }
            Ended::Cut {
                usage,
                response_id,
                why,
            } => ("cut", *usage, response_id.clone(), Some(why.clone())),
        };
        state.gateway.saw(
            &self.provider,
            UpstreamSeen {
                at: Timestamp::now(),
                ok: outcome != "upstream_error",
                status: upstream_status.map(|s| s.as_u16()),
                error: error.clone(),
            },
        );
        let prices = &state.gateway.prices;
        // Providers bill what they answered: a call that got no 2xx costs
        // nothing. An answer without usage is charged its estimate, so
        // budgets do not leak through a provider that omits usage.
        let answered =
            !matches!(ended, Ended::Failed(_)) && upstream_status.is_none_or(|s| s.is_success());
        let (input, output, usage_source, cost) = match usage {
            Some(u) => (
                u.input_tokens,
                u.output_tokens,
                "provider",
                prices.cost(&self.model, u.input_tokens, u.output_tokens).0,
            ),
            None if answered => (
                self.estimate.estimated_tokens,
                0,
                "estimated",
                self.estimate.estimate_micro_usd,
            ),
            None => (0, 0, "none", 0),
        };
        let now = Timestamp::now();
        if let Some(p) = permit {
            p.settle(cost, input + output, now);
        }
        let a = &self.agent;
        let mut r = ReceiptBody::new(
            a.agent.clone(),
            a.project.clone(),
            a.credential.clone(),
            Source::Gateway,
            a.actor.clone(),
        );
        r.human = a.human.clone();
        if let docket_core::identity::Actor::Agent { task: Some(t), .. } = &a.actor {
            r.session = Some(t.clone());
        }
        r.provider = Some(self.provider.clone());
        r.model = Some(self.model.clone());
        r.api = Some(self.api.path().to_owned());
        r.stream = Some(self.stream);
        r.decision = Some(self.decision);
        r.request_sha256 = Some(self.request_sha256.clone());
        r.input_tokens = Some(input);
        r.output_tokens = Some(output);
        r.usage_source = Some(usage_source.to_owned());
        r.cost_micro_usd = Some(u64::try_from(cost).unwrap_or(0));
        r.latency_us = Some(u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX));
        r.outcome = Some(outcome.to_owned());
        r.data_classes = self.resource.data_classes.iter().cloned().collect();
        r.environment = self.resource.environment.clone();
        r.approval = self.approval;
        r.upstream_status = upstream_status.map(|s| s.as_u16());
        r.response_sha256 = response_sha256;
        r.response_id = response_id;
        r.error = error.map(|e| e.chars().take(1000).collect());
        let entry = crate::governance::entry(docket_core::EntryType::Receipt, &r)?;
        let acks = state.ledger.append_kept(vec![entry]).await.map_err(|e| {
            tracing::error!(decision = self.decision, cause = %e, "receipt not durable yet; kept for retry");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "receipt_pending",
                "the ledger cannot be written right now",
            )
        })?;
        Ok(acks[0].seq.0)
    }
}

/// Relays a streamed answer as it arrives, watching it for usage, and
/// holds the end of the response until the receipt is durable. The
/// receipt is written even if the agent goes away mid-stream.
fn stream_through(
    state: &AppState,
    facts: Facts,
    (permit, admitted): (Option<Permit>, admission::Admitted),
    upstream: forward::UpstreamResponse,
    strip_usage_chunk: bool,
) -> Response {
    let api = facts.api;
    let decision = facts.decision;
    let status = upstream.status;
    let mut headers = upstream.headers;
    headers.insert(
        HeaderName::from_static("docket-decision"),
        HeaderValue::from(decision),
    );
    // What the provider sent, hashed as it passes (before the tap removes
    // anything), so the digest is of the provider's own answer.
    let hasher = std::sync::Arc::new(parking_lot::Mutex::new(Sha256::new()));
    let h = hasher.clone();
    let raw = upstream
        .body
        .inspect(move |chunk| {
            if let Ok(c) = chunk {
                h.lock().update(c);
            }
        })
        .boxed();
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<u64, ApiError>>();
    let state = state.clone();
    let on_end = move |end: forward::StreamEnd| {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!(decision, "no runtime to record a stream's receipt");
            return;
        };
        rt.spawn(async move {
            let digest = hex::encode(std::mem::take(&mut *hasher.lock()).finalize());
            let s = end.summary;
            let ended = match end.outcome {
                StreamOutcome::Finished => Ended::Answered {
                    status,
                    usage: s.usage,
                    response_id: s.response_id,
                    complete: s.complete,
                    stream_error: s.stream_error,
                },
                StreamOutcome::Upstream(e) => Ended::Cut {
                    usage: s.usage,
                    response_id: s.response_id,
                    why: e.to_string(),
                },
                StreamOutcome::ClientGone => Ended::Cut {
                    usage: s.usage,
                    response_id: s.response_id,
                    why: "the agent closed the connection before the answer ended".into(),
                },
            };
            let result = facts
                .record(&state, permit, ended, Some(status), Some(digest))
                .await;
            // The stream has ended and its receipt is settled.
            drop(admitted);
            if let Err(e) = &result {
                tracing::error!(decision, error = %e.message, "stream receipt not recorded");
            }
            let _ = tx.send(result);
        });
    };
    let tapped = forward::tap_stream(raw, SseTap::new(api, strip_usage_chunk), on_end);
    let tail = futures_util::stream::once(async move {
        match rx.await {
            Ok(Ok(_)) => Ok(Bytes::new()),
            // The stream's bytes already went out: all that is left is to
            // not end it cleanly, so the agent does not take it as whole.
            _ => Err(forward::ForwardError::Body(format!(
                "the receipt of this call (decision {decision}) is not recorded yet; Docket keeps it and records it once the ledger takes writes"
            ))),
        }
    });
    let body = Body::from_stream(
        tapped
            .chain(tail)
            .filter(|c| std::future::ready(!matches!(c, Ok(b) if b.is_empty()))),
    );
    forward::response(status, headers, body)
}
