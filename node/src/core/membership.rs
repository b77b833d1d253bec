//! Membership: the ring as versioned cluster state, changed by one claimant with the ring
//! crate's minimal-movement operations.
//!
//! Every node holds a [`RingState`]: the ring, its version and the node (the *claimant*) that
//! made it. It is persisted in the store (a restart resumes from it; `initial_members` only
//! bootstraps a node that has none) and published in the node's gossip state, so that every node
//! adopts the newest ring it hears of: the highest `(version, claimant)`, then the larger
//! encoding, an order every node computes alike.
//!
//! Membership changes come from gossip: a node that is up but not in the ring wants to join; a
//! ring member that announced it is leaving or has left wants out. Only the claimant, the lowest
//! id among the ring members that are up and staying, acts on them: it applies the leaves, then
//! the joins, in id order, each with [`Ring::leave`] / [`Ring::join`] (which move about the
//! minimum of partitions), bumps the version and publishes. It applies only the leaves the ring
//! can take (never below N nodes, see `change::enough_left`); the others wait in the ring. Two
//! claimants (a partitioned view) may both publish the same version; the order above then picks
//! one ring everywhere, and the next change starts from it. No other node makes rings: a leaving
//! node only says it is leaving (a ring of its own, at the claimant's next version, could win
//! over the claimant's and undo what that held).
//!
//! A node that is not among its configuration's initial members joins an existing cluster: the
//! ring it builds at first is provisional, never published, and replaced by the first ring it
//! hears of; the claimant then adds it.
//!
//! On adopting a ring, a node compares it with the old one and starts a transfer (see
//! `transfer`) of every range it held to each node that became one of its replicas.

use std::collections::{BTreeMap, BTreeSet};

use dynamo_gossip::{Event, Status};
use dynamo_ring::{NodeSpec, Ring, RingConfig, Strategy};
use serde::{Deserialize, Serialize};

use super::change::enough_left;
use super::storage::{StorageOp, Then};
use super::{NodeCore, NodeEvent};
use crate::message::PeerMessage;
use crate::store::StoreError;
use crate::types::{Millis, NodeId};

/// The gossip key and the store meta name of the ring state.
pub(crate) const RING_KEY: &str = "ring";
/// The gossip key of a node's zone (UTF-8).
pub(crate) const ZONE_KEY: &str = "zone";
/// The gossip key a node sets (to `staged`) when it waits for an operator's commit to join.
pub(crate) const ADMISSION_KEY: &str = "admission";
/// The store meta name set (to 1) once a ring change took this node out: a restart goes on
/// leaving (hands over what is left, then says it left) instead of asking to join again.
pub(crate) const REMOVED_KEY: &str = "removed";
/// The store meta name of the members of the ring before the one stored (msgpack, an optional
/// list: none after a provisional ring), kept with it: a restart before a tie on the stored
/// ring still tells which nodes the ring it replaces added (see `install_ring`).
pub(crate) const PREVIOUS_MEMBERS_KEY: &str = "ring-previous-members";
/// The store meta name of [`View::former`] (msgpack, a list of ids), so that a restart still
/// holds reaping up for a former member gossip no longer knows.
pub(crate) const FORMER_KEY: &str = "former-members";
/// The gossip key of the former members a node sees vanished (u64 big-endian each, at most
/// [`MAX_VANISHED`]): the claimant forces them out even if it never saw them in its ring (it
/// joined later, or lost its disk).
pub(crate) const VANISHED_KEY: &str = "vanished";
/// Vanished members a node publishes, and the claimant forces out in one ring change, at most.
pub(crate) const MAX_VANISHED: usize = 64;

/// The gossip key of the partitions a node awaits (`Transfers::incoming`, u32 big-endian each):
/// anti-entropy that finds this node's tree equal to a peer's lifts the wait only if the peer
/// does not await the partition too (two newcomers hold the same nothing).
pub(crate) const AWAITING_KEY: &str = "awaiting";

/// The store meta name set (to 1) when this node is asked to leave: a restart goes on leaving,
/// in the ring until the claimant takes it out.
pub(crate) const LEAVE_KEY: &str = "leave";

/// The gossip key of what a node still has to hand over: the SHA-256 of the ring state it uses,
/// then every partition (u32, big-endian) it holds keys of without replicating it or is
/// transferring. The tombstone reaper waits for every member to agree on the ring and to hand the
/// key's partition over (see `reaper`).
pub(crate) const HANDOFF_KEY: &str = "handoff";

/// The digest of an encoded ring state, as the handoff entry carries it.
pub(crate) fn ring_digest(ring_bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(ring_bytes).into()
}

/// A handoff entry: the ring digest, then the partitions.
pub(crate) fn encode_handoff(digest: &[u8; 32], partitions: &BTreeSet<usize>) -> Vec<u8> {
    let mut out = digest.to_vec();
    for &p in partitions {
        out.extend_from_slice(&(p as u32).to_be_bytes());
    }
    out
}

/// A handoff entry's ring digest and partitions; `None` if the bytes are not one.
pub(crate) fn decode_handoff(bytes: &[u8]) -> Option<([u8; 32], BTreeSet<usize>)> {
    if bytes.len() < 32 || !(bytes.len() - 32).is_multiple_of(4) {
        return None;
    }
    let (digest, rest) = bytes.split_at(32);
    let digest: [u8; 32] = digest.try_into().ok()?;
    let partitions = rest
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    Some((digest, partitions))
}

