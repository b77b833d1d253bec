//! The ring: nodes, their tokens, and the lookups built on them.

use std::fmt::Debug;

use crate::config::{MAX_PARTITIONS, MAX_REPLICAS, MAX_TOKENS_PER_NODE};
use crate::partition;
use crate::plan::{self, Change};
use crate::preference::PreferenceList;
use crate::rng::TokenRng;
use crate::{HashFunction, KeyRange, NodeSpec, Position, RingConfig, RingError, Strategy};

/// A consistent-hashing ring over nodes of type `N`.
///
/// The ring is a sorted list of tokens (virtual nodes), each owned by one physical node. A key
/// belongs to the first token at or clockwise after its position; its preference list walks on
/// from there, skipping tokens of nodes already taken. The arc that ends at a token is called a
/// *range* here: with strategy 3 the ranges are the Q fixed partitions.
///
/// A ring is a plain value: membership changes ([`Ring::join`], [`Ring::leave`],
/// [`Ring::set_weight`]) return a new ring together with the [`TransferPlan`](crate::TransferPlan)
/// that moves data from the old owners to the new ones. The same sequence of inputs gives the same
/// ring on any machine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        try_from = "crate::serde_repr::RingRepr<N>",
        into = "crate::serde_repr::RingRepr<N>",
        bound(
            serialize = "N: serde::Serialize + Clone",
            deserialize = "N: serde::Deserialize<'de> + Ord + Clone + Debug"
        )
    )
)]
pub struct Ring<N> {
    pub(crate) config: RingConfig,
    /// Members, sorted by id; tokens refer to them by index.
    pub(crate) nodes: Vec<NodeSpec<N>>,
    /// Token positions, sorted ascending.
    pub(crate) positions: Vec<u128>,
    /// Owner (index into `nodes`) of each token.
    pub(crate) owners: Vec<u32>,
    /// Generator of strategy 1's tokens; advanced by every token drawn.
    pub(crate) rng: TokenRng,
    // Derived from the above by `reindex`.
    /// For each token, the distance back to the previous token of the same owner (1..=T).
    pub(crate) prev_dist: Vec<u32>,
    /// Zone index of each node.
    pub(crate) zone_of: Vec<u32>,
    /// Number of distinct zones (nodes without a zone share one).
    pub(crate) zone_count: usize,
    /// Strategy 1 lookup index: for each of `2^bucket_bits` equal slices of the ring, the index of
    /// its first token, so that a lookup searches a handful of tokens instead of all of them.
    pub(crate) buckets: Vec<u32>,
    /// Number of leading position bits that select a bucket.
    pub(crate) bucket_bits: u32,
}

impl<N: Ord + Clone + Debug> Ring<N> {
    /// Builds a ring from its configuration and initial members, in the given order.
    ///
    /// Strategy 1 draws each node's tokens in the given order. Strategy 3 assigns all partitions at
    /// once (the order of `nodes` does not matter): weighted round-robin, then swaps until no node
    /// repeats within N consecutive partitions where that can be avoided.
    pub fn new(
        config: RingConfig,
        nodes: impl IntoIterator<Item = NodeSpec<N>>,
    ) -> Result<Self, RingError> {
        validate_config(&config)?;
        let mut specs = nodes.into_iter();
        let first = specs.next().ok_or(RingError::NoNodes)?;
        check_weight(&config, &first)?;
        let seed = config.strategy.token_seed();
        let mut ring = Ring {
            config,
            nodes: vec![first],
            positions: Vec::new(),
            owners: Vec::new(),
            rng: TokenRng::new(seed),
            prev_dist: Vec::new(),
            zone_of: Vec::new(),
            zone_count: 0,
            buckets: Vec::new(),
            bucket_bits: 0,
        };
        match config.strategy {
            Strategy::RandomTokens { .. } => {
                let count = ring.token_count_for(0);
                ring.add_random_tokens(0, count);
                ring.reindex();
                for spec in specs {
                    ring = ring.join(spec)?.ring;
                }
            }
            Strategy::EqualPartitions { partitions } => {
                for spec in specs {
                    check_weight(&ring.config, &spec)?;
                    match ring.nodes.binary_search_by(|n| n.id.cmp(&spec.id)) {
                        Ok(_) => {
                            return Err(RingError::DuplicateNode {
                                node: format!("{:?}", spec.id),
                            })
                        }
                        Err(at) => ring.nodes.insert(at, spec),
                    }
                }
                ring.check_partition_capacity(partitions)?;
                ring.positions = (0..partitions)
                    .map(|p| partition::partition_end(p, partitions))
                    .collect();
                ring.owners = vec![0; partitions as usize];
                partition::assign_all(&mut ring);
                ring.reindex();
            }
        }
        Ok(ring)
    }

