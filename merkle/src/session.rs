//! The anti-entropy session: a sans-IO machine that finds exactly the keys two replicas disagree on.

use std::collections::{BTreeMap, VecDeque};

use crate::config::{SegmentId, SyncConfig, TreeConfig};
use crate::diff::{diff_sorted, normalize};
use crate::error::{ShapeMismatch, SyncError};
use crate::message::{ChildHashes, Entry, KeyDiff, Message, SegmentEntries};
use crate::stats::SyncStats;
use crate::tree::Tree;

/// `now + span` in milliseconds, saturating at the end of time.
fn after(now: u64, span: core::time::Duration) -> u64 {
    now.saturating_add(u64::try_from(span.as_millis()).unwrap_or(u64::MAX))
}

/// What a session reports to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The owner must answer with [`SyncSession::supply`] and this side's entries of the
    /// segment (every key `k` with [`TreeConfig::segment_of`]`(k) == segment`, and its digest).
    SegmentNeeded(SegmentId),
    /// The session ended: exactly the keys that differ, sorted by key, from this side's view
    /// (of the differing segments it covered, when they held more than
    /// [`SyncConfig::max_entries_bytes`]: then the differences of some whole segments). Empty
    /// proves the replicas equal only when no segment differed
    /// ([`SyncStats::differing_segments`] is 0): the owner may have written between comparing
    /// hashes and supplying entries, and a bounded session compares some segments only.
    Finished(Vec<KeyDiff>),
    /// The session failed and will do nothing more.
    Failed(SyncError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the peer's message with this step.
    AwaitPeer(u32),
    /// Waiting for the owner's entries; then send ours, or compare with the peer's.
    AwaitOwner(Option<Vec<SegmentEntries>>),
    Finished,
    Failed,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::AwaitPeer(_) => "waiting for the peer",
            Phase::AwaitOwner(_) => "waiting for the owner's segments",
            Phase::Finished => "finished",
            Phase::Failed => "failed",
        }
    }
}

/// One anti-entropy session between two replicas of one key range (Dynamo section 4.7).
///
/// The initiator sends its root; the sides then alternate, each sending its hashes of the children
/// of the nodes it found differing, all nodes of one level batched into one message. The side that
/// finds differing segments asks its owner for their entries ([`Event::SegmentNeeded`]) and sends
/// them; the other side asks its owner for its own, compares, and both end with
/// [`Event::Finished`] naming exactly the keys that differ. Identical trees end after one round
/// trip. Cost grows with the number of differences, not the number of keys ([`SyncStats`]).
///
/// # Methods by kind
///
/// - Construction: [`initiate`](Self::initiate) (sends the hello) and [`respond`](Self::respond)
///   (for the session id of a received hello).
/// - Getters (`&self`): [`stats`](Self::stats), [`is_done`](Self::is_done),
///   [`session`](Self::session).
/// - Inputs: [`handle_message`](Self::handle_message) (from the peer),
///   [`handle_timeout`](Self::handle_timeout). Each input that takes a tree reads the owner's
///   current tree; the owner may keep writing between inputs (a change made mid-session shows up
///   as a difference now or in the next session), or pass a snapshot (a clone) for a stable view.
/// - Commands: [`supply`](Self::supply) the owner's entries of a segment that
///   [`Event::SegmentNeeded`] asked for.
/// - Outputs: [`poll_transmit`](Self::poll_transmit) (messages for the peer, in order),
///   [`poll_event`](Self::poll_event), [`poll_timeout`](Self::poll_timeout).
///
/// # Driving order
///
/// After every input: drain `poll_transmit` (send each message to the peer), then drain
/// `poll_event` (answer each `SegmentNeeded` with `supply`, which is an input again), then
/// read `poll_timeout` and call `handle_timeout` when that time comes (see the crate docs on
/// time).
///
/// # Robustness
///
/// A message whose step was already seen is a duplicate and is ignored. Any other message that does
/// not fit (wrong session, wrong kind, a node or segment not asked for, a step from the future)
/// fails the session: `handle_message` returns the error, [`Event::Failed`] is emitted and an
/// [`Message::Abort`] is queued for the peer. Nothing panics on peer input.
#[derive(Clone, Debug)]
pub struct SyncSession {
    session: u64,
    config: SyncConfig,
    /// Known from the start for the initiator, from the hello for the responder.
    shape: Option<TreeConfig>,
    phase: Phase,
    last_received: Option<u32>,
    next_step: u32,
    /// Level of the node hashes this side last sent.
    sent_level: u8,
    /// Parents (at `sent_level - 1`) of the node hashes this side last sent, sorted.
    sent_parents: Vec<u32>,
    /// Segments whose entries this side sent; the peer's differences must lie in them.
    sent_segments: Vec<SegmentId>,
    /// Segments asked of the owner, with its answer once given.
    requested: BTreeMap<SegmentId, Option<Vec<Entry>>>,
    deadline: Option<u64>,
    outbox: VecDeque<Message>,
    events: VecDeque<Event>,
    stats: SyncStats,
}

