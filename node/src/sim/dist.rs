//! Latency distributions for the simulated network, sampled from a seeded RNG.
//!
//! Every sample is a non-negative number of milliseconds (`f64`, so sub-millisecond LAN latencies
//! can be modelled; the simulator keeps time in microseconds). The same distribution sampled from
//! RNGs seeded alike yields the same sequence.

use crate::types::ReplayRng;
use rand::Rng;

/// Why a distribution is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DistError {
    /// A parameter is negative, not finite or otherwise out of range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must be.
        reason: &'static str,
    },
    /// A mixture has no component or its weights do not sum to a positive number.
    #[error("mixture needs at least one component with a positive weight (total weight {total})")]
    EmptyMixture {
        /// The sum of the weights.
        total: f64,
    },
}

/// A latency distribution, in milliseconds.
///
/// ```
/// use dynamo_node::sim::dist::Dist;
/// use dynamo_node::types::ReplayRng;
/// use rand::SeedableRng;
///
/// // 95% of messages take about 1 ms, 5% hit a long Pareto tail; 0.2 ms of fixed cost.
/// let d = Dist::offset(0.2, Dist::mixture(vec![
///     (0.95, Dist::Normal { mean: 1.0, std_dev: 0.2 }),
///     (0.05, Dist::Pareto { scale: 5.0, shape: 1.5 }),
/// ]));
/// d.validate().unwrap();
/// let mut rng = ReplayRng::seed_from_u64(7);
/// let x = d.sample(&mut rng);
/// assert!(x >= 0.2);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Dist {
    /// Always the same value.
    Constant(f64),
    /// Uniform in `[lo, hi)`.
    Uniform {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// Normal (Box–Muller), truncated at zero.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std_dev: f64,
    },
    /// Exponential with the given mean.
    Exponential {
        /// Mean (1 / rate).
        mean: f64,
    },
    /// Pareto (type I): `scale / U^(1/shape)`, at least `scale`, heavy-tailed.
    Pareto {
        /// Minimum value (x_m).
        scale: f64,
        /// Tail index (alpha); the mean is finite for `shape > 1`.
        shape: f64,
    },
    /// Picks a component with probability proportional to its weight, then samples it.
    Mixture(Vec<(f64, Dist)>),
    /// A constant added to another distribution's samples.
    Offset(f64, Box<Dist>),
    /// Another distribution's samples, capped at a maximum (tames Pareto tails).
    Capped(f64, Box<Dist>),
}

impl Default for Dist {
    /// A LAN-like 1 ms ± 0.2 ms.
    fn default() -> Self {
        Dist::Normal {
            mean: 1.0,
            std_dev: 0.2,
        }
    }
}

fn check(name: &'static str, value: f64, ok: bool, reason: &'static str) -> Result<(), DistError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(DistError::InvalidParameter {
            name,
            value,
            reason,
        })
    }
}

impl Dist {
    /// A mixture of `(weight, distribution)` pairs.
    pub fn mixture(parts: Vec<(f64, Dist)>) -> Self {
        Dist::Mixture(parts)
    }

    /// `inner` shifted by a constant `offset`.
    pub fn offset(offset: f64, inner: Dist) -> Self {
        Dist::Offset(offset, Box::new(inner))
    }

    /// `inner` capped at `max`.
    pub fn capped(max: f64, inner: Dist) -> Self {
        Dist::Capped(max, Box::new(inner))
    }

