//! [`Transfers`]: the state of ownership transfer, both ways. Outgoing: the sessions running (one
//! per partition and receiver), the ones waiting for a retry, what was persisted of them and their
//! checkpoints. Incoming: the partitions this node became a replica of and has not received yet.
//! It emits the storage ops that persist it; `transfer` drives it from the node.

use std::collections::{BTreeMap, BTreeSet};

use dynamo_handoff::{TransferId, TransferSession};

use super::storage::StorageOp;
use crate::types::{Key, NodeId};

/// One outgoing transfer.
pub(crate) struct TransferRun {
    pub(crate) session: TransferSession<NodeId, Key, Vec<u8>>,
    pub(crate) partition: usize,
    /// A write reached the partition since this pass started.
    pub(crate) dirty: bool,
    /// The partition's keys in byte order, taken at the pass's first batch: the pass pages
    /// through them (the receiver takes keys in increasing order only).
    pub(crate) keys: Option<Vec<Key>>,
}

/// The store meta name of the transfers pending (partition, receiver), so that a restart resumes
/// them rather than sending each partition it holds but no longer replicates to every replica.
pub(crate) const TRANSFERS_KEY: &str = "transfers";
/// The store meta name of the partitions this node awaits (`Transfers::incoming`), so that a
/// restart does not answer reads of partitions it never received.
pub(crate) const INCOMING_KEY: &str = "incoming";
/// The store meta name of the partitions this node hands over whole (`Transfers::whole`), so
/// that a restart in the middle of a hand-over still says it is done at the end.
pub(crate) const WHOLE_KEY: &str = "handing-whole";
/// The store meta name of the partitions awaited whose wait no hand-over ends (`since` at
/// `u64::MAX`: a node on a new store refilled by anti-entropy alone, see `fresh`), so that a
/// restart does not take a hand-over resumed from before the store was lost for the whole range.
pub(crate) const REFILL_KEY: &str = "incoming-refill";

/// The version byte of a stored transfer checkpoint: `1 · the last key the receiver
/// acknowledged`. An empty value is no checkpoint.
pub(crate) const CHECKPOINT_VERSION: u8 = 1;

/// The store meta name of a transfer's checkpoint.
pub(crate) fn checkpoint_name(id: TransferId) -> String {
    format!("transfer-{}", id.0)
}

/// The stored form of a checkpoint at `key`.
pub(crate) fn encode_checkpoint(key: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + key.len());
    value.push(CHECKPOINT_VERSION);
    value.extend_from_slice(key);
    value
}

/// Ownership transfers out of and into this node. See the [module docs](self).
#[derive(Default)]
pub(crate) struct Transfers {
    /// Outgoing transfers by id.
    pub(crate) runs: BTreeMap<u64, TransferRun>,
    /// Outgoing transfers whose store read failed, to start again at the next tick.
    pub(crate) retry: BTreeSet<(usize, NodeId)>,
    /// The transfers (partition, receiver) pending as last persisted.
    persisted: BTreeSet<(usize, NodeId)>,
    /// The persisted checkpoint of each transfer that has one, by transfer id.
    checkpoints: BTreeMap<u64, Key>,
    /// Partitions this node became a replica of and has not received yet: it answers no reads
    /// for them (so it does not count toward R) until a transfer or an anti-entropy session
    /// brings them.
    pub(crate) incoming: BTreeSet<usize>,
    /// `incoming` as last persisted.
    incoming_persisted: BTreeSet<usize>,
    /// The ring version under which this node began awaiting each partition it awaits, this
    /// run (not kept over a restart: any version then, but for `u64::MAX`, kept as
    /// [`REFILL_KEY`]): a hand-over done under an older ring (a late or repeated
    /// `TransferDone`, from before a ring took the partition away and the next gave it back)
    /// ends no wait.
    pub(crate) since: BTreeMap<usize, u64>,
    /// The partitions awaited with `since` at `u64::MAX`, as last persisted.
    refill_persisted: BTreeSet<usize>,
    /// Partitions this node stopped replicating while it held them whole (it did not await
    /// them) and still hands over. A sender says `TransferDone` only for these and for the
    /// partitions it replicates and does not await: a node that never received a partition (a
    /// hand-over to it held up when the next ring took the partition away again), or that holds
    /// stray keys of one, sends what it has and says nothing, and its receiver keeps awaiting
    /// the partition until a sender that held it whole, or anti-entropy with a replica that does
    /// not await it, lifts the wait.
    pub(crate) whole: BTreeSet<usize>,
    /// `whole` as last persisted.
    whole_persisted: BTreeSet<usize>,
    /// For each partition awaited, the replicas an anti-entropy session found equal to this
    /// node since its ring last changed: the wait is lifted once every other replica that does
    /// not await the partition is among them (one replica may have missed writes).
    pub(crate) equal: BTreeMap<usize, BTreeSet<NodeId>>,
    /// Partitions whose transfer to this node completed under a ring version it has not adopted
    /// yet, with that version: not awaited once it adopts it.
    pub(super) done_early: BTreeMap<usize, u64>,
    /// When to look again at partitions held but not replicated, after a transfer batch for one
    /// was kept by a node that is not leaving (see [`FOREIGN_RECHECK`]).
    pub(crate) foreign_check: Option<crate::types::Millis>,
    /// Sessions started this incarnation (see [`Transfers::next_session_id`]).
    sessions: u64,
    /// `TransferDone`s said and not acknowledged, by (partition, receiver): the ring version
    /// each named and when it was last said. Each is said again every [`DONE_AGAIN`] until its
    /// receiver acknowledges it, or this node's ring no longer makes it a replica of the
    /// partition. Kept in memory: a sender's restart forgets them, and anti-entropy then ends
    /// the receiver's wait.
    pub(crate) unacknowledged: BTreeMap<(usize, NodeId), (u64, crate::types::Millis)>,
}

