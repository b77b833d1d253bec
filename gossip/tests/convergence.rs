//! Paper section 4.8: a change known by one node reaches every node in O(log n) rounds.

use dynamo_gossip::Config;

use crate::sim::Sim;

/// Builds a converged cluster of `n` nodes (5% loss, 1-100 ms delay), then spreads `trials`
/// changes; returns the rounds each took.
fn spread(seed: u64, n: u32, trials: usize) -> Vec<u64> {
    let mut sim = Sim::cluster(seed, Config::default(), n, 3);
    sim.loss = 0.05;
    let took = sim.run_until_converged(120_000);
    assert!(took.is_some(), "{n} nodes did not converge (seed {seed})");
    (0..trials)
        .map(|t| {
            let rounds = sim.rounds_to_spread(&format!("k{t}"), 60_000);
            rounds.unwrap_or_else(|| panic!("change did not spread to {n} nodes (seed {seed})"))
        })
        .collect()
}

fn mean(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len() as f64
}

#[test]
fn ten_nodes_spread_in_few_rounds() {
    let rounds = spread(10, 10, 20);
    let bound = (10f64).log2() + (10f64).ln();
    assert!(
        mean(&rounds) < bound,
        "mean {} rounds: {rounds:?}",
        mean(&rounds)
    );
}

#[test]
fn hundred_nodes_spread_in_log_rounds() {
    let rounds = spread(100, 100, 10);
    let bound = (100f64).log2() + (100f64).ln();
    assert!(
        mean(&rounds) < bound,
        "mean {} rounds: {rounds:?}",
        mean(&rounds)
    );
}

/// 1000 nodes in release builds (`cargo test -p dynamo-gossip --release`); a gossip round costs
/// O(n²) work across the simulated cluster, too slow unoptimised, so debug builds run 300 nodes
/// against the same bound. The bench binary (`--bench gossip_convergence`) runs 1000 too.
#[test]
fn thousand_nodes_spread_under_seventeen_rounds() {
    let n = if cfg!(debug_assertions) { 300 } else { 1000 };
    let rounds = spread(1000, n, 3);
    let bound = (1000f64).log2() + (1000f64).ln();
    assert!(
        mean(&rounds) < bound,
        "mean {} rounds: {rounds:?}",
        mean(&rounds)
    );
}

#[test]
fn messages_stay_within_the_size_bound_and_still_converge() {
    // A 4 KiB bound at 150 nodes: digest lists (about 4.8 KiB) are cut, deltas are cut, and
    // every node publishes 300 bytes; everything still reaches everyone.
    let config = Config {
        max_message_bytes: 4096,
        ..Config::default()
    };
    let mut sim = Sim::cluster(11, config, 150, 3);
    sim.loss = 0.05;
    for i in 0..150u32 {
        sim.node_mut(i)
            .set_app_state("tokens", vec![i as u8; 300])
            .unwrap();
    }
    assert!(sim.run_until_converged(120_000).is_some());
    let everywhere = |sim: &Sim| {
        sim.alive().all(|(_, n)| {
            (0..150u32).all(|i| n.app_state(&i, "tokens") == Some(&[i as u8; 300][..]))
        })
    };
    let mut waited = 0;
    while !everywhere(&sim) && waited < 120 {
        sim.run_for(1_000);
        waited += 1;
    }
    assert!(everywhere(&sim), "app state did not spread under the bound");
    assert!(sim.largest_message <= 4096, "{}", sim.largest_message);
    let too_big = sim.node_mut(0).set_app_state("huge", vec![0; 3000]);
    assert!(too_big.is_err());
}
