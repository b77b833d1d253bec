#![doc = include_str!("../README.md")]

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
pub use time::Instant;
pub use transfer::{
    RequestId, TransferAck, TransferBatch, TransferConfig, TransferEntry, TransferEvent,
    TransferId, TransferSession,
};
