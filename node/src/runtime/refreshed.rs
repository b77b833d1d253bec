//! A value recomputed at most once per period: the driver's staleness prediction, a Monte Carlo
//! of milliseconds that every `status`, `/status`, `/members`, `/metrics` and `/stats` asked for.
//! Computed afresh for each, a client pipelining status requests held the driver, and every get
//! and put behind it, for that long per request.

use crate::types::Millis;

/// The last value computed, and when.
#[derive(Debug)]
pub(super) struct Refreshed<T> {
    period: Millis,
    last: Option<(Millis, T)>,
}

impl<T: Clone> Refreshed<T> {
    /// Recomputes at most once per `period` ms.
    pub(super) fn new(period: Millis) -> Self {
        Refreshed { period, last: None }
    }

    /// The value computed at most `period` ms before `now`, or a new one from `compute`.
    pub(super) fn get(&mut self, now: Millis, compute: impl FnOnce() -> T) -> T {
        match &self.last {
            Some((at, value)) if now >= *at && now - *at < self.period => value.clone(),
            _ => {
                let value = compute();
                self.last = Some((now, value.clone()));
                value
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_once_per_period() {
        let mut cached = Refreshed::new(1_000);
        let computed = std::cell::Cell::new(0);
        let mut at = |now| {
            cached.get(now, || {
                computed.set(computed.get() + 1);
                now
            })
        };
        // A thousand asks within a period: one computation, its value every time.
        assert!((0..1_000).all(|t| at(5_000 + t) == 5_000));
        assert_eq!(at(6_000), 6_000);
        assert_eq!(at(6_999), 6_000);
        // A clock that went back does not keep a value from the future.
        assert_eq!(at(10), 10);
        assert_eq!(computed.get(), 3);
    }
}
