//! The phi-accrual failure detector (Hayashibara et al., "The φ accrual failure detector", 2004).
//!
//! Each peer has a bounded window of heartbeat inter-arrival times. Suspicion `phi` grows with
//! the time since the last arrival: `phi = -log10(P(an arrival takes longer than that))`, under a
//! model of the inter-arrival distribution fitted to the window; `phi > threshold` marks the peer
//! down. Two models ([`PhiModel`]):
//!
//! - **Normal** (the paper's, in Akka's form): mean `m` and standard deviation `s` of the window,
//!   the mean shifted by an acceptable pause `p` and `s` floored by a minimum `s_min`, the normal
//!   tail through Akka's logistic approximation of its distribution function. With
//!   `y = (elapsed - m - p) / max(s, s_min)`, `phi = log10(1 + exp(y (1.5976 + 0.070566 y²)))`;
//!   phi 8 is `y = 5.23`, so a peer is suspected after `m + p + 5.23 max(s, s_min)` of silence.
//! - **Exponential** (Cassandra's approximation): `phi = log10(e) elapsed / m`, so phi 8 is
//!   `18.4 m` of silence whatever the spread.
//!
//! Gossiped heartbeats reach an observer one to a few rounds apart: in the crate's simulator
//! (100 nodes, 5% loss, 1-250 ms delay) the inter-arrival time has a mean of 1.8 rounds and a
//! standard deviation of 1.1, and the longest silence in a simulated hour was 10 to 11 rounds.
//! The exponential model at phi 8 waits about 18.4 × 1.8 = 33 rounds; the normal model with the
//! default pause of 6 rounds waits about 1.8 + 6 + 5.2 × 1.1 = 14.

use std::collections::VecDeque;
use std::f64::consts::{LN_10, LOG10_E};

use crate::config::{ms, Config, PhiModel};

/// The distribution phi is computed from, with its parameters in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Model {
    /// Normal inter-arrival times; see the module docs.
    Normal {
        /// Floor of the standard deviation (at least 1 ms).
        min_std_dev: f64,
        /// Added to the mean: silence that is never suspicious by itself.
        acceptable_pause: f64,
    },
    /// Exponential inter-arrival times; see the module docs.
    Exponential,
}

impl Model {
    /// The model a configuration asks for.
    pub(crate) fn from_config(config: &Config) -> Self {
        match config.phi_model {
            PhiModel::Normal => Model::Normal {
                min_std_dev: ms(config.effective_min_std_dev()).max(1) as f64,
                acceptable_pause: ms(config.effective_acceptable_pause()) as f64,
            },
            PhiModel::Exponential => Model::Exponential,
        }
    }
}

/// `-log10(1 - F(y))` for the standard normal distribution function `F`, with Akka's logistic
/// approximation `1 - F(y) ≈ 1 / (1 + exp(x))`, `x = y (1.5976 + 0.070566 y²)` (error below
/// 1.4e-4 on `F`). Written as a softplus, `log(1 + exp(x))`, so that it neither overflows nor
/// rounds to 0 or infinity far in either tail; increasing in `y`.
fn normal_phi(y: f64) -> f64 {
    let x = y * (1.5976 + 0.070566 * y * y);
    (x.max(0.0) + (-x.abs()).exp().ln_1p()) / LN_10
}

/// Heartbeat arrivals of one peer.
#[derive(Debug, Clone)]
pub(crate) struct ArrivalWindow {
    last: u64,
    intervals: VecDeque<u64>,
    sum: u64,
    /// Sum of the squared intervals. Wrapping arithmetic is exact as long as the true sum fits,
    /// which needs gaps below 2^64 / sqrt(capacity) ms; it only avoids a debug-build panic.
    sum_sq: u128,
    capacity: usize,
}

impl ArrivalWindow {
    /// A window that starts at `now` with a prior of two samples, one and three gossip intervals
    /// (mean two intervals, deviation one: about what gossip delivers), so that a peer never
    /// heard again is still suspected in bounded time and a young window does not take its
    /// first few, often regular, arrivals for the whole story. Real arrivals push the prior out.
    pub(crate) fn new(now: u64, interval_ms: u64, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let mut window = Self {
            last: now,
            intervals: VecDeque::with_capacity(capacity.min(16)),
            sum: 0,
            sum_sq: 0,
            capacity,
        };
        if capacity >= 2 {
            window.push(interval_ms);
            window.push(interval_ms.saturating_mul(3));
        } else {
            window.push(interval_ms.saturating_mul(2));
        }
        window
    }

