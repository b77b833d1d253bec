//! The replica side: merging versions into the store, keeping hints, answering reads.

use std::collections::BTreeMap;

use dynamo_handoff::{Hint, HintAck, HintBatch};

use super::digest::{decode_siblings, encode_siblings};
use super::storage::{Kept, StorageOp, Then};
use super::{siblings_digest, NodeCore};
use crate::config::QuorumMode;
use crate::message::{PeerMessage, MAX_CONTENT_TYPE};
use crate::types::{Key, Millis, NodeId, RequestId, Sibs};

impl NodeCore {
    /// Queues a storage op, to go on with `then` when it is done.
    pub(crate) fn store_op(&mut self, op: StorageOp, then: Then) {
        self.storage.push(op, then);
    }

    /// Merges `incoming` into the stored versions of `key` (a storage op), to go on with `then`.
    /// Versions a reaped tombstone covers are dropped first (see `Reaper::fence`).
    pub(crate) fn merge(&mut self, key: Key, incoming: Sibs, then: Then) {
        let entries = match self.reaper.unfenced(&key, incoming) {
            Some(incoming) => vec![(key, incoming)],
            None => Vec::new(),
        };
        self.store_op(StorageOp::Merge { entries }, then);
    }

    /// The store holds `merged` for `key`, of partition `p`, from `now` on: the partition's
    /// Merkle tree, the index, the reaper and the transfers streaming the partition follow.
    pub(crate) fn stored(&mut self, now: Millis, p: usize, key: &[u8], merged: &Sibs) {
        self.stats.counters.replica_writes += 1;
        self.reaper.track(key, merged, now);
        let mut ops = Vec::new();
        self.transfers.touched(p, &mut ops);
        for op in ops {
            self.store_op(op, Then::Meta);
        }
        let digest = siblings_digest(merged);
        self.holdings.stored(p, key, digest);
    }

    /// The store read `key` as `found`: a key indexed but not found is a damaged record the
    /// store set aside, taken out of the Merkle tree too, so that anti-entropy sees the gap and
    /// refills it from the replicas.
    pub(crate) fn read_back(&mut self, key: &[u8], found: &Option<Sibs>) {
        if found.is_none() {
            let p = self.partition_of(key);
            self.record_gone(p, key);
        }
    }

    /// The store holds no record of `key` (of partition `p`): one the index holds was damaged
    /// and set aside, a lost copy.
    pub(crate) fn record_gone(&mut self, p: usize, key: &[u8]) {
        if self.holdings.removed(p, key) {
            self.holdings.lost(key);
            self.reaper.forget(key);
            // The copy that comes back may lack dots this node issued (see `epochs`).
            self.epochs.raise_floor();
        }
    }

    /// Takes a replica write: into the store, or, for a sloppy-quorum write meant for another
    /// node, into the hint log only (a fallback keeps no copy of its own; it answers reads of the
    /// key from its hints). [`Kept::Now`] hands `then` back with whether it was kept; otherwise
    /// `then` goes on once the store has it.
    pub(crate) fn keep_write(
        &mut self,
        now: Millis,
        key: Key,
        siblings: Sibs,
        hint: Option<NodeId>,
        then: Then,
    ) -> Kept {
        if self.has_left() {
            // It said it left and may be stopped at any moment: a hint kept now would go with
            // it. A late write (its coordinator's ring is older) goes on to the key's primaries,
            // unacknowledged, and does not count.
            self.send_to_primaries(&key, &siblings, &[]);
            return Kept::Now(false, then);
        }
        match hint {
            Some(intended) if intended != self.id && self.config.hinted_handoff => {
                self.record_hint(now, now, intended, key, siblings, then)
            }
            // A write for a partition this node does not replicate (its coordinator or read
            // repair still uses an older ring, and this node may have handed the partition over
            // already): kept as hints for the key's primaries, as a fallback keeps it. In the
            // store it would reach them only at the next ring change or restart, and it would sit
            // outside them with no bound (a reaped tombstone's value could come back from it). A
            // leaving node still handing the partition over stores it (the running transfer
            // streams it again); once its hand-over is done, hints too.
            None if !self.keeps_partition(self.partition_of(&key)) => {
                self.keep_for_primaries(now, now, key, siblings, then)
            }
            _ => {
                self.merge(key, siblings, then);
                Kept::Later
            }
        }
    }

