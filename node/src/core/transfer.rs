//! Ownership transfer: when the ring changes, each range this node held moves to its new replicas
//! through a `dynamo-handoff` [`TransferSession`], in key order, in batches bounded by entries
//! and bytes, with a checkpoint of the last acknowledged key, persisted, so that a transfer
//! interrupted by a restart resumes instead of starting over.
//!
//! Nothing is dropped early:
//! - a write that reaches this node for a partition while it streams it marks the run dirty (and
//!   clears its persisted checkpoint: the write may sort below it), and a dirty run that
//!   completes streams the partition again, until one pass sees no write, when this node no
//!   longer replicates the partition (writes reach it only from nodes on an older ring, so they
//!   stop); a replica that stays finishes its pass (it keeps every write, and anti-entropy
//!   carries them to the new replica: under steady writes no pass would be clean);
//! - a partition this node no longer replicates is dropped only when every transfer of it has
//!   completed (every new owner acknowledged every key);
//! - a store read that fails fails that batch: the transfer starts again at the next tick;
//! - at start, and after every ring change, a node hands over every partition it holds but no
//!   longer replicates (a restart in the middle of a transfer resumes it from its checkpoint).
//!
//! The receiver tells nothing to the coordinator of reads until it holds a new range (see
//! `incoming`, persisted, so a restart still awaits it); the sender's `TransferDone` at the end
//! lifts that, or an anti-entropy session that finds the receiver's tree equal to that of a peer
//! that does not await the range itself (`membership::AWAITING_KEY`).

use dynamo_handoff::{
    TransferAck, TransferBatch, TransferConfig, TransferEntry, TransferEvent, TransferId,
    TransferSession,
};

use super::digest::{decode_siblings, encode_siblings};
use super::key_index::page;
use super::storage::{StorageOp, Then};
use super::transfers::{TransferRun, CHECKPOINT_VERSION, DONE_AGAIN, FOREIGN_RECHECK};
use super::NodeCore;
use crate::message::PeerMessage;
use crate::store::StoreError;
use crate::types::{Key, Millis, NodeId, Sibs};

/// The key of a stored checkpoint (`None`: no checkpoint), or which version it has if this
/// version cannot read it.
pub(crate) fn decode_checkpoint(value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    match value.split_first() {
        None => Ok(None),
        Some((&CHECKPOINT_VERSION, key)) => Ok(Some(key.to_vec())),
        Some((other, _)) => Err(StoreError::UnknownVersion {
            what: "a transfer checkpoint".into(),
            found: other.to_string(),
            supported: CHECKPOINT_VERSION.to_string(),
            advice: "the transfer restarts from the start of its range".into(),
        }),
    }
}

impl NodeCore {
    /// Starts moving partition `p` to `to` (unless that transfer is already running).
    pub(crate) fn start_transfer(&mut self, now: Millis, p: usize, to: NodeId) {
        // One transfer per (partition, receiver): the id names both, so a resumed or repeated
        // plan finds the running session.
        let id = TransferId(super::ids::pair_id(p as u64, to));
        if self.transfers.runs.contains_key(&id.0) {
            return;
        }
        let config = TransferConfig {
            ack_timeout: std::time::Duration::from_millis(self.config.request_timeout.max(1) * 5),
            seed: self.rng_seed_for(id.0),
            ..TransferConfig::default()
        };
        // Without a checkpoint the range restarts from its start: sending keys the receiver has
        // is harmless, merging is idempotent.
        let checkpoint = self.transfers.checkpoint_of(id.0);
        // The session's own id, on its batches and their acknowledgements: an acknowledgement
        // names the interval it covers, and another pass over the partition (after a dirty one,
        // or a restart) sends the same intervals, so a late acknowledgement of an earlier pass's
        // batch would complete this one before its own batches, with newer versions, arrived.
        let session_id = TransferId(self.transfers.next_session_id(self.generation));
        let mut session = TransferSession::resume(config, session_id, to, checkpoint);
        if !self.is_up(to) {
            session.peer_down(now, to);
        }
        self.events
            .push(super::NodeEvent::TransferStarted { partition: p, to });
        self.transfers.runs.insert(
            id.0,
            TransferRun {
                session,
                partition: p,
                dirty: false,
                keys: None,
            },
        );
    }

