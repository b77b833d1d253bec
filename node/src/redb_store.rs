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

pub(crate) mod record;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, TableDefinition};

use crate::manifest::Manifest;

use crate::store::{Store, StoreError};
use crate::types::{Key, Sibs};
use record::{RecordError, Table};

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

pub(crate) fn io(context: &str, e: impl std::fmt::Display) -> StoreError {
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

/// Why a stored sibling set could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Damaged {
    /// The record failed verification.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The checksum holds but the payload does not decode (written by an incompatible version).
    #[error("the payload cannot be decoded: {0}")]
    Decode(String),
}

/// Decodes the record stored under `key` in `data`: the stored-record decoder that reads trust.
/// Any bytes at all give a value or an error, never a panic (fuzzed in the tests).
pub(crate) fn decode_sibs(key: &[u8], bytes: &[u8]) -> Result<Sibs, Damaged> {
    let payload = record::open(Table::Data, key, bytes)?;
    crate::types::decode_msgpack(payload).map_err(|e| Damaged::Decode(e.to_string()))
}

pub(crate) fn encode_sibs(key: &[u8], sibs: &Sibs) -> Result<Vec<u8>, StoreError> {
    let payload = rmp_serde::to_vec(sibs).map_err(|e| io("encoding a sibling set", e))?;
    // A set without content types is byte for byte what earlier versions wrote.
    if sibs.live_values().any(|o| o.content_type.is_some()) {
        return Ok(record::seal_version(
            record::VERSION_TYPED,
            Table::Data,
            key,
            &payload,
        ));
    }
    Ok(record::seal(Table::Data, key, &payload))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let mut s: String = bytes.iter().take(MAX).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > MAX {
        s.push('…');
    }
    s
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

thread_local! {
    /// Whether this thread is inside [`catch_panic`].
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// The last panic caught on this thread, as the hook saw it (with its location).
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `f` and turns a panic inside it into `Err(what the panic said)`.
///
/// The panic hook is chained once per process: outside `catch_panic` it calls the previous hook
/// unchanged; inside, it keeps the message for the error instead of printing it.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let message = payload_message(info.payload());
                let caught = match info.location() {
                    Some(at) => format!("{message}, at {}:{}", short_path(at.file()), at.line()),
                    None => message,
                };
                CAUGHT.with(|c| *c.borrow_mut() = Some(caught));
            } else {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| payload_message(payload.as_ref()))
    })
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// A source path from the crate's directory on (`redb-2.6.4/src/...`), not the registry's.
fn short_path(file: &str) -> &str {
    match file.find("/src/index.crates.io-") {
        Some(i) => file[i + "/src/".len()..]
            .split_once('/')
            .map(|(_, rest)| rest)
            .unwrap_or(file),
        None => file,
    }
}

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
const REBUILD: &str = "if the file cannot be restored, remove the data directory (or move it \
                       aside) and restart the node: it starts empty and its replicas refill it";

impl RedbStore {
    /// Opens (or creates) the store in `dir`, creating the directory if needed.
    ///
    /// Fails with [`StoreError::Corrupt`] if the file is not a redb database of this format, is
    /// damaged beyond what redb can repair (truncated, for one), is missing, empty or another
    /// database while the directory's [`MANIFEST_FILE`] says it held one, or a metadata value is
    /// damaged; and with [`StoreError::Io`] if the directory cannot be created, read or locked
    /// (another process has it open). Damaged data and hint records do not fail the open: they
    /// are counted, logged and removed (see the [module docs](self)).
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
            unsynced: false,
            last_sync: Instant::now(),
            commits: 0,
        };
        let (instance, created) = store.init(manifest.as_ref())?;
        // Records first: removing a damaged record rewrites its page, so that redb's check
        // below does not roll back a whole commit (or give up) over one bad value.
        store.verify_records()?;
        store.check_integrity()?;
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
            StoreError::Corrupt(format!(
                "{}: cannot open the database, the file is damaged or truncated (redb: \
                 {panic}). {}",
                path.display(),
                capitalized(REBUILD)
            ))
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
            other => StoreError::Corrupt(format!(
                "{}: cannot open the database, the file is damaged, truncated or not a database \
                 of this program (redb: {other}). {}",
                path.display(),
                capitalized(REBUILD)
            )),
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

    fn open_meta<'a>(&self, name: &str, bytes: &'a [u8]) -> Result<&'a [u8], StoreError> {
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
                StoreError::Corrupt(format!(
                    "{}: redb's integrity check failed: {e}. The damage is in the file's \
                     structure, not in one record. {}",
                    path.display(),
                    capitalized(REBUILD)
                ))
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
        let why = format!(
            "{}: redb failed while {what} ({panic}); the store refuses further calls. {}",
            self.path.display(),
            capitalized(REBUILD)
        );
        tracing::error!("{why}");
        let _ = self.broken.set(why.clone());
        StoreError::Corrupt(why)
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