/// This node's view of the cluster: the ring it uses (with its version, encoding and digest), the
/// members and their addresses, who is unheard or departed, whether this node is leaving, and
/// what it last published in gossip about its hand-overs and hints.
pub(crate) struct View {
    pub(crate) ring: Ring<NodeId>,
    /// Whether this node is a primary of each range of `ring` (see [`NodeCore::replicates`]):
    /// asked after every input, computed once per ring.
    pub(crate) replicated: Vec<bool>,
    /// The ring with its version and claimant, as persisted and gossiped (see `membership`).
    pub(crate) ring_state: RingState,
    /// `ring_state` encoded.
    pub(crate) ring_bytes: Vec<u8>,
    /// The SHA-256 of `ring_bytes` (see `membership::HANDOFF_KEY`).
    pub(crate) ring_digest: [u8; 32],
    /// The handoff entry last published in gossip.
    pub(crate) handoff_published: Vec<u8>,
    /// Counts the changes of `replicated`.
    pub(crate) replicated_changes: u64,
    /// What `handoff_published` was computed from, when no transfer ran: holdings' occupancy
    /// changes, `replicated_changes`, the ring digest. While they stay equal (and no transfer
    /// runs) the entry cannot change, and [`NodeCore::publish_handoff`] skips the scan of every
    /// partition it otherwise makes after each input.
    pub(crate) handoff_stamp: Option<(u64, u64, [u8; 32])>,
    /// The hints entry last published in gossip (see `reaper::HINTS_KEY`).
    pub(crate) hints_published: Vec<u8>,
    /// The awaiting entry last published in gossip (see [`AWAITING_KEY`]).
    pub(crate) awaiting_published: Option<Vec<u8>>,
    /// A joining node's ring before it heard the cluster's: not published, replaced by any ring
    /// a peer publishes.
    pub(crate) ring_provisional: bool,
    /// Whether a peer's ring was heard since start: a node restarted with a stale ring makes no
    /// membership change before it has compared its ring with the cluster's.
    pub(crate) ring_heard: bool,
    /// The shape of the last ring of another shape a peer publishes (see
    /// [`NodeEvent::RingMismatch`](super::NodeEvent::RingMismatch)); none once no peer does.
    pub(crate) ring_mismatch: Option<String>,
    /// The shapes said already (each once; at most [`MISMATCHES_SAID`] remembered).
    pub(crate) mismatches_said: BTreeSet<String>,
    /// This incarnation started on the ring it had stored (a restart), not on a new node's: it
    /// coordinates nothing until `ring_heard` (see `NodeCore::ring_unconfirmed`).
    pub(crate) restarted_on_a_ring: bool,
    /// A ring was adopted since this incarnation started.
    pub(crate) adopted_since_start: bool,
    pub(crate) members: BTreeSet<NodeId>,
    /// Members gossip has never heard from although this node has been up for longer than the
    /// failure detector gives a silent peer (see `failures::unheard_grace`): down.
    pub(crate) unheard: BTreeSet<NodeId>,
    /// When this incarnation started.
    pub(crate) booted: Millis,
    pub(crate) departed: BTreeSet<NodeId>,
    /// Nodes this node saw taken out of its ring (not forced out) that have not said they left:
    /// they may still hand copies over (persisted, [`FORMER_KEY`]). One that gossip does not
    /// know (it forgot it, down past `remove_after`, or has not heard it since this node
    /// started) is *vanished* ([`NodeCore::vanished`]): a leaver that died before its
    /// hand-overs got through may hold copies nobody knows of, so it holds tombstone reaping up
    /// (see `handoffs_pending`) until the claimant forces it out of the ring state (see
    /// `claim`), after which what it sends is refused. (Only former members: ids gossip merely
    /// heard of held no copy, and a peer could name any number of them.)
    pub(crate) former: BTreeSet<NodeId>,
    /// Whether `former` changed since it was last persisted.
    pub(crate) former_changed: bool,
    /// Whether a vanished former member holds reaping up (see [`NodeCore::track_vanished`]).
    pub(crate) vanished_hold: bool,
    /// The [`VANISHED_KEY`] entry last published.
    pub(crate) vanished_published: Vec<u8>,
    /// When the claimant last forced vanished members out (see
    /// [`NodeCore::forgettable_vanished`]).
    pub(crate) forgot_at: Option<Millis>,
    /// The members of the ring this node held before its current one, this incarnation (`None`
    /// before a second ring, or when the one before was provisional): what a ring of the same
    /// version that replaces the current one (its claimant won a tie) drops but this set lacks
    /// was added by the losing ring alone, and nobody took it out.
    pub(crate) previous_members: Option<BTreeSet<NodeId>>,
    pub(crate) addresses: BTreeMap<NodeId, String>,
    /// This node is leaving: asked to leave (in the ring until the claimant takes it out), or
    /// out of the ring (taken out, or removed by a commit); out, it hands its data over, then
    /// says it left.
    pub(crate) leaving: bool,
}

/// The ring, its version and the node that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RingState {
    /// Bumped by every change; 0 for a ring bootstrapped from `initial_members`.
    pub(crate) version: u64,
    /// The node that made this version (0 for a bootstrapped ring).
    pub(crate) claimant: NodeId,
    /// The ring.
    pub(crate) ring: Ring<NodeId>,
    /// Nodes taken out of the ring while down and not leaving, as the claimant saw them (an
    /// operator's `dynamo commit --leave` of a dead node, or the claimant taking out a node gossip
    /// forgot): such a node hands nothing over when it comes back, from a crash or from a
    /// partition (what it held is for the other replicas to rebuild, as for Riak's force-remove),
    /// and nobody waits for it (the reaper, a release of an awaited partition). Kept in every
    /// later ring until the node joins again. (Left out of the encoding when empty: a ring with
    /// none encodes, and hashes, as before.)
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(crate) forced: BTreeSet<NodeId>,
}

impl RingState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        crate::types::decode_msgpack(bytes)
            .map_err(|e| StoreError::Corrupt(format!("ring state: {e}")))
    }
}

/// The highest ring version a node adopts or makes. A ring past it (only a faulty or hostile
/// peer could publish one: a version grows by one per membership change) is refused. The bound
/// is the same for adopting and making, so a claimant at it changes nothing rather than making a
/// ring the others refuse; and it is far enough below `u64::MAX` that no peer can bring a
/// cluster near it in one step.
pub(crate) const MAX_RING_VERSION: u64 = u64::MAX / 2;

