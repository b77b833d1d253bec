//! [`NodeCore`]: the sans-IO Dynamo node.
//!
//! One value per node composes the protocol crates; it does no I/O, and reaches its store only
//! through [`StorageOp`]s that its driver executes:
//!
//! - `dynamo-ring` places keys (strategy 3, Q partitions) and yields preference lists;
//! - `dynamo-gossip` tells who is a member and who is up;
//! - `dynamo-quorum` runs one coordinator per client request (sloppy or strict, read repair);
//! - `dynamo-vclock` versions values as dotted version vector sets, under `(node, epoch)` actors
//!   chosen so that no dot is issued twice (`epochs`; why DVV sets: `coordinator`);
//! - `dynamo-handoff` keeps hints for nodes that were down and delivers them when they return;
//! - `dynamo-merkle` keeps one tree per partition and runs anti-entropy sessions.
//!
//! # Driving a core
//!
//! A node starts from what its store kept ([`Boot::load`], the one time the store is read
//! directly). Inputs: [`NodeCore::handle_client`], [`NodeCore::handle_message`],
//! [`NodeCore::handle_timeout`], [`NodeCore::peer_unreachable`], [`NodeCore::handle_storage`], each
//! with the current time. After any input, execute what [`NodeCore::poll_storage`] asks, in
//! order, handing each result back (which may ask for more), and drain
//! [`NodeCore::poll_transmit`], [`NodeCore::poll_reply`] and [`NodeCore::poll_event`]; call
//! `handle_timeout` again at [`NodeCore::poll_timeout`]. A durable driver flushes the store before
//! it sends what it drained after the writes it executed, so that no acknowledgement leaves
//! before the write it acknowledges is durable. [`StoredCore`] does all of this on a [`Store`](crate::store::Store)
//! but the flush. `now` must not go backwards, and must be larger across restarts (the
//! simulator's virtual time, or wall-clock milliseconds): the gossip generation is derived from
//! it.

mod antientropy;
mod boot;
mod change;
mod coordinator;
pub(crate) mod digest;
mod epochs;
mod events;
mod failures;
mod fresh;
mod holdings;
mod ids;
mod key_index;
pub(crate) mod membership;
mod minting;
mod reaper;
mod replica;
mod requests;
mod restored;
mod resume;
mod scrub;
mod seal;
mod silence;
mod staleness;
mod start;
mod stats;
mod status;
mod storage;
#[cfg(test)]
mod storage_tests;
mod stored;
#[cfg(test)]
mod tests;
mod transfer;
mod transfers;

use std::collections::{BTreeMap, VecDeque};

use crate::types::ReplayRng;
use dynamo_gossip::Gossip;
use dynamo_handoff::HintLog;
use dynamo_merkle::Tree;
use dynamo_ring::Ring;

pub(crate) use boot::check_format;
pub use boot::Boot;
pub use change::{
    ChangeError, ChangePlan, ChangeRequest, PartitionSize, PlannedMember, PlannedMove,
};
pub use coordinator::MAX_REQUEST_TIMEOUT;
pub use digest::siblings_digest;
pub use events::NodeEvent;
pub use fresh::UNSURE_ROUNDS;
pub use seal::{ContextError, ContextSeal, TAG_LEN as CONTEXT_TAG_LEN};
pub use staleness::{StalenessChoice, StalenessStatus};
pub use stats::{
    Counters, LatencyBuckets, LatencySummary, NodeStats, RequestMetrics, RequestOp, RequestOutcome,
    LATENCY_BUCKETS,
};
pub use status::{MemberStatus, NodeStatus};
pub use storage::{execute, merged, reaped, Merged, Reaping, StorageId, StorageOp, StorageResult};
pub use stored::{SizeScan, StoredCore};
#[cfg(test)]
pub(crate) use transfer::decode_checkpoint;
#[cfg(test)]
pub(crate) use transfers::encode_checkpoint;

