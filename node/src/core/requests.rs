//! [`Requests`]: the requests a node has in flight, and the only place that admits new ones.
//!
//! A request is coordinated here (a get or a put, each with its `dynamo-quorum` coordinator),
//! forwarded to a primary of its key, or run by the reaper. Every new request gets its id from
//! [`Requests::start`]; nothing else adds to the table. The table also remembers which forwards it
//! took (a repeated forward must not be coordinated twice) and when recent requests started (to
//! time their replicas' answers for the staleness predictions, late answers included).

use std::collections::{BTreeMap, BTreeSet};

use dynamo_quorum::{GetCoordinator, PutCoordinator};
use dynamo_vclock::VClock;

use crate::message::ClientRequest;
use crate::types::{Actor, Key, Millis, NodeId, RequestId, Sibs};

/// Requests whose answers are timed at once, at most (a bound on memory under heavy load).
const MAX_TIMED: usize = 65_536;

/// Who is waiting for a request's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A client of this node.
    Client(RequestId),
    /// A node that forwarded the request under its own id.
    Peer(NodeId, RequestId),
    /// The tombstone reaper's own check (no reply).
    Reap,
}

/// Which round trip an answer closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoundTrip {
    /// A replica write and its ack.
    Write,
    /// A replica read and its response.
    Read,
}

/// A request in flight.
pub(crate) enum Pending {
    Get {
        origin: Origin,
        key: Key,
        started: Millis,
        coord: GetCoordinator<NodeId, Sibs>,
    },
    Put {
        origin: Origin,
        key: Key,
        started: Millis,
        clock: VClock<Actor>,
        coord: PutCoordinator<NodeId, Sibs>,
        /// The coordinator, a primary, already stored the versions (before minting went out).
        stored_here: bool,
    },
    Forward {
        origin: Origin,
        to: NodeId,
        /// When it was sent to `to`.
        sent: Millis,
        deadline: Millis,
        request: ClientRequest,
    },
}

impl Pending {
    /// When the request's deadline or next retry falls.
    pub(crate) fn poll_timeout(&self) -> Option<Millis> {
        match self {
            Pending::Get { coord, .. } => coord.poll_timeout(),
            Pending::Put { coord, .. } => coord.poll_timeout(),
            Pending::Forward { deadline, .. } => Some(*deadline),
        }
    }

    /// Whether the request waits on `peer`'s answer as a replica.
    fn awaits(&self, peer: NodeId) -> bool {
        match self {
            Pending::Get { coord, .. } => coord.targets().iter().any(|t| t.node == peer),
            Pending::Put { coord, .. } => coord.targets().iter().any(|t| t.node == peer),
            Pending::Forward { .. } => false,
        }
    }
}

/// Runs of a sender's forwards remembered (see `Requests::forgotten_forwards`).
const FORWARD_RUNS: usize = 4;

/// The run of request ids `req` belongs to: a node numbers its requests from its generation
/// times 2^20 (`NodeCore::new`), so the ids of one incarnation share their high bits.
fn id_run(req: RequestId) -> u64 {
    req >> 20
}

/// The request table. See the [module docs](self).
pub(crate) struct Requests {
    // Ordered maps: iteration order must not depend on a random hasher, so that the same inputs
    // give the same outputs (the simulator replays runs from a seed).
    /// Boxed: a coordinator is several hundred bytes, which the map would otherwise shift on
    /// every insert and removal, and [`Requests::take`] would copy out and back.
    pending: BTreeMap<RequestId, Box<Pending>>,
    next: RequestId,
    /// How long a forward and a start time are remembered: twice the request timeout (their
    /// sender has long given up by then), at least a second.
    keep: Millis,
    /// Forwards taken, by (sender, request id): a repeated forward is not coordinated twice
    /// (that would write its value under two dots).
    seen_forwards: BTreeSet<(NodeId, RequestId)>,
    /// `seen_forwards` by when to forget them: twice the forward's own timeout after it came
    /// (a client may ask for more than the node's), at least `keep`.
    forward_order: BTreeSet<(Millis, (NodeId, RequestId))>,
    /// The newest forward forgotten, per sender and run of its ids ([`id_run`]): a sender's
    /// request ids grow with time within a run, so a forward no newer than that one was sent
    /// before a forward whose own window passed, and may be a copy of one coordinated already (a
    /// network that repeats a message, a node paused while the copy waited): turned down. A
    /// link keeps a peer's messages in order, so such a forward is past its sender's timeout but
    /// for one sent with a longer timeout than the forgotten one's and delayed past that one's
    /// window (a link replaced meanwhile): its sender then waits for its timeout. A sender that
    /// restarts starts a run of its own (one that lost its disk, on a clock behind, may start
    /// below).
    forgotten_forwards: BTreeMap<(NodeId, u64), RequestId>,
    /// When each recent get or put coordinated here started, by request id. Ids grow with time,
    /// so the first is the oldest.
    started: BTreeMap<RequestId, (Millis, RoundTrip)>,
}

impl Requests {
    /// An empty table whose ids start at `first` (see `NodeCore::new`: ids of one incarnation
    /// never meet those of the next), for requests that time out after `request_timeout`.
    pub(crate) fn new(first: RequestId, request_timeout: Millis) -> Self {
        Requests {
            pending: BTreeMap::new(),
            next: first,
            keep: request_timeout.saturating_mul(2).max(1_000),
            seen_forwards: BTreeSet::new(),
            forward_order: BTreeSet::new(),
            forgotten_forwards: BTreeMap::new(),
            started: BTreeMap::new(),
        }
    }

