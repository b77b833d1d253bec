//! Fault tests on real `dynamo serve` processes, judged by the value-based history checker
//! ([`dynamo_node::history`]).
//!
//! Five nodes, each on its own loopback address, durable storage in a temporary directory.
//! Eight clients, each talking to one node only (spread over all nodes, so most requests are
//! coordinated or forwarded by a node that does not replicate the key), send read-modify-writes,
//! blind puts and deletes over 20 keys; every value is a unique id. A nemesis SIGKILLs one node
//! at a time (restarting it from its data directory 3-8 s later) or SIGSTOPs it (SIGCONT 2-6 s
//! later). Then everything is healed, every key is read from every node with R = N until all
//! agree, and the history is judged: no acknowledged write may be lost, no superseded value may
//! come back. The even-numbered clients send their gets and puts with strict quorums (R + W > N):
//! their gets may not miss a strict put acknowledged before they were sent. One fault in five of the kills takes every node down at once. Tombstones are
//! reaped 3 s after a delete (`FAULTS_REAP_MS`; 0 keeps the default grace of hours), and a few
//! keys per client are written once, deleted once and never touched again, so that what comes
//! back of them is not hidden by later writes. A node that exits by itself (other than failing
//! to bind a port a killed process still held) or panics fails the run.
//!
//! A second test runs each node in its own network namespace (a veth pair to a bridge in the root
//! namespace, where the clients run) and, instead of process faults, takes a node's link down or
//! splits the nodes in two while the clients keep writing to both sides. It is skipped, with the
//! reason printed, where it cannot run (not root, no `ip netns`). The two tests run one at a time.
//!
//! `FAULTS_SECONDS` (default 30) sets how long faults are injected, `FAULTS_SEED` the nemesis'
//! and the clients' RNG seed, `FAULTS_READ_FANOUT` how many replicas a get asks at once
//! (`read_fanout`; default all N), `FAULTS_STORAGE` the store (`fjall`, the default, or `redb`)
//! and `FAULTS_DURABILITY` its durability (`durable`, the default, or `buffered`: a killed
//! process must lose nothing it acknowledged either way). A failing run prints the line that replays it, and keeps its
//! temporary directory (data directories, node logs).

mod cluster;
mod membership;
mod nemesis;
mod netns;
mod workload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamo_node::history::History;
use dynamo_node::types::ReplayRng as StdRng;
use dynamo_node::NodeId;
use rand::SeedableRng;

use cluster::Cluster;
use nemesis::{Kind, Mode};
use netns::Network;
use workload::Worker;

/// Nodes.
const NODES: u64 = 5;
/// Client tasks.
const CLIENTS: u64 = 8;

/// The node client `c` (1..=CLIENTS) talks to: clients are spread over all nodes.
fn node_of(c: u64) -> NodeId {
    (c - 1) % NODES + 1
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a number")),
        Err(_) => default,
    }
}

/// The tests of this file run one at a time: each is five processes on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kills_and_pauses() {
    let _serial = SERIAL.lock().await;
    exercise(Cluster::start(NODES), Mode::Processes, "kills_and_pauses").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_partitions() {
    let _serial = SERIAL.lock().await;
    match Network::create(NODES) {
        Ok(network) => {
            exercise(
                Cluster::start_in(network, NODES),
                Mode::Network,
                "partitions",
            )
            .await
        }
        Err(reason) => println!("faults: partition test skipped: {reason}"),
    }
}

/// Runs the workload against `cluster` under the nemesis, heals, settles and judges.
async fn exercise(mut cluster: Cluster, mode: Mode, test: &str) {
    let seed = env_u64("FAULTS_SEED", 1);
    let seconds = env_u64("FAULTS_SECONDS", 30);
    // The settings a replay needs besides the seed.
    let settings: String = [
        "FAULTS_READ_FANOUT",
        "FAULTS_REAP_MS",
        "FAULTS_STORAGE",
        "FAULTS_DURABILITY",
    ]
    .iter()
    .filter_map(|var| std::env::var(var).ok().map(|v| format!("{var}={v} ")))
    .collect();
    let replay = format!(
        "{settings}FAULTS_SEED={seed} FAULTS_SECONDS={seconds} cargo test --release -p \
         dynamo-node --test faults {test} -- --nocapture"
    );
    println!("faults: replay: {replay}");
    println!(
        "faults: {NODES} nodes at {} .. {}, data in {}",
        cluster.address(1),
        cluster.address(NODES),
        cluster.dir().display()
    );
    cluster
        .wait_all_up(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("the cluster never came up: {e}"));

    let history = Arc::new(Mutex::new(History::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (1..=CLIENTS)
        .map(|c| {
            let worker = Worker::new(c, node_of(c), &cluster, seed, history.clone());
            tokio::spawn(worker.run(stop.clone()))
        })
        .collect();

    let mut rng = StdRng::seed_from_u64(seed);
    let faults = nemesis::run(&mut cluster, mode, &mut rng, Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let faults = faults.unwrap_or_else(|e| panic!("nemesis: {e}\nreplay: {replay}"));

    cluster.heal();
    cluster
        .wait_all_up(Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("after healing: {e}\nreplay: {replay}"));
    let nodes: Vec<NodeId> = (1..=NODES).collect();
    let settled = workload::settle(&cluster, &nodes, &history, Duration::from_secs(180)).await;

    let report = history.lock().unwrap().check();
    let count = |k: fn(&Kind) -> bool| faults.iter().filter(|f| k(&f.kind)).count();
    println!(
        "faults: {} faults ({} kills, {} pauses, {} cuts, {} splits); writes acknowledged {} / \
         failed {} / timed out {}; lost {}, resurrected {}, phantoms {}; settled: {settled:?}",
        faults.len(),
        count(|k| matches!(k, Kind::Kill | Kind::KillAll)),
        count(|k| *k == Kind::Pause),
        count(|k| *k == Kind::Cut),
        count(|k| matches!(k, Kind::Split(_))),
        report.puts.ok + report.deletes.ok,
        report.puts.failed + report.deletes.failed,
        report.puts.timed_out + report.deletes.timed_out,
        report.lost.len(),
        report.resurrected.len(),
        report.phantoms.len(),
    );
    println!("faults: {report}");
    if !report.lost.is_empty() {
        let blind = report
            .lost
            .iter()
            .filter(|l| l.write.seen.is_empty())
            .count();
        let mut by_node = [0usize; NODES as usize];
        for l in &report.lost {
            by_node[node_of(l.write.client) as usize - 1] += 1;
        }
        println!(
            "faults: lost: {blind} blind puts, {} read-modify-writes; by the node the client \
             talked to (1..={NODES}): {by_node:?}",
            report.lost.len() - blind
        );
    }
    let failures = cluster.node_failures();
    for f in &failures {
        println!("faults: {f}");
    }
    let ok = settled.is_ok() && report.is_clean() && failures.is_empty();
    if !ok {
        let dir = cluster.keep_dir();
        println!(
            "faults: kept {} (data directories, node logs)",
            dir.display()
        );
    }
    println!("faults: replay: {replay}");
    assert!(
        ok,
        "{report}settled: {settled:?}\nnode failures: {failures:?}\nreplay: {replay}"
    );
    assert!(
        report.puts.ok > 0 && !faults.is_empty(),
        "nothing was tested: {report}"
    );
}
