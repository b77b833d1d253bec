#![doc = include_str!("../README.md")]
//! ## Time
//!
//! Nothing here reads a clock. An instant is `now: u64`, milliseconds on the caller's clock (any
//! epoch; only differences matter), passed to [`VClock::increment`] and kept as an entry's
//! timestamp; a span (the ages of [`PrunePolicy::Riak`]) is a [`core::time::Duration`]. Causality
//! never depends on timestamps: they only steer pruning.

mod actor;
mod clock;
mod dvv;
pub mod encoding;
pub mod prune;
mod set;
mod siblings;
mod sorted;

pub use actor::Actor;
pub use clock::{Causality, Entry, InvalidClock, VClock};
pub use dvv::{DvvEntry, DvvSet, InvalidDvvSet};
pub use encoding::{DecodeError, Reader};
pub use prune::{PrunePolicy, PruneReport};
pub use set::VersionSet;
pub use siblings::{Siblings, Value, Version};
