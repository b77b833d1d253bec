//! Client requests: routing, and one `dynamo-quorum` coordinator per request.
//!
//! Any node accepts any request. Gets are coordinated where they arrive. A put or delete is
//! coordinated by one of the key's N primaries (the paper's rule, so that a key's clock entries
//! stay few): elsewhere it is forwarded to the first primary believed up, and coordinated locally
//! if that node cannot be reached. The local replica is one target like the others, answered
//! synchronously.
//!
//! # Versions
//!
//! A key's versions are a dotted version vector set ([`dynamo_vclock::DvvSet`], as Riak 2.0
//! keeps them), not a vector clock per version. With server actors, per-version clocks force a
//! choice on a coordinator whose copy holds a version the client did not see: drop it (a lost
//! write) or re-stamp it with the new clock (then a stale coordinator brings back a value that a
//! delete elsewhere had superseded). A DVV set gives each value its own dot and discards exactly
//! the dots the client's context covers, so neither happens. The coordinator mints the dot under
//! an actor epoch chosen so that no dot is ever issued twice (see `epochs`), writes it to its own
//! store first when it is a primary, and then sends the whole set to the targets. Contexts keep
//! their byte encoding (a version vector of `(node, epoch)` actors).

use std::time::Duration;

use dynamo_quorum::{
    plan, Fanout, GetCoordinator, GetMessage, GetReply, Mode, PutCoordinator, PutReply,
    RequestError, RequestOptions,
};
use dynamo_vclock::{VClock, Value as Versioned};

use super::minting::{Minted, Minting, MAX_COUNTER};
use super::requests::{Origin, Pending, RoundTrip};
use super::storage::{Kept, StorageOp, Then};
use super::NodeCore;
use crate::message::{ClientError, ClientReply, ClientRequest, PeerMessage, MAX_CONTENT_TYPE};
use crate::types::{Actor, Key, Millis, NodeId, Object, RequestId, Sibs};

/// The longest timeout, in milliseconds, a client may ask of one request (60 s; the node's own
/// [`request_timeout`](crate::NodeConfig::request_timeout) when that is longer). A request asking
/// more is refused with [`ClientError::LimitExceeded`] (`timeout ms`): a coordinator waiting that
/// long would hold its state, and an HTTP or TCP client's connection slot, for no answer a client
/// could still use.
pub const MAX_REQUEST_TIMEOUT: Millis = 60_000;

/// What a replica said to a request it was asked to serve.
#[derive(Debug)]
pub(crate) enum Answer {
    /// It stored the put's versions.
    Ack,
    /// Its versions of the key (`None`: not found).
    Versions(Option<Sibs>),
    /// It failed the request: it refused, or could not be reached.
    Failed,
    /// It lost its copy of the key (a read it refused for that): a failure that read repair
    /// refills.
    Lost,
}

pub(crate) fn invalid(e: RequestError) -> ClientReply {
    ClientReply::Failed(ClientError::InvalidOptions(e.to_string()))
}

impl NodeCore {
    pub(crate) fn options(&self, request: &ClientRequest) -> Result<RequestOptions, RequestError> {
        let o = request.options();
        let mode = match o.strict {
            Some(true) => Mode::Strict,
            Some(false) => Mode::Sloppy,
            None => self.config.mode,
        };
        let timeout = o.timeout.unwrap_or(self.config.request_timeout);
        let r = o.r.unwrap_or(self.config.r);
        let fanout = match self.config.read_fanout {
            // Raised to this request's R, capped at N (a larger R is refused below).
            Some(reads) => Fanout::First {
                reads: reads.max(r).min(self.config.n),
                hedge: Duration::from_millis(self.config.read_hedge),
            },
            None => Fanout::All,
        };
        Ok(RequestOptions::new(
            self.config.n,
            r,
            o.w.unwrap_or(self.config.w),
            Duration::from_millis(timeout),
        )?
        .with_mode(mode)
        .with_fanout(fanout))
    }

    pub(crate) fn plan_for(
        &self,
        key: &[u8],
        options: &RequestOptions,
    ) -> dynamo_quorum::Plan<NodeId> {
        plan(
            self.view
                .ring
                .preference_list(key)
                .map(|r| (*r.node, r.is_primary())),
            // A strict quorum has no fallback to route to: a primary this node holds silent is
            // asked all the same (it may answer: silence is one node's guess), rather than
            // counted failed from the start.
            |n| {
                if options.mode == dynamo_quorum::Mode::Strict {
                    self.is_up(*n)
                } else {
                    self.routable(*n)
                }
            },
            options.n,
            options.mode,
        )
    }

