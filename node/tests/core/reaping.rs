//! Tombstone reaping (`tombstone_grace`): a tombstone goes only when no copy outside the key's
//! primaries can bring an older version back.

use dynamo_node::{
    ClientOptions, ClientReply, ClientRequest, MemoryStore, NodeConfig, NodeId, PeerMessage, Sibs,
    Store, StoredCore,
};
use dynamo_ring::Ring;
use dynamo_vclock::VClock;

use crate::Cluster;

/// Eight partitions and a one-second grace period: tombstones reaped within a test's span.
fn quick_reaping() -> NodeConfig {
    NodeConfig {
        tombstone_grace: Some(1_000),
        partitions: 8,
        ..NodeConfig::default()
    }
}

/// Twenty keys, each written "old" through node 1, then 2 s for them to spread.
fn twenty_old_keys(c: &mut Cluster) -> Vec<String> {
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        assert!(matches!(
            c.put(1, k, "old", vec![]),
            ClientReply::Stored { .. }
        ));
    }
    c.advance(2_000);
    keys
}

/// What `node` stores for `key`: `None` if nothing, else whether a live value is among it.
fn stored(c: &Cluster, node: NodeId, key: &str) -> Option<bool> {
    Store::get(c.nodes[&node].store(), key.as_bytes())
        .expect("store")
        .map(|s| s.live_values().next().is_some())
}

/// 40 keys written on 4 nodes, then node 5 joins (its ownership transfers lost if
/// `drop_transfers`). Returns the ring after, and a key with a node (its former owner) that
/// replicated it before and does not any more.
fn joined(config: NodeConfig, drop_transfers: bool) -> (Cluster, Ring<NodeId>, String, NodeId) {
    let mut c = Cluster::new(4, config);
    c.advance(500);
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        assert!(matches!(
            c.put(1, k, "old", vec![]),
            ClientReply::Stored { .. }
        ));
    }
    let before = c.nodes[&1].ring().clone();
    c.drop_transfers = drop_transfers;
    let config = c.nodes[&1].config().clone();
    let newcomer =
        StoredCore::new(5, "n5".into(), config, MemoryStore::new(), c.now, 5).expect("starts");
    c.nodes.insert(5, newcomer);
    c.advance(10_000);
    let after = c.nodes[&1].ring().clone();
    assert!(after.contains(&5));
    let (key, former) = keys
        .iter()
        .find_map(|k| {
            let now: Vec<NodeId> = crate::primaries_in(&after, k);
            before
                .preference_list(k.as_bytes())
                .primaries()
                .find(|n| !now.contains(n))
                .map(|&n| (k.clone(), n))
        })
        .expect("the join moved some key");
    (c, after, key, former)
}

/// A former owner's transfer of a range stalls (its batches are lost) while the new primaries
/// take a delete of a key it still holds a value of. The tombstone must outlive that copy: reaped
/// before the transfer lands, the transfer would bring the deleted value back on the primaries.
#[test]
fn a_tombstone_is_not_reaped_while_a_former_owner_still_hands_the_range_over() {
    let config = NodeConfig {
        sync_interval: Some(100),
        partitions: 8,
        tombstone_grace: Some(2_000),
        ..NodeConfig::default()
    };
    let (mut c, after, key, former) = joined(config, true);
    assert_eq!(
        stored(&c, former, &key),
        Some(true),
        "{key} on node {former}"
    );

    // Deleted on the new primaries (anti-entropy brought them the value).
    let (values, context) = c.get(1, &key);
    assert_eq!(values, vec![b"old".to_vec()]);
    let reply = c.request(
        1,
        ClientRequest::Delete {
            key: key.clone().into_bytes(),
            context,
            options: Default::default(),
        },
    );
    assert!(matches!(reply, ClientReply::Stored { .. }), "{reply:?}");
    // Well past the grace period, the transfer still stalled.
    c.advance(10_000);
    assert_eq!(
        stored(&c, former, &key),
        Some(true),
        "the former owner still holds it"
    );

    // The transfer gets through at last.
    c.drop_transfers = false;
    c.advance(30_000);
    assert!(c.get(1, &key).0.is_empty(), "{key} came back");
    for id in c.nodes.keys().copied().collect::<Vec<_>>() {
        assert_ne!(stored(&c, id, &key), Some(true), "{key} live on node {id}");
    }
    // Then, with nothing left to hand over, the tombstone goes.
    for &n in after.preference_list(key.as_bytes()).primaries() {
        assert_eq!(stored(&c, n, &key), None, "tombstone of {key} on node {n}");
    }
}

