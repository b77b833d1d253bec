//! [`SplitMix64`]: the crate's one source of randomness, pinned so that a seed gives the same
//! predictions on every platform and in every version of this crate's dependencies.

/// Steele, Lea and Flood's SplitMix64 (the generator Java's `SplittableRandom` and the seeding of
/// xoshiro use). Small, fast, statistically sound for Monte Carlo, and defined bit for bit here: a
/// prediction pinned in a test stays pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform draw in `0..bound` (`bound` > 0; 0 when it is 0), by Lemire's multiply-shift
    /// (bias below 2^-64 · bound, irrelevant here).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}
