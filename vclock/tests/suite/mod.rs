//! Test modules: generators (`arb`) and one module per topic.

mod arb;
mod clock;
mod dvv;
mod encoding;
mod paper;
mod prune;
#[cfg(feature = "serde")]
mod serde;
mod siblings;
