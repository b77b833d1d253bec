//! What the core reports for operators: membership, failure-detector verdicts, ring changes,
//! hinted handoff and ownership transfers. The runtime logs them at info; the simulator and
//! tests may drain them or not ([`NodeCore::poll_event`]).
//!
//! Only events an operator acts on or looks for after an incident, never one per request: a
//! node's up/down, a ring installed, a batch of hints delivered, a transfer started or finished.

use std::collections::VecDeque;

use crate::types::NodeId;

/// At most this many undrained events are kept; older ones are dropped (a driver that never
/// drains them, like the simulator, costs bounded memory).
const MAX_EVENTS: usize = 1024;

/// An event of a node's life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The failure detector believes a member up again (or for the first time).
    MemberUp {
        /// The member.
        id: NodeId,
    },
    /// The failure detector believes a member down.
    MemberDown {
        /// The member.
        id: NodeId,
    },
    /// Gossip brought news of a new member, or of a member restarted with a new generation.
    MemberJoined {
        /// The member.
        id: NodeId,
        /// Whether it restarted (a new generation) rather than appeared.
        restarted: bool,
    },
    /// A member is leaving or left the cluster, or was removed.
    MemberLeft {
        /// The member.
        id: NodeId,
    },
    /// A peer publishes a ring of another shape (N, partition count, strategy or hash) than
    /// this node's configuration: the ring is not taken, and one of the two nodes is
    /// misconfigured (a joiner never leaves its guessed ring). Said once per shape heard.
    RingMismatch {
        /// The peer.
        from: NodeId,
        /// The shape of its ring.
        theirs: String,
        /// This node's.
        ours: String,
    },
    /// This node moved to a new ring.
    RingInstalled {
        /// The ring's version.
        version: u64,
        /// Its members.
        members: Vec<NodeId>,
    },
    /// Hints held here reached the node they were meant for.
    HintsDelivered {
        /// That node.
        node: NodeId,
        /// Hints delivered (and acknowledged) in this round.
        count: u64,
    },
    /// Hints were dropped (expired, or over a bound).
    HintsDropped {
        /// Hints dropped in this round.
        count: u64,
    },
    /// This node started streaming a partition to a new owner.
    TransferStarted {
        /// The partition.
        partition: usize,
        /// The receiver.
        to: NodeId,
    },
    /// A partition's transfer to a new owner completed.
    TransferFinished {
        /// The partition.
        partition: usize,
        /// The receiver.
        to: NodeId,
    },
}

/// The bounded queue of events.
#[derive(Debug, Default)]
pub(crate) struct Events {
    queue: VecDeque<NodeEvent>,
}

impl Events {
    pub(crate) fn push(&mut self, event: NodeEvent) {
        if self.queue.len() >= MAX_EVENTS {
            self.queue.pop_front();
        }
        self.queue.push_back(event);
    }

    pub(crate) fn pop(&mut self) -> Option<NodeEvent> {
        self.queue.pop_front()
    }
}