    /// The configuration this ring was built with.
    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    /// The replication factor N.
    pub fn replicas(&self) -> usize {
        self.config.replicas
    }

    /// The members, sorted by id.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &NodeSpec<N>> + '_ {
        self.nodes.iter()
    }

    /// The number of members.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: &N) -> bool {
        self.index_of(id).is_some()
    }

    /// The tokens (virtual nodes) in ring order: the position that ends each range and its owner.
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = (Position, &N)> + '_ {
        self.positions
            .iter()
            .zip(&self.owners)
            .map(|(&p, &o)| (Position(p), &self.nodes[o as usize].id))
    }

    /// The position of a key, with the ring's hash function.
    pub fn position(&self, key: &[u8]) -> Position {
        self.config.hash.position(key)
    }

    /// The hash function of this ring.
    pub fn hash_function(&self) -> HashFunction {
        self.config.hash
    }

    /// The preference list of `key`: distinct physical nodes in ring order, the first N marked
    /// [`Role::Primary`](crate::Role::Primary), the rest [`Role::Fallback`](crate::Role::Fallback).
    pub fn preference_list(&self, key: &[u8]) -> PreferenceList<'_, N> {
        self.preference_list_at(self.position(key))
    }

    /// The preference list of a precomputed position. Allocates nothing.
    pub fn preference_list_at(&self, pos: Position) -> PreferenceList<'_, N> {
        PreferenceList::new(self, self.range_index(pos))
    }

    /// The preference list of the range with index `range` (see [`Ring::range_index`]).
    ///
    /// Returns `None` when `range >= self.range_count()`.
    pub fn preference_list_for_range(&self, range: usize) -> Option<PreferenceList<'_, N>> {
        (range < self.positions.len()).then(|| PreferenceList::new(self, range))
    }

    /// The number of ranges (tokens). With strategy 3 this is Q and never changes.
    pub fn range_count(&self) -> usize {
        self.positions.len()
    }

    /// The index of the range that holds `pos`: the first token at or after it, wrapping around.
    /// With strategy 3 it is the partition number, computed without a search.
    pub fn range_index(&self, pos: Position) -> usize {
        match self.config.strategy {
            Strategy::EqualPartitions { partitions } => partition::partition_of(pos, partitions),
            Strategy::RandomTokens { .. } => {
                let b = pos.0.checked_shr(128 - self.bucket_bits).unwrap_or(0) as usize;
                let lo = self.buckets.get(b).map_or(0, |&i| i as usize);
                let hi = self
                    .buckets
                    .get(b + 1)
                    .map_or(self.positions.len(), |&i| i as usize);
                let idx = lo + self.positions[lo..hi].partition_point(|&t| t < pos.0);
                if idx == self.positions.len() {
                    0
                } else {
                    idx
                }
            }
        }
    }

    /// The arc covered by range `index`, or `None` if there is no such range.
    pub fn range(&self, index: usize) -> Option<KeyRange> {
        let end = *self.positions.get(index)?;
        let prev = if index == 0 {
            self.positions.len() - 1
        } else {
            index - 1
        };
        Some(KeyRange::new(Position(self.positions[prev]), Position(end)))
    }

    /// Adds a node. Returns the new ring and the transfers that give the node its ranges.
    ///
    /// Strategy 1 draws the node's tokens (T times its weight) from the ring's generator. Strategy 3
    /// moves partitions to the new node, one at a time, from the node furthest above its fair share,
    /// choosing partitions that keep any N consecutive partitions on distinct nodes: about Q/S
    /// partitions move, all to the new node.
    pub fn join(&self, spec: NodeSpec<N>) -> Result<Change<N>, RingError> {
        check_weight(&self.config, &spec)?;
        let idx = match self.nodes.binary_search_by(|n| n.id.cmp(&spec.id)) {
            Ok(_) => {
                return Err(RingError::DuplicateNode {
                    node: format!("{:?}", spec.id),
                })
            }
            Err(idx) => idx,
        };
        let mut next = self.clone();
        next.nodes.insert(idx, spec);
        for o in &mut next.owners {
            if *o as usize >= idx {
                *o += 1;
            }
        }
        match self.config.strategy {
            Strategy::RandomTokens { .. } => {
                let count = next.token_count_for(idx);
                next.add_random_tokens(idx, count);
            }
            Strategy::EqualPartitions { partitions } => {
                next.check_partition_capacity(partitions)?;
                next.reindex();
                partition::take(&mut next, idx);
                partition::balance(&mut next);
            }
        }
        next.reindex();
        Ok(plan::change(self, next))
    }

    /// Removes a node. Returns the new ring and the transfers that hand the node's data to the
    /// nodes that take over its ranges.
    ///
    /// Strategy 3 gives each of the leaver's partitions to the node furthest below its fair share
    /// that keeps the N-distinct rule, so only the leaver's partitions move, unless a node would
    /// then be more than one partition below its share (see the `partition` module).
    pub fn leave(&self, id: &N) -> Result<Change<N>, RingError> {
        let idx = self.index_of(id).ok_or_else(|| RingError::UnknownNode {
            node: format!("{id:?}"),
        })?;
        if self.nodes.len() == 1 {
            return Err(RingError::NoNodes);
        }
        let mut next = self.clone();
        match self.config.strategy {
            Strategy::RandomTokens { .. } => {
                next.retain_tokens(|owner, _| owner as usize != idx);
            }
            Strategy::EqualPartitions { .. } => {
                partition::give(&mut next, idx, true);
            }
        }
        next.nodes.remove(idx);
        for o in &mut next.owners {
            if *o as usize > idx {
                *o -= 1;
            }
        }
        next.reindex();
        if let Strategy::EqualPartitions { .. } = self.config.strategy {
            // After the reindex: the balance reads the zones by the new node indices.
            partition::balance(&mut next);
            next.reindex();
        }
        Ok(plan::change(self, next))
    }

    /// Changes a node's weight. Returns the new ring and the transfers.
    pub fn set_weight(&self, id: &N, weight: u32) -> Result<Change<N>, RingError> {
        let idx = self.index_of(id).ok_or_else(|| RingError::UnknownNode {
            node: format!("{id:?}"),
        })?;
        check_weight(&self.config, &NodeSpec::new(id.clone()).with_weight(weight))?;
        let mut next = self.clone();
        next.nodes[idx].weight = weight;
        match self.config.strategy {
            Strategy::RandomTokens { .. } => {
                let want = next.token_count_for(idx);
                let have = next.owners.iter().filter(|&&o| o as usize == idx).count();
                if want > have {
                    next.add_random_tokens(idx, want - have);
                } else {
                    // Drop the node's lowest tokens: deterministic, and any choice is as good.
                    let mut surplus = have - want;
                    next.retain_tokens(|owner, _| {
                        if owner as usize == idx && surplus > 0 {
                            surplus -= 1;
                            false
                        } else {
                            true
                        }
                    });
                }
            }
            Strategy::EqualPartitions { .. } => {
                let have = next.owners.iter().filter(|&&o| o as usize == idx).count();
                let before = self.nodes[idx].weight;
                if weight > before || have == 0 {
                    partition::take(&mut next, idx);
                } else if weight < before {
                    partition::give(&mut next, idx, false);
                }
                partition::balance(&mut next);
            }
        }
        next.reindex();
        Ok(plan::change(self, next))
    }

    /// The transfers that take the data from this ring's replicas to those of `next` (for two
    /// rings with the same hash function: every arc whose N primaries differ).
    pub fn transfer_plan(&self, next: &Ring<N>) -> crate::TransferPlan<N> {
        plan::change(self, next.clone()).plan
    }

    pub(crate) fn index_of(&self, id: &N) -> Option<usize> {
        self.nodes.binary_search_by(|n| n.id.cmp(id)).ok()
    }

    fn token_count_for(&self, idx: usize) -> usize {
        let per_node = match self.config.strategy {
            Strategy::RandomTokens {
                tokens_per_node, ..
            } => tokens_per_node as usize,
            Strategy::EqualPartitions { .. } => 0,
        };
        per_node * self.nodes[idx].weight as usize
    }

    fn check_partition_capacity(&self, partitions: u32) -> Result<(), RingError> {
        if self.nodes.len() > partitions as usize {
            return Err(RingError::TooManyNodes {
                nodes: self.nodes.len(),
                partitions,
            });
        }
        Ok(())
    }

    fn add_random_tokens(&mut self, owner: usize, count: usize) {
        let mut added = 0;
        while added < count {
            let pos = self.rng.next_u128();
            match self.positions.binary_search(&pos) {
                Ok(_) => continue, // a collision in 2^128: draw again
                Err(at) => {
                    self.positions.insert(at, pos);
                    self.owners.insert(at, owner as u32);
                    added += 1;
                }
            }
        }
    }

    fn retain_tokens(&mut self, mut keep: impl FnMut(u32, u128) -> bool) {
        let mut positions = Vec::with_capacity(self.positions.len());
        let mut owners = Vec::with_capacity(self.owners.len());
        for (&p, &o) in self.positions.iter().zip(&self.owners) {
            if keep(o, p) {
                positions.push(p);
                owners.push(o);
            }
        }
        self.positions = positions;
        self.owners = owners;
    }

    /// Recomputes the derived lookup tables after the tokens or nodes changed.
    pub(crate) fn reindex(&mut self) {
        let mut zones: Vec<Option<&str>> = self.nodes.iter().map(|n| n.zone.as_deref()).collect();
        zones.sort_unstable();
        zones.dedup();
        self.zone_count = zones.len();
        self.zone_of = self
            .nodes
            .iter()
            .map(|n| zones.binary_search(&n.zone.as_deref()).unwrap_or(0) as u32)
            .collect();

        let t = self.owners.len();
        // About two tokens per bucket; strategy 3 finds its partition by a shift instead.
        self.bucket_bits = match self.config.strategy {
            Strategy::RandomTokens { .. } => (usize::BITS - t.leading_zeros()).min(24),
            Strategy::EqualPartitions { .. } => 0,
        };
        self.buckets.clear();
        if self.bucket_bits > 0 {
            let shift = 128 - self.bucket_bits;
            let mut j = 0usize;
            for b in 0..(1u128 << self.bucket_bits) {
                while j < t && (self.positions[j] >> shift) < b {
                    j += 1;
                }
                self.buckets.push(j as u32);
            }
        }
        self.prev_dist = vec![t as u32; t];
        let mut last: Vec<Option<usize>> = vec![None; self.nodes.len()];
        for j in 0..2 * t {
            let o = self.owners[j % t] as usize;
            if let Some(prev) = last[o] {
                if j >= t {
                    self.prev_dist[j - t] = (j - prev) as u32;
                }
            }
            last[o] = Some(j);
        }
    }
}

