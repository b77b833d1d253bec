//! Actor epochs: how a node picks the actor under which it mints a version, so that it never
//! issues the same dot twice.
//!
//! A dotted version vector set drops one of two values that carry the same dot `(actor, counter)`,
//! so a coordinator must know the last counter it issued for a key before it issues the next. The
//! node's actor is `(node id, epoch)`, and the rule is:
//!
//! - A node *reuses* an epoch for a key only when it is one of the key's primaries and its own copy
//!   of the key holds that epoch, handed out by this node since the *floor* (in this life of
//!   the node). Every dot minted under a reused epoch is written to the local store before the
//!   put goes out, so that copy holds the last counter.
//! - Otherwise (not a primary, no copy, a copy from before the floor) it takes a *fresh* epoch
//!   that no version anywhere carries, and its counter starts at 1.
//! - Fresh epochs come from a counter leased in blocks: the end of the lease is written to the
//!   store with an fsync before any epoch of it is used, and a restart starts past it.
//! - Every restart raises the floor past every epoch used before. The runtime sends a put's
//!   versions to the other replicas while its own write is still being flushed (so that the two
//!   fsyncs overlap), so a crash can roll back the last dots a copy holds after they left; and a
//!   store that may lose flushed writes ([`Store::is_durable`] is `false`: `--buffered`) can roll
//!   back more (Riak's kv679). A lost or empty store starts at a random base, and every other
//!   start a random distance past the last lease: a store put back from an older copy (a
//!   backup, a disk snapshot) holds an older lease than the lives after that copy used.
//! - Losing a copy while running raises the floor too: a partition dropped after it was handed
//!   over to its new owners, or a record found damaged. A reaped tombstone *retires* the epochs of
//!   this node it carries instead (each is one key's, since a fresh epoch goes to one key): the
//!   key is gone here, and a put with an old context (of a version before the delete) brings the
//!   epoch back into the key's copy with a counter below the tombstone's; counting on from it would
//!   issue the tombstone's dot again, which the reap's fence covers, so replicas would drop that
//!   write and acknowledge it. Past [`MAX_RETIRED`] retired epochs the floor rises instead. The node may own the key again later
//!   (concurrent ring changes settle on a ring that gives the partition back) and get its copy
//!   back from a replica or a hint that lacks the last dots it issued; counting on from that copy
//!   would issue one of them again.
//!
//! The cost is one clock entry per (node, key) for the first write a node coordinates in each of
//! its lives and after each copy it lost (a partition handed over, a damaged record), plus one per
//! write coordinated by a node that is not a primary (rare: only when every forward failed).

use rand::Rng;

use crate::store::{Store, StoreError};
use crate::types::{Actor, NodeId, Sibs};

/// Epochs handed out per lease (one fsynced meta write each).
const LEASE: u64 = 1 << 16;

const META_FLOOR: &str = "epoch";
const META_LEASE: &str = "epoch-lease";

/// Most epochs a restart skips past the last lease (see [`Epochs::load`]): each life uses far
/// fewer, and the 62-bit space of a first base leaves room for millions of restarts.
const RESTART_JUMP: u64 = 1 << 40;

/// Retired epochs kept (about 40 bytes each); one more raises the floor and forgets them.
const MAX_RETIRED: usize = 1 << 16;

/// The node's actor-epoch counter.
#[derive(Debug, Clone)]
pub(crate) struct Epochs {
    floor: u64,
    next: u64,
    lease_end: u64,
    /// A new lease is being written: no fresh epoch until it is durable.
    leasing: bool,
    /// Epochs of this life (`floor..next`) that are not reused: a tombstone carrying them was
    /// reaped (see the module docs).
    retired: std::collections::BTreeSet<u64>,
}

impl Epochs {
    /// Whether `store` holds no counter: a new store, or one that lost the node's data.
    pub(crate) fn is_new<S: Store>(store: &S) -> Result<bool, StoreError> {
        Ok(store.get_meta(META_FLOOR)?.is_none())
    }

    /// Loads (or creates) the counter and takes a new lease, durably.
    pub(crate) fn load<S: Store>(store: &mut S, rng: &mut impl Rng) -> Result<Self, StoreError> {
        // A new life counts under new epochs only, past the last lease (see the module docs).
        let next = match store.get_meta(META_FLOOR)? {
            Some(bytes) => {
                let past = match store.get_meta(META_LEASE)? {
                    Some(lease) => super::decode_u64(&lease)?,
                    // A store of a version without leases used only its epoch.
                    None => super::decode_u64(&bytes)?.saturating_add(1),
                };
                // A random distance past it: a store put back from an older copy (a backup, a
                // disk snapshot) holds an older lease, and the lives after that copy used the
                // epochs past it.
                past.checked_add(rng.gen_range(1..=RESTART_JUMP))
                    .ok_or_else(|| {
                        StoreError::Io(
                            "the node has used every actor epoch; give it a new id".into(),
                        )
                    })?
            }
            // Lost or new storage: a random base in a 62-bit space, so that the ranges of two
            // lives of a node practically never meet (each uses far fewer than 2^40).
            None => rng.gen_range(1..1u64 << 62),
        };
        let floor = next;
        let mut epochs = Epochs {
            floor,
            next,
            lease_end: next,
            leasing: false,
            retired: std::collections::BTreeSet::new(),
        };
        store.put_meta(META_FLOOR, &floor.to_be_bytes())?;
        epochs.extend(store)?;
        Ok(epochs)
    }

