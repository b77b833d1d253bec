//! The event loop: delivering messages, firing timers, running clients.

use rand::Rng;

use super::net::Fate;
use super::workload::{key_bytes, value_for, written_value, Op, OpKind, Outcome};
use super::{Event, Sim};
use crate::core::NodeStats;
use crate::message::{ClientReply, ClientRequest};
use crate::store::Store as _;
use crate::types::{Millis, NodeId};

impl Sim {
    /// Processes the next event; `false` when nothing is scheduled.
    pub(super) fn step(&mut self) -> bool {
        let Some((time, event)) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(time);
        self.stats.events += 1;
        let Some(event) = self.unless_paused(event) else {
            return true;
        };
        // Each node reads its own clock ([`super::SimConfig::clock_skew`]).
        let now = match &event {
            Event::Deliver { to: node, .. }
            | Event::Refused { node, .. }
            | Event::Timer { node, .. }
            | Event::Request { node, .. }
            | Event::Disk { node, .. } => self.local_ms(*node),
            _ => self.now_ms(),
        };
        match event {
            Event::Deliver {
                from,
                to,
                incarnation,
                msg,
            } => match self.live(to, incarnation) {
                Some(_) => {
                    if let Some(log) = self.replica_log.as_mut() {
                        log.delivered(self.now, from, to, &msg);
                    }
                    let Some(core) = self.live(to, incarnation) else {
                        return true;
                    };
                    core.handle_message(now, from, msg);
                    self.stats.messages_delivered += 1;
                    self.after_input(to);
                }
                None => self.stats.messages_lost_to_crash += 1,
            },
            Event::Refused {
                node,
                incarnation,
                peer,
                msg,
            } => {
                if let Some(core) = self.live(node, incarnation) {
                    core.undelivered(now, peer, msg);
                    self.after_input(node);
                }
            }
            Event::Timer {
                node,
                incarnation,
                at,
            } => {
                let Some(slot) = self.slots.get_mut(node as usize) else {
                    return true;
                };
                if slot.incarnation != incarnation {
                    return true;
                }
                if slot.armed == Some(at) {
                    slot.armed = None;
                }
                let Some(core) = slot.core.as_mut() else {
                    return true;
                };
                if core.poll_timeout().is_some_and(|d| d <= now) {
                    core.handle_timeout(now);
                    if core.poll_timeout().is_some_and(|d| d <= now) {
                        slot.due_streak += 1;
                        if slot.due_streak == 3 {
                            self.stats.still_due += 1;
                        }
                    } else {
                        slot.due_streak = 0;
                    }
                    self.arm_after(node, true);
                } else {
                    slot.due_streak = 0;
                }
                self.after_input(node);
            }
            Event::Request {
                node,
                incarnation,
                op,
                request,
            } => {
                if let Some(core) = self.live(node, incarnation) {
                    core.handle_client(now, op, request);
                    self.after_input(node);
                } else if let Some(client) = self.pending_client(op) {
                    // The node went down while the request was on its way: the connection is
                    // refused, and the client knows nothing was applied.
                    let refused = ClientReply::Failed(crate::message::ClientError::Unavailable(
                        "connection refused: the node is down".into(),
                    ));
                    self.finish(client, op, Some(refused));
                }
            }
            Event::Reply { op, reply } => {
                self.answered.remove(&op);
                if let Some(client) = self.pending_client(op) {
                    self.finish(client, op, Some(reply));
                }
            }
            Event::ClientTimeout { op } => {
                if let Some(client) = self.pending_client(op) {
                    self.finish(client, op, None);
                }
            }
            Event::Wake { client } => self.wake(client),
            Event::Resume {
                node,
                incarnation,
                pause,
            } => self.scheduled_resume(node, incarnation, pause),
            Event::Disk { node, incarnation } => {
                if let Some(slot) = self.slots.get_mut(node as usize) {
                    if slot.incarnation == incarnation {
                        slot.disk_armed = false;
                    }
                }
                if let Some(core) = self.live(node, incarnation) {
                    core.run_storage(now);
                    self.after_input(node);
                }
            }
        }
        true
    }

