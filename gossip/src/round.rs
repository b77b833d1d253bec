//! Timeout input: one gossip round (heartbeat, failure detection, removal, exchanges).

use std::fmt::Debug;
use std::hash::Hash;

use crate::config::ms;
use crate::detector::Model;
use crate::event::Event;
use crate::machine::{Gossip, Member};
use crate::message::{Body, Digest};
use crate::rng::{choose, shuffle, unit_f64};
use crate::state::{Status, Versioned};

impl<Id, A> Gossip<Id, A>
where
    Id: Ord + Clone + Hash + Debug,
    A: Clone + Debug + PartialEq,
{
    /// Runs a gossip round if one is due at `now`: bumps the heartbeat, updates the failure
    /// detector (up/down), removes nodes down or gone for too long, and opens exchanges with a
    /// random live peer, now and then with a down peer (so it is noticed when it comes back) and
    /// with a seed (so that separately joined nodes end up in one cluster).
    pub fn handle_timeout(&mut self, now: u64) {
        let interval = ms(self.config.gossip_interval);
        match self.next_round {
            Some(due) if now < due => return,
            Some(due) => {
                let behind = (now - due) / interval + 1;
                self.next_round = Some(due.saturating_add(behind.saturating_mul(interval)));
            }
            None => self.next_round = Some(now.saturating_add(interval)),
        }
        self.stats.rounds += 1;
        if self.local.status() != Status::Left {
            let version = self.local.bump();
            let beat = self.local.heartbeat.value + 1;
            self.local.heartbeat = Versioned::new(version, beat);
        }
        self.detect(now);
        self.gossip();
    }

    /// Opens an exchange with `peer` now, outside the rounds (nothing for a peer this node does
    /// not know or that left): a caller's own failure detection can ask a peer it stopped
    /// sending to for a sign of life, the peer's answer being a message from it (paper section
    /// 4.8.1: "node A periodically retries node B to check for the latter's recovery"). A peer
    /// answers an exchange that brings it nothing new with nothing; its heartbeat, bumped every
    /// round, is news to a node that has not heard from it since.
    pub fn probe(&mut self, peer: &Id) {
        let known = self
            .others
            .get(peer)
            .is_some_and(|m| m.peer.left_since.is_none());
        if known {
            self.syn_to(peer.clone(), None);
        }
    }

    /// Marks peers down when phi passes the threshold, and removes the long gone.
    fn detect(&mut self, now: u64) {
        let threshold = self.config.phi_threshold;
        let model = Model::from_config(&self.config);
        let mut removed = Vec::new();
        for (id, member) in &mut self.others {
            let peer = &mut member.peer;
            if let Some(since) = peer.left_since {
                if now.saturating_sub(since) >= ms(self.config.left_grace) {
                    removed.push((id.clone(), self.config.left_grace));
                }
                continue;
            }
            if peer.alive && peer.window.phi(now, model) > threshold {
                peer.alive = false;
                peer.down_since = Some(now);
                self.events.push_back(Event::Down { id: id.clone() });
            }
            if let Some(since) = peer.down_since {
                if now.saturating_sub(since) >= ms(self.config.remove_after) {
                    removed.push((id.clone(), self.config.remove_after));
                }
            }
        }
        for (id, linger) in removed {
            if let Some(Member { state, .. }) = self.others.remove(&id) {
                self.bury(now, id.clone(), &state, linger);
            }
            self.events.push_back(Event::Removed { id });
        }
        self.tombstones.retain(|_, t| t.until > now);
    }

    /// Cassandra's choice of partners: a live peer; a down peer with probability
    /// `down / (live + 1)`; a seed when the live partner was not one, or too few peers are live,
    /// with probability `seeds / (live + down)` (always while nothing is live).
    fn gossip(&mut self) {
        let mut live = Vec::new();
        let mut down = Vec::new();
        for (id, member) in &self.others {
            let peer = &member.peer;
            if peer.left_since.is_some() {
                continue;
            }
            if peer.alive {
                live.push(id.clone());
            } else {
                down.push(id.clone());
            }
        }
        let mut gossiped_to_seed = false;
        if let Some(to) = choose(&mut self.rng, &live).cloned() {
            gossiped_to_seed = self.seeds.iter().any(|(s, _)| *s == to);
            self.syn_to(to, None);
        }
        if !down.is_empty() {
            let p = down.len() as f64 / (live.len() + 1) as f64;
            if unit_f64(&mut self.rng) < p {
                if let Some(to) = choose(&mut self.rng, &down).cloned() {
                    self.syn_to(to, None);
                }
            }
        }
        if self.seeds.is_empty() || (gossiped_to_seed && live.len() >= self.seeds.len()) {
            return;
        }
        let p = if live.is_empty() {
            1.0
        } else {
            self.seeds.len() as f64 / (live.len() + down.len()) as f64
        };
        if unit_f64(&mut self.rng) <= p {
            if let Some((to, address)) = choose(&mut self.rng, &self.seeds).cloned() {
                self.syn_to(to, Some(address));
            }
        }
    }

    /// Opens an exchange with `to`, at `address` or at its gossiped address.
    fn syn_to(&mut self, to: Id, address: Option<A>) {
        let Some(address) =
            address.or_else(|| self.others.get(&to).map(|m| m.state.address().clone()))
        else {
            return;
        };
        let mut digests: Vec<Digest<Id>> = self
            .members()
            .map(|(id, s)| Digest {
                id: id.clone(),
                generation: s.generation,
                version: s.version,
            })
            .collect();
        let room = self
            .config
            .max_message_bytes
            .saturating_sub(self.header_size() + 5);
        let fit = room / self.digest_size();
        let complete = digests.len() <= fit;
        if !complete {
            // The own digest stays first; the others take turns.
            if let Some(rest) = digests.get_mut(1..) {
                shuffle(&mut self.rng, rest);
            }
            digests.truncate(fit);
        }
        self.send(to, address, Body::Syn { digests, complete });
    }
}
