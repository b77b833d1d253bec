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

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::plot::{self, Panel, Series};
use super::stats::Estimate;
use super::{md_table, Csv, Ctx, Error, Report};

/// A one-way delay distribution in milliseconds.
#[derive(Debug, Clone, Copy)]
pub enum Delay {
    /// Normal, truncated at zero.
    Normal {
        /// Mean (ms).
        mean: f64,
        /// Standard deviation (ms).
        sd: f64,
    },
    /// Uniform on `[lo, hi]`.
    Uniform {
        /// Lower bound (ms).
        lo: f64,
        /// Upper bound (ms).
        hi: f64,
    },
    /// With probability `p_exp` Exp(`rate`), otherwise Pareto(`xm`, `alpha`) (the PBS fits).
    Mixture {
        /// Probability of the exponential branch.
        p_exp: f64,
        /// Exponential rate in 1/ms.
        rate: f64,
        /// Pareto scale (ms).
        xm: f64,
        /// Pareto shape.
        alpha: f64,
    },
}

impl Delay {
    /// One draw.
    pub fn sample(&self, rng: &mut SmallRng) -> f64 {
        match *self {
            Delay::Normal { mean, sd } => {
                // Box-Muller.
                let u1: f64 = 1.0 - rng.gen::<f64>();
                let u2: f64 = rng.gen();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (mean + sd * z).max(0.0)
            }
            Delay::Uniform { lo, hi } => lo + (hi - lo) * rng.gen::<f64>(),
            Delay::Mixture {
                p_exp,
                rate,
                xm,
                alpha,
            } => {
                let u: f64 = 1.0 - rng.gen::<f64>();
                if rng.gen::<f64>() < p_exp {
                    -u.ln() / rate
                } else {
                    xm / u.powf(1.0 / alpha)
                }
            }
        }
    }
}

/// The four WARS delays, plus a fixed delay on every message to or from a remote replica.
#[derive(Debug, Clone, Copy)]
pub struct Wars {
    /// Name used in the CSV and plots.
    pub name: &'static str,
    /// Write request delay.
    pub w: Delay,
    /// Write ack delay.
    pub a: Delay,
    /// Read request delay.
    pub r: Delay,
    /// Read response delay.
    pub s: Delay,
    /// Added to each message to or from replicas `1..N` (WAN: other datacenters), ms.
    pub remote: f64,
}

const SSD: Delay = Delay::Mixture {
    p_exp: 0.0878,
    rate: 1.66,
    xm: 0.235,
    alpha: 10.0,
};
const DISK_W: Delay = Delay::Mixture {
    p_exp: 0.62,
    rate: 0.183,
    xm: 1.05,
    alpha: 1.51,
};

/// The distributions of the issue: seed 004's normal and uniform (mean 50 ms), a wider normal
/// (to explain the seed's ordering), and the PBS paper's production fits.
pub fn models() -> Vec<Wars> {
    let same = |name, d: Delay| Wars {
        name,
        w: d,
        a: d,
        r: d,
        s: d,
        remote: 0.0,
    };
    let disk = Wars {
        name: "LNKD-DISK",
        w: DISK_W,
        a: SSD,
        r: SSD,
        s: SSD,
        remote: 0.0,
    };
    let ymmr_other = Delay::Mixture {
        p_exp: 0.018,
        rate: 0.0217,
        xm: 1.5,
        alpha: 3.8,
    };
    vec![
        same(
            "normal(50, var 50)",
            Delay::Normal {
                mean: 50.0,
                sd: 50f64.sqrt(),
            },
        ),
        same(
            "normal(50, sd 50)",
            Delay::Normal {
                mean: 50.0,
                sd: 50.0,
            },
        ),
        same("uniform(0, 100)", Delay::Uniform { lo: 0.0, hi: 100.0 }),
        same("LNKD-SSD", SSD),
        disk,
        Wars {
            name: "YMMR",
            w: Delay::Mixture {
                p_exp: 0.061,
                rate: 0.0028,
                xm: 3.0,
                alpha: 3.5,
            },
            a: ymmr_other,
            r: ymmr_other,
            s: ymmr_other,
            remote: 0.0,
        },
        Wars {
            name: "WAN",
            remote: 75.0,
            ..disk
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

/// Counts of consistent reads per (config, time) over `trials` WARS draws.
pub fn simulate(model: &Wars, trials: usize, seed: u64) -> Vec<Vec<u64>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut hits = vec![vec![0u64; TIMES.len()]; CONFIGS.len()];
    let mut w = [0.0; N];
    let mut acked = [0.0; N];
    let mut r = [0.0; N];
    let mut order = [0usize; N];
    for _ in 0..trials {
        let mut rs = [0.0; N];
        // WAN: replica i sits in datacenter i; the write's coordinator in datacenter 0, the
        // read's in a uniformly random one.
        let read_dc = if model.remote > 0.0 {
            rng.gen_range(0..N)
        } else {
            0
        };
        for i in 0..N {
            let wx = if i != 0 { model.remote } else { 0.0 };
            let rx = if i != read_dc { model.remote } else { 0.0 };
            w[i] = model.w.sample(&mut rng) + wx;
            acked[i] = w[i] + model.a.sample(&mut rng) + wx;
            r[i] = model.r.sample(&mut rng) + rx;
            rs[i] = r[i] + model.s.sample(&mut rng) + rx;
        }
        let mut sorted_acks = acked;
        sorted_acks.sort_by(f64::total_cmp);
        for (i, o) in order.iter_mut().enumerate() {
            *o = i;
        }
        order.sort_by(|&a, &b| rs[a].total_cmp(&rs[b]));
        for (c, &(rq, wq)) in CONFIGS.iter().enumerate() {
            let commit = sorted_acks[wq - 1];
            for (ti, &t) in TIMES.iter().enumerate() {
                let fresh = order[..rq].iter().any(|&i| w[i] <= commit + t + r[i]);
                if fresh {
                    hits[c][ti] += 1;
                }
            }
        }
    }
    hits
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
            let hits = simulate(model, trials, seed);
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
            let hits = simulate(&m, 500, 3);
            for (c, &(r, w)) in CONFIGS.iter().enumerate() {
                if r + w > N {
                    assert!(hits[c].iter().all(|&h| h == 500), "{} {r} {w}", m.name);
                }
            }
        }
    }

    #[test]
    fn consistency_grows_with_t() {
        let hits = simulate(&models()[2], 2_000, 5);
        for row in hits {
            assert!(row.windows(2).all(|p| p[0] <= p[1]));
        }
    }
}