    fn push(&mut self, gap: u64) {
        if self.intervals.len() >= self.capacity {
            if let Some(old) = self.intervals.pop_front() {
                self.sum -= old;
                self.sum_sq = self.sum_sq.wrapping_sub(u128::from(old) * u128::from(old));
            }
        }
        self.intervals.push_back(gap);
        self.sum += gap;
        self.sum_sq = self.sum_sq.wrapping_add(u128::from(gap) * u128::from(gap));
    }

    /// Records a heartbeat arrival; gaps longer than `max_sample_ms` are not learned.
    pub(crate) fn report(&mut self, now: u64, max_sample_ms: u64) {
        let gap = now.saturating_sub(self.last);
        self.last = now.max(self.last);
        if gap == 0 || gap > max_sample_ms {
            return;
        }
        self.push(gap);
    }

    /// The mean inter-arrival time in milliseconds.
    pub(crate) fn mean(&self) -> f64 {
        // The window is never empty: it starts with a prior and only evicts when full.
        self.sum as f64 / self.intervals.len().max(1) as f64
    }

    /// The (population) standard deviation of the inter-arrival times in milliseconds.
    pub(crate) fn std_dev(&self) -> f64 {
        let n = self.intervals.len().max(1) as f64;
        let mean = self.mean();
        (self.sum_sq as f64 / n - mean * mean).max(0.0).sqrt()
    }

