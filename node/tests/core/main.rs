//! NodeCore driven by a tiny lossless in-process network: the paper's cases end to end.

use std::collections::{BTreeMap, VecDeque};

mod causality;
mod damage;
mod limits;
mod membership;
mod reaping;

use dynamo_node::{
    ClientOptions, ClientReply, ClientRequest, MemoryStore, NodeConfig, NodeId, PeerMessage,
    StoredCore,
};

/// `key`'s N primaries in `ring`.
fn primaries_in(ring: &dynamo_ring::Ring<NodeId>, key: &str) -> Vec<NodeId> {
    ring.preference_list(key.as_bytes())
        .primaries()
        .copied()
        .collect()
}

/// Nodes with instant, lossless delivery; `down` nodes receive nothing. Each node keeps its data
/// in an `S` (memory by default; `damage` uses a store that rots).
struct Cluster<S: dynamo_node::Store = MemoryStore> {
    nodes: BTreeMap<NodeId, StoredCore<S>>,
    down: Vec<NodeId>,
    now: u64,
    replies: BTreeMap<u64, ClientReply>,
    next_req: u64,
    /// Ownership-transfer batches are lost on the way (and `TransferDone` too).
    drop_transfers: bool,
    /// Hint batches to these nodes are lost on the way (their senders hear so).
    lost_hints_to: Vec<NodeId>,
    /// Anti-entropy messages to and from these nodes are lost on the way.
    cut_sync: Vec<NodeId>,
    /// The largest transfer batch seen, in payload and key bytes.
    largest_transfer: usize,
}

impl Cluster {
    fn new(count: u64, config: NodeConfig) -> Self {
        Self::with_stores(count, config)
    }
}

impl<S: dynamo_node::Store + Default> Cluster<S> {
    /// `count` nodes, each on an empty `S`.
    fn with_stores(count: u64, config: NodeConfig) -> Self {
        let ids: Vec<NodeId> = (1..=count).collect();
        let config = NodeConfig {
            initial_members: ids.clone(),
            seeds: ids.iter().map(|&i| (i, format!("n{i}"))).collect(),
            gossip_interval: 100,
            ..config
        };
        let nodes = ids
            .iter()
            .map(|&i| {
                let core = StoredCore::new(i, format!("n{i}"), config.clone(), S::default(), 1, i)
                    .expect("node starts");
                (i, core)
            })
            .collect();
        Cluster {
            nodes,
            down: Vec::new(),
            now: 1,
            replies: BTreeMap::new(),
            next_req: 1,
            drop_transfers: false,
            lost_hints_to: Vec::new(),
            cut_sync: Vec::new(),
            largest_transfer: 0,
        }
    }

    /// Starts node `id` again, with `config`, on `store` (its disk, kept through a crash).
    fn restart(&mut self, id: NodeId, config: NodeConfig, store: S, seed: u64) {
        let node =
            StoredCore::new(id, format!("n{id}"), config, store, self.now, seed).expect("restarts");
        self.nodes.insert(id, node);
    }

    /// Delivers every queued message until the network is quiet.
    fn settle(&mut self) {
        let mut queue: VecDeque<(NodeId, NodeId, PeerMessage)> = VecDeque::new();
        loop {
            for (&id, node) in self.nodes.iter_mut() {
                while let Some((to, msg)) = node.poll_transmit() {
                    queue.push_back((id, to, msg));
                }
                while let Some((req, reply)) = node.poll_reply() {
                    self.replies.insert(req, reply);
                }
            }
            let Some((from, to, msg)) = queue.pop_front() else {
                break;
            };
            if let PeerMessage::Transfer(batch) = &msg {
                let bytes = batch
                    .entries
                    .iter()
                    .map(|e| e.key.len() + e.payload.len())
                    .sum();
                self.largest_transfer = self.largest_transfer.max(bytes);
            }
            if matches!(msg, PeerMessage::Sync { .. } | PeerMessage::Exchange { .. })
                && (self.cut_sync.contains(&from) || self.cut_sync.contains(&to))
            {
                continue;
            }
            if self.drop_transfers
                && matches!(
                    msg,
                    PeerMessage::Transfer(_) | PeerMessage::TransferDone { .. }
                )
            {
                continue;
            }
            let lost_hints =
                matches!(msg, PeerMessage::Hints(_)) && self.lost_hints_to.contains(&to);
            if self.down.contains(&to) || self.down.contains(&from) || lost_hints {
                if let Some(n) = self.nodes.get_mut(&from) {
                    n.undelivered(self.now, to, msg);
                }
                continue;
            }
            if let Some(n) = self.nodes.get_mut(&to) {
                n.handle_message(self.now, from, msg);
            }
        }
    }

