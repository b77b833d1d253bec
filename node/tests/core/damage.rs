//! A record damaged while the node runs: a checksumming store reports it as missing
//! ([`Store::get`] answers `Ok(None)`), and the node must get it back from the other replicas
//! even with read repair off: anti-entropy (paper section 4.7) has to see that the key is gone.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use dynamo_node::{
    ClientOptions, ClientReply, ClientRequest, Key, MemoryStore, NodeConfig, PeerMessage, Sibs,
    Store, StoreError,
};

use crate::Cluster;

/// A memory store whose `rotten` records read as missing, as the redb store's damaged records
/// do, until they are written again.
#[derive(Debug, Default)]
struct Rotting {
    inner: MemoryStore,
    rotten: BTreeSet<Key>,
    /// Keys whose reads fail (an I/O error).
    failing: BTreeSet<Key>,
    /// Keys whose next read fails, once each.
    fail_once: RefCell<BTreeSet<Key>>,
    /// Reads that found a rotten record.
    found: Cell<u64>,
}

impl Store for Rotting {
    fn get(&self, key: &[u8]) -> Result<Option<Sibs>, StoreError> {
        if self.failing.contains(key) || self.fail_once.borrow_mut().remove(key) {
            return Err(StoreError::Io("the disk failed".into()));
        }
        if self.rotten.contains(key) {
            self.found.set(self.found.get() + 1);
            return Ok(None);
        }
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], siblings: &Sibs) -> Result<(), StoreError> {
        self.rotten.remove(key);
        self.inner.put(key, siblings)
    }
    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.rotten.remove(key);
        self.inner.remove(key)
    }
    fn scan(&self, visit: &mut dyn FnMut(&[u8], &Sibs)) -> Result<(), StoreError> {
        self.inner.scan(&mut |k, s| {
            if !self.rotten.contains(k) {
                visit(k, s)
            }
        })
    }
    fn put_hint(&mut self, id: u64, record: &[u8]) -> Result<(), StoreError> {
        self.inner.put_hint(id, record)
    }
    fn remove_hint(&mut self, id: u64) -> Result<(), StoreError> {
        self.inner.remove_hint(id)
    }
    fn hints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.inner.hints()
    }
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_meta(name)
    }
    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.put_meta(name, value)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

/// Node `n`'s record of `key` goes bad (it reads as missing until written again).
fn rot(net: &mut Cluster<Rotting>, n: u64, key: &[u8]) {
    net.nodes
        .get_mut(&n)
        .expect("a node")
        .store_mut()
        .rotten
        .insert(key.to_vec());
}

/// Strict quorums with no anti-entropy, read repair or hints: a replica holds only the writes
/// that reached it.
fn by_writes_alone() -> NodeConfig {
    NodeConfig {
        sync_interval: None,
        read_repair: false,
        hinted_handoff: false,
        mode: dynamo_node::QuorumMode::Strict,
        ..NodeConfig::default()
    }
}

#[test]
fn a_record_damaged_while_running_is_refilled_by_anti_entropy() {
    let config = NodeConfig {
        sync_interval: Some(50),
        read_repair: false,
        hinted_handoff: false,
        mode: dynamo_node::QuorumMode::Strict,
        ..NodeConfig::default()
    };
    let mut net: Cluster<Rotting> = Cluster::with_stores(3, config);
    net.advance(300);
    let put = ClientRequest::Put {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        context: vec![],
        options: ClientOptions::default(),
        content_type: None,
    };
    assert!(matches!(net.request(1, put), ClientReply::Stored { .. }));
    net.advance(100);
    assert!(net.nodes[&2].store().get(b"k").unwrap().is_some());

    // Node 2's copy goes bad; a read through node 1 asks node 2 and finds out.
    rot(&mut net, 2, b"k");
    let get = ClientRequest::Get {
        key: b"k".to_vec(),
        options: ClientOptions {
            r: Some(3),
            ..ClientOptions::default()
        },
    };
    // Node 2 no longer counts toward R (it refuses the read rather than say "not found").
    match net.request(1, get.clone()) {
        ClientReply::Failed(_) => {}
        other => panic!("a read at R = 3 with a lost copy answered {other:?}"),
    }
    assert!(
        net.nodes[&2].store().found.get() > 0,
        "node 2 never read its copy"
    );

    // Read repair is off: only anti-entropy can bring it back, and only if node 2's Merkle tree
    // no longer claims the key.
    net.advance(5_000);
    let store = net.nodes[&2].store();
    assert!(
        !store.rotten.contains(b"k".as_slice()),
        "node 2's damaged copy was never replaced"
    );
    let values: Vec<Vec<u8>> = store
        .get(b"k")
        .unwrap()
        .expect("refilled")
        .live_values()
        .map(|o| o.bytes.clone())
        .collect();
    assert_eq!(values, vec![b"v".to_vec()]);
    // Refilled, it counts again.
    match net.request(1, get) {
        ClientReply::Got { values, .. } => assert_eq!(values, vec![b"v".to_vec()]),
        other => panic!("get failed: {other:?}"),
    }
}

