//! Staged membership changes: an operator plans a change, reads what it would move, and commits
//! it (Riak's `cluster plan` / `cluster commit`, Garage's `layout show` / `layout apply`).
//!
//! A [`ChangeRequest`] names nodes to add and nodes to remove. [`NodeCore::plan_change`] computes
//! the ring the claimant would make from the current one (leaves first, then joins, each with the
//! ring crate's minimal-movement operation, exactly as an automatic change) and what moves: for
//! every range, the replicas it gains. Nothing changes until [`NodeCore::commit_change`] is called
//! on the claimant with the ring version the plan was made from; if the ring moved on meanwhile
//! the commit is refused and the operator plans again, so a commit applies exactly the plan that
//! was shown.
//!
//! Nodes added this way are typically started with `wait_for_commit` (they announce themselves
//! and wait); a node removed this way hands its ranges over and then leaves, as if it had been
//! asked to leave.

use std::collections::BTreeSet;

use dynamo_ring::Ring;
use serde::{Deserialize, Serialize};

use super::membership::RingState;
use super::storage::{StorageOp, Then};
use super::NodeCore;
use crate::types::{Millis, NodeId};

/// A membership change an operator asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Nodes to add: up, known to gossip, not in the ring.
    pub joins: Vec<NodeId>,
    /// Ring members to remove.
    pub leaves: Vec<NodeId>,
}

/// A ring member as a plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMember {
    /// The node.
    pub id: NodeId,
    /// Where it listens, as this node knows it (empty if unknown).
    pub address: String,
    /// Its zone, if any.
    pub zone: Option<String>,
    /// Replica copies (of the ring's ranges) it holds before the change.
    pub copies_before: usize,
    /// Replica copies it holds after.
    pub copies_after: usize,
}

/// One replica copy that moves: range `range` gains replica `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMove {
    /// The range (partition) index.
    pub range: usize,
    /// Its replicas before the change (any of them can supply it).
    pub from: Vec<NodeId>,
    /// The new replica.
    pub to: NodeId,
}

/// What a [`ChangeRequest`] would do, computed from one ring version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePlan {
    /// The change.
    pub request: ChangeRequest,
    /// The ring version the plan starts from (a commit must name it).
    pub version: u64,
    /// The node that may commit it (the claimant), if one is up.
    pub claimant: Option<NodeId>,
    /// Every node of the ring before or after, with its replica copies before and after.
    pub members: Vec<PlannedMember>,
    /// The replica copies that move.
    pub moves: Vec<PlannedMove>,
    /// Replica copies in the ring (ranges times N).
    pub copies: usize,
    /// Distinct zones in the ring after the change, the nodes without a zone counted as one
    /// (preference lists span distinct zones first); 0 when no node has one.
    pub zones_after: usize,
    /// The nodes to leave that go without handing anything over: members the claimant sees down
    /// (and not leaving), and nodes down outside the ring, which the ring forgets (see
    /// [`ChangeError::NotMember`]). Their copies and hints are given up; their ranges refill
    /// from the other replicas.
    // Not written when empty: a plan is then the 7 fields an earlier node sends, which an
    // earlier client reads (msgpack writes a struct as an array of its fields).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced: Vec<NodeId>,
}

/// Why a change cannot be planned or committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChangeError {
    /// The request names no node.
    #[error("nothing to change: name nodes to join or to leave")]
    Empty,
    /// A node to add is already a member.
    #[error("node {0} is already a ring member")]
    AlreadyMember(NodeId),
    /// A node to add is not known here.
    #[error("node {0} is not known to this node: start it with a --peer of this cluster first")]
    UnknownNode(NodeId),
    /// A node to add is not up.
    #[error("node {0} is not up")]
    NodeDown(NodeId),
    /// A node to add has not said yet that it heard the cluster's ring.
    #[error("node {0} has not heard the cluster's ring yet: retry in a moment")]
    NotReady(NodeId),
    /// A node to remove is not a member, nor a node outside the ring that is down (such a node,
    /// a staged joiner never committed or a node that left and died before it said so, is
    /// forgotten by a commit that names it: it held tombstone reaping up).
    #[error(
        "node {0} is not a ring member (a node outside the ring may be named once it is down)"
    )]
    NotMember(NodeId),
    /// The change would leave fewer nodes than replicas.
    #[error("the change leaves {left} node(s), fewer than N = {n}")]
    TooFew {
        /// Nodes left.
        left: usize,
        /// The replication factor.
        n: usize,
    },
    /// The ring changed since the plan.
    #[error(
        "the ring is at version {current}, the plan was made at version {planned}: plan again"
    )]
    Stale {
        /// The version the plan was made from.
        planned: u64,
        /// The current version.
        current: u64,
    },
    /// Only the claimant commits.
    #[error("node {claimant} ({address}) is the claimant: commit there")]
    NotClaimant {
        /// The claimant.
        claimant: NodeId,
        /// Where it listens.
        address: String,
    },
    /// No claimant is up (or this node has not heard the cluster's ring yet).
    #[error("no ring member is up to commit (or this node has not heard the cluster's ring yet)")]
    NoClaimant,
    /// This node is leaving.
    #[error("this node is leaving the cluster")]
    Leaving,
    /// A node is named more than once.
    #[error("node {0} is named more than once")]
    Repeated(NodeId),
    /// The request names more nodes than this node knows of (ring members and nodes heard in
    /// gossip): some must be unknown or named twice.
    #[error("the change names {named} nodes, and this node knows of {known}")]
    TooMany {
        /// Ids the request names (joins and leaves).
        named: usize,
        /// Nodes this node knows of.
        known: usize,
    },
    /// A node to add is leaving or has left: a node remembers that it left (its data
    /// directory does), so it joins again only started on an empty data directory.
    #[error(
        "node {0} is leaving or has left the cluster: to add it again, stop it, empty its data \
         directory and start it again"
    )]
    Departing(NodeId),
    /// The ring crate refused the change.
    #[error("ring: {0}")]
    Ring(String),
}

