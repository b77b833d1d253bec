#![doc = include_str!("../README.md")]

#[cfg(feature = "cluster")]
pub mod experiments;
#[cfg(feature = "cluster")]
pub mod http1;
#[cfg(feature = "cluster")]
pub mod loadgen;
