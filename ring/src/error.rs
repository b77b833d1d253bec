//! Errors returned when a ring cannot be built or changed.

use thiserror::Error;

/// Why a ring could not be built or changed.
///
/// Node identities are rendered with their `Debug` form so that the error type does not depend on
/// the node type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RingError {
    /// Strategy 3 needs a partition count that is a power of two (and at least 1).
    #[error("partition count must be a power of two, got {0}")]
    PartitionsNotPowerOfTwo(u32),
    /// Strategy 1 needs at least one token per node.
    #[error("tokens per node must be at least 1")]
    ZeroTokens,
    /// A ring needs at least one node (building one, or removing the last node).
    #[error("a ring needs at least one node")]
    NoNodes,
    /// The replication factor N must be at least 1.
    #[error("replication factor N must be at least 1")]
    ZeroReplicas,
    /// The replication factor is larger than this crate supports.
    #[error("replication factor N = {requested} is larger than the supported maximum {max}")]
    TooManyReplicas {
        /// The N that was asked for.
        requested: usize,
        /// The largest supported N.
        max: usize,
    },
    /// More partitions than [`MAX_PARTITIONS`](crate::MAX_PARTITIONS).
    #[error("{requested} partitions are more than the supported maximum {max}")]
    TooManyPartitions {
        /// The partition count asked for.
        requested: u32,
        /// The largest supported count.
        max: u32,
    },
    /// A node would get more tokens than [`MAX_TOKENS_PER_NODE`](crate::MAX_TOKENS_PER_NODE)
    /// (tokens per node times its weight).
    #[error("node {node} would get {tokens} tokens, more than the supported maximum {max}")]
    TooManyTokens {
        /// The node, in its `Debug` form (`*` for the configuration itself).
        node: String,
        /// The tokens it would get.
        tokens: u64,
        /// The largest supported count.
        max: u64,
    },
    /// A node weight of zero would own nothing; remove the node instead.
    #[error("node {node} has weight 0")]
    ZeroWeight {
        /// The node, in its `Debug` form.
        node: String,
    },
    /// The node is already a member of the ring.
    #[error("node {node} is already in the ring")]
    DuplicateNode {
        /// The node, in its `Debug` form.
        node: String,
    },
    /// The node is not a member of the ring.
    #[error("node {node} is not in the ring")]
    UnknownNode {
        /// The node, in its `Debug` form.
        node: String,
    },
    /// Strategy 3 cannot have more nodes than partitions.
    #[error("{nodes} nodes exceed the partition count {partitions}")]
    TooManyNodes {
        /// Number of nodes the ring would have.
        nodes: usize,
        /// Strategy 3's partition count Q.
        partitions: u32,
    },
}
