//! Membership from gossip, and the ring that follows it.
//!
//! The ring is a function of the member set (strategy 3 assigns partitions from the sorted member
//! list), so every node that knows the same members computes the same ring without a coordinator.
//! When the set changes, the node compares the old and new ring and starts a transfer (see
//! `transfer`) of every range it held to each node that became one of its replicas.

use std::collections::BTreeSet;

use dynamo_gossip::{Event, Status};
use dynamo_handoff::Instant;

use super::NodeCore;
use crate::message::PeerMessage;
use crate::store::Store;
use crate::types::{Millis, NodeId};

impl<S: Store> NodeCore<S> {
    pub(crate) fn drain_gossip(&mut self, now: Millis) {
        let mut changed = false;
        while let Some(t) = self.gossip.poll_transmit() {
            self.addresses.insert(t.to, t.address);
            self.transmits
                .push_back((t.to, PeerMessage::Gossip(t.message)));
        }
        while let Some(event) = self.gossip.poll_event() {
            match event {
                Event::Up { id } => {
                    self.hints.node_up(Instant::from_millis(now), id);
                    self.transfer_peer(now, id, true);
                }
                Event::Down { id } => {
                    self.hints.node_down(id);
                    self.transfer_peer(now, id, false);
                    self.fail_peer(now, id);
                }
                Event::Joined { id } | Event::Restarted { id, .. } => {
                    if let Some(state) = self.gossip.node_state(&id) {
                        self.addresses.insert(id, state.address().clone());
                    }
                    self.departed.remove(&id);
                    changed = true;
                }
                Event::StatusChanged { id, status } => {
                    if matches!(status, Status::Left | Status::Leaving) {
                        self.departed.insert(id);
                    } else {
                        self.departed.remove(&id);
                    }
                    changed = true;
                }
                Event::Left { id } | Event::Removed { id } => {
                    self.departed.insert(id);
                    changed = true;
                }
                _ => {}
            }
        }
        if changed && !self.leaving {
            self.refresh_members(now);
        }
    }

    /// Recomputes the member set from gossip and changes the ring if it differs.
    fn refresh_members(&mut self, now: Millis) {
        let mut members: BTreeSet<NodeId> = self.config.initial_members.iter().copied().collect();
        for (id, state) in self.gossip.members() {
            if matches!(state.status(), Status::Up | Status::Joining) {
                members.insert(*id);
            }
        }
        for d in &self.departed {
            members.remove(d);
        }
        members.insert(self.id);
        if members != self.members {
            self.change_ring(now, members);
        }
    }

    /// Adopts the ring of `members` and pushes the ranges this node must hand over.
    pub(crate) fn change_ring(&mut self, _now: Millis, members: BTreeSet<NodeId>) {
        let Ok(next) = Self::build_ring(&self.config, &members) else {
            return;
        };
        let plan = self.ring.transfer_plan(&next);
        let old = std::mem::replace(&mut self.ring, next);
        self.members = members;
        let me = self.id;
        for transfer in plan.outgoing(&me) {
            // Strategy 3: every range in the plan is a union of whole partitions.
            for p in 0..old.range_count() {
                let Some(range) = old.range(p) else { continue };
                if !transfer.range.contains(range.end) {
                    continue;
                }
                self.start_transfer(p, transfer.to);
            }
        }
    }
}
