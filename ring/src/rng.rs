//! Strategy 1's random tokens: ChaCha8 seeded from the strategy's seed.
//!
//! ChaCha8's stream is fixed by its specification, so the tokens a seed produces do not change
//! with the platform or a dependency's version: the same inputs give the same ring on any
//! machine. A serialized ring carries only the number of words drawn (the seed is in its
//! configuration), a single integer as before.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

#[derive(Clone)]
pub(crate) struct TokenRng(ChaCha8Rng);

/// What determines the words still to come: the seed and how many were drawn.
impl std::fmt::Debug for TokenRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRng")
            .field("seed", &self.0.get_seed())
            .field("words", &self.0.get_word_pos())
            .finish()
    }
}

/// Two generators are equal when they will draw the same words: same seed, same stream, same
/// position (ChaCha8Rng's own equality also compares how much of its block buffer is filled,
/// which differs between a generator that drew its way to a position and one set there).
impl PartialEq for TokenRng {
    fn eq(&self, other: &Self) -> bool {
        self.0.get_seed() == other.0.get_seed()
            && self.0.get_stream() == other.0.get_stream()
            && self.0.get_word_pos() == other.0.get_word_pos()
    }
}

impl Eq for TokenRng {}

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