    pub(crate) fn reply(&mut self, origin: Origin, reply: ClientReply) {
        if matches!(reply, ClientReply::Failed(_)) {
            self.stats.counters.failures += 1;
        }
        match origin {
            Origin::Client(req) => self.replies.push_back((req, reply)),
            Origin::Peer(node, req) => self
                .transmits
                .push_back((node, PeerMessage::ForwardReply { req, reply })),
            Origin::Reap => {}
        }
    }

    /// Replies to a coordinated request, recording the latency of a success.
    fn answer(
        &mut self,
        origin: Origin,
        latency: Millis,
        result: Result<ClientReply, dynamo_quorum::FailureReason>,
    ) {
        let reply = match result {
            Ok(reply) => {
                let histogram = match reply {
                    ClientReply::Got { .. } => &mut self.stats.get_latency,
                    _ => &mut self.stats.put_latency,
                };
                // Recording fails only past the histogram's range, which auto-resizes.
                let _ = histogram.record(latency);
                reply
            }
            Err(e) => ClientReply::Failed(quorum_error(&e)),
        };
        self.reply(origin, reply);
    }

    pub(crate) fn client_request(&mut self, now: Millis, origin: Origin, request: ClientRequest) {
        // A joiner's ring is a guess (its start member list and itself) until it hears the
        // cluster's: coordinated on it, a put counted the joiner's own store and a guessed
        // primary toward W, and no replica of the key held it.
        if self.view.ring_provisional {
            let why = match &self.view.ring_mismatch {
                Some(theirs) => format!(
                    "this node is joining but cannot take the cluster's ring: it has {theirs}, \
                     this node is configured with {}. Set `n` and `partitions` as on the other \
                     nodes and restart it",
                    super::membership::ring_shape(self.view.ring_state.ring.config())
                ),
                None => "this node is joining and has not heard the cluster's ring yet: retry, \
                         or ask another node"
                    .into(),
            };
            return self.reply(origin, ClientReply::Failed(ClientError::Unavailable(why)));
        }
        // Likewise a node restarted on the ring it stored, until it has compared that ring with
        // a peer's: the cluster may have moved on while it was away, and a get over the old
        // primaries (itself among them, behind on writes) missed puts the new ones acknowledged
        // (strict-quorum sweep, seeds 31708, 32670 and 32749).
        if self.ring_unconfirmed() {
            return self.reply(
                origin,
                ClientReply::Failed(ClientError::Unavailable(
                    "this node restarted and has not compared its ring with the cluster's yet: \
                     retry, or ask another node"
                        .into(),
                )),
            );
        }
        if let Err(e) = self.check_limits(&request) {
            return self.reply(origin, ClientReply::Failed(e));
        }
        let options = match self.options(&request) {
            Ok(o) => o,
            Err(e) => return self.reply(origin, invalid(e)),
        };
        match request {
            ClientRequest::Get { key, .. } => self.coordinate_get(now, origin, key, options),
            ClientRequest::Put { .. } | ClientRequest::Delete { .. } => {
                let key = request.key().to_vec();
                let coordinates = self
                    .view
                    .ring
                    .preference_list(&key)
                    .primaries()
                    .any(|&n| n == self.id);
                let forward_to = if coordinates || matches!(origin, Origin::Peer(..)) {
                    None
                } else {
                    self.view
                        .ring
                        .preference_list(&key)
                        .primaries()
                        .copied()
                        .find(|&n| self.routable(n))
                };
                match forward_to {
                    Some(to) => {
                        let deadline = now.saturating_add(timeout_ms(&options));
                        self.forward_put(now, origin, to, deadline, request);
                    }
                    None => self.coordinate_put(now, origin, request, options),
                }
            }
        }
    }

