//! A durable [`Store`] on [fjall](https://docs.rs/fjall), a log-structured merge tree: the
//! default engine of a new data directory (`--storage fjall`), measured against redb in
//! `bench/results/peers.md`.
//!
//! Why an LSM: a put to redb rewrites a copy of every B-tree page on its path at each commit (tens
//! of KiB per small commit); fjall appends the batch to its journal, one write and one fsync for
//! every write of the batch, and writes sorted tables later in the background, in bulk.
//!
//! Writes are buffered in memory (an *overlay* that reads see at once), as in the
//! [redb store](crate::redb_store). [`Store::start_flush`] moves the overlay into fjall as one
//! batch (memtable and journal buffer: no disk wait) and returns the fsync of the journal as a
//! [`SyncJob`], which the runtime's driver runs on another thread while it goes on handling
//! inputs; it releases the messages and replies of the batch only when the job is done (group
//! commit that overlaps the next batch with the current fsync). [`Store::flush`] does both in
//! place.
//!
//! [`Durability`] as for redb: `Durable` fsyncs every flush; `Buffered` writes each flush to the
//! OS (out of fjall's journal buffer: a killed process loses nothing flushed) and fsyncs at most
//! every `sync_interval` (in the background).
//!
//! Reads that miss the overlay go through a row cache of decoded sibling sets (32 MiB, first in
//! first out), written through at every commit: a hit skips the search of fjall's memtable
//! skiplist, the record's checksum and its decoding, which were a quarter of a get's CPU
//! (`bench/results/peers.md`). A damaged record is never cached, so damage is still found.
//!
//! # Checked storage
//!
//! - Every value is a checksummed record (the redb store's format, `redb_store::record`),
//!   verified on every read: a damaged data or hint record is treated as missing, logged,
//!   counted ([`FjallStore::damaged`]) and removed at the next commit; the replicas refill it. A
//!   damaged metadata value is an error. fjall checksums its journal batches and table blocks
//!   too.
//! - At open, every record is verified once, and fjall recovers its journal (a batch cut short
//!   by a crash was never acknowledged and is dropped).
//! - The first open writes [`MANIFEST_FILE`] beside the engine's folder [`FJALL_DIR`], naming the
//!   instance (also stored in the database). A missing or emptied folder, or another instance,
//!   is then refused with a message that names the path and what to do.
//! - A file fjall cannot read (truncated, damaged beyond its checksums) fails the open with
//!   [`StoreError::Corrupt`]; fjall's panics become errors as for redb.
//! - A write to the journal that fails (a full disk) stops the store: fjall takes no more
//!   writes until the node restarts, so no later batch is acknowledged behind a batch the
//!   journal holds only in part (fjall 2 ignored that error, and recovery then dropped every
//!   batch after the torn one: `node/tests/journal_errors.rs`).
//! - fjall's journal recovery drops an entry it cannot read with every batch after it, without
//!   an error, as it must for the torn tail of a crash; after damage that loses acknowledged
//!   writes. A durable mark beside the database ([`mark`](crate::on_disk::mark)) names the last numbered batch a
//!   finished fsync covered, and an open that recovers less is refused. The limit of any
//!   write-ahead log remains: damage that drops only the batches after the last numbered one
//!   (at most 16) cannot be told from a crash before them. Sorted tables, metadata and the
//!   instance are checked as above.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fjall::{Database, Keyspace, PersistMode};

use crate::on_disk::{catch_panic, damaged, decode_sibs, encode_sibs, hex};
use crate::redb_store::record::{self, Table};
use crate::redb_store::Durability;
use crate::store::{Store, StoreError, SyncJob};
use crate::types::{Key, Sibs};

mod cache;
mod errors;
mod manifest;
mod open;
mod unsynced;

use errors::fjall_err;

pub use manifest::MANIFEST_FILE;

/// The engine's folder inside the data directory.
pub const FJALL_DIR: &str = "fjall";
/// The lock file in the data directory: one process at a time.
pub const LOCK_FILE: &str = "LOCK";
/// The `meta` entry holding the instance (two u64: id and creation time, big-endian).
const INSTANCE_KEY: &str = "dynamo.instance";
/// Memtable (per keyspace; fjall 3 has no budget over all of them, and stalls writes at four
/// sealed memtables of a keyspace) and journal budget: small enough for three nodes on a small
/// machine. fjall 2's memtables were 16 MiB too, under a 64 MiB write buffer.
const MEMTABLE: u64 = 16 * 1024 * 1024;
const JOURNAL: u64 = 128 * 1024 * 1024;
const CACHE: u64 = 32 * 1024 * 1024;
/// The decoded rows kept in front of the data partition ([`cache::RowCache`]).
const ROW_CACHE: usize = 32 * 1024 * 1024;

