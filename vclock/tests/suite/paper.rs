//! Section 4.4 of the Dynamo paper: the D1..D5 history of Figure 3, replayed on sibling sets held
//! by three nodes.

use dynamo_vclock::{Causality, Siblings, VClock, Value};

const SX: &str = "Sx";
const SY: &str = "Sy";
const SZ: &str = "Sz";

fn clock(entries: &[(&'static str, u64)]) -> Vec<(&'static str, u64)> {
    entries.to_vec()
}

fn counters(c: &VClock<&'static str>) -> Vec<(&'static str, u64)> {
    c.entries().map(|e| (e.actor, e.counter)).collect()
}

#[test]
fn figure_3_history() {
    // Every node starts with an empty replica of the key.
    let mut sx: Siblings<&str, &str> = Siblings::new();

    // A client writes a new object: Sx handles it, D1 ([Sx,1]).
    let d1 = sx.put(&VClock::new(), SX, 1, Value::Live("D1"));
    assert_eq!(counters(&d1), clock(&[(SX, 1)]));

    // The client updates it, again through Sx: D2 ([Sx,2]) descends D1 and overwrites it.
    let d2 = sx.put(&sx.context(), SX, 2, Value::Live("D2"));
    assert_eq!(counters(&d2), clock(&[(SX, 2)]));
    assert_eq!(d2.compare(&d1), Causality::After);
    assert_eq!(sx.len(), 1);

    // Sy and Sz receive D2 by replication.
    let mut sy = Siblings::new();
    let mut sz = Siblings::new();
    assert!(sy.merge(&sx));
    assert!(sz.merge(&sx));

    // One client updates through Sy: D3 ([Sx,2],[Sy,1]).
    let ctx = sy.context();
    let d3 = sy.put(&ctx, SY, 3, Value::Live("D3"));
    assert_eq!(counters(&d3), clock(&[(SX, 2), (SY, 1)]));

    // Another client read D2 and updates through Sz: D4 ([Sx,2],[Sz,1]).
    let ctx = sz.context();
    let d4 = sz.put(&ctx, SZ, 4, Value::Live("D4"));
    assert_eq!(counters(&d4), clock(&[(SX, 2), (SZ, 1)]));

    // D3 and D4 are concurrent: a node that sees both keeps both (Sx, by replication).
    assert_eq!(d3.compare(&d4), Causality::Concurrent);
    assert!(sx.merge(&sy));
    assert!(sx.merge(&sz));
    assert_eq!(sx.len(), 2);
    let mut values: Vec<_> = sx.live_values().copied().collect();
    values.sort_unstable();
    assert_eq!(values, ["D3", "D4"]);

    // A client reads both with the context ([Sx,2],[Sy,1],[Sz,1]), reconciles, and writes
    // through Sx: D5 ([Sx,3],[Sy,1],[Sz,1]) supersedes both.
    let ctx = sx.context();
    assert_eq!(counters(&ctx), clock(&[(SX, 2), (SY, 1), (SZ, 1)]));
    let d5 = sx.put(&ctx, SX, 5, Value::Live("D5"));
    assert_eq!(counters(&d5), clock(&[(SX, 3), (SY, 1), (SZ, 1)]));
    assert_eq!(sx.live_values().collect::<Vec<_>>(), [&"D5"]);

    // Replication of D5 makes Sy and Sz converge; their old versions are dropped.
    assert!(sy.merge(&sx));
    assert!(sz.merge(&sx));
    assert_eq!(sy, sx);
    assert_eq!(sz, sx);
    assert!(sy.covers(&sz) && sz.covers(&sy));

    // An old replica of D3 arriving late changes nothing.
    let mut stale = Siblings::new();
    stale.insert(dynamo_vclock::Version::live(d3, "D3"));
    assert!(!sx.merge(&stale));
    assert!(sx.covers(&stale));
    assert!(!stale.covers(&sx));
}

#[test]
fn delete_is_a_tombstone_version() {
    let mut s: Siblings<&str, &str> = Siblings::new();
    s.put(&VClock::new(), SX, 1, Value::Live("v"));
    let mut stale = s.clone();
    s.put(&s.context(), SX, 2, Value::Tombstone);
    assert!(s.is_tombstone_only());
    assert_eq!(s.live_values().count(), 0);
    // The stale live replica cannot resurrect the key.
    assert!(!s.merge(&stale));
    assert!(s.is_tombstone_only());
    stale.merge(&s);
    assert!(stale.is_tombstone_only());
    assert!(!Siblings::<&str, &str>::new().is_tombstone_only());
}
