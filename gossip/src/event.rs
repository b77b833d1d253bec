//! What the machine hands to its driver: transmits, events, counters.

use crate::message::Message;
use crate::state::Status;

/// A message to send: to the node `to`, at `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<Id, A> {
    /// The destination node.
    pub to: Id,
    /// Where it listens (from its gossiped state, the seed list, or the message it sent).
    pub address: A,
    /// The message.
    pub message: Message<Id, A>,
}

/// News for the application, about other nodes (never about this node itself).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<Id> {
    /// A node entered the view.
    Joined {
        /// The node.
        id: Id,
    },
    /// A known node came back with a new generation; its old state was replaced.
    Restarted {
        /// The node.
        id: Id,
        /// Its new generation.
        generation: u64,
        /// The generation and version held here of its earlier incarnation: how far that one
        /// got, as far as this node knew (a node restarted on a store that went back can learn
        /// it so: see [`Gossip::earlier_incarnation`](crate::Gossip::earlier_incarnation)).
        replaced: (u64, u64),
    },
    /// The failure detector considers the node alive (after joining, or after being down).
    Up {
        /// The node.
        id: Id,
    },
    /// The failure detector suspects the node (phi above the threshold).
    Down {
        /// The node.
        id: Id,
    },
    /// The node announced a new status (joining, up, leaving).
    StatusChanged {
        /// The node.
        id: Id,
        /// Its new status.
        status: Status,
    },
    /// The node left gracefully.
    Left {
        /// The node.
        id: Id,
    },
    /// The node was dropped from the view (down too long, or left a while ago).
    Removed {
        /// The node.
        id: Id,
    },
    /// One application key of the node changed (or vanished after a restart).
    AppStateChanged {
        /// The node.
        id: Id,
        /// The key.
        key: String,
    },
}

/// Counters of what the machine did and what it refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Gossip rounds run.
    pub rounds: u64,
    /// Messages queued for sending.
    pub messages_sent: u64,
    /// Estimated bytes queued for sending.
    pub bytes_sent: u64,
    /// Messages handled (accepted or not).
    pub messages_received: u64,
    /// Messages that named another cluster.
    pub ignored_wrong_cluster: u64,
    /// Messages that broke a delta invariant (version ranges, entry order).
    pub ignored_malformed: u64,
    /// Messages that claimed to come from this node.
    pub ignored_from_self: u64,
    /// Deltas about a generation older than the one known.
    pub ignored_stale_generation: u64,
    /// Deltas that did not connect to what is known (they come again next round).
    pub ignored_gap: u64,
    /// Deltas about a removed node that carried nothing newer than its removal.
    pub ignored_removed: u64,
    /// Deltas about this node that were newer than this node itself (another process with the
    /// same id, or a generation that was not persisted), past the first newer generation.
    pub ignored_conflicting_self: u64,
    /// Times this node took a generation past a later incarnation of itself that peers held (at
    /// most once per start: its persisted generation was lost and its clock reads earlier).
    pub raised_generation: u64,
    /// News of nodes not in the view while it held [`Config::max_members`](crate::Config)
    /// others, and tombstones of removed nodes dropped early to keep at most as many.
    pub ignored_view_full: u64,
}
