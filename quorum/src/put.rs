//! The put coordinator: replica writes, W acknowledgements, failure as soon as W is out of reach.

use dynamo_vclock::{Siblings, VClock, Version, VersionSet};

use crate::options::after;
use crate::outcome::{FailureReason, Timed};
use crate::plan::{check, Plan, Target};
use crate::{Mode, ReplyError, RequestError, RequestOptions};

/// What the coordinator sends each target: the versions to store, and the hint if the target is a
/// fallback standing in for a down primary (it stores the write as a hint for that primary).
///
/// The same message carries read repair from a [`GetCoordinator`](crate::GetCoordinator).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(bound(
        serialize = "Id: serde::Serialize, S: serde::Serialize",
        deserialize = "Id: serde::Deserialize<'de>, S: serde::Deserialize<'de>"
    ))
)]
pub struct ReplicaWrite<Id, S> {
    /// The versions to merge into the replica's set ([`VersionSet::merge`]).
    pub siblings: S,
    /// The primary this write is for, when the target is a fallback.
    pub hint: Option<Id>,
}

/// The answer of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome<Id> {
    /// `Ok` after W acknowledgements, or why W was not reached.
    pub result: Result<(), FailureReason>,
    /// Acknowledgements in arrival order, up to the decision.
    pub acks: Vec<Timed<Id>>,
    /// Replicas that refused or whose link was down, in arrival order, up to the decision.
    pub failures: Vec<Timed<Id>>,
    /// Slots without a target (N minus the plan's targets), counted as failures.
    pub unreachable: usize,
    /// The `now` the coordinator was created with.
    pub started: u64,
    /// The `now` of the decision.
    pub decided: u64,
}

impl<Id> PutOutcome<Id> {
    /// Whether W replicas acknowledged in time.
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.result.is_ok()
    }
}

/// What one replica answered a put: the input of [`PutCoordinator::handle_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PutReply {
    /// The replica stored the write.
    Ack,
    /// The replica refused the write, or the caller knows it cannot reach the replica.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Acked,
    Failed,
}

/// Coordinates one put (or delete) across its replicas, without I/O.
///
/// # Methods by kind
/// - Construction: [`new`](Self::new), [`with_siblings`](Self::with_siblings),
///   [`delete`](Self::delete) (the deadline is their `now` plus the options' timeout).
/// - Getters (`&self`): [`is_finished`](Self::is_finished), [`is_complete`](Self::is_complete),
///   [`late_acks`](Self::late_acks), [`late_failures`](Self::late_failures),
///   [`ignored`](Self::ignored), [`options`](Self::options), [`targets`](Self::targets),
///   [`deadline`](Self::deadline).
/// - Inputs: [`handle_message`](Self::handle_message) (a replica's [`PutReply`]),
///   [`handle_timeout`](Self::handle_timeout).
/// - Commands: [`hand_off`](Self::hand_off) (a failed target's copy to a fallback).
/// - Outputs: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event) (the
///   outcome), [`poll_timeout`](Self::poll_timeout).
///
/// # Driving order
/// 1. Construct, then drain [`poll_transmit`](Self::poll_transmit): one [`ReplicaWrite`] per
///    target, in plan order (the local replica is just another target: write it locally and pass
///    [`PutReply::Ack`] for it).
/// 2. Feed replies with [`handle_message`](Self::handle_message) ([`PutReply::Failed`] when the
///    replica refused or the link is down), and [`handle_timeout`](Self::handle_timeout) when
///    [`poll_timeout`](Self::poll_timeout) is due. After each input, drain
///    [`poll_event`](Self::poll_event).
/// 3. [`poll_event`](Self::poll_event) yields exactly one [`PutOutcome`]: success at the W-th
///    acknowledgement, failure at the `N - W + 1`-th failure or at the deadline. It may be ready
///    right after construction (a strict quorum with too many primaries down), in which case
///    nothing is transmitted.
/// 4. After the outcome the coordinator [`is_finished`](Self::is_finished) and emits nothing more;
///    it absorbs late replies and counts them ([`late_acks`](Self::late_acks)). Drop it when
///    [`is_complete`](Self::is_complete) (every target answered or the deadline passed), or earlier
///    if late replies do not interest you.
///
/// An answer handled at `now >= deadline` comes after the deadline: the deadline fires first.
/// Replies from nodes that are not targets, and second replies from a target, are refused with a
/// [`ReplyError`] and counted ([`ignored`](Self::ignored)). The coordinator never reads a clock
/// nor sees the key.
#[derive(Debug, Clone)]
pub struct PutCoordinator<Id, S> {
    options: RequestOptions,
    targets: Vec<Target<Id>>,
    slots: Vec<Slot>,
    payload: S,
    next_transmit: usize,
    acks: Vec<Timed<Id>>,
    failures: Vec<Timed<Id>>,
    unreachable: usize,
    started: u64,
    deadline: u64,
    finished: bool,
    deadline_passed: bool,
    event: Option<PutOutcome<Id>>,
    late_acks: usize,
    late_failures: usize,
    ignored: usize,
    /// Failed targets whose copy went to a fallback, and those fallbacks.
    handed_off: Vec<Id>,
}