    /// The id the next request will get.
    #[cfg(test)]
    pub(crate) fn next_id(&self) -> RequestId {
        self.next
    }

    /// Numbers the next request `next` (a table that has numbered that many already).
    #[cfg(test)]
    pub(crate) fn skip_to(&mut self, next: RequestId) {
        self.next = next;
    }

    /// The last run of ids ([`id_run`]) this table may number requests from: its current one,
    /// and the next once it is half through it. The node stores it with its generation, so that
    /// a restart numbers from a later run whatever its clock reads: one past 2^20 requests
    /// numbers into the runs after its own, which a restart on a clock that reads no later than
    /// the last start (an NTP step back) would start from again otherwise, and a peer would
    /// turn its forwards down as old ones (`forgotten_forwards`). Half a run ahead, so that the
    /// store has it long before the ids reach it.
    pub(crate) fn reserved_run(&self) -> u64 {
        let run = id_run(self.next);
        if self.next & (1 << 19) != 0 {
            run + 1
        } else {
            run
        }
    }

    /// Admits a new request; its id.
    pub(crate) fn start(&mut self, pending: Pending) -> RequestId {
        let req = self.next;
        self.next += 1;
        self.pending.insert(req, Box::new(pending));
        req
    }

    /// Admits a get or put started at `now` whose replicas' answers are timed as `kind`.
    pub(crate) fn start_timed(
        &mut self,
        now: Millis,
        kind: RoundTrip,
        pending: Pending,
    ) -> RequestId {
        let req = self.start(pending);
        while let Some((_, &(t, _))) = self.started.first_key_value() {
            if t.saturating_add(self.keep) > now && self.started.len() < MAX_TIMED {
                break;
            }
            self.started.pop_first();
        }
        self.started.insert(req, (now, kind));
        req
    }

    /// How long ago request `req` started, if it is timed as `kind`.
    pub(crate) fn elapsed(&self, now: Millis, req: RequestId, kind: RoundTrip) -> Option<Millis> {
        match self.started.get(&req) {
            Some(&(started, k)) if k == kind => Some(now.saturating_sub(started)),
            _ => None,
        }
    }

    /// Whether the forward `(from, req)` is new (neither remembered nor older than one
    /// forgotten); remembers it.
    pub(crate) fn first_forward(
        &mut self,
        now: Millis,
        from: NodeId,
        req: RequestId,
        timeout: Millis,
    ) -> bool {
        while let Some(&(until, id)) = self.forward_order.first() {
            if until > now {
                break;
            }
            self.forward_order.pop_first();
            self.seen_forwards.remove(&id);
            let (sender, forgotten) = id;
            let run = (sender, id_run(forgotten));
            let newest = self.forgotten_forwards.entry(run).or_insert(forgotten);
            *newest = (*newest).max(forgotten);
            // A few runs per sender (its last restarts) are enough.
            let runs: Vec<(NodeId, u64)> = self
                .forgotten_forwards
                .range((sender, 0)..=(sender, u64::MAX))
                .map(|(k, _)| *k)
                .collect();
            for old in runs.iter().take(runs.len().saturating_sub(FORWARD_RUNS)) {
                self.forgotten_forwards.remove(old);
            }
        }
        if self
            .forgotten_forwards
            .get(&(from, id_run(req)))
            .is_some_and(|&newest| req <= newest)
        {
            return false;
        }
        if !self.seen_forwards.insert((from, req)) {
            return false;
        }
        let keep = timeout.saturating_mul(2).max(self.keep);
        self.forward_order
            .insert((now.saturating_add(keep), (from, req)));
        true
    }

    /// The request `req`.
    pub(crate) fn get(&self, req: RequestId) -> Option<&Pending> {
        self.pending.get(&req).map(|p| &**p)
    }

    /// The request `req`, mutably.
    pub(crate) fn get_mut(&mut self, req: RequestId) -> Option<&mut Pending> {
        self.pending.get_mut(&req).map(|p| &mut **p)
    }

    /// Takes request `req` out to work on it; [`Requests::put_back`] returns it.
    pub(crate) fn take(&mut self, req: RequestId) -> Option<Box<Pending>> {
        self.pending.remove(&req)
    }

    /// Returns a request taken with [`Requests::take`].
    pub(crate) fn put_back(&mut self, req: RequestId, pending: Box<Pending>) {
        self.pending.insert(req, pending);
    }

    /// Takes out the forward `req` if it went to `to`.
    pub(crate) fn take_forward_to(&mut self, req: RequestId, to: NodeId) -> Option<Pending> {
        match self.pending.get(&req).map(|p| &**p) {
            Some(Pending::Forward { to: t, .. }) if *t == to => {
                self.pending.remove(&req).map(|p| *p)
            }
            _ => None,
        }
    }

    /// The requests waiting on `peer` as a replica, oldest first.
    pub(crate) fn awaiting(&self, peer: NodeId) -> Vec<RequestId> {
        self.pending
            .iter()
            .filter(|(_, p)| p.awaits(peer))
            .map(|(&r, _)| r)
            .collect()
    }

    /// The requests whose timeout fell at or before `now`, oldest first.
    pub(crate) fn due(&self, now: Millis) -> Vec<RequestId> {
        self.pending
            .iter()
            .filter(|(_, p)| p.poll_timeout().is_some_and(|t| t <= now))
            .map(|(&r, _)| r)
            .collect()
    }

    /// The earliest timeout of any request.
    pub(crate) fn poll_timeout(&self) -> Option<Millis> {
        self.pending.values().filter_map(|p| p.poll_timeout()).min()
    }

    /// Requests in flight.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}
