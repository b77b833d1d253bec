//! Integration tests of `dynamo-merkle`, one binary.

mod harness;
mod paper;
mod properties;
mod robustness;
mod wire;
