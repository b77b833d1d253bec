//! [`KeyIndex`]: one partition's stored keys with the digests of their versions.
//!
//! Every replica write looks its key up here (for the digest its Merkle leaf replaces) and so does
//! every read that finds nothing (a key indexed but gone is a damaged record), so the index is a
//! hash map: a key costs one hash and a probe. Ordered by key, as a `BTreeMap`, every step of a
//! search would follow a key's pointer and compare its bytes from the start (the prefix keys
//! usually share included): under writes that was 8 % of a node's main thread. Only a transfer
//! needs the keys in order, and it asks for them once per pass ([`KeyIndex::sorted_keys`]).
//! The map hashes with foldhash, seeded at random per map: several times faster than std's
//! SipHash on short keys (a growing map rehashes every key it holds), and still without a fixed
//! seed a client could choose colliding keys against.

use foldhash::{HashMap, HashMapExt};

use crate::types::Key;

/// The digest of a key's versions.
pub(crate) type Digest = [u8; 32];

/// One partition's keys with their digests. See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct KeyIndex {
    map: HashMap<Key, Digest>,
}

impl KeyIndex {
    /// An empty index.
    pub(crate) fn new() -> Self {
        KeyIndex {
            map: HashMap::new(),
        }
    }

    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `key` is indexed.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// Sets `key`'s digest; returns the one it replaced.
    pub(crate) fn insert(&mut self, key: &[u8], digest: Digest) -> Option<Digest> {
        match self.map.get_mut(key) {
            Some(d) => Some(std::mem::replace(d, digest)),
            None => self.map.insert(key.to_vec(), digest),
        }
    }

    /// Takes `key` out; returns its digest if it was there.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Digest> {
        self.map.remove(key)
    }

    /// Every key with its digest, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &Digest)> {
        self.map.iter()
    }

    /// Every key, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.map.keys()
    }

    /// Every key, in byte order: what a transfer pass pages through.
    pub(crate) fn sorted_keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.map.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }
}

/// The keys of `sorted` after `after` (all of them for `None`).
fn keys_after<'a>(sorted: &'a [Key], after: Option<&[u8]>) -> &'a [Key] {
    let start = after.map_or(0, |a| sorted.partition_point(|k| k.as_slice() <= a));
    &sorted[start..]
}

/// The next page of a transfer pass: at most `max` (at least one) keys of the pass's snapshot
/// `sorted` after `after` that `index` still holds (a key gone since the snapshot is skipped),
/// and whether any such key remains after the page.
pub(crate) fn page(
    sorted: &[Key],
    after: Option<&[u8]>,
    max: usize,
    index: &KeyIndex,
) -> (Vec<Key>, bool) {
    let mut rest = keys_after(sorted, after)
        .iter()
        .filter(|k| index.contains(k));
    let keys: Vec<Key> = rest.by_ref().take(max.max(1)).cloned().collect();
    let more = rest.next().is_some();
    (keys, more)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;
    use std::collections::{BTreeMap, BTreeSet};

    quickcheck! {
        /// Inserts and removals leave exactly the keys a plain map would hold, with the same
        /// digests.
        fn agrees_with_a_plain_map(ops: Vec<(bool, Vec<u8>, u8)>) -> bool {
            let mut index = KeyIndex::new();
            let mut plain: BTreeMap<Key, Digest> = BTreeMap::new();
            for (put, key, d) in ops {
                if put {
                    if index.insert(&key, [d; 32]) != plain.insert(key.clone(), [d; 32]) {
                        return false;
                    }
                } else if index.remove(&key) != plain.remove(&key) {
                    return false;
                }
            }
            let got: BTreeMap<Key, Digest> = index.iter().map(|(k, d)| (k.clone(), *d)).collect();
            got == plain
                && index.len() == plain.len()
                && index.is_empty() == plain.is_empty()
                && index.sorted_keys() == plain.keys().cloned().collect::<Vec<_>>()
        }

        /// Paging a snapshot with the last key seen visits exactly the keys still indexed,
        /// once each, in byte order, whatever was removed after the snapshot; resuming after any
        /// key (a checkpoint) visits exactly the indexed keys after it.
        fn paging_visits_every_indexed_key_once_in_order(
            keys: BTreeSet<Vec<u8>>,
            gone: Vec<usize>,
            page_size: u8,
            from: Vec<u8>
        ) -> bool {
            let max = usize::from(page_size % 7);
            let mut index = KeyIndex::new();
            for k in &keys {
                index.insert(k, [0; 32]);
            }
            let sorted = index.sorted_keys();
            let listed: Vec<Key> = keys.iter().cloned().collect();
            for i in gone {
                if !listed.is_empty() {
                    index.remove(&listed[i % listed.len()]);
                }
            }
            let held: Vec<Key> = listed.iter().filter(|k| index.contains(k)).cloned().collect();
            let mut seen = Vec::new();
            let mut after: Option<Key> = None;
            loop {
                let (batch, more) = page(&sorted, after.as_deref(), max, &index);
                if batch.len() > max.max(1) {
                    return false;
                }
                let Some(last) = batch.last().cloned() else { break };
                seen.extend(batch);
                after = Some(last);
                if !more {
                    break;
                }
            }
            let (resumed, _) = page(&sorted, Some(&from), usize::MAX, &index);
            seen == held && resumed == held.iter().filter(|k| **k > from).cloned().collect::<Vec<_>>()
        }
    }
}
