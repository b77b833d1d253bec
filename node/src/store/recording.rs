//! [`Recording`]: a store that remembers every write made through it, so that a test can assert
//! the storage decisions of an input beside its messages and replies (see `core`'s tests).

use super::{Store, StoreError, SyncJob};
use crate::types::{Key, Sibs};

/// One write the core made to its store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOp {
    /// The versions of a key were replaced.
    Put {
        /// The key.
        key: Key,
        /// Its new versions.
        siblings: Sibs,
    },
    /// A key was removed.
    Remove {
        /// The key.
        key: Key,
    },
    /// A hint record was stored.
    PutHint {
        /// The hint's id.
        id: u64,
    },
    /// A hint record was removed.
    RemoveHint {
        /// The hint's id.
        id: u64,
    },
    /// A metadata value was set.
    PutMeta {
        /// Its name.
        name: String,
    },
    /// A flush or a sync: the writes so far are made durable (a started flush, once its job
    /// returns).
    Flush,
}

/// A [`Store`] around another one that records every write made through it, in order; reads
/// are not recorded. [`Recording::take`] hands the record over and starts a new one.
#[derive(Debug, Clone, Default)]
pub struct Recording<S> {
    inner: S,
    ops: Vec<StoreOp>,
}

impl<S> Recording<S> {
    /// Records the writes made to `inner` from now on.
    pub fn new(inner: S) -> Self {
        Recording {
            inner,
            ops: Vec::new(),
        }
    }

    /// The writes recorded since the last call, oldest first.
    pub fn take(&mut self) -> Vec<StoreOp> {
        std::mem::take(&mut self.ops)
    }

    /// The store inside.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Store> Store for Recording<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Sibs>, StoreError> {
        self.inner.get(key)
    }

    fn put(&mut self, key: &[u8], siblings: &Sibs) -> Result<(), StoreError> {
        self.inner.put(key, siblings)?;
        self.ops.push(StoreOp::Put {
            key: key.to_vec(),
            siblings: siblings.clone(),
        });
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.inner.remove(key)?;
        self.ops.push(StoreOp::Remove { key: key.to_vec() });
        Ok(())
    }

    fn scan(&self, visit: &mut dyn FnMut(&[u8], &Sibs)) -> Result<(), StoreError> {
        self.inner.scan(visit)
    }

    fn put_hint(&mut self, id: u64, record: &[u8]) -> Result<(), StoreError> {
        self.inner.put_hint(id, record)?;
        self.ops.push(StoreOp::PutHint { id });
        Ok(())
    }

    fn remove_hint(&mut self, id: u64) -> Result<(), StoreError> {
        self.inner.remove_hint(id)?;
        self.ops.push(StoreOp::RemoveHint { id });
        Ok(())
    }

    fn hints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.inner.hints()
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_meta(name)
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.put_meta(name, value)?;
        self.ops.push(StoreOp::PutMeta {
            name: name.to_string(),
        });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.inner.flush()?;
        self.ops.push(StoreOp::Flush);
        Ok(())
    }

    fn start_flush(&mut self) -> Result<Option<SyncJob>, StoreError> {
        let job = self.inner.start_flush()?;
        self.ops.push(StoreOp::Flush);
        Ok(job)
    }

    fn has_unflushed_writes(&self) -> bool {
        self.inner.has_unflushed_writes()
    }

    fn is_durable(&self) -> bool {
        self.inner.is_durable()
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.inner.sync()?;
        self.ops.push(StoreOp::Flush);
        Ok(())
    }
}
