//! Client workloads and the history they leave.
//!
//! A workload is a number of closed-loop clients: each picks an operation (get, put or delete by
//! the configured mix), a key (uniform or zipfian over K keys), a live node to send it to and
//! per-request options, waits for the answer (or its own timeout), thinks, and starts again.
//!
//! Every put writes a unique value: the first eight bytes are the operation's id (little-endian),
//! so a checker can tell which write any value it sees came from ([`value_op`]).

use std::collections::VecDeque;

use crate::types::ReplayRng;
use rand::Rng;

use super::dist::Dist;
use crate::message::ClientOptions;
use crate::types::{Millis, NodeId};

/// How keys are chosen.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KeyPopularity {
    /// Every key equally likely.
    Uniform,
    /// Zipf with exponent `s` (key `i` has weight `1 / (i + 1)^s`; `s` near 1 is typical).
    Zipf(f64),
}

/// What the clients do.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Number of closed-loop clients (the concurrency).
    pub clients: usize,
    /// Number of distinct keys K.
    pub keys: u32,
    /// Key popularity.
    pub popularity: KeyPopularity,
    /// Relative weight of gets.
    pub reads: f64,
    /// Relative weight of puts.
    pub writes: f64,
    /// Relative weight of deletes.
    pub deletes: f64,
    /// Size of written values in bytes (at least 8: the unique id).
    pub value_size: usize,
    /// Options per request: `(weight, options)`; empty means the node's defaults.
    pub options: Vec<(f64, ClientOptions)>,
    /// Pause between an answer and the client's next request (milliseconds).
    pub think_time: Dist,
    /// Latency between a client and the node it talks to, each way (milliseconds).
    pub client_latency: Dist,
    /// A client gives up on a request after this long (milliseconds) and records it failed. Longer
    /// than the nodes' request timeout, so it only fires when the node itself went away.
    pub client_timeout: Millis,
    /// Whether puts and deletes carry the context of the client's last get of that key (read,
    /// then write, as the paper's clients do); otherwise they are blind (empty context).
    pub use_context: bool,
    /// Whether every put and delete is preceded by a get of the same key, so that the write
    /// carries a fresh context (read-modify-write, as the paper's shopping cart does). Without
    /// it, a client writes with whatever context it last read for the key, often none, and
    /// concurrent writes accumulate as siblings. Default off.
    pub read_before_write: bool,
}

impl Default for Workload {
    /// 10 clients, 100 uniform keys, 50% gets, 45% puts, 5% deletes, no think time.
    fn default() -> Self {
        Workload {
            clients: 10,
            keys: 100,
            popularity: KeyPopularity::Uniform,
            reads: 0.5,
            writes: 0.45,
            deletes: 0.05,
            value_size: 8,
            options: Vec::new(),
            think_time: Dist::Constant(0.0),
            client_latency: Dist::Constant(0.1),
            client_timeout: 5_000,
            use_context: true,
            read_before_write: false,
        }
    }
}

/// The kind of a client operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A get.
    Get,
    /// A put.
    Put,
    /// A delete.
    Delete,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No answer yet.
    Pending,
    /// The node answered with success (`Got` or `Stored`).
    Ok,
    /// The node answered with an error.
    Failed(crate::message::ClientError),
    /// The client gave up (node crashed, or no answer within the client timeout).
    TimedOut,
}