    /// Whether a peer's versions of `key` are within what this node keeps (counted as a bad
    /// message when not): the key within `max_key_size`, each value within `max_value_size`, and
    /// at most N times the per-key limits of a put (`max_siblings`, `max_siblings_size`), room
    /// for concurrent puts through several coordinators. (Not the clock's size: a clock only
    /// grows, and a replica refusing a large one for good would never converge with the others.) Merged in, a set past them could grow
    /// the key's record past a frame, and no read, sync or transfer of the key would get through.
    pub(crate) fn fits(&mut self, key: &[u8], siblings: &Sibs) -> bool {
        let n = self.config.n.max(1);
        let mut bytes = 0usize;
        let mut values_fit = true;
        for value in siblings.live_values() {
            bytes = bytes.saturating_add(value.size());
            values_fit &= value.size() <= self.config.max_value_size + MAX_CONTENT_TYPE;
        }
        let fits = key.len() <= self.config.max_key_size
            && values_fit
            && siblings.len() <= self.config.max_siblings.saturating_mul(n)
            && bytes <= self.config.max_siblings_size.saturating_mul(n);
        if !fits {
            self.stats.counters.bad_messages += 1;
        }
        fits
    }

    /// Whether writes of partition `p` go into this node's store (rather than to the key's
    /// primaries as hints): it replicates `p`, or hands it over still, or knows no better (its
    /// ring is provisional, or hinted handoff is off).
    pub(crate) fn keeps_partition(&self, p: usize) -> bool {
        !self.config.hinted_handoff
            || self.view.ring_provisional
            || self.replicates(p)
            || (self.view.leaving && self.handing_over_partition(p))
    }

    /// Whether a transfer of partition `p` runs here or waits for a retry.
    fn handing_over_partition(&self, p: usize) -> bool {
        self.transfers.handing_over(p)
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
        // In strict mode only a replica's write counts toward W. A write sent to this node as a
        // primary of a key it is not a primary of (the coordinator's ring is not this node's) is
        // still passed on to the key's primaries, but its acknowledgement says it did not count:
        // counted, it was a fallback's write, which strict quorums never count. A write that
        // names the primary it stands in for comes from a sloppy request (a request may ask for
        // sloppy quorums on a strict node) and counts as a fallback's. One that names this node
        // comes from a strict request (it may ask for strict quorums on a sloppy node): held to
        // strict mode. Any other is held to this node's mode.
        let asked_strict = hint == Some(self.id);
        // Read repair names its target too (and asks for no acknowledgement): a copy of what
        // the replicas hold, which ends a lost copy here (see `copy_merged`); other writes
        // without one carry a single write or hint passed on.
        let repair = req.is_none() && asked_strict;
        let hint = hint.filter(|&h| h != self.id);
        let counts = (self.config.mode != QuorumMode::Strict && !asked_strict)
            || hint.is_some()
            || self.view.ring_provisional
            || self.is_key_primary(&key, self.id);
        let then = if repair {
            Then::Repaired
        } else {
            Then::WriteAck {
                to: from,
                req,
                ok: counts,
            }
        };
        if !self.fits(&key, &siblings) {
            return self.then_written(now, then, false);
        }
        if let Kept::Now(ok, then) = self.keep_write(now, key, siblings, hint, then) {
            self.then_written(now, then, ok);
        }
    }

