//! Ownership transfer: streaming a key range to its new owner when the ring changes, with a
//! checkpoint so that an interrupted transfer resumes where it stopped.

mod config;
mod message;

pub use config::TransferConfig;
pub use message::{TransferAck, TransferBatch, TransferEntry, TransferId};

use std::collections::VecDeque;
use std::fmt::Debug;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::error::{TransferAckError, TransferError};
use crate::time::after;

/// Identifies one [`TransferEvent::NeedBatch`] request, answered by
/// [`TransferSession::supply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// What a transfer session tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferEvent<K> {
    /// Read the next keys of the range from the store, in order: at most `max_entries` entries
    /// (and about `max_bytes`) with keys greater than `after` (from the start of the range if
    /// `None`), then answer with [`TransferSession::supply`].
    NeedBatch {
        /// Echo this in the answer.
        request: RequestId,
        /// Exclusive lower bound.
        after: Option<K>,
        /// Most entries wanted.
        max_entries: usize,
        /// Most bytes wanted.
        max_bytes: usize,
    },
    /// The receiver holds every key of the range up to and including `key`: persist it, and
    /// resume from it after a restart ([`TransferSession::resume`]).
    Checkpoint {
        /// The new checkpoint.
        key: K,
    },
    /// The receiver holds the whole range: the sender may drop it.
    Complete,
}

struct InFlight<K, P> {
    batch: TransferBatch<K, P>,
    acked: bool,
    /// Whether the batch is on the wire (then `at` is its deadline) or waiting to be resent
    /// after backoff (then `at` is when).
    sent: bool,
    at: u64,
}

/// The sending side of one ownership transfer: one key range to one new owner.
///
/// The session never reads the store: it asks for keys in order with
/// [`TransferEvent::NeedBatch`], the owner answers with [`supply`](Self::supply), and the session
/// sends, retries and checkpoints. The receiver needs no session: it applies each
/// [`TransferBatch`] and answers with [`TransferBatch::ack`].
///
/// # Methods by kind
///
/// - Construction: [`new`](Self::new) for a fresh transfer, [`resume`](Self::resume) from a
///   persisted checkpoint.
/// - Getters (`&self`): [`id`](Self::id), [`to`](Self::to), [`checkpoint`](Self::checkpoint),
///   [`is_complete`](Self::is_complete), [`entries_acknowledged`](Self::entries_acknowledged),
///   [`in_flight`](Self::in_flight).
/// - Inputs: [`handle_message`](Self::handle_message) (an acknowledgement from the network),
///   [`handle_timeout`](Self::handle_timeout), [`peer_up`](Self::peer_up) /
///   [`peer_down`](Self::peer_down) from the failure detector.
/// - Commands: [`supply`](Self::supply) the entries a [`TransferEvent::NeedBatch`] asked for.
/// - Outputs: [`poll_event`](Self::poll_event), [`poll_transmit`](Self::poll_transmit),
///   [`poll_timeout`](Self::poll_timeout).
///
/// # Driving order
///
/// After every call, drain [`poll_event`](Self::poll_event) (answering `NeedBatch`, persisting
/// `Checkpoint`), then [`poll_transmit`](Self::poll_transmit), then schedule
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout).
///
/// A new session assumes the receiver is up; after [`peer_down`](Self::peer_down) it sends
/// nothing until [`peer_up`](Self::peer_up), and then starts again from the checkpoint.
///
/// # Consistency
///
/// The session moves a snapshot-free stream of the range: keys written on the sender after
/// their batch was read are not in the transfer. The owner forwards such writes to the new owner
/// (or repairs them later with anti-entropy), as Riak does during handoff.
pub struct TransferSession<Id, K, P> {
    config: TransferConfig,
    id: TransferId,
    to: Id,
    checkpoint: Option<K>,
    /// Exclusive lower bound of the next batch to ask for.
    frontier: Option<K>,
    end_supplied: bool,
    in_flight: VecDeque<InFlight<K, P>>,
    request: Option<RequestId>,
    next_request: u64,
    peer_up: bool,
    complete: bool,
    failures: u32,
    acknowledged: u64,
    rng: ChaCha8Rng,
    events: VecDeque<TransferEvent<K>>,
    transmits: VecDeque<(Id, TransferBatch<K, P>)>,
}

