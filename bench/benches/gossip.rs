//! Gossip: the convergence table (rounds to converge, bytes per node per round, failure
//! detection) from the crate's deterministic simulator, then criterion timings of one exchange
//! step against the in-run baseline of a digest comparison with nothing to send.
//!
//! `cargo bench -p dynamo-bench --bench gossip` (the table takes a few minutes: an hour of
//! simulated time at 100 nodes and clusters of 1000). With `--test`, tiny sizes and one
//! iteration of each timing.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion};
use dynamo_gossip::{Body, Config, Delta, Digest, Event, Gossip, Message, Status, Versioned};

#[allow(unreachable_pub, missing_docs)]
#[path = "../../gossip/tests/sim.rs"]
mod sim;

use sim::Sim;

fn mean(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
}

/// One row: join convergence, spread of changes, steady-state traffic, crash detection.
fn convergence_row(n: u32, trials: usize, seed: u64) {
    let wall = Instant::now();
    let mut sim = Sim::cluster(seed, Config::default(), n, 3);
    sim.loss = 0.05;
    let join = sim.run_until_converged(300_000).map(|ms| ms / 1000);
    let (m0, b0) = (sim.messages_sent, sim.bytes_sent);
    let steady = 10u64;
    sim.run_for(steady * 1000);
    let per = (steady * u64::from(n)) as f64;
    let msgs = (sim.messages_sent - m0) as f64 / per;
    let bytes = (sim.bytes_sent - b0) as f64 / per;
    let spread: Vec<u64> = (0..trials)
        .filter_map(|t| sim.rounds_to_spread(&format!("k{t}"), 120_000))
        .collect();
    let bound = f64::from(n).log2() + f64::from(n).ln();
    // Crash one node and time how long every other node takes to mark it down.
    let crashed = n / 2;
    let crash_at = sim.now;
    sim.crash(crashed);
    sim.run_for(90_000);
    let mut downs: Vec<u64> = sim
        .log
        .iter()
        .filter(|(t, _, e)| *t >= crash_at && *e == Event::Down { id: crashed })
        .map(|(t, _, _)| t - crash_at)
        .collect();
    downs.sort_unstable();
    println!(
        "| {n:>5} | {:>11} | {:>11.1} | {:>10} | {:>13.1} | {:>15.2} | {:>16.0} | {:>8}/{:<9} | {:>9.1} | {:>8.1} | {:>4.1}s |",
        join.map_or("-".to_owned(), |j| j.to_string()),
        mean(&spread),
        spread.iter().max().copied().unwrap_or(0),
        bound,
        msgs,
        bytes,
        downs.len(),
        n - 1,
        downs.first().copied().unwrap_or(0) as f64 / 1000.0,
        downs.last().copied().unwrap_or(0) as f64 / 1000.0,
        wall.elapsed().as_secs_f64(),
    );
}

/// False positives: live nodes marked down during `minutes` at `n` nodes, 5% loss, 1-250 ms.
fn false_positive_row(n: u32, minutes: u64, seed: u64) {
    let wall = Instant::now();
    let mut sim = Sim::cluster(seed, Config::default(), n, 3);
    sim.loss = 0.05;
    sim.delay = (1, 250);
    let _ = sim.run_until_converged(120_000);
    sim.log.clear();
    sim.run_for(minutes * 60_000);
    let downs = sim
        .log
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::Down { .. }))
        .count();
    let max_phi = sim
        .alive()
        .flat_map(|(_, node)| (0..n).filter_map(|id| node.phi(&id, sim.now)))
        .fold(0.0f64, f64::max);
    println!(
        "false positives at {n} nodes over {minutes} simulated min (5% loss, 1-250 ms): {downs} \
         (phi at the end: max {max_phi:.2}; wall {:.1}s)",
        wall.elapsed().as_secs_f64()
    );
}

