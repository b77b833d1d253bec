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

use dynamo_pbs::{fits, Dist, Wars};

use super::plot::{self, Panel, Series};
use super::stats::Estimate;
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
/// Read start times after commit, ms.
pub const TIMES: [f64; 20] = [
    0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 75.0, 100.0, 150.0,
    200.0, 250.0, 300.0, 400.0,
];

/// Counts of consistent reads per (config, time) over `trials` WARS draws (`dynamo-pbs`'s Monte
/// Carlo; all configs on the same draws).
pub fn simulate(model: &Model, trials: usize, seed: u64) -> Result<Vec<Vec<u64>>, Error> {
    let runs = model
        .wars
        .run(N, &CONFIGS, trials, seed)
        .map_err(|e| Error::Setup {
            experiment: "pbs",
            message: e.to_string(),
        })?;
    Ok(runs
        .iter()
        .map(|s| TIMES.iter().map(|&t| s.consistent(t) as u64).collect())
        .collect())
}

/// Runs experiment 7 (WARS Monte Carlo).
pub fn run_pbs(ctx: &Ctx) -> Result<Report, Error> {
    let trials = ctx.size(100_000, 200);
    let seeds = ctx.seeds();
    let models = models();
    let bar = ctx.progress("pbs", (models.len() * seeds.len()) as u64);
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
    ]);
    // est[model][config][time]
    let mut est = Vec::new();
    for model in &models {
        let mut per_seed = Vec::new();
        for &seed in &seeds {
            let hits = simulate(model, trials, seed)?;
            for (c, &(rq, wq)) in CONFIGS.iter().enumerate() {
                for (ti, &t) in TIMES.iter().enumerate() {
                    let h = hits[c][ti];
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
                    ]);
                }
            }
            per_seed.push(hits);
            bar.inc(1);
        }
        let e: Vec<Vec<Estimate>> = (0..CONFIGS.len())
            .map(|c| {
                (0..TIMES.len())
                    .map(|ti| {
                        let v: Vec<f64> = per_seed
                            .iter()
                            .map(|h| h[c][ti] as f64 / trials as f64)
                            .collect();
                        Estimate::of(&v)
                    })
                    .collect()
            })
            .collect();
        est.push(e);
    }
    bar.finish_and_clear();

    let panels: Vec<Panel> = models
        .iter()
        .zip(&est)
        .map(|(m, e)| Panel {
            title: m.name.to_owned(),
            x_label: "t after commit (ms)".into(),
            y_label: "P(consistent read)".into(),
            y_range: None,
            series: CONFIGS
                .iter()
                .enumerate()
                .filter(|(_, &(r, w))| r + w <= N)
                .map(|(c, &(r, w))| Series {
                    label: format!("R={r} W={w}"),
                    points: TIMES
                        .iter()
                        .zip(&e[c])
                        .filter(|(&t, _)| t <= 300.0)
                        .map(|(&t, x)| (t, x.mean, x.ci))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    plot::draw(
        &ctx.svg("pbs"),
        "PBS (WARS Monte Carlo), N = 3: probability a read t ms after commit sees the write",
        &panels,
        4,
    )?;

    let t_index = |t: f64| TIMES.iter().position(|&x| x == t).unwrap_or(0);
    let mut rows = Vec::new();
    for (m, e) in models.iter().zip(&est) {
        for (c, &(r, w)) in CONFIGS.iter().enumerate() {
            if r + w > N {
                continue;
            }
            let first = TIMES
                .iter()
                .zip(&e[c])
                .find(|(_, x)| x.mean >= 0.999)
                .map_or("> 400".to_owned(), |(t, _)| format!("{t}"));
            rows.push(vec![
                m.name.to_owned(),
                format!("R={r} W={w}"),
                e[c][t_index(0.0)].pct(2),
                e[c][t_index(10.0)].pct(2),
                e[c][t_index(50.0)].pct(2),
                e[c][t_index(100.0)].pct(2),
                first,
            ]);
        }
    }
    let strict_min = models
        .iter()
        .zip(&est)
        .flat_map(|(_, e)| {
            CONFIGS
                .iter()
                .enumerate()
                .filter(|(_, &(r, w))| r + w > N)
                .flat_map(move |(c, _)| e[c].iter().map(|x| x.mean))
        })
        .fold(1.0f64, f64::min);
    let p0 = |name: &str, cfg: (usize, usize)| {
        let m = models.iter().position(|m| m.name == name).unwrap_or(0);
        let c = CONFIGS.iter().position(|&x| x == cfg).unwrap_or(0);
        est[m][c][0]
    };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Monte Carlo of the WARS model, N = 3, {trials} trials per point and seed, {} seeds. \
         Strict quorums (R + W > N) were consistent in every trial (minimum over all points \
         {strict_min:.4}), as the model requires.\n",
        seeds.len()
    );
    let _ = writeln!(
        md,
        "At t = 0 with R = W = 1: normal(50, var 50) {}, uniform(0, 100) {}, normal(50, sd 50) {}; \
         LNKD-SSD {}, LNKD-DISK {}, YMMR {}, WAN {}.\n",
        p0("normal(50, var 50)", (1, 1)).pct(1),
        p0("uniform(0, 100)", (1, 1)).pct(1),
        p0("normal(50, sd 50)", (1, 1)).pct(1),
        p0("LNKD-SSD", (1, 1)).pct(1),
        p0("LNKD-DISK", (1, 1)).pct(1),
        p0("YMMR", (1, 1)).pct(1),
        p0("WAN", (1, 1)).pct(1),
    );
    for name in ["uniform(0, 100)", "LNKD-DISK", "YMMR"] {
        let (w2, r2) = (p0(name, (1, 2)), p0(name, (2, 1)));
        let _ = writeln!(
            md,
            "{name}, t = 0: R=1 W=2 {} against R=2 W=1 {}: {}.\n",
            w2.pct(2),
            r2.pct(2),
            if w2.mean > r2.mean + w2.ci + r2.ci {
                "raising W helps more than raising R"
            } else if r2.mean > w2.mean + w2.ci + r2.ci {
                "raising R helps more than raising W"
            } else {
                "raising either helps about as much"
            }
        );
    }
    let (nv, un, nw) = (
        p0("normal(50, var 50)", (1, 1)),
        p0("uniform(0, 100)", (1, 1)),
        p0("normal(50, sd 50)", (1, 1)),
    );
    let order = |a: Estimate, b: Estimate| if a.mean > b.mean { "more" } else { "less" };
    let _ = writeln!(
        md,
        "Against seed 004, which found uniform more consistent than normal at the same mean: \
         with the seed's stated normal (variance 50 ms², sd 7 ms) uniform(0, 100) (sd 29 ms) is \
         {} consistent than normal at t = 0; against a wider normal (sd 50 ms) uniform is {} \
         consistent. What decides is the spread of the write delays, not the shape: a tight \
         normal leaves almost no window between the first ack and the other replicas' writes. \
         R + W > N is always consistent in WARS, as the seed observed. The production fits \
         show the PBS paper's picture: LNKD-SSD is consistent within a few ms while LNKD-DISK, \
         YMMR and WAN (75 ms per cross-datacenter hop; reads start in a random datacenter) \
         need tens to hundreds of ms, driven by their write-delay tails.\n",
        order(un, nv),
        order(un, nw),
    );
    md.push_str(&md_table(
        &[
            "distribution",
            "R, W",
            "t = 0",
            "t = 10 ms",
            "t = 50 ms",
            "t = 100 ms",
            "t for 99.9% (ms)",
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
            let hits = simulate(&m, 500, 3).expect("valid model");
            for (c, &(r, w)) in CONFIGS.iter().enumerate() {
                if r + w > N {
                    assert!(hits[c].iter().all(|&h| h == 500), "{} {r} {w}", m.name);
                }
            }
        }
    }

    #[test]
    fn consistency_grows_with_t() {
        let hits = simulate(&models()[2], 2_000, 5).expect("valid model");
        for row in hits {
            assert!(row.windows(2).all(|p| p[0] <= p[1]));
        }
    }
}
