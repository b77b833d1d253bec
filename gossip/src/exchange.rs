//! Message input: the scuttlebutt exchange and the merge of deltas into the view.

use core::time::Duration;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::hash::Hash;

use crate::config::ms;
use crate::detector::ArrivalWindow;
use crate::error::MessageError;
use crate::event::Event;
use crate::machine::{Gossip, Member, Peer, Tombstone};
use crate::message::{entry_size, Body, Delta, Digest, Message};
use crate::rng::shuffle;
use crate::state::{NodeState, Refused, Status};

/// A delta to build: about `id`, from `from`, news beyond the heartbeat first.
struct Wanted<Id> {
    id: Id,
    from: u64,
    news: bool,
}

impl<Id, A> Gossip<Id, A>
where
    Id: Ord + Clone + Hash + Debug,
    A: Clone + Debug + PartialEq,
{
    /// Handles a message from node `from`, received at `now`. Stale or conflicting news inside
    /// an accepted message is ignored and counted in [`stats`](Self::stats); nothing here
    /// panics or corrupts the view.
    ///
    /// # Errors
    /// [`MessageError`] for a message of another cluster, one claiming to come from this node,
    /// or a malformed one: it is refused (and counted) and changes nothing else.
    pub fn handle_message(
        &mut self,
        now: u64,
        from: Id,
        msg: Message<Id, A>,
    ) -> Result<(), MessageError> {
        self.stats.messages_received += 1;
        if msg.cluster != self.config.cluster_name {
            self.stats.ignored_wrong_cluster += 1;
            return Err(MessageError::WrongCluster {
                expected: self.config.cluster_name.clone(),
                got: msg.cluster,
            });
        }
        if from == self.id {
            self.stats.ignored_from_self += 1;
            return Err(MessageError::FromSelf);
        }
        if let Err(malformed) = msg.check() {
            self.stats.ignored_malformed += 1;
            return Err(MessageError::Malformed {
                reason: malformed.reason(),
            });
        }
        let reply_to = msg.sender_address;
        match msg.body {
            Body::Syn { digests, complete } => {
                // The initiator's view of this node tells of a later incarnation as a delta
                // would (this node never asks for its own state).
                if let Some(own) = digests.iter().find(|d| d.id == self.id) {
                    self.raise_past(own.generation);
                    self.told_of_self(own.generation, own.version);
                }
                let (requests, wanted) = self.compare(&digests, complete);
                let used = self.header_size() + 4 + requests.len() * self.digest_size();
                let deltas = self.build_deltas(wanted, used);
                if !(requests.is_empty() && deltas.is_empty()) {
                    self.send(from, reply_to, Body::Ack { requests, deltas });
                }
            }
            Body::Ack { requests, deltas } => {
                // The peer asks for this node's state from what it holds of it (nothing: it
                // does not know it).
                if let Some(own) = requests.iter().find(|r| r.id == self.id) {
                    self.told_of_self(own.generation, own.version);
                }
                self.apply_deltas(now, &deltas);
                let wanted = requests
                    .iter()
                    .filter_map(|r| {
                        let state = self.node_state(&r.id)?;
                        let from = if state.generation == r.generation {
                            (state.version > r.version).then_some(r.version)?
                        } else if state.generation > r.generation {
                            0
                        } else {
                            return None;
                        };
                        Some(Wanted {
                            id: r.id.clone(),
                            from,
                            news: has_news(state, from),
                        })
                    })
                    .collect();
                let deltas = self.build_deltas(wanted, self.header_size());
                if !deltas.is_empty() {
                    self.send(from, reply_to, Body::Ack2 { deltas });
                }
            }
            Body::Ack2 { deltas } => self.apply_deltas(now, &deltas),
        }
        Ok(())
    }

    /// A peer holds an incarnation of this node of `generation`. If it is later than this one
    /// (the node lost the generation it persisted and its clock reads earlier than at its last
    /// start), peers would refuse every delta of this one as stale and count it down for good,
    /// so it takes a generation past theirs; once per start, so that two processes
    /// misconfigured with one id do not outbid each other for ever (the later one wins, the
    /// other is ignored as before). Whether it did.
    fn raise_past(&mut self, generation: u64) -> bool {
        if generation <= self.local.generation || self.stats.raised_generation > 0 {
            return false;
        }
        self.local.generation = generation.saturating_add(1);
        self.stats.raised_generation += 1;
        true
    }

    /// A peer holds this node's state up to (`generation`, `version`): `(0, 0)` if it holds
    /// none. Kept if of an earlier incarnation than this one, and the latest so far.
    fn told_of_self(&mut self, generation: u64, version: u64) {
        if generation < self.local.generation {
            let told = (generation, version);
            self.earlier = Some(self.earlier.map_or(told, |e| e.max(told)));
        }
    }

    /// Compares the initiator's digests with the view: what to ask for, what to send.
    fn compare(
        &self,
        digests: &[Digest<Id>],
        complete: bool,
    ) -> (Vec<Digest<Id>>, Vec<Wanted<Id>>) {
        let mut requests = Vec::new();
        let mut wanted = Vec::new();
        let mut matched = 0;
        // An id listed twice is answered once; requests stay within the message bound (the
        // deltas get what is left), and ask for no more unknown nodes than the view has room for.
        let mut seen = BTreeSet::new();
        let max_requests = self
            .config
            .max_message_bytes
            .saturating_sub(self.header_size() + 4)
            / self.digest_size();
        let mut room = self.config.max_members.saturating_sub(self.others.len());
        for d in digests {
            if !seen.insert(&d.id) {
                continue;
            }
            let Some(state) = self.node_state(&d.id) else {
                // A node that left and was removed here, of which the initiator holds an older
                // state: it hears of the departure (it missed it: cut off, or paused).
                if let Some(t) = self.tombstones.get(&d.id) {
                    if t.left.is_some() && (d.generation, d.version) < (t.generation, t.version) {
                        let from = if d.generation == t.generation {
                            d.version
                        } else {
                            0
                        };
                        wanted.push(Wanted {
                            id: d.id.clone(),
                            from,
                            news: true,
                        });
                        continue;
                    }
                }
                if room > 0
                    && requests.len() < max_requests
                    && !self.blocked_by_tombstone(&d.id, d.generation, d.version)
                {
                    room -= 1;
                    requests.push(Digest {
                        id: d.id.clone(),
                        generation: 0,
                        version: 0,
                    });
                }
                continue;
            };
            matched += 1;
            let own = d.id == self.id;
            let asks = !own && requests.len() < max_requests;
            if state.generation < d.generation {
                // (The version held of the old generation tells a restarted node how far its
                // last run got: see `Gossip::earlier_incarnation`. The answer sends the new
                // generation whole whatever it says.)
                if asks {
                    requests.push(Digest {
                        id: d.id.clone(),
                        generation: state.generation,
                        version: state.version,
                    });
                }
            } else if state.generation > d.generation {
                wanted.push(Wanted {
                    id: d.id.clone(),
                    from: 0,
                    news: true,
                });
            } else if state.version > d.version {
                wanted.push(Wanted {
                    id: d.id.clone(),
                    from: d.version,
                    news: has_news(state, d.version),
                });
            } else if state.version < d.version && asks {
                requests.push(Digest {
                    id: d.id.clone(),
                    generation: state.generation,
                    version: state.version,
                });
            }
        }
        // Nodes the initiator does not know, unless every known node was in its list.
        if complete && matched < self.others.len() + 1 {
            let listed: BTreeSet<&Id> = digests.iter().map(|d| &d.id).collect();
            for (id, _) in self.members() {
                if !listed.contains(id) {
                    wanted.push(Wanted {
                        id: id.clone(),
                        from: 0,
                        news: true,
                    });
                }
            }
        }
        (requests, wanted)
    }

    /// Builds deltas within the message size bound: news beyond heartbeats first, the rest in
    /// random order so that every node's heartbeat gets its turn when the bound bites.
    fn build_deltas(&mut self, mut wanted: Vec<Wanted<Id>>, used: usize) -> Vec<Delta<Id, A>> {
        let (id_size, addr_size) = (
            self.config.id_size_estimate,
            self.config.address_size_estimate,
        );
        let total: usize = self.config.max_message_bytes;
        shuffle(&mut self.rng, &mut wanted);
        wanted.sort_by_key(|w| !w.news);
        let mut budget = total.saturating_sub(used);
        let mut deltas = Vec::with_capacity(wanted.len());
        for w in wanted {
            let state = self
                .node_state(&w.id)
                .or_else(|| self.tombstones.get(&w.id).and_then(|t| t.left.as_ref()));
            let Some(state) = state else {
                continue;
            };
            let mut delta = state.delta(w.id, w.from, usize::MAX);
            let mut size = delta.size_estimate(id_size, addr_size);
            if size > budget {
                let entries: usize = delta.app.iter().map(|(k, v)| entry_size(k, &v.value)).sum();
                let header = size - entries;
                if header > budget {
                    break;
                }
                let mut room = budget - header;
                let fit = delta
                    .app
                    .iter()
                    .take_while(|(k, v)| {
                        let s = entry_size(k, &v.value);
                        let ok = s <= room;
                        room = room.saturating_sub(s);
                        ok
                    })
                    .count();
                if fit < delta.app.len() {
                    delta.to_version = fit
                        .checked_sub(1)
                        .and_then(|last| delta.app.get(last))
                        .map_or(delta.from_version, |(_, v)| v.version);
                    delta.app.truncate(fit);
                }
                size = delta.size_estimate(id_size, addr_size);
            }
            budget = budget.saturating_sub(size);
            deltas.push(delta);
        }
        deltas
    }

    pub(crate) fn header_size(&self) -> usize {
        self.config.cluster_name.len() + 3 + self.config.address_size_estimate + 4
    }

    pub(crate) fn digest_size(&self) -> usize {
        self.config.id_size_estimate + 16
    }

    /// Remembers a removed node's last version until its tombstone expires: `linger` (how much
    /// later another member may remove it: one that learned it again just before removing it,
    /// after a restart, waits its own full delay) plus the tombstone lifetime, so that such a
    /// member's gossip cannot bring the node back here. At most
    /// [`Config::max_members`](crate::Config) are kept: past that, the one that expires first
    /// makes room (a peer naming ever more departed nodes cannot grow the table).
    pub(crate) fn bury(&mut self, now: u64, id: Id, state: &NodeState<A>, linger: Duration) {
        if !self.tombstones.contains_key(&id) && self.tombstones.len() >= self.config.max_members {
            let first = self
                .tombstones
                .iter()
                .min_by_key(|(_, t)| t.until)
                .map(|(id, _)| id.clone());
            if let Some(first) = first {
                self.tombstones.remove(&first);
                self.stats.ignored_view_full += 1;
            }
        }
        self.tombstones.insert(
            id,
            Tombstone {
                generation: state.generation,
                version: state.max_version(),
                until: now
                    .saturating_add(ms(linger))
                    .saturating_add(ms(self.config.tombstone_ttl)),
                left: (state.status() == Status::Left).then(|| state.clone()),
            },
        );
    }

    /// The view holds as many other nodes as it may: news of a new one is not taken.
    fn view_full(&self) -> bool {
        self.others.len() >= self.config.max_members
    }

    fn blocked_by_tombstone(&self, id: &Id, generation: u64, version: u64) -> bool {
        self.tombstones
            .get(id)
            .is_some_and(|t| (generation, version) <= (t.generation, t.version))
    }

    /// Merges deltas into the view and turns what changed into events.
    pub(crate) fn apply_deltas(&mut self, now: u64, deltas: &[Delta<Id, A>]) {
        for delta in deltas {
            self.apply_delta(now, delta);
        }
    }

    fn apply_delta(&mut self, now: u64, delta: &Delta<Id, A>) {
        let newest = delta
            .to_version
            .max(delta.heartbeat.version)
            .max(delta.status.version)
            .max(delta.address.version);
        if delta.id == self.id {
            let raised = self.raise_past(delta.generation);
            self.told_of_self(delta.generation, newest);
            if !raised
                && (delta.generation, newest) > (self.local.generation, self.local.max_version())
            {
                self.stats.ignored_conflicting_self += 1;
            }
            return;
        }
        if self.blocked_by_tombstone(&delta.id, delta.generation, newest) {
            self.stats.ignored_removed += 1;
            return;
        }
        let Some(member) = self.others.get_mut(&delta.id) else {
            self.learn(now, delta);
            return;
        };
        let applied = match member.state.apply(delta) {
            Ok(applied) => applied,
            Err(Refused::StaleGeneration) => {
                self.stats.ignored_stale_generation += 1;
                return;
            }
            Err(Refused::Gap) => {
                self.stats.ignored_gap += 1;
                return;
            }
        };
        let status = member.state.status();
        let peer = &mut member.peer;
        let id = &delta.id;
        if applied.restarted {
            peer.window = ArrivalWindow::new(
                now,
                ms(self.config.gossip_interval),
                self.config.window_size,
            );
            peer.left_since = None;
            self.events.push_back(Event::Restarted {
                id: id.clone(),
                generation: delta.generation,
                replaced: applied.replaced,
            });
        } else if applied.heartbeat_advanced {
            peer.window
                .report(now, ms(self.config.effective_max_sample_interval()));
        }
        if (applied.heartbeat_advanced || applied.restarted)
            && !peer.alive
            && status != Status::Left
        {
            peer.alive = true;
            peer.down_since = None;
            self.events.push_back(Event::Up { id: id.clone() });
        }
        // A new incarnation that left already may carry the old one's status (left, then left):
        // no change is reported, but the restart cleared when it left.
        let left =
            applied.status == Some(Status::Left) || (applied.restarted && status == Status::Left);
        if left {
            peer.left_since = Some(now);
            self.events.push_back(Event::Left { id: id.clone() });
        } else if let Some(new) = applied.status {
            self.events.push_back(Event::StatusChanged {
                id: id.clone(),
                status: new,
            });
        }
        for key in applied.keys {
            self.events.push_back(Event::AppStateChanged {
                id: id.clone(),
                key,
            });
        }
    }

    /// A node not in the view: it joins, unless the news is that it already left. That news is
    /// reported all the same ([`Event::Left`]): the application may count the node a member from
    /// elsewhere (a ring built from a list of members), and a node that left before its first
    /// exchange reached anyone would otherwise stay a member there forever.
    fn learn(&mut self, now: u64, delta: &Delta<Id, A>) {
        let state = match NodeState::from_delta(delta) {
            Ok(state) => state,
            Err(_) => {
                self.stats.ignored_gap += 1;
                return;
            }
        };
        let id = delta.id.clone();
        self.tombstones.remove(&id);
        if state.status() == Status::Left {
            self.bury(now, id, &state, self.config.left_grace);
            self.events.push_back(Event::Left {
                id: delta.id.clone(),
            });
            return;
        }
        if self.view_full() {
            self.stats.ignored_view_full += 1;
            return;
        }
        let peer = Peer {
            window: ArrivalWindow::new(
                now,
                ms(self.config.gossip_interval),
                self.config.window_size,
            ),
            alive: true,
            down_since: None,
            left_since: None,
        };
        self.events.push_back(Event::Joined { id: id.clone() });
        self.events.push_back(Event::Up { id: id.clone() });
        for (key, _) in state.app_states() {
            self.events.push_back(Event::AppStateChanged {
                id: id.clone(),
                key: key.to_owned(),
            });
        }
        self.others.insert(id, Member { state, peer });
    }
}

/// Whether a delta from `from` carries more than a heartbeat.
fn has_news<A>(state: &NodeState<A>, from: u64) -> bool {
    from == 0
        || state.status.version > from
        || state.address.version > from
        || state.app.values().any(|v| v.version > from)
}
