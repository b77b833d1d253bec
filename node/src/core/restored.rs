//! A member restarted on a store that went back: its data directory put back from an older
//! backup or snapshot, or a buffered store that lost its unsynced tail to a power loss. Nothing
//! in such a store is inconsistent, and before this module the node served as a full replica
//! with what it held: with R = 2, a read through it and a replica that missed a write returned
//! the old value, though the write was acknowledged by two of three (this node one of them).
//!
//! Only peers know the store is behind: they hold the node's last incarnation's gossip state,
//! its generation and version. The node records in its store how far its runs got
//! ([`REACHED_META`]: its gossip generation and version, every [`RECORD_STEP`] versions), and
//! at start it reads that record. Every node that hears a peer restart (gossip's
//! [`Restarted`](dynamo_gossip::Event::Restarted) event, which carries what it held of the
//! earlier incarnation) publishes that for a while in its gossip entry [`EARLIER_KEY`] (a peer
//! it first hears, `(0, 0)`: it knew none); a restarted node also hears it in its exchanges
//! ([`dynamo_gossip::Gossip::earlier_incarnation`]). A peer's view of the node is replaced as
//! soon as it hears of the new incarnation, often from a third node, so the entry is what
//! keeps it: the first peer the node hears from may have been cut off during its last run and
//! know little. A node restarted on a store that had a run before, in a ring with other
//! members, answers no replica read ([`NodeCore::unsure`]) for [`MIN_DOUBT_ROUNDS`] gossip
//! rounds at least, and until every other member alive (its heartbeat moved since the node
//! started) has published what it knew, or [`UNSURE_ROUNDS`]
//! gossip rounds have passed (a member alive but silent, one of a version that does not
//! publish: it then serves as it is, with a warning). A peer that knew it further than its store records, by more than the record's
//! step twice (a record may be one step late, and a crash may take one write of it), shows the
//! store went back: the node awaits every range it replicates until anti-entropy with the
//! other replicas shows it whole, as a node that lost its disk does (see `fresh`). Such a peer
//! is heeded whenever it tells within [`TELL_ROUNDS`] rounds of the start, also after the doubt
//! ended. With anti-entropy off nothing would end the wait, and the node serves as it is. The
//! restore goes unseen if every peer that knew the node's last run is away in its first rounds.
//!
//! The record moves on only once the doubt has ended, so that a crash in the meantime leaves
//! the store's own account to the next start; the generation each start began is recorded too
//! ([`STARTED_META`]), so that a run that ended in its doubt, which peers may know, is not
//! taken for one the store lacks. A store from a version that kept no record is judged by its
//! generation alone (a peer that knew a later incarnation than the store recorded): a backup of
//! the same run then goes unseen, and so it does when peers of that version tell (they send
//! the generation they hold, not the version, and publish nothing). Nothing is seen after a restart of the whole
//! cluster (no peer remembers), nor of a backup taken within about three record steps of the
//! node's last run (two steps of margin, and peers' view of the node lags a few rounds). A store
//! found behind holds no partition whole any more (a hand-over it ends says nothing of being
//! done), and awaits no range it alone replicates (nobody could refill it).
//!
//! A backup older than the tombstone grace can bring deleted values back: a tombstone reaped
//! since it was taken no longer supersedes the old value it holds, and anti-entropy spreads it
//! (as Cassandra's `gc_grace_seconds` says of its backups). The node cannot tell which of its
//! values those are: empty the data directory instead of restoring such a backup.

use super::fresh::UNSURE_ROUNDS;
use super::storage::{StorageOp, Then};
use super::NodeCore;
use crate::store::{Store, StoreError};
use crate::types::{Millis, NodeId};

/// The store meta name of how far the node's runs got: its gossip generation and version, each
/// big-endian.
pub(crate) const REACHED_META: &str = "gossip-reached";

/// The store meta name of the gossip generation the node's last run started in (big-endian),
/// written at every start: a run that ended before it recorded how far it got (in its doubt)
/// leaves it past the record.
pub(crate) const STARTED_META: &str = "gossip-started";

/// Gossip versions (about one a round, and one per change of the node's published state)
/// between two records of [`REACHED_META`].
pub(crate) const RECORD_STEP: u64 = 8;

/// The gossip entry in which every node publishes the restarts it heard lately: for each, the
/// node, the generation it restarted in, and the generation and version this node held of its
/// earlier incarnation (`(0, 0)`: none, a node first heard), 32 bytes big-endian each.
pub(crate) const EARLIER_KEY: &str = "earlier";

/// Gossip rounds a node publishes a restart it heard, and a restarted node reads what its
/// peers published of it.
pub(crate) const TELL_ROUNDS: u64 = 2 * UNSURE_ROUNDS;

