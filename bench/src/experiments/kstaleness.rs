//! Experiment 7b: the PBS k-staleness closed form against a Monte Carlo of its own model.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::plot::{self, Axis, Marker, Panel, Series, Style};
use super::stats::Proportion;
use super::{md_table, Csv, Ctx, Error, Report};

pub use dynamo_pbs::binomial;

/// PBS k-staleness closed form (`dynamo_pbs::k_staleness`): probability that a read quorum of R
/// out of N intersects one of the last k write quorums of W, `1 - (C(N-W, R) / C(N, R))^k`.
/// Invalid (N, R, W) give NaN.
pub fn k_staleness(n: usize, r: usize, w: usize, k: u32) -> f64 {
    dynamo_pbs::Quorum::new(n, r, w).map_or(f64::NAN, |q| dynamo_pbs::k_staleness(q, k))
}

/// Monte Carlo of the same model: `k` writes, each to a uniformly random W-subset of N
/// replicas, then a read of a random R-subset; fraction of reads that intersect some write set.
pub fn k_staleness_mc(n: usize, r: usize, w: usize, k: u32, trials: usize, seed: u64) -> f64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let pick = |rng: &mut SmallRng, m: usize| -> u64 {
        // Partial Fisher-Yates over 0..n, as a bitmask.
        let mut idx: Vec<usize> = (0..n).collect();
        let mut mask = 0u64;
        for i in 0..m.min(n) {
            let j = rng.gen_range(i..n);
            idx.swap(i, j);
            mask |= 1 << idx[i];
        }
        mask
    };
    let mut hits = 0usize;
    for _ in 0..trials {
        let mut written = 0u64;
        for _ in 0..k {
            written |= pick(&mut rng, w);
        }
        if pick(&mut rng, r) & written != 0 {
            hits += 1;
        }
    }
    hits as f64 / trials as f64
}

/// Runs experiment 7b (k-staleness).
pub fn run_k_staleness(ctx: &Ctx) -> Result<Report, Error> {
    let trials = ctx.size(100_000, 200);
    let seeds = ctx.seeds();
    let configs: [(usize, usize, usize); 6] = [
        (3, 1, 1),
        (3, 1, 2),
        (3, 2, 1),
        (5, 1, 1),
        (5, 1, 2),
        (5, 2, 2),
    ];
    let ks: Vec<u32> = (1..=6).collect();
    let mut bar = ctx.progress("k-staleness", (configs.len() * ks.len()) as u64);
    let mut csv = Csv::new(&[
        "n",
        "r",
        "w",
        "k",
        "seed",
        "trials",
        "p_simulated",
        "p_closed_form",
    ]);
    let mut rows = Vec::new();
    let mut panels_series = Vec::new();
    let mut worst = 0.0f64;
    let mut outside = 0usize;
    // Closed forms already drawn, by (N, miss probability): equal ones share a line.
    let mut drawn: Vec<(usize, f64, usize)> = Vec::new();
    for (ci, &(n, r, w)) in configs.iter().enumerate() {
        let mut sim_series = Series::new(format!("N={n} R={r} W={w} simulated")).styled(Style {
            color: Some(ci % 3),
            line: false,
            marker: Some(Marker::Circle),
            ..Style::default()
        });
        let mut cf_series = Series::new(format!("N={n} R={r} W={w} closed form")).styled(Style {
            color: Some(ci % 3),
            dashed: true,
            marker: Some(Marker::None),
            ..Style::default()
        });
        for &k in &ks {
            let closed = k_staleness(n, r, w, k);
            let values: Vec<(u64, u64)> = seeds
                .iter()
                .map(|&s| {
                    let p = k_staleness_mc(n, r, w, k, trials, s * 1000 + u64::from(k));
                    csv.push(vec![
                        n.to_string(),
                        r.to_string(),
                        w.to_string(),
                        k.to_string(),
                        s.to_string(),
                        trials.to_string(),
                        format!("{p:.6}"),
                        format!("{closed:.6}"),
                    ]);
                    ((p * trials as f64).round() as u64, trials as u64)
                })
                .collect();
            let e = Proportion::of(&values);
            worst = worst.max((e.p - closed).abs());
            if closed < e.lo || closed > e.hi {
                outside += 1;
            }
            sim_series.points.push(e.point(f64::from(k), 1.0));
            cf_series.points.push(plot::Pt::new(f64::from(k), closed));
            rows.push(vec![
                format!("N={n} R={r} W={w}"),
                k.to_string(),
                format!("{:.4}", closed),
                e.frac(4),
            ]);
            bar.inc(1);
        }
        panels_series.push(sim_series);
        let miss = k_staleness(n, r, w, 1);
        match drawn
            .iter()
            .find(|&&(dn, dm, _)| dn == n && (dm - miss).abs() < 1e-12)
        {
            Some(&(_, _, index)) => {
                // Same closed form as an earlier config: one line, both names.
                if let Some(s) = panels_series.get_mut(index) {
                    s.label = s
                        .label
                        .replace(" closed form", &format!(" = R={r} W={w} closed form"));
                }
            }
            None => {
                drawn.push((n, miss, panels_series.len()));
                panels_series.push(cf_series);
            }
        }
    }
    bar.finish_and_clear();
    let (n3, n5): (Vec<_>, Vec<_>) = panels_series
        .into_iter()
        .partition(|s| s.label.starts_with("N=3"));
    let panel = |title: &str, series: Vec<Series>| Panel {
        series,
        dodge: 0.3,
        ..Panel::new(
            title,
            Axis::integer("k (versions)"),
            Axis::probability("P(read within k versions)"),
        )
    };
    let panels = vec![panel("N = 3", n3), panel("N = 5", n5)];
    plot::draw(
        &ctx.svg("k-staleness"),
        "PBS k-staleness: 1 - (C(N-W,R)/C(N,R))^k against Monte Carlo",
        &panels,
        2,
    )?;
    let mut md = format!(
        "The closed form `p = 1 - (C(N-W, R) / C(N, R))^k` against a Monte Carlo of its model \
         (each of the last k writes reaches a random W of N replicas, the read asks a random R; \
         no repair), {trials} reads per point and seed, {} seeds. Largest difference between \
         simulation and closed form: {worst:.4}; points whose 95% interval misses the closed \
         form: {outside} of {} (about 5% expected by chance). Example: N = 3, R = W = 1 reads \
         the latest write with p = 1/3 and is within 3 versions with p = {:.3}. The seeds do not \
         report k-staleness.\n\n",
        seeds.len(),
        rows.len(),
        k_staleness(3, 1, 1, 3),
    );
    md.push_str(&md_table(
        &["config", "k", "closed form", "simulated"],
        &rows,
    ));
    Ok(Report { csv, markdown: md })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_matches_hand_values() {
        // N=3, R=1, W=1: miss prob 2/3 per version.
        assert!((k_staleness(3, 1, 1, 1) - 1.0 / 3.0).abs() < 1e-12);
        assert!((k_staleness(3, 1, 1, 2) - (1.0 - 4.0 / 9.0)).abs() < 1e-12);
        // Strict quorum always intersects.
        assert_eq!(k_staleness(3, 2, 2, 1), 1.0);
    }

    #[test]
    fn monte_carlo_close_to_closed_form() {
        let p = k_staleness_mc(3, 1, 1, 2, 20_000, 9);
        assert!((p - k_staleness(3, 1, 1, 2)).abs() < 0.02, "{p}");
    }
}
