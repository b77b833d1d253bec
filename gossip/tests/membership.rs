//! Paper section 4.8: joining through seeds, partitions, restarts, graceful leave.

use dynamo_gossip::{Config, Event, Status};

use crate::sim::Sim;

#[test]
fn two_separately_joined_nodes_meet_through_the_seed() {
    // The paper's example: A and B are joined separately; neither is told about the other.
    let mut sim = Sim::new(3, Config::default());
    sim.start(0, 1, vec![(0, 0)], 0);
    sim.start(1, 1, vec![(0, 0)], 100);
    sim.start(2, 1, vec![(0, 0)], 5_000);
    assert!(sim.run_until_converged(30_000).is_some());
    assert!(sim.node(1).is_up(&2) && sim.node(2).is_up(&1));
}

#[test]
fn without_a_common_seed_nodes_stay_apart() {
    // The counterpart: nothing connects two nodes that know no common seed.
    let mut sim = Sim::new(4, Config::default());
    sim.start(0, 1, vec![], 0);
    sim.start(1, 1, vec![], 0);
    sim.run_for(30_000);
    assert_eq!(sim.node(0).members().count(), 1);
    assert!(!sim.converged_membership());
}

#[test]
fn two_logical_clusters_formed_apart_merge_through_seeds() {
    // Everyone knows seeds 0 and 1, but at start 0 and 1 are in different partitions, so two
    // logical clusters form. Once the network heals, gossip with seeds merges them.
    let mut sim = Sim::new(5, Config::default());
    for i in 0..20 {
        sim.start(i, 1, vec![(0, 0), (1, 1)], u64::from(i) * 37);
        sim.groups[i as usize] = (i % 2) as u8;
    }
    sim.run_for(30_000);
    assert_eq!(sim.node(0).members().count(), 10);
    assert_eq!(sim.node(1).members().count(), 10);
    sim.groups.iter_mut().for_each(|g| *g = 0);
    assert!(sim.run_until_converged(60_000).is_some());
}

#[test]
fn partition_that_heals_converges_again() {
    let mut sim = Sim::cluster(6, Config::default(), 30, 3);
    sim.loss = 0.05;
    assert!(sim.run_until_converged(60_000).is_some());
    for i in 0..30 {
        sim.groups[i] = u8::from(i >= 12);
    }
    sim.node_mut(3)
        .set_app_state("ring", b"left side".to_vec())
        .unwrap();
    sim.node_mut(20)
        .set_app_state("ring", b"right side".to_vec())
        .unwrap();
    sim.run_for(90_000);
    assert!(!sim.node(0).is_up(&29) && !sim.node(29).is_up(&0));
    assert_eq!(sim.node(20).app_state(&3, "ring"), None);
    sim.groups.iter_mut().for_each(|g| *g = 0);
    assert!(sim.run_until_converged(60_000).is_some());
    sim.run_for(10_000);
    for (_, n) in sim.alive() {
        assert_eq!(n.app_state(&3, "ring"), Some(&b"left side"[..]));
        assert_eq!(n.app_state(&20, "ring"), Some(&b"right side"[..]));
    }
}

#[test]
fn restarted_node_replaces_its_old_state() {
    let mut sim = Sim::cluster(8, Config::default(), 20, 2);
    assert!(sim.run_until_converged(60_000).is_some());
    sim.node_mut(7).set_app_state("old", vec![1]).unwrap();
    sim.run_for(20_000);
    assert!(sim.alive().all(|(_, n)| n.app_state(&7, "old").is_some()));
    sim.crash(7);
    sim.run_for(3_000);
    sim.start(7, 2, vec![(0, 0), (1, 1)], sim.now);
    sim.node_mut(7).set_app_state("new", vec![2]).unwrap();
    sim.keep = |e| matches!(e, Event::Restarted { .. } | Event::Down { .. });
    sim.log.clear();
    sim.run_for(30_000);
    for (i, n) in sim.alive() {
        let state = n.node_state(&7).unwrap();
        assert_eq!(state.generation(), 2, "node {i}");
        assert_eq!(state.app_state("old"), None, "node {i}");
        assert_eq!(state.app_state("new"), Some(&[2u8][..]), "node {i}");
    }
    let restarted = sim
        .log
        .iter()
        .filter(|(_, _, e)| {
            matches!(
                e,
                Event::Restarted {
                    id: 7,
                    generation: 2,
                    replaced: (1, _),
                }
            )
        })
        .count();
    assert_eq!(restarted, 19);
    assert!(!sim
        .log
        .iter()
        .any(|(_, _, e)| matches!(e, Event::Down { .. })));
}