    /// The limits every request must keep before it is forwarded or coordinated.
    fn check_limits(&self, request: &ClientRequest) -> Result<(), ClientError> {
        let limit = |what: &str, size: usize, limit: usize| {
            if size > limit {
                Err(ClientError::LimitExceeded {
                    what: what.into(),
                    size,
                    limit,
                })
            } else {
                Ok(())
            }
        };
        limit("key bytes", request.key().len(), self.config.max_key_size)?;
        if let Some(ms) = request.options().timeout {
            if ms == 0 {
                // It would fail every request at once, after a primary coordinator had already
                // stored its own copy of a put.
                return Err(ClientError::InvalidOptions(
                    "timeout must be at least 1 ms".into(),
                ));
            }
            let max = MAX_REQUEST_TIMEOUT.max(self.config.request_timeout);
            let size = |ms: Millis| usize::try_from(ms).unwrap_or(usize::MAX);
            limit("timeout ms", size(ms), size(max))?;
        }
        match request {
            ClientRequest::Put {
                value,
                context,
                content_type,
                ..
            } => {
                if value.len() > self.config.max_value_size {
                    return Err(ClientError::ValueTooLarge {
                        size: value.len(),
                        limit: self.config.max_value_size,
                    });
                }
                if let Some(t) = content_type {
                    limit("content type bytes", t.len(), MAX_CONTENT_TYPE)?;
                }
                limit("context bytes", context.len(), self.config.max_context_size)
            }
            ClientRequest::Delete { context, .. } => {
                limit("context bytes", context.len(), self.config.max_context_size)
            }
            ClientRequest::Get { .. } => Ok(()),
        }
    }

    /// The limits on what a put leaves on a key: a key must stay readable in one reply.
    pub(super) fn check_siblings(&self, set: &Sibs) -> Result<(), ClientError> {
        let count = set.len();
        if count > self.config.max_siblings {
            return Err(ClientError::LimitExceeded {
                what: "siblings".into(),
                size: count,
                limit: self.config.max_siblings,
            });
        }
        let bytes: usize = set.live_values().map(Object::size).sum();
        if bytes > self.config.max_siblings_size {
            return Err(ClientError::LimitExceeded {
                what: "sibling bytes".into(),
                size: bytes,
                limit: self.config.max_siblings_size,
            });
        }
        Ok(())
    }

    /// Whether a put with `context` over the copy `set` may add actors to the key's clock that
    /// could take it past the context limit ([`Self::check_clock`]): only worked out when the
    /// clock could grow that large.
    pub(super) fn context_adds_actors(&self, set: &Sibs, context: &VClock<Actor>) -> bool {
        if context.is_empty()
            || !may_pass(set.entries().len() + context.len() + 1, self.clock_limit())
        {
            return false;
        }
        let known: std::collections::BTreeSet<&Actor> =
            set.entries().iter().map(|e| &e.actor).collect();
        context.entries().any(|e| !known.contains(&e.actor))
    }

    /// The most bytes a key's clock may encode to when a put adds actors to it: a get's context
    /// is the clock sealed, and its tag must fit under `max_context_size` too.
    fn clock_limit(&self) -> usize {
        self.config
            .max_context_size
            .saturating_sub(super::CONTEXT_TAG_LEN)
    }

    /// The limit on what a put's context adds to a key's clock: a put merges the context's
    /// actors into it, and made-up ones would grow it without bound (past the context limit, a
    /// get's context could not even be sent back). A put whose context names actors the key's
    /// copy here does not know may not leave a clock past `max_context_size`. Puts whose
    /// context adds nothing new (blind puts, contexts of the key's own actors) are never refused
    /// for it: a clock grows by other means too (fresh epochs), and the key must stay writable.
    pub(super) fn check_clock(&self, adds_actors: bool, after: &Sibs) -> Result<(), ClientError> {
        if !adds_actors {
            return Ok(());
        }
        match vclock_past(&after.context(), self.clock_limit()) {
            Some(size) => Err(ClientError::LimitExceeded {
                what: "context bytes of the key's clock".into(),
                size: size + super::CONTEXT_TAG_LEN,
                limit: self.config.max_context_size,
            }),
            None => Ok(()),
        }
    }

    fn coordinate_get(&mut self, now: Millis, origin: Origin, key: Key, options: RequestOptions) {
        self.stats.counters.gets += 1;
        let mut plan = self.plan_for(&key, &options);
        if matches!(options.fanout, Fanout::First { .. }) {
            // Asking only some replicas: this one first, since its read needs no message.
            if let Some(i) = plan.targets.iter().position(|t| t.node == self.id) {
                let me = plan.targets.remove(i);
                plan.targets.insert(0, me);
            }
        }
        match GetCoordinator::new(options, plan, now) {
            Ok(coord) => {
                let req = self.requests.start_timed(
                    now,
                    RoundTrip::Read,
                    Pending::Get {
                        origin,
                        key,
                        started: now,
                        coord,
                    },
                );
                self.pump(now, req);
            }
            Err(e) => self.reply(origin, invalid(e)),
        }
    }

