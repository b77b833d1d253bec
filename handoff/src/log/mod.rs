//! The hint log: where a fallback node keeps the writes it holds for others, and the machine that
//! hands them back (paper section 4.6, "hinted handoff").

mod config;
mod report;

pub use config::{HintLogConfig, OverflowPolicy};
pub use report::{HintEvent, NodeStats, RebuildReport};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::error::{AckError, RecordError};
use crate::hint::{BatchId, DropReason, Hint, HintAck, HintBatch, HintEntry, HintId, HintRecord};
use crate::payload::Payload;
use crate::time::{after, since};

struct Stored<Id, P> {
    record: HintRecord<Id, P>,
    size: usize,
    batch: Option<BatchId>,
}

#[derive(Default)]
struct NodeState {
    /// Hints waiting for a batch, oldest first.
    queued: BTreeSet<HintId>,
    in_flight: BTreeSet<BatchId>,
    hints: usize,
    bytes: usize,
    up: bool,
    failures: u32,
    /// No new batch before this instant (backoff after a loss).
    retry_at: Option<u64>,
}

struct Flight<Id> {
    node: Id,
    hints: Vec<HintId>,
    deadline: u64,
}

/// A bounded, sans-IO log of hints with their delivery machine.
///
/// # Methods by kind
///
/// - Construction: [`new`](Self::new), then [`rebuild`](Self::rebuild) with the persisted
///   records at start.
/// - Getters (`&self`): [`config`](Self::config), [`len`](Self::len), [`bytes`](Self::bytes),
///   [`pending_for`](Self::pending_for), [`node_stats`](Self::node_stats),
///   [`nodes`](Self::nodes), [`records`](Self::records).
/// - Inputs: [`handle_message`](Self::handle_message) (an acknowledgement from the network),
///   [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout) is due,
///   [`peer_up`](Self::peer_up) / [`peer_down`](Self::peer_down) from the failure detector
///   (gossip).
/// - Commands: [`record`](Self::record) a hint, [`forget_peer`](Self::forget_peer) when a node
///   leaves the ring for good.
/// - Outputs: [`poll_event`](Self::poll_event) (persist, forget, delivered, dropped),
///   [`poll_transmit`](Self::poll_transmit) (batches to send),
///   [`poll_timeout`](Self::poll_timeout) (when to call `handle_timeout`).
///
/// # Driving order
///
/// After every command or input, drain [`poll_event`](Self::poll_event) first (so that a hint is
/// persisted before it travels and forgotten once acknowledged), then
/// [`poll_transmit`](Self::poll_transmit), then read [`poll_timeout`](Self::poll_timeout) and
/// arrange to call [`handle_timeout`](Self::handle_timeout) at that instant.
///
/// Peers start out as down: the log sends nothing to a node until [`peer_up`](Self::peer_up)
/// says it is up, and nothing after [`peer_down`](Self::peer_down) until it is up again.
///
/// # Guarantees
///
/// Every hint that [`record`](Self::record) accepts ends in exactly one
/// [`HintEvent::Delivered`] (its batch was acknowledged by the intended node) or one
/// [`HintEvent::Dropped`] with a reason, each followed by [`HintEvent::Forget`]. Delivery is
/// at least once: a batch may reach the receiver more than once (retries after a lost
/// acknowledgement), which is harmless because the receiver merges versions.
pub struct HintLog<Id, P> {
    config: HintLogConfig,
    hints: BTreeMap<HintId, Stored<Id, P>>,
    /// Hints by age, oldest first, for expiry and eviction.
    by_age: BTreeSet<(u64, HintId)>,
    nodes: BTreeMap<Id, NodeState>,
    flights: BTreeMap<BatchId, Flight<Id>>,
    bytes: usize,
    next_hint: u64,
    next_batch: u64,
    rng: ChaCha8Rng,
    events: VecDeque<HintEvent<Id, P>>,
    transmits: VecDeque<(Id, HintBatch<P>)>,
}

