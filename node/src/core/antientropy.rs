//! Anti-entropy: Merkle sync sessions between replicas of a partition (paper section 4.7).
//!
//! Every sync interval the node picks the next partition it replicates and another live replica
//! of it, and runs a [`SyncSession`] over the partition's tree. The session ends with the keys that
//! differ; the initiator sends its versions of the keys the peer lacks or holds differently and
//! asks for the peer's versions of the others, in `Exchange` messages of at most
//! [`EXCHANGE_BYTES`] each way (a single larger entry travels alone), so that a partition with
//! many differing keys never makes a message past the frame limit.

use std::time::Duration;

use dynamo_merkle::{DiffKind, Event, Message, SyncConfig, SyncSession};
use rand::Rng;

use super::NodeCore;
use crate::message::PeerMessage;
use crate::store::Store;
use crate::types::{Key, Millis, NodeId, Sibs};

/// Most bytes of keys and values in one `Exchange` message (well under the peers' frame limit).
pub const EXCHANGE_BYTES: usize = 1 << 20;

/// About how many bytes an entry takes on the wire: its key and values, and a little for the
/// clock of each version.
fn entry_size(key: &[u8], siblings: &Sibs) -> usize {
    key.len()
        + 16
        + siblings
            .entries()
            .iter()
            .map(|e| {
                32 + e
                    .values
                    .iter()
                    .map(|v| v.as_live().map_or(1, |v| v.len() + 5))
                    .sum::<usize>()
            })
            .sum::<usize>()
}

/// Splits `entries` and `want` into `Exchange` messages of about `budget` bytes each.
fn exchanges(
    partition: u32,
    entries: Vec<(Key, Sibs)>,
    want: Vec<Key>,
    budget: usize,
) -> Vec<PeerMessage> {
    let mut out = Vec::new();
    let mut current: (Vec<(Key, Sibs)>, Vec<Key>, usize) = (Vec::new(), Vec::new(), 0);
    let flush = |out: &mut Vec<PeerMessage>, c: &mut (Vec<(Key, Sibs)>, Vec<Key>, usize)| {
        if !c.0.is_empty() || !c.1.is_empty() {
            out.push(PeerMessage::Exchange {
                partition,
                entries: std::mem::take(&mut c.0),
                want: std::mem::take(&mut c.1),
            });
        }
        c.2 = 0;
    };
    for (key, siblings) in entries {
        let size = entry_size(&key, &siblings);
        if current.2 > 0 && current.2 + size > budget {
            flush(&mut out, &mut current);
        }
        current.2 += size;
        current.0.push((key, siblings));
    }
    for key in want {
        let size = key.len() + 8;
        if current.2 > 0 && current.2 + size > budget {
            flush(&mut out, &mut current);
        }
        current.2 += size;
        current.1.push(key);
    }
    flush(&mut out, &mut current);
    out
}

/// One running session.
pub(crate) struct SyncRun {
    pub(crate) session: SyncSession,
    pub(crate) partition: usize,
    pub(crate) peer: NodeId,
    pub(crate) initiator: bool,
}

impl<S: Store> NodeCore<S> {
    fn sync_config(&self) -> SyncConfig {
        SyncConfig {
            timeout: Duration::from_millis(self.config.request_timeout.max(1) * 10),
        }
    }

    /// Starts a session for the next partition this node replicates.
    pub(crate) fn start_sync(&mut self, now: Millis) {
        let q = self.ring.range_count();
        for _ in 0..q {
            let p = self.sync_cursor % q;
            self.sync_cursor = self.sync_cursor.wrapping_add(1);
            if !self.replicates(p) {
                continue;
            }
            let peers: Vec<NodeId> = self
                .ring
                .preference_list_for_range(p)
                .into_iter()
                .flat_map(|l| l.primaries().copied().collect::<Vec<_>>())
                .filter(|&n| n != self.id && self.is_up(n))
                .collect();
            if peers.is_empty() {
                continue;
            }
            let peer = peers[self.rng.gen_range(0..peers.len())];
            self.next_session += 1;
            // Session ids are unique per initiator: its id, then its counter.
            let id = super::ids::pair_id(self.id, self.next_session);
            let session = SyncSession::initiate(self.sync_config(), id, now, &self.trees[p]);
            self.stats.counters.sync_sessions += 1;
            self.syncs.insert(
                id,
                SyncRun {
                    session,
                    partition: p,
                    peer,
                    initiator: true,
                },
            );
            return;
        }
    }

