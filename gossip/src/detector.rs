//! The phi-accrual failure detector (Hayashibara et al.), in Cassandra's form.
//!
//! Each peer has a bounded window of heartbeat inter-arrival times. Suspicion grows with the time
//! since the last arrival: `phi = elapsed / mean * log10(e)`, the exponential-distribution
//! approximation Cassandra uses. `phi > threshold` marks the peer down, so at threshold 8 a peer is
//! suspected after about `18.4 × mean` inter-arrival time of silence.

use std::collections::VecDeque;

/// `log10(e)`: turns `elapsed / mean` into phi for exponentially distributed arrivals.
const PHI_FACTOR: f64 = std::f64::consts::LOG10_E;

/// Heartbeat arrivals of one peer.
#[derive(Debug, Clone)]
pub(crate) struct ArrivalWindow {
    last: u64,
    intervals: VecDeque<u64>,
    sum: u64,
    capacity: usize,
}

impl ArrivalWindow {
    /// A window that starts at `now` with one sample of `initial_ms` (two gossip intervals), so
    /// that a peer never heard again is still suspected in bounded time.
    pub(crate) fn new(now: u64, initial_ms: u64, capacity: usize) -> Self {
        let mut intervals = VecDeque::with_capacity(capacity.min(16));
        intervals.push_back(initial_ms);
        Self {
            last: now,
            intervals,
            sum: initial_ms,
            capacity: capacity.max(1),
        }
    }

    /// Records a heartbeat arrival; gaps longer than `max_sample_ms` are not learned.
    pub(crate) fn report(&mut self, now: u64, max_sample_ms: u64) {
        let gap = now.saturating_sub(self.last);
        self.last = now.max(self.last);
        if gap == 0 || gap > max_sample_ms {
            return;
        }
        if self.intervals.len() >= self.capacity {
            if let Some(old) = self.intervals.pop_front() {
                self.sum -= old;
            }
        }
        self.intervals.push_back(gap);
        self.sum += gap;
    }

    /// The mean inter-arrival time in milliseconds.
    pub(crate) fn mean(&self) -> f64 {
        // The window is never empty: it starts with one sample and only evicts when full.
        self.sum as f64 / self.intervals.len().max(1) as f64
    }

    /// The suspicion level at `now`.
    pub(crate) fn phi(&self, now: u64) -> f64 {
        let elapsed = now.saturating_sub(self.last) as f64;
        let mean = self.mean().max(1.0);
        PHI_FACTOR * elapsed / mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_grows_with_silence_and_threshold_eight_is_about_eighteen_means() {
        let mut w = ArrivalWindow::new(0, 2_000, 100);
        for t in 1..=50u64 {
            w.report(t * 1_000, 10_000);
        }
        assert!(w.mean() < 1_050.0);
        let last = 50_000;
        assert!(w.phi(last + 1_000) < 1.0);
        assert!(w.phi(last + 17_000) < 8.0);
        assert!(w.phi(last + 20_000) > 8.0);
    }

    #[test]
    fn window_is_bounded_and_long_gaps_are_not_learned() {
        let mut w = ArrivalWindow::new(0, 2_000, 4);
        for t in 1..=10u64 {
            w.report(t * 500, 10_000);
        }
        assert_eq!(w.intervals.len(), 4);
        assert!((w.mean() - 500.0).abs() < f64::EPSILON);
        w.report(100_000, 10_000);
        assert!((w.mean() - 500.0).abs() < f64::EPSILON);
        assert!(w.phi(100_000) < f64::EPSILON);
    }
}