/// Keys and bytes a node holds of one range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSize {
    /// The range (partition) index.
    pub range: usize,
    /// Keys stored.
    pub keys: u64,
    /// Bytes of keys and their encoded versions.
    pub bytes: u64,
}

/// Replica copies per node in `ring`.
fn copies(ring: &Ring<NodeId>) -> std::collections::BTreeMap<NodeId, usize> {
    let mut out = std::collections::BTreeMap::new();
    for p in 0..ring.range_count() {
        if let Some(list) = ring.preference_list_for_range(p) {
            for &n in list.primaries() {
                *out.entry(n).or_insert(0) += 1;
            }
        }
    }
    out
}

impl NodeCore {
    /// What `request` would do to the current ring; changes nothing.
    pub fn plan_change(&self, request: &ChangeRequest) -> Result<ChangePlan, ChangeError> {
        let next = self.checked_next_ring(request)?;
        let ring = &self.view.ring_state.ring;
        let mut moves = Vec::new();
        for p in 0..ring.range_count() {
            let before = super::primaries_of(ring, p);
            for to in super::primaries_of(&next, p) {
                if !before.contains(&to) {
                    moves.push(PlannedMove {
                        range: p,
                        from: before.clone(),
                        to,
                    });
                }
            }
        }
        let (before, after) = (copies(ring), copies(&next));
        let ids: BTreeSet<NodeId> = ring.nodes().chain(next.nodes()).map(|n| n.id).collect();
        let zone = |id: NodeId| {
            next.nodes()
                .chain(ring.nodes())
                .find(|n| n.id == id)
                .and_then(|n| n.zone.clone())
        };
        let members = ids
            .into_iter()
            .map(|id| PlannedMember {
                id,
                address: self.address_of(id).unwrap_or_default().to_owned(),
                zone: zone(id),
                copies_before: before.get(&id).copied().unwrap_or(0),
                copies_after: after.get(&id).copied().unwrap_or(0),
            })
            .collect();
        // As the ring counts them: the nodes without a zone are one more, once any has one.
        let zones: BTreeSet<Option<&str>> = next.nodes().map(|n| n.zone.as_deref()).collect();
        let zones_after = if zones.iter().all(Option::is_none) {
            0
        } else {
            zones.len()
        };
        Ok(ChangePlan {
            request: request.clone(),
            version: self.view.ring_state.version,
            claimant: self.claimant(),
            members,
            moves,
            copies: ring.range_count() * ring.replicas(),
            zones_after,
            forced: request
                .leaves
                .iter()
                .copied()
                .filter(|&id| self.forced_leaver(id))
                .collect(),
        })
    }

    /// Applies `request` if the ring is still at `version` and this node is the claimant: the
    /// next ring version is made, persisted and published, and transfers start as for any
    /// change. Returns the plan that was applied.
    pub fn commit_change(
        &mut self,
        now: Millis,
        version: u64,
        request: &ChangeRequest,
    ) -> Result<ChangePlan, ChangeError> {
        if self.view.leaving {
            return Err(ChangeError::Leaving);
        }
        if version != self.view.ring_state.version {
            return Err(ChangeError::Stale {
                planned: version,
                current: self.view.ring_state.version,
            });
        }
        // A node that has not heard the cluster's ring (a joiner's provisional ring holds
        // itself and its start members; a restarted node's stored ring may be stale) knows no
        // claimant: its ring would win over the cluster's own whenever its version and id come
        // out ahead, or lose a tie with a ring the cluster already made at that version.
        let claimant = if self.view.ring_provisional || self.ring_unconfirmed() {
            None
        } else {
            self.claimant()
        };
        match claimant {
            Some(c) if c == self.id => {}
            Some(claimant) => {
                return Err(ChangeError::NotClaimant {
                    claimant,
                    address: self.address_of(claimant).unwrap_or_default().to_owned(),
                })
            }
            None => return Err(ChangeError::NoClaimant),
        }
        let plan = self.plan_change(request)?;
        let ring = self.checked_next_ring(request)?;
        let version = self.next_version()?;
        // The claimant's automatic changes must not add a removed node back before its
        // `Leaving` status reaches here.
        // Not a node outside the ring the commit forgets: it joins again as any node would.
        let ring_leaves = request
            .leaves
            .iter()
            .copied()
            .filter(|id| self.view.ring_state.ring.contains(id));
        self.view.departed.extend(ring_leaves);
        let forced = self.forced_with(&request.leaves, &ring);
        let state = RingState {
            version,
            claimant: self.id,
            ring,
            forced,
        };
        self.install_ring(now, state);
        // Durable before the commit is answered (with what installing it wrote: the transfers
        // to run, this node's removal): a crash right after must not undo a change the operator
        // was told of. Seen in CI: a claimant killed 0.1 s after its commit came back on the old
        // ring, which nobody else had left.
        self.store_op(
            StorageOp::PutMeta {
                name: super::membership::RING_KEY.into(),
                value: self.view.ring_bytes.clone(),
                sync: true,
            },
            Then::Meta,
        );
        // The new ring may make room for a leave that waits.
        self.claim(now);
        self.drain(now);
        Ok(plan)
    }

