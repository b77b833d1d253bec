//! The Dynamo paper's cases (sections 4.2, 4.3, 6.2) and the typed errors.

use dynamo_ring::{
    HashFunction, KeyRange, NodeSpec, Position, Ring, RingConfig, RingError, Role, Strategy,
};

fn strategy3(q: u32, n: usize) -> RingConfig {
    RingConfig {
        hash: HashFunction::Md5,
        strategy: Strategy::EqualPartitions { partitions: q },
        replicas: n,
    }
}

#[test]
fn positions_are_pinned_md5_and_sha1() {
    // Known digests: a change of hashing would move every key of every deployed ring.
    assert_eq!(
        HashFunction::Md5.position(b""),
        Position(0xd41d8cd98f00b204e9800998ecf8427e)
    );
    assert_eq!(
        HashFunction::Md5.position(b"abc"),
        Position(0x900150983cd24fb0d6963f7d28e17f72)
    );
    assert_eq!(
        HashFunction::Sha1.position(b"abc"),
        Position(0xa9993e364706816aba3e25717850c26c)
    );
}

#[test]
fn random_tokens_are_pinned_for_a_seed() {
    let config = RingConfig {
        hash: HashFunction::Md5,
        strategy: Strategy::RandomTokens {
            tokens_per_node: 2,
            seed: 7,
        },
        replicas: 2,
    };
    let ring = Ring::new(config, ["a", "b"].map(NodeSpec::new)).expect("ring");
    let tokens: Vec<(u128, &str)> = ring.tokens().map(|(p, n)| (p.0, *n)).collect();
    assert_eq!(tokens, PINNED_TOKENS);
}

const PINNED_TOKENS: [(u128, &str); 4] = include!("pinned_tokens.in");

#[test]
fn section_4_3_preference_list_walks_clockwise_over_distinct_nodes() {
    // Q = 8 partitions and 8 nodes: one partition each, so the walk visits each node once.
    let ring = Ring::new(strategy3(8, 3), (0..8u32).map(NodeSpec::new)).expect("ring");
    for p in 0..8usize {
        let owners: Vec<u32> = (0..3).map(|d| owner_of(&ring, (p + d) % 8)).collect();
        let list: Vec<_> = ring
            .preference_list_for_range(p)
            .expect("range")
            .map(|r| (*r.node, r.role))
            .collect();
        assert_eq!(list.len(), 8);
        let primaries: Vec<u32> = list[..3].iter().map(|(n, _)| *n).collect();
        assert_eq!(primaries, owners, "partition {p}");
        assert!(list[3..].iter().all(|(_, role)| *role == Role::Fallback));
    }
}

fn owner_of(ring: &Ring<u32>, range: usize) -> u32 {
    *ring.tokens().nth(range).expect("token").1
}

#[test]
fn a_key_belongs_to_the_partition_that_contains_its_position() {
    let ring = Ring::new(strategy3(4, 1), (0..4u32).map(NodeSpec::new)).expect("ring");
    let quarter = 1u128 << 126;
    for p in 0..4u128 {
        let first = Position(p * quarter);
        let last = Position(p * quarter + (quarter - 1));
        assert_eq!(ring.range_index(first), p as usize);
        assert_eq!(ring.range_index(last), p as usize);
        let range = ring.range(p as usize).expect("range");
        assert!(range.contains(first) && range.contains(last));
    }
    assert_eq!(
        ring.range(0),
        Some(KeyRange::new(Position(u128::MAX), Position(quarter - 1)))
    );
}

#[test]
fn section_6_2_strategy_3_gives_each_node_q_over_s_partitions() {
    let ring = Ring::new(strategy3(64, 3), (0..8u32).map(NodeSpec::new)).expect("ring");
    let ownership = ring.ownership();
    for (_, share) in &ownership.primary {
        assert!((share - 1.0 / 8.0).abs() < 1e-9);
    }
    assert!((ownership.imbalance() - 1.0).abs() < 1e-9);
    let replicated: f64 = ownership.replica.iter().map(|(_, s)| s).sum();
    assert!((replicated - 3.0).abs() < 1e-9);
}

#[test]
fn weights_give_proportional_shares() {
    let nodes = vec![
        NodeSpec::new("small"),
        NodeSpec::new("big").with_weight(2),
        NodeSpec::new("other"),
    ];
    let ring = Ring::new(strategy3(64, 2), nodes).expect("ring");
    let share = |id: &str| {
        ring.ownership()
            .primary
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, s)| *s)
            .expect("member")
    };
    assert!((share("big") - 2.0 * share("small")).abs() <= 1.0 / 64.0 + 1e-9);
}

#[test]
fn zones_come_first_in_the_primaries() {
    // Nine nodes in three zones; N = 3 primaries must cover all three zones for every range.
    let nodes = (0..9u32).map(|i| NodeSpec::new(i).with_zone(format!("zone-{}", i / 3)));
    let ring = Ring::new(strategy3(64, 3), nodes).expect("ring");
    for r in 0..ring.range_count() {
        let mut zones: Vec<u32> = ring
            .preference_list_for_range(r)
            .expect("range")
            .primaries()
            .map(|n| n / 3)
            .collect();
        zones.sort_unstable();
        assert_eq!(zones, vec![0, 1, 2], "range {r}");
    }
}

