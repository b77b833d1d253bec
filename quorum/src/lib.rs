#![doc = include_str!("../README.md")]

mod get;
mod options;
mod outcome;
mod plan;
mod put;

pub use get::{Answer, GetCoordinator, GetMessage, GetOutcome, ReplicaRead, Reply};
pub use options::{Mode, NotFoundPolicy, RequestError, RequestOptions};
pub use outcome::{FailureReason, Timed};
pub use plan::{plan, Plan, Target};
pub use put::{PutCoordinator, PutOutcome, ReplicaWrite};

pub use dynamo_vclock::{DvvSet, Siblings, VClock, Value, Version, VersionSet};
