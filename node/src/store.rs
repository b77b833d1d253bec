//! Where a node keeps its data: the [`Store`] trait and the in-memory store.
//!
//! The core never calls the store: it asks for reads and writes as
//! [`StorageOp`](crate::core::StorageOp)s, which its driver runs on a store
//! ([`execute`](crate::core::execute)) and answers. A durable store may buffer writes; the driver
//! calls [`Store::flush`] before it sends any message or reply produced after those writes, so
//! that an acknowledgement never leaves before the write it acknowledges is durable (group commit:
//! one flush covers every input handled since the last one).

use std::collections::BTreeMap;

use crate::types::{Key, Sibs};

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage medium failed (I/O error, disk full).
    #[error("storage I/O error: {0}")]
    Io(String),
    /// The data directory is damaged beyond what the store can set aside: the database file
    /// cannot be opened (truncated, another file), is missing or empty while the directory says
    /// it held data, or a metadata value fails its checksum. The message names the path and
    /// what to do.
    #[error("corrupt storage: {0}")]
    Corrupt(String),
    /// The data directory holds a format this version does not read: written by a newer version
    /// (or, for the store's record format, by one too old to upgrade). Nothing was read as if it
    /// were of a known format.
    #[error("{what} has format {found}, which this version cannot read (it reads {supported}); {advice}")]
    UnknownVersion {
        /// What holds the format (a file, a database, the store's records), with its path if any.
        what: String,
        /// The format found.
        found: String,
        /// The formats this version reads.
        supported: String,
        /// What the operator can do.
        advice: String,
    },
}

/// The slow half of a flush, run off the caller's thread: once it returns `Ok`, every write made
/// before [`Store::start_flush`] returned it is durable. See [`Store::start_flush`].
pub type SyncJob = Box<dyn FnOnce() -> Result<(), StoreError> + Send>;

/// A node's storage: sibling sets by key, hint records, and a few named metadata values (the
/// node's identity, epoch and generation).
pub trait Store {
    /// The versions of `key`, if any.
    ///
    /// A store that checksums its records answers `Ok(None)` for a damaged one (and logs and
    /// counts it): a damaged copy is a missing copy, which read repair and anti-entropy refill
    /// from the other replicas. An error means the store itself failed.
    fn get(&self, key: &[u8]) -> Result<Option<Sibs>, StoreError>;
    /// Replaces the versions of `key`.
    fn put(&mut self, key: &[u8], siblings: &Sibs) -> Result<(), StoreError>;
    /// Removes `key`.
    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError>;
    /// Every key with its versions, for rebuilding indexes at start. Damaged records are
    /// skipped, as [`get`](Store::get) treats them as missing.
    fn scan(&self, visit: &mut dyn FnMut(&[u8], &Sibs)) -> Result<(), StoreError>;
    /// Stores a hint record (already encoded) under its id.
    fn put_hint(&mut self, id: u64, record: &[u8]) -> Result<(), StoreError>;
    /// Removes a hint record.
    fn remove_hint(&mut self, id: u64) -> Result<(), StoreError>;
    /// Every hint record (damaged ones skipped).
    fn hints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// A metadata value. A damaged one is an error: metadata has no replica to refill it.
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets a metadata value.
    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Makes every write so far durable (a no-op for memory).
    fn flush(&mut self) -> Result<(), StoreError>;
    /// Starts a flush whose slow part (the fsync) can run on another thread while the caller
    /// goes on reading and writing: `Ok(None)` when every write so far is durable already, or
    /// the [`SyncJob`] that makes them durable. Writes made after this call are not covered by
    /// the job. Until the job has returned, the caller starts no other flush (neither this nor
    /// [`flush`](Store::flush)); [`sync`](Store::sync) stays allowed (it may wait for the job).
    ///
    /// The default flushes in place and returns `Ok(None)`.
    fn start_flush(&mut self) -> Result<Option<SyncJob>, StoreError> {
        self.flush()?;
        Ok(None)
    }
    /// Whether writes were made since the last [`start_flush`](Store::start_flush) or
    /// [`flush`](Store::flush) (what a read may see that no flush covers yet). The default,
    /// `true`, is always safe.
    fn has_unflushed_writes(&self) -> bool {
        true
    }
    /// Whether a write of `key` made so far may not survive a crash yet: not flushed, or in a
    /// flush whose sync has not returned; on a durable store, also whenever a hint record is in
    /// that state (a read merges in the hints it holds). A read of a key without such a write
    /// saw only durable versions, so what it answers need not wait for the flush in progress
    /// (the driver's rule). The default, `true`, is always safe.
    fn has_unsynced_write(&self, key: &[u8]) -> bool {
        let _ = key;
        true
    }
    /// Whether every [`flush`](Store::flush) survives a crash. A store that answers `false` may
    /// lose flushed writes in a crash, so a node restarting on it cannot trust its own counters
    /// and retires every actor epoch it used before (see the `core` module docs). A store that
    /// found at open that flushed writes were rolled back (a damaged file) answers `false` too.
    fn is_durable(&self) -> bool {
        true
    }
    /// Makes every write so far durable even on a buffered store (the node's actor-epoch lease
    /// must survive a crash).
    fn sync(&mut self) -> Result<(), StoreError> {
        self.flush()
    }
    /// The data keys whose records the store found damaged when it opened, and set aside, taken
    /// (a second call answers none): the node starting on it counts each as a copy it lost,
    /// whose reads it refuses until a write stores the key again. A store that removes the
    /// records keeps their keys, in the commit that removes them, until the caller's next flush
    /// after taking them ([`persist_set_aside`], [`take_persisted_set_aside`]): a start that
    /// fails or a crash before it names them again at the next open. A list the store holds but
    /// cannot read is an error: the node cannot start without knowing which copies it lost. The
    /// default: none.
    fn take_set_aside(&mut self) -> Result<Vec<Key>, StoreError> {
        Ok(Vec::new())
    }
}