/// One client operation: its invocation and, once known, its completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Unique id (also the value written by a put).
    pub id: u64,
    /// The client that issued it.
    pub client: u32,
    /// The node it was sent to.
    pub node: NodeId,
    /// Get, put or delete.
    pub kind: OpKind,
    /// Key index in `0..K` (the key bytes are [`key_bytes`] of it).
    pub key: u32,
    /// Options sent.
    pub options: ClientOptions,
    /// Invocation time (simulated microseconds).
    pub invoke: u64,
    /// Completion time, when completed.
    pub complete: Option<u64>,
    /// Result.
    pub outcome: Outcome,
    /// For a successful get: the ids of the writes whose values it returned (sorted).
    pub read: Vec<u64>,
    /// For a successful get, the context returned; for a successful put or delete, the context of
    /// the new version. Empty otherwise.
    pub context: Vec<u8>,
    /// The context this put or delete carried (from the client's last get of the key).
    pub sent_context: Vec<u8>,
    /// The get whose context this put or delete carried.
    pub context_from: Option<u64>,
    /// Replicas that answered, in order.
    pub replicas: Vec<NodeId>,
    /// For a successful get: the values it returned that no put to the key wrote (see
    /// [`written_value`]).
    pub phantoms: Vec<Vec<u8>>,
}

impl Op {
    /// Whether it completed successfully.
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// Whether it is a put or delete.
    pub fn is_write(&self) -> bool {
        matches!(self.kind, OpKind::Put | OpKind::Delete)
    }
}

/// Every operation, indexed by id (ids are dense, in invocation order).
///
/// A history that does not [retain](History::retaining) everything keeps only a window: completed
/// operations are dropped from the front once every earlier one has completed too, so a long
/// benchmark run needs memory for the operations in flight only.
#[derive(Debug, Clone)]
pub struct History {
    base: u64,
    ops: VecDeque<Op>,
    retain: bool,
    completed: usize,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history that keeps every operation.
    pub fn new() -> Self {
        Self::retaining(true)
    }

    /// An empty history; with `retain == false` only a window of recent operations is kept.
    pub fn retaining(retain: bool) -> Self {
        History {
            base: 0,
            ops: VecDeque::new(),
            retain,
            completed: 0,
        }
    }

    /// Whether every operation is kept.
    pub fn retains(&self) -> bool {
        self.retain
    }

    /// Records an invocation under the next id ([`History::next_id`]), which it returns.
    pub fn invoke(&mut self, mut op: Op) -> u64 {
        op.id = self.next_id();
        let id = op.id;
        self.ops.push_back(op);
        id
    }

    /// Marks operation `id` complete at `time` with `outcome` (ignored if it already completed);
    /// returns it so the caller can fill in what it returned.
    pub fn complete(&mut self, id: u64, time: u64, outcome: Outcome) -> Option<&mut Op> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        let op = self.ops.get_mut(i)?;
        if op.complete.is_some() {
            return None;
        }
        op.complete = Some(time);
        op.outcome = outcome;
        self.completed += 1;
        self.ops.get_mut(i)
    }

    /// Drops completed operations from the front (no-op for a retaining history).
    pub fn trim(&mut self) {
        if self.retain {
            return;
        }
        while self.ops.front().is_some_and(|o| o.complete.is_some()) {
            self.ops.pop_front();
            self.base += 1;
        }
    }

    /// The id the next invocation gets.
    pub fn next_id(&self) -> u64 {
        self.base + self.ops.len() as u64
    }

    /// The operation with this id, if kept.
    pub fn get(&self, id: u64) -> Option<&Op> {
        usize::try_from(id.checked_sub(self.base)?)
            .ok()
            .and_then(|i| self.ops.get(i))
    }

    /// The operation with this id, mutably.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Op> {
        usize::try_from(id.checked_sub(self.base)?)
            .ok()
            .and_then(|i| self.ops.get_mut(i))
    }

    /// Every kept operation in invocation order.
    pub fn ops(&self) -> impl Iterator<Item = &Op> + '_ {
        self.ops.iter()
    }

    /// Number of operations invoked (kept or not).
    pub fn len(&self) -> usize {
        usize::try_from(self.next_id()).unwrap_or(usize::MAX)
    }

    /// Whether nothing was invoked.
    pub fn is_empty(&self) -> bool {
        self.next_id() == 0
    }

    /// Number of completed operations (any outcome but pending), kept or not.
    pub fn completed(&self) -> usize {
        self.completed
    }
}

