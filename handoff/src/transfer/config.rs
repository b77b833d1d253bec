//! Settings of a [`TransferSession`](crate::TransferSession).

use core::time::Duration;

use crate::backoff::Backoff;

/// Batch sizes and timing of an ownership transfer.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TransferConfig {
    /// Most entries the session asks for per batch. Default 512.
    pub batch_max_entries: usize,
    /// Most bytes (keys plus payloads, as the owner counts them) asked for per batch.
    /// Default 1 MiB.
    pub batch_max_bytes: usize,
    /// Most unacknowledged batches (at least 1). Default 2 (one being applied, one on the wire).
    pub max_in_flight: usize,
    /// A batch not acknowledged within this time is sent again. Default 10 s.
    pub ack_timeout: Duration,
    /// Delay before resending after lost batches.
    pub backoff: Backoff,
    /// Seed for retry jitter.
    pub seed: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            batch_max_entries: 512,
            batch_max_bytes: 1 << 20,
            max_in_flight: 2,
            ack_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            seed: 0,
        }
    }
}