/// How often a `TransferDone` not acknowledged is said again.
pub(crate) const DONE_AGAIN: crate::types::Millis = 2_000;

/// How long a node that is not leaving keeps a transfer batch for a partition it does not
/// replicate before it hands the partition over (`NodeCore::transfer_kept`). Its ring may be the
/// older one, about to give it the partition (gossip spreads a ring in a few rounds); or the
/// newer one, which took the partition from it while a sender on the older ring still streamed
/// it here: then nothing else would move it on, the sender drops its copy once acknowledged,
/// and the partition stays where no read, repair or reap looks (and its handoff entry holds
/// every tombstone of it).
pub(crate) const FOREIGN_RECHECK: crate::types::Millis = 30_000;

/// The op that writes partition set `set` under meta name `name`, if it differs from
/// `persisted` (which it then becomes).
fn persist_set(
    name: &str,
    set: &BTreeSet<usize>,
    persisted: &mut BTreeSet<usize>,
) -> Option<StorageOp> {
    if set == persisted {
        return None;
    }
    persisted.clone_from(set);
    let list: Vec<usize> = set.iter().copied().collect();
    Some(StorageOp::PutMeta {
        name: name.into(),
        value: rmp_serde::to_vec(&list).unwrap_or_default(),
        sync: false,
    })
}

impl Transfers {
    /// An id for a new outgoing session (a pass over a partition): one no session of this
    /// incarnation had, and, from the node's `generation`, none of an earlier one either.
    pub(crate) fn next_session_id(&mut self, generation: u64) -> u64 {
        self.sessions = self.sessions.wrapping_add(1);
        generation.wrapping_shl(24) ^ self.sessions
    }

    /// The transfers a restart resumes: those pending when last persisted, with their
    /// checkpoints, the partitions it still awaits (those of `refill` only anti-entropy ends:
    /// `refill_stored` as the store held them) and those it hands over whole (`whole`, of
    /// `whole_stored` as the store held them: what differs is written again at the next
    /// change, or a later restart would find entries this one dropped).
    pub(crate) fn resumed(
        persisted: BTreeSet<(usize, NodeId)>,
        checkpoints: BTreeMap<u64, Key>,
        incoming: BTreeSet<usize>,
        (refill_stored, whole_stored): (BTreeSet<usize>, BTreeSet<usize>),
        whole: BTreeSet<usize>,
    ) -> Self {
        let since = refill_stored
            .iter()
            .filter(|p| incoming.contains(p))
            .map(|&p| (p, u64::MAX))
            .collect();
        Transfers {
            persisted,
            checkpoints,
            incoming_persisted: incoming.clone(),
            incoming,
            since,
            refill_persisted: refill_stored,
            whole_persisted: whole_stored,
            whole,
            ..Transfers::default()
        }
    }

