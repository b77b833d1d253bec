//! `dynamo-node`: the protocol crates composed into a Dynamo node.
//!
//! - [`NodeCore`] is the sans-IO node: client requests, peer messages and timeouts in; messages to
//!   peers, client replies and the next deadline out. It stores through a [`Store`].
//! - [`sim`] runs many cores on virtual time from one seed, with a network that delays, drops,
//!   duplicates and partitions, and checks the history.

pub mod client;
pub mod config;
pub mod core;
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
pub use types::{Actor, Clock, Key, Millis, NodeId, RequestId, Sibs, Value, Ver};
