//! `dynamo-vclock` against the `crdts` crate's `VClock` (the baseline, measured in the same run):
//! compare and merge of two concurrent clocks over the same actors, at 3, 10 and 50 entries.
//!
//! `cargo bench -p dynamo-bench --bench vclock -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use crdts::{CmRDT, CvRDT};
use criterion::{criterion_main, BatchSize, BenchmarkId, Criterion};
use dynamo_vclock::{Entry, VClock};

const SIZES: [u64; 3] = [3, 10, 50];

/// Two clocks of one implementation.
type Pair<C> = (C, C);

/// Two concurrent clocks over the same `n` actors (node ids spread over the u64 range, in
/// increasing order): equal counters except that `a` is ahead on the last actor and `b` on the one
/// before, so the concurrency shows only at the end and a compare must scan every entry.
fn pair(n: u64) -> (Pair<VClock<u64>>, Pair<crdts::VClock<u64>>) {
    let actor = |i: u64| (i + 1) * 0x0100_0000_0000_0001;
    let counters = |i: u64, ahead: u64| 100 + i + u64::from(i + ahead + 1 == n) * 7;
    let ours = |ahead| {
        VClock::from_entries((0..n).map(|i| Entry {
            actor: actor(i),
            counter: counters(i, ahead),
            timestamp: 1_000 + i,
        }))
    };
    let theirs = |ahead| {
        let mut c = crdts::VClock::new();
        for i in 0..n {
            c.apply(crdts::Dot::new(actor(i), counters(i, ahead)));
        }
        c
    };
    ((ours(0), ours(1)), (theirs(0), theirs(1)))
}

fn compare(c: &mut Criterion) {
    let mut g = c.benchmark_group("vclock/compare");
    for n in SIZES {
        let ((a, b), (x, y)) = pair(n);
        assert_eq!(a.compare(&b), dynamo_vclock::Causality::Concurrent);
        assert_eq!(x.partial_cmp(&y), None);
        g.bench_with_input(BenchmarkId::new("dynamo", n), &n, |bench, _| {
            bench.iter(|| black_box(&a).compare(black_box(&b)));
        });
        g.bench_with_input(BenchmarkId::new("crdts", n), &n, |bench, _| {
            bench.iter(|| black_box(&x).partial_cmp(black_box(&y)));
        });
    }
    g.finish();
}

fn merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("vclock/merge");
    for n in SIZES {
        let ((a, b), (x, y)) = pair(n);
        // Clones are made in the untimed setup: crdts' merge consumes its argument.
        g.bench_with_input(BenchmarkId::new("dynamo", n), &n, |bench, _| {
            bench.iter_batched(
                || a.clone(),
                |mut m| {
                    m.merge(black_box(&b));
                    m
                },
                BatchSize::SmallInput,
            );
        });
        g.bench_with_input(BenchmarkId::new("crdts", n), &n, |bench, _| {
            bench.iter_batched(
                || (x.clone(), y.clone()),
                |(mut m, other)| {
                    m.merge(black_box(other));
                    m
                },
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

fn increment_and_clone(c: &mut Criterion) {
    let mut g = c.benchmark_group("vclock/clone_increment");
    for n in SIZES {
        let ((a, _), (x, _)) = pair(n);
        let me = 2 * 0x0100_0000_0000_0001_u64; // an existing actor
        g.bench_with_input(BenchmarkId::new("dynamo", n), &n, |bench, _| {
            bench.iter(|| {
                let mut m = black_box(&a).clone();
                m.increment(me, 5_000);
                m
            });
        });
        g.bench_with_input(BenchmarkId::new("crdts", n), &n, |bench, _| {
            bench.iter(|| {
                let mut m = black_box(&x).clone();
                let dot = m.inc(me);
                m.apply(dot);
                m
            });
        });
    }
    g.finish();
}

/// The group lives in a private module: `criterion_group!` generates an undocumented `pub fn`.
mod group {
    use super::{compare, increment_and_clone, merge};
    criterion::criterion_group!(benches, compare, merge, increment_and_clone);
}

criterion_main!(group::benches);