    pub(crate) fn coordinate_put(
        &mut self,
        now: Millis,
        origin: Origin,
        request: ClientRequest,
        options: RequestOptions,
    ) {
        let (key, value, context) = match request {
            ClientRequest::Put {
                key,
                value,
                context,
                content_type,
                ..
            } => {
                self.stats.counters.puts += 1;
                (
                    key,
                    Versioned::Live(Object::typed(value, content_type)),
                    context,
                )
            }
            ClientRequest::Delete { key, context, .. } => {
                self.stats.counters.deletes += 1;
                (key, Versioned::Tombstone, context)
            }
            ClientRequest::Get { .. } => return,
        };
        // Only a context this cluster issued for this key (see `seal`).
        let context = match self.seal.open(&key, &context) {
            Ok(c) => c,
            Err(e) => {
                return self.reply(
                    origin,
                    ClientReply::Failed(ClientError::InvalidContext(e.to_string())),
                )
            }
        };
        if let Some(e) = context.entries().find(|e| e.counter > MAX_COUNTER) {
            return self.reply(
                origin,
                ClientReply::Failed(ClientError::InvalidContext(format!(
                    "counter {} of {:?} is beyond any this cluster issues",
                    e.counter, e.actor
                ))),
            );
        }
        // A put that cannot reach W replicas from the start is turned down before its dot is
        // stored here: stored first, it failed as "quorum failed" (perhaps applied) with its
        // value in this node's store. (The plan is made again once the dot is stored; a change
        // meanwhile fails it as a put that may have been applied, which it then may.)
        let reachable = self.plan_for(&key, &options).targets.len();
        if reachable < options.w {
            return self.reply(
                origin,
                ClientReply::Failed(ClientError::Unavailable(format!(
                    "{reachable} of the key's {} replicas can be reached, fewer than W = {}: \
                     nothing was written",
                    options.n, options.w
                ))),
            );
        }
        let primary = self
            .view
            .ring
            .preference_list(&key)
            .primaries()
            .any(|&n| n == self.id);
        let minting = Minting {
            arrived: now,
            origin,
            key,
            value,
            context,
            options,
            primary,
        };
        match self.minting.get_mut(&minting.key) {
            // Another put of the key is minting: this one reads the key once that one's dot is
            // on its way to the store.
            Some(queue) => queue.push_back(minting),
            None => {
                self.minting
                    .insert(minting.key.clone(), std::collections::VecDeque::new());
                self.read_to_mint(minting);
            }
        }
    }

    /// A put's dot is stored here (`ok`), or need not be: its coordinator starts.
    pub(crate) fn minted(&mut self, now: Millis, minted: Minted, ok: bool) {
        if !ok {
            return self.reply(
                minted.origin,
                ClientReply::Failed(ClientError::Unavailable(
                    "the store failed to take the write".into(),
                )),
            );
        }
        let plan = self.plan_for(&minted.key, &minted.options);
        // The put has what is left of its timeout since it arrived (at least a millisecond: its
        // dot is stored here already, so it answers as a put that timed out).
        let mut options = minted.options;
        options.timeout = super::minting::time_left(options.timeout, minted.arrived, now)
            .max(Duration::from_millis(1));
        match PutCoordinator::with_siblings(options, plan, minted.siblings, now) {
            Ok(coord) => {
                let req = self.requests.start_timed(
                    now,
                    RoundTrip::Write,
                    Pending::Put {
                        origin: minted.origin,
                        key: minted.key,
                        started: minted.arrived,
                        clock: minted.clock,
                        coord,
                        stored_here: minted.primary,
                    },
                );
                self.pump(now, req);
            }
            Err(e) => self.reply(minted.origin, invalid(e)),
        }
    }