#[test]
fn zones_fewer_than_n_still_give_n_distinct_nodes() {
    let nodes = (0..6u32).map(|i| NodeSpec::new(i).with_zone(format!("zone-{}", i % 2)));
    let ring = Ring::new(strategy3(32, 3), nodes).expect("ring");
    for r in 0..ring.range_count() {
        let list: Vec<u32> = ring
            .preference_list_for_range(r)
            .expect("range")
            .primaries()
            .copied()
            .collect();
        assert_eq!(list.len(), 3);
        let zones: std::collections::BTreeSet<u32> = list.iter().map(|n| n % 2).collect();
        assert_eq!(zones.len(), 2, "both zones among the primaries");
    }
}

#[test]
fn fewer_nodes_than_n_gives_every_node_as_primary() {
    let ring = Ring::new(strategy3(16, 3), ["x", "y"].map(NodeSpec::new)).expect("ring");
    let list: Vec<_> = ring.preference_list(b"k").collect();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|r| r.is_primary()));
}

#[test]
fn invalid_configurations_are_typed_errors() {
    let nodes = || ["a", "b"].map(NodeSpec::new);
    assert_eq!(
        Ring::new(strategy3(48, 3), nodes()).err(),
        Some(RingError::PartitionsNotPowerOfTwo(48))
    );
    assert_eq!(
        Ring::new(strategy3(0, 3), nodes()).err(),
        Some(RingError::PartitionsNotPowerOfTwo(0))
    );
    assert_eq!(
        Ring::<&str>::new(strategy3(64, 3), []).err(),
        Some(RingError::NoNodes)
    );
    assert_eq!(
        Ring::new(strategy3(64, 0), nodes()).err(),
        Some(RingError::ZeroReplicas)
    );
    assert!(matches!(
        Ring::new(strategy3(64, 17), nodes()),
        Err(RingError::TooManyReplicas { requested: 17, .. })
    ));
    let zero_tokens = RingConfig {
        strategy: Strategy::RandomTokens {
            tokens_per_node: 0,
            seed: 1,
        },
        ..RingConfig::default()
    };
    assert_eq!(
        Ring::new(zero_tokens, nodes()).err(),
        Some(RingError::ZeroTokens)
    );
    assert!(matches!(
        Ring::new(strategy3(64, 3), [NodeSpec::new("a").with_weight(0)]),
        Err(RingError::ZeroWeight { .. })
    ));
    assert!(matches!(
        Ring::new(strategy3(64, 3), ["a", "a"].map(NodeSpec::new)),
        Err(RingError::DuplicateNode { .. })
    ));
    let ring = Ring::new(strategy3(2, 1), ["a", "b"].map(NodeSpec::new)).expect("ring");
    assert!(matches!(
        ring.join(NodeSpec::new("c")),
        Err(RingError::TooManyNodes { .. })
    ));
    assert!(matches!(
        ring.leave(&"zz"),
        Err(RingError::UnknownNode { .. })
    ));
    assert!(matches!(
        ring.set_weight(&"a", 0),
        Err(RingError::ZeroWeight { .. })
    ));
    let single = Ring::new(strategy3(4, 1), ["a"].map(NodeSpec::new)).expect("ring");
    assert_eq!(single.leave(&"a").err(), Some(RingError::NoNodes));
}

/// Sizes past what a ring can hold are refused before anything is built: 2^31 partitions
/// allocated about 48 GiB and aborted; 256 tokens per node times a weight of `u32::MAX` drew a
/// trillion tokens one insert at a time.
#[test]
fn sizes_past_the_limits_are_refused_before_anything_is_built() {
    use dynamo_ring::{MAX_PARTITIONS, MAX_TOKENS_PER_NODE};
    let nodes = || ["a", "b"].map(NodeSpec::new);
    assert_eq!(
        Ring::new(strategy3(1 << 31, 3), nodes()).err(),
        Some(RingError::TooManyPartitions {
            requested: 1 << 31,
            max: MAX_PARTITIONS
        })
    );
    let tokens = |tokens_per_node| RingConfig {
        strategy: Strategy::RandomTokens {
            tokens_per_node,
            seed: 1,
        },
        ..RingConfig::default()
    };
    assert!(matches!(
        Ring::new(tokens(u32::MAX), nodes()),
        Err(RingError::TooManyTokens { .. })
    ));
    assert!(matches!(
        Ring::new(tokens(256), [NodeSpec::new("a").with_weight(u32::MAX)]),
        Err(RingError::TooManyTokens { tokens, max, .. })
            if tokens == 256 * u64::from(u32::MAX) && max == MAX_TOKENS_PER_NODE
    ));
    let ring = Ring::new(tokens(256), nodes()).expect("ring");
    assert!(matches!(
        ring.join(NodeSpec::new("c").with_weight(1 << 20)),
        Err(RingError::TooManyTokens { .. })
    ));
    assert!(matches!(
        ring.set_weight(&"a", 1 << 20),
        Err(RingError::TooManyTokens { .. })
    ));
}

