#![doc = include_str!("../README.md")]
//! ## Time
//!
//! Nothing here reads a clock. An instant is `now: u64`, milliseconds on the driver's monotonic
//! clock (any epoch; only differences matter); a span (the gossip interval, the detector's
//! pause, removal delays) is a [`core::time::Duration`], used in whole milliseconds. Phi is
//! computed from the gaps between the instants at which heartbeats arrive.

mod config;
mod detector;
mod error;
mod event;
mod exchange;
mod machine;
mod message;
mod rng;
mod round;
mod state;

#[cfg(test)]
mod laws;

pub use config::{Config, PhiModel, MAX_INTERVAL};
pub use error::{ConfigError, GossipError, MessageError};
pub use event::{Event, Stats, Transmit};
pub use machine::Gossip;
pub use message::{Body, Delta, Digest, Message};
pub use state::{NodeState, Status, Versioned};
