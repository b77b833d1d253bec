//! Counters and latency histograms of one node, for `status` and the experiments.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::message::{ClientError, ClientReply, ClientRequest};

/// Monotonic counters of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Gets coordinated here.
    pub gets: u64,
    /// Puts coordinated here.
    pub puts: u64,
    /// Deletes coordinated here.
    pub deletes: u64,
    /// Requests that failed (quorum not reached, invalid input).
    pub failures: u64,
    /// Requests forwarded to a coordinator among the key's primaries.
    pub forwarded: u64,
    /// Replica writes applied (coordinated, repair, hint, exchange).
    pub replica_writes: u64,
    /// Replica reads answered.
    pub replica_reads: u64,
    /// Read-repair writes sent.
    pub read_repairs: u64,
    /// Hints recorded as a fallback.
    pub hints_recorded: u64,
    /// Hints delivered to their node and acknowledged.
    pub hints_delivered: u64,
    /// Hints dropped (expired, over a bound).
    pub hints_dropped: u64,
    /// Anti-entropy sessions started here.
    pub sync_sessions: u64,
    /// Anti-entropy sessions that failed or timed out.
    pub sync_failures: u64,
    /// Keys found different by anti-entropy.
    pub sync_keys_repaired: u64,
    /// Bytes of Merkle-tree traffic sent by sessions started here.
    pub sync_bytes: u64,
    /// Keys pushed to new owners after ring changes.
    pub transfer_keys: u64,
    /// Bytes (keys and encoded versions) pushed to new owners after ring changes, resent
    /// batches included.
    #[serde(default)]
    pub transfer_bytes: u64,
    /// Peer messages that could not be used (undecodable payload, unexpected).
    pub bad_messages: u64,
    /// Late replica answers absorbed after a request finished.
    pub late_answers: u64,
    /// Tombstones removed once every replica held them.
    pub tombstones_reaped: u64,
    /// Gossip news of new nodes ignored because the membership view was full (see
    /// `dynamo_gossip::Config::max_members`): above zero, some node's gossip names far more
    /// nodes than the cluster has.
    #[serde(default)]
    pub gossip_view_full: u64,
    /// Peers this node took for failed on its own: silent through a request's deadline since it
    /// last heard from them (requests then route around them until they are heard again).
    #[serde(default)]
    pub silenced: u64,
}

impl Counters {
    /// Adds `other` into `self`, field by field (the destructuring is exhaustive, so a new counter
    /// cannot be forgotten here).
    pub fn absorb(&mut self, other: &Counters) {
        let Counters {
            gets,
            puts,
            deletes,
            failures,
            forwarded,
            replica_writes,
            replica_reads,
            read_repairs,
            hints_recorded,
            hints_delivered,
            hints_dropped,
            sync_sessions,
            sync_failures,
            sync_keys_repaired,
            sync_bytes,
            transfer_keys,
            transfer_bytes,
            bad_messages,
            late_answers,
            tombstones_reaped,
            gossip_view_full,
            silenced,
        } = other;
        self.gets += gets;
        self.puts += puts;
        self.deletes += deletes;
        self.failures += failures;
        self.forwarded += forwarded;
        self.replica_writes += replica_writes;
        self.replica_reads += replica_reads;
        self.read_repairs += read_repairs;
        self.hints_recorded += hints_recorded;
        self.hints_delivered += hints_delivered;
        self.hints_dropped += hints_dropped;
        self.sync_sessions += sync_sessions;
        self.sync_failures += sync_failures;
        self.sync_keys_repaired += sync_keys_repaired;
        self.sync_bytes += sync_bytes;
        self.transfer_keys += transfer_keys;
        self.transfer_bytes += transfer_bytes;
        self.bad_messages += bad_messages;
        self.late_answers += late_answers;
        self.tombstones_reaped += tombstones_reaped;
        self.gossip_view_full += gossip_view_full;
        self.silenced += silenced;
    }
}

/// Counters and latency histograms (milliseconds).
#[derive(Debug, Clone)]
pub struct NodeStats {
    /// The counters.
    pub counters: Counters,
    /// Latency of successful gets coordinated here.
    pub get_latency: Histogram<u64>,
    /// Latency of successful puts and deletes coordinated here.
    pub put_latency: Histogram<u64>,
    /// Round trips of replica writes sent by this node as coordinator, send to ack (see
    /// `staleness`).
    pub write_round_trip: Histogram<u64>,
    /// Round trips of replica reads sent by this node as coordinator, send to response.
    pub read_round_trip: Histogram<u64>,
    /// Durations of the store flushes that carried replica writes, **microseconds**: the time a
    /// replica holds a write it already serves to reads before acknowledging it (see
    /// `staleness`). Recorded by the runtime's driver through [`NodeStats::record_flush`].
    pub write_service: Histogram<u64>,
    /// `counters.replica_writes` at the last recorded flush.
    writes_at_flush: u64,
}

impl NodeStats {
    /// The store was flushed in `micros`: a sample of [`NodeStats::write_service`] if replica
    /// writes were applied since the last flush recorded.
    pub fn record_flush(&mut self, micros: u64) {
        if self.counters.replica_writes != self.writes_at_flush {
            self.writes_at_flush = self.counters.replica_writes;
            // Recording fails only past the histogram's range, which auto-resizes.
            let _ = self.write_service.record(micros);
        }
    }
}

