//! How a ring is built: hash function, partitioning strategy, replication factor, node specs.

use crate::HashFunction;

/// The largest replication factor N this crate supports (the preference list keeps its primaries
/// inline, so that a lookup allocates nothing).
pub const MAX_REPLICAS: usize = 16;

/// The most partitions strategy 3 takes (2^20: Riak's largest ring is 2^14, and a ring of 2^31
/// would need tens of GiB).
pub const MAX_PARTITIONS: u32 = 1 << 20;

/// The most tokens strategy 1 gives one node (tokens per node times its weight; Cassandra gives
/// 256 or 16).
pub const MAX_TOKENS_PER_NODE: u64 = 1 << 16;

/// A partitioning strategy from the Dynamo paper, section 6.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Strategy {
    /// Strategy 1: every node draws `tokens_per_node` random tokens (times its weight) from a
    /// generator seeded with `seed`. Partitioning and placement are coupled: a join steals ranges
    /// from its neighbours and the ranges change size.
    RandomTokens {
        /// Tokens per unit of weight, T in the paper.
        tokens_per_node: u32,
        /// Seed of the token generator.
        seed: u64,
    },
    /// Strategy 3: the ring is cut into `partitions` equal ranges (Q, a power of two) and every
    /// node owns about Q/S of them. Partitions never change; only their owners do. Dynamo settled on
    /// it, and so did Riak.
    EqualPartitions {
        /// Q, a power of two.
        partitions: u32,
    },
}

impl Strategy {
    /// The seed of the token generator (strategy 1's; unused, 0, by the others).
    pub(crate) fn token_seed(&self) -> u64 {
        match *self {
            Strategy::RandomTokens { seed, .. } => seed,
            Strategy::EqualPartitions { .. } => 0,
        }
    }
}

impl Default for Strategy {
    /// Strategy 3 with Q = 64, Riak's default ring size.
    fn default() -> Self {
        Strategy::EqualPartitions { partitions: 64 }
    }
}

/// Configuration of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RingConfig {
    /// How keys are hashed to positions.
    pub hash: HashFunction,
    /// How the ring is cut and assigned.
    pub strategy: Strategy,
    /// Replication factor N: the number of primaries in a preference list.
    pub replicas: usize,
}

impl Default for RingConfig {
    /// MD5, strategy 3 with Q = 64, N = 3 (the paper's and Riak's defaults).
    fn default() -> Self {
        RingConfig {
            hash: HashFunction::Md5,
            strategy: Strategy::default(),
            replicas: 3,
        }
    }
}

/// A node as the ring sees it: its identity, its weight and its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeSpec<N> {
    /// The node's identity.
    pub id: N,
    /// Relative capacity: a node of weight 2 owns about twice as much as one of weight 1.
    pub weight: u32,
    /// Failure zone (rack, datacenter). Preference lists take distinct zones first.
    pub zone: Option<String>,
}

impl<N> NodeSpec<N> {
    /// A node of weight 1 in no particular zone.
    pub fn new(id: N) -> Self {
        NodeSpec {
            id,
            weight: 1,
            zone: None,
        }
    }

    /// Sets the weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the zone.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }
}