    /// Whether this node holds partition `p` whole (`replicates`: it is one of the partition's
    /// replicas in its ring), and so may say a hand-over of it is done (see [`Self::whole`]).
    pub(crate) fn holds_whole(&self, p: usize, replicates: bool) -> bool {
        if replicates {
            !self.incoming.contains(&p)
        } else {
            self.whole.contains(&p)
        }
    }

    /// The op that persists the partitions handed over whole, if they changed since last
    /// persisted.
    pub(crate) fn persist_whole(&mut self) -> Option<StorageOp> {
        persist_set(WHOLE_KEY, &self.whole, &mut self.whole_persisted)
    }

    /// The op that persists the partitions awaited, if they changed since last persisted.
    pub(crate) fn persist_incoming(&mut self) -> Option<StorageOp> {
        persist_set(INCOMING_KEY, &self.incoming, &mut self.incoming_persisted)
    }

    /// The op that persists the partitions awaited that only anti-entropy ends ([`REFILL_KEY`]),
    /// if they changed since last persisted.
    pub(crate) fn persist_refill(&mut self) -> Option<StorageOp> {
        if self.since.is_empty() && self.refill_persisted.is_empty() {
            return None;
        }
        let refill: BTreeSet<usize> = self
            .since
            .iter()
            .filter(|&(p, &v)| v == u64::MAX && self.incoming.contains(p))
            .map(|(&p, _)| p)
            .collect();
        persist_set(REFILL_KEY, &refill, &mut self.refill_persisted)
    }

    /// The transfers (partition, receiver) pending as last persisted.
    pub(crate) fn persisted(&self) -> &BTreeSet<(usize, NodeId)> {
        &self.persisted
    }

    /// Transfer `id`'s checkpoint, if it has one.
    pub(crate) fn checkpoint_of(&self, id: u64) -> Option<Key> {
        self.checkpoints.get(&id).cloned()
    }

    /// Outgoing transfers running or waiting for a retry.
    pub(crate) fn len(&self) -> usize {
        self.runs.len() + self.retry.len()
    }