impl<Id, P> HintLog<Id, P>
where
    Id: Ord + Clone + Hash + Debug,
    P: Payload + Clone,
{
    /// An empty log.
    pub fn new(config: HintLogConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        // Half the range: room for 2^63 batches without wrapping.
        let next_batch = rng.next_u64() >> 1;
        HintLog {
            config,
            hints: BTreeMap::new(),
            by_age: BTreeSet::new(),
            nodes: BTreeMap::new(),
            flights: BTreeMap::new(),
            bytes: 0,
            next_hint: 0,
            next_batch,
            rng,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HintLogConfig {
        &self.config
    }

    /// Takes back persisted records at start. Records already present (same id) are ignored.
    /// Records that are too old are dropped and reported. Records past the bounds (lowered since
    /// they were kept) are dropped oldest first and reported under
    /// [`OverflowPolicy::DropOldest`]; under [`OverflowPolicy::RejectNew`] they are kept, since a
    /// hint may hold the only copy of a write its node acknowledged, and the log takes no new
    /// hint until it is back under its bounds.
    pub fn rebuild(
        &mut self,
        now: u64,
        records: impl IntoIterator<Item = HintRecord<Id, P>>,
    ) -> RebuildReport {
        let mut report = RebuildReport::default();
        for record in records {
            if self.hints.contains_key(&record.id) {
                report.duplicates += 1;
                continue;
            }
            // The last id is never issued (the next one would not exist): a record holding it
            // comes from a damaged or foreign store.
            let Some(next) = record.id.0.checked_add(1) else {
                report.refused += 1;
                continue;
            };
            self.next_hint = self.next_hint.max(next);
            self.insert(record);
            report.restored += 1;
        }
        self.expire(now);
        if self.config.overflow == OverflowPolicy::DropOldest {
            while self.hints.len() > self.config.max_hints {
                let reason = DropReason::CountLimit {
                    max_hints: self.config.max_hints,
                };
                if !self.evict_oldest(reason) {
                    break;
                }
            }
            while self.bytes > self.config.max_bytes {
                let reason = DropReason::ByteLimit {
                    max_bytes: self.config.max_bytes,
                };
                if !self.evict_oldest(reason) {
                    break;
                }
            }
        }
        let nodes: Vec<Id> = self.nodes.keys().cloned().collect();
        for node in nodes {
            self.pump(now, &node);
        }
        report
    }

    /// Records a hint. On success the log emits [`HintEvent::Persist`] (and, under
    /// [`OverflowPolicy::DropOldest`], possibly [`HintEvent::Dropped`] for evicted hints), and
    /// sends the hint at once if its node is up.
    pub fn record(&mut self, now: u64, hint: Hint<Id, P>) -> Result<HintId, RecordError> {
        self.record_aged(now, now, hint)
    }

    /// Records a hint whose write was first recorded at `recorded_at` (at most `now`), as when a
    /// fallback moves an older hint to another node after a ring change: its age, and so its
    /// expiry, run from `recorded_at`, while its delivery (the batch's deadline) runs from `now`.
    /// Otherwise as [`HintLog::record`].
    pub fn record_aged(
        &mut self,
        now: u64,
        recorded_at: u64,
        hint: Hint<Id, P>,
    ) -> Result<HintId, RecordError> {
        let size = hint.size();
        let (max_hints, max_bytes) = (self.config.max_hints, self.config.max_bytes);
        if size > max_bytes {
            return Err(RecordError::TooLarge { size, max_bytes });
        }
        // Under `RejectNew`, the room of hints this call drops for their age is not the new
        // hint's: their owner may keep them again ([`HintLog::record_expired_again`]), which
        // would take the log past its bounds.
        let (expired, expired_bytes) = match self.expire(now) {
            held if self.config.overflow == OverflowPolicy::RejectNew => held,
            _ => (0, 0),
        };
        // Out of ids: refused before anything is dropped to make room for it.
        let Some(next) = self.next_hint.checked_add(1) else {
            return Err(RecordError::IdsExhausted);
        };
        let fits = |log: &Self| {
            log.hints.len().saturating_add(expired) < max_hints
                && log.bytes.saturating_add(expired_bytes).saturating_add(size) <= max_bytes
        };
        if self.config.overflow == OverflowPolicy::DropOldest {
            while !fits(self) {
                let reason = if self.hints.len() >= max_hints {
                    DropReason::CountLimit { max_hints }
                } else {
                    DropReason::ByteLimit { max_bytes }
                };
                if !self.evict_oldest(reason) {
                    break;
                }
            }
        }
        if !fits(self) {
            return Err(RecordError::Full {
                hints: self.hints.len(),
                bytes: self.bytes,
                max_hints,
                max_bytes,
                size,
            });
        }
        Ok(self.admit(now, recorded_at, hint, next))
    }

    /// Records again, aged from `now`, a hint this log has just dropped for its age
    /// ([`DropReason::Expired`]) and that its owner keeps, having nowhere safe to send it yet
    /// (every node that could take it is down). It takes back the room it freed, so the bounds do
    /// not refuse it, not even a log over bounds lowered since ([`HintLog::rebuild`]): refused,
    /// the only copy of a write its node acknowledged could be lost. Otherwise as
    /// [`HintLog::record`]; fails only when the log is out of ids.
    pub fn record_expired_again(
        &mut self,
        now: u64,
        hint: Hint<Id, P>,
    ) -> Result<HintId, RecordError> {
        let Some(next) = self.next_hint.checked_add(1) else {
            return Err(RecordError::IdsExhausted);
        };
        Ok(self.admit(now, now, hint, next))
    }

    /// Takes `hint` under the next id (`next` is the one after it).
    fn admit(&mut self, now: u64, recorded_at: u64, hint: Hint<Id, P>, next: u64) -> HintId {
        let id = HintId(self.next_hint);
        self.next_hint = next;
        let record = HintRecord {
            id,
            recorded_at: recorded_at.min(now),
            hint,
        };
        let node = record.hint.intended.clone();
        self.events.push_back(HintEvent::Persist(record.clone()));
        self.insert(record);
        self.pump(now, &node);
        id
    }

    /// The failure detector says `peer` is up: start (or resume) delivering its hints.
    pub fn peer_up(&mut self, now: u64, peer: Id) {
        let state = self.nodes.entry(peer.clone()).or_default();
        state.up = true;
        state.failures = 0;
        state.retry_at = None;
        self.pump(now, &peer);
    }

    /// The failure detector says `peer` is down: stop sending to it. Batches in flight are
    /// abandoned (their hints go back to the queue, and a late acknowledgement is refused).
    pub fn peer_down(&mut self, _now: u64, peer: Id) {
        let Some(state) = self.nodes.get_mut(&peer) else {
            self.nodes.insert(peer, NodeState::default());
            return;
        };
        state.up = false;
        state.retry_at = None;
        self.transmits.retain(|(to, _)| to != &peer);
        let batches: Vec<BatchId> = state.in_flight.iter().copied().collect();
        for batch in batches {
            self.requeue(batch);
        }
    }

    /// `peer` left the ring for good: drop its hints with [`DropReason::NodeRemoved`] (the
    /// owner re-routes the data to the new owners) and forget the peer.
    pub fn forget_peer(&mut self, peer: &Id) {
        let node = peer;
        let ids: Vec<HintId> = self
            .hints
            .iter()
            .filter(|(_, s)| &s.record.hint.intended == node)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.drop_hint(id, DropReason::NodeRemoved);
        }
        self.transmits.retain(|(to, _)| to != node);
        if let Some(state) = self.nodes.remove(node) {
            for batch in state.in_flight {
                self.flights.remove(&batch);
            }
        }
    }

    /// Drops the hints `ids` with [`DropReason::Rerouted`]: the owner sends their data elsewhere,
    /// since the intended node, still in the ring, no longer replicates their keys (a hint kept
    /// for it would bring the data to a node that is not a replica). A hint in a batch in flight
    /// is taken out of it (a late acknowledgement reports nothing for it); ids not held are
    /// ignored.
    pub fn reroute(&mut self, ids: impl IntoIterator<Item = HintId>) {
        for id in ids {
            self.drop_hint(id, DropReason::Rerouted);
        }
    }

    /// An acknowledgement from `from`: the hints of that batch are delivered (each reported with
    /// [`HintEvent::Delivered`]) but those it names as refused, which wait for another batch
    /// after a backoff; and the next batch goes out (at once when none was refused).
    ///
    /// # Errors
    /// [`AckError`] if no batch with that id is in flight or it was sent to another node; the
    /// log is then unchanged.
    pub fn handle_message(&mut self, now: u64, from: Id, msg: HintAck) -> Result<(), AckError<Id>> {
        let batch = msg.batch_id;
        let Some(flight) = self.flights.get(&batch) else {
            return Err(AckError::UnknownBatch { batch: batch.0 });
        };
        if flight.node != from {
            return Err(AckError::WrongSender {
                batch: batch.0,
                expected: flight.node.clone(),
                from,
            });
        }
        let Some(flight) = self.flights.remove(&batch) else {
            return Err(AckError::UnknownBatch { batch: batch.0 });
        };
        let refused: BTreeSet<HintId> = msg.refused.into_iter().collect();
        let mut requeued = Vec::new();
        if let Some(state) = self.nodes.get_mut(&from) {
            state.in_flight.remove(&batch);
            if refused.is_empty() {
                state.failures = 0;
                state.retry_at = None;
            } else {
                state.failures = state.failures.saturating_add(1);
                let delay = self.config.backoff.delay(state.failures, &mut self.rng);
                state.retry_at = Some(after(now, delay));
            }
        }
        for id in flight.hints {
            if refused.contains(&id) {
                if let Some(stored) = self.hints.get_mut(&id) {
                    stored.batch = None;
                    requeued.push(id);
                }
                continue;
            }
            if let Some(stored) = self.remove(id) {
                let HintRecord { id, hint, .. } = stored.record;
                self.events.push_back(HintEvent::Delivered {
                    id,
                    node: hint.intended,
                    key: hint.key,
                });
                self.events.push_back(HintEvent::Forget(id));
            }
        }
        if let Some(state) = self.nodes.get_mut(&from) {
            state.queued.extend(requeued);
        }
        if self.nodes.get(&from).is_some_and(|s| s.hints == 0) {
            self.events
                .push_back(HintEvent::Drained { node: from.clone() });
        }
        self.pump(now, &from);
        Ok(())
    }

    /// Time has come: drop hints past their age, treat unacknowledged batches past their
    /// deadline as lost (retry after backoff), and send what may be sent.
    pub fn handle_timeout(&mut self, now: u64) {
        self.expire(now);
        let lost: Vec<BatchId> = self
            .flights
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(b, _)| *b)
            .collect();
        for batch in lost {
            if let Some(node) = self.requeue(batch) {
                if let Some(state) = self.nodes.get_mut(&node) {
                    state.failures = state.failures.saturating_add(1);
                    let delay = self.config.backoff.delay(state.failures, &mut self.rng);
                    state.retry_at = Some(after(now, delay));
                }
            }
        }
        let nodes: Vec<Id> = self.nodes.keys().cloned().collect();
        for node in nodes {
            self.pump(now, &node);
        }
    }

    /// The next batch to send, with its destination.
    pub fn poll_transmit(&mut self) -> Option<(Id, HintBatch<P>)> {
        self.transmits.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<HintEvent<Id, P>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        let expiry = self
            .by_age
            .first()
            .map(|(at, _)| after(*at, self.config.max_age));
        let deadline = self.flights.values().map(|f| f.deadline).min();
        let retry = self
            .nodes
            .values()
            .filter(|s| s.up && !s.queued.is_empty())
            .filter_map(|s| s.retry_at)
            .min();
        [expiry, deadline, retry].into_iter().flatten().min()
    }

    /// Hints held.
    pub fn len(&self) -> usize {
        self.hints.len()
    }

    /// Whether no hint is held.
    pub fn is_empty(&self) -> bool {
        self.hints.is_empty()
    }

    /// Bytes held (keys plus payloads).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Hints held for `node`, in flight or not.
    pub fn pending_for(&self, node: &Id) -> usize {
        self.nodes.get(node).map_or(0, |s| s.hints)
    }

    /// Figures for one node, if the log has heard of it.
    pub fn node_stats(&self, node: &Id) -> Option<NodeStats> {
        self.nodes.get(node).map(stats)
    }

    /// Figures for every node the log has heard of, in order.
    pub fn nodes(&self) -> impl Iterator<Item = (&Id, NodeStats)> + '_ {
        self.nodes.iter().map(|(id, s)| (id, stats(s)))
    }

    /// The records held, in id order: what the owner's store should contain.
    pub fn records(&self) -> impl Iterator<Item = &HintRecord<Id, P>> + '_ {
        self.hints.values().map(|s| &s.record)
    }

    fn insert(&mut self, record: HintRecord<Id, P>) {
        let size = record.hint.size();
        let state = self.nodes.entry(record.hint.intended.clone()).or_default();
        state.queued.insert(record.id);
        state.hints += 1;
        state.bytes = state.bytes.saturating_add(size);
        self.bytes = self.bytes.saturating_add(size);
        self.by_age.insert((record.recorded_at, record.id));
        self.hints.insert(
            record.id,
            Stored {
                record,
                size,
                batch: None,
            },
        );
    }

    /// Takes a hint out of every index; the caller reports why.
    fn remove(&mut self, id: HintId) -> Option<Stored<Id, P>> {
        let stored = self.hints.remove(&id)?;
        self.by_age.remove(&(stored.record.recorded_at, id));
        self.bytes = self.bytes.saturating_sub(stored.size);
        let node = &stored.record.hint.intended;
        if let Some(state) = self.nodes.get_mut(node) {
            state.queued.remove(&id);
            state.hints = state.hints.saturating_sub(1);
            state.bytes = state.bytes.saturating_sub(stored.size);
        }
        if let Some(batch) = stored.batch {
            if let Some(flight) = self.flights.get_mut(&batch) {
                flight.hints.retain(|h| *h != id);
            }
        }
        Some(stored)
    }

    fn drop_hint(&mut self, id: HintId, reason: DropReason) {
        if let Some(stored) = self.remove(id) {
            let HintRecord { id, hint, .. } = stored.record;
            self.events.push_back(HintEvent::Dropped {
                id,
                node: hint.intended,
                key: hint.key,
                reason,
            });
            self.events.push_back(HintEvent::Forget(id));
        }
    }

    fn evict_oldest(&mut self, reason: DropReason) -> bool {
        match self.by_age.pop_first() {
            Some((_, id)) => {
                self.drop_hint(id, reason);
                true
            }
            None => false,
        }
    }

    /// Drops the hints past their largest age; returns how many, and their bytes.
    fn expire(&mut self, now: u64) -> (usize, usize) {
        let max_age = self.config.max_age;
        let (mut count, mut bytes) = (0usize, 0usize);
        while let Some(&(at, id)) = self.by_age.first() {
            let age = since(now, at);
            if age < max_age {
                break;
            }
            // Taken off the index here, so that an entry no hint matches cannot stop expiry.
            self.by_age.pop_first();
            if let Some(stored) = self.hints.get(&id) {
                count += 1;
                bytes = bytes.saturating_add(stored.record.hint.size());
            }
            self.drop_hint(id, DropReason::Expired { age, max_age });
        }
        (count, bytes)
    }

    /// Cancels a batch in flight; its hints wait for the next one. Returns its node.
    fn requeue(&mut self, batch: BatchId) -> Option<Id> {
        let flight = self.flights.remove(&batch)?;
        let state = self.nodes.get_mut(&flight.node);
        let mut requeued = Vec::with_capacity(flight.hints.len());
        for id in flight.hints {
            if let Some(stored) = self.hints.get_mut(&id) {
                stored.batch = None;
                requeued.push(id);
            }
        }
        if let Some(state) = state {
            state.in_flight.remove(&batch);
            state.queued.extend(requeued);
        }
        Some(flight.node)
    }

    /// Sends as many batches to `node` as its window and backoff allow.
    fn pump(&mut self, now: u64, node: &Id) {
        let Some(state) = self.nodes.get_mut(node) else {
            return;
        };
        if !state.up || state.retry_at.is_some_and(|t| t > now) {
            return;
        }
        state.retry_at = None;
        let max_hints = self.config.batch_max_hints.max(1);
        let max_bytes = self.config.batch_max_bytes;
        while state.in_flight.len() < self.config.max_in_flight.max(1) && !state.queued.is_empty() {
            let batch_id = BatchId(self.next_batch);
            self.next_batch = self.next_batch.wrapping_add(1);
            let mut ids = Vec::new();
            let mut entries = Vec::new();
            let mut bytes = 0usize;
            while let Some(&id) = state.queued.first() {
                let Some(stored) = self.hints.get_mut(&id) else {
                    state.queued.remove(&id);
                    continue;
                };
                if !ids.is_empty()
                    && (ids.len() >= max_hints || bytes.saturating_add(stored.size) > max_bytes)
                {
                    break;
                }
                state.queued.remove(&id);
                bytes = bytes.saturating_add(stored.size);
                stored.batch = Some(batch_id);
                ids.push(id);
                entries.push(HintEntry {
                    id,
                    key: stored.record.hint.key.clone(),
                    payload: stored.record.hint.payload.clone(),
                });
            }
            if ids.is_empty() {
                break;
            }
            state.in_flight.insert(batch_id);
            self.flights.insert(
                batch_id,
                Flight {
                    node: node.clone(),
                    hints: ids,
                    deadline: after(now, self.config.ack_timeout),
                },
            );
            self.transmits
                .push_back((node.clone(), HintBatch { batch_id, entries }));
        }
    }
}

fn stats(s: &NodeState) -> NodeStats {
    NodeStats {
        hints: s.hints,
        bytes: s.bytes,
        in_flight_batches: s.in_flight.len(),
        up: s.up,
        failures: s.failures,
    }
}

impl<Id: Debug, P> Debug for HintLog<Id, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HintLog")
            .field("hints", &self.hints.len())
            .field("bytes", &self.bytes)
            .field("nodes", &self.nodes.len())
            .field("in_flight_batches", &self.flights.len())
            .finish_non_exhaustive()
    }
}
