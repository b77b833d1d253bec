//! [`StoredCore`]: a [`NodeCore`] with its [`Store`], executing every storage op as soon as the
//! core emits it. The simulator, the tests and the runtime's driver use it; a driver that wants
//! its storage elsewhere (another thread, later) drives a bare [`NodeCore`] instead.

use std::ops::Deref;

use super::change::{ChangeError, ChangePlan, ChangeRequest, PartitionSize};
use super::digest::encode_siblings;
use super::storage::{execute, StorageOp, StorageResult};
use super::{Boot, NodeCore, NodeError, NodeEvent};
use crate::config::NodeConfig;
use crate::message::{ClientReply, ClientRequest, PeerMessage};
use crate::store::{Store, StoreError};
use crate::types::{Key, Millis, NodeId, RequestId};

/// A [`NodeCore`] and its store. Every input runs the core's storage ops on the store, in order,
/// feeding each result back, until the core asks for none; then its messages, replies and
/// events are ready to drain. Queries go to the core through [`Deref`].
pub struct StoredCore<S: Store> {
    core: NodeCore,
    store: S,
    /// The time of the last input (storage results are handed back at it).
    now: Millis,
    /// Storage runs only when [`StoredCore::run_storage`] is called (see
    /// [`StoredCore::set_deferred`]).
    deferred: bool,
    /// The first inline fsync that failed and was not taken yet (see
    /// [`StoredCore::take_failed_sync`]).
    failed_sync: Option<StoreError>,
}

impl<S: Store> StoredCore<S> {
    /// Starts node `id` on `store` ([`Boot::load`], then [`NodeCore::new`]).
    pub fn new(
        id: NodeId,
        address: String,
        config: NodeConfig,
        mut store: S,
        now: Millis,
        seed: u64,
    ) -> Result<Self, NodeError> {
        let boot = Boot::load(&mut store, id, &config, now, seed)?;
        let core = NodeCore::new(id, address, config, boot, now, seed)?;
        let mut stored = StoredCore {
            core,
            store,
            now,
            deferred: false,
            failed_sync: None,
        };
        stored.run_storage(now);
        Ok(stored)
    }

    /// Executes every storage op the core asked for, feeding back each result (which may ask
    /// for more), at time `now`.
    pub fn run_storage(&mut self, now: Millis) {
        self.now = self.now.max(now);
        while let Some((id, op)) = self.core.poll_storage() {
            let result = execute(&mut self.store, &op);
            if let (StorageOp::PutMeta { sync: true, .. }, StorageResult::Written(Err(e))) =
                (&op, &result)
            {
                self.failed_sync.get_or_insert_with(|| e.clone());
            }
            self.core.handle_storage(self.now, id, result);
        }
    }

    /// The first inline fsync (a metadata write that must be durable at once: an epoch lease, a
    /// leave, a commit) that failed since the last call. The core only counts such a failure;
    /// what it wrote may not survive a crash, so a driver stops the node rather than confirm
    /// it.
    pub fn take_failed_sync(&mut self) -> Option<StoreError> {
        self.failed_sync.take()
    }

    /// Deferred (`true`): inputs leave their storage ops queued until
    /// [`StoredCore::run_storage`], as a driver whose disk is busy does (the simulator's slow
    /// disk). The caller must then hold the outputs of every input until the ops queued by it
    /// ran, as a durable driver holds them until its flush.
    pub fn set_deferred(&mut self, deferred: bool) {
        self.deferred = deferred;
    }

    /// Seals the contexts this node hands its clients with `seal` (see
    /// [`ContextSeal`](super::ContextSeal)); every node of a cluster must use the same.
    pub fn set_context_seal(&mut self, seal: super::ContextSeal) {
        self.core.seal = seal;
    }

    /// Whether storage ops wait to run (deferred mode).
    pub fn storage_pending(&self) -> bool {
        self.core.storage_in_flight() > 0
    }

    /// Runs one input on the core, then its storage ops (unless deferred).
    fn input(&mut self, now: Millis, f: impl FnOnce(&mut NodeCore)) {
        self.now = self.now.max(now);
        f(&mut self.core);
        if !self.deferred {
            self.run_storage(now);
        }
    }

    /// [`NodeCore::handle_client`].
    pub fn handle_client(&mut self, now: Millis, req: RequestId, request: ClientRequest) {
        self.input(now, |c| c.handle_client(now, req, request));
    }

