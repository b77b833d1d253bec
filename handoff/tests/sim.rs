//! A tiny seeded network for the property tests: loss, random delay (hence reordering) and
//! duplication, in virtual time.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The crate's generator, enough for test randomness.
pub struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent / 100`.
    pub fn chance(&mut self, percent: u8) -> bool {
        self.below(100) < u64::from(percent)
    }
}

/// Messages in flight, each with its arrival time.
pub struct Network<M> {
    pub loss: u8,
    pub duplicate: u8,
    pub max_delay: u64,
    queue: Vec<(u64, u64, M)>,
    serial: u64,
}

impl<M: Clone> Network<M> {
    pub fn new(loss: u8, duplicate: u8, max_delay: u64) -> Self {
        Network {
            loss,
            duplicate,
            max_delay,
            queue: Vec::new(),
            serial: 0,
        }
    }

    pub fn send(&mut self, rng: &mut Rng, now: u64, msg: M) {
        let copies = if rng.chance(self.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            if rng.chance(self.loss) {
                continue;
            }
            let at = now + 1 + rng.below(self.max_delay.max(1));
            self.serial += 1;
            self.queue.push((at, self.serial, msg.clone()));
        }
    }

    /// When the next message arrives.
    pub fn next_arrival(&self) -> Option<u64> {
        self.queue.iter().map(|(at, _, _)| *at).min()
    }

    /// Takes the next message due at or before `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<M> {
        let (i, _) = self
            .queue
            .iter()
            .enumerate()
            .filter(|(_, (at, _, _))| *at <= now)
            .min_by_key(|(_, (at, serial, _))| (*at, *serial))?;
        Some(self.queue.swap_remove(i).2)
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// From now on, no loss or duplication (the network has healed).
    pub fn heal(&mut self) {
        self.loss = 0;
        self.duplicate = 0;
    }
}