impl<Id, K, P> TransferSession<Id, K, P>
where
    Id: PartialEq + Clone + Debug,
    K: Ord + Clone + Debug,
    P: Clone,
{
    /// A transfer of a whole range to `to`. Emits the first [`TransferEvent::NeedBatch`].
    pub fn new(config: TransferConfig, id: TransferId, to: Id) -> Self {
        Self::resume(config, id, to, None)
    }

    /// A transfer that continues after `checkpoint` (the last [`TransferEvent::Checkpoint`]
    /// persisted), or from the start if `None`.
    pub fn resume(config: TransferConfig, id: TransferId, to: Id, checkpoint: Option<K>) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ id.0.rotate_left(32));
        let mut session = TransferSession {
            config,
            id,
            to,
            frontier: checkpoint.clone(),
            checkpoint,
            end_supplied: false,
            in_flight: VecDeque::new(),
            request: None,
            next_request: 0,
            peer_up: true,
            complete: false,
            failures: 0,
            acknowledged: 0,
            rng,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
        };
        session.maybe_request();
        session
    }

    /// The transfer's id.
    pub fn id(&self) -> TransferId {
        self.id
    }

    /// The receiver.
    pub fn to(&self) -> &Id {
        &self.to
    }

    /// The last key through which the receiver holds the range.
    pub fn checkpoint(&self) -> Option<&K> {
        self.checkpoint.as_ref()
    }

    /// Whether the receiver holds the whole range.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Entries acknowledged by this session (not counting those before the resume checkpoint).
    pub fn entries_acknowledged(&self) -> u64 {
        self.acknowledged
    }

    /// Batches sent or waiting to be resent, not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().filter(|f| !f.acked).count()
    }

    /// Answers `request` with the next entries of the range, keys strictly increasing and
    /// greater than the request's `after`; `last` says that no key of the range follows.
    pub fn supply(
        &mut self,
        now: u64,
        request: RequestId,
        entries: Vec<TransferEntry<K, P>>,
        last: bool,
    ) -> Result<(), TransferError> {
        if self.request != Some(request) {
            return Err(TransferError::StaleRequest {
                got: request,
                current: self.request,
            });
        }
        if entries.is_empty() && !last {
            return Err(TransferError::EmptyBatch);
        }
        let mut previous = self.frontier.as_ref();
        for (index, entry) in entries.iter().enumerate() {
            if previous.is_some_and(|p| entry.key <= *p) {
                return Err(TransferError::OutOfOrder { index });
            }
            previous = Some(&entry.key);
        }
        self.request = None;
        let batch = TransferBatch {
            transfer: self.id,
            after: self.frontier.clone(),
            entries,
            last,
        };
        if let Some(key) = batch.through() {
            self.frontier = Some(key.clone());
        }
        self.end_supplied = last;
        self.transmits.push_back((self.to.clone(), batch.clone()));
        self.in_flight.push_back(InFlight {
            batch,
            acked: false,
            sent: true,
            at: after(now, self.config.ack_timeout),
        });
        self.maybe_request();
        Ok(())
    }

    /// An acknowledgement from `from`.
    ///
    /// # Errors
    /// [`TransferAckError`] if it belongs to another transfer, comes from a node other than the
    /// receiver, or matches no batch in flight; the session is then unchanged.
    pub fn handle_message(
        &mut self,
        _now: u64,
        from: Id,
        msg: TransferAck<K>,
    ) -> Result<(), TransferAckError> {
        let ack = msg;
        if ack.transfer != self.id {
            return Err(TransferAckError::WrongTransfer {
                expected: self.id.0,
                got: ack.transfer.0,
            });
        }
        if from != self.to {
            return Err(TransferAckError::WrongSender);
        }
        let Some(flight) = self.in_flight.iter_mut().find(|f| {
            !f.acked
                && f.batch.after == ack.after
                && f.batch.through() == ack.through.as_ref()
                && f.batch.last == ack.last
        }) else {
            return Err(TransferAckError::UnknownBatch);
        };
        flight.acked = true;
        self.failures = 0;
        let mut advanced = false;
        while self.in_flight.front().is_some_and(|f| f.acked) {
            let Some(done) = self.in_flight.pop_front() else {
                break;
            };
            self.acknowledged = self
                .acknowledged
                .saturating_add(done.batch.entries.len() as u64);
            if let Some(key) = done.batch.entries.into_iter().last().map(|e| e.key) {
                self.checkpoint = Some(key);
                advanced = true;
            }
            if done.batch.last {
                self.complete = true;
            }
        }
        if advanced {
            if let Some(key) = self.checkpoint.clone() {
                self.events.push_back(TransferEvent::Checkpoint { key });
            }
        }
        if self.complete {
            self.in_flight.clear();
            self.request = None;
            self.events.push_back(TransferEvent::Complete);
        } else {
            self.maybe_request();
        }
        Ok(())
    }

    /// The failure detector says `peer` is down; if it is the receiver, stop sending.
    /// Unacknowledged batches are discarded and will be read again from the checkpoint when the
    /// receiver is back; a batch request not yet polled is withdrawn. Other peers are no concern of this session.
    pub fn peer_down(&mut self, _now: u64, peer: Id) {
        if peer != self.to {
            return;
        }
        self.peer_up = false;
        self.in_flight.clear();
        self.transmits.clear();
        self.request = None;
        // A request the owner has not taken yet is withdrawn (it would read for nothing).
        self.events
            .retain(|e| !matches!(e, TransferEvent::NeedBatch { .. }));
        self.frontier = self.checkpoint.clone();
        self.end_supplied = false;
    }

    /// The failure detector says `peer` is up; if it is the receiver, continue from the
    /// checkpoint.
    pub fn peer_up(&mut self, _now: u64, peer: Id) {
        if peer != self.to || self.peer_up {
            return;
        }
        self.peer_up = true;
        self.failures = 0;
        self.maybe_request();
    }

    /// Resends batches whose acknowledgement is overdue, after backoff.
    pub fn handle_timeout(&mut self, now: u64) {
        if !self.peer_up || self.complete {
            return;
        }
        let overdue = |f: &InFlight<K, P>| !f.acked && f.sent && f.at <= now;
        if self.in_flight.iter().any(overdue) {
            self.failures = self.failures.saturating_add(1);
            let resend_at = after(now, self.config.backoff.delay(self.failures, &mut self.rng));
            for flight in self.in_flight.iter_mut().filter(|f| overdue(f)) {
                flight.sent = false;
                flight.at = resend_at;
            }
        }
        for flight in self.in_flight.iter_mut() {
            if !flight.acked && !flight.sent && flight.at <= now {
                flight.sent = true;
                flight.at = after(now, self.config.ack_timeout);
                self.transmits
                    .push_back((self.to.clone(), flight.batch.clone()));
            }
        }
    }

    /// The next batch to send, with its destination.
    pub fn poll_transmit(&mut self) -> Option<(Id, TransferBatch<K, P>)> {
        self.transmits.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<TransferEvent<K>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        if !self.peer_up || self.complete {
            return None;
        }
        self.in_flight
            .iter()
            .filter(|f| !f.acked)
            .map(|f| f.at)
            .min()
    }

    fn maybe_request(&mut self) {
        if !self.peer_up
            || self.complete
            || self.end_supplied
            || self.request.is_some()
            || self.in_flight.len() >= self.config.max_in_flight.max(1)
        {
            return;
        }
        let request = RequestId(self.next_request);
        self.next_request = self.next_request.wrapping_add(1);
        self.request = Some(request);
        self.events.push_back(TransferEvent::NeedBatch {
            request,
            after: self.frontier.clone(),
            max_entries: self.config.batch_max_entries.max(1),
            max_bytes: self.config.batch_max_bytes,
        });
    }
}

impl<Id: Debug, K: Debug, P> Debug for TransferSession<Id, K, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferSession")
            .field("id", &self.id)
            .field("to", &self.to)
            .field("checkpoint", &self.checkpoint)
            .field("in_flight", &self.in_flight.len())
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}
