//! Retry delays: exponential backoff with seeded jitter, shared by hint delivery and transfers.

use core::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

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
    pub(crate) fn delay(&self, failures: u32, rng: &mut ChaCha8Rng) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        let raw = self.initial.saturating_mul(factor).min(self.max);
        // A jitter that is not a number counts as none (`clamp` keeps NaN).
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        if jitter == 0.0 {
            return raw;
        }
        raw.mul_f64(1.0 - jitter * unit_f64(rng))
    }
}

/// Uniform in `[0, 1)` with 53 bits of precision, from the top bits of one draw.
pub(crate) fn unit_f64(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn doubles_and_caps_without_jitter() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            jitter: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let got: Vec<u128> = (0..7).map(|n| b.delay(n, &mut rng).as_millis()).collect();
        assert_eq!(got, vec![0, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX, &mut rng), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_only_shortens() {
        let b = Backoff::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in 1..20 {
            let d = b.delay(n, &mut rng);
            let raw = Backoff { jitter: 0.0, ..b }.delay(n, &mut rng);
            assert!(d <= raw && d >= raw.mul_f64(0.8), "{d:?} vs {raw:?}");
        }
    }

    /// Pins the seeded stream: a change of generator or of its version fails here, not in a
    /// replay.
    #[test]
    fn seeded_jitter_is_pinned() {
        let b = Backoff::default();
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let got: Vec<u128> = (1..=4).map(|n| b.delay(n, &mut rng).as_micros()).collect();
        assert_eq!(got, vec![863_620, 1_619_889, 3_657_986, 6_996_223]);
    }
}
