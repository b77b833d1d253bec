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
//! entry in `meta` that is checked at open; and a [`MANIFEST_FILE`] beside it.
//!
//! # Checked storage
//!
//! - **Every record is checksummed** (`record`: a version byte and 64 bits of SHA-256 over the
//!   table, the key and the payload), and verified on every read. redb's own page checksums are
//!   checked only when it repairs a file, so without this a flipped bit would be served as data.
//! - **A damaged record is treated as missing**: [`Store::get`] answers `Ok(None)`,
//!   [`Store::scan`] and [`Store::hints`] skip it; it is logged once, counted
//!   ([`RedbStore::damaged`]) and removed from the file at the next commit (which also makes
//!   redb's page checksums whole again). The node then refills the key from the other replicas:
//!   read repair at the next read, anti-entropy otherwise (the core drops a key that vanished from
//!   its Merkle tree). Missing is safe for version stamps too: a node reuses an actor epoch only
//!   from its own copy of a key, so with no copy it takes a fresh one.
//! - **A damaged metadata value** (node id, epochs, generation) is an error: no replica holds a
//!   copy, and guessing could reissue a dot.
//! - **At open**, every record is verified (damaged ones are counted and removed), then redb's
//!   integrity check runs over every page. If it had to roll back to an earlier commit, that is
//!   logged as an error with the number of commits lost, and the store then answers
//!   [`Store::is_durable`] `false` so that the core retires the actor epochs it used before (the
//!   rolled-back copies no longer hold their last counters). A start after a crash is logged too
//!   (redb recovers to its last complete commit).
//! - **An emptied or missing database is refused**: the first open writes [`MANIFEST_FILE`] beside
//!   the database, naming the database *instance* (a random id, also stored in the database) and
//!   its creation time. If the manifest is there but the database is missing, empty (0 bytes) or
//!   another instance, open fails with a message that names the path and what to do, instead of
//!   starting empty and silently losing every acknowledged write.
//! - **redb's panics become errors**: redb asserts on some damage (a file truncated below the
//!   length its header records panics in `Database::create`). There is no way to check that
//!   before calling it without parsing redb's private header, so every call into redb runs under
//!   `catch_unwind` (the last resort): a panic becomes [`StoreError::Corrupt`], and the store
//!   refuses all later calls (redb's state is unknown after one). While a call runs, a chained
//!   panic hook keeps the panic's message out of stderr (it is in the error instead).

mod open;
use open::REBUILD;
pub(crate) mod record;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition};

use crate::on_disk::{catch_panic, damaged, decode_sibs, encode_sibs, hex};

use crate::store::{Store, StoreError};
use crate::types::{Key, Sibs};
use record::Table;

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const HINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("hints");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The name of the database file inside the data directory.
pub const DB_FILE: &str = "dynamo.redb";
/// The name of the manifest beside the database: written at the first open, it says that the
/// directory holds a database (see the [module docs](self)).
pub const MANIFEST_FILE: &str = "MANIFEST";
/// The `meta` entry naming the on-disk format (the one entry stored without a record header, so
/// that any version can read it).
const FORMAT_KEY: &str = "dynamo.format";
/// The on-disk format written by this version: every value a checksummed record.
const FORMAT: &[u8] = b"dynamo-redb-2";
/// The format before records carried checksums; upgraded in place at open.
const FORMAT_V1: &[u8] = b"dynamo-redb-1";
/// The `meta` entry holding the database instance: id and creation time (two u64, big-endian).
const INSTANCE_KEY: &str = "dynamo.instance";
/// The `meta` entry counting commits, to tell how many an integrity repair rolled back.
const SEQ_KEY: &str = "dynamo.commit-seq";
/// Entries read and rewritten per step of the format upgrade.
const UPGRADE_CHUNK: usize = 1024;

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

/// Damaged records found since open and not yet removed from the file.
#[derive(Debug, Default)]
struct Damage {
    /// Damaged records found since open (each once).
    count: u64,
    data: BTreeSet<Key>,
    hints: BTreeSet<u64>,
}

