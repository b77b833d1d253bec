//! The Dynamo paper's comparison of partitioning strategies (section 6.2): load-balancing
//! efficiency and the size of the membership information, for S = 30 nodes and N = 3.
//!
//! Load-balancing efficiency is the mean load over the hottest node's load, where a node's load
//! is the number of requests it receives as one of a key's N replicas. Keys are drawn uniformly
//! and from a Zipf-like popularity (exponent 1) over 100,000 distinct keys.
//!
//! `cargo run --release -p dynamo-ring --example strategies`

use dynamo_ring::{NodeSpec, Ring, RingConfig, Strategy};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const NODES: u32 = 30;
const KEYS: usize = 100_000;
const REQUESTS: usize = 200_000;

/// The workspace's seeded generator (ChaCha8), so the example prints the same table everywhere.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    fn next_f64(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Cumulative Zipf(1) weights over `n` ranks.
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

fn efficiency(ring: &Ring<u32>, skewed: bool, rng: &mut Rng, cdf: &[f64]) -> f64 {
    let mut load = vec![0u64; NODES as usize];
    for _ in 0..REQUESTS {
        let u = rng.next_f64();
        let key = if skewed {
            cdf.partition_point(|&c| c < u)
        } else {
            (u * KEYS as f64) as usize
        };
        let key = format!("key-{key}");
        for node in ring.preference_list(key.as_bytes()).primaries() {
            load[*node as usize] += 1;
        }
    }
    let max = load.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mean = load.iter().sum::<u64>() as f64 / load.len() as f64;
    mean / max
}

fn main() -> Result<(), dynamo_ring::RingError> {
    let cdf = zipf_cdf(KEYS);
    println!("S = {NODES} nodes, N = 3, {REQUESTS} requests over {KEYS} keys");
    println!(
        "{:<34} {:>10} {:>12} {:>12} {:>10}",
        "strategy", "tokens", "eff uniform", "eff zipf", "bytes"
    );
    let mut rows = Vec::new();
    for t in [8u32, 32, 64, 128, 256] {
        rows.push((
            format!("1: T = {t} random tokens/node"),
            Strategy::RandomTokens {
                tokens_per_node: t,
                seed: 2007,
            },
        ));
    }
    for q in [64u32, 256, 1024, 4096] {
        rows.push((
            format!("3: Q = {q} equal partitions"),
            Strategy::EqualPartitions { partitions: q },
        ));
    }
    for (name, strategy) in rows {
        let config = RingConfig {
            strategy,
            ..RingConfig::default()
        };
        let ring = Ring::new(config, (0..NODES).map(NodeSpec::new))?;
        let mut rng = Rng::new(7);
        let uniform = efficiency(&ring, false, &mut rng, &cdf);
        let zipf = efficiency(&ring, true, &mut rng, &cdf);
        println!(
            "{:<34} {:>10} {:>12.3} {:>12.3} {:>10}",
            name,
            ring.range_count(),
            uniform,
            zipf,
            ring.membership_bytes()
        );
    }
    println!();
    println!(
        "bytes: membership information a node holds (strategy 1: 16-byte position and owner per"
    );
    println!("token; strategy 3: one owner per partition, positions implied by Q).");
    Ok(())
}
