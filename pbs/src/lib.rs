#![doc = include_str!("../README.md")]
//! ## Time and randomness
//!
//! Nothing here reads a clock: delays and windows are `f64` milliseconds of the model, not
//! instants of a driver. Randomness comes from the seed passed to [`Wars::run`] (ChaCha8, the
//! same stream on every platform); [`Dist::sample`] takes any [`rand_core::RngCore`].

pub mod dist;
pub mod error;
pub mod fits;
pub mod model;
mod rng;

pub use dist::{Dist, Empirical};
pub use error::Error;
pub use model::{binomial, k_staleness, Legs, Quorum, Staleness, Wars, MAX_N};
