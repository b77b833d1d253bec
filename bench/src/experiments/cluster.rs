//! Measuring one configuration of the full simulator (`dynamo_node::sim`): stale-read rate,
//! get and put latencies, throughput, over the operations of a closed-loop workload.

use dynamo_node::sim::check::stale_reads;
use dynamo_node::sim::dist::Dist;
use dynamo_node::sim::net::LinkConfig;
use dynamo_node::sim::workload::{OpKind, Outcome, Workload};
use dynamo_node::sim::{Sim, SimConfig};
use dynamo_node::{NodeConfig, NodeId};

use super::Error;

/// One simulated configuration.
#[derive(Debug, Clone)]
pub struct Point {
    /// Cluster size.
    pub nodes: usize,
    /// Every node's configuration.
    pub node: NodeConfig,
    /// Every link's behaviour.
    pub link: LinkConfig,
    /// The clients.
    pub workload: Workload,
    /// Operations measured (completed, any outcome).
    pub ops: usize,
    /// Nodes crashed (store kept) before the measured operations start.
    pub crashed: Vec<NodeId>,
    /// With crashed nodes: the longest virtual time (ms) to wait after the crashes for every
    /// live node to mark every crashed one down before measuring; measuring starts as soon as
    /// they all do (the cluster first runs [`GOSSIP_WARMUP_MS`] so that gossip knows every node,
    /// as it does in a cluster of real processes that ran for a while).
    pub warmup_ms: u64,
}

/// Virtual ms a cluster runs before nodes are crashed in it.
pub const GOSSIP_WARMUP_MS: u64 = 3_000;

impl Point {
    /// `nodes` nodes with `node`, a clean link of `latency_ms` constant delay, 10 clients over
    /// 20 keys (reads and writes overlapping), `ops` operations.
    pub fn new(nodes: usize, node: NodeConfig, latency: Dist, ops: usize) -> Self {
        Self {
            nodes,
            node,
            link: LinkConfig {
                latency,
                ..LinkConfig::default()
            },
            workload: Workload {
                clients: 10,
                keys: 20,
                reads: 0.5,
                writes: 0.5,
                deletes: 0.0,
                use_context: true,
                ..Workload::default()
            },
            ops,
            crashed: Vec::new(),
            warmup_ms: 0,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Stale fraction of the judged successful gets.
    pub stale: f64,
    /// Successful gets that could be judged.
    pub judged: usize,
    /// Latencies of successful gets, ms, sorted.
    pub get_ms: Vec<f64>,
    /// Latencies of successful puts, ms, sorted.
    pub put_ms: Vec<f64>,
    /// Operations that succeeded.
    pub ok: usize,
    /// Operations that failed or timed out.
    pub failed: usize,
    /// Gets that failed or timed out.
    pub get_failed: usize,
    /// Puts that failed or timed out.
    pub put_failed: usize,
    /// Virtual ms from the crashes until every live node marked every crashed node down; `None`
    /// without crashes, or when the wait ran out first.
    pub detected_ms: Option<u64>,
    /// Successful operations per virtual second.
    pub throughput: f64,
}

/// Runs `point` with `seed`.
pub fn measure(point: &Point, seed: u64) -> Result<Measured, Error> {
    let setup = |e: &dyn std::fmt::Display| Error::Setup {
        experiment: "simulator",
        message: e.to_string(),
    };
    let mut sim = Sim::new(SimConfig {
        seed,
        nodes: point.nodes,
        node: point.node.clone(),
        link: point.link.clone(),
        workload: point.workload.clone(),
        keep_history: true,
        start: 1_000,
        disk: None,
        disk_faults: None,
        buffered: None,
    })
    .map_err(|e| setup(&e))?;
    // A new cluster's nodes answer reads once each has heard every member: measured from then.
    sim.start_up(u64::MAX);
    let mut detected_ms = None;
    let measured_from = if point.crashed.is_empty() && point.warmup_ms == 0 {
        0
    } else {
        sim.stop_clients();
        if !point.crashed.is_empty() {
            sim.run_for(GOSSIP_WARMUP_MS);
        }
        for &id in &point.crashed {
            sim.crash(id, true);
        }
        let crashed_at = sim.now_ms();
        let step = 100;
        let mut waited = 0;
        while waited < point.warmup_ms {
            if !point.crashed.is_empty() && all_marked_down(&sim, &point.crashed) {
                detected_ms = Some(sim.now_ms() - crashed_at);
                break;
            }
            sim.run_for(step);
            waited += step;
        }
        if detected_ms.is_none() && all_marked_down(&sim, &point.crashed) {
            detected_ms = Some(sim.now_ms() - crashed_at);
        }
        sim.resume_clients();
        sim.now_micros()
    };
    let start = sim.now_micros();
    sim.run_ops(point.ops);
    let end = sim.now_micros().max(start + 1);
    let history = sim.history();
    let stale = stale_reads(history);
    let mut m = Measured {
        stale: stale.ratio(),
        judged: stale.judged,
        detected_ms: detected_ms.filter(|_| !point.crashed.is_empty()),
        ..Measured::default()
    };
    for op in history.ops().filter(|o| o.invoke >= measured_from) {
        let Some(done) = op.complete else { continue };
        let ms = done.saturating_sub(op.invoke) as f64 / 1000.0;
        match (&op.outcome, op.kind) {
            (Outcome::Ok, OpKind::Get) => m.get_ms.push(ms),
            (Outcome::Ok, _) => m.put_ms.push(ms),
            (Outcome::Pending, _) => continue,
            (_, OpKind::Get) => m.get_failed += 1,
            _ => m.put_failed += 1,
        }
    }
    m.ok = m.get_ms.len() + m.put_ms.len();
    m.failed = m.get_failed + m.put_failed;
    m.get_ms.sort_by(f64::total_cmp);
    m.put_ms.sort_by(f64::total_cmp);
    m.throughput = m.ok as f64 / ((end - start) as f64 / 1e6);
    Ok(m)
}

/// Whether every running node believes every node of `crashed` down.
pub fn all_marked_down(sim: &Sim, crashed: &[NodeId]) -> bool {
    sim.running().iter().all(|&live| {
        sim.node(live)
            .is_some_and(|core| crashed.iter().all(|&c| !core.is_up(c)))
    })
}

/// Runs `point` over `seeds`, in parallel on up to two threads (the machine has two cores).
pub fn measure_seeds(point: &Point, seeds: &[u64]) -> Result<Vec<Measured>, Error> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    let mut out: Vec<Option<Result<Measured, Error>>> = seeds.iter().map(|_| None).collect();
    for (chunk_seeds, chunk_out) in seeds.chunks(threads).zip(out.chunks_mut(threads)) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk_seeds
                .iter()
                .map(|&seed| s.spawn(move || measure(point, seed)))
                .collect();
            for (h, slot) in handles.into_iter().zip(chunk_out.iter_mut()) {
                *slot = Some(h.join().unwrap_or_else(|_| {
                    Err(Error::Setup {
                        experiment: "simulator",
                        message: "simulation thread panicked".into(),
                    })
                }));
            }
        });
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Error::Setup {
                    experiment: "simulator",
                    message: "missing result".into(),
                })
            })
        })
        .collect()
}