/// The version of the ring after `current`, if there may be one.
pub(crate) fn next_ring_version(current: u64) -> Option<u64> {
    current
        .checked_add(1)
        .filter(|&next| next <= MAX_RING_VERSION)
}

/// Whether partition `p` has the same replicas in rings `a` and `b` (in any order).
pub(crate) fn same_replicas(a: &Ring<NodeId>, b: &Ring<NodeId>, p: usize) -> bool {
    let set =
        |r: &Ring<NodeId>| -> BTreeSet<NodeId> { super::primaries_of(r, p).into_iter().collect() };
    set(a) == set(b)
}

/// Whether the state `(a, a_bytes)` is newer than `(b, b_bytes)` in the order every node uses.
fn newer(a: &RingState, a_bytes: &[u8], b: &RingState, b_bytes: &[u8]) -> bool {
    (a.version, a.claimant, a_bytes) > (b.version, b.claimant, b_bytes)
}

impl NodeCore {
    pub(crate) fn drain_gossip(&mut self, now: Millis) {
        let mut changed = false;
        let mut rings = false;
        while let Some(t) = self.gossip.poll_transmit() {
            // A round that picks a seed sends to its configured address, which is older news
            // than what gossip or the seed itself said since: it only stands in for none.
            self.view.addresses.entry(t.to).or_insert(t.address);
            self.transmits
                .push_back((t.to, PeerMessage::Gossip(t.message)));
        }
        while let Some(event) = self.gossip.poll_event() {
            match event {
                Event::Up { id } => {
                    self.events.push(NodeEvent::MemberUp { id });
                    self.hints.peer_up(now, id);
                    self.transfer_peer(now, id, true);
                    changed = true;
                }
                Event::Down { id } => {
                    self.events.push(NodeEvent::MemberDown { id });
                    self.hints.peer_down(now, id);
                    self.transfer_peer(now, id, false);
                    self.fail_peer(now, id);
                    changed = true;
                }
                Event::Joined { id } | Event::Restarted { id, .. } => {
                    let restarted = matches!(event, Event::Restarted { .. });
                    // What it knew of the earlier incarnation, for the node (see `restored`).
                    let (generation, replaced) = match event {
                        Event::Restarted {
                            generation,
                            replaced,
                            ..
                        } => (generation, replaced),
                        _ => (
                            self.gossip
                                .node_state(&id)
                                .map_or(0, dynamo_gossip::NodeState::generation),
                            (0, 0),
                        ),
                    };
                    self.heard_restart(now, id, generation, replaced);
                    self.events.push(NodeEvent::MemberJoined { id, restarted });
                    self.view.unheard.remove(&id);
                    // First heard (or restarted) already leaving: a node asked to leave before
                    // anyone heard it, or restarted while it waits to be taken out.
                    let mut leaving = false;
                    if let Some(state) = self.gossip.node_state(&id) {
                        self.view.addresses.insert(id, state.address().clone());
                        leaving = matches!(state.status(), Status::Leaving | Status::Left);
                    }
                    if leaving {
                        self.view.departed.insert(id);
                    } else {
                        self.view.departed.remove(&id);
                    }
                    changed = true;
                    rings = true;
                }
                Event::StatusChanged { id, status } => {
                    if matches!(status, Status::Left | Status::Leaving) {
                        if !self.view.departed.contains(&id) {
                            self.events.push(NodeEvent::MemberLeft { id });
                        }
                        self.view.departed.insert(id);
                    } else {
                        self.view.departed.remove(&id);
                    }
                    changed = true;
                }
                Event::Left { id } | Event::Removed { id } => {
                    // A former member that said it left handed everything over (one gossip forgot
                    // before that stays: see `View::former`).
                    if matches!(event, Event::Left { .. }) {
                        self.view.former_changed |= self.view.former.remove(&id);
                    }
                    self.silence.forget(id);
                    if !self.view.departed.contains(&id) {
                        self.events.push(NodeEvent::MemberLeft { id });
                    }
                    self.view.departed.insert(id);
                    changed = true;
                }
                Event::AppStateChanged { key, .. } if key == RING_KEY => rings = true,
                _ => {}
            }
        }
        if rings {
            self.adopt_newest_ring(now);
        }
        // A ring adopted from a peer (an operator's commit elsewhere) may make room for a leave
        // that waits, as news of a member may.
        if (changed || rings) && !self.view.leaving {
            self.claim(now);
        }
    }

    /// Adopts the newest ring any peer publishes, if it is newer than this node's.
    fn adopt_newest_ring(&mut self, now: Millis) {
        let mut best: Option<(RingState, Vec<u8>)> = None;
        let mut mismatched = Vec::new();
        for (id, state) in self.gossip.members() {
            if *id == self.id {
                continue;
            }
            let Some(bytes) = state.app_state(RING_KEY) else {
                continue;
            };
            let (cur, cur_bytes) = best.as_ref().map_or(
                (&self.view.ring_state, &self.view.ring_bytes[..]),
                |(s, b)| (s, &b[..]),
            );
            let Ok(candidate) = RingState::decode(bytes) else {
                self.stats.counters.bad_messages += 1;
                continue;
            };
            if candidate.version > MAX_RING_VERSION {
                // Past what any claimant makes: adopted, it would freeze membership, or split
                // it from the nodes that refuse the claimant's next ring.
                self.stats.counters.bad_messages += 1;
                continue;
            }
            if candidate.ring.config() != self.view.ring_state.ring.config() {
                // Another N or Q: not a ring this node can serve (nor one that confirms its
                // own), whether or not it is newer: the status names it while a peer publishes
                // it.
                self.stats.counters.bad_messages += 1;
                mismatched.push((*id, *candidate.ring.config()));
                continue;
            }
            self.view.ring_heard = true;
            // A provisional ring gives way to the first ring heard, whatever its order.
            let first_heard = self.view.ring_provisional && best.is_none();
            if !first_heard && !newer(&candidate, bytes, cur, cur_bytes) {
                continue;
            }
            if !self.view.ring_provisional
                && candidate.version == 0
                && (candidate.version, candidate.claimant)
                    == (self.view.ring_state.version, self.view.ring_state.claimant)
            {
                // Another first ring: two bootstrap rings built from different member lists (a
                // node started with `--members` that list itself, against a cluster still on its
                // first ring). Content order must not replace the ring wholesale; the claimant
                // adds such a node as a joiner instead, with a ring of the next version that
                // every node adopts. A later version made twice by one claimant (it lost its disk,
                // came back on the first ring, and claimed before it heard the ring it had made)
                // is a tie like any other: every node ends on the one content order picks (see
                // `install_ring`), or the cluster stays split between the two for good.
                self.stats.counters.bad_messages += 1;
                continue;
            }
            best = Some((candidate, bytes.to_vec()));
        }
        if mismatched.is_empty() {
            self.view.ring_mismatch = None;
        }
        for (from, config) in mismatched {
            self.ring_mismatch(from, &config);
        }
        if let Some((state, _)) = best {
            self.install_ring(now, state);
        }
    }

