//! Which storage engine a data directory uses, and the store a runtime node runs on.

use crate::fjall_store::FjallStore;
use crate::redb_store::{Durability, RedbStore};
use crate::store::{MemoryStore, Store, StoreError};
use crate::types::Sibs;

use super::RuntimeError;

/// A durable storage engine for a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// [fjall](crate::fjall_store), a log-structured merge tree: the default for a new data
    /// directory (it writes a fraction of redb's bytes per put; see `bench/results/peers.md`).
    #[default]
    Fjall,
    /// [redb](crate::redb_store), a copy-on-write B-tree.
    Redb,
}

impl Engine {
    /// The engine's name (`fjall`, `redb`).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Fjall => "fjall",
            Engine::Redb => "redb",
        }
    }

    /// The engine called `name`.
    pub fn parse(name: &str) -> Option<Engine> {
        [Engine::Fjall, Engine::Redb]
            .into_iter()
            .find(|e| e.name() == name)
    }

    /// The engine whose files `dir` holds, if any.
    pub fn found_in(dir: &std::path::Path) -> Option<Engine> {
        let has = |name: &str| dir.join(name).exists();
        if has(crate::redb_store::DB_FILE) || has(crate::redb_store::MANIFEST_FILE) {
            Some(Engine::Redb)
        } else if has(crate::fjall_store::FJALL_DIR) || has(crate::fjall_store::MANIFEST_FILE) {
            Some(Engine::Fjall)
        } else {
            None
        }
    }
}

/// Opens the store of `dir` with the engine `wanted` (or the one the directory holds).
pub fn open_store(
    dir: &std::path::Path,
    wanted: Option<Engine>,
    durability: Durability,
) -> Result<AnyStore, RuntimeError> {
    let found = Engine::found_in(dir);
    let engine = match (wanted, found) {
        (Some(w), Some(f)) if w != f => {
            return Err(RuntimeError::Config(format!(
                "{} holds a {} database, not {}: start the node with --storage {} (or give it \
                 another data directory)",
                dir.display(),
                f.name(),
                w.name(),
                f.name()
            )))
        }
        (Some(e), _) | (None, Some(e)) => e,
        (None, None) => Engine::default(),
    };
    Ok(match engine {
        Engine::Fjall => AnyStore::Fjall(Box::new(FjallStore::open(dir, durability)?)),
        Engine::Redb => AnyStore::Redb(Box::new(RedbStore::open(dir, durability)?)),
    })
}

/// The store a runtime node uses: memory, or an engine on disk when a data directory is given.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// In memory.
    Memory(MemoryStore),
    /// On disk, redb.
    Redb(Box<RedbStore>),
    /// On disk, fjall.
    Fjall(Box<FjallStore>),
}

macro_rules! any {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Memory($s) => $e,
            AnyStore::Redb($s) => $e,
            AnyStore::Fjall($s) => $e,
        }
    };
}

impl Store for AnyStore {
    fn get(&self, key: &[u8]) -> Result<Option<Sibs>, StoreError> {
        any!(self, s => s.get(key))
    }
    fn put(&mut self, key: &[u8], siblings: &Sibs) -> Result<(), StoreError> {
        any!(self, s => s.put(key, siblings))
    }
    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        any!(self, s => s.remove(key))
    }
    fn scan(&self, visit: &mut dyn FnMut(&[u8], &Sibs)) -> Result<(), StoreError> {
        any!(self, s => s.scan(visit))
    }
    fn put_hint(&mut self, id: u64, record: &[u8]) -> Result<(), StoreError> {
        any!(self, s => s.put_hint(id, record))
    }
    fn remove_hint(&mut self, id: u64) -> Result<(), StoreError> {
        any!(self, s => s.remove_hint(id))
    }
    fn hints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        any!(self, s => s.hints())
    }
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        any!(self, s => s.get_meta(name))
    }
    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        any!(self, s => s.put_meta(name, value))
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        any!(self, s => s.flush())
    }
    fn start_flush(&mut self) -> Result<Option<crate::store::SyncJob>, StoreError> {
        any!(self, s => s.start_flush())
    }
    fn has_unflushed_writes(&self) -> bool {
        any!(self, s => s.has_unflushed_writes())
    }
    fn has_unsynced_write(&self, key: &[u8]) -> bool {
        any!(self, s => s.has_unsynced_write(key))
    }
    fn is_durable(&self) -> bool {
        any!(self, s => s.is_durable())
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        any!(self, s => s.sync())
    }
    fn take_set_aside(&mut self) -> Result<Vec<crate::Key>, StoreError> {
        any!(self, s => s.take_set_aside())
    }
}
