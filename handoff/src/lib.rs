#![doc = include_str!("../README.md")]
//! ## Time
//!
//! Nothing here reads a clock. An instant is `now: u64`, milliseconds on the driver's monotonic
//! clock (any epoch; only differences matter); a span (a timeout, a maximum age, a backoff) is a
//! [`core::time::Duration`]. Hint ages count from [`HintRecord::recorded_at`], so an owner that
//! persists hints across restarts passes a clock that survives them (Unix time in milliseconds);
//! time that goes backwards is tolerated (ages saturate at zero).

mod backoff;
mod error;
mod hint;
mod log;
mod payload;
mod time;
mod transfer;

pub use backoff::Backoff;
pub use error::{AckError, RecordError, TransferAckError, TransferError};
pub use hint::{BatchId, DropReason, Hint, HintAck, HintBatch, HintEntry, HintId, HintRecord};
pub use log::{HintEvent, HintLog, HintLogConfig, NodeStats, OverflowPolicy, RebuildReport};
pub use payload::Payload;
pub use transfer::{
    RequestId, TransferAck, TransferBatch, TransferConfig, TransferEntry, TransferEvent,
    TransferId, TransferSession,
};