    /// Peer `from` publishes a ring of shape `theirs`, not this node's: said once per shape (the
    /// operator must set `n` and `partitions` alike on every node).
    fn ring_mismatch(&mut self, from: NodeId, theirs: &RingConfig) {
        let theirs = ring_shape(theirs);
        self.view.ring_mismatch = Some(theirs.clone());
        if self.view.mismatches_said.contains(&theirs)
            || self.view.mismatches_said.len() >= MISMATCHES_SAID
        {
            return;
        }
        self.view.mismatches_said.insert(theirs.clone());
        let ours = ring_shape(self.view.ring_state.ring.config());
        self.events
            .push(NodeEvent::RingMismatch { from, theirs, ours });
    }

    /// If this node is the claimant, turns the membership gossip reports into the next ring.
    pub(crate) fn claim(&mut self, _now: Millis) {
        let ring = &self.view.ring_state.ring;
        let in_ring: BTreeSet<NodeId> = ring.nodes().map(|n| n.id).collect();
        let mut leavers: Vec<NodeId> = in_ring
            .iter()
            .copied()
            .filter(|id| self.view.departed.contains(id))
            .collect();
        let joiners: Vec<NodeId> = self
            .gossip
            .members()
            .filter(|(id, state)| {
                !in_ring.contains(id)
                    && !self.view.departed.contains(id)
                    && matches!(state.status(), Status::Up | Status::Joining)
                    && self.gossip.is_up(id)
                    && state.app_state(ADMISSION_KEY) != Some(&b"staged"[..])
                    && self.publishes_current_ring(state)
            })
            .map(|(id, _)| *id)
            .collect();
        // Only the leaves the ring can take (on the terms of a commit): two nodes that leave at
        // once each pass their own check, and together could take the ring below N. The others
        // wait in the ring, leaving, for a join that makes room (the highest ids wait).
        while !leavers.is_empty()
            && enough_left(ring, ring.node_count() + joiners.len() - leavers.len()).is_err()
        {
            leavers.pop();
        }
        // Former members gossip forgot before they said they left: forced out now (see
        // `View::former`).
        let forget = self.forgettable_vanished(_now);
        let alone = in_ring.len() == 1;
        // A node on a new store (a new cluster's, or one that lost its disk) claims nothing
        // until it knows how old the cluster's data is (`fresh`): a claimant that lost its disk
        // came back on the first ring, heard some peer's ring (a first one too), and made a ring
        // of a version it had made before, which it had not heard yet.
        if self.view.ring_provisional
            || self.fresh.unsure
            || self.restored.doubt
            || !(self.view.ring_heard || alone)
            || (leavers.is_empty() && joiners.is_empty() && forget.is_empty())
        {
            return;
        }
        if self.claimant() != Some(self.id) {
            return;
        }
        let Ok(next) = self.next_ring(&leavers, &joiners) else {
            return;
        };
        // A ring at the last version (only a store of an older build could hold one) changes
        // no more.
        let Some(version) = next_ring_version(self.view.ring_state.version) else {
            return;
        };
        let mut forced = self.forced_with(&leavers, &next);
        if !forget.is_empty() {
            self.view.forgot_at = Some(_now);
        }
        forced.extend(forget);
        let state = RingState {
            version,
            claimant: self.id,
            ring: next,
            forced,
        };
        self.install_ring(_now, state);
    }

    /// Publishes the partitions this node awaits (see [`AWAITING_KEY`]); nothing while its ring
    /// is provisional (a joiner does not know yet what it will await).
    pub(crate) fn publish_awaiting(&mut self) {
        if self.view.ring_provisional {
            return;
        }
        let bytes: Vec<u8> = self
            .transfers
            .incoming
            .iter()
            .flat_map(|&p| (p as u32).to_be_bytes())
            .collect();
        if self.view.awaiting_published.as_ref() != Some(&bytes) {
            let _ = self.gossip.set_app_state(AWAITING_KEY, bytes.clone());
            self.view.awaiting_published = Some(bytes);
        }
    }

    /// Whether `peer` awaits partition `p`, as it last published; a peer that published nothing
    /// readable, or whose published state is not of this node's ring (its handoff entry names
    /// another ring digest: what it awaits under this ring has not reached here), is taken to
    /// await it.
    pub(crate) fn peer_awaits(&self, peer: NodeId, p: usize) -> bool {
        let Some(state) = self.gossip.node_state(&peer) else {
            return true;
        };
        let same_ring = state
            .app_state(HANDOFF_KEY)
            .and_then(decode_handoff)
            .is_some_and(|(digest, _)| digest == self.view.ring_digest);
        if !same_ring {
            return true;
        }
        match state.app_state(AWAITING_KEY) {
            Some(bytes) if bytes.len() % 4 == 0 => bytes
                .chunks_exact(4)
                .any(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize == p),
            _ => true,
        }
    }