#[test]
fn a_leave_hands_the_leavers_partitions_to_the_others() {
    let ring = Ring::new(strategy3(64, 3), (0..8u32).map(NodeSpec::new)).expect("ring");
    let change = ring.leave(&2).expect("leave");
    assert!(!change.ring.contains(&2));
    assert!(change.plan.transfers.iter().all(|t| t.from == 2));
    let moved: f64 = change.plan.moved_fraction();
    // The leaver held 3/8 of the ring as a replica; all of it is copied to someone, nothing more.
    assert!((moved - 3.0 / 8.0).abs() < 1e-9, "moved {moved}");
}

/// Found by the fairness property (one run in about 9,000): after two joins, a weight change
/// and three leaves of light nodes, the leaver's partitions did not cover the larger shares of
/// the heavy nodes, and one was left 1.1 partitions below its share. Partitions now also move
/// between the other nodes until every node is within one partition of its share.
#[test]
fn every_node_stays_within_one_partition_of_its_share_after_leaves() {
    let config = RingConfig {
        hash: HashFunction::Sha1,
        strategy: Strategy::EqualPartitions { partitions: 64 },
        replicas: 2,
    };
    let nodes = [
        (1, 1, "z1"),
        (379, 1, "z3"),
        (474, 3, "z2"),
        (197, 3, "z1"),
        (894, 3, "z2"),
        (900, 3, "z0"),
        (0, 3, "z0"),
        (982, 1, "z2"),
        (691, 1, "z3"),
        (640, 3, "z0"),
    ]
    .map(|(id, weight, zone)| NodeSpec::new(id).with_weight(weight).with_zone(zone));
    let mut ring = Ring::new(config, nodes).expect("ring");
    let ops: [(u8, u32); 7] = [
        (0, 0),
        (0, 4),
        (4, 33),
        (47, 1),
        (88, 1_406_754),
        (176, 4_116_740_412),
        (166, 3_091_768),
    ];
    for (op, arg) in ops {
        let ids: Vec<u32> = ring.nodes().map(|n| n.id).collect();
        let change = match op % 3 {
            0 => ring.join(NodeSpec::new(2000 + arg % 1000).with_weight(1 + arg % 3)),
            1 => ring.leave(&ids[arg as usize % ids.len()]),
            _ => ring.set_weight(&ids[arg as usize % ids.len()], 1 + arg % 4),
        };
        ring = change.expect("change").ring;
    }
    let total: f64 = ring.nodes().map(|n| f64::from(n.weight)).sum();
    for (spec, (_, share)) in ring.nodes().zip(&ring.ownership().primary) {
        let off = share * 64.0 - 64.0 * f64::from(spec.weight) / total;
        assert!(
            off.abs() <= 1.0 + 1e-9,
            "node {} is {off:.3} partitions off",
            spec.id
        );
    }
}

/// Review, twentieth session of the project's issue 20: under strategy 3 a node whose weighted
/// share of the partitions rounds to none got none, at a build or a join, so it was in no
/// preference list: three nodes with N = 3 gave one primary per key, and a light joiner never
/// held a replica. Every node owns at least one partition (Q is at least the node count).
#[test]
fn a_light_node_still_owns_a_partition() {
    let nodes = [
        NodeSpec::new(1u32).with_weight(100),
        NodeSpec::new(2).with_weight(1),
        NodeSpec::new(3).with_weight(1),
    ];
    let ring = Ring::new(strategy3(16, 3), nodes).expect("builds");
    for range in 0..ring.range_count() {
        let primaries = ring
            .preference_list_for_range(range)
            .expect("a range")
            .primaries()
            .count();
        assert_eq!(primaries, 3, "range {range}");
    }
    // Joins, leaves and weight changes keep it so (their rebalancing included).
    let mut ring = ring;
    for (id, weight) in [(4, 1), (5, 1), (6, 50)] {
        ring = ring
            .join(NodeSpec::new(id).with_weight(weight))
            .expect("joins")
            .ring;
        assert!(
            ring.nodes().all(|n| ring.tokens().any(|(_, o)| *o == n.id)),
            "after node {id} joined"
        );
    }
    ring = ring.leave(&6).expect("leaves").ring;
    ring = ring.set_weight(&1, 200).expect("reweights").ring;
    assert!(ring.nodes().all(|n| ring.tokens().any(|(_, o)| *o == n.id)));
    // A light joiner of a heavy ring, and a member whose weight drops.
    let heavy: Vec<NodeSpec<u32>> = (1..=10).map(|i| NodeSpec::new(i).with_weight(16)).collect();
    let ring = Ring::new(strategy3(64, 3), heavy).expect("builds");
    let joined = ring
        .join(NodeSpec::new(11).with_weight(1))
        .expect("joins")
        .ring;
    assert!(
        joined.tokens().any(|(_, o)| *o == 11),
        "the joiner owns a partition"
    );
    let lighter = joined.set_weight(&3, 1).expect("reweights").ring;
    assert!(
        lighter.tokens().any(|(_, o)| *o == 3),
        "the lighter member keeps one"
    );
}