/// A replica that lost its copy of a key (a damaged record, or a read the store failed) must
/// not answer "not found" as if it had never held it: with W = 2 acknowledged by nodes 1 and 2
/// and node 3 having missed the write, node 2 losing its copy let a read at R = 2 over nodes 2
/// and 3 answer that the key does not exist (review of issue 20's fifteenth session). Such a
/// replica refuses the read; anti-entropy refills it.
#[test]
fn a_replica_that_lost_its_copy_does_not_count_toward_r() {
    for failing in [false, true] {
        let mut net: Cluster<Rotting> = Cluster::with_stores(3, by_writes_alone());
        net.advance(300);
        // Node 3 misses the write.
        net.down.push(3);
        let put = ClientRequest::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            context: vec![],
            options: ClientOptions::default(),
            content_type: None,
        };
        assert!(matches!(net.request(1, put), ClientReply::Stored { .. }));
        net.down.clear();
        net.advance(100);
        assert!(net.nodes[&3].store().get(b"k").unwrap().is_none());
        // Node 2's copy goes bad (or its reads fail); node 1 is away.
        let store = net.nodes.get_mut(&2).unwrap().store_mut();
        if failing {
            store.failing.insert(b"k".to_vec());
        } else {
            store.rotten.insert(b"k".to_vec());
        }
        net.down.push(1);
        for round in 0..3 {
            if round == 2 {
                // Node 2 restarts: it still knows what it lost.
                let store = net.nodes.remove(&2).unwrap().into_store();
                let config = net.nodes[&3].config().clone();
                net.restart(2, config, store, 22);
                net.advance(1_000);
            }
            let get = ClientRequest::Get {
                key: b"k".to_vec(),
                options: ClientOptions::default(),
            };
            match net.request(2, get) {
                ClientReply::Got { values, .. } => {
                    panic!("read {round}: R = 2 answered {values:?} (failing reads: {failing})")
                }
                ClientReply::Failed(_) => {}
                other => panic!("unexpected reply {other:?}"),
            }
        }
    }
}

/// A replica that lost its copy refuses reads of it; read repair must still refill it, whether
/// the replica is asked by another coordinator or coordinates the get itself (review, eighteenth
/// session of issue 20: its refusal read as a failure, and read repair passes failures by).
#[test]
fn read_repair_refills_a_replica_that_lost_its_copy() {
    let config = NodeConfig {
        sync_interval: None,
        ..NodeConfig::default()
    };
    let mut net: Cluster<Rotting> = Cluster::with_stores(3, config);
    net.advance(300);
    for (key, at) in [("asked", 1), ("coordinating", 2)] {
        let stored = net.put(1, key, "v", vec![]);
        assert!(matches!(stored, ClientReply::Stored { .. }), "{stored:?}");
        net.advance(100);
        let store = net.nodes.get_mut(&2).unwrap().store_mut();
        store.rotten.insert(key.as_bytes().to_vec());
        let (values, _) = net.get(at, key);
        assert_eq!(values, vec![b"v".to_vec()], "{key}");
        net.advance(100);
        let store = net.nodes[&2].store();
        assert!(
            !store.rotten.contains(key.as_bytes()) && store.get(key.as_bytes()).unwrap().is_some(),
            "read repair through node {at} did not refill node 2's lost copy of {key}"
        );
    }
}