    /// Moves a request's outputs along: transmits (local targets answered on the spot), the
    /// outcome, and the removal of a request that has nothing more to do.
    pub(crate) fn pump(&mut self, now: Millis, req: RequestId) {
        let Some(mut pending) = self.requests.take(req) else {
            return;
        };
        let done = match &mut *pending {
            Pending::Get {
                origin,
                key,
                started,
                coord,
            } => {
                loop {
                    let mut progressed = false;
                    // As for puts: every read goes out before the local answer is handled.
                    let mut read_locally = false;
                    while let Some((node, msg)) = coord.poll_transmit() {
                        progressed = true;
                        match msg {
                            GetMessage::Read(_) if node == self.id => read_locally = true,
                            GetMessage::Read(_) => self.transmits.push_back((
                                node,
                                PeerMessage::Read {
                                    req,
                                    key: key.clone(),
                                    primary: coord
                                        .targets()
                                        .iter()
                                        .any(|t| t.node == node && t.hint.is_none()),
                                },
                            )),
                            GetMessage::Repair(_) if !self.config.read_repair => {}
                            GetMessage::Repair(write) => {
                                self.stats.counters.read_repairs += 1;
                                if node == self.id {
                                    // As any replica would: a fallback coordinator keeps the
                                    // repair as a hint, never as a stray copy of its own (which
                                    // no expiry bounds, so it could outlive a reaped tombstone).
                                    let _ = self.keep_write(
                                        now,
                                        key.clone(),
                                        write.siblings,
                                        write.hint,
                                        Then::Repaired,
                                    );
                                } else {
                                    // A primary's repair names its target, as a strict
                                    // request's writes do: read repair (`replica_write`).
                                    self.transmits.push_back((
                                        node,
                                        PeerMessage::Write {
                                            req: None,
                                            key: key.clone(),
                                            siblings: write.siblings,
                                            hint: write.hint.or(Some(node)),
                                        },
                                    ));
                                }
                            }
                            _ => {}
                        }
                    }
                    if read_locally {
                        if self.receiving(key) {
                            let _ = coord.handle_message(now, self.id, GetReply::Failed);
                        } else {
                            self.stats.counters.replica_reads += 1;
                            self.store_op(
                                StorageOp::Read {
                                    keys: vec![key.clone()],
                                },
                                Then::LocalRead { req },
                            );
                        }
                    }
                    if let Some(outcome) = coord.poll_event() {
                        progressed = true;
                        if *origin == Origin::Reap {
                            self.reap_decision(now, key, &outcome);
                            continue;
                        }
                        let result = outcome.result.map(|()| ClientReply::Got {
                            values: outcome
                                .siblings
                                .live_values()
                                .map(|o| o.bytes.clone())
                                .collect(),
                            context: self.seal.seal(key, &outcome.context),
                            // Those that answered, not the failures the coordinator counted.
                            replicas: outcome
                                .answers
                                .iter()
                                .filter(|a| {
                                    matches!(a.reply, GetReply::Found(_) | GetReply::NotFound)
                                })
                                .map(|a| a.node)
                                .collect(),
                            content_types: outcome
                                .siblings
                                .live_values()
                                .map(|o| o.content_type.clone())
                                .collect(),
                        });
                        self.answer(*origin, now.saturating_sub(*started), result);
                    }
                    if !progressed {
                        break;
                    }
                }
                if !self.config.read_repair && coord.is_finished() {
                    true
                } else {
                    coord.is_complete()
                }
            }
            Pending::Put {
                origin,
                key,
                started,
                clock,
                coord,
                stored_here,
                ..
            } => {
                loop {
                    let mut progressed = false;
                    // Drain every write before answering the local one: a coordinator that has
                    // decided (W = 1 is met by the local write) emits nothing more.
                    let mut local = None;
                    while let Some((node, write)) = coord.poll_transmit() {
                        progressed = true;
                        if node == self.id {
                            local = Some(write);
                        } else {
                            // A strict request on a sloppy node names its target in its writes
                            // (`replica_write`): they count only from one of the key's
                            // primaries, whatever the target's own mode. (A strict node's
                            // replicas are strict too; nodes of older versions would count a
                            // write that names them whatever their mode.)
                            let hint = match write.hint {
                                None if coord.options().mode == Mode::Strict
                                    && self.config.mode != Mode::Strict =>
                                {
                                    Some(node)
                                }
                                hint => hint,
                            };
                            self.transmits.push_back((
                                node,
                                PeerMessage::Write {
                                    req: Some(req),
                                    key: key.clone(),
                                    siblings: write.siblings,
                                    hint,
                                },
                            ));
                        }
                    }
                    if let Some(write) = local {
                        // Like any replica: a fallback keeps it as a hint for the primary it stands
                        // in for; a primary coordinator stored it already (in `minted`).
                        let kept = if *stored_here && write.hint.is_none() {
                            Kept::Now(true, Then::Nothing)
                        } else {
                            let then = Then::LocalWrite { req, ok: true };
                            self.keep_write(now, key.clone(), write.siblings, write.hint, then)
                        };
                        if let Kept::Now(ok, _) = kept {
                            let reply = if ok { PutReply::Ack } else { PutReply::Failed };
                            let _ = coord.handle_message(now, self.id, reply);
                        }
                    }
                    if let Some(outcome) = coord.poll_event() {
                        progressed = true;
                        let result = outcome.result.map(|()| ClientReply::Stored {
                            context: self.seal.seal(key, clock),
                            replicas: outcome.acks.iter().map(|a| a.node).collect(),
                        });
                        self.answer(*origin, now.saturating_sub(*started), result);
                    }
                    if !progressed {
                        break;
                    }
                }
                coord.is_complete()
            }
            Pending::Forward { .. } => false,
        };
        if !done {
            self.requests.put_back(req, pending);
        }
    }

