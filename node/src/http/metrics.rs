//! `GET /metrics`: the node's counters, gauges and request latencies in the Prometheus text
//! exposition format (version 0.0.4), written by hand (a few dozen lines need no crate).
//!
//! Each metric's help text below is what the endpoint prints; `docs/operations.md` lists them.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, HttpState};
use crate::core::{RequestOutcome, LATENCY_BUCKETS};
use crate::runtime::MetricsSnapshot;

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<HttpState>) -> Result<Response, ApiError> {
    let snapshot = state.metrics().await?;
    // A walk of the directory: off the runtime's threads.
    let storage_bytes = match state.inner.data_dir.clone() {
        Some(dir) => tokio::task::spawn_blocking(move || storage_bytes(&dir))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let body = render(&snapshot, storage_bytes);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

/// The bytes of the files in data directory `dir` and below (either engine's: redb's one file,
/// fjall's journals and tables; their manifests), `None` when it cannot be read.
fn storage_bytes(dir: &std::path::Path) -> Option<u64> {
    let mut total = 0u64;
    let mut dirs = Vec::new();
    let mut entries = std::fs::read_dir(dir).ok()?;
    loop {
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata().map_or(0, |m| m.len());
            }
        }
        // A subdirectory the engine removed meanwhile (a compaction) holds nothing.
        entries = loop {
            let Some(d) = dirs.pop() else {
                return Some(total);
            };
            if let Ok(e) = std::fs::read_dir(d) {
                break e;
            }
        };
    }
}

