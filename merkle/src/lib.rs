#![doc = include_str!("../README.md")]
//! ## Time
//!
//! Nothing here reads a clock. An instant is `now: u64`, milliseconds on the driver's monotonic
//! clock (any epoch; only differences matter); a span (a timeout) is a
//! [`core::time::Duration`]. A [`SyncSession`] fails when the peer stays silent for
//! [`SyncConfig::timeout`] after its last message.

pub mod config;
mod diff;
pub mod error;
pub mod hash;
pub mod message;
pub mod session;
pub mod stats;
pub mod tree;

pub use config::{SegmentId, SyncConfig, TreeConfig, MAX_SEGMENTS};
pub use error::{ConfigError, ShapeMismatch, SyncError};
pub use hash::{Hash, HASH_LEN};
pub use message::{ChildHashes, DiffKind, Entry, KeyDiff, Message, SegmentEntries};
pub use session::{Event, SyncSession};
pub use stats::SyncStats;
pub use tree::Tree;
