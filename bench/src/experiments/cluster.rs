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
    /// With crashed nodes: whether the clients keep running through the warm-up, the crashes
    /// and the failure detector's window (the operations started in that window are measured
    /// apart, in [`Measured::window`]), so that the crashed nodes hold data the measured reads
    /// need. Without it the clients stop for the warm-up and the wait: the crashed nodes hold
    /// nothing and the window is not measured.
    pub through_detection: bool,
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
            through_detection: false,
        }
    }
}

/// Operations of one phase of a run.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// Latencies of successful gets, ms, sorted.
    pub get_ms: Vec<f64>,
    /// Latencies of successful puts, ms, sorted.
    pub put_ms: Vec<f64>,
    /// Gets that failed or timed out.
    pub get_failed: usize,
    /// Puts that failed or timed out.
    pub put_failed: usize,
}

impl Phase {
    fn record(&mut self, op_kind: OpKind, outcome: &Outcome, ms: f64) {
        match (outcome, op_kind) {
            (Outcome::Ok, OpKind::Get) => self.get_ms.push(ms),
            (Outcome::Ok, _) => self.put_ms.push(ms),
            (Outcome::Pending, _) => {}
            (_, OpKind::Get) => self.get_failed += 1,
            _ => self.put_failed += 1,
        }
    }

    fn sort(&mut self) {
        self.get_ms.sort_by(f64::total_cmp);
        self.put_ms.sort_by(f64::total_cmp);
    }

    /// Operations that succeeded.
    pub fn ok(&self) -> usize {
        self.get_ms.len() + self.put_ms.len()
    }

    /// Operations that failed or timed out.
    pub fn failed(&self) -> usize {
        self.get_failed + self.put_failed
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
    /// With [`Point::through_detection`]: the operations started between the crashes and the
    /// moment every live node marked every crashed one down (the whole wait when detection did
    /// not finish). They are not in the fields above.
    pub window: Phase,
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
        clock_skew: None,
    })
    .map_err(|e| setup(&e))?;
    // A new cluster's nodes answer reads once each has heard every member: measured from then.
    sim.start_up(u64::MAX);
    let mut detected_ms = None;
    let mut window = None;
    let measured_from = if point.crashed.is_empty() && point.warmup_ms == 0 {
        0
    } else {
        let through = point.through_detection && !point.crashed.is_empty();
        if !through {
            sim.stop_clients();
        }
        if !point.crashed.is_empty() {
            sim.run_for(GOSSIP_WARMUP_MS);
        }
        for &id in &point.crashed {
            sim.crash(id, true);
        }
        let crashed_at = sim.now_ms();
        let crashed_at_us = sim.now_micros();
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
        if through {
            window = Some((crashed_at_us, sim.now_micros()));
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
    let mut after = Phase::default();
    for op in history.ops() {
        let Some(done) = op.complete else { continue };
        let ms = done.saturating_sub(op.invoke) as f64 / 1000.0;
        if op.invoke >= measured_from {
            after.record(op.kind, &op.outcome, ms);
        } else if window.is_some_and(|(from, to)| (from..to).contains(&op.invoke)) {
            m.window.record(op.kind, &op.outcome, ms);
        }
    }
    after.sort();
    m.window.sort();
    m.ok = after.ok();
    m.failed = after.failed();
    m.get_failed = after.get_failed;
    m.put_failed = after.put_failed;
    m.get_ms = after.get_ms;
    m.put_ms = after.put_ms;
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