/// The store meta name under which a store keeps the keys of the damaged records it removed at
/// open until the node has taken them ([`Store::take_set_aside`]) and flushed: the records are
/// gone from the file, and a node that never heard of them would answer "not found" for keys it
/// holds no copy of, a replica's answer toward R.
pub(crate) const SET_ASIDE_KEY: &str = "set-aside";

/// Adds `keys` to the set-aside keys `store` keeps ([`SET_ASIDE_KEY`]), in its pending writes:
/// a store calls it before the commit that removes their records.
pub(crate) fn persist_set_aside<S: Store + ?Sized>(
    store: &mut S,
    keys: &[Key],
) -> Result<(), StoreError> {
    let mut all = persisted_set_aside(store)?;
    all.extend(keys.iter().cloned());
    let bytes = rmp_serde::to_vec(&all).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store.put_meta(SET_ASIDE_KEY, &bytes)
}

/// The set-aside keys `store` keeps, taken: the list is cleared in the store's pending writes,
/// so the caller's next flush (which persists them as it needs) forgets them, and a crash before
/// it does not.
pub(crate) fn take_persisted_set_aside<S: Store + ?Sized>(
    store: &mut S,
) -> Result<Vec<Key>, StoreError> {
    // A damaged record fails the open (metadata is verified there); a list that does not decode
    // (written by another version) fails here.
    let persisted = persisted_set_aside(store)?;
    if !persisted.is_empty() && store.put_meta(SET_ASIDE_KEY, &[]).is_err() {
        tracing::warn!("the set-aside keys could not be cleared: named again at the next start");
    }
    Ok(persisted.into_iter().collect())
}

fn persisted_set_aside<S: Store + ?Sized>(
    store: &S,
) -> Result<std::collections::BTreeSet<Key>, StoreError> {
    Ok(match store.get_meta(SET_ASIDE_KEY)? {
        Some(bytes) if !bytes.is_empty() => rmp_serde::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("the set-aside keys: {e}")))?,
        _ => Default::default(),
    })
}

/// A store in memory: the default of the simulator and of tests. Cloning it is how the simulator
/// keeps a crashed node's "disk".
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    data: BTreeMap<Key, Sibs>,
    hints: BTreeMap<u64, Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    buffered: bool,
    /// On a buffered store, what every write since the last [`Store::sync`] replaced, oldest
    /// first: what a power loss takes back ([`MemoryStore::lose_unsynced`]).
    unsynced: Vec<Undo>,
    /// Records [`MemoryStore::damage`] dropped, for [`Store::take_set_aside`].
    set_aside: Vec<Key>,
    /// Faults injected by [`MemoryStore::inject_faults`].
    faults: Option<Faults>,
}

