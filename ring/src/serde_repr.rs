//! The serialized form of a ring: only what cannot be derived, checked when read back.

use std::fmt::Debug;

use crate::ring::validate_config;
use crate::rng::TokenRng;
use crate::{NodeSpec, Ring, RingConfig, RingError, Strategy};

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct RingRepr<N> {
    config: RingConfig,
    nodes: Vec<NodeSpec<N>>,
    positions: Vec<u128>,
    owners: Vec<u32>,
    /// Words drawn by strategy 1's generator (its seed is in `config`).
    rng: u64,
}

/// Why a serialized ring was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] RingError),
    /// Nodes not strictly sorted, a token owned by no node, a node that owns no token, unsorted
    /// tokens, or partitions that do not match Q.
    #[error("inconsistent ring: {0}")]
    Inconsistent(&'static str),
}

impl<N: Ord + Clone + Debug> TryFrom<RingRepr<N>> for Ring<N> {
    type Error = DecodeError;

    fn try_from(r: RingRepr<N>) -> Result<Self, DecodeError> {
        validate_config(&r.config)?;
        if r.nodes.is_empty() {
            return Err(RingError::NoNodes.into());
        }
        if r.nodes.windows(2).any(|w| w[0].id >= w[1].id) {
            return Err(DecodeError::Inconsistent("nodes not sorted by id"));
        }
        if r.nodes.iter().any(|n| n.weight == 0) {
            return Err(DecodeError::Inconsistent("node of weight 0"));
        }
        if r.positions.len() != r.owners.len() || r.positions.is_empty() {
            return Err(DecodeError::Inconsistent("token count"));
        }
        if r.positions.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DecodeError::Inconsistent("tokens not sorted"));
        }
        if r.owners.iter().any(|&o| o as usize >= r.nodes.len()) {
            return Err(DecodeError::Inconsistent("token owned by an unknown node"));
        }
        // Every member owns a token (and so a partition): a preference list holds N distinct
        // nodes when the ring has N.
        let mut owns = vec![false; r.nodes.len()];
        for &o in &r.owners {
            if let Some(slot) = owns.get_mut(o as usize) {
                *slot = true;
            }
        }
        if owns.contains(&false) {
            return Err(DecodeError::Inconsistent("a node owns no token"));
        }
        if let Strategy::EqualPartitions { partitions } = r.config.strategy {
            let expected = (0..partitions).map(|p| crate::partition::partition_end(p, partitions));
            if r.positions.len() != partitions as usize || !expected.eq(r.positions.iter().copied())
            {
                return Err(DecodeError::Inconsistent("partitions do not match Q"));
            }
        }
        let seed = r.config.strategy.token_seed();
        let mut ring = Ring {
            rng: TokenRng::resume(seed, r.rng),
            config: r.config,
            nodes: r.nodes,
            positions: r.positions,
            owners: r.owners,
            prev_dist: Vec::new(),
            zone_of: Vec::new(),
            zone_count: 0,
            buckets: Vec::new(),
            bucket_bits: 0,
        };
        ring.reindex();
        Ok(ring)
    }
}

impl<N: Clone> From<Ring<N>> for RingRepr<N> {
    fn from(r: Ring<N>) -> Self {
        RingRepr {
            config: r.config,
            nodes: r.nodes,
            positions: r.positions,
            owners: r.owners,
            rng: r.rng.words(),
        }
    }
}