/// A [`Store`] on a redb file with group commit. See the [module docs](self).
pub struct RedbStore {
    /// `None` only while dropping.
    db: Option<Database>,
    path: PathBuf,
    durability: Durability,
    /// Writes not yet committed: `None` marks a removal.
    data: BTreeMap<Key, Option<Sibs>>,
    hints: BTreeMap<u64, Option<Vec<u8>>>,
    meta: BTreeMap<String, Option<Vec<u8>>>,
    /// Reads find damage through `&self`: behind a lock.
    damage: Mutex<Damage>,
    /// Set when redb panicked: every later call fails with this message.
    broken: OnceLock<String>,
    /// Whether the open rolled back commits: redb's recovery after a crash, or its integrity
    /// check (see [`Store::is_durable`]).
    lost_commits: bool,
    /// Commits ever made to this database (stored in `meta`).
    seq: u64,
    /// The durable mark: the last commit known fsynced, beside the database (see
    /// [`mark`](crate::on_disk::mark)).
    mark: crate::on_disk::mark::Mark,
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
            .field("damaged", &self.damaged())
            .finish()
    }
}

fn storage(path: &Path, context: &str, e: redb::StorageError) -> StoreError {
    match e {
        redb::StorageError::Corrupted(m) => {
            StoreError::Corrupt(format!("{}: {context}: {m}", path.display()))
        }
        other => StoreError::Io(format!("{}: {context}: {other}", path.display())),
    }
}

impl RedbStore {
    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability setting.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Number of buffered writes not yet committed (removals of damaged records included).
    pub fn pending(&self) -> usize {
        let damage = self.damage();
        self.data.len()
            + self.hints.len()
            + self.meta.len()
            + damage.data.len()
            + damage.hints.len()
    }

    /// Number of write transactions committed since open (for statistics and tests).
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Number of damaged records (data and hints) found since open: each was logged, treated as
    /// missing and removed from the file.
    pub fn damaged(&self) -> u64 {
        self.damage().count
    }

    /// Whether the open rolled back commits (redb's recovery after a crash found the newest one
    /// incomplete or damaged, or its integrity check did).
    pub fn lost_commits(&self) -> bool {
        self.lost_commits
    }

