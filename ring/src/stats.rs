//! How evenly a ring spreads the key space.

use std::fmt::Debug;

use crate::Ring;

/// The share of the key space each node is responsible for.
#[derive(Debug, Clone, PartialEq)]
pub struct Ownership<N> {
    /// For each node (sorted by id): the fraction of the key space for which it is the first
    /// primary (the coordinator's node), in `[0, 1]`; the fractions sum to 1.
    pub primary: Vec<(N, f64)>,
    /// For each node: the fraction of the key space it stores as one of the N replicas, in
    /// `[0, 1]`; the fractions sum to N when there are at least N nodes.
    pub replica: Vec<(N, f64)>,
}

impl<N> Ownership<N> {
    /// The largest primary share over the mean share, weights ignored (1.0 is perfect balance).
    pub fn imbalance(&self) -> f64 {
        imbalance(self.primary.iter().map(|(_, s)| *s))
    }

    /// The largest replica share over the mean replica share.
    pub fn replica_imbalance(&self) -> f64 {
        imbalance(self.replica.iter().map(|(_, s)| *s))
    }
}

fn imbalance(shares: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = shares.clone().count();
    if n == 0 {
        return 1.0;
    }
    let mean = shares.clone().sum::<f64>() / n as f64;
    let max = shares.fold(0.0, f64::max);
    if mean == 0.0 {
        1.0
    } else {
        max / mean
    }
}

impl<N: Ord + Clone + Debug> Ring<N> {
    /// The share of the key space each node owns, and from it the imbalance.
    pub fn ownership(&self) -> Ownership<N> {
        let mut primary = vec![0.0; self.nodes.len()];
        let mut replica = vec![0.0; self.nodes.len()];
        for r in 0..self.range_count() {
            let Some(range) = self.range(r) else { continue };
            let share = range.fraction();
            primary[self.owners[r] as usize] += share;
            if let Some(list) = self.preference_list_for_range(r) {
                for node in list.primaries() {
                    if let Some(idx) = self.index_of(node) {
                        replica[idx] += share;
                    }
                }
            }
        }
        let ids = self.nodes.iter().map(|n| n.id.clone());
        Ownership {
            primary: ids.clone().zip(primary).collect(),
            replica: ids.zip(replica).collect(),
        }
    }

    /// The bytes of membership information a node must hold and gossip for this ring: 16 bytes per
    /// token position plus 4 per token owner for strategy 1; 4 per partition owner for strategy 3
    /// (its positions follow from Q). Node identities themselves are not counted.
    pub fn membership_bytes(&self) -> usize {
        match self.config.strategy {
            crate::Strategy::RandomTokens { .. } => self.positions.len() * (16 + 4),
            crate::Strategy::EqualPartitions { .. } => self.owners.len() * 4,
        }
    }
}
