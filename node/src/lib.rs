#![doc = include_str!("../README.md")]

pub mod client;
pub mod config;
pub mod core;
pub mod fuzz;
pub mod history;
pub mod message;
pub mod redb_store;
pub mod runtime;
pub mod sim;
pub mod store;
pub mod types;

pub use crate::core::{NodeCore, NodeError, NodeStats, NodeStatus};
pub use config::{NodeConfig, QuorumMode};
pub use message::{ClientError, ClientReply, ClientRequest, PeerMessage, RequestOptions};
pub use store::{MemoryStore, Store, StoreError};
pub use types::{Actor, Clock, Key, Millis, NodeId, RequestId, Sibs, Value};