    /// Commits buffered writes with an fsync, whatever the durability setting.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.commit(true)
    }

    fn damage(&self) -> std::sync::MutexGuard<'_, Damage> {
        // A panic while holding the lock leaves the sets consistent (plain inserts).
        self.damage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the database, with redb's panics turned into [`StoreError::Corrupt`]; after
    /// one, the store refuses every call.
    fn guard<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(why) = self.broken.get() {
            return Err(StoreError::Corrupt(why.clone()));
        }
        let db = self.db.as_ref().ok_or_else(|| self.closed())?;
        catch_panic(|| f(db)).unwrap_or_else(|panic| Err(self.broke(what, &panic)))
    }

    fn guard_mut<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(why) = self.broken.get() {
            return Err(StoreError::Corrupt(why.clone()));
        }
        let closed = self.closed();
        let db = self.db.as_mut().ok_or(closed)?;
        match catch_panic(|| f(db)) {
            Ok(r) => r,
            Err(panic) => Err(self.broke(what, &panic)),
        }
    }

    fn closed(&self) -> StoreError {
        StoreError::Io(format!("{}: the store is closed", self.path.display()))
    }

    fn broke(&self, what: &str, panic: &str) -> StoreError {
        let e = damaged(
            &self.path,
            format_args!("redb failed while {what} ({panic}); the store refuses further calls"),
            REBUILD,
        );
        if let StoreError::Corrupt(why) = &e {
            tracing::error!("{why}");
            let _ = self.broken.set(why.clone());
        }
        e
    }

    /// Notes a damaged record: logged and counted the first time, removed at the next commit.
    fn found_damaged(&self, table: Table, name: &[u8], why: &dyn std::fmt::Display) {
        let mut damage = self.damage();
        let new = match table {
            Table::Data => damage.data.insert(name.to_vec()),
            Table::Hints => {
                let id = name.try_into().map(u64::from_be_bytes).unwrap_or(0);
                damage.hints.insert(id)
            }
            Table::Meta => false,
        };
        if new {
            damage.count += 1;
            tracing::error!(
                path = %self.path.display(),
                table = table.name(),
                key = %hex(name),
                error = %why,
                "damaged record: treated as missing and removed; the node's replicas refill it \
                 (read repair, anti-entropy)"
            );
        }
    }

    fn commit(&mut self, fsync: bool) -> Result<(), StoreError> {
        if self.pending() == 0 && !(fsync && self.unsynced) {
            return Ok(());
        }
        let damaged = {
            let damage = self.damage();
            (damage.data.clone(), damage.hints.clone())
        };
        let seq = self.seq + 1;
        let path = self.path.clone();
        let (data, hints, meta) = (&self.data, &self.hints, &self.meta);
        self.guard("committing", |db| {
            let mut txn = db.begin_write().map_err(|e| txn_err(&path, e))?;
            txn.set_durability(if fsync {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            });
            {
                let mut table = txn.open_table(DATA).map_err(|e| table_err(&path, e))?;
                for key in &damaged.0 {
                    table
                        .remove(key.as_slice())
                        .map_err(|e| storage(&path, "removing a damaged record", e))?;
                }
                for (key, sibs) in data {
                    match sibs {
                        Some(sibs) => {
                            let bytes = encode_sibs(key, sibs)?;
                            table
                                .insert(key.as_slice(), bytes.as_slice())
                                .map_err(|e| storage(&path, "writing a key", e))?;
                        }
                        None => {
                            table
                                .remove(key.as_slice())
                                .map_err(|e| storage(&path, "removing a key", e))?;
                        }
                    }
                }
                let mut table = txn.open_table(HINTS).map_err(|e| table_err(&path, e))?;
                for id in &damaged.1 {
                    table
                        .remove(*id)
                        .map_err(|e| storage(&path, "removing a damaged hint", e))?;
                }
                for (id, r) in hints {
                    match r {
                        Some(r) => {
                            let sealed = record::seal(Table::Hints, &id.to_be_bytes(), r);
                            table.insert(*id, sealed.as_slice()).map(|_| ())
                        }
                        None => table.remove(*id).map(|_| ()),
                    }
                    .map_err(|e| storage(&path, "writing a hint", e))?;
                }
                let mut table = txn.open_table(META).map_err(|e| table_err(&path, e))?;
                for (name, value) in meta {
                    match value {
                        Some(v) => {
                            let sealed = record::seal(Table::Meta, name.as_bytes(), v);
                            table.insert(name.as_str(), sealed.as_slice()).map(|_| ())
                        }
                        None => table.remove(name.as_str()).map(|_| ()),
                    }
                    .map_err(|e| storage(&path, "writing metadata", e))?;
                }
                let sealed = record::seal(Table::Meta, SEQ_KEY.as_bytes(), &seq.to_be_bytes());
                table
                    .insert(SEQ_KEY, sealed.as_slice())
                    .map_err(|e| storage(&path, "writing metadata", e))?;
            }
            txn.commit().map_err(|e| commit_err(&path, e))
        })?;
        self.seq = seq;
        if fsync {
            // This commit, and every one before it, is durable.
            self.mark.write(seq);
        }
        self.commits += 1;
        self.data.clear();
        self.hints.clear();
        self.meta.clear();
        {
            let mut damage = self.damage();
            damage.data.retain(|k| !damaged.0.contains(k));
            damage.hints.retain(|id| !damaged.1.contains(id));
        }
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
        what: &str,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.guard(what, |db| {
            let txn = db.begin_read().map_err(|e| txn_err(&self.path, e))?;
            f(&txn)
        })
    }
}

fn txn_err(path: &Path, e: redb::TransactionError) -> StoreError {
    match e {
        redb::TransactionError::Storage(s) => storage(path, "transaction", s),
        other => StoreError::Io(format!("{}: transaction: {other}", path.display())),
    }
}

