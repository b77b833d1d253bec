//! `POST /sim`: runs the deterministic simulator ([`crate::sim`]) with the parameters of the
//! console's simulator page, and answers what it measured: get and put latency histograms, the
//! stale-read rate and its curve against the time since the write, failures, network fates.
//!
//! The same request gives the same answer, byte for byte (everything random derives from
//! `seed`, and no wall-clock time is in the body; the wall time is in the `X-Dynamo-Sim-Wall-Ms`
//! header).
//!
//! A simulation costs CPU, so the route needs the token, its sizes are capped ([`Limits`]; past
//! a cap: `400` saying which), it runs on a blocking thread (`spawn_blocking`) so the node's
//! request handling goes on, one at a time per node (another request meanwhile: `503` with
//! `Retry-After`), and it stops after [`MAX_EVENTS`] simulator events (`truncated` in the answer:
//! a deterministic bound, unlike a wall-clock one).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{json, ApiError, HttpState};
use crate::config::{NodeConfig, QuorumMode};
use crate::sim::dist::Dist;
use crate::sim::net::LinkConfig;
use crate::sim::workload::Workload;
use crate::sim::{Sim, SimConfig};
use crate::types::NodeId;

mod report;

pub use report::SimReport;

/// Simulator events after which a run stops early (a few seconds of CPU in a release build).
pub const MAX_EVENTS: u64 = 4_000_000;

/// Simulations a node runs at once.
pub(crate) const CONCURRENT: usize = 1;

/// The caps on a simulation's size.
#[derive(Debug, Clone, Copy)]
pub struct Limits;

impl Limits {
    /// Most nodes.
    pub const NODES: usize = 16;
    /// Most operations measured.
    pub const OPS: usize = 20_000;
    /// Most concurrent clients.
    pub const CLIENTS: usize = 64;
    /// Most keys.
    pub const KEYS: u32 = 100_000;
    /// Largest latency parameter, ms (a Pareto's samples are capped there too).
    pub const LATENCY_MS: f64 = 10_000.0;
    /// Highest drop probability.
    pub const DROP: f64 = 0.5;
    /// Shortest gossip or anti-entropy interval, ms.
    pub const MIN_INTERVAL_MS: u64 = 50;
    /// Longest interval, ms.
    pub const MAX_INTERVAL_MS: u64 = 60_000;
}

/// The link latency distribution, by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Latency {
    /// Always `ms`.
    Constant {
        /// The latency, ms.
        ms: f64,
    },
    /// Uniform in `[lo, hi)`.
    Uniform {
        /// Lower bound, ms.
        lo: f64,
        /// Upper bound, ms.
        hi: f64,
    },
    /// Normal, truncated at zero.
    Normal {
        /// Mean, ms.
        mean: f64,
        /// Standard deviation, ms.
        std_dev: f64,
    },
    /// Exponential.
    Exponential {
        /// Mean, ms.
        mean: f64,
    },
    /// Pareto (heavy tail), capped at [`Limits::LATENCY_MS`].
    Pareto {
        /// Minimum, ms.
        scale: f64,
        /// Tail index (> 0; the mean is finite above 1).
        shape: f64,
    },
}

impl Latency {
    fn params(&self) -> Vec<(&'static str, f64)> {
        match *self {
            Latency::Constant { ms } => vec![("ms", ms)],
            Latency::Uniform { lo, hi } => vec![("lo", lo), ("hi", hi)],
            Latency::Normal { mean, std_dev } => vec![("mean", mean), ("std_dev", std_dev)],
            Latency::Exponential { mean } => vec![("mean", mean)],
            Latency::Pareto { scale, shape } => vec![("scale", scale), ("shape", shape)],
        }
    }

    fn dist(&self) -> Dist {
        match *self {
            Latency::Constant { ms } => Dist::Constant(ms),
            Latency::Uniform { lo, hi } => Dist::Uniform { lo, hi },
            Latency::Normal { mean, std_dev } => Dist::Normal { mean, std_dev },
            Latency::Exponential { mean } => Dist::Exponential { mean },
            Latency::Pareto { scale, shape } => {
                Dist::capped(Limits::LATENCY_MS, Dist::Pareto { scale, shape })
            }
        }
    }
}

