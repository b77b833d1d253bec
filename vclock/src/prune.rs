//! Pruning: bounding a clock's size by forgetting its oldest entries, and reporting what was lost.
//!
//! A clock grows by one entry per actor that ever coordinated a write of the key. With server
//! actors that is bounded by the preference list plus fallbacks, but after failures and membership
//! changes it keeps growing, so the paper (section 4.4) and Riak truncate it.
//!
//! # What pruning can do wrong
//!
//! Forgetting an entry forgets part of a version's history. Compared with a version whose clock
//! still has that entry, the pruned one may:
//!
//! - look **concurrent** although it descends the other: harmless, the client sees an extra sibling
//!   and resolves it on its next put;
//! - look **dominated** although it is newer: when the pruned entry was the one that made it newer
//!   (for example the actor with the latest event had a lagging wall clock, so its entry looked the
//!   oldest). The newer version is then discarded by reconciliation: a **lost update**.
//!
//! This crate does not hide either: [`VClock::prune`] returns a [`PruneReport`] listing every entry it
//! removed, so a caller can log, count, or refuse. Both cases are shown in the crate's tests
//! (`tests/prune.rs`).

use core::time::Duration;

use crate::{Entry, VClock};

/// Default threshold of the paper's policy: "say 10" entries.
pub const PAPER_MAX_ENTRIES: usize = 10;

/// When and what to prune from a clock. Ages are [`Duration`]s, measured on the caller's
/// millisecond timestamps (see the crate docs on time).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum PrunePolicy {
    /// Dynamo paper, section 4.4: while the clock has more than `max_entries` entries, remove the
    /// one with the oldest timestamp.
    Paper {
        /// Entries kept at most (default [`PAPER_MAX_ENTRIES`] = 10).
        max_entries: usize,
    },
    /// Riak (`riak_kv` `vclock:prune/3`), entries considered oldest first: never prune a clock of
    /// at most `small` entries, nor an entry younger than `young`; otherwise drop the oldest entry
    /// while the clock has more than `big` entries or that entry is older than `old`.
    Riak {
        /// `small_vclock`, default 50 entries.
        small: usize,
        /// `big_vclock`, default 50 entries.
        big: usize,
        /// `young_vclock`, default 20 s.
        young: Duration,
        /// `old_vclock`, default 1 day.
        old: Duration,
    },
    /// Never prune.
    Never,
}

impl PrunePolicy {
    /// The paper's policy with its threshold of 10 entries.
    #[must_use]
    pub fn paper() -> Self {
        Self::Paper {
            max_entries: PAPER_MAX_ENTRIES,
        }
    }

    /// Riak's policy with Riak's default bucket properties.
    #[must_use]
    pub fn riak() -> Self {
        Self::Riak {
            small: 50,
            big: 50,
            young: Duration::from_secs(20),
            old: Duration::from_secs(86_400),
        }
    }
}

impl Default for PrunePolicy {
    /// The paper's policy, threshold 10 (the project's documented default).
    fn default() -> Self {
        Self::paper()
    }
}

/// What a prune removed. Empty when nothing was pruned.
///
/// Every removed entry is history forgotten: see the [module docs](crate::prune) for how that can
/// turn a newer version into a sibling or, at worst, a discarded one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PruneReport<A> {
    /// The entries removed, oldest first.
    pub removed: Vec<Entry<A>>,
    /// Versions of a sibling set dropped because, after pruning, another version dominated them,
    /// counting only those whose value (or tombstone) no surviving version holds (always 0 for a
    /// single clock). Nonzero means pruning caused a possible lost update.
    pub versions_dropped: usize,
}

impl<A> Default for PruneReport<A> {
    fn default() -> Self {
        Self {
            removed: Vec::new(),
            versions_dropped: 0,
        }
    }
}

impl<A> PruneReport<A> {
    /// Whether nothing was removed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.versions_dropped == 0
    }

    /// Appends another report (used when pruning several clocks).
    pub fn absorb(&mut self, other: Self) {
        self.removed.extend(other.removed);
        self.versions_dropped += other.versions_dropped;
    }
}

impl<A: Ord + Clone> VClock<A> {
    /// Prunes the clock according to `policy` at time `now` (milliseconds, same base as the
    /// timestamps given to [`increment`](VClock::increment)) and reports the removed entries.
    ///
    /// "Oldest" is the smallest `(timestamp, actor)`, so two replicas pruning the same clock remove
    /// the same entries. A timestamp in the future of `now` counts as age 0.
    pub fn prune(&mut self, policy: &PrunePolicy, now: u64) -> PruneReport<A> {
        let mut order: Vec<(u64, A)> = self
            .entries()
            .map(|e| (e.timestamp, e.actor.clone()))
            .collect();
        order.sort();
        let len = order.len();
        let drop = match *policy {
            PrunePolicy::Never => 0,
            PrunePolicy::Paper { max_entries } => len.saturating_sub(max_entries),
            PrunePolicy::Riak {
                small,
                big,
                young,
                old,
            } => {
                let ms = |span: Duration| u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
                let (young_ms, old_ms) = (ms(young), ms(old));
                let mut n = 0;
                for (ts, _) in &order {
                    let remaining = len - n;
                    let age = now.saturating_sub(*ts);
                    if remaining <= small || age < young_ms || !(remaining > big || age > old_ms) {
                        break;
                    }
                    n += 1;
                }
                n
            }
        };
        let mut report = PruneReport::default();
        if drop == 0 {
            return report;
        }
        let doomed: Vec<(u64, A)> = order.into_iter().take(drop).collect();
        let mut removed: Vec<Entry<A>> = Vec::with_capacity(drop);
        self.retain(|e| {
            let gone = doomed
                .binary_search(&(e.timestamp, e.actor.clone()))
                .is_ok();
            if gone {
                removed.push(e.clone());
            }
            !gone
        });
        removed.sort_by(|a, b| (a.timestamp, &a.actor).cmp(&(b.timestamp, &b.actor)));
        report.removed = removed;
        report
    }
}
