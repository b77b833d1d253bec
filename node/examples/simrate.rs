//! Simulated operations per second: a 10-node cluster through 1 million client operations.
//!
//! `cargo run --release -p dynamo-node --example simrate [ops] [nodes] [rmw]`
//!
//! With `rmw`, every write is a read-modify-write (a get, then the put with its context), as
//! Dynamo's clients do; without it, clients write with the context they last read for the key,
//! often none, so concurrent writes pile up as siblings and each operation gets dearer as the run
//! goes on.

use std::time::Instant;

use dynamo_node::sim::workload::Workload;
use dynamo_node::sim::{Sim, SimConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let ops: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let nodes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let read_before_write = args.next().is_some_and(|a| a == "rmw");
    let config = SimConfig {
        seed: 1,
        nodes,
        workload: Workload {
            clients: 100,
            keys: 10_000,
            read_before_write,
            ..Workload::default()
        },
        keep_history: false,
        ..SimConfig::default()
    };
    let started = Instant::now();
    let mut sim = match Sim::new(config) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("simrate: {e}");
            std::process::exit(1);
        }
    };
    sim.run_ops(ops);
    let wall = started.elapsed().as_secs_f64();
    let s = sim.stats();
    println!(
        "{nodes} nodes, {} ops ({} ok, {} failed, {} timed out) in {:.2} s wall, {:.1} s virtual: {:.0} simulated ops/s",
        s.ops_ok + s.ops_failed + s.ops_timed_out,
        s.ops_ok,
        s.ops_failed,
        s.ops_timed_out,
        wall,
        (sim.now_ms() - sim.config().start) as f64 / 1000.0,
        ops as f64 / wall
    );
    println!(
        "{} events, {} messages ({:.1} per op)",
        s.events,
        s.messages_sent,
        s.messages_sent as f64 / ops.max(1) as f64
    );
}