/// The body of `POST /sim`; every field is optional (the defaults: 5 nodes, N = 3, R = W = 2,
/// exponential 1 ms links, 2,000 operations of 10 clients over 20 keys, half reads, seed 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimRequest {
    /// Nodes (1..=[`Limits::NODES`]).
    pub nodes: usize,
    /// Replication factor N (1..=nodes).
    pub n: usize,
    /// Read quorum R (1..=N).
    pub r: usize,
    /// Write quorum W (1..=N).
    pub w: usize,
    /// Strict quorums instead of sloppy ones.
    pub strict: bool,
    /// Every link's one-way latency.
    pub latency: Latency,
    /// Probability that a message is lost (0..=[`Limits::DROP`]).
    pub drop: f64,
    /// Nodes crashed before the measured operations (the highest ids; fewer than `nodes`).
    pub crashed: usize,
    /// Gossip interval, ms.
    pub gossip_interval_ms: u64,
    /// Anti-entropy interval, ms; 0 turns it off.
    pub sync_interval_ms: u64,
    /// The nodes' request timeout, ms.
    pub request_timeout_ms: u64,
    /// Operations measured (completed, any outcome).
    pub ops: usize,
    /// Concurrent closed-loop clients.
    pub clients: usize,
    /// Distinct keys.
    pub keys: u32,
    /// Fraction of gets (the rest are puts).
    pub reads: f64,
    /// The seed.
    pub seed: u64,
}

impl Default for SimRequest {
    fn default() -> Self {
        SimRequest {
            nodes: 5,
            n: 3,
            r: 2,
            w: 2,
            strict: false,
            latency: Latency::Exponential { mean: 1.0 },
            drop: 0.0,
            crashed: 0,
            gossip_interval_ms: 500,
            sync_interval_ms: 1_000,
            request_timeout_ms: 1_000,
            ops: 2_000,
            clients: 10,
            keys: 20,
            reads: 0.5,
            seed: 1,
        }
    }
}

/// Why a simulation request is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimRequestError {
    /// The body is not a simulation request.
    #[error("the body is not a simulation request: {0}")]
    Body(String),
    /// A field is out of its range.
    #[error("{field} = {value} is out of range: {range}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        range: String,
    },
    /// The simulator refused the configuration.
    #[error("the simulator refused the configuration: {0}")]
    Sim(String),
}

fn range<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    lo: T,
    hi: T,
) -> Result<(), SimRequestError> {
    if lo <= value && value <= hi {
        Ok(())
    } else {
        Err(SimRequestError::OutOfRange {
            field,
            value: value.to_string(),
            range: format!("{lo}..={hi}"),
        })
    }
}

impl SimRequest {
    /// Checks every field against its range and [`Limits`].
    ///
    /// # Errors
    ///
    /// The first field out of range.
    pub fn validate(&self) -> Result<(), SimRequestError> {
        range("nodes", self.nodes, 1, Limits::NODES)?;
        range("n", self.n, 1, self.nodes)?;
        range("r", self.r, 1, self.n)?;
        range("w", self.w, 1, self.n)?;
        for (name, value) in self.latency.params() {
            let field = match name {
                "ms" => "latency.ms",
                "lo" => "latency.lo",
                "hi" => "latency.hi",
                "mean" => "latency.mean",
                "std_dev" => "latency.std_dev",
                "scale" => "latency.scale",
                _ => "latency.shape",
            };
            let lo = if name == "shape" { 0.1 } else { 0.0 };
            let hi = if name == "shape" {
                100.0
            } else {
                Limits::LATENCY_MS
            };
            // NaN fails both comparisons: out of range.
            range(field, value, lo, hi)?;
        }
        if let Latency::Uniform { lo, hi } = self.latency {
            range("latency.hi", hi, lo, Limits::LATENCY_MS)?;
        }
        range("drop", self.drop, 0.0, Limits::DROP)?;
        range("crashed", self.crashed, 0, self.nodes - 1)?;
        let (min, max) = (Limits::MIN_INTERVAL_MS, Limits::MAX_INTERVAL_MS);
        range("gossip_interval_ms", self.gossip_interval_ms, min, max)?;
        if self.sync_interval_ms != 0 {
            range("sync_interval_ms", self.sync_interval_ms, min, max)?;
        }
        range("request_timeout_ms", self.request_timeout_ms, 10, 60_000)?;
        range("ops", self.ops, 1, Limits::OPS)?;
        range("clients", self.clients, 1, Limits::CLIENTS)?;
        range("keys", self.keys, 1, Limits::KEYS)?;
        range("reads", self.reads, 0.0, 1.0)?;
        Ok(())
    }

    fn config(&self) -> SimConfig {
        let node = NodeConfig {
            n: self.n,
            r: self.r,
            w: self.w,
            mode: if self.strict {
                QuorumMode::Strict
            } else {
                QuorumMode::Sloppy
            },
            gossip_interval: self.gossip_interval_ms,
            sync_interval: (self.sync_interval_ms != 0).then_some(self.sync_interval_ms),
            request_timeout: self.request_timeout_ms,
            ..NodeConfig::default()
        };
        SimConfig {
            seed: self.seed,
            nodes: self.nodes,
            node,
            link: LinkConfig {
                latency: self.latency.dist(),
                drop: self.drop,
                ..LinkConfig::default()
            },
            workload: Workload {
                clients: self.clients,
                keys: self.keys,
                reads: self.reads,
                writes: 1.0 - self.reads,
                deletes: 0.0,
                use_context: true,
                // Past the nodes' own timeout, so a client gives up only on a node gone away.
                client_timeout: self.request_timeout_ms.saturating_mul(2).max(1_000),
                ..Workload::default()
            },
            keep_history: true,
            start: 1_000,
            disk: None,
            disk_faults: None,
            buffered: None,
            clock_skew: None,
        }
    }
}

