//! Typed errors of configuration and application commands.

use crate::state::Status;

/// A configuration that cannot drive a machine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `gossip_interval` is shorter than 1 ms.
    #[error("the gossip interval must be at least 1 ms")]
    ZeroInterval,
    /// `gossip_interval` is longer than [`MAX_INTERVAL`](crate::MAX_INTERVAL).
    #[error("the gossip interval of {ms} ms is longer than a day")]
    IntervalTooLong {
        /// The configured interval, ms.
        ms: u64,
    },
    /// `phi_threshold` is not a positive finite number.
    #[error("the phi threshold must be positive and finite, got {0}")]
    BadPhiThreshold(f64),
    /// `window_size` is 0.
    #[error("the failure detector window must hold at least one sample")]
    EmptyWindow,
    /// `max_message_bytes` cannot hold even a small digest list.
    #[error("the message size bound {bound} is below the minimum of {minimum} bytes")]
    MessageBoundTooSmall {
        /// The configured bound.
        bound: usize,
        /// The smallest accepted bound.
        minimum: usize,
    },
    /// `max_members` is 0: the view could hold no other node.
    #[error("the view must have room for at least one other node (max_members)")]
    NoRoomForMembers,
}

/// An application command that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GossipError {
    /// Status only moves forward: joining, up, leaving, left.
    #[error("status cannot go from {from:?} back to {to:?}")]
    StatusRegression {
        /// The current status.
        from: Status,
        /// The refused status.
        to: Status,
    },
    /// An application entry too large to travel in one message (half the message bound).
    #[error("application entry {key:?} takes {size} bytes, above the limit of {limit}")]
    ValueTooLarge {
        /// The key.
        key: String,
        /// Estimated encoded size of the entry.
        size: usize,
        /// Half of `Config::max_message_bytes`.
        limit: usize,
    },
    /// The node has left; its state is frozen.
    #[error("this node has left the cluster; its state can no longer change")]
    AlreadyLeft,
}

/// Why [`Gossip::handle_message`](crate::Gossip::handle_message) refused a whole message. A
/// refused message changed nothing but the counters in [`Stats`](crate::Stats). (Single deltas
/// inside an accepted message may still be ignored as stale or disconnected; they are counted,
/// not refused.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The message names another cluster.
    #[error("message for cluster {got:?}, this node is in cluster {expected:?}")]
    WrongCluster {
        /// This node's cluster.
        expected: String,
        /// The cluster the message names.
        got: String,
    },
    /// The message claims to come from this node.
    #[error("message claims to come from this node")]
    FromSelf,
    /// A delta breaks an invariant an honest sender keeps.
    #[error("malformed delta: {reason}")]
    Malformed {
        /// The broken invariant.
        reason: &'static str,
    },
}