    /// Whether no outgoing transfer runs or waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.retry.is_empty()
    }

    /// Whether partition `p` is being handed over (running, or waiting for a retry).
    pub(crate) fn handing_over(&self, p: usize) -> bool {
        self.runs.values().any(|r| r.partition == p) || self.retry.iter().any(|&(q, _)| q == p)
    }

    /// The partitions being handed over.
    pub(crate) fn partitions(&self) -> BTreeSet<usize> {
        let mut out: BTreeSet<usize> = self.runs.values().map(|r| r.partition).collect();
        out.extend(self.retry.iter().map(|(p, _)| *p));
        out
    }

    /// A write reached partition `p`: every pass streaming it runs again. A pass that becomes
    /// dirty loses its persisted checkpoint (the ops that clear them are pushed on `ops`): the
    /// write may sort below it, and a restart that resumed from it would never send the write,
    /// then drop the partition.
    pub(crate) fn touched(&mut self, p: usize, ops: &mut Vec<StorageOp>) {
        let mut cleared = Vec::new();
        for (&id, run) in self.runs.iter_mut().filter(|(_, r)| r.partition == p) {
            if !run.dirty {
                run.dirty = true;
                cleared.push(id);
            }
        }
        // A transfer waiting for a retry resumes from its checkpoint too.
        cleared.extend(
            self.retry
                .iter()
                .filter(|&&(q, _)| q == p)
                .map(|&(q, to)| super::ids::pair_id(q as u64, to)),
        );
        for id in cleared {
            if self.checkpoints.contains_key(&id) {
                ops.push(self.checkpoint(id, None));
            }
        }
    }

    /// Whether transfer `id` saw a write since its pass started (see [`Self::touched`]).
    pub(crate) fn dirty(&self, id: u64) -> bool {
        self.runs.get(&id).is_some_and(|r| r.dirty)
    }

    /// Clears the checkpoints of the transfers neither running nor waiting for a retry (a ring
    /// change dropped a retry, a restart did not resume a persisted transfer): the same pair's
    /// next transfer must start its range from the beginning, since its receiver may have
    /// dropped the range meanwhile. The ops that clear them.
    pub(crate) fn clear_orphaned_checkpoints(&mut self) -> Vec<StorageOp> {
        let live: BTreeSet<u64> = self
            .runs
            .keys()
            .copied()
            .chain(
                self.retry
                    .iter()
                    .map(|&(p, to)| super::ids::pair_id(p as u64, to)),
            )
            .collect();
        let orphaned: Vec<u64> = self
            .checkpoints
            .keys()
            .filter(|id| !live.contains(id))
            .copied()
            .collect();
        orphaned
            .into_iter()
            .map(|id| self.checkpoint(id, None))
            .collect()
    }

    /// Records the transfers (partition, receiver) running or waiting: the op that persists them,
    /// if they changed since last persisted.
    pub(crate) fn persist(&mut self) -> Option<StorageOp> {
        let pending: BTreeSet<(usize, NodeId)> = self
            .runs
            .values()
            .map(|r| (r.partition, *r.session.to()))
            .chain(self.retry.iter().copied())
            .collect();
        if pending == self.persisted {
            return None;
        }
        let list: Vec<(usize, NodeId)> = pending.iter().copied().collect();
        self.persisted = pending;
        Some(StorageOp::PutMeta {
            name: TRANSFERS_KEY.into(),
            value: rmp_serde::to_vec(&list).unwrap_or_default(),
            sync: false,
        })
    }

    /// Records transfer `id`'s checkpoint at `key` (`None`: clears it): the op that persists it.
    pub(crate) fn checkpoint(&mut self, id: u64, key: Option<Key>) -> StorageOp {
        let value = match &key {
            Some(k) => encode_checkpoint(k),
            None => Vec::new(),
        };
        match key {
            Some(k) => self.checkpoints.insert(id, k),
            None => self.checkpoints.remove(&id),
        };
        StorageOp::PutMeta {
            name: checkpoint_name(TransferId(id)),
            value,
            sync: false,
        }
    }

    /// The store could not read a batch of transfer `id`: it waits for a retry.
    pub(crate) fn failed(&mut self, id: u64) {
        if let Some(run) = self.runs.remove(&id) {
            self.retry.insert((run.partition, *run.session.to()));
        }
    }

    /// When the next `TransferDone` not acknowledged is due to be said again.
    pub(crate) fn done_again_at(&self) -> Option<crate::types::Millis> {
        self.unacknowledged
            .values()
            .map(|&(_, said)| said.saturating_add(DONE_AGAIN))
            .min()
    }

    /// Receiver `to` acknowledged the `TransferDone` of partition `p` under ring `version`.
    pub(crate) fn done_acknowledged(&mut self, p: usize, to: NodeId, version: u64) {
        if self
            .unacknowledged
            .get(&(p, to))
            .is_some_and(|&(v, _)| v == version)
        {
            self.unacknowledged.remove(&(p, to));
        }
    }

    /// A sender finished handing partition `p` over under its ring `version`, while this node
    /// is at ring version `current`: a later version waits until this node adopts it.
    pub(crate) fn received(&mut self, p: usize, version: u64, current: u64) {
        if version > current {
            let v = self.done_early.entry(p).or_insert(version);
            *v = (*v).max(version);
        } else {
            self.done(p, version);
        }
    }

    /// This node adopted ring version `version`: partitions handed over under it (or earlier)
    /// are no longer awaited.
    pub(crate) fn adopted(&mut self, version: u64) {
        let early: Vec<(usize, u64)> = self
            .done_early
            .iter()
            .filter(|&(_, &v)| v <= version)
            .map(|(&p, &v)| (p, v))
            .collect();
        for (p, v) in early {
            self.done_early.remove(&p);
            self.done(p, v);
        }
    }

    /// Partition `p` was handed over under ring `version`: no longer awaited, unless the wait
    /// began under a later ring.
    fn done(&mut self, p: usize, version: u64) {
        if self.since.get(&p).is_none_or(|&since| version >= since) {
            self.incoming.remove(&p);
            self.since.remove(&p);
        }
    }
}
