//! Storage as outputs: what the core asks of its store, and what the store answered.
//!
//! The core does no I/O. Each read or write it needs is a [`StorageOp`], drained with
//! [`NodeCore::poll_storage`](super::NodeCore::poll_storage); the driver executes the ops **in
//! the order drained** (so a read sees every write drained before it) and hands each result back
//! with [`NodeCore::handle_storage`](super::NodeCore::handle_storage), in the same order, at any
//! later time. [`execute`] executes one op on a [`Store`]; [`StoredCore`](super::StoredCore)
//! is a core with its store that does so after every input.
//!
//! A read-modify-write of one key is one op ([`StorageOp::Merge`], [`StorageOp::RemoveIf`]): the
//! store applies it whole, so two merges of a key never interleave, whatever the driver delays.
//! The one read-modify-write that needs the core's state, minting a put's dot, holds the key
//! until it has emitted its merge (see `coordinator`).
//!
//! What the core does once an op is done (acknowledge a write, answer a read, go on with a put)
//! is a [`Then`] it keeps under the op's id.

use std::collections::{BTreeMap, VecDeque};

use dynamo_handoff::{HintAck, TransferAck};
use dynamo_quorum::VersionSet;

use crate::store::{Store, StoreError};
use crate::types::{Clock, Key, NodeId, RequestId, Sibs};

/// Identifies a [`StorageOp`] until its result is handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorageId(pub u64);

/// A read or write the core asks its driver to execute.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StorageOp {
    /// Read the versions of each key.
    Read {
        /// The keys.
        keys: Vec<Key>,
    },
    /// Merge each entry's versions into the stored ones ([`merged`]), writing back what changed.
    Merge {
        /// Keys with the versions to merge in.
        entries: Vec<(Key, Sibs)>,
    },
    /// Reap `key`'s tombstone ([`reaped`]): drop the versions of `key` that `clock`, the
    /// context of a tombstone every replica held, covers, and remove the key if none is left.
    RemoveIf {
        /// The key.
        key: Key,
        /// The tombstone's context.
        clock: Clock,
    },
    /// Remove each key.
    Remove {
        /// The keys.
        keys: Vec<Key>,
    },
    /// Store an encoded hint record under its id.
    PutHint {
        /// The hint's id.
        id: u64,
        /// The encoded record.
        record: Vec<u8>,
    },
    /// Remove a hint record.
    RemoveHint {
        /// The hint's id.
        id: u64,
    },
    /// Set a metadata value.
    PutMeta {
        /// Its name.
        name: String,
        /// Its value.
        value: Vec<u8>,
        /// Then make every write so far durable, even on a buffered store ([`Store::sync`]): the
        /// node's actor-epoch lease must survive a crash before any epoch of it is used.
        sync: bool,
    },
    /// Make every write so far durable, even on a buffered store ([`Store::sync`]).
    Sync,
}

/// What the store answered to a [`StorageOp`], op by op.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StorageResult {
    /// For [`StorageOp::Read`]: each key's versions, in the order asked (`None`: not found, or a
    /// damaged record the store set aside).
    Read(Result<Vec<Option<Sibs>>, StoreError>),
    /// For [`StorageOp::Merge`]: per entry, what the merge did.
    Merge(Vec<Result<Merged, StoreError>>),
    /// For [`StorageOp::RemoveIf`]: what the reap did.
    RemoveIf(Result<Reaping, StoreError>),
    /// For [`StorageOp::Remove`]: per key, whether it was removed.
    Remove(Vec<Result<(), StoreError>>),
    /// For the other writes.
    Written(Result<(), StoreError>),
}

/// What a [`StorageOp::Merge`] did with one entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The versions now stored, when they changed (`None`: the store held them already).
    pub stored: Option<Sibs>,
    /// Whether the store held a record of the key before (a damaged record it set aside reads
    /// as none: the node then no longer holds the versions it minted there).
    pub found: bool,
}