    fn live(
        &mut self,
        node: NodeId,
        incarnation: u32,
    ) -> Option<&mut crate::core::StoredCore<crate::store::MemoryStore>> {
        self.slots
            .get_mut(node as usize)
            .filter(|s| s.incarnation == incarnation)
            .and_then(|s| s.core.as_mut())
    }

    fn pending_client(&self, op: u64) -> Option<u32> {
        self.history
            .get(op)
            .filter(|o| o.complete.is_none())
            .map(|o| o.client)
    }

    /// Drains a node's outputs into the network and to the clients, then re-arms its timer. On
    /// a slow disk, outputs wait while the node has storage ops to run, and a disk event is
    /// scheduled for them.
    pub(super) fn after_input(&mut self, node: NodeId) {
        let mut out = std::mem::take(&mut self.outbox);
        let mut replies = std::mem::take(&mut self.replies);
        let mut disk = None;
        let sync_every = self.config.buffered.map(|ms| ms.saturating_mul(1000));
        let incarnation = match self.slots.get_mut(node as usize) {
            Some(slot) => {
                let Some(core) = slot.core.as_mut() else {
                    return;
                };
                if sync_every.is_some_and(|every| self.now.saturating_sub(slot.synced_at) >= every)
                {
                    // A memory store's sync cannot fail.
                    let _ = core.store_mut().sync();
                    slot.synced_at = self.now;
                }
                if core.storage_pending() {
                    slot.held
                        .extend(std::iter::from_fn(|| core.poll_transmit()));
                    slot.held_replies
                        .extend(std::iter::from_fn(|| core.poll_reply()));
                    if !slot.disk_armed {
                        slot.disk_armed = true;
                        disk = Some(slot.incarnation);
                    }
                } else {
                    out.append(&mut slot.held);
                    replies.append(&mut slot.held_replies);
                    while let Some(t) = core.poll_transmit() {
                        out.push(t);
                    }
                    while let Some(r) = core.poll_reply() {
                        replies.push(r);
                    }
                }
                slot.incarnation
            }
            None => return,
        };
        if let (Some(incarnation), Some(d)) = (disk, self.config.disk.as_ref()) {
            let delay = d.sample_micros(&mut self.rng);
            self.queue
                .push(self.now + delay, Event::Disk { node, incarnation });
        }
        for (to, msg) in out.drain(..) {
            self.route(node, incarnation, to, msg);
        }
        for (op, reply) in replies.drain(..) {
            let delay = self
                .config
                .workload
                .client_latency
                .sample_micros(&mut self.rng);
            self.answered.insert(op);
            self.queue
                .push(self.now + delay, Event::Reply { op, reply });
        }
        self.outbox = out;
        self.replies = replies;
        self.arm_after(node, false);
    }