fn table(test: bool) {
    println!("rounds: gossip intervals of 1 s; 5% loss; 1-100 ms delay; 3 seeds; defaults (phi 8)");
    println!(
        "|     n | join rounds | spread mean | spread max | log2 n + ln n | msgs/node/round | bytes/node/round | crash seen down by | first (s) | last (s) | wall |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    if test {
        convergence_row(10, 2, 1);
        false_positive_row(10, 1, 2);
        return;
    }
    convergence_row(10, 50, 1);
    convergence_row(100, 20, 2);
    convergence_row(1000, 5, 3);
    false_positive_row(100, 60, 4);
}

/// A machine that knows `n` other nodes (by an injected full view), ready to answer digests.
fn machine_knowing(n: u32) -> Gossip<u32, u32> {
    let mut node = Gossip::new(Config::default(), 0, 0, 1, vec![]).expect("valid config");
    let deltas = (1..=n).map(|id| heartbeat_delta(id, 0, 10)).collect();
    let _ = node.handle_message(0, 1, ack2(deltas));
    while node.poll_event().is_some() {}
    node
}

fn heartbeat_delta(id: u32, from: u64, beat: u64) -> Delta<u32, u32> {
    Delta {
        id,
        generation: 1,
        from_version: from,
        to_version: beat + 3,
        heartbeat: Versioned::new(beat + 3, beat),
        status: Versioned::new(2, Status::Up),
        address: Versioned::new(3, id),
        app: if from == 0 {
            vec![("tokens".into(), Versioned::new(1, vec![7; 64]))]
        } else {
            vec![]
        },
    }
}

fn ack2(deltas: Vec<Delta<u32, u32>>) -> Message<u32, u32> {
    Message {
        cluster: Config::default().cluster_name,
        sender_address: 1,
        body: Body::Ack2 { deltas },
    }
}

fn syn(n: u32, version: u64) -> Message<u32, u32> {
    let mut digests: Vec<Digest<u32>> = (1..=n)
        .map(|id| Digest {
            id,
            generation: 1,
            version,
        })
        .collect();
    digests.push(Digest {
        id: 0,
        generation: 1,
        version: 3,
    });
    Message {
        cluster: Config::default().cluster_name,
        sender_address: 1,
        body: Body::Syn {
            digests,
            complete: true,
        },
    }
}

fn exchange(c: &mut Criterion) {
    let mut group = c.benchmark_group("gossip");
    for n in [100u32, 1000] {
        // Baseline: the responder compares n digests and finds nothing to send.
        group.bench_with_input(BenchmarkId::new("syn_in_sync", n), &n, |b, &n| {
            let mut node = machine_knowing(n);
            let msg = syn(n, 13);
            b.iter(|| {
                let _ = node.handle_message(1, 1, black_box(msg.clone()));
                while node.poll_transmit().is_some() {}
            })
        });
        // The initiator is one heartbeat behind on every node: n deltas to build.
        group.bench_with_input(BenchmarkId::new("syn_all_behind", n), &n, |b, &n| {
            let mut node = machine_knowing(n);
            let msg = syn(n, 12);
            b.iter(|| {
                let _ = node.handle_message(1, 1, black_box(msg.clone()));
                while let Some(t) = node.poll_transmit() {
                    black_box(t);
                }
            })
        });
        // Applying n heartbeat deltas (each a new arrival for the failure detector).
        group.bench_with_input(BenchmarkId::new("apply_heartbeats", n), &n, |b, &n| {
            let mut node = machine_knowing(n);
            let mut beat = 10;
            b.iter(|| {
                beat += 1;
                let deltas = (1..=n)
                    .map(|id| heartbeat_delta(id, beat + 2, beat))
                    .collect();
                let _ = node.handle_message(beat * 1000, 1, ack2(deltas));
                while node.poll_event().is_some() {}
            })
        });
    }
    group.finish();
}

fn main() {
    let test = std::env::args().any(|a| a == "--test");
    table(test);
    let mut criterion = Criterion::default().configure_from_args();
    exchange(&mut criterion);
    criterion.final_summary();
}