/// What to do when a data directory cannot be used.
const REBUILD: &str = "if the files cannot be restored, remove the data directory (or move it \
                       aside) and restart the node: it starts empty and its replicas refill it";

/// A [`Store`] on fjall with group commit. See the [module docs](self).
pub struct FjallStore {
    db: Database,
    data: Keyspace,
    hints: Keyspace,
    meta: Keyspace,
    dir: PathBuf,
    durability: Durability,
    /// Writes not yet in fjall: `None` marks a removal.
    overlay: BTreeMap<Key, Option<Sibs>>,
    hint_overlay: BTreeMap<u64, Option<Vec<u8>>>,
    meta_overlay: BTreeMap<String, Option<Vec<u8>>>,
    /// Damaged records found by reads (through `&self`), removed at the next commit.
    damage: Mutex<Damage>,
    /// Decoded rows as fjall holds them, written through at every commit.
    rows: Mutex<cache::RowCache>,
    /// Whether batches reached fjall since the last fsync.
    unsynced: bool,
    /// Why an fsync run inline ([`Store::sync`]) failed: the writes it committed are not durable,
    /// and fjall refuses more. Every later flush and sync fails with it, so that no flush reports
    /// those writes durable (the driver would release their acknowledgements).
    sync_failed: Option<StoreError>,
    /// Which committed keys no finished fsync covers yet (durable mode only).
    uncovered: unsynced::Unsynced,
    last_sync: Instant,
    /// A background fsync of buffered mode is running.
    syncing: Arc<AtomicBool>,
    commits: u64,
    /// The number of the last batch that stored its number (see [`mark`](crate::on_disk::mark)).
    batch_number: u64,
    /// The durable mark (see [`mark`](crate::on_disk::mark)), written by sync jobs.
    mark: Arc<crate::on_disk::mark::Mark>,
    /// Held while the store or one of its sync jobs is alive (see [`LOCK_FILE`]): a job still
    /// running when the store is dropped keeps the directory locked until it has let go of the
    /// keyspace.
    lock: Arc<std::fs::File>,
}

/// A stored key and its record.
type Entry = (Vec<u8>, Vec<u8>);