    /// The suspicion level at `now` under `model`: 0 or more, finite, never decreasing in `now`
    /// until the next arrival.
    pub(crate) fn phi(&self, now: u64, model: Model) -> f64 {
        let elapsed = now.saturating_sub(self.last) as f64;
        match model {
            Model::Normal {
                min_std_dev,
                acceptable_pause,
            } => {
                let mean = self.mean() + acceptable_pause;
                let std_dev = self.std_dev().max(min_std_dev).max(1.0);
                normal_phi((elapsed - mean) / std_dev)
            }
            Model::Exponential => LOG10_E * elapsed / self.mean().max(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use quickcheck_macros::quickcheck;

    use super::*;

    const EXP: Model = Model::Exponential;

    fn normal(min_std_dev: f64, acceptable_pause: f64) -> Model {
        Model::Normal {
            min_std_dev,
            acceptable_pause,
        }
    }

    /// A full window of gaps alternating 800 and 1200 ms (mean 1000, deviation 200), the last
    /// arrival at `last`.
    fn alternating(last: u64) -> ArrivalWindow {
        let mut w = ArrivalWindow::new(0, 1_000, 100);
        let mut t = last - 100_000;
        w.last = t;
        for i in 0..100 {
            t += if i % 2 == 0 { 800 } else { 1_200 };
            w.report(t, 10_000);
        }
        assert_eq!(t, last);
        w
    }

    #[test]
    fn exponential_phi_eight_is_about_eighteen_means() {
        let mut w = ArrivalWindow::new(0, 1_000, 100);
        for t in 1..=50u64 {
            w.report(t * 1_000, 10_000);
        }
        assert!(w.mean() < 1_100.0);
        let last = 50_000;
        assert!(w.phi(last + 1_000, EXP) < 1.0);
        assert!(w.phi(last + 17_000, EXP) < 8.0);
        assert!(w.phi(last + 20_000, EXP) > 8.0);
    }

    #[test]
    fn mean_and_std_dev_of_the_window() {
        let w = alternating(200_000);
        assert!((w.mean() - 1_000.0).abs() < 1e-9);
        assert!((w.std_dev() - 200.0).abs() < 1e-9);
    }

    #[test]
    fn normal_phi_matches_hand_computed_values() {
        // y = 0: log10(1 + e^0) = log10 2. y = 1: x = 1.668166, log10(1 + e^x) = 0.79950 (the
        // exact normal tail gives -log10(0.158655) = 0.79952).
        assert!((normal_phi(0.0) - std::f64::consts::LOG10_2).abs() < 1e-12);
        assert!((normal_phi(1.0) - 0.799_50).abs() < 1e-5);
        // Far tails stay finite and accurate: x = 10 * (1.5976 + 7.0566) = 86.542.
        assert!((normal_phi(10.0) - 86.542 / LN_10).abs() < 1e-9);
        assert!(normal_phi(-40.0) >= 0.0 && normal_phi(-40.0) < 1e-12);
        assert!(normal_phi(1e6).is_finite());

        // On a window of mean 1000 and deviation 200, no pause: one deviation late is y = 1.
        let last = 200_000;
        let w = alternating(last);
        let m = normal(1.0, 0.0);
        assert!((w.phi(last + 1_000, m) - std::f64::consts::LOG10_2).abs() < 1e-9);
        assert!((w.phi(last + 1_200, m) - 0.799_50).abs() < 1e-5);
        // Phi 8 is y = 5.226: 1000 + 5.226 * 200 = 2045 ms of silence; a pause of 3 s moves it
        // by 3 s, and a floor of 400 ms on the deviation doubles the spread term.
        assert!(w.phi(last + 2_040, m) < 8.0 && w.phi(last + 2_050, m) > 8.0);
        let paused = normal(1.0, 3_000.0);
        assert!(w.phi(last + 5_040, paused) < 8.0 && w.phi(last + 5_050, paused) > 8.0);
        let floored = normal(400.0, 0.0);
        assert!(w.phi(last + 3_085, floored) < 8.0 && w.phi(last + 3_095, floored) > 8.0);
    }

    #[test]
    fn a_peer_never_heard_again_is_suspected_in_bounded_time() {
        // The prior alone: mean 2 intervals, deviation 1. At 500 ms, a 3 s pause and phi 8:
        // 1000 + 3000 + 5.226 * 500 = 6613 ms.
        let w = ArrivalWindow::new(0, 500, 100);
        assert!((w.mean() - 1_000.0).abs() < 1e-9);
        assert!((w.std_dev() - 500.0).abs() < 1e-9);
        let m = normal(125.0, 3_000.0);
        assert!(w.phi(6_600, m) < 8.0 && w.phi(6_630, m) > 8.0);
        // A window of one sample keeps the mean of two intervals.
        let one = ArrivalWindow::new(0, 500, 1);
        assert!((one.mean() - 1_000.0).abs() < 1e-9);
    }

    #[test]
    fn window_is_bounded_and_long_gaps_are_not_learned() {
        let mut w = ArrivalWindow::new(0, 1_000, 4);
        for t in 1..=10u64 {
            w.report(t * 500, 10_000);
        }
        assert_eq!(w.intervals.len(), 4);
        assert!((w.mean() - 500.0).abs() < f64::EPSILON);
        assert!(w.std_dev() < 1e-9);
        w.report(100_000, 10_000);
        assert!((w.mean() - 500.0).abs() < f64::EPSILON);
        assert!(w.phi(100_000, EXP) < f64::EPSILON);
        assert!(w.phi(100_000, normal(100.0, 0.0)) < 1e-6);
    }

    /// Arbitrary gaps (bounded to 100 s) fed into a window of arbitrary size.
    fn window_of(gaps: &[u32], capacity: u8) -> ArrivalWindow {
        let mut w = ArrivalWindow::new(0, 1_000, usize::from(capacity));
        let mut t = 0u64;
        for g in gaps {
            t += u64::from(g % 100_000);
            w.report(t, 50_000);
        }
        w
    }

    #[quickcheck]
    fn phi_never_decreases_with_silence(gaps: Vec<u32>, capacity: u8, a: u32, b: u32) -> bool {
        let w = window_of(&gaps, capacity);
        let (early, late) = (w.last + u64::from(a.min(b)), w.last + u64::from(a.max(b)));
        [EXP, normal(1.0, 0.0), normal(250.0, 3_000.0)]
            .into_iter()
            .all(|m| {
                let (p, q) = (w.phi(early, m), w.phi(late, m));
                p.is_finite() && p >= 0.0 && p <= q
            })
    }

    #[quickcheck]
    fn running_sums_match_the_window(gaps: Vec<u32>, capacity: u8) -> bool {
        let w = window_of(&gaps, capacity);
        let n = w.intervals.len() as f64;
        let mean = w.intervals.iter().map(|&g| g as f64).sum::<f64>() / n;
        let var = w
            .intervals
            .iter()
            .map(|&g| (g as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        w.intervals.len() <= usize::from(capacity).max(1)
            && (w.mean() - mean).abs() <= 1e-6 * mean.max(1.0)
            && (w.std_dev() - var.sqrt()).abs() <= 1e-3 * var.sqrt().max(1.0)
    }

    #[quickcheck]
    fn a_pause_and_a_floor_only_delay_suspicion(gaps: Vec<u32>, capacity: u8, at: u32) -> bool {
        let w = window_of(&gaps, capacity);
        let now = w.last + u64::from(at);
        let base = w.phi(now, normal(1.0, 0.0));
        // A floor can raise phi before the mean (a wider bell is less sure arrivals came early)
        // but never past the mean, where suspicion matters.
        let beyond_mean = u64::from(at) as f64 > w.mean();
        w.phi(now, normal(1.0, 3_000.0)) <= base
            && (!beyond_mean || w.phi(now, normal(5_000.0, 0.0)) <= base)
    }
}
