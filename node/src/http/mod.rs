//! The HTTP API every node serves beside its TCP protocol: keys (`/kv/{key}`, Riak-style: the
//! context in a header, `300 Multiple Choices` with the siblings), the node's status, ring and
//! members in JSON, Prometheus metrics (`/metrics`) and its own OpenAPI document
//! (`/openapi.json`, the checked-in `openapi.json` beside this file); and a web console (`/`,
//! module `console`) with what it polls (`/stats`) and a simulator (`POST /sim`, [`simulate`]).
//!
//! ```text
//!  HTTP client ──▶ axum router ──▶ auth (bearer token) ──▶ handler ──Input──▶ driver (NodeCore)
//!                                                              ◀──oneshot reply──
//! ```
//!
//! Handlers are thin: they turn a request into the same [`ClientRequest`] or admin request a TCP
//! client sends, put it on the driver's input channel, and map the reply to a status code
//! (`kv` module docs list the mapping). So the HTTP API has exactly the TCP protocol's limits
//! and semantics, and its requests count in the same metrics.
//!
//! Every route but `/openapi.json`, the console's page and assets (they hold no data), and
//! `/metrics` when [`HttpConfig::metrics_public`] is set, needs `Authorization: Bearer <token>`,
//! the token derived from the client secret ([`token`]).
//!
//! The routes are listed once, in `api_routes`; [`route_paths`] exposes the list so a test can
//! hold it against the OpenAPI document; pages and assets are routes there too.

mod admin;
mod auth;
mod console;
mod deadlines;
mod kv;
mod metrics;
mod openapi;
mod serve;
pub mod simulate;
mod stats;
#[cfg(test)]
mod tests;
mod unwritten;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use auth::token;
pub use openapi::OPENAPI;

use crate::message::{ClientReply, ClientRequest};
use crate::runtime::{AdminReply, AdminRequest, Input, MetricsSnapshot, RuntimeError};

/// Where and how a node serves its HTTP API.
#[derive(Debug)]
pub struct HttpConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port). Ignored when
    /// [`listener`](HttpConfig::listener) is given.
    pub listen: String,
    /// A listener already bound, which the API accepts on instead of binding `listen` (so a test
    /// binds port 0 and knows the address before the node starts).
    pub listener: Option<std::net::TcpListener>,
    /// Serve `/metrics` without a token (default off: the metrics name the members and show the
    /// traffic; Prometheus can send a bearer token, `authorization: { credentials: ... }`).
    pub metrics_public: bool,
    /// HTTP connections served at once (default 1024, like the TCP protocol's clients). One more
    /// takes the oldest slot of the client address holding the most, if its own address holds
    /// fewer (that connection answers its request in progress and closes); otherwise it is
    /// answered `503` and closed. The node's [`ConnectionLimits`](crate::runtime::ConnectionLimits)
    /// bound how long a connection may stall: a request's head must arrive within its
    /// `read_timeout` (which also closes a kept-alive connection idle that long), a write must
    /// progress within it, and no byte either way for `idle_timeout` closes the connection.
    pub max_connections: usize,
}

/// [`HttpConfig::max_connections`] unless set.
pub const MAX_CONNECTIONS: usize = 1024;

impl HttpConfig {
    /// Listen on `listen`, every route but the OpenAPI document behind the token.
    pub fn new(listen: impl Into<String>) -> Self {
        HttpConfig {
            listen: listen.into(),
            listener: None,
            metrics_public: false,
            max_connections: MAX_CONNECTIONS,
        }
    }

