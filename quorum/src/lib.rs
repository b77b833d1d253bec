#![doc = include_str!("../README.md")]
//! ## Time
//!
//! Nothing here reads a clock. An instant is `now: u64`, milliseconds on the driver's monotonic
//! clock (any epoch; only differences matter); a span (a timeout) is a
//! [`core::time::Duration`]. A coordinator's deadline is the `now` it was created with plus
//! [`RequestOptions::timeout`].

mod get;
mod options;
mod outcome;
mod plan;
mod put;

pub use get::{Answer, GetCoordinator, GetMessage, GetOutcome, GetReply, ReplicaRead};
pub use options::{Fanout, Mode, NotFoundPolicy, ReplyError, RequestError, RequestOptions};
pub use outcome::{FailureReason, Timed};
pub use plan::{plan, Plan, Target};
pub use put::{PutCoordinator, PutOutcome, PutReply, ReplicaWrite};

pub use dynamo_vclock::{DvvSet, Siblings, VClock, Value, Version, VersionSet};