/// A write that reaches a node for a range it no longer replicates (from a coordinator still on
/// the older ring, after the node handed the range over) goes on to the primaries: kept in the
/// node's store, it would never reach them (a lost write) and would sit outside them with no
/// bound (a reaped tombstone's value back).
#[test]
fn a_late_write_to_a_former_owner_reaches_the_primaries() {
    let config = NodeConfig {
        sync_interval: None,
        partitions: 8,
        ..NodeConfig::default()
    };
    let (mut c, after, key, former) = joined(config, false);
    assert_eq!(stored(&c, former, &key), None, "{key} handed over");
    let mut late = Sibs::default();
    late.put(
        &VClock::new(),
        (99, 1),
        c.now,
        dynamo_vclock::Value::Live(b"late".to_vec().into()),
    );
    let from = *after
        .preference_list(key.as_bytes())
        .primaries()
        .next()
        .expect("a primary");
    let now = c.now;
    c.nodes.get_mut(&former).expect("node").handle_message(
        now,
        from,
        PeerMessage::Write {
            req: None,
            key: key.clone().into_bytes(),
            siblings: late,
            hint: None,
        },
    );
    c.settle();
    c.advance(10_000);
    for &n in after.preference_list(key.as_bytes()).primaries() {
        let held = Store::get(c.nodes[&n].store(), key.as_bytes())
            .expect("store")
            .expect("held");
        assert!(
            held.live_values().any(|v| v == b"late"),
            "the late write on node {n}"
        );
    }
    assert_eq!(
        stored(&c, former, &key),
        None,
        "{key} left on node {former}"
    );
}

/// A put acknowledged only by fallbacks (every primary cut off) waits in their hints for as long
/// as the partition lasts, past the grace period: hints that expired with the grace period (as they
/// once did, so that none could outlive a reaped tombstone) lost the write. The reaper waits for
/// the members that hold hints instead.
#[test]
fn a_write_only_fallbacks_took_outlives_a_partition_longer_than_the_grace_period() {
    let config = NodeConfig {
        sync_interval: Some(100),
        ..quick_reaping()
    };
    let mut c = Cluster::new(5, config);
    c.advance(500);
    let ring = c.nodes[&1].ring().clone();
    let (key, primaries) = (0..100)
        .map(|i| format!("key-{i}"))
        .map(|k| {
            let p: Vec<NodeId> = crate::primaries_in(&ring, &k);
            (k, p)
        })
        .find(|(_, p)| !p.contains(&1))
        .expect("a key node 1 does not replicate");
    c.down = primaries.clone();
    // Long enough for the failure detectors to call the primaries down.
    c.advance(5_000);
    let reply = c.put(1, &key, "kept", vec![]);
    let ClientReply::Stored { replicas, .. } = reply else {
        panic!("{reply:?}");
    };
    assert!(
        replicas.iter().all(|r| !primaries.contains(r)),
        "only fallbacks took it: {replicas:?}"
    );
    // The partition outlasts the grace period many times over.
    c.advance(20_000);
    c.down.clear();
    c.advance(20_000);
    for &p in &primaries {
        assert_eq!(stored(&c, p, &key), Some(true), "{key} on primary {p}");
    }
    assert_eq!(c.get(1, &key).0, vec![b"kept".to_vec()]);
}