    /// Resumes the persisted transfers of partitions this node replicates, to their replicas;
    /// starts handing over every partition this node holds keys of but no longer replicates,
    /// unless a transfer of it to one of its primaries runs already (the ring change's plan hands
    /// it over): to the primaries that the transfers pending at the last persisted point named
    /// (a restart resumes them), or else to each of its primaries. Then persists the transfers
    /// pending.
    pub(crate) fn hand_over_foreign(&mut self, now: Millis) {
        // Taken out while down: nothing is handed over (see `RingState::forced`).
        if self.forced_out(self.id) {
            return;
        }
        let stored = self.transfers.persisted().clone();
        for p in 0..self.view.ring.range_count() {
            if self.holdings.keys(p).is_empty() {
                continue;
            }
            let owners = super::primaries_of(&self.view.ring, p);
            if self.replicates(p) {
                // A replica that was sending the range to a new one (a restart resumes it).
                let me = self.id;
                for &to in owners.iter().filter(|&&to| to != me) {
                    if stored.contains(&(p, to)) {
                        self.start_transfer(now, p, to);
                    }
                }
                continue;
            }
            let running = self
                .transfers
                .runs
                .values()
                .any(|r| r.partition == p && owners.contains(r.session.to()));
            if running {
                continue;
            }
            let pending: Vec<NodeId> = owners
                .iter()
                .copied()
                .filter(|to| stored.contains(&(p, *to)))
                .collect();
            let targets = if pending.is_empty() { owners } else { pending };
            for to in targets {
                self.start_transfer(now, p, to);
            }
        }
        self.persist_transfers();
    }

    /// Persists the transfers (partition, receiver) running or waiting for a retry, after the
    /// cleared checkpoints of those that no longer are (a crash that keeps the list keeps the
    /// clearing).
    pub(crate) fn persist_transfers(&mut self) {
        for op in self.transfers.clear_orphaned_checkpoints() {
            self.store_op(op, Then::Meta);
        }
        if let Some(op) = self.transfers.persist() {
            self.store_op(op, Then::Meta);
        }
    }

    /// Persists transfer `id`'s checkpoint at `key` (`None`: clears it). A dirty pass keeps
    /// none: a write below `key` reached the partition during it (see `Transfers::touched`).
    fn checkpoint(&mut self, id: u64, key: Option<Key>) {
        let key = key.filter(|_| !self.transfers.dirty(id));
        let op = self.transfers.checkpoint(id, key);
        self.store_op(op, Then::Meta);
    }

    /// Stops the transfers whose receiver is no longer one of the partition's primaries (a later
    /// ring change moved it on): they would leave a copy on a node that must hand it over again,
    /// and keep the partition waiting on a node that may be away. What this node still holds of a
    /// partition it does not replicate goes to the current primaries (`hand_over_foreign`).
    pub(crate) fn cancel_stale_transfers(&mut self) {
        self.cancel_transfers(|ring, p, to| !super::is_primary(ring, p, to));
    }

