//! Typed errors of the crate.

use crate::config::{SegmentId, TreeConfig};

/// An invalid [`TreeConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The fan-out must be a power of two from 2 to 256.
    #[error("fan-out {fanout} is not a power of two between 2 and 256")]
    BadFanout {
        /// The fan-out asked for.
        fanout: u32,
    },
    /// `fanout^depth` exceeds the segment limit.
    #[error("fan-out {fanout} and depth {depth} give more than {max} segments")]
    TooManySegments {
        /// The fan-out asked for.
        fanout: u32,
        /// The depth asked for.
        depth: u8,
        /// The limit, [`crate::MAX_SEGMENTS`].
        max: u64,
    },
}

/// Two trees of different shapes cannot be merged or compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tree shapes differ: local {local:?}, remote {remote:?}")]
pub struct ShapeMismatch {
    /// This side's shape.
    pub local: TreeConfig,
    /// The other side's shape.
    pub remote: TreeConfig,
}

/// Why a [`crate::SyncSession`] failed. Once failed, a session stays failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The peer's tree has another shape.
    #[error(transparent)]
    Shape(#[from] ShapeMismatch),
    /// The message belongs to another session.
    #[error("message for session {got}, this is session {expected}")]
    WrongSession {
        /// This session's id.
        expected: u64,
        /// The id in the message.
        got: u64,
    },
    /// The message does not fit the session's state: wrong kind or a step from the future.
    #[error("unexpected {got} (step {step}) while {state}")]
    Unexpected {
        /// What the session was doing.
        state: &'static str,
        /// The kind of message that arrived.
        got: &'static str,
        /// Its step number.
        step: u32,
    },
    /// The peer sent hashes for children of a node this side did not report as differing.
    #[error("peer sent children of node {parent} at level {level}, which was not asked for")]
    UnknownParent {
        /// Level of the parent node.
        level: u8,
        /// Index of the parent node within its level.
        parent: u32,
    },
    /// A group of child hashes has the wrong length.
    #[error("peer sent {got} child hashes, the fan-out is {expected}")]
    BadChildCount {
        /// The fan-out.
        expected: u32,
        /// The number of hashes received.
        got: usize,
    },
    /// The peer's differences name one key more than once.
    #[error("the peer's differences name a key twice ({len} bytes)")]
    DuplicateKey {
        /// The key's length.
        len: usize,
    },
    /// Entries arrived (from the owner or the peer) for a segment that was not asked for.
    #[error("entries for segment {segment}, which was not asked for")]
    SegmentNotRequested {
        /// The segment.
        segment: SegmentId,
    },
    /// The owner supplied a segment it had already supplied.
    #[error("segment {segment} was supplied twice")]
    AlreadySupplied {
        /// The segment.
        segment: SegmentId,
    },
    /// An entry's key belongs to another segment than the one it was listed under.
    #[error("key listed under segment {listed} belongs to segment {actual}")]
    EntryOutsideSegment {
        /// The segment it was listed under.
        listed: SegmentId,
        /// The segment the key hashes to.
        actual: SegmentId,
    },
    /// The session already ended.
    #[error("the session has already ended")]
    Closed,
    /// The peer did not answer in time.
    #[error("no message from the peer for {after:?}")]
    TimedOut {
        /// The configured timeout.
        after: core::time::Duration,
    },
    /// The peer aborted the session.
    #[error("the peer aborted the session: {reason}")]
    Aborted {
        /// The peer's error, as text.
        reason: String,
    },
}
