//! `GET /stats`: what the console polls, in one JSON answer: the node's status (members, hints,
//! anti-entropy, staleness predictions) and its request histograms by operation and outcome, the
//! same numbers `/metrics` exposes, with the node's uptime so that a client can turn two answers
//! into rates.
//!
//! ```text
//! {"uptime_ms": 81234, "bucket_bounds": [0.0005, ..., 10.0],
//!  "requests": [{"op": "get", "outcome": "ok", "count": 12, "sum": 0.031,
//!                "buckets": [3, 9, 0, ...]}],          // per bucket, not cumulative; last: +Inf
//!  "status": { ...GET /status... }}
//! ```

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{json, ApiError, HttpState};
use crate::core::{NodeStatus, LATENCY_BUCKETS};

/// The body of `GET /stats`.
#[derive(Debug, Serialize)]
struct Stats {
    /// Milliseconds since the HTTP API started (monotonic).
    uptime_ms: u64,
    /// Upper bounds of the latency buckets, seconds (the last bucket, above them all, is +Inf).
    bucket_bounds: &'static [f64],
    /// Client requests answered, by operation and outcome.
    requests: Vec<Series>,
    /// The node's status.
    status: NodeStatus,
}

/// One (operation, outcome) series.
#[derive(Debug, Serialize)]
struct Series {
    op: &'static str,
    outcome: &'static str,
    /// Requests.
    count: u64,
    /// Sum of their latencies, seconds.
    sum: f64,
    /// Requests per bucket (not cumulative), one more than `bucket_bounds`.
    buckets: Vec<u64>,
}

/// `GET /stats`.
pub(crate) async fn stats(State(state): State<HttpState>) -> Result<Response, ApiError> {
    let snapshot = state.metrics().await?;
    let requests = snapshot
        .requests
        .series()
        .map(|(op, outcome, h)| Series {
            op: op.label(),
            outcome: outcome.label(),
            count: h.count,
            sum: h.sum,
            buckets: h.counts.to_vec(),
        })
        .collect();
    let uptime = state.inner.started.elapsed();
    let body = Stats {
        uptime_ms: u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
        bucket_bounds: &LATENCY_BUCKETS,
        requests,
        status: snapshot.status,
    };
    Ok(json(StatusCode::OK, &body))
}
