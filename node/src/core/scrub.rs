//! Scrubbing: at each anti-entropy round a node reads back a few of its stored keys, cycling
//! through every partition, so that a record that rots while the node runs is found. A store
//! that checksums its records reads a damaged one as missing; the node then counts it as a lost
//! copy (see `Holdings::lost`), takes it out of the partition's Merkle tree, and anti-entropy
//! brings the other replicas' copies back. Without it such a record was found only when a client
//! read or wrote the key, or at the next restart: until then the node's tree still claimed it,
//! anti-entropy saw nothing to repair, and the key had one copy fewer than N.

use super::key_index::page;
use super::storage::{StorageOp, Then};
use super::NodeCore;
use crate::types::Key;

/// Keys read back per anti-entropy round (about 64 a second at the default interval: a million
/// keys in under five hours).
pub(crate) const SCRUB_KEYS: usize = 64;

/// Where scrubbing is: the partition it reads, a snapshot of its keys in order, and the last
/// key read.
#[derive(Debug, Default)]
pub(crate) struct Scrub {
    partition: usize,
    sorted: Vec<Key>,
    after: Option<Key>,
}

impl NodeCore {
    /// Reads back the next [`SCRUB_KEYS`] stored keys (see the [module docs](self)).
    pub(crate) fn scrub(&mut self) {
        let partitions = self.holdings.partitions();
        let mut keys: Vec<Key> = Vec::new();
        // Every partition once at most per round (most may be empty).
        for _ in 0..=partitions {
            if keys.len() >= SCRUB_KEYS || partitions == 0 {
                break;
            }
            let index = self.holdings.keys(self.scrub.partition);
            if self.scrub.after.is_none() {
                self.scrub.sorted = index.sorted_keys();
            }
            let (page, more) = page(
                &self.scrub.sorted,
                self.scrub.after.as_deref(),
                SCRUB_KEYS - keys.len(),
                index,
            );
            self.scrub.after = page.last().cloned().filter(|_| more);
            keys.extend(page);
            if self.scrub.after.is_none() {
                self.scrub.partition = (self.scrub.partition + 1) % partitions;
                self.scrub.sorted = Vec::new();
            }
        }
        if !keys.is_empty() {
            self.store_op(StorageOp::Read { keys }, Then::Scrubbed);
        }
    }
}
