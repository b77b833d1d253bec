//! The driver task: owns the [`NodeCore`], feeds it inputs, flushes, then sends its outputs.
//!
//! Group commit with overlap: after a batch of inputs the driver starts a flush
//! ([`Store::start_flush`]); when the store hands back a [`SyncJob`] (its fsync), the job runs on
//! a blocking thread and the outputs of the batch wait with it, while the driver goes on
//! handling inputs. Their outputs wait for the next flush, which starts as soon as the current
//! one is done. No acknowledgement, reply or answer leaves before the writes that preceded it are
//! durable; requests that claim nothing (a coordinator's writes to the other replicas, its reads,
//! a forwarded request) leave at once, so that a put's fsyncs on its coordinator and on its
//! replicas overlap rather than follow one another (the core counts on this: see `epochs`).
//!
//! Answers to reads are the exception: a replica's answer to a read, or a get's reply, whose key
//! has no write the store has not synced ([`Store::has_unsynced_write`]) carries only durable
//! versions, and leaves at once too. A get then no longer waits for the fsync of other keys'
//! writes, which under a steady stream of puts is almost every get: read-modify-writes 1.19x, the
//! 95/5 mixes 1.20x (bench/results/profile-2026-12-04.md, sixth section).

use std::collections::{BTreeSet, HashMap, HashSet};

use tokio::sync::{mpsc, oneshot};

use super::delay::DelaySource;
use super::peers::{self, Link, LinkContext, Refused};
use super::refreshed::Refreshed;
use super::{ring_info, AdminReply, AdminRequest, Clock, Input, RuntimeError, MAX_BATCH};
use crate::core::{
    NodeEvent, NodeStatus, RequestMetrics, RequestOp, RequestOutcome, SizeScan, StalenessStatus,
    StoredCore,
};
use crate::message::{ClientError, ClientReply, ClientRequest, PeerMessage};
use crate::store::{Store, StoreError, SyncJob};
use crate::types::{Key, Millis, NodeId, RequestId};

/// How long a stopping node lets its links write what they hold, all links together.
const LINK_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Most outputs whose buffers [`Driver::send`] keeps for reuse.
const SPARE_MAX: usize = 4096;

/// Outputs waiting for a flush to be durable.
#[derive(Default)]
struct Held {
    transmits: Vec<(NodeId, PeerMessage)>,
    replies: Vec<(RequestId, ClientReply)>,
}

/// A flush whose fsync runs on a blocking thread, and the outputs it holds back.
struct InFlight {
    job: tokio::task::JoinHandle<Result<(), StoreError>>,
    held: Held,
    /// When the flush started (its duration feeds the staleness predictions).
    started: std::time::Instant,
}

/// A client request being coordinated: where its reply goes, and what to record of it.
struct Waiting {
    reply: super::Replier,
    op: RequestOp,
    arrived: tokio::time::Instant,
    /// A get's key: its reply leaves at once when the key has no unsynced write.
    reads: Option<Key>,
}

/// The task that owns a core. See the [runtime docs](super).
pub(crate) struct Driver<S: Store> {
    core: StoredCore<S>,
    clock: Clock,
    links: HashMap<NodeId, Link>,
    link_ctx: LinkContext,
    peer_queue: usize,
    waiting: HashMap<RequestId, Waiting>,
    /// Client requests answered, by operation and outcome, with their latencies.
    requests: RequestMetrics,
    next_req: RequestId,
    unreachable: BTreeSet<NodeId>,
    /// Messages that never left (no address, queue full or closed).
    undelivered: Vec<(NodeId, PeerMessage)>,
    /// Messages for each peer's link, queued at the end of a batch of inputs (see
    /// [`Driver::deliver`]).
    outbox: HashMap<NodeId, Vec<PeerMessage>>,
    /// Outputs produced since the last flush started.
    held: Held,
    /// The flush in progress, if any.
    syncing: Option<InFlight>,
    /// Outputs that go with the flush in progress (see [`Driver::ride_along`]).
    riding: Held,
    /// Emptied buffers kept for the next `held`, so that a batch's outputs do not grow new ones.
    spare: Held,
    /// Delay injected into every peer message (experiments).
    delay: Option<DelaySource>,
    /// Peers' reads answered since the last [`Driver::collect`] whose key had no unsynced write
    /// once the read was done: their answers leave at once.
    durable_reads: HashSet<(NodeId, RequestId)>,
    /// An inline fsync failed in this batch (see `durable_now`): the node stops after it.
    failed: Option<StoreError>,
    /// The partition-size measure in progress, with where its answers go: one step of
    /// [`SCAN_STEP`] keys after each batch of inputs (see [`Driver::measure`]). Requests that
    /// arrive while it runs wait for it too: one scan at a time, whoever asks.
    scan: Option<(SizeScan, Vec<oneshot::Sender<AdminReply>>)>,
    /// The staleness prediction of status answers, recomputed at most once a second.
    staleness: Refreshed<Option<StalenessStatus>>,
}

