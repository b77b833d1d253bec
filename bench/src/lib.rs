//! Shared helpers for the benchmarks, the load generator and the seed experiments.

pub mod experiments;
