//! Experiment 10a: Dynamo's partitioning strategies 1 (T random tokens per node) and 3 (Q equal
//! partitions), S = 30 nodes, N = 3: load-balancing efficiency (mean load over the hottest
//! node's load) against the membership information a node holds (paper section 6.2, figure 8).

use dynamo_ring::{NodeSpec, Ring, RingConfig, Strategy};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::plot::{self, Axis, Panel, Pt, Series};
use super::stats::Estimate;
use super::{md_table, Csv, Ctx, Error, Report};

const NODES: u32 = 30;
const KEYS: usize = 100_000;

fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = (1..=n)
        .map(|r| {
            acc += 1.0 / r as f64;
            acc
        })
        .collect();
    for c in &mut cdf {
        *c /= acc;
    }
    cdf
}

fn efficiency(ring: &Ring<u32>, skewed: bool, requests: usize, seed: u64, cdf: &[f64]) -> f64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut load = vec![0u64; NODES as usize];
    for _ in 0..requests {
        let u: f64 = rng.gen();
        let key = if skewed {
            cdf.partition_point(|&c| c < u)
        } else {
            rng.gen_range(0..KEYS)
        };
        let key = format!("key-{key}");
        for node in ring.preference_list(key.as_bytes()).primaries() {
            if let Some(l) = load.get_mut(*node as usize) {
                *l += 1;
            }
        }
    }
    let max = load.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mean = load.iter().sum::<u64>() as f64 / load.len() as f64;
    mean / max
}

/// Runs experiment 10a.
pub fn run(ctx: &Ctx) -> Result<Report, Error> {
    let requests = ctx.size(200_000, 2_000);
    let seeds = ctx.seeds();
    let cdf = zipf_cdf(KEYS);
    let mut cases: Vec<(u8, u32)> = [8u32, 16, 32, 64, 128, 256]
        .iter()
        .map(|&t| (1, t))
        .collect();
    cases.extend([64u32, 128, 256, 512, 1024, 4096].iter().map(|&q| (3, q)));
    let mut bar = ctx.progress("ring", (cases.len() * seeds.len()) as u64);
    let mut csv = Csv::new(&[
        "strategy",
        "tokens_per_node_or_partitions",
        "nodes",
        "n",
        "seed",
        "requests",
        "ranges",
        "membership_bytes",
        "efficiency_uniform",
        "efficiency_zipf",
    ]);
    let mut series = [
        Series::new("strategy 1, uniform keys"),
        Series::new("strategy 1, Zipf keys"),
        Series::new("strategy 3, uniform keys"),
        Series::new("strategy 3, Zipf keys"),
    ];
    let mut rows = Vec::new();
    for &(strategy, param) in &cases {
        let mut uni = Vec::new();
        let mut zipf = Vec::new();
        let mut bytes = 0usize;
        let mut ranges = 0usize;
        for &seed in &seeds {
            let strat = if strategy == 1 {
                Strategy::RandomTokens {
                    tokens_per_node: param,
                    seed: 2007 + seed,
                }
            } else {
                Strategy::EqualPartitions { partitions: param }
            };
            let config = RingConfig {
                strategy: strat,
                ..RingConfig::default()
            };
            let ring =
                Ring::new(config, (0..NODES).map(NodeSpec::new)).map_err(|e| Error::Setup {
                    experiment: "ring",
                    message: e.to_string(),
                })?;
            let u = efficiency(&ring, false, requests, seed, &cdf);
            let z = efficiency(&ring, true, requests, seed + 100, &cdf);
            bytes = ring.membership_bytes();
            ranges = ring.range_count();
            csv.push(vec![
                strategy.to_string(),
                param.to_string(),
                NODES.to_string(),
                "3".into(),
                seed.to_string(),
                requests.to_string(),
                ranges.to_string(),
                bytes.to_string(),
                format!("{u:.5}"),
                format!("{z:.5}"),
            ]);
            uni.push(u);
            zipf.push(z);
            bar.inc(1);
        }
        let (u, z) = (Estimate::of(&uni), Estimate::of(&zipf));
        let base = if strategy == 1 { 0 } else { 2 };
        let x = bytes.max(1) as f64;
        let pt = |e: Estimate| {
            Pt::interval(
                x,
                e.mean,
                (e.mean - e.ci).max(0.0),
                (e.mean + e.ci).min(1.0),
            )
        };
        series[base].points.push(pt(u));
        series[base + 1].points.push(pt(z));
        rows.push(vec![
            if strategy == 1 {
                format!("1: T = {param} tokens/node")
            } else {
                format!("3: Q = {param} partitions")
            },
            ranges.to_string(),
            bytes.to_string(),
            u.show(3),
            z.show(3),
        ]);
    }
    bar.finish_and_clear();
    plot::draw(
        &ctx.svg("ring"),
        "Partitioning strategies, S = 30, N = 3",
        &[Panel {
            series: series.to_vec(),
            ..Panel::new(
                "load-balancing efficiency against membership size",
                Axis::log("membership bytes per node (log scale)"),
                Axis {
                    limits: (0.0, 1.0),
                    ..Axis::linear("efficiency (mean / max load)")
                },
            )
        }],
        1,
    )?;
    let best = |s: &Series| s.points.iter().map(|p| p.y).fold(0.0f64, f64::max);
    let mut md = format!(
        "S = 30 nodes, N = 3, {requests} requests per point and seed over {KEYS} keys, uniform \
         and Zipf(1) popularity, {} seeds (the seed varies strategy 1's token placement and the \
         request stream). As in the Dynamo paper's figure 8, strategy 3 reaches better \
         efficiency for less membership data: best uniform efficiency strategy 1 {:.3}, \
         strategy 3 {:.3}. Under Zipf keys the hottest keys cap efficiency for both strategies. \
         No seed document ran this; the paper plots the same axes.\n\n",
        seeds.len(),
        best(&series[0]),
        best(&series[2]),
    );
    md.push_str(&md_table(
        &[
            "strategy",
            "ranges",
            "membership bytes",
            "efficiency uniform",
            "efficiency Zipf",
        ],
        &rows,
    ));
    Ok(Report { csv, markdown: md })
}
