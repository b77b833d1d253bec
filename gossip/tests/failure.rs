//! Failure detection: crashed nodes are marked down in bounded time, live ones never are.

use dynamo_gossip::{Config, Event};

use crate::sim::Sim;

/// How long the first and the last live node took to mark `crashed` down after `crash_at`, if
/// all did.
fn detection_delays(sim: &Sim, crashed: u32, crash_at: u64) -> Option<(u64, u64)> {
    let (mut first, mut last) = (u64::MAX, 0);
    for (observer, _) in sim.alive() {
        let seen = sim.log.iter().find(|(t, o, e)| {
            *o == observer && *t >= crash_at && *e == Event::Down { id: crashed }
        })?;
        first = first.min(seen.0 - crash_at);
        last = last.max(seen.0 - crash_at);
    }
    Some((first, last))
}

/// A cluster of `n` nodes at the defaults with 5% loss: converged, 30 s later node 17 crashes;
/// the detection delays.
fn crash_and_detect(seed: u64, n: u32) -> Option<(u64, u64)> {
    let mut sim = Sim::cluster(seed, Config::default(), n, 3);
    sim.loss = 0.05;
    assert!(sim.run_until_converged(60_000).is_some());
    sim.run_for(30_000);
    let crashed = 17;
    let crash_at = sim.now;
    sim.crash(crashed);
    sim.run_for(60_000);
    detection_delays(&sim, crashed, crash_at)
}

#[test]
fn crashed_node_is_marked_down_by_everyone_within_bound() {
    // At the defaults (500 ms interval, normal phi model, phi 8, 3 s acceptable pause) a peer
    // is suspected after about mean + 3 s + 5.2 standard deviations of silence, 6 to 8 s; the
    // crashed node's last heartbeat takes up to 3 s to reach the last observer, and detection
    // runs once a round. Measured at 50 nodes over seeds 1 to 20: the last observer 8.6 to
    // 10.7 s after the crash, the first 5.9 s or later. Asserted: everyone within 15 s (the
    // membership issue's goal) and no one before 5 s: a detector that tolerates only a 1 s
    // pause already marks the first observer down after 3.9 s (and live nodes down under loss).
    for seed in 1..=5 {
        let delays = crash_and_detect(seed, 50);
        assert!(
            delays.is_some_and(|(_, last)| last < 15_000),
            "seed {seed}: {delays:?}"
        );
        assert!(
            delays.is_some_and(|(first, _)| first >= 5_000),
            "seed {seed}: suspiciously fast {delays:?}"
        );
    }
}

/// The measurement behind the bounds above and the crate README:
/// `cargo test --release -p dynamo-gossip --test tests -- --ignored --nocapture detection_delays`.
#[test]
#[ignore = "a measurement that prints a table; run it in release"]
fn detection_delays_over_seeds() {
    for n in [50, 100] {
        let mut firsts = Vec::new();
        let mut lasts = Vec::new();
        for seed in 1..=10 {
            let (first, last) = crash_and_detect(seed, n).expect("everyone detects the crash");
            println!("n {n} seed {seed}: first {first} ms, last {last} ms");
            firsts.push(first);
            lasts.push(last);
        }
        let min = |v: &[u64]| v.iter().copied().min().unwrap_or(0);
        let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
        println!(
            "n {n}: last observer {} to {} ms over 10 seeds; first observer {} ms or later",
            min(&lasts),
            max(&lasts),
            min(&firsts)
        );
    }
}

#[test]
fn no_live_node_is_marked_down_under_loss_and_jitter() {
    // An hour at 100 nodes in release builds; in debug builds 4 simulated minutes, which are
    // enough for millions of detector checks (the bench binary runs the hour too). The longest
    // silences in such an hour are 5 to 5.5 s (10 to 11 rounds); the default pause keeps phi 8
    // beyond 1.25 times every one of them (measured over seeds 4, 7 and 42).
    let minutes = if cfg!(debug_assertions) { 4 } else { 60 };
    let mut sim = Sim::cluster(42, Config::default(), 100, 3);
    sim.loss = 0.05;
    sim.delay = (1, 250);
    assert!(sim.run_until_converged(60_000).is_some());
    sim.log.clear();
    sim.run_for(minutes * 60_000);
    let downs: Vec<_> = sim
        .log
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::Down { .. }))
        .collect();
    assert!(downs.is_empty(), "false positives: {downs:?}");
    assert!(sim.converged_membership());
}

#[test]
fn down_node_is_probed_and_comes_back_up() {
    let mut sim = Sim::cluster(7, Config::default(), 20, 2);
    assert!(sim.run_until_converged(60_000).is_some());
    // Cut node 5 off for a minute: everyone marks it down, it marks everyone down.
    sim.groups[5] = 1;
    sim.run_for(60_000);
    for (i, node) in sim.alive() {
        if i != 5 {
            assert!(!node.is_up(&5), "{i} still thinks 5 is up");
        }
    }
    assert_eq!(sim.node(5).live_members().count(), 1);
    sim.groups[5] = 0;
    sim.log.clear();
    sim.keep = |e| matches!(e, Event::Up { .. });
    assert!(sim.run_until_converged(30_000).is_some());
    let ups = sim
        .log
        .iter()
        .filter(|(_, _, e)| *e == Event::Up { id: 5 })
        .count();
    assert_eq!(ups, 19);
}

#[test]
fn node_down_for_too_long_is_removed_and_stays_removed() {
    let config = Config {
        remove_after: core::time::Duration::from_secs(60),
        ..Config::default()
    };
    let mut sim = Sim::cluster(9, config, 20, 2);
    assert!(sim.run_until_converged(60_000).is_some());
    sim.crash(11);
    sim.run_for(120_000);
    let removed = sim
        .log
        .iter()
        .filter(|(_, _, e)| *e == Event::Removed { id: 11 })
        .count();
    assert_eq!(removed, 19);
    // Stale gossip about 11 (all nodes removed it at slightly different times) never brings it
    // back.
    sim.run_for(120_000);
    assert!(sim.alive().all(|(_, n)| n.node_state(&11).is_none()));
    assert!(sim.converged_membership());
}

/// Review of membership (twenty-fourth session): a node restarted while its peers still held a
/// crashed node learned it again and removed it up to `remove_after` later than they did; their
/// tombstones (kept `tombstone_ttl`, shorter) had expired by then, and its gossip brought the
/// node back to every view, removal after removal. A tombstone now outlives the latest removal
/// of the node by another member.
#[test]
fn a_node_removed_late_by_a_restarted_peer_does_not_come_back() {
    let config = Config {
        remove_after: core::time::Duration::from_secs(120),
        tombstone_ttl: core::time::Duration::from_secs(40),
        ..Config::default()
    };
    let mut sim = Sim::cluster(21, config, 9, 2);
    assert!(sim.run_until_converged(60_000).is_some());
    sim.crash(8);
    sim.run_for(60_000);
    // Restarted before the others removed node 8: it learns node 8 again from them.
    sim.crash(5);
    sim.run_for(1_000);
    sim.start(5, 2, vec![(0, 0), (1, 1)], sim.now);
    sim.run_for(900_000);
    for id in 0..8 {
        let removed = sim
            .log
            .iter()
            .filter(|(_, o, e)| *o == id && *e == Event::Removed { id: 8 })
            .count();
        assert!(removed <= 1, "node {id} removed node 8 {removed} times");
    }
    assert!(sim.alive().all(|(_, n)| n.node_state(&8).is_none()));
}