impl<Id: Clone + PartialEq, A: Ord + Clone + core::fmt::Debug, V: Clone + PartialEq>
    PutCoordinator<Id, Siblings<A, V>>
{
    /// A put of one version (already stamped by the caller: the node increments the clock).
    ///
    /// # Errors
    /// Invalid options or plan ([`RequestError`]).
    pub fn new(
        options: RequestOptions,
        plan: Plan<Id>,
        version: Version<A, V>,
        now: u64,
    ) -> Result<Self, RequestError> {
        Self::with_siblings(options, plan, core::iter::once(version).collect(), now)
    }

    /// A delete: a put of a tombstone whose clock the caller stamped (the client's context
    /// incremented at the coordinator).
    ///
    /// # Errors
    /// Invalid options or plan ([`RequestError`]).
    pub fn delete(
        options: RequestOptions,
        plan: Plan<Id>,
        clock: VClock<A>,
        now: u64,
    ) -> Result<Self, RequestError> {
        Self::new(options, plan, Version::tombstone(clock), now)
    }
}

impl<Id: Clone + PartialEq, S: VersionSet> PutCoordinator<Id, S> {
    /// A put of a whole version set: what the coordinating node holds after applying the
    /// client's write ([`Siblings::put`], which may re-stamp versions the client had not seen, so
    /// they must travel with the new version; or [`DvvSet::put`](dynamo_vclock::DvvSet::put)).
    ///
    /// # Errors
    /// Invalid options or plan ([`RequestError`]).
    pub fn with_siblings(
        options: RequestOptions,
        plan: Plan<Id>,
        siblings: S,
        now: u64,
    ) -> Result<Self, RequestError> {
        check(&options, &plan)?;
        let n_targets = plan.targets.len();
        let mut put = Self {
            options,
            targets: plan.targets,
            slots: vec![Slot::Pending; n_targets],
            payload: siblings,
            next_transmit: 0,
            acks: Vec::with_capacity(options.w.min(n_targets)),
            failures: Vec::new(),
            unreachable: options.n - n_targets,
            started: now,
            deadline: after(now, options.timeout),
            finished: false,
            deadline_passed: false,
            event: None,
            late_acks: 0,
            late_failures: 0,
            ignored: 0,
            handed_off: Vec::new(),
        };
        put.advance(now);
        put.decide(now);
        Ok(put)
    }
}

impl<Id: Clone + PartialEq, S: Clone> PutCoordinator<Id, S> {
    /// The next replica write to send, until every target has had one. Nothing once finished.
    pub fn poll_transmit(&mut self) -> Option<(Id, ReplicaWrite<Id, S>)> {
        if self.finished {
            return None;
        }
        while let Some(target) = self.targets.get(self.next_transmit) {
            let slot = self.slots.get(self.next_transmit).copied();
            self.next_transmit += 1;
            if slot == Some(Slot::Pending) {
                let write = ReplicaWrite {
                    siblings: self.payload.clone(),
                    hint: target.hint.clone(),
                };
                return Some((target.node.clone(), write));
            }
        }
        None
    }

    /// `from` answered at `now`: it stored the write, or it failed (it refused, or the caller
    /// knows it cannot reach `from`).
    ///
    /// # Errors
    /// [`ReplyError`] if `from` is not a target or already answered; the reply is then counted
    /// in [`ignored`](Self::ignored) and changes nothing else.
    pub fn handle_message(
        &mut self,
        now: u64,
        from: Id,
        reply: PutReply,
    ) -> Result<(), ReplyError> {
        let kind = match reply {
            PutReply::Ack => Slot::Acked,
            PutReply::Failed => Slot::Failed,
        };
        self.answer(now, &from, kind)
    }

    /// Paper section 4.6: hands the copy of a target that failed after the plan was made (the
    /// caller's failure detector had not noticed yet) to the next healthy node of the preference
    /// list, with a hint naming the primary it was meant for, so that the write still reaches N
    /// nodes and returns to that primary later, whether or not the put already reached W.
    ///
    /// Call it after [`handle_message`](Self::handle_message) took `failed`'s
    /// [`PutReply::Failed`]. `preference` is the key's preference list in order, `is_up` the
    /// caller's view of health. The new copy is not a target: its acknowledgement is neither
    /// awaited nor counted toward W. `None` in strict mode, when `failed` is not a target whose
    /// answer was a failure (it acknowledged first), when its copy was handed off already, or
    /// when no healthy node is left.
    pub fn hand_off(
        &mut self,
        failed: &Id,
        preference: impl IntoIterator<Item = Id>,
        is_up: impl Fn(&Id) -> bool,
    ) -> Option<(Id, ReplicaWrite<Id, S>)> {
        if self.options.mode == Mode::Strict || self.handed_off.contains(failed) {
            return None;
        }
        let i = self.targets.iter().position(|t| t.node == *failed)?;
        if self.slots.get(i) != Some(&Slot::Failed) {
            return None;
        }
        let intended = self.targets[i]
            .hint
            .clone()
            .unwrap_or_else(|| failed.clone());
        let next = preference.into_iter().find(|n| {
            n != failed
                && *n != intended
                && !self.targets.iter().any(|t| t.node == *n)
                && !self.handed_off.contains(n)
                && is_up(n)
        })?;
        self.handed_off.push(failed.clone());
        self.handed_off.push(next.clone());
        let write = ReplicaWrite {
            siblings: self.payload.clone(),
            hint: Some(intended),
        };
        Some((next, write))
    }

