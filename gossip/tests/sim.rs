//! A deterministic network for gossip machines: seeded randomness, virtual time, messages
//! delivered after a random delay or lost, partitions, crashes and restarts.
//!
//! Shared with the gossip bench binary (`bench/benches/gossip.rs` includes this file), so it uses
//! only std and `dynamo_gossip`.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use dynamo_gossip::{Config, Event, Gossip, Message, Status};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Whole milliseconds of a span.
fn ms(span: std::time::Duration) -> u64 {
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX)
}

/// The workspace's seeded generator (ChaCha8): stable across platforms and versions.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub type Node = Gossip<u32, u32>;

enum Item {
    Timer {
        node: u32,
        incarnation: u64,
    },
    Deliver {
        from: u32,
        to: u32,
        msg: Box<Message<u32, u32>>,
    },
}

/// One simulated cluster; node `i` has id and address `i`.
pub struct Sim {
    pub now: u64,
    pub config: Config,
    pub nodes: Vec<Option<Node>>,
    incarnations: Vec<u64>,
    pub rng: Rng,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Delivery delay range in ms.
    pub delay: (u64, u64),
    /// Partition group of each node; messages between groups are dropped.
    pub groups: Vec<u8>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    items: HashMap<u64, Item>,
    seq: u64,
    /// Events kept by `keep`: (time, observer, event).
    pub log: Vec<(u64, u32, Event<u32>)>,
    pub keep: fn(&Event<u32>) -> bool,
    /// (owner, key): the first time each node learned a change of it.
    pub watch: Option<(u32, String)>,
    pub learned_at: Vec<Option<u64>>,
    /// Bytes (estimated) and messages sent.
    pub bytes_sent: u64,
    pub messages_sent: u64,
    /// The largest message sent (estimated bytes).
    pub largest_message: usize,
}

fn keep_liveness(e: &Event<u32>) -> bool {
    matches!(
        e,
        Event::Down { .. } | Event::Removed { .. } | Event::Left { .. } | Event::Restarted { .. }
    )
}

impl Sim {
    pub fn new(seed: u64, config: Config) -> Self {
        Self {
            now: 0,
            config,
            nodes: Vec::new(),
            incarnations: Vec::new(),
            rng: Rng::new(seed),
            loss: 0.0,
            delay: (1, 100),
            groups: Vec::new(),
            queue: BinaryHeap::new(),
            items: HashMap::new(),
            seq: 0,
            log: Vec::new(),
            keep: keep_liveness,
            watch: None,
            learned_at: Vec::new(),
            bytes_sent: 0,
            messages_sent: 0,
            largest_message: 0,
        }
    }

    /// `n` nodes, the first `seeds` of them seeds, each starting within the first interval.
    pub fn cluster(seed: u64, config: Config, n: u32, seeds: u32) -> Self {
        let mut sim = Self::new(seed, config);
        let seed_list: Vec<(u32, u32)> = (0..seeds.min(n)).map(|i| (i, i)).collect();
        for i in 0..n {
            let start = sim.rng.range(0, ms(sim.config.gossip_interval) - 1);
            sim.start(i, 1, seed_list.clone(), start);
        }
        sim
    }

