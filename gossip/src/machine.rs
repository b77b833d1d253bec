//! The membership machine: its state, its getters, application commands and outputs.
//!
//! Inputs live in `exchange` (messages) and `round` (timeouts).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::hash::{Hash, Hasher};

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::config::Config;
use crate::detector::{ArrivalWindow, Model};
use crate::error::{ConfigError, GossipError};
use crate::event::{Event, Stats, Transmit};
use crate::message::{entry_size, Body, Message};
use crate::rng::shuffle;
use crate::state::{NodeState, Status, Versioned};

/// How many peers a leaving node pushes its final state to.
const LEAVE_FANOUT: usize = 3;

/// Local bookkeeping about another node: the failure detector and removal clocks.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) window: ArrivalWindow,
    pub(crate) alive: bool,
    pub(crate) down_since: Option<u64>,
    pub(crate) left_since: Option<u64>,
}

/// Another node as this one sees it: its gossiped state and the local failure detection.
#[derive(Debug, Clone)]
pub(crate) struct Member<A> {
    pub(crate) state: NodeState<A>,
    pub(crate) peer: Peer,
}

/// The last version known of a removed node; gossip not newer than it is stale.
#[derive(Debug, Clone)]
pub(crate) struct Tombstone<A> {
    pub(crate) generation: u64,
    pub(crate) version: u64,
    pub(crate) until: u64,
    /// The state of a node removed because it left: sent to a peer that still names an older
    /// state of it (one cut off while the node left), which would otherwise keep the node.
    pub(crate) left: Option<NodeState<A>>,
}

/// Gossip membership of one node: who is in the cluster, who is alive, and what each node
/// published (paper section 4.8). Sans-IO: time comes in as `now` (see the crate docs on time),
/// and every random choice comes from a ChaCha8 generator seeded by [`Config::rng_seed`], the
/// node id and the generation.
///
/// # Methods by kind
///
/// - Getters (`&self`): [`id`](Self::id), [`members`](Self::members), [`is_up`](Self::is_up),
///   [`live_members`](Self::live_members), [`down_members`](Self::down_members),
///   [`node_state`](Self::node_state), [`app_state`](Self::app_state), [`phi`](Self::phi),
///   [`stats`](Self::stats).
/// - Inputs: [`handle_message`](Self::handle_message) and
///   [`handle_timeout`](Self::handle_timeout) (a gossip round: heartbeat, failure detection,
///   removal, exchanges).
/// - Application commands: [`set_app_state`](Self::set_app_state),
///   [`set_status`](Self::set_status), [`leave`](Self::leave).
/// - Outputs: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout).
///
/// # Driving order
///
/// 1. Create with [`Gossip::new`]; the node starts as [`Status::Joining`]; [`poll_timeout`](Self::poll_timeout)
///    is `Some(0)` ("due now") until the first [`handle_timeout`](Self::handle_timeout), which
///    runs the first round at once (contacting the seeds).
/// 2. After every input or command, drain [`poll_transmit`](Self::poll_transmit) (send each
///    message to its address) and [`poll_event`](Self::poll_event) until they return `None`.
/// 3. Call [`handle_timeout`](Self::handle_timeout) when the clock reaches
///    [`poll_timeout`](Self::poll_timeout); calling it early does nothing, late is fine.
/// 4. Call [`set_status`](Self::set_status)`(Status::Up)` once the node serves.
///
/// # Failure detection bound
///
/// Phi accrual with a normal model of heartbeat inter-arrival times (see [`PhiModel`](crate::PhiModel)):
/// at threshold 8 a peer is suspected after about `mean + acceptable pause + 5.2 × std dev` of
/// silence. News of a new heartbeat reaches an observer one to a few rounds apart, so at the
/// defaults (500 ms interval, threshold 8, 3 s pause) every live node marked a crashed node down
/// within 12 s of the crash in the crate's simulator (10 to 1000 nodes, 5% loss), and no live node
/// was marked down in a simulated hour at 100 nodes with 5% loss and 1-250 ms delay (see the
/// crate README).
#[derive(Debug)]
pub struct Gossip<Id, A> {
    pub(crate) config: Config,
    pub(crate) id: Id,
    pub(crate) seeds: Vec<(Id, A)>,
    pub(crate) rng: ChaCha8Rng,
    /// This node's own state.
    pub(crate) local: NodeState<A>,
    /// Every other known node.
    pub(crate) others: BTreeMap<Id, Member<A>>,
    pub(crate) tombstones: BTreeMap<Id, Tombstone<A>>,
    pub(crate) next_round: Option<u64>,
    pub(crate) transmits: VecDeque<Transmit<Id, A>>,
    pub(crate) events: VecDeque<Event<Id>>,
    pub(crate) stats: Stats,
    /// The latest (generation, version) of an earlier incarnation of this node a peer told of
    /// (see [`Gossip::earlier_incarnation`]).
    pub(crate) earlier: Option<(u64, u64)>,
}

