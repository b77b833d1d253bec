//! What `POST /sim` answers: measurements over a finished simulation's history.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::SimRequest;
use crate::core::StalenessStatus;
use crate::sim::check::stale_reads;
use crate::sim::workload::{History, Op, OpKind, Outcome};
use crate::sim::Sim;

/// Bins of a latency histogram.
const BINS: usize = 40;

/// Upper edges (ms) of the staleness curve's bins of "time since the write committed"; the last
/// bin is open.
const STALENESS_EDGES: [f64; 16] = [
    0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
    8192.0,
];

/// The answer of `POST /sim` (serialize it for the JSON; its fields are documented there).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The request, defaults filled in.
    request: SimRequest,
    /// Virtual time the measured operations took, ms.
    virtual_ms: f64,
    /// The run stopped at the event budget before all operations completed.
    truncated: bool,
    /// Simulator events processed.
    events: u64,
    /// Measured operations by outcome.
    ops: OpCounts,
    /// Successful gets' latency.
    get: Latencies,
    /// Successful puts' latency.
    put: Latencies,
    /// Stale reads and the staleness curve.
    staleness: Staleness,
    /// What the network did with the nodes' messages.
    network: NetworkCounts,
    /// Repair and handoff counters, summed over the nodes.
    repair: RepairCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct OpCounts {
    ok: usize,
    /// Answered with an error (quorum not reached, ...).
    failed: usize,
    /// Given up by the client.
    timed_out: usize,
    /// Successful operations per virtual second.
    throughput: f64,
}

