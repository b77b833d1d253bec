//! What a whole request costs the node cores, without sockets, threads or a disk: three
//! `StoredCore`s on memory stores in one process (N=3, R=W=2, the defaults), every message and
//! client frame encoded and decoded as on the wire (msgpack), delivered in order until the
//! cluster is quiet. One iteration is one client request through a coordinator chosen round-robin,
//! with everything it causes (the replicas' reads or writes, their answers, read repair), as in
//! `bench/ab.sh`'s cluster minus the runtime and the kernel. Compare builds with criterion's
//! baselines: `--save-baseline before` on one commit, `--baseline before` on the next.
//!
//! `cargo bench -p dynamo-bench --bench core -- --warm-up-time 2 --measurement-time 5`
//!
//! On a machine too noisy for timings, count instructions instead: with `CORE_OPS=get:N` (or
//! `put:N`) the binary preloads the keys, runs N such requests and exits, without criterion; run it
//! under `valgrind --tool=cachegrind` with N and with 0, and the difference of the two totals over
//! N is the instructions per request (`bench/core-instructions.sh` does this for two builds).

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_main, BatchSize, Criterion};
use dynamo_node::types::decode_msgpack;
use dynamo_node::{
    ClientOptions, ClientReply, ClientRequest, MemoryStore, NodeConfig, NodeId, PeerMessage,
    StoredCore,
};

/// Keys written before the gets.
const KEYS: usize = 10_000;

/// Three cores and the messages between them.
struct Cluster {
    nodes: Vec<StoredCore<MemoryStore>>,
    queue: VecDeque<(NodeId, NodeId, Vec<u8>)>,
    now: u64,
    next_req: u64,
    next_coordinator: usize,
}

impl Cluster {
    fn new(read_fanout: Option<usize>) -> Self {
        let ids: Vec<NodeId> = vec![1, 2, 3];
        let seeds: Vec<(NodeId, String)> = ids
            .iter()
            .map(|&id| (id, format!("127.0.0.1:{}", 7000 + id)))
            .collect();
        let now = 1_000;
        let nodes = ids
            .iter()
            .map(|&id| {
                let config = NodeConfig {
                    initial_members: ids.clone(),
                    seeds: seeds.clone(),
                    // No timers run here: anti-entropy and gossip would only add noise.
                    sync_interval: None,
                    read_fanout,
                    ..NodeConfig::default()
                };
                StoredCore::new(
                    id,
                    format!("127.0.0.1:{}", 7000 + id),
                    config,
                    MemoryStore::new(),
                    now,
                    id,
                )
                .expect("a node starts")
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            queue: VecDeque::new(),
            now,
            next_req: 1,
            next_coordinator: 0,
        };
        cluster.settle();
        cluster
    }

    /// Moves every message out of every node, through the codec, to its destination, until none
    /// is left; returns the client replies in the order they came.
    fn settle(&mut self) -> Vec<ClientReply> {
        let mut replies = Vec::new();
        loop {
            for (i, node) in self.nodes.iter_mut().enumerate() {
                let from = i as NodeId + 1;
                while let Some((to, msg)) = node.poll_transmit() {
                    let bytes = rmp_serde::to_vec(&msg).expect("a message encodes");
                    self.queue.push_back((from, to, bytes));
                }
                while let Some((_, reply)) = node.poll_reply() {
                    let bytes = rmp_serde::to_vec(&reply).expect("a reply encodes");
                    replies.push(decode_msgpack::<ClientReply>(&bytes).expect("a reply decodes"));
                }
                while node.poll_event().is_some() {}
            }
            let Some((from, to, bytes)) = self.queue.pop_front() else {
                return replies;
            };
            let msg = decode_msgpack::<PeerMessage>(&bytes).expect("a message decodes");
            let index = usize::try_from(to - 1).expect("node ids are small");
            self.nodes[index].handle_message(self.now, from, msg);
        }
    }

    /// One client request through the next coordinator, and everything it causes.
    fn request(&mut self, request: &ClientRequest) -> ClientReply {
        let bytes = rmp_serde::to_vec(request).expect("a request encodes");
        let request = decode_msgpack::<ClientRequest>(&bytes).expect("a request decodes");
        let index = self.next_coordinator;
        self.next_coordinator = (index + 1) % self.nodes.len();
        let req = self.next_req;
        self.next_req += 1;
        // Time moves a millisecond every 100 requests: no request is ever late.
        self.now = 1_000 + req / 100;
        self.nodes[index].handle_client(self.now, req, request);
        let mut replies = self.settle();
        assert_eq!(replies.len(), 1, "one reply per request");
        replies.remove(0)
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn put(key: Vec<u8>, value: &[u8]) -> ClientRequest {
    ClientRequest::Put {
        key,
        value: value.to_vec(),
        context: Vec::new(),
        options: ClientOptions::default(),
        content_type: None,
    }
}

/// A cluster holding [`KEYS`] keys with 100-byte values, whose gets ask `read_fanout` replicas
/// at once (`None`: all N).
fn preloaded(value: &[u8], read_fanout: Option<usize>) -> Cluster {
    let mut cluster = Cluster::new(read_fanout);
    for i in 0..KEYS {
        let reply = cluster.request(&put(key(i), value));
        assert!(matches!(reply, ClientReply::Stored { .. }), "{reply:?}");
    }
    cluster
}

fn get(i: usize) -> ClientRequest {
    ClientRequest::Get {
        key: key(i % KEYS),
        options: ClientOptions::default(),
    }
}

fn requests(c: &mut Criterion) {
    let value = vec![b'v'; 100];
    let mut cluster = preloaded(&value, None);
    let mut fanout = preloaded(&value, Some(2));
    let mut g = c.benchmark_group("3 cores in one process, 100-byte values");
    let mut i = 0;
    g.bench_function("get of a stored key", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            let reply = cluster.request(black_box(&get(i)));
            debug_assert!(matches!(reply, ClientReply::Got { .. }));
            reply
        })
    });
    g.bench_function("get of a stored key, read_fanout = R", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            fanout.request(black_box(&get(i)))
        })
    });
    let mut next = KEYS;
    g.bench_function("put of a new key", |b| {
        b.iter_batched(
            || {
                next += 1;
                put(key(next), &value)
            },
            |request| cluster.request(black_box(&request)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// `CORE_OPS=get:N`, `put:N` or `fanout-get:N` (gets asking R replicas at once): N requests of
/// that kind after the preload, for an instruction count; anything else is refused.
fn count(spec: &str) {
    let (kind, n) = spec.split_once(':').unwrap_or((spec, ""));
    let n: usize = n.parse().expect("CORE_OPS=get:N or put:N");
    let value = vec![b'v'; 100];
    let mut cluster = preloaded(&value, (kind == "fanout-get").then_some(2));
    for i in 0..n {
        let request = match kind {
            "get" | "fanout-get" => get(i * 7919),
            "put" => put(key(KEYS + i), &value),
            other => panic!("CORE_OPS: unknown request kind {other:?}"),
        };
        black_box(cluster.request(&request));
    }
}

fn benches() {
    if let Ok(spec) = std::env::var("CORE_OPS") {
        count(&spec);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    requests(&mut c);
}

criterion_main!(benches);
