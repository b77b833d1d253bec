//! Delay injected into the messages a node sends to its peers, for experiments on one machine.
//!
//! `tc netem` is not always at hand (containers, CI machines), so the runtime can hold each
//! outgoing peer message for a drawn delay before it joins the link's queue. Messages to one peer
//! may then overtake each other, as they may on a real network between different connections; the
//! protocol does not rely on their order. Clients' connections are not delayed.

use std::time::Duration;

use crate::types::ReplayRng;
use rand::{Rng, SeedableRng};

/// The delay of each message sent to a peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkDelay {
    /// The same delay for every message.
    Constant(Duration),
    /// Exponentially distributed delays with this mean.
    Exponential(Duration),
}

/// Draws [`LinkDelay`]s from a seeded generator.
#[derive(Debug)]
pub(crate) struct DelaySource {
    delay: LinkDelay,
    rng: ReplayRng,
}

impl DelaySource {
    pub(crate) fn new(delay: LinkDelay, seed: u64) -> Self {
        DelaySource {
            delay,
            rng: ReplayRng::seed_from_u64(seed),
        }
    }

    /// The next message's delay.
    pub(crate) fn draw(&mut self) -> Duration {
        match self.delay {
            LinkDelay::Constant(d) => d,
            LinkDelay::Exponential(mean) => {
                // 1 - U is in (0, 1]: its logarithm is finite.
                let u: f64 = self.rng.gen();
                mean.mul_f64(-(1.0 - u).ln())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_delays_have_their_mean() {
        let mut source = DelaySource::new(LinkDelay::Exponential(Duration::from_millis(2)), 7);
        let n = 20_000;
        let total: Duration = (0..n).map(|_| source.draw()).sum();
        let mean = total.as_secs_f64() * 1e3 / f64::from(n);
        assert!((mean - 2.0).abs() < 0.1, "mean {mean} ms");
    }

    #[test]
    fn constant_delays_are_constant() {
        let d = Duration::from_micros(1500);
        let mut source = DelaySource::new(LinkDelay::Constant(d), 1);
        assert!((0..10).all(|_| source.draw() == d));
    }
}
