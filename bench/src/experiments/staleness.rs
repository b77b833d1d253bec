//! Experiments 1-3 (seed 000): stale reads against message drops with and without repair,
//! against the quorum settings, and against the background sync interval; all on the full
//! simulator, N = 4 on 6 nodes, 10 clients over 20 keys so reads and writes overlap in time.

use std::fmt::Write as _;

use dynamo_node::sim::dist::Dist;
use dynamo_node::NodeConfig;

use super::cluster::{measure_seeds, Point};
use super::plot::{self, Axis, Panel, Series};
use super::stats::{Estimate, Proportion};
use super::{md_table, Csv, Ctx, Error, Report};

/// Nodes in the staleness experiments.
pub const NODES: usize = 6;

/// One-way link latency of the staleness experiments: uniform 1-20 ms, so replicas receive a
/// write at visibly different times.
pub fn latency() -> Dist {
    Dist::Uniform { lo: 1.0, hi: 20.0 }
}

/// Repair knobs of a point.
#[derive(Debug, Clone, Copy)]
pub struct Repair {
    /// Anti-entropy (and gossip) interval, `None`: never.
    pub sync: Option<u64>,
    /// Read repair.
    pub read_repair: bool,
    /// Hinted handoff.
    pub handoff: bool,
}

impl Repair {
    /// Everything off.
    pub const OFF: Repair = Repair {
        sync: None,
        read_repair: false,
        handoff: false,
    };
}

/// A node configuration for N = 4.
pub fn node(r: usize, w: usize, repair: Repair) -> NodeConfig {
    NodeConfig {
        n: 4,
        r,
        w,
        sync_interval: repair.sync,
        gossip_interval: repair.sync.unwrap_or(1_000).min(1_000),
        read_repair: repair.read_repair,
        hinted_handoff: repair.handoff,
        request_timeout: 500,
        ..NodeConfig::default()
    }
}

/// The CSV columns shared by the three experiments.
const COLUMNS: [&str; 17] = [
    "experiment",
    "arm",
    "nodes",
    "n",
    "r",
    "w",
    "drop",
    "sync_ms",
    "read_repair",
    "hinted_handoff",
    "latency",
    "seed",
    "ops",
    "judged_gets",
    "stale_gets",
    "stale_rate",
    "failed_ops",
];

struct Case {
    label: String,
    r: usize,
    w: usize,
    drop: f64,
    repair: Repair,
}

/// What one case measured over the seeds.
struct Outcome {
    stale: Proportion,
    failed: Proportion,
    throughput: Estimate,
}