fn table_err(path: &Path, e: redb::TableError) -> StoreError {
    match e {
        redb::TableError::Storage(s) => storage(path, "table", s),
        other => StoreError::Corrupt(format!("{}: table: {other}", path.display())),
    }
}

fn commit_err(path: &Path, e: redb::CommitError) -> StoreError {
    match e {
        redb::CommitError::Storage(s) => storage(path, "commit", s),
        other => StoreError::Io(format!("{}: commit: {other}", path.display())),
    }
}

impl Store for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Sibs>, StoreError> {
        if let Some(buffered) = self.data.get(key) {
            return Ok(buffered.clone());
        }
        let found = self.read("reading a key", |txn| {
            let table = txn.open_table(DATA).map_err(|e| table_err(&self.path, e))?;
            let found = table
                .get(key)
                .map_err(|e| storage(&self.path, "reading a key", e))?;
            Ok(found.map(|v| decode_sibs(key, v.value())))
        })?;
        match found {
            None => Ok(None),
            Some(Ok(sibs)) => Ok(Some(sibs)),
            Some(Err(why)) => {
                self.found_damaged(Table::Data, key, &why);
                Ok(None)
            }
        }
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
        self.read("scanning", |txn| {
            let table = txn.open_table(DATA).map_err(|e| table_err(&self.path, e))?;
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
                    None => match decode_sibs(key, v.value()) {
                        Ok(s) => visit(key, &s),
                        Err(why) => self.found_damaged(Table::Data, key, &why),
                    },
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
        let stored: Vec<(u64, Vec<u8>)> = self.read("reading hints", |txn| {
            let table = txn
                .open_table(HINTS)
                .map_err(|e| table_err(&self.path, e))?;
            let iter = table
                .iter()
                .map_err(|e| storage(&self.path, "reading hints", e))?;
            iter.map(|entry| {
                let (k, v) = entry.map_err(|e| storage(&self.path, "reading hints", e))?;
                Ok((k.value(), v.value().to_vec()))
            })
            .collect()
        })?;
        let mut all = BTreeMap::new();
        for (id, sealed) in stored {
            match record::open(Table::Hints, &id.to_be_bytes(), &sealed) {
                Ok(payload) => {
                    all.insert(id, payload.to_vec());
                }
                Err(why) => self.found_damaged(Table::Hints, &id.to_be_bytes(), &why),
            }
        }
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
        let found = self.read("reading metadata", |txn| {
            let table = txn.open_table(META).map_err(|e| table_err(&self.path, e))?;
            let found = table
                .get(name)
                .map_err(|e| storage(&self.path, "reading metadata", e))?;
            Ok(found.map(|v| v.value().to_vec()))
        })?;
        match found {
            Some(sealed) if name != FORMAT_KEY => Ok(Some(self.open_meta(name, &sealed)?.to_vec())),
            other => Ok(other),
        }
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

    /// `false` in buffered mode, and after an integrity repair at open that rolled back commits
    /// (flushed writes were lost, so the node must not trust its own counters).
    fn is_durable(&self) -> bool {
        self.durability == Durability::Durable && !self.lost_commits
    }

    fn has_unflushed_writes(&self) -> bool {
        self.pending() > 0
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        RedbStore::sync(self)
    }

    fn take_set_aside(&mut self) -> Result<Vec<Key>, StoreError> {
        // The open kept them in its metadata (see `verify`).
        crate::store::take_persisted_set_aside(self)
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // A graceful stop keeps buffered writes too; a crash is what loses them.
        if let Err(e) = self.commit(true) {
            tracing::error!(path = %self.path.display(), error = %e, "final commit failed");
        }
        if self.broken.get().is_some() {
            // redb's state is unknown after a panic, and its own drop may panic again: leak it
            // (the process is about to report the failure; the OS closes the file).
            std::mem::forget(self.db.take());
            return;
        }
        if let Some(db) = self.db.take() {
            if let Err(panic) = catch_panic(move || drop(db)) {
                tracing::error!(path = %self.path.display(), %panic, "closing the database failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