    /// One round of the network: every queued message goes out, and those `keep` refuses are
    /// lost on the way; with nothing queued, virtual time moves 10 ms and due timers fire.
    /// Returns whether messages were queued.
    fn round(&mut self, mut keep: impl FnMut(NodeId, NodeId, &PeerMessage) -> bool) -> bool {
        let mut queue = Vec::new();
        for (&id, node) in self.nodes.iter_mut() {
            while let Some((to, msg)) = node.poll_transmit() {
                queue.push((id, to, msg));
            }
            while let Some((req, reply)) = node.poll_reply() {
                self.replies.insert(req, reply);
            }
        }
        if queue.is_empty() {
            self.now += 10;
            for node in self.nodes.values_mut() {
                if node.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.handle_timeout(self.now);
                }
            }
            return false;
        }
        for (from, to, msg) in queue {
            if keep(from, to, &msg) {
                if let Some(node) = self.nodes.get_mut(&to) {
                    node.handle_message(self.now, from, msg);
                }
            }
        }
        true
    }

    /// Advances virtual time in steps, firing timers.
    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            for (id, node) in self.nodes.iter_mut() {
                if self.down.contains(id) {
                    continue;
                }
                if node.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.handle_timeout(self.now);
                }
            }
            self.settle();
        }
    }

    fn request(&mut self, at: NodeId, request: ClientRequest) -> ClientReply {
        let req = self.next_req;
        self.next_req += 1;
        self.nodes
            .get_mut(&at)
            .expect("node")
            .handle_client(self.now, req, request);
        self.settle();
        let mut waited = 0;
        while !self.replies.contains_key(&req) && waited < 5000 {
            self.advance(10);
            waited += 10;
        }
        self.replies.remove(&req).expect("a reply")
    }

    /// The key's N primaries, as node 1 sees the ring.
    fn primaries(&self, key: &str) -> Vec<NodeId> {
        primaries_in(self.nodes[&1].ring(), key)
    }

    /// Commits `joins` and `leaves` at node `at`, against the ring it has.
    fn commit(
        &mut self,
        at: NodeId,
        joins: Vec<NodeId>,
        leaves: Vec<NodeId>,
    ) -> Result<dynamo_node::ChangePlan, dynamo_node::ChangeError> {
        let now = self.now;
        let node = self.nodes.get_mut(&at).expect("a node");
        let version = node.ring_version().0;
        node.commit_change(now, version, &dynamo_node::ChangeRequest { joins, leaves })
    }

    /// Reads `key` at `at`, then deletes it there with the context read; panics unless the
    /// delete is acknowledged.
    fn delete(&mut self, at: NodeId, key: &str) {
        let (_, context) = self.get(at, key);
        let reply = self.request(
            at,
            ClientRequest::Delete {
                key: key.as_bytes().to_vec(),
                context,
                options: ClientOptions::default(),
            },
        );
        assert!(matches!(reply, ClientReply::Stored { .. }), "{reply:?}");
    }

    fn put(&mut self, at: NodeId, key: &str, value: &str, context: Vec<u8>) -> ClientReply {
        self.request(
            at,
            ClientRequest::Put {
                key: key.into(),
                value: value.into(),
                context,
                options: ClientOptions::default(),
                content_type: None,
            },
        )
    }

    fn get(&mut self, at: NodeId, key: &str) -> (Vec<Vec<u8>>, Vec<u8>) {
        match self.request(
            at,
            ClientRequest::Get {
                key: key.into(),
                options: ClientOptions::default(),
            },
        ) {
            ClientReply::Got {
                mut values,
                context,
                ..
            } => {
                values.sort();
                (values, context)
            }
            other => panic!("get failed: {other:?}"),
        }
    }
}