    /// Records a hint: `siblings` of `key` for `intended`, delivered when it is up, its age
    /// counted from `recorded_at` (a re-routed hint keeps its age). A hint for a node out of the ring goes to
    /// the key's primaries instead ([`Self::keep_for_primaries`]).
    pub(crate) fn record_hint(
        &mut self,
        now: Millis,
        recorded_at: Millis,
        intended: NodeId,
        key: Key,
        siblings: Sibs,
        then: Then,
    ) -> Kept {
        if intended != self.id
            && !self.view.ring_provisional
            && !self.is_key_primary(&key, intended)
        {
            // Not a primary of the key in this node's ring (removed, or the key's range moved;
            // or a coordinator's ring this node has not seen): a hint for it could wait forever,
            // or reach a node that only hands it on while the reaper does not wait for it (see
            // `membership::reroute_misaddressed_hints`). The key's primaries get the versions.
            return self.keep_for_primaries(now, recorded_at, key, siblings, then);
        }
        Kept::Now(self.hint(now, recorded_at, intended, key, &siblings), then)
    }

    /// Puts a hint in the hint log; returns whether the log took it.
    pub(crate) fn hint(
        &mut self,
        now: Millis,
        recorded_at: Millis,
        intended: NodeId,
        key: Key,
        siblings: &Sibs,
    ) -> bool {
        let payload = encode_siblings(siblings);
        let recorded = self
            .hints
            .record_aged(now, recorded_at, Hint::new(intended, key, payload));
        self.hint_recorded(now, intended, recorded.is_ok())
    }

    /// After a hint for `intended` was put in the log (`took`) or refused: counts it, and tells
    /// the log of a node up it did not know up. Returns `took`.
    fn hint_recorded(&mut self, now: Millis, intended: NodeId, took: bool) -> bool {
        if !took {
            return false;
        }
        self.stats.counters.hints_recorded += 1;
        // The log learns here of a node up that it never heard of (or heard down); one it knows
        // up keeps its backoff (recording sent what may be sent), or a node refusing its hints
        // would get a batch at every write that makes one for it.
        let known_up = self
            .hints
            .node_stats(&intended)
            .is_some_and(|stats| stats.up);
        if self.is_up(intended) && !known_up {
            self.hints.peer_up(now, intended);
        }
        true
    }

    /// Keeps `siblings` of `key` for the key's primaries in this node's ring: in the store when
    /// this node is one, as hints (aged from `recorded_at`) for the others. Done (with whether
    /// all of it was kept) now, or once the store has it.
    pub(crate) fn keep_for_primaries(
        &mut self,
        now: Millis,
        recorded_at: Millis,
        key: Key,
        siblings: Sibs,
        then: Then,
    ) -> Kept {
        let primaries = self.key_primaries(&key);
        let mut kept = !primaries.is_empty();
        let mut here = false;
        for p in primaries {
            if p == self.id {
                here = true;
            } else {
                kept &= self.hint(now, recorded_at, p, key.clone(), &siblings);
            }
        }
        if here {
            self.merge(key, siblings, then.and(kept));
            Kept::Later
        } else {
            Kept::Now(kept, then)
        }
    }

    /// A hint for `intended` expired (its node stayed away for hours, or its batches kept
    /// failing): rather than let the only copy a fallback may hold vanish, its versions go to the
    /// key's primaries. If the hint's node is not heard up, each other primary heard up takes
    /// them as a hint of its own, delivered until it acknowledges them (a message sent once is
    /// lost with its connection, or with that node's crash before it flushed). The rest, the
    /// hint's own node among them (it may be up, and with N = 1 it is the only primary), get
    /// them once, without a new hint. While no primary is heard up (every one down, or none
    /// heard yet since this node started), a message would go nowhere: the hint is kept, aged
    /// from now, in the room it freed (a log over bounds lowered since keeps it too). Returns
    /// whether the versions are kept here as hints (a log full for the other primaries' hints
    /// sends them as above).
    fn spread_expired(&mut self, now: Millis, intended: NodeId, key: &[u8]) -> bool {
        let Some(siblings) = self.holdings.hinted(key).cloned() else {
            return false;
        };
        // Gossip's own view: a node it never heard is not up there.
        let primaries = self.key_primaries(key);
        if !primaries
            .iter()
            .any(|&p| p == self.id || self.gossip.is_up(&p))
        {
            // It takes back the room it freed, over bounds lowered since it was kept too.
            let hint = Hint::new(intended, key.to_vec(), encode_siblings(&siblings));
            let recorded = self.hints.record_expired_again(now, hint);
            if self.hint_recorded(now, intended, recorded.is_ok()) {
                return true;
            }
        }
        // Only for a hint whose node stayed away: one up that did not take it in hours refuses
        // it (its limits, its store), and others may too; passed around, it would live for ever
        // (and the reaper wait on it). Up is gossip's word: a node up that this one could not
        // reach for hours gets the versions once, as before this hint was kept for others.
        let mut hinted = Vec::new();
        if !self.gossip.is_up(&intended) {
            for &p in &primaries {
                if p != self.id
                    && p != intended
                    && self.gossip.is_up(&p)
                    && self.hint(now, now, p, key.to_vec(), &siblings)
                {
                    hinted.push(p);
                }
            }
        }
        self.send_to_primaries(key, &siblings, &hinted);
        !hinted.is_empty()
    }

