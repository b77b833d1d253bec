//! Integration tests of `dynamo-gossip`, driven by the deterministic simulator in `sim.rs`.

mod sim;

mod convergence;
mod failure;
mod membership;
mod robustness;