    /// Checks every parameter.
    ///
    /// # Errors
    ///
    /// The first invalid parameter found.
    pub fn validate(&self) -> Result<(), DistError> {
        match self {
            Dist::Constant(c) => check("constant", *c, *c >= 0.0, "must be >= 0"),
            Dist::Uniform { lo, hi } => {
                check("lo", *lo, *lo >= 0.0, "must be >= 0")?;
                check("hi", *hi, *hi >= *lo, "must be >= lo")
            }
            Dist::Normal { mean, std_dev } => {
                check("mean", *mean, *mean >= 0.0, "must be >= 0")?;
                check("std_dev", *std_dev, *std_dev >= 0.0, "must be >= 0")
            }
            Dist::Exponential { mean } => check("mean", *mean, *mean > 0.0, "must be > 0"),
            Dist::Pareto { scale, shape } => {
                check("scale", *scale, *scale > 0.0, "must be > 0")?;
                check("shape", *shape, *shape > 0.0, "must be > 0")
            }
            Dist::Mixture(parts) => {
                let mut total = 0.0;
                for (w, d) in parts {
                    check("weight", *w, *w >= 0.0, "must be >= 0")?;
                    d.validate()?;
                    total += w;
                }
                if total > 0.0 && total.is_finite() {
                    Ok(())
                } else {
                    Err(DistError::EmptyMixture { total })
                }
            }
            Dist::Offset(c, d) => {
                check("offset", *c, *c >= 0.0, "must be >= 0")?;
                d.validate()
            }
            Dist::Capped(c, d) => {
                check("cap", *c, *c >= 0.0, "must be >= 0")?;
                d.validate()
            }
        }
    }

    /// One sample in milliseconds, never negative (invalid parameters are clamped rather than
    /// panicking; call [`validate`](Dist::validate) to reject them up front).
    pub fn sample(&self, rng: &mut ReplayRng) -> f64 {
        let x = match self {
            Dist::Constant(c) => *c,
            Dist::Uniform { lo, hi } => {
                if hi > lo {
                    rng.gen_range(*lo..*hi)
                } else {
                    *lo
                }
            }
            Dist::Normal { mean, std_dev } => mean + std_dev * standard_normal(rng),
            Dist::Exponential { mean } => -mean * open01(rng).ln(),
            Dist::Pareto { scale, shape } => scale / open01(rng).powf(1.0 / shape),
            Dist::Mixture(parts) => {
                let total: f64 = parts.iter().map(|(w, _)| w.max(0.0)).sum();
                let mut pick = rng.gen::<f64>() * total;
                let mut chosen = None;
                for (w, d) in parts {
                    chosen = Some(d);
                    pick -= w.max(0.0);
                    if pick < 0.0 {
                        break;
                    }
                }
                chosen.map_or(0.0, |d| d.sample(rng))
            }
            Dist::Offset(c, d) => c + d.sample(rng),
            Dist::Capped(c, d) => d.sample(rng).min(*c),
        };
        if x.is_finite() {
            x.max(0.0)
        } else {
            0.0
        }
    }

    /// One sample converted to whole microseconds.
    pub fn sample_micros(&self, rng: &mut ReplayRng) -> u64 {
        // Saturating float-to-int conversion: huge tails become u64::MAX / 2 at most.
        (self.sample(rng) * 1000.0)
            .round()
            .min((u64::MAX / 2) as f64) as u64
    }

    /// The distribution's mean in milliseconds, where finite (Pareto with `shape <= 1` is not).
    pub fn mean(&self) -> Option<f64> {
        match self {
            Dist::Constant(c) => Some(*c),
            Dist::Uniform { lo, hi } => Some((lo + hi) / 2.0),
            // Ignores the truncation at zero, which matters only when mean < ~3 std_dev.
            Dist::Normal { mean, .. } => Some(*mean),
            Dist::Exponential { mean } => Some(*mean),
            Dist::Pareto { scale, shape } => (*shape > 1.0).then(|| shape * scale / (shape - 1.0)),
            Dist::Mixture(parts) => {
                let total: f64 = parts.iter().map(|(w, _)| w).sum();
                let mut m = 0.0;
                for (w, d) in parts {
                    m += w / total * d.mean()?;
                }
                Some(m)
            }
            Dist::Offset(c, d) => d.mean().map(|m| m + c),
            Dist::Capped(..) => None,
        }
    }
}

/// A uniform sample in (0, 1]: safe for `ln` and `powf(1/shape)` of a divisor.
fn open01(rng: &mut ReplayRng) -> f64 {
    1.0 - rng.gen::<f64>()
}