/// A hint for a node that a join then takes off the key's primaries (review of issue 20's
/// fifteenth session). The reaper looked for hints meant for the key's current primaries only:
/// the tombstone went while a fallback still held the old value for the former primary, and
/// that value, delivered there, was handed over to the primaries as live again. Reaping now
/// waits while any member holds hints.
#[test]
fn a_hint_for_a_former_primary_does_not_bring_a_reaped_value_back() {
    let config = quick_reaping();
    let mut c = Cluster::new(4, config);
    c.advance(500);
    // Node 4 is down while the keys are written: fallbacks keep hints for it.
    c.down.push(4);
    c.advance(5_000);
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        assert!(matches!(
            c.put(1, k, "old", vec![]),
            ClientReply::Stored { .. }
        ));
    }
    // Node 4 is back, but no hint reaches it.
    c.lost_hints_to.push(4);
    c.down.clear();
    c.advance(3_000);
    let before = c.nodes[&1].ring().clone();
    let config = c.nodes[&1].config().clone();
    let newcomer =
        StoredCore::new(5, "n5".into(), config, MemoryStore::new(), c.now, 5).expect("starts");
    c.nodes.insert(5, newcomer);
    c.advance(10_000);
    let after = c.nodes[&1].ring().clone();
    assert!(after.contains(&5));
    let key = keys
        .iter()
        .find(|k| {
            before
                .preference_list(k.as_bytes())
                .primaries()
                .any(|&n| n == 4)
                && !after
                    .preference_list(k.as_bytes())
                    .primaries()
                    .any(|&n| n == 4)
        })
        .expect("the join took a key of node 4's")
        .clone();
    assert_eq!(c.get(1, &key).0, vec![b"old".to_vec()]);
    c.delete(1, &key);
    c.advance(10_000);
    // The hints get through.
    c.lost_hints_to.clear();
    c.advance(60_000);
    assert!(c.get(1, &key).0.is_empty(), "{key} came back");
    for node in c.nodes.values() {
        assert_eq!(node.hints_pending(), 0);
        // Re-routed hints went to the primaries: none counts as dropped.
        assert_eq!(node.status().counters.hints_dropped, 0);
    }
}

