#![doc = include_str!("../README.md")]

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
