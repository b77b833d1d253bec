//! Which committed writes no fsync has covered yet, per key: what lets a durable node answer a
//! read of a key nobody wrote lately while an fsync of other keys is still running.
//!
//! Every commit has a number (its generation). A sync job made after commit `g` covers every
//! commit up to `g`, and says so when its fsync has returned ([`Unsynced::covered_by`]). A key
//! is unsynced while its last commit is above the last generation a finished job covered. Hint
//! records carry no key the store can see, so a hint written and not yet covered makes every
//! key unsynced (hints are rare: only while a replica is down).
//!
//! Keys are remembered by a 64-bit hash, not copied: no allocation per write. Two keys with one
//! hash only make a synced key look unsynced, which costs a wait, never a wrong answer.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use crate::types::Key;

/// Commits not yet covered by a finished fsync. See the [module docs](self).
#[derive(Debug)]
pub(super) struct Unsynced {
    /// The hash of each key committed and not known to be covered, with the generation of its
    /// last commit.
    written: HashMap<u64, u64>,
    /// Hashes the keys (seeded at random).
    keys: foldhash::fast::RandomState,
    /// The generation of the last commit that changed the hints (0: none since open).
    hints: u64,
    /// The last commit's generation.
    generation: u64,
    /// The generation covered by the last fsync that returned; set by the sync jobs' threads.
    synced: Arc<AtomicU64>,
    /// `synced` when `written` was last pruned.
    pruned: u64,
}

impl Unsynced {
    pub(super) fn new() -> Self {
        Unsynced {
            written: HashMap::new(),
            keys: foldhash::fast::RandomState::default(),
            hints: 0,
            generation: 0,
            synced: Arc::new(AtomicU64::new(0)),
            pruned: 0,
        }
    }

    /// Records a commit of `keys` (and of hint records when `hints`); forgets keys that a
    /// finished fsync has covered since the last call.
    pub(super) fn committed<'a>(&mut self, keys: impl IntoIterator<Item = &'a Key>, hints: bool) {
        let synced = self.synced.load(Ordering::Acquire);
        if synced > self.pruned {
            self.written.retain(|_, g| *g > synced);
            self.pruned = synced;
        }
        self.generation += 1;
        let g = self.generation;
        for key in keys {
            self.written.insert(self.keys.hash_one(key.as_slice()), g);
        }
        if hints {
            self.hints = g;
        }
    }

    /// What a sync job made now calls once its fsync has returned: every commit so far is then
    /// durable.
    pub(super) fn covered_by(&self) -> impl FnOnce() + Send + 'static {
        let synced = self.synced.clone();
        let g = self.generation;
        move || {
            synced.fetch_max(g, Ordering::AcqRel);
        }
    }

    /// Whether a commit of `key` (or of any hint) may not be durable yet.
    pub(super) fn contains(&self, key: &[u8]) -> bool {
        let synced = self.synced.load(Ordering::Acquire);
        self.hints > synced
            || self
                .written
                .get(&self.keys.hash_one(key))
                .is_some_and(|&g| g > synced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn key(k: u8) -> Key {
        vec![k]
    }

    #[test]
    fn a_key_is_unsynced_from_its_commit_until_a_job_made_after_it_returns() {
        let mut u = Unsynced::new();
        assert!(!u.contains(&key(1)));
        u.committed([&key(1)], false);
        assert!(u.contains(&key(1)));
        assert!(!u.contains(&key(2)));
        let first = u.covered_by();
        u.committed([&key(2)], false);
        first();
        assert!(!u.contains(&key(1)), "covered by the first job");
        assert!(
            u.contains(&key(2)),
            "committed after the first job was made"
        );
        // Written again after the job was made: unsynced again, whatever the job covered.
        u.committed([&key(1)], false);
        assert!(u.contains(&key(1)));
        u.covered_by()();
        assert!(!u.contains(&key(1)) && !u.contains(&key(2)));
    }

    #[test]
    fn an_uncovered_hint_makes_every_key_unsynced() {
        let mut u = Unsynced::new();
        u.committed([], true);
        assert!(u.contains(&key(9)));
        u.covered_by()();
        assert!(!u.contains(&key(9)));
    }

    #[test]
    fn jobs_that_return_out_of_order_never_move_the_covered_generation_back() {
        let mut u = Unsynced::new();
        u.committed([&key(1)], false);
        let old = u.covered_by();
        u.committed([&key(2)], false);
        let new = u.covered_by();
        new();
        old();
        assert!(!u.contains(&key(2)));
    }

    quickcheck! {
        /// Against a model that remembers every commit: a key is unsynced exactly when a commit
        /// of it (or of a hint) came after the newest job that has returned was made.
        fn agrees_with_a_model(ops: Vec<(u8, u8)>) -> bool {
            let mut u = Unsynced::new();
            let mut commits: Vec<(Key, bool)> = Vec::new();
            let mut jobs: Vec<(usize, Box<dyn FnOnce() + Send>)> = Vec::new();
            let mut covered = 0usize;
            for (op, k) in ops {
                match op % 4 {
                    0 | 1 => {
                        let hint = op % 8 == 1;
                        u.committed([&key(k % 8)], hint);
                        commits.push((key(k % 8), hint));
                    }
                    2 => jobs.push((commits.len(), Box::new(u.covered_by()))),
                    _ if !jobs.is_empty() => {
                        let (upto, job) = jobs.remove(k as usize % jobs.len());
                        job();
                        covered = covered.max(upto);
                    }
                    _ => {}
                }
                let uncovered = &commits[covered..];
                for probe in 0..8 {
                    let expected = uncovered.iter().any(|(c, h)| *h || c == &key(probe));
                    if u.contains(&key(probe)) != expected {
                        return false;
                    }
                }
            }
            true
        }
    }
}