impl SyncSession {
    /// Starts a session as the initiator: queues the hello (this side's root) for the peer.
    /// `session` is an id chosen by the owner, unique among its sessions with that peer.
    pub fn initiate(config: SyncConfig, session: u64, now: u64, tree: &Tree) -> Self {
        let mut this = Self::blank(config, session, Some(tree.config()));
        this.send(
            now,
            Message::Hello {
                session,
                shape: tree.config(),
                root: tree.root(),
            },
        );
        this.sent_level = 0;
        this
    }

    /// A responder for the session id of a received [`Message::Hello`]; hand it that hello with
    /// [`handle_message`](Self::handle_message).
    pub fn respond(config: SyncConfig, session: u64) -> Self {
        let mut this = Self::blank(config, session, None);
        this.phase = Phase::AwaitPeer(0);
        this
    }

    fn blank(config: SyncConfig, session: u64, shape: Option<TreeConfig>) -> Self {
        SyncSession {
            session,
            config,
            shape,
            phase: Phase::AwaitPeer(1),
            last_received: None,
            next_step: 0,
            sent_level: 0,
            sent_parents: Vec::new(),
            sent_segments: Vec::new(),
            requested: BTreeMap::new(),
            deadline: None,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: SyncStats::default(),
        }
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The session's counters so far.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Whether the session has finished or failed.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Finished | Phase::Failed)
    }

