//! Integration tests of `dynamo-quorum`: the paper's cases with exact outputs, and properties.

mod get;
mod options;
mod plan;
mod props;
mod put;
mod support;