/// Review, eighteenth session of issue 20: a node out of the ring hands each partition to every
/// primary, one transfer each; when the store failed a batch read of one of them (it waits for a
/// retry at the next tick) and another finished first, the node dropped the partition, and the
/// retry then sent nothing past its checkpoint: the node counted itself handed over while a new
/// owner lacked the keys. The partition is dropped only once no transfer of it runs or waits.
#[test]
fn a_transfer_waiting_for_a_retry_keeps_its_partition() {
    // Anti-entropy off: the ranges move by ownership transfer alone.
    let config = NodeConfig {
        sync_interval: None,
        ..NodeConfig::default()
    };
    let mut net: Cluster<Rotting> = Cluster::with_stores(4, config);
    net.advance(500);
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        let stored = net.put(1, key, "v", vec![]);
        assert!(matches!(stored, ClientReply::Stored { .. }), "{stored:?}");
    }
    net.advance(1_000);
    // The first key (in the order transfers read them) of each partition node 4 replicates
    // fails its next read: the first transfer of the partition to read it waits for a retry.
    let ring = net.nodes[&1].ring().clone();
    let mut first: std::collections::BTreeMap<usize, Key> = std::collections::BTreeMap::new();
    for key in &keys {
        let key = key.as_bytes().to_vec();
        if !ring.preference_list(&key).primaries().any(|&n| n == 4) {
            continue;
        }
        let p = ring.range_index(ring.position(&key));
        let slot = first.entry(p).or_insert_with(|| key.clone());
        if key < *slot {
            *slot = key;
        }
    }
    assert!(first.len() > 1);
    *net.nodes
        .get_mut(&4)
        .unwrap()
        .store_mut()
        .fail_once
        .borrow_mut() = first.values().cloned().collect();

    let now = net.now;
    net.nodes.get_mut(&4).unwrap().leave(now);
    net.settle();
    net.advance(20_000);
    let ring = net.nodes[&1].ring().clone();
    assert!(!ring.contains(&4), "the cluster removed the leaver");
    assert!(
        net.nodes[&4].store().fail_once.borrow().is_empty(),
        "every failing read happened"
    );
    for key in &keys {
        for &n in ring.preference_list(key.as_bytes()).primaries() {
            assert!(
                net.nodes[&n].store().get(key.as_bytes()).unwrap().is_some(),
                "{key} missing on its primary {n} after node 4 handed its ranges over"
            );
        }
    }
    assert!(
        net.nodes[&4].store().inner.is_empty(),
        "the leaver dropped what it handed over, retries included"
    );
}

/// Review, thirty-third session of issue 20: a node handing a partition over said the hand-over
/// was done although its store had lost a key of it (a damaged record, skipped by the transfer),
/// so the new owner stopped awaiting the partition and answered "not found" for that key, counted
/// toward R. With W = 2 acknowledged by the leaving node and one other, and the third replica
/// having missed the write, a read at R = 2 over the new owner and that replica said the key did
/// not exist. A node that lost a key of a partition does not say its hand-over is done: the new
/// owner awaits the partition until anti-entropy shows it whole.
#[test]
fn a_hand_over_by_a_node_that_lost_a_key_of_it_is_not_done() {
    let mut net: Cluster<Rotting> = Cluster::with_stores(4, by_writes_alone());
    net.advance(500);
    let key = (0..)
        .map(|i| format!("key-{i}"))
        .find(|k| net.primaries(k).contains(&4))
        .expect("a key node 4 replicates");
    let others: Vec<u64> = net
        .primaries(&key)
        .into_iter()
        .filter(|&n| n != 4)
        .collect();
    let (acked, missed) = (others[0], others[1]);
    let new_owner = (1..=3).find(|n| !others.contains(n)).expect("a new owner");
    // The third replica misses the write: node 4 and one other acknowledge it.
    net.down.push(missed);
    let stored = net.put(acked, &key, "v", vec![]);
    assert!(matches!(stored, ClientReply::Stored { .. }), "{stored:?}");
    net.down.clear();
    net.advance(100);
    // Node 4's copy goes bad, and node 4 leaves: its partitions go to the new owner.
    rot(&mut net, 4, key.as_bytes());
    net.commit(1, vec![], vec![4]).expect("the leave");
    net.advance(10_000);
    assert!(!net.nodes[&1].ring().contains(&4), "node 4 left");
    // The replica that acknowledged the write is away.
    net.down.push(acked);
    let get = ClientRequest::Get {
        key: key.as_bytes().to_vec(),
        options: ClientOptions::default(),
    };
    match net.request(new_owner, get) {
        ClientReply::Got { values, .. } if values.is_empty() => {
            panic!("R = 2 over the new owner and the replica that missed it: not found")
        }
        _ => {}
    }
}

