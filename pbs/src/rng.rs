//! How the crate draws from a generator: uniform floats and indices defined here, bit for bit,
//! on top of any [`RngCore`]. Runs use [`ChaCha8Rng`](rand_chacha::ChaCha8Rng) seeded from the
//! caller's seed, whose stream is fixed by its specification: a prediction pinned in a test stays
//! pinned on every platform and with every version of the dependencies.

use rand_core::RngCore;

/// A uniform draw in `[0, 1)` with 53 bits of precision.
pub(crate) fn unit_f64<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform draw in `0..bound` (0 when `bound` is 0), by Lemire's multiply-shift (bias below
/// 2^-64 · bound, irrelevant here).
pub(crate) fn below<R: RngCore + ?Sized>(rng: &mut R, bound: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(bound)) >> 64) as u64
}
