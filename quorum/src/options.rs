//! Per-request options (N, R, W, timeout, quorum mode, not-found policy) and their validation.

use core::time::Duration;

/// How the targets of a request are chosen from the preference list.
///
/// With the `serde` feature its names are `"sloppy"` and `"strict"` (`"Sloppy"` and `"Strict"` are
/// read too), as a configuration file spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Mode {
    /// The paper's sloppy quorum: the first N healthy nodes of the preference list; a fallback
    /// carries a hint naming the down primary it stands in for.
    #[default]
    #[cfg_attr(feature = "serde", serde(alias = "Sloppy"))]
    Sloppy,
    /// A strict quorum: only the N primaries; each unreachable primary counts as a failure.
    #[cfg_attr(feature = "serde", serde(alias = "Strict"))]
    Strict,
}

/// What a "not found" answer from a replica counts as in a get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum NotFoundPolicy {
    /// A not-found is an answer (an empty sibling set) and counts toward R (Riak's
    /// `notfound_ok = true`). A get can then succeed with an empty result: the key is not found.
    #[default]
    Answer,
    /// A not-found counts as a failure: the get needs R answers that hold a version (Riak's
    /// `notfound_ok = false`). When that becomes impossible the get fails with
    /// [`FailureReason::NotFound`](crate::FailureReason::NotFound).
    Failure,
}

/// Which of its targets a get asks at once.
///
/// With the `serde` feature: `"all"`, or `first` with `reads` and `hedge` (a `Duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Fanout {
    /// Every target at once, and the first R answers decide: the paper's coordinator. Read
    /// repair then compares every replica that answers before the deadline.
    #[default]
    All,
    /// The first `reads` targets (at least R) at once, and another one for each answer that does
    /// not count toward R (a failure, or a not-found under [`NotFoundPolicy::Failure`]); every
    /// remaining target once `hedge` passed without a decision (Voldemort's preferred reads,
    /// Cassandra's speculative retry). Fewer messages per get; read repair compares only the
    /// replicas asked, so a stale replica that was not asked waits for anti-entropy.
    First {
        /// How many targets to ask at once (R to N).
        reads: usize,
        /// How long to wait for a decision before asking every remaining target.
        hedge: Duration,
    },
}

/// The options of one request.
///
/// `timeout` is how long a coordinator waits for answers: its deadline is the `now` it was created
/// with plus `timeout`, on the caller's clock (the crate never reads a clock). An answer that
/// arrives at `now >= deadline` is too late.
///
/// The fields are public so that a caller can build the struct literally; the coordinators
/// [`validate`](Self::validate) it and refuse invalid options with a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RequestOptions {
    /// Replication factor: how many replicas the request is for.
    pub n: usize,
    /// Answers a get needs (1..=N).
    pub r: usize,
    /// Acknowledgements a put needs (1..=N).
    pub w: usize,
    /// How long the coordinator waits for answers, from its creation.
    pub timeout: Duration,
    /// Sloppy or strict quorum.
    pub mode: Mode,
    /// What a not-found answer counts as.
    pub not_found: NotFoundPolicy,
    /// Which targets a get asks at once.
    #[cfg_attr(feature = "serde", serde(default))]
    pub fanout: Fanout,
}

impl RequestOptions {
    /// Validated options with the defaults: sloppy quorum, not-found counts as an answer.
    ///
    /// # Errors
    /// [`RequestError`] if N, R or W is zero or R or W is larger than N.
    pub fn new(n: usize, r: usize, w: usize, timeout: Duration) -> Result<Self, RequestError> {
        let options = Self {
            n,
            r,
            w,
            timeout,
            mode: Mode::default(),
            not_found: NotFoundPolicy::default(),
            fanout: Fanout::default(),
        };
        options.validate()?;
        Ok(options)
    }

    /// The same options with another quorum mode.
    #[must_use]
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The same options with another not-found policy.
    #[must_use]
    pub fn with_not_found(mut self, not_found: NotFoundPolicy) -> Self {
        self.not_found = not_found;
        self
    }

