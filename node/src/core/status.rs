//! What `dynamo status` shows: [`NodeStatus`], a summary of one node's view, counters and
//! latencies, made by [`NodeCore::status`].

use serde::{Deserialize, Serialize};

use super::stats::{Counters, LatencySummary};
use super::{NodeCore, StalenessStatus};
use crate::types::NodeId;

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub address: String,
    /// Whether it is believed up.
    pub up: bool,
    /// Hints held here for it.
    pub hints_pending: usize,
}

/// What `dynamo status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node.
    pub id: NodeId,
    /// Its address.
    pub address: String,
    /// Storage epoch.
    pub epoch: u64,
    /// Gossip generation.
    pub generation: u64,
    /// Version of the ring this node uses (nodes that agree on it agree on the ring).
    #[serde(default)]
    pub ring_version: u64,
    /// Ring members.
    pub members: Vec<MemberStatus>,
    /// Share of the key space each member stores (as one of N replicas).
    pub ownership: Vec<(NodeId, f64)>,
    /// Partitions this node replicates.
    pub partitions_replicated: usize,
    /// Keys stored.
    pub keys: usize,
    /// Hints held for other nodes.
    pub hints_pending: usize,
    /// Anti-entropy sessions running.
    pub sync_sessions_running: usize,
    /// Outgoing ownership transfers running (partition, receiver).
    #[serde(default)]
    pub transfers_running: usize,
    /// Partitions this node became a replica of and has not received yet.
    #[serde(default)]
    pub partitions_incoming: usize,
    /// This node is leaving: asked to leave (it stays in the ring, in `members`, until the
    /// claimant takes it out, which waits while the ring cannot lose a node), or out of the ring
    /// (taken out, or removed by a commit), handing its data over; it may be stopped once
    /// [`handed_over`](Self::handed_over).
    #[serde(default)]
    pub leaving: bool,
    /// Client requests being coordinated.
    pub requests_in_flight: usize,
    /// Counters.
    pub counters: Counters,
    /// Get latency.
    pub get_latency: LatencySummary,
    /// Put latency.
    pub put_latency: LatencySummary,
    /// Live staleness predictions (PBS) from the round trips this node measured as a
    /// coordinator; `None` before it timed enough answers.
    #[serde(default)]
    pub staleness: Option<StalenessStatus>,
    /// This node left: out of the ring, with no transfer running, no hint held for another
    /// node (as a fallback it may hold the only copies of writes it acknowledged), and every
    /// receiver heard up told its hand-over is done. It may be stopped. (Last, so that a status from a node of an earlier version, which lacks it,
    /// still decodes.)
    #[serde(default)]
    pub handed_over: bool,
    /// The shape (N, partitions) of a ring a peer publishes that this node's configuration does
    /// not match, last heard: one of the two is misconfigured, and a joiner never takes the
    /// cluster's ring. (Last, as `handed_over`.)
    #[serde(default)]
    pub ring_mismatch: Option<String>,
}

impl NodeCore {
    /// A summary for the `status` command, its staleness prediction computed afresh (a Monte
    /// Carlo of milliseconds: a runtime that answers many may reuse one, see
    /// [`status_with`](Self::status_with)).
    pub fn status(&self) -> NodeStatus {
        self.status_with(self.staleness())
    }

    /// [`status`](Self::status) with a staleness prediction made earlier
    /// ([`staleness`](Self::staleness)).
    pub fn status_with(&self, staleness: Option<StalenessStatus>) -> NodeStatus {
        let members = self
            .view
            .members
            .iter()
            .map(|&m| MemberStatus {
                id: m,
                address: self.view.addresses.get(&m).cloned().unwrap_or_default(),
                up: self.is_up(m),
                hints_pending: self.hints.pending_for(&m),
            })
            .collect();
        let ownership = self.view.ring.ownership();
        NodeStatus {
            id: self.id,
            address: self.address.clone(),
            epoch: self.epochs.floor(),
            ring_version: self.view.ring_state.version,
            generation: self.gossip.local_state().generation(),
            members,
            ownership: ownership.replica.clone(),
            partitions_replicated: (0..self.view.ring.range_count())
                .filter(|&p| self.replicates(p))
                .count(),
            keys: self.holdings.len(),
            hints_pending: self.hints.len(),
            sync_sessions_running: self.anti_entropy.len(),
            transfers_running: self.transfers.runs.len(),
            partitions_incoming: self.transfers.incoming.len(),
            leaving: self.view.leaving,
            ring_mismatch: self.view.ring_mismatch.clone(),
            handed_over: self.handed_over(),
            requests_in_flight: self.requests.len(),
            counters: Counters {
                gossip_view_full: self.gossip.stats().ignored_view_full,
                ..self.stats.counters.clone()
            },
            get_latency: LatencySummary::of(&self.stats.get_latency),
            put_latency: LatencySummary::of(&self.stats.put_latency),
            staleness,
        }
    }
}