    /// Whether a node publishes a ring, and none older than this node's: a node outside the
    /// ring is a joiner only then. One that publishes an older ring is catching up, not joining:
    /// a member that restarted from a stale ring (it died before it heard that a commit took it
    /// out) is Up again and outside the ring, like a joiner, but once it adopts the current ring
    /// it finds itself removed and leaves by itself. One heard without a ring is not known yet:
    /// a new node publishes the cluster's ring once it has heard it, after every entry it set
    /// at start (its admission among them), and a gossip delta cut to fit a message carries a
    /// prefix of a node's entries, down to none.
    pub(super) fn publishes_current_ring(&self, state: &dynamo_gossip::NodeState<String>) -> bool {
        state
            .app_state(RING_KEY)
            .and_then(|bytes| RingState::decode(bytes).ok())
            .is_some_and(|r| {
                (r.version, r.claimant)
                    >= (self.view.ring_state.version, self.view.ring_state.claimant)
            })
    }

    /// The claimant: the lowest id among the ring members that are up and staying.
    pub(crate) fn claimant(&self) -> Option<NodeId> {
        self.view
            .ring_state
            .ring
            .nodes()
            .map(|n| n.id)
            .find(|id| !self.view.departed.contains(id) && self.is_up(*id))
    }

    /// The ring after `leaves`, then `joins` (in the order given), each by the ring crate's
    /// minimal-movement operation; a joiner's zone is the one it gossips.
    pub(crate) fn next_ring(
        &self,
        leaves: &[NodeId],
        joins: &[NodeId],
    ) -> Result<Ring<NodeId>, dynamo_ring::RingError> {
        let mut next = self.view.ring_state.ring.clone();
        for id in leaves {
            next = next.leave(id)?.ring;
        }
        for id in joins {
            next = next.join(self.spec_of(*id))?.ring;
        }
        Ok(next)
    }

    /// `id` as the ring sees it: with the zone it gossips (this node: its configured zone, or
    /// the initial members' zone for it).
    pub(crate) fn spec_of(&self, id: NodeId) -> NodeSpec<NodeId> {
        let zone = if id == self.id {
            Self::own_zone(&self.config, id)
        } else {
            self.gossip
                .node_state(&id)
                .and_then(|s| s.app_state(ZONE_KEY))
                .and_then(|z| std::str::from_utf8(z).ok())
                .map(str::to_owned)
        };
        match zone {
            Some(zone) => NodeSpec::new(id).with_zone(zone),
            None => NodeSpec::new(id),
        }
    }

    /// Sets a metadata value (a storage op; a failure is counted).
    pub(crate) fn put_meta(&mut self, name: &str, value: Vec<u8>) {
        self.store_op(
            StorageOp::PutMeta {
                name: name.into(),
                value,
                sync: false,
            },
            Then::Meta,
        );
    }

    /// Persists and publishes `state`, and moves to its ring.
    pub(crate) fn install_ring(&mut self, now: Millis, state: RingState) {
        // A provisional ring (a joining node's guess) never made this node a member.
        let provisional = self.view.ring_provisional;
        let was_member = !provisional && self.view.ring_state.ring.contains(&self.id);
        if provisional {
            self.first_ring_heard(now, &state.ring);
        }
        // Two claimants (one on each side of a partition) can make rings of one version; every
        // node ends on the one whose claimant won the tie. A node the winner drops that only
        // the losing ring had made a member (a join committed on the losing side) was taken
        // out by nobody: it is neither removed nor counted departed, and can join again.
        let tie = !provisional && state.version == self.view.ring_state.version;
        let added_by_loser: BTreeSet<NodeId> = match (&self.view.previous_members, tie) {
            (Some(before), true) => self
                .view
                .members
                .iter()
                .filter(|&id| !before.contains(id) && !state.ring.contains(id))
                .copied()
                .collect(),
            _ => BTreeSet::new(),
        };
        if !tie {
            self.view.previous_members = (!provisional).then(|| self.view.members.clone());
            let previous: Option<Vec<NodeId>> = self
                .view
                .previous_members
                .as_ref()
                .map(|m| m.iter().copied().collect());
            if let Ok(bytes) = rmp_serde::to_vec(&previous) {
                self.put_meta(PREVIOUS_MEMBERS_KEY, bytes);
            }
        }
        self.view.ring_provisional = false;
        let bytes = state.encode();
        self.put_meta(RING_KEY, bytes.clone());
        let _ = self.gossip.set_app_state(RING_KEY, bytes.clone());
        let next = state.ring.clone();
        self.events.push(NodeEvent::RingInstalled {
            version: state.version,
            members: next.nodes().map(|n| n.id).collect(),
        });
        let removed_me =
            was_member && !next.contains(&self.id) && !added_by_loser.contains(&self.id);
        // The first ring a restarted node adopts, and not the ring after the one it stored: it
        // missed a change while it was away (or this is another ring of its version). What
        // moved meanwhile is unknown: a partition it held before and holds now may have been
        // elsewhere in between and taken writes there. (A node that stayed up may see only the
        // last of two quick changes too, as gossip keeps the newest ring alone: it stayed in
        // touch, and its ranges did not move without it hearing of the moves.)
        let skipped = self.view.restarted_on_a_ring
            && !self.view.adopted_since_start
            && next_ring_version(self.view.ring_state.version) != Some(state.version);
        self.view.adopted_since_start = true;
        let old_version = self.view.ring_state.version;
        self.view.ring_state = state;
        self.view.ring_digest = ring_digest(&bytes);
        self.view.ring_bytes = bytes;
        self.change_ring(
            now,
            next,
            provisional,
            skipped,
            old_version,
            &added_by_loser,
        );
        if removed_me {
            self.put_meta(REMOVED_KEY, vec![1]);
        }
        if self.forced_out(self.id) {
            self.drop_forced_copies();
        }
        // What it awaits under the new ring before the entry naming the ring: a peer that hears
        // the new ring's digest hears no older awaiting entry with it (gossip sends in version
        // order, and may cut a delta short).
        self.publish_awaiting();
        self.publish_handoff();
        if removed_me && !self.view.leaving {
            // An operator's commit took this node out: hand everything over, then say so.
            self.view.leaving = true;
            let _ = self.gossip.set_status(Status::Leaving);
        }
    }

