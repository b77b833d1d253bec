//! A durable [`Store`] on [redb](https://docs.rs/redb), the default whenever a node has a data
//! directory.
//!
//! Writes are buffered in memory (an *overlay* that reads see at once) and committed in one redb
//! write transaction by [`Store::flush`]: the runtime calls it once per batch of inputs, before it
//! sends anything, so one commit (and one fsync) covers every write of the batch (group commit).
//!
//! The [`Durability`] setting chooses what a flush promises:
//! - [`Durability::Durable`]: every flush is an fsynced commit, so every acknowledged write survives
//!   a crash (SIGKILL or power loss).
//! - [`Durability::Buffered`]: flushes commit without fsync; an fsynced commit happens at most
//!   every `sync_interval` (and on drop). A crash can lose the last interval's writes: the
//!   trade-off of the paper's section 6.1 (writes buffered in memory, written by a writer thread).
//!
//! Layout: one file `dynamo.redb` in the data directory with three tables: `data` (key → sibling
//! set encoded with rmp-serde), `hints` (id → record) and `meta` (name → bytes), plus a `format`
//! entry in `meta` that is checked at open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition};

use crate::store::{Store, StoreError};
use crate::types::{Key, Sibs};

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const HINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("hints");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The name of the database file inside the data directory.
pub const DB_FILE: &str = "dynamo.redb";
/// The `meta` entry naming the on-disk format.
const FORMAT_KEY: &str = "dynamo.format";
/// The on-disk format written by this version.
const FORMAT: &[u8] = b"dynamo-redb-1";

/// What a flush promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every flush is fsynced: acknowledged writes survive crashes (the default).
    #[default]
    Durable,
    /// Flushes commit without fsync; an fsynced commit happens at most every `sync_interval`.
    Buffered {
        /// Longest time between two fsynced commits while writes are flushed.
        sync_interval: Duration,
    },
}

/// A [`Store`] on a redb file with group commit. See the [module docs](self).
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    durability: Durability,
    /// Writes not yet committed: `None` marks a removal.
    data: BTreeMap<Key, Option<Sibs>>,
    hints: BTreeMap<u64, Option<Vec<u8>>>,
    meta: BTreeMap<String, Option<Vec<u8>>>,
    /// Whether a commit without fsync happened since the last fsynced one.
    unsynced: bool,
    last_sync: Instant,
    commits: u64,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .field("pending", &self.pending())
            .finish()
    }
}

fn io(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("{context}: {e}"))
}

fn storage(path: &Path, context: &str, e: redb::StorageError) -> StoreError {
    match e {
        redb::StorageError::Corrupted(m) => {
            StoreError::Corrupt(format!("{}: {context}: {m}", path.display()))
        }
        other => StoreError::Io(format!("{}: {context}: {other}", path.display())),
    }
}