/// A leaving node streams a partition with a persisted checkpoint; a write below the checkpoint
/// reaches it meanwhile (it marks the pass dirty, in memory), and the node restarts. Before, the
/// restart resumed from the checkpoint, never sent the write, and dropped the partition once the
/// pass completed: the write's only copy was gone (review of issue 20's fifteenth session). A
/// write to a partition being streamed now clears the pass's persisted checkpoint.
#[test]
fn a_write_below_a_transfer_checkpoint_survives_a_restart_of_the_sender() {
    let config = NodeConfig {
        sync_interval: None,
        partitions: 8,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(4, config);
    c.advance(500);
    // Values of 300 KiB: a transfer batch (at most 1 MiB) holds three.
    let big = "x".repeat(300 << 10);
    for i in 0..64 {
        assert!(matches!(
            c.put(1 + i % 4, &format!("key-{i:02}"), &big, vec![]),
            ClientReply::Stored { .. }
        ));
    }
    let before = c.nodes[&1].ring().clone();
    let now = c.now;
    c.nodes.get_mut(&4).expect("node 4").leave(now);
    // Deliver everything until every transfer of node 4 has its first batch acknowledged (and
    // none its last); each transfer's messages are lost after.
    let mut seen = std::collections::BTreeSet::new();
    let mut acked = std::collections::BTreeSet::new();
    // Transfers whose first batch is their last: never acknowledged here, they restart whole.
    let mut whole = std::collections::BTreeSet::new();
    for _ in 0..5_000 {
        let queued = c.round(|_, _, msg| {
            let lost = match msg {
                PeerMessage::Transfer(batch) => {
                    if seen.insert(batch.transfer) && batch.last {
                        whole.insert(batch.transfer);
                    }
                    batch.last || acked.contains(&batch.transfer)
                }
                PeerMessage::TransferAck(ack) => !acked.insert(ack.transfer),
                PeerMessage::TransferDone { .. } => true,
                _ => false,
            };
            !lost
        });
        if !queued
            && !acked.is_empty()
            && seen.iter().all(|t| acked.contains(t) || whole.contains(t))
        {
            break;
        }
    }
    assert!(!acked.is_empty(), "transfers had a batch acknowledged");
    let after = c.nodes[&1].ring().clone();
    assert!(!after.contains(&4), "node 4 is out");
    // Writes node 4 alone takes, of keys that sort first, one in each partition node 4 held,
    // through a coordinator still on the old ring.
    let mut late_keys: Vec<String> = Vec::new();
    let mut partitions = std::collections::BTreeSet::new();
    for k in (0..10_000).map(|i| format!("a-{i}")) {
        let p = before.range_index(before.position(k.as_bytes()));
        if before
            .preference_list(k.as_bytes())
            .primaries()
            .any(|&n| n == 4)
            && partitions.insert(p)
        {
            late_keys.push(k);
        }
    }
    for key in &late_keys {
        let mut late = Sibs::default();
        late.put(
            &VClock::new(),
            (99, 1),
            c.now,
            dynamo_vclock::Value::Live(b"late".to_vec().into()),
        );
        let now = c.now;
        c.nodes.get_mut(&4).expect("node 4").handle_message(
            now,
            1,
            PeerMessage::Write {
                req: None,
                key: key.clone().into_bytes(),
                siblings: late,
                hint: None,
            },
        );
    }
    // Node 4 restarts on its store; the transfers get through from then on.
    let disk = c.nodes.remove(&4).expect("node 4").into_store();
    let config = c.nodes[&1].config().clone();
    c.restart(4, config, disk, 44);
    c.settle();
    c.advance(60_000);
    assert_eq!(c.nodes[&4].transfers_running(), 0, "node 4 handed over");
    for key in &late_keys {
        let held = after
            .preference_list(key.as_bytes())
            .primaries()
            .filter(|&&n| {
                Store::get(c.nodes[&n].store(), key.as_bytes())
                    .expect("store")
                    .is_some_and(|s| s.live_values().any(|v| v == b"late"))
            })
            .count();
        assert!(
            held > 0,
            "{key}'s write, taken by node 4 alone, reached no primary"
        );
    }
}

/// A node is removed from the ring while a fallback's full hint log holds the only copy of a
/// write meant for it (review of issue 20's fifteenth session). Before, the fallback recorded
/// hints for the key's new primaries before it dropped the old hint: the full log refused them,
/// and the old hint went anyway, with the write. The old hints go first now, and a primary whose
/// hint the log still cannot take gets the versions at once.
#[test]
fn a_full_hint_log_keeps_the_only_copy_of_a_removed_nodes_write() {
    let config = NodeConfig {
        partitions: 8,
        sync_interval: None,
        max_hint_bytes: 2_500,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(5, config);
    c.advance(2_000);
    let ring = c.nodes[&1].ring().clone();
    // A key node 1 does not replicate, now or once one of its primaries is removed.
    let (key, primaries) = (0..1_000)
        .map(|i| format!("key-{i}"))
        .find_map(|k| {
            let p: Vec<NodeId> = crate::primaries_in(&ring, &k);
            let stays_out = !p.contains(&1)
                && p.iter().all(|gone| {
                    let next = ring.leave(gone).expect("leave").ring;
                    let out = !next
                        .preference_list(k.as_bytes())
                        .primaries()
                        .any(|&n| n == 1);
                    out
                });
            stays_out.then_some((k, p))
        })
        .expect("such a key");
    // Everybody but node 1 is down: node 1 takes the write alone, as a hint (W = 1).
    c.down.extend([2, 3, 4, 5]);
    c.advance(10_000);
    let w1 = |key: &str| ClientRequest::Put {
        key: key.into(),
        value: vec![7; 1_000],
        context: Vec::new(),
        options: ClientOptions {
            w: Some(1),
            ..ClientOptions::default()
        },
        content_type: None,
    };
    assert!(matches!(c.request(1, w1(&key)), ClientReply::Stored { .. }));
    let intended = c.nodes[&1]
        .status()
        .members
        .iter()
        .find(|m| m.hints_pending > 0)
        .map(|m| m.id)
        .expect("a hint");
    assert!(primaries.contains(&intended));
    // Another write fills the log.
    assert!(matches!(
        c.request(1, w1("filler")),
        ClientReply::Stored { .. }
    ));
    c.commit(1, Vec::new(), vec![intended])
        .expect("node 1 commits");
    c.down.retain(|&n| n == intended);
    c.advance(30_000);
    let (values, _) = c.get(1, &key);
    assert!(
        values == vec![vec![7; 1_000]],
        "{key}'s write is gone ({} values)",
        values.len()
    );
}

/// An anti-entropy exchange that left a replica before the key's tombstone got there arrives
/// after every replica reaped the tombstone (review of issue 20's fifteenth session). Nothing
/// fenced it: the old value was stored again and spread to every replica, the delete undone for
/// good. A replica keeps a reaped tombstone's context for a while and drops versions it covers.
#[test]
fn a_late_exchange_does_not_bring_a_reaped_value_back() {
    let config = quick_reaping();
    let mut c = Cluster::new(3, config);
    c.advance(500);
    assert!(matches!(
        c.put(1, "k", "old", vec![]),
        ClientReply::Stored { .. }
    ));
    c.advance(500);
    let old = Store::get(c.nodes[&2].store(), b"k")
        .expect("store")
        .expect("held");
    c.delete(1, "k");
    c.advance(10_000);
    for n in 1..=3 {
        assert_eq!(stored(&c, n, "k"), None, "node {n} reaped the tombstone");
    }
    // The exchange node 3 sent before the delete reached it.
    let ring = c.nodes[&1].ring().clone();
    let partition = ring.range_index(ring.position(b"k")) as u32;
    let now = c.now;
    c.nodes.get_mut(&2).expect("node 2").handle_message(
        now,
        3,
        PeerMessage::Exchange {
            partition,
            entries: vec![(b"k".to_vec(), old)],
            want: Vec::new(),
        },
    );
    c.advance(5_000);
    assert!(c.get(1, "k").0.is_empty(), "the deleted value came back");
}

/// With hinted handoff off, a write that only a fallback took is stored there (review of issue
/// 20's fifteenth session). Before, it stayed there, outside the key's primaries, until the next
/// ring change or restart: no read at the primaries saw it, and reaping stopped in its partition.
/// The fallback hands what it holds of a partition it does not replicate to the primaries.
#[test]
fn without_hinted_handoff_a_fallbacks_copy_reaches_the_primaries() {
    let config = NodeConfig {
        partitions: 8,
        sync_interval: None,
        hinted_handoff: false,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(4, config);
    c.advance(1_000);
    let ring = c.nodes[&1].ring().clone();
    let (key, primaries) = (0..1_000)
        .map(|i| format!("key-{i}"))
        .find_map(|k| {
            let p: Vec<NodeId> = crate::primaries_in(&ring, &k);
            (!p.contains(&1)).then_some((k, p))
        })
        .expect("a key node 1 does not replicate");
    c.down.extend(primaries.iter().copied());
    c.advance(10_000);
    let put = ClientRequest::Put {
        key: key.as_str().into(),
        value: b"only-on-a-fallback".to_vec(),
        context: Vec::new(),
        options: ClientOptions {
            w: Some(1),
            ..ClientOptions::default()
        },
        content_type: None,
    };
    assert!(matches!(c.request(1, put), ClientReply::Stored { .. }));
    c.down.clear();
    c.advance(20_000);
    let held = primaries
        .iter()
        .filter(|&&n| stored(&c, n, &key) == Some(true))
        .count();
    assert_eq!(held, 3, "{key} reached {held} of its primaries");
}

/// A replica that missed the Reap keeps its tombstone; the others, fenced, drop it from every
/// exchange (review of the fence). Before, nothing told the lagging replica, and the exchange
/// repeated every sync interval for as long as the fence lasted. A replica that drops a fenced
/// version answers its sender with the Reap, and every replica lets the key go.
#[test]
fn a_replica_that_missed_the_reap_reaps_at_its_next_exchange() {
    let config = NodeConfig {
        sync_interval: Some(100),
        ..quick_reaping()
    };
    let mut c = Cluster::new(3, config);
    c.advance(500);
    assert!(matches!(
        c.put(1, "k", "old", vec![]),
        ClientReply::Stored { .. }
    ));
    c.delete(1, "k");
    // Every Reap to node 3 is lost on the way.
    for _ in 0..2_000 {
        c.round(|_, to, msg| !(to == 3 && matches!(msg, PeerMessage::Reap { .. })));
        if stored(&c, 1, "k").is_none() && stored(&c, 2, "k").is_none() {
            break;
        }
    }
    assert_eq!(stored(&c, 1, "k"), None, "node 1 reaped");
    assert_eq!(stored(&c, 3, "k"), Some(false), "node 3 missed the Reap");
    c.advance(5_000);
    for n in 1..=3 {
        assert_eq!(stored(&c, n, "k"), None, "node {n} still holds k");
    }
}

/// Review of operator procedures, twenty-eighth session of issue 20: `dynamo commit --leave` of
/// a dead node took it out of the ring, but gossip kept it as a member that is down, and the
/// reaper waits for every member that is down (it may hold hints nobody knows of) and for every
/// member's hand-over entry of the current ring: reaping stopped for good, against the
/// documented promise that a node so removed no longer holds it up.
#[test]
fn a_dead_node_the_operator_removed_no_longer_holds_up_reaping() {
    let mut c = Cluster::new(4, quick_reaping());
    c.advance(500);
    c.down.push(4);
    c.advance(20_000);
    c.commit(1, Vec::new(), vec![4]).expect("node 1 commits");
    c.advance(10_000);
    assert!(!c.nodes[&1].ring().contains(&4));
    assert!(matches!(
        c.put(1, "k", "old", vec![]),
        ClientReply::Stored { .. }
    ));
    c.delete(1, "k");
    c.advance(30_000);
    for n in 1..=3 {
        assert_eq!(stored(&c, n, "k"), None, "node {n} still holds k");
    }
}

/// Review of the last fix: a node taken out while it only seemed dead (cut off by a partition,
/// or paused) is not waited for by the reaper, so when it comes back it must not hand its old
/// copies over: they would bring back values whose deletes were reaped meanwhile. A node taken
/// out while down is marked so in the ring, and such a node hands nothing over (as Riak's
/// force-remove: its copies are the others' to rebuild).
#[test]
fn a_node_taken_out_while_cut_off_brings_no_reaped_value_back() {
    let mut c = Cluster::new(4, quick_reaping());
    c.advance(500);
    let keys = twenty_old_keys(&mut c);
    // Node 4 is cut off (it keeps its copies), taken out, and every key deleted and reaped.
    c.down.push(4);
    c.advance(20_000);
    c.commit(1, Vec::new(), vec![4]).expect("node 1 commits");
    c.advance(10_000);
    for k in &keys {
        c.delete(1, k);
    }
    c.advance(30_000);
    for k in &keys {
        for n in 1..=3 {
            assert_eq!(stored(&c, n, k), None, "node {n} still holds {k}");
        }
    }
    // It comes back, once the replicas' fences of the reaped tombstones are gone.
    c.advance(660_000);
    c.down.clear();
    c.advance(60_000);
    for k in &keys {
        assert!(c.get(1, k).0.is_empty(), "{k} is back");
    }
    // It is done (nothing to hand over), and what it would still send is refused.
    assert!(c.nodes[&4].status().handed_over);
    let old = Store::get(c.nodes[&4].store(), keys[0].as_bytes())
        .expect("store")
        .expect("node 4 kept its copy");
    let now = c.now;
    for n in 1..=3 {
        c.nodes.get_mut(&n).expect("node").handle_message(
            now,
            4,
            PeerMessage::Write {
                req: None,
                key: keys[0].as_bytes().to_vec(),
                siblings: old.clone(),
                hint: None,
            },
        );
    }
    c.advance(1_000);
    assert!(
        c.get(1, &keys[0]).0.is_empty(),
        "a late write brought it back"
    );
}

/// Review of the last fix: a node forced out while a receiver had not acknowledged the end of
/// its hand-over said that end again every 2 s, which the receiver now refuses: it never counted
/// as handed over (and never said it left). A forced node forgets the ends it owes too.
#[test]
fn a_node_forced_out_with_a_hand_over_end_unacknowledged_is_done() {
    let mut c = Cluster::new(4, quick_reaping());
    c.advance(500);
    for i in 0..40 {
        assert!(matches!(
            c.put(1, &format!("key-{i}"), "old", vec![]),
            ClientReply::Stored { .. }
        ));
    }
    let config = c.nodes[&1].config().clone();
    let newcomer =
        StoredCore::new(5, "n5".into(), config, MemoryStore::new(), c.now, 5).expect("starts");
    c.nodes.insert(5, newcomer);
    // Node 5 joins; every acknowledgement of a hand-over's end to node 4 is lost.
    for _ in 0..3_000 {
        c.round(|from, to, msg| {
            !(from == 5 && to == 4 && matches!(msg, PeerMessage::TransferDoneAck { .. }))
        });
    }
    assert!(c.nodes[&1].ring().contains(&5));
    c.down.push(4);
    c.advance(20_000);
    c.commit(1, Vec::new(), vec![4]).expect("node 1 commits");
    c.advance(10_000);
    c.down.clear();
    c.advance(30_000);
    assert!(c.nodes[&4].status().handed_over, "node 4 is not done");
}

/// Three nodes reaping quickly, and node 4 started to join at the operator's commit (staged),
/// heard by all.
fn with_a_staged_joiner() -> Cluster {
    let mut c = Cluster::new(3, quick_reaping());
    c.advance(500);
    let config = NodeConfig {
        wait_for_commit: true,
        ..c.nodes[&1].config().clone()
    };
    let staged =
        StoredCore::new(4, "n4".into(), config, MemoryStore::new(), c.now, 4).expect("starts");
    c.nodes.insert(4, staged);
    c.advance(3_000);
    c
}

/// The claimant a plan forgetting node 4 names.
fn claimant_of_forgetting_4(c: &Cluster) -> NodeId {
    c.nodes[&1]
        .plan_change(&dynamo_node::ChangeRequest {
            joins: vec![],
            leaves: vec![4],
        })
        .expect("a plan")
        .claimant
        .expect("a claimant")
}

/// Review, thirty-third session of issue 20: a node known to gossip but not in the ring (a
/// staged joiner whose join was never committed, or a node that left the ring and died before it
/// said it had left) that goes down for good held tombstone reaping up on every node (it may hold
/// hints nobody knows of), and no command could remove it: a leave of it was refused as "not a
/// ring member". A commit may now name it among the leaves: the ring forgets it (taken out while
/// down), and reaping goes on.
#[test]
fn a_dead_node_outside_the_ring_can_be_forgotten_and_reaping_goes_on() {
    let mut c = with_a_staged_joiner();
    assert!(
        !c.nodes[&1].ring().contains(&4),
        "a staged joiner waits for the commit"
    );
    // The operator drops the idea: node 4 stops for good.
    c.nodes.remove(&4);
    c.down.push(4);
    c.advance(30_000);
    let stored_ = c.put(1, "gone", "v", vec![]);
    assert!(matches!(stored_, ClientReply::Stored { .. }), "{stored_:?}");
    c.delete(1, "gone");
    c.advance(10_000);
    assert_eq!(
        stored(&c, 1, "gone"),
        Some(false),
        "held up while node 4 may hold hints"
    );
    // Forgotten by a commit, it holds nothing up.
    let claimant = claimant_of_forgetting_4(&c);
    let plan = c
        .commit(claimant, vec![], vec![4])
        .expect("node 4 forgotten");
    assert_eq!(
        plan.forced,
        vec![4],
        "the plan says node 4 goes without handing over"
    );
    c.advance(10_000);
    for n in 1..=3 {
        assert_eq!(
            stored(&c, n, "gone"),
            None,
            "node {n} still holds the tombstone"
        );
    }
}

/// With the last (review of the change): a node forgotten while it was only cut off may join
/// when it comes back; the commit did not count it among the ring's departed members (whose
/// joins are refused until their disk is wiped).
#[test]
fn a_forgotten_node_that_comes_back_may_join() {
    let mut c = with_a_staged_joiner();
    c.down.push(4);
    c.advance(30_000);
    let claimant = claimant_of_forgetting_4(&c);
    c.commit(claimant, vec![], vec![4])
        .expect("node 4 forgotten");
    c.advance(3_000);
    c.down.clear();
    c.advance(5_000);
    c.commit(claimant, vec![4], vec![])
        .expect("node 4, back, joins");
    c.advance(5_000);
    for n in 1..=4 {
        assert!(
            c.nodes[&n].ring().contains(&4),
            "node {n}'s ring holds node 4"
        );
    }
}

/// Review, thirty-fourth session of issue 20: a node that left the ring (not forced: it was up
/// and leaving) and died before its hand-overs got through was forgotten by gossip after
/// `remove_after`; then nothing held reaping up for it (not a ring member, gossip no longer knew
/// it), the deletes of keys it still held were reaped, and when it came back its hand-overs
/// brought the deleted values back. A leaver gossip forgets before it said it left holds reaping
/// up until the claimant forces it out of the ring state (forced: it hands nothing over when it
/// comes back). The claimant remembers such nodes across a restart (review of the fix: it forgot
/// them, forced nothing, and the others' hold ran out); and one that never knew them (its list
/// of former members gone: it lost its disk, or joined later) forces out those the others
/// publish as vanished (without them the others held reaping up for good).
#[test]
fn a_leaver_gossip_forgot_while_down_brings_no_reaped_value_back() {
    for claimant in [Claimant::Stays, Claimant::Restarts, Claimant::NeverKnew] {
        leaver_forgotten_while_down(claimant);
    }
}

/// What becomes of the claimant in [`leaver_forgotten_while_down`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Claimant {
    Stays,
    Restarts,
    /// Restarts without its list of former members.
    NeverKnew,
}

fn leaver_forgotten_while_down(claimant: Claimant) {
    let config = NodeConfig {
        remove_after: Some(5_000),
        ..quick_reaping()
    };
    let mut c = Cluster::new(4, config.clone());
    c.advance(500);
    let keys = twenty_old_keys(&mut c);
    // Node 4 leaves; its hand-overs are lost, and it dies before they get through.
    c.drop_transfers = true;
    c.commit(1, Vec::new(), vec![4]).expect("node 1 commits");
    c.advance(3_000);
    assert!(!c.nodes[&1].ring().contains(&4));
    assert!(!c.nodes[&4].status().handed_over, "node 4 still hands over");
    c.down.push(4);
    c.drop_transfers = false;
    if claimant != Claimant::Stays {
        c.advance(1_000);
        let mut disk = c.nodes.remove(&1).expect("node 1").into_store();
        if claimant == Claimant::NeverKnew {
            // An empty msgpack list.
            disk.put_meta("former-members", &[0x90]).expect("memory");
        }
        c.restart(1, config.clone(), disk, 11);
    }
    c.advance(30_000);
    for k in &keys {
        c.delete(1, k);
    }
    c.advance(30_000);
    // Forgotten by the ring too, it holds reaping up no more.
    for k in &keys {
        for n in 1..=3 {
            assert_eq!(
                stored(&c, n, k),
                None,
                "node {n} still holds {k} (claimant: {claimant:?})"
            );
        }
    }
    // It comes back, once the replicas' fences of the reaped tombstones are gone.
    c.advance(660_000);
    c.down.clear();
    c.advance(60_000);
    for k in &keys {
        assert!(
            c.get(1, k).0.is_empty(),
            "{k} is back (claimant: {claimant:?})"
        );
    }
}
