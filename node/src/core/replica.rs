//! The replica side: merging versions into the store and answering reads.

use std::collections::BTreeMap;

use dynamo_handoff::{Hint, HintBatch, HintRecord};
use dynamo_quorum::VersionSet;

use super::digest::{decode_siblings, encode_siblings};
use super::{siblings_digest, NodeCore};
use crate::message::PeerMessage;
use crate::store::{Store, StoreError};
use crate::types::{Key, Millis, NodeId, RequestId, Sibs};

impl<S: Store> NodeCore<S> {
    /// Merges `incoming` into the stored versions of `key`; keeps the partition's Merkle tree in
    /// step. Returns whether anything changed.
    pub(crate) fn apply(&mut self, key: &[u8], incoming: &Sibs) -> Result<bool, StoreError> {
        let current = self.store.get(key)?;
        let existed = current.is_some();
        let mut merged = current.unwrap_or_default();
        if existed && merged.covers(incoming) {
            return Ok(false);
        }
        merged.merge(incoming);
        if VersionSet::is_empty(&merged) {
            return Ok(false);
        }
        self.store.put(key, &merged)?;
        self.stats.counters.replica_writes += 1;
        self.reaper.track(key, &merged);
        let p = self.partition_of(key);
        for run in self.transfers.values_mut().filter(|r| r.partition == p) {
            run.dirty = true;
        }
        let digest = siblings_digest(&merged);
        match self.index[p].insert(key.to_vec(), digest) {
            Some(old) => self.trees[p].update(key, &old, &digest),
            None => self.trees[p].insert(key, &digest),
        }
        Ok(true)
    }

    /// The stored versions of `key`, with a storage error counted and treated as not found.
    pub(crate) fn local(&mut self, key: &[u8]) -> Option<Sibs> {
        match self.store.get(key) {
            Ok(None) => {
                // Indexed but gone: the store found the record damaged. Out of the Merkle tree
                // too, so that anti-entropy sees the gap and refills it from the replicas.
                let p = self.partition_of(key);
                if let Some(digest) = self.index[p].remove(key) {
                    self.trees[p].remove(key, &digest);
                    self.reaper.forget(key);
                }
                None
            }
            Ok(s) => s,
            Err(_) => {
                self.stats.counters.bad_messages += 1;
                None
            }
        }
    }

    /// Takes a replica write: into the store, or, for a sloppy-quorum write meant for another
    /// node, into the hint log only (a fallback keeps no copy of its own; it answers reads of the
    /// key from its hints). Returns whether it was kept.
    pub(crate) fn keep_write(
        &mut self,
        now: Millis,
        key: Key,
        siblings: &Sibs,
        hint: Option<NodeId>,
    ) -> bool {
        match hint {
            Some(intended) if intended != self.id && self.config.hinted_handoff => {
                self.record_hint(now, intended, key, siblings)
            }
            // A write for a partition this node does not replicate (its coordinator or read
            // repair still uses an older ring, and this node may have handed the partition over
            // already): kept as hints for the key's primaries, as a fallback keeps it. In the
            // store it would reach them only at the next ring change or restart, and it would sit
            // outside them with no bound (a reaped tombstone's value could come back from it). A
            // leaving node still handing the partition over stores it (the running transfer
            // streams it again); once its hand-over is done, hints too.
            None if self.config.hinted_handoff
                && !self.ring_provisional
                && !self.replicates(self.partition_of(&key))
                && (!self.leaving || !self.handing_over_partition(self.partition_of(&key))) =>
            {
                self.keep_for_primaries(now, now, key, siblings)
            }
            _ => self.apply(&key, siblings).is_ok(),
        }
    }

    /// Whether a transfer of partition `p` runs here or waits for a retry.
    fn handing_over_partition(&self, p: usize) -> bool {
        self.transfers.values().any(|r| r.partition == p)
            || self.transfer_retry.iter().any(|&(q, _)| q == p)
    }

    pub(crate) fn replica_write(
        &mut self,
        now: Millis,
        from: NodeId,
        req: Option<RequestId>,
        key: Key,
        siblings: Sibs,
        hint: Option<NodeId>,
    ) {
        let ok = self.keep_write(now, key, &siblings, hint);
        if let Some(req) = req {
            self.transmits
                .push_back((from, PeerMessage::WriteAck { req, ok }));
        }
    }

