//! Going on once the store answered: each [`Then`] a storage op carried, with the op's result.

use super::coordinator::Answer;
use super::storage::{Reaping, StorageId, StorageResult, Then};
use super::NodeCore;
use crate::message::PeerMessage;
use crate::store::StoreError;
use crate::types::{Key, Millis, NodeId, Sibs};

impl NodeCore {
    /// The store answered op `id` (drained from [`NodeCore::poll_storage`]) with `result`.
    /// Results come back in the order the ops were drained. A result for no op waiting is
    /// counted and ignored.
    pub fn handle_storage(&mut self, now: Millis, id: StorageId, result: StorageResult) {
        let Some((keys, then)) = self.storage.take(id) else {
            self.stats.counters.bad_messages += 1;
            return;
        };
        match result {
            StorageResult::Merge(results) => {
                let whole = results.len() == keys.len();
                let mut ok = whole;
                // Indices of the entries the store failed (allocates only on a failure).
                let mut failed: Vec<usize> = Vec::new();
                let mut foreign = false;
                for (i, (key, r)) in keys.iter().zip(results).enumerate() {
                    let kept = r.is_ok();
                    match r {
                        Ok(merged) if merged.found && merged.stored.is_none() => {}
                        Ok(merged) => {
                            let p = self.partition_of(key);
                            if !merged.found {
                                // Indexed but not found: a damaged record the store set aside,
                                // as a read finds one (a fresh epoch: its dots may be lost).
                                self.record_gone(p, key);
                            }
                            if let Some(merged) = merged.stored {
                                self.stored(now, p, key, &merged);
                                // A partition not replicated here and not handed over yet (a
                                // pass that streams it marked itself dirty in `stored`).
                                foreign |= !self.replicates(p) && !self.transfers.handing_over(p);
                            }
                        }
                        Err(_) => {
                            ok = false;
                            failed.push(i);
                        }
                    }
                    if kept {
                        self.copy_merged(&then, key);
                    }
                }
                // Hints the store failed to keep are named in the acknowledgement: the fallback
                // sends them again, and forgets the others.
                let then = match then {
                    Then::HintsAck {
                        from,
                        mut ack,
                        entries,
                    } => {
                        let refused = entries
                            .into_iter()
                            .enumerate()
                            .filter(|(i, _)| !whole || failed.contains(i))
                            .map(|(_, id)| id);
                        ack.refused.extend(refused);
                        Then::HintsAck {
                            from,
                            ack,
                            entries: Vec::new(),
                        }
                    }
                    other => other,
                };
                self.merged_then(now, then, ok, foreign);
            }
            StorageResult::Read(found) => {
                let found: Vec<Option<Sibs>> = match found {
                    Ok(found) if found.len() == keys.len() => {
                        for (key, f) in keys.iter().zip(&found) {
                            self.read_back(key, f);
                        }
                        found
                    }
                    _ => {
                        // A store that cannot read answers nothing: counted; a replica read is
                        // refused (not found would count toward R), a transfer's batch is
                        // retried, anything else takes it as not found.
                        self.stats.counters.bad_messages += 1;
                        match then {
                            Then::TransferBatch { transfer, .. } => {
                                self.transfer_failed(transfer);
                                self.drain(now);
                                return;
                            }
                            Then::ReadReply { .. } | Then::LocalRead { .. } => {
                                self.read_refused(now, then, false);
                                self.drain(now);
                                return;
                            }
                            _ => {}
                        }
                        vec![None; keys.len()]
                    }
                };
                self.read_then(now, then, keys, found);
            }
            StorageResult::RemoveIf(result) => {
                if let Then::Reaped { key } = then {
                    match result {
                        Ok(Reaping::Removed) => self.reaped(&key),
                        Ok(Reaping::Pruned(rest)) => {
                            let p = self.partition_of(&key);
                            self.stored(now, p, &key, &rest);
                        }
                        Ok(Reaping::Unchanged) | Err(_) => {}
                    }
                }
            }
            StorageResult::Remove(results) => {
                if let Then::Dropped { partition } = then {
                    for (key, r) in keys.iter().zip(results) {
                        if r.is_ok() {
                            self.dropped(partition, key);
                        }
                    }
                }
            }
            StorageResult::Written(r) => self.written_then(now, then, r),
        }
        self.drain(now);
    }

