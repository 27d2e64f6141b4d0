//! Health, Prometheus metrics, per-request accounting, and the OpenAPI document.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide metrics recorder once.
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program);
        // then /metrics shows what this handle sees.
        let _ = metrics::set_global_recorder(recorder);
        handle
    });
}

/// `GET /healthz`: liveness. The process answers; nothing else is
/// checked, so a load balancer does not restart Docket for a full disk.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: whether Docket can do its job now. Ready (200) when the
/// store takes writes, no receipt waits in memory for it, and the latest
/// signed checkpoint is current; otherwise 503, saying which. Also how
/// each provider answered its last call and how busy the gateway is, for
/// the engineer on call; a provider that fails does not make Docket
/// unready (another instance would fail the same way).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let ledger = state.ledger.clone();
    let probed = tokio::task::spawn_blocking(move || {
        let probe = ledger.probe_writable();
        (probe, ledger.latest_checkpoint())
    })
    .await;
    let (probe, latest) = match probed {
        Ok(p) => p,
        Err(e) => {
            return crate::error::ApiError::internal(e).into_response();
        }
    };
    let size = state.ledger.size();
    let kept = state.ledger.kept_entries();
    let writable = probe.is_ok() && state.ledger.writable();
    let now = docket_core::Timestamp::now().as_micros();
    // The checkpointer signs at most every interval while entries arrive;
    // three intervals (and a few seconds) behind is not current.
    let allowed_lag_us = i64::try_from(state.config.checkpoint_interval_ms.saturating_mul(3_000))
        .unwrap_or(i64::MAX)
        + 5_000_000;
    let (cp_size, cp_age_us) = match &latest {
        Ok(Some(cp)) => (cp.size, Some(now - cp.signed_at.as_micros())),
        _ => (0, None),
    };
    let checkpoint_current =
        size == 0 || cp_size == size || cp_age_us.is_some_and(|age| age <= allowed_lag_us);
    let ready = writable && kept == 0 && checkpoint_current;
    let gateway = &state.gateway;
    let body = serde_json::json!({
        "ready": ready,
        "store": {
            "backend": state.ledger.backend().kind(),
            "writable": writable,
            "error": probe.err().map(|e| e.to_string()),
            "entries": size,
            "receipts_waiting": kept,
        },
        "checkpoint": {
            "current": checkpoint_current,
            "size": cp_size,
            "behind": size.saturating_sub(cp_size),
            "age_seconds": cp_age_us.map(|a| a as f64 / 1e6),
        },
        "gateway": {
            "in_flight": gateway.admission.in_flight(),
            "max_in_flight": gateway.admission.max_in_flight(),
            "scheduler_lag_ms": gateway.admission.lag_ms(),
            "decide_ms": gateway.admission.decide_ms(),
            "upstreams": gateway.upstreams(),
        },
    });
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    install();
    metrics::gauge!("docket_log_entries").set(state.ledger.size() as f64);
    let ledger = state.ledger.clone();
    let latest = tokio::task::spawn_blocking(move || ledger.latest_checkpoint()).await;
    if let Ok(Ok(Some(cp))) = latest {
        let age = docket_core::Timestamp::now().as_micros() - cp.signed_at.as_micros();
        metrics::gauge!("docket_checkpoint_age_seconds").set(age as f64 / 1e6);
        metrics::gauge!("docket_checkpoint_size").set(cp.size as f64);
    }
    let body = HANDLE.get().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Counts requests and their latency by route and status.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("docket_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("docket_http_request_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}
