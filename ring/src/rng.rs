//! Strategy 1's random tokens: ChaCha8 seeded from the strategy's seed.
//!
//! ChaCha8's stream is fixed by its specification, so the tokens a seed produces do not change
//! with the platform or a dependency's version: the same inputs give the same ring on any
//! machine. A serialized ring carries only the number of words drawn (the seed is in its
//! configuration), a single integer as before.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRng(ChaCha8Rng);

impl TokenRng {
    pub(crate) fn new(seed: u64) -> Self {
        TokenRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// The generator of `seed` after `words` 32-bit words were drawn.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn resume(seed: u64, words: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_word_pos(u128::from(words));
        TokenRng(rng)
    }

    /// 32-bit words drawn so far.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn words(&self) -> u64 {
        u64::try_from(self.0.get_word_pos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn next_u128(&mut self) -> u128 {
        (u128::from(self.0.next_u64()) << 64) | u128::from(self.0.next_u64())
    }
}
