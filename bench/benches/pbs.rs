//! The WARS Monte Carlo of `dynamo-pbs`: the cost of one prediction as a node computes it for
//! `dynamo status` (4,096 trials from measured round trips, N = 3, the configured R, W and its
//! four neighbours) and of the experiments' runs (parametric LNKD-SSD, six choices), per trial
//! count.
//!
//! `cargo bench -p dynamo-bench --no-default-features --bench pbs`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dynamo_pbs::{fits, Dist, Empirical, Wars};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const CHOICES: [(usize, usize); 6] = [(1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (3, 1)];

/// Round trips like a node's histograms hold: a thousand distinct millisecond values.
fn measured(seed: u64) -> Empirical {
    let d = Dist::Exponential { mean: 10.0 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pairs = (0..10_000).map(|_| ((d.sample(&mut rng) + d.sample(&mut rng)).round(), 1));
    Empirical::from_counts(pairs).expect("non-empty, finite")
}

fn wars(c: &mut Criterion) {
    let mut group = c.benchmark_group("pbs");
    for trials in [1_000usize, 4_096, 100_000] {
        group.throughput(Throughput::Elements(trials as u64));
        group.bench_with_input(
            BenchmarkId::new("lnkd-ssd/6-choices", trials),
            &trials,
            |b, &trials| b.iter(|| black_box(fits::LNKD_SSD.run(3, &CHOICES, trials, 7))),
        );
    }
    let live = Wars::from_round_trips(measured(1), measured(2)).with_coordinator_replica(true);
    let node_choices = [(2, 2), (1, 2), (3, 2), (2, 1), (2, 3)];
    group.throughput(Throughput::Elements(4_096));
    group.bench_function("node-status/5-choices/4096", |b| {
        b.iter(|| black_box(live.run(3, &node_choices, 4_096, 7)))
    });
    group.finish();
}

criterion_group!(benches, wars);
criterion_main!(benches);
