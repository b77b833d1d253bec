//! Integration tests of `dynamo-handoff`: one binary, modules per subject.

mod hint_log;
mod hint_props;
mod sim;
mod transfer;
mod transfer_props;
