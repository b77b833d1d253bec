//! The deterministic cluster simulator: many [`NodeCore`](crate::core::NodeCore)s in one process, on virtual time, from
//! one seed.
//!
//! - [`dist`]: latency distributions (constant, uniform, normal, exponential, Pareto, mixtures,
//!   offsets);
//! - [`net`]: links that delay, drop, duplicate and reorder, partitions, the event queue;
//! - [`workload`]: closed-loop clients and the [`History`] they leave;
//! - [`check`]: stale reads, lost writes, resurrected deletes over the history and final state;
//! - [`trace`]: an opt-in log of when each replica received writes and answered reads;
//! - [`Sim`]: the driver, with crashes, restarts, joins, leaves, partitions and healing.
//!
//! Everything random comes from [`SimConfig::seed`]: the same seed and the same calls give the same
//! run, event for event, so a failing seed replays exactly.
//!
//! ```
//! use dynamo_node::sim::{Sim, SimConfig};
//!
//! let mut sim = Sim::new(SimConfig { nodes: 5, seed: 7, ..SimConfig::default() }).unwrap();
//! sim.run_ops(200);
//! sim.crash(1, true);
//! sim.run_ops(200);
//! sim.restart(1).unwrap();
//! sim.stop_clients();
//! let settled = sim.settle(60_000, 100);
//! assert!(settled.is_some(), "replicas converge");
//! let report = sim.check();
//! assert!(report.is_clean(), "{report}");
//! ```

mod calls;
pub mod check;
pub mod dist;
mod driver;
pub mod net;
mod pause;
mod readback;
pub use readback::ReadBack;
mod stats;
pub mod trace;
pub mod workload;

use std::collections::BTreeMap;

use crate::types::ReplayRng;
use rand::SeedableRng;

use crate::config::NodeConfig;
use crate::core::{NodeError, StoredCore};
use crate::message::{ClientReply, ClientRequest, PeerMessage};
use crate::store::MemoryStore;
use crate::types::{Millis, NodeId};

use net::{EventQueue, LinkConfig, Micros, Network};
use workload::{History, Picker, Workload};

pub use stats::SimStats;

/// Why the simulator could not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A node failed to start.
    #[error("node {node} failed to start: {source}")]
    Node {
        /// Which node.
        node: NodeId,
        /// Why.
        source: NodeError,
    },
    /// The network or workload configuration is invalid.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// No such node.
    #[error("no node {0}")]
    NoSuchNode(NodeId),
    /// The node is already running.
    #[error("node {0} is running")]
    Running(NodeId),
}

/// Everything a simulation is made of.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Number of nodes at the start (ids `0..nodes`).
    pub nodes: usize,
    /// The nodes' configuration; the simulator fills in `seeds` and `initial_members`.
    pub node: NodeConfig,
    /// How every link behaves (override single links with [`Sim::network_mut`]).
    pub link: LinkConfig,
    /// What the clients do.
    pub workload: Workload,
    /// Keep every operation in the history (needed by the checkers); off, only the operations in
    /// flight are kept (for long benchmark runs).
    pub keep_history: bool,
    /// Virtual time at the start (milliseconds). Positive, because cores derive their gossip
    /// generation from the time they start.
    pub start: Millis,
    /// A slow disk: each node's storage ops wait, and run together this long (milliseconds)
    /// after the first of them was queued; the node's messages and replies wait for them (as a
    /// durable node's wait for its flush). `None`: storage runs with each input.
    pub disk: Option<dist::Dist>,
    /// A failing disk: about one in this many data reads and writes of every node fails with an
    /// I/O error ([`MemoryStore::inject_faults`]). `None`: none fails.
    pub disk_faults: Option<u64>,
    /// Buffered stores (as `dynamo serve --buffered`): a node's writes are durable only once its
    /// store syncs, which it does at its first input this many milliseconds after the last
    /// sync; a power loss ([`Sim::power_loss`]) takes back what came since. `None`: every write
    /// is durable at once.
    pub buffered: Option<Millis>,
    /// Clocks that disagree: every node starts (and restarts) with its clock off by up to this
    /// many milliseconds either way from the others', drawn afresh at each start, so a restart
    /// may come back on a clock behind the one its last run ended on (as after an NTP step or a
    /// VM restored elsewhere). Within a run a node's clock is monotonic, as the runtime's is
    /// (wall clock at start, then a monotonic clock). `None`: every node reads the true time.
    pub clock_skew: Option<Millis>,
}

