//! What the coordinators report: why a request failed and who answered when.

/// A node and the time (caller's milliseconds) of its answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timed<Id> {
    /// The node that answered.
    pub node: Id,
    /// When its answer was handled (the `now` passed with it).
    pub at: u64,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FailureReason {
    /// The deadline passed with fewer than `required` successful answers.
    #[error("deadline passed with {succeeded} of {required} required answers")]
    Deadline {
        /// Successful answers (acknowledgements, or answers counted toward R) received in time.
        succeeded: usize,
        /// W or R.
        required: usize,
    },
    /// So many replicas failed (or were unreachable from the start) that success is impossible:
    /// `failed > N - required`.
    #[error("{failed} of {n} replicas failed or were unreachable, {required} answers required")]
    TooManyFailures {
        /// Replicas that failed, were down, or had no target (N - targets).
        failed: usize,
        /// Successful answers received.
        succeeded: usize,
        /// W or R.
        required: usize,
        /// The replication factor.
        n: usize,
    },
    /// A get with [`NotFoundPolicy::Failure`](crate::NotFoundPolicy::Failure) cannot reach R answers
    /// holding a version, and at least one replica answered not found.
    #[error("{found} replicas hold the key, {not_found} answered not found, {required} required")]
    NotFound {
        /// Answers holding a version.
        found: usize,
        /// Not-found answers.
        not_found: usize,
        /// Other failures (errors, links down, unreachable).
        failed: usize,
        /// R.
        required: usize,
    },
}