    /// Stops the transfers (running, or waiting to be retried) of partition `p` to `to` for
    /// which `cancel(ring, p, to)` holds, and forgets their checkpoints.
    pub(crate) fn cancel_transfers(
        &mut self,
        cancel: impl Fn(&dynamo_ring::Ring<NodeId>, usize, NodeId) -> bool,
    ) {
        let ring = &self.view.ring;
        let stale: Vec<u64> = self
            .transfers
            .runs
            .iter()
            .filter(|(_, r)| cancel(ring, r.partition, *r.session.to()))
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            self.transfers.runs.remove(&id);
            self.checkpoint(id, None);
        }
        let ring = &self.view.ring;
        self.transfers.retry.retain(|&(p, to)| !cancel(ring, p, to));
        self.persist_transfers();
    }

    fn rng_seed_for(&self, salt: u64) -> u64 {
        self.generation.rotate_left(21) ^ salt ^ self.id
    }

    pub(crate) fn drain_transfers(&mut self, now: Millis) {
        let ids: Vec<u64> = self.transfers.runs.keys().copied().collect();
        for id in ids {
            let mut complete = false;
            while let Some(run) = self.transfers.runs.get_mut(&id) {
                let partition = run.partition;
                if let Some((to, batch)) = run.session.poll_transmit() {
                    self.stats.counters.transfer_keys += batch.entries.len() as u64;
                    self.stats.counters.transfer_bytes += batch
                        .entries
                        .iter()
                        .map(|e| (e.key.len() + e.payload.len()) as u64)
                        .sum::<u64>();
                    self.transmits.push_back((to, PeerMessage::Transfer(batch)));
                    continue;
                }
                match run.session.poll_event() {
                    Some(TransferEvent::NeedBatch {
                        request,
                        after,
                        max_entries,
                        max_bytes,
                    }) => self.read_batch(id, partition, request, after, max_entries, max_bytes),
                    Some(TransferEvent::Checkpoint { key }) => self.checkpoint(id, Some(key)),
                    Some(TransferEvent::Complete) => complete = true,
                    Some(_) => {}
                    None => break,
                }
            }
            if complete {
                if let Some(run) = self.transfers.runs.remove(&id) {
                    let to = *run.session.to();
                    self.checkpoint(id, None);
                    // A write of the partition merged while this pass streamed, or still in
                    // the store's queue (its merge not done, so not yet marking the pass dirty:
                    // a store that answers later), goes with another pass, if this node is to
                    // drop the partition. One that stays a replica keeps every write, and
                    // anti-entropy carries them: under steady writes no pass would finish.
                    let p = run.partition;
                    let queued = self.storage.merging().any(|k| self.partition_of(k) == p);
                    if (run.dirty || queued) && !self.replicates(p) {
                        // Writes arrived while streaming: stream the partition again.
                        self.start_transfer(now, run.partition, to);
                        continue;
                    }
                    self.events.push(super::NodeEvent::TransferFinished {
                        partition: run.partition,
                        to,
                    });
                    // Only a sender that held the partition whole says so (see
                    // `Transfers::whole`): the receiver stops awaiting it. Not one whose store
                    // lost a key of it (the transfer skipped it) while another replica may
                    // hold the key: the receiver would answer "not found" for it, counted
                    // toward R; it awaits anti-entropy with the others instead. (With no other
                    // replica, no copy is left to wait for.)
                    // A restarted node that does not know yet whether its store went back
                    // (see `restored`) says it with the next repeat after it knows, if it still
                    // holds the partition whole then.
                    let lost_here = self.lost_in(p).next().is_some()
                        && super::primaries_of(&self.view.ring, p)
                            .into_iter()
                            .any(|n| n != self.id && n != to);
                    if self.transfers.holds_whole(p, self.replicates(p)) && !lost_here {
                        let version = self.view.ring_state.version;
                        if !self.restored.doubt {
                            self.say_done(p, to, version);
                        }
                        self.transfers
                            .unacknowledged
                            .insert((p, to), (version, now));
                    }
                    self.drop_partition_if_foreign(run.partition);
                    self.persist_transfers();
                }
            }
        }
    }

    /// Reads the next batch of transfer `id`: the keys of partition `p` after `after`, in order,
    /// at most `max` of them ([`Self::transfer_read`] cuts the batch at about `max_bytes`).
    fn read_batch(
        &mut self,
        id: u64,
        p: usize,
        request: dynamo_handoff::RequestId,
        after: Option<Key>,
        max: usize,
        max_bytes: usize,
    ) {
        let index = self.holdings.keys(p);
        let Some(run) = self.transfers.runs.get_mut(&id) else {
            return;
        };
        // The pass pages through the keys as they were when it asked first; a key written since
        // marks the run dirty (another pass follows), a key gone since is skipped here.
        let sorted = run.keys.get_or_insert_with(|| index.sorted_keys());
        let (keys, more) = page(sorted, after.as_deref(), max, index);
        self.store_op(
            StorageOp::Read { keys },
            Then::TransferBatch {
                transfer: id,
                request,
                max_bytes,
                more,
            },
        );
    }

    /// The keys of a transfer batch were read (`found[i]` of `keys[i]`; a key that vanished is
    /// skipped): the batch goes to the session, cut at about `max_bytes` (at least one entry),
    /// and is the last if it reaches the end of the partition.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn transfer_read(
        &mut self,
        now: Millis,
        transfer: u64,
        request: dynamo_handoff::RequestId,
        max_bytes: usize,
        more: bool,
        keys: Vec<Key>,
        found: Vec<Option<Sibs>>,
    ) {
        let total = keys.len();
        let page_end = keys.last().cloned();
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let mut taken = 0;
        for (key, siblings) in keys.into_iter().zip(found) {
            taken += 1;
            let Some(siblings) = siblings else {
                continue;
            };
            let payload = encode_siblings(&siblings);
            bytes += payload.len() + key.len();
            entries.push(TransferEntry { payload, key });
            if bytes >= max_bytes {
                break;
            }
        }
        let last = !more && taken == total;
        if entries.is_empty() && !last {
            // Every key of the page vanished since the pass listed them (reaped, set aside as
            // damaged): an empty batch that is not the last would stall the session, so the
            // pass reads on past them, under the same request.
            let partition = self.transfers.runs.get(&transfer).map(|r| r.partition);
            if let (Some(p), Some(after)) = (partition, page_end) {
                self.read_batch(transfer, p, request, Some(after), total, max_bytes);
                return;
            }
        }
        if let Some(run) = self.transfers.runs.get_mut(&transfer) {
            match run.session.supply(now, request, entries, last) {
                // The session moved on while the store read (its receiver went down): the
                // batch is read again from the checkpoint.
                Ok(()) | Err(dynamo_handoff::TransferError::StaleRequest { .. }) => {}
                Err(_) => self.stats.counters.bad_messages += 1,
            }
        }
    }

    /// The store could not read a batch of transfer `id`: this pass stops here (no key is
    /// dropped), and starts again from its checkpoint at the next tick.
    pub(crate) fn transfer_failed(&mut self, id: u64) {
        self.transfers.failed(id);
    }

    /// After a completed transfer: a partition this node no longer replicates is dropped, once
    /// no other transfer of it runs or waits for a retry (a retry reads the keys again).
    fn drop_partition_if_foreign(&mut self, p: usize) {
        if self.replicates(p) || self.transfers.handing_over(p) {
            return;
        }
        self.transfers.whole.remove(&p);
        // Its lost keys, no longer in the key index, go too: no longer this node's to refuse,
        // nor to hold a later hand-over of the partition back (see `Holdings::lost`).
        let lost: Vec<Key> = self.lost_in(p).cloned().collect();
        for key in lost {
            self.holdings.found(&key);
        }
        let keys: Vec<Key> = self.holdings.keys(p).keys().cloned().collect();
        if !keys.is_empty() {
            // This node may own the partition again and get older copies back (see `epochs`).
            self.epochs.raise_floor();
            self.store_op(StorageOp::Remove { keys }, Then::Dropped { partition: p });
        }
    }

    /// The keys of partition `p` the store lost (see `Holdings::lost`; no longer in its index).
    fn lost_in(&self, p: usize) -> impl Iterator<Item = &Key> {
        self.holdings
            .lost_keys()
            .filter(move |k| self.partition_of(k) == p)
    }

    /// The store removed `key` of dropped partition `p`.
    pub(crate) fn dropped(&mut self, p: usize, key: &[u8]) {
        self.holdings.removed(p, key);
        // Handed over: no longer this node's to refuse (see `Holdings::lost`).
        self.holdings.found(key);
    }

    /// A sender finished handing partition `p` over, under its ring `version`. The receiver may
    /// not have adopted that ring yet (the claimant starts its transfers before gossip spreads
    /// the ring): then the news waits for the ring.
    pub(crate) fn transfer_done(&mut self, from: NodeId, p: usize, version: u64) {
        // A partition that does not exist would be remembered until a ring of that version came.
        if p >= self.holdings.partitions() {
            self.stats.counters.bad_messages += 1;
            return;
        }
        let current = self.view.ring_state.version;
        self.transfers.received(p, version, current);
        // One under a ring this node has not adopted is kept in memory only (`done_early`):
        // the sender says it again, and it is acknowledged once this node can apply it.
        if version > current {
            return;
        }
        // Every other one, a repeat too: the sender says it again until acknowledged. The
        // answer leaves after the store persisted what this one changed (synced, on a store
        // that may lose flushed writes: the sender may drop its copy once answered).
        self.persist_incoming();
        self.send_once_durable(
            from,
            PeerMessage::TransferDoneAck {
                partition: p as u32,
                version,
            },
        );
    }

    /// The store took a transfer batch (`foreign`: some of it changed a partition this node does
    /// not replicate): acknowledged unless a storage failure or a bad entry (`ok`), so the sender
    /// retries. A leaving node gets batches from senders whose ring still names it as a primary,
    /// after its own ring took the partition away, even after it handed the partition over and
    /// dropped it: it passes them on to the partition's primaries ([`NodeCore::kept_foreign`])
    /// instead of keeping a copy that nothing reads, repairs or reaps, which would bring a
    /// deleted value back once its tombstone is reaped. Any other receiver keeps the batch for
    /// a while ([`FOREIGN_RECHECK`]): its ring may be the older one (a node that has not yet
    /// adopted the ring that gives it the partition), and handing the partition back to that
    /// ring's primaries would undo the transfer. If the partition is still not its own then,
    /// its ring was the newer one and it hands the partition over.
    pub(crate) fn transfer_kept(
        &mut self,
        now: Millis,
        from: NodeId,
        ack: dynamo_handoff::TransferAck<Key>,
        ok: bool,
        foreign: bool,
    ) {
        if foreign && self.view.leaving {
            self.kept_foreign(now);
        } else if foreign {
            // From the last such batch: each gets the whole while to be adopted.
            self.transfers.foreign_check = Some(now.saturating_add(FOREIGN_RECHECK));
        }
        if ok {
            self.send_once_durable(from, PeerMessage::TransferAck(ack));
        }
    }

    /// Versions of a partition this node does not replicate were just stored, by a hint or a
    /// transfer batch. A ring change since they were sent may have taken the partition from this
    /// node: nothing else would move them to the key's primaries, so the partition is handed over
    /// as any partition held but not replicated (`hand_over_foreign`; a running transfer of it is
    /// dirty and streams it again). A node not in its own ring and not leaving is a joiner that
    /// has not adopted the ring that names it yet: the partition is its own there, and adopting
    /// it sorts things out.
    pub(crate) fn kept_foreign(&mut self, now: Millis) {
        let member = self.view.ring.contains(&self.id) || self.view.leaving;
        if member && !self.view.ring_provisional {
            self.hand_over_foreign(now);
        }
    }

    /// Merges a transfer batch; acknowledged once the store has every entry.
    pub(crate) fn receive_transfer(&mut self, from: NodeId, batch: TransferBatch<Key, Vec<u8>>) {
        // A node that said it left owns nothing and may be stopped at any moment: nothing is
        // acknowledged (the sender retries until it hears the ring without this node).
        let left = self.has_left();
        let mut ok = !left;
        let mut entries = Vec::with_capacity(batch.entries.len());
        for entry in batch.entries.iter().filter(|_| !left) {
            match decode_siblings(&entry.payload) {
                // Past this node's key limits too: acknowledged, the entry is dropped by the
                // sender, so skipping it lost the key. The limits bound what clients and
                // repairs add to a key; a node taking a range over keeps what it is handed (a
                // key can outgrow them: blind puts through nodes that are not its primaries each
                // pass the check on their own copy, and nodes may be configured apart).
                Some(s) => {
                    if let Some(s) = self.reaper.unfenced(&entry.key, s) {
                        entries.push((entry.key.clone(), s));
                    }
                }
                None => {
                    self.stats.counters.bad_messages += 1;
                    ok = false;
                }
            }
        }
        let ack = batch.ack();
        self.store_op(
            StorageOp::Merge { entries },
            Then::TransferAck { from, ack, ok },
        );
    }

    pub(crate) fn transfer_ack(&mut self, now: Millis, from: NodeId, ack: TransferAck<Key>) {
        let run = self
            .transfers
            .runs
            .values_mut()
            .find(|r| r.session.id() == ack.transfer);
        match run {
            Some(run) => {
                if run.session.handle_message(now, from, ack).is_err() {
                    self.stats.counters.bad_messages += 1;
                }
            }
            None => self.stats.counters.late_answers += 1,
        }
    }

    pub(crate) fn transfer_peer(&mut self, now: Millis, peer: NodeId, up: bool) {
        for run in self.transfers.runs.values_mut() {
            if up {
                run.session.peer_up(now, peer);
            } else {
                run.session.peer_down(now, peer);
            }
        }
    }

    pub(crate) fn transfer_timeouts(&mut self, now: Millis) {
        for (p, to) in std::mem::take(&mut self.transfers.retry) {
            self.start_transfer(now, p, to);
        }
        if self.transfers.foreign_check.is_some_and(|t| t <= now) {
            self.transfers.foreign_check = None;
            self.kept_foreign(now);
        }
        for run in self.transfers.runs.values_mut() {
            if run.session.poll_timeout().is_some_and(|t| t <= now) {
                run.session.handle_timeout(now);
            }
        }
        self.say_done_again(now);
    }

    /// Says again each `TransferDone` not acknowledged for [`DONE_AGAIN`] (its receiver was
    /// down, or crashed before it took it: it would await the partition, refusing its reads,
    /// until anti-entropy ended the wait). One whose receiver this node's ring no longer makes
    /// a replica of the partition is forgotten: the receiver's wait, if it gets the partition
    /// back, is for a later hand-over. A ring change that moved nothing of the partition keeps
    /// it: the receiver's wait began under the older version, which the done names.
    fn say_done_again(&mut self, now: Millis) {
        if self.restored.doubt {
            return;
        }
        let ring = &self.view.ring;
        self.transfers
            .unacknowledged
            .retain(|&(p, to), _| super::is_primary(ring, p, to));
        let mut due = Vec::new();
        for (&(p, to), (v, said)) in self.transfers.unacknowledged.iter_mut() {
            if now.saturating_sub(*said) >= DONE_AGAIN {
                *said = now;
                due.push((p, to, *v));
            }
        }
        for (p, to, version) in due {
            self.say_done(p, to, version);
        }
    }

    /// Tells `to` that partition `p`'s hand-over under ring `version` is done.
    fn say_done(&mut self, p: usize, to: NodeId, version: u64) {
        self.transmits.push_back((
            to,
            PeerMessage::TransferDone {
                partition: p as u32,
                version,
            },
        ));
    }
}
