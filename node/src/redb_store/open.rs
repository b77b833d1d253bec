//! Opening a redb store: creating or checking the database and its manifest, upgrading format 1,
//! and verifying every record and page.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use redb::{Database, ReadableTable};

use super::record::{self, Table};
use super::{
    commit_err, storage, table_err, txn_err, Damage, Durability, RedbStore, DATA, DB_FILE, FORMAT,
    FORMAT_KEY, FORMAT_V1, HINTS, INSTANCE_KEY, MANIFEST_FILE, META, SEQ_KEY, UPGRADE_CHUNK,
};
use crate::manifest::Manifest;
use crate::on_disk::{catch_panic, damaged, io, mark, now_ms};
use crate::store::{Store, StoreError};

/// The redb store's manifest (see [`crate::manifest`]): two lines of TOML.
const MANIFEST: crate::manifest::Kind = crate::manifest::Kind {
    file: MANIFEST_FILE,
    engine: None,
    database: DB_FILE,
    header: "# Written when dynamo.redb was created. While this file exists, a node refuses to start on\n\
             # a missing, empty or different dynamo.redb, so that lost data is never mistaken for a\n\
             # new node. To rebuild the node from its replicas, remove the whole data directory.\n",
};

/// What to do when a data directory cannot be used: said once, in every such error.
pub(super) const REBUILD: &str =
    "if the file cannot be restored, remove the data directory (or move it \
                       aside) and restart the node: it starts empty and its replicas refill it";