    /// Adopts `next` and pushes the ranges this node must hand over. A `provisional` old ring
    /// (a joining node's guess, in which it held everything) counts as empty: nothing to send,
    /// every range it replicates now is awaited.
    ///
    /// After a `skipped` change (a restarted node that missed changes), with anti-entropy on,
    /// every range it replicates is awaited: a range it replicated before too may have been
    /// elsewhere meanwhile, so its copy is not served until a transfer or equal Merkle trees show
    /// it whole. (Without anti-entropy, a range that did not move would wait for good: then only
    /// the ranges new to it are.)
    fn change_ring(
        &mut self,
        now: Millis,
        next: Ring<NodeId>,
        provisional: bool,
        skipped: bool,
        old_version: u64,
        added_by_loser: &BTreeSet<NodeId>,
    ) {
        let skipped = skipped && self.config.sync_interval.is_some();
        let plan = (!provisional).then(|| self.view.ring.transfer_plan(&next));
        let old = std::mem::replace(&mut self.view.ring, next);
        self.view.replicated = super::replicated_ranges(&self.view.ring, self.id);
        self.view.replicated_changes += 1;

        self.view.members = self.view.ring.nodes().map(|n| n.id).collect();
        let removed: Vec<NodeId> = old
            .nodes()
            .map(|n| n.id)
            .filter(|id| !provisional && !self.view.members.contains(id))
            .collect();
        for id in removed {
            // Out until it restarts: the claimant must not add it back as a joiner before its
            // `Leaving` status arrives. Not a node only a ring that lost a tie added (see
            // `install_ring`): nobody took it out.
            if id != self.id && !added_by_loser.contains(&id) {
                self.view.departed.insert(id);
                if !self.forced_out(id) {
                    self.view.former_changed |= self.view.former.insert(id);
                }
            }
            self.reroute_hints(now, id);
        }
        // Forced out now: nothing they send is taken, nobody waits for them. (One back in the
        // ring hands over at its next removal.)
        let before = self.view.former.len();
        let forced = &self.view.ring_state.forced;
        let ring = &self.view.ring;
        self.view
            .former
            .retain(|id| !forced.contains(id) && !ring.contains(id));
        self.view.former_changed |= self.view.former.len() != before;
        // (After a provisional ring also the hints taken on the guess: for nodes the first ring
        // heard does not hold, or that do not replicate the key.)
        self.reroute_misaddressed_hints(now);
        let me = self.id;
        // Sessions found equal under the old ring say nothing of the new one's replicas.
        self.transfers.equal.clear();
        // Ranges this node now replicates and did not: not readable here until they arrive.
        let replicas = |ring: &Ring<NodeId>, p: usize| super::is_primary(ring, p, me);
        for p in 0..self.view.ring.range_count() {
            match (
                !provisional && !skipped && replicas(&old, p),
                replicas(&self.view.ring, p),
            ) {
                (false, true) => {
                    // A hand-over under any ring after the one this node was no replica in
                    // brings the range (a node that stays up may hear only the last of two
                    // quick changes).
                    // (A tie replaces a ring of the same version: its hand-overs are done under
                    // that version.) A wait already running keeps the later start of the two (a
                    // new store's takes no hand-over at all: `fresh`).
                    let since = old_version
                        .saturating_add(1)
                        .min(self.view.ring_state.version);
                    let running = !self.transfers.incoming.insert(p);
                    let entry = self.transfers.since.entry(p).or_insert(since);
                    *entry = if running { (*entry).max(since) } else { since };
                    self.transfers.whole.remove(&p);
                }
                (true, true) => {
                    self.transfers.whole.remove(&p);
                }
                (was, false) => {
                    // Held whole if it replicated the partition and did not await it: what it
                    // hands over is then everything a replica holds. Not once the partition's
                    // replicas change again without it: they took writes it never saw.
                    if was && !self.transfers.incoming.contains(&p) {
                        self.transfers.whole.insert(p);
                    } else if !was && !same_replicas(&old, &self.view.ring, p) {
                        self.transfers.whole.remove(&p);
                    }
                    self.transfers.incoming.remove(&p);
                    self.transfers.since.remove(&p);
                }
            }
        }
        // Transfers that completed before this node adopted the ring that awaits them.
        self.transfers.adopted(self.view.ring_state.version);
        self.cancel_stale_transfers();
        let forced_out = self.forced_out(me);
        if !provisional && !self.view.ring.contains(&me) && !forced_out {
            // Out of the ring: every range this node held goes to every primary of the new ring,
            // not only to the plan's newcomers. The plan counts on the replicas that stay holding
            // the range, but one may still await it (a hand-over to it that a partition holds
            // up), and a newcomer may hold it already (a former replica still handing it over):
            // sending to the newcomers alone could leave an acknowledged write on one node. (A
            // joiner's provisional ring held nothing: it hands nothing over.)
            for p in 0..old.range_count() {
                if !replicas(&old, p) {
                    continue;
                }
                for to in super::primaries_of(&self.view.ring, p) {
                    self.start_transfer(now, p, to);
                }
            }
        }
        // Taken out while down: nothing is handed over (see `RingState::forced`).
        let plan = plan.filter(|_| !forced_out);
        for transfer in plan.iter().flat_map(|plan| plan.outgoing(&me)) {
            // Strategy 3: every range in the plan is a union of whole partitions.
            for p in 0..old.range_count() {
                let Some(range) = old.range(p) else { continue };
                if !transfer.range.contains(range.end) {
                    continue;
                }
                self.start_transfer(now, p, transfer.to);
            }
        }
        self.hand_over_foreign(now);
        // A partition with nothing left to hand over is not whole any more: stray keys of it
        // that reach this node later (a hint delivered after the change) are not the partition.
        let handing = self.transfers.partitions();
        self.transfers.whole.retain(|p| handing.contains(p));
    }

