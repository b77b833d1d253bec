//! The get coordinator: replica reads, R answers reconciled into siblings and a context, read
//! repair of the replicas that answered stale or missing.

use dynamo_vclock::{VClock, VersionSet};

use crate::options::after;
use crate::outcome::FailureReason;
use crate::plan::{check, Plan, Target};
use crate::put::ReplicaWrite;
use crate::{Fanout, NotFoundPolicy, ReplyError, RequestError, RequestOptions};

/// A read request to one replica. It carries nothing: the caller adds the key and request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReplicaRead;

/// What a [`GetCoordinator`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(bound(
        serialize = "Id: serde::Serialize, S: serde::Serialize",
        deserialize = "Id: serde::Deserialize<'de>, S: serde::Deserialize<'de>"
    ))
)]
#[non_exhaustive]
pub enum GetMessage<Id, S> {
    /// Read the key.
    Read(ReplicaRead),
    /// Read repair: merge these versions (the reconciliation of every answer) into the replica.
    Repair(ReplicaWrite<Id, S>),
}

/// What one replica answered a get: the input of [`GetCoordinator::handle_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetReply<S> {
    /// The replica's versions of the key (an empty set counts as [`GetReply::NotFound`]).
    Found(S),
    /// The replica has no version of the key.
    NotFound,
    /// The replica refused, or the caller knows the link is down.
    Failed,
    /// The replica lost its copy of the key (a damaged record it set aside, say) and cannot say
    /// what it held: it counts as a failure, never as not-found, and read repair refills it
    /// once R other replicas answered (with R + W > N their copies hold every write
    /// acknowledged with the lost one; fewer may lack one, and the repair ends the replica's
    /// loss).
    Lost,
}

/// One answer, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<Id, S> {
    /// Who answered.
    pub node: Id,
    /// When (the `now` passed with the answer).
    pub at: u64,
    /// What it answered.
    pub reply: GetReply<S>,
}

/// The answer of a get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOutcome<Id, S: VersionSet> {
    /// `Ok` after R answers, or why R was not reached.
    pub result: Result<(), FailureReason>,
    /// On success, the reconciliation of the R answers that counted (every concurrent version;
    /// empty = not found). On failure, the reconciliation of every version received.
    pub siblings: S,
    /// The merged clock of `siblings`: the context the client passes back with its put.
    pub context: VClock<S::Actor>,
    /// Every answer up to the decision (failures included), in arrival order.
    pub answers: Vec<Answer<Id, S>>,
    /// Slots without a target (N minus the plan's targets), counted as failures.
    pub unreachable: usize,
    /// The `now` the coordinator was created with.
    pub started: u64,
    /// The `now` of the decision.
    pub decided: u64,
}

impl<Id, S: VersionSet> GetOutcome<Id, S> {
    /// Whether R answers arrived in time.
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.result.is_ok()
    }

    /// Whether the get succeeded and found nothing (no version, not even a tombstone).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.result.is_ok() && self.siblings.is_empty()
    }
}