/// A latency distribution, ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Latencies {
    count: usize,
    mean: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    /// `BINS` equal bins from 0 to `edges.last()`, and how many fell above.
    histogram: Histogram,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Histogram {
    /// Bin edges, `counts.len() + 1` of them, ms.
    edges: Vec<f64>,
    counts: Vec<usize>,
    /// Samples above the last edge.
    overflow: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Staleness {
    /// Successful gets with an acknowledged put of their key before them (see
    /// [`crate::sim::check`]).
    judged: usize,
    /// Those that returned neither that put's value nor a newer one.
    stale: usize,
    /// `stale / judged` (0 when none judged).
    rate: f64,
    /// P(consistent) against the time from the last acknowledged put's completion to the get's
    /// start, over bins of that time (empty bins left out).
    curve: Vec<CurvePoint>,
    /// The PBS prediction of the first running node, from the round trips it measured (`None`
    /// before it has enough).
    predicted: Option<StalenessStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct CurvePoint {
    /// Bin start, ms.
    from_ms: f64,
    /// Bin end, ms (`None`: open).
    to_ms: Option<f64>,
    judged: usize,
    consistent: usize,
    /// `consistent / judged`.
    p: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct NetworkCounts {
    sent: u64,
    delivered: u64,
    dropped: u64,
    refused: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct RepairCounts {
    read_repairs: u64,
    hints_recorded: u64,
    hints_delivered: u64,
    sync_sessions: u64,
    sync_keys_repaired: u64,
}

/// The `q` quantile of sorted samples (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A round upper edge at or above `x`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let base = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * base)
        .find(|&edge| edge >= x)
        .unwrap_or(10.0 * base)
}

impl Latencies {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let count = samples.len();
        let mean = if count == 0 {
            0.0
        } else {
            samples.iter().sum::<f64>() / count as f64
        };
        let p999 = quantile(&samples, 0.999);
        let top = nice_ceiling(p999);
        let width = top / BINS as f64;
        let mut counts = vec![0; BINS];
        let mut overflow = 0;
        for &s in &samples {
            if s > top {
                overflow += 1;
            } else {
                let i = ((s / width) as usize).min(BINS - 1);
                counts[i] += 1;
            }
        }
        Latencies {
            count,
            mean,
            p50: quantile(&samples, 0.5),
            p99: quantile(&samples, 0.99),
            p999,
            max: samples.last().copied().unwrap_or(0.0),
            histogram: Histogram {
                edges: (0..=BINS).map(|i| i as f64 * width).collect(),
                counts,
                overflow,
            },
        }
    }
}

/// For every judged get (as [`stale_reads`] judges them): its id and the time from the last
/// acknowledged put of its key to its start, ms.
fn judged_gets(history: &History) -> Vec<(u64, f64)> {
    let mut by_key: BTreeMap<u32, Vec<&Op>> = BTreeMap::new();
    for op in history.ops() {
        by_key.entry(op.key).or_default().push(op);
    }
    let mut out = Vec::new();
    for ops in by_key.values() {
        let mut acked: Vec<u64> = ops
            .iter()
            .filter(|o| o.kind == OpKind::Put && o.is_ok())
            .filter_map(|o| o.complete)
            .collect();
        acked.sort_unstable();
        for g in ops.iter().filter(|o| o.kind == OpKind::Get && o.is_ok()) {
            let before = acked.partition_point(|&c| c < g.invoke);
            if let Some(&commit) = before.checked_sub(1).and_then(|i| acked.get(i)) {
                out.push((g.id, g.invoke.saturating_sub(commit) as f64 / 1000.0));
            }
        }
    }
    out
}

fn staleness(sim: &Sim) -> Staleness {
    let history = sim.history();
    let measured = stale_reads(history);
    let stale: BTreeSet<u64> = measured.stale.iter().copied().collect();
    let mut bins = vec![(0usize, 0usize); STALENESS_EDGES.len() + 1];
    for (id, t) in judged_gets(history) {
        let i = STALENESS_EDGES.partition_point(|&edge| edge <= t);
        bins[i].0 += 1;
        if !stale.contains(&id) {
            bins[i].1 += 1;
        }
    }
    let curve = bins
        .iter()
        .enumerate()
        .filter(|(_, &(judged, _))| judged > 0)
        .map(|(i, &(judged, consistent))| CurvePoint {
            from_ms: i.checked_sub(1).map_or(0.0, |j| STALENESS_EDGES[j]),
            to_ms: STALENESS_EDGES.get(i).copied(),
            judged,
            consistent,
            p: consistent as f64 / judged as f64,
        })
        .collect();
    let predicted = sim
        .running()
        .first()
        .and_then(|&id| sim.node(id))
        .and_then(|core| core.staleness());
    Staleness {
        judged: measured.judged,
        stale: measured.stale.len(),
        rate: measured.ratio(),
        curve,
        predicted,
    }
}

/// Measures a finished run: operations invoked from `measured_from` (µs) on.
pub(super) fn measure(
    request: &SimRequest,
    sim: &Sim,
    measured_from: u64,
    virtual_micros: u64,
    truncated: bool,
) -> SimReport {
    let (mut get_ms, mut put_ms) = (Vec::new(), Vec::new());
    let (mut failed, mut timed_out) = (0, 0);
    for op in sim.history().ops().filter(|o| o.invoke >= measured_from) {
        let Some(done) = op.complete else { continue };
        let ms = done.saturating_sub(op.invoke) as f64 / 1000.0;
        match (&op.outcome, op.kind) {
            (Outcome::Ok, OpKind::Get) => get_ms.push(ms),
            (Outcome::Ok, _) => put_ms.push(ms),
            (Outcome::Pending, _) => {}
            (Outcome::TimedOut, _) => timed_out += 1,
            (Outcome::Failed(_), _) => failed += 1,
        }
    }
    let ok = get_ms.len() + put_ms.len();
    let virtual_ms = virtual_micros as f64 / 1000.0;
    let stats = sim.stats();
    let counters = sim.node_stats().counters;
    SimReport {
        request: request.clone(),
        virtual_ms,
        truncated,
        events: stats.events,
        ops: OpCounts {
            ok,
            failed,
            timed_out,
            throughput: if virtual_ms > 0.0 {
                ok as f64 / (virtual_ms / 1000.0)
            } else {
                0.0
            },
        },
        get: Latencies::of(get_ms),
        put: Latencies::of(put_ms),
        staleness: staleness(sim),
        network: NetworkCounts {
            sent: stats.messages_sent,
            delivered: stats.messages_delivered,
            dropped: stats.messages_dropped,
            refused: stats.messages_refused,
        },
        repair: RepairCounts {
            read_repairs: counters.read_repairs,
            hints_recorded: counters.hints_recorded,
            hints_delivered: counters.hints_delivered,
            sync_sessions: counters.sync_sessions,
            sync_keys_repaired: counters.sync_keys_repaired,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_edges() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&s, 0.5), 2.0);
        assert_eq!(quantile(&s, 0.99), 4.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        let l = Latencies::of(vec![0.5, 1.5, 100.0]);
        assert_eq!(
            l.histogram.counts.iter().sum::<usize>() + l.histogram.overflow,
            3
        );
        assert_eq!(l.histogram.edges.len(), BINS + 1);
    }
}