    /// The partitions this node still has to hand over: those it holds keys of without being one
    /// of their primaries, and those it is transferring.
    pub(crate) fn handing_over(&self) -> BTreeSet<usize> {
        let mut out = self.transfers.partitions();
        for p in 0..self.holdings.partitions() {
            if !self.holdings.keys(p).is_empty() && !self.replicates(p) {
                out.insert(p);
            }
        }
        out
    }

    /// Publishes what this node still has to hand over (see [`HANDOFF_KEY`]), if it changed. A
    /// node with a provisional ring publishes nothing (it holds nothing of the cluster's yet).
    pub(crate) fn publish_handoff(&mut self) {
        if self.view.ring_provisional {
            return;
        }
        let stamp = (
            self.holdings.occupancy_changes(),
            self.view.replicated_changes,
            self.view.ring_digest,
        );
        let quiet = self.transfers.is_empty();
        if quiet && self.view.handoff_stamp == Some(stamp) {
            return;
        }
        let entry = encode_handoff(&self.view.ring_digest, &self.handing_over());
        if entry != self.view.handoff_published {
            let _ = self.gossip.set_app_state(HANDOFF_KEY, entry.clone());
            self.view.handoff_published = entry;
        }
        self.view.handoff_stamp = quiet.then_some(stamp);
    }

    /// Whether `id` was taken out of the ring while down ([`RingState::forced`]): it hands
    /// nothing over, so nobody waits for it.
    pub(crate) fn forced_out(&self, id: NodeId) -> bool {
        self.view.ring_state.forced.contains(&id) && !self.view.ring.contains(&id)
    }

    /// The [`RingState::forced`] of the ring that takes `leavers` out and is `next`: those of
    /// the current ring, and the leavers this node (the claimant) sees down and not leaving,
    /// less the nodes `next` holds (a node that joins again starts empty).
    pub(crate) fn forced_with(&self, leavers: &[NodeId], next: &Ring<NodeId>) -> BTreeSet<NodeId> {
        let mut forced = self.view.ring_state.forced.clone();
        forced.extend(leavers.iter().copied().filter(|&id| self.forced_leaver(id)));
        forced.retain(|id| !next.contains(id));
        forced
    }

    /// Whether a leave of `id` takes it out without a hand-over: a member this node (the
    /// claimant) sees down and not leaving, or a node outside the ring that may be forgotten
    /// ([`Self::forgettable`]).
    pub(crate) fn forced_leaver(&self, id: NodeId) -> bool {
        if !self.view.ring_state.ring.contains(&id) {
            return self.forgettable(id);
        }
        id != self.id
            && !self.is_up(id)
            && !self
                .gossip
                .node_state(&id)
                .is_some_and(|s| matches!(s.status(), Status::Leaving | Status::Left))
    }

    /// Whether `id`, outside the ring, may be forgotten by a commit that names it among the
    /// leaves: gossip knows it, it is down and has not said it left, and the ring has not
    /// taken it out yet. Such a node (a staged joiner never committed, or a node that left the
    /// ring and died before it said so) may hold hints or hand-overs nobody knows of, so it holds
    /// tombstone reaping up on every node (see `reaper`) for as long as gossip knows it.
    pub(crate) fn forgettable(&self, id: NodeId) -> bool {
        id != self.id
            && !self.view.ring_state.ring.contains(&id)
            && !self.forced_out(id)
            && !self.is_up(id)
            && self
                .gossip
                .node_state(&id)
                .is_some_and(|s| s.status() != Status::Left)
    }

    /// The former members gossip does not know, outside the ring and not forced out (see
    /// [`View::former`]).
    pub(crate) fn vanished(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.view.former.iter().copied().filter(|id| {
            self.gossip.node_state(id).is_none()
                && !self.view.ring_state.ring.contains(id)
                && !self.forced_out(*id)
        })
    }

    /// The vanished former members the claimant forces out: its own (once `remove_after` has
    /// passed since it started: a claimant restarted after its peers forgot one hears of it no
    /// more) and those ring members publish ([`VANISHED_KEY`]), that it does not know as up and
    /// not leaving; at most [`MAX_VANISHED`], and once per `remove_after` (a peer publishing
    /// made-up ids grows the ring's forced set that slowly at most). None without
    /// `remove_after` (then no node's gossip forgets a member, and every node hears of it from
    /// its peers).
    pub(crate) fn forgettable_vanished(&self, now: Millis) -> Vec<NodeId> {
        let Some(after) = self.config.remove_after else {
            return Vec::new();
        };
        if self
            .view
            .forgot_at
            .is_some_and(|at| now < at.saturating_add(after))
        {
            return Vec::new();
        }
        let ring = &self.view.ring_state.ring;
        let mut ids: BTreeSet<NodeId> = BTreeSet::new();
        if now >= self.view.booted.saturating_add(after) {
            ids.extend(self.vanished());
        }
        for (id, state) in self.gossip.members() {
            if *id == self.id || !ring.contains(id) {
                continue;
            }
            if let Some(entry) = state.app_state(VANISHED_KEY) {
                ids.extend(
                    entry
                        .chunks_exact(8)
                        .take(MAX_VANISHED)
                        .filter_map(|b| b.try_into().ok().map(u64::from_be_bytes)),
                );
            }
        }
        ids.into_iter()
            .filter(|&id| {
                id != self.id
                    && !ring.contains(&id)
                    && !self.forced_out(id)
                    && !self
                        .gossip
                        .node_state(&id)
                        .is_some_and(|s| self.is_up(id) && !matches!(s.status(), Status::Left))
            })
            .take(MAX_VANISHED)
            .collect()
    }

