//! Anti-entropy: Merkle sync sessions between replicas of a partition (paper section 4.7).
//!
//! Every sync interval the node picks the next partition it replicates and another live replica
//! of it, and runs a [`SyncSession`] over the partition's tree. The session ends with the keys that
//! differ; the initiator sends its versions of the keys the peer lacks or holds differently and
//! asks for the peer's versions of the others, in `Exchange` messages of at most
//! [`EXCHANGE_BYTES`] each way (a single larger entry travels alone), so that a partition with
//! many differing keys never makes a message past the frame limit.

use std::collections::BTreeMap;
use std::time::Duration;

use dynamo_merkle::{DiffKind, Event, Message, SyncConfig, SyncSession};
use rand::Rng;

use super::storage::{StorageOp, Then};
use super::NodeCore;
use crate::message::PeerMessage;
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
    /// `Holdings::losses` when it began: a key lost since may have been compared before it
    /// was lost, so trees found equal vouch only for keys lost before (see `vouch_partition`).
    pub(crate) losses: u64,
}

/// Why a sync message was not taken.
pub(crate) enum Refused {
    /// It does not belong to its session (another peer or partition, an unknown partition).
    Bad,
    /// It failed its session.
    Failed,
    /// A late message of a session that ended.
    Late,
    /// A session the peer opens while it has as many answered here as it may.
    Busy,
}

/// Sessions one peer may have answered by this node at once (a peer starts one per sync
/// interval; it may have a few still running when the next starts).
const MAX_ANSWERED_PER_PEER: usize = 8;

/// The anti-entropy machine's state: its tick, which partition comes next, and the sessions
/// running (initiated here or answered). The node picks each session's peer and supplies the
/// partitions' trees and entries.
pub(crate) struct AntiEntropy {
    config: SyncConfig,
    /// Time between sessions started here; `None`: none are.
    interval: Option<Millis>,
    next: Option<Millis>,
    cursor: usize,
    /// The counter of the last session started here (see [`AntiEntropy::new`]).
    started: u64,
    runs: BTreeMap<u64, SyncRun>,
    /// Keys visited to answer segments asked by sessions (each answer of a batch of segments
    /// visits the partition's keys once).
    pub(crate) keys_scanned: u64,
}

impl AntiEntropy {
    /// A machine whose first session starts at `first`, then every `interval`; sessions give up
    /// after ten request timeouts.
    ///
    /// Session ids count on from a point drawn from the node's `generation`, so that those of
    /// one incarnation do not meet those of the next: a peer still holding a session from before
    /// a restart would take the new one's `Hello` for a repeat and stall it until a timeout.
    pub(crate) fn new(
        interval: Option<Millis>,
        first: Option<Millis>,
        request_timeout: Millis,
        generation: u64,
    ) -> Self {
        AntiEntropy {
            // The default bound on a session's entries (4 MiB) keeps its messages a quarter of
            // a frame (`runtime::frame::DEFAULT_MAX_FRAME`), however large a partition.
            config: SyncConfig {
                timeout: Duration::from_millis(request_timeout.max(1) * 10),
                ..SyncConfig::default()
            },
            interval,
            next: first,
            cursor: 0,
            // Spread over the 40 bits of the id a counter gets (a multiplicative hash): two
            // incarnations' ranges overlap only after about 2^40 / (their distance) sessions.
            started: generation.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            runs: BTreeMap::new(),
            keys_scanned: 0,
        }
    }

    /// Whether a session is due at `now` (then the next one is scheduled).
    pub(crate) fn due(&mut self, now: Millis) -> bool {
        if self.next.is_none_or(|t| t > now) {
            return false;
        }
        self.next = self.interval.map(|i| now + i.max(1));
        true
    }

    /// The next partition in turn, of `q`.
    pub(crate) fn next_partition(&mut self, q: usize) -> usize {
        let p = self.cursor % q;
        self.cursor = self.cursor.wrapping_add(1);
        p
    }

    /// Starts a session of node `me` with `peer` over `partition`'s `tree`.
    pub(crate) fn initiate(
        &mut self,
        now: Millis,
        me: NodeId,
        partition: usize,
        peer: NodeId,
        tree: &dynamo_merkle::Tree,
        losses: u64,
    ) {
        self.started = self.started.wrapping_add(1);
        // Session ids are unique per initiator: its id, then its counter.
        let id = super::ids::pair_id(me, self.started);
        let session = SyncSession::initiate(self.config, id, now, tree);
        let run = SyncRun {
            session,
            partition,
            peer,
            initiator: true,
            losses,
        };
        self.runs.insert(id, run);
    }

