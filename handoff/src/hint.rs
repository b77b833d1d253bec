//! Hints and the messages that carry them to the node they were meant for (paper section 4.6).

use core::time::Duration;

use crate::payload::Payload;

/// Identifies a hint in one log, and in the owner's persisted copy of it.
///
/// Ids grow monotonically; after [`HintLog::rebuild`](crate::HintLog::rebuild) the log continues
/// after the largest restored id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HintId(pub u64);

/// Identifies one delivery attempt (a batch) of a hint log.
///
/// Batch ids start at a value drawn from the log's seed, so an acknowledgement that arrives after
/// a restart (for a batch sent by the previous incarnation) does not match a new batch, provided
/// the owner seeds each incarnation differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BatchId(pub u64);

/// A write held by a fallback node for a node that could not take it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Hint<Id, P> {
    /// The node the write was meant for.
    pub intended: Id,
    /// The key written.
    pub key: Vec<u8>,
    /// The versions to hand over (for the node: its encoded sibling set).
    pub payload: P,
}

impl<Id, P: Payload> Hint<Id, P> {
    /// A hint for `intended`.
    pub fn new(intended: Id, key: impl Into<Vec<u8>>, payload: P) -> Self {
        Hint {
            intended,
            key: key.into(),
            payload,
        }
    }

    /// Bytes counted against the log's byte bound: key plus payload.
    pub fn size(&self) -> usize {
        self.key.len().saturating_add(self.payload.size())
    }
}

/// A hint as the owner persists it: what [`HintEvent::Persist`](crate::HintEvent::Persist) asks to
/// write, and what [`HintLog::rebuild`](crate::HintLog::rebuild) takes back at start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HintRecord<Id, P> {
    /// The hint's id in the log.
    pub id: HintId,
    /// When the hint was recorded (the owner's clock, milliseconds); its age counts from here.
    pub recorded_at: u64,
    /// The hint.
    pub hint: Hint<Id, P>,
}

/// One hint inside a [`HintBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HintEntry<P> {
    /// The hint's id in the sender's log (for the receiver's logs only).
    pub id: HintId,
    /// The key.
    pub key: Vec<u8>,
    /// The versions to merge into the receiver's copy of the key.
    pub payload: P,
}

/// Hints handed back to the node they were meant for. The receiver merges every entry into its
/// store (merging is idempotent, so a batch delivered twice is harmless) and then answers with
/// [`HintBatch::ack`], or [`HintBatch::ack_except`] the entries it could not keep.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HintBatch<P> {
    /// Echoed in the acknowledgement.
    pub batch_id: BatchId,
    /// The hints, oldest first.
    pub entries: Vec<HintEntry<P>>,
}

impl<P> HintBatch<P> {
    /// The acknowledgement to send back once every entry is applied durably.
    pub fn ack(&self) -> HintAck {
        self.ack_except(Vec::new())
    }

    /// The acknowledgement to send back once every entry but those of `refused` is applied
    /// durably (a storage error, an entry past the receiver's limits): the sender forgets the
    /// others and sends the refused ones again later.
    pub fn ack_except(&self, refused: Vec<HintId>) -> HintAck {
        HintAck {
            batch_id: self.batch_id,
            refused,
        }
    }
}

/// The receiver's acknowledgement of a [`HintBatch`]: every entry is applied durably but those
/// it names as refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HintAck {
    /// The batch applied.
    pub batch_id: BatchId,
    /// Entries the receiver did not keep: the sender keeps them and retries after a backoff.
    #[cfg_attr(feature = "serde", serde(default))]
    pub refused: Vec<HintId>,
}

/// Why the log gave up a hint without delivering it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum DropReason {
    /// The hint was older than the configured maximum age.
    Expired {
        /// Its age when it was dropped.
        age: Duration,
        /// The configured maximum.
        max_age: Duration,
    },
    /// Evicted (oldest first) to stay within the bound on the number of hints.
    CountLimit {
        /// The configured bound.
        max_hints: usize,
    },
    /// Evicted (oldest first) to stay within the bound on bytes.
    ByteLimit {
        /// The configured bound.
        max_bytes: usize,
    },
    /// The intended node left the ring ([`HintLog::forget_peer`](crate::HintLog::forget_peer)):
    /// the data belongs to its new owners now.
    NodeRemoved,
    /// The owner sends the data elsewhere ([`HintLog::reroute`](crate::HintLog::reroute)): the
    /// intended node stays in the ring but no longer replicates the hint's key.
    Rerouted,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DropReason::Expired { age, max_age } => {
                write!(f, "expired: age {age:?} exceeds maximum {max_age:?}")
            }
            DropReason::CountLimit { max_hints } => {
                write!(f, "evicted to stay within {max_hints} hints")
            }
            DropReason::ByteLimit { max_bytes } => {
                write!(f, "evicted to stay within {max_bytes} bytes")
            }
            DropReason::NodeRemoved => write!(f, "intended node removed from the ring"),
            DropReason::Rerouted => write!(
                f,
                "rerouted: the intended node no longer replicates the key"
            ),
        }
    }
}
