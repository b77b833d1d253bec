//! The simulated network: a model per link (latency, drops, duplication, reordering), partitions
//! between sets of nodes, and the virtual-time event queue every simulated thing goes through.
//!
//! Time here is in microseconds of virtual time (`u64`); the nodes see milliseconds.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::types::ReplayRng;
use rand::Rng;

use super::dist::{Dist, DistError};

/// Virtual time in microseconds.
pub type Micros = u64;

/// The behaviour of one directed link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// One-way latency.
    pub latency: Dist,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a delivered message is delivered twice (the copy gets its own latency).
    pub duplicate: f64,
    /// Probability that a message is held back by an extra [`reorder_delay`](Self::reorder_delay),
    /// so that later messages overtake it. (Latency jitter alone reorders too: links are not FIFO.)
    pub reorder: f64,
    /// The extra delay of a held-back message.
    pub reorder_delay: Dist,
}

impl Default for LinkConfig {
    /// A clean LAN link: 1 ms ± 0.2 ms, nothing lost, duplicated or held back.
    fn default() -> Self {
        LinkConfig {
            latency: Dist::default(),
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Dist::Exponential { mean: 10.0 },
        }
    }
}

impl LinkConfig {
    /// Checks probabilities and distributions.
    ///
    /// # Errors
    ///
    /// The first invalid parameter.
    pub fn validate(&self) -> Result<(), DistError> {
        for (name, p) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(DistError::InvalidParameter {
                    name,
                    value: p,
                    reason: "a probability must lie in [0, 1]",
                });
            }
        }
        self.latency.validate()?;
        self.reorder_delay.validate()
    }

    /// The delay of one copy: latency plus, sometimes, a reordering delay.
    fn delay(&self, rng: &mut ReplayRng) -> Micros {
        let mut d = self.latency.sample_micros(rng);
        if self.reorder > 0.0 && rng.gen_bool(self.reorder) {
            d = d.saturating_add(self.reorder_delay.sample_micros(rng));
        }
        d
    }
}

/// What the network does with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Lost because the two ends are on different sides of a partition.
    Partitioned,
    /// Lost at random.
    Dropped,
    /// Delivered after `delay`, and a second time after `duplicate` if set.
    Deliver {
        /// Delay of the first copy.
        delay: Micros,
        /// Delay of the duplicate, if any.
        duplicate: Option<Micros>,
    },
}

/// Links between `n` nodes (dense, indexed by node id) and the current partitions.
#[derive(Debug, Clone)]
pub struct Network {
    n: usize,
    default: LinkConfig,
    /// Index into `configs` per directed link; 0 is the default.
    link: Vec<u16>,
    configs: Vec<LinkConfig>,
    /// `blocked[from * n + to]`.
    blocked: Vec<bool>,
    any_blocked: bool,
}

impl Network {
    /// `n` nodes, every link behaving as `default`.
    pub fn new(n: usize, default: LinkConfig) -> Self {
        Network {
            n,
            link: vec![0; n * n],
            configs: vec![default.clone()],
            default,
            blocked: vec![false; n * n],
            any_blocked: false,
        }
    }

    /// Number of nodes the network knows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the network has no node.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Grows the network to `n` nodes; new links behave as the default and are not blocked.
    pub fn grow(&mut self, n: usize) {
        if n <= self.n {
            return;
        }
        let mut link = vec![0; n * n];
        let mut blocked = vec![false; n * n];
        for from in 0..self.n {
            for to in 0..self.n {
                link[from * n + to] = self.link[from * self.n + to];
                blocked[from * n + to] = self.blocked[from * self.n + to];
            }
        }
        self.link = link;
        self.blocked = blocked;
        self.n = n;
    }

    /// The default link behaviour.
    pub fn default_link(&self) -> &LinkConfig {
        &self.default
    }

    /// Sets the behaviour of every link without an override (index 0).
    pub fn set_default(&mut self, config: LinkConfig) {
        if let Some(c) = self.configs.first_mut() {
            *c = config.clone();
        }
        self.default = config;
    }

