//! [`Dist`]: one-way (or round-trip) delay distributions in milliseconds, parametric or
//! [`Empirical`] (samples a node measured).

use crate::error::Error;
use rand_core::RngCore;

use crate::rng::{below, unit_f64};

/// A delay distribution in milliseconds. Draws are never negative.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Dist {
    /// Always the same delay.
    Constant(f64),
    /// Normal, clamped at zero: a negative draw is 0 (not drawn again), so `Normal { mean: 0,
    /// sd }` is 0 half the time.
    Normal {
        /// Mean (ms).
        mean: f64,
        /// Standard deviation (ms).
        sd: f64,
    },
    /// Uniform on `[lo, hi]`.
    Uniform {
        /// Lower bound (ms).
        lo: f64,
        /// Upper bound (ms).
        hi: f64,
    },
    /// Exponential.
    Exponential {
        /// Mean (ms).
        mean: f64,
    },
    /// With probability `p_exp` Exp(`rate`), otherwise Pareto(`xm`, `alpha`): the shape of the
    /// PBS paper's production fits (see [`fits`](crate::fits)).
    Mixture {
        /// Probability of the exponential branch.
        p_exp: f64,
        /// Exponential rate in 1/ms.
        rate: f64,
        /// Pareto scale (ms).
        xm: f64,
        /// Pareto shape.
        alpha: f64,
    },
    /// Resampling of measured delays.
    Empirical(Empirical),
}

impl Dist {
    /// One draw (ms, >= 0).
    pub fn sample<R: RngCore + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Dist::Constant(c) => c.max(0.0),
            Dist::Normal { mean, sd } => {
                // Box-Muller.
                let u1 = 1.0 - unit_f64(rng);
                let u2 = unit_f64(rng);
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (mean + sd * z).max(0.0)
            }
            Dist::Uniform { lo, hi } => (lo + (hi - lo) * unit_f64(rng)).max(0.0),
            Dist::Exponential { mean } => -(1.0 - unit_f64(rng)).ln() * mean,
            Dist::Mixture {
                p_exp,
                rate,
                xm,
                alpha,
            } => {
                let u = 1.0 - unit_f64(rng);
                if unit_f64(rng) < *p_exp {
                    -u.ln() / rate
                } else {
                    xm / u.powf(1.0 / alpha)
                }
            }
            Dist::Empirical(e) => e.sample(rng),
        }
    }

    /// Checks the parameters: finite, spreads and bounds non-negative, rates and shapes positive.
    pub fn validate(&self) -> Result<(), Error> {
        fn check(
            what: &'static str,
            value: f64,
            ok: bool,
            expected: &'static str,
        ) -> Result<(), Error> {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(Error::Parameter {
                    what,
                    value,
                    expected,
                })
            }
        }
        match *self {
            Dist::Constant(c) => check("constant", c, c >= 0.0, "finite and >= 0"),
            Dist::Normal { mean, sd } => {
                check("mean", mean, true, "finite")?;
                check("sd", sd, sd >= 0.0, "finite and >= 0")
            }
            Dist::Uniform { lo, hi } => {
                check("lo", lo, lo >= 0.0, "finite and >= 0")?;
                check("hi", hi, hi >= lo, "finite and >= lo")
            }
            Dist::Exponential { mean } => check("mean", mean, mean > 0.0, "finite and > 0"),
            Dist::Mixture {
                p_exp,
                rate,
                xm,
                alpha,
            } => {
                check("p_exp", p_exp, (0.0..=1.0).contains(&p_exp), "in [0, 1]")?;
                check("rate", rate, rate > 0.0, "finite and > 0")?;
                check("xm", xm, xm > 0.0, "finite and > 0")?;
                check("alpha", alpha, alpha > 0.0, "finite and > 0")
            }
            Dist::Empirical(_) => Ok(()),
        }
    }
}

/// Measured delays, resampled with replacement (a bootstrap of the measurements). Built from
/// individual samples or from `(value, count)` pairs, as a histogram exports them.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Empirical {
    /// Distinct values, ascending.
    values: Vec<f64>,
    /// Running count of samples up to and including `values[i]`.
    cumulative: Vec<u64>,
}

impl Empirical {
    /// From individual samples (ms). Refuses an empty set and samples that are negative or not
    /// finite.
    pub fn from_samples(samples: impl IntoIterator<Item = f64>) -> Result<Self, Error> {
        Self::from_counts(samples.into_iter().map(|s| (s, 1)))
    }

    /// From `(value ms, count)` pairs in any order; pairs with count 0 are skipped. Refuses a set
    /// without samples and values that are negative or not finite.
    pub fn from_counts(input: impl IntoIterator<Item = (f64, u64)>) -> Result<Self, Error> {
        let mut pairs: Vec<(f64, u64)> = Vec::new();
        for (v, c) in input {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Sample(v));
            }
            if c > 0 {
                pairs.push((v, c));
            }
        }
        if pairs.is_empty() {
            return Err(Error::Empty);
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut values = Vec::with_capacity(pairs.len());
        let mut cumulative: Vec<u64> = Vec::with_capacity(pairs.len());
        let mut total = 0u64;
        for (v, c) in pairs {
            total = total.saturating_add(c);
            if values.last() == Some(&v) {
                if let Some(last) = cumulative.last_mut() {
                    *last = total;
                }
            } else {
                values.push(v);
                cumulative.push(total);
            }
        }
        Ok(Empirical { values, cumulative })
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Mean of the samples (ms).
    pub fn mean(&self) -> f64 {
        let mut previous = 0u64;
        let mut sum = 0.0;
        for (v, c) in self.values.iter().zip(&self.cumulative) {
            sum += v * (c - previous) as f64;
            previous = *c;
        }
        sum / self.count().max(1) as f64
    }

    /// One of the samples, uniformly.
    pub fn sample<R: RngCore + ?Sized>(&self, rng: &mut R) -> f64 {
        let k = below(rng, self.count());
        let i = self.cumulative.partition_point(|&c| c <= k);
        self.values
            .get(i)
            .or(self.values.last())
            .copied()
            .unwrap_or(0.0)
    }
}