fn decode_sibs(key: &[u8], bytes: &[u8]) -> Result<Sibs, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| {
        StoreError::Corrupt(format!(
            "sibling set of key {} cannot be decoded: {e}",
            hex(key)
        ))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl RedbStore {
    /// Opens (or creates) the store in `dir`, creating the directory if needed.
    ///
    /// Fails with [`StoreError::Corrupt`] if the file is not a redb database of this format or
    /// any stored sibling set cannot be decoded, and with [`StoreError::Io`] if the directory
    /// cannot be created, read or locked (another process has it open).
    pub fn open(dir: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            io(
                &format!("cannot create data directory {}", dir.display()),
                e,
            )
        })?;
        let meta = std::fs::metadata(dir)
            .map_err(|e| io(&format!("cannot read data directory {}", dir.display()), e))?;
        if !meta.is_dir() {
            return Err(StoreError::Io(format!(
                "data directory {} is not a directory",
                dir.display()
            )));
        }
        let path = dir.join(DB_FILE);
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Io(format!(
                "{}: the database is already open (is another node using this data directory?)",
                path.display()
            )),
            redb::DatabaseError::Storage(s) => storage(&path, "cannot open database", s),
            other => {
                StoreError::Corrupt(format!("{}: cannot open database: {other}", path.display()))
            }
        })?;
        let mut store = RedbStore {
            db,
            path,
            durability,
            data: BTreeMap::new(),
            hints: BTreeMap::new(),
            meta: BTreeMap::new(),
            unsynced: false,
            last_sync: Instant::now(),
            commits: 0,
        };
        store.init()?;
        store.verify()?;
        Ok(store)
    }

    /// Creates the tables of a new database, or checks the format of an existing one.
    fn init(&mut self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.txn_err(e))?;
        txn.set_durability(redb::Durability::Immediate);
        {
            let _ = txn.open_table(DATA).map_err(|e| self.table_err(e))?;
            let _ = txn.open_table(HINTS).map_err(|e| self.table_err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.table_err(e))?;
            let existing = meta
                .get(FORMAT_KEY)
                .map_err(|e| storage(&self.path, "reading format", e))?
                .map(|v| v.value().to_vec());
            match existing {
                Some(f) if f == FORMAT => {}
                Some(f) => {
                    return Err(StoreError::Corrupt(format!(
                        "{}: unknown storage format {:?} (expected {:?})",
                        self.path.display(),
                        String::from_utf8_lossy(&f),
                        String::from_utf8_lossy(FORMAT)
                    )))
                }
                None => {
                    meta.insert(FORMAT_KEY, FORMAT)
                        .map_err(|e| storage(&self.path, "writing format", e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.commit_err(e))
    }

    /// Decodes every stored sibling set once, so damage shows at start rather than mid-request.
    fn verify(&self) -> Result<(), StoreError> {
        self.scan(&mut |_, _| {})
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability setting.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Number of buffered writes not yet committed.
    pub fn pending(&self) -> usize {
        self.data.len() + self.hints.len() + self.meta.len()
    }

    /// Number of write transactions committed since open (for statistics and tests).
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Commits buffered writes with an fsync, whatever the durability setting.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.commit(true)
    }

    fn txn_err(&self, e: redb::TransactionError) -> StoreError {
        match e {
            redb::TransactionError::Storage(s) => storage(&self.path, "transaction", s),
            other => StoreError::Io(format!("{}: transaction: {other}", self.path.display())),
        }
    }

    fn table_err(&self, e: redb::TableError) -> StoreError {
        match e {
            redb::TableError::Storage(s) => storage(&self.path, "table", s),
            other => StoreError::Corrupt(format!("{}: table: {other}", self.path.display())),
        }
    }

    fn commit_err(&self, e: redb::CommitError) -> StoreError {
        match e {
            redb::CommitError::Storage(s) => storage(&self.path, "commit", s),
            other => StoreError::Io(format!("{}: commit: {other}", self.path.display())),
        }
    }

    fn commit(&mut self, fsync: bool) -> Result<(), StoreError> {
        if self.pending() == 0 && !(fsync && self.unsynced) {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(|e| self.txn_err(e))?;
        txn.set_durability(if fsync {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        });
        {
            let mut data = txn.open_table(DATA).map_err(|e| self.table_err(e))?;
            for (key, sibs) in &self.data {
                match sibs {
                    Some(sibs) => {
                        let bytes =
                            rmp_serde::to_vec(sibs).map_err(|e| io("encoding a sibling set", e))?;
                        data.insert(key.as_slice(), bytes.as_slice())
                            .map_err(|e| storage(&self.path, "writing a key", e))?;
                    }
                    None => {
                        data.remove(key.as_slice())
                            .map_err(|e| storage(&self.path, "removing a key", e))?;
                    }
                }
            }
            let mut hints = txn.open_table(HINTS).map_err(|e| self.table_err(e))?;
            for (id, record) in &self.hints {
                match record {
                    Some(r) => hints.insert(*id, r.as_slice()).map(|_| ()),
                    None => hints.remove(*id).map(|_| ()),
                }
                .map_err(|e| storage(&self.path, "writing a hint", e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| self.table_err(e))?;
            for (name, value) in &self.meta {
                match value {
                    Some(v) => meta.insert(name.as_str(), v.as_slice()).map(|_| ()),
                    None => meta.remove(name.as_str()).map(|_| ()),
                }
                .map_err(|e| storage(&self.path, "writing metadata", e))?;
            }
        }
        txn.commit().map_err(|e| self.commit_err(e))?;
        self.commits += 1;
        self.data.clear();
        self.hints.clear();
        self.meta.clear();
        if fsync {
            self.unsynced = false;
            self.last_sync = Instant::now();
        } else {
            self.unsynced = true;
        }
        Ok(())
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.txn_err(e))?;
        f(&txn)
    }
}

impl Store for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Sibs>, StoreError> {
        if let Some(buffered) = self.data.get(key) {
            return Ok(buffered.clone());
        }
        self.read(|txn| {
            let table = txn.open_table(DATA).map_err(|e| self.table_err(e))?;
            let found = table
                .get(key)
                .map_err(|e| storage(&self.path, "reading a key", e))?;
            found.map(|v| decode_sibs(key, v.value())).transpose()
        })
    }

    fn put(&mut self, key: &[u8], siblings: &Sibs) -> Result<(), StoreError> {
        self.data.insert(key.to_vec(), Some(siblings.clone()));
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.data.insert(key.to_vec(), None);
        Ok(())
    }

    fn scan(&self, visit: &mut dyn FnMut(&[u8], &Sibs)) -> Result<(), StoreError> {
        self.read(|txn| {
            let table = txn.open_table(DATA).map_err(|e| self.table_err(e))?;
            let iter = table
                .iter()
                .map_err(|e| storage(&self.path, "scanning", e))?;
            let mut overlay = self.data.iter().peekable();
            for entry in iter {
                let (k, v) = entry.map_err(|e| storage(&self.path, "scanning", e))?;
                let key = k.value();
                // Overlay keys that sort before this stored key exist only in the overlay.
                while let Some((ok, ov)) = overlay.next_if(|(ok, _)| ok.as_slice() < key) {
                    if let Some(s) = ov {
                        visit(ok, s);
                    }
                }
                match overlay.next_if(|(ok, _)| ok.as_slice() == key) {
                    Some((_, Some(s))) => visit(key, s),
                    Some((_, None)) => {}
                    None => visit(key, &decode_sibs(key, v.value())?),
                }
            }
            for (ok, ov) in overlay {
                if let Some(s) = ov {
                    visit(ok, s);
                }
            }
            Ok(())
        })
    }

    fn put_hint(&mut self, id: u64, record: &[u8]) -> Result<(), StoreError> {
        self.hints.insert(id, Some(record.to_vec()));
        Ok(())
    }

    fn remove_hint(&mut self, id: u64) -> Result<(), StoreError> {
        self.hints.insert(id, None);
        Ok(())
    }

    fn hints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut all: BTreeMap<u64, Vec<u8>> = self.read(|txn| {
            let table = txn.open_table(HINTS).map_err(|e| self.table_err(e))?;
            let iter = table
                .iter()
                .map_err(|e| storage(&self.path, "reading hints", e))?;
            iter.map(|entry| {
                let (k, v) = entry.map_err(|e| storage(&self.path, "reading hints", e))?;
                Ok((k.value(), v.value().to_vec()))
            })
            .collect()
        })?;
        for (id, record) in &self.hints {
            match record {
                Some(r) => all.insert(*id, r.clone()),
                None => all.remove(id),
            };
        }
        Ok(all.into_iter().collect())
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(buffered) = self.meta.get(name) {
            return Ok(buffered.clone());
        }
        self.read(|txn| {
            let table = txn.open_table(META).map_err(|e| self.table_err(e))?;
            let found = table
                .get(name)
                .map_err(|e| storage(&self.path, "reading metadata", e))?;
            Ok(found.map(|v| v.value().to_vec()))
        })
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(name.to_string(), Some(value.to_vec()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let fsync = match self.durability {
            Durability::Durable => true,
            Durability::Buffered { sync_interval } => self.last_sync.elapsed() >= sync_interval,
        };
        self.commit(fsync)
    }

    fn is_durable(&self) -> bool {
        self.durability == Durability::Durable
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        RedbStore::sync(self)
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // A graceful stop keeps buffered writes too; a crash is what loses them.
        if let Err(e) = self.commit(true) {
            tracing::error!(path = %self.path.display(), error = %e, "final commit failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_vclock::Value;

    fn sibs(value: &[u8]) -> Sibs {
        let mut s = Sibs::new();
        let ctx = s.context();
        s.put(&ctx, (1, 0), 0, Value::Live(value.to_vec()));
        s
    }

    fn values(s: &Sibs) -> Vec<Vec<u8>> {
        s.live_values().cloned().collect()
    }

    #[test]
    fn buffered_writes_are_visible_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
            store.put(b"a", &sibs(b"1")).unwrap();
            store.put(b"c", &sibs(b"3")).unwrap();
            store.put_hint(7, b"hint").unwrap();
            store.put_meta("epoch", b"\x01").unwrap();
            assert_eq!(
                values(&store.get(b"a").unwrap().unwrap()),
                vec![b"1".to_vec()]
            );
            store.flush().unwrap();
            assert_eq!(store.pending(), 0);
            store.put(b"b", &sibs(b"2")).unwrap();
            store.remove(b"c").unwrap();
            let mut seen = Vec::new();
            store.scan(&mut |k, _| seen.push(k.to_vec())).unwrap();
            assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec()]);
            store.flush().unwrap();
            store.remove_hint(7).unwrap();
            store.put_hint(8, b"h8").unwrap();
            assert_eq!(store.hints().unwrap(), vec![(8, b"h8".to_vec())]);
            store.flush().unwrap();
        }
        let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        assert!(store.get(b"c").unwrap().is_none());
        assert_eq!(
            values(&store.get(b"b").unwrap().unwrap()),
            vec![b"2".to_vec()]
        );
        assert_eq!(store.hints().unwrap(), vec![(8, b"h8".to_vec())]);
        assert_eq!(store.get_meta("epoch").unwrap(), Some(vec![1]));
        assert_eq!(store.get_meta("absent").unwrap(), None);
    }

    #[test]
    fn flush_without_writes_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        store.flush().unwrap();
        assert_eq!(store.commits(), 0);
        store.put(b"k", &sibs(b"v")).unwrap();
        store.put(b"k2", &sibs(b"v")).unwrap();
        store.flush().unwrap();
        assert_eq!(store.commits(), 1, "one group commit for the whole batch");
    }

    #[test]
    fn buffered_mode_syncs_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let durability = Durability::Buffered {
            sync_interval: Duration::from_secs(3600),
        };
        {
            let mut store = RedbStore::open(dir.path(), durability).unwrap();
            store.put(b"k", &sibs(b"v")).unwrap();
            store.flush().unwrap();
        }
        let store = RedbStore::open(dir.path(), durability).unwrap();
        assert!(store.get(b"k").unwrap().is_some());
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0xAB; 8192]).unwrap();
        let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
        assert!(err.to_string().contains(DB_FILE), "{err}");
    }

    #[test]
    fn undecodable_value_is_corrupt_at_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(RedbStore::open(dir.path(), Durability::Durable).unwrap());
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(DATA)
                .unwrap()
                .insert(&b"k"[..], &b"\xc1not msgpack"[..])
                .unwrap();
            txn.commit().unwrap();
        }
        let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn data_dir_that_is_a_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let err = RedbStore::open(&file, Durability::Durable).unwrap_err();
        assert!(err.to_string().contains("data directory"), "{err}");
    }

    #[test]
    fn second_open_of_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
        assert!(err.to_string().contains("already open"), "{err}");
    }
}