/// Gossip rounds a restarted node's doubt lasts at least (with another member): its peers
/// hear of the restart, publish what they knew, and their heartbeats show them alive.
const MIN_DOUBT_ROUNDS: u64 = 3;

/// Restarts one node publishes at most (see [`NodeCore::publish_earlier`]).
const MAX_HEARD: usize = 128;

/// A restart heard (see [`Restored::heard`]): the generation, what this node held of the
/// earlier incarnation, and when.
type Heard = (u64, (u64, u64), Millis);

/// What a restarted node knows of how far its store is behind its last run.
#[derive(Debug, Clone)]
pub(crate) struct Restored {
    /// The latest (generation, version) of an earlier incarnation a peer may know of this node
    /// with its store current: one beyond (in that order) shows the store went back.
    covered: (u64, u64),
    /// Restarted on a store with data, in a ring with other members, and no peer has told yet
    /// what it knew of the node: it answers no replica read.
    pub(crate) doubt: bool,
    /// The store was found behind this run (it is acted on once).
    found: bool,
    /// The (generation, version) last recorded this run.
    recorded: Option<(u64, u64)>,
    /// The generation this run started in: peers' entries of a restart in it, or in one
    /// gossip raised it to, are of this run.
    generation: u64,
    /// When it last looked at what peers told.
    pub(crate) looked: Millis,
    /// The restarts this node heard lately, by node: the generation, what it held of the
    /// earlier incarnation, and when (see [`EARLIER_KEY`]).
    heard: std::collections::BTreeMap<NodeId, Heard>,
    /// `heard` changed since last published.
    heard_changed: bool,
    /// When `heard` was last looked over for restarts heard too long ago.
    expired: Millis,
    /// In the doubt, each member's heartbeat when first seen: one that moved since is alive.
    first_beats: std::collections::BTreeMap<NodeId, u64>,
}

impl Restored {
    /// For a node whose store recorded `reached` and that its last run `started` in a
    /// generation (or nothing: a store of an earlier version, whose last generation was
    /// `previous_generation`), starting in `generation`, in doubt if `doubt`. A last run that
    /// started past the record ended before it recorded anything (it crashed in its doubt):
    /// how far it got is not known, and any version of it is covered. A new store (no
    /// generation before: `fresh` sees to it) has nothing to go back to: `covered` is
    /// everything. A store still unsure in `fresh`'s sense is no new one if it had a run
    /// before (a backup taken while it was unsure).
    pub(crate) fn new(
        reached: Option<(u64, u64)>,
        started: Option<u64>,
        previous_generation: u64,
        generation: u64,
        doubt: bool,
    ) -> Self {
        let new_store = previous_generation == 0;
        let covered = match reached {
            _ if new_store => (u64::MAX, u64::MAX),
            Some((generation, version)) if started.is_none_or(|s| s <= generation) => (
                generation,
                version.saturating_add(RECORD_STEP.saturating_mul(2)),
            ),
            // (The stored generation is at least the last start's.)
            _ => (previous_generation.max(started.unwrap_or(0)), u64::MAX),
        };
        Restored {
            covered,
            doubt: doubt && !new_store,
            found: false,
            recorded: None,
            generation,
            looked: 0,
            heard: std::collections::BTreeMap::new(),
            heard_changed: false,
            expired: 0,
            first_beats: std::collections::BTreeMap::new(),
        }
    }
}

/// The entries of an [`EARLIER_KEY`] value: (node, the generation it restarted in, what the
/// publisher held of its earlier incarnation); a damaged tail is ignored.
fn read_earlier(bytes: &[u8]) -> impl Iterator<Item = (NodeId, u64, (u64, u64))> + '_ {
    bytes.chunks_exact(32).map(|c| {
        let n = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&c[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        (n(0), n(1), (n(2), n(3)))
    })
}

/// Reads [`REACHED_META`] from `store`: `None` if it holds none, or a damaged one (the node is
/// then judged by its generation alone, with a warning).
pub(crate) fn read_reached<S: Store>(store: &S) -> Result<Option<(u64, u64)>, StoreError> {
    let Some(bytes) = store.get_meta(REACHED_META)? else {
        return Ok(None);
    };
    let decoded = bytes
        .split_first_chunk::<8>()
        .and_then(|(g, rest)| Some((g, <[u8; 8]>::try_from(rest).ok()?)))
        .map(|(g, v)| (u64::from_be_bytes(*g), u64::from_be_bytes(v)));
    if decoded.is_none() {
        tracing::warn!(
            len = bytes.len(),
            "the record of how far this node's last run got is damaged: judging the store by \
             its generation alone"
        );
    }
    Ok(decoded)
}

