//! Ownership transfer: when the ring changes, each range this node held moves to its new replicas
//! through a `dynamo-handoff` [`TransferSession`], in key order, with a checkpoint of the last
//! acknowledged key so that an interrupted transfer resumes instead of starting over. When a range
//! is complete and this node is no longer one of its replicas, it drops the range.

use dynamo_handoff::{
    Instant, TransferAck, TransferBatch, TransferConfig, TransferEntry, TransferEvent, TransferId,
    TransferSession,
};

use super::digest::{decode_siblings, encode_siblings};
use super::NodeCore;
use crate::message::PeerMessage;
use crate::store::Store;
use crate::types::{Key, Millis, NodeId};

/// One outgoing transfer.
pub(crate) struct TransferRun {
    pub(crate) session: TransferSession<NodeId, Key, Vec<u8>>,
    pub(crate) partition: usize,
}

impl<S: Store> NodeCore<S> {
    /// Starts moving partition `p` to `to` (unless that transfer is already running).
    pub(crate) fn start_transfer(&mut self, p: usize, to: NodeId) {
        // One transfer per (partition, receiver): the id names both, so a resumed or repeated
        // plan finds the running session.
        let id = TransferId(((p as u64) << 40) | (to & ((1 << 40) - 1)));
        if self.transfers.contains_key(&id.0) {
            return;
        }
        let config = TransferConfig {
            ack_timeout: std::time::Duration::from_millis(self.config.request_timeout.max(1) * 5),
            seed: self.rng_seed_for(id.0),
            ..TransferConfig::default()
        };
        let mut session = TransferSession::new(config, id, to);
        if !self.is_up(to) {
            session.peer_down();
        }
        self.transfers.insert(
            id.0,
            TransferRun {
                session,
                partition: p,
            },
        );
    }

    fn rng_seed_for(&self, salt: u64) -> u64 {
        self.generation.rotate_left(21) ^ salt ^ self.id
    }

    pub(crate) fn drain_transfers(&mut self, now: Millis) {
        let ids: Vec<u64> = self.transfers.keys().copied().collect();
        for id in ids {
            let mut complete = false;
            while let Some(run) = self.transfers.get_mut(&id) {
                let partition = run.partition;
                if let Some((to, batch)) = run.session.poll_transmit() {
                    self.stats.counters.transfer_keys += batch.entries.len() as u64;
                    self.transmits.push_back((to, PeerMessage::Transfer(batch)));
                    continue;
                }
                match run.session.poll_event() {
                    Some(TransferEvent::NeedBatch {
                        request,
                        after,
                        max_entries,
                        max_bytes,
                    }) => {
                        let (entries, last) =
                            self.read_range(partition, after, max_entries, max_bytes);
                        if let Some(run) = self.transfers.get_mut(&id) {
                            if run
                                .session
                                .supply(Instant::from_millis(now), request, entries, last)
                                .is_err()
                            {
                                self.stats.counters.bad_messages += 1;
                            }
                        }
                    }
                    Some(TransferEvent::Complete) => complete = true,
                    Some(_) => {}
                    None => break,
                }
            }
            if complete {
                if let Some(run) = self.transfers.remove(&id) {
                    self.drop_partition_if_foreign(run.partition);
                }
            }
        }
    }

    /// The keys of partition `p` after `after`, in order, at most `max` of them and about
    /// `max_bytes` of keys and payloads (at least one entry, however large); and whether they
    /// reach the end of the partition.
    fn read_range(
        &mut self,
        p: usize,
        after: Option<Key>,
        max: usize,
        max_bytes: usize,
    ) -> (Vec<TransferEntry<Key, Vec<u8>>>, bool) {
        use std::ops::Bound;
        let lower = match &after {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Unbounded,
        };
        let keys: Vec<Key> = self.index[p]
            .range((lower, Bound::Unbounded))
            .take(max + 1)
            .map(|(k, _)| k.clone())
            .collect();
        let mut last = keys.len() <= max;
        let mut entries = Vec::new();
        let mut bytes = 0;
        let count = keys.len().min(max);
        for (i, key) in keys.into_iter().take(max).enumerate() {
            let Some(s) = self.local(&key) else { continue };
            let payload = encode_siblings(&s);
            let size = key.len() + payload.len();
            if !entries.is_empty() && bytes + size > max_bytes {
                // The rest goes in the next batch.
                last = false;
                break;
            }
            bytes += size;
            entries.push(TransferEntry { payload, key });
            if bytes >= max_bytes && i + 1 < count {
                last = false;
                break;
            }
        }
        // A key that vanished between the index and the store leaves the batch short; an empty
        // batch that is not the last is not allowed, so end it here (anti-entropy covers the rest).
        let last = last || entries.is_empty();
        (entries, last)
    }

    /// After a completed transfer: a partition this node no longer replicates is dropped.
    fn drop_partition_if_foreign(&mut self, p: usize) {
        if self.replicates(p) || self.transfers.values().any(|r| r.partition == p) {
            return;
        }
        let keys: Vec<(Key, [u8; 32])> = std::mem::take(&mut self.index[p]).into_iter().collect();
        for (key, digest) in keys {
            if self.store.remove(&key).is_ok() {
                self.trees[p].remove(&key, &digest);
            } else {
                self.index[p].insert(key, digest);
            }
        }
    }

    pub(crate) fn receive_transfer(&mut self, from: NodeId, batch: TransferBatch<Key, Vec<u8>>) {
        let mut ok = true;
        for entry in &batch.entries {
            match decode_siblings(&entry.payload) {
                Some(s) => ok &= self.apply(&entry.key, &s).is_ok(),
                None => {
                    self.stats.counters.bad_messages += 1;
                    ok = false;
                }
            }
        }
        if ok {
            self.transmits
                .push_back((from, PeerMessage::TransferAck(batch.ack())));
        }
    }

    pub(crate) fn transfer_ack(&mut self, now: Millis, from: NodeId, ack: TransferAck<Key>) {
        match self.transfers.get_mut(&ack.transfer.0) {
            Some(run) => {
                if run
                    .session
                    .handle_ack(Instant::from_millis(now), &from, &ack)
                    .is_err()
                {
                    self.stats.counters.bad_messages += 1;
                }
            }
            None => self.stats.counters.late_answers += 1,
        }
    }

    pub(crate) fn transfer_peer(&mut self, now: Millis, peer: NodeId, up: bool) {
        for run in self.transfers.values_mut() {
            if *run.session.to() == peer {
                if up {
                    run.session.peer_up(Instant::from_millis(now));
                } else {
                    run.session.peer_down();
                }
            }
        }
    }

    pub(crate) fn transfer_timeouts(&mut self, now: Millis) {
        for run in self.transfers.values_mut() {
            if run
                .session
                .poll_timeout()
                .is_some_and(|t| t.as_millis() <= now)
            {
                run.session.handle_timeout(Instant::from_millis(now));
            }
        }
    }
}
