//! What the hint log reports: events for its owner and figures for a status command.

use crate::hint::{DropReason, HintId, HintRecord};

/// What the log tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HintEvent<Id, P> {
    /// Write this record to durable storage (a hint was recorded).
    Persist(HintRecord<Id, P>),
    /// Delete this record from durable storage (the hint was delivered or dropped).
    Forget(HintId),
    /// The intended node acknowledged the hint. Followed by [`HintEvent::Forget`].
    Delivered {
        /// The hint.
        id: HintId,
        /// The node that took it.
        node: Id,
        /// Its key.
        key: Vec<u8>,
    },
    /// The log gave the hint up. Followed by [`HintEvent::Forget`].
    Dropped {
        /// The hint.
        id: HintId,
        /// The node it was meant for.
        node: Id,
        /// Its key.
        key: Vec<u8>,
        /// Why.
        reason: DropReason,
    },
    /// Every hint for this node has been delivered.
    Drained {
        /// The node.
        node: Id,
    },
}

/// What [`HintLog::rebuild`](crate::HintLog::rebuild) restored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Records taken back into the log (some may then be dropped for age or bounds, which is
    /// reported with [`HintEvent::Dropped`]).
    pub restored: usize,
    /// Records ignored because a record with the same id was already in the log.
    pub duplicates: usize,
    /// Records ignored because they hold the last id (`u64::MAX`), which the log never issues.
    pub refused: usize,
}

/// Per-node figures, for a status command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Hints held for the node, in flight or not.
    pub hints: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Unacknowledged batches.
    pub in_flight_batches: usize,
    /// Whether the log was last told that the node is up.
    pub up: bool,
    /// Consecutive lost batches (resets on an acknowledgement or when the node comes up).
    pub failures: u32,
}
