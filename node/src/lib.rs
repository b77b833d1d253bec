#![doc = include_str!("../README.md")]

/// `impl From<$cause> for $error` building `$variant`, without making the cause a `source()`:
/// the variant's message already includes the cause, and a chain printer (anyhow's `{:#}`) would
/// print it twice.
macro_rules! from_cause {
    ($error:ty, $variant:path, $cause:ty) => {
        impl From<$cause> for $error {
            fn from(cause: $cause) -> Self {
                $variant(cause)
            }
        }
    };
}

pub mod client;
pub mod config;
pub mod core;
pub mod fjall_store;
pub mod fuzz;
pub mod history;
#[cfg(feature = "http")]
pub mod http;
mod manifest;
pub mod message;
mod on_disk;
pub mod redb_store;
pub mod runtime;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod types;
#[cfg(test)]
mod vectors;

pub use crate::core::{
    Boot, ChangeError, ChangePlan, ChangeRequest, Merged, NodeCore, NodeError, NodeEvent,
    NodeStats, NodeStatus, SizeScan, StalenessChoice, StalenessStatus, StorageId, StorageOp,
    StorageResult, StoredCore, MAX_REQUEST_TIMEOUT,
};
pub use config::{NodeConfig, QuorumMode};
pub use message::{ClientError, ClientOptions, ClientReply, ClientRequest, PeerMessage};
pub use store::{MemoryStore, Store, StoreError, SyncJob};
pub use types::{Actor, Clock, Key, Millis, NodeId, Object, RequestId, Sibs, Value};
