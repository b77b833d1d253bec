//! Tests of `dynamo-ring`: the paper's cases and the ring's laws as properties.

mod common;
mod paper;
mod properties;
#[cfg(feature = "serde")]
mod serde_roundtrip;
