//! Defects found by trying the node from outside (issue 13), each pinned by a test that failed
//! before its fix: counters reused by a non-primary coordinator, values re-stamped by a stale
//! coordinator, a fallback's not-found counted toward R, an overflowing timeout.

use dynamo_node::{
    ClientError, ClientOptions, ClientReply, ClientRequest, MemoryStore, NodeConfig, NodeId,
    StoredCore,
};

use crate::Cluster;

fn stored(reply: &ClientReply) -> bool {
    matches!(reply, ClientReply::Stored { .. })
}

/// The full preference-list walk of `key` (primaries first), as node 1 sees the ring.
fn walk(c: &Cluster, key: &str) -> Vec<NodeId> {
    c.nodes[&1]
        .ring()
        .preference_list(key.as_bytes())
        .map(|r| *r.node)
        .collect()
}

/// Defect 1: a node that is not a primary coordinates a put after its forward to a primary
/// failed. It must not reuse a counter it already issued for the key (its local copy is empty),
/// or the replicas drop the new value while acknowledging it.
#[test]
fn a_non_primary_coordinator_whose_forward_failed_loses_nothing() {
    let mut c = Cluster::new(5, NodeConfig::default());
    c.advance(500);
    let key = "k";
    let order = walk(&c, key);
    let (p, x) = (order[0], order[4]);
    assert!(stored(&c.put(p, key, "a", vec![])));
    // P dies; nobody has noticed yet, so X's forward goes to P and fails.
    c.down.push(p);
    let (values, ctx) = c.get(x, key);
    assert_eq!(values, vec![b"a".to_vec()]);
    assert!(stored(&c.put(x, key, "b", ctx)));
    assert!(stored(&c.put(x, key, "x", vec![])), "a blind put");
    // P comes back; hints and anti-entropy settle.
    c.down.clear();
    c.advance(30_000);
    for n in 1..=5 {
        let (values, _) = c.get(n, key);
        assert_eq!(
            values,
            vec![b"b".to_vec(), b"x".to_vec()],
            "read at node {n}: the blind put x is concurrent with b and must survive"
        );
    }
}

/// Defect 2: a coordinator whose copy is stale (it missed a delete) must not bring the deleted
/// value back when it coordinates a blind put.
#[test]
fn a_stale_coordinator_does_not_resurrect_a_deleted_value() {
    let config = NodeConfig {
        sync_interval: None,
        read_repair: false,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(3, config);
    c.advance(300);
    let key = "doomed";
    let (a, b) = (1, 2);
    assert!(stored(&c.put(b, key, "v1", vec![])));
    let (_, ctx) = c.get(a, key);
    // B misses the delete (its messages are lost; nobody declared it down).
    c.down.push(b);
    let reply = c.request(
        a,
        ClientRequest::Delete {
            key: key.into(),
            context: ctx,
            options: ClientOptions::default(),
        },
    );
    assert!(stored(&reply), "{reply:?}");
    c.down.clear();
    // A blind put through the stale B.
    assert!(stored(&c.put(b, key, "v2", vec![])));
    for n in 1..=3 {
        assert_eq!(c.get(n, key).0, vec![b"v2".to_vec()], "read at node {n}");
    }
}

/// Defect 3: a fallback keeps a sloppy write as a hint; its answer to a read must include the
/// hinted versions, or an acknowledged write reads as absent.
#[test]
fn a_fallback_answers_reads_with_the_writes_it_holds_as_hints() {
    let mut c = Cluster::new(7, NodeConfig::default());
    c.advance(500);
    let key = "sloppy";
    let order = walk(&c, key);
    assert_eq!(order.len(), 7);
    // The three primaries are down and known to be: F1..F3 stand in for them.
    c.down.extend_from_slice(&order[..3]);
    c.advance(20_000);
    let g = order[6];
    assert!(stored(&c.put(g, key, "kept", vec![])));
    assert_eq!(c.get(g, key).0, vec![b"kept".to_vec()]);
}

/// Defect 5: a timeout of u64::MAX is no overflow. It is refused with what the limit is (a
/// request waiting that long would hold its coordinator for ever), and the longest timeout allowed
/// is served.
#[test]
fn a_huge_request_timeout_does_not_overflow() {
    let mut c = Cluster::new(3, NodeConfig::default());
    c.advance(300);
    let put = |timeout: u64| ClientRequest::Put {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        context: vec![],
        options: ClientOptions {
            timeout: Some(timeout),
            ..ClientOptions::default()
        },
        content_type: None,
    };
    let reply = c.request(1, put(u64::MAX));
    assert!(
        matches!(
            &reply,
            ClientReply::Failed(ClientError::LimitExceeded { what, limit, .. })
                if what == "timeout ms" && *limit == 60_000
        ),
        "{reply:?}"
    );
    let reply = c.request(1, put(dynamo_node::MAX_REQUEST_TIMEOUT));
    assert!(stored(&reply), "{reply:?}");
    let reply = c.request(
        2,
        ClientRequest::Get {
            key: b"k".to_vec(),
            options: ClientOptions {
                timeout: Some(dynamo_node::MAX_REQUEST_TIMEOUT),
                ..ClientOptions::default()
            },
        },
    );
    assert!(matches!(reply, ClientReply::Got { .. }), "{reply:?}");
}

/// Defect 4: a node on a buffered store may lose acknowledged writes of its own in a crash, and
/// with them the last counter it issued for a key. After a restart it must not count on from its
/// rolled-back copy, or its next dot equals one the other replicas hold and one value is dropped.
#[test]
fn a_restart_on_a_buffered_store_never_issues_a_dot_twice() {
    let mut c = Cluster::new(3, NodeConfig::default());
    let p: NodeId = 1;
    let config = c.nodes[&p].config().clone();
    let start = |store: MemoryStore, now: u64, seed: u64| {
        StoredCore::new(p, format!("n{p}"), config.clone(), store, now, seed).expect("starts")
    };
    c.nodes.insert(p, start(MemoryStore::buffered(), c.now, 11));
    c.advance(500);
    let key = "counted";
    assert!(stored(&c.put(p, key, "v0", vec![])));
    // What reached P's disk before the crash: v0 only.
    let disk = c.nodes[&p].store().clone();
    let epoch = c.nodes[&p].epoch();
    let (_, ctx) = c.get(p, key);
    assert!(stored(&c.put(p, key, "v1", ctx)));
    // Crash: P restarts on its older disk.
    c.nodes.insert(p, start(disk, c.now, 12));
    assert_ne!(
        c.nodes[&p].epoch(),
        epoch,
        "a buffered restart retires old epochs"
    );
    c.advance(500);
    assert!(stored(&c.put(p, key, "v2", vec![])), "a blind put");
    c.advance(10_000);
    for n in 1..=3 {
        assert_eq!(
            c.get(n, key).0,
            vec![b"v1".to_vec(), b"v2".to_vec()],
            "read at node {n}"
        );
    }
}

/// A store written before dotted version vectors is refused with a clear error, not read as
/// corrupt.
#[test]
fn a_store_of_the_per_version_clock_format_is_refused_clearly() {
    use dynamo_node::Store;
    let mut old = MemoryStore::new();
    old.put_meta("node-id", &1u64.to_be_bytes()).expect("meta");
    let config = NodeConfig {
        initial_members: vec![1],
        ..NodeConfig::default()
    };
    let err = StoredCore::new(1, "n1".into(), config, old, 10, 1)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("format 1"), "{err}");
}