    /// Overrides the directed link `from -> to`. Out-of-range ids are ignored.
    pub fn set_link(&mut self, from: usize, to: usize, config: LinkConfig) {
        if from >= self.n || to >= self.n {
            return;
        }
        let idx = match self.configs.iter().position(|c| *c == config) {
            Some(i) => i,
            None => {
                self.configs.push(config);
                self.configs.len() - 1
            }
        };
        self.link[from * self.n + to] = u16::try_from(idx).unwrap_or(0);
    }

    /// Removes every per-link override.
    pub fn reset_links(&mut self) {
        self.link.iter_mut().for_each(|l| *l = 0);
        self.configs.truncate(1);
    }

    /// The behaviour of `from -> to`.
    pub fn link(&self, from: usize, to: usize) -> &LinkConfig {
        self.link
            .get(from * self.n + to)
            .and_then(|&i| self.configs.get(usize::from(i)))
            .unwrap_or(&self.default)
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways. Partitions add up.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                if x < self.n && y < self.n && x != y {
                    self.blocked[x * self.n + y] = true;
                    self.blocked[y * self.n + x] = true;
                    self.any_blocked = true;
                }
            }
        }
    }

    /// Cuts `node` off from every other node.
    pub fn isolate(&mut self, node: usize) {
        let others: Vec<usize> = (0..self.n).filter(|&o| o != node).collect();
        self.partition(&[node], &others);
    }

    /// Restores every cut link.
    pub fn heal(&mut self) {
        self.blocked.iter_mut().for_each(|b| *b = false);
        self.any_blocked = false;
    }

    /// Whether `from -> to` is cut.
    pub fn is_blocked(&self, from: usize, to: usize) -> bool {
        self.any_blocked
            && self
                .blocked
                .get(from * self.n + to)
                .copied()
                .unwrap_or(false)
    }

    /// Decides what happens to one message from `from` to `to`.
    pub fn fate(&self, from: usize, to: usize, rng: &mut ReplayRng) -> Fate {
        if self.is_blocked(from, to) {
            return Fate::Partitioned;
        }
        let link = self.link(from, to);
        if link.drop > 0.0 && rng.gen_bool(link.drop) {
            return Fate::Dropped;
        }
        let delay = link.delay(rng);
        let duplicate =
            (link.duplicate > 0.0 && rng.gen_bool(link.duplicate)).then(|| link.delay(rng));
        Fate::Deliver { delay, duplicate }
    }
}

