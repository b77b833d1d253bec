//! [`Holdings`]: what a node knows it holds, without reading its store. Per partition, the keys
//! stored with the digest of their versions and the Merkle tree over them (what anti-entropy
//! compares, what transfers stream, what a leaving node must hand over); and the versions it
//! keeps as hints for other nodes, merged by key (a fallback answers reads with them).

use std::collections::{BTreeMap, BTreeSet};

use dynamo_handoff::HintRecord;
use dynamo_merkle::{Tree, TreeConfig};

use super::digest::decode_siblings;
use super::key_index::KeyIndex;
use crate::store::StoreError;
use crate::types::{Key, NodeId, Sibs};

/// The tree shape of every partition: 16 x 16 = 256 segments, small enough for Q trees per node.
fn tree_config() -> TreeConfig {
    TreeConfig::new(16, 2).expect("fan-out 16, depth 2 is a valid shape")
}

/// What a node holds. See the [module docs](self).
pub(crate) struct Holdings {
    /// Per partition, the Merkle tree over its keys' digests.
    trees: Vec<Tree>,
    /// Per partition, the keys stored with their digests.
    index: Vec<KeyIndex>,
    /// The versions held as hints, by key (merged), with how many hints hold the key.
    hinted: BTreeMap<Key, (usize, Sibs)>,
    /// The key of each hint in `hinted`, by hint id.
    hint_keys: BTreeMap<u64, Key>,
    /// Counts the times a partition's keys became empty or stopped being empty.
    occupancy_changes: u64,
    /// Keys whose record the store lost while this node held them (a damaged record, read as
    /// missing): reads of them are refused, not answered "not found", until a peer's copy is
    /// here again (see [`Holdings::vouched`]), with the other replicas whose copies anti-entropy
    /// found here since. A client's write does not end it: it carries one version, not what the
    /// lost record held.
    /// With each, the count of losses when it was lost (see [`Holdings::losses`]).
    lost: BTreeMap<Key, (u64, BTreeSet<NodeId>)>,
    /// Losses counted so far.
    losses: u64,
    /// Whether `lost` changed since [`Holdings::lost_changes`] last took it.
    lost_changed: bool,
}

/// The store meta name of the keys a node lost (see `Holdings::lost`), so that a restart, which
/// no longer finds their records, does not answer "not found" for them either.
pub(crate) const LOST_KEY: &str = "lost";

/// `lost` as the store meta [`LOST_KEY`] holds it (a msgpack list of keys).
pub(crate) fn encode_lost(lost: &BTreeSet<Key>) -> Vec<u8> {
    rmp_serde::to_vec(lost).unwrap_or_default()
}

impl Holdings {
    /// Nothing held, over `partitions` partitions.
    pub(crate) fn new(partitions: usize) -> Self {
        Holdings {
            trees: (0..partitions).map(|_| Tree::new(tree_config())).collect(),
            index: vec![KeyIndex::new(); partitions],
            hinted: BTreeMap::new(),
            hint_keys: BTreeMap::new(),
            occupancy_changes: 0,
            lost: BTreeMap::new(),
            losses: 0,
            lost_changed: false,
        }
    }

    /// The keys lost as a previous incarnation persisted them.
    pub(crate) fn restore_lost(&mut self, lost: BTreeSet<Key>) {
        self.losses = 1;
        self.lost = lost
            .into_iter()
            .map(|k| (k, (1, BTreeSet::new())))
            .collect();
    }

    /// The lost keys encoded for [`LOST_KEY`], if they changed since last taken.
    pub(crate) fn lost_changes(&mut self) -> Option<Vec<u8>> {
        if !self.lost_changed {
            return None;
        }
        self.lost_changed = false;
        let keys: BTreeSet<Key> = self.lost.keys().cloned().collect();
        Some(encode_lost(&keys))
    }

    /// The store lost `key`'s record (see `lost`): whatever peers vouched for before counts no
    /// more.
    pub(crate) fn lost(&mut self, key: &[u8]) {
        self.losses += 1;
        let entry = (self.losses, BTreeSet::new());
        self.lost_changed |= self.lost.insert(key.to_vec(), entry).is_none();
    }

    /// How many times a key was lost so far: a key lost since this count was taken is not among
    /// [`Holdings::lost_before`] it.
    pub(crate) fn losses(&self) -> u64 {
        self.losses
    }

    /// The lost keys that were lost when the count of losses was `losses`.
    pub(crate) fn lost_before(&self, losses: u64) -> impl Iterator<Item = &Key> {
        self.lost
            .iter()
            .filter(move |(_, (at, _))| *at <= losses)
            .map(|(k, _)| k)
    }

