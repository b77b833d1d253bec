#![doc = include_str!("../README.md")]

mod config;
mod detector;
mod error;
mod event;
mod exchange;
mod machine;
mod message;
mod round;
mod state;

#[cfg(test)]
mod laws;

pub use config::{Config, PhiModel};
pub use error::{ConfigError, GossipError};
pub use event::{Event, Stats, Transmit};
pub use machine::Gossip;
pub use message::{Body, Delta, Digest, Message};
pub use state::{NodeState, Status, Versioned};