impl Default for SimConfig {
    /// Five nodes with the default node configuration (anti-entropy every second, so that short
    /// runs settle), clean 1 ms links, the default workload, seed 0.
    fn default() -> Self {
        SimConfig {
            seed: 0,
            nodes: 5,
            node: NodeConfig {
                sync_interval: Some(1_000),
                ..NodeConfig::default()
            },
            link: LinkConfig::default(),
            workload: Workload::default(),
            keep_history: true,
            start: 1_000,
            disk: None,
            disk_faults: None,
            buffered: None,
            clock_skew: None,
        }
    }
}

/// Something scheduled on the virtual clock.
#[derive(Debug)]
enum Event {
    /// A peer message arrives (if `to` is still the incarnation it was sent to).
    Deliver {
        from: NodeId,
        to: NodeId,
        incarnation: u32,
        msg: PeerMessage,
    },
    /// The connection from `node` to `peer` was refused (peer down): `msg` was not delivered.
    Refused {
        node: NodeId,
        incarnation: u32,
        peer: NodeId,
        msg: PeerMessage,
    },
    /// A node's storage ops run (slow disk).
    Disk { node: NodeId, incarnation: u32 },
    /// A node's deadline.
    Timer {
        node: NodeId,
        incarnation: u32,
        at: Millis,
    },
    /// A client request arrives at a node.
    Request {
        node: NodeId,
        incarnation: u32,
        op: u64,
        request: ClientRequest,
    },
    /// A node's reply arrives at the client.
    Reply { op: u64, reply: ClientReply },
    /// A client starts its next operation.
    Wake { client: u32 },
    /// A client gives up on an operation.
    ClientTimeout { op: u64 },
    /// A paused node runs again (if it is still the incarnation and the pause, by number,
    /// that scheduled this).
    Resume {
        node: NodeId,
        incarnation: u32,
        pause: u64,
    },
}

/// One node's place in the simulation.
struct Slot {
    core: Option<StoredCore<MemoryStore>>,
    /// A crashed node's store, kept for its restart (`None`: lost or running).
    disk: Option<MemoryStore>,
    incarnation: u32,
    /// Deadline of the timer event currently scheduled, if any.
    armed: Option<Millis>,
    /// Outputs waiting for the node's storage ops (slow disk).
    held: Vec<(NodeId, PeerMessage)>,
    held_replies: Vec<(u64, ClientReply)>,
    /// Whether a disk event is scheduled.
    disk_armed: bool,
    /// When the node's buffered store last synced (µs of virtual time).
    synced_at: Micros,
    /// While the node's process is paused ([`Sim::pause`]): the events that reached it since,
    /// in order, run when it resumes.
    paused: Option<Vec<Event>>,
    /// Pauses of this slot so far (a scheduled resume names the pause it ends).
    pauses: u64,
    /// How far ahead of the true time this incarnation's clock runs (ms; see
    /// [`SimConfig::clock_skew`]).
    clock: Millis,
    /// Timeouts handled in a row after which a deadline was still due (see
    /// [`SimStats::still_due`](stats::SimStats::still_due)).
    due_streak: u32,
}

impl Slot {
    /// A slot for a node not started yet.
    fn new() -> Self {
        Slot {
            core: None,
            disk: None,
            incarnation: 0,
            armed: None,
            held: Vec::new(),
            held_replies: Vec::new(),
            disk_armed: false,
            synced_at: 0,
            paused: None,
            pauses: 0,
            clock: 0,
            due_streak: 0,
        }
    }
}

