//! Reaping tombstones: a deleted key is removed only when every one of its N replicas holds
//! exactly its tombstone, and only after a grace period.
//!
//! The first primary of a key checks, once the tombstone is older than the grace period, with a
//! get that must hear from all N primaries (strict, R = N). If every replica answered with the same
//! tombstone-only set, it asks them all to reap; each removes the key only if it still holds that
//! very tombstone. The grace period outlasts the hints (which live at most half of it), so no
//! older version can come back from a fallback once the tombstone is gone; a replica that missed
//! the reap keeps its tombstone, and anti-entropy may copy it back, which only delays reaping.
//!
//! Nor may a copy kept by a former owner: after a ring change, a node hands the partitions it no
//! longer replicates over by ownership transfer, which takes as long as the new owners take to be
//! reachable, with no bound. Every node publishes in gossip the digest of the ring it uses and the
//! partitions it still hands over (`membership::HANDOFF_KEY`); the reaper checks no key of a
//! partition some member still hands over, and none while some member uses another ring (it may
//! not know yet what it must hand over) or, being in the ring, published nothing.

use std::time::Duration;

use dynamo_quorum::{plan, GetCoordinator, GetOutcome, GetReply, Mode, RequestOptions};

use super::coordinator::{Origin, Pending};
use super::NodeCore;
use crate::message::PeerMessage;
use crate::store::Store;
use crate::types::{Clock, Key, Millis, NodeId, Sibs};

/// Most reap checks started per tick.
const REAP_BATCH: usize = 64;

/// When the newest event of a tombstone-only set happened, or `None` if the set holds a value.
pub(crate) fn tombstone_time(siblings: &Sibs) -> Option<Millis> {
    if !siblings.is_tombstone_only() {
        return None;
    }
    siblings.entries().iter().map(|e| e.timestamp).max()
}

/// How often the reaper looks for old tombstones: a quarter of the grace period, within 0.1-60 s.
pub(crate) fn reap_interval(grace: Option<Millis>) -> Option<Millis> {
    grace.map(|g| (g / 4).clamp(100, 60_000))
}

impl<S: Store> NodeCore<S> {
    /// Starts reap checks for old tombstones of keys this node is the first primary of.
    pub(crate) fn start_reaps(&mut self, now: Millis) {
        let Some(grace) = self.config.tombstone_grace else {
            return;
        };
        // A partition a former owner still hands over (or any, while the members disagree on
        // the ring) may still bring older versions to the primaries.
        let Some(pending) = self.handoffs_pending() else {
            return;
        };
        let due: Vec<Key> = self
            .tombstones
            .iter()
            .filter(|(_, &written)| written.saturating_add(grace) <= now)
            .map(|(k, _)| k.clone())
            .filter(|k| !self.reaping.contains(k))
            .filter(|k| !pending.contains(&self.partition_of(k)))
            .filter(|k| {
                self.ring
                    .preference_list(k)
                    .primaries()
                    .next()
                    .is_some_and(|&first| first == self.id)
            })
            .take(REAP_BATCH)
            .collect();
        for key in due {
            let n = self.config.n;
            let timeout = Duration::from_millis(self.config.request_timeout);
            let Ok(options) = RequestOptions::new(n, n, 1, timeout) else {
                return;
            };
            let options = options.with_mode(Mode::Strict);
            let plan = plan(
                self.ring
                    .preference_list(&key)
                    .map(|r| (*r.node, r.is_primary())),
                |n| self.is_up(*n),
                n,
                Mode::Strict,
            );
            if !plan.unreachable.is_empty() {
                continue;
            }
            if let Ok(coord) = GetCoordinator::new(options, plan, now) {
                let req = self.next_request_id();
                self.reaping.insert(key.clone());
                self.pending.insert(
                    req,
                    Pending::Get {
                        origin: Origin::Reap,
                        key,
                        started: now,
                        coord,
                    },
                );
                self.pump(now, req);
            }
        }
    }

    /// The outcome of a reap check: reap everywhere if all N replicas hold the same tombstone.
    pub(crate) fn reap_decision(&mut self, key: &[u8], outcome: &GetOutcome<NodeId, Sibs>) {
        self.reaping.remove(key);
        let n = self.config.n;
        let agreed = outcome.result.is_ok()
            && outcome.siblings.is_tombstone_only()
            && outcome.answers.len() >= n
            && outcome.answers.iter().all(|a| match &a.reply {
                GetReply::Found(s) => {
                    s.is_tombstone_only()
                        && s.covers(&outcome.siblings)
                        && outcome.siblings.covers(s)
                }
                _ => false,
            });
        if !agreed {
            return;
        }
        let clock = outcome.siblings.context();
        let replicas: Vec<NodeId> = self
            .ring
            .preference_list(key)
            .primaries()
            .copied()
            .collect();
        for node in replicas {
            if node == self.id {
                self.reap(key, &clock);
            } else {
                self.transmits.push_back((
                    node,
                    PeerMessage::Reap {
                        key: key.to_vec(),
                        clock: clock.clone(),
                    },
                ));
            }
        }
    }

    /// Removes `key` if it still holds exactly the tombstone with context `clock`.
    pub(crate) fn reap(&mut self, key: &[u8], clock: &Clock) {
        let Some(current) = self.local(key) else {
            return;
        };
        if !current.is_tombstone_only()
            || current.context().compare(clock) != dynamo_vclock::Causality::Equal
        {
            return;
        }
        if self.store.remove(key).is_err() {
            return;
        }
        let p = self.partition_of(key);
        if let Some(digest) = self.index[p].remove(key) {
            self.trees[p].remove(key, &digest);
        }
        self.tombstones.remove(key);
        self.stats.counters.tombstones_reaped += 1;
    }
}