    pub(crate) fn sync_message(&mut self, now: Millis, from: NodeId, partition: u32, msg: Message) {
        let p = partition as usize;
        if p >= self.trees.len() {
            self.stats.counters.bad_messages += 1;
            return;
        }
        let id = msg.session();
        if !self.syncs.contains_key(&id) {
            if !matches!(msg, Message::Hello { .. }) {
                // A late message of a finished session.
                return;
            }
            let session = SyncSession::respond(self.sync_config(), id);
            self.syncs.insert(
                id,
                SyncRun {
                    session,
                    partition: p,
                    peer: from,
                    initiator: false,
                },
            );
        }
        let Some(run) = self.syncs.get_mut(&id) else {
            return;
        };
        if run.peer != from || run.partition != p {
            self.stats.counters.bad_messages += 1;
            return;
        }
        if run
            .session
            .handle_message(now, &self.trees[p], msg)
            .is_err()
        {
            self.stats.counters.sync_failures += 1;
        }
    }

    pub(crate) fn sync_timeouts(&mut self, now: Millis) {
        for run in self.syncs.values_mut() {
            if run.session.poll_timeout().is_some_and(|t| t <= now) {
                run.session.handle_timeout(now);
            }
        }
    }

    pub(crate) fn drain_syncs(&mut self, now: Millis) {
        let ids: Vec<u64> = self.syncs.keys().copied().collect();
        for id in ids {
            while let Some(run) = self.syncs.get_mut(&id) {
                let partition = run.partition;
                let peer = run.peer;
                if let Some(msg) = run.session.poll_transmit() {
                    if run.initiator && msg.is_tree_part() {
                        self.stats.counters.sync_bytes += msg.encoded_len() as u64;
                    }
                    self.transmits.push_back((
                        peer,
                        PeerMessage::Sync {
                            partition: partition as u32,
                            msg,
                        },
                    ));
                    continue;
                }
                let initiator = run.initiator;
                match run.session.poll_event() {
                    Some(Event::SegmentNeeded(segment)) => {
                        let tree = &self.trees[partition];
                        let entries: Vec<(Key, [u8; 32])> = self.index[partition]
                            .iter()
                            .filter(|(k, _)| tree.segment_of(k) == segment)
                            .map(|(k, d)| (k.clone(), *d))
                            .collect();
                        let failed = self
                            .syncs
                            .get_mut(&id)
                            .is_some_and(|run| run.session.supply(now, segment, entries).is_err());
                        if failed {
                            self.stats.counters.sync_failures += 1;
                        }
                    }
                    Some(Event::Finished(diffs)) => {
                        // Equal trees with a replica: nothing of the partition is missing here.
                        if diffs.is_empty() {
                            self.incoming.remove(&partition);
                        }
                        if initiator {
                            self.exchange_differences(peer, partition, diffs);
                        }
                    }
                    Some(Event::Failed(_)) => {
                        self.stats.counters.sync_failures += 1;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            if self.syncs.get(&id).is_some_and(|r| r.session.is_done()) {
                self.syncs.remove(&id);
            }
        }
    }

    fn exchange_differences(
        &mut self,
        peer: NodeId,
        partition: usize,
        diffs: Vec<dynamo_merkle::KeyDiff>,
    ) {
        if diffs.is_empty() {
            return;
        }
        self.stats.counters.sync_keys_repaired += diffs.len() as u64;
        let mut entries: Vec<(Key, Sibs)> = Vec::new();
        let mut want: Vec<Key> = Vec::new();
        for d in diffs {
            match d.kind {
                DiffKind::MissingLocally => want.push(d.key),
                DiffKind::MissingRemotely => {
                    if let Some(s) = self.local(&d.key) {
                        entries.push((d.key, s));
                    }
                }
                _ => {
                    if let Some(s) = self.local(&d.key) {
                        entries.push((d.key.clone(), s));
                    }
                    want.push(d.key);
                }
            }
        }
        for msg in exchanges(partition as u32, entries, want, EXCHANGE_BYTES) {
            self.transmits.push_back((peer, msg));
        }
    }

    /// Merges a peer's versions and answers the keys it wants.
    pub(crate) fn exchange(
        &mut self,
        _now: Millis,
        from: NodeId,
        partition: u32,
        entries: Vec<(Key, Sibs)>,
        want: Vec<Key>,
    ) {
        for (key, siblings) in &entries {
            let _ = self.apply(key, siblings);
        }
        if want.is_empty() {
            return;
        }
        let back: Vec<(Key, Sibs)> = want
            .into_iter()
            .filter_map(|k| self.local(&k).map(|s| (k, s)))
            .collect();
        for msg in exchanges(partition, back, Vec::new(), EXCHANGE_BYTES) {
            self.transmits.push_back((from, msg));
        }
    }
}