    /// The same options with another get fan-out.
    #[must_use]
    pub fn with_fanout(mut self, fanout: Fanout) -> Self {
        self.fanout = fanout;
        self
    }

    /// Checks `1 <= R <= N`, `1 <= W <= N` and, for [`Fanout::First`], `R <= reads <= N`.
    ///
    /// # Errors
    /// The first violated rule, in the order N, R, W, fan-out.
    pub fn validate(&self) -> Result<(), RequestError> {
        let Self { n, r, w, .. } = *self;
        if n == 0 {
            return Err(RequestError::ZeroN);
        }
        if r == 0 {
            return Err(RequestError::ZeroR);
        }
        if w == 0 {
            return Err(RequestError::ZeroW);
        }
        if r > n {
            return Err(RequestError::RLargerThanN { r, n });
        }
        if w > n {
            return Err(RequestError::WLargerThanN { w, n });
        }
        if let Fanout::First { reads, .. } = self.fanout {
            if reads < r || reads > n {
                return Err(RequestError::FanoutOutOfRange { reads, r, n });
            }
        }
        Ok(())
    }
}

/// Why a coordinator refused to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// N is zero.
    #[error("N must be at least 1")]
    ZeroN,
    /// R is zero.
    #[error("R must be at least 1")]
    ZeroR,
    /// W is zero.
    #[error("W must be at least 1")]
    ZeroW,
    /// R is larger than N.
    #[error("R = {r} is larger than N = {n}")]
    RLargerThanN {
        /// The requested R.
        r: usize,
        /// The replication factor.
        n: usize,
    },
    /// W is larger than N.
    #[error("W = {w} is larger than N = {n}")]
    WLargerThanN {
        /// The requested W.
        w: usize,
        /// The replication factor.
        n: usize,
    },
    /// A [`Fanout::First`] asks fewer than R or more than N targets at once.
    #[error("a get asking {reads} targets at once needs R = {r} <= {reads} <= N = {n}")]
    FanoutOutOfRange {
        /// The targets asked at once.
        reads: usize,
        /// The read quorum.
        r: usize,
        /// The replication factor.
        n: usize,
    },
    /// The plan names more targets than N.
    #[error("the plan has {targets} targets for N = {n}")]
    TooManyTargets {
        /// Number of targets in the plan.
        targets: usize,
        /// The replication factor.
        n: usize,
    },
    /// The plan names one node twice.
    #[error("the plan names the same node at positions {first} and {second}")]
    DuplicateTarget {
        /// Position of the first occurrence.
        first: usize,
        /// Position of the repeated occurrence.
        second: usize,
    },
    /// A fallback of the plan stands in for a node that another target is or stands in for
    /// (or for itself): counted toward W, the two would count one replica's copy twice.
    #[error(
        "the fallback at position {second} stands in for a node target {first} is or stands in for"
    )]
    OverlappingHint {
        /// Position of the target the fallback overlaps (the earlier of the two; the fallback
        /// itself when it stands in for itself).
        first: usize,
        /// Position of the fallback (the later of the two).
        second: usize,
    },
}

/// Why a coordinator refused a reply. The reply changed nothing and is counted in the
/// coordinator's `ignored()`; time still advanced to its `now`, as with `handle_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The sender is not one of the request's targets.
    #[error("the reply comes from a node that is not a target of the request")]
    NotATarget,
    /// The target already answered.
    #[error("target {position} of the plan already answered")]
    AlreadyAnswered {
        /// The target's position in the plan.
        position: usize,
    },
    /// A get stopped listening (every target answered, or the deadline passed).
    #[error("the coordinator stopped listening (every target answered or the deadline passed)")]
    ListeningOver,
}

/// `now + span` in milliseconds, saturating at the end of time.
pub(crate) fn after(now: u64, span: Duration) -> u64 {
    now.saturating_add(u64::try_from(span.as_millis()).unwrap_or(u64::MAX))
}