/// A heap entry: the payload lives in the queue's slab, so sifting moves 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    time: Micros,
    seq: u64,
    index: u32,
}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, the earliest (time, seq) must come out first.
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A virtual-time event queue: events come out by time, ties in insertion order, so a run is a
/// function of its seed. Payloads sit in a slab whose slots are reused: after warm-up, scheduling
/// allocates nothing.
#[derive(Debug)]
pub struct EventQueue<T> {
    heap: BinaryHeap<Slot>,
    slab: Vec<Option<T>>,
    free: Vec<u32>,
    seq: u64,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> EventQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }

    /// Schedules `event` at `time`.
    pub fn push(&mut self, time: Micros, event: T) {
        let index = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slab.get_mut(i as usize) {
                    *slot = Some(event);
                }
                i
            }
            None => {
                self.slab.push(Some(event));
                u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.seq += 1;
        self.heap.push(Slot {
            time,
            seq: self.seq,
            index,
        });
    }

    /// The time of the next event.
    pub fn peek_time(&self) -> Option<Micros> {
        self.heap.peek().map(|s| s.time)
    }

    /// Takes the next event.
    pub fn pop(&mut self) -> Option<(Micros, T)> {
        loop {
            let slot = self.heap.pop()?;
            let event = self
                .slab
                .get_mut(slot.index as usize)
                .and_then(Option::take);
            self.free.push(slot.index);
            if let Some(e) = event {
                return Some((slot.time, e));
            }
        }
    }

    /// Number of scheduled events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drops every event for which `keep` is false (O(n); for rare events such as a crash).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for slot in &mut self.slab {
            if slot.as_ref().is_some_and(|e| !keep(e)) {
                *slot = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn queue_orders_by_time_then_insertion() {
        let mut q = EventQueue::new();
        q.push(5, "c");
        q.push(1, "a");
        q.push(5, "d");
        q.push(1, "b");
        q.push(0, "first");
        let out: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(out, [(0, "first"), (1, "a"), (1, "b"), (5, "c"), (5, "d")]);
        assert!(q.is_empty());
    }

    #[test]
    fn queue_reuses_slots_and_retain_drops() {
        let mut q = EventQueue::new();
        for round in 0..100u64 {
            q.push(round, round);
            q.push(round, round + 1000);
            assert!(q.pop().is_some());
        }
        assert!(q.slab.len() <= 101, "slab grew to {}", q.slab.len());
        q.retain(|e| e % 2 == 0);
        let rest: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert!(rest.iter().all(|e| e % 2 == 0));
    }

    #[quickcheck_macros::quickcheck]
    fn queue_pops_sorted(times: Vec<u16>) -> bool {
        let mut q = EventQueue::new();
        for (i, t) in times.iter().enumerate() {
            q.push(u64::from(*t), i);
        }
        let out: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        out.len() == times.len()
            && out
                .windows(2)
                .all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1))
    }

    #[test]
    fn partitions_block_both_ways_until_healed() {
        let mut net = Network::new(4, LinkConfig::default());
        let mut rng = ReplayRng::seed_from_u64(1);
        net.partition(&[0, 1], &[2, 3]);
        assert_eq!(net.fate(0, 2, &mut rng), Fate::Partitioned);
        assert_eq!(net.fate(3, 1, &mut rng), Fate::Partitioned);
        assert!(matches!(net.fate(0, 1, &mut rng), Fate::Deliver { .. }));
        assert!(matches!(net.fate(2, 3, &mut rng), Fate::Deliver { .. }));
        net.heal();
        assert!(matches!(net.fate(0, 2, &mut rng), Fate::Deliver { .. }));
        net.isolate(2);
        assert_eq!(net.fate(1, 2, &mut rng), Fate::Partitioned);
        net.grow(6);
        assert_eq!(net.fate(2, 1, &mut rng), Fate::Partitioned);
        assert!(matches!(net.fate(5, 2, &mut rng), Fate::Deliver { .. }));
    }

    #[test]
    fn drop_and_duplicate_rates_are_respected() {
        let link = LinkConfig {
            drop: 0.3,
            duplicate: 0.1,
            ..LinkConfig::default()
        };
        link.validate().unwrap();
        let mut net = Network::new(2, LinkConfig::default());
        net.set_link(0, 1, link);
        let mut rng = ReplayRng::seed_from_u64(2);
        let (mut dropped, mut dup) = (0, 0);
        let n = 100_000;
        for _ in 0..n {
            match net.fate(0, 1, &mut rng) {
                Fate::Dropped => dropped += 1,
                Fate::Deliver {
                    duplicate: Some(_), ..
                } => dup += 1,
                _ => {}
            }
            assert!(matches!(
                net.fate(1, 0, &mut rng),
                Fate::Deliver {
                    duplicate: None,
                    ..
                }
            ));
        }
        let drop_rate = f64::from(dropped) / f64::from(n);
        let dup_rate = f64::from(dup) / f64::from(n - dropped);
        assert!((drop_rate - 0.3).abs() < 0.01, "{drop_rate}");
        assert!((dup_rate - 0.1).abs() < 0.01, "{dup_rate}");
    }

    #[test]
    fn reordering_holds_some_messages_back() {
        let link = LinkConfig {
            latency: Dist::Constant(1.0),
            reorder: 0.5,
            reorder_delay: Dist::Constant(10.0),
            ..LinkConfig::default()
        };
        let mut rng = ReplayRng::seed_from_u64(3);
        let delays: Vec<_> = (0..1000).map(|_| link.delay(&mut rng)).collect();
        assert!(delays.contains(&1000) && delays.contains(&11_000));
        assert!(LinkConfig {
            drop: 1.5,
            ..LinkConfig::default()
        }
        .validate()
        .is_err());
    }
}
