//! The incremental Merkle tree of one key range.
//!
//! # Why XOR of strong hashes
//!
//! A segment's hash is the XOR of `SHA-256(key, digest)` over its entries, and an inner node's hash
//! is the XOR of its children (so also the XOR of every entry below it). XOR is commutative,
//! associative and its own inverse, which gives:
//!
//! - O(depth) updates without the keys: inserting and removing an entry both XOR its hash into the
//!   nodes on its path, so the tree never needs to re-read a segment.
//! - Order independence: a tree built from a stream in any order, or by any sequence of
//!   inserts and removes, equals the tree built from the final set.
//! - Mergeable trees: the node-wise XOR of two trees of the same shape over disjoint key sets (say,
//!   two partitions) is the tree of the union, see [`Tree::merge`].
//!
//! Soundness: if entry hashes behave as independent random 256-bit values, two different sets of
//! entries in a node collide only if a non-empty set of entry hashes XORs to zero, which happens
//! with probability 2^-256 per comparison: an honest difference is never masked in practice.
//!
//! Limits, to keep in mind:
//!
//! - It is a set hash only under the caller's discipline: the tree does not keep keys, so inserting
//!   the same `(key, digest)` twice cancels it out, and removing a pair that was never inserted
//!   adds it. Callers insert each key once with its current digest and use [`Tree::update`] to
//!   change it.
//! - XOR is linear, so it is not collision resistant against an adversary who chooses many
//!   entries: with a few hundred chosen keys, Gaussian elimination over GF(2) finds a subset with
//!   any target XOR. Keys here come from clients of a trusted cluster and the worst outcome is a
//!   difference missed by one anti-entropy round, so this is accepted; a deployment that must resist
//!   crafted keys would use a lattice hash (LtHash) or a hash of sorted segment contents instead.

use crate::config::{SegmentId, TreeConfig};
use crate::error::ShapeMismatch;
use crate::hash::Hash;

/// A Merkle tree over the key-hash space of one key range, with a fixed shape.
///
/// Level 0 is the root; level `depth` holds the segments. Each node stores the XOR of the entry
/// hashes below it (see the [module docs](crate::tree) for why that is sound and where it stops).
///
/// ```
/// use dynamo_merkle::{Tree, TreeConfig};
///
/// let config = TreeConfig::new(16, 2)?;
/// let mut tree = Tree::new(config);
/// tree.insert(b"apple", b"v1");
/// tree.insert(b"pear", b"v1");
/// tree.update(b"apple", b"v1", b"v2");
/// let fresh = Tree::from_entries(config, [("pear", "v1"), ("apple", "v2")]);
/// assert_eq!(tree.root(), fresh.root());
/// # Ok::<(), dynamo_merkle::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Tree {
    config: TreeConfig,
    /// `levels[l]` holds the `fanout^l` node hashes of level `l`.
    levels: Vec<Vec<Hash>>,
}

impl core::fmt::Debug for Tree {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tree")
            .field("config", &self.config)
            .field("root", &self.root())
            .finish()
    }
}

impl Tree {
    /// An empty tree of the given shape: every node hash is [`Hash::ZERO`].
    pub fn new(config: TreeConfig) -> Self {
        let levels = (0..=config.depth())
            .map(|level| vec![Hash::ZERO; config.nodes_at(level) as usize])
            .collect();
        Tree { config, levels }
    }

    /// Builds a tree from a stream of `(key, digest)` entries, sorted or not, each key once.
    ///
    /// Equal to inserting the entries one by one, but sums each level once instead of touching
    /// every ancestor per entry.
    pub fn from_entries<I, K, D>(config: TreeConfig, entries: I) -> Self
    where
        I: IntoIterator<Item = (K, D)>,
        K: AsRef<[u8]>,
        D: AsRef<[u8]>,
    {
        let mut tree = Tree::new(config);
        let depth = usize::from(config.depth());
        if let Some(leaves) = tree.levels.get_mut(depth) {
            for (key, digest) in entries {
                let (segment, hash) = Self::locate(&config, key.as_ref(), digest.as_ref());
                if let Some(leaf) = leaves.get_mut(segment as usize) {
                    *leaf ^= hash;
                }
            }
        }
        tree.recompute_inner();
        tree
    }

    /// The tree's shape.
    pub fn config(&self) -> TreeConfig {
        self.config
    }

    /// The root hash: equal roots mean equal contents (up to the limits in the module docs).
    pub fn root(&self) -> Hash {
        self.node(0, 0).unwrap_or(Hash::ZERO)
    }

    /// The hash of node `index` at `level`, if both are in range.
    pub fn node(&self, level: u8, index: u32) -> Option<Hash> {
        self.levels
            .get(usize::from(level))?
            .get(index as usize)
            .copied()
    }

    /// The hashes of the children of node `index` at `level`, if that node is an inner node.
    pub fn children(&self, level: u8, index: u32) -> Option<&[Hash]> {
        if level >= self.config.depth() {
            return None;
        }
        let fanout = self.config.fanout() as usize;
        let start = (index as usize).checked_mul(fanout)?;
        self.levels
            .get(usize::from(level) + 1)?
            .get(start..start.checked_add(fanout)?)
    }

    /// The hash of a segment (a leaf).
    pub fn segment_hash(&self, segment: SegmentId) -> Option<Hash> {
        self.node(self.config.depth(), segment)
    }

    /// The segment `key` belongs to (same as [`TreeConfig::segment_of`]).
    pub fn segment_of(&self, key: &[u8]) -> SegmentId {
        self.config.segment_of(key)
    }

    /// Adds the entry `(key, digest)`: O(depth), one key hash and one entry hash.
    ///
    /// Inserting an entry that is already present removes it (see the module docs).
    pub fn insert(&mut self, key: &[u8], digest: &[u8]) {
        let (segment, hash) = Self::locate(&self.config, key, digest);
        self.toggle(segment, hash);
    }

