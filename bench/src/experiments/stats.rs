//! Summary statistics: means with 95% confidence intervals over seeds, and percentiles.

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
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
    }
}