    /// [`NodeCore::handle_message`].
    pub fn handle_message(&mut self, now: Millis, from: NodeId, msg: PeerMessage) {
        self.input(now, |c| c.handle_message(now, from, msg));
    }

    /// [`NodeCore::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Millis) {
        self.input(now, |c| c.handle_timeout(now));
    }

    /// [`NodeCore::peer_unreachable`].
    pub fn peer_unreachable(&mut self, now: Millis, peer: NodeId) {
        self.input(now, |c| c.peer_unreachable(now, peer));
    }

    /// [`NodeCore::undelivered`].
    pub fn undelivered(&mut self, now: Millis, peer: NodeId, msg: PeerMessage) {
        self.input(now, |c| c.undelivered(now, peer, msg));
    }

    /// [`NodeCore::leave`].
    pub fn leave(&mut self, now: Millis) {
        self.input(now, |c| c.leave(now));
    }

    /// [`NodeCore::commit_change`].
    pub fn commit_change(
        &mut self,
        now: Millis,
        version: u64,
        request: &ChangeRequest,
    ) -> Result<ChangePlan, ChangeError> {
        let mut result = Err(ChangeError::Empty);
        self.input(now, |c| result = c.commit_change(now, version, request));
        result
    }

    /// [`NodeCore::flushed`].
    pub fn flushed(&mut self, micros: u64) {
        self.core.flushed(micros);
    }

    /// [`NodeCore::poll_transmit`].
    pub fn poll_transmit(&mut self) -> Option<(NodeId, PeerMessage)> {
        self.core.poll_transmit()
    }

    /// [`NodeCore::poll_reply`].
    pub fn poll_reply(&mut self) -> Option<(RequestId, ClientReply)> {
        self.core.poll_reply()
    }

    /// [`NodeCore::poll_event`].
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.core.poll_event()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (to flush it).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives the store back (the simulator keeps it across a crash).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Keys and bytes of every range this node holds data of, in one go (reads every stored
    /// key; a node's driver measures [a few keys at a time](StoredCore::measure) instead).
    pub fn partition_sizes(&self) -> Result<Vec<PartitionSize>, StoreError> {
        let mut scan = SizeScan::default();
        loop {
            if let Some(sizes) = self.measure(&mut scan, usize::MAX)? {
                return Ok(sizes);
            }
        }
    }

    /// Goes on with `scan`, reading at most `budget` stored keys: the sizes once every range is
    /// measured, `None` while keys are left. Each range's keys are those indexed when its turn
    /// came (a key written later in that range is not counted, one removed counts no bytes).
    pub fn measure(
        &self,
        scan: &mut SizeScan,
        budget: usize,
    ) -> Result<Option<Vec<PartitionSize>>, StoreError> {
        let mut left = budget.max(1);
        loop {
            if scan.keys.is_empty() {
                if let Some(done) = scan.current.take() {
                    scan.sizes.push(done);
                }
                if scan.next >= self.core.holdings.partitions() {
                    return Ok(Some(std::mem::take(&mut scan.sizes)));
                }
                let p = scan.next;
                scan.next += 1;
                scan.keys = self.core.holdings.keys(p).keys().cloned().collect();
                if !scan.keys.is_empty() {
                    scan.current = Some(PartitionSize {
                        range: p,
                        keys: scan.keys.len() as u64,
                        bytes: 0,
                    });
                }
                continue;
            }
            if left == 0 {
                return Ok(None);
            }
            let take = left.min(scan.keys.len());
            left -= take;
            let mut bytes = 0u64;
            for key in scan.keys.drain(scan.keys.len() - take..) {
                if let Some(siblings) = self.store.get(&key)? {
                    bytes += (key.len() + encode_siblings(&siblings).len()) as u64;
                }
            }
            if let Some(current) = scan.current.as_mut() {
                current.bytes += bytes;
            }
        }
    }
}

/// A measure of partition sizes in progress ([`StoredCore::measure`]).
#[derive(Debug, Default)]
pub struct SizeScan {
    /// The next range to measure.
    next: usize,
    /// The range being measured, so far.
    current: Option<PartitionSize>,
    /// Its keys not read yet.
    keys: Vec<Key>,
    /// The ranges measured.
    sizes: Vec<PartitionSize>,
}

impl<S: Store> Deref for StoredCore<S> {
    type Target = NodeCore;

    fn deref(&self) -> &NodeCore {
        &self.core
    }
}