    /// Accept on a listener bound by the caller.
    pub fn with_listener(listener: std::net::TcpListener) -> Self {
        HttpConfig {
            listen: String::new(),
            listener: Some(listener),
            metrics_public: false,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// What the API needs to know of its node.
#[derive(Debug)]
pub(crate) struct NodeInfo {
    pub cluster: String,
    pub client_secret: Vec<u8>,
    pub max_value_size: usize,
    /// Longest request head read ([`max_head`]).
    pub max_head: usize,
    pub request_timeout: Duration,
    pub data_dir: Option<PathBuf>,
    /// The node's connection limits (the HTTP API takes its timeouts from them).
    pub limits: crate::runtime::ConnectionLimits,
    /// Request bytes taken in and not answered, shared with the TCP clients.
    pub requests: crate::runtime::RequestBudget,
    /// Reply bytes not yet written, shared with the TCP clients.
    pub unsent: std::sync::Arc<crate::runtime::UnsentBytes>,
}

/// Shared by every handler.
#[derive(Debug, Clone)]
pub(crate) struct HttpState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    inputs: mpsc::Sender<Input>,
    token: auth::Token,
    metrics_public: bool,
    max_value_size: usize,
    request_timeout: Duration,
    /// How long a put's body may take to arrive once it holds its share of the request budget
    /// (the connections' read timeout).
    body_timeout: Duration,
    data_dir: Option<PathBuf>,
    /// When the API started (`/stats` reports the time since, for rates).
    started: Instant,
    /// Permits to run a simulation (`POST /sim`).
    simulations: Arc<tokio::sync::Semaphore>,
    /// Request bytes taken in and not answered, over every client of the node.
    requests: crate::runtime::RequestBudget,
}

/// Longer than any request's own timeout, after which a handler stops waiting for the driver
/// (it always answers before: this only guards against a stuck node).
const DRIVER_GRACE: Duration = Duration::from_secs(5);

impl HttpState {
    /// The state of a node's API: its handlers send to the driver on `inputs`.
    fn new(info: NodeInfo, metrics_public: bool, inputs: mpsc::Sender<Input>) -> Self {
        HttpState {
            inner: Arc::new(Shared {
                inputs,
                token: auth::Token::new(&info.cluster, &info.client_secret),
                metrics_public,
                max_value_size: info.max_value_size,
                request_timeout: info.request_timeout,
                body_timeout: info.limits.read_timeout,
                data_dir: info.data_dir,
                started: Instant::now(),
                simulations: Arc::new(tokio::sync::Semaphore::new(simulate::CONCURRENT)),
                requests: info.requests,
            }),
        }
    }

    /// Asks the driver to coordinate a client request and waits for its reply.
    async fn request(
        &self,
        request: ClientRequest,
        timeout: Option<u64>,
    ) -> Result<ClientReply, ApiError> {
        let since = tokio::time::Instant::now();
        let admitted = self.admit(request.weight()).await?;
        self.request_admitted(request, admitted, timeout, since.elapsed())
            .await
    }

    /// Waits until a request of `weight` bytes fits in the node's request budget, and takes its
    /// share (see [`RequestBudget`](crate::runtime::RequestBudget)).
    async fn admit(&self, weight: usize) -> Result<crate::runtime::Admitted, ApiError> {
        self.inner
            .requests
            .admit(weight)
            .await
            .ok_or_else(ApiError::shutting_down)
    }

    /// [`request`](Self::request) for a request that already holds its share of the budget,
    /// which it `waited` for: with what is left of its timeout, or turned down
    /// ([`within_timeout`](crate::runtime::within_timeout)).
    async fn request_admitted(
        &self,
        request: ClientRequest,
        admitted: crate::runtime::Admitted,
        timeout: Option<u64>,
        waited: Duration,
    ) -> Result<ClientReply, ApiError> {
        let request =
            match crate::runtime::within_timeout(request, waited, self.inner.request_timeout) {
                Ok(request) => request,
                Err(turned_down) => return Ok(turned_down),
            };
        let (tx, rx) = oneshot::channel();
        // Held with the request until the driver is done with it.
        let reply = crate::runtime::Replier::new(tx, Some(admitted));
        self.send(Input::Client { request, reply }).await?;
        let wait = timeout.map_or(self.inner.request_timeout, Duration::from_millis) + DRIVER_GRACE;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            // The driver took the request and stopped: it may have been applied (not
            // `unavailable`, which says nothing was written and may be retried as it is).
            Ok(Err(_)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "interrupted",
                "the node stopped while handling the request: it may have been applied",
            )),
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the node did not answer in time",
            )),
        }
    }

    /// Asks the driver an admin request.
    async fn admin(&self, request: AdminRequest) -> Result<AdminReply, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Admin { request, reply }).await?;
        rx.await.map_err(|_| ApiError::shutting_down())
    }

    /// The node's status and request metrics.
    async fn metrics(&self) -> Result<MetricsSnapshot, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Metrics { reply }).await?;
        rx.await.map(|b| *b).map_err(|_| ApiError::shutting_down())
    }

    async fn send(&self, input: Input) -> Result<(), ApiError> {
        self.inner
            .inputs
            .send(input)
            .await
            .map_err(|_| ApiError::shutting_down())
    }
}

/// An error answer: a status code and a JSON body `{"error": kind, "message": text, ...}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), kind.into());
        body.insert("message".into(), message.into().into());
        ApiError { status, body }
    }

    /// Adds a field to the body.
    fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.body.insert(name.into(), value.into());
        self
    }

    fn shutting_down() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the node is shutting down",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json(self.status, &serde_json::Value::Object(self.body))
    }
}

/// A JSON response.
fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec_pretty(body) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            (
                status,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}"),
        )
            .into_response(),
    }
}

/// The body length a request's `Content-Length` announces (`None`: it does not say).
fn content_length(headers: &axum::http::HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(axum::http::header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "Content-Length is not a number",
            )
        })
}