/// The key bytes of key index `k`.
pub fn key_bytes(k: u32) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

/// The key index of key bytes made by [`key_bytes`].
pub fn key_index(key: &[u8]) -> Option<u32> {
    std::str::from_utf8(key.strip_prefix(b"key-")?)
        .ok()?
        .parse()
        .ok()
}

/// The unique value a put with id `op` writes, `size` bytes long (at least 8).
pub fn value_for(op: u64, size: usize) -> Vec<u8> {
    let mut v = op.to_le_bytes().to_vec();
    v.resize(size.max(8), 0xAB);
    v
}

/// The id of the put of `history` to key index `key` that wrote `value`, if one did: its id
/// leads the value and the rest is the padding [`value_for`] writes.
pub fn written_value(history: &History, key: u32, value: &[u8]) -> Option<u64> {
    let id = value_op(value)?;
    let put = history.get(id)?;
    (put.kind == OpKind::Put && put.key == key && value == value_for(id, value.len()).as_slice())
        .then_some(id)
}

/// The id of the put that wrote `value`, if it is a simulator value.
pub fn value_op(value: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Samples keys, operation kinds and options for a [`Workload`] in O(log K) per draw.
#[derive(Debug, Clone)]
pub struct Picker {
    /// Cumulative key weights (zipf) or empty (uniform).
    key_cdf: Vec<f64>,
    keys: u32,
    kind_cdf: [f64; 3],
    options_cdf: Vec<(f64, ClientOptions)>,
}

impl Picker {
    /// Prepares the tables of `w`.
    pub fn new(w: &Workload) -> Self {
        let keys = w.keys.max(1);
        let key_cdf = match w.popularity {
            KeyPopularity::Uniform => Vec::new(),
            KeyPopularity::Zipf(s) => {
                let mut acc = 0.0;
                (0..keys)
                    .map(|i| {
                        acc += 1.0 / f64::from(i + 1).powf(s);
                        acc
                    })
                    .collect()
            }
        };
        let total =
            (w.reads.max(0.0) + w.writes.max(0.0) + w.deletes.max(0.0)).max(f64::MIN_POSITIVE);
        let kind_cdf = [
            w.reads.max(0.0) / total,
            (w.reads.max(0.0) + w.writes.max(0.0)) / total,
            1.0,
        ];
        let mut acc = 0.0;
        let options_cdf = w
            .options
            .iter()
            .map(|(weight, o)| {
                acc += weight.max(0.0);
                (acc, *o)
            })
            .collect();
        Picker {
            key_cdf,
            keys,
            kind_cdf,
            options_cdf,
        }
    }

    /// A key index.
    pub fn key(&self, rng: &mut ReplayRng) -> u32 {
        match self.key_cdf.last() {
            None => rng.gen_range(0..self.keys),
            Some(&total) => {
                let x = rng.gen::<f64>() * total;
                let i = self.key_cdf.partition_point(|&c| c <= x);
                u32::try_from(i).unwrap_or(0).min(self.keys - 1)
            }
        }
    }

    /// An operation kind.
    pub fn kind(&self, rng: &mut ReplayRng) -> OpKind {
        let x: f64 = rng.gen();
        if x < self.kind_cdf[0] {
            OpKind::Get
        } else if x < self.kind_cdf[1] {
            OpKind::Put
        } else {
            OpKind::Delete
        }
    }

    /// Request options.
    pub fn options(&self, rng: &mut ReplayRng) -> ClientOptions {
        match self.options_cdf.last() {
            None => ClientOptions::default(),
            Some(&(total, _)) => {
                let x = rng.gen::<f64>() * total;
                let i = self.options_cdf.partition_point(|&(c, _)| c <= x);
                self.options_cdf
                    .get(i)
                    .or(self.options_cdf.last())
                    .map(|(_, o)| *o)
                    .unwrap_or_default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn op(kind: OpKind) -> Op {
        Op {
            id: 0,
            client: 0,
            node: 0,
            kind,
            key: 0,
            options: ClientOptions::default(),
            invoke: 0,
            complete: None,
            outcome: Outcome::Pending,
            read: Vec::new(),
            context: Vec::new(),
            sent_context: Vec::new(),
            context_from: None,
            replicas: Vec::new(),
            phantoms: Vec::new(),
        }
    }

    #[test]
    fn a_windowed_history_keeps_only_what_is_in_flight() {
        let mut h = History::retaining(false);
        let a = h.invoke(op(OpKind::Get));
        let b = h.invoke(op(OpKind::Put));
        let c = h.invoke(op(OpKind::Delete));
        assert_eq!((a, b, c), (0, 1, 2));
        assert!(h.complete(b, 5, Outcome::Ok).is_some());
        assert!(h.complete(b, 6, Outcome::Ok).is_none(), "completes once");
        h.trim();
        assert_eq!(h.ops().count(), 3, "a is still pending");
        h.complete(a, 7, Outcome::TimedOut);
        h.trim();
        assert_eq!(h.ops().map(|o| o.id).collect::<Vec<_>>(), vec![c]);
        assert!(h.get(a).is_none() && h.get(c).is_some());
        assert_eq!((h.len(), h.completed()), (3, 2));
        let mut full = History::new();
        full.invoke(op(OpKind::Get));
        full.complete(0, 1, Outcome::Ok);
        full.trim();
        assert_eq!(full.ops().count(), 1);
    }

    #[test]
    fn values_and_keys_round_trip() {
        assert_eq!(value_op(&value_for(123_456, 100)), Some(123_456));
        assert_eq!(value_for(1, 2).len(), 8);
        assert_eq!(value_op(b"short"), None);
        assert_eq!(key_index(&key_bytes(42)), Some(42));
        assert_eq!(key_index(b"other"), None);
    }

    #[test]
    fn zipf_favours_the_first_keys_and_uniform_does_not() {
        let mut rng = ReplayRng::seed_from_u64(1);
        let zipf = Picker::new(&Workload {
            keys: 1000,
            popularity: KeyPopularity::Zipf(1.0),
            ..Workload::default()
        });
        let uniform = Picker::new(&Workload {
            keys: 1000,
            ..Workload::default()
        });
        let n = 100_000;
        let mut z0 = 0;
        let mut u0 = 0;
        for _ in 0..n {
            let k = zipf.key(&mut rng);
            assert!(k < 1000);
            z0 += u32::from(k == 0);
            u0 += u32::from(uniform.key(&mut rng) == 0);
        }
        // H(1000) ~ 7.485: key 0 gets ~13.4% under zipf(1), 0.1% under uniform.
        let share = f64::from(z0) / f64::from(n);
        assert!((share - 0.1336).abs() < 0.01, "{share}");
        assert!(u0 < 300, "{u0}");
    }

    #[test]
    fn kind_mix_and_options_follow_the_weights() {
        let mut rng = ReplayRng::seed_from_u64(2);
        let strict = ClientOptions {
            strict: Some(true),
            ..ClientOptions::default()
        };
        let p = Picker::new(&Workload {
            reads: 1.0,
            writes: 2.0,
            deletes: 1.0,
            options: vec![(1.0, ClientOptions::default()), (3.0, strict)],
            ..Workload::default()
        });
        let n = 40_000;
        let (mut g, mut d, mut s) = (0, 0, 0);
        for _ in 0..n {
            match p.kind(&mut rng) {
                OpKind::Get => g += 1,
                OpKind::Delete => d += 1,
                OpKind::Put => {}
            }
            s += u32::from(p.options(&mut rng) == strict);
        }
        for (got, want) in [(g, 0.25), (d, 0.25), (s, 0.75)] {
            let share = f64::from(got) / f64::from(n);
            assert!((share - want).abs() < 0.015, "{share} vs {want}");
        }
    }
}