use crate::config::NodeConfig;
use crate::message::{ClientReply, ClientRequest, PeerMessage};
use crate::store::StoreError;
use crate::types::{Key, Millis, NodeId, RequestId, Sibs};

use antientropy::AntiEntropy;
use coordinator::Answer;
use epochs::Epochs;
use holdings::Holdings;
use membership::View;
use requests::{Requests, RoundTrip};
use storage::Storage;
use transfers::Transfers;

/// Why a node could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The store failed or holds damaged data.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Meta keys in the store.
pub(crate) const META_GENERATION: &str = "generation";
pub(crate) const META_NODE_ID: &str = "node-id";
pub(crate) const META_FORMAT: &str = "format";
/// The stored-record format this version writes: 3 = objects as msgpack byte strings
/// ([`crate::types::bytes`]); 2 = dotted version vector sets with objects as arrays of integers,
/// which this version still reads (a store of format 2 is marked 3 at its first start here, so
/// that an earlier version refuses it rather than take its records for damage); 1, unmarked = a
/// vector clock per version, which this version cannot read.
pub(crate) const FORMAT: u64 = 3;
/// The oldest stored-record format this version reads.
pub(crate) const OLDEST_FORMAT: u64 = 2;

/// A Dynamo node without I/O. See the [module docs](self) for the driving order.
pub struct NodeCore {
    id: NodeId,
    address: String,
    config: NodeConfig,
    /// Whether the store keeps every flushed write through a crash (not `--buffered`): a
    /// replica on one that may not makes a tombstone durable before it answers a read with it
    /// (see `read_then`).
    durable: bool,
    /// Storage ops not yet drained, and what to do when each is done.
    storage: Storage,
    epochs: Epochs,
    generation: u64,
    /// The gossip generation as last written to the store: gossip raises it past what peers
    /// knew of this id (the clock behind), and the next start must begin above that.
    generation_stored: u64,
    rng: ReplayRng,
    gossip: Gossip<NodeId, String>,
    /// This node's view of the cluster: the ring and its members.
    view: View,
    holdings: Holdings,
    hints: HintLog<NodeId, Vec<u8>>,
    /// Anti-entropy: its tick and its sessions.
    anti_entropy: AntiEntropy,
    /// Where reading back stored keys is (see `scrub`).
    scrub: scrub::Scrub,
    /// Ownership transfers, out and in.
    transfers: Transfers,
    /// How old this node's store is, and whether a new one may answer reads yet (see `fresh`).
    fresh: fresh::Fresh,
    /// Whether a restarted node's store went back, and how far its runs got (see `restored`).
    restored: restored::Restored,
    /// Peers silent through a request's deadline: requests route around them (see `silence`).
    silence: silence::Silence,
    // Ordered maps everywhere: iteration order must not depend on a random hasher, so that the
    // same inputs give the same outputs (the simulator replays runs from a seed).
    /// Requests in flight: coordinated here, forwarded, or the reaper's.
    requests: Requests,
    /// Puts minting a dot, by key, with the puts of the key waiting for them (see
    /// `minting::Minting`).
    minting: BTreeMap<Key, VecDeque<minting::Minting>>,
    /// Puts that read their key and wait for a lease of actor epochs to be durable.
    lease_waiters: VecDeque<(minting::Minting, Sibs)>,
    /// Tombstones and when to reap them.
    reaper: reaper::Reaper,
    /// What contexts handed to clients are sealed with (see `seal`).
    seal: ContextSeal,
    transmits: VecDeque<(NodeId, PeerMessage)>,
    replies: VecDeque<(RequestId, ClientReply)>,
    stats: NodeStats,
    /// Events for operators, drained by [`NodeCore::poll_event`].
    events: events::Events,
}

impl NodeCore {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's epoch floor: the lowest actor epoch it may still count under (see `epochs`).
    /// It changes when the store was lost, and at every restart on a buffered store.
    pub fn epoch(&self) -> u64 {
        self.epochs.floor()
    }