    /// The next message for the peer.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.outbox.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called, while waiting for the peer.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadline
    }

    /// Fails the session with [`SyncError::TimedOut`] if the peer has been silent past the deadline.
    pub fn handle_timeout(&mut self, now: u64) {
        if matches!(self.deadline, Some(deadline) if now >= deadline) {
            self.fail(SyncError::TimedOut {
                after: self.config.timeout,
            });
        }
    }

    /// Handles a message from the peer. `tree` is this side's tree of the range.
    ///
    /// Duplicates are ignored (`Ok`); an unexpected message fails the session (see the type docs).
    pub fn handle_message(&mut self, now: u64, tree: &Tree, msg: Message) -> Result<(), SyncError> {
        if let Message::Abort { session, reason } = &msg {
            if self.is_done() {
                return Ok(());
            }
            if *session != self.session {
                let error = SyncError::WrongSession {
                    expected: self.session,
                    got: *session,
                };
                self.fail(error.clone());
                return Err(error);
            }
            let error = SyncError::Aborted {
                reason: reason.clone(),
            };
            self.phase = Phase::Failed;
            self.deadline = None;
            self.events.push_back(Event::Failed(error.clone()));
            return Err(error);
        }
        let step = msg.step().unwrap_or(0);
        if matches!(self.last_received, Some(last) if step <= last) {
            self.stats.duplicates_ignored += 1;
            return Ok(());
        }
        let result = self.dispatch(now, tree, msg, step);
        if let Err(error) = &result {
            if !matches!(error, SyncError::Closed) {
                self.fail(error.clone());
            }
        }
        result
    }

    /// Gives the owner's entries of `segment`, asked for by [`Event::SegmentNeeded`]: every
    /// `(key, digest)` of the owner's store whose key is in the segment, in any order.
    pub fn supply<I, K, D>(
        &mut self,
        now: u64,
        segment: SegmentId,
        entries: I,
    ) -> Result<(), SyncError>
    where
        I: IntoIterator<Item = (K, D)>,
        K: Into<Vec<u8>>,
        D: Into<Vec<u8>>,
    {
        if self.is_done() {
            return Err(SyncError::Closed);
        }
        let result = self.accept_segment(now, segment, entries);
        if let Err(error) = &result {
            self.fail(error.clone());
        }
        result
    }

    fn accept_segment<I, K, D>(
        &mut self,
        now: u64,
        segment: SegmentId,
        entries: I,
    ) -> Result<(), SyncError>
    where
        I: IntoIterator<Item = (K, D)>,
        K: Into<Vec<u8>>,
        D: Into<Vec<u8>>,
    {
        let shape = self
            .shape
            .ok_or(SyncError::SegmentNotRequested { segment })?;
        let slot = match (&self.phase, self.requested.get_mut(&segment)) {
            (Phase::AwaitOwner(_), Some(slot @ None)) => slot,
            (Phase::AwaitOwner(_), Some(Some(_))) => {
                return Err(SyncError::AlreadySupplied { segment })
            }
            _ => return Err(SyncError::SegmentNotRequested { segment }),
        };
        let mut list: Vec<Entry> = entries.into_iter().map(|(k, d)| Entry::new(k, d)).collect();
        check_entries(&shape, segment, &list)?;
        normalize(&mut list);
        *slot = Some(list);
        if self.requested.values().all(Option::is_some) {
            self.owner_done(now);
        }
        Ok(())
    }

    /// Every requested segment is in: send ours, or compare with the peer's and finish.
    fn owner_done(&mut self, now: u64) {
        let requested = core::mem::take(&mut self.requested);
        let mine = requested
            .into_iter()
            .map(|(segment, entries)| SegmentEntries {
                segment,
                entries: entries.unwrap_or_default(),
            });
        match core::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::AwaitOwner(Some(theirs)) => {
                let per_segment: Vec<Vec<KeyDiff>> = mine
                    .zip(theirs)
                    .map(|(mine, theirs)| {
                        let mut keys = Vec::new();
                        diff_sorted(&mine.entries, &theirs.entries, &mut keys);
                        keys
                    })
                    .collect();
                let kept = within_budget(
                    per_segment,
                    self.session,
                    self.config.max_entries_bytes,
                    |keys| keys.iter().map(KeyDiff::encoded_len).sum(),
                );
                self.stats.segments_deferred += kept.deferred;
                let mut keys: Vec<KeyDiff> = kept.items.into_iter().flatten().collect();
                keys.sort();
                self.finish_and_tell(now, keys);
            }
            _ => {
                let kept = within_budget(
                    mine.collect(),
                    self.session,
                    self.config.max_entries_bytes,
                    SegmentEntries::encoded_len,
                );
                self.stats.segments_deferred += kept.deferred;
                let segments = kept.items;
                self.sent_segments = segments.iter().map(|s| s.segment).collect();
                self.stats.entries += segments.iter().map(|s| s.entries.len() as u64).sum::<u64>();
                self.send(
                    now,
                    Message::Entries {
                        session: self.session,
                        step: self.next_step,
                        segments,
                    },
                );
            }
        }
    }

    fn dispatch(
        &mut self,
        now: u64,
        tree: &Tree,
        msg: Message,
        step: u32,
    ) -> Result<(), SyncError> {
        if msg.session() != self.session {
            return Err(SyncError::WrongSession {
                expected: self.session,
                got: msg.session(),
            });
        }
        let unexpected = |phase: &Phase| SyncError::Unexpected {
            state: phase.name(),
            got: msg.kind(),
            step,
        };
        match &self.phase {
            Phase::AwaitPeer(expected) if *expected == step => {}
            Phase::Finished | Phase::Failed => return Err(SyncError::Closed),
            phase => return Err(unexpected(phase)),
        }
        let is_hello = matches!(msg, Message::Hello { .. });
        if self.shape.is_none() != is_hello {
            return Err(unexpected(&self.phase));
        }
        if let Some(shape) = self.shape {
            if shape != tree.config() {
                return Err(ShapeMismatch {
                    local: tree.config(),
                    remote: shape,
                }
                .into());
            }
        }
        let bytes = msg.encoded_len() as u64;
        self.last_received = Some(step);
        self.next_step = step + 1;
        self.deadline = None;
        self.stats.messages_received += 1;
        self.stats.bytes_received += bytes;
        if msg.is_tree_part() {
            self.stats.tree_bytes += bytes;
        }
        match msg {
            Message::Hello { shape, root, .. } if self.shape.is_none() => {
                if shape != tree.config() {
                    return Err(ShapeMismatch {
                        local: tree.config(),
                        remote: shape,
                    }
                    .into());
                }
                self.shape = Some(shape);
                self.stats.hashes += 1;
                if root == tree.root() {
                    self.finish_and_tell(now, Vec::new());
                } else {
                    self.after_compare(now, tree, 0, vec![0]);
                }
                Ok(())
            }
            Message::Hashes { level, groups, .. } => self.on_hashes(now, tree, level, groups),
            Message::Entries { segments, .. } => self.on_entries(now, segments),
            Message::Differences { keys, .. } => {
                for diff in &keys {
                    let segment = tree.config().segment_of(&diff.key);
                    if self.sent_segments.binary_search(&segment).is_err() {
                        return Err(SyncError::SegmentNotRequested { segment });
                    }
                }
                let mut keys: Vec<KeyDiff> = keys
                    .into_iter()
                    .map(|d| KeyDiff {
                        key: d.key,
                        kind: d.kind.flip(),
                    })
                    .collect();
                keys.sort();
                if let Some(pair) = keys.windows(2).find(|w| w[0].key == w[1].key) {
                    return Err(SyncError::DuplicateKey {
                        len: pair[0].key.len(),
                    });
                }
                self.phase = Phase::Finished;
                self.events.push_back(Event::Finished(keys));
                Ok(())
            }
            other => Err(SyncError::Unexpected {
                state: self.phase.name(),
                got: other.kind(),
                step,
            }),
        }
    }

    fn on_hashes(
        &mut self,
        now: u64,
        tree: &Tree,
        level: u8,
        groups: Vec<ChildHashes>,
    ) -> Result<(), SyncError> {
        let shape = tree.config();
        if level == 0 || level > shape.depth() || level != self.sent_level + 1 {
            return Err(SyncError::Unexpected {
                state: "comparing hashes",
                got: "Hashes at an unexpected level",
                step: self.next_step.saturating_sub(1),
            });
        }
        let parent_level = level - 1;
        let fanout = shape.fanout();
        let mut differing = Vec::new();
        for group in groups {
            if !self.was_sent(shape, parent_level, group.parent) {
                return Err(SyncError::UnknownParent {
                    level: parent_level,
                    parent: group.parent,
                });
            }
            let mine =
                tree.children(parent_level, group.parent)
                    .ok_or(SyncError::UnknownParent {
                        level: parent_level,
                        parent: group.parent,
                    })?;
            if group.hashes.len() != mine.len() {
                return Err(SyncError::BadChildCount {
                    expected: fanout,
                    got: group.hashes.len(),
                });
            }
            self.stats.hashes += mine.len() as u64;
            for (child, (theirs, ours)) in (0..).zip(group.hashes.iter().zip(mine)) {
                if theirs != ours {
                    differing.push(group.parent * fanout + child);
                }
            }
        }
        differing.sort_unstable();
        differing.dedup();
        self.after_compare(now, tree, level, differing);
        Ok(())
    }

    /// `differing` are the nodes of `level` found differing: go one level down, ask the owner
    /// for segments, or finish when nothing differs.
    fn after_compare(&mut self, now: u64, tree: &Tree, level: u8, differing: Vec<u32>) {
        let shape = tree.config();
        if differing.is_empty() {
            self.finish_and_tell(now, Vec::new());
        } else if level == shape.depth() {
            self.stats.differing_segments += differing.len() as u64;
            self.ask_owner(differing.iter().copied(), None);
        } else {
            let groups: Vec<ChildHashes> = differing
                .iter()
                .filter_map(|&parent| {
                    let hashes = tree.children(level, parent)?.to_vec();
                    Some(ChildHashes { parent, hashes })
                })
                .collect();
            self.stats.hashes += groups.iter().map(|g| g.hashes.len() as u64).sum::<u64>();
            self.sent_level = level + 1;
            self.sent_parents = differing;
            self.send(
                now,
                Message::Hashes {
                    session: self.session,
                    step: self.next_step,
                    level: level + 1,
                    groups,
                },
            );
        }
    }

    fn on_entries(&mut self, now: u64, mut segments: Vec<SegmentEntries>) -> Result<(), SyncError> {
        let shape = self.shape.ok_or(SyncError::Unexpected {
            state: "waiting for the hello",
            got: "Entries",
            step: self.next_step.saturating_sub(1),
        })?;
        segments.sort_by_key(|s| s.segment);
        segments.dedup_by_key(|s| s.segment);
        for s in &mut segments {
            if !self.was_sent(shape, shape.depth(), s.segment) {
                return Err(SyncError::SegmentNotRequested { segment: s.segment });
            }
            check_entries(&shape, s.segment, &s.entries)?;
            self.stats.entries += s.entries.len() as u64;
            normalize(&mut s.entries);
        }
        let wanted: Vec<SegmentId> = segments.iter().map(|s| s.segment).collect();
        self.stats.differing_segments += wanted.len() as u64;
        self.ask_owner(wanted.into_iter(), Some(segments));
        if self.requested.is_empty() {
            self.owner_done(now);
        }
        Ok(())
    }

    fn ask_owner(
        &mut self,
        segments: impl Iterator<Item = SegmentId>,
        theirs: Option<Vec<SegmentEntries>>,
    ) {
        self.requested.clear();
        for segment in segments {
            self.requested.insert(segment, None);
            self.events.push_back(Event::SegmentNeeded(segment));
        }
        self.phase = Phase::AwaitOwner(theirs);
    }

    /// Whether this side last sent the hash of node `index` at `level`.
    fn was_sent(&self, shape: TreeConfig, level: u8, index: u32) -> bool {
        if level != self.sent_level {
            return false;
        }
        if level == 0 {
            return index == 0;
        }
        let parent = index >> shape.fanout_bits();
        self.sent_parents.binary_search(&parent).is_ok()
    }

    fn finish_and_tell(&mut self, now: u64, keys: Vec<KeyDiff>) {
        self.send(
            now,
            Message::Differences {
                session: self.session,
                step: self.next_step,
                keys: keys.clone(),
            },
        );
        self.deadline = None;
        self.phase = Phase::Finished;
        self.events.push_back(Event::Finished(keys));
    }

    fn send(&mut self, now: u64, msg: Message) {
        let bytes = msg.encoded_len() as u64;
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes;
        if msg.is_tree_part() {
            self.stats.tree_bytes += bytes;
        }
        if let Message::Hello { .. } = msg {
            self.stats.hashes += 1;
        }
        if msg.step().is_some() {
            self.next_step += 1;
            self.phase = Phase::AwaitPeer(self.next_step);
            self.deadline = Some(after(now, self.config.timeout));
        }
        self.outbox.push_back(msg);
    }

    fn fail(&mut self, error: SyncError) {
        if self.is_done() {
            return;
        }
        self.phase = Phase::Failed;
        self.deadline = None;
        self.requested.clear();
        let abort = Message::Abort {
            session: self.session,
            reason: error.to_string(),
        };
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += abort.encoded_len() as u64;
        self.outbox.push_back(abort);
        self.events.push_back(Event::Failed(error));
    }
}