/// Reads a request's body, past the route's body limit an error from `too_large` (given the
/// reason), and within the node's read timeout (`408` after it): a client that dribbles its body
/// in does not hold the connection, or the budget share the request took, for longer.
async fn read_body(
    state: &HttpState,
    body: axum::extract::Request,
    too_large: impl FnOnce(String) -> ApiError,
) -> Result<bytes::Bytes, ApiError> {
    use axum::extract::FromRequest as _;
    let read = bytes::Bytes::from_request(body, state);
    tokio::time::timeout(state.inner.body_timeout, read)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within {} ms",
                    state.inner.body_timeout.as_millis()
                ),
            )
        })?
        .map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(e.body_text())
            } else {
                ApiError::new(e.status(), "invalid_body", e.body_text())
            }
        })
}

/// Every route of the API, with its handlers: [`router`] serves exactly these, and the OpenAPI
/// document must list exactly these (a test holds them against each other).
fn api_routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/kv/{key}", get(kv::get).put(kv::put).delete(kv::delete)),
        ("/status", get(admin::status)),
        ("/ring", get(admin::ring)),
        ("/members", get(admin::members)),
        ("/metrics", get(metrics::metrics)),
        ("/openapi.json", get(openapi::document)),
        ("/stats", get(stats::stats)),
        (
            "/sim",
            post(simulate::simulate)
                .layer(axum::extract::DefaultBodyLimit::max(simulate::MAX_BODY)),
        ),
        ("/", get(console::index)),
        ("/console", get(console::index)),
        ("/console/console.css", get(console::style)),
        ("/console/console.js", get(console::script)),
        ("/console/charts.js", get(console::charts)),
        ("/console/sim.js", get(console::sim)),
    ]
}

/// The paths the router serves, in the OpenAPI document's syntax (`/kv/{key}`).
pub fn route_paths() -> Vec<&'static str> {
    api_routes().into_iter().map(|(path, _)| path).collect()
}

/// The API's router. Routes that need no token: `/openapi.json`, the console's page and assets,
/// and `/metrics` when configured; every other route passes [`auth::require`] first.
pub(crate) fn router(state: HttpState) -> Router {
    let public = |path: &str| {
        path == "/openapi.json"
            || console::PUBLIC_PATHS.contains(&path)
            || (path == "/metrics" && state.inner.metrics_public)
    };
    let (mut open, mut guarded) = (Router::new(), Router::new());
    for (path, route) in api_routes() {
        if public(path) {
            open = open.route(path, route);
        } else {
            guarded = guarded.route(path, route);
        }
    }
    let guarded = guarded.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require,
    ));
    open.merge(guarded)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route (see /openapi.json)",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(
            state.inner.max_value_size.saturating_add(1),
        ))
        .with_state(state)
}

/// The longest request head the API reads for a node configured as `config` (hyper answers
/// `431` past it): a key of the largest size with every byte percent-encoded, a context of the
/// largest size in base64, and room for the other headers. hyper's default (about 400 KiB) let
/// every connection hold that much before its token was checked.
pub(crate) fn max_head(config: &crate::config::NodeConfig) -> usize {
    /// The request line's other parts and the other headers (a token, a content type, ...).
    const MARGIN: usize = 16 << 10;
    /// hyper's least.
    const LEAST: usize = 8 << 10;
    let key = config.max_key_size.saturating_mul(3);
    let context = config.max_context_size.div_ceil(3).saturating_mul(4);
    key.saturating_add(context)
        .saturating_add(MARGIN)
        .max(LEAST)
}

/// Binds (or adopts) the listener and serves the API until the node closes (`closing` set or
/// its sender gone: then each connection ends once its request in progress is answered) or the
/// task is aborted.
pub(crate) async fn start(
    config: HttpConfig,
    info: NodeInfo,
    inputs: mpsc::Sender<Input>,
    closing: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), RuntimeError> {
    let (listener, wanted) = match config.listener {
        Some(listener) => {
            let wanted = listener
                .local_addr()
                .map_or_else(|_| "a given listener".into(), |a| a.to_string());
            (crate::runtime::adopt(listener), wanted)
        }
        None => (
            tokio::net::TcpListener::bind(&config.listen).await,
            config.listen.clone(),
        ),
    };
    let bind_error = |reason| RuntimeError::Bind {
        address: format!("{wanted} (HTTP)"),
        reason,
    };
    let listener = listener.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let limits = serve::HttpLimits {
        max_connections: config.max_connections.max(1),
        max_head: info.max_head,
        unsent: info.limits,
        read_timeout: info.limits.read_timeout,
        idle_timeout: info.limits.idle_timeout,
        // A request's head and body (each within the read timeout), then its longest timeout.
        close_grace: info.limits.read_timeout.saturating_mul(2)
            + info
                .request_timeout
                .max(Duration::from_millis(crate::MAX_REQUEST_TIMEOUT))
            + DRIVER_GRACE,
    };
    let unsent = std::sync::Arc::clone(&info.unsent);
    let app = router(HttpState::new(info, config.metrics_public, inputs));
    let task = tokio::spawn(serve::serve(listener, app, limits, unsent, closing));
    Ok((addr, task))
}
