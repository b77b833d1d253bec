//! A bounded cache of decoded rows in front of fjall's data partition.
//!
//! A get that misses the overlay would search fjall's memtable (a skiplist: a cache miss per
//! level) or its segments, then verify and decode the record. The cache keeps what the last
//! reads found and what the last commits wrote, decoded, including "absent" (a put of a new key
//! reads it first). It is written through: every commit of the overlay updates it, so it always
//! agrees with what fjall holds. Eviction is first in, first out by bytes; an entry evicted is
//! read from fjall again, so any size is correct and only the hit rate depends on it. The map
//! hashes with foldhash, seeded at random per map (std's SipHash was a quarter of its cost).

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt};

use crate::types::{Key, Sibs};

/// Bytes an entry is charged beyond its key and values: the map slot, the queue slot and the
/// sibling set's own vectors.
const OVERHEAD: usize = 96;

/// What is cached for a key: its versions, or `None` for a key fjall does not hold.
type Row = Option<Sibs>;

/// A FIFO row cache of at most `capacity` bytes (see the module docs).
#[derive(Debug)]
pub(crate) struct RowCache {
    rows: HashMap<Key, (Row, usize, u64)>,
    /// Keys in insertion order, with the stamp they were inserted under: a key evicted and
    /// inserted again has a newer stamp, and its old queue slot is skipped.
    order: VecDeque<(Key, u64)>,
    bytes: usize,
    capacity: usize,
    next_stamp: u64,
    hits: u64,
    misses: u64,
}

fn charge(key: &[u8], row: &Row) -> usize {
    let values = row.as_ref().map_or(0, |s| {
        s.entries()
            .iter()
            .map(|e| {
                32 + e
                    .values
                    .iter()
                    .map(|v| 32 + v.as_live().map_or(0, |o| o.size()))
                    .sum::<usize>()
            })
            .sum()
    });
    OVERHEAD + key.len() + values
}

impl RowCache {
    /// An empty cache of at most `capacity` bytes (0: caches nothing).
    pub(crate) fn new(capacity: usize) -> Self {
        RowCache {
            rows: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            capacity,
            next_stamp: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// The cached row of `key`: `Some(None)` if the key is known absent, `None` if not cached.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<Row> {
        match self.rows.get(key) {
            Some((row, _, _)) => {
                self.hits += 1;
                Some(row.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Records what fjall holds for `key` now (read, or just committed).
    pub(crate) fn insert(&mut self, key: &[u8], row: Row) {
        let size = charge(key, &row);
        if size > self.capacity {
            self.forget(key);
            return;
        }
        if let Some((old, old_size, _)) = self.rows.get_mut(key) {
            self.bytes = self.bytes - *old_size + size;
            *old = row;
            *old_size = size;
        } else {
            let stamp = self.next_stamp;
            self.next_stamp += 1;
            self.rows.insert(key.to_vec(), (row, size, stamp));
            self.order.push_back((key.to_vec(), stamp));
            self.bytes += size;
        }
        self.evict();
    }

    /// Drops `key` (its record was found damaged, or is too large to keep).
    pub(crate) fn forget(&mut self, key: &[u8]) {
        if let Some((_, size, _)) = self.rows.remove(key) {
            self.bytes -= size;
        }
    }

    fn evict(&mut self) {
        while self.bytes > self.capacity {
            let Some((key, stamp)) = self.order.pop_front() else {
                return;
            };
            if self.rows.get(&key).is_some_and(|(_, _, s)| *s == stamp) {
                self.forget(&key);
            }
        }
        // Slots of keys forgotten outside eviction stay queued until they reach the front; keep
        // the queue from growing past twice the live keys.
        if self.order.len() > 2 * self.rows.len() + 64 {
            let rows = &self.rows;
            self.order
                .retain(|(k, stamp)| rows.get(k).is_some_and(|(_, _, s)| s == stamp));
        }
    }

    /// Bytes charged now.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gets answered from the cache, and gets that were not.
    #[cfg(test)]
    pub(crate) fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Object;
    use dynamo_vclock::Value;

    fn sibs(value: &[u8]) -> Sibs {
        let mut s = Sibs::new();
        let ctx = s.context();
        s.put(&ctx, (1, 0), 1, Value::Live(Object::from(value.to_vec())));
        s
    }

    #[test]
    fn a_row_reads_back_as_inserted_and_absent_is_remembered() {
        let mut c = RowCache::new(1 << 20);
        assert_eq!(c.get(b"k"), None);
        c.insert(b"k", Some(sibs(b"v")));
        c.insert(b"gone", None);
        assert_eq!(c.get(b"k"), Some(Some(sibs(b"v"))));
        assert_eq!(c.get(b"gone"), Some(None));
        c.insert(b"k", Some(sibs(b"w")));
        assert_eq!(c.get(b"k"), Some(Some(sibs(b"w"))));
        assert_eq!(c.hits_and_misses(), (3, 1));
    }

    #[test]
    fn the_oldest_rows_go_first_and_the_bytes_stay_under_the_capacity() {
        let row = Some(sibs(&[7; 100]));
        let one = charge(b"k000", &row);
        let mut c = RowCache::new(one * 10);
        for i in 0..25 {
            c.insert(format!("k{i:03}").as_bytes(), row.clone());
            assert!(c.bytes() <= one * 10);
        }
        assert_eq!(c.get(b"k014"), None);
        assert_eq!(c.get(b"k015"), Some(row.clone()));
        assert_eq!(c.get(b"k024"), Some(row));
    }

    #[test]
    fn a_forgotten_row_is_read_again_and_a_re_inserted_one_is_not_evicted_by_its_old_slot() {
        let row = Some(sibs(b"v"));
        let one = charge(b"a", &row);
        let mut c = RowCache::new(one * 2);
        c.insert(b"a", row.clone());
        c.forget(b"a");
        assert_eq!(c.get(b"a"), None);
        c.insert(b"b", row.clone());
        c.insert(b"a", row.clone());
        // "a"'s first slot is at the front; evicting must take "b", not the new "a".
        c.insert(b"c", row.clone());
        assert_eq!(c.get(b"a"), Some(row.clone()));
        assert_eq!(c.get(b"b"), None);
        assert_eq!(c.get(b"c"), Some(row));
    }

    #[test]
    fn a_cache_of_zero_bytes_keeps_nothing() {
        let mut c = RowCache::new(0);
        c.insert(b"k", None);
        assert_eq!(c.get(b"k"), None);
        assert_eq!(c.bytes(), 0);
    }
}
