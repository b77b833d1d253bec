//! Summary statistics: means with 95% confidence intervals over seeds, proportions with
//! intervals that stay within [0, 1], and percentiles.

/// Two-sided 95% Student t critical values for 1..=30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// A mean over independent runs (one per seed) with the half-width of its 95% confidence
/// interval (Student t). With one run the half-width is 0: there is no spread to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Mean over runs.
    pub mean: f64,
    /// Half-width of the 95% confidence interval.
    pub ci: f64,
    /// Number of runs.
    pub runs: usize,
}

impl Estimate {
    /// The estimate of a set of per-seed values.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                mean: f64::NAN,
                ci: 0.0,
                runs: 0,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Self {
                mean,
                ci: 0.0,
                runs: 1,
            };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let t = T95.get(n - 2).copied().unwrap_or(1.96);
        Self {
            mean,
            ci: t * (var / n as f64).sqrt(),
            runs: n,
        }
    }

    /// `mean ± ci` with the given number of decimals.
    pub fn show(&self, decimals: usize) -> String {
        if self.runs > 1 {
            format!("{:.*} ± {:.*}", decimals, self.mean, decimals, self.ci)
        } else {
            format!("{:.*}", decimals, self.mean)
        }
    }

    /// As a percentage: `mean% ± ci` (points) with the given number of decimals.
    pub fn pct(&self, decimals: usize) -> String {
        if self.runs > 1 {
            format!(
                "{:.*}% ± {:.*}",
                decimals,
                self.mean * 100.0,
                decimals,
                self.ci * 100.0
            )
        } else {
            format!("{:.*}%", decimals, self.mean * 100.0)
        }
    }
}

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_964;

/// The Wilson score interval (95%) of `successes` out of `trials`: within [0, 1], and not of
/// zero width at 0% or 100%. `(0, 1)` when there are no trials.
pub fn wilson(successes: u64, trials: u64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    // At 0% and 100% the interval ends exactly at 0 and 1 (rounding would leave a trace).
    let lo = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if successes >= trials {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (lo, hi)
}

/// A proportion pooled over seeds, with a 95% interval: the Wilson score interval of the pooled
/// counts, widened where the seeds disagree more than counting noise explains (the Student t
/// interval of the per-seed proportions, when wider: events within one simulated run are not
/// independent), and clipped to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proportion {
    /// Pooled proportion.
    pub p: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// Pooled successes.
    pub successes: u64,
    /// Pooled trials.
    pub trials: u64,
}

impl Proportion {
    /// From per-seed `(successes, trials)`.
    pub fn of(counts: &[(u64, u64)]) -> Self {
        let successes: u64 = counts.iter().map(|c| c.0).sum();
        let trials: u64 = counts.iter().map(|c| c.1).sum();
        let p = if trials == 0 {
            f64::NAN
        } else {
            successes as f64 / trials as f64
        };
        let (mut lo, mut hi) = wilson(successes, trials);
        let rates: Vec<f64> = counts
            .iter()
            .filter(|c| c.1 > 0)
            .map(|c| c.0 as f64 / c.1 as f64)
            .collect();
        if rates.len() > 1 {
            let t = Estimate::of(&rates);
            lo = lo.min((p - t.ci).max(0.0));
            hi = hi.max((p + t.ci).min(1.0));
        }
        Self {
            p,
            lo,
            hi,
            successes,
            trials,
        }
    }

    /// As a percentage with its interval: `12.34% [11.90, 12.80]`.
    pub fn pct(&self, decimals: usize) -> String {
        format!(
            "{:.*}% [{:.*}, {:.*}]",
            decimals,
            self.p * 100.0,
            decimals,
            self.lo * 100.0,
            decimals,
            self.hi * 100.0
        )
    }

    /// As a fraction with its interval: `0.1234 [0.1190, 0.1280]`.
    pub fn frac(&self, decimals: usize) -> String {
        format!(
            "{:.*} [{:.*}, {:.*}]",
            decimals, self.p, decimals, self.lo, decimals, self.hi
        )
    }

    /// A plot point at `x`, scaled by `scale` (100 for percent).
    pub fn point(&self, x: f64, scale: f64) -> super::plot::Pt {
        super::plot::Pt::interval(x, self.p * scale, self.lo * scale, self.hi * scale)
    }
}

/// The `q`-quantile (0..=1) of `sorted` by nearest rank; NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// Arithmetic mean; NaN when empty.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_of_constant_has_zero_width() {
        let e = Estimate::of(&[2.0, 2.0, 2.0]);
        assert_eq!(e.mean, 2.0);
        assert_eq!(e.ci, 0.0);
    }

    #[test]
    fn estimate_uses_student_t() {
        let e = Estimate::of(&[1.0, 3.0]);
        assert!((e.mean - 2.0).abs() < 1e-12);
        // sd = sqrt(2), se = 1, t(1) = 12.706
        assert!((e.ci - 12.706).abs() < 1e-9);
    }

    #[test]
    fn wilson_stays_in_the_unit_interval_and_is_never_empty() {
        let (lo, hi) = wilson(0, 1000);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.001 && hi < 0.01, "{hi}");
        let (lo, hi) = wilson(1000, 1000);
        assert!(lo < 1.0 && lo > 0.99 && hi == 1.0);
        let (lo, hi) = wilson(50, 100);
        assert!((lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3);
    }

    #[test]
    fn proportions_pool_and_widen_to_the_seed_spread() {
        let calm = Proportion::of(&[(10, 100), (10, 100)]);
        assert!((calm.p - 0.1).abs() < 1e-12);
        let (wl, wh) = wilson(20, 200);
        assert_eq!((calm.lo, calm.hi), (wl, wh));
        let wild = Proportion::of(&[(0, 100), (20, 100)]);
        assert!(wild.lo == 0.0 && wild.hi > wh);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
    }
}