/// Coordinates one get across its replicas, without I/O, and then the read repair.
///
/// # Methods by kind
/// - Construction: [`new`](Self::new) (the deadline is its `now` plus the options' timeout).
/// - Getters (`&self`): [`is_finished`](Self::is_finished), [`is_complete`](Self::is_complete),
///   [`answers`](Self::answers), [`repaired`](Self::repaired),
///   [`late_answers`](Self::late_answers), [`ignored`](Self::ignored),
///   [`options`](Self::options), [`targets`](Self::targets), [`asked`](Self::asked),
///   [`deadline`](Self::deadline).
/// - Inputs: [`handle_message`](Self::handle_message) (a replica's [`GetReply`]),
///   [`handle_timeout`](Self::handle_timeout).
/// - Outputs: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event) (the
///   outcome), [`poll_timeout`](Self::poll_timeout).
///
/// # Driving order
/// 1. [`new`](Self::new), then drain [`poll_transmit`](Self::poll_transmit): one
///    [`GetMessage::Read`] per target, in plan order (read the local replica yourself and pass its
///    answer like any other). With [`Fanout::First`] only the first `reads` targets are asked at
///    once; another read goes out after each answer that does not count, and every remaining one
///    at the hedge, while the get is undecided.
/// 2. Feed answers with [`handle_message`](Self::handle_message) ([`GetReply::Failed`] when the
///    replica refused or the link is down, [`GetReply::Lost`] when it lost its copy), and [`handle_timeout`](Self::handle_timeout) when
///    [`poll_timeout`](Self::poll_timeout) is due. After each input drain
///    [`poll_event`](Self::poll_event) and [`poll_transmit`](Self::poll_transmit).
/// 3. [`poll_event`](Self::poll_event) yields exactly one [`GetOutcome`]: success when R answers
///    count (with [`NotFoundPolicy::Answer`] a not-found counts, with
///    [`NotFoundPolicy::Failure`] it counts as a failure), failure when that is out of reach or at
///    the deadline. The siblings are the reconciliation of exactly the R answers that counted.
/// 4. The coordinator keeps listening until every target asked answered or the deadline passed. Then
///    it emits [`GetMessage::Repair`] writes, holding the reconciliation of every version
///    received, to exactly the replicas that answered with a stale or missing version or said
///    they lost theirs (in the order they answered), and is [`complete`](Self::is_complete). Read repair is the only output
///    after the outcome.
///
/// An answer handled at `now >= deadline` comes after the deadline: the coordinator handles the
/// deadline first (it stops listening), so the answer is refused with
/// [`ReplyError::ListeningOver`], neither counted nor repaired. Replies from nodes that are not
/// targets, second replies and replies after listening ended are refused with a [`ReplyError`]
/// and counted ([`ignored`](Self::ignored)).
#[derive(Debug, Clone)]
pub struct GetCoordinator<Id, S: VersionSet> {
    options: RequestOptions,
    targets: Vec<Target<Id>>,
    answered: Vec<bool>,
    next_read: usize,
    /// Targets `..asked` are asked (every target unless [`Fanout::First`]).
    asked: usize,
    /// When to ask every remaining target ([`Fanout::First`]'s hedge), while undecided.
    hedge_at: Option<u64>,
    answers: Vec<Answer<Id, S>>,
    /// Reconciliation of the answers counted toward R, until the decision.
    counted: S,
    succeeded: usize,
    found: usize,
    not_found: usize,
    failed: usize,
    unreachable: usize,
    started: u64,
    deadline: u64,
    finished: bool,
    /// Set when every target answered or the deadline passed; repairs are then queued.
    closed: bool,
    repairs: Vec<(Id, ReplicaWrite<Id, S>)>,
    next_repair: usize,
    event: Option<GetOutcome<Id, S>>,
    late_answers: usize,
    ignored: usize,
}

impl<Id: Clone + PartialEq, S: VersionSet> GetCoordinator<Id, S> {
    /// A get over `plan`'s targets.
    ///
    /// # Errors
    /// Invalid options or plan ([`RequestError`]).
    pub fn new(options: RequestOptions, plan: Plan<Id>, now: u64) -> Result<Self, RequestError> {
        check(&options, &plan)?;
        let n_targets = plan.targets.len();
        let (asked, hedge_at) = match options.fanout {
            Fanout::First { reads, hedge } if reads < n_targets => (reads, Some(after(now, hedge))),
            _ => (n_targets, None),
        };
        let mut get = Self {
            options,
            targets: plan.targets,
            answered: vec![false; n_targets],
            next_read: 0,
            asked,
            hedge_at,
            answers: Vec::with_capacity(n_targets),
            counted: S::default(),
            succeeded: 0,
            found: 0,
            not_found: 0,
            failed: 0,
            unreachable: options.n - n_targets,
            started: now,
            deadline: after(now, options.timeout),
            finished: false,
            closed: false,
            repairs: Vec::new(),
            next_repair: 0,
            event: None,
            late_answers: 0,
            ignored: 0,
        };
        get.decide(now);
        if get.finished {
            // Nothing was sent, so nothing will answer.
            get.close();
        }
        get.advance(now);
        Ok(get)
    }

    /// The next message to send: reads until the outcome, read repairs once every target
    /// answered or the deadline passed.
    pub fn poll_transmit(&mut self) -> Option<(Id, GetMessage<Id, S>)> {
        if !self.finished {
            while self.next_read < self.asked {
                let Some(target) = self.targets.get(self.next_read) else {
                    break;
                };
                let answered = self.answered.get(self.next_read).copied();
                self.next_read += 1;
                if answered == Some(false) {
                    return Some((target.node.clone(), GetMessage::Read(ReplicaRead)));
                }
            }
            return None;
        }
        let (node, write) = self.repairs.get(self.next_repair)?;
        self.next_repair += 1;
        Some((node.clone(), GetMessage::Repair(write.clone())))
    }