#[test]
fn graceful_leave_spreads_and_the_node_is_removed_not_marked_down() {
    let config = Config {
        left_grace: core::time::Duration::from_secs(30),
        ..Config::default()
    };
    let mut sim = Sim::cluster(10, config, 30, 3);
    assert!(sim.run_until_converged(60_000).is_some());
    sim.keep = |e| {
        matches!(
            e,
            Event::Left { .. } | Event::Removed { .. } | Event::Down { .. }
        )
    };
    sim.node_mut(4).leave().unwrap();
    assert_eq!(sim.node(4).local_state().status(), Status::Left);
    assert!(sim.node_mut(4).set_app_state("x", vec![]).is_err());
    sim.run_for(5_000);
    sim.crash(4);
    sim.run_for(120_000);
    let count = |want: Event<u32>| sim.log.iter().filter(|(_, _, e)| *e == want).count();
    assert_eq!(count(Event::Left { id: 4 }), 29);
    assert_eq!(count(Event::Removed { id: 4 }), 29);
    assert_eq!(count(Event::Down { id: 4 }), 0);
    assert!(sim.converged_membership());
}

#[test]
fn a_node_that_left_before_anyone_heard_of_it_is_reported_left() {
    // The application may know members gossip has not met (a ring built from a list of initial
    // members). A member that leaves before its first exchange reaches anyone must still be
    // reported as left, or the others would keep it forever.
    let mut sim = Sim::new(11, Config::default());
    sim.start(0, 1, vec![(0, 0)], 0);
    sim.start(1, 1, vec![(0, 0)], 0);
    sim.keep = |e| matches!(e, Event::Left { .. } | Event::Joined { .. });
    sim.node_mut(1).leave().unwrap();
    sim.run_for(10_000);
    let heard: Vec<&Event<u32>> = sim
        .log
        .iter()
        .filter(|(_, node, _)| *node == 0)
        .map(|(_, _, e)| e)
        .collect();
    assert_eq!(heard, vec![&Event::Left { id: 1 }]);
}

/// Review, twentieth session of the project's issue 20: a node that lost what it persisted (its
/// last generation) and whose clock reads earlier than at its last start came back with a
/// lower generation than the one the cluster holds for it: every peer refused its deltas as
/// stale, and it stayed down everywhere for good. Hearing of a later incarnation of itself, it
/// takes a generation past it.
#[test]
fn a_node_restarted_with_a_lower_generation_comes_back() {
    let mut sim = Sim::cluster(9, Config::default(), 10, 2);
    assert!(sim.run_until_converged(60_000).is_some());
    sim.crash(7);
    sim.start(7, 100, vec![(0, 0), (1, 1)], sim.now);
    sim.run_for(20_000);
    sim.crash(7);
    sim.run_for(3_000);
    sim.start(7, 50, vec![(0, 0), (1, 1)], sim.now);
    sim.node_mut(7).set_app_state("new", vec![2]).unwrap();
    sim.run_for(30_000);
    assert!(
        sim.node(7).local_state().generation() > 100,
        "it took a generation past the old one"
    );
    for (i, n) in sim.alive() {
        if i != 7 {
            assert!(n.is_up(&7), "node {i} counts 7 up");
            assert_eq!(n.app_state(&7, "new"), Some(&[2u8][..]), "node {i}");
        }
    }
    assert!(sim.converged_membership());
}