    /// Time passed: at `now >= deadline` an undecided put fails.
    pub fn handle_timeout(&mut self, now: u64) {
        self.advance(now);
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): the deadline, until complete.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        (!self.is_complete()).then_some(self.deadline)
    }

    /// The deadline: the `now` of construction plus the options' timeout.
    #[must_use]
    pub fn deadline(&self) -> u64 {
        self.deadline
    }

    /// The outcome, once.
    pub fn poll_event(&mut self) -> Option<PutOutcome<Id>> {
        self.event.take()
    }

    /// Whether the outcome is decided (it may still wait in [`poll_event`](Self::poll_event)).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether nothing more can happen: decided, and every target answered or the deadline passed
    /// (or nothing was ever sent).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.finished
            && (self.deadline_passed
                || self.next_transmit == 0
                || self.slots.iter().all(|s| *s != Slot::Pending))
    }

    /// Acknowledgements received after the outcome was decided (after a success, or after a
    /// failure, including past the deadline).
    #[must_use]
    pub fn late_acks(&self) -> usize {
        self.late_acks
    }

    /// Failures received after the outcome was decided.
    #[must_use]
    pub fn late_failures(&self) -> usize {
        self.late_failures
    }

    /// Replies ignored: from a node that is not a target, or a second reply from one target.
    #[must_use]
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// The options the put runs with.
    #[must_use]
    pub fn options(&self) -> &RequestOptions {
        &self.options
    }

    /// The targets, in plan order.
    #[must_use]
    pub fn targets(&self) -> &[Target<Id>] {
        &self.targets
    }

    /// The targets sent a write that have not answered it, in plan order: for a caller's own
    /// failure detection (paper section 4.8.1), those still silent at the deadline.
    pub fn unanswered(&self) -> impl Iterator<Item = &Id> + '_ {
        self.targets
            .iter()
            .zip(&self.slots)
            .take(self.next_transmit)
            .filter(|(_, slot)| **slot == Slot::Pending)
            .map(|(t, _)| &t.node)
    }

    fn answer(&mut self, now: u64, from: &Id, kind: Slot) -> Result<(), ReplyError> {
        self.advance(now);
        let index = self.targets.iter().position(|t| t.node == *from);
        match index.and_then(|i| self.slots.get_mut(i).map(|s| (i, s))) {
            Some((_, slot)) if *slot == Slot::Pending => *slot = kind,
            Some((position, _)) => {
                self.ignored += 1;
                return Err(ReplyError::AlreadyAnswered { position });
            }
            None => {
                self.ignored += 1;
                return Err(ReplyError::NotATarget);
            }
        }
        if self.finished {
            match kind {
                Slot::Acked => self.late_acks += 1,
                _ => self.late_failures += 1,
            }
            return Ok(());
        }
        let record = Timed {
            node: from.clone(),
            at: now,
        };
        match kind {
            Slot::Acked => self.acks.push(record),
            _ => self.failures.push(record),
        }
        self.decide(now);
        Ok(())
    }

    /// Fires the deadline if `now` reached it.
    fn advance(&mut self, now: u64) {
        if now < self.deadline || self.deadline_passed {
            return;
        }
        self.deadline_passed = true;
        if !self.finished {
            let reason = FailureReason::Deadline {
                succeeded: self.acks.len(),
                required: self.options.w,
            };
            self.finish(now, Err(reason));
        }
    }

    fn decide(&mut self, now: u64) {
        if self.finished {
            return;
        }
        let RequestOptions { n, w, .. } = self.options;
        let failed = self.failures.len() + self.unreachable;
        if self.acks.len() >= w {
            self.finish(now, Ok(()));
        } else if failed > n - w {
            let reason = FailureReason::TooManyFailures {
                failed,
                succeeded: self.acks.len(),
                required: w,
                n,
            };
            self.finish(now, Err(reason));
        }
    }

    fn finish(&mut self, now: u64, result: Result<(), FailureReason>) {
        self.finished = true;
        self.event = Some(PutOutcome {
            result,
            acks: self.acks.clone(),
            failures: self.failures.clone(),
            unreachable: self.unreachable,
            started: self.started,
            decided: now,
        });
    }
}
