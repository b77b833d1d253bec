//! Benchmarks of `dynamo-merkle` at one million keys: incremental update, build, and a full sync
//! session between two replicas that differ in 1, 10, 100 and 1000 keys, against the naive
//! exchange of every `(key, digest)` pair as the baseline. Bytes and round trips of each sync are
//! printed beside the timings (they are deterministic).
//!
//! With `-- --test` the sizes shrink to 20,000 keys so that the run is quick.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_main, BatchSize, Criterion, Throughput};
use dynamo_merkle::{Event, SyncConfig, SyncSession, SyncStats, Tree, TreeConfig};

const DIFFS: [u32; 4] = [1, 10, 100, 1000];

fn keys_count() -> u32 {
    if std::env::args().any(|a| a == "--test") {
        20_000
    } else {
        1_000_000
    }
}

fn key(idx: u32) -> [u8; 12] {
    let mut out = *b"key-00000000";
    let mut n = idx;
    for slot in out[4..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out
}

/// A 16-byte version digest of version `version` of key `idx` (splitmix64, cheap and stable).
fn digest(idx: u32, version: u32) -> [u8; 16] {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let seed = (u64::from(idx) << 32) | u64::from(version);
    let (a, b) = (mix(seed), mix(seed ^ 0xDEAD_BEEF));
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&b.to_le_bytes());
    out
}

/// A replica's store: `(segment, key index, version)` sorted by segment, so a segment's keys are
/// one binary search away (what a node's segment index gives it).
struct Store {
    rows: Vec<(u32, u32, u32)>,
}

impl Store {
    fn segment(&self, segment: u32) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        let start = self.rows.partition_point(|r| r.0 < segment);
        self.rows[start..]
            .iter()
            .take_while(move |r| r.0 == segment)
            .map(|&(_, idx, version)| (key(idx).to_vec(), digest(idx, version).to_vec()))
    }
}

/// Replica A (every key at version 0) and its tree, built once per run.
struct Base {
    config: TreeConfig,
    n: u32,
    store: Store,
    tree: Tree,
}

fn base() -> Base {
    let config = TreeConfig::default();
    let n = keys_count();
    let mut rows: Vec<(u32, u32, u32)> = (0..n)
        .map(|idx| (config.segment_of(&key(idx)), idx, 0))
        .collect();
    rows.sort_unstable();
    let tree = Tree::from_entries(config, (0..n).map(|idx| (key(idx), digest(idx, 0))));
    Base {
        config,
        n,
        store: Store { rows },
        tree,
    }
}

/// Replica B: A with `k` changes: a third new digests, a third deletions, a third new keys.
fn drifted(base: &Base, k: u32) -> (Store, Tree) {
    let mut changes: HashMap<u32, Option<u32>> = HashMap::new();
    let mut tree = base.tree.clone();
    let mut rows = base.store.rows.clone();
    for j in 0..k {
        let idx = (u64::from(j) * 999_983 % u64::from(base.n)) as u32;
        match j % 3 {
            0 => {
                tree.update(&key(idx), &digest(idx, 0), &digest(idx, 1));
                changes.insert(idx, Some(1));
            }
            1 => {
                tree.remove(&key(idx), &digest(idx, 0));
                changes.insert(idx, None);
            }
            _ => {
                let new = base.n + j;
                tree.insert(&key(new), &digest(new, 0));
                rows.push((base.config.segment_of(&key(new)), new, 0));
            }
        }
    }
    rows.retain_mut(|row| match changes.get(&row.1) {
        Some(Some(version)) => {
            row.2 = *version;
            true
        }
        Some(None) => false,
        None => true,
    });
    rows.sort_unstable();
    (Store { rows }, tree)
}

fn answer(session: &mut SyncSession, store: &Store, found: &mut usize) {
    while let Some(event) = session.poll_event() {
        match event {
            Event::SegmentNeeded(segment) => {
                let _ = session.supply(0, segment, store.segment(segment));
            }
            Event::Finished(keys) => *found = keys.len(),
            _ => {}
        }
    }
}

