//! Connections: Docket's own accept loop over hyper's HTTP/1.1, so that
//! no client, least of all one that never authenticates, can hold the
//! server's connections or file descriptors.
//!
//! - **Caps.** At most `max_connections` open at once (lowered to fit the
//!   open-file limit, which is raised at start where allowed) and
//!   `max_per_address` from one client address. Past a cap a connection
//!   gets a short `503` and is closed.
//! - **Eviction.** When every place is taken, the oldest connection that
//!   has not yet carried an authenticated request is closed to make room:
//!   unauthenticated connections cannot keep out a client with a token.
//! - **Deadlines.** A connection waiting for a request is closed after
//!   `idle_timeout_ms` without one; once a request's first byte arrives,
//!   its headers must be complete within `header_timeout_ms`, and its body
//!   within `body_timeout_ms` of the headers (a `408` if it does not).
//!   Nothing times out while Docket itself is answering: provider calls
//!   and held approvals have their own limits.
//!
//! Hand-written because `axum::serve` has no caps, eviction or read
//! deadlines, and hyper's own header timer also closes idle keep-alive
//! connections after the same time, so the two cannot be set apart.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// Seconds a refused client is told to wait before trying again (every
/// 503 Docket sends, from here up to the API and the gateway).
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    /// Connections open at once; lowered at start to what the open-file
    /// limit allows (each may also hold a connection to a provider).
    pub max_connections: usize,
    /// Connections open at once from one client address; 0 for no cap.
    /// Behind a load balancer or proxy every client shares its address:
    /// set 0 there and let the proxy cap per client.
    pub max_per_address: usize,
    /// A connection waiting for a request is closed after this long.
    pub idle_timeout_ms: u64,
    /// A request's headers must be complete this long after its first byte.
    pub header_timeout_ms: u64,
    /// A request's body must be complete this long after its headers.
    pub body_timeout_ms: u64,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_address: 512,
            idle_timeout_ms: 60_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 60_000,
        }
    }
}

/// File descriptors kept for everything but client connections: the
/// database, the data directory, logs, the listener.
const RESERVED_FILES: u64 = 256;

/// Raises the soft open-file limit to the hard limit where allowed and
/// returns the connection cap that fits in it.
fn effective_max_connections(configured: usize) -> (usize, Option<u64>) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => {
            // Each client connection may hold a provider connection too.
            let fits = usize::try_from(files.saturating_sub(RESERVED_FILES) / 2)
                .unwrap_or(usize::MAX)
                .max(1);
            (configured.clamp(1, fits), Some(files))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            (configured.max(1), None)
        }
    }
}

/// One open connection, as the accept loop and the request path see it.
#[derive(Debug)]
struct ConnState {
    id: u64,
    addr: IpAddr,
    opened: Instant,
    /// An authenticated request has come over it: never evicted.
    trusted: AtomicBool,
    close: Notify,
    in_flight: AtomicUsize,
    /// Milliseconds since `opened` when the connection began waiting for
    /// its next request.
    waiting_since: AtomicU64,
    /// Milliseconds since `opened` of the first byte of the request being
    /// waited for; `NONE` until one arrives.
    request_began: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl ConnState {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }
}

/// The connection a request came over: put in every request's extensions.
#[derive(Clone, Debug)]
pub struct Connection(Arc<ConnState>);

impl Connection {
    /// An authenticated request came over this connection: it keeps its
    /// place when the server is full.
    pub fn authenticated(&self) {
        self.0.trusted.store(true, Ordering::Release);
    }

    pub fn peer(&self) -> IpAddr {
        self.0.addr
    }
}

/// The open connections, by age; counts per address.
struct Table {
    max: usize,
    per_address: usize,
    inner: Mutex<TableInner>,
}

#[derive(Default)]
struct TableInner {
    next_id: u64,
    open: BTreeMap<u64, Arc<ConnState>>,
    by_address: HashMap<IpAddr, usize>,
}

enum Admit {
    Yes(Arc<ConnState>),
    No(&'static str),
}

impl Table {
    fn admit(&self, addr: IpAddr) -> Admit {
        let mut t = self.inner.lock();
        let from_here = t.by_address.get(&addr).copied().unwrap_or(0);
        if self.per_address > 0 && from_here >= self.per_address {
            return Admit::No("per_address");
        }
        if t.open.len() >= self.max && !Self::evict_oldest_untrusted(&mut t) {
            return Admit::No("full");
        }
        t.next_id += 1;
        let conn = Arc::new(ConnState {
            id: t.next_id,
            addr,
            opened: Instant::now(),
            trusted: AtomicBool::new(false),
            close: Notify::new(),
            in_flight: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(0),
            request_began: AtomicU64::new(NONE),
        });
        t.open.insert(conn.id, conn.clone());
        *t.by_address.entry(addr).or_default() += 1;
        metrics::gauge!("docket_connections_open").set(t.open.len() as f64);
        Admit::Yes(conn)
    }

    /// Closes the oldest connection no authenticated request came over.
    fn evict_oldest_untrusted(t: &mut TableInner) -> bool {
        let Some(id) = t
            .open
            .values()
            .find(|c| !c.trusted.load(Ordering::Acquire))
            .map(|c| c.id)
        else {
            return false;
        };
        if let Some(c) = Self::forget(t, id) {
            c.close.notify_one();
            metrics::counter!("docket_connections_evicted_total").increment(1);
        }
        true
    }

    fn forget(t: &mut TableInner, id: u64) -> Option<Arc<ConnState>> {
        let c = t.open.remove(&id)?;
        if let Some(n) = t.by_address.get_mut(&c.addr) {
            *n -= 1;
            if *n == 0 {
                t.by_address.remove(&c.addr);
            }
        }
        metrics::gauge!("docket_connections_open").set(t.open.len() as f64);
        Some(c)
    }