    /// `from` answered at `now`: its versions, not found, or a failure (it refused, or the
    /// caller knows it cannot reach `from`).
    ///
    /// # Errors
    /// [`ReplyError`] if `from` is not a target, already answered, or listening is over; the reply
    /// is then counted in [`ignored`](Self::ignored) and changes nothing else.
    pub fn handle_message(
        &mut self,
        now: u64,
        from: Id,
        reply: GetReply<S>,
    ) -> Result<(), ReplyError> {
        let reply = match reply {
            GetReply::Found(set) if set.is_empty() => GetReply::NotFound,
            other => other,
        };
        self.answer(now, &from, reply)
    }

    /// Time passed: at `now >= deadline` an undecided get fails and read repair starts.
    pub fn handle_timeout(&mut self, now: u64) {
        self.advance(now);
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): the deadline, until every target
    /// asked answered or it passed; before it, a [`Fanout::First`]'s hedge while undecided.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let next = match self.hedge_at {
            Some(h) => h.min(self.deadline),
            None => self.deadline,
        };
        (!self.closed).then_some(next)
    }

    /// The deadline: the `now` of [`new`](Self::new) plus the options' timeout.
    #[must_use]
    pub fn deadline(&self) -> u64 {
        self.deadline
    }

    /// The outcome, once.
    pub fn poll_event(&mut self) -> Option<GetOutcome<Id, S>> {
        self.event.take()
    }

    /// Whether the outcome is decided.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether nothing more will happen: decided, listening over, every repair polled.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.finished && self.closed && self.next_repair >= self.repairs.len()
    }

    /// Every answer so far, in arrival order, including those after the outcome.
    #[must_use]
    pub fn answers(&self) -> &[Answer<Id, S>] {
        &self.answers
    }

    /// The replicas chosen for read repair (empty until listening is over), in answer order.
    pub fn repaired(&self) -> impl Iterator<Item = &Id> + '_ {
        self.repairs.iter().map(|(node, _)| node)
    }

    /// Answers received after the outcome was decided.
    #[must_use]
    pub fn late_answers(&self) -> usize {
        self.late_answers
    }

    /// Replies ignored: from a node that is not a target, a second reply from one target, or after
    /// listening ended.
    #[must_use]
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// The options the get runs with.
    #[must_use]
    pub fn options(&self) -> &RequestOptions {
        &self.options
    }

    /// The targets, in plan order.
    #[must_use]
    pub fn targets(&self) -> &[Target<Id>] {
        &self.targets
    }

    /// The targets sent a read that have not answered it, in plan order: for a caller's own
    /// failure detection (paper section 4.8.1), those still silent at the deadline.
    pub fn unanswered(&self) -> impl Iterator<Item = &Id> + '_ {
        self.targets
            .iter()
            .zip(&self.answered)
            .take(self.next_read)
            .filter(|(_, answered)| !**answered)
            .map(|(t, _)| &t.node)
    }

    /// How many targets were asked so far, in plan order (all of them unless
    /// [`Fanout::First`]).
    #[must_use]
    pub fn asked(&self) -> usize {
        self.asked
    }

    fn answer(&mut self, now: u64, from: &Id, reply: GetReply<S>) -> Result<(), ReplyError> {
        self.advance(now);
        let index = self.targets.iter().position(|t| t.node == *from);
        let refused = match index.and_then(|i| self.answered.get_mut(i).map(|a| (i, a))) {
            Some((_, answered)) if !*answered && !self.closed => {
                *answered = true;
                None
            }
            None => Some(ReplyError::NotATarget),
            Some(_) if self.closed => Some(ReplyError::ListeningOver),
            Some((position, _)) => Some(ReplyError::AlreadyAnswered { position }),
        };
        if let Some(error) = refused {
            self.ignored += 1;
            return Err(error);
        }
        let mut counts = true;
        if self.finished {
            self.late_answers += 1;
        } else {
            counts = match &reply {
                GetReply::Found(set) => {
                    self.found += 1;
                    merge_into(&mut self.counted, set);
                    true
                }
                GetReply::NotFound => {
                    self.not_found += 1;
                    self.options.not_found == NotFoundPolicy::Answer
                }
                GetReply::Failed | GetReply::Lost => {
                    self.failed += 1;
                    false
                }
            };
            self.succeeded += usize::from(counts);
        }
        self.answers.push(Answer {
            node: from.clone(),
            at: now,
            reply,
        });
        self.decide(now);
        if !self.finished && !counts && self.asked < self.targets.len() {
            // An answer that does not count: the next target stands in for it.
            self.asked += 1;
        }
        // Once finished, no more reads go out: the targets asked but not sent to yet (a hedge
        // fired by this very answer) will never answer.
        let awaited = if self.finished {
            self.next_read.min(self.asked)
        } else {
            self.asked
        };
        if self.answered.iter().take(awaited).all(|a| *a) {
            self.close();
        }
        Ok(())
    }

    /// Fires the hedge and the deadline if `now` reached them.
    fn advance(&mut self, now: u64) {
        if let Some(hedge) = self.hedge_at {
            if self.finished {
                self.hedge_at = None;
            } else if now >= hedge {
                self.asked = self.targets.len();
                self.hedge_at = None;
            }
        }
        if now < self.deadline || self.closed {
            return;
        }
        if !self.finished {
            let reason = FailureReason::Deadline {
                succeeded: self.succeeded,
                required: self.options.r,
            };
            self.finish(now, Err(reason));
        }
        self.close();
    }

    fn decide(&mut self, now: u64) {
        if self.finished {
            return;
        }
        let RequestOptions { n, r, .. } = self.options;
        let failed = n - self.succeeded.min(n) - self.pending_count();
        if self.succeeded >= r {
            self.finish(now, Ok(()));
        } else if failed > n - r {
            let reason = if self.options.not_found == NotFoundPolicy::Failure && self.not_found > 0
            {
                FailureReason::NotFound {
                    found: self.found,
                    not_found: self.not_found,
                    failed: self.failed + self.unreachable,
                    required: r,
                }
            } else {
                FailureReason::TooManyFailures {
                    failed,
                    succeeded: self.succeeded,
                    required: r,
                    n,
                }
            };
            self.finish(now, Err(reason));
        }
    }

    fn pending_count(&self) -> usize {
        self.answered.iter().filter(|a| !**a).count()
    }

    fn finish(&mut self, now: u64, result: Result<(), FailureReason>) {
        self.finished = true;
        self.hedge_at = None;
        let siblings = if result.is_ok() {
            core::mem::take(&mut self.counted)
        } else {
            // Everything received, so a failed get still shows what exists.
            let mut all = S::default();
            for a in &self.answers {
                if let GetReply::Found(set) = &a.reply {
                    merge_into(&mut all, set);
                }
            }
            all
        };
        self.event = Some(GetOutcome {
            context: siblings.context(),
            siblings,
            result,
            answers: self.answers.clone(),
            unreachable: self.unreachable,
            started: self.started,
            decided: now,
        });
    }

    /// Listening is over: queue read repair to the replicas that answered stale or missing, or
    /// lost their copy (once R others answered: see [`GetReply::Lost`]).
    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut merged = S::default();
        for a in &self.answers {
            if let GetReply::Found(set) = &a.reply {
                merge_into(&mut merged, set);
            }
        }
        if merged.is_empty() {
            return;
        }
        let copies = self
            .answers
            .iter()
            .filter(|a| matches!(a.reply, GetReply::Found(_) | GetReply::NotFound))
            .count();
        for a in &self.answers {
            let stale = match &a.reply {
                GetReply::Found(set) => !set.covers(&merged),
                GetReply::NotFound => true,
                GetReply::Lost => copies >= self.options.r,
                GetReply::Failed => false,
            };
            if !stale {
                continue;
            }
            let hint = self
                .targets
                .iter()
                .find(|t| t.node == a.node)
                .and_then(|t| t.hint.clone());
            let write = ReplicaWrite {
                siblings: merged.clone(),
                hint,
            };
            self.repairs.push((a.node.clone(), write));
        }
    }
}

/// Merges `set` into `into`, skipping the clones when it adds no version (replicas usually agree).
/// Entry timestamps of causally equal versions are then not merged: they only steer pruning.
fn merge_into<S: VersionSet>(into: &mut S, set: &S) {
    if !into.covers(set) {
        into.merge(set);
    }
}