    /// A message of a session with `from` over `partition` (whose tree is `tree`): a peer's
    /// `Hello` opens a session answered here.
    pub(crate) fn handle_message(
        &mut self,
        now: Millis,
        from: NodeId,
        partition: usize,
        msg: Message,
        tree: &dynamo_merkle::Tree,
        losses: u64,
    ) -> Result<(), Refused> {
        let id = msg.session();
        if !self.runs.contains_key(&id) {
            if !matches!(msg, Message::Hello { .. }) {
                return Err(Refused::Late);
            }
            // A peer starts one session at a time; a handful at once is plenty, and each costs
            // a walk after every input of this node until it ends (or times out).
            let answered = self
                .runs
                .values()
                .filter(|r| !r.initiator && r.peer == from)
                .count();
            if answered >= MAX_ANSWERED_PER_PEER {
                return Err(Refused::Busy);
            }
            let run = SyncRun {
                session: SyncSession::respond(self.config, id),
                partition,
                peer: from,
                initiator: false,
                losses,
            };
            self.runs.insert(id, run);
        }
        let Some(run) = self.runs.get_mut(&id) else {
            return Err(Refused::Late);
        };
        if run.peer != from || run.partition != partition {
            return Err(Refused::Bad);
        }
        run.session
            .handle_message(now, tree, msg)
            .map_err(|_| Refused::Failed)
    }

    /// Time passed: sessions past their timeout fail.
    pub(crate) fn handle_timeout(&mut self, now: Millis) {
        for run in self.runs.values_mut() {
            if run.session.poll_timeout().is_some_and(|t| t <= now) {
                run.session.handle_timeout(now);
            }
        }
    }

    /// The next session to start or to time out.
    pub(crate) fn poll_timeout(&self) -> Option<Millis> {
        let sessions = self.runs.values().filter_map(|r| r.session.poll_timeout());
        sessions.chain(self.next).min()
    }

    /// Sessions running.
    pub(crate) fn len(&self) -> usize {
        self.runs.len()
    }

    /// The ids of the sessions running, in order.
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.runs.keys().copied().collect()
    }

    /// Session `id`.
    pub(crate) fn run_mut(&mut self, id: u64) -> Option<&mut SyncRun> {
        self.runs.get_mut(&id)
    }

    /// Forgets session `id` if it is done.
    pub(crate) fn forget_if_done(&mut self, id: u64) {
        if self.runs.get(&id).is_some_and(|r| r.session.is_done()) {
            self.runs.remove(&id);
        }
    }
}

impl NodeCore {
    /// Starts a session: every other time or so for a partition this node awaits, with a replica
    /// it has not been found equal to yet, if there is one (such a partition serves no reads
    /// here until it is found whole); else for the next partition this node replicates.
    pub(crate) fn start_sync(&mut self, now: Millis) {
        // A guessed ring (a joiner's, before it heard the cluster's) names no partition of its
        // own: copies pulled on it are ones no member's handoff entry names, so the reaper would
        // not wait for them.
        if self.view.ring_provisional {
            return;
        }
        let mut awaited: Vec<(usize, NodeId)> = Vec::new();
        for &p in &self.transfers.incoming {
            let equal = self.transfers.equal.get(&p);
            for n in self.lifting_replicas(p) {
                if self.is_up(n) && !equal.is_some_and(|e| e.contains(&n)) {
                    awaited.push((p, n));
                }
            }
        }
        // Every other session at most: the others keep the partitions served in sync (a pair
        // whose trees never come out equal would take every session).
        if !awaited.is_empty() && self.rng.gen_bool(0.5) {
            let (p, peer) = awaited[self.rng.gen_range(0..awaited.len())];
            self.stats.counters.sync_sessions += 1;
            let losses = self.holdings.losses();
            if let Some(tree) = self.holdings.tree(p) {
                self.anti_entropy
                    .initiate(now, self.id, p, peer, tree, losses);
            }
            return;
        }
        let q = self.view.ring.range_count();
        for _ in 0..q {
            let p = self.anti_entropy.next_partition(q);
            if !self.replicates(p) {
                continue;
            }
            let peers: Vec<NodeId> = super::primaries_of(&self.view.ring, p)
                .into_iter()
                .filter(|&n| n != self.id && self.is_up(n))
                .collect();
            if peers.is_empty() {
                continue;
            }
            let peer = peers[self.rng.gen_range(0..peers.len())];
            self.stats.counters.sync_sessions += 1;
            let losses = self.holdings.losses();
            if let Some(tree) = self.holdings.tree(p) {
                self.anti_entropy
                    .initiate(now, self.id, p, peer, tree, losses);
            }
            return;
        }
    }