impl NodeCore {
    /// Ends a restarted node's doubt once its peers told what they knew of the node, and awaits
    /// every range the node replicates if one knew it further than its store (see the
    /// [module docs](self)). Looks four times a gossip round in its doubt, then once a round
    /// until [`TELL_ROUNDS`] rounds after the start.
    pub(crate) fn settle_restored(&mut self, now: Millis) {
        if self.restored.found {
            return;
        }
        let round = self.config.gossip_interval.max(1);
        let since_boot = now.saturating_sub(self.view.booted);
        let every = if self.restored.doubt {
            round / 4
        } else {
            round
        };
        if (!self.restored.doubt && since_boot > round.saturating_mul(TELL_ROUNDS))
            || (self.restored.looked > 0 && now < self.restored.looked.saturating_add(every))
        {
            return;
        }
        self.restored.looked = now;
        // What peers told: in their gossip entries of the restarts they heard, and in the
        // exchanges with this node (one that did not publish its entry yet, or of a version
        // that does not).
        // A member that did not tell is waited for if it is alive: its heartbeat moved since
        // this node first saw it (a member down since before the start is deemed up until the
        // failure detector's grace, and would hold the doubt as long).
        let mut told = self.gossip.earlier_incarnation();
        let mut silent = false;
        let members: Vec<NodeId> = self.view.members.iter().copied().collect();
        for m in members {
            if m == self.id {
                continue;
            }
            if let Some(t) = self.told_by(m) {
                told = Some(told.map_or(t, |u| u.max(t)));
                continue;
            }
            let Some(beat) = self.gossip.node_state(&m).map(|s| s.heartbeat()) else {
                continue;
            };
            let first = *self.restored.first_beats.entry(m).or_insert(beat);
            silent |= beat > first && self.is_up(m);
        }
        if let Some(told) = told.filter(|&t| t > self.restored.covered) {
            self.restored.found = true;
            // What it handed over whole it no longer holds whole: a hand-over it ends says
            // nothing of being done (its receiver awaits anti-entropy too), nor does one it
            // ended in its doubt, nor again one it said.
            self.transfers.whole.clear();
            self.transfers.unacknowledged.clear();
            if self.config.sync_interval.is_some() {
                tracing::warn!(
                    node = self.id,
                    told = ?told,
                    recorded = ?self.restored.covered,
                    "a peer knew this node's last run further than its store records (the store \
                     went back: restored from an older copy?): it answers no read of its ranges \
                     until anti-entropy has refilled them"
                );
                self.await_refill();
            } else {
                tracing::warn!(
                    node = self.id,
                    told = ?told,
                    recorded = ?self.restored.covered,
                    "a peer knew this node's last run further than its store records (the store \
                     went back: restored from an older copy?); with anti-entropy off only read \
                     repair refills it, and its answers count as they are"
                );
            }
        } else if !self.restored.doubt {
            return;
        }
        let alone = !self.view.members.iter().any(|&m| m != self.id);
        let waited = since_boot >= round.saturating_mul(UNSURE_ROUNDS);
        // (Members get a few rounds to hear of the restart, publish, and show alive.)
        let early = since_boot < round.saturating_mul(MIN_DOUBT_ROUNDS);
        if !self.restored.found && !alone && (told.is_none() || silent || early) {
            if !waited {
                return;
            }
            tracing::warn!(
                node = self.id,
                "not every peer said how far this node's last run got: serving as its store is"
            );
        }
        self.restored.doubt = false;
        self.restored.first_beats.clear();
        if !self.view.leaving {
            self.claim(now);
        }
    }

    /// What member `m` published that it knew of this node's earlier incarnation when it heard
    /// this one (see [`EARLIER_KEY`]), if it did.
    fn told_by(&self, m: NodeId) -> Option<(u64, u64)> {
        let entry = self.gossip.node_state(&m)?.app_state(EARLIER_KEY)?;
        read_earlier(entry)
            .find(|&(id, generation, _)| id == self.id && generation >= self.restored.generation)
            .map(|(_, _, replaced)| replaced)
    }

    /// Peer `id` restarted in `generation`, or joined this node's view in it (`replaced` is
    /// then `(0, 0)`), and this node held `replaced` of its earlier incarnation: published in
    /// [`EARLIER_KEY`] for the node to read (see the [module docs](self)).
    pub(crate) fn heard_restart(
        &mut self,
        now: Millis,
        id: NodeId,
        generation: u64,
        replaced: (u64, u64),
    ) {
        self.restored.heard.insert(id, (generation, replaced, now));
        self.restored.heard_changed = true;
    }