    /// Follows the vanished former members (at each tick): with `remove_after`, any holds
    /// reaping up until the claimant forces it out, and they are published ([`VANISHED_KEY`]) so
    /// that a claimant that never saw them in its ring forces them out too. Without
    /// `remove_after` no node's gossip forgets a member that has not left, so none holds
    /// anything up.
    pub(crate) fn track_vanished(&mut self) {
        let vanished: Vec<NodeId> = if self.config.remove_after.is_some() {
            self.vanished().take(MAX_VANISHED).collect()
        } else {
            Vec::new()
        };
        self.view.vanished_hold = !vanished.is_empty();
        let entry: Vec<u8> = vanished.iter().flat_map(|id| id.to_be_bytes()).collect();
        if entry != self.view.vanished_published {
            let _ = self.gossip.set_app_state(VANISHED_KEY, entry.clone());
            self.view.vanished_published = entry;
        }
    }

    /// Persists [`View::former`] if it changed.
    pub(crate) fn persist_former(&mut self) {
        if std::mem::take(&mut self.view.former_changed) {
            let list: Vec<NodeId> = self.view.former.iter().copied().collect();
            if let Ok(bytes) = rmp_serde::to_vec(&list) {
                self.put_meta(FORMER_KEY, bytes);
            }
        }
    }

    /// The partitions some member still has to hand over, or `None` if some member may hold
    /// anything: it uses another ring, or it is in the ring and published no handoff entry (or
    /// gossip has brought nothing of it yet), or a former member is vanished
    /// ([`View::former`]). A tombstone is reaped only outside these
    /// (see `reaper`): elsewhere a copy outside the primaries could bring an older version back
    /// once the tombstone is gone. Members that left handed everything over and do not count.
    pub(crate) fn handoffs_pending(&self) -> Option<BTreeSet<usize>> {
        let unknown = self
            .view
            .members
            .iter()
            .any(|id| *id != self.id && self.gossip.node_state(id).is_none());
        if unknown || self.view.vanished_hold {
            return None;
        }
        let mut pending = self.handing_over();
        for (id, state) in self.gossip.members() {
            if *id == self.id || state.status() == Status::Left || self.forced_out(*id) {
                continue;
            }
            match state.app_state(HANDOFF_KEY).and_then(decode_handoff) {
                Some((digest, partitions)) if digest == self.view.ring_digest => {
                    pending.extend(partitions);
                }
                Some(_) => return None,
                None if self.view.members.contains(id) => return None,
                None => {}
            }
        }
        Some(pending)
    }

    /// Hints meant for a node that does not replicate their key (a ring change took the key's
    /// range from it; or, after a provisional ring, hints taken on the guess, for any node):
    /// their versions go to the key's primaries instead, as for a node that left. Kept for it, a hint would reach a node that only hands it on, and
    /// the reaper, which waits for hints meant for a key's primaries, would not wait for it: a
    /// tombstone could go while the hint still held the older value.
    pub(crate) fn reroute_misaddressed_hints(&mut self, now: Millis) {
        let misaddressed: Vec<(dynamo_handoff::HintId, Vec<u8>, Vec<u8>, Millis)> = self
            .hints
            .records()
            .filter(|r| {
                r.hint.intended != self.id && !self.is_key_primary(&r.hint.key, r.hint.intended)
            })
            .map(|r| {
                (
                    r.id,
                    r.hint.key.clone(),
                    r.hint.payload.clone(),
                    r.recorded_at,
                )
            })
            .collect();
        if misaddressed.is_empty() {
            return;
        }
        self.hints.reroute(misaddressed.iter().map(|m| m.0));
        for (_, key, payload, recorded_at) in misaddressed {
            self.pass_on(now, recorded_at, key, &payload);
        }
    }

    /// A hint's versions (`payload`, the hint just dropped) go to the key's primaries: kept here
    /// when this node is one, as hints for the others; a primary whose hint the log cannot take
    /// (it is full) gets them at once, unacknowledged, rather than nowhere (the dropped hint may
    /// have held the only copy of an acknowledged write).
    fn pass_on(&mut self, now: Millis, recorded_at: Millis, key: Vec<u8>, payload: &[u8]) {
        let Some(siblings) = super::digest::decode_siblings(payload) else {
            self.stats.counters.bad_messages += 1;
            return;
        };
        for p in self.key_primaries(&key) {
            if p == self.id {
                self.merge(key.clone(), siblings.clone(), Then::Nothing);
            } else if !self.hint(now, recorded_at, p, key.clone(), &siblings) {
                self.transmits.push_back((
                    p,
                    PeerMessage::Write {
                        req: None,
                        key: key.clone(),
                        siblings: siblings.clone(),
                        hint: None,
                    },
                ));
            }
        }
    }

    /// `gone` left the ring: the hints held for it go to the key's replicas in the new ring
    /// instead (stored here when this node is one of them), then the hint log forgets it.
    /// The old hints go first, so that their room in a full log takes the new ones.
    fn reroute_hints(&mut self, now: Millis, gone: NodeId) {
        let held: Vec<(Vec<u8>, Vec<u8>, Millis)> = self
            .hints
            .records()
            .filter(|r| r.hint.intended == gone)
            .map(|r| (r.hint.key.clone(), r.hint.payload.clone(), r.recorded_at))
            .collect();
        self.hints.forget_peer(&gone);
        for (key, payload, recorded_at) in held {
            self.pass_on(now, recorded_at, key, &payload);
        }
    }
}

/// Most ring shapes of peers' rings said (a peer publishing ever new shapes cannot grow the set).
const MISMATCHES_SAID: usize = 16;

/// A ring's shape as an operator configures it: "N = 3, 64 partitions".
pub(crate) fn ring_shape(config: &RingConfig) -> String {
    let cut = match config.strategy {
        Strategy::EqualPartitions { partitions } => format!("{partitions} partitions"),
        other => format!("{other:?}"),
    };
    format!("N = {}, {cut}, {:?} hashing", config.replicas, config.hash)
}
