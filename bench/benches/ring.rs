//! Preference-list lookups against the cost of hashing the key alone, in the same run; and what a
//! membership change costs by ring size.
//!
//! `cargo bench -p dynamo-bench --bench ring`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dynamo_ring::{HashFunction, NodeSpec, PreferenceList, Ring, RingConfig, Strategy};

/// The three primaries of a preference list, without allocating.
fn first3(list: PreferenceList<'_, u32>) -> [u32; 3] {
    let mut out = [0u32; 3];
    for (slot, r) in out.iter_mut().zip(list) {
        *slot = *r.node;
    }
    out
}

fn ring(nodes: u32, tokens: u32) -> Ring<u32> {
    let config = RingConfig {
        hash: HashFunction::Md5,
        strategy: Strategy::RandomTokens {
            tokens_per_node: tokens,
            seed: 42,
        },
        replicas: 3,
    };
    Ring::new(config, (0..nodes).map(NodeSpec::new)).expect("valid ring")
}

fn preference_lists(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..1024)
        .map(|i| format!("user:{i:08}").into_bytes())
        .collect();
    let mut group = c.benchmark_group("ring");
    let mut i = 0usize;
    group.bench_function("md5_hash_only", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(HashFunction::Md5.position(black_box(&keys[i])))
        })
    });
    for (nodes, tokens) in [(8u32, 128u32), (64, 256), (1024, 256)] {
        let ring = ring(nodes, tokens);
        let positions: Vec<_> = keys.iter().map(|k| ring.position(k)).collect();
        let label = format!("{nodes}x{tokens}");
        group.bench_with_input(
            BenchmarkId::new("lookup_n3_without_hash", &label),
            &ring,
            |b, ring| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(first3(ring.preference_list_at(black_box(positions[i]))))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("lookup_n3_with_hash", &label),
            &ring,
            |b, ring| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(first3(ring.preference_list(black_box(&keys[i]))))
                })
            },
        );
    }
    let q64 = Ring::new(RingConfig::default(), (0..64u32).map(NodeSpec::new)).expect("ring");
    let positions: Vec<_> = keys.iter().map(|k| q64.position(k)).collect();
    group.bench_function("lookup_n3_without_hash/strategy3_q64_s64", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(first3(q64.preference_list_at(black_box(positions[i]))))
        })
    });
    group.finish();
}

/// A node joining and a node leaving a ring of strategy 3 of three (four) nodes, by Q: the cost
/// of a membership change, which grew with Q squared before the joiner's moves kept a heap per
/// donor (a join at Q = 2^16 took 25 s).
fn membership_changes(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_change");
    group.sample_size(10);
    for exp in [10u32, 14, 16] {
        let config = RingConfig {
            strategy: Strategy::EqualPartitions {
                partitions: 1 << exp,
            },
            ..RingConfig::default()
        };
        let three = Ring::new(config, (0..3u32).map(NodeSpec::new)).expect("ring");
        let four = Ring::new(config, (0..4u32).map(NodeSpec::new)).expect("ring");
        let label = format!("q2^{exp}");
        group.bench_with_input(BenchmarkId::new("join_s3", &label), &three, |b, ring| {
            b.iter(|| black_box(ring.join(NodeSpec::new(3)).expect("joins")))
        });
        group.bench_with_input(BenchmarkId::new("leave_s4", &label), &four, |b, ring| {
            b.iter(|| black_box(ring.leave(&3).expect("leaves")))
        });
    }
    group.finish();
}

criterion_group!(benches, preference_lists, membership_changes);
criterion_main!(benches);
