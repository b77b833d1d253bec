//! Retry delays: exponential backoff with seeded jitter, shared by hint delivery and transfers.

use std::time::Duration;

/// How long to wait before retrying after consecutive failures.
///
/// The delay after the `n`-th consecutive failure is `initial * 2^(n-1)`, capped at `max`, then
/// shortened by a random fraction of at most `jitter` (drawn from the owner's seed) so that many
/// fallbacks retrying against the same recovered node do not stay in lockstep.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound on the delay.
    pub max: Duration,
    /// Fraction in `0.0..=1.0` by which a delay may be randomly shortened.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 1 s doubling up to 5 min, 20 % jitter.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// Delay before the next attempt after `failures` consecutive failures (zero for none).
    pub(crate) fn delay(&self, failures: u32, rng: &mut SplitMix) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        let raw = self.initial.saturating_mul(factor).min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return raw;
        }
        raw.mul_f64(1.0 - jitter * rng.next_f64())
    }
}

/// SplitMix64: a tiny, stable, seedable generator, so that replays from a seed do not depend on
/// the version of an external RNG crate.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps_without_jitter() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            jitter: 0.0,
        };
        let mut rng = SplitMix::new(1);
        let got: Vec<u128> = (0..7).map(|n| b.delay(n, &mut rng).as_millis()).collect();
        assert_eq!(got, vec![0, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX, &mut rng), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_only_shortens() {
        let b = Backoff::default();
        let mut rng = SplitMix::new(7);
        for n in 1..20 {
            let d = b.delay(n, &mut rng);
            let raw = Backoff { jitter: 0.0, ..b }.delay(n, &mut rng);
            assert!(d <= raw && d >= raw.mul_f64(0.8), "{d:?} vs {raw:?}");
        }
    }
}