    /// This node's gossip generation: it grows at every restart, and past what peers knew of
    /// this id when they knew a later one (a node that lost its store, its clock behind).
    pub fn generation(&self) -> u64 {
        self.gossip.local_state().generation()
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The current ring.
    pub fn ring(&self) -> &Ring<NodeId> {
        &self.view.ring
    }

    /// The current ring's version (bumped by every membership change; 0 for a ring bootstrapped
    /// from `initial_members`) and the node that made it.
    pub fn ring_version(&self) -> (u64, NodeId) {
        (self.view.ring_state.version, self.view.ring_state.claimant)
    }

    /// Where `peer` listens, as learnt from gossip or the seed list.
    pub fn address_of(&self, peer: NodeId) -> Option<&str> {
        self.view.addresses.get(&peer).map(String::as_str)
    }

    /// Counters and latency histograms.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The driver flushed the store in `micros` microseconds (a sample of the replicas' service
    /// time for the live staleness predictions: see [`NodeStats::record_flush`]).
    pub fn flushed(&mut self, micros: u64) {
        self.stats.record_flush(micros);
    }

    /// Whether `peer` is believed up: this node, a node gossip has not declared down, or a
    /// member gossip has not heard from yet while this node is young (a member never heard from
    /// is down once the failure detector would have suspected it: see `failures`).
    pub fn is_up(&self, peer: NodeId) -> bool {
        peer == self.id
            || match self.gossip.node_state(&peer) {
                Some(_) => self.gossip.is_up(&peer),
                None => self.view.members.contains(&peer) && !self.view.unheard.contains(&peer),
            }
    }

    /// Whether requests may go to `peer`: believed up ([`NodeCore::is_up`]) and not silent
    /// through a request's deadline since this node last heard from it (see `silence`).
    pub(crate) fn routable(&self, peer: NodeId) -> bool {
        self.is_up(peer) && !self.silence.is_silent(peer)
    }

    /// Hints held here for other nodes, not yet delivered.
    pub fn hints_pending(&self) -> usize {
        self.hints.len()
    }

    /// Outgoing ownership transfers running or waiting for a retry.
    pub fn transfers_running(&self) -> usize {
        self.transfers.len()
    }

    /// Partitions this node replicates and awaits (it answers no reads of them until a transfer
    /// or anti-entropy brings them).
    pub fn partitions_awaited(&self) -> usize {
        self.transfers.incoming.len()
    }

    /// Hints waiting, by the node they are for.
    pub fn hints_by_node(&self) -> Vec<(NodeId, usize)> {
        self.hints
            .nodes()
            .map(|(&id, _)| (id, self.hints.pending_for(&id)))
            .collect()
    }

    /// Merkle roots of the partitions this node replicates, for convergence checks.
    pub fn partition_roots(&self) -> Vec<(u32, [u8; 32])> {
        (0..self.view.ring.range_count())
            .filter(|&p| self.replicates(p))
            .filter_map(|p| Some((p as u32, root_bytes(self.holdings.tree(p)?))))
            .collect()
    }

    /// Whether this node is one of the N primaries of partition `p`.
    pub(crate) fn replicates(&self, p: usize) -> bool {
        self.view.replicated.get(p).copied().unwrap_or(false)
    }

    /// The PBS predictions from this node's measured round trips (see `staleness`), for the
    /// configured N, R, W and its neighbours; `None` until enough answers were timed.
    pub fn staleness(&self) -> Option<StalenessStatus> {
        staleness::predict(&self.stats, self.config.n, self.config.r, self.config.w)
    }

    /// A remote replica answered request `req` (of kind `kind`): one round-trip sample.
    pub(crate) fn answer_timed(
        &mut self,
        now: Millis,
        from: NodeId,
        req: RequestId,
        kind: RoundTrip,
    ) {
        if from == self.id {
            return;
        }
        if let Some(elapsed) = self.requests.elapsed(now, req, kind) {
            let h = match kind {
                RoundTrip::Write => &mut self.stats.write_round_trip,
                RoundTrip::Read => &mut self.stats.read_round_trip,
            };
            // Recording fails only past the histogram's range, which auto-resizes.
            let _ = h.record(elapsed);
        }
    }

    /// Next storage op to execute (see [`StorageOp`] for the contract): in this order, each
    /// result handed back with [`NodeCore::handle_storage`].
    pub fn poll_storage(&mut self) -> Option<(StorageId, StorageOp)> {
        self.storage.poll()
    }

    /// Storage ops drained whose results have not come back.
    pub fn storage_in_flight(&self) -> usize {
        self.storage.in_flight()
    }

    /// Next message to send to a peer.
    pub fn poll_transmit(&mut self) -> Option<(NodeId, PeerMessage)> {
        self.transmits.pop_front()
    }

    /// Next reply to a client request.
    pub fn poll_reply(&mut self) -> Option<(RequestId, ClientReply)> {
        self.replies.pop_front()
    }

    /// Next event for operators (membership, failure detection, ring, handoff, transfers); a
    /// driver that logs them drains this after each input. Undrained events are bounded.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop()
    }