    /// Removes the entry `(key, digest)`, which must have been inserted with this digest.
    pub fn remove(&mut self, key: &[u8], digest: &[u8]) {
        self.insert(key, digest);
    }

    /// Replaces the digest of `key`: `old` must be the digest it was inserted with.
    pub fn update(&mut self, key: &[u8], old: &[u8], new: &[u8]) {
        let segment = self.config.segment_of(key);
        let hash = Hash::of_entry(key, old) ^ Hash::of_entry(key, new);
        self.toggle(segment, hash);
    }

    /// XORs an entry hash (or a XOR of entry hashes of one segment) into `segment` and its
    /// ancestors. The building block of insert and remove, for owners that cache entry hashes.
    pub fn toggle(&mut self, segment: SegmentId, hash: Hash) {
        let bits = self.config.fanout_bits();
        let mut index = segment as usize;
        for level in self.levels.iter_mut().rev() {
            if let Some(node) = level.get_mut(index) {
                *node ^= hash;
            }
            index >>= bits;
        }
    }

    /// Merges `other` into `self` node by node. For trees over disjoint key sets (for example two
    /// partitions) the result is the tree of the union; a pair present in both cancels out.
    pub fn merge(&mut self, other: &Tree) -> Result<(), ShapeMismatch> {
        self.check_shape(other)?;
        for (mine, theirs) in self.levels.iter_mut().zip(&other.levels) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a ^= *b;
            }
        }
        Ok(())
    }

    /// The segments whose hashes differ between two trees of the same shape, in order.
    ///
    /// A local comparison (both trees in memory), mostly for tests; replicas use a
    /// [`crate::SyncSession`].
    pub fn differing_segments(&self, other: &Tree) -> Result<Vec<SegmentId>, ShapeMismatch> {
        self.check_shape(other)?;
        let depth = usize::from(self.config.depth());
        let (Some(mine), Some(theirs)) = (self.levels.get(depth), other.levels.get(depth)) else {
            return Ok(Vec::new());
        };
        Ok((0..)
            .zip(mine.iter().zip(theirs))
            .filter(|(_, (a, b))| a != b)
            .map(|(segment, _)| segment)
            .collect())
    }

    /// Empties the tree.
    pub fn clear(&mut self) {
        for level in &mut self.levels {
            level.fill(Hash::ZERO);
        }
    }

    fn check_shape(&self, other: &Tree) -> Result<(), ShapeMismatch> {
        if self.config == other.config {
            Ok(())
        } else {
            Err(ShapeMismatch {
                local: self.config,
                remote: other.config,
            })
        }
    }

    fn locate(config: &TreeConfig, key: &[u8], digest: &[u8]) -> (SegmentId, Hash) {
        (config.segment_of(key), Hash::of_entry(key, digest))
    }

    /// Recomputes every inner level from the segments.
    fn recompute_inner(&mut self) {
        let fanout = self.config.fanout() as usize;
        for level in (1..self.levels.len()).rev() {
            let (upper, lower) = self.levels.split_at_mut(level);
            let (Some(parents), Some(children)) = (upper.last_mut(), lower.first()) else {
                continue;
            };
            for (parent, group) in parents.iter_mut().zip(children.chunks(fanout)) {
                *parent = group.iter().fold(Hash::ZERO, |acc, h| acc ^ *h);
            }
        }
    }
}

impl<K: AsRef<[u8]>, D: AsRef<[u8]>> Extend<(K, D)> for Tree {
    fn extend<I: IntoIterator<Item = (K, D)>>(&mut self, entries: I) {
        for (key, digest) in entries {
            self.insert(key.as_ref(), digest.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> TreeConfig {
        TreeConfig::new(4, 3).unwrap_or_default()
    }

    #[test]
    fn empty_tree_has_zero_root() {
        assert!(Tree::new(small()).root().is_zero());
    }

    #[test]
    fn insert_then_remove_restores() {
        let mut tree = Tree::new(small());
        tree.insert(b"a", b"1");
        assert!(!tree.root().is_zero());
        tree.remove(b"a", b"1");
        assert_eq!(tree, Tree::new(small()));
    }

    #[test]
    fn inner_nodes_are_xor_of_children() {
        let tree = Tree::from_entries(small(), (0..200u32).map(|i| (i.to_be_bytes(), [1u8])));
        for level in 0..3u8 {
            for index in 0..small().nodes_at(level) {
                let children = tree.children(level, index).unwrap_or(&[]);
                assert_eq!(children.len(), 4);
                let xor = children.iter().fold(Hash::ZERO, |a, h| a ^ *h);
                assert_eq!(tree.node(level, index), Some(xor));
            }
        }
        assert_eq!(tree.children(3, 0), None);
    }

    #[test]
    fn merge_of_disjoint_trees_is_union() {
        let left = Tree::from_entries(small(), [(b"a", b"1"), (b"b", b"2")]);
        let right = Tree::from_entries(small(), [(b"c", b"3")]);
        let mut merged = left.clone();
        assert!(merged.merge(&right).is_ok());
        let union = Tree::from_entries(small(), [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]);
        assert_eq!(merged, union);
        let other_shape = Tree::new(TreeConfig::default());
        assert!(merged.merge(&other_shape).is_err());
    }

    #[test]
    fn differing_segments_names_the_changed_leaf() {
        let a = Tree::from_entries(small(), [(b"a", b"1"), (b"b", b"2")]);
        let mut b = a.clone();
        b.update(b"a", b"1", b"9");
        assert_eq!(a.differing_segments(&b), Ok(vec![small().segment_of(b"a")]));
    }
}
