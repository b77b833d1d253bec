//! Experiment 7: probabilistically bounded staleness (Bailis et al., VLDB 2012; seed 004,
//! figures 1-2) by Monte Carlo of the WARS model. The same question on the full simulator is in
//! `pbs_sim`, the k-staleness closed form in `kstaleness`.
//!
//! WARS: for each of the N replicas draw W (write request to the replica), A (its ack back), R
//! (read request to it) and S (its response). A write commits when the W-th ack arrives. A read
//! issued `t` ms after the commit reaches replica i at `commit + t + R_i`, which then has the
//! write iff `W_i <= commit + t + R_i`. The coordinator returns after the first R responses (in
//! order of `R_i + S_i`); the read is consistent iff one of them had the write.

use std::fmt::Write as _;

use dynamo_pbs::{fits, Dist, Staleness, Wars};

use super::plot::{self, Axis, Panel, Series};
use super::stats::{Estimate, Proportion};
use super::{md_table, Csv, Ctx, Error, Report};

/// A named WARS model (the model itself is `dynamo-pbs`'s).
#[derive(Debug, Clone)]
pub struct Model {
    /// Name used in the CSV and plots.
    pub name: &'static str,
    /// The four delays.
    pub wars: Wars,
}

impl Model {
    /// The write-request delay W, when the model gives it on its own (every model here does).
    pub fn write_delay(&self) -> Option<&Dist> {
        match &self.wars.write {
            dynamo_pbs::Legs::OneWay { request, .. } => Some(request),
            _ => None,
        }
    }
}

/// The distributions of the issue: seed 004's normal and uniform (mean 50 ms), a wider normal
/// (to explain the seed's ordering), and the PBS paper's production fits (`dynamo_pbs::fits`).
pub fn models() -> Vec<Model> {
    let same = |name, d: Dist| Model {
        name,
        wars: Wars::new(d.clone(), d.clone(), d.clone(), d),
    };
    vec![
        same(
            "normal(50, var 50)",
            Dist::Normal {
                mean: 50.0,
                sd: 50f64.sqrt(),
            },
        ),
        same(
            "normal(50, sd 50)",
            Dist::Normal {
                mean: 50.0,
                sd: 50.0,
            },
        ),
        same("uniform(0, 100)", Dist::Uniform { lo: 0.0, hi: 100.0 }),
        Model {
            name: "LNKD-SSD",
            wars: fits::LNKD_SSD,
        },
        Model {
            name: "LNKD-DISK",
            wars: fits::LNKD_DISK,
        },
        Model {
            name: "YMMR",
            wars: fits::YMMR,
        },
        Model {
            name: "WAN",
            wars: fits::LNKD_DISK.with_remote(75.0),
        },
    ]
}

/// The (R, W) settings for N = 3.
pub const CONFIGS: [(usize, usize); 6] = [(1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (3, 1)];
/// Replication factor of experiment 7.
pub const N: usize = 3;
/// The target probability whose time the tables give.
pub const TARGET: f64 = 0.999;

/// One WARS Monte Carlo per config of [`CONFIGS`] (`dynamo-pbs`; all configs on the same draws).
pub fn staleness(model: &Model, trials: usize, seed: u64) -> Result<Vec<Staleness>, Error> {
    model
        .wars
        .run(N, &CONFIGS, trials, seed)
        .map_err(|e| Error::Setup {
            experiment: "pbs",
            message: e.to_string(),
        })
}

/// Read times for the CSV and the curves: 0, then 1-2-5 steps from 0.01 ms up to the first
/// step at or beyond `until` ms.
pub fn times(until: f64) -> Vec<f64> {
    let mut v = vec![0.0];
    let mut decade: f64 = 0.01;
    'outer: loop {
        for m in [1.0, 2.0, 5.0] {
            let t = m * decade;
            v.push((t * 1e6).round() / 1e6);
            if t >= until {
                break 'outer;
            }
        }
        decade *= 10.0;
    }
    v
}