    /// Whether this node may leave (`dynamo leave`): on the same terms as a commit that removes
    /// it, so that a leave neither takes the ring below N nodes (when it holds N or more) nor
    /// empties it. A node already leaving may be asked again.
    pub fn check_leave(&self) -> Result<(), ChangeError> {
        let ring = &self.view.ring_state.ring;
        if self.view.leaving || !ring.contains(&self.id) {
            return Ok(());
        }
        enough_left(ring, ring.node_count().saturating_sub(1))?;
        self.next_version().map(|_| ())
    }

    /// The version of the next ring, if there may be one.
    fn next_version(&self) -> Result<u64, ChangeError> {
        super::membership::next_ring_version(self.view.ring_state.version)
            .ok_or_else(|| ChangeError::Ring("the ring's version is at its maximum".into()))
    }

    /// The ring `request` leads to, after checking that it names known nodes.
    fn checked_next_ring(&self, request: &ChangeRequest) -> Result<Ring<NodeId>, ChangeError> {
        if request.joins.is_empty() && request.leaves.is_empty() {
            return Err(ChangeError::Empty);
        }
        // Every id a valid change names is a ring member or a node heard in gossip: a request
        // naming more ids than that is refused before any per-id work (it may hold millions).
        let ring = &self.view.ring_state.ring;
        let known = ring
            .nodes()
            .map(|spec| &spec.id)
            .chain(self.gossip.members().map(|(id, _)| id))
            .collect::<BTreeSet<_>>()
            .len();
        let count = request.joins.len() + request.leaves.len();
        if count > known {
            return Err(ChangeError::TooMany {
                named: count,
                known,
            });
        }
        // A repeated id is refused at its second mention, before any other work.
        let mut named = BTreeSet::new();
        if let Some(&id) = request
            .joins
            .iter()
            .chain(&request.leaves)
            .find(|&&id| !named.insert(id))
        {
            return Err(ChangeError::Repeated(id));
        }
        for &id in &request.joins {
            if ring.contains(&id) {
                return Err(ChangeError::AlreadyMember(id));
            }
            let departing = self.view.departed.contains(&id)
                || self.gossip.node_state(&id).is_some_and(|s| {
                    matches!(
                        s.status(),
                        dynamo_gossip::Status::Leaving | dynamo_gossip::Status::Left
                    )
                });
            if departing {
                return Err(ChangeError::Departing(id));
            }
            let Some(state) = self.gossip.node_state(&id) else {
                if id == self.id {
                    continue;
                }
                return Err(ChangeError::UnknownNode(id));
            };
            if !self.is_up(id) {
                return Err(ChangeError::NodeDown(id));
            }
            // As for the claimant's own joins: a node that has not published the cluster's ring
            // has not heard it (a new store whose first ring names it takes itself for a member
            // that lost its disk), or is heard only in part.
            if id != self.id && !self.publishes_current_ring(state) {
                return Err(ChangeError::NotReady(id));
            }
        }
        for &id in &request.leaves {
            if !ring.contains(&id) && !self.forgettable(id) {
                return Err(ChangeError::NotMember(id));
            }
        }
        // No id is named twice (checked above). Nodes outside the ring are only forgotten.
        let mut leaves: Vec<NodeId> = request
            .leaves
            .iter()
            .copied()
            .filter(|id| ring.contains(id))
            .collect();
        leaves.sort_unstable();
        let mut joins = request.joins.clone();
        joins.sort_unstable();
        enough_left(ring, ring.node_count() + joins.len() - leaves.len())?;
        if leaves.is_empty() && joins.is_empty() {
            return Ok(ring.clone());
        }
        self.next_ring(&leaves, &joins)
            .map_err(|e| ChangeError::Ring(e.to_string()))
    }
}

/// A change may leave `left` nodes of `ring`: never none, and never fewer than N unless the ring
/// already had fewer (then it may not shrink further).
pub(crate) fn enough_left(ring: &Ring<NodeId>, left: usize) -> Result<(), ChangeError> {
    let n = ring.replicas();
    if left == 0 || (left < n && left < ring.node_count()) {
        return Err(ChangeError::TooFew { left, n });
    }
    Ok(())
}