/// What [`within_budget`] keeps of a session's segments.
struct Kept<T> {
    /// The segments kept, in their given order.
    items: Vec<T>,
    /// How many were left for a later session.
    deferred: u64,
}

/// The segments a session sends or compares: whole segments, taken in order from a start drawn
/// from `session` (wrapping around), while their cost stays within `budget`; the first is always
/// taken. Kept in their given (segment) order. Drawing the start spreads the sessions of a range
/// too large for one over all its segments, so that one that cannot be repaired holds up none of
/// the others.
fn within_budget<T>(
    items: Vec<T>,
    session: u64,
    budget: usize,
    cost: impl Fn(&T) -> usize,
) -> Kept<T> {
    let costs: Vec<usize> = items.iter().map(&cost).collect();
    if costs.iter().fold(0usize, |a, c| a.saturating_add(*c)) <= budget {
        return Kept { items, deferred: 0 };
    }
    let count = items.len();
    // A multiplicative hash: consecutive session ids start far apart.
    let drawn = session.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    let start = usize::try_from(drawn).unwrap_or(0) % count;
    let mut take = vec![false; count];
    let mut spent = 0usize;
    for i in (start..count).chain(0..start) {
        let next = spent.saturating_add(costs[i]);
        if spent > 0 && next > budget {
            break;
        }
        take[i] = true;
        spent = next;
    }
    let kept: Vec<T> = items
        .into_iter()
        .zip(&take)
        .filter_map(|(item, &t)| t.then_some(item))
        .collect();
    Kept {
        deferred: (count - kept.len()) as u64,
        items: kept,
    }
}

/// Checks that every entry listed under `segment` belongs to it.
fn check_entries(
    shape: &TreeConfig,
    segment: SegmentId,
    entries: &[Entry],
) -> Result<(), SyncError> {
    for entry in entries {
        let actual = shape.segment_of(&entry.key);
        if actual != segment {
            return Err(SyncError::EntryOutsideSegment {
                listed: segment,
                actual,
            });
        }
    }
    Ok(())
}