/// How long a status answer's staleness prediction is reused, ms.
const STALENESS_REFRESH: Millis = 1_000;

/// Stored keys a partition-size measure reads between two batches of inputs: the measure reads
/// every key the node holds, and done in one go it stopped a node with a large store for as long
/// as that took.
const SCAN_STEP: usize = 256;

/// Whether to go on after an input.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl<S: Store + Send + 'static> Driver<S> {
    pub(crate) fn new(
        core: StoredCore<S>,
        clock: Clock,
        link_ctx: LinkContext,
        peer_queue: usize,
        delay: Option<DelaySource>,
    ) -> Self {
        Driver {
            core,
            clock,
            links: HashMap::new(),
            link_ctx,
            peer_queue,
            waiting: HashMap::new(),
            requests: RequestMetrics::default(),
            next_req: 1,
            unreachable: BTreeSet::new(),
            undelivered: Vec::new(),
            outbox: HashMap::new(),
            held: Held::default(),
            syncing: None,
            riding: Held::default(),
            spare: Held::default(),
            delay,
            durable_reads: HashSet::new(),
            failed: None,
            scan: None,
            staleness: Refreshed::new(STALENESS_REFRESH),
        }
    }

    /// Runs until [`Input::Shutdown`] or a storage failure.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Input>) -> Result<(), RuntimeError> {
        // The core may have work to do at once (a first gossip round).
        self.pump_and_deliver()?;
        // One timer for the whole run, moved to the core's next deadline when that changes. A
        // timer made afresh for every batch was registered with tokio's time driver each time,
        // and a registration earlier than the driver's planned wake-up writes to its eventfd:
        // 0.25 extra `write` syscalls per get at 50 connections. Moving a registered timer later
        // is a lock-free update.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        loop {
            let deadline = self.core.poll_timeout().map(|t| self.clock.instant_at(t));
            if let Some(d) = deadline {
                if timer.deadline() != d {
                    timer.as_mut().reset(d);
                }
            }
            let mut syncing = self.syncing.take();
            let in_flight = syncing.is_some();
            let sync_done = async {
                match syncing.as_mut() {
                    Some(s) => (&mut s.job).await,
                    None => std::future::pending().await,
                }
            };
            let mut flow = Flow::Continue;
            let mut synced = None;
            tokio::select! {
                biased;
                r = sync_done => synced = Some(r),
                input = rx.recv() => {
                    let Some(input) = input else { break };
                    // One reading of the clock for the whole batch: the core counts milliseconds,
                    // and a batch takes microseconds.
                    let at = tokio::time::Instant::now();
                    flow = self.apply(input, at);
                    self.ride_along(in_flight);
                    if self.waiting.len() > 1 {
                        // Under concurrent load, let this worker read the sockets that are ready
                        // before taking the batch: a yield runs after the I/O driver's next poll,
                        // so the connections' requests join this batch rather than the next.
                        // Bigger batches mean fewer flushes, wake-ups and link writes (gets
                        // 1.28x at 50 connections, bench/results/profile-2026-12-04.md). One
                        // request alone does not wait for it (the yield costs a poll).
                        tokio::task::yield_now().await;
                    }
                    let mut n = 1;
                    while flow == Flow::Continue && n < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(input) => flow = self.apply(input, at),
                            Err(_) => break,
                        }
                        self.ride_along(in_flight);
                        n += 1;
                    }
                }
                _ = &mut timer, if deadline.is_some() => {}
                // A measure in progress goes on when nothing else is ready.
                () = std::future::ready(()), if self.scan.is_some() => {}
            }
            // An inline fsync of this batch failed (an epoch lease's, an admin change's).
            if let Some(e) = self.failed.take().or_else(|| self.core.take_failed_sync()) {
                let held = self.take_held();
                return Err(self.storage_failed(e, held));
            }
            match (synced, syncing) {
                (Some(r), Some(done)) => {
                    let r = r.unwrap_or_else(|e| Err(StoreError::Io(format!("sync task: {e}"))));
                    if let Err(e) = r {
                        return Err(self.storage_failed(e, done.held));
                    }
                    self.core.flushed(micros_since(done.started));
                    self.send(done.held);
                }
                (_, mut syncing) => {
                    if let Some(s) = syncing.as_mut() {
                        s.held.transmits.append(&mut self.riding.transmits);
                        s.held.replies.append(&mut self.riding.replies);
                    }
                    self.syncing = syncing;
                }
            }
            // Inputs can keep the channel busy: run what is due after every batch.
            let now = self.clock.now();
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
            }
            if flow == Flow::Stop {
                self.finish().await?;
                tracing::info!(id = self.core.id(), "node stopped");
                break;
            }
            self.pump_and_deliver()?;
            if self.scan.is_some() {
                self.measure();
                // Let the connections' tasks run: the measure must not keep this worker.
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    /// The node's status, with a staleness prediction at most [`STALENESS_REFRESH`] old.
    fn status(&mut self) -> NodeStatus {
        let now = self.clock.now();
        let core = &self.core;
        let staleness = self.staleness.get(now, || core.staleness());
        self.core.status_with(staleness)
    }

    /// One step of the partition-size measure in progress; answers everyone waiting for it once
    /// it is done. A measure nobody waits for any more (every asker hung up) stops.
    fn measure(&mut self) {
        let Some((mut scan, mut replies)) = self.scan.take() else {
            return;
        };
        replies.retain(|r| !r.is_closed());
        if replies.is_empty() {
            return;
        }
        let answer = match self.core.measure(&mut scan, SCAN_STEP) {
            Ok(Some(sizes)) => AdminReply::PartitionSizes(sizes),
            Ok(None) => {
                self.scan = Some((scan, replies));
                return;
            }
            Err(e) => AdminReply::Failed(e.to_string()),
        };
        for reply in replies {
            let _ = reply.send(answer.clone());
        }
    }

    /// While a flush is in progress: outputs produced since it started that can depend on no
    /// write it does not cover (no write since it started, nothing already waiting for the next
    /// flush, so nothing is reordered) are released with it instead of waiting for the next one.
    /// A read arriving during an fsync thus waits for that fsync only.
    fn ride_along(&mut self, in_flight: bool) {
        if !in_flight
            || !self.held.transmits.is_empty()
            || !self.held.replies.is_empty()
            || self.core.store().has_unflushed_writes()
        {
            return;
        }
        self.collect();
        if self.core.store().has_unflushed_writes() {
            // Handling messages to itself wrote: all of it waits for the next flush.
            return;
        }
        self.riding.transmits.append(&mut self.held.transmits);
        self.riding.replies.append(&mut self.held.replies);
    }

    /// Stopping: waits for the flush in progress, flushes the rest, sends everything.
    async fn finish(&mut self) -> Result<(), RuntimeError> {
        if let Some(done) = self.syncing.take() {
            let r = done
                .job
                .await
                .unwrap_or_else(|e| Err(StoreError::Io(format!("sync task: {e}"))));
            if let Err(e) = r {
                return Err(self.storage_failed(e, done.held));
            }
            self.send(done.held);
        }
        self.collect();
        if let Err(e) = self.core.store_mut().flush() {
            let held = self.take_held();
            return Err(self.storage_failed(e, held));
        }
        let held = self.take_held();
        self.send(held);
        self.deliver();
        // The links write what the last flushes queued (acknowledgements of durable writes,
        // forwarded replies) before they go, for a bounded time: a peer that is down is given up.
        let deadline = tokio::time::Instant::now() + LINK_DRAIN;
        for (_, link) in self.links.drain() {
            link.drain(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await;
        }
        Ok(())
    }

    /// Hands `input`, which arrived at `at`, to the core.
    fn apply(&mut self, input: Input, at: tokio::time::Instant) -> Flow {
        let now = self.clock.at(at);
        match input {
            Input::Peer { from, msg } => {
                // A replica's read runs within this call (the store is synchronous) and writes
                // nothing: if its key has no unsynced write now, the answer shows only durable
                // versions.
                if let PeerMessage::Read { req, key, .. } = &msg {
                    if !self.core.store().has_unsynced_write(key) {
                        self.durable_reads.insert((from, *req));
                    }
                }
                self.core.handle_message(now, from, msg);
            }
            Input::Client { request, reply } => {
                let req = self.next_req;
                self.next_req += 1;
                let reads = match &request {
                    ClientRequest::Get { key, .. } => Some(key.clone()),
                    _ => None,
                };
                let waiting = Waiting {
                    reply,
                    op: RequestOp::of(&request),
                    arrived: at,
                    reads,
                };
                self.waiting.insert(req, waiting);
                self.core.handle_client(now, req, request);
            }
            Input::Admin { request, reply } => {
                let answer = match request {
                    AdminRequest::Status => AdminReply::Status(Box::new(self.status())),
                    AdminRequest::Ring => AdminReply::Ring(ring_info(self.core.ring())),
                    AdminRequest::Leave => match self.core.check_leave() {
                        Ok(()) => {
                            tracing::info!(id = self.core.id(), "leaving the cluster");
                            self.core.leave(now);
                            if !self.durable_now() {
                                return Flow::Continue;
                            }
                            AdminReply::Leaving
                        }
                        Err(e) => AdminReply::ChangeRefused(e),
                    },
                    AdminRequest::Plan(change) => match self.core.plan_change(&change) {
                        Ok(plan) => AdminReply::Plan(Box::new(plan)),
                        Err(e) => AdminReply::ChangeRefused(e),
                    },
                    AdminRequest::Commit { version, change } => {
                        match self.core.commit_change(now, version, &change) {
                            Ok(plan) => {
                                if !self.durable_now() {
                                    return Flow::Continue;
                                }
                                tracing::info!(
                                    id = self.core.id(),
                                    version = version + 1,
                                    joins = ?change.joins,
                                    leaves = ?change.leaves,
                                    "committed a membership change"
                                );
                                AdminReply::Plan(Box::new(plan))
                            }
                            Err(e) => AdminReply::ChangeRefused(e),
                        }
                    }
                    AdminRequest::PartitionSizes => {
                        // Measured a few keys at a time, between batches of inputs, by one
                        // scan that every request arriving meanwhile waits for.
                        match &mut self.scan {
                            Some((_, replies)) => replies.push(reply),
                            None => self.scan = Some((SizeScan::default(), vec![reply])),
                        }
                        return Flow::Continue;
                    }
                };
                let _ = reply.send(answer);
            }
            #[cfg(feature = "http")]
            Input::Metrics { reply } => {
                let _ = reply.send(Box::new(super::MetricsSnapshot {
                    status: self.status(),
                    requests: self.requests.clone(),
                }));
            }
            Input::Unreachable(peer) => self.core.peer_unreachable(now, peer),
            Input::Undelivered(peer, msgs) => {
                for msg in msgs {
                    self.core.undelivered(now, peer, msg);
                }
            }
            Input::Resend(peer, msgs) => {
                for msg in msgs {
                    self.transmit(peer, msg);
                }
            }
            Input::Shutdown => return Flow::Stop,
        }
        Flow::Continue
    }

    /// [`Driver::pump`], then hands the batch's messages to the links; again while a link refused
    /// some (they go back into the core as undelivered, which may send others).
    fn pump_and_deliver(&mut self) -> Result<(), RuntimeError> {
        loop {
            self.pump()?;
            self.deliver();
            if self.undelivered.is_empty() && self.unreachable.is_empty() {
                return Ok(());
            }
        }
    }

    /// Collects what the core produced, starts a flush unless one is in progress, and sends
    /// the outputs at once when the store has nothing to sync; loops while sending produced more
    /// inputs (unreachable peers, undelivered messages).
    fn pump(&mut self) -> Result<(), RuntimeError> {
        loop {
            self.collect();
            if self.syncing.is_some() {
                return Ok(());
            }
            // Requests to other replicas leave before this node's commit and fsync, to overlap.
            self.deliver();
            let started = std::time::Instant::now();
            let job: Option<SyncJob> = match self.core.store_mut().start_flush() {
                Ok(job) => job,
                Err(e) => {
                    let held = self.take_held();
                    return Err(self.storage_failed(e, held));
                }
            };
            let held = self.take_held();
            match job {
                Some(job) => {
                    self.syncing = Some(InFlight {
                        job: tokio::task::spawn_blocking(job),
                        held,
                        started,
                    });
                    return Ok(());
                }
                None => {
                    self.core.flushed(micros_since(started));
                    self.send(held);
                    if self.unreachable.is_empty() && self.undelivered.is_empty() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Takes every output of the core into `held`; messages to itself, undelivered messages and
    /// unreachable peers go back into the core at once (they are inputs, not outputs).
    fn collect(&mut self) {
        let me = self.core.id();
        loop {
            let mut local: Vec<PeerMessage> = Vec::new();
            while let Some((to, msg)) = self.core.poll_transmit() {
                if to == me {
                    local.push(msg);
                } else if before_flush(&msg) || self.durable_answer(to, &msg) {
                    self.transmit(to, msg);
                } else {
                    self.held.transmits.push((to, msg));
                }
            }
            while let Some(event) = self.core.poll_event() {
                log_event(me, &event);
            }
            while let Some((req, reply)) = self.core.poll_reply() {
                if self.durable_reply(req, &reply) {
                    if let Some(waiting) = self.waiting.remove(&req) {
                        self.answer(waiting, reply);
                    }
                } else {
                    self.held.replies.push((req, reply));
                }
            }
            // Every read applied so far has been answered (the store is synchronous).
            self.durable_reads.clear();
            if local.is_empty() && self.unreachable.is_empty() && self.undelivered.is_empty() {
                return;
            }
            let now = self.clock.now();
            for msg in local {
                self.core.handle_message(now, me, msg);
            }
            for (peer, msg) in std::mem::take(&mut self.undelivered) {
                self.core.undelivered(now, peer, msg);
            }
            for peer in std::mem::take(&mut self.unreachable) {
                self.core.peer_unreachable(now, peer);
            }
        }
    }

    /// Whether `msg` answers a peer's read that saw only durable versions (see the module docs).
    fn durable_answer(&mut self, to: NodeId, msg: &PeerMessage) -> bool {
        match msg {
            PeerMessage::ReadReply { req, .. } => self.durable_reads.remove(&(to, *req)),
            _ => false,
        }
    }

    /// Whether `reply` is a get's whose key has no unsynced write: whatever the local read saw
    /// is durable by now, and the other replicas answered only with what was durable on them.
    fn durable_reply(&self, req: RequestId, reply: &ClientReply) -> bool {
        matches!(reply, ClientReply::Got { .. })
            && self
                .waiting
                .get(&req)
                .and_then(|w| w.reads.as_deref())
                .is_some_and(|key| !self.core.store().has_unsynced_write(key))
    }

    /// The outputs held so far, leaving `held` empty (with the spare buffers).
    fn take_held(&mut self) -> Held {
        std::mem::replace(&mut self.held, std::mem::take(&mut self.spare))
    }

    /// Sends outputs whose writes are durable, and keeps their emptied buffers as the spare.
    fn send(&mut self, mut held: Held) {
        for (to, msg) in held.transmits.drain(..) {
            self.transmit(to, msg);
        }
        for (req, reply) in held.replies.drain(..) {
            if let Some(waiting) = self.waiting.remove(&req) {
                self.answer(waiting, reply);
            }
        }
        let size = |h: &Held| h.transmits.capacity() + h.replies.capacity();
        // The largest buffers seen, up to a bound (a burst does not pin its memory).
        if size(&self.spare) < size(&held) && size(&held) <= SPARE_MAX {
            self.spare = held;
        }
    }

    /// Sends a client its reply, and records the request.
    fn answer(&mut self, waiting: Waiting, reply: ClientReply) {
        let seconds = waiting.arrived.elapsed().as_secs_f64();
        self.requests
            .record(waiting.op, RequestOutcome::of(&reply), seconds);
        let _ = waiting.reply.send(reply);
    }

    /// Whether every inline fsync the core made so far succeeded (an admin change is written
    /// with one, whose result the core only counts): if not, what it wrote may not survive a
    /// crash, so a reply is not sent (the connection says the node is shutting down) and the
    /// node stops after this batch, as for a failed flush.
    fn durable_now(&mut self) -> bool {
        match self.core.take_failed_sync() {
            None => true,
            Some(e) => {
                self.failed.get_or_insert(e);
                false
            }
        }
    }

    /// A flush failed: nothing it held back may leave (it could acknowledge a write that is not
    /// on disk). Fails the waiting clients; the node stops.
    fn storage_failed(&mut self, e: StoreError, held: Held) -> RuntimeError {
        drop(held);
        tracing::error!(id = self.core.id(), error = %e, "storage flush failed; stopping the node");
        for (_, waiting) in std::mem::take(&mut self.waiting) {
            let reply = ClientReply::Failed(ClientError::Storage(e.to_string()));
            self.answer(waiting, reply);
        }
        RuntimeError::Store(e)
    }

    fn transmit(&mut self, to: NodeId, msg: PeerMessage) {
        let Some(address) = self.core.address_of(to) else {
            tracing::debug!(peer = to, "no address known for peer");
            self.undelivered.push((to, msg));
            return;
        };
        let stale = self
            .links
            .get(&to)
            .is_none_or(|l| l.address != address || l.outlet.is_closed());
        // A generation raised since start (peers knew a later one of this id) goes in every
        // link's next handshake, those of links that exist already too.
        self.link_ctx
            .generation
            .store(self.core.generation(), std::sync::atomic::Ordering::Relaxed);
        if stale {
            let address = address.to_string();
            let link = peers::spawn(self.link_ctx.clone(), to, address, self.peer_queue);
            // The old link hands back what never left, to go again on this one.
            if let Some(old) = self.links.insert(to, link) {
                old.retire();
            }
        }
        let Some(link) = self.links.get(&to) else {
            return;
        };
        if let Some(delay) = self.delay.as_mut() {
            // Held, then queued; a full or closed queue then loses the message, which the core
            // handles as it handles any lost message (timeouts).
            let after = delay.draw();
            let outlet = link.outlet.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = outlet.offer(vec![msg]);
            });
            return;
        }
        self.outbox.entry(to).or_default().push(msg);
    }

    /// Queues what the last batch of inputs sent to each peer on its link, one batch per peer
    /// (so that the link writes it with one syscall); what a link refuses is undelivered.
    fn deliver(&mut self) {
        for (to, batch) in self.outbox.iter_mut() {
            if batch.is_empty() {
                continue;
            }
            let batch = std::mem::take(batch);
            let refused = match self.links.get(to) {
                Some(link) => match link.outlet.offer(batch) {
                    Ok(()) => continue,
                    Err(Refused::Full(batch)) => {
                        tracing::warn!(
                            peer = to,
                            "outbound queue full; treating peer as unreachable"
                        );
                        batch
                    }
                    Err(Refused::Closed(batch)) => {
                        self.links.remove(to);
                        batch
                    }
                },
                None => batch,
            };
            self.undelivered
                .extend(refused.into_iter().map(|m| (*to, m)));
        }
    }
}

/// Microseconds since `started`.
fn micros_since(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Logs an operator event at info (warn for a member believed down, and for dropped hints).
fn log_event(me: NodeId, event: &NodeEvent) {
    match event {
        NodeEvent::MemberUp { id } => tracing::info!(id = me, member = id, "member up"),
        NodeEvent::MemberDown { id } => tracing::warn!(id = me, member = id, "member down"),
        NodeEvent::MemberJoined { id, restarted } => {
            tracing::info!(id = me, member = id, restarted, "member joined")
        }
        NodeEvent::MemberLeft { id } => tracing::info!(id = me, member = id, "member left"),
        NodeEvent::RingInstalled { version, members } => {
            tracing::info!(id = me, version, ?members, "ring installed")
        }
        NodeEvent::RingMismatch { from, theirs, ours } => tracing::error!(
            id = me,
            peer = from,
            theirs,
            ours,
            "a peer's ring has another shape than this node's configuration: not taken. Set `n` \
             and `partitions` alike on every node"
        ),
        NodeEvent::HintsDelivered { node, count } => {
            tracing::info!(id = me, to = node, count, "hints delivered")
        }
        NodeEvent::HintsDropped { count } => tracing::warn!(id = me, count, "hints dropped"),
        NodeEvent::TransferStarted { partition, to } => {
            tracing::info!(id = me, partition, to, "transfer started")
        }
        NodeEvent::TransferFinished { partition, to } => {
            tracing::info!(id = me, partition, to, "transfer finished")
        }
    }
}

/// Whether `msg` may leave before the store's writes that preceded it are durable: a request that
/// acknowledges nothing (a coordinator's write or read to another replica, a forwarded client
/// request). Whatever answers or acknowledges waits for the flush.
fn before_flush(msg: &PeerMessage) -> bool {
    matches!(
        msg,
        PeerMessage::Write { req: Some(_), .. }
            | PeerMessage::Read { .. }
            | PeerMessage::Forward { .. }
    )
}

#[cfg(test)]
mod tests;