/// Executes `op` on `store`.
pub fn execute<S: Store + ?Sized>(store: &mut S, op: &StorageOp) -> StorageResult {
    match op {
        StorageOp::Read { keys } => {
            StorageResult::Read(keys.iter().map(|k| store.get(k)).collect())
        }
        StorageOp::Merge { entries } => StorageResult::Merge(
            entries
                .iter()
                .map(|(key, incoming)| {
                    let current = store.get(key)?;
                    let found = current.is_some();
                    let Some(m) = merged(current, incoming) else {
                        return Ok(Merged {
                            stored: None,
                            found,
                        });
                    };
                    store.put(key, &m)?;
                    Ok(Merged {
                        stored: Some(m),
                        found,
                    })
                })
                .collect(),
        ),
        StorageOp::RemoveIf { key, clock } => StorageResult::RemoveIf((|| {
            let Some(current) = store.get(key)? else {
                return Ok(Reaping::Unchanged);
            };
            Ok(match reaped(&current, clock) {
                None => {
                    store.remove(key)?;
                    Reaping::Removed
                }
                Some(rest) if rest == current => Reaping::Unchanged,
                Some(rest) => {
                    store.put(key, &rest)?;
                    Reaping::Pruned(rest)
                }
            })
        })()),
        StorageOp::Remove { keys } => {
            StorageResult::Remove(keys.iter().map(|k| store.remove(k)).collect())
        }
        StorageOp::PutHint { id, record } => StorageResult::Written(store.put_hint(*id, record)),
        StorageOp::RemoveHint { id } => StorageResult::Written(store.remove_hint(*id)),
        StorageOp::Sync => StorageResult::Written(store.sync()),
        StorageOp::PutMeta { name, value, sync } => {
            StorageResult::Written(store.put_meta(name, value).and_then(|()| {
                if *sync {
                    store.sync()
                } else {
                    Ok(())
                }
            }))
        }
    }
}

/// `incoming` merged into `current`, or `None` when that changes nothing (`current` covers it, or
/// both are empty).
pub fn merged(current: Option<Sibs>, incoming: &Sibs) -> Option<Sibs> {
    let existed = current.is_some();
    let mut merged = current.unwrap_or_default();
    if existed && merged.covers(incoming) {
        return None;
    }
    merged.merge(incoming);
    (!VersionSet::is_empty(&merged)).then_some(merged)
}

/// What is left of `current` once the tombstone with context `clock` is reaped: the versions
/// `clock` does not cover (writes concurrent with or after the delete), or `None` if it covers
/// them all. Not only the tombstone itself: a replica whose store came back older than the
/// tombstone (a buffered store after a crash) may hold the deleted values again, which the
/// tombstone superseded and which nothing else would remove once it is gone.
pub fn reaped(current: &Sibs, clock: &Clock) -> Option<Sibs> {
    let mut rest = current.clone();
    rest.discard(clock);
    let any = rest.values().next().is_some();
    any.then_some(rest)
}

/// What a [`StorageOp::RemoveIf`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reaping {
    /// The clock covered every version: the key is gone.
    Removed,
    /// The clock covered some versions, dropped; the key now holds these.
    Pruned(Sibs),
    /// No record, or nothing the clock covers.
    Unchanged,
}

/// What the core does once an op is done.
#[derive(Debug)]
pub(crate) enum Then {
    /// Nothing more (a hint spread, a write whose outcome nobody waits for).
    Nothing,
    /// Stored keys read back by scrubbing: a record found missing is a lost copy (`read_back`),
    /// nothing more.
    Scrubbed,
    /// The coordinator's read repair of its own copy: the merge of the other replicas' answers,
    /// which ends a lost copy of the key (see `Holdings::found`).
    Repaired,
    /// An anti-entropy exchange's versions from `from`, one of the keys' replicas: each key it
    /// held that is lost here counts `from`'s copy as found (see `Holdings::vouched`).
    Vouched { from: NodeId },
    /// A replica write: acknowledge it to `to` (if it carried a request), `ok` unless the merge
    /// failed (`ok` is false already when a hint it also needed was refused).
    WriteAck {
        to: NodeId,
        req: Option<RequestId>,
        ok: bool,
    },
    /// The coordinator's own copy of its put (a fallback's, or a primary's repeated write): the
    /// request's local target answered.
    LocalWrite { req: RequestId, ok: bool },
    /// A replica read for `to`.
    ReadReply { to: NodeId, req: RequestId },
    /// The coordinator's own read for request `req`.
    LocalRead { req: RequestId },
    /// The current versions of a put's key, to mint its dot from.
    Mint(Box<super::minting::Minting>),
    /// A new lease of actor epochs is durable: the put that needed it goes on.
    Lease(Box<super::minting::Minted>),
    /// A primary coordinator's dot is in its store: the put goes out.
    Minted(Box<super::minting::Minted>),
    /// Hints a fallback delivered: acknowledge the batch, naming as refused (besides those
    /// `ack` names already) each of `entries` (the hint of each of the merge's entries, in order)
    /// the store failed to keep.
    HintsAck {
        from: NodeId,
        ack: HintAck,
        entries: Vec<dynamo_handoff::HintId>,
    },
    /// A transfer batch: acknowledge it if every entry was kept.
    TransferAck {
        from: NodeId,
        ack: TransferAck<Key>,
        ok: bool,
    },
    /// A transfer session asked for the keys of a batch.
    TransferBatch {
        transfer: u64,
        request: dynamo_handoff::RequestId,
        max_bytes: usize,
        more: bool,
    },
    /// Anti-entropy found differences with `peer`: send it these versions, ask for `want`.
    ExchangeOut {
        peer: NodeId,
        partition: u32,
        want: Vec<Key>,
    },
    /// A peer asked for these keys in an exchange.
    ExchangeBack { to: NodeId, partition: u32 },
    /// A tombstone reaped, if it still was one.
    Reaped { key: Key },
    /// A replica read that found only a tombstone, on a store that may lose flushed writes:
    /// answered once the store synced (refused if it could not).
    SyncedReadReply {
        to: NodeId,
        req: RequestId,
        siblings: Option<Sibs>,
    },
    /// The reaper's read of its own copy, found only a tombstone on such a store: answered
    /// once the store synced.
    SyncedLocalRead {
        req: RequestId,
        siblings: Option<Sibs>,
    },
    /// An acknowledgement after which its receiver deletes its own copy (of hints, of a
    /// hand-over), on a store that may lose flushed writes: sent once the store synced, and not
    /// at all if it could not (the sender keeps its copy and tries again).
    SyncedSend {
        to: NodeId,
        msg: Box<crate::message::PeerMessage>,
    },
    /// Keys removed when a foreign partition was dropped.
    Dropped { partition: usize },
    /// A metadata write (a failure is counted).
    Meta,
}

