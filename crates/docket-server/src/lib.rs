//! Docket's HTTP application as a library: [`app`] builds the router over
//! an [`AppState`], [`start`] opens a data directory and serves it.

pub mod auth;
pub mod authz;
pub mod checkpointer;
pub mod config;
pub mod error;
pub mod evidence;
pub mod gateway;
pub mod governance;
pub mod httpsig;
pub mod identity;
pub mod init;
pub mod integrity;
pub mod listener;
pub mod routes;
mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use docket_core::LogSigner;
use docket_store::{Ledger, LedgerConfig};
use tokio::sync::watch;
use zeroize::Zeroizing;

pub use crate::auth::Auth;
pub use crate::config::Config;

/// The log's identity, as verifiers pin it.
#[derive(Clone, Debug)]
pub struct LogInfo {
    pub origin: String,
    pub public_key: String,
}

#[derive(Clone)]
pub struct AppState {
    pub ledger: Arc<Ledger>,
    pub log: Arc<LogInfo>,
    pub auth: Auth,
    pub identity: Arc<identity::Identity>,
    pub governance: Arc<governance::Governance>,
    pub gateway: Arc<gateway::Gateway>,
    pub config: Arc<Config>,
    /// The log key: checkpoints and evidence manifests.
    pub signer: Arc<LogSigner>,
}

/// The whole HTTP surface. Every route but `/healthz` and `/readyz` needs credentials,
/// and each route is authorized by its entry in [`routes::table`].
pub fn app(state: AppState) -> Router {
    let mut api = Router::new();
    for route in routes::table() {
        let permission = route.permission;
        api = api.route(
            route.path,
            route
                .handler
                .route_layer(axum::middleware::from_fn(move |req, next| {
                    authz::authorize(permission, req, next)
                })),
        );
    }
    let api = api
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        // `layer`, not `route_layer`: unknown paths also need credentials,
        // so nobody learns which routes exist without them.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/healthz", get(telemetry::healthz))
        .route("/readyz", get(telemetry::readyz))
        .merge(api)
        .layer(axum::middleware::from_fn(telemetry::track))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::Extension(error::BodyLimit(
            state.config.max_body_bytes,
        )))
        .layer(tower_http::trace::TraceLayer::new_for_http().on_failure(log_failure))
        .with_state(state)
}

/// A 5xx in the log, except a 503: a moment's state (overload, a store
/// refusing writes) that the metrics count and whose cause is logged
/// where it happens (admission's refusals once per 10 s), not a second
/// line per refused call added to the load.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass::StatusCode as Status;
    let latency_ms = latency.as_millis();
    match class {
        Status(s) if s == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            tracing::debug!(%class, latency_ms, "response failed");
        }
        class => tracing::error!(%class, latency_ms, "response failed"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Init(#[from] init::InitError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A server that is running; dropping it does not stop it, [`Running::stop`] does.
pub struct Running {
    pub addr: SocketAddr,
    pub log: LogInfo,
    /// The bootstrap token, on the first start of a data directory only: it
    /// can create the first admin (`POST /api/v1/bootstrap`), nothing else.
    pub new_admin_token: Option<Zeroizing<String>>,
    pub ledger: Arc<Ledger>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    checkpointer: tokio::task::JoinHandle<()>,
    upkeep: tokio::task::JoinHandle<()>,
    scheduled: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting requests, signs a final checkpoint and closes the ledger.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        let served = self.server.await.unwrap_or(Ok(()));
        let _ = self.checkpointer.await;
        let _ = self.upkeep.await;
        let _ = self.scheduled.await;
        let ledger = self.ledger.clone();
        let _ = tokio::task::spawn_blocking(move || ledger.close()).await;
        served
    }

    /// Serves until `signal` resolves, then stops.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        signal.await;
        self.stop().await
    }
}

/// Opens the data directory and starts serving on `config.listen`.
pub async fn start(config: Config) -> Result<Running, StartError> {
    telemetry::install();
    let cfg = config.clone();
    let opened = tokio::task::spawn_blocking(move || init::open(&cfg))
        .await
        .map_err(|e| init::InitError::Io {
            path: "data directory".into(),
            source: std::io::Error::other(e),
        })??;
    let ledger_config = LedgerConfig {
        max_batch: config.storage.max_batch,
        ..LedgerConfig::default()
    };
    // Opening reads the database: off the async workers (the PostgreSQL
    // client blocks).
    let backend = opened.backend;
    let ledger = tokio::task::spawn_blocking(move || Ledger::open(backend, ledger_config))
        .await
        .map_err(|e| init::InitError::Io {
            path: "ledger".into(),
            source: std::io::Error::other(e),
        })?
        .map_err(init::InitError::from)?;
    let ledger = Arc::new(ledger);
    let id_ledger = ledger.clone();
    let id_config = config.identity.clone();
    let identity =
        tokio::task::spawn_blocking(move || identity::Identity::load(id_ledger, id_config))
            .await
            .map_err(|e| init::InitError::Io {
                path: "identity registry".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(init::InitError::from)?;
    let identity = Arc::new(identity);
    let gov_identity = identity.clone();
    let gov_ledger = ledger.clone();
    let ttl = Duration::from_secs(config.gateway.approval_ttl_secs);
    let governance = tokio::task::spawn_blocking(move || {
        governance::Governance::load(gov_identity, gov_ledger, ttl)
    })
    .await
    .map_err(|e| init::InitError::Io {
        path: "governance state".into(),
        source: std::io::Error::other(e),
    })?
    .map_err(init::InitError::from)?;
    let governance = Arc::new(governance);
    let gateway =
        Arc::new(
            gateway::Gateway::new(&config.gateway).map_err(|e| init::InitError::Io {
                path: "gateway".into(),
                source: std::io::Error::other(e),
            })?,
        );
    let signer = Arc::new(opened.signer);
    let log = LogInfo {
        origin: signer.origin().to_owned(),
        public_key: signer.public_key().to_owned(),
    };
    let state = AppState {
        ledger: ledger.clone(),
        log: Arc::new(log.clone()),
        auth: Auth::new(opened.admin_digest),
        identity: identity.clone(),
        governance,
        gateway,
        config: Arc::new(config.clone()),
        signer: signer.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let (shutdown, rx) = watch::channel(false);
    let state_signer = signer.clone();
    let checkpointer = checkpointer::spawn(
        ledger.clone(),
        signer,
        Duration::from_millis(config.checkpoint_interval_ms.max(1)),
        rx.clone(),
    );
    let upkeep = identity::spawn_upkeep(identity, rx.clone());
    let scheduled = evidence::spawn_schedule(
        ledger.clone(),
        state_signer,
        config.evidence.schedule,
        config
            .evidence
            .dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("evidence")),
        Duration::from_secs(600),
        rx.clone(),
    );
    let router = app(state);
    let server = tokio::spawn(listener::serve(
        listener,
        router,
        config.connections.clone(),
        rx,
        Duration::from_secs(30),
    ));
    tracing::info!(%addr, origin = %log.origin, backend = ledger.backend().kind(), "docket is serving");
    Ok(Running {
        addr,
        log,
        new_admin_token: opened.new_admin_token,
        ledger,
        shutdown,
        server,
        checkpointer,
        upkeep,
        scheduled,
    })
}