    /// Schedules a timer event for the node's deadline unless an earlier one is scheduled. After a
    /// timeout was handled, a deadline still due fires at the next millisecond, not now (a core
    /// that keeps asking for "now" must not stall virtual time).
    fn arm_after(&mut self, node: NodeId, handled_timeout: bool) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(node as usize) else {
            return;
        };
        let Some(deadline) = slot.core.as_ref().and_then(|c| c.poll_timeout()) else {
            return;
        };
        // The core's deadline is on its own clock.
        let deadline = deadline.saturating_sub(slot.clock);
        let mut at = deadline.saturating_mul(1000).max(now);
        // After a timeout that left it due, not even for the inputs that follow.
        if (handled_timeout || slot.due_streak > 0) && deadline <= now / 1000 {
            at = (now / 1000 + 1) * 1000;
        }
        let deadline: Millis = at / 1000;
        // Compared when it fires: a deadline already past fires now (or at the next
        // millisecond), and one armed for then does for it. (Compared with the past deadline
        // itself, every input armed one more timer, and a core that kept a deadline due piled
        // them up until the simulator ran out of memory.)
        if slot.armed.is_some_and(|a| a <= deadline) {
            return;
        }
        slot.armed = Some(deadline);
        let event = Event::Timer {
            node,
            incarnation: slot.incarnation,
            at: deadline,
        };
        self.queue.push(at, event);
    }

    fn route(
        &mut self,
        from: NodeId,
        incarnation: u32,
        to: NodeId,
        msg: crate::message::PeerMessage,
    ) {
        self.stats.messages_sent += 1;
        let (f, t) = (from as usize, to as usize);
        let Some(dest) = self.slots.get(t) else {
            self.stats.messages_refused += 1;
            return;
        };
        if self.net.is_blocked(f, t) {
            self.stats.messages_partitioned += 1;
            return;
        }
        if dest.core.is_none() {
            // A crashed process: the connection is refused after a round trip.
            self.stats.messages_refused += 1;
            let rtt = self.net.link(f, t).latency.sample_micros(&mut self.rng)
                + self.net.link(t, f).latency.sample_micros(&mut self.rng);
            self.queue.push(
                self.now + rtt,
                super::Event::Refused {
                    node: from,
                    incarnation,
                    peer: to,
                    msg,
                },
            );
            return;
        }
        let dest_incarnation = dest.incarnation;
        match self.net.fate(f, t, &mut self.rng) {
            Fate::Partitioned => self.stats.messages_partitioned += 1,
            Fate::Dropped => self.stats.messages_dropped += 1,
            Fate::Deliver { delay, duplicate } => {
                if let Some(d) = duplicate {
                    self.stats.messages_duplicated += 1;
                    self.queue.push(
                        self.now + d,
                        Event::Deliver {
                            from,
                            to,
                            incarnation: dest_incarnation,
                            msg: msg.clone(),
                        },
                    );
                }
                self.queue.push(
                    self.now + delay,
                    Event::Deliver {
                        from,
                        to,
                        incarnation: dest_incarnation,
                        msg,
                    },
                );
            }
        }
    }

    pub(super) fn schedule_wake(&mut self, client: u32, delay: u64) {
        if let Some(c) = self.clients.get_mut(client as usize) {
            if !c.scheduled {
                c.scheduled = true;
                self.queue.push(self.now + delay, Event::Wake { client });
            }
        }
    }

    /// Sends an invoked operation's request to `node`, after the client-to-node latency.
    pub(super) fn send_request(&mut self, node: NodeId, op: u64, request: ClientRequest) {
        self.stats.ops_invoked += 1;
        self.in_flight += 1;
        let incarnation = self.slots.get(node as usize).map_or(0, |s| s.incarnation);
        let delay = self
            .config
            .workload
            .client_latency
            .sample_micros(&mut self.rng);
        self.queue.push(
            self.now + delay,
            Event::Request {
                node,
                incarnation,
                op,
                request,
            },
        );
    }

    /// A client starts its next operation.
    fn wake(&mut self, client: u32) {
        let Some(c) = self.clients.get_mut(client as usize) else {
            return;
        };
        c.scheduled = false;
        if !self.clients_running || c.pending.is_some() {
            return;
        }
        if self.up.is_empty() {
            self.schedule_wake(client, 10_000);
            return;
        }
        let node = self.up[self.rng.gen_range(0..self.up.len())];
        let (kind, key) = match c.next_write.take() {
            Some(write) => write,
            None => {
                let kind = self.picker.kind(&mut self.rng);
                let key = self.picker.key(&mut self.rng);
                if self.config.workload.read_before_write
                    && matches!(kind, OpKind::Put | OpKind::Delete)
                {
                    // Read the key first; the write follows with the context this get returns.
                    c.next_write = Some((kind, key));
                    (OpKind::Get, key)
                } else {
                    (kind, key)
                }
            }
        };
        let options = self.picker.options(&mut self.rng);
        let (sent_context, context_from) = match (kind, self.config.workload.use_context) {
            (OpKind::Put | OpKind::Delete, true) => c
                .contexts
                .get(&key)
                .map_or((Vec::new(), None), |(ctx, g)| (ctx.clone(), Some(*g))),
            _ => (Vec::new(), None),
        };
        let id = self.history.next_id();
        let request = match kind {
            OpKind::Get => ClientRequest::Get {
                key: key_bytes(key),
                options,
            },
            OpKind::Put => ClientRequest::Put {
                key: key_bytes(key),
                value: value_for(id, self.config.workload.value_size),
                context: sent_context.clone(),
                options,
                content_type: None,
            },
            OpKind::Delete => ClientRequest::Delete {
                key: key_bytes(key),
                context: sent_context.clone(),
                options,
            },
        };
        c.pending = Some((id, node));
        self.history.invoke(Op {
            id,
            client,
            node,
            kind,
            key,
            options,
            invoke: self.now,
            complete: None,
            outcome: Outcome::Pending,
            read: Vec::new(),
            context: Vec::new(),
            sent_context,
            context_from,
            replicas: Vec::new(),
            phantoms: Vec::new(),
        });
        self.send_request(node, id, request);
        self.queue.push(
            self.now + self.config.workload.client_timeout.saturating_mul(1000),
            Event::ClientTimeout { op: id },
        );
    }

    /// Completes a client's operation with a reply (`None`: the client gave up).
    pub(super) fn finish(&mut self, client: u32, op: u64, reply: Option<ClientReply>) {
        let now = self.now;
        self.answered.remove(&op);
        // A get's values: the puts that wrote them, and those no put to the key wrote.
        let mut read = Vec::new();
        let mut phantoms = Vec::new();
        if let (Some(ClientReply::Got { values, .. }), Some(key)) =
            (&reply, self.history.get(op).map(|o| o.key))
        {
            for value in values {
                match written_value(&self.history, key, value) {
                    Some(id) => read.push(id),
                    None => phantoms.push(value.to_vec()),
                }
            }
            read.sort_unstable();
        }
        let Some(record) = self.history.complete(op, now, Outcome::Pending) else {
            return;
        };
        self.in_flight = self.in_flight.saturating_sub(1);
        if client == super::DIRECT_CLIENT {
            if let Some(r) = &reply {
                self.direct.insert(op, r.clone());
            }
        }
        match reply {
            None => {
                record.outcome = Outcome::TimedOut;
                self.stats.ops_timed_out += 1;
            }
            Some(ClientReply::Failed(e)) => {
                record.outcome = Outcome::Failed(e);
                self.stats.ops_failed += 1;
            }
            Some(ClientReply::Got {
                context, replicas, ..
            }) => {
                record.outcome = Outcome::Ok;
                record.read = std::mem::take(&mut read);
                record.phantoms = std::mem::take(&mut phantoms);
                record.replicas = replicas;
                if self.config.workload.use_context {
                    if let Some(c) = self.clients.get_mut(client as usize) {
                        c.contexts.insert(record.key, (context.clone(), op));
                    }
                }
                record.context = context;
                self.stats.ops_ok += 1;
            }
            Some(ClientReply::Stored { context, replicas }) => {
                record.outcome = Outcome::Ok;
                record.context = context;
                record.replicas = replicas;
                self.stats.ops_ok += 1;
            }
        }
        self.history.trim();
        if let Some(c) = self.clients.get_mut(client as usize) {
            if c.pending.is_some_and(|(p, _)| p == op) {
                c.pending = None;
            }
        }
        if self.clients_running {
            let think = self.config.workload.think_time.sample_micros(&mut self.rng);
            self.schedule_wake(client, think);
        }
    }

    /// Node statistics summed over every node, crashed incarnations included.
    pub fn node_stats(&self) -> NodeStats {
        let mut total = self.stats.retired.clone();
        for core in self.slots.iter().filter_map(|s| s.core.as_ref()) {
            super::stats::add_stats(&mut total, core.stats());
        }
        total
    }
}