    /// `siblings` of `key` to each of the key's primaries but those of `skip`, once and
    /// unacknowledged (merged here when this node is one).
    fn send_to_primaries(&mut self, key: &[u8], siblings: &Sibs, skip: &[NodeId]) {
        for p in self.key_primaries(key) {
            if skip.contains(&p) {
                continue;
            }
            if p == self.id {
                self.merge(key.to_vec(), siblings.clone(), Then::Nothing);
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

    /// Answers a coordinator's read of `key` (`primary`: asked as one of its primaries).
    pub(crate) fn replica_read(&mut self, from: NodeId, req: RequestId, key: &[u8], primary: bool) {
        // Asked as a primary of a key this node is not a primary of: the coordinator's ring is
        // not this node's (one of them has not heard the other's yet, as after a restart on the
        // ring the node had). An empty answer would count toward R for a copy it never held.
        if self.receiving(key) || (primary && !self.is_key_primary(key, self.id)) {
            self.transmits
                .push_back((from, PeerMessage::ReadRefused { req }));
            return;
        }
        self.stats.counters.replica_reads += 1;
        self.store_op(
            StorageOp::Read {
                keys: vec![key.to_vec()],
            },
            Then::ReadReply { to: from, req },
        );
    }

    /// Takes the hints a fallback delivers to this node, the node they were meant for, into the
    /// store (then [`Self::hints_kept`]).
    pub(crate) fn receive_hints(&mut self, from: NodeId, batch: HintBatch<Vec<u8>>) {
        if self.has_left() {
            // It said it left and may be stopped at any moment: acknowledged, the hints would
            // go with it. The fallback keeps them and, once it hears the ring without this
            // node, passes them to the key's primaries there.
            let every = batch.entries.iter().map(|e| e.id).collect();
            return self.store_op(
                StorageOp::Merge {
                    entries: Vec::new(),
                },
                Then::HintsAck {
                    from,
                    ack: batch.ack_except(every),
                    entries: Vec::new(),
                },
            );
        }
        let mut entries = Vec::with_capacity(batch.entries.len());
        let mut ids = Vec::with_capacity(batch.entries.len());
        // An entry refused (past this node's limits, undecodable) is named in the
        // acknowledgement, which would otherwise make the fallback forget it, perhaps the only
        // copy of an acknowledged write. The fallback keeps it (and retries) until the hint
        // expires and its versions go to the key's other primaries. So is an entry the store
        // fails to keep (see `handle_storage`).
        let mut refused = Vec::new();
        for entry in &batch.entries {
            match decode_siblings(&entry.payload) {
                Some(siblings) if self.fits(&entry.key, &siblings) => {
                    if let Some(siblings) = self.reaper.unfenced(&entry.key, siblings) {
                        entries.push((entry.key.clone(), siblings));
                        ids.push(entry.id);
                    }
                }
                Some(_) => refused.push(entry.id),
                None => {
                    self.stats.counters.bad_messages += 1;
                    refused.push(entry.id);
                }
            }
        }
        self.store_op(
            StorageOp::Merge { entries },
            Then::HintsAck {
                from,
                ack: batch.ack_except(refused),
                entries: ids,
            },
        );
    }

    /// The store took a fallback's hints (`foreign`: some changed a partition this node does not
    /// replicate). A ring change since the write may have taken the key's partition from this
    /// node while it stays in the ring (so the fallback did not re-route the hints): the
    /// partition goes on to its primaries ([`NodeCore::kept_foreign`]). The acknowledgement
    /// names the hints not kept (a storage failure, an entry refused): the sender retries them.
    pub(crate) fn hints_kept(&mut self, now: Millis, from: NodeId, ack: HintAck, foreign: bool) {
        if foreign {
            self.kept_foreign(now);
        }
        self.send_once_durable(from, PeerMessage::HintsAck(ack));
    }

    /// This node was taken out of the ring while down ([`RingState::forced`]): its hints and
    /// its hand-overs (running, waiting to be retried, or their ends unacknowledged) go nowhere. Nobody waits for them any
    /// more: delivered late, one could bring back a value whose delete was reaped meanwhile.
    /// (The other nodes refuse what it sends anyway: see `NodeCore::handle_message`.)
    ///
    /// [`RingState::forced`]: super::membership::RingState::forced
    pub(crate) fn drop_forced_copies(&mut self) {
        let nodes: Vec<NodeId> = self.hints.nodes().map(|(&id, _)| id).collect();
        for node in nodes {
            self.hints.forget_peer(&node);
        }
        // Nor the ends of hand-overs it owes (the receivers refuse them now).
        self.transfers.unacknowledged.clear();
        self.cancel_transfers(|_, _, _| true);
    }

    pub(crate) fn drain_hints(&mut self, now: Millis) {
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
                    if self.holdings.hint_kept(&record).is_err() {
                        self.stats.counters.bad_messages += 1;
                    }
                    if let Ok(record) = rmp_serde::to_vec(&record) {
                        self.store_op(StorageOp::PutHint { id, record }, Then::Meta);
                    }
                }
                HintEvent::Forget(id) => {
                    self.store_op(StorageOp::RemoveHint { id: id.0 }, Then::Meta);
                    self.holdings.hint_gone(id.0);
                }
                HintEvent::Delivered { node, .. } => {
                    self.stats.counters.hints_delivered += 1;
                    *delivered.entry(node).or_insert(0u64) += 1;
                }
                // Kept (from now) while no primary of its key is heard up; else its versions
                // go to the primaries (`spread_expired`, in the guard) and it is counted below.
                HintEvent::Dropped {
                    node,
                    key,
                    reason: dynamo_handoff::DropReason::Expired { .. },
                    ..
                } if self.spread_expired(now, node, &key) => {}
                HintEvent::Dropped {
                    reason: dynamo_handoff::DropReason::Expired { .. },
                    ..
                } => {
                    self.stats.counters.hints_dropped += 1;
                    dropped += 1;
                }
                // Re-routed to the key's primaries: not lost.
                HintEvent::Dropped {
                    reason: dynamo_handoff::DropReason::Rerouted,
                    ..
                } => {}
                // Evicted for room (a log that drops the oldest; the node's refuses new hints
                // instead, and keeps at start those past bounds lowered since): as for an expired
                // hint, the versions go to the key's primaries rather than nowhere (they may be
                // the only copy of an acknowledged write). Its node gets them too: it may be up.
                HintEvent::Dropped { key, .. } => {
                    self.stats.counters.hints_dropped += 1;
                    dropped += 1;
                    // Not from a node taken out while down: it hands nothing over.
                    if self.forced_out(self.id) {
                        continue;
                    }
                    if let Some(siblings) = self.holdings.hinted(&key).cloned() {
                        self.send_to_primaries(&key, &siblings, &[]);
                    }
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