/// Review (the project's twenty-second session): a node that left, restarted and left again
/// before its new incarnation's first exchange sent a restart whose status equals the old one
/// (left, then left): no status change was reported, the restart had cleared when it left, so
/// the others counted it failed, not departed (marked down, removed after `remove_after`
/// instead of `left_grace`).
#[test]
fn a_node_that_restarts_and_leaves_again_is_removed_as_departed() {
    let config = Config {
        left_grace: core::time::Duration::from_secs(30),
        ..Config::default()
    };
    let mut sim = Sim::cluster(12, config, 10, 3);
    assert!(sim.run_until_converged(60_000).is_some());
    sim.node_mut(4).leave().unwrap();
    sim.run_for(5_000);
    sim.crash(4);
    sim.start(4, 2, vec![(0, 0), (1, 1)], sim.now);
    sim.node_mut(4).leave().unwrap();
    sim.keep = |e| {
        matches!(
            e,
            Event::Left { .. } | Event::Removed { .. } | Event::Down { .. }
        )
    };
    sim.log.clear();
    sim.run_for(5_000);
    sim.crash(4);
    sim.run_for(120_000);
    let count = |want: Event<u32>| sim.log.iter().filter(|(_, _, e)| *e == want).count();
    assert_eq!(count(Event::Down { id: 4 }), 0, "{:?}", sim.log);
    assert_eq!(count(Event::Removed { id: 4 }), 9, "{:?}", sim.log);
    assert!(sim.converged_membership());
}

/// Review (the project's twenty-ninth session): a member cut off while another left heard
/// nothing of the departure. The others removed the node after `left_grace` and kept only a
/// tombstone, which they never told anyone about: the cut-off member kept the departed node as
/// a member that is down for good (an application that removes no failed node keeps it, and
/// waits for it), and once the tombstones expired its gossip brought the node back everywhere.
/// A member that names a departed node in its digests hears that it left.
#[test]
fn a_member_cut_off_while_another_left_hears_of_the_departure() {
    let config = Config {
        left_grace: core::time::Duration::from_secs(30),
        remove_after: core::time::Duration::from_secs(10 * 24 * 3600),
        ..Config::default()
    };
    let mut sim = Sim::cluster(13, config, 5, 2);
    assert!(sim.run_until_converged(60_000).is_some());
    sim.keep = |e| {
        matches!(
            e,
            Event::Left { .. } | Event::Removed { .. } | Event::Joined { .. }
        )
    };
    // Node 3 is cut off, node 4 leaves and stops.
    sim.groups[3] = 1;
    sim.node_mut(4).leave().unwrap();
    sim.run_for(5_000);
    sim.crash(4);
    sim.run_for(60_000);
    for i in [0, 1, 2] {
        assert!(sim.node(i).node_state(&4).is_none(), "node {i} removed 4");
    }
    assert!(sim.node(3).node_state(&4).is_some(), "node 3 heard nothing");
    sim.groups[3] = 0;
    sim.run_for(120_000);
    let heard = |node: u32, want: Event<u32>| {
        sim.log
            .iter()
            .any(|(_, observer, e)| *observer == node && *e == want)
    };
    assert!(heard(3, Event::Left { id: 4 }), "{:?}", sim.log);
    assert!(heard(3, Event::Removed { id: 4 }), "{:?}", sim.log);
    assert!(sim.converged_membership());
    // Past every tombstone's lifetime, nobody brings it back.
    sim.log.clear();
    sim.run_for(2 * 3600 * 1000);
    assert!(
        !sim.log
            .iter()
            .any(|(_, _, e)| *e == Event::Joined { id: 4 }),
        "{:?}",
        sim.log
    );
    assert!(sim.converged_membership());
}
