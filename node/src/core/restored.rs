//! A member restarted on a store that went back: its data directory put back from an older
//! backup or snapshot, or a buffered store that lost its unsynced tail to a power loss. Nothing
//! in such a store is inconsistent, and before this module the node served as a full replica
//! with what it held: with R = 2, a read through it and a replica that missed a write returned
//! the old value, though the write was acknowledged by two of three (this node one of them).
//!
//! Only peers know the store is behind: they hold the node's last incarnation's gossip state,
//! its generation and version. The node records in its store how far its runs got
//! ([`REACHED_META`]: its gossip generation and version, every [`RECORD_STEP`] versions), and
//! at start it reads that record. A node restarted on a store that holds data, in a ring with
//! other members, answers no replica read ([`NodeCore::unsure`]) until a peer has told it what
//! it held of the node's earlier incarnations ([`dynamo_gossip::Gossip::earlier_incarnation`]:
//! in the node's first exchange with any peer), or [`UNSURE_ROUNDS`] gossip rounds have passed
//! (every peer down: it serves as it is, with a warning). A peer that knew it further than its
//! store records, by more than the record's step twice (a record may be one step late, and a
//! crash may take one write of it), shows the store went back: the node awaits every range it
//! replicates until anti-entropy with the other replicas shows it whole, as a node that lost
//! its disk does (see `fresh`). Such a peer is heeded whenever it tells, also after the doubt
//! ended. With anti-entropy off nothing would end the wait, and the node serves as it is.
//!
//! The record moves on only once the doubt has ended, so that a crash in the meantime leaves
//! the store's own account to the next start. A store from a version that kept no record is
//! judged by its generation alone (a peer that knew a later incarnation than the store
//! recorded): a backup of the same run then goes unseen. Nothing is seen after a restart of the
//! whole cluster (no peer remembers), nor of a backup taken within the record's step of the
//! node's last write.

use super::fresh::UNSURE_ROUNDS;
use super::storage::{StorageOp, Then};
use super::NodeCore;
use crate::store::{Store, StoreError};
use crate::types::Millis;

/// The store meta name of how far the node's runs got: its gossip generation and version, each
/// big-endian.
pub(crate) const REACHED_META: &str = "gossip-reached";

/// Gossip versions (about one a round, and one per change of the node's published state)
/// between two records of [`REACHED_META`].
pub(crate) const RECORD_STEP: u64 = 8;

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
}

impl Restored {
    /// For a node whose store recorded `reached` (or nothing: a store of an earlier version,
    /// whose last generation was `previous_generation`), in doubt if `doubt`. A new store
    /// (`fresh`) has nothing to go back to: `covered` is everything.
    pub(crate) fn new(
        reached: Option<(u64, u64)>,
        previous_generation: u64,
        new_store: bool,
        doubt: bool,
    ) -> Self {
        let covered = match reached {
            _ if new_store => (u64::MAX, u64::MAX),
            Some((generation, version)) => (
                generation,
                version.saturating_add(RECORD_STEP.saturating_mul(2)),
            ),
            None => (previous_generation, u64::MAX),
        };
        Restored {
            covered,
            doubt: doubt && !new_store,
            found: false,
            recorded: None,
        }
    }
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
    /// Ends a restarted node's doubt once a peer told what it knew of the node, and awaits
    /// every range the node replicates if a peer knew it further than its store (see the
    /// [module docs](self)). Cheap once the doubt is over.
    pub(crate) fn settle_restored(&mut self, now: Millis) {
        if self.restored.found {
            return;
        }
        let told = self.gossip.earlier_incarnation();
        if let Some(told) = told.filter(|&t| t > self.restored.covered) {
            self.restored.found = true;
            self.restored.doubt = false;
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
            return;
        }
        if !self.restored.doubt {
            return;
        }
        let alone = !self.view.members.iter().any(|&m| m != self.id);
        let waited = now
            >= self
                .view
                .booted
                .saturating_add(self.config.gossip_interval.saturating_mul(UNSURE_ROUNDS));
        if told.is_none() && !alone {
            if !waited {
                return;
            }
            tracing::warn!(
                node = self.id,
                "no peer said how far this node's last run got: serving as its store is"
            );
        }
        self.restored.doubt = false;
        if !self.view.leaving {
            self.claim(now);
        }
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