#[derive(Debug, Default)]
struct Damage {
    count: u64,
    data: BTreeSet<Key>,
    /// Hint keys as stored: one of the wrong length names no id, and is removed as it is.
    hints: BTreeSet<Vec<u8>>,
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl FjallStore {
    /// The folder of the engine's files.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes buffered and not yet handed to fjall (removals of damaged records included).
    pub fn pending(&self) -> usize {
        let damage = self.damage();
        self.overlay.len()
            + self.hint_overlay.len()
            + self.meta_overlay.len()
            + damage.data.len()
            + damage.hints.len()
    }

    /// Batches committed since open.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Damaged records found since open (each logged, treated as missing and removed).
    pub fn damaged(&self) -> u64 {
        self.damage().count
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, cache::RowCache> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn damage(&self) -> std::sync::MutexGuard<'_, Damage> {
        self.damage.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn found_damaged(&self, table: Table, name: &[u8], why: &dyn std::fmt::Display) {
        let mut damage = self.damage();
        let new = match table {
            Table::Data => damage.data.insert(name.to_vec()),
            Table::Hints => damage.hints.insert(name.to_vec()),
            Table::Meta => false,
        };
        if new {
            damage.count += 1;
            tracing::error!(
                path = %self.dir.display(),
                table = table.name(),
                key = %hex(name),
                error = %why,
                "damaged record: treated as missing and removed; the node's replicas refill it \
                 (read repair, anti-entropy)"
            );
        }
    }

    /// Every entry of a keyspace, read under `catch_panic`.
    fn iter(&self, partition: &Keyspace, what: &str) -> Result<Vec<Entry>, StoreError> {
        catch_panic(|| {
            partition
                .iter()
                .map(|e| {
                    e.into_inner()
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .map_err(|e| fjall_err(&self.dir, what, e))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|p| self.panicked(what, &p))?
    }

    fn read_one(
        &self,
        partition: &Keyspace,
        key: &[u8],
        what: &str,
    ) -> Result<Option<fjall::Slice>, StoreError> {
        catch_panic(|| partition.get(key))
            .map_err(|p| self.panicked(what, &p))?
            .map_err(|e| fjall_err(&self.dir, what, e))
    }

    fn panicked(&self, what: &str, panic: &str) -> StoreError {
        damaged(
            &self.dir,
            format_args!("fjall failed while {what} ({panic})"),
            REBUILD,
        )
    }

    /// Moves the overlay into fjall as one batch (memtable and the journal's buffer): no disk
    /// wait. Returns whether anything was committed.
    fn commit(&mut self) -> Result<bool, StoreError> {
        if self.pending() == 0 {
            return Ok(false);
        }
        let (bad_data, bad_hints) = {
            let d = self.damage();
            (d.data.clone(), d.hints.clone())
        };
        let mut batch = self.db.batch();
        for key in &bad_data {
            batch.remove(&self.data, key.as_slice());
        }
        for key in &bad_hints {
            batch.remove(&self.hints, key.as_slice());
        }
        for (key, sibs) in &self.overlay {
            match sibs {
                Some(s) => batch.insert(&self.data, key.as_slice(), encode_sibs(key, s)?),
                None => batch.remove(&self.data, key.as_slice()),
            }
        }
        for (id, r) in &self.hint_overlay {
            let name = id.to_be_bytes();
            match r {
                Some(r) => batch.insert(&self.hints, name, record::seal(Table::Hints, &name, r)),
                None => batch.remove(&self.hints, name),
            }
        }
        for (name, v) in &self.meta_overlay {
            match v {
                Some(v) => batch.insert(
                    &self.meta,
                    name.as_bytes(),
                    record::seal(Table::Meta, name.as_bytes(), v),
                ),
                None => batch.remove(&self.meta, name.as_bytes()),
            }
        }
        // Every batch stores its number, for the durable mark: a journal that lost any of its
        // durable batches, the last one included, recovers a lower number than the mark.
        let number = self.batch_number + 1;
        batch.insert(
            &self.meta,
            crate::on_disk::mark::META_SEQ.as_bytes(),
            crate::on_disk::mark::seal(number),
        );
        catch_panic(|| batch.commit())
            .map_err(|p| self.panicked("committing", &p))?
            .map_err(|e| fjall_err(&self.dir, "committing", e))?;
        self.batch_number = number;
        if self.durability == Durability::Durable {
            let hints = !self.hint_overlay.is_empty() || !bad_hints.is_empty();
            self.uncovered
                .committed(self.overlay.keys().chain(&bad_data), hints);
        }
        {
            let overlay = std::mem::take(&mut self.overlay);
            let mut rows = self.rows();
            for key in &bad_data {
                rows.forget(key);
            }
            for (key, row) in overlay {
                rows.insert(&key, row);
            }
        }
        self.hint_overlay.clear();
        self.meta_overlay.clear();
        {
            let mut d = self.damage();
            d.data.retain(|k| !bad_data.contains(k));
            d.hints.retain(|id| !bad_hints.contains(id));
        }
        self.commits += 1;
        self.unsynced = true;
        Ok(true)
    }

    /// Fails once an inline fsync has failed (see `sync_failed`).
    fn check_sync(&self) -> Result<(), StoreError> {
        match &self.sync_failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The fsync of the journal, as a job for another thread.
    fn sync_job(&mut self) -> SyncJob {
        let db = self.db.clone();
        let lock = self.lock.clone();
        let dir = self.dir.clone();
        let covered = self.uncovered.covered_by();
        // Every batch committed so far, so the last numbered one too.
        let number = self.batch_number;
        let durable_mark = self.mark.clone();
        self.unsynced = false;
        self.last_sync = Instant::now();
        Box::new(move || {
            let r = db
                .persist(PersistMode::SyncData)
                .map_err(|e| fjall_err(&dir, "syncing the journal", e));
            if r.is_ok() {
                covered();
                durable_mark.write(number);
            }
            // The database first, then the lock.
            drop(db);
            drop(lock);
            r
        })
    }

    /// Commits and, in buffered mode, starts a background fsync when the interval is over.
    fn commit_buffered(&mut self) -> Result<(), StoreError> {
        let committed = self.commit()?;
        let Durability::Buffered { sync_interval } = self.durability else {
            return Ok(());
        };
        if committed {
            // Out of fjall's journal buffer, into the OS: a killed process loses nothing
            // flushed, only a crash of the machine within the interval may.
            catch_panic(|| self.db.persist(PersistMode::Buffer))
                .map_err(|p| self.panicked("writing the journal", &p))?
                .map_err(|e| fjall_err(&self.dir, "writing the journal", e))?;
        }
        if self.unsynced
            && self.last_sync.elapsed() >= sync_interval
            && !self.syncing.swap(true, Ordering::AcqRel)
        {
            let job = self.sync_job();
            let busy = self.syncing.clone();
            std::thread::spawn(move || {
                if let Err(e) = job() {
                    tracing::error!(error = %e, "background sync failed");
                }
                busy.store(false, Ordering::Release);
            });
        }
        Ok(())
    }
}

impl Store for FjallStore {
    fn get(&self, key: &[u8]) -> Result<Option<Sibs>, StoreError> {
        if let Some(buffered) = self.overlay.get(key) {
            return Ok(buffered.clone());
        }
        if let Some(row) = self.rows().get(key) {
            return Ok(row);
        }
        let Some(bytes) = self.read_one(&self.data, key, "reading a key")? else {
            self.rows().insert(key, None);
            return Ok(None);
        };
        match decode_sibs(key, &bytes) {
            Ok(s) => {
                self.rows().insert(key, Some(s.clone()));
                Ok(Some(s))
            }
            Err(why) => {
                self.found_damaged(Table::Data, key, &why);
                Ok(None)
            }
        }
    }

    fn put(&mut self, key: &[u8], siblings: &Sibs) -> Result<(), StoreError> {
        self.overlay.insert(key.to_vec(), Some(siblings.clone()));
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.overlay.insert(key.to_vec(), None);
        Ok(())
    }

    fn scan(&self, visit: &mut dyn FnMut(&[u8], &Sibs)) -> Result<(), StoreError> {
        let stored = self.iter(&self.data, "scanning")?;
        let mut overlay = self.overlay.iter().peekable();
        for (key, bytes) in &stored {
            while let Some((ok, ov)) = overlay.next_if(|(ok, _)| ok.as_slice() < key.as_slice()) {
                if let Some(s) = ov {
                    visit(ok, s);
                }
            }
            match overlay.next_if(|(ok, _)| ok.as_slice() == key.as_slice()) {
                Some((_, Some(s))) => visit(key, s),
                Some((_, None)) => {}
                None => match decode_sibs(key, bytes) {
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
    }

    fn put_hint(&mut self, id: u64, record: &[u8]) -> Result<(), StoreError> {
        self.hint_overlay.insert(id, Some(record.to_vec()));
        Ok(())
    }

    fn remove_hint(&mut self, id: u64) -> Result<(), StoreError> {
        self.hint_overlay.insert(id, None);
        Ok(())
    }

    fn hints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut all = BTreeMap::new();
        for (k, sealed) in self.iter(&self.hints, "reading hints")? {
            let Ok(name) = <[u8; 8]>::try_from(k.as_slice()) else {
                self.found_damaged(Table::Hints, &k, &"a hint id of the wrong length");
                continue;
            };
            match record::open(Table::Hints, &name, &sealed) {
                Ok(payload) => {
                    all.insert(u64::from_be_bytes(name), payload.to_vec());
                }
                Err(why) => self.found_damaged(Table::Hints, &name, &why),
            }
        }
        for (id, r) in &self.hint_overlay {
            match r {
                Some(r) => all.insert(*id, r.clone()),
                None => all.remove(id),
            };
        }
        Ok(all.into_iter().collect())
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(buffered) = self.meta_overlay.get(name) {
            return Ok(buffered.clone());
        }
        let Some(sealed) = self.read_one(&self.meta, name.as_bytes(), "reading metadata")? else {
            return Ok(None);
        };
        record::open(Table::Meta, name.as_bytes(), &sealed)
            .map(|p| Some(p.to_vec()))
            .map_err(|e| {
                StoreError::Corrupt(format!(
                    "{}: metadata entry {name:?} is damaged ({e}). The node's identity, epochs \
                     and ring live there and no replica holds a copy: {REBUILD}",
                    self.dir.display()
                ))
            })
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta_overlay
            .insert(name.to_string(), Some(value.to_vec()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        match self.start_flush()? {
            Some(job) => job(),
            None => Ok(()),
        }
    }

    fn start_flush(&mut self) -> Result<Option<SyncJob>, StoreError> {
        self.check_sync()?;
        match self.durability {
            Durability::Durable => {
                self.commit()?;
                Ok(self.unsynced.then(|| self.sync_job()))
            }
            Durability::Buffered { .. } => {
                self.commit_buffered()?;
                Ok(None)
            }
        }
    }

    fn is_durable(&self) -> bool {
        self.durability == Durability::Durable
    }

    fn has_unflushed_writes(&self) -> bool {
        self.pending() > 0
    }

    fn has_unsynced_write(&self, key: &[u8]) -> bool {
        self.durability != Durability::Durable
            || self.overlay.contains_key(key)
            || !self.hint_overlay.is_empty()
            || self.uncovered.contains(key)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.check_sync()?;
        self.commit()?;
        let r = self.sync_job()();
        if let Err(e) = &r {
            self.unsynced = true;
            self.sync_failed = Some(e.clone());
        }
        r
    }

    fn take_set_aside(&mut self) -> Result<Vec<Key>, StoreError> {
        // The open kept them in its metadata (see `verify`).
        crate::store::take_persisted_set_aside(self)
    }
}

impl Drop for FjallStore {
    fn drop(&mut self) {
        // A graceful stop keeps buffered writes too; a crash is what loses them.
        if let Err(e) = self.sync() {
            tracing::error!(path = %self.dir.display(), error = %e, "final sync failed");
        }
    }
}

#[cfg(test)]
mod tests;