/// Box–Muller: one standard normal sample (the second is discarded to keep sampling stateless).
fn standard_normal(rng: &mut ReplayRng) -> f64 {
    let u1 = open01(rng);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mean_of(d: &Dist, n: usize, seed: u64) -> f64 {
        let mut rng = ReplayRng::seed_from_u64(seed);
        (0..n).map(|_| d.sample(&mut rng)).sum::<f64>() / n as f64
    }

    #[test]
    fn constant_is_constant() {
        let mut rng = ReplayRng::seed_from_u64(1);
        assert!((0..100).all(|_| Dist::Constant(3.5).sample(&mut rng) == 3.5));
    }

    #[test]
    fn sample_means_match_the_formulas() {
        let cases = [
            Dist::Uniform { lo: 1.0, hi: 3.0 },
            Dist::Normal {
                mean: 10.0,
                std_dev: 2.0,
            },
            Dist::Exponential { mean: 4.0 },
            Dist::Pareto {
                scale: 1.0,
                shape: 3.0,
            },
            Dist::offset(
                2.0,
                Dist::mixture(vec![
                    (0.9, Dist::Constant(1.0)),
                    (0.1, Dist::Constant(11.0)),
                ]),
            ),
        ];
        for d in &cases {
            d.validate().unwrap();
            let want = d.mean().unwrap();
            let got = mean_of(d, 200_000, 42);
            assert!(
                (got - want).abs() < want * 0.03,
                "{d:?}: mean {got}, want {want}"
            );
        }
    }

    #[test]
    fn mixture_probabilities_hold() {
        let d = Dist::mixture(vec![(1.0, Dist::Constant(0.0)), (3.0, Dist::Constant(1.0))]);
        let share = mean_of(&d, 100_000, 3);
        assert!((share - 0.75).abs() < 0.01, "{share}");
    }

    #[test]
    fn samples_are_never_negative_and_respect_bounds() {
        let mut rng = ReplayRng::seed_from_u64(9);
        let n = Dist::Normal {
            mean: 0.1,
            std_dev: 5.0,
        };
        let p = Dist::Pareto {
            scale: 2.0,
            shape: 1.1,
        };
        let c = Dist::capped(50.0, p.clone());
        for _ in 0..10_000 {
            assert!(n.sample(&mut rng) >= 0.0);
            assert!(p.sample(&mut rng) >= 2.0);
            assert!(c.sample(&mut rng) <= 50.0);
        }
    }

    #[test]
    fn same_seed_same_samples() {
        let d = Dist::mixture(vec![
            (0.5, Dist::Exponential { mean: 1.0 }),
            (0.5, Dist::Uniform { lo: 0.0, hi: 9.0 }),
        ]);
        let mut a = ReplayRng::seed_from_u64(5);
        let mut b = ReplayRng::seed_from_u64(5);
        for _ in 0..1000 {
            assert_eq!(d.sample(&mut a).to_bits(), d.sample(&mut b).to_bits());
        }
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(Dist::Constant(-1.0).validate().is_err());
        assert!(Dist::Uniform { lo: 2.0, hi: 1.0 }.validate().is_err());
        assert!(Dist::Exponential { mean: 0.0 }.validate().is_err());
        assert!(Dist::Pareto {
            scale: 1.0,
            shape: f64::NAN
        }
        .validate()
        .is_err());
        assert!(matches!(
            Dist::mixture(vec![]).validate(),
            Err(DistError::EmptyMixture { .. })
        ));
    }

    #[quickcheck_macros::quickcheck]
    fn any_valid_uniform_stays_in_range(seed: u64, a: u16, b: u16) -> bool {
        let (lo, hi) = (f64::from(a.min(b)), f64::from(a.max(b)) + 1.0);
        let d = Dist::Uniform { lo, hi };
        let mut rng = ReplayRng::seed_from_u64(seed);
        (0..50).all(|_| {
            let x = d.sample(&mut rng);
            x >= lo && x <= hi
        })
    }
}