/// What one write to a buffered [`MemoryStore`] replaced (`None`: nothing was there).
#[derive(Debug, Clone)]
enum Undo {
    Data(Key, Option<Sibs>),
    Hint(u64, Option<Vec<u8>>),
    Meta(String, Option<Vec<u8>>),
}

/// Data reads and writes that fail, one in `one_in` on average, drawn from a seeded generator.
#[derive(Debug, Clone)]
struct Faults {
    one_in: u64,
    state: std::cell::Cell<u64>,
}

impl Faults {
    /// Whether the next data read or write fails (splitmix64 over the state).
    fn strike(&self) -> bool {
        let s = self.state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).is_multiple_of(self.one_in)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffered store ([`Store::is_durable`] is `false`): a write is durable only once a
    /// [`Store::sync`] follows it, and [`MemoryStore::lose_unsynced`] takes back what a power loss
    /// would (tests can also restart a node on an older clone).
    pub fn buffered() -> Self {
        Self {
            buffered: true,
            ..Self::default()
        }
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// From now on, about one in `one_in` data reads ([`Store::get`]) and writes ([`Store::put`])
    /// fails with an I/O error, as a failing disk's would, drawn from `seed` (tests and the
    /// simulator exercise the node's answers to storage errors with it). A failed write changes
    /// nothing. `one_in` of 0 turns the faults off.
    pub fn inject_faults(&mut self, one_in: u64, seed: u64) {
        self.faults = (one_in > 0).then(|| Faults {
            one_in,
            state: std::cell::Cell::new(seed),
        });
    }

    /// Whether an injected fault strikes the next data read or write.
    fn fault(&self) -> Result<(), StoreError> {
        match &self.faults {
            Some(f) if f.strike() => Err(StoreError::Io("injected disk fault".into())),
            _ => Ok(()),
        }
    }

    /// The keys stored, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> + '_ {
        self.data.keys()
    }

    /// Writes since the last [`Store::sync`] (always 0 on a store that is not buffered).
    pub fn unsynced_writes(&self) -> usize {
        self.unsynced.len()
    }

    /// Takes back every write since the last [`Store::sync`] but the first `keep`, as a machine
    /// that lost power loses the tail of a buffered store's journal, and makes the rest durable.
    /// Returns the data keys whose records changed back, in the order they were restored.
    pub fn lose_unsynced(&mut self, keep: usize) -> Vec<Key> {
        let mut changed = Vec::new();
        let lost = self.unsynced.split_off(keep.min(self.unsynced.len()));
        for undo in lost.into_iter().rev() {
            match undo {
                Undo::Data(key, before) => {
                    match before {
                        Some(sibs) => self.data.insert(key.clone(), sibs),
                        None => self.data.remove(&key),
                    };
                    changed.push(key);
                }
                Undo::Hint(id, before) => {
                    match before {
                        Some(record) => self.hints.insert(id, record),
                        None => self.hints.remove(&id),
                    };
                }
                Undo::Meta(name, before) => {
                    match before {
                        Some(value) => self.meta.insert(name, value),
                        None => self.meta.remove(&name),
                    };
                }
            }
        }
        self.unsynced.clear();
        changed
    }

    /// Notes what a write replaced, on a buffered store.
    fn note(&mut self, undo: impl FnOnce(&Self) -> Undo) {
        if self.buffered {
            let undo = undo(self);
            self.unsynced.push(undo);
        }
    }