impl StorageOp {
    /// The data keys the op reads or writes, in its order.
    fn keys(&self) -> Vec<Key> {
        match self {
            StorageOp::Read { keys } | StorageOp::Remove { keys } => keys.clone(),
            StorageOp::Merge { entries } => entries.iter().map(|(k, _)| k.clone()).collect(),
            StorageOp::RemoveIf { key, .. } => vec![key.clone()],
            _ => Vec::new(),
        }
    }
}

/// The ops not yet drained, and the continuation of each op not yet answered.
#[derive(Debug, Default)]
pub(crate) struct Storage {
    next: u64,
    queue: VecDeque<(StorageId, StorageOp)>,
    /// Each op's keys and continuation, and whether it is a merge.
    waiting: BTreeMap<u64, (Vec<Key>, Then, bool)>,
}

impl Storage {
    /// Queues `op`, to go on with `then` when it is done.
    pub(crate) fn push(&mut self, op: StorageOp, then: Then) {
        let id = StorageId(self.next);
        self.next += 1;
        let merge = matches!(op, StorageOp::Merge { .. });
        self.waiting.insert(id.0, (op.keys(), then, merge));
        self.queue.push_back((id, op));
    }

    /// The next op to execute.
    pub(crate) fn poll(&mut self) -> Option<(StorageId, StorageOp)> {
        self.queue.pop_front()
    }

    /// The keys and continuation of a done op (`None`: no op of that id waits).
    pub(crate) fn take(&mut self, id: StorageId) -> Option<(Vec<Key>, Then)> {
        self.waiting
            .remove(&id.0)
            .map(|(keys, then, _)| (keys, then))
    }

    /// The keys of the merges drained or not whose results have not come back.
    pub(crate) fn merging(&self) -> impl Iterator<Item = &Key> + '_ {
        self.waiting
            .values()
            .filter(|(_, _, merge)| *merge)
            .flat_map(|(keys, _, _)| keys)
    }

    /// Ops drained or not whose results have not come back.
    pub(crate) fn in_flight(&self) -> usize {
        self.waiting.len()
    }
}

/// Whether a write was kept: now (with the continuation handed back), or later, once the
/// store has it (the continuation waits for the op).
#[derive(Debug)]
pub(crate) enum Kept {
    /// Done: whether it was kept, and the continuation to run.
    Now(bool, Then),
    /// A storage op carries the continuation.
    Later,
}

impl Then {
    /// The continuation with `ok` folded into its outcome (a part of the write already failed).
    pub(crate) fn and(self, ok: bool) -> Then {
        match self {
            Then::WriteAck { to, req, ok: o } => Then::WriteAck {
                to,
                req,
                ok: o && ok,
            },
            Then::LocalWrite { req, ok: o } => Then::LocalWrite { req, ok: o && ok },
            Then::TransferAck { from, ack, ok: o } => Then::TransferAck {
                from,
                ack,
                ok: o && ok,
            },
            other => other,
        }
    }
}
