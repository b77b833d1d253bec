//! Paused processes: a node that stops running for a while (a long garbage collection, a
//! `SIGSTOP`, a VM descheduled) and then goes on from where it stopped.
//!
//! Unlike a crash, a paused node keeps its memory; unlike an isolated one, it does nothing while
//! paused: the messages, client requests, timers and disk completions that reach it wait, and
//! run in order when it resumes, with the clock jumped ahead. Its peers see it fall silent, its
//! clients time out, and it then acts on what it knew before the pause (a coordinator finishing
//! a request the client gave up on, a replica answering messages of a ring that moved on).

use super::{Event, Sim};
use crate::types::{Millis, NodeId};

impl Sim {
    /// Pauses node `id` for `ms` milliseconds of virtual time (it resumes on its own then, or at
    /// [`Sim::resume_all`]). Nothing happens if the node is not running or already paused.
    pub fn pause(&mut self, id: NodeId, ms: Millis) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        if slot.core.is_none() || slot.paused.is_some() {
            return;
        }
        slot.paused = Some(Vec::new());
        slot.pauses += 1;
        let (incarnation, pause) = (slot.incarnation, slot.pauses);
        self.stats.pauses += 1;
        self.queue.push(
            self.now.saturating_add(ms.saturating_mul(1000)),
            Event::Resume {
                node: id,
                incarnation,
                pause,
            },
        );
    }

    /// Whether node `id` is paused.
    pub fn paused(&self, id: NodeId) -> bool {
        self.slots
            .get(id as usize)
            .is_some_and(|s| s.paused.is_some())
    }

    /// Resumes every paused node now.
    pub fn resume_all(&mut self) {
        for id in 0..self.slots.len() as NodeId {
            self.resume(id);
        }
    }

    /// Node `id` runs again: the events that reached it while it was paused run next, in the
    /// order they arrived, at the current time.
    pub fn resume(&mut self, id: NodeId) {
        let Some(deferred) = self
            .slots
            .get_mut(id as usize)
            .and_then(|s| s.paused.take())
        else {
            return;
        };
        for event in deferred {
            self.queue.push(self.now, event);
        }
    }

    /// A scheduled resume, for the incarnation and the pause that scheduled it (a crash ends a
    /// pause, and a pause ended early by [`Sim::resume`] leaves a later one to run its course).
    pub(super) fn scheduled_resume(&mut self, id: NodeId, incarnation: u32, pause: u64) {
        if self
            .slots
            .get(id as usize)
            .is_some_and(|s| s.incarnation == incarnation && s.pauses == pause)
        {
            self.resume(id);
        }
    }

    /// `event`, unless it is for a paused node: then it waits for the node to resume.
    pub(super) fn unless_paused(&mut self, event: Event) -> Option<Event> {
        let node = match &event {
            Event::Deliver { to, .. } => *to,
            Event::Refused { node, .. }
            | Event::Disk { node, .. }
            | Event::Timer { node, .. }
            | Event::Request { node, .. } => *node,
            Event::Reply { .. }
            | Event::Wake { .. }
            | Event::ClientTimeout { .. }
            | Event::Resume { .. } => return Some(event),
        };
        match self
            .slots
            .get_mut(node as usize)
            .and_then(|s| s.paused.as_mut())
        {
            Some(deferred) => {
                deferred.push(event);
                None
            }
            None => Some(event),
        }
    }
}