    /// A merge is done: `ok` unless an entry failed; `foreign` if one changed a partition this
    /// node does not replicate.
    fn merged_then(&mut self, now: Millis, then: Then, ok: bool, foreign: bool) {
        // A partition this node does not replicate changed (a write a fallback keeps without
        // hinted handoff, a late write to a former owner): it goes on to the primaries. Hints
        // and transfers see to it once acknowledged.
        if foreign && !matches!(then, Then::HintsAck { .. } | Then::TransferAck { .. }) {
            self.kept_foreign(now);
        }
        match then {
            Then::HintsAck { from, ack, .. } => self.hints_kept(now, from, ack, foreign),
            Then::TransferAck { from, ack, ok: o } => {
                self.transfer_kept(now, from, ack, o && ok, foreign)
            }
            Then::Minted(minted) => self.minted(now, *minted, ok),
            // A read repair the store failed is the store's failure, not a bad message (as a
            // replica write's is not).
            Then::Repaired => {}
            Then::Nothing | Then::Vouched { .. } => {
                if !ok {
                    self.stats.counters.bad_messages += 1;
                }
            }
            then => self.then_written(now, then, ok),
        }
    }

    /// A merge of `then`'s kind kept `key`: a copy of what other replicas hold (read repair, a
    /// former owner's transfer, an anti-entropy exchange) ends or counts toward the end of a lost
    /// record of it (see `Holdings::lost`); a client's write, a hint or the coordinator's own
    /// version do not, unless no other replica holds the key; nor does a write passed on without
    /// an acknowledgement that is not read repair (see `replica_write`). (With anti-entropy off,
    /// a key every replica lost stays refused: only equal trees show that none holds more.)
    fn copy_merged(&mut self, then: &Then, key: &[u8]) {
        if !self.holdings.is_lost(key) {
            return;
        }
        match then {
            Then::Repaired | Then::TransferAck { .. } => self.holdings.found(key),
            Then::Vouched { from } => self.vouch(key, *from),
            // A client's write, a hint: no copy of what the replicas hold, unless there is no
            // other replica (N = 1), where nothing else would ever end the loss.
            _ if self.key_primaries(key).iter().all(|&n| n == self.id) => self.holdings.found(key),
            _ => {}
        }
    }

    /// A replica write is done (`ok`: kept): acknowledged to its coordinator.
    pub(crate) fn then_written(&mut self, now: Millis, then: Then, ok: bool) {
        match then {
            Then::WriteAck {
                to,
                req: Some(req),
                ok: o,
            } => self
                .transmits
                .push_back((to, PeerMessage::WriteAck { req, ok: o && ok })),
            Then::LocalWrite { req, ok: o } => {
                let answer = if o && ok { Answer::Ack } else { Answer::Failed };
                self.local_answered(now, req, answer);
            }
            _ => {}
        }
    }

    /// A replica read this node cannot answer truthfully (the store failed it, or, `lost`, it
    /// lost the key's record): refused, so that it does not count toward R as "not found"; a
    /// lost copy is said to be lost, for the coordinator's read repair to refill it.
    fn read_refused(&mut self, now: Millis, then: Then, lost: bool) {
        match then {
            Then::ReadReply { to, req } => {
                let msg = if lost {
                    PeerMessage::ReadLost { req }
                } else {
                    PeerMessage::ReadRefused { req }
                };
                self.transmits.push_back((to, msg));
            }
            Then::LocalRead { req } => {
                let answer = if lost { Answer::Lost } else { Answer::Failed };
                self.local_answered(now, req, answer);
            }
            _ => {}
        }
    }

    /// Sends `msg` to `to` once what this node stored so far is durable: on a durable store at
    /// once (the driver holds every answer until the flush before it is synced), on one that
    /// may lose flushed writes (`--buffered`) after a sync. For acknowledgements after which
    /// the peer deletes its copy (hints taken, hand-overs): on a buffered store a power loss
    /// could otherwise take back the only copy left, one the peer had made durable long before.
    pub(crate) fn send_once_durable(&mut self, to: NodeId, msg: PeerMessage) {
        if self.durable {
            self.transmits.push_back((to, msg));
        } else {
            self.store_op(
                super::storage::StorageOp::Sync,
                Then::SyncedSend {
                    to,
                    msg: Box::new(msg),
                },
            );
        }
    }