/// With the last (review of the change): with no other replica of the partition (N = 1), no
/// copy of the lost key is left to wait for; the new owner was told nothing and refused every
/// read of the partition until the next ring change. The hand-over is done as before.
#[test]
fn a_hand_over_with_a_lost_key_and_no_other_replica_is_done() {
    let config = NodeConfig {
        n: 1,
        r: 1,
        w: 1,
        sync_interval: Some(100),
        hinted_handoff: false,
        ..NodeConfig::default()
    };
    let mut net: Cluster<Rotting> = Cluster::with_stores(2, config);
    net.advance(500);
    let ring = net.nodes[&1].ring().clone();
    let partition = |k: &str| ring.range_index(ring.position(k.as_bytes()));
    let keys: Vec<String> = (0..400).map(|i| format!("key-{i}")).collect();
    let (lost, kept) = keys
        .iter()
        .filter(|k| net.primaries(k) == vec![2])
        .find_map(|k| {
            keys.iter()
                .find(|j| *j != k && partition(j) == partition(k))
                .map(|j| (k.clone(), j.clone()))
        })
        .expect("two keys of one partition node 2 owns");
    for key in [&lost, &kept] {
        let stored = net.put(1, key, "v", vec![]);
        assert!(matches!(stored, ClientReply::Stored { .. }), "{stored:?}");
    }
    net.advance(100);
    rot(&mut net, 2, lost.as_bytes());
    net.commit(1, vec![], vec![2]).expect("the leave");
    net.advance(20_000);
    assert!(!net.nodes[&1].ring().contains(&2), "node 2 left");
    let get = ClientRequest::Get {
        key: kept.as_bytes().to_vec(),
        options: ClientOptions::default(),
    };
    match net.request(1, get) {
        ClientReply::Got { values, .. } => assert_eq!(values, vec![b"v".to_vec()]),
        other => panic!("the partition handed over is still refused: {other:?}"),
    }
}

/// A blind put (no context) to a key whose record a replica lost, returning the values a
/// strict get at R = 2 through that replica sees once the replica that kept the older write is
/// away, and after it is back. The older write was acknowledged by the damaged replica and the
/// one now away; the put by the damaged replica and the third.
fn blind_put_over_a_lost_copy(config: NodeConfig) -> (ClientReply, Cluster<Rotting>, String) {
    let mut net: Cluster<Rotting> = Cluster::with_stores(3, config);
    net.advance(300);
    let key = "k".to_string();
    // Node 3 misses the first write: nodes 1 and 2 acknowledge it.
    net.down.push(3);
    let first = net.put(1, &key, "first", vec![]);
    assert!(matches!(first, ClientReply::Stored { .. }), "{first:?}");
    net.down.clear();
    net.advance(100);
    // Node 2's copy goes bad; node 1 is away; a blind put reaches nodes 2 and 3.
    rot(&mut net, 2, key.as_bytes());
    net.down.push(1);
    let second = net.put(3, &key, "second", vec![]);
    assert!(matches!(second, ClientReply::Stored { .. }), "{second:?}");
    let get = ClientRequest::Get {
        key: key.as_bytes().to_vec(),
        options: ClientOptions::default(),
    };
    let reply = net.request(2, get);
    (reply, net, key)
}

/// Panics if `reply` is an answer without the first write of [`blind_put_over_a_lost_copy`].
fn sees_the_first_write(reply: &ClientReply, what: &str) {
    if let ClientReply::Got { values, .. } = reply {
        assert!(
            values.contains(&b"first".to_vec()),
            "{what}: R = 2 over the damaged replica and the one that missed the first write \
             answered {values:?}"
        );
    }
}

/// Both writes of [`blind_put_over_a_lost_copy`], read through node 2 once node 1 is back.
fn both_writes_once_back(net: &mut Cluster<Rotting>, key: &str) {
    net.down.clear();
    let (values, _) = net.get(2, key);
    assert_eq!(values, vec![b"first".to_vec(), b"second".to_vec()]);
}

