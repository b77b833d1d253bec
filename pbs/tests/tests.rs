//! Integration tests of `dynamo-pbs`, one binary.

mod paper;
mod properties;
