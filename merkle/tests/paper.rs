//! Dynamo section 4.7, "Handling permanent failures: replica synchronization".

use dynamo_merkle::{DiffKind, KeyDiff, Message, TreeConfig};

use crate::harness::{expected_diff, flipped, key, sync, Replica};

fn shape() -> TreeConfig {
    TreeConfig::new(4, 4).unwrap_or_default()
}

fn replica(keys: u32) -> Replica {
    let mut r = Replica::new(shape());
    for i in 0..keys {
        r.put(&key(i), b"v1");
    }
    r
}

/// "If the hash values of the root of two trees are equal, then the values of the leaf nodes in
/// the tree are equal and the nodes require no synchronization."
#[test]
fn section_4_7_equal_roots_need_no_synchronization() {
    let a = replica(500);
    let b = replica(500);
    assert_eq!(a.tree.root(), b.tree.root());
    let out = sync(&a, &b, false);
    assert_eq!(out.a, Ok(vec![]));
    assert_eq!(out.b, Ok(vec![]));
    assert_eq!(out.stats_a.round_trips(), 1);
    assert_eq!(out.stats_a.messages(), 2);
    assert!(matches!(
        out.transcript.as_slice(),
        [
            (true, Message::Hello { .. }),
            (false, Message::Differences { .. })
        ]
    ));
}

/// "If not, it implies that the values of some replicas are different. In such cases, the nodes
/// may exchange the hash values of children and the process continues until it reaches the leaves
/// of the trees, at which point the hosts can identify the keys that are 'out of sync'."
#[test]
fn section_4_7_walks_down_to_the_keys_out_of_sync() {
    let a = replica(500);
    let mut b = a.clone();
    b.put(&key(3), b"v2");
    b.delete(&key(4));
    b.put(&key(900), b"v1");
    let out = sync(&a, &b, false);
    let expected = vec![
        KeyDiff {
            key: key(3),
            kind: DiffKind::Different,
        },
        KeyDiff {
            key: key(4),
            kind: DiffKind::MissingRemotely,
        },
        KeyDiff {
            key: key(900),
            kind: DiffKind::MissingLocally,
        },
    ];
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(out.a, Ok(expected_sorted.clone()));
    assert_eq!(out.a, Ok(expected_diff(&a, &b)));
    assert_eq!(out.b, Ok(flipped(&expected_sorted)));
    // Root, then one Hashes message per level (4), then entries and the result.
    assert_eq!(out.stats_a.messages(), 1 + 4 + 2);
    assert_eq!(out.stats_a.round_trips(), out.stats_b.round_trips());
}

/// "Merkle trees minimize the amount of data that needs to be transferred for synchronization":
/// cost grows with the differences, not the keys.
#[test]
fn section_4_7_cost_follows_differences_not_size() {
    let config = TreeConfig::new(4, 6).unwrap_or_default();
    let mut small = Replica::new(config);
    for i in 0..200 {
        small.put(&key(i), b"v1");
    }
    let mut large = Replica::new(config);
    for i in 0..20_000 {
        large.put(&key(i), b"v1");
    }
    let cost = |base: &Replica| {
        let mut other = base.clone();
        other.put(&key(5), b"v2");
        let out = sync(base, &other, false);
        assert_eq!(out.a.as_ref().map(Vec::len), Ok(1));
        out.stats_a
    };
    let (s, l) = (cost(&small), cost(&large));
    assert_eq!(s.messages(), l.messages());
    assert!(l.tree_bytes <= s.tree_bytes + 64, "{l:?} vs {s:?}");
    // One differing leaf path: 4 hashes per level below the root, plus the root.
    assert_eq!(l.hashes, 1 + 4 * 6);
    // Naive exchange would move every entry; the session moved one segment's worth.
    assert!(l.bytes() < 2_000, "{l:?}");
}

/// Each replica keeps one tree per key range: trees of disjoint ranges merge into the tree of the
/// union, and a tree of a new range built from a stream equals the incremental one.
#[test]
fn trees_of_two_ranges_merge() {
    let mut left = Replica::new(shape());
    let mut right = Replica::new(shape());
    let mut both = Replica::new(shape());
    for i in 0..300 {
        let target = if i % 2 == 0 { &mut left } else { &mut right };
        target.put(&key(i), b"v");
        both.put(&key(i), b"v");
    }
    let mut merged = left.tree.clone();
    assert!(merged.merge(&right.tree).is_ok());
    assert_eq!(merged, both.tree);
}