/// Runs the simulation `request` describes (blocking: seconds of CPU at the caps).
///
/// # Errors
///
/// A field out of range, or a configuration the simulator refuses.
pub fn run(request: &SimRequest) -> Result<SimReport, SimRequestError> {
    run_within(request, MAX_EVENTS)
}

/// [`run`], stopping after `max_events` simulator events.
fn run_within(request: &SimRequest, max_events: u64) -> Result<SimReport, SimRequestError> {
    request.validate()?;
    let mut sim = Sim::new(request.config()).map_err(|e| SimRequestError::Sim(e.to_string()))?;
    // A new cluster's nodes answer reads once each has heard every member.
    let mut truncated = sim.start_up(max_events);
    let mut measured_from = sim.now_micros();
    if request.crashed > 0 && !truncated {
        // Crash before measuring, and give the failure detector time to notice.
        sim.stop_clients();
        for i in 0..request.crashed {
            sim.crash((request.nodes - 1 - i) as NodeId, true);
        }
        let detect = request.gossip_interval_ms.saturating_mul(30).min(120_000);
        truncated = sim.run_for_within(detect, max_events);
        sim.resume_clients();
        measured_from = sim.now_micros();
    }
    let start = sim.now_micros();
    if !truncated {
        truncated = sim.run_ops_within(request.ops, max_events);
    }
    let end = sim.now_micros();
    Ok(report::measure(
        request,
        &sim,
        measured_from,
        end.saturating_sub(start),
        truncated,
    ))
}

/// The most bytes a simulation request's body may hold: its JSON is a few dozen numbers.
pub const MAX_BODY: usize = 64 << 10;

/// `POST /sim`. As a put's value, the body is read once the request holds its share of the
/// node's request budget, must arrive within the node's read timeout, and is at most
/// [`MAX_BODY`] bytes (`413` past it).
pub(crate) async fn simulate(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Request,
) -> Response {
    let body = async {
        let declared = super::content_length(&headers)?;
        let too_large = |text: String| {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", text)
                .with("limit", MAX_BODY)
        };
        let len = match declared {
            Some(n) if n > MAX_BODY as u64 => {
                return Err(too_large(format!(
                    "a body of {n} bytes exceeds the limit of {MAX_BODY}"
                )))
            }
            Some(n) => n as usize,
            None => MAX_BODY,
        };
        let _admitted = state.admit(len).await?;
        super::read_body(&state, body, too_large).await
    };
    match body.await {
        Ok(body) => simulate_inner(&state.inner.simulations, &body)
            .await
            .unwrap_or_else(|refusal| refusal),
        Err(e) => e.into_response(),
    }
}

fn bad(e: SimRequestError) -> Response {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_simulation", e.to_string()).into_response()
}

/// The answer to a simulation request, or the refusal.
async fn simulate_inner(permits: &Arc<Semaphore>, body: &[u8]) -> Result<Response, Response> {
    let request: SimRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SimRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| bad(SimRequestError::Body(e.to_string())))?
    };
    request.validate().map_err(bad)?;
    let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "this node is running another simulation; try again when it is done",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        return Err(response);
    };
    let started = Instant::now();
    // The permit moves into the blocking task: held until the simulation ends, even if the
    // client goes away meanwhile.
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        run(&request)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the simulation failed: {e}"),
        )
        .into_response()
    })?;
    let report = outcome.map_err(bad)?;
    let mut response = json(StatusCode::OK, &report);
    let wall = started.elapsed().as_millis().to_string();
    if let Ok(value) = HeaderValue::from_str(&wall) {
        response.headers_mut().insert("x-dynamo-sim-wall-ms", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound on events holds to the event, whatever the request: ops that each take many
    /// events (lossy links, long delays) do not carry a run past it.
    #[test]
    fn a_run_stops_at_its_event_bound() {
        let request = SimRequest {
            nodes: 16,
            clients: 64,
            drop: Limits::DROP,
            latency: Latency::Exponential { mean: 50.0 },
            crashed: 3,
            ..SimRequest::default()
        };
        for bound in [500, 10_000] {
            let report = run_within(&request, bound).expect("a valid request");
            let json = serde_json::to_value(&report).expect("a report encodes");
            let events = json["events"].as_u64().expect("events");
            assert!(events <= bound, "{events} events past a bound of {bound}");
            assert_eq!(json["truncated"], serde_json::Value::Bool(true));
        }
    }
}
