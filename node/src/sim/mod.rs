//! The deterministic cluster simulator.

pub mod check;
pub mod dist;
pub mod net;
pub mod workload;
