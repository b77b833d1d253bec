//! Experiments 1-3 (seed 000): stale reads against message drops with and without repair,
//! against the quorum settings, and against the background sync interval; all on the full
//! simulator, N = 4 on 6 nodes, 10 clients over 20 keys so reads and writes overlap in time.

use std::fmt::Write as _;

use dynamo_node::sim::dist::Dist;
use dynamo_node::NodeConfig;

use super::cluster::{measure_seeds, Point};
use super::plot::{self, Panel, Series};
use super::stats::Estimate;
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
const COLUMNS: [&str; 16] = [
    "experiment",
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

fn run_cases(
    ctx: &Ctx,
    name: &'static str,
    cases: &[Case],
    csv: &mut Csv,
) -> Result<Vec<Estimate>, Error> {
    let ops = ctx.size(10_000, 200);
    let seeds = ctx.seeds();
    let bar = ctx.progress(name, cases.len() as u64);
    let mut out = Vec::new();
    for case in cases {
        let mut point = Point::new(NODES, node(case.r, case.w, case.repair), latency(), ops);
        point.link.drop = case.drop;
        let runs = measure_seeds(&point, &seeds)?;
        let mut rates = Vec::new();
        for (m, seed) in runs.iter().zip(&seeds) {
            csv.push(vec![
                name.to_owned(),
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
                ((m.stale * m.judged as f64).round() as u64).to_string(),
                format!("{:.6}", m.stale),
                m.failed.to_string(),
            ]);
            rates.push(m.stale);
        }
        out.push(Estimate::of(&rates));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Experiment 1: drop rates 0, 1, 5, 10%, R = 1, W = 2, no repair against read repair plus
/// anti-entropy every 50 ms plus hinted handoff.
pub fn run_repair(ctx: &Ctx) -> Result<Report, Error> {
    let drops = [0.0, 0.01, 0.05, 0.10];
    let on = Repair {
        sync: Some(50),
        read_repair: true,
        handoff: true,
    };
    let mut cases = Vec::new();
    for &d in &drops {
        for (label, repair) in [("no repair", Repair::OFF), ("repair", on)] {
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
    let mut off_s = Series::new("no repair");
    let mut on_s = Series::new("read repair + anti-entropy 50 ms + handoff");
    let mut rows = Vec::new();
    for (case, e) in cases.iter().zip(&est) {
        let s = if case.repair.read_repair {
            &mut on_s
        } else {
            &mut off_s
        };
        s.points
            .push((case.drop * 100.0, e.mean * 100.0, e.ci * 100.0));
    }
    for (i, &d) in drops.iter().enumerate() {
        rows.push(vec![
            format!("{}%", d * 100.0),
            est[2 * i].pct(2),
            est[2 * i + 1].pct(2),
        ]);
    }
    plot::draw(
        &ctx.svg("repair"),
        "Stale reads against message drops (N=4, R=1, W=2, 6 nodes)",
        &[Panel {
            title: "with and without repair".into(),
            x_label: "message drop rate (%)".into(),
            y_label: "stale reads (%)".into(),
            series: vec![off_s, on_s],
            y_range: None,
        }],
        1,
    )?;
    let last = drops.len() - 1;
    let mut md = format!(
        "{} operations per point and seed, {} seeds, 6 nodes, N = 4, R = 1, W = 2 (so writes \
         can succeed on 2 replicas and miss the others: partial write failures), links uniform \
         1-20 ms. A get is stale if it misses the last put acknowledged before it started. At \
         {}% drops: no repair {}, with repair {}. Seed 000 reported up to 14% without repair \
         and under 7% with it at 10% drops; ",
        ctx.size(10_000, 200),
        ctx.seeds().len(),
        drops[last] * 100.0,
        est[2 * last].pct(2),
        est[2 * last + 1].pct(2),
    );
    let _ = write!(
        md,
        "{}. Our absolute rates depend on the workload (10 closed-loop clients on 20 keys) and \
         the latency spread; the seed ran 100 operations, so its rates carry a few points of \
         sampling error.\n\n",
        if est[2 * last + 1].mean < est[2 * last].mean {
            "we see the same direction: repair lowers the stale rate"
        } else {
            "unlike the seed, repair does not lower the stale rate here"
        }
    );
    md.push_str(&md_table(&["drop rate", "no repair", "with repair"], &rows));
    let _ = cases.len();
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
    let mut series = Series::new("stale reads");
    let mut rows = Vec::new();
    for (i, (case, e)) in cases.iter().zip(&est).enumerate() {
        series.points.push((i as f64, e.mean * 100.0, e.ci * 100.0));
        rows.push(vec![
            case.label.clone(),
            (case.r + case.w > 4).to_string(),
            e.pct(2),
        ]);
    }
    plot::draw(
        &ctx.svg("quorum"),
        "Stale reads against (R, W), N = 4, repairs off",
        &[Panel {
            title: configs
                .iter()
                .enumerate()
                .map(|(i, (r, w))| format!("{i}: R={r} W={w}"))
                .collect::<Vec<_>>()
                .join("  "),
            x_label: "configuration (index)".into(),
            y_label: "stale reads (%)".into(),
            series: vec![series],
            y_range: None,
        }],
        1,
    )?;
    let strict_max = cases
        .iter()
        .zip(&est)
        .filter(|(c, _)| c.r + c.w > 4)
        .map(|(_, e)| e.mean)
        .fold(0.0f64, f64::max);
    let md_text =
        format!(
        "{} operations per point and seed, {} seeds, 6 nodes, N = 4, no drops, no read repair, \
         anti-entropy or handoff, 10 clients on 20 keys so operations overlap. (1, 1) and (2, 2) \
         are added as sloppy references. Largest stale rate among R + W > N settings: {:.3}%. \
         Seed 000 saw about 15% stale reads with R = 1 even at W = 4 and concluded that overlap \
         defeats R + W > N. With our definition (a get must see every put acknowledged before \
         it *started*), a quorum that intersects the last acknowledged write cannot miss it, so \
         R + W > N gives {}; the seed's stale reads were most likely reads concurrent with the \
         write, which we do not count as stale.\n\n",
        ctx.size(10_000, 200),
        ctx.seeds().len(),
        strict_max * 100.0,
        if strict_max == 0.0 {
            "no stale reads at all".to_owned()
        } else {
            format!("at most {:.3}% (sloppy quorums may write to fallbacks)", strict_max * 100.0)
        }
    );
    let mut md = md_text;
    md.push_str(&md_table(&["R, W", "R + W > N", "stale reads"], &rows));
    Ok(Report { csv, markdown: md })
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
    let mut series = Series::new("stale reads (never = 200 on the x axis)");
    let mut rows = Vec::new();
    for (case, e) in cases.iter().zip(&est) {
        let x = case.repair.sync.map_or(200.0, |s| s as f64);
        series.points.push((x, e.mean * 100.0, e.ci * 100.0));
        rows.push(vec![case.label.clone(), e.pct(2)]);
    }
    plot::draw(
        &ctx.svg("sync"),
        "Stale reads against the sync interval (N=4, R=1, W=3, 5% drops)",
        &[Panel {
            title: "anti-entropy + gossip interval".into(),
            x_label: "interval (ms; 200 = never)".into(),
            y_label: "stale reads (%)".into(),
            series: vec![series],
            y_range: None,
        }],
        1,
    )?;
    let mut md = format!(
        "{} operations per point and seed, {} seeds, 6 nodes, N = 4, R = 1, W = 3, 5% message \
         drops (without drops a W = 3 write misses at most one replica for a few ms and there is \
         little for anti-entropy to repair), read repair and handoff off. Every 20 ms: {}; \
         never: {}. Seed 000 found ~4% at 20 ms and ~12% without repair; ",
        ctx.size(10_000, 200),
        ctx.seeds().len(),
        est[0].pct(2),
        est[3].pct(2),
    );
    let _ = write!(
        md,
        "{}\n\n",
        if est[0].mean + est[0].ci < est[3].mean - est[3].ci {
            "we see the same direction, frequent sync lowers stale reads."
        } else if est[0].mean < est[3].mean {
            "we see the same direction but a much smaller effect, within the confidence \
             intervals: with R = 1, W = 3 of N = 4 a read misses only when it lands on the one \
             replica the write skipped, and anti-entropy can only fix that between the write \
             and the read, which are a few ms apart here."
        } else {
            "here frequent sync does not lower stale reads measurably."
        }
    );
    md.push_str(&md_table(&["sync interval", "stale reads"], &rows));
    Ok(Report { csv, markdown: md })
}