/// A metric family being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                // Label values here are fixed words and numbers: nothing to escape.
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with a single unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// The exposition of a snapshot.
pub(crate) fn render(m: &MetricsSnapshot, storage_bytes: Option<u64>) -> String {
    let mut o = Out(String::with_capacity(16 * 1024));
    let s = &m.status;
    let c = &s.counters;

    o.family(
        "dynamo_requests_total",
        "counter",
        "Client requests answered by this node (TCP and HTTP), by operation and outcome.",
    );
    for (op, outcome, h) in m.requests.series() {
        let labels = [("op", op.label()), ("outcome", outcome.label())];
        o.sample("dynamo_requests_total", &labels, h.count);
    }
    o.family(
        "dynamo_request_duration_seconds",
        "histogram",
        "Time from a client request's arrival to its answer, by operation and outcome.",
    );
    for (op, outcome, h) in m.requests.series() {
        let (op, outcome) = (op.label(), outcome.label());
        for (bound, count) in LATENCY_BUCKETS
            .iter()
            .map(|b| b.to_string())
            .chain(std::iter::once("+Inf".to_string()))
            .zip(h.cumulative())
        {
            let labels = [("op", op), ("outcome", outcome), ("le", bound.as_str())];
            o.sample("dynamo_request_duration_seconds_bucket", &labels, count);
        }
        let labels = [("op", op), ("outcome", outcome)];
        o.sample("dynamo_request_duration_seconds_sum", &labels, h.sum);
        o.sample("dynamo_request_duration_seconds_count", &labels, h.count);
    }
    o.family(
        "dynamo_quorum_failures_total",
        "counter",
        "Client requests answered here that missed R or W: reason timeout (the deadline passed) or unreachable (too many replicas failed).",
    );
    for (op, outcome, h) in m.requests.series() {
        let reason = match outcome {
            RequestOutcome::Timeout => "timeout",
            RequestOutcome::QuorumFailed => "unreachable",
            _ => continue,
        };
        o.sample(
            "dynamo_quorum_failures_total",
            &[("op", op.label()), ("reason", reason)],
            h.count,
        );
    }

    o.family(
        "dynamo_coordinated_total",
        "counter",
        "Requests this node coordinated (its own clients' and those forwarded to it), by operation.",
    );
    for (op, n) in [("get", c.gets), ("put", c.puts), ("delete", c.deletes)] {
        o.sample("dynamo_coordinated_total", &[("op", op)], n);
    }
    let counters = [
        (
            "dynamo_coordinator_failures_total",
            "Requests coordinated here that failed (quorum not reached, invalid input).",
            c.failures,
        ),
        (
            "dynamo_forwarded_total",
            "Requests forwarded to a coordinator among the key's primaries.",
            c.forwarded,
        ),
        (
            "dynamo_replica_writes_total",
            "Replica writes applied (coordinated, repair, hint, exchange).",
            c.replica_writes,
        ),
        (
            "dynamo_replica_reads_total",
            "Replica reads answered.",
            c.replica_reads,
        ),
        (
            "dynamo_read_repairs_total",
            "Read-repair writes sent.",
            c.read_repairs,
        ),
        (
            "dynamo_hints_recorded_total",
            "Hints recorded as a fallback replica.",
            c.hints_recorded,
        ),
        (
            "dynamo_hints_delivered_total",
            "Hints delivered to their node and acknowledged.",
            c.hints_delivered,
        ),
        (
            "dynamo_hints_dropped_total",
            "Hints dropped (expired, over a bound).",
            c.hints_dropped,
        ),
        (
            "dynamo_antientropy_sessions_total",
            "Anti-entropy (Merkle) sessions started here.",
            c.sync_sessions,
        ),
        (
            "dynamo_antientropy_failures_total",
            "Anti-entropy sessions that failed or timed out.",
            c.sync_failures,
        ),
        (
            "dynamo_antientropy_keys_repaired_total",
            "Keys anti-entropy found different.",
            c.sync_keys_repaired,
        ),
        (
            "dynamo_antientropy_sent_bytes_total",
            "Bytes of Merkle-tree traffic sent by sessions started here.",
            c.sync_bytes,
        ),
        (
            "dynamo_transfer_keys_total",
            "Keys pushed to new owners after ring changes.",
            c.transfer_keys,
        ),
        (
            "dynamo_transfer_bytes_total",
            "Bytes pushed to new owners after ring changes (resent batches included).",
            c.transfer_bytes,
        ),
        (
            "dynamo_bad_messages_total",
            "Peer messages that could not be used.",
            c.bad_messages,
        ),
        (
            "dynamo_gossip_view_full_total",
            "Gossip news of new nodes ignored because the membership view was full.",
            c.gossip_view_full,
        ),
        (
            "dynamo_peers_silenced_total",
            "Peers taken for failed because they let a request's deadline pass without a word.",
            c.silenced,
        ),
        (
            "dynamo_late_answers_total",
            "Replica answers that arrived after their request finished.",
            c.late_answers,
        ),
        (
            "dynamo_tombstones_reaped_total",
            "Tombstones removed once every replica held them.",
            c.tombstones_reaped,
        ),
    ];
    for (name, help, value) in counters {
        o.single(name, "counter", help, value);
    }

    let up = s.members.iter().filter(|m| m.up).count();
    o.family(
        "dynamo_members",
        "gauge",
        "Ring members as this node's failure detector sees them, up or down.",
    );
    o.sample("dynamo_members", &[("state", "up")], up);
    o.sample("dynamo_members", &[("state", "down")], s.members.len() - up);
    o.family(
        "dynamo_member_up",
        "gauge",
        "1 if this node believes the member up, 0 if down.",
    );
    for member in &s.members {
        let id = member.id.to_string();
        o.sample("dynamo_member_up", &[("id", &id)], u8::from(member.up));
    }
    let gauges = [
        (
            "dynamo_ring_version",
            "Version of the ring this node uses.",
            s.ring_version as f64,
        ),
        (
            "dynamo_partitions_replicated",
            "Partitions this node replicates.",
            s.partitions_replicated as f64,
        ),
        (
            "dynamo_partitions_incoming",
            "Partitions this node became a replica of and awaits data for.",
            s.partitions_incoming as f64,
        ),
        (
            "dynamo_transfers_running",
            "Outgoing ownership transfers running.",
            s.transfers_running as f64,
        ),
        (
            "dynamo_antientropy_sessions_running",
            "Anti-entropy sessions running.",
            s.sync_sessions_running as f64,
        ),
        (
            "dynamo_hints_pending",
            "Hints held here for other nodes.",
            s.hints_pending as f64,
        ),
        (
            "dynamo_requests_in_flight",
            "Client requests being coordinated here.",
            s.requests_in_flight as f64,
        ),
        (
            "dynamo_storage_keys",
            "Keys stored on this node.",
            s.keys as f64,
        ),
        (
            "dynamo_leaving",
            "1 while this node is out of the ring, handing its data over.",
            f64::from(u8::from(s.leaving)),
        ),
        (
            "dynamo_handed_over",
            "1 once this node left and holds nothing for anyone (no transfer, no hint): it may be stopped.",
            f64::from(u8::from(s.handed_over)),
        ),
    ];
    for (name, help, value) in gauges {
        o.single(name, "gauge", help, value);
    }
    if let Some(bytes) = storage_bytes {
        o.single(
            "dynamo_storage_bytes",
            "gauge",
            "Bytes of the files in the node's data directory.",
            bytes,
        );
    }

    if let Some(p) = &s.staleness {
        o.family(
            "dynamo_staleness_samples",
            "gauge",
            "Samples behind the staleness predictions: replica round trips (write, read) and timed store flushes (flush).",
        );
        o.sample(
            "dynamo_staleness_samples",
            &[("kind", "write")],
            p.write_samples,
        );
        o.sample(
            "dynamo_staleness_samples",
            &[("kind", "read")],
            p.read_samples,
        );
        o.sample(
            "dynamo_staleness_samples",
            &[("kind", "flush")],
            p.service_samples,
        );
        o.family(
            "dynamo_staleness_consistent_probability",
            "gauge",
            "Predicted probability (PBS, WARS model) that a read t_ms after a write commits returns it, for the configured N, R, W (configured=\"true\") and R or W one off.",
        );
        for choice in &p.choices {
            let (n, r, w) = (
                choice.n.to_string(),
                choice.r.to_string(),
                choice.w.to_string(),
            );
            let configured = if choice.configured { "true" } else { "false" };
            for (t, prob) in p.times.iter().zip(&choice.p_consistent) {
                let t = t.to_string();
                let labels = [
                    ("n", n.as_str()),
                    ("r", r.as_str()),
                    ("w", w.as_str()),
                    ("t_ms", t.as_str()),
                    ("configured", configured),
                ];
                o.sample("dynamo_staleness_consistent_probability", &labels, prob);
            }
        }
        o.family(
            "dynamo_staleness_time_to_target_seconds",
            "gauge",
            "Predicted time after a write commits until a read returns it with the target probability (0.999); absent when the model does not reach it.",
        );
        let target = p.target.to_string();
        for choice in &p.choices {
            let Some(ms) = choice.time_to_target else {
                continue;
            };
            let (n, r, w) = (
                choice.n.to_string(),
                choice.r.to_string(),
                choice.w.to_string(),
            );
            let configured = if choice.configured { "true" } else { "false" };
            let labels = [
                ("n", n.as_str()),
                ("r", r.as_str()),
                ("w", w.as_str()),
                ("target", target.as_str()),
                ("configured", configured),
            ];
            o.sample(
                "dynamo_staleness_time_to_target_seconds",
                &labels,
                ms / 1000.0,
            );
        }
    }
    o.0
}

#[cfg(test)]
mod storage_tests {
    use crate::store::Store as _;

    /// Review of the HTTP surface, twenty-fifth session of issue 20: the gauge read the redb
    /// file alone, and the default engine (fjall) keeps none: no `dynamo_storage_bytes` on a
    /// default node with a data directory.
    #[test]
    fn the_storage_gauge_counts_either_engine_s_files() {
        use crate::runtime::{open_store, Engine};
        for engine in [Engine::Fjall, Engine::Redb] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = open_store(
                dir.path(),
                Some(engine),
                crate::redb_store::Durability::Durable,
            )
            .unwrap();
            store.put_meta("m", &[1; 4096]).unwrap();
            store.flush().unwrap();
            let bytes = super::storage_bytes(dir.path());
            assert!(bytes.is_some_and(|b| b >= 4096), "{engine:?}: {bytes:?}");
        }
    }
}