fn run_cases(
    ctx: &Ctx,
    name: &'static str,
    cases: &[Case],
    csv: &mut Csv,
) -> Result<Vec<Outcome>, Error> {
    let ops = ctx.size(10_000, 200);
    let seeds = ctx.seeds();
    let mut bar = ctx.progress(name, cases.len() as u64);
    let mut out = Vec::new();
    for case in cases {
        let mut point = Point::new(NODES, node(case.r, case.w, case.repair), latency(), ops);
        point.link.drop = case.drop;
        let runs = measure_seeds(&point, &seeds)?;
        let mut stale = Vec::new();
        let mut failed = Vec::new();
        for (m, seed) in runs.iter().zip(&seeds) {
            let stale_gets = (m.stale * m.judged as f64).round() as u64;
            csv.push(vec![
                name.to_owned(),
                case.label.clone(),
                NODES.to_string(),
                "4".into(),
                case.r.to_string(),
                case.w.to_string(),
                case.drop.to_string(),
                case.repair.sync.map_or("never".into(), |s| s.to_string()),
                case.repair.read_repair.to_string(),
                case.repair.handoff.to_string(),
                "uniform 1-20 ms".into(),
                seed.to_string(),
                ops.to_string(),
                m.judged.to_string(),
                stale_gets.to_string(),
                format!("{:.6}", m.stale),
                m.failed.to_string(),
            ]);
            stale.push((stale_gets, m.judged as u64));
            failed.push((m.failed as u64, (m.failed + m.ok) as u64));
        }
        out.push(Outcome {
            stale: Proportion::of(&stale),
            failed: Proportion::of(&failed),
            throughput: Estimate::of(&runs.iter().map(|m| m.throughput).collect::<Vec<_>>()),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Experiment 1: drop rates 0, 1, 5, 10%, R = 1, W = 2: seed 000's two arms (neither gossip nor
/// anti-entropy, against both), and an extra arm with every mechanism (anti-entropy, read
/// repair, hinted handoff).
pub fn run_repair(ctx: &Ctx) -> Result<Report, Error> {
    let drops = [0.0, 0.01, 0.05, 0.10];
    let arms = [
        ("neither", Repair::OFF),
        (
            "gossip + anti-entropy every 50 ms",
            Repair {
                sync: Some(50),
                read_repair: false,
                handoff: false,
            },
        ),
        (
            "all: + read repair + hinted handoff",
            Repair {
                sync: Some(50),
                read_repair: true,
                handoff: true,
            },
        ),
    ];
    let mut cases = Vec::new();
    for &d in &drops {
        for (label, repair) in arms {
            cases.push(Case {
                label: label.into(),
                r: 1,
                w: 2,
                drop: d,
                repair,
            });
        }
    }
    let mut csv = Csv::new(&COLUMNS);
    let est = run_cases(ctx, "repair", &cases, &mut csv)?;
    let k = arms.len();
    let mut series: Vec<Series> = arms.iter().map(|(l, _)| Series::new(*l)).collect();
    if let Some(s) = series.first_mut() {
        // Seed 000's two arms lie on top of each other: the first one dashed.
        s.style.dashed = true;
    }
    for (i, (case, e)) in cases.iter().zip(&est).enumerate() {
        series[i % k]
            .points
            .push(e.stale.point(case.drop * 100.0, 100.0));
    }
    let rows: Vec<Vec<String>> = drops
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut row = vec![format!("{}%", d * 100.0)];
            row.extend((0..k).map(|a| est[k * i + a].stale.pct(2)));
            row.push(format!(
                "{:.2}%",
                (0..k)
                    .map(|a| est[k * i + a].failed.p)
                    .fold(0.0f64, f64::max)
                    * 100.0
            ));
            row
        })
        .collect();
    let mut panel = Panel::new(
        "R=1, W=2, N=4 on 6 nodes, uniform 1-20 ms links",
        Axis::x("message drop rate (%)"),
        Axis::percent("stale reads (%)"),
    );
    panel.series = series;
    panel.dodge = 0.6;
    plot::draw(
        &ctx.svg("repair"),
        "Stale reads against message drops: seed 000's arms (neither, gossip + anti-entropy) and \
         every mechanism",
        &[panel],
        1,
    )?;
    let last = drops.len() - 1;
    let (none0, ae_last, all_last, none_last) = (
        est[0].stale,
        est[k * last + 1].stale,
        est[k * last + 2].stale,
        est[k * last].stale,
    );
    let ae_drops: Vec<String> = (1..drops.len())
        .map(|i| {
            format!(
                "{}% drops {}",
                drops[i] * 100.0,
                est[k * i + 1].stale.pct(2)
            )
        })
        .collect();
    let contradicted = (1..drops.len()).all(|i| est[k * i + 1].stale.lo > none0.hi);
    let mut md = format!(
        "{} operations per point and seed, {} seeds, 6 nodes, N = 4, R = 1, W = 2 (so writes \
         can succeed on 2 replicas and miss the others: partial write failures), links uniform \
         1-20 ms. A get is stale if it misses the last put acknowledged before it started. \
         Seed 000's arms: **neither** (anti-entropy, read repair and hinted handoff off; \
         membership gossip cannot be turned off here, since it is the failure detector, and runs \
         every 1000 ms) against **gossip + anti-entropy** (gossip and a Merkle anti-entropy \
         session every 50 ms, read repair and handoff off). The third arm turns on every \
         mechanism. At {}% drops: neither {}, gossip + anti-entropy {}, everything {}. Seed 000 \
         reported up to 14% without repair and under 7% with it at 10% drops; ",
        ctx.size(10_000, 200),
        ctx.seeds().len(),
        drops[last] * 100.0,
        none_last.pct(2),
        ae_last.pct(2),
        all_last.pct(2),
    );
    let _ = write!(
        md,
        "{}\n\nSeed 000 also claimed that a system with failures (drops) and the recovery \
         protocols beats a failure-free system without repair. {}: without drops and without \
         repair {} of reads are stale, against {} with gossip + anti-entropy.\n\n",
        if ae_last.hi < none_last.lo {
            "we see the same direction: anti-entropy lowers the stale rate, by less than the \
             seed saw."
                .to_owned()
        } else {
            format!(
                "**we do not: gossip + anti-entropy alone changes nothing measurable** ({} against \
                 {} at 10% drops). A missed replica is repaired only when the anti-entropy \
                 session for its partition comes round (see experiment 3: a session covers one \
                 of 64 partitions), long after the next read or write of the key. What lowers \
                 the stale rate is read repair and hinted handoff, which act on the key being \
                 used: the all-mechanisms arm reads {} stale at 10% drops. Round one's \
                 \"repair\" arm had all three turned on, which is why it looked like the \
                 seed's result.",
                ae_last.pct(2),
                none_last.pct(2),
                all_last.pct(2)
            )
        },
        if contradicted {
            "Our results contradict it at every drop rate"
        } else {
            "Our results do not support it (the intervals overlap at some drop rates)"
        },
        none0.pct(2),
        ae_drops.join(", "),
    );
    let mut header = vec!["drop rate"];
    header.extend(arms.iter().map(|(l, _)| *l));
    header.push("failed ops (worst arm)");
    md.push_str(&md_table(&header, &rows));
    Ok(Report { csv, markdown: md })
}

/// Experiment 2: (R, W) in (1,4), (2,3), (3,4), (4,1), repairs off, no drops.
pub fn run_quorum(ctx: &Ctx) -> Result<Report, Error> {
    let configs = [(1usize, 4usize), (2, 3), (3, 4), (4, 1), (1, 1), (2, 2)];
    let cases: Vec<Case> = configs
        .iter()
        .map(|&(r, w)| Case {
            label: format!("R={r} W={w}"),
            r,
            w,
            drop: 0.0,
            repair: Repair::OFF,
        })
        .collect();
    let mut csv = Csv::new(&COLUMNS);
    let est = run_cases(ctx, "quorum", &cases, &mut csv)?;
    let mut strict = Series::new("R + W > N");
    let mut partial = Series::new("R + W <= N (added)");
    let mut rows = Vec::new();
    for (i, (case, e)) in cases.iter().zip(&est).enumerate() {
        let s = if case.r + case.w > 4 {
            &mut strict
        } else {
            &mut partial
        };
        s.points.push(e.stale.point(i as f64, 100.0));
        rows.push(vec![
            case.label.clone(),
            (case.r + case.w > 4).to_string(),
            e.stale.pct(3),
            e.failed.pct(2),
        ]);
    }
    let mut panel = Panel::new(
        "N=4 on 6 nodes, no drops, 10 clients on 20 keys",
        Axis::categories(
            "configuration",
            cases.iter().map(|c| c.label.clone()).collect(),
        ),
        Axis::percent("stale reads (%)"),
    );
    panel.series = vec![strict, partial];
    plot::draw(
        &ctx.svg("quorum"),
        "Stale reads against (R, W) with every repair off",
        &[panel],
        1,
    )?;
    let strict_max = cases
        .iter()
        .zip(&est)
        .filter(|(c, _)| c.r + c.w > 4)
        .map(|(_, e)| e.stale.p)
        .fold(0.0f64, f64::max);
    let mut md = format!(
        "{} operations per point and seed, {} seeds, 6 nodes, N = 4, no drops, no read repair, \
         anti-entropy or handoff, 10 clients on 20 keys so operations overlap. (1, 1) and (2, 2) \
         are added as partial-quorum references. Largest stale rate among R + W > N settings: \
         {:.3}%. Seed 000 saw about 15% stale reads with R = 1 even at W = 4 and concluded that \
         overlap defeats R + W > N. With our definition (a get must see every put acknowledged \
         before it *started*), a quorum that intersects the last acknowledged write cannot miss \
         it, so R + W > N gives {}; the seed's stale reads were most likely reads concurrent \
         with the write, which we do not count as stale. The bracketed intervals of the 0% \
         rows are the Wilson intervals of 0 stale reads in that many judged gets.\n\n",
        ctx.size(10_000, 200),
        ctx.seeds().len(),
        strict_max * 100.0,
        if strict_max == 0.0 {
            "no stale reads at all".to_owned()
        } else {
            format!(
                "at most {:.3}% (sloppy quorums may write to fallbacks)",
                strict_max * 100.0
            )
        }
    );
    md.push_str(&md_table(
        &["R, W", "R + W > N", "stale reads", "failed ops"],
        &rows,
    ));
    Ok(Report { csv, markdown: md })
}

/// Partitions (of Q) that each node replicates in the staleness cluster, averaged over nodes.
fn partitions_per_node(seed: u64) -> Result<f64, Error> {
    let sim = dynamo_node::sim::Sim::new(dynamo_node::sim::SimConfig {
        seed,
        nodes: NODES,
        node: node(1, 3, Repair::OFF),
        ..dynamo_node::sim::SimConfig::default()
    })
    .map_err(|e| Error::Setup {
        experiment: "sync",
        message: e.to_string(),
    })?;
    let per: Vec<f64> = sim
        .running()
        .iter()
        .filter_map(|&id| sim.node(id).map(|n| n.partition_roots().len() as f64))
        .collect();
    Ok(super::stats::mean(&per))
}

/// Experiment 3: anti-entropy and gossip every 20, 50, 100 ms and never; R = 1, W = 3, 5% drops.
pub fn run_sync(ctx: &Ctx) -> Result<Report, Error> {
    let intervals: [Option<u64>; 4] = [Some(20), Some(50), Some(100), None];
    let cases: Vec<Case> = intervals
        .iter()
        .map(|&sync| Case {
            label: sync.map_or("never".into(), |s| format!("{s} ms")),
            r: 1,
            w: 3,
            drop: 0.05,
            repair: Repair {
                sync,
                read_repair: false,
                handoff: false,
            },
        })
        .collect();
    let mut csv = Csv::new(&COLUMNS);
    let est = run_cases(ctx, "sync", &cases, &mut csv)?;
    let q = NodeConfig::default().partitions;
    let per_node = partitions_per_node(1)?;
    // A replica takes part in a session for a given partition when it starts one (once per
    // round of its partitions) or when one of the N - 1 others starts one and picks it (each
    // picks one of its N - 1 peers at random): about twice per round.
    let per_key = |ms: u64| ms as f64 * per_node / 2.0;
    let mut series = Series::new("stale reads");
    let mut rows = Vec::new();
    for (i, (case, e)) in cases.iter().zip(&est).enumerate() {
        series.points.push(e.stale.point(i as f64, 100.0));
        // 20 keys: on average the key is touched every 20 / throughput seconds.
        let key_gap = 20.0 / e.throughput.mean * 1000.0;
        rows.push(vec![
            case.label.clone(),
            case.repair
                .sync
                .map_or("never".into(), |s| format!("{:.0}", per_key(s))),
            format!("{key_gap:.0}"),
            e.stale.pct(2),
            e.failed.pct(2),
        ]);
    }
    let mut panel = Panel::new(
        "R=1, W=3, N=4 on 6 nodes, 5% drops, read repair and handoff off",
        Axis::categories(
            "anti-entropy session (and gossip round) every",
            cases.iter().map(|c| c.label.clone()).collect(),
        ),
        Axis::percent("stale reads (%)"),
    );
    panel.series = vec![series];
    plot::draw(
        &ctx.svg("sync"),
        "Stale reads against the anti-entropy interval",
        &[panel],
        1,
    )?;
    let mut md = format!(
        "{} operations per point and seed, {} seeds, 6 nodes, N = 4, R = 1, W = 3, 5% message \
         drops (without drops a W = 3 write misses at most one replica for a few ms and there is \
         little for anti-entropy to repair), read repair and handoff off. Every interval a node \
         runs one Merkle anti-entropy session, and a session covers **one** of the Q = {q} \
         partitions: the next of the {per_node:.1} partitions that node replicates, against a \
         random one of the partition's other N - 1 replicas. A given replica of a key thus takes \
         part in a session for the key's partition about twice per round of its partitions, \
         every {per_node:.1} / 2 intervals: {:.0} ms at 20 ms, {:.0} ms at 100 ms (the \"per-key \
         comparison\" column). Meanwhile the same key is read or written about every 20 keys / \
         throughput, a few tens of ms (the \"key touched\" column): most replicas a write \
         missed are overwritten by the next write before anti-entropy reaches them. Every 20 \
         ms: {}; never: {}. Seed 000 found ~4% at 20 ms and ~12% without repair; ",
        ctx.size(10_000, 200),
        ctx.seeds().len(),
        per_key(20),
        per_key(100),
        est[0].stale.pct(2),
        est[3].stale.pct(2),
    );
    let _ = write!(
        md,
        "{}\n\n",
        if est[0].stale.hi < est[3].stale.lo {
            "we see the same direction, frequent sync lowers stale reads, with a much smaller \
             effect, as the comparison intervals explain."
        } else if est[0].stale.p < est[3].stale.p {
            "we see the same direction but a much smaller effect, within the intervals, as the \
             comparison intervals explain."
        } else {
            "here frequent sync does not lower stale reads measurably, as the comparison \
             intervals explain."
        }
    );
    md.push_str(&md_table(
        &[
            "sync interval",
            "per-key comparison every (ms)",
            "key touched every (ms)",
            "stale reads",
            "failed ops",
        ],
        &rows,
    ));
    Ok(Report { csv, markdown: md })
}
