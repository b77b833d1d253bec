//! Live staleness prediction (PBS) against the simulator: a cluster whose links draw from a known
//! distribution, the stale-read rate measured directly (a unique value per put, a read `t` ms after
//! the put was acknowledged, judged on what the read returned), and the prediction a node computes
//! from the round trips it timed during the same run.
//!
//! The measurement matches what the node's model assumes: the put goes to the key's first primary
//! (the write coordinator is a replica), the read through the one node outside the key's
//! preference list (the read coordinator is not), the client hop takes no time, and repairs are
//! off (read repair, anti-entropy, hinted handoff), so only the original writes make reads fresh.
//! Exponential link delays make the model's split of round trips into legs exact (see
//! `dynamo_pbs::Legs::RoundTrip`).

use dynamo_node::sim::dist::Dist;
use dynamo_node::sim::net::LinkConfig;
use dynamo_node::sim::workload::{key_bytes, value_op, Workload};
use dynamo_node::sim::{Sim, SimConfig};
use dynamo_node::{ClientReply, NodeConfig, NodeId};

/// Delays after the acknowledgement at which reads are measured (those the status shows).
const TIMES: [u64; 4] = [0, 1, 10, 100];
/// Put/read pairs per delay.
const PAIRS: usize = 2_000;
/// Two-sided 99.9% normal quantile.
const Z: f64 = 3.29;

fn cluster(r: usize, w: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig {
        seed,
        nodes: 4,
        node: NodeConfig {
            n: 3,
            r,
            w,
            partitions: 16,
            read_repair: false,
            sync_interval: None,
            hinted_handoff: false,
            request_timeout: 5_000,
            ..NodeConfig::default()
        },
        link: LinkConfig {
            latency: Dist::Exponential { mean: 20.0 },
            ..LinkConfig::default()
        },
        workload: Workload {
            client_latency: Dist::Constant(0.0),
            client_timeout: 20_000,
            ..Workload::default()
        },
        keep_history: false,
        start: 1_000,
        disk: None,
        disk_faults: None,
        buffered: None,
        clock_skew: None,
    })
    .expect("cluster starts");
    sim.stop_clients();
    sim.run_for(3_000);
    sim
}

/// Measured consistent reads and reads per delay in `TIMES`.
fn measure(sim: &mut Sim) -> Vec<(u64, u64)> {
    let mut out = vec![(0u64, 0u64); TIMES.len()];
    let mut key = 0u32;
    for _ in 0..PAIRS {
        for (ti, &t) in TIMES.iter().enumerate() {
            key += 1;
            let list: Vec<NodeId> = sim
                .node(0)
                .expect("node 0 runs")
                .ring()
                .preference_list(&key_bytes(key))
                .primaries()
                .copied()
                .collect();
            let (Some(&writer), Some(reader)) = (list.first(), (0..4).find(|n| !list.contains(n)))
            else {
                continue;
            };
            let op = sim.next_op_id();
            if !matches!(
                sim.put(writer, key, Vec::new()),
                Some(ClientReply::Stored { .. })
            ) {
                continue;
            }
            sim.run_for(t);
            if let Some(ClientReply::Got { values, .. }) = sim.get(reader, key) {
                out[ti].1 += 1;
                if values.iter().any(|v| value_op(v) == Some(op)) {
                    out[ti].0 += 1;
                }
            }
        }
    }
    out
}

fn check(r: usize, w: usize, seed: u64) {
    let mut sim = cluster(r, w, seed);
    let measured = measure(&mut sim);
    let status = sim.node(0).expect("node 0 runs").status();
    let live = status.staleness.expect("node 0 timed enough answers");
    let mine = live
        .choices
        .iter()
        .find(|c| c.configured)
        .expect("the configured choice comes first");
    assert_eq!((mine.r, mine.w), (r, w));
    assert_eq!(live.times, TIMES.map(|t| t as f64).to_vec());
    for (ti, &t) in TIMES.iter().enumerate() {
        let (hits, reads) = measured[ti];
        let p = hits as f64 / reads.max(1) as f64;
        let q = mine.p_consistent[ti];
        // Binomial error of the measurement and of the prediction's Monte Carlo, and 1 point
        // for what the model leaves out (the node's 1 ms clock, reads starting up to 1 ms early).
        let sd = (p * (1.0 - p) / reads.max(1) as f64 + q * (1.0 - q) / live.trials as f64).sqrt();
        let bound = Z * sd + 0.01;
        eprintln!(
            "R={r} W={w} t={t} ms: predicted {:.4}, measured {:.4} ({hits}/{reads}), |gap| {:.4} <= {:.4}; samples w {} r {}",
            q,
            p,
            (p - q).abs(),
            bound,
            live.write_samples,
            live.read_samples
        );
        assert!(
            reads as usize >= PAIRS * 9 / 10,
            "t={t}: only {reads} reads"
        );
        assert!(
            (p - q).abs() <= bound,
            "R={r} W={w} t={t} ms: predicted {q:.4}, measured {p:.4} ({hits}/{reads}), bound {bound:.4}"
        );
    }
}

#[test]
fn live_prediction_matches_measured_stale_reads_r1_w1() {
    check(1, 1, 21);
}

#[test]
fn live_prediction_matches_measured_stale_reads_r1_w2() {
    check(1, 2, 22);
}