    /// A replica answered request `req` (or failed it: its link broke, it refused the read), as
    /// `answer` says: the request's coordinator takes it, and a failed put target's copy goes to
    /// a fallback. An answer no request waits for is counted late.
    pub(crate) fn replica_answered(
        &mut self,
        now: Millis,
        from: NodeId,
        req: RequestId,
        answer: Answer,
    ) {
        // A refused reply (not a target, a second one) is counted by the coordinator itself.
        match (self.requests.get_mut(req), answer) {
            (Some(Pending::Put { coord, .. }), Answer::Ack) => {
                let _ = coord.handle_message(now, from, PutReply::Ack);
            }
            (Some(Pending::Put { coord, .. }), Answer::Failed) => {
                let _ = coord.handle_message(now, from, PutReply::Failed);
                self.rehint(now, req, from);
            }
            (Some(Pending::Get { coord, .. }), Answer::Versions(s)) => {
                let _ = coord.handle_message(now, from, found_or_not(s));
            }
            (Some(Pending::Get { coord, .. }), Answer::Failed) => {
                let _ = coord.handle_message(now, from, GetReply::Failed);
            }
            (Some(Pending::Get { coord, .. }), Answer::Lost) => {
                let _ = coord.handle_message(now, from, GetReply::Lost);
            }
            _ => {
                self.stats.counters.late_answers += 1;
                return;
            }
        }
        self.pump(now, req);
    }

    /// This node, a target of request `req`, answered it (its store did).
    pub(crate) fn local_answered(&mut self, now: Millis, req: RequestId, answer: Answer) {
        let me = self.id;
        match (self.requests.get_mut(req), answer) {
            (Some(Pending::Put { coord, .. }), Answer::Ack) => {
                let _ = coord.handle_message(now, me, PutReply::Ack);
            }
            (Some(Pending::Put { coord, .. }), Answer::Failed) => {
                let _ = coord.handle_message(now, me, PutReply::Failed);
            }
            (Some(Pending::Get { coord, .. }), Answer::Versions(s)) => {
                let _ = coord.handle_message(now, me, found_or_not(s));
            }
            (Some(Pending::Get { coord, .. }), Answer::Failed) => {
                let _ = coord.handle_message(now, me, GetReply::Failed);
            }
            (Some(Pending::Get { coord, .. }), Answer::Lost) => {
                let _ = coord.handle_message(now, me, GetReply::Lost);
            }
            _ => return,
        }
        self.pump(now, req);
    }

    /// Forwards a put or delete to primary `to`, waiting for its answer until `deadline`.
    fn forward_put(
        &mut self,
        now: Millis,
        origin: Origin,
        to: NodeId,
        deadline: Millis,
        request: ClientRequest,
    ) {
        self.stats.counters.forwarded += 1;
        let forward = request.clone();
        let req = self.requests.start(Pending::Forward {
            origin,
            to,
            sent: now,
            deadline,
            request,
        });
        self.transmits.push_back((
            to,
            PeerMessage::Forward {
                req,
                request: forward,
            },
        ));
    }

