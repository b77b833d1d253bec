#![doc = include_str!("../README.md")]

pub mod dist;
pub mod error;
pub mod fits;
pub mod model;
pub mod rng;

pub use dist::{Dist, Empirical};
pub use error::Error;
pub use model::{binomial, k_staleness, Legs, Quorum, Staleness, Wars, MAX_N};
pub use rng::SplitMix64;