    fn schedule(&mut self, at: u64, item: Item) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.items.insert(self.seq, item);
    }

    /// Starts (or restarts) node `id` with `generation` at time `at`.
    pub fn start(&mut self, id: u32, generation: u64, seeds: Vec<(u32, u32)>, at: u64) {
        let idx = id as usize;
        if self.nodes.len() <= idx {
            self.nodes.resize_with(idx + 1, || None);
            self.incarnations.resize(idx + 1, 0);
            self.groups.resize(idx + 1, 0);
            self.learned_at.resize(idx + 1, None);
        }
        let mut config = self.config.clone();
        config.rng_seed = self.rng.next_u64();
        let mut node = match Gossip::new(config, id, id, generation, seeds) {
            Ok(node) => node,
            Err(e) => panic!("bad config: {e}"),
        };
        node.set_status(Status::Up).expect("a new node can go up");
        self.nodes[idx] = Some(node);
        self.incarnations[idx] += 1;
        let incarnation = self.incarnations[idx];
        self.schedule(
            at.max(self.now),
            Item::Timer {
                node: id,
                incarnation,
            },
        );
    }

    /// Stops node `id` without a word (messages to it are lost).
    pub fn crash(&mut self, id: u32) {
        self.nodes[id as usize] = None;
        self.incarnations[id as usize] += 1;
    }

    pub fn node(&self, id: u32) -> &Node {
        self.nodes[id as usize].as_ref().expect("node is running")
    }

    pub fn node_mut(&mut self, id: u32) -> &mut Node {
        self.nodes[id as usize].as_mut().expect("node is running")
    }

    pub fn alive(&self) -> impl Iterator<Item = (u32, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i as u32, n)))
    }

    /// Sets an app entry on `owner` now and starts watching who learns it.
    pub fn publish(&mut self, owner: u32, key: &str, value: Vec<u8>) {
        self.node_mut(owner)
            .set_app_state(key, value)
            .expect("node has not left");
        self.watch = Some((owner, key.to_owned()));
        for slot in &mut self.learned_at {
            *slot = None;
        }
        self.learned_at[owner as usize] = Some(self.now);
        self.drain(owner);
    }

    /// Whether every running node has learned the watched change; the last learning time.
    pub fn all_learned(&self) -> Option<u64> {
        let mut last = 0;
        for (i, _) in self.alive() {
            last = last.max(self.learned_at[i as usize]?);
        }
        Some(last)
    }

    /// Sends out what node `id` produced and records its events.
    fn drain(&mut self, id: u32) {
        let idx = id as usize;
        let mut out = Vec::new();
        let mut events = Vec::new();
        if let Some(node) = self.nodes[idx].as_mut() {
            while let Some(t) = node.poll_transmit() {
                out.push(t);
            }
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
        }
        for e in events {
            if let (Some((owner, key)), Event::AppStateChanged { id: o, key: k }) =
                (&self.watch, &e)
            {
                if o == owner && k == key && self.learned_at[idx].is_none() {
                    self.learned_at[idx] = Some(self.now);
                }
            }
            if (self.keep)(&e) {
                self.log.push((self.now, id, e));
            }
        }
        for t in out {
            let size = t.message.size_estimate(
                self.config.id_size_estimate,
                self.config.address_size_estimate,
            );
            self.messages_sent += 1;
            self.bytes_sent += size as u64;
            self.largest_message = self.largest_message.max(size);
            if self.rng.unit() < self.loss {
                continue;
            }
            let to = t.to;
            if self.groups.get(to as usize).copied().unwrap_or(0) != self.groups[idx] {
                continue;
            }
            let at = self.now + self.rng.range(self.delay.0, self.delay.1);
            self.schedule(
                at,
                Item::Deliver {
                    from: id,
                    to,
                    msg: Box::new(t.message),
                },
            );
        }
    }

    /// Runs every event up to and including time `until`.
    pub fn run_until(&mut self, until: u64) {
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > until {
                break;
            }
            self.queue.pop();
            let Some(item) = self.items.remove(&seq) else {
                continue;
            };
            self.now = at;
            match item {
                Item::Timer { node, incarnation } => {
                    if self.incarnations[node as usize] != incarnation {
                        continue;
                    }
                    let Some(n) = self.nodes[node as usize].as_mut() else {
                        continue;
                    };
                    n.handle_timeout(at);
                    let next = n.poll_timeout().expect("gossip always has a next round");
                    self.schedule(next, Item::Timer { node, incarnation });
                    self.drain(node);
                }
                Item::Deliver { from, to, msg } => {
                    let Some(n) = self.nodes.get_mut(to as usize).and_then(Option::as_mut) else {
                        continue;
                    };
                    n.handle_message(at, from, *msg)
                        .expect("the simulator delivers well-formed messages");
                    self.drain(to);
                }
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, ms: u64) {
        self.run_until(self.now + ms);
    }

    /// Whether every running node knows exactly the running nodes, all up.
    pub fn converged_membership(&self) -> bool {
        let running: Vec<bool> = self.nodes.iter().map(Option::is_some).collect();
        let count = running.iter().filter(|r| **r).count();
        self.alive().all(|(_, n)| {
            n.members().count() == count
                && n.down_members().next().is_none()
                && n.members().all(|(id, s)| {
                    running.get(*id as usize) == Some(&true) && s.status() != Status::Left
                })
        })
    }

    /// Runs in steps of one interval until the membership converges; the time it took, if it
    /// did within `limit` ms.
    pub fn run_until_converged(&mut self, limit: u64) -> Option<u64> {
        let start = self.now;
        while self.now - start < limit {
            self.run_for(ms(self.config.gossip_interval));
            if self.converged_membership() {
                return Some(self.now - start);
            }
        }
        None
    }

    /// Publishes a change on a random node and runs until everyone learned it; the number of
    /// gossip intervals (rounds) that took, rounded up.
    pub fn rounds_to_spread(&mut self, key: &str, limit: u64) -> Option<u64> {
        let running: Vec<u32> = self.alive().map(|(i, _)| i).collect();
        let owner = running[(self.rng.next_u64() % running.len() as u64) as usize];
        let start = self.now;
        let value = start.to_be_bytes().to_vec();
        self.publish(owner, key, value);
        let step = ms(self.config.gossip_interval) / 10;
        while self.now - start < limit {
            self.run_for(step);
            if let Some(last) = self.all_learned() {
                let interval = ms(self.config.gossip_interval);
                return Some((last - start).div_ceil(interval));
            }
        }
        None
    }
}