    /// When [`NodeCore::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut next = self.gossip.poll_timeout();
        let mut consider = |t: Option<Millis>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.hints.poll_timeout());
        consider(self.reaper.poll_timeout());
        consider(self.anti_entropy.poll_timeout());
        for run in self.transfers.runs.values() {
            consider(run.session.poll_timeout());
        }
        consider(self.transfers.foreign_check);
        // Not while a restart is in doubt: the dones wait for it (`say_done_again`), and a
        // deadline left in the past would have the node handle timeouts in a busy loop.
        if !self.restored.doubt {
            consider(self.transfers.done_again_at());
        }
        consider(self.requests.poll_timeout());
        next
    }

    /// A client request arrived.
    pub fn handle_client(&mut self, now: Millis, req: RequestId, request: ClientRequest) {
        self.client_request(now, requests::Origin::Client(req), request);
        self.drain(now);
    }

    /// A message from `from` arrived.
    pub fn handle_message(&mut self, now: Millis, from: NodeId, msg: PeerMessage) {
        self.silence.heard(from, now);
        // A node taken out of the ring while down hands nothing over (`RingState::forced`):
        // nobody waited for its copies, and one could bring back a value whose delete was
        // reaped meanwhile. Until it has heard the ring that says so (its start, a partition
        // just healed), it may still send them: only its gossip is taken, which tells it.
        if self.forced_out(from) && !matches!(msg, PeerMessage::Gossip(_)) {
            self.stats.counters.bad_messages += 1;
            return;
        }
        match msg {
            PeerMessage::Gossip(m) => {
                // The address a peer (authenticated as `from`) gives in its message is where it
                // listens now; gossip answers it there. A refused message is counted in the
                // gossip machine's own stats.
                let address = m.sender_address.clone();
                if self.gossip.handle_message(now, from, m).is_ok() {
                    self.view.addresses.insert(from, address);
                }
            }
            PeerMessage::Forward { req, request } => {
                // The forward's own timeout (what is left of its client's), bounded as a
                // client's is: how long a copy of it could still come.
                let timeout = request
                    .options()
                    .timeout
                    .unwrap_or(self.config.request_timeout)
                    .min(coordinator::MAX_REQUEST_TIMEOUT.max(self.config.request_timeout));
                if self.requests.first_forward(now, from, req, timeout) {
                    self.client_request(now, requests::Origin::Peer(from, req), request);
                } else {
                    self.stats.counters.bad_messages += 1;
                }
            }
            PeerMessage::ForwardReply { req, reply } => self.forward_reply(now, from, req, reply),
            PeerMessage::Write {
                req,
                key,
                siblings,
                hint,
            } => self.replica_write(now, from, req, key, siblings, hint),
            PeerMessage::WriteAck { req, ok } => {
                if ok {
                    self.answer_timed(now, from, req, RoundTrip::Write);
                }
                let answer = if ok { Answer::Ack } else { Answer::Failed };
                self.replica_answered(now, from, req, answer);
            }
            PeerMessage::Read { req, key, primary } => self.replica_read(from, req, &key, primary),
            PeerMessage::ReadReply { req, siblings } => {
                self.answer_timed(now, from, req, RoundTrip::Read);
                self.replica_answered(now, from, req, Answer::Versions(siblings));
            }
            PeerMessage::Hints(batch) => self.receive_hints(from, batch),
            PeerMessage::HintsAck(ack) => {
                if self.hints.handle_message(now, from, ack).is_err() {
                    self.stats.counters.bad_messages += 1;
                }
            }
            PeerMessage::Sync { partition, msg } => self.sync_message(now, from, partition, msg),
            PeerMessage::Exchange {
                partition,
                entries,
                want,
            } => self.exchange(now, from, partition, entries, want),
            PeerMessage::Reap { key, clock } => self.reap(now, &key, &clock),
            PeerMessage::Transfer(batch) => self.receive_transfer(from, batch),
            PeerMessage::TransferAck(ack) => self.transfer_ack(now, from, ack),
            PeerMessage::ReadRefused { req } => {
                self.replica_answered(now, from, req, Answer::Failed)
            }
            PeerMessage::ReadLost { req } => self.replica_answered(now, from, req, Answer::Lost),
            PeerMessage::TransferDone { partition, version } => {
                self.transfer_done(from, partition as usize, version)
            }
            PeerMessage::TransferDoneAck { partition, version } => {
                self.transfers
                    .done_acknowledged(partition as usize, from, version);
            }
        }
        self.drain(now);
    }

    /// Time passed: run whatever is due.
    pub fn handle_timeout(&mut self, now: Millis) {
        let rounds = self.gossip.stats().rounds;
        self.gossip.handle_timeout(now);
        if self.gossip.stats().rounds != rounds {
            // Once a round, each peer held silent is asked for a sign of life (see `silence`).
            for peer in self.silence.silent() {
                self.gossip.probe(&peer);
            }
        }
        self.detect_unheard(now);
        // A vanished former member the claimant may force out now (no gossip event may come).
        self.track_vanished();
        if self.claimant() == Some(self.id) && !self.forgettable_vanished(now).is_empty() {
            self.claim(now);
        }
        self.hints.handle_timeout(now);
        self.anti_entropy.handle_timeout(now);
        self.transfer_timeouts(now);
        if self.anti_entropy.due(now) {
            self.start_sync(now);
            self.scrub();
        }
        self.start_reaps(now);
        self.request_timeouts(now);
        self.drain(now);
    }

    /// `peer` could not be reached: requests route around it until it is heard from again (see
    /// `silence`).
    fn silenced(&mut self, peer: NodeId) {
        if peer != self.id && self.silence.silence(peer) {
            self.count_silenced();
        }
    }

    /// A peer became silent here: counted (`dynamo_peers_silenced_total`).
    fn count_silenced(&mut self) {
        self.stats.counters.silenced += 1;
    }

    /// The driver lost its link to `peer`: requests waiting on it fail over now, and new ones
    /// route around it until it is heard from again. Messages that
    /// were in flight may or may not have arrived, so a request forwarded to `peer` is not
    /// coordinated here (it would be applied twice); it waits for its answer or its deadline.
    pub fn peer_unreachable(&mut self, now: Millis, peer: NodeId) {
        self.silenced(peer);
        self.fail_peer(now, peer);
        self.drain(now);
    }

    /// The driver certainly did not deliver `msg` to `peer` (the connection was refused, the
    /// queue was full): like [`NodeCore::peer_unreachable`] (requests route around `peer` until
    /// it is heard from), and a request forwarded in `msg` is coordinated here instead.
    pub fn undelivered(&mut self, now: Millis, peer: NodeId, msg: PeerMessage) {
        self.silenced(peer);
        if let PeerMessage::Forward { req, .. } = msg {
            self.forward_undelivered(now, peer, req);
        }
        self.fail_peer(now, peer);
        self.drain(now);
    }

    /// Leaves the cluster gracefully: says so in gossip; the claimant takes the node out of the
    /// ring (when the ring can lose it: not below N nodes, see [`NodeCore::check_leave`]), and
    /// the node then hands its data to the nodes that take over its ranges and says it left.
    ///
    /// Only the claimant makes rings. A leaving node that made its own ring made one at the
    /// claimant's next version, and one of the two rings lost: a join or a leave the losing ring
    /// held was undone everywhere, and a node it took out could say it left while the winning
    /// ring still counted on it. The request is persisted: a restart goes on leaving.
    pub fn leave(&mut self, now: Millis) {
        self.view.leaving = true;
        // Leaving, not yet left: the node stays in every view (so its status spreads, and its
        // transfers go on) until it has handed every range over.
        let _ = self.gossip.set_status(dynamo_gossip::Status::Leaving);
        // Durable at once (an admin request is answered without waiting for a flush): a crash
        // before the claimant heard it must not forget the leave.
        self.store_op(
            storage::StorageOp::PutMeta {
                name: membership::LEAVE_KEY.into(),
                value: vec![1],
                sync: true,
            },
            storage::Then::Meta,
        );
        self.drain(now);
        self.announce_left_when_done();
        self.drain(now);
    }

    /// Whether this node left the ring and holds nothing for anyone: no range to hand over, no
    /// hint (as a fallback it may hold the only copies of writes it acknowledged; they are
    /// delivered, or passed on to the key's other primaries when they expire, before it is done),
    /// and no hand-over's end unacknowledged by a receiver heard up. Then it may be stopped.
    pub(crate) fn handed_over(&self) -> bool {
        self.view.leaving
            && self.transfers.is_empty()
            && self.hints.is_empty()
            && !self.view.ring.contains(&self.id)
            // A receiver heard up gets the hand-over's end until it acknowledges it (stopped
            // now, this node would say it no more). One down cannot take it: once it is back,
            // anti-entropy ends its wait (with anti-entropy off, nothing does).
            && !self
                .transfers
                .unacknowledged
                .keys()
                .any(|(_, to)| self.gossip.is_up(to))
    }

    /// Whether this node announced that it left.
    pub(crate) fn has_left(&self) -> bool {
        self.gossip.local_state().status() == dynamo_gossip::Status::Left
    }

    /// Writes a generation gossip raised (peers knew a later incarnation of this id: the clock
    /// reads earlier than when it last started), so that the next start begins above it.
    fn persist_generation(&mut self) {
        // At least the request ids' run reserved (see `Requests::reserved_run`).
        let generation = self
            .gossip
            .local_state()
            .generation()
            .max(self.requests.reserved_run());
        if generation > self.generation_stored {
            self.generation_stored = generation;
            self.store_op(
                storage::StorageOp::PutMeta {
                    name: META_GENERATION.into(),
                    value: generation.to_be_bytes().to_vec(),
                    sync: false,
                },
                storage::Then::Meta,
            );
        }
    }

    /// A leaving node that holds nothing more to hand over announces that it left.
    fn announce_left_when_done(&mut self) {
        if self.handed_over() && !self.has_left() {
            let _ = self.gossip.leave();
        }
    }

    /// Moves every output of the sub-machines into the node's queues and applies their events.
    /// (Request coordinators are pumped as soon as an input touches them.)
    fn drain(&mut self, now: Millis) {
        self.drain_gossip(now);
        self.settle_fresh(now);
        self.settle_restored(now);
        self.publish_earlier(now);
        self.drain_hints(now);
        self.drain_syncs(now);
        self.drain_transfers(now);
        self.publish_handoff();
        self.publish_hint_targets();
        if let Some(lost) = self.holdings.lost_changes() {
            self.store_op(
                storage::StorageOp::PutMeta {
                    name: holdings::LOST_KEY.into(),
                    value: lost,
                    sync: false,
                },
                storage::Then::Meta,
            );
        }
        self.persist_incoming();
        self.persist_former();
        // Before a new store's doubt is recorded settled: the waits it began outlive a restart.
        if let Some(op) = self.transfers.persist_refill() {
            self.store_op(op, storage::Then::Meta);
        }
        self.persist_fresh();
        self.persist_reached();
        self.persist_generation();
        if let Some(op) = self.transfers.persist_whole() {
            self.store_op(op, storage::Then::Meta);
        }
        if self.view.leaving {
            self.announce_left_when_done();
            self.drain_gossip(now);
        }
    }

    /// Stores the partitions awaited, if they changed since last stored, and publishes them.
    pub(crate) fn persist_incoming(&mut self) {
        if let Some(op) = self.transfers.persist_incoming() {
            self.store_op(op, storage::Then::Meta);
            self.publish_awaiting();
        }
    }

    /// `key`'s N primaries in this node's ring.
    pub(crate) fn key_primaries(&self, key: &[u8]) -> Vec<NodeId> {
        self.view
            .ring
            .preference_list(key)
            .primaries()
            .copied()
            .collect()
    }

    /// Whether `node` is one of `key`'s primaries in this node's ring.
    pub(crate) fn is_key_primary(&self, key: &[u8], node: NodeId) -> bool {
        self.view
            .ring
            .preference_list(key)
            .primaries()
            .any(|&p| p == node)
    }

    fn partition_of(&self, key: &[u8]) -> usize {
        self.view.ring.range_index(self.view.ring.position(key))
    }

    /// Whether this node restarted on the ring it had stored and has not compared it with a
    /// peer's yet (see `ring_heard`) while some other member of it may answer: it may have
    /// missed ring changes while it was away, so it coordinates no request until it has. Alone
    /// in its ring, or with every other member silent since it started (past the failure
    /// detector's grace), there is nobody to hear from.
    pub(crate) fn ring_unconfirmed(&self) -> bool {
        self.view.restarted_on_a_ring
            && !self.view.ring_heard
            && self
                .view
                .ring
                .nodes()
                .any(|n| n.id != self.id && !self.view.unheard.contains(&n.id))
    }

    /// Whether this node's copy of `key` cannot answer a read (reads of it are refused): its
    /// ring is still a guess, its store is new and it has not heard whether the cluster holds
    /// older data (see `fresh`), it restarted and no peer has told it yet how far its last run
    /// got (see `restored`), or the key's partition is still arriving from its previous owner
    /// (or from anti-entropy).
    /// Hashes the key only while some partition is arriving.
    fn receiving(&self, key: &[u8]) -> bool {
        // A ring that is still a guess (a joiner that has not heard the cluster's ring) names
        // this node a primary of keys it holds nothing of: no read of its own copy counts.
        self.view.ring_provisional
            || self.fresh.unsure
            || self.restored.doubt
            || (!self.transfers.incoming.is_empty()
                && self.transfers.incoming.contains(&self.partition_of(key)))
    }
}

fn root_bytes(tree: &Tree) -> [u8; 32] {
    tree.root().0
}

fn decode_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!("meta value of {} bytes, expected 8", bytes.len()))
    })?;
    Ok(u64::from_be_bytes(arr))
}

/// For each range of `ring`, whether `id` is one of its N primaries.
pub(crate) fn replicated_ranges(ring: &Ring<NodeId>, id: NodeId) -> Vec<bool> {
    (0..ring.range_count())
        .map(|p| is_primary(ring, p, id))
        .collect()
}

/// The N primaries of range `p` of `ring`, in preference-list order (none past the last range).
pub(crate) fn primaries_of(ring: &Ring<NodeId>, p: usize) -> Vec<NodeId> {
    ring.preference_list_for_range(p)
        .map(|l| l.primaries().copied().collect())
        .unwrap_or_default()
}

/// Whether `id` is one of the N primaries of range `p` of `ring`.
pub(crate) fn is_primary(ring: &Ring<NodeId>, p: usize, id: NodeId) -> bool {
    ring.preference_list_for_range(p)
        .is_some_and(|l| l.primaries().any(|&n| n == id))
}