#[test]
fn put_then_get_from_every_node() {
    let mut c = Cluster::new(5, NodeConfig::default());
    c.advance(500);
    assert!(matches!(
        c.put(1, "cart", "apple", vec![]),
        ClientReply::Stored { .. }
    ));
    for n in 1..=5 {
        assert_eq!(
            c.get(n, "cart").0,
            vec![b"apple".to_vec()],
            "read at node {n}"
        );
    }
}

#[test]
fn concurrent_writes_become_siblings_and_a_put_with_context_reconciles_them() {
    let mut c = Cluster::new(3, NodeConfig::default());
    c.advance(300);
    c.put(1, "k", "a", vec![]);
    c.put(2, "k", "b", vec![]);
    let (values, context) = c.get(3, "k");
    assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec()]);
    c.put(3, "k", "merged", context);
    assert_eq!(c.get(1, "k").0, vec![b"merged".to_vec()]);
}

#[test]
fn a_write_succeeds_through_a_fallback_and_the_hint_reaches_the_node_when_it_returns() {
    let mut c = Cluster::new(5, NodeConfig::default());
    c.advance(500);
    let key = "handoff-key";
    let primaries = c.primaries(key);
    let victim = primaries[0];
    let coordinator = primaries[1];
    c.down.push(victim);
    c.advance(20_000); // gossip marks it down
    let reply = c.put(coordinator, key, "v1", vec![]);
    assert!(matches!(reply, ClientReply::Stored { .. }), "{reply:?}");
    assert!(c.nodes[&victim].store().is_empty());
    c.down.clear();
    c.advance(20_000);
    let held = c.nodes[&victim].store().len();
    assert_eq!(held, 1, "the hint was delivered");
}

#[test]
fn deleted_keys_read_as_absent() {
    let mut c = Cluster::new(3, NodeConfig::default());
    c.advance(300);
    c.put(1, "gone", "x", vec![]);
    let (_, ctx) = c.get(1, "gone");
    let reply = c.request(
        2,
        ClientRequest::Delete {
            key: b"gone".to_vec(),
            context: ctx,
            options: ClientOptions::default(),
        },
    );
    assert!(matches!(reply, ClientReply::Stored { .. }));
    assert!(c.get(3, "gone").0.is_empty());
}