    /// A put forwarded until `deadline` that `refused_by` did not take (it refused, or the
    /// forward never reached it) goes to the key's next primary routable here, and once none is
    /// left, is coordinated here; either with what is left of its timeout. None left, it is
    /// turned down as nothing was applied (its client may have sent it to another node by now).
    /// A primary coordinates under an epoch it keeps; this node, not a primary, would count
    /// under a fresh one, a new entry in the key's clock for good (see `minting`).
    pub(crate) fn coordinate_forwarded_here(
        &mut self,
        now: Millis,
        origin: Origin,
        request: ClientRequest,
        deadline: Millis,
        refused_by: NodeId,
    ) {
        let left = deadline.saturating_sub(now);
        if left == 0 {
            return self.reply(
                origin,
                ClientReply::Failed(ClientError::Unavailable(
                    "the put's timeout passed before a coordinator took it: not applied".into(),
                )),
            );
        }
        // The primaries after the one that refused, in order: each is asked at most once.
        let next = self
            .view
            .ring
            .preference_list(request.key())
            .primaries()
            .copied()
            .skip_while(|&n| n != refused_by)
            .skip(1)
            .find(|&n| n != self.id && self.routable(n));
        if let Some(to) = next {
            // What is left of its timeout (at most what any node takes), so that the next
            // primary's answer comes by this node's deadline; past it, the client hears a
            // timeout (the put may be applied).
            let mut request = request;
            request.options_mut().timeout = Some(left.min(MAX_REQUEST_TIMEOUT));
            return self.forward_put(now, origin, to, deadline, request);
        }
        match self.options(&request) {
            Ok(mut options) => {
                options.timeout = options.timeout.min(Duration::from_millis(left));
                self.coordinate_put(now, origin, request, options);
            }
            Err(e) => self.reply(origin, invalid(e)),
        }
    }

    /// A forwarded put's coordinator answered. `Unavailable` means it refused the put before
    /// coordinating it (it is joining, restarted and has not heard the cluster's ring, is
    /// overloaded, or its store did not take the dot), so nothing was written: the put is
    /// coordinated here, as when the forward could not be delivered.
    pub(crate) fn forward_reply(
        &mut self,
        now: Millis,
        from: NodeId,
        req: RequestId,
        reply: ClientReply,
    ) {
        match self.requests.take_forward_to(req, from) {
            Some(Pending::Forward {
                origin,
                request,
                deadline,
                ..
            }) if matches!(reply, ClientReply::Failed(ClientError::Unavailable(_))) => {
                self.coordinate_forwarded_here(now, origin, request, deadline, from);
            }
            Some(Pending::Forward { origin, .. }) => self.reply(origin, reply),
            _ => self.stats.counters.late_answers += 1,
        }
    }
}

fn quorum_error(e: &dynamo_quorum::FailureReason) -> ClientError {
    use dynamo_quorum::FailureReason;
    match *e {
        FailureReason::Deadline {
            succeeded,
            required,
        } => ClientError::Timeout {
            acknowledged: succeeded,
            required,
        },
        FailureReason::TooManyFailures {
            succeeded,
            required,
            ..
        } => ClientError::QuorumFailed {
            acknowledged: succeeded,
            required,
        },
        _ => ClientError::QuorumFailed {
            acknowledged: 0,
            required: 0,
        },
    }
}

/// A replica's read answer as the get coordinator takes it (`None`: not found).
fn found_or_not(versions: Option<Sibs>) -> GetReply<Sibs> {
    versions.map_or(GetReply::NotFound, GetReply::Found)
}

/// A request's timeout in the core's milliseconds.
fn timeout_ms(options: &RequestOptions) -> Millis {
    Millis::try_from(options.timeout.as_millis()).unwrap_or(Millis::MAX)
}

/// Most bytes one clock entry encodes to: an actor of two varints, a counter and a timestamp.
const MAX_ENTRY_BYTES: usize = 40;

/// The encoded size of `clock` when it is past `limit` bytes. Encoded only when its entries could
/// pass it: a key's clock has a few entries.
pub(super) fn vclock_past(clock: &VClock<Actor>, limit: usize) -> Option<usize> {
    if !may_pass(clock.len(), limit) {
        return None;
    }
    let size = clock.encode().len();
    (size > limit).then_some(size)
}

/// Whether a clock of `entries` entries may encode past `limit` bytes.
fn may_pass(entries: usize, limit: usize) -> bool {
    entries.saturating_mul(MAX_ENTRY_BYTES) >= limit.saturating_sub(16)
}