    fn closed(&self, id: u64) {
        Self::forget(&mut self.inner.lock(), id);
    }

    /// Makes room after the process ran out of file descriptors.
    fn evict_one(&self) -> bool {
        Self::evict_oldest_untrusted(&mut self.inner.lock())
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, then lets
/// requests in progress finish (up to `drain`) and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ConnectionConfig,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) -> std::io::Result<()> {
    let (max, files) = effective_max_connections(config.max_connections);
    tracing::info!(
        max_connections = max,
        configured_max_connections = config.max_connections,
        max_per_address = config.max_per_address,
        open_files = files,
        idle_timeout_ms = config.idle_timeout_ms,
        header_timeout_ms = config.header_timeout_ms,
        body_timeout_ms = config.body_timeout_ms,
        "connection limits"
    );
    let table = Arc::new(Table {
        max,
        per_address: config.max_per_address,
        inner: Mutex::default(),
    });
    let config = Arc::new(config);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset
                // before it was accepted: make room, wait a moment, go on.
                tracing::warn!(error = %e, "accept failed");
                metrics::counter!("docket_accept_errors_total").increment(1);
                table.evict_one();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = match table.admit(peer.ip()) {
            Admit::Yes(c) => c,
            Admit::No(reason) => {
                metrics::counter!("docket_connections_refused_total", "reason" => reason)
                    .increment(1);
                refuse(&stream, reason);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection(
            stream,
            peer,
            conn,
            router.clone(),
            config.clone(),
            table.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    // Every connection saw the same signal and is finishing its request.
    if tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tasks.len(),
            "requests still running after the drain time; closing them"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// A short answer to a connection turned away, if the socket takes it
/// without waiting; then it is closed.
fn refuse(stream: &TcpStream, reason: &str) {
    let message = match reason {
        "per_address" => "too many connections from this address",
        _ => "too many connections",
    };
    let body = serde_json::json!({"error": {"code": "too_many_connections", "message": message}})
        .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        RETRY_AFTER_SECS,
        body.len()
    );
    let _ = stream.try_write(format!("{head}{body}").as_bytes());
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<ConnState>,
    router: Router,
    config: Arc<ConnectionConfig>,
    table: Arc<Table>,
    mut shutdown: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        conn: conn.clone(),
    });
    let body_timeout = Duration::from_millis(config.body_timeout_ms);
    let c = conn.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let guard = InFlight::begin(c.clone());
        req.extensions_mut().insert(Connection(c.clone()));
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let req = req.map(|body| Body::new(TimedBody::new(body, body_timeout)));
        let router = router.clone();
        async move {
            let resp = router.oneshot(req).await.unwrap_or_else(|e| match e {});
            Ok::<_, Infallible>(resp.map(|body| {
                Body::new(Guarded {
                    inner: body,
                    _guard: guard,
                })
            }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    // Deadlines are kept below, apart for idle and for headers.
    http.header_read_timeout(None);
    let served = http.serve_connection(io, service);
    tokio::pin!(served);
    let stopping = async {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let mut draining = false;
    loop {
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                break;
            }
            _ = conn.close.notified() => break,
            phase = overdue(&conn, &config) => {
                metrics::counter!("docket_connections_timed_out_total", "phase" => phase).increment(1);
                tracing::debug!(%peer, phase, "connection timed out");
                break;
            }
            _ = stopping.as_mut(), if !draining => {
                draining = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
    table.closed(conn.id);
}

/// Resolves when the connection has waited too long: for a request
/// (`idle`) or for the rest of a request's headers (`headers`).
async fn overdue(conn: &ConnState, config: &ConnectionConfig) -> &'static str {
    loop {
        let (deadline, phase) = if conn.in_flight.load(Ordering::Acquire) > 0 {
            // Answering: nothing is overdue; look again later.
            let later = config.idle_timeout_ms.min(config.header_timeout_ms);
            (conn.now_ms().saturating_add(later), None)
        } else {
            match conn.request_began.load(Ordering::Acquire) {
                NONE => (
                    conn.waiting_since
                        .load(Ordering::Acquire)
                        .saturating_add(config.idle_timeout_ms),
                    Some("idle"),
                ),
                began => (
                    began.saturating_add(config.header_timeout_ms),
                    Some("headers"),
                ),
            }
        };
        if let Some(p) = phase
            && conn.now_ms() >= deadline
        {
            return p;
        }
        tokio::time::sleep_until(conn.at(deadline)).await;
    }
}

/// The socket, noting when a request's first byte arrives.
struct Watched {
    inner: TcpStream,
    conn: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.conn.now_ms();
            let _ = self.conn.request_began.compare_exchange(
                NONE,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request being answered, from its headers until its response's last
/// byte; the connection's wait for the next request begins when it drops.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn begin(conn: Arc<ConnState>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.request_began.store(NONE, Ordering::Release);
        Self(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.0;
        c.waiting_since.store(c.now_ms(), Ordering::Release);
        c.request_began.store(NONE, Ordering::Release);
        c.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that ends the request's [`InFlight`] when it is done.
struct Guarded {
    inner: Body,
    _guard: InFlight,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s of its headers", .0.as_secs_f64())]
pub struct BodyTimeout(Duration);

/// Whether `e` (or what caused it) is a [`BodyTimeout`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        if e.is::<BodyTimeout>() {
            return true;
        }
        at = e.source();
    }
    false
}

/// A request body that must be complete by a deadline.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl TimedBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            return Poll::Ready(Some(Err(BodyTimeout(limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