pub(crate) fn validate_config(config: &RingConfig) -> Result<(), RingError> {
    if config.replicas == 0 {
        return Err(RingError::ZeroReplicas);
    }
    if config.replicas > MAX_REPLICAS {
        return Err(RingError::TooManyReplicas {
            requested: config.replicas,
            max: MAX_REPLICAS,
        });
    }
    match config.strategy {
        Strategy::RandomTokens {
            tokens_per_node: 0, ..
        } => Err(RingError::ZeroTokens),
        Strategy::RandomTokens {
            tokens_per_node, ..
        } if u64::from(tokens_per_node) > MAX_TOKENS_PER_NODE => Err(RingError::TooManyTokens {
            node: "*".into(),
            tokens: u64::from(tokens_per_node),
            max: MAX_TOKENS_PER_NODE,
        }),
        Strategy::EqualPartitions { partitions } if !partitions.is_power_of_two() => {
            Err(RingError::PartitionsNotPowerOfTwo(partitions))
        }
        Strategy::EqualPartitions { partitions } if partitions > MAX_PARTITIONS => {
            Err(RingError::TooManyPartitions {
                requested: partitions,
                max: MAX_PARTITIONS,
            })
        }
        _ => Ok(()),
    }
}

fn check_weight<N: Debug>(config: &RingConfig, spec: &NodeSpec<N>) -> Result<(), RingError> {
    if spec.weight == 0 {
        return Err(RingError::ZeroWeight {
            node: format!("{:?}", spec.id),
        });
    }
    if let Strategy::RandomTokens {
        tokens_per_node, ..
    } = config.strategy
    {
        let tokens = u64::from(tokens_per_node) * u64::from(spec.weight);
        if tokens > MAX_TOKENS_PER_NODE {
            return Err(RingError::TooManyTokens {
                node: format!("{:?}", spec.id),
                tokens,
                max: MAX_TOKENS_PER_NODE,
            });
        }
    }
    Ok(())
}