/// A closed-loop client.
#[derive(Debug, Default)]
struct Client {
    /// The operation in flight, and the node it went to.
    pending: Option<(u64, NodeId)>,
    /// Per key, the context of the last get and that get's id.
    contexts: BTreeMap<u32, (Vec<u8>, u64)>,
    /// Whether a wake-up is scheduled.
    scheduled: bool,
    /// With `Workload::read_before_write`: the write to issue after the get now in flight.
    next_write: Option<(workload::OpKind, u32)>,
}

/// A simulated cluster. See the [module docs](self).
///
/// Methods: `crash`, `restart`, `pause`, `add_node`, `leave`, `partition`, `isolate`, `heal` inject faults
/// and changes; `run_until`, `run_for`, `run_ops`, `settle` advance virtual time; `history`,
/// `stats`, `node_stats`, `node`, `converged`, `final_state`, `check` observe.
pub struct Sim {
    config: SimConfig,
    rng: ReplayRng,
    now: Micros,
    queue: EventQueue<Event>,
    net: Network,
    slots: Vec<Slot>,
    /// Nodes running, for clients to pick from (O(1) choice).
    up: Vec<NodeId>,
    members: Vec<NodeId>,
    /// The member list the cluster was created with (what a restarted node is configured with).
    initial: Vec<NodeId>,
    clients: Vec<Client>,
    clients_running: bool,
    picker: Picker,
    history: History,
    stats: SimStats,
    in_flight: usize,
    outbox: Vec<(NodeId, PeerMessage)>,
    replies: Vec<(u64, ClientReply)>,
    /// Replies to [`Sim::call`], by operation id.
    direct: BTreeMap<u64, ClientReply>,
    /// Operations whose reply is on its way to the client: a crash of the node that sent it
    /// does not stop it, as bytes a process wrote to its socket before dying still arrive.
    answered: std::collections::BTreeSet<u64>,
    /// Keys of which a node lost its copy: damaged records, a lost disk's keys (see
    /// [`check::FinalState::lost_copies`]).
    lost_copies: BTreeMap<u32, Micros>,
    /// Replica actions, when [`Sim::record_replicas`] turned the log on.
    replica_log: Option<trace::ReplicaLog>,
    /// Keys whose primaries' copies differed when a [`Sim::settle`] found the replicas
    /// converged ([`check::FinalState::divergent`]).
    divergent: Vec<check::Divergence>,
}

/// The client id of operations issued through [`Sim::call`].
pub const DIRECT_CLIENT: u32 = u32::MAX;