pub(crate) fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
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
mod tests {
    use super::*;
    use dynamo_vclock::Value;

    fn sibs(value: &[u8]) -> Sibs {
        let mut s = Sibs::new();
        let ctx = s.context();
        s.put(&ctx, (1, 0), 0, Value::Live(value.to_vec().into()));
        s
    }

    fn values(s: &Sibs) -> Vec<Vec<u8>> {
        s.live_values().map(|o| o.bytes.clone()).collect()
    }

    #[test]
    fn a_content_type_is_stored_in_a_version_2_record_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut typed = Sibs::new();
        let ctx = typed.context();
        let object = crate::types::Object::typed(b"{}".to_vec(), Some("application/json".into()));
        typed.put(&ctx, (1, 0), 0, Value::Live(object.clone()));
        assert_eq!(encode_sibs(b"t", &typed).unwrap()[0], 2);
        assert_eq!(encode_sibs(b"p", &sibs(b"plain")).unwrap()[0], 1);
        {
            let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
            store.put(b"t", &typed).unwrap();
            store.put(b"p", &sibs(b"plain")).unwrap();
            store.flush().unwrap();
        }
        let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        let back = store.get(b"t").unwrap().expect("stored");
        assert_eq!(back.live_values().collect::<Vec<_>>(), vec![&object]);
        assert_eq!(
            values(&store.get(b"p").unwrap().unwrap()),
            vec![b"plain".to_vec()]
        );
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
        let created = store.commits();
        store.flush().unwrap();
        assert_eq!(store.commits(), created);
        store.put(b"k", &sibs(b"v")).unwrap();
        store.put(b"k2", &sibs(b"v")).unwrap();
        store.flush().unwrap();
        assert_eq!(
            store.commits(),
            created + 1,
            "one group commit for the whole batch"
        );
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

