//! Opening a [`FjallStore`]: the directory, its lock and manifest, fjall's keyspace and
//! partitions, and the check of every record.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fjall::{Database, KeyspaceCreateOptions};

use crate::manifest::Manifest;
use crate::on_disk::{catch_panic, damaged, io, mark, now_ms};
use crate::redb_store::Durability;
use crate::store::{Store, StoreError};

use super::errors::{fjall_err, lock};
use super::{
    cache, manifest, unsynced, Damage, FjallStore, CACHE, FJALL_DIR, INSTANCE_KEY, JOURNAL,
    MEMTABLE, REBUILD, ROW_CACHE,
};

impl FjallStore {
    /// Opens (or creates) the store in `dir`, creating the directory if needed.
    ///
    /// Fails with [`StoreError::Corrupt`] if fjall cannot read its files (truncated, damaged),
    /// if the engine's folder is missing or empty or holds another instance while the
    /// directory's [`MANIFEST_FILE`] says it held one, or a metadata value is damaged; and with
    /// [`StoreError::Io`] if the directory cannot be created or read, or is in use.
    pub fn open(dir: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| {
            io(
                &format!("cannot create data directory {}", dir.display()),
                e,
            )
        })?;
        let engine = dir.join(FJALL_DIR);
        let lock = lock(&dir)?;
        let manifest = Manifest::read(&manifest::KIND, &dir)?;
        if let Some(m) = &manifest {
            let empty = std::fs::read_dir(&engine).map_or(true, |mut d| d.next().is_none());
            if empty {
                return Err(StoreError::Corrupt(format!(
                    "{} is missing or empty, but {} says this directory holds a database ({}): \
                     its data is gone, and starting empty would silently drop every write this \
                     node acknowledged. Restore it; {REBUILD}",
                    engine.display(),
                    Manifest::path(&manifest::KIND, &dir).display(),
                    m.describe()
                )));
            }
            keyspaces_marked(&engine)?;
        }
        let opened = catch_panic(|| {
            Database::builder(&engine)
                .manual_journal_persist(true)
                // Two, as fjall 2 had one flusher and one compactor: a flush need not wait for
                // a compaction to end.
                .worker_threads(2)
                .max_journaling_size(JOURNAL)
                .cache_size(CACHE)
                .open()
        })
        .map_err(|panic| {
            damaged(
                &engine,
                format_args!(
                    "cannot open the database, the files are damaged or truncated (fjall: {panic})"
                ),
                REBUILD,
            )
        })?;
        let db = opened.map_err(|e| fjall_err(&engine, "cannot open the database", e))?;
        let partition = |name: &str| {
            catch_panic(|| {
                db.keyspace(name, || {
                    KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE)
                })
            })
            .map_err(|p| StoreError::Corrupt(format!("{}: {p}", engine.display())))?
            .map_err(|e| fjall_err(&engine, "cannot open a keyspace", e))
        };
        // fjall makes a keyspace whose folder is gone anew, empty: in a database that held one,
        // that is every key of it dropped without a word.
        if let Some(missing) = ["data", "hints", "meta"]
            .into_iter()
            .find(|name| manifest.is_some() && !db.keyspace_exists(name))
        {
            return Err(StoreError::Corrupt(format!(
                "{}: the keyspace {missing:?} is missing (its folder under {KEYSPACES} is gone): \
                 opening it empty would silently drop every write it held. Restore it; {REBUILD}",
                engine.display()
            )));
        }
        let (data, hints, meta) = (partition("data")?, partition("hints")?, partition("meta")?);
        // The journal must hold every batch the mark says was durable. Checked before the store
        // exists: a store dropped after a refusal would sync, and write its lower number.
        let (mark, marked) = mark::open(&dir, mark::MARK_FILE)?;
        let recovered = catch_panic(|| meta.get(mark::META_SEQ.as_bytes()))
            .map_err(|p| damaged(&engine, format_args!("fjall failed ({p})"), REBUILD))?
            .map_err(|e| fjall_err(&engine, "reading metadata", e))?
            .map(|sealed| {
                mark::unseal(&sealed).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "{}: metadata entry {:?} is damaged. {REBUILD}",
                        engine.display(),
                        mark::META_SEQ
                    ))
                })
            })
            .transpose()?
            .unwrap_or(0);
        mark::check(
            &engine,
            mark::MARK_FILE,
            recovered,
            marked,
            "fjall dropped durable batches it could not read (a damaged or cut journal)",
        )?;
        let mut store = FjallStore {
            db,
            data,
            hints,
            meta,
            dir: engine,
            durability,
            overlay: BTreeMap::new(),
            hint_overlay: BTreeMap::new(),
            meta_overlay: BTreeMap::new(),
            damage: Mutex::new(Damage::default()),
            rows: Mutex::new(cache::RowCache::new(ROW_CACHE)),
            unsynced: false,
            sync_failed: None,
            uncovered: unsynced::Unsynced::new(),
            last_sync: Instant::now(),
            syncing: Arc::new(AtomicBool::new(false)),
            commits: 0,
            batch_number: recovered,
            mark: Arc::new(mark),
            lock: Arc::new(lock),
        };
        let instance = store.instance(manifest.as_ref(), &dir)?;
        store.verify()?;
        if manifest.is_none() {
            Manifest::of(instance.0, instance.1).write(&manifest::KIND, &dir)?;
        }
        Ok(store)
    }

    /// Checks the stored instance against the manifest (or creates it).
    fn instance(
        &mut self,
        manifest: Option<&Manifest>,
        dir: &Path,
    ) -> Result<(u64, u64), StoreError> {
        let stored = match self.get_meta(INSTANCE_KEY)? {
            Some(b) if b.len() == 16 => {
                let word = |i: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&b[i * 8..i * 8 + 8]);
                    u64::from_be_bytes(w)
                };
                Some((word(0), word(1)))
            }
            Some(b) => {
                return Err(StoreError::Corrupt(format!(
                    "{}: metadata entry {INSTANCE_KEY:?} holds {} bytes, expected 16",
                    self.dir.display(),
                    b.len()
                )))
            }
            None => None,
        };
        match (stored, manifest) {
            (Some(found), Some(m)) if Manifest::of(found.0, found.1).instance == m.instance => {
                Ok(found)
            }
            (found, Some(m)) => Err(StoreError::Corrupt(format!(
                "{} is not the database this directory was created with: {} names {}, the \
                 database holds {} (was it replaced?). Put the right files back; {REBUILD}",
                self.dir.display(),
                Manifest::path(&manifest::KIND, dir).display(),
                m.describe(),
                found.map_or("no instance".into(), |(id, _)| format!(
                    "instance {id:016x}"
                ))
            ))),
            (Some(found), None) => Ok(found),
            (None, None) => {
                let fresh = (rand::random::<u64>(), now_ms());
                let mut bytes = fresh.0.to_be_bytes().to_vec();
                bytes.extend_from_slice(&fresh.1.to_be_bytes());
                self.put_meta(INSTANCE_KEY, &bytes)?;
                self.sync()?;
                Ok(fresh)
            }
        }
    }

    /// Verifies every record once at open: damaged data and hints are counted and removed,
    /// damaged metadata fails the open.
    fn verify(&mut self) -> Result<(), StoreError> {
        // Records of a format this version cannot read are not damage: refused, not removed.
        crate::core::check_format(self)?;
        self.scan(&mut |_, _| {})?;
        let set_aside: Vec<crate::types::Key> = self.damage().data.iter().cloned().collect();
        if !set_aside.is_empty() {
            // Kept in the commit that removes the records, until the node takes them (see
            // `Store::take_set_aside`).
            crate::store::persist_set_aside(self, &set_aside)?;
        }
        self.hints()?;
        let names: Vec<String> = self
            .iter(&self.meta, "verifying metadata")?
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
            .collect();
        for name in names {
            self.get_meta(&name)?;
        }
        if self.pending() > 0 {
            self.sync()?;
        }
        Ok(())
    }
}

/// fjall's folder of keyspaces, one folder each (by internal id; 0 is fjall's own).
const KEYSPACES: &str = "keyspaces";

/// Every keyspace folder of a database that was opened before holds its version marker. fjall
/// takes a folder without one for a keyspace whose creation was cut short and deletes it at open,
/// with every key in it; but this store creates its keyspaces at its first open, before its
/// manifest exists.
fn keyspaces_marked(engine: &Path) -> Result<(), StoreError> {
    let folder = engine.join(KEYSPACES);
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&format!("cannot read {}", folder.display()), e)),
    };
    for entry in entries {
        let path = entry
            .map_err(|e| io(&format!("cannot read {}", folder.display()), e))?
            .path();
        if !path.is_dir() || path.file_name().is_some_and(|n| n == "0") {
            continue;
        }
        if !path.join(CURRENT).exists() {
            return Err(StoreError::Corrupt(format!(
                "{}: the keyspace folder {} lacks its version marker ({CURRENT}); fjall would \
                 delete it, and every key it holds, at open. Restore it; {REBUILD}",
                engine.display(),
                path.display()
            )));
        }
    }
    Ok(())
}

/// The file naming a keyspace's current version, in its folder.
const CURRENT: &str = "current";