impl Sim {
    /// Starts `config.nodes` nodes and the clients.
    ///
    /// # Errors
    ///
    /// An invalid link or workload, or a node that fails to start.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        config
            .link
            .validate()
            .map_err(|e| SimError::Config(format!("link: {e}")))?;
        for (name, d) in [
            ("think_time", &config.workload.think_time),
            ("client_latency", &config.workload.client_latency),
        ] {
            d.validate()
                .map_err(|e| SimError::Config(format!("{name}: {e}")))?;
        }
        if let Some(d) = &config.disk {
            d.validate()
                .map_err(|e| SimError::Config(format!("disk: {e}")))?;
        }
        let n = config.nodes;
        let mut sim = Sim {
            rng: ReplayRng::seed_from_u64(config.seed),
            now: config.start.saturating_mul(1000),
            queue: EventQueue::new(),
            net: Network::new(n, config.link.clone()),
            slots: Vec::with_capacity(n),
            up: Vec::with_capacity(n),
            members: (0..n as NodeId).collect(),
            initial: (0..n as NodeId).collect(),
            clients: (0..config.workload.clients)
                .map(|_| Client::default())
                .collect(),
            clients_running: true,
            picker: Picker::new(&config.workload),
            history: History::retaining(config.keep_history),
            stats: SimStats::default(),
            in_flight: 0,
            outbox: Vec::new(),
            replies: Vec::new(),
            direct: BTreeMap::new(),
            answered: std::collections::BTreeSet::new(),
            lost_copies: BTreeMap::new(),
            replica_log: None,
            divergent: Vec::new(),
            config,
        };
        for id in 0..n as NodeId {
            sim.slots.push(Slot::new());
            sim.start_node(id, sim.members.clone())?;
        }
        for c in 0..sim.clients.len() {
            sim.schedule_wake(c as u32, 0);
        }
        Ok(sim)
    }

    fn node_config(&self, initial_members: Vec<NodeId>) -> NodeConfig {
        let mut cfg = self.config.node.clone();
        cfg.seeds = self
            .members
            .iter()
            .map(|&m| (m, Self::address(m)))
            .collect();
        cfg.initial_members = initial_members;
        cfg
    }

    /// The address a simulated node "listens" on.
    pub fn address(id: NodeId) -> String {
        format!("sim-{id}")
    }

    fn start_node(&mut self, id: NodeId, initial_members: Vec<NodeId>) -> Result<(), SimError> {
        let cfg = self.node_config(initial_members);
        let clock = self.draw_clock(id);
        let now = self.now_ms() + clock;
        let slot = self
            .slots
            .get_mut(id as usize)
            .ok_or(SimError::NoSuchNode(id))?;
        if slot.core.is_some() {
            return Err(SimError::Running(id));
        }
        let buffered = self.config.buffered.is_some();
        let mut store = slot.disk.take().unwrap_or_else(|| {
            if buffered {
                MemoryStore::buffered()
            } else {
                MemoryStore::new()
            }
        });
        let seed = self.config.seed
            ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(slot.incarnation).rotate_left(32);
        if let Some(one_in) = self.config.disk_faults {
            store.inject_faults(one_in, seed.rotate_left(7));
        }
        let mut core = StoredCore::new(id, Self::address(id), cfg, store, now, seed)
            .map_err(|source| SimError::Node { node: id, source })?;
        slot.clock = clock;
        core.set_deferred(self.config.disk.is_some());
        slot.core = Some(core);
        slot.armed = None;
        slot.due_streak = 0;
        self.up.push(id);
        self.after_input(id);
        Ok(())
    }

    /// Current virtual time in milliseconds.
    pub fn now_ms(&self) -> Millis {
        self.now / 1000
    }

    /// The time on node `id`'s clock now (ms): the virtual time, or ahead of it by the node's
    /// offset under [`SimConfig::clock_skew`].
    pub fn local_ms(&self, id: NodeId) -> Millis {
        let offset = self.slots.get(id as usize).map_or(0, |s| s.clock);
        self.now_ms().saturating_add(offset)
    }

    /// The offset node `id`'s next incarnation starts with: `skew` plus a draw within `skew`
    /// either way, so no clock reads before the virtual time. Drawn from a stream of its own
    /// (seed, node, incarnation), so that runs without skew replay as before.
    fn draw_clock(&self, id: NodeId) -> Millis {
        use rand::Rng as _;
        let Some(skew) = self.config.clock_skew else {
            return 0;
        };
        let incarnation = self.slots.get(id as usize).map_or(0, |s| s.incarnation);
        let mut rng = ReplayRng::seed_from_u64(
            self.config.seed
                ^ 0xC10C_0FF5
                ^ id.rotate_left(17)
                ^ u64::from(incarnation).rotate_left(40),
        );
        rng.gen_range(0..=skew.saturating_mul(2))
    }

    /// Current virtual time in microseconds.
    pub fn now_micros(&self) -> Micros {
        self.now
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Number of node slots (running or not).
    pub fn node_count(&self) -> usize {
        self.slots.len()
    }

    /// Node `id`'s core, if it is running.
    pub fn node(&self, id: NodeId) -> Option<&StoredCore<MemoryStore>> {
        self.slots.get(id as usize).and_then(|s| s.core.as_ref())
    }

    /// Node `id`'s core, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut StoredCore<MemoryStore>> {
        self.slots
            .get_mut(id as usize)
            .and_then(|s| s.core.as_mut())
    }

    /// Ids of the running nodes.
    pub fn running(&self) -> Vec<NodeId> {
        let mut v = self.up.clone();
        v.sort_unstable();
        v
    }

    /// The operations so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The simulator's counters (network, clients).
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The network, to change links mid-run.
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// Crashes node `id`: its memory is lost; its store is kept for a restart if `keep_store`,
    /// otherwise it restarts empty (and takes a new epoch). Requests in flight to it fail at their
    /// clients as a reset connection would, except those whose reply it already sent (the reply
    /// arrives); messages in flight to it are lost.
    pub fn crash(&mut self, id: NodeId, keep_store: bool) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        let Some(core) = slot.core.take() else { return };
        self.stats.retire(core.stats());
        if !keep_store {
            let now = self.now;
            self.lost_copies.extend(
                core.store()
                    .keys()
                    .filter_map(|k| workload::key_index(k))
                    .map(|k| (k, now)),
            );
        }
        // Storage ops not run yet are lost with the node's memory, and so are the outputs that
        // waited for them.
        slot.disk = keep_store.then(|| core.into_store());
        slot.incarnation += 1;
        slot.armed = None;
        slot.due_streak = 0;
        slot.held.clear();
        slot.held_replies.clear();
        slot.disk_armed = false;
        // A paused process that is killed never runs the events it was sent.
        slot.paused = None;
        self.up.retain(|&n| n != id);
        self.stats.crashes += 1;
        for c in 0..self.clients.len() {
            if let Some((op, node)) = self.clients.get(c).and_then(|c| c.pending) {
                if node == id && !self.answered.contains(&op) {
                    self.finish(c as u32, op, None);
                }
            }
        }
    }

    /// Node `id`'s machine loses power: the node crashes with its store kept (as
    /// [`Sim::crash`]), and the store loses a random tail of the writes since its last sync, up
    /// to all of them ([`MemoryStore::lose_unsynced`]); on buffered stores
    /// ([`SimConfig::buffered`]) some may be acknowledged writes. The keys whose records went
    /// back count as copies lost ([`check::FinalState::lost_copies`]). Returns them.
    pub fn power_loss(&mut self, id: NodeId) -> Vec<crate::types::Key> {
        self.power_loss_keeping(id, None)
    }

    /// [`Sim::power_loss`] that keeps the first `keep` unsynced writes (`None`: a random number
    /// of them).
    pub fn power_loss_keeping(
        &mut self,
        id: NodeId,
        keep: Option<usize>,
    ) -> Vec<crate::types::Key> {
        use rand::Rng;
        self.crash(id, true);
        let Some(unsynced) = self.kept_disk(id).map(|d| d.unsynced_writes()) else {
            return Vec::new();
        };
        let keep = keep.unwrap_or_else(|| self.rng.gen_range(0..=unsynced));
        let lost = self
            .kept_disk(id)
            .map(|d| d.lose_unsynced(keep))
            .unwrap_or_default();
        self.copies_lost(&lost);
        lost
    }

    /// Crashed node `id`'s kept store, if it kept one.
    fn kept_disk(&mut self, id: NodeId) -> Option<&mut MemoryStore> {
        self.slots
            .get_mut(id as usize)
            .and_then(|s| s.disk.as_mut())
    }

    /// A copy of running node `id`'s store as it is now, as an operator backs up a data
    /// directory (see [`Sim::restore`]); on a buffered store, what it wrote so far, all of it
    /// on the copy's disk. `None` if the node is not running.
    pub fn backup(&self, id: NodeId) -> Option<MemoryStore> {
        use crate::store::Store as _;
        let mut copy = self.node(id)?.store().clone();
        // A memory store's sync cannot fail.
        let _ = copy.sync();
        Some(copy)
    }

    /// Puts `backup` back as crashed node `id`'s store, as an operator restores a data
    /// directory from a backup; the node restarts on it ([`Sim::restart`]). The keys the store
    /// it replaces holds other records of than the backup count as copies lost
    /// ([`check::FinalState::lost_copies`]); not those only the backup holds (a deleted value
    /// it brings back is a resurrection). Nothing happens to a running node.
    pub fn restore(&mut self, id: NodeId, backup: MemoryStore) {
        use crate::store::Store as _;
        let Some(slot) = self.slots.get(id as usize) else {
            return;
        };
        if slot.core.is_some() {
            return;
        }
        let changed: Vec<crate::types::Key> = match &slot.disk {
            Some(disk) => disk
                .keys()
                .filter(|k| disk.get(k).ok().flatten() != backup.get(k).ok().flatten())
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.disk = Some(backup);
        }
        self.copies_lost(&changed);
    }

    /// A node lost its copies of `keys` now (see [`check::FinalState::lost_copies`]).
    fn copies_lost(&mut self, keys: &[crate::types::Key]) {
        let now = self.now;
        self.lost_copies.extend(
            keys.iter()
                .filter_map(|k| workload::key_index(k))
                .map(|k| (k, now)),
        );
    }

    /// Syncs running node `id`'s store now (on buffered stores, [`SimConfig::buffered`]: what it
    /// wrote so far survives a power loss).
    pub fn sync(&mut self, id: NodeId) {
        use crate::store::Store as _;
        let now = self.now;
        if let Some(slot) = self.slots.get_mut(id as usize) {
            if let Some(core) = slot.core.as_mut() {
                // A memory store's sync cannot fail.
                let _ = core.store_mut().sync();
                slot.synced_at = now;
            }
        }
    }

    /// Damages up to `count` records of crashed node `id`'s kept store, chosen at random, as bit
    /// rot found when it restarts ([`MemoryStore::damage`]: the store sets them aside and the
    /// node counts them as copies it lost). Returns the keys damaged (none if the node is
    /// running or kept no store).
    pub fn damage(&mut self, id: NodeId, count: usize) -> Vec<crate::types::Key> {
        use rand::seq::SliceRandom;
        let Some(disk) = self.kept_disk(id) else {
            return Vec::new();
        };
        let keys: Vec<crate::types::Key> = disk.keys().cloned().collect();
        let chosen: Vec<crate::types::Key> = keys
            .choose_multiple(&mut self.rng, count)
            .cloned()
            .collect();
        if let Some(disk) = self.kept_disk(id) {
            for key in &chosen {
                disk.damage(key);
            }
        }
        self.copies_lost(&chosen);
        chosen
    }

    /// Rots up to `count` records of running node `id`'s store, chosen at random, as bit rot
    /// while it runs ([`MemoryStore::damage`]: the node finds each at its next read or merge of
    /// the key, or at its next start, and counts it as a copy it lost). Returns the keys rotted
    /// (none if the node is not running).
    pub fn rot(&mut self, id: NodeId, count: usize) -> Vec<crate::types::Key> {
        use rand::seq::SliceRandom;
        fn store(sim: &mut Sim, id: NodeId) -> Option<&mut MemoryStore> {
            sim.slots
                .get_mut(id as usize)
                .and_then(|slot| slot.core.as_mut())
                .map(|core| core.store_mut())
        }
        let Some(keys) = store(self, id).map(|s| s.keys().cloned().collect::<Vec<_>>()) else {
            return Vec::new();
        };
        let chosen: Vec<crate::types::Key> = keys
            .choose_multiple(&mut self.rng, count)
            .cloned()
            .collect();
        if let Some(store) = store(self, id) {
            for key in &chosen {
                store.damage(key);
            }
        }
        self.copies_lost(&chosen);
        chosen
    }

    /// Restarts a crashed node (from its kept store, or empty) with the configuration it was
    /// first started with, as an operator reruns the same command: its member list may be stale
    /// (nodes joined or left since), and the node must catch up from the store and from gossip.
    ///
    /// # Errors
    ///
    /// Unknown or running node, or the core refused to start.
    pub fn restart(&mut self, id: NodeId) -> Result<(), SimError> {
        self.stats.restarts += 1;
        let mut members = self.initial.clone();
        if !members.contains(&id) {
            members.push(id);
        }
        self.start_node(id, members)
    }

    /// Starts a new node that joins the cluster through gossip; returns its id.
    ///
    /// # Errors
    ///
    /// The core refused to start.
    pub fn add_node(&mut self) -> Result<NodeId, SimError> {
        let id = self.slots.len() as NodeId;
        self.slots.push(Slot::new());
        self.net.grow(self.slots.len());
        // As `dynamo serve --join` does: the cluster's members, not itself, so its ring is a
        // guess until it hears the cluster's and the claimant adds it. (Listing itself made it
        // publish a ring of version 0 of its own, which could replace the cluster's wholesale
        // while that was still at version 0.)
        let initial = self.members.clone();
        self.start_node(id, initial)?;
        self.members.push(id);
        Ok(id)
    }

    /// Node `id` leaves the cluster gracefully (it keeps running to hand its data over).
    pub fn leave(&mut self, id: NodeId) {
        let now = self.local_ms(id);
        if let Some(core) = self.node_mut(id) {
            core.leave(now);
            self.after_input(id);
        }
        self.members.retain(|&m| m != id);
        // Clients stop sending to a departing node.
        self.up.retain(|&n| n != id);
    }

    /// Cuts every link between `a` and `b` (both ways).
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        let a: Vec<usize> = a.iter().map(|&x| x as usize).collect();
        let b: Vec<usize> = b.iter().map(|&x| x as usize).collect();
        self.net.partition(&a, &b);
        self.stats.partitions += 1;
    }

    /// Cuts `id` off from every other node.
    pub fn isolate(&mut self, id: NodeId) {
        self.net.isolate(id as usize);
        self.stats.partitions += 1;
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.net.heal();
    }

    /// Runs with the clients stopped until every running node answers reads (a new store
    /// answers none until it has heard how old the cluster's data is: every member, in a new
    /// cluster; see [`NodeCore::unsure`](crate::core::NodeCore::unsure)), at most the gossip
    /// rounds after which a node serves regardless, or `max_events` events. Returns whether it
    /// stopped at `max_events`.
    pub fn start_up(&mut self, max_events: u64) -> bool {
        let running = self.clients_running;
        self.stop_clients();
        let round = self.config.node.gossip_interval.max(1);
        let mut truncated = false;
        for _ in 0..=crate::core::UNSURE_ROUNDS {
            let unsure = self
                .slots
                .iter()
                .any(|s| s.core.as_ref().is_some_and(|c| c.unsure()));
            if !unsure || truncated {
                break;
            }
            truncated = self.run_for_within(round, max_events);
        }
        if running {
            self.resume_clients();
        }
        truncated
    }

    /// Stops the clients from starting new operations (those in flight finish).
    pub fn stop_clients(&mut self) {
        self.clients_running = false;
    }

    /// Lets the clients start operations again.
    pub fn resume_clients(&mut self) {
        self.clients_running = true;
        for c in 0..self.clients.len() {
            let idle = self
                .clients
                .get(c)
                .is_some_and(|c| c.pending.is_none() && !c.scheduled);
            if idle {
                self.schedule_wake(c as u32, 0);
            }
        }
    }

    /// Runs every event up to and including virtual time `t` (milliseconds).
    pub fn run_until(&mut self, t: Millis) {
        self.run_until_within(t, u64::MAX);
    }

    /// [`run_until`](Sim::run_until), stopping once [`stats`](Sim::stats) counts `max_events`
    /// events; returns whether it stopped there.
    pub fn run_until_within(&mut self, t: Millis, max_events: u64) -> bool {
        let end = t.saturating_mul(1000);
        while self.queue.peek_time().is_some_and(|at| at <= end) {
            if self.stats.events >= max_events {
                return true;
            }
            self.step();
        }
        self.now = self.now.max(end);
        false
    }

    /// Runs for `ms` milliseconds of virtual time.
    pub fn run_for(&mut self, ms: Millis) {
        self.run_for_within(ms, u64::MAX);
    }

    /// Runs until `count` more operations completed (any outcome), or nothing is left to do.
    pub fn run_ops(&mut self, count: usize) {
        self.run_ops_within(count, u64::MAX);
    }

    /// [`run_for`](Sim::run_for), stopping once [`stats`](Sim::stats) counts `max_events`
    /// events; returns whether it stopped there.
    pub fn run_for_within(&mut self, ms: Millis, max_events: u64) -> bool {
        let t = self.now_ms() + ms;
        self.run_until_within(t, max_events)
    }

    /// [`run_ops`](Sim::run_ops), stopping once [`stats`](Sim::stats) counts `max_events`
    /// events; returns whether it stopped there.
    pub fn run_ops_within(&mut self, count: usize, max_events: u64) -> bool {
        let target = self.history.completed() + count;
        while self.history.completed() < target && (self.clients_running || self.in_flight > 0) {
            if self.stats.events >= max_events {
                return true;
            }
            if !self.step() {
                break;
            }
        }
        false
    }

    /// Whether every running node that replicates a partition has the same Merkle root for it, and
    /// no node still holds a hint waiting for delivery, hands a range over, awaits a partition
    /// or has storage ops waiting to run, and every running member holds the same ring.
    pub fn converged(&self) -> bool {
        let mut roots: BTreeMap<u32, [u8; 32]> = BTreeMap::new();
        let mut ring = None;
        for core in self.slots.iter().filter_map(|s| s.core.as_ref()) {
            // A hint still waiting, or a range not yet handed over, holds versions that may exist
            // nowhere else; a partition still awaited is not read on that node.
            if core.hints_pending() > 0
                || core.transfers_running() > 0
                || core.storage_pending()
                || core.partitions_awaited() > 0
            {
                return false;
            }
            // Members on different rings disagree on whose copies count (a node that left may
            // keep the last ring it heard).
            if core.ring().contains(&core.id())
                && *ring.get_or_insert(core.ring_version()) != core.ring_version()
            {
                return false;
            }
            for (p, root) in core.partition_roots() {
                if *roots.entry(p).or_insert(root) != root {
                    return false;
                }
            }
        }
        true
    }

    /// Runs, checking every `step` ms, until the replicas [converge](Sim::converged) or `max` ms
    /// passed; returns how long it took (virtual ms), or `None`.
    pub fn settle(&mut self, max: Millis, step: Millis) -> Option<Millis> {
        let start = self.now_ms();
        loop {
            if self.converged() {
                // Copies that differ although the trees agree, kept for the checks: the reads
                // that follow a settle repair them.
                self.divergent = self.final_state().divergent;
                return Some(self.now_ms() - start);
            }
            if self.now_ms() >= start + max {
                return None;
            }
            self.run_for(step.max(1));
        }
    }

    /// Every version the keys' primaries hold, by key index (primaries by the ring of the
    /// lowest-numbered running member, not one that left, whose ring may be old; after settling
    /// every member agrees). Versions on other nodes are listed as strays.
    pub fn final_state(&self) -> check::FinalState {
        let mut state = check::FinalState {
            lost_copies: self.lost_copies.clone(),
            ..check::FinalState::default()
        };
        let member = self
            .slots
            .iter()
            .enumerate()
            .filter(|&(id, _)| self.up.contains(&(id as NodeId)))
            .find_map(|(_, s)| s.core.as_ref());
        let Some(reference) = member.or_else(|| self.slots.iter().find_map(|s| s.core.as_ref()))
        else {
            return state;
        };
        let ring = reference.ring();
        for core in self.slots.iter().filter_map(|s| s.core.as_ref()) {
            let id = core.id();
            let _ = crate::store::Store::scan(core.store(), &mut |key, sibs| {
                if let Some(k) = workload::key_index(key) {
                    if ring.preference_list(key).primaries().any(|&p| p == id) {
                        state.keys.entry(k).or_default().push((id, sibs.clone()));
                    } else {
                        state.strays.push((id, k, sibs.clone()));
                    }
                }
            });
        }
        state.divergent = self.divergent.clone();
        if self.converged() {
            let running = |n: &NodeId| {
                self.slots
                    .get(*n as usize)
                    .is_some_and(|s| s.core.is_some())
            };
            let copies = state.keys.iter().map(|(&k, held)| {
                let key = workload::key_bytes(k);
                let primaries = ring.preference_list(&key).primaries().copied();
                let copies = primaries
                    .filter(running)
                    .map(|p| (p, held.iter().find(|(n, _)| *n == p).map(|(_, s)| s)))
                    .collect();
                (k, copies)
            });
            for d in check::divergent(copies) {
                if !state.divergent.iter().any(|seen| seen.key == d.key) {
                    state.divergent.push(d);
                }
            }
        }
        state
    }

    /// Runs every checker over the history and the final state.
    pub fn check(&self) -> check::Report {
        check::check(&self.history, &self.final_state())
    }
}