impl Default for NodeStats {
    fn default() -> Self {
        NodeStats {
            counters: Counters::default(),
            get_latency: new_histogram(),
            put_latency: new_histogram(),
            write_round_trip: new_histogram(),
            read_round_trip: new_histogram(),
            write_service: new_histogram(),
            writes_at_flush: 0,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Construction fails only for more than 5 significant figures.
    Histogram::new(3).expect("3 significant figures is a valid precision")
}

/// A serializable summary of a latency histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean (ms).
    pub mean: f64,
    /// Median (ms).
    pub p50: u64,
    /// 99th percentile (ms).
    pub p99: u64,
    /// 99.9th percentile (ms).
    pub p999: u64,
    /// Maximum (ms).
    pub max: u64,
}

impl LatencySummary {
    /// Summarises a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        LatencySummary {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// The operation of a client request, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestOp {
    /// A get.
    Get,
    /// A put.
    Put,
    /// A delete.
    Delete,
}

impl RequestOp {
    /// The operation of a request.
    pub fn of(request: &ClientRequest) -> Self {
        match request {
            ClientRequest::Get { .. } => RequestOp::Get,
            ClientRequest::Put { .. } => RequestOp::Put,
            ClientRequest::Delete { .. } => RequestOp::Delete,
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RequestOp::Get => "get",
            RequestOp::Put => "put",
            RequestOp::Delete => "delete",
        }
    }
}

/// How a client request ended, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestOutcome {
    /// Answered: stored, or found.
    Ok,
    /// A get of a key with no live value.
    NotFound,
    /// The timeout passed before R or W answers.
    Timeout,
    /// Too many replicas failed or were unreachable for R or W answers.
    QuorumFailed,
    /// Refused: invalid options or context.
    Invalid,
    /// Refused: a value, key, context or sibling set over a limit.
    TooLarge,
    /// The node was overloaded, shutting down, or its storage failed.
    Unavailable,
}

impl RequestOutcome {
    /// The outcome of a reply.
    pub fn of(reply: &ClientReply) -> Self {
        match reply {
            ClientReply::Got { values, .. } if values.is_empty() => RequestOutcome::NotFound,
            ClientReply::Got { .. } | ClientReply::Stored { .. } => RequestOutcome::Ok,
            ClientReply::Failed(e) => match e {
                ClientError::Timeout { .. } => RequestOutcome::Timeout,
                ClientError::QuorumFailed { .. } => RequestOutcome::QuorumFailed,
                ClientError::InvalidOptions(_) | ClientError::InvalidContext(_) => {
                    RequestOutcome::Invalid
                }
                ClientError::ValueTooLarge { .. } | ClientError::LimitExceeded { .. } => {
                    RequestOutcome::TooLarge
                }
                ClientError::Storage(_) | ClientError::Unavailable(_) => {
                    RequestOutcome::Unavailable
                }
            },
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::NotFound => "not_found",
            RequestOutcome::Timeout => "timeout",
            RequestOutcome::QuorumFailed => "quorum_failed",
            RequestOutcome::Invalid => "invalid",
            RequestOutcome::TooLarge => "too_large",
            RequestOutcome::Unavailable => "unavailable",
        }
    }
}

/// Upper bounds (seconds) of the request latency histogram's buckets, as Prometheus histograms
/// have them: from 0.5 ms (a local in-memory quorum) to 10 s (far past any default timeout).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with fixed buckets ([`LATENCY_BUCKETS`]), in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyBuckets {
    /// Requests per bucket (not cumulative); the last counts those above every bound.
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
    /// Requests.
    pub count: u64,
    /// Sum of their latencies, seconds.
    pub sum: f64,
}

impl LatencyBuckets {
    /// Records one request's latency.
    pub fn record(&mut self, seconds: f64) {
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i] += 1;
        self.count += 1;
        self.sum += seconds;
    }

    /// Requests at or below each bound, then all of them (Prometheus' cumulative `le` buckets).
    pub fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().scan(0, |acc, c| {
            *acc += c;
            Some(*acc)
        })
    }
}

/// Client requests answered by one node (whatever the protocol), by operation and outcome, timed
/// from their arrival at the node to their reply: what `/metrics` exposes as
/// `dynamo_requests_total` and `dynamo_request_duration_seconds`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMetrics {
    series: BTreeMap<(RequestOp, RequestOutcome), LatencyBuckets>,
}

impl RequestMetrics {
    /// Records a request.
    pub fn record(&mut self, op: RequestOp, outcome: RequestOutcome, seconds: f64) {
        self.series
            .entry((op, outcome))
            .or_default()
            .record(seconds);
    }

    /// Every (operation, outcome) seen, with its histogram.
    pub fn series(&self) -> impl Iterator<Item = (RequestOp, RequestOutcome, &LatencyBuckets)> {
        self.series
            .iter()
            .map(|(&(op, outcome), h)| (op, outcome, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let mut h = LatencyBuckets::default();
        h.record(0.0005);
        h.record(0.003);
        h.record(99.0);
        let cumulative: Vec<u64> = h.cumulative().collect();
        assert_eq!(cumulative.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(cumulative[0], 1);
        assert_eq!(cumulative[3], 2, "0.003 s is in the 5 ms bucket");
        assert_eq!(cumulative[LATENCY_BUCKETS.len() - 1], 2);
        assert_eq!(cumulative[LATENCY_BUCKETS.len()], 3);
        assert_eq!(h.count, 3);
    }
}