impl RedbStore {
    /// Opens (or creates) the store in `dir`, creating the directory if needed.
    ///
    /// Fails with [`StoreError::Corrupt`] if the file is not a redb database of this format, is
    /// damaged beyond what redb can repair (truncated, for one), is missing, empty or another
    /// database while the directory's [`MANIFEST_FILE`] says it held one, or a metadata value is
    /// damaged; and with [`StoreError::Io`] if the directory cannot be created, read or locked
    /// (another process has it open). Damaged data and hint records do not fail the open: they
    /// are counted, logged and removed (see the [module docs](crate::redb_store)).
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
        let manifest = Manifest::read(&MANIFEST, dir)?;
        let len = match std::fs::metadata(&path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&format!("cannot read {}", path.display()), e)),
        };
        if let Some(m) = &manifest {
            let what = match len {
                None => Some("is missing"),
                Some(0) => Some("is empty (0 bytes)"),
                Some(_) => None,
            };
            if let Some(what) = what {
                return Err(StoreError::Corrupt(format!(
                    "{} {what}, but {} says this directory holds a database ({}): its data is \
                     gone, and starting empty would silently drop every write this node \
                     acknowledged. Restore the file; {REBUILD}",
                    path.display(),
                    Manifest::path(&MANIFEST, dir).display(),
                    m.describe()
                )));
            }
        }
        let (mark, marked) = mark::open(dir, mark::REDB_MARK_FILE)?;
        let (db, rolled_back) = Self::open_db(&path, durability)?;
        let mut store = RedbStore {
            db: Some(db),
            path,
            durability,
            data: BTreeMap::new(),
            hints: BTreeMap::new(),
            meta: BTreeMap::new(),
            damage: Mutex::new(Damage::default()),
            broken: OnceLock::new(),
            lost_commits: rolled_back,
            seq: 0,
            mark,
            unsynced: false,
            last_sync: Instant::now(),
            commits: 0,
        };
        let (instance, created) = store.init(manifest.as_ref())?;
        // Every commit the mark says was fsynced must be here, before the records' check commits
        // anything (`init` may have committed a format upgrade or a new instance, which changes
        // no commit number; a refused store commits nothing more on drop, and the mark never
        // goes back), and after the integrity check, which may roll commits back.
        let marked_commits = |store: &RedbStore| {
            mark::check(
                &store.path,
                mark::REDB_MARK_FILE,
                store.seq,
                marked,
                "redb fell back past commits that were fsynced (the newest ones damaged), or \
                 this is an older copy of the database file",
            )
        };
        marked_commits(&store)?;
        // Records first: removing a damaged record rewrites its page, so that redb's check
        // below does not roll back a whole commit (or give up) over one bad value.
        // Records of a format this version cannot read are not damage: refused, not removed.
        crate::core::check_format(&store)?;
        store.verify_records()?;
        store.check_integrity()?;
        marked_commits(&store)?;
        store.verify_meta()?;
        if manifest.is_none() {
            Manifest::of(instance, created).write(&MANIFEST, dir)?;
            tracing::info!(path = %Manifest::path(&MANIFEST, dir).display(), "wrote the data directory's manifest");
        }
        Ok(store)
    }

    /// Opens the file with redb, with redb's panics caught. Logs a recovery after a crash, and
    /// says whether it rolled back a commit.
    fn open_db(path: &Path, durability: Durability) -> Result<(Database, bool), StoreError> {
        let seen = Arc::new(AtomicBool::new(false));
        let rolled_back = Arc::new(AtomicBool::new(false));
        let rolling = rolled_back.clone();
        let shown = path.display().to_string();
        let mut builder = Database::builder();
        let lost = match durability {
            Durability::Durable => "every acknowledged write was fsynced and is kept",
            Durability::Buffered { .. } => {
                "flushes are buffered: writes after the last fsync may be lost (the replicas \
                 refill them; actor epochs used before are retired)"
            }
        };
        builder.set_repair_callback(move |session| {
            if !seen.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    path = %shown,
                    "the database was not shut down cleanly: redb is checking it and recovering \
                     its last complete commit; {lost}"
                );
            }
            // redb reports progress 0.3 only when the newest commit fails its checksums and it
            // falls back to the one before (`Database::do_repair`; pinned by a test).
            if (session.progress() - 0.3).abs() < 1e-6 && !rolling.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    path = %shown,
                    "the newest commit before the crash is incomplete or damaged: redb rolls the \
                     database back to the commit before it (writes of a commit that never \
                     finished were never acknowledged; with buffered flushes, acknowledged \
                     writes of the last sync interval are lost and the replicas refill them); \
                     actor epochs used before are retired"
                );
            }
        });
        let opened = catch_panic(|| builder.create(path)).map_err(|panic| {
            damaged(
                path,
                format_args!(
                    "cannot open the database, the file is damaged or truncated (redb: {panic})"
                ),
                REBUILD,
            )
        })?;
        let db = opened.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Io(format!(
                "{}: the database is already open (is another node using this data directory?)",
                path.display()
            )),
            redb::DatabaseError::Storage(redb::StorageError::Io(e))
                if e.kind() != std::io::ErrorKind::UnexpectedEof =>
            {
                io(&format!("{}: cannot open the database", path.display()), e)
            }
            // A read past the end of the file: it is shorter than redb's structures say.
            other => damaged(
                path,
                format_args!(
                    "cannot open the database, the file is damaged, truncated or not a database \
                     of this program (redb: {other})"
                ),
                REBUILD,
            ),
        })?;
        Ok((db, rolled_back.load(Ordering::Relaxed)))
    }

    /// Creates the tables of a new database, or checks (and upgrades) the format of an existing
    /// one; checks the instance against the manifest, or creates it. Returns the instance.
    fn init(&mut self, manifest: Option<&Manifest>) -> Result<(u64, u64), StoreError> {
        let path = self.path.clone();
        let s = |context: &'static str| {
            let path = &path;
            move |e| storage(path, context, e)
        };
        let (instance, seq, changed) = self.guard("opening", |db| {
            let mut txn = db.begin_write().map_err(|e| txn_err(&self.path, e))?;
            txn.set_durability(redb::Durability::Immediate);
            let mut changed = false;
            let (instance, seq) = {
                let _ = txn.open_table(DATA).map_err(|e| table_err(&self.path, e))?;
                let _ = txn
                    .open_table(HINTS)
                    .map_err(|e| table_err(&self.path, e))?;
                let mut meta = txn.open_table(META).map_err(|e| table_err(&self.path, e))?;
                let format = meta
                    .get(FORMAT_KEY)
                    .map_err(s("reading the format"))?
                    .map(|v| v.value().to_vec());
                match format.as_deref() {
                    Some(FORMAT) => {}
                    Some(FORMAT_V1) => {
                        drop(meta);
                        self.upgrade_v1(&txn)?;
                        meta = txn.open_table(META).map_err(|e| table_err(&self.path, e))?;
                        meta.insert(FORMAT_KEY, FORMAT)
                            .map_err(s("writing the format"))?;
                        changed = true;
                    }
                    Some(f) => {
                        return Err(StoreError::UnknownVersion {
                            what: self.path.display().to_string(),
                            found: format!(
                                "{:?}",
                                crate::runtime::frame::excerpt(&String::from_utf8_lossy(f))
                            ),
                            supported: format!(
                                "{:?} and {:?}",
                                String::from_utf8_lossy(FORMAT_V1),
                                String::from_utf8_lossy(FORMAT)
                            ),
                            advice: "it was written by a newer version: run that version on it"
                                .into(),
                        })
                    }
                    None => {
                        meta.insert(FORMAT_KEY, FORMAT)
                            .map_err(s("writing the format"))?;
                        changed = true;
                    }
                }
                let stored = meta
                    .get(INSTANCE_KEY)
                    .map_err(s("reading the instance"))?
                    .map(|v| v.value().to_vec());
                let stored = match stored {
                    Some(bytes) => Some(self.meta_u64s(INSTANCE_KEY, &bytes)?),
                    None => None,
                };
                let instance = match (stored, manifest) {
                    (Some((id, created)), Some(m)) => {
                        if Manifest::of(id, created).instance != m.instance {
                            return Err(self.not_this_database(m, &format!("instance {id:016x}")));
                        }
                        (id, created)
                    }
                    (None, Some(m)) => return Err(self.not_this_database(m, "no instance")),
                    (Some(found), None) => found,
                    (None, None) => {
                        let fresh = (rand::random::<u64>(), now_ms());
                        let mut bytes = fresh.0.to_be_bytes().to_vec();
                        bytes.extend_from_slice(&fresh.1.to_be_bytes());
                        let sealed = record::seal(Table::Meta, INSTANCE_KEY.as_bytes(), &bytes);
                        meta.insert(INSTANCE_KEY, sealed.as_slice())
                            .map_err(s("writing the instance"))?;
                        changed = true;
                        fresh
                    }
                };
                let seq = match meta.get(SEQ_KEY).map_err(s("reading the commit count"))? {
                    Some(v) => self.meta_u64s(SEQ_KEY, v.value())?.0,
                    None => 0,
                };
                (instance, seq)
            };
            if changed {
                txn.commit().map_err(|e| commit_err(&self.path, e))?;
            } else {
                txn.abort().map_err(s("ending the opening transaction"))?;
            }
            Ok((instance, seq, changed))
        })?;
        self.seq = seq;
        if changed {
            self.commits += 1;
        }
        Ok(instance)
    }

    /// Rewrites every value of a `dynamo-redb-1` database as a checksummed record, in the
    /// transaction `txn` (a crash leaves the old format whole). A damaged value of the old
    /// format cannot be told from a good one: it gets a checksum like the others (and fails to
    /// decode later, if its damage shows there).
    fn upgrade_v1(&self, txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        tracing::info!(path = %self.path.display(), "upgrading the database to checksummed records");
        let path = &self.path;
        let s = |e| storage(path, "upgrading the format", e);
        let mut data = txn.open_table(DATA).map_err(|e| table_err(path, e))?;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let chunk: Vec<(Vec<u8>, Vec<u8>)> = {
                let range = match &after {
                    None => data.range::<&[u8]>(..),
                    Some(k) => {
                        data.range::<&[u8]>((Bound::Excluded(k.as_slice()), Bound::Unbounded))
                    }
                }
                .map_err(s)?;
                range
                    .take(UPGRADE_CHUNK)
                    .map(|e| {
                        let (k, v) = e.map_err(s)?;
                        Ok((k.value().to_vec(), v.value().to_vec()))
                    })
                    .collect::<Result<_, StoreError>>()?
            };
            let Some((last, _)) = chunk.last() else {
                break;
            };
            after = Some(last.clone());
            for (k, v) in &chunk {
                data.insert(k.as_slice(), record::seal(Table::Data, k, v).as_slice())
                    .map_err(s)?;
            }
        }
        let mut hints = txn.open_table(HINTS).map_err(|e| table_err(path, e))?;
        let all: Vec<(u64, Vec<u8>)> = hints
            .iter()
            .map_err(s)?
            .map(|e| {
                let (k, v) = e.map_err(s)?;
                Ok((k.value(), v.value().to_vec()))
            })
            .collect::<Result<_, StoreError>>()?;
        for (id, v) in all {
            let sealed = record::seal(Table::Hints, &id.to_be_bytes(), &v);
            hints.insert(id, sealed.as_slice()).map_err(s)?;
        }
        let mut meta = txn.open_table(META).map_err(|e| table_err(path, e))?;
        let all: Vec<(String, Vec<u8>)> = meta
            .iter()
            .map_err(s)?
            .map(|e| {
                let (k, v) = e.map_err(s)?;
                Ok((k.value().to_string(), v.value().to_vec()))
            })
            .collect::<Result<_, StoreError>>()?;
        for (name, v) in all.into_iter().filter(|(n, _)| n != FORMAT_KEY) {
            let sealed = record::seal(Table::Meta, name.as_bytes(), &v);
            meta.insert(name.as_str(), sealed.as_slice()).map_err(s)?;
        }
        Ok(())
    }

    fn not_this_database(&self, manifest: &Manifest, found: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "{} is not the database this directory was created with: the manifest beside it \
             names {}, the database holds {found} (was the file replaced?). Put the right file \
             back; {REBUILD}",
            self.path.display(),
            manifest.describe()
        ))
    }

    /// Reads a metadata record of one or two u64 (the second 0 when absent).
    fn meta_u64s(&self, name: &str, bytes: &[u8]) -> Result<(u64, u64), StoreError> {
        let payload = self.open_meta(name, bytes)?;
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(
                payload.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        match payload.len() {
            8 => Ok((word(0).unwrap_or(0), 0)),
            16 => Ok((word(0).unwrap_or(0), word(1).unwrap_or(0))),
            n => Err(StoreError::Corrupt(format!(
                "{}: metadata entry {name:?} holds {n} bytes, expected 8 or 16",
                self.path.display()
            ))),
        }
    }

    pub(super) fn open_meta<'a>(
        &self,
        name: &str,
        bytes: &'a [u8],
    ) -> Result<&'a [u8], StoreError> {
        record::open(Table::Meta, name.as_bytes(), bytes).map_err(|e| {
            StoreError::Corrupt(format!(
                "{}: metadata entry {name:?} is damaged ({e}). The node's identity, epochs and \
                 ring live in this table and no replica holds a copy: {REBUILD}",
                self.path.display()
            ))
        })
    }

    /// Verifies every data and hint record once, so that damage shows (and is removed) at start
    /// rather than mid-request: damaged records are counted, logged and removed.
    fn verify_records(&mut self) -> Result<(), StoreError> {
        self.scan(&mut |_, _| {})?;
        let set_aside: Vec<crate::types::Key> = self.damage().data.iter().cloned().collect();
        if !set_aside.is_empty() {
            // Kept in the commit that removes the records, until the node takes them (see
            // `Store::take_set_aside`).
            crate::store::persist_set_aside(self, &set_aside)?;
        }
        self.hints()?;
        if self.pending() > 0 {
            self.commit(true)?;
        }
        Ok(())
    }

    /// Verifies every metadata value: a damaged one fails the open.
    fn verify_meta(&self) -> Result<(), StoreError> {
        let path = &self.path;
        let entries: Vec<(String, Vec<u8>)> = self.read("verifying metadata", |txn| {
            let table = txn.open_table(META).map_err(|e| table_err(path, e))?;
            let iter = table
                .iter()
                .map_err(|e| storage(path, "verifying metadata", e))?;
            iter.map(|e| {
                let (k, v) = e.map_err(|e| storage(path, "verifying metadata", e))?;
                Ok((k.value().to_string(), v.value().to_vec()))
            })
            .collect()
        })?;
        for (name, bytes) in entries.iter().filter(|(n, _)| n != FORMAT_KEY) {
            self.open_meta(name, bytes)?;
        }
        Ok(())
    }

    /// Runs redb's integrity check (every page against its checksum; the allocator state
    /// rebuilt). A repair that rolled back commits is an error in the log, and makes the store
    /// answer [`Store::is_durable`] `false` for this run.
    fn check_integrity(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let before = self.seq;
        let clean = self.guard_mut("checking integrity", |db| {
            db.check_integrity().map_err(|e| {
                damaged(
                    &path,
                    format_args!(
                        "redb's integrity check failed: {e}. The damage is in the file's \
                         structure, not in one record"
                    ),
                    REBUILD,
                )
            })
        })?;
        if clean {
            return Ok(());
        }
        let after = self.read_seq()?;
        if after < before {
            tracing::error!(
                path = %self.path.display(),
                lost = before - after,
                "redb's integrity check found damage and rolled the database back to an earlier \
                 commit: the writes of the lost commits are gone from this node (its replicas \
                 refill them); actor epochs used before are retired"
            );
            self.lost_commits = true;
            self.seq = after;
            // The rollback may have brought back records removed as damaged.
            self.verify_records()?;
        } else {
            tracing::warn!(
                path = %self.path.display(),
                "redb's integrity check repaired the database's allocation state; no commit lost"
            );
        }
        Ok(())
    }

    fn read_seq(&self) -> Result<u64, StoreError> {
        match self.get_meta(SEQ_KEY)? {
            Some(bytes) if bytes.len() == 8 => {
                Ok(u64::from_be_bytes(bytes.try_into().unwrap_or([0; 8])))
            }
            Some(bytes) => Err(StoreError::Corrupt(format!(
                "{}: metadata entry {SEQ_KEY:?} holds {} bytes, expected 8",
                self.path.display(),
                bytes.len()
            ))),
            None => Ok(0),
        }
    }
}