    /// Publishes the restarts heard lately ([`EARLIER_KEY`]), dropping those heard more than
    /// [`TELL_ROUNDS`] rounds ago (looked over once a round); [`MAX_HEARD`] of them, restarts
    /// before nodes first heard (a node's own start hears every peer first), the most recent
    /// first.
    pub(crate) fn publish_earlier(&mut self, now: Millis) {
        let round = self.config.gossip_interval.max(1);
        if !self.restored.heard.is_empty() && now >= self.restored.expired.saturating_add(round) {
            self.restored.expired = now;
            let keep = round.saturating_mul(TELL_ROUNDS);
            let before = self.restored.heard.len();
            self.restored
                .heard
                .retain(|_, &mut (_, _, at)| now.saturating_sub(at) <= keep);
            self.restored.heard_changed |= self.restored.heard.len() != before;
        }
        if !self.restored.heard_changed {
            return;
        }
        self.restored.heard_changed = false;
        let mut heard: Vec<(&NodeId, &Heard)> = self.restored.heard.iter().collect();
        heard.sort_by_key(|(_, &(_, replaced, at))| (replaced == (0, 0), std::cmp::Reverse(at)));
        let mut value = Vec::with_capacity(heard.len().min(MAX_HEARD) * 32);
        for (&id, &(generation, (g, v), _)) in heard.into_iter().take(MAX_HEARD) {
            for n in [id, generation, g, v] {
                value.extend_from_slice(&n.to_be_bytes());
            }
        }
        let _ = self.gossip.set_app_state(EARLIER_KEY, value);
    }

    /// The op that records how far this run got, every [`RECORD_STEP`] versions once the
    /// doubt is over (after the partitions a store found behind awaits are persisted: `drain`
    /// runs it after them).
    pub(crate) fn persist_reached(&mut self) {
        if self.restored.doubt {
            return;
        }
        let local = self.gossip.local_state();
        let reached = (local.generation(), local.version());
        let due = self.restored.recorded.is_none_or(|(generation, version)| {
            reached.0 != generation || reached.1 >= version.saturating_add(RECORD_STEP)
        });
        if !due {
            return;
        }
        self.restored.recorded = Some(reached);
        let mut value = reached.0.to_be_bytes().to_vec();
        value.extend_from_slice(&reached.1.to_be_bytes());
        self.store_op(
            StorageOp::PutMeta {
                name: REACHED_META.into(),
                value,
                sync: false,
            },
            Then::Meta,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behind(r: &Restored, told: (u64, u64)) -> bool {
        told > r.covered
    }

    #[test]
    fn a_peer_ahead_of_the_record_by_more_than_two_steps_shows_the_store_went_back() {
        // The last run started in generation 50 and recorded version 100.
        let r = Restored::new(Some((50, 100)), Some(50), 57, 58, true);
        assert!(r.doubt);
        // Peers lag, and the record may be a step late and lose one write.
        assert!(!behind(&r, (50, 100 + 2 * RECORD_STEP)));
        assert!(!behind(&r, (40, 10_000)), "a peer that knew an older run");
        assert!(!behind(&r, (0, 0)), "a peer that knew none");
        assert!(behind(&r, (50, 101 + 2 * RECORD_STEP)));
        assert!(behind(&r, (51, 0)), "a run after the record's");
    }

    #[test]
    fn a_last_run_that_recorded_nothing_is_covered_whole() {
        // Generation 60 started after the record of 50 and ended in its doubt: peers may know
        // it, the store not how far it got.
        let r = Restored::new(Some((50, 100)), Some(60), 60, 61, true);
        assert!(!behind(&r, (60, 1_000)));
        assert!(behind(&r, (61, 0)));
    }

    #[test]
    fn a_store_without_a_record_is_judged_by_its_generation() {
        let r = Restored::new(None, None, 70, 71, true);
        assert!(!behind(&r, (70, u64::MAX)));
        assert!(behind(&r, (71, 0)));
    }

    /// No false alarm: whatever a store recorded, a peer that knew its last run no further
    /// than the record plus the margin (or any run before) never shows it went back; one that
    /// knew a later run always does.
    #[quickcheck_macros::quickcheck]
    fn only_a_peer_past_the_record_shows_the_store_went_back(
        generation: u32,
        version: u32,
        lag: u8,
        older: u32,
        later: u32,
    ) -> bool {
        let (g, v) = (u64::from(generation) + 1, u64::from(version));
        let r = Restored::new(Some((g, v)), Some(g), g, g + 1, true);
        let within = v.saturating_sub(u64::from(lag)) + 2 * RECORD_STEP;
        !behind(&r, (g, within))
            && !behind(&r, (g.saturating_sub(u64::from(older) + 1), u64::MAX))
            && behind(&r, (g + 1 + u64::from(later), 0))
            && behind(&r, (g, v + 2 * RECORD_STEP + 1))
    }

    #[test]
    fn a_new_store_has_nothing_to_go_back_to() {
        let r = Restored::new(None, None, 0, 1, true);
        assert!(!r.doubt);
        assert!(!behind(&r, (u64::MAX - 1, u64::MAX)));
    }
}