    /// Writes raw bytes under `key` in `data`, as damage or another version would leave them.
    fn write_raw(dir: &Path, key: &[u8], bytes: &[u8]) {
        let db = Database::create(dir.join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(DATA).unwrap().insert(key, bytes).unwrap();
        txn.commit().unwrap();
    }

    #[test]
    fn unverifiable_value_is_missing_counted_and_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 3);
        write_raw(dir.path(), b"k", b"\xc1not a record");
        let sealed_garbage = record::seal(Table::Data, b"k2", b"\xc1not msgpack");
        write_raw(dir.path(), b"k2", &sealed_garbage);
        {
            let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
            assert_eq!(store.damaged(), 2);
            assert_eq!(store.get(b"k").unwrap(), None);
            assert_eq!(store.get(b"k2").unwrap(), None);
            assert_eq!(store.pending(), 0, "removed by the open");
            assert!(store.get(&key(1)).unwrap().is_some());
        }
        let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        assert_eq!(store.damaged(), 0, "gone from the file");
    }

    #[test]
    fn damage_found_by_a_read_is_removed_at_the_next_commit_unless_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        for k in [&b"a"[..], b"b"] {
            store.put(k, &sibs(b"v")).unwrap();
        }
        store.flush().unwrap();
        // Damage both records behind the store's back (as a bad disk would).
        {
            let txn = store.db.as_ref().unwrap().begin_write().unwrap();
            {
                let mut t = txn.open_table(DATA).unwrap();
                for k in [&b"a"[..], b"b"] {
                    let mut bytes = t.get(k).unwrap().unwrap().value().to_vec();
                    let last = bytes.len() - 1;
                    bytes[last] ^= 1;
                    t.insert(k, bytes.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        assert_eq!(store.get(b"a").unwrap(), None);
        assert_eq!(store.get(b"a").unwrap(), None, "a second read");
        let mut seen = Vec::new();
        store.scan(&mut |k, _| seen.push(k.to_vec())).unwrap();
        assert!(seen.is_empty());
        assert_eq!(store.damaged(), 2, "each damaged record counted once");
        assert_eq!(
            store.pending(),
            2,
            "their removal waits for the next commit"
        );
        // Read repair rewrites one of them before the commit.
        store.put(b"b", &sibs(b"repaired")).unwrap();
        store.flush().unwrap();
        assert_eq!(store.pending(), 0);
        drop(store);
        let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        assert_eq!(store.damaged(), 0);
        assert_eq!(store.get(b"a").unwrap(), None);
        assert_eq!(
            values(&store.get(b"b").unwrap().unwrap()),
            vec![b"repaired".to_vec()]
        );
    }

    #[test]
    fn damaged_hint_is_skipped_counted_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
            store.put_hint(1, b"hint one").unwrap();
            store.put_hint(2, b"hint two").unwrap();
        }
        flip_bit_in(dir.path(), b"hint two", 3);
        let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        assert_eq!(store.damaged(), 1);
        assert_eq!(store.hints().unwrap(), vec![(1, b"hint one".to_vec())]);
    }

    #[test]
    fn damaged_metadata_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
            store
                .put_meta("node-id", b"\x00\x00\x00\x00\x00\x00\x00\x07")
                .unwrap();
            store.flush().unwrap();
            // A later commit that leaves the metadata page shared by both commit slots.
            store.put(b"k", &sibs(b"v")).unwrap();
        }
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(META).unwrap();
            let mut bytes = t.get("node-id").unwrap().unwrap().value().to_vec();
            bytes[12] ^= 0x10;
            t.insert("node-id", bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        drop(db);
        let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Corrupt(_)), "{msg}");
        assert!(msg.contains("node-id") && msg.contains("damaged"), "{msg}");
    }

    /// Copies the database and manifest of `from` (open: a crash image) into `to`.
    fn crash_image(from: &Path, to: &Path) {
        for f in [DB_FILE, MANIFEST_FILE] {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    }

    #[test]
    fn recovery_after_a_crash_keeps_every_commit() {
        let (live, image) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut store = RedbStore::open(live.path(), Durability::Durable).unwrap();
        store.put(b"k", &sibs(b"v")).unwrap();
        store.flush().unwrap();
        crash_image(live.path(), image.path());
        let recovered = RedbStore::open(image.path(), Durability::Durable).unwrap();
        assert!(!recovered.lost_commits());
        assert!(recovered.is_durable());
        assert!(recovered.get(b"k").unwrap().is_some());
    }

    #[test]
    fn rollback_after_a_crash_is_reported_and_retires_durability() {
        let (live, image) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut store = RedbStore::open(live.path(), Durability::Durable).unwrap();
        for i in 0..20 {
            store.put(&key(i), &sibs(&value(i))).unwrap();
        }
        store.flush().unwrap();
        store.put_meta("after", b"x").unwrap();
        store.flush().unwrap();
        crash_image(live.path(), image.path());
        // The newest commit wrote the metadata entry `after`: damage its page, which only that
        // commit references (a torn write), so that redb's recovery falls back a commit.
        flip_bit_in(image.path(), b"after", 2);
        let recovered = RedbStore::open(image.path(), Durability::Durable).unwrap();
        assert!(recovered.lost_commits());
        assert!(!recovered.is_durable(), "the node must retire its epochs");
        assert_eq!(recovered.get_meta("after").unwrap(), None, "rolled back");
        assert!(
            recovered.get(&key(7)).unwrap().is_some(),
            "the commit before is whole"
        );
    }

    #[test]
    fn manifest_is_written_and_another_database_refused() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fill(a.path(), 5);
        fill(b.path(), 5);
        let text = std::fs::read_to_string(a.path().join(MANIFEST_FILE)).unwrap();
        assert!(text.contains("instance"), "{text}");
        std::fs::copy(b.path().join(DB_FILE), a.path().join(DB_FILE)).unwrap();
        let err = RedbStore::open(a.path(), Durability::Durable).unwrap_err();
        assert!(err.to_string().contains("not the database"), "{err}");
        // A database of a version without a manifest is adopted: its manifest is written.
        std::fs::remove_file(b.path().join(MANIFEST_FILE)).unwrap();
        drop(RedbStore::open(b.path(), Durability::Durable).unwrap());
        assert!(b.path().join(MANIFEST_FILE).exists());
    }

    #[test]
    fn format_1_database_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut data = txn.open_table(DATA).unwrap();
                for i in 0..(UPGRADE_CHUNK + 10) {
                    let bytes = rmp_serde::to_vec(&sibs(&value(i))).unwrap();
                    data.insert(key(i).as_slice(), bytes.as_slice()).unwrap();
                }
                txn.open_table(HINTS)
                    .unwrap()
                    .insert(3, &b"hint"[..])
                    .unwrap();
                let mut meta = txn.open_table(META).unwrap();
                meta.insert(FORMAT_KEY, FORMAT_V1).unwrap();
                meta.insert("epoch", &b"\x00\x00\x00\x00\x00\x00\x00\x05"[..])
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        assert_eq!(store.damaged(), 0);
        for i in [0, UPGRADE_CHUNK - 1, UPGRADE_CHUNK, UPGRADE_CHUNK + 9] {
            assert_eq!(
                values(&store.get(&key(i)).unwrap().unwrap()),
                vec![value(i)]
            );
        }
        assert_eq!(store.hints().unwrap(), vec![(3, b"hint".to_vec())]);
        assert_eq!(
            store.get_meta("epoch").unwrap(),
            Some(vec![0, 0, 0, 0, 0, 0, 0, 5])
        );
        assert_eq!(store.get_meta(FORMAT_KEY).unwrap(), Some(FORMAT.to_vec()));
    }

    /// The stored-record decoder against random and mutated bytes: never a panic, and never a
    /// value from bytes that are not the ones written.
    #[test]
    fn record_decoder_fuzz() {
        use rand::{Rng, SeedableRng};
        let mut rng = crate::types::ReplayRng::seed_from_u64(0xD1_5EA5E);
        let samples: Vec<(Vec<u8>, Sibs)> = (0..8)
            .map(|i| {
                let mut s = sibs(&value(i));
                let ctx = Sibs::new().context();
                s.put(&ctx, (2, 9), 5, Value::Live(vec![i as u8; i * 7].into()));
                s.put(&s.context(), (3, 1), 6, Value::Tombstone);
                (key(i), s)
            })
            .collect();
        let mut accepted_garbage = 0;
        for round in 0..20_000 {
            let (k, s) = &samples[round % samples.len()];
            let good = encode_sibs(k, s).unwrap();
            let payload = good[record::HEADER..].to_vec();
            let case = round % 4;
            let bytes = match case {
                // Random bytes.
                0 => (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
                // A sealed record with a few mutations (flips, overwrites, cuts, growth).
                1 => mutate(&mut rng, good.clone()),
                // A valid checksum over a mutated payload: the payload decoder itself.
                2 => record::seal(Table::Data, k, &mutate(&mut rng, payload)),
                // A valid checksum over random bytes.
                _ => {
                    let junk: Vec<u8> = (0..rng.gen_range(0..96)).map(|_| rng.gen()).collect();
                    record::seal(Table::Data, k, &junk)
                }
            };
            let decoded = decode_sibs(k, &bytes);
            let _ = record::open(Table::Hints, k, &bytes);
            let _ = record::open(Table::Meta, k, &bytes);
            match (case, decoded) {
                (1, Ok(d)) => {
                    assert_eq!(bytes, good, "round {round}: damaged bytes accepted");
                    assert_eq!(&d, s);
                }
                (0, Ok(_)) => accepted_garbage += 1,
                _ => {}
            }
        }
        assert_eq!(accepted_garbage, 0, "random bytes passed the checksum");
    }

    fn mutate(rng: &mut impl rand::Rng, mut bytes: Vec<u8>) -> Vec<u8> {
        for _ in 0..rng.gen_range(1..4) {
            match rng.gen_range(0..4) {
                0 if !bytes.is_empty() => {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] ^= 1 << rng.gen_range(0..8);
                }
                1 if !bytes.is_empty() => {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] = rng.gen();
                }
                2 => {
                    let n = rng.gen_range(0..=bytes.len());
                    bytes.truncate(n);
                }
                _ => {
                    for _ in 0..rng.gen_range(1..8) {
                        bytes.push(rng.gen());
                    }
                }
            }
        }
        bytes
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

    /// Writes `n` keys `key-i` (values `value-i-` padded to 200 bytes) in one commit, then a
    /// metadata entry in a second one, so that the data pages are shared by both commit slots.
    fn fill(dir: &Path, n: usize) {
        let mut store = RedbStore::open(dir, Durability::Durable).unwrap();
        for i in 0..n {
            store.put(&key(i), &sibs(&value(i))).unwrap();
        }
        store.flush().unwrap();
        store.put_meta("after", b"x").unwrap();
        store.flush().unwrap();
    }

    fn key(i: usize) -> Vec<u8> {
        format!("key-{i}").into_bytes()
    }

    fn value(i: usize) -> Vec<u8> {
        let mut v = format!("value-{i:04}-").into_bytes();
        v.resize(200, b'v');
        v
    }

    fn truncate(dir: &Path, fraction: f64) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join(DB_FILE))
            .unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len((len as f64 * fraction) as u64).unwrap();
    }

    /// Opens in a separate thread so that a panic inside is a test failure with a message, not
    /// an abort of the harness.
    fn open_catching(dir: &Path) -> Result<Result<RedbStore, StoreError>, String> {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || RedbStore::open(&dir, Durability::Durable))
            .join()
            .map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            })
    }

    #[test]
    fn truncated_to_half_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 150);
        truncate(dir.path(), 0.5);
        let err = match open_catching(dir.path()) {
            Err(panic) => panic!("open panicked: {panic}"),
            Ok(Ok(_)) => panic!("a truncated database opened"),
            Ok(Err(e)) => e,
        };
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Corrupt(_)), "{msg}");
        assert!(msg.contains(DB_FILE) && msg.contains("truncated"), "{msg}");
        assert!(
            msg.contains("redb-2") && msg.contains("page_manager.rs"),
            "where redb gave up: {msg}"
        );
    }

    #[test]
    fn truncated_to_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 150);
        truncate(dir.path(), 0.0);
        let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(DB_FILE) && msg.contains("empty"), "{msg}");
        // Refusing must not have initialised the empty file either: a second try refuses too.
        let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn missing_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 10);
        std::fs::remove_file(dir.path().join(DB_FILE)).unwrap();
        let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(DB_FILE) && msg.contains("missing"), "{msg}");
    }

    /// Flips one bit in the first copy of `needle` in the database file.
    fn flip_bit_in(dir: &Path, needle: &[u8], offset_in_needle: usize) {
        let path = dir.join(DB_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("value not found in the file");
        bytes[at + offset_in_needle] ^= 0x04;
        std::fs::write(&path, bytes).unwrap();
    }

    #[test]
    fn flipped_bit_in_a_value_reads_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 150);
        flip_bit_in(dir.path(), &value(42)[..12], 9);
        let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        assert_eq!(
            store.get(&key(42)).unwrap(),
            None,
            "a damaged value is served"
        );
        assert_eq!(store.damaged(), 1);
        assert_eq!(
            values(&store.get(&key(41)).unwrap().unwrap()),
            vec![value(41)]
        );
        let mut seen = 0;
        store
            .scan(&mut |k, s| {
                assert_ne!(k, key(42));
                assert_eq!(values(s).len(), 1);
                seen += 1;
            })
            .unwrap();
        assert_eq!(seen, 149);
    }
}