    /// Whether a read answer of `siblings` waits for a sync: only a tombstone, on a store that
    /// may lose flushed writes (see `read_then`).
    fn tombstone_to_sync(&self, siblings: &Option<Sibs>) -> bool {
        !self.durable && siblings.as_ref().is_some_and(Sibs::is_tombstone_only)
    }

    /// A read is done: `found[i]` are the stored versions of `keys[i]`.
    fn read_then(&mut self, now: Millis, then: Then, keys: Vec<Key>, found: Vec<Option<Sibs>>) {
        let first = || keys.first().cloned().unwrap_or_default();
        let read = matches!(then, Then::ReadReply { .. } | Then::LocalRead { .. });
        if read && self.holdings.is_lost(&first()) {
            return self.read_refused(now, then, true);
        }
        match then {
            Then::ReadReply { to, req } => {
                let key = first();
                let siblings = self.holdings.held(&key, found.into_iter().next().flatten());
                if self.tombstone_to_sync(&siblings) {
                    // A reaper's check may count this answer, and reap the key everywhere: on
                    // a store that may lose flushed writes (`--buffered`) a crash could give
                    // this replica back the deleted value once no tombstone is left anywhere to
                    // cover it, so the tombstone is made durable first.
                    self.store_op(
                        super::storage::StorageOp::Sync,
                        Then::SyncedReadReply { to, req, siblings },
                    );
                } else {
                    self.transmits
                        .push_back((to, PeerMessage::ReadReply { req, siblings }));
                }
            }
            Then::LocalRead { req } => {
                let key = first();
                let siblings = self.holdings.held(&key, found.into_iter().next().flatten());
                let reaping = |core: &Self| {
                    matches!(
                        core.requests.get(req),
                        Some(super::requests::Pending::Get {
                            origin: super::requests::Origin::Reap,
                            ..
                        })
                    )
                };
                if self.tombstone_to_sync(&siblings) && reaping(self) {
                    // The reaper's own copy, as a replica's above.
                    self.store_op(
                        super::storage::StorageOp::Sync,
                        Then::SyncedLocalRead { req, siblings },
                    );
                } else {
                    self.local_answered(now, req, Answer::Versions(siblings));
                }
            }
            Then::Mint(minting) => {
                let current = found.into_iter().next().flatten();
                self.mint(now, *minting, current);
            }
            Then::TransferBatch {
                transfer,
                request,
                max_bytes,
                more,
            } => self.transfer_read(now, transfer, request, max_bytes, more, keys, found),
            Then::ExchangeOut {
                peer,
                partition,
                want,
            } => self.exchange_out(peer, partition, keys, found, want),
            Then::ExchangeBack { to, partition } => self.exchange_back(to, partition, keys, found),
            _ => {}
        }
    }

    /// A metadata write (or a lease) is done.
    fn written_then(&mut self, now: Millis, then: Then, result: Result<(), StoreError>) {
        match then {
            Then::Lease(minted) => self.leased(now, *minted, result),
            Then::SyncedReadReply { to, req, siblings } => {
                let msg = match result {
                    Ok(()) => PeerMessage::ReadReply { req, siblings },
                    Err(_) => {
                        self.stats.counters.bad_messages += 1;
                        PeerMessage::ReadRefused { req }
                    }
                };
                self.transmits.push_back((to, msg));
            }
            Then::SyncedSend { to, msg } => match result {
                Ok(()) => self.transmits.push_back((to, *msg)),
                Err(_) => self.stats.counters.bad_messages += 1,
            },
            Then::SyncedLocalRead { req, siblings } => {
                let answer = match result {
                    Ok(()) => Answer::Versions(siblings),
                    Err(_) => {
                        self.stats.counters.bad_messages += 1;
                        Answer::Failed
                    }
                };
                self.local_answered(now, req, answer);
            }
            _ => {
                if result.is_err() {
                    self.stats.counters.bad_messages += 1;
                }
            }
        }
    }
}