    /// `key` is no longer counted as lost: a copy of what the replicas hold is here (read
    /// repair's merge of their answers, a former owner's transfer), or the key left this node.
    pub(crate) fn found(&mut self, key: &[u8]) {
        if !self.lost.is_empty() {
            self.lost_changed |= self.lost.remove(key).is_some();
        }
    }

    /// Anti-entropy found `peer`'s copy of lost `key` here (merged from its exchange, or its
    /// tree equal to this node's): once `needed` distinct replicas vouched, the key is no longer
    /// lost. `peer` must be one of the key's other replicas (the caller checks).
    pub(crate) fn vouched(&mut self, key: &[u8], peer: NodeId, needed: usize) {
        let Some((_, peers)) = self.lost.get_mut(key) else {
            return;
        };
        peers.insert(peer);
        if peers.len() >= needed {
            self.lost.remove(key);
            self.lost_changed = true;
        }
    }

    /// The keys the store lost that no peer's copy replaced since.
    pub(crate) fn lost_keys(&self) -> impl Iterator<Item = &Key> {
        self.lost.keys()
    }

    /// Whether the store lost `key`'s record and no peer's copy replaced it since.
    pub(crate) fn is_lost(&self, key: &[u8]) -> bool {
        !self.lost.is_empty() && self.lost.contains_key(key)
    }

    /// How many partitions.
    pub(crate) fn partitions(&self) -> usize {
        self.index.len()
    }

    /// Partition `p`'s keys with their digests (empty past the last partition).
    pub(crate) fn keys(&self, p: usize) -> &KeyIndex {
        static NONE: std::sync::LazyLock<KeyIndex> = std::sync::LazyLock::new(KeyIndex::new);
        self.index.get(p).unwrap_or(&NONE)
    }

    /// Partition `p`'s Merkle tree.
    pub(crate) fn tree(&self, p: usize) -> Option<&Tree> {
        self.trees.get(p)
    }

    /// Keys stored, over every partition.
    pub(crate) fn len(&self) -> usize {
        self.index.iter().map(KeyIndex::len).sum()
    }

    /// How many times a partition's keys became empty or stopped being empty: while it stays
    /// the same, so does the set of partitions holding keys.
    pub(crate) fn occupancy_changes(&self) -> u64 {
        self.occupancy_changes
    }

    /// `key` of partition `p` is stored with versions of `digest`.
    pub(crate) fn stored(&mut self, p: usize, key: &[u8], digest: [u8; 32]) {
        match self.index[p].insert(key, digest) {
            Some(old) => self.trees[p].update(key, &old, &digest),
            None => {
                if self.index[p].len() == 1 {
                    self.occupancy_changes += 1;
                }
                self.trees[p].insert(key, &digest)
            }
        }
    }

    /// `key` of partition `p` is gone from the store; returns whether it was held.
    pub(crate) fn removed(&mut self, p: usize, key: &[u8]) -> bool {
        match self.index[p].remove(key) {
            Some(digest) => {
                self.trees[p].remove(key, &digest);
                if self.index[p].is_empty() {
                    self.occupancy_changes += 1;
                }
                true
            }
            None => false,
        }
    }

    /// The versions of `key` held as hints.
    pub(crate) fn hinted(&self, key: &[u8]) -> Option<&Sibs> {
        self.hinted.get(key).map(|(_, s)| s)
    }

    /// Adds a hint's versions.
    pub(crate) fn hint_kept(
        &mut self,
        record: &HintRecord<NodeId, Vec<u8>>,
    ) -> Result<(), StoreError> {
        let siblings = decode_siblings(&record.hint.payload)
            .ok_or_else(|| StoreError::Corrupt(format!("hint {}: bad payload", record.id.0)))?;
        let key = record.hint.key.clone();
        if self.hint_keys.insert(record.id.0, key.clone()).is_some() {
            return Ok(());
        }
        let entry = self.hinted.entry(key).or_default();
        entry.0 += 1;
        entry.1.merge(&siblings);
        Ok(())
    }

    /// A hint was delivered or dropped; a key leaves the hinted versions with its last hint.
    pub(crate) fn hint_gone(&mut self, id: u64) {
        let Some(key) = self.hint_keys.remove(&id) else {
            return;
        };
        if let Some(entry) = self.hinted.get_mut(&key) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                self.hinted.remove(&key);
            }
        }
    }

    /// What this node holds of `key`: its stored versions `stored` merged with the versions it
    /// keeps as hints for other nodes, so that a fallback's answer counts what it acknowledged.
    pub(crate) fn held(&self, key: &[u8], stored: Option<Sibs>) -> Option<Sibs> {
        match (stored, self.hinted(key)) {
            (stored, None) => stored,
            (None, Some(h)) => Some(h.clone()),
            (Some(mut s), Some(h)) => {
                s.merge(h);
                Some(s)
            }
        }
    }
}