    /// Records a hint: `siblings` of `key` for `intended`, delivered when it is up. Returns
    /// whether the hint log took it.
    pub(crate) fn record_hint(
        &mut self,
        now: Millis,
        intended: NodeId,
        key: Key,
        siblings: &Sibs,
    ) -> bool {
        self.record_hint_at(now, now, intended, key, siblings)
    }

    /// [`Self::record_hint`] of a hint whose age counts from `recorded_at` (a re-routed hint
    /// keeps its age: no version may outlive the hint age bound the tombstone reaper relies on).
    pub(crate) fn record_hint_at(
        &mut self,
        now: Millis,
        recorded_at: Millis,
        intended: NodeId,
        key: Key,
        siblings: &Sibs,
    ) -> bool {
        if intended != self.id && !self.ring_provisional && !self.members.contains(&intended) {
            // Not in this node's ring (removed; or a coordinator's ring this node has not seen):
            // a hint for it could wait forever. The key's primaries get the versions instead.
            return self.keep_for_primaries(now, recorded_at, key, siblings);
        }
        let payload = encode_siblings(siblings);
        match self
            .hints
            .record(recorded_at, Hint::new(intended, key, payload))
        {
            Ok(_) => {
                self.stats.counters.hints_recorded += 1;
                if self.is_up(intended) {
                    self.hints.peer_up(now, intended);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Keeps `siblings` of `key` for the key's primaries in this node's ring: in the store when
    /// this node is one, as hints (aged from `recorded_at`) for the others. Returns whether all
    /// of it was kept.
    pub(crate) fn keep_for_primaries(
        &mut self,
        now: Millis,
        recorded_at: Millis,
        key: Key,
        siblings: &Sibs,
    ) -> bool {
        let primaries: Vec<NodeId> = self
            .ring
            .preference_list(&key)
            .primaries()
            .copied()
            .collect();
        let mut kept = !primaries.is_empty();
        for p in primaries {
            kept &= if p == self.id {
                self.apply(&key, siblings).is_ok()
            } else {
                self.record_hint_at(now, recorded_at, p, key.clone(), siblings)
            };
        }
        kept
    }

    /// A hint for `intended` expired (its node stayed away too long): rather than let the only
    /// copy a fallback may hold vanish, its versions go to the key's other primaries once, without
    /// a new hint (so no version outlives the hint age bound the tombstone reaper relies on).
    fn spread_expired(&mut self, key: &[u8], intended: NodeId) {
        let Some((_, siblings)) = self.hinted.get(key).cloned() else {
            return;
        };
        let primaries: Vec<NodeId> = self
            .ring
            .preference_list(key)
            .primaries()
            .copied()
            .filter(|&n| n != intended)
            .collect();
        for p in primaries {
            if p == self.id {
                if self.apply(key, &siblings).is_err() {
                    self.stats.counters.bad_messages += 1;
                }
            } else {
                self.transmits.push_back((
                    p,
                    PeerMessage::Write {
                        req: None,
                        key: key.to_vec(),
                        siblings: siblings.clone(),
                        hint: None,
                    },
                ));
            }
        }
    }

    /// What this node holds of `key`: its stored versions merged with the versions it keeps as
    /// hints for other nodes, so that a fallback's answer counts what it acknowledged.
    pub(crate) fn held(&mut self, key: &[u8]) -> Option<Sibs> {
        let stored = self.local(key);
        match (stored, self.hinted.get(key)) {
            (stored, None) => stored,
            (None, Some((_, h))) => Some(h.clone()),
            (Some(mut s), Some((_, h))) => {
                s.merge(h);
                Some(s)
            }
        }
    }

    pub(crate) fn replica_read(&mut self, from: NodeId, req: RequestId, key: &[u8]) {
        if self.incoming.contains(&self.partition_of(key)) {
            self.transmits
                .push_back((from, PeerMessage::ReadRefused { req }));
            return;
        }
        self.stats.counters.replica_reads += 1;
        let siblings = self.held(key);
        self.transmits
            .push_back((from, PeerMessage::ReadReply { req, siblings }));
    }

    /// Takes the hints a fallback delivers to this node, the node they were meant for, into the
    /// store. A ring change since the write may have taken the key's partition from this node
    /// while it stays in the ring (so the fallback did not re-route the hints): nothing else would
    /// move the versions to the key's primaries, so the partition is handed over as any partition
    /// held but not replicated (`hand_over_foreign`; a running transfer of it is dirty and streams
    /// it again). A node not in its own ring and not leaving is a joiner that has not adopted the
    /// ring that names it yet: the partition is its own there, and adopting it sorts things out.
    pub(crate) fn receive_hints(&mut self, now: Millis, from: NodeId, batch: HintBatch<Vec<u8>>) {
        let mut all_ok = true;
        let mut foreign = false;
        for entry in &batch.entries {
            match decode_siblings(&entry.payload) {
                Some(siblings) => match self.apply(&entry.key, &siblings) {
                    Ok(changed) => {
                        foreign |= changed && !self.replicates(self.partition_of(&entry.key));
                    }
                    Err(_) => all_ok = false,
                },
                None => self.stats.counters.bad_messages += 1,
            }
        }
        let member = self.ring.contains(&self.id) || self.leaving;
        if foreign && member && !self.ring_provisional {
            self.hand_over_foreign(now);
        }
        // Unacknowledged batches are retried by the sender; a storage failure must not be acked.
        if all_ok {
            self.transmits
                .push_back((from, PeerMessage::HintsAck(batch.ack())));
        }
    }

    pub(crate) fn drain_hints(&mut self, _now: Millis) {
        while let Some((to, batch)) = self.hints.poll_transmit() {
            self.transmits.push_back((to, PeerMessage::Hints(batch)));
        }
        let mut delivered: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut dropped = 0u64;
        while let Some(event) = self.hints.poll_event() {
            use dynamo_handoff::HintEvent;
            match event {
                HintEvent::Persist(record) => {
                    let id = record.id.0;
                    if index_hint(&mut self.hinted, &mut self.hint_keys, &record).is_err() {
                        self.stats.counters.bad_messages += 1;
                    }
                    if let Ok(bytes) = rmp_serde::to_vec(&record) {
                        let _ = self.store.put_hint(id, &bytes);
                    }
                }
                HintEvent::Forget(id) => {
                    let _ = self.store.remove_hint(id.0);
                    unindex_hint(&mut self.hinted, &mut self.hint_keys, id.0);
                }
                HintEvent::Delivered { node, .. } => {
                    self.stats.counters.hints_delivered += 1;
                    *delivered.entry(node).or_insert(0u64) += 1;
                }
                HintEvent::Dropped {
                    key,
                    node,
                    reason: dynamo_handoff::DropReason::Expired { .. },
                    ..
                } => {
                    self.stats.counters.hints_dropped += 1;
                    dropped += 1;
                    self.spread_expired(&key, node);
                }
                HintEvent::Dropped { .. } => {
                    self.stats.counters.hints_dropped += 1;
                    dropped += 1;
                }
                _ => {}
            }
        }
        for (node, count) in delivered {
            self.events
                .push(super::NodeEvent::HintsDelivered { node, count });
        }
        if dropped > 0 {
            self.events
                .push(super::NodeEvent::HintsDropped { count: dropped });
        }
    }
}

/// Adds a hint's versions to the by-key index of hinted versions.
pub(crate) fn index_hint(
    hinted: &mut BTreeMap<Key, (usize, Sibs)>,
    hint_keys: &mut BTreeMap<u64, Key>,
    record: &HintRecord<NodeId, Vec<u8>>,
) -> Result<(), StoreError> {
    let siblings = decode_siblings(&record.hint.payload)
        .ok_or_else(|| StoreError::Corrupt(format!("hint {}: bad payload", record.id.0)))?;
    let key = record.hint.key.clone();
    if hint_keys.insert(record.id.0, key.clone()).is_some() {
        return Ok(());
    }
    let entry = hinted.entry(key).or_default();
    entry.0 += 1;
    entry.1.merge(&siblings);
    Ok(())
}

/// Removes a delivered or dropped hint from the index; a key leaves it with its last hint.
fn unindex_hint(
    hinted: &mut BTreeMap<Key, (usize, Sibs)>,
    hint_keys: &mut BTreeMap<u64, Key>,
    id: u64,
) {
    let Some(key) = hint_keys.remove(&id) else {
        return;
    };
    if let Some(entry) = hinted.get_mut(&key) {
        entry.0 = entry.0.saturating_sub(1);
        if entry.0 == 0 {
            hinted.remove(&key);
        }
    }
}
