//! The driver task: owns the [`NodeCore`], feeds it inputs, flushes, then sends its outputs.

use std::collections::{BTreeSet, HashMap};

use tokio::sync::{mpsc, oneshot};

use super::delay::DelaySource;
use super::peers::{self, Link, LinkContext};
use super::{ring_info, AdminReply, AdminRequest, Clock, Input, RuntimeError, MAX_BATCH};
use crate::core::{NodeCore, NodeEvent, RequestMetrics, RequestOp, RequestOutcome};
use crate::message::{ClientError, ClientReply, PeerMessage};
use crate::store::Store;
use crate::types::{NodeId, RequestId};

/// The task that owns a core. See the [runtime docs](super).
pub(crate) struct Driver<S: Store> {
    core: NodeCore<S>,
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
    /// Delay injected into every peer message (experiments).
    delay: Option<DelaySource>,
}

/// A client request being coordinated: where its reply goes, and what to record of it.
struct Waiting {
    reply: oneshot::Sender<ClientReply>,
    op: RequestOp,
    arrived: tokio::time::Instant,
}

/// Whether to go on after an input.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl<S: Store + Send + 'static> Driver<S> {
    pub(crate) fn new(
        core: NodeCore<S>,
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
            delay,
        }
    }

    /// Runs until [`Input::Shutdown`] or a storage failure.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Input>) -> Result<(), RuntimeError> {
        // The core may have work to do at once (a first gossip round).
        self.output()?;
        loop {
            let deadline = self.core.poll_timeout().map(|t| self.clock.instant_at(t));
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let mut flow = Flow::Continue;
            tokio::select! {
                biased;
                input = rx.recv() => {
                    let Some(input) = input else { break };
                    flow = self.apply(input);
                    let mut n = 1;
                    while flow == Flow::Continue && n < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(input) => flow = self.apply(input),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                }
                _ = timer => {}
            }
            // Inputs can keep the channel busy: run what is due after every batch.
            let now = self.clock.now();
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
            }
            self.output()?;
            if flow == Flow::Stop {
                tracing::info!(id = self.core.id(), "node stopped");
                break;
            }
        }
        Ok(())
    }

    fn apply(&mut self, input: Input) -> Flow {
        let now = self.clock.now();
        match input {
            Input::Peer { from, msg } => self.core.handle_message(now, from, msg),
            Input::Client { request, reply } => {
                let req = self.next_req;
                self.next_req += 1;
                let waiting = Waiting {
                    reply,
                    op: RequestOp::of(&request),
                    arrived: tokio::time::Instant::now(),
                };
                self.waiting.insert(req, waiting);
                self.core.handle_client(now, req, request);
            }
            Input::Admin { request, reply } => {
                let answer = match request {
                    AdminRequest::Status => AdminReply::Status(Box::new(self.core.status())),
                    AdminRequest::Ring => AdminReply::Ring(ring_info(self.core.ring())),
                    AdminRequest::Leave => {
                        tracing::info!(id = self.core.id(), "leaving the cluster");
                        self.core.leave(now);
                        AdminReply::Leaving
                    }
                    AdminRequest::Plan(change) => match self.core.plan_change(&change) {
                        Ok(plan) => AdminReply::Plan(Box::new(plan)),
                        Err(e) => AdminReply::ChangeRefused(e),
                    },
                    AdminRequest::Commit { version, change } => {
                        match self.core.commit_change(now, version, &change) {
                            Ok(plan) => {
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
                    AdminRequest::PartitionSizes => match self.core.partition_sizes() {
                        Ok(sizes) => AdminReply::PartitionSizes(sizes),
                        Err(e) => AdminReply::Failed(e.to_string()),
                    },
                };
                let _ = reply.send(answer);
            }
            #[cfg(feature = "http")]
            Input::Metrics { reply } => {
                let _ = reply.send(Box::new(super::MetricsSnapshot {
                    status: self.core.status(),
                    requests: self.requests.clone(),
                }));
            }
            Input::Unreachable(peer) => self.core.peer_unreachable(now, peer),
            Input::Undelivered(peer, msgs) => {
                for msg in msgs {
                    self.core.undelivered(now, peer, msg);
                }
            }
            Input::Shutdown => return Flow::Stop,
        }
        Flow::Continue
    }

    /// Flushes the store, then sends everything the core produced; loops while sending produced
    /// more inputs (messages to itself, unreachable peers).
    fn output(&mut self) -> Result<(), RuntimeError> {
        let me = self.core.id();
        loop {
            let started = std::time::Instant::now();
            let flushed = self.core.store_mut().flush();
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.core.flushed(micros);
            if let Err(e) = flushed {
                // Nothing produced since the last flush may leave: it could acknowledge a write
                // that is not on disk. Fail the waiting clients and stop the node.
                tracing::error!(id = me, error = %e, "storage flush failed; stopping the node");
                for (_, waiting) in std::mem::take(&mut self.waiting) {
                    let reply = ClientReply::Failed(ClientError::Storage(e.to_string()));
                    self.answer(waiting, reply);
                }
                return Err(RuntimeError::Store(e));
            }
            let mut local: Vec<PeerMessage> = Vec::new();
            while let Some((to, msg)) = self.core.poll_transmit() {
                if to == me {
                    local.push(msg);
                } else {
                    self.transmit(to, msg);
                }
            }
            while let Some(event) = self.core.poll_event() {
                log_event(me, &event);
            }
            while let Some((req, reply)) = self.core.poll_reply() {
                if let Some(waiting) = self.waiting.remove(&req) {
                    self.answer(waiting, reply);
                }
            }
            if local.is_empty() && self.unreachable.is_empty() && self.undelivered.is_empty() {
                return Ok(());
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

    /// Sends a client its reply, and records the request.
    fn answer(&mut self, waiting: Waiting, reply: ClientReply) {
        let seconds = waiting.arrived.elapsed().as_secs_f64();
        self.requests
            .record(waiting.op, RequestOutcome::of(&reply), seconds);
        let _ = waiting.reply.send(reply);
    }

    fn transmit(&mut self, to: NodeId, msg: PeerMessage) {
        let Some(address) = self.core.address_of(to).map(str::to_string) else {
            tracing::debug!(peer = to, "no address known for peer");
            self.undelivered.push((to, msg));
            return;
        };
        let stale = self
            .links
            .get(&to)
            .is_none_or(|l| l.address != address || l.queue.is_closed());
        if stale {
            let link = peers::spawn(self.link_ctx.clone(), to, address, self.peer_queue);
            self.links.insert(to, link);
        }
        let Some(link) = self.links.get(&to) else {
            return;
        };
        if let Some(delay) = self.delay.as_mut() {
            // Held, then queued; a full or closed queue then loses the message, which the core
            // handles as it handles any lost message (timeouts).
            let (queue, after) = (link.queue.clone(), delay.draw());
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = queue.try_send(msg);
            });
            return;
        }
        match link.queue.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                tracing::warn!(
                    peer = to,
                    "outbound queue full; treating peer as unreachable"
                );
                self.undelivered.push((to, msg));
            }
            Err(mpsc::error::TrySendError::Closed(msg)) => {
                self.links.remove(&to);
                self.undelivered.push((to, msg));
            }
        }
    }
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
