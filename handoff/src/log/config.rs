//! Settings of a [`HintLog`](crate::HintLog).

use core::time::Duration;

use crate::backoff::Backoff;

/// What [`HintLog::record`](crate::HintLog::record) does when a new hint does not fit the bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Refuse the new hint ([`RecordError::Full`](crate::RecordError::Full)); the coordinator
    /// learns at once that this replica was not hinted. Cassandra's behaviour, and the default.
    #[default]
    RejectNew,
    /// Evict the oldest hints (reported with [`HintEvent::Dropped`](crate::HintEvent::Dropped))
    /// to make room: newer writes are more likely to be the ones still missing downstream.
    DropOldest,
}

/// Bounds and timing of a [`HintLog`](crate::HintLog). Defaults follow Cassandra's hinted
/// handoff where the paper is silent.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HintLogConfig {
    /// Most hints held at once, over all intended nodes (0 refuses every hint). Default
    /// 1 000 000.
    pub max_hints: usize,
    /// Most bytes (keys plus payloads) held at once. Default 128 MiB (Cassandra's
    /// `max_hints_file_size`).
    pub max_bytes: usize,
    /// Hints older than this are dropped. Default 3 h (Cassandra's `max_hint_window`).
    pub max_age: Duration,
    /// What to do with a hint that does not fit.
    pub overflow: OverflowPolicy,
    /// Most hints per batch. Default 128.
    pub batch_max_hints: usize,
    /// Most bytes per batch (a single larger hint still travels alone). Default 1 MiB
    /// (Cassandra's hinted handoff throttle per second).
    pub batch_max_bytes: usize,
    /// Most unacknowledged batches per intended node (at least 1). Default 2.
    pub max_in_flight: usize,
    /// A batch not acknowledged within this time is considered lost. Default 10 s.
    pub ack_timeout: Duration,
    /// Delay before retrying a node after lost batches.
    pub backoff: Backoff,
    /// Seed for batch ids and retry jitter. Give every incarnation of a node a different seed
    /// (the gossip generation is a good choice) so that stale acknowledgements never match.
    pub seed: u64,
}

impl Default for HintLogConfig {
    fn default() -> Self {
        HintLogConfig {
            max_hints: 1_000_000,
            max_bytes: 128 << 20,
            max_age: Duration::from_secs(3 * 3600),
            overflow: OverflowPolicy::default(),
            batch_max_hints: 128,
            batch_max_bytes: 1 << 20,
            max_in_flight: 2,
            ack_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            seed: 0,
        }
    }
}