    /// The lowest epoch this node may reuse from a stored copy.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// This node lost its copy of some key (see the module docs): no epoch handed out so far is
    /// reused; the next put of every key it holds takes a fresh one.
    pub(crate) fn raise_floor(&mut self) {
        self.floor = self.next;
        self.retired.clear();
    }

    /// A tombstone carrying `epoch` of this node was reaped: the epoch is not reused (see the
    /// module docs).
    pub(crate) fn retire(&mut self, epoch: u64) {
        if !(self.floor..self.next).contains(&epoch) {
            return;
        }
        if self.retired.len() >= MAX_RETIRED {
            self.raise_floor();
        } else {
            self.retired.insert(epoch);
        }
    }

    /// The next lease's end, once there is one.
    fn next_lease(&self) -> Result<u64, StoreError> {
        self.next.checked_add(LEASE).ok_or_else(|| {
            StoreError::Io("the node has used every actor epoch; give it a new id".into())
        })
    }

    fn extend<S: Store>(&mut self, store: &mut S) -> Result<(), StoreError> {
        let end = self.next_lease()?;
        store.put_meta(META_LEASE, &end.to_be_bytes())?;
        store.sync()?;
        self.lease_end = end;
        Ok(())
    }

    /// An epoch no version carries yet, with the metadata write that extends the lease when this
    /// one is its first: the core has it synced ([`Lease::write`], then [`Epochs::leased`])
    /// before it uses the epoch. `None` while a lease is being written: ask again after it.
    pub(crate) fn fresh(&mut self) -> Result<Option<(u64, Option<Lease>)>, StoreError> {
        if self.leasing {
            return Ok(None);
        }
        let mut lease = None;
        if self.next >= self.lease_end {
            let end = self.next_lease()?;
            self.lease_end = end;
            self.leasing = true;
            lease = Some(Lease { end });
        }
        let e = self.next;
        self.next += 1;
        Ok(Some((e, lease)))
    }

    /// The lease written for [`Epochs::fresh`] is durable (`ok`) or failed: then the epochs of
    /// it are not used, and the next fresh epoch takes a new lease.
    pub(crate) fn leased(&mut self, ok: bool) {
        self.leasing = false;
        if !ok {
            self.lease_end = self.next;
        }
    }

    /// Uses up the lease (tests: the next fresh epoch takes a new one).
    #[cfg(test)]
    pub(crate) fn exhaust_lease(&mut self) {
        self.lease_end = self.next;
    }

    /// The newest epoch of `id` in its copy `local` of a key that this node handed out since the
    /// floor (in `floor..next`): the one a primary may go on counting under. Epochs outside that
    /// range belong to an earlier life of the node (a lost store) or were rolled back.
    pub(crate) fn reusable(&self, id: NodeId, local: &Sibs) -> Option<u64> {
        local
            .entries()
            .iter()
            .map(|e| e.actor)
            .filter(|&(node, epoch): &Actor| {
                node == id
                    && (self.floor..self.next).contains(&epoch)
                    && !self.retired.contains(&epoch)
            })
            .map(|(_, epoch)| epoch)
            .max()
    }
}

/// A new lease of epochs, to be made durable before any of them is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    end: u64,
}

impl Lease {
    /// The metadata write that records it.
    pub(crate) fn write(self) -> super::storage::StorageOp {
        super::storage::StorageOp::PutMeta {
            name: META_LEASE.into(),
            value: self.end.to_be_bytes().to_vec(),
            sync: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::store::MemoryStore;
    use crate::types::ReplayRng;

    #[test]
    fn a_retired_epoch_is_not_reused() {
        let mut store = MemoryStore::default();
        let mut epochs = Epochs::load(&mut store, &mut ReplayRng::seed_from_u64(7)).expect("loads");
        let (e, _) = epochs.fresh().expect("no store error").expect("leased");
        let mut copy = Sibs::default();
        copy.put(
            &dynamo_vclock::VClock::new(),
            (1, e),
            0,
            dynamo_vclock::Value::Live(crate::types::Object::typed(b"v".to_vec(), None)),
        );
        assert_eq!(epochs.reusable(1, &copy), Some(e));
        epochs.retire(e);
        assert_eq!(epochs.reusable(1, &copy), None);
        // An epoch of another life is no concern of this one's.
        epochs.retire(e.wrapping_add(1 << 40));
        assert_eq!(epochs.retired.len(), 1);
    }

    /// Review of the stores (twenty-third session): a node started on an older copy of its
    /// store (a backup or a disk snapshot put back) found the lease of that copy and handed out
    /// the epochs of the lives after it again, under which it had issued dots that replicas
    /// still hold: a new write could take one (kv679). A life starts a random distance past the
    /// last lease, drawn with the start time (`Boot::load`), as a lost store's base is.
    #[test]
    fn a_store_put_back_from_an_older_copy_does_not_hand_out_the_same_epochs_again() {
        let mut store = MemoryStore::default();
        Epochs::load(&mut store, &mut ReplayRng::seed_from_u64(7)).expect("loads");
        let copy = store.clone();
        let mut later = Epochs::load(&mut store, &mut ReplayRng::seed_from_u64(8)).expect("loads");
        let mut restored = copy.clone();
        let mut again =
            Epochs::load(&mut restored, &mut ReplayRng::seed_from_u64(9)).expect("loads");
        let used: Vec<u64> = (0..1_000)
            .map(|_| later.fresh().expect("no store error").expect("leased").0)
            .collect();
        let (first, _) = again.fresh().expect("no store error").expect("leased");
        assert!(
            !(used[0]..=used[999]).contains(&first),
            "epoch {first} was handed out in the life after the copy too"
        );
    }
}