    /// Drops `key`'s record as an on-disk store drops a record it finds damaged: while it runs
    /// the record reads as missing (its node finds out at its next read or merge of the key), and
    /// the next [`Store::take_set_aside`] (the node's next start) names the key unless it was
    /// written again (tests and the simulator model damage with it).
    pub fn damage(&mut self, key: &[u8]) {
        if self.data.remove(key).is_some() {
            self.set_aside.push(key.to_vec());
        }
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Sibs>, StoreError> {
        self.fault()?;
        Ok(self.data.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], siblings: &Sibs) -> Result<(), StoreError> {
        self.fault()?;
        if !self.set_aside.is_empty() {
            self.set_aside.retain(|k| k.as_slice() != key);
        }
        self.note(|s| Undo::Data(key.to_vec(), s.data.get(key).cloned()));
        self.data.insert(key.to_vec(), siblings.clone());
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.note(|s| Undo::Data(key.to_vec(), s.data.get(key).cloned()));
        self.data.remove(key);
        Ok(())
    }

    fn scan(&self, visit: &mut dyn FnMut(&[u8], &Sibs)) -> Result<(), StoreError> {
        for (k, v) in &self.data {
            visit(k, v);
        }
        Ok(())
    }

    fn put_hint(&mut self, id: u64, record: &[u8]) -> Result<(), StoreError> {
        self.note(|s| Undo::Hint(id, s.hints.get(&id).cloned()));
        self.hints.insert(id, record.to_vec());
        Ok(())
    }

    fn remove_hint(&mut self, id: u64) -> Result<(), StoreError> {
        self.note(|s| Undo::Hint(id, s.hints.get(&id).cloned()));
        self.hints.remove(&id);
        Ok(())
    }

    fn hints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self.hints.iter().map(|(k, v)| (*k, v.clone())).collect())
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(name).cloned())
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.note(|s| Undo::Meta(name.to_string(), s.meta.get(name).cloned()));
        self.meta.insert(name.to_string(), value.to_vec());
        Ok(())
    }

    fn is_durable(&self) -> bool {
        !self.buffered
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.unsynced.clear();
        Ok(())
    }

    fn take_set_aside(&mut self) -> Result<Vec<Key>, StoreError> {
        Ok(std::mem::take(&mut self.set_aside))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{MemoryStore, Store};
    use crate::types::{Object, Sibs};
    use dynamo_vclock::{VClock, Value};

    /// One write to a store: data put or remove, hint put or remove, meta put (small key spaces,
    /// so that writes overwrite each other).
    fn apply(store: &mut MemoryStore, op: (u8, u8, u8)) {
        let (kind, key, value) = op;
        let key_bytes = [key % 4];
        let result = match kind % 5 {
            0 => {
                let mut sibs = Sibs::default();
                sibs.put(
                    &VClock::new(),
                    (1, 1),
                    u64::from(value),
                    Value::Live(Object::typed(vec![value], None)),
                );
                store.put(&key_bytes, &sibs)
            }
            1 => store.remove(&key_bytes),
            2 => store.put_hint(u64::from(key % 4), &[value]),
            3 => store.remove_hint(u64::from(key % 4)),
            _ => store.put_meta(&format!("m{}", key % 4), &[value]),
        };
        assert!(result.is_ok());
    }

    /// What a store holds, comparably.
    fn contents(store: &MemoryStore) -> String {
        format!("{:?} {:?} {:?}", store.data, store.hints, store.meta)
    }

    /// A power loss that keeps the first `keep` unsynced writes leaves the store exactly as it was
    /// after them, whatever came before the last sync, and the writes since then are durable.
    #[quickcheck_macros::quickcheck]
    fn losing_the_unsynced_tail_goes_back_to_a_prefix(
        synced: Vec<(u8, u8, u8)>,
        unsynced: Vec<(u8, u8, u8)>,
        keep: usize,
    ) -> bool {
        let mut store = MemoryStore::buffered();
        for &op in &synced {
            apply(&mut store, op);
        }
        assert!(store.sync().is_ok());
        let mut states = vec![contents(&store)];
        for &op in &unsynced {
            apply(&mut store, op);
            states.push(contents(&store));
        }
        let keep = keep % (unsynced.len() + 1);
        store.lose_unsynced(keep);
        let prefix = contents(&store) == states[keep];
        let durable = store.unsynced_writes() == 0;
        prefix && durable && store.lose_unsynced(0).is_empty()
    }

    /// A store that is not buffered keeps no undo log: every write is durable at once.
    #[test]
    fn a_durable_store_loses_nothing() {
        let mut store = MemoryStore::new();
        apply(&mut store, (0, 1, 7));
        assert_eq!(store.unsynced_writes(), 0);
        assert!(store.lose_unsynced(0).is_empty());
        assert_eq!(store.len(), 1);
    }
}