/// Thirty-fourth session of issue 20 (left alone in the thirty-third): a key whose record a
/// replica lost stopped counting as lost at any write, a client's blind put included, although
/// that put carries only its own version: the replica then answered reads with it alone, counted
/// toward R, and a read over it and the replica that missed the first write said the first,
/// acknowledged write was not there. Only a peer's copy (anti-entropy, read repair, a transfer)
/// makes a lost key readable again.
#[test]
fn a_blind_put_to_a_lost_copy_does_not_make_it_readable_again() {
    let (reply, mut net, key) = blind_put_over_a_lost_copy(by_writes_alone());
    sees_the_first_write(&reply, "the get");
    // Back, node 1 answers for the first write; node 2 still refuses the read.
    both_writes_once_back(&mut net, &key);
}

/// With the last (review of the fix): read repair after a get that heard only the replica that
/// missed the first write (the other away) ended the lost copy from that one replica's answer,
/// and the next get through the damaged replica answered without the first write. A lost copy
/// is repaired only from R other replicas' answers.
#[test]
fn read_repair_from_one_replica_does_not_end_a_lost_copy() {
    let config = NodeConfig {
        read_repair: true,
        ..by_writes_alone()
    };
    let (reply, mut net, key) = blind_put_over_a_lost_copy(config);
    for round in 0..2 {
        let reply = if round == 0 {
            reply.clone()
        } else {
            net.advance(2_000);
            let get = ClientRequest::Get {
                key: key.as_bytes().to_vec(),
                options: ClientOptions::default(),
            };
            net.request(2, get)
        };
        sees_the_first_write(&reply, &format!("get {round}"));
    }
    both_writes_once_back(&mut net, &key);
    // Repaired from both other replicas, node 2 answers again.
    net.advance(1_000);
    let strict_all = ClientRequest::Get {
        key: key.as_bytes().to_vec(),
        options: ClientOptions {
            r: Some(3),
            ..ClientOptions::default()
        },
    };
    match net.request(2, strict_all) {
        ClientReply::Got { values, .. } => assert_eq!(values.len(), 2, "{values:?}"),
        other => panic!("node 2 still refuses the key: {other:?}"),
    }
}

/// With the last: anti-entropy gives the damaged replica its peers' copies, and once it has
/// heard from both (one of them holds the first write, the other does not) it answers reads of
/// the key again, the first write among them; and a key whose copies all became equal (a put
/// with the read's context reached every replica) is readable again too, though no exchange
/// runs for it.
#[test]
fn a_lost_copy_is_readable_again_once_anti_entropy_heard_every_other_replica() {
    let config = NodeConfig {
        sync_interval: Some(50),
        ..by_writes_alone()
    };
    let (_, mut net, key) = blind_put_over_a_lost_copy(config);
    net.down.clear();
    net.advance(5_000);
    let strict_all = |key: &str| ClientRequest::Get {
        key: key.as_bytes().to_vec(),
        options: ClientOptions {
            r: Some(3),
            ..ClientOptions::default()
        },
    };
    match net.request(2, strict_all(&key)) {
        ClientReply::Got { mut values, .. } => {
            values.sort();
            assert_eq!(values, vec![b"first".to_vec(), b"second".to_vec()]);
        }
        other => panic!("node 2 still refuses the key after anti-entropy: {other:?}"),
    }
    // A second key: node 2 loses it, then a put with the read's context reaches every replica.
    let (_, context) = net.get(1, &key);
    rot(&mut net, 2, key.as_bytes());
    let stored = net.put(1, &key, "third", context);
    assert!(matches!(stored, ClientReply::Stored { .. }), "{stored:?}");
    net.advance(60_000);
    match net.request(2, strict_all(&key)) {
        ClientReply::Got { values, .. } => assert_eq!(values, vec![b"third".to_vec()]),
        other => panic!("node 2 refuses a key whose copies are all equal: {other:?}"),
    }
}