    /// A session found this node's tree of `partition` equal to `peer`'s. A partition awaited
    /// here stops being awaited once every other replica of it that does not await it itself
    /// was found equal since the ring last changed: then nothing a write quorum of those
    /// replicas acknowledged is missing here. One replica alone may have missed writes (it was
    /// down), and the copies on their way from the former owner would be the only ones a read
    /// could not do without.
    fn found_equal(&mut self, peer: NodeId, partition: usize) {
        if !self.transfers.incoming.contains(&partition) {
            return;
        }
        let others = self.lifting_replicas(partition);
        if !others.contains(&peer) {
            return;
        }
        let equal = self.transfers.equal.entry(partition).or_default();
        equal.insert(peer);
        if others.iter().all(|n| equal.contains(n)) {
            self.transfers.equal.remove(&partition);
            self.transfers.incoming.remove(&partition);
            self.transfers.since.remove(&partition);
        }
    }

    /// `peer`'s copy of lost `key` is here (see `Holdings::vouched`): it counts if `peer` is
    /// one of the key's other replicas, toward as many of them as must be heard for every write
    /// acknowledged with this node among its W to be among them: N - W + 1 (all of them when
    /// fewer are in the ring).
    pub(crate) fn vouch(&mut self, key: &[u8], peer: NodeId) {
        let others = self
            .key_primaries(key)
            .into_iter()
            .filter(|&n| n != self.id)
            .collect::<Vec<NodeId>>();
        if !others.contains(&peer) {
            return;
        }
        let needed = others
            .len()
            .min((self.config.n + 1).saturating_sub(self.config.w).max(1));
        self.holdings.vouched(key, peer, needed);
    }

    /// A session that began when `Holdings::losses` was `losses` found this node's tree of
    /// `partition` equal to `peer`'s: `peer` holds what this node holds of every key lost here
    /// before the session began (nothing, for a key lost and not written since). Not of one
    /// lost since: its part of the trees may have been compared before.
    fn vouch_partition(&mut self, peer: NodeId, partition: usize, losses: u64) {
        let lost: Vec<Key> = self
            .holdings
            .lost_before(losses)
            .filter(|k| self.partition_of(k) == partition)
            .cloned()
            .collect();
        for key in lost {
            self.vouch(&key, peer);
        }
    }

    /// The replicas a partition this node awaits must be found equal with for the wait to end
    /// (see [`Self::found_equal`]): the others that do not await it, if they are more than
    /// N - W (then every write quorum of the former replicas met one of them) or no member
    /// still hands the partition over (whatever former owners held has arrived where it goes);
    /// or, when every other replica awaits it too and no member hands it over (a restarted
    /// node's wait after missed ring changes, where no transfer is on its way), every other
    /// replica: their copies are all there is. None otherwise: with two of three replicas new,
    /// the one that stays may have missed a write the two former owners acknowledged, and only
    /// the transfer brings it.
    fn lifting_replicas(&self, partition: usize) -> Vec<NodeId> {
        let replicas: Vec<NodeId> = super::primaries_of(&self.view.ring, partition)
            .into_iter()
            .filter(|&n| n != self.id)
            .collect();
        let settled: Vec<NodeId> = replicas
            .iter()
            .copied()
            .filter(|&n| !self.peer_awaits(n, partition))
            .collect();
        let nothing_coming = || {
            self.handoffs_pending()
                .is_some_and(|pending| !pending.contains(&partition))
        };
        if settled.is_empty() {
            if nothing_coming() {
                replicas
            } else {
                Vec::new()
            }
        } else if settled.len() + self.config.w > self.config.n || nothing_coming() {
            settled
        } else {
            Vec::new()
        }
    }

