//! [`Error`]: what the model refuses.

/// Why a model, a distribution or a query is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// R or W outside `1..=N`, or N outside `1..=MAX_N`.
    #[error("N={n}, R={r}, W={w}: need 1 <= R, W <= N <= {max}", max = crate::MAX_N)]
    Quorum {
        /// Replicas.
        n: usize,
        /// Read quorum.
        r: usize,
        /// Write quorum.
        w: usize,
    },
    /// A Monte Carlo run of zero trials.
    #[error("a Monte Carlo run needs at least one trial")]
    NoTrials,
    /// An empirical distribution without samples.
    #[error("an empirical distribution needs at least one sample")]
    Empty,
    /// A latency sample that is negative, infinite or NaN.
    #[error("latency sample {0} ms: samples must be finite and >= 0")]
    Sample(f64),
    /// A distribution parameter out of its domain.
    #[error("{what} = {value}: {expected}")]
    Parameter {
        /// Which parameter.
        what: &'static str,
        /// The value given.
        value: f64,
        /// What it must be.
        expected: &'static str,
    },
}
