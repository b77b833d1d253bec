//! The ring as versioned cluster state (issue 14): changes move about the minimum, and a node
//! restarted with a stale configuration adopts the ring the cluster moved on to.

use std::collections::BTreeSet;

use dynamo_node::{MemoryStore, NodeConfig, NodeCore, NodeId};
use dynamo_ring::{NodeSpec, Ring};

use crate::Cluster;

/// Replica copies that must move from `old` to `new`: per partition, the replicas of `new` that
/// were not replicas in `old`.
fn copies_moved(old: &Ring<NodeId>, new: &Ring<NodeId>) -> usize {
    (0..old.range_count())
        .map(|p| {
            let before: BTreeSet<NodeId> = old
                .preference_list_for_range(p)
                .map(|l| l.primaries().copied().collect())
                .unwrap_or_default();
            new.preference_list_for_range(p)
                .map(|l| l.primaries().filter(|n| !before.contains(n)).count())
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn a_join_moves_what_the_ring_crates_join_moves_and_every_node_agrees() {
    let mut c = Cluster::new(8, NodeConfig::default());
    c.advance(2_000);
    let before = c.nodes[&1].ring().clone();
    let minimal = before.join(NodeSpec::new(9)).expect("join").ring;
    let config = c.nodes[&1].config().clone();
    let newcomer =
        NodeCore::new(9, "n9".into(), config, MemoryStore::new(), c.now, 9).expect("starts");
    c.nodes.insert(9, newcomer);
    c.advance(10_000);
    let after = c.nodes[&1].ring().clone();
    assert!(after.contains(&9));
    for (id, node) in &c.nodes {
        assert_eq!(node.ring_version(), c.nodes[&1].ring_version(), "node {id}");
        assert_eq!(node.ring(), &after, "node {id}");
    }
    let moved = copies_moved(&before, &after);
    let least = copies_moved(&before, &minimal);
    let rebuilt = Ring::new(*before.config(), (1..=9).map(NodeSpec::new)).expect("ring");
    println!(
        "8 -> 9 nodes: {moved} replica copies moved; Ring::join moves {least}; a rebuilt ring {}",
        copies_moved(&before, &rebuilt)
    );
    assert!(moved * 10 <= least * 12, "{moved} moved, {least} at least");
}

#[test]
fn a_node_restarted_with_a_stale_member_list_adopts_the_clusters_ring() {
    let mut c = Cluster::new(4, NodeConfig::default());
    c.advance(2_000);
    // Node 1 dies; its disk survives.
    let dead = c.nodes.remove(&1).expect("node 1");
    let disk = dead.into_store();
    c.down.push(1);
    // Node 2 leaves while node 1 is down.
    c.nodes.get_mut(&2).expect("node 2").leave(c.now);
    c.settle();
    c.advance(20_000);
    c.nodes.remove(&2);
    c.down.push(2);
    let ring = c.nodes[&3].ring().clone();
    assert!(!ring.contains(&2));
    // Node 1 restarts with the configuration it had (initial members 1-4).
    c.down.retain(|&n| n != 1);
    let config = c.nodes[&3].config().clone();
    let restarted = NodeCore::new(1, "n1".into(), config, disk, c.now, 11).expect("restarts");
    assert!(
        restarted.ring().contains(&2),
        "it starts from the ring it had"
    );
    c.nodes.insert(1, restarted);
    // Two gossip rounds (100 ms each here).
    c.advance(200);
    for (id, node) in &c.nodes {
        assert_eq!(node.ring(), &ring, "node {id}");
        assert_eq!(node.ring_version(), c.nodes[&3].ring_version(), "node {id}");
    }
}

/// Joins node 5 to a 4-node cluster holding `keys` keys of `value_len` bytes; returns the cluster.
fn grown(keys: usize, value_len: usize, drop_transfers: bool) -> Cluster {
    let config = NodeConfig {
        sync_interval: None,
        partitions: 8,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(4, config);
    c.advance(500);
    let value = "v".repeat(value_len);
    for i in 0..keys {
        c.put(1, &format!("key-{i}"), &value, vec![]);
    }
    c.drop_transfers = drop_transfers;
    let config = c.nodes[&1].config().clone();
    let newcomer =
        NodeCore::new(5, "n5".into(), config, MemoryStore::new(), c.now, 5).expect("starts");
    c.nodes.insert(5, newcomer);
    c.advance(10_000);
    assert!(c.nodes[&1].ring().contains(&5));
    c
}

/// A new replica answers no read of a range that has not arrived: with R = 1 through it, the
/// value still comes back (from an old replica), not "not found".
#[test]
fn a_joining_node_does_not_count_toward_r_before_its_ranges_arrive() {
    let mut c = grown(60, 8, true);
    let ring = c.nodes[&5].ring().clone();
    let mut checked = 0;
    for i in 0..60 {
        let key = format!("key-{i}");
        if !ring
            .preference_list(key.as_bytes())
            .primaries()
            .any(|&n| n == 5)
        {
            continue;
        }
        let reply = c.request(
            5,
            dynamo_node::ClientRequest::Get {
                key: key.clone().into_bytes(),
                options: dynamo_node::RequestOptions {
                    r: Some(1),
                    ..Default::default()
                },
            },
        );
        match reply {
            dynamo_node::ClientReply::Got { values, .. } => {
                assert_eq!(
                    values.len(),
                    1,
                    "{key}: an acknowledged write read as absent"
                )
            }
            other => panic!("{key}: {other:?}"),
        }
        checked += 1;
    }
    assert!(checked > 0);
}

/// Transfer batches are bounded by bytes: with 64 KiB values, no batch carries much more than
/// the session's 1 MiB budget (512 such entries would be 32 MiB, past any frame limit).
#[test]
fn transfer_batches_are_bounded_by_bytes() {
    // 8 partitions: about 25 keys of 64 KiB each, 1.6 MiB, more than one batch.
    let c = grown(200, 64 << 10, false);
    assert!(c.largest_transfer > 0);
    assert!(
        c.largest_transfer <= (1 << 20) + (70 << 10),
        "a batch of {} bytes",
        c.largest_transfer
    );
    assert!(!c.nodes[&5].store().is_empty());
}