/// Points of a curve on a log time axis: 20 per decade from 0.01 ms to `until`.
pub fn curve_times(until: f64) -> Vec<f64> {
    let decades = (until / 0.01).log10().ceil().max(1.0) as usize;
    (0..=decades * 20)
        .map(|i| 0.01 * 10f64.powf(i as f64 / 20.0))
        .collect()
}

/// P(consistent at `t`) pooled over per-seed runs, with its interval.
pub fn pooled(runs: &[&Staleness], t: f64) -> Proportion {
    Proportion::of(
        &runs
            .iter()
            .map(|s| (s.consistent(t) as u64, s.trials() as u64))
            .collect::<Vec<_>>(),
    )
}

/// The exact time to [`TARGET`] of each run (the order statistic of its trials' windows).
pub fn time_to_target(runs: &[&Staleness]) -> Estimate {
    Estimate::of(
        &runs
            .iter()
            .filter_map(|s| s.time_to(TARGET))
            .collect::<Vec<_>>(),
    )
}

/// Runs experiment 7 (WARS Monte Carlo).
pub fn run_pbs(ctx: &Ctx) -> Result<Report, Error> {
    let trials = ctx.size(100_000, 2_000);
    let seeds = ctx.seeds();
    let models = models();
    let mut bar = ctx.progress("pbs", (models.len() * seeds.len()) as u64);
    // runs[model][seed][config]
    let mut runs: Vec<Vec<Vec<Staleness>>> = Vec::new();
    for model in &models {
        let mut per_seed = Vec::new();
        for &seed in &seeds {
            per_seed.push(staleness(model, trials, seed)?);
            bar.inc(1);
        }
        runs.push(per_seed);
    }
    bar.finish_and_clear();
    let of = |m: usize, c: usize| -> Vec<&Staleness> { runs[m].iter().map(|r| &r[c]).collect() };
    let longest = (0..models.len())
        .flat_map(|m| (0..CONFIGS.len()).map(move |c| (m, c)))
        .flat_map(|(m, c)| of(m, c).into_iter().filter_map(|s| s.time_to(TARGET)))
        .fold(1.0f64, f64::max);
    let grid = times(longest);
    let mut csv = Csv::new(&[
        "distribution",
        "n",
        "r",
        "w",
        "t_ms",
        "seed",
        "trials",
        "consistent",
        "p_consistent",
        "t_999_ms",
    ]);
    for (m, model) in models.iter().enumerate() {
        for (seed_i, &seed) in seeds.iter().enumerate() {
            for (c, &(rq, wq)) in CONFIGS.iter().enumerate() {
                let s = &runs[m][seed_i][c];
                let t999 = s
                    .time_to(TARGET)
                    .map_or(String::new(), |t| format!("{t:.4}"));
                for &t in &grid {
                    let h = s.consistent(t);
                    csv.push(vec![
                        model.name.to_owned(),
                        N.to_string(),
                        rq.to_string(),
                        wq.to_string(),
                        t.to_string(),
                        seed.to_string(),
                        trials.to_string(),
                        h.to_string(),
                        format!("{:.6}", h as f64 / trials as f64),
                        t999.clone(),
                    ]);
                }
            }
        }
    }
    let curve = curve_times(longest);
    let panels: Vec<Panel> = models
        .iter()
        .enumerate()
        .map(|(m, model)| {
            let mut p = Panel::new(
                model.name,
                Axis::log("t after commit (ms, log scale)"),
                Axis::probability("P(consistent read)"),
            );
            let all_one = CONFIGS
                .iter()
                .enumerate()
                .all(|(c, _)| pooled(&of(m, c), 0.0).p >= 1.0);
            if all_one {
                p.title = format!(
                    "{}: every choice always consistent (lines coincide at 1)",
                    model.name
                );
            }
            p.series = CONFIGS
                .iter()
                .enumerate()
                .filter(|(_, &(r, w))| r + w <= N)
                .map(|(c, &(r, w))| {
                    let mut s = Series::new(format!("R={r} W={w}")).styled(plot::Style {
                        marker: Some(plot::Marker::None),
                        band: true,
                        ..plot::Style::default()
                    });
                    s.points = curve
                        .iter()
                        .map(|&t| pooled(&of(m, c), t).point(t, 1.0))
                        .collect();
                    s
                })
                .collect();
            p
        })
        .collect();
    plot::draw(
        &ctx.svg("pbs"),
        "PBS (WARS Monte Carlo), N = 3: probability that a read t ms after commit sees the \
         write (R + W > N is always 1 and not drawn)",
        &panels,
        4,
    )?;
    let mut rows = Vec::new();
    for (m, model) in models.iter().enumerate() {
        for (c, &(r, w)) in CONFIGS.iter().enumerate() {
            if r + w > N {
                continue;
            }
            let runs = of(m, c);
            rows.push(vec![
                model.name.to_owned(),
                format!("R={r} W={w}"),
                pooled(&runs, 0.0).pct(2),
                pooled(&runs, 10.0).pct(2),
                pooled(&runs, 100.0).pct(2),
                time_to_target(&runs).show(2),
            ]);
        }
    }
    let strict_min = (0..models.len())
        .flat_map(|m| {
            CONFIGS
                .iter()
                .enumerate()
                .filter(|(_, &(r, w))| r + w > N)
                .map(move |(c, _)| (m, c))
        })
        .map(|(m, c)| pooled(&of(m, c), 0.0).p)
        .fold(1.0f64, f64::min);
    let p0 = |name: &str, cfg: (usize, usize)| {
        let m = models.iter().position(|m| m.name == name).unwrap_or(0);
        let c = CONFIGS.iter().position(|&x| x == cfg).unwrap_or(0);
        pooled(&of(m, c), 0.0)
    };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Monte Carlo of the WARS model, N = 3, {trials} trials per point and seed, {} seeds. \
         Strict quorums (R + W > N) were consistent in every trial (minimum over all points \
         {strict_min:.4}), as the model requires. The time to 99.9% is exact for each run: \
         every trial has a staleness window (the read is consistent iff it starts at least \
         that long after the commit), and the time to 99.9% is the 99.9th percentile of the \
         windows (`dynamo_pbs::Staleness::time_to`); the table gives its mean over the seeds. \
         The curves and the CSV run until every distribution has passed 99.9% ({longest:.0} ms \
         for the slowest, YMMR with R = W = 1), on a log time axis so that the \
         millisecond-scale LNKD curves are visible; t = 0 is in the table.\n",
        seeds.len()
    );
    let _ = writeln!(
        md,
        "At t = 0 with R = W = 1: normal(50, var 50) {}, uniform(0, 100) {}, normal(50, sd 50) \
         {}; LNKD-SSD {}, LNKD-DISK {}, YMMR {}, WAN {}.\n",
        p0("normal(50, var 50)", (1, 1)).pct(1),
        p0("uniform(0, 100)", (1, 1)).pct(1),
        p0("normal(50, sd 50)", (1, 1)).pct(1),
        p0("LNKD-SSD", (1, 1)).pct(1),
        p0("LNKD-DISK", (1, 1)).pct(1),
        p0("YMMR", (1, 1)).pct(1),
        p0("WAN", (1, 1)).pct(1),
    );
    // Every distribution of the table: the verdict is read off all of them, not a chosen few.
    let (mut r_wins, mut w_wins) = (Vec::new(), Vec::new());
    for model in models.iter() {
        let name = model.name;
        let (w2, r2) = (p0(name, (1, 2)), p0(name, (2, 1)));
        if r2.lo > w2.hi {
            r_wins.push(name);
        }
        if w2.lo > r2.hi {
            w_wins.push(name);
        }
        let _ = writeln!(
            md,
            "{name}, t = 0: R=1 W=2 {} against R=2 W=1 {}: {}.\n",
            w2.pct(2),
            r2.pct(2),
            if w2.lo > r2.hi {
                "raising W helps more than raising R"
            } else if r2.lo > w2.hi {
                "raising R helps more than raising W"
            } else {
                "raising either helps about as much"
            }
        );
    }
    let listed = |names: &[&str]| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let verdict = match r_wins.len().cmp(&w_wins.len()) {
        std::cmp::Ordering::Greater => "these results do not support it in general",
        std::cmp::Ordering::Less => "these results support it",
        std::cmp::Ordering::Equal => "these results neither support nor refute it",
    };
    let _ = writeln!(
        md,
        "**Seed 004 concluded that W has the highest impact on consistency; {verdict}**: of the \
         {} distributions above, raising R from 1 to 2 helps more than raising W from 1 to 2 for \
         {} ({}), raising W helps more for {} ({}), and the two are within each other's \
         intervals for the rest. Without timing the two are symmetric: a read of R meets a \
         write of W among N = 3 replicas with probability 1 - C(N-W, R) / C(N, R), 2/3 for both \
         R=1 W=2 and R=2 W=1 (experiment 7b). What breaks the symmetry is where the delay is. \
         A tail of late writes favours R: with W = 2 and R = 1 the read is stale when its single \
         fastest responder is the one replica whose write is late; with W = 1 and R = 2 it is \
         stale only when *both* of its first two responders lack the write, which needs two \
         late writes at once, and one straggler is far likelier than two (LNKD-DISK, YMMR: a few \
         percent of writes take tens to hundreds of ms). A fixed distance between replicas \
         favours W: in WAN every replica but the coordinator's is a cross-datacenter hop away, \
         so a second acknowledgement takes a whole round trip across, during which the write \
         reaches the other remote replica as well; with W = 2 the commit waits until nearly every \
         replica holds the write, while with W = 1 it commits at once and a read that starts in \
         another datacenter asks replicas the write has not reached yet. Seed 004's figure 6 \
         measured another quantity (the share of the R answers that hold the latest value, \
         experiment 9), which does grow with W by construction.\n",
        models.len(),
        r_wins.len(),
        listed(&r_wins),
        w_wins.len(),
        listed(&w_wins),
    );
    let (nv, un, nw) = (
        p0("normal(50, var 50)", (1, 1)),
        p0("uniform(0, 100)", (1, 1)),
        p0("normal(50, sd 50)", (1, 1)),
    );
    let order = |a: Proportion, b: Proportion| if a.p > b.p { "more" } else { "less" };
    let _ = writeln!(
        md,
        "Against seed 004, which found uniform more consistent than normal at the same mean: \
         with the seed's stated normal (variance 50 ms², sd 7 ms) uniform(0, 100) (sd 29 ms) is \
         {} consistent than normal at t = 0; against a wider normal (sd 50 ms) uniform is {} \
         consistent. What decides is the spread of the write delays, not the shape: a tight \
         normal leaves almost no window between the first ack and the other replicas' writes. \
         R + W > N is always consistent in WARS, as the seed observed. The production fits \
         show the PBS paper's picture at R = W = 1: LNKD-SSD is consistent within a few ms while \
         LNKD-DISK, YMMR and WAN (75 ms per cross-datacenter hop; reads start in a random \
         datacenter) need tens to hundreds of ms, driven by their write-delay tails and, for \
         WAN, the distance.\n",
        order(un, nv),
        order(un, nw),
    );
    md.push_str(&md_table(
        &[
            "distribution",
            "R, W",
            "t = 0",
            "t = 10 ms",
            "t = 100 ms",
            "t for 99.9% (ms, exact per run)",
        ],
        &rows,
    ));
    Ok(Report { csv, markdown: md })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_quorums_always_consistent_in_wars() {
        for m in models() {
            let runs = staleness(&m, 500, 3).expect("valid model");
            for (c, &(r, w)) in CONFIGS.iter().enumerate() {
                if r + w > N {
                    assert_eq!(runs[c].consistent(0.0), 500, "{} {r} {w}", m.name);
                }
            }
        }
    }

    #[test]
    fn the_time_grid_reaches_its_end_in_one_two_five_steps() {
        let t = times(370.0);
        assert_eq!(t.first(), Some(&0.0));
        assert_eq!(t.get(1), Some(&0.01));
        assert_eq!(t.last(), Some(&500.0));
        assert!(t.windows(2).all(|w| w[0] < w[1]));
    }
}