    pub(crate) fn sync_message(&mut self, now: Millis, from: NodeId, partition: u32, msg: Message) {
        let p = partition as usize;
        let Some(tree) = self.holdings.tree(p) else {
            self.stats.counters.bad_messages += 1;
            return;
        };
        // A session for a partition this node does not replicate (its peer's ring is older or
        // newer) is not answered: its tree says nothing of what a replica holds, and a peer
        // awaiting the partition that found it equal would count it as a replica found whole.
        if matches!(msg, Message::Hello { .. }) && !self.replicates(p) {
            self.stats.counters.sync_failures += 1;
            return;
        }
        let losses = self.holdings.losses();
        match self
            .anti_entropy
            .handle_message(now, from, p, msg, tree, losses)
        {
            Ok(()) | Err(Refused::Late) => {}
            Err(Refused::Bad) => self.stats.counters.bad_messages += 1,
            Err(Refused::Failed | Refused::Busy) => self.stats.counters.sync_failures += 1,
        }
    }

    pub(crate) fn drain_syncs(&mut self, now: Millis) {
        for id in self.anti_entropy.ids() {
            // An event taken while gathering a batch of segment requests, handled next.
            let mut stashed: Option<Event> = None;
            while let Some(run) = self.anti_entropy.run_mut(id) {
                let partition = run.partition;
                let peer = run.peer;
                let losses = run.losses;
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
                // No differing segment, not merely no differences found: a session whose
                // segments' entries agreed by the time they were read (a write in between), or
                // that covered only some of its differing segments (`max_entries_bytes`), proves
                // nothing of the others.
                let none_differed = run.session.stats().differing_segments == 0;
                let event = stashed.take().or_else(|| run.session.poll_event());
                match event {
                    Some(Event::SegmentNeeded(segment)) => {
                        // A session asks for all its differing segments at once: they are
                        // answered from one pass over the partition's keys.
                        let mut needed = BTreeMap::from([(segment, Vec::new())]);
                        loop {
                            match run.session.poll_event() {
                                Some(Event::SegmentNeeded(s)) => {
                                    needed.insert(s, Vec::new());
                                }
                                other => {
                                    stashed = other;
                                    break;
                                }
                            }
                        }
                        let Some(tree) = self.holdings.tree(partition) else {
                            break;
                        };
                        let keys = self.holdings.keys(partition);
                        self.anti_entropy.keys_scanned += keys.len() as u64;
                        for (k, d) in keys.iter() {
                            if let Some(entries) = needed.get_mut(&tree.segment_of(k)) {
                                entries.push((k.clone(), *d));
                            }
                        }
                        for (segment, entries) in needed {
                            let failed = self.anti_entropy.run_mut(id).is_some_and(|run| {
                                run.session.supply(now, segment, entries).is_err()
                            });
                            if failed {
                                self.stats.counters.sync_failures += 1;
                            }
                        }
                    }
                    Some(Event::Finished(diffs)) => {
                        if diffs.is_empty() && none_differed {
                            self.found_equal(peer, partition);
                            self.vouch_partition(peer, partition, losses);
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
            self.anti_entropy.forget_if_done(id);
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
        let mut read: Vec<Key> = Vec::new();
        let mut want: Vec<Key> = Vec::new();
        for d in diffs {
            match d.kind {
                DiffKind::MissingLocally => want.push(d.key),
                DiffKind::MissingRemotely => read.push(d.key),
                _ => {
                    read.push(d.key.clone());
                    want.push(d.key);
                }
            }
        }
        if read.is_empty() {
            return self.exchange_out(peer, partition as u32, read, Vec::new(), want);
        }
        self.store_op(
            StorageOp::Read { keys: read },
            Then::ExchangeOut {
                peer,
                partition: partition as u32,
                want,
            },
        );
    }

    /// The versions read for an exchange with `peer` (`found[i]` of `keys[i]`) go out, with the
    /// keys this node wants.
    pub(crate) fn exchange_out(
        &mut self,
        peer: NodeId,
        partition: u32,
        keys: Vec<Key>,
        found: Vec<Option<Sibs>>,
        want: Vec<Key>,
    ) {
        let entries = present(keys, found);
        for msg in exchanges(partition, entries, want, EXCHANGE_BYTES) {
            self.transmits.push_back((peer, msg));
        }
    }

    /// Merges a peer's versions and reads the keys it wants ([`Self::exchange_back`]).
    pub(crate) fn exchange(
        &mut self,
        _now: Millis,
        from: NodeId,
        partition: u32,
        entries: Vec<(Key, Sibs)>,
        want: Vec<Key>,
    ) {
        // Only into a partition this node keeps: a peer on an older ring may still take it for a
        // replica after it handed the partition over (and dropped it), and a copy stored now would
        // sit outside the primaries for good. The peer keeps its versions and syncs with them.
        if !entries.is_empty() && self.keeps_partition(partition as usize) {
            let entries: Vec<(Key, Sibs)> = entries
                .into_iter()
                .filter(|(key, siblings)| self.fits(key, siblings))
                .collect();
            // Versions a reaped tombstone covers are dropped (see `Reaper::fence`), and the
            // sender, which still holds them, is told to reap as this node did: it missed the
            // Reap, or its exchange left before the tombstone reached it.
            let mut kept = Vec::with_capacity(entries.len());
            for (key, siblings) in entries {
                match self.reaper.unfenced(&key, siblings) {
                    Some(siblings) => kept.push((key, siblings)),
                    None => {
                        if let Some(clock) = self.reaper.fence_of(&key) {
                            let clock = clock.clone();
                            self.transmits
                                .push_back((from, PeerMessage::Reap { key, clock }));
                        }
                    }
                }
            }
            let entries = kept;
            if !entries.is_empty() {
                self.store_op(StorageOp::Merge { entries }, Then::Vouched { from });
            }
        }
        // Each key once, and only keys this node holds in that partition (its key index is per
        // partition): a key listed many times was read, held and sent once per mention.
        let index = self.holdings.keys(partition as usize);
        let mut want: Vec<Key> = want
            .into_iter()
            .filter(|k| k.len() <= self.config.max_key_size && index.contains(k))
            .collect();
        want.sort_unstable();
        want.dedup();
        if want.is_empty() {
            return;
        }
        self.store_op(
            StorageOp::Read { keys: want },
            Then::ExchangeBack {
                to: from,
                partition,
            },
        );
    }

    /// Answers the keys a peer wanted with the versions read.
    pub(crate) fn exchange_back(
        &mut self,
        to: NodeId,
        partition: u32,
        keys: Vec<Key>,
        found: Vec<Option<Sibs>>,
    ) {
        let back = present(keys, found);
        for msg in exchanges(partition, back, Vec::new(), EXCHANGE_BYTES) {
            self.transmits.push_back((to, msg));
        }
    }
}

/// The keys found, with their versions.
fn present(keys: Vec<Key>, found: Vec<Option<Sibs>>) -> Vec<(Key, Sibs)> {
    keys.into_iter()
        .zip(found)
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(session: u64, tree: &dynamo_merkle::Tree) -> Message {
        Message::Hello {
            session,
            shape: tree.config(),
            // A root unlike ours: the session goes on, waiting for the peer's next step.
            root: dynamo_merkle::Hash([7; 32]),
        }
    }

    /// Review of the seventeenth session of issue 20: every `Hello` a peer sent opened a session
    /// answered here, kept until its timeout (ten request timeouts) and walked after every input
    /// of the node: a peer sending thousands made every input slower. A peer now has at most
    /// [`MAX_ANSWERED_PER_PEER`] sessions answered here at once; others' are not affected.
    #[test]
    fn a_peer_has_a_bounded_number_of_sessions_answered_at_once() {
        let mut ae = AntiEntropy::new(None, None, 1_000, 1);
        let tree =
            dynamo_merkle::Tree::new(dynamo_merkle::TreeConfig::new(16, 2).expect("a valid shape"));
        let mut refused = 0;
        for session in 0..1_000 {
            if ae
                .handle_message(0, 2, 0, hello(session, &tree), &tree, 0)
                .is_err()
            {
                refused += 1;
            }
        }
        assert!(ae.len() <= MAX_ANSWERED_PER_PEER, "{} sessions", ae.len());
        assert_eq!(refused, 1_000 - MAX_ANSWERED_PER_PEER);
        // Another peer is answered as before.
        assert!(ae
            .handle_message(0, 3, 0, hello(5_000, &tree), &tree, 0)
            .is_ok());
        assert_eq!(ae.len(), MAX_ANSWERED_PER_PEER + 1);
    }
}