#[test]
fn anti_entropy_repairs_a_replica_that_missed_writes() {
    let config = NodeConfig {
        sync_interval: Some(50),
        read_repair: false,
        hinted_handoff: false,
        mode: dynamo_node::QuorumMode::Strict,
        w: 2,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(3, config);
    c.advance(300);
    // Node 3 misses writes (messages to it are dropped, yet it is not declared down in time).
    c.down.push(3);
    for i in 0..20 {
        c.put(1, &format!("k{i}"), "v", vec![]);
    }
    c.down.clear();
    c.advance(5_000);
    assert_eq!(c.nodes[&3].store().len(), 20);
}

#[test]
fn a_joining_node_receives_its_ranges_and_a_leaving_node_hands_them_over() {
    // Anti-entropy off: the ranges must move by ownership transfer alone.
    let config = NodeConfig {
        sync_interval: None,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(4, config);
    c.advance(500);
    for i in 0..100 {
        c.put(1, &format!("key-{i}"), "v", vec![]);
    }
    // Node 5 starts with the same configuration and joins through the seeds.
    let config = c.nodes[&1].config().clone();
    let newcomer =
        StoredCore::new(5, "n5".into(), config, MemoryStore::new(), c.now, 5).expect("node starts");
    c.nodes.insert(5, newcomer);
    c.advance(10_000);
    let ring = c.nodes[&1].ring().clone();
    assert!(ring.contains(&5), "the cluster adopted the newcomer");
    let expected = (0..100)
        .filter(|i| {
            ring.preference_list(format!("key-{i}").as_bytes())
                .primaries()
                .any(|&n| n == 5)
        })
        .count();
    assert!(expected > 0);
    assert_eq!(
        c.nodes[&5].store().len(),
        expected,
        "node 5 holds its ranges"
    );

    // Node 2 leaves: every key it replicated reaches the nodes that take over.
    c.nodes.get_mut(&2).expect("node").leave(c.now);
    c.settle();
    c.advance(10_000);
    let ring = c.nodes[&1].ring().clone();
    assert!(!ring.contains(&2), "the cluster removed the leaver");
    for i in 0..100 {
        let key = format!("key-{i}");
        for &n in ring.preference_list(key.as_bytes()).primaries() {
            assert!(
                dynamo_node::Store::get(c.nodes[&n].store(), key.as_bytes())
                    .expect("store")
                    .is_some(),
                "{key} on node {n}"
            );
        }
    }
    assert!(
        c.nodes[&2].store().is_empty(),
        "the leaver dropped the ranges it handed over"
    );
}

#[test]
fn a_target_that_fails_after_planning_gets_its_copy_through_a_hinted_fallback() {
    let mut c = Cluster::new(5, NodeConfig::default());
    c.advance(500);
    let key = "late-failure";
    let primaries = c.primaries(key);
    let (coordinator, victim) = (primaries[0], primaries[2]);
    // The victim is unreachable, but no gossip round has passed: the plan still targets it.
    c.down.push(victim);
    let reply = c.put(coordinator, key, "v", vec![]);
    assert!(matches!(reply, ClientReply::Stored { .. }), "{reply:?}");
    let hinted: usize = c
        .nodes
        .values()
        .map(|n| dynamo_node::Store::hints(n.store()).expect("hints").len())
        .sum();
    assert_eq!(hinted, 1, "one fallback holds a hint for the victim");
    c.down.clear();
    // The first delivery went to the unreachable node; the batch is retried after its ack timeout.
    c.advance(30_000);
    assert_eq!(
        c.nodes[&victim].store().len(),
        1,
        "the hint reached the victim"
    );
}

#[test]
fn read_repair_fixes_a_stale_replica_only_when_it_is_on() {
    for read_repair in [false, true] {
        let config = NodeConfig {
            sync_interval: None,
            hinted_handoff: false,
            read_repair,
            mode: dynamo_node::QuorumMode::Strict,
            ..NodeConfig::default()
        };
        let mut c = Cluster::new(3, config);
        c.advance(300);
        c.down.push(3);
        assert!(matches!(
            c.put(1, "k", "v", vec![]),
            ClientReply::Stored { .. }
        ));
        c.down.clear();
        let reply = c.request(
            1,
            ClientRequest::Get {
                key: b"k".to_vec(),
                options: ClientOptions {
                    r: Some(3),
                    ..ClientOptions::default()
                },
            },
        );
        assert!(matches!(reply, ClientReply::Got { .. }), "{reply:?}");
        c.advance(100);
        let repaired = c.nodes[&3].store().len() == 1;
        assert_eq!(repaired, read_repair, "read_repair = {read_repair}");
    }
}

#[test]
fn a_node_that_lost_its_storage_writes_under_a_new_epoch() {
    let config = NodeConfig {
        initial_members: vec![1],
        ..NodeConfig::default()
    };
    let first =
        StoredCore::new(1, "n1".into(), config.clone(), MemoryStore::new(), 10, 7).expect("starts");
    let epoch = first.epoch();
    let store = first.into_store();
    // Restarted on its own store: past every epoch of its last life (whose last dots may have
    // left before its store held them), by a random distance (an older copy of the store put
    // back holds an older lease), not anywhere.
    let again =
        StoredCore::new(1, "n1".into(), config.clone(), store.clone(), 20, 8).expect("starts");
    assert!(again.epoch() > epoch + (1 << 16) && again.epoch() - epoch <= (1 << 16) + (1 << 40));
    // Restarted on an empty store (disk lost): a fresh epoch, so no counter is ever reused (kv679).
    let wiped =
        StoredCore::new(1, "n1".into(), config.clone(), MemoryStore::new(), 30, 9).expect("starts");
    assert_ne!(wiped.epoch(), epoch);
    // With the seed of its first life too (a runtime given a fixed seed): the base depends on
    // when the node starts, so a later life does not hand out its first life's epochs again.
    // Before, the base came from the seed and the id alone.
    let same_seed =
        StoredCore::new(1, "n1".into(), config.clone(), MemoryStore::new(), 30, 7).expect("starts");
    assert_ne!(same_seed.epoch(), epoch);
    // Another node's store is refused with a clear error.
    let err = StoredCore::new(2, "n2".into(), config, store, 40, 9)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("belongs to node 1"), "{err}");
}

#[test]
fn a_tombstone_is_reaped_once_every_replica_holds_it_and_only_then() {
    let config = NodeConfig {
        tombstone_grace: Some(1_000),
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(4, config);
    c.advance(500);
    c.put(1, "a", "x", vec![]);
    c.put(1, "b", "y", vec![]);
    c.delete(1, "a");
    // One replica of "b" is unreachable when "b" is deleted, so it still holds the value and
    // "b" must not be reaped anywhere while that is so.
    let b_replica = c.primaries("b")[2];
    c.down.push(b_replica);
    c.delete(1, "b");
    c.advance(5_000);
    let holders = |c: &Cluster, key: &str| {
        c.nodes
            .values()
            .filter(|n| {
                dynamo_node::Store::get(n.store(), key.as_bytes())
                    .expect("store")
                    .is_some()
            })
            .count()
    };
    assert_eq!(
        holders(&c, "a"),
        0,
        "the tombstone of a was reaped everywhere"
    );
    assert!(
        holders(&c, "b") > 0,
        "b is kept while a replica is out of reach"
    );
    assert!(c.get(2, "a").0.is_empty() && c.get(2, "b").0.is_empty());
    // Once the replica is back, repair brings it the tombstone and then b is reaped too.
    c.down.clear();
    c.get(1, "b");
    c.advance(20_000);
    assert_eq!(
        holders(&c, "b"),
        0,
        "b reaped after every replica got the tombstone"
    );
    assert!(c.get(3, "b").0.is_empty(), "a reaped key stays deleted");
}

#[test]
fn a_put_reaches_all_n_replicas_even_when_w_is_met_by_the_coordinator_alone() {
    let config = NodeConfig {
        w: 1,
        r: 1,
        sync_interval: None,
        read_repair: false,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(5, config);
    c.advance(500);
    let key = "w1";
    let coordinator = c.primaries(key)[0];
    assert!(matches!(
        c.put(coordinator, key, "v", vec![]),
        ClientReply::Stored { .. }
    ));
    c.advance(100);
    for n in c.primaries(key) {
        assert_eq!(c.nodes[&n].store().len(), 1, "replica {n} holds the write");
    }
}

/// Section 4.8: what an operator sees in the log. A member that stops answering is reported
/// down by the failure detector, hints for it are recorded, and once it is back they are
/// reported delivered.
#[test]
fn failure_detection_and_handoff_are_reported_as_events() {
    use dynamo_node::NodeEvent;
    let mut c = Cluster::new(4, NodeConfig::default());
    c.advance(3_000);
    let drain = |c: &mut Cluster, id: NodeId| -> Vec<NodeEvent> {
        std::iter::from_fn(|| c.nodes.get_mut(&id).and_then(|n| n.poll_event())).collect()
    };
    let _ = drain(&mut c, 1);
    c.down.push(4);
    c.advance(30_000);
    let events = drain(&mut c, 1);
    assert!(
        events.contains(&NodeEvent::MemberDown { id: 4 }),
        "{events:?}"
    );
    for i in 0..20 {
        c.put(1, &format!("k{i}"), "v", vec![]);
    }
    c.down.clear();
    c.advance(30_000);
    let events: Vec<NodeEvent> = c
        .nodes
        .keys()
        .copied()
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|id| drain(&mut c, id))
        .collect();
    assert!(
        events.contains(&NodeEvent::MemberUp { id: 4 }),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, NodeEvent::HintsDelivered { node: 4, count } if *count > 0)),
        "{events:?}"
    );
}
