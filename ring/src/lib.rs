#![doc = include_str!("../README.md")]
//!
//! # Concepts
//!
//! - A [`Position`] is a point of the 128-bit ring; [`HashFunction`] maps keys to positions.
//! - A [`Ring`] holds the members ([`NodeSpec`]: id, weight, zone) and their tokens, placed by a
//!   [`Strategy`] from the Dynamo paper's section 6.2.
//! - [`Ring::preference_list`] yields the nodes responsible for a key: N [`Role::Primary`] entries,
//!   then every other node as a [`Role::Fallback`] for sloppy quorums.
//! - [`Ring::join`], [`Ring::leave`] and [`Ring::set_weight`] return a [`Change`]: the new ring and
//!   its [`TransferPlan`].
//! - [`Ring::ownership`] measures the balance of the key space.
//!
//! ## Randomness
//!
//! Strategy 1's tokens are drawn from ChaCha8 seeded with the strategy's `seed`: the same seed
//! gives the same ring on every platform and with every version of the dependencies. The ring
//! reads no clock and takes no time input.

mod config;
mod error;
mod hash;
mod partition;
mod plan;
mod preference;
mod range;
mod ring;
mod rng;
#[cfg(feature = "serde")]
mod serde_repr;
mod stats;

pub use config::{
    NodeSpec, RingConfig, Strategy, MAX_PARTITIONS, MAX_REPLICAS, MAX_TOKENS_PER_NODE,
};
pub use error::RingError;
pub use hash::{HashFunction, Position};
pub use plan::{Change, Transfer, TransferPlan};
pub use preference::{PreferenceList, Replica, Role};
pub use range::KeyRange;
pub use ring::Ring;
#[cfg(feature = "serde")]
pub use serde_repr::DecodeError;
pub use stats::Ownership;