/// Review of the fix: with no other replica to give a copy back (N = 1), a lost key was refused
/// for good once client writes no longer ended its loss: there a write ends it, as before. A
/// key every replica lost is readable again once anti-entropy finds their trees equal.
#[test]
fn a_lost_copy_no_peer_can_refill_is_ended_by_a_write() {
    let alone = NodeConfig {
        n: 1,
        r: 1,
        w: 1,
        ..by_writes_alone()
    };
    let synced = NodeConfig {
        sync_interval: Some(50),
        ..by_writes_alone()
    };
    for (nodes, config) in [(1, alone), (3, synced)] {
        let mut net: Cluster<Rotting> = Cluster::with_stores(nodes, config);
        net.advance(300);
        let first = net.put(1, "k", "first", vec![]);
        assert!(matches!(first, ClientReply::Stored { .. }), "{first:?}");
        net.advance(100);
        for n in 1..=nodes {
            let store = net.nodes.get_mut(&n).unwrap().store_mut();
            store.rotten.insert(b"k".to_vec());
        }
        // Found lost by the write's own merge, then written.
        let second = net.put(1, "k", "second", vec![]);
        assert!(matches!(second, ClientReply::Stored { .. }), "{second:?}");
        net.advance(60_000);
        let (values, _) = net.get(1, "k");
        assert_eq!(values, vec![b"second".to_vec()], "{nodes} node(s)");
    }
}

/// Thirty-fourth session of issue 20 (the simulator, made to rot records on running nodes,
/// found it): a record that rots while its node runs and that no client reads was never found
/// (the node's Merkle tree still claimed it, so anti-entropy saw nothing to repair), and the key
/// had one copy fewer than N until a read or a restart. Scrubbing reads stored keys back a few
/// at each anti-entropy round: the rotten one is found lost and refilled.
#[test]
fn a_record_that_rots_unread_is_found_and_refilled() {
    let config = NodeConfig {
        sync_interval: Some(50),
        ..by_writes_alone()
    };
    let mut net: Cluster<Rotting> = Cluster::with_stores(3, config);
    net.advance(300);
    for i in 0..200 {
        let stored = net.put(1, &format!("key-{i}"), "v", vec![]);
        assert!(matches!(stored, ClientReply::Stored { .. }), "{stored:?}");
    }
    net.advance(500);
    rot(&mut net, 2, b"key-7");
    net.advance(20_000);
    let store = net.nodes[&2].store();
    assert!(
        !store.rotten.contains(b"key-7".as_slice()),
        "node 2's rotten record was never found and replaced"
    );
}

/// Review of the fix: an unacknowledged write ended a lost copy whatever sent it, but besides
/// read repair such writes carry one write or hint passed on (a node that left passing a late
/// write on, expired or evicted hints, a put handed off). Read repair names its target in the
/// write now (as a strict request's writes do: older nodes take it as before), and only such a
/// write ends the loss.
#[test]
fn only_read_repair_among_unacknowledged_writes_ends_a_lost_copy() {
    let mut net: Cluster<Rotting> = Cluster::with_stores(3, by_writes_alone());
    net.advance(300);
    let first = net.put(1, "k", "first", vec![]);
    assert!(matches!(first, ClientReply::Stored { .. }), "{first:?}");
    net.advance(100);
    let copy = net.nodes[&1]
        .store()
        .get(b"k")
        .unwrap()
        .expect("node 1's copy");
    let store = net.nodes.get_mut(&2).unwrap().store_mut();
    store.rotten.insert(b"k".to_vec());
    let all = ClientRequest::Get {
        key: b"k".to_vec(),
        options: ClientOptions {
            r: Some(3),
            ..ClientOptions::default()
        },
    };
    // Node 2 finds its copy lost.
    assert!(matches!(
        net.request(2, all.clone()),
        ClientReply::Failed(_)
    ));
    for (hint, readable) in [(None, false), (Some(1), false), (Some(2), true)] {
        let now = net.now;
        net.nodes.get_mut(&2).unwrap().handle_message(
            now,
            1,
            PeerMessage::Write {
                req: None,
                key: b"k".to_vec(),
                siblings: copy.clone(),
                hint,
            },
        );
        net.settle();
        let reply = net.request(1, all.clone());
        assert_eq!(
            matches!(reply, ClientReply::Got { .. }),
            readable,
            "after a write naming {hint:?}: {reply:?}"
        );
    }
}