impl<Id, A> Gossip<Id, A>
where
    Id: Ord + Clone + Hash + Debug,
    A: Clone + Debug + PartialEq,
{
    /// A machine for node `id` listening at `address`, in its `generation` (the node persists it
    /// and bumps it at every start, so that the cluster tells a restarted node from its old
    /// self), joining through `seeds` (ids and addresses; this node may be one of them).
    pub fn new(
        config: Config,
        id: Id,
        address: A,
        generation: u64,
        seeds: Vec<(Id, A)>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        // The same id gives the same seed in every run, on every platform.
        let mut hasher = crate::rng::IdHasher::new();
        id.hash(&mut hasher);
        let seed = config.rng_seed ^ hasher.finish() ^ generation.rotate_left(32);
        let seeds = seeds.into_iter().filter(|(s, _)| *s != id).collect();
        Ok(Self {
            config,
            id,
            seeds,
            rng: ChaCha8Rng::seed_from_u64(seed),
            local: NodeState::new_owned(generation, address),
            others: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            next_round: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            earlier: None,
        })
    }

    /// This node's id.
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The latest (generation, version) of an earlier incarnation of this node that a peer
    /// told of since this one started, `(0, 0)` if only peers that knew none did; `None` until
    /// a peer told. A node compares it with how far its storage says its last run got: a peer
    /// that knew it further than that shows the storage went back (it was restored from an
    /// older copy). Peers tell in every exchange with the node until they hear of its new
    /// incarnation, which they hear first from it; what they tell may lag what the node
    /// reached by a few rounds, never lead it.
    ///
    /// ```
    /// use dynamo_gossip::{Config, Gossip};
    ///
    /// type G = Gossip<u32, &'static str>;
    /// /// Runs a round of `a` and delivers what the two send each other until neither sends.
    /// fn round(a: (u32, &mut G), b: (u32, &mut G), now: u64) {
    ///     a.1.handle_timeout(now);
    ///     loop {
    ///         let mut quiet = true;
    ///         while let Some(t) = a.1.poll_transmit() {
    ///             quiet = false;
    ///             b.1.handle_message(now, a.0, t.message).unwrap();
    ///         }
    ///         while let Some(t) = b.1.poll_transmit() {
    ///             quiet = false;
    ///             a.1.handle_message(now, b.0, t.message).unwrap();
    ///         }
    ///         if quiet {
    ///             break;
    ///         }
    ///     }
    /// }
    /// let config = Config::default();
    /// let seeds = vec![(1, "a"), (2, "b")];
    /// let mut old: G = Gossip::new(config.clone(), 1, "a", 1, seeds.clone()).unwrap();
    /// let mut peer: G = Gossip::new(config.clone(), 2, "b", 1, seeds.clone()).unwrap();
    /// for r in 1..=5 {
    ///     round((1, &mut old), (2, &mut peer), r * 1_000);
    /// }
    /// let reached = (1, peer.node_state(&1).unwrap().version());
    /// // The node restarts in generation 2; the peer tells how far generation 1 got.
    /// let mut new: G = Gossip::new(config, 1, "a", 2, seeds).unwrap();
    /// assert_eq!(new.earlier_incarnation(), None);
    /// round((1, &mut new), (2, &mut peer), 6_000);
    /// assert_eq!(new.earlier_incarnation(), Some(reached));
    /// ```
    pub fn earlier_incarnation(&self) -> Option<(u64, u64)> {
        self.earlier
    }

    /// Counters of traffic and of ignored input.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// This node's own state.
    pub fn local_state(&self) -> &NodeState<A> {
        &self.local
    }

    /// Every node in the view with its state: this node first, then the others ordered by id.
    pub fn members(&self) -> impl Iterator<Item = (&Id, &NodeState<A>)> {
        std::iter::once((&self.id, &self.local))
            .chain(self.others.iter().map(|(id, m)| (id, &m.state)))
    }

    /// The state of one node (this one included), if it is in the view.
    pub fn node_state(&self, id: &Id) -> Option<&NodeState<A>> {
        if *id == self.id {
            Some(&self.local)
        } else {
            self.others.get(id).map(|m| &m.state)
        }
    }

    /// One application key of one node.
    pub fn app_state(&self, id: &Id, key: &str) -> Option<&[u8]> {
        self.node_state(id).and_then(|s| s.app_state(key))
    }

    /// Whether a node is in the view, considered alive and has not left. This node is up until
    /// it leaves.
    pub fn is_up(&self, id: &Id) -> bool {
        let left = self
            .node_state(id)
            .is_none_or(|s| s.status() == Status::Left);
        if left {
            return false;
        }
        *id == self.id || self.others.get(id).is_some_and(|m| m.peer.alive)
    }

    /// The nodes that are up (see [`is_up`](Self::is_up)): this one first (unless it left), then
    /// the others ordered by id.
    pub fn live_members(&self) -> impl Iterator<Item = &Id> {
        self.members().map(|(id, _)| id).filter(|id| self.is_up(id))
    }

    /// The nodes the failure detector suspects, ordered by id.
    pub fn down_members(&self) -> impl Iterator<Item = &Id> {
        self.others
            .iter()
            .filter(|(_, m)| !m.peer.alive && m.peer.left_since.is_none())
            .map(|(id, _)| id)
    }

    /// The current suspicion level of a peer (`None` for this node and unknown nodes).
    pub fn phi(&self, id: &Id, now: u64) -> Option<f64> {
        let model = Model::from_config(&self.config);
        self.others.get(id).map(|m| m.peer.window.phi(now, model))
    }

    /// Publishes an application entry (ring tokens, partition ownership, load...). It reaches
    /// every member by gossip; they see [`Event::AppStateChanged`].
    ///
    /// An entry must fit in half a message ([`Config::max_message_bytes`]), so that it can always
    /// travel; larger ones are refused with [`GossipError::ValueTooLarge`].
    pub fn set_app_state(
        &mut self,
        key: impl Into<String>,
        value: Vec<u8>,
    ) -> Result<(), GossipError> {
        let key = key.into();
        let size = entry_size(&key, &value);
        let limit = self.config.max_message_bytes / 2;
        if size > limit {
            return Err(GossipError::ValueTooLarge { key, size, limit });
        }
        let state = &mut self.local;
        if state.status() == Status::Left {
            return Err(GossipError::AlreadyLeft);
        }
        let version = state.bump();
        state.app.insert(key, Versioned::new(version, value));
        Ok(())
    }

    /// Announces a new status. Status only moves forward (joining, up, leaving, left);
    /// `Status::Left` is the same as [`leave`](Self::leave).
    pub fn set_status(&mut self, status: Status) -> Result<(), GossipError> {
        let current = self.local_state().status();
        if current == Status::Left {
            return Err(GossipError::AlreadyLeft);
        }
        if status < current {
            return Err(GossipError::StatusRegression {
                from: current,
                to: status,
            });
        }
        if status == current {
            return Ok(());
        }
        let state = &mut self.local;
        let version = state.bump();
        state.status = Versioned::new(version, status);
        if status == Status::Left {
            self.push_leave();
        }
        Ok(())
    }

    /// Leaves the cluster gracefully: announces [`Status::Left`] and pushes the news to a few
    /// live peers at once. Keep driving the machine for a few rounds if you can, so the news
    /// spreads further; the others remove this node after [`Config::left_grace`].
    pub fn leave(&mut self) -> Result<(), GossipError> {
        self.set_status(Status::Left)
    }

    fn push_leave(&mut self) {
        let mut targets: Vec<Id> = self
            .others
            .keys()
            .filter(|id| self.is_up(id))
            .cloned()
            .collect();
        shuffle(&mut self.rng, &mut targets);
        targets.truncate(LEAVE_FANOUT);
        let mut addressed: Vec<(Id, A)> = targets
            .into_iter()
            .filter_map(|id| {
                self.others
                    .get(&id)
                    .map(|m| (id, m.state.address().clone()))
            })
            .collect();
        if addressed.is_empty() {
            addressed = self.seeds.clone();
        }
        let delta = self.local.delta(self.id.clone(), 0, usize::MAX);
        for (to, address) in addressed {
            let body = Body::Ack2 {
                deltas: vec![delta.clone()],
            };
            self.send(to, address, body);
        }
    }

    /// Queues a message.
    pub(crate) fn send(&mut self, to: Id, address: A, body: Body<Id, A>) {
        let message = Message {
            cluster: self.config.cluster_name.clone(),
            sender_address: self.local.address().clone(),
            body,
        };
        let size = message.size_estimate(
            self.config.id_size_estimate,
            self.config.address_size_estimate,
        );
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += size as u64;
        self.transmits.push_back(Transmit {
            to,
            address,
            message,
        });
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<Id, A>> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event<Id>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next (`Some(0)` before the first
    /// round: due now). Always `Some`: gossip never stops, even after leaving.
    pub fn poll_timeout(&self) -> Option<u64> {
        Some(self.next_round.unwrap_or(0))
    }
}
