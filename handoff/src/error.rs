//! Errors of the hint log and the transfer session.

use crate::transfer::RequestId;

/// Why [`HintLog::record`](crate::HintLog::record) refused a hint. A refused hint is not held:
/// the owner must treat that replica as not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The hint alone is larger than the log's byte bound.
    #[error("hint of {size} bytes exceeds the log's bound of {max_bytes} bytes")]
    TooLarge {
        /// Size of the refused hint (key plus payload).
        size: usize,
        /// The configured bound.
        max_bytes: usize,
    },
    /// The log is full and its policy is to refuse new hints.
    #[error("hint log full: {hints} hints and {bytes} bytes held (bounds {max_hints} hints, {max_bytes} bytes), refused a hint of {size} bytes")]
    Full {
        /// Hints held.
        hints: usize,
        /// Bytes held.
        bytes: usize,
        /// Bound on hints.
        max_hints: usize,
        /// Bound on bytes.
        max_bytes: usize,
        /// Size of the refused hint.
        size: usize,
    },
    /// Every hint id has been issued (ids are never reused).
    #[error("hint ids are exhausted")]
    IdsExhausted,
}

/// Why [`HintLog::handle_message`](crate::HintLog::handle_message) refused an acknowledgement.
/// Both are expected now and then under at-least-once delivery; the log is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError<Id: std::fmt::Debug> {
    /// No batch with this id is in flight: a duplicate, a batch already timed out or cancelled,
    /// or one sent by an earlier incarnation.
    #[error("no batch {batch} in flight")]
    UnknownBatch {
        /// The acknowledged batch id.
        batch: u64,
    },
    /// The batch was sent to another node.
    #[error("batch {batch} was sent to {expected:?}, acknowledged by {from:?}")]
    WrongSender {
        /// The acknowledged batch id.
        batch: u64,
        /// The node the batch was sent to.
        expected: Id,
        /// The node that acknowledged.
        from: Id,
    },
}

/// Why [`TransferSession::supply`](crate::TransferSession::supply) refused an answer; the
/// session is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The supplied entries answer a request that is no longer current (the peer went down or
    /// the session already completed since it was asked).
    #[error("request {got:?} is not the current one ({current:?})")]
    StaleRequest {
        /// The request answered.
        got: RequestId,
        /// The request outstanding, if any.
        current: Option<RequestId>,
    },
    /// Keys must strictly increase and follow the request's `after` key.
    #[error("entry {index} is out of order: keys must strictly increase after the checkpoint")]
    OutOfOrder {
        /// Index of the offending entry in the supplied batch.
        index: usize,
    },
    /// A batch that is not the last one must carry at least one entry.
    #[error("an empty batch must be marked as the last one")]
    EmptyBatch,
}

/// Why [`TransferSession::handle_message`](crate::TransferSession::handle_message) refused an
/// acknowledgement; the session is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferAckError {
    /// The acknowledgement belongs to another transfer.
    #[error("acknowledgement for transfer {got}, this session is transfer {expected}")]
    WrongTransfer {
        /// This session's transfer id.
        expected: u64,
        /// The transfer acknowledged.
        got: u64,
    },
    /// The acknowledgement came from a node other than the receiver.
    #[error("acknowledgement from a node other than the receiver")]
    WrongSender,
    /// No batch in flight covers the acknowledged key interval (a duplicate, or an
    /// acknowledgement of a batch discarded when the peer went down).
    #[error("no batch in flight matches the acknowledgement")]
    UnknownBatch,
}
