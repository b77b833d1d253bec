//! The machine's random choices, drawn from its seeded ChaCha8 generator with arithmetic defined
//! here (not by a version of `rand`), so that a seed replays the same run on every platform.

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

/// Uniform in `[0, 1)` with 53 bits of precision.
pub(crate) fn unit_f64(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform in `0..n` (0 when `n` is 0), by Lemire's multiply-shift.
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// FNV-1a over what an id's `Hash` writes, integers taken little-endian: the same id mixes the
/// same value into the seed on every platform and every Rust release (std's hashers promise
/// neither).
pub(crate) struct IdHasher(u64);

impl IdHasher {
    pub(crate) fn new() -> Self {
        IdHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u16(&mut self, i: u16) {
        self.write(&i.to_le_bytes());
    }

    fn write_u32(&mut self, i: u32) {
        self.write(&i.to_le_bytes());
    }

    fn write_u64(&mut self, i: u64) {
        self.write(&i.to_le_bytes());
    }

    fn write_u128(&mut self, i: u128) {
        self.write(&i.to_le_bytes());
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// A uniformly chosen element, `None` if `items` is empty.
pub(crate) fn choose<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        return None;
    }
    items.get(below(rng, items.len()))
}

/// Fisher-Yates: every order equally likely.
pub(crate) fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    /// Pins the seeded stream: a change of generator, of its version or of these helpers fails
    /// here rather than as a replay that silently diverges.
    #[test]
    fn ids_hash_the_same_everywhere() {
        use std::hash::{Hash, Hasher};
        let hash = |id: &dyn Fn(&mut IdHasher)| {
            let mut h = IdHasher::new();
            id(&mut h);
            h.finish()
        };
        // FNV-1a of the bytes, computed apart (Python): 7 as 8 little-endian bytes; "node-a" and
        // the 0xff that str's Hash appends.
        assert_eq!(hash(&|h| 7u64.hash(h)), 0x4bd7_a317_074c_5b62);
        assert_eq!(hash(&|h| "node-a".hash(h)), 0x4b91_89dd_2d42_1544);
    }

    #[test]
    fn seeded_choices_are_pinned() {
        let mut rng = ChaCha8Rng::seed_from_u64(2012);
        let mut order: Vec<u32> = (0..8).collect();
        shuffle(&mut rng, &mut order);
        let picks: Vec<u32> = (0..4)
            .filter_map(|_| choose(&mut rng, &order).copied())
            .collect();
        let unit = unit_f64(&mut rng);
        assert_eq!(order, vec![3, 7, 4, 1, 0, 5, 6, 2]);
        assert_eq!(picks, vec![6, 4, 2, 5]);
        assert_eq!(unit, 0.7599089007309712);
    }
}