/// One full session, A initiating; returns A's stats and the number of keys found.
fn sync(a: (&Store, &Tree), b: (&Store, &Tree)) -> (SyncStats, usize) {
    let mut left = SyncSession::initiate(SyncConfig::default(), 1, 0, a.1);
    let mut right = SyncSession::respond(SyncConfig::default(), 1);
    let (mut found_a, mut found_b) = (usize::MAX, usize::MAX);
    loop {
        let mut moved = false;
        while let Some(msg) = left.poll_transmit() {
            moved = true;
            let _ = right.handle_message(0, b.1, msg);
        }
        answer(&mut right, b.0, &mut found_b);
        while let Some(msg) = right.poll_transmit() {
            moved = true;
            let _ = left.handle_message(0, a.1, msg);
        }
        answer(&mut left, a.0, &mut found_a);
        if !moved {
            break;
        }
    }
    assert_eq!(found_a, found_b);
    (*left.stats(), found_a)
}

/// The baseline: B sends every `(key, digest)` pair, A merge-joins them with its own.
fn naive(a: &[([u8; 12], [u8; 16])], b: &[([u8; 12], [u8; 16])]) -> usize {
    let (mut i, mut j, mut found) = (0, 0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                found += usize::from(x.1 != y.1);
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                found += 1;
                i += 1;
            }
            (Some(_), None) => {
                found += 1;
                i += 1;
            }
            _ => {
                found += 1;
                j += 1;
            }
        }
    }
    found
}

fn pairs(store: &Store) -> Vec<([u8; 12], [u8; 16])> {
    let mut out: Vec<_> = store
        .rows
        .iter()
        .map(|&(_, idx, version)| (key(idx), digest(idx, version)))
        .collect();
    out.sort_unstable();
    out
}

/// Encoded size of the naive exchange, with the same estimate as `Message::encoded_len`.
fn naive_bytes(entries: usize) -> u64 {
    entries as u64 * (1 + 12 + 1 + 16)
}

fn merkle_benches(c: &mut Criterion) {
    let base = base();
    let n = base.n;

    let mut group = c.benchmark_group(format!("merkle/update_{n}"));
    let mut tree = base.tree.clone();
    let hot: Vec<[u8; 12]> = (0..1024).map(|i| key(i * 977 % n)).collect();
    let (d0, d1) = (digest(0, 0), digest(0, 1));
    let mut i = 0usize;
    group.bench_function("update", |bench| {
        bench.iter(|| {
            let k = &hot[i % hot.len()];
            let (old, new) = if (i / hot.len()).is_multiple_of(2) {
                (&d0, &d1)
            } else {
                (&d1, &d0)
            };
            tree.update(black_box(k), old, new);
            i += 1;
        })
    });
    group.bench_function("insert", |bench| {
        bench.iter(|| {
            tree.insert(black_box(&hot[i % hot.len()]), &d0);
            i += 1;
        })
    });
    group.finish();

    let mut group = c.benchmark_group(format!("merkle/build_{n}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::from(n)));
    group.bench_function("from_entries", |bench| {
        bench.iter(|| Tree::from_entries(base.config, (0..n).map(|idx| (key(idx), digest(idx, 0)))))
    });
    group.bench_function("incremental_inserts", |bench| {
        bench.iter(|| {
            let mut tree = Tree::new(base.config);
            for idx in 0..n {
                tree.insert(&key(idx), &digest(idx, 0));
            }
            tree
        })
    });
    group.finish();

    let a_pairs = pairs(&base.store);
    let mut group = c.benchmark_group(format!("merkle/sync_{n}"));
    group.sample_size(10);
    for k in DIFFS {
        let (store_b, tree_b) = drifted(&base, k);
        let a = (&base.store, &base.tree);
        let b = (&store_b, &tree_b);
        let (stats, found) = sync(a, b);
        assert_eq!(found as u32, k, "the session must find every difference");
        println!(
            "sync {n} keys, {k} differences: {} messages, {} round trips, {} bytes ({} tree part), \
             {} segments; naive exchange {} bytes",
            stats.messages(),
            stats.round_trips(),
            stats.bytes(),
            stats.tree_bytes,
            stats.differing_segments,
            naive_bytes(store_b.rows.len()),
        );
        group.bench_function(format!("session/{k}"), |bench| bench.iter(|| sync(a, b)));
        if k == 100 {
            let b_pairs = pairs(&store_b);
            assert_eq!(naive(&a_pairs, &b_pairs) as u32, k);
            group.bench_function(format!("naive_full_exchange/{k}"), |bench| {
                bench.iter_batched(
                    || (),
                    |()| naive(black_box(&a_pairs), black_box(&b_pairs)),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

mod group {
    //! The criterion group (a private module: the macro's `pub fn` needs no docs here).
    use criterion::criterion_group;
    criterion_group!(benches, super::merkle_benches);
}

criterion_main!(group::benches);
