//! Experiment 10b: gossip convergence against cluster size, using the gossip crate's
//! deterministic test network (`gossip/tests/sim.rs`, shared with its bench): rounds until a
//! joining cluster agrees on membership, and rounds for one change to reach every node, against
//! the `log2 n + ln n` rounds of push-pull epidemic theory.

use dynamo_gossip::Config;

use super::plot::{self, Axis, Marker, Panel, Pt, Series, Style};
use super::stats::Estimate;
use super::{md_table, Csv, Ctx, Error, Report};

#[allow(dead_code, unreachable_pub, missing_docs, clippy::all)]
#[path = "../../../gossip/tests/sim.rs"]
mod sim;

/// Runs experiment 10b.
pub fn run(ctx: &Ctx) -> Result<Report, Error> {
    let sizes: Vec<u32> = if ctx.tiny {
        vec![5, 10]
    } else {
        vec![10, 20, 50, 100, 200]
    };
    let spreads = ctx.size(20, 2);
    let seeds = ctx.seeds();
    let loss = 0.05;
    let mut bar = ctx.progress("gossip", (sizes.len() * seeds.len()) as u64);
    let mut csv = Csv::new(&[
        "nodes",
        "seed",
        "loss",
        "delay_ms",
        "interval_ms",
        "join_rounds",
        "spread_trials",
        "spread_rounds_mean",
        "spread_rounds_max",
        "bytes_per_node_per_round",
    ]);
    let mut join_s = Series::new("rounds to agree on membership (join)");
    let mut spread_s = Series::new("rounds for a change to reach all (mean)");
    let mut max_s = Series::new("rounds for a change to reach all (max)");
    let mut bound_s = Series::new("log2 n + ln n").styled(Style {
        dashed: true,
        marker: Some(Marker::None),
        ..Style::default()
    });
    let mut rows = Vec::new();
    // Spread trials that did not reach every node within 120 s: left out of the means and
    // maxima, and counted in the text (they would otherwise bias both low unseen).
    let (mut unfinished, mut tried) = (0usize, 0usize);
    for &n in &sizes {
        let (mut joins, mut means, mut maxes, mut bytes) = (vec![], vec![], vec![], vec![]);
        for &seed in &seeds {
            let config = Config::default();
            let interval = config.gossip_interval.as_millis() as u64;
            let mut s = sim::Sim::cluster(seed, config, n, 3);
            s.loss = loss;
            let join = s
                .run_until_converged(600_000)
                .map_or(f64::NAN, |ms| ms as f64 / interval as f64);
            let b0 = s.bytes_sent;
            s.run_for(10 * interval);
            let per_round = (s.bytes_sent - b0) as f64 / (10.0 * f64::from(n));
            let spread: Vec<f64> = (0..spreads)
                .filter_map(|t| s.rounds_to_spread(&format!("k{t}"), 120_000))
                .map(|r| r as f64)
                .collect();
            tried += spreads;
            unfinished += spreads - spread.len();
            let m = super::stats::mean(&spread);
            let mx = spread.iter().copied().fold(0.0f64, f64::max);
            csv.push(vec![
                n.to_string(),
                seed.to_string(),
                loss.to_string(),
                "1-100".into(),
                interval.to_string(),
                format!("{join}"),
                spread.len().to_string(),
                format!("{m:.3}"),
                format!("{mx}"),
                format!("{per_round:.0}"),
            ]);
            joins.push(join);
            means.push(m);
            maxes.push(mx);
            bytes.push(per_round);
            bar.inc(1);
        }
        let (j, m, x, b) = (
            Estimate::of(&joins),
            Estimate::of(&means),
            Estimate::of(&maxes),
            Estimate::of(&bytes),
        );
        let bound = f64::from(n).log2() + f64::from(n).ln();
        let nf = f64::from(n);
        let pt = |e: Estimate| Pt::interval(nf, e.mean, (e.mean - e.ci).max(0.0), e.mean + e.ci);
        join_s.points.push(pt(j));
        spread_s.points.push(pt(m));
        max_s.points.push(pt(x));
        bound_s.points.push(Pt::new(nf, bound));
        rows.push(vec![
            n.to_string(),
            j.show(1),
            m.show(2),
            x.show(1),
            format!("{bound:.1}"),
            b.show(0),
        ]);
    }
    bar.finish_and_clear();
    plot::draw(
        &ctx.svg("gossip"),
        "Gossip convergence (1 s rounds, 5% loss, 1-100 ms delay, 3 seed nodes)",
        &[Panel {
            series: vec![join_s, spread_s, max_s, bound_s],
            ..Panel::new(
                "rounds against cluster size",
                Axis::log("nodes (log scale)"),
                Axis::non_negative("gossip rounds"),
            )
        }],
        1,
    )?;
    let mut md = format!(
        "Scuttlebutt gossip (dynamo-gossip) on the crate's deterministic network: 1 s rounds, 5% \
         message loss, 1-100 ms delays, 3 seed nodes, {} seeds, {spreads} spread trials per seed. \
         Rounds for a change to reach every node grow logarithmically with the cluster, staying \
         at or below the `log2 n + ln n` of push-pull epidemics; joining takes longer because \
         nodes first learn each other through the seeds. No seed document measured this. \
         {unfinished} of {tried} spread trials did not reach every node within 120 s; the means \
         and maxima are of the others.\n\n",
        seeds.len()
    );
    md.push_str(&md_table(
        &[
            "nodes",
            "join rounds",
            "spread rounds (mean)",
            "spread rounds (max)",
            "log2 n + ln n",
            "bytes/node/round",
        ],
        &rows,
    ));
    Ok(Report { csv, markdown: md })
}
